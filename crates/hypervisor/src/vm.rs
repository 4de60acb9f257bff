//! A virtual machine: what it is made of (its specification, [`VmSpec`]),
//! its devices, and how it ended.
//!
//! Every VM gets the devices of the QEMU `virt` board that a kernel needs
//! to boot — a PLIC, a 16550 UART, the syscon and a Goldfish RTC — from
//! the hypervisor; anything else (virtio devices) the platform describes in
//! [`VmSpec::devices`], and the hypervisor puts on the VM's bus with an
//! interrupt line from the VM's PLIC and, for an ordinary VM, a view of its
//! memory for DMA ([`DeviceWiring`]). Nothing outside this crate reaches a
//! VM's internals: the platform reads what it reports through accessors.
//!
//! A VM's life:
//!
//! | state | how it gets there | what holds |
//! |---|---|---|
//! | running | [`crate::Hypervisor::create_vm`] | owns its RAM pages, mapped in its G-stage tables; vCPU 0 started |
//! | ended | a power-off, reset or failure request (SBI SRST or the syscon), or a trap the hypervisor cannot serve | [`Vm::end`] says why; no vCPU of it runs again |
//! | retired | the end of the scheduling round in which it ended | its pages are unmapped, invalidated by machine address on every hart, zeroed and free; its tables are freed; its DMA map is empty; its vCPUs' saved registers are zero |

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use strata_devices::board::{VirtDevices, VirtWiring};
use strata_devices::bus::Bus as DeviceBus;
use strata_devices::plic::source_line;
use strata_devices::rtc::{GoldfishRtc, RtcClock};
use strata_devices::syscon::{PowerLatch, PowerRequest};
use strata_devices::uart::{Uart, UartSink};
use strata_devices::{IrqLine, MmioDevice};
use strata_ownership::{VmId, PAGE_SIZE};

use crate::ids::VcpuIndex;

/// A VM's guest-physical platform: QEMU `virt` addresses, like the bare
/// board, so the same Debian kernel runs in either.
pub mod layout {
    pub use strata_devices::board::VIRT_VM as BOARD;
    /// Where the VM's RAM starts.
    pub const RAM_BASE: u64 = BOARD.ram_base;
    pub const UART_IRQ: u32 = BOARD.uart_irq;
    pub const RTC_IRQ: u32 = BOARD.rtc_irq;
}

/// How a VM's guest-virtual addresses reach machine memory (issue 21;
/// docs/hypervisor.md "Paging modes").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Paging {
    /// The guest's VS-stage tables over the hypervisor's G-stage tables:
    /// the hart walks both (two-dimensional walks).
    #[default]
    Nested,
    /// The hypervisor merges the guest's tables and its G-stage map into
    /// shadow tables that the hart walks in one dimension
    /// ([`crate::shadow`]).
    Shadow,
}

impl Paging {
    pub fn name(self) -> &'static str {
        match self {
            Paging::Nested => "nested",
            Paging::Shadow => "shadow",
        }
    }
}

/// What a VM is made of, prepared by the platform: memory size, images
/// already laid out (guest-physical address and bytes), the entry, where
/// its console goes, and the devices it has beyond the board's own.
pub struct VmSpec {
    pub name: String,
    pub memory: u64,
    pub vcpus: u32,
    pub protected: bool,
    /// Nested or shadow paging.
    pub paging: Paging,
    /// (guest-physical address, bytes) to load before the VM starts.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// Where vCPU 0 starts, in VS-mode, with a0 = 0 and a1 = `dtb`.
    pub entry: u64,
    pub dtb: u64,
    /// The device tree as it is measured ([`crate::attest`]): the segment
    /// at `dtb` with its random seeds zeroed. `None`: measured as loaded.
    pub dtb_measured: Option<Vec<u8>>,
    /// Where the VM's console output goes.
    pub console: UartSink,
    /// The RTC's time source (nanoseconds since the epoch).
    pub clock: RtcClock,
    /// Devices beyond the PLIC, UART, syscon and RTC (virtio). Only an
    /// ordinary VM may have them: their models are host-side code, which a
    /// protected VM's memory is closed to.
    pub devices: Vec<DeviceSpec>,
}

/// A device the platform adds to a VM: a window on the VM's bus, an
/// interrupt source on its PLIC, and how to build the model once the VM
/// exists.
pub struct DeviceSpec {
    /// For errors and the bus map.
    pub name: &'static str,
    /// Guest-physical window.
    pub base: u64,
    pub size: u64,
    /// PLIC interrupt source (1 to 31).
    pub irq: u32,
    /// Builds the model from what the VM gives it.
    pub build: DeviceBuilder,
}

/// Builds a device model from what its VM gives it (or says why not).
pub type DeviceBuilder = Box<dyn FnOnce(DeviceWiring) -> Result<Box<dyn MmioDevice>, String> + Send>;

/// What a device model gets from its VM.
pub struct DeviceWiring {
    /// Its interrupt line: PLIC source [`DeviceSpec::irq`].
    pub irq: Arc<dyn IrqLine>,
    /// The VM's memory as the device's DMA reaches it.
    pub dma: Arc<DmaMap>,
}

/// A VM's guest-physical-to-machine page table for host-side device
/// models (virtio DMA): one entry per page of the VM's RAM, kept in step
/// with its G-stage mappings by the hypervisor, and emptied when the VM is
/// retired. Only an ordinary VM has one; a protected VM's memory is out of
/// reach of host-side code.
///
/// It is also the boundary at which device writes meet shadow paging: the
/// shadow pager marks the guest page-table pages it write-protects as
/// *watched*, and whoever writes guest memory for a device tells the map
/// ([`DmaMap::wrote`], after the bytes are in memory). A write that touches
/// a watched page is logged; the hypervisor drains the log before the
/// VM's vCPUs run again, on every intercepted fence and on every shadow
/// fault, and drops the shadow entries made through the pages written
/// (docs/hypervisor.md, "Device writes to page tables").
///
/// | per page | set by | meaning |
/// |---|---|---|
/// | machine address or unmapped | the hypervisor, as G-stage mappings change | where a device's access to the page goes |
/// | watched | the shadow pager, when a walk first meets the page as a table; cleared when it is unprotected or the shadow tables are dropped | a device write to it is logged |
///
/// Invariant: a device write to a watched page is in the log, or the log
/// has been drained since the write completed.
pub struct DmaMap {
    pages: Vec<AtomicU64>,
    watched: Vec<AtomicBool>,
    /// Watched pages (gpa) written since the last drain.
    log: Mutex<Vec<u64>>,
    /// Whether `log` may be non-empty (read without the lock on the
    /// hypervisor's fast path).
    pending: AtomicBool,
    /// Device writes that touched a watched page, ever.
    logged: AtomicU64,
}

const UNMAPPED: u64 = u64::MAX;

impl std::fmt::Debug for DmaMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaMap").field("pages", &self.pages.len()).field("logged", &self.logged()).finish()
    }
}

impl DmaMap {
    pub fn new(ram_size: u64) -> Self {
        let n = ram_size / PAGE_SIZE;
        Self {
            pages: (0..n).map(|_| AtomicU64::new(UNMAPPED)).collect(),
            watched: (0..n).map(|_| AtomicBool::new(false)).collect(),
            log: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            logged: AtomicU64::new(0),
        }
    }

    fn index(&self, gpa: u64) -> Option<usize> {
        let i = gpa.checked_sub(layout::RAM_BASE)? / PAGE_SIZE;
        (i < self.pages.len() as u64).then_some(i as usize)
    }

    /// The machine address of `gpa`, if the VM maps it now.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let pa = self.pages[self.index(gpa)?].load(Ordering::Acquire);
        (pa != UNMAPPED).then_some(pa + (gpa % PAGE_SIZE))
    }

    /// Records that `gpa`'s page is at machine address `pa` (or unmapped).
    pub fn set(&self, gpa: u64, pa: Option<u64>) {
        if let Some(i) = self.index(gpa) {
            self.pages[i].store(pa.map_or(UNMAPPED, |p| p & !(PAGE_SIZE - 1)), Ordering::Release);
        }
    }

    /// Unmaps everything (the VM is gone).
    pub fn clear(&self) {
        for p in &self.pages {
            p.store(UNMAPPED, Ordering::Release);
        }
    }

    /// A device model wrote `len` bytes at `gpa` (call it after the bytes
    /// are in memory, before the device tells the guest it is done): the
    /// watched pages among them are logged for the hypervisor.
    /// Only the pages of the VM's RAM are looked at, however long the range.
    pub fn wrote(&self, gpa: u64, len: u64) {
        let ram_end = layout::RAM_BASE + self.pages.len() as u64 * PAGE_SIZE;
        let start = gpa.max(layout::RAM_BASE);
        let end = gpa.saturating_add(len).min(ram_end);
        if start >= end {
            return;
        }
        let first = ((start - layout::RAM_BASE) / PAGE_SIZE) as usize;
        let last = ((end - 1 - layout::RAM_BASE) / PAGE_SIZE) as usize;
        for i in first..=last {
            if self.watched[i].load(Ordering::Acquire) {
                let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
                log.push(layout::RAM_BASE + i as u64 * PAGE_SIZE);
                self.logged.fetch_add(1, Ordering::Relaxed);
                self.pending.store(true, Ordering::Release);
            }
        }
    }

    /// Device writes that touched a watched page so far.
    pub fn logged(&self) -> u64 {
        self.logged.load(Ordering::Relaxed)
    }

    /// Starts (or stops) logging device writes to guest page `gpa`.
    pub(crate) fn watch(&self, gpa: u64, on: bool) {
        if let Some(i) = self.index(gpa) {
            self.watched[i].store(on, Ordering::Release);
        }
    }

    /// Stops logging device writes anywhere, and forgets the log.
    pub(crate) fn unwatch_all(&self) {
        for w in &self.watched {
            w.store(false, Ordering::Release);
        }
        let _ = self.drain();
    }

    /// The watched pages written since the last drain (each once, sorted).
    pub(crate) fn drain(&self) -> Vec<u64> {
        if !self.pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        self.pending.store(false, Ordering::Release);
        let mut pages = std::mem::take(&mut *log);
        pages.sort_unstable();
        pages.dedup();
        pages
    }
}

/// How a VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmEnd {
    PowerOff,
    Reset,
    /// The guest powered off reporting failure with this code.
    Failure(u32),
    /// The hypervisor stopped the VM: a guest action it cannot serve.
    Crashed(String),
    /// Stopped because a vCPU traps in a loop without progress (what the
    /// hart found, as a sentence).
    NoProgress(String),
}

impl VmEnd {
    pub fn describe(&self) -> String {
        match self {
            VmEnd::PowerOff => "powered off".into(),
            VmEnd::Reset => "asked for a reset (Strata stops it)".into(),
            VmEnd::Failure(c) => format!("powered off reporting failure {c}"),
            VmEnd::Crashed(why) => format!("stopped by the hypervisor: {why}"),
            VmEnd::NoProgress(what) => format!("made no progress: {what}"),
        }
    }
}

/// An interrupt line into one vCPU's VS-level external interrupt
/// (`hvip.VSEIP`), driven by the VM's PLIC.
struct VseipLine(Arc<AtomicBool>);

impl IrqLine for VseipLine {
    fn set_level(&self, level: bool) {
        self.0.store(level, Ordering::Relaxed);
    }
}

/// An interrupt line nobody listens to (the PLIC's M-mode contexts: guests
/// run in VS-mode).
struct Unwired;
impl IrqLine for Unwired {
    fn set_level(&self, _: bool) {}
}

/// Counters of one VM's exits.
#[derive(Clone, Debug, Default)]
pub struct VmStats {
    pub sbi_calls: u64,
    pub mmio_exits: u64,
    pub injected_faults: u64,
    pub virtual_insn: u64,
}

type SharedSink = Arc<Mutex<UartSink>>;

pub struct Vm {
    pub(crate) name: String,
    pub(crate) id: VmId,
    /// The hardware VMID in `hgatp`.
    pub(crate) vmid: u64,
    pub(crate) protected: bool,
    pub(crate) ram_size: u64,
    pub(crate) hgatp: u64,
    pub(crate) bus: DeviceBus,
    /// Per vCPU: the PLIC's S-context output.
    vseip: Vec<Arc<AtomicBool>>,
    uart: Arc<Mutex<Uart>>,
    rtc: Arc<Mutex<GoldfishRtc>>,
    power: Arc<PowerLatch>,
    pub(crate) console: SharedSink,
    /// Its vCPUs, by vCPU id.
    pub(crate) vcpus: Vec<VcpuIndex>,
    /// For host-side device models; `None` for a protected VM.
    pub(crate) dma: Option<Arc<DmaMap>>,
    pub(crate) end: Option<VmEnd>,
    /// Its memory has gone back to the free pool.
    pub(crate) retired: bool,
    /// Why giving its memory back failed, if it did.
    pub(crate) retire_error: Option<String>,
    pub(crate) stats: VmStats,
    /// Its shadow tables, in shadow mode ([`Paging::Shadow`]).
    pub(crate) shadow: Option<crate::shadow::ShadowVm>,
    /// Its initial state's measurement ([`crate::attest`]).
    pub(crate) measurement: crate::attest::Digest32,
}

impl VmSpec {
    /// The measurement of the VM this specification makes
    /// ([`crate::attest::measure`]): its images as loaded, the device tree
    /// as [`VmSpec::dtb_measured`] gives it.
    pub fn measurement(&self) -> crate::attest::Digest32 {
        measure_images(
            self.memory,
            self.vcpus,
            self.entry,
            self.dtb,
            self.protected,
            &self.segments,
            self.dtb_measured.as_deref(),
        )
    }
}

/// [`VmSpec::measurement`] from the parts, for a verifier that has no VM
/// (`strata attest vm-measure` loads the same images without running).
pub fn measure_images(
    memory: u64,
    vcpus: u32,
    entry: u64,
    dtb: u64,
    protected: bool,
    segments: &[(u64, Vec<u8>)],
    dtb_measured: Option<&[u8]>,
) -> crate::attest::Digest32 {
    let images: Vec<(u64, &[u8])> = segments
        .iter()
        .map(|(gpa, b)| (*gpa, if *gpa == dtb { dtb_measured.unwrap_or(b) } else { b.as_slice() }))
        .collect();
    crate::attest::measure(&crate::attest::Initial { memory, vcpus, entry, dtb, protected, images: &images })
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Vm {
    /// Builds a VM's devices — PLIC (two contexts per vCPU, M then S, as
    /// the device tree says), UART, syscon, RTC, then `spec.devices` —
    /// for a VM whose RAM begins at machine page `first` (for the DMA map).
    /// The memory itself is the caller's business.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        spec: VmSpec,
        id: VmId,
        vmid: u64,
        hgatp: u64,
        ram_first_pa: u64,
        vcpus: Vec<VcpuIndex>,
    ) -> Result<Vm, String> {
        let measurement = spec.measurement();
        let VmSpec { name, memory, vcpus: n, protected, paging, console, clock, devices, .. } = spec;
        if protected && !devices.is_empty() {
            return Err(format!(
                "VM {name}: a protected VM cannot have host-side devices: their models would reach its memory"
            ));
        }
        let console: SharedSink = Arc::new(Mutex::new(console));
        let uart_sink = {
            let s = console.clone();
            Box::new(move |b: u8| (lock(&s))(b)) as UartSink
        };
        let vseip: Vec<Arc<AtomicBool>> = (0..n).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let outputs: Vec<Arc<dyn IrqLine>> = vseip
            .iter()
            .flat_map(|l| [Arc::new(Unwired) as Arc<dyn IrqLine>, Arc::new(VseipLine(l.clone())) as Arc<dyn IrqLine>])
            .collect();
        // The board's own device set, from its one description.
        let VirtDevices { mut bus, plic, uart, rtc, power, .. } =
            layout::BOARD.build(VirtWiring { plic_contexts: outputs, clint: None, console: uart_sink, clock })?;
        let dma = (!protected).then(|| {
            let map = Arc::new(DmaMap::new(memory));
            for i in 0..memory / PAGE_SIZE {
                map.set(layout::RAM_BASE + i * PAGE_SIZE, Some(ram_first_pa + i * PAGE_SIZE));
            }
            map
        });
        for d in devices {
            if d.irq == 0 || d.irq >= 32 || d.irq == layout::UART_IRQ || d.irq == layout::RTC_IRQ {
                return Err(format!("VM {name}: device {} wants PLIC source {}, which is not free", d.name, d.irq));
            }
            let Some(map) = dma.clone() else {
                return Err(format!("VM {name}: a protected VM has no DMA map for device {}", d.name));
            };
            let wiring = DeviceWiring { irq: source_line(&plic, d.irq), dma: map };
            let model = (d.build)(wiring).map_err(|e| format!("VM {name}: {}: {e}", d.name))?;
            bus.add(d.base, d.size, d.name, model).map_err(|e| format!("VM {name}: {e}"))?;
        }
        let shadow = (paging == Paging::Shadow).then(|| crate::shadow::ShadowVm::new(id, n as usize, dma.clone()));
        Ok(Vm {
            name,
            id,
            vmid,
            protected,
            ram_size: memory,
            hgatp,
            bus,
            vseip,
            uart,
            rtc,
            power,
            console,
            vcpus,
            dma,
            end: None,
            retired: false,
            retire_error: None,
            stats: VmStats::default(),
            shadow,
            measurement,
        })
    }

    /// Notes a power request the guest made through the syscon device.
    pub(crate) fn poll_power(&mut self) {
        if self.end.is_some() {
            return;
        }
        if let Some(r) = self.power.take_request() {
            self.end = Some(match r {
                PowerRequest::PowerOff => VmEnd::PowerOff,
                PowerRequest::Reset => VmEnd::Reset,
                PowerRequest::Fail(c) => VmEnd::Failure(c as u32),
            });
        }
    }

    /// Ends the VM for `end`, unless it has ended already.
    pub(crate) fn finish(&mut self, end: VmEnd) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }

    /// The level of vCPU `id`'s external-interrupt line (its PLIC
    /// S-context).
    pub(crate) fn vseip(&self, id: u64) -> bool {
        self.vseip.get(id as usize).is_some_and(|l| l.load(Ordering::Relaxed))
    }

    pub(crate) fn update_rtc(&self) {
        lock(&self.rtc).update();
    }

    pub(crate) fn rtc_alarm_in_ns(&self) -> Option<u64> {
        lock(&self.rtc).alarm_in_ns()
    }

    pub(crate) fn push_console_input(&self, b: u8) -> bool {
        let mut u = lock(&self.uart);
        if u.rx_space() == 0 {
            return false;
        }
        u.push_input(b);
        true
    }

    /// Writes `bytes` to the VM's console output (SBI debug console).
    pub(crate) fn console_write(&self, bytes: &[u8]) {
        let mut out = lock(&self.console);
        for &b in bytes {
            (out)(b);
        }
    }

    // ---- what the platform may read ----------------------------------------

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its id in the ownership bookkeeping ([`crate::Hypervisor::memory`]).
    pub fn owner_id(&self) -> VmId {
        self.id
    }

    /// The hardware VMID in its `hgatp`.
    pub fn vmid(&self) -> u64 {
        self.vmid
    }

    pub fn protected(&self) -> bool {
        self.protected
    }

    /// Its initial state's measurement, as its evidence carries it.
    pub fn measurement(&self) -> crate::attest::Digest32 {
        self.measurement
    }

    /// Its RAM, in bytes.
    pub fn memory(&self) -> u64 {
        self.ram_size
    }

    /// How it ended, if it has.
    pub fn end(&self) -> Option<&VmEnd> {
        self.end.as_ref()
    }

    pub fn running(&self) -> bool {
        self.end.is_none()
    }

    /// Whether its memory has gone back to the free pool (it ended, and
    /// the round it ended in is over).
    pub fn retired(&self) -> bool {
        self.retired
    }

    /// Why giving its memory back failed (machine memory failed under
    /// the hypervisor); `None` normally.
    pub fn retire_error(&self) -> Option<&str> {
        self.retire_error.as_deref()
    }

    pub fn stats(&self) -> &VmStats {
        &self.stats
    }

    /// Its vCPUs, by vCPU id.
    pub fn vcpus(&self) -> &[VcpuIndex] {
        &self.vcpus
    }

    pub fn paging(&self) -> Paging {
        if self.shadow.is_some() {
            Paging::Shadow
        } else {
            Paging::Nested
        }
    }

    /// Its shadow-paging counters (shadow mode only).
    pub fn shadow_stats(&self) -> Option<&crate::shadow::ShadowStats> {
        self.shadow.as_ref().map(|s| s.stats())
    }

    /// The VMID its translations are cached under on the harts: its own in
    /// nested mode; 0 in shadow mode, where `hgatp` is Bare (Priv. §8.2.10:
    /// Bare takes VMID 0) and the shadow roots in `vsatp` tell VMs apart.
    pub(crate) fn tlb_vmid(&self) -> u64 {
        if self.shadow.is_some() {
            0
        } else {
            self.vmid
        }
    }
}

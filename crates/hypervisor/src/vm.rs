//! A virtual machine: its memory, its devices and how it ended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use strata_devices::board::{VirtWiring, VIRT_VM};
use strata_devices::bus::Bus as DeviceBus;
use strata_devices::plic::Plic;
use strata_devices::rtc::{GoldfishRtc, RtcClock};
use strata_devices::syscon::{PowerLatch, PowerRequest};
use strata_devices::uart::{Uart, UartSink};
use strata_devices::IrqLine;
use strata_ownership::{MachinePage, VmId};

/// A VM's guest-physical platform: [`VIRT_VM`], QEMU `virt` addresses like
/// the bare board's (without the CLINT), so the same Debian kernel runs in
/// either.
pub mod layout {
    pub use strata_devices::board::VIRT_VM as BOARD;
    /// Where the VM's RAM starts.
    pub const RAM_BASE: u64 = BOARD.ram_base;
}

/// What a VM needs to boot, prepared by the platform: memory size, images
/// already laid out (guest-physical address and bytes), and the entry.
pub struct VmSpec {
    pub name: String,
    pub memory: u64,
    pub vcpus: u32,
    pub protected: bool,
    /// (guest-physical address, bytes) to load before the VM starts.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// Where vCPU 0 starts, in VS-mode, with a0 = 0 and a1 = `dtb`.
    pub entry: u64,
    pub dtb: u64,
    /// Where the VM's console output goes.
    pub console: UartSink,
    /// The RTC's time source (nanoseconds since the epoch).
    pub clock: RtcClock,
}

/// A VM's guest-physical-to-machine page table for host-side device
/// models (virtio DMA): one entry per page of the VM's RAM, kept in step
/// with its G-stage mappings by the hypervisor. Only an ordinary VM has
/// one; a protected VM's memory is out of reach of host-side code.
pub struct DmaMap {
    pages: Vec<std::sync::atomic::AtomicU64>,
}

const UNMAPPED: u64 = u64::MAX;

impl DmaMap {
    pub fn new(ram_size: u64) -> Self {
        Self { pages: (0..ram_size / 4096).map(|_| std::sync::atomic::AtomicU64::new(UNMAPPED)).collect() }
    }

    fn index(&self, gpa: u64) -> Option<usize> {
        let i = gpa.checked_sub(layout::RAM_BASE)? >> 12;
        (i < self.pages.len() as u64).then_some(i as usize)
    }

    /// The machine address of `gpa`, if the VM maps it now.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let pa = self.pages[self.index(gpa)?].load(Ordering::Acquire);
        (pa != UNMAPPED).then_some(pa + (gpa & 0xfff))
    }

    /// Records that `gpa`'s page is at machine address `pa` (or unmapped).
    pub fn set(&self, gpa: u64, pa: Option<u64>) {
        if let Some(i) = self.index(gpa) {
            self.pages[i].store(pa.map_or(UNMAPPED, |p| p & !0xfff), Ordering::Release);
        }
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
pub struct VseipLine(pub Arc<AtomicBool>);

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

#[derive(Clone, Debug, Default)]
pub struct VmStats {
    pub sbi_calls: u64,
    pub mmio_exits: u64,
    pub injected_faults: u64,
    pub virtual_insn: u64,
}

pub struct Vm {
    pub name: String,
    pub id: VmId,
    /// The hardware VMID in `hgatp`.
    pub vmid: u64,
    pub protected: bool,
    pub ram_size: u64,
    /// The machine pages that back guest RAM from `RAM_BASE` (contiguous
    /// when the VM is created; the mapping is page by page, so pages may
    /// later be reassigned one at a time).
    pub ram_first: MachinePage,
    pub hgatp: u64,
    pub bus: DeviceBus,
    pub plic: Arc<Mutex<Plic>>,
    /// Per vCPU: the PLIC's S-context output.
    pub vseip: Vec<Arc<AtomicBool>>,
    pub uart: Arc<Mutex<Uart>>,
    pub rtc: Arc<Mutex<GoldfishRtc>>,
    pub power: Arc<PowerLatch>,
    /// Indices into the hypervisor's vCPU list, by vCPU id.
    pub vcpus: Vec<usize>,
    /// For host-side device models; `None` for a protected VM.
    pub dma: Option<Arc<DmaMap>>,
    pub end: Option<VmEnd>,
    pub stats: VmStats,
}

/// A VM's own devices, as [`Vm::devices`] builds them: the bus they sit on,
/// the PLIC, each vCPU's VSEIP line, the UART, the RTC and the power latch.
pub type VmDevices =
    (DeviceBus, Arc<Mutex<Plic>>, Vec<Arc<AtomicBool>>, Arc<Mutex<Uart>>, Arc<Mutex<GoldfishRtc>>, Arc<PowerLatch>);

impl Vm {
    /// Builds the VM's devices, the board's device set ([`VIRT_VM`]): PLIC
    /// (two contexts per vCPU, M then S, as the device tree says), UART,
    /// syscon and RTC.
    pub fn devices(vcpus: u32, console: UartSink, clock: RtcClock) -> Result<VmDevices, String> {
        let vseip: Vec<Arc<AtomicBool>> = (0..vcpus).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let plic_contexts: Vec<Arc<dyn IrqLine>> = vseip
            .iter()
            .flat_map(|l| [Arc::new(Unwired) as Arc<dyn IrqLine>, Arc::new(VseipLine(l.clone())) as Arc<dyn IrqLine>])
            .collect();
        let d = VIRT_VM.build(VirtWiring { plic_contexts, clint: None, console, clock })?;
        Ok((d.bus, d.plic, vseip, d.uart, d.rtc, d.power))
    }

    /// Notes a power request the guest made through the syscon device.
    pub fn poll_power(&mut self) {
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

    pub fn running(&self) -> bool {
        self.end.is_none()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Vm {
    pub fn update_rtc(&self) {
        lock(&self.rtc).update();
    }

    pub fn rtc_alarm_in_ns(&self) -> Option<u64> {
        lock(&self.rtc).alarm_in_ns()
    }

    pub fn push_console_input(&self, b: u8) -> bool {
        let mut u = lock(&self.uart);
        if u.rx_space() == 0 {
            return false;
        }
        u.push_input(b);
        true
    }
}

//! The bare `virt`-compatible board (`strata machine`): RAM, harts, the
//! board's devices and the boot hand-off, run as a [`Workload`] of the
//! [`Runner`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use strata_devices::aclint::{Aclint, AclintHartLines, Timebase};
use strata_devices::board::{VirtWiring, VIRT};
use strata_devices::bus::Bus as DeviceBus;
use strata_devices::iommu::{DmaMemory, Iommu};
use strata_devices::plic::{source_line, Plic, SharedMmio};
use strata_devices::rtc::{host_clock, GoldfishRtc};
use strata_devices::syscon::{PowerLatch, PowerRequest};
use strata_devices::uart::Uart;
use strata_devices::{mip, HartIrqBit, HartIrqs, IrqLine};
use strata_hart::{Extensions, Hart, RunExit};
use strata_memory::GuestRam;

use crate::console::ConsoleOut;
use crate::error::Error;
use crate::fdt::FdtConfig;
use crate::runner::{check_harts, check_ram, lock, HartHost, RunEnd, Runner, Slice, Workload, WorkloadSave};
pub use crate::runner::{ClockMode, INSNS_PER_TICK};

mod snapshot;
pub use snapshot::{RestoreOptions, SavedDrive, SavedMachine};

pub const RAM_BASE: u64 = VIRT.ram_base;
/// The timebase the device tree advertises (as QEMU's `virt` does).
pub const TIMEBASE_HZ: u64 = strata_devices::board::TIMEBASE_HZ;

pub struct MachineConfig {
    pub ram_size: u64,
    pub harts: u32,
    /// Firmware (OpenSBI `fw_dynamic`), or `None` to start the kernel itself
    /// in M-mode (bare-metal ELF programs).
    pub bios: Option<PathBuf>,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
    pub clock: ClockMode,
    /// Copy console output to stdout.
    pub console_stdout: bool,
    /// Feed stdin to the UART.
    pub console_stdin: bool,
    pub serial_log: Option<PathBuf>,
    /// virtio-mmio devices (disks, entropy, ...).
    pub virtio: crate::virtio::VirtioConfig,
    /// Compile guest code to host code (x86-64 hosts); off: interpret
    /// everything. Both must give the same architectural results.
    pub jit: bool,
    /// The harts' ISA extensions (`--cpu`); the device tree advertises
    /// exactly these.
    pub extensions: Extensions,
    /// A TPM backed by swtpm (`--tpm`), with measured boot
    /// (crate::measure, crate::tpm).
    pub tpm: Option<crate::tpm::TpmSpec>,
    /// The RISC-V IOMMU (`--iommu`, docs/iommu.md) between the virtio
    /// devices and RAM; `None`: devices reach RAM directly.
    pub iommu: Option<IommuSpec>,
}

/// How the board's IOMMU is set up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IommuSpec {
    /// Test knob (`--iommu-stray-dma`, hidden): one device makes one DMA
    /// write to an address its driver never mapped.
    pub stray: Option<StrayDma>,
}

/// A stray DMA write: after `after_writes` writes of the virtio device in
/// slot `slot`, one write of the marker to `iova`, with device ID `did`
/// (`None`: the device's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrayDma {
    pub slot: u32,
    pub after_writes: u64,
    pub iova: u64,
    pub did: Option<u32>,
}

impl StrayDma {
    /// Parses `SLOT:WRITES:IOVA[:DID]` (numbers decimal or 0x-hex).
    pub fn parse(s: &str) -> Result<StrayDma, String> {
        let num = |v: &str| match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        };
        let bad = || format!("'{s}': expected SLOT:WRITES:IOVA[:DID], numbers (DID below 2^24)");
        let p: Vec<Option<u64>> = s.split(':').map(num).collect();
        let (slot, after_writes, iova, did) = match p[..] {
            [Some(a), Some(b), Some(c)] => (a, b, c, None),
            [Some(a), Some(b), Some(c), Some(d)] if d < 1 << 24 => (a, b, c, Some(d as u32)),
            _ => return Err(bad()),
        };
        let slot = u32::try_from(slot).map_err(|_| bad())?;
        Ok(StrayDma { slot, after_writes, iova, did })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered the machine off.
    PowerOff,
    /// The guest asked for a reset.
    Reset,
    /// The guest powered off reporting failure with this code.
    GuestFailure(u16),
    /// Every hart waits for an interrupt that nothing can raise.
    Hung,
    /// The user typed `Ctrl-A x`.
    Quit,
    /// A hart traps in a loop without progress (`strata_hart::NoProgress`).
    NoProgress(strata_hart::NoProgress),
    /// A signal (its number) stopped the machine.
    Stopped(i32),
    /// A drive's host read or write failed and its policy is `stop`
    /// (`werror=stop`, `rerror=stop`); the disks were flushed.
    DiskStopped,
}

impl ExitReason {
    /// The process exit status for this outcome (documented in the README).
    pub fn status(self) -> i32 {
        match self {
            ExitReason::PowerOff | ExitReason::Quit => 0,
            ExitReason::Reset => 3,
            ExitReason::GuestFailure(_) => 4,
            ExitReason::Hung => 5,
            ExitReason::NoProgress(_) => 7,
            ExitReason::Stopped(_) => 8,
            ExitReason::DiskStopped => 9,
        }
    }
}

/// The part of the board the harts reach through `strata_hart::Bus`: the
/// devices behind one lock (every hart thread has a clone), and time.
#[derive(Clone)]
pub(crate) struct BoardBus {
    devices: Arc<Mutex<DeviceBus>>,
    time: Arc<Timebase>,
}

impl strata_hart::Bus for BoardBus {
    #[inline]
    fn mmio_read(&mut self, pa: u64, size: u8) -> Option<u64> {
        lock(&self.devices).read(pa, size)
    }
    #[inline]
    fn mmio_write(&mut self, pa: u64, size: u8, value: u64) -> bool {
        lock(&self.devices).write(pa, size, value)
    }
    #[inline]
    fn mtime(&self) -> u64 {
        self.time.now()
    }
}

/// The bare board as a workload: its devices, its console, and the power
/// request that ends it.
pub struct BareBoard {
    pub(crate) bus: BoardBus,
    aclint: Arc<Mutex<Aclint>>,
    rtc: Arc<Mutex<GoldfishRtc>>,
    uart: Arc<Mutex<Uart>>,
    plic: Arc<Mutex<Plic>>,
    power: Arc<PowerLatch>,
    request: Option<PowerRequest>,
    /// What a snapshot records of this board, or why it cannot be saved.
    saved: Result<SavedMachine, String>,
    /// A hart found trapping in a loop without progress: the run ends.
    stuck: Option<strata_hart::NoProgress>,
    /// What hart threads share (parallel runs).
    host: Arc<BoardHost>,
    console: Arc<Mutex<ConsoleOut>>,
    /// Where the boot images landed (for tests).
    pub layout: Layout,
    /// The configuration as the control API shows it (`GET /machine`).
    info: serde_json::Value,
    /// Under gdb (`debug.rs`): breakpoints, a step, why the harts stopped.
    /// `None` (no debugger) keeps slices on the fast path.
    pub(crate) debug: Option<crate::debug::DebugRun>,
    /// swtpm, when the board has a TPM: stopped by
    /// [`Machine::stop_tpm`], or when the board is dropped.
    swtpm: Option<crate::tpm::Swtpm>,
    /// The IOMMU (`--iommu`), for its statistics.
    iommu: Option<Arc<Mutex<Iommu>>>,
    /// The device memory that makes the stray test write (`--iommu-stray-dma`).
    stray_mem: Option<Arc<DmaMemory>>,
}

/// The RTC's clock under the virtual and paced clocks: the host's wall
/// time when the machine was built, plus guest time.
fn guest_time_clock(time: Arc<Timebase>) -> strata_devices::rtc::RtcClock {
    let start = (host_clock())();
    Box::new(move || start.wrapping_add(time.raw().wrapping_mul(1_000_000_000 / TIMEBASE_HZ)))
}

/// The bare board on the runner.
pub type Machine = Runner<BareBoard>;

#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    pub entry: u64,
    pub kernel: (u64, u64),
    pub initrd: Option<(u64, u64)>,
    pub dtb: u64,
    pub fw_dynamic_info: Option<u64>,
}

impl Workload for BareBoard {
    type Outcome = ExitReason;

    #[inline]
    fn run_slice(&mut self, harts: &mut [Hart], _time: &Arc<Timebase>, budget: u64) -> Slice {
        if let Some(d) = &mut self.debug {
            return d.run_slice(harts, &mut self.bus, &mut self.stuck, budget);
        }
        let mut used = Vec::with_capacity(harts.len());
        let mut all_idle = true;
        for h in harts.iter_mut() {
            let (n, exit) = h.run(&mut self.bus, budget);
            used.push(n);
            if exit == RunExit::Budget {
                all_idle = false;
            }
            self.stuck = self.stuck.or(h.no_progress().copied());
        }
        // A hart in WFI with an enabled interrupt pending wakes next slice.
        let idle = all_idle && !harts.iter().any(|h| h.mip() & h.csr.mie != 0);
        Slice { used, idle }
    }

    #[inline]
    fn update_devices(&mut self) {
        lock(&self.aclint).update();
        lock(&self.rtc).update();
    }

    fn timer_deadline(&self) -> Option<u64> {
        lock(&self.aclint).next_deadline()
    }

    fn rtc_alarm_in_ns(&self) -> Option<u64> {
        lock(&self.rtc).alarm_in_ns()
    }

    fn wakeup_pending(&self, harts: &[Hart]) -> bool {
        harts.iter().any(|h| h.mip() & h.csr.mie != 0)
    }

    #[inline]
    fn ended(&mut self) -> bool {
        if self.stuck.is_none() {
            self.stuck = lock(&self.host.stuck).take();
        }
        if self.stuck.is_some() {
            return true;
        }
        if self.request.is_none() {
            self.request = self.power.take_request();
        }
        self.request.is_some()
    }

    fn console_input(&mut self, b: u8) -> bool {
        let mut uart = lock(&self.uart);
        if uart.rx_space() == 0 {
            return false;
        }
        uart.push_input(b);
        true
    }

    #[inline]
    fn flush_consoles(&mut self, _end: bool) {
        lock(&self.console).flush();
    }

    fn stats(&self, out: &mut String) {
        if let Some(i) = &self.iommu {
            out.push_str(&iommu_stats(i));
        }
        if let Some(m) = &self.stray_mem {
            out.push_str(&match m.stray_outcome() {
                Some(o) => format!(
                    "strata: iommu stray write to {:#x} as device {}: {}, RAM at that address {}\n",
                    o.iova,
                    o.did,
                    if o.faulted { "faulted" } else { "translated" },
                    if o.ram_at_iova_changed { "changed" } else { "unchanged" }
                ),
                None => "strata: iommu stray write: not made\n".into(),
            });
        }
    }

    fn outcome(&mut self, end: RunEnd) -> ExitReason {
        match end {
            RunEnd::Finished if self.stuck.is_some() => ExitReason::NoProgress(self.stuck.take().expect("checked")),
            RunEnd::Finished | RunEnd::Rounds => match self.request {
                Some(PowerRequest::PowerOff) => ExitReason::PowerOff,
                Some(PowerRequest::Reset) => ExitReason::Reset,
                Some(PowerRequest::Fail(code)) => ExitReason::GuestFailure(code),
                None => ExitReason::Hung,
            },
            RunEnd::Quit => ExitReason::Quit,
            RunEnd::Hung => ExitReason::Hung,
            RunEnd::Stopped(sig) => ExitReason::Stopped(sig),
            RunEnd::DiskStopped(_) => ExitReason::DiskStopped,
        }
    }

    fn hart_host(&self) -> Option<Arc<dyn HartHost>> {
        Some(self.host.clone())
    }

    fn describe(&self) -> serde_json::Value {
        self.info.clone()
    }

    fn save(&mut self) -> Result<WorkloadSave, String> {
        self.save_board()
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), String> {
        self.restore_board(state)
    }
}

/// The bare board as hart threads see it (`runner/parallel.rs`).
struct BoardHost {
    bus: BoardBus,
    aclint: Arc<Mutex<Aclint>>,
    power: Arc<PowerLatch>,
    stuck: Mutex<Option<strata_hart::NoProgress>>,
}

impl HartHost for BoardHost {
    fn bus(&self) -> Box<dyn strata_hart::Bus + Send> {
        Box::new(self.bus.clone())
    }
    fn after_chunk(&self) -> bool {
        lock(&self.aclint).update();
        self.power.peek().is_some()
    }
    fn timer_deadline(&self) -> Option<u64> {
        lock(&self.aclint).next_deadline()
    }
    fn stuck(&self, np: strata_hart::NoProgress) {
        lock(&self.stuck).get_or_insert(np);
    }
}

/// What the bare board's boot images and device tree are made from.
fn boot_config<'a>(cfg: &'a MachineConfig, virtio_slots: &[(u64, u32)]) -> crate::boot::BootConfig<'a> {
    crate::boot::BootConfig {
        bios: cfg.bios.as_deref(),
        kernel: &cfg.kernel,
        initrd: cfg.initrd.as_deref(),
        append: &cfg.append,
        sbi_provided: false,
        fdt: FdtConfig {
            harts: cfg.harts,
            isa_base: cfg.extensions.isa_base(),
            isa_extensions: cfg.extensions.names().into_iter().map(String::from).collect(),
            mmu_type: "riscv,sv48".into(),
            board: VIRT,
            ram_size: cfg.ram_size,
            bootargs: String::new(),
            initrd: None,
            virtio_mmio: virtio_slots.to_vec(),
            tpm_log: None,
            iommu: cfg.iommu.is_some(),
        },
    }
}

/// The measurements `strata machine --tpm` would make for `cfg`, computed
/// offline (`strata measure`): the same loading into a scratch target,
/// nothing started.
pub fn expected_measurements(cfg: &MachineConfig) -> Result<crate::measure::Measurements, Error> {
    check_harts(&format!("--smp {}", cfg.harts), cfg.harts)?;
    check_ram("RAM size", cfg.ram_size)?;
    let virtio_slots = cfg.virtio.slots(&VIRT)?;
    let scratch = crate::loader::Segments::new(RAM_BASE, cfg.ram_size);
    Ok(crate::boot::load_measured(&scratch, &boot_config(cfg, &virtio_slots))?.1)
}

impl Runner<BareBoard> {
    /// Builds the board for `cfg`: checks the limits, opens the virtio
    /// backends, loads the images and wires the devices.
    pub fn new(cfg: &MachineConfig) -> Result<Machine, Error> {
        Self::build(cfg, true)
    }

    /// As [`new`](Self::new); without `boot`, no image is loaded (RAM stays
    /// zero: a snapshot is about to fill it).
    fn build(cfg: &MachineConfig, boot: bool) -> Result<Machine, Error> {
        check_harts(&format!("--smp {}", cfg.harts), cfg.harts)?;
        check_ram("RAM size", cfg.ram_size)?;
        // No file may serve two jobs (a log over a disk, one socket twice).
        crate::hostpaths::check(&crate::hostpaths::machine_paths(cfg))?;
        // virtio slots and backends first: a bad --drive fails fast.
        let virtio_slots = cfg.virtio.slots(&VIRT)?;
        let virtio_devs = cfg.virtio.build_devices()?;
        let ram = Arc::new(GuestRam::new(RAM_BASE, cfg.ram_size).map_err(Error::Board)?);

        // swtpm next: a missing or failing swtpm fails fast too.
        let mut swtpm = cfg.tpm.as_ref().map(crate::tpm::Swtpm::start).transpose()?;

        // ---- images ----
        let layout = if !boot {
            Layout::default()
        } else {
            let boot_cfg = boot_config(cfg, &virtio_slots);
            match &mut swtpm {
                Some(tpm) => {
                    // Measured boot: every measurement is in the PCRs before
                    // the first instruction.
                    let (layout, measurements) = crate::boot::load_measured(&*ram, &boot_cfg)?;
                    tpm.start_up_and_measure(&measurements)?;
                    layout
                }
                None => crate::boot::load(&*ram, &boot_cfg)?,
            }
        };
        let entry = layout.entry;
        let dtb_slot = layout.dtb;

        // ---- devices ----
        let time = cfg.clock.timebase();
        let irqs: Vec<Arc<HartIrqs>> = (0..cfg.harts).map(|_| HartIrqs::new()).collect();
        let line = |h: usize, bit: u32| -> Arc<dyn IrqLine> { Arc::new(HartIrqBit { irqs: irqs[h].clone(), bit }) };
        let console = ConsoleOut::new(
            cfg.console_stdout,
            match &cfg.serial_log {
                Some(p) => Some(crate::hostpaths::open_serial_log(p)?),
                None => None,
            },
        );
        let out = console.clone();
        let d = VIRT
            .build(VirtWiring {
                plic_contexts: (0..cfg.harts as usize).flat_map(|h| [line(h, mip::MEIP), line(h, mip::SEIP)]).collect(),
                clint: Some((
                    time.clone(),
                    (0..cfg.harts as usize)
                        .map(|h| AclintHartLines { msip: line(h, mip::MSIP), mtip: line(h, mip::MTIP) })
                        .collect(),
                )),
                console: Box::new(move |b| lock(&out).push(b)),
                clock: match cfg.clock {
                    ClockMode::Host => host_clock(),
                    // Deterministic clocks: the wall clock starts at the
                    // host's and moves with guest time, so a run (and a
                    // restored snapshot) reads the same dates at the same
                    // instructions (docs/snapshot.md).
                    ClockMode::Virtual | ClockMode::Paced => guest_time_clock(time.clone()),
                },
            })
            .map_err(Error::Board)?;
        let (mut devices, plic, uart, rtc, power) = (d.bus, d.plic, d.uart, d.rtc, d.power);
        let aclint = d.clint.expect("the bare board has a CLINT");
        // The IOMMU first: with one, each virtio device reaches RAM through
        // it with its own device ID, and is offered VIRTIO_F_ACCESS_PLATFORM.
        let iommu = match &cfg.iommu {
            Some(_) => {
                let lines = VIRT.iommu_irqs().map(|irq| source_line(&plic, irq)).collect();
                let i = Iommu::shared(ram.clone(), lines);
                devices
                    .add(VIRT.iommu.base, VIRT.iommu.size, "iommu", Box::new(SharedMmio(i.clone())))
                    .map_err(Error::Board)?;
                Some(i)
            }
            None => None,
        };
        let stray = cfg.iommu.as_ref().and_then(|s| s.stray);
        let mut stray_mem = None;
        let mut dma = |base: u64| -> Arc<dyn strata_memory::GuestMemory> {
            match (&iommu, VIRT.virtio_device_id(base)) {
                (Some(i), Some(did)) => {
                    let m = Arc::new(DmaMemory::new(i.clone(), ram.clone(), did));
                    if let Some(s) = stray.filter(|s| VIRT.virtio_slot(s.slot).map(|(b, _)| b) == Some(base)) {
                        m.stray_write_after(s.after_writes, s.iova, s.did);
                        stray_mem = Some(m.clone());
                    }
                    m
                }
                _ => ram.clone(),
            }
        };
        let virtio = crate::virtio::attach(
            virtio_devs,
            &virtio_slots,
            &mut dma,
            iommu.is_some(),
            &plic,
            &mut |base, size, dev| devices.add(base, size, "virtio-mmio", dev),
        )?;
        if let Some(tpm) = &mut swtpm {
            let tis = strata_devices::tpm_tis::TpmTis::new(Box::new(tpm.backend()?));
            devices.add(VIRT.tpm.base, VIRT.tpm.size, "tpm", Box::new(tis)).map_err(Error::Board)?;
        }

        // ---- harts ----
        let harts: Vec<Hart> = (0..cfg.harts)
            .map(|h| {
                let mut hart = Hart::new(h as u64, ram.clone(), irqs[h as usize].clone());
                // Without executable memory (or off x86-64) the hart
                // interprets, which gives the same results.
                hart.set_jit(cfg.jit);
                hart.set_extensions(cfg.extensions);
                hart.reset(entry);
                hart.x[10] = h as u64; // a0: hart id
                hart.x[11] = dtb_slot; // a1: device tree
                if let Some(info) = layout.fw_dynamic_info {
                    hart.x[12] = info; // a2: fw_dynamic_info
                }
                hart
            })
            .collect();

        let bus = BoardBus { devices: Arc::new(Mutex::new(devices)), time: time.clone() };
        let host = Arc::new(BoardHost {
            bus: bus.clone(),
            aclint: aclint.clone(),
            power: power.clone(),
            stuck: Mutex::new(None),
        });
        let path = |p: &std::path::Path| p.display().to_string();
        let info = serde_json::json!({
            "machine": "strata machine",
            "kernel": path(&cfg.kernel),
            "initrd": cfg.initrd.as_deref().map(path),
            "bios": cfg.bios.as_deref().map(path),
            "append": cfg.append,
            "jit": cfg.jit,
            "isa": cfg.extensions.names(),
            "virtio_devices": virtio.len(),
            // Where the boot images landed (guest-physical, end exclusive).
            "kernel_range": [format!("{:#x}", layout.kernel.0), format!("{:#x}", layout.kernel.1)],
            "initrd_range": layout.initrd.map(|(a, b)| [format!("{a:#x}"), format!("{b:#x}")]),
            "dtb": format!("{:#x}", layout.dtb),
        });
        let saved = SavedMachine::of(cfg);
        let board = BareBoard {
            bus,
            aclint,
            rtc,
            uart,
            power,
            request: None,
            stuck: None,
            iommu,
            stray_mem,
            host,
            console,
            layout,
            info,
            debug: None,
            plic,
            saved,
            swtpm,
        };
        Runner::from_parts(ram, harts, board, time, cfg.clock, virtio, cfg.console_stdin)
    }

    /// Stops swtpm and removes its private directory (the CLI forgets the
    /// machine at exit instead of dropping it).
    pub fn stop_tpm(&mut self) {
        if let Some(mut t) = self.work.swtpm.take() {
            t.stop();
        }
    }

    /// Where the boot images landed.
    pub fn layout(&self) -> Layout {
        self.work.layout
    }

    /// Keeps a copy of everything the guest prints (for tests).
    pub fn capture_console(&mut self) {
        lock(&self.work.console).capture = Some(Vec::new());
    }

    pub fn console_output(&self) -> Vec<u8> {
        lock(&self.work.console).capture.clone().unwrap_or_default()
    }
}

/// The IOMMU's `--stats` lines: totals, then one line per device ID.
fn iommu_stats(i: &Mutex<Iommu>) -> String {
    let (per_device, records, lost, commands) = strata_devices::iommu::stats_of(i);
    let mut s = format!("strata: iommu: {commands} commands, {records} fault records, {lost} faults not recorded\n");
    for (did, d) in per_device {
        let lookups = d.hits + d.misses;
        let rate = if lookups == 0 { 0.0 } else { 100.0 * d.hits as f64 / lookups as f64 };
        s += &format!(
            "strata: iommu device {did}: direct {} iotlb hits {} misses {} ({rate:.1}% hits) invalidations {} faults {}\n",
            d.direct, d.hits, d.misses, d.invalidations, d.faults
        );
    }
    s
}

//! The `virt`-compatible board: RAM, harts, devices, boot hand-off and the
//! run loop.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_devices::aclint::{Aclint, AclintHartLines, Timebase, CLINT_MMIO_SIZE};
use strata_devices::bus::Bus as DeviceBus;
use strata_devices::plic::{source_line, Plic, PLIC_MMIO_SIZE};
use strata_devices::rtc::{host_clock, GoldfishRtc, RTC_MMIO_SIZE};
use strata_devices::syscon::{PowerLatch, PowerRequest, Syscon, SYSCON_MMIO_SIZE};
use strata_devices::uart::{Uart, UART_MMIO_SIZE};
use strata_devices::{mip, HartIrqBit, HartIrqs, IrqLine, SharedMmio};
use strata_hart::{Hart, RunExit};
use strata_memory::GuestRam;

use crate::console::{self, ConsoleOut, Input};
use crate::fdt::{self, FdtConfig};
use crate::loader::LoadError;

pub const RAM_BASE: u64 = 0x8000_0000;
/// The timebase the device tree advertises (as QEMU's `virt` does).
pub const TIMEBASE_HZ: u64 = 10_000_000;
/// Virtual time: instructions per `mtime` tick, i.e. a nominal 100 MIPS hart
/// at the 10 MHz timebase.
pub const INSNS_PER_TICK: u64 = 10;
/// Instructions a hart runs before the loop turns to the next hart and to
/// the devices.
const CHUNK: u64 = 4096;

/// The extensions Strata implements and tests; the device tree advertises
/// exactly these.
pub const ISA_BASE: &str = "rv64imafdch";
pub const ISA_EXTENSIONS: &[&str] = &["i", "m", "a", "f", "d", "c", "h", "zicsr", "zifencei", "zicntr"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// `mtime` advances with retired instructions; an idle machine jumps to
    /// its next timer deadline at once. Deterministic and fast.
    Virtual,
    /// As `Virtual`, but an idle machine waits in real time for its next
    /// deadline, so guest sleeps last as long as the user expects.
    Paced,
}

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
        }
    }
}

/// The part of the board the harts reach through `strata_hart::Bus`.
struct Board {
    devices: DeviceBus,
    time: Arc<Timebase>,
}

impl strata_hart::Bus for Board {
    #[inline]
    fn mmio_read(&mut self, pa: u64, size: u8) -> Option<u64> {
        self.devices.read(pa, size)
    }
    #[inline]
    fn mmio_write(&mut self, pa: u64, size: u8, value: u64) -> bool {
        self.devices.write(pa, size, value)
    }
    #[inline]
    fn mtime(&self) -> u64 {
        self.time.now()
    }
}

pub struct Machine {
    pub ram: Arc<GuestRam>,
    pub harts: Vec<Hart>,
    board: Board,
    aclint: Arc<Mutex<Aclint>>,
    rtc: Arc<Mutex<GoldfishRtc>>,
    uart: Arc<Mutex<Uart>>,
    power: Arc<PowerLatch>,
    /// The virtio-mmio transports, in slot order.
    pub virtio: Vec<Arc<Mutex<strata_devices::virtio::VirtioMmio>>>,
    virtio_poll_turn: u32,
    console: Arc<Mutex<ConsoleOut>>,
    input: Option<Receiver<Input>>,
    clock: ClockMode,
    /// Where the boot images landed (for `--stats` and tests).
    pub layout: Layout,
    started: Option<Instant>,
    elapsed: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Layout {
    pub entry: u64,
    pub kernel: (u64, u64),
    pub initrd: Option<(u64, u64)>,
    pub dtb: u64,
    pub fw_dynamic_info: Option<u64>,
}

/// Locks `m`, also after a panic elsewhere poisoned it (device state stays
/// usable: every device keeps its own invariants per access).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The TLB counters `--stats` prints for a hart, on both machines.
pub(crate) fn tlb_counts(h: &Hart) -> String {
    let t = h.tlb_stats();
    format!(
        "tlb misses fetch {} load {} store {} fills {} flushes {} dropped {} fence scans {}",
        t.misses[0], t.misses[1], t.misses[2], t.fills, t.flushes, t.dropped, t.fence_scans
    )
}

/// How long an idle machine with paced time waits for a deadline `delta`
/// ticks after guest time `raw` (ticks), so that guest time does not run
/// ahead of host time since `wall_start`; at most 50 ms at a time.
pub(crate) fn paced_wait(raw: u64, delta: u64, wall_start: Instant) -> Duration {
    let ns = |ticks: u64| (ticks as u128 * 1_000_000_000 / TIMEBASE_HZ as u128) as u64;
    let host_ns = wall_start.elapsed().as_nanos() as u64;
    let ahead = ns(raw).saturating_add(ns(delta)).saturating_sub(host_ns);
    Duration::from_nanos(ahead.min(50_000_000))
}

impl Machine {
    pub fn new(cfg: &MachineConfig) -> Result<Machine, LoadError> {
        if cfg.harts == 0 || cfg.harts > 8 {
            return Err(LoadError(format!("--smp {}: Strata supports 1 to 8 harts", cfg.harts)));
        }
        // The CLI checks -m as the user wrote it (`size::parse_ram_size`);
        // this is for everyone else.
        crate::size::check_ram(cfg.ram_size)
            .map_err(|e| LoadError(format!("RAM size {}: {e}", crate::size::human(cfg.ram_size))))?;
        // virtio slots and backends first: a bad --drive fails fast.
        let virtio_slots = cfg.virtio.slots().map_err(LoadError)?;
        let virtio_devs = cfg.virtio.build_devices().map_err(LoadError)?;
        let ram = Arc::new(GuestRam::new(RAM_BASE, cfg.ram_size).map_err(LoadError)?);

        // ---- images ----
        let layout = crate::boot::load(
            &*ram,
            &crate::boot::BootConfig {
                bios: cfg.bios.as_deref(),
                kernel: &cfg.kernel,
                initrd: cfg.initrd.as_deref(),
                append: &cfg.append,
                sbi_provided: false,
                fdt: FdtConfig {
                    harts: cfg.harts,
                    isa_base: ISA_BASE.into(),
                    isa_extensions: ISA_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
                    mmu_type: "riscv,sv48".into(),
                    ram_base: RAM_BASE,
                    ram_size: cfg.ram_size,
                    bootargs: String::new(),
                    initrd: None,
                    timebase_frequency: TIMEBASE_HZ as u32,
                    virtio_mmio: virtio_slots.clone(),
                    clint: true,
                },
            },
        )?;
        let entry = layout.entry;
        let dtb_slot = layout.dtb;

        // ---- devices ----
        let time = Timebase::new();
        let irqs: Vec<Arc<HartIrqs>> = (0..cfg.harts).map(|_| HartIrqs::new()).collect();
        let line = |h: usize, bit: u32| -> Arc<dyn IrqLine> { Arc::new(HartIrqBit { irqs: irqs[h].clone(), bit }) };
        let aclint = Arc::new(Mutex::new(Aclint::new(
            time.clone(),
            (0..cfg.harts as usize)
                .map(|h| AclintHartLines { msip: line(h, mip::MSIP), mtip: line(h, mip::MTIP) })
                .collect(),
        )));
        let plic_outputs = (0..cfg.harts as usize).flat_map(|h| [line(h, mip::MEIP), line(h, mip::SEIP)]).collect();
        let plic = Plic::shared(plic_outputs);
        let console = ConsoleOut::new(
            cfg.console_stdout,
            match &cfg.serial_log {
                Some(p) => Some(
                    std::fs::File::create(p)
                        .map_err(|e| LoadError(format!("cannot create serial log {}: {e}", p.display())))?,
                ),
                None => None,
            },
        );
        let out = console.clone();
        let uart =
            Arc::new(Mutex::new(Uart::new(Box::new(move |b| lock(&out).push(b)), source_line(&plic, fdt::UART_IRQ))));
        let rtc = Arc::new(Mutex::new(GoldfishRtc::new(host_clock(), source_line(&plic, fdt::RTC_IRQ))));
        let power = PowerLatch::new();
        let mut devices = DeviceBus::new();
        let add = |d: &mut DeviceBus, base, size, name, dev| d.add(base, size, name, dev).map_err(LoadError);
        add(&mut devices, fdt::SYSCON_BASE, SYSCON_MMIO_SIZE, "syscon", Box::new(Syscon::new(power.clone())))?;
        add(&mut devices, fdt::RTC_BASE, RTC_MMIO_SIZE, "rtc", Box::new(SharedMmio(rtc.clone())))?;
        add(&mut devices, fdt::CLINT_BASE, CLINT_MMIO_SIZE, "clint", Box::new(SharedMmio(aclint.clone())))?;
        add(&mut devices, fdt::PLIC_BASE, PLIC_MMIO_SIZE, "plic", Box::new(SharedMmio(plic.clone())))?;
        add(&mut devices, fdt::UART_BASE, UART_MMIO_SIZE, "uart", Box::new(SharedMmio(uart.clone())))?;
        let virtio = crate::virtio::attach(virtio_devs, &virtio_slots, ram.clone(), &plic, &mut |base, size, dev| {
            devices.add(base, size, "virtio-mmio", dev)
        })
        .map_err(LoadError)?;

        // ---- harts ----
        let harts = (0..cfg.harts)
            .map(|h| {
                let mut hart = Hart::new(h as u64, ram.clone(), irqs[h as usize].clone());
                // Without executable memory (or off x86-64) the hart
                // interprets, which gives the same results.
                hart.set_jit(cfg.jit);
                hart.reset(entry);
                hart.x[10] = h as u64; // a0: hart id
                hart.x[11] = dtb_slot; // a1: device tree
                if let Some(info) = layout.fw_dynamic_info {
                    hart.x[12] = info; // a2: fw_dynamic_info
                }
                hart
            })
            .collect();

        let input = cfg.console_stdin.then(console::spawn_stdin_reader);
        Ok(Machine {
            ram,
            harts,
            board: Board { devices, time },
            aclint,
            rtc,
            uart,
            power,
            virtio,
            virtio_poll_turn: 0,
            console,
            input,
            clock: cfg.clock,
            layout,
            started: None,
            elapsed: Duration::ZERO,
        })
    }

    /// Keeps a copy of everything the guest prints (for tests).
    pub fn capture_console(&mut self) {
        lock(&self.console).capture = Some(Vec::new());
    }

    pub fn console_output(&self) -> Vec<u8> {
        lock(&self.console).capture.clone().unwrap_or_default()
    }

    pub fn mtime(&self) -> u64 {
        self.board.time.now()
    }

    /// Moves time forward by `ticks` and lets the timer devices react.
    fn advance_time(&mut self, ticks: u64) {
        if ticks > 0 {
            self.board.time.advance(ticks);
        }
        lock(&self.aclint).update();
        lock(&self.rtc).update();
    }

    /// Feeds pending console input to the UART. Returns `Some` when the
    /// user asked to quit.
    fn pump_input(&mut self) -> Option<ExitReason> {
        let rx = self.input.as_ref()?;
        let mut uart = lock(&self.uart);
        while uart.rx_space() > 0 {
            match console::try_input(rx) {
                Some(Input::Byte(b)) => uart.push_input(b),
                Some(Input::Quit) => return Some(ExitReason::Quit),
                // One console: nothing to switch to.
                Some(Input::NextConsole) => {}
                Some(Input::Eof) => {
                    drop(uart);
                    self.input = None;
                    return None;
                }
                None => break,
            }
        }
        None
    }

    /// Runs until the guest powers off or resets, or nothing can happen.
    pub fn run(&mut self) -> ExitReason {
        let start = Instant::now();
        self.started = Some(start);
        let wall_start = start;
        let mut tick_rem = 0u64;
        // Debug aid: STRATA_PC_SAMPLES=FILE writes one sampled guest pc per
        // hart chunk ("<pc hex> <V>"), for symbolizing against the guest's
        // kallsyms; written as it goes, so a hung run leaves its samples.
        let mut samples = std::env::var_os("STRATA_PC_SAMPLES")
            .and_then(|p| std::fs::File::create(p).ok())
            .map(std::io::BufWriter::new);
        let reason = loop {
            let mut used_max = 0;
            let mut all_idle = true;
            let mut stuck = None;
            for h in self.harts.iter_mut() {
                if let Some(s) = &mut samples {
                    use std::io::Write as _;
                    let _ = writeln!(s, "{:x} {}", h.pc, h.virt as u8);
                }
                let (used, exit) = h.run(&mut self.board, CHUNK);
                used_max = used_max.max(used);
                if exit == RunExit::Budget {
                    all_idle = false;
                }
                stuck = stuck.or(h.no_progress().copied());
            }
            if let Some(s) = stuck {
                break ExitReason::NoProgress(s);
            }
            tick_rem += used_max;
            let ticks = tick_rem / INSNS_PER_TICK;
            tick_rem %= INSNS_PER_TICK;
            self.advance_time(ticks);
            if let Some(req) = self.power.take_request() {
                break match req {
                    PowerRequest::PowerOff => ExitReason::PowerOff,
                    PowerRequest::Reset => ExitReason::Reset,
                    PowerRequest::Fail(code) => ExitReason::GuestFailure(code),
                };
            }
            if let Some(r) = self.pump_input() {
                break r;
            }
            self.poll_virtio_sometimes();
            lock(&self.console).flush();
            if all_idle && !self.harts.iter().any(|h| h.mip() & h.csr.mie != 0) {
                if let Some(r) = self.idle(wall_start) {
                    break r;
                }
            }
        };
        lock(&self.console).flush();
        self.elapsed = start.elapsed();
        drop(samples);
        reason
    }

    /// Every hart waits in WFI: move time to the next event.
    fn idle(&mut self, wall_start: Instant) -> Option<ExitReason> {
        let now = self.board.time.now();
        let rtc_deadline = lock(&self.rtc)
            .alarm_in_ns()
            .map(|ns| now.saturating_add(ns.saturating_mul(TIMEBASE_HZ) / 1_000_000_000 + 1));
        let deadline = match (lock(&self.aclint).next_deadline(), rtc_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // virtio devices with host input (net, vsock) can wake the machine.
        if self.poll_virtio() {
            return None;
        }
        let Some(deadline) = deadline else {
            if self.virtio_polled() {
                std::thread::sleep(Duration::from_millis(1));
                return None;
            }
            // Only console input can wake the machine now.
            let Some(rx) = &self.input else { return Some(ExitReason::Hung) };
            match rx.recv() {
                Ok(Input::Byte(b)) => lock(&self.uart).push_input(b),
                Ok(Input::Quit) => return Some(ExitReason::Quit),
                Ok(Input::NextConsole) => {}
                Ok(Input::Eof) | Err(_) => {
                    self.input = None;
                    return Some(ExitReason::Hung);
                }
            }
            return None;
        };
        let delta = deadline.saturating_sub(now);
        if self.clock == ClockMode::Paced {
            // Do not let guest time run ahead of host time while idle.
            let mut wait = paced_wait(self.board.time.raw(), delta, wall_start);
            if self.virtio_polled() {
                // Look at virtio host input at least every millisecond.
                wait = wait.min(Duration::from_millis(1));
            }
            if let Some(rx) = &self.input {
                match rx.recv_timeout(wait) {
                    Ok(Input::Byte(b)) => {
                        lock(&self.uart).push_input(b);
                        return None;
                    }
                    Ok(Input::Quit) => return Some(ExitReason::Quit),
                    Ok(Input::Eof) => self.input = None,
                    Ok(Input::NextConsole) | Err(_) => {}
                }
            } else {
                std::thread::sleep(wait);
            }
            if self.poll_virtio() {
                return None;
            }
        }
        self.advance_time(delta);
        None
    }

    /// Is any virtio device waiting for host-side input (net, vsock)?
    fn virtio_polled(&self) -> bool {
        crate::virtio::any_polled(&self.virtio)
    }

    /// Polls the virtio devices with host input; true if one delivered
    /// something to the guest.
    fn poll_virtio(&mut self) -> bool {
        crate::virtio::poll_all(&self.virtio)
    }

    /// The run loop's share: every 16th turn (about 64K instructions a
    /// hart), so idle devices cost little.
    fn poll_virtio_sometimes(&mut self) {
        self.virtio_poll_turn = self.virtio_poll_turn.wrapping_add(1);
        if self.virtio_poll_turn % 16 == 0 && self.virtio_polled() {
            self.poll_virtio();
        }
    }

    /// A human-readable report of the run's counters (`--stats`).
    pub fn stats_report(&self) -> String {
        let mut s = String::new();
        let secs = self.elapsed.as_secs_f64();
        let steps: u64 = self.harts.iter().map(|h| h.stats.steps).sum();
        let retired: u64 = self.harts.iter().map(|h| h.instret).sum();
        let _ = writeln!(
            s,
            "strata: wall time {secs:.3} s, {retired} instructions retired, {:.1} MIPS",
            retired as f64 / secs.max(1e-9) / 1e6
        );
        let _ = writeln!(
            s,
            "strata: guest time {:.3} s (mtime {})",
            self.board.time.raw() as f64 / TIMEBASE_HZ as f64,
            self.mtime()
        );
        for h in &self.harts {
            let st = &h.stats;
            let _ = writeln!(s, "hart {}: retired {} steps {} | {}", h.hartid, h.instret, st.steps, tlb_counts(h));
            let by_vmid: Vec<String> = h
                .tlb_vmid_stats()
                .iter()
                .map(|((v, vmid), c)| {
                    if *v {
                        format!("V=1 vmid {vmid}: {} hits {} misses", c.hits, c.misses)
                    } else {
                        format!("V=0: {} hits {} misses", c.hits, c.misses)
                    }
                })
                .collect();
            let _ = writeln!(s, "hart {}: tlb by address space [{}]", h.hartid, by_vmid.join(", "));
            let avg2 = if st.walks2 > 0 { st.walk2_refs as f64 / st.walks2 as f64 } else { 0.0 };
            let _ = writeln!(
                s,
                "hart {}: walks single-stage {} (PTE reads {}) two-stage {} (PTE reads {}, {avg2:.1} per walk, max {}) A/D writes {}",
                h.hartid, st.walks, st.walk_refs, st.walks2, st.walk2_refs, st.walk2_max_refs, st.walk_ad_writes
            );
            let f = st.fences;
            let _ = writeln!(
                s,
                "hart {}: fences sfence.vma {} sfence.vma(V=1) {} hfence.vvma {} hfence.gvma {} | traps to M {} HS {} VS {}",
                h.hartid, f[0], f[1], f[2], f[3], st.traps_to[0], st.traps_to[1], st.traps_to[2]
            );
            let c = h.code_stats();
            let _ = write!(
                s,
                "hart {}: code pages entered {} filled {} decodes {}",
                h.hartid, c.page_entries, c.page_fills, c.decodes
            );
            match h.jit_stats() {
                Some(j) => {
                    let _ = writeln!(
                        s,
                        " | jit blocks {} insns {} ({} interpreted) bytes {} flushes {} entries {} links {}",
                        j.blocks, j.insns, j.interp_insns, j.bytes, j.flushes, j.runs, j.links
                    );
                }
                None => {
                    let _ = writeln!(s, " | jit off");
                }
            }
            let exc: Vec<String> =
                st.exceptions.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| format!("{c}:{n}")).collect();
            let int: Vec<String> =
                st.interrupts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| format!("{c}:{n}")).collect();
            let _ = writeln!(
                s,
                "hart {}: exceptions by cause [{}] interrupts by cause [{}]",
                h.hartid,
                exc.join(" "),
                int.join(" ")
            );
        }
        let _ = steps;
        s
    }
}

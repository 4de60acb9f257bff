//! The run loop under both machines.
//!
//! A [`Runner`] owns what every Strata machine has: RAM, the harts, guest
//! time ([`Timebase`], with the [`ClockMode`] that moves it), the console
//! input, the virtio transports with host-side input, the stop request
//! (signals), PC sampling and the statistics. What differs between the
//! bare board (`strata machine`) and the hypervised machine (`strata run`)
//! is a [`Workload`]: how one slice runs on the harts, which timers and
//! alarms are armed, which devices follow time, where console input goes,
//! and when the guest has ended.
//!
//! One round of the loop ([`Runner::step`]):
//!
//! | step | what |
//! | --- | --- |
//! | 1 | a stop request (signal) ends the run; a snapshot that is due is taken ([`snapshot`]) |
//! | 1a | control API requests are answered; paused, the round ends in a wait ([`control`]) |
//! | 2 | [`Workload::run_slice`]: every hart runs up to [`CHUNK`] instruction slots |
//! | 3 | guest time moves: [`ClockMode::Virtual`]/[`Paced`](ClockMode::Paced) by the busiest hart's slots, [`INSNS_PER_TICK`] to a tick, the remainder carried to the next round; [`Host`](ClockMode::Host) by itself |
//! | 4 | [`Workload::update_devices`]: timer lines and RTC alarms follow time |
//! | 5 | [`Workload::ended`] ends the run |
//! | 6 | console input goes to the workload's focused console (a byte with no room waits, never dropped) |
//! | 7 | every 16th round, virtio devices with host input are polled; consoles are flushed |
//! | 8 | if no hart can run, the idle wait (below) |
//!
//! The idle wait: the next event is the earliest armed timer or RTC alarm.
//! `Virtual` jumps time to it at once. `Paced` waits until host time has
//! caught up with guest time, then moves guest time no further than host
//! time. `Host` sleeps until the host clock reaches it. Every wait is a
//! `poll(2)` on a wake-up socket that console input and stop requests write
//! to, and on the host descriptors of the virtio devices (TAP, vsock and
//! console sockets), so it ends at once on input, a signal or host data for
//! a device. A device that cannot name all its host work in descriptors, or
//! whose host data waits for the guest's buffers, is polled every
//! [`VIRTIO_POLL`] instead until the guest runs again. With no event
//! armed, no input and no such device, nothing can ever happen: the run
//! ends as hung.
//!
//! Invariants: guest time never goes backwards; in `Virtual` mode it is a
//! function of the instructions run (the sum over rounds of the busiest
//! hart's slots, divided by [`INSNS_PER_TICK`] without loss) and of the
//! deadlines idle jumps reach, so the same guest gives the same time on
//! both machines; limits on harts and memory are checked only here
//! ([`check_harts`], [`check_ram`]).
//!
//! ## What comes next plugs in here
//!
//! - **One host thread per hart** (issue 13, [`parallel`]): with
//!   [`Runner::set_threads`] above 1 and a workload that offers a
//!   [`HartHost`] (the bare board and the hypervisor both do), `run`
//!   gives the harts to hart threads and this loop's steps 1 and 4–7 become
//!   the *service* loop on the calling thread. `Host` time needs no
//!   coordination between threads (every hart reads the host clock);
//!   `Virtual` and `Paced` time stay on one thread, deterministic. Under
//!   the hypervisor each physical hart's thread runs its share of the
//!   scheduler ([`HartHost::turn`], `strata_hypervisor::smp`), with
//!   cross-hart operations (unloading a vCPU elsewhere, invalidation by
//!   physical address) as requests the target hart's thread serves.
//! - **Snapshots** (issue 15, [`snapshot`], docs/snapshot.md): a round
//!   boundary is the quiescent point — no hart is inside an instruction,
//!   every device has seen the time, no console byte is half delivered (it
//!   is in `held`). A snapshot takes the runner's state (RAM, harts,
//!   [`Timebase::raw`] and the tick remainder, the clock mode, the virtio
//!   transports) and asks the workload for its own
//!   ([`Workload::save`]/[`Workload::restore`]); `Ctrl-A s` and SIGUSR1
//!   are a second kind of request beside the stop request. Live migration
//!   would send the same records over a socket, round after round.

use std::fmt::Write as _;
use std::io::{BufWriter, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_devices::aclint::Timebase;
use strata_devices::board::{MAX_HARTS, TIMEBASE_HZ};
use strata_devices::virtio::VirtioMmio;
use strata_hart::Hart;
use strata_memory::GuestRam;

use crate::console::{self, Input, InputSender, Waker};
use crate::error::Error;

pub mod control;
pub mod parallel;
pub mod stats;
pub use control::MemAccess;
pub use parallel::{HartHost, ThreadStats, Turn, SERVICE_TICK};
pub mod snapshot;
pub use snapshot::{SnapshotInfo, SnapshotPlan, WorkloadSave};

/// Instructions a hart runs before the loop turns to the next hart and to
/// the devices.
pub const CHUNK: u64 = 4096;
/// Virtual time: instructions per `mtime` tick, i.e. a nominal 100 MIPS hart
/// at the 10 MHz timebase.
pub const INSNS_PER_TICK: u64 = 10;
/// Longest idle wait while a virtio device with host input has work that
/// no descriptor announces (see [`VirtioDevice::host_fds`]).
///
/// [`VirtioDevice::host_fds`]: strata_devices::virtio::VirtioDevice::host_fds
pub const VIRTIO_POLL: Duration = Duration::from_millis(1);
/// Longest single idle wait of a paced clock.
const PACED_MAX_WAIT: Duration = Duration::from_millis(50);

/// How guest time (`mtime`, the `time` CSR) moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockMode {
    /// Guest time follows the host's monotonic clock at the board's
    /// timebase frequency: timers fire at the right host time, `time` is
    /// fine-grained, idle harts sleep until their next timer. The default.
    Host,
    /// `mtime` advances with retired instructions ([`INSNS_PER_TICK`]); an
    /// idle machine jumps to its next timer deadline at once. Deterministic
    /// and fast: what tests ask for.
    Virtual,
    /// As `Virtual`, but an idle machine waits in real time for its next
    /// deadline, and guest time never runs ahead of host time while idle.
    Paced,
}

impl ClockMode {
    /// The timebase this mode drives.
    pub fn timebase(self) -> Arc<Timebase> {
        match self {
            ClockMode::Host => Timebase::host(TIMEBASE_HZ),
            ClockMode::Virtual | ClockMode::Paced => Timebase::new(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Host => "host",
            ClockMode::Virtual => "virtual",
            ClockMode::Paced => "paced",
        }
    }
}

/// Checks a hart or vCPU count: `what` names it in the message ("--smp 9",
/// "VM a: 9 vCPUs").
pub fn check_harts(what: &str, n: u32) -> Result<(), Error> {
    if n == 0 || n > MAX_HARTS {
        return Err(Error::Harts { what: what.to_string() });
    }
    Ok(())
}

/// Checks a number of hart threads against the clock: more than one needs
/// [`ClockMode::Host`] (see [`Runner::set_threads`]).
pub fn check_threads(n: usize, clock: ClockMode) -> Result<(), Error> {
    if n > 1 && clock != ClockMode::Host {
        return Err(Error::ThreadsNeedHostClock { threads: n, clock: clock.name() });
    }
    Ok(())
}

/// Checks a RAM size for a machine or VM (`what` names it, e.g. "-m"):
/// the limits of [`crate::size::check_ram`] (the one place they are
/// checked), as an [`Error::Ram`].
pub fn check_ram(what: &str, bytes: u64) -> Result<(), Error> {
    crate::size::check_ram(bytes).map_err(|source| Error::Ram { what: what.to_string(), bytes, source })
}

/// Checks that `bytes` of machine memory fit in the host's RAM.
pub fn check_host_ram(what: &str, bytes: u64) -> Result<(), Error> {
    match crate::size::host_ram_bytes() {
        Some(host) if bytes > host => Err(Error::HostRam { what: what.to_string(), bytes, host }),
        _ => Ok(()),
    }
}

/// Locks `m`, also after a panic elsewhere poisoned it (device state stays
/// usable: every device keeps its own invariants per access).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one slice did.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// Instruction slots each hart used.
    pub used: Vec<u64>,
    /// No hart can run until an interrupt arrives.
    pub idle: bool,
}

/// Why a run ended, as the runner sees it; the workload turns it into its
/// own outcome ([`Workload::outcome`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The guest ended ([`Workload::ended`]).
    Finished,
    /// The user typed `Ctrl-A x`.
    Quit,
    /// Every hart waits for an interrupt that nothing can raise.
    Hung,
    /// A stop request: a signal (its number).
    Stopped(i32),
    /// A drive's host read or write failed and its policy is `stop`
    /// (`werror=stop`, `rerror=stop`): why.
    DiskStopped(String),
    /// [`Runner::run_rounds`] ran its rounds.
    Rounds,
}

/// One kind of machine on the runner: the bare board or the hypervisor.
pub trait Workload {
    /// What a run ends with (an exit reason, each VM's end, ...).
    type Outcome;
    /// Runs one slice: every hart for up to `budget` instruction slots.
    fn run_slice(&mut self, harts: &mut [Hart], time: &Arc<Timebase>, budget: u64) -> Slice;
    /// Lets the devices that follow guest time look at it (timer lines,
    /// RTC alarms).
    fn update_devices(&mut self);
    /// The guest time (`mtime`, as the guest sees it) of the earliest armed
    /// timer that could wake an idle machine. It may have passed already
    /// (then the loop does not wait).
    fn timer_deadline(&self) -> Option<u64>;
    /// The earliest RTC alarm, in nanoseconds from now.
    fn rtc_alarm_in_ns(&self) -> Option<u64>;
    /// Can a hart take an interrupt now that the devices have looked at the
    /// time ([`update_devices`](Self::update_devices) runs after the slice
    /// that found every hart idle)? Then the loop does not wait.
    fn wakeup_pending(&self, _harts: &[Hart]) -> bool {
        false
    }
    /// Has the guest ended (powered off, reset, failed; every VM)?
    fn ended(&mut self) -> bool;
    /// Gives `b` to the focused console; false if it has no room (the
    /// runner keeps the byte and offers it again).
    fn console_input(&mut self, b: u8) -> bool;
    /// `Ctrl-A c`: console input to the next console, if there are several.
    fn next_console(&mut self) {}
    /// Writes out what the guest printed; `end` at the end of the run.
    fn flush_consoles(&mut self, end: bool);
    /// The workload's own `--stats` lines (the runner prints time, speed
    /// and the harts' counters).
    fn stats(&self, out: &mut String);
    /// The outcome of a run that ended for `end`.
    fn outcome(&mut self, end: RunEnd) -> Self::Outcome;
    /// What hart threads need to run this workload's harts in parallel
    /// (`runner/parallel.rs`); `None`: the workload runs on one thread.
    fn hart_host(&self) -> Option<Arc<dyn HartHost>> {
        None
    }
    /// Control API (`runner/control.rs`): the workload's configuration in
    /// `GET /machine`.
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The hypervisor's VMs and counters (`strata run`); `None`: no VMs.
    fn hyp_stats(&self) -> Option<stats::HypSnapshot> {
        None
    }
    /// Control API: VM `vm`'s memory at its guest-physical `addr`.
    fn vm_memory(&mut self, _vm: &str, _addr: u64, _access: MemAccess<'_>) -> Result<(), strata_api::ApiError> {
        Err(strata_api::ApiError::not_found("strata machine has no VMs: /vms is for strata run"))
    }
    /// Control API: why the machine's own memory is closed to it (`None`:
    /// open).
    fn machine_memory_closed(&self) -> Option<&'static str> {
        None
    }
    /// Control API: creates and starts a VM (`strata run`); its snapshot.
    fn create_vm(&mut self, _spec: strata_api::VmCreate) -> Result<stats::VmSnapshot, strata_api::ApiError> {
        Err(strata_api::ApiError::not_found("strata machine has no VMs: /vms is for strata run"))
    }
    /// Control API: stops VM `vm`; its memory is scrubbed and freed when
    /// the hypervisor retires it, at the end of the next slice.
    fn delete_vm(&mut self, _vm: &str) -> Result<(), strata_api::ApiError> {
        Err(strata_api::ApiError::not_found("strata machine has no VMs: /vms is for strata run"))
    }
    /// A snapshot (`runner/snapshot.rs`): the machine's description and its
    /// devices' state, or why this workload cannot be saved.
    fn save(&mut self) -> Result<WorkloadSave, String> {
        Err("snapshots of this machine are not supported yet".into())
    }
    /// Restores what [`save`](Self::save) gave (the `state` part).
    fn restore(&mut self, _state: &[u8]) -> Result<(), String> {
        Err("snapshots of this machine are not supported yet".into())
    }
}

/// Asks a running machine to stop: from another thread, or from a signal
/// handler ([`StopHandle::install_signal_handlers`]). The run loop looks at
/// it every round and in its idle wait.
#[derive(Clone)]
pub struct StopHandle {
    /// The signal number, or 0.
    signal: Arc<AtomicUsize>,
    /// Set with `signal`: a second signal then ends the process at once.
    stopping: Arc<AtomicBool>,
    waker: Waker,
}

/// Signals that stop a machine cleanly (exit status 8).
pub const STOP_SIGNALS: [i32; 3] =
    [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP];

/// Exit status of a process stopped by a signal whose handler could not
/// finish (a second signal).
const SECOND_SIGNAL_STATUS: i32 = 8;

impl StopHandle {
    /// Stops the run at the next round, as if `signal` had arrived.
    pub fn stop(&self, signal: i32) {
        self.signal.store(signal as usize, Ordering::SeqCst);
        self.stopping.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Makes SIGTERM, SIGINT and SIGHUP stop the machine cleanly (the run
    /// ends with [`RunEnd::Stopped`]); a second one while it stops ends the
    /// process at once with status 8.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        use signal_hook::{flag, low_level::pipe};
        for sig in STOP_SIGNALS {
            // Registered first, so it sees the flag as the previous signal
            // left it: set means this is the second.
            flag::register_conditional_shutdown(sig, SECOND_SIGNAL_STATUS, self.stopping.clone())?;
            flag::register_usize(sig, self.signal.clone(), sig as usize)?;
            flag::register(sig, self.stopping.clone())?;
            pipe::register(sig, self.waker.try_clone_stream()?)?;
        }
        Ok(())
    }

    fn take(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// The name of a signal, e.g. "SIGTERM".
pub fn signal_name(sig: i32) -> String {
    signal_hook::low_level::signal_name(sig).map_or_else(|| format!("signal {sig}"), str::to_string)
}

/// The run loop and what it owns; `W` is the machine.
pub struct Runner<W: Workload> {
    pub ram: Arc<GuestRam>,
    pub harts: Vec<Hart>,
    /// The machine's workload (the bare board's devices, or the
    /// hypervisor and its VMs).
    pub work: W,
    /// The virtio transports with host-side input or state to shut down,
    /// in slot order (every VM's, under the hypervisor).
    pub virtio: Vec<Arc<Mutex<VirtioMmio>>>,
    time: Arc<Timebase>,
    clock: ClockMode,
    /// Instruction slots not yet turned into ticks (virtual and paced).
    tick_rem: u64,
    input: Option<Receiver<Input>>,
    /// Input taken from the channel that the focused console had no room
    /// for yet.
    held: Option<u8>,
    waker: Waker,
    wake_rx: UnixStream,
    stop: StopHandle,
    poll_turn: u32,
    /// STRATA_PC_SAMPLES: one line per hart and round.
    samples: Option<BufWriter<std::fs::File>>,
    started: Option<Instant>,
    elapsed: Duration,
    rounds: u64,
    /// The host time the machine spent in its idle wait.
    idle_wait: Duration,
    /// Idle rounds in a row whose next deadline had already passed.
    passed_deadlines: u32,
    /// Host threads to run the harts on (1: this thread, round-robin).
    threads: usize,
    /// The hart threads' counters from the last parallel run.
    thread_stats: Vec<ThreadStats>,
    /// The last idle wait ended because a virtio device's host descriptor
    /// was ready.
    virtio_woke: bool,
    /// ... and polling the devices then delivered nothing (the guest gave
    /// them no buffers yet): until the guest runs again, they are polled
    /// on a timer instead of waited on.
    virtio_stalled: bool,
    /// The control API: its queue, paused, stop asked (`runner/control.rs`).
    api: control::ApiState,
    /// Snapshot requests and where they go (`runner/snapshot.rs`).
    snap: snapshot::SnapshotControl,
}

impl<W: Workload> Runner<W> {
    /// A runner for `harts` over `ram`, with guest time `time` moved as
    /// `clock` says; console input from stdin if `stdin`.
    pub fn from_parts(
        ram: Arc<GuestRam>,
        harts: Vec<Hart>,
        work: W,
        time: Arc<Timebase>,
        clock: ClockMode,
        virtio: Vec<Arc<Mutex<VirtioMmio>>>,
        stdin: bool,
    ) -> Result<Self, Error> {
        let (waker, wake_rx) = Waker::pair().map_err(Error::Waker)?;
        let input = stdin.then(|| console::spawn_stdin_reader(waker.clone()));
        let stop = StopHandle {
            signal: Arc::new(AtomicUsize::new(0)),
            stopping: Arc::new(AtomicBool::new(false)),
            waker: waker.clone(),
        };
        // Debug aid: STRATA_PC_SAMPLES=FILE writes one sampled guest pc per
        // hart and round ("<pc hex> <V>"), for symbolizing against the
        // guest's kallsyms; written as it goes, so a hung run leaves its
        // samples.
        let samples =
            std::env::var_os("STRATA_PC_SAMPLES").and_then(|p| std::fs::File::create(p).ok()).map(BufWriter::new);
        Ok(Self {
            ram,
            harts,
            work,
            virtio,
            time,
            clock,
            tick_rem: 0,
            input,
            held: None,
            waker,
            wake_rx,
            stop,
            poll_turn: 0,
            samples,
            started: None,
            elapsed: Duration::ZERO,
            rounds: 0,
            idle_wait: Duration::ZERO,
            passed_deadlines: 0,
            threads: 1,
            thread_stats: Vec::new(),
            virtio_woke: false,
            virtio_stalled: false,
            api: control::ApiState::default(),
            snap: Default::default(),
        })
    }

    /// The handle that stops this machine (for signal handlers and other
    /// threads).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Takes console input from a channel instead of stdin (tests, and
    /// later a control API): what is sent wakes the machine.
    pub fn input_sender(&mut self) -> InputSender {
        let (tx, rx) = mpsc::channel();
        self.input = Some(rx);
        InputSender::new(tx, self.waker.clone())
    }

    /// The current `mtime` as the guest sees it.
    pub fn mtime(&self) -> u64 {
        self.time.now()
    }

    /// Guest time in ticks of the timebase since the machine started
    /// (without guest writes to `mtime`).
    pub fn guest_ticks(&self) -> u64 {
        self.time.raw()
    }

    pub fn clock(&self) -> ClockMode {
        self.clock
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The machine's timebase (shared with its devices and harts).
    pub fn timebase(&self) -> Arc<Timebase> {
        self.time.clone()
    }

    /// Runs until the guest ends, the user quits, a stop request comes, or
    /// nothing more can happen. With more than one thread
    /// ([`set_threads`](Self::set_threads)), the harts run in parallel.
    pub fn run(&mut self) -> W::Outcome {
        let threads = self.threads();
        match self.work.hart_host() {
            Some(host) if threads > 1 => {
                let start = *self.started.get_or_insert_with(Instant::now);
                let end = self.run_parallel(host, threads);
                self.work.flush_consoles(true);
                self.elapsed = start.elapsed();
                self.work.outcome(end)
            }
            _ => self.run_rounds(u64::MAX),
        }
    }

    /// Runs the harts on up to `n` host threads (one per hart at most).
    /// More than one needs the host clock: the virtual and paced clocks
    /// move with the instructions run, which only one thread keeps
    /// deterministic.
    pub fn set_threads(&mut self, n: usize) -> Result<(), Error> {
        check_threads(n, self.clock)?;
        self.threads = n.max(1);
        Ok(())
    }

    /// The host threads the harts run on: [`set_threads`](Self::set_threads)'s
    /// number, at most one per hart, and 1 for a workload that cannot run
    /// in parallel.
    pub fn threads(&self) -> usize {
        if self.work.hart_host().is_none() {
            return 1;
        }
        self.threads.min(self.harts.len()).max(1)
    }

    /// As [`run`](Self::run), for at most `rounds` rounds (tests bound a
    /// run with it).
    pub fn run_rounds(&mut self, rounds: u64) -> W::Outcome {
        self.started.get_or_insert_with(Instant::now);
        let mut n = 0;
        let end = loop {
            if n == rounds {
                break RunEnd::Rounds;
            }
            n += 1;
            if let Some(end) = self.round() {
                break end;
            }
        };
        self.finish(end)
    }

    /// One round, for a caller that runs the loop itself (the gdb stub,
    /// `debug.rs`): `Some` when the run would end; then
    /// [`finish`](Self::finish) gives its outcome.
    pub fn round_once(&mut self) -> Option<RunEnd> {
        self.started.get_or_insert_with(Instant::now);
        self.round()
    }

    /// Ends a run that ended for `end`: flushes the consoles and samples,
    /// and gives the workload's outcome.
    pub fn finish(&mut self, end: RunEnd) -> W::Outcome {
        let start = *self.started.get_or_insert_with(Instant::now);
        self.work.flush_consoles(true);
        if let Some(s) = &mut self.samples {
            let _ = s.flush();
        }
        self.elapsed = start.elapsed();
        self.work.outcome(end)
    }

    /// One round (see the module documentation); false when the run would
    /// end (the guest ended, or nothing more can happen).
    pub fn step(&mut self) -> bool {
        self.started.get_or_insert_with(Instant::now);
        self.round().is_none()
    }

    fn round(&mut self) -> Option<RunEnd> {
        if let Some(sig) = self.stop.take() {
            return Some(RunEnd::Stopped(sig));
        }
        if let Some(end) = self.snapshot_point() {
            return Some(end);
        }
        if let Some(end) = self.api_round() {
            return end;
        }
        self.rounds += 1;
        if let Some(s) = &mut self.samples {
            for h in &self.harts {
                let _ = writeln!(s, "{:x} {}", h.pc, h.virt as u8);
            }
        }
        let slice = self.work.run_slice(&mut self.harts, &self.time, CHUNK);
        let used = slice.used.iter().copied().max().unwrap_or(0);
        if self.clock != ClockMode::Host {
            self.tick_rem += used;
            self.time.advance(self.tick_rem / INSNS_PER_TICK);
            self.tick_rem %= INSNS_PER_TICK;
        }
        self.work.update_devices();
        if self.work.ended() {
            return Some(RunEnd::Finished);
        }
        if let Some(end) = self.pump_input() {
            return Some(end);
        }
        self.poll_turn = self.poll_turn.wrapping_add(1);
        if self.poll_turn % 16 == 0 {
            self.poll_virtio();
        }
        // A stopped drive completes nothing more, so noticing it a few
        // rounds late changes nothing a guest can see.
        if self.poll_turn % 16 == 0 || slice.idle {
            if let Some(why) = crate::virtio::host_stop(&self.virtio) {
                return Some(RunEnd::DiskStopped(why));
            }
        }
        self.work.flush_consoles(false);
        if slice.idle {
            return self.idle();
        }
        self.passed_deadlines = 0;
        self.virtio_stalled = false;
        None
    }

    /// Feeds pending console input to the workload. `Some` when the user
    /// asked to quit.
    fn pump_input(&mut self) -> Option<RunEnd> {
        // A byte the console had no room for goes first, or waits again.
        if let Some(b) = self.held {
            if !self.work.console_input(b) {
                return None;
            }
            self.held = None;
        }
        loop {
            let Some(rx) = &self.input else { return None };
            match console::try_input(rx) {
                Some(Input::Byte(b)) => {
                    if !self.work.console_input(b) {
                        self.held = Some(b);
                        return None;
                    }
                }
                Some(Input::NextConsole) => self.work.next_console(),
                Some(Input::Snapshot) => self.request_snapshot(),
                Some(Input::Quit) => return Some(RunEnd::Quit),
                Some(Input::Eof) => self.input = None,
                None => return None,
            }
        }
    }

    fn virtio_polled(&self) -> bool {
        self.virtio.iter().any(|d| lock(d).polled())
    }

    /// Lets the virtio devices with host input deliver it; true if one did.
    fn poll_virtio(&mut self) -> bool {
        let mut did = false;
        for d in &self.virtio {
            let mut d = lock(d);
            if d.polled() {
                did |= d.poll();
            }
        }
        did
    }

    /// No hart can run: wait for the next event (see the module
    /// documentation).
    fn idle(&mut self) -> Option<RunEnd> {
        if self.work.wakeup_pending(&self.harts) {
            return None;
        }
        if self.poll_virtio() {
            self.virtio_stalled = false;
            return None;
        }
        if std::mem::take(&mut self.virtio_woke) {
            self.virtio_stalled = true;
        }
        let polled = self.virtio_polled();
        let now = self.time.now();
        let rtc = self
            .work
            .rtc_alarm_in_ns()
            .map(|ns| now.saturating_add((ns as u128 * TIMEBASE_HZ as u128 / 1_000_000_000) as u64 + 1));
        // The board's timers, the harts' own (Sstc's stimecmp and
        // vstimecmp), the RTC alarm: whichever comes first.
        let harts = self.harts.iter().filter_map(|h| h.timer_deadline()).min();
        let deadline = parallel::earliest(parallel::earliest(self.work.timer_deadline(), harts), rtc);
        let Some(deadline) = deadline else {
            if !polled && self.input.is_none() && self.held.is_none() {
                return Some(RunEnd::Hung);
            }
            // Only console input, virtio host input or a stop request can
            // wake the machine now.
            self.wait(None);
            return None;
        };
        let delta = deadline.wrapping_sub(now);
        let delta = if delta > u64::MAX / 2 { 0 } else { delta };
        match self.clock {
            ClockMode::Virtual => self.time.advance(delta.max(1)),
            ClockMode::Host => {
                if delta > 0 {
                    self.passed_deadlines = 0;
                    self.wait(Some(ticks_to_duration(delta)));
                } else {
                    // A deadline that has passed wakes a hart next round;
                    // if it keeps not doing so (the guest masked that
                    // timer), do not spin on it.
                    self.passed_deadlines += 1;
                    if self.passed_deadlines > 2 {
                        self.wait(Some(VIRTIO_POLL));
                    }
                }
            }
            ClockMode::Paced => {
                let start = self.started.unwrap_or_else(Instant::now);
                let host = duration_to_ticks(start.elapsed());
                let raw = self.time.raw();
                let target = raw.saturating_add(delta.max(1));
                if target > host {
                    // Guest time would run ahead of host time: wait, then
                    // go no further than host time.
                    self.wait(Some(ticks_to_duration(target - host).min(PACED_MAX_WAIT)));
                    let host = duration_to_ticks(start.elapsed());
                    self.time.advance(host.min(target).saturating_sub(raw));
                } else {
                    self.time.advance(delta.max(1));
                }
            }
        }
        // The next slice sees what the new time raised.
        self.work.update_devices();
        None
    }

    /// Sleeps until the wake-up socket is written to (console input, a stop
    /// request), a virtio device's host descriptor is ready, or `timeout`
    /// passes (`None`: no timeout). Devices that cannot name all their
    /// host work in descriptors (and stalled ones) cap it at
    /// [`VIRTIO_POLL`].
    fn wait(&mut self, timeout: Option<Duration>) {
        let t0 = Instant::now();
        let mut host_fds = Vec::new();
        let mut timed = false;
        for d in &self.virtio {
            let d = lock(d);
            if d.polled() {
                timed |= self.virtio_stalled || !d.host_fds(&mut host_fds);
            }
        }
        if self.virtio_stalled {
            host_fds.clear();
        }
        let timeout = if timed { Some(timeout.map_or(VIRTIO_POLL, |t| t.min(VIRTIO_POLL))) } else { timeout };
        // ppoll, not poll: poll's timeout is in whole milliseconds, so a
        // guest timer 100 µs away would wake the machine up to a
        // millisecond late (a real-time guest's latency, docs/realtime.md).
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let mut fds = vec![libc::pollfd { fd: self.wake_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        fds.extend(host_fds.iter().map(|h| libc::pollfd {
            fd: h.fd,
            events: if h.write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        }));
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the
        // duration of the call; the descriptors belong to `self` and to the
        // virtio devices it owns, which stay open meanwhile (a descriptor
        // closed under us would only make ppoll report POLLNVAL). `ts_ptr`
        // is null or points at `ts`, alive across the call; a null signal
        // mask leaves the thread's mask as it is.
        unsafe {
            libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null());
        }
        self.virtio_woke = fds[1..].iter().any(|f| f.revents != 0);
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        self.idle_wait += t0.elapsed();
    }

    /// The machine stops for good: flushes the consoles and the disks and
    /// removes the socket files the devices made. Called once after the
    /// last run (the process may then end without dropping the machine).
    pub fn shut_down(&mut self) {
        self.work.flush_consoles(true);
        for d in &self.virtio {
            lock(d).shut_down();
        }
    }

    /// A human-readable report of the run's counters (`--stats`): time and
    /// speed, the workload's lines, then every hart's counters. The
    /// runner's and the harts' numbers come from [`Runner::stats_snapshot`],
    /// as `--stats-json` and `/metrics` do.
    pub fn stats_report(&self) -> String {
        let mut s = String::new();
        let snap = self.stats_snapshot();
        let _ = writeln!(
            s,
            "strata: wall time {:.3} s, {} instructions retired, {:.1} MIPS",
            snap.wall_seconds, snap.instructions, snap.mips
        );
        let _ = writeln!(
            s,
            "strata: guest time {:.3} s (mtime {}), clock {}, {} rounds, idle waits {:.3} s",
            snap.guest_seconds, snap.mtime, snap.clock, snap.rounds, snap.idle_wait_seconds
        );
        self.work.stats(&mut s);
        for h in &snap.harts {
            hart_stats(h, &mut s);
        }
        for (t, ts) in self.thread_stats.iter().enumerate() {
            let harts: Vec<String> = ts.harts.iter().map(u64::to_string).collect();
            let _ = writeln!(
                s,
                "thread {t}: harts [{}] cpu {:.3} s | turns {} yields {} naps {} parks {} parked {:.3} s",
                harts.join(" "),
                ts.cpu.as_secs_f64(),
                ts.turns,
                ts.yields,
                ts.naps,
                ts.parks,
                ts.parked.as_secs_f64()
            );
        }
        for d in &snap.devices {
            let _ = writeln!(s, "{}", d.line());
        }
        s += &self.host_error_summary();
        s
    }

    /// Host-side device errors (failed disk writes, ...), one line per
    /// device that had some; empty if none.
    pub fn host_error_summary(&self) -> String {
        crate::virtio::host_error_summary(&self.virtio)
    }
}

/// `ticks` of the timebase as host time.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    Duration::from_nanos((ticks as u128 * 1_000_000_000 / TIMEBASE_HZ as u128).min(u64::MAX as u128) as u64)
}

/// Host time `d` in ticks of the timebase.
pub fn duration_to_ticks(d: Duration) -> u64 {
    (d.as_nanos() * TIMEBASE_HZ as u128 / 1_000_000_000) as u64
}

/// One hart's `--stats` lines, the same on both machines.
fn hart_stats(h: &stats::HartSnapshot, s: &mut String) {
    let _ = writeln!(
        s,
        "hart {}: retired {} steps {} | tlb misses fetch {} load {} store {} fills {} flushes {} dropped {} fence scans {}",
        h.hart,
        h.retired,
        h.steps,
        h.tlb_misses[0],
        h.tlb_misses[1],
        h.tlb_misses[2],
        h.tlb_fills,
        h.tlb_flushes,
        h.tlb_dropped,
        h.tlb_fence_scans
    );
    let by_space: Vec<String> = h
        .tlb_spaces
        .iter()
        .map(|c| {
            if c.virt {
                format!("V=1 vmid {}: {} hits {} misses {} collateral", c.vmid, c.hits, c.misses, c.collateral_misses)
            } else {
                format!("V=0: {} hits {} misses", c.hits, c.misses)
            }
        })
        .collect();
    let _ = writeln!(s, "hart {}: tlb by address space [{}]", h.hart, by_space.join(", "));
    let avg2 = if h.walks_two_stage > 0 { h.walks_two_stage_pte_reads as f64 / h.walks_two_stage as f64 } else { 0.0 };
    let _ = writeln!(
        s,
        "hart {}: walks single-stage {} (PTE reads {}) two-stage {} (PTE reads {}, {avg2:.1} per walk, max {}) A/D writes {}",
        h.hart,
        h.walks_single_stage,
        h.walks_single_stage_pte_reads,
        h.walks_two_stage,
        h.walks_two_stage_pte_reads,
        h.walks_two_stage_max_pte_reads,
        h.ad_writes
    );
    let f = h.fences;
    let _ = writeln!(
        s,
        "hart {}: fences sfence.vma {} sfence.vma(V=1) {} hfence.vvma {} hfence.gvma {} | fence.i stale pages {} | pauses {} | wrs stalls {} | traps to M {} HS {} VS {}",
        h.hart,
        f[0],
        f[1],
        f[2],
        f[3],
        h.fence_i_stale_pages,
        h.pauses,
        h.wrs_stalls,
        h.traps_to[0],
        h.traps_to[1],
        h.traps_to[2]
    );
    let _ = write!(
        s,
        "hart {}: code pages entered {} filled {} decodes {}",
        h.hart, h.code_page_entries, h.code_page_fills, h.code_decodes
    );
    match &h.jit {
        Some(j) => {
            let _ = writeln!(
                s,
                " | jit blocks {} insns {} ({} interpreted) bytes {} flushes {} entries {} links {}",
                j.blocks, j.insns, j.interp_insns, j.bytes, j.flushes, j.entries, j.links
            );
        }
        None => {
            let _ = writeln!(s, " | jit off");
        }
    }
    let list = |m: &std::collections::BTreeMap<u32, u64>| -> String {
        m.iter().map(|(c, n)| format!("{c}:{n}")).collect::<Vec<_>>().join(" ")
    };
    let _ = writeln!(
        s,
        "hart {}: exceptions by cause [{}] interrupts by cause [{}]",
        h.hart,
        list(&h.exceptions),
        list(&h.interrupts)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_durations() {
        assert_eq!(ticks_to_duration(10_000_000), Duration::from_secs(1));
        assert_eq!(ticks_to_duration(1), Duration::from_nanos(100));
        assert_eq!(duration_to_ticks(Duration::from_millis(3)), 30_000);
        assert_eq!(ticks_to_duration(u64::MAX), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn limits() {
        assert!(check_harts("--smp 0", 0).is_err());
        assert!(check_harts("--smp 8", 8).is_ok());
        let e = check_harts("--smp 9", 9).unwrap_err();
        assert_eq!(e.to_string(), "--smp 9: Strata supports 1 to 8");
        let small = check_ram("-m", 15 << 20).unwrap_err();
        assert!(matches!(small, Error::Ram { source: crate::size::SizeError::BelowMinimum, .. }), "{small:?}");
        assert_eq!(small.to_string(), "-m 15 MiB: at least 16 MiB of RAM is needed");
        assert!(check_ram("-m", (16 << 20) + 1).unwrap_err().to_string().contains("4 KiB pages"));
        assert!(check_ram("-m", 65 << 30).unwrap_err().to_string().contains("at most 64 GiB"));
        assert!(check_ram("-m", 16 << 20).is_ok());
    }
}

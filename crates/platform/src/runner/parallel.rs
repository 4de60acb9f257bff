//! One host thread per hart (issue 13): the parallel form of the run loop.
//!
//! With [`Runner::set_threads`] above 1 and a workload that offers a
//! [`HartHost`], [`Runner::run`] hands the harts to *hart threads* and the
//! calling thread becomes the *service thread*:
//!
//! | thread | does |
//! | --- | --- |
//! | hart thread `t` | runs harts `t`, `t + T`, `t + 2T`, … (T threads) a [`CHUNK`] each in turn ([`HartHost::turn`]: on the bare board the harts themselves, under the hypervisor its scheduler's turn for each hart); after every turn, [`HartHost::after_chunk`] (timer lines follow host time); when all its harts wait in WFI with nothing pending, parks until the next timer deadline or until an interrupt line of one of them rises ([`HartIrqs::set_sleeper`]) |
//! | service | the round's steps 1 and 4–7 of the single-thread loop: stop requests, RTC alarms, the guest's end, console input, virtio polling, console flushing; then waits on the wake-up socket and the devices' host descriptors for at most [`SERVICE_TICK`] |
//!
//! What makes this safe and correct is below the runner: guest RAM is
//! accessed with host atomics (strata-memory), AMOs and SC are host
//! read-modify-writes, FENCE is a host fence (strata-hart's `mem.rs`), the
//! device bus is one lock, interrupt lines are atomic bits, and each hart
//! keeps its own TLB and decoded code (docs/smp.md).
//!
//! Invariants: a hart is run by exactly one thread for the whole run; the
//! service thread never touches a hart; only the host clock moves guest
//! time ([`ClockMode::Host`]: the virtual clock is a function of the
//! interleaving, so it stays on one thread); every hart thread has stopped
//! before [`Runner::run`] returns.
//!
//! [`HartIrqs::set_sleeper`]: strata_devices::HartIrqs::set_sleeper

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_hart::{Hart, RunExit};

use super::{ticks_to_duration, ClockMode, RunEnd, Runner, Workload, CHUNK, VIRTIO_POLL};

/// Longest wait of the service thread: console output is flushed at least
/// this often, and a hung machine is noticed within two of them.
pub const SERVICE_TICK: Duration = Duration::from_millis(10);
/// Longest single park of a hart thread with no timer armed (it parks again
/// if nothing happened).
const PARK_MAX: Duration = Duration::from_secs(1);

/// How long a hart thread naps when its harts poll with a WFI that cannot
/// wait (see `hart_thread`).
const WFI_SPIN_NAP: Duration = Duration::from_micros(100);

/// What hart threads need from the machine, shared by all of them.
pub trait HartHost: Send + Sync {
    /// The bus one hart thread's harts reach devices through.
    fn bus(&self) -> Box<dyn strata_hart::Bus + Send>;
    /// After a thread's turn over its harts: devices that follow time for
    /// the harts (timer lines). Returns true if the service thread should
    /// look at the machine now (the guest asked to power off).
    fn after_chunk(&self) -> bool;
    /// The guest time of the earliest armed timer.
    fn timer_deadline(&self) -> Option<u64>;
    /// A hart traps in a loop without progress: the run ends.
    fn stuck(&self, np: strata_hart::NoProgress);
    /// One turn over a thread's harts. The bare board's (the default):
    /// each hart runs a [`CHUNK`]; a hart with an enabled interrupt
    /// pending keeps the thread busy; the deadline is the earliest of the
    /// board's timers and the harts' own (Sstc). The hypervisor runs its
    /// scheduler's turn for each hart instead (`hyp.rs`).
    fn turn(&self, harts: &mut [&mut Hart], bus: &mut dyn strata_hart::Bus) -> Turn {
        let mut t = Turn::default();
        for h in harts.iter_mut() {
            let (_, exit) = h.run(bus, CHUNK);
            t.busy |= exit == RunExit::Budget;
            if let Some(np) = h.no_progress() {
                self.stuck(*np);
                t.wake_service = true;
            }
        }
        t.busy |= harts.iter().any(|h| h.mip() & h.csr.mie != 0);
        t.deadline = earliest(self.timer_deadline(), harts.iter().filter_map(|h| h.timer_deadline()).min());
        t
    }
    /// A hart thread starts (`true`) or stops running `harts`.
    fn attach(&self, _harts: &mut [&mut Hart], _on: bool) {}
}

/// What a thread's turn over its harts found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Turn {
    /// A hart has more to do now: the thread does not sleep.
    pub busy: bool,
    /// The service thread should look at the machine (a hart is stuck).
    pub wake_service: bool,
    /// The guest time at which a sleeping thread's harts have something to
    /// do again (`None`: only an interrupt or a request wakes them).
    pub deadline: Option<u64>,
}

/// One hart thread's counters (`--stats`).
#[derive(Clone, Debug, Default)]
pub struct ThreadStats {
    /// The harts this thread ran.
    pub harts: Vec<u64>,
    /// Turns over its harts.
    pub turns: u64,
    /// Turns that ended in PAUSE, after which the thread yielded the core.
    pub yields: u64,
    /// Turns that ended polling in a WFI that could not wait, after which
    /// the thread napped.
    pub naps: u64,
    /// Times it parked, and the host time it spent parked.
    pub parks: u64,
    pub parked: Duration,
    /// Host CPU time the thread used.
    pub cpu: Duration,
}

/// What the service thread and the hart threads share.
struct Control {
    stop: AtomicBool,
    /// Hart threads parked with no timer armed (for the hang check).
    parked_forever: AtomicUsize,
}

impl<W: Workload> Runner<W> {
    /// Runs the harts on `threads` host threads (see the module
    /// documentation) until the run ends.
    pub(super) fn run_parallel(&mut self, host: Arc<dyn HartHost>, threads: usize) -> RunEnd {
        debug_assert_eq!(self.clock, ClockMode::Host);
        let mut harts = std::mem::take(&mut self.harts);
        let threads = threads.clamp(1, harts.len().max(1));
        let ctl = Control { stop: AtomicBool::new(false), parked_forever: AtomicUsize::new(0) };
        let irqs: Vec<_> = harts.iter().map(|h| h.irqs().clone()).collect();
        let mut groups: Vec<Vec<&mut Hart>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, h) in harts.iter_mut().enumerate() {
            groups[i % threads].push(h);
        }
        let end = std::thread::scope(|s| {
            let handles: Vec<_> = groups
                .into_iter()
                .enumerate()
                .map(|(t, group)| {
                    let (host, ctl, waker) = (host.clone(), &ctl, self.waker.clone());
                    std::thread::Builder::new()
                        .name(format!("strata-hart{t}"))
                        .spawn_scoped(s, move || hart_thread(group, &*host, ctl, &waker))
                        .expect("cannot start a hart thread")
                })
                .collect();
            let end = self.service(&ctl, threads, &|| handles.iter().any(|h| h.is_finished()));
            ctl.stop.store(true, Ordering::SeqCst);
            for i in &irqs {
                i.wake();
            }
            let mut panicked = None;
            self.thread_stats = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|p| {
                        panicked.get_or_insert(p);
                        ThreadStats::default()
                    })
                })
                .collect();
            // A hart thread that panicked is a bug in Strata, as a panic on
            // the single-thread loop is: it goes on up, with its message.
            if let Some(p) = panicked {
                std::panic::resume_unwind(p);
            }
            end
        });
        self.harts = harts;
        end
    }

    /// The service thread's loop; `died` tells whether a hart thread has
    /// ended on its own (it panicked: the run ends and the panic goes on).
    fn service(&mut self, ctl: &Control, threads: usize, died: &dyn Fn() -> bool) -> RunEnd {
        let mut hung_checks = 0;
        loop {
            if let Some(sig) = self.stop.take() {
                return RunEnd::Stopped(sig);
            }
            if died() {
                return RunEnd::Finished;
            }
            self.rounds += 1;
            self.work.update_devices();
            if self.work.ended() {
                return RunEnd::Finished;
            }
            if let Some(end) = self.pump_input() {
                return end;
            }
            self.refuse_parallel_snapshot();
            self.poll_virtio();
            if let Some(why) = crate::virtio::host_stop(&self.virtio) {
                return RunEnd::DiskStopped(why);
            }
            self.work.flush_consoles(false);
            let rtc = self.work.rtc_alarm_in_ns().map(Duration::from_nanos);
            // Every hart thread parked with no timer, and nothing outside
            // the harts that could raise an interrupt: hung (twice in a row,
            // a tick apart, so a wake-up in flight is not mistaken for one).
            let polled = self.virtio_polled();
            if ctl.parked_forever.load(Ordering::SeqCst) == threads
                && rtc.is_none()
                && !polled
                && self.input.is_none()
                && self.held.is_none()
            {
                hung_checks += 1;
                if hung_checks > 2 {
                    return RunEnd::Hung;
                }
            } else {
                hung_checks = 0;
            }
            let mut timeout = rtc.map_or(SERVICE_TICK, |d| d.min(SERVICE_TICK));
            if polled {
                timeout = timeout.min(VIRTIO_POLL);
            }
            self.wait(Some(timeout));
        }
    }
}

/// One hart thread: runs `harts` until the service thread stops it.
fn hart_thread(
    mut harts: Vec<&mut Hart>,
    host: &dyn HartHost,
    ctl: &Control,
    waker: &crate::console::Waker,
) -> ThreadStats {
    let mut st = ThreadStats { harts: harts.iter().map(|h| h.hartid).collect(), ..Default::default() };
    let me = std::thread::current();
    for h in harts.iter_mut() {
        h.irqs().set_sleeper(Some(me.clone()));
        h.set_parallel(true);
    }
    let mut bus = host.bus();
    let cpu0 = thread_cpu_time();
    host.attach(&mut harts, true);
    while !ctl.stop.load(Ordering::Acquire) {
        let turn = host.turn(&mut harts, &mut *bus);
        st.turns += 1;
        if host.after_chunk() || turn.wake_service {
            waker.wake();
        }
        // A hart spinning on PAUSE waits for another: let that one's thread
        // have the core (more hart threads than host cores). One polling
        // with a WFI that cannot wait (OpenSBI's HSM wait for hart start)
        // naps instead; a rising interrupt line ends the nap early.
        let (mut paused, mut all_spin) = (false, true);
        for h in harts.iter_mut() {
            paused |= std::mem::take(&mut h.paused);
            all_spin &= std::mem::take(&mut h.wfi_spin);
        }
        if all_spin {
            st.naps += 1;
            std::thread::park_timeout(WFI_SPIN_NAP);
        } else if paused {
            st.yields += 1;
            std::thread::yield_now();
        }
        if turn.busy {
            continue;
        }
        // Every hart here waits for an interrupt: sleep until the next
        // timer deadline; a rising interrupt line (or, under the
        // hypervisor, a wake-up from another hart's thread) unparks us
        // sooner.
        let deadline = turn.deadline;
        let wait = match deadline {
            Some(d) => {
                let now = bus.mtime();
                let delta = d.wrapping_sub(now);
                if delta > u64::MAX / 2 {
                    continue; // passed: after_chunk raises it next turn
                }
                ticks_to_duration(delta).min(PARK_MAX)
            }
            None => PARK_MAX,
        };
        if deadline.is_none() {
            ctl.parked_forever.fetch_add(1, Ordering::SeqCst);
        }
        let t0 = Instant::now();
        if !ctl.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(wait);
        }
        st.parks += 1;
        st.parked += t0.elapsed();
        if deadline.is_none() {
            ctl.parked_forever.fetch_sub(1, Ordering::SeqCst);
        }
    }
    host.attach(&mut harts, false);
    for h in harts.iter_mut() {
        h.irqs().set_sleeper(None);
        h.set_parallel(false);
    }
    st.cpu = thread_cpu_time().saturating_sub(cpu0);
    st
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Slice, Workload};
    use strata_devices::aclint::Timebase;
    use strata_memory::GuestRam;

    /// A machine whose hart threads panic after their first turn: a bug in
    /// Strata's own code on a hart thread.
    struct Faulty;

    struct NoBus;
    impl strata_hart::Bus for NoBus {
        fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
            None
        }
        fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
            false
        }
        fn mtime(&self) -> u64 {
            0
        }
    }

    impl HartHost for Faulty {
        fn bus(&self) -> Box<dyn strata_hart::Bus + Send> {
            Box::new(NoBus)
        }
        fn after_chunk(&self) -> bool {
            panic!("a bug on a hart thread");
        }
        fn timer_deadline(&self) -> Option<u64> {
            None
        }
        fn stuck(&self, _: strata_hart::NoProgress) {}
    }

    struct Work(Arc<Faulty>);
    impl Workload for Work {
        type Outcome = RunEnd;
        fn run_slice(&mut self, _: &mut [Hart], _: &Arc<Timebase>, _: u64) -> Slice {
            Slice::default()
        }
        fn update_devices(&mut self) {}
        fn timer_deadline(&self) -> Option<u64> {
            None
        }
        fn rtc_alarm_in_ns(&self) -> Option<u64> {
            None
        }
        fn ended(&mut self) -> bool {
            false
        }
        fn console_input(&mut self, _: u8) -> bool {
            true
        }
        fn flush_consoles(&mut self, _: bool) {}
        fn stats(&self, _: &mut String) {}
        fn outcome(&mut self, end: RunEnd) -> RunEnd {
            end
        }
        fn hart_host(&self) -> Option<Arc<dyn HartHost>> {
            Some(self.0.clone())
        }
    }

    #[test]
    fn a_panicking_hart_thread_ends_the_run_with_its_panic() {
        let ram = Arc::new(GuestRam::new(0x8000_0000, 1 << 20).unwrap());
        // `j .` at the reset address: the harts run until the panic.
        ram.store(0x8000_0000, 4, 0x0000_006f).unwrap();
        let harts = (0..2)
            .map(|h| {
                let mut hart = Hart::new(h, ram.clone(), strata_devices::HartIrqs::new());
                hart.reset(0x8000_0000);
                hart
            })
            .collect();
        let work = Work(Arc::new(Faulty));
        let mut r =
            Runner::from_parts(ram, harts, work, Timebase::host(10_000_000), ClockMode::Host, vec![], false).unwrap();
        r.set_threads(2).unwrap();
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
        let payload = got.expect_err("the run must end with the hart thread's panic, not hang or return");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"a bug on a hart thread"));
    }
}

//! The hypervisor on physical harts that run on host threads of their own
//! (issue 13).
//!
//! [`Smp`] holds the [`Hypervisor`] behind one lock, with the
//! [`Shootdown`] inboxes of the harts beside it. A hart's thread calls
//! [`Smp::turn`], which runs the same steps as a round of the one-thread
//! loop ([`Hypervisor::run_slice`]) for that hart alone, taking the lock
//! only between guest runs:
//!
//! | step | lock | what |
//! | --- | --- | --- |
//! | serve | no | the hart drops what its inbox names from its own TLB (`Shootdown::serve`) |
//! | before | yes | `Hypervisor::before_guest`: scrub a retired VM's registers left on the hart, pick a vCPU, unload the old one and load it, inject its interrupts (`hvip`) |
//! | run | **no** | guest code, for at most the slots `before` allowed (a [`CHUNK_HINT`]-sized turn) |
//! | serve | no | as above: every guest run ends at a safe point |
//! | after | yes | `Hypervisor::after_guest`: charge the slots, handle the exit (SBI, MMIO, WFI, faults) |
//! | end | yes | power requests, retiring ended VMs, balancing; which other harts now have work (they are woken), the hart's next timer deadline |
//!
//! The lock covers everything in [`Hypervisor`]: VMs and their devices,
//! vCPUs, the scheduler, page ownership and G-stage tables. Without it run
//! only guest code (which reaches guest RAM through the G-stage tables,
//! not through the hypervisor) and serving the inbox (which touches only
//! the hart's own TLB).
//!
//! **Other harts** are reached through `Remote` stand-ins in the
//! `&mut [&mut dyn HartOps]` the core works on: their fences and
//! invalidations become shootdown requests, posted to the target's inbox
//! and waited for (acknowledged) before the call returns, so the core's
//! order — unmap, invalidate, then hand the page over — keeps the
//! invariant of docs/smp.md with no change. Everything else the core
//! would do to another hart's registers is a request left in the core's
//! own state, served by that hart under the lock at its next `before`:
//! a vCPU that a balancing move takes away is not ready until its hart
//! puts it down (`Vcpu::moving`), a VM that ended is retired once no hart
//! holds one of its vCPUs, a retired VM's registers are scrubbed by the
//! hart they were left on. An IPI to a vCPU loaded on another hart sets its
//! pending bit, which that hart injects at its next `before` (at most one
//! turn later); to a vCPU not loaded, it makes the vCPU ready, and the
//! `end` step of the sender wakes the vCPU's hart if it sleeps.
//!
//! **Waiting under the lock.** An initiator holds the lock while it waits
//! for acknowledgements, so a hart that wants the lock must not block on
//! it: [`Smp::lock_for`] sleeps on the shootdown's condition variable
//! (which every post, every serve and every unlock signals) and serves its
//! inbox whenever it wakes. Only threads that are no shootdown target (the
//! service thread, tests) take the lock plainly ([`Smp::lock`]). A hart
//! whose thread has stopped (the run ended, or has not started) is
//! *detached*: requests to it are posted but not waited for; it serves
//! them before it next runs a guest, on whatever thread that is
//! ([`Smp::run_slice`] serves every inbox first).
//!
//! Invariants: the lock is held whenever the core runs; a hart serves its
//! inbox before every guest run; a hart's registers are only touched by the
//! thread that runs it; an initiator waits only for attached harts, and
//! only while it holds the lock (so two initiators never wait for each
//! other).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use crate::hart::{Csr, HartOps, TrapTo};
use crate::ids::HartIndex;
use crate::shootdown::{Request, Shootdown};
use crate::{Hypervisor, Slice, Turn};

/// The slots a hart thread's turn gives guests before the thread looks
/// at its inbox, the stop request and its timers again (the platform's
/// `CHUNK`; named here for the docs).
pub const CHUNK_HINT: u64 = 4096;

/// One hart's counters of the threaded run (`--stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HartSmpStats {
    /// Shootdown requests this hart posted to others, and waited for.
    pub posted: u64,
    /// Requests it served, and the translations serving dropped.
    pub served: u64,
    pub dropped: u64,
    /// Times its thread took the lock, and of those, found it taken.
    pub locks: u64,
    pub contended: u64,
}

#[derive(Default)]
struct Counters {
    posted: AtomicU64,
    served: AtomicU64,
    dropped: AtomicU64,
    locks: AtomicU64,
    contended: AtomicU64,
}

/// The hypervisor shared by hart threads (see the module docs).
pub struct Smp {
    hyp: Mutex<Hypervisor>,
    shootdown: Shootdown,
    /// Wakes hart `h`'s thread if it sleeps (a parked thread, `unpark`).
    wake: Box<dyn Fn(HartIndex) + Send + Sync>,
    /// The `time` CSR's value now, for threads without a hart at hand.
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Per hart: its thread is running it (requests to it are waited for).
    attached: Box<[AtomicBool]>,
    /// Requests posted by threads that are no hart (the service thread).
    posted_by_others: AtomicU64,
    counters: Box<[Counters]>,
}

/// The lock on the hypervisor; unlocking wakes threads that wait for it
/// ([`Smp::lock_for`]).
pub struct HypGuard<'a> {
    g: Option<MutexGuard<'a, Hypervisor>>,
    shootdown: &'a Shootdown,
}

impl std::ops::Deref for HypGuard<'_> {
    type Target = Hypervisor;
    fn deref(&self) -> &Hypervisor {
        self.g.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for HypGuard<'_> {
    fn deref_mut(&mut self) -> &mut Hypervisor {
        self.g.as_mut().expect("held until dropped")
    }
}

impl Drop for HypGuard<'_> {
    fn drop(&mut self) {
        drop(self.g.take());
        self.shootdown.wake_all();
    }
}

/// What one hart's turn did.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurnEnd {
    /// Instruction slots its guests used.
    pub used: u64,
    /// A vCPU ran (false: nothing was ready; the thread may sleep).
    pub ran: bool,
    /// The earliest timer of a waiting vCPU in the hart's queue.
    pub deadline: Option<u64>,
}

/// Another thread's hart as the core sees it: fences and invalidations
/// become shootdown requests that the hart serves itself, waited for;
/// nothing else of it is reachable ([`HartOps::local`] is false, and the
/// core leaves such a hart's registers alone).
struct Remote<'a> {
    smp: &'a Smp,
    h: HartIndex,
    /// The hart whose thread posts (`None`: not a hart's thread).
    from: Option<HartIndex>,
}

impl Remote<'_> {
    /// Posts `req` to the hart and, if its thread runs it, waits until it
    /// has served it.
    fn shoot(&self, req: Request) {
        let s = self.smp;
        let t = s.shootdown.post_to(self.h, req, &*s.wake);
        match self.from {
            Some(f) => s.counters[f.0].posted.fetch_add(1, Ordering::Relaxed),
            None => s.posted_by_others.fetch_add(1, Ordering::Relaxed),
        };
        if s.attached[self.h.0].load(Ordering::Acquire) {
            // Nothing is posted to a thread that holds the lock (only lock
            // holders post), so there is nothing of its own to serve.
            s.shootdown.wait(&t, None, &mut |_| {});
        }
    }
}

impl HartOps for Remote<'_> {
    fn hart_id(&self) -> u64 {
        self.h.0 as u64
    }
    fn csr(&self, _: Csr) -> u64 {
        0
    }
    fn set_csr(&mut self, _: Csr, _: u64) {}
    fn gpr(&self, _: usize) -> u64 {
        0
    }
    fn set_gpr(&mut self, _: usize, _: u64) {}
    fn fpr(&self, _: usize) -> u64 {
        0
    }
    fn set_fpr(&mut self, _: usize, _: u64) {}
    fn time(&self) -> u64 {
        (self.smp.clock)()
    }
    fn run_guest(&mut self, _: u64) -> (u64, Option<TrapTo>) {
        (0, None)
    }
    fn preempt(&mut self) {}
    fn read_guest_insn(&mut self, _: u64) -> Option<u32> {
        None
    }
    fn hfence_gvma(&mut self, _gpa: Option<u64>, vmid: Option<u64>) {
        self.shoot(vmid.map_or(Request::All, Request::Vmid));
    }
    fn hfence_vvma(&mut self, _: Option<u64>, _: Option<u64>) {
        // Only shadow paging fences VS-stage translations, and it runs on
        // one thread; were it called, dropping everything is safe.
        self.shoot(Request::All);
    }
    fn invalidate_page(&mut self, page_addr: u64) -> u64 {
        self.shoot(Request::Page(page_addr >> 12));
        0
    }
    fn invalidate_coarse(&mut self, vmids: Option<&[u64]>, _page_addr: u64) -> (u64, u64) {
        match vmids {
            Some(ids) => ids.iter().for_each(|&v| self.shoot(Request::Vmid(v))),
            None => self.shoot(Request::All),
        }
        (0, 0)
    }
    fn collateral_misses(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }
    fn local(&self) -> bool {
        false
    }
}

impl Smp {
    /// `hyp` for `harts` harts; `wake(h)` wakes hart `h`'s thread if it
    /// sleeps, `clock()` reads the `time` CSR. Every hart starts detached.
    pub fn new(
        hyp: Hypervisor,
        harts: usize,
        wake: Box<dyn Fn(HartIndex) + Send + Sync>,
        clock: Box<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        Smp {
            hyp: Mutex::new(hyp),
            shootdown: Shootdown::new(harts),
            wake,
            clock,
            attached: (0..harts).map(|_| AtomicBool::new(false)).collect(),
            posted_by_others: AtomicU64::new(0),
            counters: (0..harts).map(|_| Counters::default()).collect(),
        }
    }

    pub fn harts(&self) -> usize {
        self.attached.len()
    }

    fn guard<'a>(&'a self, g: MutexGuard<'a, Hypervisor>) -> HypGuard<'a> {
        HypGuard { g: Some(g), shootdown: &self.shootdown }
    }

    /// The lock, for a thread that is no hart's (the service thread, the
    /// control plane, tests): it may block, as nothing waits for it.
    pub fn lock(&self) -> HypGuard<'_> {
        self.guard(self.hyp.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The lock, for the thread of hart `me` (`hart`): serves the hart's
    /// inbox while it waits, so an initiator holding the lock gets its
    /// acknowledgement.
    pub fn lock_for(&self, me: HartIndex, hart: &mut dyn HartOps) -> HypGuard<'_> {
        let c = &self.counters[me.0];
        c.locks.fetch_add(1, Ordering::Relaxed);
        match self.hyp.try_lock() {
            Ok(g) => return self.guard(g),
            Err(TryLockError::Poisoned(p)) => return self.guard(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        c.contended.fetch_add(1, Ordering::Relaxed);
        let slot = RefCell::new(None);
        self.shootdown.idle(me, &mut |r| self.apply(me, hart, r), &|| match self.hyp.try_lock() {
            Ok(g) => {
                *slot.borrow_mut() = Some(g);
                true
            }
            Err(TryLockError::Poisoned(p)) => {
                *slot.borrow_mut() = Some(p.into_inner());
                true
            }
            Err(TryLockError::WouldBlock) => false,
        });
        let g = slot.into_inner().expect("idle returns once the lock is taken");
        self.guard(g)
    }

    /// Drops what `r` names from `hart`'s cached translations.
    fn apply(&self, me: HartIndex, hart: &mut dyn HartOps, r: Request) {
        let c = &self.counters[me.0];
        c.served.fetch_add(1, Ordering::Relaxed);
        match r {
            Request::Page(pfn) => {
                c.dropped.fetch_add(hart.invalidate_page(pfn << 12), Ordering::Relaxed);
            }
            Request::Vmid(v) => hart.hfence_gvma(None, Some(v)),
            Request::All => hart.hfence_gvma(None, None),
        }
    }

    /// A safe point of hart `me`: serves its inbox (one load when empty).
    pub fn serve(&self, me: HartIndex, hart: &mut dyn HartOps) {
        if self.shootdown.pending(me) {
            self.shootdown.serve(me, &mut |r| self.apply(me, hart, r));
        }
    }

    /// Hart `me`'s thread starts (`true`) or stops running it. Taken under
    /// the lock, so an initiator sees either state for the whole of its
    /// operation; an attaching hart serves what was posted meanwhile.
    pub fn attach(&self, me: HartIndex, hart: &mut dyn HartOps, on: bool) {
        let g = self.lock_for(me, hart);
        self.attached[me.0].store(on, Ordering::Release);
        drop(g);
        self.serve(me, hart);
    }

    /// The harts as the core sees them from hart `me`'s thread (`None`:
    /// from a thread that is no hart's): `local` at `me`, `Remote`s
    /// elsewhere. Runs `f` on them.
    fn with_view<R>(
        &self,
        me: Option<HartIndex>,
        local: Option<&mut dyn HartOps>,
        f: impl FnOnce(&mut [&mut dyn HartOps]) -> R,
    ) -> R {
        let n = self.harts();
        let mut remotes: Vec<Remote<'_>> = (0..n)
            .filter(|&i| Some(HartIndex(i)) != me)
            .map(|i| Remote { smp: self, h: HartIndex(i), from: me })
            .collect();
        let mut local = local;
        let mut it = remotes.iter_mut();
        let mut view: Vec<&mut dyn HartOps> = Vec::with_capacity(n);
        for i in 0..n {
            if Some(HartIndex(i)) == me {
                view.push(local.take().expect("the local hart once"));
            } else {
                view.push(it.next().expect("a stand-in for every other hart"));
            }
        }
        f(&mut view)
    }

    /// Runs `f` under the lock with every hart a `Remote`: what a thread
    /// that is no hart's (the control plane, a test) does to the
    /// hypervisor while the harts run, e.g. `migrate_page`.
    pub fn with_remote_harts<R>(&self, f: impl FnOnce(&mut Hypervisor, &mut [&mut dyn HartOps]) -> R) -> R {
        let mut g = self.lock();
        self.with_view(None, None, |view| f(&mut g, view))
    }

    /// One round on one thread over every hart (`harts`, all local): the
    /// deterministic loop. Serves every inbox first (requests posted
    /// while a hart was detached).
    pub fn run_slice(&self, harts: &mut [&mut dyn HartOps], budget: u64) -> Slice {
        for (i, h) in harts.iter_mut().enumerate() {
            self.serve(HartIndex(i), &mut **h);
        }
        self.lock().run_slice(harts, budget)
    }

    /// One turn of hart `me` (`hart`) on its own thread: see the module
    /// docs. `budget` bounds the slots its guests run before the turn ends.
    pub fn turn(&self, me: HartIndex, hart: &mut dyn HartOps, budget: u64) -> TurnEnd {
        self.with_view(Some(me), Some(hart), |harts| {
            let mut turn = Turn::new(budget);
            self.serve(me, &mut *harts[me.0]);
            let mut g = self.lock_for(me, &mut *harts[me.0]);
            while let Some((v, allowed)) = g.before_guest(harts, me, &mut turn) {
                drop(g);
                let (n, to) = harts[me.0].run_guest(allowed);
                self.serve(me, &mut *harts[me.0]);
                g = self.lock_for(me, &mut *harts[me.0]);
                g.after_guest(harts, me, v, n, to, &mut turn);
            }
            g.end_turn(harts);
            let now = harts[me.0].time();
            for h in g.harts_with_work(now) {
                if h != me {
                    (self.wake)(h);
                }
            }
            let deadline = g.next_deadline_on(me);
            TurnEnd { used: turn.used, ran: turn.ran, deadline }
        })
    }

    /// Wakes the threads of harts that have nothing loaded but a vCPU
    /// ready in their queue (after devices raised interrupts: the service
    /// thread's RTC alarms and console input).
    pub fn wake_ready(&self) {
        let now = (self.clock)();
        let ready = self.lock().harts_with_work(now);
        for h in ready {
            (self.wake)(h);
        }
    }

    /// Per hart: its counters.
    pub fn stats(&self) -> Vec<HartSmpStats> {
        self.counters
            .iter()
            .map(|c| HartSmpStats {
                posted: c.posted.load(Ordering::Relaxed),
                served: c.served.load(Ordering::Relaxed),
                dropped: c.dropped.load(Ordering::Relaxed),
                locks: c.locks.load(Ordering::Relaxed),
                contended: c.contended.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Requests posted by threads that are no hart's.
    pub fn posted_by_others(&self) -> u64 {
        self.posted_by_others.load(Ordering::Relaxed)
    }
}

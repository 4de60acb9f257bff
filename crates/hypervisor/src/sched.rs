//! The scheduler: which vCPU runs on which hart, and for how long.
//!
//! The hypervisor runs in *rounds*: in each, every hart gets a budget of
//! instruction slots (the platform moves guest time by the round). The
//! scheduler decides, whenever a hart needs a vCPU, which one; the core
//! (`lib.rs`) does the world switches and runs the guests.
//!
//! # Policy
//!
//! - **Per-hart queues.** Each vCPU belongs to one hart's queue (the
//!   least crowded when it is created). Keeping a vCPU on its hart keeps
//!   that hart's caches — TLB, decoded code, compiled blocks — warm for it;
//!   in an emulator a move to a cold hart costs recompiling what it runs.
//! - **Fair share on a hart: virtual runtime.** Every vCPU has a
//!   `vruntime`, the instruction slots it has run. A hart runs the ready
//!   vCPU of its queue with the least `vruntime`, for a *quantum*
//!   ([`SchedParams::quantum`]) before it looks again. Quanta are far
//!   longer than a round, because each switch between VMs costs TLB
//!   refills and cold code, and far shorter than any guest timeout.
//! - **Sleepers do not hoard.** A vCPU that wakes (from WFI, a retentive
//!   suspend, or a stopped HSM state) has its `vruntime` raised to at
//!   least the hart's least `vruntime` minus one quantum, so waiting does
//!   not bank CPU time; it then preempts the running vCPU if it is behind
//!   it by more than a quarter quantum, so interrupts are served promptly.
//! - **Directed yield.** A vCPU sent an IPI (SBI IPI) while waiting or
//!   waiting for its turn gets its hart at that hart's next pick — at once
//!   if the sender is on the same hart — as a guest that sends an IPI
//!   usually spins until it is answered.
//! - **Work-conserving, fair across harts.** Every
//!   [`SchedParams::balance_every`] rounds: a hart that has had nothing
//!   ready for [`SchedParams::idle_passes`] passes takes a ready vCPU that
//!   waits for its turn on a crowded hart; and when a ready vCPU on a
//!   crowded hart has *received* more than [`SchedParams::lag_limit`] slots
//!   less than the vCPU that has received most among those alone on their
//!   hart, the two trade places (nine VMs on eight harts each get eight
//!   ninths of a hart, not two of them half). A vCPU that moves joins its
//!   new hart's `vruntime`s level with the least of them, so no burst of
//!   catching up stalls anyone there; the limit is high because a move
//!   costs the mover its caches (its code is compiled again on a hart that
//!   has not run it). At most one move per pass; the core takes the vCPUs
//!   that move off their harts first.
//!
//! # Real-time vCPUs and placement (issue 22; docs/realtime.md)
//!
//! A vCPU of a real-time VM is *pinned*: it stays in the queue of one of
//! its VM's harts (the *real-time harts*) and balancing never moves it.
//! What else may run on a real-time hart is the [`Placement`]:
//!
//! | placement | other vCPUs on a real-time hart | pick on a real-time hart |
//! |---|---|---|
//! | `share` | placed there like anywhere else, time-sliced with it | as on any hart (virtual runtime, wake-up preemption) |
//! | `dedicated` | never: placed on, and balanced among, the other harts | the real-time vCPU |
//! | `migrate` | only *borrowed* while the real-time vCPUs there wait ([`Scheduler::borrow`]), and *evicted* back to the other harts the moment one of them is ready ([`Scheduler::evict`]) | a ready real-time vCPU first |
//!
//! # States (of a vCPU, as the scheduler sees it)
//!
//! | state | meaning | to |
//! |---|---|---|
//! | not ready | waits (WFI, suspend), stopped, or its VM ended | ready: an interrupt it enabled is pending, or HSM start |
//! | ready | can run; its state is in its [`crate::vcpu::Vcpu`] | current: picked by its hart; another queue: moved by balancing |
//! | current | its state is on its hart ([`Scheduler::current`]) | ready: quantum over and another is behind it, woken vCPU preempts, yield, or the core takes it off to move it; not ready: it waits or stops |
//! | gone | its VM was retired | – |
//!
//! # Invariants
//!
//! 1. Every vCPU not gone is in exactly one hart's queue, the one its
//!    entity names; gone vCPUs are in none.
//! 2. A hart's current vCPU is in its queue; no vCPU is current on two
//!    harts.
//! 3. Only a vCPU that is not current anywhere moves between queues.
//! 4. `received` never decreases; `vruntime` only when the vCPU moves (it
//!    is measured against its hart's other vCPUs).
//! 5. A real-time vCPU is in the queue of one of its VM's harts; under
//!    `dedicated`, no other vCPU is in a real-time hart's queue.

use std::fmt;

use crate::ids::{HartIndex, Table, VcpuIndex};

/// The scheduler's knobs, in instruction slots and rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Slots a vCPU runs before its hart looks for another.
    pub quantum: u64,
    /// Rounds between balancing passes.
    pub balance_every: u64,
    /// How far behind (in slots received) a ready vCPU on a crowded hart
    /// may fall before it moves to a hart whose only vCPU is ahead.
    pub lag_limit: u64,
    /// Consecutive balancing passes a hart must have found nothing ready
    /// before it takes a vCPU from a crowded hart.
    pub idle_passes: u32,
}

impl Default for SchedParams {
    /// The quantum is 1 Mi slots: 10 ms of guest time at 10 instructions a
    /// tick, between the few milliseconds of Linux's CFS and Xen's 30 ms.
    /// Each switch between VMs costs their caches (TLB, jump cache) about
    /// 100 µs of host time; four Debian VMs booting on one hart cost 1.52,
    /// 1.27 and 1.10 times four boots alone with quanta of 64 Ki, 256 Ki
    /// and 1 Mi slots. Interactive guests do not wait for it: a vCPU woken
    /// by an interrupt, or sent an IPI, gets the hart early.
    ///
    /// The lag limit is 16 quanta: with nine Debian VMs on eight harts a
    /// move cost about 5000 blocks compiled again (15 ms); at 2 quanta they
    /// moved 600 times and took 1.35 times the CPU time of nine boots alone.
    fn default() -> Self {
        SchedParams { quantum: 1 << 20, balance_every: 16, lag_limit: 16 << 20, idle_passes: 4 }
    }
}

/// Whether a vCPU can run, as the core sees it when the scheduler asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    No,
    Yes,
    /// Yes, and it was not ready until now (woken by an interrupt, or
    /// started).
    Woke,
}

/// A balancing move ([`Scheduler::end_round`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebalance {
    /// `v` moves to the queue of hart `to`, which has had nothing to run.
    Move { v: VcpuIndex, to: HartIndex },
    /// `behind`, waiting on a crowded hart, and `ahead`, alone on its hart,
    /// trade places.
    Swap { behind: VcpuIndex, ahead: VcpuIndex },
}

impl Rebalance {
    /// The vCPUs that move.
    pub fn vcpus(self) -> Vec<VcpuIndex> {
        match self {
            Rebalance::Move { v, .. } => vec![v],
            Rebalance::Swap { behind, ahead } => vec![behind, ahead],
        }
    }
}

/// Counters of the scheduler's decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStats {
    /// vCPUs moved to another hart's queue (balancing, borrows, evictions).
    pub migrations: u64,
    /// Picks that changed a hart's current vCPU.
    pub switches: u64,
    /// Woken vCPUs that took the hart before the quantum ended.
    pub wakeup_preemptions: u64,
    /// Picks that gave the hart to another vCPU because the current one
    /// spun (PAUSE; pause-loop exiting).
    pub spin_yields: u64,
    /// `migrate`: vCPUs of other VMs taken onto an idle real-time hart.
    pub rt_borrows: u64,
    /// `migrate`: vCPUs of other VMs moved off a real-time hart because a
    /// real-time vCPU there became ready (of them, `rt_preemptions` were
    /// running on it and were preempted).
    pub rt_evictions: u64,
    pub rt_preemptions: u64,
    /// Slots other VMs' vCPUs ran on real-time harts.
    pub foreign_slots_on_rt: u64,
    /// The most slots other VMs' vCPUs ran on a real-time hart while a
    /// real-time vCPU in its queue was due (its timer or an interrupt
    /// pending), before it ran: the real-time vCPU's wait, in guest work
    /// rather than host time (the run that saw it due counts whole).
    pub rt_wait_slots_max: u64,
    /// Host time spent moving vCPUs (unloading on the old hart, the queue
    /// change, loading on the new one with the `HFENCE.GVMA` of the VMID),
    /// in nanoseconds, over `timed_moves` moves.
    pub move_ns: u64,
    pub timed_moves: u64,
}

/// Where real-time vCPUs run, and what else runs there (module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Time-sliced with other VMs' vCPUs, as every vCPU is.
    #[default]
    Share,
    /// Other VMs borrow the real-time harts while the real-time vCPUs
    /// wait, and are moved off when one is ready.
    Migrate,
    /// Real-time vCPUs have their harts to themselves.
    Dedicated,
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "share" => Ok(Placement::Share),
            "migrate" => Ok(Placement::Migrate),
            "dedicated" => Ok(Placement::Dedicated),
            _ => Err(format!("unknown placement '{s}' (share, migrate or dedicated)")),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Share => "share",
            Placement::Migrate => "migrate",
            Placement::Dedicated => "dedicated",
        })
    }
}

#[derive(Clone, Debug, Default)]
struct HartQueue {
    members: Vec<VcpuIndex>,
    /// The vCPU whose state is on the hart.
    current: Option<VcpuIndex>,
    /// Slots the current vCPU has run in its quantum.
    ran: u64,
    /// Slots other VMs ran here since a real-time vCPU became due.
    rt_wait: u64,
    /// Where the next search starts, so equal `vruntime`s take turns.
    turn: usize,
    /// A vCPU to run next, if it is ready (directed yield).
    yield_to: Option<VcpuIndex>,
    /// Consecutive balancing passes with nothing ready.
    idle_passes: u32,
    /// A real-time VM's vCPU is placed here.
    rt: bool,
    /// The current vCPU spun (PAUSE) at the end of its last run.
    spun: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entity {
    hart: HartIndex,
    /// Slots run, raised on waking and on moving (fairness on a hart).
    vruntime: u64,
    /// Slots run (fairness across harts).
    received: u64,
    gone: bool,
    /// A real-time vCPU: pinned to its hart, never balanced.
    rt: bool,
}

pub struct Scheduler {
    params: SchedParams,
    harts: Table<HartIndex, HartQueue>,
    vcpus: Table<VcpuIndex, Entity>,
    rounds: u64,
    stats: SchedStats,
    scratch: Vec<(VcpuIndex, bool, usize)>,
    placement: Placement,
}

impl Scheduler {
    pub fn new(harts: usize, params: SchedParams) -> Self {
        Scheduler {
            params,
            harts: Table::from_fn(harts, |_| HartQueue::default()),
            vcpus: Table::new(),
            rounds: 0,
            stats: SchedStats::default(),
            scratch: Vec::new(),
            placement: Placement::Share,
        }
    }

    pub fn params(&self) -> SchedParams {
        self.params
    }

    /// New knobs, from the next decision on.
    pub fn set_params(&mut self, params: SchedParams) {
        self.params = params;
    }

    pub fn stats(&self) -> SchedStats {
        self.stats
    }

    /// Takes on the next vCPU (the caller's vCPU table grows in step):
    /// into the queue of the hart with the fewest vCPUs, the first such.
    pub fn add(&mut self) -> HartIndex {
        let hart = self
            .harts
            .iter()
            .min_by_key(|(h, q)| (q.members.len(), *h))
            .map(|(h, _)| h)
            .expect("the hypervisor has at least one hart");
        let v = self.vcpus.push(Entity { hart, vruntime: 0, received: 0, gone: false, rt: false });
        self.harts[hart].members.push(v);
        hart
    }

    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Whether a real-time vCPU is placed on hart `h`.
    pub fn is_rt_hart(&self, h: HartIndex) -> bool {
        self.harts.get(h).is_some_and(|q| q.rt)
    }

    pub fn is_rt(&self, v: VcpuIndex) -> bool {
        self.vcpus.get(v).is_some_and(|e| e.rt)
    }

    /// Places every vCPU again under `placement`: `rt` gives each
    /// real-time vCPU its hart; every other vCPU goes to the least crowded
    /// hart it may use (under `migrate` and `dedicated`, a hart no
    /// real-time vCPU is on). No vCPU may be current anywhere (the caller
    /// checks: this is done before the harts first run).
    pub fn place(&mut self, placement: Placement, rt: &[(VcpuIndex, HartIndex)]) {
        self.placement = placement;
        for q in self.harts.values_mut() {
            debug_assert!(q.current.is_none(), "placement while a vCPU runs");
            q.members.clear();
            q.yield_to = None;
            q.rt = false;
        }
        for e in self.vcpus.values_mut() {
            e.rt = false;
        }
        for &(v, h) in rt {
            self.vcpus[v].rt = true;
            self.vcpus[v].hart = h;
            self.harts[h].rt = true;
            self.harts[h].members.push(v);
        }
        let others: Vec<VcpuIndex> = self.vcpus.iter().filter(|(_, e)| !e.gone && !e.rt).map(|(v, _)| v).collect();
        for v in others {
            let h = self
                .harts
                .iter()
                .filter(|(_, q)| placement == Placement::Share || !q.rt)
                .min_by_key(|(h, q)| (q.members.len(), *h))
                .map(|(h, _)| h)
                .expect("the placement leaves other vCPUs a hart (checked by the caller)");
            self.vcpus[v].hart = h;
            self.harts[h].members.push(v);
        }
    }

    /// Whether a vCPU of another VM may be balanced onto or off hart `h`.
    fn open(&self, h: HartIndex) -> bool {
        self.placement == Placement::Share || !self.harts[h].rt
    }

    /// `migrate`: a ready vCPU of another VM for the idle real-time hart
    /// `h` to borrow: one waiting for its turn (current nowhere) in the
    /// queue of another hart, the one that has received least. `ready`
    /// must answer without changing anything.
    pub fn borrowable(&self, h: HartIndex, ready: &dyn Fn(VcpuIndex) -> bool) -> Option<VcpuIndex> {
        if self.placement != Placement::Migrate || !self.harts[h].rt {
            return None;
        }
        self.harts
            .iter()
            .filter(|&(g, q)| g != h && !q.rt)
            .flat_map(|(_, q)| q.members.iter().copied().filter(move |&v| Some(v) != q.current))
            .filter(|&v| !self.vcpus[v].rt && ready(v))
            .min_by_key(|&v| (self.vcpus[v].received, v))
    }

    /// `migrate`: moves `v` (current nowhere) to the real-time hart `h`,
    /// which runs it at its next pick.
    pub fn borrow(&mut self, v: VcpuIndex, h: HartIndex) {
        self.migrate(v, h, true);
        self.stats.rt_borrows += 1;
    }

    /// `migrate`: the vCPUs of other VMs in real-time hart `h`'s queue,
    /// which must leave it because a real-time vCPU there is ready.
    pub fn guests_of(&self, h: HartIndex) -> Vec<VcpuIndex> {
        if self.placement != Placement::Migrate || !self.harts[h].rt {
            return Vec::new();
        }
        self.harts[h].members.iter().copied().filter(|&v| !self.vcpus[v].rt).collect()
    }

    /// `migrate`: moves `v` (current nowhere any more) off its real-time
    /// hart to the least crowded hart no real-time vCPU is on; `preempted`:
    /// it was running there. Returns its new hart.
    pub fn evict(&mut self, v: VcpuIndex, preempted: bool) -> HartIndex {
        let to = self
            .harts
            .iter()
            .filter(|(_, q)| !q.rt)
            .min_by_key(|(h, q)| (q.members.len(), *h))
            .map(|(h, _)| h)
            .expect("migrate leaves other vCPUs a hart (checked when placed)");
        self.migrate(v, to, false);
        self.stats.rt_evictions += 1;
        if preempted {
            self.stats.rt_preemptions += 1;
        }
        to
    }

    /// `n` slots of the other VM's vCPU just run on real-time hart `h`
    /// ran while a real-time vCPU there was due.
    pub fn note_rt_wait(&mut self, h: HartIndex, n: u64) {
        let q = &mut self.harts[h];
        q.rt_wait = q.rt_wait.saturating_add(n);
        self.stats.rt_wait_slots_max = self.stats.rt_wait_slots_max.max(q.rt_wait);
    }

    /// Adds the host time one move cost (`Hypervisor` measures it).
    pub fn note_move_cost(&mut self, ns: u64) {
        self.stats.move_ns = self.stats.move_ns.saturating_add(ns);
        self.stats.timed_moves += 1;
    }

    /// Forgets `v` (its VM was retired). It must not be current.
    pub fn remove(&mut self, v: VcpuIndex) {
        let Some(e) = self.vcpus.get_mut(v) else { return };
        if e.gone {
            return;
        }
        e.gone = true;
        let q = &mut self.harts[e.hart];
        debug_assert_ne!(q.current, Some(v), "{v} is removed while on its hart");
        q.members.retain(|&m| m != v);
        if q.yield_to == Some(v) {
            q.yield_to = None;
        }
    }

    /// The hart whose queue `v` is in.
    pub fn hart_of(&self, v: VcpuIndex) -> HartIndex {
        self.vcpus[v].hart
    }

    /// The vCPU whose state is on hart `h`.
    pub fn current(&self, h: HartIndex) -> Option<VcpuIndex> {
        self.harts[h].current
    }

    /// The vCPUs in hart `h`'s queue.
    pub fn queue(&self, h: HartIndex) -> &[VcpuIndex] {
        &self.harts[h].members
    }

    pub fn vruntime(&self, v: VcpuIndex) -> u64 {
        self.vcpus[v].vruntime
    }

    /// Records that `v`'s state was put on hart `h` (`Some`), or taken off
    /// it (`None`).
    pub fn set_current(&mut self, h: HartIndex, v: Option<VcpuIndex>) {
        let q = &mut self.harts[h];
        if v.is_some() && v != q.current {
            q.ran = 0;
            self.stats.switches += 1;
        }
        if v.is_some_and(|v| self.vcpus[v].rt) {
            q.rt_wait = 0;
        }
        q.current = v;
    }

    /// The current vCPU of `h` ended its run spinning on PAUSE: it waits
    /// for another vCPU, perhaps one waiting for this hart, so the next
    /// pick gives the hart to another ready vCPU of the queue if there is
    /// one (what pause-loop exiting does in hardware hypervisors).
    pub fn spin_yield(&mut self, h: HartIndex) {
        self.harts[h].spun = true;
    }

    /// Slots the current vCPU of `h` may still run in its quantum (at
    /// least 1).
    pub fn quantum_left(&self, h: HartIndex) -> u64 {
        self.params.quantum.saturating_sub(self.harts[h].ran).max(1)
    }

    /// Whether the current vCPU of `h` has used up its quantum.
    pub fn quantum_over(&self, h: HartIndex) -> bool {
        self.harts[h].ran >= self.params.quantum
    }

    /// Charges `slots` of hart `h` to `v`.
    pub fn charge(&mut self, h: HartIndex, v: VcpuIndex, slots: u64) {
        let e = &mut self.vcpus[v];
        e.vruntime = e.vruntime.saturating_add(slots);
        e.received = e.received.saturating_add(slots);
        self.harts[h].ran = self.harts[h].ran.saturating_add(slots);
        if self.harts[h].rt && !self.vcpus[v].rt {
            self.stats.foreign_slots_on_rt = self.stats.foreign_slots_on_rt.saturating_add(slots);
        }
    }

    /// `target` was sent an IPI while its state is on no hart: its hart
    /// runs it at its next pick, if it is ready then and not far ahead of
    /// the others waiting there (directed yield; a guest that sends an IPI
    /// usually waits for the answer). Returns its hart.
    pub fn kick(&mut self, target: VcpuIndex) -> HartIndex {
        let h = self.vcpus[target].hart;
        let q = &mut self.harts[h];
        if q.current != Some(target) {
            q.yield_to = Some(target);
        }
        h
    }

    /// The vCPU hart `h` should run now, or `None` if none in its queue is
    /// ready. `ready` tells whether a vCPU can run (the core brings its
    /// interrupt state up to date as it answers).
    pub fn pick(&mut self, h: HartIndex, ready: &mut dyn FnMut(VcpuIndex) -> Ready) -> Option<VcpuIndex> {
        let quantum = self.params.quantum;
        let (cur, ran, turn, yield_to, spun) = {
            let q = &mut self.harts[h];
            (q.current, q.ran, q.turn, q.yield_to.take(), std::mem::take(&mut q.spun))
        };
        let cur_ready = cur.filter(|&c| ready(c) != Ready::No);
        let n = self.harts[h].members.len();
        // (vCPU, just woke, place in the queue), in a buffer kept between
        // calls: this runs every round on every hart.
        let mut ready_list = std::mem::take(&mut self.scratch);
        ready_list.clear();
        for k in 0..n {
            let pos = (turn + k) % n;
            let v = self.harts[h].members[pos];
            if Some(v) == cur {
                continue;
            }
            match ready(v) {
                Ready::No => {}
                Ready::Yes => ready_list.push((v, false, pos)),
                Ready::Woke => ready_list.push((v, true, pos)),
            }
        }
        // Sleepers come back no further behind than a quantum.
        let floor = cur_ready
            .iter()
            .copied()
            .chain(ready_list.iter().filter(|(_, woke, _)| !woke).map(|&(v, ..)| v))
            .map(|v| self.vcpus[v].vruntime)
            .min();
        if let Some(floor) = floor {
            for &(v, woke, _) in &ready_list {
                if woke {
                    let e = &mut self.vcpus[v];
                    e.vruntime = e.vruntime.max(floor.saturating_sub(quantum));
                }
            }
        }
        let best = ready_list.iter().copied().min_by_key(|&(v, _, k)| (self.vcpus[v].vruntime, (k + n - turn) % n));
        // On a real-time hart (migrate, dedicated), a ready real-time vCPU
        // goes first, whatever its virtual runtime.
        let rt_first = (self.placement != Placement::Share && self.harts[h].rt)
            .then(|| {
                cur_ready.filter(|&c| self.vcpus[c].rt).or_else(|| {
                    ready_list
                        .iter()
                        .filter(|&&(v, ..)| self.vcpus[v].rt)
                        .min_by_key(|&&(v, ..)| self.vcpus[v].vruntime)
                        .map(|&(v, ..)| v)
                })
            })
            .flatten();
        let chosen = match (cur_ready, best) {
            _ if rt_first.is_some() => rt_first,
            (None, None) => None,
            (None, Some((b, _, _))) => Some(b),
            (Some(c), best) => {
                // A yield may not jump far ahead of a vCPU that is behind.
                let behind = best.map(|(b, ..)| self.vcpus[b].vruntime);
                let yielded = yield_to.filter(|y| {
                    ready_list.iter().any(|&(v, ..)| v == *y)
                        && behind.is_none_or(|b| self.vcpus[*y].vruntime <= b.saturating_add(quantum))
                });
                if let Some(y) = yielded {
                    Some(y)
                } else if let (true, Some((b, ..))) = (spun, best) {
                    self.stats.spin_yields += 1;
                    Some(b)
                } else {
                    match best {
                        None => Some(c),
                        Some((b, woke, _)) => {
                            let (vb, vc) = (self.vcpus[b].vruntime, self.vcpus[c].vruntime);
                            if woke && vb.saturating_add(quantum / 4) < vc {
                                self.stats.wakeup_preemptions += 1;
                                Some(b)
                            } else if ran >= quantum && vb < vc {
                                Some(b)
                            } else {
                                Some(c)
                            }
                        }
                    }
                }
            }
        };
        self.scratch = ready_list;
        let q = &mut self.harts[h];
        if let Some(v) = chosen {
            if Some(v) == cur {
                if q.ran >= quantum {
                    q.ran = 0; // a new quantum, with nobody behind it
                }
            } else if let Some(pos) = q.members.iter().position(|&m| m == v) {
                q.turn = (pos + 1) % n.max(1);
            }
        }
        chosen
    }

    /// Ends a round: every `balance_every` rounds, a balancing pass. A move
    /// it decides on is returned for the core to carry out with
    /// [`apply`](Self::apply) once the vCPUs in it are off their harts.
    /// `ready` must answer without changing anything.
    pub fn end_round(&mut self, ready: &dyn Fn(VcpuIndex) -> bool) -> Option<Rebalance> {
        self.rounds += 1;
        if self.rounds % self.params.balance_every.max(1) == 0 {
            self.balance(ready)
        } else {
            None
        }
    }

    /// One balancing pass (see the module docs): the move to make, if any.
    pub fn balance(&mut self, ready: &dyn Fn(VcpuIndex) -> bool) -> Option<Rebalance> {
        let counts: Vec<usize> = self.harts.values().map(|q| q.members.iter().filter(|&&v| ready(v)).count()).collect();
        for (q, &c) in self.harts.values_mut().zip(&counts) {
            q.idle_passes = if c == 0 { q.idle_passes.saturating_add(1) } else { 0 };
        }
        // The ready vCPU waiting for its turn that has received least, over
        // the crowded harts.
        let x = self
            .harts
            .iter()
            .filter(|(h, _)| counts[h.0] >= 2 && self.open(*h))
            .flat_map(|(_, q)| q.members.iter().copied().filter(|&v| Some(v) != q.current && ready(v)))
            .filter(|&v| !self.vcpus[v].rt)
            .min_by_key(|&v| (self.vcpus[v].received, v))?;
        // 1. An idle hart takes work.
        let idle = self
            .harts
            .iter()
            .find(|(h, q)| counts[h.0] == 0 && q.idle_passes >= self.params.idle_passes && self.open(*h))
            .map(|(h, _)| h);
        if let Some(to) = idle {
            return Some(Rebalance::Move { v: x, to });
        }
        // 2. The one furthest behind and the one alone furthest ahead swap
        // places.
        let y = self
            .harts
            .iter()
            .filter(|(h, _)| counts[h.0] == 1 && self.open(*h))
            .filter_map(|(_, q)| q.members.iter().copied().find(|&v| ready(v)))
            .filter(|&v| !self.vcpus[v].rt)
            .max_by_key(|&v| (self.vcpus[v].received, std::cmp::Reverse(v)))?;
        (self.vcpus[y].received > self.vcpus[x].received.saturating_add(self.params.lag_limit))
            .then_some(Rebalance::Swap { behind: x, ahead: y })
    }

    /// Carries out a move from [`end_round`](Self::end_round); the vCPUs in
    /// it must be current on no hart.
    pub fn apply(&mut self, plan: Rebalance) {
        match plan {
            Rebalance::Move { v, to } => self.migrate(v, to, true),
            Rebalance::Swap { behind, ahead } => {
                let (a, b) = (self.vcpus[behind].hart, self.vcpus[ahead].hart);
                self.migrate(ahead, a, false);
                self.migrate(behind, b, true);
            }
        }
    }

    /// Moves `v` to hart `to`'s queue, level with the least `vruntime`
    /// there (its own came from another hart's clock: any more would stall
    /// the others there, any less would stall it); `first`: it runs at the
    /// new hart's next pick.
    fn migrate(&mut self, v: VcpuIndex, to: HartIndex, first: bool) {
        let from = self.vcpus[v].hart;
        debug_assert_ne!(self.harts[from].current, Some(v), "{v} moves while on {from}");
        self.harts[from].members.retain(|&m| m != v);
        if self.harts[from].yield_to == Some(v) {
            self.harts[from].yield_to = None;
        }
        if let Some(floor) = self.harts[to].members.iter().map(|&m| self.vcpus[m].vruntime).min() {
            self.vcpus[v].vruntime = floor;
        }
        self.harts[to].members.push(v);
        if first {
            self.harts[to].yield_to = Some(v);
        }
        self.vcpus[v].hart = to;
        self.stats.migrations += 1;
    }

    /// Checks the invariants in the module docs; `Err` names the first one
    /// broken.
    pub fn check(&self) -> Result<(), String> {
        for (v, e) in self.vcpus.iter() {
            let homes: Vec<HartIndex> =
                self.harts.iter().filter(|(_, q)| q.members.contains(&v)).map(|(h, _)| h).collect();
            let want = if e.gone { vec![] } else { vec![e.hart] };
            if homes != want {
                return Err(format!("{v} is in the queues of {homes:?}, should be in {want:?}"));
            }
        }
        for (h, q) in self.harts.iter() {
            if let Some(&v) = q.members.iter().find(|&&v| self.vcpus[v].rt && !q.rt) {
                return Err(format!("real-time {v} is on {h}, which is not marked real-time"));
            }
            if self.placement == Placement::Dedicated && q.rt {
                if let Some(&v) = q.members.iter().find(|&&v| !self.vcpus[v].rt) {
                    return Err(format!("{v} is on the dedicated real-time {h}"));
                }
            }
            if let Some(c) = q.current {
                if !q.members.contains(&c) {
                    return Err(format!("{h} runs {c}, which is not in its queue"));
                }
                if self.harts.iter().any(|(g, p)| g != h && p.current == Some(c)) {
                    return Err(format!("{c} is current on two harts"));
                }
            }
        }
        Ok(())
    }
}

//! Real-time VMs and where their vCPUs run (issue 22; docs/realtime.md).
//!
//! A VM marked real-time names the harts it may use. The placement policy
//! ([`Placement`]) says what else runs there; the scheduler keeps the
//! queues ([`crate::sched`], "Real-time vCPUs and placement"), and this
//! module checks a configuration ([`Hypervisor::configure_placement`]) and
//! carries out `migrate`'s two moves on a real-time hart, at the start of
//! every pick of that hart (`Hypervisor::rt_moves`):
//!
//! | the real-time hart | move | cost |
//! |---|---|---|
//! | a real-time vCPU in its queue is ready (its timer is due, an interrupt or an IPI is pending) and vCPUs of other VMs are in its queue | **evict**: the one running is preempted and unloaded (its registers and CSRs saved); each goes to the queue of the least crowded hart no real-time vCPU is on, and that hart's thread is woken | unload + queue change here; the load on the new hart (registers, CSRs, `hgatp`, and `HFENCE.GVMA` of the VM's VMID, as it comes from another hart) |
//! | nothing in its queue is ready | **borrow**: the ready vCPU of another VM that waits for its turn on a crowded hart and has received least moves to this hart's queue, and runs at once | queue change here; the load |
//!
//! A moved vCPU leaves its translations behind on the old hart, tagged by
//! its VM's VMID: they are dropped when it or another vCPU of its VM comes
//! back there (`Hypervisor::load`, the stale check), not at the move; the
//! JIT's compiled code and jump cache are per hart too, so a vCPU's first
//! blocks on a hart it has not run on lately are compiled again (not in
//! the measured cost: it is paid as slower guest code).
//!
//! Both moves happen under the hypervisor's lock, on the real-time hart's
//! own thread, between two guest runs of it (at most a turn, 4096 slots,
//! apart): the latency a real-time vCPU sees from a borrowed hart is at
//! most one turn of the borrower plus the eviction.
//!
//! Counters: [`crate::SchedStats`] (`rt_borrows`, `rt_evictions`,
//! `rt_preemptions`, `migrations`, `foreign_slots_on_rt`, `move_ns` over
//! `timed_moves`).

use std::time::Instant;

use crate::hart::HartOps;
use crate::ids::{HartIndex, VcpuIndex, VmIndex};
pub use crate::sched::Placement;
use crate::{ready_now, Hypervisor};

/// A placement the machine cannot honour (`strata run` exits 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("VM {vm}: real-time hart {hart} does not exist (the machine has {harts} harts)")]
    NoSuchHart { vm: String, hart: usize, harts: usize },
    #[error("VM {vm}: realtime needs at least one hart it may use")]
    NoHarts { vm: String },
    #[error(
        "--placement dedicated: VM {vm} has {vcpus} real-time vCPUs but {harts} harts of its own; each real-time vCPU needs a hart"
    )]
    TooFewHarts { vm: String, vcpus: usize, harts: usize },
    #[error(
        "--placement dedicated: VMs {a} and {b} both name hart {hart}; real-time VMs cannot share a dedicated hart"
    )]
    Overlap { a: String, b: String, hart: usize },
    #[error(
        "--placement {placement}: the real-time VMs take all {harts} harts and leave none for the other VMs; give more harts or fewer real-time ones"
    )]
    NoHartForOthers { placement: Placement, harts: usize },
    #[error("--placement {0}: no VM is realtime (mark one with realtime = true in the --config file)")]
    NoRealtimeVm(Placement),
    #[error("the placement is set before the VMs first run")]
    Running,
}

impl Hypervisor {
    /// Marks the VMs in `rt` real-time, each with the harts it may use,
    /// and places every vCPU under `placement` (see [`PlacementError`] for
    /// what is refused). Before the harts first run.
    pub fn configure_placement(
        &mut self,
        placement: Placement,
        rt: &[(VmIndex, Vec<HartIndex>)],
    ) -> Result<(), PlacementError> {
        let harts = self.harts.len();
        if rt.is_empty() {
            return if placement == Placement::Share { Ok(()) } else { Err(PlacementError::NoRealtimeVm(placement)) };
        }
        if self.vcpus.values().any(|c| c.loaded_on.is_some()) {
            return Err(PlacementError::Running);
        }
        let name = |vm: VmIndex| self.vms[vm].name.clone();
        let mut owner: Vec<Option<VmIndex>> = vec![None; harts];
        let mut pins = Vec::new();
        for (vm, hs) in rt {
            if hs.is_empty() {
                return Err(PlacementError::NoHarts { vm: name(*vm) });
            }
            if let Some(h) = hs.iter().find(|h| h.0 >= harts) {
                return Err(PlacementError::NoSuchHart { vm: name(*vm), hart: h.0, harts });
            }
            let vcpus = self.vms[*vm].vcpus.clone();
            if placement == Placement::Dedicated {
                if vcpus.len() > hs.len() {
                    return Err(PlacementError::TooFewHarts { vm: name(*vm), vcpus: vcpus.len(), harts: hs.len() });
                }
                if let Some((h, other)) = hs.iter().find_map(|h| owner[h.0].filter(|o| o != vm).map(|o| (h, o))) {
                    return Err(PlacementError::Overlap { a: name(other), b: name(*vm), hart: h.0 });
                }
            }
            for h in hs {
                owner[h.0] = Some(*vm);
            }
            for (k, &v) in vcpus.iter().enumerate() {
                pins.push((v, hs[k % hs.len()]));
            }
        }
        let others = self.vms.iter().any(|(i, v)| !v.retired && !rt.iter().any(|(r, _)| *r == i));
        if placement != Placement::Share && others && owner.iter().all(|o| o.is_some()) {
            return Err(PlacementError::NoHartForOthers { placement, harts });
        }
        self.sched.place(placement, &pins);
        Ok(())
    }

    pub fn placement(&self) -> Placement {
        self.sched.placement()
    }

    /// `migrate`, at the start of a pick on hart `h`: evicts other VMs'
    /// vCPUs from a real-time hart whose real-time vCPU is ready, or lets
    /// an idle real-time hart borrow one (module docs). The harts that
    /// got an evicted vCPU are woken by the caller's end of turn
    /// (`harts_with_work`).
    pub(crate) fn rt_moves(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, now: u64) {
        if self.sched.placement() != Placement::Migrate || !self.sched.is_rt_hart(h) {
            return;
        }
        let (vms, vcpus) = (&self.vms, &self.vcpus);
        let queue = self.sched.queue(h);
        let rt_ready = queue.iter().any(|&v| self.sched.is_rt(v) && ready_now(vms, vcpus, v, now));
        let any_ready = rt_ready || queue.iter().any(|&v| ready_now(vms, vcpus, v, now));
        if rt_ready {
            for v in self.sched.guests_of(h) {
                let t0 = Instant::now();
                let running = self.sched.current(h) == Some(v);
                if running {
                    self.unload(harts, h);
                }
                self.sched.evict(v, running);
                self.vcpus[v].move_ns = Some(t0.elapsed().as_nanos() as u64);
            }
            return;
        }
        if any_ready {
            return;
        }
        let (vms, vcpus) = (&self.vms, &self.vcpus);
        if let Some(v) = self.sched.borrowable(h, &|v| ready_now(vms, vcpus, v, now)) {
            let t0 = Instant::now();
            self.sched.borrow(v, h);
            self.vcpus[v].move_ns = Some(t0.elapsed().as_nanos() as u64);
        }
    }

    /// Completes the cost of a real-time move of `v` with its load on the
    /// new hart, which took `load_ns`.
    pub(crate) fn moved_in(&mut self, v: VcpuIndex, load_ns: u64) {
        if let Some(ns) = self.vcpus[v].move_ns.take() {
            self.sched.note_move_cost(ns.saturating_add(load_ns));
        }
    }
}

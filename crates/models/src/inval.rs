//! A page leaves a VM while other harts run: ownership change, shootdown,
//! hand-over.
//!
//! The protocol modelled is the one `strata_hypervisor::shootdown`
//! documents, over the real [`Tracker`] (the model calls it; it is not
//! restated here), with the hypervisor's default invalidation policy (drop
//! exactly the entries that reach the page, `strata_hypervisor::inval`):
//!
//! | step | action | who | what |
//! | --- | --- | --- | --- |
//! | 1–2 | [`Action::Take`] | initiator hart | the tracker takes the page from its VM (`reclaim` by the hypervisor, or the VM's `donate` to the other VM); the mappings it lists leave the G-stage tables; the initiator drops its own entries and posts the list to every other hart's inbox, keeping each inbox's sequence number as a ticket |
//! | 3 | [`Action::Serve`] | any hart, at a safe point (no walk in flight) | drops the TLB entries the inbox names and acknowledges up to the inbox's last sequence number |
//! | 4 | [`Action::Wait`] | initiator | enabled once every other hart acknowledged its ticket; meanwhile the initiator serves its own inbox like any hart |
//! | 5 | [`Action::HandOver`] | initiator | the page is zeroed if it awaits it and given to its next VM, which maps it |
//!
//! Meanwhile every hart that is not inside an operation runs guest code,
//! which here means [`Action::Walk`] (a G-stage walk reads the leaf for a
//! VM's guest-physical address) and [`Action::Fill`] (the walk's result
//! enters the TLB) — two steps, because another hart may change the tables
//! between them.
//!
//! **Invariant "isolation"**: no hart holds in its TLB, or in a walk in
//! flight, a translation from VM `v` to a page that was handed to another
//! VM after `v` lost it (unless `v` maps that page again at that address).
//! **Invariant "progress"**: while an operation is under way some action is
//! enabled (two initiators never wait for each other forever).
//!
//! Configuration: [`HARTS`] harts, VMs 1 and 2 (not protected), each
//! owning one page mapped at the first of two guest-physical addresses;
//! at most [`MAX_OPS`] operations.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use stateright::{Model, Property};
use strata_ownership::{MachinePage, Owner, PageZeroer, Perms, Tracker, VmId, ZeroFailed};

/// Harts in the model.
pub const HARTS: usize = 3;
/// Operations (a page taken and handed over) per run.
pub const MAX_OPS: u8 = 3;

const VMS: [VmId; 2] = [VmId(1), VmId(2)];
const GPAS: [u64; 2] = [0x8000_0000, 0x8000_1000];
/// The machine pages, one per VM at the start.
const BASE_PFN: u64 = 0x80000;
const PAGES: u64 = 2;

/// One step of the protocol left out, to show the checker notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// The protocol as documented.
    None,
    /// Step 4 skipped: the page is handed over before the others acknowledge.
    NoWait,
    /// Step 3 at any point, even with a walk in flight (no safe-point rule).
    ServeInsideWalk,
    /// The initiator forgets its own TLB in step 2.
    InitiatorKeepsOwn,
    /// A waiting initiator does not serve its own inbox.
    NoServeWhileWaiting,
}

/// The model: the mutation in force.
#[derive(Clone, Debug)]
pub struct Inval {
    pub mutation: Mutation,
}

/// A cached G-stage translation: VM, guest-physical address, machine page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub vm: u32,
    pub gpa: u64,
    pub pfn: u64,
}

/// What a hart's current hypervisor operation is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Idle,
    /// Step 4: until every hart's acknowledgement reaches its ticket.
    Waiting {
        pfn: u64,
        tickets: [u64; HARTS],
    },
    /// Step 5 next.
    Acked {
        pfn: u64,
    },
}

impl Op {
    fn pfn(self) -> Option<u64> {
        match self {
            Op::Idle => None,
            Op::Waiting { pfn, .. } | Op::Acked { pfn } => Some(pfn),
        }
    }
}

/// One hart: its TLB, a walk in flight, its inbox and operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hart {
    pub tlb: BTreeSet<Entry>,
    pub walk: Option<Entry>,
    /// (VM, page) pairs whose translations this hart must drop.
    pub inbox: BTreeSet<(u32, u64)>,
    /// Sequence number of the last request posted to this hart.
    pub posted: u64,
    /// Sequence number this hart has acknowledged.
    pub done: u64,
    pub op: Op,
}

/// The tracker, compared and hashed by what it records (owners, pending
/// zeroing, mappings), so the checker can tell states apart.
#[derive(Clone, Debug)]
pub struct Ownership(pub Tracker);

/// One page as the model compares it: frame number, owner, awaiting zero,
/// who maps it (VM, gpa).
type PageKey = (u64, Owner, bool, Vec<(u32, u64)>);

impl Ownership {
    fn key(&self) -> Vec<PageKey> {
        self.0
            .pages()
            .map(|p| {
                let owner = self.0.owner(p).unwrap_or(Owner::Free);
                (p.pfn(), owner, self.0.awaiting_zero(p), self.0.who_maps(p).iter().map(|&(v, g)| (v.0, g)).collect())
            })
            .collect()
    }
}

impl PartialEq for Ownership {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Hash for Ownership {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

/// The whole system, plus the ghost state the invariant reads.
#[derive(Clone, Debug, PartialEq, Hash)]
pub struct State {
    pub own: Ownership,
    pub harts: [Hart; HARTS],
    /// Ghost: (VM, page) pairs whose mapping step 1 removed, page not yet handed over.
    pub leaving: BTreeSet<(u32, u64)>,
    /// Ghost: (VM, page) pairs where the page went to another VM after this one lost it.
    pub gone: BTreeSet<(u32, u64)>,
    pub ops: u8,
}

/// An address in an action, printed in hex in counterexamples.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex(pub u64);

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Walk {
        hart: usize,
        vm: u32,
        gpa: Hex,
    },
    Fill {
        hart: usize,
    },
    Serve {
        hart: usize,
    },
    /// Steps 1–2 for machine page `pfn`: `Some(to)` is its VM donating it to `to`; `None` the hypervisor reclaiming it.
    Take {
        hart: usize,
        pfn: Hex,
        to: Option<u32>,
    },
    Wait {
        hart: usize,
    },
    HandOver {
        hart: usize,
        to: u32,
        gpa: Hex,
    },
}

struct NoData;
impl PageZeroer for NoData {
    fn zero_page(&mut self, _: MachinePage) -> Result<(), ZeroFailed> {
        Ok(())
    }
}

impl Inval {
    fn initial(&self) -> State {
        let mut t = Tracker::new(MachinePage::from_pfn(BASE_PFN), PAGES).expect("model tracker");
        for (i, vm) in VMS.iter().enumerate() {
            let page = MachinePage::from_pfn(BASE_PFN + i as u64);
            t.create_vm(*vm, false).expect("model VM");
            t.alloc(page, Owner::Vm(*vm)).expect("model page");
            t.map(*vm, GPAS[0], page, Perms::RW).expect("model mapping");
        }
        let hart = Hart { tlb: BTreeSet::new(), walk: None, inbox: BTreeSet::new(), posted: 0, done: 0, op: Op::Idle };
        State {
            own: Ownership(t),
            harts: std::array::from_fn(|_| hart.clone()),
            leaving: BTreeSet::new(),
            gone: BTreeSet::new(),
            ops: 0,
        }
    }

    fn may_serve(&self, h: &Hart) -> bool {
        !h.inbox.is_empty()
            && (h.walk.is_none() || self.mutation == Mutation::ServeInsideWalk)
            && !(self.mutation == Mutation::NoServeWhileWaiting && matches!(h.op, Op::Waiting { .. }))
    }
}

fn drop_entries(h: &mut Hart, gone: &BTreeSet<(u32, u64)>) {
    h.tlb.retain(|e| !gone.contains(&(e.vm, e.pfn)));
}

impl Model for Inval {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        for (hart, h) in s.harts.iter().enumerate() {
            if self.may_serve(h) {
                out.push(Action::Serve { hart });
            }
            if h.walk.is_some() {
                out.push(Action::Fill { hart });
                continue;
            }
            match h.op {
                Op::Idle => {
                    for vm in VMS {
                        for gpa in GPAS {
                            if let Some((page, _)) = s.own.0.lookup(vm, gpa) {
                                let e = Entry { vm: vm.0, gpa, pfn: page.pfn() };
                                if !h.tlb.contains(&e) {
                                    out.push(Action::Walk { hart, vm: vm.0, gpa: Hex(gpa) });
                                }
                            }
                        }
                    }
                    if s.ops < MAX_OPS {
                        // A page already inside an operation is not taken again
                        // (the hypervisor marks it in transit).
                        let busy: Vec<u64> = s.harts.iter().filter_map(|h| h.op.pfn()).collect();
                        for page in s.own.0.pages().filter(|p| !busy.contains(&p.pfn())) {
                            if let Ok(Owner::Vm(from)) = s.own.0.owner(page) {
                                out.push(Action::Take { hart, pfn: Hex(page.pfn()), to: None });
                                for to in VMS.iter().filter(|v| **v != from) {
                                    out.push(Action::Take { hart, pfn: Hex(page.pfn()), to: Some(to.0) });
                                }
                            }
                        }
                    }
                }
                Op::Waiting { tickets, .. } => {
                    let acked = s.harts.iter().zip(tickets).all(|(o, t)| o.done >= t);
                    if acked || self.mutation == Mutation::NoWait {
                        out.push(Action::Wait { hart });
                    }
                }
                Op::Acked { pfn } => {
                    let page = MachinePage::from_pfn(pfn);
                    let owner = s.own.0.owner(page).unwrap_or(Owner::Free);
                    for vm in VMS {
                        // A donated page goes to the VM it was donated to;
                        // a reclaimed one to either.
                        if owner != Owner::Hypervisor && owner != Owner::Vm(vm) {
                            continue;
                        }
                        if let Some(&gpa) = GPAS.iter().find(|&&g| s.own.0.lookup(vm, g).is_none()) {
                            out.push(Action::HandOver { hart, to: vm.0, gpa: Hex(gpa) });
                        }
                    }
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Walk { hart, vm, gpa: Hex(gpa) } => {
                let (page, _) = s.own.0.lookup(VmId(vm), gpa)?;
                s.harts[hart].walk = Some(Entry { vm, gpa, pfn: page.pfn() });
            }
            Action::Fill { hart } => {
                let h = &mut s.harts[hart];
                let e = h.walk.take()?;
                h.tlb.insert(e);
            }
            Action::Serve { hart } => {
                let h = &mut s.harts[hart];
                let inbox = std::mem::take(&mut h.inbox);
                drop_entries(h, &inbox);
                h.done = h.posted;
            }
            Action::Take { hart, pfn: Hex(pfn), to } => {
                let page = MachinePage::from_pfn(pfn);
                let effects = match to {
                    None => s.own.0.reclaim(Owner::Hypervisor, page),
                    Some(to) => {
                        let from = s.own.0.owner(page).ok()?;
                        s.own.0.donate(from, page, Owner::Vm(VmId(to)))
                    }
                }
                .ok()?;
                let removed: BTreeSet<(u32, u64)> = effects.unmapped.iter().map(|u| (u.vm.0, u.page.pfn())).collect();
                s.leaving.extend(removed.iter().copied());
                let mut tickets = [0; HARTS];
                for (j, h) in s.harts.iter_mut().enumerate() {
                    if j == hart {
                        if self.mutation != Mutation::InitiatorKeepsOwn {
                            drop_entries(h, &removed);
                        }
                    } else {
                        h.inbox.extend(removed.iter().copied());
                        h.posted += 1;
                        tickets[j] = h.posted;
                    }
                }
                s.harts[hart].op = Op::Waiting { pfn, tickets };
            }
            Action::Wait { hart } => {
                let Op::Waiting { pfn, .. } = s.harts[hart].op else { return None };
                s.harts[hart].op = Op::Acked { pfn };
            }
            Action::HandOver { hart, to, gpa: Hex(gpa) } => {
                let Op::Acked { pfn } = s.harts[hart].op else { return None };
                let page = MachinePage::from_pfn(pfn);
                let vm = VmId(to);
                s.own.0.zero_page(page, &mut NoData).ok()?;
                if s.own.0.owner(page).ok()? == Owner::Hypervisor {
                    let eff = s.own.0.donate(Owner::Hypervisor, page, Owner::Vm(vm)).ok()?;
                    debug_assert!(eff.unmapped.is_empty());
                }
                s.own.0.map(vm, gpa, page, Perms::RW).ok()?;
                let left: Vec<(u32, u64)> = s.leaving.iter().filter(|l| l.1 == pfn).copied().collect();
                for l in left {
                    s.leaving.remove(&l);
                    if l.0 != to {
                        s.gone.insert(l);
                    }
                }
                s.gone.remove(&(to, pfn));
                s.harts[hart].op = Op::Idle;
                s.ops += 1;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("isolation", |_, s: &State| {
                s.harts.iter().all(|h| {
                    h.tlb.iter().chain(h.walk.iter()).all(|e| {
                        !s.gone.contains(&(e.vm, e.pfn))
                            || s.own.0.lookup(VmId(e.vm), e.gpa).map(|(p, _)| p.pfn()) == Some(e.pfn)
                    })
                })
            }),
            Property::always("progress", |m: &Self, s: &State| {
                if s.harts.iter().all(|h| h.op == Op::Idle) {
                    return true;
                }
                let mut next = Vec::new();
                m.actions(s, &mut next);
                !next.is_empty()
            }),
            // Situations the model must reach for the invariants to mean something.
            Property::sometimes("a walk in flight read a mapping that is gone", |_, s: &State| {
                s.harts
                    .iter()
                    .filter_map(|h| h.walk)
                    .any(|e| s.own.0.lookup(VmId(e.vm), e.gpa).map(|(p, _)| p.pfn()) != Some(e.pfn))
            }),
            Property::sometimes("two harts inside operations at once", |_, s: &State| {
                s.harts.iter().filter(|h| h.op != Op::Idle).count() >= 2
            }),
            Property::sometimes("a page handed over to the other VM", |_, s: &State| !s.gone.is_empty()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: &str = "invalidation by physical address";

    #[test]
    fn the_shootdown_protocol_keeps_every_page_that_changed_hands_out_of_every_tlb() {
        crate::assert_passes(TITLE, Inval { mutation: Mutation::None }, 1000);
    }

    #[test]
    fn each_step_left_out_gives_a_counterexample() {
        crate::assert_breaks(
            TITLE,
            [
                (Mutation::NoWait, "isolation"),
                (Mutation::ServeInsideWalk, "isolation"),
                (Mutation::InitiatorKeepsOwn, "isolation"),
                (Mutation::NoServeWhileWaiting, "progress"),
            ]
            .map(|(mutation, property)| (Inval { mutation }, property)),
        );
    }
}

//! Shadow paging: keeping shadow tables in step with the guest's page
//! tables and the VM's G-stage map while two vCPUs run.
//!
//! In shadow mode (issue 21) the hart walks one-dimensional *shadow* tables
//! that the hypervisor builds by composing the guest's VS-stage tables with
//! the VM's guest-physical map. The protocol modelled — the one Strata's
//! shadow mode is to implement; this model is its specification:
//!
//! | event | who | what |
//! | --- | --- | --- |
//! | guest writes a page-table entry | trap (the guest's table pages are write-protected) | the hypervisor emulates the write, drops the shadow entry it fed, and bumps the VM's shadow generation; the vCPUs' TLBs are untouched (the guest must fence, as on hardware) |
//! | TLB miss, shadow entry present | the vCPU | the walk of the shadow table fills the TLB |
//! | TLB miss, no shadow entry ([`Action::Fault`]) | shadow fault | the hypervisor reads the guest's entry and the G-stage leaf, noting the generation… |
//! | … ([`Action::Install`]) | hypervisor | …and installs the composed entry only if the generation is unchanged; otherwise it retries |
//! | guest `SFENCE.VMA` | trap (`hstatus.VTVM`) | the vCPU's TLB entries for the address go |
//! | a device writes the guest's entry (virtio DMA into a table page, [`Action::DeviceWrite`]) | nobody: no trap | the write is logged (the VM's DMA map logs writes to pages the hypervisor watches as tables) |
//! | the log is drained ([`Action::Drain`]) | hypervisor: whenever it likes (before a vCPU runs), and always at a fence and a shadow fault | the shadow entries made through a logged page go and the generation is bumped |
//! | a page leaves the VM | hypervisor | the G-stage leaf goes, every shadow entry that reached the page goes (the shadow reverse map), every vCPU's TLB entries for it go (the shootdown of [`crate::inval`]), and the generation is bumped |
//!
//! **Invariant "shadow exact"**: a shadow entry is always what the guest's
//! current entry and the current G-stage give together — unless a device
//! write is logged and not yet drained (a device's write is seen late, but
//! before the guest's next fence, which the TLB invariant checks).
//! **Invariant "TLB within what the guest allowed"**: a vCPU's TLB entry
//! reaches a page the VM still has, through a value the guest's entry held
//! at some point since that vCPU's last fence (RISC-V lets a hart use a
//! stale translation until it fences — Privileged §4.2.1 — and no more).
//!
//! Configuration: one guest-virtual page, two guest-physical pages (each
//! backed by its own machine page), two vCPUs, at most [`MAX_WRITES`] guest
//! page-table writes, [`MAX_DEVICE_WRITES`] device writes and one page
//! leaving the VM.

use std::collections::BTreeSet;

use stateright::{Model, Property};

/// Guest page-table writes per run.
pub const MAX_WRITES: u8 = 4;
/// Device writes to the guest's table page per run.
pub const MAX_DEVICE_WRITES: u8 = 2;
const VCPUS: usize = 2;
const GPAS: u8 = 2;

/// One step of the protocol left out, to show the checker notices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    None,
    /// The guest's page-table pages are not write-protected: its writes
    /// reach memory without the hypervisor seeing them.
    NoWriteProtect,
    /// The shadow fault installs what it read without checking that nothing
    /// changed since.
    NoGenerationCheck,
    /// The intercepted fence does not reach the vCPU's TLB.
    FenceIgnored,
    /// A page leaving the VM is removed from the G-stage and the TLBs but not
    /// from the shadow tables.
    NoReverseMap,
    /// Device writes to table pages are not logged (the hole before the
    /// DMA map's log).
    NoDeviceLog,
    /// The intercepted fence does not drain the log first.
    NoDrainAtFence,
    /// Draining the log does not bump the generation.
    NoDrainGeneration,
}

#[derive(Clone, Debug)]
pub struct Shadow {
    pub mutation: Mutation,
}

/// A machine page, by number (gpa `i` is backed by machine page `i`).
type Page = u8;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vcpu {
    pub tlb: Option<Page>,
    /// A shadow fault between reading and installing: the composed page and
    /// the generation it was read at.
    pub fault: Option<(Page, u8)>,
    /// Ghost: the guest entry's values since this vCPU's last fence.
    pub allowed: BTreeSet<Option<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The guest's page-table entry for the one guest-virtual page: a gpa or invalid.
    pub guest_pte: Option<u8>,
    /// The G-stage: which machine page backs each gpa.
    pub gstage: [Option<Page>; GPAS as usize],
    pub shadow: Option<Page>,
    pub generation: u8,
    pub vcpus: [Vcpu; VCPUS],
    pub writes: u8,
    pub device_writes: u8,
    /// A device write to the table page is logged and not yet drained.
    pub logged: bool,
    /// Ghost: pages that left the VM.
    pub gone: BTreeSet<Page>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// vCPU writes the guest entry.
    Write {
        vcpu: usize,
        value: Option<u8>,
    },
    /// TLB miss served by the shadow table.
    Refill {
        vcpu: usize,
    },
    /// TLB miss and shadow miss: the hypervisor reads the guest's entry and the G-stage.
    Fault {
        vcpu: usize,
    },
    /// The shadow fault installs its entry (or retries).
    Install {
        vcpu: usize,
    },
    Fence {
        vcpu: usize,
    },
    /// The page behind a gpa leaves the VM.
    Leave {
        gpa: u8,
    },
    /// A device writes the guest entry (no trap).
    DeviceWrite {
        value: Option<u8>,
    },
    /// The hypervisor drains the log of device writes.
    Drain,
}

impl State {
    fn compose(&self, pte: Option<u8>) -> Option<Page> {
        self.gstage[usize::from(pte?)]
    }
}

impl Shadow {
    /// Drains the log: the shadow entries made through the logged table
    /// page go, and the generation moves.
    fn drain(&self, s: &mut State) {
        if s.logged {
            s.logged = false;
            s.shadow = None;
            if self.mutation != Mutation::NoDrainGeneration {
                s.generation += 1;
            }
        }
    }
}

impl Model for Shadow {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let vcpu = Vcpu { tlb: None, fault: None, allowed: BTreeSet::from([Some(0)]) };
        vec![State {
            guest_pte: Some(0),
            gstage: [Some(0), Some(1)],
            shadow: None,
            generation: 0,
            vcpus: [vcpu.clone(), vcpu],
            writes: 0,
            device_writes: 0,
            logged: false,
            gone: BTreeSet::new(),
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        for (vcpu, v) in s.vcpus.iter().enumerate() {
            if v.fault.is_some() {
                out.push(Action::Install { vcpu });
                continue;
            }
            if s.writes < MAX_WRITES {
                for value in [None, Some(0), Some(1)] {
                    if value != s.guest_pte {
                        out.push(Action::Write { vcpu, value });
                    }
                }
            }
            if v.tlb.is_none() {
                if s.shadow.is_some() {
                    out.push(Action::Refill { vcpu });
                } else if s.compose(s.guest_pte).is_some() {
                    out.push(Action::Fault { vcpu });
                }
            }
            out.push(Action::Fence { vcpu });
        }
        if s.gone.is_empty() {
            for gpa in 0..GPAS {
                out.push(Action::Leave { gpa });
            }
        }
        if s.device_writes < MAX_DEVICE_WRITES {
            for value in [None, Some(0), Some(1)] {
                if value != s.guest_pte {
                    out.push(Action::DeviceWrite { value });
                }
            }
        }
        if s.logged {
            out.push(Action::Drain);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Write { value, .. } => {
                s.guest_pte = value;
                s.writes += 1;
                for v in &mut s.vcpus {
                    v.allowed.insert(value);
                }
                if self.mutation != Mutation::NoWriteProtect {
                    s.shadow = None;
                    s.generation += 1;
                }
            }
            Action::Refill { vcpu } => s.vcpus[vcpu].tlb = Some(s.shadow?),
            Action::Fault { vcpu } => {
                self.drain(&mut s);
                let page = s.compose(s.guest_pte)?;
                s.vcpus[vcpu].fault = Some((page, s.generation));
            }
            Action::Install { vcpu } => {
                let (page, read_at) = s.vcpus[vcpu].fault.take()?;
                if read_at == s.generation || self.mutation == Mutation::NoGenerationCheck {
                    s.shadow = Some(page);
                    s.vcpus[vcpu].tlb = Some(page);
                }
            }
            Action::Fence { vcpu } => {
                if self.mutation != Mutation::NoDrainAtFence {
                    self.drain(&mut s);
                }
                let current = s.guest_pte;
                let v = &mut s.vcpus[vcpu];
                if self.mutation != Mutation::FenceIgnored {
                    v.tlb = None;
                }
                v.allowed = BTreeSet::from([current]);
            }
            Action::Leave { gpa } => {
                let page = s.gstage[usize::from(gpa)].take()?;
                s.gone.insert(page);
                if self.mutation != Mutation::NoReverseMap && s.shadow == Some(page) {
                    s.shadow = None;
                }
                for v in &mut s.vcpus {
                    if v.tlb == Some(page) {
                        v.tlb = None;
                    }
                }
                s.generation += 1;
            }
            Action::DeviceWrite { value } => {
                s.guest_pte = value;
                s.device_writes += 1;
                for v in &mut s.vcpus {
                    v.allowed.insert(value);
                }
                if self.mutation != Mutation::NoDeviceLog {
                    s.logged = true;
                }
            }
            Action::Drain => self.drain(&mut s),
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("shadow exact", |_, s: &State| {
                s.logged || s.shadow.is_none() || s.shadow == s.compose(s.guest_pte)
            }),
            Property::always("TLB within what the guest allowed", |_, s: &State| {
                s.vcpus.iter().all(|v| match v.tlb {
                    None => true,
                    Some(page) => !s.gone.contains(&page) && v.allowed.iter().any(|&pte| s.compose(pte) == Some(page)),
                })
            }),
            Property::sometimes("a shadow fault in flight was overtaken", |_, s: &State| {
                s.vcpus.iter().any(|v| v.fault.is_some_and(|(_, at)| at != s.generation))
            }),
            Property::sometimes("a vCPU uses a translation the guest has changed", |_, s: &State| {
                s.vcpus.iter().any(|v| v.tlb.is_some() && s.compose(s.guest_pte) != v.tlb)
            }),
            Property::sometimes("a stale shadow entry awaits the drain of a device write", |_, s: &State| {
                s.logged && s.shadow.is_some() && s.shadow != s.compose(s.guest_pte)
            }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TITLE: &str = "shadow paging";

    #[test]
    fn shadow_tables_never_grant_more_than_the_guest_and_the_g_stage_allow() {
        crate::assert_passes(TITLE, Shadow { mutation: Mutation::None }, 100);
    }

    #[test]
    fn each_step_left_out_gives_a_counterexample() {
        crate::assert_breaks(
            TITLE,
            [
                (Mutation::NoWriteProtect, "shadow exact"),
                (Mutation::NoGenerationCheck, "shadow exact"),
                (Mutation::FenceIgnored, "TLB within what the guest allowed"),
                (Mutation::NoReverseMap, "shadow exact"),
                (Mutation::NoDeviceLog, "shadow exact"),
                (Mutation::NoDrainAtFence, "TLB within what the guest allowed"),
                (Mutation::NoDrainGeneration, "shadow exact"),
            ]
            .map(|(mutation, property)| (Shadow { mutation }, property)),
        );
    }
}

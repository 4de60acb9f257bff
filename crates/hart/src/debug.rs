//! What a debugger (the gdb stub, `crates/gdb`) needs from a hart, apart
//! from the fast path: running until the pc reaches a breakpoint, one
//! instruction at a time, CSRs without access checks, and addresses
//! translated through the hart's current translation without side effects.
//!
//! Breakpoints are a pc check *before* an instruction runs, never a patch
//! of guest memory, so the decoded-code cache and the JIT need not know of
//! them. [`Hart::run_until`] is [`Hart::run`] with that check: a page that
//! holds no breakpoint runs as usual (decoded-code cache, JIT); a page that
//! holds one runs one instruction at a time, the pc checked before each.
//! [`Hart::run`] itself is unchanged: a machine with no debugger attached
//! never comes here.
//!
//! | call | runs | stops |
//! | --- | --- | --- |
//! | [`Hart::run_until`] | up to `budget` slots, interrupts taken as in `run` | before an instruction at a breakpoint (it has not run), WFI, budget |
//! | [`Hart::step_one`] | one instruction, or the trap it raises | after it; interrupts are not taken (as QEMU's default single step, `SSTEP_NOIRQ`) |
//! | [`Hart::run_watched`] | as `run_until`, every instruction one at a time | also after an instruction whose data access the caller's watch accepts |
//! | [`Hart::step_watched`] | as `step_one` | after it; also says which data it read or wrote (by virtual address), if it retired |
//! | [`Hart::debug_translate`] | a page-table walk of the current translation | never sets A/D, never touches the TLB or the walk counters |
//!
//! Watchpoints are the stub's business, not the hart's: the hart only
//! reports, for an instruction it ran with [`Hart::step_watched`], the data
//! it accessed ([`Touched`], from [`isa::data_access`]); the machine
//! compares that with gdb's watched ranges. An instruction that trapped
//! accessed nothing (its effects are undone, Priv. §1.6 precise traps), so
//! it touches nothing. HLV/HSV are not reported: their address is a
//! guest's virtual address, not one of the current translation.

use std::collections::BTreeSet;

use crate::csr::{hgatp, satp};
use crate::{isa, Bus, Hart, Priv, RunExit, CACHE_BLOCK_SIZE};
use strata_memory::GuestRam;
use strata_mmu::walk::{self, PtMemory, Scheme};
use strata_mmu::Access;

/// The data an instruction run by [`Hart::step_watched`] accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touched {
    /// The first byte's virtual address.
    pub va: u64,
    pub len: u64,
    pub read: bool,
    pub write: bool,
}

/// What stopped [`Hart::run_watched`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugHit {
    /// The pc reached a breakpoint; the instruction there has not run.
    Break,
    /// The instruction before the pc touched a watched byte.
    Watch(Touched),
}

/// Page-table memory for a debugger's walk: PTEs read from RAM (through
/// the G-stage first when `g` is set), A/D updates reported done without
/// writing, so that looking at memory changes nothing the guest can see.
struct PeekPt<'a> {
    ram: &'a GuestRam,
    /// The G-stage (scheme, root page) that PTE addresses go through: the
    /// VS-stage tables of a two-stage translation live in guest-physical
    /// memory (Priv. §8.5.1).
    g: Option<(Scheme, u64)>,
    /// The G-stage walk's options (Svnapot, Svpbmt).
    gopts: walk::Options,
}

impl PtMemory for PeekPt<'_> {
    type Error = ();
    fn read_pte(&mut self, addr: u64) -> Result<u64, ()> {
        let pa = match self.g {
            Some((scheme, root)) => g_translate(self.ram, scheme, root, addr, self.gopts).ok_or(())?,
            None => addr,
        };
        self.ram.load(pa, 8).map_err(|_| ())
    }
    fn update_pte(&mut self, _addr: u64, _old: u64, _new: u64) -> Result<bool, ()> {
        // §4.3.2 step 7 would set A (and D); a debugger's look must not.
        Ok(true)
    }
}

/// The G-stage walk of guest-physical `gpa` (§8.5.1: every G-stage access
/// is checked as a U-mode one).
fn g_translate(ram: &GuestRam, scheme: Scheme, root: u64, gpa: u64, opts: walk::Options) -> Option<u64> {
    let perms = walk::Perms { user: true, sum: false, mxr: true, hlvx: false };
    walk::walk_opts(&mut PeekPt { ram, g: None, gopts: opts }, scheme, root, gpa, Access::Load, perms, opts)
        .ok()
        .map(|l| l.pa)
}

fn scheme_of_atp(atp: u64) -> Option<Scheme> {
    match atp >> satp::MODE_SHIFT {
        satp::SV39 => Some(Scheme::SV39),
        satp::SV48 => Some(Scheme::SV48),
        _ => None,
    }
}

impl Hart {
    /// As [`run`](Self::run), but stops before running an instruction whose
    /// pc is in `breaks`: returns the slots used, why it stopped, and
    /// whether a breakpoint stopped it (then `self.pc` is that breakpoint
    /// and the instruction there has not run).
    pub fn run_until(&mut self, bus: &mut dyn Bus, budget: u64, breaks: &BTreeSet<u64>) -> (u64, RunExit, bool) {
        let (used, exit, hit) = self.run_debug(bus, budget, breaks, None);
        (used, exit, hit == Some(DebugHit::Break))
    }

    /// As [`run_until`](Self::run_until), with every instruction run one at
    /// a time by [`step_watched`](Self::step_watched) and its data access
    /// shown to `watch`; the hart stops *after* an instruction for which
    /// `watch` says true (as a data watchpoint stops on hardware: the access
    /// has happened). The third value says what stopped it.
    pub fn run_watched(
        &mut self,
        bus: &mut dyn Bus,
        budget: u64,
        breaks: &BTreeSet<u64>,
        watch: &mut dyn FnMut(Touched) -> bool,
    ) -> (u64, RunExit, Option<DebugHit>) {
        self.run_debug(bus, budget, breaks, Some(watch))
    }

    fn run_debug(
        &mut self,
        bus: &mut dyn Bus,
        budget: u64,
        breaks: &BTreeSet<u64>,
        mut watch: Option<&mut dyn FnMut(Touched) -> bool>,
    ) -> (u64, RunExit, Option<DebugHit>) {
        let mut used = 0;
        let mut exit = RunExit::Budget;
        let mut hit = None;
        self.sstc_on_entry(bus);
        'slice: while used < budget {
            self.event = false;
            if self.hyp_exit.is_some() {
                break;
            }
            self.poll_interrupts();
            if self.wfi {
                exit = RunExit::Idle;
                break;
            }
            while used < budget {
                let pc = self.pc;
                if breaks.contains(&pc) {
                    hit = Some(DebugHit::Break);
                    break 'slice;
                }
                let page = pc & !0xfff;
                if let Some(w) = watch.as_mut() {
                    // Any instruction may touch a watched byte: one at a
                    // time, each access shown to `w`.
                    used += 1;
                    if let Some(t) = self.step_watched_inner(bus) {
                        if w(t) {
                            hit = Some(DebugHit::Watch(t));
                            break 'slice;
                        }
                    }
                } else if breaks.range(page..=page | 0xfff).next().is_some() {
                    // A breakpoint in this page: one instruction at a time.
                    used += 1;
                    self.step_slow(bus);
                } else {
                    // The page runs as in `run` and leaves it only by
                    // returning (`run_page`, `run_page_jit` stop at the
                    // page's end), so no breakpoint is passed over.
                    used += self.run_from(bus, pc, budget - used);
                }
                if self.event {
                    break;
                }
            }
            if std::mem::take(&mut self.yield_slice) {
                break;
            }
        }
        self.reservation = None;
        self.stats.steps += used;
        (used, exit, hit)
    }

    /// Runs one instruction (or takes the trap it raises), without taking
    /// interrupts first. A hart in WFI stays there (false); true if an
    /// instruction slot was used.
    pub fn step_one(&mut self, bus: &mut dyn Bus) -> bool {
        if self.wfi {
            return false;
        }
        self.event = false;
        self.step_slow(bus);
        self.reservation = None;
        self.stats.steps += 1;
        true
    }

    /// As [`step_one`](Self::step_one), and if the instruction retired and
    /// accessed data memory, which bytes (by virtual address in the
    /// translation it ran in) and how. `None` also for a hart in WFI (it
    /// stays there) and for an instruction that trapped.
    pub fn step_watched(&mut self, bus: &mut dyn Bus) -> Option<Touched> {
        if self.wfi {
            return None;
        }
        self.event = false;
        let touched = self.step_watched_inner(bus);
        self.reservation = None;
        self.stats.steps += 1;
        touched
    }

    /// One instruction as `step_slow` runs it (traps taken, no interrupt
    /// check, no reservation or step bookkeeping), and what it touched.
    fn step_watched_inner(&mut self, bus: &mut dyn Bus) -> Option<Touched> {
        let mut touched = None;
        // `step`, with the access worked out between decode and execute:
        // the registers the address comes from may be the ones it writes.
        let result = self.step_seen(bus, |h, insn| {
            if let Some(a) = isa::data_access(insn.op) {
                let mut va = h.x[insn.rs1 as usize].wrapping_add(insn.imm as i64 as u64);
                if insn.op == isa::Op::CBO_ZERO {
                    va &= !(CACHE_BLOCK_SIZE - 1);
                }
                touched = Some(Touched { va, len: a.width, read: a.reads, write: a.writes });
            }
        });
        match result {
            Ok(()) => self.instret += 1,
            Err(t) => {
                touched = None;
                self.take_trap(t.cause, t.tval);
            }
        }
        touched
    }

    /// The physical address that `va` has for a load in the hart's current
    /// mode (`prv`, `virt`; not `mstatus.MPRV`), with SUM and MXR as if set
    /// so that user pages and execute-only code are readable too. `None`
    /// if the current tables do not map it. Sets no A/D bit and leaves the
    /// TLB and the walk counters alone.
    pub fn debug_translate(&self, va: u64) -> Option<u64> {
        if self.prv == Priv::M {
            return Some(va);
        }
        let perms = walk::Perms { user: self.prv == Priv::U, sum: true, mxr: true, hlvx: false };
        if !self.virt {
            let Some(scheme) = scheme_of_atp(self.csr.satp) else { return Some(va) };
            let root = self.csr.satp & satp::PPN_MASK;
            let opts = self.walk_options(false);
            let mut pt = PeekPt { ram: &self.ram, g: None, gopts: opts };
            return walk::walk_opts(&mut pt, scheme, root, va, Access::Load, perms, opts).ok().map(|l| l.pa);
        }
        // Two-stage (§8.5): the VS-stage through `vsatp`, its tables and
        // the result through the G-stage of `hgatp`.
        let g = match self.csr.hgatp >> hgatp::MODE_SHIFT {
            hgatp::SV39X4 => Some((Scheme::SV39X4, self.csr.hgatp & hgatp::PPN_MASK)),
            hgatp::SV48X4 => Some((Scheme::SV48X4, self.csr.hgatp & hgatp::PPN_MASK)),
            _ => None,
        };
        let gpa = match scheme_of_atp(self.csr.vsatp) {
            None => va,
            Some(scheme) => {
                let root = self.csr.vsatp & satp::PPN_MASK;
                let mut pt = PeekPt { ram: &self.ram, g, gopts: self.walk_options(false) };
                walk::walk_opts(&mut pt, scheme, root, va, Access::Load, perms, self.walk_options(true)).ok()?.pa
            }
        };
        match g {
            Some((scheme, root)) => g_translate(&self.ram, scheme, root, gpa, self.walk_options(false)),
            None => Some(gpa),
        }
    }

    /// CSR `n` as the hart holds it, without access checks (a debugger
    /// reads M-mode CSRs from anywhere); the S CSRs are HS's, not VS's.
    /// `None` if the hart has no such CSR.
    pub fn debug_csr_read(&self, bus: &mut dyn Bus, n: u16) -> Option<u64> {
        self.csr_value(bus, n, false)
    }

    /// Writes CSR `n` as a CSR instruction in M-mode would (WARL fields
    /// keep their legal values); false if the hart has no such CSR.
    pub fn debug_csr_write(&mut self, bus: &mut dyn Bus, n: u16, v: u64) -> bool {
        if self.csr_value(bus, n, false).is_none() {
            return false;
        }
        let virt = std::mem::replace(&mut self.virt, false);
        let ok = self.csr_write(n, v).is_ok();
        self.virt = virt;
        self.event = true;
        ok
    }
}

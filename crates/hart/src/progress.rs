//! Noticing a hart that makes no progress: it takes the same exception at
//! the same instruction again and again, led there each time by the same
//! few instructions from the same place, and the faulting instruction
//! never completes.
//!
//! The pattern is what garbage does. Random bytes as firmware: an illegal
//! instruction traps to `mtvec` = 0, the fetch there faults, which traps to
//! `mtvec` = 0 again, forever. Random bytes as a kernel behind firmware or
//! a hypervisor: the trap goes to the kernel's vector (`stvec`, which
//! OpenSBI points at the kernel's entry; `vstvec` = 0 in a VM), where the
//! same garbage faults again, and the firmware (M-mode OpenSBI) or Strata's
//! hypervisor (host code) hands it back to the vector. The handler in
//! between may run any number of instructions in its own mode.
//!
//! Per watched context — the hart itself on the bare board (traps from V=0;
//! a nested guest's traps are its own hypervisor's business), or one VMID
//! when a host-side hypervisor runs guests (traps from V=1) — a streak
//! counts such traps. A trap is described by its cause, `epc`, `tval` and
//! mode, and by how the hart got there: the pc at which it last entered
//! that mode (trap entry, or an xRET — `run_guest`'s SRET included) and
//! the instructions it retired since. `tval` is part of the description
//! only when the mode was re-entered at `epc` (the instruction retried): a
//! handler that maps one page after another for a loop's stores is fine,
//! while garbage entering at a handler may compute a new bad address each
//! time round. At each trap:
//!
//! | trap | effect on the context's streak |
//! | --- | --- |
//! | the host-side hypervisor preempting a guest | none: host machinery |
//! | interrupt, nothing retired since the mode was entered | none: taken at the faulting instruction, it changes nothing |
//! | interrupt, something retired | ends |
//! | exception described as the streak's previous trap, which the handler did not complete (the mode was not re-entered at its `epc` + 2 or + 4) | + 1 |
//! | any other exception | a new streak of 1 |
//!
//! At [`NO_PROGRESS_TRAPS`] the hart reports [`NoProgress`]; the run loop
//! decides what to do (Strata stops the machine, or the VM, with exit
//! status 7).
//!
//! Why no working guest gets there: the same trap, with nothing else
//! trapping in between, reached again from the same entry point by the
//! same number of instructions, means the handler neither completed the
//! instruction (emulation — MMIO, misaligned accesses, WFI, SBI calls —
//! moves `epc` on, and that is seen) nor changed what made it fault. A
//! fault fixed by its handler (a page mapped) lets the instruction retire;
//! to fault there again, something must undo the fix, which takes other
//! traps (a system call, an IPI) on this hart, and a kernel's timer tick
//! (4 ms at Linux's HZ=250) ends any streak with an interrupt. Even a tick
//! holds at most a few tens of thousands of round trips through a kernel's
//! fault path at 1000 MIPS. The threshold is above that, and the garbage
//! loops reach it in well under a second of host time (0.3 s for the whole
//! run of random firmware, 0.3-0.5 s behind OpenSBI).
//!
//! Not caught: loops whose traps alternate between places, or that trap
//! at a different place each time; a vCPU stuck while another vCPU of the
//! same VM shares its hart and traps.

use std::fmt;

use crate::trap::cause;
use crate::{Hart, Priv};

/// Traps in a row, each like the one before and not completed by its
/// handler, after which a hart reports that it makes no progress.
pub const NO_PROGRESS_TRAPS: u64 = 100_000;

/// Contexts watched at once under a host-side hypervisor (VMs sharing the
/// hart); beyond that the least recently trapping one is forgotten.
const SLOTS: usize = 16;

/// The context of the bare hart (VMIDs are 14 bits).
const BARE: u32 = u32::MAX;

/// A hart that makes no progress, as [`Hart::no_progress`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoProgress {
    pub hartid: u64,
    /// The exception's cause, the pc it was taken at, its trap value.
    pub cause: u64,
    pub epc: u64,
    pub tval: u64,
    /// The mode that traps.
    pub prv: Priv,
    pub virt: bool,
    /// The VMID (from `hgatp`) of the guest that traps, under a host-side
    /// hypervisor; `None` on the bare hart.
    pub vmid: Option<u64>,
    /// Traps in the streak.
    pub traps: u64,
    /// The hart's state when it was reported, for whoever debugs it: the
    /// handler's vector and the translation root of the trapping mode
    /// (`stvec`/`satp`, `vstvec`/`vsatp` or `mtvec`), `mstatus`, and `ra`,
    /// `sp`, `gp`, `tp`.
    pub context: [u64; 7],
}

impl NoProgress {
    /// The trap loop, without naming the hart: "trapping at pc 0x0 ...".
    pub fn trap_loop(&self) -> String {
        let mode = match (self.prv, self.virt) {
            (Priv::M, _) => "M",
            (Priv::S, false) => "S",
            (Priv::U, false) => "U",
            (Priv::S, true) => "VS",
            (Priv::U, true) => "VU",
        };
        format!(
            "trapping at pc {:#x} with cause {} ({}, tval {:#x}) in {mode}-mode, {} times in a row without getting past it",
            self.epc,
            self.cause,
            cause::name(self.cause),
            self.tval,
            self.traps
        )
    }
}

impl NoProgress {
    /// The state recorded with the report, as one line for debugging.
    pub fn context_line(&self) -> String {
        let [tvec, atp, mstatus, ra, sp, gp, tp] = self.context;
        format!(
            "hart {} state: tvec {tvec:#x} atp {atp:#x} mstatus {mstatus:#x} ra {ra:#x} sp {sp:#x} gp {gp:#x} tp {tp:#x}",
            self.hartid
        )
    }
}

impl fmt::Display for NoProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hart {} made no progress: {}", self.hartid, self.trap_loop())
    }
}

/// A trap as the streaks compare them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct TrapKey {
    cause: u64,
    epc: u64,
    tval: u64,
    /// `prv` | V << 2.
    mode: u8,
    /// Where the hart entered the mode, and what it retired since.
    entry: u64,
    retired: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Streak {
    ctx: u32,
    key: TrapKey,
    count: u64,
    /// When it last changed (0: the slot is free).
    touched: u64,
}

/// The per-hart watch (see the module documentation).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgressWatch {
    /// `instret` and pc when the hart last entered its current mode.
    entered_at: u64,
    entry_pc: u64,
    /// The next trap is the host-side hypervisor's preemption.
    preempting: bool,
    streaks: [Streak; SLOTS],
    traps: u64,
    report: Option<NoProgress>,
}

impl ProgressWatch {
    /// The hart entered a mode at `pc`, with `instret` = `at` once the
    /// instruction doing it (if any) has retired.
    #[inline]
    pub(crate) fn entered(&mut self, at: u64, pc: u64) {
        self.entered_at = at;
        self.entry_pc = pc;
    }

    /// The next trap is a host-side hypervisor preempting its guest.
    pub(crate) fn preempting(&mut self) {
        self.preempting = true;
    }

    fn slot(&mut self, ctx: u32) -> &mut Streak {
        let i = match self.streaks.iter().position(|s| s.ctx == ctx && s.touched != 0) {
            Some(i) => i,
            None => {
                let i = (0..SLOTS).min_by_key(|&i| self.streaks[i].touched).unwrap_or(0);
                self.streaks[i] = Streak { ctx, ..Streak::default() };
                i
            }
        };
        &mut self.streaks[i]
    }
}

impl Hart {
    /// Called at trap entry, before the trap changes any state.
    pub(crate) fn watch_trap(&mut self, cause: u64, tval: u64) {
        if std::mem::take(&mut self.watch.preempting) {
            return;
        }
        let ctx = match (self.hyp_mode, self.virt) {
            (false, false) => BARE,
            (true, true) => ((self.csr.hgatp & crate::csr::hgatp::VMID_MASK) >> 44) as u32,
            // A nested guest on the bare hart, or the host-side hypervisor's
            // own mode: not watched.
            _ => return,
        };
        let retired = self.instret.wrapping_sub(self.watch.entered_at);
        let interrupt = cause & cause::INTERRUPT != 0;
        if interrupt && retired == 0 {
            return;
        }
        let (epc, entry) = (self.pc, self.watch.entry_pc);
        // The handler completed the instruction (emulated it and went on),
        // or sent the hart back to retry it, or somewhere else.
        let completed = entry == epc.wrapping_add(2) || entry == epc.wrapping_add(4);
        let retry = entry == epc;
        let key = TrapKey {
            cause,
            epc,
            // A retried instruction that faults on another address each
            // time is a handler fixing one page after another; a loop that
            // starts over from a handler's entry may compute a new address
            // each time and still go nowhere.
            tval: if retry { tval } else { 0 },
            mode: self.prv as u8 | (self.virt as u8) << 2,
            entry,
            retired,
        };
        let w = &mut self.watch;
        w.traps += 1;
        let now = w.traps;
        let s = w.slot(ctx);
        s.touched = now;
        if interrupt {
            s.count = 0;
            return;
        }
        if s.count > 0 && s.key == key && !completed {
            s.count += 1;
        } else {
            *s = Streak { ctx, key, count: 1, touched: now };
        }
        let count = s.count;
        if count >= NO_PROGRESS_TRAPS && w.report.is_none() {
            w.report = Some(NoProgress {
                hartid: self.hartid,
                cause,
                epc,
                tval,
                prv: self.prv,
                virt: self.virt,
                vmid: (ctx != BARE).then_some(ctx as u64),
                traps: count,
                context: {
                    let (tvec, atp) = match (self.prv, self.virt) {
                        (Priv::M, _) => (self.csr.mtvec, 0),
                        (_, true) => (self.csr.vstvec, self.csr.vsatp),
                        _ => (self.csr.stvec, self.csr.satp),
                    };
                    [tvec, atp, self.csr.mstatus, self.x[1], self.x[2], self.x[3], self.x[4]]
                },
            });
        }
    }

    /// Set once a context of this hart has trapped [`NO_PROGRESS_TRAPS`]
    /// times in a row at the same instruction in the same way without
    /// retiring an instruction there (see `progress.rs`).
    pub fn no_progress(&self) -> Option<&NoProgress> {
        self.watch.report.as_ref()
    }

    /// Takes the report, and forgets its context's streak (its VM is
    /// stopped; the VMID may come back for another).
    pub fn take_no_progress(&mut self) -> Option<NoProgress> {
        let r = self.watch.report.take()?;
        let ctx = r.vmid.map_or(BARE, |v| v as u32);
        for s in self.watch.streaks.iter_mut().filter(|s| s.ctx == ctx) {
            *s = Streak::default();
        }
        Some(r)
    }

    /// Marks that the hart enters a mode now, at `self.pc` (trap entry;
    /// the xRET paths correct it, as their pc moves after).
    #[inline]
    pub(crate) fn note_mode_entry(&mut self) {
        self.watch.entered(self.instret, self.pc);
    }
}

//! A RISC-V RV64GC hart: decode, execute, CSRs, privilege modes, traps and
//! interrupts.
//!
//! The hart reaches guest RAM directly (through its TLB) and everything
//! else through the small [`Bus`] trait, so it knows nothing of the board
//! it is placed on.

mod code;
pub mod csr;
pub mod decode;
mod exec;
mod fp;
pub mod isa;
#[cfg(target_arch = "x86_64")]
mod jit;
mod mem;
pub mod stats;
pub mod trap;

use std::sync::Arc;

use csr::{satp, status, Csrs};
use decode::Insn;
use strata_devices::HartIrqs;
use strata_memory::GuestRam;
use strata_mmu::pmp::Pmp;
use strata_mmu::tlb::Tlb;
pub use strata_mmu::Priv;

/// What a hart needs from the board besides RAM.
pub trait Bus {
    /// A load from a non-RAM physical address; `None` is an access fault.
    fn mmio_read(&mut self, pa: u64, size: u8) -> Option<u64>;
    /// A store to a non-RAM physical address; `false` is an access fault.
    fn mmio_write(&mut self, pa: u64, size: u8, value: u64) -> bool;
    /// The current value of the platform timer (`mtime`), which the `time`
    /// CSR reads (Zicntr).
    fn mtime(&self) -> u64;
}

pub use code::CodeStats;

pub struct Hart {
    pub hartid: u64,
    pub x: [u64; 32],
    /// FP registers as raw 64-bit patterns (single values NaN-boxed).
    pub f: [u64; 32],
    pub pc: u64,
    pub prv: Priv,
    pub csr: Csrs,
    pub pmp: Pmp,
    /// Retired instructions (the basis of `minstret` and `mcycle`).
    pub instret: u64,
    /// Waiting in WFI for an interrupt.
    pub wfi: bool,
    pub stats: stats::HartStats,

    ram: Arc<GuestRam>,
    irqs: Arc<HartIrqs>,
    tlb: Tlb,
    /// TLB context ids for fetches and for loads/stores (see `mem.rs`).
    ctx_fetch: u16,
    ctx_data: u16,
    /// LR reservation: the physical address reserved, if any.
    reservation: Option<u64>,
    /// The value the last LR read (an SC succeeds only if memory still
    /// holds it, the way a compare-and-swap based implementation behaves).
    lr_value: u64,
    /// Set by anything that may change which interrupt is deliverable, so
    /// the run loop re-checks before the next instruction.
    event: bool,
    /// The bits of the instruction being executed (for `mtval` on illegal
    /// instructions).
    cur_insn_bits: u64,
    code: code::CodeCache,
    /// The block compiler and its code, when on (`set_jit`).
    #[cfg(target_arch = "x86_64")]
    jit: Option<Box<jit::Jit>>,
}

/// Why [`Hart::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// The budget was used up.
    Budget,
    /// The hart is in WFI with nothing to wake it.
    Idle,
}

impl Hart {
    pub fn new(hartid: u64, ram: Arc<GuestRam>, irqs: Arc<HartIrqs>) -> Self {
        let mut h = Self {
            hartid,
            x: [0; 32],
            f: [0; 32],
            pc: 0,
            prv: Priv::M,
            csr: Csrs::default(),
            pmp: Pmp::new(),
            instret: 0,
            wfi: false,
            stats: stats::HartStats::default(),
            ram,
            irqs,
            tlb: Tlb::new(),
            ctx_fetch: 0,
            ctx_data: 0,
            reservation: None,
            lr_value: 0,
            event: true,
            cur_insn_bits: 0,
            code: code::CodeCache::new(),
            #[cfg(target_arch = "x86_64")]
            jit: None,
        };
        h.update_mmu_ctx();
        h
    }

    /// Puts the hart in the reset state the platform wants: M-mode at `pc`.
    pub fn reset(&mut self, pc: u64) {
        self.pc = pc;
        self.prv = Priv::M;
        self.csr = Csrs::default();
        self.csr.mstatus = 0;
        self.wfi = false;
        self.reservation = None;
        self.tlb.flush();
        self.code.clear();
        self.update_mmu_ctx();
        self.event = true;
    }

    pub fn set_priv(&mut self, p: Priv) {
        self.prv = p;
        self.update_mmu_ctx();
        self.event = true;
    }

    /// Recomputes the TLB context ids after a change of privilege,
    /// `mstatus` or `satp`. The id packs everything that changes the outcome
    /// of a translation and is not flushed on change: the effective
    /// privilege (bits 1..0), SUM (bit 2), MXR (bit 3), and whether
    /// translation is on (bit 4).
    pub(crate) fn update_mmu_ctx(&mut self) {
        let ms = self.csr.mstatus;
        let data_priv = if self.prv == Priv::M && ms & status::MPRV != 0 {
            Priv::from_bits(ms >> status::MPP_SHIFT)
        } else {
            self.prv
        };
        let paging = self.csr.satp >> satp::MODE_SHIFT != satp::BARE;
        let ctx = |p: Priv| -> u16 {
            let on = paging && p != Priv::M;
            (p as u16) | ((ms & status::SUM != 0) as u16) << 2 | ((ms & status::MXR != 0) as u16) << 3 | (on as u16) << 4
        };
        self.ctx_fetch = ctx(self.prv);
        self.ctx_data = ctx(data_priv);
    }

    pub fn irqs(&self) -> &Arc<HartIrqs> {
        &self.irqs
    }

    pub fn tlb_stats(&self) -> strata_mmu::tlb::TlbStats {
        self.tlb.stats
    }

    pub fn code_stats(&self) -> CodeStats {
        self.code.stats
    }

    /// Leaves WFI if an interrupt is pending and enabled in `mie` (§3.3.3:
    /// WFI resumes on any such interrupt, whatever the global enables), then
    /// takes the highest-priority deliverable interrupt, if any.
    pub fn poll_interrupts(&mut self) {
        if self.mip() & self.csr.mie != 0 {
            self.wfi = false;
        }
        if let Some(c) = self.interrupt_to_take() {
            self.take_trap(c, 0);
        }
    }

    /// Runs up to `budget` instructions (trapping ones included). Returns
    /// the number of instruction slots used and why it stopped.
    pub fn run(&mut self, bus: &mut dyn Bus, budget: u64) -> (u64, RunExit) {
        let mut used = 0;
        let mut exit = RunExit::Budget;
        while used < budget {
            self.event = false;
            self.poll_interrupts();
            if self.wfi {
                exit = RunExit::Idle;
                break;
            }
            while used < budget {
                let pc = self.pc;
                match self.enter_code_page(pc) {
                    Ok(Some(idx)) => used += self.run_code_page(bus, idx, pc, budget - used),
                    Ok(None) => {
                        used += 1;
                        self.step_slow(bus);
                    }
                    Err(t) => {
                        used += 1;
                        self.take_trap(t.cause, t.tval);
                    }
                }
                if self.event {
                    break;
                }
            }
        }
        // Another hart or a device may touch memory before this hart runs
        // again; an SC after that must fail (§8.2 allows spurious failure).
        self.reservation = None;
        self.stats.steps += used;
        (used, exit)
    }

    /// Finds the decoded-code page for `pc`, if its page may be cached:
    /// the fetch translation is in the TLB (or goes there now).
    #[inline]
    fn enter_code_page(&mut self, pc: u64) -> Result<Option<usize>, trap::Trap> {
        let off = match self.tlb.lookup(strata_mmu::Access::Fetch, pc, self.ctx_fetch) {
            Some(off) => off,
            None => {
                self.tlb.note_miss(strata_mmu::Access::Fetch);
                self.translate_fetch(pc)?;
                match self.tlb.lookup(strata_mmu::Access::Fetch, pc, self.ctx_fetch) {
                    Some(off) => off,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(self.code.enter(&self.ram, off >> 12)))
    }

    /// Runs code from decoded-code page `idx` starting at `pc` (=
    /// `self.pc`): compiled blocks when the JIT is on, else the interpreter.
    #[inline(always)]
    fn run_code_page(&mut self, bus: &mut dyn Bus, idx: usize, pc: u64, budget: u64) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.jit.is_some() {
            return self.run_page_jit(bus, idx, pc, budget);
        }
        self.run_page(bus, idx, pc, budget)
    }

    /// JIT on/off where there is no JIT: always off.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn set_jit(&mut self, _on: bool) -> bool {
        false
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn jit_stats(&self) -> Option<stats::JitStats> {
        None
    }

    /// Runs instructions from decoded-code page `idx`, starting at `pc`,
    /// while control stays in the page, nothing sets `event`, and `budget`
    /// lasts. Returns the instruction slots used; `self.pc` is up to date.
    #[inline(always)]
    fn run_page(&mut self, bus: &mut dyn Bus, idx: usize, mut pc: u64, budget: u64) -> u64 {
        let vpage = pc & !0xfff;
        let mut used = 0;
        loop {
            used += 1;
            let Some(s) = self.code.slot(&self.ram, idx, (pc & 0xfff) as usize) else {
                // A 32-bit instruction straddling the page end.
                self.pc = pc;
                self.step_slow(bus);
                return used;
            };
            self.cur_insn_bits = s.raw as u64;
            match self.execute(bus, s.insn, s.raw, pc) {
                Ok(next) => {
                    self.instret += 1;
                    pc = next;
                }
                Err(t) => {
                    self.pc = pc;
                    self.take_trap(t.cause, t.tval);
                    return used;
                }
            }
            if self.event || used >= budget || pc & !0xfff != vpage {
                self.pc = pc;
                return used;
            }
        }
    }

    /// Runs one instruction without the decoded-code cache (and takes its
    /// trap, if it raises one).
    fn step_slow(&mut self, bus: &mut dyn Bus) {
        match self.step(bus) {
            Ok(()) => self.instret += 1,
            Err(t) => self.take_trap(t.cause, t.tval),
        }
    }

    /// Fetches, decodes and executes one instruction, without the
    /// decoded-code cache. On success `self.pc` moves on; on a trap it still
    /// names the instruction.
    pub fn step(&mut self, bus: &mut dyn Bus) -> Result<(), trap::Trap> {
        let raw = self.fetch(bus)?;
        let key = if raw & 3 == 3 { raw } else { raw & 0xffff };
        let insn: Insn = decode::decode(key);
        self.cur_insn_bits = key as u64;
        self.pc = self.execute(bus, insn, key, self.pc)?;
        Ok(())
    }
}

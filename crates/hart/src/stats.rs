//! Per-hart counters, reported by `strata machine --stats`.

use crate::trap::{cause, TrapTarget};

/// Kinds of address-translation fence (Priv. §4.2.1, §8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// SFENCE.VMA with V=0.
    Sfence,
    /// SFENCE.VMA with V=1 (acts as HFENCE.VVMA for the current VMID).
    SfenceV,
    HfenceVvma,
    HfenceGvma,
}

#[derive(Clone, Debug, Default)]
pub struct HartStats {
    /// Instruction slots executed (retired plus trapped).
    pub steps: u64,
    /// Synchronous exceptions by cause code.
    pub exceptions: [u64; 32],
    /// Interrupts by cause code.
    pub interrupts: [u64; 16],
    /// Traps by destination: M, HS, VS.
    pub traps_to: [u64; 3],
    /// Single-stage page-table walks and the PTEs they read.
    pub walks: u64,
    pub walk_refs: u64,
    /// Two-stage translations (V=1): how many, the PTEs they read in both
    /// stages (VS-stage PTEs, the G-stage walks that locate them, and the
    /// final G-stage walk), the most one translation read, and A/D writes.
    pub walks2: u64,
    pub walk2_refs: u64,
    pub walk2_max_refs: u32,
    pub walk_ad_writes: u64,
    /// Fences by kind, indexed by `Fence as usize`.
    pub fences: [u64; 4],
    /// Decoded pages a FENCE.I found stale and dropped (parallel runs).
    pub fence_i_stale: u64,
    /// PAUSE hints (spin-wait loops).
    pub pauses: u64,
    /// Zawrs WRS.NTO/WRS.STO that stalled (ended the hart's turn; see
    /// `exec.rs`).
    pub wrs_stalls: u64,
}

impl HartStats {
    pub fn count_trap(&mut self, c: u64, to: TrapTarget) {
        let code = (c & !cause::INTERRUPT) as usize;
        if c & cause::INTERRUPT != 0 {
            if let Some(n) = self.interrupts.get_mut(code) {
                *n += 1;
            }
        } else if let Some(n) = self.exceptions.get_mut(code) {
            *n += 1;
        }
        self.traps_to[to as usize] += 1;
    }

    pub fn count_fence(&mut self, f: Fence) {
        self.fences[f as usize] += 1;
    }
}

/// JIT counters (x86-64 hosts; see `jit/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Blocks compiled, the instructions in them, and their code bytes.
    pub blocks: u64,
    pub insns: u64,
    pub bytes: u64,
    /// Instructions compiled as calls into the interpreter.
    pub interp_insns: u64,
    /// Times the code buffer filled up and was emptied.
    pub flushes: u64,
    /// Blocks entered from the run loop.
    pub runs: u64,
    /// Jumps between blocks linked (chained).
    pub links: u64,
}

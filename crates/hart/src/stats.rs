//! Per-hart counters, reported by `strata machine --stats`.

use crate::trap::cause;

#[derive(Clone, Debug, Default)]
pub struct HartStats {
    /// Instruction slots executed (retired plus trapped).
    pub steps: u64,
    /// Synchronous exceptions by cause code.
    pub exceptions: [u64; 32],
    /// Interrupts by cause code.
    pub interrupts: [u64; 16],
    /// Page-table walks and the memory references they made.
    pub walks: u64,
    pub walk_refs: u64,
}

impl HartStats {
    pub fn count_trap(&mut self, c: u64) {
        let code = (c & !cause::INTERRUPT) as usize;
        if c & cause::INTERRUPT != 0 {
            if let Some(n) = self.interrupts.get_mut(code) {
                *n += 1;
            }
        } else if let Some(n) = self.exceptions.get_mut(code) {
            *n += 1;
        }
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

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

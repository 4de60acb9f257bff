//! Exceptions and interrupts (Privileged Architecture 20211203, §3.1.15
//! Table 3.6 for the cause codes, §3.1.6.1 and §3.1.9 for when an interrupt
//! is taken, §3.3.1 and §4.1.1 for trap entry and return).

use crate::csr::status;
use crate::{Hart, Priv};

/// A synchronous exception on its way to the trap handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    pub cause: u64,
    pub tval: u64,
}

impl Trap {
    #[inline]
    pub const fn new(cause: u64, tval: u64) -> Self {
        Self { cause, tval }
    }
}

pub mod cause {
    pub const INSN_MISALIGNED: u64 = 0;
    pub const INSN_ACCESS: u64 = 1;
    pub const ILLEGAL_INSN: u64 = 2;
    pub const BREAKPOINT: u64 = 3;
    pub const LOAD_MISALIGNED: u64 = 4;
    pub const LOAD_ACCESS: u64 = 5;
    pub const STORE_MISALIGNED: u64 = 6;
    pub const STORE_ACCESS: u64 = 7;
    pub const ECALL_U: u64 = 8;
    pub const ECALL_S: u64 = 9;
    pub const ECALL_M: u64 = 11;
    pub const INSN_PAGE: u64 = 12;
    pub const LOAD_PAGE: u64 = 13;
    pub const STORE_PAGE: u64 = 15;

    /// Interrupt causes are these codes with bit 63 set.
    pub const INTERRUPT: u64 = 1 << 63;
    pub const SSI: u64 = 1;
    pub const MSI: u64 = 3;
    pub const STI: u64 = 5;
    pub const MTI: u64 = 7;
    pub const SEI: u64 = 9;
    pub const MEI: u64 = 11;
}

/// The order in which simultaneous interrupts are taken (§3.1.9: MEI, MSI,
/// MTI, SEI, SSI, STI).
const PRIORITY: [u64; 6] = [cause::MEI, cause::MSI, cause::MTI, cause::SEI, cause::SSI, cause::STI];

impl Hart {
    /// Enters the trap handler for `cause` (bit 63 set for interrupts).
    pub fn take_trap(&mut self, cause: u64, tval: u64) {
        let interrupt = cause & cause::INTERRUPT != 0;
        let code = cause & !cause::INTERRUPT;
        self.stats.count_trap(cause);
        let deleg = if interrupt { self.csr.mideleg } else { self.csr.medeleg };
        let epc = self.pc;
        if self.prv <= Priv::S && code < 64 && (deleg >> code) & 1 != 0 {
            // Trap to S-mode (§4.1.1).
            let s = &mut self.csr;
            s.scause = cause;
            s.sepc = epc;
            s.stval = tval;
            let sie = s.mstatus & status::SIE != 0;
            s.mstatus &= !(status::SPIE | status::SIE | status::SPP);
            if sie {
                s.mstatus |= status::SPIE;
            }
            if self.prv == Priv::S {
                s.mstatus |= status::SPP;
            }
            self.pc = tvec_target(s.stvec, cause);
            self.set_priv(Priv::S);
        } else {
            let s = &mut self.csr;
            s.mcause = cause;
            s.mepc = epc;
            s.mtval = tval;
            let mie = s.mstatus & status::MIE != 0;
            s.mstatus &= !(status::MPIE | status::MIE | status::MPP);
            if mie {
                s.mstatus |= status::MPIE;
            }
            s.mstatus |= (self.prv as u64) << status::MPP_SHIFT;
            self.pc = tvec_target(s.mtvec, cause);
            self.set_priv(Priv::M);
        }
        // A trap ends any LR reservation this hart holds only if software
        // says so; the spec lets it survive. Strata keeps it.
    }

    /// The pending-and-enabled interrupt to take now, if any.
    pub fn interrupt_to_take(&self) -> Option<u64> {
        let pending = self.mip() & self.csr.mie;
        if pending == 0 {
            return None;
        }
        let m_enabled = self.prv < Priv::M || self.csr.mstatus & status::MIE != 0;
        let s_enabled = self.prv < Priv::S || (self.prv == Priv::S && self.csr.mstatus & status::SIE != 0);
        let m_pending = if m_enabled { pending & !self.csr.mideleg } else { 0 };
        let s_pending = if s_enabled { pending & self.csr.mideleg } else { 0 };
        // Interrupts for M-mode outrank those for S-mode (§3.1.9).
        for set in [m_pending, s_pending] {
            if set != 0 {
                for c in PRIORITY {
                    if set & (1 << c) != 0 {
                        return Some(cause::INTERRUPT | c);
                    }
                }
            }
        }
        None
    }
}

fn tvec_target(tvec: u64, cause: u64) -> u64 {
    let base = tvec & !3;
    if tvec & 3 == 1 && cause & cause::INTERRUPT != 0 {
        base.wrapping_add(4 * (cause & !cause::INTERRUPT))
    } else {
        base
    }
}

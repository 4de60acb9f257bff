//! Exceptions and interrupts (Privileged Architecture 20211203, §3.1.15
//! Table 3.6 for the cause codes, §3.1.6.1 and §3.1.9 for when an interrupt
//! is taken, §3.3.1 and §4.1.1 for trap entry and return, and §8.6 for the
//! Hypervisor extension's three-way routing: M, HS or VS).

use crate::csr::{hstatus, status, IP_VS};
use crate::decode::Insn;
use crate::{Hart, Priv};
use strata_arch::irq;
use strata_arch::tinst::Transformed;

/// A synchronous exception on its way to the trap handler. The second trap
/// value (`htval`/`mtval2`), the trap instruction (`htinst`/`mtinst`) and
/// whether `tval` is a guest virtual address travel beside it in the hart
/// (`Hart::trap_extra`), set by the memory paths that know them.
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

/// What a trap carries besides cause and tval (§8.6.2–8.6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapExtra {
    /// Faulting guest-physical address >> 2, for guest-page faults.
    pub tval2: u64,
    /// Transformed instruction or pseudoinstruction, or 0.
    pub tinst: u64,
    /// `tval` holds a guest virtual address.
    pub gva: bool,
}

/// Cause codes: one home, `strata-arch`.
pub use strata_arch::cause;

/// Where a trap goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapTarget {
    M,
    HS,
    VS,
}

impl Hart {
    /// The nominal privilege as stored in xPP fields: 1 for S/VS, 0 for U/VU.
    fn nominal_s(&self) -> bool {
        self.prv == Priv::S
    }

    /// Where a trap with this cause goes from the current mode (§8.6.2).
    pub fn trap_target(&self, cause: u64) -> TrapTarget {
        let interrupt = cause & cause::INTERRUPT != 0;
        let code = cause & !cause::INTERRUPT;
        if self.prv == Priv::M || code >= 64 {
            return TrapTarget::M;
        }
        let (mdeleg, hdeleg) =
            if interrupt { (self.mideleg(), self.csr.hideleg) } else { (self.csr.medeleg, self.csr.hedeleg) };
        if mdeleg >> code & 1 == 0 {
            TrapTarget::M
        } else if self.virt && hdeleg >> code & 1 != 0 {
            TrapTarget::VS
        } else {
            TrapTarget::HS
        }
    }

    /// Enters the trap handler for `cause` (bit 63 set for interrupts).
    pub fn take_trap(&mut self, cause: u64, tval: u64) {
        let interrupt = cause & cause::INTERRUPT != 0;
        let code = cause & !cause::INTERRUPT;
        let extra = std::mem::take(&mut self.trap_extra);
        let gva = !interrupt && (extra.gva || (self.virt && cause::writes_address(code)));
        self.watch_trap(cause, tval);
        let epc = self.pc;
        let target = self.trap_target(cause);
        self.stats.count_trap(cause, target);
        match target {
            TrapTarget::VS => {
                // §8.6.4: vsstatus, vsepc, vscause, vstval; V stays 1. A
                // VS-level interrupt is reported with its S-level code.
                let vcause = if interrupt && matches!(code, cause::VSSI | cause::VSTI | cause::VSEI) {
                    cause - 1
                } else {
                    cause
                };
                let spp = self.nominal_s();
                let s = &mut self.csr;
                s.vscause = vcause;
                s.vsepc = epc;
                s.vstval = tval;
                let sie = s.vsstatus & status::SIE != 0;
                s.vsstatus &= !(status::SPIE | status::SIE | status::SPP);
                if sie {
                    s.vsstatus |= status::SPIE;
                }
                if spp {
                    s.vsstatus |= status::SPP;
                }
                self.pc = tvec_target(s.vstvec, vcause);
                self.set_mode(Priv::S, true);
            }
            TrapTarget::HS => {
                // §8.6.4: V=0; hstatus.SPV, SPVP and GVA; htval, htinst.
                let spp = self.nominal_s();
                let was_virt = self.virt;
                let s = &mut self.csr;
                s.scause = cause;
                s.sepc = epc;
                s.stval = tval;
                s.htval = extra.tval2;
                s.htinst = extra.tinst;
                let mut h = s.hstatus & !(hstatus::SPV | hstatus::GVA);
                if was_virt {
                    h |= hstatus::SPV;
                    h = if spp { h | hstatus::SPVP } else { h & !hstatus::SPVP };
                }
                if gva {
                    h |= hstatus::GVA;
                }
                s.hstatus = h;
                let sie = s.mstatus & status::SIE != 0;
                s.mstatus &= !(status::SPIE | status::SIE | status::SPP);
                if sie {
                    s.mstatus |= status::SPIE;
                }
                if spp {
                    s.mstatus |= status::SPP;
                }
                self.pc = tvec_target(s.stvec, cause);
                self.set_mode(Priv::S, false);
            }
            TrapTarget::M => {
                let prv = self.prv;
                let was_virt = self.virt;
                let s = &mut self.csr;
                s.mcause = cause;
                s.mepc = epc;
                s.mtval = tval;
                s.mtval2 = extra.tval2;
                s.mtinst = extra.tinst;
                let mie = s.mstatus & status::MIE != 0;
                s.mstatus &= !(status::MPIE | status::MIE | status::MPP | status::MPV | status::GVA);
                if mie {
                    s.mstatus |= status::MPIE;
                }
                s.mstatus |= (prv as u64) << status::MPP_SHIFT;
                if was_virt {
                    s.mstatus |= status::MPV;
                }
                if gva {
                    s.mstatus |= status::GVA;
                }
                self.pc = tvec_target(s.mtvec, cause);
                self.set_mode(Priv::M, false);
            }
        }
        self.note_hyp_trap(target);
        // A trap ends any LR reservation this hart holds only if software
        // says so; the spec lets it survive. Strata keeps it.
    }

    /// §8.6.3: for a guest-page fault of an explicit load or store, `htinst`
    /// may hold a transformation of the trapping instruction, which saves a
    /// hypervisor emulating MMIO from reading the instruction from guest
    /// memory. Strata writes it (`strata_arch::tinst`): opcode, funct3 and
    /// rd (loads) or rs2 (stores) of the 32-bit form, the offset of the
    /// faulting byte in bits 19..15, zero immediates, and bit 1 clear for a
    /// compressed original.
    pub(crate) fn note_transformed_insn(&mut self, i: &Insn, raw: u32, t: &Trap) {
        if !self.transformed_tinst
            || !matches!(t.cause, cause::LOAD_GUEST_PAGE | cause::STORE_GUEST_PAGE)
            || self.trap_extra.tinst != 0
        {
            return;
        }
        let va = self.x[i.rs1 as usize & 31].wrapping_add(i.imm as i64 as u64);
        if let Some(v) = Transformed::of(i, raw & 3 != 3, va, t.tval).and_then(|t| t.encode()) {
            self.trap_extra.tinst = v;
        }
    }

    /// The pending-and-enabled interrupt to take now, if any (§3.1.9,
    /// §8.4.3: M-level interrupts outrank HS-level ones, which outrank
    /// VS-level ones).
    pub fn interrupt_to_take(&self) -> Option<u64> {
        let pending = self.mip() & self.csr.mie;
        if pending == 0 {
            return None;
        }
        let ms = self.csr.mstatus;
        let mideleg = self.mideleg();
        let hideleg = self.csr.hideleg & IP_VS;
        let m_enabled = self.prv < Priv::M || ms & status::MIE != 0;
        // HS-level: always enabled when V=1 or below S; in HS by SIE.
        let hs_enabled = self.virt || self.prv < Priv::S || (self.prv == Priv::S && ms & status::SIE != 0);
        // VS-level: only while V=1; in VS by vsstatus.SIE.
        let vs_enabled =
            self.virt && (self.prv == Priv::U || (self.prv == Priv::S && self.csr.vsstatus & status::SIE != 0));
        let m_set = if m_enabled { pending & !mideleg } else { 0 };
        let hs_set = if hs_enabled { pending & mideleg & !hideleg } else { 0 };
        let vs_set = if vs_enabled { pending & mideleg & hideleg } else { 0 };
        for set in [m_set, hs_set, vs_set] {
            if set != 0 {
                for n in irq::PRIORITY {
                    if set & irq::bit(n) != 0 {
                        return Some(cause::interrupt(n));
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

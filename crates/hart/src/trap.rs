//! Exceptions and interrupts (Privileged Architecture 20211203, §3.1.15
//! Table 3.6 for the cause codes, §3.1.6.1 and §3.1.9 for when an interrupt
//! is taken, §3.3.1 and §4.1.1 for trap entry and return, and §8.6 for the
//! Hypervisor extension's three-way routing: M, HS or VS).

use crate::csr::{hstatus, status, IP_VS};
use crate::decode::Insn;
use crate::{Hart, Priv};

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
    pub const ECALL_VS: u64 = 10;
    pub const ECALL_M: u64 = 11;
    pub const INSN_PAGE: u64 = 12;
    pub const LOAD_PAGE: u64 = 13;
    pub const STORE_PAGE: u64 = 15;
    pub const INSN_GUEST_PAGE: u64 = 20;
    pub const LOAD_GUEST_PAGE: u64 = 21;
    pub const VIRTUAL_INSN: u64 = 22;
    pub const STORE_GUEST_PAGE: u64 = 23;

    /// Interrupt causes are these codes with bit 63 set.
    pub const INTERRUPT: u64 = 1 << 63;
    pub const SSI: u64 = 1;
    pub const VSSI: u64 = 2;
    pub const MSI: u64 = 3;
    pub const STI: u64 = 5;
    pub const VSTI: u64 = 6;
    pub const MTI: u64 = 7;
    pub const SEI: u64 = 9;
    pub const VSEI: u64 = 10;
    pub const MEI: u64 = 11;
    pub const SGEI: u64 = 12;

    /// The name of a cause (Priv. Table 3.6 and Table 8.7), for messages.
    pub fn name(c: u64) -> &'static str {
        if c & INTERRUPT != 0 {
            return match c & !INTERRUPT {
                SSI => "supervisor software interrupt",
                VSSI => "virtual supervisor software interrupt",
                MSI => "machine software interrupt",
                STI => "supervisor timer interrupt",
                VSTI => "virtual supervisor timer interrupt",
                MTI => "machine timer interrupt",
                SEI => "supervisor external interrupt",
                VSEI => "virtual supervisor external interrupt",
                MEI => "machine external interrupt",
                SGEI => "supervisor guest external interrupt",
                _ => "interrupt",
            };
        }
        match c {
            INSN_MISALIGNED => "instruction address misaligned",
            INSN_ACCESS => "instruction access fault",
            ILLEGAL_INSN => "illegal instruction",
            BREAKPOINT => "breakpoint",
            LOAD_MISALIGNED => "load address misaligned",
            LOAD_ACCESS => "load access fault",
            STORE_MISALIGNED => "store/AMO address misaligned",
            STORE_ACCESS => "store/AMO access fault",
            ECALL_U => "environment call from U-mode",
            ECALL_S => "environment call from S-mode",
            ECALL_VS => "environment call from VS-mode",
            ECALL_M => "environment call from M-mode",
            INSN_PAGE => "instruction page fault",
            LOAD_PAGE => "load page fault",
            STORE_PAGE => "store/AMO page fault",
            INSN_GUEST_PAGE => "instruction guest-page fault",
            LOAD_GUEST_PAGE => "load guest-page fault",
            VIRTUAL_INSN => "virtual instruction",
            STORE_GUEST_PAGE => "store/AMO guest-page fault",
            _ => "exception",
        }
    }

    /// Exceptions whose `tval` is an address (or the pc, for breakpoints),
    /// hence a guest virtual address when taken from V=1 (§8.2.1 GVA).
    pub fn writes_address(code: u64) -> bool {
        matches!(code, 0 | 1 | 3 | 4 | 5 | 6 | 7 | 12 | 13 | 15 | 20 | 21 | 23)
    }
}

/// The order in which simultaneous interrupts are taken (§3.1.9 and
/// §8.4.3: MEI, MSI, MTI, SEI, SSI, STI, SGEI, VSEI, VSSI, VSTI).
const PRIORITY: [u64; 10] = [
    cause::MEI,
    cause::MSI,
    cause::MTI,
    cause::SEI,
    cause::SSI,
    cause::STI,
    cause::SGEI,
    cause::VSEI,
    cause::VSSI,
    cause::VSTI,
];

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
    /// memory. Strata writes it: opcode, funct3 and rd (loads) or rs2
    /// (stores) of the 32-bit form, the offset of the faulting byte in bits
    /// 19..15, zero immediates, and bit 1 clear for a compressed original.
    pub(crate) fn note_transformed_insn(&mut self, i: &Insn, raw: u32, t: &Trap) {
        if !self.transformed_tinst
            || !matches!(t.cause, cause::LOAD_GUEST_PAGE | cause::STORE_GUEST_PAGE)
            || self.trap_extra.tinst != 0
        {
            return;
        }
        use crate::isa::Op;
        let (opcode, f3, load) = match i.op {
            Op::LB => (0x03, 0, true),
            Op::LH => (0x03, 1, true),
            Op::LW => (0x03, 2, true),
            Op::LD => (0x03, 3, true),
            Op::LBU => (0x03, 4, true),
            Op::LHU => (0x03, 5, true),
            Op::LWU => (0x03, 6, true),
            Op::FLW => (0x07, 2, true),
            Op::FLD => (0x07, 3, true),
            Op::SB => (0x23, 0, false),
            Op::SH => (0x23, 1, false),
            Op::SW => (0x23, 2, false),
            Op::SD => (0x23, 3, false),
            Op::FSW => (0x27, 2, false),
            Op::FSD => (0x27, 3, false),
            _ => return,
        };
        let va = self.x[i.rs1 as usize & 31].wrapping_add(i.imm as i64 as u64);
        let offset = t.tval.wrapping_sub(va) & 31;
        let mut v = opcode | f3 << 12 | offset << 15;
        v |= if load { (i.rd as u64 & 31) << 7 } else { (i.rs2 as u64 & 31) << 20 };
        if raw & 3 != 3 {
            v &= !2;
        }
        self.trap_extra.tinst = v;
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

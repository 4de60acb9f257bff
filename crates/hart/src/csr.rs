//! Control and status registers (Privileged Architecture 20211203, chapter 2
//! for the address map and access rules, §3.1 and §4.1 for the registers).

use crate::trap::{cause, Trap};
use crate::{Bus, Hart, Priv};
use strata_devices::mip as ip;

/// CSR addresses (Priv. Tables 2.2–2.5).
pub mod addr {
    pub const FFLAGS: u16 = 0x001;
    pub const FRM: u16 = 0x002;
    pub const FCSR: u16 = 0x003;
    pub const CYCLE: u16 = 0xc00;
    pub const TIME: u16 = 0xc01;
    pub const INSTRET: u16 = 0xc02;
    pub const HPMCOUNTER3: u16 = 0xc03;
    pub const HPMCOUNTER31: u16 = 0xc1f;
    pub const SSTATUS: u16 = 0x100;
    pub const SIE: u16 = 0x104;
    pub const STVEC: u16 = 0x105;
    pub const SCOUNTEREN: u16 = 0x106;
    pub const SENVCFG: u16 = 0x10a;
    pub const SSCRATCH: u16 = 0x140;
    pub const SEPC: u16 = 0x141;
    pub const SCAUSE: u16 = 0x142;
    pub const STVAL: u16 = 0x143;
    pub const SIP: u16 = 0x144;
    pub const SATP: u16 = 0x180;
    pub const MVENDORID: u16 = 0xf11;
    pub const MARCHID: u16 = 0xf12;
    pub const MIMPID: u16 = 0xf13;
    pub const MHARTID: u16 = 0xf14;
    pub const MCONFIGPTR: u16 = 0xf15;
    pub const MSTATUS: u16 = 0x300;
    pub const MISA: u16 = 0x301;
    pub const MEDELEG: u16 = 0x302;
    pub const MIDELEG: u16 = 0x303;
    pub const MIE: u16 = 0x304;
    pub const MTVEC: u16 = 0x305;
    pub const MCOUNTEREN: u16 = 0x306;
    pub const MENVCFG: u16 = 0x30a;
    pub const MCOUNTINHIBIT: u16 = 0x320;
    pub const MHPMEVENT3: u16 = 0x323;
    pub const MHPMEVENT31: u16 = 0x33f;
    pub const MSCRATCH: u16 = 0x340;
    pub const MEPC: u16 = 0x341;
    pub const MCAUSE: u16 = 0x342;
    pub const MTVAL: u16 = 0x343;
    pub const MIP: u16 = 0x344;
    pub const PMPCFG0: u16 = 0x3a0;
    pub const PMPCFG15: u16 = 0x3af;
    pub const PMPADDR0: u16 = 0x3b0;
    pub const PMPADDR63: u16 = 0x3ef;
    pub const MCYCLE: u16 = 0xb00;
    pub const MINSTRET: u16 = 0xb02;
    pub const MHPMCOUNTER3: u16 = 0xb03;
    pub const MHPMCOUNTER31: u16 = 0xb1f;
}

/// `mstatus` fields (Priv. §3.1.6, Figure 3.7).
pub mod status {
    pub const SIE: u64 = 1 << 1;
    pub const MIE: u64 = 1 << 3;
    pub const SPIE: u64 = 1 << 5;
    pub const MPIE: u64 = 1 << 7;
    pub const SPP: u64 = 1 << 8;
    pub const MPP_SHIFT: u32 = 11;
    pub const MPP: u64 = 3 << MPP_SHIFT;
    pub const FS_SHIFT: u32 = 13;
    pub const FS: u64 = 3 << FS_SHIFT;
    pub const XS: u64 = 3 << 15;
    pub const VS: u64 = 3 << 9;
    pub const MPRV: u64 = 1 << 17;
    pub const SUM: u64 = 1 << 18;
    pub const MXR: u64 = 1 << 19;
    pub const TVM: u64 = 1 << 20;
    pub const TW: u64 = 1 << 21;
    pub const TSR: u64 = 1 << 22;
    /// UXL = SXL = 2 (XLEN 64), read-only.
    pub const UXL_SXL: u64 = 2 << 32 | 2 << 34;
    pub const SD: u64 = 1 << 63;

    pub const M_WRITABLE: u64 = SIE | MIE | SPIE | MPIE | SPP | MPP | FS | MPRV | SUM | MXR | TVM | TW | TSR;
    pub const S_WRITABLE: u64 = SIE | SPIE | SPP | FS | SUM | MXR;
    pub const S_READABLE: u64 = SIE | SPIE | SPP | VS | FS | XS | SUM | MXR | (3 << 32) | SD;
}

/// `misa`: RV64 with A, C, D, F, I, M, S, U (Priv. §3.1.1). Read-only.
pub const MISA_VALUE: u64 = 2 << 62
    | 1 << (b'A' - b'A')
    | 1 << (b'C' - b'A')
    | 1 << (b'D' - b'A')
    | 1 << (b'F' - b'A')
    | 1 << (b'I' - b'A')
    | 1 << (b'M' - b'A')
    | 1 << (b'S' - b'A')
    | 1 << (b'U' - b'A');

/// Interrupt bits that exist on this hart.
const IP_ALL: u64 = 1 << ip::SSIP | 1 << ip::MSIP | 1 << ip::STIP | 1 << ip::MTIP | 1 << ip::SEIP | 1 << ip::MEIP;
const IP_S: u64 = 1 << ip::SSIP | 1 << ip::STIP | 1 << ip::SEIP;
/// Exceptions that may be delegated: all standard synchronous causes below
/// 16 except ECALL from M (11), which cannot be delegated (§3.1.8).
const MEDELEG_WRITABLE: u64 = 0xb3ff;

/// satp modes (Priv. §4.1.11, Table 4.4).
pub mod satp {
    pub const MODE_SHIFT: u32 = 60;
    pub const BARE: u64 = 0;
    pub const SV39: u64 = 8;
    pub const SV48: u64 = 9;
    pub const ASID_MASK: u64 = 0xffff << 44;
    pub const PPN_MASK: u64 = (1 << 44) - 1;
}

/// The CSR state of one hart. Counters are kept as offsets from the hart's
/// retired-instruction count, so counting costs nothing per instruction.
#[derive(Clone, Debug, Default)]
pub struct Csrs {
    pub mstatus: u64,
    pub medeleg: u64,
    pub mideleg: u64,
    pub mie: u64,
    /// The software-writable bits of `mip` (SSIP, STIP, SEIP); the device
    /// lines are ORed in on read.
    pub mip: u64,
    pub mtvec: u64,
    pub mcounteren: u64,
    pub menvcfg: u64,
    pub mcountinhibit: u64,
    pub mscratch: u64,
    pub mepc: u64,
    pub mcause: u64,
    pub mtval: u64,
    pub stvec: u64,
    pub scounteren: u64,
    pub senvcfg: u64,
    pub sscratch: u64,
    pub sepc: u64,
    pub scause: u64,
    pub stval: u64,
    pub satp: u64,
    pub fflags: u64,
    pub frm: u64,
    pub mcycle_off: u64,
    pub minstret_off: u64,
    /// Values of mcycle/minstret held while `mcountinhibit` stops them.
    pub mcycle_frozen: u64,
    pub minstret_frozen: u64,
}

/// mcountinhibit bits (§3.1.13): CY = bit 0, IR = bit 2.
const INHIBIT_CY: u64 = 1;
const INHIBIT_IR: u64 = 4;

impl Hart {
    /// The value of `mip` as software reads it.
    #[inline]
    pub fn mip(&self) -> u64 {
        self.csr.mip | self.irqs.pending()
    }

    fn illegal(&self) -> Trap {
        Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits)
    }

    /// Whether a counter CSR (cycle/time/instret/hpmcounterN) is readable at
    /// the current privilege (§3.1.11 mcounteren, §4.1.4 scounteren).
    fn counter_allowed(&self, n: u16) -> bool {
        let bit = 1u64 << (n & 31);
        match self.prv {
            Priv::M => true,
            Priv::S => self.csr.mcounteren & bit != 0,
            Priv::U => self.csr.mcounteren & bit != 0 && self.csr.scounteren & bit != 0,
        }
    }

    /// Current value of mcycle (`INHIBIT_CY`) or minstret (`INHIBIT_IR`).
    /// Both count retired instructions: this hart has no notion of cycles
    /// apart from instructions.
    fn counter(&self, bit: u64) -> u64 {
        let c = &self.csr;
        let (off, frozen) = if bit == INHIBIT_CY { (c.mcycle_off, c.mcycle_frozen) } else { (c.minstret_off, c.minstret_frozen) };
        if c.mcountinhibit & bit != 0 {
            frozen
        } else {
            self.instret.wrapping_add(off)
        }
    }

    fn fs_enabled(&self) -> bool {
        self.csr.mstatus & status::FS != 0
    }

    pub(crate) fn mstatus_read(&self) -> u64 {
        let m = self.csr.mstatus | status::UXL_SXL;
        if m & status::FS == status::FS {
            m | status::SD
        } else {
            m
        }
    }

    /// Reads CSR `n` for a CSR instruction, enforcing access rules.
    pub fn csr_read(&mut self, bus: &mut dyn Bus, n: u16) -> Result<u64, Trap> {
        use addr::*;
        // §2.1: bits 9..8 give the lowest privilege that may access the CSR.
        if (n >> 8) & 3 > self.prv as u16 {
            return Err(self.illegal());
        }
        let c = &self.csr;
        Ok(match n {
            FFLAGS | FRM | FCSR if !self.fs_enabled() => return Err(self.illegal()),
            FFLAGS => c.fflags,
            FRM => c.frm,
            FCSR => c.frm << 5 | c.fflags,
            CYCLE | TIME | INSTRET | HPMCOUNTER3..=HPMCOUNTER31 if !self.counter_allowed(n) => {
                return Err(self.illegal())
            }
            CYCLE => self.counter(INHIBIT_CY),
            TIME => bus.mtime(),
            INSTRET => self.counter(INHIBIT_IR),
            HPMCOUNTER3..=HPMCOUNTER31 => 0,
            SSTATUS => self.mstatus_read() & status::S_READABLE,
            SIE => c.mie & c.mideleg,
            STVEC => c.stvec,
            SCOUNTEREN => c.scounteren,
            SENVCFG => c.senvcfg,
            SSCRATCH => c.sscratch,
            SEPC => c.sepc,
            SCAUSE => c.scause,
            STVAL => c.stval,
            SIP => self.mip() & c.mideleg,
            SATP => {
                if self.prv == Priv::S && c.mstatus & status::TVM != 0 {
                    return Err(self.illegal());
                }
                c.satp
            }
            MVENDORID | MARCHID | MIMPID | MCONFIGPTR => 0,
            MHARTID => self.hartid,
            MSTATUS => self.mstatus_read(),
            MISA => MISA_VALUE,
            MEDELEG => c.medeleg,
            MIDELEG => c.mideleg,
            MIE => c.mie,
            MTVEC => c.mtvec,
            MCOUNTEREN => c.mcounteren,
            MENVCFG => c.menvcfg,
            MCOUNTINHIBIT => c.mcountinhibit,
            MHPMEVENT3..=MHPMEVENT31 => 0,
            MSCRATCH => c.mscratch,
            MEPC => c.mepc,
            MCAUSE => c.mcause,
            MTVAL => c.mtval,
            MIP => self.mip(),
            PMPCFG0..=PMPCFG15 => {
                if n & 1 != 0 {
                    return Err(self.illegal());
                }
                self.pmp.read_cfg((n - PMPCFG0) as usize)
            }
            PMPADDR0..=PMPADDR63 => self.pmp.read_addr((n - PMPADDR0) as usize),
            MCYCLE => self.counter(INHIBIT_CY),
            MINSTRET => self.counter(INHIBIT_IR),
            MHPMCOUNTER3..=MHPMCOUNTER31 => 0,
            _ => return Err(self.illegal()),
        })
    }

    /// Writes CSR `n`. The caller has already read it (or checked access
    /// with a read), so only write-specific rules are checked here.
    pub fn csr_write(&mut self, n: u16, v: u64) -> Result<(), Trap> {
        use addr::*;
        // §2.1: bits 11..10 = 0b11 mark read-only CSRs.
        if n >> 10 == 3 {
            return Err(self.illegal());
        }
        let c = &mut self.csr;
        match n {
            FFLAGS | FRM | FCSR => {
                match n {
                    FFLAGS => c.fflags = v & 0x1f,
                    FRM => c.frm = v & 7,
                    _ => {
                        c.fflags = v & 0x1f;
                        c.frm = (v >> 5) & 7;
                    }
                }
                // §3.1.6.6: writing FP state marks FS Dirty.
                c.mstatus |= status::FS;
            }
            SSTATUS => {
                let m = (c.mstatus & !status::S_WRITABLE) | (v & status::S_WRITABLE);
                self.set_mstatus(m);
            }
            SIE => c.mie = (c.mie & !c.mideleg) | (v & c.mideleg & IP_S),
            STVEC => c.stvec = legal_tvec(c.stvec, v),
            SCOUNTEREN => c.scounteren = v & 0xffff_ffff,
            // Only FIOM exists among the envcfg fields Strata implements.
            SENVCFG => c.senvcfg = v & 1,
            SSCRATCH => c.sscratch = v,
            SEPC => c.sepc = v & !1,
            SCAUSE => c.scause = v,
            STVAL => c.stval = v,
            SIP => {
                let w = c.mideleg & (1 << ip::SSIP);
                c.mip = (c.mip & !w) | (v & w);
            }
            SATP => {
                // §4.1.11: a write with an unsupported MODE has no effect.
                let mode = v >> satp::MODE_SHIFT;
                if mode == satp::BARE || mode == satp::SV39 || mode == satp::SV48 {
                    let v = v & (0xf << satp::MODE_SHIFT | satp::ASID_MASK | satp::PPN_MASK);
                    c.satp = if mode == satp::BARE { 0 } else { v };
                    self.tlb.flush();
                    self.update_mmu_ctx();
                }
            }
            MSTATUS => {
                let mut w = v & status::M_WRITABLE;
                // MPP is WARL: 2 is reserved, keep the old value then.
                if (w & status::MPP) >> status::MPP_SHIFT == 2 {
                    w = (w & !status::MPP) | (c.mstatus & status::MPP);
                }
                self.set_mstatus(w);
            }
            MISA => {}
            MEDELEG => c.medeleg = v & MEDELEG_WRITABLE,
            MIDELEG => c.mideleg = v & IP_S,
            MIE => c.mie = v & IP_ALL,
            MTVEC => c.mtvec = legal_tvec(c.mtvec, v),
            MCOUNTEREN => c.mcounteren = v & 0xffff_ffff,
            MENVCFG => c.menvcfg = v & 1,
            MCOUNTINHIBIT => {
                let new = v & 0xffff_fffd;
                // Freeze or thaw each counter at its current value; this
                // instruction counts as retired before the change.
                let now = self.instret.wrapping_add(1);
                for (bit, off, frozen) in [
                    (INHIBIT_CY, &mut c.mcycle_off, &mut c.mcycle_frozen),
                    (INHIBIT_IR, &mut c.minstret_off, &mut c.minstret_frozen),
                ] {
                    match (c.mcountinhibit & bit != 0, new & bit != 0) {
                        (false, true) => *frozen = now.wrapping_add(*off),
                        (true, false) => *off = frozen.wrapping_sub(now),
                        _ => {}
                    }
                }
                c.mcountinhibit = new;
            }
            MHPMEVENT3..=MHPMEVENT31 => {}
            MSCRATCH => c.mscratch = v,
            MEPC => c.mepc = v & !1,
            MCAUSE => c.mcause = v,
            MTVAL => c.mtval = v,
            MIP => c.mip = (c.mip & !IP_S) | (v & IP_S),
            PMPCFG0..=PMPCFG15 => {
                self.pmp.write_cfg((n - PMPCFG0) as usize, v);
                self.tlb.flush();
            }
            PMPADDR0..=PMPADDR63 => {
                self.pmp.write_addr((n - PMPADDR0) as usize, v);
                self.tlb.flush();
            }
            // The counter value written is the value read next, so store
            // the offset from the running count. minstret is written by the
            // CSR instruction itself, which retires after the write (§3.3.1
            // "... written value ... before the increment"), hence the -1.
            MCYCLE => {
                c.mcycle_off = v.wrapping_sub(self.instret).wrapping_sub(1);
                c.mcycle_frozen = v;
            }
            MINSTRET => {
                c.minstret_off = v.wrapping_sub(self.instret).wrapping_sub(1);
                c.minstret_frozen = v;
            }
            MHPMCOUNTER3..=MHPMCOUNTER31 => {}
            _ => return Err(self.illegal()),
        }
        // Any CSR write may change which interrupts are deliverable.
        self.event = true;
        Ok(())
    }

    pub(crate) fn set_mstatus(&mut self, v: u64) {
        self.csr.mstatus = v;
        self.update_mmu_ctx();
    }
}

/// mtvec/stvec: MODE values 2 and 3 are reserved; keep the old MODE then.
fn legal_tvec(old: u64, v: u64) -> u64 {
    if v & 3 >= 2 {
        (v & !3) | (old & 3)
    } else {
        v
    }
}

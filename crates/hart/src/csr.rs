//! Control and status registers (Privileged Architecture 20211203, chapter 2
//! for the address map and access rules, §3.1 and §4.1 for the machine and
//! supervisor registers, chapter 8 for the Hypervisor extension's
//! registers and the VS CSRs that stand in for the S CSRs when V=1).

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
    // Hypervisor and VS CSRs (Priv. Table 2.3, §8.2).
    pub const VSSTATUS: u16 = 0x200;
    pub const VSIE: u16 = 0x204;
    pub const VSTVEC: u16 = 0x205;
    pub const VSSCRATCH: u16 = 0x240;
    pub const VSEPC: u16 = 0x241;
    pub const VSCAUSE: u16 = 0x242;
    pub const VSTVAL: u16 = 0x243;
    pub const VSIP: u16 = 0x244;
    pub const VSATP: u16 = 0x280;
    pub const HSTATUS: u16 = 0x600;
    pub const HEDELEG: u16 = 0x602;
    pub const HIDELEG: u16 = 0x603;
    pub const HIE: u16 = 0x604;
    pub const HTIMEDELTA: u16 = 0x605;
    pub const HCOUNTEREN: u16 = 0x606;
    pub const HGEIE: u16 = 0x607;
    pub const HENVCFG: u16 = 0x60a;
    pub const HTVAL: u16 = 0x643;
    pub const HIP: u16 = 0x644;
    pub const HVIP: u16 = 0x645;
    pub const HTINST: u16 = 0x64a;
    pub const HGATP: u16 = 0x680;
    pub const HGEIP: u16 = 0xe12;
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
    pub const MTINST: u16 = 0x34a;
    pub const MTVAL2: u16 = 0x34b;
    pub const PMPCFG0: u16 = 0x3a0;
    pub const PMPCFG15: u16 = 0x3af;
    pub const PMPADDR0: u16 = 0x3b0;
    pub const PMPADDR63: u16 = 0x3ef;
    pub const MCYCLE: u16 = 0xb00;
    pub const MINSTRET: u16 = 0xb02;
    pub const MHPMCOUNTER3: u16 = 0xb03;
    pub const MHPMCOUNTER31: u16 = 0xb1f;
}

/// `mstatus` fields (Priv. §3.1.6, Figure 3.7; MPV and GVA from §8.4.1).
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
    /// UXL (bits 33..32) = 2, XLEN 64, read-only.
    pub const UXL: u64 = 2 << 32;
    /// UXL = SXL = 2 (XLEN 64), read-only.
    pub const UXL_SXL: u64 = 2 << 32 | 2 << 34;
    pub const GVA: u64 = 1 << 38;
    pub const MPV: u64 = 1 << 39;
    pub const SD: u64 = 1 << 63;

    pub const M_WRITABLE: u64 =
        SIE | MIE | SPIE | MPIE | SPP | MPP | FS | MPRV | SUM | MXR | TVM | TW | TSR | GVA | MPV;
    pub const S_WRITABLE: u64 = SIE | SPIE | SPP | FS | SUM | MXR;
    pub const S_READABLE: u64 = SIE | SPIE | SPP | VS | FS | XS | SUM | MXR | (3 << 32) | SD;
}

/// `hstatus` fields (Priv. §8.2.1, Figure 8.2).
pub mod hstatus {
    pub const GVA: u64 = 1 << 6;
    pub const SPV: u64 = 1 << 7;
    pub const SPVP: u64 = 1 << 8;
    pub const HU: u64 = 1 << 9;
    pub const VTVM: u64 = 1 << 20;
    pub const VTW: u64 = 1 << 21;
    pub const VTSR: u64 = 1 << 22;
    /// VSXL = 2 (VSXLEN 64), read-only.
    pub const VSXL: u64 = 2 << 32;
    /// VSBE is read-only zero (little-endian only); VGEIN is read-only zero
    /// because GEILEN is zero (no guest external interrupt sources).
    pub const WRITABLE: u64 = GVA | SPV | SPVP | HU | VTVM | VTW | VTSR;
}

/// `hgatp` fields (Priv. §8.2.10).
pub mod hgatp {
    pub const MODE_SHIFT: u32 = 60;
    pub const BARE: u64 = 0;
    pub const SV39X4: u64 = 8;
    pub const SV48X4: u64 = 9;
    /// VMIDLEN = 14, the maximum for RV64.
    pub const VMID_MASK: u64 = 0x3fff << 44;
    /// PPN bits 1..0 read as zero: the root table is 16 KiB aligned.
    pub const PPN_MASK: u64 = ((1 << 44) - 1) & !3;
}

/// Interrupt bits added by the Hypervisor extension (Priv. §8.4.3).
pub mod hip {
    pub const VSSIP: u32 = 2;
    pub const VSTIP: u32 = 6;
    pub const VSEIP: u32 = 10;
    pub const SGEIP: u32 = 12;
}

/// `misa`: RV64 with A, C, D, F, H, I, M, S, U (Priv. §3.1.1). Read-only.
pub const MISA_VALUE: u64 = 2 << 62 | misa_bits(b"ACDFHIMSU");

/// The `misa` Extensions bits of the letters in `letters` (bit 0 is A).
const fn misa_bits(letters: &[u8]) -> u64 {
    let mut v = 0;
    let mut i = 0;
    while i < letters.len() {
        v |= 1 << (letters[i] - b'A');
        i += 1;
    }
    v
}

const fn bit(n: u32) -> u64 {
    1 << n
}

/// S-level interrupts.
pub(crate) const IP_S: u64 = bit(ip::SSIP) | bit(ip::STIP) | bit(ip::SEIP);
/// VS-level interrupts, which `mideleg` always delegates (§8.4.2) and
/// `hideleg` may delegate further.
pub(crate) const IP_VS: u64 = bit(hip::VSSIP) | bit(hip::VSTIP) | bit(hip::VSEIP);
/// Interrupt bits that exist on this hart (`mie` is writable in these).
const IP_ALL: u64 = IP_S | IP_VS | bit(ip::MSIP) | bit(ip::MTIP) | bit(ip::MEIP);
/// Exceptions that may be delegated to HS: all standard causes except
/// ECALL from M (11), which cannot be delegated (§3.1.8).
const MEDELEG_WRITABLE: u64 = 0xb7ff | 0xf << 20;
/// Exceptions that may be delegated on to VS (§8.2.2, Table 8.2): not the
/// ECALLs from HS, VS and M, nor guest-page faults or virtual instruction.
const HEDELEG_WRITABLE: u64 = 0xb1ff;

/// satp modes (Priv. §4.1.11, Table 4.4).
pub mod satp {
    pub const MODE_SHIFT: u32 = 60;
    pub const BARE: u64 = 0;
    pub const SV39: u64 = 8;
    pub const SV48: u64 = 9;
    pub const ASID_MASK: u64 = 0xffff << 44;
    pub const PPN_MASK: u64 = (1 << 44) - 1;
}

/// `vsstatus` fields a guest may write (§8.2.11: SIE, SPIE, SPP, FS, SUM,
/// MXR; UXL is read-only 64-bit).
const VSSTATUS_WRITABLE: u64 = status::SIE | status::SPIE | status::SPP | status::FS | status::SUM | status::MXR;

/// The CSR state of one hart. Counters are kept as offsets from the hart's
/// retired-instruction count, so counting costs nothing per instruction.
#[derive(Clone, Debug, Default)]
pub struct Csrs {
    pub mstatus: u64,
    pub medeleg: u64,
    pub mideleg: u64,
    /// All interrupt enables: M, S and VS bits (`sie`, `hie` and `vsie`
    /// are views of this register).
    pub mie: u64,
    /// The software-writable S bits of `mip` (SSIP, STIP, SEIP); the device
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
    pub mtval2: u64,
    pub mtinst: u64,
    pub stvec: u64,
    pub scounteren: u64,
    pub senvcfg: u64,
    pub sscratch: u64,
    pub sepc: u64,
    pub scause: u64,
    pub stval: u64,
    pub satp: u64,
    pub hstatus: u64,
    pub hedeleg: u64,
    pub hideleg: u64,
    /// VS-level interrupts injected by the hypervisor (VSSIP, VSTIP,
    /// VSEIP); `hip`, `mip` and `vsip` show them.
    pub hvip: u64,
    pub hcounteren: u64,
    pub henvcfg: u64,
    pub htimedelta: u64,
    pub htval: u64,
    pub htinst: u64,
    pub hgatp: u64,
    pub vsstatus: u64,
    pub vstvec: u64,
    pub vsscratch: u64,
    pub vsepc: u64,
    pub vscause: u64,
    pub vstval: u64,
    pub vsatp: u64,
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

/// Why a CSR access is refused.
enum Refusal {
    Illegal,
    Virtual,
}

impl Hart {
    /// The value of `mip` as software reads it: device lines, the S bits
    /// software set, and the VS bits the hypervisor injected.
    #[inline]
    pub fn mip(&self) -> u64 {
        self.csr.mip | self.irqs.pending() | (self.csr.hvip & IP_VS)
    }

    /// The software-writable bits of `mip`: SSIP, STIP, SEIP as written, and
    /// VSSIP (an alias of `hvip.VSSIP`), without any device line.
    pub(crate) fn mip_software(&self) -> u64 {
        self.csr.mip | (self.csr.hvip & bit(hip::VSSIP))
    }

    /// `mideleg` as it reads: the VS-level bits are read-only one (§8.4.2).
    #[inline]
    pub(crate) fn mideleg(&self) -> u64 {
        self.csr.mideleg | IP_VS
    }

    fn illegal(&self) -> Trap {
        Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits)
    }

    pub(crate) fn virtual_insn(&self) -> Trap {
        Trap::new(cause::VIRTUAL_INSN, self.cur_insn_bits)
    }

    fn refuse(&self, r: Refusal) -> Trap {
        match r {
            Refusal::Illegal => self.illegal(),
            Refusal::Virtual => self.virtual_insn(),
        }
    }

    /// Whether a counter CSR (cycle/time/instret/hpmcounterN) is readable at
    /// the current privilege (§3.1.11 mcounteren, §4.1.5 scounteren, §8.2.6
    /// hcounteren; the virtual-instruction cases of §8.6.1). The whole table
    /// is tested in `csr/counter_tests.rs`.
    fn counter_check(&self, n: u16) -> Result<(), Refusal> {
        let bit = 1u64 << (n & 31);
        let c = &self.csr;
        if self.prv == Priv::M {
            return Ok(());
        }
        if c.mcounteren & bit == 0 {
            return Err(Refusal::Illegal);
        }
        let s_ok = self.prv == Priv::S || c.scounteren & bit != 0;
        if !self.virt {
            return if s_ok { Ok(()) } else { Err(Refusal::Illegal) };
        }
        if c.hcounteren & bit == 0 || !s_ok {
            return Err(Refusal::Virtual);
        }
        Ok(())
    }

    /// Current value of mcycle (`INHIBIT_CY`) or minstret (`INHIBIT_IR`).
    /// Both count retired instructions: this hart has no notion of cycles
    /// apart from instructions.
    fn counter(&self, bit: u64) -> u64 {
        let c = &self.csr;
        let (off, frozen) =
            if bit == INHIBIT_CY { (c.mcycle_off, c.mcycle_frozen) } else { (c.minstret_off, c.minstret_frozen) };
        if c.mcountinhibit & bit != 0 {
            frozen
        } else {
            self.instret.wrapping_add(off)
        }
    }

    /// Whether FP instructions and CSRs are enabled: FS must be on in
    /// `mstatus`, and when V=1 in `vsstatus` too (§8.2.11).
    pub(crate) fn fs_enabled(&self) -> bool {
        self.csr.mstatus & status::FS != 0 && (!self.virt || self.csr.vsstatus & status::FS != 0)
    }

    /// Marks the FP state Dirty in every status register in effect.
    pub(crate) fn fs_dirty(&mut self) {
        // §3.1.6.6, §8.2.11: when V=1 both fields become Dirty.
        self.csr.mstatus |= status::FS;
        if self.virt {
            self.csr.vsstatus |= status::FS;
        }
    }

    pub(crate) fn mstatus_read(&self) -> u64 {
        let m = self.csr.mstatus | status::UXL_SXL;
        if m & status::FS == status::FS {
            m | status::SD
        } else {
            m
        }
    }

    fn vsstatus_read(&self) -> u64 {
        let v = self.csr.vsstatus | status::UXL;
        if v & status::FS == status::FS {
            v | status::SD
        } else {
            v
        }
    }

    /// The privilege rules of §2.1 and §8.6.1 for CSR `n`: bits 9..8 give the
    /// lowest privilege that may access it (HS-mode counts as level 2, the
    /// hypervisor level), bits 11..10 = 3 mark it read-only. When V=1, an
    /// access that HS-mode could make raises a virtual-instruction
    /// exception instead of an illegal-instruction one.
    fn csr_privilege(&self, bus: &mut dyn Bus, n: u16, write: bool) -> Result<(), Refusal> {
        let level = (n >> 8) & 3;
        if write && n >> 10 == 3 {
            return Err(Refusal::Illegal);
        }
        match (self.prv, self.virt) {
            (Priv::M, _) => Ok(()),
            (p, false) => {
                let max = if p == Priv::S { 2 } else { 0 };
                if level > max {
                    Err(Refusal::Illegal)
                } else {
                    Ok(())
                }
            }
            (p, true) => {
                if level == 3 {
                    Err(Refusal::Illegal)
                } else if level == 2 || (p == Priv::U && level == 1) {
                    // "... when the same access would be allowed in
                    // HS-mode": only for CSRs that exist.
                    if self.csr_value(bus, n, false).is_some() {
                        Err(Refusal::Virtual)
                    } else {
                        Err(Refusal::Illegal)
                    }
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The value of CSR `n` with no access checks; `virt` selects the VS
    /// CSRs in place of the S CSRs. `None` if there is no such CSR.
    fn csr_value(&self, bus: &mut dyn Bus, n: u16, virt: bool) -> Option<u64> {
        use addr::*;
        let c = &self.csr;
        Some(match n {
            FFLAGS => c.fflags,
            FRM => c.frm,
            FCSR => c.frm << 5 | c.fflags,
            CYCLE => self.counter(INHIBIT_CY),
            // §8.2.7: in VS and VU, time reads as time + htimedelta.
            TIME if virt => bus.mtime().wrapping_add(c.htimedelta),
            TIME => bus.mtime(),
            INSTRET => self.counter(INHIBIT_IR),
            HPMCOUNTER3..=HPMCOUNTER31 => 0,
            SSTATUS if virt => self.vsstatus_read(),
            SSTATUS => self.mstatus_read() & status::S_READABLE,
            SIE if virt => self.vsie(),
            SIE => c.mie & self.mideleg() & IP_S,
            STVEC if virt => c.vstvec,
            STVEC => c.stvec,
            SCOUNTEREN => c.scounteren,
            SENVCFG => c.senvcfg,
            SSCRATCH if virt => c.vsscratch,
            SSCRATCH => c.sscratch,
            SEPC if virt => c.vsepc,
            SEPC => c.sepc,
            SCAUSE if virt => c.vscause,
            SCAUSE => c.scause,
            STVAL if virt => c.vstval,
            STVAL => c.stval,
            SIP if virt => self.vsip(),
            SIP => self.mip() & self.mideleg() & IP_S,
            SATP if virt => c.vsatp,
            SATP => c.satp,
            VSSTATUS => self.vsstatus_read(),
            VSIE => self.vsie(),
            VSTVEC => c.vstvec,
            VSSCRATCH => c.vsscratch,
            VSEPC => c.vsepc,
            VSCAUSE => c.vscause,
            VSTVAL => c.vstval,
            VSIP => self.vsip(),
            VSATP => c.vsatp,
            HSTATUS => c.hstatus | hstatus::VSXL,
            HEDELEG => c.hedeleg,
            HIDELEG => c.hideleg,
            HIE => c.mie & IP_VS,
            HTIMEDELTA => c.htimedelta,
            HCOUNTEREN => c.hcounteren,
            HGEIE | HGEIP => 0,
            HENVCFG => c.henvcfg,
            HTVAL => c.htval,
            HIP => self.mip() & IP_VS,
            HVIP => c.hvip,
            HTINST => c.htinst,
            HGATP => c.hgatp,
            MVENDORID | MARCHID | MIMPID | MCONFIGPTR => 0,
            MHARTID => self.hartid,
            MSTATUS => self.mstatus_read(),
            MISA => MISA_VALUE,
            MEDELEG => c.medeleg,
            MIDELEG => self.mideleg(),
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
            MTINST => c.mtinst,
            MTVAL2 => c.mtval2,
            // Odd pmpcfg registers do not exist on RV64.
            PMPCFG0..=PMPCFG15 if n & 1 == 0 => self.pmp.read_cfg((n - PMPCFG0) as usize),
            PMPADDR0..=PMPADDR63 => self.pmp.read_addr((n - PMPADDR0) as usize),
            MCYCLE => self.counter(INHIBIT_CY),
            MINSTRET => self.counter(INHIBIT_IR),
            MHPMCOUNTER3..=MHPMCOUNTER31 => 0,
            _ => return None,
        })
    }

    /// `vsie`: the VS bits of `mie` that `hideleg` delegates, moved down to
    /// the S positions (§8.2.12).
    fn vsie(&self) -> u64 {
        (self.csr.mie & self.csr.hideleg & IP_VS) >> 1
    }

    fn vsip(&self) -> u64 {
        (self.mip() & self.csr.hideleg & IP_VS) >> 1
    }

    /// Checks that CSR `n` may be accessed now (`write` for an access that
    /// writes), with the special rules of FP CSRs, counters, `satp` and
    /// `hgatp`.
    fn csr_check(&self, bus: &mut dyn Bus, n: u16, write: bool) -> Result<(), Trap> {
        use addr::*;
        self.csr_privilege(bus, n, write).map_err(|r| self.refuse(r))?;
        let vs = self.virt && self.prv == Priv::S;
        match n {
            // §8.6.1: FS off is always an illegal instruction.
            FFLAGS | FRM | FCSR if !self.fs_enabled() => Err(self.illegal()),
            CYCLE | TIME | INSTRET | HPMCOUNTER3..=HPMCOUNTER31 => self.counter_check(n).map_err(|r| self.refuse(r)),
            SATP if vs && self.csr.hstatus & hstatus::VTVM != 0 => Err(self.virtual_insn()),
            SATP | HGATP if !self.virt && self.prv == Priv::S && self.csr.mstatus & status::TVM != 0 => {
                Err(self.illegal())
            }
            _ if self.csr_value(bus, n, self.virt).is_none() => Err(self.illegal()),
            _ => Ok(()),
        }
    }

    /// Reads CSR `n` for a CSR instruction, enforcing access rules.
    /// `write` says whether the instruction will also write it.
    pub fn csr_read(&mut self, bus: &mut dyn Bus, n: u16, write: bool) -> Result<u64, Trap> {
        self.csr_check(bus, n, write)?;
        Ok(self.csr_value(bus, n, self.virt).unwrap_or(0))
    }

    /// Writes CSR `n`. The caller has already read it through
    /// [`csr_read`](Self::csr_read) with `write` set, which checked access.
    pub fn csr_write(&mut self, n: u16, v: u64) -> Result<(), Trap> {
        use addr::*;
        let virt = self.virt;
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
                self.fs_dirty();
            }
            SSTATUS | VSSTATUS if virt || n == VSSTATUS => {
                c.vsstatus = (c.vsstatus & !VSSTATUS_WRITABLE) | (v & VSSTATUS_WRITABLE);
                self.update_mmu_ctx();
            }
            SSTATUS => {
                let m = (c.mstatus & !status::S_WRITABLE) | (v & status::S_WRITABLE);
                self.set_mstatus(m);
            }
            SIE | VSIE if virt || n == VSIE => {
                let w = c.hideleg & IP_VS;
                c.mie = (c.mie & !w) | ((v << 1) & w);
            }
            SIE => {
                let w = c.mideleg & IP_S;
                c.mie = (c.mie & !w) | (v & w);
            }
            STVEC | VSTVEC if virt || n == VSTVEC => c.vstvec = legal_tvec(c.vstvec, v),
            STVEC => c.stvec = legal_tvec(c.stvec, v),
            SCOUNTEREN => c.scounteren = v & 0xffff_ffff,
            // Only FIOM exists among the envcfg fields Strata implements.
            SENVCFG => c.senvcfg = v & 1,
            SSCRATCH | VSSCRATCH if virt || n == VSSCRATCH => c.vsscratch = v,
            SSCRATCH => c.sscratch = v,
            SEPC | VSEPC if virt || n == VSEPC => c.vsepc = v & !1,
            SEPC => c.sepc = v & !1,
            SCAUSE | VSCAUSE if virt || n == VSCAUSE => c.vscause = v,
            SCAUSE => c.scause = v,
            STVAL | VSTVAL if virt || n == VSTVAL => c.vstval = v,
            STVAL => c.stval = v,
            SIP | VSIP if virt || n == VSIP => {
                // vsip.SSIP is hip.VSSIP (an alias of hvip.VSSIP) when
                // delegated; the other bits are read-only.
                let w = c.hideleg & bit(hip::VSSIP);
                c.hvip = (c.hvip & !w) | ((v << 1) & w);
            }
            SIP => {
                let w = c.mideleg & bit(ip::SSIP);
                c.mip = (c.mip & !w) | (v & w);
            }
            SATP | VSATP if virt || n == VSATP => {
                // §8.2.18: an unsupported MODE leaves vsatp unchanged.
                if let Some(v) = legal_atp(v) {
                    c.vsatp = v;
                    self.atp_changed();
                }
            }
            SATP => {
                // §4.1.11: a write with an unsupported MODE has no effect.
                if let Some(v) = legal_atp(v) {
                    c.satp = v;
                    self.atp_changed();
                }
            }
            HSTATUS => c.hstatus = v & hstatus::WRITABLE,
            HEDELEG => c.hedeleg = v & HEDELEG_WRITABLE,
            HIDELEG => c.hideleg = v & IP_VS,
            HIE => c.mie = (c.mie & !IP_VS) | (v & IP_VS),
            HTIMEDELTA => c.htimedelta = v,
            HCOUNTEREN => c.hcounteren = v & 0xffff_ffff,
            HGEIE => {}
            HENVCFG => c.henvcfg = v & 1,
            HTVAL => c.htval = v,
            // hip.VSSIP is writable (an alias of hvip.VSSIP); VSTIP and
            // VSEIP are read-only there.
            HIP => c.hvip = (c.hvip & !bit(hip::VSSIP)) | (v & bit(hip::VSSIP)),
            HVIP => c.hvip = v & IP_VS,
            HTINST => c.htinst = v,
            HGATP => {
                // §8.2.10: the fields are WARL. An unsupported MODE reads as
                // Bare; VMID is kept whatever the mode, as KVM's VMIDLEN
                // probe (write all ones with MODE=Bare) expects.
                let mode = v >> hgatp::MODE_SHIFT;
                let mode = if mode == hgatp::SV39X4 || mode == hgatp::SV48X4 { mode } else { hgatp::BARE };
                c.hgatp = mode << hgatp::MODE_SHIFT | (v & (hgatp::VMID_MASK | hgatp::PPN_MASK));
                self.atp_changed();
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
            MTINST => c.mtinst = v,
            MTVAL2 => c.mtval2 = v,
            MIP => {
                c.mip = (c.mip & !IP_S) | (v & IP_S);
                // mip.VSSIP aliases hvip.VSSIP (§8.4.3).
                c.hvip = (c.hvip & !bit(hip::VSSIP)) | (v & bit(hip::VSSIP));
            }
            PMPCFG0..=PMPCFG15 => {
                self.pmp.write_cfg((n - PMPCFG0) as usize, v);
                self.flush_all_translations();
            }
            PMPADDR0..=PMPADDR63 => {
                self.pmp.write_addr((n - PMPADDR0) as usize, v);
                self.flush_all_translations();
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

    /// Reads CSR `n` with no access checks, as M-mode would (the `time`
    /// counter reads as 0 here; it lives on the bus). For software running
    /// on the host in a privileged mode: Strata's hypervisor, debuggers.
    pub fn csr_peek(&self, n: u16) -> Option<u64> {
        struct NoBus;
        impl Bus for NoBus {
            fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
                None
            }
            fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
                false
            }
            fn mtime(&self) -> u64 {
                0
            }
        }
        self.csr_value(&mut NoBus, n, false)
    }

    /// Writes CSR `n` with its architectural write semantics and no access
    /// checks. Returns false for a CSR that does not exist.
    pub fn csr_poke(&mut self, n: u16, v: u64) -> bool {
        self.csr_peek(n).is_some() && self.csr_write(n, v).is_ok()
    }

    pub(crate) fn set_mstatus(&mut self, v: u64) {
        self.csr.mstatus = v;
        self.update_mmu_ctx();
    }
}

/// A `satp`/`vsatp` value with a supported MODE, masked to its fields;
/// `None` for an unsupported MODE.
fn legal_atp(v: u64) -> Option<u64> {
    let mode = v >> satp::MODE_SHIFT;
    match mode {
        satp::BARE => Some(0),
        satp::SV39 | satp::SV48 => Some(v & (0xf << satp::MODE_SHIFT | satp::ASID_MASK | satp::PPN_MASK)),
        _ => None,
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

#[cfg(test)]
mod counter_tests;

//! Control and status registers (Privileged Architecture 20211203, chapter 2
//! for the address map and access rules, §3.1 and §4.1 for the machine and
//! supervisor registers, chapter 8 for the Hypervisor extension's
//! registers and the VS CSRs that stand in for the S CSRs when V=1).

use crate::trap::{cause, Trap};
use crate::{Bus, Hart, Priv};
use strata_arch::ext::Ext;
use strata_arch::irq::{self, bit};

/// CSR numbers and fields: one home, `strata-arch`.
pub use strata_arch::csr::{addr, counters, envcfg, fcsr, hgatp, hstatus, satp, tvec};

/// `mstatus` fields (`strata_arch::csr::mstatus`), and which of them this
/// hart lets software write.
pub mod status {
    pub use strata_arch::csr::mstatus::*;

    /// UXL = 64-bit, read-only (Strata is RV64 only).
    pub const UXL_64: u64 = XL_64 << UXL_SHIFT;
    /// UXL = SXL = 64-bit, read-only.
    pub const UXL_SXL: u64 = UXL_64 | XL_64 << SXL_SHIFT;
    pub const M_WRITABLE: u64 =
        SIE | MIE | SPIE | MPIE | SPP | MPP | FS | MPRV | SUM | MXR | TVM | TW | TSR | GVA | MPV;
    pub const S_WRITABLE: u64 = SIE | SPIE | SPP | FS | SUM | MXR;
}

/// `hstatus` bits this hart lets software write: VSBE is read-only zero
/// (little-endian only); VGEIN is read-only zero because GEILEN is zero (no
/// guest external interrupt sources); VSXL is read-only 64-bit.
const HSTATUS_WRITABLE: u64 =
    hstatus::GVA | hstatus::SPV | hstatus::SPVP | hstatus::HU | hstatus::VTVM | hstatus::VTW | hstatus::VTSR;

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

/// S-level interrupts.
pub(crate) const IP_S: u64 = irq::S_LEVEL;
/// VS-level interrupts, which `mideleg` always delegates (§8.4.2) and
/// `hideleg` may delegate further.
pub(crate) const IP_VS: u64 = irq::VS_LEVEL;
/// Interrupt bits that exist on this hart (`mie` is writable in these).
const IP_ALL: u64 = IP_S | IP_VS | irq::M_LEVEL;
/// Exceptions that may be delegated to HS (§3.1.8).
pub(crate) const MEDELEG_WRITABLE: u64 = cause::M_DELEGABLE;
/// Exceptions that may be delegated on to VS (§8.2.2, Table 8.2).
const HEDELEG_WRITABLE: u64 = cause::VS_DELEGABLE;

/// `vsstatus` fields a guest may write (§8.2.11: SIE, SPIE, SPP, FS, SUM,
/// MXR; UXL is read-only 64-bit).
const VSSTATUS_WRITABLE: u64 = status::SIE | status::SPIE | status::SPP | status::FS | status::SUM | status::MXR;

/// The CSR state of one hart. Counters are kept as offsets from the hart's
/// retired-instruction count, so counting costs nothing per instruction.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Sstc: the supervisor timer compare (Priv. "Sstc").
    pub stimecmp: u64,
    /// Sstc: the VS timer compare, against `time + htimedelta`.
    pub vstimecmp: u64,
    /// Sstc: the STIP and VSTIP levels `stimecmp` and `vstimecmp` drove
    /// the last time the hart compared them with `time`
    /// ([`Hart::sstc_update`]); `mip` ORs them in.
    pub sstc_ip: u64,
    pub fflags: u64,
    pub frm: u64,
    pub mcycle_off: u64,
    pub minstret_off: u64,
    /// Values of mcycle/minstret held while `mcountinhibit` stops them.
    pub mcycle_frozen: u64,
    pub minstret_frozen: u64,
}

/// mcountinhibit bits (§3.1.13).
const INHIBIT_CY: u64 = counters::CY;
const INHIBIT_IR: u64 = counters::IR;

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
        self.mip_written() | self.csr.sstc_ip | self.irqs.pending() | (self.csr.hvip & IP_VS)
    }

    /// The S bits of `mip` as software wrote them. With `menvcfg.STCE` set
    /// STIP is no longer software's: it reads as `stimecmp` drives it
    /// (Priv. "Sstc": "the STIP bit in mip ... is read-only and reflects
    /// the supervisor timer interrupt").
    #[inline]
    fn mip_written(&self) -> u64 {
        if self.csr.menvcfg & envcfg::STCE != 0 {
            self.csr.mip & !bit(irq::STIP)
        } else {
            self.csr.mip
        }
    }

    /// `henvcfg.STCE` as it takes effect: read-only zero while
    /// `menvcfg.STCE` is clear (Priv. "Sstc").
    #[inline]
    fn vs_stce(&self) -> bool {
        self.csr.menvcfg & self.csr.henvcfg & envcfg::STCE != 0
    }

    /// Sstc: compares `stimecmp` and `vstimecmp` with the time `now`
    /// (`mtime`) and sets the STIP / VSTIP levels they drive. STIP is
    /// `time >= stimecmp` while `menvcfg.STCE` is set; VSTIP (ORed with
    /// `hvip.VSTIP`) is `time + htimedelta >= vstimecmp` while
    /// `henvcfg.STCE` is in effect. Both are levels, unsigned comparisons.
    /// The hart calls it when a run starts and after a CSR instruction
    /// writes one of the registers involved, so a line rises within one
    /// run of the time passing, as the ACLINT's MTIP does.
    pub fn sstc_update(&mut self, now: u64) {
        let c = &self.csr;
        let mut ip = 0;
        if c.menvcfg & envcfg::STCE != 0 && now >= c.stimecmp {
            ip |= bit(irq::STIP);
        }
        if self.vs_stce() && now.wrapping_add(c.htimedelta) >= c.vstimecmp {
            ip |= bit(irq::VSTIP);
        }
        if ip != self.csr.sstc_ip {
            self.csr.sstc_ip = ip;
            self.event = true;
        }
    }

    /// Sstc: the `mtime` value at which the next of this hart's timer lines
    /// (STIP from `stimecmp`, VSTIP from `vstimecmp`) rises, if one is armed
    /// and still low: an idle machine must wake for it as it does for the
    /// ACLINT's MTIMECMP (the ACLINT model's `next_deadline` in strata-devices).
    /// The VS deadline is
    /// `vstimecmp - htimedelta`, modulo 2^64: one in the past reads as far
    /// away, which the runner's idle wait takes as already passed. A
    /// compare value of all ones is no deadline.
    pub fn timer_deadline(&self) -> Option<u64> {
        let c = &self.csr;
        // All ones is "off" (Linux stops its timer so), as for MTIMECMP.
        let s = (c.menvcfg & envcfg::STCE != 0 && c.sstc_ip & bit(irq::STIP) == 0 && c.stimecmp != u64::MAX)
            .then_some(c.stimecmp);
        let vs = (self.vs_stce() && c.sstc_ip & bit(irq::VSTIP) == 0 && c.vstimecmp != u64::MAX)
            .then(|| c.vstimecmp.wrapping_sub(c.htimedelta));
        match (s, vs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The software-writable bits of `mip`: SSIP, STIP, SEIP as written, and
    /// VSSIP (an alias of `hvip.VSSIP`), without any device line.
    pub(crate) fn mip_software(&self) -> u64 {
        self.mip_written() | (self.csr.hvip & bit(irq::VSSIP))
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
        let v = self.csr.vsstatus | status::UXL_64;
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
    pub(crate) fn csr_value(&self, bus: &mut dyn Bus, n: u16, virt: bool) -> Option<u64> {
        use addr::*;
        let c = &self.csr;
        Some(match n {
            FFLAGS => c.fflags,
            FRM => c.frm,
            FCSR => c.frm << fcsr::FRM_SHIFT | c.fflags,
            CYCLE => self.counter(INHIBIT_CY),
            // §8.2.7: in VS and VU, time reads as time + htimedelta.
            TIME if virt => bus.mtime().wrapping_add(c.htimedelta),
            TIME => bus.mtime(),
            INSTRET => self.counter(INHIBIT_IR),
            HPMCOUNTER3..=HPMCOUNTER31 => 0,
            SSTATUS if virt => self.vsstatus_read(),
            SSTATUS => self.mstatus_read() & status::SSTATUS_VIEW,
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
            STIMECMP if virt && self.exts.has(Ext::Sstc) => c.vstimecmp,
            STIMECMP if self.exts.has(Ext::Sstc) => c.stimecmp,
            VSTIMECMP if self.exts.has(Ext::Sstc) => c.vstimecmp,
            VSSTATUS => self.vsstatus_read(),
            VSIE => self.vsie(),
            VSTVEC => c.vstvec,
            VSSCRATCH => c.vsscratch,
            VSEPC => c.vsepc,
            VSCAUSE => c.vscause,
            VSTVAL => c.vstval,
            VSIP => self.vsip(),
            VSATP => c.vsatp,
            HSTATUS => c.hstatus | status::XL_64 << hstatus::VSXL_SHIFT,
            HEDELEG => c.hedeleg,
            HIDELEG => c.hideleg,
            HIE => c.mie & IP_VS,
            HTIMEDELTA => c.htimedelta,
            HCOUNTEREN => c.hcounteren,
            HGEIE | HGEIP => 0,
            // STCE and PBMTE read as zero while menvcfg's are clear (Priv.
            // "Sstc", §8.2.5).
            HENVCFG => c.henvcfg & !((envcfg::STCE | envcfg::PBMTE) & !c.menvcfg),
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
        // Sstc: below M, `menvcfg.STCE` and `mcounteren.TM` must both be
        // set to reach `stimecmp` or `vstimecmp`, else the access is
        // illegal, HS-mode's included, so it is illegal in VS and VU too
        // (§8.6.1: virtual-instruction only where HS-mode could access).
        if matches!(n, STIMECMP | VSTIMECMP)
            && self.exts.has(Ext::Sstc)
            && self.prv != Priv::M
            && (self.csr.menvcfg & envcfg::STCE == 0 || self.csr.mcounteren & counters::TM == 0)
        {
            return Err(self.illegal());
        }
        self.csr_privilege(bus, n, write).map_err(|r| self.refuse(r))?;
        let vs = self.virt && self.prv == Priv::S;
        match n {
            // §8.6.1: FS off is always an illegal instruction.
            FFLAGS | FRM | FCSR if !self.fs_enabled() => Err(self.illegal()),
            CYCLE | TIME | INSTRET | HPMCOUNTER3..=HPMCOUNTER31 => self.counter_check(n).map_err(|r| self.refuse(r)),
            SATP if vs && self.csr.hstatus & hstatus::VTVM != 0 => Err(self.virtual_insn()),
            // Sstc: VS-mode's `stimecmp` is `vstimecmp`, which the
            // hypervisor opens with `henvcfg.STCE` and `hcounteren.TM`.
            STIMECMP
                if vs && self.exts.has(Ext::Sstc) && (!self.vs_stce() || self.csr.hcounteren & counters::TM == 0) =>
            {
                Err(self.virtual_insn())
            }
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
        let envcfg_w = self.envcfg_writable();
        let c = &mut self.csr;
        match n {
            FFLAGS | FRM | FCSR => {
                match n {
                    FFLAGS => c.fflags = v & fcsr::FFLAGS_MASK,
                    FRM => c.frm = v & fcsr::FRM_MASK,
                    _ => {
                        c.fflags = v & fcsr::FFLAGS_MASK;
                        c.frm = (v >> fcsr::FRM_SHIFT) & fcsr::FRM_MASK;
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
            // FIOM, and the CBO enables with Zicbom/Zicboz (no STCE here).
            SENVCFG => c.senvcfg = legal_envcfg(c.senvcfg, v, envcfg_w & !(envcfg::STCE | envcfg::PBMTE)),
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
                let w = c.hideleg & bit(irq::VSSIP);
                c.hvip = (c.hvip & !w) | ((v << 1) & w);
            }
            SIP => {
                let w = c.mideleg & bit(irq::SSIP);
                c.mip = (c.mip & !w) | (v & w);
            }
            STIMECMP | VSTIMECMP if virt || n == VSTIMECMP => c.vstimecmp = v,
            STIMECMP => c.stimecmp = v,
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
            HSTATUS => c.hstatus = v & HSTATUS_WRITABLE,
            HEDELEG => c.hedeleg = v & HEDELEG_WRITABLE,
            HIDELEG => c.hideleg = v & IP_VS,
            HIE => c.mie = (c.mie & !IP_VS) | (v & IP_VS),
            HTIMEDELTA => c.htimedelta = v,
            HCOUNTEREN => c.hcounteren = v & 0xffff_ffff,
            HGEIE => {}
            HENVCFG => {
                let old = c.henvcfg;
                c.henvcfg = legal_envcfg(c.henvcfg, v, envcfg_w);
                if (old ^ c.henvcfg) & envcfg::PBMTE != 0 {
                    // The walks' PBMT rules changed: cached translations
                    // were made under the old ones.
                    self.flush_all_translations();
                }
            }
            HTVAL => c.htval = v,
            // hip.VSSIP is writable (an alias of hvip.VSSIP); VSTIP and
            // VSEIP are read-only there.
            HIP => c.hvip = (c.hvip & !bit(irq::VSSIP)) | (v & bit(irq::VSSIP)),
            HVIP => c.hvip = v & IP_VS,
            HTINST => c.htinst = v,
            HGATP => {
                // §8.2.10: the fields are WARL. An unsupported MODE reads as
                // Bare; VMID is kept whatever the mode, as KVM's VMIDLEN
                // probe (write all ones with MODE=Bare) expects.
                let mode = v >> hgatp::MODE_SHIFT;
                let mode = if mode == hgatp::SV39X4 || mode == hgatp::SV48X4 { mode } else { hgatp::BARE };
                c.hgatp = mode << hgatp::MODE_SHIFT | (v & (hgatp::VMID_MASK | HGATP_PPN_MASK));
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
            MENVCFG => {
                let old = c.menvcfg;
                c.menvcfg = legal_envcfg(c.menvcfg, v, envcfg_w);
                if (old ^ c.menvcfg) & envcfg::PBMTE != 0 {
                    self.flush_all_translations();
                }
            }
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
                // With menvcfg.STCE, STIP is stimecmp's, read-only here.
                let w = if c.menvcfg & envcfg::STCE != 0 { IP_S & !bit(irq::STIP) } else { IP_S };
                c.mip = (c.mip & !w) | (v & w);
                // mip.VSSIP aliases hvip.VSSIP (§8.4.3).
                c.hvip = (c.hvip & !bit(irq::VSSIP)) | (v & bit(irq::VSSIP));
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
        self.csr_value(&mut crate::NoBus, n, false)
    }

    /// Writes CSR `n` with its architectural write semantics and no access
    /// checks. Returns false for a CSR that does not exist.
    pub fn csr_poke(&mut self, n: u16, v: u64) -> bool {
        self.csr_peek(n).is_some() && self.csr_write(n, v).is_ok()
    }

    /// The `menvcfg`/`henvcfg` fields this hart implements: FIOM, STCE
    /// with Sstc, CBIE and CBCFE with Zicbom, CBZE with Zicboz, PBMTE with
    /// Svpbmt. (`senvcfg` has neither STCE nor PBMTE.)
    fn envcfg_writable(&self) -> u64 {
        let mut w = envcfg::FIOM;
        if self.exts.has(Ext::Sstc) {
            w |= envcfg::STCE;
        }
        if self.exts.has(Ext::Zicbom) {
            w |= envcfg::CBIE | envcfg::CBCFE;
        }
        if self.exts.has(Ext::Zicboz) {
            w |= envcfg::CBZE;
        }
        if self.exts.has(Ext::Svpbmt) {
            w |= envcfg::PBMTE;
        }
        w
    }

    pub(crate) fn set_mstatus(&mut self, v: u64) {
        self.csr.mstatus = v;
        self.update_mmu_ctx();
    }
}

/// `hgatp.PPN` bits 1..0 read as zero: the root table is 16 KiB aligned
/// (§8.2.10).
pub(crate) const HGATP_PPN_MASK: u64 = hgatp::PPN_MASK & !3;

/// A `satp`/`vsatp` value with a supported MODE, masked to its fields;
/// `None` for an unsupported MODE.
fn legal_atp(v: u64) -> Option<u64> {
    let mode = v >> satp::MODE_SHIFT;
    match mode {
        satp::BARE => Some(0),
        satp::SV39 | satp::SV48 => Some(v & (satp::MODE | satp::ASID_MASK | satp::PPN_MASK)),
        _ => None,
    }
}

/// mtvec/stvec: MODE values 2 and 3 are reserved; keep the old MODE then.
/// An `xenvcfg` write: the implemented fields `w` of `v`. CBIE is WARL
/// (Priv. §3.1.18): 10 is reserved, and a write of it keeps the old value.
fn legal_envcfg(old: u64, v: u64, w: u64) -> u64 {
    let mut new = v & w;
    if (new & envcfg::CBIE) >> envcfg::CBIE_SHIFT == 2 {
        new = (new & !envcfg::CBIE) | (old & envcfg::CBIE);
    }
    new
}

fn legal_tvec(old: u64, v: u64) -> u64 {
    if v & tvec::MODE_MASK > tvec::VECTORED {
        (v & !tvec::MODE_MASK) | (old & tvec::MODE_MASK)
    } else {
        v
    }
}

#[cfg(test)]
mod counter_tests;
#[cfg(test)]
mod envcfg_tests;

#[cfg(test)]
mod sstc_tests;

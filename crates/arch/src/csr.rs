//! Control and status registers: numbers and fields.
//!
//! Numbers from Priv. §2.2, Tables 2.2–2.6 (bits 11..10 of a number = 3
//! mark it read-only, bits 9..8 give the lowest privilege that may reach
//! it, §2.1). Fields from §3.1 (machine), §4.1 (supervisor) and §8.2 (the
//! Hypervisor extension's registers and the VS registers that stand in for
//! the S registers when V=1). Only what Strata implements or a guest may
//! probe is listed.

/// CSR numbers (Priv. Tables 2.2–2.6).
pub mod addr {
    // ---- Unprivileged: floating point, counters (Table 2.2) ----
    pub const FFLAGS: u16 = 0x001;
    pub const FRM: u16 = 0x002;
    pub const FCSR: u16 = 0x003;
    pub const CYCLE: u16 = 0xc00;
    pub const TIME: u16 = 0xc01;
    pub const INSTRET: u16 = 0xc02;
    pub const HPMCOUNTER3: u16 = 0xc03;
    pub const HPMCOUNTER31: u16 = 0xc1f;
    // ---- Supervisor (Table 2.3) ----
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
    /// Sstc (Priv. "Sstc" chapter): the supervisor timer compare.
    pub const STIMECMP: u16 = 0x14d;
    pub const SATP: u16 = 0x180;
    // ---- Hypervisor and VS (Table 2.4, §8.2) ----
    pub const VSSTATUS: u16 = 0x200;
    pub const VSIE: u16 = 0x204;
    pub const VSTVEC: u16 = 0x205;
    pub const VSSCRATCH: u16 = 0x240;
    pub const VSEPC: u16 = 0x241;
    pub const VSCAUSE: u16 = 0x242;
    pub const VSTVAL: u16 = 0x243;
    pub const VSIP: u16 = 0x244;
    /// Sstc: the VS-mode timer compare (in the VS guest's `time`, i.e.
    /// host time + `htimedelta`).
    pub const VSTIMECMP: u16 = 0x24d;
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
    // ---- Machine (Tables 2.5, 2.6) ----
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
    // ---- Debug (Table 2.6): no debug module; named so tests can say what
    // they probe.
    pub const DCSR: u16 = 0x7b0;
}

/// `mstatus` fields (Priv. §3.1.6, Figure 3.7; MPV and GVA from §8.4.1).
/// `sstatus` (§4.1.1) and `vsstatus` (§8.2.11) show a subset of them at
/// the same positions ([`SSTATUS_VIEW`](mstatus::SSTATUS_VIEW)).
pub mod mstatus {
    pub const SIE: u64 = 1 << 1;
    pub const MIE: u64 = 1 << 3;
    pub const SPIE: u64 = 1 << 5;
    pub const MPIE: u64 = 1 << 7;
    pub const SPP: u64 = 1 << 8;
    pub const VS_SHIFT: u32 = 9;
    pub const VS: u64 = 3 << VS_SHIFT;
    pub const MPP_SHIFT: u32 = 11;
    pub const MPP: u64 = 3 << MPP_SHIFT;
    /// FS (and VS, XS) encode Off = 0, Initial = 1, Clean = 2, Dirty = 3
    /// (§3.1.6.6, Table 3.3).
    pub const FS_SHIFT: u32 = 13;
    pub const FS: u64 = 3 << FS_SHIFT;
    pub const FS_INITIAL: u64 = 1 << FS_SHIFT;
    pub const FS_DIRTY: u64 = 3 << FS_SHIFT;
    pub const XS: u64 = 3 << 15;
    pub const MPRV: u64 = 1 << 17;
    pub const SUM: u64 = 1 << 18;
    pub const MXR: u64 = 1 << 19;
    pub const TVM: u64 = 1 << 20;
    pub const TW: u64 = 1 << 21;
    pub const TSR: u64 = 1 << 22;
    /// UXL and SXL (bits 33..32, 35..34): the XLEN of U and S (§3.1.6.2).
    pub const UXL_SHIFT: u32 = 32;
    pub const UXL: u64 = 3 << UXL_SHIFT;
    pub const SXL_SHIFT: u32 = 34;
    pub const SXL: u64 = 3 << SXL_SHIFT;
    /// The xXL encoding of XLEN 64 (Table 3.1).
    pub const XL_64: u64 = 2;
    pub const GVA: u64 = 1 << 38;
    pub const MPV: u64 = 1 << 39;
    pub const SD: u64 = 1 << 63;
    /// The fields `sstatus` shows (§4.1.1, Figure 4.2).
    pub const SSTATUS_VIEW: u64 = SIE | SPIE | SPP | VS | FS | XS | SUM | MXR | UXL | SD;
}

/// `sstatus` is a view of [`mstatus`]: same fields, same positions.
pub use self::mstatus as sstatus;

/// `hstatus` fields (Priv. §8.2.1, Figure 8.2).
pub mod hstatus {
    pub const VSBE: u64 = 1 << 5;
    pub const GVA: u64 = 1 << 6;
    pub const SPV: u64 = 1 << 7;
    pub const SPVP: u64 = 1 << 8;
    pub const HU: u64 = 1 << 9;
    pub const VGEIN_SHIFT: u32 = 12;
    pub const VGEIN: u64 = 0x3f << VGEIN_SHIFT;
    pub const VTVM: u64 = 1 << 20;
    pub const VTW: u64 = 1 << 21;
    pub const VTSR: u64 = 1 << 22;
    /// VSXL (bits 33..32), encoded as `mstatus`'s xXL fields.
    pub const VSXL_SHIFT: u32 = 32;
    pub const VSXL: u64 = 3 << VSXL_SHIFT;
}

/// `satp` and `vsatp` (Priv. §4.1.11, Figure 4.11, Table 4.4; §8.2.18).
pub mod satp {
    pub const MODE_SHIFT: u32 = 60;
    pub const MODE: u64 = 0xf << MODE_SHIFT;
    pub const BARE: u64 = 0;
    pub const SV39: u64 = 8;
    pub const SV48: u64 = 9;
    pub const SV57: u64 = 10;
    pub const ASID_SHIFT: u32 = 44;
    /// ASIDLEN 16, the maximum for RV64.
    pub const ASID_MASK: u64 = 0xffff << ASID_SHIFT;
    pub const PPN_MASK: u64 = (1 << 44) - 1;
}

/// `hgatp` (Priv. §8.2.10, Figure 8.13, Table 8.6).
pub mod hgatp {
    pub const MODE_SHIFT: u32 = 60;
    pub const MODE: u64 = 0xf << MODE_SHIFT;
    pub const BARE: u64 = 0;
    pub const SV39X4: u64 = 8;
    pub const SV48X4: u64 = 9;
    pub const SV57X4: u64 = 10;
    pub const VMID_SHIFT: u32 = 44;
    /// VMIDLEN 14, the maximum for RV64.
    pub const VMID_BITS: u32 = 14;
    pub const VMID_MASK: u64 = ((1 << VMID_BITS) - 1) << VMID_SHIFT;
    pub const PPN_MASK: u64 = (1 << 44) - 1;
}

/// `mcounteren`/`scounteren`/`hcounteren` and `mcountinhibit` bits
/// (Priv. §3.1.11–3.1.13): bit n enables counter n.
pub mod counters {
    pub const CY: u64 = 1 << 0;
    pub const TM: u64 = 1 << 1;
    pub const IR: u64 = 1 << 2;
}

/// `menvcfg`/`senvcfg`/`henvcfg` (Priv. §3.1.18, §4.1.10, §8.2.5).
pub mod envcfg {
    /// Fence of I/O implies memory.
    pub const FIOM: u64 = 1 << 0;
    /// Zicbom: CBO.INVAL enable, two bits: 00 illegal (virtual one level
    /// down), 01 runs as a flush, 11 as an invalidate; 10 is reserved.
    pub const CBIE: u64 = 3 << 4;
    /// CBIE's lowest bit.
    pub const CBIE_SHIFT: u32 = 4;
    /// Zicbom: CBO.CLEAN and CBO.FLUSH enable.
    pub const CBCFE: u64 = 1 << 6;
    /// Zicboz: CBO.ZERO enable.
    pub const CBZE: u64 = 1 << 7;
    /// Svpbmt: PTEs' PBMT field in effect, for S-mode and G-stage
    /// translation (`menvcfg`) / VS-stage translation (`henvcfg`).
    pub const PBMTE: u64 = 1 << 62;
    /// Sstc: `stimecmp` (in `menvcfg`) / `vstimecmp` (in `henvcfg`)
    /// accessible below M and driving STIP / VSTIP.
    pub const STCE: u64 = 1 << 63;
}

/// `fcsr` (Unpriv. §11.2, Figure 11.2): flags in bits 4..0, rounding mode
/// in bits 7..5.
pub mod fcsr {
    pub const FFLAGS_MASK: u64 = 0x1f;
    pub const FRM_SHIFT: u32 = 5;
    pub const FRM_MASK: u64 = 7;
}

/// `mtvec`/`stvec`/`vstvec` MODE (Priv. §3.1.7, Table 3.5).
pub mod tvec {
    pub const MODE_MASK: u64 = 3;
    pub const DIRECT: u64 = 0;
    pub const VECTORED: u64 = 1;
}

/// The lowest privilege that may access CSR `n` (bits 9..8: 0 U, 1 S, 2
/// HS/hypervisor, 3 M; Priv. §2.1).
pub const fn min_privilege(n: u16) -> u16 {
    (n >> 8) & 3
}

/// Whether CSR `n` is read-only (bits 11..10 = 3; Priv. §2.1).
pub const fn read_only(n: u16) -> bool {
    n >> 10 == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_their_access_rules() {
        // Table 2.1's conventions, checked on a few numbers of each kind.
        assert_eq!(min_privilege(addr::FFLAGS), 0);
        assert_eq!(min_privilege(addr::SSTATUS), 1);
        assert_eq!(min_privilege(addr::VSATP), 2);
        assert_eq!(min_privilege(addr::HGATP), 2);
        assert_eq!(min_privilege(addr::MSTATUS), 3);
        assert!(read_only(addr::CYCLE) && read_only(addr::MHARTID) && read_only(addr::HGEIP));
        assert!(!read_only(addr::MSTATUS) && !read_only(addr::HGATP));
        // Each VS register is its S register plus 0x100 (§8.2).
        for (s, vs) in [
            (addr::SSTATUS, addr::VSSTATUS),
            (addr::SIE, addr::VSIE),
            (addr::STVEC, addr::VSTVEC),
            (addr::SSCRATCH, addr::VSSCRATCH),
            (addr::SEPC, addr::VSEPC),
            (addr::SCAUSE, addr::VSCAUSE),
            (addr::STVAL, addr::VSTVAL),
            (addr::SIP, addr::VSIP),
            (addr::SATP, addr::VSATP),
        ] {
            assert_eq!(vs, s + 0x100);
        }
    }

    #[test]
    fn fields_do_not_overlap() {
        let m = [
            mstatus::SIE,
            mstatus::MIE,
            mstatus::SPIE,
            mstatus::MPIE,
            mstatus::SPP,
            mstatus::VS,
            mstatus::MPP,
            mstatus::FS,
            mstatus::XS,
            mstatus::MPRV,
            mstatus::SUM,
            mstatus::MXR,
            mstatus::TVM,
            mstatus::TW,
            mstatus::TSR,
            mstatus::UXL,
            mstatus::SXL,
            mstatus::GVA,
            mstatus::MPV,
            mstatus::SD,
        ];
        let h = [
            hstatus::VSBE,
            hstatus::GVA,
            hstatus::SPV,
            hstatus::SPVP,
            hstatus::HU,
            hstatus::VGEIN,
            hstatus::VTVM,
            hstatus::VTW,
            hstatus::VTSR,
            hstatus::VSXL,
        ];
        for set in [&m[..], &h[..]] {
            for (i, a) in set.iter().enumerate() {
                for b in &set[i + 1..] {
                    assert_eq!(a & b, 0, "{a:#x} and {b:#x} overlap");
                }
            }
        }
        assert_eq!(satp::MODE & (satp::ASID_MASK | satp::PPN_MASK), 0);
        assert_eq!(hgatp::MODE & (hgatp::VMID_MASK | hgatp::PPN_MASK), 0);
        assert_eq!(hgatp::VMID_MASK >> hgatp::VMID_SHIFT, 0x3fff);
    }
}

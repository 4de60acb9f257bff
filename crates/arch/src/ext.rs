//! ISA extensions: which ones a hart implements, written once.
//!
//! [`Ext`] names every extension Strata knows; [`Extensions`] is a set of
//! them, the ISA configuration of a hart (and of the machine the device
//! tree describes). Each row of the encoding table ([`crate::isa`]) names
//! the extension it belongs to, so a hart whose set lacks an extension
//! decodes that extension's instructions as illegal, exactly as a hart
//! that never had it. [`cpu_model`] maps the `--cpu` names to sets.
//!
//! The order of [`Ext`] is the order the extensions are listed in the
//! device tree's `riscv,isa` string and `riscv,isa-extensions` list:
//! single letters in the canonical order (Unpriv. "ISA Extension Naming
//! Conventions": IMAFDQLCBKJTPVH), then the multi-letter `Z` extensions by
//! category (the letter after the `Z`, in that same order). The first
//! three `Zi*` names keep the order Strata has always printed, so an
//! `rv64gc` machine's strings do not change.

/// One ISA extension. The discriminant is its bit in [`Extensions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Ext {
    /// The base integer ISA (RV64I); also the privileged instructions
    /// (Priv. §3.3), which come with every hart.
    I,
    /// Integer multiplication and division (Unpriv. ch. 7).
    M,
    /// Atomics (Unpriv. ch. 8).
    A,
    /// Single-precision floating point (Unpriv. ch. 11).
    F,
    /// Double-precision floating point (Unpriv. ch. 12).
    D,
    /// Compressed instructions (Unpriv. ch. 16).
    C,
    /// The hypervisor extension (Priv. ch. 8).
    H,
    /// Control and status register instructions (Unpriv. ch. 9).
    Zicsr,
    /// FENCE.I (Unpriv. ch. 3).
    Zifencei,
    /// The base counters and timers `cycle`, `time`, `instret` (Unpriv.
    /// ch. 10).
    Zicntr,
    /// Cache-block management: CBO.CLEAN, CBO.FLUSH, CBO.INVAL (Unpriv.
    /// "Zicbom", CMO 1.0), gated below M by the `CBCFE`/`CBIE` fields of
    /// `menvcfg`/`henvcfg`/`senvcfg`.
    Zicbom,
    /// Cache-block prefetch hints PREFETCH.I/R/W (Unpriv. "Zicbop"): ORI
    /// encodings with `rd` = 0, which every hart executes as the no-ops
    /// they are; advertising them tells software it may use them.
    Zicbop,
    /// Cache-block zero: CBO.ZERO (Unpriv. "Zicboz"), gated below M by
    /// `CBZE`.
    Zicboz,
    /// Integer conditional operations: CZERO.EQZ/NEZ (Unpriv. "Zicond").
    Zicond,
    /// Non-temporal locality hints NTL.P1, NTL.PALL, NTL.S1, NTL.ALL and
    /// their compressed forms (Unpriv. "Zihintntl"): ADD/C.ADD with rd =
    /// x0 and rs2 = x2..x5, HINTs every hart executes as no-ops;
    /// advertising them tells software it may use them.
    Zihintntl,
    /// The PAUSE hint (Unpriv. §2.9 HINTs, "Zihintpause"): a FENCE
    /// encoding every hart executes; advertising it makes Linux's
    /// `cpu_relax` use it, and a hart thread then yields its host core
    /// while the guest spins (docs/smp.md).
    Zihintpause,
    /// May-be-operations MOP.R.0-31 and MOP.RR.0-7 (Unpriv. "Zimop"):
    /// until a later extension redefines one, each writes 0 to `rd`.
    Zimop,
    /// Wait-on-reservation-set: WRS.NTO and WRS.STO (Unpriv. "Zawrs"
    /// 1.01), stalls that end when the reservation set LR registered is
    /// written, an interrupt is pending, or (WRS.STO) a short time has
    /// passed. Category A, so it follows the `Zi*` extensions.
    Zawrs,
    /// Half-precision loads, stores, moves and conversions (Unpriv. "Zfh"
    /// chapter, Zfhmin 1.0): FLH, FSH, FMV.X.H, FMV.H.X, FCVT between H
    /// and S/D. Category F.
    Zfhmin,
    /// Compressed byte and halfword loads and stores, zero/sign
    /// extension, C.MUL and C.NOT (Unpriv. "Zc*" 1.0.0, Zcb): rows of the
    /// compressed table in encodings RVC reserves. Its C.SEXT.B/H and
    /// C.ZEXT.H need Zbb, C.ZEXT.W Zba and C.MUL M, as the instructions
    /// they expand to.
    Zcb,
    /// Compressed may-be-operations C.MOP.1, 3, …, 15 (Unpriv. "Zcmop"
    /// 1.0): in C.LUI's reserved `imm = 0` encodings; unlike Zimop's they
    /// write no register, so each is a no-op until a later extension
    /// redefines it.
    Zcmop,
    /// Address generation: SHxADD, ADD.UW, SLLI.UW (Unpriv. "B", Zba).
    Zba,
    /// Basic bit manipulation (Unpriv. "B", Zbb).
    Zbb,
    /// Carry-less multiplication (Unpriv. "B", Zbc).
    Zbc,
    /// Single-bit instructions (Unpriv. "B", Zbs).
    Zbs,
    /// Supervisor-mode timer interrupts (Priv. "Sstc"): `stimecmp`,
    /// `vstimecmp`, `menvcfg.STCE`/`henvcfg.STCE`. The multi-letter `S`
    /// extensions follow the `Z` ones (Unpriv. "ISA Extension Naming
    /// Conventions").
    Sstc,
    /// Fine-grained address-translation cache invalidation (Priv.
    /// "Svinval"): SINVAL.VMA, SFENCE.W.INVAL, SFENCE.INVAL.IR,
    /// HINVAL.VVMA, HINVAL.GVMA.
    Svinval,
    /// NAPOT translation contiguity (Priv. "Svnapot" 1.0): a leaf PTE with
    /// `N` set and `ppn[0]` ending in `1000` maps a naturally aligned
    /// 64 KiB range.
    Svnapot,
    /// Page-based memory types (Priv. "Svpbmt" 1.0): the PTE's `PBMT`
    /// field (bits 62:61), enabled by `menvcfg.PBMTE`/`henvcfg.PBMTE`.
    Svpbmt,
}

impl Ext {
    /// Every extension, in listing order.
    pub const ALL: [Ext; 29] = [
        Ext::I,
        Ext::M,
        Ext::A,
        Ext::F,
        Ext::D,
        Ext::C,
        Ext::H,
        Ext::Zicsr,
        Ext::Zifencei,
        Ext::Zicntr,
        Ext::Zicbom,
        Ext::Zicbop,
        Ext::Zicboz,
        Ext::Zicond,
        Ext::Zihintntl,
        Ext::Zihintpause,
        Ext::Zimop,
        Ext::Zawrs,
        Ext::Zfhmin,
        Ext::Zcb,
        Ext::Zcmop,
        Ext::Zba,
        Ext::Zbb,
        Ext::Zbc,
        Ext::Zbs,
        Ext::Sstc,
        Ext::Svinval,
        Ext::Svnapot,
        Ext::Svpbmt,
    ];

    /// The extension's name as ISA strings and the device tree write it
    /// (lower case).
    pub const fn name(self) -> &'static str {
        match self {
            Ext::I => "i",
            Ext::M => "m",
            Ext::A => "a",
            Ext::F => "f",
            Ext::D => "d",
            Ext::C => "c",
            Ext::H => "h",
            Ext::Zicsr => "zicsr",
            Ext::Zifencei => "zifencei",
            Ext::Zicntr => "zicntr",
            Ext::Zicbom => "zicbom",
            Ext::Zicbop => "zicbop",
            Ext::Zicboz => "zicboz",
            Ext::Zicond => "zicond",
            Ext::Zihintntl => "zihintntl",
            Ext::Zihintpause => "zihintpause",
            Ext::Zimop => "zimop",
            Ext::Zawrs => "zawrs",
            Ext::Zfhmin => "zfhmin",
            Ext::Zcb => "zcb",
            Ext::Zcmop => "zcmop",
            Ext::Zba => "zba",
            Ext::Zbb => "zbb",
            Ext::Zbc => "zbc",
            Ext::Zbs => "zbs",
            Ext::Sstc => "sstc",
            Ext::Svinval => "svinval",
            Ext::Svnapot => "svnapot",
            Ext::Svpbmt => "svpbmt",
        }
    }

    /// Whether the name is a single letter (part of the ISA string's base,
    /// `rv64imafdc…`).
    pub const fn single_letter(self) -> bool {
        self.name().len() == 1
    }

    const fn bit(self) -> u32 {
        1 << self as u8
    }
}

/// A set of extensions: a hart's ISA configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extensions(u32);

impl Extensions {
    /// The machine Strata has always been: RV64GC with the hypervisor
    /// extension and the base counters (`--cpu rv64gc`).
    pub const RV64GC: Extensions = Extensions::of(&[
        Ext::I,
        Ext::M,
        Ext::A,
        Ext::F,
        Ext::D,
        Ext::C,
        Ext::H,
        Ext::Zicsr,
        Ext::Zifencei,
        Ext::Zicntr,
    ]);

    /// The default hart: [`RV64GC`](Self::RV64GC) plus the complete
    /// extensions of RVA23 implemented so far (as QEMU's default `rv64`
    /// CPU offers Zba, Zbb, Zbc, Zbs and Sstc).
    pub const DEFAULT: Extensions = Extensions::RV64GC
        .with(Ext::Zicond)
        .with(Ext::Zihintpause)
        .with(Ext::Zba)
        .with(Ext::Zbb)
        .with(Ext::Zbc)
        .with(Ext::Zbs)
        .with(Ext::Sstc);

    /// Every extension Strata implements (`--cpu max`): the default set
    /// plus those QEMU's default `rv64` CPU does not offer (so the default
    /// stays comparable with it): Zicbom, Zicbop, Zicboz, Zihintntl, Zimop,
    /// Zawrs, Zcb, Zcmop (QEMU 7.2 has none of them), Svinval, Zfhmin,
    /// Svnapot and Svpbmt (which QEMU 7.2 has, off by default).
    pub const MAX: Extensions = Extensions::DEFAULT
        .with(Ext::Zicbom)
        .with(Ext::Zicbop)
        .with(Ext::Zicboz)
        .with(Ext::Zihintntl)
        .with(Ext::Zimop)
        .with(Ext::Zawrs)
        .with(Ext::Zfhmin)
        .with(Ext::Zcb)
        .with(Ext::Zcmop)
        .with(Ext::Svinval)
        .with(Ext::Svnapot)
        .with(Ext::Svpbmt);

    /// The set holding exactly `exts`.
    pub const fn of(exts: &[Ext]) -> Extensions {
        let mut bits = 0;
        let mut i = 0;
        while i < exts.len() {
            bits |= exts[i].bit();
            i += 1;
        }
        Extensions(bits)
    }

    /// Whether `e` is in the set.
    #[inline(always)]
    pub const fn has(self, e: Ext) -> bool {
        self.0 & e.bit() != 0
    }

    /// The set with `e` added.
    pub const fn with(self, e: Ext) -> Extensions {
        Extensions(self.0 | e.bit())
    }

    /// The set without `e`.
    pub const fn without(self, e: Ext) -> Extensions {
        Extensions(self.0 & !e.bit())
    }

    /// The members of either set.
    pub const fn union(self, other: Extensions) -> Extensions {
        Extensions(self.0 | other.0)
    }

    /// The members, in listing order.
    pub fn iter(self) -> impl Iterator<Item = Ext> {
        Ext::ALL.into_iter().filter(move |&e| self.has(e))
    }

    /// The base of the ISA string: `rv64` and the single-letter extensions,
    /// e.g. `"rv64imafdch"`.
    pub fn isa_base(self) -> String {
        let mut s = String::from("rv64");
        for e in self.iter().filter(|e| e.single_letter()) {
            s.push_str(e.name());
        }
        s
    }

    /// Every member's name, single letters first (`riscv,isa-extensions`).
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Ext::name).collect()
    }
}

impl Default for Extensions {
    fn default() -> Self {
        Extensions::DEFAULT
    }
}

/// The cache-block size of CBO.* (Zicbom, Zicboz) and PREFETCH.* (Zicbop),
/// in bytes: the naturally aligned block an operation acts on (Unpriv.
/// "Cache-Block Operations": the size is implementation-defined and
/// discovered from the device tree's `riscv,cbom-block-size`,
/// `riscv,cboz-block-size`, `riscv,cbop-block-size`). 64, as on most
/// hardware and in QEMU.
pub const CACHE_BLOCK_SIZE: u64 = 64;

/// The CPU model names `--cpu` takes, with what each gives.
pub const CPU_MODELS: &[(&str, &str)] = &[
    ("rv64gc", "RV64GC with H, Zicsr, Zifencei and Zicntr: the machine of Strata releases before RVA23 work"),
    ("default", "rv64gc plus Zba, Zbb, Zbc, Zbs, Zicond, Zihintpause and Sstc (what no --cpu gives)"),
    ("max", "default plus every other extension Strata implements: Zicbom, Zicbop, Zicboz, Zihintntl, Zimop, Zawrs, Zfhmin, Zcb, Zcmop, Svinval, Svnapot, Svpbmt"),
    ("rva23", "the RVA23 profile: refused until every extension it requires is implemented"),
];

/// The extensions of the CPU model `name` (`--cpu`), or a one-line error
/// that says why not.
pub fn cpu_model(name: &str) -> Result<Extensions, String> {
    match name {
        "rv64gc" => Ok(Extensions::RV64GC),
        "default" => Ok(Extensions::DEFAULT),
        "max" => Ok(Extensions::MAX),
        "rva23" => Err("--cpu rva23: the RVA23 profile is not complete yet (implemented beyond rv64gc: Zba, Zbb, Zbc, Zbs, Zicond, Zihintpause, Zicbom, Zicbop, Zicboz, Zihintntl, Zimop, Zawrs, Zfhmin, Zcb, Zcmop, Sstc, Svinval, Svnapot, Svpbmt; \
             missing among others: V, Zfa, Sscofpmf); \
             use --cpu rv64gc or max, or leave --cpu out"
            .into()),
        _ => {
            let names: Vec<&str> = CPU_MODELS.iter().map(|m| m.0).filter(|&n| n != "rva23").collect();
            Err(format!("--cpu {name:?}: unknown CPU model (known: {})", names.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_extension_once_in_discriminant_order() {
        for (i, e) in Ext::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
        assert!(Ext::ALL.len() <= 32, "the set is a u32");
    }

    #[test]
    fn rv64gc_strings_are_the_old_machines() {
        let r = Extensions::RV64GC;
        assert_eq!(r.isa_base(), "rv64imafdch");
        assert_eq!(r.names(), ["i", "m", "a", "f", "d", "c", "h", "zicsr", "zifencei", "zicntr"]);
        for e in [Ext::Zba, Ext::Zbb, Ext::Zbc, Ext::Zbs, Ext::Zicond, Ext::Zihintpause, Ext::Sstc] {
            assert!(!r.has(e), "{e:?}");
            assert!(Extensions::DEFAULT.has(e), "{e:?}");
        }
    }

    #[test]
    fn default_lists_z_extensions_by_category() {
        // Zi* (category I) before Zb* (category B): IMAFDQLCBKJTPVH; then
        // the S extensions.
        let n = Extensions::DEFAULT.names();
        assert_eq!(
            &n[7..],
            ["zicsr", "zifencei", "zicntr", "zicond", "zihintpause", "zba", "zbb", "zbc", "zbs", "sstc"]
        );
        assert_eq!(Extensions::DEFAULT.without(Ext::H).isa_base(), "rv64imafdc");
    }

    #[test]
    fn cpu_models() {
        assert_eq!(cpu_model("rv64gc"), Ok(Extensions::RV64GC));
        assert_eq!(cpu_model("default"), Ok(Extensions::DEFAULT));
        assert_eq!(cpu_model("max"), Ok(Extensions::MAX));
        assert!(!Extensions::DEFAULT.has(Ext::Svinval) && Extensions::MAX.has(Ext::Svinval));
        assert_eq!(Extensions::MAX.names()[25..], ["sstc", "svinval", "svnapot", "svpbmt"]);
        for e in [
            Ext::Zicbom,
            Ext::Zicbop,
            Ext::Zicboz,
            Ext::Zihintntl,
            Ext::Zimop,
            Ext::Zawrs,
            Ext::Zfhmin,
            Ext::Zcb,
            Ext::Zcmop,
        ] {
            assert!(!Extensions::DEFAULT.has(e) && Extensions::MAX.has(e), "{e:?}");
        }
        // The Zicbo* names sort among the Zi* ones, after the three that
        // rv64gc has always printed and before Zicond.
        let n = Extensions::MAX.names();
        assert_eq!(
            &n[7..17],
            [
                "zicsr",
                "zifencei",
                "zicntr",
                "zicbom",
                "zicbop",
                "zicboz",
                "zicond",
                "zihintntl",
                "zihintpause",
                "zimop"
            ]
        );
        // Zc* (category C) after the Zi* ones and before Zb* (category B
        // follows C in IMAFDQLCBKJTPVH).
        assert_eq!(&n[17..22], ["zawrs", "zfhmin", "zcb", "zcmop", "zba"]);
        let e = cpu_model("rva23").unwrap_err();
        assert!(e.contains("not complete") && !e.contains('\n'), "{e}");
        assert!(cpu_model("rv32gc").unwrap_err().contains("unknown CPU model"));
    }
}

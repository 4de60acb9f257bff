//! RV64GC + H instruction encodings (and the extensions beyond, see
//! [`Ext`]), written once, as data.
//!
//! Each row of the 32-bit table is an instruction's name, its bit pattern as
//! the specification draws it (`0`/`1` fixed bits, `.` operand bits, spaces
//! ignored), and the immediate format; rows are grouped by the extension
//! they belong to ([`Op::ext`]). The [`Op`] enum and the pattern table
//! [`ENCODINGS`] are generated from the same rows. The compressed table
//! [`COMPRESSED`] gives each RVC instruction's pattern and its expansion
//! into the base instruction it stands for (Unpriv. §16.8, Tables
//! 16.5–16.7), so that execution is written once.
//!
//! Both directions live here, side by side: [`Imm::decode`] and
//! [`Imm::encode`] for the immediate formats, [`Encoding::insn`] and
//! [`encode`] for whole instructions, [`encode_compressed`] for RVC. The
//! hart's decoder (`strata-hart`'s `decode.rs`) indexes these tables by
//! opcode; [`lookup`] here is the plain linear search, for the few callers
//! off the hot path.
//!
//! Sources: Unpriv. chapter 24 (RV32/64G instruction listings) and chapter
//! 16 (RVC); Priv. §3.3, §4.2.1 and §8.3 (privileged and hypervisor
//! instructions); the current Unprivileged ISA's chapters "B" (Zba, Zbb,
//! Zbc, Zbs, version 1.0.0) and "Zicond" (version 1.0).

use crate::ext::Ext;

/// How the immediate (if any) is assembled from the instruction bits
/// (Unpriv. §2.3, Figure 2.4; §2.5 for B and J).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imm {
    /// No immediate (R-type, R4-type, system instructions).
    None,
    /// I-type: bits 31..20, sign-extended.
    I,
    /// S-type: bits 31..25 and 11..7, sign-extended.
    S,
    /// B-type: branch offset.
    B,
    /// U-type: bits 31..12 in place, sign-extended from bit 31.
    U,
    /// J-type: jump offset.
    J,
    /// Shift amount, bits 25..20 (RV64 6-bit shamt; the W forms' patterns
    /// fix bit 25 to zero).
    Shamt,
    /// CSR number in bits 31..20, zero-extended.
    Csr,
}

#[inline]
const fn bits(x: u32, hi: u32, lo: u32) -> u32 {
    (x >> lo) & ((1 << (hi - lo + 1)) - 1)
}

#[inline]
const fn sext(x: u64, width: u32) -> i64 {
    let s = 64 - width;
    ((x << s) as i64) >> s
}

impl Imm {
    /// The immediate of instruction `raw` in this format.
    #[inline]
    pub const fn decode(self, raw: u32) -> i64 {
        match self {
            Imm::None => 0,
            Imm::I => (raw as i32 >> 20) as i64,
            Imm::S => sext((bits(raw, 31, 25) << 5 | bits(raw, 11, 7)) as u64, 12),
            Imm::B => sext(
                (bits(raw, 31, 31) << 12 | bits(raw, 7, 7) << 11 | bits(raw, 30, 25) << 5 | bits(raw, 11, 8) << 1)
                    as u64,
                13,
            ),
            Imm::U => (raw & 0xffff_f000) as i32 as i64,
            Imm::J => sext(
                (bits(raw, 31, 31) << 20 | bits(raw, 19, 12) << 12 | bits(raw, 20, 20) << 11 | bits(raw, 30, 21) << 1)
                    as u64,
                21,
            ),
            Imm::Shamt => bits(raw, 25, 20) as i64,
            Imm::Csr => bits(raw, 31, 20) as i64,
        }
    }

    /// The instruction bits that hold `imm` in this format, or `None` if
    /// the format cannot hold it (out of range, or an odd branch offset).
    pub const fn encode(self, imm: i64) -> Option<u32> {
        let v = imm as u32;
        let w = match self {
            Imm::None => 0,
            Imm::I | Imm::Csr | Imm::Shamt => v << 20,
            Imm::S => bits(v, 11, 5) << 25 | bits(v, 4, 0) << 7,
            Imm::B => bits(v, 12, 12) << 31 | bits(v, 10, 5) << 25 | bits(v, 4, 1) << 8 | bits(v, 11, 11) << 7,
            Imm::U => v & 0xffff_f000,
            Imm::J => bits(v, 20, 20) << 31 | bits(v, 10, 1) << 21 | bits(v, 11, 11) << 20 | bits(v, 19, 12) << 12,
        };
        let w = w & self.field();
        // Whatever the bits cannot carry is lost: a value that does not come
        // back is out of range.
        if self.decode(w) == imm {
            Some(w)
        } else {
            None
        }
    }

    /// The instruction bits this format's immediate occupies.
    pub const fn field(self) -> u32 {
        match self {
            Imm::None => 0,
            Imm::I | Imm::Csr => 0xfff0_0000,
            Imm::S | Imm::B => 0xfe00_0f80,
            Imm::U | Imm::J => 0xffff_f000,
            Imm::Shamt => 0x03f0_0000,
        }
    }
}

/// Parses a pattern into (mask, match) at compile time. Panics (a build
/// error, since it runs in a const context) on a malformed pattern.
pub const fn pattern(p: &str, width: u32) -> (u32, u32) {
    let b = p.as_bytes();
    let mut mask = 0u32;
    let mut bits = 0u32;
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c == b' ' || c == b'_' {
            continue;
        }
        mask <<= 1;
        bits <<= 1;
        match c {
            b'0' => mask |= 1,
            b'1' => {
                mask |= 1;
                bits |= 1
            }
            b'.' => {}
            _ => panic!("bad character in encoding pattern"),
        }
        n += 1;
    }
    if n != width {
        panic!("encoding pattern has the wrong number of bits");
    }
    (mask, bits)
}

/// A decoded instruction, packed into 8 bytes so a decoded-instruction
/// cache stays small. Register fields are always extracted from their
/// standard positions (bits 11..7, 19..15, 24..20); `imm` holds the
/// format's immediate (or the CSR number; every RV64GC immediate fits in 32
/// bits). The FP fields `rs3` and `rm` (bits 31..27 and 14..12) stay in the
/// instruction bits, as does the length (the low two bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub op: Op,
    pub rd: u8,
    pub rs1: u8,
    pub rs2: u8,
    pub imm: i32,
}

impl Insn {
    pub const ILLEGAL: Insn = Insn { op: Op::ILLEGAL, rd: 0, rs1: 0, rs2: 0, imm: 0 };
}

/// Length in bytes of the instruction whose low bits are `raw` (Unpriv.
/// §1.5: only the 16- and 32-bit lengths exist in RV64GC).
#[inline(always)]
pub const fn insn_len(raw: u32) -> u64 {
    if raw & 3 == 3 {
        4
    } else {
        2
    }
}

/// Register fields: where they sit, and which formats use the bits for
/// something else.
const RD: u32 = 31 << 7;
const RS1: u32 = 31 << 15;
const RS2: u32 = 31 << 20;

impl Encoding {
    /// Whether instruction word `raw` is this row's.
    #[inline]
    pub const fn matches(&self, raw: u32) -> bool {
        raw & self.mask == self.bits
    }

    /// The fields of `raw`, which [`matches`](Self::matches) this row.
    #[inline]
    pub const fn insn(&self, raw: u32) -> Insn {
        Insn {
            op: self.op,
            rd: bits(raw, 11, 7) as u8,
            rs1: bits(raw, 19, 15) as u8,
            rs2: bits(raw, 24, 20) as u8,
            imm: self.imm.decode(raw) as i32,
        }
    }

    /// Which register fields are this row's operands: those the immediate
    /// does not use and the pattern does not fix.
    const fn operands(&self) -> u32 {
        let mut f = RD | RS1 | RS2;
        f &= !self.imm.field();
        // A register field the pattern fixes, even in part, is no operand
        // (rd of SFENCE.VMA, rs2 of LR and of the HLV forms).
        let mut m = 0;
        let regs = [RD, RS1, RS2];
        let mut i = 0;
        while i < 3 {
            if f & regs[i] == regs[i] && self.mask & regs[i] == 0 {
                m |= regs[i];
            }
            i += 1;
        }
        m
    }
}

/// The row of `op` in [`ENCODINGS`] (`None` for [`Op::ILLEGAL`]).
pub fn encoding(op: Op) -> Option<&'static Encoding> {
    ENCODINGS.iter().find(|e| e.op == op)
}

/// The row instruction word `raw` (32-bit) matches, by linear search.
pub fn lookup(raw: u32) -> Option<&'static Encoding> {
    ENCODINGS.iter().find(|e| e.matches(raw))
}

/// Decodes one instruction by linear search of both tables: the reference
/// the hart's indexed decoder is tested against. `raw`'s low two bits
/// select the length; for a compressed instruction only the low 16 bits are
/// looked at.
pub fn decode(raw: u32) -> Insn {
    if raw & 3 == 3 {
        lookup(raw).map_or(Insn::ILLEGAL, |e| e.insn(raw))
    } else {
        let raw = raw & 0xffff;
        COMPRESSED.iter().find(|r| raw & r.mask == r.bits).and_then(|r| (r.expand)(raw)).unwrap_or(Insn::ILLEGAL)
    }
}

/// The access width in bytes of an AMO or SC (Unprivileged ISA, "A"
/// extension): 4 for the `.W` forms, 8 for the `.D` forms; `None` for
/// every other instruction (LR included: it writes nothing).
pub fn amo_width(op: Op) -> Option<usize> {
    use Op::*;
    match op {
        SC_W | AMOSWAP_W | AMOADD_W | AMOXOR_W | AMOAND_W | AMOOR_W | AMOMIN_W | AMOMAX_W | AMOMINU_W | AMOMAXU_W => {
            Some(4)
        }
        SC_D | AMOSWAP_D | AMOADD_D | AMOXOR_D | AMOAND_D | AMOOR_D | AMOMIN_D | AMOMAX_D | AMOMINU_D | AMOMAXU_D => {
            Some(8)
        }
        _ => None,
    }
}

/// How an instruction touches data memory, for a debugger's watchpoints:
/// the address is `x[rs1] + imm` of the decoded [`Insn`] (the immediate is
/// 0 for LR, SC and the AMOs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAccess {
    /// Bytes accessed from the address (CBO.ZERO: a whole cache block,
    /// from the block's aligned start).
    pub width: u64,
    pub reads: bool,
    pub writes: bool,
}

/// The data access `op` makes at the privilege level and translation it
/// runs in, or `None` for every other instruction: the loads and stores of
/// RV64I, F, D and Zfhmin, LR, SC and the AMOs (Unpriv. "A" extension: an AMO both
/// reads and writes), and CBO.ZERO (a store of a whole cache block,
/// [`CACHE_BLOCK_SIZE`](crate::ext::CACHE_BLOCK_SIZE) bytes, CMO 1.0).
/// The hypervisor's HLV/HSV are left out: they access memory through
/// another translation (the guest's, Priv. §8.2), so their virtual address
/// means something else than the current one's. The cache-management CBOs
/// and prefetches read or write no data.
pub fn data_access(op: Op) -> Option<DataAccess> {
    use Op::*;
    let load = |width| Some(DataAccess { width, reads: true, writes: false });
    let store = |width| Some(DataAccess { width, reads: false, writes: true });
    match op {
        LB | LBU => load(1),
        LH | LHU | FLH => load(2),
        LW | LWU | FLW | LR_W => load(4),
        LD | FLD | LR_D => load(8),
        SB => store(1),
        SH | FSH => store(2),
        SW | FSW => store(4),
        SD | FSD => store(8),
        SC_W | SC_D => store(amo_width(op)? as u64),
        CBO_ZERO => store(crate::ext::CACHE_BLOCK_SIZE),
        _ => amo_width(op).map(|w| DataAccess { width: w as u64, reads: true, writes: true }),
    }
}

/// The value an AMO (or SC) writes to memory, from the `old` value there
/// and `src` (rs2). A `.W` form works on the low 32 bits of both (MIN and
/// MAX compare them as signed 32-bit integers, MINU and MAXU as unsigned)
/// and returns them zero-extended; a `.D` form on all 64. SC writes `src`
/// (at its width); any other instruction gives `src` unchanged.
#[inline]
pub fn amo_result(op: Op, old: u64, src: u64) -> u64 {
    use Op::*;
    let (o, v) = (old as u32, src as u32);
    match op {
        SC_W | AMOSWAP_W => v as u64,
        AMOADD_W => o.wrapping_add(v) as u64,
        AMOXOR_W => (o ^ v) as u64,
        AMOAND_W => (o & v) as u64,
        AMOOR_W => (o | v) as u64,
        AMOMIN_W => (o as i32).min(v as i32) as u32 as u64,
        AMOMAX_W => (o as i32).max(v as i32) as u32 as u64,
        AMOMINU_W => o.min(v) as u64,
        AMOMAXU_W => o.max(v) as u64,
        AMOADD_D => old.wrapping_add(src),
        AMOXOR_D => old ^ src,
        AMOAND_D => old & src,
        AMOOR_D => old | src,
        AMOMIN_D => (old as i64).min(src as i64) as u64,
        AMOMAX_D => (old as i64).max(src as i64) as u64,
        AMOMINU_D => old.min(src),
        AMOMAXU_D => old.max(src),
        _ => src,
    }
}

/// Encodes `op` with the given register fields and immediate (or CSR
/// number, or shift amount), or `None` if they do not fit: a register above
/// 31, an immediate out of range, or a field the instruction fixes given a
/// value other than zero. Fields the instruction does not have must be 0.
/// Bits that no field names (an FP instruction's rounding mode, FENCE's
/// predecessor and successor sets, AMO ordering bits) are zero; set them
/// with [`with_field`].
pub fn try_encode(op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> Option<u32> {
    let e = encoding(op)?;
    if rd > 31 || rs1 > 31 || rs2 > 31 {
        return None;
    }
    let operands = e.operands();
    let regs = rd << 7 | rs1 << 15 | rs2 << 20;
    if regs & !operands != 0 {
        return None;
    }
    let imm_bits = e.imm.encode(imm)?;
    let w = e.bits | ((regs | imm_bits) & !e.mask);
    // An immediate that runs into fixed bits (SLLIW's shamt[5]) does not
    // come back.
    if e.insn(w).imm as i64 != imm {
        return None;
    }
    Some(w)
}

/// [`try_encode`] for callers whose operands are known to fit (tests,
/// assemblers of fixed programs). Panics with the instruction's name if
/// they do not.
#[track_caller]
pub fn encode(op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> u32 {
    try_encode(op, rd, rs1, rs2, imm)
        .unwrap_or_else(|| panic!("{} cannot encode rd={rd} rs1={rs1} rs2={rs2} imm={imm:#x}", op.name()))
}

/// Fields no register or immediate names: (high bit, low bit).
pub mod field {
    /// The rounding mode of an FP instruction (Unpriv. §11.2).
    pub const RM: (u32, u32) = (14, 12);
    /// The third source of a fused multiply-add (Unpriv. §11.6).
    pub const RS3: (u32, u32) = (31, 27);
    /// The acquire/release bits of an AMO, LR or SC (Unpriv. §8.2).
    pub const AQRL: (u32, u32) = (26, 25);
    /// FENCE's predecessor and successor sets (Unpriv. §2.7).
    pub const PRED_SUCC: (u32, u32) = (27, 20);
}

/// FENCE's fields (Unpriv. §2.7): the fence mode, and the bits of the
/// predecessor and successor sets.
pub mod fence {
    /// The fence mode, bits 31..28.
    pub const FM: (u32, u32) = (31, 28);
    /// The predecessor set, bits 27..24.
    pub const PRED: (u32, u32) = (27, 24);
    /// The successor set, bits 23..20.
    pub const SUCC: (u32, u32) = (23, 20);
    /// Set bits: device input, device output, memory reads, memory writes.
    pub const I: u32 = 0b1000;
    pub const O: u32 = 0b0100;
    pub const R: u32 = 0b0010;
    pub const W: u32 = 0b0001;
    /// `fm` of FENCE.TSO: orders RW→RW except W→R.
    pub const FM_TSO: u32 = 0b1000;
    /// PAUSE (Zihintpause, Unpriv. §2.9 HINTs): FENCE with pred = W,
    /// succ = 0, fm = 0, rd = rs1 = x0.
    pub const PAUSE: u32 = 0x0100_000f;

    /// The field `f` of instruction `raw`.
    pub const fn get(raw: u32, f: (u32, u32)) -> u32 {
        (raw >> f.1) & ((1 << (f.0 - f.1 + 1)) - 1)
    }
}

/// Instruction `word` with `value` in the bits of `field` (see [`field`]),
/// or `None` if `word` matches no row, `value` does not fit, or the row
/// fixes any of those bits.
pub fn with_field(word: u32, field: (u32, u32), value: u32) -> Option<u32> {
    let (hi, lo) = field;
    let e = lookup(word)?;
    let width_mask = (1u32 << (hi - lo + 1)) - 1;
    if value & !width_mask != 0 || e.mask & (width_mask << lo) != 0 {
        return None;
    }
    Some((word & !(width_mask << lo)) | value << lo)
}

macro_rules! encodings {
    ($( $ext:ident { $( $name:ident = $pat:literal $imm:ident ;)* } )*) => {
        /// Every operation the hart executes. Compressed instructions expand
        /// to one of these ([`COMPRESSED`]).
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $($($name,)*)*
            /// Any encoding that matches no row, and reserved encodings.
            ILLEGAL,
        }

        /// One row of the 32-bit encoding table.
        #[derive(Clone, Copy, Debug)]
        pub struct Encoding {
            pub op: Op,
            pub name: &'static str,
            /// The extension the instruction belongs to.
            pub ext: Ext,
            pub mask: u32,
            pub bits: u32,
            pub imm: Imm,
        }

        /// The 32-bit encoding table.
        pub static ENCODINGS: &[Encoding] = &[
            $($(Encoding {
                op: Op::$name,
                name: stringify!($name),
                ext: Ext::$ext,
                mask: pattern($pat, 32).0,
                bits: pattern($pat, 32).1,
                imm: Imm::$imm,
            },)*)*
        ];

        impl Op {
            pub fn name(self) -> &'static str {
                match self {
                    $($(Op::$name => stringify!($name),)*)*
                    Op::ILLEGAL => "ILLEGAL",
                }
            }

            /// The extension that has this operation ([`Ext::I`] for
            /// [`Op::ILLEGAL`], which every hart "has").
            #[inline]
            pub const fn ext(self) -> Ext {
                match self {
                    $($(Op::$name => Ext::$ext,)*)*
                    Op::ILLEGAL => Ext::I,
                }
            }
        }
    };
}

encodings! {
    // ---- RV64I (ISA §2, §5) ------------------------------------------------
    I {
        LUI        = "....................  ..... 0110111" U;
        AUIPC      = "....................  ..... 0010111" U;
        JAL        = "....................  ..... 1101111" J;
        JALR       = "............ ..... 000 ..... 1100111" I;
        BEQ        = "....... ..... ..... 000 ..... 1100011" B;
        BNE        = "....... ..... ..... 001 ..... 1100011" B;
        BLT        = "....... ..... ..... 100 ..... 1100011" B;
        BGE        = "....... ..... ..... 101 ..... 1100011" B;
        BLTU       = "....... ..... ..... 110 ..... 1100011" B;
        BGEU       = "....... ..... ..... 111 ..... 1100011" B;
        LB         = "............ ..... 000 ..... 0000011" I;
        LH         = "............ ..... 001 ..... 0000011" I;
        LW         = "............ ..... 010 ..... 0000011" I;
        LD         = "............ ..... 011 ..... 0000011" I;
        LBU        = "............ ..... 100 ..... 0000011" I;
        LHU        = "............ ..... 101 ..... 0000011" I;
        LWU        = "............ ..... 110 ..... 0000011" I;
        SB         = "....... ..... ..... 000 ..... 0100011" S;
        SH         = "....... ..... ..... 001 ..... 0100011" S;
        SW         = "....... ..... ..... 010 ..... 0100011" S;
        SD         = "....... ..... ..... 011 ..... 0100011" S;
        ADDI       = "............ ..... 000 ..... 0010011" I;
        SLTI       = "............ ..... 010 ..... 0010011" I;
        SLTIU      = "............ ..... 011 ..... 0010011" I;
        XORI       = "............ ..... 100 ..... 0010011" I;
        ORI        = "............ ..... 110 ..... 0010011" I;
        ANDI       = "............ ..... 111 ..... 0010011" I;
        SLLI       = "000000 ...... ..... 001 ..... 0010011" Shamt;
        SRLI       = "000000 ...... ..... 101 ..... 0010011" Shamt;
        SRAI       = "010000 ...... ..... 101 ..... 0010011" Shamt;
        ADD        = "0000000 ..... ..... 000 ..... 0110011" None;
        SUB        = "0100000 ..... ..... 000 ..... 0110011" None;
        SLL        = "0000000 ..... ..... 001 ..... 0110011" None;
        SLT        = "0000000 ..... ..... 010 ..... 0110011" None;
        SLTU       = "0000000 ..... ..... 011 ..... 0110011" None;
        XOR        = "0000000 ..... ..... 100 ..... 0110011" None;
        SRL        = "0000000 ..... ..... 101 ..... 0110011" None;
        SRA        = "0100000 ..... ..... 101 ..... 0110011" None;
        OR         = "0000000 ..... ..... 110 ..... 0110011" None;
        AND        = "0000000 ..... ..... 111 ..... 0110011" None;
        ADDIW      = "............ ..... 000 ..... 0011011" I;
        SLLIW      = "0000000 ..... ..... 001 ..... 0011011" Shamt;
        SRLIW      = "0000000 ..... ..... 101 ..... 0011011" Shamt;
        SRAIW      = "0100000 ..... ..... 101 ..... 0011011" Shamt;
        ADDW       = "0000000 ..... ..... 000 ..... 0111011" None;
        SUBW       = "0100000 ..... ..... 000 ..... 0111011" None;
        SLLW       = "0000000 ..... ..... 001 ..... 0111011" None;
        SRLW       = "0000000 ..... ..... 101 ..... 0111011" None;
        SRAW       = "0100000 ..... ..... 101 ..... 0111011" None;
        // FENCE's fm/pred/succ fields: see `fence` (the hart turns them into
        // host fences).
        FENCE      = "............ ..... 000 ..... 0001111" None;
        ECALL      = "000000000000 00000 000 00000 1110011" None;
        EBREAK     = "000000000001 00000 000 00000 1110011" None;
    }
    // ---- Zifencei (ISA §3) --------------------------------------------------
    Zifencei {
        FENCE_I    = "............ ..... 001 ..... 0001111" None;
    }
    // ---- Zicsr (ISA §9) ----------------------------------------------------
    Zicsr {
        CSRRW      = "............ ..... 001 ..... 1110011" Csr;
        CSRRS      = "............ ..... 010 ..... 1110011" Csr;
        CSRRC      = "............ ..... 011 ..... 1110011" Csr;
        CSRRWI     = "............ ..... 101 ..... 1110011" Csr;
        CSRRSI     = "............ ..... 110 ..... 1110011" Csr;
        CSRRCI     = "............ ..... 111 ..... 1110011" Csr;
    }
    // ---- Privileged (Priv. §3.3, §4.2.1) -----------------------------------
    I {
        MRET       = "0011000 00010 00000 000 00000 1110011" None;
        SRET       = "0001000 00010 00000 000 00000 1110011" None;
        WFI        = "0001000 00101 00000 000 00000 1110011" None;
        SFENCE_VMA = "0001001 ..... ..... 000 00000 1110011" None;
    }
    // ---- Hypervisor extension (Priv. §8.3) ---------------------------------
    H {
        HFENCE_VVMA = "0010001 ..... ..... 000 00000 1110011" None;
        HFENCE_GVMA = "0110001 ..... ..... 000 00000 1110011" None;
        HLV_B      = "0110000 00000 ..... 100 ..... 1110011" None;
        HLV_BU     = "0110000 00001 ..... 100 ..... 1110011" None;
        HLV_H      = "0110010 00000 ..... 100 ..... 1110011" None;
        HLV_HU     = "0110010 00001 ..... 100 ..... 1110011" None;
        HLVX_HU    = "0110010 00011 ..... 100 ..... 1110011" None;
        HLV_W      = "0110100 00000 ..... 100 ..... 1110011" None;
        HLV_WU     = "0110100 00001 ..... 100 ..... 1110011" None;
        HLVX_WU    = "0110100 00011 ..... 100 ..... 1110011" None;
        HLV_D      = "0110110 00000 ..... 100 ..... 1110011" None;
        HSV_B      = "0110001 ..... ..... 100 00000 1110011" None;
        HSV_H      = "0110011 ..... ..... 100 00000 1110011" None;
        HSV_W      = "0110101 ..... ..... 100 00000 1110011" None;
        HSV_D      = "0110111 ..... ..... 100 00000 1110011" None;
    }
    // ---- Svinval (Priv. "Svinval", 1.0): the fences split into an
    // invalidation and the orderings around it -------------------------------
    Svinval {
        SINVAL_VMA = "0001011 ..... ..... 000 00000 1110011" None;
        SFENCE_W_INVAL = "0001100 00000 00000 000 00000 1110011" None;
        SFENCE_INVAL_IR = "0001100 00001 00000 000 00000 1110011" None;
        HINVAL_VVMA = "0010011 ..... ..... 000 00000 1110011" None;
        HINVAL_GVMA = "0110011 ..... ..... 000 00000 1110011" None;
    }
    // ---- Zicbom, Zicboz (Unpriv. "Cache-Block Operations", CMO 1.0):
    // MISC-MEM, funct3 010, the operation in imm[11:0], rs1 the address.
    // Zicbop's PREFETCH.I/R/W are ORI with rd = 0 (no rows of their own).
    Zicbom {
        CBO_INVAL  = "000000000000 ..... 010 00000 0001111" None;
        CBO_CLEAN  = "000000000001 ..... 010 00000 0001111" None;
        CBO_FLUSH  = "000000000010 ..... 010 00000 0001111" None;
    }
    Zicboz {
        CBO_ZERO   = "000000000100 ..... 010 00000 0001111" None;
    }
    // ---- Zimop (Unpriv. "May-Be-Operations"): SYSTEM, funct3 100, bit 31
    // set (the H extension's HLV/HSV there have it clear). MOP.R.n: n in
    // bits 30, 27:26, 21:20; MOP.RR.n: n in bits 30, 27:26, rs2 a source.
    Zimop {
        MOP_R      = "1.00..0111.. ..... 100 ..... 1110011" None;
        MOP_RR     = "1.00..1 ..... ..... 100 ..... 1110011" None;
    }
    // ---- Zawrs (Unpriv. "Zawrs" 1.01): SYSTEM, funct3 0, imm 0x00d/0x01d,
    // beside ECALL/EBREAK (imm 0/1) and WFI (0x105).
    Zawrs {
        WRS_NTO    = "000000001101 00000 000 00000 1110011" None;
        WRS_STO    = "000000011101 00000 000 00000 1110011" None;
    }
    // ---- M (ISA §7) --------------------------------------------------------
    M {
        MUL        = "0000001 ..... ..... 000 ..... 0110011" None;
        MULH       = "0000001 ..... ..... 001 ..... 0110011" None;
        MULHSU     = "0000001 ..... ..... 010 ..... 0110011" None;
        MULHU      = "0000001 ..... ..... 011 ..... 0110011" None;
        DIV        = "0000001 ..... ..... 100 ..... 0110011" None;
        DIVU       = "0000001 ..... ..... 101 ..... 0110011" None;
        REM        = "0000001 ..... ..... 110 ..... 0110011" None;
        REMU       = "0000001 ..... ..... 111 ..... 0110011" None;
        MULW       = "0000001 ..... ..... 000 ..... 0111011" None;
        DIVW       = "0000001 ..... ..... 100 ..... 0111011" None;
        DIVUW      = "0000001 ..... ..... 101 ..... 0111011" None;
        REMW       = "0000001 ..... ..... 110 ..... 0111011" None;
        REMUW      = "0000001 ..... ..... 111 ..... 0111011" None;
    }
    // ---- A (ISA §8); aq/rl (bits 26..25) are free ---------------------------
    A {
        LR_W       = "00010 .. 00000 ..... 010 ..... 0101111" None;
        SC_W       = "00011 .. ..... ..... 010 ..... 0101111" None;
        AMOSWAP_W  = "00001 .. ..... ..... 010 ..... 0101111" None;
        AMOADD_W   = "00000 .. ..... ..... 010 ..... 0101111" None;
        AMOXOR_W   = "00100 .. ..... ..... 010 ..... 0101111" None;
        AMOAND_W   = "01100 .. ..... ..... 010 ..... 0101111" None;
        AMOOR_W    = "01000 .. ..... ..... 010 ..... 0101111" None;
        AMOMIN_W   = "10000 .. ..... ..... 010 ..... 0101111" None;
        AMOMAX_W   = "10100 .. ..... ..... 010 ..... 0101111" None;
        AMOMINU_W  = "11000 .. ..... ..... 010 ..... 0101111" None;
        AMOMAXU_W  = "11100 .. ..... ..... 010 ..... 0101111" None;
        LR_D       = "00010 .. 00000 ..... 011 ..... 0101111" None;
        SC_D       = "00011 .. ..... ..... 011 ..... 0101111" None;
        AMOSWAP_D  = "00001 .. ..... ..... 011 ..... 0101111" None;
        AMOADD_D   = "00000 .. ..... ..... 011 ..... 0101111" None;
        AMOXOR_D   = "00100 .. ..... ..... 011 ..... 0101111" None;
        AMOAND_D   = "01100 .. ..... ..... 011 ..... 0101111" None;
        AMOOR_D    = "01000 .. ..... ..... 011 ..... 0101111" None;
        AMOMIN_D   = "10000 .. ..... ..... 011 ..... 0101111" None;
        AMOMAX_D   = "10100 .. ..... ..... 011 ..... 0101111" None;
        AMOMINU_D  = "11000 .. ..... ..... 011 ..... 0101111" None;
        AMOMAXU_D  = "11100 .. ..... ..... 011 ..... 0101111" None;
    }
    // ---- F (ISA §11); bits 14..12 of the arithmetic ops are rm -------------
    F {
        FLW        = "............ ..... 010 ..... 0000111" I;
        FSW        = "....... ..... ..... 010 ..... 0100111" S;
        FMADD_S    = "..... 00 ..... ..... ... ..... 1000011" None;
        FMSUB_S    = "..... 00 ..... ..... ... ..... 1000111" None;
        FNMSUB_S   = "..... 00 ..... ..... ... ..... 1001011" None;
        FNMADD_S   = "..... 00 ..... ..... ... ..... 1001111" None;
        FADD_S     = "0000000 ..... ..... ... ..... 1010011" None;
        FSUB_S     = "0000100 ..... ..... ... ..... 1010011" None;
        FMUL_S     = "0001000 ..... ..... ... ..... 1010011" None;
        FDIV_S     = "0001100 ..... ..... ... ..... 1010011" None;
        FSQRT_S    = "0101100 00000 ..... ... ..... 1010011" None;
        FSGNJ_S    = "0010000 ..... ..... 000 ..... 1010011" None;
        FSGNJN_S   = "0010000 ..... ..... 001 ..... 1010011" None;
        FSGNJX_S   = "0010000 ..... ..... 010 ..... 1010011" None;
        FMIN_S     = "0010100 ..... ..... 000 ..... 1010011" None;
        FMAX_S     = "0010100 ..... ..... 001 ..... 1010011" None;
        FCVT_W_S   = "1100000 00000 ..... ... ..... 1010011" None;
        FCVT_WU_S  = "1100000 00001 ..... ... ..... 1010011" None;
        FCVT_L_S   = "1100000 00010 ..... ... ..... 1010011" None;
        FCVT_LU_S  = "1100000 00011 ..... ... ..... 1010011" None;
        FMV_X_W    = "1110000 00000 ..... 000 ..... 1010011" None;
        FCLASS_S   = "1110000 00000 ..... 001 ..... 1010011" None;
        FEQ_S      = "1010000 ..... ..... 010 ..... 1010011" None;
        FLT_S      = "1010000 ..... ..... 001 ..... 1010011" None;
        FLE_S      = "1010000 ..... ..... 000 ..... 1010011" None;
        FCVT_S_W   = "1101000 00000 ..... ... ..... 1010011" None;
        FCVT_S_WU  = "1101000 00001 ..... ... ..... 1010011" None;
        FCVT_S_L   = "1101000 00010 ..... ... ..... 1010011" None;
        FCVT_S_LU  = "1101000 00011 ..... ... ..... 1010011" None;
        FMV_W_X    = "1111000 00000 ..... 000 ..... 1010011" None;
    }
    // ---- D (ISA §12) -------------------------------------------------------
    D {
        FLD        = "............ ..... 011 ..... 0000111" I;
        FSD        = "....... ..... ..... 011 ..... 0100111" S;
        FMADD_D    = "..... 01 ..... ..... ... ..... 1000011" None;
        FMSUB_D    = "..... 01 ..... ..... ... ..... 1000111" None;
        FNMSUB_D   = "..... 01 ..... ..... ... ..... 1001011" None;
        FNMADD_D   = "..... 01 ..... ..... ... ..... 1001111" None;
        FADD_D     = "0000001 ..... ..... ... ..... 1010011" None;
        FSUB_D     = "0000101 ..... ..... ... ..... 1010011" None;
        FMUL_D     = "0001001 ..... ..... ... ..... 1010011" None;
        FDIV_D     = "0001101 ..... ..... ... ..... 1010011" None;
        FSQRT_D    = "0101101 00000 ..... ... ..... 1010011" None;
        FSGNJ_D    = "0010001 ..... ..... 000 ..... 1010011" None;
        FSGNJN_D   = "0010001 ..... ..... 001 ..... 1010011" None;
        FSGNJX_D   = "0010001 ..... ..... 010 ..... 1010011" None;
        FMIN_D     = "0010101 ..... ..... 000 ..... 1010011" None;
        FMAX_D     = "0010101 ..... ..... 001 ..... 1010011" None;
        FCVT_S_D   = "0100000 00001 ..... ... ..... 1010011" None;
        FCVT_D_S   = "0100001 00000 ..... ... ..... 1010011" None;
        FEQ_D      = "1010001 ..... ..... 010 ..... 1010011" None;
        FLT_D      = "1010001 ..... ..... 001 ..... 1010011" None;
        FLE_D      = "1010001 ..... ..... 000 ..... 1010011" None;
        FCLASS_D   = "1110001 00000 ..... 001 ..... 1010011" None;
        FCVT_W_D   = "1100001 00000 ..... ... ..... 1010011" None;
        FCVT_WU_D  = "1100001 00001 ..... ... ..... 1010011" None;
        FCVT_L_D   = "1100001 00010 ..... ... ..... 1010011" None;
        FCVT_LU_D  = "1100001 00011 ..... ... ..... 1010011" None;
        FMV_X_D    = "1110001 00000 ..... 000 ..... 1010011" None;
        FCVT_D_W   = "1101001 00000 ..... ... ..... 1010011" None;
        FCVT_D_WU  = "1101001 00001 ..... ... ..... 1010011" None;
        FCVT_D_L   = "1101001 00010 ..... ... ..... 1010011" None;
        FCVT_D_LU  = "1101001 00011 ..... ... ..... 1010011" None;
        FMV_D_X    = "1111001 00000 ..... 000 ..... 1010011" None;
    }
    // ---- Zfhmin (Unpriv. "Zfh" and "Zfhmin" 1.0): half-precision loads,
    // stores, moves and conversions to and from S and D -------------------
    Zfhmin {
        FLH        = "............ ..... 001 ..... 0000111" I;
        FSH        = "....... ..... ..... 001 ..... 0100111" S;
        FMV_X_H    = "1110010 00000 ..... 000 ..... 1010011" None;
        FMV_H_X    = "1111010 00000 ..... 000 ..... 1010011" None;
        FCVT_S_H   = "0100000 00010 ..... ... ..... 1010011" None;
        FCVT_H_S   = "0100010 00000 ..... ... ..... 1010011" None;
        FCVT_D_H   = "0100001 00010 ..... ... ..... 1010011" None;
        FCVT_H_D   = "0100010 00001 ..... ... ..... 1010011" None;
    }
    // ---- Zba: address generation (Unpriv. "B" §1.1; RV64 forms) ------------
    Zba {
        SH1ADD     = "0010000 ..... ..... 010 ..... 0110011" None;
        SH2ADD     = "0010000 ..... ..... 100 ..... 0110011" None;
        SH3ADD     = "0010000 ..... ..... 110 ..... 0110011" None;
        ADD_UW     = "0000100 ..... ..... 000 ..... 0111011" None;
        SH1ADD_UW  = "0010000 ..... ..... 010 ..... 0111011" None;
        SH2ADD_UW  = "0010000 ..... ..... 100 ..... 0111011" None;
        SH3ADD_UW  = "0010000 ..... ..... 110 ..... 0111011" None;
        SLLI_UW    = "000010 ...... ..... 001 ..... 0011011" Shamt;
    }
    // ---- Zbb: basic bit manipulation ---------------------------------------
    Zbb {
        ANDN       = "0100000 ..... ..... 111 ..... 0110011" None;
        ORN        = "0100000 ..... ..... 110 ..... 0110011" None;
        XNOR       = "0100000 ..... ..... 100 ..... 0110011" None;
        CLZ        = "0110000 00000 ..... 001 ..... 0010011" None;
        CTZ        = "0110000 00001 ..... 001 ..... 0010011" None;
        CPOP       = "0110000 00010 ..... 001 ..... 0010011" None;
        SEXT_B     = "0110000 00100 ..... 001 ..... 0010011" None;
        SEXT_H     = "0110000 00101 ..... 001 ..... 0010011" None;
        CLZW       = "0110000 00000 ..... 001 ..... 0011011" None;
        CTZW       = "0110000 00001 ..... 001 ..... 0011011" None;
        CPOPW      = "0110000 00010 ..... 001 ..... 0011011" None;
        MAX        = "0000101 ..... ..... 110 ..... 0110011" None;
        MAXU       = "0000101 ..... ..... 111 ..... 0110011" None;
        MIN        = "0000101 ..... ..... 100 ..... 0110011" None;
        MINU       = "0000101 ..... ..... 101 ..... 0110011" None;
        // RV64's ZEXT.H (RV32's sits in OP with a different funct3).
        ZEXT_H     = "0000100 00000 ..... 100 ..... 0111011" None;
        ROL        = "0110000 ..... ..... 001 ..... 0110011" None;
        ROR        = "0110000 ..... ..... 101 ..... 0110011" None;
        ROLW       = "0110000 ..... ..... 001 ..... 0111011" None;
        RORW       = "0110000 ..... ..... 101 ..... 0111011" None;
        RORI       = "011000 ...... ..... 101 ..... 0010011" Shamt;
        RORIW      = "0110000 ..... ..... 101 ..... 0011011" Shamt;
        ORC_B      = "001010000111 ..... 101 ..... 0010011" None;
        // RV64's REV8 (shamt field 111000; RV32's is 011000).
        REV8       = "011010111000 ..... 101 ..... 0010011" None;
    }
    // ---- Zbc: carry-less multiplication ------------------------------------
    Zbc {
        CLMUL      = "0000101 ..... ..... 001 ..... 0110011" None;
        CLMULR     = "0000101 ..... ..... 010 ..... 0110011" None;
        CLMULH     = "0000101 ..... ..... 011 ..... 0110011" None;
    }
    // ---- Zbs: single-bit instructions --------------------------------------
    Zbs {
        BCLR       = "0100100 ..... ..... 001 ..... 0110011" None;
        BCLRI      = "010010 ...... ..... 001 ..... 0010011" Shamt;
        BEXT       = "0100100 ..... ..... 101 ..... 0110011" None;
        BEXTI      = "010010 ...... ..... 101 ..... 0010011" Shamt;
        BINV       = "0110100 ..... ..... 001 ..... 0110011" None;
        BINVI      = "011010 ...... ..... 001 ..... 0010011" Shamt;
        BSET       = "0010100 ..... ..... 001 ..... 0110011" None;
        BSETI      = "001010 ...... ..... 001 ..... 0010011" Shamt;
    }
    // ---- Zicond: integer conditional operations (Unpriv. "Zicond") --------
    Zicond {
        CZERO_EQZ  = "0000111 ..... ..... 101 ..... 0110011" None;
        CZERO_NEZ  = "0000111 ..... ..... 111 ..... 0110011" None;
    }
}

// ---- RVC -------------------------------------------------------------------

/// One row of the compressed table: the pattern, the extension and the
/// expansion.
///
/// Rows of an extension beyond C (Zcb, Zcmop) sit in encodings that the
/// base RVC table reserves. Two rows overlap only where the earlier,
/// narrower row claims words the later, wider one expands to `None`
/// (reserved), so the first row that matches decides, and a hart without
/// the narrower row's extension finds the word reserved, as before the
/// extension existed (the `carve_outs_only_claim_reserved_words` test).
pub struct CRow {
    pub name: &'static str,
    /// The extension the row belongs to. The instruction also needs the
    /// extension of the base instruction it expands to (C.MUL needs M,
    /// C.SEXT.B Zbb, C.FLD D).
    pub ext: Ext,
    pub mask: u32,
    pub bits: u32,
    /// The base instruction `raw` stands for; `None` for the reserved
    /// encodings inside the row's pattern.
    pub expand: fn(u32) -> Option<Insn>,
}

impl CRow {
    /// Whether compressed word `raw` matches this row's pattern.
    pub const fn matches_c(&self, raw: u32) -> bool {
        raw & self.mask == self.bits
    }
}

fn c(op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> Option<Insn> {
    Some(Insn { op, rd: rd as u8, rs1: rs1 as u8, rs2: rs2 as u8, imm: imm as i32 })
}

/// The popular-register fields rd'/rs1'/rs2' name x8..x15.
fn r3(raw: u32, lo: u32) -> u32 {
    8 + bits(raw, lo + 2, lo)
}

// Immediate layouts (ISA §16.3–16.7). Each names the bits in the order the
// specification's figures list them.
fn ci_imm6(r: u32) -> i64 {
    sext((bits(r, 12, 12) << 5 | bits(r, 6, 2)) as u64, 6)
}
fn ci_uimm6(r: u32) -> u32 {
    bits(r, 12, 12) << 5 | bits(r, 6, 2)
}
fn cl_w_off(r: u32) -> i64 {
    (bits(r, 12, 10) << 3 | bits(r, 6, 6) << 2 | bits(r, 5, 5) << 6) as i64
}
fn cl_d_off(r: u32) -> i64 {
    (bits(r, 12, 10) << 3 | bits(r, 6, 5) << 6) as i64
}
fn cj_off(r: u32) -> i64 {
    sext(
        (bits(r, 12, 12) << 11
            | bits(r, 11, 11) << 4
            | bits(r, 10, 9) << 8
            | bits(r, 8, 8) << 10
            | bits(r, 7, 7) << 6
            | bits(r, 6, 6) << 7
            | bits(r, 5, 3) << 1
            | bits(r, 2, 2) << 5) as u64,
        12,
    )
}
fn cb_off(r: u32) -> i64 {
    sext(
        (bits(r, 12, 12) << 8 | bits(r, 11, 10) << 3 | bits(r, 6, 5) << 6 | bits(r, 4, 3) << 1 | bits(r, 2, 2) << 5)
            as u64,
        9,
    )
}
fn lwsp_off(r: u32) -> i64 {
    (bits(r, 12, 12) << 5 | bits(r, 6, 4) << 2 | bits(r, 3, 2) << 6) as i64
}
fn ldsp_off(r: u32) -> i64 {
    (bits(r, 12, 12) << 5 | bits(r, 6, 5) << 3 | bits(r, 4, 2) << 6) as i64
}
fn swsp_off(r: u32) -> i64 {
    (bits(r, 12, 9) << 2 | bits(r, 8, 7) << 6) as i64
}
/// Zcb's C.LBU/C.SB offset: bit 6 is uimm[0], bit 5 uimm[1].
fn cb_uimm2(r: u32) -> i64 {
    (bits(r, 6, 6) | bits(r, 5, 5) << 1) as i64
}
/// Zcb's halfword offset: bit 5 is uimm[1].
fn ch_uimm(r: u32) -> i64 {
    (bits(r, 5, 5) << 1) as i64
}
fn sdsp_off(r: u32) -> i64 {
    (bits(r, 12, 10) << 3 | bits(r, 9, 7) << 6) as i64
}

macro_rules! compressed {
    ($( $ext:ident { $( $name:ident = $pat:literal => $expand:expr ;)* } )*) => {
        /// The compressed encoding table, with each row's expansion, in
        /// decoding order (see [`CRow`] for the rows that overlap).
        pub static COMPRESSED: &[CRow] = &[
            $($(CRow {
                name: stringify!($name),
                ext: Ext::$ext,
                mask: pattern($pat, 16).0,
                bits: pattern($pat, 16).1,
                expand: $expand,
            },)*)*
        ];
    };
}

compressed! {
    // ---- Zcmop (Unpriv. "Zcmop" 1.0): C.MOP.n, n = 1, 3, ..., 15, is
    // C.LUI x[n], 0, which RVC reserves (nzimm = 0). They write no
    // register: each expands to a no-op (ADDI x0, x0, 0). Before the C.LUI
    // row, whose expansion of these words is `None`.
    Zcmop {
    C_MOP  = "011 0 0 ... 1 00000 01" => |_| c(Op::ADDI, 0, 0, 0, 0);
    }
    C {
    // ---- Quadrant 0 ----
    C_ADDI4SPN = "000 ........ ... 00" => |r| {
        let imm = bits(r, 12, 11) << 4 | bits(r, 10, 7) << 6 | bits(r, 6, 6) << 2 | bits(r, 5, 5) << 3;
        // nzuimm = 0 is reserved (and covers the all-zero illegal word).
        if imm == 0 { None } else { c(Op::ADDI, r3(r, 2), 2, 0, imm as i64) }
    };
    C_FLD  = "001 ... ... .. ... 00" => |r| c(Op::FLD, r3(r, 2), r3(r, 7), 0, cl_d_off(r));
    C_LW   = "010 ... ... .. ... 00" => |r| c(Op::LW, r3(r, 2), r3(r, 7), 0, cl_w_off(r));
    C_LD   = "011 ... ... .. ... 00" => |r| c(Op::LD, r3(r, 2), r3(r, 7), 0, cl_d_off(r));
    C_FSD  = "101 ... ... .. ... 00" => |r| c(Op::FSD, 0, r3(r, 7), r3(r, 2), cl_d_off(r));
    C_SW   = "110 ... ... .. ... 00" => |r| c(Op::SW, 0, r3(r, 7), r3(r, 2), cl_w_off(r));
    C_SD   = "111 ... ... .. ... 00" => |r| c(Op::SD, 0, r3(r, 7), r3(r, 2), cl_d_off(r));
    // ---- Quadrant 1 ----
    // C.NOP and the C.ADDI hints (rd=0 or imm=0) execute as the ADDI they
    // encode, which has no effect.
    C_ADDI = "000 . ..... ..... 01" => |r| { let rd = bits(r, 11, 7); c(Op::ADDI, rd, rd, 0, ci_imm6(r)) };
    C_ADDIW = "001 . ..... ..... 01" => |r| {
        let rd = bits(r, 11, 7);
        if rd == 0 { None } else { c(Op::ADDIW, rd, rd, 0, ci_imm6(r)) }
    };
    C_LI   = "010 . ..... ..... 01" => |r| c(Op::ADDI, bits(r, 11, 7), 0, 0, ci_imm6(r));
    C_LUI_ADDI16SP = "011 . ..... ..... 01" => |r| {
        let rd = bits(r, 11, 7);
        if rd == 2 {
            let imm = bits(r, 12, 12) << 9 | bits(r, 6, 6) << 4 | bits(r, 5, 5) << 6 | bits(r, 4, 3) << 7 | bits(r, 2, 2) << 5;
            if imm == 0 { None } else { c(Op::ADDI, 2, 2, 0, sext(imm as u64, 10)) }
        } else {
            let imm = ci_imm6(r) << 12;
            if imm == 0 { None } else { c(Op::LUI, rd, 0, 0, imm) }
        }
    };
    C_SRLI = "100 . 00 ... ..... 01" => |r| { let rd = r3(r, 7); c(Op::SRLI, rd, rd, 0, ci_uimm6(r) as i64) };
    C_SRAI = "100 . 01 ... ..... 01" => |r| { let rd = r3(r, 7); c(Op::SRAI, rd, rd, 0, ci_uimm6(r) as i64) };
    C_ANDI = "100 . 10 ... ..... 01" => |r| { let rd = r3(r, 7); c(Op::ANDI, rd, rd, 0, ci_imm6(r)) };
    C_SUB  = "100 0 11 ... 00 ... 01" => |r| { let rd = r3(r, 7); c(Op::SUB, rd, rd, r3(r, 2), 0) };
    C_XOR  = "100 0 11 ... 01 ... 01" => |r| { let rd = r3(r, 7); c(Op::XOR, rd, rd, r3(r, 2), 0) };
    C_OR   = "100 0 11 ... 10 ... 01" => |r| { let rd = r3(r, 7); c(Op::OR, rd, rd, r3(r, 2), 0) };
    C_AND  = "100 0 11 ... 11 ... 01" => |r| { let rd = r3(r, 7); c(Op::AND, rd, rd, r3(r, 2), 0) };
    C_SUBW = "100 1 11 ... 00 ... 01" => |r| { let rd = r3(r, 7); c(Op::SUBW, rd, rd, r3(r, 2), 0) };
    C_ADDW = "100 1 11 ... 01 ... 01" => |r| { let rd = r3(r, 7); c(Op::ADDW, rd, rd, r3(r, 2), 0) };
    C_J    = "101 ........... 01" => |r| c(Op::JAL, 0, 0, 0, cj_off(r));
    C_BEQZ = "110 ... ... ..... 01" => |r| c(Op::BEQ, 0, r3(r, 7), 0, cb_off(r));
    C_BNEZ = "111 ... ... ..... 01" => |r| c(Op::BNE, 0, r3(r, 7), 0, cb_off(r));
    // ---- Quadrant 2 ----
    C_SLLI = "000 . ..... ..... 10" => |r| { let rd = bits(r, 11, 7); c(Op::SLLI, rd, rd, 0, ci_uimm6(r) as i64) };
    C_FLDSP = "001 . ..... ..... 10" => |r| c(Op::FLD, bits(r, 11, 7), 2, 0, ldsp_off(r));
    C_LWSP = "010 . ..... ..... 10" => |r| {
        let rd = bits(r, 11, 7);
        if rd == 0 { None } else { c(Op::LW, rd, 2, 0, lwsp_off(r)) }
    };
    C_LDSP = "011 . ..... ..... 10" => |r| {
        let rd = bits(r, 11, 7);
        if rd == 0 { None } else { c(Op::LD, rd, 2, 0, ldsp_off(r)) }
    };
    C_JR_MV = "100 0 ..... ..... 10" => |r| {
        let (rd, rs2) = (bits(r, 11, 7), bits(r, 6, 2));
        match (rd, rs2) {
            (0, 0) => None,
            (rs1, 0) => c(Op::JALR, 0, rs1, 0, 0),
            (rd, rs2) => c(Op::ADD, rd, 0, rs2, 0),
        }
    };
    C_EBREAK_JALR_ADD = "100 1 ..... ..... 10" => |r| {
        let (rd, rs2) = (bits(r, 11, 7), bits(r, 6, 2));
        match (rd, rs2) {
            (0, 0) => c(Op::EBREAK, 0, 0, 0, 0),
            (rs1, 0) => c(Op::JALR, 1, rs1, 0, 0),
            (rd, rs2) => c(Op::ADD, rd, rd, rs2, 0),
        }
    };
    C_FSDSP = "101 ...... ..... 10" => |r| c(Op::FSD, 0, 2, bits(r, 6, 2), sdsp_off(r));
    C_SWSP = "110 ...... ..... 10" => |r| c(Op::SW, 0, 2, bits(r, 6, 2), swsp_off(r));
    C_SDSP = "111 ...... ..... 10" => |r| c(Op::SD, 0, 2, bits(r, 6, 2), sdsp_off(r));
    }
    // ---- Zcb (Unpriv. "Zc*" 1.0.0): quadrant 0's reserved funct3 100,
    // and quadrant 1's reserved C.SUBW/C.ADDW neighbours (bit 12 set,
    // funct2 10 and 11). Byte offsets: bit 6 is uimm[0], bit 5 uimm[1].
    Zcb {
    C_LBU  = "100 000 ... .. ... 00" => |r| c(Op::LBU, r3(r, 2), r3(r, 7), 0, cb_uimm2(r));
    C_LHU  = "100 001 ... 0 . ... 00" => |r| c(Op::LHU, r3(r, 2), r3(r, 7), 0, ch_uimm(r));
    C_LH   = "100 001 ... 1 . ... 00" => |r| c(Op::LH, r3(r, 2), r3(r, 7), 0, ch_uimm(r));
    C_SB   = "100 010 ... .. ... 00" => |r| c(Op::SB, 0, r3(r, 7), r3(r, 2), cb_uimm2(r));
    C_SH   = "100 011 ... 0 . ... 00" => |r| c(Op::SH, 0, r3(r, 7), r3(r, 2), ch_uimm(r));
    C_ZEXT_B = "100 111 ... 11 000 01" => |r| { let rd = r3(r, 7); c(Op::ANDI, rd, rd, 0, 0xff) };
    C_SEXT_B = "100 111 ... 11 001 01" => |r| { let rd = r3(r, 7); c(Op::SEXT_B, rd, rd, 0, 0) };
    C_ZEXT_H = "100 111 ... 11 010 01" => |r| { let rd = r3(r, 7); c(Op::ZEXT_H, rd, rd, 0, 0) };
    C_SEXT_H = "100 111 ... 11 011 01" => |r| { let rd = r3(r, 7); c(Op::SEXT_H, rd, rd, 0, 0) };
    C_ZEXT_W = "100 111 ... 11 100 01" => |r| { let rd = r3(r, 7); c(Op::ADD_UW, rd, rd, 0, 0) };
    C_NOT  = "100 111 ... 11 101 01" => |r| { let rd = r3(r, 7); c(Op::XORI, rd, rd, 0, -1) };
    C_MUL  = "100 111 ... 10 ... 01" => |r| { let rd = r3(r, 7); c(Op::MUL, rd, rd, r3(r, 2), 0) };
    }
}

/// Encodes the compressed instruction of row `name` (as in [`COMPRESSED`],
/// e.g. `"C_LW"`) that expands to `want`, or `None` if there is none. The
/// encoder is the decoder run backwards: it tries every word of the row's
/// pattern (at most 2^13) and keeps the one whose expansion is `want`, so
/// the immediate layouts are written once, in the expansions.
pub fn encode_compressed(name: &str, want: &Insn) -> Option<u16> {
    let r = COMPRESSED.iter().find(|r| r.name == name)?;
    let free = !r.mask & 0xffff;
    // Enumerate the subsets of the free bits.
    let mut sub = 0u32;
    loop {
        let raw = r.bits | sub;
        if (r.expand)(raw).as_ref() == Some(want) {
            return Some(raw as u16);
        }
        if sub == free {
            return None;
        }
        sub = (sub.wrapping_sub(free)) & free;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every instruction word that decodes to a load, store or AMO names a
    /// data access, with the width its mnemonic says; compressed forms
    /// expand to theirs. Words written out by hand from the Unprivileged
    /// spec's encodings, not made by the table.
    #[test]
    fn data_accesses_by_mnemonic() {
        let cases: [(u32, u64, bool, bool); 10] = [
            (0x0005_0503, 1, true, false), // lb a0, 0(a0)
            (0x0085_3583, 8, true, false), // ld a1, 8(a0)
            (0x00b5_2023, 4, false, true), // sw a1, 0(a0)
            (0x00b5_3423, 8, false, true), // sd a1, 8(a0)
            (0x0005_3007, 8, true, false), // fld f0, 0(a0)
            (0x1005_25af, 4, true, false), // lr.w a1, (a0)
            (0x18b5_362f, 8, false, true), // sc.d a2, a1, (a0)
            (0x00b5_262f, 4, true, true),  // amoadd.w a2, a1, (a0)
            (0x0000_6508, 8, true, false), // c.ld a0, 8(a0)
            (0x0000_c10c, 4, false, true), // c.sw a1, 0(a0)
        ];
        for (raw, width, reads, writes) in cases {
            let insn = decode(raw);
            assert_eq!(data_access(insn.op), Some(DataAccess { width, reads, writes }), "{raw:#010x} ({:?})", insn.op);
        }
        assert_eq!(data_access(decode(0x0000_0513).op), None); // addi a0, zero, 0
        let hlv = decode(0x6005_4573); // hlv.b a0, (a0): another translation
        assert_eq!((hlv.op, data_access(hlv.op)), (Op::HLV_B, None));
    }

    /// Values worked from the A chapter's definitions, not from the code:
    /// a `.W` form sees only the low words (signed for MIN/MAX).
    #[test]
    fn amo_results_follow_the_a_chapter() {
        use Op::*;
        let cases: [(Op, u64, u64, u64); 14] = [
            (AMOADD_W, 0xdead_0000_ffff_ffff, 0x1234_0000_0000_0002, 1),
            (AMOSWAP_W, 7, 0xffff_ffff_8000_0000, 0x8000_0000),
            (AMOMIN_W, 0xffff_ffff, 1, 0xffff_ffff),
            (AMOMAX_W, 0xffff_ffff, 1, 1),
            (AMOMINU_W, 0xffff_ffff, 1, 1),
            (AMOMAXU_W, 0xffff_ffff, 1, 0xffff_ffff),
            (AMOXOR_W, 0xf0f0, 0xffff, 0x0f0f),
            (SC_W, 3, 0x1_0000_0005, 5),
            (AMOADD_D, u64::MAX, 2, 1),
            (AMOMIN_D, u64::MAX, 1, u64::MAX),
            (AMOMINU_D, u64::MAX, 1, 1),
            (AMOAND_D, 0xff00, 0x0ff0, 0x0f00),
            (AMOOR_D, 0xff00, 0x0ff0, 0xfff0),
            (SC_D, 3, 0x1_0000_0005, 0x1_0000_0005),
        ];
        for (op, old, src, want) in cases {
            assert_eq!(amo_result(op, old, src), want, "{op:?}");
        }
        assert_eq!(
            (amo_width(AMOMAXU_W), amo_width(SC_D), amo_width(LR_W), amo_width(ADD)),
            (Some(4), Some(8), None, None)
        );
    }

    #[test]
    fn no_two_rows_overlap() {
        // Two rows overlap if some instruction word matches both: their fixed
        // bits agree wherever both fix them.
        for (i, a) in ENCODINGS.iter().enumerate() {
            for b in &ENCODINGS[i + 1..] {
                let common = a.mask & b.mask;
                assert!(a.bits & common != b.bits & common, "{} and {} overlap", a.name, b.name);
            }
        }
        // Compressed rows may overlap only as CRow says: the earlier row
        // narrower, of another extension, and claiming only words the later
        // row reserves.
        for (i, a) in COMPRESSED.iter().enumerate() {
            for b in &COMPRESSED[i + 1..] {
                let common = a.mask & b.mask;
                if a.bits & common == b.bits & common {
                    assert!(a.mask & b.mask == b.mask && a.ext != b.ext, "{} and {} overlap", a.name, b.name);
                    for raw in 0..0x1_0000u32 {
                        if a.matches_c(raw) {
                            assert!((b.expand)(raw).is_none(), "{} claims {raw:#06x}, which {} uses", a.name, b.name);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn patterns_parse_as_drawn() {
        assert_eq!(pattern("0000000 ..... ..... 000 ..... 0110011", 32), (0xfe00_707f, 0x0000_0033));
        assert_eq!(pattern("000 ........ ... 00", 16), (0xe003, 0x0000));
    }

    #[test]
    fn encodes_as_the_assembler_does() {
        // Reference words from riscv64-unknown-elf-as.
        use Op::*;
        let cases: &[(u32, Op, u32, u32, u32, i64)] = &[
            (0xfff28293, ADDI, 5, 5, 0, -1),          // addi t0,t0,-1
            (0x0082b383, LD, 7, 5, 0, 8),             // ld t2,8(t0)
            (0x0072b823, SD, 0, 5, 7, 16),            // sd t2,16(t0)
            (0x008282b3, ADD, 5, 5, 8, 0),            // add t0,t0,s0
            (0x800002b7, LUI, 5, 0, 0, -0x8000_0000), // lui t0,0x80000
            (0x00000073, ECALL, 0, 0, 0, 0),          // ecall
            (0x40650333, SUB, 6, 10, 6, 0),           // sub t1,a0,t1
            (0x0052c303, LBU, 6, 5, 0, 5),            // lbu t1,5(t0)
            (0xfe031ee3, BNE, 0, 6, 0, -4),           // bne t1,zero,-4
            (0xff9ff06f, JAL, 0, 0, 0, -8),           // j -8
            (0xf1402573, CSRRS, 10, 0, 0, 0xf14),     // csrr a0,mhartid
            (0x43f55513, SRAI, 10, 10, 0, 63),        // srai a0,a0,63
            (0x10500073, WFI, 0, 0, 0, 0),            // wfi
            (0x6c034573, HLV_D, 10, 6, 0, 0),         // hlv.d a0,(t1)
            (0x6ea34073, HSV_D, 0, 6, 10, 0),         // hsv.d a0,(t1)
            (0x12000073, SFENCE_VMA, 0, 0, 0, 0),     // sfence.vma
        ];
        for &(word, op, rd, rs1, rs2, imm) in cases {
            assert_eq!(encode(op, rd, rs1, rs2, imm), word, "{}", op.name());
            let d = decode(word);
            assert_eq!((d.op, d.imm as i64), (op, imm), "{word:#x}");
        }
        // fence iorw,iorw; fadd.d with the dynamic rounding mode.
        assert_eq!(with_field(encode(FENCE, 0, 0, 0, 0), field::PRED_SUCC, 0xff), Some(0x0ff0_000f));
        assert_eq!(with_field(encode(FADD_D, 1, 2, 3, 0), field::RM, 7), Some(0x0231_70d3));
        assert_eq!(with_field(encode(ADD, 1, 2, 3, 0), field::RM, 7), None, "funct3 of ADD is fixed");
    }

    #[test]
    fn bit_manipulation_encodes_as_the_assembler_does() {
        // Reference words from riscv64-unknown-elf-as 2.40
        // (-march=rv64gc_zba_zbb_zbc_zbs), operands a0, a1, a2 (x10, x11,
        // x12) and shift amounts 63 (31 for RORIW); Zicond, which that
        // assembler lacks, from its encoding figure (funct7 0000111, OP).
        use Op::*;
        let rr: &[(u32, Op)] = &[
            (0x20c5a533, SH1ADD),
            (0x20c5c533, SH2ADD),
            (0x20c5e533, SH3ADD),
            (0x08c5853b, ADD_UW),
            (0x20c5a53b, SH1ADD_UW),
            (0x20c5c53b, SH2ADD_UW),
            (0x20c5e53b, SH3ADD_UW),
            (0x40c5f533, ANDN),
            (0x40c5e533, ORN),
            (0x40c5c533, XNOR),
            (0x0ac5e533, MAX),
            (0x0ac5f533, MAXU),
            (0x0ac5c533, MIN),
            (0x0ac5d533, MINU),
            (0x60c59533, ROL),
            (0x60c5d533, ROR),
            (0x60c5953b, ROLW),
            (0x60c5d53b, RORW),
            (0x0ac59533, CLMUL),
            (0x0ac5a533, CLMULR),
            (0x0ac5b533, CLMULH),
            (0x48c59533, BCLR),
            (0x48c5d533, BEXT),
            (0x68c59533, BINV),
            (0x28c59533, BSET),
            (0x0ec5d533, CZERO_EQZ),
            (0x0ec5f533, CZERO_NEZ),
        ];
        for &(word, op) in rr {
            assert_eq!(encode(op, 10, 11, 12, 0), word, "{}", op.name());
            assert_eq!(decode(word), Insn { op, rd: 10, rs1: 11, rs2: 12, imm: 0 }, "{word:#x}");
        }
        let unary: &[(u32, Op)] = &[
            (0x60059513, CLZ),
            (0x60159513, CTZ),
            (0x60259513, CPOP),
            (0x6005951b, CLZW),
            (0x6015951b, CTZW),
            (0x6025951b, CPOPW),
            (0x60459513, SEXT_B),
            (0x60559513, SEXT_H),
            (0x0805c53b, ZEXT_H),
            (0x2875d513, ORC_B),
            (0x6b85d513, REV8),
        ];
        for &(word, op) in unary {
            assert_eq!(encode(op, 10, 11, 0, 0), word, "{}", op.name());
            assert_eq!(decode(word).op, op, "{word:#x}");
        }
        let shamt: &[(u32, Op, i64)] = &[
            (0x0bf5951b, SLLI_UW, 63),
            (0x63f5d513, RORI, 63),
            (0x61f5d51b, RORIW, 31),
            (0x4bf59513, BCLRI, 63),
            (0x4bf5d513, BEXTI, 63),
            (0x6bf59513, BINVI, 63),
            (0x2bf59513, BSETI, 63),
        ];
        for &(word, op, sh) in shamt {
            assert_eq!(encode(op, 10, 11, 0, sh), word, "{}", op.name());
            assert_eq!((decode(word).op, decode(word).imm as i64), (op, sh), "{word:#x}");
        }
        assert_eq!(try_encode(RORIW, 10, 11, 0, 32), None, "RORIW's shamt[5] is fixed");
        assert_eq!(ADD_UW.ext(), Ext::Zba);
        assert_eq!(CLMULH.ext(), Ext::Zbc);
        assert_eq!(CZERO_NEZ.ext(), Ext::Zicond);
        // Zimop beside the hypervisor loads/stores of SYSTEM funct3 100:
        // mop.r.0 s3, s1; mop.rr.7 s3, s1, s2; hlv.d a0, (a1).
        let d = |raw: u32| decode(raw);
        assert_eq!((d(0x81c4c9f3).op, d(0x81c4c9f3).rd, d(0x81c4c9f3).rs1), (Op::MOP_R, 19, 9));
        assert_eq!(d(0xcf24c9f3).op, Op::MOP_RR);
        assert_eq!(d(0x6c05c573).op, Op::HLV_D);
        assert_eq!(MOP_R.ext(), Ext::Zimop);
        // wrs.nto, wrs.sto (binutils 2.40, -march=rv64gc_zawrs).
        assert_eq!(encode(WRS_NTO, 0, 0, 0, 0), 0x00d00073);
        assert_eq!(encode(WRS_STO, 0, 0, 0, 0), 0x01d00073);
        assert_eq!(WRS_STO.ext(), Ext::Zawrs);
        // Zfhmin, from binutils 2.40 (-march=rv64gc_zfhmin): flh ft0,2(a0);
        // fsh ft1,4(a0); fmv.x.h a1,ft2; fmv.h.x ft3,a2; fcvt.s.h ft4,ft5
        // (rm 0); fcvt.h.s, fcvt.d.h (rm 0), fcvt.h.d ft4,ft5 (rm dyn).
        assert_eq!(encode(FLH, 0, 10, 0, 2), 0x00251007);
        assert_eq!(encode(FSH, 0, 10, 1, 4), 0x00151227);
        assert_eq!(encode(FMV_X_H, 11, 2, 0, 0), 0xe40105d3);
        assert_eq!(encode(FMV_H_X, 3, 12, 0, 0), 0xf40601d3);
        assert_eq!(encode(FCVT_S_H, 4, 5, 0, 0), 0x40228253);
        assert_eq!(with_field(encode(FCVT_H_S, 4, 5, 0, 0), field::RM, 7), Some(0x4402f253));
        assert_eq!(encode(FCVT_D_H, 4, 5, 0, 0), 0x42228253);
        assert_eq!(with_field(encode(FCVT_H_D, 4, 5, 0, 0), field::RM, 7), Some(0x4412f253));
        assert_eq!(FLH.ext(), Ext::Zfhmin);
        assert_eq!(FENCE_I.ext(), Ext::Zifencei);
        assert_eq!(ADD.ext(), Ext::I);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(try_encode(Op::ADDI, 1, 1, 0, 2048), None);
        assert_eq!(try_encode(Op::ADDI, 1, 1, 0, -2049), None);
        assert_eq!(try_encode(Op::BEQ, 0, 1, 2, 3), None, "odd branch offset");
        assert_eq!(try_encode(Op::JAL, 1, 0, 0, 1 << 20), None);
        assert_eq!(try_encode(Op::SLLIW, 1, 1, 0, 32), None, "shamt[5] is fixed for the W forms");
        assert_eq!(try_encode(Op::SLLI, 1, 1, 0, 63).map(|w| w >> 20 & 63), Some(63));
        assert_eq!(try_encode(Op::LUI, 1, 0, 0, 0x123), None, "U immediates have no low bits");
        assert_eq!(try_encode(Op::ADDI, 32, 0, 0, 0), None);
        assert_eq!(try_encode(Op::SFENCE_VMA, 1, 0, 0, 0), None, "rd of SFENCE.VMA is fixed");
        assert_eq!(try_encode(Op::ADDI, 1, 1, 7, 0), None, "ADDI has no rs2");
        assert_eq!(try_encode(Op::ILLEGAL, 0, 0, 0, 0), None);
    }

    #[test]
    fn compressed_words_as_the_assembler_writes_them() {
        let c = |name, op, rd, rs1, rs2, imm| encode_compressed(name, &Insn { op, rd, rs1, rs2, imm });
        assert_eq!(c("C_ADDI4SPN", Op::ADDI, 10, 2, 0, 8), Some(0x0028));
        assert_eq!(c("C_LI", Op::ADDI, 10, 0, 0, -1), Some(0x557d));
        assert_eq!(c("C_J", Op::JAL, 0, 0, 0, -2), Some(0xbffd));
        assert_eq!(c("C_BEQZ", Op::BEQ, 0, 10, 0, 8), Some(0xc501));
        assert_eq!(c("C_LDSP", Op::LD, 1, 2, 0, 8), Some(0x60a2));
        assert_eq!(c("C_SDSP", Op::SD, 0, 2, 1, 8), Some(0xe406));
        assert_eq!(c("C_LW", Op::LW, 10, 11, 0, 4), Some(0x41c8));
        assert_eq!(c("C_LW", Op::LW, 10, 11, 0, 2), None, "C.LW offsets are multiples of 4");
        assert_eq!(c("C_LW", Op::LW, 1, 11, 0, 4), None, "rd' names x8..x15 only");
        assert_eq!(decode(0x9002).op, Op::EBREAK);
        assert_eq!(decode(0x0000), Insn::ILLEGAL, "the all-zero word");
    }

    /// Every format's immediate, any instruction word: what decode reads,
    /// encode writes back, bit for bit.
    #[test]
    fn immediates_round_trip() {
        let all = [Imm::None, Imm::I, Imm::S, Imm::B, Imm::U, Imm::J, Imm::Shamt, Imm::Csr];
        proptest!(|(raw in any::<u32>())| {
            for f in all {
                prop_assert_eq!(f.encode(f.decode(raw)), Some(raw & f.field()), "{:?}", f);
            }
        });
    }

    /// An instruction of any row with operands it can hold encodes, and
    /// decodes back to the same row and operands.
    #[test]
    fn instructions_round_trip() {
        let rows = ENCODINGS.len();
        proptest!(ProptestConfig::with_cases(2048), |(i in 0..rows, rd in 0u32..32, rs1 in 0u32..32, rs2 in 0u32..32, raw in any::<u32>())| {
            let e = &ENCODINGS[i];
            let ops = e.operands();
            let (rd, rs1, rs2) = (rd * (ops & RD != 0) as u32, rs1 * (ops & RS1 != 0) as u32, rs2 * (ops & RS2 != 0) as u32);
            // An immediate the row can hold: read from a word of the row.
            let imm = e.imm.decode(e.bits | (raw & !e.mask));
            let w = try_encode(e.op, rd, rs1, rs2, imm);
            prop_assert!(w.is_some(), "{} rd={} rs1={} rs2={} imm={:#x}", e.name, rd, rs1, rs2, imm);
            let w = w.unwrap_or_default();
            prop_assert_eq!(lookup(w).map(|r| r.op), Some(e.op));
            let got = decode(w);
            prop_assert_eq!((got.op, got.imm as i64), (e.op, imm));
            if ops & RD != 0 { prop_assert_eq!(got.rd as u32, rd); }
            if ops & RS1 != 0 { prop_assert_eq!(got.rs1 as u32, rs1); }
            if ops & RS2 != 0 { prop_assert_eq!(got.rs2 as u32, rs2); }
        });
    }

    /// Any compressed word that means something encodes back to a word
    /// that means the same.
    #[test]
    fn compressed_round_trips() {
        proptest!(ProptestConfig::with_cases(1024), |(raw in 0u32..0x1_0000)| {
            prop_assume!(raw & 3 != 3);
            let Some(r) = COMPRESSED.iter().find(|r| raw & r.mask == r.bits) else { return Ok(()) };
            let Some(want) = (r.expand)(raw) else { return Ok(()) };
            let back = encode_compressed(r.name, &want);
            prop_assert!(back.is_some(), "{} {:#06x}", r.name, raw);
            prop_assert_eq!(decode(back.unwrap_or_default() as u32), want);
        });
    }
}

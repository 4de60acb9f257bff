//! The decoder, derived from the encoding tables.
//!
//! 32-bit instructions are matched against [`isa::ENCODINGS`]; compressed
//! instructions against [`COMPRESSED`], whose rows (patterns from the
//! Unprivileged ISA 20191213, §16.8 Tables 16.5–16.7) expand each RVC
//! instruction to the base instruction it stands for, so that execution is
//! written once. Both tables are indexed at first use by their opcode bits,
//! so a lookup scans only the few rows that share an opcode.

use crate::isa::{self, Encoding, Imm, Op};
use std::sync::OnceLock;

/// A decoded instruction, packed into 8 bytes so the decoded-instruction
/// cache stays small. Register fields are always extracted from their
/// standard positions; `imm` holds the format's immediate (or the CSR
/// number; every RV64GC immediate fits in 32 bits). The FP fields `rs3` and
/// `rm` (bits 31..27 and 14..12) are read from the instruction bits by the
/// FP executor, and the length from the low two bits.
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

/// Length in bytes of the instruction whose low bits are `raw`.
#[inline(always)]
pub fn insn_len(raw: u32) -> u64 {
    if raw & 3 == 3 {
        4
    } else {
        2
    }
}

#[inline]
fn bits(x: u32, hi: u32, lo: u32) -> u32 {
    (x >> lo) & ((1 << (hi - lo + 1)) - 1)
}

#[inline]
fn sext(x: u64, width: u32) -> i64 {
    let s = 64 - width;
    ((x << s) as i64) >> s
}

fn imm32(raw: u32, f: Imm) -> i64 {
    match f {
        Imm::None => 0,
        Imm::I => (raw as i32 >> 20) as i64,
        Imm::S => sext((bits(raw, 31, 25) << 5 | bits(raw, 11, 7)) as u64, 12),
        Imm::B => sext(
            (bits(raw, 31, 31) << 12 | bits(raw, 7, 7) << 11 | bits(raw, 30, 25) << 5 | bits(raw, 11, 8) << 1) as u64,
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

struct Tables {
    /// 32-bit rows by major opcode (bits 6..2).
    major: Vec<Vec<&'static Encoding>>,
    /// Compressed rows by (funct3 << 2 | quadrant).
    compressed: Vec<Vec<&'static CRow>>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut major = vec![Vec::new(); 32];
        for e in isa::ENCODINGS {
            // Every 32-bit row fixes bits 6..0.
            debug_assert_eq!(e.mask & 0x7f, 0x7f);
            major[((e.bits >> 2) & 31) as usize].push(e);
        }
        let mut compressed = vec![Vec::new(); 32];
        for r in COMPRESSED {
            debug_assert_eq!(r.mask & 0xe003, 0xe003);
            compressed[((r.bits >> 13) << 2 | (r.bits & 3)) as usize].push(r);
        }
        Tables { major, compressed }
    })
}

/// Decodes one instruction. `raw`'s low two bits select the length: for a
/// compressed instruction only the low 16 bits are looked at.
pub fn decode(raw: u32) -> Insn {
    if raw & 3 != 3 {
        return decode16(raw as u16);
    }
    let t = tables();
    for e in &t.major[((raw >> 2) & 31) as usize] {
        if raw & e.mask == e.bits {
            return Insn {
                op: e.op,
                rd: bits(raw, 11, 7) as u8,
                rs1: bits(raw, 19, 15) as u8,
                rs2: bits(raw, 24, 20) as u8,
                imm: imm32(raw, e.imm) as i32,
            };
        }
    }
    Insn::ILLEGAL
}

// ---- RVC ------------------------------------------------------------------

/// One row of the compressed table: the pattern and the expansion.
pub struct CRow {
    pub name: &'static str,
    pub mask: u32,
    pub bits: u32,
    /// Returns `None` for the reserved encodings inside the row's pattern.
    pub expand: fn(u32) -> Option<Insn>,
}

fn decode16(raw: u16) -> Insn {
    let raw = raw as u32;
    let t = tables();
    for r in &t.compressed[((raw >> 13) << 2 | (raw & 3)) as usize] {
        if raw & r.mask == r.bits {
            return (r.expand)(raw).unwrap_or(Insn::ILLEGAL);
        }
    }
    Insn::ILLEGAL
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
fn sdsp_off(r: u32) -> i64 {
    (bits(r, 12, 10) << 3 | bits(r, 9, 7) << 6) as i64
}

macro_rules! compressed {
    ($( $name:ident = $pat:literal => $expand:expr ;)*) => {
        pub static COMPRESSED: &[CRow] = &[
            $(CRow {
                name: stringify!($name),
                mask: isa::pattern($pat, 16).0,
                bits: isa::pattern($pat, 16).1,
                expand: $expand,
            },)*
        ];
    };
}

compressed! {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base_instructions() {
        // addi a0, a0, -1  (0xfff50513)
        let i = decode(0xfff5_0513);
        assert_eq!((i.op, i.rd, i.rs1, i.imm, insn_len(0xfff5_0513)), (Op::ADDI, 10, 10, -1, 4));
        // jal ra, -4 (0xffdff0ef)
        let i = decode(0xffdf_f0ef);
        assert_eq!((i.op, i.rd, i.imm), (Op::JAL, 1, -4));
        // beq a0, a1, 16 (0x00b50863)
        let i = decode(0x00b5_0863);
        assert_eq!((i.op, i.rs1, i.rs2, i.imm), (Op::BEQ, 10, 11, 16));
        // sd ra, 8(sp) (0x00113423)
        let i = decode(0x0011_3423);
        assert_eq!((i.op, i.rs1, i.rs2, i.imm), (Op::SD, 2, 1, 8));
        // lui a0, 0x80000 (0x80000537): sign-extended on RV64
        assert_eq!(decode(0x8000_0537).imm, -0x8000_0000);
        // srai a0, a0, 63 (0x43f55513)
        let i = decode(0x43f5_5513);
        assert_eq!((i.op, i.imm), (Op::SRAI, 63));
        // csrr a0, mhartid (0xf1402573)
        let i = decode(0xf140_2573);
        assert_eq!((i.op, i.rd, i.imm), (Op::CSRRS, 10, 0xf14));
        assert_eq!(decode(0xffff_ffff).op, Op::ILLEGAL);
        assert_eq!(decode(0x3020_0073).op, Op::MRET);
        // slliw with shamt[5] set is reserved
        assert_eq!(decode(0x0205_151b).op, Op::ILLEGAL);
    }

    #[test]
    fn expands_compressed_instructions() {
        // c.addi4spn a0, sp, 8 (0x0028)
        let i = decode(0x0028);
        assert_eq!((i.op, i.rd, i.rs1, i.imm, insn_len(0x0028)), (Op::ADDI, 10, 2, 8, 2));
        assert_eq!(decode(0x0000).op, Op::ILLEGAL, "all-zero word");
        // c.li a0, -1 (0x557d)
        let i = decode(0x557d);
        assert_eq!((i.op, i.rd, i.rs1, i.imm), (Op::ADDI, 10, 0, -1));
        // c.addi16sp sp, -64 (0x7139)
        let i = decode(0x7139);
        assert_eq!((i.op, i.rd, i.imm), (Op::ADDI, 2, -64));
        // c.lui a0, 0xfffff -> lui a0, -4096 (0x757d)
        let i = decode(0x757d);
        assert_eq!((i.op, i.rd, i.imm), (Op::LUI, 10, -4096));
        // c.j -2 (0xbffd)
        let i = decode(0xbffd);
        assert_eq!((i.op, i.rd, i.imm), (Op::JAL, 0, -2));
        // c.beqz a0, 8 (0xc501)
        let i = decode(0xc501);
        assert_eq!((i.op, i.rs1, i.imm), (Op::BEQ, 10, 8));
        // c.ldsp ra, 8(sp) (0x60a2)
        let i = decode(0x60a2);
        assert_eq!((i.op, i.rd, i.rs1, i.imm), (Op::LD, 1, 2, 8));
        // c.sdsp ra, 8(sp) (0xe406)
        let i = decode(0xe406);
        assert_eq!((i.op, i.rs1, i.rs2, i.imm), (Op::SD, 2, 1, 8));
        // c.jr ra (0x8082), c.jalr a0 (0x9502), c.mv a0, a1 (0x852e), c.ebreak (0x9002)
        assert_eq!((decode(0x8082).op, decode(0x8082).rs1, decode(0x8082).rd), (Op::JALR, 1, 0));
        assert_eq!((decode(0x9502).op, decode(0x9502).rd), (Op::JALR, 1));
        assert_eq!((decode(0x852e).op, decode(0x852e).rs2, decode(0x852e).rs1), (Op::ADD, 11, 0));
        assert_eq!(decode(0x9002).op, Op::EBREAK);
        // reserved: c.lwsp x0, c.addiw x0, c.jr x0, c.addi16sp 0, quadrant-0 funct3=100
        assert_eq!(decode(0x4002).op, Op::ILLEGAL);
        assert_eq!(decode(0x2001).op, Op::ILLEGAL);
        assert_eq!(decode(0x8002).op, Op::ILLEGAL);
        assert_eq!(decode(0x6101).op, Op::ILLEGAL);
        assert_eq!(decode(0x8000).op, Op::ILLEGAL);
        // c.subw / c.addw reserved slots (funct2 = 10, 11 with bit 12 set)
        assert_eq!(decode(0x9c41).op, Op::ILLEGAL);
    }

    #[test]
    fn compressed_rows_do_not_overlap() {
        for (i, a) in COMPRESSED.iter().enumerate() {
            for b in &COMPRESSED[i + 1..] {
                let common = a.mask & b.mask;
                assert!(a.bits & common != b.bits & common, "{} and {} overlap", a.name, b.name);
            }
        }
    }
}

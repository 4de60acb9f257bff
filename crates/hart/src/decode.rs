//! The decoder, derived from the encoding tables of `strata-arch`.
//!
//! 32-bit instructions are matched against [`isa::ENCODINGS`]; compressed
//! instructions against [`COMPRESSED`], whose rows (patterns from the
//! Unprivileged ISA 20191213, §16.8 Tables 16.5–16.7) expand each RVC
//! instruction to the base instruction it stands for, so that execution is
//! written once. Both tables are indexed here at first use by their opcode
//! bits, so a lookup scans only the few rows that share an opcode; the
//! table's own linear [`isa::decode`] is the reference this is tested
//! against.

use std::sync::OnceLock;
use strata_arch::ext::{Ext, Extensions};
use strata_arch::isa::{self, Encoding};
pub use strata_arch::isa::{insn_len, CRow, Insn, COMPRESSED};

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
    decode_with_ext(raw).0
}

/// The instruction and the extension of the row that decoded it: the
/// operation's own for a 32-bit word, the compressed row's ([`CRow::ext`])
/// for a 16-bit one.
fn decode_with_ext(raw: u32) -> (Insn, Ext) {
    if raw & 3 != 3 {
        return decode16(raw as u16);
    }
    let t = tables();
    for e in &t.major[((raw >> 2) & 31) as usize] {
        if raw & e.mask == e.bits {
            return (e.insn(raw), e.ext);
        }
    }
    (Insn::ILLEGAL, Ext::I)
}

/// Decodes one instruction for a hart with extensions `exts`: an
/// instruction of an extension the hart does not have is illegal, exactly
/// as if its row were not in the table. A compressed instruction needs its
/// row's extension (C, Zcb, Zcmop) and that of the instruction it expands
/// to (C.FLD needs D, Zcb's C.MUL M and C.SEXT.B Zbb).
#[inline]
pub fn decode_for(raw: u32, exts: Extensions) -> Insn {
    let (i, ext) = decode_with_ext(raw);
    if exts.has(ext) && exts.has(i.op.ext()) {
        i
    } else {
        Insn::ILLEGAL
    }
}

// ---- RVC ------------------------------------------------------------------

/// The first row of the word's index slot that matches decides (the
/// extension rows that carve words out of a base row's reserved ones come
/// before it, see [`CRow`]).
fn decode16(raw: u16) -> (Insn, Ext) {
    let raw = raw as u32;
    let t = tables();
    for r in &t.compressed[((raw >> 13) << 2 | (raw & 3)) as usize] {
        if raw & r.mask == r.bits {
            return ((r.expand)(raw).unwrap_or(Insn::ILLEGAL), r.ext);
        }
    }
    (Insn::ILLEGAL, Ext::C)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use strata_arch::isa::Op;

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
        // Quadrant 0's funct3 100 and the C.SUBW/C.ADDW neighbours (funct2
        // 10, 11 with bit 12 set) are reserved in RVC and Zcb's with it:
        // 0x8000 is c.lbu s0, 0(s0), 0x9c41 c.mul s0, s0.
        let max = Extensions::MAX;
        for raw in [0x8000, 0x9c41] {
            assert_eq!(decode_for(raw, Extensions::DEFAULT).op, Op::ILLEGAL, "{raw:#x}");
            assert_ne!(decode_for(raw, max).op, Op::ILLEGAL, "{raw:#x}");
        }
    }

    /// Zcb and Zcmop words, from the Zc* 1.0.0 and Zcmop 1.0 encoding
    /// figures, with and without the extensions.
    #[test]
    // The binary literals are grouped by the encoding figure's fields.
    #[allow(clippy::unusual_byte_groupings)]
    fn zcb_and_zcmop() {
        let max = Extensions::MAX;
        let d = |raw| decode_for(raw, max);
        let i = |op, rd, rs1, rs2, imm| Insn { op, rd, rs1, rs2, imm };
        // c.lbu a0, 3(a1): 100000 001 11 010 00 (uimm[0] in bit 6).
        assert_eq!(d(0b100000_001_11_010_00), i(Op::LBU, 10, 9, 0, 3));
        assert_eq!(d(0b100000_001_01_010_00), i(Op::LBU, 10, 9, 0, 2), "bit 5 is uimm[1]");
        assert_eq!(d(0b100001_001_0_1_010_00), i(Op::LHU, 10, 9, 0, 2));
        assert_eq!(d(0b100001_001_1_0_010_00), i(Op::LH, 10, 9, 0, 0));
        assert_eq!(d(0b100010_001_10_010_00), i(Op::SB, 0, 9, 10, 1));
        assert_eq!(d(0b100011_001_0_1_010_00), i(Op::SH, 0, 9, 10, 2));
        assert_eq!(d(0b100011_001_1_0_010_00), Insn::ILLEGAL, "c.sh with bit 6 set is reserved");
        assert_eq!(d(0x9c61 | 2 << 7), i(Op::ANDI, 10, 10, 0, 0xff));
        assert_eq!(d(0x9c65).op, Op::SEXT_B);
        assert_eq!(d(0x9c69).op, Op::ZEXT_H);
        assert_eq!(d(0x9c6d).op, Op::SEXT_H);
        assert_eq!(d(0x9c71), i(Op::ADD_UW, 8, 8, 0, 0));
        assert_eq!(d(0x9c75), i(Op::XORI, 8, 8, 0, -1));
        assert_eq!(d(0x9c41 | 3 << 2), i(Op::MUL, 8, 8, 11, 0));
        assert_eq!(d(0x9c79), Insn::ILLEGAL, "subop 110 is reserved");
        assert_eq!(d(0x9c7d), Insn::ILLEGAL, "subop 111 is reserved");
        // Zcb's C.SEXT.B needs Zbb too, C.ZEXT.W Zba, C.MUL M.
        assert_eq!(decode_for(0x9c65, max.without(Ext::Zbb)), Insn::ILLEGAL);
        assert_eq!(decode_for(0x9c71, max.without(Ext::Zba)), Insn::ILLEGAL);
        assert_eq!(decode_for(0x9c41, max.without(Ext::M)), Insn::ILLEGAL);
        assert_eq!(decode_for(0x9c75, max.without(Ext::Zcb)), Insn::ILLEGAL);
        // C.MOP.n: C.LUI x(n), 0 for odd n below 16, a no-op.
        for n in (1..16).step_by(2) {
            let raw = 0x6081 | (n >> 1) << 8;
            assert_eq!(d(raw), i(Op::ADDI, 0, 0, 0, 0), "c.mop.{n}");
            assert_eq!(decode_for(raw, Extensions::DEFAULT), Insn::ILLEGAL, "c.mop.{n}");
        }
        // Even registers, and x17 and up, stay reserved C.LUIs.
        assert_eq!(d(0x6101), Insn::ILLEGAL, "c.lui sp, 0 is c.addi16sp 0, reserved");
        assert_eq!(d(0x6201), Insn::ILLEGAL, "c.lui x4, 0");
        assert_eq!(d(0x6881), Insn::ILLEGAL, "c.lui x17, 0");
        assert_eq!(d(0x6085).op, Op::LUI, "c.lui ra, 1 is unchanged");
    }

    /// The indexed decoder and the table's own linear search agree on any
    /// word (the index is only a speed-up).
    #[test]
    fn index_agrees_with_the_table() {
        proptest!(strata_testkit::prop::config("index_agrees_with_the_table", 20_000), |(raw in any::<u32>())| {
            prop_assert_eq!(decode(raw), isa::decode(raw), "{:#010x}", raw);
        });
        for raw in 0..0x1_0000u32 {
            assert_eq!(decode(raw), isa::decode(raw), "{raw:#06x}");
        }
    }
}

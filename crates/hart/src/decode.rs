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
    if raw & 3 != 3 {
        return decode16(raw as u16);
    }
    let t = tables();
    for e in &t.major[((raw >> 2) & 31) as usize] {
        if raw & e.mask == e.bits {
            return e.insn(raw);
        }
    }
    Insn::ILLEGAL
}

/// Decodes one instruction for a hart with extensions `exts`: an
/// instruction of an extension the hart does not have is illegal, exactly
/// as if its row were not in the table.
#[inline]
pub fn decode_for(raw: u32, exts: Extensions) -> Insn {
    let i = decode(raw);
    let ext = if raw & 3 != 3 { Ext::C } else { i.op.ext() };
    if exts.has(ext) {
        i
    } else {
        Insn::ILLEGAL
    }
}

// ---- RVC ------------------------------------------------------------------

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
        assert_eq!(decode(0x8000).op, Op::ILLEGAL);
        // c.subw / c.addw reserved slots (funct2 = 10, 11 with bit 12 set)
        assert_eq!(decode(0x9c41).op, Op::ILLEGAL);
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

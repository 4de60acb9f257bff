//! Transformed instructions and pseudoinstructions for `mtinst`/`htinst`
//! (Priv. §8.6.3, "Transformed Instruction or Pseudoinstruction for mtinst
//! or htinst", Figures 8.17–8.19 and Table 8.12): the encoder a hart uses
//! when it takes a trap and the decoder a hypervisor uses to emulate the
//! access, side by side.
//!
//! For a guest-page fault (or access fault, misaligned access) of an
//! explicit load or store, the trap-instruction CSR may hold the trapping
//! instruction transformed: the 32-bit form of the instruction with
//!
//! | bits    | load               | store               |
//! |---------|--------------------|---------------------|
//! | 31..25  | 0                  | 0                   |
//! | 24..20  | 0                  | rs2                 |
//! | 19..15  | address offset     | address offset      |
//! | 14..12  | funct3             | funct3              |
//! | 11..7   | rd                 | 0                   |
//! | 6..2    | opcode             | opcode              |
//! | 1       | 1 if the original was 32-bit, 0 if compressed | |
//! | 0       | 1                  | 1                   |
//!
//! where the address offset is the faulting address minus the address
//! the instruction names (non-zero only for a misaligned access split into
//! parts). Built here from the one encoding table: a transformed load is
//! the table's encoding of the same load with rs1 = the offset and a zero
//! immediate. A fault of an implicit VS-stage page-table access instead
//! records one of the [pseudoinstructions](PT_READ_64). Zero means "no
//! information", which a hypervisor must always be ready for.

use crate::isa::{self, Insn, Op};

/// Pseudoinstruction: a 32-bit read of a VS-stage page-table entry
/// (Table 8.12).
pub const PT_READ_32: u64 = 0x0000_2000;
/// Pseudoinstruction: a 32-bit write of a VS-stage PTE (an A/D update).
pub const PT_WRITE_32: u64 = 0x0000_2020;
/// Pseudoinstruction: a 64-bit read of a VS-stage PTE (Sv39/48/57).
pub const PT_READ_64: u64 = 0x0000_3000;
/// Pseudoinstruction: a 64-bit write of a VS-stage PTE.
pub const PT_WRITE_64: u64 = 0x0000_3020;

/// What a load or store instruction does to memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    pub store: bool,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A load that sign-extends.
    pub signed: bool,
    /// An FP load or store (the register is f`n`).
    pub fp: bool,
}

/// The memory access of `op`, if it is a basic load or store (Unpriv.
/// §2.6, §5.3, §11.5, §12.3).
pub const fn mem_access(op: Op) -> Option<MemAccess> {
    let (store, size, signed, fp) = match op {
        Op::LB => (false, 1, true, false),
        Op::LH => (false, 2, true, false),
        Op::LW => (false, 4, true, false),
        Op::LD => (false, 8, true, false),
        Op::LBU => (false, 1, false, false),
        Op::LHU => (false, 2, false, false),
        Op::LWU => (false, 4, false, false),
        Op::FLW => (false, 4, false, true),
        Op::FLD => (false, 8, false, true),
        Op::SB => (true, 1, false, false),
        Op::SH => (true, 2, false, false),
        Op::SW => (true, 4, false, false),
        Op::SD => (true, 8, false, false),
        Op::FSW => (true, 4, false, true),
        Op::FSD => (true, 8, false, true),
        _ => return None,
    };
    Some(MemAccess { store, size, signed, fp })
}

/// A transformed load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transformed {
    /// The load or store ([`mem_access`] is `Some`).
    pub op: Op,
    /// rd of a load, rs2 of a store.
    pub reg: u8,
    /// The faulting address minus the instruction's address (5 bits).
    pub offset: u8,
    /// The original instruction was 16-bit.
    pub compressed: bool,
}

impl Transformed {
    /// The transformation of the load or store `insn` (decoded from a
    /// `compressed` or 32-bit word) that faulted at `fault_addr`, having
    /// named address `addr`; `None` for any other instruction.
    pub fn of(insn: &Insn, compressed: bool, addr: u64, fault_addr: u64) -> Option<Transformed> {
        let acc = mem_access(insn.op)?;
        let reg = if acc.store { insn.rs2 } else { insn.rd } & 31;
        Some(Transformed { op: insn.op, reg, offset: (fault_addr.wrapping_sub(addr) & 31) as u8, compressed })
    }

    /// What the original instruction does to memory.
    pub fn access(&self) -> MemAccess {
        // `Transformed` values come from `of` or `decode`, which accept
        // loads and stores only.
        mem_access(self.op).unwrap_or(MemAccess { store: false, size: 1, signed: false, fp: false })
    }

    /// Length of the original instruction in bytes.
    pub fn insn_len(&self) -> u64 {
        if self.compressed {
            2
        } else {
            4
        }
    }

    /// The value for `mtinst`/`htinst`; `None` if `op` is no load or store
    /// or a field is out of range.
    pub fn encode(&self) -> Option<u64> {
        let acc = mem_access(self.op)?;
        let (rd, rs2) = if acc.store { (0, self.reg as u32) } else { (self.reg as u32, 0) };
        let w = isa::try_encode(self.op, rd, self.offset as u32, rs2, 0)?;
        Some(if self.compressed { w & !2 } else { w } as u64)
    }

    /// Reads a transformed load or store back from `mtinst`/`htinst`;
    /// `None` for zero, a pseudoinstruction, or anything else that is not
    /// a transformed basic load or store.
    pub fn decode(tinst: u64) -> Option<Transformed> {
        // Bit 0 set marks a transformed standard instruction; bit 1 tells
        // whether the original was 32-bit (1) or compressed (0).
        if tinst & 1 == 0 || tinst >> 32 != 0 {
            return None;
        }
        let w = tinst as u32 | 2;
        let e = isa::lookup(w)?;
        let acc = mem_access(e.op)?;
        let i = e.insn(w);
        // The immediate is zero, and so is the register field a load or
        // store does not have.
        if i.imm != 0 || (acc.store && i.rd != 0) {
            return None;
        }
        let reg = if acc.store { i.rs2 } else { i.rd };
        Some(Transformed { op: e.op, reg, offset: i.rs1, compressed: tinst & 2 == 0 })
    }
}

/// The transformation of the instruction word `raw` (16- or 32-bit, as its
/// low bits say) if it is a basic load or store, as a hart that writes
/// transformed instructions would record it with a zero address offset:
/// for a hypervisor that read the trapping instruction from guest memory
/// because `htinst` was zero.
pub fn transform(raw: u32) -> Option<Transformed> {
    let insn = isa::decode(raw);
    Transformed::of(&insn, raw & 3 != 3, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{encode, encode_compressed};
    use proptest::prelude::*;

    const LOADS_STORES: [Op; 15] = [
        Op::LB,
        Op::LH,
        Op::LW,
        Op::LD,
        Op::LBU,
        Op::LHU,
        Op::LWU,
        Op::FLW,
        Op::FLD,
        Op::SB,
        Op::SH,
        Op::SW,
        Op::SD,
        Op::FSW,
        Op::FSD,
    ];

    #[test]
    fn encodes_as_figure_8_17_draws() {
        // lw a0, 8(a1) faulting at its own address: opcode 0x03, funct3 2,
        // rd 10, everything else zero.
        let lw = isa::decode(encode(Op::LW, 10, 11, 0, 8));
        let t = Transformed::of(&lw, false, 0x1008, 0x1008).unwrap();
        assert_eq!(t.encode(), Some(0x0000_2503));
        // The same from c.lw: bit 1 clear.
        let t = Transformed { compressed: true, ..t };
        assert_eq!(t.encode(), Some(0x0000_2501));
        // sb a1 (rs2 11) with the fault 3 bytes in: offset in bits 19..15.
        let sb = isa::decode(encode(Op::SB, 0, 5, 11, -7));
        let t = Transformed::of(&sb, false, 0x2000, 0x2003).unwrap();
        assert_eq!(t.encode(), Some(0x00b1_8023));
        // fsd f3.
        let fsd = isa::decode(encode(Op::FSD, 0, 2, 3, 16));
        assert_eq!(Transformed::of(&fsd, false, 0, 0).unwrap().encode(), Some(0x0030_3027));
        assert_eq!(Transformed::of(&isa::decode(encode(Op::ADD, 1, 2, 3, 0)), false, 0, 0), None);
    }

    #[test]
    fn refuses_what_is_not_a_transformed_load_or_store() {
        assert_eq!(Transformed::decode(0), None);
        for p in [PT_READ_32, PT_WRITE_32, PT_READ_64, PT_WRITE_64] {
            assert_eq!(Transformed::decode(p), None, "pseudoinstruction {p:#x}");
        }
        assert_eq!(Transformed::decode(0x0000_7003), None, "funct3 7 is no load");
        assert_eq!(Transformed::decode(0x0000_202f), None, "an AMO");
        assert_eq!(Transformed::decode(1 << 32 | 0x2503), None, "high bits set");
        assert_eq!(Transformed::decode(0x0085_2503), None, "a load with its immediate is no transformation");
    }

    #[test]
    fn pseudoinstructions_are_the_loads_and_stores_they_stand_for_with_bits_1_0_clear() {
        // Table 8.12's values are a transformed LW/LD/SW/SD with rd/rs2 = 0
        // and bits 1..0 clear (so no one mistakes them for transformations).
        let t = |op| Transformed { op, reg: 0, offset: 0, compressed: false }.encode().unwrap() & !3;
        assert_eq!(t(Op::LW), PT_READ_32);
        assert_eq!(t(Op::SW), PT_WRITE_32);
        assert_eq!(t(Op::LD), PT_READ_64);
        assert_eq!(t(Op::SD), PT_WRITE_64);
    }

    #[test]
    fn transforms_instructions_read_from_memory() {
        // c.lw a0,4(a1); c.sd a2,8(a3); c.fld fa0,0(a1); lw a0,8(a1); addi.
        let t = transform(0x41c8).unwrap();
        assert_eq!((t.op, t.reg, t.compressed, t.access().size), (Op::LW, 10, true, 4));
        let t = transform(0xe690).unwrap();
        assert_eq!((t.op, t.reg, t.access().store), (Op::SD, 12, true));
        assert_eq!(transform(0x2188).map(|t| (t.op, t.access().fp)), Some((Op::FLD, true)));
        assert_eq!(transform(0x0085_a503).map(|t| (t.op, t.insn_len())), Some((Op::LW, 4)));
        assert_eq!(transform(0x0015_0513), None);
    }

    /// Encode, then decode: the same load or store, register, offset and
    /// length, from a 32-bit or a compressed original.
    #[test]
    fn round_trips() {
        proptest!(ProptestConfig::with_cases(1024), |(i in 0..LOADS_STORES.len(), reg in 0u8..32, offset in 0u8..32, compressed in any::<bool>())| {
            let t = Transformed { op: LOADS_STORES[i], reg, offset, compressed };
            let v = t.encode();
            prop_assert!(v.is_some());
            let v = v.unwrap_or_default();
            prop_assert_eq!(v & 1, 1);
            prop_assert_eq!(v & 2 == 0, compressed);
            prop_assert_eq!(Transformed::decode(v), Some(t));
        });
    }

    /// A compressed load or store, transformed, names the same access as
    /// its 32-bit expansion transformed, less bit 1.
    #[test]
    fn compressed_and_expanded_forms_agree() {
        for (name, op, rd, rs1, rs2, imm) in [
            ("C_LW", Op::LW, 9, 10, 0, 8),
            ("C_LD", Op::LD, 15, 8, 0, 248),
            ("C_FSD", Op::FSD, 0, 9, 12, 16),
            ("C_SWSP", Op::SW, 0, 2, 31, 4),
            ("C_LDSP", Op::LD, 1, 2, 0, 504),
        ] {
            let want = Insn { op, rd, rs1, rs2, imm };
            let c = encode_compressed(name, &want).unwrap() as u32;
            let w = encode(op, rd as u32, rs1 as u32, rs2 as u32, imm as i64);
            let (tc, tw) = (transform(c).unwrap(), transform(w).unwrap());
            assert_eq!(tc.encode().unwrap() | 2, tw.encode().unwrap(), "{name}");
        }
    }
}

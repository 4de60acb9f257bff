//! The bit-manipulation extensions Zba, Zbb, Zbc and Zbs (Unprivileged ISA,
//! chapter "B", version 1.0.0) and the conditional operations of Zicond
//! (chapter "Zicond", version 1.0), RV64 forms: pure functions of the
//! operands, shared by the interpreter (`exec.rs`) and the JIT's helpers.
//!
//! Whether a hart has these extensions is decided at decode time (the
//! decoded-code cache turns an instruction of a missing extension into
//! `Op::ILLEGAL`), so nothing here checks.

use crate::isa::Op;
use strata_arch::ext::Ext;

/// Whether `op` is one of this module's operations.
#[inline(always)]
pub(crate) fn handles(op: Op) -> bool {
    matches!(op.ext(), Ext::Zba | Ext::Zbb | Ext::Zbc | Ext::Zbs | Ext::Zicond)
}

/// Whether `op`'s second operand is its shift amount (bits 25..20 of the
/// instruction, [`Insn::imm`](crate::decode::Insn)) rather than `x[rs2]`.
/// The unary operations (CLZ, REV8, ...) take no second operand at all:
/// their rs2 field is part of the opcode.
#[inline(always)]
pub(crate) fn takes_shamt(op: Op) -> bool {
    matches!(op, Op::SLLI_UW | Op::RORI | Op::RORIW | Op::BCLRI | Op::BEXTI | Op::BINVI | Op::BSETI)
}

/// Whether `op` reads `x[rs1]` only: its rs2 field is part of the opcode.
pub(crate) fn unary(op: Op) -> bool {
    matches!(
        op,
        Op::CLZ
            | Op::CTZ
            | Op::CPOP
            | Op::CLZW
            | Op::CTZW
            | Op::CPOPW
            | Op::SEXT_B
            | Op::SEXT_H
            | Op::ZEXT_H
            | Op::ORC_B
            | Op::REV8
    )
}

#[inline(always)]
fn sext32(v: u32) -> u64 {
    v as i32 as u64
}

#[inline(always)]
fn zext32(v: u64) -> u64 {
    v & 0xffff_ffff
}

/// The 128-bit carry-less product of `a` and `b`: bit k is the XOR of
/// `a[i] & b[k-i]` over i (Zbc: CLMUL gives bits 63..0, CLMULH bits
/// 127..64, CLMULR bits 126..63).
#[inline]
pub(crate) fn clmul128(a: u64, b: u64) -> u128 {
    let mut p = 0u128;
    let mut b = b;
    while b != 0 {
        let i = b.trailing_zeros();
        p ^= (a as u128) << i;
        b &= b - 1;
    }
    p
}

/// ORC.B: each byte becomes all ones if any of its bits is set, else zero.
#[inline]
fn orc_b(a: u64) -> u64 {
    let mut r = 0;
    for k in 0..8 {
        if (a >> (8 * k)) & 0xff != 0 {
            r |= 0xff << (8 * k);
        }
    }
    r
}

/// The result of `op` (for which [`handles`] holds) on `a` = `x[rs1]` and
/// `b`: `x[rs2]`, or the shift amount if [`takes_shamt`]; ignored by the
/// unary operations. Any other `op` gives 0.
#[inline]
pub(crate) fn alu(op: Op, a: u64, b: u64) -> u64 {
    let sh = (b & 63) as u32;
    match op {
        // ---- Zba ----
        Op::SH1ADD => (a << 1).wrapping_add(b),
        Op::SH2ADD => (a << 2).wrapping_add(b),
        Op::SH3ADD => (a << 3).wrapping_add(b),
        Op::ADD_UW => zext32(a).wrapping_add(b),
        Op::SH1ADD_UW => (zext32(a) << 1).wrapping_add(b),
        Op::SH2ADD_UW => (zext32(a) << 2).wrapping_add(b),
        Op::SH3ADD_UW => (zext32(a) << 3).wrapping_add(b),
        Op::SLLI_UW => zext32(a) << sh,
        // ---- Zbb ----
        Op::ANDN => a & !b,
        Op::ORN => a | !b,
        Op::XNOR => !(a ^ b),
        Op::CLZ => a.leading_zeros() as u64,
        Op::CTZ => a.trailing_zeros() as u64,
        Op::CPOP => a.count_ones() as u64,
        Op::CLZW => (a as u32).leading_zeros() as u64,
        Op::CTZW => (a as u32).trailing_zeros() as u64,
        Op::CPOPW => (a as u32).count_ones() as u64,
        Op::MAX => (a as i64).max(b as i64) as u64,
        Op::MAXU => a.max(b),
        Op::MIN => (a as i64).min(b as i64) as u64,
        Op::MINU => a.min(b),
        Op::SEXT_B => a as i8 as u64,
        Op::SEXT_H => a as i16 as u64,
        Op::ZEXT_H => a & 0xffff,
        Op::ROL => a.rotate_left(sh),
        Op::ROR | Op::RORI => a.rotate_right(sh),
        Op::ROLW => sext32((a as u32).rotate_left(sh & 31)),
        Op::RORW | Op::RORIW => sext32((a as u32).rotate_right(sh & 31)),
        Op::ORC_B => orc_b(a),
        Op::REV8 => a.swap_bytes(),
        // ---- Zbc ----
        Op::CLMUL => clmul128(a, b) as u64,
        Op::CLMULH => (clmul128(a, b) >> 64) as u64,
        Op::CLMULR => (clmul128(a, b) >> 63) as u64,
        // ---- Zbs ----
        Op::BCLR | Op::BCLRI => a & !(1 << sh),
        Op::BEXT | Op::BEXTI => (a >> sh) & 1,
        Op::BINV | Op::BINVI => a ^ (1 << sh),
        Op::BSET | Op::BSETI => a | (1 << sh),
        // ---- Zicond ----
        Op::CZERO_EQZ => {
            if b == 0 {
                0
            } else {
                a
            }
        }
        Op::CZERO_NEZ => {
            if b != 0 {
                0
            } else {
                a
            }
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_arch::isa::ENCODINGS;

    /// Every operation of the five extensions is handled here, and the
    /// shift-amount forms are exactly the rows whose immediate is one.
    #[test]
    fn covers_the_extensions_rows() {
        let mut n = 0;
        for e in ENCODINGS.iter().filter(|e| handles(e.op)) {
            n += 1;
            assert_eq!(takes_shamt(e.op), e.imm == strata_arch::isa::Imm::Shamt, "{}", e.name);
            assert_eq!(unary(e.op), e.mask & (31 << 20) == 31 << 20, "{}", e.name);
        }
        assert_eq!(n, 8 + 24 + 3 + 8 + 2, "Zba + Zbb + Zbc + Zbs + Zicond rows");
    }

    /// Values worked out by hand from the specification's definitions.
    #[test]
    fn hand_worked_values() {
        let m = u64::MAX;
        let cases: &[(Op, u64, u64, u64)] = &[
            (Op::SH1ADD, 3, 10, 16),
            (Op::SH3ADD, 1 << 61, 1, 1),
            (Op::ADD_UW, 0xffff_ffff_8000_0000, 1, 0x8000_0001),
            (Op::SH2ADD_UW, 0xdead_beef_0000_0001, 0, 4),
            (Op::SLLI_UW, 0xffff_ffff_ffff_ffff, 32, 0xffff_ffff_0000_0000),
            (Op::SLLI_UW, 0x1_8000_0000, 63, 0),
            (Op::ANDN, 0xff, 0x0f, 0xf0),
            (Op::ORN, 0, 0, m),
            (Op::XNOR, 0x5555, 0x5555, m),
            (Op::CLZ, 0, 0, 64),
            (Op::CLZ, 1, 0, 63),
            (Op::CLZ, m, 0, 0),
            (Op::CTZ, 0, 0, 64),
            (Op::CTZ, 1 << 63, 0, 63),
            (Op::CPOP, m, 0, 64),
            (Op::CLZW, 0xffff_ffff_0000_0000, 0, 32),
            (Op::CLZW, 0x8000, 0, 16),
            (Op::CTZW, 0xffff_ffff_0000_0000, 0, 32),
            (Op::CPOPW, 0xffff_ffff_0000_000f, 0, 4),
            (Op::MAX, m, 1, 1),
            (Op::MAXU, m, 1, m),
            (Op::MIN, 1 << 63, 0, 1 << 63),
            (Op::MINU, 1 << 63, 0, 0),
            (Op::SEXT_B, 0x80, 0, 0xffff_ffff_ffff_ff80),
            (Op::SEXT_H, 0x1_7fff, 0, 0x7fff),
            (Op::ZEXT_H, m, 0, 0xffff),
            (Op::ROL, 0x8000_0000_0000_0001, 1, 3),
            (Op::ROL, 0x8000_0000_0000_0001, 65, 3),
            (Op::ROR, 1, 1, 1 << 63),
            (Op::RORI, 0x10, 4, 1),
            (Op::ROLW, 0x8000_0000, 1, 1),
            (Op::ROLW, 0x4000_0000, 1, 0xffff_ffff_8000_0000),
            (Op::RORW, 1, 32, 1),
            (Op::RORIW, 1, 1, 0xffff_ffff_8000_0000),
            (Op::ORC_B, 0x0100_0000_0080_0000, 0, 0xff00_0000_00ff_0000),
            (Op::REV8, 0x0102_0304_0506_0708, 0, 0x0807_0605_0403_0201),
            (Op::CLMUL, 3, 3, 5),
            (Op::CLMUL, 1 << 63, 2, 0),
            (Op::CLMULH, 1 << 63, 2, 1),
            (Op::CLMULR, 1 << 63, 1, 1),
            (Op::CLMULR, 1, 1, 0),
            (Op::BCLR, m, 63, m >> 1),
            (Op::BEXT, 1 << 40, 40, 1),
            (Op::BEXTI, 1 << 40, 41, 0),
            (Op::BINV, 0, 64, 1),
            (Op::BSETI, 0, 63, 1 << 63),
            (Op::CZERO_EQZ, 7, 0, 0),
            (Op::CZERO_EQZ, 7, 1 << 63, 7),
            (Op::CZERO_NEZ, 7, 0, 7),
            (Op::CZERO_NEZ, 7, 2, 0),
        ];
        for &(op, a, b, want) in cases {
            assert_eq!(alu(op, a, b), want, "{} {a:#x} {b:#x}", op.name());
        }
    }

    /// The carry-less product against its definition, bit by bit.
    #[test]
    fn clmul_follows_the_definition() {
        let def = |a: u64, b: u64| {
            let mut p = 0u128;
            for i in 0..64 {
                if b >> i & 1 != 0 {
                    p ^= (a as u128) << i;
                }
            }
            p
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (a, b) = (x, x.rotate_left(23) ^ 0x1234_5678);
            assert_eq!(clmul128(a, b), def(a, b));
        }
    }
}

//! Hand-written cases from the spec text (Unprivileged ISA 20191213, chapters
//! 11 and 12). Every expected value is worked out from the spec and IEEE 754,
//! in the comment beside it; none was copied from this crate's output.

use strata_fpu::{self as fpu, flags::*, Rm, CANONICAL_NAN_D, CANONICAL_NAN_S};

const ALL: [Rm; 5] = [Rm::Rne, Rm::Rtz, Rm::Rdn, Rm::Rup, Rm::Rmm];

// Single-precision constants.
const ONE: u32 = 0x3f80_0000;
const TWO: u32 = 0x4000_0000;
const THREE: u32 = 0x4040_0000;
const NEG_ONE: u32 = 0xbf80_0000;
const PZ: u32 = 0x0000_0000;
const NZ: u32 = 0x8000_0000;
const PINF: u32 = 0x7f80_0000;
const NINF: u32 = 0xff80_0000;
const QNAN: u32 = 0x7fc0_0000;
const QNAN_PAYLOAD: u32 = 0x7fc1_2345;
const NEG_QNAN: u32 = 0xffc0_0001;
const SNAN: u32 = 0x7f80_0001;
const SNAN_PAYLOAD: u32 = 0x7fa0_beef;
const MAX: u32 = 0x7f7f_ffff;
const MIN_NORMAL: u32 = 0x0080_0000;

// Double-precision constants.
const D_ONE: u64 = 0x3ff0_0000_0000_0000;
const D_TWO: u64 = 0x4000_0000_0000_0000;
const D_PZ: u64 = 0;
const D_NZ: u64 = 0x8000_0000_0000_0000;
const D_PINF: u64 = 0x7ff0_0000_0000_0000;
const D_NINF: u64 = 0xfff0_0000_0000_0000;
const D_QNAN: u64 = 0x7ff8_0000_0000_0000;
const D_QNAN_PAYLOAD: u64 = 0x7ff8_0000_dead_beef;
const D_SNAN: u64 = 0x7ff0_0000_0000_0001;

fn d(x: f64) -> u64 {
    x.to_bits()
}
fn s(x: f32) -> u32 {
    x.to_bits()
}

// --- §11.2 rounding-mode field -------------------------------------------------

#[test]
fn rm_encoding_table_11_1() {
    assert_eq!(Rm::from_bits(0), Some(Rm::Rne));
    assert_eq!(Rm::from_bits(1), Some(Rm::Rtz));
    assert_eq!(Rm::from_bits(2), Some(Rm::Rdn));
    assert_eq!(Rm::from_bits(3), Some(Rm::Rup));
    assert_eq!(Rm::from_bits(4), Some(Rm::Rmm));
    // 5 and 6 are reserved; 7 (DYN) is resolved by the hart.
    assert_eq!(Rm::from_bits(5), None);
    assert_eq!(Rm::from_bits(6), None);
    assert_eq!(Rm::from_bits(7), None);
    assert_eq!(Rm::from_bits(8), None);
    for b in 0..5 {
        assert_eq!(Rm::from_bits(b).unwrap().to_bits(), b);
    }
}

#[test]
fn fflags_layout_table_11_2() {
    // NV DZ OF UF NX from bit 4 down to bit 0.
    assert_eq!((NX, UF, OF, DZ, NV), (1, 2, 4, 8, 16));
}

// --- §12.2 NaN boxing -----------------------------------------------------------

#[test]
fn nan_boxing() {
    assert_eq!(fpu::box_s(ONE), 0xffff_ffff_3f80_0000);
    assert_eq!(fpu::unbox_s(0xffff_ffff_3f80_0000), ONE);
    assert_eq!(fpu::unbox_s(fpu::box_s(SNAN)), SNAN, "a boxed NaN keeps its bits");
    // Not properly boxed: the operand is the canonical NaN.
    for reg in [0x0000_0000_3f80_0000u64, 0xffff_fffe_3f80_0000, 0x7fff_ffff_3f80_0000, 0xffff_0000_ffff_ffff, D_ONE] {
        assert_eq!(fpu::unbox_s(reg), CANONICAL_NAN_S, "{reg:#x}");
    }
    // An improperly boxed operand therefore behaves as a quiet NaN: adding it
    // gives the canonical NaN with no flags.
    assert_eq!(fpu::add_s(fpu::unbox_s(D_ONE), ONE, Rm::Rne), (CANONICAL_NAN_S, 0));
}

// --- §11.3 NaN generation -------------------------------------------------------

#[test]
fn nan_results_are_canonical() {
    for rm in ALL {
        // Quiet NaN operands: canonical NaN, no flags.
        assert_eq!(fpu::add_s(QNAN_PAYLOAD, ONE, rm), (CANONICAL_NAN_S, 0));
        assert_eq!(fpu::mul_s(ONE, NEG_QNAN, rm), (CANONICAL_NAN_S, 0));
        assert_eq!(fpu::sqrt_s(QNAN_PAYLOAD, rm), (CANONICAL_NAN_S, 0));
        assert_eq!(fpu::add_d(D_QNAN_PAYLOAD, D_ONE, rm), (CANONICAL_NAN_D, 0));
        // Signalling NaN operands: canonical NaN and NV.
        assert_eq!(fpu::sub_s(ONE, SNAN_PAYLOAD, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::div_d(D_SNAN, D_ONE, rm), (CANONICAL_NAN_D, NV));
        // Invalid operations.
        assert_eq!(fpu::add_s(PINF, NINF, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::sub_d(D_PINF, D_PINF, rm), (CANONICAL_NAN_D, NV));
        assert_eq!(fpu::mul_s(PZ, NINF, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::div_s(PZ, NZ, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::div_d(D_PINF, D_NINF, rm), (CANONICAL_NAN_D, NV));
        assert_eq!(fpu::sqrt_s(NEG_ONE, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::sqrt_d(d(-1e-300), rm), (CANONICAL_NAN_D, NV));
        assert_eq!(fpu::sqrt_s(NINF, rm), (CANONICAL_NAN_S, NV));
    }
}

#[test]
fn ieee_special_cases() {
    for rm in ALL {
        // Division by zero: correctly signed infinity, DZ only.
        assert_eq!(fpu::div_s(ONE, PZ, rm), (PINF, DZ));
        assert_eq!(fpu::div_s(ONE, NZ, rm), (NINF, DZ));
        assert_eq!(fpu::div_d(d(-3.0), D_PZ, rm), (D_NINF, DZ));
        // inf / 0 is not a division by zero.
        assert_eq!(fpu::div_s(PINF, PZ, rm), (PINF, 0));
        // sqrt(-0) = -0, no flags.
        assert_eq!(fpu::sqrt_s(NZ, rm), (NZ, 0));
        assert_eq!(fpu::sqrt_d(D_NZ, rm), (D_NZ, 0));
        assert_eq!(fpu::sqrt_s(s(9.0), rm), (THREE, 0));
    }
    // x + (-x) is +0 except in RDN, where it is -0 (IEEE 754 §6.3).
    assert_eq!(fpu::add_s(ONE, NEG_ONE, Rm::Rne), (PZ, 0));
    assert_eq!(fpu::add_s(ONE, NEG_ONE, Rm::Rmm), (PZ, 0));
    assert_eq!(fpu::add_s(ONE, NEG_ONE, Rm::Rdn), (NZ, 0));
    assert_eq!(fpu::sub_d(D_ONE, D_ONE, Rm::Rdn), (D_NZ, 0));
}

// --- RMM: round to nearest, ties to max magnitude (Table 11.1) ------------------

#[test]
fn rmm_ties_go_away_from_zero() {
    // 1 + 2^-24 lies exactly halfway between 1.0 (0x3f800000, even) and
    // 1 + 2^-23 (0x3f800001). RNE picks the even one, RMM the larger magnitude.
    let half_ulp = s(2f32.powi(-24));
    assert_eq!(fpu::add_s(ONE, half_ulp, Rm::Rne), (ONE, NX));
    assert_eq!(fpu::add_s(ONE, half_ulp, Rm::Rmm), (0x3f80_0001, NX));
    assert_eq!(fpu::add_s(NEG_ONE, half_ulp | 0x8000_0000, Rm::Rmm), (0xbf80_0001, NX));
    assert_eq!(fpu::sub_s(NEG_ONE, half_ulp, Rm::Rmm), (0xbf80_0001, NX));
    // Just below the tie, RMM rounds to nearest (down): b = 2^-24 (1 - 2^-24).
    assert_eq!(fpu::add_s(ONE, 0x337f_ffff, Rm::Rmm), (ONE, NX));
    // A tie whose even neighbour is also the larger one: 1 + 3 * 2^-24 lies
    // between 0x3f800001 and 0x3f800002; both RNE and RMM pick 0x3f800002.
    let three_half_ulps = s(3.0 * 2f32.powi(-24));
    assert_eq!(fpu::add_s(ONE, three_half_ulps, Rm::Rne), (0x3f80_0002, NX));
    assert_eq!(fpu::add_s(ONE, three_half_ulps, Rm::Rmm), (0x3f80_0002, NX));

    // Multiplication: 24929 * 673 = 16777217 = 2^24 + 1, halfway between
    // 2^24 (0x4b800000) and 2^24 + 2 (0x4b800001).
    let (a, b) = (s(24929.0), s(673.0));
    assert_eq!(fpu::mul_s(a, b, Rm::Rne), (0x4b80_0000, NX));
    assert_eq!(fpu::mul_s(a, b, Rm::Rmm), (0x4b80_0001, NX));
    assert_eq!(fpu::mul_s(a | 0x8000_0000, b, Rm::Rmm), (0xcb80_0001, NX));

    // Fused: 1 * 1 + 2^-24 is the same tie as above, rounded once.
    assert_eq!(fpu::fmadd_s(ONE, ONE, half_ulp, Rm::Rmm), (0x3f80_0001, NX));
    assert_eq!(fpu::fmadd_s(ONE, ONE, half_ulp, Rm::Rne), (ONE, NX));
    // -(1 * 1) - 2^-24: the negative tie goes to -(1 + 2^-23).
    assert_eq!(fpu::fnmadd_s(ONE, ONE, half_ulp, Rm::Rmm), (0xbf80_0001, NX));

    // Double: 1 + 2^-53 is halfway between 1.0 and 1 + 2^-52.
    let dh = d(2f64.powi(-53));
    assert_eq!(fpu::add_d(D_ONE, dh, Rm::Rne), (D_ONE, NX));
    assert_eq!(fpu::add_d(D_ONE, dh, Rm::Rmm), (D_ONE + 1, NX));
    assert_eq!(fpu::fmsub_d(D_ONE, D_ONE, dh | D_NZ, Rm::Rmm), (D_ONE + 1, NX));

    // Integer -> float: 2^24 + 1 is a tie in single precision.
    let x = (1u64 << 24) + 1;
    assert_eq!(fpu::cvt_s_w(x, Rm::Rne), (0x4b80_0000, NX));
    assert_eq!(fpu::cvt_s_w(x, Rm::Rmm), (0x4b80_0001, NX));
    assert_eq!(fpu::cvt_s_w(x.wrapping_neg(), Rm::Rmm), (0xcb80_0001, NX));
    assert_eq!(fpu::cvt_s_lu(x, Rm::Rmm), (0x4b80_0001, NX));
    // 2^53 + 1 is a tie in double precision.
    let y = (1u64 << 53) + 1;
    assert_eq!(fpu::cvt_d_l(y, Rm::Rne), (d(2f64.powi(53)), NX));
    assert_eq!(fpu::cvt_d_l(y, Rm::Rmm), (d(2f64.powi(53)) + 1, NX));

    // Float -> integer: x.5 goes away from zero.
    assert_eq!(fpu::cvt_w_s(s(2.5), Rm::Rne), (2, NX));
    assert_eq!(fpu::cvt_w_s(s(2.5), Rm::Rmm), (3, NX));
    assert_eq!(fpu::cvt_w_s(s(-2.5), Rm::Rmm), (-3i64 as u64, NX));
    assert_eq!(fpu::cvt_l_d(d(0.5), Rm::Rmm), (1, NX));
    assert_eq!(fpu::cvt_l_d(d(0.5), Rm::Rne), (0, NX));
    assert_eq!(fpu::cvt_wu_d(d(0.5), Rm::Rmm), (1, NX));
    // Not a tie: 2.4 -> 2 in RMM.
    assert_eq!(fpu::cvt_w_d(d(2.4), Rm::Rmm), (2, NX));

    // Double -> single: 1 + 2^-24 (exact in double) is the single tie above.
    assert_eq!(fpu::cvt_s_d(d(1.0 + 2f64.powi(-24)), Rm::Rmm), (0x3f80_0001, NX));
    assert_eq!(fpu::cvt_s_d(d(1.0 + 2f64.powi(-24)), Rm::Rne), (ONE, NX));

    // Division and square root cannot produce ties at full precision, but a
    // subnormal quotient can: 2^-127 / 2^23 = 2^-150 is halfway between 0
    // and 2^-149 (tiny and inexact: UF | NX).
    assert_eq!(fpu::div_s(0x0040_0000, s(2f32.powi(23)), Rm::Rne), (PZ, UF | NX));
    assert_eq!(fpu::div_s(0x0040_0000, s(2f32.powi(23)), Rm::Rmm), (1, UF | NX));
    assert_eq!(fpu::div_d(1, D_TWO, Rm::Rne), (D_PZ, UF | NX));
    assert_eq!(fpu::div_d(1, D_TWO, Rm::Rmm), (1, UF | NX));
    assert_eq!(fpu::div_d(3 | D_NZ, D_TWO, Rm::Rmm), (2 | D_NZ, UF | NX));
    assert_eq!(fpu::div_d(3 | D_NZ, D_TWO, Rm::Rne), (2 | D_NZ, UF | NX));
    assert_eq!(fpu::div_d(5, D_TWO, Rm::Rne), (2, UF | NX));
    assert_eq!(fpu::div_d(5, D_TWO, Rm::Rmm), (3, UF | NX));

    // Overflow in RMM goes to infinity, like RNE.
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rmm), (PINF, OF | NX));
}

#[test]
fn directed_rounding_of_overflow() {
    // IEEE 754 §7.4: RTZ never rounds to infinity; RDN only for negatives;
    // RUP only for positives.
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rne), (PINF, OF | NX));
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rtz), (MAX, OF | NX));
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rdn), (MAX, OF | NX));
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rup), (PINF, OF | NX));
    assert_eq!(fpu::mul_s(MAX | NZ, TWO, Rm::Rdn), (NINF, OF | NX));
    assert_eq!(fpu::mul_s(MAX | NZ, TWO, Rm::Rup), (MAX | NZ, OF | NX));
}

// --- §11.4 tininess after rounding ------------------------------------------------

#[test]
fn underflow_is_detected_after_rounding() {
    // 2^-126 (1 - 2^-25) rounds, with an unbounded exponent and 24-bit
    // precision, to 2^-126 in RNE: not tiny after rounding, so only NX (a
    // before-rounding implementation would also raise UF).
    let v = d((1.0 - 2f64.powi(-25)) * 2f64.powi(-126));
    assert_eq!(fpu::cvt_s_d(v, Rm::Rne), (MIN_NORMAL, NX));
    // In RTZ the rounded value is 2^-126 (1 - 2^-24): tiny and inexact.
    assert_eq!(fpu::cvt_s_d(v, Rm::Rtz), (MIN_NORMAL - 1, UF | NX));
    // A tiny but exact result does not underflow (masked underflow
    // requires inexactness, IEEE 754 §7.5).
    assert_eq!(fpu::mul_s(MIN_NORMAL, s(0.5), Rm::Rne), (MIN_NORMAL >> 1, 0));
    // The same for double via multiplication: (2^-1022 (1 + 2^-52)) *
    // (1 - 2^-52) = 2^-1022 (1 - 2^-104), which rounds to 2^-1022 at 53-bit
    // precision in RNE and RUP (not tiny after rounding: NX only) but to
    // 2^-1022 (1 - 2^-53) in RTZ and RDN (tiny: UF | NX).
    let dmin = d(f64::MIN_POSITIVE);
    let below_one = d(1.0 - 2f64.powi(-52));
    assert_eq!(fpu::mul_d(dmin + 1, below_one, Rm::Rne), (dmin, NX));
    assert_eq!(fpu::mul_d(dmin + 1, below_one, Rm::Rup), (dmin, NX));
    assert_eq!(fpu::mul_d(dmin + 1, below_one, Rm::Rtz), (dmin - 1, UF | NX));
    assert_eq!(fpu::mul_d(dmin + 1, below_one, Rm::Rdn), (dmin - 1, UF | NX));
    // Whereas 2^-1022 (1 - 2^-53) is exact at 53 bits, hence tiny even in
    // RNE, where it then rounds (tie to even) up to 2^-1022.
    let below_one = d(1.0 - 2f64.powi(-53));
    assert_eq!(fpu::mul_d(dmin, below_one, Rm::Rne), (dmin, UF | NX));
}

// --- §11.6 fused multiply-add ---------------------------------------------------

#[test]
fn fused_sign_conventions() {
    // FMADD = a*b + c, FMSUB = a*b - c, FNMSUB = -(a*b) + c,
    // FNMADD = -(a*b) - c.
    let (two, three, one) = (TWO, THREE, ONE);
    assert_eq!(fpu::fmadd_s(two, three, one, Rm::Rne), (s(7.0), 0));
    assert_eq!(fpu::fmsub_s(two, three, one, Rm::Rne), (s(5.0), 0));
    assert_eq!(fpu::fnmsub_s(two, three, one, Rm::Rne), (s(-5.0), 0));
    assert_eq!(fpu::fnmadd_s(two, three, one, Rm::Rne), (s(-7.0), 0));
    assert_eq!(fpu::fmadd_d(D_TWO, d(3.0), D_ONE, Rm::Rne), (d(7.0), 0));
    assert_eq!(fpu::fmsub_d(D_TWO, d(3.0), D_ONE, Rm::Rne), (d(5.0), 0));
    assert_eq!(fpu::fnmsub_d(D_TWO, d(3.0), D_ONE, Rm::Rne), (d(-5.0), 0));
    assert_eq!(fpu::fnmadd_d(D_TWO, d(3.0), D_ONE, Rm::Rne), (d(-7.0), 0));
    // Signed zeros: -(+0 * +0) - (+0) = -0 - 0 = -0 in every mode.
    assert_eq!(fpu::fnmadd_s(PZ, PZ, PZ, Rm::Rne), (NZ, 0));
    // +0 - +0 = +0, except -0 in RDN.
    assert_eq!(fpu::fmsub_s(PZ, PZ, PZ, Rm::Rne), (PZ, 0));
    assert_eq!(fpu::fmsub_s(PZ, PZ, PZ, Rm::Rdn), (NZ, 0));
    // -(+0 * +0) + (+0) = -0 + +0 = +0 (RNE).
    assert_eq!(fpu::fnmsub_d(D_PZ, D_PZ, D_PZ, Rm::Rne), (D_PZ, 0));
}

#[test]
fn fused_single_rounding() {
    // (1 + 2^-12)^2 - 1 = 2^-11 + 2^-24 exactly, which a single has room
    // for. A separate multiply would first round 1 + 2^-11 + 2^-24 (a tie at
    // 24 bits) to the even 1 + 2^-11, and the subtraction would give 2^-11.
    let a = s(1.0 + 2f32.powi(-12));
    assert_eq!(fpu::fmsub_s(a, a, ONE, Rm::Rne), (s(2f32.powi(-11) + 2f32.powi(-24)), 0));
    let (p, pf) = fpu::mul_s(a, a, Rm::Rne);
    assert_eq!((p, pf), (s(1.0 + 2f32.powi(-11)), NX));
    assert_eq!(fpu::sub_s(p, ONE, Rm::Rne), (s(2f32.powi(-11)), 0));
}

#[test]
fn fused_inf_times_zero_is_invalid_even_with_quiet_nan_addend() {
    // §11.6: "must set the invalid operation exception flag when the
    // multiplicands are ∞ and zero, even when the addend is a quiet NaN."
    for rm in ALL {
        assert_eq!(fpu::fmadd_s(PINF, PZ, QNAN, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::fmsub_s(NZ, NINF, QNAN_PAYLOAD, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::fnmadd_s(PZ, PINF, NEG_QNAN, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::fnmsub_d(D_PINF, D_NZ, D_QNAN, rm), (CANONICAL_NAN_D, NV));
        assert_eq!(fpu::fmadd_d(D_PZ, D_NINF, D_QNAN_PAYLOAD, rm), (CANONICAL_NAN_D, NV));
        // Finite * finite + qNaN: quiet, no flag.
        assert_eq!(fpu::fmadd_s(ONE, ONE, QNAN, rm), (CANONICAL_NAN_S, 0));
        // inf * 0 + finite: invalid.
        assert_eq!(fpu::fmadd_s(PINF, PZ, ONE, rm), (CANONICAL_NAN_S, NV));
        // inf * 1 + -inf: invalid.
        assert_eq!(fpu::fmadd_d(D_PINF, D_ONE, D_NINF, rm), (CANONICAL_NAN_D, NV));
    }
}

// --- §11.6 FMIN / FMAX ----------------------------------------------------------

#[test]
fn min_max_numbers_and_zeros() {
    assert_eq!(fpu::min_s(ONE, TWO), (ONE, 0));
    assert_eq!(fpu::min_s(TWO, ONE), (ONE, 0));
    assert_eq!(fpu::max_s(ONE, TWO), (TWO, 0));
    assert_eq!(fpu::max_s(NINF, NEG_ONE), (NEG_ONE, 0));
    assert_eq!(fpu::min_s(NINF, MAX), (NINF, 0));
    assert_eq!(fpu::max_s(PINF, MAX), (PINF, 0));
    // -0.0 is less than +0.0, in both operand orders.
    assert_eq!(fpu::min_s(PZ, NZ), (NZ, 0));
    assert_eq!(fpu::min_s(NZ, PZ), (NZ, 0));
    assert_eq!(fpu::max_s(PZ, NZ), (PZ, 0));
    assert_eq!(fpu::max_s(NZ, PZ), (PZ, 0));
    assert_eq!(fpu::min_d(D_PZ, D_NZ), (D_NZ, 0));
    assert_eq!(fpu::max_d(D_NZ, D_PZ), (D_PZ, 0));
    assert_eq!(fpu::min_d(d(-1.5), d(-2.5)), (d(-2.5), 0));
    assert_eq!(fpu::max_d(d(-1.5), d(-2.5)), (d(-1.5), 0));
    // Subnormals order like everything else.
    assert_eq!(fpu::min_s(1, 2), (1, 0));
    assert_eq!(fpu::max_s(0x8000_0001, 0x8000_0002), (0x8000_0001, 0));
}

#[test]
fn min_max_nans() {
    // One quiet NaN: the other operand, no flags.
    assert_eq!(fpu::min_s(QNAN_PAYLOAD, ONE), (ONE, 0));
    assert_eq!(fpu::min_s(ONE, QNAN_PAYLOAD), (ONE, 0));
    assert_eq!(fpu::max_s(NEG_QNAN, TWO), (TWO, 0));
    assert_eq!(fpu::max_d(D_ONE, D_QNAN), (D_ONE, 0));
    // The other operand is returned bit for bit, even -0.
    assert_eq!(fpu::max_s(QNAN, NZ), (NZ, 0));
    // One signalling NaN: still the other operand, but NV (minimumNumber).
    assert_eq!(fpu::min_s(SNAN, ONE), (ONE, NV));
    assert_eq!(fpu::max_s(ONE, SNAN_PAYLOAD), (ONE, NV));
    assert_eq!(fpu::min_d(D_SNAN, D_TWO), (D_TWO, NV));
    // Both NaN: the canonical NaN, NV iff either is signalling.
    assert_eq!(fpu::min_s(QNAN_PAYLOAD, NEG_QNAN), (CANONICAL_NAN_S, 0));
    assert_eq!(fpu::max_s(QNAN_PAYLOAD, SNAN), (CANONICAL_NAN_S, NV));
    assert_eq!(fpu::max_s(SNAN, SNAN), (CANONICAL_NAN_S, NV));
    assert_eq!(fpu::min_d(D_QNAN_PAYLOAD, D_QNAN_PAYLOAD), (CANONICAL_NAN_D, 0));
    assert_eq!(fpu::max_d(D_SNAN, D_QNAN), (CANONICAL_NAN_D, NV));
}

// --- §11.8 comparisons ----------------------------------------------------------

#[test]
fn comparisons() {
    // FEQ is quiet: NV only for signalling NaNs.
    assert_eq!(fpu::feq_s(ONE, ONE), (true, 0));
    assert_eq!(fpu::feq_s(ONE, TWO), (false, 0));
    assert_eq!(fpu::feq_s(PZ, NZ), (true, 0));
    assert_eq!(fpu::feq_s(QNAN, QNAN), (false, 0));
    assert_eq!(fpu::feq_s(QNAN_PAYLOAD, ONE), (false, 0));
    assert_eq!(fpu::feq_s(SNAN, ONE), (false, NV));
    assert_eq!(fpu::feq_d(D_ONE, D_SNAN), (false, NV));
    assert_eq!(fpu::feq_d(D_QNAN, D_QNAN), (false, 0));
    assert_eq!(fpu::feq_d(D_NZ, D_PZ), (true, 0));
    // FLT/FLE are signalling: NV for any NaN, result 0.
    assert_eq!(fpu::flt_s(ONE, TWO), (true, 0));
    assert_eq!(fpu::flt_s(TWO, ONE), (false, 0));
    assert_eq!(fpu::flt_s(ONE, ONE), (false, 0));
    assert_eq!(fpu::flt_s(NZ, PZ), (false, 0));
    assert_eq!(fpu::fle_s(NZ, PZ), (true, 0));
    assert_eq!(fpu::fle_s(PZ, NZ), (true, 0));
    assert_eq!(fpu::fle_s(ONE, ONE), (true, 0));
    assert_eq!(fpu::flt_s(NINF, PINF), (true, 0));
    assert_eq!(fpu::flt_s(QNAN, ONE), (false, NV));
    assert_eq!(fpu::fle_s(ONE, QNAN), (false, NV));
    assert_eq!(fpu::fle_s(SNAN, ONE), (false, NV));
    assert_eq!(fpu::flt_d(d(-1.0), D_ONE), (true, 0));
    assert_eq!(fpu::fle_d(D_QNAN, D_QNAN), (false, NV));
    assert_eq!(fpu::flt_d(D_ONE, D_SNAN), (false, NV));
}

// --- §11.9 / Table 11.5 FCLASS ----------------------------------------------------

#[test]
fn fclass_all_ten_classes() {
    let single = [
        (NINF, 0),
        (NEG_ONE, 1),
        (0x8000_0001, 2), // negative subnormal
        (0x807f_ffff, 2),
        (NZ, 3),
        (PZ, 4),
        (0x0000_0001, 5), // positive subnormal
        (0x007f_ffff, 5),
        (ONE, 6),
        (MIN_NORMAL, 6),
        (MAX, 6),
        (PINF, 7),
        (SNAN, 8),
        (0xff80_0001, 8), // negative sNaN
        (0x7fbf_ffff, 8),
        (QNAN, 9),
        (NEG_QNAN, 9),
        (0x7fff_ffff, 9),
    ];
    for (v, bit) in single {
        assert_eq!(fpu::fclass_s(v), 1 << bit, "fclass.s {v:#010x}");
    }
    let double = [
        (D_NINF, 0),
        (d(-1.0), 1),
        (0x8000_0000_0000_0001, 2),
        (D_NZ, 3),
        (D_PZ, 4),
        (0x000f_ffff_ffff_ffff, 5),
        (d(f64::MAX), 6),
        (D_PINF, 7),
        (D_SNAN, 8),
        (0x7ff7_ffff_ffff_ffff, 8),
        (D_QNAN, 9),
        (0xfff8_0000_0000_0001, 9),
    ];
    for (v, bit) in double {
        assert_eq!(fpu::fclass_d(v), 1 << bit, "fclass.d {v:#018x}");
    }
    // An improperly boxed single reads as the canonical NaN: a quiet NaN.
    assert_eq!(fpu::fclass_s(fpu::unbox_s(0x1234)), 1 << 9);
}

// --- §11.6 sign injection -------------------------------------------------------

#[test]
fn sign_injection() {
    assert_eq!(fpu::sgnj_s(ONE, s(-2.0)), NEG_ONE);
    assert_eq!(fpu::sgnj_s(NEG_ONE, TWO), ONE);
    assert_eq!(fpu::sgnjn_s(ONE, ONE), NEG_ONE, "fneg.s");
    assert_eq!(fpu::sgnjn_s(ONE, NEG_ONE), ONE);
    assert_eq!(fpu::sgnjx_s(NEG_ONE, NEG_ONE), ONE, "fabs.s");
    assert_eq!(fpu::sgnjx_s(NEG_ONE, ONE), NEG_ONE);
    assert_eq!(fpu::sgnjx_s(ONE, NEG_ONE), NEG_ONE);
    // Not arithmetic: NaN payloads (even signalling) pass through.
    assert_eq!(fpu::sgnj_s(SNAN_PAYLOAD, NEG_ONE), SNAN_PAYLOAD | 0x8000_0000);
    assert_eq!(fpu::sgnj_d(D_ONE, D_NZ), d(-1.0));
    assert_eq!(fpu::sgnjn_d(D_QNAN_PAYLOAD, D_QNAN_PAYLOAD), D_QNAN_PAYLOAD | D_NZ);
    assert_eq!(fpu::sgnjx_d(d(-2.0), d(-3.0)), D_TWO);
}

// --- §11.7 / Table 11.4 conversions to integers ---------------------------------

#[test]
fn float_to_int_table_11_4() {
    let i32max = i32::MAX as u64; // 0x7fffffff: sign-extends to itself
    let i32min = i32::MIN as i64 as u64; // 0xffffffff_80000000
    let u32max = u64::MAX; // 0xffffffff, sign-extended from bit 31
    for rm in ALL {
        // NaN -> maximum value, NV (for every sign/kind of NaN).
        for nan in [QNAN, NEG_QNAN, SNAN] {
            assert_eq!(fpu::cvt_w_s(nan, rm), (i32max, NV));
            assert_eq!(fpu::cvt_wu_s(nan, rm), (u32max, NV));
            assert_eq!(fpu::cvt_l_s(nan, rm), (i64::MAX as u64, NV));
            assert_eq!(fpu::cvt_lu_s(nan, rm), (u64::MAX, NV));
        }
        assert_eq!(fpu::cvt_w_d(D_QNAN, rm), (i32max, NV));
        assert_eq!(fpu::cvt_lu_d(D_SNAN, rm), (u64::MAX, NV));
        // +inf and +overflow -> maximum, -inf and -overflow -> minimum; NV, no NX.
        assert_eq!(fpu::cvt_w_s(PINF, rm), (i32max, NV));
        assert_eq!(fpu::cvt_w_s(NINF, rm), (i32min, NV));
        assert_eq!(fpu::cvt_wu_s(PINF, rm), (u32max, NV));
        assert_eq!(fpu::cvt_wu_s(NINF, rm), (0, NV));
        assert_eq!(fpu::cvt_l_d(D_PINF, rm), (i64::MAX as u64, NV));
        assert_eq!(fpu::cvt_l_d(D_NINF, rm), (i64::MIN as u64, NV));
        assert_eq!(fpu::cvt_lu_d(D_PINF, rm), (u64::MAX, NV));
        assert_eq!(fpu::cvt_lu_d(D_NINF, rm), (0, NV));
        assert_eq!(fpu::cvt_w_s(s(2147483648.0), rm), (i32max, NV)); // 2^31
        assert_eq!(fpu::cvt_w_d(d(-2147483649.0), rm), (i32min, NV));
        assert_eq!(fpu::cvt_w_d(d(1e10 + 0.5), rm), (i32max, NV), "out of range: NV, no NX");
        assert_eq!(fpu::cvt_wu_d(d(4294967296.0), rm), (u32max, NV)); // 2^32
        assert_eq!(fpu::cvt_wu_s(NEG_ONE, rm), (0, NV));
        assert_eq!(fpu::cvt_l_s(s(2f32.powi(63)), rm), (i64::MAX as u64, NV)); // 2^63
        assert_eq!(fpu::cvt_lu_d(d(18446744073709551616.0), rm), (u64::MAX, NV)); // 2^64
        assert_eq!(fpu::cvt_lu_d(d(-1.0), rm), (0, NV));
        // The extremes themselves are exact.
        assert_eq!(fpu::cvt_w_s(s(-2147483648.0), rm), (i32min, 0));
        assert_eq!(fpu::cvt_w_d(d(2147483647.0), rm), (i32max, 0));
        assert_eq!(fpu::cvt_wu_d(d(4294967295.0), rm), (u32max, 0));
        assert_eq!(fpu::cvt_l_d(d(-9223372036854775808.0), rm), (i64::MIN as u64, 0));
        assert_eq!(fpu::cvt_lu_s(s(18446742974197923840.0), rm), (0xffff_ff00_0000_0000, 0));
        // Zeros and small integers.
        assert_eq!(fpu::cvt_w_s(NZ, rm), (0, 0));
        assert_eq!(fpu::cvt_lu_s(NZ, rm), (0, 0));
        assert_eq!(fpu::cvt_l_d(d(-7.0), rm), (-7i64 as u64, 0));
    }
    // FCVT.WU's 32-bit result is sign-extended: 3e9 = 0xb2d05e00.
    assert_eq!(fpu::cvt_wu_d(d(3e9), Rm::Rne), (0xffff_ffff_b2d0_5e00, 0));
    assert_eq!(fpu::cvt_wu_s(s(3e9), Rm::Rne), (0xffff_ffff_b2d0_5e00, 0));
    // FCVT.W's too: -1 -> all ones.
    assert_eq!(fpu::cvt_w_s(NEG_ONE, Rm::Rne), (u64::MAX, 0));

    // In-range inexact: NX, rounded per rm.
    assert_eq!(fpu::cvt_w_s(s(1.5), Rm::Rtz), (1, NX));
    assert_eq!(fpu::cvt_w_s(s(1.5), Rm::Rne), (2, NX));
    assert_eq!(fpu::cvt_w_s(s(-1.5), Rm::Rdn), (-2i64 as u64, NX));
    assert_eq!(fpu::cvt_w_s(s(-1.5), Rm::Rup), (-1i64 as u64, NX));
    assert_eq!(fpu::cvt_l_d(d(-0.1), Rm::Rtz), (0, NX));
    // Rounding decides the range: 2147483647.5 is in range after RTZ/RDN but
    // rounds to 2^31 (out of range) in RNE/RUP/RMM.
    let v = d(2147483647.5);
    assert_eq!(fpu::cvt_w_d(v, Rm::Rtz), (i32max, NX));
    assert_eq!(fpu::cvt_w_d(v, Rm::Rdn), (i32max, NX));
    assert_eq!(fpu::cvt_w_d(v, Rm::Rne), (i32max, NV));
    assert_eq!(fpu::cvt_w_d(v, Rm::Rup), (i32max, NV));
    // A negative value that rounds to 0 is a valid unsigned conversion (NX);
    // one that rounds to -1 is out of range (NV).
    assert_eq!(fpu::cvt_wu_d(d(-0.5), Rm::Rtz), (0, NX));
    assert_eq!(fpu::cvt_wu_d(d(-0.5), Rm::Rne), (0, NX));
    assert_eq!(fpu::cvt_wu_d(d(-0.5), Rm::Rdn), (0, NV));
    assert_eq!(fpu::cvt_lu_s(s(-0.5), Rm::Rmm), (0, NV));
    assert_eq!(fpu::cvt_lu_s(s(-0.25), Rm::Rmm), (0, NX));
}

// --- §11.7 / §12.5 conversions from integers -----------------------------------------

#[test]
fn int_to_float() {
    // W/WU use only the low 32 bits of rs1.
    assert_eq!(fpu::cvt_s_w(0xdead_beef_0000_0003, Rm::Rne), (THREE, 0));
    assert_eq!(fpu::cvt_s_w(0x0000_0000_ffff_ffff, Rm::Rne), (NEG_ONE, 0));
    assert_eq!(fpu::cvt_s_wu(0xffff_ffff_ffff_ffff, Rm::Rtz), (s(4294967040.0), NX));
    assert_eq!(fpu::cvt_s_wu(0xffff_ffff_ffff_ffff, Rm::Rne), (s(4294967296.0), NX));
    assert_eq!(fpu::cvt_d_w(0x1234_5678_8000_0000, Rm::Rne), (d(-2147483648.0), 0));
    assert_eq!(fpu::cvt_d_wu(0x1234_5678_8000_0000, Rm::Rne), (d(2147483648.0), 0));
    // All 32-bit integers are exact in double.
    assert_eq!(fpu::cvt_d_wu(0xffff_ffff, Rm::Rmm), (d(4294967295.0), 0));
    assert_eq!(fpu::cvt_d_l(u64::MAX, Rm::Rne), (d(-1.0), 0));
    assert_eq!(fpu::cvt_d_lu(u64::MAX, Rm::Rne), (d(18446744073709551616.0), NX));
    assert_eq!(fpu::cvt_d_lu(u64::MAX, Rm::Rtz), (d(18446744073709549568.0), NX));
    assert_eq!(fpu::cvt_s_l(1 << 63, Rm::Rne), (s(-9223372036854775808.0), 0));
    assert_eq!(fpu::cvt_s_lu(0, Rm::Rdn), (PZ, 0), "integer zero converts to +0 in every mode");
    assert_eq!(fpu::cvt_d_l(0, Rm::Rdn), (D_PZ, 0));
}

// --- §12.5 FCVT.S.D / FCVT.D.S ---------------------------------------------------

#[test]
fn float_float_conversions() {
    // Widening is exact.
    assert_eq!(fpu::cvt_d_s(ONE), (D_ONE, 0));
    assert_eq!(fpu::cvt_d_s(1), (d(2f64.powi(-149)), 0));
    assert_eq!(fpu::cvt_d_s(NINF), (D_NINF, 0));
    assert_eq!(fpu::cvt_d_s(NZ), (D_NZ, 0));
    // NaNs become the canonical NaN; NV only when signalling.
    assert_eq!(fpu::cvt_d_s(QNAN_PAYLOAD), (CANONICAL_NAN_D, 0));
    assert_eq!(fpu::cvt_d_s(NEG_QNAN), (CANONICAL_NAN_D, 0));
    assert_eq!(fpu::cvt_d_s(SNAN_PAYLOAD), (CANONICAL_NAN_D, NV));
    assert_eq!(fpu::cvt_d_s(0xff80_0001), (CANONICAL_NAN_D, NV));
    for rm in ALL {
        assert_eq!(fpu::cvt_s_d(D_QNAN_PAYLOAD, rm), (CANONICAL_NAN_S, 0));
        assert_eq!(fpu::cvt_s_d(0xfff8_0000_0000_0001, rm), (CANONICAL_NAN_S, 0));
        assert_eq!(fpu::cvt_s_d(D_SNAN, rm), (CANONICAL_NAN_S, NV));
        // A payload that only lives in the low bits must not make the
        // narrowed value look like infinity.
        assert_eq!(fpu::cvt_s_d(0x7ff0_0000_0000_0100, rm), (CANONICAL_NAN_S, NV));
        assert_eq!(fpu::cvt_s_d(D_ONE, rm), (ONE, 0));
        assert_eq!(fpu::cvt_s_d(D_NINF, rm), (NINF, 0));
    }
    // Narrowing rounds per rm and can overflow / underflow.
    assert_eq!(fpu::cvt_s_d(d(0.1), Rm::Rne), (0x3dcc_cccd, NX));
    assert_eq!(fpu::cvt_s_d(d(0.1), Rm::Rtz), (0x3dcc_cccc, NX));
    assert_eq!(fpu::cvt_s_d(d(1e300), Rm::Rne), (PINF, OF | NX));
    assert_eq!(fpu::cvt_s_d(d(1e300), Rm::Rtz), (MAX, OF | NX));
    assert_eq!(fpu::cvt_s_d(d(-1e-300), Rm::Rne), (NZ, UF | NX));
    assert_eq!(fpu::cvt_s_d(d(1e-300), Rm::Rup), (1, UF | NX));
}

// --- Flags are per call -------------------------------------------------------------

#[test]
fn flags_do_not_leak_between_calls() {
    assert_eq!(fpu::div_s(ONE, PZ, Rm::Rne).1, DZ);
    assert_eq!(fpu::add_s(ONE, ONE, Rm::Rne), (TWO, 0));
    assert_eq!(fpu::sqrt_d(d(-1.0), Rm::Rne).1, NV);
    assert_eq!(fpu::cvt_w_s(ONE, Rm::Rne), (1, 0));
    assert_eq!(fpu::mul_s(MAX, TWO, Rm::Rne).1, OF | NX);
    assert_eq!(fpu::feq_s(ONE, ONE), (true, 0));
    assert_eq!(fpu::cvt_d_s(SNAN).1, NV);
    assert_eq!(fpu::cvt_d_s(ONE), (D_ONE, 0));
    // The rounding mode of one call does not stick either.
    assert_eq!(fpu::add_s(ONE, 1, Rm::Rup), (ONE + 1, NX));
    assert_eq!(fpu::add_s(ONE, 1, Rm::Rne), (ONE, NX));
}

#[test]
fn flags_do_not_leak_between_threads() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let noisy = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Raises every flag but NV, in a mode other than RNE.
                let _ = fpu::div_s(ONE, PZ, Rm::Rup);
                let _ = fpu::mul_s(MAX, TWO, Rm::Rup);
                let _ = fpu::mul_s(1, s(0.5), Rm::Rup);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // On a loaded machine the noisy thread may start late: only check once
    // it runs, and keep checking until it has run for a while alongside.
    while rounds.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let start = rounds.load(Ordering::Relaxed);
    let mut i = 0u32;
    while i < 200_000 || rounds.load(Ordering::Relaxed) < start + 1000 {
        let x = s((i % 1_000_000) as f32);
        assert_eq!(fpu::add_s(x, PZ, Rm::Rne), (x, 0));
        assert_eq!(fpu::add_s(ONE, 1, Rm::Rne), (ONE, NX), "RNE must not pick up another thread's RUP");
        i = i.wrapping_add(1);
    }
    stop.store(true, Ordering::Relaxed);
    noisy.join().unwrap();
}

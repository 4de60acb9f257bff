//! Arithmetic of the RISC-V **F** and **D** extensions as pure functions on raw
//! bit patterns.
//!
//! References are to *The RISC-V Instruction Set Manual, Volume I: Unprivileged
//! ISA*, document version 20191213: chapter 11 ("F" Standard Extension for
//! Single-Precision Floating-Point, version 2.2) and chapter 12 ("D" Standard
//! Extension for Double-Precision Floating-Point, version 2.2).
//!
//! # Conventions
//!
//! * Single-precision values are `u32` bit patterns, double-precision values
//!   `u64` bit patterns. A single-precision operand read from a 64-bit `f`
//!   register must first go through [`unbox_s`] (§12.2), and a single-precision
//!   result must be written back through [`box_s`].
//! * Every operation that can raise an IEEE 754 exception returns
//!   `(result, flags)`, where `flags` uses the `fflags` bit layout of §11.2
//!   (Table 11.2, constants in [`flags`]) and holds exactly the exceptions
//!   raised by *this* call. The caller ORs them into `fflags` (the flags are
//!   accrued, never cleared by an instruction).
//! * The rounding mode is an [`Rm`]: the hart resolves the `DYN` encoding
//!   (rm = 7) from `frm` and raises an illegal-instruction exception for the
//!   reserved encodings 5 and 6 (and for `DYN` when `frm` holds one of 5, 6,
//!   7) before calling in (§11.2).
//! * Any NaN produced by an operation is the canonical NaN
//!   ([`CANONICAL_NAN_S`], [`CANONICAL_NAN_D`]); NaN payloads are never
//!   propagated (§11.3). Only the sign-injection helpers and `fmv`, which are
//!   not arithmetic, pass NaNs through unchanged.
//! * Tininess is detected after rounding (§11.4).
//!
//! # Example: how an executor uses it
//!
//! ```
//! use strata_fpu::{self as fpu, Rm};
//!
//! // FADD.S f3, f1, f2 with rm = DYN and frm = RNE.
//! let (frm, rm_field) = (0u64, 7u64);
//! let rm = Rm::from_bits(if rm_field == 7 { frm } else { rm_field })
//!     .expect("reserved rounding mode: raise illegal instruction");
//! let f1 = fpu::box_s(1.0f32.to_bits());
//! let f2 = 0x0000_0000_4000_0000; // not NaN-boxed: reads as the canonical NaN
//! let (r, fl) = fpu::add_s(fpu::unbox_s(f1), fpu::unbox_s(f2), rm);
//! let mut fflags = 0u8;
//! fflags |= fl; // accrue
//! let f3 = fpu::box_s(r);
//! assert_eq!(f3, fpu::box_s(fpu::CANONICAL_NAN_S));
//! assert_eq!(fflags, 0); // a quiet NaN operand raises nothing
//!
//! // FCVT.WU.D a0, f4, RTZ: the 32-bit result is sign-extended into a0.
//! let (a0, fl) = fpu::cvt_wu_d(3e9f64.to_bits(), Rm::Rtz);
//! assert_eq!((a0, fl), (0xffff_ffff_b2d0_5e00, 0));
//! ```
//!
//! The rounding arithmetic is Berkeley SoftFloat 3 built with its RISC-V
//! specialization, through the `softfloat-wrapper` crate. SoftFloat keeps its
//! exception flags in a thread-local variable; every function here clears it
//! before the operation and reads it right after, on the same thread, so the
//! returned flags never leak between calls or threads.
//!
//! # Building
//!
//! `softfloat-sys` (pulled in by `softfloat-wrapper`) depends on the `c99`
//! crate, whose build script runs `cmake` and `make`; both must be installed
//! (Debian: `apt-get install cmake`), together with a C compiler.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use softfloat_wrapper::{ExceptionFlags, Float, RoundingMode, F16, F32, F64};

/// The accrued-exception bits of `fflags` (§11.2, Table 11.2).
pub mod flags {
    /// Inexact.
    pub const NX: u8 = 1;
    /// Underflow.
    pub const UF: u8 = 2;
    /// Overflow.
    pub const OF: u8 = 4;
    /// Divide by zero.
    pub const DZ: u8 = 8;
    /// Invalid operation.
    pub const NV: u8 = 16;
}

/// A static rounding mode (§11.2, Table 11.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rm {
    /// `000` RNE: round to nearest, ties to even.
    Rne,
    /// `001` RTZ: round towards zero.
    Rtz,
    /// `010` RDN: round down (towards −∞).
    Rdn,
    /// `011` RUP: round up (towards +∞).
    Rup,
    /// `100` RMM: round to nearest, ties to max magnitude.
    Rmm,
}

impl Rm {
    /// Decodes the 3-bit `rm` field (or the `frm` CSR) per Table 11.1.
    ///
    /// Returns `None` for the reserved encodings 5 and 6 and for 7 (`DYN`),
    /// which is only meaningful in an instruction's `rm` field and must be
    /// resolved by the hart from `frm` before calling into this crate.
    /// Bits above the low three must be zero (otherwise `None`).
    pub fn from_bits(b: u64) -> Option<Rm> {
        match b {
            0 => Some(Rm::Rne),
            1 => Some(Rm::Rtz),
            2 => Some(Rm::Rdn),
            3 => Some(Rm::Rup),
            4 => Some(Rm::Rmm),
            _ => None,
        }
    }

    /// The Table 11.1 encoding of this mode.
    pub fn to_bits(self) -> u64 {
        self as u64
    }

    fn sf(self) -> RoundingMode {
        match self {
            Rm::Rne => RoundingMode::TiesToEven,
            Rm::Rtz => RoundingMode::TowardZero,
            Rm::Rdn => RoundingMode::TowardNegative,
            Rm::Rup => RoundingMode::TowardPositive,
            Rm::Rmm => RoundingMode::TiesToAway,
        }
    }
}

/// The canonical single-precision NaN (§11.3): positive, quiet, zero payload.
pub const CANONICAL_NAN_S: u32 = 0x7fc0_0000;
/// The canonical double-precision NaN (§11.3, §12.2).
pub const CANONICAL_NAN_D: u64 = 0x7ff8_0000_0000_0000;

/// The canonical half-precision NaN (Unpriv. "Zfh"/"Zfhmin": positive,
/// quiet, zero payload).
pub const CANONICAL_NAN_H: u16 = 0x7e00;

/// Reads a half-precision operand from a 64-bit `f` register: valid only
/// if NaN-boxed (the upper 48 bits all ones, §12.2's rule for narrower
/// values), otherwise the canonical NaN.
pub fn unbox_h(reg: u64) -> u16 {
    if reg >> 16 == 0xffff_ffff_ffff {
        reg as u16
    } else {
        CANONICAL_NAN_H
    }
}

/// NaN-boxes a half-precision result: the upper 48 bits all ones.
pub fn box_h(v: u16) -> u64 {
    0xffff_ffff_ffff_0000 | v as u64
}

/// Reads a single-precision operand from a 64-bit `f` register (§12.2).
///
/// A narrower value is valid only if it is NaN-boxed, i.e. the upper 32 bits
/// are all ones; otherwise the operand is treated as the canonical NaN.
pub fn unbox_s(reg: u64) -> u32 {
    if reg >> 32 == 0xffff_ffff {
        reg as u32
    } else {
        CANONICAL_NAN_S
    }
}

/// NaN-boxes a single-precision result for writing to a 64-bit `f` register
/// (§12.2): the upper 32 bits are set to all ones.
pub fn box_s(v: u32) -> u64 {
    0xffff_ffff_0000_0000 | v as u64
}

/// Runs one SoftFloat operation with the (thread-local) exception flags
/// cleared before it, and returns its result with exactly the flags it raised,
/// translated to the `fflags` layout.
#[inline]
fn with_flags<T>(op: impl FnOnce() -> T) -> (T, u8) {
    ExceptionFlags::default().set();
    let r = op();
    let mut f = ExceptionFlags::default();
    f.get();
    let mut out = 0;
    if f.is_inexact() {
        out |= flags::NX;
    }
    if f.is_underflow() {
        out |= flags::UF;
    }
    if f.is_overflow() {
        out |= flags::OF;
    }
    if f.is_infinite() {
        out |= flags::DZ;
    }
    if f.is_invalid() {
        out |= flags::NV;
    }
    (r, out)
}

/// Bit-level facts about a format, shared by the non-rounding helpers.
trait Fmt: Float + Copy {
    type B: Copy
        + Eq
        + core::ops::BitAnd<Output = Self::B>
        + core::ops::BitOr<Output = Self::B>
        + core::ops::BitXor<Output = Self::B>
        + core::ops::Not<Output = Self::B>;
    const SIGN: Self::B;
    const EXP: Self::B;
    const FRAC: Self::B;
    const QUIET: Self::B;
    const ZERO: Self::B;
    const CANON: Self::B;
    fn wrap(b: Self::B) -> Self;
    fn raw(self) -> Self::B;
}

impl Fmt for F32 {
    type B = u32;
    const SIGN: u32 = 0x8000_0000;
    const EXP: u32 = 0x7f80_0000;
    const FRAC: u32 = 0x007f_ffff;
    const QUIET: u32 = 0x0040_0000;
    const ZERO: u32 = 0;
    const CANON: u32 = CANONICAL_NAN_S;
    fn wrap(b: u32) -> Self {
        F32::from_bits(b)
    }
    fn raw(self) -> u32 {
        self.to_bits()
    }
}

impl Fmt for F64 {
    type B = u64;
    const SIGN: u64 = 0x8000_0000_0000_0000;
    const EXP: u64 = 0x7ff0_0000_0000_0000;
    const FRAC: u64 = 0x000f_ffff_ffff_ffff;
    const QUIET: u64 = 0x0008_0000_0000_0000;
    const ZERO: u64 = 0;
    const CANON: u64 = CANONICAL_NAN_D;
    fn wrap(b: u64) -> Self {
        F64::from_bits(b)
    }
    fn raw(self) -> u64 {
        self.to_bits()
    }
}

fn is_nan<F: Fmt>(b: F::B) -> bool {
    b & F::EXP == F::EXP && b & F::FRAC != F::ZERO
}

fn is_snan<F: Fmt>(b: F::B) -> bool {
    is_nan::<F>(b) && b & F::QUIET == F::ZERO
}

fn is_zero<F: Fmt>(b: F::B) -> bool {
    b & !F::SIGN == F::ZERO
}

fn neg<F: Fmt>(b: F::B) -> F::B {
    b ^ F::SIGN
}

fn add<F: Fmt>(a: F::B, b: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).add(F::wrap(b), rm.sf()).raw())
}
fn sub<F: Fmt>(a: F::B, b: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).sub(F::wrap(b), rm.sf()).raw())
}
fn mul<F: Fmt>(a: F::B, b: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).mul(F::wrap(b), rm.sf()).raw())
}
fn div<F: Fmt>(a: F::B, b: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).div(F::wrap(b), rm.sf()).raw())
}
fn sqrt<F: Fmt>(a: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).sqrt(rm.sf()).raw())
}
/// `a*b + c` with a single rounding. Negating an operand is an exact sign
/// flip, so the four fused instructions are this with `a` and/or `c` negated.
fn fma<F: Fmt>(a: F::B, b: F::B, c: F::B, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::wrap(a).fused_mul_add(F::wrap(b), F::wrap(c), rm.sf()).raw())
}

/// FMIN/FMAX per §11.6 (ISA 20191213, IEEE 754-2019 minimumNumber /
/// maximumNumber): −0 < +0; if exactly one input is NaN the result is the
/// other input; if both are NaN the result is the canonical NaN; NV is raised
/// if either input is a signalling NaN.
fn minmax<F: Fmt>(a: F::B, b: F::B, want_max: bool) -> (F::B, u8) {
    let fl = if is_snan::<F>(a) || is_snan::<F>(b) { flags::NV } else { 0 };
    let r = match (is_nan::<F>(a), is_nan::<F>(b)) {
        (true, true) => F::CANON,
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            // a < b, with -0 < +0 (both zero and differing signs: the
            // negative one is smaller).
            let a_lt_b = if is_zero::<F>(a) && is_zero::<F>(b) {
                a & F::SIGN != F::ZERO && b & F::SIGN == F::ZERO
            } else {
                // Neither operand is NaN: the quiet comparison raises nothing.
                F::wrap(a).lt_quiet(F::wrap(b))
            };
            if a_lt_b != want_max {
                a
            } else {
                b
            }
        }
    };
    (r, fl)
}

fn feq<F: Fmt>(a: F::B, b: F::B) -> (bool, u8) {
    with_flags(|| F::wrap(a).eq(F::wrap(b)))
}
fn flt<F: Fmt>(a: F::B, b: F::B) -> (bool, u8) {
    with_flags(|| F::wrap(a).lt(F::wrap(b)))
}
fn fle<F: Fmt>(a: F::B, b: F::B) -> (bool, u8) {
    with_flags(|| F::wrap(a).le(F::wrap(b)))
}

/// FCLASS (§11.9, Table 11.5): exactly one of the ten low bits is set.
fn fclass<F: Fmt>(a: F::B) -> u64 {
    let neg = a & F::SIGN != F::ZERO;
    let exp = a & F::EXP;
    let frac = a & F::FRAC;
    let bit = if exp == F::EXP {
        if frac == F::ZERO {
            if neg {
                0
            } else {
                7
            }
        } else if a & F::QUIET != F::ZERO {
            9
        } else {
            8
        }
    } else if exp == F::ZERO {
        match (frac == F::ZERO, neg) {
            (true, true) => 3,
            (true, false) => 4,
            (false, true) => 2,
            (false, false) => 5,
        }
    } else if neg {
        1
    } else {
        6
    };
    1 << bit
}

fn sgnj<F: Fmt>(a: F::B, b: F::B) -> F::B {
    (a & !F::SIGN) | (b & F::SIGN)
}
fn sgnjn<F: Fmt>(a: F::B, b: F::B) -> F::B {
    (a & !F::SIGN) | (!b & F::SIGN)
}
fn sgnjx<F: Fmt>(a: F::B, b: F::B) -> F::B {
    a ^ (b & F::SIGN)
}

/// Sign-extends a 32-bit integer result to XLEN=64 the way FCVT.W[U].fmt
/// writes it to `rd` (§11.7: "FCVT.W[U].S ... sign-extends the 32-bit result
/// to the destination register width", also for the unsigned variant).
fn sext32(x: u32) -> u64 {
    x as i32 as i64 as u64
}

// Conversions to integers (§11.7, Table 11.4). SoftFloat's RISC-V
// specialization returns exactly the Table 11.4 values for NaN and
// out-of-range inputs (maximum for NaN and +overflow, minimum for -overflow)
// and raises NV without NX for them; `exact = true` makes in-range inexact
// conversions raise NX.
fn cvt_w<F: Fmt>(a: F::B, rm: Rm) -> (u64, u8) {
    with_flags(|| sext32(F::wrap(a).to_i32(rm.sf(), true) as u32))
}
fn cvt_wu<F: Fmt>(a: F::B, rm: Rm) -> (u64, u8) {
    with_flags(|| sext32(F::wrap(a).to_u32(rm.sf(), true)))
}
fn cvt_l<F: Fmt>(a: F::B, rm: Rm) -> (u64, u8) {
    with_flags(|| F::wrap(a).to_i64(rm.sf(), true) as u64)
}
fn cvt_lu<F: Fmt>(a: F::B, rm: Rm) -> (u64, u8) {
    with_flags(|| F::wrap(a).to_u64(rm.sf(), true))
}
fn cvt_from_w<F: Fmt>(x: u64, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::from_i32(x as u32 as i32, rm.sf()).raw())
}
fn cvt_from_wu<F: Fmt>(x: u64, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::from_u32(x as u32, rm.sf()).raw())
}
fn cvt_from_l<F: Fmt>(x: u64, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::from_i64(x as i64, rm.sf()).raw())
}
fn cvt_from_lu<F: Fmt>(x: u64, rm: Rm) -> (F::B, u8) {
    with_flags(|| F::from_u64(x, rm.sf()).raw())
}

macro_rules! format_fns {
    (
        $fmt:ty, $bits:ty, $name:literal, $sec:literal,
        add: $add:ident, sub: $sub:ident, mul: $mul:ident, div: $div:ident, sqrt: $sqrt:ident,
        fmadd: $fmadd:ident, fmsub: $fmsub:ident, fnmsub: $fnmsub:ident, fnmadd: $fnmadd:ident,
        min: $min:ident, max: $max:ident,
        feq: $feq:ident, flt: $flt:ident, fle: $fle:ident, fclass: $fclass:ident,
        sgnj: $sgnj:ident, sgnjn: $sgnjn:ident, sgnjx: $sgnjx:ident,
        cvt_w: $cvt_w:ident, cvt_wu: $cvt_wu:ident, cvt_l: $cvt_l:ident, cvt_lu: $cvt_lu:ident,
        cvt_from_w: $cvt_from_w:ident, cvt_from_wu: $cvt_from_wu:ident,
        cvt_from_l: $cvt_from_l:ident, cvt_from_lu: $cvt_from_lu:ident,
    ) => {
        #[doc = concat!("FADD.", $name, " (", $sec, "): `a + b`, rounded per `rm`.")]
        pub fn $add(a: $bits, b: $bits, rm: Rm) -> ($bits, u8) {
            add::<$fmt>(a, b, rm)
        }
        #[doc = concat!("FSUB.", $name, " (", $sec, "): `a - b`, rounded per `rm`.")]
        pub fn $sub(a: $bits, b: $bits, rm: Rm) -> ($bits, u8) {
            sub::<$fmt>(a, b, rm)
        }
        #[doc = concat!("FMUL.", $name, " (", $sec, "): `a * b`, rounded per `rm`.")]
        pub fn $mul(a: $bits, b: $bits, rm: Rm) -> ($bits, u8) {
            mul::<$fmt>(a, b, rm)
        }
        #[doc = concat!("FDIV.", $name, " (", $sec, "): `a / b`, rounded per `rm`; DZ for a finite non-zero `a` over zero.")]
        pub fn $div(a: $bits, b: $bits, rm: Rm) -> ($bits, u8) {
            div::<$fmt>(a, b, rm)
        }
        #[doc = concat!("FSQRT.", $name, " (", $sec, "): square root of `a`; NV and the canonical NaN for `a < 0` (but `sqrt(-0) = -0`).")]
        pub fn $sqrt(a: $bits, rm: Rm) -> ($bits, u8) {
            sqrt::<$fmt>(a, rm)
        }
        #[doc = concat!("FMADD.", $name, " (", $sec, "): `(a * b) + c` with a single rounding. ",
            "NV is raised for `∞ × 0` even when `c` is a quiet NaN.")]
        pub fn $fmadd(a: $bits, b: $bits, c: $bits, rm: Rm) -> ($bits, u8) {
            fma::<$fmt>(a, b, c, rm)
        }
        #[doc = concat!("FMSUB.", $name, " (", $sec, "): `(a * b) - c` with a single rounding.")]
        pub fn $fmsub(a: $bits, b: $bits, c: $bits, rm: Rm) -> ($bits, u8) {
            fma::<$fmt>(a, b, neg::<$fmt>(c), rm)
        }
        #[doc = concat!("FNMSUB.", $name, " (", $sec, "): `-(a * b) + c` with a single rounding.")]
        pub fn $fnmsub(a: $bits, b: $bits, c: $bits, rm: Rm) -> ($bits, u8) {
            fma::<$fmt>(neg::<$fmt>(a), b, c, rm)
        }
        #[doc = concat!("FNMADD.", $name, " (", $sec, "): `-(a * b) - c` with a single rounding.")]
        pub fn $fnmadd(a: $bits, b: $bits, c: $bits, rm: Rm) -> ($bits, u8) {
            fma::<$fmt>(neg::<$fmt>(a), b, neg::<$fmt>(c), rm)
        }
        #[doc = concat!("FMIN.", $name, " (", $sec, ", ISA 20191213 semantics = IEEE 754-2019 minimumNumber): ",
            "`-0.0 < +0.0`; one NaN operand gives the other operand; two NaNs give the canonical NaN; ",
            "NV if either operand is a signalling NaN.")]
        pub fn $min(a: $bits, b: $bits) -> ($bits, u8) {
            minmax::<$fmt>(a, b, false)
        }
        #[doc = concat!("FMAX.", $name, " (", $sec, ", IEEE 754-2019 maximumNumber): `+0.0 > -0.0`; NaN rules as for [`", stringify!($min), "`].")]
        pub fn $max(a: $bits, b: $bits) -> ($bits, u8) {
            minmax::<$fmt>(a, b, true)
        }
        #[doc = concat!("FEQ.", $name, " (compare instructions, §11.8/§12.6): quiet equality; NV only if an operand is a signalling NaN. Any NaN compares unequal; `-0 == +0`.")]
        pub fn $feq(a: $bits, b: $bits) -> (bool, u8) {
            feq::<$fmt>(a, b)
        }
        #[doc = concat!("FLT.", $name, " (§11.8/§12.6): signalling `a < b`; NV if either operand is any NaN (result false).")]
        pub fn $flt(a: $bits, b: $bits) -> (bool, u8) {
            flt::<$fmt>(a, b)
        }
        #[doc = concat!("FLE.", $name, " (§11.8/§12.6): signalling `a <= b`; NV if either operand is any NaN (result false).")]
        pub fn $fle(a: $bits, b: $bits) -> (bool, u8) {
            fle::<$fmt>(a, b)
        }
        #[doc = concat!("FCLASS.", $name, " (§11.9/§12.7, Table 11.5): the 10-bit class mask written to `rd`. ",
            "Bit 0 −∞, 1 negative normal, 2 negative subnormal, 3 −0, 4 +0, 5 positive subnormal, ",
            "6 positive normal, 7 +∞, 8 signalling NaN, 9 quiet NaN. Raises no flags.")]
        pub fn $fclass(a: $bits) -> u64 {
            fclass::<$fmt>(a)
        }
        #[doc = concat!("FSGNJ.", $name, " (§11.6/§12.4): `a`'s magnitude with `b`'s sign. Bit operation, no flags, NaNs pass through.")]
        pub fn $sgnj(a: $bits, b: $bits) -> $bits {
            sgnj::<$fmt>(a, b)
        }
        #[doc = concat!("FSGNJN.", $name, ": `a`'s magnitude with the opposite of `b`'s sign (`fneg` when `a == b`).")]
        pub fn $sgnjn(a: $bits, b: $bits) -> $bits {
            sgnjn::<$fmt>(a, b)
        }
        #[doc = concat!("FSGNJX.", $name, ": `a`'s magnitude with the XOR of both signs (`fabs` when `a == b`).")]
        pub fn $sgnjx(a: $bits, b: $bits) -> $bits {
            sgnjx::<$fmt>(a, b)
        }
        #[doc = concat!("FCVT.W.", $name, " (§11.7/§12.5, Table 11.4): to a signed 32-bit integer, returned sign-extended to 64 bits. ",
            "NaN and +overflow give 2³¹−1, −overflow gives −2³¹, with NV and no NX; an inexact in-range result raises NX.")]
        pub fn $cvt_w(a: $bits, rm: Rm) -> (u64, u8) {
            cvt_w::<$fmt>(a, rm)
        }
        #[doc = concat!("FCVT.WU.", $name, " (Table 11.4): to an unsigned 32-bit integer; the 32-bit result is sign-extended to 64 bits as the spec requires. ",
            "NaN and +overflow give 2³²−1 (so `u64::MAX` after sign extension), a negative input that does not round to 0 gives 0, with NV.")]
        pub fn $cvt_wu(a: $bits, rm: Rm) -> (u64, u8) {
            cvt_wu::<$fmt>(a, rm)
        }
        #[doc = concat!("FCVT.L.", $name, " (RV64, Table 11.4): to a signed 64-bit integer. NaN and +overflow give 2⁶³−1, −overflow −2⁶³, with NV.")]
        pub fn $cvt_l(a: $bits, rm: Rm) -> (u64, u8) {
            cvt_l::<$fmt>(a, rm)
        }
        #[doc = concat!("FCVT.LU.", $name, " (RV64, Table 11.4): to an unsigned 64-bit integer. NaN and +overflow give 2⁶⁴−1, negative overflow 0, with NV.")]
        pub fn $cvt_lu(a: $bits, rm: Rm) -> (u64, u8) {
            cvt_lu::<$fmt>(a, rm)
        }
        #[doc = concat!("FCVT.", $name, ".W (§11.7/§12.5): from the signed 32-bit integer in the low 32 bits of `x`.")]
        pub fn $cvt_from_w(x: u64, rm: Rm) -> ($bits, u8) {
            cvt_from_w::<$fmt>(x, rm)
        }
        #[doc = concat!("FCVT.", $name, ".WU: from the unsigned 32-bit integer in the low 32 bits of `x`.")]
        pub fn $cvt_from_wu(x: u64, rm: Rm) -> ($bits, u8) {
            cvt_from_wu::<$fmt>(x, rm)
        }
        #[doc = concat!("FCVT.", $name, ".L (RV64): from the signed 64-bit integer `x`.")]
        pub fn $cvt_from_l(x: u64, rm: Rm) -> ($bits, u8) {
            cvt_from_l::<$fmt>(x, rm)
        }
        #[doc = concat!("FCVT.", $name, ".LU (RV64): from the unsigned 64-bit integer `x`.")]
        pub fn $cvt_from_lu(x: u64, rm: Rm) -> ($bits, u8) {
            cvt_from_lu::<$fmt>(x, rm)
        }
    };
}

format_fns! {
    F32, u32, "S", "§11.6",
    add: add_s, sub: sub_s, mul: mul_s, div: div_s, sqrt: sqrt_s,
    fmadd: fmadd_s, fmsub: fmsub_s, fnmsub: fnmsub_s, fnmadd: fnmadd_s,
    min: min_s, max: max_s,
    feq: feq_s, flt: flt_s, fle: fle_s, fclass: fclass_s,
    sgnj: sgnj_s, sgnjn: sgnjn_s, sgnjx: sgnjx_s,
    cvt_w: cvt_w_s, cvt_wu: cvt_wu_s, cvt_l: cvt_l_s, cvt_lu: cvt_lu_s,
    cvt_from_w: cvt_s_w, cvt_from_wu: cvt_s_wu, cvt_from_l: cvt_s_l, cvt_from_lu: cvt_s_lu,
}

format_fns! {
    F64, u64, "D", "§12.4",
    add: add_d, sub: sub_d, mul: mul_d, div: div_d, sqrt: sqrt_d,
    fmadd: fmadd_d, fmsub: fmsub_d, fnmsub: fnmsub_d, fnmadd: fnmadd_d,
    min: min_d, max: max_d,
    feq: feq_d, flt: flt_d, fle: fle_d, fclass: fclass_d,
    sgnj: sgnj_d, sgnjn: sgnjn_d, sgnjx: sgnjx_d,
    cvt_w: cvt_w_d, cvt_wu: cvt_wu_d, cvt_l: cvt_l_d, cvt_lu: cvt_lu_d,
    cvt_from_w: cvt_d_w, cvt_from_wu: cvt_d_wu, cvt_from_l: cvt_d_l, cvt_from_lu: cvt_d_lu,
}

/// FCVT.S.D (§12.5): narrows a double to single precision, rounded per `rm`.
/// A NaN input gives the canonical single NaN (NV if it was signalling).
pub fn cvt_s_d(a: u64, rm: Rm) -> (u32, u8) {
    with_flags(|| F64::from_bits(a).to_f32(rm.sf()).to_bits())
}

/// FCVT.D.S (§12.5): widens a single to double precision. Always exact; a NaN
/// input gives the canonical double NaN (NV if it was signalling). No rounding
/// mode is needed (the encoding's `rm` field has no effect).
pub fn cvt_d_s(a: u32) -> (u64, u8) {
    with_flags(|| F32::from_bits(a).to_f64(RoundingMode::TiesToEven).to_bits())
}

/// FCVT.S.H (Zfhmin): widens a half to single precision. Always exact; a
/// NaN input gives the canonical single NaN (NV if it was signalling).
pub fn cvt_s_h(a: u16) -> (u32, u8) {
    with_flags(|| F16::from_bits(a).to_f32(RoundingMode::TiesToEven).to_bits())
}

/// FCVT.D.H (Zfhmin): widens a half to double precision, exactly.
pub fn cvt_d_h(a: u16) -> (u64, u8) {
    with_flags(|| F16::from_bits(a).to_f64(RoundingMode::TiesToEven).to_bits())
}

/// FCVT.H.S (Zfhmin): narrows a single to half precision, rounded per
/// `rm`; a NaN gives the canonical half NaN.
pub fn cvt_h_s(a: u32, rm: Rm) -> (u16, u8) {
    with_flags(|| F32::from_bits(a).to_f16(rm.sf()).to_bits())
}

/// FCVT.H.D (Zfhmin): narrows a double to half precision, rounded per
/// `rm`.
pub fn cvt_h_d(a: u64, rm: Rm) -> (u16, u8) {
    with_flags(|| F64::from_bits(a).to_f16(rm.sf()).to_bits())
}

#[cfg(test)]
mod half_tests {
    use super::*;

    /// Values worked from the binary16 format (1 sign, 5 exponent bits
    /// with bias 15, 10 fraction bits), not from SoftFloat.
    #[test]
    fn half_conversions() {
        let (nx, of, uf, nv) = (1u8, 4u8, 2u8, 16u8);
        // 1.0 = 0x3c00; 65504 (largest finite) = 0x7bff.
        assert_eq!(cvt_s_h(0x3c00), (0x3f80_0000, 0));
        assert_eq!(cvt_d_h(0x7bff), (0x40ef_fc00_0000_0000, 0));
        // Smallest subnormal 2^-24 = 0x0001, exactly.
        assert_eq!(cvt_s_h(0x0001), (0x3380_0000, 0));
        assert_eq!(cvt_h_s(0x3f80_0000, Rm::Rne), (0x3c00, 0));
        // 65520 rounds to infinity under RNE (halfway past 65504), to
        // 65504 under RTZ.
        assert_eq!(cvt_h_s(0x477f_f000, Rm::Rne), (0x7c00, of | nx));
        assert_eq!(cvt_h_s(0x477f_f000, Rm::Rtz), (0x7bff, nx));
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: even is 1.
        assert_eq!(cvt_h_d(0x3ff0_0200_0000_0000, Rm::Rne), (0x3c00, nx));
        assert_eq!(cvt_h_d(0x3ff0_0200_0000_0000, Rm::Rup), (0x3c01, nx));
        // 2^-25 underflows: to zero under RNE (tie to even), inexact.
        assert_eq!(cvt_h_s(0x3300_0000, Rm::Rne), (0x0000, uf | nx));
        // NaNs: a signalling one raises NV; both give the canonical NaN.
        assert_eq!(cvt_h_s(0x7f80_0001, Rm::Rne), (CANONICAL_NAN_H, nv));
        assert_eq!(cvt_s_h(0x7c01), (CANONICAL_NAN_S, nv));
        assert_eq!(cvt_d_h(0x7e01), (CANONICAL_NAN_D, 0));
        // Boxing.
        assert_eq!(unbox_h(box_h(0x1234)), 0x1234);
        assert_eq!(unbox_h(0xffff_ffff_0000_1234), CANONICAL_NAN_H, "a single-boxed value is not a half");
    }
}

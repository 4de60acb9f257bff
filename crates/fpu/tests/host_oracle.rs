//! Differential tests against the host CPU's IEEE 754 arithmetic.
//!
//! x86-64 SSE/FMA3 arithmetic is correctly rounded, its MXCSR selects the
//! four directed/nearest-even rounding modes RISC-V shares with it, and it detects tininess after rounding
//! like RISC-V (§11.4). Each host operation runs in a single `asm!` block that
//! loads a fresh MXCSR (all exceptions masked, flags clear, DAZ/FTZ off), runs
//! one instruction, reads back the sticky flags, and restores the caller's
//! MXCSR, so the compiler cannot move or fold the operation across the mode
//! switch.
//!
//! Where x86 and RISC-V differ by design, the oracle encodes the RISC-V rule
//! from the spec, not from this crate:
//! * NaN results: x86 propagates payloads, RISC-V returns the canonical NaN
//!   (§11.3): our result must be canonical, the host's merely some NaN.
//! * Float-to-integer conversions of NaN / out-of-range values: x86 returns
//!   the "integer indefinite" value, RISC-V the Table 11.4 values.
//! * x86 has no unsigned conversions without AVX-512: those oracles go
//!   through the 64-bit signed instructions (exact for the 32-bit unsigned
//!   range) and range-check against Table 11.4.
//! * RMM has no x86 mode; the RMM tests at the end derive it from the
//!   host's RNE, RDN and RUP results plus an exact tie test.
//! * FMA of ∞ × 0 with a quiet-NaN addend: x86 raises nothing, RISC-V NV.
#![cfg(target_arch = "x86_64")]

use core::arch::asm;
use proptest::prelude::{Rng as _, RngCore};
use proptest::test_runner::{RngAlgorithm, TestRng};
use strata_fpu::{self as fpu, flags, Rm};

// ---------------------------------------------------------------------------
// Host oracle primitives.

/// MXCSR rounding-control values (bits 13-14) for the modes x86 has.
const MODES: [(Rm, u32); 4] = [(Rm::Rne, 0), (Rm::Rdn, 1), (Rm::Rup, 2), (Rm::Rtz, 3)];

fn mxcsr_for(rc: u32) -> u32 {
    // All six exception masks set (bits 7-12), sticky flags clear, DAZ and
    // FTZ clear.
    0x1f80 | (rc << 13)
}

/// MXCSR sticky flags -> fflags. DE (bit 1, "denormal operand") has no
/// RISC-V counterpart and is dropped.
fn x86_flags(csr: u32) -> u8 {
    let mut f = 0;
    if csr & 1 != 0 {
        f |= flags::NV;
    }
    if csr & 4 != 0 {
        f |= flags::DZ;
    }
    if csr & 8 != 0 {
        f |= flags::OF;
    }
    if csr & 16 != 0 {
        f |= flags::UF;
    }
    if csr & 32 != 0 {
        f |= flags::NX;
    }
    f
}

fn require_fma() {
    assert!(
        std::arch::is_x86_feature_detected!("fma"),
        "the FMA host oracle needs FMA3, which this CPU lacks: this test cannot check fused multiply-add"
    );
}

/// Wraps one instruction in MXCSR save / load / run / read back / restore.
/// `$x` is the in/out xmm operand, `$rest` further operands.
macro_rules! with_mxcsr {
    ($rc:expr, [$($ins:literal),+], $($ops:tt)*) => {{
        let cin: u32 = mxcsr_for($rc);
        let mut cout: u32 = 0;
        let mut save: u32 = 0;
        // SAFETY: the block only touches the three u32 locals it is given
        // pointers to, the registers named as operands, and MXCSR, which it
        // restores to the caller's value before returning. The instructions
        // are SSE2 (baseline on x86-64) or FMA3, whose presence the FMA tests
        // assert with `require_fma` before calling in.
        unsafe {
            asm!(
                "stmxcsr [{save}]",
                "ldmxcsr [{cin}]",
                $($ins,)+
                "stmxcsr [{cout}]",
                "ldmxcsr [{save}]",
                save = in(reg) &mut save as *mut u32,
                cin = in(reg) &cin as *const u32,
                cout = in(reg) &mut cout as *mut u32,
                $($ops)*
                options(nostack),
            );
        }
        x86_flags(cout)
    }};
}

macro_rules! host_bin {
    ($name:ident, $f:ty, $bits:ty, $ins:literal) => {
        fn $name(a: $bits, b: $bits, rc: u32) -> ($bits, u8) {
            let mut x = <$f>::from_bits(a);
            let y = <$f>::from_bits(b);
            let fl = with_mxcsr!(rc, [$ins], a = inout(xmm_reg) x, b = in(xmm_reg) y,);
            (x.to_bits(), fl)
        }
    };
}
host_bin!(h_add_s, f32, u32, "addss {a}, {b}");
host_bin!(h_sub_s, f32, u32, "subss {a}, {b}");
host_bin!(h_mul_s, f32, u32, "mulss {a}, {b}");
host_bin!(h_div_s, f32, u32, "divss {a}, {b}");
host_bin!(h_add_d, f64, u64, "addsd {a}, {b}");
host_bin!(h_sub_d, f64, u64, "subsd {a}, {b}");
host_bin!(h_mul_d, f64, u64, "mulsd {a}, {b}");
host_bin!(h_div_d, f64, u64, "divsd {a}, {b}");

fn h_sqrt_s(a: u32, rc: u32) -> (u32, u8) {
    let mut x = f32::from_bits(a);
    let fl = with_mxcsr!(rc, ["sqrtss {a}, {a}"], a = inout(xmm_reg) x,);
    (x.to_bits(), fl)
}
fn h_sqrt_d(a: u64, rc: u32) -> (u64, u8) {
    let mut x = f64::from_bits(a);
    let fl = with_mxcsr!(rc, ["sqrtsd {a}, {a}"], a = inout(xmm_reg) x,);
    (x.to_bits(), fl)
}

// The 231 forms compute c = ±(a*b) ± c. Note the naming clash: x86's
// "fnmadd" is -(a*b)+c, which is RISC-V's FNMSUB, and x86's "fnmsub" is
// -(a*b)-c, RISC-V's FNMADD.
macro_rules! host_fma {
    ($name:ident, $f:ty, $bits:ty, $ins:literal) => {
        fn $name(a: $bits, b: $bits, c: $bits, rc: u32) -> ($bits, u8) {
            let x = <$f>::from_bits(a);
            let y = <$f>::from_bits(b);
            let mut z = <$f>::from_bits(c);
            let fl = with_mxcsr!(
                rc,
                [$ins],
                a = in(xmm_reg) x,
                b = in(xmm_reg) y,
                c = inout(xmm_reg) z,
            );
            (z.to_bits(), fl)
        }
    };
}
host_fma!(h_fmadd_s, f32, u32, "vfmadd231ss {c}, {a}, {b}");
host_fma!(h_fmsub_s, f32, u32, "vfmsub231ss {c}, {a}, {b}");
host_fma!(h_fnmsub_s, f32, u32, "vfnmadd231ss {c}, {a}, {b}");
host_fma!(h_fnmadd_s, f32, u32, "vfnmsub231ss {c}, {a}, {b}");
host_fma!(h_fmadd_d, f64, u64, "vfmadd231sd {c}, {a}, {b}");
host_fma!(h_fmsub_d, f64, u64, "vfmsub231sd {c}, {a}, {b}");
host_fma!(h_fnmsub_d, f64, u64, "vfnmadd231sd {c}, {a}, {b}");
host_fma!(h_fnmadd_d, f64, u64, "vfnmsub231sd {c}, {a}, {b}");

/// Float -> signed 64-bit integer with MXCSR rounding (cvtss2si / cvtsd2si).
/// Returns None for x86's invalid case (NaN or out of i64 range).
fn h_to_i64(a: u64, single: bool, rc: u32) -> (Option<i64>, u8) {
    let mut r: i64 = 0;
    let fl = if single {
        let x = f32::from_bits(a as u32);
        with_mxcsr!(rc, ["cvtss2si {r}, {a}"], a = in(xmm_reg) x, r = out(reg) r,)
    } else {
        let x = f64::from_bits(a);
        with_mxcsr!(rc, ["cvtsd2si {r}, {a}"], a = in(xmm_reg) x, r = out(reg) r,)
    };
    if fl & flags::NV != 0 {
        assert_eq!(r, i64::MIN, "x86 integer indefinite");
        (None, fl)
    } else {
        (Some(r), fl)
    }
}

/// Float -> signed 32-bit integer with MXCSR rounding.
fn h_to_i32(a: u64, single: bool, rc: u32) -> (Option<i32>, u8) {
    let mut r: u32 = 0;
    let fl = if single {
        let x = f32::from_bits(a as u32);
        with_mxcsr!(rc, ["cvtss2si {r:e}, {a}"], a = in(xmm_reg) x, r = out(reg) r,)
    } else {
        let x = f64::from_bits(a);
        with_mxcsr!(rc, ["cvtsd2si {r:e}, {a}"], a = in(xmm_reg) x, r = out(reg) r,)
    };
    if fl & flags::NV != 0 {
        assert_eq!(r, 0x8000_0000, "x86 integer indefinite");
        (None, fl)
    } else {
        (Some(r as i32), fl)
    }
}

/// Signed 64-bit integer -> float with MXCSR rounding (cvtsi2ss / cvtsi2sd).
fn h_from_i64(x: i64, single: bool, rc: u32) -> (u64, u8) {
    if single {
        let mut r = 0f32;
        let fl = with_mxcsr!(rc, ["cvtsi2ss {r}, {x}"], x = in(reg) x, r = inout(xmm_reg) r,);
        (r.to_bits() as u64, fl)
    } else {
        let mut r = 0f64;
        let fl = with_mxcsr!(rc, ["cvtsi2sd {r}, {x}"], x = in(reg) x, r = inout(xmm_reg) r,);
        (r.to_bits(), fl)
    }
}

fn h_s_to_d(a: u32, rc: u32) -> (u64, u8) {
    let x = f32::from_bits(a);
    let mut r = 0f64;
    let fl = with_mxcsr!(rc, ["cvtss2sd {r}, {a}"], a = in(xmm_reg) x, r = inout(xmm_reg) r,);
    (r.to_bits(), fl)
}
fn h_d_to_s(a: u64, rc: u32) -> (u32, u8) {
    let x = f64::from_bits(a);
    let mut r = 0f32;
    let fl = with_mxcsr!(rc, ["cvtsd2ss {r}, {a}"], a = in(xmm_reg) x, r = inout(xmm_reg) r,);
    (r.to_bits(), fl)
}

/// (ucomis / comis) -> (eq, lt, le, flags). `signalling` selects comis.
fn h_cmp(a: u64, b: u64, single: bool, signalling: bool) -> (bool, bool, bool, u8) {
    let (mut z, mut p, mut c) = (0u8, 0u8, 0u8);
    let fl = match (single, signalling) {
        (true, false) => {
            let (x, y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
            with_mxcsr!(0, ["ucomiss {a}, {b}", "sete {z}", "setp {p}", "setb {c}"],
                a = in(xmm_reg) x, b = in(xmm_reg) y,
                z = out(reg_byte) z, p = out(reg_byte) p, c = out(reg_byte) c,)
        }
        (true, true) => {
            let (x, y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
            with_mxcsr!(0, ["comiss {a}, {b}", "sete {z}", "setp {p}", "setb {c}"],
                a = in(xmm_reg) x, b = in(xmm_reg) y,
                z = out(reg_byte) z, p = out(reg_byte) p, c = out(reg_byte) c,)
        }
        (false, false) => {
            let (x, y) = (f64::from_bits(a), f64::from_bits(b));
            with_mxcsr!(0, ["ucomisd {a}, {b}", "sete {z}", "setp {p}", "setb {c}"],
                a = in(xmm_reg) x, b = in(xmm_reg) y,
                z = out(reg_byte) z, p = out(reg_byte) p, c = out(reg_byte) c,)
        }
        (false, true) => {
            let (x, y) = (f64::from_bits(a), f64::from_bits(b));
            with_mxcsr!(0, ["comisd {a}, {b}", "sete {z}", "setp {p}", "setb {c}"],
                a = in(xmm_reg) x, b = in(xmm_reg) y,
                z = out(reg_byte) z, p = out(reg_byte) p, c = out(reg_byte) c,)
        }
    };
    // Unordered sets ZF = PF = CF = 1; less: CF; equal: ZF.
    let ordered = p == 0;
    (ordered && z != 0, ordered && c != 0, ordered && (c != 0 || z != 0), fl)
}

// ---------------------------------------------------------------------------
// Operand generation.

/// Operands come from proptest's ChaCha generator, seeded per run
/// (`strata_testkit::prop::seed`: printed, and taken from `STRATA_SEED` to
/// replay a run) and per generator (`stream`). These tests check millions
/// of operand tuples against the host; a failure already names the one
/// tuple (two or three floats) that disagrees, so there is nothing for a
/// shrinker to make smaller, and one proptest case per tuple would cost
/// more than the checks themselves.
struct Rng(TestRng);
impl Rng {
    fn new(stream: u64) -> Rng {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(strata_testkit::prop::seed);
        eprintln!(
            "operands: seed {seed:#x} stream {stream:#x} (rerun with {}={seed:#x})",
            strata_testkit::prop::SEED_VAR
        );
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&stream.to_le_bytes());
        Rng(TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }
}

#[derive(Clone, Copy)]
struct Fmt {
    ebits: u32,
    fbits: u32,
}
const S: Fmt = Fmt { ebits: 8, fbits: 23 };
const D: Fmt = Fmt { ebits: 11, fbits: 52 };

impl Fmt {
    fn emax(self) -> u64 {
        (1 << self.ebits) - 1
    }
    fn bias(self) -> u64 {
        (1 << (self.ebits - 1)) - 1
    }
    fn fmask(self) -> u64 {
        (1 << self.fbits) - 1
    }
    fn sign(self) -> u64 {
        1 << (self.ebits + self.fbits)
    }
    fn make(self, neg: bool, exp: u64, frac: u64) -> u64 {
        (if neg { self.sign() } else { 0 }) | (exp << self.fbits) | (frac & self.fmask())
    }
    fn is_nan(self, v: u64) -> bool {
        (v >> self.fbits) & self.emax() == self.emax() && v & self.fmask() != 0
    }
    fn canonical_nan(self) -> u64 {
        self.make(false, self.emax(), 1 << (self.fbits - 1))
    }
    fn encode_f64(self, x: f64) -> u64 {
        if self.fbits == 23 {
            (x as f32).to_bits() as u64
        } else {
            x.to_bits()
        }
    }

    /// Zeros, subnormals, normals at the extremes, infinities, quiet and
    /// signalling NaNs (with payloads and both signs), and values on integer
    /// and rounding boundaries.
    fn edges(self) -> Vec<u64> {
        let (emax, bias, fm) = (self.emax(), self.bias(), self.fmask());
        let q = 1 << (self.fbits - 1);
        let mut v = vec![];
        for neg in [false, true] {
            v.extend([
                self.make(neg, 0, 0), // zero
                self.make(neg, 0, 1), // min subnormal
                self.make(neg, 0, 2),
                self.make(neg, 0, q),  // half of min normal
                self.make(neg, 0, fm), // max subnormal
                self.make(neg, 1, 0),  // min normal
                self.make(neg, 1, 1),
                self.make(neg, emax - 1, fm), // max normal
                self.make(neg, emax - 1, fm - 1),
                self.make(neg, emax - 1, 0),
                self.make(neg, emax, 0),                     // infinity
                self.make(neg, emax, q),                     // canonical-payload qNaN
                self.make(neg, emax, q | 0x1234),            // qNaN with payload
                self.make(neg, emax, 1),                     // sNaN
                self.make(neg, emax, q >> 1),                // sNaN
                self.make(neg, bias, 0),                     // 1.0
                self.make(neg, bias, 1),                     // 1 + ulp
                self.make(neg, bias - 1, fm),                // 1 - ulp/2
                self.make(neg, bias - 1, 0),                 // 0.5
                self.make(neg, bias, q),                     // 1.5
                self.make(neg, bias + 1, q >> 1),            // 2.5
                self.make(neg, bias + 1, q),                 // 3.0
                self.make(neg, bias - 2, 0),                 // 0.25
                self.make(neg, bias + self.fbits as u64, 0), // 2^p-1: last exact-integer step
                self.make(neg, bias + self.fbits as u64, fm),
                self.make(neg, bias + self.fbits as u64 + 1, 0),
                self.make(neg, bias + 31, 0),  // 2^31
                self.make(neg, bias + 30, fm), // just below 2^31
                self.make(neg, bias + 32, 0),  // 2^32
                self.make(neg, bias + 31, fm), // just below 2^32
                self.make(neg, bias + 63, 0),  // 2^63
                self.make(neg, bias + 62, fm), // just below 2^63
                self.make(neg, bias + 64, 0),  // 2^64
                self.make(neg, bias + 63, fm), // just below 2^64
            ]);
        }
        if self.fbits == 52 {
            // Doubles close to the i32/u32 limits, where a fraction matters.
            for x in [
                2147483647.5,
                2147483647.4,
                2147483647.6,
                2147483648.5,
                -2147483648.5,
                -2147483648.4,
                -2147483648.6,
                -2147483649.0,
                4294967295.5,
                4294967295.4,
                4294967296.0,
                -0.4,
                -0.5,
                -0.6,
                -1.0,
                0.4,
                0.6,
            ] {
                v.push(self.encode_f64(x));
            }
        }
        v
    }

    fn random(self, rng: &mut Rng, edges: &[u64]) -> u64 {
        let neg = rng.next() & 1 != 0;
        match rng.below(10) {
            0 => edges[rng.below(edges.len() as u64) as usize],
            1..=3 => rng.next() & (self.sign() | (self.sign() - 1)),
            _ => {
                let emax = self.emax();
                let exp = match rng.below(5) {
                    0 => rng.below(3),                     // subnormal / tiny
                    1 => emax - 1 - rng.below(3),          // huge
                    2 => self.bias() - 10 + rng.below(20), // near 1
                    3 => self.bias() + 20 + rng.below(48), // integer-conversion range
                    _ => rng.below(emax),                  // any finite
                };
                let frac = match rng.below(5) {
                    0 => 0,
                    1 => self.fmask(),
                    2 => 1 << rng.below(self.fbits as u64), // one bit
                    3 => self.fmask() ^ (1 << rng.below(self.fbits as u64)),
                    _ => rng.next(),
                };
                self.make(neg, exp, frac)
            }
        }
    }

    /// A value whose exponent is within a few of `a`'s: exercises
    /// cancellation in add/sub and ties in rounding.
    fn near(self, rng: &mut Rng, a: u64) -> u64 {
        let exp = (a >> self.fbits) & self.emax();
        let e = (exp as i64 + rng.below(2 * (self.fbits as u64 + 3)) as i64 - (self.fbits as i64 + 3))
            .clamp(0, self.emax() as i64 - 1) as u64;
        let frac = match rng.below(3) {
            0 => a,                       // same significand
            1 => a ^ (1 << rng.below(4)), // differs in the last bits
            _ => rng.next(),
        };
        self.make(rng.next() & 1 != 0, e, frac)
    }
}

// ---------------------------------------------------------------------------
// Comparison of one float result against the oracle.

struct Failures {
    what: &'static str,
    list: Vec<String>,
    checked: u64,
    /// Union of all flags the oracle produced: `done` requires the expected
    /// ones to have come up, so a generator that never reaches (say)
    /// underflow cannot make the test pass vacuously.
    seen: u8,
    /// How many oracle results were NaN.
    nans: u64,
}

impl Failures {
    fn new(what: &'static str) -> Self {
        Failures { what, list: vec![], checked: 0, seen: 0, nans: 0 }
    }
    fn fail(&mut self, msg: String) {
        if self.list.len() < 20 {
            self.list.push(msg);
        } else if self.list.len() == 20 {
            self.list.push("...".into());
        }
    }
    /// Float result: identical bits and flags, except that a NaN result must
    /// be the canonical NaN on our side and any NaN on the host's.
    fn float(&mut self, f: Fmt, ctx: &dyn Fn() -> String, ours: (u64, u8), host: (u64, u8)) {
        self.checked += 1;
        self.seen |= host.1;
        self.nans += f.is_nan(host.0) as u64;
        let ok_val = if f.is_nan(host.0) { ours.0 == f.canonical_nan() } else { ours.0 == host.0 };
        if !ok_val || ours.1 != host.1 {
            self.fail(format!(
                "{}: ours {:#x} flags {:#07b}, host {:#x} flags {:#07b}",
                ctx(),
                ours.0,
                ours.1,
                host.0,
                host.1
            ));
        }
    }
    fn int(&mut self, ctx: &dyn Fn() -> String, ours: (u64, u8), want: (u64, u8)) {
        self.checked += 1;
        self.seen |= want.1;
        if ours != want {
            self.fail(format!(
                "{}: ours {:#x} flags {:#07b}, expected {:#x} flags {:#07b}",
                ctx(),
                ours.0,
                ours.1,
                want.0,
                want.1
            ));
        }
    }
    fn done(self, must_see: u8) {
        assert!(self.checked > 0, "{}: nothing was checked", self.what);
        assert!(
            self.seen & must_see == must_see,
            "{}: the operands never produced flags {:#07b} (saw {:#07b}): widen the generator",
            self.what,
            must_see,
            self.seen
        );
        assert!(
            self.list.is_empty(),
            "{}: {} mismatches (of {} checked):\n{}",
            self.what,
            self.list.len(),
            self.checked,
            self.list.join("\n")
        );
        eprintln!(
            "{}: {} cases agree with the host (flags seen {:#07b}, {} NaN results)",
            self.what, self.checked, self.seen, self.nans
        );
    }
}

const RANDOM_PER_MODE: usize = 200_000;

/// Operand pairs: every pair of edge values, then random pairs (half of them
/// with nearby exponents).
fn pairs(f: Fmt, seed: u64) -> Vec<(u64, u64)> {
    let e = f.edges();
    let mut v: Vec<(u64, u64)> = e.iter().flat_map(|&a| e.iter().map(move |&b| (a, b))).collect();
    let mut rng = Rng::new(seed);
    for _ in 0..RANDOM_PER_MODE {
        let a = f.random(&mut rng, &e);
        let b = if rng.next() & 1 == 0 { f.near(&mut rng, a) } else { f.random(&mut rng, &e) };
        v.push((a, b));
    }
    v
}

/// A sum that is tiny is exact, so add/sub never underflow.
const ADD_FLAGS: u8 = flags::NX | flags::OF | flags::NV;

type Bin<B> = fn(B, B, Rm) -> (B, u8);
type HostBin<B> = fn(B, B, u32) -> (B, u8);

fn check_bin_s(what: &'static str, ours: Bin<u32>, host: HostBin<u32>, must_see: u8) {
    let mut fl = Failures::new(what);
    for (rm, rc) in MODES {
        for (a, b) in pairs(S, 0x5eed ^ rc as u64) {
            let (a, b) = (a as u32, b as u32);
            let o = ours(a, b, rm);
            let h = host(a, b, rc);
            fl.float(S, &|| format!("{what}({a:#010x}, {b:#010x}) {rm:?}"), (o.0 as u64, o.1), (h.0 as u64, h.1));
        }
    }
    fl.done(must_see);
}

fn check_bin_d(what: &'static str, ours: Bin<u64>, host: HostBin<u64>, must_see: u8) {
    let mut fl = Failures::new(what);
    for (rm, rc) in MODES {
        for (a, b) in pairs(D, 0xd00d ^ rc as u64) {
            let o = ours(a, b, rm);
            let h = host(a, b, rc);
            fl.float(D, &|| format!("{what}({a:#018x}, {b:#018x}) {rm:?}"), o, h);
        }
    }
    fl.done(must_see);
}

#[test]
fn add_sub_mul_div_s() {
    check_bin_s("add_s", fpu::add_s, h_add_s, ADD_FLAGS);
    check_bin_s("sub_s", fpu::sub_s, h_sub_s, ADD_FLAGS);
    check_bin_s("mul_s", fpu::mul_s, h_mul_s, ADD_FLAGS | flags::UF);
    check_bin_s("div_s", fpu::div_s, h_div_s, ADD_FLAGS | flags::UF | flags::DZ);
}

#[test]
fn add_sub_mul_div_d() {
    check_bin_d("add_d", fpu::add_d, h_add_d, ADD_FLAGS);
    check_bin_d("sub_d", fpu::sub_d, h_sub_d, ADD_FLAGS);
    check_bin_d("mul_d", fpu::mul_d, h_mul_d, ADD_FLAGS | flags::UF);
    check_bin_d("div_d", fpu::div_d, h_div_d, ADD_FLAGS | flags::UF | flags::DZ);
}

fn singles(f: Fmt, seed: u64, n: usize) -> Vec<u64> {
    let e = f.edges();
    let mut rng = Rng::new(seed);
    let mut v = e.clone();
    v.extend((0..n).map(|_| f.random(&mut rng, &e)));
    v
}

#[test]
fn sqrt_s_d() {
    let mut fl = Failures::new("sqrt_s");
    for (rm, rc) in MODES {
        for a in singles(S, 7 + rc as u64, RANDOM_PER_MODE) {
            let a = a as u32;
            let o = fpu::sqrt_s(a, rm);
            let h = h_sqrt_s(a, rc);
            fl.float(S, &|| format!("sqrt_s({a:#010x}) {rm:?}"), (o.0 as u64, o.1), (h.0 as u64, h.1));
        }
    }
    fl.done(flags::NX | flags::NV);
    let mut fl = Failures::new("sqrt_d");
    for (rm, rc) in MODES {
        for a in singles(D, 9 + rc as u64, RANDOM_PER_MODE) {
            let o = fpu::sqrt_d(a, rm);
            let h = h_sqrt_d(a, rc);
            fl.float(D, &|| format!("sqrt_d({a:#018x}) {rm:?}"), o, h);
        }
    }
    fl.done(flags::NX | flags::NV);
}

/// Operand triples for the fused ops: edge-value triples from a reduced edge
/// set, then random triples, a third of which have `c ≈ -(a*b)` so that the
/// sum cancels and only a single rounding gets the low bits right.
fn triples(f: Fmt, seed: u64) -> Vec<(u64, u64, u64)> {
    let e = f.edges();
    let few: Vec<u64> = e.iter().copied().step_by(3).collect();
    let mut v = vec![];
    for &a in &few {
        for &b in &few {
            for &c in &few {
                v.push((a, b, c));
            }
        }
    }
    let mut rng = Rng::new(seed);
    for _ in 0..RANDOM_PER_MODE {
        let a = f.random(&mut rng, &e);
        let b = if rng.below(2) == 0 { f.near(&mut rng, a) } else { f.random(&mut rng, &e) };
        let c = match rng.below(3) {
            0 => {
                // -(a*b) computed in f64 then narrowed, nudged by a few ulps.
                let (x, y) = if f.fbits == 23 {
                    (f32::from_bits(a as u32) as f64, f32::from_bits(b as u32) as f64)
                } else {
                    (f64::from_bits(a), f64::from_bits(b))
                };
                let p = f.encode_f64(-(x * y));
                p.wrapping_add(rng.below(5)).wrapping_sub(2) & (f.sign() | (f.sign() - 1))
            }
            1 => f.near(&mut rng, a),
            _ => f.random(&mut rng, &e),
        };
        v.push((a, b, c));
    }
    v
}

/// §11.6: "The fused multiply-add instructions must set the invalid
/// operation exception flag when the multiplicands are ∞ and zero, even when
/// the addend is a quiet NaN." IEEE 754 leaves that case to the
/// implementation and x86 raises nothing, so the oracle applies the RISC-V
/// rule itself: canonical NaN with NV.
fn fma_nv_rule(f: Fmt, a: u64, b: u64, c: u64, host: (u64, u8)) -> (u64, u8) {
    let mag = |v: u64| v & (f.sign() - 1);
    let inf = f.make(false, f.emax(), 0);
    let inf_times_zero = (mag(a) == inf && mag(b) == 0) || (mag(a) == 0 && mag(b) == inf);
    if inf_times_zero && f.is_nan(c) {
        (f.canonical_nan(), flags::NV)
    } else {
        host
    }
}

type Tri<B> = fn(B, B, B, Rm) -> (B, u8);
type HostTri<B> = fn(B, B, B, u32) -> (B, u8);

#[test]
fn fused_s() {
    require_fma();
    let ops: [(&'static str, Tri<u32>, HostTri<u32>); 4] = [
        ("fmadd_s", fpu::fmadd_s, h_fmadd_s),
        ("fmsub_s", fpu::fmsub_s, h_fmsub_s),
        ("fnmsub_s", fpu::fnmsub_s, h_fnmsub_s),
        ("fnmadd_s", fpu::fnmadd_s, h_fnmadd_s),
    ];
    for (what, ours, host) in ops {
        let mut fl = Failures::new(what);
        for (rm, rc) in MODES {
            for (a, b, c) in triples(S, 0xf3a ^ rc as u64) {
                let (a, b, c) = (a as u32, b as u32, c as u32);
                let o = ours(a, b, c, rm);
                let h = host(a, b, c, rc);
                let h = fma_nv_rule(S, a as u64, b as u64, c as u64, (h.0 as u64, h.1));
                fl.float(S, &|| format!("{what}({a:#010x}, {b:#010x}, {c:#010x}) {rm:?}"), (o.0 as u64, o.1), h);
            }
        }
        fl.done(flags::NX | flags::UF | flags::OF | flags::NV);
    }
}

#[test]
fn fused_d() {
    require_fma();
    let ops: [(&'static str, Tri<u64>, HostTri<u64>); 4] = [
        ("fmadd_d", fpu::fmadd_d, h_fmadd_d),
        ("fmsub_d", fpu::fmsub_d, h_fmsub_d),
        ("fnmsub_d", fpu::fnmsub_d, h_fnmsub_d),
        ("fnmadd_d", fpu::fnmadd_d, h_fnmadd_d),
    ];
    for (what, ours, host) in ops {
        let mut fl = Failures::new(what);
        for (rm, rc) in MODES {
            for (a, b, c) in triples(D, 0xf3d ^ rc as u64) {
                let o = ours(a, b, c, rm);
                let h = fma_nv_rule(D, a, b, c, host(a, b, c, rc));
                fl.float(D, &|| format!("{what}({a:#018x}, {b:#018x}, {c:#018x}) {rm:?}"), o, h);
            }
        }
        fl.done(flags::NX | flags::UF | flags::OF | flags::NV);
    }
}

#[test]
fn float_float_conversions() {
    let mut fl = Failures::new("cvt_d_s");
    for a in singles(S, 11, RANDOM_PER_MODE) {
        let a = a as u32;
        let h = h_s_to_d(a, 0);
        fl.float(D, &|| format!("cvt_d_s({a:#010x})"), fpu::cvt_d_s(a), h);
    }
    fl.done(flags::NV);
    let mut fl = Failures::new("cvt_s_d");
    for (rm, rc) in MODES {
        let mut v = singles(D, 13 + rc as u64, RANDOM_PER_MODE);
        // Doubles in and around the single range, where narrowing rounds,
        // overflows or underflows.
        let mut rng = Rng::new(17 + rc as u64);
        let e = S.edges();
        for _ in 0..RANDOM_PER_MODE {
            let s = f32::from_bits(S.random(&mut rng, &e) as u32) as f64;
            v.push(s.to_bits() ^ (rng.next() & 0x1fff_ffff)); // perturb the bits a single drops
        }
        for a in v {
            let o = fpu::cvt_s_d(a, rm);
            let h = h_d_to_s(a, rc);
            fl.float(S, &|| format!("cvt_s_d({a:#018x}) {rm:?}"), (o.0 as u64, o.1), (h.0 as u64, h.1));
        }
    }
    fl.done(flags::NX | flags::UF | flags::OF | flags::NV);
}

// ---------------------------------------------------------------------------
// Float -> integer. The host gives the correctly rounded integer and NX for
// every input inside i64 range; the Table 11.4 rules supply the rest.

#[derive(Clone, Copy, Debug)]
enum IntKind {
    W,
    Wu,
    L,
    Lu,
}

/// Expected (rd value, flags) for a conversion, from the host's rounding of
/// the value to an integer and the Table 11.4 saturation rules.
fn expected_to_int(f: Fmt, a: u64, kind: IntKind, rc: u32) -> (u64, u8) {
    let single = f.fbits == 23;
    let nan = f.is_nan(a);
    let neg = a & f.sign() != 0;
    let (min, max): (i128, i128) = match kind {
        IntKind::W => (i32::MIN as i128, i32::MAX as i128),
        IntKind::Wu => (0, u32::MAX as i128),
        IntKind::L => (i64::MIN as i128, i64::MAX as i128),
        IntKind::Lu => (0, u64::MAX as i128),
    };
    let to_rd = |v: i128| -> u64 {
        match kind {
            // 32-bit results are sign-extended from bit 31 (§11.7).
            IntKind::W | IntKind::Wu => v as u32 as i32 as i64 as u64,
            IntKind::L | IntKind::Lu => v as u64,
        }
    };
    let invalid = |toward_max: bool| (to_rd(if toward_max { max } else { min }), flags::NV);
    if nan {
        return invalid(true);
    }
    // The host's rounded integer, as an i128 (None: beyond what we can get).
    let rounded: Option<(i128, u8)> = {
        let (r, fl) = h_to_i64(a, single, rc);
        match r {
            Some(r) => Some((r as i128, fl)),
            None if !neg => {
                // |a| >= 2^63: a is an integer there, so a - 2^63 is exact.
                let x = if single { f32::from_bits(a as u32) as f64 } else { f64::from_bits(a) };
                let y = x - 9223372036854775808.0;
                let (r2, fl2) = h_to_i64(y.to_bits(), false, rc);
                r2.map(|r2| (r2 as i128 + (1i128 << 63), fl2))
            }
            None => None,
        }
    };
    match rounded {
        Some((r, fl)) if r >= min && r <= max => (to_rd(r), fl),
        _ => invalid(!neg),
    }
}

#[test]
fn float_to_int() {
    // The 32-bit oracle above is built on the 64-bit instruction; cross-check
    // it with the 32-bit one for signed W (both must agree where x86 is valid).
    type Ours = (IntKind, fn(u32, Rm) -> (u64, u8), fn(u64, Rm) -> (u64, u8));
    let kinds: [Ours; 4] = [
        (IntKind::W, fpu::cvt_w_s, fpu::cvt_w_d),
        (IntKind::Wu, fpu::cvt_wu_s, fpu::cvt_wu_d),
        (IntKind::L, fpu::cvt_l_s, fpu::cvt_l_d),
        (IntKind::Lu, fpu::cvt_lu_s, fpu::cvt_lu_d),
    ];
    for (kind, ours_s, ours_d) in kinds {
        let mut fl = Failures::new(match kind {
            IntKind::W => "cvt_w_{s,d}",
            IntKind::Wu => "cvt_wu_{s,d}",
            IntKind::L => "cvt_l_{s,d}",
            IntKind::Lu => "cvt_lu_{s,d}",
        });
        for (rm, rc) in MODES {
            for a in singles(S, 19 + rc as u64, RANDOM_PER_MODE) {
                let want = expected_to_int(S, a, kind, rc);
                if let IntKind::W = kind {
                    if let (Some(r32), f32_) = h_to_i32(a, true, rc) {
                        assert_eq!((r32 as i64 as u64, f32_), want, "32-bit oracle cross-check {a:#x}");
                    }
                }
                fl.int(&|| format!("{kind:?} s {a:#010x} {rm:?}"), ours_s(a as u32, rm), want);
            }
            for a in singles(D, 23 + rc as u64, RANDOM_PER_MODE) {
                let want = expected_to_int(D, a, kind, rc);
                if let IntKind::W = kind {
                    if let (Some(r32), f32_) = h_to_i32(a, false, rc) {
                        assert_eq!((r32 as i64 as u64, f32_), want, "32-bit oracle cross-check {a:#x}");
                    }
                }
                fl.int(&|| format!("{kind:?} d {a:#018x} {rm:?}"), ours_d(a, rm), want);
            }
        }
        fl.done(flags::NX | flags::NV);
    }
}

// ---------------------------------------------------------------------------
// Integer -> float.

/// Host conversion of an unsigned 64-bit integer. Values with the top bit set
/// are halved with the dropped bit ORed into bit 0 ("round to odd" sticky
/// bit, harmless because bit 0 of such a value is far below the precision of
/// either format), converted, then doubled exactly.
fn h_from_u64(x: u64, single: bool, rc: u32) -> (u64, u8) {
    if x >> 63 == 0 {
        return h_from_i64(x as i64, single, rc);
    }
    let (h, fl) = h_from_i64(((x >> 1) | (x & 1)) as i64, single, rc);
    let doubled =
        if single { ((f32::from_bits(h as u32)) * 2.0).to_bits() as u64 } else { (f64::from_bits(h) * 2.0).to_bits() };
    (doubled, fl)
}

fn ints(seed: u64) -> Vec<u64> {
    let mut v: Vec<u64> = vec![
        0,
        1,
        2,
        3,
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        (1 << 63) - 1,
        (1 << 63) + 1,
        1 << 31,
        (1 << 31) - 1,
        (1 << 31) + 1,
        1 << 32,
        (1 << 32) - 1,
        0xffff_ffff_8000_0000,
        0x0000_0000_8000_0000,
        (1 << 24) + 1,
        (1 << 24) + 3,
        (1 << 53) + 1,
        (1 << 53) + 3,
        0x0000_0000_0100_0001,
        0x0000_0000_0300_0002,
        0xffff_ffff_feff_ffff,
    ];
    let mut rng = Rng::new(seed);
    for _ in 0..RANDOM_PER_MODE {
        let x = rng.next();
        // Random widths, so small magnitudes (exact) and large (rounded),
        // including ties, all appear.
        let w = rng.below(65);
        let x = if w == 64 { x } else { x & ((1u64 << w) - 1) };
        v.push(if rng.below(4) == 0 { x.wrapping_neg() } else { x });
    }
    v
}

#[test]
fn int_to_float() {
    type Ours = (&'static str, fn(u64, Rm) -> (u32, u8), fn(u64, Rm) -> (u64, u8));
    let ops: [Ours; 4] = [
        ("w", fpu::cvt_s_w, fpu::cvt_d_w),
        ("wu", fpu::cvt_s_wu, fpu::cvt_d_wu),
        ("l", fpu::cvt_s_l, fpu::cvt_d_l),
        ("lu", fpu::cvt_s_lu, fpu::cvt_d_lu),
    ];
    for (what, ours_s, ours_d) in ops {
        let mut fl = Failures::new(what);
        for (rm, rc) in MODES {
            for x in ints(29 + rc as u64) {
                // What the instruction converts: the low 32 bits for W/WU
                // (the upper bits of rs1 are ignored), all 64 for L/LU.
                let host = |single: bool| match what {
                    "w" => h_from_i64(x as u32 as i32 as i64, single, rc),
                    "wu" => h_from_i64(x as u32 as i64, single, rc),
                    "l" => h_from_i64(x as i64, single, rc),
                    _ => h_from_u64(x, single, rc),
                };
                let o = ours_s(x, rm);
                let h = host(true);
                fl.float(S, &|| format!("cvt_s_{what}({x:#x}) {rm:?}"), (o.0 as u64, o.1), h);
                fl.float(D, &|| format!("cvt_d_{what}({x:#x}) {rm:?}"), ours_d(x, rm), host(false));
            }
        }
        fl.done(flags::NX);
    }
}

// ---------------------------------------------------------------------------
// Comparisons: ucomis (quiet: IE for sNaN only) is FEQ's oracle, comis
// (signalling: IE for any NaN) is FLT's and FLE's.

#[test]
fn comparisons() {
    for (f, seed) in [(S, 31u64), (D, 37)] {
        let mut fl = Failures::new(if f.fbits == 23 { "compare_s" } else { "compare_d" });
        for (a, b) in pairs(f, seed) {
            let single = f.fbits == 23;
            let (heq, _, _, hqf) = h_cmp(a, b, single, false);
            let (_, hlt, hle, hsf) = h_cmp(a, b, single, true);
            let (eq, lt, le) = if single {
                (fpu::feq_s(a as u32, b as u32), fpu::flt_s(a as u32, b as u32), fpu::fle_s(a as u32, b as u32))
            } else {
                (fpu::feq_d(a, b), fpu::flt_d(a, b), fpu::fle_d(a, b))
            };
            let ctx = || format!("({a:#x}, {b:#x})");
            fl.int(&|| format!("feq{}", ctx()), (eq.0 as u64, eq.1), (heq as u64, hqf));
            fl.int(&|| format!("flt{}", ctx()), (lt.0 as u64, lt.1), (hlt as u64, hsf));
            fl.int(&|| format!("fle{}", ctx()), (le.0 as u64, le.1), (hle as u64, hsf));
        }
        fl.done(flags::NV);
    }
}

/// The oracle itself must be able to tell rounding modes and flags apart;
/// otherwise every comparison above could pass vacuously.
#[test]
fn oracle_sanity() {
    let one = 1f32.to_bits();
    let tiny = f32::from_bits(1).to_bits(); // min subnormal
                                            // 1 + tiny: inexact; RUP rounds up, the others give 1.
    assert_eq!(h_add_s(one, tiny, 0), (one, flags::NX));
    assert_eq!(h_add_s(one, tiny, 2), (one + 1, flags::NX));
    assert_eq!(h_add_s(one, tiny, 3), (one, flags::NX));
    // 1 / 0: DZ.
    assert_eq!(h_div_s(one, 0, 0), (f32::INFINITY.to_bits(), flags::DZ));
    // 0 / 0: NV and some NaN.
    let (r, f) = h_div_s(0, 0, 0);
    assert!(f32::from_bits(r).is_nan() && f == flags::NV);
    // max * 2: OF|NX; RTZ gives max.
    let max = f32::MAX.to_bits();
    assert_eq!(h_mul_s(max, 2f32.to_bits(), 0), (f32::INFINITY.to_bits(), flags::OF | flags::NX));
    assert_eq!(h_mul_s(max, 2f32.to_bits(), 3), (max, flags::OF | flags::NX));
    // min_normal * 0.5 is exact (subnormal but exact): no UF; * 0.75 is
    // inexact and tiny: UF|NX.
    let mn = f32::MIN_POSITIVE.to_bits();
    assert_eq!(h_mul_s(mn, 0.5f32.to_bits(), 0), (mn >> 1, 0));
    assert_eq!(h_mul_s(f32::from_bits(3).to_bits(), 0.5f32.to_bits(), 0).1, flags::UF | flags::NX);
}

// ---------------------------------------------------------------------------
// RMM (round to nearest, ties to max magnitude, Table 11.1) has no x86
// counterpart, but it can still be checked against the host: it differs from
// RNE only when the exact result lies exactly halfway between its two
// representable neighbours, and there it picks the neighbour of larger
// magnitude, which is also what rounding away from zero picks (RUP for a
// positive result, RDN for a negative one). In either case the flags are
// those of the mode whose result RMM shares: at a tie the result, the
// inexactness, overflow to infinity, and tininess after rounding all follow
// the away-from-zero rounding; elsewhere nearest is unique, so RMM and RNE
// agree on all of it.
//
// Ties are found without trusting the code under test: the host's RDN and
// RUP results bracket the exact value, and the exact value is known either
// as an f64 (for single-precision results whose exact value fits in 53 bits,
// which the host confirms by raising no NX in f64) or as an integer.

const RC_RNE: u32 = 0;
const RC_RDN: u32 = 1;
const RC_RUP: u32 = 2;

/// Is `x` (exact) halfway between the singles `dn` and `up` that bracket it?
fn tie_s(x: f64, dn: u32, up: u32) -> bool {
    let (lo, hi) = (f32::from_bits(dn) as f64, f32::from_bits(up) as f64);
    // Both finite singles: their sum and half are exact in f64. An exact
    // zero is no tie, although RDN and RUP then differ in the zero's sign.
    x != 0.0 && dn != up && lo.is_finite() && hi.is_finite() && (lo + hi) / 2.0 == x
}

/// The RMM oracle for a single-precision result. `host(rc)` is the host's
/// (result, flags) in mode `rc`; `exact` is the exact result if it is
/// representable in f64 (None if it is not, which rules out a tie: a tie
/// needs at most 25 significant bits).
fn rmm_s(exact: Option<f64>, host: &dyn Fn(u32) -> (u32, u8)) -> (u32, u8) {
    if let Some(x) = exact {
        let (dn, up) = (host(RC_RDN), host(RC_RUP));
        if tie_s(x, dn.0, up.0) {
            return if x > 0.0 { up } else { dn };
        }
    }
    host(RC_RNE)
}

fn to_f64(f: Fmt, v: u64) -> f64 {
    if f.fbits == 23 {
        f32::from_bits(v as u32) as f64
    } else {
        f64::from_bits(v)
    }
}

/// Exact `a*b + c` of singles via the host's f64 FMA, if it is exact there.
fn exact_fma_s(a: u32, b: u32, c: u32) -> Option<f64> {
    let (x, y, z) = (to_f64(S, a as u64), to_f64(S, b as u64), to_f64(S, c as u64));
    let (r, fl) = h_fmadd_d(x.to_bits(), y.to_bits(), z.to_bits(), RC_RNE);
    (fl == 0).then_some(f64::from_bits(r))
}

/// Operand pairs for RMM: the usual pairs plus products and sums of odd
/// integers scaled by powers of two (into the subnormal and overflow ranges
/// too), which are ties at single precision very often.
fn rmm_pairs_s(seed: u64) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = pairs(S, seed).into_iter().map(|(a, b)| (a as u32, b as u32)).collect();
    let mut rng = Rng::new(seed ^ 0xabcd);
    for _ in 0..RANDOM_PER_MODE {
        let a = (rng.below(1 << 13) | 1) as f32 * 2f32.powi(rng.below(40) as i32 - 20);
        let b = (rng.below(1 << 14) | 1) as f32 * 2f32.powi(rng.below(40) as i32 - 20);
        let neg = |x: f32, r: u64| if r & 1 != 0 { -x } else { x };
        let (a, b) = (neg(a, rng.next()), neg(b, rng.next()));
        // Shift the pair as a whole towards the extremes sometimes; the
        // scaling by powers of two is exact while it stays normal.
        let k = match rng.below(4) {
            0 => -(rng.below(120) as i32) - 30,
            1 => rng.below(100) as i32 + 20,
            _ => 0,
        };
        let scale = 2f32.powi(k / 2);
        let (a, b) = (a * scale, b * scale);
        if a.is_finite() && b.is_finite() && a != 0.0 && b != 0.0 {
            v.push((a.to_bits(), b.to_bits()));
        }
    }
    v
}

struct TieCount(u64, &'static str);
impl TieCount {
    fn done(self) {
        assert!(self.0 >= 100, "{}: only {} ties among the operands: widen the generator", self.1, self.0);
        eprintln!("{}: {} ties", self.1, self.0);
    }
}

#[test]
fn rmm_arithmetic_s() {
    require_fma();
    type Op = (&'static str, Bin<u32>, HostBin<u32>, fn(f64, f64) -> (f64, u8));
    let ops: [Op; 3] = [
        ("add_s", fpu::add_s, h_add_s, |x, y| {
            let (r, f) = h_add_d(x.to_bits(), y.to_bits(), RC_RNE);
            (f64::from_bits(r), f)
        }),
        ("sub_s", fpu::sub_s, h_sub_s, |x, y| {
            let (r, f) = h_sub_d(x.to_bits(), y.to_bits(), RC_RNE);
            (f64::from_bits(r), f)
        }),
        ("mul_s", fpu::mul_s, h_mul_s, |x, y| {
            let (r, f) = h_mul_d(x.to_bits(), y.to_bits(), RC_RNE);
            (f64::from_bits(r), f)
        }),
    ];
    for (what, ours, host, exact_op) in ops {
        let mut fl = Failures::new(what);
        let mut ties = TieCount(0, what);
        for (a, b) in rmm_pairs_s(0x4a4a) {
            let (x, xf) = exact_op(to_f64(S, a as u64), to_f64(S, b as u64));
            let exact = (xf == 0).then_some(x);
            let h = |rc| host(a, b, rc);
            let want = rmm_s(exact, &h);
            ties.0 += (want != h(RC_RNE)) as u64;
            let o = ours(a, b, Rm::Rmm);
            fl.float(S, &|| format!("{what}({a:#010x}, {b:#010x}) Rmm"), (o.0 as u64, o.1), (want.0 as u64, want.1));
        }
        fl.done(flags::NX | flags::OF | flags::NV);
        ties.done();
    }

    // (name, ours, host, negate the product, negate the addend)
    type FusedOp = (&'static str, Tri<u32>, HostTri<u32>, bool, bool);
    let ops: [FusedOp; 4] = [
        ("fmadd_s", fpu::fmadd_s, h_fmadd_s, false, false),
        ("fmsub_s", fpu::fmsub_s, h_fmsub_s, false, true),
        ("fnmsub_s", fpu::fnmsub_s, h_fnmsub_s, true, false),
        ("fnmadd_s", fpu::fnmadd_s, h_fnmadd_s, true, true),
    ];
    for (what, ours, host, neg_prod, neg_c) in ops {
        let mut fl = Failures::new(what);
        let mut ties = TieCount(0, what);
        let mut rng = Rng::new(0x7e7e);
        for (a, b) in rmm_pairs_s(0x5b5b) {
            let c = match rng.below(3) {
                0 => S.random(&mut rng, &S.edges()) as u32,
                1 => ((rng.below(1 << 20) | 1) as f32).to_bits() | ((rng.next() as u32) & 0x8000_0000),
                _ => 0x3f80_0000 | ((rng.next() as u32) & 0x8000_0000),
            };
            let flip = |v: u32, f: bool| if f { v ^ 0x8000_0000 } else { v };
            let exact = exact_fma_s(flip(a, neg_prod), b, flip(c, neg_c));
            let h = |rc| {
                let r = host(a, b, c, rc);
                let r = fma_nv_rule(S, a as u64, b as u64, c as u64, (r.0 as u64, r.1));
                (r.0 as u32, r.1)
            };
            let want = rmm_s(exact, &h);
            ties.0 += (want != h(RC_RNE)) as u64;
            let o = ours(a, b, c, Rm::Rmm);
            fl.float(
                S,
                &|| format!("{what}({a:#010x}, {b:#010x}, {c:#010x}) Rmm"),
                (o.0 as u64, o.1),
                (want.0 as u64, want.1),
            );
        }
        fl.done(flags::NX | flags::OF | flags::NV);
        ties.done();
    }
}

/// At full precision, division and square root can never land exactly
/// halfway (the quotient or root of p-bit numbers cannot have exactly p+1
/// significant bits), so in RMM they agree with RNE bit for bit, flags
/// included. Subnormal results have fewer bits, though, and there a quotient
/// can be a tie (2^-127 / 2^23 = 2^-150 is halfway between 0 and 2^-149);
/// square roots are never subnormal.
#[test]
fn rmm_div_sqrt() {
    let mut fl = Failures::new("div/sqrt Rmm");
    let mut ties = TieCount(0, "div_s Rmm");
    let mut rng = Rng::new(0x6e6e);
    let mut ps = pairs(S, 0x6c6c);
    // Quotients that land among the subnormals, many of them ties.
    for _ in 0..RANDOM_PER_MODE {
        let a = S.make(rng.below(2) == 0, rng.below(4), rng.next());
        let b = S.make(rng.below(2) == 0, S.bias() + rng.below(26), rng.below(4) << 21);
        ps.push((a, b));
    }
    for (a, b) in ps {
        let (a, b) = (a as u32, b as u32);
        // The quotient of singles, if exact in f64 (otherwise it has too many
        // bits to be a single-precision tie).
        let (q, qf) = h_div_d(to_f64(S, a as u64).to_bits(), to_f64(S, b as u64).to_bits(), RC_RNE);
        let want = rmm_s((qf == 0).then_some(f64::from_bits(q)), &|rc| h_div_s(a, b, rc));
        ties.0 += (want != h_div_s(a, b, RC_RNE)) as u64;
        let o = fpu::div_s(a, b, Rm::Rmm);
        fl.float(S, &|| format!("div_s({a:#010x}, {b:#010x}) Rmm"), (o.0 as u64, o.1), (want.0 as u64, want.1));
        let o = fpu::sqrt_s(a, Rm::Rmm);
        let h = h_sqrt_s(a, RC_RNE);
        fl.float(S, &|| format!("sqrt_s({a:#010x}) Rmm"), (o.0 as u64, o.1), (h.0 as u64, h.1));
    }
    let mut ps = pairs(D, 0x6d6d);
    for _ in 0..RANDOM_PER_MODE {
        let a = D.make(rng.below(2) == 0, rng.below(4), rng.next());
        let b = D.make(rng.below(2) == 0, D.bias() + rng.below(55), rng.below(4) << 50);
        ps.push((a, b));
    }
    ties.done();
    let mut ties = TieCount(0, "div_d Rmm");
    for (a, b) in ps {
        let want = rmm_div_d(a, b);
        ties.0 += (want != h_div_d(a, b, RC_RNE)) as u64;
        fl.float(D, &|| format!("div_d({a:#018x}, {b:#018x}) Rmm"), fpu::div_d(a, b, Rm::Rmm), want);
        fl.float(D, &|| format!("sqrt_d({a:#018x}) Rmm"), fpu::sqrt_d(a, Rm::Rmm), h_sqrt_d(a, RC_RNE));
    }
    fl.done(flags::NX | flags::UF | flags::OF | flags::DZ | flags::NV);
    ties.done();
}

/// RMM oracle for a double quotient. Only a subnormal (tiny) quotient can be
/// a tie. Then its neighbours `dn`, `up` are subnormal (or the smallest
/// normal), so `m2 = dn + up` (twice the midpoint) is exact, and the quotient
/// is the midpoint iff `m2 * b - 2a` is exactly zero, which the host's FMA
/// tells by returning zero without raising any flag. (`2a` cannot overflow:
/// a tiny quotient needs |a| < 2^-1022 |b| < 2^2.)
fn rmm_div_d(a: u64, b: u64) -> (u64, u8) {
    let ne = h_div_d(a, b, RC_RNE);
    let (dn, up) = (h_div_d(a, b, RC_RDN), h_div_d(a, b, RC_RUP));
    let (lo, hi) = (f64::from_bits(dn.0), f64::from_bits(up.0));
    let tiny = lo.abs() <= f64::MIN_POSITIVE && hi.abs() <= f64::MIN_POSITIVE;
    if dn.0 == up.0 || !tiny || !lo.is_finite() || !hi.is_finite() || (lo == 0.0 && hi == 0.0) {
        return ne;
    }
    require_fma();
    let m2 = lo + hi;
    let two_a = 2.0 * f64::from_bits(a);
    let (r, rf) = h_fmadd_d(m2.to_bits(), b, (-two_a).to_bits(), RC_RNE);
    if f64::from_bits(r) == 0.0 && rf == 0 {
        if hi > 0.0 {
            up
        } else {
            dn
        }
    } else {
        ne
    }
}

#[test]
fn rmm_conversions() {
    // Double -> single: the input is the exact value.
    let mut fl = Failures::new("cvt_s_d Rmm");
    let mut ties = TieCount(0, "cvt_s_d Rmm");
    let mut rng = Rng::new(0x8e8e);
    let mut inputs = singles(D, 0x8f8f, RANDOM_PER_MODE);
    for _ in 0..RANDOM_PER_MODE {
        // Singles with one extra bit just below their last place: ties,
        // including at subnormal and overflow boundaries.
        let s = f32::from_bits(S.random(&mut rng, &S.edges()) as u32) as f64;
        inputs.push(s.to_bits() | (1 << 28));
    }
    for a in inputs {
        let h = |rc| h_d_to_s(a, rc);
        let want = rmm_s(Some(f64::from_bits(a)), &h);
        ties.0 += (want != h(RC_RNE)) as u64;
        let o = fpu::cvt_s_d(a, Rm::Rmm);
        fl.float(S, &|| format!("cvt_s_d({a:#018x}) Rmm"), (o.0 as u64, o.1), (want.0 as u64, want.1));
    }
    fl.done(flags::NX | flags::UF | flags::OF | flags::NV);
    ties.done();

    // Integer -> float: the exact value is the integer; the candidates'
    // values are integers too (or beyond 2^64 for u64::MAX-ish inputs, which
    // i128 holds).
    type Ours = (&'static str, fn(u64, Rm) -> (u32, u8), fn(u64, Rm) -> (u64, u8));
    let ops: [Ours; 4] = [
        ("w", fpu::cvt_s_w, fpu::cvt_d_w),
        ("wu", fpu::cvt_s_wu, fpu::cvt_d_wu),
        ("l", fpu::cvt_s_l, fpu::cvt_d_l),
        ("lu", fpu::cvt_s_lu, fpu::cvt_d_lu),
    ];
    for (what, ours_s, ours_d) in ops {
        let mut fl = Failures::new(what);
        let mut ties = TieCount(0, what);
        for x in ints(0x9090) {
            type Host = Box<dyn Fn(bool, u32) -> (u64, u8)>;
            let (exact, host): (i128, Host) = match what {
                "w" => (x as u32 as i32 as i128, Box::new(move |s, rc| h_from_i64(x as u32 as i32 as i64, s, rc))),
                "wu" => (x as u32 as i128, Box::new(move |s, rc| h_from_i64(x as u32 as i64, s, rc))),
                "l" => (x as i64 as i128, Box::new(move |s, rc| h_from_i64(x as i64, s, rc))),
                _ => (x as i128, Box::new(move |s, rc| h_from_u64(x, s, rc))),
            };
            for single in [true, false] {
                let f = if single { S } else { D };
                let val = |r: u64| to_f64(f, r) as i128; // integral, exact
                let (dn, up) = (host(single, RC_RDN), host(single, RC_RUP));
                let tie = dn.0 != up.0 && val(dn.0) + val(up.0) == 2 * exact;
                let want = if tie {
                    if exact > 0 {
                        up
                    } else {
                        dn
                    }
                } else {
                    host(single, RC_RNE)
                };
                ties.0 += tie as u64;
                let o = if single {
                    let o = ours_s(x, Rm::Rmm);
                    (o.0 as u64, o.1)
                } else {
                    ours_d(x, Rm::Rmm)
                };
                fl.float(f, &|| format!("cvt_{}_{what}({x:#x}) Rmm", if single { "s" } else { "d" }), o, want);
            }
        }
        fl.done(flags::NX);
        ties.done();
    }
}

#[test]
fn rmm_float_to_int() {
    type Ours = (IntKind, fn(u32, Rm) -> (u64, u8), fn(u64, Rm) -> (u64, u8));
    let kinds: [Ours; 4] = [
        (IntKind::W, fpu::cvt_w_s, fpu::cvt_w_d),
        (IntKind::Wu, fpu::cvt_wu_s, fpu::cvt_wu_d),
        (IntKind::L, fpu::cvt_l_s, fpu::cvt_l_d),
        (IntKind::Lu, fpu::cvt_lu_s, fpu::cvt_lu_d),
    ];
    for (kind, ours_s, ours_d) in kinds {
        let mut fl = Failures::new("float->int Rmm");
        let mut ties = TieCount(0, "float->int Rmm");
        for f in [S, D] {
            let mut rng = Rng::new(0xa1a1);
            let mut inputs = singles(f, 0xa2a2, RANDOM_PER_MODE);
            for _ in 0..RANDOM_PER_MODE / 4 {
                // k + 0.5 for k of every magnitude the format can hold a
                // half for, and around the 32-bit limits.
                let k = (rng.next() >> rng.below(64)) as i64 as f64;
                let k = if rng.below(2) == 0 { k } else { 2147483647.0 + (rng.below(8) as f64) - 4.0 };
                let v = k + 0.5;
                if f.fbits == 23 && v.abs() < (1 << 23) as f64 {
                    inputs.push((v as f32).to_bits() as u64);
                } else if f.fbits == 52 && v.abs() < (1u64 << 52) as f64 {
                    inputs.push(v.to_bits());
                }
            }
            for a in inputs {
                let x = to_f64(f, a);
                // A tie is exactly k + 1/2: 2x (an exact doubling) is an odd
                // integer. (fract and rem_euclid are exact.)
                let t = 2.0 * x;
                let tie = t.is_finite() && t.fract() == 0.0 && t.rem_euclid(2.0) == 1.0;
                let rc = match (tie, x > 0.0) {
                    (false, _) => RC_RNE,
                    (true, true) => RC_RUP,
                    (true, false) => RC_RDN,
                };
                ties.0 += tie as u64;
                let want = expected_to_int(f, a, kind, rc);
                let o = if f.fbits == 23 { ours_s(a as u32, Rm::Rmm) } else { ours_d(a, Rm::Rmm) };
                fl.int(&|| format!("{kind:?} {a:#x} Rmm"), o, want);
            }
        }
        fl.done(flags::NX | flags::NV);
        ties.done();
    }
}

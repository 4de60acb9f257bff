/* F/D subtleties (Unprivileged 20191213 ch. 11-12): tininess detected
   after rounding, fused (single-rounding) FMA, fcvt boundary rounding and
   range, narrowing underflow, unboxed FMA inputs. */
#include "test.h"
#define NX 1
#define UF 2
#define OF 4
#define DZ 8
#define NV 16
#define BOX 0xffffffff00000000
#define QNAN_S 0x7fc00000
#define SNAN_S 0x7f800001
#define QNAN_D 0x7ff8000000000000
#define SNAN_D 0x7ff0000000000001

.macro LDS freg, bits
        li      t3, \bits
        fmv.w.x \freg, t3
.endm
.macro LDD freg, bits
        li      t3, \bits
        fmv.d.x \freg, t3
.endm
/* single, 2 operands, with rm */
.macro FS2 op, rm, a, b, exp, flags
        LDS     ft0, \a
        LDS     ft1, \b
        csrw    fflags, zero
        \op     ft2, ft0, ft1, \rm
        CHECK_F "\op(\a,\b,\rm)", ft2, (BOX | \exp)
        CHECK_FLAGS "\op(\a,\b,\rm) flags", \flags
.endm
.macro FS1 op, rm, a, exp, flags
        LDS     ft0, \a
        csrw    fflags, zero
        \op     ft2, ft0, \rm
        CHECK_F "\op(\a,\rm)", ft2, (BOX | \exp)
        CHECK_FLAGS "\op(\a,\rm) flags", \flags
.endm
.macro FD2 op, rm, a, b, exp, flags
        LDD     ft0, \a
        LDD     ft1, \b
        csrw    fflags, zero
        \op     ft2, ft0, ft1, \rm
        CHECK_F "\op(\a,\b,\rm)", ft2, \exp
        CHECK_FLAGS "\op(\a,\b,\rm) flags", \flags
.endm
.macro FD1 op, rm, a, exp, flags
        LDD     ft0, \a
        csrw    fflags, zero
        \op     ft2, ft0, \rm
        CHECK_F "\op(\a,\rm)", ft2, \exp
        CHECK_FLAGS "\op(\a,\rm) flags", \flags
.endm
/* no-rm two-operand ops with FP result (fmin/fmax/fsgnj) */
.macro FS2N op, a, b, exp, flags
        LDS     ft0, \a
        LDS     ft1, \b
        csrw    fflags, zero
        \op     ft2, ft0, ft1
        CHECK_F "\op(\a,\b)", ft2, (BOX | \exp)
        CHECK_FLAGS "\op(\a,\b) flags", \flags
.endm
.macro FD2N op, a, b, exp, flags
        LDD     ft0, \a
        LDD     ft1, \b
        csrw    fflags, zero
        \op     ft2, ft0, ft1
        CHECK_F "\op(\a,\b)", ft2, \exp
        CHECK_FLAGS "\op(\a,\b) flags", \flags
.endm
/* compares: integer result */
.macro FCMPS op, a, b, exp, flags
        LDS     ft0, \a
        LDS     ft1, \b
        csrw    fflags, zero
        \op     s3, ft0, ft1
        CHECK_EQ "\op(\a,\b)", s3, \exp
        CHECK_FLAGS "\op(\a,\b) flags", \flags
.endm
.macro FCMPD op, a, b, exp, flags
        LDD     ft0, \a
        LDD     ft1, \b
        csrw    fflags, zero
        \op     s3, ft0, ft1
        CHECK_EQ "\op(\a,\b)", s3, \exp
        CHECK_FLAGS "\op(\a,\b) flags", \flags
.endm
/* float -> int */
.macro F2IS op, rm, a, exp, flags
        LDS     ft0, \a
        csrw    fflags, zero
        \op     s3, ft0, \rm
        CHECK_EQ "\op(\a,\rm)", s3, \exp
        CHECK_FLAGS "\op(\a,\rm) flags", \flags
.endm
.macro F2ID op, rm, a, exp, flags
        LDD     ft0, \a
        csrw    fflags, zero
        \op     s3, ft0, \rm
        CHECK_EQ "\op(\a,\rm)", s3, \exp
        CHECK_FLAGS "\op(\a,\rm) flags", \flags
.endm
/* int -> float (exp is the full 64-bit register image) */
.macro I2F op, rm, a, exp, flags
        li      s1, \a
        csrw    fflags, zero
        \op     ft2, s1, \rm
        CHECK_F "\op(\a,\rm)", ft2, \exp
        CHECK_FLAGS "\op(\a,\rm) flags", \flags
.endm
.macro CLASSS a, exp
        LDS     ft0, \a
        fclass.s s3, ft0
        CHECK_EQ "fclass.s(\a)", s3, \exp
.endm
.macro CLASSD a, exp
        LDD     ft0, \a
        fclass.d s3, ft0
        CHECK_EQ "fclass.d(\a)", s3, \exp
.endm
.macro FMA3 op, a, b, c, exp, flags
        LDD     ft0, \a
        LDD     ft1, \b
        LDD     ft3, \c
        csrw    fflags, zero
        \op     ft2, ft0, ft1, ft3
        CHECK_F "\op(\a,\b,\c)", ft2, \exp
        CHECK_FLAGS "\op(\a,\b,\c) flags", \flags
.endm


.macro FMA3S op, a, b, c, exp, flags
        LDS     ft0, \a
        LDS     ft1, \b
        LDS     ft3, \c
        csrw    fflags, zero
        \op     ft2, ft0, ft1, ft3
        CHECK_F "\op(\a,\b,\c)", ft2, (BOX | \exp)
        CHECK_FLAGS "\op(\a,\b,\c) flags", \flags
.endm

TEST_BEGIN(fp_edge)
        csrw    fcsr, zero
        /* tininess after rounding (Unpriv 11.? "tininess is detected after
           rounding"): (1-2^-24)*2^-126 is tiny even after rounding -> UF;
           (1-2^-23)*2^-126(1+2^-23) rounds to 2^-126 with unbounded
           exponent -> not tiny -> NX only.  Both deliver 2^-126. */
        FS2 fmul.s, rne, 0x3f7fffff, 0x00800000, 0x00800000, UF|NX
        FS2 fmul.s, rne, 0x3f7ffffe, 0x00800001, 0x00800000, NX
        FS2 fmul.s, rtz, 0x3f7ffffe, 0x00800001, 0x007fffff, UF|NX
        /* exact subnormal result: no UF */
        FS2 fsub.s, rne, 0x00800001, 0x00800000, 0x00000001, 0
        FS2 fdiv.s, rne, 0x00000002, 0x40000000, 0x00000001, 0
        FD2 fmul.d, rne, 0x0010000000000000, 0x3fe0000000000000, 0x0008000000000000, 0
        /* narrowing underflow */
        FD1 fcvt.s.d, rne, 0x358dee7a4ad4b81f, BOX|0x00000000, UF|NX
        FD1 fcvt.s.d, rup, 0x358dee7a4ad4b81f, BOX|0x00000001, UF|NX
        /* fused: (1+2^-12)^2 - 1 = 2^-11 + 2^-24 exactly (unfused gives 2^-11) */
        FMA3S fmadd.s, 0x3f800800, 0x3f800800, 0xbf800000, 0x3a000400, 0
        FMA3S fmsub.s, 0x3f800800, 0x3f800800, 0x3f800000, 0x3a000400, 0
        FMA3S fnmsub.s, 0x3f800800, 0x3f800800, 0x3f800000, 0xba000400, 0
        FMA3S fnmadd.s, 0x3f800800, 0x3f800800, 0xbf800000, 0xba000400, 0
        FMA3S fmadd.s, 0x7f800000, 0x00000000, QNAN_S, QNAN_S, NV
        FMA3S fmadd.s, 0x7f800000, 0x3f800000, 0xff800000, QNAN_S, NV
        /* an unboxed single input is the canonical NaN */
        LDD     ft0, 0x000000003f800000
        LDS     ft1, 0x3f800000
        LDS     ft3, 0x3f800000
        csrw    fflags, zero
        fmadd.s ft2, ft0, ft1, ft3
        CHECK_F "fmadd.s unboxed rs1 -> canonical NaN", ft2, BOX|QNAN_S
        CHECK_FLAGS "fmadd.s unboxed rs1 flags", 0
        /* fcvt to int at the range boundary: rounding decides NV */
        F2ID fcvt.w.d, rne, 0x41dfffffffe00000, 0x7fffffff, NV
        F2ID fcvt.w.d, rtz, 0x41dfffffffe00000, 0x7fffffff, NX
        F2ID fcvt.w.d, rdn, 0x41dfffffffe00000, 0x7fffffff, NX
        F2ID fcvt.w.d, rup, 0x41dfffffffe00000, 0x7fffffff, NV
        F2ID fcvt.w.d, rne, 0xc1e0000000100000, 0xffffffff80000000, NX
        F2ID fcvt.w.d, rdn, 0xc1e0000000100000, 0xffffffff80000000, NV
        F2ID fcvt.w.d, rtz, 0xc1e0000000100000, 0xffffffff80000000, NX
        F2ID fcvt.wu.d, rtz, 0xbfeccccccccccccd, 0, NX
        F2ID fcvt.wu.d, rdn, 0xbfeccccccccccccd, 0, NV
        F2ID fcvt.wu.d, rup, 0xbfeccccccccccccd, 0, NX
        F2ID fcvt.lu.d, rne, 0xbfeccccccccccccd, 0, NV
        F2ID fcvt.l.d, rup, 0xbfeccccccccccccd, 0, NX
        F2ID fcvt.l.d, rdn, 0xbfeccccccccccccd, -1, NX
        F2IS fcvt.l.s, rtz, 0xdf000000, 0x8000000000000000, 0
        F2IS fcvt.l.s, rtz, 0x5f000000, 0x7fffffffffffffff, NV
        F2IS fcvt.lu.s, rtz, 0x5f800000, 0xffffffffffffffff, NV
        F2IS fcvt.lu.s, rtz, 0x5f7fffff, 0xffffff0000000000, 0
        F2IS fcvt.w.s, rtz, 0x80000000, 0, 0
        F2IS fcvt.wu.s, rtz, 0x80000000, 0, 0
        F2IS fcvt.w.s, rne, 0x00000001, 0, NX
        F2IS fcvt.w.s, rup, 0x00000001, 1, NX
        F2IS fcvt.w.s, rdn, 0x80000001, -1, NX
        /* fmin/fmax never raise for quiet NaN, fmin(-0,-0) = -0 */
        FS2N fmin.s, 0x80000000, 0x80000000, 0x80000000, 0
        FD2N fmax.d, 0x8000000000000000, 0x8000000000000000, 0x8000000000000000, 0
        /* fsqrt of a subnormal and of -0 */
        FD1 fsqrt.d, rne, 0x0000000000000001, 0x1e60000000000000, 0
        FD1 fsqrt.d, rne, 0x8000000000000000, 0x8000000000000000, 0
        FS1 fsqrt.s, rne, 0xff800000, QNAN_S, NV
        TEST_END

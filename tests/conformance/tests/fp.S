/* F and D extensions (Unprivileged 20191213 ch. 11, 12; Priv 3.1.6.6):
   rounding modes (static rm and dynamic frm), the five flags, NaN boxing,
   canonical NaNs, fmin/fmax NaN rules, fcvt saturation, fclass, fsgnj. */
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

TEST_BEGIN(fp)
        csrw    fcsr, zero
        /* rounding modes through the rm field: 1/3 and -1/3 */
        FS2 fdiv.s, rne, 0x3f800000, 0x40400000, 0x3eaaaaab, NX
        FS2 fdiv.s, rtz, 0x3f800000, 0x40400000, 0x3eaaaaaa, NX
        FS2 fdiv.s, rdn, 0x3f800000, 0x40400000, 0x3eaaaaaa, NX
        FS2 fdiv.s, rup, 0x3f800000, 0x40400000, 0x3eaaaaab, NX
        FS2 fdiv.s, rmm, 0x3f800000, 0x40400000, 0x3eaaaaab, NX
        FS2 fdiv.s, rne, 0xbf800000, 0x40400000, 0xbeaaaaab, NX
        FS2 fdiv.s, rtz, 0xbf800000, 0x40400000, 0xbeaaaaaa, NX
        FS2 fdiv.s, rdn, 0xbf800000, 0x40400000, 0xbeaaaaab, NX
        FS2 fdiv.s, rup, 0xbf800000, 0x40400000, 0xbeaaaaaa, NX
        FS2 fdiv.s, rmm, 0xbf800000, 0x40400000, 0xbeaaaaab, NX
        FD2 fdiv.d, rne, 0x3ff0000000000000, 0x4008000000000000, 0x3fd5555555555555, NX
        FD2 fdiv.d, rup, 0x3ff0000000000000, 0x4008000000000000, 0x3fd5555555555556, NX
        FD2 fdiv.d, rtz, 0x3ff0000000000000, 0x4008000000000000, 0x3fd5555555555555, NX
        FD2 fdiv.d, rdn, 0xbff0000000000000, 0x4008000000000000, 0xbfd5555555555556, NX
        /* ties: 2^24+1 to single */
        I2F fcvt.s.l, rne, 16777217, BOX|0x4b800000, NX
        I2F fcvt.s.l, rmm, 16777217, BOX|0x4b800001, NX
        I2F fcvt.s.l, rup, 16777217, BOX|0x4b800001, NX
        I2F fcvt.s.l, rdn, 16777217, BOX|0x4b800000, NX
        I2F fcvt.s.l, rtz, 16777217, BOX|0x4b800000, NX
        I2F fcvt.s.l, rne, -16777219, BOX|0xcb800002, NX
        I2F fcvt.s.l, rmm, -16777219, BOX|0xcb800002, NX
        I2F fcvt.s.lu, rne, 0xffffffffffffffff, BOX|0x5f800000, NX
        I2F fcvt.s.w, rne, 0xffffffff, BOX|0xbf800000, 0
        I2F fcvt.s.wu, rne, 0x12345678ffffffff, BOX|0x4f800000, NX
        I2F fcvt.d.l, rne, 0x8000000000000000, 0xc3e0000000000000, 0
        li      s1, 0xffffffff80000000
        fcvt.d.w ft2, s1
        CHECK_F "fcvt.d.w(INT32_MIN) exact", ft2, 0xc1e0000000000000
        li      s1, 0xffffffffffffffff
        fcvt.d.wu ft2, s1
        CHECK_F "fcvt.d.wu(0xffffffff) uses low 32 bits", ft2, 0x41efffffffe00000
        /* float -> int rounding */
        F2IS fcvt.w.s, rne, 0x40200000, 2, NX
        F2IS fcvt.w.s, rtz, 0x40200000, 2, NX
        F2IS fcvt.w.s, rdn, 0x40200000, 2, NX
        F2IS fcvt.w.s, rup, 0x40200000, 3, NX
        F2IS fcvt.w.s, rmm, 0x40200000, 3, NX
        F2IS fcvt.w.s, rne, 0xc0200000, -2, NX
        F2IS fcvt.w.s, rtz, 0xc0200000, -2, NX
        F2IS fcvt.w.s, rdn, 0xc0200000, -3, NX
        F2IS fcvt.w.s, rup, 0xc0200000, -2, NX
        F2IS fcvt.w.s, rmm, 0xc0200000, -3, NX
        F2IS fcvt.w.s, rne, 0x3fc00000, 2, NX
        /* saturation + NV (Unpriv table 11.4) */
        F2IS fcvt.w.s, rtz, QNAN_S, 0x7fffffff, NV
        F2IS fcvt.w.s, rtz, 0x7f800000, 0x7fffffff, NV
        F2IS fcvt.w.s, rtz, 0xff800000, 0xffffffff80000000, NV
        F2IS fcvt.w.s, rtz, 0x4f32d05e, 0x7fffffff, NV
        F2IS fcvt.wu.s, rtz, 0xbf800000, 0, NV
        F2IS fcvt.wu.s, rtz, 0xbf000000, 0, NX
        F2IS fcvt.wu.s, rtz, QNAN_S, 0xffffffffffffffff, NV
        F2IS fcvt.wu.s, rtz, 0x4f32d05e, 0xffffffffb2d05e00, 0
        F2IS fcvt.l.s, rtz, 0xff800000, 0x8000000000000000, NV
        F2IS fcvt.lu.s, rtz, 0x4f32d05e, 0xb2d05e00, 0
        F2IS fcvt.lu.s, rtz, SNAN_S, 0xffffffffffffffff, NV
        F2ID fcvt.l.d, rtz, QNAN_D, 0x7fffffffffffffff, NV
        F2ID fcvt.l.d, rtz, 0x43e158e460913d00, 0x7fffffffffffffff, NV
        F2ID fcvt.lu.d, rtz, 0x43e158e460913d00, 0x8ac7230489e80000, 0
        F2ID fcvt.lu.d, rtz, 0xfff0000000000000, 0, NV
        F2ID fcvt.lu.d, rtz, 0x7ff0000000000000, 0xffffffffffffffff, NV
        F2ID fcvt.w.d, rtz, 0x41e0000000000000, 0x7fffffff, NV
        F2ID fcvt.w.d, rtz, 0xc1e0000000000000, 0xffffffff80000000, 0
        F2ID fcvt.wu.d, rne, 0x41efffffffe00000, 0xffffffffffffffff, 0
        /* the five flags */
        FS2 fdiv.s, rne, 0x3f800000, 0x00000000, 0x7f800000, DZ
        FS2 fdiv.s, rne, 0xbf800000, 0x00000000, 0xff800000, DZ
        FS2 fdiv.s, rne, 0x00000000, 0x00000000, QNAN_S, NV
        FS2 fmul.s, rne, 0x00000000, 0x7f800000, QNAN_S, NV
        FS2 fmul.s, rne, 0x7f7fffff, 0x40000000, 0x7f800000, OF|NX
        FS2 fmul.s, rtz, 0x7f7fffff, 0x40000000, 0x7f7fffff, OF|NX
        FS2 fmul.s, rdn, 0x7f7fffff, 0x40000000, 0x7f7fffff, OF|NX
        FS2 fmul.s, rdn, 0xff7fffff, 0x40000000, 0xff800000, OF|NX
        FS2 fmul.s, rne, 0x00000001, 0x3f000000, 0x00000000, UF|NX
        FS2 fmul.s, rup, 0x00000001, 0x3f000000, 0x00000001, UF|NX
        FS2 fmul.s, rne, 0x00800000, 0x3f000000, 0x00400000, 0
        FS2 fadd.s, rne, 0x3f800000, 0x40000000, 0x40400000, 0
        FS2 fsub.s, rne, 0x3f800000, 0x3f800000, 0x00000000, 0
        FS2 fsub.s, rdn, 0x3f800000, 0x3f800000, 0x80000000, 0
        FS2 fadd.s, rne, 0x7f800000, 0xff800000, QNAN_S, NV
        FS2 fadd.s, rne, SNAN_S, 0x3f800000, QNAN_S, NV
        FS2 fadd.s, rne, 0x7fc00001, 0x3f800000, QNAN_S, 0
        FS2 fadd.s, rne, 0xffc00000, 0x3f800000, QNAN_S, 0
        FS1 fsqrt.s, rne, 0xbf800000, QNAN_S, NV
        FS1 fsqrt.s, rne, 0x40800000, 0x40000000, 0
        FS1 fsqrt.s, rne, 0x80000000, 0x80000000, 0
        FS1 fsqrt.s, rne, 0x7f800000, 0x7f800000, 0
        FD1 fsqrt.d, rne, 0x4000000000000000, 0x3ff6a09e667f3bcd, NX
        FD1 fsqrt.d, rup, 0x4000000000000000, 0x3ff6a09e667f3bcd, NX
        FD1 fsqrt.d, rdn, 0x4000000000000000, 0x3ff6a09e667f3bcc, NX
        FD1 fsqrt.d, rtz, 0x4000000000000000, 0x3ff6a09e667f3bcc, NX
        FD2 fadd.d, rne, SNAN_D, 0x3ff0000000000000, QNAN_D, NV
        FD2 fmul.d, rne, 0x7fefffffffffffff, 0x4000000000000000, 0x7ff0000000000000, OF|NX
        FD2 fdiv.d, rne, 0x0000000000000000, 0x8000000000000000, QNAN_D, NV
        FD2 fsub.d, rne, 0x3ff0000000000000, 0x3ff0000000000000, 0, 0
        /* conversions between formats */
        FD1 fcvt.s.d, rne, 0x7e37e43c8800759c, BOX|0x7f800000, OF|NX
        FD1 fcvt.s.d, rtz, 0x7e37e43c8800759c, BOX|0x7f7fffff, OF|NX
        FD1 fcvt.s.d, rne, 0x3fd5555555555555, BOX|0x3eaaaaab, NX
        FD1 fcvt.s.d, rne, SNAN_D, BOX|QNAN_S, NV
        LDS     ft0, 0x3fc00000
        fcvt.d.s ft2, ft0
        CHECK_F "fcvt.d.s(1.5)", ft2, 0x3ff8000000000000
        LDS     ft0, SNAN_S
        csrw    fflags, zero
        fcvt.d.s ft2, ft0
        CHECK_F "fcvt.d.s(sNaN) canonical", ft2, QNAN_D
        CHECK_FLAGS "fcvt.d.s(sNaN) flags", NV
        /* fused multiply-add; inf*0+qNaN raises NV (Unpriv 11.6) */
        FMA3 fmadd.d,  0x4000000000000000, 0x4008000000000000, 0x3ff0000000000000, 0x401c000000000000, 0
        FMA3 fmsub.d,  0x4000000000000000, 0x4008000000000000, 0x3ff0000000000000, 0x4014000000000000, 0
        FMA3 fnmadd.d, 0x4000000000000000, 0x4008000000000000, 0x3ff0000000000000, 0xc01c000000000000, 0
        FMA3 fnmsub.d, 0x4000000000000000, 0x4008000000000000, 0x3ff0000000000000, 0xc014000000000000, 0
        FMA3 fmadd.d,  0x7ff0000000000000, 0x0000000000000000, QNAN_D, QNAN_D, NV
        FMA3 fmadd.d,  0x3ff0000000000000, 0x3ff0000000000000, SNAN_D, QNAN_D, NV
        /* compares */
        FCMPS feq.s, QNAN_S, 0x3f800000, 0, 0
        FCMPS flt.s, QNAN_S, 0x3f800000, 0, NV
        FCMPS fle.s, 0x3f800000, QNAN_S, 0, NV
        FCMPS feq.s, SNAN_S, 0x3f800000, 0, NV
        FCMPS fle.s, 0x80000000, 0x00000000, 1, 0
        FCMPS flt.s, 0x80000000, 0x00000000, 0, 0
        FCMPS feq.s, 0x80000000, 0x00000000, 1, 0
        FCMPS flt.s, 0xff800000, 0x7f800000, 1, 0
        FCMPD feq.d, 0x0000000000000000, 0x8000000000000000, 1, 0
        FCMPD flt.d, 0x3ff0000000000000, 0x4000000000000000, 1, 0
        FCMPD fle.d, 0x4000000000000000, 0x3ff0000000000000, 0, 0
        FCMPD feq.d, QNAN_D, QNAN_D, 0, 0
        FCMPD flt.d, QNAN_D, QNAN_D, 0, NV
        /* fmin/fmax (2.2 semantics: one NaN -> other operand; -0 < +0) */
        FS2N fmin.s, 0x3f800000, QNAN_S, 0x3f800000, 0
        FS2N fmin.s, 0x3f800000, SNAN_S, 0x3f800000, NV
        FS2N fmax.s, SNAN_S, 0x40000000, 0x40000000, NV
        FS2N fmin.s, 0x7fc00001, 0x7fc00002, QNAN_S, 0
        FS2N fmax.s, SNAN_S, SNAN_S, QNAN_S, NV
        FS2N fmin.s, 0x80000000, 0x00000000, 0x80000000, 0
        FS2N fmin.s, 0x00000000, 0x80000000, 0x80000000, 0
        FS2N fmax.s, 0x80000000, 0x00000000, 0x00000000, 0
        FS2N fmax.s, 0xbf800000, 0xc0000000, 0xbf800000, 0
        FD2N fmin.d, 0xfff0000000000000, 0x3ff0000000000000, 0xfff0000000000000, 0
        FD2N fmax.d, SNAN_D, 0x4000000000000000, 0x4000000000000000, NV
        FD2N fmax.d, QNAN_D, QNAN_D, QNAN_D, 0
        FD2N fmin.d, 0x0000000000000000, 0x8000000000000000, 0x8000000000000000, 0
        /* sign injection: never canonicalizes, never raises */
        FS2N fsgnj.s, 0x3f800000, 0xc0000000, 0xbf800000, 0
        FS2N fsgnjn.s, 0x3f800000, 0xc0000000, 0x3f800000, 0
        FS2N fsgnjx.s, 0xbf800000, 0xc0000000, 0x3f800000, 0
        FS2N fsgnj.s, SNAN_S, 0x80000000, 0xff800001, 0
        FD2N fsgnj.d, QNAN_D, 0xbff0000000000000, 0xfff8000000000000, 0
        FD2N fsgnjn.d, 0x3ff0000000000000, 0x3ff0000000000000, 0xbff0000000000000, 0
        FD2N fsgnjx.d, 0xbff0000000000000, 0xbff0000000000000, 0x3ff0000000000000, 0
        /* fclass */
        CLASSS 0xff800000, 1
        CLASSS 0xbf800000, 2
        CLASSS 0x80000001, 4
        CLASSS 0x80000000, 8
        CLASSS 0x00000000, 16
        CLASSS 0x00000001, 32
        CLASSS 0x3f800000, 64
        CLASSS 0x7f800000, 128
        CLASSS SNAN_S, 256
        CLASSS QNAN_S, 512
        CLASSD 0xfff0000000000000, 1
        CLASSD 0x800fffffffffffff, 4
        CLASSD 0x0000000000000001, 32
        CLASSD SNAN_D, 256
        CLASSD 0xfff8000000000000, 512

        /* NaN boxing (Unpriv 12.2) */
        li      t3, 0x3f800000
        fmv.w.x ft0, t3
        CHECK_F "fmv.w.x boxes", ft0, 0xffffffff3f800000
        la      s1, fbuf
        sw      t3, 0(s1)
        flw     ft0, 0(s1)
        CHECK_F "flw boxes", ft0, 0xffffffff3f800000
        LDD     ft0, 0x000000003f800000          /* not boxed */
        LDS     ft1, 0x3f800000
        csrw    fflags, zero
        fadd.s  ft2, ft0, ft1
        CHECK_F "unboxed input is canonical NaN", ft2, BOX|QNAN_S
        CHECK_FLAGS "unboxed input: no flags", 0
        fsgnj.s ft2, ft0, ft0
        CHECK_F "fmv.s of unboxed -> canonical NaN", ft2, BOX|QNAN_S
        fclass.s s3, ft0
        CHECK_EQ "fclass.s unboxed = qNaN", s3, 512
        fcvt.d.s ft2, ft0
        CHECK_F "fcvt.d.s unboxed -> canonical NaN", ft2, QNAN_D
        LDD     ft0, 0x123456789abcdef0
        fmv.x.w s3, ft0
        CHECK_EQ "fmv.x.w takes low bits, sign-extends", s3, 0xffffffff9abcdef0
        fsw     ft0, 8(s1)
        lwu     s3, 8(s1)
        CHECK_EQ "fsw stores low 32 bits", s3, 0x9abcdef0
        LDS     ft0, 0x80000000
        fmv.x.w s3, ft0
        CHECK_EQ "fmv.x.w -0.0", s3, 0xffffffff80000000

        /* dynamic rounding via frm */
        li      t2, 1
        fsrm    s3, t2                  /* RTZ, returns old (RNE) */
        CHECK_EQ "fsrm returns old frm", s3, 0
        FS2 fdiv.s, dyn, 0x3f800000, 0x40400000, 0x3eaaaaaa, NX
        li      t2, 3
        fsrm    t2                      /* RUP */
        FS2 fdiv.s, dyn, 0xbf800000, 0x40400000, 0xbeaaaaaa, NX
        li      t2, 4
        fsrm    t2                      /* RMM */
        I2F fcvt.s.l, dyn, 16777217, BOX|0x4b800001, NX
        li      t2, 2
        fsrm    t2                      /* RDN */
        FS2 fsub.s, dyn, 0x40000000, 0x40000000, 0x80000000, 0
        frcsr   s3
        CHECK_EQ "fcsr = frm<<5", s3, (2 << 5)
        /* fflags accumulate; fcsr layout */
        csrw    fcsr, zero
        LDS     ft0, 0x3f800000
        LDS     ft1, 0x40400000
        LDS     ft3, 0
        fdiv.s  ft2, ft0, ft1
        fdiv.s  ft2, ft0, ft3
        frflags s3
        CHECK_EQ "flags accumulate NX|DZ", s3, NX|DZ
        li      t2, 0xff
        fscsr   t2
        frrm    s3
        CHECK_EQ "fscsr sets frm", s3, 7
        frflags s3
        CHECK_EQ "fscsr sets flags", s3, 0x1f
        li      t2, 0
        fsflags s3, t2
        CHECK_EQ "fsflags returns old", s3, 0x1f
        /* reserved rm values are illegal; dyn with frm=5..7 is illegal */
        CLEAR_TRAP
        .word   0x0020d053              /* fadd.s f0,f1,f2 rm=5 */
        TRAP_CAUSE s3
        CHECK_EQ "rm=5 illegal", s3, CAUSE_ILLEGAL
        CLEAR_TRAP
        .word   0x0020e053              /* rm=6 */
        TRAP_CAUSE s3
        CHECK_EQ "rm=6 illegal", s3, CAUSE_ILLEGAL
        CLEAR_TRAP
        fadd.s  ft2, ft0, ft1, dyn      /* frm = 7 here */
        TRAP_CAUSE s3
        CHECK_EQ "dyn with frm=7 illegal", s3, CAUSE_ILLEGAL
        li      t2, 5
        fsrm    t2
        CLEAR_TRAP
        fmul.d  ft2, ft0, ft1, dyn
        TRAP_CAUSE s3
        CHECK_EQ "dyn with frm=5 illegal", s3, CAUSE_ILLEGAL
        CLEAR_TRAP
        fsgnj.d ft2, ft0, ft1           /* no rm field: legal */
        TRAP_COUNT s3
        CHECK_EQ "fsgnj legal with frm=5", s3, 0
        csrw    fcsr, zero

        /* mstatus.FS (Priv 3.1.6.6): Off -> illegal, writes make it Dirty */
        li      t2, MSTATUS_FS
        csrc    mstatus, t2
        CLEAR_TRAP
        fadd.d  ft2, ft0, ft1
        TRAP_CAUSE s3
        CHECK_EQ "FS=Off: fadd illegal", s3, CAUSE_ILLEGAL
        CLEAR_TRAP
        csrr    s3, fflags
        TRAP_CAUSE s3
        CHECK_EQ "FS=Off: csrr fflags illegal", s3, CAUSE_ILLEGAL
        CLEAR_TRAP
        fld     ft2, 0(s1)
        TRAP_CAUSE s3
        CHECK_EQ "FS=Off: fld illegal", s3, CAUSE_ILLEGAL
        li      t2, (1 << 13)
        csrs    mstatus, t2             /* Initial */
        fadd.d  ft2, ft0, ft1
        csrr    s3, mstatus
        srli    s3, s3, 13
        andi    s3, s3, 3
        CHECK_EQ "FP write makes FS Dirty", s3, 3
        TEST_END

        .data
        .balign 16
fbuf:   .skip 32

/* Zfhmin (Unprivileged ISA, "Zfh" chapter, Zfhmin 1.0): FLH, FSH,
   FMV.X.H, FMV.H.X and FCVT between half and single/double precision.
   A half in a 64-bit f register is NaN-boxed (upper 48 bits ones); a
   conversion reading one that is not sees the canonical NaN (0x7e00).
   mstatus.FS rules as for F and D. Expected values worked from the
   binary16 format (bias 15, 10 fraction bits).
   qemu-cpu: rv64,Zfhmin=true
   strata-args: --cpu max */
#include "test.h"
        .option arch, +zfhmin

#define FLAG_NV 0x10
#define FLAG_OF 0x04
#define FLAG_UF 0x02
#define FLAG_NX 0x01

/* f register <- 64-bit bits */
.macro FSET freg, bits
        li      t0, \bits
        fmv.d.x \freg, t0
.endm

TEST_BEGIN(zfhmin)
        li      t0, MSTATUS_FS
        csrs    mstatus, t0
        csrw    fflags, zero
        la      s2, hdata

        /* loads box, stores take the low 16 bits */
        flh     ft0, 0(s2)
        CHECK_F "flh boxes", ft0, 0xffffffffffff3c00
        flh     ft1, 2(s2)
        CHECK_F "flh 0x8001", ft1, 0xffffffffffff8001
        FSET    ft2, 0x123456789abcdef0
        fsh     ft2, 8(s2)
        ld      a4, 8(s2)
        CHECK_EQ "fsh stores the low 16 bits, unboxed or not", a4, 0xdef0
        flh     ft3, 3(s2)
        CHECK_F "flh misaligned", ft3, 0xffffffffffff0080

        /* moves */
        fmv.x.h a4, ft1
        CHECK_EQ "fmv.x.h sign-extends", a4, 0xffffffffffff8001
        fmv.x.h a4, ft2
        CHECK_EQ "fmv.x.h of an unboxed value: the low 16 bits", a4, 0xffffffffffffdef0
        li      a5, 0xabcd7bff
        fmv.h.x ft4, a5
        CHECK_F "fmv.h.x boxes the low 16 bits", ft4, 0xffffffffffff7bff

        /* widening: exact */
        fcvt.s.h ft5, ft0
        CHECK_F "fcvt.s.h 1.0", ft5, 0xffffffff3f800000
        fcvt.d.h ft5, ft4
        CHECK_F "fcvt.d.h 65504", ft5, 0x40effc0000000000
        li      a5, 0x0001
        fmv.h.x ft6, a5
        fcvt.s.h ft5, ft6
        CHECK_F "fcvt.s.h smallest subnormal 2^-24", ft5, 0xffffffff33800000
        fcvt.d.h ft5, ft1
        CHECK_F "fcvt.d.h -2^-24", ft5, 0xbe70000000000000
        CHECK_FLAGS "widening exact: no flags", 0
        /* not boxed: canonical NaN in, canonical NaN out, no flag (quiet) */
        fcvt.s.h ft5, ft2
        CHECK_F "fcvt.s.h of an unboxed value", ft5, 0xffffffff7fc00000
        CHECK_FLAGS "unboxed: no flags", 0
        li      a5, 0x7c01
        fmv.h.x ft6, a5
        fcvt.d.h ft5, ft6
        CHECK_F "fcvt.d.h signalling NaN", ft5, 0x7ff8000000000000
        CHECK_FLAGS "signalling NaN: NV", FLAG_NV

        /* narrowing, each rounding mode where it matters */
        FSET    ft7, 0xffffffff3f800000          /* 1.0f */
        fcvt.h.s ft5, ft7
        CHECK_F "fcvt.h.s 1.0", ft5, 0xffffffffffff3c00
        FSET    ft7, 0xffffffff477ff000          /* 65520.0f */
        fcvt.h.s ft5, ft7, rne
        CHECK_F "fcvt.h.s 65520 rne: inf", ft5, 0xffffffffffff7c00
        CHECK_FLAGS "65520 rne: OF NX", FLAG_OF|FLAG_NX
        fcvt.h.s ft5, ft7, rtz
        CHECK_F "fcvt.h.s 65520 rtz: 65504", ft5, 0xffffffffffff7bff
        CHECK_FLAGS "65520 rtz: NX", FLAG_NX
        FSET    ft7, 0x3ff0020000000000          /* 1 + 2^-11 */
        fcvt.h.d ft5, ft7, rne
        CHECK_F "fcvt.h.d 1+2^-11 rne: 1", ft5, 0xffffffffffff3c00
        fcvt.h.d ft5, ft7, rup
        CHECK_F "fcvt.h.d 1+2^-11 rup", ft5, 0xffffffffffff3c01
        fcvt.h.d ft5, ft7, rmm
        CHECK_F "fcvt.h.d 1+2^-11 rmm", ft5, 0xffffffffffff3c01
        CHECK_FLAGS "halfway: NX", FLAG_NX
        FSET    ft7, 0xbff0020000000000          /* -(1 + 2^-11) */
        fcvt.h.d ft5, ft7, rdn
        CHECK_F "fcvt.h.d -(1+2^-11) rdn", ft5, 0xffffffffffffbc01
        csrw    fflags, zero
        FSET    ft7, 0xffffffff33000000          /* 2^-25 */
        fcvt.h.s ft5, ft7, rne
        CHECK_F "fcvt.h.s 2^-25 rne: +0", ft5, 0xffffffffffff0000
        CHECK_FLAGS "2^-25: UF NX", FLAG_UF|FLAG_NX
        FSET    ft7, 0xffffffff7f800001          /* sNaN */
        fcvt.h.s ft5, ft7
        CHECK_F "fcvt.h.s sNaN: canonical", ft5, 0xffffffffffff7e00
        CHECK_FLAGS "fcvt.h.s sNaN: NV", FLAG_NV
        FSET    ft7, 0x0000000000003c00          /* a half, but not a boxed single */
        fcvt.h.s ft5, ft7
        CHECK_F "fcvt.h.s of an unboxed single", ft5, 0xffffffffffff7e00
        /* dynamic rounding from frm, and a reserved frm */
        li      t0, 1
        csrw    frm, t0
        FSET    ft7, 0xffffffff477ff000
        fcvt.h.s ft5, ft7
        CHECK_F "fcvt.h.s dyn = rtz", ft5, 0xffffffffffff7bff
        li      t0, 5
        csrw    frm, t0
        EXPECT_TRAP "fcvt.h.s with frm=5: illegal", CAUSE_ILLEGAL, fcvt.h.s ft5, ft7
        csrw    frm, zero
        csrw    fflags, zero

        /* mstatus.FS: Off makes them illegal; a write makes FS Dirty */
        li      t0, MSTATUS_FS
        csrc    mstatus, t0
        EXPECT_TRAP "FS=Off flh", CAUSE_ILLEGAL, flh ft0, 0(s2)
        EXPECT_TRAP "FS=Off fsh", CAUSE_ILLEGAL, fsh ft0, 0(s2)
        EXPECT_TRAP "FS=Off fmv.x.h", CAUSE_ILLEGAL, fmv.x.h a4, ft0
        EXPECT_TRAP "FS=Off fcvt.s.h", CAUSE_ILLEGAL, fcvt.s.h ft0, ft1
        li      t0, (1 << 13)                    /* FS = Initial */
        csrs    mstatus, t0
        flh     ft0, 0(s2)
        csrr    a4, mstatus
        srli    a4, a4, 13
        andi    a4, a4, 3
        CHECK_EQ "flh makes FS Dirty", a4, 3
        TEST_END

        .data
        .balign 8
hdata:  .half   0x3c00, 0x8001, 0x8000, 0x0001
        .dword  0

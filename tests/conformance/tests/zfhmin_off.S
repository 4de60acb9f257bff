/* Without Zfhmin (Strata's default CPU; QEMU's default CPU) the half
   loads, stores, moves and conversions are reserved encodings: illegal
   instruction, even with mstatus.FS on.
   qemu-cpu: rv64,Zfhmin=false,Zfh=false
   strata-args: --cpu default */
#include "test.h"
        .option arch, +zfhmin

TEST_BEGIN(zfhmin_off)
        li      t0, MSTATUS_FS
        csrs    mstatus, t0
        la      s2, hdata
        EXPECT_TRAP "flh", CAUSE_ILLEGAL, flh ft0, 0(s2)
        EXPECT_TRAP "fsh", CAUSE_ILLEGAL, fsh ft0, 0(s2)
        EXPECT_TRAP "fmv.x.h", CAUSE_ILLEGAL, fmv.x.h a4, ft0
        EXPECT_TRAP "fmv.h.x", CAUSE_ILLEGAL, fmv.h.x ft0, a4
        EXPECT_TRAP "fcvt.s.h", CAUSE_ILLEGAL, fcvt.s.h ft0, ft1
        EXPECT_TRAP "fcvt.h.s", CAUSE_ILLEGAL, fcvt.h.s ft0, ft1
        EXPECT_TRAP "fcvt.d.h", CAUSE_ILLEGAL, fcvt.d.h ft0, ft1
        EXPECT_TRAP "fcvt.h.d", CAUSE_ILLEGAL, fcvt.h.d ft0, ft1
        TRAP_TVAL a4
        CHECK_EQ "fcvt.h.d mtval", a4, 0x4410f053
        TEST_END

        .data
        .balign 8
hdata:  .dword  0

/* Without Zawrs (Strata's default CPU; QEMU 7.2, which has none) WRS.NTO
   and WRS.STO are reserved SYSTEM encodings: illegal instruction even in
   M, with or without a reservation.
   strata-args: --cpu default */
#include "test.h"

.macro LR_STO
        lr.d    t1, (s2)
        .word   0x01d00073
.endm

TEST_BEGIN(zawrs_off)
        la      s2, scratch
        EXPECT_TRAP "M wrs.nto", CAUSE_ILLEGAL, .word 0x00d00073
        TRAP_TVAL a4
        CHECK_EQ "wrs.nto mtval", a4, 0x00d00073
        EXPECT_TRAP "M lr; wrs.sto", CAUSE_ILLEGAL, LR_STO
        TRAP_TVAL a4
        CHECK_EQ "wrs.sto mtval", a4, 0x01d00073
        TEST_END

        .data
        .balign 8
scratch: .dword 0

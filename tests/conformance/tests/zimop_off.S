/* Without Zimop (Strata's default CPU; QEMU 7.2, which has none) MOP.R.n
   and MOP.RR.n are reserved SYSTEM encodings: illegal instruction even in
   M (Unpriv. 1.2, Priv. 3.1.16).
   strata-args: --cpu default */
#include "test.h"

TEST_BEGIN(zimop_off)
        EXPECT_TRAP "M mop.r.0", CAUSE_ILLEGAL, .word 0x81c4c9f3
        EXPECT_TRAP "M mop.r.31", CAUSE_ILLEGAL, .word 0xcdf4c9f3
        EXPECT_TRAP "M mop.rr.0", CAUSE_ILLEGAL, .word 0x8324c9f3
        EXPECT_TRAP "M mop.rr.7", CAUSE_ILLEGAL, .word 0xcf24c9f3
        TEST_END

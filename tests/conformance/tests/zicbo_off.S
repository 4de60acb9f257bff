/* Without Zicbom/Zicboz (Strata's default CPU; QEMU 7.2, which has
   neither) the four CBO encodings are reserved: illegal instruction even in
   M (Unpriv. 1.2, Priv. 3.1.16). Zicbop's PREFETCH.I/R/W are ORI with
   rd = 0, HINTs every hart executes as no-ops (Unpriv. 2.9), with or
   without the extension.
   strata-args: --cpu default */
#include "test.h"

TEST_BEGIN(zicbo_off)
        la      s2, scratch
        EXPECT_TRAP "M cbo.inval", CAUSE_ILLEGAL, .insn i 0x0f, 2, x0, s2, 0
        EXPECT_TRAP "M cbo.clean", CAUSE_ILLEGAL, .insn i 0x0f, 2, x0, s2, 1
        EXPECT_TRAP "M cbo.flush", CAUSE_ILLEGAL, .insn i 0x0f, 2, x0, s2, 2
        EXPECT_TRAP "M cbo.zero", CAUSE_ILLEGAL, .insn i 0x0f, 2, x0, s2, 4
        ld      s3, scratch
        CHECK_EQ "cbo.zero did not write", s3, 0x5555aaaa5555aaaa
        /* prefetch.i/r/w 32(s2): ori x0, s2, 32 + 0/1/3 */
        EXPECT_TRAP "M prefetch.i", NO_TRAP, ori x0, s2, 32
        EXPECT_TRAP "M prefetch.r", NO_TRAP, ori x0, s2, 33
        EXPECT_TRAP "M prefetch.w", NO_TRAP, ori x0, s2, 35
        TEST_END

        .data
        .balign 64
scratch: .dword 0x5555aaaa5555aaaa

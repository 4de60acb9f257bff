/* Without Svinval (strata's default CPU; QEMU's default, svinval off) its
   five instructions are reserved encodings: illegal instruction even in M
   (Unpriv. 1.2, Priv. 3.1.16).
   qemu-cpu: rv64,h=true
   strata-args: --cpu default */
#include "test.h"

TEST_BEGIN(svinval_off)
        EXPECT_TRAP "M sinval.vma", CAUSE_ILLEGAL, .insn r 0x73, 0, 0x0b, x0, x0, x0
        EXPECT_TRAP "M sfence.w.inval", CAUSE_ILLEGAL, .insn r 0x73, 0, 0x0c, x0, x0, x0
        EXPECT_TRAP "M sfence.inval.ir", CAUSE_ILLEGAL, .insn r 0x73, 0, 0x0c, x0, x0, x1
        EXPECT_TRAP "M hinval.vvma", CAUSE_ILLEGAL, .insn r 0x73, 0, 0x13, x0, x0, x0
        EXPECT_TRAP "M hinval.gvma", CAUSE_ILLEGAL, .insn r 0x73, 0, 0x33, x0, x0, x0
        TEST_END

/* Without Zcb and Zcmop (Strata's default CPU; QEMU 7.2, which has
   neither) their words are RVC's reserved encodings: quadrant 0 funct3
   100, quadrant 1's C.SUBW/C.ADDW neighbours with funct2 10 and 11, and
   C.LUI rd, 0 (Unpriv. "C" extension, Table "RVC opcode map"): illegal
   instruction even in M, with the 16 bits in mtval.
   strata-args: --cpu default */
#include "test.h"

.macro ILL name, word
        EXPECT_TRAP "\name", CAUSE_ILLEGAL, .2byte \word
        TRAP_TVAL a4
        CHECK_EQ "\name mtval", a4, \word
.endm

TEST_BEGIN(zcb_off)
        la      s0, zdata
        mv      s1, s0
        ILL     "c.lbu", 0x84c0
        ILL     "c.lhu", 0x84a0
        ILL     "c.lh", 0x84e0
        ILL     "c.sb", 0x88c0
        ILL     "c.sh", 0x8ca0
        ILL     "c.zext.b", 0x9c61
        ILL     "c.sext.b", 0x9c65
        ILL     "c.zext.h", 0x9c69
        ILL     "c.sext.h", 0x9c6d
        ILL     "c.zext.w", 0x9c71
        ILL     "c.not", 0x9c75
        ILL     "c.mul", 0x9c41
        ILL     "c.mop.1", 0x6081
        ILL     "c.mop.15", 0x6781
        ld      a4, 0(s1)
        CHECK_EQ "c.sb/c.sh stored nothing", a4, 0
        TEST_END

        .data
        .balign 8
zdata:  .dword  0, 0

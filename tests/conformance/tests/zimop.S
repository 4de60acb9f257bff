/* Zimop (Unprivileged ISA, "May-Be-Operations", 1.0): MOP.R.n (n = 0..31)
   and MOP.RR.n (n = 0..7) write 0 to rd and have no other effect, in any
   mode, until another extension redefines them (none does on Strata).
   qemu-lacks: zimop (QEMU 7.2 has no Zimop: the self-checks against the
   specification are the oracle)
   strata-args: --cpu max */
#include "test.h"

/* MOP.R.n rd, rs1: bit 31, n4 at 30, n3:n2 at 27:26, 0111 at 25:22,
   n1:n0 at 21:20; MOP.RR.n rd, rs1, rs2: n2 at 30, n1:n0 at 27:26, bit 25 */
.macro MOPR n, name
        li      s3, -1
        li      s1, 0x1234
        .word   0x80000000 | ((\n >> 4) & 1) << 30 | ((\n >> 2) & 3) << 26 | 7 << 22 | (\n & 3) << 20 | 9 << 15 | 4 << 12 | 19 << 7 | 0x73
        CHECK_EQ "mop.r.\n writes 0", s3, 0
.endm
.macro MOPRR n
        li      s3, -1
        li      s1, 0x1234
        li      s2, 0x5678
        .word   0x82000000 | ((\n >> 2) & 1) << 30 | (\n & 3) << 26 | 18 << 20 | 9 << 15 | 4 << 12 | 19 << 7 | 0x73
        CHECK_EQ "mop.rr.\n writes 0", s3, 0
.endm

TEST_BEGIN(zimop)
        .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        MOPR    \n
        .endr
        .irp n, 0,1,2,3,4,5,6,7
        MOPRR   \n
        .endr
        CHECK_EQ "sources unchanged", s1, 0x1234
        /* rd = x0: nothing written, no trap; and from U */
        EXPECT_TRAP "M mop.r.0 x0", NO_TRAP, .word 0x81c4c073
        ACCESS  "U mop.r.31: no trap", PRV_U, 0, NO_TRAP, .word 0xcdf4c9f3
        ACCESS  "S mop.rr.7: no trap", PRV_S, 0, NO_TRAP, .word 0xcf24c9f3
        TEST_END

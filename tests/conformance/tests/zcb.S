/* Zcb (Unprivileged ISA, "Zc*" 1.0.0) and Zcmop ("Zcmop" 1.0).
   Zcb: C.LBU, C.LHU, C.LH, C.SB, C.SH (rd'/rs1'/rs2' name x8..x15;
   C.LBU/C.SB take a 2-bit offset with uimm[0] in bit 6 and uimm[1] in
   bit 5, the halfword forms uimm[1] in bit 5), C.ZEXT.B, C.SEXT.B,
   C.ZEXT.H, C.SEXT.H, C.ZEXT.W, C.NOT, C.MUL, each the 32-bit
   instruction it stands for with rd = rs1. Zcmop: C.MOP.n (n odd, 1..15)
   is C.LUI x[n], 0, and writes no register.
   The words are written with .2byte from the encoding figures (binutils
   2.40 lacks both extensions); expected values worked by hand.
   qemu-lacks: zcb (QEMU 7.2 has neither Zcb nor Zcmop: the self-checks
   against the specification are the oracle)
   strata-args: --cpu max */
#include "test.h"

#define NOWHERE 0x90000000   /* above 128 MiB of RAM: nothing mapped */

/* register numbers 8..15 */
.macro CLBU rd, rs1, uimm
        .2byte  0x8000 | (\rs1 - 8) << 7 | (\uimm & 1) << 6 | (\uimm >> 1) << 5 | (\rd - 8) << 2
.endm
.macro CLHU rd, rs1, uimm
        .2byte  0x8400 | (\rs1 - 8) << 7 | (\uimm >> 1) << 5 | (\rd - 8) << 2
.endm
.macro CLH rd, rs1, uimm
        .2byte  0x8440 | (\rs1 - 8) << 7 | (\uimm >> 1) << 5 | (\rd - 8) << 2
.endm
.macro CSB rs2, rs1, uimm
        .2byte  0x8800 | (\rs1 - 8) << 7 | (\uimm & 1) << 6 | (\uimm >> 1) << 5 | (\rs2 - 8) << 2
.endm
.macro CSH rs2, rs1, uimm
        .2byte  0x8c00 | (\rs1 - 8) << 7 | (\uimm >> 1) << 5 | (\rs2 - 8) << 2
.endm
/* C.ZEXT.B .. C.NOT: subop 0..5 */
.macro CUNARY rd, subop
        .2byte  0x9c61 | (\rd - 8) << 7 | \subop << 2
.endm
.macro CMUL rd, rs2
        .2byte  0x9c41 | (\rd - 8) << 7 | (\rs2 - 8) << 2
.endm
.macro CMOP n
        .2byte  0x6081 | (\n >> 1) << 8
.endm

.macro UN name, subop, in, exp
        li      a0, \in
        CUNARY  10, \subop
        CHECK_EQ "\name(\in)", a0, \exp
.endm

TEST_BEGIN(zcb)
        /* loads: bytes 11 22 33 44 55 66 77 88 a0 b0 c0 d0 at zdata; base
           s1 (x9), results in a4 (x14): CHECK_EQ clobbers a0..a3 */
        la      s1, zdata
        addi    s1, s1, 4
        CLBU    14, 9, 0
        CHECK_EQ "c.lbu 0", a4, 0x55
        CLBU    14, 9, 1
        CHECK_EQ "c.lbu 1", a4, 0x66
        CLBU    14, 9, 2
        CHECK_EQ "c.lbu 2", a4, 0x77
        CLBU    14, 9, 3
        CHECK_EQ "c.lbu 3 zero-extends", a4, 0x88
        CLHU    14, 9, 0
        CHECK_EQ "c.lhu 0", a4, 0x6655
        CLHU    14, 9, 2
        CHECK_EQ "c.lhu 2 zero-extends", a4, 0x8877
        CLH     14, 9, 2
        CHECK_EQ "c.lh 2 sign-extends", a4, 0xffffffffffff8877
        CLH     14, 9, 0
        CHECK_EQ "c.lh 0", a4, 0x6655
        /* rd' = rs1' */
        mv      s0, s1
        CLBU    8, 8, 3
        CHECK_EQ "c.lbu s0, 3(s0)", s0, 0x88

        /* stores into zbuf (zeroed) */
        la      s1, zbuf
        li      a4, 0x1234567890abcdef
        CSB     14, 9, 0
        li      a4, 0x5a
        CSB     14, 9, 3
        li      a5, 0x7788
        CSH     15, 9, 2
        ld      a4, 0(s1)
        CHECK_EQ "c.sb/c.sh bytes", a4, 0x778800ef
        li      a5, -1
        CSH     15, 9, 0
        CSB     15, 9, 2
        ld      a4, 0(s1)
        CHECK_EQ "c.sh 0, c.sb 2", a4, 0x77ffffff
        ld      a4, 8(s1)
        CHECK_EQ "nothing past the word", a4, 0

        /* unary: subop 0 zext.b, 1 sext.b, 2 zext.h, 3 sext.h, 4 zext.w, 5 not */
        UN      "c.zext.b", 0, -128, 0x80
        UN      "c.zext.b", 0, 0x1ff, 0xff
        UN      "c.sext.b", 1, 0x1280, 0xffffffffffffff80
        UN      "c.sext.b", 1, 0xff7f, 0x7f
        UN      "c.zext.h", 2, -2, 0xfffe
        UN      "c.zext.h", 2, 0x12345, 0x2345
        UN      "c.sext.h", 3, 0x18000, 0xffffffffffff8000
        UN      "c.sext.h", 3, 0xffff7fff, 0x7fff
        UN      "c.zext.w", 4, -1, 0xffffffff
        UN      "c.zext.w", 4, 0x80000000, 0x80000000
        UN      "c.not", 5, 0x0f0f, 0xfffffffffffff0f0
        UN      "c.not", 5, -1, 0

        /* c.mul: the low 64 bits */
        li      a4, 0x100000001
        li      a5, 0x300000005
        CMUL    14, 15
        CHECK_EQ "c.mul wraps", a4, 0x800000005
        li      s0, -3
        li      a5, 7
        CMUL    8, 15
        CHECK_EQ "c.mul signed", s0, 0xffffffffffffffeb
        CHECK_EQ "c.mul leaves rs2", a5, 7

        /* faults are the expanded instruction's, mtval the address */
        li      s1, NOWHERE
        EXPECT_TRAP "c.lbu from hole", CAUSE_LOAD_ACCESS, CLBU 14, 9, 3
        TRAP_TVAL a4
        sub     a4, a4, s1
        CHECK_EQ "c.lbu fault mtval", a4, 3
        EXPECT_TRAP "c.sh to hole", CAUSE_STORE_ACCESS, CSH 14, 9, 2
        TRAP_TVAL a4
        sub     a4, a4, s1
        CHECK_EQ "c.sh fault mtval", a4, 2
        /* reserved: unary subop 110, c.sh with bit 6 set */
        EXPECT_TRAP "c.unary subop 110", CAUSE_ILLEGAL, CUNARY 10, 6
        TRAP_TVAL a4
        CHECK_EQ "illegal mtval = the 16 bits", a4, 0x9d79
        EXPECT_TRAP "c.sh bit 6 reserved", CAUSE_ILLEGAL, .2byte 0x8c40

        /* from U: the same instructions (ACCESS sets s1 to its va) */
        la      s0, zdata
        li      a4, 0
        ACCESS  "U c.lhu", PRV_U, 0, NO_TRAP, CLHU 14, 8, 2
        CHECK_EQ "U c.lhu value", a4, 0x4433

        /* Zcmop: no trap, no register written, x[n] not changed */
        li      s1, 0x99
        li      a5, 0x555
        li      a4, 0x444
        EXPECT_TRAP "c.mop.1", NO_TRAP, CMOP 1
        EXPECT_TRAP "c.mop.3", NO_TRAP, CMOP 3
        EXPECT_TRAP "c.mop.5", NO_TRAP, CMOP 5
        EXPECT_TRAP "c.mop.7", NO_TRAP, CMOP 7
        EXPECT_TRAP "c.mop.9", NO_TRAP, CMOP 9
        EXPECT_TRAP "c.mop.11", NO_TRAP, CMOP 11
        EXPECT_TRAP "c.mop.13", NO_TRAP, CMOP 13
        EXPECT_TRAP "c.mop.15", NO_TRAP, CMOP 15
        CHECK_EQ "c.mop.9 leaves s1", s1, 0x99
        CHECK_EQ "c.mop.15 leaves a5", a5, 0x555
        CHECK_EQ "c.mops leave a4", a4, 0x444
        ACCESS  "U c.mop.15", PRV_U, 0, NO_TRAP, CMOP 15
        /* even registers, and x17 up, stay reserved C.LUI rd, 0 */
        EXPECT_TRAP "c.lui x4, 0 reserved", CAUSE_ILLEGAL, .2byte 0x6201
        EXPECT_TRAP "c.lui x17, 0 reserved", CAUSE_ILLEGAL, .2byte 0x6881
        TEST_END

        .data
        .balign 8
zdata:  .byte   0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0xa0, 0xb0, 0xc0, 0xd0
        .balign 8
zbuf:   .dword  0, 0

/* C extension (Unprivileged 20191213 ch. 16): every RV64C form, immediate
   edge cases, and reserved encodings raising illegal instruction. */
#include "test.h"

.macro ILLEGAL16 name, bits
        CLEAR_TRAP
        .hword  \bits
        TRAP_CAUSE a0
        CHECK_EQ "\name: illegal", a0, CAUSE_ILLEGAL
        TRAP_TVAL a0
        li      a1, \bits
        xor     a1, a1, a0
        seqz    a1, a1
        seqz    a0, a0
        or      a0, a0, a1
        CHECK_EQ "\name: mtval 0 or bits", a0, 1
.endm
.macro HINT16 name, bits
        CLEAR_TRAP
        .hword  \bits
        TRAP_COUNT a0
        CHECK_EQ "\name: hint executes as nop", a0, 0
.endm

TEST_BEGIN(rvc)
        .option push
        .option rvc
        /* CI */
        c.li    a4, -32
        CHECK_EQ "c.li -32", a4, -32
        c.li    a4, 31
        CHECK_EQ "c.li 31", a4, 31
        c.addi  a4, -32
        CHECK_EQ "c.addi -32", a4, -1
        li      a4, 0x7fffffff
        c.addiw a4, 1
        CHECK_EQ "c.addiw sign-extends", a4, 0xffffffff80000000
        li      a4, 0x1234567800000005
        c.addiw a4, 0
        CHECK_EQ "c.addiw 0 = sext.w", a4, 5
        c.lui   a4, 1
        CHECK_EQ "c.lui 1", a4, 0x1000
        c.lui   a4, 0x1f
        CHECK_EQ "c.lui 0x1f", a4, 0x1f000
        c.lui   a4, 0xfffe0
        CHECK_EQ "c.lui 0xfffe0 (nzimm[17] sign)", a4, 0xfffffffffffe0000
        c.lui   a4, 0xfffff
        CHECK_EQ "c.lui 0xfffff", a4, 0xfffffffffffff000
        li      a4, 1
        c.slli  a4, 63
        CHECK_EQ "c.slli 63", a4, 0x8000000000000000
        li      a4, 3
        c.slli  a4, 1
        CHECK_EQ "c.slli 1", a4, 6
        /* addi16sp / addi4spn */
        mv      s2, sp
        c.addi16sp sp, -512
        sub     a4, s2, sp
        CHECK_EQ "c.addi16sp -512", a4, 512
        c.addi16sp sp, 496
        sub     a4, s2, sp
        CHECK_EQ "c.addi16sp +496", a4, 16
        c.addi16sp sp, 16
        sub     a4, s2, sp
        CHECK_EQ "c.addi16sp +16", a4, 0
        c.addi4spn a4, sp, 1020
        sub     a4, a4, sp
        CHECK_EQ "c.addi4spn 1020", a4, 1020
        c.addi4spn a4, sp, 4
        sub     a4, a4, sp
        CHECK_EQ "c.addi4spn 4", a4, 4
        /* stack-relative loads/stores on a scratch buffer */
        la      sp, buf
        li      a4, 0x8899aabbccddeeff
        c.sdsp  a4, 504(sp)
        c.ldsp  a5, 504(sp)
        CHECK_EQ "c.sdsp/c.ldsp 504", a5, 0x8899aabbccddeeff
        c.swsp  a4, 252(sp)
        c.lwsp  a5, 252(sp)
        CHECK_EQ "c.swsp/c.lwsp sign-extends", a5, 0xffffffffccddeeff
        c.fsdsp fa4, 0(sp)
        li      a4, 0x400921fb54442d18
        fmv.d.x fa4, a4
        c.fsdsp fa4, 8(sp)
        c.fldsp fa5, 8(sp)
        CHECK_F "c.fsdsp/c.fldsp", fa5, 0x400921fb54442d18
        mv      sp, s2
        /* CL / CS */
        la      s0, buf
        li      a4, 0x0123456789abcdef
        c.sd    a4, 248(s0)
        c.ld    a5, 248(s0)
        CHECK_EQ "c.sd/c.ld 248", a5, 0x0123456789abcdef
        c.sw    a4, 124(s0)
        c.lw    a5, 124(s0)
        CHECK_EQ "c.sw/c.lw sign-extends", a5, 0xffffffff89abcdef
        lw      a5, 128(s0)
        CHECK_EQ "c.sw wrote 4 bytes only", a5, 0
        c.fsd   fa4, 16(s0)
        c.fld   fa3, 16(s0)
        CHECK_F "c.fsd/c.fld", fa3, 0x400921fb54442d18
        /* CR */
        li      a4, 40
        li      a5, 2
        c.add   a4, a5
        CHECK_EQ "c.add", a4, 42
        c.mv    a4, a5
        CHECK_EQ "c.mv", a4, 2
        /* CA */
        li      a4, 5
        li      a5, 7
        c.sub   a4, a5
        CHECK_EQ "c.sub", a4, -2
        li      a4, 0xf0f0
        li      a5, 0xff00
        c.xor   a4, a5
        CHECK_EQ "c.xor", a4, 0x0ff0
        li      a4, 0xf0f0
        c.or    a4, a5
        CHECK_EQ "c.or", a4, 0xfff0
        li      a4, 0xf0f0
        c.and   a4, a5
        CHECK_EQ "c.and", a4, 0xf000
        li      a4, 0x80000000
        li      a5, 1
        c.subw  a4, a5
        CHECK_EQ "c.subw", a4, 0x7fffffff
        li      a4, 0x7fffffff
        c.addw  a4, a5
        CHECK_EQ "c.addw sign-extends", a4, 0xffffffff80000000
        /* CB arithmetic */
        li      a4, 0x8000000000000000
        c.srli  a4, 63
        CHECK_EQ "c.srli 63", a4, 1
        li      a4, 0x8000000000000000
        c.srai  a4, 63
        CHECK_EQ "c.srai 63", a4, -1
        li      a4, 0x8000000000000000
        c.srai  a4, 32
        CHECK_EQ "c.srai 32", a4, 0xffffffff80000000
        li      a4, 0xfff
        c.andi  a4, -16
        CHECK_EQ "c.andi -16", a4, 0xff0
        li      a4, 0xfff
        c.andi  a4, 31
        CHECK_EQ "c.andi 31", a4, 31
        /* CB branches */
        li      a4, 0
        li      a5, 0
        c.beqz  a4, 1f
        li      a5, 1
1:      CHECK_EQ "c.beqz taken", a5, 0
        li      a4, 1
        li      a5, 0
        c.beqz  a4, 2f
        li      a5, 1
2:      CHECK_EQ "c.beqz not taken", a5, 1
        li      a5, 0
        c.bnez  a4, 3f
        li      a5, 1
3:      CHECK_EQ "c.bnez taken", a5, 0
        li      a4, 0
        li      a5, 0
        c.bnez  a4, 4f
        li      a5, 1
4:      CHECK_EQ "c.bnez not taken", a5, 1
        /* CJ / jumps */
        li      a5, 0
        c.j     5f
        li      a5, 1
5:      CHECK_EQ "c.j", a5, 0
        li      a4, 3
6:      addi    a4, a4, -1
        beqz    a4, 7f
        c.j     6b
7:      CHECK_EQ "c.j backward", a4, 0
        la      a4, 8f
        li      a5, 0
        c.jr    a4
        li      a5, 1
8:      CHECK_EQ "c.jr", a5, 0
        la      a4, 9f
        c.jalr  a4
10:     j       11f
9:      la      s3, 10b
        sub     s3, ra, s3
        CHECK_EQ "c.jalr links pc+2", s3, 0
11:
        /* c.nop, HINTs (must not trap) */
        CLEAR_TRAP
        c.nop
        TRAP_COUNT a0
        CHECK_EQ "c.nop", a0, 0
        HINT16 "c.nop imm=1", 0x0005
        HINT16 "c.li x0,5", 0x4015
        HINT16 "c.mv x0,a0", 0x802a
        HINT16 "c.add x0,a0", 0x902a
        HINT16 "c.addi a0,0", 0x0501
        HINT16 "c.slli x0,1", 0x0006
        /* reserved encodings */
        ILLEGAL16 "all-zero", 0x0000
        ILLEGAL16 "c.addi4spn imm=0", 0x0004
        ILLEGAL16 "c.addi16sp imm=0", 0x6101
        ILLEGAL16 "c.lui imm=0", 0x6501
        ILLEGAL16 "c.jr x0", 0x8002
        ILLEGAL16 "c.lwsp rd=x0", 0x4002
        ILLEGAL16 "c.ldsp rd=x0", 0x6002
        ILLEGAL16 "c.addiw rd=x0", 0x2001
        ILLEGAL16 "CA reserved funct 100111-10", 0x9c41
        ILLEGAL16 "CA reserved funct 100111-11", 0x9c61
        .option pop
        /* with FS=Off, compressed FP loads/stores are illegal */
        li      t2, MSTATUS_FS
        csrc    mstatus, t2
        la      s0, buf
        ILLEGAL16 "c.fld with FS=0", 0x2000
        li      t2, (1 << 13)
        csrs    mstatus, t2
        TEST_END

        .data
        .balign 64
buf:    .skip 1024

/* Reserved / unimplemented encodings must raise illegal instruction
   (Unprivileged 20191213 ch. 2, 5, 8, 24; Privileged 3.1.15, 3.3).  mtval
   may be 0 or the instruction bits (Priv 3.1.16), so it is normalized. */
#include "test.h"

.macro ILL name, bits
        CLEAR_TRAP
        SET_RESUME .Li\@
        .word   \bits
.Li\@:  DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name (\bits): illegal", a0, CAUSE_ILLEGAL
        TRAP_TVAL a0
        li      a1, \bits
        xor     a1, a1, a0
        seqz    a1, a1
        seqz    a0, a0
        or      a0, a0, a1
        CHECK_EQ "\name: mtval 0 or bits", a0, 1
.endm
/* privileged instruction executed in a lower mode */
.macro ILL_IN mode, name, insn:vararg
        CLEAR_TRAP
        SET_RESUME .Lj\@
        GOTO_MODE \mode
        \insn
.Lj\@:  RETURN_M
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name: illegal", a0, CAUSE_ILLEGAL
.endm

TEST_BEGIN(illegal)
        ILL "slliw shamt[5]=1", 0x0200909b
        ILL "srliw shamt[5]=1", 0x0200d09b
        ILL "sraiw shamt[5]=1", 0x4200d09b
        ILL "sllw funct7=0x20", 0x402090bb
        ILL "OP-32 funct3=1 funct7=1", 0x02a090bb
        ILL "OP funct7=0x7f", 0xfe0080b3
        ILL "jalr funct3=1", 0x00009067
        ILL "branch funct3=2", 0x00002063
        ILL "branch funct3=3", 0x00003063
        ILL "load funct3=7", 0x00007003
        ILL "store funct3=4", 0x00004023
        ILL "AMO funct5=00101", 0x2800b02f
        ILL "AMO width .b", 0x0000802f
        ILL "SYSTEM funct3=4", 0x00004073
        ILL "uret (N removed)", 0x00200073
        ILL "dret outside debug mode", 0x7b200073
        ILL "OP-FP fmt=Q (no Q)", 0x06007053
        ILL "fcvt.w.s rs2=5 reserved", 0xc0507053
        ILL "all ones 32-bit", 0xffffffff
        ILL "opcode 0x77 (OP-P, no P)", 0x00000077
        /* privileged instructions from lower modes */
        ILL_IN PRV_U, "mret in U", mret
        ILL_IN PRV_S, "mret in S", mret
        ILL_IN PRV_U, "sret in U", sret
        ILL_IN PRV_U, "sfence.vma in U", sfence.vma
        ILL_IN PRV_U, "csrr sscratch in U", csrr s3, sscratch
        ILL_IN PRV_U, "csrr mscratch in U", csrr s3, mscratch
        ILL_IN PRV_S, "csrr mscratch in S", csrr s3, mscratch
        ILL_IN PRV_S, "csrw mepc in S", csrw mepc, s3
        ILL_IN PRV_S, "csrr mhartid in S", csrr s3, mhartid
        ILL_IN PRV_S, "csrr pmpcfg0 in S", csrr s3, pmpcfg0
        /* the instruction after a skipped illegal one runs */
        li      s3, 0
        CLEAR_TRAP
        .word   0x00007003
        li      s3, 9
        CHECK_EQ "execution resumes after skipped 4-byte insn", s3, 9
        TEST_END

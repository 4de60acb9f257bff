/* Synchronous exceptions taken to M-mode (Privileged 20211203 3.1.15,
   3.1.16, 3.3) and mret/xRET stack behaviour. */
#include "test.h"

#define NOWHERE 0x90000000   /* above 128 MiB of RAM: nothing mapped */

TEST_BEGIN(traps)
        /* illegal instruction: OP with funct7=0x7f is reserved */
        CLEAR_TRAP
        SET_RESUME 2f
1:      .word 0xfe000033
2:      DISARM
        TRAP_CAUSE s3
        CHECK_EQ "reserved OP funct7: cause", s3, CAUSE_ILLEGAL
        TRAP_EPC s3
        la      s4, 1b
        sub     s3, s3, s4
        CHECK_EQ "reserved OP funct7: mepc", s3, 0
        TRAP_TVAL s3
        li      s4, 0xfe000033
        xor     s3, s3, s4
        seqz    s4, s3
        TRAP_TVAL s3
        seqz    s3, s3
        or      s3, s3, s4
        CHECK_EQ "illegal mtval is 0 or the bits", s3, 1
        TRAP_TVAL s3
        RECORD "illegal mtval raw", s3
        TRAP_PRV s3
        CHECK_EQ "trap from M: MPP=M", s3, PRV_M
        /* all-zero halfword is defined illegal (Unpriv 16.1) */
        CLEAR_TRAP
        .hword 0x0000
        TRAP_CAUSE s3
        CHECK_EQ "0x0000 illegal", s3, CAUSE_ILLEGAL
        /* all-ones 32-bit word: illegal (resume: length > 32 bits) */
        CLEAR_TRAP
        SET_RESUME 3f
        .word 0xffffffff
3:      DISARM
        TRAP_CAUSE s3
        CHECK_EQ "0xffffffff illegal", s3, CAUSE_ILLEGAL

        /* ecall from M: cause 11, mepc = the ecall itself, mtval = 0 */
        CLEAR_TRAP
        li      a7, 0
4:      ecall
        TRAP_CAUSE s3
        CHECK_EQ "ecall from M cause", s3, CAUSE_ECALL_M
        TRAP_EPC s3
        la      s4, 4b
        sub     s3, s3, s4
        CHECK_EQ "ecall mepc", s3, 0
        TRAP_TVAL s3
        CHECK_EQ "ecall mtval=0", s3, 0
        /* ebreak: cause 3, mepc = ebreak; mtval = pc or 0 */
        CLEAR_TRAP
5:      ebreak
        TRAP_CAUSE s3
        CHECK_EQ "ebreak cause", s3, CAUSE_BREAKPOINT
        TRAP_EPC s3
        la      s4, 5b
        sub     s3, s3, s4
        CHECK_EQ "ebreak mepc", s3, 0
        TRAP_TVAL s3
        la      s4, 5b
        xor     s4, s3, s4
        seqz    s4, s4
        seqz    s3, s3
        or      s3, s3, s4
        CHECK_EQ "ebreak mtval pc or 0", s3, 1
        /* c.ebreak: same, 2-byte instruction skipped by the handler */
        CLEAR_TRAP
        li      s5, 0
        c.ebreak
        li      s5, 1
        TRAP_CAUSE s3
        CHECK_EQ "c.ebreak cause", s3, CAUSE_BREAKPOINT
        CHECK_EQ "c.ebreak resumes at next insn", s5, 1

        /* ecall from S and U */
        CLEAR_TRAP
        GOTO_MODE PRV_S
        li      a7, 0
        ecall
        RETURN_M
        TRAP_CAUSE s3                   /* RETURN_M is not recorded */
        CHECK_EQ "ecall from S cause", s3, CAUSE_ECALL_S
        TRAP_COUNT s3
        CHECK_EQ "one trap from S", s3, 1
        TRAP_PRV s3
        CHECK_EQ "trap from S: MPP=S", s3, PRV_S
        CLEAR_TRAP
        GOTO_MODE PRV_U
        li      s5, 0
        csrr    s5, mstatus             /* illegal in U */
        li      a7, 0
        ecall
        RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "ecall from U cause", s3, CAUSE_ECALL_U
        TRAP_COUNT s3
        CHECK_EQ "two traps from U", s3, 2
        TRAP_PRV s3
        CHECK_EQ "trap from U: MPP=U", s3, PRV_U
        CHECK_EQ "csrr mstatus in U suppressed", s5, 0

        /* access faults on a hole in the physical map (Priv 3.6) */
        li      s1, NOWHERE
        EXPECT_TRAP "load from hole", CAUSE_LOAD_ACCESS, ld s3, 0(s1)
        TRAP_TVAL s3
        sub     s3, s3, s1
        CHECK_EQ "load fault mtval = address", s3, 0
        EXPECT_TRAP "lbu from hole", CAUSE_LOAD_ACCESS, lbu s3, 5(s1)
        TRAP_TVAL s3
        sub     s3, s3, s1
        CHECK_EQ "lbu fault mtval = address", s3, 5
        EXPECT_TRAP "store to hole", CAUSE_STORE_ACCESS, sw s3, 8(s1)
        TRAP_TVAL s3
        sub     s3, s3, s1
        CHECK_EQ "store fault mtval = address", s3, 8
        /* QEMU DEPARTURE: an AMO access fault is a Store/AMO access fault
           (cause 7, Priv Table 3.6); QEMU 7.2 reports cause 5. */
        EXPECT_TRAP "amoadd to hole", CAUSE_STORE_ACCESS, amoadd.d s3, s3, (s1)
        EXPECT_TRAP "lr to hole", CAUSE_LOAD_ACCESS, lr.d s3, (s1)
        /* instruction fetch from the hole: mepc = mtval = target */
        CLEAR_TRAP
        SET_RESUME 6f
        jalr    ra, 0(s1)
6:      DISARM
        TRAP_CAUSE s3
        CHECK_EQ "fetch from hole cause", s3, CAUSE_FETCH_ACCESS
        TRAP_EPC s3
        sub     s3, s3, s1
        CHECK_EQ "fetch fault mepc = target", s3, 0
        TRAP_TVAL s3
        sub     s3, s3, s1
        CHECK_EQ "fetch fault mtval = target", s3, 0
        /* the destination register of a faulting load is not written */
        li      s3, 0x77
        CLEAR_TRAP
        SET_RESUME 7f
        ld      s3, 0(s1)
7:      DISARM
        CHECK_EQ "faulting load leaves rd", s3, 0x77

        /* misaligned load/store: the spec allows either doing the access or
           raising address-misaligned (Unpriv 2.6).  Record 1 when either
           (no trap, correct data) or (trap with cause 4/6, mtval = address). */
        la      s1, buf
        li      s2, 0x8877665544332211
        sd      s2, 0(s1)
        sd      zero, 8(s1)
        CLEAR_TRAP
        li      s3, 0
        SET_RESUME 8f
        lw      s3, 1(s1)
8:      DISARM
        TRAP_COUNT s4
        li      s5, 0
        bnez    s4, 9f
        li      t2, 0x55443322
        bne     s3, t2, 10f
        li      s5, 1
        j       10f
9:      TRAP_CAUSE s4
        li      t2, CAUSE_MISALIGNED_LOAD
        bne     s4, t2, 10f
        TRAP_TVAL s4
        addi    s4, s4, -1
        bne     s4, s1, 10f
        li      s5, 1
10:     CHECK_EQ "misaligned lw: done or trapped properly", s5, 1
        CLEAR_TRAP
        li      s2, 0xaabbccdd
        SET_RESUME 11f
        sw      s2, 3(s1)
11:     DISARM
        TRAP_COUNT s4
        li      s5, 0
        bnez    s4, 12f
        ld      s3, 0(s1)
        li      t2, 0x88aabbccdd332211
        bne     s3, t2, 13f
        li      s5, 1
        j       13f
12:     TRAP_CAUSE s4
        li      t2, CAUSE_MISALIGNED_STORE
        bne     s4, t2, 13f
        TRAP_TVAL s4
        addi    s4, s4, -3
        bne     s4, s1, 13f
        li      s5, 1
13:     CHECK_EQ "misaligned sw: done or trapped properly", s5, 1

        /* mret pops the M stack: MIE=MPIE, MPIE=1, MPP=U (Priv 3.1.6.1) */
        li      t2, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        csrc    mstatus, t2
        li      t2, MSTATUS_MPP
        csrs    mstatus, t2
        la      t2, 14f
        csrw    mepc, t2
        mret
14:     csrr    s3, mstatus
        li      t2, MSTATUS_MPP | MSTATUS_MPIE | MSTATUS_MIE
        and     s3, s3, t2
        CHECK_EQ "mret M->M: MPP=U MPIE=1 MIE=0", s3, MSTATUS_MPIE
        /* a trap pushes: MPIE=MIE(0 here), MIE=0, MPP=M */
        CLEAR_TRAP
        ebreak
        csrr    s3, mstatus
        li      t2, MSTATUS_MPIE | MSTATUS_MIE
        and     s3, s3, t2
        CHECK_EQ "after trap+mret with MIE=0: MPIE=1 MIE=0", s3, MSTATUS_MPIE
        /* mret to U clears MPRV (Priv 20211203 3.1.6.3: "An MRET or SRET
           instruction that changes the privilege mode to a mode less
           privileged than M also sets MPRV=0").  QEMU DEPARTURE: 7.2 keeps
           MPRV. */
        li      t2, MSTATUS_MPRV
        csrs    mstatus, t2
        li      t2, MSTATUS_MPP
        csrs    mstatus, t2              /* MPP=M so M loads are unaffected */
        GOTO_MODE PRV_U
        RETURN_M
        csrr    s3, mstatus
        li      t2, MSTATUS_MPRV
        and     s3, s3, t2
        CHECK_EQ "mret to U clears MPRV", s3, 0
        li      t2, MSTATUS_MPRV
        csrc    mstatus, t2
        TEST_END

        .data
        .balign 16
buf:    .skip 32

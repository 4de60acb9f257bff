/* Trap delegation (medeleg/mideleg), sret, TW/TSR/TVM, interrupts
   (Privileged 20211203 3.1.6, 3.1.8, 3.1.9, 3.3.2, 4.1). */
#include "test.h"

#define CLINT_MTIMECMP 0x2004000
#define IRQ(n) ((1 << 63) | n)

TEST_BEGIN(deleg)
        /* ecall from U delegated to S */
        li      t2, (1 << CAUSE_ECALL_U)
        csrw    medeleg, t2
        CLEAR_TRAP
        GOTO_MODE PRV_U
        li      a7, 0
1:      ecall
        RETURN_M                        /* forwarded by the S handler */
        STRAP_CAUSE s3
        CHECK_EQ "delegated U ecall: scause", s3, CAUSE_ECALL_U
        STRAP_EPC s3
        la      s4, 1b
        sub     s3, s3, s4
        CHECK_EQ "delegated U ecall: sepc", s3, 0
        STRAP_PRV s3
        CHECK_EQ "delegated U ecall: SPP=U", s3, 0
        ld      s3, rt_strap+32
        CHECK_EQ "S handler saw 1 trap", s3, 1
        TRAP_CAUSE s3
        CHECK_EQ "M saw no trap", s3, NO_TRAP
        TRAP_COUNT s3
        CHECK_EQ "M trap count 0", s3, 0

        /* illegal instruction from S delegated to S: stval = 0 or bits */
        li      t2, (1 << CAUSE_ILLEGAL)
        csrw    medeleg, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        csrr    s5, mstatus             /* illegal in S */
        RETURN_M
        STRAP_CAUSE s3
        CHECK_EQ "delegated illegal from S: scause", s3, CAUSE_ILLEGAL
        STRAP_PRV s3
        CHECK_EQ "delegated illegal from S: SPP=S", s3, 1
        STRAP_TVAL s3
        li      t2, 0x300029f3 | (21 << 7) ^ (19 << 7)   /* csrrs s5, mstatus, x0 */
        li      t2, 0x30002af3
        xor     t2, t2, s3
        seqz    t2, t2
        seqz    s3, s3
        or      s3, s3, t2
        CHECK_EQ "delegated illegal: stval bits or 0", s3, 1
        TRAP_COUNT s3
        CHECK_EQ "delegated illegal: M saw none", s3, 0
        /* delegation never applies to traps taken in M (Priv 3.1.8) */
        CLEAR_TRAP
        .word 0xfe000033
        TRAP_CAUSE s3
        CHECK_EQ "illegal in M stays in M", s3, CAUSE_ILLEGAL
        STRAP_CAUSE s3
        CHECK_EQ "S handler not entered", s3, NO_TRAP
        csrw    medeleg, zero

        /* sret S->S: SIE=SPIE, SPIE=1, SPP=U (Priv 4.1.1) */
        CLEAR_TRAP
        GOTO_MODE PRV_S
        li      t2, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
        csrs    sstatus, t2
        li      t2, MSTATUS_SIE
        csrc    sstatus, t2              /* SIE=0, SPIE=1, SPP=S */
        la      t2, 2f
        csrw    sepc, t2
        sret
2:      csrr    s5, sstatus
        csrw    sstatus, zero
        RETURN_M
        li      t2, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
        and     s3, s5, t2
        CHECK_EQ "sret: SIE=1 SPIE=1 SPP=U", s3, MSTATUS_SIE | MSTATUS_SPIE
        TRAP_COUNT s3
        CHECK_EQ "sret S->S no trap", s3, 0
        /* sret S->U then ecall shows we are in U */
        CLEAR_TRAP
        GOTO_MODE PRV_S
        li      t2, MSTATUS_SPP
        csrc    sstatus, t2
        la      t2, 3f
        csrw    sepc, t2
        sret
3:      li      a7, 0
        ecall
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "sret to U: 1 trap", s3, 1
        TRAP_PRV s3
        CHECK_EQ "sret to U: ecall came from U", s3, PRV_U

        /* privileged instructions in the wrong mode */
        CLEAR_TRAP
        GOTO_MODE PRV_S
        SET_RESUME 4f
        mret
4:      RETURN_M
        ld      s3, rt_mtrap            /* first trap overwritten: re-run */
        CLEAR_TRAP
        GOTO_MODE PRV_S
        li      s5, 0xbad
        SET_RESUME 5f
        mret
5:      csrr    s5, sscratch            /* legal in S */
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "mret in S traps", s3, 1
        CLEAR_TRAP
        GOTO_MODE PRV_U
        SET_RESUME 6f
        sret
6:      li      a7, 0
        ecall                           /* count: sret trap + this + RETURN_M */
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "sret in U traps (+ecall)", s3, 2
        /* TSR: sret in S traps */
        li      t2, MSTATUS_TSR
        csrs    mstatus, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        la      t2, 7f
        csrw    sepc, t2
        SET_RESUME 7f
8:      sret
7:      RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "TSR: sret in S traps", s3, 1
        li      t2, MSTATUS_TSR
        csrc    mstatus, t2
        /* TW: wfi in S traps (no interrupt pending) */
        li      t2, MSTATUS_TW
        csrs    mstatus, t2
        csrw    mie, zero
        CLEAR_TRAP
        GOTO_MODE PRV_S
        SET_RESUME 9f
        wfi
9:      RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "TW: wfi in S traps", s3, 1
        li      t2, MSTATUS_TW
        csrc    mstatus, t2
        /* TVM: satp access and sfence.vma in S trap */
        li      t2, MSTATUS_TVM
        csrs    mstatus, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        SET_RESUME 10f
        csrr    s5, satp
10:     SET_RESUME 11f
        sfence.vma
11:     RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "TVM: satp + sfence.vma trap", s3, 2
        li      t2, MSTATUS_TVM
        csrc    mstatus, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        csrr    s5, satp
        sfence.vma
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "TVM=0: satp + sfence.vma legal in S", s3, 0
        /* S CSRs are not accessible from U */
        CLEAR_TRAP
        GOTO_MODE PRV_U
        SET_RESUME 12f
        csrr    s5, sstatus
12:     RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "sstatus from U traps", s3, 1

        /* ---- interrupts ---- */
        /* SSIP pending + enabled, M-level (not delegated), MIE=1 in M */
        CLEAR_TRAP
        li      t2, (1 << 1)
        csrw    mie, t2
        csrs    mip, t2
        csrr    s3, mip
        andi    s3, s3, 2
        CHECK_EQ "mip.SSIP writable by M", s3, 2
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "SSIP taken in M", s3, IRQ(1)
        TRAP_COUNT s3
        CHECK_EQ "one interrupt", s3, 1
        /* M-level interrupt taken from S even with mstatus.MIE=0 */
        CLEAR_TRAP
        li      t2, (1 << 1)
        csrw    mie, t2
        GOTO_MODE PRV_S
        nop
        RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "irq from S: cause", s3, IRQ(1)
        ld      s3, rt_mtrap+24
        CHECK_EQ "irq from S: MPP", s3, PRV_S
        TRAP_COUNT s3
        CHECK_EQ "irq from S with MIE=0 taken", s3, 1
        /* delegated SSIP taken in S when sstatus.SIE=1 */
        li      t2, (1 << 1)
        csrw    mideleg, t2
        csrw    mie, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        csrsi   sstatus, MSTATUS_SIE
        nop
        csrci   sstatus, MSTATUS_SIE
        RETURN_M
        STRAP_CAUSE s3
        CHECK_EQ "delegated SSIP: scause", s3, IRQ(1)
        TRAP_COUNT s3
        CHECK_EQ "delegated SSIP: M saw none", s3, 0
        /* delegated SSIP with SIE=0 in S stays pending */
        li      t2, (1 << 1)
        csrw    mie, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        nop
        nop
        RETURN_M
        ld      s3, rt_strap+32
        CHECK_EQ "delegated SSIP masked by SIE=0 in S", s3, 0
        /* ... but taken in U regardless of SIE */
        CLEAR_TRAP
        GOTO_MODE PRV_U
        nop
        RETURN_M
        STRAP_CAUSE s3
        CHECK_EQ "delegated SSIP taken in U", s3, IRQ(1)
        /* delegated interrupt is never taken in M */
        CLEAR_TRAP
        li      t2, (1 << 1)
        csrw    mie, t2
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_COUNT s3
        CHECK_EQ "delegated SSIP not taken in M", s3, 0
        li      t2, (1 << 1)
        csrc    mip, t2
        csrw    mideleg, zero
        csrw    mie, zero

        /* machine timer via the CLINT mtimecmp */
        li      t3, CLINT_MTIMECMP
        li      t2, -1
        sd      t2, 0(t3)
        csrr    s3, mip
        andi    s3, s3, 0x80
        CHECK_EQ "MTIP clear with mtimecmp=max", s3, 0
        sd      zero, 0(t3)
        li      t2, 1000
13:     addi    t2, t2, -1
        csrr    s3, mip
        andi    s3, s3, 0x80
        bnez    s3, 14f
        bnez    t2, 13b
14:     CHECK_EQ "MTIP set with mtimecmp=0", s3, 0x80
        CLEAR_TRAP
        li      t2, 0x80
        csrw    mie, t2
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "machine timer interrupt", s3, IRQ(7)
        li      t2, -1
        sd      t2, 0(t3)
        csrr    s3, mip
        andi    s3, s3, 0x80
        CHECK_EQ "MTIP cleared by mtimecmp write", s3, 0
        csrw    mie, zero
        TEST_END

/* Interrupts (Privileged 20211203 3.1.7, 3.1.9, 3.3, 4.1.3): vectored
   mtvec, priority among pending interrupts, M-written STIP, delegation and
   the sip/sie views. */
#include "test.h"

#define CLINT_MTIMECMP 0x2004000
#define CLINT_MTIME    0x200bff8
#define IRQ(n) ((1 << 63) | n)
#define VEC_SLOT rt_msave + 136

.macro VSTUB n
        .balign 4
        j       vstub\n
.endm

TEST_BEGIN(irq)
        li      t3, CLINT_MTIMECMP
        li      t2, -1
        sd      t2, 0(t3)
        /* ---- priority: SSI over STI; MTI over SSI ---- */
        li      t2, (1 << 1) | (1 << 5)
        csrs    mip, t2
        csrw    mie, t2
        CLEAR_TRAP
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "SSI beats STI", s3, IRQ(1)
        csrr    s3, mip
        andi    s3, s3, 0x22
        CHECK_EQ "both still pending (level)", s3, 0x22
        li      t3, CLINT_MTIMECMP
        sd      zero, 0(t3)
        li      t2, 1000
1:      addi    t2, t2, -1
        csrr    s3, mip
        andi    s3, s3, 0x80
        bnez    s3, 2f
        bnez    t2, 1b
2:      csrr    s3, mip
        andi    s3, s3, 0xa2
        CHECK_EQ "MTIP, SSIP, STIP all pending", s3, 0xa2
        /* QEMU DEPARTURE: Priv 3.1.9 orders simultaneous M-mode interrupts
           MEI > MSI > MTI > SEI > SSI > STI; QEMU 7.2 takes SSI (lowest
           cause number first) before MTI. */
        li      t2, (1 << 1) | (1 << 5) | (1 << 7)
        csrw    mie, t2
        CLEAR_TRAP
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "MTI beats SSI and STI", s3, IRQ(7)
        li      t2, -1
        sd      t2, 0(t3)
        li      t2, (1 << 5)
        csrw    mie, t2
        csrc    mip, 2
        CLEAR_TRAP
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "STI alone (M-written STIP)", s3, IRQ(5)
        /* mie bit clear masks a pending interrupt */
        csrw    mie, zero
        CLEAR_TRAP
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_COUNT s3
        CHECK_EQ "pending but not enabled in mie", s3, 0

        /* ---- delegated STI to S ---- */
        li      t2, (1 << 5)
        csrw    mideleg, t2
        csrw    mie, t2
        CLEAR_TRAP
        GOTO_MODE PRV_S
        csrsi   sstatus, MSTATUS_SIE
        nop
        csrci   sstatus, MSTATUS_SIE
        RETURN_M
        STRAP_CAUSE s3
        CHECK_EQ "delegated STI: scause", s3, IRQ(5)
        STRAP_PRV s3
        CHECK_EQ "delegated STI: SPP=S", s3, 1
        TRAP_COUNT s3
        CHECK_EQ "delegated STI: M not entered", s3, 0
        li      t2, (1 << 5)
        csrc    mip, t2
        /* sip/sie views with SSI delegated: S can clear sip.SSIP and set sie.SSIE */
        li      t2, (1 << 1)
        csrw    mideleg, t2
        csrs    mip, t2
        csrw    mie, zero
        GOTO_MODE PRV_S
        csrr    s4, sip
        csrs    sie, 2
        csrc    sip, 2
        RETURN_M
        andi    s4, s4, 2
        CHECK_EQ "sip shows delegated SSIP", s4, 2
        csrr    s3, mip
        andi    s3, s3, 2
        CHECK_EQ "S cleared SSIP through sip", s3, 0
        csrr    s3, mie
        andi    s3, s3, 2
        CHECK_EQ "S set SSIE through sie", s3, 2
        csrw    mie, zero
        csrw    mideleg, zero

        /* ---- vectored mtvec ---- */
        la      t2, vtable
        ori     t2, t2, 1
        csrw    mtvec, t2
        csrr    s3, mtvec
        andi    s4, s3, 3
        li      t2, 1
        beq     s4, t2, 3f
        RECORD  "vectored mtvec unsupported", s4
        j       9f
3:      la      t2, vtable
        ori     t2, t2, 1
        sub     s3, s3, t2
        CHECK_EQ "mtvec vectored reads back", s3, 0
        li      t2, -1
        sd      t2, VEC_SLOT, t3
        li      t2, (1 << 1)
        csrs    mip, t2
        csrw    mie, t2
        CLEAR_TRAP
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        ld      s3, VEC_SLOT
        CHECK_EQ "SSI enters base+4*1", s3, 1
        TRAP_CAUSE s3
        CHECK_EQ "vectored SSI cause", s3, IRQ(1)
        csrc    mip, 2
        li      t3, CLINT_MTIMECMP
        sd      zero, 0(t3)
        li      t2, 1000
4:      addi    t2, t2, -1
        csrr    s3, mip
        andi    s3, s3, 0x80
        bnez    s3, 5f
        bnez    t2, 4b
5:      li      t2, 0x80
        csrw    mie, t2
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        ld      s3, VEC_SLOT
        CHECK_EQ "MTI enters base+4*7", s3, 7
        li      t2, -1
        li      t3, CLINT_MTIMECMP
        sd      t2, 0(t3)
        /* exceptions always use base */
        li      t2, -1
        sd      t2, VEC_SLOT, t3
        CLEAR_TRAP
        ebreak
        ld      s3, VEC_SLOT
        CHECK_EQ "exception enters base", s3, 0
        TRAP_CAUSE s3
        CHECK_EQ "vectored-mode ebreak cause", s3, CAUSE_BREAKPOINT
9:      la      t2, rt_trap_m
        csrw    mtvec, t2
        csrw    mie, zero

        /* ---- time CSR mirrors the CLINT mtime ---- */
        li      t3, CLINT_MTIME
        csrr    s1, time
        ld      s2, 0(t3)
        csrr    s4, time
        sltu    s3, s2, s1
        sltu    s5, s4, s2
        or      s3, s3, s5
        CHECK_EQ "rdtime <= mtime <= rdtime", s3, 0
        /* ---- wfi ---- */
        /* pending+enabled in mie but MIE=0: wfi returns, no trap (Priv 3.3.3) */
        li      t3, CLINT_MTIMECMP
        sd      zero, 0(t3)
        li      t2, 0x80
        csrw    mie, t2
        CLEAR_TRAP
        wfi
        TRAP_COUNT s3
        CHECK_EQ "wfi with pending MTI, MIE=0: resumes, no trap", s3, 0
        /* timer in the near future: wfi wakes when it fires */
        li      t4, CLINT_MTIME
        ld      t2, 0(t4)
        li      t5, 20000               /* 2 ms at 10 MHz */
        add     t2, t2, t5
        sd      t2, 0(t3)
        mv      s6, t2
        CLEAR_TRAP
10:     wfi
        csrr    s3, mip
        andi    s3, s3, 0x80
        beqz    s3, 10b                 /* wfi may wake spuriously */
        ld      s2, 0(t4)
        sltu    s3, s2, s6
        CHECK_EQ "woke after mtimecmp", s3, 0
        TRAP_COUNT s3
        CHECK_EQ "wfi wake-up with MIE=0: no trap", s3, 0
        li      t2, -1
        sd      t2, 0(t3)
        csrw    mie, zero
        TEST_END

/* stubs record which vector was used, then enter the normal handler */
.macro VSTUB_BODY n
vstub\n:
        csrrw   sp, mscratch, sp
        sd      t0, 128(sp)
        li      t0, \n
        sd      t0, 136(sp)
        ld      t0, 128(sp)
        csrrw   sp, mscratch, sp
        j       rt_trap_m
.endm
        VSTUB_BODY 0
        VSTUB_BODY 1
        VSTUB_BODY 3
        VSTUB_BODY 5
        VSTUB_BODY 7
        VSTUB_BODY 9
        VSTUB_BODY 11

        .balign 256
        .option push
        .option norvc
vtable:
        j       vstub0
        j       vstub1
        j       vstub0          /* 2: reserved */
        j       vstub3
        j       vstub0
        j       vstub5
        j       vstub0
        j       vstub7
        j       vstub0
        j       vstub9
        j       vstub0
        j       vstub11
        .option pop

/* Strata conformance runtime: entry, trap handlers, signature recording. */
#include "test.h"

#define MAX_SIG 1024
#define MAX_TRAPS 200

        .section .text.init, "ax"
        .globl _start
_start:
        /* Hart 0 only; park any other hart. */
        bnez    a0, park
        la      sp, __stack_top
        la      t0, rt_trap_m
        csrw    mtvec, t0
        la      t0, rt_msave
        csrw    mscratch, t0
        la      t0, rt_trap_s
        csrw    stvec, t0
        la      t0, rt_ssave
        csrw    sscratch, t0
        /* Zero .bss */
        la      t0, __bss_start
        la      t1, __bss_end
1:      bgeu    t0, t1, 2f
        sd      zero, 0(t0)
        addi    t0, t0, 8
        j       1b
2:
        /* PMP: the last entry (15) grants RWX on everything to S/U, so tests
           can use entries 0..14 with higher priority. */
        li      t0, -1
        csrw    pmpaddr15, t0
        li      t0, (0x1f << 56)
        csrw    pmpcfg2, t0
        csrw    pmpcfg0, zero
        csrw    satp, zero
        csrw    medeleg, zero
        csrw    mideleg, zero
        csrw    mie, zero
        /* FP on (FS = Initial), round to nearest, no flags. */
        li      t0, MSTATUS_FS
        csrc    mstatus, t0
        li      t0, (1 << 13)
        csrs    mstatus, t0
        csrw    fcsr, zero
        call    rt_clear_trap
        j       test_main
park:
        wfi
        j       park

/* ------------------------------------------------------------------ */
/* M-mode trap handler.  Records mcause/mepc/mtval/previous privilege,
   then (1) returns to M-mode after a RETURN_M ecall, (2) resumes at
   rt_resume if armed, (3) for interrupts, disables mie and returns,
   (4) otherwise skips the faulting instruction (2 or 4 bytes). */
        .text
        .balign 4
        .globl rt_trap_m
rt_trap_m:
        csrrw   sp, mscratch, sp
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        sd      t2, 16(sp)
        csrr    t2, mepc
        /* RETURN_M (ecall from U/S/M with a7 = magic) is invisible: it is
           not recorded in rt_mtrap. */
        csrr    t0, mcause
        li      t1, CAUSE_ECALL_U
        bltu    t0, t1, .Lm_record
        li      t1, CAUSE_ECALL_M
        bgtu    t0, t1, .Lm_record
        li      t1, 10
        beq     t0, t1, .Lm_record
        li      t1, RT_MAGIC
        bne     a7, t1, 1f
        addi    t2, t2, 4
        j       .Lm_to_m
1:      li      t1, RT_MAGIC_FWD
        bne     a7, t1, .Lm_record
        mv      t2, a6
.Lm_to_m:
        /* back to M with MIE=0 (GOTO_MODE's mret may have set MIE=MPIE=1) */
        li      t0, MSTATUS_MPP
        csrs    mstatus, t0
        li      t0, MSTATUS_MPIE
        csrc    mstatus, t0
        csrw    mepc, t2
        j       .Lm_out
.Lm_record:
        la      t1, rt_mtrap
        sd      t0, 0(t1)
        sd      t2, 8(t1)
        csrr    t0, mtval
        sd      t0, 16(t1)
        csrr    t0, mstatus
        srli    t0, t0, 11
        andi    t0, t0, 3
        sd      t0, 24(t1)
        ld      t0, 32(t1)
        addi    t0, t0, 1
        sd      t0, 32(t1)
        li      t1, MAX_TRAPS
        bgeu    t0, t1, rt_too_many_traps
        csrr    t0, mcause
        bltz    t0, .Lm_irq
.Lm_resume:
        ld      t0, rt_resume
        beqz    t0, .Lm_skip
        sd      zero, rt_resume, t1
        csrw    mepc, t0
        j       .Lm_out
.Lm_skip:
        /* Instruction fetch faults cannot be skipped. */
        csrr    t0, mcause
        li      t1, CAUSE_FETCH_ACCESS
        bleu    t0, t1, rt_unexpected
        li      t1, CAUSE_FETCH_PAGE
        beq     t0, t1, rt_unexpected
        lhu     t0, 0(t2)
        andi    t0, t0, 3
        li      t1, 3
        addi    t2, t2, 2
        bne     t0, t1, 1f
        addi    t2, t2, 2
1:      csrw    mepc, t2
        j       .Lm_out
.Lm_irq:
        csrw    mie, zero
.Lm_out:
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, mscratch, sp
        mret

/* ------------------------------------------------------------------ */
/* S-mode trap handler (used when a test delegates).  Same policy; a
   RETURN_M ecall from U is forwarded to M with a6 = return address. */
        .balign 4
        .globl rt_trap_s
rt_trap_s:
        csrrw   sp, sscratch, sp
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        sd      t2, 16(sp)
        csrr    t2, sepc
        /* RETURN_M from U delegated here: forward to M, unrecorded. */
        csrr    t0, scause
        li      t1, CAUSE_ECALL_U
        bne     t0, t1, .Ls_record
        li      t1, RT_MAGIC
        bne     a7, t1, .Ls_record
        addi    a6, t2, 4
        li      a7, RT_MAGIC_FWD
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, sscratch, sp
        ecall
.Ls_record:
        la      t1, rt_strap
        sd      t0, 0(t1)
        sd      t2, 8(t1)
        csrr    t0, stval
        sd      t0, 16(t1)
        csrr    t0, sstatus
        srli    t0, t0, 8
        andi    t0, t0, 1
        sd      t0, 24(t1)
        ld      t0, 32(t1)
        addi    t0, t0, 1
        sd      t0, 32(t1)
        li      t1, MAX_TRAPS
        bgeu    t0, t1, .Ls_fatal
        csrr    t0, scause
        bltz    t0, .Ls_irq
        j       .Ls_resume
.Ls_fatal:
        li      a7, RT_MAGIC
        ecall
.Ls_resume:
        ld      t0, rt_resume
        beqz    t0, .Ls_skip
        sd      zero, rt_resume, t1
        csrw    sepc, t0
        j       .Ls_out
.Ls_skip:
        csrr    t0, scause
        li      t1, CAUSE_FETCH_ACCESS
        bleu    t0, t1, .Ls_fatal
        li      t1, CAUSE_FETCH_PAGE
        beq     t0, t1, .Ls_fatal
        lhu     t0, 0(t2)
        andi    t0, t0, 3
        li      t1, 3
        addi    t2, t2, 2
        bne     t0, t1, 1f
        addi    t2, t2, 2
1:      csrw    sepc, t2
        j       .Ls_out
.Ls_irq:
        csrw    sie, zero
.Ls_out:
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, sscratch, sp
        sret

rt_too_many_traps:
        la      sp, __stack_top
        la      a0, msg_too_many
        j       rt_fatal
rt_unexpected:
        la      sp, __stack_top
        la      a0, msg_unexpected
        j       rt_fatal

/* ------------------------------------------------------------------ */
/* rt_check(a0 = value, a1 = expected, a2 = name, a3 = 1 check / 0 record) */
        .globl rt_check
rt_check:
        la      t0, rt_sig_count
        ld      t1, 0(t0)
        li      t2, MAX_SIG
        bgeu    t1, t2, 2f
        addi    t2, t1, 1
        sd      t2, 0(t0)
        slli    t1, t1, 5
        la      t0, rt_sig
        add     t0, t0, t1
        sd      a0, 0(t0)
        sd      a1, 8(t0)
        sd      a2, 16(t0)
        beqz    a3, 1f
        li      a3, 1
        beq     a0, a1, 1f
        li      a3, 2
1:      sd      a3, 24(t0)
        ret
2:      la      a0, msg_overflow
        la      sp, __stack_top
        j       rt_fatal

        .globl rt_clear_trap
rt_clear_trap:
        la      t0, rt_mtrap
        li      t1, NO_TRAP
        sd      t1, 0(t0)
        sd      t1, 8(t0)
        sd      t1, 16(t0)
        sd      t1, 24(t0)
        sd      zero, 32(t0)
        la      t0, rt_strap
        sd      t1, 0(t0)
        sd      t1, 8(t0)
        sd      t1, 16(t0)
        sd      t1, 24(t0)
        sd      zero, 32(t0)
        sd      zero, rt_resume, t0
        ret

/* End of test: back to a sane M-mode state, dump, power off. */
        .globl rt_finish
rt_finish:
        la      sp, __stack_top
        li      t0, MSTATUS_MPRV
        csrc    mstatus, t0
        li      t0, (1 << 13)
        csrs    mstatus, t0
        csrw    mie, zero
        la      t0, rt_trap_m
        csrw    mtvec, t0
        la      t0, rt_msave
        csrw    mscratch, t0
        call    rt_dump
1:      j       1b

        .section .rodata
msg_too_many:   .asciz "too many traps"
msg_unexpected: .asciz "unskippable trap (instruction fetch fault without a resume address)"
msg_overflow:   .asciz "signature overflow"

        .bss
        .balign 64
        .globl rt_mtrap, rt_strap, rt_resume, rt_sig_count, rt_sig, rt_msave, rt_ssave
rt_mtrap:       .skip 40        /* cause, epc, tval, prev priv, count */
rt_strap:       .skip 40
rt_resume:      .skip 8
rt_sig_count:   .skip 8
        .balign 64
rt_msave:       .skip 256
rt_ssave:       .skip 256
rt_sig:         .skip MAX_SIG * 32   /* value, expected, name, kind */

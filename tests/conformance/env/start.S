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
        /* misa.H: the handlers record the H-extension trap CSRs only then */
        csrr    t0, misa
        srli    t0, t0, 7
        andi    t0, t0, 1
        sd      t0, rt_has_h, t1
        beqz    t0, 3f
        la      t0, rt_vssave
        csrw    0x240, t0               /* vsscratch: the VS handler's save area */
3:      call    rt_clear_trap
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
        li      t1, RT_MAGIC
        bne     a7, t1, 1f
        addi    t2, t2, 4
        j       .Lm_to_m
1:      li      t1, RT_MAGIC_FWD
        bne     a7, t1, .Lm_record
        mv      t2, a6
.Lm_to_m:
        /* back to M with MIE=0 (GOTO_MODE's mret may have set MIE=MPIE=1).
           MPV is cleared too: MRET with MPP=3 must ignore it (Priv 8.4.1),
           but QEMU 7.2 would enter V=1 while in M-mode. */
        li      t0, MSTATUS_MPP
        csrs    mstatus, t0
        li      t0, MSTATUS_MPIE
        csrc    mstatus, t0
        li      t0, 0x8000000000        /* mstatus.MPV (H); WPRI zero otherwise */
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
        /* H extension (Priv 20211203 8.4, 8.6.2): mtval2, mtinst, MPV, GVA */
        ld      t0, rt_has_h
        beqz    t0, 1f
        csrr    t0, 0x34b               /* mtval2 */
        sd      t0, 40(t1)
        csrr    t0, 0x34a               /* mtinst */
        sd      t0, 48(t1)
        csrr    t0, mstatus
        srli    t0, t0, 39
        andi    t0, t0, 1
        sd      t0, 56(t1)              /* MPV */
        csrr    t0, mstatus
        srli    t0, t0, 38
        andi    t0, t0, 1
        sd      t0, 64(t1)              /* GVA */
1:      ld      t0, 32(t1)
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
        li      t1, 20                  /* instruction guest-page fault */
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
        /* RETURN_M from U, VU or VS delegated here: forward to M, unrecorded
           (a VS handler may already have forwarded it: keep its a6). */
        csrr    t0, scause
        li      t1, CAUSE_ECALL_U
        beq     t0, t1, 1f
        li      t1, 10                  /* ecall from VS-mode */
        bne     t0, t1, .Ls_record
1:      li      t1, RT_MAGIC_FWD
        beq     a7, t1, 2f
        li      t1, RT_MAGIC
        bne     a7, t1, .Ls_record
        addi    a6, t2, 4
        li      a7, RT_MAGIC_FWD
2:
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
        /* H extension (8.2.1, 8.6.2): htval, htinst, hstatus.SPV/GVA/SPVP */
        ld      t0, rt_has_h
        beqz    t0, 1f
        csrr    t0, 0x643               /* htval */
        sd      t0, 40(t1)
        csrr    t0, 0x64a               /* htinst */
        sd      t0, 48(t1)
        csrr    t0, 0x600               /* hstatus */
        srli    t0, t0, 7
        andi    t0, t0, 1
        sd      t0, 56(t1)              /* SPV */
        csrr    t0, 0x600
        srli    t0, t0, 6
        andi    t0, t0, 1
        sd      t0, 64(t1)              /* GVA */
        csrr    t0, 0x600
        srli    t0, t0, 8
        andi    t0, t0, 1
        sd      t0, 72(t1)              /* SPVP */
1:      ld      t0, 32(t1)
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
        li      t1, 20                  /* instruction guest-page fault */
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
        ld      t0, rt_has_h            /* VS-level interrupts taken in HS */
        beqz    t0, .Ls_out
        csrw    0x604, zero             /* hie */
.Ls_out:
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, sscratch, sp
        sret

/* ------------------------------------------------------------------ */
/* VS-mode trap handler (H extension; set vstvec to it).  Runs with V=1, so
   sscratch/sepc/scause/stval/sstatus below are the vs* CSRs (Priv 8.2).
   Records into rt_vstrap; same resume policy; a RETURN_M ecall from VU is
   forwarded as an ecall from VS with a6 = return address. */
        .balign 4
        .globl rt_trap_vs
rt_trap_vs:
        csrrw   sp, sscratch, sp
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        sd      t2, 16(sp)
        csrr    t2, sepc
        csrr    t0, scause
        li      t1, CAUSE_ECALL_U
        bne     t0, t1, .Lvs_record
        li      t1, RT_MAGIC
        bne     a7, t1, .Lvs_record
        addi    a6, t2, 4
        li      a7, RT_MAGIC_FWD
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, sscratch, sp
        ecall
.Lvs_record:
        la      t1, rt_vstrap
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
        bgeu    t0, t1, .Lvs_fatal
        csrr    t0, scause
        bltz    t0, .Lvs_irq
        ld      t0, rt_resume
        beqz    t0, .Lvs_skip
        sd      zero, rt_resume, t1
        csrw    sepc, t0
        j       .Lvs_out
.Lvs_skip:
        csrr    t0, scause
        li      t1, CAUSE_FETCH_ACCESS
        bleu    t0, t1, .Lvs_fatal
        li      t1, CAUSE_FETCH_PAGE
        beq     t0, t1, .Lvs_fatal
        lhu     t0, 0(t2)
        andi    t0, t0, 3
        li      t1, 3
        addi    t2, t2, 2
        bne     t0, t1, 1f
        addi    t2, t2, 2
1:      csrw    sepc, t2
        j       .Lvs_out
.Lvs_irq:
        csrw    sie, zero
.Lvs_out:
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        csrrw   sp, sscratch, sp
        sret
.Lvs_fatal:
        li      a7, RT_MAGIC
        ecall
        j       rt_too_many_traps

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
        sd      t1, 40(t0)
        sd      t1, 48(t0)
        sd      t1, 56(t0)
        sd      t1, 64(t0)
        la      t0, rt_strap
        sd      t1, 0(t0)
        sd      t1, 8(t0)
        sd      t1, 16(t0)
        sd      t1, 24(t0)
        sd      zero, 32(t0)
        sd      t1, 40(t0)
        sd      t1, 48(t0)
        sd      t1, 56(t0)
        sd      t1, 64(t0)
        sd      t1, 72(t0)
        la      t0, rt_vstrap
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
        .globl rt_vstrap, rt_vssave, rt_has_h
rt_mtrap:       .skip 80        /* cause, epc, tval, prev priv, count, [H:] mtval2, mtinst, MPV, GVA */
rt_strap:       .skip 80        /* cause, epc, tval, SPP, count, [H:] htval, htinst, SPV, GVA, SPVP */
rt_vstrap:      .skip 40        /* VS handler: vscause, vsepc, vstval, SPP, count */
rt_has_h:       .skip 8
rt_resume:      .skip 8
rt_sig_count:   .skip 8
        .balign 64
rt_msave:       .skip 256
rt_ssave:       .skip 256
rt_vssave:      .skip 256
rt_sig:         .skip MAX_SIG * 32   /* value, expected, name, kind */

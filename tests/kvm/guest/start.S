/* KVM test guest: entry, VS-mode trap entry/exit, VU-mode trampoline.
 * Runs in VS-mode (Privileged 20211203 8.1): every "s" CSR below is the
 * vs* CSR of the machine.  Frame layout must match struct frame in guest.c.
 */
#define FRAME_SIZE      (36 * 8)
#define F_SEPC          (32 * 8)
#define F_SSTATUS       (33 * 8)
#define F_SCAUSE        (34 * 8)
#define F_STVAL         (35 * 8)
#define SSTATUS_SPP     (1 << 8)

        .section .text.start, "ax"
        .globl _start
_start:
        /* a0 = hart id, a1 = bootinfo GPA, a2 = BOOT_A2: set by the VMM with
           KVM_SET_ONE_REG; kept for guest_main. */
        la      sp, stack_top
        la      t0, trap_entry
        csrw    stvec, t0
        csrw    sscratch, zero
        call    guest_main
1:      wfi
        j       1b

/* Trap entry.  sscratch == 0 while in S; in U it holds the kernel stack.  */
        .text
        .balign 4
        .globl trap_entry
trap_entry:
        csrrw   sp, sscratch, sp
        bnez    sp, 1f
        csrrw   sp, sscratch, sp        /* from S: back to our own sp */
1:      addi    sp, sp, -FRAME_SIZE
        sd      x1, 1*8(sp)
        sd      x3, 3*8(sp)
        sd      x4, 4*8(sp)
        sd      x5, 5*8(sp)
        sd      x6, 6*8(sp)
        sd      x7, 7*8(sp)
        sd      x8, 8*8(sp)
        sd      x9, 9*8(sp)
        sd      x10, 10*8(sp)
        sd      x11, 11*8(sp)
        sd      x12, 12*8(sp)
        sd      x13, 13*8(sp)
        sd      x14, 14*8(sp)
        sd      x15, 15*8(sp)
        sd      x16, 16*8(sp)
        sd      x17, 17*8(sp)
        sd      x18, 18*8(sp)
        sd      x19, 19*8(sp)
        sd      x20, 20*8(sp)
        sd      x21, 21*8(sp)
        sd      x22, 22*8(sp)
        sd      x23, 23*8(sp)
        sd      x24, 24*8(sp)
        sd      x25, 25*8(sp)
        sd      x26, 26*8(sp)
        sd      x27, 27*8(sp)
        sd      x28, 28*8(sp)
        sd      x29, 29*8(sp)
        sd      x30, 30*8(sp)
        sd      x31, 31*8(sp)
        /* original sp: the user's (in sscratch) or ours before the frame */
        csrr    t0, sscratch
        bnez    t0, 2f
        addi    t0, sp, FRAME_SIZE
2:      sd      t0, 2*8(sp)
        csrw    sscratch, zero
        csrr    t0, sepc
        sd      t0, F_SEPC(sp)
        csrr    t0, sstatus
        sd      t0, F_SSTATUS(sp)
        csrr    t0, scause
        sd      t0, F_SCAUSE(sp)
        csrr    t0, stval
        sd      t0, F_STVAL(sp)
        mv      a0, sp
        call    trap_c
        ld      t0, F_SEPC(sp)
        csrw    sepc, t0
        ld      t0, F_SSTATUS(sp)
        csrw    sstatus, t0
        andi    t0, t0, SSTATUS_SPP
        bnez    t0, 3f
        addi    t0, sp, FRAME_SIZE      /* going to U: kernel stack for next trap */
        csrw    sscratch, t0
3:      ld      x1, 1*8(sp)
        ld      x3, 3*8(sp)
        ld      x4, 4*8(sp)
        ld      x5, 5*8(sp)
        ld      x6, 6*8(sp)
        ld      x7, 7*8(sp)
        ld      x8, 8*8(sp)
        ld      x9, 9*8(sp)
        ld      x10, 10*8(sp)
        ld      x11, 11*8(sp)
        ld      x12, 12*8(sp)
        ld      x13, 13*8(sp)
        ld      x14, 14*8(sp)
        ld      x15, 15*8(sp)
        ld      x16, 16*8(sp)
        ld      x17, 17*8(sp)
        ld      x18, 18*8(sp)
        ld      x19, 19*8(sp)
        ld      x20, 20*8(sp)
        ld      x21, 21*8(sp)
        ld      x22, 22*8(sp)
        ld      x23, 23*8(sp)
        ld      x24, 24*8(sp)
        ld      x25, 25*8(sp)
        ld      x26, 26*8(sp)
        ld      x27, 27*8(sp)
        ld      x28, 28*8(sp)
        ld      x29, 29*8(sp)
        ld      x30, 30*8(sp)
        ld      x31, 31*8(sp)
        ld      x2, 2*8(sp)
        sret

/* long run_user(entry VA, arg, user sp): run entry(arg) in VU-mode.  Returns
   when trap_c (on an ecall or fault from U) sends us to user_return. */
        .globl run_user, user_return
run_user:
        la      t0, user_ctx
        sd      ra, 0(t0)
        sd      sp, 8(t0)
        sd      s0, 16(t0)
        sd      s1, 24(t0)
        sd      s2, 32(t0)
        sd      s3, 40(t0)
        sd      s4, 48(t0)
        sd      s5, 56(t0)
        sd      s6, 64(t0)
        sd      s7, 72(t0)
        sd      s8, 80(t0)
        sd      s9, 88(t0)
        sd      s10, 96(t0)
        sd      s11, 104(t0)
        csrw    sepc, a0
        li      t1, SSTATUS_SPP
        csrc    sstatus, t1
        csrw    sscratch, sp
        mv      a0, a1
        mv      sp, a2
        sret
user_return:
        la      t0, user_ctx
        ld      ra, 0(t0)
        ld      sp, 8(t0)
        ld      s0, 16(t0)
        ld      s1, 24(t0)
        ld      s2, 32(t0)
        ld      s3, 40(t0)
        ld      s4, 48(t0)
        ld      s5, 56(t0)
        ld      s6, 64(t0)
        ld      s7, 72(t0)
        ld      s8, 80(t0)
        ld      s9, 88(t0)
        ld      s10, 96(t0)
        ld      s11, 104(t0)
        ld      a0, user_result
        ret

/* Returns the address it runs at: called through the high alias, the
   result shows that instruction fetch went through the VS-stage mapping. */
        .globl where_am_i
        .balign 4
where_am_i:
        auipc   a0, 0
        ret

        .bss
        .balign 16
        .globl user_ctx, user_result
user_ctx:       .skip 14 * 8
user_result:    .skip 8
        .balign 4096
stack:          .skip 16384
stack_top:

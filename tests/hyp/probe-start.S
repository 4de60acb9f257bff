/* Entry of the probe guest: a VS-mode program started by Strata's
   hypervisor with a0 = hart id, a1 = device tree. */
        .section .text.init
        .globl _start
_start:
        la      sp, __stack_top
        la      t0, trap
        csrw    stvec, t0
        call    main
1:      j       1b

/* The guest's own trap handler: records scause, skips the faulting
   (4-byte) instruction, and returns. */
        .balign 4
trap:
        csrr    t0, scause
        la      t1, last_cause
        sd      t0, 0(t1)
        csrr    t0, sepc
        addi    t0, t0, 4
        csrw    sepc, t0
        sret

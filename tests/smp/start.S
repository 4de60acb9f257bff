/* Entry of the SMP litmus guest: every hart comes here in M-mode with
   a0 = its hart id (strata machine --bios none; QEMU's virt with -bios none
   does the same). Each hart gets a 16 KiB stack, then main(hartid). */
        .section .text.init, "ax"
        .globl _start
_start:
        csrw    mie, zero
        la      sp, __stacks_end
        slli    t0, a0, 14
        sub     sp, sp, t0
        call    hart_main
1:      wfi
        j       1b

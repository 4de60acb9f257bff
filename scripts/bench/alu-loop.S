/* Tight integer loop: 7 instructions per iteration, 100M iterations, then
   power off through the syscon finisher (QEMU virt layout). Bare metal,
   M-mode, linked at 0x8000_0000. */
        .globl _start
_start:
        bnez    a0, park
        li      t0, 100000000
        li      a0, 1
        li      a1, 2
1:      add     a2, a0, a1
        xor     a3, a2, a0
        slli    a4, a3, 3
        addi    a0, a0, 1
        sub     a1, a4, a2
        addi    t0, t0, -1
        bnez    t0, 1b
        li      t1, 0x100000
        li      t2, 0x5555
        sw      t2, 0(t1)
park:   wfi
        j       park

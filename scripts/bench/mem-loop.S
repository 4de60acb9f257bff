/* Memory loop: copies a 16 KiB buffer with ld/sd, 8 words per iteration
   (plus pointer arithmetic), 20000 passes, then powers off. */
        .globl _start
_start:
        bnez    a0, park
        li      s0, 20000
        li      s1, 0x80100000          /* src */
        li      s2, 0x80200000          /* dst */
2:      mv      t0, s1
        mv      t1, s2
        li      t2, 256                 /* 16 KiB / 64 */
1:      ld      a0, 0(t0)
        ld      a1, 8(t0)
        ld      a2, 16(t0)
        ld      a3, 24(t0)
        sd      a0, 0(t1)
        sd      a1, 8(t1)
        sd      a2, 16(t1)
        sd      a3, 24(t1)
        ld      a4, 32(t0)
        ld      a5, 40(t0)
        ld      a6, 48(t0)
        ld      a7, 56(t0)
        sd      a4, 32(t1)
        sd      a5, 40(t1)
        sd      a6, 48(t1)
        sd      a7, 56(t1)
        addi    t0, t0, 64
        addi    t1, t1, 64
        addi    t2, t2, -1
        bnez    t2, 1b
        addi    s0, s0, -1
        bnez    s0, 2b
        li      t1, 0x100000
        li      t2, 0x5555
        sw      t2, 0(t1)
park:   wfi
        j       park

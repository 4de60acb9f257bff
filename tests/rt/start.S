/* Entry, trap entry and the register-checking idle wait of the real-time
   guest (tests/rt/rtguest.c). A VS-mode program started by Strata's
   hypervisor with a0 = hart id, a1 = device tree. */
        .section .text.init
        .globl _start
_start:
        la      sp, __stack_top
        la      t0, trap_entry
        csrw    stvec, t0
        call    main
1:      j       1b

/* The supervisor trap: reads `time` first (the latency sample is taken
   as close to the entry as the guest can), saves the caller-saved
   registers, calls on_trap(entry_time) and returns with sret. */
        .balign 4
trap_entry:
        addi    sp, sp, -144
        sd      t0, 0(sp)
        rdtime  t0
        sd      ra, 8(sp)
        sd      t1, 16(sp)
        sd      t2, 24(sp)
        sd      a0, 32(sp)
        sd      a1, 40(sp)
        sd      a2, 48(sp)
        sd      a3, 56(sp)
        sd      a4, 64(sp)
        sd      a5, 72(sp)
        sd      a6, 80(sp)
        sd      a7, 88(sp)
        sd      t3, 96(sp)
        sd      t4, 104(sp)
        sd      t5, 112(sp)
        sd      t6, 120(sp)
        mv      a0, t0
        call    on_trap
        ld      ra, 8(sp)
        ld      t1, 16(sp)
        ld      t2, 24(sp)
        ld      a0, 32(sp)
        ld      a1, 40(sp)
        ld      a2, 48(sp)
        ld      a3, 56(sp)
        ld      a4, 64(sp)
        ld      a5, 72(sp)
        ld      a6, 80(sp)
        ld      a7, 88(sp)
        ld      t3, 96(sp)
        ld      t4, 104(sp)
        ld      t5, 112(sp)
        ld      t6, 120(sp)
        ld      t0, 0(sp)
        addi    sp, sp, 144
        sret

/* long idle_wait(u64 seed): fills s2..s11 and fs0..fs11 with values made
   from seed, waits for an interrupt (wfi; the handler runs meanwhile and
   preserves them as the ABI says), and returns the number of registers
   whose value changed (0: the world switches and migrations in between
   kept this vCPU's registers). */
        .globl idle_wait
idle_wait:
        addi    sp, sp, -192
        sd      s2, 0(sp)
        sd      s3, 8(sp)
        sd      s4, 16(sp)
        sd      s5, 24(sp)
        sd      s6, 32(sp)
        sd      s7, 40(sp)
        sd      s8, 48(sp)
        sd      s9, 56(sp)
        sd      s10, 64(sp)
        sd      s11, 72(sp)
        fsd     fs0, 80(sp)
        fsd     fs1, 88(sp)
        fsd     fs2, 96(sp)
        fsd     fs3, 104(sp)
        fsd     fs4, 112(sp)
        fsd     fs5, 120(sp)
        fsd     fs6, 128(sp)
        fsd     fs7, 136(sp)
        fsd     fs8, 144(sp)
        fsd     fs9, 152(sp)
        fsd     fs10, 160(sp)
        fsd     fs11, 168(sp)
        .irp    i, 2,3,4,5,6,7,8,9,10,11
        addi    s\i, a0, \i
        .endr
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11
        xori    t0, a0, 0x100 + \i
        fmv.d.x fs\i, t0
        .endr
        wfi
        li      a1, 0
        .irp    i, 2,3,4,5,6,7,8,9,10,11
        addi    t0, a0, \i
        beq     t0, s\i, 1f
        addi    a1, a1, 1
1:
        .endr
        .irp    i, 0,1,2,3,4,5,6,7,8,9,10,11
        xori    t0, a0, 0x100 + \i
        fmv.x.d t1, fs\i
        beq     t0, t1, 2f
        addi    a1, a1, 1
2:
        .endr
        mv      a0, a1
        ld      s2, 0(sp)
        ld      s3, 8(sp)
        ld      s4, 16(sp)
        ld      s5, 24(sp)
        ld      s6, 32(sp)
        ld      s7, 40(sp)
        ld      s8, 48(sp)
        ld      s9, 56(sp)
        ld      s10, 64(sp)
        ld      s11, 72(sp)
        fld     fs0, 80(sp)
        fld     fs1, 88(sp)
        fld     fs2, 96(sp)
        fld     fs3, 104(sp)
        fld     fs4, 112(sp)
        fld     fs5, 120(sp)
        fld     fs6, 128(sp)
        fld     fs7, 136(sp)
        fld     fs8, 144(sp)
        fld     fs9, 152(sp)
        fld     fs10, 160(sp)
        fld     fs11, 168(sp)
        addi    sp, sp, 192
        ret

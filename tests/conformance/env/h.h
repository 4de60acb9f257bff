/*
 * Strata conformance suite: H-extension helpers (Privileged Architecture
 * 20211203, chapter 8).  Include after test.h in h_*.S tests, which also
 * carry the marker comment "qemu-cpu: rv64,h=true" for run.sh.
 *
 * Trap records (filled by env/start.S when misa.H=1):
 *   rt_mtrap  +40 mtval2  +48 mtinst  +56 MPV  +64 mstatus.GVA
 *   rt_strap  +40 htval   +48 htinst  +56 SPV  +64 hstatus.GVA  +72 SPVP
 *   rt_vstrap  (traps taken in VS-mode by rt_trap_vs, vstvec):
 *             +0 vscause +8 vsepc +16 vstval +24 vsstatus.SPP +32 count
 */
#ifndef STRATA_H_H
#define STRATA_H_H

#define MSTATUS_GVA     0x4000000000
#define MSTATUS_MPV     0x8000000000

#define HSTATUS_VSBE    (1 << 5)
#define HSTATUS_GVA     (1 << 6)
#define HSTATUS_SPV     (1 << 7)
#define HSTATUS_SPVP    (1 << 8)
#define HSTATUS_HU      (1 << 9)
#define HSTATUS_VGEIN   (0x3f << 12)
#define HSTATUS_VTVM    (1 << 20)
#define HSTATUS_VTW     (1 << 21)
#define HSTATUS_VTSR    (1 << 22)
#define HSTATUS_VSXL    0x300000000

#define CAUSE_ECALL_VS          10
#define CAUSE_FETCH_GPF         20
#define CAUSE_LOAD_GPF          21
#define CAUSE_VIRTUAL           22
#define CAUSE_STORE_GPF         23
#define IRQ_CAUSE(n)            (0x8000000000000000 | (n))

#define MIP_SSIP   (1 << 1)
#define MIP_VSSIP  (1 << 2)
#define MIP_STIP   (1 << 5)
#define MIP_VSTIP  (1 << 6)
#define MIP_SEIP   (1 << 9)
#define MIP_VSEIP  (1 << 10)
#define MIP_SGEIP  (1 << 12)

#define HGATP_SV39X4    0x8000000000000000
#define HGATP_SV48X4    0x9000000000000000
#define HGATP_VMID_SHIFT 44

/* htinst/mtinst pseudoinstructions for implicit VS-stage PT accesses (8.6.3) */
#define TINST_PT_READ64   0x3000
#define TINST_PT_WRITE64  0x3020

#ifdef __ASSEMBLER__
        .option arch, +h

/* Quiet H state: no delegation to VS, no virtual interrupts, Bare G- and
   VS-stage, the VS handler installed. */
.macro H_INIT
        csrw    hedeleg, zero
        csrw    hideleg, zero
        csrw    hvip, zero
        csrw    hie, zero
        csrw    hgatp, zero
        csrw    vsatp, zero
        csrw    hcounteren, zero
        csrw    htimedelta, zero
        li      t0, (2 << 32)                   /* VSXL = 64, everything else 0 */
        csrw    hstatus, t0
        li      t0, (1 << 13)                   /* vsstatus.FS = Initial */
        csrw    vsstatus, t0
        la      t0, rt_trap_vs
        csrw    vstvec, t0
        la      t0, rt_vssave
        csrw    vsscratch, t0
        hfence.gvma
        hfence.vvma
.endm

/* Mode switches from M.  GOTO_HS/GOTO_HU enter HS/U with MPV=0 (the base
   GOTO_MODE leaves MPV alone); GOTO_V enters VS (PRV_S) or VU (PRV_U) with
   MPV=1 (8.4.1: MRET sets V=MPV unless MPP=3).  RETURN_M works from any of
   them (ecall causes 8, 9, 10, forwarded by the S and VS handlers). */
.macro GOTO_NV mode
        li      t0, MSTATUS_MPV
        csrc    mstatus, t0
        GOTO_MODE \mode
.endm
.macro GOTO_HS
        GOTO_NV PRV_S
.endm
.macro GOTO_HU
        GOTO_NV PRV_U
.endm
.macro GOTO_V mode
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, (\mode << 11)
        csrs    mstatus, t0
        li      t0, MSTATUS_MPV
        csrs    mstatus, t0
        la      t0, .Lgv\@
        csrw    mepc, t0
        mret
.Lgv\@:
.endm

/* Run insn(s) in mode (GOTO_V for virt=1, GOTO_NV for virt=0), with s1 = va,
   then check the M-mode trap cause (NO_TRAP if none). */
.macro MODE_ACCESS name, virt, mode, va, cause, insn:vararg
        CLEAR_TRAP
        li      s1, \va
        SET_RESUME .Lma\@
        .if \virt
        GOTO_V  \mode
        .else
        GOTO_NV \mode
        .endif
        \insn
.Lma\@: RETURN_M
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name", a0, \cause
.endm
.macro VEXPECT name, mode, cause, insn:vararg
        MODE_ACCESS "\name", 1, \mode, 0, \cause, \insn
.endm
.macro NVEXPECT name, mode, cause, insn:vararg
        MODE_ACCESS "\name", 0, \mode, 0, \cause, \insn
.endm

/* H fields of the trap records */
.macro TRAP_MTVAL2 reg
        ld      \reg, rt_mtrap+40
.endm
.macro TRAP_MTINST reg
        ld      \reg, rt_mtrap+48
.endm
.macro TRAP_MPV reg
        ld      \reg, rt_mtrap+56
.endm
.macro TRAP_MGVA reg
        ld      \reg, rt_mtrap+64
.endm
.macro STRAP_HTVAL reg
        ld      \reg, rt_strap+40
.endm
.macro STRAP_HTINST reg
        ld      \reg, rt_strap+48
.endm
.macro STRAP_SPV reg
        ld      \reg, rt_strap+56
.endm
.macro STRAP_GVA reg
        ld      \reg, rt_strap+64
.endm
.macro STRAP_SPVP reg
        ld      \reg, rt_strap+72
.endm
.macro STRAP_COUNT reg
        ld      \reg, rt_strap+32
.endm
.macro VSTRAP_CAUSE reg
        ld      \reg, rt_vstrap
.endm
.macro VSTRAP_EPC reg
        ld      \reg, rt_vstrap+8
.endm
.macro VSTRAP_TVAL reg
        ld      \reg, rt_vstrap+16
.endm
.macro VSTRAP_PRV reg
        ld      \reg, rt_vstrap+24
.endm
.macro VSTRAP_COUNT reg
        ld      \reg, rt_vstrap+32
.endm

/* reg = (reg == value) ? 1 : 0, using t6 */
.macro ISEQ reg, value
        li      t6, \value
        sub     \reg, \reg, t6
        seqz    \reg, \reg
.endm

/* ---- page tables (Sv39/Sv48 VS-stage, Sv39x4/Sv48x4 G-stage, Priv 4.4, 8.5.1) */
/* reg = PTE for the physical address in preg with flags (uses t6) */
.macro MKPTE reg, preg, flags
        srli    \reg, \preg, 12
        slli    \reg, \reg, 10
        li      t6, \flags
        or      \reg, \reg, t6
.endm
/* table[idx] = PTE(address of sym, flags) (uses t4-t6) */
.macro SETPTE table, idx, sym, flags
        la      t5, \sym
        MKPTE   t4, t5, \flags
        la      t5, \table
        li      t6, (\idx) * 8
        add     t5, t5, t6
        sd      t4, 0(t5)
.endm
.macro SETPTE_PA table, idx, pa, flags
        li      t5, \pa
        MKPTE   t4, t5, \flags
        la      t5, \table
        li      t6, (\idx) * 8
        add     t5, t5, t6
        sd      t4, 0(t5)
.endm
/* hgatp = mode | vmid | root PPN, then HFENCE.GVMA (all) */
.macro USE_HGATP root, mode, vmid
        la      t5, \root
        srli    t5, t5, 12
        li      t4, \mode | (\vmid << HGATP_VMID_SHIFT)
        or      t5, t5, t4
        csrw    hgatp, t5
        hfence.gvma
.endm
/* vsatp = mode | asid | root PPN, then HFENCE.VVMA (all, current VMID) */
.macro USE_VSATP root, mode, asid
        la      t5, \root
        srli    t5, t5, 12
        li      t4, \mode | (\asid << 44)
        or      t5, t5, t4
        csrw    vsatp, t5
        hfence.vvma
.endm
#endif /* __ASSEMBLER__ */
#endif

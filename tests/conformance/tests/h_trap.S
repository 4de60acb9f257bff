/* H extension traps (Privileged 20211203 8.6): entering VS/VU with MRET
   (MPV) and SRET (SPV), trap entry into M/HS/VS (MPV, SPV, SPVP, SPP, GVA,
   mtval2/htval/mtinst/htinst for non-guest-page-fault traps), hedeleg and
   medeleg, virtual-instruction exceptions (8.6.1: VTSR, VTW, VTVM, HFENCE,
   HLV, counters), VS-level interrupts (hvip, hie, hideleg, translation of
   causes 2/6/10 to 1/5/9, global enables, priority).
   qemu-cpu: rv64,h=true */
#include "test.h"
#include "h.h"

#define BADOP 0xfe000033        /* reserved OP encoding: illegal everywhere */

/* reg = MPV << 4 | MPP of the last M trap (uses t3) */
.macro MPV_MPP reg
        TRAP_MPV \reg
        TRAP_PRV t3
        slli    \reg, \reg, 4
        or      \reg, \reg, t3
.endm
/* reg = SPV << 8 | SPVP << 4 | SPP of the last HS trap (uses t3) */
.macro SPV_SPVP_SPP reg
        STRAP_SPV \reg
        slli    \reg, \reg, 4
        STRAP_SPVP t3
        or      \reg, \reg, t3
        slli    \reg, \reg, 4
        STRAP_PRV t3
        or      \reg, \reg, t3
.endm
/* Run insn in (virt, mode); check the cause recorded by the HS handler */
.macro MODE_STRAP name, virt, mode, cause, insn:vararg
        CLEAR_TRAP
        SET_RESUME .Lst\@
        .if \virt
        GOTO_V  \mode
        .else
        GOTO_NV \mode
        .endif
        \insn
.Lst\@: RETURN_M
        DISARM
        STRAP_CAUSE a0
        CHECK_EQ "\name", a0, \cause
.endm
/* ... and by the VS handler */
.macro MODE_VSTRAP name, mode, cause, insn:vararg
        CLEAR_TRAP
        SET_RESUME .Lvt\@
        GOTO_V  \mode
        \insn
.Lvt\@: RETURN_M
        DISARM
        VSTRAP_CAUSE a0
        CHECK_EQ "\name", a0, \cause
.endm
/* SRET in VS returning to the next label in VS; check the M trap cause */
.macro VS_SRET name, cause
        CLEAR_TRAP
        SET_RESUME .Lsr\@
        GOTO_V  PRV_S
        la      t0, .Lsr\@
        csrw    sepc, t0
        li      t0, MSTATUS_SPP
        csrs    sstatus, t0
        sret
.Lsr\@: RETURN_M
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name", a0, \cause
.endm
/* Run a few nops in (virt, mode) and come back: lets pending interrupts in */
.macro VISIT virt, mode
        CLEAR_TRAP
        .if \virt
        GOTO_V  \mode
        .else
        GOTO_NV \mode
        .endif
        nop
        nop
        RETURN_M
.endm

TEST_BEGIN(h_trap)
        H_INIT

        /* ---- A. entering VS/VU (8.6.4) */
        CLEAR_TRAP
        SET_RESUME 1f
        GOTO_V  PRV_S
        li      a7, 0
2:      ecall
1:      RETURN_M
        DISARM
        TRAP_CAUSE s1
        CHECK_EQ "ecall from VS: cause 10", s1, CAUSE_ECALL_VS
        MPV_MPP s1
        CHECK_EQ "ecall from VS: MPV=1 MPP=S", s1, 0x11
        TRAP_EPC s1
        la      t0, 2b
        sub     s1, s1, t0
        CHECK_EQ "ecall from VS: mepc", s1, 0
        CLEAR_TRAP
        SET_RESUME 1f
        GOTO_V  PRV_U
        li      a7, 0
        ecall
1:      RETURN_M
        DISARM
        TRAP_CAUSE s1
        CHECK_EQ "ecall from VU: cause 8", s1, CAUSE_ECALL_U
        MPV_MPP s1
        CHECK_EQ "ecall from VU: MPV=1 MPP=U", s1, 0x10

        /* MRET with MPP=M ignores MPV (8.4.1); MRET sets MPV=0, MPP=U */
        li      t0, 0xa1a1
        csrw    sscratch, t0
        li      t0, 0xb2b2
        csrw    vsscratch, t0
        li      t0, MSTATUS_MPP
        csrs    mstatus, t0
        li      t0, MSTATUS_MPV
        csrs    mstatus, t0
        la      t0, 1f
        csrw    mepc, t0
        mret
1:      csrr    s1, sscratch
        csrr    s2, mstatus
        RETURN_M                /* resynchronizes a machine that entered V=1 */
        /* QEMU DEPARTURE: QEMU 7.2 sets V=1 on MRET with MPP=M, MPV=1
           (Priv 20211203 8.4.1 / 8.6.4: V remains 0) */
        CHECK_EQ "mret MPP=M MPV=1: V stays 0 (sscratch is HS's)", s1, 0xa1a1
        srli    s3, s2, 39
        andi    s3, s3, 1
        CHECK_EQ "mret sets MPV=0", s3, 0
        srli    s3, s2, 11
        andi    s3, s3, 3
        CHECK_EQ "mret sets MPP=U", s3, 0
        la      t0, rt_ssave
        csrw    sscratch, t0
        la      t0, rt_vssave
        csrw    vsscratch, t0

        /* SRET from HS with SPV=1 (8.6.4) */
        CLEAR_TRAP
        SET_RESUME 2f
        GOTO_HS
        li      t0, HSTATUS_SPV
        csrs    hstatus, t0
        li      t0, MSTATUS_SPP
        csrs    sstatus, t0
        la      t0, 1f
        csrw    sepc, t0
        sret
1:      li      a7, 0
        ecall
2:      RETURN_M
        DISARM
        TRAP_CAUSE s1
        CHECK_EQ "sret SPV=1 SPP=S enters VS (ecall cause 10)", s1, CAUSE_ECALL_VS
        csrr    s1, hstatus
        andi    s1, s1, HSTATUS_SPV
        CHECK_EQ "sret clears hstatus.SPV", s1, 0
        CLEAR_TRAP
        SET_RESUME 2f
        GOTO_HS
        li      t0, HSTATUS_SPV
        csrs    hstatus, t0
        li      t0, MSTATUS_SPP
        csrc    sstatus, t0
        la      t0, 1f
        csrw    sepc, t0
        sret
1:      li      a7, 0
        ecall
2:      RETURN_M
        DISARM
        TRAP_CAUSE s1
        CHECK_EQ "sret SPV=1 SPP=U enters VU (ecall cause 8)", s1, CAUSE_ECALL_U
        MPV_MPP s1
        CHECK_EQ "ecall after sret to VU: MPV=1 MPP=U", s1, 0x10

        /* ---- B. traps from V=1 into HS (8.6.2, Table 8.9) */
        li      t0, (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT)
        csrw    medeleg, t0
        MODE_STRAP "VS illegal with medeleg: taken in HS", 1, PRV_S, CAUSE_ILLEGAL, .4byte BADOP
        SPV_SPVP_SPP s1
        CHECK_EQ "trap VS->HS: SPV=1 SPVP=1 SPP=1", s1, 0x111
        STRAP_GVA s1
        CHECK_EQ "trap VS->HS (illegal): hstatus.GVA=0", s1, 0
        STRAP_HTVAL s1
        CHECK_EQ "trap VS->HS (illegal): htval=0", s1, 0
        STRAP_HTINST s1
        CHECK_EQ "trap VS->HS (illegal): htinst=0", s1, 0
        STRAP_TVAL s1
        beqz    s1, 1f
        li      t0, BADOP
        sub     s1, s1, t0
1:      CHECK_EQ "trap VS->HS (illegal): stval = 0 or the bits", s1, 0
        TRAP_CAUSE s1
        CHECK_EQ "trap VS->HS: no M-mode trap", s1, NO_TRAP
        MODE_STRAP "VU illegal with medeleg: taken in HS", 1, PRV_U, CAUSE_ILLEGAL, .4byte BADOP
        SPV_SPVP_SPP s1
        CHECK_EQ "trap VU->HS: SPV=1 SPVP=0 SPP=0", s1, 0x100
        li      t0, HSTATUS_SPVP
        csrs    hstatus, t0
        MODE_STRAP "HS illegal: taken in HS", 0, PRV_S, CAUSE_ILLEGAL, .4byte BADOP
        SPV_SPVP_SPP s1
        CHECK_EQ "trap HS->HS: SPV=0, SPVP kept at 1, SPP=1", s1, 0x011
        li      t0, HSTATUS_SPVP
        csrc    hstatus, t0
        MODE_STRAP "U illegal: taken in HS", 0, PRV_U, CAUSE_ILLEGAL, .4byte BADOP
        SPV_SPVP_SPP s1
        CHECK_EQ "trap U->HS: SPV=0, SPVP kept at 0, SPP=0", s1, 0x000
        MODE_STRAP "VS ebreak with medeleg: taken in HS", 1, PRV_S, CAUSE_BREAKPOINT, ebreak
        STRAP_TVAL s1
        snez    s1, s1
        STRAP_GVA s2
        sub     s1, s1, s2
        CHECK_EQ "ebreak VS->HS: GVA=1 iff stval holds the GVA", s1, 0
        li      t0, (1 << CAUSE_ECALL_VS)
        csrw    medeleg, t0
        li      a7, 0                           /* a plain ecall, not RETURN_M */
        MODE_STRAP "VS ecall with medeleg[10]: taken in HS", 1, PRV_S, CAUSE_ECALL_VS, ecall
        csrw    medeleg, zero

        /* traps to M from V=1: MPV, and zero mtval2/mtinst (8.4.4, 8.6.3) */
        VEXPECT "VS illegal without medeleg: taken in M", PRV_S, CAUSE_ILLEGAL, .4byte BADOP
        MPV_MPP s1
        CHECK_EQ "illegal from VS: MPV=1 MPP=S", s1, 0x11
        TRAP_MTVAL2 s1
        CHECK_EQ "illegal from VS: mtval2=0", s1, 0
        TRAP_MTINST s1
        CHECK_EQ "illegal from VS: mtinst=0", s1, 0
        /* QEMU DEPARTURE: QEMU 7.2 sets GVA for traps from V=1 with a
           nonzero mtval that is not an address (Priv 8.4.1) */
        TRAP_MGVA s1
        CHECK_EQ "illegal from VS: mstatus.GVA=0", s1, 0

        /* ---- C. delegation to VS with hedeleg (8.2.2) */
        li      t0, (1 << CAUSE_ILLEGAL) | (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_ECALL_U)
        csrw    medeleg, t0
        csrw    hedeleg, t0
        li      t0, HSTATUS_GVA
        csrs    hstatus, t0                     /* a trap into VS must not touch it */
        /* Even: sepc[0] reads as zero (Priv 4.1.7), which is not what this
           case is about. */
        li      t0, 0x1356
        csrw    sepc, t0
        li      t0, 0x2468
        csrw    scause, t0
        csrr    s9, hstatus
        /* QEMU DEPARTURE: Priv 8.2.2: only interrupts 2/6/10 are translated for VS;
           QEMU 7.2 also rewrites exception 2 (illegal instruction) delegated to VS
           into cause 1 */
        MODE_VSTRAP "VS illegal with hedeleg: taken in VS", PRV_S, CAUSE_ILLEGAL, 3: .4byte BADOP
        VSTRAP_PRV s1
        CHECK_EQ "trap VS->VS: vsstatus.SPP=1", s1, 1
        VSTRAP_EPC s1
        la      t0, 3b
        sub     s1, s1, t0
        CHECK_EQ "trap VS->VS: vsepc", s1, 0
        STRAP_COUNT s1
        CHECK_EQ "trap VS->VS: no HS trap", s1, 0
        TRAP_CAUSE s1
        CHECK_EQ "trap VS->VS: no M trap", s1, NO_TRAP
        csrr    s1, hstatus
        sub     s1, s1, s9
        /* QEMU DEPARTURE: Priv 8.6.2: a trap into VS-mode does not modify hstatus;
           QEMU 7.2 clears hstatus.GVA */
        CHECK_EQ "trap VS->VS: hstatus untouched (GVA=1 kept)", s1, 0
        csrr    s1, sepc
        csrr    s2, scause
        slli    s1, s1, 16
        or      s1, s1, s2
        CHECK_EQ "trap VS->VS: HS sepc/scause untouched", s1, 0x13562468
        /* QEMU DEPARTURE: same as "VS illegal with hedeleg" (QEMU 7.2 reports cause
           1) */
        MODE_VSTRAP "VU illegal with hedeleg: taken in VS", PRV_U, CAUSE_ILLEGAL, .4byte BADOP
        VSTRAP_PRV s1
        CHECK_EQ "trap VU->VS: vsstatus.SPP=0", s1, 0
        li      a7, 0
        MODE_VSTRAP "VU ecall with hedeleg[8]: taken in VS", PRV_U, CAUSE_ECALL_U, ecall
        MODE_VSTRAP "VS ebreak with hedeleg[3]: taken in VS", PRV_S, CAUSE_BREAKPOINT, ebreak
        csrw    medeleg, zero
        VEXPECT "hedeleg without medeleg: taken in M", PRV_S, CAUSE_ILLEGAL, .4byte BADOP
        csrw    hedeleg, zero
        li      t0, HSTATUS_GVA
        csrc    hstatus, t0
        la      t0, rt_ssave
        csrw    sscratch, t0

        /* ---- D. virtual-instruction exceptions (8.6.1) */
        li      t0, HSTATUS_VTSR
        csrs    hstatus, t0
        VS_SRET "VS sret with VTSR=1: virtual instruction", CAUSE_VIRTUAL
        li      t0, HSTATUS_VTSR
        csrc    hstatus, t0
        VS_SRET "VS sret with VTSR=0: allowed", NO_TRAP
        li      t0, MSTATUS_TSR
        csrs    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.4.1: mstatus.TSR affects only HS-mode; QEMU 7.2
           raises illegal instruction in VS-mode */
        VS_SRET "VS sret with mstatus.TSR=1: allowed (TSR is HS only)", NO_TRAP
        li      t0, MSTATUS_TSR
        csrc    mstatus, t0
        VEXPECT "VU sret: virtual instruction", PRV_U, CAUSE_VIRTUAL, sret
        /* No interrupt is pending or enabled, so a WFI can never complete:
           with VTW=1 it must trap (the same reading as deleg's TW case) */
        li      t0, HSTATUS_VTW
        csrs    hstatus, t0
        VEXPECT "VS wfi with VTW=1: virtual instruction", PRV_S, CAUSE_VIRTUAL, wfi
        li      t0, HSTATUS_VTW
        csrc    hstatus, t0
        li      t0, MSTATUS_TW
        csrs    mstatus, t0
        VEXPECT "VS wfi with mstatus.TW=1: illegal", PRV_S, CAUSE_ILLEGAL, wfi
        /* QEMU DEPARTURE: Priv 3.1.6.5 + 8.4.1 (TW applies in all modes but M) and
           8.6.1 (the virtual-instruction case needs TW=0); QEMU 7.2 raises virtual
           instruction */
        VEXPECT "VU wfi with mstatus.TW=1: illegal", PRV_U, CAUSE_ILLEGAL, wfi
        li      t0, MSTATUS_TW
        csrc    mstatus, t0
        VEXPECT "VU wfi with TW=0: virtual instruction", PRV_U, CAUSE_VIRTUAL, wfi
        li      t0, HSTATUS_VTVM
        csrs    hstatus, t0
        VEXPECT "VS sfence.vma with VTVM=1: virtual instruction", PRV_S, CAUSE_VIRTUAL, sfence.vma
        /* QEMU DEPARTURE: Priv 8.2.1: with hstatus.VTVM=1, VS-mode accesses to satp
           raise virtual instruction; QEMU 7.2 allows them */
        VEXPECT "VS csrr satp with VTVM=1: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, satp
        VEXPECT "VS csrw satp with VTVM=1: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrw satp, zero
        li      t0, HSTATUS_VTVM
        csrc    hstatus, t0
        li      t0, MSTATUS_TVM
        csrs    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.4.1: mstatus.TVM affects only HS-mode; QEMU 7.2
           raises illegal instruction in VS-mode */
        VEXPECT "VS csrr satp with TVM=1 VTVM=0: allowed", PRV_S, NO_TRAP, csrr s3, satp
        VEXPECT "VS sfence.vma with TVM=1 VTVM=0: allowed", PRV_S, NO_TRAP, sfence.vma
        NVEXPECT "HS hfence.gvma with TVM=1: illegal", PRV_S, CAUSE_ILLEGAL, hfence.gvma
        NVEXPECT "HS hfence.vvma with TVM=1: allowed", PRV_S, NO_TRAP, hfence.vvma
        CLEAR_TRAP
        hfence.gvma
        TRAP_CAUSE s1
        CHECK_EQ "M hfence.gvma with TVM=1: allowed", s1, NO_TRAP
        li      t0, MSTATUS_TVM
        csrc    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.6.1: in VU-mode SFENCE raises virtual instruction;
           QEMU 7.2 raises illegal instruction */
        VEXPECT "VU sfence.vma: virtual instruction", PRV_U, CAUSE_VIRTUAL, sfence.vma
        VEXPECT "VS hfence.vvma: virtual instruction", PRV_S, CAUSE_VIRTUAL, hfence.vvma
        VEXPECT "VS hfence.gvma: virtual instruction", PRV_S, CAUSE_VIRTUAL, hfence.gvma
        VEXPECT "VU hfence.gvma: virtual instruction", PRV_U, CAUSE_VIRTUAL, hfence.gvma
        NVEXPECT "U hfence.vvma: illegal", PRV_U, CAUSE_ILLEGAL, hfence.vvma
        NVEXPECT "U hfence.gvma: illegal", PRV_U, CAUSE_ILLEGAL, hfence.gvma
        MODE_ACCESS "VS hlv.d: virtual instruction", 1, PRV_S, 0x80000000, CAUSE_VIRTUAL, hlv.d s3, (s1)
        MODE_ACCESS "VU hsv.w: virtual instruction", 1, PRV_U, 0x80000000, CAUSE_VIRTUAL, hsv.w zero, (s1)
        MODE_ACCESS "VS hlvx.hu: virtual instruction", 1, PRV_S, 0x80000000, CAUSE_VIRTUAL, hlvx.hu s3, (s1)
        MODE_ACCESS "U hlv.w with HU=0: illegal", 0, PRV_U, 0x80000000, CAUSE_ILLEGAL, hlv.w s3, (s1)
        li      t0, HSTATUS_HU
        csrs    hstatus, t0
        MODE_ACCESS "U hlv.w with HU=1: allowed", 0, PRV_U, 0x80000000, NO_TRAP, hlv.w s3, (s1)
        li      t0, HSTATUS_HU
        csrc    hstatus, t0
        /* counters: hcounteren gates V=1, scounteren VU, mcounteren all */
        li      t0, 5                           /* CY, IR */
        csrw    mcounteren, t0
        VEXPECT "VS cycle with hcounteren.CY=0: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, cycle
        VEXPECT "VS instret with hcounteren.IR=0: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, instret
        li      t0, 5
        csrw    hcounteren, t0
        VEXPECT "VS cycle with hcounteren.CY=1: allowed", PRV_S, NO_TRAP, csrr s3, cycle
        VEXPECT "VU cycle with scounteren.CY=0: virtual instruction", PRV_U, CAUSE_VIRTUAL, csrr s3, cycle
        li      t0, 5
        csrw    scounteren, t0
        VEXPECT "VU cycle with all three enables: allowed", PRV_U, NO_TRAP, csrr s3, cycle
        csrw    mcounteren, zero
        VEXPECT "VS cycle with mcounteren.CY=0: illegal", PRV_S, CAUSE_ILLEGAL, csrr s3, cycle
        VEXPECT "VU cycle with mcounteren.CY=0: illegal", PRV_U, CAUSE_ILLEGAL, csrr s3, cycle
        csrw    hcounteren, zero
        csrw    scounteren, zero

        /* ---- E. VS-level interrupts (8.2.2, 8.2.3, 8.1) */
        /* not delegated (hideleg=0): taken in HS with the untranslated cause */
        li      t0, MIP_VSSIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        STRAP_CAUSE s1
        CHECK_EQ "VSSI, hideleg=0, in VS: HS takes cause 2", s1, IRQ_CAUSE(2)
        STRAP_SPV s1
        CHECK_EQ "VSSI taken in HS from VS: SPV=1", s1, 1
        li      t0, MIP_VSSIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   0, PRV_S
        STRAP_COUNT s1
        CHECK_EQ "VSSI pending in HS with sstatus.SIE=0: not taken", s1, 0
        CLEAR_TRAP
        GOTO_HS
        csrsi   sstatus, MSTATUS_SIE
        nop
        csrci   sstatus, MSTATUS_SIE
        RETURN_M
        csrw    hvip, zero
        STRAP_CAUSE s1
        CHECK_EQ "VSSI pending in HS, SIE set: taken, cause 2", s1, IRQ_CAUSE(2)
        li      t0, MIP_VSTIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_U
        csrw    hvip, zero
        STRAP_CAUSE s1
        CHECK_EQ "VSTI, hideleg=0, in VU: HS takes cause 6", s1, IRQ_CAUSE(6)
        /* HS priority: SEI SSI STI SGEI VSEI VSSI VSTI */
        li      t0, 0x444
        csrw    hie, t0
        li      t0, MIP_VSSIP | MIP_VSTIP
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        STRAP_CAUSE s1
        CHECK_EQ "HS priority: VSSI before VSTI", s1, IRQ_CAUSE(2)
        li      t0, 0x444
        csrw    hie, t0
        li      t0, MIP_VSSIP | MIP_VSEIP
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        STRAP_CAUSE s1
        /* QEMU DEPARTURE: Priv 8.2.3: HS-mode priority SEI, SSI, STI, SGEI, VSEI,
           VSSI, VSTI; QEMU 7.2 takes the lowest-numbered cause first (VSSI) */
        CHECK_EQ "HS priority: VSEI before VSSI", s1, IRQ_CAUSE(10)
        li      t0, MIP_VSSIP
        csrw    hie, t0
        csrw    hvip, t0
        li      t0, 2
        csrw    mideleg, t0                     /* SSI to HS */
        li      t0, MIP_SSIP
        csrs    mip, t0
        csrs    mie, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        li      t0, MIP_SSIP
        csrc    mip, t0
        csrw    mideleg, zero
        csrw    mie, zero
        STRAP_CAUSE s1
        CHECK_EQ "HS priority: SSI before VSSI", s1, IRQ_CAUSE(1)
        /* mip.VSSIP is the same bit as hvip.VSSIP */
        li      t0, MIP_VSSIP
        csrs    mip, t0
        csrr    s1, hvip
        csrw    hvip, zero
        CHECK_EQ "mip.VSSIP writes hvip.VSSIP", s1, MIP_VSSIP

        /* delegated (hideleg): taken in VS with causes 1/5/9 */
        li      t0, 0x444
        csrw    hideleg, t0
        li      t0, MSTATUS_SIE
        csrs    vsstatus, t0
        li      t0, MIP_VSSIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        VSTRAP_CAUSE s1
        CHECK_EQ "VSSI delegated: VS takes cause 1", s1, IRQ_CAUSE(1)
        STRAP_COUNT s1
        CHECK_EQ "VSSI delegated: no HS trap", s1, 0
        li      t0, MIP_VSTIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        VSTRAP_CAUSE s1
        CHECK_EQ "VSTI delegated: VS takes cause 5", s1, IRQ_CAUSE(5)
        li      t0, MIP_VSEIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        VSTRAP_CAUSE s1
        CHECK_EQ "VSEI delegated: VS takes cause 9", s1, IRQ_CAUSE(9)
        li      t0, 0x444
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        csrw    hvip, zero
        VSTRAP_CAUSE s1
        /* QEMU DEPARTURE: Priv 3.1.9 / 8.2.2: VS-level priority SEI > SSI > STI;
           QEMU 7.2 takes the lowest-numbered cause first (SSI) */
        CHECK_EQ "VS priority: SEI (from VSEIP) first", s1, IRQ_CAUSE(9)
        /* global enables: vsstatus.SIE in VS only; VU always; HS/U never */
        li      t0, MSTATUS_SIE
        csrc    vsstatus, t0
        li      t0, MIP_VSSIP
        csrw    hie, t0
        csrw    hvip, t0
        VISIT   1, PRV_S
        VSTRAP_COUNT s1
        CHECK_EQ "delegated VSSI, vsstatus.SIE=0: not taken in VS", s1, 0
        VISIT   0, PRV_S
        VSTRAP_COUNT s1
        STRAP_COUNT s2
        or      s1, s1, s2
        CHECK_EQ "delegated VSSI: not taken in HS", s1, 0
        VISIT   0, PRV_U
        VSTRAP_COUNT s1
        STRAP_COUNT s2
        or      s1, s1, s2
        CHECK_EQ "delegated VSSI: not taken in U (V=0)", s1, 0
        li      t0, MSTATUS_SIE
        csrs    vsstatus, t0
        VISIT   0, PRV_S
        VSTRAP_COUNT s1
        CHECK_EQ "delegated VSSI, vsstatus.SIE=1: still not taken in HS", s1, 0
        li      t0, MSTATUS_SIE
        csrc    vsstatus, t0
        VISIT   1, PRV_U
        csrw    hvip, zero
        VSTRAP_CAUSE s1
        CHECK_EQ "delegated VSSI, vsstatus.SIE=0: taken in VU", s1, IRQ_CAUSE(1)
        VSTRAP_PRV s1
        CHECK_EQ "VSSI taken from VU: vsstatus.SPP=0", s1, 0
        csrw    hie, zero
        csrw    hideleg, zero
        TEST_END

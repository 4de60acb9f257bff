/* Hypervisor virtual-machine loads and stores (Privileged 20211203 8.3.1):
   HLV.{B,BU,H,HU,W,WU,D}, HLVX.{HU,WU}, HSV.{B,H,W,D} from M, HS and U
   (HU), hstatus.SPVP, vsstatus.SUM/MXR vs the HS-level SUM/MXR, faults
   (mtval/stval = guest VA, GVA=1, MPV/SPV=0), guest-page faults from HLV
   (mtval2 = GPA >> 2, mtinst), MPRV not applying to HLV, and MPRV with
   MPV=1 (8.4.1, Table 8.6).
   qemu-cpu: rv64,h=true */
#include "test.h"
#include "h.h"

#define VA0     0x40000000      /* S page  -> hdata          */
#define VA_U    0x40001000      /* U page  -> hdata          */
#define VA_X    0x40002000      /* X-only  -> hdata          */
#define VA_R    0x40003000      /* R-only  -> hdata          */
#define VA_INV  0x40004000      /* invalid                   */
#define VA_GPF  0x40005000      /* -> GPA 0xC000_1000, not in the G-stage */
#define VA_GU0  0x40006000      /* -> GPA 0x1_4000_0000: G-stage leaf with U=0 */
#define GPA_GPF 0xC0001000
#define GPA_GU0 0x140000000

/* transformed HLV.D s3,(s1) / HSV.D s3,(s1): rs1 field = 0 (8.6.3) */
#define TINST_HLVD_S3  0x6c0049f3
#define TINST_HSVD_S3  0x6f304073

/* Run insn in M with s1 = va and check mcause */
.macro MEXPECT name, va, cause, insn:vararg
        li      s1, \va
        EXPECT_TRAP "\name", \cause, \insn
.endm
/* a0 = 1 if reg == 0 or reg == value */
.macro ZERO_OR reg, value
        mv      a0, \reg
        beqz    a0, 1f
        li      t6, \value
        sub     a0, a0, t6
1:      seqz    a0, a0
.endm

TEST_BEGIN(h_hlv)
        H_INIT
        /* ---- Bare VS-stage and G-stage: HLV/HSV reach memory directly */
        la      s1, hdata
        addi    s2, s1, 8                       /* 0xf0e0d0c0b0a09080 */
        hlv.b   s3, (s2)
        CHECK_EQ "M hlv.b sign-extends", s3, 0xffffffffffffff80
        hlv.bu  s3, (s2)
        CHECK_EQ "M hlv.bu zero-extends", s3, 0x80
        hlv.h   s3, (s2)
        CHECK_EQ "M hlv.h sign-extends", s3, 0xffffffffffff9080
        hlv.hu  s3, (s2)
        CHECK_EQ "M hlv.hu zero-extends", s3, 0x9080
        hlv.w   s3, (s2)
        CHECK_EQ "M hlv.w sign-extends", s3, 0xffffffffb0a09080
        hlv.wu  s3, (s2)
        CHECK_EQ "M hlv.wu zero-extends", s3, 0xb0a09080
        hlv.d   s3, (s1)
        CHECK_EQ "M hlv.d", s3, 0x8877665544332211
        addi    s2, s1, 16
        li      s3, 0x0123456789abcdef
        hsv.d   s3, (s2)
        ld      s4, 16(s1)
        sub     s4, s4, s3
        CHECK_EQ "M hsv.d stores 8 bytes", s4, 0
        addi    s2, s1, 24
        li      s3, 0x11223344
        hsv.w   s3, (s2)
        addi    s2, s1, 28
        li      s3, 0x5566
        hsv.h   s3, (s2)
        addi    s2, s1, 30
        li      s3, 0x77
        hsv.b   s3, (s2)
        ld      s4, 24(s1)
        CHECK_EQ "M hsv.w/h/b store their widths", s4, 0x0077556611223344
        /* the same from HS and from U with hstatus.HU=1 */
        CLEAR_TRAP
        GOTO_HS
        hlv.d   s3, (s1)
        RETURN_M
        CHECK_EQ "HS hlv.d", s3, 0x8877665544332211
        li      t0, HSTATUS_HU
        csrs    hstatus, t0
        CLEAR_TRAP
        GOTO_HU
        hlv.wu  s3, (s1)
        addi    s2, s1, 32
        li      s4, 0x9999
        hsv.h   s4, (s2)
        RETURN_M
        CHECK_EQ "U hlv.wu with HU=1", s3, 0x44332211
        lhu     s3, 32(s1)
        CHECK_EQ "U hsv.h with HU=1", s3, 0x9999
        TRAP_CAUSE s3
        CHECK_EQ "U HLV/HSV with HU=1: no trap", s3, NO_TRAP
        li      t0, HSTATUS_HU
        csrc    hstatus, t0

        /* ---- VS-stage (Sv39, built here) */
        SETPTE  vsroot, 1, vsl1, PTE_V
        SETPTE  vsroot, 2, vsl1b, PTE_V                 /* dummy, no leaves */
        SETPTE  vsl1, 0, vsl0, PTE_V
        SETPTE  vsl0, 0, hdata, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
        SETPTE  vsl0, 1, hdata, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D
        SETPTE  vsl0, 2, hdata, PTE_V|PTE_X|PTE_A
        SETPTE  vsl0, 3, hdata, PTE_V|PTE_R|PTE_A
        SETPTE_PA vsl0, 5, GPA_GPF, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
        SETPTE_PA vsl0, 6, GPA_GU0, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
        USE_VSATP vsroot, SATP_SV39, 0
        li      t0, HSTATUS_SPVP
        csrs    hstatus, t0                     /* SPVP=1: as VS-mode */
        li      s1, VA0
        hlv.d   s3, (s1)
        CHECK_EQ "hlv.d SPVP=1 through VS-stage (S page)", s3, 0x8877665544332211
        /* QEMU DEPARTURE: with the HS-level satp Bare, QEMU 7.2 reports
           HLV's VS-stage page faults as access faults (8.3.1: HLV uses the
           translation of V=1, where satp is irrelevant).  The other cases
           run with satp = Sv39 identity for the HS-mode code. */
        MEXPECT "HS satp Bare: hlv.b of an invalid PTE: load page fault", VA_INV, CAUSE_LOAD_PAGE, hlv.b s3, (s1)
        SETPTE_PA hsroot, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
        la      t0, hsroot
        srli    t0, t0, 12
        li      t1, SATP_SV39
        or      t0, t0, t1
        csrw    satp, t0
        sfence.vma
        /* QEMU DEPARTURE (this and the next): QEMU 7.2 lets HLV with SPVP=1
           read U pages regardless of vsstatus.SUM (8.3.1: vsstatus.SUM
           applies, the HS-level SUM is ignored) */
        MEXPECT "hlv.d SPVP=1, U page, vsstatus.SUM=0: load page fault", VA_U, CAUSE_LOAD_PAGE, hlv.d s3, (s1)
        li      t0, MSTATUS_SUM
        csrs    mstatus, t0
        MEXPECT "hlv.d SPVP=1, U page, HS-level SUM=1 ignored: fault", VA_U, CAUSE_LOAD_PAGE, hlv.d s3, (s1)
        li      t0, MSTATUS_SUM
        csrc    mstatus, t0
        csrs    vsstatus, t0
        MEXPECT "hlv.d SPVP=1, U page, vsstatus.SUM=1: allowed", VA_U, NO_TRAP, hlv.d s3, (s1)
        li      t0, MSTATUS_SUM
        csrc    vsstatus, t0
        li      t0, HSTATUS_SPVP
        csrc    hstatus, t0                     /* SPVP=0: as VU-mode */
        MEXPECT "hlv.d SPVP=0, U page: allowed", VA_U, NO_TRAP, hlv.d s3, (s1)
        CHECK_EQ "hlv.d SPVP=0, U page: value", s3, 0x8877665544332211
        MEXPECT "hlv.d SPVP=0, S page: load page fault", VA0, CAUSE_LOAD_PAGE, hlv.d s3, (s1)
        li      t0, HSTATUS_SPVP
        csrs    hstatus, t0
        /* execute-only pages: HLVX vs HLV, MXR at both levels.
           QEMU DEPARTURE: QEMU 7.2 checks read, not execute, permission for
           HLVX, and ignores both MXR bits for HLV (8.3.1) */
        MEXPECT "hlv.w of an execute-only page: load page fault", VA_X, CAUSE_LOAD_PAGE, hlv.w s3, (s1)
        MEXPECT "hlvx.wu of an execute-only page: allowed", VA_X, NO_TRAP, hlvx.wu s3, (s1)
        CHECK_EQ "hlvx.wu value", s3, 0x44332211
        MEXPECT "hlvx.hu of an execute-only page: allowed", VA_X, NO_TRAP, hlvx.hu s3, (s1)
        CHECK_EQ "hlvx.hu value", s3, 0x2211
        /* QEMU DEPARTURE: Priv 8.3.1: HLVX of a page without X faults; QEMU 7.2
           allows it (checks R) */
        MEXPECT "hlvx.hu of a read-only, non-X page: load page fault", VA_R, CAUSE_LOAD_PAGE, hlvx.hu s3, (s1)
        li      t0, MSTATUS_MXR
        csrs    vsstatus, t0
        MEXPECT "hlv.w of an X-only page with vsstatus.MXR=1: allowed", VA_X, NO_TRAP, hlv.w s3, (s1)
        csrc    vsstatus, t0
        csrs    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.3.1: HS-level MXR makes execute-only pages readable
           for both stages; QEMU 7.2 ignores it for HLV */
        MEXPECT "hlv.w of an X-only page with HS-level MXR=1: allowed", VA_X, NO_TRAP, hlv.w s3, (s1)
        li      t0, MSTATUS_MXR
        csrc    mstatus, t0
        MEXPECT "hsv.d to a read-only page: store page fault", VA_R, CAUSE_STORE_PAGE, hsv.d s3, (s1)
        /* QEMU DEPARTURE: QEMU 7.2 leaves mstatus.GVA=0 for HLV/HSV/MPRV
           faults taken in M from V=0 (8.4.1: GVA=1 when mtval holds a
           guest virtual address) */
        TRAP_MGVA s2
        CHECK_EQ "HSV page fault: mstatus.GVA=1", s2, 1
        MEXPECT "hlv.b of an invalid PTE: load page fault", VA_INV, CAUSE_LOAD_PAGE, hlv.b s3, (s1)
        TRAP_TVAL s2
        li      t0, VA_INV
        sub     s2, s2, t0
        CHECK_EQ "HLV page fault: mtval = guest VA", s2, 0
        TRAP_MGVA s2
        /* QEMU DEPARTURE: same as "HSV page fault: mstatus.GVA=1" */
        CHECK_EQ "HLV page fault: mstatus.GVA=1", s2, 1
        TRAP_MPV s2
        CHECK_EQ "HLV page fault in M: MPV=0", s2, 0
        TRAP_MTVAL2 s2
        CHECK_EQ "HLV page fault: mtval2=0 (not a guest-page fault)", s2, 0
        /* MPRV does not affect HLV (8.4.1): satp is Bare, MPRV would go to
           physical address VA0, which is not RAM */
        li      t0, MSTATUS_MPRV | (PRV_S << 11)
        csrs    mstatus, t0
        MEXPECT "hlv.d with MPRV=1 MPV=0 still uses vsatp", VA0, NO_TRAP, hlv.d s3, (s1)
        li      t0, MSTATUS_MPRV | MSTATUS_MPP
        csrc    mstatus, t0
        CHECK_EQ "hlv.d with MPRV=1: value", s3, 0x8877665544332211
        /* HLV fault taken in HS (medeleg): stval, hstatus.GVA=1, SPV=0 */
        li      t0, (1 << CAUSE_LOAD_PAGE)
        csrw    medeleg, t0
        CLEAR_TRAP
        li      s1, VA_INV + 8
        SET_RESUME 1f
        GOTO_HS
        hlv.d   s3, (s1)
1:      RETURN_M
        DISARM
        csrw    medeleg, zero
        STRAP_CAUSE s2
        CHECK_EQ "HS hlv.d fault delegated: scause 13", s2, CAUSE_LOAD_PAGE
        STRAP_TVAL s2
        li      t0, VA_INV + 8
        sub     s2, s2, t0
        CHECK_EQ "HS hlv.d fault: stval = guest VA", s2, 0
        STRAP_GVA s2
        STRAP_SPV s3
        slli    s2, s2, 4
        or      s2, s2, s3
        CHECK_EQ "HS hlv.d fault: GVA=1 SPV=0", s2, 0x10
        STRAP_HTVAL s2
        CHECK_EQ "HS hlv.d fault: htval=0", s2, 0
        /* HLV from U with HU=1 uses SPVP, not U privilege (U code runs on
           a U=1 identity mapping in satp) */
        SETPTE_PA hsroot_u, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_U|PTE_A|PTE_D
        la      t0, hsroot_u
        srli    t0, t0, 12
        li      t1, SATP_SV39
        or      t0, t0, t1
        csrw    satp, t0
        sfence.vma
        li      t0, HSTATUS_HU
        csrs    hstatus, t0
        CLEAR_TRAP
        li      s1, VA0
        SET_RESUME 1f
        GOTO_HU
        hlv.d   s3, (s1)
1:      RETURN_M
        DISARM
        TRAP_CAUSE s2
        CHECK_EQ "U hlv.d (HU=1, SPVP=1) of an S page: allowed", s2, NO_TRAP
        li      t0, HSTATUS_HU
        csrc    hstatus, t0
        la      t0, hsroot
        srli    t0, t0, 12
        li      t1, SATP_SV39
        or      t0, t0, t1
        csrw    satp, t0
        sfence.vma

        /* ---- MPRV with MPV=1 (Table 8.6): two-stage loads from M */
        li      t0, MSTATUS_MPRV | (PRV_S << 11) | MSTATUS_MPV
        csrs    mstatus, t0
        li      s1, VA0
        CLEAR_TRAP
        ld      s3, 0(s1)
        li      t0, MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_MPV
        csrc    mstatus, t0
        CHECK_EQ "MPRV MPV=1 MPP=S: load through vsatp", s3, 0x8877665544332211
        li      t0, MSTATUS_MPRV | (PRV_U << 11) | MSTATUS_MPV
        csrs    mstatus, t0
        li      s1, VA_U
        ld      s3, 0(s1)
        li      t0, MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_MPV
        csrc    mstatus, t0
        CHECK_EQ "MPRV MPV=1 MPP=U: U page readable", s3, 0x8877665544332211
        /* MPRV is set only around the faulting load: the harness's own
           stores (CLEAR_TRAP, DISARM) must not be translated as VU accesses,
           and the trap's MRET leaves MPRV=1 with MPP=U. */
        li      s1, VA0
        CLEAR_TRAP
        SET_RESUME 1f
        li      t0, MSTATUS_MPRV | (PRV_U << 11) | MSTATUS_MPV
        csrs    mstatus, t0
        ld      s3, 0(s1)
1:      li      t0, MSTATUS_MPRV | MSTATUS_MPP | MSTATUS_MPV
        csrc    mstatus, t0
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "MPRV MPV=1 MPP=U: S page faults cause", a0, CAUSE_LOAD_PAGE
        TRAP_MGVA s2
        /* QEMU DEPARTURE: Priv 8.4.1: an MPRV (MPV=1) access fault writes a guest VA
           to mtval, so GVA=1; QEMU 7.2 leaves GVA=0 */
        CHECK_EQ "MPRV two-stage fault: mstatus.GVA=1", s2, 1

        /* ---- guest-page faults from HLV/HSV (8.5.1, 8.5.2): G-stage Sv39x4,
           GPA 0x8000_0000..0xBFFF_FFFF identity, 0xC000_0000.. unmapped,
           5 GiB: leaf without U */
        SETPTE_PA gsroot, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_U|PTE_A|PTE_D
        SETPTE_PA gsroot, 5, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
        USE_HGATP gsroot, HGATP_SV39X4, 1
        li      s1, VA0
        hlv.d   s3, (s1)
        CHECK_EQ "hlv.d through VS-stage and G-stage", s3, 0x8877665544332211
        MEXPECT "hlv.d to a GPA outside the G-stage: load guest-page fault", VA_GPF + 8, CAUSE_LOAD_GPF, hlv.d s3, (s1)
        TRAP_TVAL s2
        li      t0, VA_GPF + 8
        sub     s2, s2, t0
        CHECK_EQ "HLV guest-page fault: mtval = guest VA", s2, 0
        TRAP_MTVAL2 s2
        CHECK_EQ "HLV guest-page fault: mtval2 = GPA >> 2", s2, (GPA_GPF + 8) >> 2
        TRAP_MGVA s2
        /* QEMU DEPARTURE: same as "HSV page fault: mstatus.GVA=1" (guest-page fault
           of an HLV in M-mode) */
        CHECK_EQ "HLV guest-page fault: mstatus.GVA=1", s2, 1
        TRAP_MTINST s2
        ZERO_OR s2, TINST_HLVD_S3
        CHECK_EQ "HLV guest-page fault: mtinst = 0 or transformed hlv.d", a0, 1
        li      s3, 5
        MEXPECT "hsv.d to a GPA outside the G-stage: store guest-page fault", VA_GPF + 16, CAUSE_STORE_GPF, hsv.d s3, (s1)
        TRAP_MTVAL2 s2
        CHECK_EQ "HSV guest-page fault: mtval2 = GPA >> 2", s2, (GPA_GPF + 16) >> 2
        TRAP_MTINST s2
        ZERO_OR s2, TINST_HSVD_S3
        CHECK_EQ "HSV guest-page fault: mtinst = 0 or transformed hsv.d", a0, 1
        MEXPECT "hlv.d SPVP=1 through a G-stage leaf with U=0: guest-page fault", VA_GU0, CAUSE_LOAD_GPF, hlv.d s3, (s1)
        TRAP_MTVAL2 s2
        li      t0, GPA_GU0 >> 2
        sub     s2, s2, t0
        CHECK_EQ "G-stage U=0 fault: mtval2 = GPA >> 2", s2, 0
        csrw    hgatp, zero
        hfence.gvma
        csrw    vsatp, zero
        hfence.vvma
        csrw    satp, zero
        sfence.vma
        li      t0, HSTATUS_SPVP
        csrc    hstatus, t0
        TEST_END

        .data
        .balign 4096
hdata:  .dword  0x8877665544332211, 0xf0e0d0c0b0a09080, 0, 0, 0
        .balign 4096
        .bss
        .balign 16384
gsroot: .skip   16384
vsroot: .skip   4096
vsl1:   .skip   4096
vsl1b:  .skip   4096
vsl0:   .skip   4096
hsroot: .skip   4096
hsroot_u: .skip 4096

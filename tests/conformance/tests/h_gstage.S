/* Two-stage address translation (Privileged 20211203 8.5): G-stage Sv39x4
   (16 KiB root, the two extra root-index bits, leaves need U=1, R/W/X,
   superpages, A/D, reserved encodings) and Sv48x4; guest-page faults
   (causes 20/21/23) with mtval/stval = guest VA, mtval2/htval = GPA >> 2,
   mstatus/hstatus.GVA, mtinst/htinst; VS-stage over G-stage, including the
   implicit G-stage translation of VS-stage page-table accesses (8.5.1:
   reported as the original access type, htinst pseudoinstructions 8.6.3);
   TLB tagging by VMID, ASID and V; HFENCE.GVMA / HFENCE.VVMA in all operand
   forms and SFENCE.VMA in VS-mode (8.3.2, 8.5.3).
   qemu-cpu: rv64,h=true */
#include "test.h"
#include "h.h"

#define GP(i)      (0x84000000 + (i) * 0x1000)   /* G-stage 4 KiB leaves -> gpages[i] */
#define GP_MISAL2M 0x85000000                    /* 2 MiB leaf with misaligned PPN */
#define GP_HIGH    0x10000000000                 /* 2^40: Sv39x4 root index 1024 */
#define GP_TOOBIG  0x20000000000                 /* 2^41: beyond Sv39x4 */
#define VS(i)      (0x40000000 + (i) * 0x1000)   /* VS-stage 4 KiB leaves (vsl0[i]) */
#define VA_PTMISS  0xc0000000                    /* VS table at GP(8): not in the G-stage */
#define VA_PTRO    0x100000000                   /* VS table at GP(7): read-only in G-stage */
#define MARK(i)    (0x1000 + (i))                /* word 0 of gpages[i] */
#define GRWXU      (PTE_V|PTE_R|PTE_W|PTE_X|PTE_U|PTE_A|PTE_D)
#define VRWX       (PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D)
/* transformed ld s3,0(s1) / sd s2,0(s1) (8.6.3: offset fields zero) */
#define TINST_LD_S3 0x00003983
#define TINST_SD_S2 0x01203023

/* Run insn in VS (vmode PRV_S) or VU with s1 = va; check mcause */
.macro VACC name, vmode, va, cause, insn:vararg
        MODE_ACCESS "\name", 1, \vmode, \va, \cause, \insn
.endm
/* a0 = 1 if reg == 0 or reg == value */
.macro ZERO_OR reg, value
        mv      a0, \reg
        beqz    a0, 1f
        li      t6, \value
        sub     a0, a0, t6
1:      seqz    a0, a0
.endm
/* check last mtval2 == value >> 2 */
.macro CHECK_MTVAL2 name, gpa
        TRAP_MTVAL2 a0
        li      t6, (\gpa) >> 2
        sub     a0, a0, t6
        CHECK_EQ "\name", a0, 0
.endm
/* copy n dwords from src to dst (t2-t5) */
.macro COPY dst, src, bytes
        la      t2, \dst
        la      t3, \src
        li      t4, \bytes
1:      ld      t5, 0(t3)
        sd      t5, 0(t2)
        addi    t2, t2, 8
        addi    t3, t3, 8
        addi    t4, t4, -8
        bnez    t4, 1b
.endm
/* A/D bit of the PTE at pte after insn in VS (s1 = va): either the access
   completed and set the bit, or it raised cause and left the bit clear
   (Priv 4.3.1: hardware update or Svade-style fault) */
.macro AD_CASE name, va, pte, bit, cause, insn:vararg
        CLEAR_TRAP
        li      s1, \va
        SET_RESUME .Lad\@
        GOTO_V  PRV_S
        \insn
.Lad\@: RETURN_M
        DISARM
        TRAP_CAUSE s3
        ld      s4, \pte
        andi    s4, s4, \bit
        li      s5, 0
        li      t2, \cause
        bne     s3, t2, 1f
        bnez    s4, 2f
        li      s5, 1
        j       2f
1:      li      t2, NO_TRAP
        bne     s3, t2, 2f
        beqz    s4, 2f
        li      s5, 1
2:      CHECK_EQ "\name", s5, 1
.endm
/* hgatp = mode | vmid | root without a fence */
.macro SET_HGATP root, mode, vmid
        la      t5, \root
        srli    t5, t5, 12
        li      t4, \mode | (\vmid << HGATP_VMID_SHIFT)
        or      t5, t5, t4
        csrw    hgatp, t5
.endm
.macro SET_VSATP root, asid
        la      t5, \root
        srli    t5, t5, 12
        li      t4, SATP_SV39 | (\asid << 44)
        or      t5, t5, t4
        csrw    vsatp, t5
.endm
/* VS load of va into s3 (vsatp/hgatp as set), no trap expected */
.macro VSLOAD va
        li      s1, \va
        CLEAR_TRAP
        GOTO_V  PRV_S
        ld      s3, 0(s1)
        RETURN_M
.endm
.macro HSLOAD va
        li      s1, \va
        GOTO_HS
        ld      s3, 0(s1)
        RETURN_M
.endm

TEST_BEGIN(h_gstage)
        H_INIT
        /* page markers; page 2 gets code at +0x100: li a0, 0x42; ret */
        la      t2, gpages
        li      t3, 0
1:      li      t4, MARK(0)
        add     t4, t4, t3
        sd      t4, 0(t2)
        li      t5, 4096
        add     t2, t2, t5
        addi    t3, t3, 1
        li      t5, 16
        bltu    t3, t5, 1b
        la      t3, code_tmpl
        lwu     t4, 0(t3)
        lwu     t5, 4(t3)
        la      t3, gpages + 2 * 4096 + 0x100
        sw      t4, 0(t3)
        sw      t5, 4(t3)
        fence.i

        /* ---- G-stage tables (Sv39x4): GPA 0x8000_0000.. identity by 2 MiB
           leaves, 0x8400_0000.. 4 KiB leaves onto gpages[] */
        SETPTE  gsroot, 2, gl1, PTE_V
        la      t2, gl1
        li      t3, 0x80000000
        li      a4, 64
1:      MKPTE   t5, t3, GRWXU
        sd      t5, 0(t2)
        addi    t2, t2, 8
        li      t6, 0x200000
        add     t3, t3, t6
        addi    a4, a4, -1
        bnez    a4, 1b
        SETPTE  gl1, 32, gl0, PTE_V
        SETPTE_PA gl1, 40, 0x80001000, GRWXU                    /* misaligned 2 MiB */
        SETPTE  gl0, 0, gpages + 0 * 4096, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D
        SETPTE  gl0, 1, gpages + 1 * 4096, PTE_V|PTE_R|PTE_U|PTE_A
        SETPTE  gl0, 2, gpages + 2 * 4096, PTE_V|PTE_X|PTE_U|PTE_A
        SETPTE  gl0, 3, gpages + 3 * 4096, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D   /* no U */
        SETPTE  gl0, 5, gpages + 5 * 4096, PTE_V|PTE_R|PTE_W|PTE_U         /* A=D=0 */
        SETPTE  gl0, 6, gpages + 6 * 4096, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A   /* D=0 */
        SETPTE  gl0, 7, gpages + 7 * 4096, PTE_V|PTE_R|PTE_U|PTE_A|PTE_D   /* VS table, read-only */
        SETPTE  gl0, 9, gpages + 9 * 4096, GRWXU
        SETPTE  gl0, 11, gpages + 11 * 4096, PTE_V|PTE_W|PTE_U|PTE_A|PTE_D /* W-only: reserved */
        SETPTE  gl0, 12, gpages + 12 * 4096, GRWXU
        la      t5, gl0
        ld      t4, 12 * 8(t5)
        li      t6, (1 << 60)                                  /* reserved PTE bit */
        or      t4, t4, t6
        sd      t4, 12 * 8(t5)
        SETPTE  gl0, 13, gpages + 13 * 4096, GRWXU
        SETPTE_PA gsroot, 1024, 0x80000000, GRWXU               /* GPA 2^40: 1 GiB leaf */
        USE_HGATP gsroot, HGATP_SV39X4, 1

        /* ---- G-stage only (vsatp Bare: GPA = VA) */
        VACC    "VS load through a G-stage 4K leaf", PRV_S, GP(0), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "G-stage 4K leaf maps the right page", s3, MARK(0)
        li      s2, 0x5a5a
        VACC    "VS store through a G-stage 4K leaf", PRV_S, GP(0) + 8, NO_TRAP, sd s2, 0(s1)
        ld      s3, gpages + 8
        CHECK_EQ "G-stage store reached the page", s3, 0x5a5a
        VACC    "VS load through a G-stage 2M leaf (identity)", PRV_S, 0x80000000, NO_TRAP, lw s3, 0(s1)
        VACC    "G-stage R-only: load allowed", PRV_S, GP(1), NO_TRAP, ld s3, 0(s1)
        VACC    "G-stage R-only: store guest-page fault", PRV_S, GP(1) + 0x10, CAUSE_STORE_GPF, sd s2, 0(s1)
        TRAP_TVAL a0
        li      t6, GP(1) + 0x10
        sub     a0, a0, t6
        CHECK_EQ "store GPF: mtval = guest VA", a0, 0
        CHECK_MTVAL2 "store GPF: mtval2 = GPA >> 2", GP(1) + 0x10
        TRAP_MGVA a0
        CHECK_EQ "store GPF: mstatus.GVA=1", a0, 1
        TRAP_MPV s4
        TRAP_PRV s5
        slli    s4, s4, 4
        or      s4, s4, s5
        CHECK_EQ "store GPF from VS: MPV=1 MPP=S", s4, 0x11
        TRAP_MTINST s4
        ZERO_OR s4, TINST_SD_S2
        CHECK_EQ "store GPF: mtinst = 0 or the transformed sd", a0, 1
        VACC    "G-stage X-only: load guest-page fault", PRV_S, GP(2) + 0x100, CAUSE_LOAD_GPF, ld s3, 0(s1)
        TRAP_MTINST s4
        ZERO_OR s4, TINST_LD_S3
        CHECK_EQ "load GPF: mtinst = 0 or the transformed ld", a0, 1
        li      s5, 0
        VACC    "G-stage X-only: fetch allowed", PRV_S, GP(2) + 0x100, NO_TRAP, jalr ra, 0(s1)
        CHECK_EQ "G-stage X-only: the code ran", s5, 0x42
        /* QEMU DEPARTURE: QEMU 7.2 applies vsstatus.MXR, not the HS-level MXR,
           to the G-stage (8.5: only HS-level MXR overrides G-stage X-only) */
        li      t0, MSTATUS_MXR
        csrs    vsstatus, t0
        VACC    "G-stage X-only: vsstatus.MXR does not make it readable", PRV_S, GP(2) + 0x100, CAUSE_LOAD_GPF, ld s3, 0(s1)
        li      t0, MSTATUS_MXR
        csrc    vsstatus, t0
        csrs    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.5: the HS-level MXR overrides G-stage execute-only
           permission; QEMU 7.2 ignores it there */
        VACC    "G-stage X-only: HS-level MXR makes it readable", PRV_S, GP(2) + 0x100, NO_TRAP, ld s3, 0(s1)
        li      t0, MSTATUS_MXR
        csrc    mstatus, t0
        VACC    "G-stage leaf with U=0: VS load guest-page fault", PRV_S, GP(3), CAUSE_LOAD_GPF, ld s3, 0(s1)
        VACC    "G-stage leaf with U=0: VU load guest-page fault", PRV_U, GP(3), CAUSE_LOAD_GPF, ld s3, 0(s1)
        VACC    "G-stage invalid: load guest-page fault", PRV_S, GP(4) + 0x18, CAUSE_LOAD_GPF, ld s3, 0(s1)
        CHECK_MTVAL2 "load GPF: mtval2 = GPA >> 2", GP(4) + 0x18
        VACC    "G-stage invalid: store guest-page fault", PRV_S, GP(4), CAUSE_STORE_GPF, sd s2, 0(s1)
        /* Zalrsc: no SC retires unless it passes the memory permission
           checks, reservation or not. QEMU DEPARTURE: QEMU 7.2 retires an
           SC without a reservation without translating its address. */
        VACC    "G-stage invalid: sc.d without reservation, guest-page fault", PRV_S, GP(4) + 0x28, CAUSE_STORE_GPF, sc.d s3, s2, (s1)
        CHECK_MTVAL2 "sc.d GPF: mtval2 = GPA >> 2", GP(4) + 0x28
        VACC    "G-stage R-only: sc.w without reservation, guest-page fault", PRV_S, GP(1) + 0x20, CAUSE_STORE_GPF, sc.w s3, s2, (s1)
        VACC    "G-stage invalid: fetch guest-page fault", PRV_S, GP(4) + 0x20, CAUSE_FETCH_GPF, jalr ra, 0(s1)
        TRAP_EPC a0
        li      t6, GP(4) + 0x20
        sub     a0, a0, t6
        CHECK_EQ "fetch GPF: mepc = guest VA", a0, 0
        CHECK_MTVAL2 "fetch GPF: mtval2 = GPA >> 2", GP(4) + 0x20
        TRAP_MTINST a0
        CHECK_EQ "fetch GPF: mtinst = 0", a0, 0
        VACC    "G-stage W-only leaf (reserved): load guest-page fault", PRV_S, GP(11), CAUSE_LOAD_GPF, ld s3, 0(s1)
        VACC    "G-stage leaf with reserved bit 60: load guest-page fault", PRV_S, GP(12), CAUSE_LOAD_GPF, ld s3, 0(s1)
        VACC    "G-stage misaligned 2M superpage: load guest-page fault", PRV_S, GP_MISAL2M, CAUSE_LOAD_GPF, ld s3, 0(s1)
        li      s1, GP_HIGH
        la      t0, hdata
        li      t1, 0x80000000
        sub     t0, t0, t1
        add     s6, s1, t0                                      /* GPA 2^40 + (hdata - RAM) */
        li      s3, 0
        CLEAR_TRAP
        mv      s1, s6
        SET_RESUME 1f
        GOTO_V  PRV_S
        ld      s3, 0(s1)
1:      RETURN_M
        DISARM
        TRAP_CAUSE a0
        /* QEMU DEPARTURE: Priv 8.5.1: Sv39x4 translates 41-bit GPAs (bits 40:39
           index the 16 KiB root); QEMU 7.2 raises a guest-page fault when bit 40 is
           set */
        CHECK_EQ "Sv39x4 root index 1024 (GPA bit 40): no fault", a0, NO_TRAP
        CHECK_EQ "Sv39x4 root index 1024 (GPA bit 40) maps", s3, 0x0123456789abcdef
        VACC    "GPA bit 41 set (beyond Sv39x4): load guest-page fault", PRV_S, GP_TOOBIG + 0x80, CAUSE_LOAD_GPF, ld s3, 0(s1)
        CHECK_MTVAL2 "GPA beyond Sv39x4: mtval2 = GPA >> 2", GP_TOOBIG + 0x80
        /* G-stage A/D (Priv 4.3.1 applied to the G-stage) */
        AD_CASE "G-stage A=0 load: guest-page fault or A set", GP(5), gl0 + 5 * 8, PTE_A, CAUSE_LOAD_GPF, ld s3, 0(s1)
        ld      s4, gl0 + 5 * 8
        andi    s4, s4, PTE_D
        CHECK_EQ "G-stage load never sets D", s4, 0
        AD_CASE "G-stage D=0 store: guest-page fault or D set", GP(6), gl0 + 6 * 8, PTE_D, CAUSE_STORE_GPF, sd s2, 0(s1)

        /* ---- guest-page faults taken in HS (medeleg bits 20, 21, 23) */
        li      t0, (1 << CAUSE_FETCH_GPF) | (1 << CAUSE_LOAD_GPF) | (1 << CAUSE_STORE_GPF)
        csrw    medeleg, t0
        CLEAR_TRAP
        li      s1, GP(4) + 0x28
        SET_RESUME 1f
        GOTO_V  PRV_S
        ld      s3, 0(s1)
1:      RETURN_M
        DISARM
        STRAP_CAUSE a0
        CHECK_EQ "load GPF delegated: taken in HS", a0, CAUSE_LOAD_GPF
        STRAP_TVAL a0
        li      t6, GP(4) + 0x28
        sub     a0, a0, t6
        CHECK_EQ "GPF in HS: stval = guest VA", a0, 0
        STRAP_HTVAL a0
        li      t6, (GP(4) + 0x28) >> 2
        sub     a0, a0, t6
        CHECK_EQ "GPF in HS: htval = GPA >> 2", a0, 0
        STRAP_GVA s4
        STRAP_SPV s5
        STRAP_SPVP s6
        slli    s4, s4, 8
        slli    s5, s5, 4
        or      s4, s4, s5
        or      s4, s4, s6
        CHECK_EQ "GPF from VS in HS: GVA=1 SPV=1 SPVP=1", s4, 0x111
        STRAP_HTINST s4
        ZERO_OR s4, TINST_LD_S3
        CHECK_EQ "GPF in HS: htinst = 0 or the transformed ld", a0, 1
        TRAP_CAUSE a0
        CHECK_EQ "GPF delegated: no M trap", a0, NO_TRAP
        CLEAR_TRAP
        li      s1, GP(4)
        SET_RESUME 1f
        GOTO_V  PRV_U
        sd      s2, 0(s1)
1:      RETURN_M
        DISARM
        STRAP_CAUSE a0
        CHECK_EQ "store GPF from VU delegated: taken in HS", a0, CAUSE_STORE_GPF
        STRAP_GVA s4
        STRAP_SPV s5
        STRAP_SPVP s6
        slli    s4, s4, 8
        slli    s5, s5, 4
        or      s4, s4, s5
        or      s4, s4, s6
        CHECK_EQ "GPF from VU in HS: GVA=1 SPV=1 SPVP=0", s4, 0x110
        csrw    medeleg, zero

        /* ---- VS-stage (Sv39) over the G-stage */
        SETPTE_PA vsroot, 2, 0x80000000, VRWX
        SETPTE  vsroot, 1, vsl1, PTE_V
        SETPTE  vsl1, 0, vsl0, PTE_V
        SETPTE_PA vsl0, 0, GP(0), VRWX
        SETPTE_PA vsl0, 1, GP(1), VRWX
        SETPTE_PA vsl0, 2, GP(3), VRWX
        SETPTE_PA vsl0, 3, GP(4), VRWX
        SETPTE_PA vsl0, 5, GP(13), PTE_V|PTE_X|PTE_A
        SETPTE_PA vsl0, 6, GP(0), VRWX|PTE_U
        SETPTE_PA vsl0, 7, GP(9), VRWX
        SETPTE_PA vsroot, 3, GP(8), PTE_V               /* table GPA not in the G-stage */
        SETPTE_PA vsroot, 4, GP(7), PTE_V               /* table read-only in the G-stage */
        SETPTE_PA gpages + 7 * 4096, 0, 0x84000000, PTE_V|PTE_R|PTE_W   /* 2M leaf, A=D=0 */
        USE_HGATP gsroot, HGATP_SV39X4, 1
        USE_VSATP vsroot, SATP_SV39, 1
        VACC    "two-stage load VA -> GPA -> PA", PRV_S, VS(0), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "two-stage load value", s3, MARK(0)
        VACC    "VS RW page over G-stage R-only: store GPF", PRV_S, VS(1) + 0x30, CAUSE_STORE_GPF, sd s2, 0(s1)
        TRAP_TVAL a0
        li      t6, VS(1) + 0x30
        sub     a0, a0, t6
        CHECK_EQ "two-stage GPF: mtval = guest VA", a0, 0
        CHECK_MTVAL2 "two-stage GPF: mtval2 = leaf GPA >> 2", GP(1) + 0x30
        VACC    "VS page over G-stage U=0 leaf: load GPF", PRV_S, VS(2), CAUSE_LOAD_GPF, ld s3, 0(s1)
        VACC    "VS page onto a GPA not in the G-stage: load GPF", PRV_S, VS(3) + 8, CAUSE_LOAD_GPF, ld s3, 0(s1)
        CHECK_MTVAL2 "VS leaf GPA missing: mtval2 = GPA >> 2", GP(4) + 8
        VACC    "VS-stage invalid PTE: load page fault (not GPF)", PRV_S, VS(4), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        TRAP_MTVAL2 a0
        CHECK_EQ "VS-stage page fault: mtval2 = 0", a0, 0
        TRAP_MGVA a0
        CHECK_EQ "VS-stage page fault from VS: mstatus.GVA=1", a0, 1
        VACC    "VS X-only page: load page fault", PRV_S, VS(5), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        li      t0, MSTATUS_MXR
        csrs    vsstatus, t0
        VACC    "VS X-only page, vsstatus.MXR=1 (G-stage RWX): load allowed", PRV_S, VS(5), NO_TRAP, ld s3, 0(s1)
        li      t0, MSTATUS_MXR
        csrc    vsstatus, t0
        VACC    "VS U page from VS, vsstatus.SUM=0: load page fault", PRV_S, VS(6), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        li      t0, MSTATUS_SUM
        csrs    mstatus, t0
        VACC    "VS U page from VS, HS-level SUM=1 only: load page fault", PRV_S, VS(6), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        li      t0, MSTATUS_SUM
        csrc    mstatus, t0
        csrs    vsstatus, t0
        VACC    "VS U page from VS, vsstatus.SUM=1: load allowed", PRV_S, VS(6), NO_TRAP, ld s3, 0(s1)
        li      t0, MSTATUS_SUM
        csrc    vsstatus, t0
        /* VU code needs a U=1 mapping of itself: same tables, root entry 2 with U */
        COPY    vsrootU, vsroot, 4096
        SETPTE_PA vsrootU, 2, 0x80000000, VRWX|PTE_U
        USE_VSATP vsrootU, SATP_SV39, 5
        VACC    "VS U page from VU: load allowed", PRV_U, VS(6), NO_TRAP, ld s3, 0(s1)
        VACC    "VS S page from VU: load page fault", PRV_U, VS(0), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        USE_VSATP vsroot, SATP_SV39, 1

        /* implicit G-stage translation of VS-stage table accesses (8.5.1),
           reported as the original access type; mtinst pseudoinstruction
           required when mtval2 is nonzero (8.6.3) */
        VACC    "VS table GPA not in G-stage, load: load GPF", PRV_S, VA_PTMISS + 0x1008, CAUSE_LOAD_GPF, ld s3, 0(s1)
        CHECK_MTVAL2 "implicit access GPF (load): mtval2 = PTE GPA >> 2", GP(8)
        TRAP_MTINST a0
        CHECK_EQ "implicit access GPF (load): mtinst = 0x3000", a0, TINST_PT_READ64
        TRAP_TVAL a0
        li      t6, VA_PTMISS + 0x1008
        sub     a0, a0, t6
        CHECK_EQ "implicit access GPF: mtval = guest VA", a0, 0
        /* QEMU DEPARTURE: Priv 8.5.1: a fault on an implicit VS-stage table access
           is reported for the original access type (store -> 23); QEMU 7.2 reports a
           load guest-page fault (21) */
        VACC    "VS table GPA not in G-stage, store: store GPF", PRV_S, VA_PTMISS + 0x200000, CAUSE_STORE_GPF, sd s2, 0(s1)
        CHECK_MTVAL2 "implicit access GPF (store): mtval2 = PTE GPA >> 2", GP(8) + 8
        TRAP_MTINST a0
        CHECK_EQ "implicit access GPF (store): mtinst = 0x3000 (a read)", a0, TINST_PT_READ64
        VACC    "VS table GPA not in G-stage, fetch: fetch GPF", PRV_S, VA_PTMISS + 0x400000, CAUSE_FETCH_GPF, jalr ra, 0(s1)
        CHECK_MTVAL2 "implicit access GPF (fetch): mtval2 = PTE GPA >> 2", GP(8) + 16
        TRAP_MTINST a0
        CHECK_EQ "implicit access GPF (fetch): mtinst = 0x3000", a0, TINST_PT_READ64
        /* A update in a VS table that is read-only in the G-stage: the
           implicit write must be checked as a store in the G-stage, so
           either a load GPF (mtinst 0x3020) or, with no hardware A/D, a VS
           page fault; the bit must stay clear.
           QEMU DEPARTURE: QEMU 7.2 writes the A bit without the G-stage
           write check. */
        CLEAR_TRAP
        li      s1, VA_PTRO + 0x10
        SET_RESUME 1f
        GOTO_V  PRV_S
        ld      s3, 0(s1)
1:      RETURN_M
        DISARM
        TRAP_CAUSE s3
        ld      s4, gpages + 7 * 4096
        andi    s4, s4, PTE_A
        seqz    s4, s4                                  /* A still clear */
        li      t6, CAUSE_LOAD_GPF
        sub     t5, s3, t6
        seqz    t5, t5
        li      t6, CAUSE_LOAD_PAGE
        sub     t6, s3, t6
        seqz    t6, t6
        or      t5, t5, t6
        and     s4, s4, t5
        /* QEMU DEPARTURE: Priv 8.5.1: the A/D update is an implicit write checked as
           a store in the G-stage; QEMU 7.2 writes the A bit into the G-stage read-
           only page (no fault) */
        CHECK_EQ "A update in a G-stage read-only VS table: load GPF or VS page fault, A clear", s4, 1
        li      s4, 1
        li      t6, CAUSE_LOAD_GPF
        bne     s3, t6, 1f                              /* checked only for the GPF */
        TRAP_MTINST s4
        li      t6, TINST_PT_WRITE64
        sub     s4, s4, t6
        seqz    s4, s4
        TRAP_MTVAL2 s5
        li      t6, GP(7) >> 2
        sub     s5, s5, t6
        seqz    s5, s5
        and     s4, s4, s5
1:      CHECK_EQ "... that GPF: mtinst = 0x3020, mtval2 = PTE GPA >> 2", s4, 1
        SETPTE_PA gpages + 7 * 4096, 0, 0x84000000, PTE_V|PTE_R|PTE_W

        /* ---- TLB tags: VMID (8.2.10), ASID, V */
        COPY    gsrootB, gsroot, 16384
        COPY    gl1B, gl1, 4096
        COPY    gl0B, gl0, 4096
        SETPTE  gsrootB, 2, gl1B, PTE_V
        SETPTE  gl1B, 32, gl0B, PTE_V
        SETPTE  gl0B, 9, gpages + 10 * 4096, GRWXU
        csrw    vsatp, zero
        USE_HGATP gsroot, HGATP_SV39X4, 1
        hfence.vvma
        VSLOAD  GP(9)
        CHECK_EQ "VMID 1 maps GP(9) to page 9", s3, MARK(9)
        SET_HGATP gsrootB, HGATP_SV39X4, 2
        VSLOAD  GP(9)
        CHECK_EQ "VMID 2 (hgatp switched, no fence) maps GP(9) to page 10", s3, MARK(10)
        SET_HGATP gsroot, HGATP_SV39X4, 1
        VSLOAD  GP(9)
        CHECK_EQ "back to VMID 1 (no fence): page 9", s3, MARK(9)
        COPY    vsrootB, vsroot, 4096
        COPY    vsl1B, vsl1, 4096
        COPY    vsl0B, vsl0, 4096
        SETPTE  vsrootB, 1, vsl1B, PTE_V
        SETPTE  vsl1B, 0, vsl0B, PTE_V
        SETPTE_PA vsl0B, 7, GP(13), VRWX
        USE_VSATP vsroot, SATP_SV39, 1
        VSLOAD  VS(7)
        CHECK_EQ "ASID 1 maps VS(7) to GP(9)", s3, MARK(9)
        SET_VSATP vsrootB, 2
        VSLOAD  VS(7)
        CHECK_EQ "ASID 2 (vsatp switched, no fence) maps VS(7) to GP(13)", s3, MARK(13)
        SET_VSATP vsroot, 1
        VSLOAD  VS(7)
        CHECK_EQ "back to ASID 1 (no fence): GP(9)", s3, MARK(9)
        SETPTE_PA hsroot, 2, 0x80000000, VRWX
        SETPTE  hsroot, 1, hsl1, PTE_V
        SETPTE  hsl1, 0, hsl0, PTE_V
        SETPTE  hsl0, 7, gpages + 14 * 4096, VRWX
        la      t0, hsroot
        srli    t0, t0, 12
        li      t1, SATP_SV39
        or      t0, t0, t1
        csrw    satp, t0
        sfence.vma
        HSLOAD  VS(7)
        CHECK_EQ "HS: satp maps VS(7) to page 14", s3, MARK(14)
        VSLOAD  VS(7)
        CHECK_EQ "VS after HS: vsatp+hgatp, same VA (V tag)", s3, MARK(9)
        HSLOAD  VS(7)
        CHECK_EQ "HS after VS: satp again (V tag)", s3, MARK(14)
        csrw    satp, zero
        sfence.vma

        /* ---- HFENCE.GVMA operand forms (8.3.2): after each, the new
           G-stage mapping of GP(9) must be used */
.macro GVMA_FORM name, rs1val, rs2val, insn:vararg
        SETPTE  gl0, 9, gpages + 9 * 4096, GRWXU
        hfence.gvma
        VSLOAD  GP(9)
        SETPTE  gl0, 9, gpages + 10 * 4096, GRWXU
        li      a4, \rs1val
        li      a5, \rs2val
        \insn
        VSLOAD  GP(9)
        CHECK_EQ "\name", s3, MARK(10)
.endm
        csrw    vsatp, zero
        hfence.vvma
        GVMA_FORM "hfence.gvma x0, x0 drops the old G-stage entry", 0, 0, hfence.gvma zero, zero
        GVMA_FORM "hfence.gvma gpa>>2, x0 drops it", GP(9) >> 2, 0, hfence.gvma a4, zero
        GVMA_FORM "hfence.gvma x0, vmid drops it", 0, 1, hfence.gvma zero, a5
        GVMA_FORM "hfence.gvma gpa>>2, vmid drops it", GP(9) >> 2, 1, hfence.gvma a4, a5
        SETPTE  gl0, 9, gpages + 9 * 4096, GRWXU
        hfence.gvma

        /* ---- HFENCE.VVMA operand forms and SFENCE.VMA in VS (8.3.2, 8.5.3) */
.macro VVMA_FORM name, rs1val, rs2val, insn:vararg
        SETPTE_PA vsl0, 7, GP(9), VRWX
        hfence.vvma
        VSLOAD  VS(7)
        SETPTE_PA vsl0, 7, GP(13), VRWX
        li      a4, \rs1val
        li      a5, \rs2val
        \insn
        VSLOAD  VS(7)
        CHECK_EQ "\name", s3, MARK(13)
.endm
        USE_VSATP vsroot, SATP_SV39, 1
        VVMA_FORM "hfence.vvma x0, x0 drops the old VS-stage entry", 0, 0, hfence.vvma zero, zero
        VVMA_FORM "hfence.vvma va, x0 drops it", VS(7), 0, hfence.vvma a4, zero
        VVMA_FORM "hfence.vvma x0, asid drops it", 0, 1, hfence.vvma zero, a5
        VVMA_FORM "hfence.vvma va, asid drops it", VS(7), 1, hfence.vvma a4, a5
        SETPTE_PA vsl0, 7, GP(9), VRWX
        hfence.vvma
        VSLOAD  VS(7)
        SETPTE_PA vsl0, 7, GP(13), VRWX
        li      s1, VS(7)
        CLEAR_TRAP
        GOTO_V  PRV_S
        sfence.vma zero, zero
        ld      s3, 0(s1)
        RETURN_M
        CHECK_EQ "sfence.vma in VS drops the old VS-stage entry", s3, MARK(13)
        SETPTE_PA vsl0, 7, GP(9), VRWX
        hfence.vvma

        /* ---- Sv48x4 (8.5.1): 16 KiB root, GPA bits 49:48 select entries 512+ */
        SETPTE  g48root, 0, g48l2, PTE_V
        SETPTE_PA g48l2, 2, 0x80000000, GRWXU
        SETPTE  g48root, 512, g48l2b, PTE_V
        SETPTE_PA g48l2b, 0, 0x80000000, GRWXU
        csrw    vsatp, zero
        hfence.vvma
        USE_HGATP g48root, HGATP_SV48X4, 3
        la      t0, hdata
        li      t1, 0x80000000
        sub     t0, t0, t1
        li      s1, 0x1000000000000
        add     s1, s1, t0
        CLEAR_TRAP
        GOTO_V  PRV_S
        ld      s3, 0(s1)
        RETURN_M
        CHECK_EQ "Sv48x4 root index 512 (GPA bit 48) maps", s3, 0x0123456789abcdef
        TRAP_CAUSE a0
        CHECK_EQ "Sv48x4: VS code ran without a trap", a0, NO_TRAP
        VACC    "GPA bit 50 set (beyond Sv48x4): load GPF", PRV_S, 0x4000000000040, CAUSE_LOAD_GPF, ld s3, 0(s1)
        CHECK_MTVAL2 "GPA beyond Sv48x4: mtval2 = GPA >> 2", 0x4000000000040
        csrw    hgatp, zero
        hfence.gvma
        TEST_END

        .balign 4
code_tmpl:
        .option push
        .option norvc
        li      s5, 0x42
        ret
        .option pop

        .data
        .balign 64
hdata:  .dword  0x0123456789abcdef

        .bss
        .balign 16384
gsroot:  .skip 16384
gsrootB: .skip 16384
g48root: .skip 16384
gl1:     .skip 4096
gl0:     .skip 4096
gl1B:    .skip 4096
gl0B:    .skip 4096
g48l2:   .skip 4096
g48l2b:  .skip 4096
vsroot:  .skip 4096
vsl1:    .skip 4096
vsl0:    .skip 4096
vsrootB: .skip 4096
vsl1B:   .skip 4096
vsl0B:   .skip 4096
vsrootU: .skip 4096
hsroot:  .skip 4096
hsl1:    .skip 4096
hsl0:    .skip 4096
gpages:  .skip 16 * 4096

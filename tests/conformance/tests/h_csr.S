/* H extension CSRs (Privileged 20211203 8.2, 8.4): misa.H, hstatus fields,
   hedeleg/hideleg masks, hvip/hip/hie and their mip/mie/mideleg aliases,
   hgeip/hgeie, hcounteren, htval/htinst/mtval2/mtinst, hgatp WARL, henvcfg,
   htimedelta, the VS CSRs and their substitution for the S CSRs when V=1,
   and which accesses raise virtual-instruction vs illegal-instruction.
   qemu-cpu: rv64,h=true */
#include "test.h"
#include "h.h"

TEST_BEGIN(h_csr)
        H_INIT
        csrr    s1, misa
        srli    s1, s1, 7
        andi    s1, s1, 1
        CHECK_EQ "misa.H", s1, 1

        /* ---- mstatus.MPV / GVA (8.4.1): writable */
        li      t0, MSTATUS_MPV
        csrs    mstatus, t0
        csrr    s1, mstatus
        csrc    mstatus, t0
        csrr    s2, mstatus
        srli    s1, s1, 39
        andi    s1, s1, 1
        srli    s2, s2, 39
        andi    s2, s2, 1
        slli    s1, s1, 1
        or      s1, s1, s2
        CHECK_EQ "mstatus.MPV sets and clears", s1, 2
        li      t0, MSTATUS_GVA
        csrs    mstatus, t0
        csrr    s1, mstatus
        csrc    mstatus, t0
        csrr    s2, mstatus
        srli    s1, s1, 38
        andi    s1, s1, 1
        srli    s2, s2, 38
        andi    s2, s2, 1
        slli    s1, s1, 1
        or      s1, s1, s2
        CHECK_EQ "mstatus.GVA sets and clears", s1, 2

        /* ---- hstatus (8.2.1) */
        li      t0, (2 << 32)
        csrw    hstatus, t0
        csrr    s1, hstatus
        CHECK_EQ "hstatus = VSXL=2 only", s1, (2 << 32)
.irp f, HSTATUS_GVA, HSTATUS_SPV, HSTATUS_SPVP, HSTATUS_HU, HSTATUS_VTVM, HSTATUS_VTW, HSTATUS_VTSR
        li      t0, \f
        csrs    hstatus, t0
        csrr    s1, hstatus
        csrc    hstatus, t0
        and     s1, s1, t0
        CHECK_EQ "hstatus field \f writable", s1, \f
.endr
        li      t0, -1
        csrw    hstatus, t0
        csrr    s1, hstatus
        li      t0, ~(HSTATUS_VSBE | HSTATUS_GVA | HSTATUS_SPV | HSTATUS_SPVP | HSTATUS_HU | HSTATUS_VGEIN | HSTATUS_VTVM | HSTATUS_VTW | HSTATUS_VTSR | HSTATUS_VSXL)
        and     s2, s1, t0
        /* QEMU DEPARTURE: Priv 20211203 2.3 (unfurnished WPRI fields are read-only
           zero) + 8.2.1; QEMU 7.2 stores every bit written to hstatus */
        CHECK_EQ "hstatus ~0: nothing outside the defined fields", s2, 0
        srli    s2, s1, 32
        andi    s2, s2, 3
        addi    s2, s2, -1
        sltiu   s2, s2, 2                       /* VSXL in {1, 2} */
        CHECK_EQ "hstatus.VSXL legal after writing 3", s2, 1
        li      t0, (2 << 32)
        csrw    hstatus, t0

        /* GEILEN from hgeie (8.2.4): bits GEILEN:1 writable, bit 0 zero */
        li      t0, -1
        csrw    hgeie, t0
        csrr    s4, hgeie
        csrw    hgeie, zero
        andi    s1, s4, 1
        CHECK_EQ "hgeie bit 0 read-only zero", s1, 0
        srli    s2, s4, 1
        addi    s3, s2, 1
        and     s3, s3, s2
        seqz    s3, s3
        CHECK_EQ "hgeie implemented bits are GEILEN:1", s3, 1
        li      s5, 0                           /* s5 = GEILEN = popcount */
1:      beqz    s2, 2f
        andi    t0, s2, 1
        add     s5, s5, t0
        srli    s2, s2, 1
        j       1b
2:      slli    t0, s5, 12
        csrs    hstatus, t0
        csrr    s1, hstatus
        srli    s1, s1, 12
        andi    s1, s1, 0x3f
        sub     s1, s1, s5
        CHECK_EQ "hstatus.VGEIN holds GEILEN", s1, 0
        li      t0, HSTATUS_VGEIN
        csrc    hstatus, t0
        csrr    s1, hstatus
        and     s1, s1, t0
        CHECK_EQ "hstatus.VGEIN holds 0", s1, 0
        csrr    s1, hgeip
        CHECK_EQ "hgeip = 0 (nothing pending)", s1, 0
        EXPECT_TRAP "csrw hgeip (read-only CSR)", CAUSE_ILLEGAL, csrw hgeip, zero

        /* ---- hedeleg / hideleg (8.2.2, Table 8.2) */
        li      t0, -1
        csrw    hedeleg, t0
        csrr    s1, hedeleg
        csrw    hedeleg, zero
        li      t0, 0xb1fe                      /* bits 1-8, 12, 13, 15 */
        and     s2, s1, t0
        CHECK_EQ "hedeleg required-writable bits", s2, 0xb1fe
        li      t0, 0xf00e00                    /* 9, 10, 11, 20-23 */
        and     s2, s1, t0
        CHECK_EQ "hedeleg bits 9-11, 20-23 read-only zero", s2, 0
        csrr    s1, hedeleg
        CHECK_EQ "hedeleg cleared", s1, 0
        li      t0, -1
        csrw    hideleg, t0
        csrr    s1, hideleg
        csrw    hideleg, zero
        andi    s2, s1, 0x444
        CHECK_EQ "hideleg bits 2, 6, 10 writable", s2, 0x444
        li      t0, 0x1222
        and     s2, s1, t0
        CHECK_EQ "hideleg bits 1, 5, 9, 12 read-only zero", s2, 0

        /* ---- mideleg (8.4.2): VS bits read-only one, SGEI iff GEILEN > 0 */
        csrw    mideleg, zero
        csrr    s1, mideleg
        andi    s2, s1, 0x444
        CHECK_EQ "mideleg bits 2, 6, 10 read-only one", s2, 0x444
        srli    s2, s1, 12                      /* constrained only if GEILEN > 0 */
        andi    s2, s2, 1
        seqz    t0, s5
        or      s2, s2, t0
        CHECK_EQ "mideleg.SGEI read-only one if GEILEN > 0", s2, 1

        /* ---- hvip / hip / hie and the mip/mie aliases (8.2.3, 8.4.3) */
        li      t0, -1
        csrw    hvip, t0
        csrr    s1, hvip
        csrw    hvip, zero
        li      t0, 0xffff
        and     s1, s1, t0
        CHECK_EQ "hvip writable bits (15:0) = VSEIP|VSTIP|VSSIP", s1, 0x444
        li      t0, MIP_VSSIP
        csrw    hvip, t0
        csrr    s1, hip
        andi    s1, s1, 0x444
        CHECK_EQ "hip.VSSIP shows hvip.VSSIP", s1, MIP_VSSIP
        csrr    s1, mip
        andi    s1, s1, 0x444
        CHECK_EQ "mip.VSSIP shows hvip.VSSIP", s1, MIP_VSSIP
        csrr    s1, sip
        andi    s1, s1, 0x444
        CHECK_EQ "sip shows no VS interrupt", s1, 0
        li      t0, MIP_VSSIP
        csrc    hip, t0
        csrr    s1, hvip
        CHECK_EQ "clearing hip.VSSIP clears hvip.VSSIP", s1, 0
        li      t0, MIP_VSTIP
        csrw    hvip, t0
        csrr    s1, hip
        andi    s1, s1, 0x444
        CHECK_EQ "hip.VSTIP shows hvip.VSTIP", s1, MIP_VSTIP
        li      t0, MIP_VSTIP
        csrc    hip, t0
        csrr    s1, hip
        andi    s1, s1, MIP_VSTIP
        CHECK_EQ "hip.VSTIP is read-only", s1, MIP_VSTIP
        li      t0, MIP_VSEIP
        csrw    hvip, t0
        csrr    s1, hip
        andi    s1, s1, 0x444
        CHECK_EQ "hip.VSEIP shows hvip.VSEIP", s1, MIP_VSEIP
        csrr    s1, mip
        andi    s1, s1, 0x444
        CHECK_EQ "mip.VSEIP shows hvip.VSEIP", s1, MIP_VSEIP
        csrw    hvip, zero
        li      t0, -1
        csrw    hie, t0
        csrr    s1, hie
        li      t0, 0xefff                      /* SGEIE judged below */
        and     s2, s1, t0
        CHECK_EQ "hie writable bits (15:0) = VSEIE|VSTIE|VSSIE", s2, 0x444
        srli    s2, s1, 12                      /* SGEIE must be writable if GEILEN > 0 */
        andi    s2, s2, 1
        seqz    t0, s5
        or      s2, s2, t0
        CHECK_EQ "hie.SGEIE writable if GEILEN > 0", s2, 1
        csrr    s1, mie
        andi    s1, s1, 0x444
        CHECK_EQ "mie VS bits alias hie", s1, 0x444
        csrr    s1, sie
        andi    s1, s1, 0x444
        CHECK_EQ "sie shows no VS enable", s1, 0
        csrw    hie, zero
        csrr    s1, mie
        andi    s1, s1, 0x444
        CHECK_EQ "clearing hie clears mie VS bits", s1, 0

        /* ---- hcounteren (8.2.6), trap value CSRs (8.2.8, 8.2.9, 8.4.4, 8.4.5) */
        li      t0, 7
        csrw    hcounteren, t0
        csrr    s1, hcounteren
        RECORD  "hcounteren after writing CY|TM|IR", s1
        csrw    hcounteren, zero
        csrr    s1, hcounteren
        CHECK_EQ "hcounteren clears", s1, 0
.irp c, htval, htinst, mtval2, mtinst
        li      t0, 0x5a5a0
        csrw    \c, t0
        csrw    \c, zero
        csrr    s1, \c
        CHECK_EQ "\c holds zero", s1, 0
.endr

        /* ---- hgatp (8.2.10) */
        la      s2, groot
        srli    s2, s2, 12                      /* 16 KiB aligned root */
        li      t0, HGATP_SV39X4
        or      s3, s2, t0
        csrw    hgatp, s3
        csrr    s1, hgatp
        sub     s1, s1, s3
        CHECK_EQ "hgatp Sv39x4 + PPN sticks", s1, 0
        li      t0, HGATP_SV48X4
        or      s3, s2, t0
        csrw    hgatp, s3
        csrr    s1, hgatp
        sub     s1, s1, s3
        CHECK_EQ "hgatp Sv48x4 + PPN sticks", s1, 0
        li      t0, HGATP_SV39X4 | 3
        or      s3, s2, t0
        csrw    hgatp, s3
        csrr    s1, hgatp
        andi    s1, s1, 3
        /* QEMU DEPARTURE: Priv 8.2.10: in Sv39x4/Sv48x4/Sv57x4 PPN[1:0] always read
           as zeros; QEMU 7.2 keeps them */
        CHECK_EQ "hgatp.PPN[1:0] read as zero (16 KiB root)", s1, 0
        li      t0, 0x1000000000000000          /* MODE = 1: reserved */
        or      s3, s2, t0
        csrw    hgatp, s3
        csrr    s1, hgatp
        srli    s1, s1, 60
        li      t0, 1
        sub     s1, s1, t0
        snez    s1, s1
        /* QEMU DEPARTURE: Priv 8.2.10: an unsupported MODE is not ignored but the
           fields are WARL (read back a legal value); QEMU 7.2 stores MODE=1 */
        CHECK_EQ "hgatp reserved MODE 1 does not stick (WARL)", s1, 1
        li      t0, HGATP_SV39X4 | (0x3fff << HGATP_VMID_SHIFT)
        or      s3, s2, t0
        csrw    hgatp, s3
        csrr    s1, hgatp
        srli    s1, s1, HGATP_VMID_SHIFT
        li      t0, 0x3fff
        and     s1, s1, t0
        addi    s3, s1, 1
        and     s3, s3, s1
        seqz    s3, s3
        CHECK_EQ "hgatp.VMID implemented from its LSB up", s3, 1
        RECORD  "hgatp VMID bits that stick", s1
        li      t0, -1
        csrw    hgatp, t0
        csrr    s1, hgatp
        srli    s1, s1, 58
        andi    s1, s1, 3
        /* QEMU DEPARTURE: Priv 8.2.10 (hgatp figure: bits 59:58 are 0, WARL); QEMU
           7.2 stores them */
        CHECK_EQ "hgatp bits 59:58 read as zero", s1, 0
        csrw    hgatp, zero
        csrr    s1, hgatp
        CHECK_EQ "hgatp Bare, all zero", s1, 0
        hfence.gvma
        /* mstatus.TVM traps hgatp in HS-mode but not vsatp (8.2.10, 8.4.1) */
        li      t0, MSTATUS_TVM
        csrs    mstatus, t0
        /* QEMU DEPARTURE: Priv 8.2.10: with mstatus.TVM=1, HS-mode reads/writes of
           hgatp raise illegal instruction; QEMU 7.2 allows them */
        NVEXPECT "HS csrr hgatp with TVM=1: illegal", PRV_S, CAUSE_ILLEGAL, csrr s3, hgatp
        NVEXPECT "HS csrr vsatp with TVM=1: allowed", PRV_S, NO_TRAP, csrr s3, vsatp
        li      t0, MSTATUS_TVM
        csrc    mstatus, t0
        NVEXPECT "HS csrr hgatp with TVM=0: allowed", PRV_S, NO_TRAP, csrr s3, hgatp

        /* ---- henvcfg (8.2.5) */
        csrw    henvcfg, zero
        csrr    s1, henvcfg
        CHECK_EQ "henvcfg clears", s1, 0
        li      t0, -1
        csrw    henvcfg, t0
        csrr    s1, henvcfg
        csrw    henvcfg, zero
        li      t0, ~(1 | 0x30 | 0x40 | 0x80 | (1 << 62) | (1 << 63))
        and     s1, s1, t0
        CHECK_EQ "henvcfg ~0: nothing outside FIOM/CBIE/CBCFE/CBZE/PBMTE/STCE", s1, 0

        /* ---- htimedelta (8.2.7) and time seen with V=1 */
        li      t0, 0x123456789abcdef0
        csrw    htimedelta, t0
        csrr    s1, htimedelta
        sub     s1, s1, t0
        CHECK_EQ "htimedelta holds 64 bits", s1, 0
        li      t0, 2                           /* TM */
        csrw    mcounteren, t0
        csrw    hcounteren, t0
        csrw    scounteren, t0
        li      s4, 0x0000100000000000
        csrw    htimedelta, s4
        csrr    s2, time
        GOTO_V  PRV_S
        csrr    s3, time
        RETURN_M
        csrr    s5, time
        sub     s3, s3, s4
        sltu    t0, s3, s2
        sltu    t1, s5, s3
        or      s3, t0, t1
        CHECK_EQ "VS time = time + htimedelta", s3, 0
        li      s4, -(1 << 40)                  /* a negative delta wraps */
        csrw    htimedelta, s4
        csrr    s2, time
        GOTO_V  PRV_U
        csrr    s3, time
        RETURN_M
        csrr    s5, time
        sub     s3, s3, s4
        sltu    t0, s3, s2
        sltu    t1, s5, s3
        or      s3, t0, t1
        CHECK_EQ "VU time = time + negative htimedelta", s3, 0
        csrw    htimedelta, zero
        csrw    mcounteren, zero
        csrw    hcounteren, zero
        csrw    scounteren, zero

        /* ---- VS CSRs accessed from M (8.2.11 - 8.2.18) */
        li      t0, -1
        csrw    vsstatus, t0
        csrr    s1, vsstatus
        li      t0, 0xc6122                     /* SIE SPIE SPP FS SUM MXR */
        and     s2, s1, t0
        CHECK_EQ "vsstatus SIE/SPIE/SPP/FS/SUM/MXR writable", s2, 0xc6122
        li      t0, ~(0x2 | 0x20 | 0x40 | 0x100 | 0x600 | 0x6000 | 0x18000 | 0x40000 | 0x80000 | 0x300000000 | 0x8000000000000000)
        and     s2, s1, t0
        /* QEMU DEPARTURE: Priv 8.2.11 + 2.3: vsstatus holds only the sstatus fields;
           QEMU 7.2 stores every bit */
        CHECK_EQ "vsstatus ~0: nothing outside the sstatus fields", s2, 0
        srli    s2, s1, 63
        CHECK_EQ "vsstatus.SD with FS=Dirty", s2, 1
        srli    s2, s1, 32
        andi    s2, s2, 3
        addi    s2, s2, -1
        sltiu   s2, s2, 2                       /* UXL in {1, 2} */
        /* QEMU DEPARTURE: Priv 8.2.11: UXL is WARL with the misa.MXL encoding (3 is
           reserved); QEMU 7.2 keeps 3 */
        CHECK_EQ "vsstatus.UXL legal after writing 3", s2, 1
        li      t0, (2 << 32)
        csrw    vsstatus, t0
        csrw    vsstatus, zero
        csrr    s1, vsstatus
        li      t0, ~0x300000000
        and     s2, s1, t0
        CHECK_EQ "vsstatus after writing 0: only UXL left", s2, 0
        srli    s2, s1, 32
        andi    s2, s2, 3
        addi    s2, s2, -1
        sltiu   s2, s2, 2
        CHECK_EQ "vsstatus.UXL legal after writing 0", s2, 1
        csrr    s3, mstatus
        li      t0, MSTATUS_SUM
        csrw    vsstatus, t0
        csrr    s1, mstatus
        sub     s1, s1, s3
        CHECK_EQ "writing vsstatus leaves mstatus alone", s1, 0
        csrw    vsstatus, zero

        li      t0, -1
        csrw    vsie, t0
        csrr    s1, vsie
        CHECK_EQ "vsie read-only zero while hideleg = 0", s1, 0
        li      t0, 0x444
        csrw    hideleg, t0
        li      t0, -1
        csrw    vsie, t0
        csrr    s1, vsie
        li      t0, 0xffff
        and     s1, s1, t0
        CHECK_EQ "vsie = SSIE/STIE/SEIE when hideleg = 0x444", s1, 0x222
        csrr    s1, hie
        andi    s1, s1, 0x444
        CHECK_EQ "vsie bits alias hie VS bits", s1, 0x444
        csrw    vsie, zero
        li      t0, MIP_SSIP
        csrs    vsip, t0
        csrr    s1, hvip
        CHECK_EQ "vsip.SSIP writes hvip.VSSIP", s1, MIP_VSSIP
        li      t0, MIP_VSTIP
        csrw    hvip, t0
        csrr    s1, vsip
        andi    s1, s1, 0x222
        /* QEMU DEPARTURE: Priv 8.2.13: with hideleg[6]=1, vsip.STIP is an alias of
           hip.VSTIP; QEMU 7.2 reads 0 */
        CHECK_EQ "vsip.STIP shows hvip.VSTIP", s1, MIP_STIP
        li      t0, MIP_VSEIP
        csrw    hvip, t0
        csrr    s1, vsip
        andi    s1, s1, 0x222
        CHECK_EQ "vsip.SEIP shows hvip.VSEIP", s1, MIP_SEIP
        csrw    hideleg, zero
        csrr    s1, vsip
        CHECK_EQ "vsip read-only zero while hideleg = 0", s1, 0
        csrw    hvip, zero

        li      t0, 0x80001001
        csrw    vstvec, t0
        csrr    s1, vstvec
        andi    s1, s1, -4
        li      t0, 0x80001000
        sub     s1, s1, t0
        CHECK_EQ "vstvec BASE", s1, 0
        li      t0, 0x5a5a5a5a12345678
        csrw    vsscratch, t0
        csrr    s1, vsscratch
        sub     s1, s1, t0
        CHECK_EQ "vsscratch holds 64 bits", s1, 0
        li      t0, 0x80002003
        csrw    vsepc, t0
        csrr    s1, vsepc
        /* QEMU DEPARTURE: Priv 8.2.15 (vsepc holds the values sepc can) + 4.1.7
           (sepc[0] is zero); QEMU 7.2 reads back bit 0 */
        CHECK_EQ "vsepc[0] = 0 (IALIGN=16)", s1, 0x80002002
        li      t0, 0x8000000000000005
        csrw    vscause, t0
        csrr    s1, vscause
        sub     s1, s1, t0
        CHECK_EQ "vscause holds an interrupt cause", s1, 0
        li      t0, 15
        csrw    vscause, t0
        csrr    s1, vscause
        CHECK_EQ "vscause holds 15", s1, 15
        li      t0, 0x0123456789abcdef
        csrw    vstval, t0
        csrr    s1, vstval
        sub     s1, s1, t0
        CHECK_EQ "vstval holds 64 bits", s1, 0
        la      s2, groot
        srli    s2, s2, 12
        li      t0, SATP_SV39
        or      s3, s2, t0
        csrw    vsatp, s3
        csrr    s1, vsatp
        li      t0, 0x0fffffffffffffff          /* MODE and PPN (ASID is WARL) */
        xor     s1, s1, s3
        li      t0, ~(0xffff << 44)
        and     s1, s1, t0
        CHECK_EQ "vsatp Sv39 + PPN sticks", s1, 0
        li      t0, 0x1000000000000000
        or      t0, t0, s2
        csrw    vsatp, t0
        csrr    s1, vsatp
        srli    s1, s1, 60
        li      t0, 1
        sub     s1, s1, t0
        snez    s1, s1
        /* QEMU DEPARTURE: Priv 8.2.18: with V=0 a write with an unsupported MODE is
           ignored or WARL-legalized; QEMU 7.2 stores MODE=1 */
        CHECK_EQ "vsatp: reserved MODE from V=0 not kept", s1, 1
        SETPTE_PA vsroot, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
        la      s3, vsroot
        srli    s3, s3, 12
        li      t0, SATP_SV39
        or      s3, s3, t0
        csrw    vsatp, s3                       /* identity 1 GiB at 0x8000_0000 */
        hfence.vvma
        GOTO_V  PRV_S
        li      t0, 0x1000000000000000
        or      t0, t0, s2
        csrw    satp, t0                        /* unsupported MODE, V=1 */
        RETURN_M
        csrr    s1, vsatp
        sub     s1, s1, s3
        CHECK_EQ "VS write of satp with reserved MODE is ignored", s1, 0
        csrw    vsatp, zero

        /* ---- substitution when V=1 (8.2): S CSR names reach the VS CSRs */
        li      t0, 0x1111
        csrw    sscratch, t0
        li      t0, 0x2222
        csrw    vsscratch, t0
        li      t0, 0x80004000
        csrw    vstvec, t0
        li      t0, 0x80005000
        csrw    vsepc, t0
        li      t0, 13
        csrw    vscause, t0
        li      t0, 0x3333
        csrw    vstval, t0
        li      t0, 0x80006000
        csrw    stvec, t0
        li      t0, 0x80007000
        csrw    sepc, t0
        li      t0, 0x4444
        csrw    stval, t0
        li      t0, MSTATUS_SUM
        csrw    vsstatus, t0
        csrc    mstatus, t0
        li      t0, 5
        csrw    scounteren, t0
        li      t0, 0x444
        csrw    hideleg, t0
        li      t0, MIP_VSSIP                   /* hie.VSSIE -> vsie.SSIE */
        csrw    hie, t0
        li      t0, MIP_VSTIP                   /* hvip.VSTIP -> vsip.STIP */
        csrw    hvip, t0
        la      t0, groot
        srli    t0, t0, 12
        li      t1, SATP_SV39
        or      t0, t0, t1
        csrw    satp, t0                        /* HS satp: must not be seen */
        csrw    vsatp, zero
        GOTO_V  PRV_S
        csrr    s2, sscratch
        li      t0, 0x5555
        csrw    sscratch, t0
        csrr    s3, stvec
        csrr    s4, sepc
        csrr    s5, scause
        csrr    s6, stval
        csrr    s7, sstatus
        csrr    s8, sie
        csrr    s9, sip
        csrr    s10, scounteren
        csrr    s11, satp
        li      t0, MSTATUS_MXR
        csrs    sstatus, t0
        RETURN_M
        csrw    satp, zero
        csrw    hvip, zero
        csrw    hie, zero
        csrw    hideleg, zero
        csrw    scounteren, zero
        CHECK_EQ "VS csrr sscratch reads vsscratch", s2, 0x2222
        csrr    s2, vsscratch
        CHECK_EQ "VS csrw sscratch writes vsscratch", s2, 0x5555
        csrr    s2, sscratch
        CHECK_EQ "HS sscratch untouched by VS", s2, 0x1111
        CHECK_EQ "VS stvec reads vstvec", s3, 0x80004000
        CHECK_EQ "VS sepc reads vsepc", s4, 0x80005000
        CHECK_EQ "VS scause reads vscause", s5, 13
        CHECK_EQ "VS stval reads vstval", s6, 0x3333
        li      t0, MSTATUS_SUM
        and     s7, s7, t0
        CHECK_EQ "VS sstatus reads vsstatus (SUM)", s7, MSTATUS_SUM
        andi    s8, s8, 0x222
        /* QEMU DEPARTURE: Priv 8.2 / 8.2.13: with V=1, sie accesses vsie (here
           SSIE=1); QEMU 7.2 returns 0 in VS-mode */
        CHECK_EQ "VS sie reads vsie", s8, MIP_SSIP
        andi    s9, s9, 0x222
        CHECK_EQ "VS sip reads vsip", s9, MIP_STIP
        CHECK_EQ "VS scounteren is the one scounteren", s10, 5
        CHECK_EQ "VS satp reads vsatp, not satp", s11, 0
        csrr    s1, vsstatus
        li      t0, MSTATUS_MXR
        and     s1, s1, t0
        CHECK_EQ "VS csrs sstatus writes vsstatus", s1, MSTATUS_MXR
        csrr    s1, mstatus
        li      t0, MSTATUS_MXR
        and     s1, s1, t0
        CHECK_EQ "VS csrs sstatus leaves mstatus alone", s1, 0
        csrw    vsstatus, zero
        la      t0, rt_trap_vs
        csrw    vstvec, t0
        la      t0, rt_vssave
        csrw    vsscratch, t0
        la      t0, rt_trap_s
        csrw    stvec, t0
        la      t0, rt_ssave
        csrw    sscratch, t0

        /* ---- virtual-instruction vs illegal-instruction (8.6.1) */
        VEXPECT "VS csrr hstatus: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, hstatus
        TRAP_TVAL s1
        beqz    s1, 1f
        li      t0, 0x600029f3                  /* csrr s3, hstatus */
        sub     s1, s1, t0
1:      CHECK_EQ "virtual instruction: mtval = 0 or the instruction", s1, 0
        TRAP_MTINST s1
        CHECK_EQ "virtual instruction: mtinst = 0 (no transformation defined)", s1, 0
        TRAP_MTVAL2 s1
        CHECK_EQ "virtual instruction: mtval2 = 0", s1, 0
        TRAP_MGVA s1
        /* QEMU DEPARTURE: Priv 8.4.1: GVA=1 only for traps that write a guest
           virtual address to mtval; QEMU 7.2 sets it on a virtual-instruction trap
           from VS */
        CHECK_EQ "virtual instruction: mstatus.GVA = 0", s1, 0
        TRAP_MPV s1
        TRAP_PRV s2
        slli    s1, s1, 4
        or      s1, s1, s2
        CHECK_EQ "virtual instruction from VS: MPV=1, MPP=S", s1, 0x11
        VEXPECT "VS csrr vsstatus: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, vsstatus
        VEXPECT "VS csrw hgatp: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrw hgatp, zero
        VEXPECT "VS csrr htimedelta: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, htimedelta
        VEXPECT "VS csrr hvip: virtual instruction", PRV_S, CAUSE_VIRTUAL, csrr s3, hvip
        VEXPECT "VU csrr hstatus: virtual instruction", PRV_U, CAUSE_VIRTUAL, csrr s3, hstatus
        VEXPECT "VU csrr vsstatus: virtual instruction", PRV_U, CAUSE_VIRTUAL, csrr s3, vsstatus
        /* QEMU DEPARTURE: Priv 8.6.1: in VU-mode an access to a supervisor CSR that
           HS-mode may make raises virtual instruction (22); QEMU 7.2 raises illegal
           instruction */
        VEXPECT "VU csrr sstatus: virtual instruction", PRV_U, CAUSE_VIRTUAL, csrr s3, sstatus
        VEXPECT "VU csrw sscratch: virtual instruction", PRV_U, CAUSE_VIRTUAL, csrw sscratch, zero
        TRAP_MPV s1
        TRAP_PRV s2
        slli    s1, s1, 4
        or      s1, s1, s2
        CHECK_EQ "virtual instruction from VU: MPV=1, MPP=U", s1, 0x10
        NVEXPECT "U csrr hstatus: illegal", PRV_U, CAUSE_ILLEGAL, csrr s3, hstatus
        NVEXPECT "U csrr vsstatus: illegal", PRV_U, CAUSE_ILLEGAL, csrr s3, vsstatus
        NVEXPECT "HS csrr hstatus: allowed", PRV_S, NO_TRAP, csrr s3, hstatus
        NVEXPECT "HS csrr vsscratch: allowed", PRV_S, NO_TRAP, csrr s3, vsscratch
        VEXPECT "VS csrw hgeip (read-only, not HS-qualified): illegal", PRV_S, CAUSE_ILLEGAL, csrw hgeip, zero
        VEXPECT "VS csrr mstatus: illegal", PRV_S, CAUSE_ILLEGAL, csrr s3, mstatus
        VEXPECT "VS csrr cycleh (high half, XLEN=64): illegal", PRV_S, CAUSE_ILLEGAL, csrr s3, 0xc80
        VEXPECT "VS csrr sstatus: allowed", PRV_S, NO_TRAP, csrr s3, sstatus
        TEST_END

        .bss
        .balign 16384
groot:  .skip 16384
        .balign 4096
vsroot: .skip 4096

/* Zawrs (Unprivileged ISA, "Zawrs" 1.01): WRS.NTO and WRS.STO stall while
   the reservation set an LR registered is valid, until it is written, an
   interrupt is pending in mie (the rules of WFI for resuming), or a bound
   passes; without a valid reservation they complete at once. Below M,
   with mstatus.TW = 1, a WRS.NTO that does not complete within an
   implementation-defined bound is an illegal instruction; in VS/VU with
   TW = 0 and hstatus.VTW = 1, a virtual instruction. Strata's bound is
   zero, as for WFI: a WRS.NTO that would stall traps, one that would not
   (no reservation, or an interrupt pending in mie) completes. WRS.STO
   never traps, and unlike WFI U-mode may run both with TW = 0.
   qemu-lacks: zawrs (QEMU 7.2 has no Zawrs: the self-checks against the
   specification are the oracle)
   strata-args: --cpu max */
#include "test.h"
#include "h.h"

#define WRS_NTO .word 0x00d00073
#define WRS_STO .word 0x01d00073
/* LR_NTO/LR_STO: lr.d t1, (s2) registers a reservation on the scratch
   word, then the WRS; LRSC_NTO: an sc.d in between drops it */
.macro LR_NTO
        lr.d    t1, (s2)
        WRS_NTO
.endm
.macro LR_STO
        lr.d    t1, (s2)
        WRS_STO
.endm
.macro LRSC_NTO
        lr.d    t1, (s2)
        sc.d    t1, t1, (s2)
        WRS_NTO
.endm

.macro TW_SET
        li      t0, MSTATUS_TW
        csrs    mstatus, t0
.endm
.macro TW_CLEAR
        li      t0, MSTATUS_TW
        csrc    mstatus, t0
.endm
.macro VTW_SET
        li      t0, HSTATUS_VTW
        csrs    hstatus, t0
.endm
.macro VTW_CLEAR
        li      t0, HSTATUS_VTW
        csrc    hstatus, t0
.endm

TEST_BEGIN(zawrs)
        H_INIT
        la      s2, scratch
        /* M: never traps, with or without a reservation, whatever TW */
        EXPECT_TRAP "M wrs.nto, no reservation", NO_TRAP, WRS_NTO
        EXPECT_TRAP "M wrs.sto, no reservation", NO_TRAP, WRS_STO
        EXPECT_TRAP "M lr; wrs.nto", NO_TRAP, LR_NTO
        EXPECT_TRAP "M lr; wrs.sto", NO_TRAP, LR_STO
        TW_SET
        EXPECT_TRAP "M lr; wrs.nto with TW=1", NO_TRAP, LR_NTO
        TW_CLEAR

        /* HS and U with TW = 0: no trap (U may wait, unlike WFI) */
        NVEXPECT "HS lr; wrs.nto, TW=0", PRV_S, NO_TRAP, LR_NTO
        NVEXPECT "U lr; wrs.nto, TW=0", PRV_U, NO_TRAP, LR_NTO
        NVEXPECT "U lr; wrs.sto, TW=0", PRV_U, NO_TRAP, LR_STO
        NVEXPECT "U wrs.nto, no reservation, TW=0", PRV_U, NO_TRAP, WRS_NTO

        /* TW = 1: a WRS.NTO that would stall is illegal below M */
        TW_SET
        NVEXPECT "HS lr; wrs.nto, TW=1: illegal", PRV_S, CAUSE_ILLEGAL, LR_NTO
        TRAP_TVAL a4
        CHECK_EQ "illegal mtval = wrs.nto", a4, 0x00d00073
        NVEXPECT "U lr; wrs.nto, TW=1: illegal", PRV_U, CAUSE_ILLEGAL, LR_NTO
        NVEXPECT "HS lr; wrs.sto, TW=1: no trap", PRV_S, NO_TRAP, LR_STO
        NVEXPECT "U lr; wrs.sto, TW=1: no trap", PRV_U, NO_TRAP, LR_STO
        NVEXPECT "HS lr; sc; wrs.nto, TW=1: no stall, no trap", PRV_S, NO_TRAP, LRSC_NTO
        /* An interrupt pending in mie ends (prevents) the stall: SSIP,
           delegated to S and masked there by sstatus.SIE = 0 */
        li      t0, MIP_SSIP
        csrs    mideleg, t0
        csrs    mie, t0
        csrs    mip, t0
        li      t0, MSTATUS_SIE
        csrc    mstatus, t0
        NVEXPECT "HS lr; wrs.nto, TW=1, SSIP pending in mie: no trap", PRV_S, NO_TRAP, LR_NTO
        li      t0, MIP_SSIP
        csrc    mip, t0
        csrc    mie, t0
        csrc    mideleg, t0
        TW_CLEAR

        /* VS/VU: VTW = 1 with TW = 0 makes a stalling WRS.NTO virtual */
        VTW_SET
        VEXPECT "VS lr; wrs.nto, VTW=1: virtual", PRV_S, CAUSE_VIRTUAL, LR_NTO
        VEXPECT "VU lr; wrs.nto, VTW=1: virtual", PRV_U, CAUSE_VIRTUAL, LR_NTO
        VEXPECT "VS lr; wrs.sto, VTW=1: no trap", PRV_S, NO_TRAP, LR_STO
        VEXPECT "VS lr; sc; wrs.nto, VTW=1: no trap", PRV_S, NO_TRAP, LRSC_NTO
        NVEXPECT "HS lr; wrs.nto, VTW=1: no trap (V=0)", PRV_S, NO_TRAP, LR_NTO
        /* TW = 1 wins: illegal, not virtual */
        TW_SET
        VEXPECT "VS lr; wrs.nto, TW=1, VTW=1: illegal", PRV_S, CAUSE_ILLEGAL, LR_NTO
        VEXPECT "VU lr; wrs.nto, TW=1: illegal", PRV_U, CAUSE_ILLEGAL, LR_NTO
        TW_CLEAR
        VTW_CLEAR
        VEXPECT "VS lr; wrs.nto, VTW=0: no trap", PRV_S, NO_TRAP, LR_NTO
        VEXPECT "VU lr; wrs.nto, VTW=0: no trap", PRV_U, NO_TRAP, LR_NTO
        VEXPECT "VU lr; wrs.sto: no trap", PRV_U, NO_TRAP, LR_STO

        TEST_END

        .data
        .balign 8
scratch: .dword 0x1234

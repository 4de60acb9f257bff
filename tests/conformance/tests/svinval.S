/* Svinval (Privileged Architecture, "Svinval" chapter, 1.0): SINVAL.VMA
   traps as SFENCE.VMA does (U: illegal; S with mstatus.TVM: illegal; VU,
   and VS with hstatus.VTVM: virtual), HINVAL.VVMA/GVMA as HFENCE.VVMA/GVMA
   (GVMA in HS with TVM: illegal; from VS/VU: virtual), SFENCE.W.INVAL and
   SFENCE.INVAL.IR are illegal in U and virtual in VU only (TVM and VTVM do
   not trap them). Strata offers Svinval with --cpu max only (QEMU's
   default CPU does not).
   qemu-cpu: rv64,h=true,svinval=true
   strata-args: --cpu max */
#include "test.h"
#include "h.h"

#define SINVAL_VMA      .insn r 0x73, 0, 0x0b, x0, x0, x0
#define SFENCE_W_INVAL  .insn r 0x73, 0, 0x0c, x0, x0, x0
#define SFENCE_INVAL_IR .insn r 0x73, 0, 0x0c, x0, x0, x1
#define HINVAL_VVMA     .insn r 0x73, 0, 0x13, x0, x0, x0
#define HINVAL_GVMA     .insn r 0x73, 0, 0x33, x0, x0, x0

.macro ALL_FIVE
        SINVAL_VMA
        SFENCE_W_INVAL
        SFENCE_INVAL_IR
        HINVAL_VVMA
        HINVAL_GVMA
.endm

TEST_BEGIN(svinval)
        H_INIT
        NVEXPECT "HS sinval.vma", PRV_S, NO_TRAP, SINVAL_VMA
        NVEXPECT "HS sfence.w.inval", PRV_S, NO_TRAP, SFENCE_W_INVAL
        NVEXPECT "HS sfence.inval.ir", PRV_S, NO_TRAP, SFENCE_INVAL_IR
        NVEXPECT "HS hinval.vvma", PRV_S, NO_TRAP, HINVAL_VVMA
        NVEXPECT "HS hinval.gvma", PRV_S, NO_TRAP, HINVAL_GVMA
        NVEXPECT "U sinval.vma", PRV_U, CAUSE_ILLEGAL, SINVAL_VMA
        NVEXPECT "U sfence.w.inval", PRV_U, CAUSE_ILLEGAL, SFENCE_W_INVAL
        NVEXPECT "U sfence.inval.ir", PRV_U, CAUSE_ILLEGAL, SFENCE_INVAL_IR
        NVEXPECT "U hinval.vvma", PRV_U, CAUSE_ILLEGAL, HINVAL_VVMA
        NVEXPECT "U hinval.gvma", PRV_U, CAUSE_ILLEGAL, HINVAL_GVMA
        VEXPECT "VS sinval.vma", PRV_S, NO_TRAP, SINVAL_VMA
        VEXPECT "VS sfence.w.inval", PRV_S, NO_TRAP, SFENCE_W_INVAL
        VEXPECT "VS sfence.inval.ir", PRV_S, NO_TRAP, SFENCE_INVAL_IR
        VEXPECT "VS hinval.vvma", PRV_S, CAUSE_VIRTUAL, HINVAL_VVMA
        VEXPECT "VS hinval.gvma", PRV_S, CAUSE_VIRTUAL, HINVAL_GVMA
        VEXPECT "VU sinval.vma", PRV_U, CAUSE_VIRTUAL, SINVAL_VMA
        VEXPECT "VU sfence.w.inval", PRV_U, CAUSE_VIRTUAL, SFENCE_W_INVAL
        VEXPECT "VU sfence.inval.ir", PRV_U, CAUSE_VIRTUAL, SFENCE_INVAL_IR
        VEXPECT "VU hinval.vvma", PRV_U, CAUSE_VIRTUAL, HINVAL_VVMA
        /* mstatus.TVM: SINVAL.VMA and HINVAL.GVMA trap in HS, the
           brackets and HINVAL.VVMA do not */
        li      t0, MSTATUS_TVM
        csrs    mstatus, t0
        NVEXPECT "HS+TVM sinval.vma", PRV_S, CAUSE_ILLEGAL, SINVAL_VMA
        NVEXPECT "HS+TVM hinval.gvma", PRV_S, CAUSE_ILLEGAL, HINVAL_GVMA
        NVEXPECT "HS+TVM hinval.vvma", PRV_S, NO_TRAP, HINVAL_VVMA
        NVEXPECT "HS+TVM sfence.w.inval", PRV_S, NO_TRAP, SFENCE_W_INVAL
        li      t0, MSTATUS_TVM
        csrc    mstatus, t0
        /* hstatus.VTVM: SINVAL.VMA in VS is virtual, the brackets are not */
        li      t0, HSTATUS_VTVM
        csrs    hstatus, t0
        VEXPECT "VS+VTVM sinval.vma", PRV_S, CAUSE_VIRTUAL, SINVAL_VMA
        VEXPECT "VS+VTVM sfence.inval.ir", PRV_S, NO_TRAP, SFENCE_INVAL_IR
        li      t0, HSTATUS_VTVM
        csrc    hstatus, t0
        /* M-mode runs them all (one macro: gas ends a macro's arguments at
           ';', so a ';'-separated list would leave four outside the check) */
        EXPECT_TRAP "M all five", NO_TRAP, ALL_FIVE
        TEST_END

/* Sstc (Privileged Architecture, chapter "Sstc" extension, version 1.0):
   stimecmp and vstimecmp, menvcfg.STCE / henvcfg.STCE, STIP and VSTIP as
   levels driven by time >= stimecmp (time + htimedelta >= vstimecmp),
   mip.STIP read-only while STCE is set, henvcfg.STCE read-only zero while
   menvcfg.STCE is clear, the access rules (mcounteren.TM, STCE:
   illegal-instruction; hcounteren.TM, henvcfg.STCE in VS:
   virtual-instruction), and a WFI woken by nothing but stimecmp.
   qemu-cpu: rv64,h=true */
#include "test.h"
#include "h.h"

#define STIMECMP   0x14d
#define VSTIMECMP  0x24d
#define ENVCFG_STCE (1 << 63)
#define TM          2
#define FAR         (1 << 40)

/* s2 = (mip >> bit) & 1 */
.macro MIPBIT bit
        csrr    s2, mip
        srli    s2, s2, \bit
        andi    s2, s2, 1
.endm

/* Every Sstc gate open: STCE in menvcfg and henvcfg, TM in all three
   counter-enables. */
.macro OPEN
        li      t0, ENVCFG_STCE
        csrs    menvcfg, t0
        csrs    henvcfg, t0
        csrsi   mcounteren, TM
        csrsi   hcounteren, TM
        csrsi   scounteren, TM
.endm

TEST_BEGIN(sstc)
        H_INIT
        csrw    mie, zero
        csrw    mideleg, zero
        li      t0, -1
        csrw    STIMECMP, t0
        csrw    VSTIMECMP, t0

        /* ---- registers: M-mode reaches both whatever STCE says */
        csrw    menvcfg, zero
        li      t0, 0x123456789
        csrw    STIMECMP, t0
        csrr    s1, STIMECMP
        CHECK_EQ "stimecmp written in M (STCE=0)", s1, 0x123456789
        li      t0, 0xfedcba987
        csrw    VSTIMECMP, t0
        csrr    s1, VSTIMECMP
        CHECK_EQ "vstimecmp written in M (STCE=0)", s1, 0xfedcba987
        li      t0, ENVCFG_STCE
        csrs    menvcfg, t0
        csrr    s1, menvcfg
        srli    s1, s1, 63
        CHECK_EQ "menvcfg.STCE writable", s1, 1

        /* ---- henvcfg.STCE: read-only zero while menvcfg.STCE=0 */
        li      t0, ENVCFG_STCE
        csrs    henvcfg, t0
        csrr    s1, henvcfg
        srli    s1, s1, 63
        CHECK_EQ "henvcfg.STCE writable (menvcfg.STCE=1)", s1, 1
        li      t0, ENVCFG_STCE         /* CHECK_EQ clobbers t0 */
        csrc    menvcfg, t0
        csrr    s1, henvcfg
        srli    s1, s1, 63
        CHECK_EQ "henvcfg.STCE reads 0 (menvcfg.STCE=0)", s1, 0

        /* ---- STIP: software's while STCE=0 ... */
        csrw    menvcfg, zero
        li      t0, -1
        csrw    STIMECMP, t0
        li      t0, (1 << 5); csrs mip, t0
        MIPBIT  5
        CHECK_EQ "STCE=0: M sets mip.STIP", s2, 1
        csrw    STIMECMP, zero
        li      t0, (1 << 5); csrc mip, t0
        MIPBIT  5
        CHECK_EQ "STCE=0: stimecmp=0 does not drive STIP", s2, 0
        /* ... stimecmp's while STCE=1 */
        li      t0, ENVCFG_STCE
        csrs    menvcfg, t0
        MIPBIT  5
        CHECK_EQ "STCE=1, stimecmp=0: STIP", s2, 1
        li      t0, (1 << 5); csrc mip, t0
        MIPBIT  5
        CHECK_EQ "STCE=1: csrc mip.STIP has no effect", s2, 1
        li      t0, -1
        csrw    STIMECMP, t0
        MIPBIT  5
        CHECK_EQ "STCE=1, stimecmp=~0: no STIP", s2, 0
        li      t0, (1 << 5); csrs mip, t0
        MIPBIT  5
        CHECK_EQ "STCE=1: csrs mip.STIP has no effect", s2, 0
        csrr    t0, time
        li      t1, FAR
        add     t0, t0, t1
        csrw    STIMECMP, t0
        MIPBIT  5
        CHECK_EQ "stimecmp = time + 2^40: no STIP", s2, 0
        csrr    t0, time
        addi    t0, t0, -1
        csrw    STIMECMP, t0
        MIPBIT  5
        CHECK_EQ "stimecmp = time - 1: STIP", s2, 1
        /* clearing STCE gives STIP back to the software bit (clear) */
        li      t0, ENVCFG_STCE
        csrc    menvcfg, t0
        MIPBIT  5
        CHECK_EQ "STCE cleared: STIP is the software bit again", s2, 0

        /* ---- the interrupt is taken (M, not delegated) */
        li      t0, ENVCFG_STCE
        csrs    menvcfg, t0
        li      t0, -1
        csrw    STIMECMP, t0
        li      t0, (1 << 5)
        csrw    mie, t0
        CLEAR_TRAP
        csrw    STIMECMP, zero
        csrsi   mstatus, MSTATUS_MIE
        nop
        csrci   mstatus, MSTATUS_MIE
        TRAP_CAUSE s3
        CHECK_EQ "STI taken from stimecmp", s3, IRQ_CAUSE(5)

        /* ---- WFI with only stimecmp armed (mtimecmp at ~0, MIE=0): the
           machine must wake at the deadline, not wait for ever */
        li      t0, -1
        csrw    STIMECMP, t0
        csrr    s4, time
        li      t0, 20000              /* 2 ms at 10 MHz */
        add     s4, s4, t0
        csrw    STIMECMP, s4
        li      t0, (1 << 5)            /* the handler cleared mie */
        csrw    mie, t0
        li      t2, 100
1:      wfi
        MIPBIT  5
        bnez    s2, 2f
        addi    t2, t2, -1
        bnez    t2, 1b
2:      CHECK_EQ "WFI woken by stimecmp (STIP)", s2, 1
        csrr    s3, time
        sltu    s3, s3, s4
        CHECK_EQ "woken no earlier than stimecmp", s3, 0
        li      t0, -1
        csrw    STIMECMP, t0
        csrw    mie, zero

        /* ---- access rules below M */
        OPEN
        ACCESS  "S: stimecmp, all open", PRV_S, 0, NO_TRAP, csrr t1, STIMECMP
        ACCESS  "S: vstimecmp, all open", PRV_S, 0, NO_TRAP, csrr t1, VSTIMECMP
        ACCESS  "U: stimecmp is S-level", PRV_U, 0, CAUSE_ILLEGAL, csrr t1, STIMECMP
        csrci   mcounteren, TM
        ACCESS  "S: stimecmp, mcounteren.TM=0", PRV_S, 0, CAUSE_ILLEGAL, csrr t1, STIMECMP
        ACCESS  "S: vstimecmp, mcounteren.TM=0", PRV_S, 0, CAUSE_ILLEGAL, csrw VSTIMECMP, t1
        csrsi   mcounteren, TM
        li      t0, ENVCFG_STCE
        csrc    menvcfg, t0
        ACCESS  "S: stimecmp, menvcfg.STCE=0", PRV_S, 0, CAUSE_ILLEGAL, csrw STIMECMP, t1
        ACCESS  "S: vstimecmp, menvcfg.STCE=0", PRV_S, 0, CAUSE_ILLEGAL, csrr t1, VSTIMECMP
        VEXPECT "VS: stimecmp, menvcfg.STCE=0", PRV_S, CAUSE_ILLEGAL, csrr t1, STIMECMP
        OPEN
        li      t0, 0x55aa55aa
        csrw    VSTIMECMP, t0
        li      t0, 0x1111
        csrw    STIMECMP, t0
        VEXPECT "VS: stimecmp, all open", PRV_S, NO_TRAP, csrr s5, STIMECMP
        CHECK_EQ "VS: stimecmp reads vstimecmp", s5, 0x55aa55aa
        li      s5, 0x77
        VEXPECT "VS: stimecmp write", PRV_S, NO_TRAP, csrw STIMECMP, s5
        csrr    s1, VSTIMECMP
        CHECK_EQ "VS: stimecmp write lands in vstimecmp", s1, 0x77
        csrr    s1, STIMECMP
        CHECK_EQ "VS: stimecmp write leaves stimecmp", s1, 0x1111
        VEXPECT "VS: vstimecmp is H-level", PRV_S, CAUSE_VIRTUAL, csrr t1, VSTIMECMP
        VEXPECT "VU: stimecmp", PRV_U, CAUSE_VIRTUAL, csrr t1, STIMECMP
        csrci   hcounteren, TM
        VEXPECT "VS: stimecmp, hcounteren.TM=0", PRV_S, CAUSE_VIRTUAL, csrr t1, STIMECMP
        csrsi   hcounteren, TM
        li      t0, ENVCFG_STCE
        csrc    henvcfg, t0
        VEXPECT "VS: stimecmp, henvcfg.STCE=0", PRV_S, CAUSE_VIRTUAL, csrr t1, STIMECMP
        csrci   mcounteren, TM
        VEXPECT "VS: stimecmp, mcounteren.TM=0", PRV_S, CAUSE_ILLEGAL, csrr t1, STIMECMP
        OPEN

        /* ---- VSTIP from vstimecmp against time + htimedelta */
        csrw    hvip, zero
        csrw    htimedelta, zero
        li      t0, -1
        csrw    VSTIMECMP, t0
        li      t0, -1
        csrw    STIMECMP, t0
        MIPBIT  6
        CHECK_EQ "vstimecmp=~0: no VSTIP", s2, 0
        csrw    VSTIMECMP, zero
        MIPBIT  6
        CHECK_EQ "vstimecmp=0: VSTIP", s2, 1
        csrr    s2, hip
        srli    s2, s2, 6
        andi    s2, s2, 1
        CHECK_EQ "vstimecmp=0: hip.VSTIP", s2, 1
        MIPBIT  5
        CHECK_EQ "vstimecmp does not drive STIP", s2, 0
        csrr    t0, time
        li      t1, FAR
        add     t0, t0, t1
        csrw    VSTIMECMP, t0
        MIPBIT  6
        CHECK_EQ "vstimecmp = time + 2^40: no VSTIP", s2, 0
        li      t1, FAR
        add     t1, t1, t1
        csrw    htimedelta, t1
        MIPBIT  6
        CHECK_EQ "htimedelta = 2^41 passes it: VSTIP", s2, 1
        csrw    htimedelta, zero
        MIPBIT  6
        CHECK_EQ "htimedelta = 0 again: no VSTIP", s2, 0
        li      t0, (1 << 6)
        csrs    hvip, t0
        MIPBIT  6
        CHECK_EQ "hvip.VSTIP still ORed in", s2, 1
        csrw    hvip, zero
        csrw    VSTIMECMP, zero
        li      t0, ENVCFG_STCE
        csrc    henvcfg, t0
        MIPBIT  6
        CHECK_EQ "henvcfg.STCE=0: vstimecmp drives nothing", s2, 0
        li      t0, ENVCFG_STCE
        csrs    henvcfg, t0
        csrc    menvcfg, t0
        MIPBIT  6
        CHECK_EQ "menvcfg.STCE=0: vstimecmp drives nothing", s2, 0

        li      t0, -1
        csrw    STIMECMP, t0
        csrw    VSTIMECMP, t0
        csrw    menvcfg, zero
        csrw    henvcfg, zero
        TEST_END

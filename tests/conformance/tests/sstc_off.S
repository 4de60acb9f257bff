/* Without Sstc (strata --cpu rv64gc; QEMU with sstc=false): stimecmp and
   vstimecmp do not exist, so even M-mode's access is an illegal
   instruction (Priv. 2.1: an access to a CSR that does not exist), and
   menvcfg.STCE / henvcfg.STCE are read-only zero (Priv. "Sstc"), so STIP
   stays the bit M-mode writes.
   qemu-cpu: rv64,h=true,sstc=false
   strata-args: --cpu rv64gc */
#include "test.h"
#include "h.h"

#define STIMECMP   0x14d
#define VSTIMECMP  0x24d
#define ENVCFG_STCE (1 << 63)

TEST_BEGIN(sstc_off)
        H_INIT
        EXPECT_TRAP "M: csrr stimecmp", CAUSE_ILLEGAL, csrr t1, STIMECMP
        EXPECT_TRAP "M: csrw stimecmp", CAUSE_ILLEGAL, csrw STIMECMP, zero
        EXPECT_TRAP "M: csrr vstimecmp", CAUSE_ILLEGAL, csrr t1, VSTIMECMP
        li      t0, ENVCFG_STCE
        csrs    menvcfg, t0
        csrr    s1, menvcfg
        srli    s1, s1, 63
        CHECK_EQ "menvcfg.STCE read-only zero", s1, 0
        li      t0, ENVCFG_STCE
        csrs    henvcfg, t0
        csrr    s1, henvcfg
        srli    s1, s1, 63
        CHECK_EQ "henvcfg.STCE read-only zero", s1, 0
        li      t0, (1 << 5)
        csrs    mip, t0
        csrr    s1, mip
        srli    s1, s1, 5
        andi    s1, s1, 1
        CHECK_EQ "mip.STIP written by M", s1, 1
        li      t0, (1 << 5)
        csrc    mip, t0
        csrr    s1, mip
        srli    s1, s1, 5
        andi    s1, s1, 1
        CHECK_EQ "mip.STIP cleared by M", s1, 0
        TEST_END

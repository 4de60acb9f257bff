/* Physical memory protection (Privileged 20211203 3.7): NAPOT/TOR/NA4
   matching, static priority, S/U checks, M-mode exemption and the L bit.
   The runtime's entry 15 grants RWX everywhere; tests use 0..7. */
#include "test.h"

#define PMP_R 0x01
#define PMP_W 0x02
#define PMP_X 0x04
#define PMP_TOR   0x08
#define PMP_NA4   0x10
#define PMP_NAPOT 0x18
#define PMP_L 0x80

/* pmpaddr for a NAPOT region at sym of size bytes */
.macro NAPOT_ADDR reg, sym, size
        la      \reg, \sym
        li      t6, (\size / 2 - 1)
        or      \reg, \reg, t6
        srli    \reg, \reg, 2
.endm
.macro SETCFG0 val
        li      t6, \val
        csrw    pmpcfg0, t6
        sfence.vma
.endm

TEST_BEGIN(pmp)
        la      s6, region + 4096
        la      s7, region + 8192
        la      t2, region
        li      t3, 0x1111
        sd      t3, 0(t2)
        li      t3, 0x2222
        li      t4, 4096
        add     t4, t4, t2
        sd      t3, 0(t4)
        li      t3, 0x3333
        sd      t3, 0(s7)
        /* code template in region+3*4096 */
        la      t3, code_tmpl
        lwu     t4, 0(t3)
        lwu     t5, 4(t3)
        li      t6, 3 * 4096
        add     t6, t6, t2
        sw      t4, 0(t6)
        sw      t5, 4(t6)
        fence.i

        /* 1. NAPOT 4K read-only */
        NAPOT_ADDR t2, region, 4096
        csrw    pmpaddr0, t2
        SETCFG0 (PMP_NAPOT | PMP_R)
        csrr    s3, pmpcfg0
        andi    s3, s3, 0xff
        CHECK_EQ "pmpcfg0 entry0 reads back", s3, PMP_NAPOT | PMP_R
        la      s4, region
        ACCESS "S load NAPOT R", PRV_S, 0, NO_TRAP, ld s3, 0(s4)
        CHECK_EQ "S load NAPOT R value", s3, 0x1111
        CLEAR_TRAP
        la      s1, region + 8
        SET_RESUME 1f
        GOTO_MODE PRV_S
        sd      s1, 0(s1)
1:      RETURN_M
        DISARM
        TRAP_CAUSE s3
        CHECK_EQ "S store NAPOT R: access fault", s3, CAUSE_STORE_ACCESS
        TRAP_TVAL s3
        sub     s3, s3, s1
        CHECK_EQ "S store NAPOT R: mtval", s3, 0
        ACCESS "U load NAPOT R", PRV_U, 0, NO_TRAP, ld s3, 0(s4)
        ACCESS "U amoadd NAPOT R", PRV_U, 0, CAUSE_STORE_ACCESS, amoadd.d s3, s3, (s4)
        ACCESS "S load last byte of region", PRV_S, 0, NO_TRAP, lbu s3, -1(s6)
        ACCESS "S store just past region (entry 15)", PRV_S, 0, NO_TRAP, sb s3, 0(s6)
        ACCESS "S store straddling region end", PRV_S, 0, CAUSE_STORE_ACCESS, sd s3, -4(s6)
        ACCESS "M store ignores non-locked entry", PRV_M, 0, NO_TRAP, sd s3, 16(s4)
        la      s8, region
        ACCESS "S fetch without X", PRV_S, 0, CAUSE_FETCH_ACCESS, jalr ra, 0(s8)
        /* region+3*4096 is not covered by entry 0: runs via entry 15 */
        la      s8, region + 3 * 4096
        li      s5, 0
        ACCESS "S fetch via catch-all entry", PRV_S, 0, NO_TRAP, jalr ra, 0(s8)
        CHECK_EQ "code ran", s5, 0x42
        NAPOT_ADDR t2, region + 3 * 4096, 4096
        csrw    pmpaddr0, t2
        SETCFG0 (PMP_NAPOT | PMP_R | PMP_W)
        ACCESS "S fetch NAPOT RW (no X)", PRV_S, 0, CAUSE_FETCH_ACCESS, jalr ra, 0(s8)
        TRAP_TVAL s3
        sub     s3, s3, s8
        CHECK_EQ "fetch access fault mtval = target", s3, 0
        TRAP_EPC s3
        sub     s3, s3, s8
        CHECK_EQ "fetch access fault mepc = target", s3, 0
        SETCFG0 (PMP_NAPOT | PMP_X)
        li      s5, 0
        ACCESS "S fetch NAPOT X-only", PRV_S, 0, NO_TRAP, jalr ra, 0(s8)
        CHECK_EQ "X-only code ran", s5, 0x42
        ACCESS "S load NAPOT X-only", PRV_S, 0, CAUSE_LOAD_ACCESS, ld s3, 0(s8)

        /* 2. priority: lowest-numbered matching entry wins */
        NAPOT_ADDR t2, region, 4096
        csrw    pmpaddr0, t2
        NAPOT_ADDR t2, region, 8192
        csrw    pmpaddr1, t2
        SETCFG0 ((PMP_NAPOT | PMP_R | PMP_W) << 8) | (PMP_NAPOT)
        la      s4, region
        ACCESS "entry0 (none) beats entry1 (RW)", PRV_S, 0, CAUSE_LOAD_ACCESS, ld s3, 0(s4)
        ACCESS "entry1 RW applies to 2nd page", PRV_S, 0, NO_TRAP, sd s3, 0(s6)
        SETCFG0 ((PMP_NAPOT) << 8) | (PMP_NAPOT | PMP_R)
        ACCESS "entry0 (R) beats entry1 (none)", PRV_S, 0, NO_TRAP, ld s3, 0(s4)
        ACCESS "entry1 none applies to 2nd page", PRV_S, 0, CAUSE_LOAD_ACCESS, ld s3, 0(s6)

        /* 3. TOR: entry1 covers [pmpaddr0, pmpaddr1) */
        la      t2, region + 4096
        srli    t2, t2, 2
        csrw    pmpaddr0, t2
        la      t2, region + 8192
        srli    t2, t2, 2
        csrw    pmpaddr1, t2
        SETCFG0 ((PMP_TOR | PMP_R) << 8)
        li      t2, 0x2222
        sd      t2, 0(s6)
        ACCESS "TOR R: load inside", PRV_S, 0, NO_TRAP, ld s3, 0(s6)
        CHECK_EQ "TOR R: value", s3, 0x2222
        ACCESS "TOR R: store inside", PRV_S, 0, CAUSE_STORE_ACCESS, sd s3, 0(s6)
        ACCESS "TOR: below range not matched", PRV_S, 0, NO_TRAP, sd s3, -8(s6)
        ACCESS "TOR: top is exclusive", PRV_S, 0, NO_TRAP, sd s3, 0(s7)
        /* TOR in entry 0 uses 0 as the bottom */
        la      t2, region + 4096
        srli    t2, t2, 2
        csrw    pmpaddr0, t2
        SETCFG0 (PMP_TOR | PMP_R | PMP_X)
        ACCESS "TOR entry0 [0,top): store below", PRV_S, 0, CAUSE_STORE_ACCESS, sd s3, 8(s4)
        ACCESS "TOR entry0: above top", PRV_S, 0, NO_TRAP, sd s3, 0(s6)
        /* top <= bottom matches nothing */
        la      t2, region + 8192
        srli    t2, t2, 2
        csrw    pmpaddr0, t2
        la      t2, region
        srli    t2, t2, 2
        csrw    pmpaddr1, t2
        SETCFG0 ((PMP_TOR) << 8)
        ACCESS "TOR empty range matches nothing", PRV_S, 0, NO_TRAP, sd s3, 0(s6)

        /* 4. NA4: exactly 4 bytes (only if granularity allows; G=0 on QEMU) */
        la      t2, region + 8192 + 8
        srli    t2, t2, 2
        csrw    pmpaddr0, t2
        SETCFG0 (PMP_NA4)
        csrr    s3, pmpcfg0
        andi    s3, s3, 0x18
        li      t2, PMP_NA4
        bne     s3, t2, 2f
        ACCESS "NA4 denies its word", PRV_S, 0, CAUSE_LOAD_ACCESS, lw s3, 8(s7)
        ACCESS "NA4 denies its last byte", PRV_S, 0, CAUSE_LOAD_ACCESS, lbu s3, 11(s7)
        ACCESS "NA4 next word free", PRV_S, 0, NO_TRAP, lw s3, 12(s7)
        ACCESS "NA4 previous word free", PRV_S, 0, NO_TRAP, lw s3, 4(s7)
        j       3f
2:      RECORD "NA4 not supported (G>0)", s3
3:
        /* 5. MPRV: M-mode loads with MPP=S are checked */
        NAPOT_ADDR t2, region, 4096
        csrw    pmpaddr0, t2
        SETCFG0 (PMP_NAPOT)
        li      t2, MSTATUS_MPP
        csrc    mstatus, t2
        li      t2, (PRV_S << 11) | MSTATUS_MPRV
        csrs    mstatus, t2
        CLEAR_TRAP
        SET_RESUME 4f
        ld      s3, 0(s4)
4:      li      t2, MSTATUS_MPRV
        csrc    mstatus, t2
        DISARM
        TRAP_CAUSE s3
        CHECK_EQ "MPRV=1 MPP=S load checked by PMP", s3, CAUSE_LOAD_ACCESS
        li      t2, MSTATUS_MPP
        csrs    mstatus, t2

        /* 6. reserved R=0,W=1 (Priv 3.7.1) must not read back.
           QEMU DEPARTURE: 7.2 stores it. */
        SETCFG0 (PMP_NAPOT | PMP_W)
        csrr    s3, pmpcfg0
        andi    s3, s3, 3
        li      s5, 0
        li      t2, PMP_W
        beq     s3, t2, 5f
        li      s5, 1
5:      CHECK_EQ "cfg W without R does not stick", s5, 1

        /* 7. L bit: M-mode is checked and the entry is frozen (entry 7) */
        li      t2, 0x3333
        sd      t2, 0(s7)
        NAPOT_ADDR t2, region + 8192, 4096
        csrw    pmpaddr7, t2
        li      t2, (PMP_L | PMP_NAPOT | PMP_R) << 56
        csrw    pmpcfg0, t2
        sfence.vma
        la      s4, region
        ACCESS "locked R: M load ok", PRV_M, 0, NO_TRAP, ld s3, 0(s7)
        CHECK_EQ "locked R: M load value", s3, 0x3333
        ACCESS "locked R: M store faults", PRV_M, 0, CAUSE_STORE_ACCESS, sd s3, 0(s7)
        csrw    pmpcfg0, zero
        csrw    pmpaddr7, zero
        csrr    s3, pmpcfg0
        srli    s3, s3, 56
        CHECK_EQ "locked cfg ignores writes", s3, PMP_L | PMP_NAPOT | PMP_R
        csrr    s3, pmpaddr7
        NAPOT_ADDR t2, region + 8192, 4096
        sub     s3, s3, t2
        CHECK_EQ "locked addr ignores writes", s3, 0
        ACCESS "locked R: M store still faults", PRV_M, 0, CAUSE_STORE_ACCESS, sd s3, 0(s7)
        ACCESS "locked R: S store faults", PRV_S, 0, CAUSE_STORE_ACCESS, sd s3, 0(s7)
        ACCESS "M store outside locked entry", PRV_M, 0, NO_TRAP, sd s3, 0(s6)
        TEST_END

code_tmpl:
        .option push
        .option norvc
        li      s5, 0x42
        jalr    x0, 0(ra)
        .option pop

        .data
        .balign 8192
region: .skip 4 * 4096

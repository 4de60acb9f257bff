/* Sv39 edge cases (Privileged 20211203 3.1.16, 4.3.2): instructions and
   accesses straddling a page boundary, access faults during and after the
   walk, MPRV+SUM, MXR on U pages. */
#include "test.h"

#define VA_BASE 0x40000000
#define VA(i)   (VA_BASE + (i) * 0x1000)
#define HOLE    0x90000000          /* no memory here (128 MiB RAM) */

.macro MKPTE reg, preg, flags
        srli    \reg, \preg, 12
        slli    \reg, \reg, 10
        li      t6, \flags
        or      \reg, \reg, t6
.endm
.macro SETPTE table, idx, sym, flags
        la      t5, \sym
        MKPTE   t4, t5, \flags
        la      t5, \table
        sd      t4, (\idx * 8)(t5)
.endm
.macro SETPTE_PA table, idx, pa, flags
        li      t5, \pa
        MKPTE   t4, t5, \flags
        la      t5, \table
        sd      t4, (\idx * 8)(t5)
.endm
/* s5 = 1 if (a0 == x) or (a0 == y) */
.macro EITHER x, y
        li      s5, 0
        li      t2, \x
        bne     a0, t2, .Le1\@
        li      s5, 1
.Le1\@: li      t2, \y
        bne     a0, t2, .Le2\@
        li      s5, 1
.Le2\@:
.endm

TEST_BEGIN(vm_edge)
        /* code straddling codepg[0] / codepg[1]:
           +0xffe: addi s5, x0, 0x42 (4 bytes, split), +0x1002: c.jr ra */
        la      t3, codepg
        li      t2, 0x1000
        add     t3, t3, t2
        li      t2, 0x04200a93            /* addi s5, x0, 0x42 */
        sh      t2, -2(t3)
        srli    t2, t2, 16
        sh      t2, 0(t3)
        li      t2, 0x8082                /* c.jr ra */
        sh      t2, 2(t3)
        fence.i

        SETPTE_PA root, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
        SETPTE    root, 1, l1, PTE_V
        SETPTE    l1, 0, l0, PTE_V
        SETPTE_PA l1, 5, HOLE, PTE_V                      /* next table in a hole */
        SETPTE    l0, 0, codepg, PTE_V|PTE_X|PTE_A
        /* l0[1] (second code page) starts invalid */
        SETPTE    l0, 2, datapg, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
        /* l0[3] invalid */
        SETPTE    l0, 4, datapg, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D
        SETPTE    l0, 5, codepg, PTE_V|PTE_X|PTE_U|PTE_A
        SETPTE_PA l0, 6, HOLE, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D    /* leaf -> hole */
        la      t5, root
        srli    t5, t5, 12
        li      t4, SATP_SV39
        or      t5, t5, t4
        csrw    satp, t5
        sfence.vma

        /* 1. fetch of a 4-byte instruction whose 2nd half is unmapped:
           mepc = instruction start, mtval = start of the faulting portion
           (Priv 3.1.16) or 0 */
        li      s1, VA(0) + 0xffe
        li      s5, 0
        CLEAR_TRAP
        SET_RESUME 1f
        GOTO_MODE PRV_S
        jalr    ra, 0(s1)
1:      RETURN_M
        DISARM
        CHECK_EQ "straddling fetch: insn not executed", s5, 0
        TRAP_CAUSE s3
        CHECK_EQ "straddling fetch: page fault", s3, CAUSE_FETCH_PAGE
        TRAP_EPC s3
        sub     s3, s3, s1
        CHECK_EQ "straddling fetch: mepc = insn start", s3, 0
        TRAP_TVAL a0
        EITHER  VA(1), 0
        CHECK_EQ "straddling fetch: mtval = 2nd page (or 0)", s5, 1
        /* now map the second page: the split instruction executes */
        SETPTE  l0, 1, codepg + 0x1000, PTE_V|PTE_X|PTE_A
        sfence.vma
        li      s5, 0
        CLEAR_TRAP
        li      s1, VA(0) + 0xffe
        GOTO_MODE PRV_S
        jalr    ra, 0(s1)
        RETURN_M
        CHECK_EQ "straddling fetch once mapped", s5, 0x42
        TRAP_COUNT s3
        CHECK_EQ "straddling fetch once mapped: no trap", s3, 0
        /* second page mapped without X */
        SETPTE  l0, 1, codepg + 0x1000, PTE_V|PTE_R|PTE_A
        sfence.vma
        li      s1, VA(0) + 0xffe
        CLEAR_TRAP
        SET_RESUME 2f
        GOTO_MODE PRV_S
        jalr    ra, 0(s1)
2:      RETURN_M
        DISARM
        TRAP_CAUSE s3
        CHECK_EQ "straddling fetch, 2nd page not X", s3, CAUSE_FETCH_PAGE
        TRAP_TVAL a0
        EITHER  VA(1), 0
        CHECK_EQ "straddling fetch not X: mtval", s5, 1

        /* 2. misaligned load/store straddling into an unmapped page:
           either address-misaligned (mtval = address) or page fault with
           mtval = the address or the start of the faulting portion. */
        li      s1, VA(2) + 0xffc
        CLEAR_TRAP
        SET_RESUME 3f
        GOTO_MODE PRV_S
        ld      s3, 0(s1)
3:      RETURN_M
        DISARM
        TRAP_CAUSE s3
        TRAP_TVAL s4
        li      s6, 0
        li      t2, CAUSE_MISALIGNED_LOAD
        bne     s3, t2, 4f
        bne     s4, s1, 5f
        li      s6, 1
        j       5f
4:      li      t2, CAUSE_LOAD_PAGE
        bne     s3, t2, 5f
        li      t2, VA(3)
        beq     s4, t2, 6f
        bne     s4, s1, 5f
6:      li      s6, 1
5:      CHECK_EQ "straddling ld into unmapped page: allowed trap", s6, 1
        li      s1, VA(2) + 0xffe
        CLEAR_TRAP
        SET_RESUME 7f
        GOTO_MODE PRV_S
        sw      s3, 0(s1)
7:      RETURN_M
        DISARM
        TRAP_CAUSE s3
        TRAP_TVAL s4
        li      s6, 0
        li      t2, CAUSE_MISALIGNED_STORE
        bne     s3, t2, 8f
        bne     s4, s1, 9f
        li      s6, 1
        j       9f
8:      li      t2, CAUSE_STORE_PAGE
        bne     s3, t2, 9f
        li      t2, VA(3)
        beq     s4, t2, 10f
        bne     s4, s1, 9f
10:     li      s6, 1
9:      CHECK_EQ "straddling sw into unmapped page: allowed trap", s6, 1

        /* 3. access faults: leaf maps a hole -> access fault, not page fault */
        FAULT   "S load via PTE to hole", PRV_S, VA(6), CAUSE_LOAD_ACCESS, ld s3, 0(s1)
        FAULT   "S store via PTE to hole", PRV_S, VA(6) + 8, CAUSE_STORE_ACCESS, sd s3, 0(s1)
        /* ... and a page-table page in a hole -> access fault of the
           original access type (Priv 4.3.2 step 2).  QEMU DEPARTURE: 7.2
           raises a page fault (13/15/12) instead. */
        FAULT   "S load, walk hits hole", PRV_S, 0x40a00000, CAUSE_LOAD_ACCESS, ld s3, 0(s1)
        FAULT   "S store, walk hits hole", PRV_S, 0x40a00010, CAUSE_STORE_ACCESS, sd s3, 0(s1)
        la      s7, 11f
        li      s8, 0x40a00000
        CLEAR_TRAP
        SET_RESUME 11f
        GOTO_MODE PRV_S
        jalr    ra, 0(s8)
11:     RETURN_M
        DISARM
        TRAP_CAUSE s3
        CHECK_EQ "S fetch, walk hits hole", s3, CAUSE_FETCH_ACCESS

        /* 4. MPRV with MPP=S obeys SUM for U pages */
        li      t2, MSTATUS_MPP
        csrc    mstatus, t2
        li      t2, (PRV_S << 11) | MSTATUS_MPRV
        csrs    mstatus, t2
        CLEAR_TRAP
        SET_RESUME 12f
        li      s1, VA(4)
        ld      s3, 0(s1)
12:     li      t2, MSTATUS_MPRV
        csrc    mstatus, t2
        DISARM
        TRAP_CAUSE s3
        CHECK_EQ "MPRV S-level load of U page, SUM=0", s3, CAUSE_LOAD_PAGE
        li      t2, MSTATUS_MPP
        csrc    mstatus, t2
        li      t2, (PRV_S << 11) | MSTATUS_MPRV | MSTATUS_SUM
        csrs    mstatus, t2
        CLEAR_TRAP
        SET_RESUME 13f
        li      s1, VA(4)
        ld      s3, 0(s1)
13:     li      t2, MSTATUS_MPRV | MSTATUS_SUM
        csrc    mstatus, t2
        DISARM
        TRAP_COUNT s3
        CHECK_EQ "MPRV S-level load of U page, SUM=1", s3, 0
        /* MPRV does not affect instruction fetch: M keeps running */
        li      t2, MSTATUS_MPP
        csrs    mstatus, t2

        /* 5. MXR + SUM: S load from a U, X-only page */
        li      t2, MSTATUS_SUM
        csrs    mstatus, t2
        FAULT   "S load U X-only page, SUM=1 MXR=0", PRV_S, VA(5), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        li      t2, MSTATUS_MXR
        csrs    mstatus, t2
        ACCESS  "S load U X-only page, SUM=1 MXR=1", PRV_S, VA(5), NO_TRAP, ld s3, 0(s1)
        FAULT   "S store U X-only page, MXR=1", PRV_S, VA(5), CAUSE_STORE_PAGE, sd s3, 0(s1)
        li      t2, MSTATUS_SUM
        csrc    mstatus, t2
        FAULT   "S load U X-only page, SUM=0 MXR=1", PRV_S, VA(5), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        li      t2, MSTATUS_MXR
        csrc    mstatus, t2
        csrw    satp, zero
        sfence.vma
        TEST_END

        .data
        .balign 4096
root:   .skip 4096
l1:     .skip 4096
l0:     .skip 4096
codepg: .skip 8192
datapg: .skip 4096

/* Svpbmt and Svnapot on the hart's Sv39 walk (Privileged Architecture,
   "Svpbmt" and "Svnapot" chapters, 1.0; menvcfg §3.1.18).
   Svpbmt: with menvcfg.PBMTE set, a leaf PTE's PBMT field (bits 62:61)
   may be PMA (0), NC (1) or IO (2); 3 is reserved, and a non-leaf PTE with
   PBMT set is reserved too (page fault). With PBMTE clear, bits 62:61 are
   reserved like the other high bits. Strata's memory is uniform: NC and
   IO pages read and write the same RAM.
   Svnapot: a level-0 leaf with N (bit 63) set and PPN[3:0] = 1000 maps a
   naturally aligned 64 KiB range, PPN[3:0] taken from the address; any
   other PPN[3:0] with N, and N on a non-leaf PTE, are reserved.
   The VS-stage needs henvcfg.PBMTE as well (Priv. 8.2.5; henvcfg.PBMTE
   reads zero while menvcfg.PBMTE is clear).
   qemu-cpu: rv64,h=true,svpbmt=true,svnapot=true
   strata-args: --cpu max */
#include "test.h"
#include "h.h"

#define VA_BASE   0x40000000          /* root[1] -> l1[0] -> l0 */
#define VA(i)     (VA_BASE + (i) * 0x1000)
#define VA_L0B    0x40200000          /* l1[1]: non-leaf with PBMT = NC */
#define VA_L0C    0x40400000          /* l1[2]: non-leaf with N */
#define PTE_RW    (PTE_V|PTE_R|PTE_W|PTE_A|PTE_D)
#define PBMT_NC   0x2000000000000000
#define PBMT_IO   0x4000000000000000
#define PBMT_RSV  0x6000000000000000
#define PTE_N     0x8000000000000000
#define MENVCFG_PBMTE 0x4000000000000000

.macro PMKPTE reg, preg, flags
        srli    \reg, \preg, 12
        slli    \reg, \reg, 10
        li      t6, \flags
        or      \reg, \reg, t6
.endm
/* table[idx] = PTE(address of sym + off, flags) */
.macro PSETPTE table, idx, sym, off, flags
        la      t5, \sym
        li      t4, \off
        add     t5, t5, t4
        PMKPTE   t4, t5, \flags
        la      t5, \table
        li      t3, (\idx * 8)
        add     t5, t5, t3
        sd      t4, 0(t5)
.endm
.macro PSETPTE_PA table, idx, pa, flags
        li      t5, \pa
        PMKPTE   t4, t5, \flags
        la      t5, \table
        sd      t4, (\idx * 8)(t5)
.endm
/* phys word sym + off = value */
.macro POKE sym, off, value
        la      t5, \sym
        li      t4, \off
        add     t5, t5, t4
        li      t4, \value
        sd      t4, 0(t5)
.endm

TEST_BEGIN(svpbmt)
        H_INIT
        POKE    pages, 0x0000, 0x1010
        POKE    pages, 0x1000, 0x2020
        POKE    pages, 0x3000, 0x4040
        POKE    napot, 0x0000, 0x5a5a0000
        POKE    napot, 0x3008, 0x5a5a3008
        POKE    napot, 0xfff8, 0x5a5afff8
        PSETPTE_PA root, 2, 0x80000000, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
        PSETPTE  root, 1, l1, 0, PTE_V
        PSETPTE  l1, 0, l0, 0, PTE_V
        PSETPTE  l1, 1, l0b, 0, PTE_V|PBMT_NC
        PSETPTE  l1, 2, l0c, 0, PTE_V|PTE_N
        PSETPTE  l0b, 0, pages, 0x3000, PTE_RW
        PSETPTE  l0c, 0, pages, 0x3000, PTE_RW
        PSETPTE  l0, 0, pages, 0x0000, PTE_RW|PBMT_NC
        PSETPTE  l0, 1, pages, 0x1000, PTE_RW|PBMT_IO
        PSETPTE  l0, 2, pages, 0x2000, PTE_RW|PBMT_RSV
        PSETPTE  l0, 3, pages, 0x3000, PTE_RW
        /* the 64 KiB range: all sixteen PTEs alike, PPN[3:0] = 1000 */
        .irp i, 16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        PSETPTE  l0, \i, napot, 0x8000, PTE_RW|PTE_N
        .endr
        /* N with PPN[3:0] = 0100: reserved */
        PSETPTE  l0, 32, napot, 0x4000, PTE_RW|PTE_N
        la      t5, root
        srli    t5, t5, 12
        li      t4, SATP_SV39
        or      t5, t5, t4
        csrw    satp, t5
        sfence.vma

        /* PBMTE is writable with Svpbmt */
        li      t0, MENVCFG_PBMTE
        csrs    menvcfg, t0
        csrr    a4, menvcfg
        srli    a4, a4, 62
        andi    a4, a4, 1
        CHECK_EQ "menvcfg.PBMTE writable", a4, 1
        sfence.vma

        ACCESS  "S load NC page", PRV_S, VA(0), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "NC page value", s3, 0x1010
        ACCESS  "S load IO page", PRV_S, VA(1), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "IO page value", s3, 0x2020
        li      s3, 0x2121
        ACCESS  "S store IO page", PRV_S, VA(1) + 8, NO_TRAP, sd s3, 0(s1)
        ld      a4, pages + 0x1008
        CHECK_EQ "IO store reached RAM", a4, 0x2121
        FAULT   "S load PBMT=3 (reserved)", PRV_S, VA(2), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        FAULT   "S store PBMT=3 (reserved)", PRV_S, VA(2) + 16, CAUSE_STORE_PAGE, sd s3, 0(s1)
        ACCESS  "S load PMA page", PRV_S, VA(3), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "PMA page value", s3, 0x4040
        FAULT   "S load via non-leaf with PBMT", PRV_S, VA_L0B, CAUSE_LOAD_PAGE, ld s3, 0(s1)
        FAULT   "S fetch NC page? no X: page fault", PRV_S, VA(0), CAUSE_FETCH_PAGE, jalr ra, 0(s1)

        /* PBMTE clear: PBMT is reserved again */
        li      t0, MENVCFG_PBMTE
        csrc    menvcfg, t0
        sfence.vma
        FAULT   "PBMTE=0: S load NC page", PRV_S, VA(0), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        FAULT   "PBMTE=0: S load IO page", PRV_S, VA(1) + 8, CAUSE_LOAD_PAGE, ld s3, 0(s1)
        ACCESS  "PBMTE=0: S load PMA page", PRV_S, VA(3), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "PBMTE=0: PMA page value", s3, 0x4040

        /* Svnapot */
        ACCESS  "S load napot +0", PRV_S, VA(16), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "napot +0 value", s3, 0x5a5a0000
        ACCESS  "S load napot +0x3008", PRV_S, VA(16) + 0x3008, NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "napot +0x3008 value", s3, 0x5a5a3008
        ACCESS  "S load napot +0xfff8", PRV_S, VA(16) + 0xfff8, NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "napot +0xfff8 value", s3, 0x5a5afff8
        li      s3, 0x77
        ACCESS  "S store napot +0x5010", PRV_S, VA(16) + 0x5010, NO_TRAP, sd s3, 0(s1)
        ld      a4, napot + 0x5010
        CHECK_EQ "napot store reached its page", a4, 0x77
        FAULT   "S load napot PPN[3:0]=0100 (reserved)", PRV_S, VA(32), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        FAULT   "S load via non-leaf with N", PRV_S, VA_L0C, CAUSE_LOAD_PAGE, ld s3, 0(s1)
        /* A and D: the walk set them on the leaf it used */
        ld      a4, l0 + 19 * 8
        andi    a4, a4, PTE_A
        CHECK_EQ "napot leaf keeps A", a4, PTE_A

        /* VS-stage (G-stage Bare): the same tables through vsatp; PBMT
           needs menvcfg.PBMTE and henvcfg.PBMTE */
        USE_VSATP root, SATP_SV39, 0
        li      t0, MENVCFG_PBMTE
        csrs    menvcfg, t0
        csrc    henvcfg, t0
        hfence.vvma
        MODE_ACCESS "VS load NC page, henvcfg.PBMTE=0", 1, PRV_S, VA(0), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        MODE_ACCESS "VS load PMA page, henvcfg.PBMTE=0", 1, PRV_S, VA(3), NO_TRAP, ld s3, 0(s1)
        li      t0, MENVCFG_PBMTE
        csrs    henvcfg, t0
        csrr    a4, henvcfg
        srli    a4, a4, 62
        andi    a4, a4, 1
        CHECK_EQ "henvcfg.PBMTE writable", a4, 1
        hfence.vvma
        MODE_ACCESS "VS load NC page, both PBMTE", 1, PRV_S, VA(0), NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "VS NC page value", s3, 0x1010
        MODE_ACCESS "VS load PBMT=3, both PBMTE", 1, PRV_S, VA(2), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        MODE_ACCESS "VS load napot +0x3008", 1, PRV_S, VA(16) + 0x3008, NO_TRAP, ld s3, 0(s1)
        CHECK_EQ "VS napot value", s3, 0x5a5a3008
        /* menvcfg.PBMTE clear: henvcfg.PBMTE reads zero, VS-stage PBMT is
           reserved again */
        li      t0, MENVCFG_PBMTE
        csrc    menvcfg, t0
        csrr    a4, henvcfg
        srli    a4, a4, 62
        andi    a4, a4, 1
        CHECK_EQ "henvcfg.PBMTE reads 0 while menvcfg.PBMTE=0", a4, 0
        hfence.vvma
        MODE_ACCESS "VS load NC page, menvcfg.PBMTE=0", 1, PRV_S, VA(0), CAUSE_LOAD_PAGE, ld s3, 0(s1)
        csrw    vsatp, zero
        csrw    henvcfg, zero

        csrw    satp, zero
        sfence.vma
        TEST_END

        .data
        .balign 4096
root:   .skip 4096
l1:     .skip 4096
l0:     .skip 4096
l0b:    .skip 4096
l0c:    .skip 4096
pages:  .skip 4 * 4096
        .balign 65536
napot:  .skip 65536

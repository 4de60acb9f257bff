/* Zicbom and Zicboz (Unprivileged ISA, "Cache-Block Operations", CMO 1.0)
   with the enables of the Privileged Architecture (menvcfg 3.1.18, senvcfg
   4.1.10, henvcfg 8.2.5): CBIE (bits 5:4, 10 reserved), CBCFE (bit 6),
   CBZE (bit 7). Below M a clear menvcfg field makes the CBO illegal; with
   V=1 a clear henvcfg field makes it a virtual instruction; in U a clear
   senvcfg field makes it illegal, in VU virtual. CBO.ZERO zeroes the 64-byte
   block around rs1 (the block size Strata advertises) and needs store
   permission; CLEAN/FLUSH/INVAL need load or store permission and
   otherwise raise a store page fault (store guest-page fault) when
   translation permits no access. xtval is rs1.
   qemu-lacks: zicbom (QEMU 7.2 has no Zicbom or Zicboz: the self-checks
   against the specification are the oracle)
   strata-args: --cpu max */
#include "test.h"
#include "h.h"

/* rs1 = s2 (MODE_ACCESS sets s1 to its va, the cases copy it) */
#define CBO_INVAL .insn i 0x0f, 2, x0, s2, 0
#define CBO_CLEAN .insn i 0x0f, 2, x0, s2, 1
#define CBO_FLUSH .insn i 0x0f, 2, x0, s2, 2
#define CBO_ZERO  .insn i 0x0f, 2, x0, s2, 4
/* (A ';' would end the macro call that an instruction list is passed to:
   sequences are assembler macros.) */
.macro CBO_MGMT
        CBO_CLEAN
        CBO_FLUSH
        CBO_INVAL
.endm
.macro CBO_ALL4
        CBO_ZERO
        CBO_MGMT
.endm
/* s2 = s1 (MODE_ACCESS's va), then the CBO whose imm[11:0] is op */
.macro CBO_AT op
        mv      s2, s1
        .insn i 0x0f, 2, x0, s2, \op
.endm
#define MENVCFG 0x30a
#define SENVCFG 0x10a
#define HENVCFG 0x60a
#define CBIE_11 0x30
#define CBIE_01 0x10
#define CBCFE   0x40
#define CBZE    0x80
#define CB_ALL  (CBIE_11 | CBCFE | CBZE)
#define VA(i)   (0x40000000 + (i) * 0x1000)  /* l0[i] (S) and gl0[i] (G-stage) */
#define RW      (PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D)
#define GRWX    (RW|PTE_U)

/* a0 = the sum of the eight doublewords at sym + off */
.macro SUM8 sym, off
        la      t2, \sym + \off
        li      a0, 0
        li      t3, 8
1:      ld      t4, 0(t2)
        add     a0, a0, t4
        addi    t2, t2, 8
        addi    t3, t3, -1
        bnez    t3, 1b
.endm
/* fill 256 bytes at sym: doubleword i = 0x0101...01 * (i + 1) */
.macro FILL sym
        la      t2, \sym
        li      t3, 32
        li      t5, 0x0101010101010101
        mv      t4, t5
1:      sd      t4, 0(t2)
        add     t4, t4, t5
        addi    t2, t2, 8
        addi    t3, t3, -1
        bnez    t3, 1b
.endm

TEST_BEGIN(zicbo)
        H_INIT
        /* ---- the enable fields are writable, CBIE's 10 is not kept */
        li      t0, -1
        csrw    MENVCFG, t0
        csrr    s3, MENVCFG
        li      t0, 0xf0
        and     s3, s3, t0
        CHECK_EQ "menvcfg CBIE/CBCFE/CBZE writable", s3, 0xf0
        li      t0, -1
        csrw    SENVCFG, t0
        csrr    s3, SENVCFG
        andi    s3, s3, 0xf0
        CHECK_EQ "senvcfg CBIE/CBCFE/CBZE writable", s3, 0xf0
        li      t0, -1
        csrw    HENVCFG, t0
        csrr    s3, HENVCFG
        andi    s3, s3, 0xf0
        CHECK_EQ "henvcfg CBIE/CBCFE/CBZE writable", s3, 0xf0
        li      t0, 0x20
        csrw    MENVCFG, t0
        csrr    s3, MENVCFG
        srli    s3, s3, 4
        andi    s3, s3, 3
        addi    s3, s3, -2
        snez    s3, s3
        CHECK_EQ "menvcfg.CBIE=10 (reserved) reads as a legal value", s3, 1
        li      t0, CBIE_01
        csrw    MENVCFG, t0
        csrr    s3, MENVCFG
        andi    s3, s3, 0x30
        CHECK_EQ "menvcfg.CBIE=01 kept", s3, CBIE_01

        /* ---- CBO.ZERO in M: the aligned 64-byte block around rs1 */
        FILL    buf
        la      s2, buf + 64 + 13
        EXPECT_TRAP "M cbo.zero", NO_TRAP, CBO_ZERO
        SUM8    buf, 64
        CHECK_EQ "cbo.zero zeroed the block", a0, 0
        ld      s3, buf + 56
        CHECK_EQ "cbo.zero left the block before", s3, 0x0808080808080808
        ld      s3, buf + 128
        CHECK_EQ "cbo.zero left the block after", s3, 0x1111111111111111
        /* the management operations change no memory */
        FILL    buf
        la      s2, buf + 64 + 40
        EXPECT_TRAP "M cbo.clean, flush, inval", NO_TRAP, CBO_MGMT
        ld      s3, buf + 64 + 40
        CHECK_EQ "cbo.clean/flush/inval left memory alone", s3, 0x0e0e0e0e0e0e0e0e
        /* CBO.ZERO to no RAM: store access fault, mtval = rs1 */
        li      s2, 0x123
        EXPECT_TRAP "M cbo.zero outside RAM", CAUSE_STORE_ACCESS, CBO_ZERO
        TRAP_TVAL a0
        CHECK_EQ "cbo.zero outside RAM: mtval=rs1", a0, 0x123
        /* M ignores the enables */
        csrw    MENVCFG, zero
        la      s2, buf
        EXPECT_TRAP "M, menvcfg=0: all four", NO_TRAP, CBO_ALL4

        /* ---- enables below M (Bare translation: s1 = buf) */
        csrw    SENVCFG, zero
        csrw    HENVCFG, zero
#define ALLOWED(m, s, h, name, mode, virt, cause, insn) \
        li t0, m; csrw MENVCFG, t0; li t0, s; csrw SENVCFG, t0; li t0, h; csrw HENVCFG, t0; \
        la s2, buf; MODE_ACCESS name, virt, mode, 0, cause, insn
        ALLOWED(0, CB_ALL, CB_ALL, "HS menvcfg=0: cbo.zero illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_ZERO)
        ALLOWED(0, CB_ALL, CB_ALL, "HS menvcfg=0: cbo.clean illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_CLEAN)
        ALLOWED(0, CB_ALL, CB_ALL, "HS menvcfg=0: cbo.flush illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_FLUSH)
        ALLOWED(0, CB_ALL, CB_ALL, "HS menvcfg=0: cbo.inval illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_INVAL)
        ALLOWED(CBZE, 0, 0, "HS menvcfg=CBZE: cbo.zero runs", PRV_S, 0, NO_TRAP, CBO_ZERO)
        ALLOWED(CBZE, 0, 0, "HS menvcfg=CBZE: cbo.clean illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_CLEAN)
        ALLOWED(CBZE, 0, 0, "HS menvcfg=CBZE: cbo.inval illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_INVAL)
        ALLOWED(CBCFE, 0, 0, "HS menvcfg=CBCFE: cbo.clean runs", PRV_S, 0, NO_TRAP, CBO_CLEAN)
        ALLOWED(CBCFE, 0, 0, "HS menvcfg=CBCFE: cbo.flush runs", PRV_S, 0, NO_TRAP, CBO_FLUSH)
        ALLOWED(CBCFE, 0, 0, "HS menvcfg=CBCFE: cbo.zero illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_ZERO)
        ALLOWED(CBCFE, 0, 0, "HS menvcfg=CBCFE: cbo.inval illegal", PRV_S, 0, CAUSE_ILLEGAL, CBO_INVAL)
        ALLOWED(CBIE_01, 0, 0, "HS menvcfg.CBIE=01: cbo.inval runs (as a flush)", PRV_S, 0, NO_TRAP, CBO_INVAL)
        ALLOWED(CBIE_11, 0, 0, "HS menvcfg.CBIE=11: cbo.inval runs", PRV_S, 0, NO_TRAP, CBO_INVAL)
        ALLOWED(CB_ALL, 0, CB_ALL, "U senvcfg=0: cbo.zero illegal", PRV_U, 0, CAUSE_ILLEGAL, CBO_ZERO)
        ALLOWED(CB_ALL, 0, CB_ALL, "U senvcfg=0: cbo.clean illegal", PRV_U, 0, CAUSE_ILLEGAL, CBO_CLEAN)
        ALLOWED(CB_ALL, 0, CB_ALL, "U senvcfg=0: cbo.inval illegal", PRV_U, 0, CAUSE_ILLEGAL, CBO_INVAL)
        ALLOWED(CB_ALL, CB_ALL, 0, "U all set but henvcfg: all four run", PRV_U, 0, NO_TRAP, CBO_ALL4)
        ALLOWED(0, CB_ALL, CB_ALL, "U menvcfg=0: cbo.zero illegal", PRV_U, 0, CAUSE_ILLEGAL, CBO_ZERO)
        /* V=1: henvcfg, then (VU) senvcfg, give virtual instructions;
           menvcfg still an illegal one */
        ALLOWED(CB_ALL, CB_ALL, 0, "VS henvcfg=0: cbo.zero virtual", PRV_S, 1, CAUSE_VIRTUAL, CBO_ZERO)
        ALLOWED(CB_ALL, CB_ALL, 0, "VS henvcfg=0: cbo.clean virtual", PRV_S, 1, CAUSE_VIRTUAL, CBO_CLEAN)
        ALLOWED(CB_ALL, CB_ALL, 0, "VS henvcfg=0: cbo.inval virtual", PRV_S, 1, CAUSE_VIRTUAL, CBO_INVAL)
        ALLOWED(0, CB_ALL, CB_ALL, "VS menvcfg=0: cbo.zero illegal", PRV_S, 1, CAUSE_ILLEGAL, CBO_ZERO)
        ALLOWED(CB_ALL, 0, CB_ALL, "VS senvcfg=0: all four run", PRV_S, 1, NO_TRAP, CBO_ALL4)
        ALLOWED(CB_ALL, 0, CB_ALL, "VU senvcfg=0: cbo.zero virtual", PRV_U, 1, CAUSE_VIRTUAL, CBO_ZERO)
        ALLOWED(CB_ALL, 0, CB_ALL, "VU senvcfg=0: cbo.flush virtual", PRV_U, 1, CAUSE_VIRTUAL, CBO_FLUSH)
        ALLOWED(CB_ALL, CB_ALL, 0, "VU henvcfg=0: cbo.zero virtual", PRV_U, 1, CAUSE_VIRTUAL, CBO_ZERO)
        ALLOWED(0, CB_ALL, CB_ALL, "VU menvcfg=0: cbo.inval illegal", PRV_U, 1, CAUSE_ILLEGAL, CBO_INVAL)
        ALLOWED(CB_ALL, CB_ALL, CB_ALL, "VU all set: all four run", PRV_U, 1, NO_TRAP, CBO_ALL4)
        /* MPRV does not change whose enables apply: M with MPRV and MPP=U */
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, MSTATUS_MPRV
        csrs    mstatus, t0
        csrw    MENVCFG, zero
        la      s2, buf
        EXPECT_TRAP "M+MPRV(U), menvcfg=0: cbo.zero runs", NO_TRAP, CBO_ZERO
        li      t0, MSTATUS_MPRV
        csrc    mstatus, t0

        /* ---- translation (Sv39 from HS): cbo.zero needs W; the others R or W */
        li      t0, CB_ALL
        csrw    MENVCFG, t0
        csrw    SENVCFG, t0
        csrw    HENVCFG, t0
        SETPTE_PA root, 2, 0x80000000, RW
        SETPTE  root, 1, l1, PTE_V
        SETPTE  l1, 0, l0, PTE_V
        SETPTE  l0, 0, pages + 0 * 4096, PTE_V|PTE_R|PTE_A            /* read-only */
        SETPTE  l0, 2, pages + 2 * 4096, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
        la      t5, root
        srli    t5, t5, 12
        li      t4, 8 << 60
        or      t5, t5, t4
        csrw    satp, t5
        sfence.vma
        FILL    pages + 2 * 4096
        MODE_ACCESS "S cbo.zero RW page", 0, PRV_S, VA(2) + 0x47, NO_TRAP, CBO_AT 4
        SUM8    pages + 2 * 4096, 64
        CHECK_EQ "S cbo.zero zeroed the physical block", a0, 0
        ld      s3, pages + 2 * 4096 + 128
        CHECK_EQ "S cbo.zero left the next block", s3, 0x1111111111111111
        MODE_ACCESS "S cbo.zero R page: store page fault", 0, PRV_S, VA(0) + 0x21, CAUSE_STORE_PAGE, CBO_AT 4
        TRAP_TVAL a0
        sub     a0, a0, s1
        CHECK_EQ "S cbo.zero R page: mtval=rs1", a0, 0
        MODE_ACCESS "S cbo.clean R page runs", 0, PRV_S, VA(0) + 0x21, NO_TRAP, CBO_AT 1
        MODE_ACCESS "S cbo.inval R page runs", 0, PRV_S, VA(0), NO_TRAP, CBO_AT 0
        MODE_ACCESS "S cbo.flush invalid PTE: store page fault", 0, PRV_S, VA(1) + 0x99, CAUSE_STORE_PAGE, CBO_AT 2
        TRAP_TVAL a0
        sub     a0, a0, s1
        CHECK_EQ "S cbo.flush invalid PTE: mtval=rs1", a0, 0
        MODE_ACCESS "S cbo.zero invalid PTE: store page fault", 0, PRV_S, VA(1), CAUSE_STORE_PAGE, CBO_AT 4
        MODE_ACCESS "S cbo.inval invalid PTE: store page fault", 0, PRV_S, VA(1) + 8, CAUSE_STORE_PAGE, CBO_AT 0
        /* Zicbop: PREFETCH.R is ORI x0 (imm[4:0] = 1), a HINT: no fault */
        MODE_ACCESS "S prefetch.r invalid PTE: no trap", 0, PRV_S, VA(1), NO_TRAP, ori x0, s1, 1
        csrw    satp, zero
        sfence.vma

        /* ---- G-stage (Sv39x4, vsatp Bare): guest-page faults */
        SETPTE_PA groot, 2, 0x80000000, GRWX
        SETPTE  groot, 1, gl1, PTE_V
        SETPTE  gl1, 0, gl0, PTE_V
        SETPTE  gl0, 0, pages + 0 * 4096, PTE_V|PTE_R|PTE_U|PTE_A     /* read-only */
        SETPTE  gl0, 2, pages + 2 * 4096, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D
        USE_HGATP groot, HGATP_SV39X4, 1
        FILL    pages + 2 * 4096
        MODE_ACCESS "VS cbo.zero G-stage RW page", 1, PRV_S, VA(2) + 0xc1, NO_TRAP, CBO_AT 4
        SUM8    pages + 2 * 4096, 192
        CHECK_EQ "VS cbo.zero zeroed the physical block", a0, 0
        MODE_ACCESS "VS cbo.zero G-stage R page: store guest-page fault", 1, PRV_S, VA(0) + 0x30, CAUSE_STORE_GPF, CBO_AT 4
        TRAP_TVAL a0
        sub     a0, a0, s1
        CHECK_EQ "VS cbo.zero GPF: mtval=rs1", a0, 0
        TRAP_MTVAL2 a0
        li      t0, (VA(0) + 0x30) >> 2
        sub     a0, a0, t0
        CHECK_EQ "VS cbo.zero GPF: mtval2=GPA>>2", a0, 0
        TRAP_MGVA a0
        CHECK_EQ "VS cbo.zero GPF: GVA=1", a0, 1
        MODE_ACCESS "VS cbo.clean G-stage R page runs", 1, PRV_S, VA(0) + 0x30, NO_TRAP, CBO_AT 1
        MODE_ACCESS "VS cbo.flush G-stage invalid: store guest-page fault", 1, PRV_S, VA(1) + 4, CAUSE_STORE_GPF, CBO_AT 2
        MODE_ACCESS "VU cbo.inval G-stage invalid: store guest-page fault", 1, PRV_U, VA(1), CAUSE_STORE_GPF, CBO_AT 0
        csrw    hgatp, zero
        hfence.gvma
        TEST_END

        .data
        .balign 64
buf:    .skip 256
        .balign 4096
root:   .skip 4096
l1:     .skip 4096
l0:     .skip 4096
gl1:    .skip 4096
gl0:    .skip 4096
pages:  .skip 3 * 4096
        .bss
        .balign 16384
groot:  .skip 16384

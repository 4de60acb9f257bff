/*
 * Strata conformance suite: macros shared by every test.
 * Include from a .S file (preprocessed by cpp).
 *
 * Register conventions inside tests:
 *   - CHECK_xx and RECORD clobber ra, t0, t1, a0-a3.  Keep live values in s-registers
 *     or t2-t6/a4-a5 across them.
 *   - RETURN_M clobbers a6 and a7.
 *   - sp points at a 16 KiB M-mode stack; gp/tp are unused by the runtime.
 *   - CHECK_xx and RECORD must run in M-mode (the signature is written physically).
 */
#ifndef STRATA_TEST_H
#define STRATA_TEST_H

#define RT_MAGIC      0x5354524d   /* "STRM": ecall that returns to M-mode   */
#define RT_MAGIC_FWD  0x53545246   /* same, forwarded by the S-mode handler  */
#define NO_TRAP       0xbad

#define MSTATUS_SIE   (1 << 1)
#define MSTATUS_MIE   (1 << 3)
#define MSTATUS_SPIE  (1 << 5)
#define MSTATUS_UBE   (1 << 6)
#define MSTATUS_MPIE  (1 << 7)
#define MSTATUS_SPP   (1 << 8)
#define MSTATUS_MPP   (3 << 11)
#define MSTATUS_FS    (3 << 13)
#define MSTATUS_MPRV  (1 << 17)
#define MSTATUS_SUM   (1 << 18)
#define MSTATUS_MXR   (1 << 19)
#define MSTATUS_TVM   (1 << 20)
#define MSTATUS_TW    (1 << 21)
#define MSTATUS_TSR   (1 << 22)

#define PRV_U 0
#define PRV_S 1
#define PRV_M 3

#define CAUSE_MISALIGNED_FETCH  0
#define CAUSE_FETCH_ACCESS      1
#define CAUSE_ILLEGAL           2
#define CAUSE_BREAKPOINT        3
#define CAUSE_MISALIGNED_LOAD   4
#define CAUSE_LOAD_ACCESS       5
#define CAUSE_MISALIGNED_STORE  6
#define CAUSE_STORE_ACCESS      7
#define CAUSE_ECALL_U           8
#define CAUSE_ECALL_S           9
#define CAUSE_ECALL_M           11
#define CAUSE_FETCH_PAGE        12
#define CAUSE_LOAD_PAGE         13
#define CAUSE_STORE_PAGE        15

/* PTE bits */
#define PTE_V (1 << 0)
#define PTE_R (1 << 1)
#define PTE_W (1 << 2)
#define PTE_X (1 << 3)
#define PTE_U (1 << 4)
#define PTE_G (1 << 5)
#define PTE_A (1 << 6)
#define PTE_D (1 << 7)

#define SATP_SV39 (8 << 60)
#define SATP_SV48 (9 << 60)

/* ---- test skeleton -------------------------------------------------- */

/* TEST_BEGIN(name): name is a bare word; becomes the header of the dump. */
#define TEST_BEGIN(name)                        \
        .section .rodata.testname, "a";         \
        .globl rt_test_name;                    \
rt_test_name: .asciz #name;                     \
        .text;                                  \
        .globl test_main;                       \
        .balign 4;                              \
test_main:

#define TEST_END  j rt_finish

/* ---- gas macros ----------------------------------------------------- */
#ifdef __ASSEMBLER__
.macro RT_NAME name
        .pushsection .rodata.names, "a"
.Lrtname\@: .asciz "\name"
        .popsection
        la      a2, .Lrtname\@
.endm

/* CHECK_EQ "name", reg, expected: record reg in the signature and self-check it. */
.macro CHECK_EQ name, reg, exp
        mv      a0, \reg
        li      a1, \exp
        RT_NAME "\name"
        li      a3, 1
        call    rt_check
.endm

/* RECORD "name", reg: record reg in the signature without a self-check
   (implementation-defined values; still compared between machines). */
.macro RECORD name, reg
        mv      a0, \reg
        li      a1, 0
        RT_NAME "\name"
        li      a3, 0
        call    rt_check
.endm

/* CHECK_F "name", freg, bits: compare raw 64-bit contents of an FP register. */
.macro CHECK_F name, freg, exp
        fmv.x.d a0, \freg
        li      a1, \exp
        RT_NAME "\name"
        li      a3, 1
        call    rt_check
.endm

/* CHECK_FLAGS "name", expected: check (and clear) fflags. */
.macro CHECK_FLAGS name, exp
        csrrw   a0, fflags, zero
        li      a1, \exp
        RT_NAME "\name"
        li      a3, 1
        call    rt_check
.endm

/* Clear the M-mode and S-mode trap records. */
.macro CLEAR_TRAP
        call    rt_clear_trap
.endm

/* Arm the M/S handlers to resume at label after the next trap. */
.macro SET_RESUME label
        la      t0, \label
        sd      t0, rt_resume, t1
.endm
.macro DISARM
        sd      zero, rt_resume, t1
.endm

/* Load a field of the last M-mode trap into reg. */
.macro TRAP_CAUSE reg
        ld      \reg, rt_mtrap
.endm
.macro TRAP_EPC reg
        ld      \reg, rt_mtrap+8
.endm
.macro TRAP_TVAL reg
        ld      \reg, rt_mtrap+16
.endm
.macro TRAP_PRV reg
        ld      \reg, rt_mtrap+24
.endm
.macro TRAP_COUNT reg
        ld      \reg, rt_mtrap+32
.endm
.macro STRAP_CAUSE reg
        ld      \reg, rt_strap
.endm
.macro STRAP_EPC reg
        ld      \reg, rt_strap+8
.endm
.macro STRAP_TVAL reg
        ld      \reg, rt_strap+16
.endm
.macro STRAP_PRV reg
        ld      \reg, rt_strap+24
.endm

/* Run the instruction(s) expecting a trap into M-mode; check mcause.
   Resumes after the instruction(s). */
.macro EXPECT_TRAP name, cause, insn:vararg
        CLEAR_TRAP
        SET_RESUME .Lres\@
        \insn
.Lres\@:
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name cause", a0, \cause
.endm

/* Switch privilege: the code after GOTO_MODE runs in mode (PRV_U or PRV_S),
   at the same (identity-mapped when paging) addresses.  RETURN_M goes back to
   M-mode right after itself; all registers except a6/a7 are preserved.
   RETURN_M traps are not recorded in rt_mtrap/rt_strap nor counted, and
   RETURN_M always comes back with mstatus.MIE=0. */
.macro GOTO_MODE mode
        li      t0, MSTATUS_MPP
        csrc    mstatus, t0
        li      t0, (\mode << 11)
        csrs    mstatus, t0
        la      t0, .Lgm\@
        csrw    mepc, t0
        mret
.Lgm\@:
.endm
.macro RETURN_M
        li      a7, RT_MAGIC
        ecall
.endm

/* ACCESS name, mode, va, cause, insn: set s1 = va, run insn in mode
   (PRV_S/PRV_U/PRV_M), then check the M-mode trap cause (NO_TRAP if none). */
.macro ACCESS name, mode, va, cause, insn:vararg
        CLEAR_TRAP
        li      s1, \va
        SET_RESUME .Lr\@
        GOTO_MODE \mode
        \insn
.Lr\@:  RETURN_M
        DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name", a0, \cause
.endm
/* Same and also check mtval == s1 (faulting VA) */
.macro FAULT name, mode, va, cause, insn:vararg
        ACCESS "\name", \mode, \va, \cause, \insn
        TRAP_TVAL a0
        sub     a0, a0, s1
        CHECK_EQ "\name: mtval=va", a0, 0
.endm

/* Arithmetic helpers: rd = op(v1, v2) */
.macro TRR op, exp, v1, v2
        li      s1, \v1
        li      s2, \v2
        \op     s3, s1, s2
        CHECK_EQ "\op(\v1,\v2)", s3, \exp
.endm
.macro TRI op, exp, v1, imm
        li      s1, \v1
        \op     s3, s1, \imm
        CHECK_EQ "\op(\v1,\imm)", s3, \exp
.endm
.macro TR1 op, exp, v1
        li      s1, \v1
        \op     s3, s1
        CHECK_EQ "\op(\v1)", s3, \exp
.endm
#endif /* __ASSEMBLER__ */
#endif

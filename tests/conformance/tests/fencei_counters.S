/* Zifencei self-modifying code (Unprivileged 20191213 ch. 3) and counter
   access control mcounteren/scounteren (Privileged 3.1.11, 4.1.5). */
#include "test.h"

/* encodings written at run time */
#define ADDI_S5_1   0x00100a93   /* addi s5, x0, 1 */
#define ADDI_S5_2   0x00200a93   /* addi s5, x0, 2 */

TEST_BEGIN(fencei_counters)
        /* patch a 4-byte instruction in a code buffer, fence.i, run it */
        la      s1, codebuf
        li      t2, ADDI_S5_1
        sw      t2, 0(s1)
        li      t2, 0x00008067           /* jalr x0, 0(ra) */
        sw      t2, 4(s1)
        fence.i
        li      s5, 0
        jalr    ra, 0(s1)
        CHECK_EQ "run generated code", s5, 1
        li      t2, ADDI_S5_2
        sw      t2, 0(s1)
        fence.i
        jalr    ra, 0(s1)
        CHECK_EQ "patched code after fence.i", s5, 2
        /* patch to a compressed instruction + c.jr ra */
        li      t2, 0x80824a91           /* c.li s5,4 ; c.jr ra */
        sw      t2, 0(s1)
        fence.i
        jalr    ra, 0(s1)
        CHECK_EQ "patched compressed code", s5, 4
        /* patch the very next instruction in the running stream */
        la      s2, 1f
        li      t2, ADDI_S5_2
        sw      t2, 0(s2)
        fence.i
        .option push
        .option norvc
1:      addi    s5, x0, 7               /* replaced by addi s5, x0, 2 */
        .option pop
        CHECK_EQ "patched inline instruction", s5, 2

        /* counters from U/S: mcounteren gates S and U, scounteren gates U */
        csrw    mcounteren, zero
        csrw    scounteren, zero
        CLEAR_TRAP
        GOTO_MODE PRV_S
        SET_RESUME 2f
        csrr    s3, cycle
2:      RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "S cycle, mcounteren.CY=0: illegal", s3, CAUSE_ILLEGAL
        li      t2, 7
        csrw    mcounteren, t2
        csrr    s3, mcounteren
        andi    s3, s3, 7
        CHECK_EQ "mcounteren CY/TM/IR writable", s3, 7
        CLEAR_TRAP
        GOTO_MODE PRV_S
        csrr    s3, cycle
        csrr    s3, instret
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "S cycle/instret with mcounteren=7", s3, 0
        CLEAR_TRAP
        GOTO_MODE PRV_U
        SET_RESUME 3f
        csrr    s3, instret
3:      RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "U instret, scounteren.IR=0: illegal", s3, CAUSE_ILLEGAL
        li      t2, 7
        csrw    scounteren, t2
        CLEAR_TRAP
        GOTO_MODE PRV_U
        csrr    s3, cycle
        csrr    s3, instret
        RETURN_M
        TRAP_COUNT s3
        CHECK_EQ "U cycle/instret with both enables", s3, 0
        csrw    mcounteren, zero
        CLEAR_TRAP
        GOTO_MODE PRV_U
        SET_RESUME 4f
        csrr    s3, cycle
4:      RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "U cycle, mcounteren.CY=0 scounteren=7: illegal", s3, CAUSE_ILLEGAL
        /* hpmcounter3 (CSR 0xc03) is gated by mcounteren bit 3 */
        csrw    mcounteren, zero
        CLEAR_TRAP
        GOTO_MODE PRV_S
        SET_RESUME 5f
        csrr    s3, hpmcounter3
5:      RETURN_M
        TRAP_CAUSE s3
        CHECK_EQ "S hpmcounter3 with mcounteren.HPM3=0: illegal", s3, CAUSE_ILLEGAL
        /* M-mode: mhpmcounter3 exists (may be read-only zero) */
        CLEAR_TRAP
        csrr    s3, mhpmcounter3
        TRAP_COUNT s3
        CHECK_EQ "mhpmcounter3 readable in M", s3, 0
        csrw    mcounteren, zero
        csrw    scounteren, zero
        /* mcountinhibit.IR freezes minstret (WARL; accept unsupported) */
        li      t2, 4
        csrw    mcountinhibit, t2
        csrr    s3, mcountinhibit
        andi    s3, s3, 4
        beqz    s3, 6f
        csrr    s1, minstret
        nop
        nop
        csrr    s2, minstret
        sub     s3, s2, s1
        CHECK_EQ "mcountinhibit.IR freezes minstret", s3, 0
        j       7f
6:      RECORD  "mcountinhibit.IR not writable", s3
7:      csrw    mcountinhibit, zero
        csrr    s1, minstret
        nop
        csrr    s2, minstret
        sltu    s3, s1, s2
        CHECK_EQ "minstret runs again", s3, 1
        TEST_END

        .data
        .balign 64
codebuf: .skip 64

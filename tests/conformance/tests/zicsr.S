/* Zicsr (Unprivileged 20191213 ch. 9) and machine CSR WARL/read-only rules
   (Privileged 20211203 ch. 2, 3). */
#include "test.h"

/* Expect an illegal-instruction trap from insn; check cause and that mtval
   is either 0 or the instruction bits (Priv 3.1.16 allows both; normalized). */
.macro ILLEGAL name, insn:vararg
        CLEAR_TRAP
        SET_RESUME .Li\@
.Lins\@: \insn
.Li\@:  DISARM
        TRAP_CAUSE a0
        CHECK_EQ "\name: illegal", a0, CAUSE_ILLEGAL
.endm

TEST_BEGIN(zicsr)
        /* csrrw/csrrs/csrrc return the old value */
        li      s1, 0x1234
        csrw    mscratch, s1
        li      s2, 0xff00
        csrrw   s3, mscratch, s2
        CHECK_EQ "csrrw old", s3, 0x1234
        csrr    s3, mscratch
        CHECK_EQ "csrrw new", s3, 0xff00
        li      s2, 0x0ff0
        csrrs   s3, mscratch, s2
        CHECK_EQ "csrrs old", s3, 0xff00
        csrr    s3, mscratch
        CHECK_EQ "csrrs sets bits", s3, 0xfff0
        li      s2, 0x00f0
        csrrc   s3, mscratch, s2
        CHECK_EQ "csrrc old", s3, 0xfff0
        csrr    s3, mscratch
        CHECK_EQ "csrrc clears bits", s3, 0xff00
        csrrwi  s3, mscratch, 0x1f
        CHECK_EQ "csrrwi old", s3, 0xff00
        csrrsi  s3, mscratch, 0x0
        CHECK_EQ "csrrsi 0 reads", s3, 0x1f
        csrrci  s3, mscratch, 0x3
        csrr    s3, mscratch
        CHECK_EQ "csrrci clears", s3, 0x1c
        csrrsi  s3, mscratch, 0x10
        csrr    s3, mscratch
        CHECK_EQ "csrrsi sets (uimm zero-extended)", s3, 0x1c
        li      s1, -1
        csrw    mscratch, s1
        csrr    s3, mscratch
        CHECK_EQ "mscratch full 64 bits", s3, -1
        /* rd=rs1 */
        li      s1, 7
        csrw    mscratch, s1
        li      s1, 9
        csrrw   s1, mscratch, s1
        CHECK_EQ "csrrw rd==rs1 old", s1, 7
        csrr    s3, mscratch
        CHECK_EQ "csrrw rd==rs1 new", s3, 9
        la      t2, rt_msave            /* the M handler needs mscratch back */
        csrw    mscratch, t2

        /* read-only CSRs: reads fine; csrrs/csrrc with rs1=x0 (or uimm=0)
           do not write and so do not trap; any write traps (9.1, Priv 2.1) */
        csrr    s3, mhartid
        CHECK_EQ "mhartid = 0", s3, 0
        CLEAR_TRAP
        csrrs   s3, mvendorid, x0
        csrrc   s3, marchid, x0
        csrrsi  s3, mimpid, 0
        csrrci  s3, mhartid, 0
        TRAP_COUNT s3
        CHECK_EQ "ro csr rs1=x0/uimm=0 no trap", s3, 0
        li      s1, 1
        ILLEGAL "csrrw mhartid", csrrw s3, mhartid, s1
        ILLEGAL "csrrw x0 mvendorid (rd=x0 still writes)", csrrw x0, mvendorid, s1
        ILLEGAL "csrrs mhartid rs1!=0", csrrs s3, mhartid, s1
        /* QEMU DEPARTURE: Unprivileged 9.1: with rs1 != x0 holding zero,
           csrrs/csrrc still attempt the write, so on a read-only CSR they
           raise illegal instruction (Priv 2.1).  QEMU 7.2 does not trap. */
        li      s1, 0
        ILLEGAL "csrrc mhartid rs1=reg holding 0", csrrc s3, mhartid, s1
        ILLEGAL "csrrwi mimpid 0", csrrwi s3, mimpid, 0
        ILLEGAL "csrrsi mhartid 1", csrrsi s3, mhartid, 1
        ILLEGAL "csrw cycle (user ro)", csrw cycle, s1
        ILLEGAL "csrw instret (user ro)", csrw instret, s1

        /* nonexistent CSR 0x0ff: illegal, mtval = instruction bits or 0 */
        CLEAR_TRAP
        SET_RESUME 1f
        csrr    s3, 0x0ff
1:      DISARM
        TRAP_CAUSE s3
        CHECK_EQ "csrr 0x0ff illegal", s3, CAUSE_ILLEGAL
        TRAP_TVAL s3
        li      s4, 0x0ff029f3          /* csrrs s3(x19), 0x0ff, x0 */
        CHECK_EQ "csrr 0x0ff mtval = insn bits", s3, 0x0ff029f3
        CLEAR_TRAP
        SET_RESUME 2f
        csrw    0x8ff+0x0, s1           /* custom U r/w, not implemented */
2:      DISARM
        TRAP_CAUSE s3
        RECORD "csrw 0x8ff (custom) cause", s3
        /* mepc of the trap is the csr instruction itself */
        CLEAR_TRAP
        SET_RESUME 4f
3:      csrr    s3, 0x3ff
4:      DISARM
        TRAP_EPC s3
        la      s4, 3b
        sub     s3, s3, s4
        CHECK_EQ "csr trap mepc", s3, 0

        /* misa: RV64 (MXL=2), IMAFDC + S + U present (Priv 3.1.1) */
        csrr    s1, misa
        srli    s3, s1, 62
        CHECK_EQ "misa.MXL=2", s3, 2
        li      t2, (1<<0)|(1<<2)|(1<<3)|(1<<5)|(1<<8)|(1<<12)|(1<<18)|(1<<20)
        and     s3, s1, t2
        CHECK_EQ "misa has A C D F I M S U", s3, (1<<0)|(1<<2)|(1<<3)|(1<<5)|(1<<8)|(1<<12)|(1<<18)|(1<<20)
        csrw    misa, s1                 /* writing the same value changes nothing */
        csrr    s3, misa
        sub     s3, s3, s1
        CHECK_EQ "misa rewrite unchanged", s3, 0

        /* mstatus: UXL/SXL = 2 on RV64; MPP WARL (2 is not legal).
           QEMU DEPARTURE: Priv 3.1.6.1 says xPP can hold only x and the
           implemented lower modes; QEMU 7.2 stores MPP=2 as written. */
        csrr    s1, mstatus
        srli    s3, s1, 32
        andi    s3, s3, 0xf
        CHECK_EQ "mstatus.UXL=SXL=2", s3, 0xa
        li      t2, MSTATUS_MPP
        csrc    mstatus, t2
        li      t2, (2 << 11)
        csrs    mstatus, t2
        csrr    s3, mstatus
        srli    s3, s3, 11
        andi    s3, s3, 3
        li      s4, 0
        li      t2, 2
        beq     s3, t2, 5f
        li      s4, 1
5:      CHECK_EQ "mstatus.MPP never reads 2", s4, 1
        li      t2, MSTATUS_MPP
        csrs    mstatus, t2
        csrr    s3, mstatus
        srli    s3, s3, 11
        andi    s3, s3, 3
        CHECK_EQ "mstatus.MPP=M", s3, 3
        /* SD summarizes FS=Dirty (Priv 3.1.6.6) */
        li      t2, MSTATUS_FS
        csrs    mstatus, t2
        csrr    s3, mstatus
        srli    s3, s3, 63
        CHECK_EQ "FS=3 -> SD=1", s3, 1
        li      t2, MSTATUS_FS
        csrc    mstatus, t2
        li      t2, (1 << 13)
        csrs    mstatus, t2
        csrr    s3, mstatus
        srli    s3, s3, 63
        CHECK_EQ "FS=1 -> SD=0", s3, 0
        /* sstatus is a view: MPP/MIE invisible; SIE/SPP shared */
        li      t2, MSTATUS_MPP | MSTATUS_MIE | MSTATUS_MPIE
        csrs    mstatus, t2
        csrr    s3, sstatus
        li      t2, MSTATUS_MPP | MSTATUS_MIE | MSTATUS_MPIE
        and     s3, s3, t2
        CHECK_EQ "sstatus hides M fields", s3, 0
        li      t2, MSTATUS_MIE | MSTATUS_MPIE
        csrc    mstatus, t2
        li      t2, MSTATUS_SPP | MSTATUS_SIE | MSTATUS_SUM
        csrs    sstatus, t2
        csrr    s3, mstatus
        and     s3, s3, t2
        CHECK_EQ "sstatus writes reach mstatus", s3, MSTATUS_SPP | MSTATUS_SIE | MSTATUS_SUM
        csrc    sstatus, t2
        csrr    s3, mstatus
        and     s3, s3, t2
        CHECK_EQ "sstatus clears reach mstatus", s3, 0
        li      t2, MSTATUS_MPP
        csrw    sstatus, zero
        csrr    s3, mstatus
        and     s3, s3, t2
        CHECK_EQ "sstatus write keeps MPP", s3, MSTATUS_MPP

        /* mepc: bit 0 always zero (IALIGN=16 with C).
           QEMU DEPARTURE: Priv 3.1.14 / 4.1.7 "mepc[0]/sepc[0] is always
           zero"; QEMU 7.2 reads back the written bit 0. */
        li      s1, 0x80000003
        csrw    mepc, s1
        csrr    s3, mepc
        CHECK_EQ "mepc[0]=0", s3, 0x80000002
        li      s1, 0x80000003
        csrw    sepc, s1
        csrr    s3, sepc
        CHECK_EQ "sepc[0]=0", s3, 0x80000002
        /* medeleg[11] (ecall from M) should be read-only zero (Priv 3.1.8:
           "medeleg[11] ... hardwired to zero").  QEMU DEPARTURE: QEMU 7.2
           lets it be set. */
        li      s1, -1
        csrw    medeleg, s1
        csrr    s3, medeleg
        srli    s3, s3, 11
        andi    s3, s3, 1
        CHECK_EQ "medeleg[11]=0", s3, 0
        csrr    s3, medeleg
        li      t2, (1<<8)|(1<<2)|(1<<12)|(1<<13)|(1<<15)
        and     s3, s3, t2
        CHECK_EQ "medeleg delegable bits", s3, (1<<8)|(1<<2)|(1<<12)|(1<<13)|(1<<15)
        csrw    medeleg, zero
        /* mscratch/sscratch independent */
        li      s1, 0x55
        csrw    sscratch, s1
        li      s1, 0xaa
        csrw    mscratch, s1
        csrr    s3, sscratch
        CHECK_EQ "sscratch independent", s3, 0x55
        la      t2, rt_ssave
        csrw    sscratch, t2
        la      t2, rt_msave
        csrw    mscratch, t2
        /* satp: writing an unsupported MODE leaves satp unchanged (Priv 4.1.11) */
        li      s1, (8 << 60) | 0x80000
        csrw    satp, s1
        li      s2, (15 << 60) | 0x12345
        csrw    satp, s2
        csrr    s3, satp
        CHECK_EQ "satp unsupported mode ignored", s3, (8 << 60) | 0x80000
        csrw    satp, zero
        csrr    s3, satp
        CHECK_EQ "satp bare", s3, 0

        /* QEMU DEPARTURE: without -icount QEMU 7.2 derives minstret from
           host ticks, so a read right after a write is far beyond the few
           instructions retired (Priv 3.1.11: minstret counts instructions).
           counters: mcycle/minstret writable; cycle/instret shadow them;
           only relations are recorded (values are not deterministic) */
        li      s1, (1 << 40)
        csrw    minstret, s1
        csrr    s3, minstret
        sub     s3, s3, s1
        sltiu   s3, s3, 100
        CHECK_EQ "minstret written (close to 2^40)", s3, 1
        csrr    s3, instret
        srli    s3, s3, 40
        CHECK_EQ "instret shadows minstret", s3, 1
        li      s1, (1 << 41)
        csrw    mcycle, s1
        csrr    s3, mcycle
        srli    s3, s3, 41
        CHECK_EQ "mcycle written", s3, 1
        csrr    s3, cycle
        srli    s3, s3, 41
        CHECK_EQ "cycle shadows mcycle", s3, 1
        csrr    s1, instret
        nop
        nop
        nop
        csrr    s2, instret
        sltu    s3, s1, s2
        CHECK_EQ "instret increases", s3, 1
        csrr    s1, time
        li      t2, 20000
6:      addi    t2, t2, -1
        bnez    t2, 6b
        csrr    s2, time
        sltu    s3, s2, s1
        CHECK_EQ "time does not go back", s3, 0
        /* mcountinhibit.IR stops minstret (if implemented: WARL; record) */
        TEST_END

/* RV64I control transfer (2.5) and loads/stores (2.6, 5.3). */
#include "test.h"

.macro TBR op, taken, v1, v2
        li      s1, \v1
        li      s2, \v2
        li      s3, 0
        \op     s1, s2, .Lt\@
        j       .Ld\@
.Lt\@:  li      s3, 1
.Ld\@:  CHECK_EQ "\op(\v1,\v2) taken", s3, \taken
.endm

.macro TLD op, exp, off
        la      s1, data + 16
        \op     s3, \off(s1)
        CHECK_EQ "\op(data+16+\off)", s3, \exp
.endm

TEST_BEGIN(rv64i_ctrl_mem)
        TBR beq, 1, 5, 5
        TBR beq, 0, 5, 6
        TBR bne, 1, 0, 0x8000000000000000
        TBR bne, 0, -1, -1
        TBR blt, 1, -1, 0
        TBR blt, 0, 0, -1
        TBR blt, 0, 7, 7
        TBR blt, 1, 0x8000000000000000, 0x7fffffffffffffff
        TBR bge, 1, 7, 7
        TBR bge, 1, 0, -1
        TBR bge, 0, -2, -1
        TBR bltu, 0, -1, 0
        TBR bltu, 1, 0, -1
        TBR bltu, 0, 3, 3
        TBR bgeu, 1, -1, 0
        TBR bgeu, 0, 0x7fffffffffffffff, 0x8000000000000000
        TBR bgeu, 1, 3, 3

        /* backward branch loop: sum 1..10 */
        li      s1, 10
        li      s3, 0
1:      add     s3, s3, s1
        addi    s1, s1, -1
        bnez    s1, 1b
        CHECK_EQ "backward bnez loop", s3, 55

        /* jal: link = pc+4 (2.5) */
        jal     s4, 2f
3:      j       4f
2:      la      s5, 3b
        sub     s3, s4, s5
        CHECK_EQ "jal link = pc+4", s3, 0
4:
        /* jal x0 does not link */
        li      s4, 0
        jal     x0, 5f
        li      s4, 1
5:      CHECK_EQ "j skips", s4, 0

        /* jalr: target = (rs1+imm) & ~1, link = pc+4, rd==rs1 uses old rs1 */
        la      s1, 6f
        addi    s1, s1, -3              /* 6f - 3 */
        jalr    s4, 4(s1)               /* (6f+1) & ~1 = 6f */
7:      li      s3, 0xdead
        j       8f
6:      la      s5, 7b
        sub     s3, s4, s5
8:      CHECK_EQ "jalr clears bit0 and links", s3, 0
        la      s1, 9f
        jalr    s1, 0(s1)
10:     li      s3, 0xdead
        j       11f
9:      la      s5, 10b
        sub     s3, s1, s5
11:     CHECK_EQ "jalr rd==rs1", s3, 0
        la      s1, 12f
        li      t0, 2048
        add     s1, s1, t0
        jalr    x0, -2048(s1)
        li      s3, 0xdead
        j       13f
12:     li      s3, 0
13:     CHECK_EQ "jalr negative imm", s3, 0

        /* loads: data+16 = 80 7f ff 01 | 00 80 ff ff | ... */
        TLD lb,  0xffffffffffffff80, 0
        TLD lb,  0x7f, 1
        TLD lbu, 0x80, 0
        TLD lbu, 0xff, 2
        TLD lh,  0x7f80, 0
        TLD lh,  0x01ff, 2
        TLD lh,  0xffffffffffff8000, 4
        TLD lhu, 0x8000, 4
        TLD lhu, 0xffff, 6
        TLD lw,  0x01ff7f80, 0
        TLD lw,  0xffffffffffff8000, 4
        TLD lwu, 0xffff8000, 4
        TLD lwu, 0x01ff7f80, 0
        TLD ld,  0xffff800001ff7f80, 0
        TLD ld,  0x0123456789abcdef, -8
        TLD lb,  0xffffffffffffffef, -8
        TLD lwu, 0x01234567, -4
        TLD lh,  0x0123, -2

        /* stores write exactly their width */
        la      s1, scratch
        li      s2, -1
        sd      s2, 0(s1)
        li      s2, 0x1122334455667788
        sb      s2, 0(s1)
        ld      s3, 0(s1)
        CHECK_EQ "sb writes 1 byte", s3, 0xffffffffffffff88
        sh      s2, 2(s1)
        ld      s3, 0(s1)
        CHECK_EQ "sh writes 2 bytes", s3, 0xffffffff7788ff88
        sw      s2, 4(s1)
        ld      s3, 0(s1)
        CHECK_EQ "sw writes 4 bytes", s3, 0x556677887788ff88
        sd      s2, 8(s1)
        ld      s3, 8(s1)
        CHECK_EQ "sd/ld roundtrip", s3, 0x1122334455667788
        addi    s4, s1, 16
        sw      s2, -4(s4)
        lw      s3, 12(s1)
        CHECK_EQ "sw negative offset", s3, 0x55667788
        /* load to x0 has no architectural effect */
        lw      x0, 0(s1)
        CHECK_EQ "load x0", x0, 0
        /* fence/fence.tso are no-ops here; must not trap */
        CLEAR_TRAP
        fence
        fence   rw, rw
        fence.tso
        TRAP_COUNT s3
        CHECK_EQ "fence does not trap", s3, 0
        TEST_END

        .data
        .balign 16
data:
        .dword 0
        .dword 0x0123456789abcdef
        .byte 0x80, 0x7f, 0xff, 0x01, 0x00, 0x80, 0xff, 0xff
        .dword 0
scratch:
        .dword 0, 0, 0, 0

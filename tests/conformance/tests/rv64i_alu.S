/* RV64I register-register and register-immediate arithmetic/logic.
   Unprivileged ISA 20191213, chapters 2 and 5. */
#include "test.h"
TEST_BEGIN(rv64i_alu)
        /* add/sub: wrap-around, no overflow trap (2.4) */
        TRR add, 0, 0, 0
        TRR add, 3, 1, 2
        TRR add, 0x8000000000000000, 0x7fffffffffffffff, 1
        TRR add, 0xfffffffffffffffe, 0xffffffffffffffff, 0xffffffffffffffff
        TRR add, 0, 0xffffffffffffffff, 1
        TRR sub, 0xffffffffffffffff, 0, 1
        TRR sub, 0x7fffffffffffffff, 0x8000000000000000, 1
        TRR sub, 0, 0x123456789abcdef0, 0x123456789abcdef0
        /* W forms: 32-bit result sign-extended (5.2) */
        TRR addw, 0xffffffff80000000, 0x7fffffff, 1
        TRR addw, 0, 0xffffffff, 1
        TRR addw, 0x0000000012345678, 0xabcdef0012345678, 0
        TRR addw, 0xffffffffffffffff, 0x00000000ffffffff, 0x100000000
        TRR subw, 0x7fffffff, 0x80000000, 1
        TRR subw, 0xffffffffffffffff, 0, 1
        TRR subw, 0, 0xffffffff00000005, 5
        TRI addi, 0x800, 0x7ff, 1
        TRI addi, 0xfffffffffffff800, 0, -2048
        TRI addi, 0x7ffffffffffff800, 0x8000000000000000, -2048
        TRI addiw, 0xffffffff80000000, 0x7fffffff, 1
        TRI addiw, 0x7fffffff, 0x80000000, -1
        TRI addiw, 0xffffffffdeadbeef, 0x12345678deadbeef, 0
        TRI addiw, 0xfffffffffffff800, 0, -2048
        /* slt/sltu signedness */
        TRR slt, 1, 0xffffffffffffffff, 0
        TRR sltu, 0, 0xffffffffffffffff, 0
        TRR slt, 0, 0x7fffffffffffffff, 0x8000000000000000
        TRR sltu, 1, 0x7fffffffffffffff, 0x8000000000000000
        TRR slt, 0, 5, 5
        TRR sltu, 1, 0, 1
        TRI slti, 1, 0xffffffffffffffff, 0
        TRI slti, 0, 0, -1
        TRI sltiu, 1, 0, -1            /* imm sign-extended then unsigned */
        TRI sltiu, 0, 0xffffffffffffffff, -1
        TRI sltiu, 1, 0, 1             /* seqz */
        TRI sltiu, 0, 2, 1
        TRI slti, 1, 0x8000000000000000, -2048
        /* logic */
        TRR and, 0x0f0f0000000f0f0f, 0xff0f00f0f00f0fff, 0x0f0f0f0f0f0f0f0f
        TRR or,  0xff0f0fffff0f0fff, 0xff0f00f0f00f0fff, 0x0f0f0f0f0f0f0f0f
        TRR xor, 0xf0000fffff0000f0, 0xff0f00f0f00f0fff, 0x0f0f0f0f0f0f0f0f
        TRI andi, 0x7f0, 0xfffffffffffffff0, 0x7ff
        TRI andi, 0x123456789abcdef0, 0x123456789abcdef0, -1
        TRI ori, 0xfffffffffffff80f, 0xf, -2048
        TRI xori, 0xedcba9876543210f, 0x123456789abcdef0, -1   /* not */
        TRI xori, 0x7ff, 0, 0x7ff
        /* shifts: only the low 6 (RV64) / 5 (W) bits of rs2 count (2.4, 5.2) */
        TRR sll, 0x123456789abcdef0, 0x123456789abcdef0, 0
        TRR sll, 0x0000000080000000, 1, 31
        TRR sll, 0x8000000000000000, 1, 63
        TRR sll, 0x8000000000000000, 1, 0xffffffffffffffff  /* shamt=63 */
        TRR sll, 2, 1, 65                                   /* shamt=1 */
        TRR srl, 1, 0x8000000000000000, 63
        TRR srl, 0x0000000100000000, 0x8000000000000000, 31
        TRR srl, 0x8000000000000000, 0x8000000000000000, 64
        TRR sra, 0xffffffffffffffff, 0x8000000000000000, 63
        TRR sra, 0xffffffff00000000, 0x8000000000000000, 31
        TRR sra, 0x3fffffffffffffff, 0x7fffffffffffffff, 1
        TRI slli, 0x8000000000000000, 1, 63
        TRI slli, 0x123456789abcdef0, 0x123456789abcdef0, 0
        TRI srli, 1, 0xffffffffffffffff, 63
        TRI srli, 0x00000001ffffffff, 0xffffffffffffffff, 31
        TRI srai, 0xffffffffffffffff, 0x8000000000000000, 63
        TRI srai, 0xfffffffff0000000, 0x8000000000000000, 35
        TRI srai, 0x123456789abcdef0, 0x123456789abcdef0, 0
        /* W shifts: operate on low 32 bits, sign-extend result */
        TRR sllw, 0xffffffff80000000, 1, 31
        TRR sllw, 1, 1, 32                               /* shamt 0 */
        TRR sllw, 0xffffffff9abcdef0, 0x123456789abcdef0, 0
        TRR srlw, 1, 0x80000000, 31
        TRR srlw, 0xffffffff80000000, 0xffffffff80000000, 0
        TRR srlw, 0x7fffffff, 0xffffffffffffffff, 1
        TRR sraw, 0xffffffffffffffff, 0x80000000, 31
        TRR sraw, 0xffffffffc0000000, 0x0000000080000000, 1
        TRR sraw, 0x0000000012345678, 0xffffffff12345678, 32
        TRI slliw, 0xffffffff80000000, 1, 31
        TRI slliw, 0, 0xffffffff00000000, 1
        TRI srliw, 0x7fffffff, 0xffffffffffffffff, 1
        TRI srliw, 1, 0xffffffffffffffff, 31
        TRI srliw, 0xffffffffffffffff, 0xffffffffffffffff, 0
        TRI sraiw, 0xffffffffffffffff, 0x0000000080000000, 31
        TRI sraiw, 0x0000000000000001, 0xffffffff7fffffff, 30
        TRI sraiw, 0xffffffff80000000, 0x0000000080000000, 0

        /* lui / auipc */
        lui     s3, 0x80000
        CHECK_EQ "lui 0x80000 sign-extends", s3, 0xffffffff80000000
        lui     s3, 0x7ffff
        CHECK_EQ "lui 0x7ffff", s3, 0x7ffff000
        lui     s3, 0
        CHECK_EQ "lui 0", s3, 0
1:      auipc   s3, 0
        la      s4, 1b
        sub     s3, s3, s4
        CHECK_EQ "auipc 0 = pc", s3, 0
2:      auipc   s3, 1
        la      s4, 2b
        sub     s3, s3, s4
        CHECK_EQ "auipc 1 = pc+4096", s3, 4096
3:      auipc   s3, 0xfffff
        la      s4, 3b
        sub     s3, s3, s4
        CHECK_EQ "auipc -1 = pc-4096", s3, -4096

        /* writes to x0 are discarded */
        li      s1, 5
        add     x0, s1, s1
        addi    x0, x0, 7
        lui     x0, 0x12345
        mv      s3, x0
        CHECK_EQ "x0 stays zero", s3, 0
        TEST_END

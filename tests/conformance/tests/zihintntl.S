/* Zihintntl (Unprivileged ISA, "Zihintntl", 1.0): NTL.P1, NTL.PALL,
   NTL.S1, NTL.ALL are ADD x0, x0, x2..x5, and C.NTL.* the C.ADD forms;
   HINTs that change no architectural state, in any mode. Strata
   advertises the extension with --cpu max; QEMU 7.2 (which does not know
   the name) runs the same encodings as the HINTs they are.
   strata-args: --cpu max */
#include "test.h"

/* run the eight hints in mode; sp (x2) must come back unchanged */
.macro NTL_ALL name, mode
        mv      s4, sp
        ACCESS  "\name: no trap", \mode, 0, NO_TRAP, add x0, x0, x2
        ACCESS  "\name ntl.pall: no trap", \mode, 0, NO_TRAP, add x0, x0, x3
        ACCESS  "\name ntl.s1: no trap", \mode, 0, NO_TRAP, add x0, x0, x4
        ACCESS  "\name ntl.all: no trap", \mode, 0, NO_TRAP, add x0, x0, x5
        ACCESS  "\name c.ntl.p1: no trap", \mode, 0, NO_TRAP, .insn cr 2, 9, x0, x2
        ACCESS  "\name c.ntl.pall: no trap", \mode, 0, NO_TRAP, .insn cr 2, 9, x0, x3
        ACCESS  "\name c.ntl.s1: no trap", \mode, 0, NO_TRAP, .insn cr 2, 9, x0, x4
        ACCESS  "\name c.ntl.all: no trap", \mode, 0, NO_TRAP, .insn cr 2, 9, x0, x5
        sub     s3, sp, s4
        CHECK_EQ "\name: sp unchanged", s3, 0
.endm

TEST_BEGIN(zihintntl)
        NTL_ALL "M ntl.p1", PRV_M
        NTL_ALL "S ntl.p1", PRV_S
        NTL_ALL "U ntl.p1", PRV_U
        TEST_END

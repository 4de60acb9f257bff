//! RV64GC instruction encodings, written once, as data.
//!
//! Each row is an instruction's name, its bit pattern as the specification
//! draws it (`0`/`1` fixed bits, `.` operand bits, spaces ignored), and the
//! immediate format. The [`Op`] enum and the pattern table are generated
//! from the same rows, and the decoder (`decode.rs`) is derived from the
//! table, in the spirit of QEMU's decodetree and Spike's encoding.h.
//! Sources: Unprivileged ISA 20191213, chapter 24 (RV32/64G instruction
//! listings); Privileged Architecture 20211203, §3.3 and §4.2.1.

/// How the immediate (if any) is assembled from the instruction bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imm {
    /// No immediate (R-type, R4-type, system instructions).
    None,
    /// I-type: bits 31..20, sign-extended.
    I,
    /// S-type: bits 31..25 and 11..7, sign-extended.
    S,
    /// B-type: branch offset.
    B,
    /// U-type: bits 31..12 in place, sign-extended from bit 31.
    U,
    /// J-type: jump offset.
    J,
    /// Shift amount, bits 25..20 (RV64 6-bit shamt; the W forms' patterns
    /// fix bit 25 to zero).
    Shamt,
    /// CSR number in bits 31..20, zero-extended.
    Csr,
}

/// Parses a pattern into (mask, match) at compile time. Panics (a build
/// error, since it runs in a const context) on a malformed pattern.
pub const fn pattern(p: &str, width: u32) -> (u32, u32) {
    let b = p.as_bytes();
    let mut mask = 0u32;
    let mut bits = 0u32;
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c == b' ' || c == b'_' {
            continue;
        }
        mask <<= 1;
        bits <<= 1;
        match c {
            b'0' => mask |= 1,
            b'1' => {
                mask |= 1;
                bits |= 1
            }
            b'.' => {}
            _ => panic!("bad character in encoding pattern"),
        }
        n += 1;
    }
    if n != width {
        panic!("encoding pattern has the wrong number of bits");
    }
    (mask, bits)
}

macro_rules! encodings {
    ($( $name:ident = $pat:literal $imm:ident ;)*) => {
        /// Every operation the hart executes. Compressed instructions expand
        /// to one of these (see `decode.rs`).
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $($name,)*
            /// Any encoding that matches no row, and reserved encodings.
            ILLEGAL,
        }

        /// One row of the 32-bit encoding table.
        #[derive(Clone, Copy, Debug)]
        pub struct Encoding {
            pub op: Op,
            pub name: &'static str,
            pub mask: u32,
            pub bits: u32,
            pub imm: Imm,
        }

        pub static ENCODINGS: &[Encoding] = &[
            $(Encoding {
                op: Op::$name,
                name: stringify!($name),
                mask: pattern($pat, 32).0,
                bits: pattern($pat, 32).1,
                imm: Imm::$imm,
            },)*
        ];

        impl Op {
            pub fn name(self) -> &'static str {
                match self {
                    $(Op::$name => stringify!($name),)*
                    Op::ILLEGAL => "ILLEGAL",
                }
            }
        }
    };
}

encodings! {
    // ---- RV64I (ISA §2, §5) ------------------------------------------------
    LUI        = "....................  ..... 0110111" U;
    AUIPC      = "....................  ..... 0010111" U;
    JAL        = "....................  ..... 1101111" J;
    JALR       = "............ ..... 000 ..... 1100111" I;
    BEQ        = "....... ..... ..... 000 ..... 1100011" B;
    BNE        = "....... ..... ..... 001 ..... 1100011" B;
    BLT        = "....... ..... ..... 100 ..... 1100011" B;
    BGE        = "....... ..... ..... 101 ..... 1100011" B;
    BLTU       = "....... ..... ..... 110 ..... 1100011" B;
    BGEU       = "....... ..... ..... 111 ..... 1100011" B;
    LB         = "............ ..... 000 ..... 0000011" I;
    LH         = "............ ..... 001 ..... 0000011" I;
    LW         = "............ ..... 010 ..... 0000011" I;
    LD         = "............ ..... 011 ..... 0000011" I;
    LBU        = "............ ..... 100 ..... 0000011" I;
    LHU        = "............ ..... 101 ..... 0000011" I;
    LWU        = "............ ..... 110 ..... 0000011" I;
    SB         = "....... ..... ..... 000 ..... 0100011" S;
    SH         = "....... ..... ..... 001 ..... 0100011" S;
    SW         = "....... ..... ..... 010 ..... 0100011" S;
    SD         = "....... ..... ..... 011 ..... 0100011" S;
    ADDI       = "............ ..... 000 ..... 0010011" I;
    SLTI       = "............ ..... 010 ..... 0010011" I;
    SLTIU      = "............ ..... 011 ..... 0010011" I;
    XORI       = "............ ..... 100 ..... 0010011" I;
    ORI        = "............ ..... 110 ..... 0010011" I;
    ANDI       = "............ ..... 111 ..... 0010011" I;
    SLLI       = "000000 ...... ..... 001 ..... 0010011" Shamt;
    SRLI       = "000000 ...... ..... 101 ..... 0010011" Shamt;
    SRAI       = "010000 ...... ..... 101 ..... 0010011" Shamt;
    ADD        = "0000000 ..... ..... 000 ..... 0110011" None;
    SUB        = "0100000 ..... ..... 000 ..... 0110011" None;
    SLL        = "0000000 ..... ..... 001 ..... 0110011" None;
    SLT        = "0000000 ..... ..... 010 ..... 0110011" None;
    SLTU       = "0000000 ..... ..... 011 ..... 0110011" None;
    XOR        = "0000000 ..... ..... 100 ..... 0110011" None;
    SRL        = "0000000 ..... ..... 101 ..... 0110011" None;
    SRA        = "0100000 ..... ..... 101 ..... 0110011" None;
    OR         = "0000000 ..... ..... 110 ..... 0110011" None;
    AND        = "0000000 ..... ..... 111 ..... 0110011" None;
    ADDIW      = "............ ..... 000 ..... 0011011" I;
    SLLIW      = "0000000 ..... ..... 001 ..... 0011011" Shamt;
    SRLIW      = "0000000 ..... ..... 101 ..... 0011011" Shamt;
    SRAIW      = "0100000 ..... ..... 101 ..... 0011011" Shamt;
    ADDW       = "0000000 ..... ..... 000 ..... 0111011" None;
    SUBW       = "0100000 ..... ..... 000 ..... 0111011" None;
    SLLW       = "0000000 ..... ..... 001 ..... 0111011" None;
    SRLW       = "0000000 ..... ..... 101 ..... 0111011" None;
    SRAW       = "0100000 ..... ..... 101 ..... 0111011" None;
    // FENCE's fm/pred/succ fields are hints to a memory system this
    // sequentially consistent interpreter does not have.
    FENCE      = "............ ..... 000 ..... 0001111" None;
    FENCE_I    = "............ ..... 001 ..... 0001111" None;
    ECALL      = "000000000000 00000 000 00000 1110011" None;
    EBREAK     = "000000000001 00000 000 00000 1110011" None;
    // ---- Zicsr (ISA §9) ----------------------------------------------------
    CSRRW      = "............ ..... 001 ..... 1110011" Csr;
    CSRRS      = "............ ..... 010 ..... 1110011" Csr;
    CSRRC      = "............ ..... 011 ..... 1110011" Csr;
    CSRRWI     = "............ ..... 101 ..... 1110011" Csr;
    CSRRSI     = "............ ..... 110 ..... 1110011" Csr;
    CSRRCI     = "............ ..... 111 ..... 1110011" Csr;
    // ---- Privileged (Priv. §3.3, §4.2.1) -----------------------------------
    MRET       = "0011000 00010 00000 000 00000 1110011" None;
    SRET       = "0001000 00010 00000 000 00000 1110011" None;
    WFI        = "0001000 00101 00000 000 00000 1110011" None;
    SFENCE_VMA = "0001001 ..... ..... 000 00000 1110011" None;
    // ---- Hypervisor extension (Priv. §8.3) ---------------------------------
    HFENCE_VVMA = "0010001 ..... ..... 000 00000 1110011" None;
    HFENCE_GVMA = "0110001 ..... ..... 000 00000 1110011" None;
    HLV_B      = "0110000 00000 ..... 100 ..... 1110011" None;
    HLV_BU     = "0110000 00001 ..... 100 ..... 1110011" None;
    HLV_H      = "0110010 00000 ..... 100 ..... 1110011" None;
    HLV_HU     = "0110010 00001 ..... 100 ..... 1110011" None;
    HLVX_HU    = "0110010 00011 ..... 100 ..... 1110011" None;
    HLV_W      = "0110100 00000 ..... 100 ..... 1110011" None;
    HLV_WU     = "0110100 00001 ..... 100 ..... 1110011" None;
    HLVX_WU    = "0110100 00011 ..... 100 ..... 1110011" None;
    HLV_D      = "0110110 00000 ..... 100 ..... 1110011" None;
    HSV_B      = "0110001 ..... ..... 100 00000 1110011" None;
    HSV_H      = "0110011 ..... ..... 100 00000 1110011" None;
    HSV_W      = "0110101 ..... ..... 100 00000 1110011" None;
    HSV_D      = "0110111 ..... ..... 100 00000 1110011" None;
    // ---- M (ISA §7) --------------------------------------------------------
    MUL        = "0000001 ..... ..... 000 ..... 0110011" None;
    MULH       = "0000001 ..... ..... 001 ..... 0110011" None;
    MULHSU     = "0000001 ..... ..... 010 ..... 0110011" None;
    MULHU      = "0000001 ..... ..... 011 ..... 0110011" None;
    DIV        = "0000001 ..... ..... 100 ..... 0110011" None;
    DIVU       = "0000001 ..... ..... 101 ..... 0110011" None;
    REM        = "0000001 ..... ..... 110 ..... 0110011" None;
    REMU       = "0000001 ..... ..... 111 ..... 0110011" None;
    MULW       = "0000001 ..... ..... 000 ..... 0111011" None;
    DIVW       = "0000001 ..... ..... 100 ..... 0111011" None;
    DIVUW      = "0000001 ..... ..... 101 ..... 0111011" None;
    REMW       = "0000001 ..... ..... 110 ..... 0111011" None;
    REMUW      = "0000001 ..... ..... 111 ..... 0111011" None;
    // ---- A (ISA §8); aq/rl (bits 26..25) are free ---------------------------
    LR_W       = "00010 .. 00000 ..... 010 ..... 0101111" None;
    SC_W       = "00011 .. ..... ..... 010 ..... 0101111" None;
    AMOSWAP_W  = "00001 .. ..... ..... 010 ..... 0101111" None;
    AMOADD_W   = "00000 .. ..... ..... 010 ..... 0101111" None;
    AMOXOR_W   = "00100 .. ..... ..... 010 ..... 0101111" None;
    AMOAND_W   = "01100 .. ..... ..... 010 ..... 0101111" None;
    AMOOR_W    = "01000 .. ..... ..... 010 ..... 0101111" None;
    AMOMIN_W   = "10000 .. ..... ..... 010 ..... 0101111" None;
    AMOMAX_W   = "10100 .. ..... ..... 010 ..... 0101111" None;
    AMOMINU_W  = "11000 .. ..... ..... 010 ..... 0101111" None;
    AMOMAXU_W  = "11100 .. ..... ..... 010 ..... 0101111" None;
    LR_D       = "00010 .. 00000 ..... 011 ..... 0101111" None;
    SC_D       = "00011 .. ..... ..... 011 ..... 0101111" None;
    AMOSWAP_D  = "00001 .. ..... ..... 011 ..... 0101111" None;
    AMOADD_D   = "00000 .. ..... ..... 011 ..... 0101111" None;
    AMOXOR_D   = "00100 .. ..... ..... 011 ..... 0101111" None;
    AMOAND_D   = "01100 .. ..... ..... 011 ..... 0101111" None;
    AMOOR_D    = "01000 .. ..... ..... 011 ..... 0101111" None;
    AMOMIN_D   = "10000 .. ..... ..... 011 ..... 0101111" None;
    AMOMAX_D   = "10100 .. ..... ..... 011 ..... 0101111" None;
    AMOMINU_D  = "11000 .. ..... ..... 011 ..... 0101111" None;
    AMOMAXU_D  = "11100 .. ..... ..... 011 ..... 0101111" None;
    // ---- F (ISA §11); bits 14..12 of the arithmetic ops are rm -------------
    FLW        = "............ ..... 010 ..... 0000111" I;
    FSW        = "....... ..... ..... 010 ..... 0100111" S;
    FMADD_S    = "..... 00 ..... ..... ... ..... 1000011" None;
    FMSUB_S    = "..... 00 ..... ..... ... ..... 1000111" None;
    FNMSUB_S   = "..... 00 ..... ..... ... ..... 1001011" None;
    FNMADD_S   = "..... 00 ..... ..... ... ..... 1001111" None;
    FADD_S     = "0000000 ..... ..... ... ..... 1010011" None;
    FSUB_S     = "0000100 ..... ..... ... ..... 1010011" None;
    FMUL_S     = "0001000 ..... ..... ... ..... 1010011" None;
    FDIV_S     = "0001100 ..... ..... ... ..... 1010011" None;
    FSQRT_S    = "0101100 00000 ..... ... ..... 1010011" None;
    FSGNJ_S    = "0010000 ..... ..... 000 ..... 1010011" None;
    FSGNJN_S   = "0010000 ..... ..... 001 ..... 1010011" None;
    FSGNJX_S   = "0010000 ..... ..... 010 ..... 1010011" None;
    FMIN_S     = "0010100 ..... ..... 000 ..... 1010011" None;
    FMAX_S     = "0010100 ..... ..... 001 ..... 1010011" None;
    FCVT_W_S   = "1100000 00000 ..... ... ..... 1010011" None;
    FCVT_WU_S  = "1100000 00001 ..... ... ..... 1010011" None;
    FCVT_L_S   = "1100000 00010 ..... ... ..... 1010011" None;
    FCVT_LU_S  = "1100000 00011 ..... ... ..... 1010011" None;
    FMV_X_W    = "1110000 00000 ..... 000 ..... 1010011" None;
    FCLASS_S   = "1110000 00000 ..... 001 ..... 1010011" None;
    FEQ_S      = "1010000 ..... ..... 010 ..... 1010011" None;
    FLT_S      = "1010000 ..... ..... 001 ..... 1010011" None;
    FLE_S      = "1010000 ..... ..... 000 ..... 1010011" None;
    FCVT_S_W   = "1101000 00000 ..... ... ..... 1010011" None;
    FCVT_S_WU  = "1101000 00001 ..... ... ..... 1010011" None;
    FCVT_S_L   = "1101000 00010 ..... ... ..... 1010011" None;
    FCVT_S_LU  = "1101000 00011 ..... ... ..... 1010011" None;
    FMV_W_X    = "1111000 00000 ..... 000 ..... 1010011" None;
    // ---- D (ISA §12) -------------------------------------------------------
    FLD        = "............ ..... 011 ..... 0000111" I;
    FSD        = "....... ..... ..... 011 ..... 0100111" S;
    FMADD_D    = "..... 01 ..... ..... ... ..... 1000011" None;
    FMSUB_D    = "..... 01 ..... ..... ... ..... 1000111" None;
    FNMSUB_D   = "..... 01 ..... ..... ... ..... 1001011" None;
    FNMADD_D   = "..... 01 ..... ..... ... ..... 1001111" None;
    FADD_D     = "0000001 ..... ..... ... ..... 1010011" None;
    FSUB_D     = "0000101 ..... ..... ... ..... 1010011" None;
    FMUL_D     = "0001001 ..... ..... ... ..... 1010011" None;
    FDIV_D     = "0001101 ..... ..... ... ..... 1010011" None;
    FSQRT_D    = "0101101 00000 ..... ... ..... 1010011" None;
    FSGNJ_D    = "0010001 ..... ..... 000 ..... 1010011" None;
    FSGNJN_D   = "0010001 ..... ..... 001 ..... 1010011" None;
    FSGNJX_D   = "0010001 ..... ..... 010 ..... 1010011" None;
    FMIN_D     = "0010101 ..... ..... 000 ..... 1010011" None;
    FMAX_D     = "0010101 ..... ..... 001 ..... 1010011" None;
    FCVT_S_D   = "0100000 00001 ..... ... ..... 1010011" None;
    FCVT_D_S   = "0100001 00000 ..... ... ..... 1010011" None;
    FEQ_D      = "1010001 ..... ..... 010 ..... 1010011" None;
    FLT_D      = "1010001 ..... ..... 001 ..... 1010011" None;
    FLE_D      = "1010001 ..... ..... 000 ..... 1010011" None;
    FCLASS_D   = "1110001 00000 ..... 001 ..... 1010011" None;
    FCVT_W_D   = "1100001 00000 ..... ... ..... 1010011" None;
    FCVT_WU_D  = "1100001 00001 ..... ... ..... 1010011" None;
    FCVT_L_D   = "1100001 00010 ..... ... ..... 1010011" None;
    FCVT_LU_D  = "1100001 00011 ..... ... ..... 1010011" None;
    FMV_X_D    = "1110001 00000 ..... 000 ..... 1010011" None;
    FCVT_D_W   = "1101001 00000 ..... ... ..... 1010011" None;
    FCVT_D_WU  = "1101001 00001 ..... ... ..... 1010011" None;
    FCVT_D_L   = "1101001 00010 ..... ... ..... 1010011" None;
    FCVT_D_LU  = "1101001 00011 ..... ... ..... 1010011" None;
    FMV_D_X    = "1111001 00000 ..... 000 ..... 1010011" None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_rows_overlap() {
        // Two rows overlap if some instruction word matches both: their fixed
        // bits agree wherever both fix them.
        for (i, a) in ENCODINGS.iter().enumerate() {
            for b in &ENCODINGS[i + 1..] {
                let common = a.mask & b.mask;
                assert!(a.bits & common != b.bits & common, "{} and {} overlap", a.name, b.name);
            }
        }
    }

    #[test]
    fn patterns_parse_as_drawn() {
        assert_eq!(pattern("0000000 ..... ..... 000 ..... 0110011", 32), (0xfe00_707f, 0x0000_0033));
        assert_eq!(pattern("000 ........ ... 00", 16), (0xe003, 0x0000));
    }
}

//! An assembler for tiny test guests, without a cross toolchain: every
//! instruction is encoded by the one encoding table
//! (`strata_arch::isa::encode`), and [`elf`] wraps the code in a minimal
//! ELF64 executable.

use strata_arch::isa::{encode, Op};

/// Registers by ABI name (Unpriv. chapter 25, Table 25.1).
pub mod reg {
    pub const ZERO: u32 = 0;
    pub const RA: u32 = 1;
    pub const SP: u32 = 2;
    pub const T0: u32 = 5;
    pub const T1: u32 = 6;
    pub const T2: u32 = 7;
    pub const S0: u32 = 8;
    pub const S1: u32 = 9;
    pub const A0: u32 = 10;
    pub const A1: u32 = 11;
    pub const A2: u32 = 12;
    pub const A3: u32 = 13;
    pub const A4: u32 = 14;
    pub const A5: u32 = 15;
    pub const A6: u32 = 16;
    pub const A7: u32 = 17;
}

/// The loads by `funct3` order: LB, LH, LW, LD, LBU, LHU, LWU.
pub const LOADS: [Op; 7] = [Op::LB, Op::LH, Op::LW, Op::LD, Op::LBU, Op::LHU, Op::LWU];
/// The stores by width: SB, SH, SW, SD.
pub const STORES: [Op; 4] = [Op::SB, Op::SH, Op::SW, Op::SD];

/// An instruction stream with backward labels.
#[derive(Default)]
pub struct Asm {
    words: Vec<u32>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }

    /// The address (index into the stream, in bytes) of the next
    /// instruction, for branches back to it.
    pub fn here(&self) -> i64 {
        4 * self.words.len() as i64
    }

    /// The instruction words so far.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Any 32-bit instruction of the table (see `strata_arch::isa::encode`;
    /// panics if the operands do not fit).
    #[track_caller]
    pub fn insn(&mut self, op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> &mut Self {
        self.word(encode(op, rd, rs1, rs2, imm))
    }

    /// Any instruction word, encoded elsewhere (or deliberately none).
    pub fn word(&mut self, w: u32) -> &mut Self {
        self.words.push(w);
        self
    }

    pub fn addi(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        self.insn(Op::ADDI, rd, rs1, 0, imm as i64)
    }

    pub fn andi(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        self.insn(Op::ANDI, rd, rs1, 0, imm as i64)
    }

    pub fn xori(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        self.insn(Op::XORI, rd, rs1, 0, imm as i64)
    }

    pub fn sub(&mut self, rd: u32, rs1: u32, rs2: u32) -> &mut Self {
        self.insn(Op::SUB, rd, rs1, rs2, 0)
    }

    pub fn slli(&mut self, rd: u32, rs1: u32, sh: u32) -> &mut Self {
        self.insn(Op::SLLI, rd, rs1, 0, sh as i64 & 63)
    }

    pub fn add(&mut self, rd: u32, rs1: u32, rs2: u32) -> &mut Self {
        self.insn(Op::ADD, rd, rs1, rs2, 0)
    }

    /// `lui rd, imm20`: the upper 20 bits as the assembler writes them.
    pub fn lui(&mut self, rd: u32, imm20: u32) -> &mut Self {
        self.insn(Op::LUI, rd, 0, 0, ((imm20 & 0xf_ffff) << 12) as i32 as i64)
    }

    /// Loads any 64-bit constant: lui/addi when it fits, else the upper
    /// part recursively, shifted left by 12, plus the low 12 bits.
    pub fn li(&mut self, rd: u32, v: u64) -> &mut Self {
        let s = v as i64;
        let lo = ((s << 52) >> 52) as i32;
        if (-2048..2048).contains(&s) {
            return self.addi(rd, reg::ZERO, s as i32);
        }
        // lui sign-extends its 32-bit result, so keep clear of the top.
        if (-(1i64 << 31)..(1i64 << 31) - 2048).contains(&s) {
            self.lui(rd, ((s - lo as i64) >> 12) as u32);
            return if lo != 0 { self.addi(rd, rd, lo) } else { self };
        }
        self.li(rd, ((s - lo as i64) >> 12) as u64);
        self.slli(rd, rd, 12);
        if lo != 0 {
            self.addi(rd, rd, lo);
        }
        self
    }

    /// A load (`op` one of [`LOADS`]).
    pub fn load(&mut self, op: Op, rd: u32, rs1: u32, off: i32) -> &mut Self {
        self.insn(op, rd, rs1, 0, off as i64)
    }

    /// A store (`op` one of [`STORES`]) of `rs2` at `off(rs1)`.
    pub fn store(&mut self, op: Op, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.insn(op, 0, rs1, rs2, off as i64)
    }

    pub fn ld(&mut self, rd: u32, rs1: u32, off: i32) -> &mut Self {
        self.load(Op::LD, rd, rs1, off)
    }

    pub fn sb(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.store(Op::SB, rs2, rs1, off)
    }

    pub fn sd(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.store(Op::SD, rs2, rs1, off)
    }

    /// `bne rs1, rs2, target` with `target` from [`here`](Self::here).
    pub fn bne(&mut self, rs1: u32, rs2: u32, target: i64) -> &mut Self {
        let off = target - self.here();
        self.insn(Op::BNE, 0, rs1, rs2, off)
    }

    /// `jal x0, target`.
    pub fn j(&mut self, target: i64) -> &mut Self {
        let off = target - self.here();
        self.insn(Op::JAL, 0, 0, 0, off)
    }

    pub fn ecall(&mut self) -> &mut Self {
        self.insn(Op::ECALL, 0, 0, 0, 0)
    }

    /// A Zicsr instruction (`op` CSRRW, CSRRS or CSRRC) on CSR `csr`.
    pub fn csr(&mut self, op: Op, rd: u32, csr: u16, rs1: u32) -> &mut Self {
        self.insn(op, rd, rs1, 0, csr as i64)
    }

    /// An SBI call: a7 = `eid`, a6 = `fid`, a0 = `arg0`.
    pub fn sbi(&mut self, eid: u64, fid: u64, arg0: u64) -> &mut Self {
        self.li(reg::A7, eid).li(reg::A6, fid).li(reg::A0, arg0).ecall()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// Wraps `code` in an ELF64 RISC-V executable with one PT_LOAD segment at
/// `addr` (which is also the entry point).
pub fn elf(code: &[u8], addr: u64) -> Vec<u8> {
    let mut e = Vec::with_capacity(0x1000 + code.len());
    // ELF header (64 bytes).
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&243u16.to_le_bytes()); // EM_RISCV
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&addr.to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // flags
    e.extend_from_slice(&64u16.to_le_bytes()); // ehsize
    e.extend_from_slice(&56u16.to_le_bytes()); // phentsize
    e.extend_from_slice(&1u16.to_le_bytes()); // phnum
    e.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
                                  // Program header (56 bytes): PT_LOAD, RWX, file offset 0x1000.
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&7u32.to_le_bytes());
    e.extend_from_slice(&0x1000u64.to_le_bytes());
    e.extend_from_slice(&addr.to_le_bytes()); // vaddr
    e.extend_from_slice(&addr.to_le_bytes()); // paddr
    e.extend_from_slice(&(code.len() as u64).to_le_bytes());
    e.extend_from_slice(&(code.len() as u64).to_le_bytes());
    e.extend_from_slice(&0x1000u64.to_le_bytes());
    e.resize(0x1000, 0);
    e.extend_from_slice(code);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_assembler() {
        // Reference words from riscv64-unknown-elf-as.
        let mut a = Asm::new();
        a.addi(reg::T0, reg::T0, -1); // addi t0,t0,-1
        a.ld(reg::T2, reg::T0, 8); // ld t2,8(t0)
        a.sd(reg::T2, reg::T0, 16); // sd t2,16(t0)
        a.add(reg::T0, reg::T0, reg::S0); // add t0,t0,s0
        a.lui(reg::T0, 0x80000); // lui t0,0x80000
        a.ecall();
        assert_eq!(a.words, vec![0xfff28293, 0x0082b383, 0x0072b823, 0x008282b3, 0x800002b7, 0x00000073]);
        let mut c = Asm::new();
        c.andi(reg::T1, reg::T1, 1); // andi t1,t1,1
        c.xori(reg::T1, reg::T1, 1); // xori t1,t1,1
        c.sub(reg::T1, reg::A0, reg::T1); // sub t1,a0,t1
        c.load(Op::LBU, reg::T1, reg::T0, 5); // lbu t1,5(t0)
        assert_eq!(c.words, vec![0x00137313, 0x00134313, 0x40650333, 0x0052c303]);
        let mut b = Asm::new();
        let top = b.here();
        b.addi(reg::T1, reg::T1, -1);
        b.bne(reg::T1, reg::ZERO, top); // bne t1,zero,-4
        b.j(top); // j -8
        assert_eq!(b.words, vec![0xfff30313, 0xfe031ee3, 0xff9ff06f]);
    }

    #[test]
    fn li_builds_every_width() {
        // Interpret the emitted lui/addi/slli sequence with the table's
        // decoder.
        use strata_arch::isa::decode;
        for v in [
            0u64,
            5,
            0x7ff,
            0x800,
            0x8000_0000,
            0x8010_0000,
            0xffff_ffff,
            0x1_2345_6789,
            u64::MAX,
            0x8000_0000_0000_0001,
        ] {
            let mut a = Asm::new();
            a.li(reg::T0, v);
            let mut x = 0u64;
            for &w in &a.words {
                let i = decode(w);
                assert_eq!(i.rd as u32, reg::T0);
                let src = if i.rs1 == 0 { 0 } else { x };
                x = match i.op {
                    Op::LUI => i.imm as i64 as u64,
                    Op::ADDI => src.wrapping_add(i.imm as i64 as u64),
                    Op::SLLI => x << i.imm,
                    op => panic!("unexpected {op:?}"),
                };
            }
            assert_eq!(x, v, "li {v:#x}");
        }
    }
}

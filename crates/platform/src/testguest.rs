//! Tiny guest programs for tests and benchmarks of the hypervisor, built
//! without a cross toolchain: a few RV64I encodings (Unprivileged ISA
//! 20191213, chapter 24) and a minimal ELF64 wrapper.

/// Registers by ABI name.
pub mod reg {
    pub const ZERO: u32 = 0;
    pub const T0: u32 = 5;
    pub const T1: u32 = 6;
    pub const T2: u32 = 7;
    pub const S0: u32 = 8;
    pub const S1: u32 = 9;
    pub const A0: u32 = 10;
    pub const A1: u32 = 11;
    pub const A2: u32 = 12;
    pub const A6: u32 = 16;
    pub const A7: u32 = 17;
}

/// An instruction stream with backward labels.
#[derive(Default)]
pub struct Asm {
    words: Vec<u32>,
}

fn i_type(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
    ((imm as u32 & 0xfff) << 20) | rs1 << 15 | f3 << 12 | rd << 7 | op
}

fn s_type(imm: i32, rs2: u32, rs1: u32, f3: u32, op: u32) -> u32 {
    let imm = imm as u32;
    ((imm >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1f) << 7 | op
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

    fn emit(&mut self, w: u32) -> &mut Self {
        self.words.push(w);
        self
    }

    pub fn addi(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        assert!((-2048..2048).contains(&imm));
        self.emit(i_type(imm, rs1, 0, rd, 0x13))
    }

    pub fn slli(&mut self, rd: u32, rs1: u32, sh: u32) -> &mut Self {
        self.emit(i_type(sh as i32 & 63, rs1, 1, rd, 0x13))
    }

    pub fn add(&mut self, rd: u32, rs1: u32, rs2: u32) -> &mut Self {
        self.emit(rs2 << 20 | rs1 << 15 | rd << 7 | 0x33)
    }

    pub fn lui(&mut self, rd: u32, imm20: u32) -> &mut Self {
        self.emit((imm20 & 0xf_ffff) << 12 | rd << 7 | 0x37)
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

    pub fn ld(&mut self, rd: u32, rs1: u32, off: i32) -> &mut Self {
        self.emit(i_type(off, rs1, 3, rd, 0x03))
    }

    pub fn sb(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.emit(s_type(off, rs2, rs1, 0, 0x23))
    }

    pub fn sd(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.emit(s_type(off, rs2, rs1, 3, 0x23))
    }

    /// `bne rs1, rs2, target` with `target` from [`here`](Self::here).
    pub fn bne(&mut self, rs1: u32, rs2: u32, target: i64) -> &mut Self {
        let off = (target - self.here()) as i32;
        let o = off as u32;
        self.emit(
            ((o >> 12) & 1) << 31
                | ((o >> 5) & 0x3f) << 25
                | rs2 << 20
                | rs1 << 15
                | 1 << 12
                | ((o >> 1) & 0xf) << 8
                | ((o >> 11) & 1) << 7
                | 0x63,
        )
    }

    /// `jal x0, target`.
    pub fn j(&mut self, target: i64) -> &mut Self {
        let o = (target - self.here()) as i32 as u32;
        self.emit(((o >> 20) & 1) << 31 | ((o >> 1) & 0x3ff) << 21 | ((o >> 11) & 1) << 20 | ((o >> 12) & 0xff) << 12 | 0x6f)
    }

    pub fn ecall(&mut self) -> &mut Self {
        self.emit(0x0000_0073)
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

/// A guest that walks `pages` pages from `base` forever, one 8-byte
/// load and store per page (a counter per page), `stride` bytes apart. It
/// keeps its TLB entries hot: what invalidation benchmarks and tests need.
pub fn page_walker(base: u64, pages: u64, stride: u64) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    let outer = a.here();
    a.li(T0, base).li(T1, pages);
    let inner = a.here();
    a.ld(T2, T0, 0).addi(T2, T2, 1).sd(T2, T0, 0);
    a.li(S0, stride).add(T0, T0, S0).addi(T1, T1, -1).bne(T1, ZERO, inner);
    a.j(outer);
    elf(&a.bytes(), 0x8000_0000)
}

/// A guest that writes `text` to the UART at `0x1000_0000` byte by byte
/// (MMIO stores, which a hypervisor emulates) and shuts down with SBI SRST.
pub fn uart_hello(text: &str) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, 0x1000_0000);
    for b in text.bytes() {
        a.li(T1, b as u64).sb(T1, T0, 0);
    }
    a.li(A1, 0).sbi(0x5352_5354, 0, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), 0x8000_0000)
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
        let mut b = Asm::new();
        let top = b.here();
        b.addi(reg::T1, reg::T1, -1);
        b.bne(reg::T1, reg::ZERO, top); // bne t1,zero,-4
        b.j(top); // j -8
        assert_eq!(b.words, vec![0xfff30313, 0xfe031ee3, 0xff9ff06f]);
    }

    #[test]
    fn li_builds_every_width() {
        // Interpret the emitted lui/addi/slli sequence.
        for v in [0u64, 5, 0x7ff, 0x800, 0x8000_0000, 0x8010_0000, 0xffff_ffff, 0x1_2345_6789, u64::MAX, 0x8000_0000_0000_0001] {
            let mut a = Asm::new();
            a.li(reg::T0, v);
            let mut x = 0u64;
            for w in &a.words {
                let rd = (w >> 7) & 31;
                assert_eq!(rd, reg::T0);
                match w & 0x7f {
                    0x37 => x = ((w & 0xffff_f000) as i32) as i64 as u64,
                    0x13 if (w >> 12) & 7 == 0 => {
                        let src = if (w >> 15) & 31 == 0 { 0 } else { x };
                        x = src.wrapping_add(((*w as i32) >> 20) as i64 as u64)
                    }
                    0x13 => x <<= (w >> 20) & 63,
                    _ => panic!("unexpected word {w:#x}"),
                }
            }
            assert_eq!(x, v, "li {v:#x}");
        }
    }
}

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
    pub const A3: u32 = 13;
    pub const A4: u32 = 14;
    pub const A5: u32 = 15;
    pub const A6: u32 = 16;
    pub const A7: u32 = 17;
}

/// SBI extension ids the test guests use (SBI 2.0 §10, §12).
const SRST: u64 = 0x5352_5354;
const DBCN: u64 = 0x4442_434e;

/// An instruction stream with backward labels.
#[derive(Default)]
pub struct Asm {
    words: Vec<u32>,
}

fn i_type(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
    ((imm as u32 & 0xfff) << 20) | rs1 << 15 | f3 << 12 | rd << 7 | op
}

/// `jal x0, off`.
fn j_type(off: i32) -> u32 {
    let o = off as u32;
    ((o >> 20) & 1) << 31 | ((o >> 1) & 0x3ff) << 21 | ((o >> 11) & 1) << 20 | ((o >> 12) & 0xff) << 12 | 0x6f
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

    pub fn andi(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        self.emit(i_type(imm, rs1, 7, rd, 0x13))
    }

    pub fn xori(&mut self, rd: u32, rs1: u32, imm: i32) -> &mut Self {
        self.emit(i_type(imm, rs1, 4, rd, 0x13))
    }

    pub fn sub(&mut self, rd: u32, rs1: u32, rs2: u32) -> &mut Self {
        self.emit(0x20 << 25 | rs2 << 20 | rs1 << 15 | rd << 7 | 0x33)
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
        self.load(3, rd, rs1, off)
    }

    pub fn sb(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.store(0, rs2, rs1, off)
    }

    pub fn sd(&mut self, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.store(3, rs2, rs1, off)
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
        self.emit(j_type((target - self.here()) as i32))
    }

    pub fn ecall(&mut self) -> &mut Self {
        self.emit(0x0000_0073)
    }

    /// An SBI call: a7 = `eid`, a6 = `fid`, a0 = `arg0`.
    pub fn sbi(&mut self, eid: u64, fid: u64, arg0: u64) -> &mut Self {
        self.li(reg::A7, eid).li(reg::A6, fid).li(reg::A0, arg0).ecall()
    }

    /// Any instruction word.
    pub fn word(&mut self, w: u32) -> &mut Self {
        self.emit(w)
    }

    /// A load with `funct3` = `f3` (LB, LH, LW, LD, LBU, LHU, LWU).
    pub fn load(&mut self, f3: u32, rd: u32, rs1: u32, off: i32) -> &mut Self {
        self.emit(i_type(off, rs1, f3 & 7, rd, 0x03))
    }

    /// A store with `funct3` = `f3` (SB, SH, SW, SD).
    pub fn store(&mut self, f3: u32, rs2: u32, rs1: u32, off: i32) -> &mut Self {
        self.emit(s_type(off, rs2, rs1, f3 & 3, 0x23))
    }

    /// `csrrw rd, csr, rs1` (`f3` = 1) and the other Zicsr forms by `f3`.
    pub fn csr(&mut self, f3: u32, rd: u32, csr: u32, rs1: u32) -> &mut Self {
        self.emit((csr & 0xfff) << 20 | rs1 << 15 | (f3 & 7) << 12 | rd << 7 | 0x73)
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

/// A guest linked and started at `addr` (in its RAM) that counts `n` down
/// in a loop, then shuts down with SBI SRST: code at a known place, run
/// often enough to be compiled.
pub fn countdown(addr: u64, n: u64) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, n);
    let top = a.here();
    a.addi(T0, T0, -1).bne(T0, ZERO, top);
    a.li(A1, 0).sbi(SRST, 0, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), addr)
}

/// Where a [`hostile`] guest runs, which decides its trap CSRs and how it
/// ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// In VS-mode under Strata's hypervisor: `stvec`/`sepc`/`sret`, ends
    /// with SBI SRST shutdown.
    Vs,
    /// In M-mode on the bare board with no firmware: `mtvec`/`mepc`/`mret`,
    /// ends by writing the power-off value to the syscon.
    M,
}

/// A hostile guest, a deterministic function of `seed`: `actions` random
/// things a guest should not be able to hurt anyone with, then a clean
/// power-off. It calls the SBI (`ecall`) with random extensions, functions
/// and arguments (not SRST, nor HSM stop or suspend of itself, which would
/// end the run early; it may start its second vCPU at a random address);
/// loads and stores at random physical addresses, in and out of its RAM,
/// device windows and holes, of every width, aligned or not (not at the
/// syscon, whose writes may power it off, nor into its own code); reads and
/// writes random CSRs (but not the handful that would stop its trap
/// handler from working: status, trap vector and pc, `satp`, PMP); runs
/// privileged and hypervisor instructions (MRET in VS-mode, HFENCE,
/// HLV/HSV, ...), and random instruction words of the opcodes that neither
/// jump nor store. Its trap handler skips whatever faulted.
pub fn hostile(seed: u64, actions: usize, ram_bytes: u64, level: Level) -> Vec<u8> {
    use reg::*;
    const RAM: u64 = 0x8000_0000;
    const CODE_MAX: u64 = 0x10_0000;
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // (epc, tvec, the return instruction) of the level.
    let (epc, tvec, ret) = match level {
        Level::Vs => (0x141, 0x105, 0x1020_0073),
        Level::M => (0x341, 0x305, 0x3020_0073),
    };
    let mut a = Asm::new();
    let start = a.here();
    a.j(start + 24); // over the handler
                     // handler (at RAM + 4): epc += 4; return. Only 32-bit words fault here.
    a.csr(2, T0, epc, ZERO).addi(T0, T0, 4).csr(1, ZERO, epc, T0).word(ret);
    a.word(0x0000_0013); // nop: the handler ends at +20, so `start + 24` is here
    a.li(T0, RAM + 4).csr(1, ZERO, tvec, T0);
    let eids = [0x10u64, 0x5449_4d45, 0x73_5049, 0x5246_4e43, 0x48_534d, DBCN, 0x01, 0x02, 0x0a00_0000];
    for _ in 0..actions {
        let r = rnd();
        // An address: mostly where it hurts.
        let addr = |r: u64| -> u64 {
            let k = r % 16;
            let off = (r >> 8) & 0xfff;
            match k {
                0 => r.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                1 => RAM + ram_bytes + off,                // just past RAM
                2 => RAM.wrapping_sub(8 + off),            // just below RAM
                3 => 0x0c00_0000 + ((r >> 8) & 0x3f_ffff), // PLIC
                4 => 0x1000_0000 + (r >> 8) % 8,           // UART
                5 => 0x1000_1000 + ((r >> 8) & 0x7fff),    // virtio windows (none here)
                6 => 0x10_1000 + off,                      // RTC
                7 => 0x0200_0000 + ((r >> 8) & 0xffff),    // where a CLINT would be
                8 => 1 << (30 + (r >> 8) % 34),            // far away
                9 => u64::MAX - off,
                10 => off,                                                   // page zero
                _ => RAM + CODE_MAX + (r >> 8) % (ram_bytes - CODE_MAX - 8), // its own data
            }
        };
        match r % 8 {
            0 | 1 => {
                // An SBI call.
                let eid = if r >> 60 == 0 { rnd() } else { eids[(r >> 8) as usize % eids.len()] };
                let mut fid = (r >> 16) % 8;
                if eid == 0x48_534d && (fid == 1 || fid == 3) {
                    fid = 2; // hart_get_status instead of stopping itself
                }
                a.li(A7, eid).li(A6, if r >> 59 & 1 == 0 { fid } else { rnd() });
                for reg in [A0, A1, A2, A3, A4, A5] {
                    let v = match rnd() % 4 {
                        0 => rnd() % 4,
                        1 => addr(rnd()),
                        2 => rnd(),
                        _ => u64::MAX,
                    };
                    a.li(reg, v);
                }
                a.ecall();
            }
            2 | 3 => {
                let at = addr(r >> 3);
                let f3 = [0, 1, 2, 3, 4, 5, 6][(r >> 40) as usize % 7];
                a.li(T1, at).load(f3, A0, T1, 0);
            }
            4 => {
                let at = addr(r >> 3);
                let syscon = (0x10_0000..0x10_1000).contains(&at);
                let code = (RAM..RAM + CODE_MAX).contains(&at);
                if !syscon && !code {
                    a.li(T1, at).li(A0, rnd()).store((r >> 40) as u32 % 4, A0, T1, 0);
                }
            }
            5 => {
                // A CSR: read any, write any but those the handler needs.
                let csr = (r >> 8) as u32 & 0xfff;
                let keep = [0x100, 0x105, 0x141, 0x180, 0x300, 0x305, 0x341];
                let pmp = (0x3a0..=0x3ef).contains(&csr);
                if r >> 40 & 1 == 0 || keep.contains(&csr) || pmp {
                    a.csr(2, A0, csr, ZERO);
                } else {
                    a.li(A1, rnd()).csr(1 + (r >> 41) as u32 % 3, A0, csr, A1);
                }
            }
            6 => {
                // Instructions VS-mode may not run, or only harmlessly.
                let words = [
                    if level == Level::Vs { 0x3020_0073u32 } else { 0x0000_0013 }, // mret (legal in M: a nop there)
                    0x2200_0073,                                                   // hfence.vvma
                    0x6200_0073,                                                   // hfence.gvma
                    0x6c03_4573,                                                   // hlv.d a0, (t1)
                    0x6ea3_4073,                                                   // hsv.d a0, (t1)
                    0x0010_0073,                                                   // ebreak
                    0x1200_0073,                                                   // sfence.vma
                    0x0000_100f,                                                   // fence.i
                    0x7b20_0073,                                                   // dret
                    0x0000_0000,                                                   // the all-zero illegal word
                    0xffff_ffff,                                                   // the all-ones illegal word
                ];
                a.li(T1, addr(r >> 3)).word(words[(r >> 8) as usize % words.len()]);
            }
            _ => {
                // A random word of an opcode that neither jumps nor stores.
                let ops = [
                    0x03u32, 0x07, 0x0b, 0x13, 0x1b, 0x2b, 0x33, 0x37, 0x3b, 0x43, 0x47, 0x4b, 0x4f, 0x53, 0x57, 0x5b,
                    0x77, 0x7b,
                ];
                let op = ops[(r >> 8) as usize % ops.len()];
                let mut w = (rnd() as u32 & !0x7f) | op;
                if (w >> 7) & 31 == T0 {
                    w &= !(31 << 7); // leave the handler's register alone
                }
                a.word(w);
            }
        }
    }
    match level {
        Level::Vs => a.li(A1, 0).sbi(SRST, 0, 0),
        // The syscon's power-off value (QEMU virt's "sifive,test").
        Level::M => a.li(T1, 0x10_0000).li(A0, 0x5555).store(2, A0, T1, 0),
    };
    let end = a.here();
    a.j(end);
    assert!((a.bytes().len() as u64) < CODE_MAX, "the program fits its code area");
    elf(&a.bytes(), RAM)
}

/// A guest that checks the SBI debug console's buffer rules (SBI 2.0
/// §12.1) and reports on the console itself, without branches: it writes
/// `text` with `console_write`, then prints, with `console_write_byte`,
/// `'I' + error` and `'0' + value` of that call, then `'I' + error` of a
/// call with the same low address but a non-zero `base_addr_hi`, and of one
/// whose buffer lies outside its RAM; then shuts down. Expected output:
/// `text`, `I`, `'0' + text.len()`, `F`, `F` (`F` = `'I'` - 3,
/// SBI_ERR_INVALID_PARAM).
pub fn dbcn_probe(text: &str) -> Vec<u8> {
    use reg::*;
    const RAM: u64 = 0x8000_0000;
    const MSG: u64 = RAM + 0x800;
    assert!(text.len() < 10);
    let mut a = Asm::new();
    let write_byte_of = |a: &mut Asm, from: u32, base: i32| {
        a.addi(A0, from, base).li(A7, DBCN).li(A6, 2).ecall();
    };
    // console_write(len, MSG, 0)
    a.li(A0, text.len() as u64).li(A1, MSG).li(A2, 0).li(A7, DBCN).li(A6, 0).ecall();
    a.add(S0, A0, ZERO).add(S1, A1, ZERO);
    write_byte_of(&mut a, S0, 'I' as i32);
    write_byte_of(&mut a, S1, '0' as i32);
    // The same low half, a high half of 1.
    a.li(A0, text.len() as u64).li(A1, MSG).li(A2, 1).li(A7, DBCN).li(A6, 0).ecall();
    write_byte_of(&mut a, A0, 'I' as i32);
    // Outside RAM.
    a.li(A0, 4).li(A1, 0x1000).li(A2, 0).li(A7, DBCN).li(A6, 0).ecall();
    write_byte_of(&mut a, A0, 'I' as i32);
    a.li(A1, 0).sbi(SRST, 0, 0);
    let end = a.here();
    a.j(end);
    let mut code = a.bytes();
    assert!(code.len() <= 0x800);
    code.resize(0x800, 0);
    code.extend_from_slice(text.as_bytes());
    elf(&code, RAM)
}

/// A guest that checks which counters its user programs may read (issue 12
/// item 3): from VS-mode it reads `time` itself, then runs short VU-mode
/// snippets that read `time`, `cycle` or `instret` and `ecall` back, first
/// with `scounteren` as the hypervisor left it at reset, then after setting
/// it to 0 and to TM alone. Its trap handler prints `'A' + scause` on the
/// SBI debug console: `I` for the snippet's ecall (8, from U-mode), `C` for
/// an illegal instruction (2); it skips a faulting read and returns to the
/// snippet, and after the ecall goes on with the next case, printing `|`
/// between cases. On a bare machine (scounteren = CY|TM|IR, as OpenSBI
/// leaves it) the output is `V|I|I|I|CI|I|CI`.
pub fn counter_probe() -> Vec<u8> {
    use reg::*;
    const RAM: u64 = 0x8000_0000;
    const SRET: u32 = 0x1020_0073;
    const SCAUSE: u32 = 0x142;
    const SEPC: u32 = 0x141;
    const STVEC: u32 = 0x105;
    const SSTATUS: u32 = 0x100;
    const SCOUNTEREN: u32 = 0x106;
    const SSTATUS_SPP: u64 = 1 << 8;
    let (time, cycle, instret) = (0xc01, 0xc00, 0xc02);
    let print = |a: &mut Asm, from: u32, plus: i32| {
        a.addi(A0, from, plus).li(A7, DBCN).li(A6, 2).ecall();
    };
    let mut a = Asm::new();
    a.word(0); // `j main`, patched below
    let sret_at = a.here();
    a.word(SRET);
    // The handler: print 'A' + scause; sepc += 4; back to the snippet
    // unless this was its ecall, else on to the case's continuation in s1.
    let handler = a.here();
    a.csr(2, T0, SCAUSE, ZERO);
    print(&mut a, T0, 'A' as i32);
    a.csr(2, T1, SEPC, ZERO).addi(T1, T1, 4).csr(1, ZERO, SEPC, T1);
    a.addi(T1, T0, -8).bne(T1, ZERO, sret_at);
    a.word(i_type(0, S1, 0, ZERO, 0x67)); // jalr x0, 0(s1)
                                          // The VU-mode snippets: read a counter, ecall.
    let snippet = |a: &mut Asm, csr: u32| {
        let at = a.here();
        a.csr(2, T2, csr, ZERO).ecall();
        at
    };
    let (u_time, u_cycle, u_instret) = (snippet(&mut a, time), snippet(&mut a, cycle), snippet(&mut a, instret));
    let main = a.here();
    a.words[0] = j_type(main as i32);
    a.li(T0, RAM + handler as u64).csr(1, ZERO, STVEC, T0);
    a.csr(2, T2, time, ZERO);
    print(&mut a, ZERO, 'V' as i32);
    let cases =
        [(None, u_time), (None, u_cycle), (None, u_instret), (Some(0), u_time), (Some(2), u_time), (None, u_cycle)];
    for (scounteren, at) in cases {
        print(&mut a, ZERO, '|' as i32);
        if let Some(v) = scounteren {
            a.li(T0, v).csr(1, ZERO, SCOUNTEREN, T0);
        }
        a.li(T0, RAM + at as u64).csr(1, ZERO, SEPC, T0);
        a.li(T0, SSTATUS_SPP).csr(3, ZERO, SSTATUS, T0); // to VU-mode
                                                         // s1 = the instruction after the sret: auipc s1, 0; addi s1, s1, 12.
        a.word(S1 << 7 | 0x17).addi(S1, S1, 12).word(SRET);
    }
    a.li(A1, 0).sbi(SRST, 0, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), RAM)
}

/// A guest that echoes what its UART receives until a `q` (echoed too),
/// then shuts down with SBI SRST: console input made visible.
pub fn uart_echo() -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, 0x1000_0000);
    let top = a.here();
    // Wait for LSR.DR (data ready, bit 0 of the register at offset 5).
    a.load(4, T1, T0, 5).andi(T1, T1, 1).xori(T1, T1, 1).bne(T1, ZERO, top);
    a.load(4, A0, T0, 0).sb(A0, T0, 0);
    a.li(T1, b'q' as u64).sub(T1, A0, T1).bne(T1, ZERO, top);
    a.li(A1, 0).sbi(SRST, 0, 0);
    let end = a.here();
    a.j(end);
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
    a.li(A1, 0).sbi(SRST, 0, 0);
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
        let mut c = Asm::new();
        c.andi(reg::T1, reg::T1, 1); // andi t1,t1,1
        c.xori(reg::T1, reg::T1, 1); // xori t1,t1,1
        c.sub(reg::T1, reg::A0, reg::T1); // sub t1,a0,t1
        c.load(4, reg::T1, reg::T0, 5); // lbu t1,5(t0)
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
        // Interpret the emitted lui/addi/slli sequence.
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

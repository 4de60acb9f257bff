//! JIT-versus-interpreter differential tests: random programs run on two
//! harts, one compiling and one interpreting, must end in the same
//! architectural state (registers, pc, counters, trap CSRs, memory, MMIO
//! traffic, even the number of instruction slots used).

use super::*;
use crate::csr::status;
use crate::{Priv, RunExit};
use std::sync::Arc;
use strata_devices::HartIrqs;
use strata_memory::GuestRam;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 1 << 20;
const HANDLER: u64 = RAM_BASE;
const PROG: u64 = RAM_BASE + 0x1000;
const DATA: u64 = RAM_BASE + 0x8_0000;
const DATA_SIZE: u64 = 0x1_0000;
const PT_ROOT: u64 = RAM_BASE + 0xf_0000;
const MMIO: u64 = 0x1000_0000;
/// Outside RAM and MMIO: an access fault in M-mode, a page fault under
/// the test's Sv39 tables (which leave this gigapage unmapped).
const HOLE: u64 = 0x4000_0000;

/// Deterministic MMIO: reads return a function of the address and of how
/// many accesses came before; every access is logged.
#[derive(Default)]
struct TestBus {
    log: Vec<(bool, u64, u8, u64)>,
}

impl Bus for TestBus {
    fn mmio_read(&mut self, pa: u64, size: u8) -> Option<u64> {
        if !(MMIO..MMIO + 0x1000).contains(&pa) {
            return None;
        }
        let v = (pa ^ (self.log.len() as u64) << 32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let v = if size == 8 { v } else { v & ((1u64 << (8 * size)) - 1) };
        self.log.push((false, pa, size, v));
        Some(v)
    }
    fn mmio_write(&mut self, pa: u64, size: u8, value: u64) -> bool {
        if !(MMIO..MMIO + 0x1000).contains(&pa) {
            return false;
        }
        self.log.push((true, pa, size, value));
        true
    }
    fn mtime(&self) -> u64 {
        self.log.len() as u64
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

// ---- RV encodings (ISA chapter 24 formats) ----------------------------------

fn r_type(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
    f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
}
fn i_type(imm: i32, rs1: u32, f3: u32, rd: u32, op: u32) -> u32 {
    ((imm as u32) & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op
}
fn s_type(imm: i32, rs2: u32, rs1: u32, f3: u32, op: u32) -> u32 {
    let imm = imm as u32;
    (imm >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1f) << 7 | op
}
fn b_type(off: i32, rs2: u32, rs1: u32, f3: u32) -> u32 {
    let o = off as u32;
    (o >> 12 & 1) << 31
        | (o >> 5 & 0x3f) << 25
        | rs2 << 20
        | rs1 << 15
        | f3 << 12
        | (o >> 1 & 0xf) << 8
        | (o >> 11 & 1) << 7
        | 0x63
}
fn j_type(off: i32, rd: u32) -> u32 {
    let o = off as u32;
    (o >> 20 & 1) << 31 | (o >> 1 & 0x3ff) << 21 | (o >> 11 & 1) << 20 | (o >> 12 & 0xff) << 12 | rd << 7 | 0x6f
}
fn u_type(imm: u32, rd: u32, op: u32) -> u32 {
    imm & 0xffff_f000 | rd << 7 | op
}
fn csr(f3: u32, csr: u32, rs1: u32, rd: u32) -> u32 {
    csr << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x73
}

/// One item of a program. Forward control flow names items, resolved once
/// the layout is known; `Smc` stores an instruction over a later `Word`.
#[derive(Clone)]
enum Item {
    Word(u32, bool),
    Half(u16),
    /// A branch (funct3, rs1, rs2) to the item `skip` places on.
    Branch(u32, u32, u32, usize),
    Jal(u32, usize),
    /// `c.j` / `c.beqz rs1'` forward.
    CJ(usize),
    CBeqz(u32, usize),
    /// `auipc x6, 0; jalr rd, off(x6)` forward.
    Jalr(u32, usize),
    /// `lui x5; addi x5; auipc x6; sw x5, off(x6)` writing `word` over the
    /// item `skip` places on (which is an overwritable Word).
    Smc(u32, usize),
    /// A counted loop over `body` (ALU words), `n` times, counter x28.
    Loop(u32, Vec<u32>),
    /// A counted loop (x28) that calls a function placed after it and
    /// `pad` words on (often in another page), which returns with `ret`;
    /// with `smc` the loop rewrites one of the function's instructions
    /// (`addi x10, x10, x28`) before each call. ALU words keep x1 intact.
    CallLoop {
        n: u32,
        body: Vec<u32>,
        pad: u32,
        f1: Vec<u32>,
        smc: bool,
        f2: Vec<u32>,
    },
}

/// An ALU word that does not write x1 (the return address).
fn alu_word_keep_ra(r: &mut Rng) -> u32 {
    let w = alu_word(r);
    if (w >> 7) & 31 == 1 {
        (w & !(31 << 7)) | 10 << 7
    } else {
        w
    }
}

const RD: &[u32] = &[1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];
const RS: &[u32] =
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];

fn alu_word(r: &mut Rng) -> u32 {
    let rd = r.pick(RD);
    let (a, b) = (r.pick(RS), r.pick(RS));
    let imm = match r.below(4) {
        0 => r.below(4096) as i32 - 2048,
        1 => r.below(32) as i32 - 16,
        2 => r.pick(&[0, -1, 2047, -2048, 1]),
        _ => r.below(64) as i32,
    };
    match r.below(7) {
        0 | 1 => {
            // OP: ADD SUB SLL SLT SLTU XOR SRL SRA OR AND and the M ops.
            let (f7, f3) = r.pick(&[
                (0, 0),
                (0x20, 0),
                (0, 1),
                (0, 2),
                (0, 3),
                (0, 4),
                (0, 5),
                (0x20, 5),
                (0, 6),
                (0, 7),
                (1, 0),
                (1, 1),
                (1, 2),
                (1, 3),
                (1, 4),
                (1, 5),
                (1, 6),
                (1, 7),
            ]);
            r_type(f7, b, a, f3, rd, 0x33)
        }
        2 => {
            // OP-32: ADDW SUBW SLLW SRLW SRAW MULW DIVW DIVUW REMW REMUW.
            let (f7, f3) =
                r.pick(&[(0, 0), (0x20, 0), (0, 1), (0, 5), (0x20, 5), (1, 0), (1, 4), (1, 5), (1, 6), (1, 7)]);
            r_type(f7, b, a, f3, rd, 0x3b)
        }
        3 => {
            // OP-IMM.
            match r.below(9) {
                f3 @ (0 | 2 | 3 | 4 | 6 | 7) => i_type(imm, a, f3 as u32, rd, 0x13),
                1 => i_type(imm & 63, a, 1, rd, 0x13),
                5 => i_type(imm & 63, a, 5, rd, 0x13),
                _ => i_type((imm & 63) | 0x400, a, 5, rd, 0x13),
            }
        }
        4 => {
            // OP-IMM-32: ADDIW SLLIW SRLIW SRAIW.
            match r.below(4) {
                0 => i_type(imm, a, 0, rd, 0x1b),
                1 => i_type(imm & 31, a, 1, rd, 0x1b),
                2 => i_type(imm & 31, a, 5, rd, 0x1b),
                _ => i_type((imm & 31) | 0x400, a, 5, rd, 0x1b),
            }
        }
        5 => u_type(r.next() as u32, rd, r.pick(&[0x37, 0x17])),
        _ => r_type(0, b, a, r.pick(&[0, 4, 6, 7]), if r.below(8) == 0 { 0 } else { rd }, 0x33),
    }
}

fn mem_word(r: &mut Rng) -> u32 {
    let rd = r.pick(RD);
    let (base, off) = match r.below(16) {
        0 => (9, r.below(64) as i32 * 8),      // MMIO, aligned
        1 => (7, r.below(64) as i32 - 32),     // a fault
        _ => (8, r.below(4096) as i32 - 2048), // RAM, any alignment
    };
    if r.below(2) == 0 {
        i_type(off, base, r.pick(&[0, 1, 2, 3, 4, 5, 6]), rd, 0x03)
    } else {
        s_type(off, r.pick(RS), base, r.pick(&[0, 1, 2, 3]), 0x23)
    }
}

fn other_word(r: &mut Rng) -> u32 {
    let rd = r.pick(RD);
    match r.below(14) {
        0 => csr(2, 0xb02, 0, rd),                      // csrr rd, minstret
        1 => csr(2, 0xb00, 0, rd),                      // csrr rd, mcycle
        2 => csr(1, 0x340, r.pick(RS), rd),             // csrrw rd, mscratch, rs
        3 => csr(2, 0x340, 0, rd),                      // csrr rd, mscratch
        4 => 0x0000_0073,                               // ecall
        5 => 0x0010_0073,                               // ebreak
        6 => 0xffff_ffff,                               // illegal
        7 => 0x0ff0_000f,                               // fence
        8 => 0x0000_100f,                               // fence.i
        9 if r.below(2) == 0 => csr(6, 0x300, 8, 0),    // csrsi mstatus, MIE: take the pending interrupt
        9 => r_type(9, 0, r.pick(&[0, 8]), 0, 0, 0x73), // sfence.vma x0 / x8
        // fmv.d.x f(rd), rs ; fadd.d f1, f2, f3 (rm dyn) ; fmv.x.d rd, f(n)
        10 => r_type(0x79, 0, r.pick(RS), 0, rd, 0x53),
        11 => r_type(0x01, rd & 7, rd & 15, 7, rd, 0x53),
        12 => r_type(0x71, 0, r.below(32) as u32, 0, rd, 0x53),
        // amoadd.d rd, rs2, (x8) on an aligned address: x8 is aligned.
        _ => r_type(0, r.pick(RS), 8, 3, rd, 0x2f),
    }
}

fn compressed(r: &mut Rng) -> u16 {
    let rdc = r.below(6) as u16 + 2; // x10..x15 as rd'
    let rd = r.pick(RD) as u16;
    let imm6 = r.below(64) as u16;
    match r.below(6) {
        0 => 0x0001 | (imm6 >> 5) << 12 | rd << 7 | (imm6 & 31) << 2, // c.addi
        1 => 0x4001 | (imm6 >> 5) << 12 | rd << 7 | (imm6 & 31) << 2, // c.li
        2 => 0x8002 | rd << 7 | (r.pick(&RD[1..]) as u16) << 2,       // c.mv
        3 => 0x9002 | rd << 7 | (r.pick(&RD[1..]) as u16) << 2,       // c.add
        // c.lw / c.sw rd', off(x8): offsets 0..124, multiples of 4.
        4 => {
            let off = r.below(32) as u16 * 4;
            0x4000 | (off >> 3 & 7) << 10 | (off >> 2 & 1) << 6 | (off >> 6 & 1) << 5 | rdc << 2
        }
        _ => {
            let off = r.below(32) as u16 * 4;
            0xc000 | (off >> 3 & 7) << 10 | (off >> 2 & 1) << 6 | (off >> 6 & 1) << 5 | rdc << 2
        }
    }
}

fn gen_program(r: &mut Rng, n: usize) -> Vec<Item> {
    let mut v = Vec::new();
    while v.len() < n {
        let it = match r.below(40) {
            0..=15 => Item::Word(alu_word(r), true),
            16..=25 => Item::Word(mem_word(r), false),
            26..=28 => Item::Word(other_word(r), false),
            29..=31 => Item::Half(compressed(r)),
            32 => Item::Branch(r.pick(&[0, 1, 4, 5, 6, 7]), r.pick(RS), r.pick(RS), 1 + r.below(8) as usize),
            33 => Item::Jal(r.pick(&[0, 1, 5]), 1 + r.below(8) as usize),
            34 => Item::CJ(1 + r.below(6) as usize),
            35 => Item::CBeqz(r.below(6) as u32 + 10, 1 + r.below(6) as usize),
            36 => Item::Jalr(r.pick(&[0, 1, 5]), 1 + r.below(8) as usize),
            37 => Item::Smc(alu_word(r), 1 + r.below(12) as usize),
            38 => Item::Loop(1 + r.below(20) as u32, (0..1 + r.below(6)).map(|_| alu_word(r)).collect()),
            39 if r.below(2) == 0 => {
                let words = |r: &mut Rng, n: u64| (0..n).map(|_| alu_word_keep_ra(r)).collect::<Vec<u32>>();
                let (nb, n1, n2) = (1 + r.below(4), r.below(4), r.below(4));
                let (body, f1, f2) = (words(r, nb), words(r, n1), words(r, n2));
                Item::CallLoop {
                    n: 1 + r.below(12) as u32,
                    body,
                    pad: if r.below(2) == 0 { r.below(8) as u32 } else { 200 + r.below(1200) as u32 },
                    f1,
                    smc: r.below(2) == 0,
                    f2,
                }
            }
            _ => Item::Branch(r.pick(&[0, 1]), r.pick(RS), 0, 1 + r.below(4) as usize),
        };
        v.push(it);
    }
    v
}

fn item_len(it: &Item) -> u64 {
    match it {
        Item::Word(..) | Item::Branch(..) | Item::Jal(..) => 4,
        Item::Half(_) | Item::CJ(_) | Item::CBeqz(..) => 2,
        Item::Jalr(..) => 8,
        Item::Smc(..) => 16,
        Item::Loop(_, body) => 4 * body.len() as u64 + 12,
        Item::CallLoop { body, pad, f1, smc, f2, .. } => {
            4 * (1
                + body.len() as u64
                + 4
                + *pad as u64
                + f1.len() as u64
                + if *smc { 7 } else { 0 }
                + f2.len() as u64
                + 1)
        }
    }
}

/// Lays the program out at `PROG`, ending in `csrw mie, x0; wfi` (with
/// nothing enabled the hart stops there). Returns the bytes.
fn assemble(items: &[Item]) -> Vec<u8> {
    let mut addr = Vec::with_capacity(items.len() + 1);
    let mut a = PROG;
    for it in items {
        addr.push(a);
        a += item_len(it);
    }
    addr.push(a);
    // Forward targets, or the next item where the format cannot reach
    // (CallLoop padding makes items long).
    let target = |i: usize, skip: usize, range: u64| {
        let t = addr[(i + skip).min(items.len())];
        if t - addr[i] < range {
            t
        } else {
            addr[i + 1]
        }
    };
    let mut out = Vec::new();
    let w = |out: &mut Vec<u8>, x: u32| out.extend_from_slice(&x.to_le_bytes());
    for (i, it) in items.iter().enumerate() {
        let here = addr[i];
        match it {
            Item::Word(x, _) => w(&mut out, *x),
            Item::Half(h) => out.extend_from_slice(&h.to_le_bytes()),
            Item::Branch(f3, a, b, s) => w(&mut out, b_type((target(i, *s, 4096) - here) as i32, *b, *a, *f3)),
            Item::Jal(rd, s) => w(&mut out, j_type((target(i, *s, 1 << 20) - here) as i32, *rd)),
            Item::CJ(s) => {
                let o = (target(i, *s, 2048) - here) as u16;
                let h = 0xa001
                    | (o >> 11 & 1) << 12
                    | (o >> 4 & 1) << 11
                    | (o >> 8 & 3) << 9
                    | (o >> 10 & 1) << 8
                    | (o >> 6 & 1) << 7
                    | (o >> 7 & 1) << 6
                    | (o >> 1 & 7) << 3
                    | (o >> 5 & 1) << 2;
                out.extend_from_slice(&h.to_le_bytes());
            }
            Item::CBeqz(rs, s) => {
                let o = (target(i, *s, 256) - here) as u16;
                let h = 0xc001
                    | (o >> 8 & 1) << 12
                    | (o >> 3 & 3) << 10
                    | ((*rs - 8) as u16) << 7
                    | (o >> 6 & 3) << 5
                    | (o >> 1 & 3) << 3
                    | (o >> 5 & 1) << 2;
                out.extend_from_slice(&h.to_le_bytes());
            }
            Item::Jalr(rd, s) => {
                w(&mut out, u_type(0, 6, 0x17));
                w(&mut out, i_type((target(i, *s, 2048) - here) as i32, 6, 0, *rd, 0x67));
            }
            Item::Smc(word, s) => {
                // Only overwrite a plain ALU word; otherwise store over
                // this item's own already-executed first word.
                let j = (i + s).min(items.len());
                let dst = match items.get(j) {
                    Some(Item::Word(_, true)) if addr[j] - (here + 8) < 2048 => addr[j],
                    _ => here,
                };
                let lo = ((*word as i32) << 20) >> 20;
                let hi = word.wrapping_sub(lo as u32);
                w(&mut out, u_type(hi, 5, 0x37));
                w(&mut out, i_type(lo, 5, 0, 5, 0x1b));
                w(&mut out, u_type(0, 6, 0x17));
                w(&mut out, s_type((dst - (here + 8)) as i32, 5, 6, 2, 0x23));
            }
            Item::Loop(n, body) => {
                w(&mut out, i_type(*n as i32, 0, 0, 28, 0x13));
                for x in body {
                    w(&mut out, *x);
                }
                w(&mut out, i_type(-1, 28, 0, 28, 0x13));
                w(&mut out, b_type(-(4 * body.len() as i32 + 4), 0, 28, 1));
            }
            Item::CallLoop { n, body, pad, f1, smc, f2 } => {
                let start = out.len();
                let words =
                    |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                let smc_len = if *smc { 6 } else { 0 };
                let func = 4 * (1 + body.len() as i32 + smc_len + 4 + *pad as i32);
                let patched = func + 4 * f1.len() as i32;
                let end = func + 4 * (f1.len() as i32 + if *smc { 1 } else { 0 } + f2.len() as i32 + 1);
                w(&mut out, i_type(*n as i32, 0, 0, 28, 0x13));
                words(&mut out, body);
                if *smc {
                    // x5 = addi x10, x10, x28, stored over the function's
                    // `patched` word (often in another page) before the call.
                    w(&mut out, i_type(20, 28, 1, 5, 0x13)); // slli x5, x28, 20
                    w(&mut out, u_type(0x50 << 12, 6, 0x37)); // lui x6, 0x50
                    w(&mut out, i_type(0x513, 6, 0, 6, 0x13)); // addi x6, x6, 0x513
                    w(&mut out, r_type(0, 6, 5, 6, 5, 0x33)); // or x5, x5, x6
                    let off = patched - (out.len() - start) as i32;
                    let hi = (off + 0x800) >> 12;
                    w(&mut out, u_type((hi << 12) as u32, 6, 0x17)); // auipc x6, hi
                    w(&mut out, s_type(off - (hi << 12), 5, 6, 2, 0x23)); // sw x5, lo(x6)
                }
                let at = (out.len() - start) as i32;
                w(&mut out, j_type(func - at, 1)); // call
                w(&mut out, i_type(-1, 28, 0, 28, 0x13));
                w(&mut out, b_type(4 - (at + 8), 0, 28, 1)); // back to the body
                let at = (out.len() - start) as i32;
                w(&mut out, j_type(end - at, 0)); // over the function
                for _ in 0..*pad {
                    w(&mut out, 0x0000_0013);
                }
                words(&mut out, f1);
                if *smc {
                    w(&mut out, i_type(0, 10, 0, 10, 0x13)); // addi x10, x10, 0 (rewritten)
                }
                words(&mut out, f2);
                w(&mut out, i_type(0, 1, 0, 0, 0x67)); // ret
                debug_assert_eq!((out.len() - start) as i32, end);
            }
        }
    }
    w(&mut out, csr(1, 0x304, 0, 0)); // csrw mie, x0
    w(&mut out, 0x1050_0073); // wfi
    out
}

/// The M-mode trap handler (x29-x31 are its own): interrupts disable
/// `mie` and return; exceptions resume after the faulting instruction.
fn handler() -> Vec<u8> {
    let code = [
        csr(2, 0x342, 0, 31),       // csrr x31, mcause
        b_type(40, 0, 31, 4),       // blt x31, x0, irq
        csr(2, 0x341, 0, 31),       // csrr x31, mepc
        i_type(0, 31, 5, 30, 0x03), // lhu x30, 0(x31)
        i_type(3, 30, 7, 30, 0x13), // andi x30, x30, 3
        i_type(2, 31, 0, 31, 0x13), // addi x31, x31, 2
        i_type(3, 0, 0, 29, 0x13),  // li x29, 3
        b_type(8, 29, 30, 1),       // bne x30, x29, 1f
        i_type(2, 31, 0, 31, 0x13), // addi x31, x31, 2
        csr(1, 0x341, 31, 0),       // 1: csrw mepc, x31
        0x3020_0073,                // mret
        csr(1, 0x304, 0, 0),        // irq: csrw mie, x0
        0x3020_0073,                // mret
    ];
    code.iter().flat_map(|w| w.to_le_bytes()).collect()
}

struct Run {
    hart: Hart,
    bus: TestBus,
}

/// Builds a hart with the program loaded. `paged`: run in S-mode under
/// Sv39 identity gigapages (with `HOLE` unmapped).
fn setup(seed: u64, prog: &[u8], jit: bool, paged: bool) -> Run {
    let ram = Arc::new(GuestRam::new(RAM_BASE, RAM_SIZE).unwrap());
    ram.write_bytes(HANDLER, &handler()).unwrap();
    ram.write_bytes(PROG, prog).unwrap();
    let mut r = Rng(seed ^ 0xd1b5_4a32_d192_ed03);
    for a in (DATA..DATA + DATA_SIZE).step_by(8) {
        ram.store(a, 8, r.next()).unwrap();
    }
    let irqs = HartIrqs::new();
    // MTIP pending: taken once code sets mstatus.MIE (mie.MTIE is on).
    irqs.set(strata_arch::irq::MTIP, true);
    let mut h = Hart::new(0, ram.clone(), irqs);
    assert_eq!(h.set_jit(jit), jit, "the JIT must be available on x86-64");
    h.reset(PROG);
    let edge = [0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 0x8000_0000, 0xffff_ffff, 0x7fff_ffff];
    for i in 1..32 {
        h.x[i] = if r.below(3) == 0 { edge[r.below(8) as usize] } else { r.next() };
    }
    h.x[7] = HOLE;
    h.x[8] = DATA + DATA_SIZE / 2;
    h.x[9] = MMIO;
    for f in h.f.iter_mut() {
        *f = r.next();
    }
    h.csr.mtvec = HANDLER;
    h.csr.mie = 1 << strata_arch::irq::MTIP;
    h.csr.mstatus = status::FS;
    if paged {
        // PMP entry 0: NAPOT over everything, RWX (§3.7: S-mode accesses
        // that match no entry fail).
        h.pmp.write_addr(0, u64::MAX);
        h.pmp.write_cfg(0, 0x1f);
        // Root table: gigapages VPN[2] = 0 (MMIO) and 2 (RAM), V R W X A D.
        let leaf = |pa: u64| (pa >> 12) << 10 | 0xcf;
        ram.store(PT_ROOT, 8, leaf(0)).unwrap();
        ram.store(PT_ROOT + 16, 8, leaf(0x8000_0000)).unwrap();
        h.csr.satp = 8 << 60 | PT_ROOT >> 12;
        h.csr.mstatus |= (Priv::S as u64) << status::MPP_SHIFT;
        h.set_mode(Priv::S, false);
    }
    h.atp_changed();
    Run { hart: h, bus: TestBus::default() }
}

/// Runs until the hart waits in WFI (or a generous step limit, which the
/// tests treat as a failure).
fn run(r: &mut Run, chunk: u64) -> bool {
    for _ in 0..100_000 {
        let (_, exit) = r.hart.run(&mut r.bus, chunk);
        if exit == RunExit::Idle {
            return true;
        }
    }
    false
}

fn state(r: &Run) -> String {
    let h = &r.hart;
    let mut mem = vec![0u8; (DATA_SIZE + 0x6000) as usize];
    let (d, p) = mem.split_at_mut(DATA_SIZE as usize);
    h.ram.read_bytes(DATA, d).unwrap();
    h.ram.read_bytes(PROG, p).unwrap();
    let sum = mem.iter().enumerate().fold(0u64, |s, (i, &b)| s.wrapping_mul(31).wrapping_add(b as u64 ^ i as u64));
    format!(
        "pc {:#x} prv {:?} instret {} steps {} x {:x?} f {:x?} mstatus {:#x} mepc {:#x} mcause {:#x} mtval {:#x} \
         mscratch {:#x} mie {:#x} fflags {:#x} exc {:?} int {:?} mem {:#x} mmio {:x?}",
        h.pc,
        h.prv,
        h.instret,
        h.stats.steps,
        h.x,
        h.f,
        h.csr.mstatus,
        h.csr.mepc,
        h.csr.mcause,
        h.csr.mtval,
        h.csr.mscratch,
        h.csr.mie,
        h.csr.fflags,
        h.stats.exceptions,
        h.stats.interrupts,
        sum,
        r.bus.log
    )
}

fn differential(seed: u64, paged: bool) {
    differential_with(seed, paged, None);
}

/// As `differential`; `buffer` gives the JIT a code buffer of that many
/// bytes instead of the default. Returns the JIT's statistics.
fn differential_with(seed: u64, paged: bool, buffer: Option<usize>) -> JitStats {
    let mut rng = Rng(seed);
    let n = 50 + rng.below(1500) as usize;
    let prog = assemble(&gen_program(&mut rng, n));
    let chunk = 1 + rng.below(300);
    let mut a = setup(seed, &prog, false, paged);
    let mut b = setup(seed, &prog, true, paged);
    if let Some(bytes) = buffer {
        b.hart.jit = Jit::with_buffer(bytes);
        assert!(b.hart.jit.is_some());
    }
    assert!(run(&mut a, chunk), "seed {seed:#x}: the interpreter did not reach the final wfi: {}", state(&a));
    assert!(run(&mut b, chunk), "seed {seed:#x}: the JIT did not reach the final wfi");
    let (sa, sb) = (state(&a), state(&b));
    assert!(sa == sb, "seed {seed:#x} (paged {paged}):\ninterp {sa}\njit    {sb}");
    // The program ran to its end, and compiled code did run.
    assert_eq!(a.hart.pc, PROG + prog.len() as u64 - 4 + 4, "seed {seed:#x}: stopped after the final wfi");
    let s = b.hart.jit_stats().unwrap();
    assert!(s.runs > 0);
    s
}

#[test]
fn jit_matches_interpreter_m_mode() {
    for seed in 0..300 {
        differential(seed, false);
    }
}

#[test]
fn jit_matches_interpreter_sv39() {
    for seed in 1000..1300 {
        differential(seed, true);
    }
}

/// A code buffer a few blocks large: it fills and is emptied over and
/// over, with links and jump-cache entries pointing into it.
#[test]
fn jit_matches_interpreter_with_a_tiny_code_buffer() {
    let mut flushes = 0;
    for seed in 2000..2060 {
        flushes += differential_with(seed, seed % 2 == 0, Some(24 << 10)).flushes;
    }
    assert!(flushes > 100, "the small buffer filled only {flushes} times");
}

/// Turning the JIT off and on again mid-run starts from a clean slate.
#[test]
fn jit_can_be_switched_off_and_on_while_running() {
    let mut rng = Rng(77);
    let prog = assemble(&gen_program(&mut rng, 800));
    let mut a = setup(77, &prog, false, false);
    let mut b = setup(77, &prog, true, false);
    assert!(run(&mut a, 100));
    for turn in 0.. {
        let (_, exit) = b.hart.run(&mut b.bus, 100);
        if exit == RunExit::Idle {
            break;
        }
        assert!(turn < 1_000_000);
        if turn % 3 == 0 {
            assert!(!b.hart.set_jit(false));
            assert!(b.hart.set_jit(true));
        }
    }
    assert_eq!(state(&a), state(&b));
}

#[test]
fn packing_round_trips_every_encoding() {
    for e in isa::ENCODINGS {
        let i = Insn { op: e.op, rd: 31, rs1: 17, rs2: 5, imm: -0x7654_3210 };
        assert_eq!(unpack(pack(&i)), i, "{}", e.name);
    }
    let i = Insn { op: Op::ILLEGAL, rd: 0, rs1: 0, rs2: 0, imm: i32::MAX };
    assert_eq!(unpack(pack(&i)), i);
}

/// A tiny hand-written block with a known outcome, independent of the
/// interpreter: sums 1..=10 in a loop, then a load faults in mid-block.
#[test]
fn a_block_traps_precisely() {
    let words = [
        i_type(10, 0, 0, 10, 0x13),     // li a0, 10
        i_type(0, 0, 0, 11, 0x13),      // li a1, 0
        r_type(0, 10, 11, 0, 11, 0x33), // loop: add a1, a1, a0
        i_type(-1, 10, 0, 10, 0x13),    // addi a0, a0, -1
        b_type(-8, 0, 10, 1),           // bnez a0, loop
        i_type(7, 11, 0, 12, 0x13),     // addi a2, a1, 7
        i_type(0, 7, 3, 13, 0x03),      // ld a3, 0(x7): access fault
        i_type(1, 0, 0, 14, 0x13),      // li a4, 1 (runs after the handler)
        csr(1, 0x304, 0, 0),            // csrw mie, x0
        0x1050_0073,                    // wfi
    ];
    let prog: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut r = setup(1, &prog, true, false);
    r.hart.x[13] = 0x1234;
    assert!(run(&mut r, 1000));
    let h = &r.hart;
    assert_eq!((h.x[10], h.x[11], h.x[12], h.x[13], h.x[14]), (0, 55, 62, 0x1234, 1));
    assert_eq!(h.csr.mcause, crate::trap::cause::LOAD_ACCESS);
    // The handler moved mepc past the load before returning.
    assert_eq!(h.csr.mepc, PROG + 24 + 4);
    assert_eq!(h.csr.mtval, HOLE);
    // 2 + 3 * 10 + 1 before the fault, 3 after it; the handler's 11
    // instructions (its exception path for a 32-bit instruction) between.
    assert_eq!(h.instret, 2 + 30 + 1 + 3 + 11);
}

/// The jump cache must not outlive a remapping (TLB flush) or a change of
/// privilege. S-mode code calls a function through a page whose mapping
/// it flips between two physical pages (each flip followed by
/// `sfence.vma`), then drops to U-mode and jumps to the same (S-only)
/// page, which must fault. Expected values come from the program, not
/// from the interpreter; the interpreter must agree too.
#[test]
fn jump_cache_follows_remaps_and_privilege() {
    const VA: u64 = 0xc000_0000;
    let (func_a, func_b, user) = (RAM_BASE + 0x6000, RAM_BASE + 0x7000, RAM_BASE + 0x8000);
    let (l1, l0) = (PT_ROOT + 0x1000, PT_ROOT + 0x2000);
    // rd = v for a page-aligned v below 2^43: lui + addiw of v >> 12 (a
    // positive 31-bit value), then slli 12.
    let li_page = |rd: u32, v: u64| -> Vec<u32> {
        let v = (v >> 12) as u32;
        let lo = ((v as i32) << 20) >> 20;
        let hi = v.wrapping_sub(lo as u32);
        vec![u_type(hi, rd, 0x37), i_type(lo, rd, 0, rd, 0x1b), i_type(12, rd, 1, rd, 0x13)]
    };
    let mut main = Vec::new();
    main.extend(li_page(8, VA)); // s0 = VA
    main.extend(li_page(19, l0)); // s3 = &L0[0]
    main.push(i_type((((func_a ^ func_b) >> 12) << 10) as i32, 0, 0, 20, 0x13)); // s4
    main.push(i_type(4, 0, 0, 9, 0x13)); // li s1, 4
    main.push(i_type(0, 0, 0, 18, 0x13)); // li s2, 0
    let lp = main.len();
    main.push(i_type(0, 19, 3, 5, 0x03)); // ld t0, 0(s3)
    main.push(r_type(0, 20, 5, 4, 5, 0x33)); // xor t0, t0, s4
    main.push(s_type(0, 5, 19, 3, 0x23)); // sd t0, 0(s3)
    main.push(r_type(9, 0, 8, 0, 0, 0x73)); // sfence.vma s0
    main.push(i_type(0, 8, 0, 1, 0x67)); // jalr ra, 0(s0)
    main.push(r_type(0, 10, 18, 0, 18, 0x33)); // add s2, s2, a0
    main.push(i_type(-1, 9, 0, 9, 0x13)); // addi s1, s1, -1
    let back = -(4 * (main.len() - lp) as i32);
    main.push(b_type(back, 0, 9, 1)); // bnez s1, loop
    main.extend(li_page(5, VA + 0x1000)); // sepc = the user page
    main.push(csr(1, 0x141, 5, 0)); // csrw sepc, t0
    main.push(i_type(0x100, 0, 0, 6, 0x13)); // li t1, SPP
    main.push(csr(3, 0x100, 6, 0)); // csrc sstatus, t1
    main.push(0x1020_0073); // sret
    let prog: Vec<u8> = main.iter().flat_map(|w| w.to_le_bytes()).collect();
    for chunk in [1, 7, 50, 10_000] {
        let mut runs = Vec::new();
        for jit in [false, true] {
            let mut r = setup(7, &prog, jit, true);
            r.hart.csr.mie = 0;
            let ram = r.hart.ram.clone();
            // Handler: record mcause in x30 and stop.
            let stop = [csr(2, 0x342, 0, 30), csr(1, 0x304, 0, 0), 0x1050_0073, j_type(-4, 0)];
            ram.write_bytes(HANDLER, &stop.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
            // li a0, 1 ; ret   /   li a0, 2 ; ret   /   jalr ra, 0(s0) ; ecall
            let code = |a: &[u32]| a.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
            ram.write_bytes(func_a, &code(&[i_type(1, 0, 0, 10, 0x13), i_type(0, 1, 0, 0, 0x67)])).unwrap();
            ram.write_bytes(func_b, &code(&[i_type(2, 0, 0, 10, 0x13), i_type(0, 1, 0, 0, 0x67)])).unwrap();
            ram.write_bytes(user, &code(&[i_type(0, 8, 0, 1, 0x67), 0x0000_0073])).unwrap();
            // VPN2 = 3 -> L1 -> L0: [0] = func_a (S, RX), [1] = user (U, RX).
            let table = |pa: u64| (pa >> 12) << 10 | 1;
            let leaf = |pa: u64, u: u64| (pa >> 12) << 10 | 0xcb | u << 4;
            ram.store(PT_ROOT + 3 * 8, 8, table(l1)).unwrap();
            ram.store(l1, 8, table(l0)).unwrap();
            ram.store(l0, 8, leaf(func_a, 0)).unwrap();
            ram.store(l0 + 8, 8, leaf(user, 1)).unwrap();
            assert!(run(&mut r, chunk));
            let h = &r.hart;
            // Calls went to B, A, B, A; then U-mode's jump to the S page faulted.
            assert_eq!(
                h.x[18],
                2 + 1 + 2 + 1,
                "jit {jit} chunk {chunk}: each call reached the page mapped at the time"
            );
            let fault = (h.x[30], h.csr.mepc, h.csr.mtval);
            assert_eq!(fault, (crate::trap::cause::INSN_PAGE, VA, VA), "jit {jit} chunk {chunk}");
            runs.push(state(&r));
        }
        assert_eq!(runs[0], runs[1], "chunk {chunk}");
    }
}

/// Calls and returns across pages go block to block through the jump
/// cache: 1000 calls of a function two pages away need only a handful of
/// entries from the run loop (without the cache, at least two per call).
#[test]
fn cross_page_calls_stay_in_compiled_code() {
    let mut code = vec![
        i_type(1000, 0, 0, 9, 0x13), // li s1, 1000
        i_type(0, 0, 0, 10, 0x13),   // li a0, 0
        j_type(0x2000 - 8, 1),       // loop: jal ra, func (at +0x2000)
        i_type(-1, 9, 0, 9, 0x13),   // addi s1, s1, -1
        b_type(-8, 0, 9, 1),         // bnez s1, loop
        csr(1, 0x304, 0, 0),         // csrw mie, x0
        0x1050_0073,                 // wfi
    ];
    code.resize(0x2000 / 4, 0x13);
    code.extend([i_type(1, 10, 0, 10, 0x13), i_type(0, 1, 0, 0, 0x67)]); // func: addi a0, a0, 1; ret
    let prog: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut r = setup(3, &prog, true, false);
    r.hart.csr.mie = 0;
    assert!(run(&mut r, 1 << 20));
    assert_eq!(r.hart.x[10], 1000);
    let s = r.hart.jit_stats().unwrap();
    assert!(s.runs < 50, "{} entries from the run loop for 1000 calls", s.runs);
}

//! JIT-versus-interpreter differential tests: random programs run on two
//! harts, one compiling and one interpreting, must end in the same
//! architectural state (registers, pc, counters, trap CSRs, memory, MMIO
//! traffic, even the number of instruction slots used).
//!
//! Programs are proptest values (lists of items, each an instruction or a
//! small structure: a branch, a loop, a call, self-modifying code), every
//! instruction encoded by the one encoding table (`strata_arch::isa`). A
//! failing program shrinks to a short one; the seed is printed
//! (`STRATA_SEED` replays it, `strata_testkit::prop`).

use super::*;
use crate::csr::{addr, satp, status};
use crate::{Priv, RunExit};
use proptest::prelude::*;
use proptest::sample::select;
use std::sync::Arc;
use strata_arch::irq;
use strata_arch::isa::{encode, encode_compressed, field, with_field};
use strata_arch::pte;
use strata_irq::HartIrqs;
use strata_memory::GuestRam;
use strata_testkit::prop::config;

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

// ---- programs ----------------------------------------------------------------

/// `encode` for the fixed programs below (panics on operands that do not
/// fit, which would be a bug in the test).
fn e(op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> u32 {
    encode(op, rd, rs1, rs2, imm)
}

/// A compressed instruction by its row in the table and its expansion.
fn c16(row: &str, op: Op, rd: u32, rs1: u32, rs2: u32, imm: i64) -> u16 {
    let want = Insn { op, rd: rd as u8, rs1: rs1 as u8, rs2: rs2 as u8, imm: imm as i32 };
    encode_compressed(row, &want).unwrap_or_else(|| panic!("{row} cannot encode {want:?}"))
}

/// One item of a program. Forward control flow names items, resolved once
/// the layout is known; `Smc` stores an instruction over a later `Word`.
#[derive(Clone, Debug)]
enum Item {
    Word(u32, bool),
    Half(u16),
    /// A branch (op, rs1, rs2) to the item `skip` places on.
    Branch(Op, u32, u32, usize),
    Jal(u32, usize),
    /// `c.j` / `c.beqz rs1'` forward.
    CJ(usize),
    CBeqz(u32, usize),
    /// `auipc x6, 0; jalr rd, off(x6)` forward.
    Jalr(u32, usize),
    /// `lui x5; addiw x5; auipc x6; sw x5, off(x6)` writing `word` over the
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

const RD: &[u32] = &[1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];
/// `RD` without x1, for code that must keep the return address.
const RD_NO_RA: &[u32] = &[2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];
const RS: &[u32] =
    &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];

/// OP: the base register-register ops and M.
const OPS: &[Op] = &[
    Op::ADD,
    Op::SUB,
    Op::SLL,
    Op::SLT,
    Op::SLTU,
    Op::XOR,
    Op::SRL,
    Op::SRA,
    Op::OR,
    Op::AND,
    Op::MUL,
    Op::MULH,
    Op::MULHSU,
    Op::MULHU,
    Op::DIV,
    Op::DIVU,
    Op::REM,
    Op::REMU,
];
/// OP-32.
const OPS_W: &[Op] =
    &[Op::ADDW, Op::SUBW, Op::SLLW, Op::SRLW, Op::SRAW, Op::MULW, Op::DIVW, Op::DIVUW, Op::REMW, Op::REMUW];
/// OP-IMM with a 12-bit immediate, and its shifts.
const OPS_IMM: &[Op] = &[Op::ADDI, Op::SLTI, Op::SLTIU, Op::XORI, Op::ORI, Op::ANDI];
const SHIFTS: &[Op] = &[Op::SLLI, Op::SRLI, Op::SRAI];
const SHIFTS_W: &[Op] = &[Op::SLLIW, Op::SRLIW, Op::SRAIW];
const LOADS: &[Op] = &[Op::LB, Op::LH, Op::LW, Op::LD, Op::LBU, Op::LHU, Op::LWU];
const STORES: &[Op] = &[Op::SB, Op::SH, Op::SW, Op::SD];

/// Every row of Zba, Zbb, Zbc, Zbs and Zicond.
fn bitmanip_ops() -> Vec<Op> {
    isa::ENCODINGS.iter().filter(|e| crate::bitmanip::handles(e.op)).map(|e| e.op).collect()
}

/// A bit-manipulation instruction; shift amounts favour 0, 31, 32, 63.
fn bitmanip_word(rd: impl Strategy<Value = u32>) -> impl Strategy<Value = u32> {
    let sh = prop_oneof![0i64..64, select(&[0i64, 1, 31, 32, 63][..])];
    (select(bitmanip_ops()), rd, select(RS), select(RS), sh).prop_map(|(op, d, a, b, sh)| {
        if crate::bitmanip::takes_shamt(op) {
            e(op, d, a, 0, if op == Op::RORIW { sh & 31 } else { sh })
        } else if crate::bitmanip::unary(op) {
            e(op, d, a, 0, 0)
        } else {
            e(op, d, a, b, 0)
        }
    })
}

fn imm12() -> impl Strategy<Value = i64> {
    prop_oneof![-2048i64..2048, -16i64..16, select(&[0i64, -1, 2047, -2048, 1][..]), 0i64..64]
}

/// An ALU instruction writing a register of `rds`.
fn alu_word(rds: &'static [u32]) -> BoxedStrategy<u32> {
    let (rd, rs) = (select(rds), select(RS));
    prop_oneof![
        2 => (select(OPS), rd.clone(), rs.clone(), rs.clone()).prop_map(|(op, d, a, b)| e(op, d, a, b, 0)),
        1 => (select(OPS_W), rd.clone(), rs.clone(), rs.clone()).prop_map(|(op, d, a, b)| e(op, d, a, b, 0)),
        1 => prop_oneof![
            2 => (select(OPS_IMM), rd.clone(), rs.clone(), imm12()).prop_map(|(op, d, a, i)| e(op, d, a, 0, i)),
            1 => (select(SHIFTS), rd.clone(), rs.clone(), 0i64..64).prop_map(|(op, d, a, i)| e(op, d, a, 0, i)),
        ],
        1 => prop_oneof![
            (rd.clone(), rs.clone(), imm12()).prop_map(|(d, a, i)| e(Op::ADDIW, d, a, 0, i)),
            (select(SHIFTS_W), rd.clone(), rs.clone(), 0i64..32).prop_map(|(op, d, a, i)| e(op, d, a, 0, i)),
        ],
        1 => (select(&[Op::LUI, Op::AUIPC][..]), rd.clone(), any::<u32>())
            .prop_map(|(op, d, v)| e(op, d, 0, 0, (v & 0xffff_f000) as i32 as i64)),
        1 => (select(&[Op::ADD, Op::XOR, Op::OR, Op::AND][..]), prop_oneof![7 => rd.clone(), 1 => Just(0)], rs.clone(), rs)
            .prop_map(|(op, d, a, b)| e(op, d, a, b, 0)),
        2 => bitmanip_word(prop_oneof![15 => rd, 1 => Just(0)]),
    ]
    .boxed()
}

/// A load or store: at MMIO (x9, aligned), at a hole (x7: a fault), or in
/// RAM (x8, any alignment).
fn mem_word() -> impl Strategy<Value = u32> {
    let at = prop_oneof![
        1 => (Just(9u32), (0i64..64).prop_map(|o| o * 8)),
        1 => (Just(7u32), -32i64..32),
        14 => (Just(8u32), -2048i64..2048),
    ];
    (select(RD), at, any::<bool>(), select(LOADS), select(STORES), select(RS)).prop_map(
        |(rd, (base, off), load, l, st, rs2)| {
            if load {
                e(l, rd, base, 0, off)
            } else {
                e(st, 0, base, rs2, off)
            }
        },
    )
}

/// CSR accesses, traps, fences, FP moves, an AMO.
fn other_word() -> impl Strategy<Value = u32> {
    (0u32..15, select(RD), select(RS), 0u32..32, any::<bool>()).prop_map(|(k, rd, rs, n, b)| match k {
        0 => e(Op::CSRRS, rd, 0, 0, addr::MINSTRET as i64),
        1 => e(Op::CSRRS, rd, 0, 0, addr::MCYCLE as i64),
        2 => e(Op::CSRRW, rd, rs, 0, addr::MSCRATCH as i64),
        3 => e(Op::CSRRS, rd, 0, 0, addr::MSCRATCH as i64),
        4 => e(Op::ECALL, 0, 0, 0, 0),
        5 => e(Op::EBREAK, 0, 0, 0, 0),
        6 => 0xffff_ffff, // illegal: matches no row
        7 => with_field(e(Op::FENCE, 0, 0, 0, 0), field::PRED_SUCC, 0xff).unwrap_or_default(),
        8 => e(Op::FENCE_I, 0, 0, 0, 0),
        // csrsi mstatus, MIE: take the pending interrupt.
        9 => e(Op::CSRRSI, 0, status::MIE as u32, 0, addr::MSTATUS as i64),
        10 => e(Op::SFENCE_VMA, 0, if b { 8 } else { 0 }, 0, 0),
        // fmv.d.x f(rd), rs ; fadd.d f(rd), f(rd&15), f(rd&7) (rm dyn) ; fmv.x.d rd, f(n)
        11 => e(Op::FMV_D_X, rd, rs, 0, 0),
        12 => with_field(e(Op::FADD_D, rd, rd & 15, rd & 7, 0), field::RM, 7).unwrap_or_default(),
        13 => e(Op::FMV_X_D, rd, n, 0, 0),
        // amoadd.d rd, rs2, (x8) on an aligned address: x8 is aligned.
        _ => e(Op::AMOADD_D, rd, 8, rs, 0),
    })
}

/// A compressed ALU instruction, C.LW/C.SW at x8, or a Zcb/Zcmop one
/// (illegal on harts without them).
fn compressed() -> impl Strategy<Value = u16> {
    let sext6 = |v: i64| (v << 58) >> 58;
    (0u32..12, select(RD), select(&RD[1..]), 0i64..64, 10u32..16, 0i64..32).prop_map(
        move |(k, rd, rs2, imm6, rdc, w)| {
            let rs2c = 8 + (w as u32 & 7);
            match k {
                0 => c16("C_ADDI", Op::ADDI, rd, rd, 0, sext6(imm6)),
                1 => c16("C_LI", Op::ADDI, rd, 0, 0, sext6(imm6)),
                2 => c16("C_JR_MV", Op::ADD, rd, 0, rs2, 0),
                3 => c16("C_EBREAK_JALR_ADD", Op::ADD, rd, rd, rs2, 0),
                // c.lw / c.sw rd', off(x8): offsets 0..124, multiples of 4.
                4 => c16("C_LW", Op::LW, rdc, 8, 0, w * 4),
                5 => c16("C_SW", Op::SW, 0, 8, rdc, w * 4),
                // Zcb at x8: byte offsets 0..3, halfword offsets 0 and 2.
                6 => c16("C_LBU", Op::LBU, rdc, 8, 0, w & 3),
                7 => [
                    c16("C_LH", Op::LH, rdc, 8, 0, w & 2),
                    c16("C_LHU", Op::LHU, rdc, 8, 0, w & 2),
                    c16("C_SB", Op::SB, 0, 8, rdc, w & 3),
                    c16("C_SH", Op::SH, 0, 8, rdc, w & 2),
                ][(imm6 & 3) as usize],
                8 => c16("C_MUL", Op::MUL, rdc, rdc, rs2c, 0),
                9 => [
                    c16("C_ZEXT_B", Op::ANDI, rdc, rdc, 0, 0xff),
                    c16("C_SEXT_B", Op::SEXT_B, rdc, rdc, 0, 0),
                    c16("C_ZEXT_H", Op::ZEXT_H, rdc, rdc, 0, 0),
                    c16("C_SEXT_H", Op::SEXT_H, rdc, rdc, 0, 0),
                    c16("C_ZEXT_W", Op::ADD_UW, rdc, rdc, 0, 0),
                    c16("C_NOT", Op::XORI, rdc, rdc, 0, -1),
                ][(imm6 % 6) as usize],
                // C.MOP.n: the row's first word expands to the no-op; pick n.
                10 => c16("C_MOP", Op::ADDI, 0, 0, 0, 0) | ((w as u16 & 7) << 8),
                _ => c16("C_SW", Op::SW, 0, 8, rdc, w * 4),
            }
        },
    )
}

fn item() -> impl Strategy<Value = Item> {
    let skip = |n: usize| 1..n;
    let call_loop = (
        1u32..13,
        prop::collection::vec(alu_word(RD_NO_RA), 1..5),
        prop_oneof![0u32..8, 200u32..1400],
        prop::collection::vec(alu_word(RD_NO_RA), 0..4),
        any::<bool>(),
        prop::collection::vec(alu_word(RD_NO_RA), 0..4),
    )
        .prop_map(|(n, body, pad, f1, smc, f2)| Item::CallLoop { n, body, pad, f1, smc, f2 });
    let branch_ops = vec![Op::BEQ, Op::BNE, Op::BLT, Op::BGE, Op::BLTU, Op::BGEU];
    prop_oneof![
        32 => alu_word(RD).prop_map(|w| Item::Word(w, true)),
        20 => mem_word().prop_map(|w| Item::Word(w, false)),
        6 => other_word().prop_map(|w| Item::Word(w, false)),
        6 => compressed().prop_map(Item::Half),
        2 => (select(branch_ops), select(RS), select(RS), skip(9)).prop_map(|(op, a, b, s)| Item::Branch(op, a, b, s)),
        2 => (select(&[0u32, 1, 5][..]), skip(9)).prop_map(|(rd, s)| Item::Jal(rd, s)),
        2 => skip(7).prop_map(Item::CJ),
        2 => (10u32..16, skip(7)).prop_map(|(rs, s)| Item::CBeqz(rs, s)),
        2 => (select(&[0u32, 1, 5][..]), skip(9)).prop_map(|(rd, s)| Item::Jalr(rd, s)),
        2 => (alu_word(RD), skip(13)).prop_map(|(w, s)| Item::Smc(w, s)),
        2 => (1u32..21, prop::collection::vec(alu_word(RD), 1..7)).prop_map(|(n, b)| Item::Loop(n, b)),
        1 => call_loop,
        1 => (select(&[Op::BEQ, Op::BNE][..]), select(RS), skip(5)).prop_map(|(op, a, s)| Item::Branch(op, a, 0, s)),
    ]
}

/// The machine state a program starts from: registers (often edge values)
/// and the seed of the data area's contents.
#[derive(Clone, Debug)]
struct Init {
    x: Vec<u64>,
    f: Vec<u64>,
    data: u64,
}

fn init() -> impl Strategy<Value = Init> {
    let edge = select(&[0, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 0x8000_0000, 0xffff_ffff, 0x7fff_ffff][..]);
    let x = prop::collection::vec(prop_oneof![2 => any::<u64>(), 1 => edge], 31);
    (x, prop::collection::vec(any::<u64>(), 32), any::<u64>()).prop_map(|(x, f, data)| Init { x, f, data })
}

/// A program, how many instructions a run gets at a time, and the start.
fn case(items: std::ops::Range<usize>) -> impl Strategy<Value = (Vec<Item>, u64, Init)> {
    (prop::collection::vec(item(), items), 1u64..301, init())
}

/// A start state for the hand-written programs: registers 1..31 and the
/// FP registers hold their number, data is from seed 0.
fn fixed_init() -> Init {
    Init { x: (1..32).collect(), f: (0..32).collect(), data: 0 }
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

/// `lui rd, hi; addiw rd, rd, lo` loading the 32-bit value `v`.
fn li32(rd: u32, v: u32) -> [u32; 2] {
    let lo = ((v as i32) << 20) >> 20;
    let hi = v.wrapping_sub(lo as u32);
    [e(Op::LUI, rd, 0, 0, hi as i32 as i64), e(Op::ADDIW, rd, rd, 0, lo as i64)]
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
    let nop = e(Op::ADDI, 0, 0, 0, 0);
    for (i, it) in items.iter().enumerate() {
        let here = addr[i];
        match it {
            Item::Word(x, _) => w(&mut out, *x),
            Item::Half(h) => out.extend_from_slice(&h.to_le_bytes()),
            Item::Branch(op, a, b, s) => w(&mut out, e(*op, 0, *a, *b, (target(i, *s, 4096) - here) as i64)),
            Item::Jal(rd, s) => w(&mut out, e(Op::JAL, *rd, 0, 0, (target(i, *s, 1 << 20) - here) as i64)),
            Item::CJ(s) => {
                let h = c16("C_J", Op::JAL, 0, 0, 0, (target(i, *s, 2048) - here) as i64);
                out.extend_from_slice(&h.to_le_bytes());
            }
            Item::CBeqz(rs, s) => {
                let h = c16("C_BEQZ", Op::BEQ, 0, *rs, 0, (target(i, *s, 256) - here) as i64);
                out.extend_from_slice(&h.to_le_bytes());
            }
            Item::Jalr(rd, s) => {
                w(&mut out, e(Op::AUIPC, 6, 0, 0, 0));
                w(&mut out, e(Op::JALR, *rd, 6, 0, (target(i, *s, 2048) - here) as i64));
            }
            Item::Smc(word, s) => {
                // Only overwrite a plain ALU word; otherwise store over
                // this item's own already-executed first word.
                let j = (i + s).min(items.len());
                let dst = match items.get(j) {
                    Some(Item::Word(_, true)) if addr[j] - (here + 8) < 2048 => addr[j],
                    _ => here,
                };
                li32(5, *word).iter().for_each(|&x| w(&mut out, x));
                w(&mut out, e(Op::AUIPC, 6, 0, 0, 0));
                w(&mut out, e(Op::SW, 0, 6, 5, (dst - (here + 8)) as i64));
            }
            Item::Loop(n, body) => {
                w(&mut out, e(Op::ADDI, 28, 0, 0, *n as i64));
                for x in body {
                    w(&mut out, *x);
                }
                w(&mut out, e(Op::ADDI, 28, 28, 0, -1));
                w(&mut out, e(Op::BNE, 0, 28, 0, -(4 * body.len() as i64 + 4)));
            }
            Item::CallLoop { n, body, pad, f1, smc, f2 } => {
                let start = out.len();
                let words =
                    |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                let smc_len = if *smc { 6 } else { 0 };
                let func = 4 * (1 + body.len() as i64 + smc_len + 4 + *pad as i64);
                let patched = func + 4 * f1.len() as i64;
                let end = func + 4 * (f1.len() as i64 + if *smc { 1 } else { 0 } + f2.len() as i64 + 1);
                w(&mut out, e(Op::ADDI, 28, 0, 0, *n as i64));
                words(&mut out, body);
                // The function's rewritable word: addi x10, x10, imm.
                let addi_a0 = e(Op::ADDI, 10, 10, 0, 0);
                if *smc {
                    // x5 = addi x10, x10, x28, stored over the function's
                    // `patched` word (often in another page) before the call.
                    let lo = ((addi_a0 as i32) << 20) >> 20;
                    w(&mut out, e(Op::SLLI, 5, 28, 0, 20)); // x5 = x28 in the immediate's place
                    w(&mut out, e(Op::LUI, 6, 0, 0, addi_a0.wrapping_sub(lo as u32) as i32 as i64));
                    w(&mut out, e(Op::ADDI, 6, 6, 0, lo as i64));
                    w(&mut out, e(Op::OR, 5, 5, 6, 0));
                    let off = patched - (out.len() - start) as i64;
                    let hi = (off + 0x800) >> 12;
                    w(&mut out, e(Op::AUIPC, 6, 0, 0, hi << 12));
                    w(&mut out, e(Op::SW, 0, 6, 5, off - (hi << 12)));
                }
                let at = (out.len() - start) as i64;
                w(&mut out, e(Op::JAL, 1, 0, 0, func - at)); // call
                w(&mut out, e(Op::ADDI, 28, 28, 0, -1));
                w(&mut out, e(Op::BNE, 0, 28, 0, 4 - (at + 8))); // back to the body
                let at = (out.len() - start) as i64;
                w(&mut out, e(Op::JAL, 0, 0, 0, end - at)); // over the function
                for _ in 0..*pad {
                    w(&mut out, nop);
                }
                words(&mut out, f1);
                if *smc {
                    w(&mut out, addi_a0); // rewritten
                }
                words(&mut out, f2);
                w(&mut out, e(Op::JALR, 0, 1, 0, 0)); // ret
                debug_assert_eq!((out.len() - start) as i64, end);
            }
        }
    }
    w(&mut out, e(Op::CSRRW, 0, 0, 0, addr::MIE as i64)); // csrw mie, x0
    w(&mut out, e(Op::WFI, 0, 0, 0, 0));
    out
}

/// The M-mode trap handler (x29-x31 are its own): interrupts disable
/// `mie` and return; exceptions resume after the faulting instruction.
fn handler() -> Vec<u8> {
    let csrr = |rd, n: u16| e(Op::CSRRS, rd, 0, 0, n as i64);
    let csrw = |n: u16, rs| e(Op::CSRRW, 0, rs, 0, n as i64);
    let code = [
        csrr(31, addr::MCAUSE),
        e(Op::BLT, 0, 31, 0, 40), // blt x31, x0, irq
        csrr(31, addr::MEPC),
        e(Op::LHU, 30, 31, 0, 0),
        e(Op::ANDI, 30, 30, 0, 3),
        e(Op::ADDI, 31, 31, 0, 2),
        e(Op::ADDI, 29, 0, 0, 3),
        e(Op::BNE, 0, 30, 29, 8), // bne x30, x29, 1f
        e(Op::ADDI, 31, 31, 0, 2),
        csrw(addr::MEPC, 31), // 1:
        e(Op::MRET, 0, 0, 0, 0),
        csrw(addr::MIE, 0), // irq:
        e(Op::MRET, 0, 0, 0, 0),
    ];
    code.iter().flat_map(|w| w.to_le_bytes()).collect()
}

struct Run {
    hart: Hart,
    bus: TestBus,
}

/// Builds a hart with the program loaded. `paged`: run in S-mode under
/// Sv39 identity gigapages (with `HOLE` unmapped).
fn setup(init: &Init, prog: &[u8], jit: bool, paged: bool) -> Run {
    let ram = Arc::new(GuestRam::new(RAM_BASE, RAM_SIZE).unwrap());
    ram.write_bytes(HANDLER, &handler()).unwrap();
    ram.write_bytes(PROG, prog).unwrap();
    // Data: a function of the address and the case's data seed.
    for a in (DATA..DATA + DATA_SIZE).step_by(8) {
        let v = (a ^ init.data).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ram.store(a, 8, v ^ v >> 29).unwrap();
    }
    let irqs = HartIrqs::new();
    // MTIP pending: taken once code sets mstatus.MIE (mie.MTIE is on).
    irqs.set(irq::MTIP, true);
    let mut h = Hart::new(0, ram.clone(), irqs);
    assert_eq!(h.set_jit(jit), jit, "the JIT must be available on x86-64");
    h.reset(PROG);
    h.x[1..].copy_from_slice(&init.x);
    h.x[7] = HOLE;
    h.x[8] = DATA + DATA_SIZE / 2;
    h.x[9] = MMIO;
    h.f.copy_from_slice(&init.f);
    h.csr.mtvec = HANDLER;
    h.csr.mie = irq::bit(irq::MTIP);
    h.csr.mstatus = status::FS;
    if paged {
        // PMP entry 0: NAPOT over everything, RWX (§3.7: S-mode accesses
        // that match no entry fail).
        h.pmp.write_addr(0, u64::MAX);
        h.pmp.write_cfg(0, 0x1f);
        // Root table: gigapages VPN[2] = 0 (MMIO) and 2 (RAM), V R W X A D.
        let leaf =
            |pa: u64| (pa >> pte::PAGE_SHIFT) << pte::PPN_SHIFT | pte::V | pte::R | pte::W | pte::X | pte::A | pte::D;
        ram.store(PT_ROOT, 8, leaf(0)).unwrap();
        ram.store(PT_ROOT + 16, 8, leaf(RAM_BASE)).unwrap();
        h.csr.satp = satp::SV39 << satp::MODE_SHIFT | PT_ROOT >> pte::PAGE_SHIFT;
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

/// Runs `items` on an interpreting and a compiling hart and compares them.
/// `buffer` gives the JIT a code buffer of that many bytes instead of the
/// default. Returns the JIT's statistics.
fn differential(items: &[Item], chunk: u64, init: &Init, paged: bool, buffer: Option<usize>) -> JitStats {
    differential_on(items, chunk, init, paged, buffer, crate::Extensions::DEFAULT)
}

/// [`differential`] on harts with extensions `exts`.
fn differential_on(
    items: &[Item],
    chunk: u64,
    init: &Init,
    paged: bool,
    buffer: Option<usize>,
    exts: crate::Extensions,
) -> JitStats {
    let prog = assemble(items);
    let mut a = setup(init, &prog, false, paged);
    let mut b = setup(init, &prog, true, paged);
    a.hart.set_extensions(exts);
    b.hart.set_extensions(exts);
    if let Some(bytes) = buffer {
        b.hart.jit = Jit::with_buffer(bytes);
        assert!(b.hart.jit.is_some());
    }
    assert!(run(&mut a, chunk), "the interpreter did not reach the final wfi: {}", state(&a));
    assert!(run(&mut b, chunk), "the JIT did not reach the final wfi");
    let (sa, sb) = (state(&a), state(&b));
    assert!(sa == sb, "(paged {paged}, chunk {chunk}):\ninterp {sa}\njit    {sb}");
    // The program ran to its end, and compiled code did run.
    assert_eq!(a.hart.pc, PROG + prog.len() as u64, "stopped after the final wfi");
    let s = b.hart.jit_stats().unwrap();
    assert!(s.runs > 0);
    s
}

#[test]
fn jit_matches_interpreter_m_mode() {
    proptest!(config("jit_matches_interpreter_m_mode", 300), |((items, chunk, init) in case(1..1550))| {
        differential(&items, chunk, &init, false, None);
    });
}

#[test]
fn jit_matches_interpreter_sv39() {
    proptest!(config("jit_matches_interpreter_sv39", 300), |((items, chunk, init) in case(1..1550))| {
        differential(&items, chunk, &init, true, None);
    });
}

/// Harts without Zba/Zbb/Zbc/Zbs/Zicond (`--cpu rv64gc`): their
/// instructions trap as illegal, at the same place on both.
#[test]
fn jit_matches_interpreter_rv64gc() {
    let cases = std::cell::Cell::new(0u64);
    proptest!(config("jit_matches_interpreter_rv64gc", 100), |((items, chunk, init) in case(1..1550), paged in any::<bool>())| {
        differential_on(&items, chunk, &init, paged, None, crate::Extensions::RV64GC);
        cases.set(cases.get() + 1);
    });
    assert!(cases.get() > 0);
}

/// Harts with every extension (`--cpu max`): Zcb's and Zcmop's
/// compressed forms run rather than trap.
#[test]
fn jit_matches_interpreter_max() {
    proptest!(config("jit_matches_interpreter_max", 150), |((items, chunk, init) in case(1..1550), paged in any::<bool>())| {
        differential_on(&items, chunk, &init, paged, None, crate::Extensions::MAX);
    });
}

/// A code buffer a few blocks large: it fills and is emptied over and
/// over, with links and jump-cache entries pointing into it.
#[test]
fn jit_matches_interpreter_with_a_tiny_code_buffer() {
    let flushes = std::cell::Cell::new(0);
    proptest!(config("jit_matches_interpreter_with_a_tiny_code_buffer", 60),
        |((items, chunk, init) in case(1..1550), paged in any::<bool>())| {
        flushes.set(flushes.get() + differential(&items, chunk, &init, paged, Some(24 << 10)).flushes);
    });
    assert!(flushes.get() > 100, "the small buffer filled only {} times", flushes.get());
}

/// Turning the JIT off and on again mid-run starts from a clean slate.
#[test]
fn jit_can_be_switched_off_and_on_while_running() {
    proptest!(config("jit_can_be_switched_off_and_on_while_running", 8), |((items, _, init) in case(800..801))| {
        let prog = assemble(&items);
        let mut a = setup(&init, &prog, false, false);
        let mut b = setup(&init, &prog, true, false);
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
        prop_assert_eq!(state(&a), state(&b));
    });
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
        e(Op::ADDI, 10, 0, 0, 10),               // li a0, 10
        e(Op::ADDI, 11, 0, 0, 0),                // li a1, 0
        e(Op::ADD, 11, 11, 10, 0),               // loop: add a1, a1, a0
        e(Op::ADDI, 10, 10, 0, -1),              // addi a0, a0, -1
        e(Op::BNE, 0, 10, 0, -8),                // bnez a0, loop
        e(Op::ADDI, 12, 11, 0, 7),               // addi a2, a1, 7
        e(Op::LD, 13, 7, 0, 0),                  // ld a3, 0(x7): access fault
        e(Op::ADDI, 14, 0, 0, 1),                // li a4, 1 (runs after the handler)
        e(Op::CSRRW, 0, 0, 0, addr::MIE as i64), // csrw mie, x0
        e(Op::WFI, 0, 0, 0, 0),
    ];
    let prog: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut r = setup(&fixed_init(), &prog, true, false);
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
        let [lui, addiw] = li32(rd, (v >> 12) as u32);
        vec![lui, addiw, e(Op::SLLI, rd, rd, 0, 12)]
    };
    let mut main = Vec::new();
    main.extend(li_page(8, VA)); // s0 = VA
    main.extend(li_page(19, l0)); // s3 = &L0[0]
    main.push(e(Op::ADDI, 20, 0, 0, (((func_a ^ func_b) >> pte::PAGE_SHIFT) << pte::PPN_SHIFT) as i64)); // s4
    main.push(e(Op::ADDI, 9, 0, 0, 4)); // li s1, 4
    main.push(e(Op::ADDI, 18, 0, 0, 0)); // li s2, 0
    let lp = main.len();
    main.push(e(Op::LD, 5, 19, 0, 0)); // ld t0, 0(s3)
    main.push(e(Op::XOR, 5, 5, 20, 0)); // xor t0, t0, s4
    main.push(e(Op::SD, 0, 19, 5, 0)); // sd t0, 0(s3)
    main.push(e(Op::SFENCE_VMA, 0, 8, 0, 0)); // sfence.vma s0
    main.push(e(Op::JALR, 1, 8, 0, 0)); // jalr ra, 0(s0)
    main.push(e(Op::ADD, 18, 18, 10, 0)); // add s2, s2, a0
    main.push(e(Op::ADDI, 9, 9, 0, -1)); // addi s1, s1, -1
    let back = -(4 * (main.len() - lp) as i32);
    main.push(e(Op::BNE, 0, 9, 0, back as i64)); // bnez s1, loop
    main.extend(li_page(5, VA + 0x1000)); // sepc = the user page
    main.push(e(Op::CSRRW, 0, 5, 0, addr::SEPC as i64)); // csrw sepc, t0
    main.push(e(Op::ADDI, 6, 0, 0, status::SPP as i64)); // li t1, SPP
    main.push(e(Op::CSRRC, 0, 6, 0, addr::SSTATUS as i64)); // csrc sstatus, t1
    main.push(e(Op::SRET, 0, 0, 0, 0));
    let prog: Vec<u8> = main.iter().flat_map(|w| w.to_le_bytes()).collect();
    for chunk in [1, 7, 50, 10_000] {
        let mut runs = Vec::new();
        for jit in [false, true] {
            let mut r = setup(&fixed_init(), &prog, jit, true);
            r.hart.csr.mie = 0;
            let ram = r.hart.ram.clone();
            // Handler: record mcause in x30 and stop.
            let stop = [
                e(Op::CSRRS, 30, 0, 0, addr::MCAUSE as i64),
                e(Op::CSRRW, 0, 0, 0, addr::MIE as i64),
                e(Op::WFI, 0, 0, 0, 0),
                e(Op::JAL, 0, 0, 0, -4),
            ];
            ram.write_bytes(HANDLER, &stop.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
            // li a0, 1 ; ret   /   li a0, 2 ; ret   /   jalr ra, 0(s0) ; ecall
            let code = |a: &[u32]| a.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
            let ret = e(Op::JALR, 0, 1, 0, 0);
            ram.write_bytes(func_a, &code(&[e(Op::ADDI, 10, 0, 0, 1), ret])).unwrap();
            ram.write_bytes(func_b, &code(&[e(Op::ADDI, 10, 0, 0, 2), ret])).unwrap();
            ram.write_bytes(user, &code(&[e(Op::JALR, 1, 8, 0, 0), e(Op::ECALL, 0, 0, 0, 0)])).unwrap();
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
        e(Op::ADDI, 9, 0, 0, 1000),              // li s1, 1000
        e(Op::ADDI, 10, 0, 0, 0),                // li a0, 0
        e(Op::JAL, 1, 0, 0, 0x2000 - 8),         // loop: jal ra, func (at +0x2000)
        e(Op::ADDI, 9, 9, 0, -1),                // addi s1, s1, -1
        e(Op::BNE, 0, 9, 0, -8),                 // bnez s1, loop
        e(Op::CSRRW, 0, 0, 0, addr::MIE as i64), // csrw mie, x0
        e(Op::WFI, 0, 0, 0, 0),
    ];
    code.resize(0x2000 / 4, e(Op::ADDI, 0, 0, 0, 0));
    code.extend([e(Op::ADDI, 10, 10, 0, 1), e(Op::JALR, 0, 1, 0, 0)]); // func: addi a0, a0, 1; ret
    let prog: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    let mut r = setup(&fixed_init(), &prog, true, false);
    r.hart.csr.mie = 0;
    assert!(run(&mut r, 1 << 20));
    assert_eq!(r.hart.x[10], 1000);
    let s = r.hart.jit_stats().unwrap();
    assert!(s.runs < 50, "{} entries from the run loop for 1000 calls", s.runs);
}

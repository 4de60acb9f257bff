//! The TLB's hit and miss counters (shown by `--stats`, kept per address
//! space for the hypervisor) must count every load and store once, whether
//! the interpreter ran it or JIT code probed the TLB inline. A regression:
//! with the JIT on, inline hits went uncounted, and a boot reported 2.7 M
//! hits where it made 340 M.

mod common;

use common::{hart_with, NoDevices, BASE};
use strata_arch::isa::{encode, Op};
const DATA: u64 = BASE + 0x10_0000;

fn auipc(rd: u32, v: u32) -> u32 {
    encode(Op::AUIPC, rd, 0, 0, (v & 0xffff_f000) as i32 as i64)
}
fn ld(rd: u32, rs1: u32, imm: i32) -> u32 {
    encode(Op::LD, rd, rs1, 0, imm as i64)
}
fn lw(rd: u32, rs1: u32, imm: i32) -> u32 {
    encode(Op::LW, rd, rs1, 0, imm as i64)
}
fn sd(rs1: u32, rs2: u32, imm: i32) -> u32 {
    encode(Op::SD, 0, rs1, rs2, imm as i64)
}
fn addi(rd: u32, rs1: u32, imm: i32) -> u32 {
    encode(Op::ADDI, rd, rs1, 0, imm as i64)
}

const ITERATIONS: i32 = 1500;
/// Loads and stores per iteration of the loop below.
const PER_ITERATION: u64 = 6;

/// A loop over three data pages (one access crosses a page boundary, so
/// takes the slow path), then a spin without data accesses.
fn program() -> Vec<u32> {
    let (t0, t1, t2, a0, a1) = (5, 6, 7, 10, 11);
    let mut p = vec![
        auipc(t1, (DATA - BASE) as u32), // at BASE: t1 = DATA
        addi(t0, 0, ITERATIONS),
        addi(t2, t1, 0x7fc), // t2 = DATA + 0x7fc
        addi(t2, t2, 0x7fc), // t2 = DATA + 0xff8
    ];
    let top = p.len();
    p.extend([
        ld(a0, t1, 0),
        sd(t1, a0, 8),
        ld(a1, t2, 0x10),  // the next page
        sd(t2, a1, 0x7f0), // still the next page
        lw(a0, t2, 0x6),   // DATA + 0xffe: crosses into the next page
        sd(t1, a0, 0x400),
        addi(t0, t0, -1),
    ]);
    let here = p.len();
    p.push(encode(Op::BNE, 0, t0, 0, (top as i64 - here as i64) * 4)); // bnez t0, top
    p.push(encode(Op::JAL, 0, 0, 0, 0)); // j .
    p
}

/// Runs the program to its spin; returns (data hits + data misses, hits,
/// misses), as the TLB counted them.
fn run(jit: bool) -> (u64, u64, u64) {
    let (mut h, _, _) = hart_with(&program(), 4 << 20);
    assert_eq!(h.set_jit(jit), jit, "the JIT is available on this host");
    let mut guard = 0;
    while h.x[5] != 0 || h.pc != BASE + 4 * (program().len() as u64 - 1) {
        h.run(&mut NoDevices, 1000);
        guard += 1;
        assert!(guard < 10_000, "the program did not finish");
    }
    let t = h.tlb_stats();
    let hits: u64 = t.slot_hits.iter().sum::<u64>() - t.fetch_hits;
    let misses = t.misses[1] + t.misses[2];
    (hits + misses, hits, misses)
}

#[test]
fn every_access_is_counted_once_with_and_without_the_jit() {
    let want = ITERATIONS as u64 * PER_ITERATION;
    let (interp, ..) = run(false);
    // The page-crossing load is split per byte in the slow path: each of
    // its 4 bytes is looked up on its own.
    let crossing_extra = ITERATIONS as u64 * 3;
    assert_eq!(interp, want + crossing_extra, "interpreter");
    let (jit, hits, misses) = run(true);
    assert_eq!(jit, want + crossing_extra, "JIT ({hits} hits, {misses} misses)");
    assert!(hits > want / 2, "most accesses hit inline ({hits} hits, {misses} misses)");
}

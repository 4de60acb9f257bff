//! Data watchpoints as the hart reports them (`Hart::run_watched`,
//! `Hart::step_watched`): every data access by virtual address, after the
//! instruction ran; none for one that trapped.

mod common;

use std::collections::BTreeSet;

use common::{hart_with, NoDevices, BASE};
use strata_arch::isa::{encode, Op};
use strata_hart::{DebugHit, RunExit, Touched};

const A0: u32 = 10;
const A1: u32 = 11;
const A2: u32 = 12;
/// Where the program's data lives (in RAM, M-mode: virtual = physical).
const DATA: u64 = BASE + 0x1000;

/// a0 = DATA (`auipc a0, 1` at BASE); then the body; then `j .` (the
/// hart spins).
fn program(body: &[u32]) -> Vec<u32> {
    let mut p = vec![encode(Op::AUIPC, A0, 0, 0, 0x1000)];
    p.extend_from_slice(body);
    p.push(encode(Op::JAL, 0, 0, 0, 0));
    p
}

/// Runs `body` one instruction at a time to its end, collecting what each
/// instruction touched.
fn touches(body: &[u32]) -> Vec<Touched> {
    let (mut h, _irqs, _ram) = hart_with(&program(body), 1 << 16);
    let end = BASE + 4 * (1 + body.len() as u64);
    let mut out = Vec::new();
    for _ in 0..100 {
        if h.pc == end {
            return out;
        }
        out.extend(h.step_watched(&mut NoDevices));
    }
    panic!("the program did not reach its end");
}

#[test]
fn loads_stores_and_amos_report_their_bytes() {
    let got = touches(&[
        encode(Op::SD, 0, A0, A1, 8),        // sd a1, 8(a0)
        encode(Op::LBU, A2, A0, 0, 3),       // lbu a2, 3(a0)
        encode(Op::AMOADD_W, A2, A0, A1, 0), // amoadd.w a2, a1, (a0)
        encode(Op::LD, A0, A0, 0, 16),       // ld a0, 16(a0): the address is from a0 before it is written
        encode(Op::ADDI, A1, A1, 0, 1),      // no data access
    ]);
    assert_eq!(
        got,
        [
            Touched { va: DATA + 8, len: 8, read: false, write: true },
            Touched { va: DATA + 3, len: 1, read: true, write: false },
            Touched { va: DATA, len: 4, read: true, write: true },
            Touched { va: DATA + 16, len: 8, read: true, write: false },
        ]
    );
}

#[test]
fn a_trapping_access_touches_nothing() {
    // a0 = 0: nothing is mapped there on this bus, so the load faults and
    // goes to mtvec (0): the fetch there faults too, over and over.
    let (mut h, _irqs, _ram) = hart_with(&[encode(Op::LD, A1, 0, 0, 0)], 1 << 16);
    assert_eq!(h.step_watched(&mut NoDevices), None);
    assert_ne!(h.pc, BASE + 4, "the load trapped");
}

#[test]
fn run_watched_stops_after_the_access_and_breakpoints_still_work() {
    let body = [
        encode(Op::ADDI, A1, 0, 0, 42),
        encode(Op::SW, 0, A0, A1, 0), // sw a1, 0(a0): watched
        encode(Op::ADDI, A2, 0, 0, 7),
    ];
    let (mut h, _irqs, ram) = hart_with(&program(&body), 1 << 16);
    let store_pc = BASE + 4 * 2;
    let mut seen = 0;
    let (_, exit, hit) = h.run_watched(&mut NoDevices, 1000, &BTreeSet::new(), &mut |t| {
        seen += 1;
        t.write && t.va <= DATA + 2 && DATA + 2 < t.va + t.len
    });
    assert_eq!(hit, Some(DebugHit::Watch(Touched { va: DATA, len: 4, read: false, write: true })));
    assert_eq!(exit, RunExit::Budget);
    assert_eq!(h.pc, store_pc + 4, "stopped after the store, not before");
    assert_eq!(ram.load(DATA, 4).unwrap(), 42, "the store happened");
    assert_eq!(seen, 1, "only the store accessed data");
    // A breakpoint ahead still stops before its instruction.
    let brk = BTreeSet::from([store_pc + 8]);
    let (_, _, hit) = h.run_watched(&mut NoDevices, 1000, &brk, &mut |_| false);
    assert_eq!(hit, Some(DebugHit::Break));
    assert_eq!(h.pc, store_pc + 8);
}

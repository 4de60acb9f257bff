//! Zawrs (Unpriv. "Zawrs" 1.01) on the hart: a WRS with a valid
//! reservation and no interrupt pending stalls, which on Strata ends the
//! hart's turn and marks it as waiting for another hart (`paused`); the
//! reservation does not survive the turn, so the next WRS completes at
//! once. The trap rules are in `tests/conformance/tests/zawrs.S`.

use std::sync::Arc;

use strata_arch::ext::Extensions;
use strata_arch::isa::{encode, Op};
use strata_irq::HartIrqs;
use strata_memory::GuestRam;

use crate::{Hart, NoBus, RunExit};

/// Where this test's RAM starts (a bare hart has no board: any address).
const RAM: u64 = 0x8000_0000;
const DATA: u64 = RAM + 0x800;

/// A hart at `RAM` in M-mode running `prog`, x10 = `DATA`.
fn hart(exts: Extensions, prog: &[u32]) -> Hart {
    let ram = Arc::new(GuestRam::new(RAM, 1 << 16).unwrap());
    for (k, w) in prog.iter().enumerate() {
        ram.store(RAM + 4 * k as u64, 4, u64::from(*w)).unwrap();
    }
    let mut h = Hart::new(0, ram, HartIrqs::new());
    h.set_extensions(exts);
    h.pc = RAM;
    h.x[10] = DATA;
    h
}

/// lr.d; WRS; addi x6, x0, 1; WRS again (no reservation now); addi x7, x0, 1.
fn program(wrs: Op) -> Vec<u32> {
    vec![
        encode(Op::LR_D, 5, 10, 0, 0),
        encode(wrs, 0, 0, 0, 0),
        encode(Op::ADDI, 6, 0, 0, 1),
        encode(wrs, 0, 0, 0, 0),
        encode(Op::ADDI, 7, 0, 0, 1),
        encode(Op::JAL, 0, 0, 0, 0),
    ]
}

#[test]
fn a_wrs_with_a_reservation_ends_the_turn_once() {
    for wrs in [Op::WRS_NTO, Op::WRS_STO] {
        let mut h = hart(Extensions::MAX, &program(wrs));
        let (used, exit) = h.run(&mut NoBus, 1000);
        assert_eq!((used, exit), (2, RunExit::Budget), "{wrs:?}: the turn ends after the stalling WRS");
        assert_eq!(h.pc, RAM + 8, "{wrs:?}: the WRS retired");
        assert!(h.paused, "{wrs:?}: the thread is told to yield");
        assert_eq!(h.stats.wrs_stalls, 1);
        // Next turn: the reservation is gone, the second WRS does not stall.
        let (used, _) = h.run(&mut NoBus, 20);
        assert_eq!(used, 20, "{wrs:?}: ran the whole budget");
        assert_eq!((h.x[6], h.x[7], h.stats.wrs_stalls), (1, 1, 1), "{wrs:?}");
    }
}

#[test]
fn without_a_reservation_a_wrs_does_not_stall() {
    let prog = [encode(Op::WRS_NTO, 0, 0, 0, 0), encode(Op::WRS_STO, 0, 0, 0, 0), encode(Op::JAL, 0, 0, 0, 0)];
    let mut h = hart(Extensions::MAX, &prog);
    let (used, _) = h.run(&mut NoBus, 10);
    assert_eq!((used, h.stats.wrs_stalls, h.paused), (10, 0, false));
}

#[test]
fn without_zawrs_wrs_is_illegal() {
    let mut h = hart(Extensions::DEFAULT, &program(Op::WRS_NTO));
    h.csr.mtvec = RAM + 0x400;
    h.run(&mut NoBus, 2);
    assert_eq!((h.csr.mcause, h.csr.mtval), (2, 0x00d0_0073), "illegal instruction, the bits in mtval");
}

//! §3.1.9: CSRRS/CSRRC on `mip` modify only its software-writable bits. A
//! device's SEIP line is ORed into what a read returns, but must not be
//! latched into the software SEIP bit by a read-modify-write (a regression:
//! OpenSBI clearing STIP while a device interrupt was pending left SEIP set
//! for good, and the guest livelocked on a PLIC with nothing to claim).

mod common;

use common::{hart_with, NoDevices};
use strata_arch::csr::addr::MIP;
use strata_arch::irq::{self as mip, bit};
use strata_arch::isa::{encode, Op};

fn csr(op: Op, rd: u32, rs1: u32, n: u16) -> u32 {
    encode(op, rd, rs1, 0, n as i64)
}

#[test]
fn csrrc_on_mip_does_not_latch_a_device_seip() {
    // li t0, 1 << 5 (STIP); csrrs x0, mip, t0; csrrc x0, mip, t0; csrrs x0, mip, x0 (a read)
    let prog = [
        encode(Op::ADDI, 5, 0, 0, bit(mip::STIP) as i64),
        csr(Op::CSRRS, 0, 5, MIP),
        csr(Op::CSRRC, 0, 5, MIP),
        csr(Op::CSRRS, 6, 0, MIP),
    ];
    let (mut h, irqs, _) = hart_with(&prog, 1 << 20);
    irqs.set(mip::SEIP, true); // the PLIC's S-context output is high
    for _ in 0..prog.len() {
        h.step(&mut NoDevices).expect("no trap");
    }
    assert_eq!(h.x[6] >> mip::SEIP & 1, 1, "a read shows the device line");
    assert_eq!(h.x[6] >> mip::STIP & 1, 0, "STIP was cleared");
    irqs.set(mip::SEIP, false); // the device is served
    assert_eq!(h.csr_peek(MIP).unwrap() >> mip::SEIP & 1, 0, "SEIP must fall with the line");
}

#[test]
fn software_seip_is_still_writable() {
    // li t0, 1 << 9 (SEIP); csrrs x0, mip, t0
    let prog = [encode(Op::ADDI, 5, 0, 0, bit(mip::SEIP) as i64), csr(Op::CSRRS, 0, 5, MIP)];
    let (mut h, _, _) = hart_with(&prog, 1 << 20);
    for _ in 0..prog.len() {
        h.step(&mut NoDevices).expect("no trap");
    }
    assert_eq!(h.csr_peek(MIP).unwrap() >> mip::SEIP & 1, 1);
}

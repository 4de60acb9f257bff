//! §3.1.9: CSRRS/CSRRC on `mip` modify only its software-writable bits. A
//! device's SEIP line is ORed into what a read returns, but must not be
//! latched into the software SEIP bit by a read-modify-write (a regression:
//! OpenSBI clearing STIP while a device interrupt was pending left SEIP set
//! for good, and the guest livelocked on a PLIC with nothing to claim).

use std::sync::Arc;

use strata_devices::{mip, HartIrqs};
use strata_hart::{Bus, Hart};
use strata_memory::GuestRam;

struct NoDevices;
impl Bus for NoDevices {
    fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
        None
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
        false
    }
    fn mtime(&self) -> u64 {
        0
    }
}

const BASE: u64 = 0x8000_0000;
const MIP: u32 = 0x344;

fn csr(op_f3: u32, rd: u32, rs1: u32, n: u32) -> u32 {
    n << 20 | rs1 << 15 | op_f3 << 12 | rd << 7 | 0x73
}

#[test]
fn csrrc_on_mip_does_not_latch_a_device_seip() {
    let ram = Arc::new(GuestRam::new(BASE, 1 << 20).unwrap());
    // li t0, 1 << 5 (STIP); csrrs x0, mip, t0; csrrc x0, mip, t0; csrrs x0, mip, x0 (a read)
    let prog = [0x0200_0293u32, csr(2, 0, 5, MIP), csr(3, 0, 5, MIP), csr(2, 6, 0, MIP)];
    for (i, w) in prog.iter().enumerate() {
        ram.store(BASE + 4 * i as u64, 4, *w as u64).unwrap();
    }
    let irqs = HartIrqs::new();
    let mut h = Hart::new(0, ram, irqs.clone());
    h.reset(BASE);
    irqs.set(mip::SEIP, true); // the PLIC's S-context output is high
    for _ in 0..prog.len() {
        h.step(&mut NoDevices).expect("no trap");
    }
    assert_eq!(h.x[6] >> mip::SEIP & 1, 1, "a read shows the device line");
    assert_eq!(h.x[6] >> 5 & 1, 0, "STIP was cleared");
    irqs.set(mip::SEIP, false); // the device is served
    assert_eq!(h.csr_peek(MIP as u16).unwrap() >> mip::SEIP & 1, 0, "SEIP must fall with the line");
}

#[test]
fn software_seip_is_still_writable() {
    let ram = Arc::new(GuestRam::new(BASE, 1 << 20).unwrap());
    // li t0, 1 << 9 (SEIP); csrrs x0, mip, t0
    let prog = [0x2000_0293u32, csr(2, 0, 5, MIP)];
    for (i, w) in prog.iter().enumerate() {
        ram.store(BASE + 4 * i as u64, 4, *w as u64).unwrap();
    }
    let mut h = Hart::new(0, ram, HartIrqs::new());
    h.reset(BASE);
    for _ in 0..prog.len() {
        h.step(&mut NoDevices).expect("no trap");
    }
    assert_eq!(h.csr_peek(MIP as u16).unwrap() >> mip::SEIP & 1, 1);
}

//! What the hart's integration tests share: a bus with no devices, and a
//! hart with a program loaded at the start of RAM.

use std::sync::Arc;

use strata_hart::{Bus, Hart};
use strata_irq::HartIrqs;
use strata_memory::GuestRam;

pub const BASE: u64 = 0x8000_0000;

/// A bus with nothing on it: every MMIO access faults, time stands still.
pub struct NoDevices;

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

/// A hart reset to `BASE`, with `ram_bytes` of RAM there holding `prog`.
pub fn hart_with(prog: &[u32], ram_bytes: u64) -> (Hart, Arc<HartIrqs>, Arc<GuestRam>) {
    let ram = Arc::new(GuestRam::new(BASE, ram_bytes).unwrap());
    for (i, w) in prog.iter().enumerate() {
        ram.store(BASE + 4 * i as u64, 4, *w as u64).unwrap();
    }
    let irqs = HartIrqs::new();
    let mut h = Hart::new(0, ram.clone(), irqs.clone());
    h.reset(BASE);
    (h, irqs, ram)
}

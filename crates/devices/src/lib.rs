//! Strata's platform devices.
//!
//! Each device is a plain state machine behind [`MmioDevice`]: it knows its
//! registers and its interrupt lines, and nothing of the run loop, the harts
//! or the memory map (Firecracker's and Cloud Hypervisor's rule). The
//! platform crate places devices on the [`bus::Bus`] and wires their
//! [`IrqLine`]s to the interrupt controllers and the harts.

pub mod aclint;
pub mod board;
pub mod bus;
pub mod iommu;
pub mod plic;
pub mod rtc;
pub mod syscon;
pub mod tpm_tis;
pub mod uart;
pub mod virtio;

pub use aclint::{Aclint, AclintHartLines, Timebase};
pub use plic::{source_line, Plic, SharedMmio};
pub use rtc::GoldfishRtc;
/// The hart's side of the interrupt lines lives below both crates.
pub use strata_irq::HartIrqs;
pub use syscon::{PowerLatch, PowerRequest, Syscon};
pub use uart::Uart;

use std::sync::Arc;

/// A device reached by loads and stores in a window of guest-physical
/// address space. `offset` is relative to the window base; `size` is 1, 2, 4
/// or 8. A device that does not implement an access of some size or offset
/// reads it as zero and ignores the write (what QEMU's `virt` devices do);
/// it never panics on guest input.
pub trait MmioDevice: Send {
    fn read(&mut self, offset: u64, size: u8) -> u64;
    fn write(&mut self, offset: u64, size: u8, value: u64);
}

/// One level-triggered interrupt wire, driven by a device.
pub trait IrqLine: Send + Sync {
    fn set_level(&self, level: bool);
}

/// An [`IrqLine`] that drives one `mip` bit of one hart.
pub struct HartIrqBit {
    pub irqs: Arc<HartIrqs>,
    pub bit: u32,
}

impl IrqLine for HartIrqBit {
    fn set_level(&self, level: bool) {
        self.irqs.set(self.bit, level);
    }
}

/// A line that goes nowhere (for devices whose interrupt is not wired).
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&self, _level: bool) {}
}

/// Standard `mip` bit numbers (Privileged Architecture 20211203, §3.1.9),
/// the lines devices drive: one home, `strata_arch::irq`.
pub mod mip {
    pub use strata_arch::irq::{MEIP, MSIP, MTIP, SEIP, SSIP, STIP};
}

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
pub use syscon::{PowerLatch, PowerRequest, Syscon};
pub use uart::Uart;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

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

/// The interrupt-pending bits a hart sees from outside (the `mip` bits that
/// devices drive: MSIP, MTIP, SEIP, MEIP, and later the VS and guest-external
/// lines). The hart reads the whole word when it checks for interrupts;
/// devices set and clear single bits through [`HartIrqBit`].
///
/// A hart whose thread sleeps (in WFI, with nothing pending) registers the
/// thread with [`set_sleeper`](Self::set_sleeper): a bit that rises then
/// unparks it, so an interrupt raised on any thread (a device, an IPI from
/// another hart) wakes it without polling.
#[derive(Default, Debug)]
pub struct HartIrqs {
    bits: AtomicU64,
    sleeper: Mutex<Option<std::thread::Thread>>,
}

impl HartIrqs {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    #[inline]
    pub fn pending(&self) -> u64 {
        self.bits.load(Ordering::Relaxed)
    }
    pub fn set(&self, bit: u32, level: bool) {
        if level {
            // SeqCst: a sleeper that registered and then found nothing
            // pending is unparked by whoever raises a bit after that.
            if self.bits.fetch_or(1 << bit, Ordering::SeqCst) & 1 << bit == 0 {
                self.wake();
            }
        } else {
            self.bits.fetch_and(!(1 << bit), Ordering::Relaxed);
        }
    }

    /// The thread to wake when a bit rises (`None`: no thread sleeps for
    /// this hart).
    pub fn set_sleeper(&self, t: Option<std::thread::Thread>) {
        *self.sleeper.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Wakes the hart's thread if it sleeps (or makes its next sleep return
    /// at once).
    pub fn wake(&self) {
        if let Some(t) = &*self.sleeper.lock().unwrap_or_else(|p| p.into_inner()) {
            t.unpark();
        }
    }
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

//! The interrupt lines into a hart, as one object: [`HartIrqs`], the
//! `mip` bits that devices drive and the hart reads, and the wake-up of a
//! hart thread that sleeps in WFI. It sits below both `strata-hart` (which
//! reads it) and `strata-devices` (which raise its bits), so that neither
//! crate depends on the other; the bit numbers are `strata_arch::irq`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The interrupt-pending bits a hart sees from outside (the `mip` bits that
/// devices drive: MSIP, MTIP, SEIP, MEIP, and later the VS and guest-external
/// lines). The hart reads the whole word when it checks for interrupts;
/// devices set and clear single bits (`strata_devices::HartIrqBit`).
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

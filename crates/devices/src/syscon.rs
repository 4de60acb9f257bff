//! The SiFive test finisher (`sifive,test0` / `sifive,test1`) at
//! 0x0010_0000, used as a `syscon` by the device tree's `syscon-poweroff`
//! and `syscon-reboot` nodes (Linux DT bindings
//! `power/reset/syscon-poweroff.yaml`, `syscon-reboot.yaml`: a 32-bit write
//! of `value` at `offset` in the regmap).
//!
//! Register (offset 0, written as 32 bits, or 16 bits by OpenSBI; the low 16 bits select the
//! action, the high 16 bits carry a code):
//! - `0x5555`: power off, success;
//! - `0x3333 | code << 16`: power off, failure with `code`;
//! - `0x7777`: reset.
//!
//! Other values are ignored, and reads return 0. The device only records
//! the request; the run loop polls [`PowerLatch::take_request`] and decides
//! what to do (it never exits the process from here).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::MmioDevice;

/// Size of the window on QEMU's `virt` board.
pub const SYSCON_MMIO_SIZE: u64 = 0x1000;

pub const FINISHER_FAIL: u32 = 0x3333;
pub const FINISHER_PASS: u32 = 0x5555;
pub const FINISHER_RESET: u32 = 0x7777;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerRequest {
    /// Power off; the guest reports success.
    PowerOff,
    /// Power off; the guest reports failure with this code.
    Fail(u16),
    /// Reset the machine.
    Reset,
}

/// Where the finisher leaves its request for the run loop. The first
/// request stands until it is taken, so a failure code is never overwritten
/// by a later write.
#[derive(Debug, Default)]
pub struct PowerLatch {
    // 0 = nothing; otherwise 1 << 32 | the written 32-bit value.
    req: AtomicU64,
}

impl PowerLatch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn decode(raw: u64) -> Option<PowerRequest> {
        if raw == 0 {
            return None;
        }
        let v = raw as u32;
        match v & 0xffff {
            FINISHER_PASS => Some(PowerRequest::PowerOff),
            FINISHER_RESET => Some(PowerRequest::Reset),
            FINISHER_FAIL => Some(PowerRequest::Fail((v >> 16) as u16)),
            _ => None,
        }
    }

    /// The pending request, if any, without taking it.
    pub fn peek(&self) -> Option<PowerRequest> {
        Self::decode(self.req.load(Ordering::Acquire))
    }

    /// Takes the pending request, if any.
    pub fn take_request(&self) -> Option<PowerRequest> {
        Self::decode(self.req.swap(0, Ordering::AcqRel))
    }

    /// Records `value` if it is a finisher command and no request is
    /// pending.
    pub fn request(&self, value: u32) {
        if Self::decode(1 << 32 | value as u64).is_some() {
            let _ = self.req.compare_exchange(0, 1 << 32 | value as u64, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

pub struct Syscon {
    latch: Arc<PowerLatch>,
}

impl Syscon {
    pub fn new(latch: Arc<PowerLatch>) -> Self {
        Syscon { latch }
    }
}

impl MmioDevice for Syscon {
    fn read(&mut self, _offset: u64, _size: u8) -> u64 {
        0
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        // 32-bit writes as the syscon bindings specify. OpenSBI's
        // sifive_test driver stores 16 bits (no code then), and an 8-byte
        // store carries the register in its low word; both are taken.
        match (offset, size) {
            (0, 2) => self.latch.request(value as u16 as u32),
            (0, 4 | 8) => self.latch.request(value as u32),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> (Syscon, Arc<PowerLatch>) {
        let l = PowerLatch::new();
        (Syscon::new(l.clone()), l)
    }

    #[test]
    fn commands() {
        let (mut d, l) = dev();
        assert_eq!(l.take_request(), None);
        d.write(0, 4, 0x5555);
        assert_eq!(l.peek(), Some(PowerRequest::PowerOff));
        assert_eq!(l.take_request(), Some(PowerRequest::PowerOff));
        assert_eq!(l.take_request(), None);
        d.write(0, 4, 0x7777);
        assert_eq!(l.take_request(), Some(PowerRequest::Reset));
        d.write(0, 4, 0x3333 | 42 << 16);
        assert_eq!(l.take_request(), Some(PowerRequest::Fail(42)));
        d.write(0, 8, 0xdead_beef_0000_5555);
        assert_eq!(l.take_request(), Some(PowerRequest::PowerOff));
        d.write(0, 2, 0xffff_7777);
        assert_eq!(l.take_request(), Some(PowerRequest::Reset), "16-bit store, as OpenSBI does");
    }

    #[test]
    fn first_request_wins() {
        let (mut d, l) = dev();
        d.write(0, 4, 0x3333 | 1 << 16);
        d.write(0, 4, 0x5555);
        assert_eq!(l.take_request(), Some(PowerRequest::Fail(1)));
    }

    #[test]
    fn ignores_other_values_offsets_and_sizes() {
        let (mut d, l) = dev();
        d.write(0, 4, 0x1234);
        d.write(0, 4, 0);
        d.write(4, 4, 0x5555);
        d.write(0, 1, 0x55);
        d.write(2, 2, 0x5555);
        d.write(u64::MAX, 8, 0x5555);
        assert_eq!(d.read(0, 4), 0);
        assert_eq!(d.read(0xfff, 1), 0);
        assert_eq!(l.take_request(), None);
    }
}

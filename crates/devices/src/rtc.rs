//! Goldfish real-time clock (`google,goldfish-rtc`) at 0x0010_1000, IRQ 11
//! on QEMU's `virt` board.
//!
//! Reference: the Android emulator's "Goldfish virtual hardware" notes,
//! section "Goldfish real-time clock (RTC)" (time is nanoseconds since the
//! Unix epoch; reading TIME_LOW samples the clock and latches the high
//! half for TIME_HIGH; writing ALARM_LOW arms the alarm at
//! ALARM_HIGH:ALARM_LOW; CLEAR_INTERRUPT lowers the IRQ), and the
//! `google,goldfish-rtc` device tree binding. Register map (32-bit
//! registers):
//!
//! | off  | name            | access |
//! |------|-----------------|--------|
//! | 0x00 | TIME_LOW        | R: sample time, latch high half; W: set low half of the time |
//! | 0x04 | TIME_HIGH       | R: latched high half; W: set high half of the time |
//! | 0x08 | ALARM_LOW       | R: alarm low; W: set low half and arm |
//! | 0x0c | ALARM_HIGH      | R/W: alarm high half |
//! | 0x10 | IRQ_ENABLED     | R/W: bit 0 |
//! | 0x14 | CLEAR_ALARM     | W: disarm |
//! | 0x18 | ALARM_STATUS    | R: 1 while armed |
//! | 0x1c | CLEAR_INTERRUPT | W: clear the interrupt |
//!
//! Time comes from a clock function given at construction plus an offset
//! that guest writes to TIME_* adjust, so tests use a fake clock and the
//! host clock is never changed. Because time moves outside the device, the
//! run loop calls [`GoldfishRtc::update`] to fire a due alarm (every access
//! does it too) and may use [`GoldfishRtc::alarm_in_ns`] to bound an idle
//! sleep. Only 4-byte aligned accesses are honoured; others read 0 and are
//! ignored.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{IrqLine, MmioDevice};

/// Size of the window on QEMU's `virt` board.
pub const RTC_MMIO_SIZE: u64 = 0x1000;

const TIME_LOW: u64 = 0x00;
const TIME_HIGH: u64 = 0x04;
const ALARM_LOW: u64 = 0x08;
const ALARM_HIGH: u64 = 0x0c;
const IRQ_ENABLED: u64 = 0x10;
const CLEAR_ALARM: u64 = 0x14;
const ALARM_STATUS: u64 = 0x18;
const CLEAR_INTERRUPT: u64 = 0x1c;

/// Nanoseconds since the Unix epoch.
pub type RtcClock = Box<dyn Fn() -> u64 + Send>;

/// The host's wall clock, in nanoseconds since the Unix epoch (0 if the host
/// clock is set before 1970).
pub fn host_clock() -> RtcClock {
    Box::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0))
}

pub struct GoldfishRtc {
    clock: RtcClock,
    /// Guest time = clock() + offset (wrapping).
    offset: u64,
    time_high_latch: u32,
    alarm: u64,
    armed: bool,
    irq_enabled: bool,
    irq_pending: bool,
    irq: Arc<dyn IrqLine>,
    irq_level: bool,
}

impl GoldfishRtc {
    pub fn new(clock: RtcClock, irq: Arc<dyn IrqLine>) -> Self {
        irq.set_level(false);
        GoldfishRtc {
            clock,
            offset: 0,
            time_high_latch: 0,
            alarm: 0,
            armed: false,
            irq_enabled: false,
            irq_pending: false,
            irq,
            irq_level: false,
        }
    }

    /// The time the guest sees, in ns since the epoch.
    pub fn now(&self) -> u64 {
        (self.clock)().wrapping_add(self.offset)
    }

    fn set_now(&mut self, t: u64) {
        self.offset = t.wrapping_sub((self.clock)());
    }

    /// Fires the alarm if it is due and updates the interrupt line.
    pub fn update(&mut self) {
        if self.armed && self.now() >= self.alarm {
            self.armed = false;
            self.irq_pending = true;
        }
        let level = self.irq_pending && self.irq_enabled;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }

    /// Nanoseconds until the armed alarm is due (0 if overdue), or `None`
    /// when no alarm is armed.
    pub fn alarm_in_ns(&self) -> Option<u64> {
        self.armed.then(|| self.alarm.saturating_sub(self.now()))
    }

    fn read_reg(&mut self, off: u64) -> u32 {
        match off {
            TIME_LOW => {
                let t = self.now();
                self.time_high_latch = (t >> 32) as u32;
                t as u32
            }
            TIME_HIGH => self.time_high_latch,
            ALARM_LOW => self.alarm as u32,
            ALARM_HIGH => (self.alarm >> 32) as u32,
            IRQ_ENABLED => self.irq_enabled as u32,
            ALARM_STATUS => self.armed as u32,
            _ => 0,
        }
    }

    fn write_reg(&mut self, off: u64, v: u32) {
        match off {
            TIME_LOW => {
                let t = self.now();
                self.set_now((t & !0xffff_ffff) | v as u64);
            }
            TIME_HIGH => {
                let t = self.now();
                self.set_now((t & 0xffff_ffff) | (v as u64) << 32);
            }
            ALARM_LOW => {
                self.alarm = (self.alarm & !0xffff_ffff) | v as u64;
                self.armed = true;
            }
            ALARM_HIGH => self.alarm = (self.alarm & 0xffff_ffff) | (v as u64) << 32,
            IRQ_ENABLED => self.irq_enabled = v & 1 != 0,
            CLEAR_ALARM => self.armed = false,
            CLEAR_INTERRUPT => self.irq_pending = false,
            _ => {}
        }
    }
}

impl MmioDevice for GoldfishRtc {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if size != 4 || offset & 3 != 0 {
            return 0;
        }
        self.update();
        let v = self.read_reg(offset);
        v as u64
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if size != 4 || offset & 3 != 0 {
            return;
        }
        self.write_reg(offset, value as u32);
        self.update();
    }
}

/// The RTC's state in a snapshot (docs/snapshot.md). `time` is the guest's
/// wall-clock time at the snapshot: a restored RTC goes on from there, as a
/// paused machine's would (the guest's clock does not jump by the time the
/// snapshot sat on disk; QEMU's `-rtc clock=vm` behaves alike).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RtcState {
    pub time: u64,
    pub time_high_latch: u32,
    pub alarm: u64,
    pub armed: bool,
    pub irq_enabled: bool,
    pub irq_pending: bool,
}

impl GoldfishRtc {
    pub fn save(&self) -> RtcState {
        RtcState {
            time: self.now(),
            time_high_latch: self.time_high_latch,
            alarm: self.alarm,
            armed: self.armed,
            irq_enabled: self.irq_enabled,
            irq_pending: self.irq_pending,
        }
    }

    /// Restores `s` and drives the interrupt line to match.
    pub fn restore(&mut self, s: &RtcState) {
        self.set_now(s.time);
        self.time_high_latch = s.time_high_latch;
        self.alarm = s.alarm;
        self.armed = s.armed;
        self.irq_enabled = s.irq_enabled;
        self.irq_pending = s.irq_pending;
        let level = self.irq_pending && self.irq_enabled;
        self.irq_level = level;
        self.irq.set_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    #[derive(Default)]
    struct Line(AtomicBool);
    impl IrqLine for Line {
        fn set_level(&self, level: bool) {
            self.0.store(level, Ordering::SeqCst);
        }
    }
    impl Line {
        fn get(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn rtc(start: u64) -> (GoldfishRtc, Arc<AtomicU64>, Arc<Line>) {
        let t = Arc::new(AtomicU64::new(start));
        let tc = t.clone();
        let line = Arc::new(Line::default());
        (GoldfishRtc::new(Box::new(move || tc.load(Ordering::SeqCst)), line.clone()), t, line)
    }

    #[test]
    fn time_low_latches_high() {
        let (mut r, t, _) = rtc(0x0000_0005_ffff_fff0);
        assert_eq!(r.read(TIME_LOW, 4), 0xffff_fff0);
        t.store(0x0000_0006_0000_0010, Ordering::SeqCst);
        assert_eq!(r.read(TIME_HIGH, 4), 5, "high half latched at the TIME_LOW read");
        assert_eq!(r.read(TIME_LOW, 4), 0x10);
        assert_eq!(r.read(TIME_HIGH, 4), 6);
    }

    #[test]
    fn setting_the_time_moves_only_the_guest_view() {
        let (mut r, t, _) = rtc(1_000);
        r.write(TIME_HIGH, 4, 2);
        r.write(TIME_LOW, 4, 7);
        assert_eq!(r.now(), 2 << 32 | 7);
        t.fetch_add(100, Ordering::SeqCst);
        assert_eq!(r.read(TIME_LOW, 4), 107);
        assert_eq!(r.read(TIME_HIGH, 4), 2);
    }

    #[test]
    fn alarm_fires_and_interrupt_clears() {
        let (mut r, t, line) = rtc(1_000);
        r.write(IRQ_ENABLED, 4, 1);
        assert_eq!(r.read(IRQ_ENABLED, 4), 1);
        r.write(ALARM_HIGH, 4, 0);
        r.write(ALARM_LOW, 4, 1_500);
        assert_eq!(r.read(ALARM_STATUS, 4), 1);
        assert_eq!(r.alarm_in_ns(), Some(500));
        t.store(1_499, Ordering::SeqCst);
        r.update();
        assert!(!line.get());
        t.store(1_500, Ordering::SeqCst);
        r.update();
        assert!(line.get());
        assert_eq!(r.read(ALARM_STATUS, 4), 0, "a fired alarm is disarmed");
        assert_eq!(r.alarm_in_ns(), None);
        r.write(CLEAR_INTERRUPT, 4, 1);
        assert!(!line.get());
    }

    #[test]
    fn alarm_in_the_past_fires_at_once_and_irq_enable_gates() {
        let (mut r, _, line) = rtc(10_000);
        r.write(ALARM_LOW, 4, 5);
        assert!(!line.get(), "interrupt not enabled");
        assert_eq!(r.read(ALARM_STATUS, 4), 0);
        r.write(IRQ_ENABLED, 4, 1);
        assert!(line.get(), "pending interrupt shows once enabled");
        r.write(IRQ_ENABLED, 4, 0);
        assert!(!line.get());
        r.write(CLEAR_INTERRUPT, 4, 0);
        r.write(IRQ_ENABLED, 4, 1);
        assert!(!line.get());
    }

    #[test]
    fn clear_alarm_disarms() {
        let (mut r, t, line) = rtc(0);
        r.write(IRQ_ENABLED, 4, 1);
        r.write(ALARM_HIGH, 4, 1);
        r.write(ALARM_LOW, 4, 0);
        assert_eq!(r.read(ALARM_HIGH, 4), 1);
        r.write(CLEAR_ALARM, 4, 1);
        t.store(u64::MAX, Ordering::SeqCst);
        r.update();
        assert!(!line.get());
        assert_eq!(r.read(ALARM_STATUS, 4), 0);
    }

    #[test]
    fn bad_accesses_are_harmless() {
        let (mut r, _, line) = rtc(77);
        for (off, size) in [(0u64, 8u8), (0, 1), (2, 4), (0x20, 4), (0xffc, 4), (u64::MAX - 3, 4)] {
            assert_eq!(r.read(off, size), 0, "{off:#x}/{size}");
            r.write(off, size, u64::MAX);
        }
        assert_eq!(r.now(), 77);
        assert_eq!(r.read(ALARM_STATUS, 4), 0);
        assert!(!line.get());
    }
}

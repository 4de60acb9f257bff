//! The CLINT of QEMU's `virt` board at 0x0200_0000 (size 0x10000): an ACLINT
//! MSWI device at +0 followed by an ACLINT MTIMER device at +0x4000, in the
//! legacy SiFive CLINT layout.
//!
//! References: RISC-V ACLINT specification 1.0-rc4 — §2 MTIMER (§2.1
//! register map: MTIMECMP 8 bytes per hart from +0x0000 of the MTIMER
//! device, MTIME at +0x7ff8; §2.2 MTIME; §2.3 MTIMECMP: "MTIP ... is set
//! when MTIME >= MTIMECMP"), §3 MSWI (§3.1 register map: MSIP 4 bytes per
//! hart; §3.2: only bit 0 is writable, the rest read 0), and the
//! Privileged Architecture 20211203 §3.2.1 (mtime/mtimecmp semantics; the
//! timer interrupt is level).
//!
//! Access sizes: every register is built from 32-bit words (ACLINT §2.1 and
//! §3.1: 64-bit registers are accessible as two naturally aligned 32-bit
//! halves). 4-byte accesses reach one word; 8-byte accesses must be 8-byte
//! aligned and reach two consecutive words, low word first. Anything else
//! reads 0 and is ignored.
//!
//! Time is not kept here: it comes from a shared [`Timebase`] that the run
//! loop advances and the harts' `time` CSR also reads. Because time moves
//! outside the device, the run loop calls [`Aclint::update`] to re-evaluate
//! the MTIP lines, and [`Aclint::next_deadline`] to learn how far it may
//! fast-forward an idle machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::{IrqLine, MmioDevice};

/// Size of the CLINT window on QEMU's `virt` board.
pub const CLINT_MMIO_SIZE: u64 = 0x10000;
/// Offset of `MSIP[0]`.
pub const MSIP_BASE: u64 = 0x0000;
/// Offset of `MTIMECMP[0]` (the MTIMER device's base).
pub const MTIMECMP_BASE: u64 = 0x4000;
/// Offset of MTIME (MTIMER base + 0x7ff8).
pub const MTIME_OFFSET: u64 = 0xbff8;
/// Most harts the layout can address: `MTIMECMP[h]` must end at or below
/// MTIME (4095 harts, ACLINT §2.1).
pub const MAX_HARTS: usize = ((MTIME_OFFSET - MTIMECMP_BASE) / 8) as usize;

/// The machine's real-time counter (`mtime`), shared by the CLINT, the
/// harts' `time` CSR and the run loop.
///
/// Two sources, chosen when it is made:
/// - **counted** ([`new`](Self::new)): the run loop owns the *raw* count and
///   moves it forward with [`advance`](Self::advance) (from retired
///   instructions): deterministic;
/// - **host** ([`host`](Self::host)): the raw count follows the host's
///   monotonic clock at `hz` ticks a second, read afresh at every access, so
///   `time` is as fine-grained as the host clock (100 ns at 10 MHz).
///   [`advance`](Self::advance) and [`set_raw`](Self::set_raw) still work:
///   they move the count against the host clock (to restore a snapshot, or
///   to stop time while the machine is paused).
///
/// What the guest sees is raw + offset, so that an M-mode write to `mtime`
/// ([`set_now`](Self::set_now)) never moves the raw count the run loop
/// reasons about. The raw count never goes backwards unless `set_raw` says
/// so.
#[derive(Debug, Default)]
pub struct Timebase {
    /// Counted: the raw count. Host: added (wrapping) to the host clock's
    /// ticks since `host.epoch`.
    raw: AtomicU64,
    offset: AtomicU64,
    host: Option<HostClock>,
}

#[derive(Debug)]
struct HostClock {
    epoch: Instant,
    hz: u64,
}

impl HostClock {
    #[inline]
    fn ticks(&self) -> u64 {
        let ns = self.epoch.elapsed().as_nanos();
        (ns * self.hz as u128 / 1_000_000_000) as u64
    }
}

impl Timebase {
    /// A counted timebase, at 0.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A timebase that follows the host's monotonic clock at `hz` ticks a
    /// second, at 0 now.
    pub fn host(hz: u64) -> Arc<Self> {
        Arc::new(Self { host: Some(HostClock { epoch: Instant::now(), hz: hz.max(1) }), ..Self::default() })
    }

    /// Does the count follow the host clock?
    pub fn is_host(&self) -> bool {
        self.host.is_some()
    }

    /// The current `mtime` value as the guest sees it.
    #[inline]
    pub fn now(&self) -> u64 {
        self.raw().wrapping_add(self.offset.load(Ordering::Relaxed))
    }

    /// The run loop's own tick count (no guest offset).
    #[inline]
    pub fn raw(&self) -> u64 {
        let r = self.raw.load(Ordering::Relaxed);
        match &self.host {
            None => r,
            Some(h) => h.ticks().wrapping_add(r),
        }
    }

    /// Moves time forward by `ticks`.
    #[inline]
    pub fn advance(&self, ticks: u64) {
        self.raw.fetch_add(ticks, Ordering::Relaxed);
    }

    /// Sets the raw count (a run loop that derives time from a counter of
    /// its own, or a restored snapshot); a host timebase goes on from there.
    #[inline]
    pub fn set_raw(&self, raw: u64) {
        let base = self.host.as_ref().map_or(0, |h| h.ticks());
        self.raw.store(raw.wrapping_sub(base), Ordering::Relaxed);
    }

    /// The guest's offset of `mtime` from the raw count (snapshots).
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Restores the guest's offset (snapshots).
    pub fn set_offset(&self, offset: u64) {
        self.offset.store(offset, Ordering::Relaxed);
    }

    /// Makes [`now`](Self::now) read `value` (a guest write to `mtime`).
    pub fn set_now(&self, value: u64) {
        self.offset.store(value.wrapping_sub(self.raw()), Ordering::Relaxed);
    }
}

/// The two interrupt lines of one hart that the CLINT drives; the platform
/// wires them to `HartIrqBit { bit: mip::MSIP }` and `mip::MTIP`.
pub struct AclintHartLines {
    pub msip: Arc<dyn IrqLine>,
    pub mtip: Arc<dyn IrqLine>,
}

struct HartState {
    lines: AclintHartLines,
    msip: bool,
    mtimecmp: u64,
    mtip: bool,
}

pub struct Aclint {
    time: Arc<Timebase>,
    harts: Vec<HartState>,
}

impl Aclint {
    /// One CLINT serving `lines.len()` harts (hart h uses `lines[h]`).
    /// Harts beyond [`MAX_HARTS`] are not addressable and are ignored.
    /// MTIMECMP resets to all ones and MSIP to 0; all lines start low.
    pub fn new(time: Arc<Timebase>, lines: Vec<AclintHartLines>) -> Self {
        let harts = lines
            .into_iter()
            .take(MAX_HARTS)
            .map(|lines| {
                lines.msip.set_level(false);
                lines.mtip.set_level(false);
                HartState { lines, msip: false, mtimecmp: u64::MAX, mtip: false }
            })
            .collect();
        let mut a = Aclint { time, harts };
        a.update();
        a
    }

    pub fn timebase(&self) -> &Arc<Timebase> {
        &self.time
    }

    pub fn harts(&self) -> usize {
        self.harts.len()
    }

    /// Re-evaluates every hart's MTIP line against the current time
    /// (MTIP = mtime >= mtimecmp, level; ACLINT §2.3). Call it after
    /// advancing the [`Timebase`].
    pub fn update(&mut self) {
        let now = self.time.now();
        for h in &mut self.harts {
            let level = now >= h.mtimecmp;
            if level != h.mtip {
                h.mtip = level;
                h.lines.mtip.set_level(level);
            }
        }
    }

    /// The smallest MTIMECMP whose MTIP line is still low, i.e. the `mtime`
    /// value at which the next MTIP line will rise. It may already have
    /// passed when time moves by itself (a host timebase) and
    /// [`update`](Self::update) has not run since: then the caller must not
    /// wait. `None` when no timer is armed (an MTIMECMP of all ones, its
    /// reset value, counts as disarmed: it cannot be reached in any
    /// realistic run).
    pub fn next_deadline(&self) -> Option<u64> {
        self.harts.iter().filter(|h| !h.mtip && h.mtimecmp != u64::MAX).map(|h| h.mtimecmp).min()
    }

    /// MTIMECMP of `hart` (for debugging and tests).
    pub fn mtimecmp(&self, hart: usize) -> Option<u64> {
        self.harts.get(hart).map(|h| h.mtimecmp)
    }

    fn read_word(&self, off: u64) -> u32 {
        if off < MTIMECMP_BASE {
            let h = (off - MSIP_BASE) / 4;
            return self.harts.get(h as usize).map_or(0, |h| h.msip as u32);
        }
        if off < MTIME_OFFSET {
            let h = (off - MTIMECMP_BASE) / 8;
            let hi = (off - MTIMECMP_BASE) & 7 != 0;
            return self.harts.get(h as usize).map_or(0, |h| half(h.mtimecmp, hi));
        }
        if off < MTIME_OFFSET + 8 {
            return half(self.time.now(), off != MTIME_OFFSET);
        }
        0
    }

    fn write_word(&mut self, off: u64, v: u32) {
        if off < MTIMECMP_BASE {
            let h = (off - MSIP_BASE) / 4;
            if let Some(h) = self.harts.get_mut(h as usize) {
                // Only bit 0 is writable (ACLINT §3.2).
                let level = v & 1 != 0;
                if level != h.msip {
                    h.msip = level;
                    h.lines.msip.set_level(level);
                }
            }
        } else if off < MTIME_OFFSET {
            let h = (off - MTIMECMP_BASE) / 8;
            let hi = (off - MTIMECMP_BASE) & 7 != 0;
            if let Some(h) = self.harts.get_mut(h as usize) {
                h.mtimecmp = with_half(h.mtimecmp, hi, v);
            }
        } else if off < MTIME_OFFSET + 8 {
            let now = self.time.now();
            self.time.set_now(with_half(now, off != MTIME_OFFSET, v));
        }
    }
}

fn half(v: u64, hi: bool) -> u32 {
    if hi {
        (v >> 32) as u32
    } else {
        v as u32
    }
}

fn with_half(old: u64, hi: bool, v: u32) -> u64 {
    if hi {
        (old & 0xffff_ffff) | ((v as u64) << 32)
    } else {
        (old & !0xffff_ffff) | v as u64
    }
}

impl MmioDevice for Aclint {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        match size {
            4 if offset & 3 == 0 => self.read_word(offset) as u64,
            8 if offset & 7 == 0 => self.read_word(offset) as u64 | (self.read_word(offset + 4) as u64) << 32,
            _ => 0,
        }
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        match size {
            4 if offset & 3 == 0 => self.write_word(offset, value as u32),
            8 if offset & 7 == 0 => {
                if (MTIME_OFFSET..MTIME_OFFSET + 8).contains(&offset) {
                    // One 64-bit store to mtime sets it at once, rather than
                    // as two halves taken against a moving counter.
                    self.time.set_now(value);
                } else {
                    self.write_word(offset, value as u32);
                    self.write_word(offset + 4, (value >> 32) as u32);
                }
            }
            _ => return,
        }
        self.update();
    }
}

/// The CLINT's state in a snapshot (docs/snapshot.md): per hart, MSIP and
/// MTIMECMP. Time itself is the runner's ([`Timebase::raw`] and
/// [`Timebase::offset`]); MTIP follows from them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclintState {
    pub msip: Vec<bool>,
    pub mtimecmp: Vec<u64>,
}

impl Aclint {
    pub fn save(&self) -> AclintState {
        AclintState {
            msip: self.harts.iter().map(|h| h.msip).collect(),
            mtimecmp: self.harts.iter().map(|h| h.mtimecmp).collect(),
        }
    }

    /// Restores `s` (for as many harts as this CLINT serves) and drives the
    /// lines to match; call it once time is restored.
    pub fn restore(&mut self, s: &AclintState) -> Result<(), String> {
        if s.msip.len() != self.harts.len() || s.mtimecmp.len() != self.harts.len() {
            return Err(format!("CLINT state for {} harts, machine has {}", s.msip.len(), self.harts.len()));
        }
        for (h, (msip, cmp)) in self.harts.iter_mut().zip(s.msip.iter().zip(&s.mtimecmp)) {
            h.msip = *msip;
            h.lines.msip.set_level(*msip);
            h.mtimecmp = *cmp;
            h.mtip = self.time.now() >= *cmp;
            h.lines.mtip.set_level(h.mtip);
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

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

    type Lines = Vec<(Arc<Line>, Arc<Line>)>;

    fn clint(n: usize) -> (Aclint, Arc<Timebase>, Lines) {
        let tb = Timebase::new();
        let lines: Vec<(Arc<Line>, Arc<Line>)> =
            (0..n).map(|_| (Arc::new(Line::default()), Arc::new(Line::default()))).collect();
        let hl = lines.iter().map(|(s, t)| AclintHartLines { msip: s.clone(), mtip: t.clone() }).collect();
        (Aclint::new(tb.clone(), hl), tb, lines)
    }

    #[test]
    fn msip_bit0_only_per_hart() {
        let (mut c, _, l) = clint(2);
        c.write(4, 4, 0xffff_ffff);
        assert_eq!(c.read(4, 4), 1);
        assert!(l[1].0.get() && !l[0].0.get());
        c.write(4, 4, 2);
        assert_eq!(c.read(4, 4), 0);
        assert!(!l[1].0.get());
        // An 8-byte access covers harts 0 and 1.
        c.write(0, 8, 1 | 1 << 32);
        assert!(l[0].0.get() && l[1].0.get());
        assert_eq!(c.read(0, 8), 1 | 1 << 32);
        // Hart 2 does not exist.
        c.write(8, 4, 1);
        assert_eq!(c.read(8, 4), 0);
    }

    #[test]
    fn mtimecmp_resets_to_all_ones_and_drives_mtip() {
        let (mut c, tb, l) = clint(2);
        assert_eq!(c.read(0x4000, 8), u64::MAX);
        assert_eq!(c.read(0x4008, 8), u64::MAX);
        assert_eq!(c.next_deadline(), None);
        c.write(0x4008, 8, 100);
        assert_eq!(c.next_deadline(), Some(100));
        tb.advance(99);
        c.update();
        assert!(!l[1].1.get());
        tb.advance(1);
        c.update();
        assert!(l[1].1.get(), "mtime >= mtimecmp");
        assert!(!l[0].1.get());
        assert_eq!(c.next_deadline(), None, "already-passed compare values are not deadlines");
        // Writing a later compare value lowers the line (level semantics).
        c.write(0x4008, 8, 1000);
        assert!(!l[1].1.get());
        assert_eq!(c.next_deadline(), Some(1000));
    }

    #[test]
    fn thirty_two_bit_halves() {
        let (mut c, tb, l) = clint(1);
        tb.set_raw(0x1_0000_0005);
        assert_eq!(c.read(0xbff8, 4), 5);
        assert_eq!(c.read(0xbffc, 4), 1);
        assert_eq!(c.read(0xbff8, 8), 0x1_0000_0005);
        // RV32 idiom: high half to all ones first, then low, then high.
        c.write(0x4000, 4, 0xffff_ffff);
        c.write(0x4004, 4, 0xffff_ffff);
        c.write(0x4000, 4, 0x10);
        assert!(!l[0].1.get());
        c.write(0x4004, 4, 0x1);
        assert_eq!(c.read(0x4000, 8), 0x1_0000_0010);
        assert_eq!(c.read(0x4004, 4), 1);
        assert!(!l[0].1.get());
        c.write(0x4004, 4, 0);
        assert!(l[0].1.get());
    }

    #[test]
    fn mtime_writes_set_the_guest_view_only() {
        let (mut c, tb, _) = clint(1);
        tb.set_raw(1000);
        c.write(0xbff8, 8, 50);
        assert_eq!(tb.now(), 50);
        assert_eq!(tb.raw(), 1000);
        tb.advance(10);
        assert_eq!(c.read(0xbff8, 8), 60);
        c.write(0xbffc, 4, 2);
        assert_eq!(c.read(0xbff8, 8), 2 << 32 | 60);
        c.write(0xbff8, 4, 7);
        assert_eq!(c.read(0xbff8, 8), 2 << 32 | 7);
    }

    #[test]
    fn a_host_timebase_follows_the_host_clock_finely() {
        let tb = Timebase::host(10_000_000);
        assert!(tb.is_host());
        let t0 = std::time::Instant::now();
        let a = tb.raw();
        // Two reads a few microseconds apart differ: `time` is fine-grained.
        let mut b = tb.raw();
        while b == a {
            b = tb.raw();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c = tb.raw();
        let host = t0.elapsed().as_nanos() as u64 / 100;
        assert!(c >= a + 200_000 && c <= host + 1, "20 ms later: {a} -> {c} ticks, host {host}");
        // set_raw and set_now move the count against the host clock.
        tb.set_raw(1 << 40);
        assert!(tb.raw() >= 1 << 40 && tb.raw() < (1 << 40) + 10_000_000);
        tb.set_now(5);
        assert!(tb.now() < 10_000_000 && tb.raw() >= 1 << 40);
    }

    #[test]
    fn a_passed_deadline_whose_line_is_low_is_still_a_deadline() {
        let (mut c, tb, l) = clint(1);
        c.write(0x4000, 8, 100);
        tb.advance(150);
        // Time moved without an update: the caller must not wait.
        assert_eq!(c.next_deadline(), Some(100));
        c.update();
        assert!(l[0].1.get());
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn bad_sizes_and_offsets_are_harmless() {
        let (mut c, _, l) = clint(1);
        for (off, size) in
            [(0u64, 1u8), (0, 2), (2, 4), (0x4004, 8), (0xbffc, 8), (0xc000, 4), (0xfffc, 4), (u64::MAX - 3, 4)]
        {
            assert_eq!(c.read(off, size), 0, "{off:#x}/{size}");
            c.write(off, size, 0);
        }
        assert_eq!(c.read(0x4000, 8), u64::MAX);
        assert!(!l[0].0.get() && !l[0].1.get());
    }
}

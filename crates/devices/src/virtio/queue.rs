//! Split virtqueues (Virtio 1.2 §2.7) seen from the device side.
//!
//! Everything in the rings is written by the guest and is treated as
//! hostile. The walker enforces, for every chain it hands to a device:
//! - the available index never runs more than Queue Size ahead of the
//!   device (§2.7.6; anything else means the ring is corrupt);
//! - head and `next` indices are inside their descriptor table;
//! - a chain visits at most Queue Size descriptors of the main table
//!   ("A driver MUST NOT create a descriptor chain longer than the Queue
//!   Size of the device", §2.7.5.3.1 / §2.7.13.4), and at most the number
//!   of entries of an indirect table, so loops end;
//! - indirect descriptors (§2.7.5.3) only when VIRTIO_F_RING_INDIRECT_DESC
//!   was negotiated, never nested, never together with NEXT, with a length
//!   that is a non-zero multiple of 16 and at most [`MAX_INDIRECT`] entries;
//! - device-writable buffers come after all device-readable ones (§2.7.4.2);
//! - every buffer (and indirect table) lies inside guest RAM and does not
//!   overlap this queue's own descriptor table or rings.
//!
//! A violation is a [`ChainError`]; the device answers it by entering
//! DEVICE_NEEDS_RESET (§2.1.1), so the guest cannot make the host loop,
//! allocate without bound, or touch memory outside guest RAM.
//!
//! Ring layout (§2.7, the table in §2.7.2 "Virtqueue Alignment" and the
//! structs in §2.7.5, §2.7.6, §2.7.8):
//! - descriptor table: `size` × {addr u64, len u32, flags u16, next u16},
//!   16-byte aligned;
//! - available ring: flags u16, idx u16, `ring[size]` u16, used_event u16,
//!   2-byte aligned;
//! - used ring: flags u16, idx u16, `ring[size] {id u32, len u32}`,
//!   avail_event u16, 4-byte aligned.

use std::fmt;
use std::sync::atomic::{fence, Ordering};

use strata_memory::GuestMemory;

/// Descriptor flags (§2.7.5).
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver does not want used-buffer notifications
/// (§2.7.7; ignored when EVENT_IDX is negotiated).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device does not want available-buffer notifications.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;
/// Largest indirect table the device accepts (entries). Linux uses at most
/// a few hundred; the bound keeps a hostile table's work small.
pub const MAX_INDIRECT: u32 = 1024;
/// Largest queue size of a split virtqueue (§2.7: Queue Size ≤ 32768).
pub const MAX_QUEUE_SIZE: u16 = 32768;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// Queue size zero, not a power of two, or above the device maximum.
    BadQueueSize(u16),
    /// A ring is misaligned or not inside guest RAM.
    BadRing(&'static str, u64),
    /// The available index is more than Queue Size ahead of the device.
    AvailIdxJump {
        avail_idx: u16,
        next_avail: u16,
    },
    /// A head or `next` index is outside its table.
    IndexOutOfRange(u32),
    /// More descriptors than the table holds: a loop or an overlong chain.
    ChainTooLong,
    IndirectNotNegotiated,
    NestedIndirect,
    IndirectWithNext,
    BadIndirectLen(u32),
    /// A device-readable descriptor after a device-writable one.
    ReadableAfterWritable,
    /// A buffer not inside guest RAM.
    OutsideRam {
        addr: u64,
        len: u32,
    },
    /// A buffer that overlaps this queue's descriptor table or rings.
    OverlapsRing {
        addr: u64,
        len: u32,
    },
    /// The used ring could not be written (only possible if the queue was
    /// not validated).
    UsedRing(u64),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::BadQueueSize(n) => write!(f, "queue size {n} is not a power of two within the device maximum"),
            ChainError::BadRing(what, a) => write!(f, "{what} at {a:#x} is misaligned or outside guest RAM"),
            ChainError::AvailIdxJump { avail_idx, next_avail } => {
                write!(f, "available index {avail_idx} is more than the queue size ahead of {next_avail}")
            }
            ChainError::IndexOutOfRange(i) => write!(f, "descriptor index {i} is outside its table"),
            ChainError::ChainTooLong => write!(f, "descriptor chain longer than its table (loop?)"),
            ChainError::IndirectNotNegotiated => write!(f, "indirect descriptor without VIRTIO_F_RING_INDIRECT_DESC"),
            ChainError::NestedIndirect => write!(f, "indirect descriptor inside an indirect table"),
            ChainError::IndirectWithNext => write!(f, "descriptor with both INDIRECT and NEXT"),
            ChainError::BadIndirectLen(l) => {
                write!(f, "indirect table length {l} is not a non-zero multiple of 16 within bounds")
            }
            ChainError::ReadableAfterWritable => write!(f, "device-readable descriptor after a device-writable one"),
            ChainError::OutsideRam { addr, len } => write!(f, "buffer {addr:#x}+{len:#x} is outside guest RAM"),
            ChainError::OverlapsRing { addr, len } => {
                write!(f, "buffer {addr:#x}+{len:#x} overlaps the virtqueue's rings")
            }
            ChainError::UsedRing(a) => write!(f, "used ring write at {a:#x} failed"),
        }
    }
}

impl std::error::Error for ChainError {}

/// One buffer of a chain: guest-physical, checked to be inside RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
}

/// A descriptor chain popped from the available ring: device-readable
/// buffers, then device-writable ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    pub head: u16,
    pub readable: Vec<Buf>,
    pub writable: Vec<Buf>,
}

impl Chain {
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|b| b.len as u64).sum()
    }
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|b| b.len as u64).sum()
    }

    /// Reads `dst.len()` bytes from offset `off` of the readable part.
    /// Returns how many bytes were available (short at the end).
    pub fn read_at(&self, mem: &dyn GuestMemory, off: u64, dst: &mut [u8]) -> usize {
        copy_segments(&self.readable, off, dst.len() as u64, |addr, pos, n| {
            mem.read_bytes(addr, &mut dst[pos..pos + n]).is_ok()
        })
    }

    /// Writes `src` at offset `off` of the writable part. Returns how many
    /// bytes fitted.
    pub fn write_at(&self, mem: &dyn GuestMemory, off: u64, src: &[u8]) -> usize {
        copy_segments(&self.writable, off, src.len() as u64, |addr, pos, n| {
            mem.write_bytes(addr, &src[pos..pos + n]).is_ok()
        })
    }
}

/// Pieces of `bufs` covering `[off, off+len)` of their concatenation:
/// calls `f(guest_addr, position_in_request, bytes)` for each; returns the
/// bytes covered (stops early if `f` returns false).
pub fn copy_segments(bufs: &[Buf], off: u64, len: u64, mut f: impl FnMut(u64, usize, usize) -> bool) -> usize {
    let mut skip = off;
    let mut done = 0u64;
    for b in bufs {
        if done == len {
            break;
        }
        let blen = b.len as u64;
        if skip >= blen {
            skip -= blen;
            continue;
        }
        let n = (blen - skip).min(len - done);
        if !f(b.addr + skip, done as usize, n as usize) {
            break;
        }
        done += n;
        skip = 0;
    }
    done as usize
}

/// Device-side state of one split virtqueue (saved whole in snapshots:
/// the ring addresses, indices and negotiated ring features).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Queue {
    pub max_size: u16,
    /// Queue Size as written by the driver (QueueNum).
    pub size: u16,
    pub ready: bool,
    pub desc_addr: u64,
    pub avail_addr: u64,
    pub used_addr: u64,
    next_avail: u16,
    next_used: u16,
    /// `next_used` when the device last decided whether to notify.
    signalled_used: u16,
    event_idx: bool,
    indirect: bool,
}

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    // Half-open ranges; computed without overflow (all are inside RAM).
    a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

impl Queue {
    pub fn new(max_size: u16) -> Self {
        Queue {
            max_size,
            size: max_size,
            ready: false,
            desc_addr: 0,
            avail_addr: 0,
            used_addr: 0,
            next_avail: 0,
            next_used: 0,
            signalled_used: 0,
            event_idx: false,
            indirect: false,
        }
    }

    /// Back to the state after a device reset (§2.4).
    pub fn reset(&mut self) {
        *self = Queue::new(self.max_size);
    }

    /// Fixes the negotiated ring features; call when the driver sets
    /// DRIVER_OK.
    pub fn set_features(&mut self, indirect: bool, event_idx: bool) {
        self.indirect = indirect;
        self.event_idx = event_idx;
    }

    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    fn desc_bytes(&self) -> u64 {
        16 * self.size as u64
    }
    fn avail_bytes(&self) -> u64 {
        6 + 2 * self.size as u64
    }
    fn used_bytes(&self) -> u64 {
        6 + 8 * self.size as u64
    }

    /// Checks the size and ring placement the driver configured (§2.7,
    /// §2.7.2 alignment table). Called when the driver enables the queue.
    pub fn validate(&self, mem: &dyn GuestMemory) -> Result<(), ChainError> {
        let s = self.size;
        if s == 0 || !s.is_power_of_two() || s > self.max_size || s > MAX_QUEUE_SIZE {
            return Err(ChainError::BadQueueSize(s));
        }
        let rings = [
            ("descriptor table", self.desc_addr, 16, self.desc_bytes()),
            ("available ring", self.avail_addr, 2, self.avail_bytes()),
            ("used ring", self.used_addr, 4, self.used_bytes()),
        ];
        for (what, addr, align, len) in rings {
            if addr % align != 0 || !mem.contains(addr, len) {
                return Err(ChainError::BadRing(what, addr));
            }
        }
        Ok(())
    }

    fn overlaps_rings(&self, addr: u64, len: u64) -> bool {
        overlaps(addr, len, self.desc_addr, self.desc_bytes())
            || overlaps(addr, len, self.avail_addr, self.avail_bytes())
            || overlaps(addr, len, self.used_addr, self.used_bytes())
    }

    fn load16(mem: &dyn GuestMemory, addr: u64) -> Result<u16, ChainError> {
        mem.load(addr, 2).map(|v| v as u16).map_err(|_| ChainError::BadRing("ring field", addr))
    }

    /// The driver's available index.
    fn avail_idx(&self, mem: &dyn GuestMemory) -> Result<u16, ChainError> {
        Self::load16(mem, self.avail_addr + 2)
    }

    /// Is there a chain to pop? Also publishes `avail_event` (§2.7.10) when
    /// EVENT_IDX is on, so the driver notifies for the next buffer.
    pub fn has_available(&mut self, mem: &dyn GuestMemory) -> Result<bool, ChainError> {
        let idx = self.avail_idx(mem)?;
        let pending = idx.wrapping_sub(self.next_avail);
        if pending > self.size {
            return Err(ChainError::AvailIdxJump { avail_idx: idx, next_avail: self.next_avail });
        }
        if pending == 0 && self.event_idx {
            // avail_event = the index we wait for; then look again in case
            // the driver added a buffer in between (it would not notify).
            let at = self.used_addr + 4 + 8 * self.size as u64;
            mem.store(at, 2, self.next_avail as u64).map_err(|_| ChainError::UsedRing(at))?;
            fence(Ordering::SeqCst);
            let idx = self.avail_idx(mem)?;
            return Ok(idx != self.next_avail);
        }
        Ok(pending != 0)
    }

    /// Pops the next available chain, `Ok(None)` if there is none.
    pub fn pop(&mut self, mem: &dyn GuestMemory) -> Result<Option<Chain>, ChainError> {
        if !self.has_available(mem)? {
            return Ok(None);
        }
        // Read the ring entry only after seeing the index (§2.7.13.3 for
        // the driver's side of this ordering).
        fence(Ordering::Acquire);
        let slot = self.avail_addr + 4 + 2 * (self.next_avail % self.size) as u64;
        let head = Self::load16(mem, slot)?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Gives back a chain that was popped but not consumed (a device that
    /// ran out of host-side data); it will be popped again.
    pub fn undo_pop(&mut self) {
        self.next_avail = self.next_avail.wrapping_sub(1);
    }

    /// Walks the chain starting at `head` (§2.7.5, §2.7.5.3).
    pub fn walk(&self, mem: &dyn GuestMemory, head: u16) -> Result<Chain, ChainError> {
        let mut chain = Chain { head, ..Chain::default() };
        // The table being walked: (address, entries).
        let mut table = (self.desc_addr, self.size as u32);
        let mut in_indirect = false;
        let mut idx = head as u32;
        let mut visited = 0u32;
        loop {
            if idx >= table.1 {
                return Err(ChainError::IndexOutOfRange(idx));
            }
            visited += 1;
            if visited > table.1 {
                return Err(ChainError::ChainTooLong);
            }
            let mut d = [0u8; 16];
            let at = table.0 + 16 * idx as u64;
            mem.read_bytes(at, &mut d).map_err(|_| ChainError::BadRing("descriptor", at))?;
            let addr = u64::from_le_bytes(d[0..8].try_into().unwrap());
            let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
            let flags = u16::from_le_bytes(d[12..14].try_into().unwrap());
            let next = u16::from_le_bytes(d[14..16].try_into().unwrap());

            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                if !self.indirect {
                    return Err(ChainError::IndirectNotNegotiated);
                }
                if in_indirect {
                    return Err(ChainError::NestedIndirect);
                }
                if flags & VIRTQ_DESC_F_NEXT != 0 {
                    return Err(ChainError::IndirectWithNext);
                }
                if len == 0 || len % 16 != 0 || len / 16 > MAX_INDIRECT {
                    return Err(ChainError::BadIndirectLen(len));
                }
                if !mem.contains(addr, len as u64) {
                    return Err(ChainError::OutsideRam { addr, len });
                }
                if self.overlaps_rings(addr, len as u64) {
                    return Err(ChainError::OverlapsRing { addr, len });
                }
                table = (addr, len / 16);
                in_indirect = true;
                idx = 0;
                visited = 0;
                continue;
            }

            if len > 0 {
                if !mem.contains(addr, len as u64) {
                    return Err(ChainError::OutsideRam { addr, len });
                }
                if self.overlaps_rings(addr, len as u64) {
                    return Err(ChainError::OverlapsRing { addr, len });
                }
            }
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                if len > 0 {
                    chain.writable.push(Buf { addr, len });
                }
            } else {
                if !chain.writable.is_empty() {
                    return Err(ChainError::ReadableAfterWritable);
                }
                if len > 0 {
                    chain.readable.push(Buf { addr, len });
                }
            }
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            idx = next as u32;
        }
    }

    /// Puts a used element (§2.7.8): `len` is the number of bytes the
    /// device wrote into the chain's writable buffers.
    pub fn push_used(&mut self, mem: &dyn GuestMemory, head: u16, len: u32) -> Result<(), ChainError> {
        let slot = self.used_addr + 4 + 8 * (self.next_used % self.size) as u64;
        let elem = (head as u64) | ((len as u64) << 32);
        mem.store(slot, 8, elem).map_err(|_| ChainError::UsedRing(slot))?;
        // The element must be visible before the index that publishes it.
        fence(Ordering::Release);
        self.next_used = self.next_used.wrapping_add(1);
        let at = self.used_addr + 2;
        mem.store(at, 2, self.next_used as u64).map_err(|_| ChainError::UsedRing(at))?;
        Ok(())
    }

    /// After a batch of [`push_used`](Self::push_used): does the driver
    /// want a used-buffer notification (§2.7.7 without EVENT_IDX, §2.7.10
    /// with it)?
    pub fn needs_notification(&mut self, mem: &dyn GuestMemory) -> bool {
        let new = self.next_used;
        let old = self.signalled_used;
        if new == old {
            return false;
        }
        self.signalled_used = new;
        fence(Ordering::SeqCst);
        if self.event_idx {
            let at = self.avail_addr + 4 + 2 * self.size as u64;
            let Ok(event) = Self::load16(mem, at) else { return true };
            // vring_need_event: notify if `event` lies in [old, new).
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            match Self::load16(mem, self.avail_addr) {
                Ok(flags) => flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0,
                Err(_) => true,
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::virtio::TestRng;
    use strata_memory::GuestRam;

    pub const RAM: u64 = 0x8000_0000;
    pub const DESC: u64 = RAM + 0x1000;
    pub const AVAIL: u64 = RAM + 0x2000;
    pub const USED: u64 = RAM + 0x3000;
    pub const DATA: u64 = RAM + 0x10000;

    pub fn setup(size: u16) -> (GuestRam, Queue) {
        let mem = GuestRam::new(RAM, 0x10_0000).unwrap();
        let mut q = Queue::new(256);
        q.size = size;
        q.desc_addr = DESC;
        q.avail_addr = AVAIL;
        q.used_addr = USED;
        q.ready = true;
        q.set_features(true, true);
        q.validate(&mem).unwrap();
        (mem, q)
    }

    pub fn desc(mem: &dyn GuestMemory, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = table + 16 * i as u64;
        mem.store(at, 8, addr).unwrap();
        mem.store(at + 8, 4, len as u64).unwrap();
        mem.store(at + 12, 2, flags as u64).unwrap();
        mem.store(at + 14, 2, next as u64).unwrap();
    }

    /// Makes `head` available at the driver's next slot.
    pub fn offer(mem: &dyn GuestMemory, q: &Queue, head: u16) {
        let idx = mem.load(AVAIL + 2, 2).unwrap() as u16;
        mem.store(AVAIL + 4 + 2 * (idx % q.size) as u64, 2, head as u64).unwrap();
        mem.store(AVAIL + 2, 2, idx.wrapping_add(1) as u64).unwrap();
    }

    #[test]
    fn simple_chain_and_used_ring() {
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, DESC, 1, DATA + 0x100, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
        desc(&mem, DESC, 2, DATA + 0x400, 1, VIRTQ_DESC_F_WRITE, 0);
        offer(&mem, &q, 0);
        let c = q.pop(&mem).unwrap().unwrap();
        assert_eq!(c.head, 0);
        assert_eq!(c.readable_len(), 16);
        assert_eq!(c.writable_len(), 513);
        assert!(q.pop(&mem).unwrap().is_none());
        // EVENT_IDX: the device published avail_event = 1.
        assert_eq!(mem.load(USED + 4 + 8 * 8, 2).unwrap(), 1);
        assert_eq!(c.write_at(&mem, 510, &[1, 2, 3]), 3);
        assert_eq!(mem.load(DATA + 0x100 + 511, 1).unwrap(), 2);
        assert_eq!(mem.load(DATA + 0x400, 1).unwrap(), 3);
        q.push_used(&mem, c.head, 513).unwrap();
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 1);
        assert_eq!(mem.load(USED + 4, 4).unwrap(), 0);
        assert_eq!(mem.load(USED + 8, 4).unwrap(), 513);
        // used_event = 0: the driver wants to hear about used idx 1.
        assert!(q.needs_notification(&mem));
        assert!(!q.needs_notification(&mem));
    }

    #[test]
    fn event_idx_suppresses_notifications() {
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, DATA, 16, 0, 0);
        mem.store(AVAIL + 4 + 2 * 8, 2, 5).unwrap(); // used_event = 5
        for _ in 0..3 {
            offer(&mem, &q, 0);
            let c = q.pop(&mem).unwrap().unwrap();
            q.push_used(&mem, c.head, 0).unwrap();
            assert!(!q.needs_notification(&mem));
        }
        for want in [false, false, true, false] {
            offer(&mem, &q, 0);
            let c = q.pop(&mem).unwrap().unwrap();
            q.push_used(&mem, c.head, 0).unwrap();
            assert_eq!(q.needs_notification(&mem), want);
        }
    }

    #[test]
    fn no_interrupt_flag_without_event_idx() {
        let (mem, mut q) = setup(8);
        q.set_features(false, false);
        desc(&mem, DESC, 0, DATA, 16, 0, 0);
        mem.store(AVAIL, 2, VIRTQ_AVAIL_F_NO_INTERRUPT as u64).unwrap();
        offer(&mem, &q, 0);
        let c = q.pop(&mem).unwrap().unwrap();
        q.push_used(&mem, c.head, 0).unwrap();
        assert!(!q.needs_notification(&mem));
    }

    #[test]
    fn indirect_table() {
        let (mem, mut q) = setup(4);
        let table = DATA + 0x8000;
        desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 2);
        desc(&mem, table, 2, DATA + 0x100, 8, VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, table, 1, DATA + 0x200, 4, VIRTQ_DESC_F_WRITE, 0);
        desc(&mem, DESC, 3, table, 48, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mem, &q, 3);
        let c = q.pop(&mem).unwrap().unwrap();
        assert_eq!(c.head, 3);
        assert_eq!(c.readable, vec![Buf { addr: DATA, len: 16 }, Buf { addr: DATA + 0x100, len: 8 }]);
        assert_eq!(c.writable, vec![Buf { addr: DATA + 0x200, len: 4 }]);
    }

    fn pop_err(mem: &dyn GuestMemory, q: &mut Queue) -> ChainError {
        q.pop(mem).expect_err("hostile chain accepted")
    }

    #[test]
    fn hostile_chains_are_rejected() {
        let table = DATA + 0x8000;
        // A loop.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, DESC, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::ChainTooLong);
        // A self-loop.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 5, DATA, 16, VIRTQ_DESC_F_NEXT, 5);
        offer(&mem, &q, 5);
        assert_eq!(pop_err(&mem, &mut q), ChainError::ChainTooLong);
        // Head out of range.
        let (mem, mut q) = setup(8);
        offer(&mem, &q, 8);
        assert_eq!(pop_err(&mem, &mut q), ChainError::IndexOutOfRange(8));
        // next out of range.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 200);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::IndexOutOfRange(200));
        // Buffer outside RAM, and straddling its end.
        for (addr, len) in [(0x1000u64, 16u32), (RAM + 0x10_0000 - 8, 16), (u64::MAX - 4, 16)] {
            let (mem, mut q) = setup(8);
            desc(&mem, DESC, 0, addr, len, 0, 0);
            offer(&mem, &q, 0);
            assert_eq!(pop_err(&mem, &mut q), ChainError::OutsideRam { addr, len });
        }
        // Buffer overlapping the used ring (a device write would corrupt it).
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, USED - 4, 16, VIRTQ_DESC_F_WRITE, 0);
        offer(&mem, &q, 0);
        assert!(matches!(pop_err(&mem, &mut q), ChainError::OverlapsRing { .. }));
        // Readable after writable.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, DATA, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, DESC, 1, DATA, 16, 0, 0);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::ReadableAfterWritable);
        // Nested indirect.
        let (mem, mut q) = setup(8);
        desc(&mem, table, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        desc(&mem, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::NestedIndirect);
        // Indirect of bad length.
        for len in [0u32, 17, 16 * (MAX_INDIRECT + 1)] {
            let (mem, mut q) = setup(8);
            desc(&mem, DESC, 0, table, len, VIRTQ_DESC_F_INDIRECT, 0);
            offer(&mem, &q, 0);
            assert_eq!(pop_err(&mem, &mut q), ChainError::BadIndirectLen(len));
        }
        // Indirect + NEXT.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::IndirectWithNext);
        // Indirect not negotiated.
        let (mem, mut q) = setup(8);
        q.set_features(false, false);
        desc(&mem, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::IndirectNotNegotiated);
        // A loop inside an indirect table.
        let (mem, mut q) = setup(8);
        desc(&mem, table, 0, DATA, 16, VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, table, 1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
        desc(&mem, DESC, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mem, &q, 0);
        assert_eq!(pop_err(&mem, &mut q), ChainError::ChainTooLong);
        // Indirect table partly outside RAM.
        let (mem, mut q) = setup(8);
        desc(&mem, DESC, 0, RAM + 0x10_0000 - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mem, &q, 0);
        assert!(matches!(pop_err(&mem, &mut q), ChainError::OutsideRam { .. }));
        // Available index jumping ahead.
        let (mem, mut q) = setup(8);
        mem.store(AVAIL + 2, 2, 9).unwrap();
        assert!(matches!(pop_err(&mem, &mut q), ChainError::AvailIdxJump { .. }));
    }

    #[test]
    fn bad_queue_configuration_is_rejected() {
        let mem = GuestRam::new(RAM, 0x10_0000).unwrap();
        let mut q = Queue::new(256);
        q.desc_addr = DESC;
        q.avail_addr = AVAIL;
        q.used_addr = USED;
        for size in [0u16, 3, 100, 512] {
            q.size = size;
            assert_eq!(q.validate(&mem), Err(ChainError::BadQueueSize(size)));
        }
        q.size = 256;
        q.validate(&mem).unwrap();
        q.desc_addr = DESC + 8; // misaligned
        assert!(q.validate(&mem).is_err());
        q.desc_addr = RAM + 0x10_0000 - 16; // runs past RAM
        assert!(q.validate(&mem).is_err());
        q.desc_addr = DESC;
        q.used_addr = USED + 2;
        assert!(q.validate(&mem).is_err());
    }

    /// Random descriptor tables, ring contents and indices: the walker must
    /// never panic, every chain it accepts must be inside RAM, not overlap
    /// the rings, and be bounded in length.
    #[test]
    fn random_rings_never_escape() {
        let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let size = 1u16 << rng.below(5);
            let (mem, mut q) = setup(size);
            q.set_features(rng.below(2) == 1, rng.below(2) == 1);
            // Fill the descriptor table and a would-be indirect area with
            // mostly plausible, sometimes absurd values.
            let pick_addr = |rng: &mut TestRng| match rng.below(6) {
                0 => rng.next(),
                1 => DESC + rng.below(0x3100),
                2 => RAM + 0x10_0000 - rng.below(64),
                _ => DATA + rng.below(0x9000),
            };
            for t in [DESC, DATA + 0x8000] {
                for i in 0..(if t == DESC { size as u64 } else { 16 }) {
                    let flags = rng.below(8) as u16;
                    let len = match rng.below(4) {
                        0 => rng.next() as u32,
                        1 => 16 * rng.below(20) as u32,
                        _ => rng.below(4096) as u32,
                    };
                    let addr = if flags & VIRTQ_DESC_F_INDIRECT != 0 && rng.below(2) == 0 {
                        DATA + 0x8000
                    } else {
                        pick_addr(&mut rng)
                    };
                    let next = if rng.below(5) == 0 { rng.next() as u16 } else { rng.below(size as u64 + 2) as u16 };
                    desc(&mem, t, i as u16, addr, len, flags, next);
                }
            }
            for i in 0..size as u64 {
                let h = if rng.below(8) == 0 { rng.next() } else { rng.below(size as u64) };
                mem.store(AVAIL + 4 + 2 * i, 2, h).unwrap();
            }
            mem.store(AVAIL + 2, 2, rng.below(size as u64 + 2)).unwrap();
            for _ in 0..(size as usize + 2) {
                match q.pop(&mem) {
                    Ok(Some(c)) => {
                        assert!(c.readable.len() + c.writable.len() <= (size as usize).max(MAX_INDIRECT as usize));
                        for b in c.readable.iter().chain(&c.writable) {
                            assert!(mem.contains(b.addr, b.len as u64), "round {round}: {b:?}");
                            assert!(!q.overlaps_rings(b.addr, b.len as u64), "round {round}: {b:?}");
                        }
                        q.push_used(&mem, c.head, 0).unwrap();
                        let _ = q.needs_notification(&mem);
                    }
                    Ok(None) => break,
                    Err(_) => break,
                }
            }
        }
    }
}

//! A device's view of memory behind the IOMMU.
//!
//! [`DmaMemory`] is the [`GuestMemory`] a virtio transport is given when
//! the board has an IOMMU: every address the device uses is an IOVA of its
//! device ID, translated page by page before any byte moves. An access
//! that spans pages is split at page boundaries; each piece is translated,
//! and a piece whose translation faults is not performed (so nothing of a
//! refused page reaches memory) and ends the access with `OutOfRange`,
//! which the virtio layer already treats as a driver error.
//!
//! `contains` is how the virtqueue code checks rings and buffers before it
//! uses them; here it translates each page for a read, as the device's
//! first access to it would, so a buffer the IOMMU refuses is reported
//! once, with a fault record, and then refused by the queue.

use std::sync::{Arc, Mutex};

use strata_arch::pte::PAGE_SIZE;
use strata_memory::{GuestMemory, OutOfRange};

use super::{lock, Iommu};

/// Guest memory as device `did` sees it through `iommu`.
pub struct DmaMemory {
    iommu: Arc<Mutex<Iommu>>,
    ram: Arc<dyn GuestMemory>,
    did: u32,
    /// Test-only: after this many writes, one extra write of a marker to
    /// an address no driver maps ([`DmaMemory::stray_write_after`]).
    stray: Mutex<Option<(u64, u64, u32)>>,
    /// What the stray write did, once it was made.
    stray_outcome: Mutex<Option<StrayOutcome>>,
}

/// What became of a stray test write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrayOutcome {
    pub iova: u64,
    pub did: u32,
    /// The IOMMU refused it.
    pub faulted: bool,
    /// The RAM at the physical address equal to the IOVA changed (what a
    /// device without an IOMMU would have done to it).
    pub ram_at_iova_changed: bool,
}

/// The pattern a stray test write carries.
pub const STRAY_MARKER: [u8; 8] = *b"STRAYDMA";

impl DmaMemory {
    pub fn new(iommu: Arc<Mutex<Iommu>>, ram: Arc<dyn GuestMemory>, did: u32) -> Self {
        DmaMemory { iommu, ram, did, stray: Mutex::new(None), stray_outcome: Mutex::new(None) }
    }

    /// What the stray test write did, if it was made.
    pub fn stray_outcome(&self) -> Option<StrayOutcome> {
        *lock(&self.stray_outcome)
    }

    /// The device ID this memory translates for.
    pub fn device_id(&self) -> u32 {
        self.did
    }

    /// Test knob (the fault path, docs/iommu.md): once the device has made
    /// `writes` writes, it makes one more, of [`STRAY_MARKER`], to `iova`,
    /// as a buggy or hostile device would, with device ID `did` (its own,
    /// or one no driver set up: a rogue function). Through a working IOMMU
    /// it faults and no byte lands.
    pub fn stray_write_after(&self, writes: u64, iova: u64, did: Option<u32>) {
        *lock(&self.stray) = Some((writes, iova, did.unwrap_or(self.did)));
    }

    fn tick_stray(&self) {
        let fire = {
            let mut s = lock(&self.stray);
            match &mut *s {
                Some((0, iova, did)) => {
                    let a = (*iova, *did);
                    *s = None;
                    Some(a)
                }
                Some((n, _, _)) => {
                    *n -= 1;
                    None
                }
                None => None,
            }
        };
        if let Some((iova, did)) = fire {
            let mut before = [0u8; STRAY_MARKER.len()];
            let readable = self.ram.read_bytes(iova, &mut before).is_ok();
            let r = self.pieces_as(did, iova, STRAY_MARKER.len() as u64, true, |pa, pos, n| {
                self.ram.write_bytes(pa, &STRAY_MARKER[pos..pos + n])
            });
            let mut after = [0u8; STRAY_MARKER.len()];
            let changed = readable && self.ram.read_bytes(iova, &mut after).is_ok() && after != before;
            *lock(&self.stray_outcome) =
                Some(StrayOutcome { iova, did, faulted: r.is_err(), ram_at_iova_changed: changed });
        }
    }

    /// Splits `[addr, addr+len)` at page boundaries, translates each piece
    /// and hands `f(pa, position, bytes)` the ones that translate; stops at
    /// the first that does not.
    fn pieces(
        &self,
        addr: u64,
        len: u64,
        write: bool,
        f: impl FnMut(u64, usize, usize) -> Result<(), OutOfRange>,
    ) -> Result<(), OutOfRange> {
        self.pieces_as(self.did, addr, len, write, f)
    }

    fn pieces_as(
        &self,
        did: u32,
        addr: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), OutOfRange>,
    ) -> Result<(), OutOfRange> {
        let end = addr.checked_add(len).ok_or(OutOfRange { addr, len })?;
        let mut a = addr;
        while a < end {
            let n = (PAGE_SIZE - (a & (PAGE_SIZE - 1))).min(end - a);
            let pa = lock(&self.iommu).translate(did, a, write).map_err(|_| OutOfRange { addr: a, len: n })?;
            f(pa, (a - addr) as usize, n as usize)?;
            a += n;
        }
        Ok(())
    }
}

impl GuestMemory for DmaMemory {
    fn contains(&self, addr: u64, len: u64) -> bool {
        self.pieces(addr, len, false, |pa, _, n| {
            if self.ram.contains(pa, n as u64) {
                Ok(())
            } else {
                Err(OutOfRange { addr: pa, len: n as u64 })
            }
        })
        .is_ok()
    }
    fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange> {
        if within_page(addr, size) {
            // One translation, and the RAM's own (single-copy atomic) load.
            let pa = lock(&self.iommu)
                .translate(self.did, addr, false)
                .map_err(|_| OutOfRange { addr, len: size as u64 })?;
            return self.ram.load(pa, size);
        }
        let mut b = [0u8; 8];
        let n = (size as usize).min(8);
        self.read_bytes(addr, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }
    fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange> {
        if within_page(addr, size) {
            self.tick_stray();
            let pa =
                lock(&self.iommu).translate(self.did, addr, true).map_err(|_| OutOfRange { addr, len: size as u64 })?;
            return self.ram.store(pa, size, v);
        }
        let n = (size as usize).min(8);
        self.write_bytes(addr, &v.to_le_bytes()[..n])
    }
    fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        self.pieces(addr, dst.len() as u64, false, |pa, pos, n| self.ram.read_bytes(pa, &mut dst[pos..pos + n]))
    }
    fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        self.tick_stray();
        self.pieces(addr, src.len() as u64, true, |pa, pos, n| self.ram.write_bytes(pa, &src[pos..pos + n]))
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        self.tick_stray();
        self.pieces(addr, len, true, |pa, _, n| self.ram.zero(pa, n as u64))
    }
}

fn within_page(addr: u64, size: u8) -> bool {
    (addr & (PAGE_SIZE - 1)) + size as u64 <= PAGE_SIZE
}

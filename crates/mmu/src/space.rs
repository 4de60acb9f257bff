//! Address-space slots: the part of a TLB context id that names *which*
//! translation an entry belongs to.
//!
//! A slot stands for one single-stage address space (a `satp` value: mode,
//! ASID and root) or one two-stage address space (a `vsatp` value together
//! with an `hgatp` value: VMID and both roots). Keying by the whole register
//! values means a switch of process, ASID or VM only switches slot; nothing
//! is flushed, and fences pick the slots they apply to by ASID and VMID
//! (Privileged Architecture 20211203 §4.2.1 SFENCE.VMA, §8.3.2 HFENCE).
//! Slot 0 is reserved for untranslated accesses (M-mode, or `satp` Bare).
//!
//! When every slot is taken, the least recently chosen one that is not in
//! use is recycled and its TLB entries are dropped.

use std::collections::BTreeMap;

use crate::tlb::{Tlb, SPACES};

use strata_arch::csr::{hgatp, satp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpaceKey {
    /// A two-stage (V=1) space.
    pub virt: bool,
    /// `satp` (V=0) or `vsatp` (V=1).
    pub atp: u64,
    /// `hgatp` for a two-stage space, 0 otherwise.
    pub hgatp: u64,
}

impl SpaceKey {
    pub fn asid(&self) -> u64 {
        (self.atp & satp::ASID_MASK) >> satp::ASID_SHIFT
    }
    pub fn vmid(&self) -> u64 {
        (self.hgatp & hgatp::VMID_MASK) >> hgatp::VMID_SHIFT
    }
}

/// TLB counts of one address space, or of all of a VM's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpaceCounts {
    pub hits: u64,
    pub misses: u64,
    /// Misses on translations a coarse invalidation dropped although they
    /// did not reach the page that changed.
    pub collateral_misses: u64,
}

/// Per-(V, VMID) totals, kept across slot reuse.
pub type VmidStats = BTreeMap<(bool, u64), SpaceCounts>;

pub struct Spaces {
    keys: [Option<SpaceKey>; SPACES],
    /// Order of last use, for recycling (higher = more recent).
    used: [u64; SPACES],
    clock: u64,
    /// Hits and misses of recycled slots, by (V, VMID).
    retired: VmidStats,
    pub recycled: u64,
}

impl Default for Spaces {
    fn default() -> Self {
        Self::new()
    }
}

impl Spaces {
    pub fn new() -> Self {
        Self { keys: [None; SPACES], used: [0; SPACES], clock: 0, retired: BTreeMap::new(), recycled: 0 }
    }

    /// The slot of `key`, taking a new one (and recycling the least
    /// recently chosen slot not in `pinned`) if needed.
    pub fn slot_for(&mut self, key: SpaceKey, pinned: &[u8], tlb: &mut Tlb) -> u8 {
        self.clock += 1;
        if let Some(i) = (1..SPACES).find(|&i| self.keys[i] == Some(key)) {
            self.used[i] = self.clock;
            return i as u8;
        }
        let i = match (1..SPACES).find(|&i| self.keys[i].is_none()) {
            Some(i) => i,
            None => {
                let i = (1..SPACES)
                    .filter(|&i| !pinned.contains(&(i as u8)))
                    .min_by_key(|&i| self.used[i])
                    .expect("more slots than pinned ones");
                self.retire(i, tlb);
                i
            }
        };
        self.keys[i] = Some(key);
        self.used[i] = self.clock;
        i as u8
    }

    fn retire(&mut self, i: usize, tlb: &mut Tlb) {
        self.recycled += 1;
        tlb.flush_spaces(1 << i, None);
        if let Some(k) = self.keys[i].take() {
            let e = self.retired.entry((k.virt, if k.virt { k.vmid() } else { 0 })).or_default();
            e.hits += std::mem::take(&mut tlb.stats.slot_hits[i]);
            e.misses += std::mem::take(&mut tlb.stats.slot_misses[i]);
            e.collateral_misses += std::mem::take(&mut tlb.stats.collateral_misses[i]);
        }
    }

    /// The key of slot `i`, if it holds one.
    pub fn key(&self, i: usize) -> Option<SpaceKey> {
        self.keys.get(i).copied().flatten()
    }

    /// Bit mask of the slots whose key satisfies `f`.
    pub fn mask_where(&self, f: impl Fn(&SpaceKey) -> bool) -> u64 {
        (1..SPACES).filter(|&i| self.keys[i].as_ref().is_some_and(&f)).fold(0, |m, i| m | 1 << i)
    }

    /// Forgets every slot (after a full TLB flush).
    pub fn clear(&mut self, tlb: &mut Tlb) {
        for i in 1..SPACES {
            if self.keys[i].is_some() {
                self.retire(i, tlb);
            }
        }
    }

    /// TLB hits and misses by (V, VMID), live slots included. Untranslated
    /// accesses (slot 0) count as (false, 0).
    pub fn vmid_stats(&self, tlb: &Tlb) -> VmidStats {
        let mut m = self.retired.clone();
        for i in 0..SPACES {
            let id = match &self.keys[i] {
                Some(k) => (k.virt, if k.virt { k.vmid() } else { 0 }),
                None if i == 0 => (false, 0),
                None => continue,
            };
            let e = m.entry(id).or_default();
            e.hits += tlb.stats.slot_hits[i];
            e.misses += tlb.stats.slot_misses[i];
            e.collateral_misses += tlb.stats.collateral_misses[i];
        }
        m.retain(|_, v| *v != SpaceCounts::default());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Access;

    fn key(asid: u64, vmid: Option<u64>) -> SpaceKey {
        SpaceKey {
            virt: vmid.is_some(),
            atp: satp::SV39 << satp::MODE_SHIFT | asid << satp::ASID_SHIFT | 0x80000,
            hgatp: vmid.map_or(0, |v| hgatp::SV39X4 << hgatp::MODE_SHIFT | v << hgatp::VMID_SHIFT),
        }
    }

    #[test]
    fn same_key_same_slot_and_masks_by_id() {
        let mut t = Tlb::new();
        let mut s = Spaces::new();
        let a = s.slot_for(key(1, None), &[], &mut t);
        let b = s.slot_for(key(2, Some(7)), &[], &mut t);
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(s.slot_for(key(1, None), &[], &mut t), a);
        assert_eq!(s.mask_where(|k| k.virt && k.vmid() == 7), 1 << b);
        assert_eq!(s.mask_where(|k| !k.virt && k.asid() == 1), 1 << a);
    }

    #[test]
    fn recycling_skips_pinned_slots_and_flushes_the_victim() {
        let mut t = Tlb::new();
        let mut s = Spaces::new();
        let first = s.slot_for(key(0, None), &[], &mut t);
        let second = s.slot_for(key(1, None), &[], &mut t);
        t.insert(Access::Load, 0x1000, (first as u16) << crate::tlb::SPACE_SHIFT, 0, 12, None);
        t.insert(Access::Load, 0x2000, (second as u16) << crate::tlb::SPACE_SHIFT, 0, 12, None);
        for asid in 2..SPACES as u64 - 1 {
            s.slot_for(key(asid, None), &[], &mut t);
        }
        assert_eq!(s.recycled, 0);
        // All 31 slots are taken; `first` is the oldest but pinned.
        let n = s.slot_for(key(999, None), &[first], &mut t);
        assert_eq!(n, second);
        assert_eq!(s.recycled, 1);
        assert_eq!(t.live_entries(), 1, "the recycled slot's entry is gone, the pinned one stays");
    }
}

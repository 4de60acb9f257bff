//! The decoded-code cache: instructions decoded once per physical page and
//! run many times.
//!
//! Each cached page holds one slot per 2-byte offset (RVC puts instructions
//! at any even address), filled the first time the instruction there runs.
//! While the hart stays inside one virtual page and nothing happens that
//! could change translation or privilege (every such change sets
//! `Hart::event`), it takes its instructions straight from the page's slots:
//! no TLB lookup, no fetch from RAM, no decode.
//!
//! Staleness is ruled out by [`GuestRam`]'s code tracking: entering a page
//! marks it as code, and any write that reaches it (a store by any hart, a
//! page-table A/D update, device DMA) bumps the page's generation, which the
//! hart checks whenever it enters the page. A store by this hart to a code
//! page also sets `event`, so self-modifying code within the page being run
//! is seen at the very next instruction, as on QEMU. Other writers are seen
//! at the next page entry or event, which `fence.i` forces (Unprivileged ISA
//! 20191213 §3: a hart sees other agents' code writes after its `fence.i`).
//!
//! Only pages that a TLB entry may cache (RAM, whole page allowed by PMP)
//! are cached; anything else takes the per-instruction path.
//!
//! The JIT (`jit/`) keeps its compiled blocks here too, one per starting
//! slot, so they live and die with the decoded page: a refill drops them.
//! Blocks embed their virtual pc, so a page's blocks also belong to the
//! virtual page they were compiled for and to the JIT's buffer epoch.

use std::time::{Duration, Instant};

use crate::decode::{self, Insn};
use strata_arch::ext::Extensions;
use strata_memory::GuestRam;

/// Number of cached pages: `SETS` sets of `WAYS` pages, least recently
/// entered out first. Slot arrays are allocated on first use, so a hart
/// pays only for the pages it runs.
///
/// Why this shape: a direct-mapped cache of 1024 pages indexed by the low
/// page-number bits caused 20 times more refills than 4096 in a Linux boot
/// (38565 against 1849), each one a recompilation for the JIT. Under the
/// hypervisor one hart runs several VMs whose kernels sit at machine
/// addresses a multiple of 16 MiB apart (VMs of 128 MiB each, say): with
/// 4096 direct-mapped pages their code then collided page for page, every
/// switch between them refilled the other's pages, and two VMs sharing a
/// hart took 23 times the CPU time of the same two on two harts (3.4
/// million refills and 46 million blocks compiled, against 4 thousand and
/// 158 thousand). Folding the upper page-number bits into the set index
/// keeps runs of memory far apart from aliasing, four ways absorb the
/// remaining conflicts, and twice the pages hold the working sets of
/// several VMs: two such VMs on one hart now refill 3656 pages in all.
const PAGES: usize = SETS * WAYS;
const WAYS: usize = 4;
const SET_BITS: u32 = 11;
const SETS: usize = 1 << SET_BITS;
const SLOTS: usize = 2048;

/// The set RAM page `page` lives in: its low bits with the higher ones
/// folded in, so pages a multiple of `SETS` apart do not collide.
#[inline(always)]
fn set_of(page: usize) -> usize {
    (page ^ (page >> SET_BITS) ^ (page >> (2 * SET_BITS))) & (SETS - 1)
}

#[derive(Clone, Copy)]
pub(crate) struct Slot {
    /// The instruction bits (16 or 32 significant); 0 means "not decoded
    /// yet" (0 is the all-zero illegal instruction, which simply decodes
    /// again each time it runs).
    pub raw: u32,
    pub insn: Insn,
}

const EMPTY: Slot = Slot { raw: 0, insn: Insn::ILLEGAL };

struct Page {
    /// RAM page number (RAM offset >> 12), or `usize::MAX`.
    page: usize,
    gen: u32,
    slots: Option<Box<[Slot; SLOTS]>>,
    /// Compiled blocks by starting slot: offsets into the JIT's code
    /// buffer, 0 for none. Valid for virtual page `jit_vpage` (or none:
    /// `NO_VPAGE`) and code-buffer epoch `jit_epoch`.
    blocks: Option<Box<[u32; SLOTS]>>,
    jit_vpage: u64,
    jit_epoch: u32,
    /// When the page was last entered (the cache's entry count then), for
    /// choosing which way of a set to refill.
    last_entered: u64,
}

/// A `jit_vpage` no virtual page has (its low 12 bits are not zero).
const NO_VPAGE: u64 = u64::MAX;

/// Whether every decoded slot of cached page `p` still holds what RAM does.
fn slots_match(p: &Page, ram: &GuestRam) -> bool {
    let Some(slots) = p.slots.as_deref() else {
        return true;
    };
    let base = p.page << 12;
    slots.iter().enumerate().filter(|(_, s)| s.raw != 0).all(|(i, s)| {
        let off = i * 2;
        let now = if s.raw & 3 != 3 { ram.load_off(base + off, 2) } else { ram.load_off(base + off, 4) };
        now as u32 == s.raw
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeStats {
    /// Entries into a page (after a jump across pages, or an event).
    pub page_entries: u64,
    /// Entries that had to (re)build the page: first use, eviction, or a
    /// write to its code.
    pub page_fills: u64,
    /// Instructions decoded into slots.
    pub decodes: u64,
}

pub(crate) struct CodeCache {
    pages: Box<[Page]>,
    pub stats: CodeStats,
    /// Parallel runs only: pages filled less than [`SETTLE`] ago or since
    /// the last FENCE.I, as (cache index, RAM page, when filled). See
    /// [`revalidate`](Self::revalidate).
    unsettled: Option<Vec<(usize, usize, Instant)>>,
}

/// How long after a page is filled a store that raced with its filling may
/// still become visible to this hart. The race: another hart stores to the
/// page while this one marks it as code and decodes from it; each checks
/// the other's location before its own write is visible (the store-buffering
/// pattern), so the store does not move the page's generation and the
/// decode read the old bytes. A host store is visible to other threads once
/// it leaves the core's store buffer, nanoseconds later (and a context
/// switch drains it), so a millisecond is a wide margin.
const SETTLE: Duration = Duration::from_millis(1);
/// Unsettled pages kept before the oldest are checked at a fill rather
/// than at a FENCE.I.
const UNSETTLED_MAX: usize = 256;

impl CodeCache {
    pub fn new() -> Self {
        Self {
            pages: (0..PAGES)
                .map(|_| Page {
                    page: usize::MAX,
                    gen: 0,
                    slots: None,
                    blocks: None,
                    jit_vpage: NO_VPAGE,
                    jit_epoch: 0,
                    last_entered: 0,
                })
                .collect(),
            stats: CodeStats::default(),
            unsettled: None,
        }
    }

    /// Makes the cache hold RAM page `page` as it is now; returns its index.
    /// A page not cached takes the way of its set entered longest ago.
    #[inline]
    pub fn enter(&mut self, ram: &GuestRam, page: usize) -> usize {
        self.stats.page_entries += 1;
        let base = set_of(page) * WAYS;
        let mut idx = base;
        for i in base..base + WAYS {
            if self.pages[i].page == page {
                idx = i;
                break;
            }
            if self.pages[i].last_entered < self.pages[idx].last_entered {
                idx = i;
            }
        }
        let now = self.stats.page_entries;
        let p = &mut self.pages[idx];
        p.last_entered = now;
        if p.page != page || !ram.code_valid(page, p.gen) {
            self.stats.page_fills += 1;
            p.page = page;
            p.gen = ram.mark_code(page);
            p.jit_vpage = NO_VPAGE;
            match &mut p.slots {
                Some(s) => s.fill(EMPTY),
                None => p.slots = Some(Box::new([EMPTY; SLOTS])),
            }
            if let Some(u) = &mut self.unsettled {
                u.push((idx, page, Instant::now()));
                if u.len() > UNSETTLED_MAX {
                    self.settle(ram, Instant::now(), false);
                }
            }
        }
        idx
    }

    /// Parallel runs: keep the pages filled lately for
    /// [`revalidate`](Self::revalidate) (`on`), or stop (`!on`).
    pub fn track_fills(&mut self, on: bool) {
        self.unsettled = on.then(Vec::new);
    }

    /// A FENCE.I in a parallel run: every page filled less than
    /// [`SETTLE`] ago or since the last FENCE.I has its decoded
    /// instructions compared with RAM; a page that differs is dropped.
    /// Returns how many were. Pages filled longer ago need no look: a
    /// store that raced with their filling is visible by now and was
    /// compared at an earlier FENCE.I or fill, and any later store saw
    /// their mark and moved their generation.
    pub fn revalidate(&mut self, ram: &GuestRam) -> u64 {
        self.settle(ram, Instant::now(), true)
    }

    /// Compares the unsettled pages with RAM, dropping those that differ;
    /// forgets those filled before `now - SETTLE` (all of them if `all`,
    /// else only those).
    fn settle(&mut self, ram: &GuestRam, now: Instant, all: bool) -> u64 {
        let Some(mut list) = self.unsettled.take() else {
            return 0;
        };
        let mut dropped = 0;
        list.retain(|&(idx, page, filled)| {
            let old = now.saturating_duration_since(filled) >= SETTLE;
            if !all && !old {
                return true;
            }
            let p = &mut self.pages[idx];
            if p.page != page {
                return false; // refilled since: its new filling has an entry
            }
            if !slots_match(p, ram) {
                p.page = usize::MAX;
                p.jit_vpage = NO_VPAGE;
                dropped += 1;
                return false;
            }
            !old
        });
        self.unsettled = Some(list);
        dropped
    }

    /// The slot of page-offset `off` in cached page `idx`, decoding it from
    /// RAM first if needed. `None` for a 32-bit instruction that straddles
    /// the end of the page (the caller fetches it the slow way). An
    /// instruction of an extension not in `exts` decodes as illegal.
    #[inline(always)]
    pub fn slot(&mut self, ram: &GuestRam, idx: usize, off: usize, exts: Extensions) -> Option<Slot> {
        let p = &mut self.pages[idx & (PAGES - 1)];
        let base = p.page << 12;
        let slots = p.slots.as_deref_mut()?;
        let s = &mut slots[(off >> 1) & (SLOTS - 1)];
        if s.raw != 0 {
            return Some(*s);
        }
        let off = off & 0xffe;
        let lo = ram.load_off(base + off, 2) as u32;
        let raw = if lo & 3 != 3 {
            lo
        } else if off <= 0xffc {
            ram.load_off(base + off, 4) as u32
        } else {
            return None;
        };
        self.stats.decodes += 1;
        *s = Slot { raw, insn: decode::decode_for(raw, exts) };
        Some(*s)
    }

    /// Forgets every page (after a reset).
    pub fn clear(&mut self) {
        if let Some(u) = &mut self.unsettled {
            u.clear();
        }
        for p in self.pages.iter_mut() {
            p.page = usize::MAX;
            p.jit_vpage = NO_VPAGE;
        }
    }

    /// Makes cached page `idx`'s block map hold blocks compiled for virtual
    /// page `vpage` in code-buffer epoch `epoch`, dropping any others.
    #[inline]
    pub fn jit_enter(&mut self, idx: usize, vpage: u64, epoch: u32) {
        let p = &mut self.pages[idx & (PAGES - 1)];
        if p.jit_vpage != vpage || p.jit_epoch != epoch {
            p.jit_vpage = vpage;
            p.jit_epoch = epoch;
            match &mut p.blocks {
                Some(b) => b.fill(0),
                None => p.blocks = Some(Box::new([0; SLOTS])),
            }
        }
    }

    /// The compiled block starting at page offset `off` of cached page
    /// `idx` (0: none). Only meaningful after [`jit_enter`](Self::jit_enter).
    #[inline(always)]
    pub fn jit_block(&self, idx: usize, off: usize) -> u32 {
        match &self.pages[idx & (PAGES - 1)].blocks {
            Some(b) => b[(off >> 1) & (SLOTS - 1)],
            None => 0,
        }
    }

    pub fn set_jit_block(&mut self, idx: usize, off: usize, block: u32) {
        if let Some(b) = &mut self.pages[idx & (PAGES - 1)].blocks {
            b[(off >> 1) & (SLOTS - 1)] = block;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under the hypervisor, VMs' memory runs lie a multiple of 16 MiB
    /// (4096 pages) apart; their code must not evict each other's.
    #[test]
    fn pages_16_mib_apart_do_not_collide() {
        let ram = GuestRam::new(0x8000_0000, 128 << 20).unwrap();
        let mut c = CodeCache::new();
        let pages: Vec<usize> = (0..8).map(|k| k * 4096 + 7).collect();
        for _ in 0..3 {
            for &p in &pages {
                c.enter(&ram, p);
            }
        }
        assert_eq!(c.stats.page_fills, 8, "each page is filled once, then stays");
    }

    /// A full set gives up the way entered longest ago.
    #[test]
    fn a_full_set_evicts_the_least_recently_entered_page() {
        let ram = GuestRam::new(0x8000_0000, 128 << 20).unwrap();
        let mut c = CodeCache::new();
        let same: Vec<usize> = (0..ram.pages()).filter(|&p| set_of(p) == set_of(3)).take(WAYS + 1).collect();
        assert_eq!(same.len(), WAYS + 1);
        for &p in &same[..WAYS] {
            c.enter(&ram, p);
        }
        c.enter(&ram, same[0]); // now the most recent
        c.enter(&ram, same[WAYS]); // evicts same[1]
        assert_eq!(c.stats.page_fills, WAYS as u64 + 1);
        c.enter(&ram, same[0]);
        assert_eq!(c.stats.page_fills, WAYS as u64 + 1, "same[0] stayed");
        c.enter(&ram, same[1]);
        assert_eq!(c.stats.page_fills, WAYS as u64 + 2, "same[1] was the one evicted");
    }
}

//! The hart's software TLB of finished translations.
//!
//! Direct-mapped, one array per access kind, like the fast path of QEMU's
//! softmmu: a hit is one compare and one add. An entry maps a 4 KiB virtual
//! page straight to an offset in guest RAM, so only RAM pages whose whole
//! 4 KiB passed the page-table permission and PMP checks are cached; MMIO and
//! pages with finer-grained PMP always take the slow path.
//!
//! Entries hold *combined* translations: for V=1 the VS-stage and the
//! G-stage result in one entry, from guest virtual address to machine
//! memory. The tag is the virtual page number combined with an 11-bit
//! *context id* chosen by the hart: an address-space slot (see
//! [`crate::space`]: which `satp`, or which `vsatp`/`hgatp` pair, with its
//! ASID and VMID) and the mode bits that change the outcome of a walk
//! (privilege, SUM, MXR). Entries of other contexts are never hit, so
//! changing privilege, ASID or VMID needs no flush: unlike QEMU's TLB,
//! which is flushed on every such switch, each address space keeps its
//! entries while another runs.
//!
//! Besides the tag, each entry remembers the superpage it was cut from (so
//! a fence by address drops every 4 KiB piece of it), and for V=1 the guest
//! physical page it went through and the size of the G-stage leaf (so
//! `HFENCE.GVMA` with an address drops exactly the entries whose G-stage
//! leaf covers it, §8.3.2), and the machine page it reaches (for
//! invalidation by physical address).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::Access;

pub const SETS: usize = 512;
/// The set index is `(va >> 12 ^ va >> FOLD_SHIFT) & (SETS - 1)`.
pub const FOLD_SHIFT: u32 = 12 + SETS.trailing_zeros();

/// Context ids are 11 bits: `slot << SPACE_SHIFT | mode`.
pub const CTX_BITS: u32 = 11;
pub const SPACE_SHIFT: u32 = 6;
/// Number of address-space slots (slot 0 is "no translation").
pub const SPACES: usize = 1 << (CTX_BITS - SPACE_SHIFT);

/// A tag that no lookup matches: real tags have a context id below 0x800 in
/// their low 12 bits.
const INVALID: u64 = u64::MAX;
/// `gpa` of an entry that did not go through G-stage translation.
const NO_GPA: u64 = u64::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    tag: u64,
    /// `ram_offset = va.wrapping_add(delta)`.
    delta: u64,
}

const EMPTY: Entry = Entry { tag: INVALID, delta: 0 };

/// log2 of the size of an [`Entry`].
const ENTRY_SHIFT: u32 = 4;
const _: () = assert!(std::mem::size_of::<Entry>() == 1 << ENTRY_SHIFT);

/// How to do what [`Tlb::lookup`] does from generated code.
///
/// The entry for an access of kind `a` to virtual address `va` is at
/// `base + a.index() * kind_stride + (((va >> 12) ^ (va >> fold_shift)) & (sets - 1)) << entry_shift`.
/// It is a hit if the `u64` at `tag_off` in it equals
/// `(va & page_mask) | ctx` (the same context id `lookup` takes); the RAM
/// offset of `va` is then `va + (the u64 at delta_off)`. A hit covers the
/// whole 4 KiB page of `va`, which lies entirely inside guest RAM, so an
/// access that does not cross that page stays inside RAM. (A page-crossing
/// access can be caught by comparing the tag of its last byte's page.)
#[derive(Clone, Copy, Debug)]
pub struct RawLayout {
    pub base: *const u8,
    pub kind_stride: usize,
    pub entry_shift: u32,
    pub sets: usize,
    pub fold_shift: u32,
    pub tag_off: usize,
    pub delta_off: usize,
    pub page_mask: u64,
}

/// What an entry was made from, kept apart from the hot `Entry`.
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// `!(size - 1)` of the VS-stage (or single-stage) leaf.
    span: u64,
    /// Guest-physical address of this 4 KiB piece, or `NO_GPA`.
    gpa: u64,
    /// `!(size - 1)` of the G-stage leaf.
    gspan: u64,
}

const NO_META: Meta = Meta { span: !0xfff, gpa: NO_GPA, gspan: !0xfff };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbStats {
    /// Misses by access kind.
    pub misses: [u64; 3],
    /// Hits and misses by address-space slot (the hart counts hits on its
    /// fast paths through [`Tlb::count_hit`]); folded into per-VMID totals
    /// by [`crate::space::Spaces`] when a slot is reused.
    pub slot_hits: [u64; SPACES],
    pub slot_misses: [u64; SPACES],
    /// Of the hits, those of instruction fetches (a fetch is looked up
    /// once per entry to a decoded-code page, not per instruction).
    pub fetch_hits: u64,
    pub fills: u64,
    /// Flush operations, and the live entries they dropped.
    pub flushes: u64,
    pub dropped: u64,
    /// Fences by address that had to scan the whole TLB for the pieces of
    /// a superpage holding the address.
    pub fence_scans: u64,
    /// Entries dropped by an invalidation although they did not reach the
    /// page that changed, and later misses on exactly those translations,
    /// by address-space slot: the collateral damage of a coarse flush.
    pub collateral_dropped: u64,
    pub collateral_misses: [u64; SPACES],
}

impl Default for TlbStats {
    fn default() -> Self {
        Self {
            misses: [0; 3],
            slot_hits: [0; SPACES],
            slot_misses: [0; SPACES],
            fetch_hits: 0,
            fills: 0,
            flushes: 0,
            dropped: 0,
            fence_scans: 0,
            collateral_dropped: 0,
            collateral_misses: [0; SPACES],
        }
    }
}

pub struct Tlb {
    sets: Box<[[Entry; SETS]; 3]>,
    meta: Box<[[Meta; SETS]; 3]>,
    /// Every superpage that pieces were cut from since the last full flush:
    /// a fence by address outside all of them has only one set per kind
    /// to look at; inside one, it scans the TLB for the pieces, which may
    /// sit in any set. (QEMU keeps one widening region instead; Linux's
    /// linear map of 2 MiB pages next to its 4 KiB vmalloc and user pages
    /// widened that region over nearly every fence.)
    supers: SuperSet,
    /// Reverse index from RAM page to the entries that reach it, when
    /// enabled: an intrusive doubly-linked list per page (`head[page]`,
    /// and `next`/`prev`/`owner` per entry), relinked as entries are
    /// filled, so filling and invalidating a page cost no allocation and
    /// no scan. An entry dropped since it was linked stays in its list and
    /// is skipped when found invalid.
    rev: Option<Box<RevIndex>>,
    /// (context, page) of entries dropped as collateral, for counting the
    /// misses they cause.
    collateral: HashSet<(u16, u64)>,
    /// Bumped by every flush (see [`generation`](Self::generation)). Any
    /// new method that drops entries must bump it too: the hart's JIT
    /// keeps jumps between translated pages only while it is unchanged.
    generation: u64,
    pub stats: TlbStats,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

const NIL: u16 = u16::MAX;
const ENTRIES: usize = 3 * SETS;

struct RevIndex {
    head: Vec<u16>,
    next: [u16; ENTRIES],
    prev: [u16; ENTRIES],
    /// The RAM page each entry is linked under (`u64::MAX`: none).
    owner: [u64; ENTRIES],
}

impl RevIndex {
    fn new(pages: usize) -> Self {
        Self { head: vec![NIL; pages], next: [NIL; ENTRIES], prev: [NIL; ENTRIES], owner: [u64::MAX; ENTRIES] }
    }

    fn unlink(&mut self, c: usize) {
        let page = self.owner[c];
        if page == u64::MAX {
            return;
        }
        let (n, p) = (self.next[c], self.prev[c]);
        if p == NIL {
            self.head[page as usize] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
        self.owner[c] = u64::MAX;
    }

    fn link(&mut self, c: usize, page: u64) {
        self.unlink(c);
        let Some(h) = self.head.get_mut(page as usize) else { return };
        self.next[c] = *h;
        self.prev[c] = NIL;
        if *h != NIL {
            self.prev[*h as usize] = c as u16;
        }
        *h = c as u16;
        self.owner[c] = page;
    }
}

/// The space slot of a context id.
#[inline(always)]
pub const fn ctx_space(ctx: u16) -> usize {
    (ctx >> SPACE_SHIFT) as usize & (SPACES - 1)
}

/// The superpages (base and size) that TLB entries were cut from.
#[derive(Default)]
struct SuperSet {
    /// `(va >> shift) << 6 | shift` of each superpage.
    keys: HashSet<u64, BuildHasherDefault<MulHasher>>,
    /// Bit `shift` set when some superpage of `1 << shift` bytes is present.
    shifts: u64,
}

impl SuperSet {
    /// More than this and the TLB starts afresh: the set must not grow
    /// without bound while a guest maps ever new superpages.
    const MAX: usize = 4096;

    fn key(va: u64, shift: u32) -> u64 {
        (va >> shift) << 6 | shift as u64
    }

    /// Remembers the superpage of `1 << shift` bytes holding `va`; false if
    /// the set is full.
    fn insert(&mut self, va: u64, shift: u32) -> bool {
        let shift = shift.clamp(12, 63);
        let key = Self::key(va, shift);
        if self.keys.contains(&key) {
            return true;
        }
        if self.keys.len() >= Self::MAX {
            return false;
        }
        self.keys.insert(key);
        self.shifts |= 1 << shift;
        true
    }

    /// Whether some remembered superpage holds `va`.
    fn covers(&self, va: u64) -> bool {
        let mut shifts = self.shifts;
        while shifts != 0 {
            let shift = shifts.trailing_zeros();
            if self.keys.contains(&Self::key(va, shift)) {
                return true;
            }
            shifts &= shifts - 1;
        }
        false
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.shifts = 0;
    }
}

/// A multiplicative hash for the `u64` keys of [`SuperSet`] (SipHash would
/// cost more than the lookup it guards).
#[derive(Default)]
struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Tlb {
    pub fn new() -> Self {
        Self {
            sets: Box::new([[EMPTY; SETS]; 3]),
            meta: Box::new([[NO_META; SETS]; 3]),
            supers: SuperSet::default(),
            rev: None,
            collateral: HashSet::new(),
            generation: 0,
            stats: TlbStats::default(),
        }
    }

    /// Keeps the reverse index by RAM page from now on, for a RAM of
    /// `ram_pages` pages (a hypervisor that invalidates by physical address
    /// wants it; plain machines do not pay for it).
    pub fn enable_reverse_index(&mut self, ram_pages: usize) {
        let mut rev = Box::new(RevIndex::new(ram_pages));
        for (a, set) in self.sets.iter().enumerate() {
            for (i, e) in set.iter().enumerate() {
                if e.tag != INVALID {
                    rev.link(a * SETS + i, Self::entry_page(e));
                }
            }
        }
        self.rev = Some(rev);
    }

    fn entry_page(e: &Entry) -> u64 {
        (e.tag & !0xfff).wrapping_add(e.delta) >> 12
    }

    /// The set of `va`'s page: its low page-number bits folded with the
    /// bits above them, so that pages a multiple of `SETS` pages (2 MiB)
    /// apart do not evict each other. Linux's hot data is full of such
    /// pairs (a kernel-image page and a linear-map page, structures at
    /// 2 MiB strides); with the plain index two of them took a third of a
    /// boot's load misses.
    #[inline(always)]
    fn slot(va: u64) -> usize {
        ((va >> 12) ^ (va >> FOLD_SHIFT)) as usize & (SETS - 1)
    }

    #[inline(always)]
    fn tag(va: u64, ctx: u16) -> u64 {
        (va & !0xfff) | ctx as u64
    }

    /// The RAM offset of `va` if a translation for it is cached.
    #[inline(always)]
    pub fn lookup(&self, access: Access, va: u64, ctx: u16) -> Option<usize> {
        let e = &self.sets[access.index()][Self::slot(va)];
        if e.tag == Self::tag(va, ctx) {
            Some(va.wrapping_add(e.delta) as usize)
        } else {
            None
        }
    }

    /// Counts a hit for the address space of `ctx`.
    #[inline(always)]
    pub fn count_hit(&mut self, ctx: u16) {
        self.stats.slot_hits[ctx_space(ctx)] += 1;
    }

    /// Counts a hit of an instruction fetch for the address space of `ctx`
    /// (kept apart too, so that data hits can be told from fetch hits).
    #[inline(always)]
    pub fn count_fetch_hit(&mut self, ctx: u16) {
        self.stats.slot_hits[ctx_space(ctx)] += 1;
        self.stats.fetch_hits += 1;
    }

    /// Counts `n` hits for the address space of `ctx` (made by code that
    /// probes the TLB itself, see [`raw_layout`](Self::raw_layout)).
    #[inline]
    pub fn count_hits(&mut self, ctx: u16, n: u64) {
        self.stats.slot_hits[ctx_space(ctx)] += n;
    }

    /// Records a miss (kept out of `lookup` so the hit path stays minimal).
    #[inline]
    pub fn note_miss(&mut self, access: Access, va: u64, ctx: u16) {
        self.stats.misses[access.index()] += 1;
        self.stats.slot_misses[ctx_space(ctx)] += 1;
        if !self.collateral.is_empty() && self.collateral.remove(&(ctx, va >> 12)) {
            self.stats.collateral_misses[ctx_space(ctx)] += 1;
        }
    }

    /// Caches the 4 KiB page of `va` as living at RAM offset `page_off`.
    /// `page_shift` is the size of the (VS-stage or single-stage) page the
    /// translation came from; `g` is, for a two-stage translation, the
    /// guest-physical address and the G-stage leaf's size.
    pub fn insert(&mut self, access: Access, va: u64, ctx: u16, page_off: u64, page_shift: u32, g: Option<(u64, u32)>) {
        debug_assert!(ctx < 1 << CTX_BITS);
        self.stats.fills += 1;
        let a = access.index();
        let slot = Self::slot(va);
        self.sets[a][slot] = Entry { tag: Self::tag(va, ctx), delta: page_off.wrapping_sub(va & !0xfff) };
        let span = !((1u64 << page_shift.clamp(12, 63)) - 1);
        let (gpa, gspan) = match g {
            Some((gpa, gshift)) => (gpa & !0xfff, !((1u64 << gshift.clamp(12, 63)) - 1)),
            None => (NO_GPA, !0xfff),
        };
        self.meta[a][slot] = Meta { span, gpa, gspan };
        let code = a * SETS + slot;
        if span != !0xfff && !self.supers.insert(va, page_shift) {
            // Too many superpages to remember: start afresh (a TLB may drop
            // any entry at any time), keeping only the one just filled.
            let keep = (self.sets[a][slot], self.meta[a][slot]);
            self.flush();
            (self.sets[a][slot], self.meta[a][slot]) = keep;
            self.supers.insert(va, page_shift);
        }
        if let Some(rev) = &mut self.rev {
            rev.link(code, page_off >> 12);
        }
    }

    /// Drops every entry for which `pred(entry_va_tag, ctx, meta)` holds.
    fn drop_where(&mut self, mut pred: impl FnMut(u64, u16, &Meta) -> bool) {
        self.stats.flushes += 1;
        self.generation += 1;
        let mut dropped = 0;
        for (set, metas) in self.sets.iter_mut().zip(self.meta.iter()) {
            for (e, m) in set.iter_mut().zip(metas.iter()) {
                if e.tag != INVALID && pred(e.tag & !0xfff, (e.tag & 0x7ff) as u16, m) {
                    *e = EMPTY;
                    dropped += 1;
                }
            }
        }
        self.stats.dropped += dropped;
    }

    /// Drops entry `c` if `pred(entry_va_tag, ctx, meta)` holds.
    fn drop_one_if(&mut self, c: usize, pred: impl Fn(u64, u16, &Meta) -> bool) {
        let (k, i) = (c / SETS, c % SETS);
        let e = &mut self.sets[k][i];
        if e.tag != INVALID && pred(e.tag & !0xfff, (e.tag & 0x7ff) as u16, &self.meta[k][i]) {
            *e = EMPTY;
            self.stats.dropped += 1;
        }
    }

    /// Drops every entry.
    pub fn flush(&mut self) {
        self.stats.flushes += 1;
        self.generation += 1;
        for set in self.sets.iter_mut() {
            for e in set.iter_mut() {
                if e.tag != INVALID {
                    self.stats.dropped += 1;
                    *e = EMPTY;
                }
            }
        }
        self.supers.clear();
    }

    /// Drops the entries of the address-space slots in `spaces` (a bit mask
    /// of slots) that translate `va`, or all of them if `va` is `None`.
    /// Every 4 KiB piece of a superpage that contains `va` goes too.
    pub fn flush_spaces(&mut self, spaces: u64, va: Option<u64>) {
        let in_spaces = |ctx: u16| spaces >> ctx_space(ctx) & 1 != 0;
        match va {
            None => self.drop_where(|_, ctx, _| in_spaces(ctx)),
            Some(va) => {
                let hit = |tag_va: u64, ctx: u16, m: &Meta| in_spaces(ctx) && tag_va & m.span == va & m.span;
                if self.supers.covers(va) {
                    // Pieces of a superpage holding `va` may sit in any set.
                    self.stats.fence_scans += 1;
                    self.drop_where(hit);
                } else {
                    // Only the one set per kind that `va` maps to can.
                    self.stats.flushes += 1;
                    self.generation += 1;
                    let slot = Self::slot(va);
                    for k in 0..3 {
                        self.drop_one_if(k * SETS + slot, hit);
                    }
                }
            }
        }
    }

    /// Drops the entries of `spaces` that went through G-stage translation
    /// of guest-physical address `gpa` (any entry whose G-stage leaf covers
    /// it), or all entries of `spaces` if `gpa` is `None`.
    pub fn flush_gpa(&mut self, spaces: u64, gpa: Option<u64>) {
        let in_spaces = |ctx: u16| spaces >> ctx_space(ctx) & 1 != 0;
        match gpa {
            None => self.drop_where(|_, ctx, _| in_spaces(ctx)),
            Some(gpa) => {
                self.drop_where(|_, ctx, m| in_spaces(ctx) && m.gpa != NO_GPA && m.gpa & m.gspan == gpa & m.gspan)
            }
        }
    }

    /// Drops every entry, in every context, that reaches RAM page
    /// `ram_page` (RAM offset >> 12): invalidation by physical address.
    /// With the reverse index this looks at that page's entries only.
    pub fn flush_ram_page(&mut self, ram_page: u64) {
        self.stats.flushes += 1;
        self.generation += 1;
        let mut dropped = 0;
        match self.rev.as_mut() {
            Some(rev) => {
                let mut c = rev.head.get(ram_page as usize).copied().unwrap_or(NIL);
                while c != NIL {
                    let next = rev.next[c as usize];
                    let (k, i) = (c as usize / SETS, c as usize % SETS);
                    let e = &mut self.sets[k][i];
                    if e.tag != INVALID && Self::entry_page(e) == ram_page {
                        *e = EMPTY;
                        dropped += 1;
                    }
                    rev.unlink(c as usize);
                    c = next;
                }
            }
            None => {
                for set in self.sets.iter_mut() {
                    for e in set.iter_mut() {
                        if e.tag != INVALID && Self::entry_page(e) == ram_page {
                            *e = EMPTY;
                            dropped += 1;
                        }
                    }
                }
            }
        }
        self.stats.dropped += dropped;
    }

    /// A coarse invalidation made for a change to RAM page `ram_page`:
    /// drops every entry of `spaces` (a slot mask; `u64::MAX` for all),
    /// counting those that did not reach the page as collateral and
    /// remembering them so that later misses on them are counted too.
    pub fn flush_spaces_for_page(&mut self, spaces: u64, ram_page: u64) {
        self.stats.flushes += 1;
        self.generation += 1;
        let mut dropped = 0;
        for set in self.sets.iter_mut() {
            for e in set.iter_mut() {
                let ctx = (e.tag & 0x7ff) as u16;
                if e.tag != INVALID && spaces >> ctx_space(ctx) & 1 != 0 {
                    if Self::entry_page(e) != ram_page {
                        self.stats.collateral_dropped += 1;
                        self.collateral.insert((ctx, e.tag >> 12));
                    }
                    *e = EMPTY;
                    dropped += 1;
                }
            }
        }
        self.stats.dropped += dropped;
        // Bound the bookkeeping: a translation dropped long ago and never
        // used again is no longer interesting.
        if self.collateral.len() > 64 * 3 * SETS {
            self.collateral.clear();
        }
    }

    /// Drops store entries only (used when a page becomes watched, e.g. for
    /// a reservation or for cached code).
    pub fn flush_stores(&mut self) {
        self.generation += 1;
        self.sets[Access::Store.index()].fill(EMPTY);
    }

    /// A number that changes whenever a flush drops translations: anything
    /// derived from this TLB's translations (the JIT's jump cache) is
    /// still good while it is unchanged. (An entry replaced by `insert` is
    /// not a flush: the translation it held was not revoked.)
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Where the entries live, for code generated at run time (the hart's
    /// JIT) that looks up loads and stores without calling [`lookup`](Self::lookup)
    /// (Self::lookup). The layout may change; users must take it from here.
    /// The pointer stays valid for the life of this `Tlb`.
    pub fn raw_layout(&self) -> RawLayout {
        RawLayout {
            base: self.sets.as_ptr() as *const u8,
            kind_stride: std::mem::size_of::<[Entry; SETS]>(),
            entry_shift: ENTRY_SHIFT,
            sets: SETS,
            fold_shift: FOLD_SHIFT,
            tag_off: std::mem::offset_of!(Entry, tag),
            delta_off: std::mem::offset_of!(Entry, delta),
            page_mask: !0xfff,
        }
    }

    /// Every live entry: (access kind, context id, virtual page address,
    /// guest-physical page address for two-stage entries, RAM page).
    pub fn entries(&self) -> Vec<(Access, u16, u64, Option<u64>, u64)> {
        let kinds = [Access::Fetch, Access::Load, Access::Store];
        let mut v = Vec::new();
        for (k, (set, metas)) in self.sets.iter().zip(self.meta.iter()).enumerate() {
            for (e, m) in set.iter().zip(metas.iter()) {
                if e.tag != INVALID {
                    let gpa = (m.gpa != NO_GPA).then_some(m.gpa);
                    v.push((kinds[k], (e.tag & 0x7ff) as u16, e.tag & !0xfff, gpa, Self::entry_page(e)));
                }
            }
        }
        v
    }

    /// Number of live entries (for tests and statistics).
    pub fn live_entries(&self) -> usize {
        self.sets.iter().flat_map(|s| s.iter()).filter(|e| e.tag != INVALID).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first page above `va`'s that the TLB puts in the same set.
    fn rival_of(va: u64) -> u64 {
        ((va >> 12) + 1..).map(|p| p << 12).find(|&r| Tlb::slot(r) == Tlb::slot(va)).unwrap()
    }

    fn ctx(space: u16, mode: u16) -> u16 {
        space << SPACE_SHIFT | mode
    }

    #[test]
    fn hit_miss_contexts_and_flushes() {
        let mut t = Tlb::new();
        assert_eq!(t.lookup(Access::Load, 0x1234, 1), None);
        t.insert(Access::Load, 0x1234, 1, 0x5000, 12, None);
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 1), Some(0x5ff8));
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 2), None, "other context");
        assert_eq!(t.lookup(Access::Store, 0x1ff8, 1), None, "other access kind");
        assert_eq!(t.lookup(Access::Load, rival_of(0x1000), 1), None, "same slot, other page");
        let g = t.generation();
        t.flush_spaces(!0, Some(0x1000));
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 1), None);
        assert_ne!(t.generation(), g, "a flush moves the generation");
        t.insert(Access::Fetch, 0xffff_ffff_8000_0000, 3, 0, 12, None);
        assert_eq!(t.lookup(Access::Fetch, 0xffff_ffff_8000_0010, 3), Some(0x10));
        t.flush();
        assert_eq!(t.lookup(Access::Fetch, 0xffff_ffff_8000_0010, 3), None);
    }

    #[test]
    fn fence_by_address_drops_every_piece_of_a_superpage() {
        let mut t = Tlb::new();
        // Two 4 KiB pieces of one 2 MiB page, and an unrelated 4 KiB page.
        t.insert(Access::Load, 0x4000_3000, 1, 0x3000, 21, None);
        t.insert(Access::Load, 0x4010_0000, 1, 0x10_0000, 21, None);
        t.insert(Access::Load, 0x4020_0000, 1, 0x20_0000, 12, None);
        t.flush_spaces(!0, Some(0x4000_0000));
        assert_eq!(t.lookup(Access::Load, 0x4000_3000, 1), None);
        assert_eq!(t.lookup(Access::Load, 0x4010_0000, 1), None);
        assert_eq!(t.lookup(Access::Load, 0x4020_0000, 1), Some(0x20_0000));
    }

    /// Random fills (4 KiB pieces of 4 KiB, 2 MiB and 1 GiB pages) and
    /// fences by address, against a naive model that scans everything. Each
    /// step is one proptest-drawn word, so a failing run shrinks to the few
    /// steps that matter; the seed is printed (`STRATA_SEED` replays).
    #[test]
    fn fences_by_address_match_a_full_scan() {
        use proptest::prelude::*;
        let scans = std::cell::Cell::new(false);
        let cfg = strata_testkit::prop::config("fences_by_address_match_a_full_scan", 4);
        proptest!(cfg, |(steps in prop::collection::vec(any::<u64>(), 1..20_000))| {
            let mut t = Tlb::new();
            t.enable_reverse_index(1 << 16);
            // model: (kind, set) -> (va page, ctx, span) of the live entry
            let mut model: std::collections::HashMap<(usize, usize), (u64, u16, u64)> = Default::default();
            for (step, &r) in steps.iter().enumerate() {
                let va = (r & 0x3f_ffff_f000) | 0x40_0000_0000;
                let ctx = ctx((r >> 40) as u16 % 3 + 1, 1);
                if r >> 62 != 0 {
                    let shift = [12, 21, 30][(r >> 50) as usize % 3];
                    let kind = [Access::Fetch, Access::Load, Access::Store][(r >> 55) as usize % 3];
                    let gen = t.generation();
                    t.insert(kind, va, ctx, (r >> 8) & 0xff_f000, shift, None);
                    if t.generation() != gen {
                        // Too many superpages: the TLB started afresh
                        // (`superpage_bound_starts_afresh` makes sure of it).
                        model.clear();
                    }
                    model.insert((kind.index(), Tlb::slot(va)), (va, ctx, !((1u64 << shift) - 1)));
                } else {
                    let spaces = 1u64 << ((r >> 44) % 4);
                    let fva = if step % 2 == 0 { va } else { model.values().next().map_or(va, |e| e.0 | 0x123) };
                    t.flush_spaces(spaces, Some(fva));
                    model.retain(|_, &mut (v, c, span)| !(spaces >> ctx_space(c) & 1 != 0 && v & span == fva & span));
                }
                if step % 997 == 0 || step == steps.len() - 1 {
                    for k in 0..3 {
                        for i in 0..SETS {
                            let live = t.sets[k][i].tag != INVALID;
                            prop_assert_eq!(live, model.contains_key(&(k, i)), "step {}: entry {}/{}", step, k, i);
                        }
                    }
                }
            }
            if t.stats.fence_scans > 0 && t.stats.fence_scans < t.stats.flushes {
                scans.set(true);
            }
        });
        assert!(scans.get(), "some fences scanned, and not all of them");
    }

    /// More distinct superpages than the set remembers: the TLB starts
    /// afresh (so fences by address stay exact), and fills again.
    #[test]
    fn superpage_bound_starts_afresh() {
        let mut t = Tlb::new();
        t.enable_reverse_index(1 << 16);
        let c = ctx(1, 1);
        let gen = t.generation();
        let mut restarted_at = None;
        for i in 0..=SuperSet::MAX as u64 {
            t.insert(Access::Load, 0x40_0000_0000 + (i << 21), c, i << 21, 21, None);
            if t.generation() != gen && restarted_at.is_none() {
                restarted_at = Some(i);
            }
        }
        assert_eq!(restarted_at, Some(SuperSet::MAX as u64), "the set holds MAX superpages, not one more");
        // Only the page inserted after the restart is live.
        assert_eq!(t.live_entries(), 1);
        let last = 0x40_0000_0000 + ((SuperSet::MAX as u64) << 21);
        assert_eq!(t.lookup(Access::Load, last, c), Some(((SuperSet::MAX as u64) << 21) as usize));
        t.flush_spaces(!0, Some(last));
        assert_eq!(t.live_entries(), 0, "a fence by address still finds the superpage");
    }

    #[test]
    fn fences_keep_other_address_spaces() {
        let mut t = Tlb::new();
        let (a, b) = (ctx(1, 1), ctx(2, 1));
        t.insert(Access::Load, 0x1000, a, 0x7000, 12, None);
        t.insert(Access::Store, 0x1000, b, 0x8000, 12, None);
        t.flush_spaces(1 << 1, Some(0x1000));
        assert_eq!(t.lookup(Access::Load, 0x1000, a), None);
        assert_eq!(t.lookup(Access::Store, 0x1000, b), Some(0x8000), "space 2 untouched");
        t.insert(Access::Load, 0x5000, a, 0x7000, 12, None);
        t.flush_spaces(1 << 1, None);
        assert_eq!(t.lookup(Access::Load, 0x5000, a), None);
        assert_eq!(t.lookup(Access::Store, 0x1000, b), Some(0x8000));
    }

    #[test]
    fn gpa_fence_drops_entries_whose_g_stage_leaf_covers_it() {
        let mut t = Tlb::new();
        let v = ctx(3, 1);
        // GVA 0x1000 -> GPA 0x20_3000 inside a 2 MiB G-stage leaf.
        t.insert(Access::Load, 0x1000, v, 0x9000, 12, Some((0x20_3000, 21)));
        // GVA 0x2000 -> GPA 0x40_0000 through a 4 KiB G-stage leaf.
        t.insert(Access::Load, 0x2000, v, 0xa000, 12, Some((0x40_0000, 12)));
        // A fence on another 4 KiB page of the same 2 MiB leaf drops the first.
        t.flush_gpa(1 << 3, Some(0x3f_f000));
        assert_eq!(t.lookup(Access::Load, 0x1000, v), None);
        assert_eq!(t.lookup(Access::Load, 0x2000, v), Some(0xa000));
        // A fence next to the 4 KiB leaf leaves it.
        t.flush_gpa(1 << 3, Some(0x40_1000));
        assert_eq!(t.lookup(Access::Load, 0x2000, v), Some(0xa000));
        t.flush_gpa(1 << 3, Some(0x40_0ff8));
        assert_eq!(t.lookup(Access::Load, 0x2000, v), None);
    }

    #[test]
    fn reverse_index_finds_the_page_entries_and_skips_evicted_ones() {
        let mut t = Tlb::new();
        t.enable_reverse_index(64);
        t.insert(Access::Load, 0x1000, ctx(1, 0), 0x5000, 12, None);
        // Same set: evicts the first entry, whose index record goes stale.
        let rival = rival_of(0x1000);
        t.insert(Access::Load, rival, ctx(1, 0), 0x9000, 12, None);
        assert_eq!(t.lookup(Access::Load, 0x1000, ctx(1, 0)), None, "evicted");
        t.insert(Access::Store, 0x3000, ctx(2, 0), 0x5000, 12, None);
        t.flush_ram_page(5);
        assert_eq!(t.stats.dropped, 1);
        assert_eq!(t.lookup(Access::Load, rival, ctx(1, 0)), Some(0x9000));
        // Many fills force rebuilds; the index stays exact.
        for i in 0..10_000u64 {
            t.insert(Access::Load, i << 12, ctx(1, 0), (i % 7) << 12, 12, None);
        }
        let live_on_3 = (0..3 * SETS)
            .filter(|&c| {
                let e = t.sets[c / SETS][c % SETS];
                e.tag != INVALID && Tlb::entry_page(&e) == 3
            })
            .count() as u64;
        let before = t.stats.dropped;
        t.flush_ram_page(3);
        assert_eq!(t.stats.dropped - before, live_on_3);
        assert!(live_on_3 > 0);
    }

    /// Pages 2 MiB apart (a whole number of `SETS` pages) sit in different
    /// sets; each page still has exactly one set.
    #[test]
    fn pages_a_tlb_span_apart_do_not_collide() {
        let stride = (SETS as u64) << 12;
        for base in [0xffff_ffff_8114_9000u64, 0xffff_af80_02d0_1000, 0x1000] {
            assert_ne!(Tlb::slot(base), Tlb::slot(base + stride));
            assert_ne!(Tlb::slot(base), Tlb::slot(base + 2 * stride));
            assert_eq!(Tlb::slot(base), Tlb::slot(base + 0xfff));
        }
        let mut t = Tlb::new();
        let (a, b) = (0xffff_ffff_8114_9000u64, 0xffff_ffff_8134_9000u64);
        t.insert(Access::Load, a, ctx(1, 0), 0x5000, 12, None);
        t.insert(Access::Load, b, ctx(1, 0), 0x6000, 12, None);
        assert_eq!(t.lookup(Access::Load, a, ctx(1, 0)), Some(0x5000));
        assert_eq!(t.lookup(Access::Load, b, ctx(1, 0)), Some(0x6000));
    }

    #[test]
    fn coarse_flushes_count_collateral_misses() {
        let mut t = Tlb::new();
        t.insert(Access::Load, 0x1000, ctx(1, 0), 0x5000, 12, None);
        t.insert(Access::Load, 0x2000, ctx(1, 0), 0x6000, 12, None);
        t.insert(Access::Load, 0x3000, ctx(2, 0), 0x7000, 12, None);
        // Page 5 changed hands; the whole of slot 1 goes.
        t.flush_spaces_for_page(1 << 1, 5);
        assert_eq!(t.stats.collateral_dropped, 1, "0x2000 did not reach page 5");
        t.note_miss(Access::Load, 0x1000, ctx(1, 0));
        assert_eq!(t.stats.collateral_misses[1], 0, "the entry for page 5 had to go");
        t.note_miss(Access::Load, 0x2abc, ctx(1, 0));
        assert_eq!(t.stats.collateral_misses[1], 1);
        t.note_miss(Access::Load, 0x2abc, ctx(1, 0));
        assert_eq!(t.stats.collateral_misses[1], 1, "counted once");
        assert_eq!(t.lookup(Access::Load, 0x3000, ctx(2, 0)), Some(0x7000));
    }

    #[test]
    fn ram_page_flush_reaches_every_context() {
        let mut t = Tlb::new();
        t.insert(Access::Load, 0x1000, ctx(1, 0), 0x5000, 12, None);
        t.insert(Access::Fetch, 0x9000, ctx(4, 1), 0x5000, 12, Some((0x1000, 12)));
        t.insert(Access::Load, 0x2000, ctx(1, 0), 0x6000, 12, None);
        t.flush_ram_page(5);
        assert_eq!(t.live_entries(), 1);
        assert_eq!(t.stats.dropped, 2);
        assert_eq!(t.lookup(Access::Load, 0x2000, ctx(1, 0)), Some(0x6000));
    }
}

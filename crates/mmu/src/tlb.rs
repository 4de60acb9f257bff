//! The hart's software TLB of finished translations.
//!
//! Direct-mapped, one array per access kind, like the fast path of QEMU's
//! softmmu: a hit is one compare and one add. An entry maps a 4 KiB virtual
//! page straight to an offset in guest RAM, so only RAM pages whose whole
//! 4 KiB passed the page-table permission and PMP checks are cached; MMIO and
//! pages with finer-grained PMP always take the slow path.
//!
//! The tag is the virtual page number combined with a small *context id*
//! chosen by the hart (privilege level, SUM, MXR and similar state that
//! changes the outcome of a walk). Entries of other contexts are never hit,
//! so changing privilege does not need a flush.

use crate::Access;

pub const SETS: usize = 512;

/// A tag that no lookup matches: real tags have a context id below 0x800 in
/// their low 12 bits.
const INVALID: u64 = u64::MAX;

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
/// `base + a.index() * kind_stride + ((va >> 12) & (sets - 1)) << entry_shift`.
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
    pub tag_off: usize,
    pub delta_off: usize,
    pub page_mask: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    pub misses: [u64; 3],
    pub fills: u64,
    pub flushes: u64,
}

pub struct Tlb {
    sets: Box<[[Entry; SETS]; 3]>,
    /// For each entry, the mask of the page it was cut from (`!(size-1)`):
    /// a 4 KiB entry may be one piece of a superpage, and a fence by address
    /// anywhere in that superpage must drop it.
    spans: Box<[[u64; SETS]; 3]>,
    /// Live entries cut from superpages (an upper bound: fences by address
    /// only scan the arrays while it is nonzero).
    super_entries: usize,
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

impl Tlb {
    pub fn new() -> Self {
        Self {
            sets: Box::new([[EMPTY; SETS]; 3]),
            spans: Box::new([[!0xfff; SETS]; 3]),
            super_entries: 0,
            generation: 0,
            stats: TlbStats::default(),
        }
    }

    #[inline(always)]
    fn slot(va: u64) -> usize {
        (va >> 12) as usize & (SETS - 1)
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

    /// Records a miss (kept out of `lookup` so the hit path stays minimal).
    #[inline]
    pub fn note_miss(&mut self, access: Access) {
        self.stats.misses[access.index()] += 1;
    }

    /// Caches the 4 KiB page of `va` as living at RAM offset `page_off`;
    /// `page_shift` is the size of the page the translation came from.
    pub fn insert(&mut self, access: Access, va: u64, ctx: u16, page_off: u64, page_shift: u32) {
        debug_assert!(ctx < 0x800);
        self.stats.fills += 1;
        let slot = Self::slot(va);
        self.sets[access.index()][slot] = Entry { tag: Self::tag(va, ctx), delta: page_off.wrapping_sub(va & !0xfff) };
        let span = !((1u64 << page_shift.clamp(12, 63)) - 1);
        self.spans[access.index()][slot] = span;
        if span != !0xfff {
            self.super_entries += 1;
        }
    }

    /// A number that changes whenever a flush drops translations: anything
    /// derived from this TLB's translations (the JIT's jump cache) is
    /// still good while it is unchanged. (An entry replaced by `insert` is
    /// not a flush: the translation it held was not revoked.)
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Drops every entry.
    pub fn flush(&mut self) {
        self.stats.flushes += 1;
        self.generation += 1;
        for set in self.sets.iter_mut() {
            set.fill(EMPTY);
        }
        self.super_entries = 0;
    }

    /// Drops the entries that translate `va`, in every context, including
    /// every 4 KiB piece of a superpage that contains `va`.
    pub fn flush_va(&mut self, va: u64) {
        self.stats.flushes += 1;
        self.generation += 1;
        let slot = Self::slot(va);
        for set in self.sets.iter_mut() {
            if set[slot].tag & !0xfff == va & !0xfff {
                set[slot] = EMPTY;
            }
        }
        if self.super_entries == 0 {
            return;
        }
        for (set, spans) in self.sets.iter_mut().zip(self.spans.iter()) {
            for (e, &span) in set.iter_mut().zip(spans.iter()) {
                if span != !0xfff && e.tag != INVALID && e.tag & span == va & span {
                    *e = EMPTY;
                }
            }
        }
    }

    /// Where the entries live, for code generated at run time (the hart's
    /// JIT) that looks up loads and stores without calling [`lookup`]
    /// (Self::lookup). The layout may change; users must take it from here.
    /// The pointer stays valid for the life of this `Tlb`.
    pub fn raw_layout(&self) -> RawLayout {
        RawLayout {
            base: self.sets.as_ptr() as *const u8,
            kind_stride: std::mem::size_of::<[Entry; SETS]>(),
            entry_shift: ENTRY_SHIFT,
            sets: SETS,
            tag_off: std::mem::offset_of!(Entry, tag),
            delta_off: std::mem::offset_of!(Entry, delta),
            page_mask: !0xfff,
        }
    }

    /// Drops store entries only (used when a page becomes watched, e.g. for
    /// a reservation or for cached code).
    pub fn flush_stores(&mut self) {
        self.generation += 1;
        self.sets[Access::Store.index()].fill(EMPTY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_miss_contexts_and_flushes() {
        let mut t = Tlb::new();
        assert_eq!(t.lookup(Access::Load, 0x1234, 1), None);
        t.insert(Access::Load, 0x1234, 1, 0x5000, 12);
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 1), Some(0x5ff8));
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 2), None, "other context");
        assert_eq!(t.lookup(Access::Store, 0x1ff8, 1), None, "other access kind");
        assert_eq!(t.lookup(Access::Load, 0x1000 + (SETS as u64) * 0x1000, 1), None, "same slot, other page");
        let g = t.generation();
        t.flush_va(0x1000);
        assert_eq!(t.lookup(Access::Load, 0x1ff8, 1), None);
        assert_ne!(t.generation(), g, "a flush moves the generation");
        t.insert(Access::Fetch, 0xffff_ffff_8000_0000, 3, 0, 12);
        assert_eq!(t.lookup(Access::Fetch, 0xffff_ffff_8000_0010, 3), Some(0x10));
        t.flush();
        assert_eq!(t.lookup(Access::Fetch, 0xffff_ffff_8000_0010, 3), None);
    }

    /// Reads entries the way generated code does, through `raw_layout`,
    /// and checks that it agrees with `lookup`.
    #[test]
    fn raw_layout_agrees_with_lookup() {
        let mut t = Tlb::new();
        t.insert(Access::Store, 0xffff_ffc0_1234_5000, 5, 0x77_7000, 12);
        t.insert(Access::Load, 0x8000_2000, 3, 0x2000, 12);
        let l = t.raw_layout();
        let raw = |a: Access, va: u64, ctx: u16| -> Option<usize> {
            let at = a.index() * l.kind_stride + (((va >> 12) as usize & (l.sets - 1)) << l.entry_shift);
            // SAFETY: `at` indexes an entry inside the sets array, as the
            // layout describes; both fields are u64s inside that entry.
            let (tag, delta) = unsafe {
                let e = l.base.add(at);
                (std::ptr::read_unaligned(e.add(l.tag_off) as *const u64), std::ptr::read_unaligned(e.add(l.delta_off) as *const u64))
            };
            (tag == (va & l.page_mask) | ctx as u64).then(|| va.wrapping_add(delta) as usize)
        };
        for (a, va, ctx) in [
            (Access::Store, 0xffff_ffc0_1234_5ff8, 5),
            (Access::Store, 0xffff_ffc0_1234_5ff8, 4),
            (Access::Load, 0xffff_ffc0_1234_5ff8, 5),
            (Access::Load, 0x8000_2abc, 3),
            (Access::Fetch, 0x8000_2abc, 3),
            (Access::Load, 0x8000_3000, 3),
        ] {
            assert_eq!(raw(a, va, ctx), t.lookup(a, va, ctx), "{a:?} {va:#x} {ctx}");
        }
        assert_eq!(raw(Access::Load, 0x8000_2abc, 3), Some(0x2abc));
    }

    #[test]
    fn fence_by_address_drops_every_piece_of_a_superpage() {
        let mut t = Tlb::new();
        // Two 4 KiB pieces of one 2 MiB page, and an unrelated 4 KiB page.
        t.insert(Access::Load, 0x4000_3000, 1, 0x3000, 21);
        t.insert(Access::Load, 0x4010_0000, 1, 0x10_0000, 21);
        t.insert(Access::Load, 0x4020_0000, 1, 0x20_0000, 12);
        t.flush_va(0x4000_0000);
        assert_eq!(t.lookup(Access::Load, 0x4000_3000, 1), None);
        assert_eq!(t.lookup(Access::Load, 0x4010_0000, 1), None);
        assert_eq!(t.lookup(Access::Load, 0x4020_0000, 1), Some(0x20_0000));
    }
}

//! The page-table walker (Privileged Architecture 20211203, §4.3.2, with the
//! G-stage rules of §8.5.1).
//!
//! One walker serves every mode: Sv39/Sv48/Sv57 for single-stage and
//! VS-stage translation, and Sv39x4/Sv48x4/Sv57x4 for G-stage translation,
//! which differ only in the width of the root index and in the U-bit rule.
//! Memory is reached through [`PtMemory`], so the VS-stage walk can route
//! each of its page-table reads through G-stage translation (§8.5.2: such
//! reads are implicit accesses that are themselves translated).

use crate::pte;
use crate::Access;

/// The translation scheme of a walk: levels, and whether it is an x4
/// G-stage form (one home, `strata_arch::pte`).
pub use strata_arch::pte::Scheme;

/// `PPN[3:0]` of a 64 KiB Svnapot leaf.
const NAPOT_64K: u64 = 0b1000;
/// log2 of that page's size.
const NAPOT_SHIFT: u32 = 16;

/// Who is asking, and how permissions are read (§4.3.1, §8.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// The access is made at user privilege (U or VU), or this is a G-stage
    /// walk, where every access counts as a user access and leaves must
    /// have U=1.
    pub user: bool,
    /// `sstatus.SUM` (or `vsstatus.SUM`): supervisor may read/write U pages.
    pub sum: bool,
    /// `mstatus.MXR` (or `vsstatus.MXR` for VS-stage): loads may read
    /// execute-only pages.
    pub mxr: bool,
    /// HLVX: the load needs X permission instead of R (§8.3.2).
    pub hlvx: bool,
}

/// A completed walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The translated physical (or guest-physical) address.
    pub pa: u64,
    /// log2 of the page size: 12, 21, 30, 39 or 48.
    pub page_shift: u32,
    /// The leaf PTE as it stands after any A/D update.
    pub pte: u64,
    /// Address of the leaf PTE.
    pub pte_addr: u64,
    /// Page-table entries the walk read.
    pub refs: u32,
    /// A/D updates it wrote.
    pub writes: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError<E> {
    /// The architectural page fault for this access (or guest-page fault,
    /// for a G-stage walk; the caller knows which).
    PageFault,
    /// Reaching a page-table entry failed; `E` says how (an access fault, or
    /// a guest-page fault of the implicit G-stage translation).
    Mem(E),
}

/// The memory that holds page tables, as the walker sees it.
pub trait PtMemory {
    type Error;
    /// Reads the 8-byte PTE at `addr`.
    fn read_pte(&mut self, addr: u64) -> Result<u64, Self::Error>;
    /// Replaces the PTE at `addr` with `new` if it still holds `old`, as one
    /// atomic step (§4.3.2 step 7). Returns whether it did.
    fn update_pte(&mut self, addr: u64, old: u64, new: u64) -> Result<bool, Self::Error>;
}

/// Translates `va` for `access` through the tables rooted at physical page
/// `root_ppn`. A/D bits are set by the walker (the hardware-update option of
/// §4.3.2 step 7, which Linux relies on; Svade is not implemented).
pub fn walk<M: PtMemory>(
    mem: &mut M,
    scheme: Scheme,
    root_ppn: u64,
    va: u64,
    access: Access,
    perms: Perms,
) -> Result<Leaf, WalkError<M::Error>> {
    walk_opts(mem, scheme, root_ppn, va, access, perms, Options::default())
}

/// Optional translation features a walker's user may have (the IOMMU has
/// Svnapot, which IOMMU 1.0 §6.4 requires; a hart has those of its
/// extensions, Svpbmt as `menvcfg.PBMTE`/`henvcfg.PBMTE` enable it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Svnapot (Privileged Architecture 20240411, "Svnapot" chapter): a
    /// level-0 leaf with N=1 and `PPN[3:0]` = 0b1000 maps a naturally
    /// aligned 64 KiB region, reported as a page of that size
    /// ([`Leaf::page_shift`] 16, so a fence by address drops all of it);
    /// any other use of N is reserved (page fault).
    pub svnapot: bool,
    /// Svpbmt in effect (Privileged Architecture 20240411, "Svpbmt"
    /// chapter): a leaf's PBMT field (bits 62:61) may be PMA (0), NC (1)
    /// or IO (2); 3 is reserved, and so is a non-zero PBMT in a non-leaf
    /// PTE (page fault). Without it PBMT is reserved like bits 60:54. The
    /// walk does not report the type: Strata's memory is uniform (see
    /// docs/isa.md).
    pub pbmt: bool,
}

/// [`walk`] with [`Options`].
pub fn walk_opts<M: PtMemory>(
    mem: &mut M,
    scheme: Scheme,
    root_ppn: u64,
    va: u64,
    access: Access,
    perms: Perms,
    opts: Options,
) -> Result<Leaf, WalkError<M::Error>> {
    let mut reserved_high = pte::HIGH_BITS;
    if opts.svnapot {
        reserved_high &= !pte::N;
    }
    if opts.pbmt {
        reserved_high &= !pte::PBMT;
    }
    if !scheme.va_ok(va) {
        return Err(WalkError::PageFault);
    }
    let mut refs = 0;
    let mut writes = 0;
    'restart: loop {
        let mut table = root_ppn << pte::PAGE_SHIFT;
        let mut level = scheme.levels - 1;
        loop {
            let index = scheme.index(va, level);
            let pte_addr = table.wrapping_add(index * 8);
            let pte = mem.read_pte(pte_addr).map_err(WalkError::Mem)?;
            refs += 1;
            if pte & pte::V == 0 || (pte & pte::R == 0 && pte & pte::W != 0) || pte & reserved_high != 0 {
                return Err(WalkError::PageFault);
            }
            // Svnapot: N only on a level-0 leaf encoding 64 KiB.
            let napot = pte & pte::N != 0;
            if napot && (level != 0 || !pte::is_leaf(pte) || pte::ppn(pte) & 0xf != NAPOT_64K) {
                return Err(WalkError::PageFault);
            }
            // Svpbmt: the reserved type, and any type on a non-leaf PTE.
            let pbmt = pte & pte::PBMT;
            if pbmt == pte::PBMT || (pbmt != 0 && !pte::is_leaf(pte)) {
                return Err(WalkError::PageFault);
            }
            if !pte::is_leaf(pte) {
                if level == 0 {
                    return Err(WalkError::PageFault);
                }
                level -= 1;
                table = pte::ppn(pte) << pte::PAGE_SHIFT;
                continue;
            }
            // §4.3.2 step 5: permission checks on the leaf.
            let allowed = match access {
                Access::Fetch => pte & pte::X != 0,
                Access::Load if perms.hlvx => pte & pte::X != 0,
                Access::Load => pte & pte::R != 0 || (perms.mxr && pte & pte::X != 0),
                Access::Store => pte & pte::W != 0,
            };
            if !allowed {
                return Err(WalkError::PageFault);
            }
            if perms.user {
                if pte & pte::U == 0 {
                    return Err(WalkError::PageFault);
                }
            } else if pte & pte::U != 0 && (access == Access::Fetch || !perms.sum) {
                return Err(WalkError::PageFault);
            }
            // Step 6: a superpage's low PPN bits must be zero.
            let mut ppn = pte::ppn(pte);
            if napot {
                // The low four PPN bits come from the address (64 KiB).
                ppn = (ppn & !0xf) | ((va >> pte::PAGE_SHIFT) & 0xf);
            }
            if level > 0 && ppn & ((1 << (pte::LEVEL_BITS * level)) - 1) != 0 {
                return Err(WalkError::PageFault);
            }
            // Step 7: set A, and D for stores.
            let mut want = pte | pte::A;
            if access == Access::Store {
                want |= pte::D;
            }
            if want != pte {
                writes += 1;
                if !mem.update_pte(pte_addr, pte, want).map_err(WalkError::Mem)? {
                    continue 'restart;
                }
            }
            let page_shift = if napot { NAPOT_SHIFT } else { Scheme::page_shift(level) };
            let offset_mask = (1u64 << page_shift) - 1;
            let pa = ((ppn << pte::PAGE_SHIFT) & !offset_mask) | (va & offset_mask);
            return Ok(Leaf { pa, page_shift, pte: want, pte_addr, refs, writes });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pte::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem(HashMap<u64, u64>);
    impl PtMemory for Mem {
        type Error = u64;
        fn read_pte(&mut self, a: u64) -> Result<u64, u64> {
            if a >= 0x1_0000_0000 {
                return Err(a);
            }
            Ok(*self.0.get(&a).unwrap_or(&0))
        }
        fn update_pte(&mut self, a: u64, old: u64, new: u64) -> Result<bool, u64> {
            let cur = self.read_pte(a)?;
            if cur != old {
                return Ok(false);
            }
            self.0.insert(a, new);
            Ok(true)
        }
    }

    const S: Perms = Perms { user: false, sum: false, mxr: false, hlvx: false };
    const UP: Perms = Perms { user: true, sum: false, mxr: false, hlvx: false };

    fn ptr(ppn: u64) -> u64 {
        (ppn << 10) | V
    }
    fn leaf(ppn: u64, bits: u64) -> u64 {
        (ppn << 10) | V | bits
    }

    /// Sv39 tables at root page 0x1000 mapping VA 0x4000_1000 -> PA 0x9000_0000 (4 KiB).
    fn sv39_4k(bits: u64) -> Mem {
        let mut m = Mem::default();
        let va: u64 = 0x4000_1000;
        let (v2, v1, v0) = ((va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511);
        m.0.insert(0x100_0000 + v2 * 8, ptr(0x1001));
        m.0.insert(0x100_1000 + v1 * 8, ptr(0x1002));
        m.0.insert(0x100_2000 + v0 * 8, leaf(0x90000, bits));
        m
    }

    #[test]
    fn four_level_kib_page_sets_a_and_d() {
        let mut m = sv39_4k(R | W);
        let l = walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Load, S).unwrap();
        assert_eq!(l.pa, 0x9000_0234);
        assert_eq!(l.page_shift, 12);
        assert_eq!(l.pte & (A | D), A, "a load sets A only");
        let l = walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Store, S).unwrap();
        assert_eq!(l.pte & (A | D), A | D);
        assert_eq!((l.refs, l.writes), (3, 1), "three reads and one D update");
    }

    #[test]
    fn svnapot_only_with_the_option_and_only_its_64k_encoding() {
        let napot = Options { svnapot: true, ..Options::default() };
        // A 64 KiB leaf: N=1, PPN[3:0] = 0b1000; the page inside it comes
        // from VA[15:12] (here 0x4000_1000 -> page 1 of the region).
        let mut m = Mem::default();
        let va: u64 = 0x4000_1000;
        let (v2, v1, v0) = ((va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511);
        m.0.insert(0x100_0000 + v2 * 8, ptr(0x1001));
        m.0.insert(0x100_1000 + v1 * 8, ptr(0x1002));
        m.0.insert(0x100_2000 + v0 * 8, leaf(0x90008, R | A) | N);
        assert_eq!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Load, S), Err(WalkError::PageFault));
        let l = walk_opts(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Load, S, napot).unwrap();
        assert_eq!(l.pa, 0x9000_1234);
        assert_eq!(l.page_shift, 16, "a 64 KiB page, for fences by address");
        // Software writes all sixteen PTEs of the range alike; the walk
        // reads the one of the address's page.
        m.0.insert(0x100_2000 + 15 * 8, leaf(0x90008, R | A) | N);
        let l = walk_opts(&mut m, Scheme::SV39, 0x1000, 0x4000_fabc, Access::Load, S, napot).unwrap();
        assert_eq!(l.pa, 0x9000_fabc, "the last page of the region");
        // Any other PPN[3:0] with N is reserved.
        m.0.insert(0x100_2000 + v0 * 8, leaf(0x90004, R | A) | N);
        assert!(walk_opts(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Load, S, napot).is_err());
        // N on a non-leaf is reserved.
        m.0.insert(0x100_2000 + v0 * 8, leaf(0x90008, R | A) | N);
        m.0.insert(0x100_1000 + v1 * 8, ptr(0x1002) | N);
        assert!(walk_opts(&mut m, Scheme::SV39, 0x1000, 0x4000_1234, Access::Load, S, napot).is_err());
    }

    /// Svpbmt (Priv. "Svpbmt"): PBMT 0, 1, 2 on a leaf map alike; 3, and
    /// any PBMT on a non-leaf, are reserved; without the option all of
    /// PBMT is reserved.
    #[test]
    fn svpbmt_types_only_on_leaves_and_not_three() {
        let pbmt = Options { pbmt: true, ..Options::default() };
        let va: u64 = 0x4000_1000;
        let (v1, v0) = ((va >> 21) & 511, (va >> 12) & 511);
        for (t, ok) in [(0u64, true), (1, true), (2, true), (3, false)] {
            let mut m = sv39_4k(R | W);
            let e = m.0[&(0x100_2000 + v0 * 8)];
            m.0.insert(0x100_2000 + v0 * 8, e | t << 61);
            let r = walk_opts(&mut m, Scheme::SV39, 0x1000, va | 0x234, Access::Load, S, pbmt);
            assert_eq!(r.is_ok(), ok, "PBMT {t}");
            if ok {
                assert_eq!(r.unwrap().pa, 0x9000_0234, "PBMT {t}");
            }
            let off = walk(&mut m, Scheme::SV39, 0x1000, va, Access::Load, S);
            assert_eq!(off.is_ok(), t == 0, "PBMT {t} without Svpbmt");
        }
        let mut m = sv39_4k(R | W);
        let e = m.0[&(0x100_1000 + v1 * 8)];
        m.0.insert(0x100_1000 + v1 * 8, e | 1 << 61);
        assert_eq!(walk_opts(&mut m, Scheme::SV39, 0x1000, va, Access::Load, S, pbmt), Err(WalkError::PageFault));
    }

    #[test]
    fn permission_rules() {
        // Execute-only page: loads fault unless MXR.
        let mut m = sv39_4k(X);
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, S).is_err());
        let mxr = Perms { mxr: true, ..S };
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, mxr).is_ok());
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Fetch, S).is_ok());
        // W without R is reserved.
        let mut m = sv39_4k(W);
        assert_eq!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Store, S), Err(WalkError::PageFault));
        // U pages: user yes; supervisor only with SUM and never for fetch.
        let mut m = sv39_4k(R | X | U);
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, UP).is_ok());
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, S).is_err());
        let sum = Perms { sum: true, ..S };
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, sum).is_ok());
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Fetch, sum).is_err());
        // Supervisor page is closed to user.
        let mut m = sv39_4k(R | W);
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, UP).is_err());
    }

    #[test]
    fn non_canonical_and_reserved_bits_fault() {
        let mut m = sv39_4k(R);
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x0000_0080_4000_1000, Access::Load, S).is_err());
        let mut m = sv39_4k(R | (1 << 60));
        assert!(walk(&mut m, Scheme::SV39, 0x1000, 0x4000_1000, Access::Load, S).is_err());
    }

    #[test]
    fn superpages_and_misalignment() {
        let mut m = Mem::default();
        // 1 GiB leaf at root index 1 -> PA 0xc000_0000.
        m.0.insert(0x1000 + 8, leaf(0xc0000, R | W | X));
        let l = walk(&mut m, Scheme::SV39, 1, 0x4123_4567, Access::Fetch, S).unwrap();
        assert_eq!(l.pa, 0xc123_4567);
        assert_eq!(l.page_shift, 30);
        // Misaligned gigapage (PPN low bits nonzero) is a page fault.
        m.0.insert(0x1000 + 16, leaf(0xc0001, R));
        assert!(walk(&mut m, Scheme::SV39, 1, 0x8000_0000, Access::Load, S).is_err());
    }

    #[test]
    fn pte_read_failure_is_reported_as_such() {
        let mut m = Mem::default();
        m.0.insert(0x1000, ptr(0x0020_0000)); // next level at 0x2_0000_0000: unreachable
        assert_eq!(walk(&mut m, Scheme::SV39, 1, 0x0, Access::Load, S), Err(WalkError::Mem(0x2_0000_0000)));
    }

    #[test]
    fn x4_forms_take_two_more_root_bits_and_zero_extended_gpas() {
        assert_eq!(Scheme::SV39X4.va_bits(), 41);
        assert!(Scheme::SV39X4.va_ok((1 << 41) - 1));
        assert!(!Scheme::SV39X4.va_ok(1 << 41));
        assert!(!Scheme::SV39.va_ok(1 << 39));
        assert!(Scheme::SV39.va_ok(0xffff_ffc0_0000_0000));
        // Root index 0x7ff (uses the 2 extra bits) -> 16 KiB root table.
        let mut m = Mem::default();
        m.0.insert(0x4000 + 0x7ff * 8, leaf(0x80000, R | W | U));
        let gpa = 0x7ff << 30 | 0x1234;
        let l = walk(&mut m, Scheme::SV39X4, 4, gpa, Access::Load, UP).unwrap();
        assert_eq!(l.pa, 0x8000_1234);
        // G-stage leaves need U=1.
        m.0.insert(0x4000, leaf(0x80000, R | W));
        assert!(walk(&mut m, Scheme::SV39X4, 4, 0x10, Access::Load, UP).is_err());
    }
}

//! The hart's memory paths: fetch, load, store and AMO, with the TLB fast
//! path and the slow path through the page-table walker, PMP and the bus.

use crate::csr::{envcfg, hgatp, hstatus, satp, status};
use crate::trap::{cause, Trap, TrapExtra};
use crate::{Bus, Hart, Priv};
use strata_arch::ext::{Ext, CACHE_BLOCK_SIZE};
use strata_memory::GuestRam;
use strata_mmu::pmp::Pmp;
use strata_mmu::walk::{self, PtMemory, Scheme, WalkError};
use strata_mmu::Access;

/// Page-table memory for single-stage and G-stage walks: RAM only, with
/// each PTE access checked by PMP as an S-mode access (Priv. §3.7.1:
/// implicit accesses of a walk are checked at S-mode privilege).
struct PhysPt<'a> {
    ram: &'a GuestRam,
    pmp: &'a Pmp,
}

impl PtMemory for PhysPt<'_> {
    type Error = ();
    fn read_pte(&mut self, a: u64) -> Result<u64, ()> {
        if !self.pmp.check(a, 8, Access::Load, Priv::S) {
            return Err(());
        }
        self.ram.load(a, 8).map_err(|_| ())
    }
    fn update_pte(&mut self, a: u64, old: u64, new: u64) -> Result<bool, ()> {
        if !self.pmp.check(a, 8, Access::Store, Priv::S) {
            return Err(());
        }
        // A host compare-and-exchange: atomic with respect to every other
        // hart's access to the PTE, whatever thread runs it.
        self.ram.compare_exchange(a, 8, old, new).map(|(done, _)| done).map_err(|_| ())
    }
}

/// The G-stage of a two-stage translation (Priv. §8.5.1): `hgatp`'s scheme
/// and root, or `None` for Bare.
#[derive(Clone, Copy)]
struct GStage {
    scheme: Option<Scheme>,
    root: u64,
    /// Svnapot, and Svpbmt as `menvcfg.PBMTE` enables it for the G-stage.
    opts: walk::Options,
}

impl GStage {
    fn of(hgatp_value: u64, opts: walk::Options) -> GStage {
        let scheme = match hgatp_value >> hgatp::MODE_SHIFT {
            hgatp::SV39X4 => Some(Scheme::SV39X4),
            hgatp::SV48X4 => Some(Scheme::SV48X4),
            _ => None,
        };
        GStage { scheme, root: hgatp_value & crate::csr::HGATP_PPN_MASK, opts }
    }

    /// Translates guest-physical `gpa`. Every G-stage access is a user
    /// access (§8.5.1: leaves need U=1).
    fn translate(
        &self,
        mem: &mut PhysPt,
        gpa: u64,
        access: Access,
        mxr: bool,
        hlvx: bool,
    ) -> Result<walk::Leaf, WalkError<()>> {
        match self.scheme {
            None => Ok(walk::Leaf { pa: gpa, page_shift: 12, pte: 0, pte_addr: 0, refs: 0, writes: 0 }),
            Some(scheme) => {
                let perms = walk::Perms { user: true, sum: false, mxr, hlvx };
                walk::walk_opts(mem, scheme, self.root, gpa, access, perms, self.opts)
            }
        }
    }
}

/// Why an implicit VS-stage page-table access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuestPtError {
    /// An access fault (PMP, or not RAM).
    Access,
    /// The G-stage translation of the PTE's guest-physical address faulted;
    /// `write` for an A/D update.
    GuestPage { gpa: u64, write: bool },
}

/// Page-table memory for VS-stage walks: each PTE address is a guest
/// physical address, itself translated by the G-stage as an implicit load
/// (or store, for A/D updates), Priv. §8.5.1.
/// A small cache of G-stage translations (guest-physical page to machine
/// page): the second of the two translation caches the spec's note on
/// HFENCE.GVMA describes (§8.3.2), which that fence empties. It serves the
/// G-stage walks of VS-stage page-table reads and of the final
/// guest-physical address, which otherwise cost up to 15 PTE reads for Sv39
/// over Sv39x4. Keyed by the whole `hgatp` (mode, VMID, root), the page,
/// the access kind and MXR; an entry is made only after the walk set the
/// leaf's A (and, for stores, D) bit.
pub(crate) struct GCache {
    tags: Box<[(u64, u64); GCACHE_SETS]>,
    pa: Box<[(u64, u32); GCACHE_SETS]>,
}

const GCACHE_SETS: usize = 256;

impl GCache {
    pub fn new() -> Self {
        Self { tags: Box::new([(u64::MAX, u64::MAX); GCACHE_SETS]), pa: Box::new([(0, 12); GCACHE_SETS]) }
    }

    fn key(gpa: u64, access: Access, mxr: bool) -> u64 {
        (gpa >> 12) << 3 | (access.index() as u64) << 1 | mxr as u64
    }

    /// The machine address and G-stage leaf size for `gpa`, if cached.
    fn get(&self, hgatp: u64, gpa: u64, access: Access, mxr: bool) -> Option<(u64, u32)> {
        let k = Self::key(gpa, access, mxr);
        let i = k as usize & (GCACHE_SETS - 1);
        (self.tags[i] == (hgatp, k)).then(|| (self.pa[i].0 | (gpa & 0xfff), self.pa[i].1))
    }

    fn put(&mut self, hgatp: u64, gpa: u64, access: Access, mxr: bool, pa: u64, shift: u32) {
        let k = Self::key(gpa, access, mxr);
        let i = k as usize & (GCACHE_SETS - 1);
        self.tags[i] = (hgatp, k);
        self.pa[i] = (pa & !0xfff, shift);
    }

    pub fn clear(&mut self) {
        self.tags.fill((u64::MAX, u64::MAX));
    }
}

impl GStage {
    /// [`translate`](Self::translate) through the cache (`hlvx` accesses
    /// are not cached).
    #[allow(clippy::too_many_arguments)]
    fn translate_cached(
        &self,
        cache: &mut GCache,
        hgatp_v: u64,
        mem: &mut PhysPt,
        gpa: u64,
        access: Access,
        mxr: bool,
        hlvx: bool,
    ) -> Result<walk::Leaf, WalkError<()>> {
        if self.scheme.is_none() || hlvx {
            return self.translate(mem, gpa, access, mxr, hlvx);
        }
        if let Some((pa, page_shift)) = cache.get(hgatp_v, gpa, access, mxr) {
            return Ok(walk::Leaf { pa, page_shift, pte: 0, pte_addr: 0, refs: 0, writes: 0 });
        }
        let leaf = self.translate(mem, gpa, access, mxr, hlvx)?;
        cache.put(hgatp_v, gpa, access, mxr, leaf.pa, leaf.page_shift);
        Ok(leaf)
    }
}

struct GuestPt<'a> {
    phys: PhysPt<'a>,
    g: GStage,
    hgatp: u64,
    cache: &'a mut GCache,
    /// G-stage PTEs read while locating VS-stage PTEs.
    refs: u32,
    writes: u32,
}

impl GuestPt<'_> {
    fn locate(&mut self, gpa: u64, access: Access) -> Result<u64, GuestPtError> {
        let write = access == Access::Store;
        match self.g.translate_cached(self.cache, self.hgatp, &mut self.phys, gpa, access, false, false) {
            Ok(leaf) => {
                // The G-stage walk that locates a PTE for an A/D update is
                // part of that write, not of the translation's reads.
                if write {
                    self.writes += leaf.refs + leaf.writes;
                } else {
                    self.refs += leaf.refs;
                    self.writes += leaf.writes;
                }
                Ok(leaf.pa)
            }
            Err(WalkError::PageFault) => Err(GuestPtError::GuestPage { gpa, write }),
            Err(WalkError::Mem(())) => Err(GuestPtError::Access),
        }
    }
}

impl PtMemory for GuestPt<'_> {
    type Error = GuestPtError;
    fn read_pte(&mut self, gpa: u64) -> Result<u64, GuestPtError> {
        let pa = self.locate(gpa, Access::Load)?;
        self.phys.read_pte(pa).map_err(|_| GuestPtError::Access)
    }
    fn update_pte(&mut self, gpa: u64, old: u64, new: u64) -> Result<bool, GuestPtError> {
        let pa = self.locate(gpa, Access::Store)?;
        self.phys.update_pte(pa, old, new).map_err(|_| GuestPtError::Access)
    }
}

fn page_fault(a: Access) -> u64 {
    match a {
        Access::Fetch => cause::INSN_PAGE,
        Access::Load => cause::LOAD_PAGE,
        Access::Store => cause::STORE_PAGE,
    }
}

fn guest_page_fault(a: Access) -> u64 {
    match a {
        Access::Fetch => cause::INSN_GUEST_PAGE,
        Access::Load => cause::LOAD_GUEST_PAGE,
        Access::Store => cause::STORE_GUEST_PAGE,
    }
}

fn access_fault(a: Access) -> u64 {
    match a {
        Access::Fetch => cause::INSN_ACCESS,
        Access::Load => cause::LOAD_ACCESS,
        Access::Store => cause::STORE_ACCESS,
    }
}

/// §8.6.3, Table 8.12: the pseudoinstructions `htinst`/`mtinst` must hold
/// for a guest-page fault on an implicit VS-stage page-table access: a
/// 64-bit read, or a 64-bit write for an A/D update.
use strata_arch::tinst::{PT_READ_64 as TINST_PT_READ, PT_WRITE_64 as TINST_PT_WRITE};

/// The effective mode of an access: privilege, virtualization mode, and
/// for HLVX whether execute permission stands in for read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AccessMode {
    pub prv: Priv,
    pub virt: bool,
    pub hlvx: bool,
}

impl Hart {
    /// The mode explicit loads and stores are made in (§3.1.6.3, §8.4.1:
    /// with MPRV, M-mode accesses use MPP and MPV).
    pub(crate) fn data_mode(&self) -> AccessMode {
        let ms = self.csr.mstatus;
        if self.prv == Priv::M && ms & status::MPRV != 0 {
            let prv = Priv::from_bits(ms >> status::MPP_SHIFT);
            AccessMode { prv, virt: prv != Priv::M && ms & status::MPV != 0, hlvx: false }
        } else {
            AccessMode { prv: self.prv, virt: self.virt, hlvx: false }
        }
    }

    /// The mode of HLV/HLVX/HSV accesses (§8.3.1): as though V=1, at the
    /// privilege `hstatus.SPVP` names.
    pub(crate) fn hlv_mode(&self, hlvx: bool) -> AccessMode {
        let prv = if self.csr.hstatus & hstatus::SPVP != 0 { Priv::S } else { Priv::U };
        AccessMode { prv, virt: true, hlvx }
    }

    fn fetch_mode(&self) -> AccessMode {
        AccessMode { prv: self.prv, virt: self.virt, hlvx: false }
    }

    /// Translates `va` for an access of `len` bytes that does not cross a
    /// page, made by the current instruction in its data mode; caches the
    /// page in the TLB when it may.
    fn translate(&mut self, va: u64, len: u64, a: Access) -> Result<u64, Trap> {
        let mode = if a == Access::Fetch { self.fetch_mode() } else { self.data_mode() };
        self.translate_as(va, len, a, mode, true)
    }

    /// Translates `va` in `mode`, checks PMP, and (if `cache`) fills the
    /// TLB. On a fault, the trap's second value, instruction and GVA flag
    /// go to `self.trap_extra`.
    pub(crate) fn translate_as(
        &mut self,
        va: u64,
        len: u64,
        a: Access,
        mode: AccessMode,
        cache: bool,
    ) -> Result<u64, Trap> {
        self.trap_extra = TrapExtra::default();
        let r = self.translate_inner(va, a, mode);
        let (pa, page_shift, g) = match r {
            Ok(t) => t,
            Err(t) => {
                self.trap_extra.gva = mode.virt;
                return Err(t);
            }
        };
        if !self.pmp.check(pa, len, a, mode.prv) || (mode.hlvx && !self.pmp.check(pa, len, Access::Fetch, mode.prv)) {
            self.trap_extra.gva = mode.virt;
            return Err(Trap::new(access_fault(a), va));
        }
        if cache {
            if let Some(off) = self.ram.offset_of(pa & !0xfff, 0x1000) {
                if self.pmp.page_allows(pa, a, mode.prv) {
                    let ctx = if a == Access::Fetch { self.ctx_fetch } else { self.ctx_data };
                    self.tlb.insert(a, va, ctx, off as u64, page_shift, g);
                }
            }
        }
        Ok(pa)
    }

    /// The page-table part of a translation: the physical address, the
    /// first-stage page size, and for two-stage translations the
    /// guest-physical address and G-stage page size.
    #[allow(clippy::type_complexity)]
    fn translate_inner(
        &mut self,
        va: u64,
        a: Access,
        mode: AccessMode,
    ) -> Result<(u64, u32, Option<(u64, u32)>), Trap> {
        if mode.prv == Priv::M {
            return Ok((va, 12, None));
        }
        let ms = self.csr.mstatus;
        if !mode.virt {
            let atp = self.csr.satp;
            let scheme = match atp >> satp::MODE_SHIFT {
                satp::SV39 => Scheme::SV39,
                satp::SV48 => Scheme::SV48,
                _ => return Ok((va, 12, None)),
            };
            let perms = walk::Perms {
                user: mode.prv == Priv::U,
                sum: ms & status::SUM != 0,
                mxr: ms & status::MXR != 0,
                hlvx: false,
            };
            let opts = self.walk_options(false);
            let mut pt = PhysPt { ram: &self.ram, pmp: &self.pmp };
            let r = walk::walk_opts(&mut pt, scheme, atp & satp::PPN_MASK, va, a, perms, opts);
            self.stats.walks += 1;
            return match r {
                Ok(leaf) => {
                    self.stats.walk_refs += leaf.refs as u64;
                    self.stats.walk_ad_writes += leaf.writes as u64;
                    Ok((leaf.pa, leaf.page_shift, None))
                }
                Err(WalkError::PageFault) => Err(Trap::new(page_fault(a), va)),
                Err(WalkError::Mem(())) => Err(Trap::new(access_fault(a), va)),
            };
        }
        // Two-stage translation (§8.5): VS-stage through vsatp, each of
        // its PTE reads G-stage translated, then G-stage of the result.
        let vs = self.csr.vsatp;
        let vss = self.csr.vsstatus;
        let g = GStage::of(self.csr.hgatp, self.walk_options(false));
        let vs_opts = self.walk_options(true);
        let hgatp_v = self.csr.hgatp;
        let mut pt = GuestPt {
            phys: PhysPt { ram: &self.ram, pmp: &self.pmp },
            g,
            hgatp: hgatp_v,
            cache: &mut self.gcache,
            refs: 0,
            writes: 0,
        };
        let vs_scheme = match vs >> satp::MODE_SHIFT {
            satp::SV39 => Some(Scheme::SV39),
            satp::SV48 => Some(Scheme::SV48),
            _ => None,
        };
        let mut refs = 0;
        let mut writes = 0;
        let (gpa, vs_shift) = match vs_scheme {
            None => (va, 12),
            Some(scheme) => {
                let perms = walk::Perms {
                    user: mode.prv == Priv::U,
                    // §8.3.1, §8.4.1: vsstatus.SUM applies; MXR from either
                    // status register opens execute-only VS-stage pages.
                    sum: vss & status::SUM != 0,
                    mxr: (vss | ms) & status::MXR != 0,
                    hlvx: mode.hlvx,
                };
                let r = walk::walk_opts(&mut pt, scheme, vs & satp::PPN_MASK, va, a, perms, vs_opts);
                refs += pt.refs;
                writes += pt.writes;
                match r {
                    Ok(leaf) => {
                        refs += leaf.refs;
                        writes += leaf.writes;
                        (leaf.pa, leaf.page_shift)
                    }
                    Err(e) => {
                        self.count_walk2(refs, writes);
                        return Err(match e {
                            WalkError::PageFault => Trap::new(page_fault(a), va),
                            WalkError::Mem(GuestPtError::Access) => Trap::new(access_fault(a), va),
                            WalkError::Mem(GuestPtError::GuestPage { gpa, write }) => {
                                self.trap_extra.tval2 = gpa >> 2;
                                self.trap_extra.tinst = if write { TINST_PT_WRITE } else { TINST_PT_READ };
                                Trap::new(guest_page_fault(a), va)
                            }
                        });
                    }
                }
            }
        };
        // §8.5.1: HS-level MXR opens execute-only G-stage pages to loads.
        let r = g.translate_cached(pt.cache, hgatp_v, &mut pt.phys, gpa, a, ms & status::MXR != 0, mode.hlvx);
        let out = match r {
            Ok(leaf) => {
                refs += leaf.refs;
                writes += leaf.writes;
                Ok((leaf.pa, vs_shift, Some((gpa, leaf.page_shift))))
            }
            Err(WalkError::PageFault) => {
                self.trap_extra.tval2 = gpa >> 2;
                Err(Trap::new(guest_page_fault(a), va))
            }
            Err(WalkError::Mem(())) => Err(Trap::new(access_fault(a), va)),
        };
        self.count_walk2(refs, writes);
        out
    }

    fn count_walk2(&mut self, refs: u32, writes: u32) {
        let st = &mut self.stats;
        st.walks2 += 1;
        st.walk2_refs += refs as u64;
        st.walk2_max_refs = st.walk2_max_refs.max(refs);
        st.walk_ad_writes += writes as u64;
    }

    /// Translates the fetch of the instruction at `pc` (filling the TLB
    /// when the page may be cached).
    pub(crate) fn translate_fetch(&mut self, pc: u64) -> Result<u64, Trap> {
        self.translate(pc, 2, Access::Fetch)
    }

    /// Fetches the instruction at `pc`: 32 bits, or 16 if the low half is a
    /// compressed instruction.
    #[inline(always)]
    pub(crate) fn fetch(&mut self, bus: &mut dyn Bus) -> Result<u32, Trap> {
        let pc = self.pc;
        if pc & 0xfff <= 0xffc {
            if let Some(off) = self.tlb.lookup(Access::Fetch, pc, self.ctx_fetch) {
                return Ok(self.ram.load_off(off, 4) as u32);
            }
        }
        self.fetch_slow(bus)
    }

    fn fetch_half(&mut self, va: u64) -> Result<u32, Trap> {
        if let Some(off) = self.tlb.lookup(Access::Fetch, va, self.ctx_fetch) {
            return Ok(self.ram.load_off(off, 2) as u32);
        }
        self.tlb.note_miss(Access::Fetch, va, self.ctx_fetch);
        let pa = self.translate(va, 2, Access::Fetch)?;
        // Instructions execute from RAM only (QEMU's virt board has a ROM
        // at 0x1000 that Strata does not need: harts start at the firmware).
        self.ram.load(pa, 2).map(|v| v as u32).map_err(|_| Trap::new(cause::INSN_ACCESS, va))
    }

    #[cold]
    fn fetch_slow(&mut self, _bus: &mut dyn Bus) -> Result<u32, Trap> {
        let pc = self.pc;
        let lo = self.fetch_half(pc)?;
        if lo & 3 != 3 {
            return Ok(lo);
        }
        // A 32-bit instruction whose upper half may lie on the next page:
        // a fault there reports that half's address (§3.1.16 mtval).
        let hi = self.fetch_half(pc.wrapping_add(2))?;
        Ok(lo | hi << 16)
    }

    #[inline(always)]
    pub(crate) fn load(&mut self, bus: &mut dyn Bus, va: u64, size: u8) -> Result<u64, Trap> {
        if (va & 0xfff) + size as u64 <= 0x1000 {
            if let Some(off) = self.tlb.lookup(Access::Load, va, self.ctx_data) {
                self.tlb.count_hit(self.ctx_data);
                return Ok(self.ram.load_off(off, size));
            }
        }
        let mode = self.data_mode();
        self.load_slow(bus, va, size, mode, true)
    }

    /// A load that missed the TLB (or is made in a mode the TLB does not
    /// cache, `cache` = false: HLV and HLVX).
    #[cold]
    fn load_slow(&mut self, bus: &mut dyn Bus, va: u64, size: u8, mode: AccessMode, cache: bool) -> Result<u64, Trap> {
        if (va & 0xfff) + size as u64 > 0x1000 {
            // Misaligned across a page: byte by byte, so each page is
            // translated and checked on its own (misaligned accesses are
            // supported in hardware here, as §2.6 permits).
            let mut v = 0;
            for i in 0..size as u64 {
                v |= self.load_slow(bus, va.wrapping_add(i), 1, mode, cache)? << (8 * i);
            }
            return Ok(v);
        }
        if cache {
            self.tlb.note_miss(Access::Load, va, self.ctx_data);
        }
        let pa = self.translate_as(va, size as u64, Access::Load, mode, cache)?;
        if let Ok(v) = self.ram.load(pa, size) {
            return Ok(v);
        }
        self.event = true;
        bus.mmio_read(pa, size).ok_or(Trap::new(cause::LOAD_ACCESS, va))
    }

    #[inline(always)]
    pub(crate) fn store(&mut self, bus: &mut dyn Bus, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        if (va & 0xfff) + size as u64 <= 0x1000 {
            if let Some(off) = self.tlb.lookup(Access::Store, va, self.ctx_data) {
                self.tlb.count_hit(self.ctx_data);
                if self.ram.store_off(off, size, v) {
                    // The page held decoded code: look at it afresh.
                    self.event = true;
                }
                return Ok(());
            }
        }
        let mode = self.data_mode();
        self.store_slow(bus, va, size, v, mode, true)
    }

    #[cold]
    fn store_slow(
        &mut self,
        bus: &mut dyn Bus,
        va: u64,
        size: u8,
        v: u64,
        mode: AccessMode,
        cache: bool,
    ) -> Result<(), Trap> {
        if (va & 0xfff) + size as u64 > 0x1000 {
            // Check both pages before writing either byte, so a fault on the
            // second page leaves memory unchanged.
            let second = (va | 0xfff).wrapping_add(1);
            self.translate_as(va, second.wrapping_sub(va), Access::Store, mode, cache)?;
            self.translate_as(second, va.wrapping_add(size as u64).wrapping_sub(second), Access::Store, mode, cache)?;
            for i in 0..size as u64 {
                self.store_slow(bus, va.wrapping_add(i), 1, v >> (8 * i), mode, cache)?;
            }
            return Ok(());
        }
        if cache {
            self.tlb.note_miss(Access::Store, va, self.ctx_data);
        }
        let pa = self.translate_as(va, size as u64, Access::Store, mode, cache)?;
        if let Ok(hit_code) = self.ram.store_checked(pa, size, v) {
            self.event |= hit_code;
            return Ok(());
        }
        self.event = true;
        if bus.mmio_write(pa, size, v) {
            Ok(())
        } else {
            Err(Trap::new(cause::STORE_ACCESS, va))
        }
    }

    /// HLV.* and HLVX.* (§8.3.1): a load made as though V=1 at privilege
    /// `hstatus.SPVP`. Faults report a guest virtual address (GVA=1).
    pub(crate) fn hlv(&mut self, bus: &mut dyn Bus, va: u64, size: u8, hlvx: bool) -> Result<u64, Trap> {
        let mode = self.hlv_mode(hlvx);
        self.load_slow(bus, va, size, mode, false).inspect_err(|_| self.trap_extra.gva = true)
    }

    /// HSV.* (§8.3.1).
    pub(crate) fn hsv(&mut self, bus: &mut dyn Bus, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        let mode = self.hlv_mode(false);
        self.store_slow(bus, va, size, v, mode, false).inspect_err(|_| self.trap_extra.gva = true)
    }

    /// Translates the address of an LR, SC or AMO. These must be naturally
    /// aligned (§8.2, §8.4); a misaligned one raises an address-misaligned
    /// exception (load for LR, store/AMO otherwise).
    pub(crate) fn atomic_pa(&mut self, va: u64, size: u8, a: Access) -> Result<u64, Trap> {
        let mode = self.data_mode();
        if va & (size as u64 - 1) != 0 {
            let c = if a == Access::Load { cause::LOAD_MISALIGNED } else { cause::STORE_MISALIGNED };
            self.trap_extra = TrapExtra { gva: mode.virt, ..TrapExtra::default() };
            return Err(Trap::new(c, va));
        }
        let pa = self.translate_as(va, size as u64, a, mode, true)?;
        // AMOs need read permission too; W without R is a reserved PTE
        // encoding, so a writable page is readable. PMP is checked apart.
        if a == Access::Store && !self.pmp.check(pa, size as u64, Access::Load, mode.prv) {
            self.trap_extra = TrapExtra { gva: mode.virt, ..TrapExtra::default() };
            return Err(Trap::new(cause::STORE_ACCESS, va));
        }
        Ok(pa)
    }

    /// Reads physical memory for an atomic: RAM, or a device.
    pub(crate) fn phys_load(&mut self, bus: &mut dyn Bus, pa: u64, va: u64, size: u8, fault: u64) -> Result<u64, Trap> {
        match self.ram.load(pa, size) {
            Ok(v) => Ok(v),
            Err(_) => {
                self.event = true;
                bus.mmio_read(pa, size).ok_or(Trap::new(fault, va))
            }
        }
    }

    pub(crate) fn phys_store(&mut self, bus: &mut dyn Bus, pa: u64, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        if let Ok(hit_code) = self.ram.store_checked(pa, size, v) {
            self.event |= hit_code;
            return Ok(());
        }
        self.event = true;
        if bus.mmio_write(pa, size, v) {
            Ok(())
        } else {
            Err(Trap::new(cause::STORE_ACCESS, va))
        }
    }

    /// An AMO at `pa`: in RAM, one host atomic read-modify-write; on a
    /// device, a read then a write (atomic only with respect to this hart:
    /// device registers take no AMOs from Linux). Returns the old value.
    pub(crate) fn phys_amo(
        &mut self,
        bus: &mut dyn Bus,
        pa: u64,
        va: u64,
        size: u8,
        f: &dyn Fn(u64) -> u64,
    ) -> Result<u64, Trap> {
        if let Ok((old, hit_code)) = self.ram.atomic_rmw(pa, size, f) {
            self.event |= hit_code;
            return Ok(old);
        }
        let old = self.phys_load(bus, pa, va, size, cause::STORE_ACCESS)?;
        self.phys_store(bus, pa, va, size, f(old))?;
        Ok(old)
    }

    /// A store-conditional's write at `pa`: `new` if the bytes still hold
    /// `old`, as one host compare-and-exchange in RAM. Returns whether it
    /// stored.
    pub(crate) fn phys_cmpxchg(
        &mut self,
        bus: &mut dyn Bus,
        pa: u64,
        va: u64,
        size: u8,
        old: u64,
        new: u64,
    ) -> Result<bool, Trap> {
        if let Ok((done, hit_code)) = self.ram.compare_exchange(pa, size, old, new) {
            self.event |= hit_code;
            return Ok(done);
        }
        let cur = self.phys_load(bus, pa, va, size, cause::STORE_ACCESS)?;
        if cur != old {
            return Ok(false);
        }
        self.phys_store(bus, pa, va, size, new)?;
        Ok(true)
    }

    /// The physical address of the cache block holding `va`, for a CBO
    /// (Unpriv. "Cache-Block Operations", CMO 1.0: the effective address is
    /// `rs1`, any alignment; the block is the naturally aligned
    /// [`CACHE_BLOCK_SIZE`] bytes around it). CBO.ZERO (`zero`) needs store
    /// permission. The management operations are permitted where a load
    /// or a store would be; if neither is, they raise a store page fault
    /// (store guest-page fault) when translation permits no access and a
    /// store access fault otherwise. Faults report `va` itself in `xtval`
    /// (the faulting effective address, Priv. §3.1.16); translation is per
    /// page and a block never crosses one, so `va` and the block translate
    /// alike. PMP is checked over the whole block.
    pub(crate) fn cbo_block(&mut self, va: u64, zero: bool) -> Result<u64, Trap> {
        let mode = self.data_mode();
        let block = |pa: u64| pa & !(CACHE_BLOCK_SIZE - 1);
        let kinds: &[Access] = if zero { &[Access::Store] } else { &[Access::Load, Access::Store] };
        let mut translated = false;
        let mut last = None;
        for &a in kinds {
            match self.translate_as(va, 1, a, mode, true) {
                Ok(pa) => {
                    translated = true;
                    if self.pmp.check(block(pa), CACHE_BLOCK_SIZE, a, mode.prv) {
                        return Ok(block(pa));
                    }
                }
                Err(t) => {
                    translated |= matches!(t.cause, cause::LOAD_ACCESS | cause::STORE_ACCESS);
                    last = Some(t);
                }
            }
        }
        match last {
            Some(t) if !translated => Err(t),
            _ => {
                self.trap_extra = TrapExtra { gva: mode.virt, ..TrapExtra::default() };
                Err(Trap::new(cause::STORE_ACCESS, va))
            }
        }
    }

    /// CBO.ZERO's stores: the block at physical `block` (aligned) becomes
    /// zeros, in aligned 8-byte host stores. Only RAM takes it: a block
    /// outside RAM (a device) raises a store access fault at `va` and is
    /// left unwritten (Strata's devices have no cacheable memory, and the
    /// Zicboz chapter leaves CBO.ZERO to non-cacheable regions to the
    /// platform's PMAs).
    pub(crate) fn cbo_zero(&mut self, block: u64, va: u64) -> Result<(), Trap> {
        if self.ram.offset_of(block, CACHE_BLOCK_SIZE).is_none() {
            self.trap_extra = TrapExtra { gva: self.data_mode().virt, ..TrapExtra::default() };
            return Err(Trap::new(cause::STORE_ACCESS, va));
        }
        for k in (0..CACHE_BLOCK_SIZE).step_by(8) {
            if let Ok(hit_code) = self.ram.store_checked(block + k, 8, 0) {
                self.event |= hit_code;
            }
        }
        Ok(())
    }

    /// The walker's options for one stage of this hart's translation:
    /// Svnapot with the extension; Svpbmt where `menvcfg.PBMTE` enables it
    /// (S-mode and G-stage) and, for the VS-stage (`vs`), `henvcfg.PBMTE`
    /// too (Priv. "Svpbmt"; §3.1.18, §8.2.5). PBMTE is writable only with
    /// Svpbmt.
    pub(crate) fn walk_options(&self, vs: bool) -> walk::Options {
        let c = &self.csr;
        let pbmte = if vs { c.menvcfg & c.henvcfg } else { c.menvcfg } & envcfg::PBMTE != 0;
        walk::Options { svnapot: self.exts.has(Ext::Svnapot), pbmt: pbmte }
    }

    pub(crate) fn set_reservation(&mut self, pa: Option<u64>) {
        self.reservation = pa;
    }

    pub(crate) fn reservation(&self) -> Option<u64> {
        self.reservation
    }
}

/// Whether a guest `FENCE` (encoding `raw`; Unpriv. §2.7) orders earlier
/// stores before later loads: pred has W, succ has R, and it is not
/// FENCE.TSO. Only such a fence needs a full host fence on x86-64, whose
/// other orderings TSO keeps anyway.
#[inline]
pub(crate) fn fence_needs_full(raw: u32) -> bool {
    use strata_arch::isa::fence::{get, FM, FM_TSO, PRED, R, SUCC, W};
    get(raw, FM) != FM_TSO && get(raw, PRED) & W != 0 && get(raw, SUCC) & R != 0
}

/// The host fence a guest `FENCE` needs (the RVWMO rules of Unpriv. §17):
/// harts access RAM with relaxed host atomics, so a fence that orders
/// stores before loads ([`fence_needs_full`]) is a full host fence, and any
/// other an acquire-release one, which on x86-64 only stops the compiler
/// from moving accesses across it. Device accesses (the I/O bits) go
/// through the bus's lock, which orders them.
#[inline]
pub(crate) fn guest_fence(raw: u32) {
    use std::sync::atomic::{fence as host_fence, Ordering};
    if fence_needs_full(raw) {
        host_fence(Ordering::SeqCst);
    } else {
        host_fence(Ordering::AcqRel);
    }
}

//! Shadow paging for one VM: shadow tables that the hart walks in one
//! dimension, kept in step with the guest's own tables and the VM's
//! guest-physical map.
//!
//! The protocol is the one `crates/models/src/shadow.rs` states and checks
//! exhaustively (docs/models.md); this module is its implementation, and
//! the table below follows the model's row by row:
//!
//! | event | how it reaches the hypervisor | what [`ShadowVm`] does |
//! |---|---|---|
//! | the guest writes `satp` | virtual-instruction trap (`hstatus.VTVM`, Priv. §8.2.1 hstatus) | keeps the value as the vCPU's *virtual* `satp` (WARL: Bare, Sv39, Sv48; the ASID kept, ASIDLEN 16 as on the hart) and points the real `vsatp` at the shadow root for it, with the guest's ASID ([`ShadowVm::root_for`]) |
//! | the guest reads `satp` | the same trap | the virtual value |
//! | TLB miss, shadow leaf present | – | the hart walks the shadow table (one dimension: `hgatp` is Bare) |
//! | TLB miss, no shadow leaf | a page fault (12, 13, 15), not delegated (`hedeleg` without them) | [`ShadowVm::walk_guest`] reads the guest's tables through the VM's G-stage map (bounds-checked: a table outside the VM's RAM is an access fault for the guest); if the guest's tables deny the access the fault is **injected** with the same `scause`/`stval`; otherwise the leaf's gpa is composed with the G-stage map and the shadow leaf **installed**, if the VM's shadow generation is unchanged since the read ([`ShadowVm::install`]; the model's `Install`) |
//! | accessed/dirty | – | A is set in the guest's PTE when a shadow leaf is made from it; a leaf whose guest PTE has D=0 is installed read-only, and the first store faults, sets D and upgrades it |
//! | the guest writes one of its page-table pages | a store page fault: every page met as a table in a walk is write-protected (its writable shadow leaves dropped through the reverse map, the harts' TLB entries for it invalidated; later leaves to it are read-only) | the store (or AMO) is emulated on guest memory and the shadow entries the written PTE fed, at every place the table page was seen, are dropped ([`ShadowVm::pte_written`]); the generation is bumped; TLBs are untouched — the guest must fence, as on hardware |
//! | the guest's `SFENCE.VMA` | virtual-instruction trap (`hstatus.VTVM`) | the vCPU's hart drops its TLB entries for the address and ASID (`HFENCE.VVMA`; shadow leaves are never global, so a fence by ASID reaches every entry the guest's ASID made) |
//! | a device (virtio DMA) writes one of the guest's page-table pages | the VM's [`DmaMap`] logs writes to the pages this module watches (every page met as a table) | before any vCPU of the VM runs again, on every intercepted fence and every shadow fault, the log is drained ([`ShadowVm::dma_written`]): every shadow leaf made through a written table page, at every place it was seen, is dropped and the generation bumped — as for an emulated write, but for the whole page, since which entries changed is not known; TLBs are untouched (the guest fences, as on hardware) |
//! | a machine page leaves the VM | the hypervisor's own operation (`pages.rs`) | every shadow leaf that maps it goes through the reverse map ([`ShadowVm::page_gone`]), the generation is bumped, then the harts' TLBs are invalidated by physical address as in nested mode |
//!
//! **Invariants** (the model's): a shadow leaf is always what the guest's
//! current entry and the current G-stage give together ("shadow exact");
//! every shadow leaf maps a machine page the VM's G-stage maps, so no
//! shadow leaf ever reaches a page outside the VM ([`ShadowVm::check`]
//! verifies this through the ownership bookkeeping).
//!
//! **Layout.** One shadow root per guest address space the VM's vCPUs have
//! used (keyed by the guest's `satp` without ASID: one guest table tree
//! used under two ASIDs shares its shadow root, and the real `vsatp`
//! carries the ASID, so the hart's TLB keeps the two apart; a Bare guest `satp` gets
//! a root that maps each gpa of the VM's RAM at the same virtual address,
//! so a guest with translation off is confined too). Shadow tables have the
//! guest's geometry (Sv39 or Sv48; Sv39 for Bare) and only 4 KiB leaves (a
//! guest superpage is shadowed page by page). Shadow table pages are
//! hypervisor-owned machine pages; when there are more than
//! [`MAX_TABLE_PAGES`] or [`MAX_ROOTS`], everything is dropped and rebuilt
//! on demand (a *resync*). Two maps keep the invariants cheap:
//! `tables` — guest table page (gpa) → where it was seen (root, level,
//! first virtual address it covers); `rmap` — machine page → the shadow
//! leaves mapping it.
//!
//! **Generation.** `strata run` serves every trap on one thread, so a
//! shadow fault's read and install cannot be overtaken today; the code
//! still reads the generation before the walk and installs only if it is
//! unchanged, as the model requires, so a parallel run loop keeps it.
//!
//! **ASIDs.** The guest's ASID (16 bits, as the hart's `satp` has) goes
//! into the real `vsatp`. Every shadow VM runs under VMID 0, so a guest's
//! fence by ASID also drops other shadow VMs' entries of that ASID on the
//! hart: collateral, never too little.
//!
//! Not done (documented in docs/hypervisor.md): Sv57, guest superpages as
//! shadow superpages (each of the 512 machine pages under one would have
//! to be found by the reverse map and by the harts' invalidation by
//! physical page), LR/SC on a page-table page (SC is emulated as
//! succeeding). Svpbmt and Svnapot bits in guest PTEs are a page fault, as
//! on the hart, which offers neither.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::Arc;
use strata_arch::cause;
use strata_arch::csr::satp;
use strata_arch::pte::{self, Scheme, PAGE_SIZE};

use strata_ownership::{HypMemory, MachineMemory, MachinePage, Owner, VmId};

use crate::vm::DmaMap;

/// Shadow table pages one VM may hold before a resync.
pub const MAX_TABLE_PAGES: usize = 4096;
/// Shadow roots (guest address spaces) one VM may hold before a resync.
pub const MAX_ROOTS: usize = 64;
/// Emulated writes to a guest table page, with no walk through it in
/// between, after which it is taken for a page the guest reuses as data:
/// it is unprotected, and the shadow leaves made through it dropped.
pub const UNPROTECT_AFTER: u32 = 32;

/// What an access is, for the guest's permission check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Fetch,
    Load,
    Store,
}

impl Access {
    /// The access of a page-fault cause (12, 13, 15).
    pub fn of_page_fault(c: u64) -> Option<Access> {
        match c {
            cause::INSN_PAGE => Some(Access::Fetch),
            cause::LOAD_PAGE => Some(Access::Load),
            cause::STORE_PAGE => Some(Access::Store),
            _ => None,
        }
    }

    pub fn page_fault(self) -> u64 {
        match self {
            Access::Fetch => cause::INSN_PAGE,
            Access::Load => cause::LOAD_PAGE,
            Access::Store => cause::STORE_PAGE,
        }
    }

    pub fn access_fault(self) -> u64 {
        match self {
            Access::Fetch => cause::INSN_ACCESS,
            Access::Load => cause::LOAD_ACCESS,
            Access::Store => cause::STORE_ACCESS,
        }
    }
}

/// Where the guest's own translation of an address ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestWalk {
    /// The guest's tables allow the access: the 4 KiB guest-physical page
    /// of the address, the leaf PTE and where it is (its gpa; `None` for a
    /// Bare `satp`).
    Mapped { gpa_page: u64, pte: u64, pte_gpa: Option<u64> },
    /// The guest's own fault, for the guest: its `scause`.
    Fault(u64),
}

/// The mode of the guest's part of the privilege state that the guest's
/// permission check reads (Priv. §4.3.1): VS or VU, `vsstatus.SUM`, `.MXR`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    pub user: bool,
    pub sum: bool,
    pub mxr: bool,
}

/// Shadow-paging counters of one VM (`--stats`).
#[derive(Clone, Debug, Default)]
pub struct ShadowStats {
    /// Shadow leaves installed from a page fault the guest's tables allow.
    pub faults: u64,
    /// Guest page-table writes emulated.
    pub pt_writes: u64,
    /// Shadow tables dropped wholesale (over [`MAX_ROOTS`] or [`MAX_TABLE_PAGES`]).
    pub resyncs: u64,
    /// `SFENCE.VMA`s intercepted.
    pub fences: u64,
    /// Page faults given to the guest because its own tables deny them.
    pub injected: u64,
    /// `satp` reads and writes emulated.
    pub satp: u64,
    /// Installs retried because the generation moved.
    pub retries: u64,
    /// Guest table pages unprotected (written [`UNPROTECT_AFTER`] times
    /// with no walk through them between).
    pub unprotected: u64,
    /// Guest table pages found written by a device (virtio DMA) when the
    /// log of device writes was drained.
    pub dma_tables: u64,
    /// Shadow leaves dropped because a device wrote the table they were
    /// made through.
    pub dma_leaves: u64,
}

/// What [`ShadowVm::install`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    Installed,
    /// The generation moved since the read (the model's retry): nothing
    /// installed, the guest retries the access.
    Retry,
    /// No room for shadow tables, or machine memory failed: resync.
    NoRoom,
}

/// A shadow root: one guest address space.
#[derive(Clone, Copy, Debug)]
struct Root {
    page: MachinePage,
    scheme: Scheme,
}

/// A place a guest table page was seen: (root key, level, first va covered).
type Seen = (u64, u32, u64);

/// The shadow tables of one VM (see the module docs).
#[derive(Debug)]
pub struct ShadowVm {
    id: VmId,
    /// Per vCPU (by id in the VM): the guest's virtual `satp`.
    satp: Vec<u64>,
    roots: BTreeMap<u64, Root>,
    /// Every shadow table page (roots included), to give back.
    pages: Vec<MachinePage>,
    /// Guest table page (gpa) → where it was seen.
    tables: HashMap<u64, BTreeSet<Seen>>,
    /// Guest table page (gpa) → writes emulated since a leaf was last
    /// installed from a walk through it.
    writes: HashMap<u64, u32>,
    /// The table pages the last guest walk went through.
    last_walk: Vec<u64>,
    /// Machine page → the shadow leaves (root key, va) that map it.
    rmap: HashMap<u64, BTreeSet<(u64, u64)>>,
    generation: u64,
    /// The VM's DMA map (an ordinary VM's; a protected VM has no device
    /// DMA): the table pages are watched there.
    dma: Option<Arc<DmaMap>>,
    pub(crate) stats: ShadowStats,
}

/// The shadow `vsatp` for a root.
fn atp(root: Root) -> u64 {
    root.scheme.atp_mode() << satp::MODE_SHIFT | root.page.pfn()
}

/// The guest `satp` without its ASID: the key of its shadow root.
fn key(guest_satp: u64) -> u64 {
    guest_satp & !satp::ASID_MASK
}

/// `va` without its sign extension: the form shadow leaves are recorded in
/// (the reverse map, the places table pages were seen).
fn trunc(scheme: Scheme, va: u64) -> u64 {
    va & ((1u64 << scheme.va_bits()) - 1)
}

fn read_u64(mem: &dyn MachineMemory, pa: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(pa, &mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

fn write_u64(mem: &mut dyn MachineMemory, pa: u64, v: u64) -> bool {
    mem.write(pa, &v.to_le_bytes()).is_ok()
}

/// The machine address of `gpa` in VM `id`, through its G-stage map.
pub(crate) fn machine_addr(hm: &HypMemory, mem: &dyn MachineMemory, id: VmId, gpa: u64) -> Option<u64> {
    let leaf = hm.translate(mem, id, gpa & !(PAGE_SIZE - 1)).ok()??;
    Some(leaf.pa + (gpa & (PAGE_SIZE - 1)))
}

impl ShadowVm {
    pub fn new(id: VmId, vcpus: usize, dma: Option<Arc<DmaMap>>) -> Self {
        ShadowVm {
            id,
            satp: vec![0; vcpus],
            roots: BTreeMap::new(),
            pages: Vec::new(),
            tables: HashMap::new(),
            writes: HashMap::new(),
            last_walk: Vec::new(),
            rmap: HashMap::new(),
            generation: 0,
            dma,
            stats: ShadowStats::default(),
        }
    }

    pub fn stats(&self) -> &ShadowStats {
        &self.stats
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// vCPU `vcpu`'s virtual `satp`.
    pub fn guest_satp(&self, vcpu: usize) -> u64 {
        self.satp.get(vcpu).copied().unwrap_or(0)
    }

    /// Writes vCPU `vcpu`'s virtual `satp` with `satp`'s WARL rules (Priv.
    /// §4.1.11): a mode other than Bare, Sv39 or Sv48 leaves the register
    /// unchanged; all 16 ASID bits are kept (ASIDLEN 16, as the hart's);
    /// Bare is all zero.
    pub fn set_guest_satp(&mut self, vcpu: usize, value: u64) {
        let mode = value >> satp::MODE_SHIFT;
        if !matches!(mode, satp::BARE | satp::SV39 | satp::SV48) {
            return;
        }
        let v = if mode == satp::BARE { 0 } else { value };
        if let Some(s) = self.satp.get_mut(vcpu) {
            *s = v;
        }
    }

    /// Shadow tables in use now, in pages.
    pub fn table_pages(&self) -> usize {
        self.pages.len()
    }

    fn alloc(&mut self, hm: &mut HypMemory, mem: &mut dyn MachineMemory) -> Option<MachinePage> {
        let page = hm.alloc_page(mem, Owner::Hypervisor).ok()?;
        self.pages.push(page);
        Some(page)
    }

    /// The real `vsatp` for guest `satp` value `guest`: its shadow root,
    /// made if new, with the guest's ASID. `None` if machine memory is
    /// exhausted even after a resync.
    pub fn root_for(&mut self, hm: &mut HypMemory, mem: &mut dyn MachineMemory, guest: u64) -> Option<u64> {
        let k = key(guest);
        let asid = guest & satp::ASID_MASK;
        if let Some(r) = self.roots.get(&k) {
            return Some(atp(*r) | asid);
        }
        if self.roots.len() >= MAX_ROOTS || self.pages.len() >= MAX_TABLE_PAGES {
            self.resync(hm, mem);
        }
        let scheme = match guest >> satp::MODE_SHIFT {
            satp::SV48 => Scheme::SV48,
            _ => Scheme::SV39,
        };
        let page = match self.alloc(hm, mem) {
            Some(p) => p,
            None => {
                self.resync(hm, mem);
                self.alloc(hm, mem)?
            }
        };
        let r = Root { page, scheme };
        self.roots.insert(k, r);
        Some(atp(r) | asid)
    }

    /// Drops every shadow table and map (a resync): the pages go back to
    /// the free pool. The caller must then flush the harts' TLB entries of
    /// shadow VMs and give every loaded vCPU of the VM its root anew.
    pub fn resync(&mut self, hm: &mut HypMemory, mem: &mut dyn MachineMemory) {
        self.stats.resyncs += 1;
        self.generation += 1;
        self.roots.clear();
        self.tables.clear();
        self.writes.clear();
        self.rmap.clear();
        if let Some(d) = &self.dma {
            d.unwatch_all();
        }
        for page in self.pages.drain(..) {
            // Zeroed before its next owner maps it (the tracker's rule).
            let _ = hm.donate(mem, Owner::Hypervisor, page, Owner::Free);
        }
    }

    /// Walks the guest's own tables for `va` under vCPU `vcpu`'s virtual
    /// `satp` (Priv. §4.3.2), reading them through the VM's G-stage map.
    /// Sets A (and D for a store) in the guest's leaf when the access is
    /// allowed, as the hardware would when it used the entry. Every table
    /// page read is recorded (and so write-protected from now on).
    #[allow(clippy::too_many_arguments)]
    pub fn walk_guest(
        &mut self,
        hm: &HypMemory,
        mem: &mut dyn MachineMemory,
        vcpu: usize,
        va: u64,
        access: Access,
        mode: Mode,
        newly_protected: &mut Vec<u64>,
    ) -> GuestWalk {
        let s = self.guest_satp(vcpu);
        let k = key(s);
        self.last_walk.clear();
        if s >> satp::MODE_SHIFT == satp::BARE {
            let gpa_page = va & !(PAGE_SIZE - 1);
            let all = pte::V | pte::R | pte::W | pte::X | pte::A | pte::D;
            return GuestWalk::Mapped { gpa_page, pte: all, pte_gpa: None };
        }
        let scheme = if s >> satp::MODE_SHIFT == satp::SV48 { Scheme::SV48 } else { Scheme::SV39 };
        let pf = GuestWalk::Fault(access.page_fault());
        if !scheme.va_ok(va) {
            return pf;
        }
        let mut table = (s & satp::PPN_MASK) << pte::PAGE_SHIFT;
        for level in (0..scheme.levels).rev() {
            let shift = Scheme::page_shift(level);
            let covered = 1u64 << (shift + pte::LEVEL_BITS);
            let base = trunc(scheme, va & !(covered - 1));
            let pte_gpa = table + scheme.index(va, level) * 8;
            let Some(pa) = machine_addr(hm, mem, self.id, pte_gpa) else {
                return GuestWalk::Fault(access.access_fault());
            };
            let Some(mut e) = read_u64(mem, pa) else { return GuestWalk::Fault(access.access_fault()) };
            let seen = self.tables.entry(table).or_default();
            if seen.is_empty() {
                newly_protected.push(table);
                if let Some(d) = &self.dma {
                    d.watch(table, true);
                }
            }
            seen.insert((k, level, base));
            self.last_walk.push(table);
            if e & pte::V == 0 || (e & pte::R == 0 && e & pte::W != 0) || e & pte::HIGH_BITS != 0 {
                return pf;
            }
            if !pte::is_leaf(e) {
                if e & (pte::A | pte::D | pte::U) != 0 {
                    return pf;
                }
                table = pte::ppn(e) << pte::PAGE_SHIFT;
                continue;
            }
            // A leaf: permissions (§4.3.1), superpage alignment (§4.3.2 step 6).
            let allowed = match access {
                Access::Fetch => e & pte::X != 0,
                Access::Load => e & pte::R != 0 || (mode.mxr && e & pte::X != 0),
                Access::Store => e & pte::W != 0,
            };
            let user_ok =
                if mode.user { e & pte::U != 0 } else { e & pte::U == 0 || (mode.sum && access != Access::Fetch) };
            let ppn = pte::ppn(e);
            let sub = (1u64 << (shift - pte::PAGE_SHIFT)) - 1;
            if !allowed || !user_ok || ppn & sub != 0 {
                return pf;
            }
            let want = pte::A | if access == Access::Store { pte::D } else { 0 };
            if e & want != want {
                e |= want;
                if !write_u64(mem, pa, e) {
                    return GuestWalk::Fault(access.access_fault());
                }
            }
            let gpa_page = ((ppn << pte::PAGE_SHIFT) | (va & ((1 << shift) - 1))) & !(PAGE_SIZE - 1);
            return GuestWalk::Mapped { gpa_page, pte: e, pte_gpa: Some(pte_gpa) };
        }
        pf
    }

    /// Whether guest-physical page `gpa_page` is one of the guest's table
    /// pages (so write-protected).
    pub fn is_table(&self, gpa_page: u64) -> bool {
        self.tables.contains_key(&(gpa_page & !(PAGE_SIZE - 1)))
    }

    /// Installs the shadow leaf for `va` in vCPU `vcpu`'s current root:
    /// the guest leaf `guest_pte` composed with machine page `machine`
    /// (which the VM's G-stage maps at the leaf's gpa), writable only if
    /// the guest's entry is writable *and* dirty and the page is not one of
    /// the guest's tables. Installs nothing, and returns false, if the
    /// generation is no longer `read_at` (the model's `Install`: retry).
    #[allow(clippy::too_many_arguments)]
    pub fn install(
        &mut self,
        hm: &mut HypMemory,
        mem: &mut dyn MachineMemory,
        vcpu: usize,
        va: u64,
        guest_pte: u64,
        gpa_page: u64,
        machine: MachinePage,
        read_at: u64,
    ) -> Install {
        if read_at != self.generation {
            self.stats.retries += 1;
            return Install::Retry;
        }
        let k = key(self.guest_satp(vcpu));
        let root = match self.roots.get(&k) {
            Some(r) => *r,
            None => return Install::Retry,
        };
        let va = trunc(root.scheme, va) & !(PAGE_SIZE - 1);
        let mut flags = pte::V | pte::A | (guest_pte & (pte::R | pte::X | pte::U));
        if guest_pte & pte::W != 0 && guest_pte & pte::D != 0 && !self.is_table(gpa_page) {
            flags |= pte::W | pte::D;
        }
        let mut table = root.page.addr();
        for level in (1..root.scheme.levels).rev() {
            let slot = table + root.scheme.index(va, level) * 8;
            let Some(e) = read_u64(mem, slot) else { return Install::NoRoom };
            table = if e & pte::V != 0 {
                pte::ppn(e) << pte::PAGE_SHIFT
            } else {
                if self.pages.len() >= MAX_TABLE_PAGES {
                    return Install::NoRoom;
                }
                let Some(next) = self.alloc(hm, mem) else { return Install::NoRoom };
                if !write_u64(mem, slot, (next.pfn() << pte::PPN_SHIFT) | pte::V) {
                    return Install::NoRoom;
                }
                next.addr()
            };
        }
        let slot = table + root.scheme.index(va, 0) * 8;
        let Some(old) = read_u64(mem, slot) else { return Install::NoRoom };
        if old & pte::V != 0 {
            self.unrmap(pte::ppn(old) << pte::PAGE_SHIFT, k, va);
        }
        if !write_u64(mem, slot, (machine.pfn() << pte::PPN_SHIFT) | flags) {
            return Install::NoRoom;
        }
        self.rmap.entry(machine.addr()).or_default().insert((k, va));
        self.stats.faults += 1;
        // The tables this leaf was made through are in use as tables.
        for t in std::mem::take(&mut self.last_walk) {
            self.writes.remove(&t);
        }
        Install::Installed
    }

    fn unrmap(&mut self, page: u64, k: u64, va: u64) {
        if let Some(s) = self.rmap.get_mut(&page) {
            s.remove(&(k, va));
            if s.is_empty() {
                self.rmap.remove(&page);
            }
        }
    }

    /// Clears the shadow leaf for `va` in root `k`, if any.
    fn clear_leaf(&mut self, mem: &mut dyn MachineMemory, k: u64, va: u64) {
        let Some(root) = self.roots.get(&k).copied() else { return };
        let mut table = root.page.addr();
        for level in (0..root.scheme.levels).rev() {
            let slot = table + root.scheme.index(va, level) * 8;
            let Some(e) = read_u64(mem, slot) else { return };
            if e & pte::V == 0 {
                return;
            }
            if level == 0 {
                let _ = write_u64(mem, slot, 0);
                self.unrmap(pte::ppn(e) << pte::PAGE_SHIFT, k, va);
                return;
            }
            table = pte::ppn(e) << pte::PAGE_SHIFT;
        }
    }

    /// Clears every shadow leaf of root `k` in [`lo`, `hi`); returns how many.
    fn clear_range(&mut self, mem: &mut dyn MachineMemory, k: u64, lo: u64, hi: u64) -> usize {
        let Some(root) = self.roots.get(&k).copied() else { return 0 };
        let mut leaves = Vec::new();
        collect_leaves(mem, root.scheme, root.page.addr(), root.scheme.levels - 1, 0, lo, hi, &mut leaves);
        for &(slot, va, e) in &leaves {
            let _ = write_u64(mem, slot, 0);
            self.unrmap(pte::ppn(e) << pte::PAGE_SHIFT, k, va);
        }
        leaves.len()
    }

    /// Drops every shadow leaf that maps machine page `page`, which has
    /// become a guest table page: later leaves to it are read-only. The
    /// guest's entries did not change, so the generation stays. Returns
    /// how many went (the caller invalidates the harts' TLB entries).
    pub fn write_protect(&mut self, mem: &mut dyn MachineMemory, page: MachinePage) -> usize {
        let leaves: Vec<(u64, u64)> =
            self.rmap.get(&page.addr()).map(|s| s.iter().copied().collect()).unwrap_or_default();
        for &(k, va) in &leaves {
            self.clear_leaf(mem, k, va);
        }
        self.rmap.remove(&page.addr());
        leaves.len()
    }

    /// A machine page left the VM: the model's `Leave` for the shadow
    /// tables — every leaf reaching it goes, through the reverse map, and
    /// the generation is bumped (the caller then invalidates the harts'
    /// TLBs by physical address). Returns how many leaves went.
    pub fn page_gone(&mut self, mem: &mut dyn MachineMemory, page: MachinePage) -> usize {
        let n = self.write_protect(mem, page);
        self.generation += 1;
        n
    }

    /// The guest wrote the PTE at `pte_gpa` (in one of its table pages):
    /// drops the shadow leaves that entry fed, at every place its table
    /// page was seen, and bumps the generation (the model's `Write`).
    pub fn pte_written(&mut self, mem: &mut dyn MachineMemory, pte_gpa: u64) {
        let table = pte_gpa & !(PAGE_SIZE - 1);
        let index = (pte_gpa & (PAGE_SIZE - 1)) / 8;
        let seen: Vec<Seen> = self.tables.get(&table).map(|s| s.iter().copied().collect()).unwrap_or_default();
        for (k, level, base) in seen {
            let size = 1u64 << Scheme::page_shift(level);
            let lo = base.wrapping_add(index * size);
            self.clear_range(mem, k, lo, lo.wrapping_add(size));
        }
        self.stats.pt_writes += 1;
        self.generation += 1;
        let n = self.writes.entry(table).or_insert(0);
        *n += 1;
        if *n >= UNPROTECT_AFTER {
            self.unprotect(mem, table);
        }
    }

    /// Stops treating guest page `table` as a table: every shadow leaf made
    /// through it, at every place it was seen, goes (so nothing it fed can
    /// go stale), and the next walk through it, if any, protects it again.
    /// The caller invalidates the harts' TLB entries of the page (its
    /// leaves may now be made writable).
    fn unprotect(&mut self, mem: &mut dyn MachineMemory, table: u64) {
        let seen = self.tables.remove(&table).unwrap_or_default();
        self.writes.remove(&table);
        if let Some(d) = &self.dma {
            d.watch(table, false);
        }
        self.clear_seen(mem, &seen);
        self.stats.unprotected += 1;
        self.generation += 1;
    }

    /// Clears every shadow leaf made through a table page seen at `seen`.
    /// Returns how many went.
    fn clear_seen(&mut self, mem: &mut dyn MachineMemory, seen: &BTreeSet<Seen>) -> usize {
        let mut n = 0;
        for &(k, level, base) in seen {
            let covered = 1u64 << (Scheme::page_shift(level) + pte::LEVEL_BITS);
            n += self.clear_range(mem, k, base, base.wrapping_add(covered));
        }
        n
    }

    /// Drains the VM's log of device writes to watched table pages (see
    /// [`DmaMap`]): every shadow leaf made through a page written is
    /// dropped, at every place the page was seen, and the generation is
    /// bumped (the model's `Write`, for every entry of the page at once).
    /// The page stays protected. Returns how many table pages were written.
    pub fn dma_written(&mut self, mem: &mut dyn MachineMemory) -> usize {
        let Some(d) = self.dma.clone() else { return 0 };
        let written = d.drain();
        let mut n = 0;
        for table in written {
            let Some(seen) = self.tables.get(&table).cloned() else { continue };
            n += 1;
            self.stats.dma_tables += 1;
            self.stats.dma_leaves += self.clear_seen(mem, &seen) as u64;
        }
        if n > 0 {
            self.generation += 1;
        }
        n
    }

    /// Checks the isolation invariant: every shadow leaf maps a machine
    /// page that the VM's G-stage maps, that the ownership tracker says
    /// the VM owns or borrows, and the reverse map lists it.
    pub fn check(&self, hm: &HypMemory, mem: &dyn MachineMemory) -> Result<(), String> {
        for (&k, root) in &self.roots {
            let mut leaves = Vec::new();
            collect_leaves(mem, root.scheme, root.page.addr(), root.scheme.levels - 1, 0, 0, u64::MAX, &mut leaves);
            for (_, va, e) in leaves {
                let pa = pte::ppn(e) << pte::PAGE_SHIFT;
                let page = MachinePage::containing(pa);
                let t = hm.tracker();
                let owner = t.owner(page).map_err(|e| format!("shadow leaf {va:#x} -> {pa:#x}: {e}"))?;
                if owner != Owner::Vm(self.id) && t.grant(page, Owner::Vm(self.id)).is_none() {
                    return Err(format!(
                        "shadow leaf {va:#x} reaches {pa:#x}, owned by {owner:?}, not by {:?}",
                        self.id
                    ));
                }
                if !t.who_maps(page).iter().any(|(vm, _)| *vm == self.id) {
                    return Err(format!(
                        "shadow leaf {va:#x} reaches {pa:#x}, which {:?}'s G-stage does not map",
                        self.id
                    ));
                }
                if !self.rmap.get(&pa).is_some_and(|s| s.contains(&(k, va))) {
                    return Err(format!("shadow leaf {va:#x} -> {pa:#x} is not in the reverse map"));
                }
            }
        }
        Ok(())
    }

    /// The shadow leaf for `va` under vCPU `vcpu`'s current root (tests).
    pub fn leaf(&self, mem: &dyn MachineMemory, vcpu: usize, va: u64) -> Option<u64> {
        let root = self.roots.get(&key(self.guest_satp(vcpu)))?;
        let mut table = root.page.addr();
        for level in (0..root.scheme.levels).rev() {
            let e = read_u64(mem, table + root.scheme.index(va, level) * 8)?;
            if e & pte::V == 0 {
                return None;
            }
            if level == 0 {
                return Some(e);
            }
            table = pte::ppn(e) << pte::PAGE_SHIFT;
        }
        None
    }

    /// Gives every shadow table page back (the VM is retired).
    pub fn release(&mut self, hm: &mut HypMemory, mem: &mut dyn MachineMemory) {
        self.resync(hm, mem);
        self.stats.resyncs -= 1;
    }
}

/// The shadow leaves under `table` (at `level`, covering from `base`) whose
/// virtual page lies in [`lo`, `hi`): (slot address, va, entry).
#[allow(clippy::too_many_arguments)]
fn collect_leaves(
    mem: &dyn MachineMemory,
    scheme: Scheme,
    table: u64,
    level: u32,
    base: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<(u64, u64, u64)>,
) {
    let size = 1u64 << Scheme::page_shift(level);
    let entries = 1u64 << scheme.index_bits(level);
    for i in 0..entries {
        let start = base.wrapping_add(i * size);
        let end = start.wrapping_add(size);
        // Skip entries outside [lo, hi) (end == 0 means the top of the space).
        if (end != 0 && end <= lo) || start >= hi {
            continue;
        }
        let Some(e) = read_u64(mem, table + i * 8) else { continue };
        if e & pte::V == 0 {
            continue;
        }
        if level == 0 {
            out.push((table + i * 8, start, e));
        } else {
            collect_leaves(mem, scheme, pte::ppn(e) << pte::PAGE_SHIFT, level - 1, start, lo, hi, out);
        }
    }
}

//! The page-ownership state machine: one [`Tracker`] for all machine memory.
//!
//! See the crate documentation for the state table. Every operation checks
//! all of its preconditions before it changes anything, so an `Err` leaves
//! the tracker exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::types::{HostAccess, MachinePage, Owner, Perms, VmId, PAGE_SIZE};

/// One mapping that an operation removed from the bookkeeping: VM `vm` no
/// longer has the right to reach `page` through guest-physical address `gpa`.
/// The caller must remove the G-stage entry (if it has not let
/// [`crate::HypMemory`] do it) and invalidate every cached translation of
/// `gpa` in `vm` — or, equivalently, every cached translation that reaches
/// `page` (TLB invalidation by physical address).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Unmap {
    pub vm: VmId,
    pub gpa: u64,
    pub page: MachinePage,
    pub perms: Perms,
}

/// What an operation did that the caller must act on.
#[must_use = "the listed mappings must be torn down and their translations invalidated"]
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Effects {
    /// Mappings removed from the bookkeeping, sorted. Each must be removed
    /// from its VM's G-stage table and invalidated in the TLBs.
    pub unmapped: Vec<Unmap>,
    /// Pages that entered the awaiting-zero state, sorted. Nobody can map,
    /// donate, share or host-access them until they are zeroed with
    /// [`Tracker::zero_page`] or [`Tracker::zero_pending`].
    pub awaiting_zero: Vec<MachinePage>,
}

impl Effects {
    fn finish(mut self) -> Effects {
        self.unmapped.sort();
        self.unmapped.dedup();
        self.awaiting_zero.sort();
        self.awaiting_zero.dedup();
        self
    }

    /// Appends another operation's effects.
    pub fn extend(&mut self, other: Effects) {
        self.unmapped.extend(other.unmapped);
        self.awaiting_zero.extend(other.awaiting_zero);
    }

    pub fn is_empty(&self) -> bool {
        self.unmapped.is_empty() && self.awaiting_zero.is_empty()
    }
}

/// Something that can zero a machine page: machine RAM, in the hypervisor.
pub trait PageZeroer {
    /// Sets every byte of `page` to zero, or says it could not (the page
    /// then stays awaiting zeroing).
    fn zero_page(&mut self, page: MachinePage) -> Result<(), ZeroFailed>;
}

/// A [`PageZeroer`] could not zero this page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ZeroFailed(pub MachinePage);

/// Why the tracker refused an operation. The operation changed nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OwnershipError {
    /// The page is outside the memory the tracker manages.
    PageOutOfRange(MachinePage),
    /// The tracker's range is empty or wraps around the address space.
    BadRange {
        base: MachinePage,
        pages: u64,
    },
    /// A guest-physical address that is not 4 KiB aligned.
    MisalignedGpa(u64),
    NoSuchVm(VmId),
    VmExists(VmId),
    /// `Free` was named where a party (the hypervisor or a VM) is needed.
    NotAParty,
    /// The two parties of a transfer or share are the same.
    SameParty(Owner),
    /// The requester does not own the page.
    NotOwner {
        page: MachinePage,
        requester: Owner,
        owner: Owner,
    },
    /// The page was reclaimed or freed and has not been zeroed yet.
    AwaitingZero(MachinePage),
    /// The page is lent to borrowers; unshare (or reclaim) it first.
    PageShared(MachinePage),
    /// A protected VM's page may be shared with the hypervisor only.
    ProtectedShare {
        page: MachinePage,
        vm: VmId,
        borrower: Owner,
    },
    /// A protected VM's page cannot be taken away from it while it lives.
    ProtectedPage {
        page: MachinePage,
        vm: VmId,
    },
    AlreadyShared {
        page: MachinePage,
        borrower: Owner,
    },
    NotShared {
        page: MachinePage,
        borrower: Owner,
    },
    /// Empty, or write without read (§4.3.1 Table 4.5 reserves R=0/W=1).
    InvalidPerms(Perms),
    /// The VM already maps something at this guest-physical address.
    GpaInUse {
        vm: VmId,
        gpa: u64,
        page: MachinePage,
    },
    NotMapped {
        vm: VmId,
        gpa: u64,
    },
    /// The VM neither owns nor borrows the page.
    NoRight {
        vm: VmId,
        page: MachinePage,
    },
    /// The VM borrows the page, but with fewer permissions than it asked for.
    PermsExceedGrant {
        vm: VmId,
        page: MachinePage,
        requested: Perms,
        granted: Perms,
    },
    /// The requester has no right to reclaim this page (it is free, or the
    /// requester neither donated it nor is the hypervisor taking it back from
    /// a VM), or there is nothing to take back (own page with no borrowers).
    NotReclaimable {
        page: MachinePage,
        requester: Owner,
        owner: Owner,
    },
    /// The zeroer failed; the page still awaits zeroing.
    ZeroFailed(MachinePage),
}

impl fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use OwnershipError::*;
        match *self {
            PageOutOfRange(p) => write!(f, "{p} is outside the managed memory"),
            BadRange { base, pages } => {
                write!(f, "bad managed range: {pages} pages from {base}")
            }
            MisalignedGpa(g) => write!(f, "guest-physical address {g:#x} is not 4 KiB aligned"),
            NoSuchVm(v) => write!(f, "{v} does not exist"),
            VmExists(v) => write!(f, "{v} already exists"),
            NotAParty => f.write_str("'free' is not a party that can own, lend or borrow"),
            SameParty(o) => write!(f, "{o} is on both sides of the operation"),
            NotOwner { page, requester, owner } => {
                write!(f, "{requester} does not own {page} (owner: {owner})")
            }
            AwaitingZero(p) => write!(f, "{p} is awaiting zeroing"),
            PageShared(p) => write!(f, "{p} is shared out; unshare it first"),
            ProtectedShare { page, vm, borrower } => write!(
                f,
                "{page} belongs to protected {vm}, which may share it with the hypervisor only, not with {borrower}"
            ),
            ProtectedPage { page, vm } => {
                write!(f, "{page} belongs to protected {vm} and cannot be taken from it")
            }
            AlreadyShared { page, borrower } => write!(f, "{page} is already shared with {borrower}"),
            NotShared { page, borrower } => write!(f, "{page} is not shared with {borrower}"),
            InvalidPerms(p) => write!(f, "permissions {p} cannot be mapped"),
            GpaInUse { vm, gpa, page } => {
                write!(f, "{vm} already maps guest-physical {gpa:#x} (to {page})")
            }
            NotMapped { vm, gpa } => write!(f, "{vm} maps nothing at guest-physical {gpa:#x}"),
            NoRight { vm, page } => write!(f, "{vm} neither owns nor borrows {page}"),
            PermsExceedGrant { vm, page, requested, granted } => {
                write!(f, "{vm} asked for {requested} on {page}, but it was shared with {granted} only")
            }
            NotReclaimable { page, requester, owner } => {
                write!(f, "{requester} cannot reclaim {page} (owner: {owner})")
            }
            ZeroFailed(p) => write!(f, "could not zero {p}; it still awaits zeroing"),
        }
    }
}

impl std::error::Error for OwnershipError {}

/// Why a host-side access to guest memory was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// The page is outside the managed memory.
    OutOfRange(MachinePage),
    NoSuchVm(VmId),
    /// The VM maps nothing at this guest-physical address.
    NotMapped {
        vm: VmId,
        gpa: u64,
    },
    /// The page belongs to a protected VM, which has not shared it with the
    /// hypervisor for this kind of access.
    Protected {
        page: MachinePage,
        vm: VmId,
        access: HostAccess,
    },
    /// The page still holds a previous owner's data.
    AwaitingZero(MachinePage),
    /// Writing a free page would break "free pages are zero".
    FreePage(MachinePage),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refused::OutOfRange(p) => write!(f, "host access refused: {p} is outside guest memory"),
            Refused::NoSuchVm(v) => write!(f, "host access refused: {v} does not exist"),
            Refused::NotMapped { vm, gpa } => {
                write!(f, "host access refused: {vm} has no memory at guest-physical {gpa:#x}")
            }
            Refused::Protected { page, vm, access } => write!(
                f,
                "host {access} refused: {page} belongs to protected {vm}, which has not shared it with the host for {access}"
            ),
            Refused::AwaitingZero(p) => {
                write!(f, "host access refused: {p} is awaiting zeroing")
            }
            Refused::FreePage(p) => write!(f, "host write refused: {p} is free"),
        }
    }
}

impl std::error::Error for Refused {}

/// Where [`Tracker::find_free`] starts looking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SearchFrom {
    Lowest,
    Highest,
}

/// Deliberate bugs, switched on only by this crate's own tests to show that
/// the model-based checker catches them.
#[cfg(test)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Bugs {
    /// Let a protected VM share its pages with other VMs.
    pub protected_share: bool,
    /// Leave the donor's mappings in place when it donates a page.
    pub keep_mappings_on_donate: bool,
    /// Do not require zeroing after a reclaim.
    pub no_zero_on_reclaim: bool,
    /// Let a page awaiting zeroing be mapped.
    pub map_pending: bool,
}

#[derive(Clone, Copy, Debug)]
struct PageInfo {
    owner: Owner,
    /// The party that donated the page to its current owner, and may
    /// reclaim it. `None` for pages that came from `Free`.
    donor: Option<Owner>,
}

#[derive(Clone, Debug, Default)]
struct VmState {
    protected: bool,
    /// gpa (4 KiB aligned) -> (page, perms).
    maps: BTreeMap<u64, (MachinePage, Perms)>,
}

/// The reverse map, page -> every (vm, gpa) that maps it. Most pages are
/// mapped once, so the first mapping of each page sits in a vector indexed
/// by page (no allocation per page, which giving a VM gigabytes would
/// otherwise cost), and only further ones go to a side table.
#[derive(Clone, Debug)]
struct RevMap {
    base: u64,
    first: Vec<Option<(VmId, u64)>>,
    more: BTreeMap<MachinePage, BTreeSet<(VmId, u64)>>,
    total: usize,
}

impl RevMap {
    fn new(base: u64, pages: u64) -> Self {
        Self { base, first: vec![None; pages as usize], more: BTreeMap::new(), total: 0 }
    }

    fn slot(&self, page: MachinePage) -> Option<usize> {
        let i = page.pfn().checked_sub(self.base)? as usize;
        (i < self.first.len()).then_some(i)
    }

    fn insert(&mut self, page: MachinePage, item: (VmId, u64)) {
        let Some(i) = self.slot(page) else { return };
        match self.first[i] {
            None => self.first[i] = Some(item),
            Some(f) if f == item => return,
            Some(_) => {
                if !self.more.entry(page).or_default().insert(item) {
                    return;
                }
            }
        }
        self.total += 1;
    }

    fn remove(&mut self, page: MachinePage, item: (VmId, u64)) {
        let Some(i) = self.slot(page) else { return };
        if self.first[i] == Some(item) {
            // Promote a further mapping, if there is one.
            self.first[i] = None;
            if let Some(set) = self.more.get_mut(&page) {
                self.first[i] = set.pop_first();
                if set.is_empty() {
                    self.more.remove(&page);
                }
            }
            self.total -= 1;
        } else if let Some(set) = self.more.get_mut(&page) {
            if set.remove(&item) {
                self.total -= 1;
            }
            if set.is_empty() {
                self.more.remove(&page);
            }
        }
    }

    fn contains(&self, page: MachinePage, item: (VmId, u64)) -> bool {
        self.slot(page).is_some_and(|i| self.first[i] == Some(item))
            || self.more.get(&page).is_some_and(|s| s.contains(&item))
    }

    /// Every mapping of `page`, sorted.
    fn items(&self, page: MachinePage) -> Vec<(VmId, u64)> {
        let mut v: Vec<(VmId, u64)> = self.slot(page).and_then(|i| self.first[i]).into_iter().collect();
        if let Some(set) = self.more.get(&page) {
            v.extend(set.iter().copied());
            v.sort_unstable();
        }
        v
    }

    fn total(&self) -> usize {
        self.total
    }

    /// The side table holds no empty sets and no page whose first slot is
    /// free (a removal always promotes).
    fn well_formed(&self) -> bool {
        self.more.iter().all(|(p, s)| !s.is_empty() && self.slot(*p).is_some_and(|i| self.first[i].is_some()))
    }
}

/// The ownership state of every 4 KiB page in one contiguous range of
/// machine memory, and of every VM's guest-physical mappings of them.
#[derive(Clone, Debug)]
pub struct Tracker {
    base: u64,
    info: Vec<PageInfo>,
    vms: BTreeMap<VmId, VmState>,
    /// Pages lent out: page -> borrower -> granted permissions.
    borrows: BTreeMap<MachinePage, BTreeMap<Owner, Perms>>,
    /// Reverse map: page -> every (vm, gpa) that maps it.
    rmap: RevMap,
    /// Pages that must be zeroed before anyone may use them.
    pending: BTreeSet<MachinePage>,
    #[cfg(test)]
    pub(crate) bugs: Bugs,
}

impl Tracker {
    /// Most pages one tracker manages: 2^26 pages, 256 GiB of machine memory
    /// (a larger request is refused rather than attempted).
    pub const MAX_PAGES: u64 = 1 << 26;

    /// Tracks `pages` pages starting at `base`, all free and known to be
    /// zero (machine RAM is zero at reset: the emulator allocates it zeroed).
    pub fn new(base: MachinePage, pages: u64) -> Result<Tracker, OwnershipError> {
        let end = base.pfn().checked_add(pages);
        let bad = pages == 0
            || pages > Self::MAX_PAGES
            || end.is_none()
            || end.is_some_and(|e| e > u64::MAX / PAGE_SIZE)
            || usize::try_from(pages).is_err();
        if bad {
            return Err(OwnershipError::BadRange { base, pages });
        }
        Ok(Tracker {
            base: base.pfn(),
            info: vec![PageInfo { owner: Owner::Free, donor: None }; pages as usize],
            vms: BTreeMap::new(),
            borrows: BTreeMap::new(),
            rmap: RevMap::new(base.pfn(), pages),
            pending: BTreeSet::new(),
            #[cfg(test)]
            bugs: Bugs::default(),
        })
    }

    /// First page of the managed range.
    pub fn base(&self) -> MachinePage {
        MachinePage::from_pfn(self.base)
    }

    /// Number of pages managed.
    pub fn len(&self) -> u64 {
        self.info.len() as u64
    }

    /// Never true: a tracker manages at least one page.
    pub fn is_empty(&self) -> bool {
        self.info.is_empty()
    }

    pub fn contains(&self, page: MachinePage) -> bool {
        self.idx(page).is_ok()
    }

    /// Every managed page, lowest first.
    pub fn pages(&self) -> impl Iterator<Item = MachinePage> + '_ {
        (0..self.len()).map(move |i| MachinePage::from_pfn(self.base + i))
    }

    fn idx(&self, page: MachinePage) -> Result<usize, OwnershipError> {
        page.pfn()
            .checked_sub(self.base)
            .filter(|&i| i < self.len())
            .map(|i| i as usize)
            .ok_or(OwnershipError::PageOutOfRange(page))
    }

    fn vm(&self, id: VmId) -> Result<&VmState, OwnershipError> {
        self.vms.get(&id).ok_or(OwnershipError::NoSuchVm(id))
    }

    /// `who` must be the hypervisor or an existing VM.
    fn party(&self, who: Owner) -> Result<(), OwnershipError> {
        match who {
            Owner::Free => Err(OwnershipError::NotAParty),
            Owner::Hypervisor => Ok(()),
            Owner::Vm(v) => self.vm(v).map(|_| ()),
        }
    }

    /// `who` must be free, the hypervisor or an existing VM.
    fn party_or_free(&self, who: Owner) -> Result<(), OwnershipError> {
        match who {
            Owner::Free => Ok(()),
            other => self.party(other),
        }
    }

    fn is_protected_owner(&self, who: Owner) -> Option<VmId> {
        match who {
            Owner::Vm(v) if self.vms.get(&v).is_some_and(|s| s.protected) => Some(v),
            _ => None,
        }
    }

    // ----- queries -----

    pub fn owner(&self, page: MachinePage) -> Result<Owner, OwnershipError> {
        Ok(self.info[self.idx(page)?].owner)
    }

    /// Who donated the page to its current owner (and may reclaim it).
    pub fn donor(&self, page: MachinePage) -> Result<Option<Owner>, OwnershipError> {
        Ok(self.info[self.idx(page)?].donor)
    }

    /// The page's borrowers and what each was granted, sorted.
    pub fn borrowers(&self, page: MachinePage) -> Vec<(Owner, Perms)> {
        self.borrows.get(&page).map(|b| b.iter().map(|(&o, &p)| (o, p)).collect()).unwrap_or_default()
    }

    /// What `borrower` was granted on `page`, if it borrows it.
    pub fn grant(&self, page: MachinePage, borrower: Owner) -> Option<Perms> {
        self.borrows.get(&page).and_then(|b| b.get(&borrower)).copied()
    }

    /// The page was reclaimed or freed and must be zeroed before anyone
    /// uses it.
    pub fn awaiting_zero(&self, page: MachinePage) -> bool {
        self.pending.contains(&page)
    }

    /// Every page awaiting zeroing, sorted.
    pub fn pending_zero(&self) -> Vec<MachinePage> {
        self.pending.iter().copied().collect()
    }

    /// Every existing VM and whether it is protected, sorted.
    pub fn vms(&self) -> Vec<(VmId, bool)> {
        self.vms.iter().map(|(&v, s)| (v, s.protected)).collect()
    }

    pub fn is_protected(&self, vm: VmId) -> Result<bool, OwnershipError> {
        Ok(self.vm(vm)?.protected)
    }

    /// What `vm` maps at the page containing guest-physical `gpa`.
    pub fn lookup(&self, vm: VmId, gpa: u64) -> Option<(MachinePage, Perms)> {
        self.vms.get(&vm)?.maps.get(&(gpa & !(PAGE_SIZE - 1))).copied()
    }

    /// Every mapping of `vm`, sorted by gpa.
    pub fn mappings(&self, vm: VmId) -> Result<Vec<Unmap>, OwnershipError> {
        Ok(self.vm(vm)?.maps.iter().map(|(&gpa, &(page, perms))| Unmap { vm, gpa, page, perms }).collect())
    }

    /// Who maps machine page `page`: every (vm, gpa), sorted.
    pub fn who_maps(&self, page: MachinePage) -> Vec<(VmId, u64)> {
        self.rmap.items(page)
    }

    /// Every page owned by `owner`, sorted.
    pub fn owned_by(&self, owner: Owner) -> Vec<MachinePage> {
        self.info
            .iter()
            .enumerate()
            .filter(|(_, inf)| inf.owner == owner)
            .map(|(i, _)| MachinePage::from_pfn(self.base + i as u64))
            .collect()
    }

    /// A free page, searching from `from`. With `clean_only`, only pages
    /// known to be zero; otherwise also free pages awaiting zeroing.
    pub fn find_free(&self, from: SearchFrom, clean_only: bool) -> Option<MachinePage> {
        self.find_free_run(1, 1, from, clean_only)
    }

    /// `count` consecutive free pages whose first page frame number is a
    /// multiple of `align` (in pages), searching from `from`.
    pub fn find_free_run(&self, count: u64, align: u64, from: SearchFrom, clean_only: bool) -> Option<MachinePage> {
        if count == 0 || align == 0 || count > self.len() {
            return None;
        }
        let usable = |i: u64| {
            let p = MachinePage::from_pfn(self.base + i);
            self.info[i as usize].owner == Owner::Free && !(clean_only && self.pending.contains(&p))
        };
        let fits = |first: u64| (first..first + count).all(usable);
        let last_start = self.len() - count;
        let aligned = |i: u64| (self.base + i) % align == 0;
        match from {
            SearchFrom::Lowest => (0..=last_start).filter(|&i| aligned(i)).find(|&i| fits(i)),
            SearchFrom::Highest => (0..=last_start).rev().filter(|&i| aligned(i)).find(|&i| fits(i)),
        }
        .map(|i| MachinePage::from_pfn(self.base + i))
    }

    // ----- internal mutation helpers (no checks) -----

    fn drop_mapping(&mut self, vm: VmId, gpa: u64, eff: &mut Effects) {
        if let Some(st) = self.vms.get_mut(&vm) {
            if let Some((page, perms)) = st.maps.remove(&gpa) {
                self.rmap.remove(page, (vm, gpa));
                eff.unmapped.push(Unmap { vm, gpa, page, perms });
            }
        }
    }

    /// Removes the mappings of `page` by VMs that `which` selects.
    fn drop_mappings_of(&mut self, page: MachinePage, which: impl Fn(VmId) -> bool, eff: &mut Effects) {
        let victims: Vec<(VmId, u64)> = self.rmap.items(page).into_iter().filter(|&(v, _)| which(v)).collect();
        for (vm, gpa) in victims {
            self.drop_mapping(vm, gpa, eff);
        }
    }

    fn make_pending(&mut self, page: MachinePage, eff: &mut Effects) {
        self.pending.insert(page);
        eff.awaiting_zero.push(page);
    }

    // ----- operations -----

    /// Creates VM `id`, owning nothing yet.
    pub fn create_vm(&mut self, id: VmId, protected: bool) -> Result<(), OwnershipError> {
        if self.vms.contains_key(&id) {
            return Err(OwnershipError::VmExists(id));
        }
        self.vms.insert(id, VmState { protected, maps: BTreeMap::new() });
        Ok(())
    }

    /// Destroys VM `id`: every page it owns becomes free and awaits zeroing
    /// (its borrowers lose it), every page it borrows is returned, every
    /// mapping it had is reported, and its right to reclaim pages it donated
    /// lapses.
    pub fn destroy_vm(&mut self, id: VmId) -> Result<Effects, OwnershipError> {
        let st = self.vms.remove(&id).ok_or(OwnershipError::NoSuchVm(id))?;
        let mut eff = Effects::default();
        for (gpa, (page, perms)) in st.maps {
            self.rmap.remove(page, (id, gpa));
            eff.unmapped.push(Unmap { vm: id, gpa, page, perms });
        }
        let me = Owner::Vm(id);
        for i in 0..self.info.len() {
            let page = MachinePage::from_pfn(self.base + i as u64);
            if self.info[i].owner == me {
                self.borrows.remove(&page);
                self.drop_mappings_of(page, |_| true, &mut eff);
                self.info[i] = PageInfo { owner: Owner::Free, donor: None };
                self.make_pending(page, &mut eff);
            } else if self.info[i].donor == Some(me) {
                self.info[i].donor = None;
            }
        }
        self.borrows.retain(|_, b| {
            b.remove(&me);
            !b.is_empty()
        });
        Ok(eff.finish())
    }

    /// Transfers `page` from `from` to `to` (pKVM's "donate").
    ///
    /// - `from == Free` allocates a free, zeroed page to `to`.
    /// - `to == Free` releases the page; it then awaits zeroing.
    /// - Otherwise `from` must own it. Its mappings by `from` are removed and
    ///   reported; `from` becomes the donor, which may [`reclaim`](Self::reclaim) it.
    /// - A page donated *by a protected VM* awaits zeroing afterwards: the
    ///   VM's data never leaves it this way (share it for that).
    ///
    /// The page must not be shared out or awaiting zeroing.
    pub fn donate(&mut self, from: Owner, page: MachinePage, to: Owner) -> Result<Effects, OwnershipError> {
        let i = self.idx(page)?;
        self.party_or_free(from)?;
        self.party_or_free(to)?;
        if from == to {
            return Err(OwnershipError::SameParty(from));
        }
        let owner = self.info[i].owner;
        if owner != from {
            return Err(OwnershipError::NotOwner { page, requester: from, owner });
        }
        if self.pending.contains(&page) {
            return Err(OwnershipError::AwaitingZero(page));
        }
        if self.borrows.contains_key(&page) {
            return Err(OwnershipError::PageShared(page));
        }
        let mut eff = Effects::default();
        #[cfg(test)]
        let keep = self.bugs.keep_mappings_on_donate;
        #[cfg(not(test))]
        let keep = false;
        if let (Owner::Vm(v), false) = (from, keep) {
            self.drop_mappings_of(page, |m| m == v, &mut eff);
        }
        let zero = to == Owner::Free || self.is_protected_owner(from).is_some();
        self.info[i] =
            PageInfo { owner: to, donor: if from == Owner::Free || to == Owner::Free { None } else { Some(from) } };
        if zero {
            self.make_pending(page, &mut eff);
        }
        Ok(eff.finish())
    }

    /// Gives free, zeroed `page` to `to`. Same as `donate(Free, page, to)`.
    pub fn alloc(&mut self, page: MachinePage, to: Owner) -> Result<(), OwnershipError> {
        let eff = self.donate(Owner::Free, page, to)?;
        debug_assert!(eff.is_empty());
        Ok(())
    }

    /// `owner` lends `page` to `borrower` with permissions `perms` (pKVM's
    /// "share"); the owner keeps ownership and `borrower` may map it with at
    /// most `perms`.
    ///
    /// A protected VM's page may be shared by that VM, with the hypervisor
    /// only (pKVM's "share with host", e.g. for virtio buffers); nobody else
    /// can share it, since only the owner can share at all.
    pub fn share(
        &mut self,
        owner: Owner,
        page: MachinePage,
        borrower: Owner,
        perms: Perms,
    ) -> Result<(), OwnershipError> {
        let i = self.idx(page)?;
        self.party(owner)?;
        self.party(borrower)?;
        if owner == borrower {
            return Err(OwnershipError::SameParty(owner));
        }
        if !perms.is_valid() {
            return Err(OwnershipError::InvalidPerms(perms));
        }
        let actual = self.info[i].owner;
        if actual != owner {
            return Err(OwnershipError::NotOwner { page, requester: owner, owner: actual });
        }
        if self.pending.contains(&page) {
            return Err(OwnershipError::AwaitingZero(page));
        }
        #[cfg(test)]
        let skip = self.bugs.protected_share;
        #[cfg(not(test))]
        let skip = false;
        if let Some(vm) = self.is_protected_owner(owner) {
            if borrower != Owner::Hypervisor && !skip {
                return Err(OwnershipError::ProtectedShare { page, vm, borrower });
            }
        }
        if self.grant(page, borrower).is_some() {
            return Err(OwnershipError::AlreadyShared { page, borrower });
        }
        self.borrows.entry(page).or_default().insert(borrower, perms);
        Ok(())
    }

    /// `owner` ends `borrower`'s loan of `page`; the borrower's mappings of
    /// it are removed and reported.
    pub fn unshare(&mut self, owner: Owner, page: MachinePage, borrower: Owner) -> Result<Effects, OwnershipError> {
        let i = self.idx(page)?;
        self.party(owner)?;
        if borrower == Owner::Free {
            return Err(OwnershipError::NotAParty);
        }
        let actual = self.info[i].owner;
        if actual != owner {
            return Err(OwnershipError::NotOwner { page, requester: owner, owner: actual });
        }
        if self.grant(page, borrower).is_none() {
            return Err(OwnershipError::NotShared { page, borrower });
        }
        let mut eff = Effects::default();
        if let Some(b) = self.borrows.get_mut(&page) {
            b.remove(&borrower);
            if b.is_empty() {
                self.borrows.remove(&page);
            }
        }
        if let Owner::Vm(v) = borrower {
            self.drop_mappings_of(page, |m| m == v, &mut eff);
        }
        Ok(eff.finish())
    }

    /// `requester` takes `page` back (pKVM's "reclaim").
    ///
    /// - If `requester` owns the page, every loan of it ends (the borrowers'
    ///   mappings are reported); the owner keeps its data, nothing is zeroed.
    /// - Otherwise `requester` must be the page's donor, or the hypervisor
    ///   taking a page back from a VM. Ownership returns to `requester`,
    ///   every mapping of the page (owner's and borrowers') is reported, and
    ///   the page awaits zeroing, so `requester` never sees what the
    ///   previous owner left in it.
    /// - A page owned by a protected VM cannot be reclaimed by anyone while
    ///   that VM lives: it leaves only by the VM's own donation or by
    ///   [`destroy_vm`](Self::destroy_vm). (Taking it would let the host
    ///   swap zeros — or anything — under a running protected guest.)
    pub fn reclaim(&mut self, requester: Owner, page: MachinePage) -> Result<Effects, OwnershipError> {
        let i = self.idx(page)?;
        self.party(requester)?;
        let PageInfo { owner, donor } = self.info[i];
        let mut eff = Effects::default();
        if owner == requester {
            let Some(b) = self.borrows.remove(&page) else {
                return Err(OwnershipError::NotReclaimable { page, requester, owner });
            };
            self.drop_mappings_of(page, |m| b.contains_key(&Owner::Vm(m)), &mut eff);
            return Ok(eff.finish());
        }
        if let Some(vm) = self.is_protected_owner(owner) {
            return Err(OwnershipError::ProtectedPage { page, vm });
        }
        let permitted = owner != Owner::Free
            && (donor == Some(requester) || (requester == Owner::Hypervisor && owner.vm().is_some()));
        if !permitted {
            return Err(OwnershipError::NotReclaimable { page, requester, owner });
        }
        self.borrows.remove(&page);
        self.drop_mappings_of(page, |_| true, &mut eff);
        self.info[i] = PageInfo { owner: requester, donor: None };
        #[cfg(test)]
        let skip = self.bugs.no_zero_on_reclaim;
        #[cfg(not(test))]
        let skip = false;
        if !skip {
            self.make_pending(page, &mut eff);
        }
        Ok(eff.finish())
    }

    /// Records that `vm` maps `page` at guest-physical `gpa` with `perms`.
    /// The VM must own the page (any valid perms) or borrow it (perms within
    /// the grant); the page must not be awaiting zeroing; `gpa` must be free
    /// in the VM. The same page may be mapped at several gpas.
    pub fn map(&mut self, vm: VmId, gpa: u64, page: MachinePage, perms: Perms) -> Result<(), OwnershipError> {
        let st = self.vm(vm)?;
        if gpa % PAGE_SIZE != 0 {
            return Err(OwnershipError::MisalignedGpa(gpa));
        }
        let i = self.idx(page)?;
        if !perms.is_valid() {
            return Err(OwnershipError::InvalidPerms(perms));
        }
        if let Some(&(old, _)) = st.maps.get(&gpa) {
            return Err(OwnershipError::GpaInUse { vm, gpa, page: old });
        }
        #[cfg(test)]
        let skip = self.bugs.map_pending;
        #[cfg(not(test))]
        let skip = false;
        if self.pending.contains(&page) && !skip {
            return Err(OwnershipError::AwaitingZero(page));
        }
        if self.info[i].owner != Owner::Vm(vm) {
            match self.grant(page, Owner::Vm(vm)) {
                None => return Err(OwnershipError::NoRight { vm, page }),
                Some(granted) if !granted.contains(perms) => {
                    return Err(OwnershipError::PermsExceedGrant { vm, page, requested: perms, granted })
                }
                Some(_) => {}
            }
        }
        if let Some(st) = self.vms.get_mut(&vm) {
            st.maps.insert(gpa, (page, perms));
        }
        self.rmap.insert(page, (vm, gpa));
        Ok(())
    }

    /// Removes `vm`'s mapping at `gpa` and returns it.
    pub fn unmap(&mut self, vm: VmId, gpa: u64) -> Result<Unmap, OwnershipError> {
        let st = self.vm(vm)?;
        if gpa % PAGE_SIZE != 0 {
            return Err(OwnershipError::MisalignedGpa(gpa));
        }
        if !st.maps.contains_key(&gpa) {
            return Err(OwnershipError::NotMapped { vm, gpa });
        }
        let mut eff = Effects::default();
        self.drop_mapping(vm, gpa, &mut eff);
        eff.unmapped.pop().ok_or(OwnershipError::NotMapped { vm, gpa })
    }

    /// May a host-side interface access `page`? Refuses pages of protected
    /// VMs (unless the VM shared the page with the hypervisor for this
    /// access), pages awaiting zeroing, and writes to free pages.
    pub fn host_access(&self, page: MachinePage, access: HostAccess) -> Result<(), Refused> {
        let i = self.idx(page).map_err(|_| Refused::OutOfRange(page))?;
        if self.pending.contains(&page) {
            return Err(Refused::AwaitingZero(page));
        }
        let owner = self.info[i].owner;
        if owner == Owner::Free && access == HostAccess::Write {
            return Err(Refused::FreePage(page));
        }
        if let Some(vm) = self.is_protected_owner(owner) {
            let granted = self.grant(page, Owner::Hypervisor).unwrap_or(Perms::NONE);
            if !granted.contains(access.needs()) {
                return Err(Refused::Protected { page, vm, access });
            }
        }
        Ok(())
    }

    /// The host-side check in guest-physical terms: which machine page holds
    /// `vm`'s guest-physical `gpa` (any alignment), and may the host access it?
    pub fn host_access_gpa(&self, vm: VmId, gpa: u64, access: HostAccess) -> Result<MachinePage, Refused> {
        if !self.vms.contains_key(&vm) {
            return Err(Refused::NoSuchVm(vm));
        }
        let (page, _) = self.lookup(vm, gpa).ok_or(Refused::NotMapped { vm, gpa })?;
        self.host_access(page, access)?;
        Ok(page)
    }

    /// Zeroes `page` through `z` if it is awaiting zeroing; returns whether it was.
    pub fn zero_page<Z: PageZeroer + ?Sized>(&mut self, page: MachinePage, z: &mut Z) -> Result<bool, OwnershipError> {
        self.idx(page)?;
        if !self.pending.contains(&page) {
            return Ok(false);
        }
        z.zero_page(page).map_err(|ZeroFailed(p)| OwnershipError::ZeroFailed(p))?;
        self.pending.remove(&page);
        Ok(true)
    }

    /// Zeroes every page awaiting zeroing, lowest first; returns how many.
    /// On a zeroer failure the failed page and those after it stay pending.
    pub fn zero_pending<Z: PageZeroer + ?Sized>(&mut self, z: &mut Z) -> Result<usize, OwnershipError> {
        let mut n = 0;
        while let Some(&p) = self.pending.first() {
            z.zero_page(p).map_err(|ZeroFailed(p)| OwnershipError::ZeroFailed(p))?;
            self.pending.remove(&p);
            n += 1;
        }
        Ok(n)
    }

    /// Checks the tracker's internal consistency (the invariants in the crate
    /// documentation). For tests and debug assertions; `Err` names the first
    /// broken invariant.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (i, inf) in self.info.iter().enumerate() {
            let page = MachinePage::from_pfn(self.base + i as u64);
            if let Owner::Vm(v) = inf.owner {
                if !self.vms.contains_key(&v) {
                    return Err(format!("{page} owned by missing {v}"));
                }
            }
            if let Some(d) = inf.donor {
                if d == inf.owner || d == Owner::Free || d.vm().is_some_and(|v| !self.vms.contains_key(&v)) {
                    return Err(format!("{page} has bad donor {d} (owner {})", inf.owner));
                }
            }
        }
        for (&page, b) in &self.borrows {
            let owner = self.owner(page).map_err(|e| e.to_string())?;
            if b.is_empty() || owner == Owner::Free {
                return Err(format!("{page}: empty loan record or free page lent"));
            }
            if self.pending.contains(&page) {
                return Err(format!("{page} is lent while awaiting zero"));
            }
            for (&who, &perms) in b {
                if who == owner || who == Owner::Free || !perms.is_valid() {
                    return Err(format!("{page}: bad loan to {who} ({perms})"));
                }
                if who.vm().is_some_and(|v| !self.vms.contains_key(&v)) {
                    return Err(format!("{page} lent to missing {who}"));
                }
                if self.is_protected_owner(owner).is_some() && who != Owner::Hypervisor {
                    return Err(format!("protected {page} lent to {who}"));
                }
            }
        }
        let mut count = 0;
        for (&vm, st) in &self.vms {
            for (&gpa, &(page, perms)) in &st.maps {
                count += 1;
                if !self.rmap.contains(page, (vm, gpa)) {
                    return Err(format!("{vm} gpa {gpa:#x} -> {page} missing from reverse map"));
                }
                if self.pending.contains(&page) {
                    return Err(format!("{vm} maps {page}, which awaits zero"));
                }
                let owner = self.owner(page).map_err(|e| e.to_string())?;
                let ok = owner == Owner::Vm(vm) || self.grant(page, Owner::Vm(vm)).is_some_and(|g| g.contains(perms));
                if !ok {
                    return Err(format!("{vm} maps {page} ({perms}) without the right (owner {owner})"));
                }
            }
        }
        let rcount = self.rmap.total();
        if rcount != count || !self.rmap.well_formed() {
            return Err(format!("reverse map has {rcount} entries, forward maps {count}"));
        }
        Ok(())
    }
}

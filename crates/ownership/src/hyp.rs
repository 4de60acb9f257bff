//! [`HypMemory`]: the ownership tracker and every VM's G-stage tables kept
//! in step, over machine memory. This is the layer the hypervisor calls.
//!
//! Each operation first asks the [`Tracker`]; if the tracker accepts, the
//! mappings it reports as removed are removed from the G-stage tables too,
//! so the tables never grant what the bookkeeping refuses. What is left to
//! the caller is the TLB: every [`Unmap`] in the returned [`Effects`] names a
//! (VM, gpa, machine page) whose cached translations must be invalidated.
//!
//! Table pages are hypervisor-owned pages taken from the tracker, from the
//! top of memory down (so guest memory, allocated from the bottom, stays
//! contiguous), zeroed on the spot if they were awaiting zero. They can
//! never be donated, shared or mapped into a VM.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::gstage::{GStage, GStageError, GStageMode, Leaf, TableMemError, TableMemory};
use crate::tracker::{Effects, OwnershipError, PageZeroer, Refused, SearchFrom, Tracker, Unmap, ZeroFailed};
use crate::types::{HostAccess, MachinePage, Owner, Perms, VmId, PAGE_SIZE};

/// Machine RAM as the hypervisor reaches it.
pub trait MachineMemory {
    /// Reads `buf.len()` bytes at machine address `pa`.
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), TableMemError>;
    /// Writes `data` at machine address `pa`.
    fn write(&mut self, pa: u64, data: &[u8]) -> Result<(), TableMemError>;
    /// Zeroes one page.
    fn zero_page(&mut self, page: MachinePage) -> Result<(), TableMemError> {
        self.write(page.addr(), &[0u8; PAGE_SIZE as usize])
    }
}

/// Why a [`HypMemory`] operation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// The ownership rules refused it; nothing changed.
    Ownership(OwnershipError),
    /// The G-stage builder refused it (e.g. gpa out of range, out of table
    /// memory); nothing changed. During a teardown this means the table
    /// memory failed and the hypervisor should stop the machine.
    GStage(GStageError),
    /// A host-side access was refused; nothing was read or written.
    Refused(Refused),
    /// The page holds G-stage tables; it can't be given to a VM.
    TablePage(MachinePage),
    /// Machine memory failed, or has no free page left.
    Memory(TableMemError),
    /// During a teardown, a VM's tables mapped `gpa` to a different page
    /// than the bookkeeping said (the table memory was overwritten behind
    /// the builder's back). The entry was removed anyway.
    TablesDisagree { vm: VmId, gpa: u64 },
}

impl From<OwnershipError> for Error {
    fn from(e: OwnershipError) -> Self {
        Error::Ownership(e)
    }
}
impl From<GStageError> for Error {
    fn from(e: GStageError) -> Self {
        Error::GStage(e)
    }
}
impl From<Refused> for Error {
    fn from(e: Refused) -> Self {
        Error::Refused(e)
    }
}
impl From<TableMemError> for Error {
    fn from(e: TableMemError) -> Self {
        Error::Memory(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ownership(e) => write!(f, "{e}"),
            Error::GStage(e) => write!(f, "G-stage: {e}"),
            Error::Refused(e) => write!(f, "{e}"),
            Error::TablePage(p) => write!(f, "{p} holds G-stage tables"),
            Error::Memory(e) => write!(f, "machine memory: {e}"),
            Error::TablesDisagree { vm, gpa } => {
                write!(f, "{vm}'s G-stage tables disagree with the bookkeeping at {gpa:#x}")
            }
        }
    }
}

impl std::error::Error for Error {}

struct Zeroer<'a, M: ?Sized>(&'a mut M);

impl<M: MachineMemory + ?Sized> PageZeroer for Zeroer<'_, M> {
    fn zero_page(&mut self, page: MachinePage) -> Result<(), ZeroFailed> {
        self.0.zero_page(page).map_err(|_| ZeroFailed(page))
    }
}

/// The G-stage builder's view of machine memory: table pages come from,
/// and go back to, the tracker.
struct Tables<'a, M: ?Sized> {
    tracker: &'a mut Tracker,
    table_pages: &'a mut BTreeSet<MachinePage>,
    mem: &'a mut M,
}

impl<M: MachineMemory + ?Sized> Tables<'_, M> {
    fn take(&mut self, first: MachinePage, count: u64) -> Result<u64, TableMemError> {
        for i in 0..count {
            let p = MachinePage::from_pfn(first.pfn() + i);
            self.tracker.zero_page(p, &mut Zeroer(&mut *self.mem)).map_err(|_| TableMemError::BadAddress(p.addr()))?;
            self.tracker.alloc(p, Owner::Hypervisor).map_err(|_| TableMemError::OutOfMemory)?;
            self.table_pages.insert(p);
        }
        Ok(first.addr())
    }

    fn give_back(&mut self, pa: u64) -> Result<(), TableMemError> {
        let page = MachinePage::from_addr(pa).ok_or(TableMemError::BadAddress(pa))?;
        if !self.table_pages.remove(&page) {
            return Err(TableMemError::BadAddress(pa));
        }
        // Released pages await zeroing (they are zero already, but the
        // tracker's rule is simple: every page freed is zeroed before reuse).
        let _ = self.tracker.donate(Owner::Hypervisor, page, Owner::Free).map_err(|_| TableMemError::BadAddress(pa))?;
        Ok(())
    }
}

impl<M: MachineMemory + ?Sized> TableMemory for Tables<'_, M> {
    fn read_u64(&self, pa: u64) -> Result<u64, TableMemError> {
        let mut b = [0u8; 8];
        self.mem.read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn write_u64(&mut self, pa: u64, value: u64) -> Result<(), TableMemError> {
        self.mem.write(pa, &value.to_le_bytes())
    }

    fn alloc_table_page(&mut self) -> Result<u64, TableMemError> {
        let p = self.tracker.find_free(SearchFrom::Highest, false).ok_or(TableMemError::OutOfMemory)?;
        self.take(p, 1)
    }

    fn alloc_root_table(&mut self) -> Result<u64, TableMemError> {
        let p = self.tracker.find_free_run(4, 4, SearchFrom::Highest, false).ok_or(TableMemError::OutOfMemory)?;
        self.take(p, 4)
    }

    fn free_table_page(&mut self, pa: u64) -> Result<(), TableMemError> {
        self.give_back(pa)
    }

    fn free_root_table(&mut self, pa: u64) -> Result<(), TableMemError> {
        for i in 0..4 {
            self.give_back(pa + i * PAGE_SIZE)?;
        }
        Ok(())
    }
}

/// Read-only view for translation.
struct ReadTables<'a, M: ?Sized>(&'a M);

impl<M: MachineMemory + ?Sized> TableMemory for ReadTables<'_, M> {
    fn read_u64(&self, pa: u64) -> Result<u64, TableMemError> {
        let mut b = [0u8; 8];
        self.0.read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn write_u64(&mut self, pa: u64, _: u64) -> Result<(), TableMemError> {
        Err(TableMemError::BadAddress(pa))
    }
    fn alloc_table_page(&mut self) -> Result<u64, TableMemError> {
        Err(TableMemError::OutOfMemory)
    }
    fn alloc_root_table(&mut self) -> Result<u64, TableMemError> {
        Err(TableMemError::OutOfMemory)
    }
    fn free_table_page(&mut self, pa: u64) -> Result<(), TableMemError> {
        Err(TableMemError::BadAddress(pa))
    }
    fn free_root_table(&mut self, pa: u64) -> Result<(), TableMemError> {
        Err(TableMemError::BadAddress(pa))
    }
}

/// All machine memory under one ownership tracker, with every VM's
/// G-stage tables built in that memory and kept in step with it.
#[derive(Clone, Debug)]
pub struct HypMemory {
    tracker: Tracker,
    mode: GStageMode,
    gstages: BTreeMap<VmId, GStage>,
    table_pages: BTreeSet<MachinePage>,
    /// Test-only deliberate bug: leave G-stage entries in place when the
    /// tracker reports them removed.
    #[cfg(test)]
    pub(crate) bug_skip_teardown: bool,
}

impl HypMemory {
    /// Manages `pages` pages of machine memory from `base`, all free and
    /// zero; every VM's tables use `mode`.
    pub fn new(base: MachinePage, pages: u64, mode: GStageMode) -> Result<HypMemory, Error> {
        Ok(HypMemory {
            tracker: Tracker::new(base, pages)?,
            mode,
            gstages: BTreeMap::new(),
            table_pages: BTreeSet::new(),
            #[cfg(test)]
            bug_skip_teardown: false,
        })
    }

    #[cfg(test)]
    pub(crate) fn tracker_mut_for_tests(&mut self) -> &mut Tracker {
        &mut self.tracker
    }

    /// The ownership state (read-only: changes go through `HypMemory`, so
    /// the tables stay in step).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn mode(&self) -> GStageMode {
        self.mode
    }

    /// Every page that holds G-stage tables, sorted.
    pub fn table_pages(&self) -> Vec<MachinePage> {
        self.table_pages.iter().copied().collect()
    }

    pub fn is_table_page(&self, page: MachinePage) -> bool {
        self.table_pages.contains(&page)
    }

    /// Machine address of `vm`'s root table.
    pub fn root(&self, vm: VmId) -> Option<u64> {
        self.gstages.get(&vm).map(|g| g.root())
    }

    /// The `hgatp` value for `vm` under hardware VMID `vmid`.
    pub fn hgatp(&self, vm: VmId, vmid: u16) -> Result<u64, Error> {
        let g = self.gstages.get(&vm).ok_or(OwnershipError::NoSuchVm(vm))?;
        Ok(g.hgatp(vmid)?)
    }

    fn split<'a, M: MachineMemory + ?Sized>(
        &'a mut self,
        mem: &'a mut M,
    ) -> (&'a mut BTreeMap<VmId, GStage>, Tables<'a, M>) {
        (&mut self.gstages, Tables { tracker: &mut self.tracker, table_pages: &mut self.table_pages, mem })
    }

    fn guard(&self, page: MachinePage) -> Result<(), Error> {
        if self.table_pages.contains(&page) {
            return Err(Error::TablePage(page));
        }
        Ok(())
    }

    /// Removes the reported mappings from the G-stage tables.
    fn apply<M: MachineMemory + ?Sized>(&mut self, mem: &mut M, eff: &Effects) -> Result<(), Error> {
        #[cfg(test)]
        if self.bug_skip_teardown {
            return Ok(());
        }
        let (gstages, mut tables) = self.split(mem);
        let mut first_err = None;
        for u in &eff.unmapped {
            let Some(g) = gstages.get_mut(&u.vm) else {
                continue;
            };
            match g.unmap(&mut tables, u.gpa) {
                Ok(leaf) if leaf.pa == u.page.addr() => {}
                Ok(_) => {
                    first_err.get_or_insert(Error::TablesDisagree { vm: u.vm, gpa: u.gpa });
                }
                Err(e) => {
                    first_err.get_or_insert(Error::GStage(e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Creates VM `id` with an empty G-stage root table.
    pub fn create_vm<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        id: VmId,
        protected: bool,
    ) -> Result<(), Error> {
        self.tracker.create_vm(id, protected)?;
        let mode = self.mode;
        let (gstages, mut tables) = self.split(mem);
        match GStage::new(mode, &mut tables) {
            Ok(g) => {
                gstages.insert(id, g);
                Ok(())
            }
            Err(e) => {
                let _ = self.tracker.destroy_vm(id);
                Err(e.into())
            }
        }
    }

    /// Destroys VM `id` and frees its tables. Its pages become free and
    /// await zeroing. The effects list the VM's own mappings (flush its
    /// whole VMID) and those of borrowers of its pages.
    pub fn destroy_vm<M: MachineMemory + ?Sized>(&mut self, mem: &mut M, id: VmId) -> Result<Effects, Error> {
        let eff = self.tracker.destroy_vm(id)?;
        let own = self.gstages.remove(&id);
        let others = Effects {
            unmapped: eff.unmapped.iter().filter(|u| u.vm != id).copied().collect(),
            awaiting_zero: Vec::new(),
        };
        let r = self.apply(mem, &others);
        if let Some(g) = own {
            let (_, mut tables) = self.split(mem);
            g.destroy(&mut tables)?;
        }
        r.map(|()| eff)
    }

    /// Gives a free page to `to`, lowest first, zeroing it if needed.
    pub fn alloc_page<M: MachineMemory + ?Sized>(&mut self, mem: &mut M, to: Owner) -> Result<MachinePage, Error> {
        let page =
            self.tracker.find_free(SearchFrom::Lowest, false).ok_or(Error::Memory(TableMemError::OutOfMemory))?;
        self.tracker.zero_page(page, &mut Zeroer(mem))?;
        self.tracker.alloc(page, to)?;
        Ok(page)
    }

    /// Gives `count` consecutive free pages to `to`, lowest run first,
    /// zeroing any that need it; returns the first. One search for the
    /// whole run, so giving a VM its memory is linear in its size.
    pub fn alloc_run<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        count: u64,
        to: Owner,
    ) -> Result<MachinePage, Error> {
        let first = self
            .tracker
            .find_free_run(count, 1, SearchFrom::Lowest, false)
            .ok_or(Error::Memory(TableMemError::OutOfMemory))?;
        for i in 0..count {
            let page = MachinePage::from_pfn(first.pfn() + i);
            self.tracker.zero_page(page, &mut Zeroer(mem))?;
            self.tracker.alloc(page, to)?;
        }
        Ok(first)
    }

    /// [`Tracker::donate`], with the G-stage entries removed.
    pub fn donate<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        from: Owner,
        page: MachinePage,
        to: Owner,
    ) -> Result<Effects, Error> {
        self.guard(page)?;
        let eff = self.tracker.donate(from, page, to)?;
        self.apply(mem, &eff).map(|()| eff)
    }

    /// [`Tracker::share`]. Nothing is mapped yet, so no tables change.
    pub fn share(&mut self, owner: Owner, page: MachinePage, borrower: Owner, perms: Perms) -> Result<(), Error> {
        self.guard(page)?;
        Ok(self.tracker.share(owner, page, borrower, perms)?)
    }

    /// [`Tracker::unshare`], with the G-stage entries removed.
    pub fn unshare<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        owner: Owner,
        page: MachinePage,
        borrower: Owner,
    ) -> Result<Effects, Error> {
        let eff = self.tracker.unshare(owner, page, borrower)?;
        self.apply(mem, &eff).map(|()| eff)
    }

    /// [`Tracker::reclaim`], with the G-stage entries removed.
    pub fn reclaim<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        requester: Owner,
        page: MachinePage,
    ) -> Result<Effects, Error> {
        self.guard(page)?;
        let eff = self.tracker.reclaim(requester, page)?;
        self.apply(mem, &eff).map(|()| eff)
    }

    /// Maps `page` at `vm`'s guest-physical `gpa` with `perms`, in the
    /// bookkeeping and in the tables. Either both change or neither.
    pub fn map<M: MachineMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        vm: VmId,
        gpa: u64,
        page: MachinePage,
        perms: Perms,
    ) -> Result<(), Error> {
        self.guard(page)?;
        if !self.mode.gpa_ok(gpa) {
            return Err(GStageError::GpaOutOfRange(gpa).into());
        }
        self.tracker.map(vm, gpa, page, perms)?;
        let (gstages, mut tables) = self.split(mem);
        let r = match gstages.get_mut(&vm) {
            Some(g) => g.map(&mut tables, gpa, page.addr(), perms),
            None => Err(GStageError::NotMapped(gpa)),
        };
        if let Err(e) = r {
            let _ = self.tracker.unmap(vm, gpa);
            return Err(e.into());
        }
        Ok(())
    }

    /// Unmaps `vm`'s `gpa`; the caller invalidates the returned translation.
    pub fn unmap<M: MachineMemory + ?Sized>(&mut self, mem: &mut M, vm: VmId, gpa: u64) -> Result<Unmap, Error> {
        let u = self.tracker.unmap(vm, gpa)?;
        self.apply(mem, &Effects { unmapped: vec![u], awaiting_zero: Vec::new() })?;
        Ok(u)
    }

    /// Zeroes every page awaiting zeroing; returns how many.
    pub fn zero_pending<M: MachineMemory + ?Sized>(&mut self, mem: &mut M) -> Result<usize, Error> {
        Ok(self.tracker.zero_pending(&mut Zeroer(mem))?)
    }

    /// What `vm`'s G-stage tables say about `gpa`.
    pub fn translate<M: MachineMemory + ?Sized>(&self, mem: &M, vm: VmId, gpa: u64) -> Result<Option<Leaf>, Error> {
        let g = self.gstages.get(&vm).ok_or(OwnershipError::NoSuchVm(vm))?;
        Ok(g.translate(&ReadTables(mem), gpa)?)
    }

    /// Checks every page the range `gpa..gpa+len` of `vm` touches.
    fn host_pages(
        &self,
        vm: VmId,
        gpa: u64,
        len: usize,
        access: HostAccess,
    ) -> Result<Vec<(u64, usize, usize)>, Error> {
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let cur = gpa.checked_add(done as u64).ok_or(Refused::NotMapped { vm, gpa: u64::MAX })?;
            let off = (cur % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - off).min(len - done);
            let page = self.tracker.host_access_gpa(vm, cur, access)?;
            out.push((page.addr() + off as u64, done, n));
            done += n;
        }
        Ok(out)
    }

    /// The hypervisor's one guest-memory read interface (for tests, the
    /// control API, snapshots, the debugger, introspection). Reads `vm`'s
    /// guest-physical `gpa..gpa+buf.len()`, or refuses — before reading
    /// anything — if any page of it is not mapped, is a protected VM's page
    /// not shared with the host, or awaits zeroing.
    pub fn host_read<M: MachineMemory + ?Sized>(
        &self,
        mem: &M,
        vm: VmId,
        gpa: u64,
        buf: &mut [u8],
    ) -> Result<(), Error> {
        for (pa, at, n) in self.host_pages(vm, gpa, buf.len(), HostAccess::Read)? {
            mem.read(pa, &mut buf[at..at + n])?;
        }
        Ok(())
    }

    /// The guest-memory write interface; refuses like [`host_read`](Self::host_read)
    /// (a protected page needs a writable share with the host).
    pub fn host_write<M: MachineMemory + ?Sized>(
        &self,
        mem: &mut M,
        vm: VmId,
        gpa: u64,
        data: &[u8],
    ) -> Result<(), Error> {
        for (pa, at, n) in self.host_pages(vm, gpa, data.len(), HostAccess::Write)? {
            mem.write(pa, &data[at..at + n])?;
        }
        Ok(())
    }

    /// Checks that the tables agree with the bookkeeping: the tracker's own
    /// invariants, every VM's leaves equal to its recorded mappings, and the
    /// table pages reachable from the roots equal to the recorded table
    /// pages, all hypervisor-owned. `Err` names the first disagreement.
    pub fn check<M: MachineMemory + ?Sized>(&self, mem: &M) -> Result<(), String> {
        self.tracker.check_invariants()?;
        let rt = ReadTables(mem);
        let mut reached = BTreeSet::new();
        for (&vm, g) in &self.gstages {
            let leaves = g.leaves(&rt).map_err(|e| format!("{vm}: {e}"))?;
            let have: Vec<(u64, u64, Perms)> = leaves.iter().map(|l| (l.gpa, l.pa, l.perms)).collect();
            let want: Vec<(u64, u64, Perms)> = self
                .tracker
                .mappings(vm)
                .map_err(|e| e.to_string())?
                .iter()
                .map(|u| (u.gpa, u.page.addr(), u.perms))
                .collect();
            if have != want {
                return Err(format!("{vm}: tables map {have:x?}, bookkeeping {want:x?}"));
            }
            for t in g.table_pages(&rt).map_err(|e| format!("{vm}: {e}"))? {
                reached.insert(MachinePage::containing(t));
            }
        }
        if reached != self.table_pages {
            return Err(format!("table pages reached {reached:?}, recorded {:?}", self.table_pages));
        }
        for &p in &self.table_pages {
            if self.tracker.owner(p) != Ok(Owner::Hypervisor) {
                return Err(format!("table {p} is not hypervisor-owned"));
            }
        }
        if self.gstages.keys().ne(self.tracker.vms().iter().map(|(v, _)| v)) {
            return Err("VMs with tables differ from VMs in the tracker".into());
        }
        Ok(())
    }
}

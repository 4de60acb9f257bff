//! Machine pages changing hands: moved (migration, compaction), taken back
//! from a VM, given to one, unmapped — and all of a VM's memory going back
//! to the free pool when the VM ends.
//!
//! Each operation asks [`strata_ownership::HypMemory`], which applies the
//! ownership rules (docs/hypervisor-ownership.md) and updates the G-stage
//! tables; the mappings it reports removed are then invalidated on every
//! hart by the [`crate::inval::Invalidator`], and the VM's DMA map (what
//! its host-side device models reach) follows.
//!
//! | operation | ownership | invalidated | zeroed |
//! |---|---|---|---|
//! | [`Hypervisor::migrate_page`] | new page allocated to the VM, old one released | the old page | the old page, before its next owner maps it |
//! | [`Hypervisor::reclaim_page`] | to the hypervisor | the page | before the next owner maps it ([`Hypervisor::give_page`] zeroes pending pages first) |
//! | [`Hypervisor::give_page`] | hypervisor → VM | – (nothing mapped it) | pending pages first |
//! | [`Hypervisor::unmap`] | unchanged | the page | – |
//! | retiring an ended VM | every page it owned → free; tables freed | its whole VMID (one `HFENCE.GVMA x0, vmid` a hart), and every borrower's mapping of its pages | all of them, before the next round |
//!
//! Retiring also scrubs what of the VM stays in the hypervisor itself: its
//! vCPUs' saved registers, and the registers of any hart it last ran on.

use strata_ownership::{MachinePage, Owner, Perms, PAGE_SIZE};

use crate::hart::HartOps;
use crate::ids::{HartIndex, VmIndex};
use crate::vcpu::scrub_hart;
use crate::{HypError, Hypervisor};

impl Hypervisor {
    /// Moves VM `vm`'s page at `gpa` to another machine page (what memory
    /// compaction or migration does): copies it, maps the copy, frees the
    /// old page (which awaits zeroing) and invalidates the translations of
    /// the old page on every hart.
    pub fn migrate_page(&mut self, harts: &mut [&mut dyn HartOps], vm: VmIndex, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let gpa = gpa & !(PAGE_SIZE - 1);
        let leaf = self
            .hm
            .translate(&*self.mem, id, gpa)?
            .ok_or_else(|| HypError::Config(format!("{gpa:#x} is not mapped in {vm}")))?;
        let old = MachinePage::containing(leaf.pa);
        let new = self.hm.alloc_page(&mut *self.mem, Owner::Vm(id))?;
        // The old page stops being reachable before it is copied: unmapped,
        // then invalidated on every hart (with harts on other threads, they
        // acknowledge first, `crate::shootdown`), so no store of the guest
        // can land in it after the copy. A vCPU that touches the page
        // meanwhile takes a guest-page fault, which is retried once the
        // new page is mapped (`exit.rs`).
        self.hm.unmap(&mut *self.mem, id, gpa)?;
        self.note_dma(vm, gpa, None);
        self.invalidate(harts, old, &[vm]);
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        self.mem.read(old.addr(), &mut buf).map_err(|e| HypError::Memory(e.into()))?;
        self.mem.write(new.addr(), &buf).map_err(|e| HypError::Memory(e.into()))?;
        self.hm.map(&mut *self.mem, id, gpa, new, Perms::RWX)?;
        self.note_dma(vm, gpa, Some(new.addr()));
        let _ = self.hm.donate(&mut *self.mem, Owner::Vm(id), old, Owner::Free)?;
        Ok(())
    }

    /// Invalidates the cached translations of machine page `page`, whose
    /// mappings by `vms` just changed, on every hart.
    /// A shadow-paged VM's shadow leaves reaching the page go first,
    /// through its reverse map (crate::shadow).
    pub fn invalidate(&mut self, harts: &mut [&mut dyn HartOps], page: MachinePage, vms: &[VmIndex]) {
        for &i in vms {
            if let Some(s) = self.vms.get_mut(i).and_then(|v| v.shadow.as_mut()) {
                s.page_gone(&mut *self.mem, page);
            }
        }
        let vmids: Vec<u64> = vms.iter().filter_map(|&i| self.vms.get(i)).map(|v| v.tlb_vmid()).collect();
        self.inval.page(harts, page, &vmids);
    }

    /// Collateral misses by VM name, summed over harts.
    pub fn collateral_misses(&self, harts: &[&mut dyn HartOps]) -> Vec<(String, u64)> {
        self.vms
            .values()
            .map(|vm| {
                let n = harts
                    .iter()
                    .flat_map(|h| h.collateral_misses())
                    .filter(|(vmid, _)| *vmid == vm.vmid)
                    .map(|(_, n)| n)
                    .sum();
                (vm.name.clone(), n)
            })
            .collect()
    }

    /// Takes a page back from VM `vm` (the hypervisor reclaiming memory it
    /// lent): the VM loses it, translations are invalidated, and the page
    /// is zeroed before anyone else can map it.
    pub fn reclaim_page(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        vm: VmIndex,
        gpa: u64,
    ) -> Result<MachinePage, HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let leaf = self
            .hm
            .translate(&*self.mem, id, gpa & !(PAGE_SIZE - 1))?
            .ok_or_else(|| HypError::Config(format!("{gpa:#x} is not mapped in {vm}")))?;
        let page = MachinePage::containing(leaf.pa);
        let _ = self.hm.reclaim(&mut *self.mem, Owner::Hypervisor, page)?;
        self.note_dma(vm, gpa, None);
        self.invalidate(harts, page, &[vm]);
        Ok(page)
    }

    /// Gives hypervisor-owned `page` to VM `vm` at `gpa` (which must be
    /// unmapped there).
    pub fn give_page(&mut self, vm: VmIndex, page: MachinePage, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        self.hm.zero_pending(&mut *self.mem)?;
        let _ = self.hm.donate(&mut *self.mem, Owner::Hypervisor, page, Owner::Vm(id))?;
        self.hm.map(&mut *self.mem, id, gpa, page, Perms::RWX)?;
        self.note_dma(vm, gpa, Some(page.addr()));
        Ok(())
    }

    /// Keeps the VM's DMA map (for host-side device models) in step with
    /// its G-stage mappings.
    fn note_dma(&self, vm: VmIndex, gpa: u64, pa: Option<u64>) {
        if let Some(map) = self.vms.get(vm).and_then(|v| v.dma.as_ref()) {
            map.set(gpa, pa);
        }
    }

    /// Removes VM `vm`'s mapping at `gpa` (the page stays the VM's).
    pub fn unmap(&mut self, harts: &mut [&mut dyn HartOps], vm: VmIndex, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let u = self.hm.unmap(&mut *self.mem, id, gpa)?;
        self.note_dma(vm, gpa, None);
        self.invalidate(harts, u.page, &[vm]);
        Ok(())
    }

    /// Retires every VM that has ended and is not retired yet.
    pub(crate) fn retire_ended(&mut self, harts: &mut [&mut dyn HartOps]) {
        if self.vms.values().all(|v| v.running() || v.retired) {
            return;
        }
        // A VM with a vCPU still loaded on a hart of another thread waits:
        // that hart puts it down at its next pick (its VM is not running),
        // and a later call retires it.
        let remote = |hyp: &Self, vm: VmIndex| {
            hyp.vms[vm]
                .vcpus
                .iter()
                .any(|&c| hyp.vcpus[c].loaded_on.is_some_and(|h| h.0 < harts.len() && !harts[h.0].local()))
        };
        let ended: Vec<VmIndex> = self
            .vms
            .iter()
            .filter(|(_, v)| !v.running() && !v.retired)
            .map(|(i, _)| i)
            .filter(|&i| !remote(self, i))
            .collect();
        for vm in ended {
            if let Err(e) = self.retire(harts, vm) {
                self.vms[vm].retire_error = Some(e.to_string());
            }
        }
    }

    /// Gives an ended VM's memory back to the free pool (see the module
    /// docs): its vCPUs leave their harts and the scheduler, its DMA map is
    /// emptied, every page it owned is unmapped, invalidated on every hart,
    /// zeroed and freed, with its G-stage tables.
    pub(crate) fn retire(&mut self, harts: &mut [&mut dyn HartOps], vm: VmIndex) -> Result<(), HypError> {
        debug_assert!(!self.vms[vm].running());
        for t in self.vms[vm].vcpus.clone() {
            if let Some(h) = self.vcpus[t].loaded_on {
                if h.0 < harts.len() && harts[h.0].local() {
                    self.unload(harts, h);
                }
            }
            self.sched.remove(t);
            self.vcpus[t].scrub();
        }
        for h in 0..harts.len().min(self.harts.len()) {
            let h = HartIndex(h);
            let trace = &mut self.harts[h];
            trace.last_ran.remove(&vm);
            // A hart on another thread scrubs itself before its next run
            // (`Hypervisor::before_guest`).
            if trace.residue == Some(vm) && self.sched.current(h).is_none() && harts[h.0].local() {
                scrub_hart(&mut *harts[h.0]);
                trace.residue = None;
            }
        }
        // Device models must not reach the pages from now on.
        if let Some(map) = &self.vms[vm].dma {
            map.clear();
        }
        let (id, vmid) = (self.vms[vm].id, self.vms[vm].tlb_vmid());
        if let Some(mut s) = self.vms[vm].shadow.take() {
            s.release(&mut self.hm, &mut *self.mem);
            self.vms[vm].shadow = Some(s);
        }
        let eff = self.hm.destroy_vm(&mut *self.mem, id)?;
        // Its own mappings: its whole VMID. Borrowers' mappings of its
        // pages: page by page.
        let own = eff.unmapped.iter().filter(|u| u.vm == id).count() as u64;
        self.inval.vm_gone(harts, vmid, own);
        for u in eff.unmapped.iter().filter(|u| u.vm != id) {
            let by = self.vms.values().find(|v| v.id == u.vm).map_or(0, |v| v.tlb_vmid());
            self.inval.page(harts, u.page, &[by]);
        }
        self.hm.zero_pending(&mut *self.mem)?;
        self.vms[vm].retired = true;
        Ok(())
    }
}

//! The traps of a shadow-paged VM (crate::shadow has the tables and the
//! protocol; this is what each trap does with them).
//!
//! | trap | meaning | then |
//! |---|---|---|
//! | 12, 13, 15 page fault, the guest's tables deny it | the guest's own fault | injected with the same `scause` and `stval` (Priv. §8.6.4) |
//! | 12, 13, 15, the guest's tables allow it, gpa in the VM's RAM | a shadow fault | the shadow leaf installed; the hart's stale entry for the address fenced (`HFENCE.VVMA va`) |
//! | 15 on one of the guest's page-table pages | a guest page-table write | the store or AMO emulated on guest memory, the shadow leaves the entry fed dropped |
//! | 13, 15, the guest's tables map a gpa outside its RAM | MMIO | emulated as for a guest-page fault in nested mode ([`crate::mmio::emulate_at`]) |
//! | 12 on a gpa outside its RAM | a fetch from no memory | an instruction access fault injected |
//! | 22 virtual instruction: a `satp` CSR instruction | `hstatus.VTVM` | emulated on the vCPU's virtual `satp`; the real `vsatp` points at the matching shadow root |
//! | 22: `SFENCE.VMA` | `hstatus.VTVM` | device writes to table pages drained first ([`Hypervisor::shadow_dma`]), then `HFENCE.VVMA` for the same address and ASID on this hart |
//!
//! Device writes to the guest's table pages (virtio DMA, which the
//! write-protection cannot see) are drained before every run of a vCPU of
//! the VM, at every shadow fault and every intercepted `satp` write or
//! fence: a guest that fences after its device wrote a table sees the new
//! entries, as on hardware.

use strata_arch::csr::satp;
use strata_arch::isa::{self, Op};
use strata_arch::tinst;
use strata_ownership::{MachineMemory, MachinePage, PAGE_SIZE};

use crate::hart::{cause, sstatus, Csr, HartOps};
use crate::ids::{HartIndex, VcpuIndex, VmIndex};
use crate::mmio::{self, Emulated};
use crate::shadow::{machine_addr, Access, GuestWalk, Install, Mode};
use crate::{Hypervisor, Next};

/// The page faults a shadow-paged guest does not get directly (`hedeleg`).
pub(crate) const PAGE_FAULTS: u64 = 1 << cause::INSN_PAGE | 1 << cause::LOAD_PAGE | 1 << cause::STORE_PAGE;

/// A store or AMO to a guest table page, decoded: its size, the value
/// it leaves in memory, and the register that gets the old value (an AMO's
/// rd; SC's 0 for success).
struct PtStore {
    size: usize,
    value: u64,
    old_to: Option<(u8, u64)>,
}

fn read_sized(mem: &dyn MachineMemory, pa: u64, size: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read(pa, &mut b[..size]).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Sign-extends the low `size` bytes of `v`.
fn sext(v: u64, size: usize) -> u64 {
    let shift = 64 - 8 * size as u32;
    (((v << shift) as i64) >> shift) as u64
}

impl Hypervisor {
    /// Drains VM `vm`'s log of device writes to its page-table pages: the
    /// shadow leaves made through a page a device wrote go
    /// ([`crate::shadow::ShadowVm::dma_written`]).
    pub(crate) fn shadow_dma(&mut self, vm: VmIndex) {
        if let Some(s) = self.vms[vm].shadow.as_mut() {
            s.dma_written(&mut *self.mem);
        }
    }

    /// Points hart `h`'s `vsatp` at the shadow root of vCPU `v`'s virtual
    /// `satp`; if machine memory runs out even after a resync, the VM ends.
    pub(crate) fn shadow_point(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, v: VcpuIndex) {
        let vm = self.vcpus[v].vm;
        let id = self.vcpus[v].id as usize;
        let Some(s) = self.vms[vm].shadow.as_mut() else { return };
        let resyncs = s.stats.resyncs;
        let guest = s.guest_satp(id);
        let root = s.root_for(&mut self.hm, &mut *self.mem, guest);
        let resynced = s.stats.resyncs != resyncs;
        match root {
            Some(atp) => harts[h.0].set_csr(Csr::Vsatp, atp),
            None => {
                self.vms[vm].finish(crate::vm::VmEnd::Crashed("out of machine memory for shadow tables".into()));
                return;
            }
        }
        if resynced {
            self.after_resync(harts, vm, Some(h));
        }
    }

    /// After a resync of `vm`'s shadow tables: every hart drops the
    /// translations cached under VMID 0 (shadow VMs'), and every other
    /// loaded vCPU of the VM gets its root anew.
    fn after_resync(&mut self, harts: &mut [&mut dyn HartOps], vm: VmIndex, done: Option<HartIndex>) {
        for hart in harts.iter_mut() {
            hart.hfence_gvma(None, Some(0));
        }
        for c in self.vms[vm].vcpus.clone() {
            if let Some(h) = self.vcpus[c].loaded_on.filter(|&h| Some(h) != done && h.0 < harts.len()) {
                self.shadow_point(harts, h, c);
            }
        }
    }

    /// A page fault of shadow-paged vCPU `v` on hart `h` (see the module table).
    pub(crate) fn shadow_fault(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        h: HartIndex,
        v: VcpuIndex,
        scause: u64,
    ) -> Next {
        let Some(access) = Access::of_page_fault(scause) else { return Next::Continue };
        let vm = self.vcpus[v].vm;
        let vcpu_id = self.vcpus[v].id as usize;
        let id = self.vms[vm].id;
        let (va, ss, vss) = {
            let hart = &*harts[h.0];
            (hart.csr(Csr::Stval), hart.csr(Csr::Sstatus), hart.csr(Csr::Vsstatus))
        };
        let mode = Mode { user: ss & sstatus::SPP == 0, sum: vss & sstatus::SUM != 0, mxr: vss & sstatus::MXR != 0 };
        self.shadow_dma(vm);
        let Some(s) = self.vms[vm].shadow.as_mut() else { return Next::Continue };
        let read_at = s.generation();
        let mut protect = Vec::new();
        let walk = s.walk_guest(&self.hm, &mut *self.mem, vcpu_id, va, access, mode, &mut protect);
        // Tables met for the first time are write-protected before any
        // leaf made from them is used.
        for gpa in protect {
            if let Some(pa) = machine_addr(&self.hm, &*self.mem, id, gpa) {
                let page = MachinePage::containing(pa);
                if s.write_protect(&mut *self.mem, page) > 0 {
                    for hart in harts.iter_mut() {
                        hart.invalidate_page(page.addr());
                    }
                }
            }
        }
        let (gpa_page, pte) = match walk {
            GuestWalk::Fault(c) => {
                if c == access.page_fault() {
                    s.stats.injected += 1;
                }
                self.inject(&mut *harts[h.0], v, c, va);
                return Next::Continue;
            }
            GuestWalk::Mapped { gpa_page, pte, .. } => (gpa_page, pte),
        };
        let gpa = gpa_page | (va & (PAGE_SIZE - 1));
        let Some(pa) = machine_addr(&self.hm, &*self.mem, id, gpa_page) else {
            return self.shadow_mmio(harts, h, v, access, gpa, va);
        };
        if access == Access::Store && s.is_table(gpa_page) {
            return self.shadow_pt_write(harts, h, v, gpa, pa + (va & (PAGE_SIZE - 1)), va);
        }
        let page = MachinePage::containing(pa);
        match s.install(&mut self.hm, &mut *self.mem, vcpu_id, va, pte, gpa_page, page, read_at) {
            // Installed, or overtaken (the guest retries the access).
            Install::Installed | Install::Retry => harts[h.0].hfence_vvma(Some(va), None),
            Install::NoRoom => {
                s.resync(&mut self.hm, &mut *self.mem);
                self.shadow_point(harts, h, v);
                self.after_resync(harts, vm, Some(h));
            }
        }
        Next::Continue
    }

    /// An access through the guest's tables to a gpa outside its RAM.
    fn shadow_mmio(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        h: HartIndex,
        v: VcpuIndex,
        access: Access,
        gpa: u64,
        va: u64,
    ) -> Next {
        let vm = self.vcpus[v].vm;
        let fault = Emulated::Fault { cause: access.access_fault(), tval: va };
        let outcome = if access == Access::Fetch {
            fault
        } else {
            self.vms[vm].stats.mmio_exits += 1;
            self.vcpus[v].stats.mmio += 1;
            let hart = &mut *harts[h.0];
            let pc = hart.csr(Csr::Sepc);
            match hart.read_guest_insn(pc).and_then(tinst::transform) {
                Some(t) if t.access().store == (access == Access::Store) => {
                    mmio::emulate_at(hart, &mut self.vms[vm].bus, gpa, t, fault)
                }
                _ => fault,
            }
        };
        if let Emulated::Fault { cause, tval } = outcome {
            self.inject(&mut *harts[h.0], v, cause, tval);
        }
        Next::Continue
    }

    /// A store the guest's tables allow to one of its own page-table
    /// pages: emulated on guest memory (machine address `pa`), then the
    /// shadow leaves fed by the entry written are dropped.
    fn shadow_pt_write(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        h: HartIndex,
        v: VcpuIndex,
        gpa: u64,
        pa: u64,
        va: u64,
    ) -> Next {
        let vm = self.vcpus[v].vm;
        let hart = &mut *harts[h.0];
        let pc = hart.csr(Csr::Sepc);
        let Some(raw) = hart.read_guest_insn(pc) else {
            self.inject(&mut *harts[h.0], v, cause::STORE_ACCESS, va);
            return Next::Continue;
        };
        let len = isa::insn_len(raw);
        let op: Option<PtStore> = if let Some(t) = tinst::transform(raw) {
            let acc = t.access();
            let val = if acc.fp { hart.fpr(usize::from(t.reg)) } else { hart.gpr(usize::from(t.reg)) };
            acc.store.then_some(PtStore { size: usize::from(acc.size), value: val, old_to: None })
        } else {
            let i = isa::decode(raw);
            let src = hart.gpr(usize::from(i.rs2));
            isa::amo_width(i.op).and_then(|size| {
                let old = read_sized(&*self.mem, pa, size)?;
                // SC: the reservation is taken as held (module docs of
                // crate::shadow: not done), so it stores rs2 and writes 0.
                let new = isa::amo_result(i.op, old, src);
                let rd = if matches!(i.op, Op::SC_W | Op::SC_D) { 0 } else { sext(old, size) };
                Some(PtStore { size, value: new, old_to: Some((i.rd, rd)) })
            })
        };
        let Some(PtStore { size, value: val, old_to: rd }) = op else {
            self.inject(&mut *harts[h.0], v, cause::STORE_ACCESS, va);
            return Next::Continue;
        };
        if (pa & (PAGE_SIZE - 1)) + size as u64 > PAGE_SIZE || self.mem.write(pa, &val.to_le_bytes()[..size]).is_err() {
            self.inject(&mut *harts[h.0], v, cause::STORE_ACCESS, va);
            return Next::Continue;
        }
        let hart = &mut *harts[h.0];
        if let Some((r, old)) = rd {
            hart.set_gpr(usize::from(r), old);
        }
        hart.set_csr(Csr::Sepc, pc.wrapping_add(len));
        if let Some(s) = self.vms[vm].shadow.as_mut() {
            s.pte_written(&mut *self.mem, gpa & !7);
            let last = (gpa + size as u64 - 1) & !7;
            if last != gpa & !7 {
                s.pte_written(&mut *self.mem, last);
            }
        }
        Next::Continue
    }

    /// A virtual-instruction trap of a shadow-paged vCPU: a `satp` CSR
    /// instruction or `SFENCE.VMA` (`hstatus.VTVM`). False if it is
    /// neither (the caller goes on as in nested mode).
    pub(crate) fn shadow_insn(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, v: VcpuIndex) -> bool {
        let vm = self.vcpus[v].vm;
        let vcpu_id = self.vcpus[v].id as usize;
        let hart = &mut *harts[h.0];
        let Ok(raw) = u32::try_from(hart.csr(Csr::Stval)) else { return false };
        let i = isa::decode(raw);
        if self.vms[vm].shadow.is_none() {
            return false;
        }
        self.shadow_dma(vm);
        let Some(s) = self.vms[vm].shadow.as_mut() else { return false };
        match i.op {
            Op::SFENCE_VMA => {
                s.stats.fences += 1;
                let va = (i.rs1 != 0).then(|| hart.gpr(usize::from(i.rs1)));
                // rs2 = x0: every address space; else the ASID in rs2
                // (Priv. §4.2.1), which the real vsatp carries as well.
                let asid = (i.rs2 != 0).then(|| hart.gpr(usize::from(i.rs2)) & (satp::ASID_MASK >> satp::ASID_SHIFT));
                hart.hfence_vvma(va, asid);
            }
            Op::CSRRW | Op::CSRRS | Op::CSRRC | Op::CSRRWI | Op::CSRRSI | Op::CSRRCI
                if (i.imm as u32 & 0xfff) as u16 == strata_arch::csr::addr::SATP =>
            {
                s.stats.satp += 1;
                let old = s.guest_satp(vcpu_id);
                let src = match i.op {
                    Op::CSRRWI | Op::CSRRSI | Op::CSRRCI => u64::from(i.rs1),
                    _ => hart.gpr(usize::from(i.rs1)),
                };
                // CSRRS/CSRRC with x0 (or a zero immediate) do not write.
                let new = match i.op {
                    Op::CSRRW | Op::CSRRWI => Some(src),
                    _ if i.rs1 == 0 => None,
                    Op::CSRRS | Op::CSRRSI => Some(old | src),
                    _ => Some(old & !src),
                };
                hart.set_gpr(usize::from(i.rd), old);
                if let Some(n) = new {
                    s.set_guest_satp(vcpu_id, n);
                }
                let sepc = harts[h.0].csr(Csr::Sepc);
                harts[h.0].set_csr(Csr::Sepc, sepc.wrapping_add(4));
                if new.is_some() {
                    self.shadow_point(harts, h, v);
                }
                return true;
            }
            _ => return false,
        }
        let sepc = harts[h.0].csr(Csr::Sepc);
        harts[h.0].set_csr(Csr::Sepc, sepc.wrapping_add(4));
        true
    }
}

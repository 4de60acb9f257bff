//! Strata's hypervisor: several VMs side by side in VS-mode on the
//! machine's harts.
//!
//! The hypervisor takes the place of HS-mode software and of firmware. Its
//! core talks to harts only through [`hart::HartOps`] — registers, CSRs,
//! SRET and the trap that ends a guest run, and fences — so the same core
//! could drive real hardware. It is split by concern, each concern with its
//! own handler:
//!
//! | module | concern | handler |
//! |---|---|---|
//! | [`sched`] | which vCPU runs on which hart, for how long; fairness across VMs and harts | [`sched::Scheduler`] |
//! | [`placement`] | real-time VMs: which harts they use, what else runs there (`share`, `migrate`, `dedicated`), `migrate`'s evictions and borrows | `Hypervisor::configure_placement`, `Hypervisor::rt_moves` |
//! | [`sbi`] | SBI 2.0: BASE, TIME, IPI, RFENCE, HSM, SRST, DBCN | [`sbi::serve`] |
//! | [`mmio`] | emulating device accesses from the guest-page faults they raise | [`mmio::emulate`] |
//! | [`inval`] | invalidating cached translations by physical address when a page changes hands | [`inval::Invalidator`] |
//! | [`shadow`] | shadow paging: one VM's shadow tables, built from its guest's tables and its G-stage map, write-protection, reverse map | [`shadow::ShadowVm`] |
//! | `paging` | the traps of a shadow-paged VM: page faults, `satp` and `SFENCE.VMA` (`hstatus.VTVM`), writes to the guest's page tables | `Hypervisor::shadow_fault`, `Hypervisor::shadow_insn` |
//! | [`shootdown`] | the same across harts on threads of their own: post, serve at a safe point, acknowledge | [`shootdown::Shootdown`] |
//! | `exit` | what a trap into HS-mode means: dispatch to the above, WFI, faults injected into the guest | `Hypervisor::handle_exit` |
//! | `pages` | pages changing hands: migration, reclaim, a VM's memory going back to the free pool when it ends | `Hypervisor::retire` |
//! | [`vm`], [`vcpu`] | a VM's specification, devices and end; a vCPU's state and the world switch | – |
//! | [`ids`] | typed indices for VMs, vCPUs and harts | – |
//! | [`attest`] | a VM's measurement, the core's signing key, evidence through the STRATA SBI extension | [`attest::AttestKey`] |
//!
//! Around that core:
//!
//! - **Memory** is owned through [`strata_ownership::HypMemory`]: every
//!   machine page has one owner; each VM's G-stage tables (Sv39x4, in the
//!   hardware format, in machine memory) map exactly what it owns or
//!   borrows. Host-side access to guest memory goes through
//!   [`Hypervisor::host_read`]/[`Hypervisor::host_write`], which refuse a
//!   protected VM's memory. When a VM ends, its pages are taken back,
//!   invalidated by machine address on every hart, zeroed and freed before
//!   the next round starts.
//! - **vCPUs** ([`vcpu`]) are scheduled by [`sched`]; the world switch
//!   saves and restores the VS CSRs and switches `hgatp` (VMIDs, not
//!   flushes, keep VMs' translations apart).
//! - **Devices**: each VM has its own PLIC, UART, syscon and RTC, plus the
//!   devices its [`vm::VmSpec`] describes; timer, software and external
//!   interrupts are injected through `hvip`.
//!
//! The trust boundary is described in docs/hypervisor.md.
//!
//! # A round
//!
//! [`Hypervisor::run_slice`] is one round: each hart in turn asks the
//! scheduler for a vCPU, switches it in if it is not there already, and
//! runs it until the round's budget or the vCPU's quantum is used up, or
//! the vCPU waits, stops or its VM ends (then the hart asks again). After
//! the harts: power requests are noted, ended VMs retired, and the
//! scheduler balances its queues. With the physical harts on host threads
//! of their own, [`smp::Smp::turn`] runs the same steps for one hart, with
//! the hypervisor locked only around the guest runs (docs/smp.md).

pub mod attest;
pub mod hart;
pub mod ids;
pub mod inval;
pub mod mmio;
pub mod placement;
pub mod sbi;
pub mod sched;
pub mod shadow;
pub mod shootdown;
pub mod smp;
pub mod vcpu;
pub mod vm;

mod exit;
mod pages;
mod paging;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod shadow_tests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use strata_ownership as ownership;
use strata_ownership::{HypMemory, MachineMemory, MachinePage, Owner, Perms, VmId, PAGE_SIZE};

use hart::{Csr, HartOps, TrapTo};
use ids::Table;
pub use ids::{HartIndex, VcpuIndex, VmIndex};
use inval::Invalidator;
pub use inval::{InvalStats, Policy};
pub use placement::{Placement, PlacementError};
use sched::{Ready, Scheduler};
pub use sched::{SchedParams, SchedStats};
use vcpu::{hvip, scrub_hart, HsmState, Vcpu};
use vm::{layout, Vm, VmSpec};

#[derive(Debug)]
pub enum HypError {
    /// A VM's configuration cannot be served.
    Config(String),
    /// Memory bookkeeping refused the operation.
    Memory(strata_ownership::Error),
    NoSuchVm(VmIndex),
}

impl fmt::Display for HypError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypError::Config(s) => f.write_str(s),
            HypError::Memory(e) => write!(f, "{e}"),
            HypError::NoSuchVm(i) => write!(f, "no {i}"),
        }
    }
}

impl std::error::Error for HypError {}

impl From<strata_ownership::Error> for HypError {
    fn from(e: strata_ownership::Error) -> Self {
        HypError::Memory(e)
    }
}

/// What one scheduling round did.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// Instruction slots each hart used.
    pub used: Vec<u64>,
    /// No vCPU could run on any hart.
    pub idle: bool,
}

/// What a hart holds of the vCPUs that ran on it, besides the one loaded.
#[derive(Clone, Debug, Default)]
struct HartTrace {
    /// The VM whose registers were last in the hart's register file
    /// (scrubbed when that VM is retired).
    residue: Option<VmIndex>,
    /// Per VM: its vCPU that ran on the hart last (whose translations the
    /// hart may cache under the VM's VMID).
    last_ran: std::collections::BTreeMap<VmIndex, VcpuIndex>,
}

/// What becomes of the vCPU on a hart after an exit or a run.
enum Next {
    /// Re-enter the same vCPU.
    Continue,
    /// The round's budget is used up; the vCPU stays on the hart.
    Preempted,
    /// Its quantum is over, or it yielded: ask the scheduler again (it may
    /// keep it, with no switch).
    Requeue,
    /// The vCPU cannot run for now (waits, stopped, or its VM ended).
    Off,
}

/// One hart's turn: a round of the one-thread loop, or a hart thread's
/// turn (`smp`), split around each guest run.
pub(crate) struct Turn {
    budget: u64,
    pub(crate) used: u64,
    /// A vCPU was picked.
    pub(crate) ran: bool,
    /// The vCPU that goes on without asking the scheduler again.
    cont: Option<VcpuIndex>,
    /// The slots the guest run in progress may use.
    allowed: u64,
    /// The turn is over (budget used, or nothing to run).
    done: bool,
}

impl Turn {
    pub(crate) fn new(budget: u64) -> Self {
        Turn { budget, used: 0, ran: false, cont: None, allowed: 0, done: false }
    }
}

/// Exceptions a guest handles itself (`hedeleg`): every one the
/// specification lets go on to VS-mode (misaligned, access and page faults,
/// illegal instruction, breakpoint, ecall from VU).
const HEDELEG: u64 = strata_arch::cause::VS_DELEGABLE;
/// VS-level interrupts go to the guest (`hideleg`).
const HIDELEG: u64 = strata_arch::irq::VS_LEVEL;

pub struct Hypervisor {
    mem: Box<dyn MachineMemory + Send>,
    hm: HypMemory,
    vms: Table<VmIndex, Vm>,
    vcpus: Table<VcpuIndex, Vcpu>,
    sched: Scheduler,
    inval: Invalidator,
    /// What each hart still holds of the vCPUs that ran on it.
    harts: Table<HartIndex, HartTrace>,
    next_vmid: u64,
    /// A balancing move waiting for its vCPUs to leave harts on other
    /// threads (their `moving` is set).
    moving: Option<sched::Rebalance>,
    /// Signs VMs' evidence; never leaves the core.
    attest: attest::AttestKey,
}

impl Hypervisor {
    /// A hypervisor over `pages` pages of machine memory from `base`, for
    /// `harts` harts.
    pub fn new(
        mem: Box<dyn MachineMemory + Send>,
        base: u64,
        pages: u64,
        harts: usize,
        policy: Policy,
    ) -> Result<Self, HypError> {
        if harts == 0 {
            return Err(HypError::Config("the hypervisor needs at least one hart".into()));
        }
        let first = MachinePage::from_addr(base)
            .ok_or_else(|| HypError::Config(format!("machine memory base {base:#x} is not page aligned")))?;
        let hm = HypMemory::new(first, pages, strata_ownership::GStageMode::Sv39x4)?;
        let attest = attest::AttestKey::generate()
            .map_err(|e| HypError::Config(format!("cannot make the attestation key: {e}")))?;
        Ok(Self {
            attest,
            mem,
            hm,
            vms: Table::new(),
            vcpus: Table::new(),
            sched: Scheduler::new(harts, SchedParams::default()),
            inval: Invalidator::new(policy),
            harts: Table::from_fn(harts, |_| HartTrace::default()),
            next_vmid: 1,
            moving: None,
        })
    }

    /// Replaces the scheduler's knobs, from its next decision on.
    pub fn set_sched_params(&mut self, params: SchedParams) -> Result<(), HypError> {
        if params.quantum == 0 || params.balance_every == 0 {
            return Err(HypError::Config("the quantum and the balancing interval must not be zero".into()));
        }
        self.sched.set_params(params);
        Ok(())
    }

    pub fn sched_params(&self) -> SchedParams {
        self.sched.params()
    }

    /// Prepares a hart to run guests: which traps guests handle themselves
    /// (`hedeleg`, `hideleg`).
    pub fn init_hart(hart: &mut dyn HartOps) {
        hart.set_csr(Csr::Hedeleg, HEDELEG);
        hart.set_csr(Csr::Hideleg, HIDELEG);
    }

    /// The public half of the key VMs' evidence is signed with.
    pub fn attest_public_key(&self) -> [u8; 32] {
        self.attest.public()
    }

    /// Page ownership and the G-stage tables (read-only).
    pub fn memory(&self) -> &HypMemory {
        &self.hm
    }

    /// Creates a VM: takes its memory from free machine pages, maps it in
    /// its G-stage tables, loads its images, builds its devices, and makes
    /// vCPU 0 ready to start at the entry point.
    pub fn create_vm(&mut self, spec: VmSpec) -> Result<VmIndex, HypError> {
        if spec.vcpus == 0 || spec.vcpus > 8 {
            return Err(HypError::Config(format!("VM {}: {} vCPUs; 1 to 8 are supported", spec.name, spec.vcpus)));
        }
        if spec.memory < 16 << 20 || spec.memory % PAGE_SIZE != 0 {
            return Err(HypError::Config(format!(
                "VM {}: memory must be at least 16 MiB and a whole number of 4 KiB pages",
                spec.name
            )));
        }
        if self.next_vmid >= 1 << 14 {
            return Err(HypError::Config("out of VMIDs".into()));
        }
        let index = self.vms.next_index();
        let id = VmId(index.0 as u32 + 1);
        let pages = spec.memory / PAGE_SIZE;
        let free = self.hm.tracker().owned_by(Owner::Free).len() as u64;
        if pages > free {
            return Err(HypError::Config(format!(
                "VM {} wants {} MiB but only {} MiB of machine memory is free",
                spec.name,
                spec.memory >> 20,
                (free * PAGE_SIZE) >> 20
            )));
        }
        self.hm.create_vm(&mut *self.mem, id, spec.protected)?;
        let built = self.populate(id, &spec).and_then(|first| {
            let vmid = self.next_vmid;
            // Shadow paging runs the guest with hgatp Bare: the hart walks
            // the shadow tables alone (paging.rs). The G-stage tables are
            // still built: they are the VM's guest-physical map.
            let hgatp = match spec.paging {
                vm::Paging::Nested => self.hm.hgatp(id, vmid as u16)?,
                vm::Paging::Shadow => 0,
            };
            let first_vcpu = self.vcpus.next_index().0;
            let vcpu_ids = (0..spec.vcpus as usize).map(|k| VcpuIndex(first_vcpu + k)).collect();
            let (entry, dtb) = (spec.entry, spec.dtb);
            let vm = Vm::build(spec, id, vmid, hgatp, first.addr(), vcpu_ids).map_err(HypError::Config)?;
            Ok((vm, entry, dtb))
        });
        let (vm, entry, dtb) = match built {
            Ok(b) => b,
            Err(e) => {
                let _ = self.hm.destroy_vm(&mut *self.mem, id);
                let _ = self.hm.zero_pending(&mut *self.mem);
                return Err(e);
            }
        };
        self.next_vmid += 1;
        for k in 0..vm.vcpus.len() as u64 {
            let mut c = Vcpu::new(index, k);
            c.shadow = vm.shadow.is_some();
            if k == 0 {
                c.reset(entry, dtb);
                c.hsm = HsmState::Started;
            }
            self.vcpus.push(c);
            self.sched.add();
        }
        self.vms.push(vm);
        Ok(index)
    }

    /// Gives VM `id` its memory, mapped at `RAM_BASE`, and loads its images.
    fn populate(&mut self, id: VmId, spec: &VmSpec) -> Result<MachinePage, HypError> {
        let pages = spec.memory / PAGE_SIZE;
        let first = self.hm.alloc_run(&mut *self.mem, pages, Owner::Vm(id))?;
        for i in 0..pages {
            let page = MachinePage::from_pfn(first.pfn() + i);
            self.hm.map(&mut *self.mem, id, layout::RAM_BASE + i * PAGE_SIZE, page, Perms::RWX)?;
        }
        for (gpa, bytes) in &spec.segments {
            let end = gpa.checked_add(bytes.len() as u64);
            if *gpa < layout::RAM_BASE || end.is_none_or(|e| e > layout::RAM_BASE + spec.memory) {
                return Err(HypError::Config(format!(
                    "VM {}: an image at {gpa:#x}+{:#x} does not fit its {} MiB of memory",
                    spec.name,
                    bytes.len(),
                    spec.memory >> 20
                )));
            }
            self.guest_write(id, *gpa, bytes)?;
        }
        Ok(first)
    }

    /// The machine address behind `vm`'s guest-physical `gpa`, as its
    /// G-stage tables say.
    fn guest_pa(&self, id: VmId, gpa: u64) -> Option<u64> {
        let leaf = self.hm.translate(&*self.mem, id, gpa).ok()??;
        Some(leaf.pa + (gpa & (PAGE_SIZE - 1)))
    }

    /// Checks that the ownership bookkeeping and every VM's G-stage tables
    /// agree (see `HypMemory::check`), and the scheduler's invariants.
    pub fn check_memory(&self) -> Result<(), String> {
        self.hm.check(&*self.mem)?;
        for vm in self.vms.values().filter(|v| !v.retired) {
            if let Some(s) = &vm.shadow {
                s.check(&self.hm, &*self.mem).map_err(|e| format!("VM {}: {e}", vm.name))?;
            }
        }
        self.sched.check()
    }

    /// The machine address VM `vm`'s G-stage tables map at `gpa`, if any.
    pub fn translate(&self, vm: VmIndex, gpa: u64) -> Option<u64> {
        self.guest_pa(self.vms.get(vm)?.id, gpa)
    }

    /// The hypervisor's own access to guest memory (loading images, SBI
    /// calls that pass buffers). Part of the trusted core: it reaches
    /// protected VMs too. Everything else uses `host_read`/`host_write`.
    /// Into a shadow-paged guest's own page tables, a write is a store to
    /// each entry it covers: the shadow leaves those entries fed go
    /// (crate::shadow; a protected VM has no DMA log to carry it).
    fn guest_write(&mut self, id: VmId, gpa: u64, data: &[u8]) -> Result<(), HypError> {
        let mut done = 0;
        while done < data.len() {
            let cur = gpa + done as u64;
            let n = ((PAGE_SIZE - (cur % PAGE_SIZE)) as usize).min(data.len() - done);
            let pa = self.guest_pa(id, cur).ok_or_else(|| HypError::Config(format!("{cur:#x} is not mapped")))?;
            self.mem
                .write(pa, &data[done..done + n])
                .map_err(|e| HypError::Memory(strata_ownership::Error::Memory(e)))?;
            done += n;
        }
        if let Some(s) = self.vms.values_mut().find(|v| v.id == id).and_then(|v| v.shadow.as_mut()) {
            for pte in ((gpa & !7)..gpa + data.len() as u64).step_by(8) {
                if s.is_table(pte) {
                    s.pte_written(&mut *self.mem, pte);
                }
            }
        }
        Ok(())
    }

    fn guest_read(&self, id: VmId, gpa: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let Some(cur) = gpa.checked_add(done as u64) else { return false };
            let n = ((PAGE_SIZE - (cur % PAGE_SIZE)) as usize).min(buf.len() - done);
            let Some(pa) = self.guest_pa(id, cur) else { return false };
            if self.mem.read(pa, &mut buf[done..done + n]).is_err() {
                return false;
            }
            done += n;
        }
        true
    }

    /// The one guest-memory read interface for everything outside the
    /// hypervisor's core (tests, and later the control API, snapshots, the
    /// debugger, introspection). Refuses a protected VM's memory.
    pub fn host_read(&self, vm: VmIndex, gpa: u64, buf: &mut [u8]) -> Result<(), HypError> {
        let v = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?;
        Ok(self.hm.host_read(&*self.mem, v.id, gpa, buf)?)
    }

    /// The guest-memory write interface; refuses like [`host_read`](Self::host_read).
    pub fn host_write(&mut self, vm: VmIndex, gpa: u64, data: &[u8]) -> Result<(), HypError> {
        let v = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?;
        self.hm.host_write(&mut *self.mem, v.id, gpa, data)?;
        // Like a device's write: into a shadow-paged guest's table page,
        // it must drop the shadow leaves made through it (crate::shadow).
        if let Some(d) = &v.dma {
            d.wrote(gpa, data.len() as u64);
        }
        Ok(())
    }

    // ---- what the platform reads ------------------------------------------

    /// Ends VM `vm` for `end`, unless it has ended already: its vCPUs are
    /// not scheduled again, and it is retired (its memory scrubbed) at the
    /// end of the round, as any VM that ends (the platform stops a VM whose
    /// vCPU makes no progress this way).
    pub fn end_vm(&mut self, vm: VmIndex, end: vm::VmEnd) {
        if let Some(v) = self.vms.get_mut(vm) {
            v.finish(end);
        }
    }

    /// VM `vm`, if there is one.
    pub fn vm(&self, vm: VmIndex) -> Option<&Vm> {
        self.vms.get(vm)
    }

    /// Every VM, in creation order.
    pub fn vms(&self) -> impl Iterator<Item = (VmIndex, &Vm)> {
        self.vms.iter()
    }

    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    /// The VM running under hardware VMID `vmid`.
    pub fn vm_by_vmid(&self, vmid: u64) -> Option<VmIndex> {
        self.vms.iter().find(|(_, v)| v.vmid == vmid).map(|(i, _)| i)
    }

    /// VM `vm`'s vCPUs, by vCPU id.
    pub fn vcpus_of(&self, vm: VmIndex) -> impl Iterator<Item = &Vcpu> {
        self.vms.get(vm).into_iter().flat_map(|v| v.vcpus.iter().map(|&c| &self.vcpus[c]))
    }

    /// Instruction slots VM `vm`'s vCPUs have run, together.
    pub fn vm_slots(&self, vm: VmIndex) -> u64 {
        self.vcpus_of(vm).map(|c| c.stats.slots).sum()
    }

    pub fn policy(&self) -> Policy {
        self.inval.policy()
    }

    pub fn inval_stats(&self) -> &InvalStats {
        self.inval.stats()
    }

    pub fn sched_stats(&self) -> SchedStats {
        self.sched.stats()
    }

    /// The hart whose queue vCPU `v` is in now.
    pub fn hart_of(&self, v: VcpuIndex) -> Option<HartIndex> {
        (v.0 < self.vcpus.len()).then(|| self.sched.hart_of(v))
    }

    pub fn all_ended(&self) -> bool {
        self.vms.values().all(|v| !v.running())
    }

    /// When every vCPU waits: the earliest time a timer wakes one.
    pub fn next_deadline(&self) -> Option<u64> {
        self.vcpus.values().filter(|c| self.vms[c.vm].running() && c.waiting).filter_map(|c| c.timer).min()
    }

    /// The earliest timer of a waiting vCPU in hart `h`'s queue.
    pub fn next_deadline_on(&self, h: HartIndex) -> Option<u64> {
        let c = |&v: &VcpuIndex| &self.vcpus[v];
        self.sched
            .queue(h)
            .iter()
            .map(c)
            .filter(|c| self.vms[c.vm].running() && c.waiting)
            .filter_map(|c| c.timer)
            .min()
    }

    /// The harts with no vCPU loaded and one ready in their queue at
    /// `now` (with harts on threads: the ones to wake).
    pub fn harts_with_work(&self, now: u64) -> Vec<HartIndex> {
        self.harts
            .iter()
            .map(|(h, _)| h)
            .filter(|&h| self.sched.current(h).is_none())
            .filter(|&h| self.sched.queue(h).iter().any(|&v| ready_now(&self.vms, &self.vcpus, v, now)))
            .collect()
    }

    /// The earliest RTC alarm of any running VM, in nanoseconds from now.
    pub fn rtc_alarm_in_ns(&self) -> Option<u64> {
        self.vms.values().filter(|v| v.running()).filter_map(|v| v.rtc_alarm_in_ns()).min()
    }

    /// Lets the VMs' RTCs raise their alarms.
    pub fn update_devices(&self) {
        for vm in self.vms.values().filter(|v| v.running()) {
            vm.update_rtc();
        }
    }

    /// Feeds a byte to VM `vm`'s UART; false if its receive FIFO is full.
    pub fn console_input(&self, vm: VmIndex, b: u8) -> bool {
        self.vms.get(vm).is_some_and(|v| v.push_console_input(b))
    }

    // ---- running -----------------------------------------------------------

    /// Runs one scheduling round: each hart runs vCPUs for up to `budget`
    /// instruction slots; then VMs that ended are retired and the
    /// scheduler balances its queues.
    pub fn run_slice(&mut self, harts: &mut [&mut dyn HartOps], budget: u64) -> Slice {
        let mut s = Slice { used: vec![0; harts.len()], idle: true };
        for h in 0..harts.len().min(self.harts.len()) {
            let (used, ran) = self.run_hart(harts, HartIndex(h), budget);
            s.used[h] = used;
            if ran {
                s.idle = false;
            }
        }
        self.end_turn(harts);
        s
    }

    /// What ends a round (and, with harts on threads of their own, every
    /// hart's turn, `smp`): power requests noted, ended VMs retired, the
    /// scheduler's balancing.
    pub(crate) fn end_turn(&mut self, harts: &mut [&mut dyn HartOps]) {
        for vm in self.vms.values_mut() {
            vm.poll_power();
        }
        self.retire_ended(harts);
        if let Some(now) = harts.first().map(|h| h.time()) {
            self.balance(harts, now);
        }
    }

    /// The scheduler's balancing pass, if one is due; a move whose vCPUs
    /// are loaded on harts this thread cannot reach waits (its vCPUs are
    /// not ready meanwhile, so their harts put them down at their next
    /// pick) and is applied by a later call.
    fn balance(&mut self, harts: &mut [&mut dyn HartOps], now: u64) {
        let plan = match self.moving.take() {
            Some(p) => p,
            None => {
                let (vms, vcpus) = (&self.vms, &self.vcpus);
                match self.sched.end_round(&|v| ready_now(vms, vcpus, v, now)) {
                    Some(p) => p,
                    None => return,
                }
            }
        };
        // A vCPU retired meanwhile: the plan is stale.
        if plan.vcpus().iter().any(|&v| self.vms[self.vcpus[v].vm].retired) {
            for v in plan.vcpus() {
                self.vcpus[v].moving = false;
            }
            return;
        }
        let mut waiting = false;
        for v in plan.vcpus() {
            if let Some(h) = self.vcpus[v].loaded_on.filter(|h| h.0 < harts.len()) {
                if harts[h.0].local() {
                    self.unload(harts, h);
                } else {
                    waiting = true;
                }
            }
        }
        for v in plan.vcpus() {
            self.vcpus[v].moving = waiting;
        }
        if waiting {
            self.moving = Some(plan);
        } else {
            self.sched.apply(plan);
        }
    }

    /// Runs hart `h` for one round. Returns the slots used and whether any
    /// vCPU ran.
    fn run_hart(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, budget: u64) -> (u64, bool) {
        let mut turn = Turn::new(budget);
        while let Some((v, allowed)) = self.before_guest(harts, h, &mut turn) {
            let (n, to) = harts[h.0].run_guest(allowed);
            self.after_guest(harts, h, v, n, to, &mut turn);
        }
        (turn.used, turn.ran)
    }

    /// The part of a hart's turn before guest code runs: picks a vCPU
    /// (unless the last one goes on), switches it in, brings its
    /// interrupts up to date. Returns the vCPU and the slots it may run,
    /// or `None` when the turn is over.
    pub(crate) fn before_guest(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        h: HartIndex,
        turn: &mut Turn,
    ) -> Option<(VcpuIndex, u64)> {
        if turn.done || turn.used >= turn.budget {
            return None;
        }
        // What of a retired VM is left in this hart's registers (another
        // thread retired it while this hart was elsewhere) goes first.
        if let Some(vm) = self.harts[h].residue {
            if self.vms[vm].retired && self.sched.current(h).is_none() {
                scrub_hart(&mut *harts[h.0]);
                self.harts[h].residue = None;
            }
        }
        if self.sched.placement() == Placement::Migrate && self.sched.is_rt_hart(h) {
            let now = harts[h.0].time();
            self.rt_moves(harts, h, now);
            // The vCPU that was to go on may have been evicted.
            if turn.cont.is_some_and(|c| self.sched.current(h) != Some(c)) {
                turn.cont = None;
            }
        }
        let v = match turn.cont.take() {
            Some(v) => v,
            None => {
                let now = harts[h.0].time();
                let picked = {
                    let (vms, vcpus) = (&self.vms, &mut self.vcpus);
                    self.sched.pick(h, &mut |v| readiness(vms, vcpus, v, now))
                };
                let Some(v) = picked else {
                    self.unload(harts, h);
                    turn.done = true;
                    return None;
                };
                turn.ran = true;
                if self.sched.current(h) != Some(v) {
                    self.unload(harts, h);
                    self.load(harts, h, v);
                }
                v
            }
        };
        // What devices wrote into a shadow-paged guest's tables is seen
        // before its code runs (crate::shadow, "a device writes ...").
        if self.vcpus[v].shadow {
            self.shadow_dma(self.vcpus[v].vm);
        }
        self.sync_irqs(&mut *harts[h.0], v);
        turn.allowed = (turn.budget - turn.used).min(self.sched.quantum_left(h));
        Some((v, turn.allowed))
    }

    /// The part after: charges the `n` slots vCPU `v` ran, handles the
    /// trap that ended its run (`to`), and decides what comes next.
    pub(crate) fn after_guest(
        &mut self,
        harts: &mut [&mut dyn HartOps],
        h: HartIndex,
        v: VcpuIndex,
        n: u64,
        to: Option<TrapTo>,
        turn: &mut Turn,
    ) {
        let allowed = turn.allowed;
        turn.used += n;
        self.sched.charge(h, v, n);
        if self.sched.is_rt_hart(h) && !self.sched.is_rt(v) {
            let now = harts[h.0].time();
            let (vms, vcpus) = (&self.vms, &self.vcpus);
            if self.sched.queue(h).iter().any(|&r| self.sched.is_rt(r) && ready_now(vms, vcpus, r, now)) {
                self.sched.note_rt_wait(h, n);
            }
        }
        self.vcpus[v].stats.slots += n;
        let next = match to {
            // The guest is still running: its quantum is over, or the
            // round's budget, or it gave the hart back early.
            None if n >= allowed && turn.used < turn.budget => Next::Requeue,
            // A spin-wait: another vCPU of the queue gets the hart at the
            // next pick (pause-loop exiting), and the turn ends, so the
            // thread can give up its host CPU too.
            None if harts[h.0].run_paused() => {
                self.sched.spin_yield(h);
                Next::Preempted
            }
            None => Next::Preempted,
            Some(TrapTo::M) => {
                self.vcpus[v].stats.exits += 1;
                let cause = harts[h.0].csr(Csr::Scause);
                self.vms[self.vcpus[v].vm]
                    .finish(vm::VmEnd::Crashed(format!("a trap went to M-mode (scause {cause:#x})")));
                Next::Off
            }
            Some(TrapTo::Hs) => {
                self.vcpus[v].stats.exits += 1;
                self.handle_exit(harts, h, v)
            }
        };
        let next = match next {
            Next::Continue if turn.used >= turn.budget => Next::Preempted,
            Next::Continue if self.sched.quantum_over(h) => Next::Requeue,
            Next::Continue if !self.vcpus[v].moving => {
                turn.cont = Some(v);
                return;
            }
            Next::Continue => Next::Requeue,
            other => other,
        };
        match next {
            Next::Off => self.unload(harts, h),
            Next::Requeue | Next::Continue => {}
            Next::Preempted => turn.done = true,
        }
    }

    /// Takes the current vCPU off hart `h`, saving its state.
    fn unload(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex) {
        if let Some(old) = self.sched.current(h) {
            harts[h.0].preempt();
            self.vcpus[old].stats.preemptions += 1;
            self.vcpus[old].switch_out(&mut *harts[h.0]);
            self.sched.set_current(h, None);
        }
    }

    /// Puts vCPU `v` on hart `h` (which has none loaded).
    ///
    /// A hart's cached VS-stage translations are tagged by VMID, which all
    /// vCPUs of a VM share, and a guest's SFENCE.VMA is local to the hart
    /// it runs on. So when `v` last ran on another hart (it has moved, and
    /// may have fenced there), or another vCPU of its VM ran on `h` since
    /// `v` did, `h` may hold translations that `v`'s own fences were to
    /// drop, or that are not `v`'s: they go first (`HFENCE.GVMA x0, vmid`,
    /// as KVM does when a vCPU changes host CPU).
    fn load(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, v: VcpuIndex) {
        let vm = self.vcpus[v].vm;
        let (hgatp, vmid) = (self.vms[vm].hgatp, self.vms[vm].tlb_vmid());
        let shadow = self.vms[vm].shadow.is_some();
        // A shadow-paged guest's page faults are the hypervisor's first.
        harts[h.0].set_csr(Csr::Hedeleg, if shadow { HEDELEG & !paging::PAGE_FAULTS } else { HEDELEG });
        let stale = self.vcpus[v].last_hart != Some(h) || self.harts[h].last_ran.get(&vm) != Some(&v);
        let t0 = self.vcpus[v].move_ns.is_some().then(std::time::Instant::now);
        self.vcpus[v].switch_in(&mut *harts[h.0], hgatp, h);
        if shadow {
            self.shadow_point(harts, h, v);
        }
        if stale {
            harts[h.0].hfence_gvma(None, Some(vmid));
        }
        if let Some(t0) = t0 {
            self.moved_in(v, t0.elapsed().as_nanos() as u64);
        }
        let trace = &mut self.harts[h];
        trace.last_ran.insert(vm, v);
        trace.residue = Some(vm);
        self.vcpus[v].last_hart = Some(h);
        self.sched.set_current(h, Some(v));
    }

    /// Brings `hvip` on the hart up to date for vCPU `v`: VSTIP from its
    /// timer, VSEIP from its PLIC context, VSSIP from IPIs sent to it.
    fn sync_irqs(&mut self, hart: &mut dyn HartOps, v: VcpuIndex) {
        let now = hart.time();
        let c = &mut self.vcpus[v];
        let vm = &self.vms[c.vm];
        let mut hv = hart.csr(Csr::Hvip) & !(hvip::VSTIP | hvip::VSEIP);
        if c.timer.is_some_and(|t| now >= t) {
            hv |= hvip::VSTIP;
        }
        if vm.vseip(c.id) {
            hv |= hvip::VSEIP;
        }
        if std::mem::take(&mut c.ipi) {
            hv |= hvip::VSSIP;
        }
        hart.set_csr(Csr::Hvip, hv);
    }
}

/// The interrupts a vCPU off its hart has pending now (`hvip` bits), from
/// its timer, its PLIC context and IPIs sent to it.
fn pending_now(vm: &Vm, c: &Vcpu, now: u64) -> u64 {
    let mut hv = c.hvip;
    if c.timer.is_some_and(|t| now >= t) {
        hv |= hvip::VSTIP;
    }
    if vm.vseip(c.id) {
        hv |= hvip::VSEIP;
    }
    if c.ipi {
        hv |= hvip::VSSIP;
    }
    hv
}

/// Whether vCPU `v` can run at `now`, for the scheduler: brings a waiting
/// vCPU's interrupt state up to date, wakes it if an interrupt it enabled
/// is pending, and starts a vCPU whose HSM start is pending.
fn readiness(vms: &Table<VmIndex, Vm>, vcpus: &mut Table<VcpuIndex, Vcpu>, v: VcpuIndex, now: u64) -> Ready {
    let c = &mut vcpus[v];
    let vm = &vms[c.vm];
    if !vm.running() || c.moving {
        return Ready::No;
    }
    let mut woke = false;
    if c.hsm == HsmState::StartPending {
        c.hsm = HsmState::Started;
        woke = true;
    }
    if !matches!(c.hsm, HsmState::Started | HsmState::Suspended) {
        return Ready::No;
    }
    if c.waiting {
        c.hvip = pending_now(vm, c, now);
        if !c.wakeup_pending() {
            return Ready::No;
        }
        c.waiting = false;
        if c.hsm == HsmState::Suspended {
            c.hsm = HsmState::Started;
        }
        woke = true;
    }
    if woke {
        Ready::Woke
    } else {
        Ready::Yes
    }
}

/// [`readiness`] without changing anything (for balancing).
fn ready_now(vms: &Table<VmIndex, Vm>, vcpus: &Table<VcpuIndex, Vcpu>, v: VcpuIndex, now: u64) -> bool {
    let c = &vcpus[v];
    let vm = &vms[c.vm];
    if !vm.running() || c.moving {
        return false;
    }
    match c.hsm {
        HsmState::StartPending => true,
        HsmState::Stopped => false,
        HsmState::Started | HsmState::Suspended => !c.waiting || (pending_now(vm, c, now) >> 1) & c.vsie() != 0,
    }
}

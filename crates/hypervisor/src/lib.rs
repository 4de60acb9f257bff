//! Strata's hypervisor: several VMs side by side in VS-mode on the
//! machine's harts.
//!
//! The hypervisor takes the place of HS-mode software and of firmware. Its
//! core talks to harts only through [`hart::HartOps`] — registers, CSRs,
//! SRET and the trap that ends a guest run, and fences — so the same core
//! could drive real hardware. Around that core:
//!
//! - **Memory** is owned through [`strata_ownership::HypMemory`]: every
//!   machine page has one owner; each VM's G-stage tables (Sv39x4, in the
//!   hardware format, in machine memory) map exactly what it owns or
//!   borrows. Host-side access to guest memory goes through
//!   [`Hypervisor::host_read`]/[`Hypervisor::host_write`], which refuse a
//!   protected VM's memory.
//! - **vCPUs** ([`vcpu`]) are scheduled round-robin onto harts; the world
//!   switch saves and restores the VS CSRs and switches `hgatp` (VMIDs,
//!   not flushes, keep VMs' translations apart).
//! - **SBI 2.0** ([`sbi`]): BASE, TIME, IPI, RFENCE, HSM, SRST, DBCN.
//! - **Devices**: each VM has its own PLIC, UART, syscon and RTC, emulated
//!   from the guest-page faults its MMIO accesses raise ([`mmio`]); timer,
//!   software and external interrupts are injected through `hvip`.
//! - **Invalidation by physical address**: when a machine page changes
//!   hands, [`Policy::Pa`] drops exactly the cached translations that reach
//!   it, in every VMID and ASID; [`Policy::Vmid`] and [`Policy::All`] are
//!   the coarse alternatives, kept for comparison, and the collateral they
//!   cause is counted.
//!
//! The trust boundary is described in docs/hypervisor.md.

pub mod hart;
pub mod mmio;
pub mod sbi;
pub mod vcpu;
pub mod vm;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use strata_ownership as ownership;
use strata_ownership::{HypMemory, MachineMemory, MachinePage, Owner, Perms, VmId, PAGE_SIZE};

use hart::{Csr, HartOps, TrapTo};
use vcpu::{hvip, HsmState, Vcpu};
use vm::{layout, Vm, VmEnd, VmSpec};

/// How the hypervisor invalidates cached translations when a machine page
/// changes hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Exactly the translations that reach the page (the default).
    Pa,
    /// Every translation of the VMs involved.
    Vmid,
    /// Every translation of every address space.
    All,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pa" => Ok(Policy::Pa),
            "vmid" => Ok(Policy::Vmid),
            "all" => Ok(Policy::All),
            _ => Err(format!("unknown invalidation policy '{s}' (pa, vmid or all)")),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Pa => "pa",
            Policy::Vmid => "vmid",
            Policy::All => "all",
        })
    }
}

#[derive(Debug)]
pub enum HypError {
    /// A VM's configuration cannot be served.
    Config(String),
    /// Memory bookkeeping refused the operation.
    Memory(strata_ownership::Error),
    NoSuchVm(usize),
}

impl fmt::Display for HypError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HypError::Config(s) => f.write_str(s),
            HypError::Memory(e) => write!(f, "{e}"),
            HypError::NoSuchVm(i) => write!(f, "no VM number {i}"),
        }
    }
}

impl std::error::Error for HypError {}

impl From<strata_ownership::Error> for HypError {
    fn from(e: strata_ownership::Error) -> Self {
        HypError::Memory(e)
    }
}

/// Invalidation counters (see [`Policy`]).
#[derive(Clone, Debug, Default)]
pub struct InvalStats {
    /// Pages whose change of hands was invalidated.
    pub invalidations: u64,
    /// Cached translations dropped, over all harts.
    pub dropped: u64,
    /// Of those, dropped although they did not reach the page.
    pub collateral_dropped: u64,
}

/// What one scheduling round did.
#[derive(Clone, Debug, Default)]
pub struct Slice {
    /// Instruction slots each hart used.
    pub used: Vec<u64>,
    /// No vCPU could run on any hart.
    pub idle: bool,
}

/// Exit reasons as the scheduler sees them.
enum Next {
    /// Re-enter the same vCPU.
    Continue,
    /// The slice ended (preemption).
    Preempted,
    /// The vCPU cannot run for now (waits, stopped, or its VM ended).
    Off,
}

const CAUSE_INTERRUPT: u64 = 1 << 63;
const ECALL_VS: u64 = 10;
const INSN_GUEST_PAGE: u64 = 20;
const LOAD_GUEST_PAGE: u64 = 21;
const VIRTUAL_INSN: u64 = 22;
const STORE_GUEST_PAGE: u64 = 23;
const INSN_ACCESS: u64 = 1;
const ILLEGAL_INSN: u64 = 2;
const LOAD_ACCESS: u64 = 5;
const STORE_ACCESS: u64 = 7;
const WFI: u64 = 0x1050_0073;
const SSTATUS_SPP: u64 = 1 << 8;
const SSTATUS_SIE: u64 = 1 << 1;
const SSTATUS_SPIE: u64 = 1 << 5;
/// Exceptions a guest handles itself (`hedeleg`): misaligned, access and
/// page faults, illegal instruction, breakpoint, ecall from VU.
const HEDELEG: u64 = 0b1011_0001_1111_1111;
/// VS-level interrupts go to the guest (`hideleg`).
const HIDELEG: u64 = hvip::VSSIP | hvip::VSTIP | hvip::VSEIP;

type SharedSink = Arc<Mutex<strata_devices::uart::UartSink>>;

pub struct Hypervisor {
    mem: Box<dyn MachineMemory + Send>,
    hm: HypMemory,
    pub vms: Vec<Vm>,
    pub vcpus: Vec<Vcpu>,
    consoles: Vec<SharedSink>,
    /// Per hart: the vCPUs it runs (round-robin), whose turn is next, and
    /// which vCPU's state is on it now.
    assigned: Vec<Vec<usize>>,
    turn: Vec<usize>,
    loaded: Vec<Option<usize>>,
    /// Per vCPU: an IPI waiting to be injected when it next enters.
    ipi: Vec<bool>,
    next_vmid: u64,
    pub policy: Policy,
    pub inval: InvalStats,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        Ok(Self {
            mem,
            hm,
            vms: Vec::new(),
            vcpus: Vec::new(),
            consoles: Vec::new(),
            assigned: vec![Vec::new(); harts],
            turn: vec![0; harts],
            loaded: vec![None; harts],
            ipi: Vec::new(),
            next_vmid: 1,
            policy,
            inval: InvalStats::default(),
        })
    }

    /// Prepares a hart to run guests: which traps guests handle themselves
    /// (`hedeleg`, `hideleg`).
    pub fn init_hart(hart: &mut dyn HartOps) {
        hart.set_csr(Csr::Hedeleg, HEDELEG);
        hart.set_csr(Csr::Hideleg, HIDELEG);
    }

    /// Page ownership and the G-stage tables (read-only).
    pub fn memory(&self) -> &HypMemory {
        &self.hm
    }

    /// Creates a VM: takes its memory from free machine pages, maps it in
    /// its G-stage tables, loads its images, builds its devices, and makes
    /// vCPU 0 ready to start at the entry point. Returns the VM's index.
    pub fn create_vm(&mut self, spec: VmSpec) -> Result<usize, HypError> {
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
        let index = self.vms.len();
        let id = VmId(index as u32 + 1);
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
        let built = self.populate(id, &spec);
        let first = match built {
            Ok(first) => first,
            Err(e) => {
                let _ = self.hm.destroy_vm(&mut *self.mem, id);
                return Err(e);
            }
        };
        let vmid = self.next_vmid;
        self.next_vmid += 1;
        let hgatp = self.hm.hgatp(id, vmid as u16)?;
        let sink: SharedSink = Arc::new(Mutex::new(spec.console));
        let uart_sink = {
            let s = sink.clone();
            Box::new(move |b: u8| (lock(&s))(b)) as strata_devices::uart::UartSink
        };
        let (bus, plic, vseip, uart, rtc, power) =
            Vm::devices(spec.vcpus, uart_sink, spec.clock).map_err(HypError::Config)?;
        let mut vcpu_ids = Vec::new();
        for v in 0..spec.vcpus as u64 {
            let mut c = Vcpu::new(index, v);
            if v == 0 {
                c.reset(spec.entry, spec.dtb);
                c.hsm = HsmState::Started;
            }
            let k = self.vcpus.len();
            let harts = self.assigned.len();
            self.assigned[k % harts].push(k);
            self.vcpus.push(c);
            self.ipi.push(false);
            vcpu_ids.push(k);
        }
        self.consoles.push(sink);
        self.vms.push(Vm {
            name: spec.name,
            id,
            vmid,
            protected: spec.protected,
            ram_size: spec.memory,
            ram_first: first,
            hgatp,
            bus,
            plic,
            vseip,
            uart,
            rtc,
            power,
            vcpus: vcpu_ids,
            dma: (!spec.protected).then(|| {
                let map = Arc::new(vm::DmaMap::new(spec.memory));
                for i in 0..spec.memory / PAGE_SIZE {
                    map.set(layout::RAM_BASE + i * PAGE_SIZE, Some((first.pfn() + i) * PAGE_SIZE));
                }
                map
            }),
            end: None,
            stats: Default::default(),
        });
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
    /// agree (see `HypMemory::check`).
    pub fn check_memory(&self) -> Result<(), String> {
        self.hm.check(&*self.mem)
    }

    /// The machine address VM `vm`'s G-stage tables map at `gpa`, if any.
    pub fn translate(&self, vm: usize, gpa: u64) -> Option<u64> {
        self.guest_pa(self.vms.get(vm)?.id, gpa)
    }

    /// The hypervisor's own access to guest memory (loading images, SBI
    /// calls that pass buffers). Part of the trusted core: it reaches
    /// protected VMs too. Everything else uses `host_read`/`host_write`.
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
    pub fn host_read(&self, vm: usize, gpa: u64, buf: &mut [u8]) -> Result<(), HypError> {
        let v = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?;
        Ok(self.hm.host_read(&*self.mem, v.id, gpa, buf)?)
    }

    /// The guest-memory write interface; refuses like [`host_read`](Self::host_read).
    pub fn host_write(&mut self, vm: usize, gpa: u64, data: &[u8]) -> Result<(), HypError> {
        let v = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?;
        Ok(self.hm.host_write(&mut *self.mem, v.id, gpa, data)?)
    }

    pub fn all_ended(&self) -> bool {
        self.vms.iter().all(|v| !v.running())
    }

    /// Runs one scheduling round: each hart runs its vCPUs for up to
    /// `budget` instruction slots.
    pub fn run_slice(&mut self, harts: &mut [&mut dyn HartOps], budget: u64) -> Slice {
        let mut s = Slice { used: vec![0; harts.len()], idle: true };
        for h in 0..harts.len().min(self.assigned.len()) {
            let (used, ran) = self.run_hart(harts, h, budget);
            s.used[h] = used;
            if ran {
                s.idle = false;
            }
        }
        for vm in &mut self.vms {
            vm.poll_power();
        }
        s
    }

    fn runnable(&mut self, v: usize, now: u64) -> bool {
        let vm = &self.vms[self.vcpus[v].vm];
        if !vm.running() {
            return false;
        }
        let line = vm.vseip.get(self.vcpus[v].id as usize).is_some_and(|l| l.load(Ordering::Relaxed));
        let c = &mut self.vcpus[v];
        if c.hsm == HsmState::StartPending {
            c.hsm = HsmState::Started;
        }
        if !matches!(c.hsm, HsmState::Started | HsmState::Suspended) {
            return false;
        }
        if c.waiting {
            // A switched-out vCPU's interrupt state, brought up to date.
            if c.timer.is_some_and(|t| now >= t) {
                c.hvip |= hvip::VSTIP;
            }
            if line {
                c.hvip |= hvip::VSEIP;
            }
            if self.ipi[v] {
                c.hvip |= hvip::VSSIP;
            }
            if !c.wakeup_pending() {
                return false;
            }
            c.waiting = false;
            if c.hsm == HsmState::Suspended {
                c.hsm = HsmState::Started;
            }
        }
        true
    }

    /// The next vCPU for hart `h`, round-robin among those it runs.
    fn pick(&mut self, h: usize, now: u64) -> Option<usize> {
        let n = self.assigned[h].len();
        for k in 0..n {
            let v = self.assigned[h][(self.turn[h] + k) % n];
            if self.runnable(v, now) {
                self.turn[h] = (self.turn[h] + k + 1) % n;
                return Some(v);
            }
        }
        None
    }

    fn unload(&mut self, harts: &mut [&mut dyn HartOps], h: usize) {
        if let Some(old) = self.loaded[h].take() {
            harts[h].preempt();
            self.vcpus[old].stats.preemptions += 1;
            self.vcpus[old].switch_out(&mut *harts[h]);
        }
    }

    /// Brings `hvip` on the hart up to date for vCPU `v`: VSTIP from its
    /// timer, VSEIP from its PLIC context, VSSIP from IPIs sent to it.
    fn sync_irqs(&mut self, hart: &mut dyn HartOps, v: usize) {
        let now = hart.time();
        let c = &self.vcpus[v];
        let vm = &self.vms[c.vm];
        let mut hv = hart.csr(Csr::Hvip) & !(hvip::VSTIP | hvip::VSEIP);
        if c.timer.is_some_and(|t| now >= t) {
            hv |= hvip::VSTIP;
        }
        if vm.vseip.get(c.id as usize).is_some_and(|l| l.load(Ordering::Relaxed)) {
            hv |= hvip::VSEIP;
        }
        if std::mem::take(&mut self.ipi[v]) {
            hv |= hvip::VSSIP;
        }
        hart.set_csr(Csr::Hvip, hv);
    }

    /// Runs hart `h` for one slice. Returns the slots used and whether any
    /// vCPU ran.
    fn run_hart(&mut self, harts: &mut [&mut dyn HartOps], h: usize, budget: u64) -> (u64, bool) {
        let mut used = 0;
        let mut ran = false;
        while used < budget {
            let now = harts[h].time();
            let Some(v) = self.pick(h, now) else {
                self.unload(harts, h);
                break;
            };
            ran = true;
            if self.loaded[h] != Some(v) {
                self.unload(harts, h);
                let hgatp = self.vms[self.vcpus[v].vm].hgatp;
                self.vcpus[v].switch_in(&mut *harts[h], hgatp, h);
                self.loaded[h] = Some(v);
            }
            let next = loop {
                self.sync_irqs(&mut *harts[h], v);
                let (n, to) = harts[h].run_guest(budget - used);
                used += n;
                let next = match to {
                    // The slice is over with the guest still running: it
                    // stays on the hart until someone else needs it.
                    None => Next::Preempted,
                    Some(TrapTo::M) => {
                        self.vcpus[v].stats.exits += 1;
                        let cause = harts[h].csr(Csr::Scause);
                        self.crash(self.vcpus[v].vm, format!("a trap went to M-mode (scause {cause:#x})"));
                        Next::Off
                    }
                    Some(TrapTo::Hs) => {
                        self.vcpus[v].stats.exits += 1;
                        self.handle_exit(harts, h, v)
                    }
                };
                if !matches!(next, Next::Continue) || used >= budget {
                    break next;
                }
            };
            match next {
                Next::Off => self.unload(harts, h),
                Next::Preempted | Next::Continue => break,
            }
        }
        (used, ran)
    }

    fn crash(&mut self, vm: usize, why: String) {
        self.end_vm(vm, VmEnd::Crashed(why));
    }

    /// Ends VM `vm` for `end`, unless it has ended already: its vCPUs are
    /// not scheduled again (the platform stops a VM whose vCPU makes no
    /// progress this way).
    pub fn end_vm(&mut self, vm: usize, end: VmEnd) {
        if self.vms[vm].end.is_none() {
            self.vms[vm].end = Some(end);
        }
    }

    /// Handles the trap that ended a guest run on hart `h`.
    fn handle_exit(&mut self, harts: &mut [&mut dyn HartOps], h: usize, v: usize) -> Next {
        let cause = harts[h].csr(Csr::Scause);
        if cause & CAUSE_INTERRUPT != 0 {
            // Only preempt() raises an interrupt into HS, and it is not a
            // guest exit; seen here, it is one all the same.
            return Next::Preempted;
        }
        let vm = self.vcpus[v].vm;
        let next = match cause {
            ECALL_VS => {
                self.vms[vm].stats.sbi_calls += 1;
                self.vcpus[v].stats.sbi_calls += 1;
                let hart = &mut *harts[h];
                let sepc = hart.csr(Csr::Sepc);
                hart.set_csr(Csr::Sepc, sepc.wrapping_add(4));
                self.sbi(harts, h, v)
            }
            LOAD_GUEST_PAGE | STORE_GUEST_PAGE => self.mmio(&mut *harts[h], v, cause),
            INSN_GUEST_PAGE => {
                let tval = harts[h].csr(Csr::Stval);
                self.inject(&mut *harts[h], v, INSN_ACCESS, tval);
                Next::Continue
            }
            VIRTUAL_INSN => {
                self.vms[vm].stats.virtual_insn += 1;
                let hart = &mut *harts[h];
                let insn = hart.csr(Csr::Stval);
                if insn == WFI {
                    let sepc = hart.csr(Csr::Sepc);
                    hart.set_csr(Csr::Sepc, sepc.wrapping_add(4));
                    self.vcpus[v].stats.wfi += 1;
                    self.wait(harts, h, v)
                } else {
                    // §8.6.1 note: what the hypervisor does not emulate is
                    // an illegal instruction for the guest.
                    self.inject(hart, v, ILLEGAL_INSN, insn);
                    Next::Continue
                }
            }
            other => {
                // A trap the guest did not get through hedeleg: give it to
                // the guest as it is.
                let tval = harts[h].csr(Csr::Stval);
                self.inject(&mut *harts[h], v, other, tval);
                Next::Continue
            }
        };
        self.vms[vm].poll_power();
        if !self.vms[vm].running() {
            return Next::Off;
        }
        next
    }

    /// The vCPU waits for an interrupt (WFI, or a retentive suspend),
    /// unless one it has enabled is already pending.
    fn wait(&mut self, harts: &mut [&mut dyn HartOps], h: usize, v: usize) -> Next {
        self.sync_irqs(&mut *harts[h], v);
        let pending = harts[h].csr(Csr::Hvip);
        let vsie = harts[h].csr(Csr::Vsie);
        if (pending >> 1) & vsie != 0 {
            return Next::Continue;
        }
        self.vcpus[v].waiting = true;
        Next::Off
    }

    /// Redirects a trap into the guest's own handler, as if it had been
    /// delegated (Priv. §8.6.4 trap entry into VS-mode, done by software).
    fn inject(&mut self, hart: &mut dyn HartOps, v: usize, cause: u64, tval: u64) {
        self.vms[self.vcpus[v].vm].stats.injected_faults += 1;
        self.vcpus[v].stats.injected += 1;
        let from_vs = hart.csr(Csr::Sstatus) & SSTATUS_SPP != 0;
        let mut vss = hart.csr(Csr::Vsstatus) & !(SSTATUS_SPP | SSTATUS_SPIE | SSTATUS_SIE);
        if hart.csr(Csr::Vsstatus) & SSTATUS_SIE != 0 {
            vss |= SSTATUS_SPIE;
        }
        if from_vs {
            vss |= SSTATUS_SPP;
        }
        hart.set_csr(Csr::Vsstatus, vss);
        hart.set_csr(Csr::Vscause, cause);
        hart.set_csr(Csr::Vstval, tval);
        let sepc = hart.csr(Csr::Sepc);
        hart.set_csr(Csr::Vsepc, sepc);
        hart.set_csr(Csr::Sepc, hart.csr(Csr::Vstvec) & !3);
        let c = &mut self.vcpus[v];
        c.vs_mode = true;
        c.pc = hart.csr(Csr::Sepc);
        c.prepare_return(hart);
    }

    /// Emulates the MMIO access behind a load/store guest-page fault, or
    /// gives the guest an access fault if nothing is there.
    fn mmio(&mut self, hart: &mut dyn HartOps, v: usize, cause: u64) -> Next {
        let vm = self.vcpus[v].vm;
        self.vms[vm].stats.mmio_exits += 1;
        self.vcpus[v].stats.mmio += 1;
        let stval = hart.csr(Csr::Stval);
        let gpa = hart.csr(Csr::Htval) << 2 | (stval & 3);
        let fault = if cause == LOAD_GUEST_PAGE { LOAD_ACCESS } else { STORE_ACCESS };
        // htinst may be zero (Priv. §8.6.3): then read the instruction from
        // the guest, as an HS-mode hypervisor would with HLVX.
        let decoded = mmio::decode(hart.csr(Csr::Htinst)).or_else(|| {
            let pc = hart.csr(Csr::Sepc);
            hart.read_guest_insn(pc).and_then(mmio::decode_insn)
        });
        let Some((acc, len)) = decoded else {
            self.inject(hart, v, fault, stval);
            return Next::Continue;
        };
        let bus = &mut self.vms[vm].bus;
        let ok = match acc {
            mmio::Access::Load { rd, size, signed, fp } => match bus.read(gpa, size) {
                Some(raw) => {
                    if fp {
                        let val = if size == 4 { mmio::box_f32(raw & 0xffff_ffff) } else { raw };
                        hart.set_fpr(rd, val);
                    } else if rd != 0 {
                        hart.set_gpr(rd, mmio::extend(raw, size, signed));
                    }
                    true
                }
                None => false,
            },
            mmio::Access::Store { rs2, size, fp } => {
                let val = if fp { hart.fpr(rs2) } else { hart.gpr(rs2) };
                bus.write(gpa, size, val)
            }
        };
        if ok {
            let sepc = hart.csr(Csr::Sepc);
            hart.set_csr(Csr::Sepc, sepc.wrapping_add(len));
        } else {
            self.inject(hart, v, fault, stval);
        }
        Next::Continue
    }

    /// Serves an SBI call from vCPU `v` on hart `h` (sepc already moved
    /// past the ecall).
    fn sbi(&mut self, harts: &mut [&mut dyn HartOps], h: usize, v: usize) -> Next {
        use sbi::{eid, err};
        let hart = &mut *harts[h];
        let call = sbi::Call {
            eid: hart.gpr(17),
            fid: hart.gpr(16),
            args: [hart.gpr(10), hart.gpr(11), hart.gpr(12), hart.gpr(13), hart.gpr(14), hart.gpr(15)],
        };
        let vm = self.vcpus[v].vm;
        let count = self.vms[vm].vcpus.len() as u64;
        let mut next = Next::Continue;
        let a = call.args;
        let (error, value): (i64, u64) = match (call.eid, call.fid) {
            (eid::BASE, 0) => (err::SUCCESS, sbi::SPEC_VERSION),
            (eid::BASE, 1) => (err::SUCCESS, sbi::IMPL_ID),
            (eid::BASE, 2) => (err::SUCCESS, sbi::IMPL_VERSION),
            (eid::BASE, 3) => (err::SUCCESS, sbi::EXTENSIONS.contains(&a[0]) as u64),
            (eid::BASE, 4..=6) => (err::SUCCESS, 0),
            (eid::TIME, 0) => {
                self.vcpus[v].timer = Some(a[0]);
                let hv = hart.csr(Csr::Hvip) & !hvip::VSTIP;
                hart.set_csr(Csr::Hvip, hv);
                (err::SUCCESS, 0)
            }
            (eid::IPI, 0) => match sbi::hart_mask(a[0], a[1], count) {
                None => (err::INVALID_PARAM, 0),
                Some(ids) => {
                    for id in ids {
                        let t = self.vms[vm].vcpus[id as usize];
                        if t == v {
                            let hv = harts[h].csr(Csr::Hvip) | hvip::VSSIP;
                            harts[h].set_csr(Csr::Hvip, hv);
                        } else if self.vcpus[t].loaded_on.is_some() {
                            self.ipi[t] = true;
                        } else {
                            self.vcpus[t].hvip |= hvip::VSSIP;
                        }
                    }
                    (err::SUCCESS, 0)
                }
            },
            (eid::RFENCE, 0) => match sbi::hart_mask(a[0], a[1], count) {
                // Strata's harts keep decoded code coherent with memory
                // writes, so a remote FENCE.I has nothing more to do.
                Some(_) => (err::SUCCESS, 0),
                None => (err::INVALID_PARAM, 0),
            },
            (eid::RFENCE, 1 | 2) => match sbi::hart_mask(a[0], a[1], count) {
                Some(_) => {
                    // The VM's VS-stage translations, on every hart: a
                    // superset of what was asked, and nobody else's.
                    let vmid = self.vms[vm].vmid;
                    for hart in harts.iter_mut() {
                        hart.hfence_gvma(None, Some(vmid));
                    }
                    (err::SUCCESS, 0)
                }
                None => (err::INVALID_PARAM, 0),
            },
            (eid::HSM, 0) => {
                let (target, start, opaque) = (a[0], a[1], a[2]);
                match self.vms[vm].vcpus.get(target as usize).copied() {
                    None => (err::INVALID_PARAM, 0),
                    Some(t) if self.vcpus[t].hsm != HsmState::Stopped => (err::ALREADY_AVAILABLE, 0),
                    Some(t) => {
                        self.vcpus[t].reset(start, opaque);
                        self.vcpus[t].hsm = HsmState::StartPending;
                        (err::SUCCESS, 0)
                    }
                }
            }
            (eid::HSM, 1) => {
                self.vcpus[v].hsm = HsmState::Stopped;
                next = Next::Off;
                (err::SUCCESS, 0)
            }
            (eid::HSM, 2) => match self.vms[vm].vcpus.get(a[0] as usize) {
                None => (err::INVALID_PARAM, 0),
                Some(&t) => (err::SUCCESS, self.vcpus[t].hsm.sbi()),
            },
            (eid::HSM, 3) if a[0] as u32 == 0 => {
                // Default retentive suspend: wait like WFI, return success.
                hart.set_gpr(10, 0);
                hart.set_gpr(11, 0);
                self.vcpus[v].hsm = HsmState::Suspended;
                return self.wait(harts, h, v);
            }
            (eid::HSM, 3) => (err::NOT_SUPPORTED, 0),
            (eid::SRST, 0) => {
                self.vms[vm].end = Some(match (a[0], a[1]) {
                    (0, 0) => VmEnd::PowerOff,
                    (0, r) => VmEnd::Failure(r as u32),
                    _ => VmEnd::Reset,
                });
                next = Next::Off;
                (err::SUCCESS, 0)
            }
            (eid::DBCN, 0) => {
                // §12.1: the buffer's address is base_addr_hi:base_addr_lo,
                // XLEN bits each; on RV64 a non-zero high half is beyond any
                // guest-physical address. At most a page is written per call
                // (a partial write is allowed, and the count returned).
                let n = a[0].min(4096) as usize;
                let addr = a[1];
                let mut buf = vec![0u8; n];
                if a[2] == 0 && self.guest_read(self.vms[vm].id, addr, &mut buf) {
                    let mut out = lock(&self.consoles[vm]);
                    for b in buf {
                        (out)(b);
                    }
                    (err::SUCCESS, n as u64)
                } else {
                    // §12.1: memory that does not meet the requirements of
                    // §3.2 (shared memory physical address range).
                    (err::INVALID_PARAM, 0)
                }
            }
            (eid::DBCN, 1) => (err::SUCCESS, 0),
            (eid::DBCN, 2) => {
                (lock(&self.consoles[vm]))(a[0] as u8);
                (err::SUCCESS, 0)
            }
            _ => (err::NOT_SUPPORTED, 0),
        };
        let hart = &mut *harts[h];
        hart.set_gpr(10, error as u64);
        hart.set_gpr(11, value);
        next
    }

    /// When every vCPU waits: the earliest time a timer wakes one.
    pub fn next_deadline(&self) -> Option<u64> {
        self.vcpus.iter().filter(|c| self.vms[c.vm].running() && c.waiting).filter_map(|c| c.timer).min()
    }

    /// The earliest RTC alarm of any running VM, in nanoseconds from now.
    pub fn rtc_alarm_in_ns(&self) -> Option<u64> {
        self.vms.iter().filter(|v| v.running()).filter_map(|v| v.rtc_alarm_in_ns()).min()
    }

    /// Lets the VMs' RTCs raise their alarms.
    pub fn update_devices(&self) {
        for vm in &self.vms {
            vm.update_rtc();
        }
    }

    // ---- pages changing hands ----------------------------------------------

    /// Moves VM `vm`'s page at `gpa` to another machine page (what memory
    /// compaction or migration does): copies it, maps the copy, frees the
    /// old page (which awaits zeroing) and invalidates the translations of
    /// the old page on every hart with the current [`Policy`].
    pub fn migrate_page(&mut self, harts: &mut [&mut dyn HartOps], vm: usize, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let gpa = gpa & !(PAGE_SIZE - 1);
        let leaf = self
            .hm
            .translate(&*self.mem, id, gpa)?
            .ok_or_else(|| HypError::Config(format!("{gpa:#x} is not mapped in VM {vm}")))?;
        let old = MachinePage::containing(leaf.pa);
        let new = self.hm.alloc_page(&mut *self.mem, Owner::Vm(id))?;
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        self.mem.read(old.addr(), &mut buf).map_err(|e| HypError::Memory(e.into()))?;
        self.mem.write(new.addr(), &buf).map_err(|e| HypError::Memory(e.into()))?;
        self.hm.unmap(&mut *self.mem, id, gpa)?;
        self.hm.map(&mut *self.mem, id, gpa, new, Perms::RWX)?;
        self.note_dma(vm, gpa, Some(new.addr()));
        let _ = self.hm.donate(&mut *self.mem, Owner::Vm(id), old, Owner::Free)?;
        self.invalidate(harts, old, &[vm]);
        Ok(())
    }

    /// Invalidates the cached translations of machine page `page`, whose
    /// mappings by `vms` just changed, on every hart.
    pub fn invalidate(&mut self, harts: &mut [&mut dyn HartOps], page: MachinePage, vms: &[usize]) {
        self.inval.invalidations += 1;
        let vmids: Vec<u64> = vms.iter().filter_map(|&i| self.vms.get(i)).map(|v| v.vmid).collect();
        for hart in harts.iter_mut() {
            match self.policy {
                Policy::Pa => self.inval.dropped += hart.invalidate_page(page.addr()),
                Policy::Vmid | Policy::All => {
                    let ids = (self.policy == Policy::Vmid).then_some(&vmids[..]);
                    let (d, c) = hart.invalidate_coarse(ids, page.addr());
                    self.inval.dropped += d;
                    self.inval.collateral_dropped += c;
                }
            }
        }
    }

    /// Collateral misses by VM, summed over harts.
    pub fn collateral_misses(&self, harts: &[&mut dyn HartOps]) -> Vec<(String, u64)> {
        self.vms
            .iter()
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
        vm: usize,
        gpa: u64,
    ) -> Result<MachinePage, HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let leaf = self
            .hm
            .translate(&*self.mem, id, gpa & !(PAGE_SIZE - 1))?
            .ok_or_else(|| HypError::Config(format!("{gpa:#x} is not mapped in VM {vm}")))?;
        let page = MachinePage::containing(leaf.pa);
        let _ = self.hm.reclaim(&mut *self.mem, Owner::Hypervisor, page)?;
        self.note_dma(vm, gpa, None);
        self.invalidate(harts, page, &[vm]);
        Ok(page)
    }

    /// Gives hypervisor-owned `page` to VM `vm` at `gpa` (which must be
    /// unmapped there).
    pub fn give_page(&mut self, vm: usize, page: MachinePage, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        self.hm.zero_pending(&mut *self.mem)?;
        let _ = self.hm.donate(&mut *self.mem, Owner::Hypervisor, page, Owner::Vm(id))?;
        self.hm.map(&mut *self.mem, id, gpa, page, Perms::RWX)?;
        self.note_dma(vm, gpa, Some(page.addr()));
        Ok(())
    }

    /// Keeps the VM's DMA map (for host-side device models) in step with
    /// its G-stage mappings.
    fn note_dma(&self, vm: usize, gpa: u64, pa: Option<u64>) {
        if let Some(map) = self.vms.get(vm).and_then(|v| v.dma.as_ref()) {
            map.set(gpa, pa);
        }
    }

    /// Adds a device model to VM `vm`'s bus at guest-physical `base`.
    pub fn add_device(
        &mut self,
        vm: usize,
        base: u64,
        size: u64,
        name: &'static str,
        dev: Box<dyn strata_devices::MmioDevice>,
    ) -> Result<(), HypError> {
        let v = self.vms.get_mut(vm).ok_or(HypError::NoSuchVm(vm))?;
        v.bus.add(base, size, name, dev).map_err(HypError::Config)
    }

    /// Removes VM `vm`'s mapping at `gpa` (the page stays the VM's).
    pub fn unmap(&mut self, harts: &mut [&mut dyn HartOps], vm: usize, gpa: u64) -> Result<(), HypError> {
        let id = self.vms.get(vm).ok_or(HypError::NoSuchVm(vm))?.id;
        let u = self.hm.unmap(&mut *self.mem, id, gpa)?;
        self.note_dma(vm, gpa, None);
        self.invalidate(harts, u.page, &[vm]);
        Ok(())
    }

    /// Feeds a byte to VM `vm`'s UART; false if its receive FIFO is full.
    pub fn console_input(&self, vm: usize, b: u8) -> bool {
        self.vms.get(vm).is_some_and(|v| v.push_console_input(b))
    }
}

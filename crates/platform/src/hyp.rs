//! `strata run`: the machine under Strata's hypervisor.
//!
//! The board here is bare: RAM ("machine memory"), harts in hypervisor
//! mode (HS-mode is the host-side hypervisor, `strata_hypervisor`) and the
//! timebase. Every VM gets its own devices from the hypervisor; this module
//! prepares the VMs' boot images and device trees, wires their consoles,
//! and is the [`Workload`] through which the [`Runner`] gives the harts to
//! the hypervisor.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use strata_devices::aclint::Timebase;
use strata_devices::rtc::host_clock;
use strata_hart::{Bus, Ext, Extensions, Hart, TrapTarget};
use strata_hypervisor::hart::{Csr, HartOps, TrapTo};
use strata_hypervisor::ownership::{self, MachineMemory};
use strata_hypervisor::smp::{HypGuard, Smp};
pub use strata_hypervisor::vm::Paging;
use strata_hypervisor::vm::{layout, DeviceSpec, VmEnd, VmSpec};
use strata_hypervisor::{HartIndex, Hypervisor, Placement, Policy, VmIndex};
use strata_memory::GuestRam;

use crate::boot::{self, BootConfig};
use crate::error::Error;
use crate::fdt::FdtConfig;
use crate::loader::Segments;
use crate::runner::parallel::earliest;
use crate::runner::stats::{HartSmpSnapshot, HypSnapshot, VcpuSnapshot, VmSnapshot};
use crate::runner::{
    check_harts, check_host_ram, check_ram, lock, ClockMode, HartHost, MemAccess, RunEnd, Runner, Slice, Turn,
    Workload, CHUNK,
};
use crate::virtio::VirtioConfig;
use strata_api::ApiError;
use strata_devices::virtio::VirtioMmio;
use strata_devices::{MmioDevice, SharedMmio};
use strata_hypervisor::vm::DmaMap;
use strata_memory::{GuestMemory, OutOfRange};

/// The ISA a guest sees: the harts' (`RunConfig::extensions`), without H
/// (Strata does not offer nested virtualization) and without Sstc (the
/// hypervisor keeps each vCPU's timer itself, behind SBI `set_timer`; it
/// does not yet switch `vstimecmp` with the vCPU), and without Zicbom and
/// Zicboz (the hypervisor leaves `henvcfg`'s CBO enables clear, and does not
/// switch `senvcfg` with the vCPU, so a guest's CBO would be a virtual
/// instruction it does not emulate), and without Zawrs (the hypervisor
/// sets `hstatus.VTW` to catch WFI, which makes a stalling WRS.NTO a
/// virtual instruction it does not emulate either). Zicbop's prefetch hints
/// stay: they are ORI encodings that run anywhere.
pub fn guest_extensions(harts: Extensions) -> Extensions {
    harts.without(Ext::H).without(Ext::Sstc).without(Ext::Zicbom).without(Ext::Zicboz).without(Ext::Zawrs)
}

/// Machine RAM starts where the `virt` board's does.
const MACHINE_RAM_BASE: u64 = strata_devices::board::VIRT.ram_base;
const MIB: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct VmConfig {
    pub name: String,
    pub memory: u64,
    pub vcpus: u32,
    pub protected: bool,
    /// Nested or shadow paging (`--paging`, `paging = "…"`).
    pub paging: Paging,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub append: String,
    pub serial_log: Option<PathBuf>,
    /// The VM's virtio devices (an ordinary VM only: their models are
    /// host-side code, which a protected VM's memory is closed to).
    pub virtio: VirtioConfig,
}

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub vms: Vec<VmConfig>,
    /// Physical harts; `None` for one per vCPU (at most 8).
    pub harts: Option<u32>,
    pub policy: Policy,
    pub clock: ClockMode,
    /// Copy the VMs' consoles to stdout (each line labelled with the VM's
    /// name when there are several).
    pub console_stdout: bool,
    /// Feed stdin to the first VM's UART.
    pub console_stdin: bool,
    /// Compile guest code to host code (x86-64 hosts).
    pub jit: bool,
    /// The physical harts' ISA extensions (`--cpu`); every VM's vCPUs run
    /// on them, and its device tree advertises them without H.
    pub extensions: Extensions,
}

/// One VM's console: to stdout (labelled by line when several VMs share
/// it), to its log file, and to a capture buffer for tests.
struct VmConsole {
    label: Option<String>,
    stdout: bool,
    log: Option<File>,
    line: Vec<u8>,
    capture: Vec<u8>,
}

impl VmConsole {
    fn push(&mut self, b: u8) {
        self.capture.push(b);
        if let Some(f) = &mut self.log {
            if f.write_all(&[b]).is_err() {
                self.log = None;
            }
        }
        self.line.push(b);
        if b == b'\n' || self.line.len() >= 4096 {
            self.flush_line();
        }
    }

    /// Writes out the current line. Unlabelled output is also flushed in the
    /// middle of a line (a shell prompt has no newline).
    fn flush_line(&mut self) {
        if self.line.is_empty() || !self.stdout {
            self.line.clear();
            return;
        }
        let out = io::stdout();
        let mut out = out.lock();
        let r = match &self.label {
            Some(l) => out.write_all(format!("[{l}] ").as_bytes()).and_then(|_| out.write_all(&self.line)),
            None => out.write_all(&self.line),
        };
        if r.and_then(|_| out.flush()).is_err() {
            self.stdout = false;
        }
        self.line.clear();
    }

    fn tick(&mut self) {
        if self.label.is_none() {
            self.flush_line();
        }
    }
}

/// Machine memory for the hypervisor: the board's RAM.
struct Ram(Arc<GuestRam>);

impl MachineMemory for Ram {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), ownership::TableMemError> {
        self.0.read_bytes(pa, buf).map_err(|_| ownership::TableMemError::BadAddress(pa))
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> Result<(), ownership::TableMemError> {
        self.0.write_bytes(pa, data).map_err(|_| ownership::TableMemError::BadAddress(pa))
    }
    fn zero_page(&mut self, page: ownership::MachinePage) -> Result<(), ownership::TableMemError> {
        self.0.zero(page.addr(), ownership::PAGE_SIZE).map_err(|_| ownership::TableMemError::BadAddress(page.addr()))
    }
}

/// A VM's memory as its host-side device models (virtio) see it: guest
/// physical addresses, translated page by page through the VM's DMA map
/// (kept in step with its G-stage tables by the hypervisor) to machine RAM.
struct VmMemory {
    ram: Arc<GuestRam>,
    map: Arc<DmaMap>,
}

impl VmMemory {
    /// Runs `f(machine address, offset in the request, length)` over the
    /// pages of `gpa..gpa+len`, after checking that every one is mapped.
    fn pieces(
        &self,
        gpa: u64,
        len: u64,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), OutOfRange>,
    ) -> Result<(), OutOfRange> {
        let bad = OutOfRange { addr: gpa, len };
        let end = gpa.checked_add(len).ok_or(bad)?;
        let mut parts = Vec::new();
        let mut cur = gpa;
        while cur < end {
            let n = (0x1000 - (cur & 0xfff)).min(end - cur);
            parts.push((self.map.translate(cur).ok_or(bad)?, (cur - gpa) as usize, n as usize));
            cur += n;
        }
        for (pa, at, n) in parts {
            f(pa, at, n)?;
        }
        Ok(())
    }
}

impl GuestMemory for VmMemory {
    fn contains(&self, addr: u64, len: u64) -> bool {
        self.pieces(addr, len, |_, _, _| Ok(())).is_ok()
    }
    fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange> {
        let mut b = [0u8; 8];
        self.read_bytes(addr, &mut b[..size as usize])?;
        Ok(u64::from_le_bytes(b))
    }
    fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange> {
        self.write_bytes(addr, &v.to_le_bytes()[..size as usize])
    }
    fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        let ram = &self.ram;
        self.pieces(addr, dst.len() as u64, |pa, at, n| ram.read_bytes(pa, &mut dst[at..at + n]))
    }
    fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        let ram = &self.ram;
        let r = self.pieces(addr, src.len() as u64, |pa, at, n| ram.write_bytes(pa, &src[at..at + n]));
        // Told to the DMA map once it is in memory (even a failed write
        // may have written part): a write into a page the shadow pager
        // watches as a guest page table is logged for the hypervisor
        // (`DmaMap::wrote`, which looks at the VM's RAM pages only).
        self.map.wrote(addr, src.len() as u64);
        r
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        let ram = &self.ram;
        let r = self.pieces(addr, len, |pa, _, n| ram.zero(pa, n as u64));
        self.map.wrote(addr, len);
        r
    }
}

/// What the harts reach besides RAM under the hypervisor: nothing but the
/// timer (guests' devices are the hypervisor's, reached through traps).
struct HypBus(Arc<Timebase>);

impl Bus for HypBus {
    fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
        None
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
        false
    }
    fn mtime(&self) -> u64 {
        self.0.now()
    }
}

/// An emulated hart as the hypervisor sees it ([`HartOps`]).
pub struct HypHart<'a> {
    hart: &'a mut Hart,
    bus: HypBus,
    ram_base: u64,
    /// The last guest run ended at a PAUSE.
    paused: bool,
}

impl HartOps for HypHart<'_> {
    fn hart_id(&self) -> u64 {
        self.hart.hartid
    }
    fn csr(&self, c: Csr) -> u64 {
        self.hart.csr_peek(c.number()).unwrap_or(0)
    }
    fn set_csr(&mut self, c: Csr, v: u64) {
        self.hart.csr_poke(c.number(), v);
    }
    fn gpr(&self, n: usize) -> u64 {
        self.hart.x[n & 31]
    }
    fn set_gpr(&mut self, n: usize, v: u64) {
        if n & 31 != 0 {
            self.hart.x[n & 31] = v;
        }
    }
    fn fpr(&self, n: usize) -> u64 {
        self.hart.f[n & 31]
    }
    fn set_fpr(&mut self, n: usize, v: u64) {
        self.hart.f[n & 31] = v;
    }
    fn time(&self) -> u64 {
        self.bus.mtime()
    }
    fn run_guest(&mut self, budget: u64) -> (u64, Option<TrapTo>) {
        let pauses = self.hart.stats.pauses;
        let (used, to) = self.hart.run_guest(&mut self.bus, budget);
        self.paused = self.hart.stats.pauses != pauses;
        (used, to.map(|t| if t == TrapTarget::M { TrapTo::M } else { TrapTo::Hs }))
    }
    fn preempt(&mut self) {
        self.hart.preempt_guest();
    }
    fn run_paused(&self) -> bool {
        self.paused
    }
    fn read_guest_insn(&mut self, va: u64) -> Option<u32> {
        self.hart.hlvx_insn(&mut self.bus, va).ok()
    }
    fn hfence_gvma(&mut self, gpa: Option<u64>, vmid: Option<u64>) {
        self.hart.hfence_gvma(gpa, vmid);
    }
    fn hfence_vvma(&mut self, va: Option<u64>, asid: Option<u64>) {
        self.hart.hfence_vvma(va, asid);
    }
    fn invalidate_page(&mut self, page_addr: u64) -> u64 {
        self.hart.invalidate_ram_page((page_addr - self.ram_base) >> 12)
    }
    fn invalidate_coarse(&mut self, vmids: Option<&[u64]>, page_addr: u64) -> (u64, u64) {
        self.hart.invalidate_coarse(vmids, (page_addr - self.ram_base) >> 12)
    }
    fn collateral_misses(&self) -> Vec<(u64, u64)> {
        self.hart
            .tlb_vmid_stats()
            .iter()
            .filter(|((virt, _), _)| *virt)
            .map(|((_, vmid), c)| (*vmid, c.collateral_misses))
            .collect()
    }
}

/// Ends the VM whose vCPU a hart found trapping in a loop without
/// progress (`strata_hart::NoProgress`; exit status 7).
fn end_stuck_vm(hyp: &mut Hypervisor, s: strata_hart::NoProgress) {
    if let Some(vm) = s.vmid.and_then(|vmid| hyp.vm_by_vmid(vmid)) {
        let what = format!("its vCPU on hart {} is {}", s.hartid, s.trap_loop());
        hyp.end_vm(vm, VmEnd::NoProgress(what));
    }
}

/// What the runner's hart threads run the hypervisor with: each thread's
/// turn is `Smp::turn` for each of its harts.
pub struct HypHost {
    smp: Arc<Smp>,
    time: Arc<Timebase>,
    /// Hart threads are running (the service thread then wakes them).
    threaded: AtomicBool,
}

impl HartHost for HypHost {
    fn bus(&self) -> Box<dyn Bus + Send> {
        Box::new(HypBus(self.time.clone()))
    }
    fn after_chunk(&self) -> bool {
        false
    }
    fn timer_deadline(&self) -> Option<u64> {
        None
    }
    fn stuck(&self, _: strata_hart::NoProgress) {}
    fn turn(&self, harts: &mut [&mut Hart], _: &mut dyn Bus) -> Turn {
        let mut t = Turn::default();
        for hart in harts.iter_mut() {
            let me = HartIndex(hart.hartid as usize);
            let mut ops = HypHart { hart, bus: HypBus(self.time.clone()), ram_base: MACHINE_RAM_BASE, paused: false };
            let end = self.smp.turn(me, &mut ops, CHUNK);
            t.busy |= end.ran;
            t.deadline = earliest(t.deadline, end.deadline);
            if let Some(s) = ops.hart.take_no_progress() {
                end_stuck_vm(&mut self.smp.lock_for(me, &mut ops), s);
                t.wake_service = true;
            }
        }
        t
    }
    fn attach(&self, harts: &mut [&mut Hart], on: bool) {
        self.threaded.store(on, Ordering::Relaxed);
        for hart in harts.iter_mut() {
            let me = HartIndex(hart.hartid as usize);
            let mut ops = HypHart { hart, bus: HypBus(self.time.clone()), ram_base: MACHINE_RAM_BASE, paused: false };
            self.smp.attach(me, &mut ops, on);
        }
    }
}

/// How `strata run` ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// Each VM's name and end (`None`: still running when nothing could
    /// happen any more, or when the user quit).
    pub vms: Vec<(String, Option<VmEnd>)>,
    pub quit: bool,
    /// The signal that stopped the machine, if one did.
    pub signal: Option<i32>,
    /// A drive's host I/O failed with policy `stop` (`werror=stop`): every
    /// VM stopped, the disks were flushed.
    pub disk_stop: bool,
}

impl RunOutcome {
    /// The process exit status: 8 when a signal stopped the machine; 0 when
    /// every VM powered off cleanly (or the user quit), otherwise the worst
    /// of 3 (reset), 4 (failure reported), 5 (hung: waiting for an interrupt
    /// nothing can raise), 6 (stopped by the hypervisor), 7 (a vCPU made no
    /// progress); 9 when a drive
    /// with `werror=stop` stopped them all.
    pub fn status(&self) -> i32 {
        if self.signal.is_some() {
            return 8;
        }
        if self.disk_stop {
            return 9;
        }
        if self.quit {
            return 0;
        }
        self.vms
            .iter()
            .map(|(_, e)| match e {
                Some(VmEnd::PowerOff) => 0,
                Some(VmEnd::Reset) => 3,
                Some(VmEnd::Failure(_)) => 4,
                None => 5,
                Some(VmEnd::Crashed(_)) => 6,
                Some(VmEnd::NoProgress(_)) => 7,
            })
            .max()
            .unwrap_or(0)
    }
}

/// The hypervisor and its VMs as a workload of the runner.
pub struct Hypervised {
    /// The hypervisor, behind the lock its hart threads share
    /// (`strata_hypervisor::smp`).
    pub smp: Arc<Smp>,
    /// What hart threads run it with.
    host: Arc<HypHost>,
    consoles: Vec<Arc<Mutex<VmConsole>>>,
    /// The VM whose console gets the input (`Ctrl-A c` moves it on).
    focus: usize,
    /// What VMs created through the control API get: the guests' ISA, and
    /// whether their consoles go to stdout.
    extensions: Extensions,
    console_stdout: bool,
}

/// The machine under Strata's hypervisor, on the runner.
pub type HypMachine = Runner<Hypervised>;

/// The harts as the hypervisor drives them, each with `time` as its timer.
fn hart_ops<'a>(harts: &'a mut [Hart], time: &Arc<Timebase>) -> Vec<HypHart<'a>> {
    harts
        .iter_mut()
        .map(|hart| HypHart { hart, bus: HypBus(time.clone()), ram_base: MACHINE_RAM_BASE, paused: false })
        .collect()
}

impl Hypervised {
    /// The hypervisor, locked (plainly: for the service thread and callers
    /// outside the hart threads).
    pub fn hyp(&self) -> HypGuard<'_> {
        self.smp.lock()
    }

    /// Ends each VM whose vCPU a hart found trapping in a loop without
    /// progress (`strata_hart::NoProgress`; exit status 7).
    fn stop_stuck_vms(&self, harts: &mut [Hart]) {
        for h in harts {
            let Some(s) = h.take_no_progress() else { continue };
            end_stuck_vm(&mut self.hyp(), s);
        }
    }

    /// Moves the console input to the next VM still running (none: stays).
    fn next_running_console(&mut self) {
        let n = self.hyp().vm_count();
        let next = (1..=n).map(|i| (self.focus + i) % n).find(|&v| self.running(v));
        if let Some(v) = next {
            if v != self.focus {
                let name = self.hyp().vm(VmIndex(v)).map_or(String::new(), |vm| vm.name().to_string());
                eprintln!("\r\nstrata: console input now goes to VM {name}\r");
            }
            self.focus = v;
        }
    }

    /// Is VM `v` still running?
    fn running(&self, v: usize) -> bool {
        self.hyp().vm(VmIndex(v)).is_some_and(|vm| vm.running())
    }
}

impl Workload for Hypervised {
    type Outcome = RunOutcome;

    #[inline]
    fn run_slice(&mut self, harts: &mut [Hart], time: &Arc<Timebase>, budget: u64) -> Slice {
        let mut ops = hart_ops(harts, time);
        let mut refs: Vec<&mut dyn HartOps> = ops.iter_mut().map(|h| h as &mut dyn HartOps).collect();
        let s = self.smp.run_slice(&mut refs, budget);
        drop(refs);
        drop(ops);
        self.stop_stuck_vms(harts);
        Slice { used: s.used, idle: s.idle }
    }

    #[inline]
    fn update_devices(&mut self) {
        self.hyp().update_devices();
        // Hart threads asleep with a vCPU the devices just woke.
        if self.host.threaded.load(Ordering::Relaxed) {
            self.smp.wake_ready();
        }
    }

    fn hart_host(&self) -> Option<Arc<dyn HartHost>> {
        // Shadow paging changes other harts' registers (a resync reloads
        // `vsatp` on every hart that runs the VM): one thread only.
        if self.hyp().vms().any(|(_, v)| v.paging() == Paging::Shadow) {
            return None;
        }
        Some(self.host.clone())
    }

    fn timer_deadline(&self) -> Option<u64> {
        self.hyp().next_deadline()
    }

    fn rtc_alarm_in_ns(&self) -> Option<u64> {
        self.hyp().rtc_alarm_in_ns()
    }

    #[inline]
    fn ended(&mut self) -> bool {
        self.hyp().all_ended()
    }

    /// A byte for the focused VM; if that VM has ended, input moves on to
    /// the next one still running first.
    fn console_input(&mut self, b: u8) -> bool {
        if !self.running(self.focus) {
            self.next_running_console();
        }
        !self.running(self.focus) || self.hyp().console_input(VmIndex(self.focus), b)
    }

    fn next_console(&mut self) {
        self.next_running_console();
    }

    #[inline]
    fn flush_consoles(&mut self, end: bool) {
        for c in &self.consoles {
            let mut c = lock(c);
            if end {
                c.flush_line();
            } else {
                c.tick();
            }
        }
    }

    fn stats(&self, s: &mut String) {
        let hyp = self.hyp();
        for (index, vm) in hyp.vms() {
            let vc: Vec<String> = hyp
                .vcpus_of(index)
                .map(|v| {
                    let c = v.stats();
                    format!(
                        "vcpu{} ran {} exits {} sbi {} mmio {} wfi {} preempt {} injected {}",
                        v.id(),
                        c.slots,
                        c.exits,
                        c.sbi_calls,
                        c.mmio,
                        c.wfi,
                        c.preemptions,
                        c.injected
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "vm {} (vmid {}{}): {} | {}",
                vm.name(),
                vm.vmid(),
                if vm.protected() { ", protected" } else { "" },
                vm.end().map_or("running".into(), |e| e.describe()),
                vc.join("; ")
            );
            if let Some(sh) = vm.shadow_stats() {
                let _ = writeln!(
                    s,
                    "vm {} paging shadow: shadow faults {} page-table writes emulated {} resyncs {} fences intercepted {} \
                     guest faults injected {} satp accesses {} installs retried {} tables unprotected {} \
                     tables written by devices {} leaves dropped for them {}",
                    vm.name(),
                    sh.faults,
                    sh.pt_writes,
                    sh.resyncs,
                    sh.fences,
                    sh.injected,
                    sh.satp,
                    sh.retries,
                    sh.unprotected,
                    sh.dma_tables,
                    sh.dma_leaves
                );
            }
        }
        let i = hyp.inval_stats();
        let _ = writeln!(
            s,
            "invalidation policy {}: {} pages, {} translations dropped, {} of them collateral",
            hyp.policy(),
            i.invalidations,
            i.dropped,
            i.collateral_dropped
        );
        let sc = hyp.sched_stats();
        let _ = writeln!(
            s,
            "scheduler: {} switches, {} moves between harts, {} wake-up preemptions",
            sc.switches, sc.migrations, sc.wakeup_preemptions
        );
        // Real-time placement (docs/realtime.md): migrate's borrows and
        // evictions, and what a move cost in host time.
        let _ = writeln!(
            s,
            "placement {}: {} borrows, {} evictions ({} preempted for real-time), {} slots of other VMs on real-time harts, \
             at most {} while a real-time vCPU was due, move cost {} ns over {} moves, {} spin yields",
            hyp.placement(),
            sc.rt_borrows,
            sc.rt_evictions,
            sc.rt_preemptions,
            sc.foreign_slots_on_rt,
            sc.rt_wait_slots_max,
            sc.move_ns.checked_div(sc.timed_moves).unwrap_or(0),
            sc.timed_moves,
            sc.spin_yields
        );
        drop(hyp);
        // The threaded run (strata_hypervisor::smp): per hart, the
        // shootdown requests it posted and served, and the lock.
        let st = self.smp.stats();
        if st.iter().any(|h| h.locks > 0) {
            for (h, c) in st.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "hart {h}: shootdown posted {} served {} (dropped {}) | hypervisor lock taken {} contended {}",
                    c.posted, c.served, c.dropped, c.locks, c.contended
                );
            }
            let _ = writeln!(s, "shootdown: {} requests posted by the service thread", self.smp.posted_by_others());
        }
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "machine": "strata run",
            "policy": self.hyp().policy().to_string(),
            "vms": self.hyp().vms().map(|(_, v)| v.name().to_string()).collect::<Vec<_>>(),
        })
    }

    fn hyp_stats(&self) -> Option<HypSnapshot> {
        let hyp = self.hyp();
        let vms = hyp
            .vms()
            .map(|(index, vm)| VmSnapshot {
                name: vm.name().to_string(),
                vmid: vm.vmid(),
                protected: vm.protected(),
                paging: vm.paging().name(),
                memory_bytes: vm.memory(),
                state: vm.end().map_or("running".into(), |e| e.describe()),
                vcpus: hyp
                    .vcpus_of(index)
                    .map(|v| {
                        let c = v.stats();
                        VcpuSnapshot {
                            vcpu: v.id(),
                            slots: c.slots,
                            exits: c.exits,
                            sbi_calls: c.sbi_calls,
                            mmio: c.mmio,
                            wfi: c.wfi,
                            preemptions: c.preemptions,
                            injected: c.injected,
                        }
                    })
                    .collect(),
            })
            .collect();
        let (i, sc) = (hyp.inval_stats(), hyp.sched_stats());
        Some(HypSnapshot {
            vms,
            policy: hyp.policy().to_string(),
            invalidations: i.invalidations,
            translations_dropped: i.dropped,
            translations_dropped_collateral: i.collateral_dropped,
            sched_switches: sc.switches,
            sched_migrations: sc.migrations,
            sched_wakeup_preemptions: sc.wakeup_preemptions,
            placement: hyp.placement().to_string(),
            rt_borrows: sc.rt_borrows,
            rt_evictions: sc.rt_evictions,
            rt_preemptions: sc.rt_preemptions,
            rt_foreign_slots: sc.foreign_slots_on_rt,
            rt_wait_slots_max: sc.rt_wait_slots_max,
            spin_yields: sc.spin_yields,
            move_ns_total: sc.move_ns,
            moves_timed: sc.timed_moves,
            harts: self
                .smp
                .stats()
                .iter()
                .enumerate()
                .filter(|(_, c)| c.locks > 0)
                .map(|(h, c)| HartSmpSnapshot {
                    hart: h as u64,
                    shootdown_posted: c.posted,
                    shootdown_served: c.served,
                    shootdown_dropped: c.dropped,
                    lock_taken: c.locks,
                    lock_contended: c.contended,
                })
                .collect(),
        })
    }

    /// A VM's memory through the hypervisor's host interface; a protected
    /// VM's is refused (403) before it is asked, with the reason.
    fn vm_memory(&mut self, name: &str, addr: u64, access: MemAccess<'_>) -> Result<(), ApiError> {
        let mut hyp = self.hyp();
        let (index, vm) =
            hyp.vms().find(|(_, v)| v.name() == name).ok_or_else(|| crate::runner::control::no_vm(name))?;
        if vm.protected() {
            return Err(ApiError::forbidden(format!(
                "VM {name} is protected: no host-side interface can read or write its memory (docs/hypervisor.md)"
            )));
        }
        let size = vm.memory();
        let len = match &access {
            MemAccess::Read(b) => b.len(),
            MemAccess::Write(b) => b.len(),
        };
        let r = match access {
            MemAccess::Read(buf) => hyp.host_read(index, addr, buf),
            MemAccess::Write(data) => hyp.host_write(index, addr, data),
        };
        r.map_err(|e| {
            ApiError::bad_request(format!(
                "VM {name}: {addr:#x}+{len:#x} is not in its RAM ({:#x}..{:#x}): {e}",
                layout::RAM_BASE,
                layout::RAM_BASE + size
            ))
        })
    }

    /// A VM from the control API: checked as `strata run` checks one from
    /// its flags (name, vCPUs, memory), its images loaded, its console
    /// labelled with its name; no devices.
    fn create_vm(&mut self, spec: strata_api::VmCreate) -> Result<VmSnapshot, ApiError> {
        let bad = |e: Error| ApiError::bad_request(e.to_string());
        if spec.name.is_empty() || spec.name.contains('/') {
            return Err(ApiError::bad_request(format!("VM name {:?}: non-empty, without '/'", spec.name)));
        }
        if self.hyp().vms().any(|(_, v)| v.name() == spec.name) {
            return Err(ApiError::conflict(format!("a VM named {} exists already", spec.name)));
        }
        let memory = match &spec.memory {
            Some(m) => {
                crate::size::parse_ram_size(m).map_err(|e| ApiError::bad_request(format!("memory {m:?}: {e}")))?
            }
            None => 512 << 20,
        };
        let paging = match spec.paging.as_deref() {
            None => Paging::default(),
            Some(p) => [Paging::Nested, Paging::Shadow]
                .into_iter()
                .find(|m| m.name() == p)
                .ok_or_else(|| ApiError::bad_request(format!("paging {p:?}: nested or shadow")))?,
        };
        let vm = VmConfig {
            name: spec.name,
            memory,
            vcpus: spec.vcpus.unwrap_or(1),
            protected: spec.protected,
            kernel: spec.kernel.into(),
            initrd: spec.initrd.map(PathBuf::from),
            append: spec.cmdline,
            serial_log: None,
            virtio: VirtioConfig::default(),
            paging,
        };
        check_harts(&format!("VM {}: {} vCPUs", vm.name, vm.vcpus), vm.vcpus).map_err(bad)?;
        check_ram(&format!("VM {}: memory", vm.name), vm.memory).map_err(bad)?;
        let VmImages { segments, entry, dtb, dtb_measured } =
            vm_images(&vm, &[], guest_extensions(self.extensions)).map_err(bad)?;
        let con = Arc::new(Mutex::new(VmConsole {
            label: Some(vm.name.clone()),
            stdout: self.console_stdout,
            log: None,
            line: Vec::new(),
            capture: Vec::new(),
        }));
        let sink = {
            let c = con.clone();
            Box::new(move |b: u8| lock(&c).push(b)) as strata_devices::uart::UartSink
        };
        let index = self
            .hyp()
            .create_vm(VmSpec {
                name: vm.name.clone(),
                memory: vm.memory,
                vcpus: vm.vcpus,
                protected: vm.protected,
                segments,
                entry,
                dtb,
                dtb_measured: Some(dtb_measured),
                console: sink,
                clock: host_clock(),
                devices: Vec::new(),
                paging: vm.paging,
            })
            .map_err(|e| ApiError::conflict(format!("VM {}: {e}", vm.name)))?;
        debug_assert_eq!(index.0, self.consoles.len(), "consoles follow VM indices");
        // Several VMs now: every console's lines are labelled, as they are
        // when `strata run` starts with several.
        for (c, (_, v)) in self.consoles.iter().zip(self.hyp().vms()) {
            let mut c = lock(c);
            if c.label.is_none() {
                c.flush_line();
                c.label = Some(v.name().to_string());
            }
        }
        self.consoles.push(con);
        let snap = self.hyp_stats().and_then(|h| h.vms.into_iter().find(|v| v.name == vm.name));
        Ok(snap.expect("the VM was just created"))
    }

    fn delete_vm(&mut self, name: &str) -> Result<(), ApiError> {
        let mut hyp = self.hyp();
        let (index, vm) =
            hyp.vms().find(|(_, v)| v.name() == name).ok_or_else(|| crate::runner::control::no_vm(name))?;
        if !vm.running() {
            return Err(ApiError::conflict(format!("VM {name} has ended already")));
        }
        hyp.end_vm(index, VmEnd::PowerOff);
        Ok(())
    }

    fn machine_memory_closed(&self) -> Option<&'static str> {
        Some("under strata run, machine memory holds every VM's pages, protected ones too: read a VM's memory at /vms/{id}/memory")
    }

    fn outcome(&mut self, end: RunEnd) -> RunOutcome {
        RunOutcome {
            vms: self.hyp().vms().map(|(_, v)| (v.name().to_string(), v.end().cloned())).collect(),
            quit: end == RunEnd::Quit,
            disk_stop: matches!(end, RunEnd::DiskStopped(_)),
            signal: match end {
                RunEnd::Stopped(sig) => Some(sig),
                _ => None,
            },
        }
    }
}

impl Runner<Hypervised> {
    /// Marks the VMs named in `rt` real-time, each with the harts it may
    /// use, and places every vCPU under `placement` (docs/realtime.md).
    /// Before [`run`](Runner::run).
    pub fn configure_placement(&mut self, placement: Placement, rt: &[(String, Vec<usize>)]) -> Result<(), Error> {
        let mut hyp = self.work.hyp();
        let mut pins = Vec::new();
        for (name, harts) in rt {
            let (index, _) = hyp.vms().find(|(_, v)| v.name() == name).ok_or_else(|| Error::VmName(name.clone()))?;
            pins.push((index, harts.iter().map(|&h| HartIndex(h)).collect()));
        }
        Ok(hyp.configure_placement(placement, &pins)?)
    }

    /// Builds the machine for `cfg`: checks the limits, creates every VM
    /// with its images, devices and console, and prepares the harts.
    pub fn new(cfg: &RunConfig) -> Result<HypMachine, Error> {
        Self::with_spare_memory(cfg, 0)
    }

    /// As [`new`](Self::new), with `spare` bytes of machine memory beyond
    /// what `cfg`'s VMs need, for VMs created later through the control
    /// API (`strata run --spare-memory`).
    pub fn with_spare_memory(cfg: &RunConfig, spare: u64) -> Result<HypMachine, Error> {
        if cfg.vms.is_empty() {
            return Err(Error::NoVm);
        }
        // No file may serve two jobs (one log for two VMs, a log over a disk).
        crate::hostpaths::check(&crate::hostpaths::run_paths(cfg))?;
        let mut names = std::collections::BTreeSet::new();
        for vm in &cfg.vms {
            if vm.name.is_empty() || !names.insert(vm.name.clone()) {
                return Err(Error::VmName(vm.name.clone()));
            }
            check_harts(&format!("VM {}: {} vCPUs", vm.name, vm.vcpus), vm.vcpus)?;
            if vm.protected && vm.virtio.count() > 0 {
                return Err(Error::ProtectedWithDevices.in_vm(&vm.name));
            }
            check_ram(&format!("VM {}: memory", vm.name), vm.memory)?;
        }
        let vcpus: u32 = cfg.vms.iter().map(|v| v.vcpus).sum();
        let harts = cfg.harts.unwrap_or_else(|| vcpus.min(8));
        check_harts(&format!("--harts {harts}"), harts)?;
        // Machine memory: the VMs' RAM, plus their G-stage tables (one page
        // per 512 mapped, a 16 KiB root and a few upper levels each) and
        // room to move pages around.
        let vm_total: u64 = cfg.vms.iter().map(|v| v.memory).sum();
        let spare = spare.next_multiple_of(4096);
        let machine = vm_total + vm_total / 256 + 16 * MIB * cfg.vms.len() as u64 + spare + spare / 256;
        check_host_ram("the VMs' machine memory", machine)?;
        let ram = Arc::new(GuestRam::new(MACHINE_RAM_BASE, machine).map_err(Error::Board)?);
        let mem = Box::new(Ram(ram.clone()));
        let mut hyp = Hypervisor::new(mem, MACHINE_RAM_BASE, machine / 4096, harts as usize, cfg.policy)?;

        let labelled = cfg.vms.len() > 1;
        let mut consoles = Vec::new();
        let mut virtio = Vec::new();
        for vm in &cfg.vms {
            let slots = vm.virtio.slots(&layout::BOARD).map_err(|e| Error::from(e).in_vm(&vm.name))?;
            let mut devs = vm.virtio.build_devices().map_err(|e| e.in_vm(&vm.name))?;
            for (name, _) in devs.iter_mut().filter(|_| cfg.vms.len() > 1) {
                *name = format!("VM {}: {name}", vm.name);
            }
            let VmImages { segments, entry, dtb, dtb_measured } =
                vm_images(vm, &slots, guest_extensions(cfg.extensions))?;
            let log = match &vm.serial_log {
                Some(p) => Some(crate::hostpaths::open_serial_log(p)?),
                None => None,
            };
            let con = Arc::new(Mutex::new(VmConsole {
                label: labelled.then(|| vm.name.clone()),
                stdout: cfg.console_stdout,
                log,
                line: Vec::new(),
                capture: Vec::new(),
            }));
            let sink = {
                let c = con.clone();
                Box::new(move |b: u8| lock(&c).push(b)) as strata_devices::uart::UartSink
            };
            // Each virtio device, as the VM's specification describes it:
            // built by the hypervisor with the VM's DMA map and PLIC line,
            // and kept here for polling.
            let mut devices = Vec::new();
            let mut built = Vec::new();
            for ((name, dev), &(base, irq)) in devs.into_iter().zip(&slots) {
                let (ram, cell) = (ram.clone(), Arc::new(OnceLock::new()));
                built.push(cell.clone());
                devices.push(DeviceSpec {
                    name: "virtio-mmio",
                    base,
                    size: layout::BOARD.virtio.size,
                    irq,
                    build: Box::new(move |w| {
                        let mem: Arc<dyn GuestMemory> = Arc::new(VmMemory { ram, map: w.dma });
                        let m = Arc::new(Mutex::new(VirtioMmio::new(dev, mem, w.irq, name)));
                        let _ = cell.set(m.clone());
                        Ok(Box::new(SharedMmio(m)) as Box<dyn MmioDevice>)
                    }),
                });
            }
            hyp.create_vm(VmSpec {
                name: vm.name.clone(),
                memory: vm.memory,
                vcpus: vm.vcpus,
                protected: vm.protected,
                paging: vm.paging,
                segments,
                entry,
                dtb,
                dtb_measured: Some(dtb_measured),
                console: sink,
                clock: host_clock(),
                devices,
            })?;
            consoles.push(con);
            virtio.extend(built.iter().filter_map(|c| c.get().cloned()));
        }

        let time = cfg.clock.timebase();
        // STRATA_PERF_MAP names only ordinary VMs' code (issue 12 item 10).
        let named: Vec<u64> = hyp.vms().filter(|(_, v)| !v.protected()).map(|(_, v)| v.vmid()).collect();
        let harts: Vec<Hart> = (0..harts)
            .map(|h| {
                let mut hart = Hart::new(h as u64, ram.clone(), strata_devices::HartIrqs::new());
                hart.reset(0);
                hart.set_jit(cfg.jit);
                hart.set_extensions(cfg.extensions);
                hart.set_perf_map_vmids(Some(named.clone()));
                hart.set_hypervisor_mode();
                hart.enable_tlb_reverse_index();
                let mut ops =
                    HypHart { hart: &mut hart, bus: HypBus(time.clone()), ram_base: MACHINE_RAM_BASE, paused: false };
                Hypervisor::init_hart(&mut ops);
                hart
            })
            .collect();
        let irqs: Vec<_> = harts.iter().map(|h| h.irqs().clone()).collect();
        let n = harts.len();
        let clock = time.clone();
        let smp = Arc::new(Smp::new(
            hyp,
            n,
            Box::new(move |h: HartIndex| {
                if let Some(i) = irqs.get(h.0) {
                    i.wake();
                }
            }),
            Box::new(move || clock.now()),
        ));
        let host = Arc::new(HypHost { smp: smp.clone(), time: time.clone(), threaded: AtomicBool::new(false) });
        let work = Hypervised {
            smp,
            host,
            consoles,
            focus: 0,
            extensions: cfg.extensions,
            console_stdout: cfg.console_stdout,
        };
        Runner::from_parts(ram, harts, work, time, cfg.clock, virtio, cfg.console_stdin)
    }

    /// The hypervisor (its VMs, vCPUs, memory and counters), locked.
    pub fn hyp(&self) -> HypGuard<'_> {
        self.work.smp.lock()
    }

    pub fn hyp_mut(&mut self) -> HypGuard<'_> {
        self.work.smp.lock()
    }

    /// The hypervisor as hart threads share it: for a thread that changes
    /// it while the harts run (`Smp::with_remote_harts`).
    pub fn smp(&self) -> Arc<Smp> {
        self.work.smp.clone()
    }

    /// The VM whose console gets the input.
    pub fn console_focus(&self) -> usize {
        self.work.focus
    }

    /// Everything VM `vm` printed so far (for tests).
    pub fn console_output(&self, vm: usize) -> Vec<u8> {
        self.work.consoles.get(vm).map(|c| lock(c).capture.clone()).unwrap_or_default()
    }

    /// The harts, as the hypervisor drives them.
    pub fn with_harts<R>(&mut self, f: impl FnOnce(&mut Hypervisor, &mut [&mut dyn HartOps]) -> R) -> R {
        let time = self.timebase();
        let mut ops = hart_ops(&mut self.harts, &time);
        let mut refs: Vec<&mut dyn HartOps> = ops.iter_mut().map(|h| h as &mut dyn HartOps).collect();
        for (i, h) in refs.iter_mut().enumerate() {
            self.work.smp.serve(HartIndex(i), &mut **h);
        }
        f(&mut self.work.smp.lock(), &mut refs)
    }
}

/// Builds a VM's boot images (kernel, initrd, device tree) the way the
/// bare board would, and returns them as segments to write into the VM's
/// fresh memory.
/// A VM's boot images as (address, bytes) segments, its entry and its
/// device tree's address.
/// A VM's images as loaded, before the hypervisor has the VM.
struct VmImages {
    segments: Vec<(u64, Vec<u8>)>,
    entry: u64,
    dtb: u64,
    /// The device tree with its seeds zeroed (what evidence measures).
    dtb_measured: Vec<u8>,
}

/// The measurement the evidence of VM `vm` of `cfg` will carry
/// (strata_hypervisor::attest), from the files alone: the same images and
/// device tree `strata run` builds for it, without running anything.
pub fn vm_measurement(cfg: &RunConfig, vm: &VmConfig) -> Result<[u8; 32], Error> {
    let slots = vm.virtio.slots(&layout::BOARD).map_err(|e| Error::from(e).in_vm(&vm.name))?;
    let i = vm_images(vm, &slots, guest_extensions(cfg.extensions))?;
    Ok(strata_hypervisor::vm::measure_images(
        vm.memory,
        vm.vcpus,
        i.entry,
        i.dtb,
        vm.protected,
        &i.segments,
        Some(&i.dtb_measured),
    ))
}

fn vm_images(vm: &VmConfig, virtio_slots: &[(u64, u32)], exts: Extensions) -> Result<VmImages, Error> {
    let segs = Segments::new(layout::RAM_BASE, vm.memory);
    let (l, dtb_measured) = boot::load_for_vm(
        &segs,
        &BootConfig {
            bios: None,
            kernel: &vm.kernel,
            initrd: vm.initrd.as_deref(),
            append: &vm.append,
            sbi_provided: true,
            fdt: FdtConfig {
                harts: vm.vcpus,
                isa_base: exts.isa_base(),
                isa_extensions: exts.names().into_iter().map(String::from).collect(),
                mmu_type: "riscv,sv48".into(),
                board: layout::BOARD,
                ram_size: vm.memory,
                bootargs: String::new(),
                initrd: None,
                virtio_mmio: virtio_slots.to_vec(),
                tpm_log: None,
                iommu: false,
            },
        },
    )
    .map_err(|e| Error::from(e).in_vm(&vm.name))?;
    Ok(VmImages { segments: segs.into_segments(), entry: l.entry, dtb: l.dtb, dtb_measured })
}

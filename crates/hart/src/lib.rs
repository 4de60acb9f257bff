//! A RISC-V RV64GC hart: decode, execute, CSRs, privilege modes, traps and
//! interrupts.
//!
//! The hart reaches guest RAM directly (through its TLB) and everything
//! else through the small [`Bus`] trait, so it knows nothing of the board
//! it is placed on.

mod bitmanip;
mod code;
pub mod csr;
mod debug;
pub mod decode;
mod exec;
mod fp;
/// The encoding table: one home, `strata-arch`.
pub use strata_arch::isa;
#[cfg(target_arch = "x86_64")]
mod jit;
mod mem;
mod progress;
pub mod state;
pub mod stats;
pub mod trap;
#[cfg(test)]
mod zawrs_tests;

use std::sync::Arc;

use csr::{hgatp, satp, status, Csrs};
use decode::Insn;
pub use progress::{NoProgress, NO_PROGRESS_TRAPS};
pub use strata_arch::ext::{cpu_model, Ext, Extensions, CACHE_BLOCK_SIZE, CPU_MODELS};
use strata_irq::HartIrqs;
use strata_memory::GuestRam;
use strata_mmu::pmp::Pmp;
use strata_mmu::space::{SpaceKey, Spaces, VmidStats};
use strata_mmu::tlb::{Tlb, SPACE_SHIFT};
pub use strata_mmu::Priv;
pub use trap::TrapTarget;

/// What a hart needs from the board besides RAM.
pub trait Bus {
    /// A load from a non-RAM physical address; `None` is an access fault.
    fn mmio_read(&mut self, pa: u64, size: u8) -> Option<u64>;
    /// A store to a non-RAM physical address; `false` is an access fault.
    fn mmio_write(&mut self, pa: u64, size: u8, value: u64) -> bool;
    /// The current value of the platform timer (`mtime`), which the `time`
    /// CSR reads (Zicntr).
    fn mtime(&self) -> u64;
}

/// A bus with nothing on it: every MMIO access fails, `mtime` stands at 0
/// (for looking at CSRs from the host, and for the hart's own tests).
pub(crate) struct NoBus;

impl Bus for NoBus {
    fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
        None
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
        false
    }
    fn mtime(&self) -> u64 {
        0
    }
}

pub use code::CodeStats;
pub use debug::{DebugHit, Touched};
pub use state::HartState;

pub struct Hart {
    pub hartid: u64,
    pub x: [u64; 32],
    /// FP registers as raw 64-bit patterns (single values NaN-boxed).
    pub f: [u64; 32],
    pub pc: u64,
    pub prv: Priv,
    /// The virtualization mode V (Priv. §8.1): with `prv`, U/HS/M when
    /// false, VU/VS when true.
    pub virt: bool,
    pub csr: Csrs,
    pub pmp: Pmp,
    /// Retired instructions (the basis of `minstret` and `mcycle`).
    pub instret: u64,
    /// Loads and stores that JIT code served from the TLB inline since it
    /// was entered; moved to the TLB's hit counters when it returns.
    jit_hits: u64,
    /// Waiting in WFI for an interrupt.
    pub wfi: bool,
    /// The hart ran a WFI that could not wait (an interrupt pending in
    /// `mie` but masked), since this was last cleared: it polls memory that
    /// another hart will change, so its thread may nap.
    pub wfi_spin: bool,
    /// Other harts run at the same time, on other host threads: a FENCE.I
    /// then also compares recently decoded pages with RAM (see `exec.rs`).
    parallel: bool,
    /// The hart ran PAUSE (Zihintpause; Linux's `cpu_relax`, in every spin
    /// loop) since this was last cleared: it waits for another hart, so a
    /// hart thread gives up the host CPU (`runner/parallel.rs`).
    pub paused: bool,
    pub stats: stats::HartStats,

    ram: Arc<GuestRam>,
    irqs: Arc<HartIrqs>,
    tlb: Tlb,
    /// G-stage translations of VS-stage page-table pages (see `mem.rs`).
    gcache: mem::GCache,
    /// Address-space slots of the TLB, and the current ones: for `satp`
    /// (0 when Bare) and for the `vsatp`/`hgatp` pair.
    spaces: Spaces,
    space_s: u8,
    space_v: u8,
    /// TLB context ids for fetches and for loads/stores (see
    /// `update_mmu_ctx`).
    ctx_fetch: u16,
    ctx_data: u16,
    /// What the next trap carries besides cause and tval, set by the paths
    /// that raise guest-page faults and faults on guest virtual addresses.
    trap_extra: trap::TrapExtra,
    /// Hypervisor mode (`strata run`): HS-mode is Strata's hypervisor, code
    /// on the host, so a trap into HS stops the hart (see
    /// [`Hart::run_guest`]) instead of running code at `stvec`.
    hyp_mode: bool,
    /// Set when a trap went to HS (or M) in hypervisor mode.
    hyp_exit: Option<TrapTarget>,
    /// Write transformed load/store instructions to `htinst`/`mtinst` on
    /// guest-page faults (§8.6.3). Off, the hart writes zero, which the
    /// spec also allows: hypervisor developers can test their fallback.
    pub transformed_tinst: bool,
    /// LR reservation: the physical address reserved, if any.
    reservation: Option<u64>,
    /// The value the last LR read (an SC succeeds only if memory still
    /// holds it, the way a compare-and-swap based implementation behaves).
    lr_value: u64,
    /// Set by anything that may change which interrupt is deliverable, so
    /// the run loop re-checks before the next instruction.
    event: bool,
    /// Set by a WFI that could not wait (an interrupt is pending that
    /// cannot be taken yet): `run` gives up the rest of its budget.
    yield_slice: bool,
    /// The bits of the instruction being executed (for `mtval` on illegal
    /// instructions).
    cur_insn_bits: u64,
    /// Whether the hart keeps trapping without progress (`progress.rs`).
    watch: progress::ProgressWatch,
    code: code::CodeCache,
    /// The ISA extensions this hart implements (`set_extensions`).
    exts: Extensions,
    /// The block compiler and its code, when on (`set_jit`).
    #[cfg(target_arch = "x86_64")]
    jit: Option<Box<jit::Jit>>,
    /// The VMIDs whose code the JIT may name in the `STRATA_PERF_MAP` file
    /// while V=1 (`None`: any). See [`set_perf_map_vmids`](Self::set_perf_map_vmids).
    perf_map_vmids: Option<Vec<u64>>,
}

/// One cached translation (see [`Hart::tlb_entries`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlbEntry {
    pub access: strata_mmu::Access,
    pub vmid: Option<u64>,
    pub va: u64,
    pub gpa: Option<u64>,
    pub ram_page: u64,
}

/// Why [`Hart::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunExit {
    /// The budget was used up.
    Budget,
    /// The hart is in WFI with nothing to wake it.
    Idle,
}

impl Hart {
    pub fn new(hartid: u64, ram: Arc<GuestRam>, irqs: Arc<HartIrqs>) -> Self {
        let mut h = Self {
            hartid,
            x: [0; 32],
            f: [0; 32],
            pc: 0,
            prv: Priv::M,
            virt: false,
            csr: Csrs::default(),
            pmp: Pmp::new(),
            instret: 0,
            jit_hits: 0,
            wfi: false,
            stats: stats::HartStats::default(),
            ram,
            irqs,
            tlb: Tlb::new(),
            gcache: mem::GCache::new(),
            spaces: Spaces::new(),
            space_s: 0,
            space_v: 0,
            ctx_fetch: 0,
            ctx_data: 0,
            trap_extra: trap::TrapExtra::default(),
            hyp_mode: false,
            hyp_exit: None,
            transformed_tinst: true,
            reservation: None,
            lr_value: 0,
            event: true,
            yield_slice: false,
            paused: false,
            parallel: false,
            wfi_spin: false,
            cur_insn_bits: 0,
            watch: progress::ProgressWatch::default(),
            code: code::CodeCache::new(),
            exts: Extensions::DEFAULT,
            #[cfg(target_arch = "x86_64")]
            jit: None,
            perf_map_vmids: None,
        };
        h.atp_changed();
        h
    }

    /// Sets the ISA extensions the hart implements (the default is
    /// [`Extensions::DEFAULT`]). Instructions of the others raise an
    /// illegal-instruction exception. `misa` does not change: every
    /// extension that has a `misa` bit is always present, and the ones
    /// that can be left out have none (B, the bit of Zba+Zbb+Zbs, is not
    /// set: see docs/isa.md).
    /// The set always includes [`Extensions::RV64GC`], which `misa` names.
    pub fn set_extensions(&mut self, exts: Extensions) {
        self.exts = exts.union(Extensions::RV64GC);
        // Decoded instructions (and blocks compiled from them) may name
        // operations the new set lacks.
        self.code.clear();
    }

    /// The ISA extensions the hart implements.
    pub fn extensions(&self) -> Extensions {
        self.exts
    }

    /// Puts the hart in the reset state the platform wants: M-mode at `pc`.
    pub fn reset(&mut self, pc: u64) {
        self.pc = pc;
        self.prv = Priv::M;
        self.virt = false;
        self.csr = Csrs::default();
        self.csr.mstatus = 0;
        self.wfi = false;
        self.reservation = None;
        self.spaces.clear(&mut self.tlb);
        self.tlb.flush();
        self.gcache.clear();
        self.code.clear();
        self.atp_changed();
        self.event = true;
        self.watch = progress::ProgressWatch::default();
        self.note_mode_entry();
    }

    /// Enters privilege `p` with virtualization mode `virt`.
    pub(crate) fn set_mode(&mut self, p: Priv, virt: bool) {
        debug_assert!(!(virt && p == Priv::M));
        self.prv = p;
        self.virt = virt;
        self.note_mode_entry();
        self.update_mmu_ctx();
        self.event = true;
    }

    /// Recomputes the TLB context ids after a change of privilege, V,
    /// `mstatus` or `vsstatus`. An id is the address-space slot (bits 10..6)
    /// and the mode bits that change the outcome of a translation: the
    /// privilege (bits 1..0), SUM (bit 2), MXR as the first stage sees it
    /// (bit 3), MXR as the G-stage sees it (bit 4), and V (bit 5).
    pub(crate) fn update_mmu_ctx(&mut self) {
        let ms = self.csr.mstatus;
        let vss = self.csr.vsstatus;
        let ctx = |p: Priv, virt: bool| -> u16 {
            let b = |v: u64, f: u64| (v & f != 0) as u16;
            match (p, virt) {
                (Priv::M, _) => Priv::M as u16,
                (_, false) if self.space_s == 0 => p as u16,
                (_, false) => {
                    (self.space_s as u16) << SPACE_SHIFT | p as u16 | b(ms, status::SUM) << 2 | b(ms, status::MXR) << 3
                }
                (_, true) => {
                    (self.space_v as u16) << SPACE_SHIFT
                        | p as u16
                        | b(vss, status::SUM) << 2
                        | b(vss | ms, status::MXR) << 3
                        | b(ms, status::MXR) << 4
                        | 1 << 5
                }
            }
        };
        self.ctx_fetch = ctx(self.prv, self.virt);
        let d = self.data_mode();
        self.ctx_data = ctx(d.prv, d.virt);
    }

    /// `satp`, `vsatp` or `hgatp` changed: pick the address-space slots the
    /// TLB uses now. Nothing is flushed (§4.1.11, §8.2.10: software fences
    /// when it reuses an ASID or VMID for new tables).
    pub(crate) fn atp_changed(&mut self) {
        let c = &self.csr;
        let (satp_v, vsatp_v, hgatp_v) = (c.satp, c.vsatp, c.hgatp);
        self.space_s = if satp_v >> satp::MODE_SHIFT == satp::BARE {
            0
        } else {
            self.spaces.slot_for(SpaceKey { virt: false, atp: satp_v, hgatp: 0 }, &[self.space_v], &mut self.tlb)
        };
        self.space_v =
            self.spaces.slot_for(SpaceKey { virt: true, atp: vsatp_v, hgatp: hgatp_v }, &[self.space_s], &mut self.tlb);
        self.update_mmu_ctx();
        self.event = true;
    }

    /// Drops every cached translation (after a PMP change, §3.7.2).
    pub(crate) fn flush_all_translations(&mut self) {
        self.tlb.flush();
        self.gcache.clear();
        self.event = true;
    }

    /// SFENCE.VMA (§4.2.1; with V=1 it applies to the current VM's VS-stage,
    /// §8.5.3) and HFENCE.VVMA (§8.3.2): drop the entries of the matching
    /// address spaces, for one address or all.
    pub(crate) fn fence_vma(&mut self, virt: bool, va: Option<u64>, asid: Option<u64>) {
        let vmid = self.csr.hgatp & hgatp::VMID_MASK;
        let mask = self.spaces.mask_where(|k| {
            k.virt == virt
                && (!virt || k.hgatp & hgatp::VMID_MASK == vmid)
                && asid.is_none_or(|a| k.asid() == a & (satp::ASID_MASK >> satp::ASID_SHIFT))
        });
        self.tlb.flush_spaces(mask, va);
        self.event = true;
    }

    /// HFENCE.GVMA executed by host software in HS-mode (Strata's
    /// hypervisor); `gpa` is not shifted.
    pub fn hfence_gvma(&mut self, gpa: Option<u64>, vmid: Option<u64>) {
        self.stats.count_fence(stats::Fence::HfenceGvma);
        self.fence_gvma(gpa, vmid);
    }

    /// HFENCE.VVMA executed by host software in HS-mode (Strata's
    /// hypervisor, for a shadow-paged guest's intercepted SFENCE.VMA): the
    /// VS-stage entries of the current `hgatp` VMID, for `va` and `asid`.
    pub fn hfence_vvma(&mut self, va: Option<u64>, asid: Option<u64>) {
        self.stats.count_fence(stats::Fence::HfenceVvma);
        self.fence_vma(true, va, asid);
    }

    /// HFENCE.GVMA (§8.3.2): drop the combined entries of the matching VMs
    /// whose G-stage leaf covers `gpa`, or all of them.
    pub(crate) fn fence_gvma(&mut self, gpa: Option<u64>, vmid: Option<u64>) {
        let mask = self
            .spaces
            .mask_where(|k| k.virt && vmid.is_none_or(|v| k.vmid() == v & (hgatp::VMID_MASK >> hgatp::VMID_SHIFT)));
        self.tlb.flush_gpa(mask, gpa);
        self.gcache.clear();
        self.event = true;
    }

    /// Drops every cached translation, in every address space, that reaches
    /// the guest-RAM page at offset `ram_page << 12` (invalidation by
    /// physical address, used when a page changes hands). Returns how many.
    pub fn invalidate_ram_page(&mut self, ram_page: u64) -> u64 {
        let before = self.tlb.stats.dropped;
        self.tlb.flush_ram_page(ram_page);
        self.gcache.clear();
        self.event = true;
        self.tlb.stats.dropped - before
    }

    /// The coarse alternatives to [`invalidate_ram_page`](Self::invalidate_ram_page) for a change to
    /// RAM page `ram_page`: drop every translation of the VMs with these
    /// VMIDs (`Some`), or of every address space (`None`), counting the
    /// collateral. Returns (dropped, collateral).
    pub fn invalidate_coarse(&mut self, vmids: Option<&[u64]>, ram_page: u64) -> (u64, u64) {
        let (d, c) = (self.tlb.stats.dropped, self.tlb.stats.collateral_dropped);
        let mask = match vmids {
            Some(ids) => self.spaces.mask_where(|k| k.virt && ids.contains(&k.vmid())),
            None => u64::MAX,
        };
        self.tlb.flush_spaces_for_page(mask, ram_page);
        self.gcache.clear();
        self.event = true;
        (self.tlb.stats.dropped - d, self.tlb.stats.collateral_dropped - c)
    }

    /// Keeps a reverse index from RAM pages to TLB entries, which makes
    /// [`invalidate_ram_page`](Self::invalidate_ram_page) cost what the page has, not the TLB's size.
    pub fn enable_tlb_reverse_index(&mut self) {
        self.tlb.enable_reverse_index(self.ram.pages());
    }

    /// The TLB's live entries, for checking them against the page tables:
    /// (access kind, VMID for two-stage entries, virtual page address,
    /// guest-physical page address, RAM page number).
    pub fn tlb_entries(&self) -> Vec<TlbEntry> {
        self.tlb
            .entries()
            .into_iter()
            .map(|(access, ctx, va, gpa, ram_page)| {
                let key = self.spaces.key(strata_mmu::tlb::ctx_space(ctx));
                TlbEntry { access, vmid: key.filter(|k| k.virt).map(|k| k.vmid()), va, gpa, ram_page }
            })
            .collect()
    }

    /// TLB hits and misses by (V, VMID).
    pub fn tlb_vmid_stats(&self) -> VmidStats {
        self.spaces.vmid_stats(&self.tlb)
    }

    /// Forgets the JIT's jump cache (blocks it names may have been
    /// dropped with their decoded page).
    pub(crate) fn forget_jumps(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(j) = self.jit.as_mut() {
            j.forget_jumps();
        }
    }

    /// Tells the hart whether other harts run at the same time on other
    /// host threads (the runner's parallel mode).
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on;
        self.code.track_fills(on);
    }

    pub fn irqs(&self) -> &Arc<HartIrqs> {
        &self.irqs
    }

    pub fn tlb_stats(&self) -> strata_mmu::tlb::TlbStats {
        self.tlb.stats
    }

    pub fn code_stats(&self) -> CodeStats {
        self.code.stats
    }

    /// Leaves WFI if an interrupt is pending and enabled in `mie` (§3.3.3:
    /// WFI resumes on any such interrupt, whatever the global enables), then
    /// takes the highest-priority deliverable interrupt, if any.
    pub fn poll_interrupts(&mut self) {
        if self.mip() & self.csr.mie != 0 {
            self.wfi = false;
        }
        if let Some(c) = self.interrupt_to_take() {
            self.take_trap(c, 0);
        }
    }

    /// Runs up to `budget` instructions (trapping ones included). Returns
    /// the number of instruction slots used and why it stopped.
    pub fn run(&mut self, bus: &mut dyn Bus, budget: u64) -> (u64, RunExit) {
        let mut used = 0;
        let mut exit = RunExit::Budget;
        self.sstc_on_entry(bus);
        while used < budget {
            self.event = false;
            if self.hyp_exit.is_some() {
                break;
            }
            self.poll_interrupts();
            if self.wfi {
                exit = RunExit::Idle;
                break;
            }
            while used < budget {
                used += self.run_from(bus, self.pc, budget - used);
                if self.event {
                    break;
                }
            }
            if std::mem::take(&mut self.yield_slice) {
                break;
            }
        }
        // Another hart or a device may touch memory before this hart runs
        // again; an SC after that must fail (§8.2 allows spurious failure).
        self.reservation = None;
        self.stats.steps += used;
        (used, exit)
    }

    /// Sstc: time has moved since the last run; compare again. Every way
    /// of running the hart ([`run`](Self::run),
    /// [`run_until`](Self::run_until)) starts with it, or a timer line
    /// would stay low for as long as the hart is run that way.
    #[inline]
    fn sstc_on_entry(&mut self, bus: &mut dyn Bus) {
        if self.csr.menvcfg & csr::envcfg::STCE != 0 || self.csr.sstc_ip != 0 {
            self.sstc_update(bus.mtime());
        }
    }

    /// Runs from `pc` to the end of its code page at most (`budget`
    /// slots), or one instruction where the page may not be cached, or
    /// takes the fetch's trap; the slots used.
    #[inline(always)]
    fn run_from(&mut self, bus: &mut dyn Bus, pc: u64, budget: u64) -> u64 {
        match self.enter_code_page(pc) {
            Ok(Some(idx)) => self.run_code_page(bus, idx, pc, budget),
            Ok(None) => {
                self.step_slow(bus);
                1
            }
            Err(t) => {
                self.take_trap(t.cause, t.tval);
                1
            }
        }
    }

    /// Finds the decoded-code page for `pc`, if its page may be cached:
    /// the fetch translation is in the TLB (or goes there now).
    #[inline]
    fn enter_code_page(&mut self, pc: u64) -> Result<Option<usize>, trap::Trap> {
        let off = match self.tlb.lookup(strata_mmu::Access::Fetch, pc, self.ctx_fetch) {
            Some(off) => {
                self.tlb.count_fetch_hit(self.ctx_fetch);
                off
            }
            None => {
                self.tlb.note_miss(strata_mmu::Access::Fetch, pc, self.ctx_fetch);
                self.translate_fetch(pc)?;
                match self.tlb.lookup(strata_mmu::Access::Fetch, pc, self.ctx_fetch) {
                    Some(off) => off,
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(self.code.enter(&self.ram, off >> 12)))
    }

    /// Runs code from decoded-code page `idx` starting at `pc` (=
    /// `self.pc`): compiled blocks when the JIT is on, else the interpreter.
    #[inline(always)]
    fn run_code_page(&mut self, bus: &mut dyn Bus, idx: usize, pc: u64, budget: u64) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.jit.is_some() {
            return self.run_page_jit(bus, idx, pc, budget);
        }
        self.run_page(bus, idx, pc, budget)
    }

    /// JIT on/off where there is no JIT: always off.
    #[cfg(not(target_arch = "x86_64"))]
    pub fn set_jit(&mut self, _on: bool) -> bool {
        false
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn jit_stats(&self) -> Option<stats::JitStats> {
        None
    }

    /// Runs instructions from decoded-code page `idx`, starting at `pc`,
    /// while control stays in the page, nothing sets `event`, and `budget`
    /// lasts. Returns the instruction slots used; `self.pc` is up to date.
    #[inline(always)]
    fn run_page(&mut self, bus: &mut dyn Bus, idx: usize, mut pc: u64, budget: u64) -> u64 {
        let vpage = pc & !0xfff;
        let mut used = 0;
        loop {
            used += 1;
            let Some(s) = self.code.slot(&self.ram, idx, (pc & 0xfff) as usize, self.exts) else {
                // A 32-bit instruction straddling the page end.
                self.pc = pc;
                self.step_slow(bus);
                return used;
            };
            self.cur_insn_bits = s.raw as u64;
            match self.execute(bus, s.insn, s.raw, pc) {
                Ok(next) => {
                    self.instret += 1;
                    pc = next;
                }
                Err(t) => {
                    self.pc = pc;
                    self.note_transformed_insn(&s.insn, s.raw, &t);
                    self.take_trap(t.cause, t.tval);
                    return used;
                }
            }
            if self.event || used >= budget || pc & !0xfff != vpage {
                self.pc = pc;
                return used;
            }
        }
    }

    /// Runs one instruction without the decoded-code cache (and takes its
    /// trap, if it raises one).
    fn step_slow(&mut self, bus: &mut dyn Bus) {
        match self.step(bus) {
            Ok(()) => self.instret += 1,
            Err(t) => self.take_trap(t.cause, t.tval),
        }
    }

    /// Fetches, decodes and executes one instruction, without the
    /// decoded-code cache. On success `self.pc` moves on; on a trap it still
    /// names the instruction.
    pub fn step(&mut self, bus: &mut dyn Bus) -> Result<(), trap::Trap> {
        self.step_seen(bus, |_, _| {})
    }

    /// [`step`](Self::step), showing `see` the decoded instruction and the
    /// hart as it is before the instruction runs (a debugger's watchpoints,
    /// `debug.rs`).
    #[inline(always)]
    pub(crate) fn step_seen(&mut self, bus: &mut dyn Bus, see: impl FnOnce(&Hart, &Insn)) -> Result<(), trap::Trap> {
        let raw = self.fetch(bus)?;
        let key = if raw & 3 == 3 { raw } else { raw & 0xffff };
        let insn: Insn = decode::decode_for(key, self.exts);
        self.cur_insn_bits = key as u64;
        see(self, &insn);
        match self.execute(bus, insn, key, self.pc) {
            Ok(next) => {
                self.pc = next;
                Ok(())
            }
            Err(t) => {
                self.note_transformed_insn(&insn, key, &t);
                Err(t)
            }
        }
    }

    // ---- hypervisor mode ---------------------------------------------------

    /// Puts the hart under a host-side hypervisor: from now on a trap into
    /// HS-mode (or M-mode) ends [`run_guest`](Self::run_guest) with the
    /// trap's CSRs written as the architecture says, for the hypervisor to
    /// read. The hart starts in HS-mode with nothing delegated to M's care:
    /// `medeleg` and `mideleg` hand every delegable trap to HS.
    pub fn set_hypervisor_mode(&mut self) {
        self.hyp_mode = true;
        self.csr.medeleg = csr::MEDELEG_WRITABLE;
        self.csr.mideleg = csr::IP_S;
        // No M-mode software: counters are HS's to hand out (hcounteren),
        // and PMP entry 0 opens all of memory to S and U (§3.7.1: with PMP
        // implemented and no entry matching, S/U accesses fail), as the
        // firmware of a bare machine would.
        self.csr.mcounteren = 0xffff_ffff;
        self.pmp.write_addr(0, u64::MAX >> 10);
        self.pmp.write_cfg(0, 0x1f); // NAPOT, R W X
        self.tlb.flush();
        // FP state on, so guests may turn theirs on in vsstatus.
        self.csr.mstatus |= status::FS;
        self.set_mode(Priv::S, false);
    }

    /// Limits what `STRATA_PERF_MAP=1` writes about guests: while V=1, a
    /// compiled block goes into the map only if the VMID in `hgatp` is one
    /// of `vmids` (`None`, the default: every block). The map names guest
    /// code addresses in a host file any host user may read, so a
    /// hypervisor lists only its ordinary VMs here and a protected VM's
    /// code stays out (issue 12 item 10); an allow-list fails closed for
    /// a VMID nobody listed.
    pub fn set_perf_map_vmids(&mut self, vmids: Option<Vec<u64>>) {
        self.perf_map_vmids = vmids;
    }

    /// Whether the JIT may name the code it compiles now in the perf map.
    #[cfg(target_arch = "x86_64")]
    fn perf_map_allowed(&self) -> bool {
        let vmid = (self.csr.hgatp & csr::hgatp::VMID_MASK) >> csr::hgatp::VMID_MASK.trailing_zeros();
        !self.virt || self.perf_map_vmids.as_ref().is_none_or(|ids| ids.contains(&vmid))
    }

    /// Runs the guest for up to `budget` instruction slots. If the hart
    /// stopped in HS-mode at a trap, it first returns to the guest with SRET
    /// (V = `hstatus.SPV`, privilege = `sstatus.SPP`, pc = `sepc`);
    /// otherwise the guest simply goes on. Returns the slots used and, if a
    /// trap went to HS (or M), where: the guest's state is then where the
    /// trap left it. `None`: the budget ended with the guest still running,
    /// as it would on hardware until the hypervisor's next timer interrupt.
    pub fn run_guest(&mut self, bus: &mut dyn Bus, budget: u64) -> (u64, Option<TrapTarget>) {
        debug_assert!(self.hyp_mode);
        if !self.virt && self.prv == Priv::S {
            self.pc = self.sret_hs();
            self.note_mode_entry();
        }
        self.hyp_exit = None;
        let (used, _) = self.run(bus, budget);
        (used, self.hyp_exit.take())
    }

    /// Takes the guest off the hart with a supervisor timer interrupt into
    /// HS-mode (what the hypervisor's own timer does on hardware), so its
    /// state is in trap form; nothing happens if it is already stopped.
    pub fn preempt_guest(&mut self) {
        if self.virt || self.prv != Priv::S {
            self.watch.preempting();
            self.take_trap(trap::cause::interrupt(strata_arch::irq::STIP), 0);
            self.hyp_exit = None;
        }
    }

    /// HLVX.HU as host software in HS-mode would execute it, to read the
    /// guest instruction at `va` (16 or 32 bits) with execute permission
    /// through both stages (§8.3.1). A fault is returned, not taken: the
    /// caller (a hypervisor emulating the instruction) decides what the
    /// guest sees. Trap state is left as it was.
    pub fn hlvx_insn(&mut self, bus: &mut dyn Bus, va: u64) -> Result<u32, trap::Trap> {
        let saved = self.trap_extra;
        let r = (|| {
            let lo = self.hlv(bus, va, 2, true)? as u32;
            if lo & 3 != 3 {
                return Ok(lo);
            }
            let hi = self.hlv(bus, va.wrapping_add(2), 2, true)? as u32;
            Ok(lo | hi << 16)
        })();
        self.trap_extra = saved;
        r
    }

    /// In hypervisor mode, records that a trap went to `to` (HS or M).
    pub(crate) fn note_hyp_trap(&mut self, to: TrapTarget) {
        if self.hyp_mode && to != TrapTarget::VS {
            self.hyp_exit = Some(to);
        }
    }
}

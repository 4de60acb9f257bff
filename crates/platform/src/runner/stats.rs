//! The machine's counters as data: one [`StatsSnapshot`] gathered from the
//! same sources `--stats` prints (the harts' `HartStats`, TLB, code cache
//! and JIT counters; the runner's time and rounds; the hypervisor's VMs,
//! vCPUs, invalidations and scheduler), written as JSON (`--stats-json`,
//! `GET /vms`) and as Prometheus text (`GET /metrics`).
//!
//! Metric names follow Prometheus's conventions: `strata_` prefix, base
//! units (seconds, bytes), `_total` on counters; labels `hart`, `vm`,
//! `vcpu`, `vmid`, `access`, `kind`, `cause`, `to`, `reason`. Every
//! counter only grows while the machine runs (the harts' and hypervisor's
//! counters are never reset; the TLB's per-address-space counts fold
//! recycled slots into per-VMID totals).

use std::collections::BTreeMap;

use serde::Serialize;
use strata_api::Exposition;
use strata_hart::Hart;

/// Everything `--stats` reports, as numbers.
#[derive(Clone, Debug, Serialize)]
pub struct StatsSnapshot {
    pub wall_seconds: f64,
    pub instructions: u64,
    pub mips: f64,
    pub guest_seconds: f64,
    pub mtime: u64,
    pub clock: &'static str,
    pub rounds: u64,
    pub idle_wait_seconds: f64,
    /// Resident set of the Strata process (Linux `/proc/self/statm`).
    pub host_rss_bytes: Option<u64>,
    pub harts: Vec<HartSnapshot>,
    /// `strata run`: the hypervisor's VMs and counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<HypSnapshot>,
    /// The virtio devices, in slot order (every VM's under `strata run`).
    pub devices: Vec<DeviceSnapshot>,
}

/// One virtio device: the requests its transport completed and the
/// device's own counters (`VirtioDevice::counters`: bytes, frames, a
/// streamed drive's fetches).
#[derive(Clone, Debug, Serialize)]
pub struct DeviceSnapshot {
    /// What messages call it, e.g. `virtio-blk0 (disk.img)`.
    pub name: String,
    /// Used-ring entries written: requests completed.
    pub requests: u64,
    pub counters: BTreeMap<&'static str, u64>,
}

impl DeviceSnapshot {
    pub fn of(d: &strata_devices::virtio::VirtioMmio) -> Self {
        DeviceSnapshot {
            name: d.name().to_string(),
            requests: d.requests(),
            counters: d.counters().into_iter().collect(),
        }
    }

    /// The `--stats` line.
    pub fn line(&self) -> String {
        let mut s = format!("{}: {} requests", self.name, self.requests);
        for (k, v) in &self.counters {
            s += &format!(", {k} {v}");
        }
        s
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HartSnapshot {
    pub hart: u64,
    pub retired: u64,
    pub steps: u64,
    /// TLB misses by access: fetch, load, store.
    pub tlb_misses: [u64; 3],
    pub tlb_fills: u64,
    pub tlb_flushes: u64,
    pub tlb_dropped: u64,
    pub tlb_fence_scans: u64,
    /// Hits and misses by address space (V=0, or V=1 with its VMID).
    pub tlb_spaces: Vec<SpaceSnapshot>,
    pub walks_single_stage: u64,
    pub walks_single_stage_pte_reads: u64,
    pub walks_two_stage: u64,
    pub walks_two_stage_pte_reads: u64,
    pub walks_two_stage_max_pte_reads: u32,
    pub ad_writes: u64,
    /// Fences by kind: sfence.vma, sfence.vma with V=1, hfence.vvma, hfence.gvma.
    pub fences: [u64; 4],
    pub fence_i_stale_pages: u64,
    pub pauses: u64,
    /// Zawrs WRS instructions that stalled (ended the hart's turn).
    pub wrs_stalls: u64,
    /// Traps by destination: M, HS, VS.
    pub traps_to: [u64; 3],
    pub code_page_entries: u64,
    pub code_page_fills: u64,
    pub code_decodes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jit: Option<JitSnapshot>,
    /// Exceptions and interrupts by cause (only causes that happened).
    pub exceptions: BTreeMap<u32, u64>,
    pub interrupts: BTreeMap<u32, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SpaceSnapshot {
    pub virt: bool,
    pub vmid: u64,
    pub hits: u64,
    pub misses: u64,
    pub collateral_misses: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct JitSnapshot {
    pub blocks: u64,
    pub insns: u64,
    pub interp_insns: u64,
    pub bytes: u64,
    pub flushes: u64,
    pub entries: u64,
    pub links: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HypSnapshot {
    pub vms: Vec<VmSnapshot>,
    pub policy: String,
    pub invalidations: u64,
    pub translations_dropped: u64,
    pub translations_dropped_collateral: u64,
    pub sched_switches: u64,
    pub sched_migrations: u64,
    pub sched_wakeup_preemptions: u64,
    /// Real-time placement (docs/realtime.md): the policy; `migrate`'s
    /// borrows of real-time harts and evictions from them (of which
    /// preempted a running vCPU); slots other VMs ran on real-time harts;
    /// the host time real-time moves took, over how many.
    pub placement: String,
    pub rt_borrows: u64,
    pub rt_evictions: u64,
    pub rt_preemptions: u64,
    pub rt_foreign_slots: u64,
    /// The most slots other VMs ran on a real-time hart between a
    /// real-time vCPU there becoming due and its running (one wait).
    pub rt_wait_slots_max: u64,
    /// Picks that gave a hart away from a vCPU spinning on PAUSE.
    pub spin_yields: u64,
    pub move_ns_total: u64,
    pub moves_timed: u64,
    /// The threaded run's per-hart counters (empty on one thread).
    pub harts: Vec<HartSmpSnapshot>,
}

/// One physical hart of a threaded `strata run` (`strata_hypervisor::smp`).
#[derive(Clone, Debug, Serialize)]
pub struct HartSmpSnapshot {
    pub hart: u64,
    /// Shootdown requests it posted and waited for; requests it served and
    /// the translations serving dropped.
    pub shootdown_posted: u64,
    pub shootdown_served: u64,
    pub shootdown_dropped: u64,
    /// Times its thread took the hypervisor's lock, and found it taken.
    pub lock_taken: u64,
    pub lock_contended: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VmSnapshot {
    pub name: String,
    pub vmid: u64,
    pub protected: bool,
    /// "nested" or "shadow".
    pub paging: &'static str,
    pub memory_bytes: u64,
    /// "running", or how it ended.
    pub state: String,
    pub vcpus: Vec<VcpuSnapshot>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VcpuSnapshot {
    pub vcpu: u64,
    /// Instruction slots it ran (its share of the harts).
    pub slots: u64,
    pub exits: u64,
    pub sbi_calls: u64,
    pub mmio: u64,
    pub wfi: u64,
    pub preemptions: u64,
    pub injected: u64,
}

impl HartSnapshot {
    pub fn of(h: &Hart) -> Self {
        let st = &h.stats;
        let t = h.tlb_stats();
        let c = h.code_stats();
        let causes = |v: &[u64]| v.iter().enumerate().filter(|(_, n)| **n > 0).map(|(c, n)| (c as u32, *n)).collect();
        HartSnapshot {
            hart: h.hartid,
            retired: h.instret,
            steps: st.steps,
            tlb_misses: t.misses,
            tlb_fills: t.fills,
            tlb_flushes: t.flushes,
            tlb_dropped: t.dropped,
            tlb_fence_scans: t.fence_scans,
            tlb_spaces: h
                .tlb_vmid_stats()
                .iter()
                .map(|((v, vmid), c)| SpaceSnapshot {
                    virt: *v,
                    vmid: *vmid,
                    hits: c.hits,
                    misses: c.misses,
                    collateral_misses: c.collateral_misses,
                })
                .collect(),
            walks_single_stage: st.walks,
            walks_single_stage_pte_reads: st.walk_refs,
            walks_two_stage: st.walks2,
            walks_two_stage_pte_reads: st.walk2_refs,
            walks_two_stage_max_pte_reads: st.walk2_max_refs,
            ad_writes: st.walk_ad_writes,
            fences: st.fences,
            fence_i_stale_pages: st.fence_i_stale,
            pauses: st.pauses,
            wrs_stalls: st.wrs_stalls,
            traps_to: st.traps_to,
            code_page_entries: c.page_entries,
            code_page_fills: c.page_fills,
            code_decodes: c.decodes,
            jit: h.jit_stats().map(|j| JitSnapshot {
                blocks: j.blocks,
                insns: j.insns,
                interp_insns: j.interp_insns,
                bytes: j.bytes,
                flushes: j.flushes,
                entries: j.runs,
                links: j.links,
            }),
            exceptions: causes(&st.exceptions),
            interrupts: causes(&st.interrupts),
        }
    }
}

/// The process's resident set in bytes (Linux: `/proc/self/statm`, field
/// 2, in pages).
pub fn host_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

const ACCESS: [&str; 3] = ["fetch", "load", "store"];
const FENCES: [&str; 4] = ["sfence.vma", "sfence.vma_v1", "hfence.vvma", "hfence.gvma"];
const TRAP_TO: [&str; 3] = ["M", "HS", "VS"];

impl StatsSnapshot {
    /// The snapshot in the Prometheus text format (`GET /metrics`).
    pub fn prometheus(&self, paused: bool) -> String {
        let mut e = Exposition::new();
        e.gauge("strata_paused", "1 while the machine is paused by the API.", &[], paused as u8 as f64);
        e.counter_f("strata_wall_seconds_total", "Host time the machine has run.", &[], self.wall_seconds);
        e.gauge("strata_mips", "Instructions retired per wall-clock microsecond, over the whole run.", &[], self.mips);
        e.gauge("strata_guest_time_seconds", "Guest time (mtime at the 10 MHz timebase).", &[], self.guest_seconds);
        e.counter("strata_rounds_total", "Rounds of the run loop.", &[], self.rounds);
        e.counter_f("strata_idle_wait_seconds_total", "Host time spent in idle waits.", &[], self.idle_wait_seconds);
        if let Some(rss) = self.host_rss_bytes {
            e.gauge("strata_host_rss_bytes", "Resident set size of the Strata process.", &[], rss as f64);
        }
        for h in &self.harts {
            let id = h.hart.to_string();
            let hart = [("hart", id.as_str())];
            e.counter("strata_instructions_retired_total", "Instructions retired, by hart.", &hart, h.retired);
            e.counter("strata_steps_total", "Instruction slots run (retired plus trapped), by hart.", &hart, h.steps);
            for (a, n) in ACCESS.iter().zip(h.tlb_misses) {
                e.counter(
                    "strata_tlb_misses_total",
                    "TLB misses by hart and access kind.",
                    &[("hart", &id), ("access", a)],
                    n,
                );
            }
            e.counter("strata_tlb_fills_total", "TLB fills.", &hart, h.tlb_fills);
            e.counter("strata_tlb_flushes_total", "TLB flush operations.", &hart, h.tlb_flushes);
            e.counter("strata_tlb_dropped_total", "Live TLB entries dropped by flushes.", &hart, h.tlb_dropped);
            for s in &h.tlb_spaces {
                let vmid = if s.virt { s.vmid.to_string() } else { "host".into() };
                let l = [("hart", id.as_str()), ("vmid", vmid.as_str())];
                e.counter("strata_tlb_space_hits_total", "TLB hits by hart and VMID (host: V=0).", &l, s.hits);
                e.counter("strata_tlb_space_misses_total", "TLB misses by hart and VMID (host: V=0).", &l, s.misses);
                e.counter(
                    "strata_tlb_collateral_misses_total",
                    "TLB misses of translations a coarse invalidation dropped needlessly, by hart and VMID.",
                    &l,
                    s.collateral_misses,
                );
            }
            for (stages, n, refs) in [
                ("1", h.walks_single_stage, h.walks_single_stage_pte_reads),
                ("2", h.walks_two_stage, h.walks_two_stage_pte_reads),
            ] {
                let l = [("hart", id.as_str()), ("stages", stages)];
                e.counter("strata_page_walks_total", "Page-table walks by hart and stages.", &l, n);
                e.counter("strata_page_walk_pte_reads_total", "PTEs read by walks, by hart and stages.", &l, refs);
            }
            for (k, n) in FENCES.iter().zip(h.fences) {
                e.counter(
                    "strata_fences_total",
                    "Address-translation fences by hart and kind.",
                    &[("hart", &id), ("kind", k)],
                    n,
                );
            }
            for (to, n) in TRAP_TO.iter().zip(h.traps_to) {
                e.counter("strata_traps_total", "Traps by hart and destination mode.", &[("hart", &id), ("to", to)], n);
            }
            for (c, n) in &h.exceptions {
                let c = c.to_string();
                e.counter(
                    "strata_exceptions_total",
                    "Exceptions by hart and cause.",
                    &[("hart", &id), ("cause", &c)],
                    *n,
                );
            }
            for (c, n) in &h.interrupts {
                let c = c.to_string();
                e.counter(
                    "strata_interrupts_total",
                    "Interrupts by hart and cause.",
                    &[("hart", &id), ("cause", &c)],
                    *n,
                );
            }
            if let Some(j) = &h.jit {
                e.counter("strata_jit_blocks_total", "Blocks the JIT compiled.", &hart, j.blocks);
                e.counter("strata_jit_entries_total", "Entries into compiled code.", &hart, j.entries);
            }
        }
        if let Some(hyp) = &self.hypervisor {
            e.counter(
                "strata_invalidations_total",
                "Pages whose change of hands was invalidated.",
                &[],
                hyp.invalidations,
            );
            e.counter(
                "strata_invalidation_dropped_total",
                "Cached translations dropped by invalidations.",
                &[],
                hyp.translations_dropped,
            );
            e.counter(
                "strata_invalidation_collateral_total",
                "Dropped translations that did not reach the page.",
                &[],
                hyp.translations_dropped_collateral,
            );
            e.counter(
                "strata_sched_switches_total",
                "Scheduler picks that changed a hart's vCPU.",
                &[],
                hyp.sched_switches,
            );
            e.counter(
                "strata_rt_evictions_total",
                "vCPUs moved off a real-time hart because its real-time vCPU was ready (placement migrate).",
                &[],
                hyp.rt_evictions,
            );
            e.counter(
                "strata_rt_borrows_total",
                "vCPUs of other VMs taken onto an idle real-time hart (placement migrate).",
                &[],
                hyp.rt_borrows,
            );
            for h in &hyp.harts {
                let id = h.hart.to_string();
                let l = [("hart", id.as_str())];
                e.counter(
                    "strata_shootdown_posted_total",
                    "Shootdown requests a hart posted and waited for.",
                    &l,
                    h.shootdown_posted,
                );
                e.counter("strata_shootdown_served_total", "Shootdown requests a hart served.", &l, h.shootdown_served);
                e.counter(
                    "strata_shootdown_dropped_total",
                    "Translations a hart dropped serving shootdowns.",
                    &l,
                    h.shootdown_dropped,
                );
                e.counter(
                    "strata_hyp_lock_taken_total",
                    "Times a hart thread took the hypervisor's lock.",
                    &l,
                    h.lock_taken,
                );
                e.counter(
                    "strata_hyp_lock_contended_total",
                    "Times a hart thread found the hypervisor's lock taken.",
                    &l,
                    h.lock_contended,
                );
            }
            for vm in &hyp.vms {
                let vmid = vm.vmid.to_string();
                e.gauge(
                    "strata_vm_running",
                    "1 while the VM runs.",
                    &[("vm", &vm.name), ("vmid", &vmid)],
                    (vm.state == "running") as u8 as f64,
                );
                for v in &vm.vcpus {
                    let vc = v.vcpu.to_string();
                    let l = [("vm", vm.name.as_str()), ("vcpu", vc.as_str())];
                    e.counter("strata_vcpu_slots_total", "Instruction slots a vCPU ran.", &l, v.slots);
                    e.counter("strata_vcpu_exits_total", "Exits of a vCPU to the hypervisor.", &l, v.exits);
                    for (reason, n) in
                        [("sbi", v.sbi_calls), ("mmio", v.mmio), ("wfi", v.wfi), ("preemption", v.preemptions)]
                    {
                        e.counter(
                            "strata_vcpu_exits_by_reason_total",
                            "Exits of a vCPU by reason.",
                            &[("vm", &vm.name), ("vcpu", &vc), ("reason", reason)],
                            n,
                        );
                    }
                    e.counter("strata_vcpu_injected_total", "Traps injected into a vCPU.", &l, v.injected);
                }
            }
        }
        for d in &self.devices {
            let l = [("device", d.name.as_str())];
            e.counter(
                "strata_virtio_requests_total",
                "Requests a virtio device completed (used-ring entries).",
                &l,
                d.requests,
            );
            for (k, v) in &d.counters {
                e.counter(
                    &format!("strata_virtio_{k}_total"),
                    "A virtio device's own counter (bytes, frames, a streamed drive's fetches).",
                    &l,
                    *v,
                );
            }
        }
        e.render()
    }
}

//! The kernel-integrity monitor's checks, each run with optimistic retry.
//!
//! | check | baseline (taken once the kernel is up: pid 1 has exec'd) | violation |
//! | --- | --- | --- |
//! | `text` | a copy of `_stext.._etext` | a changed byte outside the kernel's own patch sites |
//! | `rodata` | a copy of `__start_rodata..__end_rodata` | any changed byte |
//! | `syscalls` | `sys_call_table` | an entry changed |
//! | `stvec` | `handle_exception` (System.map) | a hart's published `stvec` elsewhere (0 = not published) |
//! | `tasks` | — | a task the pid table names that is on neither the task list nor a thread list (hidden) |
//!
//! Legitimate run-time patching of kernel text: the sites the kernel
//! itself patches after boot are listed in the image — `__jump_table`
//! entries (static keys: a `nop` ↔ `j` at `code`, 4 bytes) and
//! `__mcount_loc` (ftrace's patchable function entries, 16 bytes from the
//! address). A change inside those ranges is counted as a patch and taken
//! into the baseline; anywhere else it is a foreign write. Alternatives are
//! applied during boot, before the baseline; RISC-V 6.12 has no inline
//! static calls. Module text is not checked.
//!
//! ## Retry
//!
//! With retry on, each attempt watches the pages it reads; if the guest
//! wrote one before the attempt ended, the attempt's result (violation or
//! not) is thrown away and the check runs again, up to `max_retries`
//! times; then it gives up for this round (counted, not an alarm). The
//! cause of each retry is counted by check. With retry off, an attempt's
//! answer stands, so a structure caught mid-update (a list walked while a
//! process exits) is reported: the false alarms retry removes.
//!
//! State: `Waiting` (no baseline: the kernel is not up) → `Armed`
//! (baseline taken; checks run every interval). Nothing goes back.

use std::collections::{BTreeMap, HashSet};

use crate::guest::GuestMemory;
use crate::kernel::{Kernel, KernelError, Session};

/// Violations remembered (and so raised) at most: a guest cannot make
/// the monitor's memory grow without end.
pub const MAX_REPORTED: usize = 10_000;

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The check: text, rodata, syscalls, stvec, tasks.
    pub check: &'static str,
    /// What changed, in one line.
    pub what: String,
}

/// Counters, for the API and the tests.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Rounds of all checks completed.
    pub rounds: u64,
    /// Attempts thrown away because the guest wrote what they read, by check.
    pub retries: BTreeMap<&'static str, u64>,
    /// Checks given up after `max_retries` (by check).
    pub gave_up: BTreeMap<&'static str, u64>,
    /// Legitimate text patches seen (jump labels, ftrace).
    pub patches: u64,
    /// Violations raised.
    pub violations: u64,
    /// The kernel is up and the baseline taken.
    pub armed: bool,
    /// Guest reads the checks made (each a run of bytes inside pages).
    pub reads: u64,
}

/// What the baseline holds.
struct Baseline {
    text: (u64, Vec<u8>),
    rodata: (u64, Vec<u8>),
    syscalls: Vec<u64>,
    stvec: u64,
    /// Kernel-patched text ranges (start, len), sorted.
    patch_sites: Vec<(u64, u64)>,
}

/// The monitor's checking state.
pub struct Integrity {
    pub retry: bool,
    pub max_retries: u32,
    pub stats: Stats,
    base: Option<Baseline>,
    /// Already reported (a violation is raised once).
    reported: HashSet<(&'static str, String)>,
}

impl Integrity {
    pub fn new(retry: bool) -> Self {
        Integrity { retry, max_retries: 16, stats: Stats::default(), base: None, reported: HashSet::new() }
    }

    /// Runs `f` as one check with retry; `Ok(None)` when it gave up.
    fn attempt<G: GuestMemory, T>(
        &mut self,
        k: &Kernel<G>,
        name: &'static str,
        mut f: impl FnMut(&mut Session<'_, G>) -> Result<T, KernelError>,
    ) -> Option<Result<T, KernelError>> {
        for _ in 0..=self.max_retries {
            let mut s = k.session(self.retry);
            let r = f(&mut s);
            self.stats.reads += s.reads;
            if self.retry && s.changed().is_some() {
                *self.stats.retries.entry(name).or_default() += 1;
                continue;
            }
            return Some(r);
        }
        *self.stats.gave_up.entry(name).or_default() += 1;
        None
    }

    fn range<G: GuestMemory>(k: &Kernel<G>, a: &str, b: &str) -> Result<(u64, u64), KernelError> {
        let (s, e) = (k.syms.get(a)?, k.syms.get(b)?);
        Ok((s, e.saturating_sub(s)))
    }

    /// Takes the baseline if the kernel is up (pid 1 runs a user program);
    /// whether it is armed now.
    fn arm<G: GuestMemory>(&mut self, k: &Kernel<G>) -> Result<bool, KernelError> {
        if self.base.is_some() {
            return Ok(true);
        }
        let mut s = k.session(false);
        let up = s.processes().map(|p| p.iter().any(|p| p.pid == 1 && !p.kernel_thread)).unwrap_or(false);
        if !up {
            return Ok(false);
        }
        let (ts, tl) = Self::range(k, "_stext", "_etext")?;
        let (rs, rl) = Self::range(k, "__start_rodata", "__end_rodata")?;
        let mut text = vec![0; tl as usize];
        let mut rodata = vec![0; rl as usize];
        s.read(ts, &mut text)?;
        s.read(rs, &mut rodata)?;
        let syscalls = s.syscall_entries()?;
        let patch_sites = patch_sites(k, &mut s)?;
        self.base = Some(Baseline {
            text: (ts, text),
            rodata: (rs, rodata),
            syscalls,
            stvec: k.syms.get("handle_exception")?,
            patch_sites,
        });
        self.stats.armed = true;
        Ok(true)
    }

    /// One round of every check; the new violations.
    pub fn round<G: GuestMemory>(&mut self, k: &Kernel<G>) -> Result<Vec<Violation>, KernelError> {
        if !self.arm(k)? {
            return Ok(vec![]);
        }
        let mut found = Vec::new();
        let mut base = self.base.take().expect("armed");
        // Text: compare with the baseline; changes at patch sites are taken in.
        let (ts, ref mut text) = base.text;
        let mut patched = Vec::new();
        if let Some(r) = self.attempt(k, "text", |s| {
            let mut now = vec![0; text.len()];
            s.read(ts, &mut now)?;
            Ok(now)
        }) {
            let now = r?;
            // At most 8 bytes reported a round (a guest rewriting its
            // text must not fill the host's memory with reports).
            let mut foreign = 0;
            for (i, (a, b)) in text.iter().zip(&now).enumerate() {
                if a != b {
                    let va = ts + i as u64;
                    let site = base.patch_sites.partition_point(|(s, _)| *s <= va);
                    let legit = site > 0 && {
                        let (s, l) = base.patch_sites[site - 1];
                        va < s + l
                    };
                    if legit {
                        patched.push(i);
                    } else if foreign < 8 {
                        foreign += 1;
                        found.push(Violation {
                            check: "text",
                            what: format!("kernel text at {va:#x} ({}) changed: {a:#04x} -> {b:#04x}", k.symbol(va)),
                        });
                    }
                }
            }
            if !patched.is_empty() {
                self.stats.patches += 1;
                for i in patched {
                    text[i] = now[i];
                }
            }
        }
        // Rodata: any change.
        let (rs, ref rodata) = base.rodata;
        if let Some(r) = self.attempt(k, "rodata", |s| {
            let mut now = vec![0; rodata.len()];
            s.read(rs, &mut now)?;
            Ok(now)
        }) {
            let now = r?;
            if let Some(i) = rodata.iter().zip(&now).position(|(a, b)| a != b) {
                let va = rs + i as u64;
                found.push(Violation {
                    check: "rodata",
                    what: format!("kernel read-only data at {va:#x} ({}) changed", k.symbol(va)),
                });
            }
        }
        // The system-call table.
        if let Some(r) = self.attempt(k, "syscalls", |s| s.syscall_entries()) {
            for (nr, (a, b)) in base.syscalls.iter().zip(&r?).enumerate() {
                if a != b {
                    found.push(Violation {
                        check: "syscalls",
                        what: format!(
                            "system call {nr}: {a:#x} ({}) replaced by {b:#x} ({})",
                            k.symbol(*a),
                            k.symbol(*b)
                        ),
                    });
                }
            }
        }
        // stvec, as the harts last published it.
        for (hart, (_satp, stvec)) in k.guest.hart_regs().into_iter().enumerate() {
            let vec = stvec & !strata_arch::csr::tvec::MODE_MASK;
            if stvec != 0 && vec != base.stvec {
                found.push(Violation {
                    check: "stvec",
                    what: format!(
                        "hart {hart}: stvec {vec:#x} ({}) instead of handle_exception {:#x}",
                        k.symbol(vec),
                        base.stvec
                    ),
                });
            }
        }
        // Hidden tasks: in the pid table, on no list.
        match self.attempt(k, "tasks", |s| {
            let listed = s.all_tasks()?;
            let named = s.pid_table_tasks()?;
            let mut hidden = Vec::new();
            for (_pid, t) in named {
                if !listed.contains(&t) {
                    let l = &s.k.layout;
                    let nr = s.u32(t + l.task_pid)? as i32;
                    let mut comm = [0u8; 16];
                    s.read(t + l.task_comm, &mut comm)?;
                    let end = comm.iter().position(|&c| c == 0).unwrap_or(16);
                    hidden.push(format!(
                        "pid {nr} ({}) at {t:#x} is in the pid table but on no task list: a hidden task",
                        String::from_utf8_lossy(&comm[..end])
                    ));
                }
            }
            Ok(hidden)
        }) {
            Some(Ok(h)) => found.extend(h.into_iter().map(|what| Violation { check: "tasks", what })),
            // A walk that failed without retry (a list caught mid-change,
            // a freed structure) is what retry-off reports.
            Some(Err(e)) => {
                found.push(Violation { check: "tasks", what: format!("task structures inconsistent: {e}") })
            }
            None => {}
        }
        self.base = Some(base);
        self.stats.rounds += 1;
        // Each violation once; at most MAX_REPORTED kept to compare with.
        let new: Vec<Violation> = found
            .into_iter()
            .filter(|v| self.reported.len() < MAX_REPORTED && self.reported.insert((v.check, v.what.clone())))
            .collect();
        self.stats.violations += new.len() as u64;
        Ok(new)
    }
}

/// The text ranges the kernel patches after boot, sorted: jump-label
/// sites (`struct jump_entry { s32 code; s32 target; long key; }`, offsets
/// relative to the entry's own fields) and ftrace's function entries.
fn patch_sites<G: GuestMemory>(k: &Kernel<G>, s: &mut Session<'_, G>) -> Result<Vec<(u64, u64)>, KernelError> {
    let mut out = Vec::new();
    let (js, jl) = Integrity::range(k, "__start___jump_table", "__stop___jump_table")?;
    let entry = k.btf.struct_size("jump_entry").unwrap_or(16).max(8);
    let mut b = vec![0; jl as usize];
    s.read(js, &mut b)?;
    for (i, e) in b.chunks_exact(entry as usize).enumerate() {
        let code = i32::from_le_bytes(e[0..4].try_into().expect("4 bytes")) as i64;
        out.push(((js + i as u64 * entry).wrapping_add_signed(code), 4));
    }
    if let Ok((ms, ml)) = Integrity::range(k, "__start_mcount_loc", "__stop_mcount_loc") {
        let mut b = vec![0; ml as usize];
        s.read(ms, &mut b)?;
        for c in b.chunks_exact(8) {
            out.push((u64::from_le_bytes(c.try_into().expect("8 bytes")), 16));
        }
    }
    out.sort();
    Ok(out)
}

//! Invalidating cached translations when a machine page changes hands.
//!
//! The ownership rules (docs/hypervisor-ownership.md, `strata_ownership`)
//! hand back, for every operation that takes a page away from someone, the
//! mappings it removed; before the page can be used by its next owner, every
//! translation any hart has cached for it must go. [`Invalidator::page`]
//! does that on every hart, with the [`Policy`] in force:
//!
//! | policy | drops | hardware equivalent |
//! |---|---|---|
//! | [`Policy::Pa`] (default) | exactly the entries that reach the page, in every VMID and ASID | one `HFENCE.GVMA gpa, vmid` per mapping the ownership tracker lists |
//! | [`Policy::Vmid`] | every entry of the VMs involved | `HFENCE.GVMA x0, vmid` |
//! | [`Policy::All`] | every entry | `HFENCE.GVMA x0, x0` |
//!
//! The coarse policies are kept for comparison; what they drop although it
//! did not reach the page is counted as *collateral* ([`InvalStats`]).

use std::fmt;

use strata_ownership::MachinePage;

use crate::hart::HartOps;

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

/// The invalidation handler: a policy and what it has done.
#[derive(Clone, Debug)]
pub struct Invalidator {
    policy: Policy,
    stats: InvalStats,
}

impl Invalidator {
    pub fn new(policy: Policy) -> Self {
        Invalidator { policy, stats: InvalStats::default() }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn stats(&self) -> &InvalStats {
        &self.stats
    }

    /// Invalidates every cached translation of hardware VMID `vmid` on
    /// every hart: its VM is gone, and `pages` pages it mapped with it. The
    /// VM's own translations are exactly what must go, so one
    /// `HFENCE.GVMA x0, vmid` per hart is as precise as one per page, and
    /// far cheaper; [`Policy::All`] drops everything, as it does per page.
    pub fn vm_gone(&mut self, harts: &mut [&mut dyn HartOps], vmid: u64, pages: u64) {
        self.stats.invalidations += pages;
        for hart in harts.iter_mut() {
            hart.hfence_gvma(None, (self.policy != Policy::All).then_some(vmid));
        }
    }

    /// Invalidates the cached translations of machine page `page`, whose
    /// mappings by the VMs with hardware VMIDs `vmids` just went, on every
    /// hart.
    pub fn page(&mut self, harts: &mut [&mut dyn HartOps], page: MachinePage, vmids: &[u64]) {
        self.stats.invalidations += 1;
        for hart in harts.iter_mut() {
            match self.policy {
                Policy::Pa => self.stats.dropped += hart.invalidate_page(page.addr()),
                Policy::Vmid | Policy::All => {
                    let ids = (self.policy == Policy::Vmid).then_some(vmids);
                    let (d, c) = hart.invalidate_coarse(ids, page.addr());
                    self.stats.dropped += d;
                    self.stats.collateral_dropped += c;
                }
            }
        }
    }
}

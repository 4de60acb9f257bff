//! Exhaustive model checks of the protocols that keep a page that changed
//! hands out of every cached translation (issue 21).
//!
//! Unit tests show that each piece does what it says; what they cannot show
//! is that no *interleaving* of harts breaks the promise. These models state
//! the protocols as transition systems small enough to explore completely —
//! two harts, two VMs, a few pages — and let the [`stateright`] checker walk
//! every reachable state breadth-first, checking the invariants in each.
//!
//! | model | protocol | invariant (checked in every state) |
//! | --- | --- | --- |
//! | [`inval`] | a page leaves a VM while other harts run: the real [`strata_ownership::Tracker`] takes it away and lists the mappings to tear down, the shootdown protocol (`strata_hypervisor::shootdown`) drops them from every hart's TLB, and only then is the page zeroed and handed over | no hart holds — or is about to insert from a walk in flight — a translation from a VM to a page that has since been handed to someone else; no hart waits forever |
//! | [`shadow`] | shadow paging: two vCPUs of one VM share shadow tables built from the guest's write-protected page tables and the VM's G-stage map; guest page-table writes trap, device (DMA) writes to them are logged and drained at fences and faults, guest fences are intercepted, a page leaving the VM is removed through the shadow reverse map | no shadow entry differs from what the guest's current tables and the G-stage give together (but for an undrained device write); no TLB entry grants a page the guest's tables have not mapped since that vCPU's last fence, nor a page the VM no longer has |
//!
//! Each model has *mutations*: one step of the protocol removed (the wait
//! for acknowledgements, the safe-point rule, the write protection, the
//! fill's generation check, the fence, the reverse-map removal). The tests
//! check that the real protocol passes and that every mutation yields a
//! counterexample — a model that no mutation breaks would be checking
//! nothing. `make models` prints the states explored and the
//! counterexamples; `cargo test -p strata-models --release` runs the same
//! checks (they are part of `make test`).
//!
//! What the models are not: they abstract the harts to their TLBs and
//! walks, a page table to one entry per address, and time to interleaving.
//! They check the protocol as documented in the modules they cite; the
//! code's conformance to the protocol is the job of those modules' tests.

pub mod inval;
pub mod shadow;

use std::fmt::{self, Debug};
use std::hash::Hash;

use stateright::{Checker, Expectation, HasDiscoveries, Model};

/// What one exhaustive run found.
#[derive(Debug)]
pub struct Report {
    /// Distinct states visited.
    pub states: usize,
    /// Longest path from an initial state.
    pub depth: usize,
    /// The first broken invariant and the path (actions) that breaks it.
    pub counterexample: Option<(&'static str, Vec<String>)>,
    /// Reachability properties (`sometimes`) no state satisfied: each names
    /// a situation the model must reach to be checking anything (say, "a
    /// page is handed over while another hart still holds a translation
    /// to it"); an unreached one means the model is vacuous.
    pub unreached: Vec<&'static str>,
}

impl Report {
    /// Whether every invariant held and every situation was reached.
    pub fn passed(&self) -> bool {
        self.counterexample.is_none() && self.unreached.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} states, depth {}", self.states, self.depth)?;
        if let Some((name, path)) = &self.counterexample {
            write!(f, "; counterexample to \"{name}\" in {} steps:", path.len())?;
            for (i, step) in path.iter().enumerate() {
                write!(f, "\n  {:>2}. {step}", i + 1)?;
            }
        }
        for name in &self.unreached {
            write!(f, "; never reached \"{name}\"")?;
        }
        Ok(())
    }
}

/// Explores every reachable state of `model` breadth-first (shortest
/// counterexamples first) and reports the first broken invariant.
pub fn check<M>(model: M) -> Report
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let properties: Vec<(&'static str, Expectation)> =
        model.properties().into_iter().map(|p| (p.name, p.expectation)).collect();
    // Stop at the first broken invariant: breadth-first, that is (nearly)
    // the shortest counterexample. A passing run explores everything.
    let checker = model.checker().finish_when(HasDiscoveries::AnyFailures).spawn_bfs().join();
    let mut counterexample = None;
    let mut unreached = Vec::new();
    for (name, expectation) in properties {
        let found = checker.discovery(name);
        match expectation {
            Expectation::Sometimes => {
                if found.is_none() {
                    unreached.push(name);
                }
            }
            Expectation::Always | Expectation::Eventually => {
                if let (None, Some(path)) = (&counterexample, found) {
                    let steps = path.into_actions().iter().map(|a| format!("{a:?}")).collect();
                    counterexample = Some((name, steps));
                }
            }
        }
    }
    Report { states: checker.unique_state_count(), depth: checker.max_depth(), counterexample, unreached }
}

/// Test support: `model` must pass — every invariant holds, every situation
/// is reached, and the state space is not trivially small.
#[cfg(test)]
fn assert_passes<M>(title: &str, model: M, at_least: usize)
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let r = check(model);
    println!("{title}: {r}");
    assert!(r.passed(), "{title}: {r}");
    assert!(r.states >= at_least, "{title}: suspiciously small state space: {r}");
}

/// Test support: each mutated model must break the invariant named beside it.
#[cfg(test)]
fn assert_breaks<M>(title: &str, cases: impl IntoIterator<Item = (M, &'static str)>)
where
    M: Model + Debug + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + Debug + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    for (model, property) in cases {
        let which = format!("{title}, {model:?}");
        let r = check(model);
        println!("{which}: {r}");
        assert_eq!(r.counterexample.as_ref().map(|c| c.0), Some(property), "{which} should break {property}: {r}");
    }
}

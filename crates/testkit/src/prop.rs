//! The configuration of Strata's property tests (proptest).
//!
//! Every randomised test prints the seed it runs with, so a failure can be
//! replayed exactly: `STRATA_SEED=<seed> cargo test ...` runs the same cases
//! (decimal or `0x` hex). Without it, the seed is new each run. proptest
//! shrinks a failing case before it reports it; `PROPTEST_CASES` overrides
//! a test's number of cases, `PROPTEST_MAX_SHRINK_ITERS` its shrinking.

use proptest::test_runner::{Config, RngSeed};

/// The environment variable that fixes the seed.
pub const SEED_VAR: &str = "STRATA_SEED";

/// The seed of this run: `STRATA_SEED` if set, else a fresh one.
pub fn seed() -> u64 {
    if let Ok(s) = std::env::var(SEED_VAR) {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("{SEED_VAR}={s:?} is not a number"));
    }
    // A fresh seed: std's per-process random hash keys, and the clock.
    use std::hash::BuildHasher;
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    std::collections::hash_map::RandomState::new().hash_one(t)
}

/// A proptest configuration for `test` with `cases` cases (or
/// `PROPTEST_CASES`), seeded by [`seed`]. Prints the seed (the test
/// harness shows it when the test fails). No regression files are written:
/// the printed seed is the reproducer.
pub fn config(test: &str, cases: u32) -> Config {
    let seed = seed();
    eprintln!("{test}: seed {seed:#x} (rerun with {SEED_VAR}={seed:#x})");
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(cases);
    Config { cases, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn one_seed_gives_the_same_cases() {
        let draw = |seed: u64| {
            let cfg =
                Config { cases: 5, rng_seed: RngSeed::Fixed(seed), failure_persistence: None, ..Config::default() };
            let mut r = TestRunner::new(cfg);
            (0..5).map(|_| any::<u64>().new_tree(&mut r).unwrap().current()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}

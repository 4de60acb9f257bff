//! Invalidation benchmark: VM A's pages are migrated to other machine pages
//! while VM B runs; each policy's cost and collateral damage.
//!
//!   cargo run --release -p strata-platform --example invalidation -- POLICY [ROUNDS] [MOVES]
//!
//! Two VMs run page walkers (64 pages each, every page touched once per
//! pass) on two harts. Every scheduling round (4096 instructions a hart),
//! MOVES of A's walked pages move to fresh machine pages. Prints one line of
//! `key=value` counters for the benchmark script.

use std::path::PathBuf;

use strata_hypervisor::{Policy, VmIndex};
use strata_platform::hyp::{HypMachine, RunConfig, VmConfig};
use strata_platform::machine::RAM_BASE;
use strata_platform::ClockMode;
use strata_testkit::guest;

const WALK_BASE: u64 = RAM_BASE + 0x10_0000;
const WALK_PAGES: u64 = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: invalidation pa|vmid|all [ROUNDS] [MOVES]";
    let Some(policy) = args.get(1).and_then(|p| p.parse::<Policy>().ok()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |i: usize, d: u64| -> u64 {
        args.get(i)
            .map(|s| {
                s.parse().unwrap_or_else(|_| {
                    eprintln!("{usage}");
                    std::process::exit(2)
                })
            })
            .unwrap_or(d)
    };
    let (rounds, moves) = (num(2, 2000), num(3, 1));
    let path: PathBuf = std::env::temp_dir().join(format!("strata-inval-{}.elf", std::process::id()));
    std::fs::write(&path, guest::page_walker(RAM_BASE, WALK_BASE, WALK_PAGES, 4096)).expect("write the guest");
    let vm = |name: &str| VmConfig {
        name: name.into(),
        memory: 16 << 20,
        vcpus: 1,
        protected: false,
        paging: Default::default(),
        kernel: path.clone(),
        initrd: None,
        append: String::new(),
        serial_log: None,
        virtio: Default::default(),
    };
    let mut m = HypMachine::new(&RunConfig {
        vms: vec![vm("a"), vm("b")],
        harts: Some(2),
        policy,
        clock: ClockMode::Virtual,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    })
    .unwrap_or_else(|e| {
        eprintln!("invalidation: {e}");
        std::process::exit(1)
    });
    let _ = std::fs::remove_file(&path);
    let mut k = 0u64;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        m.step();
        for _ in 0..moves {
            let gpa = WALK_BASE + (k * 7 % WALK_PAGES) * 4096;
            k += 1;
            m.with_harts(|hyp, harts| hyp.migrate_page(harts, VmIndex(0), gpa)).expect("migrate");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let coll = m.with_harts(|hyp, harts| hyp.collateral_misses(harts));
    let misses = |vm: usize| -> u64 {
        let vmid = m.hyp().vm(VmIndex(vm)).map_or(0, |v| v.vmid());
        m.harts.iter().map(|h| h.tlb_vmid_stats().get(&(true, vmid)).map_or(0, |c| c.misses)).sum()
    };
    let i = m.hyp().inval_stats().clone();
    println!(
        "policy={policy} rounds={rounds} moves={} seconds={secs:.3} dropped={} collateral_dropped={} \
         collateral_misses_a={} collateral_misses_b={} misses_a={} misses_b={}",
        i.invalidations,
        i.dropped,
        i.collateral_dropped,
        coll[0].1,
        coll[1].1,
        misses(0),
        misses(1)
    );
}

//! `strata run` with its physical harts on host threads (issue 13,
//! strata_hypervisor::smp): pages change hands between VMs while both
//! harts run guest code, and no hart uses a translation to a page after it
//! moved.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use strata_hypervisor::{Policy, VmIndex};
use strata_platform::hyp::{HypMachine, RunConfig};
use strata_platform::ClockMode;
use strata_testkit::guest;

const RAM: u64 = strata_platform::machine::RAM_BASE;
const WALK_BASE: u64 = RAM + 0x10_0000;
const WALK_PAGES: u64 = 64;

fn walker() -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-hyp-threads-{}-walker.elf", std::process::id()));
    std::fs::write(&p, guest::page_walker(RAM, WALK_BASE, WALK_PAGES, 4096)).unwrap();
    p
}

/// The walkers' counters, one per page: each pass adds 1 to every page's
/// first word in order, so they read n+1 up to some page and n after it.
/// A store that went to a page after it was copied away (a stale
/// translation) is lost, and leaves its page behind the ones after it.
fn counters(m: &HypMachine, v: usize) -> Vec<u64> {
    let hyp = m.hyp();
    (0..WALK_PAGES)
        .map(|i| {
            let mut b = [0u8; 8];
            hyp.host_read(VmIndex(v), WALK_BASE + i * 4096, &mut b).unwrap();
            u64::from_le_bytes(b)
        })
        .collect()
}

fn check_counters(c: &[u64], what: &str) {
    assert!(c[0] > 0, "{what}: the walker never ran: {c:?}");
    for w in c.windows(2) {
        assert!(w[0] >= w[1], "{what}: a page is behind the one after it (a lost store): {c:?}");
    }
    assert!(c[c.len() - 1] + 1 >= c[0], "{what}: counters more than one pass apart: {c:?}");
}

/// Two walker VMs on two harts, one host thread each; another thread moves
/// random pages of both VMs to new machine pages (`migrate_page` through
/// `Smp::with_remote_harts`: unmap, shoot down on both harts and wait for
/// their acknowledgements, copy, map) 300 times while they run. Every
/// request must be served, every walker's counters must show no lost
/// store, and after the run no hart's TLB may hold a translation its VM's
/// tables do not make.
#[test]
fn pages_change_hands_while_both_harts_run() {
    let seed = strata_testkit::prop::seed();
    eprintln!("seed {seed:#x} (STRATA_SEED to replay)");
    let k = walker();
    let mut m = HypMachine::new(&RunConfig {
        vms: vec![common::vm("a", &k, false), common::vm("b", &k, false)],
        harts: Some(2),
        policy: Policy::Pa,
        clock: ClockMode::Host,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    })
    .unwrap();
    m.set_threads(2).unwrap();
    assert_eq!(m.threads(), 2);
    let smp = m.smp();
    let stop = m.stop_handle();
    const MOVES: u64 = 300;
    let slots_before_moves = std::thread::scope(|s| {
        let runner = s.spawn(|| m.run());
        // Both walkers under way before the first move.
        let t0 = Instant::now();
        let progressed = |v: usize| {
            let mut b = [0u8; 8];
            smp.lock().host_read(VmIndex(v), WALK_BASE + (WALK_PAGES - 1) * 4096, &mut b).unwrap();
            u64::from_le_bytes(b) > 0
        };
        while !(progressed(0) && progressed(1)) {
            assert!(t0.elapsed() < Duration::from_secs(60), "the walkers did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        let before = {
            let hyp = smp.lock();
            [hyp.vm_slots(VmIndex(0)), hyp.vm_slots(VmIndex(1))]
        };
        let mut x = seed | 1;
        for _ in 0..MOVES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = VmIndex((x & 1) as usize);
            let gpa = WALK_BASE + (x >> 8) % WALK_PAGES * 4096;
            smp.with_remote_harts(|hyp, harts| hyp.migrate_page(harts, v, gpa)).unwrap();
        }
        stop.stop(15);
        runner.join().unwrap();
        before
    });
    // The guests ran while their pages moved.
    let hyp = m.hyp();
    for (v, before) in slots_before_moves.iter().enumerate() {
        assert!(hyp.vm_slots(VmIndex(v)) > *before, "VM {v} ran no instruction while its pages moved");
    }
    assert_eq!(hyp.inval_stats().invalidations, MOVES);
    hyp.check_memory().unwrap();
    drop(hyp);
    // Every move posted to both harts, and every request was served
    // (waited for, or served by a hart as its thread started).
    let posted = smp.posted_by_others();
    let stats = smp.stats();
    assert_eq!(posted, 2 * MOVES, "one request to each hart per move");
    let served: u64 = stats.iter().map(|h| h.served).sum();
    assert_eq!(served, posted, "every request was served: {stats:?}");
    for (h, st) in stats.iter().enumerate() {
        assert!(st.served >= MOVES, "hart {h} served {} of {MOVES}", st.served);
    }
    // The same counters, as --stats-json and /metrics give them.
    let snap = m.stats_snapshot().hypervisor.expect("strata run reports its hypervisor");
    assert_eq!(snap.harts.len(), 2, "both hart threads took the lock: {:?}", snap.harts);
    for (h, st) in snap.harts.iter().zip(&stats) {
        assert_eq!((h.shootdown_served, h.lock_taken), (st.served, st.locks));
    }
    let prom = m.stats_snapshot().prometheus(false);
    assert!(prom.contains("strata_shootdown_served_total{hart=\"1\"}"), "{prom}");
    check_counters(&counters(&m, 0), "VM a");
    check_counters(&counters(&m, 1), "VM b");
    // What the harts cache now matches the tables.
    for h in &m.harts {
        for e in h.tlb_entries() {
            let Some(vmid) = e.vmid.filter(|&v| v != 0) else { continue };
            let hyp = m.hyp();
            let vm = hyp.vm_by_vmid(vmid).expect("an entry of a known VMID");
            let gpa = e.gpa.expect("two-stage entries remember their GPA");
            assert_eq!(hyp.translate(vm, gpa), Some(RAM + (e.ram_page << 12)), "hart {}: stale {e:?}", h.hartid);
        }
    }
}

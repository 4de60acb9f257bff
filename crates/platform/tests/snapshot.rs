//! Snapshots of the bare board, in-process (issue 15; docs/snapshot.md).
//!
//! Hostile M-mode programs (`strata_testkit::guest::hostile`) on two harts
//! write random CSRs (machine, supervisor, hypervisor, VS), PMP, the
//! CLINT, PLIC, UART, RTC and a virtio-blk transport. A machine runs a few
//! rounds, is saved, and a second machine is restored from the file; both
//! then run to power-off. Under the virtual clock they must end in the same
//! state: every hart's architectural state, RAM, and what the guest printed
//! after the snapshot. State a snapshot forgets makes them differ.
//! The tests/snapshot script does the same with Debian.

mod common;

use std::path::PathBuf;

use strata_platform::runner::SnapshotPlan;
use strata_platform::{ClockMode, ExitReason, Machine, MachineConfig, RestoreOptions, VirtioConfig};
use strata_testkit::guest::{self, Level};

const RAM_BYTES: u64 = 16 << 20;

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-snapshot-test-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn ram(m: &Machine) -> Vec<u8> {
    let mut v = vec![0u8; m.ram.size() as usize];
    m.ram.read_bytes(m.ram.base(), &mut v).unwrap();
    v
}

#[test]
fn a_restored_machine_ends_as_the_original() {
    // Read-only: both machines have the image open at once.
    let disk = file("disk.img", &(0..1u32 << 20).map(|i| ((i * 7) >> 3) as u8).collect::<Vec<_>>());
    let board = common::board();
    let mut compared = 0;
    for seed in common::seeds(1..=8) {
        let kernel = file(
            &format!("hostile-{seed}.elf"),
            &guest::hostile(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1500, RAM_BYTES, Level::M, &board),
        );
        let snap = std::env::temp_dir().join(format!("strata-snapshot-test-{}-{seed}.snap", std::process::id()));
        let cfg = MachineConfig {
            ram_size: RAM_BYTES,
            harts: 2,
            bios: None,
            kernel: kernel.clone(),
            initrd: None,
            append: String::new(),
            clock: ClockMode::Virtual,
            console_stdout: false,
            console_stdin: false,
            serial_log: None,
            virtio: VirtioConfig {
                drives: vec![
                    strata_platform::DriveSpec::parse(&format!("file={},readonly=on", disk.display())).unwrap()
                ],
                ..Default::default()
            },
            jit: seed % 2 == 0,
            extensions: strata_platform::Extensions::DEFAULT,
            tpm: None,
            iommu: None,
        };
        // How long the program runs, to take the snapshot half-way.
        let mut whole = Machine::new(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(whole.run_rounds(100_000), ExitReason::PowerOff, "seed {seed}");
        let rounds = whole.rounds() / 2;
        drop(whole);
        let mut a = Machine::new(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        a.capture_console();
        a.set_snapshot_plan(SnapshotPlan { path: Some(snap.clone()), ..Default::default() });
        // run_rounds ends as Hung when its rounds run out without a power
        // request: the program is under way, not finished.
        if rounds == 0 || a.run_rounds(rounds) != ExitReason::Hung {
            continue;
        }
        let info = a.save_snapshot().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let printed = a.console_output().len();
        assert_eq!(info.console_offset as usize, printed, "seed {seed}");
        // The same JIT setting: the JIT ends a slice at a block boundary, so
        // with two harts its interleaving (and instret) differs from the
        // interpreter's; a snapshot does not promise more than the machine.
        let o = RestoreOptions { jit: cfg.jit, ..Default::default() };
        let mut b = Machine::restore(&snap, &o).unwrap_or_else(|e| panic!("seed {seed}: restore: {e}"));
        b.capture_console();
        // Saving the restored machine gives the same file, byte for byte:
        // every piece of state saved was restored.
        let again = snap.with_extension("again");
        b.set_snapshot_plan(SnapshotPlan { path: Some(again.clone()), ..Default::default() });
        b.save_snapshot().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(
            std::fs::read(&snap).unwrap() == std::fs::read(&again).unwrap(),
            "seed {seed}: the restored machine saves to another snapshot"
        );
        let _ = std::fs::remove_file(&again);
        for h in 0..2 {
            assert_eq!(a.harts[h].save(), b.harts[h].save(), "seed {seed}: hart {h} right after restore");
        }
        assert!(ram(&a) == ram(&b), "seed {seed}: RAM right after restore");
        let ra = a.run_rounds(100_000);
        let rb = b.run_rounds(100_000);
        assert_eq!(ra, ExitReason::PowerOff, "seed {seed}");
        assert_eq!(rb, ra, "seed {seed}: the restored machine ended otherwise");
        for h in 0..2 {
            assert_eq!(a.harts[h].save(), b.harts[h].save(), "seed {seed}: hart {h} at the end");
        }
        assert!(ram(&a) == ram(&b), "seed {seed}: RAM at the end");
        assert_eq!(a.guest_ticks(), b.guest_ticks(), "seed {seed}: guest time");
        assert_eq!(a.console_output()[printed..], b.console_output()[..], "seed {seed}: console after the snapshot");
        compared += 1;
        let _ = std::fs::remove_file(&kernel);
        let _ = std::fs::remove_file(&snap);
    }
    let _ = std::fs::remove_file(&disk);
    assert!(compared > 0, "every program ended before its snapshot");
}

#[test]
fn a_snapshot_of_a_file_that_is_not_one_is_refused() {
    let p = file("not.snap", b"#!/bin/sh\n");
    let e = Machine::restore(&p, &RestoreOptions::default()).err().expect("refused");
    assert_eq!(e.to_string(), format!("snapshot {}: not a Strata snapshot (no STRATASN magic)", p.display()));
    let _ = std::fs::remove_file(&p);
}

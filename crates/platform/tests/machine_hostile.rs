//! Hostile programs on the bare board: M-mode code (no firmware) on two
//! harts that pokes every device window and hole with loads and stores of
//! every width, writes random CSRs, runs hypervisor loads and stores through
//! random `hgatp` values, and executes random instruction words
//! (`strata_testkit::guest::hostile` at `Level::M`). The machine must neither panic nor
//! hang: each program ends by powering the board off through the syscon.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use strata_platform::{ClockMode, ExitReason, Machine, MachineConfig, VirtioConfig};
use strata_testkit::guest::{self, Level};

const RAM_BYTES: u64 = 16 << 20;

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-machine-hostile-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn hostile_programs_cannot_break_the_board() {
    // Live virtio windows too: an entropy device and a disk.
    let disk = file("disk.img", &vec![0u8; 1 << 20]);
    let board = common::board();
    for seed in common::seeds(1..=12) {
        let kernel = file(
            &format!("hostile-{seed}.elf"),
            &guest::hostile(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 1500, RAM_BYTES, Level::M, &board),
        );
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
                drives: vec![strata_platform::DriveSpec::parse(&format!("file={}", disk.display())).unwrap()],
                rng: true,
                ..Default::default()
            },
            jit: seed % 2 == 0,
            extensions: strata_platform::Extensions::DEFAULT,
            tpm: None,
            iommu: None,
        };
        let mut m = Machine::new(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        m.capture_console();
        // A run that hangs fails the test instead of hanging it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = m.run();
            let _ = tx.send((r, m));
        });
        let m = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok((r, m)) => {
                assert_eq!(r, ExitReason::PowerOff, "seed {seed}");
                m
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("seed {seed}: the machine did not power off within 60 s"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("seed {seed}: the machine's thread panicked"),
        };
        // The program did what it says: it ran to its end, through many
        // traps of many causes (illegal instructions, access faults, ...).
        let h = &m.harts[0];
        let traps: u64 = h.stats.exceptions.iter().sum();
        let causes = h.stats.exceptions.iter().filter(|&&n| n > 0).count();
        assert!(h.instret > 10_000, "seed {seed}: only {} instructions", h.instret);
        assert!(traps > 300 && causes >= 5, "seed {seed}: {traps} traps of {causes} causes: {:?}", h.stats.exceptions);
        let _ = std::fs::remove_file(&kernel);
    }
    let _ = std::fs::remove_file(&disk);
}

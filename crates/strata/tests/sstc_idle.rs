//! Sstc and the run loop's idle wait (issue 20): a hart that arms only
//! `stimecmp` (the ACLINT's MTIMECMP stays at its reset value, all ones)
//! and waits in WFI must be woken when `time` reaches it, on every runner:
//! the single-threaded loop (`--clock virtual`, and `--clock host
//! --threads 1`) and the hart threads (`--clock host`, the default). The
//! same program with `stimecmp` never reached must still be reported as
//! hung (exit status 5): the wait knows the deadline, it does not just
//! stop looking for hangs.

use std::process::Output;

use strata_arch::csr::addr::{MENVCFG, MIE, MIP, MTVEC, STIMECMP, TIME};
use strata_arch::csr::envcfg::STCE;
use strata_arch::irq::{bit, STIP};
use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_devices::syscon::{FINISHER_FAIL, FINISHER_PASS};
use strata_testkit::asm::{elf, reg::*, Asm};

mod common;
use common::{poweroff, strata};

/// M-mode: STCE on, `stimecmp = time + delay` (`None`: all ones, never),
/// STIE in `mie` (MIE stays clear: WFI wakes, no trap is taken), then WFI
/// until STIP; powers off with PASS. Any trap powers off with FAIL.
fn program(delay: Option<u64>) -> Vec<u8> {
    let mut handler = Asm::new();
    poweroff(&mut handler, FINISHER_FAIL);
    let mut a = Asm::new();
    a.j(4 + handler.here());
    for &w in handler.words() {
        a.word(w);
    }
    a.li(T0, VIRT.ram_base + 4).csr(Op::CSRRW, ZERO, MTVEC, T0);
    a.li(T0, STCE).csr(Op::CSRRW, ZERO, MENVCFG, T0);
    match delay {
        Some(d) => {
            a.csr(Op::CSRRS, T0, TIME, ZERO).li(T1, d).add(T0, T0, T1);
        }
        None => {
            a.li(T0, u64::MAX);
        }
    }
    a.csr(Op::CSRRW, ZERO, STIMECMP, T0);
    a.li(T0, bit(STIP)).csr(Op::CSRRW, ZERO, MIE, T0);
    let wait = a.here();
    a.insn(Op::WFI, 0, 0, 0, 0);
    a.csr(Op::CSRRS, T0, MIP, ZERO).li(T1, bit(STIP)).insn(Op::AND, T0, T0, T1, 0);
    a.bne(T0, T1, wait);
    poweroff(&mut a, FINISHER_PASS);
    elf(&a.bytes(), VIRT.ram_base)
}

fn run(name: &str, delay: Option<u64>, runner: &[&str]) -> Output {
    let p = std::env::temp_dir().join(format!("strata-sstc-idle-{}-{name}.elf", std::process::id()));
    std::fs::write(&p, program(delay)).unwrap();
    let mut args = vec!["machine", "--bios", "none", "-m", "16M", "--kernel", p.to_str().unwrap()];
    args.extend(runner);
    let out = strata(&args);
    let _ = std::fs::remove_file(&p);
    out
}

const RUNNERS: [&[&str]; 3] = [&["--clock", "virtual"], &["--clock", "host", "--threads", "1"], &["--clock", "host"]];

#[test]
fn wfi_with_only_stimecmp_armed_wakes_at_the_deadline() {
    // 50 ms of guest time at the board's 10 MHz timebase.
    for r in RUNNERS {
        let out = run("armed", Some(500_000), r);
        assert_eq!(out.status.code(), Some(0), "{r:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn wfi_with_stimecmp_never_reached_is_hung() {
    for r in RUNNERS {
        let out = run("never", None, r);
        assert_eq!(out.status.code(), Some(5), "{r:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

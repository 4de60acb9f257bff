//! Guest time on both machines (issue 11: one runner; issue 12 item 11:
//! host clock).
//!
//! One timer-driven guest, written twice: for the bare board in M-mode
//! (CLINT `mtimecmp`, `mtvec`) and for `strata run` in VS-mode (SBI
//! `set_timer`, `stvec`). It arms a timer, then either spins or waits in
//! WFI until the timer interrupt, whose handler powers off.
//!
//! - Virtual clock, spinning: guest time is a function of the instructions
//!   run, the same on both machines: exactly the slots run divided by
//!   `INSNS_PER_TICK`, with nothing lost to rounding (`strata run` used to
//!   drop the remainder of every round), and the timer ends both runs within
//!   a round of the deadline.
//! - Host clock, waiting: the idle machine sleeps until the timer (few
//!   rounds, no busy loop) and guest time at exit lies between the deadline
//!   and the host time the test measured around the run.

use std::path::PathBuf;
use std::time::Instant;

use strata_arch::csr::addr::{MIE, MSTATUS, MTVEC, SIE, SSTATUS, STVEC};
use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_hypervisor::Policy;
use strata_platform::hyp::{HypMachine, RunConfig, VmConfig};
use strata_platform::machine::INSNS_PER_TICK;
use strata_platform::runner::CHUNK;
use strata_platform::{ClockMode, ExitReason, Machine, MachineConfig};
use strata_testkit::asm::{elf, reg::*, Asm};
use strata_testkit::guest::Level;

const RAM: u64 = VIRT.ram_base;
const HANDLER: u64 = 0x100;
/// The CLINT's `mtimecmp[0]` and the syscon of the bare board.
const MTIMECMP0: u64 = match VIRT.clint {
    Some(c) => c.base + strata_devices::aclint::MTIMECMP_BASE,
    None => panic!("the bare board has a CLINT"),
};
const SYSCON: u64 = VIRT.syscon.base;
const SBI_TIME: u64 = strata_arch::sbi::ext::TIME;
const SBI_SRST: u64 = strata_arch::sbi::ext::SRST;
// csrrw / csrrsi
const RW: Op = Op::CSRRW;
const RSI: Op = Op::CSRRSI;

/// A guest that arms its timer at `deadline` (ticks), then spins (or waits
/// in WFI) until the timer interrupt powers it off.
fn timer_guest(level: Level, deadline: u64, wfi: bool) -> Vec<u8> {
    let mut a = Asm::new();
    match level {
        Level::M => {
            a.li(T0, RAM + HANDLER).csr(RW, ZERO, MTVEC, T0);
            a.li(T0, MTIMECMP0).li(T1, deadline).sd(T1, T0, 0);
            a.li(T0, 1 << 7).csr(RW, ZERO, MIE, T0); // MTIE
            a.csr(RSI, ZERO, MSTATUS, 8); // MIE
        }
        Level::Vs => {
            a.li(T0, RAM + HANDLER).csr(RW, ZERO, STVEC, T0);
            a.sbi(SBI_TIME, 0, deadline);
            a.li(T0, 1 << 5).csr(RW, ZERO, SIE, T0); // STIE
            a.csr(RSI, ZERO, SSTATUS, 2); // SIE
        }
    }
    let top = a.here();
    if wfi {
        a.insn(Op::WFI, 0, 0, 0, 0);
    }
    a.j(top);
    assert!(a.here() <= HANDLER as i64);
    while a.here() < HANDLER as i64 {
        a.addi(ZERO, ZERO, 0);
    }
    match level {
        Level::M => {
            a.li(T0, SYSCON).li(T1, strata_devices::syscon::FINISHER_PASS.into()).store(Op::SW, T1, T0, 0);
        }
        Level::Vs => {
            a.li(A1, 0).sbi(SBI_SRST, 0, 0);
        }
    }
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), RAM)
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("strata-guest-time-{}-{n}-{name}.elf", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn bare(kernel: PathBuf, clock: ClockMode) -> Machine {
    Machine::new(&MachineConfig {
        ram_size: 16 << 20,
        harts: 1,
        bios: None,
        kernel,
        initrd: None,
        append: String::new(),
        clock,
        console_stdout: false,
        console_stdin: false,
        serial_log: None,
        virtio: Default::default(),
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
        tpm: None,
        iommu: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn hyp(kernel: PathBuf, clock: ClockMode) -> HypMachine {
    HypMachine::new(&RunConfig {
        vms: vec![VmConfig {
            name: "t".into(),
            memory: 16 << 20,
            vcpus: 1,
            protected: false,
            paging: Default::default(),
            kernel,
            initrd: None,
            append: String::new(),
            serial_log: None,
            virtio: Default::default(),
        }],
        harts: Some(1),
        policy: Policy::Pa,
        clock,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Guest time after N instructions is N / INSNS_PER_TICK on both machines
/// (fails on the old `strata run` loop, which advanced time by
/// `used / INSNS_PER_TICK` each round and dropped the remainder).
#[test]
fn virtual_time_is_the_same_function_of_instructions_on_both_machines() {
    // 10 ms of guest time: about 250 rounds of CHUNK slots.
    let deadline = 100_000;
    let mut m = bare(file("m-spin", &timer_guest(Level::M, deadline, false)), ClockMode::Virtual);
    assert_eq!(m.run(), ExitReason::PowerOff);
    let bare_steps = m.harts[0].stats.steps;
    let bare_ticks = m.guest_ticks();

    let mut h = hyp(file("vs-spin", &timer_guest(Level::Vs, deadline, false)), ClockMode::Virtual);
    let out = h.run();
    assert_eq!(out.status(), 0, "{out:?}");
    let hyp_steps = h.harts[0].stats.steps;
    let hyp_ticks = h.guest_ticks();

    for (what, steps, ticks) in [("strata machine", bare_steps, bare_ticks), ("strata run", hyp_steps, hyp_ticks)] {
        assert_eq!(
            ticks,
            steps / INSNS_PER_TICK,
            "{what}: {steps} instruction slots must make {} ticks of virtual time",
            steps / INSNS_PER_TICK
        );
        // The timer ended the run within a round or two of its deadline.
        assert!(
            ticks >= deadline && ticks <= deadline + 2 * CHUNK / INSNS_PER_TICK,
            "{what}: powered off at {ticks} ticks, the timer was due at {deadline}"
        );
    }
    assert!(bare_ticks.abs_diff(hyp_ticks) <= CHUNK / INSNS_PER_TICK, "bare {bare_ticks} vs run {hyp_ticks} ticks");
}

/// With the host clock, an idle guest sleeps until its timer: guest time at
/// exit is past the deadline and not past the host time the run took, and
/// the machine got there in a handful of rounds (a busy wait would take
/// hundreds of thousands). The paced clock too must never let guest time
/// run ahead of host time while idle (it used to wait at most 50 ms, then
/// jump to the deadline however far away it was).
#[test]
fn item11_host_and_paced_time_sleep_until_the_timer_on_both_machines() {
    // 0.3 s at 10 MHz.
    let deadline = 3_000_000;
    for clock in [ClockMode::Host, ClockMode::Paced] {
        for which in ["strata machine", "strata run"] {
            let t0 = Instant::now();
            let (ticks, rounds, retired) = if which == "strata machine" {
                let mut m = bare(file("m-wfi", &timer_guest(Level::M, deadline, true)), clock);
                assert_eq!(m.run(), ExitReason::PowerOff);
                (m.guest_ticks(), m.rounds(), m.harts[0].instret)
            } else {
                let mut h = hyp(file("vs-wfi", &timer_guest(Level::Vs, deadline, true)), clock);
                let out = h.run();
                assert_eq!(out.status(), 0, "{out:?}");
                (h.guest_ticks(), h.rounds(), h.harts[0].instret)
            };
            let host_ticks = t0.elapsed().as_nanos() as u64 / 100;
            let what = format!("{which}, {clock:?} clock");
            assert!(ticks >= deadline, "{what}: powered off at {ticks} ticks, before the timer was due at {deadline}");
            assert!(ticks <= host_ticks, "{what}: guest time {ticks} ticks ran ahead of host time {host_ticks}");
            assert!(rounds < 1000, "{what}: {rounds} rounds ({retired} instructions) for one timer: a busy wait");
        }
    }
}

//! The gdb stub's view of the bare board (`strata_platform::debug`): a tiny
//! guest that goes from M-mode to S-mode under Sv39 and counts in a loop,
//! debugged through the `DebugMachine` trait the stub uses — registers and
//! CSRs written and read back, a breakpoint reached by virtual address,
//! memory read and written through the hart's translation (without setting
//! an A bit the guest did not set), one step, and the run to power-off.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use strata_arch::csr::{addr, mstatus, satp};
use strata_arch::isa::Op;
use strata_arch::pte;
use strata_gdb::{DebugMachine, Reg, Resume, Stop, Watch, WatchKind};
use strata_platform::debug::BoardDebug;
use strata_platform::{ClockMode, ExitReason, Machine, MachineConfig, VirtioConfig};
use strata_testkit::asm::{elf, reg::*, Asm};

const RAM_BYTES: u64 = 16 << 20;
/// Where the guest maps RAM for S-mode: the first gigapage of the top
/// half of Sv39 (level-2 index 256).
const HIGH: u64 = 0xffff_ffc0_0000_0000;
/// A second mapping of RAM (index 257) whose PTE has no A bit: only the
/// debugger looks through it.
const SHADOW: u64 = HIGH + (1 << 30);
/// The page table and the counter, as offsets into RAM.
const TABLE: u64 = 0x10000;
const DATA: u64 = 0x20000;
/// The loop's count before the guest powers off.
const COUNT: u64 = 50;
/// pmpcfg entry: A = NAPOT (3 << 3), X, W, R (Priv. §3.7.1, Figure 3.31).
const PMP_NAPOT_RWX: u64 = 3 << 3 | 0b111;
/// Instruction words kept for one `li` of a 64-bit constant.
const LI_ROOM: usize = 8;

struct Guest {
    elf: Vec<u8>,
    /// The loop's first instruction (`addi a0, a0, 1`), as an S-mode VA.
    loop_va: u64,
}

fn guest(board: &strata_testkit::guest::Board) -> Guest {
    let ram = board.ram;
    let leaf =
        |pa: u64, a: bool| (pa >> 12) << 10 | pte::V | pte::R | pte::W | pte::X | if a { pte::A | pte::D } else { 0 };
    let mut a = Asm::new();
    // M-mode: three gigapages (devices at 0 identity-mapped, RAM at HIGH,
    // RAM again at SHADOW without A), Sv39 on, mret to S-mode at HIGH.
    // (t0 points at entry 256: every offset fits a 12-bit immediate.)
    a.li(T0, ram + TABLE + 256 * 8);
    a.li(T1, leaf(0, true)).sd(T1, T0, -256 * 8);
    a.li(T1, leaf(ram, true)).sd(T1, T0, 0);
    a.li(T1, leaf(ram, false)).sd(T1, T0, 8);
    a.li(T1, satp::SV39 << satp::MODE_SHIFT | (ram + TABLE) >> 12).csr(Op::CSRRW, ZERO, addr::SATP, T1);
    // PMP entry 0 opens all memory to S-mode (§3.7.1: with PMP and no
    // matching entry, S-mode accesses fail): NAPOT over everything, RWX.
    a.li(T1, u64::MAX >> 10).csr(Op::CSRRW, ZERO, addr::PMPADDR0, T1);
    a.li(T1, PMP_NAPOT_RWX).csr(Op::CSRRW, ZERO, addr::PMPCFG0, T1);
    a.li(T1, 1 << mstatus::MPP_SHIFT).csr(Op::CSRRW, ZERO, addr::MSTATUS, T1);
    // mepc: the S-mode entry, known only once the code below is laid
    // out: room for `li t1, entry` now, patched at the end.
    let mepc_at = a.here();
    for _ in 0..LI_ROOM {
        a.addi(ZERO, ZERO, 0);
    }
    a.csr(Op::CSRRW, ZERO, addr::MEPC, T1);
    a.insn(Op::MRET, 0, 0, 0, 0);
    let s_entry = a.here();
    // S-mode: count to COUNT in a0, storing each value at DATA.
    a.li(S0, HIGH + DATA).li(A0, 0).li(T2, COUNT);
    let top = a.here();
    a.addi(A0, A0, 1).sd(A0, S0, 0).bne(A0, T2, top);
    a.li(T0, board.syscon).li(T1, board.poweroff as u64).insn(Op::SW, 0, T0, T1, 0);
    let end = a.here();
    a.j(end);
    let mut fix = Asm::new();
    fix.li(T1, HIGH + s_entry as u64);
    assert!(fix.words().len() <= LI_ROOM, "li of the S-mode entry needs more room");
    let mut words = a.words().to_vec();
    let at = mepc_at as usize / 4;
    words[at..at + fix.words().len()].copy_from_slice(fix.words());
    let code: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    Guest { elf: elf(&code, ram), loop_va: HIGH + top as u64 }
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-gdb-target-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn machine(jit: bool, harts: u32) -> (Machine, Guest) {
    let g = guest(&common::board());
    let kernel = file(&format!("guest-{jit}-{harts}.elf"), &g.elf);
    let cfg = MachineConfig {
        ram_size: RAM_BYTES,
        harts,
        bios: None,
        kernel,
        initrd: None,
        append: String::new(),
        clock: ClockMode::Virtual,
        console_stdout: false,
        console_stdin: false,
        serial_log: None,
        virtio: VirtioConfig::default(),
        jit,
        extensions: strata_platform::Extensions::DEFAULT,
        tpm: None,
        iommu: None,
    };
    (Machine::new(&cfg).expect("machine"), g)
}

/// Runs `f` on another thread, failing the test instead of hanging it.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the debugged machine hung")
}

#[test]
fn registers_and_csrs_round_trip() {
    bounded(|| {
        let (mut m, _) = machine(false, 2);
        let mut d = BoardDebug { m: &mut m, outcome: None };
        assert_eq!(d.harts(), 2);
        for h in 0..2 {
            assert_eq!(d.reg(h, Reg::Csr(addr::MHARTID)), Some(h as u64), "mhartid of hart {h}");
            assert!(d.set_reg(h, Reg::X(7), 0x1234_5678_9abc_def0 + h as u64));
            assert_eq!(d.reg(h, Reg::X(7)), Some(0x1234_5678_9abc_def0 + h as u64));
            assert!(d.set_reg(h, Reg::F(3), 0x4009_21fb_5444_2d18));
            assert_eq!(d.reg(h, Reg::F(3)), Some(0x4009_21fb_5444_2d18));
            assert!(d.set_reg(h, Reg::Csr(addr::MSCRATCH), 0xfeed_f00d));
            assert_eq!(d.reg(h, Reg::Csr(addr::MSCRATCH)), Some(0xfeed_f00d));
        }
        // x0 stays zero; a CSR the hart lacks is refused.
        assert!(d.set_reg(0, Reg::X(0), 5));
        assert_eq!(d.reg(0, Reg::X(0)), Some(0));
        assert_eq!(d.reg(0, Reg::Csr(0x7ff)), None);
        assert!(!d.set_reg(0, Reg::Csr(0x7ff), 1));
        // Before the first instruction: M-mode, at the kernel's entry.
        assert_eq!(d.reg(0, Reg::Priv), Some(3));
        assert_eq!(d.reg(0, Reg::Pc), Some(common::board().ram));
        // A hart that does not exist has no registers.
        assert_eq!(d.reg(2, Reg::Pc), None);
    });
}

fn breakpoint_step_memory(jit: bool) {
    let (mut m, g) = machine(jit, 1);
    let ram = common::board().ram;
    let mut d = BoardDebug { m: &mut m, outcome: None };
    let breaks: BTreeSet<u64> = [g.loop_va].into();
    let mut never = || false;
    // Three times round the loop: the breakpoint stops the hart before
    // the `addi` runs, in S-mode, at the VA gdb asked for.
    // As gdb does, the hart steps off a breakpoint before it continues
    // (the check comes before every instruction, also the first).
    for round in 0..3u64 {
        if round > 0 {
            assert_eq!(
                d.resume(Resume::Continue { breaks: &breaks, watches: &[] }, &mut never),
                Stop::Breakpoint { hart: 0 }
            );
            assert_eq!(d.reg(0, Reg::X(A0 as u8)), Some(round - 1), "continuing at a breakpoint stops at once");
            assert_eq!(d.resume(Resume::Step { hart: 0 }, &mut never), Stop::Stepped { hart: 0 });
        }
        let stop = d.resume(Resume::Continue { breaks: &breaks, watches: &[] }, &mut never);
        assert_eq!(stop, Stop::Breakpoint { hart: 0 }, "round {round}");
        assert_eq!(d.reg(0, Reg::Pc), Some(g.loop_va));
        assert_eq!(d.reg(0, Reg::Priv), Some(1));
        assert_eq!(d.reg(0, Reg::X(A0 as u8)), Some(round), "a0 at the breakpoint, round {round}");
    }
    // Memory by VA through the guest's Sv39 tables, against RAM itself.
    let mut buf = [0u8; 8];
    assert_eq!(d.read_memory(0, HIGH + DATA, &mut buf), 8);
    assert_eq!(u64::from_le_bytes(buf), 2, "the counter as the guest stored it");
    assert_eq!(d.m.ram.load(ram + DATA, 8).unwrap(), 2);
    // The code, by VA, is the code in RAM.
    let mut code = [0u8; 4];
    assert_eq!(d.read_memory(0, g.loop_va, &mut code), 4);
    let off = g.loop_va - HIGH;
    assert_eq!(u32::from_le_bytes(code) as u64, d.m.ram.load(ram + off, 4).unwrap());
    // Through the mapping whose PTE has no A bit: same bytes, and the
    // debugger's walk left A clear.
    let mut shadow = [0u8; 8];
    assert_eq!(d.read_memory(0, SHADOW + DATA, &mut shadow), 8);
    assert_eq!(shadow, buf);
    let pte_shadow = d.m.ram.load(ram + TABLE + 257 * 8, 8).unwrap();
    assert_eq!(pte_shadow & pte::A, 0, "a debugger read set the A bit");
    // An unmapped VA reads nothing; a read that runs into one stops there.
    assert_eq!(d.read_memory(0, HIGH + (3 << 30), &mut buf), 0);
    // A write by VA lands in RAM.
    assert!(d.write_memory(0, HIGH + DATA + 8, &0xdead_beef_u64.to_le_bytes()));
    assert_eq!(d.m.ram.load(ram + DATA + 8, 8).unwrap(), 0xdead_beef);
    assert!(!d.write_memory(0, HIGH + (3 << 30), &[1]));
    // One step: the `addi` runs, pc moves to the next instruction.
    assert_eq!(d.resume(Resume::Step { hart: 0 }, &mut never), Stop::Stepped { hart: 0 });
    assert_eq!(d.reg(0, Reg::Pc), Some(g.loop_va + 4));
    assert_eq!(d.reg(0, Reg::X(A0 as u8)), Some(3));
    // A register written by the debugger is what the guest computes with:
    // a bound of 4 in t2 ends the loop after one more round.
    assert!(d.set_reg(0, Reg::X(T2 as u8), 4));
    let empty = BTreeSet::new();
    let stop = d.resume(Resume::Continue { breaks: &empty, watches: &[] }, &mut never);
    assert_eq!(stop, Stop::Ended(0));
    assert!(matches!(d.outcome, Some(ExitReason::PowerOff)));
    // The stored counter shows the guest used the debugger's bound.
    assert_eq!(d.m.ram.load(ram + DATA, 8).unwrap(), 4);
    // After the end, the machine stays ended.
    assert_eq!(d.resume(Resume::Continue { breaks: &empty, watches: &[] }, &mut never), Stop::Ended(0));
}

/// Watchpoints by virtual address on the board: a write watch on the
/// guest's counter stops the hart after each store (the value stored, the
/// pc past the `sd`); the same bytes watched through another virtual
/// address (the SHADOW alias), or watched for reads the guest never makes,
/// do not stop it.
fn watchpoints(jit: bool) {
    let (mut m, g) = machine(jit, 1);
    let ram = common::board().ram;
    let mut d = BoardDebug { m: &mut m, outcome: None };
    let none = BTreeSet::new();
    let mut never = || false;
    let write = [Watch { addr: HIGH + DATA + 4, len: 2, kind: WatchKind::Write }];
    for round in 1..=3u64 {
        let stop = d.resume(Resume::Continue { breaks: &none, watches: &write }, &mut never);
        assert_eq!(stop, Stop::Watchpoint { hart: 0, watch: write[0] }, "round {round}");
        assert_eq!(d.m.ram.load(ram + DATA, 8).unwrap(), round, "the store has happened");
        assert_eq!(d.reg(0, Reg::Pc), Some(g.loop_va + 8), "stopped after the sd");
    }
    // Reads of the counter (the guest makes none), and writes watched at
    // the alias: the guest runs on to its power-off.
    let other = [
        Watch { addr: HIGH + DATA, len: 8, kind: WatchKind::Read },
        Watch { addr: SHADOW + DATA, len: 8, kind: WatchKind::Write },
    ];
    assert_eq!(d.resume(Resume::Continue { breaks: &none, watches: &other }, &mut never), Stop::Ended(0));
    assert_eq!(d.m.ram.load(ram + DATA, 8).unwrap(), COUNT);
}

#[test]
fn watchpoints_interpreter() {
    bounded(|| watchpoints(false));
}

#[test]
fn watchpoints_jit() {
    bounded(|| watchpoints(true));
}

#[test]
fn breakpoint_memory_and_step_interpreter() {
    bounded(|| breakpoint_step_memory(false));
}

#[test]
fn breakpoint_memory_and_step_jit() {
    bounded(|| breakpoint_step_memory(true));
}

#[test]
fn an_interrupt_stops_a_running_machine() {
    bounded(|| {
        // A guest that never ends: the loop's bne target is itself.
        let (mut m, g) = machine(false, 1);
        let mut d = BoardDebug { m: &mut m, outcome: None };
        // Keep the loop going forever: break at it, set the bound out of reach.
        let breaks: BTreeSet<u64> = [g.loop_va].into();
        assert_eq!(
            d.resume(Resume::Continue { breaks: &breaks, watches: &[] }, &mut || false),
            Stop::Breakpoint { hart: 0 }
        );
        assert!(d.set_reg(0, Reg::X(T2 as u8), u64::MAX));
        let mut asked = 0;
        let stop = d.resume(Resume::Continue { breaks: &BTreeSet::new(), watches: &[] }, &mut || {
            asked += 1;
            asked == 3
        });
        assert_eq!(stop, Stop::Interrupted);
        assert_eq!(asked, 3);
        assert!(d.outcome.is_none());
        assert!(d.reg(0, Reg::X(A0 as u8)).unwrap() > COUNT, "the guest ran on past its old bound");
    });
}

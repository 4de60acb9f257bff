//! `--cpu` (issue 20): `rv64gc` is exactly the machine of old, whose harts
//! raise an illegal-instruction exception on the bit-manipulation and
//! conditional instructions that the default harts execute; `rva23`, not
//! complete yet, and unknown names are refused with one line and status 1.
//!
//! The guest is a bare M-mode program (built from the encoding table) that
//! runs one instruction of each new extension and powers off reporting
//! success; its trap handler powers off reporting failure, so the exit
//! status tells whether any of them trapped.

use std::path::PathBuf;

use strata_arch::csr::addr::MTVEC;
use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_devices::syscon::{FINISHER_FAIL, FINISHER_PASS};
use strata_testkit::asm::{elf, reg::*, Asm};

mod common;
use common::{poweroff, strata};

/// Runs `ops` (each as `op a0, a1, a2`, with a shift amount of 1 or no
/// rs2 where the instruction has none) and powers off: PASS if none
/// trapped, FAIL from the trap handler otherwise.
fn program(ops: &[Op]) -> Vec<u8> {
    use strata_arch::isa::{encoding, Imm};
    // The handler sits at offset 4 (mtvec, direct mode), jumped over.
    let mut handler = Asm::new();
    poweroff(&mut handler, FINISHER_FAIL);
    let mut a = Asm::new();
    a.j(4 + handler.here());
    for &w in handler.words() {
        a.word(w);
    }
    a.li(T0, VIRT.ram_base + 4).csr(Op::CSRRW, ZERO, MTVEC, T0);
    a.li(A1, 0x8000_0000_0000_0001).li(A2, 3);
    for &op in ops {
        let e = encoding(op).expect("a table row");
        if e.imm == Imm::Shamt {
            a.insn(op, A0, A1, 0, 1);
        } else if e.mask & (31 << 20) == 31 << 20 {
            // The rs2 field is part of the opcode (CLZ, REV8, ...).
            a.insn(op, A0, A1, 0, 0);
        } else {
            a.insn(op, A0, A1, A2, 0);
        }
    }
    poweroff(&mut a, FINISHER_PASS);
    elf(&a.bytes(), VIRT.ram_base)
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-cpu-test-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Every new instruction, by extension.
fn new_ops() -> Vec<(&'static str, Vec<Op>)> {
    use strata_arch::ext::Ext;
    [Ext::Zba, Ext::Zbb, Ext::Zbc, Ext::Zbs, Ext::Zicond]
        .into_iter()
        .map(|x| (x.name(), strata_arch::isa::ENCODINGS.iter().filter(|e| e.ext == x).map(|e| e.op).collect()))
        .collect()
}

#[test]
fn rv64gc_traps_on_the_new_instructions_and_the_default_runs_them() {
    let mut runs = 0;
    for (ext, ops) in new_ops() {
        assert!(!ops.is_empty(), "{ext}");
        for &op in &ops {
            let elf = file(&format!("{}.elf", op.name()), &program(&[op]));
            for jit in [true, false] {
                let mut args = vec!["machine", "--bios", "none", "-m", "16M", "--clock", "virtual"];
                if !jit {
                    args.push("--no-jit");
                }
                args.extend(["--kernel", elf.to_str().unwrap()]);
                let default = strata(&args);
                assert_eq!(default.status.code(), Some(0), "{ext} {} (jit {jit}) on the default cpu", op.name());
                args.extend(["--cpu", "rv64gc"]);
                let old = strata(&args);
                assert_eq!(old.status.code(), Some(4), "{ext} {} (jit {jit}) must trap on rv64gc", op.name());
            }
            let _ = std::fs::remove_file(&elf);
            runs += 4;
        }
    }
    assert_eq!(runs, 4 * 45, "every instruction of the five extensions, both ways, JIT and interpreter");
}

#[test]
fn the_baseline_program_passes_on_rv64gc() {
    // The harness itself: with no new instruction, rv64gc passes too.
    let elf = file("empty.elf", &program(&[Op::ADD]));
    let out = strata(&["machine", "--bios", "none", "-m", "16M", "--cpu", "rv64gc", "--kernel", elf.to_str().unwrap()]);
    let _ = std::fs::remove_file(&elf);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn rva23_and_unknown_models_are_refused_with_one_line() {
    let elf = file("refused.elf", &program(&[]));
    let k = elf.to_str().unwrap();
    for (args, want) in [
        (vec!["machine", "--bios", "none", "--kernel", k, "--cpu", "rva23"], "not complete yet"),
        (vec!["run", "--kernel", k, "--cpu", "rva23"], "not complete yet"),
        (vec!["machine", "--bios", "none", "--kernel", k, "--cpu", "pentium"], "unknown CPU model"),
    ] {
        let out = strata(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with("strata: ") && lines[0].contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_file(&elf);
}

//! What the CLI tests that run bare M-mode programs share.

use std::process::{Command, Output, Stdio};

use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_testkit::asm::{reg::*, Asm};

/// Runs the `strata` binary with `args`, stdin closed.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata")).args(args).stdin(Stdio::null()).output().expect("spawn strata")
}

/// Powers the board off with `code` (a syscon finisher value) and spins.
pub fn poweroff(a: &mut Asm, code: u32) {
    a.li(T1, VIRT.syscon.base).li(T0, code as u64).store(Op::SW, T0, T1, 0);
    let here = a.here();
    a.j(here);
}

//! `--api-sock` and `--stats-json` on the `strata` binary: the operator's
//! mistakes are one line and status 1, and the stats file is written.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_testkit::asm::{elf, reg::*, Asm};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-api-flags-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// An M-mode program that powers the board off at once.
fn power_off_kernel() -> PathBuf {
    let mut a = Asm::new();
    a.li(T0, VIRT.syscon.base).li(T1, strata_devices::syscon::FINISHER_PASS.into()).store(Op::SW, T1, T0, 0);
    let end = a.here();
    a.j(end);
    let p = tmp("off.elf");
    std::fs::write(&p, elf(&a.bytes(), VIRT.ram_base)).unwrap();
    p
}

/// Runs `strata machine --bios none --kernel K -m 16M EXTRA`: status, stderr.
fn machine(extra: &[&str]) -> (i32, String) {
    let k = power_off_kernel();
    let out = Command::new(STRATA)
        .args(["machine", "--bios", "none", "--kernel", k.to_str().unwrap(), "-m", "16M"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run strata");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn api_sock_with_hart_threads_is_one_line_and_status_1() {
    let sock = tmp("threads.sock");
    let (status, err) = machine(&["--smp", "2", "--threads", "2", "--api-sock", sock.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("strata: --threads 2 with --api-sock:"), "{err}");
    assert!(!sock.exists(), "no socket may be left behind");
}

#[test]
fn api_sock_on_a_regular_file_leaves_it_alone() {
    let f = tmp("precious");
    std::fs::write(&f, b"keep me").unwrap();
    let (status, err) = machine(&["--api-sock", f.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!("strata: --api-sock {}: exists and is not a socket; refusing to replace it", f.display())
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"keep me");
    std::fs::remove_file(&f).unwrap();
}

#[test]
fn stats_json_is_written_at_exit_and_the_socket_removed() {
    let (sock, json) = (tmp("ok.sock"), tmp("stats.json"));
    let (status, err) = machine(&["--api-sock", sock.to_str().unwrap(), "--stats-json", json.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(!sock.exists(), "the socket file must be removed at exit");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).expect("JSON");
    // The program is three instructions before its store powers off.
    assert!(v["instructions"].as_u64().is_some_and(|n| n >= 3), "{v}");
    assert_eq!(v["harts"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["clock"], "host");
    std::fs::remove_file(&json).unwrap();
}

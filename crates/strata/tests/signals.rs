//! Signals stop Strata cleanly (issue 12 item 5): the real binary, with a
//! disk, a vsock device and a virtio-console, gets SIGTERM, SIGINT or SIGHUP
//! while its guest runs. It must exit with status 8, say why on stderr,
//! print `--stats`, and leave none of the socket files it made; the vsock
//! socket must also go after a normal power-off.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use strata_arch::isa::Op;
use strata_arch::sbi::{ext, fid};
use strata_devices::board::VIRT;
use strata_devices::syscon::FINISHER_PASS;
use strata_testkit::asm::{elf, reg::*, Asm};

const RAM: u64 = VIRT.ram_base;

fn strata() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strata"))
}

/// A fresh directory for one case.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-signals-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A guest that spins forever, or powers off at once: in M-mode for the
/// bare board (syscon), in VS-mode for `strata run` (SBI SRST).
fn guest(d: &Path, vs: bool, power_off: bool) -> PathBuf {
    let mut a = Asm::new();
    if power_off {
        if vs {
            // Shutdown (type 0), no reason (a1 = 0).
            a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
        } else {
            a.li(T0, VIRT.syscon.base).li(T1, FINISHER_PASS.into()).store(Op::SW, T1, T0, 0);
        }
    }
    let top = a.here();
    a.j(top);
    let p = d.join("guest.elf");
    std::fs::write(&p, elf(&a.bytes(), RAM)).unwrap();
    p
}

struct Case {
    dir: PathBuf,
    vsock: PathBuf,
    console: PathBuf,
}

/// Starts `strata machine` (or `strata run`) with a disk, vsock and a
/// virtio-console.
fn start(name: &str, run: bool, power_off: bool) -> (Case, Child) {
    let d = dir(name);
    let kernel = guest(&d, run, power_off);
    let disk = d.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let case = Case { vsock: d.join("v.sock"), console: d.join("c.sock"), dir: d };
    let mut c = strata();
    if run {
        c.arg("run");
    } else {
        c.args(["machine", "--bios", "none"]);
    }
    c.arg("--kernel")
        .arg(&kernel)
        .args(["-m", "16M", "--stats", "--clock", "virtual"])
        .arg("--drive")
        .arg(format!("file={}", disk.display()))
        .arg("--vsock")
        .arg(format!("cid=3,uds={}", case.vsock.display()))
        .arg("--virtio-console")
        .arg(&case.console)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("strata starts");
    (case, child)
}

/// Waits for the child to exit (at most 60 s: then it is killed and the
/// test fails). Returns its status code and stderr.
fn finish(mut child: Child, what: &str) -> (i32, String) {
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{what}: strata did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or_else(|| panic!("{what}: killed by a signal, not stopped cleanly: {err}")), err)
}

fn wait_for(p: &Path, what: &str) {
    let t0 = Instant::now();
    while !p.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}: {} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn item5_a_signal_stops_strata_cleanly_with_status_8() {
    let cases: [(&str, bool, &str); 4] = [
        ("machine-term", false, "TERM"),
        ("machine-int", false, "INT"),
        ("machine-hup", false, "HUP"),
        ("run-term", true, "TERM"),
    ];
    for (name, run, sig) in cases {
        let (case, child) = start(name, run, false);
        // The devices are up once both sockets exist.
        wait_for(&case.vsock, name);
        wait_for(&case.console, name);
        std::thread::sleep(Duration::from_millis(100));
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
        assert!(ok.success(), "{name}: kill -{sig} failed");
        let (code, err) = finish(child, name);
        assert_eq!(code, 8, "{name}: exit status after SIG{sig}; stderr:\n{err}");
        assert!(err.contains(&format!("strata: stopped by SIG{sig}")), "{name}: no reason on stderr:\n{err}");
        assert!(err.contains(" MIPS") && err.contains("hart 0: retired"), "{name}: no --stats on stderr:\n{err}");
        assert!(!case.vsock.exists(), "{name}: the vsock socket {} was left behind", case.vsock.display());
        assert!(!case.console.exists(), "{name}: the console socket {} was left behind", case.console.display());
        let _ = std::fs::remove_dir_all(&case.dir);
    }
}

#[test]
fn item5_a_power_off_leaves_no_socket_files() {
    for (name, run) in [("machine-off", false), ("run-off", true)] {
        let (case, child) = start(name, run, true);
        let (code, err) = finish(child, name);
        assert_eq!(code, 0, "{name}: the guest powered off; stderr:\n{err}");
        assert!(!err.contains("stopped by"), "{name}: {err}");
        assert!(!case.vsock.exists(), "{name}: the vsock socket {} was left behind", case.vsock.display());
        assert!(!case.console.exists(), "{name}: the console socket {} was left behind", case.console.display());
        let _ = std::fs::remove_dir_all(&case.dir);
    }
}

//! Building programs and running them on QEMU and Strata.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use strata_arch::cause;

/// What Strata (with its JIT on) is compared against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// QEMU, the reference machine.
    Qemu,
    /// Strata itself with the JIT off (`--no-jit`): every instruction
    /// interpreted. Checks the JIT against the interpreter.
    Interp,
}

impl Oracle {
    pub fn parse(s: &str) -> Result<Oracle, String> {
        match s {
            "qemu" => Ok(Oracle::Qemu),
            "interp" => Ok(Oracle::Interp),
            _ => Err(format!("unknown oracle {s:?} (qemu or interp)")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tools {
    pub cc: String,
    pub qemu: String,
    pub strata: PathBuf,
    pub timeout: Duration,
    pub oracle: Oracle,
}

impl Tools {
    pub fn from_env() -> Tools {
        let strata = std::env::var("STRATA_BIN").ok().map(PathBuf::from).unwrap_or_else(|| {
            let td = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
            PathBuf::from(td).join("release/strata")
        });
        Tools {
            cc: std::env::var("CC_RISCV").unwrap_or_else(|_| "riscv64-unknown-elf-gcc".into()),
            qemu: std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-riscv64".into()),
            strata,
            timeout: Duration::from_secs(std::env::var("TIMEOUT").ok().and_then(|t| t.parse().ok()).unwrap_or(30)),
            oracle: Oracle::Qemu,
        }
    }
}

/// Assemble and link `src` into `elf`. The linker script is written next to it.
pub fn build(tools: &Tools, src: &Path, elf: &Path) -> Result<(), String> {
    let ld = elf.with_extension("ld");
    std::fs::write(&ld, crate::emit::LINK_LD).map_err(|e| format!("{}: {e}", ld.display()))?;
    let out = Command::new(&tools.cc)
        .args(["-march=rv64gc", "-mabi=lp64d", "-mcmodel=medany", "-nostdlib", "-nostartfiles"])
        .args(["-static", "-T"])
        .arg(&ld)
        .arg("-o")
        .arg(elf)
        .arg(src)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", tools.cc))?;
    if !out.status.success() {
        return Err(format!("build of {} failed:\n{}", src.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct RunOut {
    pub stdout: String,
    pub timed_out: bool,
    pub status: Option<i32>,
}

fn spawn(mut cmd: Command) -> Result<std::process::Child, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
    cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
}

fn finish(mut child: std::process::Child, deadline: Instant) -> RunOut {
    // Read stdout on a thread so a chatty machine cannot block on a full pipe.
    let mut so = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code(),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let bytes = reader.join().unwrap_or_default();
    RunOut { stdout: String::from_utf8_lossy(&bytes).replace('\r', ""), timed_out, status }
}

/// Run `elf` on both machines at once; returns (oracle, strata).
pub fn run_both(tools: &Tools, elf: &Path) -> Result<(RunOut, RunOut), String> {
    let q = match tools.oracle {
        Oracle::Qemu => {
            let mut q = Command::new(&tools.qemu);
            q.args(["-M", "virt", "-bios", "none", "-kernel"])
                .arg(elf)
                .args(["-m", "128M", "-smp", "1", "-display", "none", "-serial", "stdio", "-monitor", "none"]);
            q
        }
        Oracle::Interp => {
            let mut q = Command::new(&tools.strata);
            q.args(["machine", "--clock", "virtual", "--no-jit", "--cpu", "max", "--bios", "none", "--kernel"])
                .arg(elf)
                .args(["-m", "128M"]);
            q
        }
    };
    let mut s = Command::new(&tools.strata);
    // Virtual time: a run is a function of its instructions (rdtime too).
    s.args(["machine", "--clock", "virtual", "--bios", "none", "--kernel"]).arg(elf).args(["-m", "128M"]);
    // Against its own interpreter, Strata runs everything it implements
    // (the generator then also emits what QEMU lacks).
    if tools.oracle == Oracle::Interp {
        s.args(["--cpu", "max"]);
    }
    // The JIT is on unless the environment turns it off: make sure.
    s.env_remove("STRATA_NO_JIT");
    let deadline = Instant::now() + tools.timeout;
    let qc = spawn(q)?;
    let sc = spawn(s)?;
    let qo = finish(qc, deadline);
    let so = finish(sc, deadline);
    Ok((qo, so))
}

/// Outcome of comparing the two outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `mtval_choices`: trap lines whose mtval differed only within the
    /// implementation's freedom (see [`mtval_equivalent`]).
    Pass {
        checkpoints: usize,
        traps: usize,
        mtval_choices: usize,
    },
    /// The oracle itself did not produce a complete dump.
    OracleBroken(String),
    Mismatch(Mismatch),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Checkpoint number (1-based) in which the first difference is.
    pub checkpoint: usize,
    /// Kind of the first differing line (`X`, `F`, `FCSR`, `MEM`, `T`, ...).
    pub kind: String,
    pub qemu: String,
    pub strata: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkpoint {}: qemu `{}` strata `{}`", self.checkpoint, describe(&self.qemu), describe(&self.strata))
    }
}

/// `X 0a 00..` -> `x10 = 00..` etc., for reports.
pub fn describe(line: &str) -> String {
    let mut w = line.split_whitespace();
    match (w.next(), w.next(), w.next()) {
        (Some("X"), Some(i), Some(v)) => {
            format!("x{} = {v}", u32::from_str_radix(i, 16).unwrap_or(99))
        }
        (Some("F"), Some(i), Some(v)) => {
            format!("f{} = {v}", u32::from_str_radix(i, 16).unwrap_or(99))
        }
        (Some("T"), Some(c), Some(t)) => {
            format!("trap mcause={c} mtval={t} mepc={}", w.next().unwrap_or("?"))
        }
        _ => line.to_string(),
    }
}

pub fn compare(q: &RunOut, s: &RunOut) -> Verdict {
    let ql: Vec<&str> = q.stdout.lines().collect();
    let sl: Vec<&str> = s.stdout.lines().collect();
    if q.timed_out || ql.last() != Some(&"END") || ql.iter().any(|l| l.starts_with("FATAL")) {
        return Verdict::OracleBroken(format!(
            "QEMU did not finish cleanly (timed out: {}, last line: {:?})",
            q.timed_out,
            ql.last()
        ));
    }
    let mut cp = 0;
    let mut mtval_choices = 0;
    for (i, qline) in ql.iter().enumerate() {
        if qline.starts_with("CP ") {
            cp += 1;
        }
        let sline = sl.get(i).copied();
        if let Some(sline) = sline {
            if sline != *qline && mtval_equivalent(qline, sline) {
                mtval_choices += 1;
                continue;
            }
        }
        if sline != Some(*qline) {
            let strata = match sline {
                Some(l) => l.to_string(),
                None if s.timed_out => "<timed out>".into(),
                None => format!("<output ended; exit status {:?}>", s.status),
            };
            let kind = qline.split_whitespace().next().unwrap_or("").to_string();
            return Verdict::Mismatch(Mismatch { checkpoint: cp, kind, qemu: qline.to_string(), strata });
        }
    }
    if sl.len() > ql.len() {
        return Verdict::Mismatch(Mismatch {
            checkpoint: cp,
            kind: "extra".into(),
            qemu: "<end>".into(),
            strata: sl[ql.len()].to_string(),
        });
    }
    if s.status != Some(0) {
        return Verdict::Mismatch(Mismatch {
            checkpoint: cp,
            kind: "exit".into(),
            qemu: "exit 0".into(),
            strata: format!("exit {:?}", s.status),
        });
    }
    let traps = ql.iter().filter(|l| l.starts_with("T ")).count();
    Verdict::Pass { checkpoints: cp, traps, mtval_choices }
}

/// Two trap-log lines `T cause mtval mepc insn` that differ only in mtval,
/// where the Privileged spec (20211203, 3.1.16) lets the implementation
/// choose: for a breakpoint (cause 3) mtval is 0 or the faulting address
/// (= mepc for EBREAK); for an illegal instruction (cause 2) it is 0 or the
/// faulting instruction bits. Any other difference is a mismatch.
pub fn mtval_equivalent(q: &str, s: &str) -> bool {
    let parse = |l: &str| -> Option<[u64; 4]> {
        let mut w = l.split_whitespace();
        if w.next()? != "T" {
            return None;
        }
        let mut v = [0u64; 4];
        for x in v.iter_mut() {
            *x = u64::from_str_radix(w.next()?, 16).ok()?;
        }
        Some(v)
    };
    let (Some(q), Some(s)) = (parse(q), parse(s)) else { return false };
    if q[0] != s[0] || q[2] != s[2] || q[3] != s[3] {
        return false;
    }
    let allowed: [u64; 2] = match q[0] {
        cause::BREAKPOINT => [0, q[2]],
        cause::ILLEGAL_INSN => [0, q[3]],
        _ => return false,
    };
    allowed.contains(&q[1]) && allowed.contains(&s[1])
}

/// Build `src` and compare the two machines on it.
pub fn check_source(tools: &Tools, src: &Path) -> Result<Verdict, String> {
    let elf = src.with_extension("elf");
    build(tools, src, &elf)?;
    let (q, s) = run_both(tools, &elf)?;
    Ok(compare(&q, &s))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn mtval_freedom_is_narrow() {
        let a = "T 0000000000000003 0000000000000000 0000000080000010 00009002";
        let b = "T 0000000000000003 0000000080000010 0000000080000010 00009002";
        let c = "T 0000000000000003 0000000080000012 0000000080000010 00009002";
        assert!(mtval_equivalent(a, b));
        assert!(!mtval_equivalent(a, c));
        let i0 = "T 0000000000000002 0000000000000000 0000000080000010 0000000b";
        let i1 = "T 0000000000000002 000000000000000b 0000000080000010 0000000b";
        let i2 = "T 0000000000000002 00000000ffff000b 0000000080000010 0000000b";
        assert!(mtval_equivalent(i0, i1));
        assert!(!mtval_equivalent(i1, i2));
        let l0 = "T 0000000000000005 0000000000000000 0000000080000010 00003003";
        let l1 = "T 0000000000000005 0000000000000008 0000000080000010 00003003";
        assert!(!mtval_equivalent(l0, l1));
    }
}

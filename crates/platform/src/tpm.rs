//! The TPM's host side for `--tpm swtpm[,state=DIR]`: Strata starts swtpm
//! (the software TPM, Debian's `swtpm` package), talks TPM commands to it
//! over a Unix socket, and stops it at exit.
//!
//! swtpm is run as `swtpm socket --tpm2 --tpmstate dir=STATE --server
//! type=unixio,fd=N --flags not-need-init --terminate` (swtpm(8)): Strata
//! binds and listens on the socket itself, hands swtpm the listening
//! descriptor and connects at once, so there is no wait for a socket file
//! to appear. The data channel carries bare TPM commands and responses
//! (each response's header gives its size). `not-need-init` spares the
//! control channel's `CMD_INIT`; Strata sends `TPM2_Startup(CLEAR)` itself,
//! as firmware does at power-on. QEMU's `tpm-emulator` backend, the
//! reference, uses the control channel and a data descriptor instead; the
//! control channel's extras (locality, cancel, state blobs for migration)
//! are not needed here.
//!
//! Process life, start to end:
//!
//! | when | what happens to swtpm |
//! | --- | --- |
//! | `swtpm` not on PATH | [`TpmError::NotInstalled`], the machine is not built |
//! | it exits or stays silent during start | [`TpmError::Start`] with its own last words, the process is killed |
//! | the machine runs | a worker thread owns the socket; every read and write has a timeout ([`IO_TIMEOUT`], or `timeout=SECS`) |
//! | it dies or hangs mid-run | the worker says so once on stderr; that command and every later one gets `TPM_RC_FAILURE` (the guest sees a TPM error, never a hang); the machine runs on without a TPM |
//! | Strata ends (normally, on an error path, or dropped) | [`Swtpm::stop`]/`Drop`: SIGTERM (swtpm saves its state and exits), SIGKILL after [`STOP_GRACE`]; the private directory is removed |
//! | Strata is killed | the socket closes (`--terminate`) and `PR_SET_PDEATHSIG` kills swtpm; only the private directory in `$TMPDIR` can be left behind |
//!
//! The private directory (`$TMPDIR/strata-tpm-PID-N`, mode 0700) holds the
//! socket, swtpm's log and, without `state=`, the TPM's state (a new TPM
//! each run: new seeds, new endorsement key). With `state=DIR` the state
//! is kept in DIR and the TPM keeps its identity between runs.

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use strata_devices::tpm_tis::{header_size, TpmBackend, TPM_HEADER_SIZE};

use crate::measure::{command, Measurements};

/// How long swtpm may take over one read or write, unless `timeout=` says
/// otherwise. Key generation in swtpm takes well under a second; this is
/// for a process that hangs.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The range `timeout=SECS` accepts.
pub const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=600;
/// How long swtpm gets to exit after its socket closed.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// The largest response Strata accepts from swtpm.
const MAX_RESPONSE: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("--tpm {0}: expected swtpm[,state=DIR][,timeout=SECS] (SECS 1 to 600)")]
    Spec(String),
    #[error(
        "--tpm swtpm: the swtpm program is not installed (Debian package swtpm; scripts/setup-host.sh installs it)"
    )]
    NotInstalled,
    #[error("--tpm swtpm: cannot {what}: {source}")]
    Host { what: String, source: std::io::Error },
    #[error("--tpm swtpm: state={}: {reason}", path.display())]
    StateDir { path: PathBuf, reason: String },
    /// swtpm exited or did not answer while Strata set it up; `said` is the
    /// end of its log.
    #[error("--tpm swtpm: swtpm failed at start ({why}){said}")]
    Start { why: String, said: String },
    /// A command Strata sent (Startup, a measurement) was refused.
    #[error("--tpm swtpm: swtpm refused {what} (response code {rc:#x})")]
    Refused { what: String, rc: u32 },
}

/// `--tpm swtpm[,state=DIR][,timeout=SECS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmSpec {
    pub state: Option<PathBuf>,
    /// Each read and write on swtpm's socket ([`IO_TIMEOUT`] by default).
    pub timeout: Duration,
}

impl TpmSpec {
    pub fn parse(s: &str) -> Result<TpmSpec, TpmError> {
        let mut parts = s.split(',');
        if parts.next() != Some("swtpm") {
            return Err(TpmError::Spec(s.to_string()));
        }
        let mut spec = TpmSpec { state: None, timeout: IO_TIMEOUT };
        let mut timeout_seen = false;
        for p in parts {
            match p.split_once('=') {
                Some(("state", dir)) if !dir.is_empty() && spec.state.is_none() => spec.state = Some(dir.into()),
                Some(("timeout", secs)) if !timeout_seen => match secs.parse::<u64>() {
                    Ok(n) if TIMEOUT_SECS.contains(&n) => {
                        spec.timeout = Duration::from_secs(n);
                        timeout_seen = true;
                    }
                    _ => return Err(TpmError::Spec(s.to_string())),
                },
                _ => return Err(TpmError::Spec(s.to_string())),
            }
        }
        Ok(spec)
    }
}

/// A running swtpm and its private directory.
pub struct Swtpm {
    child: Option<Child>,
    dir: PathBuf,
    /// The connection, until the backend's worker takes it.
    conn: Option<UnixStream>,
}

/// One TPM command and response over `conn`, with the I/O timeouts set on
/// it. The error is one line for the operator.
fn transact(conn: &mut UnixStream, cmd: &[u8]) -> Result<Vec<u8>, String> {
    let secs = conn.read_timeout().ok().flatten().unwrap_or(IO_TIMEOUT).as_secs();
    let what = |e: std::io::Error, doing: &str| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("swtpm did not answer within {secs} s ({doing})")
        }
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
            format!("swtpm closed its socket ({doing}): it has exited")
        }
        _ => format!("{doing}: {e}"),
    };
    conn.write_all(cmd).map_err(|e| what(e, "sending a command"))?;
    let mut r = vec![0u8; TPM_HEADER_SIZE];
    conn.read_exact(&mut r).map_err(|e| what(e, "reading a response"))?;
    let size = header_size(&r).unwrap_or(0);
    if !(TPM_HEADER_SIZE..=MAX_RESPONSE).contains(&size) {
        return Err(format!("swtpm sent a response header with size {size}"));
    }
    r.resize(size, 0);
    conn.read_exact(&mut r[TPM_HEADER_SIZE..]).map_err(|e| what(e, "reading a response"))?;
    Ok(r)
}

impl Swtpm {
    /// Starts swtpm for `spec` and connects to it.
    pub fn start(spec: &TpmSpec) -> Result<Swtpm, TpmError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let host = |what: &str| {
            let what = what.to_string();
            move |source| TpmError::Host { what, source }
        };
        let dir = std::env::temp_dir().join(format!(
            "strata-tpm-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(host("make a private directory for swtpm"))?;
        // From here on, Drop removes the directory (and the process).
        let mut me = Swtpm { child: None, dir, conn: None };
        let state = match &spec.state {
            Some(p) => {
                if !p.exists() {
                    std::fs::DirBuilder::new().mode(0o700).recursive(true).create(p).map_err(|e| {
                        TpmError::StateDir { path: p.clone(), reason: format!("cannot create it: {e}") }
                    })?;
                }
                if !p.is_dir() {
                    return Err(TpmError::StateDir { path: p.clone(), reason: "not a directory".into() });
                }
                p.clone()
            }
            None => {
                let s = me.dir.join("state");
                std::fs::DirBuilder::new().mode(0o700).create(&s).map_err(host("make swtpm's state directory"))?;
                s
            }
        };
        let sock = me.dir.join("swtpm.sock");
        let listener = UnixListener::bind(&sock).map_err(host("make swtpm's socket"))?;
        let fd = listener.as_raw_fd();
        let stderr = std::fs::File::create(me.log_path()).map_err(host("make swtpm's log"))?;
        let mut cmd = Command::new("swtpm");
        cmd.arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=unixio,fd={fd}"))
            .arg("--flags")
            .arg("not-need-init")
            .arg("--terminate")
            .arg("--log")
            .arg(format!("file={}", me.log_path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes async-signal-safe system calls (fcntl, prctl) on
        // values copied into it.
        unsafe {
            cmd.pre_exec(move || {
                // The listening socket is inherited (Rust opens it
                // close-on-exec); swtpm dies with Strata.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        me.child = Some(cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TpmError::NotInstalled
            } else {
                TpmError::Host { what: "start swtpm".into(), source: e }
            }
        })?);
        let conn = UnixStream::connect(&sock).map_err(host("connect to swtpm"))?;
        drop(listener);
        conn.set_read_timeout(Some(spec.timeout)).map_err(host("set a timeout on swtpm's socket"))?;
        conn.set_write_timeout(Some(spec.timeout)).map_err(host("set a timeout on swtpm's socket"))?;
        me.conn = Some(conn);
        Ok(me)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("swtpm.log")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last line swtpm wrote, as ": LINE" (or nothing).
    fn last_words(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        log.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": swtpm said \"{}\"", l.trim()))
            .unwrap_or_default()
    }

    /// Sends one command during set-up; a failure is a [`TpmError::Start`].
    fn setup_command(&mut self, cmd: &[u8]) -> Result<Vec<u8>, TpmError> {
        let conn = self.conn.as_mut().expect("connected until the backend takes the socket");
        transact(conn, cmd).map_err(|why| {
            // Give an exiting swtpm a moment to finish its log.
            if let Some(c) = self.child.as_mut() {
                let until = Instant::now() + Duration::from_millis(200);
                while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            TpmError::Start { why, said: self.last_words() }
        })
    }

    /// TPM2_Startup(CLEAR), then every measurement extended in order
    /// (`EV_NO_ACTION` events are log-only).
    pub fn start_up_and_measure(&mut self, m: &Measurements) -> Result<(), TpmError> {
        let r = self.setup_command(&command::startup_clear())?;
        match command::response_code(&r) {
            Some(0) | Some(command::TPM_RC_INITIALIZE) => {}
            rc => return Err(TpmError::Refused { what: "TPM2_Startup".into(), rc: rc.unwrap_or(u32::MAX) }),
        }
        for e in &m.events {
            let r = self.setup_command(&command::pcr_extend(e.pcr, &e.digest))?;
            if command::response_code(&r) != Some(0) {
                return Err(TpmError::Refused {
                    what: format!("TPM2_PCR_Extend of PCR {}", e.pcr),
                    rc: command::response_code(&r).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(())
    }

    /// The backend the TIS device talks to: a worker thread that owns the
    /// connection.
    pub fn backend(&mut self) -> Result<SwtpmBackend, TpmError> {
        let mut conn = self.conn.take().expect("connected until the backend takes the socket");
        let pid = self.pid().unwrap_or(0);
        let (to_worker, commands) = channel::<Vec<u8>>();
        let (answers, from_worker) = channel();
        std::thread::Builder::new()
            .name("swtpm".into())
            .spawn(move || {
                let mut failed: Option<String> = None;
                for cmd in commands {
                    let answer = match &failed {
                        Some(why) => Err(why.clone()),
                        None => transact(&mut conn, &cmd).inspect_err(|why| {
                            eprintln!(
                                "\r\nstrata: TPM: {why} (swtpm pid {pid}); from now on the guest's TPM commands fail with TPM_RC_FAILURE and the machine runs on without a TPM\r"
                            );
                            failed = Some(why.clone());
                        }),
                    };
                    if answers.send(answer).is_err() {
                        break;
                    }
                }
            })
            .map_err(|source| TpmError::Host { what: "start the TPM's thread".into(), source })?;
        Ok(SwtpmBackend { to_worker, from_worker })
    }

    /// Ends swtpm and removes the private directory (idempotent).
    pub fn stop(&mut self) {
        self.conn = None;
        if let Some(mut c) = self.child.take() {
            // swtpm saves its state and exits on SIGTERM (the worker thread
            // may still hold the socket, so --terminate alone would wait).
            if let Ok(pid) = i32::try_from(c.id()) {
                if matches!(c.try_wait(), Ok(None)) {
                    // SAFETY: kill(2) on our own child's pid, not yet
                    // reaped (try_wait said it runs), so the pid is its.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
            let until = Instant::now() + STOP_GRACE;
            while Instant::now() < until && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// The private directory (for tests).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`TpmBackend`] over the swtpm worker thread. The worker's socket end
/// closes when it is dropped with the machine.
pub struct SwtpmBackend {
    to_worker: Sender<Vec<u8>>,
    from_worker: Receiver<Result<Vec<u8>, String>>,
}

impl TpmBackend for SwtpmBackend {
    fn submit(&mut self, command: Vec<u8>) {
        // A worker that is gone answers nothing; poll says so.
        let _ = self.to_worker.send(command);
    }

    fn poll(&mut self) -> Option<Result<Vec<u8>, String>> {
        match self.from_worker.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err("the TPM's thread has stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parsing() {
        let d = IO_TIMEOUT;
        assert_eq!(TpmSpec::parse("swtpm").unwrap(), TpmSpec { state: None, timeout: d });
        assert_eq!(TpmSpec::parse("swtpm,state=/x").unwrap(), TpmSpec { state: Some("/x".into()), timeout: d });
        assert_eq!(
            TpmSpec::parse("swtpm,timeout=3,state=/x").unwrap(),
            TpmSpec { state: Some("/x".into()), timeout: Duration::from_secs(3) }
        );
        for bad in [
            "",
            "tpm",
            "swtpm,",
            "swtpm,state=",
            "swtpm,state=/a,state=/b",
            "swtpm,foo=1",
            "swtpm,timeout=0",
            "swtpm,timeout=601",
            "swtpm,timeout=x",
            "swtpm,timeout=1,timeout=2",
        ] {
            let e = TpmSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected swtpm"), "{bad}: {e}");
        }
    }
}

/// Against the real swtpm (scripts/setup-host.sh installs it; a missing
/// swtpm fails the test).
#[cfg(test)]
mod swtpm_tests {
    use super::*;
    use crate::measure::{sha256, EventType};

    fn wait(b: &mut SwtpmBackend) -> Result<Vec<u8>, String> {
        // The worker's own timeouts bound this; the limit here only keeps
        // a broken test from running forever.
        for _ in 0..6000 {
            if let Some(r) = b.poll() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no answer from the backend in 60 s");
    }

    #[test]
    fn measurements_reach_the_pcrs_and_a_dead_swtpm_is_a_tpm_error() {
        let mut t = Swtpm::start(&TpmSpec { state: None, timeout: IO_TIMEOUT })
            .expect("swtpm (scripts/setup-host.sh installs it)");
        let dir = t.dir().to_path_buf();
        assert!(dir.join("state").is_dir());
        let mut m = Measurements::default();
        m.push(4, EventType::Ipl, sha256(b"kernel"), b"kernel");
        m.push(8, EventType::Ipl, sha256(b"console=ttyS0"), b"console=ttyS0");
        m.push_separators();
        t.start_up_and_measure(&m).unwrap();
        let mut b = t.backend().unwrap();
        let want = m.pcrs();
        for pcr in [0, 4, 8, 9] {
            b.submit(command::pcr_read(pcr));
            let r = wait(&mut b).unwrap();
            let got = command::pcr_read_digest(&r).unwrap_or_else(|| panic!("PCR {pcr}: {r:02x?}"));
            assert_eq!(got, want.get(&pcr).copied().unwrap_or([0; 32]), "PCR {pcr}");
        }
        // swtpm dies: this command and the next fail, at once.
        let pid = t.pid().unwrap() as i32;
        // SAFETY: kill(2) on the child this test started, still running.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        std::thread::sleep(Duration::from_millis(100));
        b.submit(command::pcr_read(0));
        assert!(wait(&mut b).unwrap_err().contains("swtpm closed its socket"));
        b.submit(command::pcr_read(0));
        assert!(wait(&mut b).is_err());
        t.stop();
        assert!(!dir.exists(), "the private directory is removed");
    }

    #[test]
    fn a_kept_state_directory_survives_and_stop_ends_the_process() {
        let state = std::env::temp_dir().join(format!("strata-tpm-test-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let mut t = Swtpm::start(&TpmSpec { state: Some(state.clone()), timeout: IO_TIMEOUT }).unwrap();
        t.start_up_and_measure(&Measurements::default()).unwrap();
        let pid = t.pid().unwrap();
        drop(t);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "swtpm {pid} outlived its owner");
        assert!(state.join("tpm2-00.permall").is_file(), "the TPM's state is kept in state=");
        let _ = std::fs::remove_dir_all(&state);
    }
}

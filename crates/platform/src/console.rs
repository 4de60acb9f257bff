//! The host side of the serial console: output to stdout (and an optional
//! log file), input from stdin in raw mode with QEMU's `Ctrl-A x` escape.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

/// Where the guest's UART output goes.
pub struct ConsoleOut {
    stdout: Option<io::Stdout>,
    log: Option<File>,
    buf: Vec<u8>,
    /// Bytes the guest has printed since the machine started (a restored
    /// machine goes on from the snapshot's count).
    pub total: u64,
    /// Everything the guest printed, kept for callers that want it (tests).
    pub capture: Option<Vec<u8>>,
}

impl ConsoleOut {
    pub fn new(to_stdout: bool, log: Option<File>) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            stdout: to_stdout.then(io::stdout),
            log,
            buf: Vec::with_capacity(4096),
            total: 0,
            capture: None,
        }))
    }

    pub fn push(&mut self, b: u8) {
        self.buf.push(b);
        self.total += 1;
        if let Some(c) = &mut self.capture {
            c.push(b);
        }
        if self.buf.len() >= 4096 {
            self.flush();
        }
    }

    /// Writes out what the guest printed. A closed stdout (the reader went
    /// away) is not the guest's problem: output is dropped from then on.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(out) = &mut self.stdout {
            let mut lock = out.lock();
            if lock.write_all(&self.buf).and_then(|_| lock.flush()).is_err() {
                self.stdout = None;
            }
        }
        if let Some(log) = &mut self.log {
            if log.write_all(&self.buf).is_err() {
                self.log = None;
            }
        }
        self.buf.clear();
    }
}

/// What the console input thread reports.
pub enum Input {
    Byte(u8),
    /// The user typed `Ctrl-A x`.
    Quit,
    /// The user typed `Ctrl-A c`: input to the next VM's console (`strata
    /// run` with several VMs; the bare board has one console).
    NextConsole,
    /// The user typed `Ctrl-A s`: a snapshot at the next round boundary
    /// (docs/snapshot.md).
    Snapshot,
    /// stdin reached its end.
    Eof,
}

/// Terminal state to restore when the machine stops.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// Puts stdin in raw mode if it is a terminal.
    pub fn enable() -> Option<RawMode> {
        // SAFETY: isatty and tcgetattr only read the descriptor's state;
        // `saved` is a plain C struct fully written by tcgetattr before use.
        unsafe {
            if libc::isatty(0) != 1 {
                return None;
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return None;
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            // Keep output post-processing so "\n" still returns the carriage
            // for host messages printed while raw.
            raw.c_oflag |= libc::OPOST;
            if libc::tcsetattr(0, libc::TCSANOW, &raw) != 0 {
                return None;
            }
            Some(RawMode { fd: 0, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the attributes read in `enable` on the same fd.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Wakes a run loop that sleeps in its idle wait (`runner::Runner`): the
/// write end of a socket pair whose read end the loop polls. Waking a loop
/// that is not asleep costs one byte, drained on its next wait.
#[derive(Clone)]
pub struct Waker(Arc<UnixStream>);

impl Waker {
    /// A waker and the end to wait on (both non-blocking).
    pub fn pair() -> io::Result<(Waker, UnixStream)> {
        let (w, r) = UnixStream::pair()?;
        w.set_nonblocking(true)?;
        r.set_nonblocking(true)?;
        Ok((Waker(Arc::new(w)), r))
    }

    pub fn wake(&self) {
        // A full socket buffer means a wake-up is already pending.
        let _ = (&*self.0).write(&[1]);
    }

    /// A second handle on the write end, for a signal handler to write to.
    pub fn try_clone_stream(&self) -> io::Result<UnixStream> {
        self.0.try_clone()
    }
}

/// Sends console input to a run loop and wakes it.
#[derive(Clone)]
pub struct InputSender {
    tx: Sender<Input>,
    waker: Waker,
}

impl InputSender {
    pub fn new(tx: Sender<Input>, waker: Waker) -> Self {
        Self { tx, waker }
    }

    /// False when the run loop is gone.
    pub fn send(&self, i: Input) -> bool {
        let ok = self.tx.send(i).is_ok();
        self.waker.wake();
        ok
    }
}

/// Reads stdin on a thread of its own and hands bytes to the run loop,
/// interpreting `Ctrl-A x` (quit), `Ctrl-A c` (next console), `Ctrl-A s`
/// (a snapshot) and
/// `Ctrl-A Ctrl-A` (a literal Ctrl-A).
pub fn spawn_stdin_reader(waker: Waker) -> Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    let tx = InputSender::new(tx, waker);
    // If the thread cannot be made, its closure (and the sender) is
    // dropped: the run loop sees the end of input, and runs on without it.
    let _ = std::thread::Builder::new().name("console-in".into()).spawn(move || {
        let mut escape = false;
        let mut buf = [0u8; 256];
        let mut stdin = io::stdin();
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    tx.send(Input::Eof);
                    return;
                }
                Ok(n) => n,
            };
            for &b in &buf[..n] {
                let msg = if escape {
                    escape = false;
                    match b {
                        b'x' | b'X' => Input::Quit,
                        b'c' | b'C' => Input::NextConsole,
                        b's' | b'S' => Input::Snapshot,
                        0x01 => Input::Byte(0x01),
                        _ => continue,
                    }
                } else if b == 0x01 {
                    escape = true;
                    continue;
                } else {
                    Input::Byte(b)
                };
                if !tx.send(msg) {
                    return;
                }
            }
        }
    });
    rx
}

/// Drains what is ready without blocking.
pub fn try_input(rx: &Receiver<Input>) -> Option<Input> {
    match rx.try_recv() {
        Ok(i) => Some(i),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Disconnected) => Some(Input::Eof),
    }
}

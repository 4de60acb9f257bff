//! The socket, the accept thread, the handlers and the queue to the run
//! loop (see the crate documentation for who does what).
//!
//! The socket file: created owner-only (mode 0600: the process umask is
//! narrowed around `bind(2)`, so it is never reachable by others, not even
//! for an instant). An existing path is never silently taken: a socket
//! someone listens on is refused ([`SockError::InUse`]), a stale socket
//! (connecting is refused: its server is gone) is replaced, anything else
//! is refused ([`SockError::NotASocket`]). The file is removed when the
//! [`ApiServer`] is dropped.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{route, ApiError, Command, Controller, Reply, SideController};

/// The largest request body read (a memory write of [`crate::MEMORY_MAX`]
/// bytes in hex, with room for the JSON around it).
pub const BODY_MAX: usize = 2 * crate::MEMORY_MAX as usize + 4096;
/// Requests handled at once; more get 503 at once.
pub const MAX_HANDLERS: usize = 32;
/// How long a handler waits for the machine's answer before 503: the
/// machine has stopped, or is not serving (it always serves within a round
/// while it runs or is paused).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long dropping the server waits for handlers to write their
/// responses (a `stop`'s 204 goes out before the process ends).
const DRAIN: Duration = Duration::from_secs(2);

/// Why the API socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SockError {
    #[error("--api-sock {}: another process is serving on this socket", .0.display())]
    InUse(PathBuf),
    #[error("--api-sock {}: exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("--api-sock {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// A command with the channel its answer goes back on.
struct Job {
    cmd: Command,
    reply: Sender<Result<Reply, ApiError>>,
}

/// The run loop's end of the queue.
pub struct Inbox {
    rx: Receiver<Job>,
    pending: Arc<AtomicUsize>,
}

impl Inbox {
    /// Is a command queued? One atomic load: the run loop asks every round.
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Answers every queued command through `ctl`; how many.
    pub fn serve(&self, ctl: &mut dyn Controller) -> usize {
        let mut n = 0;
        while let Ok(job) = self.rx.try_recv() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let _ = job.reply.send(ctl.handle(job.cmd));
            n += 1;
        }
        n
    }
}

/// What handlers share.
struct Shared {
    queue: Mutex<Sender<Job>>,
    pending: Arc<AtomicUsize>,
    wake: Box<dyn Fn() + Send + Sync>,
    handlers: AtomicUsize,
    closing: AtomicBool,
    /// Serves some commands on the handler thread (the monitors').
    side: std::sync::RwLock<Option<Arc<dyn SideController>>>,
}

/// The running server; dropping it stops it and removes the socket file.
pub struct ApiServer {
    server: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl ApiServer {
    /// Serves the API on a new socket at `path`; `wake` wakes the run loop
    /// from its idle wait (a queued command must not wait for a timer).
    pub fn start(path: &Path, wake: Box<dyn Fn() + Send + Sync>) -> Result<(ApiServer, Inbox), SockError> {
        let server = Arc::new(bind(path)?);
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            queue: Mutex::new(tx),
            pending: pending.clone(),
            wake,
            handlers: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            side: std::sync::RwLock::new(None),
        });
        let (srv, sh) = (server.clone(), shared.clone());
        let accept = std::thread::Builder::new()
            .name("strata-api".into())
            .spawn(move || accept_loop(&srv, &sh))
            .map_err(|source| SockError::Io { path: path.into(), source })?;
        Ok((ApiServer { server, shared, accept: Some(accept), path: path.into() }, Inbox { rx, pending }))
    }

    /// Lets `side` answer the commands it takes ([`SideController`]) on
    /// the handler threads, without the run loop.
    pub fn set_side(&self, side: Arc<dyn SideController>) {
        *self.shared.side.write().unwrap_or_else(|e| e.into_inner()) = Some(side);
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let t0 = Instant::now();
        while self.shared.handlers.load(Ordering::SeqCst) > 0 && t0.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(1));
        }
        // tiny_http removes the socket file when its last reference goes
        // (here: the accept thread has ended); say so explicitly too, in
        // case a handler still holds nothing of it.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Makes the listening socket (see the module documentation).
fn bind(path: &Path) -> Result<tiny_http::Server, SockError> {
    let io = |source| SockError::Io { path: path.into(), source };
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => return Err(SockError::NotASocket(path.into())),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(SockError::InUse(path.into())),
            // Nobody listens: a stale socket a previous run left.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::fs::remove_file(path).map_err(io)?,
            Err(e) => return Err(io(e)),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // SAFETY: umask(2) only changes the process's file-mode mask; it is
    // restored right after the bind. Other threads creating files in
    // between would get a narrower mode, never a wider one.
    let old = unsafe { libc::umask(0o177) };
    let r = tiny_http::Server::http_unix(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r.map_err(|e| match e.downcast::<std::io::Error>() {
        Ok(e) if e.kind() == ErrorKind::AddrInUse => SockError::InUse(path.into()),
        Ok(e) => io(*e),
        Err(e) => io(std::io::Error::other(e.to_string())),
    })
}

fn accept_loop(server: &tiny_http::Server, shared: &Arc<Shared>) {
    while let Ok(rq) = server.recv() {
        if shared.closing.load(Ordering::SeqCst) {
            let _ = respond(rq, Err((ApiError::new(503, "the machine is stopping"), None)));
            continue;
        }
        if shared.handlers.fetch_add(1, Ordering::SeqCst) >= MAX_HANDLERS {
            shared.handlers.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(rq, Err((ApiError::new(503, "too many requests at once"), None)));
            continue;
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new().name("strata-api-rq".into()).spawn(move || {
            handle(rq, &sh);
            sh.handlers.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            shared.handlers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One request, start to end.
fn handle(mut rq: tiny_http::Request, shared: &Shared) {
    let mut body = Vec::new();
    // A client that goes away mid-body, or sends more than BODY_MAX: 400
    // (if it is still there to read it).
    let read = rq.as_reader().take(BODY_MAX as u64 + 1).read_to_end(&mut body);
    let answer = match read {
        Err(e) => Err((ApiError::bad_request(format!("reading the body: {e}")), None)),
        Ok(_) if body.len() > BODY_MAX => Err((ApiError::bad_request(format!("body over {BODY_MAX} bytes")), None)),
        Ok(_) => match route(rq.method().as_str(), rq.url(), &body) {
            Err(e) => Err((e.error, e.allow)),
            Ok(cmd) => ask(shared, cmd).map_err(|e| (e, None)),
        },
    };
    let _ = respond(rq, answer);
}

/// Queues `cmd` for the run loop and waits for its answer (or lets the
/// side controller answer it at once).
fn ask(shared: &Shared, cmd: Command) -> Result<Reply, ApiError> {
    let side = shared.side.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(r) = side.and_then(|s| s.handle(&cmd)) {
        return r;
    }
    let (tx, rx) = mpsc::channel();
    // Counted before it is sent, so the loop's count never goes below zero.
    shared.pending.fetch_add(1, Ordering::AcqRel);
    let sent = shared.queue.lock().unwrap_or_else(|e| e.into_inner()).send(Job { cmd, reply: tx });
    if sent.is_err() {
        shared.pending.fetch_sub(1, Ordering::AcqRel);
        return Err(ApiError::new(503, "the machine has stopped"));
    }
    (shared.wake)();
    match rx.recv_timeout(REPLY_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(503, "the machine did not answer: it has stopped")),
    }
}

type Answer = Result<Reply, (ApiError, Option<String>)>;

fn respond(rq: tiny_http::Request, answer: Answer) -> std::io::Result<()> {
    let header = |k: &str, v: &str| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("ASCII header");
    let json = || header("Content-Type", "application/json");
    match answer {
        Ok(Reply::Done) => rq.respond(tiny_http::Response::empty(204)),
        Ok(r @ (Reply::Json(_) | Reply::Created(_))) => {
            let (status, v) = match r {
                Reply::Created(v) => (201, v),
                Reply::Json(v) => (200, v),
                _ => unreachable!("matched above"),
            };
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            b.push(b'\n');
            rq.respond(tiny_http::Response::from_data(b).with_status_code(status).with_header(json()))
        }
        Ok(Reply::Metrics(text)) => rq.respond(
            tiny_http::Response::from_string(text)
                .with_header(header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")),
        ),
        Err((e, allow)) => {
            let mut b = serde_json::to_vec(&serde_json::json!({ "error": e.message })).unwrap_or_default();
            b.push(b'\n');
            let mut r = tiny_http::Response::from_data(b).with_status_code(e.status).with_header(json());
            if let Some(a) = allow {
                r = r.with_header(header("Allow", &a));
            }
            rq.respond(r)
        }
    }
}

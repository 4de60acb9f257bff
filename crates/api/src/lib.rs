//! Strata's control API: a REST server on a Unix socket (`--api-sock`),
//! JSON in and out, Prometheus metrics; docs/api.md for users, the OpenAPI
//! document `docs/api.json` for programs.
//!
//! This crate knows HTTP, routes and JSON, and nothing of the emulator: a
//! request becomes a typed [`Command`], the machine answers it through the
//! [`Controller`] trait (the platform's runner implements it), and the
//! answer becomes a response.
//!
//! | thread | does |
//! | --- | --- |
//! | accept (`strata-api`) | takes connections from tiny_http, starts one handler per request (at most [`MAX_HANDLERS`] at once; more get 503) |
//! | handler | reads the body (at most [`BODY_MAX`]), routes and parses it ([`route`]), queues the [`Command`] with a reply channel, wakes the machine, waits for the answer (at most [`REPLY_TIMEOUT`]), writes the response |
//! | the machine's run loop | at a round boundary, when [`Inbox::pending`] says so, [`Inbox::serve`]s every queued command through its [`Controller`] |
//!
//! The routes ([`ROUTES`]; `{id}` is a VM's name):
//!
//! | method | path | command |
//! | --- | --- | --- |
//! | GET | `/machine` | [`Command::Machine`]: state and configuration |
//! | PUT | `/machine/pause`, `/machine/resume`, `/machine/stop` | [`Command::Pause`], [`Command::Resume`], [`Command::Stop`] |
//! | GET, PUT | `/machine/memory` | [`Command::ReadMemory`], [`Command::WriteMemory`] by guest-physical address |
//! | GET | `/metrics` | [`Command::Metrics`]: Prometheus text |
//! | GET | `/vms`, `/vms/{id}` | [`Command::Vms`], [`Command::Vm`] (`strata run`) |
//! | POST | `/vms` | [`Command::CreateVm`]: a new VM on the running hypervisor |
//! | DELETE | `/vms/{id}` | [`Command::DeleteVm`]: stops it; its memory is scrubbed and freed |
//! | GET, PUT | `/vms/{id}/memory` | a VM's memory by its guest-physical address |
//! | GET | `/machine/processes`, `/machine/modules`, `/machine/syscalls` | [`Command::Inspect`]: the guest kernel seen from outside, by a [`SideController`] |
//! | GET | `/machine/monitor` | [`Command::Monitor`]: the monitors' counters and violations |
//! | GET | `/machine/vmemory`, `/machine/layout` | [`Command::ReadKernelMemory`] by guest-virtual kernel address, [`Command::Layout`] |
//!
//! Errors are `{"error": "..."}` with 400 (bad body, query or address),
//! 403 (a protected VM's memory), 404 (no such route or VM), 405 (a route
//! without that method; `Allow` lists those it has), 409 (wrong state),
//! 503 (the machine did not answer: it has stopped).
//!
//! Invariants: the API never touches the machine itself — every command
//! is served by the run loop at a round boundary, the quiescent point
//! (no hart inside an instruction); a request costs the loop nothing but
//! one atomic load per round while none is queued; every request gets
//! exactly one response.

pub mod client;
pub mod openapi;
mod prom;
mod server;

pub use prom::{Exposition, MetricKind};
pub use server::{ApiServer, Inbox, SockError, BODY_MAX, MAX_HANDLERS, REPLY_TIMEOUT};

use serde::Deserialize;

/// The most bytes one memory request reads or writes.
pub const MEMORY_MAX: u64 = 1 << 20;

/// Every route: method and path template (`{id}`: one path segment, a
/// VM's name). The OpenAPI document lists exactly these (a test checks).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/machine"),
    ("PUT", "/machine/pause"),
    ("PUT", "/machine/resume"),
    ("PUT", "/machine/stop"),
    ("GET", "/machine/memory"),
    ("PUT", "/machine/memory"),
    ("GET", "/metrics"),
    ("GET", "/vms"),
    ("POST", "/vms"),
    ("GET", "/vms/{id}"),
    ("DELETE", "/vms/{id}"),
    ("GET", "/vms/{id}/memory"),
    ("PUT", "/vms/{id}/memory"),
    ("GET", "/machine/processes"),
    ("GET", "/machine/modules"),
    ("GET", "/machine/syscalls"),
    ("GET", "/machine/monitor"),
    ("GET", "/machine/vmemory"),
    ("GET", "/machine/layout"),
];

/// What a request asks the machine for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The machine's state and configuration.
    Machine,
    Pause,
    Resume,
    /// Stop the machine, as `Ctrl-A x` does.
    Stop,
    /// `len` bytes at guest-physical `addr`: of the machine (`vm: None`),
    /// or of a VM.
    ReadMemory {
        vm: Option<String>,
        addr: u64,
        len: u64,
    },
    WriteMemory {
        vm: Option<String>,
        addr: u64,
        data: Vec<u8>,
    },
    /// The counters in the Prometheus text format.
    Metrics,
    /// Every VM with its counters.
    Vms,
    /// One VM (by name) with its counters.
    Vm(String),
    /// Create and start a VM (`strata run`).
    CreateVm(VmCreate),
    /// Stop a VM; its memory goes back to the free pool, zeroed.
    DeleteVm(String),
    /// The guest kernel's processes, modules or system-call table, read
    /// from outside (docs/monitor.md); served by a [`SideController`]
    /// without stopping the guest.
    Inspect(Inspect),
    /// The monitors' state: counters and violations.
    Monitor,
    /// `len` bytes at guest-*virtual* kernel address `addr`, through the
    /// guest kernel's own page tables; with the guest-physical address.
    ReadKernelMemory {
        addr: u64,
        len: u64,
    },
    /// The structure layouts the introspection found in the kernel's BTF.
    Layout,
}

/// What `Command::Inspect` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inspect {
    Processes,
    Modules,
    Syscalls,
}

/// Commands served off the run loop, on the API's handler thread, while
/// the harts run (the guest is not stopped): the monitors'
/// ([`Command::Inspect`], [`Command::Monitor`]). `None`: not this
/// controller's command; it goes to the run loop as any other.
pub trait SideController: Send + Sync {
    fn handle(&self, cmd: &Command) -> Option<Result<Reply, ApiError>>;
}

/// The body of `POST /vms`: a VM as `strata run --config` describes one
/// (without devices).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmCreate {
    pub name: String,
    /// A host path: a RISC-V Linux Image or an ELF program.
    pub kernel: String,
    pub initrd: Option<String>,
    #[serde(default)]
    pub cmdline: String,
    /// As `-m`: "256M", "1G", ... (default 512M).
    pub memory: Option<String>,
    pub vcpus: Option<u32>,
    #[serde(default)]
    pub protected: bool,
    /// "nested" (default) or "shadow", as `strata run --paging`.
    pub paging: Option<String>,
}

/// The machine's answer to a [`Command`].
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// 200 with a JSON body.
    Json(serde_json::Value),
    /// 200 with a Prometheus text exposition.
    Metrics(String),
    /// 204: done.
    Done,
    /// 201 with a JSON body: created.
    Created(serde_json::Value),
}

/// An error as the client sees it: a status and one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    /// 400: the request is malformed (body, query, address range).
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(400, m)
    }
    /// 403: refused, whatever the request (a protected VM's memory).
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(403, m)
    }
    /// 404: no such route or VM.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(404, m)
    }
    /// 409: the machine is not in a state that allows it.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(409, m)
    }
}

/// The machine, as the API sees it; called on the machine's own thread at
/// a round boundary.
pub trait Controller {
    fn handle(&mut self, cmd: Command) -> Result<Reply, ApiError>;
}

/// The body of `PUT …/memory`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryWrite {
    /// Guest-physical address: "0x…" hex or decimal.
    addr: String,
    /// The bytes, as hex (two digits a byte, no separators).
    data: String,
}

/// The body of the actions (`PUT /machine/pause`, …): nothing, or `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

/// Turns a request into a [`Command`]: the route (404, or 405 with the
/// methods the path has), the query and the body (400).
pub fn route(method: &str, url: &str, body: &[u8]) -> Result<Command, RouteError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let matched: Vec<(&str, &str)> = ROUTES.iter().copied().filter(|(_, t)| template_matches(t, &segs)).collect();
    if matched.is_empty() {
        return Err(ApiError::not_found(format!("no route {path}")).into());
    }
    let Some(&(m, template)) = matched.iter().find(|(m, _)| *m == method) else {
        let allow = matched.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ");
        return Err(RouteError {
            error: ApiError::new(405, format!("{method} is not allowed on {path} (allowed: {allow})")),
            allow: Some(allow),
        });
    };
    let id = || -> Result<String, ApiError> { percent_decode(segs[1]) };
    let q = Query::parse(query)?;
    let cmd = match (m, template) {
        ("GET", "/machine") => Command::Machine,
        ("PUT", "/machine/pause") => no_body(body).map(|_| Command::Pause)?,
        ("PUT", "/machine/resume") => no_body(body).map(|_| Command::Resume)?,
        ("PUT", "/machine/stop") => no_body(body).map(|_| Command::Stop)?,
        ("GET", "/machine/memory") => read_memory(None, &q)?,
        ("PUT", "/machine/memory") => write_memory(None, body)?,
        ("GET", "/metrics") => Command::Metrics,
        ("GET", "/vms") => Command::Vms,
        ("POST", "/vms") => Command::CreateVm(object(body)?),
        ("GET", "/vms/{id}") => Command::Vm(id()?),
        ("DELETE", "/vms/{id}") => no_body(body).and_then(|_| id()).map(Command::DeleteVm)?,
        ("GET", "/vms/{id}/memory") => read_memory(Some(id()?), &q)?,
        ("PUT", "/vms/{id}/memory") => write_memory(Some(id()?), body)?,
        ("GET", "/machine/processes") => Command::Inspect(Inspect::Processes),
        ("GET", "/machine/modules") => Command::Inspect(Inspect::Modules),
        ("GET", "/machine/syscalls") => Command::Inspect(Inspect::Syscalls),
        ("GET", "/machine/monitor") => Command::Monitor,
        ("GET", "/machine/vmemory") => match read_memory(None, &q)? {
            Command::ReadMemory { addr, len, .. } => Command::ReadKernelMemory { addr, len },
            _ => unreachable!("read_memory makes a ReadMemory"),
        },
        ("GET", "/machine/layout") => Command::Layout,
        _ => unreachable!("every route in ROUTES has a command"),
    };
    // Only the memory reads take a query.
    if !matches!(cmd, Command::ReadMemory { .. } | Command::ReadKernelMemory { .. }) && !q.0.is_empty() {
        return Err(ApiError::bad_request(format!("{path} takes no query")).into());
    }
    Ok(cmd)
}

/// A routing failure: the error, and for 405 the `Allow` header's value.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteError {
    pub error: ApiError,
    pub allow: Option<String>,
}

impl From<ApiError> for RouteError {
    fn from(error: ApiError) -> Self {
        RouteError { error, allow: None }
    }
}

fn template_matches(template: &str, segs: &[&str]) -> bool {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    t.len() == segs.len() && t.iter().zip(segs).all(|(t, s)| if *t == "{id}" { !s.is_empty() } else { t == s })
}

fn no_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    object::<NoFields>(body).map(|_| ())
}

/// A body that must be a JSON object of `T`'s fields and no others (serde
/// alone would also take a struct from an array).
fn object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let bad = |e: serde_json::Error| ApiError::bad_request(format!("body: {e}"));
    match serde_json::from_slice::<serde_json::Value>(body).map_err(bad)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).map_err(bad),
        _ => Err(ApiError::bad_request("body: expected a JSON object")),
    }
}

/// A query string's `key=value` pairs.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Result<Query, ApiError> {
        let mut v = Vec::new();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, val) = pair.split_once('=').unwrap_or((pair, ""));
            v.push((percent_decode(k)?, percent_decode(val)?));
        }
        Ok(Query(v))
    }
}

fn read_memory(vm: Option<String>, q: &Query) -> Result<Command, ApiError> {
    let (mut addr, mut len) = (None, None);
    for (k, v) in &q.0 {
        let slot = match k.as_str() {
            "addr" => &mut addr,
            "len" => &mut len,
            _ => return Err(ApiError::bad_request(format!("unknown query parameter {k:?} (addr, len)"))),
        };
        if slot.replace(parse_u64(k, v)?).is_some() {
            return Err(ApiError::bad_request(format!("query parameter {k} given twice")));
        }
    }
    let addr = addr.ok_or_else(|| ApiError::bad_request("give addr= (guest-physical, 0x… or decimal)"))?;
    let len = len.ok_or_else(|| ApiError::bad_request("give len= (bytes)"))?;
    if len == 0 || len > MEMORY_MAX {
        return Err(ApiError::bad_request(format!("len {len}: 1 to {MEMORY_MAX} bytes")));
    }
    Ok(Command::ReadMemory { vm, addr, len })
}

fn write_memory(vm: Option<String>, body: &[u8]) -> Result<Command, ApiError> {
    let w: MemoryWrite = object(body)?;
    let addr = parse_u64("addr", &w.addr)?;
    let data = hex_decode(&w.data)?;
    if data.is_empty() || data.len() as u64 > MEMORY_MAX {
        return Err(ApiError::bad_request(format!("data: 1 to {MEMORY_MAX} bytes")));
    }
    Ok(Command::WriteMemory { vm, addr, data })
}

/// A number as "0x…" hex or decimal.
pub fn parse_u64(what: &str, s: &str) -> Result<u64, ApiError> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| ApiError::bad_request(format!("{what} {s:?}: not a number (0x… hex or decimal, 64 bits)")))
}

/// Bytes as lower-case hex, two digits each.
pub fn hex_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from_digit((x >> 4) as u32, 16).expect("a nibble"));
        s.push(char::from_digit((x & 15) as u32, 16).expect("a nibble"));
    }
    s
}

/// Hex (either case, two digits a byte) as bytes.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::bad_request("data: not hex (two digits a byte, no separators)");
    if s.len() % 2 != 0 {
        return Err(bad());
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
            Ok((d(p[0])? << 4 | d(p[1])?) as u8)
        })
        .collect()
}

/// `%XX` escapes (RFC 3986 §2.1) in a path segment or query part.
fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request(format!("{s:?}: bad percent-encoding"));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).ok_or_else(bad)?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests;

//! The server on a real Unix socket, with a scripted controller standing
//! in for the machine: the socket file's mode and how an existing path is
//! treated, every error status through HTTP, a client that disconnects
//! mid-request, many clients at once, and a machine that has gone.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata_api::client::request;
use strata_api::{ApiError, ApiServer, Command, Controller, Inbox, Reply, SockError};

fn sock(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-api-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A machine with 64 bytes of "RAM" at 0x1000 that is paused or not.
#[derive(Default)]
struct Mock {
    paused: bool,
    ram: Vec<u8>,
    served: usize,
}

impl Controller for Mock {
    fn handle(&mut self, cmd: Command) -> Result<Reply, ApiError> {
        self.served += 1;
        match cmd {
            Command::Pause if self.paused => Err(ApiError::conflict("paused already")),
            Command::Pause => {
                self.paused = true;
                Ok(Reply::Done)
            }
            Command::Resume if !self.paused => Err(ApiError::conflict("running")),
            Command::Resume => {
                self.paused = false;
                Ok(Reply::Done)
            }
            Command::ReadMemory { vm: None, addr, len } => {
                let at =
                    addr.checked_sub(0x1000).filter(|a| a + len <= 64).ok_or_else(|| ApiError::bad_request("range"))?;
                let b = &self.ram[at as usize..(at + len) as usize];
                Ok(Reply::Json(
                    serde_json::json!({"addr": format!("{addr:#x}"), "len": len, "data": strata_api::hex_encode(b)}),
                ))
            }
            Command::WriteMemory { vm: None, addr, data } => {
                let at = addr
                    .checked_sub(0x1000)
                    .filter(|a| a + data.len() as u64 <= 64)
                    .ok_or_else(|| ApiError::bad_request("range"))?;
                self.ram[at as usize..at as usize + data.len()].copy_from_slice(&data);
                Ok(Reply::Done)
            }
            Command::Vm(name) if name == "p" => Err(ApiError::forbidden("protected")),
            Command::Vm(name) => Err(ApiError::not_found(format!("no VM named {name}"))),
            Command::Metrics => Ok(Reply::Metrics("# TYPE x_total counter\nx_total 1\n".into())),
            _ => Ok(Reply::Json(serde_json::json!({}))),
        }
    }
}

/// Serves `inbox` with a Mock on a thread until `stop`; the Mock comes back.
fn machine(inbox: Inbox, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Mock> {
    std::thread::spawn(move || {
        let mut m = Mock { ram: vec![0; 64], ..Default::default() };
        while !stop.load(Ordering::SeqCst) {
            if inbox.pending() {
                inbox.serve(&mut m);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        m
    })
}

fn start(name: &str) -> (PathBuf, ApiServer, Arc<AtomicBool>, std::thread::JoinHandle<Mock>) {
    let p = sock(name);
    let (server, inbox) = ApiServer::start(&p, Box::new(|| {})).expect("start");
    let stop = Arc::new(AtomicBool::new(false));
    let t = machine(inbox, stop.clone());
    (p, server, stop, t)
}

#[test]
fn the_socket_is_owner_only_and_removed_at_the_end() {
    let (p, server, stop, t) = start("mode");
    let m = std::fs::symlink_metadata(&p).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o777, 0o600, "mode {:o}", m.permissions().mode());
    drop(server);
    assert!(!p.exists(), "the socket file must go with the server");
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
}

#[test]
fn an_existing_path_is_not_taken_silently() {
    // A regular file: refused, left alone.
    let p = sock("file");
    std::fs::write(&p, b"precious").unwrap();
    let e = ApiServer::start(&p, Box::new(|| {})).map(|_| ()).unwrap_err();
    assert!(matches!(e, SockError::NotASocket(_)), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    std::fs::remove_file(&p).unwrap();

    // A socket someone serves on: refused, and theirs still works.
    let p = sock("live");
    let other = UnixListener::bind(&p).unwrap();
    let e = ApiServer::start(&p, Box::new(|| {})).map(|_| ()).unwrap_err();
    assert!(matches!(e, SockError::InUse(_)), "{e}");
    assert!(e.to_string().contains("another process"), "{e}");
    assert!(UnixStream::connect(&p).is_ok(), "the other server's socket must survive");
    drop(other);

    // The same socket now stale (its listener closed): replaced.
    let (server, _inbox) = ApiServer::start(&p, Box::new(|| {})).expect("a stale socket is replaced");
    assert!(UnixStream::connect(&p).is_ok());
    drop(server);

    // Also a second Strata on the same path is refused.
    let (p, server, stop, t) = start("twice");
    let e = ApiServer::start(&p, Box::new(|| {})).map(|_| ()).unwrap_err();
    assert!(matches!(e, SockError::InUse(_)), "{e}");
    drop(server);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
}

#[test]
fn every_error_status_reaches_the_client_as_json() {
    let (p, server, stop, t) = start("errors");
    let cases: &[(&str, &str, &str, u16)] = &[
        ("GET", "/nowhere", "", 404),
        ("GET", "/vms/nobody", "", 404),
        ("GET", "/vms/p", "", 403),
        ("DELETE", "/machine", "", 405),
        ("PUT", "/machine/pause", "{", 400),
        ("PUT", "/machine/pause", r#"{"force":true}"#, 400),
        ("PUT", "/machine/memory", r#"{"addr":"0x1000","data":"00","len":1}"#, 400),
        ("GET", "/machine/memory?addr=0x2000&len=4", "", 400),
        ("PUT", "/machine/resume", "", 409),
    ];
    for (m, url, body, want) in cases {
        let r = request(&p, m, url, body.as_bytes()).unwrap();
        assert_eq!(r.status, *want, "{m} {url} {body}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"), "{m} {url}");
        let msg = r.json()["error"].as_str().map(str::to_string);
        assert!(msg.is_some_and(|m| !m.is_empty()), "{m} {url}: error body {}", r.text());
    }
    let r = request(&p, "POST", "/machine/memory", b"").unwrap();
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, PUT")));
    // Success paths: 204, then 200 with what was written.
    assert_eq!(request(&p, "PUT", "/machine/pause", b"").unwrap().status, 204);
    assert_eq!(request(&p, "PUT", "/machine/pause", b"").unwrap().status, 409);
    let w = request(&p, "PUT", "/machine/memory", br#"{"addr":"0x1004","data":"c0ffee"}"#).unwrap();
    assert_eq!(w.status, 204, "{}", w.text());
    let r = request(&p, "GET", "/machine/memory?addr=0x1003&len=5", b"").unwrap();
    assert_eq!(r.json()["data"], "00c0ffee00");
    let r = request(&p, "GET", "/metrics", b"").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/plain; version=0.0.4")));
    drop(server);
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
}

#[test]
fn a_client_that_disconnects_mid_request_harms_nobody() {
    let (p, server, stop, t) = start("disconnect");
    for partial in [
        &b"GET /mach"[..],
        b"PUT /machine/memory HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"addr\":",
        b"PUT /machine/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n",
    ] {
        let mut s = UnixStream::connect(&p).unwrap();
        s.write_all(partial).unwrap();
        drop(s);
    }
    // The body never came complete: the pause was not done.
    let r = request(&p, "PUT", "/machine/resume", b"").unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let r = request(&p, "GET", "/machine", b"").unwrap();
    assert_eq!(r.status, 200);
    drop(server);
    stop.store(true, Ordering::SeqCst);
    let m = t.join().unwrap();
    assert!(!m.paused, "a pause whose body never arrived must not have reached the machine");
}

#[test]
fn many_clients_at_once_each_get_their_answer() {
    let (p, server, stop, t) = start("concurrent");
    let threads: Vec<_> = (0..16u8)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || {
                for k in 0..10u8 {
                    let v = i.wrapping_mul(16).wrapping_add(k);
                    let addr = 0x1000 + (i as u64 % 16) * 4;
                    let body = format!(r#"{{"addr":"{addr:#x}","data":"{v:02x}"}}"#);
                    let r = request(&p, "PUT", "/machine/memory", body.as_bytes()).unwrap();
                    assert_eq!(r.status, 204, "{}", r.text());
                    let r = request(&p, "GET", &format!("/machine/memory?addr={addr:#x}&len=1"), b"").unwrap();
                    // Only this thread writes this byte.
                    assert_eq!(r.json()["data"], format!("{v:02x}"));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    drop(server);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(t.join().unwrap().served, 16 * 10 * 2);
}

#[test]
fn a_machine_that_has_gone_gives_503() {
    let p = sock("gone");
    let (server, inbox) = ApiServer::start(&p, Box::new(|| {})).unwrap();
    drop(inbox);
    let r = request(&p, "GET", "/machine", b"").unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("stopped")));
    drop(server);
}

//! The host Unix sockets of virtio-vsock and virtio-console: connecting
//! without ever blocking, and listening at a path without taking it from
//! someone who uses it.
//!
//! | what is at the path                         | [`listen`]                |
//! |---------------------------------------------|---------------------------|
//! | nothing                                     | binds                     |
//! | a socket something listens on (connect works, or its backlog is full) | refuses, naming the listener |
//! | a socket nobody listens on (ECONNREFUSED: left by a process that died) | replaces it |
//! | anything else (a file, a directory, ...)    | refuses                   |

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Connects to a Unix stream socket without ever blocking: a listener
/// whose backlog is full answers EAGAIN, which the device treats as a
/// refusal (a blocking connect would stall the whole machine).
pub fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "Unix socket path too long"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns; the stream closes it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed it.
    let r = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stream)
}

/// The process at the other end of a connected Unix socket (SO_PEERCRED:
/// for a connection to a listener, the process that called listen).
fn peer_pid(s: &UnixStream) -> Option<u32> {
    // SAFETY: ucred is plain data; all zeroes is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt on a socket we own, into a buffer of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

/// Listens on a Unix stream socket at `path` (non-blocking), replacing a
/// stale socket file but never one in use, nor anything that is not a
/// socket. `what` starts the error messages ("vsock", "virtio-console").
pub fn listen(path: &Path, what: &str) -> Result<UnixListener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match connect_nonblocking(path) {
            Ok(s) => {
                let who = match peer_pid(&s) {
                    Some(pid) if pid == std::process::id() => "this Strata process (another device)".to_string(),
                    Some(pid) => format!("process {pid} ({})", super::image_lock::program_name(pid)),
                    None => "another program".to_string(),
                };
                return Err(format!(
                    "{what}: {shown} is in use: {who} is listening on it; choose another path, or stop it"
                ));
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                return Err(format!(
                    "{what}: {shown} is in use: a program is listening on it (its backlog is full); choose another path, or stop it"
                ))
            }
            // Left behind by a process that is gone: take its place.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("{what}: cannot remove the stale socket {shown}: {e}"))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{what}: cannot tell whether {shown} is in use: {e}")),
        },
        Ok(_) => return Err(format!("{what}: {shown} exists and is not a socket; refusing to replace it")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{what}: {shown}: {e}")),
    }
    let l = UnixListener::bind(path).map_err(|e| format!("{what}: cannot listen on {shown}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| format!("{what}: {shown}: {e}"))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("strata-uds-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_socket_in_use_is_refused_a_stale_one_replaced() {
        let p = temp("a.sock");
        let first = listen(&p, "vsock").unwrap();
        let e = listen(&p, "vsock").unwrap_err();
        assert_eq!(
            e,
            format!(
                "vsock: {} is in use: this Strata process (another device) is listening on it; choose another path, or stop it",
                p.display()
            )
        );
        // The first listener still owns the path: nothing was unlinked.
        assert!(connect_nonblocking(&p).is_ok());
        drop(first);
        // Its socket file is stale now (nothing listens): replaced.
        assert!(p.exists());
        let again = listen(&p, "vsock").expect("a stale socket is replaced");
        assert!(connect_nonblocking(&p).is_ok());
        drop(again);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_path_that_is_not_a_socket_is_never_replaced() {
        let p = temp("file");
        std::fs::write(&p, b"precious").unwrap();
        let e = listen(&p, "virtio-console").unwrap_err();
        assert!(e.contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
        std::fs::remove_file(&p).unwrap();
    }
}

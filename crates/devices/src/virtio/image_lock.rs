//! Disk-image locks that QEMU understands, so that Strata and QEMU, two
//! Strata processes, and two drives (or two VMs) of one Strata process
//! never write one image at the same time.
//!
//! The scheme is QEMU's (its `file` block driver): open file description
//! ("OFD") byte-range locks, fcntl(2) `F_OFD_SETLK`, every one of them
//! shared (`F_RDLCK`), one byte per block-layer permission n:
//!
//! | byte      | held by an opener that ...                 |
//! |-----------|--------------------------------------------|
//! | 100 + n   | has permission n                           |
//! | 200 + n   | does not let anyone else have permission n |
//!
//! with n = 0 consistent read, 1 write, 2 write-unchanged, 3 resize. An
//! opener first takes its own bytes and then tests, with `F_OFD_GETLK` and
//! an exclusive lock (which any other description's shared lock blocks),
//! the bytes that would conflict: 200 + n for each permission it wants,
//! 100 + n for each it does not share. Taking before testing means two
//! openers racing each other both see the other: both fail, never both
//! succeed.
//!
//! What Strata takes, the same bytes QEMU 7.2's virtio-blk takes (checked
//! in /proc/locks):
//!
//! | drive      | permissions (bytes)    | not shared (bytes) |
//! |------------|------------------------|--------------------|
//! | read-write | read, write (100, 101) | write (201)        |
//! | read-only  | read (100)             | write (201)        |
//!
//! so any number of read-only users share an image, and a writer excludes
//! every other user. OFD locks belong to the open file description, not to
//! the process: two `File`s on one image in one process conflict as two
//! processes do, and the locks go away with the file (no unlock path to
//! forget, also after a crash).
//!
//! OFD locks show no owner (`l_pid` is -1, and /proc/locks says -1 too), so
//! a conflict is explained by looking for the holder in
//! /proc/PID/fdinfo/FD, which lists the locks each open file holds.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// First byte of the "has permission n" range.
const PERM_BASE: u64 = 100;
/// First byte of the "does not share permission n" range.
const SHARED_BASE: u64 = 200;

/// QEMU's block-layer permissions, by bit number.
mod perm {
    pub const CONSISTENT_READ: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const WRITE_UNCHANGED: u32 = 1 << 2;
    pub const RESIZE: u32 = 1 << 3;
    pub const ALL: u32 = CONSISTENT_READ | WRITE | WRITE_UNCHANGED | RESIZE;
    pub const COUNT: u64 = 4;
}

/// What a permission's bytes say about another holder, in an error.
fn has_perm(n: u64) -> &'static str {
    ["is reading it", "has it open for writing", "may rewrite it unchanged", "may resize it"][n as usize]
}

fn refuses_perm(n: u64) -> &'static str {
    [
        "has it open and allows no other reader",
        "has it open and allows no other writer",
        "has it open and allows no other unchanged rewrite",
        "has it open and allows no resize",
    ][n as usize]
}

/// The permissions a drive asks for and those it lets others have.
fn wanted(readonly: bool) -> (u32, u32) {
    let shared = perm::ALL & !perm::WRITE;
    if readonly {
        (perm::CONSISTENT_READ, shared)
    } else {
        (perm::CONSISTENT_READ | perm::WRITE, shared)
    }
}

fn flock(ty: libc::c_int, byte: u64) -> libc::flock {
    // SAFETY: `flock` is plain data, for which all zeroes is a valid value
    // (and `l_pid` must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ty as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl
}

/// Takes a shared OFD lock on one byte.
fn lock_shared(f: &File, byte: u64) -> io::Result<()> {
    let fl = flock(libc::F_RDLCK, byte);
    // SAFETY: fcntl on a descriptor we own, with a valid `flock`.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether another open file description holds a lock on `byte`.
fn locked_by_other(f: &File, byte: u64) -> io::Result<bool> {
    let mut fl = flock(libc::F_WRLCK, byte);
    // SAFETY: fcntl on a descriptor we own; the kernel fills in `fl`.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Locks the image open in `file` for a read-only or read-write drive, or
/// explains who is in the way. The locks last as long as `file` is open.
pub fn lock(file: &File, path: &Path, readonly: bool) -> Result<(), String> {
    let (want, shared) = wanted(readonly);
    let cannot = |e: io::Error| format!("cannot lock disk image {} (QEMU-compatible OFD locks): {e}", path.display());
    let mut conflicts = Vec::new();
    let bytes = (0..perm::COUNT)
        .filter(|n| want & 1 << n != 0)
        .map(|n| PERM_BASE + n)
        .chain((0..perm::COUNT).filter(|n| shared & 1 << n == 0).map(|n| SHARED_BASE + n));
    for byte in bytes {
        match lock_shared(file, byte) {
            Ok(()) => {}
            // Someone holds an exclusive lock there: not QEMU, but in the way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => conflicts.push(byte),
            Err(e) => return Err(cannot(e)),
        }
    }
    let tests = (0..perm::COUNT)
        .filter(|n| want & 1 << n != 0)
        .map(|n| SHARED_BASE + n)
        .chain((0..perm::COUNT).filter(|n| shared & 1 << n == 0).map(|n| PERM_BASE + n));
    for byte in tests {
        if locked_by_other(file, byte).map_err(cannot)? {
            conflicts.push(byte);
        }
    }
    // "has it open for writing" (100 + n) says more than "allows no other
    // writer" (200 + n): name a holder's permission first.
    conflicts.sort_unstable();
    match conflicts.first() {
        None => Ok(()),
        Some(&byte) => Err(format!(
            "disk image {} is in use: {} {}; an image can be shared only when every user opens it read-only (readonly=on)",
            path.display(),
            holders_text(file, byte),
            what_byte_says(byte)
        )),
    }
}

fn what_byte_says(byte: u64) -> &'static str {
    if byte >= SHARED_BASE {
        refuses_perm(byte - SHARED_BASE)
    } else {
        has_perm(byte - PERM_BASE)
    }
}

/// If `file` (already open, e.g. a log about to be truncated) is a disk
/// image some drive holds: who ("process 1234 (qemu-system-riscv64)").
pub fn held_as_image(file: &File) -> Option<String> {
    let mut bytes = (0..perm::COUNT).map(|n| PERM_BASE + n).chain((0..perm::COUNT).map(|n| SHARED_BASE + n));
    bytes.find(|&b| locked_by_other(file, b).unwrap_or(false)).map(|b| holders_text(file, b))
}

/// Another open file that holds a lock on the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The program's name (argv\[0\] without its directory, else `comm`).
    pub program: String,
}

/// "process 1234 (qemu-system-riscv64)", "this Strata process (another
/// drive)", or what can be said when the holder cannot be seen.
fn holders_text(file: &File, byte: u64) -> String {
    let me = std::process::id();
    let found = holders(file, byte);
    if found.is_empty() {
        return "a process this one cannot see (another user's?)".into();
    }
    let names: Vec<String> = found
        .iter()
        .map(|h| {
            if h.pid == me {
                "this Strata process (another drive)".to_string()
            } else {
                format!("process {} ({})", h.pid, h.program)
            }
        })
        .collect();
    names.join(" and ")
}

/// Every open file, in every process this one may look at, on the same
/// inode as `file` (other than `file` itself) that holds a lock covering
/// `byte`, found through /proc/PID/fdinfo.
pub fn holders(file: &File, byte: u64) -> Vec<Holder> {
    let Ok(meta) = file.metadata() else { return Vec::new() };
    let (dev, ino) = (meta.dev(), meta.ino());
    let me = std::process::id();
    let my_fd = file.as_raw_fd().to_string();
    let mut out: Vec<Holder> = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let name = fd.file_name();
            if pid == me && name.to_str() == Some(my_fd.as_str()) {
                continue;
            }
            // metadata() follows the /proc magic link to the open file.
            let Ok(m) = std::fs::metadata(fd.path()) else { continue };
            if m.dev() != dev || m.ino() != ino {
                continue;
            }
            let info = std::fs::read_to_string(p.path().join("fdinfo").join(&name)).unwrap_or_default();
            if info.lines().any(|l| lock_line_covers(l, byte)) && !out.iter().any(|h| h.pid == pid) {
                out.push(Holder { pid, program: program_name(pid) });
            }
        }
    }
    out
}

/// A `lock:` line of /proc/PID/fdinfo/FD ("lock:\t1: OFDLCK ADVISORY READ
/// -1 fe:00:1234 100 101"; the range ends in "EOF" when unbounded).
fn lock_line_covers(line: &str, byte: u64) -> bool {
    let Some(rest) = line.strip_prefix("lock:") else { return false };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (Some(start), Some(end)) = (f.get(f.len().wrapping_sub(2)), f.last()) else { return false };
    let Ok(start) = start.parse::<u64>() else { return false };
    let end = if *end == "EOF" { u64::MAX } else { end.parse::<u64>().unwrap_or(0) };
    (start..=end).contains(&byte)
}

/// A process's program name: argv\[0\] without its directory, else
/// `comm`.
pub(crate) fn program_name(pid: u32) -> String {
    let argv0 = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| c.split(|&b| b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()))
        .and_then(|a| a.rsplit('/').next().map(str::to_string))
        .filter(|a| !a.is_empty());
    argv0
        .or_else(|| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim().to_string()))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn image(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("strata-lock-{}-{name}.img", std::process::id()));
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        p
    }

    fn open(p: &Path, readonly: bool) -> File {
        OpenOptions::new().read(true).write(!readonly).open(p).unwrap()
    }

    /// The bytes each kind of drive holds, as the kernel reports them for
    /// this file (fdinfo), are the ones QEMU's virtio-blk holds.
    #[test]
    fn the_bytes_are_qemus() {
        for (readonly, want) in [(false, vec![100, 101, 201]), (true, vec![100, 201])] {
            let p = image(&format!("bytes-{readonly}"));
            let f = open(&p, readonly);
            lock(&f, &p, readonly).unwrap();
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd())).unwrap();
            let held: Vec<u64> = (0..300).filter(|&b| info.lines().any(|l| lock_line_covers(l, b))).collect();
            assert_eq!(held, want, "readonly={readonly}: {info}");
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn readers_share_writers_exclude() {
        let p = image("share");
        let r1 = open(&p, true);
        lock(&r1, &p, true).unwrap();
        let r2 = open(&p, true);
        lock(&r2, &p, true).expect("two read-only users share an image");
        let w = open(&p, false);
        let e = lock(&w, &p, false).unwrap_err();
        assert!(
            e.contains("is in use: this Strata process (another drive) has it open and allows no other writer"),
            "{e}"
        );
        drop(w);
        drop((r1, r2));
        let w = open(&p, false);
        lock(&w, &p, false).expect("free again once the readers closed the image");
        for ro in [true, false] {
            let e = lock(&open(&p, !ro), &p, ro).unwrap_err();
            assert!(e.contains("this Strata process (another drive) has it open for writing"), "{e}");
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_held_image_is_recognised() {
        let p = image("held");
        let probe = open(&p, true);
        assert_eq!(held_as_image(&probe), None);
        let w = open(&p, false);
        lock(&w, &p, false).unwrap();
        let e = held_as_image(&probe).unwrap();
        assert!(e.starts_with("this Strata process"), "{e}");
        assert_eq!(
            holders(&probe, 101),
            vec![Holder { pid: std::process::id(), program: program_name(std::process::id()) }]
        );
        drop(w);
        assert_eq!(held_as_image(&probe), None);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn fdinfo_lines() {
        assert!(lock_line_covers("lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:10019398 100 101", 101));
        assert!(!lock_line_covers("lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:10019398 100 101", 102));
        assert!(lock_line_covers("lock:\t2: POSIX  ADVISORY  WRITE 77 fe:00:1 0 EOF", 201));
        assert!(!lock_line_covers("flags:\t02100002", 0));
        assert!(!lock_line_covers("lock:", 0));
    }
}

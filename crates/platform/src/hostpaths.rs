//! One check of every host path a configuration names, before anything is
//! opened, so that no file is used for two jobs: a serial log that is also
//! a disk image (opening the log would truncate the disk), one log for two
//! VMs (one log lost), one socket path for two devices, two writers of one
//! image.
//!
//! Uses are read-only (kernel, initrd, firmware, a `readonly=on` drive) or
//! not (a read-write drive, a serial log, a Unix socket). Two uses of one
//! file conflict unless both are read-only. "One file": the same device and
//! inode where the file exists, else the same normalized path (absolute,
//! `.` and `..` resolved, the directory's symlinks resolved where it
//! exists).
//!
//! What other processes hold is checked where the file is opened: disk
//! images by their locks (`strata_devices::virtio::image_lock`), sockets by
//! connecting (`strata_devices::virtio::uds`), and a serial log is never
//! truncated while some drive holds it as an image ([`open_serial_log`]).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// What a configuration uses a host path for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    Kernel,
    Initrd,
    Firmware,
    Drive {
        readonly: bool,
    },
    SerialLog,
    /// A Unix socket a device listens on (vsock `uds=`, virtio-console).
    Socket,
}

impl Use {
    fn read_only(self) -> bool {
        matches!(self, Use::Kernel | Use::Initrd | Use::Firmware | Use::Drive { readonly: true })
    }
}

/// One host path of a configuration, with the words that name its use in
/// an error ("--serial-log", "VM a's drive 0").
#[derive(Clone, Debug)]
pub struct HostPath {
    pub what: String,
    pub path: PathBuf,
    pub kind: Use,
}

/// The identity of a file for this check.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Key {
    Inode(u64, u64),
    Path(PathBuf),
}

fn key(p: &Path) -> Key {
    match std::fs::metadata(p) {
        Ok(m) => Key::Inode(m.dev(), m.ino()),
        Err(_) => Key::Path(normalize(p)),
    }
}

/// `p` made absolute with `.` and `..` resolved by name, then its
/// directory's real path if that exists.
fn normalize(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    match (out.parent().and_then(|d| std::fs::canonicalize(d).ok()), out.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => out,
    }
}

/// Why the host files of a configuration cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    /// One file for two jobs; `file` names it (and its other spelling).
    #[error("{file} is used twice: as {first} and as {second}; only read-only uses (kernel, initrd, firmware, readonly=on drives) may share a file")]
    UsedTwice { file: String, first: String, second: String },
    #[error("cannot create serial log {}: {source}", path.display())]
    SerialLog { path: PathBuf, source: std::io::Error },
    /// The serial log is a disk image that `holder` has locked.
    #[error("serial log {} is a disk image that {holder} holds; refusing to overwrite it", path.display())]
    SerialLogIsImage { path: PathBuf, holder: String },
}

/// Refuses a configuration that uses one file for two jobs, unless both
/// only read it.
pub fn check(paths: &[HostPath]) -> Result<(), HostPathError> {
    let keys: Vec<Key> = paths.iter().map(|h| key(&h.path)).collect();
    for (i, a) in paths.iter().enumerate() {
        for (j, b) in paths.iter().enumerate().take(i) {
            if keys[i] == keys[j] && !(a.kind.read_only() && b.kind.read_only()) {
                let same = if a.path == b.path {
                    a.path.display().to_string()
                } else {
                    format!("{} (also named {})", b.path.display(), a.path.display())
                };
                return Err(HostPathError::UsedTwice { file: same, first: b.what.clone(), second: a.what.clone() });
            }
        }
    }
    Ok(())
}

/// The host paths of a virtio configuration, named with `prefix` ("" or
/// "VM a's ").
pub fn virtio_paths(v: &crate::virtio::VirtioConfig, prefix: &str, flags: bool) -> Vec<HostPath> {
    let mut out = Vec::new();
    for (i, d) in v.drives.iter().enumerate() {
        // A streamed drive's files (cache, overlay) are its own, under its
        // cache directory.
        let crate::virtio::DriveSource::File(path) = &d.source else { continue };
        let what = if flags { format!("{prefix}--drive {i}") } else { format!("{prefix}drive {i}") };
        out.push(HostPath { what, path: path.clone(), kind: Use::Drive { readonly: d.readonly } });
    }
    if let Some(s) = &v.vsock {
        out.push(HostPath { what: format!("{prefix}vsock uds="), path: s.uds.clone(), kind: Use::Socket });
    }
    if let Some(c) = &v.console {
        let what = if flags { format!("{prefix}--virtio-console") } else { format!("{prefix}virtio_console") };
        out.push(HostPath { what, path: c.clone(), kind: Use::Socket });
    }
    out
}

/// Every host path of `strata machine`'s configuration.
pub fn machine_paths(cfg: &crate::MachineConfig) -> Vec<HostPath> {
    let mut out = vec![HostPath { what: "--kernel".into(), path: cfg.kernel.clone(), kind: Use::Kernel }];
    if let Some(p) = &cfg.initrd {
        out.push(HostPath { what: "--initrd".into(), path: p.clone(), kind: Use::Initrd });
    }
    if let Some(p) = &cfg.bios {
        out.push(HostPath { what: "--bios".into(), path: p.clone(), kind: Use::Firmware });
    }
    if let Some(p) = &cfg.serial_log {
        out.push(HostPath { what: "--serial-log".into(), path: p.clone(), kind: Use::SerialLog });
    }
    out.extend(virtio_paths(&cfg.virtio, "", true));
    out
}

/// Every host path of `strata run`'s configuration, all VMs together.
pub fn run_paths(cfg: &crate::hyp::RunConfig) -> Vec<HostPath> {
    let mut out = Vec::new();
    for vm in &cfg.vms {
        let p = format!("VM {}'s ", vm.name);
        out.push(HostPath { what: format!("{p}kernel"), path: vm.kernel.clone(), kind: Use::Kernel });
        if let Some(i) = &vm.initrd {
            out.push(HostPath { what: format!("{p}initrd"), path: i.clone(), kind: Use::Initrd });
        }
        if let Some(l) = &vm.serial_log {
            out.push(HostPath { what: format!("{p}serial log"), path: l.clone(), kind: Use::SerialLog });
        }
        out.extend(virtio_paths(&vm.virtio, &p, false));
    }
    out
}

/// Opens (creates, or empties) a serial log; a file that a drive of this
/// or another program holds as a disk image is refused, not truncated.
pub fn open_serial_log(p: &Path) -> Result<File, HostPathError> {
    let cannot = |source: std::io::Error| HostPathError::SerialLog { path: p.to_path_buf(), source };
    // Opened without O_TRUNC: nothing is lost before the check.
    let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(p).map_err(cannot)?;
    if let Some(holder) = strata_devices::virtio::image_lock::held_as_image(&f) {
        return Err(HostPathError::SerialLogIsImage { path: p.to_path_buf(), holder });
    }
    // Only a regular file has a length (/dev/null, a FIFO or a terminal
    // are fine as they are).
    if f.metadata().map_err(cannot)?.is_file() {
        f.set_len(0).map_err(cannot)?;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(what: &str, path: &Path, kind: Use) -> HostPath {
        HostPath { what: what.into(), path: path.to_path_buf(), kind }
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("strata-hostpaths-{}-{name}", std::process::id()))
    }

    #[test]
    fn writers_share_nothing_readers_share() {
        let img = temp("disk.img");
        std::fs::write(&img, [0u8; 512]).unwrap();
        let ro = Use::Drive { readonly: true };
        let rw = Use::Drive { readonly: false };
        // The same file under another name: a symlink, and ./ spelling.
        let link = temp("disk-link.img");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&img, &link).unwrap();
        assert!(check(&[hp("a", &img, ro), hp("b", &link, ro), hp("k", &img, Use::Kernel)]).is_ok());
        let e = check(&[hp("--drive 0", &img, rw), hp("--serial-log", &link, Use::SerialLog)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} (also named {}) is used twice: as --drive 0 and as --serial-log; only read-only uses (kernel, initrd, firmware, readonly=on drives) may share a file",
                img.display(),
                link.display()
            )
        );
        assert!(check(&[hp("a", &img, ro), hp("b", &img, rw)]).is_err());
        // Paths that do not exist yet compare by their normalized form.
        let log = temp("new.log");
        let _ = std::fs::remove_file(&log);
        let dir = log.parent().unwrap();
        let other = dir.join("sub/..").join(log.file_name().unwrap());
        let e =
            check(&[hp("VM a's serial log", &log, Use::SerialLog), hp("VM b's serial log", &other, Use::SerialLog)])
                .unwrap_err();
        assert!(e.to_string().contains("as VM a's serial log and as VM b's serial log"), "{e}");
        assert!(check(&[hp("x", &log, Use::Socket), hp("y", &temp("other.sock"), Use::Socket)]).is_ok());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&img).unwrap();
    }

    #[test]
    fn a_serial_log_never_truncates_a_held_image() {
        let img = temp("held.img");
        std::fs::write(&img, [7u8; 4096]).unwrap();
        let blk = strata_devices::virtio::block::Block::open(&img, false, None).unwrap();
        let e = open_serial_log(&img).unwrap_err();
        assert!(e.to_string().contains("is a disk image that this Strata process (another drive) holds"), "{e}");
        assert_eq!(std::fs::read(&img).unwrap(), [7u8; 4096], "the image was not touched");
        drop(blk);
        // Free, it is an ordinary file: emptied and written.
        open_serial_log(&img).unwrap();
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 0);
        std::fs::remove_file(&img).unwrap();
        assert!(open_serial_log(Path::new("/dev/null")).is_ok());
    }
}

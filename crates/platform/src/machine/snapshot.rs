//! The bare board's part of a snapshot (docs/snapshot.md): its
//! description ([`SavedMachine`], the `CONF` section: what
//! `strata machine --restore` builds) and its devices' state
//! ([`BoardState`]: CLINT, PLIC, UART, RTC; the virtio transports are the
//! runner's). Harts, time and RAM are the runner's (`runner/snapshot.rs`).
//!
//! A board with a device that holds host state a snapshot cannot carry (a
//! TAP, vsock or virtio-console connections, a streamed drive's fetcher)
//! refuses to be saved, with the reason; the machine runs on.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use strata_devices::aclint::AclintState;
use strata_devices::plic::PlicState;
use strata_devices::rtc::RtcState;
use strata_devices::uart::UartState;
use strata_devices::virtio::block::ErrorPolicy;
use strata_hart::{Ext, Extensions};
use strata_snapshot::{tag, Snapshot};

use super::{BareBoard, ClockMode, Machine, MachineConfig};
use crate::error::Error;
use crate::runner::{lock, WorkloadSave};
use crate::virtio::{DriveSource, DriveSpec, VirtioConfig};

/// What machine a snapshot is of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMachine {
    pub ram_size: u64,
    pub harts: u32,
    /// `--cpu`: the extensions' names.
    pub extensions: Vec<String>,
    pub clock: String,
    pub rng: bool,
    pub drives: Vec<SavedDrive>,
}

/// A `--drive file=` and the image as it was at the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDrive {
    pub path: PathBuf,
    pub readonly: bool,
    pub serial: Option<String>,
    pub werror: String,
    pub rerror: String,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
}

/// The board's devices.
#[derive(Serialize, Deserialize)]
struct BoardState {
    aclint: AclintState,
    plic: PlicState,
    uart: UartState,
    rtc: RtcState,
    console_bytes: u64,
}

/// How a restored machine talks to the host (what the snapshot does not
/// fix).
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub console_stdout: bool,
    pub console_stdin: bool,
    pub serial_log: Option<PathBuf>,
    pub jit: bool,
    /// Restore even if a disk image's size or modification time changed.
    pub ignore_disk_changes: bool,
}

/// A file's size and modification time.
fn stamp(path: &Path) -> std::io::Result<(u64, u128)> {
    let m = std::fs::metadata(path)?;
    let mtime = m.modified()?.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    Ok((m.len(), mtime))
}

impl SavedMachine {
    /// The description of `cfg`, or why such a board cannot be saved.
    pub(super) fn of(cfg: &MachineConfig) -> Result<SavedMachine, String> {
        let v = &cfg.virtio;
        if !v.nets.is_empty() {
            return Err("virtio-net: a TAP interface is host state a snapshot cannot hold".into());
        }
        if v.vsock.is_some() {
            return Err("virtio-vsock: host connections cannot be saved".into());
        }
        if v.console.is_some() {
            return Err("virtio-console: a host socket connection cannot be saved".into());
        }
        let drives = v
            .drives
            .iter()
            .map(|d| match &d.source {
                DriveSource::File(p) => Ok(SavedDrive {
                    path: std::path::absolute(p).unwrap_or_else(|_| p.clone()),
                    readonly: d.readonly,
                    serial: d.serial.clone(),
                    werror: d.werror.name().into(),
                    rerror: d.rerror.name().into(),
                    size: 0,
                    mtime_ns: 0,
                }),
                DriveSource::Stream(o) => Err(format!("streamed drive {}: not supported in snapshots yet", o.url)),
            })
            .collect::<Result<_, String>>()?;
        Ok(SavedMachine {
            ram_size: cfg.ram_size,
            harts: cfg.harts,
            extensions: cfg.extensions.names().into_iter().map(String::from).collect(),
            clock: cfg.clock.name().into(),
            rng: v.rng,
            drives,
        })
    }

    /// The configuration to build the machine from (no boot images: RAM
    /// comes from the snapshot).
    fn config(&self, snapshot: &Path, o: &RestoreOptions) -> Result<MachineConfig, String> {
        let mut extensions = Extensions::RV64GC;
        for name in &self.extensions {
            let e = Ext::ALL.into_iter().find(|e| e.name() == name).ok_or(format!("unknown extension {name}"))?;
            extensions = extensions.with(e);
        }
        let clock = match self.clock.as_str() {
            "host" => ClockMode::Host,
            "virtual" => ClockMode::Virtual,
            "paced" => ClockMode::Paced,
            c => return Err(format!("unknown clock {c}")),
        };
        let policy = |k: &str, v: &str| ErrorPolicy::parse(k, v);
        let drives = self
            .drives
            .iter()
            .map(|d| {
                Ok(DriveSpec {
                    source: DriveSource::File(d.path.clone()),
                    readonly: d.readonly,
                    serial: d.serial.clone(),
                    werror: policy("werror", &d.werror)?,
                    rerror: policy("rerror", &d.rerror)?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(MachineConfig {
            ram_size: self.ram_size,
            harts: self.harts,
            bios: None,
            // Not loaded; named so that the host-path check sees the
            // snapshot (a serial log over it is refused).
            kernel: snapshot.to_path_buf(),
            initrd: None,
            append: String::new(),
            clock,
            console_stdout: o.console_stdout,
            console_stdin: o.console_stdin,
            serial_log: o.serial_log.clone(),
            virtio: VirtioConfig { drives, rng: self.rng, nets: Vec::new(), vsock: None, console: None },
            jit: o.jit,
            extensions,
            // A machine with a TPM is never saved (save_board refuses it).
            tpm: None,
            iommu: None,
        })
    }
}

impl BareBoard {
    pub(super) fn save_board(&mut self) -> Result<WorkloadSave, String> {
        if self.iommu.is_some() {
            // The IOMMU's registers and caches are not in the format yet.
            return Err("snapshots of a machine with an IOMMU (--iommu) are not supported yet".into());
        }
        if self.swtpm.is_some() {
            // The TPM's state (PCRs, keys) lives in swtpm, outside the file.
            return Err("snapshots of a machine with a TPM (--tpm) are not supported yet".into());
        }
        let mut cfg = self.saved.clone()?;
        for d in &mut cfg.drives {
            (d.size, d.mtime_ns) = stamp(&d.path).map_err(|e| format!("drive {}: {e}", d.path.display()))?;
        }
        let console_bytes = lock(&self.console).total;
        let st = BoardState {
            aclint: lock(&self.aclint).save(),
            plic: lock(&self.plic).save(),
            uart: lock(&self.uart).save(),
            rtc: lock(&self.rtc).save(),
            console_bytes,
        };
        Ok(WorkloadSave { config: strata_snapshot::encode(&cfg), state: strata_snapshot::encode(&st), console_bytes })
    }

    pub(super) fn restore_board(&mut self, state: &[u8]) -> Result<(), String> {
        let st: BoardState = strata_snapshot::decode("board state", state).map_err(|e| e.to_string())?;
        lock(&self.aclint).restore(&st.aclint)?;
        lock(&self.uart).restore(&st.uart)?;
        lock(&self.rtc).restore(&st.rtc);
        // Last: restoring the UART and RTC drove their PLIC sources; the
        // PLIC's own saved state (pending, in service) is what holds.
        lock(&self.plic).restore(&st.plic)?;
        lock(&self.console).total = st.console_bytes;
        Ok(())
    }
}

impl Machine {
    /// Rebuilds the machine a snapshot file describes and puts it in the
    /// snapshot's state. Refuses (one error each) a file that is not a
    /// snapshot, of another format version, truncated or corrupted, one
    /// that does not fit the machine it describes, and a disk image whose
    /// size or modification time changed (unless told to ignore that).
    pub fn restore(path: &Path, o: &RestoreOptions) -> Result<Machine, Error> {
        let wrap = |source| Error::Snapshot { path: path.to_path_buf(), source };
        let bad = |why: String| Error::SnapshotState { path: path.to_path_buf(), why };
        let meta = std::fs::metadata(path).map_err(|e| wrap(e.into()))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        let bytes = std::fs::read(path).map_err(|e| wrap(e.into()))?;
        let snap = Snapshot::parse(&bytes).map_err(wrap)?;
        let saved: SavedMachine = strata_snapshot::decode(
            "machine description",
            snap.section(tag::CONFIG, "machine description").map_err(wrap)?,
        )
        .map_err(wrap)?;
        for d in &saved.drives {
            let (size, mtime) = stamp(&d.path).map_err(|e| bad(format!("drive {}: {e}", d.path.display())))?;
            let changed = |what, was: String, now: String| Error::DiskChanged {
                snapshot: path.to_path_buf(),
                drive: d.path.clone(),
                what,
                was,
                now,
            };
            if o.ignore_disk_changes {
                continue;
            }
            if size != d.size {
                return Err(changed("size", format!("{} bytes", d.size), format!("{size} bytes")));
            }
            if mtime != d.mtime_ns {
                return Err(changed("modification time", format!("{} ns", d.mtime_ns), format!("{mtime} ns")));
            }
        }
        let cfg = saved.config(path, o).map_err(bad)?;
        let mut m = Machine::build(&cfg, false)?;
        m.restore_snapshot(path, &snap)?;
        Ok(m)
    }
}

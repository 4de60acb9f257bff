//! The platform's errors: one enum per layer, each message one line that
//! names what was wrong and, where it helps, what to do instead.
//!
//! | layer | type | what it covers |
//! | --- | --- | --- |
//! | sizes | [`SizeError`] | `-m` and a VM's `memory`: syntax, limits |
//! | device options | [`SpecError`] | `--drive`, `--netdev`, `--vsock` values, too many devices |
//! | host files | [`HostPathError`] | one file for two jobs, serial logs |
//! | streamed disks | [`StreamError`] | a drive's table (fetch, signature), key, cache or overlay |
//! | images | [`LoadError`] | firmware, kernel and initrd: the file, its format, where it goes |
//! | API socket | [`strata_api::SockError`] | `--api-sock`: in use, not a socket, cannot bind |
//! | gdb stub | [`strata_gdb::GdbError`] | `--gdb`: the address, listening, the connection |
//! | TPM | [`TpmError`](crate::tpm::TpmError) | `--tpm`: its value, swtpm missing, failing at start, refusing a measurement |
//! | hypervisor | [`strata_hypervisor::HypError`] | a VM the hypervisor cannot serve: its configuration, its memory |
//! | snapshots | [`strata_snapshot::SnapshotError`] | the file: magic, version, truncation, checksum, framing |
//! | machine | [`Error`] | any of the above, plus limits, backends, host resources, a snapshot that does not fit its machine or whose disks changed |
//!
//! Every variant reaches the user the same way: the CLI prints
//! `strata: {error}` and exits with status 1 (README, "exit status").
//! Errors in the guest are not here: they are the machine's
//! [`ExitReason`](crate::ExitReason)s.

use std::path::PathBuf;

use strata_devices::board::MAX_HARTS;

use crate::hostpaths::HostPathError;
use crate::loader::LoadError;
use crate::size::{human, SizeError};
use crate::virtio::SpecError;
use strata_stream::StreamError;

/// Why a machine (`strata machine`) or a hypervised machine (`strata run`)
/// could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    HostPath(#[from] HostPathError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A streamed drive could not be opened: its table could not be
    /// fetched or its signature does not verify, its key, cache or overlay
    /// is unusable.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// `--tpm`: swtpm could not be started, or refused Startup or a
    /// measurement.
    #[error(transparent)]
    Tpm(#[from] crate::tpm::TpmError),
    /// A RAM size outside the limits; `what` names it ("-m", "VM a: memory").
    #[error("{what} {}: {source}", human(*bytes))]
    Ram { what: String, bytes: u64, source: SizeError },
    /// More memory than the host has.
    #[error("{what}: {} is more than this host's {} of RAM", human(*bytes), human(*host))]
    HostRam { what: String, bytes: u64, host: u64 },
    /// A hart or vCPU count outside 1..=[`MAX_HARTS`].
    #[error("{what}: Strata supports 1 to {MAX_HARTS}")]
    Harts { what: String },
    /// A device's host side (disk image, TAP interface, socket) could not
    /// be opened; the device model's message.
    #[error("{0}")]
    Backend(String),
    /// The board could not be put together (guest RAM could not be mapped,
    /// a device window overlaps another).
    #[error("{0}")]
    Board(String),
    /// The hypervisor refused the configuration.
    #[error(transparent)]
    Hypervisor(#[from] strata_hypervisor::HypError),
    /// A real-time placement the machine cannot honour (docs/realtime.md).
    #[error(transparent)]
    Placement(#[from] strata_hypervisor::PlacementError),
    /// Hart threads asked for with a clock that needs one thread.
    #[error("--threads {threads}: the {clock} clock moves with the instructions run, which only one thread keeps deterministic; use --clock host or --threads 1")]
    ThreadsNeedHostClock { threads: usize, clock: &'static str },
    /// The control API's socket (`--api-sock`) could not be made.
    #[error(transparent)]
    ApiSock(#[from] strata_api::SockError),
    /// The gdb stub could not listen, or its connection failed.
    #[error(transparent)]
    Gdb(#[from] strata_gdb::GdbError),
    #[error("cannot make a wake-up socket: {0}")]
    Waker(std::io::Error),
    #[error("no VM to run")]
    NoVm,
    #[error("VM names must be non-empty and distinct ('{0}')")]
    VmName(String),
    #[error("a protected VM cannot have virtio devices: their models are host-side code, and a protected VM's memory is closed to it (docs/hypervisor.md)")]
    ProtectedWithDevices,
    /// A snapshot file that cannot be read or written: wrong magic,
    /// another format version, truncated, corrupted, malformed, or I/O.
    #[error("snapshot {}: {source}", path.display())]
    Snapshot { path: PathBuf, source: strata_snapshot::SnapshotError },
    /// A snapshot whose contents do not fit the machine it describes.
    #[error("snapshot {}: {why}", path.display())]
    SnapshotState { path: PathBuf, why: String },
    /// A disk image changed since the snapshot was taken.
    #[error("snapshot {}: drive {}: its {what} changed since the snapshot ({was}, now {now}); the guest's view of the disk would be inconsistent (--restore-ignore-disk-changes restores anyway)", snapshot.display(), drive.display())]
    DiskChanged { snapshot: PathBuf, drive: PathBuf, what: &'static str, was: String, now: String },
    /// A snapshot was asked for with nowhere to write it.
    #[error("no --snapshot-file given")]
    NoSnapshotFile,
    /// This machine cannot be saved (a device with host state, `strata run`).
    #[error("{0}")]
    SnapshotRefused(String),
    /// `source` happened to VM `vm`.
    #[error("VM {vm}: {source}")]
    InVm { vm: String, source: Box<Error> },
}

impl Error {
    /// This error, as one that happened to VM `vm`.
    pub fn in_vm(self, vm: &str) -> Error {
        Error::InVm { vm: vm.to_string(), source: Box::new(self) }
    }
}

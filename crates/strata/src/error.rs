//! The CLI's errors: what the command line or a `--config` file got wrong,
//! and the platform's [`Error`](strata_platform::Error)s, each printed as
//! one line (`strata: …`). [`CliError::exit_status`] is the one place that
//! turns an error into an exit status (README, "exit status"); usage
//! errors that clap catches (an unknown flag: status 2) never get here.

use std::path::PathBuf;

use strata_platform::loader::LoadError;
use strata_platform::size::SizeError;
use strata_platform::virtio::SpecError;

/// Where `strata machine` looks for firmware when `--bios` is not given.
pub const DEBIAN_OPENSBI: &str = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Platform(#[from] strata_platform::Error),
    /// The `--config` file could not be read.
    #[error(transparent)]
    ConfigFile(#[from] LoadError),
    #[error("configuration file {} is not UTF-8 text", .0.display())]
    NotUtf8(PathBuf),
    /// TOML syntax or a key the schema does not know; `message` is the
    /// parser's, with the line and a caret.
    #[error("{}: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    /// A memory size; `what` names it as the user wrote it
    /// (`-m 3X`, `VM a: memory "3X"`).
    #[error("{what}: {source}")]
    Memory { what: String, source: SizeError },
    /// A VM's device in the `--config` file.
    #[error("VM {vm}: {source}")]
    VmDevice { vm: String, source: SpecError },
    /// A `--cpu` model Strata does not offer (the message lists those it does).
    #[error("{0}")]
    Cpu(String),
    /// An `invalidation` value the hypervisor does not know.
    #[error("{0}")]
    Invalidation(String),
    /// A paging mode Strata names but does not offer yet (`--paging tpt`).
    #[error("paging mode {0}: not implemented yet (nested or shadow)")]
    PagingNotImplemented(&'static str),
    #[error("unknown paging mode '{0}' (nested or shadow)")]
    UnknownPaging(String),
    /// A `--placement` / `placement = "…"` value the hypervisor does not know.
    #[error("{0}")]
    Placement(String),
    #[error("VM {0}: realtime = true needs harts = [...], the physical harts it may use")]
    RealtimeWithoutHarts(String),
    #[error("VM {0}: harts = [...] is for real-time VMs (add realtime = true)")]
    HartsWithoutRealtime(String),
    #[error("--config describes the VMs: give their virtio devices in the file (drives, rng, netdevs, vsock, virtio_console)")]
    ConfigWithDeviceFlags,
    #[error("--config describes the VMs: do not combine it with --kernel, --initrd, --append, -m, --smp, --protected, --name or --serial-log")]
    ConfigWithVmFlags,
    #[error("give --kernel (or --config FILE)")]
    NoKernel,
    #[error("no firmware given and {DEBIAN_OPENSBI} is missing: install Debian's opensbi package, or pass --bios FILE or --bios none")]
    NoFirmware,
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("--threads {0} with --api-sock: the control API is served between rounds of the one-thread loop; use --threads 1 (the default with --api-sock)")]
    ApiThreads(u32),
    #[error("--threads {0} with a shadow-paged VM ({1}): shadow paging reloads other harts' registers and runs on one thread; use --threads 1 or --paging nested")]
    ShadowThreads(u32, String),
    #[error("--stats-json {}: {source}", path.display())]
    StatsJson { path: PathBuf, source: std::io::Error },
    /// `strata attest verify`: a malformed quote, or one that does not
    /// verify.
    #[error(transparent)]
    Attest(#[from] strata_platform::attest::AttestError),
    /// `strata attest vm-measure --vm NAME`: no such VM in the flags or file.
    #[error("--vm {0}: no VM of that name")]
    NoSuchVm(String),
    #[error("the configuration has several VMs: say which with --vm NAME")]
    WhichVm,
    /// A file Strata was asked to write (`strata measure --event-log`).
    #[error("{what}: {source}")]
    Output { what: String, source: std::io::Error },
    /// `strata disk`: a key, image, packed directory or overlay.
    #[error(transparent)]
    Stream(#[from] strata_stream::StreamError),
    /// `--system-map`, `--btf`, `--monitor` (docs/monitor.md).
    #[error(transparent)]
    Monitor(#[from] strata_platform::monitor::MonitorError),
    /// A `--monitor` or `--fault` that names a drive the machine lacks.
    #[error(transparent)]
    MonitorSpec(strata_platform::monitor::MonitorSpecError),
    #[error("--monitor: VM {0} is protected: no monitor may read its memory or watch its devices")]
    MonitorProtected(String),
    #[error("--monitor: monitors run on strata machine only so far (docs/monitor.md, \"What is not done\")")]
    MonitorOnRun,
    #[error("--monitor needs --system-map FILE (the guest kernel's symbols; docs/monitor.md)")]
    MonitorWithoutMap,
    /// `strata inspect`: the API could not be reached or refused.
    #[error("{0}")]
    Inspect(String),
}

impl CliError {
    /// The exit status for this error. Every error here is the host side's
    /// (a bad file, flag value or configuration, or a host resource): 1.
    /// Statuses 3 and up come from how the guest ended, not from errors.
    pub fn exit_status(&self) -> u8 {
        match self {
            CliError::Platform(_)
            | CliError::ConfigFile(_)
            | CliError::NotUtf8(_)
            | CliError::Toml { .. }
            | CliError::Memory { .. }
            | CliError::VmDevice { .. }
            | CliError::Cpu(_)
            | CliError::Invalidation(_)
            | CliError::PagingNotImplemented(_)
            | CliError::UnknownPaging(_)
            | CliError::Placement(_)
            | CliError::RealtimeWithoutHarts(_)
            | CliError::HartsWithoutRealtime(_)
            | CliError::ConfigWithDeviceFlags
            | CliError::ConfigWithVmFlags
            | CliError::NoKernel
            | CliError::NoFirmware
            | CliError::Signals(_)
            | CliError::ApiThreads(_)
            | CliError::ShadowThreads(..)
            | CliError::StatsJson { .. }
            | CliError::Output { .. }
            | CliError::Attest(_)
            | CliError::Stream(_)
            | CliError::Monitor(_)
            | CliError::MonitorWithoutMap
            | CliError::MonitorProtected(_)
            | CliError::MonitorOnRun
            | CliError::MonitorSpec(_)
            | CliError::NoSuchVm(_)
            | CliError::WhichVm
            | CliError::Inspect(_) => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_platform::error::Error;

    #[test]
    fn every_error_is_one_line_with_status_1() {
        let io = || std::io::Error::from_raw_os_error(libc::ENOMEM);
        let errors = [
            CliError::Platform(Error::NoVm),
            CliError::Platform(Error::Snapshot {
                path: "/x.snap".into(),
                source: strata_snapshot::SnapshotError::Version { found: 2 },
            }),
            CliError::Platform(Error::Snapshot {
                path: "/x.snap".into(),
                source: strata_snapshot::SnapshotError::Checksum,
            }),
            CliError::Platform(Error::DiskChanged {
                snapshot: "/x.snap".into(),
                drive: "/d.img".into(),
                what: "size",
                was: "1 bytes".into(),
                now: "2 bytes".into(),
            }),
            CliError::Platform(Error::Harts { what: "--smp 0".into() }.in_vm("a")),
            CliError::NotUtf8("/x.toml".into()),
            CliError::Toml { path: "/x.toml".into(), message: "expected `=`".into() },
            CliError::Memory { what: "-m 3X".into(), source: SizeError::NotASize },
            CliError::VmDevice { vm: "a".into(), source: SpecError::CidRange(2) },
            CliError::NoKernel,
            CliError::NoFirmware,
            CliError::Signals(io()),
            CliError::ApiThreads(2),
            CliError::ShadowThreads(2, "vm0".into()),
            CliError::StatsJson { path: "/x.json".into(), source: io() },
            CliError::Platform(Error::ApiSock(strata_api::SockError::InUse("/x.sock".into()))),
            CliError::Output { what: "--event-log /x".into(), source: io() },
            CliError::Stream(strata_stream::StreamError::Url("ftp://x".into())),
        ];
        for e in &errors {
            let line = e.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
            assert_eq!(e.exit_status(), 1, "{line}");
        }
    }

    #[test]
    fn messages_name_what_was_wrong() {
        // Written from the README's examples of what the user sees.
        assert_eq!(
            CliError::Platform(Error::Harts { what: "--smp 0".into() }).to_string(),
            "--smp 0: Strata supports 1 to 8"
        );
        assert_eq!(
            CliError::Memory { what: "-m 8".into(), source: SizeError::BelowMinimum }.to_string(),
            "-m 8: at least 16 MiB of RAM is needed"
        );
        assert_eq!(
            CliError::VmDevice { vm: "web".into(), source: SpecError::CidRange(2) }.to_string(),
            "VM web: vsock cid=2: guest CIDs are 3 to 4294967294"
        );
        assert_eq!(
            CliError::Platform(Error::ProtectedWithDevices.in_vm("p")).to_string(),
            "VM p: a protected VM cannot have virtio devices: their models are host-side code, and a protected VM's memory is closed to it (docs/hypervisor.md)"
        );
    }
}

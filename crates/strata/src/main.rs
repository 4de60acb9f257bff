//! The `strata` command.
//!
//! `strata machine …` boots a bare board with QEMU-like flags; `strata run …`
//! starts VMs under Strata's hypervisor (one from flags, several from a TOML
//! file). Exit status: 0 the guest(s) powered off (or the user typed Ctrl-A
//! x), 1 a host-side error (bad file, flag or configuration), 2 a usage
//! error, 3 a guest asked for a reset, 4 a guest powered off reporting
//! failure, 5 a guest hung with nothing left that could wake it, 6 the
//! hypervisor stopped a VM (a guest action it cannot serve), 7 a guest
//! made no progress (a hart or vCPU trapping in a loop at the same place),
//! 8 a signal (SIGTERM, SIGINT, SIGHUP) stopped Strata: it flushed the
//! disks, removed the sockets it made, printed `--stats` if asked and said
//! why on stderr, 9 a disk read or write failed on the host and its drive
//! has `werror=stop` (or `rerror=stop`): the machine stopped with the disks
//! flushed. With several VMs the status is the worst of theirs.

// The doc comments on the argument structs are clap's --help text, written
// for a terminal (`file=PATH[,readonly=on]`, `<port>`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod error;

use std::path::PathBuf;
use std::process::ExitCode;

use error::{CliError, DEBIAN_OPENSBI};

use clap::{Parser, Subcommand, ValueEnum};
use strata_platform::console::RawMode;
use strata_platform::loader;
use strata_platform::runner::signal_name;
use strata_platform::size::parse_ram_size;
use strata_platform::{
    cpu_model, ClockMode, DriveSource, DriveSpec, ExitReason, Extensions, Machine, MachineConfig, NetdevSpec,
    VirtioConfig, VsockSpec,
};

/// Why the machine stopped with status 9 (the drive's own line names the
/// failed request).
const DISK_STOPPED: &str =
    "the machine stopped: a disk read or write failed on the host and its drive has werror=stop or rerror=stop; the disks were flushed";

/// Default firmware: OpenSBI's generic fw_dynamic from Debian's `opensbi`.

#[derive(Parser)]
#[command(name = "strata", version, about = "A RISC-V machine and hypervisor for studying memory virtualization")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a bare RISC-V board (QEMU `virt` compatible): firmware plus OS.
    Machine(MachineArgs),
    /// Run VMs under Strata's hypervisor: one from flags, or several from
    /// a TOML file (--config).
    Run(RunArgs),
    /// Packed disks for streamed drives (docs/stream.md): keys, packing,
    /// signing, committing an overlay.
    #[command(subcommand)]
    Disk(DiskCmd),
}

#[derive(Subcommand)]
enum DiskCmd {
    /// Make an Ed25519 key pair: the secret key at KEY (mode 0600, never
    /// overwritten), the public key at KEY.pub.
    Keygen { key: PathBuf },
    /// Pack the raw IMAGE into DIR as its next version: 64 KiB blocks,
    /// zstd-compressed, named by SHA-256; only blocks DIR lacks are added.
    /// The table is DIR/table (and DIR/table.GENERATION).
    Pack {
        image: PathBuf,
        dir: PathBuf,
        /// Sign the table with this secret key (otherwise run `strata disk sign`).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Sign (or re-sign) a table with a secret key, in place.
    Sign {
        table: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Turn a streamed drive's overlay (CACHE/overlay by default) into the
    /// next version in DIR, whose newest table it was made on.
    Commit {
        overlay: PathBuf,
        dir: PathBuf,
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn disk(c: DiskCmd) -> Result<(), CliError> {
    use strata_stream::{commit, keygen, pack, read_secret_key, sign_table, PackReport};
    let key = |k: Option<PathBuf>| k.map(|k| read_secret_key(&k)).transpose();
    let report = |what: &str, r: PackReport| {
        println!(
            "{what} generation {} into {}: {} blocks, {} zero, {} distinct, {} new ({} bytes compressed){}",
            r.generation,
            r.table.display(),
            r.blocks,
            r.zero_blocks,
            r.distinct,
            r.new_blocks,
            r.new_bytes,
            if r.signed { "" } else { "; unsigned: run strata disk sign" }
        )
    };
    match c {
        DiskCmd::Keygen { key } => {
            let public = keygen(&key)?;
            println!("secret key {}, public key {}", key.display(), public.display());
        }
        DiskCmd::Pack { image, dir, key: k } => report("packed", pack(&image, &dir, key(k)?.as_ref())?),
        DiskCmd::Sign { table, key } => {
            sign_table(&table, &read_secret_key(&key)?)?;
            println!("signed {}", table.display());
        }
        DiskCmd::Commit { overlay, dir, key: k } => report("committed", commit(&overlay, &dir, key(k)?.as_ref())?),
    }
    Ok(())
}

#[derive(clap::Args)]
struct RunArgs {
    /// A TOML file describing the VMs (see docs/hypervisor.md); excludes the
    /// single-VM flags.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kernel of the VM: a RISC-V Linux Image (booted in VS-mode with SBI
    /// from the hypervisor) or an ELF program.
    #[arg(long)]
    kernel: Option<PathBuf>,
    #[arg(long)]
    initrd: Option<PathBuf>,
    #[arg(long)]
    append: Option<String>,
    /// Guest memory, as for `strata machine` (default 512M).
    #[arg(short = 'm', long = "memory")]
    memory: Option<String>,
    /// vCPUs of the VM (1 to 8).
    #[arg(long)]
    smp: Option<u32>,
    /// Make the VM protected: no host-side interface can read its memory.
    #[arg(long)]
    protected: bool,
    /// The VM's name (labels its console with several VMs).
    #[arg(long)]
    name: Option<String>,
    /// Physical harts (default: one per vCPU, at most 8).
    #[arg(long)]
    harts: Option<u32>,
    /// How cached translations are invalidated when a page changes hands:
    /// pa (exactly the translations reaching it), vmid, or all.
    #[arg(long, default_value = "pa")]
    invalidation: strata_hypervisor::Policy,
    #[arg(long)]
    serial_log: Option<PathBuf>,
    /// Print hypervisor, translation and speed counters at the end.
    #[arg(long)]
    stats: bool,
    /// Interpret every instruction (also: STRATA_NO_JIT=1).
    #[arg(long)]
    no_jit: bool,
    /// The VM's virtio devices, as for `strata machine`.
    #[command(flatten)]
    virtio: VirtioArgs,
    /// How guest time advances: host (follows the host clock, the default),
    /// virtual (from retired instructions, deterministic) or paced.
    #[arg(long, value_enum)]
    clock: Option<Clock>,
    /// The physical harts' ISA, which every VM sees (without H and Sstc):
    /// rv64gc (exactly the machine of old: RV64GC, H, Zicsr, Zifencei,
    /// Zicntr) or default (rv64gc plus Zba, Zbb, Zbc, Zbs, Zicond,
    /// Zihintpause, Sstc; what no --cpu gives) or max (default plus
    /// Svinval). rva23 is refused until the profile is complete.
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
}

/// The TOML form of `strata run --config` (docs/hypervisor.md).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    harts: Option<u32>,
    invalidation: Option<String>,
    #[serde(rename = "vm")]
    vms: Vec<VmFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VmFile {
    name: String,
    memory: Option<String>,
    vcpus: Option<u32>,
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: Option<String>,
    #[serde(default)]
    protected: bool,
    serial_log: Option<PathBuf>,
    /// virtio devices, in the flags' syntax: drives = ["file=disk.img,readonly=on"]
    #[serde(default)]
    drives: Vec<String>,
    #[serde(default)]
    rng: bool,
    #[serde(default)]
    netdevs: Vec<String>,
    vsock: Option<String>,
    virtio_console: Option<PathBuf>,
}

/// The extensions of `--cpu MODEL`, or the default set.
fn extensions(cpu: Option<&str>) -> Result<Extensions, CliError> {
    cpu.map_or(Ok(Extensions::DEFAULT), cpu_model).map_err(CliError::Cpu)
}

fn run(a: RunArgs) -> Result<i32, CliError> {
    use strata_platform::hyp::{HypMachine, RunConfig, VmConfig};
    let extensions = extensions(a.cpu.as_deref())?;
    let mut policy = a.invalidation;
    let mut harts = a.harts;
    let vms = match &a.config {
        Some(path) => {
            if a.virtio.count() > 0 {
                return Err(CliError::ConfigWithDeviceFlags);
            }
            if a.kernel.is_some()
                || a.initrd.is_some()
                || a.append.is_some()
                || a.memory.is_some()
                || a.smp.is_some()
                || a.protected
                || a.name.is_some()
                || a.serial_log.is_some()
            {
                return Err(CliError::ConfigWithVmFlags);
            }
            let bytes = loader::read_file("configuration file", path, loader::CONFIG_MAX)?;
            let text = String::from_utf8(bytes).map_err(|_| CliError::NotUtf8(path.clone()))?;
            let f: RunFile = toml::from_str(&text)
                .map_err(|e| CliError::Toml { path: path.clone(), message: e.to_string().trim_end().to_string() })?;
            if let Some(p) = f.invalidation {
                policy = p.parse().map_err(CliError::Invalidation)?;
            }
            harts = harts.or(f.harts);
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            let rel = |p: PathBuf| if p.is_absolute() { p } else { dir.join(p) };
            f.vms
                .into_iter()
                .map(|v| {
                    let bad = |source| CliError::VmDevice { vm: v.name.clone(), source };
                    let virtio = VirtioConfig {
                        drives: v
                            .drives
                            .iter()
                            .map(|d| {
                                DriveSpec::parse(d).map(|mut d| {
                                    d.source = match d.source {
                                        DriveSource::File(p) => DriveSource::File(rel(p)),
                                        DriveSource::Stream(mut o) => {
                                            o.cache = rel(o.cache);
                                            o.pubkey = rel(o.pubkey);
                                            o.overlay = o.overlay.map(rel);
                                            DriveSource::Stream(o)
                                        }
                                    };
                                    d
                                })
                            })
                            .collect::<Result<_, _>>()
                            .map_err(bad)?,
                        rng: v.rng,
                        nets: v.netdevs.iter().map(|n| NetdevSpec::parse(n)).collect::<Result<_, _>>().map_err(bad)?,
                        vsock: v.vsock.as_deref().map(VsockSpec::parse).transpose().map_err(bad)?,
                        console: v.virtio_console.clone(),
                    };
                    Ok(VmConfig {
                        virtio,
                        memory: match &v.memory {
                            Some(m) => parse_ram_size(m).map_err(|source| CliError::Memory {
                                what: format!("VM {}: memory {m:?}", v.name),
                                source,
                            })?,
                            None => 512 << 20,
                        },
                        vcpus: v.vcpus.unwrap_or(1),
                        protected: v.protected,
                        kernel: rel(v.kernel),
                        initrd: v.initrd.map(rel),
                        append: v.cmdline.unwrap_or_default(),
                        serial_log: v.serial_log,
                        name: v.name,
                    })
                })
                .collect::<Result<Vec<_>, CliError>>()?
        }
        None => {
            let kernel = a.kernel.ok_or(CliError::NoKernel)?;
            vec![VmConfig {
                virtio: a.virtio.config(),
                name: a.name.unwrap_or_else(|| "vm0".into()),
                memory: match &a.memory {
                    Some(m) => {
                        parse_ram_size(m).map_err(|source| CliError::Memory { what: format!("-m {m}"), source })?
                    }
                    None => 512 << 20,
                },
                vcpus: a.smp.unwrap_or(1),
                protected: a.protected,
                kernel,
                initrd: a.initrd,
                append: a.append.unwrap_or_default(),
                serial_log: a.serial_log,
            }]
        }
    };
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let clock = clock_mode(a.clock);
    let jit = !a.no_jit && !env_flag("STRATA_NO_JIT");
    // Console input comes from stdin whatever it is (a terminal, in raw
    // mode; a pipe or file, as it is, so a script can drive the guest).
    let cfg = RunConfig { vms, harts, policy, clock, console_stdout: true, console_stdin: true, jit, extensions };
    let mut m = HypMachine::new(&cfg)?;
    m.stop_handle().install_signal_handlers().map_err(CliError::Signals)?;
    let raw = if interactive { RawMode::enable() } else { None };
    let out = m.run();
    drop(raw);
    m.shut_down();
    if a.stats {
        eprint!("{}", m.stats_report());
    } else {
        eprint!("{}", m.host_error_summary());
    }
    if out.disk_stop {
        eprintln!("strata: {DISK_STOPPED}");
    }
    for (name, end) in &out.vms {
        match end {
            Some(strata_hypervisor::vm::VmEnd::PowerOff) => {}
            Some(e) => eprintln!("strata: VM {name}: {}", e.describe()),
            None if out.quit || out.disk_stop || out.signal.is_some() => {}
            None => eprintln!("strata: VM {name}: waits for an interrupt that nothing can raise"),
        }
    }
    if let Some(sig) = out.signal {
        eprintln!("strata: stopped by {}", signal_name(sig));
    }
    // The process ends now: tearing down gigabytes of bookkeeping page by
    // page would only delay the exit status.
    std::mem::forget(m);
    Ok(out.status())
}

#[derive(Clone, Copy, ValueEnum)]
enum Clock {
    /// Guest time follows the host's clock (the default).
    Host,
    /// Time advances with instructions; idle time is skipped (deterministic).
    Virtual,
    /// Like virtual, but idle periods last as long as in real time.
    Paced,
}

#[derive(clap::Args)]
struct MachineArgs {
    /// Kernel: a RISC-V Linux Image, or an ELF program (loaded at its
    /// physical addresses).
    #[arg(long)]
    kernel: PathBuf,
    /// Initial ramdisk, placed in RAM and named in /chosen.
    #[arg(long)]
    initrd: Option<PathBuf>,
    /// Kernel command line (/chosen/bootargs).
    #[arg(long, default_value = "")]
    append: String,
    /// RAM size, as QEMU's -m: a number (a fraction too) with an optional
    /// unit B, K, M, G, T, P or E (default M), rounded up to 4 KiB pages;
    /// 16 MiB to 64 GiB.
    #[arg(short = 'm', long = "memory", default_value = "512M")]
    memory: String,
    /// Number of harts (1 to 8).
    #[arg(long, default_value_t = 1)]
    smp: u32,
    /// Host threads to run the harts on, at most one per hart. Default:
    /// one per hart with the host clock; 1 (deterministic, round-robin)
    /// with --clock virtual or paced, which need it.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    threads: Option<u32>,
    /// Firmware: OpenSBI fw_dynamic (.bin or .elf), or "none" to start the
    /// kernel in M-mode. Default: Debian's OpenSBI.
    #[arg(long)]
    bios: Option<String>,
    /// Also write everything the guest prints on the serial port to FILE.
    #[arg(long)]
    serial_log: Option<PathBuf>,
    /// Print translation, trap and speed counters when the machine stops.
    #[arg(long)]
    stats: bool,
    /// Interpret every instruction instead of compiling guest code to host
    /// code (also: environment variable STRATA_NO_JIT=1).
    #[arg(long)]
    no_jit: bool,
    /// How guest time advances: host (follows the host clock, the default),
    /// virtual (from retired instructions, deterministic) or paced.
    #[arg(long, value_enum)]
    clock: Option<Clock>,
    /// The harts' ISA: rv64gc (exactly the machine of old: RV64GC, H,
    /// Zicsr, Zifencei, Zicntr) or default (rv64gc plus Zba, Zbb, Zbc, Zbs,
    /// Zicond, Zihintpause, Sstc; what no --cpu gives) or max (default plus
    /// Svinval, which QEMU's default CPU lacks). The device tree
    /// advertises exactly these. rva23 is refused until the profile is
    /// complete.
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
    #[command(flatten)]
    virtio: VirtioArgs,
}

/// virtio devices, for `strata machine` and `strata run`.
#[derive(clap::Args)]
struct VirtioArgs {
    /// A virtio-blk disk on a raw image file:
    /// file=PATH[,readonly=on][,serial=STR][,werror=report|stop|enospc][,rerror=report|stop],
    /// or streamed over HTTP from a packed directory (docs/stream.md):
    /// url=http://HOST:PORT/PATH/table,cache=DIR,pubkey=FILE[,overlay=FILE][,timeout=SECS]:
    /// the table must be signed by FILE's key, blocks are checked against
    /// it and kept in DIR, writes go to the overlay (DIR/overlay).
    /// Repeatable; the first is /dev/vda. The image is locked as QEMU locks
    /// it: one writer, or any number of readonly=on users. werror/rerror:
    /// what a failed host write/read does: report (the guest gets an I/O
    /// error; the default), stop (the machine stops, exit status 9), enospc
    /// (stop when the host is out of space). Devices fill the 8 virtio-mmio
    /// slots in the order: drives, then virtio-rng, virtio-console, vsock,
    /// netdevs.
    #[arg(long = "drive", value_name = "OPTIONS", value_parser = DriveSpec::parse)]
    drives: Vec<DriveSpec>,
    /// An extra device. `virtio-rng`: an entropy source fed by the host's
    /// getrandom (off by default, so the default board matches QEMU's virt).
    #[arg(long = "device", value_name = "NAME", value_enum)]
    devices: Vec<DeviceKind>,
    /// A virtio-net NIC on a host TAP interface (no offloads):
    /// tap[,ifname=NAME][,mac=52:54:00:12:34:56]. NAME is used if it
    /// exists and created otherwise (needs CAP_NET_ADMIN); without ifname a
    /// new TAP is created and its name printed. Repeatable.
    #[arg(long = "netdev", value_name = "OPTIONS", value_parser = NetdevSpec::parse)]
    netdevs: Vec<NetdevSpec>,
    /// A virtio-vsock device, Firecracker style: cid=N,uds=PATH. Host
    /// programs connect to PATH and send "CONNECT <port>\n" (answer
    /// "OK <hostport>\n"); guest connections to CID 2 port P reach PATH_P.
    #[arg(long = "vsock", value_name = "OPTIONS", value_parser = VsockSpec::parse)]
    vsock: Option<VsockSpec>,
    /// A virtio-console port (/dev/hvc0 in the guest) bridged to a Unix
    /// socket that Strata creates at PATH (connect with e.g. socat).
    #[arg(long = "virtio-console", value_name = "PATH")]
    virtio_console: Option<PathBuf>,
}

impl VirtioArgs {
    fn count(&self) -> usize {
        self.drives.len()
            + self.devices.len()
            + self.netdevs.len()
            + self.vsock.is_some() as usize
            + self.virtio_console.is_some() as usize
    }

    fn config(self) -> VirtioConfig {
        VirtioConfig {
            drives: self.drives,
            rng: self.devices.contains(&DeviceKind::VirtioRng),
            nets: self.netdevs,
            vsock: self.vsock,
            console: self.virtio_console,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceKind {
    /// virtio entropy device (Virtio 1.2 §5.4) backed by getrandom(2).
    VirtioRng,
}

/// The clock asked for, or the host clock.
fn clock_mode(c: Option<Clock>) -> ClockMode {
    match c {
        None | Some(Clock::Host) => ClockMode::Host,
        Some(Clock::Virtual) => ClockMode::Virtual,
        Some(Clock::Paced) => ClockMode::Paced,
    }
}

fn machine(a: MachineArgs) -> Result<ExitReason, CliError> {
    let extensions = extensions(a.cpu.as_deref())?;
    let ram_size =
        parse_ram_size(&a.memory).map_err(|source| CliError::Memory { what: format!("-m {}", a.memory), source })?;
    let bios = match a.bios.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let p = PathBuf::from(DEBIAN_OPENSBI);
            if !p.exists() {
                return Err(CliError::NoFirmware);
            }
            Some(p)
        }
    };
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let clock = clock_mode(a.clock);
    let cfg = MachineConfig {
        ram_size,
        harts: a.smp,
        bios,
        kernel: a.kernel,
        initrd: a.initrd,
        append: a.append,
        clock,
        console_stdout: true,
        // As for `strata run`: stdin feeds the console, terminal or not.
        console_stdin: true,
        serial_log: a.serial_log,
        virtio: a.virtio.config(),
        jit: !a.no_jit && !env_flag("STRATA_NO_JIT"),
        extensions,
    };
    let threads = a.threads.unwrap_or(if clock == ClockMode::Host { a.smp } else { 1 });
    strata_platform::runner::check_threads(threads as usize, clock)?;
    let mut m = Machine::new(&cfg)?;
    m.set_threads(threads as usize)?;
    m.stop_handle().install_signal_handlers().map_err(CliError::Signals)?;
    let raw = if interactive { RawMode::enable() } else { None };
    let reason = m.run();
    drop(raw);
    m.shut_down();
    if a.stats {
        eprint!("{}", m.stats_report());
    } else {
        eprint!("{}", m.host_error_summary());
    }
    // As in `run`: the process ends now, no need to free the machine.
    std::mem::forget(m);
    Ok(reason)
}

/// An environment variable set to anything but "", "0" or "false".
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Machine(a) => machine(a),
        Cmd::Disk(c) => {
            return match disk(c) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Run(a) => {
            return match run(a) {
                Ok(status) => ExitCode::from(status as u8),
                Err(e) => fail(e),
            }
        }
    };
    match result {
        Ok(reason) => {
            match reason {
                ExitReason::PowerOff | ExitReason::Quit => {}
                ExitReason::Reset => eprintln!("strata: the guest requested a reset"),
                ExitReason::GuestFailure(code) => {
                    eprintln!("strata: the guest powered off reporting failure (code {code})")
                }
                ExitReason::Hung => eprintln!("strata: every hart is waiting for an interrupt that nothing can raise"),
                ExitReason::DiskStopped => eprintln!("strata: {DISK_STOPPED}"),
                ExitReason::Stopped(sig) => eprintln!("strata: stopped by {}", signal_name(sig)),
                ExitReason::NoProgress(s) => {
                    eprintln!("strata: {s}");
                    eprintln!("strata: {}", s.context_line());
                }
            }
            ExitCode::from(reason.status() as u8)
        }
        Err(e) => fail(e),
    }
}

/// Prints `e` as one line and gives its exit status.
fn fail(e: CliError) -> ExitCode {
    eprintln!("strata: {e}");
    ExitCode::from(e.exit_status())
}

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
use strata_platform::machine::{IommuSpec, StrayDma};
use strata_platform::runner::{signal_name, SnapshotPlan};
use strata_platform::size::parse_ram_size;
use strata_platform::tpm::TpmSpec;
use strata_platform::{
    cpu_model, ClockMode, DriveSource, DriveSpec, ExitReason, Extensions, Machine, MachineConfig, NetdevSpec,
    RestoreOptions, VirtioConfig, VsockSpec,
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
    /// Print the measurements and PCR values `strata machine --tpm` would
    /// give for the same flags, without running anything (docs/attestation.md).
    Measure(MeasureArgs),
    /// Check TPM quotes and VMs' evidence (docs/attestation.md).
    #[command(subcommand)]
    Attest(AttestCmd),
    /// Read a running machine's guest kernel from outside, through its
    /// control API (docs/monitor.md): its processes, modules, system-call
    /// table, or the monitors' state. The machine needs --api-sock and
    /// --system-map.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The running machine's --api-sock.
    #[arg(long, value_name = "PATH")]
    api_sock: PathBuf,
    /// What to list.
    #[arg(value_enum, default_value = "processes")]
    what: InspectWhat,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum InspectWhat {
    Processes,
    Modules,
    Syscalls,
    Monitor,
}

#[derive(Subcommand)]
enum AttestCmd {
    /// Check a TPM quote (tests/tpm/tpm-tool.c quote NONCE's output) against
    /// the PCR values `strata measure` gives for the same machine flags:
    /// signature, nonce, PCR selection and digest, and the key if --key.
    Verify(VerifyArgs),
    /// Print the measurement a VM's evidence will carry under `strata run`
    /// with the same flags (or --config), without running anything.
    VmMeasure(VmMeasureArgs),
    /// Check a VM's evidence (what the guest got from the STRATA SBI
    /// extension): the signature with the hypervisor's public key, the
    /// nonce, the protected flag, the measurement (as `vm-measure` gives it
    /// for the same flags) and the hypervisor executable.
    VerifyVm(VerifyVmArgs),
}

#[derive(clap::Args)]
struct VmMeasureArgs {
    /// Which VM of --config (needed when it has several).
    #[arg(long, value_name = "NAME")]
    vm: Option<String>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct VerifyVmArgs {
    /// The evidence: its hex (as the guest printed it) or its 176 bytes.
    #[arg(long, value_name = "FILE")]
    evidence: PathBuf,
    /// The hypervisor's public key, as `strata run --attest-pubkey` wrote it.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The nonce the verifier gave the guest (32 bytes), in hex.
    #[arg(long, value_name = "HEX")]
    nonce: String,
    /// The Strata executable trusted to run the VM (default: this one).
    #[arg(long, value_name = "FILE")]
    hypervisor: Option<PathBuf>,
    /// Accept evidence of a VM that is not protected.
    #[arg(long)]
    allow_unprotected: bool,
    #[command(flatten)]
    m: VmMeasureArgs,
}

/// The measurement of the VM `a` names, from its files.
fn vm_measurement(a: &VmMeasureArgs) -> Result<[u8; 32], CliError> {
    let RunVms { vms, policy, harts, .. } = run_vms(&a.run)?;
    let vm = match &a.vm {
        Some(n) => vms.iter().find(|v| &v.name == n).ok_or_else(|| CliError::NoSuchVm(n.clone()))?,
        None if vms.len() == 1 => &vms[0],
        None => return Err(CliError::WhichVm),
    };
    let cfg = strata_platform::hyp::RunConfig {
        vms: vms.clone(),
        harts,
        policy,
        clock: ClockMode::Virtual,
        console_stdout: false,
        console_stdin: false,
        jit: false,
        extensions: extensions(a.run.cpu.as_deref())?,
    };
    Ok(strata_platform::hyp::vm_measurement(&cfg, vm)?)
}

/// `strata attest verify-vm`.
fn attest_verify_vm(a: VerifyVmArgs) -> Result<(), CliError> {
    use strata_platform::attest::{unhex, verify_vm_evidence, AttestError, VmExpected};
    let read = |what: &str, p: &PathBuf| loader::read_file(what, p, 1 << 20);
    let evidence = read("evidence", &a.evidence)?;
    let key_text = String::from_utf8_lossy(&read("key", &a.key)?).trim().to_string();
    let key: [u8; 32] = unhex(&key_text)?.try_into().map_err(|_| {
        AttestError::Format(format!("--key {}: not a 32-byte Ed25519 public key in hex", a.key.display()))
    })?;
    let nonce = unhex(&a.nonce).map_err(|_| AttestError::Format(format!("--nonce {}: not hex", a.nonce)))?;
    let exe = match &a.hypervisor {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| CliError::Output { what: "this executable".into(), source: e })?,
    };
    let hypervisor = strata_hypervisor::attest::file_digest(&exe)
        .map_err(|e| CliError::Output { what: format!("--hypervisor {}", exe.display()), source: e })?;
    let measurement = vm_measurement(&a.m)?;
    let want = VmExpected {
        key: &key,
        nonce: &nonce,
        measurement: &measurement,
        hypervisor: &hypervisor,
        allow_unprotected: a.allow_unprotected,
    };
    let e = verify_vm_evidence(&evidence, &want)?;
    println!(
        "evidence OK: signed by the hypervisor's key, nonce {}, {} VM measured {}",
        a.nonce,
        if e.protected { "protected" } else { "ordinary" },
        strata_hypervisor::attest::hex(&e.measurement)
    );
    Ok(())
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The quote: its quote-key, quote-attest and quote-sig lines.
    #[arg(long, value_name = "FILE")]
    quote: PathBuf,
    /// The nonce the verifier gave the guest, in hex.
    #[arg(long, value_name = "HEX")]
    nonce: String,
    /// The attestation key trusted for this TPM ("X Y" in hex, or a
    /// quote-key line); without it any key that signed is accepted.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    #[command(flatten)]
    machine: MachineArgs,
}

/// Writes a small public file (a public key) in one step: an existing path
/// is replaced only if it is a regular file, never a device, directory or
/// anything else an operator might have named by mistake.
fn write_public_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_file() {
            return Err(std::io::Error::other("exists and is not a regular file"));
        }
    }
    let tmp = path.with_extension("tmp-strata");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `strata attest verify`.
fn attest_verify(a: VerifyArgs) -> Result<(), CliError> {
    use strata_platform::attest::{parse_key, unhex, AttestError, Quote};
    let read =
        |what: &str, p: &PathBuf| loader::read_file(what, p, 1 << 20).map(|b| String::from_utf8_lossy(&b).into_owned());
    let quote = Quote::parse(&read("quote", &a.quote)?)?;
    let key = match &a.key {
        Some(p) => Some(parse_key(&read("key", p)?)?),
        None => None,
    };
    let nonce = unhex(&a.nonce).map_err(|_| AttestError::Format(format!("--nonce {}: not hex", a.nonce)))?;
    let cfg = machine_config(a.machine)?;
    let expected = strata_platform::machine::expected_measurements(&cfg)?;
    quote.verify(&nonce, &expected, key.as_deref())?;
    println!(
        "quote OK: signed by {}, nonce {}, PCRs 0-9 as measured",
        if key.is_some() { "the trusted key" } else { "its own key (not checked: no --key)" },
        a.nonce
    );
    Ok(())
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
    /// Monitors (docs/monitor.md) are on `strata machine` only so far;
    /// given here they are refused with the reason (and a protected VM
    /// refuses them whatever comes later).
    #[arg(long, value_name = "SPEC")]
    monitor: Vec<String>,
    /// The VM's name (labels its console with several VMs).
    #[arg(long)]
    name: Option<String>,
    /// Physical harts (default: one per vCPU, at most 8).
    #[arg(long)]
    harts: Option<u32>,
    /// Host threads to run the physical harts on, at most one per hart.
    /// Default: one per hart with the host clock; 1 (deterministic,
    /// round-robin) with --clock virtual or paced, which need it, with
    /// --api-sock, and with shadow-paged VMs.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    threads: Option<u32>,
    /// Machine memory beyond the VMs' own, for VMs created later through
    /// the control API (POST /vms; docs/api.md), as -m: 1G, 512M, ...
    /// (default none).
    #[arg(long, value_name = "SIZE")]
    spare_memory: Option<String>,
    /// How cached translations are invalidated when a page changes hands:
    /// pa (exactly the translations reaching it), vmid, or all.
    #[arg(long, default_value = "pa")]
    invalidation: strata_hypervisor::Policy,
    /// How the VM's memory is virtualized: nested (the guest's tables over
    /// the G-stage, the default) or shadow (shadow tables the hart walks in
    /// one dimension). tpt is refused: not implemented yet. With --config:
    /// the mode of every VM whose `paging` the file does not give.
    #[arg(long, value_name = "MODE")]
    paging: Option<String>,
    #[arg(long)]
    serial_log: Option<PathBuf>,
    /// Where real-time VMs' vCPUs run (docs/realtime.md): share (time-sliced
    /// with other VMs' vCPUs), migrate (other VMs use the real-time harts
    /// while the real-time VM waits, and are moved off when it has work)
    /// or dedicated (harts of their own). Also `placement = "..."` in the
    /// --config file; the flag wins. Default share.
    #[arg(long, value_name = "POLICY")]
    placement: Option<String>,
    /// Print hypervisor, translation and speed counters at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    control: ControlArgs,
    /// Write the public key VMs' evidence is signed with (hex) to FILE
    /// when the hypervisor starts (docs/attestation.md). The key is made
    /// afresh by each run and its secret half never leaves the process.
    #[arg(long, value_name = "FILE")]
    attest_pubkey: Option<PathBuf>,
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
    /// Zicbop, Zihintntl, Zimop and Svinval; the VMs do not get
    /// Zicbom/Zicboz). rva23 is
    /// refused until the profile is complete.
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
}

/// The TOML form of `strata run --config` (docs/hypervisor.md).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    harts: Option<u32>,
    invalidation: Option<String>,
    /// share, migrate or dedicated, as `--placement`.
    placement: Option<String>,
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
    /// A real-time VM (docs/realtime.md), on the physical harts in `harts`.
    #[serde(default)]
    realtime: bool,
    harts: Option<Vec<u32>>,
    /// nested (default) or shadow, as `--paging`.
    paging: Option<String>,
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

/// A `--paging` / `paging = "…"` value.
fn paging(mode: Option<&str>) -> Result<strata_platform::hyp::Paging, CliError> {
    use strata_platform::hyp::Paging;
    match mode {
        None | Some("nested") => Ok(Paging::Nested),
        Some("shadow") => Ok(Paging::Shadow),
        Some("tpt") => Err(CliError::PagingNotImplemented("tpt")),
        Some(other) => Err(CliError::UnknownPaging(other.to_string())),
    }
}

/// What `strata run`'s flags (or its --config file) describe.
struct RunVms {
    vms: Vec<strata_platform::hyp::VmConfig>,
    policy: strata_hypervisor::Policy,
    harts: Option<u32>,
    placement: Option<String>,
    /// Real-time VMs (by name) and the harts each may use.
    realtime: Vec<(String, Vec<usize>)>,
}

/// The VMs, invalidation policy, hart count and placement `strata run`'s
/// flags (or its --config file) describe.
fn run_vms(a: &RunArgs) -> Result<RunVms, CliError> {
    use strata_platform::hyp::VmConfig;
    let mut policy = a.invalidation;
    let mut harts = a.harts;
    let mut placement = a.placement.clone();
    // Real-time VMs (by name) and the harts each may use.
    let mut realtime: Vec<(String, Vec<usize>)> = Vec::new();
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
            placement = placement.or(f.placement);
            for v in &f.vms {
                match (v.realtime, &v.harts) {
                    (true, Some(h)) => realtime.push((v.name.clone(), h.iter().map(|&h| h as usize).collect())),
                    (true, None) => return Err(CliError::RealtimeWithoutHarts(v.name.clone())),
                    (false, Some(_)) => return Err(CliError::HartsWithoutRealtime(v.name.clone())),
                    (false, None) => {}
                }
            }
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
                                            o.profile = o.profile.map(|p| {
                                                if p.starts_with("http://") {
                                                    p
                                                } else {
                                                    rel(p.into()).display().to_string()
                                                }
                                            });
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
                        paging: paging(v.paging.as_deref().or(a.paging.as_deref()))?,
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
            let kernel = a.kernel.clone().ok_or(CliError::NoKernel)?;
            vec![VmConfig {
                virtio: a.virtio.clone().config(),
                name: a.name.clone().unwrap_or_else(|| "vm0".into()),
                memory: match &a.memory {
                    Some(m) => {
                        parse_ram_size(m).map_err(|source| CliError::Memory { what: format!("-m {m}"), source })?
                    }
                    None => 512 << 20,
                },
                vcpus: a.smp.unwrap_or(1),
                protected: a.protected,
                paging: paging(a.paging.as_deref())?,
                kernel,
                initrd: a.initrd.clone(),
                append: a.append.clone().unwrap_or_default(),
                serial_log: a.serial_log.clone(),
            }]
        }
    };
    Ok(RunVms { vms, policy, harts, placement, realtime })
}

fn run(a: RunArgs) -> Result<i32, CliError> {
    use strata_platform::hyp::{HypMachine, RunConfig};
    let extensions = extensions(a.cpu.as_deref())?;
    let RunVms { vms, policy, harts, placement, realtime } = run_vms(&a)?;
    if !a.monitor.is_empty() {
        return Err(match vms.iter().find(|v| v.protected) {
            Some(v) => CliError::MonitorProtected(v.name.clone()),
            None => CliError::MonitorOnRun,
        });
    }
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let clock = clock_mode(a.clock);
    let jit = !a.no_jit && !env_flag("STRATA_NO_JIT");
    // Console input comes from stdin whatever it is (a terminal, in raw
    // mode; a pipe or file, as it is, so a script can drive the guest).
    let cfg = RunConfig { vms, harts, policy, clock, console_stdout: true, console_stdin: true, jit, extensions };
    let spare = match &a.spare_memory {
        Some(m) => {
            parse_ram_size(m).map_err(|source| CliError::Memory { what: format!("--spare-memory {m}"), source })?
        }
        None => 0,
    };
    // As for `strata machine`: the control API is served between rounds of
    // the one-thread loop, and the virtual and paced clocks need that loop;
    // shadow paging too (strata_platform::hyp: a resync reloads other
    // harts' registers).
    let api_sock = a.control.api_sock.is_some();
    if let (true, Some(t @ 2..)) = (api_sock, a.threads) {
        return Err(CliError::ApiThreads(t));
    }
    let shadow = cfg.vms.iter().find(|v| v.paging == strata_platform::hyp::Paging::Shadow).map(|v| v.name.clone());
    if let (Some(vm), Some(t @ 2..)) = (&shadow, a.threads) {
        return Err(CliError::ShadowThreads(t, vm.clone()));
    }
    let one = clock != ClockMode::Host || api_sock || shadow.is_some();
    let threads = a.threads.map_or(if one { 1 } else { cfg.harts.unwrap_or(u32::MAX) }, |t| t) as usize;
    strata_platform::runner::check_threads(threads, clock)?;
    let placement: strata_hypervisor::Placement = match placement.as_deref() {
        Some(p) => p.parse().map_err(CliError::Placement)?,
        None => strata_hypervisor::Placement::Share,
    };
    let mut m = HypMachine::with_spare_memory(&cfg, spare)?;
    m.configure_placement(placement, &realtime)?;
    if let Some(path) = &a.attest_pubkey {
        let key = strata_hypervisor::attest::hex(&m.hyp().attest_public_key());
        write_public_file(path, &format!("{key}\n"))
            .map_err(|e| CliError::Output { what: format!("--attest-pubkey {}", path.display()), source: e })?;
    }
    // Default: one thread per physical hart (the machine's count).
    let threads = if a.threads.is_none() && !one { m.harts.len() } else { threads };
    m.set_threads(threads)?;
    m.stop_handle().install_signal_handlers().map_err(CliError::Signals)?;
    // Ctrl-A s and SIGUSR1 are refused with a message (not yet supported).
    m.install_snapshot_signal().map_err(CliError::Signals)?;
    let api = a.control.start(&mut m)?;
    let raw = if interactive { RawMode::enable() } else { None };
    let out = m.run();
    drop(raw);
    m.shut_down();
    if a.stats {
        eprint!("{}", m.stats_report());
    } else {
        eprint!("{}", m.host_error_summary());
    }
    a.control.finish(&m, api)?;
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
    #[arg(long, required_unless_present = "restore")]
    kernel: Option<PathBuf>,
    /// Continue from a snapshot FILE (docs/snapshot.md): the machine it
    /// describes (RAM, harts, --cpu, --clock, drives) is rebuilt, so those
    /// flags are not given again.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "initrd", "append", "memory", "smp", "bios", "clock", "cpu", "drives", "devices", "netdevs", "vsock", "virtio_console"])]
    restore: Option<PathBuf>,
    /// With --restore: go on even if a drive's image changed size or
    /// modification time since the snapshot.
    #[arg(long, requires = "restore")]
    restore_ignore_disk_changes: bool,
    /// Where snapshots go (replaced atomically): taken with Ctrl-A s,
    /// SIGUSR1, or --snapshot-at-insns.
    #[arg(long, value_name = "PATH")]
    snapshot_file: Option<PathBuf>,
    /// A testing aid: take a snapshot at the first round boundary at which
    /// the harts have retired N instructions together (with --clock
    /// virtual, the same point in every run).
    #[arg(long, value_name = "N", requires = "snapshot_file")]
    snapshot_at_insns: Option<u64>,
    /// End the run (status 0) once a snapshot is taken.
    #[arg(long, requires = "snapshot_file")]
    snapshot_and_stop: bool,
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
    #[command(flatten)]
    control: ControlArgs,
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
    /// Zicbom, Zicbop, Zicboz, Zihintntl, Zimop and Svinval, which QEMU's
    /// default CPU lacks).
    /// The device tree
    /// advertises exactly these. rva23 is refused until the profile is
    /// complete.
    #[arg(long, value_name = "MODEL")]
    cpu: Option<String>,
    /// Serve gdb's remote protocol on tcp:ADDRESS:PORT, unix:PATH or a
    /// socket path; the harts wait for gdb before their first instruction
    /// (docs/gdb.md).
    #[arg(long, value_name = "ADDR")]
    gdb: Option<String>,
    /// A TPM 2.0 (TIS over MMIO) backed by swtpm, which Strata starts and
    /// stops, with measured boot (docs/attestation.md):
    /// swtpm[,state=DIR][,timeout=SECS]. Without state= the TPM is new each
    /// run (a private temporary directory); with it, DIR keeps the TPM's
    /// identity between runs. timeout: how long swtpm may take to answer
    /// (default 20 s) before the guest gets a TPM error.
    #[arg(long, value_name = "OPTIONS", value_parser = TpmSpec::parse)]
    tpm: Option<TpmSpec>,
    /// A RISC-V IOMMU (riscv,iommu; docs/iommu.md) between the virtio
    /// devices and RAM: every device DMA is translated with the device's
    /// ID through the tables the guest's driver sets up (Linux 6.13 or
    /// later drives it).
    #[arg(long)]
    iommu: bool,
    /// Test knob for the IOMMU's fault path (needs --iommu): after WRITES
    /// DMA writes, the virtio device in SLOT writes a marker to IOVA, an
    /// address its driver never mapped, with its own device ID or DID:
    /// SLOT:WRITES:IOVA[:DID].
    #[arg(long, hide = true, value_name = "SLOT:WRITES:IOVA[:DID]", value_parser = StrayDma::parse, requires = "iommu")]
    iommu_stray_dma: Option<StrayDma>,
    #[command(flatten)]
    virtio: VirtioArgs,
    #[command(flatten)]
    monitor: MonitorArgs,
}

/// Introspection and monitors (docs/monitor.md), for `strata machine`.
#[derive(clap::Args, Default)]
struct MonitorArgs {
    /// The guest kernel's System.map (Debian's real one is in
    /// linux-image-*-dbg: scripts/fetch-symbols.sh). Enables the
    /// introspection routes of the control API (strata inspect).
    #[arg(long, value_name = "FILE")]
    system_map: Option<PathBuf>,
    /// The kernel's raw BTF (a vmlinux .BTF section). Default: read from
    /// the kernel image in guest memory (__start_BTF..__stop_BTF).
    #[arg(long, value_name = "FILE", requires = "system_map")]
    btf: Option<PathBuf>,
    /// A monitor (repeatable; docs/monitor.md):
    /// integrity[,interval=100ms][,retry=on|off][,pause=on|off] on its own
    /// host thread (needs --system-map; violations are logged on stderr
    /// and listed by GET /machine/monitor; pause=on pauses the machine at
    /// the first), or blk-trace[,drive=N] (counts a disk's requests).
    #[arg(long, value_name = "SPEC", value_parser = strata_platform::monitor::Monitor::parse)]
    monitor: Vec<strata_platform::monitor::Monitor>,
    /// Fault injection (repeatable): blk[,drive=N],sector=S fails every
    /// read or write of disk N that covers sector S with an I/O error;
    /// blk[,drive=N],rate=P[,seed=X] fails a fraction P of its requests;
    /// mem,addr=GPA,bit=B[,after=MS] flips one bit of guest memory once.
    #[arg(long, value_name = "SPEC", value_parser = strata_platform::monitor::Fault::parse)]
    fault: Vec<strata_platform::monitor::Fault>,
}

/// The control API and the stats file, for `strata machine` and `strata run`.
#[derive(clap::Args, Default)]
struct ControlArgs {
    /// Serve the REST control API (docs/api.md) on a Unix socket created
    /// at PATH (mode 0600; removed at exit). A socket another process
    /// serves on is refused, a stale one replaced, any other file refused.
    /// The harts then run on one host thread.
    #[arg(long, value_name = "PATH")]
    api_sock: Option<PathBuf>,
    /// Write the --stats counters as JSON to FILE when the machine stops.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

impl ControlArgs {
    /// Starts the API on `r`, if asked.
    fn start<W: strata_platform::runner::Workload>(
        &self,
        r: &mut strata_platform::Runner<W>,
    ) -> Result<Option<strata_api::ApiServer>, CliError> {
        self.api_sock.as_deref().map(|p| r.serve_api(p)).transpose().map_err(CliError::from)
    }

    /// After the run: closes the API (its socket file goes) and writes the
    /// stats file; says on stderr if the API stopped the machine.
    fn finish<W: strata_platform::runner::Workload>(
        &self,
        r: &strata_platform::Runner<W>,
        api: Option<strata_api::ApiServer>,
    ) -> Result<(), CliError> {
        drop(api);
        if r.stopped_by_api() {
            eprintln!("strata: stopped through the control API");
        }
        if let Some(p) = &self.stats_json {
            std::fs::write(p, r.stats_json()).map_err(|source| CliError::StatsJson { path: p.clone(), source })?;
        }
        Ok(())
    }
}

/// virtio devices, for `strata machine` and `strata run`.
#[derive(clap::Args, Clone)]
struct VirtioArgs {
    /// A virtio-blk disk on a raw image file:
    /// file=PATH[,readonly=on][,serial=STR][,werror=report|stop|enospc][,rerror=report|stop],
    /// or streamed over HTTP from a packed directory (docs/stream.md):
    /// url=http://HOST:PORT/PATH/table,cache=DIR,pubkey=FILE[,overlay=FILE][,timeout=SECS][,profile=URL|FILE]:
    /// the table must be signed by FILE's key, blocks are checked against
    /// it and kept in DIR, writes go to the overlay (DIR/overlay); a boot
    /// profile (DIR/profile of an earlier run) is read ahead.
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

#[derive(clap::Args)]
struct MeasureArgs {
    /// Also write the TCG event log the guest would get (exactly the bytes
    /// Linux shows as binary_bios_measurements) to FILE.
    #[arg(long, value_name = "FILE")]
    event_log: Option<PathBuf>,
    #[command(flatten)]
    machine: MachineArgs,
}

/// `strata measure`: the expected measurements for these flags.
fn measure(a: MeasureArgs) -> Result<(), CliError> {
    let cfg = machine_config(a.machine)?;
    let m = strata_platform::machine::expected_measurements(&cfg)?;
    if let Some(path) = &a.event_log {
        std::fs::write(path, m.event_log())
            .map_err(|e| CliError::Output { what: format!("--event-log {}", path.display()), source: e })?;
    }
    print!("{}", m.report());
    Ok(())
}

/// The machine the flags describe.
fn machine_config(a: MachineArgs) -> Result<MachineConfig, CliError> {
    let extensions = extensions(a.cpu.as_deref())?;
    let ram_size =
        parse_ram_size(&a.memory).map_err(|source| CliError::Memory { what: format!("-m {}", a.memory), source })?;
    let bios = match a.bios.as_deref() {
        // A restored machine's firmware is in its RAM.
        _ if a.restore.is_some() => None,
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
    Ok(MachineConfig {
        ram_size,
        harts: a.smp,
        bios,
        kernel: a.kernel.ok_or(CliError::NoKernel)?,
        initrd: a.initrd,
        append: a.append,
        clock: clock_mode(a.clock),
        console_stdout: true,
        // As for `strata run`: stdin feeds the console, terminal or not.
        console_stdin: true,
        serial_log: a.serial_log,
        virtio: a.virtio.config(),
        jit: !a.no_jit && !env_flag("STRATA_NO_JIT"),
        extensions,
        tpm: a.tpm,
        iommu: a.iommu.then_some(IommuSpec { stray: a.iommu_stray_dma }),
    })
}

fn machine(mut a: MachineArgs) -> Result<ExitReason, CliError> {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    let stats = a.stats;
    let control = std::mem::take(&mut a.control);
    let monitor = std::mem::take(&mut a.monitor);
    let plan =
        SnapshotPlan { path: a.snapshot_file.clone(), at_insns: a.snapshot_at_insns, stop_after: a.snapshot_and_stop };
    // The control API is served at round boundaries of the one-thread
    // loop (docs/api.md): with --api-sock the harts share one thread.
    let api_sock = control.api_sock.is_some();
    if let (true, Some(t @ 2..)) = (api_sock, a.threads) {
        return Err(CliError::ApiThreads(t));
    }
    let gdb =
        a.gdb.as_deref().map(str::parse::<strata_gdb::GdbAddr>).transpose().map_err(strata_platform::Error::from)?;
    let (mut m, threads) = match a.restore.clone() {
        Some(file) => {
            let o = RestoreOptions {
                console_stdout: true,
                console_stdin: true,
                serial_log: a.serial_log.clone(),
                jit: !a.no_jit && !env_flag("STRATA_NO_JIT"),
                ignore_disk_changes: a.restore_ignore_disk_changes,
            };
            let t0 = std::time::Instant::now();
            let m = Machine::restore(&file, &o)?;
            if stats {
                eprintln!("strata: restored {} in {:.3} s", file.display(), t0.elapsed().as_secs_f64());
            }
            let host = m.clock() == ClockMode::Host && !api_sock;
            let threads = a.threads.map_or(if host { m.harts.len() } else { 1 }, |t| t as usize);
            (m, threads)
        }
        None => {
            let threads_flag = a.threads;
            let cfg = machine_config(a)?;
            let host = cfg.clock == ClockMode::Host && !api_sock;
            let threads = threads_flag.unwrap_or(if host { cfg.harts } else { 1 }) as usize;
            // Before the machine is built: a flag error before file errors.
            strata_platform::runner::check_threads(threads, cfg.clock)?;
            (Machine::new(&cfg)?, threads)
        }
    };
    strata_platform::runner::check_threads(threads, m.clock())?;
    m.set_threads(threads)?;
    m.set_snapshot_plan(plan);
    m.stop_handle().install_signal_handlers().map_err(CliError::Signals)?;
    m.install_snapshot_signal().map_err(CliError::Signals)?;
    let api = control.start(&mut m)?;
    let hub = if monitor.system_map.is_some() || !monitor.monitor.is_empty() || !monitor.fault.is_empty() {
        use strata_platform::monitor::{Hub, Monitor};
        let integrity: Vec<_> = monitor
            .monitor
            .iter()
            .filter_map(|m| match m {
                Monitor::Integrity(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        if !integrity.is_empty() && monitor.system_map.is_none() {
            return Err(CliError::MonitorWithoutMap);
        }
        let load_pa = m.work.layout.kernel.0;
        let hub =
            Hub::new(m.ram.clone(), m.harts.len(), load_pa, monitor.system_map.as_deref(), monitor.btf.as_deref())?;
        m.attach_monitor(hub.hooks());
        if let Some(a) = &api {
            a.set_side(hub.clone());
        }
        // The disks' taps, in drive order.
        let taps: Vec<_> =
            m.virtio.iter().filter_map(|d| d.lock().unwrap_or_else(|e| e.into_inner()).block_taps()).collect();
        for mon in &monitor.monitor {
            hub.attach_io(mon, &taps).map_err(CliError::MonitorSpec)?;
        }
        for f in &monitor.fault {
            match f {
                strata_platform::monitor::Fault::Blk(f) => hub.attach_fault(f, &taps),
                strata_platform::monitor::Fault::Mem { addr, bit, after } => hub.schedule_flip(*addr, *bit, *after),
            }
            .map_err(CliError::MonitorSpec)?;
        }
        for spec in integrity {
            hub.start_integrity(spec)?;
        }
        Some(hub)
    } else {
        None
    };
    let raw = if interactive { RawMode::enable() } else { None };
    let reason = match &gdb {
        Some(addr) => strata_platform::debug::serve_board(&mut m, addr)?,
        None => m.run(),
    };
    drop(raw);
    if let Some(h) = &hub {
        h.shut_down();
    }
    m.shut_down();
    m.stop_tpm();
    if stats {
        eprint!("{}", m.stats_report());
    } else {
        eprint!("{}", m.host_error_summary());
    }
    control.finish(&m, api)?;
    // As in `run`: the process ends now, no need to free the machine.
    std::mem::forget(m);
    Ok(reason)
}

/// `strata inspect`: one API request, printed as a table (or JSON).
fn inspect(a: InspectArgs) -> Result<(), CliError> {
    let route = match a.what {
        InspectWhat::Processes => "/machine/processes",
        InspectWhat::Modules => "/machine/modules",
        InspectWhat::Syscalls => "/machine/syscalls",
        InspectWhat::Monitor => "/machine/monitor",
    };
    let r = strata_api::client::request(&a.api_sock, "GET", route, b"")
        .map_err(|e| CliError::Inspect(format!("--api-sock {}: {e}", a.api_sock.display())))?;
    let v = r.json();
    if r.status == 200 && v.is_null() {
        return Err(CliError::Inspect(format!("{route}: the answer is not JSON")));
    }
    if r.status != 200 {
        let msg = v["error"].as_str().map_or_else(|| r.text(), str::to_string);
        return Err(CliError::Inspect(format!("{route}: {} {msg}", r.status)));
    }
    if a.json || matches!(a.what, InspectWhat::Monitor) {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    let s = |x: &serde_json::Value| x.as_str().map_or_else(|| x.to_string(), str::to_string);
    match a.what {
        InspectWhat::Processes => {
            println!("{:>7} {:>7} {:<16} {:<6} TASK", "PID", "PPID", "COMM", "KIND");
            for p in rows {
                let kind = if p["kernel_thread"].as_bool() == Some(true) { "kernel" } else { "user" };
                let n = |x: &serde_json::Value| x.as_i64().unwrap_or(-1);
                println!(
                    "{:>7} {:>7} {:<16} {:<6} {}",
                    n(&p["pid"]),
                    n(&p["ppid"]),
                    s(&p["comm"]),
                    kind,
                    s(&p["task"])
                );
            }
        }
        InspectWhat::Modules => {
            println!("{:<24} {:>5} ADDRESS", "NAME", "STATE");
            for m in rows {
                println!("{:<24} {:>5} {}", s(&m["name"]), m["state"].as_u64().unwrap_or(0), s(&m["address"]));
            }
        }
        InspectWhat::Syscalls => {
            println!("{:>4} {:<18} SYMBOL", "NR", "ADDRESS");
            for c in rows {
                println!("{:>4} {:<18} {}", c["nr"].as_u64().unwrap_or(0), s(&c["address"]), s(&c["symbol"]));
            }
        }
        InspectWhat::Monitor => unreachable!("printed as JSON above"),
    }
    Ok(())
}

/// An environment variable set to anything but "", "0" or "false".
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Machine(a) => machine(a),
        Cmd::Attest(AttestCmd::Verify(a)) => {
            return match attest_verify(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Attest(AttestCmd::VerifyVm(a)) => {
            return match attest_verify_vm(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Attest(AttestCmd::VmMeasure(a)) => {
            return match vm_measurement(&a) {
                Ok(m) => {
                    println!("{}", strata_hypervisor::attest::hex(&m));
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Inspect(a) => {
            return match inspect(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Measure(a) => {
            return match measure(a) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
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

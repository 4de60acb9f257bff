//! The gdb remote stub: gdb's Remote Serial Protocol (the `gdbstub` crate)
//! over a [`DebugMachine`], the small trait a machine implements — read
//! and write a hart's registers, read and write memory by virtual address
//! through a hart's current translation, run until a breakpoint or an
//! interrupt from gdb, step one instruction.
//!
//! | gdb | stub | machine |
//! | --- | --- | --- |
//! | threads (`qfThreadInfo`, `Hg`, `T`) | hart `i` is thread `i + 1` | [`DebugMachine::harts`] |
//! | `g`/`G`, `p`/`P` | x0–x31 and pc in `g`; FP registers, CSRs and `priv` one at a time, numbered as gdb's RISC-V target description numbers them (below) | [`DebugMachine::reg`], [`DebugMachine::set_reg`] |
//! | `m`/`M` | memory by virtual address | [`DebugMachine::read_memory`], [`DebugMachine::write_memory`] |
//! | `Z0`/`Z1` (software, hardware breakpoints) | one set of addresses: both are a pc check before an instruction runs, never a patch of guest memory | [`Resume::Continue`] carries the set |
//! | `Z2`/`Z3`/`Z4` (write, read, access watchpoints) | ranges of virtual addresses; the machine stops *after* an instruction that wrote (read, either) a watched byte, and gdb is told the watch's address | [`Resume::Continue`] carries them, [`Stop::Watchpoint`] |
//! | `c`, `vCont;c` | continue every hart | [`Resume::Continue`] |
//! | `s`, `vCont;s:N` | step hart `N - 1` only; the others wait | [`Resume::Step`] |
//! | Ctrl-C (`0x03`) | the machine stops at its next round boundary | the `interrupted` callback of [`DebugMachine::resume`] |
//! | `D` (detach) | the stub ends; the machine runs on without it | [`Ended::Detached`] |
//! | `k` (kill) | the stub ends; so does the machine | [`Ended::Killed`] |
//!
//! Register numbers (gdb's `riscv-tdep.h`, and the `regnum`s of the target
//! description this crate sends, [`target_xml`]): x0–x31 are 0–31, pc 32,
//! f0–f31 33–64, CSR `n` is `65 + n`, the privilege level 4161. Not
//! implemented: watchpoints on physical addresses, and value conditions
//! (gdb evaluates those itself).

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::single_register_access::{SingleRegisterAccess, SingleRegisterAccessOps};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps, SwBreakpoint,
    SwBreakpointOps, WatchKind as GdbWatchKind,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::riscv::reg::id::RiscvRegId;
use gdbstub_arch::riscv::reg::RiscvCoreRegs;
use strata_arch::csr::addr;

/// A register other than through `g`/`G`: what [`DebugMachine::reg`]
/// reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reg {
    /// x0–x31.
    X(u8),
    Pc,
    /// f0–f31, raw 64-bit patterns.
    F(u8),
    /// A CSR by number.
    Csr(u16),
    /// The privilege level (0 U, 1 S, 3 M), as gdb's `priv` register.
    Priv,
}

/// Which accesses a watchpoint stops on (gdb's `watch`, `rwatch`, `awatch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchKind {
    Write,
    Read,
    Access,
}

/// A watchpoint: `len` bytes from virtual address `addr`, as the hart that
/// accesses them translates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watch {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

impl Watch {
    /// Whether an access of `len` bytes at `va` (a read, a write or both,
    /// as an AMO) is one this watchpoint stops on: the ranges overlap and
    /// the kind matches.
    pub fn hit(&self, va: u64, len: u64, read: bool, write: bool) -> bool {
        let kind = match self.kind {
            WatchKind::Write => write,
            WatchKind::Read => read,
            WatchKind::Access => read || write,
        };
        // [va, va + len) and [addr, addr + len) overlap (in 128 bits: a
        // range may end at the top of the address space).
        let (va, len, addr, wlen) = (va as u128, len as u128, self.addr as u128, self.len as u128);
        kind && va < addr + wlen && addr < va + len
    }
}

/// How [`DebugMachine::resume`] runs the machine.
#[derive(Clone, Copy, Debug)]
pub enum Resume<'a> {
    /// Every hart runs until one is about to run an instruction at an
    /// address in `breaks` (it has not run it), has just run one that
    /// accessed a byte `watches` names, the machine ends, or `interrupted`
    /// says so.
    Continue { breaks: &'a BTreeSet<u64>, watches: &'a [Watch] },
    /// Hart `hart` runs one instruction (or takes the trap it raises);
    /// the others wait.
    Step { hart: usize },
}

/// Why [`DebugMachine::resume`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Breakpoint {
        hart: usize,
    },
    Stepped {
        hart: usize,
    },
    /// Hart `hart` has just run an instruction whose data access `watch`
    /// stops on.
    Watchpoint {
        hart: usize,
        watch: Watch,
    },
    /// The `interrupted` callback said so (gdb sent Ctrl-C).
    Interrupted,
    /// The machine ended (powered off, reset, ...) with this exit status.
    Ended(u8),
}

/// What the stub debugs: a machine of harts over memory.
pub trait DebugMachine {
    /// The number of harts (gdb threads 1..=n).
    fn harts(&self) -> usize;
    /// A register of hart `hart`; `None` if it has no such register.
    fn reg(&mut self, hart: usize, reg: Reg) -> Option<u64>;
    /// Writes a register; false if it has no such register.
    fn set_reg(&mut self, hart: usize, reg: Reg, value: u64) -> bool;
    /// Reads memory at virtual address `va` as hart `hart` sees it now;
    /// returns how many bytes it could read (it stops at the first byte
    /// that is not mapped to RAM).
    fn read_memory(&mut self, hart: usize, va: u64, buf: &mut [u8]) -> usize;
    /// Writes memory at `va` as hart `hart` sees it; false (and nothing
    /// written) unless every byte is mapped to RAM.
    fn write_memory(&mut self, hart: usize, va: u64, data: &[u8]) -> bool;
    /// Runs the machine as `how` says. `interrupted` is asked now and then
    /// (between rounds) whether to stop.
    fn resume(&mut self, how: Resume<'_>, interrupted: &mut dyn FnMut() -> bool) -> Stop;
}

/// Why [`serve`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// gdb detached (or went away): the machine runs on.
    Detached,
    /// gdb killed the machine.
    Killed,
    /// The machine ended while gdb was attached, with this status.
    MachineEnded(u8),
}

/// The stub's errors: each message is the one line the user sees.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    #[error("--gdb {0}: expected tcp:ADDRESS:PORT, unix:PATH or a socket path")]
    BadAddress(String),
    #[error("--gdb {what}: cannot listen: {source}")]
    Listen { what: String, source: io::Error },
    #[error("--gdb {0}: the path exists; remove it or choose another (Strata does not take over existing files)")]
    SocketExists(PathBuf),
    #[error("--gdb {what}: waiting for gdb: {source}")]
    Accept { what: String, source: io::Error },
    #[error("gdb connection: {0}")]
    Protocol(String),
}

/// Where the stub listens (`--gdb`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GdbAddr {
    /// `tcp:ADDRESS:PORT`: the `ADDRESS:PORT` part.
    Tcp(String),
    /// `unix:PATH` or a bare path (with a `/`).
    Unix(PathBuf),
}

impl std::str::FromStr for GdbAddr {
    type Err = GdbError;
    fn from_str(s: &str) -> Result<Self, GdbError> {
        if let Some(rest) = s.strip_prefix("tcp:") {
            // ADDRESS may be empty (all interfaces, as QEMU's `tcp::1234`)
            // or a bracketed IPv6 address; PORT must be a number.
            let bad = || GdbError::BadAddress(s.to_string());
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            port.parse::<u16>().map_err(|_| bad())?;
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            return Ok(GdbAddr::Tcp(format!("{host}:{port}")));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.is_empty() {
                return Ok(GdbAddr::Unix(PathBuf::from(path)));
            }
        } else if s.contains('/') {
            return Ok(GdbAddr::Unix(PathBuf::from(s)));
        }
        Err(GdbError::BadAddress(s.to_string()))
    }
}

impl std::fmt::Display for GdbAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GdbAddr::Tcp(a) => write!(f, "tcp:{a}"),
            GdbAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listening stub, before gdb has connected. A Unix socket's file is
/// removed when this is dropped.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A connection to gdb.
pub type Conn = Box<dyn ConnectionExt<Error = io::Error>>;

impl Listener {
    /// Listens on `addr`. An existing path is never replaced.
    pub fn bind(addr: &GdbAddr) -> Result<Listener, GdbError> {
        let what = addr.to_string();
        match addr {
            GdbAddr::Tcp(a) => {
                TcpListener::bind(a).map(Listener::Tcp).map_err(|source| GdbError::Listen { what, source })
            }
            GdbAddr::Unix(p) => {
                if p.symlink_metadata().is_ok() {
                    return Err(GdbError::SocketExists(p.clone()));
                }
                let l = UnixListener::bind(p).map_err(|source| GdbError::Listen { what: what.clone(), source })?;
                // Whoever connects controls the machine: owner only.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|source| GdbError::Listen { what, source })?;
                Ok(Listener::Unix(l, p.clone()))
            }
        }
    }

    /// Where it listens (for a TCP port 0, the port the system chose).
    pub fn local_addr(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map_or_else(|_| "tcp:?".into(), |a| format!("tcp:{a}")),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// Waits for gdb to connect.
    pub fn accept(&self) -> Result<Conn, GdbError> {
        let what = self.local_addr();
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().map_err(|source| GdbError::Accept { what, source })?;
                // Packets are small and gdb waits for each reply.
                let _ = s.set_nodelay(true);
                Ok(Box::new(s) as Box<dyn ConnectionExt<Error = io::Error>>)
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().map_err(|source| GdbError::Accept { what, source })?;
                Ok(Box::new(s))
            }
        }
    }

    /// The socket file, for a Unix socket.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Listener::Unix(_, p) => Some(p),
            Listener::Tcp(_) => None,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Serves gdb on `conn` until it detaches or kills the machine, or the
/// machine ends. The machine does not run until gdb tells it to.
pub fn serve<M: DebugMachine>(machine: &mut M, conn: Conn) -> Result<Ended, GdbError> {
    let mut target = Stub {
        m: machine,
        breaks: BTreeSet::new(),
        sw: BTreeSet::new(),
        hw: BTreeSet::new(),
        watches: Vec::new(),
        step: None,
    };
    let gdb = GdbStub::new(conn);
    match gdb.run_blocking::<EventLoop<Stub<'_, M>>>(&mut target) {
        Ok(DisconnectReason::Disconnect) => Ok(Ended::Detached),
        Ok(DisconnectReason::Kill) => Ok(Ended::Killed),
        Ok(DisconnectReason::TargetExited(code)) => Ok(Ended::MachineEnded(code)),
        Ok(DisconnectReason::TargetTerminated(_)) => Ok(Ended::Killed),
        // gdb went away without a word (closed its socket): as a detach.
        Err(e) if e.is_connection_error() => Ok(Ended::Detached),
        Err(e) => Err(GdbError::Protocol(e.to_string())),
    }
}

/// The target description: gdb's RISC-V features with explicit register
/// numbers, the CSRs of [`CSRS`] at `65 + number`.
pub fn target_xml() -> &'static str {
    static XML: OnceLock<String> = OnceLock::new();
    XML.get_or_init(|| {
        use std::fmt::Write;
        const ABI: [&str; 32] = [
            "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6",
            "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
        ];
        const FABI: [&str; 32] = [
            "ft0", "ft1", "ft2", "ft3", "ft4", "ft5", "ft6", "ft7", "fs0", "fs1", "fa0", "fa1", "fa2", "fa3", "fa4",
            "fa5", "fa6", "fa7", "fs2", "fs3", "fs4", "fs5", "fs6", "fs7", "fs8", "fs9", "fs10", "fs11", "ft8", "ft9",
            "ft10", "ft11",
        ];
        let mut x = String::from(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n\
             <architecture>riscv:rv64</architecture>\n<feature name=\"org.gnu.gdb.riscv.cpu\">\n",
        );
        for (i, n) in ABI.iter().enumerate() {
            let ty = match i {
                1 => "code_ptr",
                2..=4 => "data_ptr",
                _ => "int",
            };
            let _ = writeln!(x, "<reg name=\"{n}\" bitsize=\"64\" type=\"{ty}\" regnum=\"{i}\"/>");
        }
        let _ = writeln!(x, "<reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"{PC_REGNUM}\"/>\n</feature>");
        x.push_str("<feature name=\"org.gnu.gdb.riscv.fpu\">\n");
        for (i, n) in FABI.iter().enumerate() {
            let _ = writeln!(x, "<reg name=\"{n}\" bitsize=\"64\" type=\"ieee_double\" regnum=\"{}\"/>", F_REGNUM + i);
        }
        // gdb looks for the FP CSRs in the FPU feature (riscv-tdep.c).
        for (n, csr) in [("fflags", addr::FFLAGS), ("frm", addr::FRM), ("fcsr", addr::FCSR)] {
            let _ =
                writeln!(x, "<reg name=\"{n}\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>", CSR_REGNUM + csr as usize);
        }
        x.push_str("</feature>\n<feature name=\"org.gnu.gdb.riscv.csr\">\n");
        for (n, csr) in CSRS {
            let _ = writeln!(
                x,
                "<reg name=\"{n}\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>",
                CSR_REGNUM + *csr as usize
            );
        }
        let _ = writeln!(
            x,
            "</feature>\n<feature name=\"org.gnu.gdb.riscv.virtual\">\n\
             <reg name=\"priv\" bitsize=\"8\" type=\"int\" regnum=\"{PRIV_REGNUM}\"/>\n</feature>\n</target>"
        );
        x
    })
}

const PC_REGNUM: usize = 32;
const F_REGNUM: usize = 33;
const CSR_REGNUM: usize = 65;
const PRIV_REGNUM: usize = CSR_REGNUM + 4096;

/// The CSRs gdb is told of (besides the FP ones), by gdb's names.
pub const CSRS: &[(&str, u16)] = &[
    ("cycle", addr::CYCLE),
    ("time", addr::TIME),
    ("instret", addr::INSTRET),
    ("sstatus", addr::SSTATUS),
    ("sie", addr::SIE),
    ("stvec", addr::STVEC),
    ("scounteren", addr::SCOUNTEREN),
    ("senvcfg", addr::SENVCFG),
    ("sscratch", addr::SSCRATCH),
    ("sepc", addr::SEPC),
    ("scause", addr::SCAUSE),
    ("stval", addr::STVAL),
    ("sip", addr::SIP),
    ("satp", addr::SATP),
    ("stimecmp", addr::STIMECMP),
    ("vsstatus", addr::VSSTATUS),
    ("vsie", addr::VSIE),
    ("vstvec", addr::VSTVEC),
    ("vsscratch", addr::VSSCRATCH),
    ("vsepc", addr::VSEPC),
    ("vscause", addr::VSCAUSE),
    ("vstval", addr::VSTVAL),
    ("vsip", addr::VSIP),
    ("vsatp", addr::VSATP),
    ("vstimecmp", addr::VSTIMECMP),
    ("hstatus", addr::HSTATUS),
    ("hedeleg", addr::HEDELEG),
    ("hideleg", addr::HIDELEG),
    ("hie", addr::HIE),
    ("htimedelta", addr::HTIMEDELTA),
    ("hcounteren", addr::HCOUNTEREN),
    ("hgeie", addr::HGEIE),
    ("henvcfg", addr::HENVCFG),
    ("htval", addr::HTVAL),
    ("hip", addr::HIP),
    ("hvip", addr::HVIP),
    ("htinst", addr::HTINST),
    ("hgatp", addr::HGATP),
    ("hgeip", addr::HGEIP),
    ("mvendorid", addr::MVENDORID),
    ("marchid", addr::MARCHID),
    ("mimpid", addr::MIMPID),
    ("mhartid", addr::MHARTID),
    ("mconfigptr", addr::MCONFIGPTR),
    ("mstatus", addr::MSTATUS),
    ("misa", addr::MISA),
    ("medeleg", addr::MEDELEG),
    ("mideleg", addr::MIDELEG),
    ("mie", addr::MIE),
    ("mtvec", addr::MTVEC),
    ("mcounteren", addr::MCOUNTEREN),
    ("menvcfg", addr::MENVCFG),
    ("mcountinhibit", addr::MCOUNTINHIBIT),
    ("mscratch", addr::MSCRATCH),
    ("mepc", addr::MEPC),
    ("mcause", addr::MCAUSE),
    ("mtval", addr::MTVAL),
    ("mip", addr::MIP),
    ("mtinst", addr::MTINST),
    ("mtval2", addr::MTVAL2),
    ("mcycle", addr::MCYCLE),
    ("minstret", addr::MINSTRET),
];

/// gdb's register numbering, as a [`Reg`].
pub fn reg_of_regnum(n: usize) -> Option<Reg> {
    match n {
        0..=31 => Some(Reg::X(n as u8)),
        PC_REGNUM => Some(Reg::Pc),
        33..=64 => Some(Reg::F((n - F_REGNUM) as u8)),
        PRIV_REGNUM => Some(Reg::Priv),
        65..=4160 => Some(Reg::Csr((n - CSR_REGNUM) as u16)),
        _ => None,
    }
}

fn reg_of_id(id: RiscvRegId<u64>) -> Option<Reg> {
    match id {
        RiscvRegId::Gpr(i) => Some(Reg::X(i)),
        RiscvRegId::Pc => Some(Reg::Pc),
        RiscvRegId::Fpr(i) => Some(Reg::F(i)),
        RiscvRegId::Csr(n) => Some(Reg::Csr(n)),
        RiscvRegId::Priv => Some(Reg::Priv),
        _ => None,
    }
}

/// RV64 with the target description above (`gdbstub_arch`'s `Riscv64`
/// has the registers and ids, but a description of the integer registers
/// only).
pub enum StrataRiscv64 {}

impl gdbstub::arch::Arch for StrataRiscv64 {
    type Usize = u64;
    type Registers = RiscvCoreRegs<u64>;
    type BreakpointKind = usize;
    type RegId = RiscvRegId<u64>;

    fn target_description_xml() -> Option<&'static str> {
        Some(target_xml())
    }
}

/// Hart `i` is gdb's thread `i + 1` (thread ids start at 1).
fn tid(hart: usize) -> Tid {
    NonZeroUsize::new(hart + 1).expect("hart + 1 is not zero")
}

/// The stub's state around the machine: breakpoints and the resume action
/// gdb chose.
struct Stub<'a, M: DebugMachine> {
    m: &'a mut M,
    /// Software and hardware breakpoints together: what the harts check.
    breaks: BTreeSet<u64>,
    sw: BTreeSet<u64>,
    hw: BTreeSet<u64>,
    /// Watchpoints, in the order gdb set them (the first that an access
    /// hits is the one reported).
    watches: Vec<Watch>,
    /// The hart to step, if gdb asked for a step.
    step: Option<usize>,
}

impl<M: DebugMachine> Stub<'_, M> {
    fn hart(&self, t: Tid) -> Result<usize, TargetError<&'static str>> {
        let h = t.get() - 1;
        if h < self.m.harts() {
            Ok(h)
        } else {
            Err(TargetError::NonFatal)
        }
    }

    fn rebuild(&mut self) {
        self.breaks = self.sw.union(&self.hw).copied().collect();
    }
}

impl<M: DebugMachine> Target for Stub<'_, M> {
    type Arch = StrataRiscv64;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    // Breakpoints are the stub's (a pc check), not patches of guest
    // memory: gdb need not (and must not) write ebreaks itself.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl<M: DebugMachine> MultiThreadBase for Stub<'_, M> {
    fn read_registers(&mut self, regs: &mut RiscvCoreRegs<u64>, t: Tid) -> TargetResult<(), Self> {
        let h = self.hart(t)?;
        for i in 0..32 {
            regs.x[i] = self.m.reg(h, Reg::X(i as u8)).unwrap_or(0);
        }
        regs.pc = self.m.reg(h, Reg::Pc).unwrap_or(0);
        Ok(())
    }

    fn write_registers(&mut self, regs: &RiscvCoreRegs<u64>, t: Tid) -> TargetResult<(), Self> {
        let h = self.hart(t)?;
        for i in 1..32 {
            self.m.set_reg(h, Reg::X(i as u8), regs.x[i]);
        }
        self.m.set_reg(h, Reg::Pc, regs.pc);
        Ok(())
    }

    fn support_single_register_access(&mut self) -> Option<SingleRegisterAccessOps<'_, Tid, Self>> {
        Some(self)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], t: Tid) -> TargetResult<usize, Self> {
        let h = self.hart(t)?;
        match self.m.read_memory(h, start, data) {
            // gdb takes an error reply, not an empty one, for memory it
            // cannot read.
            0 if !data.is_empty() => Err(TargetError::Errno(14)), // EFAULT
            n => Ok(n),
        }
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], t: Tid) -> TargetResult<(), Self> {
        let h = self.hart(t)?;
        if self.m.write_memory(h, start, data) {
            Ok(())
        } else {
            Err(TargetError::Errno(14))
        }
    }

    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for h in 0..self.m.harts() {
            active(tid(h));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<M: DebugMachine> SingleRegisterAccess<Tid> for Stub<'_, M> {
    fn read_register(&mut self, t: Tid, id: RiscvRegId<u64>, buf: &mut [u8]) -> TargetResult<usize, Self> {
        let h = self.hart(t)?;
        let v = reg_of_id(id).and_then(|r| self.m.reg(h, r)).ok_or(TargetError::NonFatal)?;
        let bytes = v.to_le_bytes();
        let n = buf.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn write_register(&mut self, t: Tid, id: RiscvRegId<u64>, val: &[u8]) -> TargetResult<(), Self> {
        let h = self.hart(t)?;
        let mut b = [0u8; 8];
        let n = val.len().min(8);
        b[..n].copy_from_slice(&val[..n]);
        let r = reg_of_id(id).ok_or(TargetError::NonFatal)?;
        if self.m.set_reg(h, r, u64::from_le_bytes(b)) {
            Ok(())
        } else {
            Err(TargetError::NonFatal)
        }
    }
}

impl<M: DebugMachine> MultiThreadResume for Stub<'_, M> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        // The machine runs in `wait_for_stop_reason`, where the
        // connection can be watched for Ctrl-C.
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _t: Tid, signal: Option<Signal>) -> Result<(), Self::Error> {
        // Signals mean nothing to a machine (gdb passes them on `c`
        // after a SIGINT stop; they are dropped, as QEMU's stub does).
        let _ = signal;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl<M: DebugMachine> MultiThreadSchedulerLocking for Stub<'_, M> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        // `vCont;s:N` with no action for the others: they wait, which is
        // what a step does here anyway.
        Ok(())
    }
}

impl<M: DebugMachine> MultiThreadSingleStep for Stub<'_, M> {
    fn set_resume_action_step(&mut self, t: Tid, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = Some(self.hart(t).map_err(|_| "step of an unknown thread")?);
        Ok(())
    }
}

impl<M: DebugMachine> Breakpoints for Stub<'_, M> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

fn watch_kind(k: GdbWatchKind) -> WatchKind {
    match k {
        GdbWatchKind::Write => WatchKind::Write,
        GdbWatchKind::Read => WatchKind::Read,
        GdbWatchKind::ReadWrite => WatchKind::Access,
    }
}

fn gdb_watch_kind(k: WatchKind) -> GdbWatchKind {
    match k {
        WatchKind::Write => GdbWatchKind::Write,
        WatchKind::Read => GdbWatchKind::Read,
        WatchKind::Access => GdbWatchKind::ReadWrite,
    }
}

impl<M: DebugMachine> HwWatchpoint for Stub<'_, M> {
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, kind: GdbWatchKind) -> TargetResult<bool, Self> {
        if len == 0 {
            return Ok(false);
        }
        let w = Watch { addr, len, kind: watch_kind(kind) };
        if !self.watches.contains(&w) {
            self.watches.push(w);
        }
        Ok(true)
    }
    fn remove_hw_watchpoint(&mut self, addr: u64, len: u64, kind: GdbWatchKind) -> TargetResult<bool, Self> {
        let w = Watch { addr, len, kind: watch_kind(kind) };
        let before = self.watches.len();
        self.watches.retain(|x| *x != w);
        Ok(self.watches.len() != before)
    }
}

impl<M: DebugMachine> SwBreakpoint for Stub<'_, M> {
    fn add_sw_breakpoint(&mut self, a: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.sw.insert(a);
        self.rebuild();
        Ok(true)
    }
    fn remove_sw_breakpoint(&mut self, a: u64, _kind: usize) -> TargetResult<bool, Self> {
        let had = self.sw.remove(&a);
        self.rebuild();
        Ok(had)
    }
}

impl<M: DebugMachine> HwBreakpoint for Stub<'_, M> {
    fn add_hw_breakpoint(&mut self, a: u64, _kind: usize) -> TargetResult<bool, Self> {
        self.hw.insert(a);
        self.rebuild();
        Ok(true)
    }
    fn remove_hw_breakpoint(&mut self, a: u64, _kind: usize) -> TargetResult<bool, Self> {
        let had = self.hw.remove(&a);
        self.rebuild();
        Ok(had)
    }
}

/// Runs the machine between gdb's commands (gdbstub's blocking loop).
struct EventLoop<M>(std::marker::PhantomData<M>);

impl<'a, M: DebugMachine + 'a> run_blocking::BlockingEventLoop for EventLoop<Stub<'a, M>> {
    type Target = Stub<'a, M>;
    type Connection = Conn;
    type StopReason = MultiThreadStopReason<u64>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut Stub<'a, M>,
        conn: &mut Conn,
    ) -> Result<
        run_blocking::Event<MultiThreadStopReason<u64>>,
        run_blocking::WaitForStopReasonError<&'static str, io::Error>,
    > {
        let how = match target.step.take() {
            Some(hart) => Resume::Step { hart },
            None => Resume::Continue { breaks: &target.breaks, watches: &target.watches },
        };
        let mut conn_err = None;
        let stop = target.m.resume(how, &mut || match conn.peek() {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                conn_err = Some(e);
                true
            }
        });
        if let Some(e) = conn_err {
            return Err(run_blocking::WaitForStopReasonError::Connection(e));
        }
        use run_blocking::Event;
        Ok(match stop {
            Stop::Breakpoint { hart } => Event::TargetStopped(MultiThreadStopReason::SwBreak(tid(hart))),
            Stop::Stepped { hart } => Event::TargetStopped(MultiThreadStopReason::SignalWithThread {
                tid: tid(hart),
                signal: Signal::SIGTRAP,
            }),
            Stop::Watchpoint { hart, watch } => Event::TargetStopped(MultiThreadStopReason::Watch {
                tid: tid(hart),
                kind: gdb_watch_kind(watch.kind),
                addr: watch.addr,
            }),
            Stop::Ended(code) => Event::TargetStopped(MultiThreadStopReason::Exited(code)),
            Stop::Interrupted => {
                let b = conn.read().map_err(run_blocking::WaitForStopReasonError::Connection)?;
                Event::IncomingData(b)
            }
        })
    }

    fn on_interrupt(_target: &mut Stub<'a, M>) -> Result<Option<MultiThreadStopReason<u64>>, &'static str> {
        // The machine stopped at a round boundary: report it on hart 0.
        Ok(Some(MultiThreadStopReason::SignalWithThread { tid: tid(0), signal: Signal::SIGINT }))
    }
}

#[cfg(test)]
mod tests;

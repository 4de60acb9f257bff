//! Monitors on the bare board (issue 18, docs/monitor.md): the machine as
//! `strata_introspect` sees it, the kernel-integrity monitor's thread, and
//! the API routes that read the guest kernel from outside.
//!
//! | piece | runs on | does |
//! | --- | --- | --- |
//! | [`RamGuest`] | any thread | guest RAM reads (`GuestRam`'s atomics: no stop), write watches (`GuestRam::watch_page`), the harts' published `satp`/`stvec` |
//! | [`Hooks`] | the run loop | publishes each hart's `satp`/`stvec` at every round boundary, and pauses the machine when a monitor asks; one `Option` test per round when no monitor is attached |
//! | [`Hub`] | API handler threads, the monitor thread | the kernel view (built on first use, once the kernel has set up its page tables), the integrity state, the violations |
//! | the monitor thread (`strata-monitor`) | its own | a round of checks every interval, until the machine stops |
//!
//! Invariants: a monitor never writes guest memory and never takes a lock
//! the run loop takes, so a guest cannot stall the machine through it (or
//! the other way round); a violation is recorded once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;
use strata_api::{ApiError, Command, Inspect, Reply, SideController};
use strata_devices::virtio::block;
use strata_devices::virtio::tap::{BlockObserver, BlockRequest};
use strata_introspect::btf::Btf;
use strata_introspect::guest::{GuestMemory, PhysError};
use strata_introspect::integrity::{Integrity, Violation};
use strata_introspect::kernel::{btf_from_guest, ImagePlace, Kernel, KernelError};
use strata_introspect::symbols::SymbolMap;
use strata_memory::{GuestRam, PAGE_SHIFT};

/// One `--monitor` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// `integrity[,interval=DUR][,retry=on|off][,pause=on|off]`.
    Integrity(MonitorSpec),
    /// `blk-trace[,drive=N]`: counts every request of virtio-blk drive N
    /// (default 0) by type.
    BlkTrace { drive: usize },
}

impl Monitor {
    pub fn parse(s: &str) -> Result<Monitor, MonitorSpecError> {
        let err = |why: String| MonitorSpecError { spec: s.into(), why };
        if s == "blk-trace" || s.starts_with("blk-trace,") {
            let mut drive = 0;
            for p in s.split(',').skip(1) {
                match p.split_once('=') {
                    Some(("drive", v)) => drive = v.parse().map_err(|_| err(format!("drive={v}: a number")))?,
                    _ => return Err(err(format!("{p:?}: blk-trace takes drive=N"))),
                }
            }
            return Ok(Monitor::BlkTrace { drive });
        }
        MonitorSpec::parse(s).map(Monitor::Integrity)
    }
}

/// `--fault blk[,drive=N],sector=S | rate=P[,seed=X]`: fail virtio-blk
/// requests of drive N (default 0) with VIRTIO_BLK_S_IOERR — those whose
/// sectors include S, or a fraction P of all (a seeded xorshift; the seed
/// is printed).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpec {
    pub drive: usize,
    pub sector: Option<u64>,
    pub rate: Option<f64>,
    pub seed: u64,
}

impl FaultSpec {
    pub fn parse(s: &str) -> Result<FaultSpec, MonitorSpecError> {
        let err = |why: String| MonitorSpecError { spec: s.into(), why };
        let mut parts = s.split(',');
        if parts.next() != Some("blk") {
            return Err(err("faults: blk[,drive=N],sector=S or rate=P[,seed=X]".into()));
        }
        let mut f = FaultSpec { drive: 0, sector: None, rate: None, seed: 0x5eed };
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| err(format!("{p:?}: expected KEY=VALUE")))?;
            let num = || err(format!("{k}={v}: not a number"));
            match k {
                "drive" => f.drive = v.parse().map_err(|_| num())?,
                "sector" => f.sector = Some(v.parse().map_err(|_| num())?),
                "seed" => f.seed = v.parse().map_err(|_| num())?,
                "rate" => {
                    let r: f64 = v.parse().map_err(|_| num())?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(err(format!("rate={v}: 0 to 1")));
                    }
                    f.rate = Some(r)
                }
                _ => return Err(err(format!("unknown option {k:?} (drive, sector, rate, seed)"))),
            }
        }
        if f.sector.is_none() == f.rate.is_none() {
            return Err(err("give exactly one of sector=S and rate=P".into()));
        }
        Ok(f)
    }
}

/// One `--fault` flag: a disk's requests, or a bit of guest memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    Blk(FaultSpec),
    /// `mem,addr=GPA,bit=B[,after=MS]`: flips bit B (0–7) of the byte at
    /// guest-physical GPA once, MS milliseconds (default 0) after start.
    Mem {
        addr: u64,
        bit: u8,
        after: Duration,
    },
}

impl Fault {
    pub fn parse(s: &str) -> Result<Fault, MonitorSpecError> {
        if !(s == "mem" || s.starts_with("mem,")) {
            return FaultSpec::parse(s).map(Fault::Blk);
        }
        let err = |why: String| MonitorSpecError { spec: s.into(), why };
        let (mut addr, mut bit, mut after) = (None, None, Duration::ZERO);
        for p in s.split(',').skip(1) {
            let (k, v) = p.split_once('=').ok_or_else(|| err(format!("{p:?}: expected KEY=VALUE")))?;
            let num = |v: &str| strata_api::parse_u64(k, v).map_err(|e| err(e.message));
            match k {
                "addr" => addr = Some(num(v)?),
                "bit" => {
                    bit = Some(
                        num(v)?
                            .try_into()
                            .ok()
                            .filter(|b: &u8| *b < 8)
                            .ok_or_else(|| err(format!("bit={v}: 0 to 7")))?,
                    )
                }
                "after" => after = parse_duration(v).ok_or_else(|| err(format!("after={v}: e.g. 500ms, 2s")))?,
                _ => return Err(err(format!("unknown option {k:?} (addr, bit, after)"))),
            }
        }
        Ok(Fault::Mem {
            addr: addr.ok_or_else(|| err("give addr=GPA".into()))?,
            bit: bit.ok_or_else(|| err("give bit=0..7".into()))?,
            after,
        })
    }
}

/// Flips `bit` of the guest-physical byte at `addr` (through the write
/// path that keeps decoded code and watches coherent); the old and new byte.
pub fn flip_bit(ram: &GuestRam, addr: u64, bit: u8) -> Result<(u8, u8), PhysError> {
    let mut b = [0u8];
    ram.read_bytes(addr, &mut b).map_err(|_| PhysError { addr, len: 1 })?;
    let new = b[0] ^ (1 << (bit & 7));
    ram.write_bytes(addr, &[new]).map_err(|_| PhysError { addr, len: 1 })?;
    Ok((b[0], new))
}

/// `blk-trace`: counts a drive's requests by type.
pub struct BlkTrace {
    pub drive: usize,
    /// in, out, flush, other.
    counts: [AtomicU64; 4],
}

impl BlockObserver for BlkTrace {
    fn request(&self, r: &BlockRequest) -> Option<u8> {
        let i = match r.kind {
            block::req::IN => 0,
            block::req::OUT => 1,
            block::req::FLUSH => 2,
            _ => 3,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `--fault blk`: fails the chosen requests.
pub struct BlkFault {
    pub spec: FaultSpec,
    rng: Mutex<u64>,
    seen: AtomicU64,
    injected: AtomicU64,
}

impl BlockObserver for BlkFault {
    fn request(&self, r: &BlockRequest) -> Option<u8> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        let hit = match (self.spec.sector, self.spec.rate) {
            (Some(s), _) => {
                let n = r.bytes.div_ceil(512).max(1);
                matches!(r.kind, block::req::IN | block::req::OUT)
                    && (r.sector..r.sector.saturating_add(n)).contains(&s)
            }
            (None, Some(p)) => {
                let mut x = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                // xorshift64 (Marsaglia 2003).
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                (*x >> 11) as f64 / (1u64 << 53) as f64 <= p
            }
            _ => false,
        };
        if hit {
            self.injected.fetch_add(1, Ordering::Relaxed);
            eprintln!("strata: fault: virtio-blk{} request at sector {} failed (injected)", self.spec.drive, r.sector);
            return Some(block::S_IOERR);
        }
        None
    }
}

/// `--monitor integrity[,interval=DUR][,retry=on|off][,pause=on|off]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorSpec {
    pub interval: Duration,
    pub retry: bool,
    pub pause: bool,
}

/// A `--monitor` value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--monitor {spec:?}: {why}")]
pub struct MonitorSpecError {
    pub spec: String,
    pub why: String,
}

impl MonitorSpec {
    pub fn parse(s: &str) -> Result<MonitorSpec, MonitorSpecError> {
        let err = |why: String| MonitorSpecError { spec: s.into(), why };
        let mut parts = s.split(',');
        match parts.next() {
            Some("integrity") => {}
            other => return Err(err(format!("unknown monitor {:?} (known: integrity)", other.unwrap_or("")))),
        }
        let mut m = MonitorSpec { interval: Duration::from_millis(100), retry: true, pause: false };
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| err(format!("{p:?}: expected KEY=VALUE")))?;
            let onoff = |v: &str| match v {
                "on" | "true" | "1" => Ok(true),
                "off" | "false" | "0" => Ok(false),
                _ => Err(err(format!("{k}={v}: on or off"))),
            };
            match k {
                "interval" => {
                    m.interval = parse_duration(v).ok_or_else(|| err(format!("interval={v}: e.g. 100ms, 2s")))?
                }
                "retry" => m.retry = onoff(v)?,
                "pause" => m.pause = onoff(v)?,
                _ => return Err(err(format!("unknown option {k:?} (interval, retry, pause)"))),
            }
        }
        if m.interval < Duration::from_millis(1) {
            return Err(err("interval: at least 1ms".into()));
        }
        Ok(m)
    }
}

fn parse_duration(v: &str) -> Option<Duration> {
    let (n, unit) = v.find(|c: char| !c.is_ascii_digit()).map_or((v, "ms"), |i| v.split_at(i));
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "us" => Duration::from_micros(n),
        _ => return None,
    })
}

/// What the run loop publishes for monitors, and their requests to it.
pub struct Hooks {
    /// Per hart: satp, stvec (relaxed; a round old at most).
    regs: Vec<(AtomicU64, AtomicU64)>,
    /// A monitor asks the machine to pause (its `pause=on`).
    pub pause: AtomicBool,
}

impl Hooks {
    pub fn new(harts: usize) -> Self {
        Hooks {
            regs: (0..harts).map(|_| (AtomicU64::new(0), AtomicU64::new(0))).collect(),
            pause: AtomicBool::new(false),
        }
    }
    /// Called by the run loop at a round boundary.
    #[inline]
    pub fn publish(&self, hart: usize, satp: u64, stvec: u64) {
        if let Some((a, b)) = self.regs.get(hart) {
            a.store(satp, Ordering::Relaxed);
            b.store(stvec, Ordering::Relaxed);
        }
    }
}

/// Guest RAM and the hooks, as a monitor's machine.
pub struct RamGuest {
    pub ram: Arc<GuestRam>,
    pub hooks: Arc<Hooks>,
}

impl GuestMemory for RamGuest {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        self.ram.read_bytes(addr, buf).map_err(|_| PhysError { addr, len: buf.len() as u64 })
    }
    fn arm(&self, addr: u64) -> Option<u32> {
        let off = self.ram.offset_of(addr, 1)?;
        Some(self.ram.watch_page(off >> PAGE_SHIFT))
    }
    fn unchanged(&self, addr: u64, gen: u32) -> bool {
        self.ram.offset_of(addr, 1).is_some_and(|off| self.ram.watch_unchanged(off >> PAGE_SHIFT, gen))
    }
    fn hart_regs(&self) -> Vec<(u64, u64)> {
        self.hooks.regs.iter().map(|(a, b)| (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed))).collect()
    }
}

/// A violation with when it was found (host seconds since the monitor
/// started).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    pub check: &'static str,
    pub what: String,
    pub guest_seconds: f64,
}

/// Everything the monitors share.
pub struct Hub {
    guest: Arc<RamGuest>,
    /// The System.map's text (`None`: no --system-map, no introspection).
    syms_text: Option<String>,
    /// Device monitors: blk-trace and faults.
    pub traces: Mutex<Vec<Arc<BlkTrace>>>,
    pub faults: Mutex<Vec<Arc<BlkFault>>>,
    /// Bit flips done (`--fault mem`).
    flips: Arc<Mutex<Vec<serde_json::Value>>>,
    btf_file: Option<Vec<u8>>,
    place: ImagePlace,
    kernel: OnceLock<Kernel<Arc<RamGuest>>>,
    /// Serialises the kernel's first construction.
    building: Mutex<()>,
    pub integrity: Mutex<Option<(MonitorSpec, Integrity)>>,
    pub events: Mutex<Vec<Event>>,
    pub stop: AtomicBool,
    started: std::time::Instant,
}

/// Why the introspection could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("--system-map {path}: {source}")]
    Map { path: String, source: std::io::Error },
    #[error("--system-map {path}: {source}")]
    Symbols { path: String, source: strata_introspect::symbols::SymbolError },
    #[error("--btf {path}: {source}")]
    Btf { path: String, source: std::io::Error },
    #[error("could not start the monitor thread: {0}")]
    Thread(std::io::Error),
}

impl Hub {
    /// A hub over `ram`, for the kernel loaded at `load_pa` whose symbols
    /// are in `system_map` (BTF from `btf`, or else from guest memory).
    pub fn new(
        ram: Arc<GuestRam>,
        harts: usize,
        load_pa: u64,
        system_map: Option<&std::path::Path>,
        btf: Option<&std::path::Path>,
    ) -> Result<Arc<Hub>, MonitorError> {
        let syms_text = match system_map {
            None => None,
            Some(map) => {
                let path = map.display().to_string();
                let text =
                    std::fs::read_to_string(map).map_err(|source| MonitorError::Map { path: path.clone(), source })?;
                // Checked now, so a stub map is one clear error at start.
                let syms =
                    SymbolMap::parse(&text).map_err(|source| MonitorError::Symbols { path: path.clone(), source })?;
                for s in ["init_task", "swapper_pg_dir", "satp_mode", "_start", "_end", "sys_call_table"] {
                    syms.get(s).map_err(|source| MonitorError::Symbols { path: path.clone(), source })?;
                }
                Some(text)
            }
        };
        let btf_file = btf
            .map(|p| std::fs::read(p).map_err(|source| MonitorError::Btf { path: p.display().to_string(), source }))
            .transpose()?;
        Ok(Arc::new(Hub {
            guest: Arc::new(RamGuest { ram, hooks: Arc::new(Hooks::new(harts)) }),
            syms_text,
            traces: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            flips: Arc::new(Mutex::new(Vec::new())),
            btf_file,
            place: ImagePlace { load_pa },
            kernel: OnceLock::new(),
            building: Mutex::new(()),
            integrity: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            started: std::time::Instant::now(),
        }))
    }

    /// The run loop's hooks.
    pub fn hooks(&self) -> Arc<Hooks> {
        self.guest.hooks.clone()
    }

    /// The kernel view, built on first use (fails until the kernel has
    /// set `satp_mode`).
    pub fn kernel(&self) -> Result<&Kernel<Arc<RamGuest>>, KernelError> {
        if let Some(k) = self.kernel.get() {
            return Ok(k);
        }
        let _g = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = self.kernel.get() {
            return Ok(k);
        }
        let text = self
            .syms_text
            .as_deref()
            .ok_or_else(|| KernelError::Corrupt("no --system-map: the guest kernel's symbols are unknown".into()))?;
        let syms = SymbolMap::parse(text)?;
        let blob = match &self.btf_file {
            Some(b) => b.clone(),
            None => btf_from_guest(&self.guest, &syms, self.place)?,
        };
        let btf = Btf::parse(&blob)?;
        let k = Kernel::new(self.guest.clone(), syms, btf, self.place)?;
        Ok(self.kernel.get_or_init(|| k))
    }

    /// Starts the integrity monitor on its own thread.
    pub fn start_integrity(self: &Arc<Self>, spec: MonitorSpec) -> Result<std::thread::JoinHandle<()>, MonitorError> {
        let interval = spec.interval;
        *self.integrity.lock().unwrap_or_else(|e| e.into_inner()) = Some((spec.clone(), Integrity::new(spec.retry)));
        let hub = self.clone();
        std::thread::Builder::new()
            .name("strata-monitor".into())
            .spawn(move || {
                while !hub.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    hub.integrity_round();
                }
            })
            .map_err(MonitorError::Thread)
    }

    /// One round of the integrity checks (the monitor thread's loop body).
    pub fn integrity_round(&self) {
        let Ok(k) = self.kernel() else { return };
        let mut g = self.integrity.lock().unwrap_or_else(|e| e.into_inner());
        let Some((spec, integ)) = g.as_mut() else { return };
        let found = match integ.round(k) {
            Ok(v) => v,
            Err(e) => vec![Violation { check: "monitor", what: format!("a check could not read the kernel: {e}") }],
        };
        if found.is_empty() {
            return;
        }
        let pause = spec.pause;
        drop(g);
        let t = self.started.elapsed().as_secs_f64();
        let mut ev = self.events.lock().unwrap_or_else(|e| e.into_inner());
        for v in found {
            eprintln!("strata: monitor: integrity violation ({}): {}", v.check, v.what);
            ev.push(Event { check: v.check, what: v.what, guest_seconds: t });
        }
        if pause {
            self.guest.hooks.pause.store(true, Ordering::SeqCst);
        }
    }

    /// The monitors' state, as `GET /machine/monitor` gives it.
    pub fn state(&self) -> serde_json::Value {
        let g = self.integrity.lock().unwrap_or_else(|e| e.into_inner());
        let (monitors, stats) = match g.as_ref() {
            Some((spec, i)) => (
                vec![format!(
                    "integrity,interval={}ms,retry={},pause={}",
                    spec.interval.as_millis(),
                    if spec.retry { "on" } else { "off" },
                    if spec.pause { "on" } else { "off" }
                )],
                serde_json::to_value(&i.stats).expect("plain data"),
            ),
            None => (vec![], json!({})),
        };
        let ev = self.events.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut monitors = monitors;
        let mut io = Vec::new();
        for t in self.traces.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            monitors.push(format!("blk-trace,drive={}", t.drive));
            let c = |i: usize| t.counts[i].load(Ordering::Relaxed);
            io.push(
                json!({ "monitor": "blk-trace", "drive": t.drive, "in": c(0), "out": c(1), "flush": c(2), "other": c(3),
                            "requests": c(0) + c(1) + c(2) + c(3) }),
            );
        }
        for f in self.faults.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            monitors.push(format!("fault,blk,drive={}", f.spec.drive));
            io.push(json!({ "monitor": "fault", "drive": f.spec.drive, "sector": f.spec.sector, "rate": f.spec.rate,
                            "seed": f.spec.seed, "requests": f.seen.load(Ordering::Relaxed),
                            "injected": f.injected.load(Ordering::Relaxed) }));
        }
        io.extend(self.flips.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned());
        json!({ "monitors": monitors, "stats": stats, "violations": ev, "io": io })
    }

    fn inspect(&self, what: Inspect) -> Result<serde_json::Value, ApiError> {
        let k = self.kernel().map_err(|e| ApiError::conflict(format!("the guest kernel cannot be read yet: {e}")))?;
        // Optimistic retry here too: a listing taken while the guest
        // changed what it read is taken again.
        let mut last = None;
        for _ in 0..16 {
            let mut s = k.session(true);
            let v = match what {
                Inspect::Processes => s.processes().map(|p| serde_json::to_value(p).expect("plain data")),
                Inspect::Modules => s.modules().map(|p| serde_json::to_value(p).expect("plain data")),
                Inspect::Syscalls => s.syscalls().map(|p| serde_json::to_value(p).expect("plain data")),
            };
            let stable = s.changed().is_none();
            last = Some(v);
            if stable {
                break;
            }
        }
        last.expect("ran once").map_err(|e| ApiError::conflict(format!("reading the guest kernel: {e}")))
    }

    /// Kernel virtual memory, through the kernel's page tables.
    fn read_virtual(&self, addr: u64, len: u64) -> Result<Reply, ApiError> {
        let k = self.kernel().map_err(|e| ApiError::conflict(format!("the guest kernel cannot be read yet: {e}")))?;
        let pa = k.translate(addr).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut buf = vec![0; len as usize];
        k.session(false).read(addr, &mut buf).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Reply::Json(json!({
            "addr": format!("{addr:#x}"),
            "pa": format!("{pa:#x}"),
            "len": len,
            "data": strata_api::hex_encode(&buf),
        })))
    }

    /// Attaches a device monitor to its drive's taps (`taps[drive]`: the
    /// machine's block devices in order).
    pub fn attach_io(
        &self,
        m: &Monitor,
        taps: &[Arc<strata_devices::virtio::tap::Taps>],
    ) -> Result<(), MonitorSpecError> {
        let Monitor::BlkTrace { drive } = *m else { return Ok(()) };
        let t = taps.get(drive).ok_or_else(|| no_drive(&format!("blk-trace,drive={drive}"), drive, taps.len()))?;
        let tr = Arc::new(BlkTrace { drive, counts: Default::default() });
        t.attach(tr.clone());
        self.traces.lock().unwrap_or_else(|e| e.into_inner()).push(tr);
        Ok(())
    }

    /// Attaches a fault injector.
    pub fn attach_fault(
        &self,
        f: &FaultSpec,
        taps: &[Arc<strata_devices::virtio::tap::Taps>],
    ) -> Result<(), MonitorSpecError> {
        let t = taps.get(f.drive).ok_or_else(|| no_drive("blk", f.drive, taps.len()))?;
        if f.rate.is_some() {
            eprintln!(
                "strata: fault: virtio-blk{} requests fail at rate {} (seed {})",
                f.drive,
                f.rate.unwrap_or(0.0),
                f.seed
            );
        }
        let fi = Arc::new(BlkFault {
            spec: f.clone(),
            rng: Mutex::new(f.seed.max(1)),
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        });
        t.attach(fi.clone());
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).push(fi);
        Ok(())
    }

    /// Flips a bit of guest memory `after` from now, on a thread of its
    /// own; an address outside RAM is refused now.
    pub fn schedule_flip(&self, addr: u64, bit: u8, after: Duration) -> Result<(), MonitorSpecError> {
        let ram = self.guest.ram.clone();
        if !ram.contains(addr, 1) {
            return Err(MonitorSpecError {
                spec: format!("mem,addr={addr:#x}"),
                why: format!("not in RAM ({:#x}..{:#x})", ram.base(), ram.end()),
            });
        }
        let flips = self.flips.clone();
        std::thread::Builder::new()
            .name("strata-fault".into())
            .spawn(move || {
                std::thread::sleep(after);
                if let Ok((old, new)) = flip_bit(&ram, addr, bit) {
                    eprintln!("strata: fault: bit {bit} of guest-physical {addr:#x} flipped: {old:#04x} -> {new:#04x}");
                    flips.lock().unwrap_or_else(|e| e.into_inner()).push(json!({
                        "monitor": "fault", "addr": format!("{addr:#x}"), "bit": bit, "old": old, "new": new
                    }));
                }
            })
            .map(|_| ())
            .map_err(|e| MonitorSpecError { spec: format!("mem,addr={addr:#x}"), why: e.to_string() })
    }

    /// Stops the monitor thread (after its current round).
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some((spec, i)) = self.integrity.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let st = &i.stats;
            let sum = |m: &std::collections::BTreeMap<&str, u64>| m.values().sum::<u64>();
            eprintln!(
                "strata: monitor: integrity every {} ms, retry {}: {} rounds, {} retries {:?}, {} given up, {} violations",
                spec.interval.as_millis(),
                if spec.retry { "on" } else { "off" },
                st.rounds,
                sum(&st.retries),
                st.retries,
                sum(&st.gave_up),
                st.violations
            );
        }
    }
}

impl SideController for Hub {
    fn handle(&self, cmd: &Command) -> Option<Result<Reply, ApiError>> {
        match cmd {
            Command::Inspect(what) => Some(self.inspect(*what).map(Reply::Json)),
            Command::Monitor => Some(Ok(Reply::Json(self.state()))),
            Command::ReadKernelMemory { addr, len } => Some(self.read_virtual(*addr, *len)),
            Command::Layout => Some(
                self.kernel()
                    .map(|k| Reply::Json(serde_json::to_value(&k.layout).expect("plain data")))
                    .map_err(|e| ApiError::conflict(format!("the guest kernel cannot be read yet: {e}"))),
            ),
            _ => None,
        }
    }
}

fn no_drive(spec: &str, drive: usize, have: usize) -> MonitorSpecError {
    MonitorSpecError { spec: spec.into(), why: format!("no virtio-blk drive {drive} (the machine has {have})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sector_fault_fails_exactly_the_requests_that_cover_it() {
        let f = BlkFault {
            spec: FaultSpec::parse("blk,sector=2048").unwrap(),
            rng: Mutex::new(1),
            seen: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        };
        let rq = |kind, sector, bytes| f.request(&BlockRequest { kind, sector, bytes });
        assert_eq!(rq(block::req::IN, 2048, 512), Some(block::S_IOERR));
        assert_eq!(rq(block::req::IN, 2041, 4096), Some(block::S_IOERR));
        assert_eq!(rq(block::req::IN, 2040, 4096), None, "2040..2048 stops short of 2048");
        assert_eq!(rq(block::req::OUT, 2047, 512), None);
        assert_eq!(rq(block::req::IN, 2049, 4096), None);
        assert_eq!(rq(block::req::FLUSH, 2048, 0), None);
        assert_eq!((f.seen.load(Ordering::Relaxed), f.injected.load(Ordering::Relaxed)), (6, 2));
    }

    #[test]
    fn a_bit_flip_flips_one_bit_and_refuses_addresses_outside_ram() {
        let ram = GuestRam::new(0x8000_0000, 1 << 16).unwrap();
        ram.write_bytes(0x8000_0010, &[0xf0]).unwrap();
        assert_eq!(flip_bit(&ram, 0x8000_0010, 0).unwrap(), (0xf0, 0xf1));
        assert_eq!(flip_bit(&ram, 0x8000_0010, 7).unwrap(), (0xf1, 0x71));
        assert!(flip_bit(&ram, 0x9000_0000, 0).is_err());
        assert_eq!(
            Fault::parse("mem,addr=0x80001000,bit=3,after=2s").unwrap(),
            Fault::Mem { addr: 0x8000_1000, bit: 3, after: Duration::from_secs(2) }
        );
        for bad in ["mem", "mem,addr=1", "mem,addr=1,bit=8", "mem,addr=x,bit=1", "mem,addr=1,bit=1,after=soon"] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(Fault::parse("blk,sector=1"), Ok(Fault::Blk(_))));
    }

    #[test]
    fn specs() {
        let m = MonitorSpec::parse("integrity").unwrap();
        assert_eq!((m.interval, m.retry, m.pause), (Duration::from_millis(100), true, false));
        let m = MonitorSpec::parse("integrity,interval=10ms,retry=off,pause=on").unwrap();
        assert_eq!((m.interval, m.retry, m.pause), (Duration::from_millis(10), false, true));
        assert_eq!(MonitorSpec::parse("integrity,interval=2s").unwrap().interval, Duration::from_secs(2));
        assert_eq!(Monitor::parse("blk-trace,drive=1").unwrap(), Monitor::BlkTrace { drive: 1 });
        let f = FaultSpec::parse("blk,sector=2048").unwrap();
        assert_eq!((f.drive, f.sector, f.rate), (0, Some(2048), None));
        for bad in ["blk", "blk,sector=1,rate=0.5", "blk,rate=2", "net,sector=1", "blk,sector=x"] {
            assert!(FaultSpec::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "keylogger", "integrity,interval=0ms", "integrity,retry=maybe", "integrity,x=1", "integrity,y"]
        {
            assert!(MonitorSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

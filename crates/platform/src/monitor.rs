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
use strata_introspect::btf::Btf;
use strata_introspect::guest::{GuestMemory, PhysError};
use strata_introspect::integrity::{Integrity, Violation};
use strata_introspect::kernel::{btf_from_guest, ImagePlace, Kernel, KernelError};
use strata_introspect::symbols::SymbolMap;
use strata_memory::{GuestRam, PAGE_SHIFT};

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
    syms_text: String,
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
        system_map: &std::path::Path,
        btf: Option<&std::path::Path>,
    ) -> Result<Arc<Hub>, MonitorError> {
        let path = system_map.display().to_string();
        let syms_text =
            std::fs::read_to_string(system_map).map_err(|source| MonitorError::Map { path: path.clone(), source })?;
        // Checked now, so a stub map is one clear error at start.
        let syms =
            SymbolMap::parse(&syms_text).map_err(|source| MonitorError::Symbols { path: path.clone(), source })?;
        for s in ["init_task", "swapper_pg_dir", "satp_mode", "_start", "_end", "sys_call_table"] {
            syms.get(s).map_err(|source| MonitorError::Symbols { path: path.clone(), source })?;
        }
        let btf_file = btf
            .map(|p| std::fs::read(p).map_err(|source| MonitorError::Btf { path: p.display().to_string(), source }))
            .transpose()?;
        Ok(Arc::new(Hub {
            guest: Arc::new(RamGuest { ram, hooks: Arc::new(Hooks::new(harts)) }),
            syms_text,
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
        let syms = SymbolMap::parse(&self.syms_text)?;
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
        json!({ "monitors": monitors, "stats": stats, "violations": ev })
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

    /// Stops the monitor thread (after its current round).
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let m = MonitorSpec::parse("integrity").unwrap();
        assert_eq!((m.interval, m.retry, m.pause), (Duration::from_millis(100), true, false));
        let m = MonitorSpec::parse("integrity,interval=10ms,retry=off,pause=on").unwrap();
        assert_eq!((m.interval, m.retry, m.pause), (Duration::from_millis(10), false, true));
        assert_eq!(MonitorSpec::parse("integrity,interval=2s").unwrap().interval, Duration::from_secs(2));
        for bad in ["", "keylogger", "integrity,interval=0ms", "integrity,retry=maybe", "integrity,x=1", "integrity,y"]
        {
            assert!(MonitorSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

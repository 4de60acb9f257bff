//! Snapshots at a round boundary (issue 15; docs/snapshot.md).
//!
//! A round boundary is the quiescent point: no hart is inside an
//! instruction, every device has seen the time, no virtio request is in
//! flight (notifies are served synchronously), no console byte is half
//! delivered (it is in `held`). So a snapshot is taken at the start of a
//! round, before the stop check's sibling steps, and consists of:
//!
//! | section | what | who |
//! | --- | --- | --- |
//! | `CONF` | the machine to build (RAM, harts, ISA, clock, devices, disk images with size and mtime) | the workload ([`WorkloadSave::config`]) |
//! | `STAT` | `RunnerState`: guest time (raw count, guest offset, tick remainder), clock mode, the held console byte, the poll phase, every hart's [`HartState`], and the workload's own device state | the runner and the workload |
//! | `RAM\0` | guest RAM, sparse and compressed | the runner |
//! | `META` | `console_offset=N`: bytes the guest printed before the snapshot | the runner |
//!
//! Requests come from `Ctrl-A s` on the console, SIGUSR1, or the
//! deterministic knob [`SnapshotPlan::at_insns`] (the first round boundary
//! at which the harts have retired that many instructions together; under
//! `--clock virtual` the same point in every run). They are looked at at
//! the start of a round. Hart threads (`--threads` above 1) have no round
//! boundary of their own: a request is then refused with a message.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_devices::virtio::mmio::VirtioMmioState;
use strata_hart::HartState;
use strata_snapshot::{tag, Snapshot, SnapshotError, PAGE};

use super::{ClockMode, RunEnd, Runner, Workload};
use crate::error::Error;

/// Where and when to take snapshots.
#[derive(Clone, Debug, Default)]
pub struct SnapshotPlan {
    /// The file a snapshot goes to (replaced atomically). `None`: requests
    /// are refused with a message.
    pub path: Option<PathBuf>,
    /// Take one at the first round boundary where the harts' retired
    /// instructions add up to this many (a testing aid).
    pub at_insns: Option<u64>,
    /// End the run after the first snapshot (status 0, as `Ctrl-A x`).
    pub stop_after: bool,
}

/// What the runner keeps for snapshots.
#[derive(Default)]
pub(super) struct SnapshotControl {
    /// Set by `Ctrl-A s` and SIGUSR1.
    pub(super) request: Arc<AtomicBool>,
    plan: SnapshotPlan,
    at_done: bool,
}

/// What a workload adds to a snapshot.
pub struct WorkloadSave {
    /// The `CONF` section: what restore builds.
    pub config: Vec<u8>,
    /// The workload's device state (inside `STAT`).
    pub state: Vec<u8>,
    /// Bytes the guest has printed on its console so far.
    pub console_bytes: u64,
}

/// The `STAT` section.
#[derive(Serialize, Deserialize)]
pub(crate) struct RunnerState {
    clock: String,
    raw: u64,
    offset: u64,
    tick_rem: u64,
    held: Option<u8>,
    poll_turn: u32,
    harts: Vec<HartState>,
    virtio: Vec<VirtioMmioState>,
    work: Vec<u8>,
}

/// What a snapshot taken holds.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub ram: strata_snapshot::RamStats,
    pub console_offset: u64,
}

impl<W: Workload> Runner<W> {
    /// Sets where and when snapshots are taken.
    pub fn set_snapshot_plan(&mut self, plan: SnapshotPlan) {
        self.snap.plan = plan;
    }

    /// Makes SIGUSR1 ask for a snapshot at the next round boundary.
    pub fn install_snapshot_signal(&self) -> std::io::Result<()> {
        use signal_hook::{consts::SIGUSR1, flag, low_level::pipe};
        flag::register(SIGUSR1, self.snap.request.clone())?;
        pipe::register(SIGUSR1, self.waker.try_clone_stream()?)?;
        Ok(())
    }

    /// Asks for a snapshot at the next round boundary (`Ctrl-A s`).
    pub(super) fn request_snapshot(&self) {
        self.snap.request.store(true, Ordering::SeqCst);
    }

    /// Hart threads have no round boundary for all harts at once: a request
    /// (SIGUSR1, or `Ctrl-A s` through [`request_snapshot`](Self::request_snapshot))
    /// is refused with a message. Called by the service loop.
    pub(super) fn refuse_parallel_snapshot(&self) {
        if self.snap.request.swap(false, Ordering::SeqCst) {
            eprintln!("\r\nstrata: snapshots need the harts on one thread (--threads 1); none taken\r");
        }
    }

    /// Step 0 of a round: takes a snapshot if one is due; `Some` ends the
    /// run (`stop_after`).
    pub(super) fn snapshot_point(&mut self) -> Option<RunEnd> {
        let mut due = self.snap.request.swap(false, Ordering::SeqCst);
        if let (Some(n), false) = (self.snap.plan.at_insns, self.snap.at_done) {
            if self.harts.iter().map(|h| h.instret).sum::<u64>() >= n {
                self.snap.at_done = true;
                due = true;
            }
        }
        if !due {
            return None;
        }
        let t0 = std::time::Instant::now();
        match self.save_snapshot() {
            Ok(i) => eprintln!(
                "\r\nstrata: snapshot {}: {} bytes, RAM {} pages ({} zero), console offset {}, saved in {:.3} s\r",
                i.path.display(),
                i.bytes,
                i.ram.pages,
                i.ram.zero_pages,
                i.console_offset,
                t0.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("\r\nstrata: no snapshot taken: {e}\r");
                return None;
            }
        }
        self.snap.plan.stop_after.then_some(RunEnd::Quit)
    }

    /// Writes a snapshot of the machine as it is now (between rounds) to
    /// the plan's file.
    pub fn save_snapshot(&mut self) -> Result<SnapshotInfo, Error> {
        let refused = |why: String| Error::SnapshotRefused(why);
        // What the guest printed before this point is out before the
        // snapshot's report.
        self.work.flush_consoles(false);
        // First whether this machine can be saved at all, then where to.
        let ws = self.work.save().map_err(refused)?;
        let path = self.snap.plan.path.clone().ok_or(Error::NoSnapshotFile)?;
        let virtio = self.virtio.iter().map(|d| super::lock(d).save()).collect::<Result<_, _>>().map_err(refused)?;
        let state = RunnerState {
            clock: self.clock.name().into(),
            raw: self.time.raw(),
            offset: self.time.offset(),
            tick_rem: self.tick_rem,
            held: self.held,
            poll_turn: self.poll_turn,
            harts: self.harts.iter().map(|h| h.save()).collect(),
            virtio,
            work: ws.state,
        };
        let ram = self.ram.clone();
        let (bytes, stats) = strata_snapshot::write_atomic(&path, |w| {
            w.section(tag::CONFIG, &ws.config)?;
            w.section(tag::STATE, &strata_snapshot::encode(&state))?;
            w.section(tag::META, format!("console_offset={}\n", ws.console_bytes).as_bytes())?;
            let mut buf = vec![0u8; strata_snapshot::RECORD_PAGES * PAGE];
            let mut at = 0u64;
            while at < ram.size() {
                let n = (ram.size() - at).min(buf.len() as u64) as usize;
                ram.read_bytes(ram.base() + at, &mut buf[..n])
                    .map_err(|_| SnapshotError::Malformed("RAM read out of range".into()))?;
                w.ram(at / PAGE as u64, &buf[..n])?;
                at += n as u64;
            }
            Ok(())
        })
        .map_err(|source| Error::Snapshot { path: path.clone(), source })?;
        Ok(SnapshotInfo { path, bytes, ram: stats, console_offset: ws.console_bytes })
    }

    /// Puts the state of snapshot `snap` (read from `path`) into this
    /// runner, whose workload was built from the snapshot's `CONF`
    /// section with zeroed RAM.
    pub fn restore_snapshot(&mut self, path: &std::path::Path, snap: &Snapshot<'_>) -> Result<(), Error> {
        let bad = |why: String| Error::SnapshotState { path: path.to_path_buf(), why };
        let wrap = |source| Error::Snapshot { path: path.to_path_buf(), source };
        let st: RunnerState =
            strata_snapshot::decode("machine state", snap.section(tag::STATE, "machine state").map_err(wrap)?)
                .map_err(wrap)?;
        if st.clock != self.clock.name() {
            return Err(bad(format!("clock {} saved, the machine runs {}", st.clock, self.clock.name())));
        }
        if st.harts.len() != self.harts.len() {
            return Err(bad(format!("{} harts saved, the machine has {}", st.harts.len(), self.harts.len())));
        }
        let ram = self.ram.clone();
        let pages = ram.size() / PAGE as u64;
        let mut oob = false;
        snap.ram(pages, |p, data| {
            oob |= ram.write_bytes(ram.base() + p * PAGE as u64, data).is_err();
        })
        .map_err(wrap)?;
        if oob {
            return Err(bad("RAM page outside the machine".into()));
        }
        // Time before the devices: the CLINT's lines follow it.
        self.time.set_raw(st.raw);
        self.time.set_offset(st.offset);
        self.tick_rem = st.tick_rem;
        self.held = st.held;
        self.poll_turn = st.poll_turn;
        for (h, s) in self.harts.iter_mut().zip(&st.harts) {
            h.restore(s).map_err(bad)?;
        }
        if st.virtio.len() != self.virtio.len() {
            return Err(bad(format!(
                "{} virtio devices saved, the machine has {}",
                st.virtio.len(),
                self.virtio.len()
            )));
        }
        for (d, s) in self.virtio.iter().zip(&st.virtio) {
            super::lock(d).restore(s).map_err(bad)?;
        }
        self.work.restore(&st.work).map_err(bad)?;
        if self.clock != ClockMode::Host {
            debug_assert!(self.tick_rem < super::INSNS_PER_TICK);
        }
        Ok(())
    }
}

//! The control API (`--api-sock`, crate `strata-api`) on the run loop.
//!
//! The API's handler threads queue [`Command`]s and wake the loop; the
//! loop answers them at a round boundary — step 1a of a round, right after
//! the stop check, when no hart is inside an instruction — through this
//! module's [`Controller`] implementation. While nothing is
//! queued this costs one atomic load per round ([`Inbox::pending`]).
//!
//! | state | a round does |
//! | --- | --- |
//! | running | answers queued commands, then runs as usual |
//! | paused | answers queued commands, gives console input to the UART (`Ctrl-A x` quits), then sleeps on the wake-up socket only (a request, a signal or console input wakes it; virtio host descriptors are not watched: the devices are not polled while paused) |
//! | stop asked | ends the run as `Ctrl-A x` does ([`RunEnd::Quit`]: disks synced, sockets removed, status 0) |
//!
//! | command | running | paused |
//! | --- | --- | --- |
//! | pause | → paused | 409 |
//! | resume | 409 | → running |
//! | stop | → stop asked | → stop asked |
//! | state, memory, metrics, VMs | answered | answered |
//!
//! Guest time while paused: the `virtual` and `paced` clocks stand still
//! (no instruction runs); the `host` clock follows the host's, so a guest
//! sees the pause as time that passed (as after a host suspend).
//!
//! Memory goes through the same bounds-checked paths as everything else:
//! the bare board's RAM ([`GuestRam::read_bytes`](strata_memory::GuestRam::read_bytes),
//! whose writes keep decoded code coherent), and under the hypervisor
//! `Hypervisor::host_read`/`host_write`, which refuse a protected VM's
//! memory (403 here, before they are asked).

use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use strata_api::{hex_encode, ApiError, ApiServer, Command, Controller, Inbox, Reply};

use super::stats::{host_rss_bytes, DeviceSnapshot, HartSnapshot, StatsSnapshot};
use super::{lock, RunEnd, Runner, Workload};
use crate::error::Error;

/// A guest-memory access the API asks a workload for.
pub enum MemAccess<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
}

/// The run loop's API state.
#[derive(Default)]
pub(super) struct ApiState {
    pub inbox: Option<Inbox>,
    /// Monitors' hooks (crate::monitor): the harts' satp/stvec published
    /// every round, and their pause requests. None: no monitor, one test.
    pub monitor: Option<Arc<crate::monitor::Hooks>>,
    pub paused: bool,
    pub stop: bool,
}

impl<W: Workload> Runner<W> {
    /// Serves the control API on a new socket at `path` (see
    /// `strata_api::ApiServer::start` for how an existing path is treated).
    /// Dropping the server closes it and removes the socket file.
    pub fn serve_api(&mut self, path: &Path) -> Result<ApiServer, Error> {
        let waker = self.waker.clone();
        let (server, inbox) = ApiServer::start(path, Box::new(move || waker.wake()))?;
        self.api.inbox = Some(inbox);
        Ok(server)
    }

    /// Attaches monitors' hooks: from the next round on, the loop
    /// publishes every hart's `satp` and `stvec` at each round boundary
    /// and pauses when a monitor asks (docs/monitor.md).
    pub fn attach_monitor(&mut self, hooks: Arc<crate::monitor::Hooks>) {
        self.api.monitor = Some(hooks);
    }

    /// Is the machine paused by the API?
    pub fn paused(&self) -> bool {
        self.api.paused
    }

    /// Did the API stop the run?
    pub fn stopped_by_api(&self) -> bool {
        self.api.stop
    }

    /// Step 0 of a round: answers queued commands; then, while paused,
    /// waits. `Some(what the round returns)` when the round ends here:
    /// `Some(Some(Quit))` when the API stopped the run, `Some(None)` after
    /// a paused wait.
    #[inline]
    pub(super) fn api_round(&mut self) -> Option<Option<RunEnd>> {
        if let Some(m) = &self.api.monitor {
            for (i, h) in self.harts.iter().enumerate() {
                m.publish(i, h.csr.satp, h.csr.stvec);
            }
            if m.pause.swap(false, std::sync::atomic::Ordering::SeqCst) && !self.api.paused {
                eprintln!("strata: monitor: the machine is paused (resume through the API)");
                self.api.paused = true;
                self.work.flush_consoles(false);
            }
        }
        if self.api.inbox.as_ref().is_some_and(Inbox::pending) {
            let inbox = self.api.inbox.take().expect("checked");
            inbox.serve(self);
            self.api.inbox = Some(inbox);
        }
        if self.api.stop {
            return Some(Some(RunEnd::Quit));
        }
        if self.api.paused {
            // Console input still reaches the UART (no hart reads it until
            // resume), so `Ctrl-A x` quits a paused machine too.
            if let Some(end) = self.pump_input() {
                return Some(Some(end));
            }
            self.paused_wait();
            return Some(None);
        }
        None
    }

    /// Sleeps until the wake-up socket is written to (a request, a signal,
    /// console input).
    fn paused_wait(&mut self) {
        let mut fd = libc::pollfd { fd: self.wake_rx.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the duration of the call; the
        // descriptor is the runner's own and stays open.
        unsafe {
            libc::poll(&mut fd, 1, -1);
        }
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Host time the machine has run: so far, or the whole run once it
    /// has ended.
    fn wall(&self) -> std::time::Duration {
        match self.started {
            Some(s) if self.elapsed.is_zero() => s.elapsed(),
            _ => self.elapsed,
        }
    }

    /// Every counter `--stats` prints, as data.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let secs = self.wall().as_secs_f64();
        let instructions: u64 = self.harts.iter().map(|h| h.instret).sum();
        StatsSnapshot {
            wall_seconds: secs,
            instructions,
            mips: instructions as f64 / secs.max(1e-9) / 1e6,
            guest_seconds: self.time.raw() as f64 / strata_devices::board::TIMEBASE_HZ as f64,
            mtime: self.time.now(),
            clock: self.clock.name(),
            rounds: self.rounds,
            idle_wait_seconds: self.idle_wait.as_secs_f64(),
            host_rss_bytes: host_rss_bytes(),
            harts: self.harts.iter().map(HartSnapshot::of).collect(),
            hypervisor: self.work.hyp_stats(),
            devices: self.virtio.iter().map(|d| DeviceSnapshot::of(&lock(d))).collect(),
        }
    }

    /// The `--stats` report as JSON (`--stats-json`).
    pub fn stats_json(&self) -> String {
        serde_json::to_string_pretty(&self.stats_snapshot()).expect("the snapshot is plain data") + "\n"
    }

    fn memory(&mut self, vm: Option<String>, addr: u64, access: MemAccess<'_>) -> Result<(), ApiError> {
        if let Some(vm) = vm {
            return self.work.vm_memory(&vm, addr, access);
        }
        if let Some(why) = self.work.machine_memory_closed() {
            return Err(ApiError::forbidden(why));
        }
        let len = match &access {
            MemAccess::Read(b) => b.len(),
            MemAccess::Write(b) => b.len(),
        };
        let r = match access {
            MemAccess::Read(buf) => self.ram.read_bytes(addr, buf),
            MemAccess::Write(data) => self.ram.write_bytes(addr, data),
        };
        r.map_err(|_| {
            ApiError::bad_request(format!(
                "{addr:#x}+{len:#x} is not in RAM ({:#x}..{:#x})",
                self.ram.base(),
                self.ram.end()
            ))
        })
    }
}

impl<W: Workload> Controller for Runner<W> {
    fn handle(&mut self, cmd: Command) -> Result<Reply, ApiError> {
        match cmd {
            Command::Machine => {
                let instructions: u64 = self.harts.iter().map(|h| h.instret).sum();
                Ok(Reply::Json(json!({
                    "state": if self.api.paused { "paused" } else { "running" },
                    "harts": self.harts.len(),
                    "threads": self.threads(),
                    "ram_base": format!("{:#x}", self.ram.base()),
                    "ram_bytes": self.ram.size(),
                    "clock": self.clock.name(),
                    "instructions": instructions,
                    "rounds": self.rounds,
                    "guest_seconds": self.time.raw() as f64 / strata_devices::board::TIMEBASE_HZ as f64,
                    "config": self.work.describe(),
                })))
            }
            Command::Pause if self.api.paused => Err(ApiError::conflict("the machine is paused already")),
            Command::Pause => {
                self.api.paused = true;
                self.work.flush_consoles(false);
                Ok(Reply::Done)
            }
            Command::Resume if !self.api.paused => Err(ApiError::conflict("the machine is running, not paused")),
            Command::Resume => {
                self.api.paused = false;
                Ok(Reply::Done)
            }
            Command::Stop => {
                self.api.stop = true;
                Ok(Reply::Done)
            }
            Command::ReadMemory { vm, addr, len } => {
                let mut buf = vec![0; len as usize];
                self.memory(vm, addr, MemAccess::Read(&mut buf))?;
                Ok(Reply::Json(json!({ "addr": format!("{addr:#x}"), "len": len, "data": hex_encode(&buf) })))
            }
            Command::WriteMemory { vm, addr, data } => {
                self.memory(vm, addr, MemAccess::Write(&data))?;
                Ok(Reply::Done)
            }
            Command::Metrics => Ok(Reply::Metrics(self.stats_snapshot().prometheus(self.api.paused))),
            Command::Vms => {
                let hyp = self.work.hyp_stats().ok_or_else(no_vms)?;
                Ok(Reply::Json(serde_json::to_value(hyp.vms).expect("plain data")))
            }
            Command::CreateVm(spec) => {
                let vm = self.work.create_vm(spec)?;
                Ok(Reply::Created(serde_json::to_value(vm).expect("plain data")))
            }
            Command::DeleteVm(name) => self.work.delete_vm(&name).map(|_| Reply::Done),
            Command::Inspect(_) | Command::Monitor | Command::ReadKernelMemory { .. } | Command::Layout => Err(
                ApiError::not_found("no monitors on this machine: give strata machine --system-map (docs/monitor.md)"),
            ),
            Command::Vm(name) => {
                let hyp = self.work.hyp_stats().ok_or_else(no_vms)?;
                let vm = hyp.vms.into_iter().find(|v| v.name == name).ok_or_else(|| no_vm(&name))?;
                Ok(Reply::Json(serde_json::to_value(vm).expect("plain data")))
            }
        }
    }
}

fn no_vms() -> ApiError {
    ApiError::not_found("strata machine has no VMs: /vms is for strata run")
}

/// 404 for a VM name nobody has.
pub fn no_vm(name: &str) -> ApiError {
    ApiError::not_found(format!("no VM named {name:?}"))
}

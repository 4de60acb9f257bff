//! The bare board under gdb (`strata machine --gdb`): the board as a
//! [`strata_gdb::DebugMachine`], and the run loop driven by the stub.
//!
//! | state | what runs | how it ends |
//! | --- | --- | --- |
//! | waiting for gdb ([`serve_board`]) | nothing: the harts wait before their first instruction, as QEMU's `-s -S` | gdb connects |
//! | stopped (gdb has the prompt) | nothing; host time (with `--clock host`) goes on | gdb's `c` or `s` |
//! | continue | rounds of the [`Runner`](crate::Runner) on one thread; each hart through [`Hart::run_until`] (the pc checked against the breakpoints before each instruction of a page that holds one; other pages at full speed) | a hart reaches a breakpoint (the round ends there; later harts do not run in it), gdb sends Ctrl-C (looked at every [`INTERRUPT_ROUNDS`] rounds; in an idle wait, at the next timer), or the machine ends |
//! | continue with watchpoints | as continue, but every instruction of every hart one at a time ([`Hart::run_watched`]), its data access compared with the watched ranges | also after an instruction that accessed a watched byte (the access has happened; the round ends there) |
//! | step | one round in which only the stepped hart runs, one instruction ([`Hart::step_one`]: no interrupt taken first) | after it |
//! | detached | the machine runs on as without `--gdb` (hart threads too) | as usual |
//!
//! Invariants: with no debugger, [`BareBoard`](crate::machine::BareBoard)'s
//! `debug` is `None` and a slice costs one branch more than before (per
//! round, not per instruction); breakpoints never change guest memory, so
//! the decoded-code cache and the JIT stay valid; memory is read and
//! written only where it is RAM (never a device register, whose read may
//! have effects), by the hart's translation without side effects
//! ([`Hart::debug_translate`]).

use std::collections::BTreeSet;

use strata_gdb::{DebugMachine, Ended, GdbAddr, Listener, Reg, Resume, Stop, Watch};
use strata_hart::{DebugHit, Hart, RunExit};

use crate::error::Error;
use crate::machine::{BoardBus, ExitReason, Machine};
use crate::runner::{RunEnd, Slice};

/// How often (in rounds) a running machine looks for Ctrl-C from gdb.
pub const INTERRUPT_ROUNDS: u64 = 8;

/// What the board's slices do under gdb.
#[derive(Default)]
pub(crate) struct DebugRun {
    breaks: BTreeSet<u64>,
    /// Watchpoints: while there are any, every instruction runs one at a
    /// time (gdb's alternative, software watchpoints, single-steps over
    /// the wire and compares values: thousands of times slower).
    watches: Vec<Watch>,
    /// Step this hart (one round).
    step: Option<usize>,
    /// Why the last slice stopped the machine.
    stopped: Option<Stop>,
}

impl DebugRun {
    /// One slice of the board under gdb (see the module documentation).
    pub(crate) fn run_slice(
        &mut self,
        harts: &mut [Hart],
        bus: &mut BoardBus,
        stuck: &mut Option<strata_hart::NoProgress>,
        budget: u64,
    ) -> Slice {
        let mut used = vec![0; harts.len()];
        if let Some(h) = self.step.take() {
            if let Some(hart) = harts.get_mut(h) {
                used[h] = hart.step_one(bus) as u64;
                *stuck = stuck.or(hart.no_progress().copied());
            }
            self.stopped = Some(Stop::Stepped { hart: h });
            return Slice { used, idle: false };
        }
        let mut all_idle = true;
        for (i, h) in harts.iter_mut().enumerate() {
            let (n, exit, hit) = if self.watches.is_empty() {
                let (n, exit, hit) = h.run_until(bus, budget, &self.breaks);
                (n, exit, hit.then_some(DebugHit::Break))
            } else {
                let watches = &self.watches;
                h.run_watched(bus, budget, &self.breaks, &mut |t| {
                    watches.iter().any(|w| w.hit(t.va, t.len, t.read, t.write))
                })
            };
            used[i] = n;
            *stuck = stuck.or(h.no_progress().copied());
            match hit {
                Some(DebugHit::Break) => {
                    self.stopped = Some(Stop::Breakpoint { hart: i });
                    return Slice { used, idle: false };
                }
                Some(DebugHit::Watch(t)) => {
                    // The watch the hart's check accepted (the first that
                    // the access hits, in gdb's order).
                    if let Some(&watch) = self.watches.iter().find(|w| w.hit(t.va, t.len, t.read, t.write)) {
                        self.stopped = Some(Stop::Watchpoint { hart: i, watch });
                        return Slice { used, idle: false };
                    }
                }
                None => {}
            }
            if exit == RunExit::Budget {
                all_idle = false;
            }
        }
        let idle = all_idle && !harts.iter().any(|h| h.mip() & h.csr.mie != 0);
        Slice { used, idle }
    }
}

/// The board as gdb sees it, and how its run ended if it did.
pub struct BoardDebug<'a> {
    pub m: &'a mut Machine,
    /// Set when the machine ended while gdb was attached.
    pub outcome: Option<ExitReason>,
}

impl BoardDebug<'_> {
    fn hart(&mut self, h: usize) -> Option<&mut Hart> {
        self.m.harts.get_mut(h)
    }

    /// The RAM address of every page `va..va+len` touches, as hart `h`
    /// translates them, up to the first that is not RAM: (va, pa, len).
    fn pieces(&self, h: usize, va: u64, len: usize) -> Vec<(usize, u64, usize)> {
        let Some(hart) = self.m.harts.get(h) else { return Vec::new() };
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let a = va.wrapping_add(done as u64);
            let n = ((0x1000 - (a & 0xfff)) as usize).min(len - done);
            match hart.debug_translate(a) {
                Some(pa) if self.m.ram.contains(pa, n as u64) => out.push((done, pa, n)),
                _ => break,
            }
            done += n;
        }
        out
    }
}

impl DebugMachine for BoardDebug<'_> {
    fn harts(&self) -> usize {
        self.m.harts.len()
    }

    fn reg(&mut self, h: usize, reg: Reg) -> Option<u64> {
        let mut bus = self.m.work.bus.clone();
        let hart = self.hart(h)?;
        Some(match reg {
            Reg::X(i) => *hart.x.get(i as usize)?,
            Reg::Pc => hart.pc,
            Reg::F(i) => *hart.f.get(i as usize)?,
            Reg::Csr(n) => hart.debug_csr_read(&mut bus, n)?,
            Reg::Priv => hart.prv as u64,
        })
    }

    fn set_reg(&mut self, h: usize, reg: Reg, value: u64) -> bool {
        let mut bus = self.m.work.bus.clone();
        let Some(hart) = self.hart(h) else { return false };
        match reg {
            // x0 is zero whatever is written.
            Reg::X(0) => true,
            Reg::X(i) if i < 32 => {
                hart.x[i as usize] = value;
                true
            }
            Reg::F(i) if i < 32 => {
                hart.f[i as usize] = value;
                true
            }
            Reg::Pc => {
                hart.pc = value;
                true
            }
            Reg::Csr(n) => hart.debug_csr_write(&mut bus, n, value),
            _ => false,
        }
    }

    fn read_memory(&mut self, h: usize, va: u64, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for (off, pa, len) in self.pieces(h, va, buf.len()) {
            if self.m.ram.read_bytes(pa, &mut buf[off..off + len]).is_err() {
                break;
            }
            n = off + len;
        }
        n
    }

    fn write_memory(&mut self, h: usize, va: u64, data: &[u8]) -> bool {
        let pieces = self.pieces(h, va, data.len());
        if pieces.iter().map(|p| p.2).sum::<usize>() != data.len() {
            return false;
        }
        // `write_bytes` bumps the code generation of pages that hold
        // decoded code: the harts decode the new bytes.
        pieces.into_iter().all(|(off, pa, len)| self.m.ram.write_bytes(pa, &data[off..off + len]).is_ok())
    }

    fn resume(&mut self, how: Resume<'_>, interrupted: &mut dyn FnMut() -> bool) -> Stop {
        if let Some(o) = self.outcome {
            return Stop::Ended(o.status() as u8);
        }
        let mut d = DebugRun::default();
        match how {
            Resume::Continue { breaks, watches } => {
                d.breaks = breaks.clone();
                d.watches = watches.to_vec();
            }
            Resume::Step { hart } => d.step = Some(hart),
        }
        self.m.work.debug = Some(d);
        let mut rounds = 0u64;
        let stop = loop {
            if let Some(end) = self.m.round_once() {
                let o = self.m.finish(end);
                self.outcome = Some(o);
                break Stop::Ended(o.status() as u8);
            }
            if let Some(s) = self.m.work.debug.as_mut().and_then(|d| d.stopped.take()) {
                break s;
            }
            rounds += 1;
            if rounds % INTERRUPT_ROUNDS == 0 && interrupted() {
                break Stop::Interrupted;
            }
        };
        self.m.work.debug = None;
        stop
    }
}

/// `strata machine --gdb ADDR`: listens, says so on stderr, waits for gdb
/// before the first instruction, and serves it; after a detach the machine
/// runs on. Returns how the machine ended.
pub fn serve_board(m: &mut Machine, addr: &GdbAddr) -> Result<ExitReason, Error> {
    let listener = Listener::bind(addr)?;
    eprintln!("strata: waiting for gdb on {}", listener.local_addr());
    let conn = listener.accept()?;
    drop(listener);
    let mut d = BoardDebug { m, outcome: None };
    let ended = strata_gdb::serve(&mut d, conn)?;
    let outcome = d.outcome;
    Ok(match (ended, outcome) {
        (_, Some(o)) => o,
        (Ended::Killed, None) => m.finish(RunEnd::Quit),
        (Ended::Detached | Ended::MachineEnded(_), None) => m.run(),
    })
}

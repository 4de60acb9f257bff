//! The platform-level interrupt controller of QEMU's `virt` board at
//! 0x0c00_0000 (`sifive,plic-1.0.0`), with 95 level-triggered sources.
//!
//! Reference: "RISC-V Platform-Level Interrupt Controller Specification"
//! 1.0.0 (riscv-plic-1.0.0): §3 (interrupt sources and gateways), §4
//! (priorities: 0 = never interrupt), §5 (pending bits, read-only), §6
//! (enables), §7 (priority thresholds: only priority > threshold
//! interrupts), §8 (notifications), §9 (claim: highest priority, ties to
//! the lowest ID; clears the pending bit), §10 (completion: ignored when the
//! ID is not enabled for the context), and §2 memory map (priorities at +4
//! per source, pending at +0x1000, enables at +0x2000 + 0x80 per context,
//! threshold at +0x20_0000 + 0x1000 per context, claim/complete 4 bytes
//! above it).
//!
//! Contexts follow QEMU's `virt` numbering: context 2h is hart h in M-mode,
//! 2h+1 is hart h in S-mode. The platform gives one output [`IrqLine`] per
//! context and wires it to MEIP or SEIP of the hart.
//!
//! Gateways (§3): sources are level-triggered. While a source is not in
//! service (claimed and not yet completed), its pending bit follows its wire;
//! a claim clears the pending bit and puts the source in service, so the
//! gateway forwards nothing more until the completion, after which a wire
//! that is still high makes the source pending again. (The spec lets a
//! gateway keep a request pending after its wire drops; following the wire,
//! as QEMU does, spares the guest claims that return nothing.)
//!
//! Locking: the PLIC lives in an `Arc<Mutex<Plic>>` shared by the bus (as a
//! [`SharedMmio`]) and by the source lines ([`source_line`]). A source line
//! takes the PLIC's lock; the PLIC, while locked, only drives its context
//! outputs, which must not take any lock of their own (they are atomics:
//! `HartIrqBit`). Devices may call a source line while holding their own
//! lock, so the order is always device -> PLIC -> (no lock), and the PLIC
//! never calls into a device.
//!
//! Accesses: registers are 32 bits wide (§2). Only naturally aligned 4-byte
//! accesses are honoured; other sizes read 0 and are ignored.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::{IrqLine, MmioDevice};

/// Number of source IDs including the reserved source 0; sources are
/// 1..=`PLIC_NDEV`.
pub const PLIC_NUM_SOURCES: usize = 96;
/// Highest source ID (the device tree's `riscv,ndev`).
pub const PLIC_NDEV: u32 = (PLIC_NUM_SOURCES - 1) as u32;
/// Size of the PLIC window on QEMU's `virt` board (room for 1024 contexts,
/// i.e. 512 harts).
pub const PLIC_MMIO_SIZE: u64 = 0x60_0000;
/// Priority levels are 0..=7 (three bits, as QEMU's `virt` implements).
pub const PLIC_PRIORITY_MASK: u32 = 7;

const PRIORITY_BASE: u64 = 0x0;
const PENDING_BASE: u64 = 0x1000;
const ENABLE_BASE: u64 = 0x2000;
const ENABLE_STRIDE: u64 = 0x80;
const CONTEXT_BASE: u64 = 0x20_0000;
const CONTEXT_STRIDE: u64 = 0x1000;
const WORDS: usize = PLIC_NUM_SOURCES.div_ceil(32);

struct Context {
    enable: [u32; WORDS],
    threshold: u32,
    out: Arc<dyn IrqLine>,
    out_level: bool,
}

pub struct Plic {
    priority: [u32; PLIC_NUM_SOURCES],
    pending: [u32; WORDS],
    /// The wire level of each source, as last driven.
    level: [u32; WORDS],
    /// Sources claimed and not yet completed (the gateway holds them).
    in_service: [u32; WORDS],
    contexts: Vec<Context>,
}

fn bit(words: &[u32; WORDS], src: usize) -> bool {
    words[src / 32] >> (src % 32) & 1 != 0
}

fn set_bit(words: &mut [u32; WORDS], src: usize, v: bool) {
    if v {
        words[src / 32] |= 1 << (src % 32);
    } else {
        words[src / 32] &= !(1 << (src % 32));
    }
}

impl Plic {
    /// A PLIC with one context per entry of `outputs` (context i drives
    /// `outputs[i]`). Everything resets to zero: priorities, enables,
    /// thresholds, pending bits.
    pub fn new(outputs: Vec<Arc<dyn IrqLine>>) -> Self {
        let max_ctx = ((PLIC_MMIO_SIZE - CONTEXT_BASE) / CONTEXT_STRIDE) as usize;
        let contexts = outputs
            .into_iter()
            .take(max_ctx)
            .map(|out| {
                out.set_level(false);
                Context { enable: [0; WORDS], threshold: 0, out, out_level: false }
            })
            .collect();
        Plic {
            priority: [0; PLIC_NUM_SOURCES],
            pending: [0; WORDS],
            level: [0; WORDS],
            in_service: [0; WORDS],
            contexts,
        }
    }

    /// Wraps the PLIC for sharing between the bus and the source lines.
    pub fn shared(outputs: Vec<Arc<dyn IrqLine>>) -> Arc<Mutex<Plic>> {
        Arc::new(Mutex::new(Self::new(outputs)))
    }

    pub fn num_contexts(&self) -> usize {
        self.contexts.len()
    }

    /// Drives the wire of source `src` (1..=95; others are ignored).
    pub fn set_source_level(&mut self, src: u32, level: bool) {
        let s = src as usize;
        if s == 0 || s >= PLIC_NUM_SOURCES {
            return;
        }
        set_bit(&mut self.level, s, level);
        if !bit(&self.in_service, s) {
            set_bit(&mut self.pending, s, level);
        }
        self.update_outputs();
    }

    pub fn is_pending(&self, src: u32) -> bool {
        (src as usize) < PLIC_NUM_SOURCES && bit(&self.pending, src as usize)
    }

    /// The source a claim by `ctx` would return, without claiming (0 when
    /// none): the highest-priority source that is pending, enabled for the
    /// context and above its threshold; ties go to the lowest ID (§9).
    pub fn best(&self, ctx: usize) -> u32 {
        let Some(c) = self.contexts.get(ctx) else {
            return 0;
        };
        let mut best = 0u32;
        let mut best_prio = c.threshold;
        for w in 0..WORDS {
            let mut cand = self.pending[w] & c.enable[w];
            while cand != 0 {
                let s = w * 32 + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                let p = self.priority[s];
                // Strictly greater: ties keep the lower ID already found,
                // and priority must exceed the threshold (§7).
                if p > best_prio {
                    best_prio = p;
                    best = s as u32;
                }
            }
        }
        best
    }

    /// Claim (§9): returns the best source for `ctx` (0 if none), clears its
    /// pending bit and holds it in service until completed.
    pub fn claim(&mut self, ctx: usize) -> u32 {
        let s = self.best(ctx);
        if s != 0 {
            set_bit(&mut self.pending, s as usize, false);
            set_bit(&mut self.in_service, s as usize, true);
            self.update_outputs();
        }
        s
    }

    /// Completion (§10): releases source `src` from service if it is enabled
    /// for `ctx`; a still-asserted wire makes it pending again.
    pub fn complete(&mut self, ctx: usize, src: u32) {
        let s = src as usize;
        let Some(c) = self.contexts.get(ctx) else {
            return;
        };
        if s == 0 || s >= PLIC_NUM_SOURCES || !bit(&c.enable, s) {
            return;
        }
        if bit(&self.in_service, s) {
            set_bit(&mut self.in_service, s, false);
            if bit(&self.level, s) {
                set_bit(&mut self.pending, s, true);
            }
        }
        self.update_outputs();
    }

    fn update_outputs(&mut self) {
        for i in 0..self.contexts.len() {
            let level = self.best(i) != 0;
            let c = &mut self.contexts[i];
            if level != c.out_level {
                c.out_level = level;
                c.out.set_level(level);
            }
        }
    }

    fn read_word(&mut self, off: u64) -> u32 {
        if off < PENDING_BASE {
            let s = ((off - PRIORITY_BASE) / 4) as usize;
            return self.priority.get(s).copied().unwrap_or(0);
        }
        if off < ENABLE_BASE {
            let w = ((off - PENDING_BASE) / 4) as usize;
            return self.pending.get(w).copied().unwrap_or(0);
        }
        if off < CONTEXT_BASE {
            let ctx = ((off - ENABLE_BASE) / ENABLE_STRIDE) as usize;
            let w = ((off - ENABLE_BASE) % ENABLE_STRIDE / 4) as usize;
            return self.contexts.get(ctx).and_then(|c| c.enable.get(w).copied()).unwrap_or(0);
        }
        let ctx = ((off - CONTEXT_BASE) / CONTEXT_STRIDE) as usize;
        match (off - CONTEXT_BASE) % CONTEXT_STRIDE {
            0 => self.contexts.get(ctx).map_or(0, |c| c.threshold),
            4 => self.claim(ctx),
            _ => 0,
        }
    }

    fn write_word(&mut self, off: u64, v: u32) {
        if off < PENDING_BASE {
            let s = ((off - PRIORITY_BASE) / 4) as usize;
            // Source 0 does not exist (§3); its priority stays 0.
            if s != 0 && s < PLIC_NUM_SOURCES {
                self.priority[s] = v & PLIC_PRIORITY_MASK;
            }
        } else if off < ENABLE_BASE {
            // Pending bits are read-only (§5).
        } else if off < CONTEXT_BASE {
            let ctx = ((off - ENABLE_BASE) / ENABLE_STRIDE) as usize;
            let w = ((off - ENABLE_BASE) % ENABLE_STRIDE / 4) as usize;
            if let Some(e) = self.contexts.get_mut(ctx).and_then(|c| c.enable.get_mut(w)) {
                // Source 0's enable bit is hardwired to 0.
                *e = if w == 0 { v & !1 } else { v };
            }
        } else {
            let ctx = ((off - CONTEXT_BASE) / CONTEXT_STRIDE) as usize;
            match (off - CONTEXT_BASE) % CONTEXT_STRIDE {
                0 => {
                    if let Some(c) = self.contexts.get_mut(ctx) {
                        c.threshold = v & PLIC_PRIORITY_MASK;
                    }
                }
                4 => {
                    self.complete(ctx, v);
                    return;
                }
                _ => return,
            }
        }
        self.update_outputs();
    }
}

impl MmioDevice for Plic {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if size != 4 || offset & 3 != 0 || offset >= PLIC_MMIO_SIZE {
            return 0;
        }
        self.read_word(offset) as u64
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if size != 4 || offset & 3 != 0 || offset >= PLIC_MMIO_SIZE {
            return;
        }
        self.write_word(offset, value as u32);
    }
}

/// One PLIC source as an [`IrqLine`] for a device to drive.
pub struct PlicSource {
    plic: Arc<Mutex<Plic>>,
    src: u32,
}

impl IrqLine for PlicSource {
    fn set_level(&self, level: bool) {
        lock(&self.plic).set_source_level(self.src, level);
    }
}

/// The wire of source `src` (1..=95) of a shared PLIC. A line for source 0
/// or an out-of-range source is accepted and does nothing.
pub fn source_line(plic: &Arc<Mutex<Plic>>, src: u32) -> Arc<dyn IrqLine> {
    Arc::new(PlicSource { plic: plic.clone(), src })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock must not take the machine's
    // interrupt controller down with it: the state is still consistent
    // between register accesses.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The PLIC's state in a snapshot (docs/snapshot.md): priorities, the
/// gateway (pending, wire levels, sources in service) and every context's
/// enables and threshold. Output levels follow from these.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlicState {
    pub priority: Vec<u32>,
    pub pending: Vec<u32>,
    pub level: Vec<u32>,
    pub in_service: Vec<u32>,
    /// Per context: enable words, threshold.
    pub contexts: Vec<(Vec<u32>, u32)>,
}

impl Plic {
    pub fn save(&self) -> PlicState {
        PlicState {
            priority: self.priority.to_vec(),
            pending: self.pending.to_vec(),
            level: self.level.to_vec(),
            in_service: self.in_service.to_vec(),
            contexts: self.contexts.iter().map(|c| (c.enable.to_vec(), c.threshold)).collect(),
        }
    }

    /// Restores `s` and drives the context outputs to match.
    pub fn restore(&mut self, s: &PlicState) -> Result<(), String> {
        let words = |v: &Vec<u32>| -> Result<[u32; WORDS], String> {
            v.as_slice().try_into().map_err(|_| "PLIC state: wrong number of source words".to_string())
        };
        if s.contexts.len() != self.contexts.len() {
            return Err(format!("PLIC state for {} contexts, machine has {}", s.contexts.len(), self.contexts.len()));
        }
        self.priority =
            s.priority.as_slice().try_into().map_err(|_| "PLIC state: wrong number of priorities".to_string())?;
        self.pending = words(&s.pending)?;
        self.level = words(&s.level)?;
        self.in_service = words(&s.in_service)?;
        for (c, (en, th)) in self.contexts.iter_mut().zip(&s.contexts) {
            c.enable = words(en)?;
            c.threshold = *th;
        }
        for i in 0..self.contexts.len() {
            let level = self.best(i) != 0;
            let c = &mut self.contexts[i];
            c.out_level = level;
            c.out.set_level(level);
        }
        Ok(())
    }
}

/// A device shared with others (the run loop, interrupt sources, a console
/// thread) and placed on the bus through a mutex: `bus.add(base, size,
/// name, Box::new(SharedMmio(plic.clone())))`. Works for any [`MmioDevice`].
pub struct SharedMmio<T: MmioDevice>(pub Arc<Mutex<T>>);

impl<T: MmioDevice> MmioDevice for SharedMmio<T> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        lock(&self.0).read(offset, size)
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        lock(&self.0).write(offset, size, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Line(AtomicBool);
    impl IrqLine for Line {
        fn set_level(&self, level: bool) {
            self.0.store(level, Ordering::SeqCst);
        }
    }
    impl Line {
        fn get(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    const M0: usize = 0;
    const S0: usize = 1;

    fn prio(s: u32) -> u64 {
        4 * s as u64
    }
    fn enable(ctx: usize) -> u64 {
        0x2000 + 0x80 * ctx as u64
    }
    fn threshold(ctx: usize) -> u64 {
        0x20_0000 + 0x1000 * ctx as u64
    }
    fn claim(ctx: usize) -> u64 {
        threshold(ctx) + 4
    }

    fn plic(contexts: usize) -> (Arc<Mutex<Plic>>, SharedMmio<Plic>, Vec<Arc<Line>>) {
        let outs: Vec<Arc<Line>> = (0..contexts).map(|_| Arc::new(Line::default())).collect();
        let p = Plic::shared(outs.iter().map(|l| l.clone() as Arc<dyn IrqLine>).collect());
        (p.clone(), SharedMmio(p), outs)
    }

    #[test]
    fn registers_read_back_with_masks() {
        let (_, mut m, _) = plic(2);
        m.write(prio(5), 4, 0xffff_ffff);
        assert_eq!(m.read(prio(5), 4), 7);
        m.write(prio(0), 4, 3);
        assert_eq!(m.read(prio(0), 4), 0, "source 0 is reserved");
        m.write(prio(96), 4, 3);
        assert_eq!(m.read(prio(96), 4), 0, "no source 96");
        m.write(enable(S0), 4, 0xffff_ffff);
        assert_eq!(m.read(enable(S0), 4), 0xffff_fffe, "source 0 cannot be enabled");
        m.write(enable(S0) + 8, 4, 0xffff_ffff);
        assert_eq!(m.read(enable(S0) + 8, 4), 0xffff_ffff, "sources 64..=95");
        m.write(enable(S0) + 12, 4, 0xffff_ffff);
        assert_eq!(m.read(enable(S0) + 12, 4), 0, "no sources above 95");
        m.write(threshold(M0), 4, 0x1f);
        assert_eq!(m.read(threshold(M0), 4), 7);
        m.write(0x1000, 4, 0xffff_ffff);
        assert_eq!(m.read(0x1000, 4), 0, "pending is read-only");
    }

    #[test]
    fn claim_complete_with_priorities_and_threshold() {
        let (p, mut m, out) = plic(2);
        let l3 = source_line(&p, 3);
        let l10 = source_line(&p, 10);
        let l40 = source_line(&p, 40);
        m.write(enable(S0), 4, 1 << 3 | 1 << 10);
        m.write(enable(S0) + 4, 4, 1 << (40 - 32));
        m.write(prio(3), 4, 2);
        m.write(prio(10), 4, 5);
        m.write(prio(40), 4, 5);
        l3.set_level(true);
        l10.set_level(true);
        l40.set_level(true);
        assert_eq!(m.read(0x1000, 4), 1 << 3 | 1 << 10);
        assert_eq!(m.read(0x1004, 4), 1 << 8);
        assert!(out[S0].get());
        assert!(!out[M0].get(), "nothing enabled for M-mode");

        // Threshold 5 masks everything (priority must exceed it).
        m.write(threshold(S0), 4, 5);
        assert!(!out[S0].get());
        assert_eq!(m.read(claim(S0), 4), 0);
        m.write(threshold(S0), 4, 1);
        assert!(out[S0].get());

        // Equal priority 5: lowest ID first.
        assert_eq!(m.read(claim(S0), 4), 10);
        assert!(!p.lock().unwrap().is_pending(10));
        assert_eq!(m.read(claim(S0), 4), 40);
        assert_eq!(m.read(claim(S0), 4), 3);
        assert_eq!(m.read(claim(S0), 4), 0);
        assert!(!out[S0].get(), "everything in service");

        // The wires stay high: completion makes them pending again.
        l40.set_level(false);
        m.write(claim(S0), 4, 40);
        assert_eq!(m.read(claim(S0), 4), 0, "40 dropped its wire");
        m.write(claim(S0), 4, 10);
        assert!(out[S0].get());
        assert_eq!(m.read(claim(S0), 4), 10);

        // Completion for a source not enabled in the context is ignored.
        m.write(claim(M0), 4, 3);
        assert!(!p.lock().unwrap().is_pending(3));
        m.write(claim(S0), 4, 3);
        assert!(p.lock().unwrap().is_pending(3));
    }

    #[test]
    fn priority_zero_never_interrupts_and_pending_follows_wire() {
        let (p, mut m, out) = plic(2);
        let l = source_line(&p, 1);
        m.write(enable(M0), 4, 1 << 1);
        l.set_level(true);
        assert!(!out[M0].get(), "priority 0");
        m.write(prio(1), 4, 1);
        assert!(out[M0].get());
        l.set_level(false);
        assert!(!out[M0].get());
        assert_eq!(m.read(0x1000, 4), 0);
        // Disabling while pending drops the output too.
        l.set_level(true);
        m.write(enable(M0), 4, 0);
        assert!(!out[M0].get());
    }

    #[test]
    fn two_contexts_compete_for_one_source() {
        let (p, mut m, out) = plic(4);
        let l = source_line(&p, 7);
        m.write(prio(7), 4, 1);
        m.write(enable(S0), 4, 1 << 7);
        m.write(enable(3), 4, 1 << 7); // hart 1 S-mode
        l.set_level(true);
        assert!(out[S0].get() && out[3].get());
        assert_eq!(m.read(claim(3), 4), 7);
        assert!(!out[S0].get(), "claimed by the other hart");
        assert_eq!(m.read(claim(S0), 4), 0);
        m.write(claim(3), 4, 7);
        assert!(out[S0].get() && out[3].get());
    }

    #[test]
    fn bad_accesses_are_harmless() {
        let (p, mut m, _) = plic(2);
        let l = source_line(&p, 2);
        m.write(prio(2), 4, 1);
        m.write(enable(M0), 4, 1 << 2);
        l.set_level(true);
        for (off, size) in [
            (claim(M0), 8u8),
            (claim(M0), 1),
            (claim(M0) + 1, 4),
            (threshold(5), 4),
            (threshold(2) + 8, 4),
            (enable(9), 4),
            (PLIC_MMIO_SIZE, 4),
            (u64::MAX - 3, 4),
        ] {
            assert_eq!(m.read(off, size), 0, "{off:#x}/{size}");
            m.write(off, size, 2);
        }
        assert!(p.lock().unwrap().is_pending(2), "no stray claim happened");
        source_line(&p, 0).set_level(true);
        source_line(&p, 1000).set_level(true);
        assert_eq!(m.read(0x1000, 4), 1 << 2);
    }
}

#[cfg(test)]
mod wiring_tests {
    use super::*;
    use crate::uart::Uart;
    use crate::{mip, HartIrqBit, HartIrqs};

    /// A UART behind its own lock drives a PLIC source; the PLIC drives
    /// the hart's SEIP. Lock order device -> PLIC -> atomics, no deadlock.
    #[test]
    fn uart_through_plic_to_hart() {
        let hart = HartIrqs::new();
        let outs: Vec<Arc<dyn IrqLine>> = vec![
            Arc::new(HartIrqBit { irqs: hart.clone(), bit: mip::MEIP }),
            Arc::new(HartIrqBit { irqs: hart.clone(), bit: mip::SEIP }),
        ];
        let plic = Plic::shared(outs);
        let uart = Arc::new(Mutex::new(Uart::new(Box::new(|_| {}), source_line(&plic, 10))));
        let mut pbus = SharedMmio(plic.clone());
        let mut ubus = SharedMmio(uart.clone());
        pbus.write(4 * 10, 4, 1);
        pbus.write(0x2080, 4, 1 << 10);
        ubus.write(1, 1, 1); // ERBFI
        uart.lock().unwrap().push_input(b'k');
        assert_eq!(hart.pending(), 1 << mip::SEIP);
        assert_eq!(pbus.read(0x20_1004, 4), 10);
        assert_eq!(hart.pending(), 0);
        assert_eq!(ubus.read(0, 1), b'k' as u64);
        pbus.write(0x20_1004, 4, 10);
        assert_eq!(hart.pending(), 0, "the UART dropped its line before completion");
    }
}

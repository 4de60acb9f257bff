//! The RISC-V IOMMU (RISC-V IOMMU Architecture Specification 1.0, "IOMMU
//! 1.0"), as a platform device with wired interrupts.
//!
//! The IOMMU sits between the board's DMA-capable devices (the virtio-mmio
//! transports) and guest RAM: every DMA of a device is an *untranslated
//! request* carrying the device's ID, which the IOMMU looks up in the
//! device directory table (DDT), translates through the device context's
//! first stage (Sv39/48/57, `iosatp`, or a process directory table) and
//! second stage (Sv39x4/48x4/57x4, `iohgatp`), and refuses with a fault
//! record when the tables say no. Devices reach RAM through [`DmaMemory`],
//! a [`GuestMemory`] that asks the IOMMU for every page it touches.
//!
//! What the device implements, and what `capabilities` says (§5.3):
//!
//! | feature | here | capabilities |
//! | --- | --- | --- |
//! | version 1.0 | yes | `version` = 0x10 |
//! | first stage Sv39/Sv48/Sv57, with Svnapot (§6.4 requires it) | yes (the hart's walker, `strata_mmu::walk`) | `Sv39`, `Sv48`, `Sv57` |
//! | second stage Sv39x4/48x4/57x4 | yes (same walker) | `Sv39x4`, `Sv48x4`, `Sv57x4` |
//! | Sv32, Sv32x4, Svpbmt | no | 0 |
//! | A/D updates (`DC.tc.SADE`/`GADE`) | yes | `AMO_HWAD` |
//! | DDT 1, 2 and 3 levels, base format (32-byte DC) | yes | `MSI_FLAT` = 0 |
//! | extended format, MSI page tables, MRIF | no | `MSI_FLAT`, `MSI_MRIF`, `AMO_MRIF` = 0 |
//! | process directory tables PD8/PD17/PD20 | yes (`DPE` gives process ID 0) | `PD8`, `PD17`, `PD20` |
//! | wired interrupts | yes, 4 vectors | `IGS` = WSI |
//! | MSIs, ATS/PRI, T2GPA, HPM, debug translation, big-endian | no | 0 |
//! | physical address size | 56 bits | `PAS` = 56 |
//!
//! State (the registers, §5; all others read zero and ignore writes):
//!
//! | register | reset | how it changes |
//! | --- | --- | --- |
//! | `ddtp` | Bare | a write with a supported mode (Off, Bare, 1LVL–3LVL) takes mode and PPN; an unsupported mode leaves it as it was (WARL). `busy` is never set: changes take effect at once |
//! | `cqb`, `fqb` | 0 | writable while the queue is off; `LOG2SZ-1` is clamped to [`MAX_LOG2SZ`] |
//! | `cqt` / `fqh` | 0 | written by software, masked to the queue size; a `cqt` write runs the commands up to it at once |
//! | `cqh` / `fqt` | 0 | moved by the IOMMU; reset to 0 when the queue is enabled |
//! | `cqcsr` | 0 | `cqen`, `cie` writable; `cqmf`, `cmd_ill`, `fence_w_ip` write-1-to-clear; `cqon` follows `cqen` |
//! | `fqcsr` | 0 | `fqen`, `fie` writable; `fqmf`, `fqof` write-1-to-clear; `fqon` follows `fqen` |
//! | `ipsr` | 0 | `cip`, `fip` set by the IOMMU (when `cie`/`fie`), write-1-to-clear; each drives the wire `icvec` names |
//! | `icvec` | 0 | each cause's vector, WARL to 0..[`VECTORS`] |
//! | `fctl` | `WSI` | read-only: little-endian, wired interrupts, `GXL` = 0 |
//!
//! Caches: device contexts (by device ID, invalidated by `IODIR.INVAL_DDT`),
//! process contexts (by device and process ID, `IODIR.INVAL_PDT`), and the
//! IOTLB of finished translations, tagged by GSCID and PSCID (§3.1.1;
//! `IOTINVAL.VMA` and `IOTINVAL.GVMA`). Invalid entries are never cached.
//! The IOTLB holds at most [`IOTLB_CAPACITY`] pages and is emptied when
//! full. `IOTINVAL.GVMA` with an address invalidates every entry of its
//! GSCID (the specification allows invalidating more than asked).
//!
//! Invariants: nothing the guest writes (registers, tables, queues) can
//! make the device panic, loop without bound (a `cqt` write runs at most
//! one queue's worth of commands; table walks have fixed depth), or touch
//! memory outside guest RAM (every table, queue and data access goes
//! through the bounds-checked [`GuestMemory`]); a table the IOMMU cannot
//! read or does not accept gets the fault the specification names.

mod dma;
#[cfg(test)]
mod tests;

pub use dma::{DmaMemory, StrayOutcome, STRAY_MARKER};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use strata_arch::cause;
use strata_arch::csr::satp;
use strata_arch::pte::{Scheme, PAGE_SHIFT};
use strata_memory::GuestMemory;
use strata_mmu::walk::{self, Options, Perms, PtMemory, WalkError};
use strata_mmu::Access;

use crate::{IrqLine, MmioDevice};

/// Size of the register window (§5: the registers fill 4 KiB).
pub const IOMMU_MMIO_SIZE: u64 = 0x1000;
/// Interrupt vectors (wires) the IOMMU drives: one per cause (§5.27).
pub const VECTORS: usize = 4;
/// Largest `LOG2SZ-1` a queue base takes: 2^20 entries.
pub const MAX_LOG2SZ: u64 = 19;
/// Most pages the IOTLB holds before it is emptied.
pub const IOTLB_CAPACITY: usize = 4096;

/// Register offsets (§5, Table 9).
pub mod reg {
    pub const CAPABILITIES: u64 = 0x00;
    pub const FCTL: u64 = 0x08;
    pub const DDTP: u64 = 0x10;
    pub const CQB: u64 = 0x18;
    pub const CQH: u64 = 0x20;
    pub const CQT: u64 = 0x24;
    pub const FQB: u64 = 0x28;
    pub const FQH: u64 = 0x30;
    pub const FQT: u64 = 0x34;
    pub const CQCSR: u64 = 0x48;
    pub const FQCSR: u64 = 0x4c;
    pub const IPSR: u64 = 0x54;
    pub const ICVEC: u64 = 0x2f8;
}

/// `capabilities` fields (§5.3).
pub mod caps {
    pub const VERSION_1_0: u64 = 0x10;
    pub const CAP_SV39: u64 = 1 << 9;
    pub const CAP_SV48: u64 = 1 << 10;
    pub const CAP_SV57: u64 = 1 << 11;
    pub const CAP_SV39X4: u64 = 1 << 17;
    pub const CAP_SV48X4: u64 = 1 << 18;
    pub const CAP_SV57X4: u64 = 1 << 19;
    pub const MSI_FLAT: u64 = 1 << 22;
    pub const AMO_HWAD: u64 = 1 << 24;
    pub const IGS_WSI: u64 = 1 << 28;
    pub const PAS_SHIFT: u32 = 32;
    pub const PD8: u64 = 1 << 38;
    pub const PD17: u64 = 1 << 39;
    pub const PD20: u64 = 1 << 40;
}

/// What this IOMMU implements (the table in the module docs).
pub const CAPABILITIES: u64 = caps::VERSION_1_0
    | caps::CAP_SV39
    | caps::CAP_SV48
    | caps::CAP_SV57
    | caps::CAP_SV39X4
    | caps::CAP_SV48X4
    | caps::CAP_SV57X4
    | caps::AMO_HWAD
    | caps::IGS_WSI
    | (56 << caps::PAS_SHIFT)
    | caps::PD8
    | caps::PD17
    | caps::PD20;

/// Both stages take Svnapot's 64 KiB leaves (§6.4: an IOMMU must).
const SVNAPOT: Options = Options { svnapot: true, pbmt: false };

/// `fctl.WSI` (§5.4): interrupts are wired. Read-only here.
pub const FCTL_WSI: u64 = 1 << 1;

/// `ddtp.iommu_mode` values (§5.5).
pub mod ddtp_mode {
    pub const OFF: u64 = 0;
    pub const PASSTHROUGH: u64 = 1;
    pub const LVL1: u64 = 2;
    pub const LVL2: u64 = 3;
    pub const LVL3: u64 = 4;
}

/// The PPN field of `ddtp`, queue bases and table entries: bits 53:10.
const PPN_FIELD: u64 = ((1 << 44) - 1) << 10;
/// An `*atp` PPN field (`iosatp`, `iohgatp`, `pdtp`): bits 43:0.
const ATP_PPN: u64 = (1 << 44) - 1;

/// Queue CSR bits shared by `cqcsr` and `fqcsr` (§5.15, §5.16).
pub mod qcsr {
    pub const EN: u64 = 1 << 0;
    pub const IE: u64 = 1 << 1;
    pub const MF: u64 = 1 << 8;
    /// `cqcsr.cmd_to` / `fqcsr.fqof`.
    pub const TO_OF: u64 = 1 << 9;
    pub const CMD_ILL: u64 = 1 << 10;
    pub const FENCE_W_IP: u64 = 1 << 11;
    pub const ON: u64 = 1 << 16;
}

/// `ipsr` bits, which are also the causes `icvec` maps (§5.18, §5.27).
pub mod ipsr {
    pub const CIP: u64 = 1 << 0;
    pub const FIP: u64 = 1 << 1;
}

/// Device-context `tc` bits (§2.1.2).
pub mod tc {
    pub const V: u64 = 1 << 0;
    pub const EN_ATS: u64 = 1 << 1;
    pub const EN_PRI: u64 = 1 << 2;
    pub const T2GPA: u64 = 1 << 3;
    pub const DTF: u64 = 1 << 4;
    pub const PDTV: u64 = 1 << 5;
    pub const PRPR: u64 = 1 << 6;
    pub const GADE: u64 = 1 << 7;
    pub const SADE: u64 = 1 << 8;
    pub const DPE: u64 = 1 << 9;
    pub const SBE: u64 = 1 << 10;
    pub const TC_SXL: u64 = 1 << 11;
}

/// Process-context `ta` bits (§2.2.1).
pub mod pc_ta {
    pub const V: u64 = 1 << 0;
    pub const ENS: u64 = 1 << 1;
    pub const PC_SUM: u64 = 1 << 2;
}

/// Fault causes the IOMMU reports beyond the hart's exception codes
/// (§4.2, Table 11; codes 1–23 are the hart's, `strata_arch::cause`).
pub mod fault {
    pub const ALL_INBOUND_DISALLOWED: u64 = 256;
    pub const DDT_LOAD_FAULT: u64 = 257;
    pub const DDT_INVALID: u64 = 258;
    pub const DDT_MISCONFIGURED: u64 = 259;
    pub const TTYP_DISALLOWED: u64 = 260;
    pub const PDT_LOAD_FAULT: u64 = 265;
    pub const PDT_INVALID: u64 = 266;
    pub const PDT_MISCONFIGURED: u64 = 267;
}

/// Transaction types of fault records (§4.2, Table 12).
pub mod ttyp {
    pub const UNTRANSLATED_READ: u64 = 2;
    pub const UNTRANSLATED_WRITE: u64 = 3;
}

/// The 8-byte word holding `pqcsr` (low half, not implemented) and `ipsr`.
const IPSR_WORD: u64 = reg::IPSR & !7;

/// Command opcodes and functions (§4.1).
mod cmd {
    pub const IOTINVAL: u64 = 1;
    pub const IOFENCE: u64 = 2;
    pub const IODIR: u64 = 3;
    pub const FUNC_VMA: u64 = 0;
    pub const FUNC_GVMA: u64 = 1;
    pub const FUNC_C: u64 = 0;
    pub const FUNC_INVAL_DDT: u64 = 0;
    pub const FUNC_INVAL_PDT: u64 = 1;
    pub const AV: u64 = 1 << 10;
    pub const FENCE_WSI: u64 = 1 << 11;
    pub const PSCV: u64 = 1 << 32;
    pub const GV: u64 = 1 << 33;
    /// `IODIR.DV` shares bit 33 with `IOTINVAL.GV`.
    pub const DV: u64 = 1 << 33;
}

/// A device context as read from the DDT (base format, §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceContext {
    pub tc: u64,
    pub iohgatp: u64,
    pub ta: u64,
    pub fsc: u64,
}

/// The first-stage setting a transaction ends up with (from the device
/// context, or its process context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FirstStage {
    /// `iosatp`: mode and root PPN.
    atp: u64,
    pscid: u32,
    sum: bool,
}

/// An IOTLB tag (§3.1.1): the guest (GSCID, when a second stage is on) and
/// the process (PSCID, when a first stage is on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Tag {
    gscid: Option<u16>,
    pscid: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
struct TlbEntry {
    /// Physical page number of this 4 KiB page.
    ppn: u64,
    /// The leaf's page size (log2), for address invalidations that hit a
    /// superpage.
    page_shift: u32,
    /// A store was translated (the walk checked W and set D).
    writable: bool,
    /// The device whose request filled it (for per-device statistics).
    did: u32,
}

/// Per-device counters for `--stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Requests of a valid device context whose stages are both Bare (the
    /// identity domain Linux gives devices): checked, not translated.
    pub direct: u64,
    /// Translations answered by the IOTLB.
    pub hits: u64,
    /// Translations that walked the tables.
    pub misses: u64,
    /// IOTLB entries of this device removed by invalidation commands.
    pub invalidations: u64,
    /// Faults of this device's requests (reported or not).
    pub faults: u64,
}

/// A fault the IOMMU found for one request (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub cause: u64,
    pub ttyp: u64,
    pub did: u32,
    pub iotval: u64,
    pub iotval2: u64,
}

impl Fault {
    /// The record's first doubleword (§4.2: cause 11:0, PID 31:12, PV 32,
    /// PRIV 33, TTYP 39:34, DID 63:40).
    pub fn header(&self) -> u64 {
        (self.cause & 0xfff) | (self.ttyp & 0x3f) << 34 | (self.did as u64 & 0xff_ffff) << 40
    }
}

/// Why one stage of a walk could not read or update a table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PtErr {
    /// Outside RAM: an access fault.
    Access,
    /// A/D update needed but not enabled (`SADE`/`GADE` clear): a page
    /// fault of that stage (§2.6 / Privileged §4.3.2 with Svade).
    NoAd,
    /// The second stage refused the implicit access to a first-stage
    /// table entry at this guest-physical address (write: an A/D update).
    Guest { gpa: u64, write: bool, access: bool },
}

/// The RISC-V IOMMU.
pub struct Iommu {
    ram: Arc<dyn GuestMemory>,
    lines: Vec<Arc<dyn IrqLine>>,
    levels: [bool; VECTORS],
    ddtp: u64,
    cqb: u64,
    cqh: u64,
    cqt: u64,
    fqb: u64,
    fqh: u64,
    fqt: u64,
    cqcsr: u64,
    fqcsr: u64,
    ipsr: u64,
    icvec: u64,
    dc_cache: HashMap<u32, DeviceContext>,
    pc_cache: HashMap<(u32, u32), FirstStage>,
    iotlb: HashMap<(Tag, u64), TlbEntry>,
    /// Entries in `iotlb` from superpage leaves.
    superpages: usize,
    stats: BTreeMap<u32, DeviceStats>,
    /// Faults recorded in the fault queue, and those lost (queue off,
    /// full or unwritable).
    pub records: u64,
    pub lost_records: u64,
    /// Commands run.
    pub commands: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Iommu {
    /// An IOMMU reaching `ram` and driving `lines` (at most [`VECTORS`]
    /// wires; missing ones go nowhere).
    pub fn new(ram: Arc<dyn GuestMemory>, lines: Vec<Arc<dyn IrqLine>>) -> Self {
        Iommu {
            ram,
            lines,
            levels: [false; VECTORS],
            ddtp: ddtp_mode::PASSTHROUGH,
            cqb: 0,
            cqh: 0,
            cqt: 0,
            fqb: 0,
            fqh: 0,
            fqt: 0,
            cqcsr: 0,
            fqcsr: 0,
            ipsr: 0,
            icvec: 0,
            dc_cache: HashMap::new(),
            pc_cache: HashMap::new(),
            iotlb: HashMap::new(),
            superpages: 0,
            stats: BTreeMap::new(),
            records: 0,
            lost_records: 0,
            commands: 0,
        }
    }

    /// A shared IOMMU, for the bus (`SharedMmio`) and the devices'
    /// [`DmaMemory`].
    pub fn shared(ram: Arc<dyn GuestMemory>, lines: Vec<Arc<dyn IrqLine>>) -> Arc<Mutex<Iommu>> {
        Arc::new(Mutex::new(Self::new(ram, lines)))
    }

    /// Per-device counters, by device ID.
    pub fn stats(&self) -> &BTreeMap<u32, DeviceStats> {
        &self.stats
    }

    /// Pages the IOTLB holds now.
    pub fn iotlb_len(&self) -> usize {
        self.iotlb.len()
    }

    fn ddtp_mode(&self) -> u64 {
        self.ddtp & 0xf
    }

    // ---- registers --------------------------------------------------

    fn read64(&self, off: u64) -> u64 {
        match off {
            reg::CAPABILITIES => CAPABILITIES,
            reg::FCTL => FCTL_WSI,
            reg::DDTP => self.ddtp,
            reg::CQB => self.cqb,
            reg::CQH => self.cqh | self.cqt << 32,
            reg::FQB => self.fqb,
            reg::FQH => self.fqh | self.fqt << 32,
            reg::CQCSR => self.cqcsr | self.fqcsr << 32,
            IPSR_WORD => self.ipsr << 32,
            reg::ICVEC => self.icvec,
            _ => 0,
        }
    }

    fn write_reg(&mut self, off: u64, size: u8, value: u64) {
        // 64-bit registers take 4-byte halves too (§5: "accesses of 4 bytes
        // to 8-byte registers"); 4-byte registers pair up in 8-byte words.
        let (word, shift) = (off & !7, (off & 4) * 8);
        let (value, mask) = if size == 8 { (value, u64::MAX) } else { (value << shift, 0xffff_ffffu64 << shift) };
        let merge = |old: u64| (old & !mask) | (value & mask);
        let lo = mask & 0xffff_ffff != 0;
        let hi = mask >> 32 != 0;
        match word {
            reg::DDTP => self.write_ddtp(merge(self.ddtp)),
            reg::CQB if self.cqcsr & qcsr::ON == 0 => {
                self.cqb = queue_base(merge(self.cqb));
                // The indices stay inside the (possibly smaller) queue.
                let m = self.queue_mask(self.cqb);
                (self.cqh, self.cqt) = (self.cqh & m, self.cqt & m);
            }
            reg::CQH if hi => {
                self.cqt = (value >> 32) & self.queue_mask(self.cqb);
                self.run_commands();
            }
            reg::FQB if self.fqcsr & qcsr::ON == 0 => {
                self.fqb = queue_base(merge(self.fqb));
                let m = self.queue_mask(self.fqb);
                (self.fqh, self.fqt) = (self.fqh & m, self.fqt & m);
            }
            reg::FQH if lo => self.fqh = value & 0xffff_ffff & self.queue_mask(self.fqb),
            reg::CQCSR => {
                if lo {
                    self.write_cqcsr(value & 0xffff_ffff);
                }
                if hi {
                    self.write_fqcsr(value >> 32);
                }
            }
            IPSR_WORD if hi => {
                self.ipsr &= !((value >> 32) & (ipsr::CIP | ipsr::FIP));
                self.update_lines();
            }
            reg::ICVEC => {
                // WARL: each 4-bit vector field is kept below VECTORS.
                let v = merge(self.icvec);
                self.icvec = (0..4).fold(0, |acc, i| acc | ((v >> (4 * i)) & (VECTORS as u64 - 1)) << (4 * i));
                self.update_lines();
            }
            _ => {}
        }
    }

    fn write_ddtp(&mut self, v: u64) {
        let mode = v & 0xf;
        if mode > ddtp_mode::LVL3 {
            return; // WARL: unsupported modes leave ddtp as it was.
        }
        self.ddtp = mode | (v & PPN_FIELD);
        // A new directory: nothing cached from the old one may be used.
        self.flush_all_caches();
    }

    fn write_cqcsr(&mut self, v: u64) {
        let w1c = qcsr::MF | qcsr::TO_OF | qcsr::CMD_ILL | qcsr::FENCE_W_IP;
        let was_on = self.cqcsr & qcsr::ON != 0;
        let mut csr = (self.cqcsr & !(v & w1c)) & !(qcsr::EN | qcsr::IE);
        csr |= v & (qcsr::EN | qcsr::IE);
        if v & qcsr::EN != 0 {
            if !was_on {
                // §5.15: enabling resets the head and the error bits.
                self.cqh = 0;
                csr &= !w1c;
            }
            csr |= qcsr::ON;
        } else {
            csr &= !qcsr::ON;
        }
        self.cqcsr = csr;
        self.run_commands();
    }

    fn write_fqcsr(&mut self, v: u64) {
        let w1c = qcsr::MF | qcsr::TO_OF;
        let was_on = self.fqcsr & qcsr::ON != 0;
        let mut csr = (self.fqcsr & !(v & w1c)) & !(qcsr::EN | qcsr::IE);
        csr |= v & (qcsr::EN | qcsr::IE);
        if v & qcsr::EN != 0 {
            if !was_on {
                self.fqt = 0;
                csr &= !w1c;
            }
            csr |= qcsr::ON;
        } else {
            csr &= !qcsr::ON;
        }
        self.fqcsr = csr;
    }

    fn queue_mask(&self, base: u64) -> u64 {
        (2u64 << (base & 0x1f)) - 1
    }

    // ---- interrupts -------------------------------------------------

    fn raise(&mut self, bit: u64) {
        self.ipsr |= bit;
        self.update_lines();
    }

    /// Drives each wire from the `ipsr` bits whose `icvec` field names it
    /// (§5.27; with `fctl.WSI`, a pending bit holds its wire high).
    fn update_lines(&mut self) {
        let mut want = [false; VECTORS];
        for cause in 0..4 {
            if self.ipsr & (1 << cause) != 0 {
                want[((self.icvec >> (4 * cause)) & 0xf) as usize % VECTORS] = true;
            }
        }
        for (v, &level) in want.iter().enumerate() {
            if level != self.levels[v] {
                self.levels[v] = level;
                if let Some(l) = self.lines.get(v) {
                    l.set_level(level);
                }
            }
        }
    }

    // ---- command queue (§4.1) ---------------------------------------

    fn run_commands(&mut self) {
        let stop = qcsr::MF | qcsr::CMD_ILL;
        let mask = self.queue_mask(self.cqb);
        // At most one queue's worth: cqh moves towards cqt and stops there.
        for _ in 0..=mask {
            if self.cqcsr & qcsr::ON == 0 || self.cqcsr & stop != 0 || self.cqh == self.cqt {
                return;
            }
            let addr = (((self.cqb & PPN_FIELD) >> 10) << PAGE_SHIFT).wrapping_add(self.cqh * 16);
            let (d0, d1) = match (self.ram.load(addr, 8), self.ram.load(addr.wrapping_add(8), 8)) {
                (Ok(a), Ok(b)) => (a, b),
                _ => {
                    self.cq_error(qcsr::MF);
                    return;
                }
            };
            if !self.command(d0, d1) {
                return;
            }
            self.commands += 1;
            self.cqh = (self.cqh + 1) & mask;
        }
    }

    fn cq_error(&mut self, bit: u64) {
        self.cqcsr |= bit;
        if self.cqcsr & qcsr::IE != 0 {
            self.raise(ipsr::CIP);
        }
    }

    /// Runs one command; false if it stopped the queue (illegal, or a
    /// memory fault of `IOFENCE.C`'s write).
    fn command(&mut self, d0: u64, d1: u64) -> bool {
        let (op, func) = (d0 & 0x7f, (d0 >> 7) & 7);
        match (op, func) {
            (cmd::IOTINVAL, cmd::FUNC_VMA | cmd::FUNC_GVMA) => {
                let gscid = (d0 & cmd::GV != 0).then_some(((d0 >> 44) & 0xffff) as u16);
                let pscid = (d0 & cmd::PSCV != 0).then_some(((d0 >> 12) & 0xf_ffff) as u32);
                let addr = (d0 & cmd::AV != 0).then_some(((d1 >> 10) & ((1 << 52) - 1)) << PAGE_SHIFT);
                if func == cmd::FUNC_GVMA {
                    if pscid.is_some() {
                        self.cq_error(qcsr::CMD_ILL); // §4.1.1: PSCV must be 0
                        return false;
                    }
                    // Every entry built with a second stage (of this GSCID);
                    // an address narrows nothing here (over-invalidation).
                    self.iotlb_retain(|t, _| !(t.gscid.is_some() && (gscid.is_none() || t.gscid == gscid)));
                } else {
                    self.iotlb_retain(|t, (vpn, e)| {
                        let hit = t.gscid == gscid
                            && (pscid.is_none() || t.pscid == pscid)
                            && addr.is_none_or(|a| {
                                let s = e.page_shift - PAGE_SHIFT;
                                vpn >> s == (a >> PAGE_SHIFT) >> s
                            });
                        !hit
                    });
                }
                true
            }
            (cmd::IOFENCE, cmd::FUNC_C) => {
                // Requests are translated synchronously: everything before
                // this fence is complete already.
                if d0 & cmd::AV != 0 {
                    let addr = (d1 << 2) & ((1 << 56) - 1);
                    if self.ram.store(addr, 4, d0 >> 32).is_err() {
                        self.cq_error(qcsr::MF);
                        return false;
                    }
                }
                if d0 & cmd::FENCE_WSI != 0 {
                    self.cq_error(qcsr::FENCE_W_IP);
                }
                true
            }
            (cmd::IODIR, cmd::FUNC_INVAL_DDT) => {
                if d0 & cmd::DV != 0 {
                    let did = (d0 >> 40) as u32;
                    self.dc_cache.remove(&did);
                    self.pc_cache.retain(|&(d, _), _| d != did);
                } else {
                    self.dc_cache.clear();
                    self.pc_cache.clear();
                }
                true
            }
            (cmd::IODIR, cmd::FUNC_INVAL_PDT) => {
                if d0 & cmd::DV == 0 {
                    self.cq_error(qcsr::CMD_ILL); // §4.1.3: DV must be 1
                    return false;
                }
                let (did, pid) = ((d0 >> 40) as u32, ((d0 >> 12) & 0xf_ffff) as u32);
                self.pc_cache.remove(&(did, pid));
                true
            }
            _ => {
                self.cq_error(qcsr::CMD_ILL);
                false
            }
        }
    }

    fn iotlb_retain(&mut self, mut keep: impl FnMut(&Tag, (u64, &TlbEntry)) -> bool) {
        let stats = &mut self.stats;
        let mut superpages = self.superpages;
        self.iotlb.retain(|(tag, vpn), e| {
            let k = keep(tag, (*vpn, e));
            if !k {
                stats.entry(e.did).or_default().invalidations += 1;
                if e.page_shift > PAGE_SHIFT {
                    superpages -= 1;
                }
            }
            k
        });
        self.superpages = superpages;
    }

    fn flush_all_caches(&mut self) {
        self.dc_cache.clear();
        self.pc_cache.clear();
        self.iotlb_retain(|_, _| false);
    }

    // ---- fault queue (§4.2) -----------------------------------------

    fn report(&mut self, f: Fault) {
        if self.fqcsr & qcsr::ON == 0 || self.fqcsr & (qcsr::MF | qcsr::TO_OF) != 0 {
            self.lost_records += 1;
            return;
        }
        let mask = self.queue_mask(self.fqb);
        if (self.fqt + 1) & mask == self.fqh {
            self.fqcsr |= qcsr::TO_OF; // full: overflow
            self.lost_records += 1;
        } else {
            let addr = (((self.fqb & PPN_FIELD) >> 10) << PAGE_SHIFT).wrapping_add(self.fqt * 32);
            let mut rec = [0u8; 32];
            rec[0..8].copy_from_slice(&f.header().to_le_bytes());
            rec[16..24].copy_from_slice(&f.iotval.to_le_bytes());
            rec[24..32].copy_from_slice(&f.iotval2.to_le_bytes());
            if self.ram.write_bytes(addr, &rec).is_ok() {
                self.fqt = (self.fqt + 1) & mask;
                self.records += 1;
            } else {
                self.fqcsr |= qcsr::MF;
                self.lost_records += 1;
            }
        }
        if self.fqcsr & qcsr::IE != 0 {
            self.raise(ipsr::FIP);
        }
    }

    // ---- translation (§2.3) -----------------------------------------

    /// Translates one untranslated request of device `did` to `iova`
    /// (a write if `write`): the physical address, or the fault, which has
    /// been recorded in the fault queue unless the device context says
    /// not to (`DTF`).
    pub fn translate(&mut self, did: u32, iova: u64, write: bool) -> Result<u64, Fault> {
        let ttyp = if write { ttyp::UNTRANSLATED_WRITE } else { ttyp::UNTRANSLATED_READ };
        let mut dtf = false;
        let r = self.translate_inner(did, iova, write, &mut dtf);
        match r {
            Ok(pa) => Ok(pa),
            Err((cause, iotval2)) => {
                let f = Fault { cause, ttyp, did, iotval: iova, iotval2 };
                self.stats.entry(did).or_default().faults += 1;
                // §3.2 / §2.1.2: DTF suppresses faults found after the
                // device context was read (not the directory's own).
                let dir_fault = matches!(
                    cause,
                    fault::ALL_INBOUND_DISALLOWED
                        | fault::DDT_LOAD_FAULT
                        | fault::DDT_INVALID
                        | fault::DDT_MISCONFIGURED
                        | fault::TTYP_DISALLOWED
                );
                if !dtf || dir_fault {
                    self.report(f);
                }
                Err(f)
            }
        }
    }

    fn translate_inner(&mut self, did: u32, iova: u64, write: bool, dtf: &mut bool) -> Result<u64, (u64, u64)> {
        let mode = self.ddtp_mode();
        match mode {
            ddtp_mode::OFF => return Err((fault::ALL_INBOUND_DISALLOWED, 0)),
            ddtp_mode::PASSTHROUGH => return Ok(iova),
            _ => {}
        }
        let dc = self.device_context(did)?;
        *dtf = dc.tc & tc::DTF != 0;
        let fs = self.first_stage(did, &dc)?;
        let g_mode = dc.iohgatp >> 60;
        let gscid = (g_mode != satp::BARE).then_some(((dc.iohgatp >> 44) & 0xffff) as u16);
        let fs_mode = fs.atp >> 60;
        let pscid = (fs_mode != satp::BARE).then_some(fs.pscid);
        if gscid.is_none() && pscid.is_none() {
            self.stats.entry(did).or_default().direct += 1;
            return Ok(iova);
        }
        let tag = Tag { gscid, pscid };
        let vpn = iova >> PAGE_SHIFT;
        if let Some(e) = self.iotlb.get(&(tag, vpn)) {
            if e.writable || !write {
                let pa = e.ppn << PAGE_SHIFT | (iova & 0xfff);
                self.stats.entry(did).or_default().hits += 1;
                return Ok(pa);
            }
        }
        self.stats.entry(did).or_default().misses += 1;
        let access = if write { Access::Store } else { Access::Load };
        let (pa, shift) = self.walk_both(&dc, &fs, iova, access)?;
        if self.iotlb.len() >= IOTLB_CAPACITY {
            self.iotlb_retain(|_, _| false);
        }
        let old =
            self.iotlb.insert((tag, vpn), TlbEntry { ppn: pa >> PAGE_SHIFT, page_shift: shift, writable: write, did });
        if old.is_some_and(|o| o.page_shift > PAGE_SHIFT) {
            self.superpages -= 1;
        }
        if shift > PAGE_SHIFT {
            self.superpages += 1;
        }
        Ok(pa)
    }

    /// Both stages of a walk: (physical address, log2 of the smaller leaf).
    fn walk_both(
        &self,
        dc: &DeviceContext,
        fs: &FirstStage,
        iova: u64,
        access: Access,
    ) -> Result<(u64, u32), (u64, u64)> {
        let g = Stage2 { ram: &*self.ram, iohgatp: dc.iohgatp, ade: dc.tc & tc::GADE != 0 };
        let fs_mode = fs.atp >> 60;
        let (page_fault, access_fault, guest_fault) = match access {
            Access::Store => (cause::STORE_PAGE, cause::STORE_ACCESS, cause::STORE_GUEST_PAGE),
            _ => (cause::LOAD_PAGE, cause::LOAD_ACCESS, cause::LOAD_GUEST_PAGE),
        };
        let (gpa, s1_shift) = if fs_mode == satp::BARE {
            (iova, 64)
        } else {
            let scheme = Scheme::from_atp_mode(fs_mode, false).ok_or((fault::DDT_MISCONFIGURED, 0))?;
            let mut mem = Stage1Mem { g: &g, ade: dc.tc & tc::SADE != 0 };
            let perms = Perms { user: true, sum: fs.sum, mxr: false, hlvx: false };
            match walk::walk_opts(&mut mem, scheme, fs.atp & ATP_PPN, iova, access, perms, SVNAPOT) {
                Ok(leaf) => (leaf.pa, leaf.page_shift),
                Err(WalkError::PageFault) | Err(WalkError::Mem(PtErr::NoAd)) => return Err((page_fault, 0)),
                Err(WalkError::Mem(PtErr::Access)) => return Err((access_fault, 0)),
                Err(WalkError::Mem(PtErr::Guest { access: true, .. })) => return Err((access_fault, 0)),
                Err(WalkError::Mem(PtErr::Guest { gpa, write, access: false })) => {
                    // §4.2: iotval2 holds the guest-physical address, bit 0
                    // marks an implicit access, bit 1 an implicit write.
                    return Err((guest_fault, (gpa & !3) | 1 | (write as u64) << 1));
                }
            }
        };
        match g.translate(gpa, access) {
            Ok((pa, shift)) => Ok((pa, shift.min(s1_shift))),
            Err(PtErr::Access) => Err((access_fault, 0)),
            Err(_) => Err((guest_fault, gpa & !3)),
        }
    }

    /// The device context of `did`: cached, or read from the DDT (§2.3
    /// steps 1–9 of "Process to locate the Device-context").
    fn device_context(&mut self, did: u32) -> Result<DeviceContext, (u64, u64)> {
        if let Some(dc) = self.dc_cache.get(&did) {
            return Ok(*dc);
        }
        // Base format: DDI[0] is 7 bits, DDI[1] 9, DDI[2] 8 (§2.1).
        let levels = match self.ddtp_mode() {
            ddtp_mode::LVL1 => 1,
            ddtp_mode::LVL2 => 2,
            _ => 3,
        };
        let width = [7, 16, 24][levels - 1];
        if did as u64 >> width != 0 {
            return Err((fault::TTYP_DISALLOWED, 0));
        }
        let ddi = [did as u64 & 0x7f, (did as u64 >> 7) & 0x1ff, (did as u64 >> 16) & 0xff];
        let mut table = ((self.ddtp & PPN_FIELD) >> 10) << PAGE_SHIFT;
        for level in (1..levels).rev() {
            let e = self.ram.load(table.wrapping_add(ddi[level] * 8), 8).map_err(|_| (fault::DDT_LOAD_FAULT, 0))?;
            if e & 1 == 0 {
                return Err((fault::DDT_INVALID, 0));
            }
            if e & !(PPN_FIELD | 1) != 0 {
                return Err((fault::DDT_MISCONFIGURED, 0));
            }
            table = ((e & PPN_FIELD) >> 10) << PAGE_SHIFT;
        }
        let at = table.wrapping_add(ddi[0] * 32);
        let mut w = [0u64; 4];
        for (i, v) in w.iter_mut().enumerate() {
            *v = self.ram.load(at.wrapping_add(i as u64 * 8), 8).map_err(|_| (fault::DDT_LOAD_FAULT, 0))?;
        }
        let dc = DeviceContext { tc: w[0], iohgatp: w[1], ta: w[2], fsc: w[3] };
        if dc.tc & tc::V == 0 {
            return Err((fault::DDT_INVALID, 0));
        }
        if !dc_ok(&dc) {
            return Err((fault::DDT_MISCONFIGURED, 0));
        }
        self.dc_cache.insert(did, dc);
        Ok(dc)
    }

    /// The first stage of a request without a process ID (§2.3 step 11):
    /// the device context's `iosatp`, or with `PDTV`, process 0's context
    /// (if `DPE`) or none.
    fn first_stage(&mut self, did: u32, dc: &DeviceContext) -> Result<FirstStage, (u64, u64)> {
        if dc.tc & tc::PDTV == 0 {
            return Ok(FirstStage { atp: dc.fsc, pscid: ((dc.ta >> 12) & 0xf_ffff) as u32, sum: false });
        }
        if dc.tc & tc::DPE == 0 {
            return Ok(FirstStage { atp: 0, pscid: 0, sum: false });
        }
        let pid = 0u32;
        if let Some(fs) = self.pc_cache.get(&(did, pid)) {
            return Ok(*fs);
        }
        // pdtp modes PD8/PD17/PD20 = 1/2/3 levels; PDI[0] 8 bits, PDI[1]
        // 9, PDI[2] 3 (§2.2).
        let levels = match dc.fsc >> 60 {
            0 => return Ok(FirstStage { atp: 0, pscid: 0, sum: false }),
            m @ 1..=3 => m as usize,
            _ => return Err((fault::DDT_MISCONFIGURED, 0)),
        };
        let g = Stage2 { ram: &*self.ram, iohgatp: dc.iohgatp, ade: dc.tc & tc::GADE != 0 };
        // PDT entries are guest-physical: each read goes through the
        // second stage (§2.3.1), whose failure is a PDT load fault here.
        let read = |gpa: u64| -> Result<u64, (u64, u64)> {
            let (pa, _) = g.translate(gpa, Access::Load).map_err(|e| match e {
                PtErr::Access => (fault::PDT_LOAD_FAULT, 0),
                _ => (cause::LOAD_GUEST_PAGE, gpa & !3 | 1),
            })?;
            g.ram.load(pa, 8).map_err(|_| (fault::PDT_LOAD_FAULT, 0))
        };
        let pdi = [pid as u64 & 0xff, (pid as u64 >> 8) & 0x1ff, (pid as u64 >> 17) & 0x7];
        let mut table = (dc.fsc & ATP_PPN) << PAGE_SHIFT;
        for level in (1..levels).rev() {
            let e = read(table.wrapping_add(pdi[level] * 8))?;
            if e & 1 == 0 {
                return Err((fault::PDT_INVALID, 0));
            }
            if e & !(PPN_FIELD | 1) != 0 {
                return Err((fault::PDT_MISCONFIGURED, 0));
            }
            table = ((e & PPN_FIELD) >> 10) << PAGE_SHIFT;
        }
        let at = table.wrapping_add(pdi[0] * 16);
        let (ta, fsc) = (read(at)?, read(at.wrapping_add(8))?);
        if ta & pc_ta::V == 0 {
            return Err((fault::PDT_INVALID, 0));
        }
        let fs_mode = fsc >> 60;
        let ta_reserved = !(pc_ta::V | pc_ta::ENS | pc_ta::PC_SUM | 0xf_ffff << 12);
        if ta & ta_reserved != 0
            || (fs_mode != satp::BARE && Scheme::from_atp_mode(fs_mode, false).is_none())
            || fsc & !(0xf << 60 | ATP_PPN) != 0
        {
            return Err((fault::PDT_MISCONFIGURED, 0));
        }
        let fs = FirstStage { atp: fsc, pscid: ((ta >> 12) & 0xf_ffff) as u32, sum: ta & pc_ta::PC_SUM != 0 };
        self.pc_cache.insert((did, pid), fs);
        Ok(fs)
    }
}

/// The device-context checks this implementation makes (§2.1.4): reserved
/// bits, and features `capabilities` does not offer, make it misconfigured.
fn dc_ok(dc: &DeviceContext) -> bool {
    let tc_known = tc::V | tc::DTF | tc::PDTV | tc::GADE | tc::SADE | tc::DPE;
    if dc.tc & !tc_known != 0 {
        return false; // EN_ATS, EN_PRI, T2GPA, PRPR, SBE, SXL, reserved
    }
    if dc.tc & tc::DPE != 0 && dc.tc & tc::PDTV == 0 {
        return false;
    }
    let g_mode = dc.iohgatp >> 60;
    if g_mode != satp::BARE {
        // The x4 root table is 16 KiB, 16 KiB aligned (§2.1.3).
        if Scheme::from_atp_mode(g_mode, true).is_none() || dc.iohgatp & 3 != 0 {
            return false;
        }
    } else if dc.iohgatp != 0 {
        return false;
    }
    if dc.ta & !(0xf_ffff << 12) != 0 {
        return false;
    }
    let f_mode = dc.fsc >> 60;
    if dc.fsc & !(0xf << 60 | ATP_PPN) != 0 {
        return false;
    }
    if dc.tc & tc::PDTV != 0 {
        f_mode <= 3
    } else {
        f_mode == satp::BARE || Scheme::from_atp_mode(f_mode, false).is_some()
    }
}

/// The second stage of one device context.
struct Stage2<'a> {
    ram: &'a dyn GuestMemory,
    iohgatp: u64,
    ade: bool,
}

impl Stage2<'_> {
    /// Guest-physical to physical, with the leaf's page size; Bare is the
    /// identity.
    fn translate(&self, gpa: u64, access: Access) -> Result<(u64, u32), PtErr> {
        let mode = self.iohgatp >> 60;
        if mode == satp::BARE {
            return Ok((gpa, 64));
        }
        let scheme = Scheme::from_atp_mode(mode, true).ok_or(PtErr::Guest { gpa, write: false, access: false })?;
        let mut mem = RamPt { ram: self.ram, ade: self.ade };
        // G-stage: every access is a user access (§8.5.1 of the
        // Privileged Architecture, which §2.3 of IOMMU 1.0 follows).
        let perms = Perms { user: true, sum: false, mxr: false, hlvx: false };
        match walk::walk_opts(&mut mem, scheme, self.iohgatp & ATP_PPN, gpa, access, perms, SVNAPOT) {
            Ok(leaf) => Ok((leaf.pa, leaf.page_shift)),
            Err(WalkError::Mem(PtErr::Access)) => Err(PtErr::Access),
            Err(_) => Err(PtErr::Guest { gpa, write: access == Access::Store, access: false }),
        }
    }
}

/// Physical page-table memory: the second stage's tables (and the first
/// stage's when there is no second stage).
struct RamPt<'a> {
    ram: &'a dyn GuestMemory,
    ade: bool,
}

impl PtMemory for RamPt<'_> {
    type Error = PtErr;
    fn read_pte(&mut self, addr: u64) -> Result<u64, PtErr> {
        self.ram.load(addr, 8).map_err(|_| PtErr::Access)
    }
    fn update_pte(&mut self, addr: u64, old: u64, new: u64) -> Result<bool, PtErr> {
        if !self.ade {
            return Err(PtErr::NoAd);
        }
        // Compare and write back. Not atomic against the harts: a hart
        // racing its own page-table store sees either value, as with a
        // hardware IOMMU whose update loses to a later store.
        if self.ram.load(addr, 8).map_err(|_| PtErr::Access)? != old {
            return Ok(false);
        }
        self.ram.store(addr, 8, new).map_err(|_| PtErr::Access)?;
        Ok(true)
    }
}

/// First-stage page-table memory: guest-physical, each entry reached
/// through the second stage (an implicit access, §2.3).
struct Stage1Mem<'a, 'b> {
    g: &'a Stage2<'b>,
    ade: bool,
}

impl PtMemory for Stage1Mem<'_, '_> {
    type Error = PtErr;
    fn read_pte(&mut self, gpa: u64) -> Result<u64, PtErr> {
        let (pa, _) = self.g.translate(gpa, Access::Load).map_err(implicit(gpa, false))?;
        self.g.ram.load(pa, 8).map_err(|_| PtErr::Access)
    }
    fn update_pte(&mut self, gpa: u64, old: u64, new: u64) -> Result<bool, PtErr> {
        if !self.ade {
            return Err(PtErr::NoAd);
        }
        let (pa, _) = self.g.translate(gpa, Access::Store).map_err(implicit(gpa, true))?;
        RamPt { ram: self.g.ram, ade: true }.update_pte(pa, old, new)
    }
}

fn implicit(gpa: u64, write: bool) -> impl Fn(PtErr) -> PtErr {
    move |e| match e {
        PtErr::Access => PtErr::Guest { gpa, write, access: true },
        _ => PtErr::Guest { gpa, write, access: false },
    }
}

/// A queue base as written: LOG2SZ-1 clamped, PPN kept, the rest zero.
fn queue_base(v: u64) -> u64 {
    (v & PPN_FIELD) | (v & 0x1f).min(MAX_LOG2SZ)
}

impl MmioDevice for Iommu {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let word = self.read64(offset & !7);
        match size {
            8 if offset & 7 == 0 => word,
            4 if offset & 3 == 0 => (word >> ((offset & 4) * 8)) & 0xffff_ffff,
            _ => 0,
        }
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        match size {
            8 if offset & 7 == 0 => self.write_reg(offset, 8, value),
            4 if offset & 3 == 0 => self.write_reg(offset, 4, value & 0xffff_ffff),
            _ => {}
        }
    }
}

/// The shared IOMMU's counters, for the run loop's statistics.
pub fn stats_of(iommu: &Mutex<Iommu>) -> (BTreeMap<u32, DeviceStats>, u64, u64, u64) {
    let i = lock(iommu);
    (i.stats.clone(), i.records, i.lost_records, i.commands)
}

//! The IOMMU against tables and queues built here by hand, the way a
//! driver would (the expected values come from the specification's
//! formats, not from the code under test), and against hostile ones.

use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use strata_arch::pte::{A, D, N, R, U, V, W};
use strata_memory::GuestRam;

use super::*;
use crate::board::VIRT;

const MIB: u64 = 1 << 20;
/// Guest RAM: 16 MiB at the board's RAM base.
fn ram() -> Arc<GuestRam> {
    Arc::new(GuestRam::new(VIRT.ram_base, 16 * MIB).unwrap())
}
fn at(off: u64) -> u64 {
    VIRT.ram_base + off
}

#[derive(Default)]
struct Wire(AtomicBool);
impl IrqLine for Wire {
    fn set_level(&self, level: bool) {
        self.0.store(level, Ordering::SeqCst);
    }
}

struct Rig {
    ram: Arc<GuestRam>,
    iommu: Iommu,
    wires: Vec<Arc<Wire>>,
    /// Next free page for tables (bump allocator from 1 MiB up).
    next: u64,
}

impl Rig {
    fn new() -> Rig {
        let ram = ram();
        let wires: Vec<Arc<Wire>> = (0..VECTORS).map(|_| Arc::new(Wire::default())).collect();
        let lines = wires.iter().map(|w| w.clone() as Arc<dyn IrqLine>).collect();
        let iommu = Iommu::new(ram.clone(), lines);
        Rig { ram, iommu, wires, next: at(MIB) }
    }
    fn page(&mut self) -> u64 {
        self.alloc(4096)
    }
    fn alloc(&mut self, size: u64) -> u64 {
        let a = self.next.next_multiple_of(size.max(4096));
        self.next = a + size;
        a
    }
    fn w64(&mut self, off: u64, v: u64) {
        self.iommu.write(off, 8, v);
    }
    fn w32(&mut self, off: u64, v: u64) {
        self.iommu.write(off, 4, v);
    }
    fn r64(&mut self, off: u64) -> u64 {
        self.iommu.read(off, 8)
    }
    fn r32(&mut self, off: u64) -> u64 {
        self.iommu.read(off, 4)
    }
    fn st(&self, a: u64, v: u64) {
        self.ram.store(a, 8, v).unwrap();
    }
    fn ld(&self, a: u64) -> u64 {
        self.ram.load(a, 8).unwrap()
    }

    /// A DDT of `levels` levels with device `did`'s context `dc`; returns
    /// the ddtp value (written too).
    fn ddt(&mut self, levels: u32, did: u32, dc: [u64; 4]) -> u64 {
        let root = self.page();
        let ddi = [did as u64 & 0x7f, (did as u64 >> 7) & 0x1ff, (did as u64 >> 16) & 0xff];
        let mut table = root;
        for level in (1..levels as usize).rev() {
            let next = self.page();
            self.st(table + ddi[level] * 8, (next >> 12) << 10 | 1);
            table = next;
        }
        for (i, v) in dc.iter().enumerate() {
            self.st(table + ddi[0] * 32 + i as u64 * 8, *v);
        }
        let ddtp = (root >> 12) << 10 | (levels as u64 + 1);
        self.w64(reg::DDTP, ddtp);
        ddtp
    }

    /// Maps `va` to `pa` (4 KiB) in the Sv39 (or, with `x4`, Sv39x4)
    /// tables at `root`, with leaf bits `bits`.
    fn map(&mut self, root: u64, x4: bool, va: u64, pa: u64, bits: u64) {
        let mut table = root;
        for level in (1..3).rev() {
            let width = if x4 && level == 2 { 11 } else { 9 };
            let idx = (va >> (12 + 9 * level)) & ((1 << width) - 1);
            let e = self.ld(table + idx * 8);
            table = if e & V != 0 {
                ((e >> 10) & ((1 << 44) - 1)) << 12
            } else {
                let p = self.page();
                self.st(table + idx * 8, (p >> 12) << 10 | V);
                p
            };
        }
        self.st(table + ((va >> 12) & 511) * 8, (pa >> 12) << 10 | V | bits);
    }

    fn queues(&mut self) -> (u64, u64) {
        let cq = self.page();
        let fq = self.page();
        // 2^(LOG2SZ-1 + 1) entries: 64 commands (1 KiB), 64 records (2 KiB).
        self.w64(reg::CQB, (cq >> 12) << 10 | 5);
        self.w64(reg::FQB, (fq >> 12) << 10 | 5);
        self.w32(reg::CQCSR, qcsr::EN | qcsr::IE);
        self.w32(reg::FQCSR, qcsr::EN | qcsr::IE);
        // icvec: CIV 0, FIV 1.
        self.w64(reg::ICVEC, 1 << 4);
        (cq, fq)
    }

    /// Puts commands in the queue at `cq` and rings the tail.
    fn commands(&mut self, cq: u64, cmds: &[(u64, u64)]) {
        let mut t = self.r32(reg::CQT);
        for &(d0, d1) in cmds {
            self.st(cq + t * 16, d0);
            self.st(cq + t * 16 + 8, d1);
            t = (t + 1) % 64;
        }
        self.w32(reg::CQT, t);
    }
}

const SV39_MODE: u64 = satp::SV39 << 60;
const RW: u64 = R | W | U | A | D;

#[test]
fn capabilities_tell_what_is_implemented() {
    let mut r = Rig::new();
    let caps = r.r64(reg::CAPABILITIES);
    assert_eq!(caps & 0xff, 0x10, "version 1.0");
    assert_eq!((caps >> 28) & 3, 1, "IGS: wired interrupts only");
    assert_eq!(caps & (1 << 22), 0, "MSI_FLAT: base-format device contexts");
    assert_eq!(caps & (1 << 25), 0, "no ATS");
    assert_eq!(caps & (1 << 8), 0, "no Sv32");
    for bit in [9, 10, 11, 17, 18, 19, 24, 38, 39, 40] {
        assert_ne!(caps & (1 << bit), 0, "bit {bit}");
    }
    assert_eq!((caps >> 32) & 0x3f, 56, "PAS");
    // fctl: WSI read-only 1, BE 0.
    assert_eq!(r.r32(reg::FCTL), 2);
    r.w32(reg::FCTL, 0);
    assert_eq!(r.r32(reg::FCTL), 2);
    // Read-only registers ignore writes.
    r.w64(reg::CAPABILITIES, 0);
    assert_eq!(r.r64(reg::CAPABILITIES), caps);
}

#[test]
fn ddtp_and_queue_bases_are_warl() {
    let mut r = Rig::new();
    assert_eq!(r.r64(reg::DDTP) & 0xf, 1, "resets to Bare");
    let v = (0x8_1234u64 << 10) | 4;
    r.w64(reg::DDTP, v);
    assert_eq!(r.r64(reg::DDTP), v);
    r.w64(reg::DDTP, (0x999 << 10) | 7);
    assert_eq!(r.r64(reg::DDTP), v, "an unsupported mode leaves ddtp alone");
    r.w64(reg::CQB, 0x1f);
    assert_eq!(r.r64(reg::CQB), MAX_LOG2SZ);
    let qb = (0x8_0123u64 << 10) | 12;
    r.w64(reg::CQB, qb);
    assert_eq!(r.r64(reg::CQB), qb);
    // icvec: each field WARL below the number of vectors.
    r.w64(reg::ICVEC, 0xfedc);
    assert_eq!(r.r64(reg::ICVEC), 0x3210, "each field modulo 4 vectors");
}

#[test]
fn off_refuses_everything_and_bare_passes_through() {
    let mut r = Rig::new();
    assert_eq!(r.iommu.translate(5, at(0x1234), false), Ok(at(0x1234)));
    r.w64(reg::DDTP, 0);
    let f = r.iommu.translate(5, at(0x1234), true).unwrap_err();
    assert_eq!((f.cause, f.ttyp, f.did), (256, 3, 5));
}

#[test]
fn first_stage_through_one_two_and_three_level_directories() {
    for levels in 1..=3 {
        let mut r = Rig::new();
        let root = r.page();
        let did = [0x55, 0x1234, 0xab_cdef][levels as usize - 1];
        r.ddt(levels, did, [tc::V, 0, 7 << 12, SV39_MODE | root >> 12]);
        r.map(root, false, 0x10_0000_0000 >> 4, at(0x30_0000), RW);
        let iova = (0x10_0000_0000 >> 4) + 0x123;
        assert_eq!(r.iommu.translate(did, iova, false), Ok(at(0x30_0123)), "{levels} levels");
        assert_eq!(r.iommu.translate(did, iova, true), Ok(at(0x30_0123)));
        // Unmapped: a page fault of the right kind, with the IOVA.
        let f = r.iommu.translate(did, 0x5000, true).unwrap_err();
        assert_eq!((f.cause, f.iotval), (cause::STORE_PAGE, 0x5000));
        let f = r.iommu.translate(did, 0x5000, false).unwrap_err();
        assert_eq!(f.cause, cause::LOAD_PAGE);
        // A device ID wider than the directory: transaction type disallowed.
        if levels < 3 {
            let wide = 1 << [7, 16][levels as usize - 1];
            assert_eq!(r.iommu.translate(wide, iova, false).unwrap_err().cause, 260);
        }
    }
}

#[test]
fn permissions_user_bit_and_ad_updates() {
    let mut r = Rig::new();
    let root = r.page();
    let dc = [tc::V, 0, 1 << 12, SV39_MODE | root >> 12];
    r.ddt(1, 1, dc);
    r.map(root, false, 0x1000, at(0x40_0000), R | U | A); // read-only
    r.map(root, false, 0x2000, at(0x40_1000), R | W | A | D); // no U: supervisor page
    r.map(root, false, 0x3000, at(0x40_2000), R | W | U); // no A/D
    assert!(r.iommu.translate(1, 0x1000, false).is_ok());
    assert_eq!(r.iommu.translate(1, 0x1000, true).unwrap_err().cause, cause::STORE_PAGE);
    assert_eq!(r.iommu.translate(1, 0x2000, false).unwrap_err().cause, cause::LOAD_PAGE, "U=0");
    // Without SADE the IOMMU does not set A/D: a page fault.
    assert_eq!(r.iommu.translate(1, 0x3000, false).unwrap_err().cause, cause::LOAD_PAGE);
    // With SADE it sets them (capabilities.AMO_HWAD).
    let mut r2 = Rig::new();
    let root = r2.page();
    r2.ddt(1, 1, [tc::V | tc::SADE, 0, 1 << 12, SV39_MODE | root >> 12]);
    r2.map(root, false, 0x3000, at(0x40_2000), R | W | U);
    assert_eq!(r2.iommu.translate(1, 0x3000, true), Ok(at(0x40_2000)));
    let leaf = r2.walk_leaf(root, 0x3000);
    assert_eq!(r2.ld(leaf) & (A | D), A | D);
}

impl Rig {
    fn walk_leaf(&self, root: u64, va: u64) -> u64 {
        let mut table = root;
        for level in (1..3).rev() {
            let e = self.ld(table + ((va >> (12 + 9 * level)) & 511) * 8);
            table = ((e >> 10) & ((1 << 44) - 1)) << 12;
        }
        table + ((va >> 12) & 511) * 8
    }
}

#[test]
fn svnapot_leaves_map_64k() {
    let mut r = Rig::new();
    let root = r.page();
    r.ddt(1, 1, [tc::V, 0, 1 << 12, SV39_MODE | root >> 12]);
    // A 64 KiB NAPOT leaf at IOVA 0x10000 -> 0x50_0000: PPN[3:0] = 0b1000.
    r.map(root, false, 0x1_0000, at(0x50_0000), RW);
    let leaf = r.walk_leaf(root, 0x1_0000);
    r.st(leaf, (at(0x50_0000) >> 12 | 8) << 10 | V | RW | N);
    assert_eq!(r.iommu.translate(1, 0x1_0abc, false), Ok(at(0x50_0abc)));
}

#[test]
fn second_stage_alone_and_under_a_first_stage() {
    let mut r = Rig::new();
    let groot = r.alloc(16384); // the x4 root: 16 KiB, aligned
    let iohgatp = satp::SV39 << 60 | 9 << 44 | groot >> 12;
    r.ddt(2, 3, [tc::V, iohgatp, 0, 0]);
    // GPA 2^40 (beyond 39 bits: it needs the x4 root's wider index).
    r.map(groot, true, 0x100_0000_0000, at(0x60_0000), RW);
    assert_eq!(r.iommu.translate(3, 0x100_0000_0010, true), Ok(at(0x60_0010)));
    let f = r.iommu.translate(3, 0x7000, false).unwrap_err();
    assert_eq!((f.cause, f.iotval, f.iotval2), (cause::LOAD_GUEST_PAGE, 0x7000, 0x7000));

    // Both stages: the first-stage tables sit at guest-physical addresses.
    let mut r = Rig::new();
    let groot = r.alloc(16384);
    let iohgatp = satp::SV39 << 60 | 2 << 44 | groot >> 12;
    let s1_root_pa = r.page();
    let data_pa = at(0x70_0000);
    r.map(groot, true, 0x1000_0000, s1_root_pa, RW); // GPA of the S1 root
    let mut s1_tables = vec![];
    // Build the S1 walk by hand: root -> l1 -> l0 at guest-physical pages.
    for gpa in [0x1000_1000u64, 0x1000_2000] {
        let pa = r.page();
        r.map(groot, true, gpa, pa, RW);
        s1_tables.push((gpa, pa));
    }
    r.map(groot, true, 0x2000_0000, data_pa, RW); // the data page's GPA
    let iova = 0x4000_5000u64;
    r.st(s1_root_pa + ((iova >> 30) & 511) * 8, (0x1000_1000u64 >> 12) << 10 | V);
    r.st(s1_tables[0].1 + ((iova >> 21) & 511) * 8, (0x1000_2000u64 >> 12) << 10 | V);
    r.st(s1_tables[1].1 + ((iova >> 12) & 511) * 8, (0x2000_0000u64 >> 12) << 10 | V | RW);
    r.ddt(3, 0x42, [tc::V, iohgatp, 5 << 12, SV39_MODE | 0x1000_0000 >> 12]);
    assert_eq!(r.iommu.translate(0x42, iova + 8, false), Ok(data_pa + 8));
    // A first-stage entry whose GPA the second stage lacks: an implicit
    // guest-page fault (iotval2 bit 0).
    r.st(s1_tables[1].1 + ((0x4000_6000u64 >> 12) & 511) * 8, (0x3000_0000u64 >> 12) << 10 | V | RW);
    let f = r.iommu.translate(0x42, 0x4000_6000, false).unwrap_err();
    assert_eq!((f.cause, f.iotval2), (cause::LOAD_GUEST_PAGE, 0x3000_0000), "the leaf's GPA, explicit");
    r.st(s1_root_pa + 2 * 8, (0x5000_0000u64 >> 12) << 10 | V);
    let f = r.iommu.translate(0x42, 0x8000_0000, false).unwrap_err();
    assert_eq!((f.cause, f.iotval2), (cause::LOAD_GUEST_PAGE, 0x5000_0000 | 1), "implicit access");
}

#[test]
fn directory_faults_name_their_cause() {
    let mut r = Rig::new();
    let root = r.page();
    // tc.V = 0: DDT entry invalid.
    r.ddt(1, 9, [0, 0, 0, 0]);
    assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_INVALID);
    // A non-leaf entry that is not valid.
    r.w64(reg::DDTP, (root >> 12) << 10 | 4);
    assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_INVALID);
    // A non-leaf entry with reserved bits: misconfigured.
    r.st(root, 1 << 60 | 1);
    assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_MISCONFIGURED);
    // Pointing outside RAM: a load access fault.
    r.st(root, (0x1_0000_0000u64 >> 12) << 10 | 1);
    assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_LOAD_FAULT);
    r.w64(reg::DDTP, (0x1000u64 >> 12) << 10 | 2);
    assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_LOAD_FAULT);
    // Features the capabilities do not offer: misconfigured.
    for tc_bits in [tc::V | tc::EN_ATS, tc::V | tc::T2GPA, tc::V | tc::TC_SXL, tc::V | tc::DPE, tc::V | 1 << 40] {
        let mut r = Rig::new();
        r.ddt(1, 9, [tc_bits, 0, 0, 0]);
        assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_MISCONFIGURED, "{tc_bits:#x}");
    }
    // A second-stage root not 16 KiB aligned; an unknown first-stage mode.
    for dc in [[tc::V, satp::SV39 << 60 | 1, 0, 0], [tc::V, 0, 0, 7 << 60]] {
        let mut r = Rig::new();
        r.ddt(1, 9, dc);
        assert_eq!(r.iommu.translate(9, 0, false).unwrap_err().cause, fault::DDT_MISCONFIGURED);
    }
}

#[test]
fn faults_go_to_the_queue_with_an_interrupt() {
    let mut r = Rig::new();
    let (_cq, fq) = r.queues();
    let root = r.page();
    r.ddt(2, 0x77, [tc::V, 0, 1 << 12, SV39_MODE | root >> 12]);
    assert!(r.iommu.translate(0x77, 0xdead_0000, true).is_err());
    assert_eq!(r.r32(reg::FQT), 1);
    let hdr = r.ld(fq);
    assert_eq!(hdr & 0xfff, cause::STORE_PAGE);
    assert_eq!((hdr >> 34) & 0x3f, ttyp::UNTRANSLATED_WRITE);
    assert_eq!(hdr >> 40, 0x77);
    assert_eq!(r.ld(fq + 16), 0xdead_0000, "iotval");
    assert_eq!(r.r32(reg::IPSR), ipsr::FIP);
    assert!(r.wires[1].0.load(Ordering::SeqCst), "FIV = 1");
    assert!(!r.wires[0].0.load(Ordering::SeqCst));
    r.w32(reg::IPSR, ipsr::FIP);
    assert!(!r.wires[1].0.load(Ordering::SeqCst));
    // DTF: translation faults of this device are not reported.
    let mut r = Rig::new();
    r.queues();
    let root = r.page();
    r.ddt(1, 1, [tc::V | tc::DTF, 0, 1 << 12, SV39_MODE | root >> 12]);
    assert!(r.iommu.translate(1, 0x9000, false).is_err());
    assert_eq!(r.r32(reg::FQT), 0);
    assert_eq!(r.iommu.stats()[&1].faults, 1);
}

#[test]
fn a_full_fault_queue_overflows() {
    let mut r = Rig::new();
    r.queues();
    r.w64(reg::DDTP, 0);
    for _ in 0..70 {
        let _ = r.iommu.translate(2, 0, false);
    }
    assert_eq!(r.r32(reg::FQT), 63, "one slot stays free");
    assert_ne!(r.r32(reg::FQCSR) & qcsr::TO_OF, 0);
    assert_eq!((r.iommu.records, r.iommu.lost_records), (63, 7));
}

#[test]
fn iotlb_caches_until_invalidated() {
    let mut r = Rig::new();
    let (cq, _) = r.queues();
    let root = r.page();
    r.ddt(1, 4, [tc::V, 0, 33 << 12, SV39_MODE | root >> 12]);
    r.map(root, false, 0x8000, at(0x20_0000), RW);
    assert_eq!(r.iommu.translate(4, 0x8000, false), Ok(at(0x20_0000)));
    assert_eq!(r.iommu.translate(4, 0x8004, false), Ok(at(0x20_0004)));
    assert_eq!((r.iommu.stats()[&4].hits, r.iommu.stats()[&4].misses), (1, 1));
    // Remapped in memory only: the IOTLB still answers the old page.
    r.map(root, false, 0x8000, at(0x21_0000), RW);
    assert_eq!(r.iommu.translate(4, 0x8000, false), Ok(at(0x20_0000)));
    // IOTINVAL.VMA for another PSCID changes nothing; for PSCID 33 and
    // the address it does.
    let vma = |pscid: u64| 1 | cmd::PSCV | pscid << 12 | cmd::AV;
    r.commands(cq, &[(vma(32), (0x8000 >> 12) << 10)]);
    assert_eq!(r.iommu.translate(4, 0x8000, false), Ok(at(0x20_0000)));
    r.commands(cq, &[(vma(33), (0x8000 >> 12) << 10)]);
    assert_eq!(r.r32(reg::CQH), 2);
    assert_eq!(r.iommu.translate(4, 0x8000, false), Ok(at(0x21_0000)));
    assert_eq!(r.iommu.stats()[&4].invalidations, 1);
    // The device context is cached too, until IODIR.INVAL_DDT.
    let ddt_root = (r.r64(reg::DDTP) >> 10) << 12;
    r.st(ddt_root + 4 * 32, 0);
    assert!(r.iommu.translate(4, 0x8000, false).is_ok());
    r.commands(cq, &[(3 | cmd::DV | 4 << 40, 0)]);
    assert_eq!(r.iommu.translate(4, 0x8000, false).unwrap_err().cause, fault::DDT_INVALID);
}

#[test]
fn gvma_invalidates_by_gscid() {
    let mut r = Rig::new();
    let (cq, _) = r.queues();
    let groot = r.alloc(16384);
    r.ddt(1, 1, [tc::V, satp::SV39 << 60 | 7 << 44 | groot >> 12, 0, 0]);
    r.map(groot, true, 0x1000, at(0x20_0000), RW);
    assert!(r.iommu.translate(1, 0x1000, false).is_ok());
    assert_eq!(r.iommu.iotlb_len(), 1);
    r.commands(cq, &[(1 | 1 << 7 | cmd::GV | 6 << 44, 0)]);
    assert_eq!(r.iommu.iotlb_len(), 1, "another GSCID");
    r.commands(cq, &[(1 | 1 << 7 | cmd::GV | 7 << 44, 0)]);
    assert_eq!(r.iommu.iotlb_len(), 0);
    // GVMA with PSCV is illegal: the queue stops at it.
    r.commands(cq, &[(1 | 1 << 7 | cmd::PSCV, 0), (2, 0)]);
    assert_ne!(r.r32(reg::CQCSR) & qcsr::CMD_ILL, 0);
    assert_eq!(r.r32(reg::CQH), 2, "cqh stays on the illegal command");
    assert_eq!(r.r32(reg::IPSR) & ipsr::CIP, ipsr::CIP);
    assert!(r.wires[0].0.load(Ordering::SeqCst));
    // Clearing cmd_ill lets it go on; the bad command is replaced first.
    r.st(cq + 2 * 16, 2);
    r.w32(reg::CQCSR, qcsr::EN | qcsr::IE | qcsr::CMD_ILL);
    assert_eq!(r.r32(reg::CQH), 4);
}

#[test]
fn iofence_writes_its_data_and_raises_its_interrupt() {
    let mut r = Rig::new();
    let (cq, _) = r.queues();
    let target = at(0x10_0010);
    r.commands(cq, &[(2 | cmd::AV | 0xcafe_f00d << 32, target >> 2)]);
    assert_eq!(r.ram.load(target, 4).unwrap(), 0xcafe_f00d);
    r.commands(cq, &[(2 | cmd::FENCE_WSI, 0)]);
    assert_ne!(r.r32(reg::CQCSR) & qcsr::FENCE_W_IP, 0);
    assert_eq!(r.r32(reg::IPSR) & ipsr::CIP, ipsr::CIP);
    // A fence whose write falls outside RAM: a command-queue memory fault.
    r.commands(cq, &[(2 | cmd::AV, 0x10 >> 2)]);
    assert_ne!(r.r32(reg::CQCSR) & qcsr::MF, 0);
    // A queue base outside RAM: memory fault, no panic.
    let mut r = Rig::new();
    r.w64(reg::CQB, (0x4000u64 >> 12) << 10 | 3);
    r.w32(reg::CQCSR, qcsr::EN);
    r.w32(reg::CQT, 1);
    assert_ne!(r.r32(reg::CQCSR) & qcsr::MF, 0);
}

#[test]
fn process_directory_gives_process_zero_its_context() {
    for levels in 1..=3u64 {
        let mut r = Rig::new();
        let s1 = r.page();
        let pdt = r.page();
        let mut table = pdt;
        for _ in 1..levels {
            let next = r.page();
            r.st(table, (next >> 12) << 10 | 1); // PID 0: index 0 at each level
            table = next;
        }
        r.st(table, pc_ta::V | 11 << 12);
        r.st(table + 8, SV39_MODE | s1 >> 12);
        r.map(s1, false, 0x3000, at(0x33_0000), RW);
        r.ddt(1, 2, [tc::V | tc::PDTV | tc::DPE, 0, 0, levels << 60 | pdt >> 12]);
        assert_eq!(r.iommu.translate(2, 0x3008, false), Ok(at(0x33_0008)), "PD level {levels}");
        // Without DPE, a request without process ID has no first stage.
        let mut r2 = Rig::new();
        r2.ddt(1, 2, [tc::V | tc::PDTV, 0, 0, levels << 60 | pdt >> 12]);
        assert_eq!(r2.iommu.translate(2, 0x3008, false), Ok(0x3008));
        // An invalid process context.
        r.st(table, 0);
        r.commands_pdt_invalidate(2);
        assert_eq!(r.iommu.translate(2, 0x3008, false).unwrap_err().cause, fault::PDT_INVALID);
    }
}

impl Rig {
    fn commands_pdt_invalidate(&mut self, did: u64) {
        let (cq, _) = self.queues();
        self.commands(cq, &[(3 | 1 << 7 | cmd::DV | did << 40, 0)]);
        // The IOTLB keeps the translation until IOTINVAL: drop it too.
        self.commands(cq, &[(1, 0)]);
    }
}

#[test]
fn dma_through_the_iommu_never_lands_on_a_refused_page() {
    let ram = ram();
    let iommu = Iommu::shared(ram.clone(), vec![]);
    let mut r = Rig { ram: ram.clone(), iommu: Iommu::new(ram.clone(), vec![]), wires: vec![], next: at(MIB) };
    let root = r.page();
    let dc = [tc::V, 0, 1 << 12, SV39_MODE | root >> 12];
    let ddtp = r.ddt(1, 3, dc);
    r.map(root, false, 0x1000, at(0x80_0000), RW);
    lock(&iommu).write(reg::DDTP, 8, ddtp);
    let dma = DmaMemory::new(iommu.clone(), ram.clone() as Arc<dyn GuestMemory>, 3);
    // A write across the end of the mapped page: the first part lands,
    // the part on the unmapped page does not, and the access fails.
    assert!(dma.write_bytes(0x1ffc, &[0xaa; 8]).is_err());
    assert_eq!(ram.load(at(0x80_0ffc), 4).unwrap(), 0xaaaa_aaaa);
    assert_eq!(ram.load(at(0x80_1000), 4).unwrap(), 0);
    // An IOVA that is also a RAM address is not RAM for the device.
    let before = ram.load(at(0x10_0000), 8).unwrap();
    assert!(dma.store(at(0x10_0000), 8, u64::MAX).is_err());
    assert_eq!(ram.load(at(0x10_0000), 8).unwrap(), before);
    assert!(!dma.contains(at(0x10_0000), 8));
    assert!(dma.contains(0x1000, 4096));
    assert_eq!(dma.load(0x1ffc, 4), Ok(0xaaaa_aaaa));
    // The stray-write knob: after two writes, the marker goes to an
    // unmapped IOVA, and faults.
    dma.stray_write_after(1, at(0x10_0000), None);
    dma.store(0x1000, 1, 1).unwrap();
    dma.store(0x1001, 1, 1).unwrap();
    let mut b = [0u8; 8];
    ram.read_bytes(at(0x10_0000), &mut b).unwrap();
    assert_ne!(b, STRAY_MARKER_BYTES);
    let o = dma.stray_outcome().unwrap();
    assert!(o.faulted && !o.ram_at_iova_changed);
    assert_eq!(lock(&iommu).stats()[&3].faults, 4, "the straddling write, the store, contains, the stray");
    // A stray write under a device ID the directory lacks: DDT invalid.
    dma.stray_write_after(0, 0x1000, Some(99));
    dma.store(0x1000, 1, 1).unwrap();
    assert_eq!(lock(&iommu).stats()[&99].faults, 1);
    assert_eq!(ram.load(at(0x80_0000), 8).unwrap() & 0xff, 1, "only the device's own byte");
    // The control: in Bare mode the same stray write lands.
    lock(&iommu).write(reg::DDTP, 8, ddtp_mode::PASSTHROUGH);
    dma.stray_write_after(0, at(0x10_0000), None);
    dma.store(0x1000, 1, 1).unwrap_err();
    ram.read_bytes(at(0x10_0000), &mut b).unwrap();
    assert_eq!(b, STRAY_MARKER_BYTES);
    assert!(dma.stray_outcome().unwrap().ram_at_iova_changed);
}

use super::dma::STRAY_MARKER as STRAY_MARKER_BYTES;

// ---- hostile input --------------------------------------------------

/// Registers a guest can write, with the values that matter most often.
fn reg_write() -> impl Strategy<Value = (u64, u8, u64)> {
    let offs = prop_oneof![
        Just(reg::DDTP),
        Just(reg::CQB),
        Just(reg::CQT),
        Just(reg::CQH),
        Just(reg::FQB),
        Just(reg::FQH),
        Just(reg::CQCSR),
        Just(reg::FQCSR),
        Just(reg::IPSR),
        Just(reg::ICVEC),
        (0u64..0x1000),
    ];
    (offs, prop_oneof![Just(4u8), Just(8u8), Just(1u8), Just(2u8)], any::<u64>())
}

proptest! {
    #![proptest_config(strata_testkit::prop::config("iommu hostile tables and queues", 256))]

    /// Random register writes, random directory, table and queue contents
    /// (words aimed at RAM and at nowhere), random requests: the IOMMU
    /// never panics, never loops, keeps its queue indices in range, and
    /// every address it answers for a request is one that RAM holds or the
    /// IOVA itself (Bare).
    #[test]
    fn hostile_registers_tables_and_queues(
        writes in proptest::collection::vec(reg_write(), 0..40),
        words in proptest::collection::vec((0u64..(1 << 18), any::<u64>(), any::<bool>()), 0..400),
        requests in proptest::collection::vec((0u32..(1 << 24), any::<u64>(), any::<bool>()), 1..40),
    ) {
        let ram = Arc::new(GuestRam::new(VIRT.ram_base, MIB).unwrap());
        // Fill RAM words: half are plausible pointers (a PPN inside RAM
        // with V and random low bits), half are noise.
        for (slot, v, ptr) in words {
            let word = if ptr { ((VIRT.ram_base >> 12) + (v & 0xff)) << 10 | (v & 0x3ff) | 1 } else { v };
            ram.store(VIRT.ram_base + (slot % (MIB / 8)) * 8, 8, word).unwrap();
        }
        let mut iommu = Iommu::new(ram.clone(), vec![Arc::new(crate::NoIrq)]);
        // Point the directory and queues at RAM half the time.
        for (i, (off, size, v)) in writes.into_iter().enumerate() {
            let v = if i % 2 == 0 && matches!(off, reg::DDTP | reg::CQB | reg::FQB) {
                ((VIRT.ram_base >> 12) + (v >> 20 & 0xff)) << 10 | (v & 0x1f)
            } else {
                v
            };
            iommu.write(off, size, v);
            let _ = iommu.read(off, size);
            let cqmask = (2u64 << (iommu.cqb & 0x1f)) - 1;
            prop_assert!(iommu.cqh <= cqmask && iommu.cqt <= cqmask);
            let fqmask = (2u64 << (iommu.fqb & 0x1f)) - 1;
            prop_assert!(iommu.fqh <= fqmask && iommu.fqt <= fqmask);
        }
        for (did, iova, write) in requests {
            // A translated address fits the 56-bit physical address
            // space; only an untranslated request (Bare) keeps its IOVA.
            if let Ok(pa) = iommu.translate(did, iova, write) {
                prop_assert!(pa == iova || pa >> 56 == 0, "pa {pa:#x} for iova {iova:#x}");
            }
        }
        prop_assert_eq!(iommu.ipsr & !(ipsr::CIP | ipsr::FIP), 0);
    }
}

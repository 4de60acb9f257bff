//! The `xenvcfg` fields each configuration implements (Priv. §3.1.18,
//! §4.1.10, §8.2.5): FIOM always; STCE with Sstc (not in `senvcfg`);
//! CBIE (bits 5:4) and CBCFE (bit 6) with Zicbom, CBZE (bit 7) with
//! Zicboz, PBMTE (bit 62, not in `senvcfg`) with Svpbmt. Written as literal bit values from the chapters' register
//! figures, so a wrong constant in `strata_arch::csr::envcfg` fails here.

use std::sync::Arc;

use strata_arch::ext::Extensions;
use strata_irq::HartIrqs;
use strata_memory::GuestRam;

use super::addr::{HENVCFG, MENVCFG, SENVCFG};
use crate::Hart;

fn hart(exts: Extensions) -> Hart {
    let ram = Arc::new(GuestRam::new(0x8000_0000, 1 << 16).unwrap());
    let mut h = Hart::new(0, ram, HartIrqs::new());
    h.set_extensions(exts);
    h
}

/// Writes all ones to each register and reads back what stuck.
fn all_ones(exts: Extensions) -> [u64; 3] {
    let mut h = hart(exts);
    [MENVCFG, SENVCFG, HENVCFG].map(|n| {
        assert!(h.csr_poke(n, u64::MAX));
        h.csr_peek(n).unwrap()
    })
}

#[test]
fn writable_fields_follow_the_extensions() {
    // rv64gc: FIOM only, as Strata always was.
    assert_eq!(all_ones(Extensions::RV64GC), [0x1, 0x1, 0x1]);
    // default: FIOM, STCE (bit 63) in menvcfg/henvcfg.
    assert_eq!(all_ones(Extensions::DEFAULT), [0x8000_0000_0000_0001, 0x1, 0x8000_0000_0000_0001]);
    // max: also CBIE, CBCFE, CBZE (0xf0) in all three, and PBMTE (bit 62)
    // in menvcfg/henvcfg.
    assert_eq!(all_ones(Extensions::MAX), [0xc000_0000_0000_00f1, 0xf1, 0xc000_0000_0000_00f1]);
}

/// §8.2.5: henvcfg.PBMTE is read-only zero while menvcfg.PBMTE is clear.
#[test]
fn henvcfg_pbmte_follows_menvcfg() {
    let mut h = hart(Extensions::MAX);
    assert!(h.csr_poke(MENVCFG, 0));
    assert!(h.csr_poke(HENVCFG, 1 << 62));
    assert_eq!(h.csr_peek(HENVCFG).unwrap() >> 62 & 1, 0);
    assert!(h.csr_poke(MENVCFG, 1 << 62));
    assert_eq!(h.csr_peek(HENVCFG).unwrap() >> 62 & 1, 1, "the written bit shows once menvcfg allows it");
}

#[test]
fn cbie_reserved_value_is_not_kept() {
    let mut h = hart(Extensions::MAX);
    for n in [MENVCFG, SENVCFG, HENVCFG] {
        assert!(h.csr_poke(n, 0x10));
        assert!(h.csr_poke(n, 0x20), "CBIE = 10");
        assert_eq!(h.csr_peek(n).unwrap() & 0x30, 0x10, "{n:#x}: a write of 10 keeps the old CBIE");
        assert!(h.csr_poke(n, 0x30));
        assert_eq!(h.csr_peek(n).unwrap() & 0x30, 0x30, "{n:#x}: 11 is kept");
    }
}

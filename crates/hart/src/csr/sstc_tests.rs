//! Sstc (Privileged Architecture, "Sstc" chapter): the levels
//! `stimecmp`/`vstimecmp` drive and the deadlines an idle machine must wake
//! for. The expected values come from the chapter's rules, not from the
//! code: STIP = `menvcfg.STCE && time >= stimecmp`; VSTIP (from Sstc) =
//! `menvcfg.STCE && henvcfg.STCE && time + htimedelta >= vstimecmp`; a
//! line that is low and armed is a deadline (in `mtime`), one already high
//! is not.

use std::sync::Arc;

use strata_arch::ext::{Ext, Extensions};
use strata_arch::irq::{bit, STIP, VSTIP};
use strata_irq::HartIrqs;
use strata_memory::GuestRam;

use super::envcfg::STCE;
use crate::Hart;

fn hart(exts: Extensions) -> Hart {
    let ram = Arc::new(GuestRam::new(0x8000_0000, 1 << 16).unwrap());
    let mut h = Hart::new(0, ram, HartIrqs::new());
    h.set_extensions(exts);
    h
}

fn lines(h: &Hart) -> (bool, bool) {
    (h.mip() & bit(STIP) != 0, h.mip() & bit(VSTIP) != 0)
}

#[test]
fn stimecmp_drives_stip_only_while_stce_is_set() {
    let mut h = hart(Extensions::DEFAULT);
    h.csr.stimecmp = 1000;
    h.sstc_update(5000);
    assert_eq!(lines(&h), (false, false), "STCE=0: no line, whatever the compare");
    assert_eq!(h.timer_deadline(), None, "STCE=0: no deadline");

    assert!(h.csr_poke(super::addr::MENVCFG, STCE));
    h.sstc_update(999);
    assert_eq!(lines(&h), (false, false), "time < stimecmp");
    assert_eq!(h.timer_deadline(), Some(1000));
    h.sstc_update(1000);
    assert_eq!(lines(&h), (true, false), "time == stimecmp raises STIP");
    assert_eq!(h.timer_deadline(), None, "a raised line is no deadline");
    h.csr.stimecmp = u64::MAX;
    h.sstc_update(1000);
    assert_eq!(lines(&h), (false, false), "a level: it falls with a later compare");
    assert_eq!(h.timer_deadline(), None, "all ones: the timer is off");
}

#[test]
fn vstimecmp_compares_with_guest_time() {
    let mut h = hart(Extensions::DEFAULT);
    assert!(h.csr_poke(super::addr::MENVCFG, STCE));
    assert!(h.csr_poke(super::addr::HENVCFG, STCE));
    h.csr.stimecmp = u64::MAX;
    h.csr.vstimecmp = 10_000;
    h.csr.htimedelta = 3_000;
    h.sstc_update(6_999);
    assert_eq!(lines(&h), (false, false), "6999 + 3000 < 10000");
    assert_eq!(h.timer_deadline(), Some(7_000), "the host time at which guest time reaches vstimecmp");
    h.sstc_update(7_000);
    assert_eq!(lines(&h), (false, true));
    assert_eq!(h.timer_deadline(), None, "stimecmp is off, vstimecmp has fired");
    h.csr.stimecmp = 123_456;
    h.sstc_update(7_000);
    assert_eq!(h.timer_deadline(), Some(123_456));

    // Clearing menvcfg.STCE makes henvcfg.STCE read as zero: no VS line.
    assert!(h.csr_poke(super::addr::MENVCFG, 0));
    assert_eq!(h.csr_peek(super::addr::HENVCFG), Some(0));
    h.sstc_update(7_000);
    assert_eq!(lines(&h), (false, false));
    assert_eq!(h.timer_deadline(), None);
}

#[test]
fn without_sstc_stce_cannot_be_set() {
    let mut h = hart(Extensions::RV64GC);
    assert!(!h.extensions().has(Ext::Sstc));
    assert!(h.csr_poke(super::addr::MENVCFG, STCE));
    assert_eq!(h.csr_peek(super::addr::MENVCFG), Some(0), "STCE read-only zero");
    assert_eq!(h.csr_peek(super::addr::STIMECMP), None, "no stimecmp");
    h.sstc_update(u64::MAX);
    assert_eq!(lines(&h), (false, false));
    assert_eq!(h.timer_deadline(), None);
}

/// A bus whose `mtime` stands still at its value.
struct At(u64);

impl crate::Bus for At {
    fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
        None
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
        false
    }
    fn mtime(&self) -> u64 {
        self.0
    }
}

/// Time passes between runs, so every way of running the hart compares
/// the timers when it starts: a line whose time has come is high after the
/// next run, whichever way it is run (the gdb stub runs harts with
/// `run_until`; without the comparison there, a guest waiting for its
/// Sstc timer under gdb waited forever).
#[test]
fn every_way_of_running_compares_on_entry() {
    type Run = fn(&mut Hart, &mut At);
    let ways: [(&str, Run); 2] = [
        ("run", |h, b| {
            h.run(b, 1);
        }),
        ("run_until", |h, b| {
            h.run_until(b, 1, &std::collections::BTreeSet::new());
        }),
    ];
    for (name, run) in ways {
        let mut h = hart(Extensions::DEFAULT);
        assert!(h.csr_poke(super::addr::MENVCFG, STCE));
        h.csr.stimecmp = 1000;
        h.sstc_update(999);
        assert_eq!(lines(&h), (false, false), "{name}: before its time");
        // Idle, with no interrupt enabled: the run executes nothing.
        h.wfi = true;
        run(&mut h, &mut At(5000));
        assert_eq!(lines(&h), (true, false), "{name}: STIP after a run at time 5000 >= stimecmp");
    }
}

//! A hart's architectural state for snapshots (issue 15, docs/snapshot.md).
//!
//! [`HartState`] is everything a guest can observe of a hart: the integer
//! and FP registers, `pc`, the privilege and V, every CSR ([`Csrs`]: the
//! machine, supervisor, Hypervisor and virtual-supervisor registers, the
//! counters as offsets from `instret`), PMP, the LR reservation and the
//! value it read, WFI, and the interrupt lines the devices drive (so a
//! level raised before the snapshot is pending after it, before any device
//! has looked at time again).
//!
//! Not saved, because no guest can tell: the TLB, the G-stage cache, the
//! decoded-code cache and the JIT's blocks. [`Hart::restore`] empties them;
//! that is architecturally safe because each only ever holds what a walk or
//! a decode of the current state would give again (Priv. §4.3.2 lets an
//! implementation drop cached translations at any time, and the hart's
//! caches are filled on demand), so starting empty only costs refills.
//! Scheduling hints (`wfi_spin`, `paused`), statistics and the
//! no-progress watch start afresh too: they never change what retires.
//! The hart's configuration (`hartid`, extensions, hypervisor mode) comes
//! from the machine the snapshot describes, not from here.

use serde::{Deserialize, Serialize};

use crate::csr::Csrs;
use crate::{progress, Hart, Priv};
use strata_mmu::pmp::{Pmp, ENTRIES};

/// One hart's architectural state (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HartState {
    pub hartid: u64,
    pub x: [u64; 32],
    pub f: [u64; 32],
    pub pc: u64,
    /// The privilege as in `mstatus.MPP`: 0 U, 1 S, 3 M.
    pub prv: u8,
    pub virt: bool,
    pub csr: Csrs,
    pub pmpcfg: [u64; 2],
    pub pmpaddr: [u64; ENTRIES],
    pub instret: u64,
    pub wfi: bool,
    pub reservation: Option<u64>,
    pub lr_value: u64,
    /// The device-driven `mip` bits (MSIP, MTIP, MEIP, SEIP lines).
    pub lines: u64,
}

impl Hart {
    /// The hart's architectural state. Call it between slices (never inside
    /// [`Hart::run`]).
    pub fn save(&self) -> HartState {
        HartState {
            hartid: self.hartid,
            x: self.x,
            f: self.f,
            pc: self.pc,
            prv: self.prv as u8,
            virt: self.virt,
            csr: self.csr.clone(),
            pmpcfg: [self.pmp.read_cfg(0), self.pmp.read_cfg(2)],
            pmpaddr: std::array::from_fn(|i| self.pmp.read_addr(i)),
            instret: self.instret,
            wfi: self.wfi,
            reservation: self.reservation,
            lr_value: self.lr_value,
            lines: self.irqs.pending(),
        }
    }

    /// Puts the hart in state `s` and empties every cache of translations
    /// and code (see the module documentation). Refuses a state that no
    /// hart could be in (another hart id, a reserved privilege, M with V=1,
    /// `x0` not zero) with the reason.
    pub fn restore(&mut self, s: &HartState) -> Result<(), String> {
        if s.hartid != self.hartid {
            return Err(format!("hart {} restored from hart {}'s state", self.hartid, s.hartid));
        }
        let prv = match s.prv {
            0 => Priv::U,
            1 => Priv::S,
            3 => Priv::M,
            p => return Err(format!("hart {}: privilege {p} does not exist", s.hartid)),
        };
        if prv == Priv::M && s.virt {
            return Err(format!("hart {}: M-mode with V=1", s.hartid));
        }
        if s.x[0] != 0 {
            return Err(format!("hart {}: x0 is not zero", s.hartid));
        }
        self.x = s.x;
        self.f = s.f;
        self.pc = s.pc;
        self.prv = prv;
        self.virt = s.virt;
        self.csr = s.csr.clone();
        // Addresses first: a locked configuration would refuse them after.
        let mut pmp = Pmp::new();
        for (i, a) in s.pmpaddr.iter().enumerate() {
            pmp.write_addr(i, *a);
        }
        pmp.write_cfg(0, s.pmpcfg[0]);
        pmp.write_cfg(2, s.pmpcfg[1]);
        self.pmp = pmp;
        self.instret = s.instret;
        self.wfi = s.wfi;
        self.wfi_spin = false;
        self.paused = false;
        self.reservation = s.reservation;
        self.lr_value = s.lr_value;
        for bit in 0..64 {
            self.irqs.set(bit, s.lines >> bit & 1 != 0);
        }
        // Caches: dropped, refilled on demand.
        self.spaces.clear(&mut self.tlb);
        self.tlb.flush();
        self.gcache.clear();
        self.code.clear();
        self.atp_changed();
        self.watch = progress::ProgressWatch::default();
        self.note_mode_entry();
        self.event = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strata_irq::HartIrqs;
    use strata_memory::GuestRam;

    fn hart(id: u64) -> Hart {
        Hart::new(id, Arc::new(GuestRam::new(0x8000_0000, 1 << 20).unwrap()), HartIrqs::new())
    }

    #[test]
    fn round_trip_and_refusals() {
        let mut a = hart(0);
        a.x[5] = 7;
        a.f[3] = 0x7ff8_0000_0000_0000;
        a.pc = 0x8000_1234;
        a.prv = Priv::S;
        a.virt = true;
        a.csr.hgatp = 8 << 60 | 5 << 44;
        a.csr.vsatp = 9 << 60 | 1;
        a.pmp.write_addr(0, 0x2000_0000);
        a.pmp.write_cfg(0, 0x9f); // NAPOT RWX, locked
        a.reservation = Some(0x8000_0040);
        a.irqs.set(7, true);
        let s = a.save();
        let mut b = hart(0);
        b.restore(&s).unwrap();
        assert_eq!(b.save(), s);
        assert_eq!((b.pmp.read_cfg(0), b.pmp.read_addr(0)), (0x9f, 0x2000_0000));
        assert_eq!(b.irqs.pending(), 1 << 7);

        assert!(hart(1).restore(&s).unwrap_err().contains("hart 0"));
        for (prv, virt, why) in [(2, false, "privilege 2"), (3, true, "V=1")] {
            let bad = HartState { prv, virt, ..s.clone() };
            assert!(hart(0).restore(&bad).unwrap_err().contains(why), "{prv} {virt}");
        }
        let mut x0 = s.clone();
        x0.x[0] = 1;
        assert!(hart(0).restore(&x0).unwrap_err().contains("x0"));
    }
}

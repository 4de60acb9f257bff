//! Address translation for Strata's harts.
//!
//! - [`pte`]: the page-table entry format shared by Sv39/Sv48/Sv57 and the
//!   G-stage "x4" forms (Privileged Architecture 20211203, §4.3–4.5, §8.5).
//! - [`walk`]: the page-table walker, written once for every mode.
//! - [`pmp`]: physical memory protection (§3.7).
//! - [`tlb`]: the hart's software TLB of finished translations.
//! - [`space`]: address-space slots, which tag TLB entries by ASID and VMID.

pub mod pmp;
pub mod pte;
pub mod space;
pub mod tlb;
pub mod walk;

/// The kind of access being translated: it selects the permission bit that
/// must be set and the exception raised when it is not (§4.3.1: instruction,
/// load and store/AMO page faults are causes 12, 13 and 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Fetch,
    Load,
    Store,
}

impl Access {
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Privilege level of an access as the MMU and PMP see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priv {
    U = 0,
    S = 1,
    M = 3,
}

impl Priv {
    pub fn from_bits(b: u64) -> Priv {
        match b & 3 {
            0 => Priv::U,
            1 => Priv::S,
            // 2 is reserved in mstatus.MPP (WARL); hart code never stores it.
            _ => Priv::M,
        }
    }
}

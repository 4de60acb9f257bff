//! Page-table entry bits (Privileged Architecture 20211203, §4.3.1, Figure
//! 4.18 and §4.4.1): one home, `strata_arch::pte`, re-exported for the
//! walker's users.

pub use strata_arch::pte::*;

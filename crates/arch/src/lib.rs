//! The RISC-V architecture as Strata implements it, written once.
//!
//! Every number the specifications fix and more than one crate needs has its
//! home here: CSR numbers and fields ([`csr`]), exception and interrupt
//! causes ([`cause`]), interrupt numbers ([`irq`]), the ISA extensions and a
//! hart's set of them ([`ext`]), the page-table formats
//! ([`pte`]), the instruction encodings ([`isa`]) and the transformed
//! instructions a trap writes to `mtinst`/`htinst` ([`tinst`]), and the SBI
//! extension ids and error codes guests and hypervisor share ([`sbi`]). The crate
//! has no dependencies, so any crate, however low, may use it; other crates
//! import from here instead of restating a value (`make check` runs
//! `scripts/check-duplicates.sh`, which looks for restatements).
//!
//! Sources: The RISC-V Instruction Set Manual, Volume I: Unprivileged ISA,
//! 20191213 ("Unpriv."), and Volume II: Privileged Architecture, 20211203
//! ("Priv."); section numbers below are from these.

pub mod cause;
pub mod csr;
pub mod ext;
pub mod irq;
pub mod isa;
pub mod pte;
pub mod sbi;
pub mod tinst;

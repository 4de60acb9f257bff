//! Strata's test support, kept out of production code (issue 11): only
//! ever a dev-dependency.
//!
//! - [`prop`]: the property-test configuration every randomised test uses:
//!   the seed is printed and can be taken from `STRATA_SEED`.
//! - [`asm`]: an assembler for tiny guests, built on the one encoding table
//!   (`strata_arch::isa`), and a minimal ELF64 wrapper.
//! - [`guest`]: the test guests: a page walker, hostile guests, SBI and
//!   UART probes.
//!
//! It depends on nothing of Strata but `strata-arch`, so the lowest crates
//! may use it; the board's addresses come in as a [`guest::Board`].

pub mod asm;
pub mod guest;
pub mod prop;

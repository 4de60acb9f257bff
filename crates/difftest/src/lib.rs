//! strata-difftest: random differential testing of Strata against QEMU.
//!
//! `gen` makes a program from a seed, `emit` renders it as a self-contained
//! assembly file, `exec` builds and runs it on both machines and compares
//! the checkpoint dumps, `reduce` shrinks a failing program.

pub mod emit;
pub mod exec;
pub mod gen;
pub mod prng;
pub mod reduce;

//! Watching a Linux guest from outside (issue 18): its kernel's BTF and
//! `System.map`, reads of its virtual memory through its own page tables,
//! walkers for its processes, modules and system-call table, and the
//! kernel-integrity checks with optimistic retry. docs/monitor.md for
//! users.
//!
//! This crate knows nothing of the emulator: the machine is a
//! [`guest::GuestMemory`] (physical reads, write watches, the harts'
//! `satp`/`stvec`), which the platform implements over guest RAM and tests
//! over a byte vector.
//!
//! | module | what |
//! | --- | --- |
//! | [`btf`] | the BPF Type Format: structure layouts |
//! | [`symbols`] | `System.map` |
//! | [`guest`] | the machine as a monitor sees it |
//! | [`kernel`] | the kernel's memory and structures |
//! | [`integrity`] | the checks |

pub mod btf;
pub mod guest;
pub mod integrity;
pub mod kernel;
pub mod symbols;

pub use guest::{GuestMemory, PhysError};
pub use kernel::{ImagePlace, Kernel, KernelError};

#[cfg(test)]
mod tests;

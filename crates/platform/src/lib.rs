//! The Strata board: a memory map compatible with QEMU's `virt` machine,
//! the device tree, loaders, the console, and the run loop ([`runner`])
//! under both machines: the bare board ([`machine`]) and Strata's
//! hypervisor ([`hyp`]).

pub mod attest;
pub mod boot;
pub mod console;
pub mod debug;
pub mod error;
pub mod fdt;
pub mod hostpaths;
pub mod hyp;
pub mod loader;
pub mod machine;
pub mod measure;
pub mod monitor;
pub mod runner;
pub mod size;
pub mod tpm;
pub mod virtio;

pub use error::Error;
pub use machine::{ExitReason, Machine, MachineConfig, RestoreOptions};
pub use runner::{ClockMode, Runner, StopHandle};
pub use strata_hart::{cpu_model, Ext, Extensions, CPU_MODELS};
pub use virtio::{DriveSource, DriveSpec, NetdevSpec, VirtioConfig, VsockSpec};

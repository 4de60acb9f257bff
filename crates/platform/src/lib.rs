//! The Strata board: a memory map compatible with QEMU's `virt` machine,
//! the device tree, loaders, the console and the run loop.

pub mod boot;
pub mod console;
pub mod fdt;
pub mod hyp;
pub mod loader;
pub mod machine;
pub mod virtio;

pub use machine::{ClockMode, ExitReason, Machine, MachineConfig};
pub use virtio::{DriveSpec, NetdevSpec, VirtioConfig, VsockSpec};

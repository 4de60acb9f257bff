//! The Strata board: memory map, device tree, loaders, run loop.

pub mod fdt;

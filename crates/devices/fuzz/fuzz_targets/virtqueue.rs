//! Fuzzes the split-virtqueue walker and the virtio-blk request parser
//! behind the virtio-mmio transport: the input is guest RAM contents plus
//! a script of MMIO register writes. Properties: no panic, and the host
//! never touches memory outside guest RAM (GuestRam's accessors would
//! return Err; out-of-bounds would crash under the sanitizer).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_devices::virtio::block::Block;
use strata_devices::virtio::VirtioMmio;
use strata_devices::{MmioDevice, NoIrq};
use strata_memory::GuestRam;

const RAM: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 0x4_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let split = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (script, ram_bytes) = data[2..].split_at(split);
    let mem = Arc::new(GuestRam::new(RAM, RAM_SIZE).unwrap());
    let _ = mem.write_bytes(RAM, &ram_bytes[..ram_bytes.len().min(RAM_SIZE as usize)]);
    let img = std::env::temp_dir().join(format!("strata-fuzz-{}.img", std::process::id()));
    std::fs::write(&img, vec![0u8; 64 * 512]).unwrap();
    let blk = Block::open(&img, false, Some("fuzz")).unwrap();
    let mut m = VirtioMmio::new(Box::new(blk), mem, Arc::new(NoIrq), "fuzz");
    // Each 11-byte record: register (u16, in 4-byte units, below 0x400),
    // size and read/write code, value (u64).
    for rec in script.chunks_exact(11) {
        let off = (u16::from_le_bytes([rec[0], rec[1]]) as u64 % 0x100) * 4;
        let size = [1u8, 2, 4, 8][(rec[2] & 3) as usize];
        let mut v = u64::from_le_bytes(rec[3..11].try_into().unwrap());
        // Bias addresses into RAM so rings are often valid.
        if (0x80..0xa8).contains(&off) && v & 1 == 0 {
            v = if off % 8 == 0 { RAM + (v % RAM_SIZE) } else { 0 };
        }
        if rec[2] & 4 != 0 {
            m.read(off, size);
        } else {
            m.write(off, size, v);
        }
    }
});

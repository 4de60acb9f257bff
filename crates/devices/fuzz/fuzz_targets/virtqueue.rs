//! Fuzzes the split-virtqueue walker and every device's request parser
//! behind the virtio-mmio transport: the input picks a device (virtio-blk,
//! virtio-rng, virtio-net, virtio-console, vsock), then gives guest RAM
//! contents and a script of MMIO register accesses and run-loop polls.
//! Properties: no panic, and the host never touches memory outside guest
//! RAM (GuestRam's accessors would return Err; out-of-bounds would crash
//! under the sanitizer). The property tests in src/virtio/hostile.rs check
//! the same devices under `cargo test`.
#![no_main]

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_devices::virtio::block::Block;
use strata_devices::virtio::console::Console;
use strata_devices::virtio::net::{Net, NetBackend};
use strata_devices::virtio::rng::Rng;
use strata_devices::virtio::vsock::Vsock;
use strata_devices::virtio::{VirtioDevice, VirtioMmio};
use strata_devices::{MmioDevice, NoIrq};
use strata_memory::GuestRam;

const RAM: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 0x4_0000;

/// Frames cut from the fuzz input arrive from the "TAP".
struct Frames(Vec<Vec<u8>>);

impl NetBackend for Frames {
    fn send(&mut self, _frame: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(f) = self.0.pop() else { return Ok(None) };
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Ok(Some(n))
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("strata-fuzz-{}-{name}", std::process::id()))
}

fn device(kind: u8, extra: &[u8]) -> Box<dyn VirtioDevice> {
    match kind % 5 {
        0 => {
            let img = temp("disk.img");
            std::fs::write(&img, vec![0u8; 64 * 512]).unwrap();
            Box::new(Block::open(&img, kind & 8 != 0, Some("fuzz")).unwrap())
        }
        1 => Box::new(Rng::new()),
        2 => Box::new(Net::new(Box::new(Frames(extra.chunks(97).map(|c| c.to_vec()).collect())), [2, 0, 0, 0, 0, 1])),
        3 => Box::new(Console::new(temp("con.sock")).unwrap()),
        _ => Box::new(Vsock::new(3, temp("vsock.sock")).unwrap()),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let kind = data[0];
    let split = (u16::from_le_bytes([data[1], data[2]]) as usize).min(data.len() - 3);
    let (script, ram_bytes) = data[3..].split_at(split);
    let mem = Arc::new(GuestRam::new(RAM, RAM_SIZE).unwrap());
    let _ = mem.write_bytes(RAM, &ram_bytes[..ram_bytes.len().min(RAM_SIZE as usize)]);
    let mut m = VirtioMmio::new(device(kind, ram_bytes), mem, Arc::new(NoIrq), "fuzz");
    // Each 11-byte record: register (u16, in 4-byte units, below 0x400),
    // size and read/write/poll code, value (u64).
    for rec in script.chunks_exact(11) {
        let off = (u16::from_le_bytes([rec[0], rec[1]]) as u64 % 0x100) * 4;
        let size = [1u8, 2, 4, 8][(rec[2] & 3) as usize];
        let mut v = u64::from_le_bytes(rec[3..11].try_into().unwrap());
        // Bias addresses into RAM so rings are often valid.
        if (0x80..0xa8).contains(&off) && v & 1 == 0 {
            v = if off % 8 == 0 { RAM + (v % RAM_SIZE) } else { 0 };
        }
        match rec[2] >> 2 & 3 {
            0 | 1 => m.write(off, size, v),
            2 => {
                m.read(off, size);
            }
            _ => {
                m.poll();
            }
        }
    }
});

//! Property tests: every device behind the real transport, driven by a
//! randomized hostile driver (random rings, descriptor tables, indirect
//! tables, request contents, register writes and notifications).
//!
//! Properties checked after every driver action:
//! - nothing panics;
//! - the only guest bytes that change are inside buffers some descriptor
//!   (main table or indirect table) marks device-writable (§2.7.4.2:
//!   "A device MUST NOT write to a device-readable buffer") or inside a
//!   used ring (which holds avail_event, §2.7.10);
//! - once the device set DEVICE_NEEDS_RESET it stays set until the driver
//!   resets the device (§2.1.2), and DRIVER_OK never shows without
//!   FEATURES_OK;
//! - the disk image of virtio-blk keeps its size (no write beyond the
//!   capacity).
//!
//! Each run also counts completed chains, so a generator that only ever
//! produced garbage (and so tested nothing) fails the test.
//!
//! Every test runs its fixed seed, then `STRATA_SEED` from the environment
//! if set (`STRATA_SEED=123 cargo test --release -p strata-devices
//! hostile`); a failure prints the seed ([`super::with_seeds`]).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use strata_memory::{GuestMemory, GuestRam};

use super::mmio::reg;
use super::mmio::tests::Wire;
use super::queue::{VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use super::{status, TestRng, VirtioDevice, VirtioMmio};
use crate::MmioDevice;

const RAM: u64 = 0x8000_0000;
const RAM_SIZE: u64 = 0x4_0000;
/// Queue q: descriptor table at RING + q·0x4000, available ring 0x1000
/// further, used ring 0x2000 further.
const RING: u64 = RAM + 0x1000;
/// Indirect tables: 8 per queue, 16 entries each.
const INDIRECT: u64 = RAM + 0x1_0000;
/// Device-readable data (request headers, payloads).
const READ_AREA: u64 = RAM + 0x2_0000;
/// Buffers the driver offers for writing.
const WRITE_AREA: u64 = RAM + 0x3_0000;
const AREA: u64 = 0x1_0000;

struct Layout {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    indirect: u64,
}

fn layout(q: usize, size: u16) -> Layout {
    let base = RING + q as u64 * 0x4000;
    Layout { size, desc: base, avail: base + 0x1000, used: base + 0x2000, indirect: INDIRECT + q as u64 * 0x1000 }
}

fn put_desc(mem: &dyn GuestMemory, table: u64, i: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let at = table + 16 * i;
    mem.store(at, 8, addr).unwrap();
    mem.store(at + 8, 4, len as u64).unwrap();
    mem.store(at + 12, 2, flags as u64).unwrap();
    mem.store(at + 14, 2, next as u64).unwrap();
}

/// A random descriptor: mostly well-formed (writable buffers in the write
/// area, readable ones in the read area), sometimes hostile.
fn random_desc(
    rng: &mut TestRng,
    mem: &dyn GuestMemory,
    table: u64,
    i: u64,
    l: &Layout,
    entries: u64,
    in_indirect: bool,
) {
    let mut flags = match rng.below(40) {
        0 => rng.next() as u16 & 7,
        1..=12 => VIRTQ_DESC_F_WRITE,
        13..=20 => VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
        _ => VIRTQ_DESC_F_NEXT,
    };
    if !in_indirect && rng.below(6) == 0 {
        flags = VIRTQ_DESC_F_INDIRECT;
    }
    let (addr, len) = if flags & VIRTQ_DESC_F_INDIRECT != 0 && rng.below(4) != 0 {
        (l.indirect + 0x100 * rng.below(8), 16 * (1 + rng.below(16)) as u32)
    } else {
        let area = if flags & VIRTQ_DESC_F_WRITE != 0 { WRITE_AREA } else { READ_AREA };
        match rng.below(60) {
            0 => (rng.next(), rng.next() as u32),
            1 => (l.used + rng.below(64), 16),
            2 => (RAM + RAM_SIZE - rng.below(32), 64),
            3 => (area + 16 * rng.below(AREA / 16), rng.next() as u32 % 0x2_0000),
            _ => (
                area + 16 * rng.below(AREA / 16 - 0x100),
                [16, 44, 56, 64, 512, 1024, 1526, 4096][rng.below(8) as usize],
            ),
        }
    };
    // Mostly the next entry (chains end where a descriptor has no NEXT);
    // sometimes anywhere, which makes loops and out-of-range indices.
    let next = match rng.below(40) {
        0 => rng.next() as u16,
        1..=3 => rng.below(entries) as u16,
        _ => ((i + 1) % entries.max(1)) as u16,
    };
    put_desc(mem, table, i, addr, len, flags, next);
}

/// Writes a chain the way a driver would (device-readable buffers, then
/// device-writable ones, linked with NEXT; now and then through an
/// indirect table) starting at `head`, then sometimes breaks one thing
/// about it. Returns the head to offer.
fn driver_chain(rng: &mut TestRng, mem: &dyn GuestMemory, l: &Layout, head: u16, indirect_ok: bool) -> u16 {
    let r = rng.below(3);
    let w = if r == 0 { 1 + rng.below(3) } else { rng.below(3) };
    let n = (r + w).min(4);
    let indirect = rng.below(4) == 0 && (indirect_ok || rng.below(10) == 0);
    let (table, entries, first) =
        if indirect { (l.indirect + 0x100 * rng.below(8), 16, 0u64) } else { (l.desc, l.size as u64, head as u64) };
    if n > entries {
        return head;
    }
    for k in 0..n {
        let i = (first + k) % entries;
        let writable = k >= r;
        let area = if writable { WRITE_AREA } else { READ_AREA };
        let addr = area + 16 * rng.below(AREA / 16 - 0x100);
        let len = [1u32, 16, 44, 56, 64, 512, 1024, 1526, 4096][rng.below(9) as usize];
        let mut flags = if writable { VIRTQ_DESC_F_WRITE } else { 0 };
        if k + 1 < n {
            flags |= VIRTQ_DESC_F_NEXT;
        }
        put_desc(mem, table, i, addr, len, flags, ((i + 1) % entries) as u16);
    }
    if indirect {
        put_desc(mem, l.desc, head as u64, table, 16 * n as u32, VIRTQ_DESC_F_INDIRECT, 0);
    }
    // One hostile change in ten chains.
    if rng.below(10) == 0 {
        let i = if indirect { rng.below(n) } else { (first + rng.below(n)) % entries };
        let at = table + 16 * i;
        match rng.below(6) {
            0 => mem.store(at + 14, 2, rng.next()).unwrap(), // next anywhere
            1 => {
                // A loop back to the start.
                let f = mem.load(at + 12, 2).unwrap() | VIRTQ_DESC_F_NEXT as u64;
                mem.store(at + 12, 2, f).unwrap();
                mem.store(at + 14, 2, first).unwrap();
            }
            2 => mem.store(at, 8, [rng.next(), l.used, l.desc, RAM + RAM_SIZE - 8][rng.below(4) as usize]).unwrap(),
            3 => mem.store(at + 8, 4, rng.next()).unwrap(),
            4 => mem.store(at + 12, 2, rng.next() & 7).unwrap(),
            _ => random_desc(rng, mem, table, i, l, entries, indirect),
        }
    }
    head
}

/// Fills the read area with plausible request headers for every device
/// type (virtio-blk, vsock, net headers are all read from offset 0 of the
/// chain) and random bytes.
fn fill_read_area(rng: &mut TestRng, mem: &dyn GuestMemory) {
    for off in (0..AREA).step_by(16) {
        let a = READ_AREA + off;
        match rng.below(4) {
            0 => {
                // virtio_blk_outhdr: type, reserved, sector.
                let ty = [0u64, 1, 4, 8, 11, 13, rng.next()][rng.below(7) as usize];
                mem.store(a, 4, ty).unwrap();
                mem.store(a + 4, 4, 0).unwrap();
                mem.store(a + 8, 8, if rng.below(4) == 0 { rng.next() } else { rng.below(80) }).unwrap();
            }
            1 => {
                // Discard / write-zeroes segment: sector, num_sectors, flags.
                mem.store(a, 8, rng.below(80)).unwrap();
                mem.store(a + 8, 4, rng.below(40)).unwrap();
                mem.store(a + 12, 4, rng.below(3)).unwrap();
            }
            _ => {
                mem.store(a, 8, rng.next()).unwrap();
                mem.store(a + 8, 8, rng.next()).unwrap();
            }
        }
    }
    // Some vsock headers (44 bytes) addressed to the host.
    for _ in 0..64 {
        let a = READ_AREA + 16 * rng.below(AREA / 16 - 4);
        mem.store(a, 8, [3, rng.next()][rng.below(2) as usize]).unwrap(); // src_cid
        mem.store(a + 8, 8, [2, rng.next()][rng.below(2) as usize]).unwrap(); // dst_cid
        mem.store(a + 16, 4, rng.below(4)).unwrap();
        mem.store(a + 20, 4, rng.below(4)).unwrap();
        mem.store(a + 24, 4, if rng.below(2) == 0 { rng.below(64) } else { rng.next() & 0xffff_ffff }).unwrap();
        mem.store(a + 28, 2, 1).unwrap();
        mem.store(a + 30, 2, rng.below(9)).unwrap();
        mem.store(a + 36, 4, rng.next() & 0xffff_ffff).unwrap();
    }
}

/// Byte ranges a device may legally write: the used rings, and buffers of
/// writable descriptors in every main table and in every table a main-table
/// INDIRECT descriptor points to (whatever the walker might follow).
fn allowed(mem: &dyn GuestMemory, layouts: &[Layout]) -> Vec<(u64, u64)> {
    let mut r = Vec::new();
    let desc = |at: u64| -> Option<(u64, u64, u16)> {
        Some((mem.load(at, 8).ok()?, mem.load(at + 8, 4).ok()?, mem.load(at + 12, 2).ok()? as u16))
    };
    for l in layouts {
        for i in 0..l.size as u64 {
            let Some((addr, len, flags)) = desc(l.desc + 16 * i) else { continue };
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                r.push((addr, addr.saturating_add(len)));
            }
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                for j in 0..(len / 16).min(super::queue::MAX_INDIRECT as u64) {
                    let Some((a, n, f)) = desc(addr.wrapping_add(16 * j)) else { break };
                    if f & VIRTQ_DESC_F_WRITE != 0 {
                        r.push((a, a.saturating_add(n)));
                    }
                }
            }
        }
        r.push((l.used, l.used + 6 + 8 * l.size as u64));
    }
    r
}

fn check_writes(before: &[u8], mem: &dyn GuestMemory, ok: &[(u64, u64)], what: &str) {
    let mut after = vec![0u8; before.len()];
    mem.read_bytes(RAM, &mut after).unwrap();
    for (i, (a, b)) in before.iter().zip(&after).enumerate() {
        if a != b {
            let addr = RAM + i as u64;
            assert!(
                ok.iter().any(|&(s, e)| (s..e).contains(&addr)),
                "{what}: device wrote {addr:#x} ({a:#x} -> {b:#x}), not in a writable buffer or used ring"
            );
        }
    }
}

/// Runs `rounds` random driver sessions against devices made by `make`.
/// Returns the number of chains the device completed (used-ring entries).
fn hostile_driver(name: &str, rounds: usize, seed: u64, make: &mut dyn FnMut() -> Box<dyn VirtioDevice>) -> u64 {
    let mut rng = TestRng::new(seed);
    let mut completed = 0u64;
    for round in 0..rounds {
        let what = format!("{name} round {round}");
        let mem = Arc::new(GuestRam::new(RAM, RAM_SIZE).unwrap());
        let wire = Arc::new(Wire(AtomicBool::new(false)));
        let dev = make();
        let nq = dev.num_queues();
        let mut m = VirtioMmio::new(dev, mem.clone(), wire, name.to_string());
        let feats: u64 =
            1 << 32 | if rng.below(4) != 0 { 1 << 28 } else { 0 } | if rng.below(2) == 0 { 1 << 29 } else { 0 };
        m.write(reg::STATUS, 4, 3);
        m.write(reg::DRIVER_FEATURES_SEL, 4, 0);
        m.write(reg::DRIVER_FEATURES, 4, feats & 0xffff_ffff);
        m.write(reg::DRIVER_FEATURES_SEL, 4, 1);
        m.write(reg::DRIVER_FEATURES, 4, feats >> 32);
        m.write(reg::STATUS, 4, 11);
        let mut layouts = Vec::new();
        for q in 0..nq {
            let size = if rng.below(40) == 0 { rng.below(20) as u16 } else { 2 << rng.below(4) };
            let l = layout(q, size);
            for i in 0..size.min(32) as u64 {
                random_desc(&mut rng, &mem, l.desc, i, &l, size as u64, false);
            }
            for i in 0..8 * 16 {
                random_desc(&mut rng, &mem, l.indirect, i, &l, 16, true);
            }
            m.write(reg::QUEUE_SEL, 4, q as u64);
            m.write(reg::QUEUE_NUM, 4, size as u64);
            m.write(reg::QUEUE_DESC_LOW, 4, l.desc & 0xffff_ffff);
            m.write(reg::QUEUE_DESC_HIGH, 4, l.desc >> 32);
            m.write(reg::QUEUE_DRIVER_LOW, 4, l.avail & 0xffff_ffff);
            m.write(reg::QUEUE_DRIVER_HIGH, 4, l.avail >> 32);
            m.write(reg::QUEUE_DEVICE_LOW, 4, l.used & 0xffff_ffff);
            m.write(reg::QUEUE_DEVICE_HIGH, 4, l.used >> 32);
            m.write(reg::QUEUE_READY, 4, 1);
            layouts.push(l);
        }
        fill_read_area(&mut rng, &mem);
        m.write(reg::STATUS, 4, 15);
        let mut sticky = m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET != 0;
        let mut before = vec![0u8; RAM_SIZE as usize];
        for _ in 0..24 {
            // The driver's side first: offer chains, rewrite tables.
            let mut notify = None;
            match rng.below(10) {
                0..=5 => {
                    let q = rng.below(nq as u64) as usize;
                    let l = &layouts[q];
                    let idx = mem.load(l.avail + 2, 2).unwrap() as u16;
                    let used = mem.load(l.used + 2, 2).unwrap() as u16;
                    // A well-behaved driver never has more than Queue Size
                    // chains outstanding; this one rarely breaks that.
                    if l.size > 0 && (idx.wrapping_sub(used) + 3 <= l.size || rng.below(30) == 0) {
                        let n = 1 + rng.below(3) as u16;
                        for k in 0..n {
                            let slot = l.avail + 4 + 2 * (idx.wrapping_add(k) % l.size) as u64;
                            let head = if rng.below(50) == 0 {
                                rng.next() as u16
                            } else {
                                // Each chain gets its own stretch of the table.
                                let h = (idx.wrapping_add(k) as u64 * 4 % l.size as u64) as u16;
                                driver_chain(&mut rng, &mem, l, h, feats & 1 << 28 != 0)
                            };
                            mem.store(slot, 2, head as u64).unwrap();
                        }
                        let new = if rng.below(60) == 0 { rng.next() as u16 } else { idx.wrapping_add(n) };
                        mem.store(l.avail + 2, 2, new as u64).unwrap();
                        // used_event.
                        mem.store(l.avail + 4 + 2 * l.size as u64, 2, rng.below(8)).unwrap();
                    }
                    // Sometimes a queue the device does not have.
                    notify = Some(if rng.below(100) == 0 { rng.below(8) } else { q as u64 });
                }
                6 => {
                    let l = &layouts[rng.below(nq as u64) as usize];
                    let (table, n, ind) = if rng.below(2) == 0 {
                        (l.desc, l.size.min(32) as u64, false)
                    } else {
                        (l.indirect, 128, true)
                    };
                    if n > 0 {
                        let i = rng.below(n);
                        random_desc(&mut rng, &mem, table, i, l, if ind { 16 } else { l.size as u64 }, ind);
                    }
                }
                _ => {}
            }
            // Then what the device sees: a notification, a poll from the run
            // loop, or a random register access; only its writes count.
            mem.read_bytes(RAM, &mut before).unwrap();
            let ok = allowed(&mem, &layouts);
            if let Some(q) = notify {
                m.write(reg::QUEUE_NOTIFY, 4, q);
            } else if rng.below(12) != 0 {
                m.poll();
            } else {
                let off = rng.below(0x48) * 4;
                let size = [1u8, 2, 4, 8][rng.below(4) as usize];
                if rng.below(4) != 0 {
                    m.read(off, size);
                } else if off != reg::STATUS || rng.below(4) == 0 {
                    m.write(off, size, rng.next() & 0xff);
                }
            }
            check_writes(&before, &mem, &ok, &what);
            let st = m.read(reg::STATUS, 4) as u32;
            assert!(st & status::DRIVER_OK == 0 || st & status::FEATURES_OK != 0, "{what}: status {st:#x}");
            if st == 0 {
                sticky = false; // the random register write reset the device
            } else if sticky {
                assert_ne!(st & status::DEVICE_NEEDS_RESET, 0, "{what}: DEVICE_NEEDS_RESET cleared without a reset");
            }
            sticky |= st & status::DEVICE_NEEDS_RESET != 0;
        }
        if std::env::var("HOSTILE_DEBUG").is_ok() {
            eprintln!("{what}: {:?}", m.last_error);
        }
        for l in &layouts {
            if l.size.is_power_of_two() {
                completed += mem.load(l.used + 2, 2).unwrap();
            }
        }
    }
    completed
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("strata-hostile-{}-{name}", std::process::id()))
}

#[test]
fn hostile_driver_vs_block() {
    super::with_seeds("hostile_driver_vs_block", 1, |seed| {
        let img = temp("blk.img");
        std::fs::write(&img, vec![0x5au8; 64 * 512]).unwrap();
        let p = img.clone();
        let done = hostile_driver("virtio-blk", 400, seed, &mut || {
            Box::new(super::block::Block::open(&p, false, Some("serial")).unwrap())
        });
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 * 512);
        let ro = hostile_driver("virtio-blk ro", 100, seed.wrapping_add(1), &mut || {
            Box::new(super::block::Block::open(&p, true, None).unwrap())
        });
        std::fs::remove_file(&img).unwrap();
        assert!(
            done > 1000 && ro > 200,
            "only {done}/{ro} chains completed: the generator is too hostile to test much"
        );
    });
}

#[test]
fn hostile_driver_vs_rng() {
    super::with_seeds("hostile_driver_vs_rng", 3, |seed| {
        let done = hostile_driver("virtio-rng", 300, seed, &mut || Box::new(super::rng::Rng::new()));
        assert!(done > 500, "only {done} chains completed");
    });
}

#[derive(Clone, Default)]
struct Frames(Arc<Mutex<Vec<Vec<u8>>>>);

impl super::net::NetBackend for Frames {
    fn send(&mut self, _frame: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<Option<usize>> {
        let Some(f) = self.0.lock().unwrap().pop() else { return Ok(None) };
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Ok(Some(n))
    }
}

#[test]
fn hostile_driver_vs_net() {
    super::with_seeds("hostile_driver_vs_net", 5, |seed| {
        let mut rng = TestRng::new(seed ^ 1);
        let done = hostile_driver("virtio-net", 300, seed, &mut || {
            // Frames of every size from empty to maximal wait on the host side.
            let frames: Vec<Vec<u8>> =
                (0..40).map(|_| vec![0xee; rng.below(super::net::MAX_FRAME as u64 + 1) as usize]).collect();
            Box::new(super::net::Net::new(Box::new(Frames(Arc::new(Mutex::new(frames)))), [2, 0, 0, 0, 0, 1]))
        });
        assert!(done > 500, "only {done} chains completed");
    });
}

#[test]
fn hostile_driver_vs_console() {
    use std::io::Write;
    super::with_seeds("hostile_driver_vs_console", 6, |seed| {
        let sock = temp("con.sock");
        let mut clients = Vec::new();
        let done = hostile_driver("virtio-console", 200, seed, &mut || {
            let c = super::console::Console::new(sock.clone()).unwrap();
            // A host client with input waiting, so the receive path runs too.
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
                let _ = s.write_all(&[0x41; 3000]);
                clients.push(s);
            }
            Box::new(c)
        });
        assert!(done > 300, "only {done} chains completed");
    });
}

#[test]
fn hostile_driver_vs_vsock() {
    super::with_seeds("hostile_driver_vs_vsock", 7, |seed| {
        let uds = temp("v.sock");
        let listener = std::os::unix::net::UnixListener::bind(format!("{}_1", uds.display())).unwrap();
        listener.set_nonblocking(true).unwrap();
        let done = hostile_driver("virtio-vsock", 300, seed, &mut || {
            while listener.accept().is_ok() {}
            Box::new(super::vsock::Vsock::new(3, uds.clone()).unwrap())
        });
        let _ = std::fs::remove_file(format!("{}_1", uds.display()));
        assert!(done > 500, "only {done} chains completed");
    });
}

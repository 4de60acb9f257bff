//! virtio-rng, the entropy device (Virtio 1.2 §5.4), fed by the host's
//! getrandom(2).
//!
//! One queue, `requestq` (§5.4.2); no features and no configuration space
//! (§5.4.3, §5.4.4). Each request is a chain of device-writable buffers;
//! the device fills them (§5.4.6.1: it MUST place one or more random bytes
//! into the buffer) and reports the number of bytes written. At most
//! [`MAX_PER_REQUEST`] bytes are produced per request, so a guest that
//! offers gigantic buffers cannot make the host spin. A chain with a
//! device-readable buffer is a driver error (§5.4.6: the driver MUST NOT
//! place driver-readable buffers) and gets a used length of 0.

use super::{id, DeviceError, QueueCtx, VirtioDevice};

pub const MAX_PER_REQUEST: usize = 64 * 1024;

/// Fills `buf` from the host's getrandom(2); retries on EINTR and short
/// reads.
pub fn host_random(buf: &mut [u8]) -> Result<(), std::io::Error> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

#[derive(Default)]
pub struct Rng {
    buf: Vec<u8>,
    /// Bytes handed to the guest (for tests and statistics).
    pub bytes_served: u64,
}

impl Rng {
    pub fn new() -> Self {
        Self::default()
    }
}

impl VirtioDevice for Rng {
    fn device_id(&self) -> u32 {
        id::ENTROPY
    }
    fn features(&self) -> u64 {
        0
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn config_len(&self) -> usize {
        0
    }
    fn read_config(&self, _offset: usize, _data: &mut [u8]) {}
    fn reset(&mut self) {}
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        let Some(queue) = ctx.queues.get_mut(q) else { return Ok(()) };
        while let Some(chain) = queue.pop(ctx.mem)? {
            let mut used = 0;
            if chain.readable.is_empty() {
                let n = (chain.writable_len() as usize).min(MAX_PER_REQUEST);
                self.buf.resize(n, 0);
                if host_random(&mut self.buf).is_ok() {
                    used = chain.write_at(ctx.mem, 0, &self.buf);
                    self.bytes_served += used as u64;
                }
            }
            queue.push_used(ctx.mem, chain.head, used as u32)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::tests::{bring_up, mk};
    use crate::virtio::queue::tests::{desc, AVAIL, DATA, DESC, USED};
    use crate::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
    use crate::MmioDevice;

    #[test]
    fn fills_buffers_and_caps_huge_ones() {
        let (mut m, mem, _) = mk(Box::new(Rng::new()));
        bring_up(&mut m, 1 << 32);
        assert_eq!(m.read(0x008, 4), 4);
        desc(&mem, DESC, 0, DATA, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, DESC, 1, DATA + 0x1000, 0xe_0000, VIRTQ_DESC_F_WRITE, 0);
        desc(&mem, DESC, 2, DATA, 64, 0, 0); // readable: refused
        for (i, head) in [0u16, 2].into_iter().enumerate() {
            mem.store(AVAIL + 4 + 2 * i as u64, 2, head as u64).unwrap();
        }
        mem.store(AVAIL + 2, 2, 2).unwrap();
        m.write(0x050, 4, 0);
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 2);
        assert_eq!(mem.load(USED + 8, 4).unwrap(), MAX_PER_REQUEST as u64);
        assert_eq!(mem.load(USED + 16, 4).unwrap(), 0);
        let mut b = [0u8; 64];
        mem.read_bytes(DATA, &mut b).unwrap();
        assert!(b.iter().any(|&x| x != 0));
    }
}

//! virtio-console (Virtio 1.2 §5.3), a single port bridged to a host Unix
//! socket.
//!
//! No feature bits (§5.3.3): one port, receiveq0 = 0 and transmitq0 = 1
//! (§5.3.2); the configuration fields are only meaningful with features, so
//! config space reads as zeros (§5.3.4). The guest sees /dev/hvc0.
//!
//! Host side: the device listens on a Unix socket; one client at a time is
//! the other end of the port. Guest output with no client, or that the
//! client does not take fast enough beyond [`OUT_LIMIT`] buffered bytes, is
//! dropped (a console must never block the guest). Input waits for the
//! guest's receive buffers, reading from the socket only as much as they
//! hold.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use super::{id, DeviceError, HostFd, QueueCtx, VirtioDevice};

const RXQ: usize = 0;
const TXQ: usize = 1;
pub const OUT_LIMIT: usize = 64 * 1024;
/// Bytes taken from one transmit chain at most.
const MAX_CHUNK: usize = 64 * 1024;

pub struct Console {
    path: PathBuf,
    listener: UnixListener,
    client: Option<UnixStream>,
    out: VecDeque<u8>,
    buf: Vec<u8>,
}

impl Console {
    pub fn new(path: PathBuf) -> Result<Console, String> {
        // A stale socket file is replaced, one in use refused.
        let listener = super::uds::listen(&path, "virtio-console")?;
        Ok(Console { path, listener, client: None, out: VecDeque::new(), buf: vec![0; MAX_CHUNK] })
    }

    fn accept(&mut self) {
        if self.client.is_none() {
            if let Ok((s, _)) = self.listener.accept() {
                if s.set_nonblocking(true).is_ok() {
                    self.client = Some(s);
                }
            }
        }
    }

    fn flush_out(&mut self) {
        let Some(c) = &mut self.client else {
            self.out.clear();
            return;
        };
        while !self.out.is_empty() {
            let (a, _) = self.out.as_slices();
            match c.write(a) {
                Ok(n) if n > 0 => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                _ => {
                    self.client = None;
                    self.out.clear();
                    break;
                }
            }
        }
    }

    fn transmit(&mut self, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        let Some(q) = ctx.queues.get_mut(TXQ) else { return Ok(()) };
        while let Some(c) = q.pop(ctx.mem)? {
            let n = (c.readable_len() as usize).min(MAX_CHUNK);
            let got = c.read_at(ctx.mem, 0, &mut self.buf[..n]);
            if self.client.is_some() && self.out.len() + got <= OUT_LIMIT {
                self.out.extend(&self.buf[..got]);
            }
            q.push_used(ctx.mem, c.head, 0)?;
        }
        self.flush_out();
        Ok(())
    }

    fn receive(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        let mut did = false;
        for _ in 0..16 {
            let Some(client) = &mut self.client else { break };
            let Some(q) = ctx.queues.get_mut(RXQ) else { break };
            if !q.ready {
                break;
            }
            let Some(c) = q.pop(ctx.mem)? else { break };
            let room = (c.writable_len() as usize).min(MAX_CHUNK);
            match client.read(&mut self.buf[..room]) {
                Ok(n) if n > 0 => {
                    let w = c.write_at(ctx.mem, 0, &self.buf[..n]);
                    q.push_used(ctx.mem, c.head, w as u32)?;
                    did = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    q.undo_pop();
                    break;
                }
                _ => {
                    // Client gone (EOF or error): wait for the next one.
                    q.undo_pop();
                    self.client = None;
                    break;
                }
            }
        }
        Ok(did)
    }
}

impl VirtioDevice for Console {
    fn snapshot_refusal(&self) -> Option<&'static str> {
        Some("a host socket connection cannot be saved")
    }
    fn device_id(&self) -> u32 {
        id::CONSOLE
    }
    fn features(&self) -> u64 {
        0
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn config_len(&self) -> usize {
        12
    }
    fn read_config(&self, _offset: usize, data: &mut [u8]) {
        data.fill(0);
    }
    fn reset(&mut self) {
        self.out.clear();
    }
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        self.accept();
        match q {
            TXQ => self.transmit(ctx),
            RXQ => self.receive(ctx).map(|_| ()),
            _ => Ok(()),
        }
    }
    fn poll(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        self.accept();
        self.flush_out();
        self.receive(ctx)
    }
    fn polled(&self) -> bool {
        true
    }
    fn host_fds(&self, fds: &mut Vec<HostFd>) -> bool {
        match &self.client {
            // One client at a time: the next is accepted when it leaves.
            None => fds.push(HostFd::read(&self.listener)),
            Some(c) => {
                fds.push(HostFd::read(c));
                if !self.out.is_empty() {
                    fds.push(HostFd::write(c));
                }
            }
        }
        true
    }
    fn shut_down(&mut self) {
        self.client = None;
        // Taken, so that dropping the device later removes nothing (the
        // path may be someone else's by then).
        let _ = std::fs::remove_file(std::mem::take(&mut self.path));
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::reg;
    use crate::virtio::mmio::tests::mk;
    use crate::virtio::queue::tests::{desc, AVAIL, DATA, DESC, USED};
    use crate::virtio::queue::VIRTQ_DESC_F_WRITE;
    use crate::MmioDevice;

    #[test]
    fn bytes_both_ways_through_the_socket() {
        let p = std::env::temp_dir().join(format!("strata-vcon-{}.sock", std::process::id()));
        let (mut m, mem, _) = mk(Box::new(Console::new(p.clone()).unwrap()));
        m.write(reg::STATUS, 4, 3);
        m.write(reg::DRIVER_FEATURES_SEL, 4, 1);
        m.write(reg::DRIVER_FEATURES, 4, 1);
        m.write(reg::STATUS, 4, 11);
        for (q, off) in [(0u64, 0u64), (1, 0x8000)] {
            m.write(reg::QUEUE_SEL, 4, q);
            m.write(reg::QUEUE_NUM, 4, 8);
            m.write(reg::QUEUE_DESC_LOW, 4, DESC + off);
            m.write(reg::QUEUE_DRIVER_LOW, 4, AVAIL + off);
            m.write(reg::QUEUE_DEVICE_LOW, 4, USED + off);
            m.write(reg::QUEUE_READY, 4, 1);
        }
        m.write(reg::STATUS, 4, 15);
        let mut host = UnixStream::connect(&p).unwrap();
        m.poll();
        // Guest -> host.
        mem.write_bytes(DATA, b"hi host\n").unwrap();
        desc(&mem, DESC + 0x8000, 0, DATA, 8, 0, 0);
        mem.store(AVAIL + 0x8000 + 2, 2, 1).unwrap();
        m.write(reg::QUEUE_NOTIFY, 4, 1);
        let mut b = [0u8; 8];
        host.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi host\n");
        // Host -> guest.
        host.write_all(b"hey").unwrap();
        desc(&mem, DESC, 0, DATA + 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
        mem.store(AVAIL + 2, 2, 1).unwrap();
        m.write(reg::QUEUE_NOTIFY, 4, 0);
        m.poll();
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 1);
        assert_eq!(mem.load(USED + 8, 4).unwrap(), 3);
        drop(m);
        assert!(!p.exists());
    }

    /// An idle run loop sleeps on the listener until a client comes, then
    /// on the client; shutting down removes the socket file at once.
    #[test]
    fn host_descriptors_and_shut_down() {
        use std::os::fd::AsRawFd;
        let p = std::env::temp_dir().join(format!("strata-vcon-fds-{}.sock", std::process::id()));
        let mut c = Console::new(p.clone()).unwrap();
        let mut fds = Vec::new();
        assert!(c.host_fds(&mut fds));
        assert_eq!(fds, [HostFd::read(&c.listener)]);
        let _host = UnixStream::connect(&p).unwrap();
        c.accept();
        fds.clear();
        assert!(c.host_fds(&mut fds));
        let client = c.client.as_ref().unwrap().as_raw_fd();
        assert_eq!(fds, [HostFd { fd: client, write: false }], "the client, not the listener");
        c.shut_down();
        assert!(!p.exists(), "shut_down removes the socket file");
        // Dropping it later removes nothing (the path may be reused).
        std::fs::write(&p, b"someone else's").unwrap();
        drop(c);
        assert!(p.exists());
        std::fs::remove_file(&p).unwrap();
    }
}

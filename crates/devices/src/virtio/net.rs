//! virtio-net (Virtio 1.2 §5.1) on a host TAP device, offloads off.
//!
//! Queues (§5.1.2): receiveq1 = 0, transmitq1 = 1; no control queue, no
//! multiqueue. Features (§5.1.3): VIRTIO_NET_F_MAC and VIRTIO_NET_F_STATUS
//! only, so the driver sends and expects complete frames with no checksum
//! or segmentation offload. Every buffer starts with `struct
//! virtio_net_hdr` (§5.1.6), 12 bytes with VERSION_1 (num_buffers is always
//! present); the device ignores the transmit header (no offloads were
//! negotiated, §5.1.6.2) and writes an all-zero header with num_buffers = 1
//! on receive (§5.1.6.3.1/§5.1.6.4).
//!
//! Transmit: a chain's readable bytes after the header are one frame; a
//! frame larger than [`MAX_FRAME`] or shorter than the header is dropped
//! (the chain is still returned). Receive: frames from the backend wait in
//! a one-frame slot until the driver posts a receive buffer; a frame that
//! does not fit the posted buffer is truncated to it (the driver counts it
//! as a length error), never written past it.

use std::io;

use super::queue::Chain;
use super::{id, put_le, DeviceError, HostFd, QueueCtx, VirtioDevice};

pub const NET_HDR_LEN: usize = 12;
/// Largest Ethernet frame handled (no GSO: MTU 1500 plus headroom for
/// VLAN tags and jumbo-ish frames some stacks emit).
pub const MAX_FRAME: usize = 65535;
/// Frames moved per poll, so one busy device cannot starve the harts.
const BUDGET: usize = 64;

pub mod feature {
    pub const MAC: u64 = 1 << 5;
    pub const STATUS: u64 = 1 << 16;
}
const STATUS_LINK_UP: u16 = 1;
const RXQ: usize = 0;
const TXQ: usize = 1;

/// Where frames go and come from.
pub trait NetBackend: Send {
    /// Sends one frame; errors drop it.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Receives one frame without blocking; `Ok(None)` when none waits.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// The descriptor that becomes readable when a frame arrives, if any
    /// (without one, the run loop polls the device on a timer).
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

pub struct Net {
    backend: Box<dyn NetBackend>,
    mac: [u8; 6],
    pending: Option<Vec<u8>>,
    buf: Vec<u8>,
    pub tx_frames: u64,
    pub rx_frames: u64,
    /// Frame bytes (without the virtio-net header) sent and delivered.
    tx_bytes: u64,
    rx_bytes: u64,
}

impl Net {
    pub fn new(backend: Box<dyn NetBackend>, mac: [u8; 6]) -> Self {
        Net {
            backend,
            mac,
            pending: None,
            buf: vec![0; MAX_FRAME + NET_HDR_LEN],
            tx_frames: 0,
            rx_frames: 0,
            tx_bytes: 0,
            rx_bytes: 0,
        }
    }

    fn transmit(&mut self, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        let Some(q) = ctx.queues.get_mut(TXQ) else { return Ok(()) };
        while let Some(c) = q.pop(ctx.mem)? {
            let len = c.readable_len();
            if len >= NET_HDR_LEN as u64 && len <= (MAX_FRAME + NET_HDR_LEN) as u64 {
                let n = len as usize - NET_HDR_LEN;
                let got = c.read_at(ctx.mem, NET_HDR_LEN as u64, &mut self.buf[..n]);
                if got == n && self.backend.send(&self.buf[..n]).is_ok() {
                    self.tx_frames += 1;
                    self.tx_bytes += n as u64;
                }
            }
            q.push_used(ctx.mem, c.head, 0)?;
        }
        Ok(())
    }

    fn deliver(&self, ctx: &QueueCtx<'_>, c: &Chain, frame: &[u8]) -> u32 {
        let mut hdr = [0u8; NET_HDR_LEN];
        hdr[10] = 1; // num_buffers
        let n = c.write_at(ctx.mem, 0, &hdr);
        if n < NET_HDR_LEN {
            return n as u32;
        }
        (n + c.write_at(ctx.mem, NET_HDR_LEN as u64, frame)) as u32
    }

    /// Moves waiting frames into posted receive buffers. Returns whether
    /// anything was delivered.
    fn receive(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        let mut did = false;
        for _ in 0..BUDGET {
            if self.pending.is_none() {
                match self.backend.recv(&mut self.buf[..MAX_FRAME]) {
                    Ok(Some(n)) => self.pending = Some(self.buf[..n].to_vec()),
                    Ok(None) | Err(_) => break,
                }
            }
            let Some(q) = ctx.queues.get_mut(RXQ) else { break };
            if !q.ready {
                break;
            }
            let Some(c) = q.pop(ctx.mem)? else { break };
            let frame = self.pending.take().unwrap_or_default();
            let used = self.deliver(ctx, &c, &frame);
            ctx.queues[RXQ].push_used(ctx.mem, c.head, used)?;
            self.rx_frames += 1;
            self.rx_bytes += frame.len() as u64;
            did = true;
        }
        Ok(did)
    }
}

impl VirtioDevice for Net {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("tx_frames", self.tx_frames),
            ("tx_bytes", self.tx_bytes),
            ("rx_frames", self.rx_frames),
            ("rx_bytes", self.rx_bytes),
        ]
    }
    fn snapshot_refusal(&self) -> Option<&'static str> {
        Some("a TAP interface is host state a snapshot cannot hold")
    }
    fn device_id(&self) -> u32 {
        id::NET
    }
    fn features(&self) -> u64 {
        feature::MAC | feature::STATUS
    }
    fn num_queues(&self) -> usize {
        2
    }
    fn config_len(&self) -> usize {
        8
    }
    /// `mac[6]`, status u16 (§5.1.4).
    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let mut c = [0u8; 8];
        c[..6].copy_from_slice(&self.mac);
        put_le(&mut c, 6, STATUS_LINK_UP as u64, 2);
        if let Some(s) = c.get(offset..offset + data.len()) {
            data.copy_from_slice(s);
        }
    }
    fn reset(&mut self) {
        self.pending = None;
    }
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        match q {
            TXQ => self.transmit(ctx),
            RXQ => self.receive(ctx).map(|_| ()),
            _ => Ok(()),
        }
    }
    fn poll(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        self.receive(ctx)
    }
    fn polled(&self) -> bool {
        true
    }
    fn host_fds(&self, fds: &mut Vec<HostFd>) -> bool {
        match self.backend.fd() {
            Some(fd) => {
                fds.push(HostFd { fd, write: false });
                true
            }
            None => false,
        }
    }
}

/// A host TAP interface (Linux `/dev/net/tun`, IFF_TAP | IFF_NO_PI, no
/// vnet header: offloads stay off), non-blocking.
pub struct Tap {
    fd: std::fs::File,
    pub name: String,
    /// Strata created the interface (it did not exist before); the kernel
    /// removes it when Strata's descriptor closes.
    pub created: bool,
}

impl Tap {
    /// Attaches to the TAP interface `ifname`, or creates it if there is
    /// no interface of that name (TUNSETIFF does so given CAP_NET_ADMIN).
    /// With `None` the kernel picks a free name (`tap0`, `tap1`, ...).
    pub fn open(ifname: Option<&str>) -> Result<Tap, String> {
        use std::os::unix::io::AsRawFd;
        let ifname = ifname.unwrap_or("");
        if ifname.len() >= libc::IFNAMSIZ
            || ifname.contains('/')
            || ifname.contains(char::is_whitespace)
            || ifname == "."
            || ifname == ".."
        {
            return Err(format!(
                "TAP interface name {ifname:?} must be 1 to {} bytes, without '/' or spaces",
                libc::IFNAMSIZ - 1
            ));
        }
        let existed = !ifname.is_empty() && std::path::Path::new("/sys/class/net").join(ifname).exists();
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|e| format!("cannot open /dev/net/tun: {e}"))?;
        // struct ifreq: name[16], then flags (short) in the union.
        let mut ifr = [0u8; 40];
        ifr[..ifname.len()].copy_from_slice(ifname.as_bytes());
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as u16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, 40 bytes here.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, ifr.as_mut_ptr()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            let shown = if ifname.is_empty() { "(a new one)" } else { ifname };
            return Err(if existed {
                format!("cannot attach to TAP interface {shown}: {e} (is it a TAP, and may this user use it? ip tuntap add dev {ifname} mode tap user $USER)")
            } else {
                format!("cannot create TAP interface {shown}: {e} (creating needs CAP_NET_ADMIN; or create it first: ip tuntap add dev NAME mode tap user $USER)")
            });
        }
        // SAFETY: plain fcntl on our descriptor.
        unsafe {
            let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        let end = ifr[..16].iter().position(|&b| b == 0).unwrap_or(16);
        Ok(Tap { fd, name: String::from_utf8_lossy(&ifr[..end]).into_owned(), created: !existed })
    }
}

impl NetBackend for Tap {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.fd.as_raw_fd())
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.fd.write(frame).map(|_| ())
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use std::io::Read;
        match self.fd.read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Parses a MAC address "52:54:00:12:34:56".
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{s:?} is not a MAC address (like 52:54:00:12:34:56)"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
    }
    if mac[0] & 1 != 0 {
        return Err(format!("{s} is a multicast address"));
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::tests::mk;
    use crate::virtio::queue::tests::{desc, AVAIL, DATA, DESC, USED};
    use crate::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
    use crate::virtio::TestRng;
    use crate::MmioDevice;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Loop {
        sent: Arc<Mutex<Vec<Vec<u8>>>>,
        inbox: Arc<Mutex<Vec<Vec<u8>>>>,
    }
    impl NetBackend for Loop {
        fn send(&mut self, f: &[u8]) -> io::Result<()> {
            self.sent.lock().unwrap().push(f.to_vec());
            Ok(())
        }
        fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            let mut q = self.inbox.lock().unwrap();
            if q.is_empty() {
                return Ok(None);
            }
            let f = q.remove(0);
            buf[..f.len()].copy_from_slice(&f);
            Ok(Some(f.len()))
        }
    }

    /// Brings up both queues: rx at DESC, tx in a second ring set.
    fn up(m: &mut crate::virtio::VirtioMmio) {
        use crate::virtio::mmio::reg;
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
    }

    #[test]
    fn frames_both_ways() {
        let be = Loop::default();
        let (mut m, mem, _) = mk(Box::new(Net::new(Box::new(be.clone()), [2, 0, 0, 0, 0, 1])));
        up(&mut m);
        assert_eq!(m.read(0x100, 4), 0x0000_0002);
        assert_eq!(m.read(0x106, 2), 1);
        // Transmit a 60-byte frame behind a 12-byte header.
        mem.write_bytes(DATA + 12, &[0x77; 60]).unwrap();
        desc(&mem, DESC + 0x8000, 0, DATA, 72, 0, 0);
        mem.store(AVAIL + 0x8000 + 4, 2, 0).unwrap();
        mem.store(AVAIL + 0x8000 + 2, 2, 1).unwrap();
        m.write(0x050, 4, 1);
        assert_eq!(*be.sent.lock().unwrap(), vec![vec![0x77; 60]]);
        // A frame arrives before any receive buffer: it waits.
        be.inbox.lock().unwrap().push(vec![0x42; 100]);
        m.poll();
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 0);
        desc(&mem, DESC, 0, DATA + 0x1000, 12, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        desc(&mem, DESC, 1, DATA + 0x2000, 1514, VIRTQ_DESC_F_WRITE, 0);
        mem.store(AVAIL + 4, 2, 0).unwrap();
        mem.store(AVAIL + 2, 2, 1).unwrap();
        m.write(0x050, 4, 0);
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 1);
        assert_eq!(mem.load(USED + 8, 4).unwrap(), 112);
        assert_eq!(mem.load(DATA + 0x1000 + 10, 2).unwrap(), 1);
        assert_eq!(mem.load(DATA + 0x2000 + 99, 1).unwrap(), 0x42);
    }

    #[test]
    fn receive_never_writes_past_posted_buffers() {
        let be = Loop::default();
        let net = Net::new(Box::new(be.clone()), [2, 0, 0, 0, 0, 1]);
        let mem = strata_memory::GuestRam::new(crate::virtio::queue::tests::RAM, 0x10_0000).unwrap();
        let mut rng = TestRng(5);
        for _ in 0..2000 {
            let mut c = Chain::default();
            for _ in 0..rng.below(3) {
                c.writable
                    .push(crate::virtio::queue::Buf { addr: DATA + rng.below(0x1000), len: rng.below(3000) as u32 });
            }
            let frame = vec![0u8; rng.below(2000) as usize];
            let ctx = QueueCtx { mem: &mem, queues: &mut [] };
            assert!(net.deliver(&ctx, &c, &frame) as u64 <= c.writable_len());
        }
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(parse_mac("52:54:00:12:34:56").unwrap(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert!(parse_mac("52:54:00:12:34").is_err());
        assert!(parse_mac("01:00:00:00:00:00").is_err());
        assert!(parse_mac("zz:54:00:12:34:56").is_err());
    }
}

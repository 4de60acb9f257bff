//! virtio-vsock (Virtio 1.2 §5.10), stream sockets, bridged to host Unix
//! sockets the way Firecracker does it:
//! - host → guest: a host program connects to the Unix socket `uds` and
//!   writes `CONNECT <port>\n`; the device asks the guest (REQUEST to
//!   `<port>`); once the guest accepts (RESPONSE) the host gets
//!   `OK <hostport>\n` and the stream carries the data both ways.
//! - guest → host: a guest connect to CID 2 port P makes the device connect
//!   to the Unix socket `<uds>_P`; refused or missing means RST.
//!
//! Queues (§5.10.2): rx = 0, tx = 1, event = 2 (never used: no transport
//! reset events are sent). No feature bits: §5.10.3 says the device then
//! acts as if VIRTIO_VSOCK_F_STREAM were negotiated. Config (§5.10.4):
//! guest_cid u64.
//!
//! Packets (§5.10.6) are a 44-byte `virtio_vsock_hdr` followed by `len`
//! payload bytes. Flow control (§5.10.6.3): each side advertises buf_alloc
//! and fwd_cnt; the device never sends the guest more than
//! `peer_buf_alloc - (tx_cnt - peer_fwd_cnt)` bytes, and it refuses (RST)
//! a guest that overruns the device's own advertised buffer.
//!
//! Hostile input: headers with a length beyond the chain or above
//! [`MAX_PKT`], wrong CIDs, unknown types or ops get an RST or are dropped;
//! per-connection buffering is bounded by the advertised buf_alloc; the
//! number of connections is bounded by [`MAX_CONNS`].

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use super::queue::Chain;
use super::{id, put_le, DeviceError, QueueCtx, VirtioDevice};

pub const HDR_LEN: usize = 44;
pub const HOST_CID: u64 = 2;
/// Largest payload accepted from or sent to the guest in one packet.
pub const MAX_PKT: usize = 64 * 1024;
/// The receive buffer the device advertises per connection.
pub const BUF_ALLOC: u32 = 256 * 1024;
pub const MAX_CONNS: usize = 1024;
const RXQ: usize = 0;
const TXQ: usize = 1;

pub const TYPE_STREAM: u16 = 1;
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const RESPONSE: u16 = 2;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

/// `struct virtio_vsock_hdr` (§5.10.6), little-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hdr {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub ty: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Hdr {
    pub fn parse(b: &[u8; HDR_LEN]) -> Hdr {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap());
        Hdr {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            ty: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }
    pub fn bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        put_le(&mut b, 0, self.src_cid, 8);
        put_le(&mut b, 8, self.dst_cid, 8);
        put_le(&mut b, 16, self.src_port as u64, 4);
        put_le(&mut b, 20, self.dst_port as u64, 4);
        put_le(&mut b, 24, self.len as u64, 4);
        put_le(&mut b, 28, self.ty as u64, 2);
        put_le(&mut b, 30, self.op as u64, 2);
        put_le(&mut b, 32, self.flags as u64, 4);
        put_le(&mut b, 36, self.buf_alloc as u64, 4);
        put_le(&mut b, 40, self.fwd_cnt as u64, 4);
        b
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Host initiated; REQUEST sent, waiting for the guest's RESPONSE.
    Connecting,
    Established,
}

struct Conn {
    stream: UnixStream,
    state: State,
    /// Guest data not yet written to the host stream (≤ BUF_ALLOC).
    to_host: VecDeque<u8>,
    /// Bytes forwarded to the host stream (our fwd_cnt).
    fwd_cnt: u32,
    /// fwd_cnt last reported to the guest.
    fwd_cnt_sent: u32,
    /// Bytes sent to the guest and the guest's credit.
    tx_cnt: u32,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// The host side reached end of file (SHUTDOWN sent).
    host_eof: bool,
}

impl Conn {
    fn new(stream: UnixStream, state: State) -> Conn {
        Conn {
            stream,
            state,
            to_host: VecDeque::new(),
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            tx_cnt: 0,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            host_eof: false,
        }
    }
    fn peer_credit(&self) -> u32 {
        self.peer_buf_alloc.saturating_sub(self.tx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }
}

/// A host connection on `uds` that has not finished its CONNECT line.
struct Pending {
    stream: UnixStream,
    line: Vec<u8>,
}

pub struct Vsock {
    guest_cid: u64,
    uds: PathBuf,
    listener: Option<UnixListener>,
    pending: Vec<Pending>,
    /// Keyed by (host port, guest port).
    conns: HashMap<(u32, u32), Conn>,
    /// Control packets waiting for a receive buffer.
    ctrl: VecDeque<Hdr>,
    next_host_port: u32,
    buf: Vec<u8>,
}

impl Vsock {
    /// Listens on `uds` (an existing socket file is replaced, as
    /// Firecracker does).
    pub fn new(guest_cid: u64, uds: PathBuf) -> Result<Vsock, String> {
        if guest_cid <= 2 || guest_cid >= u32::MAX as u64 {
            return Err(format!("vsock cid={guest_cid}: guest CIDs are 3 to 4294967294"));
        }
        if let Ok(m) = std::fs::symlink_metadata(&uds) {
            use std::os::unix::fs::FileTypeExt;
            if m.file_type().is_socket() {
                let _ = std::fs::remove_file(&uds);
            }
        }
        let l = UnixListener::bind(&uds).map_err(|e| format!("vsock: cannot listen on {}: {e}", uds.display()))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Vsock {
            guest_cid,
            uds,
            listener: Some(l),
            pending: Vec::new(),
            conns: HashMap::new(),
            ctrl: VecDeque::new(),
            next_host_port: 1 << 30,
            buf: vec![0; MAX_PKT],
        })
    }

    fn hdr(&self, host_port: u32, guest_port: u32, op: u16) -> Hdr {
        let fwd = self.conns.get(&(host_port, guest_port)).map_or(0, |c| c.fwd_cnt);
        Hdr {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: host_port,
            dst_port: guest_port,
            ty: TYPE_STREAM,
            op,
            buf_alloc: BUF_ALLOC,
            fwd_cnt: fwd,
            ..Hdr::default()
        }
    }

    fn rst(&mut self, host_port: u32, guest_port: u32) {
        self.conns.remove(&(host_port, guest_port));
        let h = self.hdr(host_port, guest_port, op::RST);
        self.ctrl.push_back(h);
    }

    /// One packet from the guest (§5.10.6.4 onwards).
    fn from_guest(&mut self, h: Hdr, payload: &[u8]) {
        if h.dst_cid != HOST_CID || h.src_cid != self.guest_cid {
            return; // not for us: drop (no RST to a forged address)
        }
        let key = (h.dst_port, h.src_port);
        if h.ty != TYPE_STREAM {
            if h.op != op::RST {
                self.rst(key.0, key.1);
            }
            return;
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.peer_buf_alloc = h.buf_alloc;
            c.peer_fwd_cnt = h.fwd_cnt;
        }
        match h.op {
            op::REQUEST => {
                if self.conns.contains_key(&key) || self.conns.len() >= MAX_CONNS {
                    self.rst(key.0, key.1);
                    return;
                }
                let path = format!("{}_{}", self.uds.display(), h.dst_port);
                match UnixStream::connect(&path) {
                    Ok(s) if s.set_nonblocking(true).is_ok() => {
                        let mut c = Conn::new(s, State::Established);
                        c.peer_buf_alloc = h.buf_alloc;
                        c.peer_fwd_cnt = h.fwd_cnt;
                        self.conns.insert(key, c);
                        let r = self.hdr(key.0, key.1, op::RESPONSE);
                        self.ctrl.push_back(r);
                    }
                    _ => self.rst(key.0, key.1),
                }
            }
            op::RESPONSE => match self.conns.get_mut(&key) {
                Some(c) if c.state == State::Connecting => {
                    c.state = State::Established;
                    // A fresh socket has room for the line; a host that
                    // already closed just loses it.
                    let _ = c.stream.write(format!("OK {}\n", key.0).as_bytes());
                }
                _ => self.rst(key.0, key.1),
            },
            op::RW => {
                let Some(c) = self.conns.get_mut(&key) else {
                    self.rst(key.0, key.1);
                    return;
                };
                // The guest may not exceed the buffer we advertised.
                if c.state != State::Established || c.to_host.len() + payload.len() > BUF_ALLOC as usize + 64 {
                    self.rst(key.0, key.1);
                    return;
                }
                c.to_host.extend(payload);
            }
            op::CREDIT_REQUEST => {
                if self.conns.contains_key(&key) {
                    let u = self.hdr(key.0, key.1, op::CREDIT_UPDATE);
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.fwd_cnt_sent = c.fwd_cnt;
                    }
                    self.ctrl.push_back(u);
                } else {
                    self.rst(key.0, key.1);
                }
            }
            op::CREDIT_UPDATE => {}
            op::SHUTDOWN => {
                // Flush what the guest sent, then close; the RST tells the
                // guest the connection is gone (§5.10.6.6).
                if let Some(mut c) = self.conns.remove(&key) {
                    let _ = c.stream.set_nonblocking(false);
                    let (a, b) = c.to_host.as_slices();
                    let _ = c.stream.write_all(a).and_then(|_| c.stream.write_all(b));
                    let _ = c.stream.shutdown(std::net::Shutdown::Both);
                }
                let r = self.hdr(key.0, key.1, op::RST);
                self.ctrl.push_back(r);
            }
            op::RST => {
                self.conns.remove(&key);
            }
            _ => self.rst(key.0, key.1),
        }
    }

    fn transmit(&mut self, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        let Some(q) = ctx.queues.get_mut(TXQ) else { return Ok(()) };
        let mut pkts = Vec::new();
        while let Some(c) = q.pop(ctx.mem)? {
            let mut hb = [0u8; HDR_LEN];
            if c.read_at(ctx.mem, 0, &mut hb) == HDR_LEN {
                let h = Hdr::parse(&hb);
                let len = h.len as usize;
                if len <= MAX_PKT && (len as u64) <= c.readable_len() - HDR_LEN as u64 {
                    let mut data = vec![0u8; len];
                    if c.read_at(ctx.mem, HDR_LEN as u64, &mut data) == len {
                        pkts.push((h, data));
                    }
                }
            }
            q.push_used(ctx.mem, c.head, 0)?;
        }
        for (h, d) in pkts {
            self.from_guest(h, &d);
        }
        Ok(())
    }

    /// Host side: accept, read CONNECT lines, move data to the host.
    fn host_io(&mut self) {
        if let Some(l) = &self.listener {
            while self.pending.len() < 64 {
                match l.accept() {
                    Ok((s, _)) if s.set_nonblocking(true).is_ok() => self.pending.push(Pending { stream: s, line: Vec::new() }),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            let mut b = [0u8; 1];
            let mut done = None;
            loop {
                match p.stream.read(&mut b) {
                    Ok(1) if b[0] == b'\n' => {
                        done = Some(true);
                        break;
                    }
                    Ok(1) if p.line.len() < 64 => p.line.push(b[0]),
                    Ok(_) => {
                        done = Some(false);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        done = Some(false);
                        break;
                    }
                }
            }
            match done {
                None => i += 1,
                Some(ok) => {
                    let p = self.pending.swap_remove(i);
                    let port = std::str::from_utf8(&p.line)
                        .ok()
                        .and_then(|l| l.trim().strip_prefix("CONNECT "))
                        .and_then(|n| n.trim().parse::<u32>().ok());
                    if let (true, Some(port)) = (ok, port) {
                        if self.conns.len() < MAX_CONNS {
                            let hp = self.next_host_port;
                            self.next_host_port = self.next_host_port.wrapping_add(1).max(1 << 30);
                            self.conns.insert((hp, port), Conn::new(p.stream, State::Connecting));
                            let r = self.hdr(hp, port, op::REQUEST);
                            self.ctrl.push_back(r);
                        }
                    }
                }
            }
        }
        // Guest data to the host streams.
        let mut credit = Vec::new();
        for (&k, c) in self.conns.iter_mut() {
            while !c.to_host.is_empty() {
                let (a, _) = c.to_host.as_slices();
                match c.stream.write(a) {
                    Ok(n) if n > 0 => {
                        c.to_host.drain(..n);
                        if c.state == State::Established {
                            c.fwd_cnt = c.fwd_cnt.wrapping_add(n as u32);
                        }
                    }
                    _ => break,
                }
            }
            // Tell the guest about freed buffer space now and then.
            if c.fwd_cnt.wrapping_sub(c.fwd_cnt_sent) >= BUF_ALLOC / 4 {
                c.fwd_cnt_sent = c.fwd_cnt;
                credit.push(k);
            }
        }
        for k in credit {
            let u = self.hdr(k.0, k.1, op::CREDIT_UPDATE);
            self.ctrl.push_back(u);
        }
    }

    fn deliver(&self, ctx: &QueueCtx<'_>, c: &Chain, h: &Hdr, data: &[u8]) -> u32 {
        let n = c.write_at(ctx.mem, 0, &h.bytes());
        if n < HDR_LEN {
            return n as u32;
        }
        (n + c.write_at(ctx.mem, HDR_LEN as u64, data)) as u32
    }

    /// Fills guest receive buffers: control packets first, then data.
    fn receive(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        let mut did = false;
        while let Some(h) = self.ctrl.front().copied() {
            let Some(c) = ctx.queues[RXQ].pop(ctx.mem)? else { return Ok(did) };
            let used = self.deliver(ctx, &c, &h, &[]);
            ctx.queues[RXQ].push_used(ctx.mem, c.head, used)?;
            self.ctrl.pop_front();
            did = true;
        }
        let keys: Vec<(u32, u32)> = self.conns.keys().copied().collect();
        for k in keys {
            for _ in 0..16 {
                let Some(conn) = self.conns.get_mut(&k) else { break };
                if conn.state != State::Established || conn.host_eof {
                    break;
                }
                let credit = conn.peer_credit() as usize;
                if credit == 0 {
                    break;
                }
                let Some(c) = ctx.queues[RXQ].pop(ctx.mem)? else { return Ok(did) };
                let room = (c.writable_len() as usize).saturating_sub(HDR_LEN).min(MAX_PKT).min(credit);
                let r = if room == 0 { Err(io::ErrorKind::InvalidInput.into()) } else { conn.stream.read(&mut self.buf[..room]) };
                match r {
                    Ok(0) => {
                        // Host closed: SHUTDOWN both directions (§5.10.6.6).
                        conn.host_eof = true;
                        let mut h = self.hdr(k.0, k.1, op::SHUTDOWN);
                        h.flags = 3;
                        let used = self.deliver(ctx, &c, &h, &[]);
                        ctx.queues[RXQ].push_used(ctx.mem, c.head, used)?;
                        did = true;
                        break;
                    }
                    Ok(n) => {
                        conn.tx_cnt = conn.tx_cnt.wrapping_add(n as u32);
                        conn.fwd_cnt_sent = conn.fwd_cnt;
                        let mut h = self.hdr(k.0, k.1, op::RW);
                        h.len = n as u32;
                        let used = self.deliver(ctx, &c, &h, &self.buf[..n]);
                        ctx.queues[RXQ].push_used(ctx.mem, c.head, used)?;
                        did = true;
                    }
                    Err(e) => {
                        ctx.queues[RXQ].undo_pop();
                        if e.kind() != io::ErrorKind::WouldBlock {
                            self.rst(k.0, k.1);
                        }
                        break;
                    }
                }
            }
        }
        Ok(did)
    }
}

impl VirtioDevice for Vsock {
    fn device_id(&self) -> u32 {
        id::VSOCK
    }
    fn features(&self) -> u64 {
        0
    }
    fn num_queues(&self) -> usize {
        3
    }
    fn config_len(&self) -> usize {
        8
    }
    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let b = self.guest_cid.to_le_bytes();
        if let Some(s) = b.get(offset..offset + data.len()) {
            data.copy_from_slice(s);
        }
    }
    fn reset(&mut self) {
        self.conns.clear();
        self.ctrl.clear();
    }
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        if q == TXQ {
            self.transmit(ctx)?;
            self.host_io();
        }
        if ctx.queues.get(RXQ).is_some_and(|q| q.ready) {
            self.receive(ctx)?;
        }
        Ok(())
    }
    fn poll(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        self.host_io();
        if !ctx.queues.get(RXQ).is_some_and(|q| q.ready) {
            return Ok(false);
        }
        self.receive(ctx)
    }
    fn polled(&self) -> bool {
        true
    }
}

impl Drop for Vsock {
    fn drop(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.uds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::TestRng;

    #[test]
    fn header_round_trip() {
        let h = Hdr { src_cid: 3, dst_cid: 2, src_port: 1234, dst_port: 52, len: 9, ty: 1, op: 5, flags: 0, buf_alloc: 7, fwd_cnt: 8 };
        assert_eq!(Hdr::parse(&h.bytes()), h);
    }

    fn dev(name: &str) -> (Vsock, PathBuf) {
        let p = std::env::temp_dir().join(format!("strata-vsock-{}-{name}.sock", std::process::id()));
        (Vsock::new(3, p.clone()).unwrap(), p)
    }

    #[test]
    fn guest_connect_to_missing_port_is_reset_and_host_connect_sends_request() {
        let (mut v, p) = dev("a");
        let req = Hdr { src_cid: 3, dst_cid: 2, src_port: 999, dst_port: 5000, ty: 1, op: op::REQUEST, buf_alloc: 4096, ..Hdr::default() };
        v.from_guest(req, &[]);
        assert_eq!(v.ctrl.pop_front().map(|h| (h.op, h.dst_port, h.src_port)), Some((op::RST, 999, 5000)));
        // A listener at <uds>_5000 accepts.
        let lp = format!("{}_5000", p.display());
        let l = UnixListener::bind(&lp).unwrap();
        v.from_guest(req, &[]);
        assert_eq!(v.ctrl.pop_front().map(|h| h.op), Some(op::RESPONSE));
        let mut rw = req;
        rw.op = op::RW;
        rw.len = 5;
        v.from_guest(rw, b"hello");
        v.host_io();
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        // Host-initiated connection.
        let mut h = UnixStream::connect(&p).unwrap();
        h.write_all(b"CONNECT 52\n").unwrap();
        v.host_io();
        let r = v.ctrl.pop_front().unwrap();
        assert_eq!((r.op, r.dst_port, r.dst_cid), (op::REQUEST, 52, 3));
        let resp = Hdr { src_cid: 3, dst_cid: 2, src_port: 52, dst_port: r.src_port, ty: 1, op: op::RESPONSE, buf_alloc: 4096, ..Hdr::default() };
        v.from_guest(resp, &[]);
        v.host_io();
        let mut line = [0u8; 14];
        h.read_exact(&mut line).unwrap();
        assert_eq!(std::str::from_utf8(&line).unwrap(), format!("OK {}\n", r.src_port));
        std::fs::remove_file(lp).unwrap();
        drop(v);
        assert!(!p.exists());
    }

    #[test]
    fn hostile_packets_never_panic_and_stay_bounded() {
        let (mut v, _p) = dev("b");
        let mut rng = TestRng(99);
        for _ in 0..20000 {
            let h = Hdr {
                src_cid: [3, 2, rng.next()][rng.below(3) as usize],
                dst_cid: [2, 3, rng.next()][rng.below(3) as usize],
                src_port: rng.below(4) as u32,
                dst_port: rng.below(4) as u32,
                len: rng.below(70000) as u32,
                ty: rng.below(3) as u16,
                op: rng.below(9) as u16,
                flags: rng.next() as u32,
                buf_alloc: rng.next() as u32,
                fwd_cnt: rng.next() as u32,
            };
            let data = vec![0u8; (h.len as usize).min(MAX_PKT)];
            v.from_guest(h, &data);
            v.host_io();
            while v.ctrl.len() > 100 {
                v.ctrl.pop_front();
            }
            for c in v.conns.values() {
                assert!(c.to_host.len() <= BUF_ALLOC as usize + 64 + MAX_PKT);
            }
        }
    }
}

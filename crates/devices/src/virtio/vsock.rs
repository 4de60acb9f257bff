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
use super::uds::connect_nonblocking;
use super::{id, put_le, DeviceError, HostFd, QueueCtx, VirtioDevice};

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

/// Shutdown flags of a SHUTDOWN packet (§5.10.6.6).
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

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
    /// The host side reached end of file (SHUTDOWN with SEND sent).
    host_eof: bool,
    /// SHUTDOWN flags the guest sent (it will send / receive no more).
    guest_shut: u32,
    /// The host stream's write side has been shut down.
    host_write_shut: bool,
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
            guest_shut: 0,
            host_write_shut: false,
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

/// Control packets (RST, RESPONSE, credit updates, ...) waiting for guest
/// receive buffers. Every guest packet adds at most one, so the device
/// stops taking guest packets while this many wait: a guest that sends
/// without ever posting receive buffers cannot make the queue grow.
pub const CTRL_LIMIT: usize = 256;

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
    /// Listens on `uds`: a stale socket file there is replaced (as
    /// Firecracker does), one something listens on is refused
    /// ([`super::uds::listen`]).
    pub fn new(guest_cid: u64, uds: PathBuf) -> Result<Vsock, String> {
        if guest_cid <= 2 || guest_cid >= u32::MAX as u64 {
            return Err(format!("vsock cid={guest_cid}: guest CIDs are 3 to 4294967294"));
        }
        let l = super::uds::listen(&uds, "vsock")?;
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
    fn take_from_guest(&mut self, h: Hdr, payload: &[u8]) {
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
                // The port is a number, so the path stays next to `uds`.
                let path = PathBuf::from(format!("{}_{}", self.uds.display(), h.dst_port));
                match connect_nonblocking(&path) {
                    Ok(s) => {
                        let mut c = Conn::new(s, State::Established);
                        c.peer_buf_alloc = h.buf_alloc;
                        c.peer_fwd_cnt = h.fwd_cnt;
                        self.conns.insert(key, c);
                        let r = self.hdr(key.0, key.1, op::RESPONSE);
                        self.ctrl.push_back(r);
                    }
                    Err(_) => self.rst(key.0, key.1),
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
                // The guest may not exceed the buffer we advertised, nor send
                // after saying it would not.
                if c.state != State::Established
                    || c.guest_shut & SHUTDOWN_SEND != 0
                    || c.to_host.len() + payload.len() > BUF_ALLOC as usize + 64
                {
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
            op::CREDIT_UPDATE => {
                if !self.conns.contains_key(&key) {
                    self.rst(key.0, key.1);
                }
            }
            op::SHUTDOWN => {
                // §5.10.6.6: the guest will send (SEND) and/or receive (RCV)
                // no more. What it sent is still delivered: host_io flushes
                // it, shuts the host stream's write side, and once both
                // directions are shut, closes the connection with an RST.
                match self.conns.get_mut(&key) {
                    Some(c) => c.guest_shut |= h.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND),
                    None => self.rst(key.0, key.1),
                }
            }
            op::RST => {
                self.conns.remove(&key);
            }
            _ => self.rst(key.0, key.1),
        }
    }

    /// Takes the guest's packets from the transmit queue. Stops while
    /// [`CTRL_LIMIT`] control packets wait for receive buffers; returns
    /// whether it stopped early for that reason.
    fn transmit(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        if !ctx.queues.get(TXQ).is_some_and(|q| q.ready) {
            return Ok(false);
        }
        let mut data = Vec::new();
        loop {
            if self.ctrl.len() >= CTRL_LIMIT {
                return Ok(true);
            }
            let q = &mut ctx.queues[TXQ];
            let Some(c) = q.pop(ctx.mem)? else { return Ok(false) };
            let mut hb = [0u8; HDR_LEN];
            let mut pkt = None;
            if c.read_at(ctx.mem, 0, &mut hb) == HDR_LEN {
                let h = Hdr::parse(&hb);
                let len = h.len as usize;
                // A length beyond the chain or MAX_PKT: dropped.
                if len <= MAX_PKT && (len as u64) <= c.readable_len() - HDR_LEN as u64 {
                    data.resize(len, 0);
                    if c.read_at(ctx.mem, HDR_LEN as u64, &mut data) == len {
                        pkt = Some(h);
                    }
                }
            }
            q.push_used(ctx.mem, c.head, 0)?;
            if let Some(h) = pkt {
                self.take_from_guest(h, &data);
            }
        }
    }

    /// Host side: accept, read CONNECT lines, move data to the host, finish
    /// shutdowns.
    fn host_io(&mut self) {
        if let Some(l) = &self.listener {
            while self.pending.len() < 64 {
                match l.accept() {
                    Ok((s, _)) if s.set_nonblocking(true).is_ok() => {
                        self.pending.push(Pending { stream: s, line: Vec::new() })
                    }
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
        let mut closed = Vec::new();
        for (&k, c) in self.conns.iter_mut() {
            let mut broken = false;
            while !c.to_host.is_empty() {
                let (a, _) = c.to_host.as_slices();
                match c.stream.write(a) {
                    Ok(n) if n > 0 => {
                        c.to_host.drain(..n);
                        c.fwd_cnt = c.fwd_cnt.wrapping_add(n as u32);
                    }
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // The host end is gone: the connection is dead.
                        broken = true;
                        break;
                    }
                }
            }
            if broken {
                closed.push(k);
                continue;
            }
            if c.to_host.is_empty() && c.guest_shut & SHUTDOWN_SEND != 0 && !c.host_write_shut {
                let _ = c.stream.shutdown(std::net::Shutdown::Write);
                c.host_write_shut = true;
            }
            // Both directions finished: close with an RST (§5.10.6.6).
            if c.host_write_shut && (c.host_eof || c.guest_shut & SHUTDOWN_RCV != 0) {
                closed.push(k);
                continue;
            }
            // Tell the guest about freed buffer space now and then.
            if c.fwd_cnt.wrapping_sub(c.fwd_cnt_sent) >= BUF_ALLOC / 4 {
                c.fwd_cnt_sent = c.fwd_cnt;
                credit.push(k);
            }
        }
        for k in closed {
            self.rst(k.0, k.1);
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
        if !ctx.queues.get(RXQ).is_some_and(|q| q.ready) {
            return Ok(false);
        }
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
                if conn.state != State::Established || conn.host_eof || conn.guest_shut & SHUTDOWN_RCV != 0 {
                    break;
                }
                let credit = conn.peer_credit() as usize;
                if credit == 0 {
                    break;
                }
                let Some(c) = ctx.queues[RXQ].pop(ctx.mem)? else { return Ok(did) };
                let room = (c.writable_len() as usize).saturating_sub(HDR_LEN).min(MAX_PKT).min(credit);
                let r = if room == 0 {
                    Err(io::ErrorKind::InvalidInput.into())
                } else {
                    conn.stream.read(&mut self.buf[..room])
                };
                match r {
                    Ok(0) => {
                        // Host end of file: we will send no more (§5.10.6.6).
                        // If the guest is done sending too, host_io closes.
                        conn.host_eof = true;
                        let mut h = self.hdr(k.0, k.1, op::SHUTDOWN);
                        h.flags = SHUTDOWN_SEND;
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

    /// Everything the device can do now: host I/O, guest packets, receive
    /// buffers, until nothing moves (bounded: each round either drains the
    /// control queue or stops).
    fn work(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        let mut did = false;
        for _ in 0..8 {
            self.host_io();
            did |= self.receive(ctx)?;
            let more = self.transmit(ctx)?;
            self.host_io();
            did |= self.receive(ctx)?;
            if !more || self.ctrl.len() >= CTRL_LIMIT {
                break;
            }
        }
        Ok(did)
    }
}

impl VirtioDevice for Vsock {
    fn snapshot_refusal(&self) -> Option<&'static str> {
        Some("host connections cannot be saved")
    }
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
    fn process(&mut self, _q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        self.work(ctx).map(|_| ())
    }
    fn poll(&mut self, ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        self.work(ctx)
    }
    fn polled(&self) -> bool {
        true
    }
    fn host_fds(&self, fds: &mut Vec<HostFd>) -> bool {
        if let Some(l) = &self.listener {
            if self.pending.len() < 64 {
                fds.push(HostFd::read(l));
            }
        }
        fds.extend(self.pending.iter().map(|p| HostFd::read(&p.stream)));
        for c in self.conns.values() {
            if c.state == State::Established && !c.host_eof {
                fds.push(HostFd::read(&c.stream));
            }
            if !c.to_host.is_empty() && !c.host_write_shut {
                fds.push(HostFd::write(&c.stream));
            }
        }
        true
    }
    fn shut_down(&mut self) {
        self.remove_socket();
    }
}

impl Vsock {
    /// Stops listening and removes the socket file this device made.
    fn remove_socket(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.uds);
        }
    }
}

impl Drop for Vsock {
    fn drop(&mut self) {
        self.remove_socket();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::TestRng;

    #[test]
    fn header_round_trip() {
        let h = Hdr {
            src_cid: 3,
            dst_cid: 2,
            src_port: 1234,
            dst_port: 52,
            len: 9,
            ty: 1,
            op: 5,
            flags: 0,
            buf_alloc: 7,
            fwd_cnt: 8,
        };
        assert_eq!(Hdr::parse(&h.bytes()), h);
    }

    fn dev(name: &str) -> (Vsock, PathBuf) {
        let p = std::env::temp_dir().join(format!("strata-vsock-{}-{name}.sock", std::process::id()));
        (Vsock::new(3, p.clone()).unwrap(), p)
    }

    #[test]
    fn guest_connect_to_missing_port_is_reset_and_host_connect_sends_request() {
        let (mut v, p) = dev("a");
        let req = Hdr {
            src_cid: 3,
            dst_cid: 2,
            src_port: 999,
            dst_port: 5000,
            ty: 1,
            op: op::REQUEST,
            buf_alloc: 4096,
            ..Hdr::default()
        };
        v.take_from_guest(req, &[]);
        assert_eq!(v.ctrl.pop_front().map(|h| (h.op, h.dst_port, h.src_port)), Some((op::RST, 999, 5000)));
        // A listener at <uds>_5000 accepts.
        let lp = format!("{}_5000", p.display());
        let l = UnixListener::bind(&lp).unwrap();
        v.take_from_guest(req, &[]);
        assert_eq!(v.ctrl.pop_front().map(|h| h.op), Some(op::RESPONSE));
        let mut rw = req;
        rw.op = op::RW;
        rw.len = 5;
        v.take_from_guest(rw, b"hello");
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
        let resp = Hdr {
            src_cid: 3,
            dst_cid: 2,
            src_port: 52,
            dst_port: r.src_port,
            ty: 1,
            op: op::RESPONSE,
            buf_alloc: 4096,
            ..Hdr::default()
        };
        v.take_from_guest(resp, &[]);
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
            v.take_from_guest(h, &data);
            v.host_io();
            while v.ctrl.len() > 100 {
                v.ctrl.pop_front();
            }
            for c in v.conns.values() {
                assert!(c.to_host.len() <= BUF_ALLOC as usize + 64 + MAX_PKT);
            }
        }
    }

    /// Guest RAM with the three queues (size 16) for driving the device
    /// through its queues, as the Linux driver would.
    struct Rig {
        mem: strata_memory::GuestRam,
        queues: Vec<crate::virtio::Queue>,
        tx_idx: u16,
        rx_idx: u16,
        rx_seen: u16,
    }

    const RAM: u64 = 0x8000_0000;
    const QBASE: [u64; 3] = [RAM + 0x1000, RAM + 0x5000, RAM + 0x9000];
    const TXDATA: u64 = RAM + 0x2_0000;
    const RXDATA: u64 = RAM + 0x4_0000;

    impl Rig {
        fn new() -> Rig {
            let mem = strata_memory::GuestRam::new(RAM, 0x10_0000).unwrap();
            let mut queues = Vec::new();
            for b in QBASE {
                let mut q = crate::virtio::Queue::new(16);
                q.size = 16;
                q.desc_addr = b;
                q.avail_addr = b + 0x1000;
                q.used_addr = b + 0x2000;
                q.ready = true;
                q.set_features(false, false);
                q.validate(&mem).unwrap();
                queues.push(q);
            }
            Rig { mem, queues, tx_idx: 0, rx_idx: 0, rx_seen: 0 }
        }
        fn ctx(&mut self) -> QueueCtx<'_> {
            QueueCtx { mem: &self.mem, queues: &mut self.queues }
        }
        /// Offers one guest packet on the transmit queue (not notified).
        fn offer_tx(&mut self, h: Hdr, payload: &[u8]) {
            let slot = (self.tx_idx % 16) as u64;
            let at = TXDATA + slot * 0x1000;
            self.mem.write_bytes(at, &h.bytes()).unwrap();
            self.mem.write_bytes(at + HDR_LEN as u64, payload).unwrap();
            let d = QBASE[TXQ] + 16 * slot;
            self.mem.store(d, 8, at).unwrap();
            self.mem.store(d + 8, 4, (HDR_LEN + payload.len()) as u64).unwrap();
            self.mem.store(d + 12, 4, 0).unwrap();
            self.mem.store(QBASE[TXQ] + 0x1000 + 4 + 2 * slot, 2, slot).unwrap();
            self.tx_idx = self.tx_idx.wrapping_add(1);
            self.mem.store(QBASE[TXQ] + 0x1000 + 2, 2, self.tx_idx as u64).unwrap();
        }
        fn post_rx(&mut self, n: u16) {
            for _ in 0..n {
                let slot = (self.rx_idx % 16) as u64;
                let d = QBASE[RXQ] + 16 * slot;
                self.mem.store(d, 8, RXDATA + slot * 0x1000).unwrap();
                self.mem.store(d + 8, 4, 0x1000).unwrap();
                self.mem.store(d + 12, 4, crate::virtio::queue::VIRTQ_DESC_F_WRITE as u64).unwrap();
                self.mem.store(QBASE[RXQ] + 0x1000 + 4 + 2 * slot, 2, slot).unwrap();
                self.rx_idx = self.rx_idx.wrapping_add(1);
            }
            self.mem.store(QBASE[RXQ] + 0x1000 + 2, 2, self.rx_idx as u64).unwrap();
        }
        /// Packets the device put in receive buffers since the last call.
        fn take_rx(&mut self) -> Vec<(Hdr, Vec<u8>)> {
            let used = self.mem.load(QBASE[RXQ] + 0x2000 + 2, 2).unwrap() as u16;
            let mut out = Vec::new();
            while self.rx_seen != used {
                let e = QBASE[RXQ] + 0x2000 + 4 + 8 * (self.rx_seen % 16) as u64;
                let id = self.mem.load(e, 4).unwrap();
                let len = self.mem.load(e + 4, 4).unwrap() as usize;
                let mut b = vec![0u8; len];
                self.mem.read_bytes(RXDATA + id * 0x1000, &mut b).unwrap();
                let h = Hdr::parse(b[..HDR_LEN].try_into().unwrap());
                out.push((h, b[HDR_LEN..].to_vec()));
                self.rx_seen = self.rx_seen.wrapping_add(1);
            }
            out
        }
    }

    fn guest_pkt(src_port: u32, dst_port: u32, op: u16) -> Hdr {
        Hdr { src_cid: 3, dst_cid: 2, src_port, dst_port, ty: TYPE_STREAM, op, buf_alloc: 1 << 20, ..Hdr::default() }
    }

    /// Guest connects, sends, half-closes (SHUTDOWN SEND); the host reads
    /// everything and EOF, answers and closes; the guest gets the answer,
    /// then SHUTDOWN SEND, then the RST that ends the connection.
    #[test]
    fn half_close_in_both_directions() {
        let (mut v, p) = dev("hc");
        let lp = format!("{}_6000", p.display());
        let l = UnixListener::bind(&lp).unwrap();
        let mut r = Rig::new();
        r.post_rx(16);
        r.offer_tx(guest_pkt(1000, 6000, op::REQUEST), &[]);
        let mut rw = guest_pkt(1000, 6000, op::RW);
        rw.len = 6;
        r.offer_tx(rw, b"hello\n");
        let mut sd = guest_pkt(1000, 6000, op::SHUTDOWN);
        sd.flags = SHUTDOWN_SEND;
        r.offer_tx(sd, &[]);
        v.work(&mut r.ctx()).unwrap();
        let got = r.take_rx();
        assert_eq!(got.iter().map(|(h, _)| h.op).collect::<Vec<_>>(), vec![op::RESPONSE]);
        let (mut s, _) = l.accept().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap(); // EOF: the guest's SEND shutdown
        assert_eq!(all, b"hello\n");
        // The connection is still open the other way.
        s.write_all(b"answer").unwrap();
        drop(s);
        let mut pkts = Vec::new();
        for _ in 0..100 {
            v.work(&mut r.ctx()).unwrap();
            pkts.extend(r.take_rx());
            if pkts.iter().any(|(h, _)| h.op == op::RST) {
                break;
            }
        }
        let ops: Vec<u16> = pkts.iter().map(|(h, _)| h.op).collect();
        assert_eq!(ops, vec![op::RW, op::SHUTDOWN, op::RST], "{pkts:?}");
        assert_eq!(pkts[0].1, b"answer");
        assert_eq!(pkts[1].0.flags, SHUTDOWN_SEND);
        assert!(v.conns.is_empty());
        std::fs::remove_file(lp).unwrap();
    }

    /// A guest that floods connection requests without posting receive
    /// buffers: the device stops taking packets at CTRL_LIMIT answers.
    #[test]
    fn control_backlog_is_bounded() {
        let (mut v, _p) = dev("flood");
        let mut r = Rig::new();
        for i in 0..2000u32 {
            r.offer_tx(guest_pkt(i, 7777, op::REQUEST), &[]);
            v.work(&mut r.ctx()).unwrap();
            assert!(v.ctrl.len() <= CTRL_LIMIT);
            if r.tx_idx.wrapping_sub(r.queues[TXQ].next_avail()) >= 16 {
                break; // the device stopped consuming: the queue is full
            }
        }
        assert_eq!(v.ctrl.len(), CTRL_LIMIT);
        // Receive buffers let it go on.
        r.post_rx(16);
        v.work(&mut r.ctx()).unwrap();
        assert_eq!(r.take_rx().len(), 16);
        assert!(r.queues[TXQ].next_avail() > CTRL_LIMIT as u16);
    }

    /// A host listener that never accepts: once its backlog is full the
    /// device answers RST instead of blocking the machine in connect(2).
    #[test]
    fn full_host_backlog_is_a_refusal_not_a_hang() {
        let (mut v, p) = dev("backlog");
        let lp = format!("{}_8000", p.display());
        let l = UnixListener::bind(&lp).unwrap();
        // SAFETY: listen(2) on the listener's own descriptor (backlog 2).
        assert_eq!(unsafe { libc::listen(std::os::unix::io::AsRawFd::as_raw_fd(&l), 2) }, 0);
        let mut rst = 0;
        for port in 0..400u32 {
            v.take_from_guest(guest_pkt(port, 8000, op::REQUEST), &[]);
            while let Some(h) = v.ctrl.pop_front() {
                rst += (h.op == op::RST) as u32;
            }
        }
        assert!(rst > 0 && rst < 400, "{rst} refusals");
        std::fs::remove_file(lp).unwrap();
    }
}

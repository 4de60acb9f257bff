//! virtio-blk (Virtio 1.2 §5.2) on a raw image file.
//!
//! One request queue (§5.2.2). A request (§5.2.6) is a device-readable
//! header {type u32, reserved u32, sector u64}, then data (device-readable
//! for writes, discard and write-zeroes segments; device-writable for reads
//! and GET_ID), then one device-writable status byte, the last byte of the
//! chain. The used length is the number of bytes written into the chain,
//! status included.
//!
//! Everything the driver sends is checked: a request without room for the
//! status byte is completed with length 0 (there is nowhere to report an
//! error); a short header, a data length that is not a multiple of 512, a
//! range outside the capacity (§5.2.6.2 "MUST NOT read or write beyond
//! capacity"), too many or too large discard/write-zeroes segments (the
//! limits advertised in config space) and writes to a read-only disk
//! (§5.2.6.2 with VIRTIO_BLK_F_RO) all complete with VIRTIO_BLK_S_IOERR;
//! unknown types get VIRTIO_BLK_S_UNSUPP. Data moves in bounded chunks, so
//! a chain that claims gigabytes costs no more host memory than a small one.
//!
//! Durability: writes go to the host file with pwrite; a FLUSH completes
//! only after fdatasync(2) of the file succeeded (§5.2.6.2: data written
//! before the flush is then on stable storage), so after the guest's
//! `sync` returns the data survives the emulator being killed.
//!
//! Backends: a raw image file ([`Block::open`], [`Block::from_file`]), or
//! any [`DiskBackend`] ([`Block::from_backend`]: a disk streamed over
//! HTTP, crates/stream). A backend's errors are host errors like the
//! file's, under the same policies; a backend has no discard (a hint) and
//! zeroes by writing zeros.
//!
//! Sharing: [`Block::open`] locks the image the way QEMU does
//! ([`super::image_lock`]): one writer, or any number of read-only users.
//!
//! Host errors: a read, write or flush of the image that fails on the host
//! (EIO, ENOSPC, EDQUOT, a file shrunk under us, ...) is a host error, not
//! the guest's. The first of each kind (operation and errno) per drive is
//! logged on stderr, later ones are counted ([`Block::host_errors`]). What
//! the guest sees is the drive's policy, QEMU's `rerror=`/`werror=`:
//!
//! | policy   | the request                     | the machine          |
//! |----------|---------------------------------|----------------------|
//! | `report` | completes with VIRTIO_BLK_S_IOERR | runs on            |
//! | `stop`   | is never completed              | stops (disks flushed) |
//! | `enospc` | as `stop` for ENOSPC and EDQUOT, as `report` otherwise | |
//!
//! Once stopped, the device completes nothing more (so nothing the guest
//! wrote after the failed request reaches the disk out of order) and
//! [`VirtioDevice::host_stop`] says why; the run loop ends the machine.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use strata_memory::GuestMemory;

use super::queue::{copy_segments, Chain};
use super::{id, put_le, DeviceError, QueueCtx, VirtioDevice};

pub const SECTOR: u64 = 512;

/// Feature bits (§5.2.3).
pub mod feature {
    pub const SIZE_MAX: u64 = 1 << 1;
    pub const SEG_MAX: u64 = 1 << 2;
    pub const RO: u64 = 1 << 5;
    pub const BLK_SIZE: u64 = 1 << 6;
    pub const FLUSH: u64 = 1 << 9;
    pub const DISCARD: u64 = 1 << 13;
    pub const WRITE_ZEROES: u64 = 1 << 14;
}

/// Request types (§5.2.6).
pub mod req {
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const FLUSH: u32 = 4;
    pub const GET_ID: u32 = 8;
    pub const DISCARD: u32 = 11;
    pub const WRITE_ZEROES: u32 = 13;
}

/// Status values (§5.2.6).
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// GET_ID answers with up to 20 bytes (§5.2.6: VIRTIO_BLK_ID_BYTES).
pub const ID_BYTES: usize = 20;

const QUEUE_SIZE: u16 = 256;
/// Segments per request advertised in `seg_max`: the queue size minus the
/// header and status descriptors (the driver uses indirect tables).
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
const MAX_DISCARD_SECTORS: u32 = 1 << 22;
const MAX_DISCARD_SEG: u32 = 32;
const DISCARD_ALIGNMENT: u32 = 8;
/// Bounce buffer size for moving data between the file and guest RAM.
const CHUNK: usize = 1 << 20;
/// Config space through `write_zeroes_may_unmap` and its padding (§5.2.4).
const CONFIG_LEN: usize = 60;

/// What a host error does to the guest's request (QEMU's `rerror=` and
/// `werror=` drive options); see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    #[default]
    Report,
    Stop,
    Enospc,
}

impl ErrorPolicy {
    pub fn parse(key: &str, v: &str) -> Result<ErrorPolicy, String> {
        match v {
            "report" => Ok(ErrorPolicy::Report),
            "stop" => Ok(ErrorPolicy::Stop),
            "enospc" => Ok(ErrorPolicy::Enospc),
            _ => Err(format!("{key}={v}: expected report, stop or enospc")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorPolicy::Report => "report",
            ErrorPolicy::Stop => "stop",
            ErrorPolicy::Enospc => "enospc",
        }
    }

    fn stops(self, errno: Option<i32>) -> bool {
        match self {
            ErrorPolicy::Report => false,
            ErrorPolicy::Stop => true,
            ErrorPolicy::Enospc => matches!(errno, Some(libc::ENOSPC | libc::EDQUOT)),
        }
    }
}

/// The host operations whose errors are counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostOp {
    Read,
    Write,
    Flush,
}

impl HostOp {
    fn noun(self) -> &'static str {
        match self {
            HostOp::Read => "read",
            HostOp::Write => "write",
            HostOp::Flush => "flush",
        }
    }
}

/// Why moving a request's data failed.
enum Fail {
    /// The chain's buffers are not all in guest memory: the guest's fault.
    Guest,
    /// The host file refused (offset and length of the failed piece).
    Host(io::Error, u64, u64),
}

/// A drive's host side other than a raw image file. Reads and writes are
/// whole (no short counts); an error is the host's, handled by the drive's
/// `rerror`/`werror` policy.
pub trait DiskBackend: Send {
    /// The disk's size in bytes (a whole number of sectors).
    fn size(&self) -> u64;
    fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Everything written so far on stable storage.
    fn flush(&mut self) -> io::Result<()>;
    /// The backend's own counters for `--stats` (none by default).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Where a drive's sectors live.
enum Backend {
    File(File),
    Other(Box<dyn DiskBackend>),
}

impl Backend {
    fn read_exact_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        match self {
            Backend::File(f) => f.read_exact_at(buf, pos),
            Backend::Other(b) => b.read_at(buf, pos),
        }
    }
    fn write_all_at(&mut self, buf: &[u8], pos: u64) -> io::Result<()> {
        match self {
            Backend::File(f) => f.write_all_at(buf, pos),
            Backend::Other(b) => b.write_at(buf, pos),
        }
    }
    fn sync_data(&mut self) -> io::Result<()> {
        match self {
            Backend::File(f) => f.sync_data(),
            Backend::Other(b) => b.flush(),
        }
    }
    /// fallocate(2) on a file; `false` (not done) for other backends.
    fn fallocate(&self, mode: libc::c_int, pos: u64, len: u64) -> bool {
        match self {
            Backend::File(f) => fallocate(f, mode, pos, len),
            Backend::Other(_) => false,
        }
    }
}

pub struct Block {
    file: Backend,
    /// The image's path, for messages (`None` from [`Block::from_file`]).
    path: Option<PathBuf>,
    /// What messages call a non-file backend ("streamed disk URL").
    label: Option<String>,
    /// Capacity in 512-byte sectors.
    capacity: u64,
    readonly: bool,
    serial: [u8; ID_BYTES],
    scratch: Vec<u8>,
    /// Requests completed, by type (for `--stats` and tests).
    pub completed: u64,
    /// Bytes read from and written to the backend for the guest.
    read_bytes: u64,
    written_bytes: u64,
    rerror: ErrorPolicy,
    werror: ErrorPolicy,
    /// Host errors by operation and errno (0: no errno, e.g. a short read).
    errors: BTreeMap<(HostOp, i32), (u64, String)>,
    /// Set when a host error stopped the device (policy `stop`).
    stopped: Option<String>,
    /// Monitors' observers of every request (`super::tap`).
    taps: Option<std::sync::Arc<super::tap::Taps>>,
}

impl Block {
    /// Opens `path` as a raw disk image. The capacity is the file size,
    /// which must be a whole number of sectors.
    /// The image is locked for the drive's access ([`super::image_lock`]):
    /// an image another drive or program writes, or reads while refusing
    /// writers, is refused with the holder's name where it can be found.
    pub fn open(path: &Path, readonly: bool, serial: Option<&str>) -> Result<Block, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(!readonly)
            .open(path)
            .map_err(|e| format!("cannot open disk image {}: {e}", path.display()))?;
        let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("disk image {} is not a regular file", path.display()));
        }
        if meta.len() % SECTOR != 0 {
            return Err(format!(
                "disk image {} is {} bytes, not a whole number of 512-byte sectors",
                path.display(),
                meta.len()
            ));
        }
        super::image_lock::lock(&file, path, readonly)?;
        let mut b = Block::from_file(file, readonly, serial)?;
        b.path = Some(path.to_path_buf());
        Ok(b)
    }

    /// Sets what host read errors (`rerror`) and write and flush errors
    /// (`werror`) do.
    pub fn with_error_policy(mut self, rerror: ErrorPolicy, werror: ErrorPolicy) -> Block {
        self.rerror = rerror;
        self.werror = werror;
        self
    }

    pub fn from_file(file: File, readonly: bool, serial: Option<&str>) -> Result<Block, String> {
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        Block::new(Backend::File(file), len, readonly, serial)
    }

    /// A drive on `backend`, called `label` in messages. Its size must be
    /// a whole number of sectors.
    pub fn from_backend(
        backend: Box<dyn DiskBackend>,
        label: &str,
        readonly: bool,
        serial: Option<&str>,
    ) -> Result<Block, String> {
        let len = backend.size();
        if len % SECTOR != 0 {
            return Err(format!("{label} is {len} bytes, not a whole number of 512-byte sectors"));
        }
        let mut b = Block::new(Backend::Other(backend), len, readonly, serial)?;
        b.label = Some(label.to_string());
        Ok(b)
    }

    fn new(file: Backend, len: u64, readonly: bool, serial: Option<&str>) -> Result<Block, String> {
        let mut s = [0u8; ID_BYTES];
        if let Some(serial) = serial {
            if serial.len() > ID_BYTES {
                return Err(format!("serial {serial:?} is longer than {ID_BYTES} bytes"));
            }
            s[..serial.len()].copy_from_slice(serial.as_bytes());
        }
        Ok(Block {
            file,
            path: None,
            label: None,
            capacity: len / SECTOR,
            readonly,
            serial: s,
            scratch: Vec::new(),
            completed: 0,
            read_bytes: 0,
            written_bytes: 0,
            rerror: ErrorPolicy::Report,
            werror: ErrorPolicy::Report,
            errors: BTreeMap::new(),
            stopped: None,
            taps: None,
        })
    }

    fn image_name(&self) -> String {
        match (&self.path, &self.label) {
            (Some(p), _) => format!("disk image {}", p.display()),
            (None, Some(l)) => l.clone(),
            (None, None) => "disk image".into(),
        }
    }

    /// Host errors so far, one line per kind: "3 writes failed: No space
    /// left on device (os error 28)".
    pub fn host_errors(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|((op, _), (n, what))| format!("{n} {}{} failed: {what}", op.noun(), if *n == 1 { "" } else { "s" }))
            .collect()
    }

    /// A host error while serving a request: counted, logged the first
    /// time for its kind, and then the policy decides. `None`: the device
    /// stopped and the request stays unfinished.
    fn host_error(&mut self, op: HostOp, pos: u64, len: u64, e: io::Error) -> Option<(u8, u64)> {
        let errno = e.raw_os_error();
        let what = match e.kind() {
            io::ErrorKind::UnexpectedEof => "the image ended early (shrunk by another program?)".to_string(),
            _ => e.to_string(),
        };
        let (policy, key) = if op == HostOp::Read { (self.rerror, "rerror") } else { (self.werror, "werror") };
        let stop = policy.stops(errno);
        let entry = self.errors.entry((op, errno.unwrap_or(0))).or_insert((0, what.clone()));
        entry.0 += 1;
        let first = entry.0 == 1;
        let at = if op == HostOp::Flush { String::new() } else { format!(" of {len} bytes at offset {pos}") };
        let line = format!("{}: {}{at} failed: {what}", self.image_name(), op.noun());
        if stop {
            // What did reach the file is made durable before the machine
            // stops; the failed request itself never completes.
            let _ = self.file.sync_data();
            eprintln!("strata: {line}; {key}=stop: the machine stops");
            self.stopped = Some(format!("{line} ({key}=stop)"));
            return None;
        }
        if first {
            eprintln!(
                "strata: {line}; the guest gets an I/O error ({key}={}); more errors like this are counted, not logged",
                policy.name()
            );
        }
        Some((S_IOERR, 0))
    }

    pub fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    /// Is `[sector, sector + n)` inside the disk?
    fn in_range(&self, sector: u64, n: u64) -> bool {
        sector.checked_add(n).is_some_and(|end| end <= self.capacity)
    }

    /// Executes one request; returns the used length, or `None` when a
    /// host error stopped the device (the request stays unfinished).
    pub fn handle(&mut self, mem: &dyn GuestMemory, c: &Chain) -> Option<u32> {
        let wlen = c.writable_len();
        if wlen == 0 {
            return Some(0);
        }
        let status_at = wlen - 1;
        let (status, written) = self.execute(mem, c, status_at)?;
        c.write_at(mem, status_at, &[status]);
        self.completed += 1;
        // `written` ≤ status_at < 2^32 × chain length; clamp for the field.
        Some(u32::try_from(written + 1).unwrap_or(u32::MAX))
    }

    /// Returns (status, bytes of data written to the guest), or `None` when
    /// the device stopped.
    fn execute(&mut self, mem: &dyn GuestMemory, c: &Chain, data_in: u64) -> Option<(u8, u64)> {
        let mut hdr = [0u8; 16];
        if c.read_at(mem, 0, &mut hdr) != 16 {
            return Some((S_IOERR, 0));
        }
        let ty = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        let data_out = c.readable_len() - 16;
        if let Some(t) = &self.taps {
            let bytes = if ty == req::IN { data_in } else { data_out };
            if let Some(status) = t.run(&super::tap::BlockRequest { kind: ty, sector, bytes }) {
                return Some((status, 0));
            }
        }
        let done = match ty {
            req::IN => {
                if data_in % SECTOR != 0 || !self.in_range(sector, data_in / SECTOR) {
                    return Some((S_IOERR, 0));
                }
                match self.read_to_guest(mem, c, sector * SECTOR, data_in) {
                    Ok(()) => (S_OK, data_in),
                    Err(Fail::Guest) => (S_IOERR, 0),
                    Err(Fail::Host(e, pos, len)) => return self.host_error(HostOp::Read, pos, len, e),
                }
            }
            req::OUT => {
                if self.readonly || data_out % SECTOR != 0 || !self.in_range(sector, data_out / SECTOR) {
                    return Some((S_IOERR, 0));
                }
                match self.write_from_guest(mem, c, sector * SECTOR, data_out) {
                    Ok(()) => (S_OK, 0),
                    Err(Fail::Guest) => (S_IOERR, 0),
                    Err(Fail::Host(e, pos, len)) => return self.host_error(HostOp::Write, pos, len, e),
                }
            }
            req::FLUSH => {
                if self.readonly {
                    return Some((S_OK, 0));
                }
                match self.file.sync_data() {
                    Ok(()) => (S_OK, 0),
                    Err(e) => return self.host_error(HostOp::Flush, 0, 0, e),
                }
            }
            req::GET_ID => {
                let n = (ID_BYTES as u64).min(data_in) as usize;
                let n = c.write_at(mem, 0, &self.serial[..n]);
                (S_OK, n as u64)
            }
            req::DISCARD | req::WRITE_ZEROES => {
                if self.readonly {
                    return Some((S_IOERR, 0));
                }
                match self.discard_or_zero(mem, c, ty == req::WRITE_ZEROES, data_out) {
                    Ok(status) => (status, 0),
                    Err(Fail::Guest) => (S_IOERR, 0),
                    Err(Fail::Host(e, pos, len)) => return self.host_error(HostOp::Write, pos, len, e),
                }
            }
            _ => (S_UNSUPP, 0),
        };
        Some(done)
    }

    /// Moves `len` bytes at file offset `pos` into the chain's writable
    /// buffers: one pread per [`CHUNK`] of the request (not one per guest
    /// segment), then a copy into each segment.
    fn read_to_guest(&mut self, mem: &dyn GuestMemory, c: &Chain, pos: u64, len: u64) -> Result<(), Fail> {
        let Block { file, scratch, read_bytes, .. } = self;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            file.read_exact_at(&mut scratch[..n], pos + done).map_err(|e| Fail::Host(e, pos + done, n as u64))?;
            let buf = &scratch[..n];
            let copied = copy_segments(&c.writable, done, n as u64, |addr, at, k| {
                mem.write_bytes(addr, &buf[at..at + k]).is_ok()
            });
            if copied != n {
                return Err(Fail::Guest);
            }
            done += n as u64;
            *read_bytes += n as u64;
        }
        Ok(())
    }

    /// Moves `len` bytes from the chain's readable buffers (after the
    /// 16-byte header) to file offset `pos`, one pwrite per [`CHUNK`].
    fn write_from_guest(&mut self, mem: &dyn GuestMemory, c: &Chain, pos: u64, len: u64) -> Result<(), Fail> {
        let Block { file, scratch, written_bytes, .. } = self;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            if scratch.len() < n {
                scratch.resize(n, 0);
            }
            let buf = &mut scratch[..n];
            let copied = copy_segments(&c.readable, 16 + done, n as u64, |addr, at, k| {
                mem.read_bytes(addr, &mut buf[at..at + k]).is_ok()
            });
            if copied != n {
                return Err(Fail::Guest);
            }
            file.write_all_at(&scratch[..n], pos + done).map_err(|e| Fail::Host(e, pos + done, n as u64))?;
            done += n as u64;
            *written_bytes += n as u64;
        }
        Ok(())
    }

    /// DISCARD and WRITE_ZEROES (§5.2.6): the data is an array of
    /// {sector u64, num_sectors u32, flags u32} segments.
    fn discard_or_zero(&mut self, mem: &dyn GuestMemory, c: &Chain, zero: bool, data_out: u64) -> Result<u8, Fail> {
        const UNMAP: u32 = 1;
        if data_out == 0 || data_out % 16 != 0 || data_out / 16 > MAX_DISCARD_SEG as u64 {
            return Ok(S_IOERR);
        }
        let mut segs = Vec::new();
        for i in 0..data_out / 16 {
            let mut s = [0u8; 16];
            if c.read_at(mem, 16 + 16 * i, &mut s) != 16 {
                return Err(Fail::Guest);
            }
            let sector = u64::from_le_bytes(s[0..8].try_into().unwrap());
            let num = u32::from_le_bytes(s[8..12].try_into().unwrap());
            let flags = u32::from_le_bytes(s[12..16].try_into().unwrap());
            // §5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP.
            if flags & !UNMAP != 0 || (!zero && flags & UNMAP != 0) {
                return Ok(S_UNSUPP);
            }
            if num > MAX_DISCARD_SECTORS || !self.in_range(sector, num as u64) {
                return Ok(S_IOERR);
            }
            segs.push((sector * SECTOR, num as u64 * SECTOR, flags & UNMAP != 0));
        }
        for (pos, len, unmap) in segs {
            if len == 0 {
                continue;
            }
            if zero {
                let mode = if unmap {
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
                } else {
                    libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE
                };
                if !self.file.fallocate(mode, pos, len) {
                    self.write_zeroes_slowly(pos, len)?;
                }
            } else {
                // A discard is a hint (§5.2.6.2): a failed punch is fine.
                self.file.fallocate(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, pos, len);
            }
        }
        Ok(S_OK)
    }

    fn write_zeroes_slowly(&mut self, pos: u64, len: u64) -> Result<(), Fail> {
        let zeros = vec![0u8; CHUNK.min(len as usize)];
        let mut done = 0;
        while done < len {
            let k = (len - done).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..k], pos + done).map_err(|e| Fail::Host(e, pos + done, k as u64))?;
            done += k as u64;
        }
        Ok(())
    }
}

fn fallocate(f: &File, mode: libc::c_int, pos: u64, len: u64) -> bool {
    let (Ok(pos), Ok(len)) = (libc::off_t::try_from(pos), libc::off_t::try_from(len)) else { return false };
    // SAFETY: fallocate on a file descriptor we own; no memory is passed.
    unsafe { libc::fallocate(f.as_raw_fd(), mode, pos, len) == 0 }
}

impl VirtioDevice for Block {
    fn block_taps(&mut self) -> Option<std::sync::Arc<super::tap::Taps>> {
        Some(self.taps.get_or_insert_with(super::tap::Taps::new).clone())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = vec![("read_bytes", self.read_bytes), ("written_bytes", self.written_bytes)];
        if let Backend::Other(b) = &self.file {
            c.extend(b.counters());
        }
        c
    }
    fn device_id(&self) -> u32 {
        id::BLOCK
    }
    fn features(&self) -> u64 {
        let mut f = feature::SEG_MAX | feature::FLUSH;
        if self.readonly {
            f |= feature::RO;
        } else {
            f |= feature::DISCARD | feature::WRITE_ZEROES;
        }
        f
    }
    fn num_queues(&self) -> usize {
        1
    }
    fn queue_max_size(&self) -> u16 {
        QUEUE_SIZE
    }
    fn config_len(&self) -> usize {
        CONFIG_LEN
    }
    /// `struct virtio_blk_config` (§5.2.4).
    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let mut c = [0u8; CONFIG_LEN];
        put_le(&mut c, 0, self.capacity, 8);
        put_le(&mut c, 12, SEG_MAX as u64, 4);
        put_le(&mut c, 20, SECTOR, 4); // blk_size (read only with BLK_SIZE)
        put_le(&mut c, 36, MAX_DISCARD_SECTORS as u64, 4);
        put_le(&mut c, 40, MAX_DISCARD_SEG as u64, 4);
        put_le(&mut c, 44, DISCARD_ALIGNMENT as u64, 4);
        put_le(&mut c, 48, MAX_DISCARD_SECTORS as u64, 4);
        put_le(&mut c, 52, MAX_DISCARD_SEG as u64, 4);
        c[56] = 1; // write_zeroes_may_unmap
        if let Some(src) = c.get(offset..offset + data.len()) {
            data.copy_from_slice(src);
        }
    }
    fn reset(&mut self) {}
    fn shut_down(&mut self) {
        // What the guest wrote without a FLUSH is in the host's page cache;
        // a clean stop puts it on stable storage too.
        if !self.readonly {
            let _ = self.file.sync_data();
        }
    }
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
        let Some(queue) = ctx.queues.get_mut(q) else { return Ok(()) };
        if self.stopped.is_some() {
            return Ok(());
        }
        while let Some(chain) = queue.pop(ctx.mem)? {
            let Some(used) = self.handle(ctx.mem, &chain) else {
                // Stopped: the request stays where the guest put it.
                queue.undo_pop();
                break;
            };
            queue.push_used(ctx.mem, chain.head, used)?;
        }
        Ok(())
    }
    fn host_stop(&self) -> Option<String> {
        self.stopped.clone()
    }
    fn host_errors(&self) -> Vec<String> {
        Block::host_errors(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::tests::{bring_up, mk};
    use crate::virtio::queue::tests::{desc, AVAIL, DATA, DESC, RAM, USED};
    use crate::virtio::queue::{VIRTQ_DESC_F_NEXT as N, VIRTQ_DESC_F_WRITE as W};
    use crate::virtio::TestRng;
    use crate::MmioDevice;
    use strata_memory::GuestRam;

    fn temp_image(name: &str, sectors: u64) -> (std::path::PathBuf, File) {
        let p = std::env::temp_dir().join(format!("strata-blk-{}-{name}.img", std::process::id()));
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let data: Vec<u8> = (0..sectors * SECTOR).map(|i| (i / SECTOR) as u8 ^ (i as u8)).collect();
        f.write_all_at(&data, 0).unwrap();
        (p, f)
    }

    struct Rig {
        m: crate::virtio::VirtioMmio,
        mem: std::sync::Arc<GuestRam>,
        idx: u16,
    }

    impl Rig {
        fn new(name: &str, sectors: u64, readonly: bool) -> (Rig, std::path::PathBuf) {
            let (p, _) = temp_image(name, sectors);
            let blk = Block::open(&p, readonly, Some("strata-serial-0001")).unwrap();
            (Rig::with(blk), p)
        }
        fn with(blk: Block) -> Rig {
            let (mut m, mem, _) = mk(Box::new(blk));
            bring_up(&mut m, 1 << 32 | feature::FLUSH | feature::SEG_MAX | 1 << 28);
            Rig { m, mem, idx: 0 }
        }
        /// Sends header + data buffers; returns (status, used len).
        fn request(&mut self, ty: u32, sector: u64, out: &[u8], in_len: u32) -> (u8, u32) {
            assert!(self.send(ty, sector, out, in_len), "request not completed");
            let mem = &*self.mem;
            let used = mem.load(USED + 4 + 8 * ((self.idx - 1) % 8) as u64 + 4, 4).unwrap() as u32;
            (mem.load(DATA + 0x200, 1).unwrap() as u8, used)
        }
        /// Offers a request and notifies; true if the device completed it.
        fn send(&mut self, ty: u32, sector: u64, out: &[u8], in_len: u32) -> bool {
            let mem = &*self.mem;
            mem.store(DATA, 4, ty as u64).unwrap();
            mem.store(DATA + 4, 4, 0).unwrap();
            mem.store(DATA + 8, 8, sector).unwrap();
            mem.write_bytes(DATA + 0x1000, out).unwrap();
            let mut i = 0;
            desc(mem, DESC, i, DATA, 16, N, i + 1);
            i += 1;
            if !out.is_empty() {
                desc(mem, DESC, i, DATA + 0x1000, out.len() as u32, N, i + 1);
                i += 1;
            }
            if in_len > 0 {
                desc(mem, DESC, i, DATA + 0x4_0000, in_len, N | W, i + 1);
                i += 1;
            }
            desc(mem, DESC, i, DATA + 0x200, 1, W, 0);
            mem.store(AVAIL + 4 + 2 * (self.idx % 8) as u64, 2, 0).unwrap();
            self.idx = self.idx.wrapping_add(1);
            mem.store(AVAIL + 2, 2, self.idx as u64).unwrap();
            self.m.write(crate::virtio::mmio::reg::QUEUE_NOTIFY, 4, 0);
            mem.load(USED + 2, 2).unwrap() as u16 == self.idx
        }
        fn data_in(&self, len: usize) -> Vec<u8> {
            let mut v = vec![0; len];
            self.mem.read_bytes(DATA + 0x4_0000, &mut v).unwrap();
            v
        }
    }

    #[test]
    fn read_write_flush_id() {
        let (mut r, p) = Rig::new("rw", 64, false);
        assert_eq!(r.m.read(0x100, 8), 64);
        let (st, used) = r.request(req::IN, 3, &[], 1024);
        assert_eq!((st, used), (S_OK, 1025));
        let want: Vec<u8> = (3 * 512..5 * 512u64).map(|i| (i / 512) as u8 ^ i as u8).collect();
        assert_eq!(r.data_in(1024), want);
        let (st, used) = r.request(req::OUT, 10, &[0x5a; 512], 0);
        assert_eq!((st, used), (S_OK, 1));
        assert_eq!(r.request(req::FLUSH, 0, &[], 0), (S_OK, 1));
        let mut back = [0u8; 512];
        File::open(&p).unwrap().read_exact_at(&mut back, 10 * 512).unwrap();
        assert_eq!(back, [0x5a; 512]);
        let (st, used) = r.request(req::GET_ID, 0, &[], 20);
        assert_eq!((st, used), (S_OK, 21));
        assert_eq!(&r.data_in(20)[..18], b"strata-serial-0001");
        assert_eq!(r.request(99, 0, &[], 0), (S_UNSUPP, 1));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn out_of_range_and_malformed_requests_fail() {
        let (mut r, p) = Rig::new("range", 16, false);
        assert_eq!(r.request(req::IN, 15, &[], 1024).0, S_IOERR);
        assert_eq!(r.request(req::IN, 16, &[], 512).0, S_IOERR);
        assert_eq!(r.request(req::IN, u64::MAX, &[], 512).0, S_IOERR);
        assert_eq!(r.request(req::IN, 0, &[], 100).0, S_IOERR);
        assert_eq!(r.request(req::OUT, 16, &[1; 512], 0).0, S_IOERR);
        assert_eq!(r.request(req::OUT, 0, &[1; 100], 0).0, S_IOERR);
        assert_eq!(r.request(req::IN, 15, &[], 512).0, S_OK);
        // Discard segments: out of range, bad flags, bad length.
        let seg = |s: u64, n: u32, f: u32| [s.to_le_bytes().as_slice(), &n.to_le_bytes(), &f.to_le_bytes()].concat();
        assert_eq!(r.request(req::DISCARD, 0, &seg(15, 2, 0), 0).0, S_IOERR);
        assert_eq!(r.request(req::DISCARD, 0, &seg(0, 2, 1), 0).0, S_UNSUPP);
        assert_eq!(r.request(req::DISCARD, 0, &seg(0, 2, 0)[..15], 0).0, S_IOERR);
        assert_eq!(r.request(req::DISCARD, 0, &seg(0, 2, 0), 0).0, S_OK);
        // Write zeroes really zeroes.
        assert_eq!(r.request(req::WRITE_ZEROES, 0, &seg(4, 2, 0), 0).0, S_OK);
        assert_eq!(r.request(req::WRITE_ZEROES, 0, &seg(8, 1, 1), 0).0, S_OK);
        assert_eq!(r.request(req::IN, 4, &[], 512 * 5).0, S_OK);
        let d = r.data_in(512 * 5);
        assert!(d[..1024].iter().all(|&b| b == 0));
        assert!(d[1024..2048].iter().any(|&b| b != 0));
        assert!(d[2048..].iter().all(|&b| b == 0));
        // No writable byte at all: completed with length 0, nothing written.
        let mem = &*r.mem;
        desc(mem, DESC, 0, DATA, 16, 0, 0);
        mem.store(DATA, 4, req::OUT as u64).unwrap();
        mem.store(AVAIL + 4 + 2 * (r.idx % 8) as u64, 2, 0).unwrap();
        r.idx += 1;
        mem.store(AVAIL + 2, 2, r.idx as u64).unwrap();
        r.m.write(crate::virtio::mmio::reg::QUEUE_NOTIFY, 4, 0);
        assert_eq!(mem.load(USED + 4 + 8 * ((r.idx - 1) % 8) as u64 + 4, 4).unwrap(), 0);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn read_only_disk_rejects_writes() {
        let (mut r, p) = Rig::new("ro", 16, true);
        assert_ne!(r.m.read(crate::virtio::mmio::reg::DEVICE_FEATURES, 4) & feature::RO, 0);
        assert_eq!(r.request(req::OUT, 0, &[1; 512], 0).0, S_IOERR);
        assert_eq!(r.request(req::IN, 0, &[], 512).0, S_OK);
        assert_eq!(r.request(req::FLUSH, 0, &[], 0).0, S_OK);
        let mut b = [0u8; 512];
        File::open(&p).unwrap().read_exact_at(&mut b, 0).unwrap();
        assert_ne!(b, [1; 512]);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn open_errors_are_clear() {
        let e = Block::open(Path::new("/nonexistent/disk.img"), false, None).err().unwrap();
        assert!(e.contains("cannot open disk image /nonexistent/disk.img"), "{e}");
        let (p, f) = temp_image("odd", 1);
        f.set_len(700).unwrap();
        assert!(Block::open(&p, false, None).err().unwrap().contains("whole number"));
        assert!(Block::open(&p, false, Some("x".repeat(21).as_str())).is_err());
        std::fs::remove_file(p).unwrap();
    }

    /// Requests larger than the bounce buffer, in segments of odd sizes
    /// that straddle its chunk boundaries, move the right bytes both ways.
    #[test]
    fn large_requests_cross_chunk_boundaries() {
        use crate::virtio::queue::Buf;
        const SECTORS: u64 = 8192; // 4 MiB disk
        let (p, f) = temp_image("large", SECTORS);
        let mut blk = Block::open(&p, false, None).unwrap();
        let mem = GuestRam::new(RAM, 16 << 20).unwrap();
        // 3 MiB + 1536 bytes of data in 7 segments, then the status byte.
        let sizes = [1536u32, 700 * 1024, 1, 1024 * 1024 + 511, 300 * 1024, 900 * 1024 - 1, 100 * 1024 + 513];
        let total: u64 = sizes.iter().map(|&n| n as u64).sum();
        assert_eq!(total % SECTOR, 0);
        let mut bufs = Vec::new();
        let mut at = DATA + 0x1000;
        for &n in &sizes {
            bufs.push(Buf { addr: at, len: n });
            at += n as u64 + 0x1000;
        }
        let status = Buf { addr: at, len: 1 };
        let hdr = Buf { addr: DATA, len: 16 };
        // OUT at sector 100: the guest data is a pattern; the file must match.
        let pattern: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let mut off = 0usize;
        for b in &bufs {
            mem.write_bytes(b.addr, &pattern[off..off + b.len as usize]).unwrap();
            off += b.len as usize;
        }
        mem.store(DATA, 4, req::OUT as u64).unwrap();
        mem.store(DATA + 8, 8, 100).unwrap();
        let out = Chain { head: 0, readable: [vec![hdr], bufs.clone()].concat(), writable: vec![status] };
        assert_eq!(blk.handle(&mem, &out), Some(1));
        assert_eq!(mem.load(status.addr, 1).unwrap() as u8, S_OK);
        let mut back = vec![0u8; total as usize];
        f.read_exact_at(&mut back, 100 * SECTOR).unwrap();
        assert!(back == pattern, "file contents differ after a large OUT");
        // IN of the same range into zeroed buffers gives the pattern back.
        for b in &bufs {
            mem.zero(b.addr, b.len as u64).unwrap();
        }
        mem.store(DATA, 4, req::IN as u64).unwrap();
        let inr = Chain { head: 0, readable: vec![hdr], writable: [bufs.clone(), vec![status]].concat() };
        assert_eq!(blk.handle(&mem, &inr), Some(total as u32 + 1));
        let mut got = Vec::new();
        for b in &bufs {
            let mut v = vec![0u8; b.len as usize];
            mem.read_bytes(b.addr, &mut v).unwrap();
            got.extend(v);
        }
        assert!(got == pattern, "guest buffers differ after a large IN");
        std::fs::remove_file(p).unwrap();
    }

    /// Random request chains: whatever the header says, the file is only
    /// touched inside its capacity and the host never panics.
    #[test]
    fn random_requests_stay_in_bounds() {
        crate::virtio::with_seeds("random_requests_stay_in_bounds", 77, |seed| {
            let (p, _) = temp_image("rand", 8);
            let mut blk = Block::open(&p, false, None).unwrap();
            let mem = GuestRam::new(RAM, 0x10_0000).unwrap();
            let mut rng = TestRng::new(seed);
            for _ in 0..5000 {
                let mut c = Chain::default();
                for _ in 0..rng.below(4) {
                    c.readable.push(crate::virtio::queue::Buf {
                        addr: DATA + rng.below(0x8000),
                        len: rng.below(2048) as u32 + 1,
                    });
                }
                for _ in 0..rng.below(4) {
                    c.writable.push(crate::virtio::queue::Buf {
                        addr: DATA + 0x8000 + rng.below(0x8000),
                        len: rng.below(4096) as u32 + 1,
                    });
                }
                if let Some(b) = c.readable.first() {
                    let ty = [0u32, 1, 4, 8, 11, 13, rng.next() as u32][rng.below(7) as usize];
                    mem.store(b.addr, 4, ty as u64).unwrap();
                    let sector = if rng.below(2) == 0 { rng.below(10) } else { rng.next() };
                    let _ = mem.store(b.addr + 8, 8, sector);
                }
                let used = blk.handle(&mem, &c).expect("no host error here");
                assert!(used as u64 <= c.writable_len());
            }
            assert_eq!(std::fs::metadata(&p).unwrap().len(), 8 * SECTOR);
            drop(blk);
            std::fs::remove_file(p).unwrap();
        });
    }

    /// A drive on /dev/full: every write fails with ENOSPC, as on a full
    /// host file system (the end-to-end test, tests/disks, fills a real
    /// one).
    fn full_disk(werror: ErrorPolicy) -> Block {
        let f = OpenOptions::new().read(true).write(true).open("/dev/full").unwrap();
        let mut b = Block::from_file(f, false, None).unwrap().with_error_policy(ErrorPolicy::Report, werror);
        b.capacity = 64;
        b
    }

    #[test]
    fn host_write_errors_are_reported_and_counted() {
        let mut r = Rig::with(full_disk(ErrorPolicy::Report));
        for _ in 0..3 {
            assert_eq!(r.request(req::OUT, 2, &[7; 1024], 0), (S_IOERR, 1));
        }
        // Reads still work (/dev/full reads zeros); flush fails (EINVAL).
        assert_eq!(r.request(req::IN, 0, &[], 512), (S_OK, 513));
        assert_eq!(r.request(req::FLUSH, 0, &[], 0).0, S_IOERR);
        assert_eq!(r.m.device().host_stop(), None);
        let errs = r.m.device().host_errors();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("3 writes failed: No space left on device"), "{errs:?}");
        assert!(errs[1].starts_with("1 flush failed: "), "{errs:?}");
    }

    /// werror=stop: the failed request and every later one stay
    /// unfinished, and the device says why the machine must stop.
    #[test]
    fn werror_stop_leaves_the_request_and_stops() {
        let mut r = Rig::with(full_disk(ErrorPolicy::Stop));
        assert_eq!(r.request(req::IN, 0, &[], 512), (S_OK, 513));
        assert!(!r.send(req::OUT, 2, &[7; 512], 0), "the failed write must not complete");
        let why = r.m.device().host_stop().expect("stopped");
        assert!(why.contains("write of 512 bytes at offset 1024 failed: No space left on device"), "{why}");
        assert!(why.contains("werror=stop"), "{why}");
        assert!(!r.send(req::IN, 0, &[], 512), "nothing completes after the stop");
        assert_eq!(r.m.device().host_errors().len(), 1);
        // enospc stops on ENOSPC only.
        let mut r = Rig::with(full_disk(ErrorPolicy::Enospc));
        assert!(r.send(req::FLUSH, 0, &[], 0), "a flush error (EINVAL) is reported, not a stop");
        assert!(!r.send(req::OUT, 0, &[7; 512], 0));
    }

    /// rerror: a read the host refuses (here EISDIR, from a directory).
    #[test]
    fn host_read_errors_follow_rerror() {
        for (policy, completes) in [(ErrorPolicy::Report, true), (ErrorPolicy::Stop, false)] {
            let dir = File::open(std::env::temp_dir()).unwrap();
            let mut b = Block::from_file(dir, true, None).unwrap().with_error_policy(policy, ErrorPolicy::Report);
            b.capacity = 8;
            let mut r = Rig::with(b);
            assert_eq!(r.send(req::IN, 0, &[], 512), completes, "{policy:?}");
            if completes {
                assert_eq!(r.request(req::IN, 1, &[], 512).0, S_IOERR);
                assert!(r.m.device().host_errors()[0].starts_with("2 reads failed: Is a directory"));
            } else {
                assert!(r.m.device().host_stop().unwrap().contains("rerror=stop"));
            }
        }
    }

    #[test]
    fn error_policies_parse() {
        assert_eq!(ErrorPolicy::parse("werror", "stop"), Ok(ErrorPolicy::Stop));
        assert_eq!(ErrorPolicy::parse("werror", "report"), Ok(ErrorPolicy::Report));
        assert_eq!(ErrorPolicy::parse("rerror", "enospc"), Ok(ErrorPolicy::Enospc));
        assert!(ErrorPolicy::parse("werror", "ignore").unwrap_err().contains("report, stop or enospc"));
    }

    /// Two drives on one image: one writer, or readers only.
    #[test]
    fn images_are_locked() {
        let (p, _) = temp_image("lock", 8);
        let w = Block::open(&p, false, None).unwrap();
        for ro in [false, true] {
            let e = Block::open(&p, ro, None).err().unwrap();
            assert!(e.contains(&format!("disk image {} is in use", p.display())), "{e}");
        }
        drop(w);
        let r1 = Block::open(&p, true, None).unwrap();
        let _r2 = Block::open(&p, true, None).expect("read-only users share");
        assert!(Block::open(&p, false, None).is_err());
        drop((r1, _r2));
        Block::open(&p, false, None).expect("free once closed");
        std::fs::remove_file(p).unwrap();
    }
}

#[cfg(test)]
mod backend_tests {
    use super::*;
    use crate::virtio::queue::tests::{DATA, RAM};
    use crate::virtio::queue::Buf;
    use std::sync::{Arc, Mutex};
    use strata_memory::GuestRam;

    /// A disk in memory whose reads fail while `fail` is set; counts flushes.
    struct MemDisk {
        data: Arc<Mutex<Vec<u8>>>,
        fail: Arc<Mutex<bool>>,
        flushes: Arc<Mutex<u32>>,
    }

    impl DiskBackend for MemDisk {
        fn size(&self) -> u64 {
            self.data.lock().unwrap().len() as u64
        }
        fn read_at(&mut self, buf: &mut [u8], pos: u64) -> io::Result<()> {
            if *self.fail.lock().unwrap() {
                return Err(io::Error::other("server gone"));
            }
            buf.copy_from_slice(&self.data.lock().unwrap()[pos as usize..pos as usize + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, buf: &[u8], pos: u64) -> io::Result<()> {
            self.data.lock().unwrap()[pos as usize..pos as usize + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            *self.flushes.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn request(blk: &mut Block, mem: &GuestRam, ty: u32, sector: u64, out: &[u8], in_len: u32) -> u8 {
        mem.store(DATA, 4, ty as u64).unwrap();
        mem.store(DATA + 8, 8, sector).unwrap();
        mem.write_bytes(DATA + 0x1000, out).unwrap();
        let hdr = Buf { addr: DATA, len: 16 };
        let mut readable = vec![hdr];
        if !out.is_empty() {
            readable.push(Buf { addr: DATA + 0x1000, len: out.len() as u32 });
        }
        let mut writable = Vec::new();
        if in_len > 0 {
            writable.push(Buf { addr: DATA + 0x4000, len: in_len });
        }
        writable.push(Buf { addr: DATA + 0x200, len: 1 });
        blk.handle(mem, &Chain { head: 0, readable, writable }).expect("completed");
        mem.load(DATA + 0x200, 1).unwrap() as u8
    }

    /// Reads, writes, zeroes and flushes reach a non-file backend; its
    /// errors complete the request with IOERR and the next succeeds.
    #[test]
    fn a_backend_serves_requests_and_its_errors_are_io_errors() {
        let data = Arc::new(Mutex::new((0..8192u32).map(|i| (i % 253) as u8).collect::<Vec<u8>>()));
        let fail = Arc::new(Mutex::new(false));
        let flushes = Arc::new(Mutex::new(0));
        let disk = MemDisk { data: data.clone(), fail: fail.clone(), flushes: flushes.clone() };
        let mut blk = Block::from_backend(Box::new(disk), "streamed disk test", false, None).unwrap();
        assert_eq!(blk.capacity_sectors(), 16);
        let mem = GuestRam::new(RAM, 0x10_0000).unwrap();
        assert_eq!(request(&mut blk, &mem, req::IN, 2, &[], 1024), S_OK);
        let mut got = vec![0; 1024];
        mem.read_bytes(DATA + 0x4000, &mut got).unwrap();
        assert_eq!(got, data.lock().unwrap()[1024..2048]);
        assert_eq!(request(&mut blk, &mem, req::OUT, 4, &[0x77; 512], 0), S_OK);
        assert_eq!(data.lock().unwrap()[2048..2560], [0x77; 512]);
        let seg = [5u64.to_le_bytes().as_slice(), &1u32.to_le_bytes(), &0u32.to_le_bytes()].concat();
        assert_eq!(request(&mut blk, &mem, req::WRITE_ZEROES, 0, &seg, 0), S_OK);
        assert!(data.lock().unwrap()[2560..3072].iter().all(|&b| b == 0));
        assert_eq!(request(&mut blk, &mem, req::FLUSH, 0, &[], 0), S_OK);
        assert_eq!(*flushes.lock().unwrap(), 1);
        *fail.lock().unwrap() = true;
        assert_eq!(request(&mut blk, &mem, req::IN, 0, &[], 512), S_IOERR);
        assert!(blk.host_errors()[0].starts_with("1 read failed: server gone"), "{:?}", blk.host_errors());
        *fail.lock().unwrap() = false;
        assert_eq!(request(&mut blk, &mem, req::IN, 0, &[], 512), S_OK);
        let odd = MemDisk { data: Arc::new(Mutex::new(vec![0; 700])), fail, flushes };
        assert!(Block::from_backend(Box::new(odd), "x", true, None).is_err());
    }
}

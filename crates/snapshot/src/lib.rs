//! The snapshot file format: a header, tagged sections, sparse compressed
//! RAM and a SHA-256 trailer. This crate knows nothing of the emulator: the
//! platform decides what goes into which section (docs/snapshot.md); the
//! state types live beside what they describe (`strata-hart`,
//! `strata-devices`) and are serde structs this crate encodes.
//!
//! ## Layout (version 1; all integers little-endian)
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `STRATASN` |
//! | 4 | format version ([`VERSION`]) |
//! | 4 | flags, 0 (a reader refuses others) |
//! | … | sections: a 4-byte tag, an 8-byte payload length, the payload |
//! | 4 + 8 + 32 | the `END\0` section: SHA-256 of every byte before its payload |
//!
//! Nothing may follow the `END\0` section. Sections a platform writes:
//! [`tag::CONFIG`] and [`tag::STATE`] (postcard-encoded serde structs,
//! [`encode`]/[`decode`]), any number of [`tag::RAM`] records, and
//! [`tag::META`].
//!
//! A RAM record covers at most [`RECORD_PAGES`] consecutive 4 KiB pages:
//! `first page (u64) | pages (u32) | a bitmap of the pages that are not all
//! zero (one bit each, LSB first) | zstd frame of those pages, in order`.
//! Zero pages cost a bit; the rest is compressed one record at a time.
//!
//! ## Why this shape
//!
//! - **Streamable.** Every section is length-prefixed and self-contained,
//!   and the checksum is a running SHA-256 over the bytes as they were
//!   written, so the same records can later go over a socket page run by
//!   page run (live migration, issue 15's second slice) and be checked as
//!   they arrive; nothing needs a seek or a length known in advance.
//! - **Hand-written framing, serde inside.** The framing is a few dozen
//!   lines and must refuse hostile bytes with exact reasons (wrong magic,
//!   another version, a section running past the end: truncated, a bad
//!   hash: corrupted), which a generic encoder cannot say. The state
//!   structs inside are many and change with the emulator: serde derive
//!   with postcard (varints, no schema) keeps them short and in one place,
//!   and postcard refuses bad input with an error, never a panic or an
//!   unbounded allocation.
//! - **Versioned as a whole.** Any change to a state struct changes the
//!   meaning of the bytes, so [`VERSION`] goes up with it and older or newer
//!   files are refused rather than misread.
//!
//! Invariants: [`Snapshot::parse`] accepts only a file whose every byte is
//! covered by the checksum; it never panics and never allocates more than
//! the input's size (plus [`RECORD_PAGES`] pages while decoding a record).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The first 8 bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"STRATASN";
/// The format version this build writes and reads: 2 since the harts'
/// CSRs gained Sstc's `stimecmp`, `vstimecmp` and their levels (a version-1
/// file's hart state would decode shifted, so it is refused instead).
pub const VERSION: u32 = 2;
/// Bytes of a RAM page.
pub const PAGE: usize = 4096;
/// Pages in one RAM record (1 MiB).
pub const RECORD_PAGES: usize = 256;
/// zstd level for RAM: 1 favours save time; guest RAM compresses well even so.
const ZSTD_LEVEL: i32 = 1;

const HEADER: usize = 16;
const SECTION_HEAD: usize = 12;
const HASH: usize = 32;

/// Section tags.
pub mod tag {
    /// What machine this is (sizes, devices, disk images): restore builds it.
    pub const CONFIG: [u8; 4] = *b"CONF";
    /// Harts, devices, guest time.
    pub const STATE: [u8; 4] = *b"STAT";
    /// One run of RAM pages.
    pub const RAM: [u8; 4] = *b"RAM\0";
    /// Free-form facts about the snapshot for tests and tools (e.g. the
    /// console byte offset at the snapshot point).
    pub const META: [u8; 4] = *b"META";
    /// The checksum; always last.
    pub const END: [u8; 4] = *b"END\0";
}

/// Why a snapshot cannot be written or read. The `Display` is the reason
/// alone; the platform names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a Strata snapshot (no STRATASN magic)")]
    Magic,
    #[error("snapshot format version {found}, but this Strata reads only version {VERSION}")]
    Version { found: u32 },
    #[error("the snapshot is truncated: it ends in the middle of a section")]
    Truncated,
    #[error("the snapshot is corrupted: its SHA-256 checksum does not match its contents")]
    Checksum,
    #[error("the snapshot is malformed: {0}")]
    Malformed(String),
    #[error("the snapshot has no {0} section")]
    Missing(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn tag_name(t: [u8; 4]) -> String {
    String::from_utf8_lossy(&t).trim_end_matches('\0').to_string()
}

/// Encodes a state struct for a section.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail (no I/O, no maps
    // with non-string keys in postcard's model).
    postcard::to_stdvec(v).unwrap_or_default()
}

/// Decodes a section's state struct; every byte must be used.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, SnapshotError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(SnapshotError::Malformed(format!("{what}: {} bytes left over", rest.len()))),
        Err(e) => Err(SnapshotError::Malformed(format!("{what}: {e}"))),
    }
}

/// What a RAM record holds (for `--stats`-like reports and the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RamStats {
    pub pages: u64,
    pub zero_pages: u64,
    /// Compressed bytes of the pages that were stored.
    pub compressed: u64,
}

/// Writes a snapshot to `W`, hashing as it goes.
pub struct Writer<W: Write> {
    out: W,
    hash: Sha256,
    written: u64,
    comp: zstd::bulk::Compressor<'static>,
    pub ram: RamStats,
}

impl<W: Write> Writer<W> {
    /// Starts a snapshot: writes the header.
    pub fn new(out: W) -> Result<Self, SnapshotError> {
        let mut w = Writer {
            out,
            hash: Sha256::new(),
            written: 0,
            comp: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            ram: RamStats::default(),
        };
        let mut h = [0u8; HEADER];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        w.put(&h)?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<(), SnapshotError> {
        self.hash.update(b);
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Appends one section.
    pub fn section(&mut self, tag: [u8; 4], payload: &[u8]) -> Result<(), SnapshotError> {
        let mut h = [0u8; SECTION_HEAD];
        h[..4].copy_from_slice(&tag);
        h[4..].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        self.put(&h)?;
        self.put(payload)
    }

    /// Appends RAM records for `data` (whole pages), whose first page is
    /// page number `first_page` of guest RAM.
    pub fn ram(&mut self, first_page: u64, data: &[u8]) -> Result<(), SnapshotError> {
        debug_assert_eq!(data.len() % PAGE, 0);
        for (i, chunk) in data.chunks(RECORD_PAGES * PAGE).enumerate() {
            let first = first_page + (i * RECORD_PAGES) as u64;
            let pages = chunk.len() / PAGE;
            let mut bitmap = vec![0u8; pages.div_ceil(8)];
            let mut nonzero = Vec::new();
            for (p, page) in chunk.chunks_exact(PAGE).enumerate() {
                if page.iter().any(|&b| b != 0) {
                    bitmap[p / 8] |= 1 << (p % 8);
                    nonzero.extend_from_slice(page);
                }
            }
            self.ram.pages += pages as u64;
            self.ram.zero_pages += (pages - nonzero.len() / PAGE) as u64;
            if nonzero.is_empty() {
                // Only zero pages: nothing to store (a restored RAM starts zeroed).
                continue;
            }
            let packed = self.comp.compress(&nonzero)?;
            self.ram.compressed += packed.len() as u64;
            let mut rec = Vec::with_capacity(12 + bitmap.len() + packed.len());
            rec.extend_from_slice(&first.to_le_bytes());
            rec.extend_from_slice(&(pages as u32).to_le_bytes());
            rec.extend_from_slice(&bitmap);
            rec.extend_from_slice(&packed);
            self.section(tag::RAM, &rec)?;
        }
        Ok(())
    }

    /// Ends the snapshot with its checksum; gives back the output and the
    /// file's size.
    pub fn finish(mut self) -> Result<(W, u64), SnapshotError> {
        let mut h = [0u8; SECTION_HEAD];
        h[..4].copy_from_slice(&tag::END);
        h[4..].copy_from_slice(&(HASH as u64).to_le_bytes());
        self.put(&h)?;
        let digest = self.hash.clone().finalize();
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok((self.out, self.written + HASH as u64))
    }
}

/// Writes a snapshot to `path` atomically: into a temporary file beside it,
/// synced, then renamed over `path`, so a reader (or a crash) sees the old
/// file or the whole new one, never half of one. `fill` adds the sections.
/// Gives the file's size and the RAM statistics.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut Writer<BufWriter<File>>) -> Result<(), SnapshotError>,
) -> Result<(u64, RamStats), SnapshotError> {
    let tmp = temp_path(path);
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut w = Writer::new(BufWriter::with_capacity(1 << 20, f))?;
        fill(&mut w)?;
        let ram = w.ram;
        let (out, size) = w.finish()?;
        let f = out.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself survives a crash once the directory is synced.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok((size, ram))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// A snapshot read and checked: its sections, in file order (without END).
#[derive(Debug)]
pub struct Snapshot<'a> {
    pub version: u32,
    pub sections: Vec<([u8; 4], &'a [u8])>,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl<'a> Snapshot<'a> {
    /// Checks and splits a whole snapshot file: the magic, the version, the
    /// sections' framing (one running past the end: truncated), then the
    /// checksum over everything.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        if bytes.len() < 8 || bytes[..8] != MAGIC {
            return Err(SnapshotError::Magic);
        }
        if bytes.len() < HEADER {
            return Err(SnapshotError::Truncated);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(SnapshotError::Version { found: version });
        }
        let mut sections = Vec::new();
        let mut at = HEADER;
        loop {
            if bytes.len() - at < SECTION_HEAD {
                return Err(SnapshotError::Truncated);
            }
            let mut t = [0u8; 4];
            t.copy_from_slice(&bytes[at..at + 4]);
            let len = le_u64(&bytes[at + 4..]);
            let body = at + SECTION_HEAD;
            if len > (bytes.len() - body) as u64 {
                return Err(SnapshotError::Truncated);
            }
            let end = body + len as usize;
            if t == tag::END {
                if len != HASH as u64 {
                    return Err(SnapshotError::Checksum);
                }
                if end != bytes.len() {
                    return Err(SnapshotError::Malformed(format!("{} bytes after the end", bytes.len() - end)));
                }
                if Sha256::digest(&bytes[..body])[..] != bytes[body..end] {
                    return Err(SnapshotError::Checksum);
                }
                break;
            }
            sections.push((t, &bytes[body..end]));
            at = end;
        }
        // Only now are the header's other bytes known to be what was written.
        if bytes[12..16] != [0; 4] {
            return Err(SnapshotError::Malformed("unknown flags".into()));
        }
        Ok(Snapshot { version, sections })
    }

    /// The one section tagged `t`.
    pub fn section(&self, t: [u8; 4], name: &'static str) -> Result<&'a [u8], SnapshotError> {
        let mut it = self.sections.iter().filter(|(tag, _)| *tag == t);
        match (it.next(), it.next()) {
            (Some((_, b)), None) => Ok(b),
            (None, _) => Err(SnapshotError::Missing(name)),
            (Some(_), Some(_)) => Err(SnapshotError::Malformed(format!("two {} sections", tag_name(t)))),
        }
    }

    /// Decodes every RAM record, giving each stored (not all-zero) page to
    /// `page(page number, its 4096 bytes)`. Pages must lie below `pages`.
    pub fn ram(&self, pages: u64, mut page: impl FnMut(u64, &[u8])) -> Result<(), SnapshotError> {
        let mut de = zstd::bulk::Decompressor::new()?;
        let mut buf = Vec::new();
        for (_, rec) in self.sections.iter().filter(|(t, _)| *t == tag::RAM) {
            let bad = |why: &str| SnapshotError::Malformed(format!("RAM record: {why}"));
            if rec.len() < 12 {
                return Err(bad("too short"));
            }
            let first = le_u64(rec);
            let n = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]) as usize;
            if n == 0 || n > RECORD_PAGES {
                return Err(bad("page count"));
            }
            if first.checked_add(n as u64).is_none_or(|e| e > pages) {
                return Err(bad("pages outside RAM"));
            }
            let bm_len = n.div_ceil(8);
            let Some(bitmap) = rec.get(12..12 + bm_len) else { return Err(bad("too short")) };
            let stored: usize = (0..n).filter(|p| bitmap[p / 8] >> (p % 8) & 1 != 0).count();
            buf.clear();
            buf.resize(stored * PAGE, 0);
            let got = de.decompress_to_buffer(&rec[12 + bm_len..], &mut buf[..]).map_err(|e| bad(&e.to_string()))?;
            if got != stored * PAGE {
                return Err(bad("pages missing from the compressed data"));
            }
            let mut data = buf.chunks_exact(PAGE);
            for p in (0..n).filter(|p| bitmap[p / 8] >> (p % 8) & 1 != 0) {
                page(first + p as u64, data.next().unwrap_or(&[]));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

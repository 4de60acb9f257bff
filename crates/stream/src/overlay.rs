//! The copy-on-write overlay: guest writes, block by block, in a sparse
//! file the size of the image, and a map of which blocks it holds.
//!
//! The map file: magic `STRATAOV` (8 bytes), the generation of the table
//! the overlay was made on (u64 LE), that table's SHA-256 (32 bytes), the
//! block count (u64 LE), then one bit per block (bit i%8 of byte i/8: the
//! overlay holds block i). The map is rewritten (to a new file, then
//! renamed) when the guest flushes and when the drive closes, after the
//! overlay's data is on stable storage, so a map never names data that
//! could be lost.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::format::{sha256, Hash};
use crate::StreamError;

const MAGIC: &[u8; 8] = b"STRATAOV";
const HEADER: usize = 8 + 8 + 32 + 8;

pub(crate) struct Overlay {
    pub(crate) path: PathBuf,
    file: File,
    map: Vec<u8>,
    blocks: u64,
    generation: u64,
    table_hash: Hash,
    dirty: bool,
}

pub(crate) fn map_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.map", path.display()))
}

impl Overlay {
    /// Opens (or creates) the overlay at `path` for the table `table`
    /// (its stored bytes) of `generation` with `blocks` blocks of
    /// `image_size` bytes in all. An overlay made on another table is
    /// refused.
    pub(crate) fn open(
        path: &Path,
        table: &[u8],
        generation: u64,
        blocks: u64,
        image_size: u64,
        create: bool,
    ) -> Result<Overlay, StreamError> {
        let table_hash = sha256(table);
        let mp = map_path(path);
        let map = match std::fs::read(&mp) {
            Ok(bytes) => {
                let bad = |what: &str| StreamError::Io {
                    path: mp.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string()),
                };
                if bytes.len() < HEADER || &bytes[..8] != MAGIC {
                    return Err(bad("not an overlay map"));
                }
                let had = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                if bytes[16..48] != table_hash {
                    return Err(StreamError::OverlayVersion { path: path.to_path_buf(), had, now: generation });
                }
                let n = u64::from_le_bytes(bytes[48..56].try_into().unwrap());
                if n != blocks || bytes.len() as u64 != HEADER as u64 + blocks.div_ceil(8) {
                    return Err(bad("the map's length does not match the disk"));
                }
                bytes[HEADER..].to_vec()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => vec![0; blocks.div_ceil(8) as usize],
            Err(e) => return Err(StreamError::Io { path: mp, source: e }),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(StreamError::io(path))?;
        if create {
            file.set_len(image_size).map_err(StreamError::io(path))?;
        }
        Ok(Overlay { path: path.to_path_buf(), file, map, blocks, generation, table_hash, dirty: false })
    }

    pub(crate) fn has(&self, i: u64) -> bool {
        i < self.blocks && self.map[(i / 8) as usize] & (1 << (i % 8)) != 0
    }

    pub(crate) fn set(&mut self, i: u64) {
        self.map[(i / 8) as usize] |= 1 << (i % 8);
        self.dirty = true;
    }

    pub(crate) fn read(&self, buf: &mut [u8], pos: u64) -> Result<(), StreamError> {
        self.file.read_exact_at(buf, pos).map_err(StreamError::io(&self.path))
    }

    pub(crate) fn write(&self, buf: &[u8], pos: u64) -> Result<(), StreamError> {
        self.file.write_all_at(buf, pos).map_err(StreamError::io(&self.path))
    }

    /// Data first, then the map that names it.
    pub(crate) fn flush(&mut self) -> Result<(), StreamError> {
        self.file.sync_data().map_err(StreamError::io(&self.path))?;
        if !self.dirty {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(HEADER + self.map.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.generation.to_le_bytes());
        bytes.extend_from_slice(&self.table_hash);
        bytes.extend_from_slice(&self.blocks.to_le_bytes());
        bytes.extend_from_slice(&self.map);
        crate::pack::write_atomically(&map_path(&self.path), &bytes)?;
        self.dirty = false;
        Ok(())
    }
}

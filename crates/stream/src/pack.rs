//! Packing an image into a directory, signing a table, and committing an
//! overlay as a new version.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::format::{block_hex, sha256, Hash, Table, BLOCK_SIZE, ZERO_HASH};
use crate::overlay::Overlay;
use crate::StreamError;

/// zstd level for stored blocks: packing is done once and every fetch
/// profits, but level 19 packs a 1 GiB image ten times slower than 9 for
/// a few per cent less data.
const ZSTD_LEVEL: i32 = 9;

/// What a pack or commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackReport {
    pub generation: u64,
    pub blocks: u64,
    /// Blocks of zeros (not stored).
    pub zero_blocks: u64,
    /// Distinct non-zero blocks in this version.
    pub distinct: u64,
    /// Block files this pack added (the rest were already in DIR).
    pub new_blocks: u64,
    /// Compressed bytes of the added block files.
    pub new_bytes: u64,
    pub signed: bool,
    pub table: PathBuf,
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`,
/// so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StreamError> {
    // Unique per writer: a guest read and the prefetcher may store the
    // same block at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = PathBuf::from(format!("{}.tmp{}.{n}", path.display(), std::process::id()));
    let mut f = File::create(&tmp).map_err(StreamError::io(&tmp))?;
    f.write_all(bytes).and_then(|_| f.sync_data()).map_err(StreamError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(StreamError::io(path))
}

/// Where block `hash` lives under a packed directory or a cache.
pub(crate) fn block_path(dir: &Path, hash: &Hash) -> PathBuf {
    let h = block_hex(hash);
    dir.join("blocks").join(&h[..2]).join(h)
}

/// Packs blocks read by `read(i, buf)` (buf is block i's length) into
/// `dir` as the next generation.
fn pack_blocks(
    dir: &Path,
    image_size: u64,
    key: Option<&SigningKey>,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), StreamError>,
) -> Result<PackReport, StreamError> {
    let table_path = dir.join("table");
    let generation = match std::fs::read(&table_path) {
        Ok(b) => Table::decode_unverified(&b, &table_path.display().to_string())?.generation + 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
        Err(e) => return Err(StreamError::Io { path: table_path, source: e }),
    };
    let n = image_size.div_ceil(BLOCK_SIZE as u64);
    let mut t = Table { block_size: BLOCK_SIZE, image_size, generation, hashes: Vec::with_capacity(n as usize) };
    let mut r = PackReport { generation, blocks: n, ..PackReport::default() };
    let mut seen = std::collections::HashSet::new();
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for i in 0..n {
        let len = (image_size - i * BLOCK_SIZE as u64).min(BLOCK_SIZE as u64) as usize;
        let b = &mut buf[..len];
        read(i, b)?;
        if b.iter().all(|&x| x == 0) {
            t.hashes.push(ZERO_HASH);
            r.zero_blocks += 1;
            continue;
        }
        let h = sha256(b);
        t.hashes.push(h);
        if !seen.insert(h) {
            continue;
        }
        let p = block_path(dir, &h);
        if p.exists() {
            continue;
        }
        let parent = p.parent().unwrap();
        std::fs::create_dir_all(parent).map_err(StreamError::io(parent))?;
        let z = zstd::bulk::compress(b, ZSTD_LEVEL).map_err(StreamError::io(&p))?;
        write_atomically(&p, &z)?;
        r.new_blocks += 1;
        r.new_bytes += z.len() as u64;
    }
    r.distinct = seen.len() as u64;
    let bytes = match key {
        Some(k) => t.encode_signed(k),
        None => t.encode_unsigned(),
    };
    r.signed = key.is_some();
    // Every version's table is kept; `table` is the newest.
    write_atomically(&dir.join(format!("table.{generation}")), &bytes)?;
    write_atomically(&table_path, &bytes)?;
    r.table = table_path;
    Ok(r)
}

/// Packs the raw image at `image` into `dir` (created if missing) as the
/// next version: only blocks not already in `dir` are added. Without a
/// key the table is left unsigned (`strata disk sign` signs it).
pub fn pack(image: &Path, dir: &Path, key: Option<&SigningKey>) -> Result<PackReport, StreamError> {
    let f = File::open(image).map_err(StreamError::io(image))?;
    let meta = f.metadata().map_err(StreamError::io(image))?;
    let len = meta.len();
    if !meta.is_file() || len == 0 || len % 512 != 0 {
        return Err(StreamError::ImageSize { path: image.to_path_buf(), len });
    }
    std::fs::create_dir_all(dir).map_err(StreamError::io(dir))?;
    pack_blocks(dir, len, key, |i, b| f.read_exact_at(b, i * BLOCK_SIZE as u64).map_err(StreamError::io(image)))
}

/// Signs the table at `path` with `key` in place.
pub fn sign_table(path: &Path, key: &SigningKey) -> Result<(), StreamError> {
    let bytes = std::fs::read(path).map_err(StreamError::io(path))?;
    let signed = Table::resign(&bytes, &path.display().to_string(), key)?;
    write_atomically(path, &signed)
}

/// Reads block `i` of the version `t` stored in `dir` (decompressed and
/// checked against its hash) into `buf`.
fn stored_block(dir: &Path, t: &Table, i: u64, buf: &mut [u8]) -> Result<(), StreamError> {
    let h = t.hashes[i as usize];
    if h == ZERO_HASH {
        buf.fill(0);
        return Ok(());
    }
    let p = block_path(dir, &h);
    let z = std::fs::read(&p).map_err(StreamError::io(&p))?;
    let bad = |what: &str| StreamError::BadBlock { index: i, origin: p.display().to_string(), what: what.into() };
    let d = zstd::bulk::decompress(&z, buf.len()).map_err(|e| bad(&e.to_string()))?;
    if d.len() != buf.len() || sha256(&d) != h {
        return Err(bad("content does not match its SHA-256"));
    }
    buf.copy_from_slice(&d);
    Ok(())
}

/// Turns the overlay at `overlay` (made on the version that is now
/// `dir`'s newest table) into the next version in `dir`: its blocks where
/// the guest wrote, the stored ones elsewhere.
pub fn commit(overlay: &Path, dir: &Path, key: Option<&SigningKey>) -> Result<PackReport, StreamError> {
    let table_path = dir.join("table");
    let bytes = std::fs::read(&table_path).map_err(StreamError::io(&table_path))?;
    let t = Table::decode_unverified(&bytes, &table_path.display().to_string())?;
    let ov = Overlay::open(overlay, &bytes, t.generation, t.blocks(), t.image_size, false)?;
    pack_blocks(dir, t.image_size, key, |i, b| {
        if ov.has(i) {
            ov.read(b, i * t.block_size as u64)
        } else {
            stored_block(dir, &t, i, b)
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tempdir(name: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("strata-stream-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An image of `blocks` blocks plus a short tail: block i is filled
    /// with `fill(i)` (0 gives a zero block).
    pub(crate) fn image(dir: &Path, name: &str, fills: &[u8], tail: usize) -> (PathBuf, Vec<u8>) {
        let mut data = Vec::new();
        for &f in fills {
            let mut b = vec![f; BLOCK_SIZE as usize];
            if f != 0 {
                b[..8].copy_from_slice(&(f as u64 * 0x9e37_79b9).to_le_bytes());
            }
            data.extend(b);
        }
        data.extend((0..tail).map(|i| (i % 251) as u8 | 1));
        let p = dir.join(name);
        std::fs::write(&p, &data).unwrap();
        (p, data)
    }

    fn block_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("blocks"))
            .map(|d| d.map(|e| std::fs::read_dir(e.unwrap().path()).unwrap().count()).sum())
            .unwrap_or(0)
    }

    #[test]
    fn pack_stores_distinct_non_zero_blocks_once() {
        let d = tempdir("pack");
        // Blocks: A, zero, A, B, zero, then a 1024-byte tail.
        let (img, data) = image(&d, "img", &[5, 0, 5, 6, 0], 1024);
        let k = SigningKey::from_bytes(&[3; 32]);
        let out = d.join("out");
        let r = pack(&img, &out, Some(&k)).unwrap();
        assert_eq!((r.generation, r.blocks, r.zero_blocks, r.distinct, r.new_blocks), (1, 6, 2, 3, 3));
        assert_eq!(block_files(&out), 3);
        let bytes = std::fs::read(out.join("table")).unwrap();
        let t = Table::decode_verified(&bytes, "t", &k.verifying_key(), "k".as_ref()).unwrap();
        assert_eq!(t.image_size, data.len() as u64);
        assert_eq!(t.hashes[1], ZERO_HASH);
        assert_eq!(t.hashes[0], t.hashes[2]);
        // Every block reads back as the image's bytes.
        let mut got = Vec::new();
        for i in 0..t.blocks() {
            let mut b = vec![0xee; t.block_len(i)];
            stored_block(&out, &t, i, &mut b).unwrap();
            got.extend(b);
        }
        assert!(got == data, "blocks read back differ from the image");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_new_version_adds_only_changed_blocks() {
        let d = tempdir("versions");
        let out = d.join("out");
        let (v1, _) = image(&d, "v1", &[1, 2, 3, 4, 5, 6, 7, 8], 0);
        let r1 = pack(&v1, &out, None).unwrap();
        assert_eq!((r1.new_blocks, r1.signed), (8, false));
        let (v2, _) = image(&d, "v2", &[1, 2, 3, 9, 5, 6, 7, 0], 512);
        let r2 = pack(&v2, &out, None).unwrap();
        // Block 3 changed, block 7 became zeros, a tail block appeared.
        assert_eq!((r2.generation, r2.new_blocks, r2.zero_blocks), (2, 2, 1));
        assert_eq!(block_files(&out), 10);
        assert!(out.join("table.1").exists() && out.join("table.2").exists());
        // Packing the same image again adds nothing.
        assert_eq!(pack(&v2, &out, None).unwrap().new_blocks, 0);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn bad_images_and_corrupt_stored_blocks_are_refused() {
        let d = tempdir("bad");
        let p = d.join("odd");
        std::fs::write(&p, [1u8; 700]).unwrap();
        assert!(pack(&p, &d.join("o"), None).unwrap_err().to_string().contains("whole number of 512-byte sectors"));
        let (img, _) = image(&d, "img", &[1, 2], 0);
        let out = d.join("out");
        pack(&img, &out, None).unwrap();
        let t = Table::decode_unverified(&std::fs::read(out.join("table")).unwrap(), "t").unwrap();
        let bp = block_path(&out, &t.hashes[1]);
        let other = zstd::bulk::compress(&vec![7u8; BLOCK_SIZE as usize], 1).unwrap();
        std::fs::write(&bp, other).unwrap();
        let mut b = vec![0; BLOCK_SIZE as usize];
        let e = stored_block(&out, &t, 1, &mut b).unwrap_err();
        assert!(e.to_string().contains("does not match its SHA-256"), "{e}");
        std::fs::remove_dir_all(d).unwrap();
    }
}

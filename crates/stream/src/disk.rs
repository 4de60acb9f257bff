//! The streamed drive: a table fetched and verified at open, blocks
//! fetched on first read, verified, cached, and a copy-on-write overlay
//! for the guest's writes; a boot profile recorded as the guest reads and,
//! given one, replayed as read-ahead ([`crate::profile`]).
//!
//! Where a guest read finds a block, in order:
//!
//! | where | cost | counter |
//! | --- | --- | --- |
//! | the overlay | a file read | — |
//! | a zero block of the table | nothing | — |
//! | the last [`HOT_BLOCKS`] verified blocks, in memory | a copy | `memory_hits` |
//! | the cache directory | a file read and a SHA-256 of the block | `cache_hits` |
//! | in flight on the prefetcher | a wait, then the cache | `cache_hits` |
//! | the server | HTTP, zstd, SHA-256, a cache write | `blocks_fetched` |
//!
//! The memory tier holds only blocks this process verified, so it needs no
//! second check; the cache directory is outside the process and is checked
//! on every read (docs/stream.md, "Trust model"). Without the memory tier a
//! sequential read of one 64 KiB block in sixteen 4 KiB requests read and
//! hashed the block sixteen times.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::format::{block_hex, sha256, Hash, Table, ZERO_HASH};
use crate::http::{Fetched, Fetcher, Want, FETCH_ATTEMPTS};
use crate::keys::read_public_key;
use crate::overlay::Overlay;
use crate::pack::{block_path, write_atomically};
use crate::profile::{self, InFlight, Prefetcher, MAX_PROFILE};
use crate::StreamError;

/// Verified blocks kept in memory (4 MiB of 64 KiB blocks): more than
/// Linux's read-ahead window, so a sequential read touches each block's
/// file once.
pub const HOT_BLOCKS: usize = 64;

/// How a streamed drive is opened (`--drive url=…,cache=…,pubkey=…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOptions {
    /// `http://HOST[:PORT]/PATH/table`.
    pub url: String,
    /// The local cache directory (created if missing).
    pub cache: PathBuf,
    /// The Ed25519 public key the table must be signed with.
    pub pubkey: PathBuf,
    /// The copy-on-write overlay (default `CACHE/overlay`); unused when
    /// read-only.
    pub overlay: Option<PathBuf>,
    pub readonly: bool,
    /// Each connection and request gives up after this long.
    pub timeout: Duration,
    /// A boot profile to read ahead from: `http://…` or a local path
    /// (docs/stream.md, "Boot profiles").
    pub profile: Option<String>,
}

/// What the drive did, for `--stats` and the counter file `CACHE/stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub table_bytes: u64,
    /// Blocks fetched and verified.
    pub blocks_fetched: u64,
    /// Compressed bytes received for blocks (failed attempts too).
    pub bytes_fetched: u64,
    /// Blocks served from the cache.
    pub cache_hits: u64,
    /// Fetched or cached blocks whose content did not match the table.
    pub hash_mismatches: u64,
    pub retries: u64,
    /// Blocks that could not be had: the guest read failed.
    pub failed_blocks: u64,
    /// Blocks copied into the overlay.
    pub overlay_blocks: u64,
    /// Reads served from the verified blocks in memory.
    pub memory_hits: u64,
    /// Blocks the read-ahead of a boot profile fetched, verified and
    /// cached; compressed bytes it received; blocks it could not have.
    pub prefetched_blocks: u64,
    pub prefetch_bytes: u64,
    pub prefetch_failed: u64,
}

impl Counters {
    /// `name value` lines.
    pub fn lines(&self) -> String {
        format!(
            "table_bytes {}\nblocks_fetched {}\nbytes_fetched {}\ncache_hits {}\nhash_mismatches {}\nretries {}\nfailed_blocks {}\noverlay_blocks {}\nmemory_hits {}\nprefetched_blocks {}\nprefetch_bytes {}\nprefetch_failed {}\n",
            self.table_bytes,
            self.blocks_fetched,
            self.bytes_fetched,
            self.cache_hits,
            self.hash_mismatches,
            self.retries,
            self.failed_blocks,
            self.overlay_blocks,
            self.memory_hits,
            self.prefetched_blocks,
            self.prefetch_bytes,
            self.prefetch_failed
        )
    }
}

pub struct StreamDisk {
    table: Table,
    fetcher: Fetcher,
    cache: PathBuf,
    overlay: Option<Overlay>,
    counters: Counters,
    /// `CACHE/fetched`: one line per block fetched in this run
    /// (`index hash`), for tests.
    log: Option<std::fs::File>,
    /// `CACHE/profile`: one line per base block the guest read, the first
    /// time (`index hash`): this run's boot profile.
    profile_out: Option<std::fs::File>,
    /// Bit i: block i is in `CACHE/profile` already.
    read_once: Vec<u64>,
    /// The last [`HOT_BLOCKS`] verified blocks, newest at the back.
    hot: VecDeque<(Hash, Arc<[u8]>)>,
    inflight: Arc<InFlight>,
    prefetch: Option<Prefetcher>,
    /// The longest a read waits for a block the prefetcher is fetching.
    wait_limit: Duration,
}

impl StreamDisk {
    /// Fetches the table and checks its signature; a table that is not
    /// signed by `pubkey` is refused here, before the guest starts.
    pub fn open(o: &StreamOptions) -> Result<StreamDisk, StreamError> {
        let key = read_public_key(&o.pubkey)?;
        let fetcher = Fetcher::new(&o.url, o.timeout)?;
        let bytes = fetcher.table()?;
        let table = Table::decode_verified(&bytes, &o.url, &key, &o.pubkey)?;
        std::fs::create_dir_all(o.cache.join("blocks")).map_err(StreamError::io(&o.cache))?;
        // The verified table, for `strata disk commit` and for inspection.
        write_atomically(&o.cache.join("table"), &bytes)?;
        let overlay = if o.readonly {
            None
        } else {
            let p = o.overlay.clone().unwrap_or_else(|| o.cache.join("overlay"));
            Some(Overlay::open(&p, &bytes, table.generation, table.blocks(), table.image_size, true)?)
        };
        // Read the profile to replay before this run's replaces it (they
        // may be one file).
        let order = match &o.profile {
            Some(src) => Some(read_profile(&fetcher, src, &table)?),
            None => None,
        };
        let log_path = o.cache.join("fetched");
        let log = std::fs::File::create(&log_path).map_err(StreamError::io(&log_path))?;
        let profile_path = o.cache.join("profile");
        let profile_out = std::fs::File::create(&profile_path).map_err(StreamError::io(&profile_path))?;
        let counters = Counters { table_bytes: bytes.len() as u64, ..Counters::default() };
        let inflight = Arc::new(InFlight::default());
        let prefetch = order.map(|order| {
            let (c1, c2) = (o.cache.clone(), o.cache.clone());
            Prefetcher::start(
                fetcher.clone(),
                order,
                inflight.clone(),
                move |h| block_path(&c1, h).exists(),
                move |w, d| store(&c2, &w.hash, d),
            )
        });
        let d = StreamDisk {
            read_once: vec![0; table.blocks().div_ceil(64) as usize],
            table,
            fetcher,
            cache: o.cache.clone(),
            overlay,
            counters,
            log: Some(log),
            profile_out: Some(profile_out),
            hot: VecDeque::with_capacity(HOT_BLOCKS),
            inflight,
            prefetch,
            wait_limit: o.timeout * FETCH_ATTEMPTS + Duration::from_secs(1),
        };
        d.write_counters();
        Ok(d)
    }

    /// The image size in bytes.
    pub fn len(&self) -> u64 {
        self.table.image_size
    }

    pub fn is_empty(&self) -> bool {
        self.table.image_size == 0
    }

    pub fn generation(&self) -> u64 {
        self.table.generation
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        if let Some(p) = &self.prefetch {
            c.prefetched_blocks = p.counters.blocks.load(Ordering::Relaxed);
            c.prefetch_bytes = p.counters.bytes.load(Ordering::Relaxed);
            c.prefetch_failed = p.counters.failed.load(Ordering::Relaxed);
        }
        c
    }

    /// Rewrites `CACHE/stats`; a failure to do so is not the guest's
    /// business and is ignored.
    fn write_counters(&self) {
        let _ = std::fs::write(self.cache.join("stats"), self.counters().lines());
    }

    /// A cached block, if present and still matching its hash (a cached
    /// file that does not is removed and counted).
    fn cached(&mut self, h: &Hash, len: usize) -> Option<Vec<u8>> {
        let p = block_path(&self.cache, h);
        let d = std::fs::read(&p).ok()?;
        if d.len() == len && sha256(&d) == *h {
            return Some(d);
        }
        self.counters.hash_mismatches += 1;
        let _ = std::fs::remove_file(&p);
        None
    }

    /// A verified block from memory, moved to the newest place.
    fn hot(&mut self, h: &Hash) -> Option<Arc<[u8]>> {
        let k = self.hot.iter().rposition(|(hh, _)| hh == h)?;
        let e = self.hot.remove(k)?;
        let d = e.1.clone();
        self.hot.push_back(e);
        Some(d)
    }

    /// Keeps a verified block in memory, dropping the oldest.
    fn keep(&mut self, h: Hash, d: Arc<[u8]>) {
        if self.hot.len() == HOT_BLOCKS {
            self.hot.pop_front();
        }
        self.hot.push_back((h, d));
    }

    /// Adds block `i` to this run's boot profile the first time it is read.
    fn note_read(&mut self, i: u64, h: &Hash) {
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.read_once[w] & b == 0 {
            self.read_once[w] |= b;
            if let Some(f) = &mut self.profile_out {
                let _ = writeln!(f, "{i} {}", block_hex(h));
            }
        }
    }

    /// Counts one fetch's outcome; a verified block is cached, logged and
    /// kept in memory.
    fn take(&mut self, w: &Want, f: Fetched) -> Result<Arc<[u8]>, StreamError> {
        self.counters.bytes_fetched += f.wire_bytes;
        self.counters.hash_mismatches += f.mismatches as u64;
        self.counters.retries += f.retries as u64;
        match f.data {
            Ok(d) => {
                self.counters.blocks_fetched += 1;
                store(&self.cache, &w.hash, &d);
                if let Some(log) = &mut self.log {
                    let _ = writeln!(log, "{} {}", w.index, block_hex(&w.hash));
                }
                let d: Arc<[u8]> = d.into();
                self.keep(w.hash, d.clone());
                Ok(d)
            }
            Err(e) => {
                self.counters.failed_blocks += 1;
                Err(e)
            }
        }
    }

    /// Verified contents of base blocks `first..=last` (not the overlay's):
    /// from memory or the cache where present, the missing ones fetched
    /// side by side (or waited for, if the prefetcher has them in flight)
    /// and cached. `None` for a zero block.
    fn base_blocks(&mut self, first: u64, last: u64) -> Result<Vec<Option<Arc<[u8]>>>, StreamError> {
        let mut out = Vec::new();
        let mut wants = Vec::new();
        for i in first..=last {
            let h = self.table.hashes[i as usize];
            let len = self.table.block_len(i);
            if h == ZERO_HASH || self.overlay.as_ref().is_some_and(|o| o.has(i)) {
                out.push(None);
                continue;
            }
            self.note_read(i, &h);
            if let Some(d) = self.hot(&h) {
                self.counters.memory_hits += 1;
                out.push(Some(d));
            } else if let Some(d) = self.cached(&h, len) {
                self.counters.cache_hits += 1;
                let d: Arc<[u8]> = d.into();
                self.keep(h, d.clone());
                out.push(Some(d));
            } else {
                if !wants.iter().any(|w: &Want| w.hash == h) {
                    wants.push(Want { index: i, hash: h, len });
                }
                out.push(None);
            }
        }
        if wants.is_empty() {
            return Ok(out);
        }
        let (mine, theirs) = self.inflight.claim(wants);
        let fetched = self.fetcher.blocks(&mine);
        let mut first_err = None;
        let mut got: Vec<(Hash, Arc<[u8]>)> = Vec::new();
        for (w, f) in mine.iter().zip(fetched) {
            match self.take(w, f) {
                Ok(d) => got.push((w.hash, d)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.inflight.release(mine.iter().map(|w| w.hash));
        if !theirs.is_empty() {
            let hashes: Vec<Hash> = theirs.iter().map(|w| w.hash).collect();
            self.inflight.wait(&hashes, self.wait_limit);
            for w in &theirs {
                let d = match self.cached(&w.hash, w.len) {
                    Some(d) => {
                        self.counters.cache_hits += 1;
                        let d: Arc<[u8]> = d.into();
                        self.keep(w.hash, d.clone());
                        Ok(d)
                    }
                    // The prefetch failed (or took too long): fetch it here.
                    None => {
                        let f = self.fetcher.block(*w);
                        self.take(w, f)
                    }
                };
                match d {
                    Ok(d) => got.push((w.hash, d)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        self.write_counters();
        if let Some(e) = first_err {
            return Err(e);
        }
        for (k, i) in (first..=last).enumerate() {
            let h = self.table.hashes[i as usize];
            if out[k].is_none() && h != ZERO_HASH && !self.overlay.as_ref().is_some_and(|o| o.has(i)) {
                out[k] = got.iter().find(|(gh, _)| *gh == h).map(|(_, d)| d.clone());
            }
        }
        Ok(out)
    }

    /// Reads `buf.len()` bytes at `pos`. Every byte handed back comes from
    /// the overlay or from a block whose hash matched.
    pub fn read_at(&mut self, buf: &mut [u8], pos: u64) -> Result<(), StreamError> {
        if buf.is_empty() {
            return Ok(());
        }
        let bs = self.table.block_size as u64;
        let end = pos.checked_add(buf.len() as u64).filter(|&e| e <= self.table.image_size).ok_or_else(|| {
            StreamError::Io { path: self.cache.clone(), source: std::io::ErrorKind::UnexpectedEof.into() }
        })?;
        let (first, last) = (pos / bs, (end - 1) / bs);
        // Base blocks only for what the overlay does not hold.
        let need: Vec<u64> = (first..=last).filter(|&i| !self.overlay.as_ref().is_some_and(|o| o.has(i))).collect();
        let base = match (need.first(), need.last()) {
            (Some(&a), Some(&b)) => self.base_blocks(a, b)?,
            _ => Vec::new(),
        };
        let base_first = need.first().copied().unwrap_or(0);
        for i in first..=last {
            let bstart = i * bs;
            let from = pos.max(bstart);
            let to = end.min(bstart + self.table.block_len(i) as u64);
            let dst = &mut buf[(from - pos) as usize..(to - pos) as usize];
            match &self.overlay {
                Some(o) if o.has(i) => o.read(dst, from)?,
                _ => match &base[(i - base_first) as usize] {
                    Some(d) => dst.copy_from_slice(&d[(from - bstart) as usize..(to - bstart) as usize]),
                    None => dst.fill(0),
                },
            }
        }
        Ok(())
    }

    /// Writes into the overlay, copying each block it does not hold yet
    /// (unless the write covers all of it).
    pub fn write_at(&mut self, buf: &[u8], pos: u64) -> Result<(), StreamError> {
        if self.overlay.is_none() {
            return Err(StreamError::Io {
                path: self.cache.clone(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "read-only streamed drive"),
            });
        }
        if buf.is_empty() {
            return Ok(());
        }
        let bs = self.table.block_size as u64;
        let end = pos.checked_add(buf.len() as u64).filter(|&e| e <= self.table.image_size).ok_or_else(|| {
            StreamError::Io { path: self.cache.clone(), source: std::io::ErrorKind::UnexpectedEof.into() }
        })?;
        for i in pos / bs..=(end - 1) / bs {
            let bstart = i * bs;
            let blen = self.table.block_len(i) as u64;
            let whole = pos <= bstart && end >= bstart + blen;
            if self.overlay.as_ref().unwrap().has(i) || whole {
                continue;
            }
            let base = match self.base_blocks(i, i)?.pop().flatten() {
                Some(d) => d.to_vec(),
                None => vec![0; blen as usize],
            };
            let o = self.overlay.as_mut().unwrap();
            o.write(&base, bstart)?;
            o.set(i);
            self.counters.overlay_blocks += 1;
        }
        let o = self.overlay.as_mut().unwrap();
        o.write(buf, pos)?;
        for i in pos / bs..=(end - 1) / bs {
            if !o.has(i) {
                o.set(i);
                self.counters.overlay_blocks += 1;
            }
        }
        Ok(())
    }

    /// Puts the overlay (data, then map) on stable storage.
    pub fn flush(&mut self) -> Result<(), StreamError> {
        self.write_counters();
        match &mut self.overlay {
            Some(o) => o.flush(),
            None => Ok(()),
        }
    }

    /// Where the cache is (for messages).
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }
}

/// Puts a verified block in the cache directory. A cache that cannot be
/// written only costs a refetch.
fn store(cache: &Path, h: &Hash, d: &[u8]) {
    let p = block_path(cache, h);
    if let Some(parent) = p.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = write_atomically(&p, d);
}

/// The blocks of the profile at `src` (a URL or a local path) that `table`
/// names, in the profile's order, as wants.
fn read_profile(fetcher: &Fetcher, src: &str, table: &Table) -> Result<Vec<Want>, StreamError> {
    let bytes = if src.starts_with("http://") {
        fetcher.file(src, MAX_PROFILE)?
    } else {
        let io = StreamError::io(src);
        let f = std::fs::File::open(src).map_err(StreamError::io(src))?;
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_PROFILE + 1), &mut v).map_err(io)?;
        if v.len() as u64 > MAX_PROFILE {
            return Err(StreamError::Io {
                path: src.into(),
                source: std::io::Error::other("larger than any boot profile"),
            });
        }
        v
    };
    let hashes = profile::parse(&String::from_utf8_lossy(&bytes), src, table)?;
    let mut first = std::collections::HashMap::new();
    for (i, h) in table.hashes.iter().enumerate().rev() {
        first.insert(*h, i as u64);
    }
    Ok(hashes
        .into_iter()
        .map(|h| {
            let index = first[&h];
            Want { index, hash: h, len: table.block_len(index) }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::FETCH_ATTEMPTS;
    use crate::pack::tests::{image, tempdir};
    use crate::pack::{commit, pack};
    use ed25519_dalek::SigningKey;
    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    /// A small static file server on loopback for unit tests (the
    /// end-to-end test, tests/stream, uses nginx): GET only, keep-alive,
    /// and it can be told to corrupt the next N block bodies.
    struct Server {
        port: u16,
        down: Arc<AtomicBool>,
        corrupt: Arc<AtomicU32>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Server {
        fn start(root: &Path, port: u16) -> Server {
            let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let port = l.local_addr().unwrap().port();
            let down = Arc::new(AtomicBool::new(false));
            let corrupt = Arc::new(AtomicU32::new(0));
            let (root, d, c) = (root.to_path_buf(), down.clone(), corrupt.clone());
            let thread = std::thread::spawn(move || {
                for s in l.incoming() {
                    if d.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let (root, d, c) = (root.clone(), d.clone(), c.clone());
                    std::thread::spawn(move || serve(s, &root, &d, &c));
                }
            });
            Server { port, down, corrupt, thread: Some(thread) }
        }

        fn url(&self) -> String {
            format!("http://127.0.0.1:{}/pk/table", self.port)
        }

        fn stop(&mut self) {
            self.down.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            if let Some(t) = self.thread.take() {
                t.join().unwrap();
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop();
        }
    }

    fn serve(s: TcpStream, root: &Path, down: &AtomicBool, corrupt: &AtomicU32) {
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || down.load(Ordering::SeqCst) {
                return;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                if h == "\r\n" {
                    break;
                }
            }
            let path = line.split(' ').nth(1).unwrap_or("/").trim_start_matches("/pk/");
            let reply = match std::fs::read(root.join(path)) {
                Ok(mut body) => {
                    if path.starts_with("blocks/")
                        && corrupt.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
                    {
                        // A valid zstd frame of other content.
                        body = zstd::bulk::compress(&vec![0x5a; 65536], 1).unwrap();
                    }
                    [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(), body].concat()
                }
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            };
            if w.write_all(&reply).is_err() {
                return;
            }
        }
    }

    struct Rig {
        dir: PathBuf,
        key: SigningKey,
        data: Vec<u8>,
        server: Server,
    }

    /// An image of 8 blocks (one of zeros, two equal) and a tail, packed
    /// and served.
    fn rig(name: &str) -> Rig {
        let dir = tempdir(name);
        let (img, data) = image(&dir, "img", &[1, 2, 0, 4, 5, 2, 7, 8], 4096);
        let key = SigningKey::from_bytes(&[42; 32]);
        pack(&img, &dir.join("pk"), Some(&key)).unwrap();
        std::fs::write(dir.join("key.pub"), crate::format::block_hex(key.verifying_key().as_bytes()) + "\n").unwrap();
        let server = Server::start(&dir.join("pk"), 0);
        Rig { dir, key, data, server }
    }

    impl Rig {
        fn opts(&self, cache: &str) -> StreamOptions {
            StreamOptions {
                url: self.server.url(),
                cache: self.dir.join(cache),
                pubkey: self.dir.join("key.pub"),
                overlay: None,
                readonly: false,
                timeout: Duration::from_secs(2),
                profile: None,
            }
        }
    }

    fn read_all(d: &mut StreamDisk) -> Vec<u8> {
        let mut v = vec![0xee; d.len() as usize];
        // Odd sizes and offsets that straddle block boundaries.
        let mut pos = 0usize;
        for n in [1000usize, 70000, 512, 200000].iter().cycle() {
            if pos == v.len() {
                break;
            }
            let k = (*n).min(v.len() - pos);
            d.read_at(&mut v[pos..pos + k], pos as u64).unwrap();
            pos += k;
        }
        v
    }

    #[test]
    fn reads_stream_verify_and_cache() {
        let r = rig("stream");
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        assert!(read_all(&mut d) == r.data, "streamed image differs from the original");
        let c = d.counters();
        // 8 blocks + tail: one zero block, two equal: 7 distinct fetched.
        assert_eq!((c.blocks_fetched, c.hash_mismatches, c.failed_blocks), (7, 0, 0));
        assert!(c.bytes_fetched > 0 && c.table_bytes == 40 + 9 * 32 + 64);
        let log = std::fs::read_to_string(r.dir.join("cache/fetched")).unwrap();
        assert_eq!(log.lines().count(), 7);
        drop(d);
        // A warm cache fetches nothing.
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        assert!(read_all(&mut d) == r.data);
        assert_eq!(d.counters().blocks_fetched, 0);
        assert!(d.counters().cache_hits >= 7);
    }

    #[test]
    fn a_corrupt_block_is_refused_and_fetched_again() {
        let r = rig("corrupt");
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        // One bad answer: refused, fetched again, the right bytes come back.
        r.server.corrupt.store(1, Ordering::SeqCst);
        let mut b = vec![0; 4096];
        d.read_at(&mut b, 0).unwrap();
        assert_eq!(b, r.data[..4096]);
        assert_eq!((d.counters().hash_mismatches, d.counters().retries), (1, 1));
        // Always bad: the read fails and the guest gets nothing of it.
        r.server.corrupt.store(1000, Ordering::SeqCst);
        let mut b = vec![0xee; 4096];
        let e = d.read_at(&mut b, 65536).unwrap_err();
        assert!(matches!(e, StreamError::HashMismatch { index: 1, attempts: FETCH_ATTEMPTS, .. }), "{e}");
        assert!(b.iter().all(|&x| x == 0xee), "no byte of a bad block reaches the buffer");
        // A cached block that rots on disk is refused and fetched again.
        r.server.corrupt.store(0, Ordering::SeqCst);
        let h = Table::decode_unverified(&std::fs::read(r.dir.join("pk/table")).unwrap(), "t").unwrap().hashes[0];
        std::fs::write(block_path(&r.dir.join("cache"), &h), vec![1u8; 65536]).unwrap();
        // (This drive still holds block 0 in memory, verified: a new one
        // has only the cache directory.)
        drop(d);
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        d.read_at(&mut b, 0).unwrap();
        assert_eq!(b, r.data[..4096]);
        assert_eq!((d.counters().blocks_fetched, d.counters().hash_mismatches), (1, 1));
    }

    #[test]
    fn a_tampered_table_or_another_key_is_refused_at_open() {
        let r = rig("tamper");
        let t = r.dir.join("pk/table");
        let mut bytes = std::fs::read(&t).unwrap();
        bytes[40 + 5 * 32] ^= 0x80;
        std::fs::write(&t, &bytes).unwrap();
        let e = StreamDisk::open(&r.opts("cache")).err().unwrap();
        assert!(matches!(e, StreamError::Signature { .. }), "{e}");
        assert!(!e.to_string().contains('\n'));
        bytes[40 + 5 * 32] ^= 0x80;
        std::fs::write(&t, &bytes).unwrap();
        StreamDisk::open(&r.opts("cache")).unwrap();
        let other = SigningKey::from_bytes(&[7; 32]);
        std::fs::write(r.dir.join("key.pub"), crate::format::block_hex(other.verifying_key().as_bytes())).unwrap();
        assert!(matches!(StreamDisk::open(&r.opts("cache")).err().unwrap(), StreamError::Signature { .. }));
    }

    #[test]
    fn a_server_that_goes_away_fails_uncached_reads_until_it_is_back() {
        let mut r = rig("down");
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        let mut b = vec![0; 512];
        d.read_at(&mut b, 0).unwrap();
        let port = r.server.port;
        r.server.stop();
        let t = std::time::Instant::now();
        let e = d.read_at(&mut b, 3 * 65536).unwrap_err();
        assert!(matches!(e, StreamError::Http { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20), "a refused connection fails within the retries");
        // What is cached still reads.
        d.read_at(&mut b, 100).unwrap();
        assert_eq!(b, r.data[100..612]);
        r.server = Server::start(&r.dir.join("pk"), port);
        d.read_at(&mut b, 3 * 65536).unwrap();
        assert_eq!(b, r.data[3 * 65536..3 * 65536 + 512]);
        assert_eq!(d.counters().failed_blocks, 1);
    }

    #[test]
    fn writes_go_to_the_overlay_and_commit_makes_a_new_version() {
        let r = rig("overlay");
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        let mut want = r.data.clone();
        // Inside a block, across two blocks, a whole block, into the zero block.
        for (pos, n, v) in
            [(100usize, 50usize, 0xa1u8), (65536 - 10, 20, 0xa2), (4 * 65536, 65536, 0xa3), (2 * 65536 + 7, 9, 0xa4)]
        {
            d.write_at(&vec![v; n], pos as u64).unwrap();
            want[pos..pos + n].fill(v);
        }
        assert!(read_all(&mut d) == want, "reads after writes");
        assert_eq!(d.counters().overlay_blocks, 4);
        d.flush().unwrap();
        drop(d);
        // The server never saw a write: a read-only drive reads the original.
        let mut ro = StreamDisk::open(&StreamOptions { readonly: true, ..r.opts("cache2") }).unwrap();
        assert!(read_all(&mut ro) == r.data);
        assert!(ro.write_at(&[1], 0).is_err());
        // The overlay survives a reopen.
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        assert!(read_all(&mut d) == want, "reads after reopening the overlay");
        drop(d);
        // Commit: a new version whose blocks are the written image.
        let rep = commit(&r.dir.join("cache/overlay"), &r.dir.join("pk"), Some(&r.key)).unwrap();
        assert_eq!((rep.generation, rep.new_blocks), (2, 4));
        let mut fresh = StreamDisk::open(&StreamOptions { readonly: true, ..r.opts("cache3") }).unwrap();
        assert_eq!(fresh.generation(), 2);
        assert!(read_all(&mut fresh) == want, "the committed version");
        // The old overlay does not fit the new table.
        let e = StreamDisk::open(&r.opts("cache")).err().unwrap();
        assert!(matches!(e, StreamError::OverlayVersion { had: 1, now: 2, .. }), "{e}");
    }

    #[test]
    fn a_block_read_in_small_pieces_is_read_from_the_cache_once() {
        let r = rig("hot");
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        let mut b = vec![0; 4096];
        d.read_at(&mut b, 0).unwrap();
        drop(d);
        // Warm: block 0 read as sixteen 4 KiB requests.
        let mut d = StreamDisk::open(&r.opts("cache")).unwrap();
        for k in 0..16u64 {
            d.read_at(&mut b, k * 4096).unwrap();
            assert_eq!(b, r.data[(k * 4096) as usize..][..4096]);
        }
        let c = d.counters();
        assert_eq!((c.cache_hits, c.memory_hits, c.blocks_fetched), (1, 15, 0));
        // More distinct blocks than the memory tier holds still read right.
        assert!(read_all(&mut d) == r.data);
    }

    /// Waits (bounded, so a broken prefetcher fails rather than hangs) for
    /// the prefetcher to have fetched `n` blocks.
    fn prefetched(d: &StreamDisk, n: u64) -> Counters {
        for _ in 0..1000 {
            let c = d.counters();
            if c.prefetched_blocks + c.prefetch_failed >= n {
                return c;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        d.counters()
    }

    #[test]
    fn a_recorded_profile_is_replayed_into_a_cold_cache() {
        let r = rig("profile");
        let mut d = StreamDisk::open(&r.opts("first")).unwrap();
        // The "boot": blocks 6, 1, 7 and 0, in that order, 1 twice.
        let mut b = vec![0; 512];
        for blk in [6u64, 1, 1, 7, 0] {
            d.read_at(&mut b, blk * 65536).unwrap();
        }
        drop(d);
        let recorded = std::fs::read_to_string(r.dir.join("first/profile")).unwrap();
        let order: Vec<&str> = recorded.lines().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(order, ["6", "1", "7", "0"], "first reads, in order, each once");
        // Published beside the table, replayed by a machine with a new cache.
        std::fs::copy(r.dir.join("first/profile"), r.dir.join("pk/profile")).unwrap();
        let url = r.server.url().replace("/table", "/profile");
        let mut d = StreamDisk::open(&StreamOptions { profile: Some(url), ..r.opts("cold") }).unwrap();
        let c = prefetched(&d, 4);
        assert_eq!((c.prefetched_blocks, c.prefetch_failed), (4, 0), "{c:?}");
        for blk in [6u64, 1, 7, 0] {
            d.read_at(&mut b, blk * 65536).unwrap();
            assert_eq!(b, r.data[(blk * 65536) as usize..][..512]);
        }
        assert_eq!(d.counters().blocks_fetched, 0, "every block the profile named was there");
        assert!(read_all(&mut d) == r.data);
        assert_eq!(d.counters().blocks_fetched, 3, "only the blocks the profile did not name");
    }

    #[test]
    fn reads_racing_the_prefetcher_fetch_each_block_once() {
        let r = rig("race");
        // A profile of every block, from a local file.
        let mut d = StreamDisk::open(&r.opts("first")).unwrap();
        read_all(&mut d);
        drop(d);
        let profile = r.dir.join("first/profile").display().to_string();
        for round in 0..20 {
            let cache = format!("race{round}");
            let mut d = StreamDisk::open(&StreamOptions { profile: Some(profile.clone()), ..r.opts(&cache) }).unwrap();
            assert!(read_all(&mut d) == r.data);
            let c = prefetched(&d, 7 - d.counters().blocks_fetched);
            assert_eq!(c.blocks_fetched + c.prefetched_blocks, 7, "round {round}: {c:?}");
        }
    }

    #[test]
    fn bad_profiles_are_refused_at_open() {
        let r = rig("badprofile");
        std::fs::write(r.dir.join("p"), "0 not-a-hash\n").unwrap();
        let p = |s: &str| StreamOptions { profile: Some(s.to_string()), ..r.opts("cache") };
        let e = StreamDisk::open(&p(&r.dir.join("p").display().to_string())).err().unwrap();
        assert!(matches!(e, StreamError::Profile { line: 1, .. }), "{e}");
        let e = StreamDisk::open(&p(&r.dir.join("missing").display().to_string())).err().unwrap();
        assert!(matches!(e, StreamError::Io { .. }), "{e}");
        let e = StreamDisk::open(&p(&r.server.url().replace("/table", "/nothing"))).err().unwrap();
        assert!(e.to_string().contains("404"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused() {
        for u in ["ftp://x/t", "http://x", "http:///t", "http://x/dir/"] {
            assert!(matches!(Fetcher::new(u, Duration::from_secs(1)), Err(StreamError::Url(_))), "{u}");
        }
        let f = Fetcher::new("http://h:8080/a/b/table", Duration::from_secs(1)).unwrap();
        assert_eq!(f.block_url(&[0xab; 32]), format!("http://h:8080/a/b/blocks/ab/{}", "ab".repeat(32)));
    }
}

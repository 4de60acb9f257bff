//! Fetching over HTTP with ureq: timeouts, retries, several blocks in
//! flight, and every block verified before it leaves this module.

use std::time::Duration;

use crate::format::{block_hex, sha256, Hash, MAX_TABLE};
use crate::StreamError;

/// Tries per table or block before the read fails: a network error, a
/// status other than 200, or content that does not match its hash each
/// cost one.
pub const FETCH_ATTEMPTS: u32 = 3;
/// Blocks fetched side by side for one guest request.
pub const IN_FLIGHT: usize = 4;
/// The first retry waits this long; each later one twice as long.
const BACKOFF: Duration = Duration::from_millis(100);

/// One block to fetch: its index, hash and uncompressed length.
#[derive(Clone, Copy, Debug)]
pub struct Want {
    pub index: u64,
    pub hash: Hash,
    pub len: usize,
}

/// What fetching one block came to.
pub struct Fetched {
    /// The verified, uncompressed block, or why there is none.
    pub data: Result<Vec<u8>, StreamError>,
    /// Compressed bytes received (every attempt's).
    pub wire_bytes: u64,
    /// Attempts whose content did not match the hash.
    pub mismatches: u32,
    /// Attempts after the first.
    pub retries: u32,
}

/// An HTTP client for one packed directory.
#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    table_url: String,
    /// The table URL up to its last `/`: blocks are under `blocks/`.
    base: String,
}

impl Fetcher {
    /// A client for the table at `url` (`http://HOST[:PORT]/PATH/table`)
    /// whose connections and requests each give up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Fetcher, StreamError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| StreamError::Url(url.to_string()))?;
        let slash = rest.find('/').ok_or_else(|| StreamError::Url(url.to_string()))?;
        if slash == 0 || rest.ends_with('/') || rest.contains(char::is_whitespace) {
            return Err(StreamError::Url(url.to_string()));
        }
        let base = url[..url.rfind('/').unwrap() + 1].to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Fetcher { agent, table_url: url.to_string(), base })
    }

    pub fn table_url(&self) -> &str {
        &self.table_url
    }

    pub fn block_url(&self, hash: &Hash) -> String {
        let h = block_hex(hash);
        format!("{}blocks/{}/{h}", self.base, &h[..2])
    }

    /// One GET of at most `limit` bytes.
    fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>, String> {
        let mut resp = self.agent.get(url).call().map_err(|e| e.to_string())?;
        let status = resp.status();
        if status.as_u16() != 200 {
            return Err(format!("HTTP status {status}"));
        }
        resp.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| e.to_string())
    }

    /// The table's bytes (not yet verified), with retries.
    pub fn table(&self) -> Result<Vec<u8>, StreamError> {
        self.file(&self.table_url, MAX_TABLE)
    }

    /// A whole file of at most `limit` bytes (the table, a boot profile),
    /// with retries.
    pub fn file(&self, url: &str, limit: u64) -> Result<Vec<u8>, StreamError> {
        let mut last = String::new();
        for attempt in 0..FETCH_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(BACKOFF * (1 << (attempt - 1)));
            }
            match self.get(url, limit) {
                Ok(b) => return Ok(b),
                Err(e) => last = e,
            }
        }
        Err(StreamError::Http { url: url.to_string(), what: format!("{last} (after {FETCH_ATTEMPTS} attempts)") })
    }

    /// One block, decompressed and checked against its hash, with
    /// retries: content that does not match is dropped and fetched again.
    pub fn block(&self, w: Want) -> Fetched {
        let url = self.block_url(&w.hash);
        let mut out = Fetched { data: Err(StreamError::Url(url.clone())), wire_bytes: 0, mismatches: 0, retries: 0 };
        let mut last = String::new();
        // A zstd frame of `len` bytes is never much longer than `len`.
        let limit = w.len as u64 + w.len as u64 / 64 + 1024;
        for attempt in 0..FETCH_ATTEMPTS {
            if attempt > 0 {
                out.retries += 1;
                std::thread::sleep(BACKOFF * (1 << (attempt - 1)));
            }
            let z = match self.get(&url, limit) {
                Ok(z) => z,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            out.wire_bytes += z.len() as u64;
            match zstd::bulk::decompress(&z, w.len) {
                Ok(d) if d.len() == w.len && sha256(&d) == w.hash => {
                    out.data = Ok(d);
                    return out;
                }
                _ => out.mismatches += 1,
            }
        }
        out.data = Err(if out.mismatches == FETCH_ATTEMPTS {
            StreamError::HashMismatch { index: w.index, url, attempts: FETCH_ATTEMPTS }
        } else {
            StreamError::Http { url, what: format!("{last} (after {FETCH_ATTEMPTS} attempts)") }
        });
        out
    }

    /// Several blocks, up to [`IN_FLIGHT`] at a time; results in the
    /// order of `wants`.
    pub fn blocks(&self, wants: &[Want]) -> Vec<Fetched> {
        if wants.len() <= 1 {
            return wants.iter().map(|w| self.block(*w)).collect();
        }
        let mut out: Vec<Option<Fetched>> = (0..wants.len()).map(|_| None).collect();
        for (chunk_wants, chunk_out) in wants.chunks(IN_FLIGHT).zip(out.chunks_mut(IN_FLIGHT)) {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk_wants.iter().map(|w| s.spawn(move || self.block(*w))).collect();
                for (h, o) in handles.into_iter().zip(chunk_out.iter_mut()) {
                    *o = h.join().ok();
                }
            });
        }
        out.into_iter()
            .zip(wants)
            .map(|(f, w)| {
                f.unwrap_or_else(|| Fetched {
                    data: Err(StreamError::Http { url: self.block_url(&w.hash), what: "fetch thread panicked".into() }),
                    wire_bytes: 0,
                    mismatches: 0,
                    retries: 0,
                })
            })
            .collect()
    }
}

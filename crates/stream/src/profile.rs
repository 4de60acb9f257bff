//! Boot profiles: the order in which a drive's blocks were first read,
//! recorded by one run and replayed as read-ahead by the next.
//!
//! A drive writes `CACHE/profile` as it goes: one line `index hash` (hash
//! in hex) for every non-zero base block the guest reads, the first time it
//! reads it, so the file is the order the guest needed its blocks in.
//! Publish it beside the table (`DIR/profile`) and a machine with a cold
//! cache opened with `profile=URL` (or a local path) fetches those blocks
//! in that order, [`crate::IN_FLIGHT`] at a time, on a thread of its own,
//! while the guest boots: by the time the guest asks for a block it is
//! usually in the cache.
//!
//! # Trust
//!
//! A profile is a hint, not data. Only its hashes are used, and only those
//! the verified table names (a line naming a block the table does not have
//! is skipped, so a profile of an older version still helps with the blocks
//! the versions share); every block it brings in is verified against its
//! hash before it enters the cache, like any other. A hostile profile can
//! only make a drive fetch blocks of its own image that the guest may not
//! need. It is read whole at open, bounded by [`MAX_PROFILE`].
//!
//! # The prefetcher and the guest's reads
//!
//! | state of a block | the guest's read does |
//! | --- | --- |
//! | in the cache | reads and verifies it (the prefetcher skips it) |
//! | being fetched by the prefetcher | waits for that fetch to end, then reads the cache (fetching itself if the prefetch failed) |
//! | neither | fetches it itself, marked in flight so the prefetcher skips it |
//!
//! Invariant: no block is fetched by both at once (the in-flight set is
//! the arbiter); the prefetcher stops between batches once the drive is
//! closed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::format::{Hash, Table, ZERO_HASH};
use crate::http::{Fetcher, Want, IN_FLIGHT};
use crate::StreamError;

/// The largest profile read: one 80-byte line per block of the largest
/// table.
pub const MAX_PROFILE: u64 = 80 << 21;

/// A hex digit's value.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Parses a profile: lines `index hash` (or only `hash`), blank lines
/// ignored. Returns the hashes in order, each once, that `table` names.
pub fn parse(text: &str, origin: &str, table: &Table) -> Result<Vec<Hash>, StreamError> {
    let known: HashSet<&Hash> = table.hashes.iter().filter(|h| **h != ZERO_HASH).collect();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let field = line.split_whitespace().last().unwrap_or("");
        let bad = || StreamError::Profile { origin: origin.to_string(), line: n + 1 };
        if field.len() != 64 {
            return Err(bad());
        }
        let mut h = [0u8; 32];
        for (i, pair) in field.as_bytes().chunks(2).enumerate() {
            h[i] = hex(pair[0]).zip(hex(pair[1])).map(|(a, b)| a << 4 | b).ok_or_else(bad)?;
        }
        if known.contains(&h) && seen.insert(h) {
            out.push(h);
        }
    }
    Ok(out)
}

/// Blocks in flight, fetched by the prefetcher or by a guest read; a
/// reader waits on `done` for a block the other side is fetching.
#[derive(Default)]
pub(crate) struct InFlight {
    set: Mutex<HashSet<Hash>>,
    done: Condvar,
}

impl InFlight {
    /// Claims the blocks of `wants` nobody fetches yet; returns (claimed,
    /// being fetched by someone else).
    pub(crate) fn claim(&self, wants: Vec<Want>) -> (Vec<Want>, Vec<Want>) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        wants.into_iter().partition(|w| set.insert(w.hash))
    }

    /// Ends the claims on `hashes` and wakes the waiters.
    pub(crate) fn release(&self, hashes: impl IntoIterator<Item = Hash>) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        for h in hashes {
            set.remove(&h);
        }
        drop(set);
        self.done.notify_all();
    }

    /// Waits until none of `hashes` is in flight, at most `limit`.
    pub(crate) fn wait(&self, hashes: &[Hash], limit: Duration) {
        let set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .done
            .wait_timeout_while(set, limit, |s| hashes.iter().any(|h| s.contains(h)))
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// What the prefetcher did, shared with the drive's counters.
#[derive(Default)]
pub(crate) struct PrefetchCounters {
    pub blocks: AtomicU64,
    pub bytes: AtomicU64,
    pub failed: AtomicU64,
}

/// The read-ahead thread of one drive; it stops when dropped.
pub(crate) struct Prefetcher {
    stop: Arc<AtomicBool>,
    pub counters: Arc<PrefetchCounters>,
}

impl Prefetcher {
    /// Starts fetching `order` (block wants in profile order) into the
    /// cache with `store(want, data)`, skipping those `cached(hash)` says
    /// are there and those a guest read is fetching.
    pub(crate) fn start(
        fetcher: Fetcher,
        order: Vec<Want>,
        inflight: Arc<InFlight>,
        cached: impl Fn(&Hash) -> bool + Send + 'static,
        store: impl Fn(&Want, &[u8]) + Send + 'static,
    ) -> Prefetcher {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(PrefetchCounters::default());
        let (s, c) = (stop.clone(), counters.clone());
        let spawned = std::thread::Builder::new().name("strata-prefetch".into()).spawn(move || {
            let mut rest = order.into_iter().peekable();
            while rest.peek().is_some() && !s.load(Ordering::Relaxed) {
                let batch: Vec<Want> = rest.by_ref().filter(|w| !cached(&w.hash)).take(IN_FLIGHT).collect();
                let (mine, _) = inflight.claim(batch);
                for (w, f) in mine.iter().zip(fetcher.blocks(&mine)) {
                    c.bytes.fetch_add(f.wire_bytes, Ordering::Relaxed);
                    match f.data {
                        Ok(d) => {
                            store(w, &d);
                            c.blocks.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                inflight.release(mine.iter().map(|w| w.hash));
            }
        });
        // A host that cannot start a thread only loses the read-ahead.
        drop(spawned);
        Prefetcher { stop, counters }
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::block_hex;

    fn table() -> Table {
        Table {
            block_size: 4096,
            image_size: 4 * 4096,
            generation: 1,
            hashes: vec![[1; 32], ZERO_HASH, [3; 32], [1; 32]],
        }
    }

    #[test]
    fn profiles_keep_order_drop_unknown_and_repeated_blocks() {
        let t = table();
        let text = format!(
            "2 {}\n\n0 {}\n9 {}\n{}\n1 {}\n",
            block_hex(&[3; 32]),
            block_hex(&[1; 32]),
            block_hex(&[7; 32]),   // not in the table: skipped
            block_hex(&[1; 32]),   // again: once
            block_hex(&ZERO_HASH)  // zeros are never fetched
        );
        assert_eq!(parse(&text, "p", &t).unwrap(), vec![[3; 32], [1; 32]]);
    }

    #[test]
    fn malformed_lines_are_named() {
        let t = table();
        for (text, line) in [("0 abc\n", 1), (&*format!("0 {}\n1 {}zz\n", "ab".repeat(32), "cd".repeat(31)), 2)] {
            match parse(text, "p", &t) {
                Err(StreamError::Profile { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_block_in_flight_is_claimed_once_and_waited_for() {
        let f = Arc::new(InFlight::default());
        let w = |b| Want { index: 0, hash: [b; 32], len: 1 };
        let (mine, theirs) = f.claim(vec![w(1), w(2)]);
        assert_eq!((mine.len(), theirs.len()), (2, 0));
        let (mine2, theirs2) = f.claim(vec![w(2), w(3)]);
        assert_eq!((mine2.len(), theirs2.len()), (1, 1));
        let g = f.clone();
        let t = std::thread::spawn(move || {
            g.wait(&[[2; 32]], Duration::from_secs(60));
            g.claim(vec![w(2)]).0.len()
        });
        std::thread::sleep(Duration::from_millis(20));
        f.release([[1; 32], [2; 32]]);
        assert_eq!(t.join().unwrap(), 1, "after the release the waiter can claim the block");
    }
}

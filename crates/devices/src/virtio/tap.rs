//! Device I/O taps for monitors (docs/monitor.md): every virtio-blk
//! request, before the device serves it, goes past each observer attached
//! to the drive's [`Taps`]; several observers on one drive all see every
//! request, unaware of each other. An observer may fail the request with
//! a status of its own (fault injection); the first that does decides, the
//! later ones still see the request.
//!
//! Cost without observers: a drive built without taps pays one `Option`
//! test per request; with taps but no observer, one relaxed load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// One virtio-blk request as the observers see it (§5.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRequest {
    /// VIRTIO_BLK_T_* (`block::req`).
    pub kind: u32,
    pub sector: u64,
    /// Data bytes (to the guest for reads, from it for writes).
    pub bytes: u64,
}

/// A monitor of a drive's requests.
pub trait BlockObserver: Send + Sync {
    /// Sees `r`; `Some(status)` fails it with that VIRTIO_BLK_S_* status.
    fn request(&self, r: &BlockRequest) -> Option<u8>;
}

/// The observers of one drive.
#[derive(Default)]
pub struct Taps {
    any: AtomicBool,
    list: RwLock<Vec<Arc<dyn BlockObserver>>>,
}

impl Taps {
    pub fn new() -> Arc<Taps> {
        Arc::new(Taps::default())
    }

    pub fn attach(&self, o: Arc<dyn BlockObserver>) {
        self.list.write().unwrap_or_else(|e| e.into_inner()).push(o);
        self.any.store(true, Ordering::Release);
    }

    /// Shows `r` to every observer; the first failure status, if any.
    #[inline]
    pub fn run(&self, r: &BlockRequest) -> Option<u8> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut verdict = None;
        for o in self.list.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let v = o.request(r);
            verdict = verdict.or(v);
        }
        verdict
    }
}

//! Virtio devices (Virtual I/O Device Specification 1.2, "Virtio 1.2").
//!
//! Layering:
//! - [`queue`]: split virtqueues (§2.7) and a descriptor-chain walker that
//!   treats every byte the driver wrote as hostile.
//! - [`mmio`]: the virtio-mmio transport, version 2 (§4.2.2), which owns the
//!   device status (§2.1), feature negotiation (§2.2), the queues and the
//!   interrupt line, and is what the board places on the MMIO bus.
//! - The devices ([`block`], [`rng`], [`console`], [`vsock`], [`net`]): plain
//!   state machines behind [`VirtioDevice`], independent of the transport and
//!   of the run loop.
//!
//! Requests are processed synchronously when the driver writes QueueNotify;
//! devices with host-side input (console, vsock, net) are also polled by the
//! run loop through [`mmio::VirtioMmio::poll`].

pub mod block;
pub mod console;
#[cfg(test)]
mod hostile;
pub mod image_lock;
pub mod mmio;
pub mod net;

pub mod queue;
pub mod rng;
pub mod tap;
pub mod uds;
pub mod vsock;

use strata_memory::GuestMemory;

pub use mmio::{VirtioMmio, VIRTIO_MMIO_SIZE};
pub use queue::{Chain, ChainError, Queue};

/// Device IDs (§5 table "Device Types").
pub mod id {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const CONSOLE: u32 = 3;
    pub const ENTROPY: u32 = 4;
    pub const VSOCK: u32 = 19;
}

/// Reserved feature bits (§6 "Reserved Feature Bits").
pub mod feature {
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    pub const VERSION_1: u64 = 1 << 32;
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
}

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// Why a device gave up on its queues: the driver broke a rule of the
/// specification that leaves the device no sensible way on (§2.1.1: the
/// device sets DEVICE_NEEDS_RESET and the driver must reset it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError(pub String);

impl From<ChainError> for DeviceError {
    fn from(e: ChainError) -> Self {
        DeviceError(e.to_string())
    }
}

/// What a device needs from the transport while it works on its queues:
/// guest memory and the queues themselves. Used-buffer notifications are
/// the transport's business (it looks at what the device put in the used
/// rings afterwards).
pub struct QueueCtx<'a> {
    pub mem: &'a dyn GuestMemory,
    pub queues: &'a mut [Queue],
}

/// A virtio device behind a transport. Implementations never panic on
/// guest input and reach guest memory only through `GuestRam`'s bounded
/// accessors (via [`Chain`]).
pub trait VirtioDevice: Send {
    /// The device type (§5).
    fn device_id(&self) -> u32;
    /// Device-type feature bits offered (bits 0..23, §6). The transport adds
    /// VERSION_1, RING_INDIRECT_DESC and RING_EVENT_IDX itself.
    fn features(&self) -> u64;
    /// Number of virtqueues.
    fn num_queues(&self) -> usize;
    /// Largest queue size the device supports for every queue (a power of
    /// two, at most 32768: §2.7).
    fn queue_max_size(&self) -> u16 {
        256
    }
    /// Size of the device-specific configuration space in bytes.
    fn config_len(&self) -> usize;
    /// Reads configuration space; `offset + data.len() <= config_len()` is
    /// checked by the transport.
    fn read_config(&self, offset: usize, data: &mut [u8]);
    /// Writes configuration space; bounds are checked by the transport.
    /// The devices here have no driver-writable fields without features
    /// they do not offer, so the default refuses: a write to a read-only
    /// field breaks §4.2.2.2 and the transport answers DEVICE_NEEDS_RESET.
    fn write_config(&mut self, offset: usize, data: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError(format!("{}-byte write to read-only configuration field at {offset:#x}", data.len())))
    }
    /// The driver set DRIVER_OK with these features negotiated.
    fn activate(&mut self, _features: u64) {}
    /// Back to the initial state (§2.4); the transport resets the queues.
    fn reset(&mut self);
    /// The driver notified queue `q` (§2.9): consume what is available.
    /// An `Err` puts the device into DEVICE_NEEDS_RESET.
    /// A block device's monitor taps (`tap`), made on first use; `None`
    /// for the other device types.
    fn block_taps(&mut self) -> Option<std::sync::Arc<tap::Taps>> {
        None
    }
    fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError>;
    /// Host-side work (incoming data, timers), called by the run loop.
    /// Returns `Ok(true)` when it did something.
    fn poll(&mut self, _ctx: &mut QueueCtx<'_>) -> Result<bool, DeviceError> {
        Ok(false)
    }
    /// The device has host input it could deliver if only the guest gave it
    /// buffers, or a host event it waits for; used by the idle loop to know
    /// that the machine is not hung.
    fn wants_poll(&self) -> bool {
        false
    }
    /// The device has host-side input and must be polled by the run loop.
    fn polled(&self) -> bool {
        false
    }
    /// A host-side failure the device's policy says must stop the machine
    /// (virtio-blk with `werror=stop`): why. The device then completes no
    /// more requests; the run loop ends the machine (and then calls
    /// [`shut_down`](Self::shut_down), which makes the disks durable).
    fn host_stop(&self) -> Option<String> {
        None
    }
    /// Host-side errors so far, one line per kind with its count (for the
    /// end of the run and `--stats`).
    fn host_errors(&self) -> Vec<String> {
        Vec::new()
    }
    /// The host descriptors whose readiness means work for
    /// [`poll`](Self::poll), so that an idle run loop can sleep on them.
    /// Returns false when the device may also have host work that no
    /// descriptor announces (the run loop then polls it on a timer).
    fn host_fds(&self, _fds: &mut Vec<HostFd>) -> bool {
        false
    }
    /// Why this device cannot be part of a snapshot (host-side state the
    /// snapshot cannot hold: a TAP, open connections), or `None`.
    /// The device's own counters (bytes moved, frames, a backend's), as
    /// `(name, value)` pairs that only grow; `--stats` and `/metrics`
    /// print them beside the transport's request count.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    fn snapshot_refusal(&self) -> Option<&'static str> {
        None
    }

    /// The machine stops for good (power-off, a signal, a drive's
    /// `werror=stop`): make durable what the guest wrote, and remove what
    /// the device created on the host (socket files). Called at most once;
    /// nothing else is called after.
    fn shut_down(&mut self) {}
}

/// A host descriptor a device waits on: readable, or writable if `write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFd {
    pub fd: std::os::fd::RawFd,
    pub write: bool,
}

impl HostFd {
    pub fn read(fd: &impl std::os::fd::AsRawFd) -> Self {
        HostFd { fd: fd.as_raw_fd(), write: false }
    }
    pub fn write(fd: &impl std::os::fd::AsRawFd) -> Self {
        HostFd { fd: fd.as_raw_fd(), write: true }
    }
}

/// Writes little-endian `v` into `buf` at `off` if it fits (config-space
/// helpers for the devices).
pub(crate) fn put_le(buf: &mut [u8], off: usize, v: u64, size: usize) {
    let bytes = v.to_le_bytes();
    if let Some(dst) = buf.get_mut(off..off + size) {
        dst.copy_from_slice(&bytes[..size]);
    }
}

/// A small deterministic PRNG for the hostile-input tests (xorshift64*).
#[cfg(test)]
pub(crate) struct TestRng(pub u64);

/// Runs a randomised test body once per seed: the test's own fixed seed
/// (so every run covers it), then the one in the environment variable
/// `STRATA_SEED` if set (decimal or 0x-hex), to explore or to reproduce. A
/// failure prints the seed that failed and how to rerun it.
#[cfg(test)]
pub(crate) fn with_seeds(test: &str, fixed: u64, mut body: impl FnMut(u64)) {
    let mut seeds = vec![fixed];
    if let Ok(v) = std::env::var("STRATA_SEED") {
        let v = v.trim();
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        seeds.push(parsed.unwrap_or_else(|_| panic!("STRATA_SEED={v:?}: not a number")));
    }
    struct Report<'a>(&'a str, u64);
    impl Drop for Report<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!(
                    "{}: failed with seed {}; rerun it with STRATA_SEED={} cargo test --release -p strata-devices {}",
                    self.0, self.1, self.1, self.0
                );
            }
        }
    }
    for seed in seeds {
        let _report = Report(test, seed);
        body(seed);
    }
}

#[cfg(test)]
impl TestRng {
    /// xorshift never leaves 0: a zero seed becomes a fixed odd one.
    pub fn new(seed: u64) -> TestRng {
        TestRng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

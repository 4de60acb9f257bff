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
pub mod mmio;
pub mod net;

pub mod queue;
pub mod rng;
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
    /// The host descriptors whose readiness means work for
    /// [`poll`](Self::poll), so that an idle run loop can sleep on them.
    /// Returns false when the device may also have host work that no
    /// descriptor announces (the run loop then polls it on a timer).
    fn host_fds(&self, _fds: &mut Vec<HostFd>) -> bool {
        false
    }
    /// The machine stops for good (power-off, a signal): make durable what
    /// the guest wrote, and remove what the device created on the host
    /// (socket files). Called at most once; nothing else is called after.
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

#[cfg(test)]
impl TestRng {
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

//! The virtio-mmio transport, modern interface (Virtio 1.2 §4.2.2,
//! Version = 2).
//!
//! Register map (§4.2.2, table "MMIO Device Register Layout"). §4.2.2.2
//! gives the driver three rules: control registers only with aligned 32-bit
//! accesses, no writes to read-only registers, and no accesses to locations
//! the table (or, for configuration space, the device type) does not
//! describe. Reads that break them return zero. Writes that break them are
//! driver errors: the device enters DEVICE_NEEDS_RESET. That covers narrow
//! or misaligned control writes, writes to read-only or reserved registers,
//! configuration writes beyond the device's configuration length or of a
//! width other than 1/2/4/8, and writes the device does not accept
//! (read-only configuration fields).
//!
//! Status (§2.1, §3.1.1): the driver only adds bits; writing 0 resets the
//! device (§2.4, §4.2.3.1). FEATURES_OK is accepted only for a subset of
//! the offered features that includes VERSION_1 (§2.2.2, §6.1: a modern
//! device may refuse a driver without VERSION_1); otherwise the bit does not
//! stick and the driver sees the refusal when it reads Status back.
//! Queue registers are honoured only while the selected queue is not ready
//! (§4.2.2.3: the driver must not change them afterwards). Enabling a queue
//! whose size or rings are invalid (§2.7), a notification for a broken
//! chain, or any other driver error the device cannot recover from sets
//! DEVICE_NEEDS_RESET with a configuration-change interrupt (§2.1.2).
//! A notification before DRIVER_OK (§3.1.1: "The driver MUST NOT send any
//! buffer available notifications to the device before setting DRIVER_OK")
//! or for a queue the device does not have is a driver error too:
//! DEVICE_NEEDS_RESET, nothing is consumed.

use std::sync::Arc;

use strata_memory::GuestMemory;

use super::{feature, status, DeviceError, Queue, QueueCtx, VirtioDevice};
use crate::{IrqLine, MmioDevice};

/// Size of one virtio-mmio window.
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
/// "virt" little-endian (§4.2.2 MagicValue).
pub const MAGIC: u32 = 0x7472_6976;
/// Vendor ID: "STRA".
pub const VENDOR_ID: u32 = 0x4152_5453;

pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    pub const CONFIG: u64 = 0x100;
}

/// InterruptStatus bits (§4.2.2).
pub const INT_USED_BUFFER: u32 = 1;
pub const INT_CONFIG_CHANGE: u32 = 2;

/// Ring features the transport implements for every device.
const TRANSPORT_FEATURES: u64 = feature::VERSION_1 | feature::RING_INDIRECT_DESC | feature::RING_EVENT_IDX;

pub struct VirtioMmio {
    dev: Box<dyn VirtioDevice>,
    mem: Arc<dyn GuestMemory>,
    irq: Arc<dyn IrqLine>,
    name: String,
    queues: Vec<Queue>,
    offered: u64,
    driver_features: u64,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    status: u32,
    interrupt_status: u32,
    irq_level: bool,
    config_generation: u32,
    /// Why the device last entered DEVICE_NEEDS_RESET (for tests and logs).
    pub last_error: Option<String>,
    /// Buffers the device has returned to the driver (used-ring entries):
    /// the requests it completed.
    requests: u64,
}

impl VirtioMmio {
    pub fn new(
        dev: Box<dyn VirtioDevice>,
        mem: Arc<dyn GuestMemory>,
        irq: Arc<dyn IrqLine>,
        name: impl Into<String>,
    ) -> Self {
        let max = dev.queue_max_size().clamp(1, super::queue::MAX_QUEUE_SIZE);
        let queues = (0..dev.num_queues()).map(|_| Queue::new(max)).collect();
        // Device-type bits are 0..=23 (§6); the transport owns the rest.
        let offered = (dev.features() & 0x00ff_ffff) | TRANSPORT_FEATURES;
        VirtioMmio {
            dev,
            mem,
            irq,
            name: name.into(),
            queues,
            offered,
            driver_features: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            status: 0,
            interrupt_status: 0,
            irq_level: false,
            config_generation: 0,
            last_error: None,
            requests: 0,
        }
    }

    /// Used-ring entries the device has written: the requests it completed
    /// (a network frame received, a disk request, an rng buffer filled).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// The device's own counters ([`VirtioDevice::counters`]).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.dev.counters()
    }

    /// Where each queue's used index stands, to count what a call added.
    fn used_marks(&self) -> Vec<u16> {
        self.queues.iter().map(Queue::next_used).collect()
    }

    fn count_used(&mut self, before: &[u16]) {
        for (q, b) in self.queues.iter().zip(before) {
            self.requests += q.next_used().wrapping_sub(*b) as u64;
        }
    }

    /// Offers VIRTIO_F_ACCESS_PLATFORM (§6): the device's memory is
    /// translated by the platform (an IOMMU), so the driver must hand it
    /// DMA addresses, not physical ones.
    pub fn offer_access_platform(&mut self) {
        self.offered |= feature::ACCESS_PLATFORM;
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn device(&self) -> &dyn VirtioDevice {
        &*self.dev
    }

    /// The name the device's messages use ("virtio-blk0 (disk.img)").
    /// The device's monitor taps, if it is a block device
    /// (`super::tap`).
    pub fn block_taps(&mut self) -> Option<std::sync::Arc<super::tap::Taps>> {
        self.dev.block_taps()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn update_irq(&mut self) {
        let level = self.interrupt_status != 0;
        if level != self.irq_level {
            self.irq_level = level;
            self.irq.set_level(level);
        }
    }

    fn live(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// §2.1.2: set DEVICE_NEEDS_RESET and, once DRIVER_OK, tell the driver
    /// with a configuration-change notification.
    fn needs_reset(&mut self, e: DeviceError) {
        if self.status & status::DEVICE_NEEDS_RESET == 0 {
            eprintln!("strata: {}: {}; the device needs a reset", self.name, e.0);
        }
        self.last_error = Some(e.0);
        self.status |= status::DEVICE_NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            self.interrupt_status |= INT_CONFIG_CHANGE;
            self.update_irq();
        }
    }

    /// After the device touched its queues: an error, or used-buffer
    /// notifications the driver asked for.
    fn finish(&mut self, r: Result<(), DeviceError>) {
        if let Err(e) = r {
            self.needs_reset(e);
            return;
        }
        let mem = &*self.mem;
        let mut notify = false;
        for q in self.queues.iter_mut().filter(|q| q.ready) {
            notify |= q.needs_notification(mem);
        }
        if notify {
            self.interrupt_status |= INT_USED_BUFFER;
            self.update_irq();
        }
    }

    /// QueueNotify (§4.2.2): work on queue `q`.
    fn notify(&mut self, q: usize) {
        if self.status & status::DEVICE_NEEDS_RESET != 0 {
            return;
        }
        if self.status & status::DRIVER_OK == 0 {
            self.needs_reset(DeviceError(format!("notification for queue {q} before DRIVER_OK")));
            return;
        }
        if q >= self.queues.len() {
            let n = self.queues.len();
            self.needs_reset(DeviceError(format!("notification for queue {q}, but the device has {n}")));
            return;
        }
        self.process_queue(q);
    }

    fn process_queue(&mut self, q: usize) {
        if !self.live() || !self.queues.get(q).is_some_and(|q| q.ready) {
            return;
        }
        let marks = self.used_marks();
        let mut ctx = QueueCtx { mem: &*self.mem, queues: &mut self.queues };
        let r = self.dev.process(q, &mut ctx);
        self.count_used(&marks);
        self.finish(r);
    }

    /// Host-side work for devices with input (called by the run loop).
    /// Returns true when something happened.
    pub fn poll(&mut self) -> bool {
        if !self.live() {
            return false;
        }
        let marks = self.used_marks();
        let mut ctx = QueueCtx { mem: &*self.mem, queues: &mut self.queues };
        let r = self.dev.poll(&mut ctx);
        self.count_used(&marks);
        let did = matches!(r, Ok(true));
        self.finish(r.map(|_| ()));
        did
    }

    /// The descriptors an idle run loop waits on for this device (see
    /// [`VirtioDevice::host_fds`]); a device not yet live has no host work.
    pub fn host_fds(&self, fds: &mut Vec<super::HostFd>) -> bool {
        !self.live() || self.dev.host_fds(fds)
    }

    /// The machine stops for good: see [`VirtioDevice::shut_down`].
    pub fn shut_down(&mut self) {
        self.dev.shut_down();
    }

    /// Does the run loop need to call [`poll`](Self::poll)?
    pub fn polled(&self) -> bool {
        self.dev.polled()
    }

    pub fn wants_poll(&self) -> bool {
        self.live() && self.dev.wants_poll()
    }

    /// Device reset (§2.4, §4.2.3.1 "writing zero to Status").
    fn reset(&mut self) {
        self.dev.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.driver_features = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.status = 0;
        self.interrupt_status = 0;
        self.update_irq();
    }

    fn write_status(&mut self, v: u32) {
        if v == 0 {
            self.reset();
            return;
        }
        let old = self.status;
        // The driver must not clear bits (§2.1.2); DEVICE_NEEDS_RESET is
        // the device's own.
        let mut new = (v & !status::DEVICE_NEEDS_RESET) | (old & status::DEVICE_NEEDS_RESET);
        if old & !status::DEVICE_NEEDS_RESET & !new != 0 {
            return;
        }
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let f = self.driver_features;
            if f & !self.offered != 0 || f & feature::VERSION_1 == 0 {
                new &= !status::FEATURES_OK;
            }
        }
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            if new & status::FEATURES_OK == 0 {
                // DRIVER_OK without negotiated features: refuse it.
                new &= !status::DRIVER_OK;
                self.status = new;
                self.needs_reset(DeviceError("DRIVER_OK set before FEATURES_OK".into()));
                return;
            }
            self.status = new;
            let f = self.driver_features;
            for q in &mut self.queues {
                q.set_features(f & feature::RING_INDIRECT_DESC != 0, f & feature::RING_EVENT_IDX != 0);
            }
            self.dev.activate(f);
            for q in 0..self.queues.len() {
                self.process_queue(q);
            }
            return;
        }
        self.status = new;
    }

    fn queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// A queue register write, allowed only while the queue is not ready.
    fn queue_reg(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.queue() {
            if !q.ready {
                f(q);
            }
        }
    }

    fn set_queue_ready(&mut self, v: u32) {
        let mem = self.mem.clone();
        let Some(q) = self.queues.get_mut(self.queue_sel as usize) else { return };
        if v == 0 {
            q.ready = false;
            return;
        }
        if q.ready {
            return;
        }
        match q.validate(&*mem) {
            Ok(()) => q.ready = true,
            Err(e) => {
                let sel = self.queue_sel;
                self.needs_reset(DeviceError(format!("queue {sel}: {e}")));
            }
        }
    }

    fn read_reg(&mut self, off: u64) -> u32 {
        let q = self.queues.get(self.queue_sel as usize);
        match off {
            reg::MAGIC_VALUE => MAGIC,
            reg::VERSION => 2,
            reg::DEVICE_ID => self.dev.device_id(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => q.map_or(0, |q| q.max_size as u32),
            reg::QUEUE_NUM => q.map_or(0, |q| q.size as u32),
            reg::QUEUE_READY => q.is_some_and(|q| q.ready) as u32,
            reg::INTERRUPT_STATUS => self.interrupt_status,
            reg::STATUS => self.status,
            reg::QUEUE_DESC_LOW => q.map_or(0, |q| q.desc_addr as u32),
            reg::QUEUE_DESC_HIGH => q.map_or(0, |q| (q.desc_addr >> 32) as u32),
            reg::QUEUE_DRIVER_LOW => q.map_or(0, |q| q.avail_addr as u32),
            reg::QUEUE_DRIVER_HIGH => q.map_or(0, |q| (q.avail_addr >> 32) as u32),
            reg::QUEUE_DEVICE_LOW => q.map_or(0, |q| q.used_addr as u32),
            reg::QUEUE_DEVICE_HIGH => q.map_or(0, |q| (q.used_addr >> 32) as u32),
            // No shared memory regions: a length of all ones (§4.2.2).
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    fn write_reg(&mut self, off: u64, v: u32) {
        let lo = |a: &mut u64| *a = (*a & !0xffff_ffff) | v as u64;
        let hi = |a: &mut u64| *a = (*a & 0xffff_ffff) | (v as u64) << 32;
        match off {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES => {
                // Features are fixed once FEATURES_OK is set (§2.2.2).
                if self.status & status::FEATURES_OK == 0 {
                    match self.driver_features_sel {
                        0 => self.driver_features = (self.driver_features & !0xffff_ffff) | v as u64,
                        1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (v as u64) << 32,
                        _ => {}
                    }
                }
            }
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            reg::QUEUE_SEL => self.queue_sel = v,
            // Sizes above 16 bits become 0, which `validate` rejects.
            reg::QUEUE_NUM => self.queue_reg(|q| q.size = u16::try_from(v).unwrap_or(0)),
            reg::QUEUE_READY => self.set_queue_ready(v),
            // With VIRTIO_F_NOTIFICATION_DATA (not offered) the upper half
            // would carry more; without it the value is the queue index.
            reg::QUEUE_NOTIFY => self.notify(v as usize),
            reg::INTERRUPT_ACK => {
                self.interrupt_status &= !v;
                self.update_irq();
            }
            reg::STATUS => self.write_status(v),
            reg::QUEUE_DESC_LOW => self.queue_reg(|q| lo(&mut q.desc_addr)),
            reg::QUEUE_DESC_HIGH => self.queue_reg(|q| hi(&mut q.desc_addr)),
            reg::QUEUE_DRIVER_LOW => self.queue_reg(|q| lo(&mut q.avail_addr)),
            reg::QUEUE_DRIVER_HIGH => self.queue_reg(|q| hi(&mut q.avail_addr)),
            reg::QUEUE_DEVICE_LOW => self.queue_reg(|q| lo(&mut q.used_addr)),
            reg::QUEUE_DEVICE_HIGH => self.queue_reg(|q| hi(&mut q.used_addr)),
            // No shared memory regions, but the register is writable.
            reg::SHM_SEL => {}
            _ => self.needs_reset(DeviceError(format!("write of {v:#x} to read-only or reserved register {off:#x}"))),
        }
    }

    fn config_range(&self, off: u64, size: u8) -> Option<usize> {
        let o = off.checked_sub(reg::CONFIG)? as usize;
        let ok = matches!(size, 1 | 2 | 4 | 8) && o.checked_add(size as usize)? <= self.dev.config_len();
        ok.then_some(o)
    }
}

impl MmioDevice for VirtioMmio {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if offset >= reg::CONFIG {
            let Some(o) = self.config_range(offset, size) else { return 0 };
            let mut b = [0u8; 8];
            self.dev.read_config(o, &mut b[..size as usize]);
            return u64::from_le_bytes(b);
        }
        if size != 4 || offset % 4 != 0 {
            return 0;
        }
        self.read_reg(offset) as u64
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if offset >= reg::CONFIG {
            let r = match self.config_range(offset, size) {
                Some(o) => self.dev.write_config(o, &value.to_le_bytes()[..size as usize]),
                None => Err(DeviceError(format!(
                    "{size}-byte configuration write at {:#x}, outside the {}-byte configuration space",
                    offset - reg::CONFIG,
                    self.dev.config_len()
                ))),
            };
            if let Err(e) = r {
                self.needs_reset(e);
            }
            return;
        }
        if size != 4 || offset % 4 != 0 {
            self.needs_reset(DeviceError(format!("{size}-byte write to control register offset {offset:#x}")));
            return;
        }
        self.write_reg(offset, value as u32);
    }
}

/// A virtio-mmio transport's state in a snapshot (docs/snapshot.md):
/// features offered and accepted, selectors, status, interrupt status,
/// config generation and every queue. Requests never stay in flight across
/// a round boundary (a notify is served before the store that made it
/// retires, and host input is delivered in the poll step), so the rings in
/// guest RAM and these indices are the whole picture; a device that holds
/// host-side state of its own (TAP, sockets) refuses to be saved
/// ([`VirtioDevice::snapshot_refusal`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VirtioMmioState {
    pub device_id: u32,
    pub offered: u64,
    pub driver_features: u64,
    pub device_features_sel: u32,
    pub driver_features_sel: u32,
    pub queue_sel: u32,
    pub status: u32,
    pub interrupt_status: u32,
    pub config_generation: u32,
    pub queues: Vec<Queue>,
}

impl VirtioMmio {
    /// The transport's state, or why its device cannot be saved.
    pub fn save(&self) -> Result<VirtioMmioState, String> {
        if let Some(why) = self.dev.snapshot_refusal() {
            return Err(format!("{}: {why}", self.name));
        }
        Ok(VirtioMmioState {
            device_id: self.dev.device_id(),
            offered: self.offered,
            driver_features: self.driver_features,
            device_features_sel: self.device_features_sel,
            driver_features_sel: self.driver_features_sel,
            queue_sel: self.queue_sel,
            status: self.status,
            interrupt_status: self.interrupt_status,
            config_generation: self.config_generation,
            queues: self.queues.clone(),
        })
    }

    /// Restores `s` onto a transport with the same device (same type,
    /// features and queues) and drives the interrupt line to match.
    pub fn restore(&mut self, s: &VirtioMmioState) -> Result<(), String> {
        if s.device_id != self.dev.device_id() || s.offered != self.offered || s.queues.len() != self.queues.len() {
            return Err(format!("{}: the snapshot's device differs from this one", self.name));
        }
        for (q, saved) in self.queues.iter().zip(&s.queues) {
            if saved.max_size != q.max_size || saved.size > saved.max_size {
                return Err(format!("{}: a queue size differs from this device's", self.name));
            }
        }
        self.driver_features = s.driver_features;
        self.device_features_sel = s.device_features_sel;
        self.driver_features_sel = s.driver_features_sel;
        self.queue_sel = s.queue_sel;
        self.status = s.status;
        self.interrupt_status = s.interrupt_status;
        self.config_generation = s.config_generation;
        self.queues = s.queues.clone();
        if self.status & status::DRIVER_OK != 0 {
            self.dev.activate(self.driver_features);
        }
        self.irq_level = !self.irq_level;
        self.update_irq();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::virtio::queue::tests::{desc, AVAIL, DATA, DESC, RAM, USED};
    use crate::virtio::queue::VIRTQ_DESC_F_WRITE;
    use crate::virtio::TestRng;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;
    use strata_memory::GuestRam;

    /// A device that completes every chain by writing 0xab into its first
    /// writable byte.
    pub struct Echo {
        pub seen: Arc<Mutex<Vec<u16>>>,
        pub cfg: [u8; 8],
    }
    impl VirtioDevice for Echo {
        fn device_id(&self) -> u32 {
            42
        }
        fn features(&self) -> u64 {
            1 << 3 | 1 << 40 // bit 40 is not a device bit: must be masked
        }
        fn num_queues(&self) -> usize {
            2
        }
        fn queue_max_size(&self) -> u16 {
            16
        }
        fn config_len(&self) -> usize {
            8
        }
        fn read_config(&self, o: usize, d: &mut [u8]) {
            d.copy_from_slice(&self.cfg[o..o + d.len()]);
        }
        fn write_config(&mut self, o: usize, d: &[u8]) -> Result<(), DeviceError> {
            self.cfg[o..o + d.len()].copy_from_slice(d);
            Ok(())
        }
        fn reset(&mut self) {}
        fn process(&mut self, q: usize, ctx: &mut QueueCtx<'_>) -> Result<(), DeviceError> {
            while let Some(c) = ctx.queues[q].pop(ctx.mem)? {
                self.seen.lock().unwrap().push(c.head);
                let n = c.write_at(ctx.mem, 0, &[0xab]) as u32;
                ctx.queues[q].push_used(ctx.mem, c.head, n)?;
            }
            Ok(())
        }
    }

    pub struct Wire(pub AtomicBool);
    impl IrqLine for Wire {
        fn set_level(&self, l: bool) {
            self.0.store(l, Ordering::SeqCst);
        }
    }

    pub fn mk(dev: Box<dyn VirtioDevice>) -> (VirtioMmio, Arc<GuestRam>, Arc<Wire>) {
        let mem = Arc::new(GuestRam::new(RAM, 0x10_0000).unwrap());
        let wire = Arc::new(Wire(AtomicBool::new(false)));
        (VirtioMmio::new(dev, mem.clone(), wire.clone(), "virtio-test"), mem, wire)
    }

    /// The Linux-style bring-up sequence (§3.1.1) for queue 0 of size 8.
    pub fn bring_up(m: &mut VirtioMmio, features: u64) {
        m.write(reg::STATUS, 4, 0);
        m.write(reg::STATUS, 4, (status::ACKNOWLEDGE) as u64);
        m.write(reg::STATUS, 4, (status::ACKNOWLEDGE | status::DRIVER) as u64);
        m.write(reg::DRIVER_FEATURES_SEL, 4, 0);
        m.write(reg::DRIVER_FEATURES, 4, features & 0xffff_ffff);
        m.write(reg::DRIVER_FEATURES_SEL, 4, 1);
        m.write(reg::DRIVER_FEATURES, 4, features >> 32);
        m.write(reg::STATUS, 4, (status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK) as u64);
        assert_ne!(m.read(reg::STATUS, 4) as u32 & status::FEATURES_OK, 0);
        m.write(reg::QUEUE_SEL, 4, 0);
        m.write(reg::QUEUE_NUM, 4, 8);
        m.write(reg::QUEUE_DESC_LOW, 4, DESC & 0xffff_ffff);
        m.write(reg::QUEUE_DESC_HIGH, 4, DESC >> 32);
        m.write(reg::QUEUE_DRIVER_LOW, 4, AVAIL);
        m.write(reg::QUEUE_DEVICE_LOW, 4, USED);
        m.write(reg::QUEUE_READY, 4, 1);
        assert_eq!(m.read(reg::QUEUE_READY, 4), 1);
        m.write(
            reg::STATUS,
            4,
            (status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK) as u64,
        );
    }

    fn echo() -> (Box<Echo>, Arc<Mutex<Vec<u16>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Box::new(Echo { seen: seen.clone(), cfg: [1, 2, 3, 4, 5, 6, 7, 8] }), seen)
    }

    fn offer(mem: &dyn GuestMemory, head: u16) {
        let idx = mem.load(AVAIL + 2, 2).unwrap() as u16;
        mem.store(AVAIL + 4 + 2 * (idx % 8) as u64, 2, head as u64).unwrap();
        mem.store(AVAIL + 2, 2, idx.wrapping_add(1) as u64).unwrap();
    }

    #[test]
    fn identification_and_features() {
        let (d, _) = echo();
        let (mut m, _, _) = mk(d);
        assert_eq!(m.read(reg::MAGIC_VALUE, 4), 0x7472_6976);
        assert_eq!(m.read(reg::VERSION, 4), 2);
        assert_eq!(m.read(reg::DEVICE_ID, 4), 42);
        assert_eq!(m.read(reg::DEVICE_FEATURES, 4), 1 << 3 | 1 << 28 | 1 << 29);
        m.write(reg::DEVICE_FEATURES_SEL, 4, 1);
        assert_eq!(m.read(reg::DEVICE_FEATURES, 4), 1); // VERSION_1 only
        m.write(reg::DEVICE_FEATURES_SEL, 4, 7);
        assert_eq!(m.read(reg::DEVICE_FEATURES, 4), 0);
        // Unaligned or narrow register accesses are ignored.
        assert_eq!(m.read(reg::MAGIC_VALUE, 2), 0);
        assert_eq!(m.read(reg::MAGIC_VALUE + 1, 4), 0);
        // Config: in range, sizes 1..8; out of range reads 0.
        assert_eq!(m.read(0x100, 8), 0x0807_0605_0403_0201);
        assert_eq!(m.read(0x106, 2), 0x0807);
        assert_eq!(m.read(0x106, 4), 0);
        assert_eq!(m.read(0x100, 3), 0);
        m.write(0x107, 1, 0x99);
        assert_eq!(m.read(0x107, 1), 0x99);
        assert_eq!(m.read(reg::STATUS, 4), 0);
    }

    /// §4.2.2.2 violations by writes: each one alone puts a fresh device
    /// into DEVICE_NEEDS_RESET, and changes nothing else.
    #[test]
    fn bad_writes_set_needs_reset() {
        let cases: [(u64, u8, u64); 9] = [
            (0x107, 2, 0xffff),           // config write straddling the end
            (0x200, 4, 0xffff_ffff),      // config write far outside
            (0x100, 3, 0),                // config write of an odd width
            (reg::MAGIC_VALUE, 4, 0),     // read-only register
            (reg::DEVICE_FEATURES, 4, 1), // read-only register
            (reg::QUEUE_NUM_MAX, 4, 8),   // read-only register
            (0x0c8, 4, 1),                // reserved offset
            (reg::STATUS, 1, 1),          // narrow control write
            (reg::QUEUE_SEL + 2, 4, 0),   // misaligned control write
        ];
        for (off, size, v) in cases {
            let (d, _) = echo();
            let (mut m, _, _) = mk(d);
            m.write(off, size, v);
            assert_eq!(m.read(reg::STATUS, 4) as u32, status::DEVICE_NEEDS_RESET, "write {size}@{off:#x}");
            assert!(m.last_error.is_some());
            assert_eq!(m.read(0x100, 8), 0x0807_0605_0403_0201, "write {size}@{off:#x}");
        }
        // A device with read-only configuration refuses every write there.
        let (mut m, _, _) = mk(Box::new(crate::virtio::rng::Rng::new()));
        m.write(0x100, 1, 0);
        assert_ne!(m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn features_ok_requires_version_1_and_a_subset() {
        let (d, _) = echo();
        let (mut m, _, _) = mk(d);
        for (feat, ok) in [(0u64, false), (1 << 32 | 1 << 4, false), (1 << 32 | 1 << 3, true)] {
            m.write(reg::STATUS, 4, 0);
            m.write(reg::STATUS, 4, 3);
            m.write(reg::DRIVER_FEATURES_SEL, 4, 0);
            m.write(reg::DRIVER_FEATURES, 4, feat & 0xffff_ffff);
            m.write(reg::DRIVER_FEATURES_SEL, 4, 1);
            m.write(reg::DRIVER_FEATURES, 4, feat >> 32);
            m.write(reg::STATUS, 4, 11);
            assert_eq!(m.read(reg::STATUS, 4) & 8 != 0, ok, "features {feat:#x}");
        }
    }

    #[test]
    fn notify_before_driver_ok_or_for_a_missing_queue_sets_needs_reset() {
        let (d, seen) = echo();
        let (mut m, mem, wire) = mk(d);
        desc(&mem, DESC, 2, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
        offer(&mem, 2);
        m.write(reg::STATUS, 4, 3);
        m.write(reg::QUEUE_NOTIFY, 4, 0);
        assert_eq!(m.read(reg::STATUS, 4) as u32, 3 | status::DEVICE_NEEDS_RESET);
        // Not DRIVER_OK yet: no configuration-change interrupt.
        assert!(!wire.0.load(Ordering::SeqCst));
        // Even a complete bring-up afterwards consumes nothing.
        m.write(reg::STATUS, 4, 3 | 8 | 4);
        assert!(seen.lock().unwrap().is_empty());
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 0);
        // After a reset the device works, and a notification for queue 2
        // of a two-queue device is refused.
        bring_up(&mut m, 1 << 32);
        assert_eq!(*seen.lock().unwrap(), vec![2]);
        m.write(reg::QUEUE_NOTIFY, 4, 2);
        assert_ne!(m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET, 0);
        assert_ne!(m.read(reg::INTERRUPT_STATUS, 4) as u32 & INT_CONFIG_CHANGE, 0);
    }

    #[test]
    fn notify_completes_and_interrupts() {
        let (d, seen) = echo();
        let (mut m, mem, wire) = mk(d);
        desc(&mem, DESC, 2, DATA, 4, VIRTQ_DESC_F_WRITE, 0);
        // Made available (without a notification) before DRIVER_OK.
        offer(&mem, 2);
        bring_up(&mut m, 1 << 32 | 1 << 28);
        // DRIVER_OK scanned the queue.
        assert_eq!(*seen.lock().unwrap(), vec![2]);
        assert_eq!(mem.load(DATA, 1).unwrap(), 0xab);
        assert_eq!(mem.load(USED + 2, 2).unwrap(), 1);
        assert_eq!(m.read(reg::INTERRUPT_STATUS, 4), 1);
        assert!(wire.0.load(Ordering::SeqCst));
        m.write(reg::INTERRUPT_ACK, 4, 1);
        assert!(!wire.0.load(Ordering::SeqCst));
        offer(&mem, 2);
        m.write(reg::QUEUE_NOTIFY, 4, 0);
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert!(wire.0.load(Ordering::SeqCst));
        assert_eq!(m.requests(), 2, "both used-ring entries counted");
        // Queue registers are frozen while ready.
        m.write(reg::QUEUE_NUM, 4, 4);
        assert_eq!(m.read(reg::QUEUE_NUM, 4), 8);
        // Reset clears everything and lowers the line.
        m.write(reg::STATUS, 4, 0);
        assert_eq!(m.read(reg::STATUS, 4), 0);
        assert_eq!(m.read(reg::QUEUE_READY, 4), 0);
        assert!(!wire.0.load(Ordering::SeqCst));
        assert_eq!(m.requests(), 2, "a reset does not take back what was counted");
    }

    #[test]
    fn broken_chain_sets_needs_reset() {
        let (d, _) = echo();
        let (mut m, mem, wire) = mk(d);
        bring_up(&mut m, 1 << 32);
        desc(&mem, DESC, 0, DATA, 4, VIRTQ_DESC_F_WRITE | 1, 0); // self loop
        offer(&mem, 0);
        m.write(reg::QUEUE_NOTIFY, 4, 0);
        assert_ne!(m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET, 0);
        assert_eq!(m.read(reg::INTERRUPT_STATUS, 4), INT_CONFIG_CHANGE as u64);
        assert!(wire.0.load(Ordering::SeqCst));
        // Further notifications do nothing until reset.
        m.write(reg::QUEUE_NOTIFY, 4, 0);
        m.write(reg::STATUS, 4, 0);
        assert_eq!(m.read(reg::STATUS, 4), 0);
        // The driver re-initialises its rings after a reset.
        mem.store(AVAIL + 2, 2, 0).unwrap();
        bring_up(&mut m, 1 << 32);
        assert_eq!(m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn bad_queue_size_sets_needs_reset() {
        let (d, _) = echo();
        let (mut m, _, _) = mk(d);
        m.write(reg::STATUS, 4, 3);
        m.write(reg::QUEUE_SEL, 4, 0);
        m.write(reg::QUEUE_NUM, 4, 6);
        m.write(reg::QUEUE_DESC_LOW, 4, DESC);
        m.write(reg::QUEUE_DRIVER_LOW, 4, AVAIL);
        m.write(reg::QUEUE_DEVICE_LOW, 4, USED);
        m.write(reg::QUEUE_READY, 4, 1);
        assert_eq!(m.read(reg::QUEUE_READY, 4), 0);
        assert_ne!(m.read(reg::STATUS, 4) as u32 & status::DEVICE_NEEDS_RESET, 0);
    }

    /// Random register writes (including bring-up fragments) with random
    /// rings: no panic, and status never shows DRIVER_OK without
    /// FEATURES_OK.
    #[test]
    fn random_register_traffic() {
        let mut rng = TestRng(12345);
        for _ in 0..300 {
            let (d, _) = echo();
            let (mut m, mem, _) = mk(d);
            for _ in 0..200 {
                let off = match rng.below(3) {
                    0 => rng.below(0x40) * 4,
                    1 => 0x100 + rng.below(16),
                    _ => rng.below(0x1000),
                };
                let size = [1u8, 2, 4, 8][rng.below(4) as usize];
                let v = match rng.below(4) {
                    0 => rng.next(),
                    1 => rng.below(16),
                    2 => RAM + rng.below(0x10_0000),
                    _ => 1 << 32 | rng.below(1 << 30),
                };
                if rng.below(2) == 0 {
                    m.write(off, size, v);
                } else {
                    m.read(off, size);
                }
                if rng.below(20) == 0 {
                    let a = RAM + rng.below(0x10_0000 - 8);
                    mem.store(a, 8, rng.next()).unwrap();
                }
                let st = m.read(reg::STATUS, 4) as u32;
                assert!(st & status::DRIVER_OK == 0 || st & status::FEATURES_OK != 0);
            }
        }
    }
}

//! The `virt` board: one description of its memory map, interrupt numbers
//! and device set, from which everything else is built.
//!
//! Strata's boards follow QEMU's `virt` machine (`hw/riscv/virt.c`; the
//! table in the project's platform notes), so that Debian's OpenSBI and an
//! unmodified Linux find what they expect. Two boards use this layout:
//!
//! | board | built by | CLINT | who reads it |
//! | --- | --- | --- | --- |
//! | [`VIRT`], the bare board (`strata machine`) | `strata_platform::machine` | yes | OpenSBI, then Linux |
//! | [`VIRT_VM`], a VM's platform (`strata run`) | `strata_hypervisor::vm` | no: timer and IPIs come from SBI | Linux in VS-mode |
//!
//! The device tree (`strata_platform::fdt`), the bare board's bus and each
//! VM's bus are all built from a [`BoardLayout`]; [`BoardLayout::build`] is
//! the one constructor of the board's device set (syscon, RTC, PLIC, UART,
//! and the CLINT where the layout has one). Only the virtio-mmio slots are
//! placed by the platform (`strata_platform::virtio`), at
//! [`BoardLayout::virtio_slot`].
//!
//! Invariants (checked by the tests below): windows do not overlap; every
//! interrupt number is a PLIC source (1..=`PLIC_NDEV`) and no two devices
//! share one; RAM starts above every device window.

use std::sync::{Arc, Mutex};

use crate::aclint::{Aclint, AclintHartLines, Timebase, CLINT_MMIO_SIZE};
use crate::bus::Bus;
use crate::iommu::{IOMMU_MMIO_SIZE, VECTORS as IOMMU_VECTORS};
use crate::plic::{source_line, Plic, PLIC_MMIO_SIZE};
use crate::rtc::{GoldfishRtc, RtcClock, RTC_MMIO_SIZE};
use crate::syscon::{PowerLatch, Syscon, SYSCON_MMIO_SIZE};
use crate::tpm_tis::TPM_TIS_MMIO_SIZE;
use crate::uart::{Uart, UartSink, UART_MMIO_SIZE};
use crate::virtio::VIRTIO_MMIO_SIZE;
use crate::{IrqLine, SharedMmio};

/// The timebase both boards advertise (`/cpus/timebase-frequency`), as
/// QEMU's `virt` does: `mtime` and the `time` CSR count at 10 MHz.
pub const TIMEBASE_HZ: u64 = 10_000_000;

/// Most harts a Strata machine has (and most vCPUs a VM has).
pub const MAX_HARTS: u32 = 8;
/// Least RAM a machine or a VM gets: the Debian kernel and its initramfs
/// need more than this, bare-metal test programs much less.
pub const MIN_RAM: u64 = 16 << 20;
/// Most RAM a bare board gets: well below the 56-bit physical addresses of
/// Sv39/Sv48, with room to spare.
pub const MAX_RAM: u64 = 64 << 30;

/// A window of guest-physical address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// The memory map, interrupt wiring and device set of a `virt` board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardLayout {
    /// SiFive test device / syscon: power-off and reset.
    pub syscon: Region,
    /// Goldfish RTC.
    pub rtc: Region,
    /// CLINT (ACLINT MSWI + MTIMER); `None` on a VM's platform.
    pub clint: Option<Region>,
    pub plic: Region,
    /// NS16550A UART.
    pub uart: Region,
    /// The first virtio-mmio slot; slot n is `n * size` above it.
    pub virtio: Region,
    pub virtio_slots: u32,
    /// The TPM's TIS window (`tcg,tpm-tis-mmio`), used only when a TPM is
    /// attached (`--tpm`). It sits at the start of QEMU `virt`'s platform
    /// bus (0x0400_0000, where QEMU places dynamic sysbus devices such as
    /// its `tpm-tis-device`), which nothing else of the board uses.
    pub tpm: Region,
    /// The RISC-V IOMMU's registers (`riscv,iommu`), used only with
    /// `--iommu`: where QEMU 10 `virt` puts its `iommu-sys` (checked
    /// against `-M virt,iommu-sys=on,dumpdtb=`), with the same four PLIC
    /// sources.
    pub iommu: Region,
    /// Where RAM starts (its size is the machine's or the VM's).
    pub ram_base: u64,
    /// PLIC sources.
    pub uart_irq: u32,
    pub rtc_irq: u32,
    /// The PLIC source of virtio slot 0; slot n uses `virtio_first_irq + n`.
    pub virtio_first_irq: u32,
    /// The PLIC source of the IOMMU's vector 0; vector v (command queue,
    /// fault queue, performance monitor, page requests) uses
    /// `iommu_first_irq + v`.
    pub iommu_first_irq: u32,
    /// `mtime` ticks per second.
    pub timebase_hz: u64,
    /// The UART's input clock (3.6864 MHz, as QEMU's `virt` advertises).
    pub uart_clock_hz: u32,
}

/// The bare board (`strata machine`).
pub const VIRT: BoardLayout = BoardLayout {
    syscon: Region { base: 0x0010_0000, size: SYSCON_MMIO_SIZE },
    rtc: Region { base: 0x0010_1000, size: RTC_MMIO_SIZE },
    clint: Some(Region { base: 0x0200_0000, size: CLINT_MMIO_SIZE }),
    plic: Region { base: 0x0c00_0000, size: PLIC_MMIO_SIZE },
    uart: Region { base: 0x1000_0000, size: UART_MMIO_SIZE },
    virtio: Region { base: 0x1000_1000, size: VIRTIO_MMIO_SIZE },
    virtio_slots: 8,
    tpm: Region { base: 0x0400_0000, size: TPM_TIS_MMIO_SIZE },
    iommu: Region { base: 0x0301_0000, size: IOMMU_MMIO_SIZE },
    ram_base: 0x8000_0000,
    uart_irq: 10,
    rtc_irq: 11,
    virtio_first_irq: 1,
    iommu_first_irq: 36,
    timebase_hz: TIMEBASE_HZ,
    uart_clock_hz: 0x38_4000,
};

/// A VM's platform under Strata's hypervisor: the same map without the
/// CLINT (the SBI TIME and IPI extensions stand in for it).
pub const VIRT_VM: BoardLayout = BoardLayout { clint: None, ..VIRT };

/// The devices [`BoardLayout::build`] makes, placed on `bus`, with handles
/// for the run loop (time, power, console input, statistics).
pub struct VirtDevices {
    pub bus: Bus,
    pub plic: Arc<Mutex<Plic>>,
    pub uart: Arc<Mutex<Uart>>,
    pub rtc: Arc<Mutex<GoldfishRtc>>,
    pub power: Arc<PowerLatch>,
    /// Present when the layout has a CLINT.
    pub clint: Option<Arc<Mutex<Aclint>>>,
}

/// What [`BoardLayout::build`] wires the devices to.
pub struct VirtWiring {
    /// The PLIC's outputs, one per context: hart h's M-mode context is
    /// `2h`, its S-mode context `2h + 1` (the order the device tree gives).
    pub plic_contexts: Vec<Arc<dyn IrqLine>>,
    /// The CLINT's time and its lines to each hart (MSIP, MTIP); required
    /// when the layout has a CLINT, ignored otherwise.
    pub clint: Option<(Arc<Timebase>, Vec<AclintHartLines>)>,
    /// Where the UART's output goes.
    pub console: UartSink,
    /// The RTC's time source.
    pub clock: RtcClock,
}

impl BoardLayout {
    /// The (base, PLIC source) of virtio-mmio slot `n`, if the board has it.
    pub fn virtio_slot(&self, n: u32) -> Option<(u64, u32)> {
        (n < self.virtio_slots).then(|| (self.virtio.base + n as u64 * self.virtio.size, self.virtio_first_irq + n))
    }

    /// The device ID (`iommus = <&iommu ID>`, the IOMMU's `device_id`) of
    /// the virtio-mmio slot at `base`: the slot number plus one, so no
    /// device has ID 0.
    pub fn virtio_device_id(&self, base: u64) -> Option<u32> {
        let off = base.checked_sub(self.virtio.base)?;
        let n = off / self.virtio.size;
        (off % self.virtio.size == 0 && n < self.virtio_slots as u64).then_some(n as u32 + 1)
    }

    /// The IOMMU's PLIC sources, one per vector.
    pub fn iommu_irqs(&self) -> impl Iterator<Item = u32> {
        let first = self.iommu_first_irq;
        (0..IOMMU_VECTORS as u32).map(move |v| first + v)
    }

    /// The device windows, with their names (for checks and error messages).
    pub fn windows(&self) -> Vec<(&'static str, Region)> {
        let mut w = vec![("syscon", self.syscon), ("rtc", self.rtc), ("plic", self.plic), ("uart", self.uart)];
        if let Some(c) = self.clint {
            w.push(("clint", c));
        }
        w.push(("tpm", self.tpm));
        w.push(("iommu", self.iommu));
        w.push(("virtio-mmio", Region { base: self.virtio.base, size: self.virtio.size * self.virtio_slots as u64 }));
        w
    }

    /// Builds the board's device set (syscon, RTC, PLIC, UART, and the CLINT
    /// if the layout has one) on a fresh bus.
    pub fn build(&self, w: VirtWiring) -> Result<VirtDevices, String> {
        let plic = Plic::shared(w.plic_contexts);
        let uart = Arc::new(Mutex::new(Uart::new(w.console, source_line(&plic, self.uart_irq))));
        let rtc = Arc::new(Mutex::new(GoldfishRtc::new(w.clock, source_line(&plic, self.rtc_irq))));
        let power = PowerLatch::new();
        let mut bus = Bus::new();
        bus.add(self.syscon.base, self.syscon.size, "syscon", Box::new(Syscon::new(power.clone())))?;
        bus.add(self.rtc.base, self.rtc.size, "rtc", Box::new(SharedMmio(rtc.clone())))?;
        bus.add(self.plic.base, self.plic.size, "plic", Box::new(SharedMmio(plic.clone())))?;
        bus.add(self.uart.base, self.uart.size, "uart", Box::new(SharedMmio(uart.clone())))?;
        let clint = match (self.clint, w.clint) {
            (Some(r), Some((time, lines))) => {
                let a = Arc::new(Mutex::new(Aclint::new(time, lines)));
                bus.add(r.base, r.size, "clint", Box::new(SharedMmio(a.clone())))?;
                Some(a)
            }
            (Some(_), None) => return Err("the board has a CLINT but nothing to wire it to".into()),
            (None, _) => None,
        };
        Ok(VirtDevices { bus, plic, uart, rtc, power, clint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plic::PLIC_NDEV;
    use crate::NoIrq;

    #[test]
    fn windows_do_not_overlap_and_ram_comes_after() {
        for board in [VIRT, VIRT_VM] {
            let w = board.windows();
            for (i, (a, ra)) in w.iter().enumerate() {
                assert!(ra.end() <= board.ram_base, "{a} reaches into RAM");
                for (b, rb) in &w[i + 1..] {
                    assert!(ra.end() <= rb.base || rb.end() <= ra.base, "{a} {ra:x?} overlaps {b} {rb:x?}");
                }
            }
        }
    }

    #[test]
    fn interrupt_numbers_are_distinct_plic_sources() {
        let mut irqs = vec![VIRT.uart_irq, VIRT.rtc_irq];
        irqs.extend(VIRT.iommu_irqs());
        irqs.extend((0..VIRT.virtio_slots).map(|n| VIRT.virtio_slot(n).unwrap().1));
        for &i in &irqs {
            assert!((1..=PLIC_NDEV).contains(&i), "IRQ {i}");
        }
        let mut sorted = irqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), irqs.len(), "shared IRQs: {irqs:?}");
        assert_eq!(VIRT.virtio_slot(VIRT.virtio_slots), None);
        let ids: Vec<_> =
            (0..VIRT.virtio_slots).map(|n| VIRT.virtio_device_id(VIRT.virtio_slot(n).unwrap().0)).collect();
        assert_eq!(ids, (1..=VIRT.virtio_slots).map(Some).collect::<Vec<_>>());
        assert_eq!(VIRT.virtio_device_id(VIRT.virtio.base + 8), None);
        assert_eq!(VIRT.virtio_device_id(VIRT.uart.base), None);
    }

    #[test]
    fn build_places_the_device_set() {
        let wiring = |harts: usize| VirtWiring {
            plic_contexts: (0..2 * harts).map(|_| Arc::new(NoIrq) as Arc<dyn IrqLine>).collect(),
            clint: Some((
                Timebase::new(),
                (0..harts).map(|_| AclintHartLines { msip: Arc::new(NoIrq), mtip: Arc::new(NoIrq) }).collect(),
            )),
            console: Box::new(|_| {}),
            clock: Box::new(|| 0),
        };
        let mut bare = VIRT.build(wiring(2)).unwrap();
        assert!(bare.clint.is_some());
        // mtimecmp[0] of the CLINT reads its reset value, all ones.
        assert_eq!(bare.bus.read(VIRT.clint.unwrap().base + 0x4000, 8), Some(u64::MAX));
        let mut vm = VIRT_VM.build(wiring(1)).unwrap();
        assert!(vm.clint.is_none());
        assert_eq!(vm.bus.read(VIRT.clint.unwrap().base + 0x4000, 8), None, "a VM has no CLINT");
        for b in [&mut bare.bus, &mut vm.bus] {
            // The UART's line status register says the transmitter is empty.
            assert_ne!(b.read(VIRT.uart.base + 5, 1), None);
            assert_ne!(b.read(VIRT.rtc.base, 4), None);
        }
        let mut no_clint = wiring(1);
        no_clint.clint = None;
        assert!(VIRT.build(no_clint).is_err());
    }
}

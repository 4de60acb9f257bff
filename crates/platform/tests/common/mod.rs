//! What the platform's integration tests share: the board's addresses as
//! the test guests (`strata_testkit::guest`) want them, taken from the
//! board's one home.

use strata_platform::{fdt, machine, virtio};
use strata_testkit::guest::Board;

/// The `virt` board, as test guests see it.
pub fn board() -> Board {
    Board {
        ram: machine::RAM_BASE,
        uart: fdt::UART_BASE,
        syscon: fdt::SYSCON_BASE,
        poweroff: strata_devices::syscon::FINISHER_PASS,
        rtc: fdt::RTC_BASE,
        plic: fdt::PLIC_BASE,
        clint: fdt::CLINT_BASE,
        virtio: virtio::VIRTIO_MMIO_BASE,
    }
}

/// The seeds a seeded test runs: `STRATA_SEED` alone if it is set, else
/// `default`. The tests name the seed in every failure message.
#[allow(dead_code)] // not every test file runs seeded guests
pub fn seeds(default: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    match std::env::var_os(strata_testkit::prop::SEED_VAR) {
        Some(_) => vec![strata_testkit::prop::seed()],
        None => default.collect(),
    }
}

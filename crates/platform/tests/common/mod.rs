//! What the platform's integration tests share: the board's addresses as
//! the test guests (`strata_testkit::guest`) want them, taken from the
//! board's one home (`strata_devices::board`).

use strata_devices::board::VIRT;
use strata_testkit::guest::Board;

/// The `virt` board, as test guests see it.
pub fn board() -> Board {
    Board {
        ram: VIRT.ram_base,
        uart: VIRT.uart.base,
        syscon: VIRT.syscon.base,
        poweroff: strata_devices::syscon::FINISHER_PASS,
        rtc: VIRT.rtc.base,
        plic: VIRT.plic.base,
        clint: VIRT.clint.expect("the bare board has a CLINT").base,
        virtio: VIRT.virtio.base,
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

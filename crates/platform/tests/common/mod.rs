//! What the platform's integration tests share: the board's addresses as
//! the test guests (`strata_testkit::guest`) want them, taken from the
//! board's one home (`strata_devices::board`).

use strata_devices::board::VIRT;
use strata_testkit::guest::Board;

/// The `virt` board, as test guests see it.
#[allow(dead_code)] // not every test file runs bare-board guests
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

/// A one-vCPU, 16 MiB, nested-paged VM running `kernel` under `strata
/// run`, with no devices: what the hypervisor tests' guests need.
#[allow(dead_code)] // only the hypervisor tests run VMs
pub fn vm(name: &str, kernel: &std::path::Path, protected: bool) -> strata_platform::hyp::VmConfig {
    strata_platform::hyp::VmConfig {
        name: name.into(),
        memory: 16 << 20,
        vcpus: 1,
        protected,
        paging: strata_platform::hyp::Paging::Nested,
        kernel: kernel.to_path_buf(),
        initrd: None,
        append: String::new(),
        serial_log: None,
        virtio: Default::default(),
    }
}

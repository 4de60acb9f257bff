//! Device-tree generation for the Strata board.
//!
//! The tree describes the same machine as QEMU's `virt` board (node names,
//! compatibles, `reg`, interrupt wiring), so that OpenSBI's generic platform
//! and an unmodified Linux find what they expect. It is built with the
//! `vm-fdt` crate (flattened device tree format: Devicetree Specification
//! v0.4, chapter 5).
//!
//! Bindings followed (Linux `Documentation/devicetree/bindings`):
//! - `riscv/cpus.yaml`: `riscv,isa`, `riscv,isa-base` ("rv64i"/"rv32i"),
//!   `riscv,isa-extensions` (string list, must include "i"), `mmu-type`,
//!   per-cpu `riscv,cpu-intc` child with `#interrupt-cells = <1>`;
//! - `cpu/cpu-topology.txt`: `/cpus/cpu-map/cluster0/coreN`;
//! - `timer/sifive,clint.yaml`: `interrupts-extended` = per hart
//!   <intc 3 (MSIP)>, <intc 7 (MTIP)> (mip bit numbers, Privileged Spec
//!   §3.1.9);
//! - `interrupt-controller/sifive,plic-1.0.0.yaml`: per hart
//!   <intc 11 (M external)>, <intc 9 (S external)>, `riscv,ndev`;
//! - `serial/8250.yaml` (ns16550a, `clock-frequency`), `rtc/google,goldfish-rtc`,
//!   `power/reset/syscon-poweroff.yaml` / `syscon-reboot.yaml`,
//!   `virtio/mmio.yaml`;
//! - `chosen.yaml`: `bootargs`, `stdout-path`, `linux,initrd-start/end`
//!   (written as 64-bit values), `rng-seed` and `kaslr-seed` (fresh from the
//!   host's getrandom(2) in every tree: every boot and every VM its own).

use strata_devices::board::BoardLayout;
// `mip` bit numbers are the interrupt specifiers of `riscv,cpu-intc`
// (the riscv,cpu-intc binding); their one home is strata-arch.
use strata_devices::mip::{MEIP, MSIP, MTIP, SEIP};
use strata_devices::plic::PLIC_NDEV;
use strata_devices::syscon::{FINISHER_PASS, FINISHER_RESET};
use vm_fdt::FdtWriter;

/// Most harts the PLIC window has contexts for (2 per hart): a bound of the
/// tree writer, not what Strata supports (`strata_devices::board::MAX_HARTS`).
pub const PLIC_MAX_HARTS: u32 = 512;

// Phandles (any distinct non-zero values do).
const PHANDLE_PLIC: u32 = 1;
const PHANDLE_SYSCON: u32 = 2;
/// Above every cpu and intc phandle (`3 + 2 * PLIC_MAX_HARTS`).
const PHANDLE_TPM_LOG: u32 = 0x1_0000;
const PHANDLE_IOMMU: u32 = 0x1_0001;
fn phandle_cpu(h: u32) -> u32 {
    3 + 2 * h
}
fn phandle_intc(h: u32) -> u32 {
    4 + 2 * h
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtConfig {
    pub harts: u32,
    /// Base ISA with its single-letter extensions, e.g. "rv64imafdc".
    pub isa_base: String,
    /// Every extension, single-letter and multi-letter, e.g.
    /// ["i","m","a","f","d","c","zicsr","zifencei","zicntr"]. The
    /// single-letter ones must be exactly those of `isa_base`.
    pub isa_extensions: Vec<String>,
    /// "riscv,sv39", "riscv,sv48", ...
    pub mmu_type: String,
    /// The board: addresses, interrupt numbers, timebase, and whether it
    /// has a CLINT (a bare machine does; a VM under Strata's hypervisor gets
    /// its timer and IPIs from SBI).
    pub board: BoardLayout,
    pub ram_size: u64,
    /// Kernel command line; omitted from /chosen when empty.
    pub bootargs: String,
    /// Initrd (start, end) guest-physical addresses.
    pub initrd: Option<(u64, u64)>,
    /// The occupied virtio-mmio slots: (base, PLIC source).
    pub virtio_mmio: Vec<(u64, u32)>,
    /// A TPM at the board's TIS window, with its TCG event log's region
    /// (base, size) in RAM; `None`: no TPM node.
    pub tpm_log: Option<(u64, u64)>,
    /// The RISC-V IOMMU at the board's window (`--iommu`), with every
    /// virtio-mmio node behind it; `false`: no IOMMU node and the tree is
    /// exactly what it was without one.
    pub iommu: bool,
}

impl FdtConfig {
    /// The `riscv,isa` string: `isa_base` followed by the multi-letter
    /// extensions, each after an underscore (ISA manual, "ISA Extension
    /// Naming Conventions").
    pub fn isa_string(&self) -> String {
        let mut s = self.isa_base.clone();
        for e in self.isa_extensions.iter().filter(|e| e.len() > 1) {
            s.push('_');
            s.push_str(e);
        }
        s
    }

    fn validate(&self) -> Result<(), String> {
        if self.harts == 0 || self.harts > PLIC_MAX_HARTS {
            return Err(format!("{} harts: the PLIC window has contexts for 1 to {PLIC_MAX_HARTS}", self.harts));
        }
        let base = self.isa_base.as_str();
        let Some(letters) = base.strip_prefix("rv64").or_else(|| base.strip_prefix("rv32")) else {
            return Err(format!("isa_base {base:?} does not start with rv32 or rv64"));
        };
        if !letters.starts_with('i') || !letters.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(format!("isa_base {base:?} must be rv32/rv64, 'i', then lowercase single-letter extensions"));
        }
        for e in &self.isa_extensions {
            if e.is_empty() || !e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
                return Err(format!("bad ISA extension name {e:?}"));
            }
        }
        let mut from_base: Vec<char> = letters.chars().collect();
        let mut from_list: Vec<char> =
            self.isa_extensions.iter().filter(|e| e.len() == 1).filter_map(|e| e.chars().next()).collect();
        from_base.sort_unstable();
        from_list.sort_unstable();
        from_list.dedup();
        if from_base != from_list {
            return Err(format!(
                "single-letter extensions {from_list:?} in isa_extensions do not match isa_base {base:?}"
            ));
        }
        let ram_base = self.board.ram_base;
        if self.ram_size == 0 || ram_base.checked_add(self.ram_size).is_none() {
            return Err(format!("bad RAM range {ram_base:#x}+{:#x}", self.ram_size));
        }
        if let Some((start, end)) = self.initrd {
            if end < start {
                return Err(format!("initrd end {end:#x} is before its start {start:#x}"));
            }
        }
        for (i, &(base, irq)) in self.virtio_mmio.iter().enumerate() {
            if irq == 0 || irq > PLIC_NDEV {
                return Err(format!("virtio-mmio at {base:#x}: IRQ {irq} is not a PLIC source (1..={PLIC_NDEV})"));
            }
            if self.virtio_mmio[..i].iter().any(|&(b, _)| b == base) {
                return Err(format!("two virtio-mmio slots at {base:#x}"));
            }
        }
        Ok(())
    }
}

fn e(err: vm_fdt::Error) -> String {
    format!("device tree: {err}")
}

/// Two-cell address + two-cell size `reg` (the root and /soc use
/// `#address-cells = <2>`, `#size-cells = <2>`).
fn reg(base: u64, size: u64) -> [u64; 2] {
    [base, size]
}

/// `/chosen/rng-seed` and `kaslr-seed`, in this order.
const RNG_SEED_BYTES: usize = 32;
const KASLR_SEED_BYTES: usize = 8;
type Seeds = [u8; RNG_SEED_BYTES + KASLR_SEED_BYTES];

fn fresh_seeds() -> Result<Seeds, String> {
    let mut seeds = [0u8; RNG_SEED_BYTES + KASLR_SEED_BYTES];
    strata_devices::virtio::rng::host_random(&mut seeds)
        .map_err(|err| format!("device tree: the host's getrandom(2) failed: {err}"))?;
    Ok(seeds)
}

/// Builds the flattened device tree blob for `cfg`.
pub fn build_fdt(cfg: &FdtConfig) -> Result<Vec<u8>, String> {
    build(cfg, &fresh_seeds()?)
}

/// The tree for `cfg` and the same tree with both seeds zeroed, which is
/// what measured boot measures (crate::measure: the seeds are fresh random
/// bytes each boot).
pub fn build_fdt_measured(cfg: &FdtConfig) -> Result<(Vec<u8>, Vec<u8>), String> {
    Ok((build(cfg, &fresh_seeds()?)?, build(cfg, &[0; RNG_SEED_BYTES + KASLR_SEED_BYTES])?))
}

fn build(cfg: &FdtConfig, seeds: &Seeds) -> Result<Vec<u8>, String> {
    cfg.validate()?;
    let b = &cfg.board;
    let timebase_frequency =
        u32::try_from(b.timebase_hz).map_err(|_| format!("timebase {} Hz does not fit a cell", b.timebase_hz))?;
    let mut f = FdtWriter::new().map_err(e)?;

    let root = f.begin_node("").map_err(e)?;
    f.property_u32("#address-cells", 2).map_err(e)?;
    f.property_u32("#size-cells", 2).map_err(e)?;
    f.property_string("compatible", "riscv-virtio").map_err(e)?;
    f.property_string("model", "riscv-virtio,strata").map_err(e)?;

    // /chosen
    let chosen = f.begin_node("chosen").map_err(e)?;
    if !cfg.bootargs.is_empty() {
        f.property_string("bootargs", &cfg.bootargs).map_err(e)?;
    }
    f.property_string("stdout-path", &format!("/soc/serial@{:x}", b.uart.base)).map_err(e)?;
    if let Some((start, end)) = cfg.initrd {
        f.property_u64("linux,initrd-start", start).map_err(e)?;
        f.property_u64("linux,initrd-end", end).map_err(e)?;
    }
    // Entropy for the guest kernel, which has no other source this early:
    // without it a systemd guest waits minutes for its random pool (issue
    // 12). Linux mixes all of `rng-seed` into its input pool and, trusting
    // the boot loader (`random.trust_bootloader`, on by default), credits 8
    // bits a byte; its CRNG is ready at 256 bits, so 32 bytes (what QEMU's
    // `virt` gives) make `crng init done` happen as it starts. It takes
    // `kaslr-seed` only as exactly one 64-bit value.
    let (rng, kaslr) = seeds.split_at(RNG_SEED_BYTES);
    f.property("rng-seed", rng).map_err(e)?;
    f.property("kaslr-seed", kaslr).map_err(e)?;
    f.end_node(chosen).map_err(e)?;

    // /memory
    let mem = f.begin_node(&format!("memory@{:x}", b.ram_base)).map_err(e)?;
    f.property_string("device_type", "memory").map_err(e)?;
    f.property_array_u64("reg", &reg(b.ram_base, cfg.ram_size)).map_err(e)?;
    f.end_node(mem).map_err(e)?;

    // The TPM's event log stays out of the kernel's allocator but in its
    // linear map (no `no-map`): Linux's `tpm_read_log_of` copies it from
    // `__va(linux,sml-base)` (drivers/char/tpm/eventlog/of.c), and newer
    // kernels also follow `memory-region` (reserved-memory.yaml).
    if let Some((base, size)) = cfg.tpm_log {
        let resv = f.begin_node("reserved-memory").map_err(e)?;
        f.property_u32("#address-cells", 2).map_err(e)?;
        f.property_u32("#size-cells", 2).map_err(e)?;
        f.property_null("ranges").map_err(e)?;
        let log = f.begin_node(&format!("tpm-event-log@{base:x}")).map_err(e)?;
        f.property_array_u64("reg", &reg(base, size)).map_err(e)?;
        f.property_u32("phandle", PHANDLE_TPM_LOG).map_err(e)?;
        f.end_node(log).map_err(e)?;
        f.end_node(resv).map_err(e)?;
    }

    // /cpus
    let cpus = f.begin_node("cpus").map_err(e)?;
    f.property_u32("#address-cells", 1).map_err(e)?;
    f.property_u32("#size-cells", 0).map_err(e)?;
    f.property_u32("timebase-frequency", timebase_frequency).map_err(e)?;
    let isa = cfg.isa_string();
    let isa_base = &cfg.isa_base[..5]; // "rv64i" / "rv32i", checked by validate()
    for h in 0..cfg.harts {
        let cpu = f.begin_node(&format!("cpu@{h:x}")).map_err(e)?;
        f.property_u32("phandle", phandle_cpu(h)).map_err(e)?;
        f.property_string("device_type", "cpu").map_err(e)?;
        f.property_u32("reg", h).map_err(e)?;
        f.property_string("status", "okay").map_err(e)?;
        f.property_string("compatible", "riscv").map_err(e)?;
        f.property_string("riscv,isa", &isa).map_err(e)?;
        f.property_string("riscv,isa-base", isa_base).map_err(e)?;
        f.property_string_list("riscv,isa-extensions", cfg.isa_extensions.clone()).map_err(e)?;
        // The cache-block size of each CMO extension present (Linux
        // `riscv/cpus.yaml`; its Zicboz `clear_page` zeroes in these steps).
        for (ext, prop) in [
            ("zicbom", "riscv,cbom-block-size"),
            ("zicbop", "riscv,cbop-block-size"),
            ("zicboz", "riscv,cboz-block-size"),
        ] {
            if cfg.isa_extensions.iter().any(|x| x == ext) {
                f.property_u32(prop, strata_hart::CACHE_BLOCK_SIZE as u32).map_err(e)?;
            }
        }
        f.property_string("mmu-type", &cfg.mmu_type).map_err(e)?;
        let intc = f.begin_node("interrupt-controller").map_err(e)?;
        f.property_u32("#address-cells", 0).map_err(e)?;
        f.property_u32("#interrupt-cells", 1).map_err(e)?;
        f.property_null("interrupt-controller").map_err(e)?;
        f.property_string("compatible", "riscv,cpu-intc").map_err(e)?;
        f.property_u32("phandle", phandle_intc(h)).map_err(e)?;
        f.end_node(intc).map_err(e)?;
        f.end_node(cpu).map_err(e)?;
    }
    let map = f.begin_node("cpu-map").map_err(e)?;
    let cluster = f.begin_node("cluster0").map_err(e)?;
    for h in 0..cfg.harts {
        let core = f.begin_node(&format!("core{h}")).map_err(e)?;
        f.property_u32("cpu", phandle_cpu(h)).map_err(e)?;
        f.end_node(core).map_err(e)?;
    }
    f.end_node(cluster).map_err(e)?;
    f.end_node(map).map_err(e)?;
    f.end_node(cpus).map_err(e)?;

    // /soc
    let soc = f.begin_node("soc").map_err(e)?;
    f.property_u32("#address-cells", 2).map_err(e)?;
    f.property_u32("#size-cells", 2).map_err(e)?;
    f.property_string("compatible", "simple-bus").map_err(e)?;
    f.property_null("ranges").map_err(e)?;

    if let Some(r) = b.clint {
        let clint = f.begin_node(&format!("clint@{:x}", r.base)).map_err(e)?;
        f.property_string_list("compatible", vec!["sifive,clint0".into(), "riscv,clint0".into()]).map_err(e)?;
        f.property_array_u64("reg", &reg(r.base, r.size)).map_err(e)?;
        let cells: Vec<u32> = (0..cfg.harts).flat_map(|h| [phandle_intc(h), MSIP, phandle_intc(h), MTIP]).collect();
        f.property_array_u32("interrupts-extended", &cells).map_err(e)?;
        f.end_node(clint).map_err(e)?;
    }

    let plic = f.begin_node(&format!("plic@{:x}", b.plic.base)).map_err(e)?;
    f.property_u32("phandle", PHANDLE_PLIC).map_err(e)?;
    f.property_string_list("compatible", vec!["sifive,plic-1.0.0".into(), "riscv,plic0".into()]).map_err(e)?;
    f.property_array_u64("reg", &reg(b.plic.base, b.plic.size)).map_err(e)?;
    f.property_u32("#address-cells", 0).map_err(e)?;
    f.property_u32("#interrupt-cells", 1).map_err(e)?;
    f.property_null("interrupt-controller").map_err(e)?;
    f.property_u32("riscv,ndev", PLIC_NDEV).map_err(e)?;
    // Context 2h = hart h M-mode, 2h+1 = S-mode, in this order.
    let cells: Vec<u32> = (0..cfg.harts).flat_map(|h| [phandle_intc(h), MEIP, phandle_intc(h), SEIP]).collect();
    f.property_array_u32("interrupts-extended", &cells).map_err(e)?;
    f.end_node(plic).map_err(e)?;

    let serial = f.begin_node(&format!("serial@{:x}", b.uart.base)).map_err(e)?;
    f.property_string("compatible", "ns16550a").map_err(e)?;
    f.property_array_u64("reg", &reg(b.uart.base, b.uart.size)).map_err(e)?;
    f.property_u32("clock-frequency", b.uart_clock_hz).map_err(e)?;
    f.property_u32("interrupt-parent", PHANDLE_PLIC).map_err(e)?;
    f.property_u32("interrupts", b.uart_irq).map_err(e)?;
    f.end_node(serial).map_err(e)?;

    let test = f.begin_node(&format!("test@{:x}", b.syscon.base)).map_err(e)?;
    f.property_u32("phandle", PHANDLE_SYSCON).map_err(e)?;
    f.property_string_list("compatible", vec!["sifive,test1".into(), "sifive,test0".into(), "syscon".into()])
        .map_err(e)?;
    f.property_array_u64("reg", &reg(b.syscon.base, b.syscon.size)).map_err(e)?;
    f.end_node(test).map_err(e)?;

    let rtc = f.begin_node(&format!("rtc@{:x}", b.rtc.base)).map_err(e)?;
    f.property_string("compatible", "google,goldfish-rtc").map_err(e)?;
    f.property_array_u64("reg", &reg(b.rtc.base, b.rtc.size)).map_err(e)?;
    f.property_u32("interrupt-parent", PHANDLE_PLIC).map_err(e)?;
    f.property_u32("interrupts", b.rtc_irq).map_err(e)?;
    f.end_node(rtc).map_err(e)?;

    // The IOMMU (iommu/riscv,iommu.yaml): a platform device with wired
    // interrupts, one per vector, and one cell of device ID per master.
    if cfg.iommu {
        let n = f.begin_node(&format!("iommu@{:x}", b.iommu.base)).map_err(e)?;
        f.property_u32("phandle", PHANDLE_IOMMU).map_err(e)?;
        f.property_string("compatible", "riscv,iommu").map_err(e)?;
        f.property_array_u64("reg", &reg(b.iommu.base, b.iommu.size)).map_err(e)?;
        f.property_u32("interrupt-parent", PHANDLE_PLIC).map_err(e)?;
        f.property_array_u32("interrupts", &b.iommu_irqs().collect::<Vec<_>>()).map_err(e)?;
        f.property_u32("#iommu-cells", 1).map_err(e)?;
        f.end_node(n).map_err(e)?;
    }
    for &(base, irq) in &cfg.virtio_mmio {
        let v = f.begin_node(&format!("virtio_mmio@{base:x}")).map_err(e)?;
        f.property_string("compatible", "virtio,mmio").map_err(e)?;
        f.property_array_u64("reg", &reg(base, b.virtio.size)).map_err(e)?;
        f.property_u32("interrupt-parent", PHANDLE_PLIC).map_err(e)?;
        f.property_u32("interrupts", irq).map_err(e)?;
        if cfg.iommu {
            let id = b.virtio_device_id(base).ok_or_else(|| format!("virtio-mmio at {base:#x} is not a board slot"))?;
            f.property_array_u32("iommus", &[PHANDLE_IOMMU, id]).map_err(e)?;
        }
        f.end_node(v).map_err(e)?;
    }
    // The TPM (tpm/tcg,tpm-tis-mmio.yaml): no `interrupts`, so Linux
    // polls. `linux,sml-base` is 64-bit and `linux,sml-size` 32-bit, both
    // big-endian like every property (of.c converts them with
    // be64_to_cpup/be32_to_cpup for anything but IBM's vTPM).
    if let Some((base, size)) = cfg.tpm_log {
        let size32 = u32::try_from(size).map_err(|_| format!("TPM event log of {size} bytes does not fit a cell"))?;
        let tpm = f.begin_node(&format!("tpm@{:x}", b.tpm.base)).map_err(e)?;
        f.property_string("compatible", "tcg,tpm-tis-mmio").map_err(e)?;
        f.property_array_u64("reg", &reg(b.tpm.base, b.tpm.size)).map_err(e)?;
        f.property_u64("linux,sml-base", base).map_err(e)?;
        f.property_u32("linux,sml-size", size32).map_err(e)?;
        f.property_u32("memory-region", PHANDLE_TPM_LOG).map_err(e)?;
        f.end_node(tpm).map_err(e)?;
    }
    f.end_node(soc).map_err(e)?;

    // syscon-poweroff / syscon-reboot: a 32-bit write of `value` at
    // `offset` in the test device's register map.
    for (name, compat, value) in
        [("poweroff", "syscon-poweroff", FINISHER_PASS), ("reboot", "syscon-reboot", FINISHER_RESET)]
    {
        let n = f.begin_node(name).map_err(e)?;
        f.property_string("compatible", compat).map_err(e)?;
        f.property_u32("regmap", PHANDLE_SYSCON).map_err(e)?;
        f.property_u32("offset", 0).map_err(e)?;
        f.property_u32("value", value).map_err(e)?;
        f.end_node(n).map_err(e)?;
    }

    f.end_node(root).map_err(e)?;
    f.finish().map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};

    type Props = BTreeMap<String, Vec<u8>>;
    type Tree = BTreeMap<String, Props>;

    fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// A minimal flattened-device-tree reader (Devicetree Specification
    /// v0.4 §5.4: structure block tokens), mapping each node's full path to
    /// its properties.
    fn parse(dtb: &[u8]) -> Tree {
        assert_eq!(be32(dtb, 0), 0xd00d_feed, "FDT magic");
        // QEMU pads its dumped blob; totalsize says how much is tree.
        assert!(be32(dtb, 4) as usize <= dtb.len(), "totalsize");
        let st = be32(dtb, 8) as usize;
        let strings = be32(dtb, 12) as usize;
        let mut tree = Tree::new();
        let mut path: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut p = st;
        let cstr = |off: usize| -> (String, usize) {
            let end = off + dtb[off..].iter().position(|&c| c == 0).unwrap();
            (String::from_utf8(dtb[off..end].to_vec()).unwrap(), end + 1)
        };
        let align = |x: usize| (x + 3) & !3;
        loop {
            let tok = be32(dtb, p);
            p += 4;
            match tok {
                1 => {
                    let (name, next) = cstr(p);
                    p = align(next);
                    path.push(name);
                    cur =
                        if path.len() == 1 { "/".into() } else { path[1..].iter().map(|n| format!("/{n}")).collect() };
                    assert!(tree.insert(cur.clone(), Props::new()).is_none(), "duplicate node {cur}");
                }
                2 => {
                    path.pop();
                    cur =
                        if path.len() <= 1 { "/".into() } else { path[1..].iter().map(|n| format!("/{n}")).collect() };
                }
                3 => {
                    let len = be32(dtb, p) as usize;
                    let nameoff = be32(dtb, p + 4) as usize;
                    let val = dtb[p + 8..p + 8 + len].to_vec();
                    p = align(p + 8 + len);
                    let (name, _) = cstr(strings + nameoff);
                    tree.get_mut(&cur).unwrap().insert(name, val);
                }
                4 => {}
                9 => break,
                t => panic!("bad FDT token {t}"),
            }
        }
        tree
    }

    fn strings(v: &[u8]) -> Vec<String> {
        v.split(|&c| c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8(s.to_vec()).unwrap()).collect()
    }

    fn cells(v: &[u8]) -> Vec<u32> {
        assert!(v.len() & 3 == 0, "not a cell array: {v:?}");
        v.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    fn phandles(t: &Tree) -> BTreeMap<u32, String> {
        t.iter().filter_map(|(p, props)| props.get("phandle").map(|v| (cells(v)[0], p.clone()))).collect()
    }

    /// A property with its phandles replaced by the paths they point to, so
    /// two trees with different phandle numbering compare equal.
    fn normalized(t: &Tree, ph: &BTreeMap<u32, String>, name: &str, v: &[u8]) -> String {
        let c = || cells(v);
        let p = |x: u32| ph.get(&x).cloned().unwrap_or_else(|| format!("<dangling phandle {x}>"));
        match name {
            "interrupt-parent" | "regmap" | "cpu" => p(c()[0]),
            "interrupts-extended" => {
                // Every interrupt parent here has #interrupt-cells = <1>.
                c().chunks(2)
                    .map(|pair| {
                        let target = p(pair[0]);
                        let n = t.get(&target).and_then(|n| n.get("#interrupt-cells")).map(|v| cells(v)[0]);
                        assert_eq!(n, Some(1), "{target} must have #interrupt-cells = <1>");
                        format!("{target}:{}", pair[1])
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
            _ => format!("{v:?}"),
        }
    }

    fn config(harts: u32) -> FdtConfig {
        FdtConfig {
            harts,
            isa_base: "rv64imafdc".into(),
            isa_extensions: ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zicntr"].map(String::from).to_vec(),
            mmu_type: "riscv,sv48".into(),
            board: strata_devices::board::VIRT,
            ram_size: 512 << 20,
            bootargs: "console=ttyS0 earlycon".into(),
            initrd: Some((0x8800_0000, 0x8812_3456)),
            virtio_mmio: (0..8).map(|n| (0x1000_1000 + n * 0x1000, n as u32 + 1)).collect(),
            tpm_log: None,
            iommu: false,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "strata-fdt-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn require_tool(tool: &str, package: &str) {
        let ok = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(
            matches!(ok, Ok(s) if s.success()),
            "`{tool}` is required by this test and was not found or does not run; \
             install the Debian package `{package}` (scripts/setup-host.sh does)"
        );
    }

    /// Decompiles `dtb` with dtc; returns the DTS text and dtc's stderr.
    fn dtc(dtb: &[u8]) -> (String, String) {
        require_tool("dtc", "device-tree-compiler");
        let path = tmp("ours.dtb");
        std::fs::write(&path, dtb).unwrap();
        let out = Command::new("dtc").args(["-I", "dtb", "-O", "dts"]).arg(&path).output().unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "dtc failed: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    }

    fn qemu_dtb(harts: u32) -> Vec<u8> {
        require_tool("qemu-system-riscv64", "qemu-system-misc");
        let path = tmp(&format!("qemu-smp{harts}.dtb"));
        let out = Command::new("qemu-system-riscv64")
            .arg("-M")
            .arg(format!("virt,dumpdtb={}", path.display()))
            .args(["-smp", &harts.to_string(), "-m", "512M", "-nographic", "-bios", "none"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let dtb = std::fs::read(&path);
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success() && dtb.is_ok(),
            "qemu-system-riscv64 did not dump its device tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dtb.unwrap()
    }

    #[test]
    fn cache_block_sizes_follow_the_cmo_extensions() {
        let mut cfg = config(1);
        let t = parse(&build_fdt(&cfg).unwrap());
        for p in ["riscv,cbom-block-size", "riscv,cbop-block-size", "riscv,cboz-block-size"] {
            assert!(!t["/cpus/cpu@0"].contains_key(p), "{p} without the extension");
        }
        cfg.isa_extensions.extend(["zicbom", "zicboz"].map(String::from));
        let t = parse(&build_fdt(&cfg).unwrap());
        let cpu = &t["/cpus/cpu@0"];
        assert_eq!(cells(&cpu["riscv,cbom-block-size"]), [64]);
        assert_eq!(cells(&cpu["riscv,cboz-block-size"]), [64]);
        assert!(!cpu.contains_key("riscv,cbop-block-size"));
    }

    #[test]
    fn structure_and_values() {
        let cfg = config(2);
        let t = parse(&build_fdt(&cfg).unwrap());
        let ph = phandles(&t);
        let get = |path: &str, prop: &str| -> Vec<u8> {
            t.get(path)
                .unwrap_or_else(|| panic!("no node {path}"))
                .get(prop)
                .unwrap_or_else(|| panic!("no {path}:{prop}"))
                .clone()
        };
        let n = |path: &str, prop: &str| normalized(&t, &ph, prop, &get(path, prop));

        assert_eq!(strings(&get("/chosen", "bootargs")), ["console=ttyS0 earlycon"]);
        assert_eq!(strings(&get("/chosen", "stdout-path")), ["/soc/serial@10000000"]);
        assert_eq!(get("/chosen", "linux,initrd-start"), 0x8800_0000u64.to_be_bytes());
        assert_eq!(get("/chosen", "linux,initrd-end"), 0x8812_3456u64.to_be_bytes());
        assert_eq!(cells(&get("/memory@80000000", "reg")), [0, 0x8000_0000, 0, 0x2000_0000]);
        assert_eq!(cells(&get("/cpus", "timebase-frequency")), [10_000_000]);

        for h in 0..2 {
            let cpu = format!("/cpus/cpu@{h}");
            assert_eq!(cells(&get(&cpu, "reg")), [h]);
            assert_eq!(strings(&get(&cpu, "riscv,isa")), ["rv64imafdc_zicsr_zifencei_zicntr"]);
            assert_eq!(strings(&get(&cpu, "riscv,isa-base")), ["rv64i"]);
            assert_eq!(strings(&get(&cpu, "riscv,isa-extensions")), cfg.isa_extensions);
            assert_eq!(strings(&get(&cpu, "mmu-type")), ["riscv,sv48"]);
            let intc = format!("{cpu}/interrupt-controller");
            assert_eq!(strings(&get(&intc, "compatible")), ["riscv,cpu-intc"]);
            assert_eq!(n(&format!("/cpus/cpu-map/cluster0/core{h}"), "cpu"), cpu);
        }
        let i0 = "/cpus/cpu@0/interrupt-controller";
        let i1 = "/cpus/cpu@1/interrupt-controller";
        assert_eq!(n("/soc/clint@2000000", "interrupts-extended"), format!("{i0}:3 {i0}:7 {i1}:3 {i1}:7"));
        assert_eq!(n("/soc/plic@c000000", "interrupts-extended"), format!("{i0}:11 {i0}:9 {i1}:11 {i1}:9"));
        assert_eq!(cells(&get("/soc/plic@c000000", "riscv,ndev")), [95]);
        assert_eq!(cells(&get("/soc/plic@c000000", "reg")), [0, 0x0c00_0000, 0, 0x60_0000]);
        assert_eq!(n("/soc/serial@10000000", "interrupt-parent"), "/soc/plic@c000000");
        assert_eq!(cells(&get("/soc/serial@10000000", "interrupts")), [10]);
        assert_eq!(cells(&get("/soc/serial@10000000", "clock-frequency")), [0x38_4000]);
        assert_eq!(cells(&get("/soc/rtc@101000", "interrupts")), [11]);
        assert_eq!(cells(&get("/soc/virtio_mmio@10008000", "interrupts")), [8]);
        assert_eq!(cells(&get("/soc/virtio_mmio@10008000", "reg")), [0, 0x1000_8000, 0, 0x1000]);
        assert_eq!(n("/poweroff", "regmap"), "/soc/test@100000");
        assert_eq!(cells(&get("/poweroff", "value")), [0x5555]);
        assert_eq!(cells(&get("/reboot", "value")), [0x7777]);
    }

    /// Issue 12 item 12: every tree carries its own entropy for the guest
    /// kernel, of the sizes Linux takes: `rng-seed` of at least 32 bytes
    /// (its CRNG needs 256 credited bits; QEMU gives exactly 32) and
    /// `kaslr-seed` of exactly 8 (`get_kaslr_seed` ignores any other size).
    #[test]
    fn item12_chosen_has_fresh_seeds_of_the_sizes_linux_takes() {
        let cfg = config(1);
        let seeds = |dtb: Vec<u8>| {
            let t = parse(&dtb);
            let chosen = &t["/chosen"];
            let get = |p: &str| chosen.get(p).unwrap_or_else(|| panic!("no /chosen/{p}")).clone();
            (get("rng-seed"), get("kaslr-seed"))
        };
        let (rng1, kaslr1) = seeds(build_fdt(&cfg).unwrap());
        let (rng2, kaslr2) = seeds(build_fdt(&cfg).unwrap());
        assert_eq!(rng1.len(), 32, "rng-seed: 256 bits, what Linux needs before `crng init done`");
        assert_eq!(kaslr1.len(), 8, "kaslr-seed: one 64-bit cell pair");
        // 2^-256 and 2^-64 chances of a false failure.
        assert_ne!(rng1, rng2, "two trees must not share their rng-seed");
        assert_ne!(kaslr1, kaslr2, "two trees must not share their kaslr-seed");
        assert!(rng1.iter().any(|&b| b != 0) && kaslr1.iter().any(|&b| b != 0), "seeds are not zero");
    }

    /// The TPM node and its event log's reservation appear only with a
    /// TPM; the measured tree is the real one with the seeds zeroed.
    #[test]
    fn tpm_node_and_measured_tree() {
        let mut cfg = config(1);
        let t = parse(&build_fdt(&cfg).unwrap());
        assert!(!t.keys().any(|k| k.contains("tpm")), "no TPM node without a TPM");
        cfg.tpm_log = Some((0x9fe0_0000, 0x1_0000));
        let (real, measured) = build_fdt_measured(&cfg).unwrap();
        let t = parse(&real);
        let tpm = &t["/soc/tpm@4000000"];
        assert_eq!(strings(&tpm["compatible"]), ["tcg,tpm-tis-mmio"]);
        assert_eq!(cells(&tpm["reg"]), [0, 0x0400_0000, 0, 0x5000]);
        assert_eq!(tpm["linux,sml-base"], 0x9fe0_0000u64.to_be_bytes());
        assert_eq!(tpm["linux,sml-size"], 0x1_0000u32.to_be_bytes());
        assert!(!tpm.contains_key("interrupts"), "polled: no interrupt");
        let log = &t["/reserved-memory/tpm-event-log@9fe00000"];
        assert_eq!(cells(&log["reg"]), [0, 0x9fe0_0000, 0, 0x1_0000]);
        assert!(!log.contains_key("no-map"), "Linux reads the log through its linear map");
        assert_eq!(tpm["memory-region"], log["phandle"]);
        let mut zeroed = t.clone();
        let chosen = zeroed.get_mut("/chosen").unwrap();
        chosen.insert("rng-seed".into(), vec![0; 32]);
        chosen.insert("kaslr-seed".into(), vec![0; 8]);
        assert_eq!(parse(&measured), zeroed);
        assert_eq!(real.len(), measured.len());
        assert_ne!(real, measured);
    }

    #[test]
    fn iommu_node_and_the_virtio_masters_behind_it() {
        let mut cfg = config(1);
        let plain = parse(&build_fdt_measured(&cfg).unwrap().1);
        assert!(!plain.keys().any(|k| k.contains("iommu")), "no IOMMU node without --iommu");
        assert!(!plain.values().any(|p| p.contains_key("iommus")));
        cfg.iommu = true;
        let t = parse(&build_fdt_measured(&cfg).unwrap().1);
        let n = &t["/soc/iommu@3010000"];
        assert_eq!(strings(&n["compatible"]), ["riscv,iommu"]);
        assert_eq!(cells(&n["reg"]), [0, 0x301_0000, 0, 0x1000]);
        assert_eq!(cells(&n["#iommu-cells"]), [1]);
        assert_eq!(cells(&n["interrupts"]), [36, 37, 38, 39]);
        let phandle = cells(&n["phandle"])[0];
        for slot in 0..8u32 {
            let v = &t[&format!("/soc/virtio_mmio@{:x}", 0x1000_1000 + slot * 0x1000)];
            assert_eq!(cells(&v["iommus"]), [phandle, slot + 1], "slot {slot}");
        }
        // Nothing else changed.
        let mut without = t.clone();
        without.remove("/soc/iommu@3010000");
        for p in without.values_mut() {
            p.remove("iommus");
        }
        assert_eq!(without, plain);
    }

    #[test]
    fn optional_chosen_properties_and_bad_configs() {
        let mut cfg = config(1);
        cfg.bootargs.clear();
        cfg.initrd = None;
        cfg.virtio_mmio.clear();
        let t = parse(&build_fdt(&cfg).unwrap());
        let chosen = &t["/chosen"];
        assert!(!chosen.contains_key("bootargs") && !chosen.contains_key("linux,initrd-start"));
        assert!(!t.keys().any(|p| p.contains("virtio")));

        type Breaker = Box<dyn Fn(&mut FdtConfig)>;
        let bad: Vec<(&str, Breaker)> = vec![
            ("no harts", Box::new(|c| c.harts = 0)),
            ("too many harts", Box::new(|c| c.harts = PLIC_MAX_HARTS + 1)),
            ("bad base", Box::new(|c| c.isa_base = "rv128i".into())),
            ("letters disagree", Box::new(|c| c.isa_extensions.retain(|e| e != "c"))),
            ("extra letter", Box::new(|c| c.isa_extensions.push("h".into()))),
            ("bad ext name", Box::new(|c| c.isa_extensions.push("Zicsr".into()))),
            ("irq 0", Box::new(|c| c.virtio_mmio = vec![(0x1000_1000, 0)])),
            ("irq 96", Box::new(|c| c.virtio_mmio = vec![(0x1000_1000, 96)])),
            ("dup slot", Box::new(|c| c.virtio_mmio = vec![(0x1000_1000, 1), (0x1000_1000, 2)])),
            ("initrd backwards", Box::new(|c| c.initrd = Some((2, 1)))),
            ("no ram", Box::new(|c| c.ram_size = 0)),
        ];
        for (what, f) in bad {
            let mut c = config(1);
            f(&mut c);
            assert!(build_fdt(&c).is_err(), "{what} accepted");
        }
    }

    #[test]
    fn dtc_accepts_it_without_warnings() {
        for harts in [1, 2, 8] {
            let (dts, stderr) = dtc(&build_fdt(&config(harts)).unwrap());
            assert!(stderr.trim().is_empty(), "dtc complained about our {harts}-hart tree:\n{stderr}");
            assert!(dts.contains("riscv,isa = \"rv64imafdc_zicsr_zifencei_zicntr\";"));
            assert!(dts.contains(&format!("cpu@{:x} {{", harts - 1)));
        }
    }

    /// QEMU `virt` nodes we do not create, and why.
    const QEMU_ONLY: &[(&str, &str)] = &[
        ("/pmu", "no SBI PMU event mapping: Strata has no programmable hpm counters"),
        ("/fw-cfg@10100000", "QEMU's firmware configuration interface; Strata loads images itself"),
        ("/flash@20000000", "no parallel flash; firmware and kernel are loaded into RAM"),
        ("/platform-bus@4000000", "QEMU's dynamic sysbus device area"),
        ("/soc/pci@30000000", "no PCIe host bridge; devices are virtio-mmio"),
    ];

    /// Properties whose values we deliberately differ on.
    const VALUE_DIFFERS: &[(&str, &str)] = &[
        ("riscv,isa", "each board advertises its own extensions"),
        ("phandle", "numbering is arbitrary; references are compared by target path"),
        ("riscv,ndev", "QEMU 7.2 says 96; the highest source ID is 95 (sources 1..=95)"),
        ("model", "names the board"),
        ("rng-seed", "fresh random bytes in every tree (their size must agree)"),
        ("kaslr-seed", "fresh random bytes in every tree (QEMU 7.2's riscv virt has none)"),
    ];

    fn compare_with_qemu(harts: u32) {
        let mut cfg = config(harts);
        // QEMU's tree for a plain `-M virt` has no command line or initrd.
        cfg.bootargs.clear();
        cfg.initrd = None;
        let ours = parse(&build_fdt(&cfg).unwrap());
        let qemu = parse(&qemu_dtb(harts));
        let (oph, qph) = (phandles(&ours), phandles(&qemu));

        for (path, props) in &ours {
            let q = qemu.get(path).unwrap_or_else(|| panic!("-smp {harts}: our node {path} is not in QEMU's tree"));
            if let Some(c) = props.get("compatible") {
                let theirs = q.get("compatible").map(|v| strings(v)).unwrap_or_default();
                for s in strings(c) {
                    assert!(theirs.contains(&s), "-smp {harts}: {path}: compatible {s:?} not in QEMU's {theirs:?}");
                }
            }
            // Properties both trees have must agree (up to phandle numbering).
            for (name, v) in props {
                if let (true, Some(qv)) = (name.ends_with("-seed"), q.get(name)) {
                    assert_eq!(v.len(), qv.len(), "-smp {harts}: {path}:{name} has another size than QEMU's");
                }
                if name == "compatible" || VALUE_DIFFERS.iter().any(|(n, _)| n == name) {
                    continue;
                }
                if let Some(qv) = q.get(name) {
                    assert_eq!(
                        normalized(&ours, &oph, name, v),
                        normalized(&qemu, &qph, name, qv),
                        "-smp {harts}: {path}:{name} differs from QEMU"
                    );
                }
            }
        }
        for path in qemu.keys() {
            let left_out = QEMU_ONLY.iter().any(|(p, _)| path == p || path.starts_with(&format!("{p}/")));
            assert!(left_out || ours.contains_key(path), "-smp {harts}: QEMU's node {path} is missing from ours");
        }
    }

    #[test]
    fn matches_qemu_virt_smp1() {
        compare_with_qemu(1);
    }

    #[test]
    fn matches_qemu_virt_smp2() {
        compare_with_qemu(2);
    }

    #[test]
    fn matches_qemu_virt_smp4() {
        compare_with_qemu(4);
    }
}

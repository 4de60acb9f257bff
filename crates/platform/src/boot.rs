//! Placing the boot images in guest RAM: firmware, kernel, initrd, the
//! device tree and OpenSBI's `fw_dynamic_info` — the layout QEMU's `virt`
//! board uses, shared by the bare machine and by VMs under Strata's
//! hypervisor.

use std::path::Path;

use crate::fdt::{self, FdtConfig};
use crate::loader::{self, HostFile, ImageKind, Layout as Misfit, LoadError, LoadTarget, Source, Unusable};
use crate::machine::Layout;
use crate::measure::{
    sha256, EventType, Hasher, Measurements, Sha256Digest, EVENT_LOG_SIZE, PCR_CMDLINE, PCR_DEVICE_TREE, PCR_FIRMWARE,
    PCR_INITRD, PCR_KERNEL,
};

/// `struct fw_dynamic_info` (OpenSBI include/sbi/fw_dynamic.h), version 2.
const FW_DYNAMIC_MAGIC: u64 = 0x4942_534f;
const FW_DYNAMIC_VERSION: u64 = 2;
const NEXT_MODE_S: u64 = 1;

const MIB: u64 = 1 << 20;
/// The device tree's slot at the top of RAM.
pub const DTB_MAX: u64 = 64 * 1024;

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

pub struct BootConfig<'a> {
    /// Firmware (OpenSBI `fw_dynamic`), or `None`.
    pub bios: Option<&'a Path>,
    pub kernel: &'a Path,
    pub initrd: Option<&'a Path>,
    pub append: &'a str,
    /// The SBI comes from outside RAM (Strata's hypervisor), so a Linux
    /// Image may boot without firmware.
    pub sbi_provided: bool,
    /// The device tree to build; `bootargs` and `initrd` are filled in here.
    pub fdt: FdtConfig,
}

/// Loads the images into `ram` and returns where they went. Each file is
/// opened and checked (a regular file, no larger than the RAM it goes
/// into, its headers consistent) before its bytes are read.
pub fn load(ram: &dyn LoadTarget, cfg: &BootConfig) -> Result<Layout, LoadError> {
    Ok(load_with(ram, cfg, false)?.0)
}

/// [`load`], and the device tree as a VM's evidence measures it: the bytes
/// loaded at `Layout::dtb` with `/chosen/rng-seed` and `kaslr-seed` zeroed
/// (strata_hypervisor::attest).
pub fn load_for_vm(ram: &dyn LoadTarget, cfg: &BootConfig) -> Result<(Layout, Vec<u8>), LoadError> {
    let (layout, _, dtb_measured) = load_with(ram, cfg, false)?;
    Ok((layout, dtb_measured))
}

/// [`load`] for a board with a TPM: also reserves the event log's region
/// (just below `fw_dynamic_info`, above the initrd), names it in the TPM's
/// device-tree node, measures every image (crate::measure has the table)
/// and writes the event log there. The PCRs are extended by the caller.
pub fn load_measured(ram: &dyn LoadTarget, cfg: &BootConfig) -> Result<(Layout, Measurements), LoadError> {
    let (layout, m, _) = load_with(ram, cfg, true)?;
    Ok((layout, m.expect("measured")))
}

/// SHA-256 of a whole host file, read in pieces.
fn file_digest(f: &HostFile) -> Result<Sha256Digest, LoadError> {
    const CHUNK: u64 = 1 << 20;
    let mut h = Hasher::default();
    let mut off = 0;
    while off < f.len() {
        let n = CHUNK.min(f.len() - off);
        h.update(&f.read_at(off, n)?);
        off += n;
    }
    Ok(h.finish())
}

fn load_with(
    ram: &dyn LoadTarget,
    cfg: &BootConfig,
    measure: bool,
) -> Result<(Layout, Option<Measurements>, Vec<u8>), LoadError> {
    let mut m = Measurements::default();
    let base = ram.base();
    let room = ram.end() - base;
    let room_text = format!("the {} of guest RAM it must fit in (-m)", crate::size::human(room));
    let kernel = HostFile::open("kernel", cfg.kernel)?;
    let kernel_head = kernel.head(loader::HEAD)?;
    loader::check_not_foreign(kernel.name(), &kernel_head)?;
    let kind = loader::classify(&kernel_head);
    if kind != ImageKind::Elf {
        // An ELF file may carry much besides its segments (debug
        // information); its segments are checked one by one.
        kernel.check_size(room, &room_text)?;
    }
    let mut layout = Layout::default();
    let mut fw_end = base;
    let firmware_entry = match cfg.bios {
        Some(path) => {
            let fw = HostFile::open("firmware", path)?;
            let head = fw.head(loader::HEAD)?;
            loader::check_not_foreign(fw.name(), &head)?;
            let l = match loader::classify(&head) {
                ImageKind::Elf => loader::load_elf(ram, &fw)?,
                ImageKind::LinuxImage => {
                    return Err(LoadError::Unusable { what: fw.name().to_string(), kind: Unusable::KernelAsFirmware })
                }
                ImageKind::Raw => {
                    fw.check_size(room, &room_text)?;
                    loader::load_raw(ram, &fw, base)?
                }
            };
            fw_end = l.end;
            if measure {
                m.push(PCR_FIRMWARE, EventType::PostCode, file_digest(&fw)?, b"firmware");
            }
            Some(l.entry)
        }
        None => None,
    };
    let kernel_digest = if measure { Some(file_digest(&kernel)?) } else { None };
    let kernel = match kind {
        ImageKind::Elf => loader::load_elf(ram, &kernel)?,
        ImageKind::LinuxImage => {
            if firmware_entry.is_none() && !cfg.sbi_provided {
                return Err(LoadError::Layout(Misfit::NeedsFirmware));
            }
            // RV64 kernels want a 2 MiB aligned load address above the
            // firmware (boot-image-header.rst); without firmware, the same
            // place, as QEMU leaves the first 2 MiB to OpenSBI.
            let at = if firmware_entry.is_some() { align_up(fw_end, 2 * MIB) } else { base + 2 * MIB };
            loader::load_linux_image(ram, &kernel, at)?
        }
        ImageKind::Raw => {
            if firmware_entry.is_some() {
                loader::load_raw(ram, &kernel, align_up(fw_end, 2 * MIB))?
            } else {
                return Err(LoadError::Unusable { what: kernel.name().to_string(), kind: Unusable::Unknown });
            }
        }
    };
    if firmware_entry.is_some() && kernel.start < fw_end {
        return Err(LoadError::Layout(Misfit::KernelOverlapsFirmware));
    }
    layout.kernel = (kernel.start, kernel.end);

    // The device tree goes at the top of RAM, 2 MiB aligned as QEMU places
    // it; fw_dynamic_info and the initrd go below it.
    let initrd = match cfg.initrd {
        Some(p) => {
            let f = HostFile::open("initrd", p)?;
            f.check_size(room, &room_text)?;
            if f.is_empty() {
                return Err(LoadError::Unusable { what: f.name().to_string(), kind: Unusable::Empty });
            }
            Some(f)
        }
        None => None,
    };
    let dtb_slot = (ram.end() - DTB_MAX) & !(2 * MIB - 1);
    let info_addr = dtb_slot - 0x1000;
    // The event log's region, if any, between fw_dynamic_info and the initrd.
    let tpm_log = measure.then(|| (info_addr.saturating_sub(EVENT_LOG_SIZE), EVENT_LOG_SIZE));
    let mut low_limit = tpm_log.map_or(info_addr, |(base, _)| base);
    if tpm_log.is_some_and(|(base, _)| base < kernel.end) {
        return Err(LoadError::Layout(Misfit::NoRoomForKernel { kernel_end: kernel.end }));
    }
    let mut initrd_digest = None;
    if let Some(f) = &initrd {
        let start = (low_limit.saturating_sub(f.len())) & !0xfff;
        if start < kernel.end || start < base {
            return Err(LoadError::Layout(Misfit::NoRoomForInitrd {
                kernel_end: kernel.end,
                size: f.len(),
                below: low_limit,
            }));
        }
        // Checked to fit: now read it.
        let d = f.read_at(0, f.len())?;
        if measure {
            initrd_digest = Some(sha256(&d));
        }
        ram.write(start, &d).map_err(|e| e.within("initrd"))?;
        layout.initrd = Some((start, start + d.len() as u64));
        low_limit = start;
    }
    if kernel.end > low_limit {
        return Err(LoadError::Layout(Misfit::NoRoomForKernel { kernel_end: kernel.end }));
    }
    let fdt_cfg = FdtConfig { bootargs: cfg.append.to_string(), initrd: layout.initrd, tpm_log, ..cfg.fdt.clone() };
    let (dtb, measured) = fdt::build_fdt_measured(&fdt_cfg).map_err(LoadError::Fdt)?;
    if let Some((log_base, _)) = tpm_log {
        // The order of the module table in crate::measure.
        m.push(PCR_DEVICE_TREE, EventType::TableOfDevices, sha256(&measured), b"devicetree");
        m.push(PCR_KERNEL, EventType::Ipl, kernel_digest.expect("measured"), b"kernel");
        m.push(PCR_CMDLINE, EventType::Ipl, sha256(cfg.append.as_bytes()), cfg.append.as_bytes());
        if let Some(d) = initrd_digest {
            m.push(PCR_INITRD, EventType::Ipl, d, b"initrd");
        }
        m.push_separators();
        let log = m.event_log();
        if log.len() as u64 > EVENT_LOG_SIZE {
            return Err(LoadError::Layout(Misfit::EventLogTooLarge));
        }
        ram.write(log_base, &log).map_err(|e| e.within("TPM event log"))?;
    }
    if dtb.len() as u64 > DTB_MAX {
        return Err(LoadError::Layout(Misfit::DeviceTreeTooLarge));
    }
    ram.write(dtb_slot, &dtb).map_err(|e| e.within("device tree"))?;
    layout.dtb = dtb_slot;

    layout.entry = match firmware_entry {
        Some(fw_entry) => {
            // fw_dynamic_info: magic, version, next_addr, next_mode,
            // options, boot_hart.
            let info = [FW_DYNAMIC_MAGIC, FW_DYNAMIC_VERSION, kernel.entry, NEXT_MODE_S, 0, 0];
            let bytes: Vec<u8> = info.iter().flat_map(|v| v.to_le_bytes()).collect();
            ram.write(info_addr, &bytes).map_err(|e| e.within("fw_dynamic_info"))?;
            layout.fw_dynamic_info = Some(info_addr);
            fw_entry
        }
        None => kernel.entry,
    };
    Ok((layout, measure.then_some(m), measured))
}

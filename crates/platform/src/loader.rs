//! Loaders for firmware, kernels and initrds.
//!
//! Every input is hostile until checked: a truncated, wrong-architecture or
//! oversized file is an error with a sentence that names the file, never a
//! panic or an out-of-bounds copy.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use strata_memory::GuestRam;

#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

fn err<T>(msg: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError(msg.into()))
}

pub fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| LoadError(format!("cannot read {what} {}: {e}", path.display())))
}

/// Where images are loaded: the board's RAM, or a [`Segments`] recorder
/// that keeps them for a hypervisor to copy into a VM later.
pub trait LoadTarget {
    /// The guest-physical range `base()..end()` images may occupy.
    fn base(&self) -> u64;
    fn end(&self) -> u64;
    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), LoadError>;
    fn zero(&self, addr: u64, len: u64) -> Result<(), LoadError>;

    fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base() && addr.checked_add(len).is_some_and(|e| e <= self.end())
    }
}

impl LoadTarget for GuestRam {
    fn base(&self) -> u64 {
        GuestRam::base(self)
    }
    fn end(&self) -> u64 {
        GuestRam::end(self)
    }
    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), LoadError> {
        self.write_bytes(addr, bytes).map_err(|e| LoadError(e.to_string()))
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), LoadError> {
        GuestRam::zero(self, addr, len).map_err(|e| LoadError(e.to_string()))
    }
}

/// Records what a loader writes, as (address, bytes) segments to apply in
/// order, for memory that starts out all zeros (a VM's fresh pages): so a
/// VM's images cost neither scratch RAM of the VM's size nor copies of the
/// kernel's BSS.
pub struct Segments {
    base: u64,
    end: u64,
    segs: RefCell<Vec<(u64, Vec<u8>)>>,
}

impl Segments {
    pub fn new(base: u64, size: u64) -> Self {
        Self { base, end: base.saturating_add(size), segs: RefCell::new(Vec::new()) }
    }

    /// The segments, in the order they must be written.
    pub fn into_segments(self) -> Vec<(u64, Vec<u8>)> {
        self.segs.into_inner()
    }
}

impl LoadTarget for Segments {
    fn base(&self) -> u64 {
        self.base
    }
    fn end(&self) -> u64 {
        self.end
    }
    fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), LoadError> {
        if !self.contains(addr, bytes.len() as u64) {
            return err(format!("{addr:#x}+{:#x} is outside guest RAM", bytes.len()));
        }
        self.segs.borrow_mut().push((addr, bytes.to_vec()));
        Ok(())
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), LoadError> {
        if !self.contains(addr, len) {
            return err(format!("{addr:#x}+{len:#x} is outside guest RAM"));
        }
        // The target starts zeroed: only bytes written earlier need it.
        for (at, bytes) in self.segs.borrow_mut().iter_mut() {
            let lo = addr.max(*at);
            let hi = (addr + len).min(*at + bytes.len() as u64);
            if lo < hi {
                bytes[(lo - *at) as usize..(hi - *at) as usize].fill(0);
            }
        }
        Ok(())
    }
}

/// What a loaded image asks the platform for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub entry: u64,
    /// Lowest and one-past-highest guest-physical addresses written.
    pub start: u64,
    pub end: u64,
}

/// The kinds of executable Strata recognizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// An ELF64 RISC-V executable, loaded at its physical addresses.
    Elf,
    /// A Linux RISC-V `Image` (possibly an EFI/PE application carrying the
    /// RISC-V header, as Debian ships it).
    LinuxImage,
    /// Anything else: a flat binary (firmware such as `fw_dynamic.bin`).
    Raw,
}

const EM_RISCV: u16 = 243;

pub fn classify(data: &[u8]) -> ImageKind {
    if data.starts_with(b"\x7fELF") {
        ImageKind::Elf
    } else if data.len() >= 0x40 && &data[0x38..0x3c] == b"RSC\x05" {
        ImageKind::LinuxImage
    } else {
        ImageKind::Raw
    }
}

fn u16le(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(off..off + 2)?.try_into().ok()?))
}
fn u32le(d: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(off..off + 4)?.try_into().ok()?))
}
fn u64le(d: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(off..off + 8)?.try_into().ok()?))
}

fn place(ram: &dyn LoadTarget, what: &str, addr: u64, bytes: &[u8], mem_size: u64) -> Result<(), LoadError> {
    if mem_size < bytes.len() as u64 || !ram.contains(addr, mem_size) {
        return err(format!(
            "{what} needs {:#x}..{:#x}, which is outside guest RAM {:#x}..{:#x} (try a larger -m)",
            addr,
            addr.saturating_add(mem_size),
            ram.base(),
            ram.end()
        ));
    }
    ram.write(addr, bytes).map_err(|e| LoadError(format!("{what}: {e}")))?;
    ram.zero(addr + bytes.len() as u64, mem_size - bytes.len() as u64).map_err(|e| LoadError(format!("{what}: {e}")))
}

/// Loads an ELF64 little-endian RISC-V executable by its program headers'
/// physical addresses (what QEMU's `virt` board does for `-kernel x.elf`).
pub fn load_elf(ram: &dyn LoadTarget, what: &str, d: &[u8]) -> Result<Loaded, LoadError> {
    let bad = |why: &str| LoadError(format!("{what} is not a usable ELF file: {why}"));
    if d.len() < 64 {
        return Err(bad("truncated header"));
    }
    if d[4] != 2 {
        return Err(bad("not a 64-bit ELF (ELFCLASS64 expected)"));
    }
    if d[5] != 1 {
        return Err(bad("not little-endian"));
    }
    let machine = u16le(d, 18).ok_or_else(|| bad("truncated header"))?;
    if machine != EM_RISCV {
        return Err(bad(&format!("built for machine {machine}, not RISC-V ({EM_RISCV})")));
    }
    let entry = u64le(d, 24).ok_or_else(|| bad("truncated header"))?;
    let phoff = u64le(d, 32).ok_or_else(|| bad("truncated header"))? as usize;
    let phentsize = u16le(d, 54).ok_or_else(|| bad("truncated header"))? as usize;
    let phnum = u16le(d, 56).ok_or_else(|| bad("truncated header"))? as usize;
    if phentsize < 56 {
        return Err(bad("program header entries too small"));
    }
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or_else(|| bad("header table overflows"))?)
            .ok_or_else(|| bad("header table overflows"))?;
        let p_type = u32le(d, ph).ok_or_else(|| bad("truncated program headers"))?;
        if p_type != 1 {
            continue; // only PT_LOAD occupies memory
        }
        let off = u64le(d, ph + 8).ok_or_else(|| bad("truncated program headers"))?;
        let paddr = u64le(d, ph + 24).ok_or_else(|| bad("truncated program headers"))?;
        let filesz = u64le(d, ph + 32).ok_or_else(|| bad("truncated program headers"))?;
        let memsz = u64le(d, ph + 40).ok_or_else(|| bad("truncated program headers"))?;
        let end = off.checked_add(filesz).ok_or_else(|| bad("segment overflows"))?;
        let bytes = d.get(off as usize..end as usize).ok_or_else(|| bad("segment runs past the end of the file"))?;
        place(ram, what, paddr, bytes, memsz.max(filesz))?;
        if memsz > 0 {
            lo = lo.min(paddr);
            hi = hi.max(paddr + memsz);
        }
    }
    if lo == u64::MAX {
        return Err(bad("no loadable segments"));
    }
    Ok(Loaded { entry, start: lo, end: hi })
}

/// Loads a Linux RISC-V `Image` at `addr`, which must be 2 MiB aligned for
/// RV64 (Documentation/arch/riscv/boot-image-header.rst). The header's
/// `image_size` (offset 0x10) is the memory the kernel occupies including
/// its BSS, so the whole of it must fit in RAM.
pub fn load_linux_image(ram: &dyn LoadTarget, what: &str, d: &[u8], addr: u64) -> Result<Loaded, LoadError> {
    if d.len() < 0x40 || &d[0x38..0x3c] != b"RSC\x05" {
        return err(format!("{what} is not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 0x38)"));
    }
    let image_size = u64le(d, 0x10).unwrap_or(0).max(d.len() as u64);
    place(ram, what, addr, d, image_size)?;
    Ok(Loaded { entry: addr, start: addr, end: addr + image_size })
}

/// Loads a flat binary at `addr`.
pub fn load_raw(ram: &dyn LoadTarget, what: &str, d: &[u8], addr: u64) -> Result<Loaded, LoadError> {
    if d.is_empty() {
        return err(format!("{what} is empty"));
    }
    place(ram, what, addr, d, d.len() as u64)?;
    Ok(Loaded { entry: addr, start: addr, end: addr + d.len() as u64 })
}

/// Rejects files that are plainly executables for another machine, which
/// would otherwise load as a "flat binary" and run garbage.
pub fn check_not_foreign(what: &str, d: &[u8]) -> Result<(), LoadError> {
    if d.starts_with(b"MZ") && !(d.len() >= 0x40 && &d[0x38..0x3c] == b"RSC\x05") {
        return err(format!("{what} is a PE/EFI executable without the RISC-V Image header (wrong architecture?)"));
    }
    if d.len() > 0x206 && &d[0x202..0x206] == b"HdrS" {
        return err(format!("{what} is an x86 Linux bzImage, not a RISC-V image"));
    }
    if d.starts_with(b"\x7fELF") {
        // ELF files go through load_elf, which checks e_machine.
        return Ok(());
    }
    if d.starts_with(&[0x1f, 0x8b]) || d.starts_with(b"\xfd7zXZ") || d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return err(format!("{what} is compressed (gzip/xz/zstd); decompress it first"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> GuestRam {
        GuestRam::new(0x8000_0000, 0x40_0000).unwrap()
    }

    /// Loading into a recorder and applying its segments to zeroed RAM
    /// gives the same bytes as loading into that RAM directly.
    #[test]
    fn segments_replay_to_what_a_direct_load_writes() {
        let ops: [(u64, u64, Option<u8>); 5] = [
            (0x8000_1000, 0x3000, Some(0xaa)),
            (0x8000_2000, 0x800, None), // zeroes part of the first
            (0x8000_2400, 0x10, Some(0x55)),
            (0x8000_0ff0, 0x20, None), // straddles the first's start
            (0x8030_0000, 0x100, Some(0x11)),
        ];
        let direct = ram();
        let rec = Segments::new(0x8000_0000, 0x40_0000);
        for &(addr, len, byte) in &ops {
            let t: [&dyn LoadTarget; 2] = [&direct, &rec];
            for t in t {
                match byte {
                    Some(b) => t.write(addr, &vec![b; len as usize]).unwrap(),
                    None => t.zero(addr, len).unwrap(),
                }
            }
        }
        let replayed = ram();
        for (addr, bytes) in rec.into_segments() {
            replayed.write_bytes(addr, &bytes).unwrap();
        }
        let (mut a, mut b) = (vec![0u8; 0x40_0000], vec![0u8; 0x40_0000]);
        direct.read_bytes(0x8000_0000, &mut a).unwrap();
        replayed.read_bytes(0x8000_0000, &mut b).unwrap();
        assert!(a == b, "replayed segments differ from a direct load");
        assert_eq!(a[0x2000], 0, "the zeroing after the write took effect");
        assert_eq!((a[0x100f], a[0x1010]), (0, 0xaa), "the straddling zeroing ends where it should");
    }

    #[test]
    fn segments_refuse_writes_outside_ram() {
        let rec = Segments::new(0x8000_0000, 0x1000);
        assert!(rec.write(0x8000_0ff0, &[0; 0x20]).is_err());
        assert!(rec.zero(0x7fff_f000, 0x10).is_err());
        assert!(rec.write(u64::MAX - 4, &[0; 8]).is_err());
    }

    fn elf(machine: u16, paddr: u64, payload: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 64 + 56];
        d[0..4].copy_from_slice(b"\x7fELF");
        d[4] = 2;
        d[5] = 1;
        d[18..20].copy_from_slice(&machine.to_le_bytes());
        d[24..32].copy_from_slice(&paddr.to_le_bytes());
        d[32..40].copy_from_slice(&64u64.to_le_bytes());
        d[54..56].copy_from_slice(&56u16.to_le_bytes());
        d[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        d[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        d[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        d[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        d[ph + 32..ph + 40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        d[ph + 40..ph + 48].copy_from_slice(&(payload.len() as u64 + 16).to_le_bytes());
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn loads_a_riscv_elf_and_zeroes_bss() {
        let r = ram();
        r.store(0x8000_1004, 4, 0xffff_ffff).unwrap();
        let l = load_elf(&r, "test", &elf(EM_RISCV, 0x8000_1000, &[0x13, 0, 0, 0])).unwrap();
        assert_eq!(l, Loaded { entry: 0x8000_1000, start: 0x8000_1000, end: 0x8000_1014 });
        assert_eq!(r.load(0x8000_1000, 4).unwrap(), 0x13);
        assert_eq!(r.load(0x8000_1004, 4).unwrap(), 0, "bss zeroed");
    }

    #[test]
    fn rejects_bad_elves() {
        let r = ram();
        let e = load_elf(&r, "k", &elf(62, 0x8000_0000, &[0; 4])).unwrap_err();
        assert!(e.0.contains("not RISC-V"), "{e}");
        let mut t = elf(EM_RISCV, 0x8000_0000, &[0; 4]);
        t.truncate(100);
        assert!(load_elf(&r, "k", &t).unwrap_err().0.contains("truncated"));
        let e = load_elf(&r, "k", &elf(EM_RISCV, 0x1000, &[0; 4])).unwrap_err();
        assert!(e.0.contains("outside guest RAM"), "{e}");
        let e = load_elf(&r, "k", &elf(EM_RISCV, u64::MAX - 2, &[0; 4])).unwrap_err();
        assert!(e.0.contains("outside guest RAM"), "{e}");
    }

    #[test]
    fn linux_image_header_is_checked_and_sized() {
        let r = ram();
        let mut img = vec![0u8; 0x100];
        assert!(load_linux_image(&r, "k", &img, 0x8020_0000).is_err());
        img[0x38..0x3c].copy_from_slice(b"RSC\x05");
        img[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(classify(&img), ImageKind::LinuxImage);
        let l = load_linux_image(&r, "k", &img, 0x8020_0000).unwrap();
        assert_eq!(l.end, 0x8020_1000);
        img[0x10..0x18].copy_from_slice(&0x100_0000u64.to_le_bytes());
        assert!(load_linux_image(&r, "k", &img, 0x8020_0000).unwrap_err().0.contains("larger -m"));
    }

    #[test]
    fn foreign_and_compressed_files_are_named() {
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(check_not_foreign("k", &bz).unwrap_err().0.contains("x86"));
        assert!(check_not_foreign("k", &[0x1f, 0x8b, 8, 0]).unwrap_err().0.contains("compressed"));
        assert!(check_not_foreign("k", b"MZ\0\0").is_err());
        assert!(check_not_foreign("k", &[0x97, 0x02, 0, 0]).is_ok());
    }
}

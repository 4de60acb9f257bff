//! Loaders for firmware, kernels and initrds.
//!
//! Every input is hostile until checked: a truncated, wrong-architecture or
//! oversized file is an error with a sentence that names the file, never a
//! panic or an out-of-bounds copy.

use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use strata_memory::GuestRam;

/// Why an image could not be loaded. Each variant's message names the
/// file ("kernel /x/Image") and says what is wrong with it in one line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The host would not open or read the file.
    #[error("cannot read {name}: {reason}")]
    Read { name: String, reason: String },
    /// A directory, device, FIFO or socket where a regular file belongs.
    #[error("{name} is {kind}; give a regular file")]
    NotRegular { name: String, kind: &'static str },
    /// Larger than the room it must fit in.
    #[error("{name} is {}, larger than {room}", crate::size::human(*size))]
    TooLarge { name: String, size: u64, room: String },
    /// A read past the end of the image.
    #[error("{name}: {off:#x}+{len:#x} is past its end")]
    PastEnd { name: String, off: u64, len: u64 },
    /// A write outside the load target (a VM's RAM being recorded).
    #[error("{addr:#x}+{len:#x} is outside guest RAM")]
    OutsideTarget { addr: u64, len: u64 },
    /// A write outside the board's RAM.
    #[error(transparent)]
    Ram(#[from] strata_memory::OutOfRange),
    /// An image whose headers ask for memory outside guest RAM.
    #[error("{what} needs {addr:#x}..{:#x}, which is outside guest RAM {base:#x}..{end:#x} (try a larger -m)", addr.saturating_add(*size))]
    NoRoom { what: String, addr: u64, size: u64, base: u64, end: u64 },
    /// An ELF file or Linux Image whose headers are inconsistent.
    #[error("{what} is not a usable {format}: {why}")]
    Malformed { what: String, format: Format, why: String },
    /// Not an image Strata can load at all, or not in this role.
    #[error("{what} is {kind}")]
    Unusable { what: String, kind: Unusable },
    /// The images do not fit together in guest RAM.
    #[error("{0}")]
    Layout(Layout),
    /// The device tree could not be built.
    #[error("{0}")]
    Fdt(String),
    /// `what` ("initrd", "VM a") failed as `source` says.
    #[error("{what}: {source}")]
    In { what: String, source: Box<LoadError> },
}

impl LoadError {
    /// This error, prefixed with what it happened to.
    pub fn within(self, what: impl Into<String>) -> LoadError {
        LoadError::In { what: what.into(), source: Box::new(self) }
    }
}

/// The two executable formats whose headers Strata checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Elf,
    LinuxImage,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Elf => "ELF file",
            Format::LinuxImage => "RISC-V Linux Image",
        })
    }
}

/// What an unusable image turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    Empty,
    /// A PE/EFI file without the RISC-V Image header.
    ForeignPe,
    X86BzImage,
    Compressed,
    /// Asked to load as a Linux Image, without its magic.
    NoImageMagic,
    /// A Linux Image given as firmware.
    KernelAsFirmware,
    /// A flat binary given as the kernel with no firmware to run it.
    Unknown,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unusable::Empty => "empty",
            Unusable::ForeignPe => "a PE/EFI executable without the RISC-V Image header (wrong architecture?)",
            Unusable::X86BzImage => "an x86 Linux bzImage, not a RISC-V image",
            Unusable::Compressed => "compressed (gzip/xz/zstd); decompress it first",
            Unusable::NoImageMagic => "not a RISC-V Linux Image (no \"RSC\\x05\" magic at offset 0x38)",
            Unusable::KernelAsFirmware => "a Linux kernel, not firmware",
            Unusable::Unknown => "neither an ELF file nor a RISC-V Linux Image",
        })
    }
}

/// How the boot images failed to fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A Linux Image with neither firmware nor a hypervisor's SBI.
    NeedsFirmware,
    KernelOverlapsFirmware,
    /// The initrd of `size` bytes does not fit between the kernel's end and
    /// `below`.
    NoRoomForInitrd {
        kernel_end: u64,
        size: u64,
        below: u64,
    },
    NoRoomForKernel {
        kernel_end: u64,
    },
    DeviceTreeTooLarge,
    /// The TPM event log outgrew its region (a very long command line).
    EventLogTooLarge,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::NeedsFirmware => f.write_str(
                "a Linux Image runs in S-mode and needs SBI firmware: give --bios (e.g. OpenSBI's fw_dynamic.bin)",
            ),
            Layout::KernelOverlapsFirmware => f.write_str("the kernel overlaps the firmware"),
            Layout::NoRoomForInitrd { kernel_end, size, below } => write!(
                f,
                "RAM too small: the kernel ends at {kernel_end:#x} and the {} initrd must fit below {below:#x}; try a larger -m",
                crate::size::human(*size)
            ),
            Layout::NoRoomForKernel { kernel_end } => {
                write!(f, "RAM too small for the kernel (it ends at {kernel_end:#x}); try a larger -m")
            }
            Layout::DeviceTreeTooLarge => f.write_str("device tree larger than 64 KiB"),
            Layout::EventLogTooLarge => f.write_str("TPM event log larger than its 64 KiB region"),
        }
    }
}

fn unusable<T>(what: &str, kind: Unusable) -> Result<T, LoadError> {
    Err(LoadError::Unusable { what: what.to_string(), kind })
}

/// The largest configuration file Strata reads (`strata run --config`).
pub const CONFIG_MAX: u64 = 1 << 20;

/// Where a loader reads an image from: a host file, or bytes in memory.
pub trait Source {
    /// What the image is, for messages ("kernel Image").
    fn name(&self) -> &str;
    fn len(&self) -> u64;
    /// `len` bytes from offset `off`, which the caller has checked lie
    /// within [`len`](Self::len).
    fn read_at(&self, off: u64, len: u64) -> Result<Vec<u8>, LoadError>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` bytes, or the whole file if it is shorter.
    fn head(&self, n: u64) -> Result<Vec<u8>, LoadError> {
        self.read_at(0, n.min(self.len()))
    }
}

/// Bytes already in memory (tests, generated images).
pub struct Bytes<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

impl Source for Bytes<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, off: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        off.checked_add(len)
            .and_then(|end| self.data.get(off as usize..end as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| LoadError::PastEnd { name: self.name.to_string(), off, len })
    }
}

/// A host file opened for loading. Opening checks that it is a regular
/// file and learns its length, before a byte is read: `/dev/zero`, a FIFO
/// or a directory is refused at once, and a file too large for where it
/// goes is refused without reading it.
pub struct HostFile {
    name: String,
    path: PathBuf,
    file: File,
    len: u64,
}

impl HostFile {
    /// Opens `path` as the `what` ("kernel", "initrd", ...). The open does
    /// not block (`O_NONBLOCK`: opening a FIFO for reading would wait for a
    /// writer), and the type is taken from the open file, not the path.
    pub fn open(what: &str, path: &Path) -> Result<HostFile, LoadError> {
        let name = format!("{what} {}", path.display());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| LoadError::Read { name: name.clone(), reason: io_reason(&e) })?;
        let meta = file.metadata().map_err(|e| LoadError::Read { name: name.clone(), reason: io_reason(&e) })?;
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            None
        } else if ft.is_dir() {
            Some("a directory")
        } else if ft.is_char_device() {
            Some("a character device")
        } else if ft.is_block_device() {
            Some("a block device")
        } else if ft.is_fifo() {
            Some("a FIFO")
        } else if ft.is_socket() {
            Some("a socket")
        } else {
            Some("not a regular file")
        };
        if let Some(kind) = kind {
            return Err(LoadError::NotRegular { name, kind });
        }
        Ok(HostFile { name, path: path.to_path_buf(), file, len: meta.len() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses the file if it is larger than `limit` bytes, the room `room`
    /// describes ("the 64 MiB of guest RAM").
    pub fn check_size(&self, limit: u64, room: &str) -> Result<(), LoadError> {
        if self.len > limit {
            return Err(LoadError::TooLarge { name: self.name.clone(), size: self.len, room: room.to_string() });
        }
        Ok(())
    }

    /// The whole file, which must be at most `limit` bytes (see
    /// [`check_size`](Self::check_size)).
    pub fn read_all(&self, limit: u64, room: &str) -> Result<Vec<u8>, LoadError> {
        self.check_size(limit, room)?;
        self.read_at(0, self.len)
    }
}

impl Source for HostFile {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, len: u64) -> Result<Vec<u8>, LoadError> {
        if off.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(LoadError::PastEnd { name: self.name.clone(), off, len });
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, off).map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "it shrank while being read".to_string()
            } else {
                io_reason(&e)
            };
            LoadError::Read { name: self.name.clone(), reason: why }
        })?;
        Ok(buf)
    }
}

/// An I/O error without Rust's "(os error N)" suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Reads a small host file whole (a configuration file): a regular file of
/// at most `limit` bytes.
pub fn read_file(what: &str, path: &Path, limit: u64) -> Result<Vec<u8>, LoadError> {
    let f = HostFile::open(what, path)?;
    f.read_all(limit, &format!("the {} Strata reads for it", crate::size::human(limit)))
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
        Ok(self.write_bytes(addr, bytes)?)
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), LoadError> {
        Ok(GuestRam::zero(self, addr, len)?)
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
            return Err(LoadError::OutsideTarget { addr, len: bytes.len() as u64 });
        }
        self.segs.borrow_mut().push((addr, bytes.to_vec()));
        Ok(())
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), LoadError> {
        if !self.contains(addr, len) {
            return Err(LoadError::OutsideTarget { addr, len });
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
/// `sizeof(Elf64_Phdr)`.
const ELF64_PHDR_SIZE: u64 = 56;
const PT_LOAD: u32 = 1;
/// The Linux RISC-V Image header's second magic, at offset 0x38
/// (Documentation/arch/riscv/boot-image-header.rst).
const IMAGE_MAGIC2: &[u8; 4] = b"RSC\x05";
/// PE/COFF machine type of RISC-V 64 (PE format, "Machine Types").
const PE_MACHINE_RISCV64: u16 = 0x5064;

/// How much of a file [`classify`] and [`check_not_foreign`] look at.
pub const HEAD: u64 = 4096;

/// Classifies an image by its first bytes ([`HEAD`] of them suffice).
pub fn classify(head: &[u8]) -> ImageKind {
    if head.starts_with(b"\x7fELF") {
        ImageKind::Elf
    } else if head.len() >= 0x40 && &head[0x38..0x3c] == IMAGE_MAGIC2 {
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

/// Checks that `mem_size` bytes at `addr` lie in guest RAM, before anything
/// is read for them.
fn check_room(ram: &dyn LoadTarget, what: &str, addr: u64, mem_size: u64) -> Result<(), LoadError> {
    if !ram.contains(addr, mem_size) {
        return Err(LoadError::NoRoom {
            what: what.to_string(),
            addr,
            size: mem_size,
            base: ram.base(),
            end: ram.end(),
        });
    }
    Ok(())
}

fn place(ram: &dyn LoadTarget, what: &str, addr: u64, bytes: &[u8], mem_size: u64) -> Result<(), LoadError> {
    check_room(ram, what, addr, mem_size.max(bytes.len() as u64))?;
    ram.write(addr, bytes).map_err(|e| e.within(what))?;
    let rest = mem_size.saturating_sub(bytes.len() as u64);
    ram.zero(addr + bytes.len() as u64, rest).map_err(|e| e.within(what))
}

/// Loads an ELF64 little-endian RISC-V executable by its program headers'
/// physical addresses (what QEMU's `virt` board does for `-kernel x.elf`).
/// Everything is checked before a segment is read: the header, the
/// program header table and every loadable segment lie within the file,
/// no segment's file part exceeds its memory part, every segment fits in
/// guest RAM, and the entry point is in one of them. Only the segments'
/// bytes are read (an ELF file with debug information may be much larger).
pub fn load_elf(ram: &dyn LoadTarget, src: &dyn Source) -> Result<Loaded, LoadError> {
    let what = src.name();
    let bad = |why: String| LoadError::Malformed { what: what.to_string(), format: Format::Elf, why };
    let d = src.head(64)?;
    if d.len() < 64 {
        return Err(bad(format!("its header needs 64 bytes, the file has {}", d.len())));
    }
    if d[4] != 2 {
        return Err(bad("not a 64-bit ELF (ELFCLASS64 expected)".into()));
    }
    if d[5] != 1 {
        return Err(bad("not little-endian".into()));
    }
    if d[6] != 1 {
        return Err(bad(format!("ELF version {} (1 expected)", d[6])));
    }
    let e_type = u16le(&d, 16).unwrap_or(0);
    if !matches!(e_type, 2 | 3) {
        return Err(bad(format!("type {e_type} is not an executable (ET_EXEC or ET_DYN)")));
    }
    let machine = u16le(&d, 18).unwrap_or(0);
    if machine != EM_RISCV {
        return Err(bad(format!("built for machine {machine}, not RISC-V ({EM_RISCV})")));
    }
    let entry = u64le(&d, 24).unwrap_or(0);
    let phoff = u64le(&d, 32).unwrap_or(0);
    let phentsize = u16le(&d, 54).unwrap_or(0) as u64;
    let phnum = u16le(&d, 56).unwrap_or(0) as u64;
    if phentsize != ELF64_PHDR_SIZE {
        return Err(bad(format!("program header entries of {phentsize} bytes ({ELF64_PHDR_SIZE} expected)")));
    }
    let table = phnum * ELF64_PHDR_SIZE;
    if phoff.checked_add(table).is_none_or(|end| end > src.len()) {
        return Err(bad(format!(
            "its {phnum} program headers at offset {phoff:#x} run past the end of the file ({:#x} bytes; truncated?)",
            src.len()
        )));
    }
    let ph = src.read_at(phoff, table)?;
    // (file offset, file size, physical address, memory size) of each
    // loadable segment, all checked before any is read.
    let mut segs = Vec::new();
    let room = ram.end() - ram.base();
    let mut file_total = 0u64;
    for i in 0..phnum as usize {
        let p = &ph[i * ELF64_PHDR_SIZE as usize..];
        if u32le(p, 0) != Some(PT_LOAD) {
            continue; // only PT_LOAD occupies memory
        }
        let (off, paddr, filesz, memsz) =
            (u64le(p, 8).unwrap_or(0), u64le(p, 24).unwrap_or(0), u64le(p, 32).unwrap_or(0), u64le(p, 40).unwrap_or(0));
        if off.checked_add(filesz).is_none_or(|end| end > src.len()) {
            return Err(bad(format!(
                "segment {i} ({off:#x}+{filesz:#x}) runs past the end of the file ({:#x} bytes; truncated?)",
                src.len()
            )));
        }
        if filesz > memsz {
            return Err(bad(format!(
                "segment {i} has more bytes in the file ({filesz:#x}) than in memory ({memsz:#x})"
            )));
        }
        check_room(ram, what, paddr, memsz)?;
        file_total = file_total.saturating_add(filesz);
        if file_total > room {
            return Err(bad(format!("its segments add up to more than the {} of guest RAM", crate::size::human(room))));
        }
        segs.push((off, filesz, paddr, memsz));
    }
    if segs.is_empty() {
        return Err(bad("no loadable segments".into()));
    }
    if !segs.iter().any(|&(_, _, paddr, memsz)| entry >= paddr && entry - paddr < memsz) {
        return Err(bad(format!("its entry point {entry:#x} is in none of its loadable segments")));
    }
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for (off, filesz, paddr, memsz) in segs {
        let bytes = src.read_at(off, filesz)?;
        place(ram, what, paddr, &bytes, memsz)?;
        if memsz > 0 {
            lo = lo.min(paddr);
            hi = hi.max(paddr + memsz);
        }
    }
    Ok(Loaded { entry, start: lo, end: hi })
}

/// Loads a Linux RISC-V `Image` at `addr`, which must be 2 MiB aligned for
/// RV64 (Documentation/arch/riscv/boot-image-header.rst). The header's
/// `image_size` (offset 0x10) is the memory the kernel occupies including
/// its BSS, so the whole of it must fit in RAM, and the file cannot be
/// larger. An EFI/PE image (Debian's) also says how long the file must be:
/// its sections' raw data must all be in it, which catches a truncated
/// kernel. A plain Image carries no such length.
pub fn load_linux_image(ram: &dyn LoadTarget, src: &dyn Source, addr: u64) -> Result<Loaded, LoadError> {
    let what = src.name();
    let bad = |why: String| LoadError::Malformed { what: what.to_string(), format: Format::LinuxImage, why };
    let d = src.head(0x40)?;
    if d.len() < 0x40 || &d[0x38..0x3c] != IMAGE_MAGIC2 {
        return unusable(what, Unusable::NoImageMagic);
    }
    let flags = u64le(&d, 0x18).unwrap_or(0);
    if flags & 1 != 0 {
        return Err(bad("it is a big-endian kernel (header flags bit 0)".into()));
    }
    let image_size = match u64le(&d, 0x10).unwrap_or(0) {
        // Headers before version 0.2 may leave it zero: the file is all.
        0 => src.len(),
        n => n,
    };
    if src.len() > image_size {
        return Err(bad(format!(
            "the file has {:#x} bytes, more than the {image_size:#x} its header says the kernel occupies",
            src.len()
        )));
    }
    if d.starts_with(b"MZ") {
        check_pe_sections(src, &bad)?;
    }
    check_room(ram, what, addr, image_size)?;
    let bytes = src.read_at(0, src.len())?;
    place(ram, what, addr, &bytes, image_size)?;
    Ok(Loaded { entry: addr, start: addr, end: addr + image_size })
}

/// The PE/COFF headers of an EFI Image (PE format: the signature at the
/// offset in 0x3c, the COFF file header, the section table after the
/// optional header): machine RISC-V 64, and every section's raw data
/// within the file.
fn check_pe_sections(src: &dyn Source, bad: &dyn Fn(String) -> LoadError) -> Result<(), LoadError> {
    let len = src.len();
    let head = src.head(0x40)?;
    let pe = u32le(&head, 0x3c).unwrap_or(0) as u64;
    if pe.checked_add(24).is_none_or(|e| e > len) || src.read_at(pe, 4)? != b"PE\0\0" {
        return Err(bad(format!("it starts with \"MZ\" but has no PE header at {pe:#x} (truncated?)")));
    }
    let coff = src.read_at(pe + 4, 20)?;
    let machine = u16le(&coff, 0).unwrap_or(0);
    if machine != PE_MACHINE_RISCV64 {
        return Err(bad(format!("its PE header names machine {machine:#x}, not RISC-V 64 ({PE_MACHINE_RISCV64:#x})")));
    }
    let sections = u16le(&coff, 2).unwrap_or(0) as u64;
    let table = pe + 24 + u16le(&coff, 16).unwrap_or(0) as u64;
    if table.checked_add(sections * 40).is_none_or(|e| e > len) {
        return Err(bad("its PE section table runs past the end of the file (truncated?)".into()));
    }
    let t = src.read_at(table, sections * 40)?;
    for s in t.chunks_exact(40) {
        let name = String::from_utf8_lossy(&s[..8]).trim_end_matches('\0').to_string();
        let (raw_size, raw_at) = (u32le(s, 16).unwrap_or(0) as u64, u32le(s, 20).unwrap_or(0) as u64);
        if raw_at + raw_size > len {
            return Err(bad(format!(
                "truncated: its section {name} ends at {:#x}, but the file has {len:#x} bytes",
                raw_at + raw_size
            )));
        }
    }
    Ok(())
}

/// Loads a flat binary at `addr`; its length is checked against the RAM
/// above `addr` before it is read.
pub fn load_raw(ram: &dyn LoadTarget, src: &dyn Source, addr: u64) -> Result<Loaded, LoadError> {
    let what = src.name();
    if src.is_empty() {
        return unusable(what, Unusable::Empty);
    }
    check_room(ram, what, addr, src.len())?;
    let bytes = src.read_at(0, src.len())?;
    place(ram, what, addr, &bytes, bytes.len() as u64)?;
    Ok(Loaded { entry: addr, start: addr, end: addr + bytes.len() as u64 })
}

/// Rejects files that are plainly executables for another machine, which
/// would otherwise load as a "flat binary" and run garbage. Looks at the
/// first [`HEAD`] bytes.
pub fn check_not_foreign(what: &str, d: &[u8]) -> Result<(), LoadError> {
    if d.starts_with(b"MZ") && !(d.len() >= 0x40 && &d[0x38..0x3c] == IMAGE_MAGIC2) {
        return unusable(what, Unusable::ForeignPe);
    }
    if d.len() > 0x206 && &d[0x202..0x206] == b"HdrS" {
        return unusable(what, Unusable::X86BzImage);
    }
    if d.starts_with(b"\x7fELF") {
        // ELF files go through load_elf, which checks e_machine.
        return Ok(());
    }
    if d.starts_with(&[0x1f, 0x8b]) || d.starts_with(b"\xfd7zXZ") || d.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return unusable(what, Unusable::Compressed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(name: &'a str, data: &'a [u8]) -> Bytes<'a> {
        Bytes { name, data }
    }

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
        d[6] = 1;
        d[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
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
        let l = load_elf(&r, &src("test", &elf(EM_RISCV, 0x8000_1000, &[0x13, 0, 0, 0]))).unwrap();
        assert_eq!(l, Loaded { entry: 0x8000_1000, start: 0x8000_1000, end: 0x8000_1014 });
        assert_eq!(r.load(0x8000_1000, 4).unwrap(), 0x13);
        assert_eq!(r.load(0x8000_1004, 4).unwrap(), 0, "bss zeroed");
    }

    #[test]
    fn rejects_bad_elves() {
        let r = ram();
        let e = load_elf(&r, &src("k", &elf(62, 0x8000_0000, &[0; 4]))).unwrap_err();
        assert!(e.to_string().contains("not RISC-V"), "{e}");
        let mut t = elf(EM_RISCV, 0x8000_0000, &[0; 4]);
        t.truncate(100);
        assert!(load_elf(&r, &src("k", &t)).unwrap_err().to_string().contains("truncated"));
        let e = load_elf(&r, &src("k", &elf(EM_RISCV, 0x1000, &[0; 4]))).unwrap_err();
        assert!(e.to_string().contains("outside guest RAM"), "{e}");
        let e = load_elf(&r, &src("k", &elf(EM_RISCV, u64::MAX - 2, &[0; 4]))).unwrap_err();
        assert!(e.to_string().contains("outside guest RAM"), "{e}");
    }

    #[test]
    fn linux_image_header_is_checked_and_sized() {
        let r = ram();
        let mut img = vec![0u8; 0x100];
        assert!(load_linux_image(&r, &src("k", &img), 0x8020_0000).is_err());
        img[0x38..0x3c].copy_from_slice(b"RSC\x05");
        img[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(classify(&img), ImageKind::LinuxImage);
        let l = load_linux_image(&r, &src("k", &img), 0x8020_0000).unwrap();
        assert_eq!(l.end, 0x8020_1000);
        img[0x10..0x18].copy_from_slice(&0x100_0000u64.to_le_bytes());
        assert!(load_linux_image(&r, &src("k", &img), 0x8020_0000).unwrap_err().to_string().contains("larger -m"));
    }

    /// An EFI Image: "MZ", the RISC-V header, a PE header at 0x40 with one
    /// section whose raw data is at `raw_at`, `raw_size` bytes long.
    fn efi_image(len: usize, raw_at: u32, raw_size: u32) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0..2].copy_from_slice(b"MZ");
        d[0x10..0x18].copy_from_slice(&(len as u64 * 2).to_le_bytes());
        d[0x38..0x3c].copy_from_slice(b"RSC\x05");
        d[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        d[0x40..0x44].copy_from_slice(b"PE\0\0");
        d[0x44..0x46].copy_from_slice(&PE_MACHINE_RISCV64.to_le_bytes());
        d[0x46..0x48].copy_from_slice(&1u16.to_le_bytes()); // one section
        d[0x54..0x56].copy_from_slice(&0u16.to_le_bytes()); // no optional header
        let sec = 0x40 + 24;
        d[sec..sec + 5].copy_from_slice(b".text");
        d[sec + 16..sec + 20].copy_from_slice(&raw_size.to_le_bytes());
        d[sec + 20..sec + 24].copy_from_slice(&raw_at.to_le_bytes());
        d
    }

    #[test]
    fn an_efi_image_must_hold_its_sections() {
        let r = ram();
        let whole = efi_image(0x2000, 0x1000, 0x1000);
        assert!(load_linux_image(&r, &src("k", &whole), 0x8020_0000).is_ok());
        let e = load_linux_image(&r, &src("k", &whole[..0x1800]), 0x8020_0000).unwrap_err();
        assert!(
            e.to_string().contains("truncated: its section .text ends at 0x2000, but the file has 0x1800 bytes"),
            "{e}"
        );
        let mut x86 = whole.clone();
        x86[0x44..0x46].copy_from_slice(&0x8664u16.to_le_bytes());
        assert!(load_linux_image(&r, &src("k", &x86), 0x8020_0000).unwrap_err().to_string().contains("not RISC-V 64"));
        let e = load_linux_image(&r, &src("k", &whole[..0x60]), 0x8020_0000).unwrap_err();
        assert!(e.to_string().contains("section table runs past the end"), "{e}");
    }

    #[test]
    fn an_image_is_no_longer_than_its_header_says_and_little_endian() {
        let r = ram();
        let mut img = vec![0u8; 0x2000];
        img[0x38..0x3c].copy_from_slice(b"RSC\x05");
        img[0x10..0x18].copy_from_slice(&0x1000u64.to_le_bytes());
        let e = load_linux_image(&r, &src("k", &img), 0x8020_0000).unwrap_err();
        assert!(e.to_string().contains("more than the 0x1000"), "{e}");
        img[0x10..0x18].copy_from_slice(&0x3000u64.to_le_bytes());
        img[0x18] = 1;
        assert!(load_linux_image(&r, &src("k", &img), 0x8020_0000).unwrap_err().to_string().contains("big-endian"));
    }

    #[test]
    fn elf_consistency_is_checked_before_loading() {
        let r = ram();
        let good = elf(EM_RISCV, 0x8000_1000, &[0x13, 0, 0, 0]);
        type Spoil = Box<dyn Fn(&mut Vec<u8>)>;
        let cases: [(&str, Spoil, &str); 5] = [
            ("phentsize", Box::new(|d| d[54] = 64), "entries of 64 bytes"),
            ("relocatable", Box::new(|d| d[16] = 1), "not an executable"),
            ("version", Box::new(|d| d[6] = 0), "ELF version 0"),
            ("filesz > memsz", Box::new(|d| d[64 + 40] = 2), "more bytes in the file"),
            ("entry", Box::new(|d| d[24..32].copy_from_slice(&0x8000_2000u64.to_le_bytes())), "entry point 0x80002000"),
        ];
        for (what, f, want) in cases {
            let mut d = good.clone();
            f(&mut d);
            let e = load_elf(&r, &src("k", &d)).unwrap_err();
            assert!(e.to_string().contains(want), "{what}: {e}");
        }
        // Nothing was written by the refused loads.
        assert_eq!(r.load(0x8000_1000, 4).unwrap(), 0);
    }

    #[test]
    fn foreign_and_compressed_files_are_named() {
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(check_not_foreign("k", &bz).unwrap_err().to_string().contains("x86"));
        assert!(check_not_foreign("k", &[0x1f, 0x8b, 8, 0]).unwrap_err().to_string().contains("compressed"));
        assert!(check_not_foreign("k", b"MZ\0\0").is_err());
        assert!(check_not_foreign("k", &[0x97, 0x02, 0, 0]).is_ok());
    }
}

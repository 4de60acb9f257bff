//! A G-stage page-table builder in the hardware format.
//!
//! RISC-V Privileged Architecture 20211203, §8.5.1: guest-physical addresses
//! are translated by Sv39x4 (41-bit GPA, three levels) or Sv48x4 (50-bit
//! GPA, four levels). These are Sv39/Sv48 with the root index widened by two
//! bits to 11 bits, so the root table is 16 KiB (2048 entries) and must be
//! 16 KiB aligned; every other table is one 4 KiB page of 512 entries. PTEs
//! use the Sv39/Sv48 layout of §4.4.1/§4.5.1: V R W X U G A D in bits 0–7,
//! PPN in bits 53–10, bits 63–54 zero. G-stage accesses are treated as
//! U-mode accesses, so every leaf carries U=1 (§8.5.1); G is not used for
//! G-stage (0).
//!
//! Leaves are written with A=1, and D=1 when writable, so that a walker never
//! has to update them (§4.3.1 lets software preset A/D; the hypervisor's
//! tables then never change under it). Pointers carry V only: for non-leaf
//! PTEs U, A and D are reserved and must be zero (§4.3.1).
//!
//! Tables are reached through [`TableMemory`], so tests can use a map and
//! the hypervisor machine RAM. This module knows nothing about ownership:
//! [`crate::HypMemory`] combines it with the [`crate::Tracker`].

use std::fmt;

use crate::types::{Perms, PAGE_SIZE};

use strata_arch::csr::hgatp;
/// PTE bits (§4.3.1, Figure 4.18; §4.4.1 for the 64-bit layout): one
/// home, `strata_arch::pte`.
pub use strata_arch::pte;
use strata_arch::pte::Scheme;

/// The G-stage translation scheme (§8.5.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GStageMode {
    Sv39x4,
    Sv48x4,
}

impl GStageMode {
    /// The scheme's geometry (`strata_arch::pte::Scheme`).
    pub const fn scheme(self) -> Scheme {
        match self {
            GStageMode::Sv39x4 => Scheme::SV39X4,
            GStageMode::Sv48x4 => Scheme::SV48X4,
        }
    }

    /// Number of levels of tables.
    pub const fn levels(self) -> u32 {
        self.scheme().levels
    }

    /// Width of a guest-physical address: 41 or 50 bits. Bits above must be
    /// zero (§8.5.1), else the access takes a guest-page fault.
    pub const fn gpa_bits(self) -> u32 {
        self.scheme().va_bits()
    }

    /// The `hgatp.MODE` encoding (§8.2.10: 8 = Sv39x4, 9 = Sv48x4).
    pub const fn hgatp_mode(self) -> u64 {
        self.scheme().atp_mode()
    }

    /// Whether `gpa` is inside this mode's guest-physical address space.
    pub const fn gpa_ok(self, gpa: u64) -> bool {
        self.scheme().va_ok(gpa)
    }

    fn index(self, gpa: u64, level: u32) -> u64 {
        self.scheme().index(gpa, level)
    }

    fn entries(self, level: u32) -> u64 {
        1 << self.scheme().index_bits(level)
    }
}

/// Size of a leaf.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PageSize {
    /// 4 KiB, a level-0 leaf.
    Size4K,
    /// 2 MiB megapage, a level-1 leaf.
    Size2M,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << Scheme::page_shift(0),
            PageSize::Size2M => 1 << Scheme::page_shift(1),
        }
    }

    const fn level(self) -> u32 {
        match self {
            PageSize::Size4K => 0,
            PageSize::Size2M => 1,
        }
    }
}

/// Why table memory could not be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TableMemError {
    /// No page can be had for a table.
    OutOfMemory,
    /// The address is not backed by memory.
    BadAddress(u64),
}

impl fmt::Display for TableMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableMemError::OutOfMemory => f.write_str("no memory for a page table"),
            TableMemError::BadAddress(a) => write!(f, "no memory at {a:#x}"),
        }
    }
}

impl std::error::Error for TableMemError {}

/// The memory that holds G-stage tables: machine RAM in the hypervisor, a
/// map in tests. Addresses are machine-physical.
pub trait TableMemory {
    /// Reads the 8-byte little-endian word at `pa` (8-byte aligned).
    fn read_u64(&self, pa: u64) -> Result<u64, TableMemError>;
    /// Writes the 8-byte little-endian word at `pa` (8-byte aligned).
    fn write_u64(&mut self, pa: u64, value: u64) -> Result<(), TableMemError>;
    /// A 4 KiB-aligned page for a non-root table. The builder zeroes it.
    fn alloc_table_page(&mut self) -> Result<u64, TableMemError>;
    /// Four contiguous pages, 16 KiB aligned, for a root table (§8.5.1).
    /// The builder zeroes them.
    fn alloc_root_table(&mut self) -> Result<u64, TableMemError>;
    /// Takes back a table page the builder no longer uses (it is all zero).
    fn free_table_page(&mut self, pa: u64) -> Result<(), TableMemError>;
    /// Takes back a root table (16 KiB at `pa`).
    fn free_root_table(&mut self, pa: u64) -> Result<(), TableMemError>;
}

/// Why a G-stage operation failed. Except for `Memory` and `Corrupt`
/// (which mean the table memory itself failed or was overwritten by
/// somebody else), a failed operation leaves the tables as they were.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GStageError {
    /// The guest-physical address is wider than the mode allows.
    GpaOutOfRange(u64),
    /// A guest-physical or machine address not aligned to the page size.
    Misaligned(u64),
    /// A machine address beyond the 56 bits a PTE can name.
    PaOutOfRange(u64),
    /// Empty permissions, or write without read (§4.3.1 Table 4.5).
    InvalidPerms(Perms),
    /// Something is already mapped there.
    AlreadyMapped {
        gpa: u64,
    },
    /// A larger leaf covers the address.
    SuperpageInTheWay {
        gpa: u64,
    },
    /// A table is mapped where a superpage leaf was asked for.
    TableInTheWay {
        gpa: u64,
    },
    NotMapped(u64),
    /// A hardware VMID wider than `hgatp.VMID` (14 bits).
    VmidTooLarge(u16),
    /// Table memory misbehaved: an allocation was misaligned, or a table
    /// holds an entry this builder never writes.
    Corrupt {
        pa: u64,
        value: u64,
    },
    Memory(TableMemError),
}

impl From<TableMemError> for GStageError {
    fn from(e: TableMemError) -> Self {
        GStageError::Memory(e)
    }
}

impl fmt::Display for GStageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GStageError::*;
        match *self {
            GpaOutOfRange(g) => write!(f, "guest-physical address {g:#x} is out of range for the G-stage mode"),
            Misaligned(a) => write!(f, "address {a:#x} is not aligned to the page size"),
            PaOutOfRange(a) => write!(f, "machine address {a:#x} cannot be named by a PTE"),
            InvalidPerms(p) => write!(f, "permissions {p} cannot be mapped"),
            AlreadyMapped { gpa } => write!(f, "guest-physical {gpa:#x} is already mapped"),
            SuperpageInTheWay { gpa } => {
                write!(f, "a superpage already covers guest-physical {gpa:#x}")
            }
            TableInTheWay { gpa } => {
                write!(f, "smaller pages are mapped inside guest-physical {gpa:#x}")
            }
            NotMapped(g) => write!(f, "guest-physical {g:#x} is not mapped"),
            VmidTooLarge(v) => write!(f, "VMID {v} does not fit hgatp.VMID (14 bits)"),
            Corrupt { pa, value } => write!(f, "page-table memory at {pa:#x} holds unexpected {value:#x}"),
            Memory(e) => write!(f, "page-table memory: {e}"),
        }
    }
}

impl std::error::Error for GStageError {}

/// A leaf: `size` bytes at guest-physical `gpa` map to machine `pa`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Leaf {
    pub gpa: u64,
    pub pa: u64,
    pub size: u64,
    pub perms: Perms,
}

impl Leaf {
    /// The machine address of guest-physical `gpa` inside this leaf.
    pub fn translate(&self, gpa: u64) -> u64 {
        self.pa + (gpa - self.gpa)
    }
}

/// One VM's G-stage tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GStage {
    mode: GStageMode,
    root: u64,
}

fn leaf_pte(pa: u64, perms: Perms) -> u64 {
    let mut v = ((pa >> pte::PAGE_SHIFT) << pte::PPN_SHIFT) | pte::V | pte::U | pte::A;
    if perms.read() {
        v |= pte::R;
    }
    if perms.write() {
        v |= pte::W | pte::D;
    }
    if perms.exec() {
        v |= pte::X;
    }
    v
}

fn pointer_pte(table: u64) -> u64 {
    ((table >> pte::PAGE_SHIFT) << pte::PPN_SHIFT) | pte::V
}

fn is_leaf(v: u64) -> bool {
    v & (pte::R | pte::X) != 0
}

fn perms_of(v: u64) -> Perms {
    Perms::from_bits(((v >> 1) & 7) as u8)
}

enum Step {
    Invalid,
    Leaf,
    Table(u64),
}

impl GStage {
    /// Allocates and zeroes an empty root table.
    pub fn new<M: TableMemory + ?Sized>(mode: GStageMode, mem: &mut M) -> Result<GStage, GStageError> {
        let root = mem.alloc_root_table()?;
        if root % (4 * PAGE_SIZE) != 0 {
            return Err(GStageError::Corrupt { pa: root, value: 0 });
        }
        let g = GStage { mode, root };
        g.zero_table(mem, root, mode.levels() - 1)?;
        Ok(g)
    }

    pub fn mode(&self) -> GStageMode {
        self.mode
    }

    /// Machine address of the 16 KiB root table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The `hgatp` value that selects these tables for hardware VMID `vmid`
    /// (§8.2.10: MODE in bits 63–60, VMID in 57–44, root PPN in 43–0).
    pub fn hgatp(&self, vmid: u16) -> Result<u64, GStageError> {
        if vmid >= 1 << hgatp::VMID_BITS {
            return Err(GStageError::VmidTooLarge(vmid));
        }
        Ok((self.mode.hgatp_mode() << hgatp::MODE_SHIFT)
            | ((vmid as u64) << hgatp::VMID_SHIFT)
            | (self.root >> pte::PAGE_SHIFT))
    }

    fn zero_table<M: TableMemory + ?Sized>(&self, mem: &mut M, table: u64, level: u32) -> Result<(), GStageError> {
        for i in 0..self.mode.entries(level) {
            mem.write_u64(table + 8 * i, 0)?;
        }
        Ok(())
    }

    /// Classifies the PTE `v` read at `pa` in a level-`level` table.
    fn step(&self, pa: u64, v: u64, level: u32) -> Result<Step, GStageError> {
        if v & pte::V == 0 {
            return Ok(Step::Invalid);
        }
        let corrupt = Err(GStageError::Corrupt { pa, value: v });
        if v & pte::HIGH_BITS != 0 || (v & pte::W != 0 && v & pte::R == 0) {
            return corrupt;
        }
        if is_leaf(v) {
            return Ok(Step::Leaf);
        }
        if level == 0 || v & (pte::U | pte::A | pte::D) != 0 {
            return corrupt;
        }
        Ok(Step::Table(pte::ppn(v) << pte::PAGE_SHIFT))
    }

    /// Maps one 4 KiB page.
    pub fn map<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        pa: u64,
        perms: Perms,
    ) -> Result<(), GStageError> {
        self.map_sized(mem, gpa, pa, perms, PageSize::Size4K)
    }

    /// Maps one leaf of `size`. Intermediate tables are allocated as needed
    /// (and freed again if the mapping fails).
    pub fn map_sized<M: TableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        gpa: u64,
        pa: u64,
        perms: Perms,
        size: PageSize,
    ) -> Result<(), GStageError> {
        if !perms.is_valid() {
            return Err(GStageError::InvalidPerms(perms));
        }
        if !self.mode.gpa_ok(gpa) {
            return Err(GStageError::GpaOutOfRange(gpa));
        }
        if gpa % size.bytes() != 0 {
            return Err(GStageError::Misaligned(gpa));
        }
        if pa % size.bytes() != 0 {
            return Err(GStageError::Misaligned(pa));
        }
        if pa >> pte::PAGE_SHIFT > pte::PPN_MASK {
            return Err(GStageError::PaOutOfRange(pa));
        }
        let leaf_level = size.level();
        let mut table = self.root;
        let mut level = self.mode.levels() - 1;
        let mut path = Vec::new(); // (table, level) of every table visited, root first
        let mut created = false;
        let result = loop {
            path.push((table, level));
            let slot = table + 8 * self.mode.index(gpa, level);
            let v = mem.read_u64(slot)?;
            if level == leaf_level {
                break match self.step(slot, v, level)? {
                    Step::Invalid => mem.write_u64(slot, leaf_pte(pa, perms)).map_err(GStageError::from),
                    Step::Leaf => Err(GStageError::AlreadyMapped { gpa }),
                    Step::Table(_) => Err(GStageError::TableInTheWay { gpa }),
                };
            }
            match self.step(slot, v, level)? {
                Step::Leaf => break Err(GStageError::SuperpageInTheWay { gpa }),
                Step::Table(next) => table = next,
                Step::Invalid => {
                    let next = match mem.alloc_table_page() {
                        Ok(t) if t % PAGE_SIZE == 0 => t,
                        Ok(t) => {
                            let _ = mem.free_table_page(t);
                            break Err(GStageError::Corrupt { pa: t, value: 0 });
                        }
                        Err(e) => break Err(e.into()),
                    };
                    self.zero_table(mem, next, level - 1)?;
                    mem.write_u64(slot, pointer_pte(next))?;
                    created = true;
                    table = next;
                }
            }
            level -= 1;
        };
        if result.is_err() && created {
            self.prune(mem, gpa, &path)?;
        }
        result
    }

    /// Frees the empty tables on `path` (deepest first; never the root).
    fn prune<M: TableMemory + ?Sized>(&self, mem: &mut M, gpa: u64, path: &[(u64, u32)]) -> Result<(), GStageError> {
        for w in (1..path.len()).rev() {
            let (table, level) = path[w];
            for i in 0..self.mode.entries(level) {
                if mem.read_u64(table + 8 * i)? != 0 {
                    return Ok(());
                }
            }
            let (parent, plevel) = path[w - 1];
            mem.write_u64(parent + 8 * self.mode.index(gpa, plevel), 0)?;
            mem.free_table_page(table)?;
        }
        Ok(())
    }

    /// Removes the leaf that covers `gpa` and returns it. Tables left empty
    /// are freed.
    pub fn unmap<M: TableMemory + ?Sized>(&mut self, mem: &mut M, gpa: u64) -> Result<Leaf, GStageError> {
        if !self.mode.gpa_ok(gpa) {
            return Err(GStageError::GpaOutOfRange(gpa));
        }
        let mut table = self.root;
        let mut level = self.mode.levels() - 1;
        let mut path = Vec::new();
        loop {
            path.push((table, level));
            let slot = table + 8 * self.mode.index(gpa, level);
            let v = mem.read_u64(slot)?;
            match self.step(slot, v, level)? {
                Step::Invalid => return Err(GStageError::NotMapped(gpa)),
                Step::Table(next) => {
                    table = next;
                    level -= 1;
                }
                Step::Leaf => {
                    let leaf = self.leaf(slot, v, gpa, level)?;
                    mem.write_u64(slot, 0)?;
                    self.prune(mem, gpa, &path)?;
                    return Ok(leaf);
                }
            }
        }
    }

    fn leaf(&self, slot: u64, v: u64, gpa: u64, level: u32) -> Result<Leaf, GStageError> {
        let size = 1u64 << Scheme::page_shift(level);
        let pa = pte::ppn(v) << pte::PAGE_SHIFT;
        // §4.3.2 step 6: a superpage's low PPN bits must be zero; and every
        // leaf this builder writes has U=1 and A=1 (D=1 if writable).
        let ad_ok = v & pte::U != 0 && v & pte::A != 0 && (v & pte::W == 0 || v & pte::D != 0);
        if pa % size != 0 || !ad_ok {
            return Err(GStageError::Corrupt { pa: slot, value: v });
        }
        Ok(Leaf { gpa: gpa & !(size - 1), pa, size, perms: perms_of(v) })
    }

    /// The leaf covering `gpa`, if any.
    pub fn translate<M: TableMemory + ?Sized>(&self, mem: &M, gpa: u64) -> Result<Option<Leaf>, GStageError> {
        if !self.mode.gpa_ok(gpa) {
            return Ok(None);
        }
        let mut table = self.root;
        let mut level = self.mode.levels() - 1;
        loop {
            let slot = table + 8 * self.mode.index(gpa, level);
            let v = mem.read_u64(slot)?;
            match self.step(slot, v, level)? {
                Step::Invalid => return Ok(None),
                Step::Table(next) => {
                    table = next;
                    level -= 1;
                }
                Step::Leaf => return self.leaf(slot, v, gpa, level).map(Some),
            }
        }
    }

    /// Every leaf, in gpa order.
    pub fn leaves<M: TableMemory + ?Sized>(&self, mem: &M) -> Result<Vec<Leaf>, GStageError> {
        let mut out = Vec::new();
        self.visit(mem, self.root, self.mode.levels() - 1, 0, &mut |_| {}, &mut out)?;
        Ok(out)
    }

    /// Machine addresses of every table page, root pages included.
    pub fn table_pages<M: TableMemory + ?Sized>(&self, mem: &M) -> Result<Vec<u64>, GStageError> {
        let mut pages: Vec<u64> = (0..4).map(|i| self.root + i * PAGE_SIZE).collect();
        self.visit(mem, self.root, self.mode.levels() - 1, 0, &mut |t| pages.push(t), &mut Vec::new())?;
        Ok(pages)
    }

    fn visit<M: TableMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: u32,
        base: u64,
        on_table: &mut dyn FnMut(u64),
        out: &mut Vec<Leaf>,
    ) -> Result<(), GStageError> {
        for i in 0..self.mode.entries(level) {
            let slot = table + 8 * i;
            let v = mem.read_u64(slot)?;
            let gpa = base | (i << Scheme::page_shift(level));
            match self.step(slot, v, level)? {
                Step::Invalid => {}
                Step::Leaf => out.push(self.leaf(slot, v, gpa, level)?),
                Step::Table(next) => {
                    on_table(next);
                    self.visit(mem, next, level - 1, gpa, on_table, out)?;
                }
            }
        }
        Ok(())
    }

    /// Frees every table, the root last.
    pub fn destroy<M: TableMemory + ?Sized>(self, mem: &mut M) -> Result<(), GStageError> {
        let mut tables = Vec::new();
        self.visit(mem, self.root, self.mode.levels() - 1, 0, &mut |t| tables.push(t), &mut Vec::new())?;
        // Zero before freeing: the contract is that freed tables are empty.
        for &t in &tables {
            self.zero_table(mem, t, 0)?;
        }
        self.zero_table(mem, self.root, self.mode.levels() - 1)?;
        for t in tables {
            mem.free_table_page(t)?;
        }
        mem.free_root_table(self.root)?;
        Ok(())
    }
}

//! Guest physical memory for Strata.
//!
//! [`GuestRam`] is one contiguous block of guest RAM at a guest-physical base
//! address. Harts, the MMU's page-table walker and DMA-capable devices all
//! share it through `&self` accessors, the way rust-vmm's `GuestMemory` is
//! shared: a guest that races its own harts against each other or against a
//! device gets whatever bytes the host happened to see, exactly as on real
//! hardware, but it can never reach outside the block.
//!
//! Every accessor takes a guest-physical address and checks it against the
//! block, so a hostile address is an `Err`, never an out-of-bounds access.

use std::fmt;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// log2 of the page size code pages are tracked in: the architecture's base
/// page (`strata_arch::pte`).
pub use strata_arch::pte::PAGE_SHIFT;

/// An address that does not fall inside guest RAM (or an access that runs
/// past its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange {
    pub addr: u64,
    pub len: u64,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest-physical range {:#x}+{:#x} is outside RAM", self.addr, self.len)
    }
}

impl std::error::Error for OutOfRange {}

/// A contiguous block of guest RAM.
///
/// ## Concurrency
///
/// Harts on several host threads, devices doing DMA and the loaders all
/// access the same bytes through `&self`. Every access the Rust code makes
/// is atomic at some width, so two threads never race in Rust's sense:
///
/// | access | how | single-copy atomic as |
/// | --- | --- | --- |
/// | naturally aligned 1/2/4/8-byte load or store | one relaxed atomic of that width | the whole access (Unpriv. §17.1: RVWMO requires it for aligned accesses) |
/// | misaligned load or store | relaxed byte atomics | each byte (misaligned accesses need not be atomic, §17.1.7.1) |
/// | AMO, SC ([`atomic_rmw`](Self::atomic_rmw), [`compare_exchange`](Self::compare_exchange)) | a sequentially consistent host read-modify-write | the whole access, and a full fence (stronger than any `.aq`/`.rl`) |
/// | bulk copy (DMA, loaders) | relaxed 8-byte atomics on aligned words, bytes at the edges | each word |
///
/// Relaxed accesses do not order against each other; a guest `FENCE`
/// does (the hart issues a host fence). Code generated at run time (the
/// JIT) reaches the bytes with plain host instructions, which on x86-64
/// are the same operations as the relaxed atomics.
pub struct GuestRam {
    base: u64,
    /// The bytes: `len` of them at `ptr`, aligned to [`STORAGE_ALIGN`], so
    /// that a naturally aligned guest access is a naturally aligned host
    /// access (guest RAM bases are page aligned).
    ptr: *mut u8,
    len: usize,
    /// Per 4 KiB page: [`CODE_MARK`] while some hart holds instructions
    /// decoded from the page (see [`GuestRam::mark_code`]), [`WATCH_MARK`]
    /// while a monitor watches it for writes ([`GuestRam::watch_page`]).
    /// Nonzero sends every store to the page down the slow path.
    code: Box<[AtomicU8]>,
    /// Per page: bumped by every write that reaches a page marked as code,
    /// so a hart's decoded copy of the page can tell it is stale.
    code_gen: Box<[AtomicU32]>,
    /// Bumped with any page's `code_gen`: one number that moves whenever
    /// any decoded code anywhere may have gone stale.
    code_writes: AtomicU64,
    /// Per page: bumped by the first write after a monitor armed a watch
    /// on the page (the write clears [`WATCH_MARK`]).
    watch_gen: Box<[AtomicU32]>,
}

/// The page-mark bit of decoded code.
pub const CODE_MARK: u8 = 1;
/// The page-mark bit of a monitor's write watch (docs/monitor.md).
pub const WATCH_MARK: u8 = 2;

/// Alignment of the host allocation behind guest RAM: a page, so host and
/// guest alignment agree for every access size.
const STORAGE_ALIGN: usize = 4096;

// SAFETY: `GuestRam` hands out no references into its storage; every access
// goes through the atomics described on the type (or, for the JIT, through
// `raw_parts`, whose contract is the same), so sharing it between threads
// cannot make Rust code race.
unsafe impl Sync for GuestRam {}
// SAFETY: the storage is a heap allocation owned by the value; nothing in it
// is tied to the thread that made it.
unsafe impl Send for GuestRam {}

impl Drop for GuestRam {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: `ptr` came from `alloc_zeroed` with exactly this layout
            // (see `new`), and is freed once, here.
            unsafe { std::alloc::dealloc(self.ptr, Self::layout(self.len).expect("checked in new")) }
        }
    }
}

impl GuestRam {
    fn layout(len: usize) -> Option<std::alloc::Layout> {
        std::alloc::Layout::from_size_align(len, STORAGE_ALIGN).ok()
    }

    /// Allocates `size` bytes of zeroed RAM at guest-physical `base`.
    /// The allocation is lazily backed by the host (calloc-style), so a large
    /// guest costs host memory only for the pages it touches.
    pub fn new(base: u64, size: u64) -> Result<Self, String> {
        let len = usize::try_from(size).map_err(|_| format!("RAM size {size} does not fit this host"))?;
        if base.checked_add(size).is_none() {
            return Err(format!("RAM at {base:#x} of size {size:#x} overflows the address space"));
        }
        let no_ram = || format!("cannot allocate {} MiB of guest RAM on this host", size >> 20);
        let ptr = if len == 0 {
            std::ptr::null_mut()
        } else {
            // Zeroed by the allocator (fresh pages from the kernel are
            // already zero), so pages cost host memory only once the guest
            // touches them; filling them would touch them all now.
            let layout = Self::layout(len).ok_or_else(no_ram)?;
            // SAFETY: `layout` has a nonzero size (len > 0).
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            if p.is_null() {
                return Err(no_ram());
            }
            p
        };
        let pages = len.div_ceil(1 << PAGE_SHIFT);
        let code = (0..pages).map(|_| AtomicU8::new(0)).collect();
        let code_gen = (0..pages).map(|_| AtomicU32::new(0)).collect();
        let watch_gen = (0..pages).map(|_| AtomicU32::new(0)).collect();
        Ok(Self { base, ptr, len, code, code_gen, code_writes: AtomicU64::new(0), watch_gen })
    }

    #[inline]
    pub fn base(&self) -> u64 {
        self.base
    }

    #[inline]
    pub fn size(&self) -> u64 {
        self.len as u64
    }

    /// One past the last guest-physical address of RAM.
    #[inline]
    pub fn end(&self) -> u64 {
        self.base + self.size()
    }

    #[inline]
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && len <= self.size() && addr - self.base <= self.size() - len
    }

    /// Offset of `addr` into RAM if `addr..addr+len` is inside it.
    #[inline]
    pub fn offset_of(&self, addr: u64, len: u64) -> Option<usize> {
        if self.contains(addr, len) {
            Some((addr - self.base) as usize)
        } else {
            None
        }
    }

    /// The byte at RAM offset `off`, as an atomic. Panics if `off` is
    /// outside RAM.
    #[inline(always)]
    fn byte(&self, off: usize) -> &AtomicU8 {
        assert!(off < self.len);
        // SAFETY: `off` is inside the live allocation; `AtomicU8` has the
        // size and alignment of `u8`, and every access to these bytes is
        // atomic (see the type's documentation).
        unsafe { AtomicU8::from_ptr(self.ptr.add(off)) }
    }

    /// The naturally aligned `N`-byte word at RAM offset `off` (`off` a
    /// multiple of `N`, checked by the caller), as an atomic.
    #[inline(always)]
    fn word<A>(&self, off: usize) -> &A {
        debug_assert!(off % std::mem::size_of::<A>() == 0);
        assert!(off + std::mem::size_of::<A>() <= self.len);
        // SAFETY: in bounds (asserted); aligned because the allocation is
        // STORAGE_ALIGN-aligned and `off` is a multiple of the atomic's size,
        // which is its alignment for AtomicU16/32/64 on the hosts Strata
        // supports; every access to these bytes is atomic.
        unsafe { &*(self.ptr.add(off) as *const A) }
    }

    /// Reads `N` bytes at RAM offset `off`: one atomic if naturally
    /// aligned, else byte by byte. The caller guarantees `off + N <= size()`
    /// (asserted).
    #[inline(always)]
    fn read_at<const N: usize>(&self, off: usize) -> [u8; N] {
        assert!(off + N <= self.len);
        if off % N == 0 {
            match N {
                1 => return [self.byte(off).load(Ordering::Relaxed); N],
                2 => return to_n(&self.word::<AtomicU16>(off).load(Ordering::Relaxed).to_le_bytes()),
                4 => return to_n(&self.word::<AtomicU32>(off).load(Ordering::Relaxed).to_le_bytes()),
                8 => return to_n(&self.word::<AtomicU64>(off).load(Ordering::Relaxed).to_le_bytes()),
                _ => {}
            }
        }
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.byte(off + i).load(Ordering::Relaxed);
        }
        out
    }

    #[inline(always)]
    fn write_at<const N: usize>(&self, off: usize, v: [u8; N]) {
        assert!(off + N <= self.len);
        if off % N == 0 {
            match N {
                1 => return self.byte(off).store(v[0], Ordering::Relaxed),
                2 => return self.word::<AtomicU16>(off).store(u16::from_le_bytes(to_n(&v)), Ordering::Relaxed),
                4 => return self.word::<AtomicU32>(off).store(u32::from_le_bytes(to_n(&v)), Ordering::Relaxed),
                8 => return self.word::<AtomicU64>(off).store(u64::from_le_bytes(to_n(&v)), Ordering::Relaxed),
                _ => {}
            }
        }
        for (i, b) in v.iter().enumerate() {
            self.byte(off + i).store(*b, Ordering::Relaxed);
        }
    }

    /// Little-endian load of `size` (1, 2, 4 or 8) bytes at RAM offset `off`.
    #[inline(always)]
    pub fn load_off(&self, off: usize, size: u8) -> u64 {
        match size {
            1 => self.read_at::<1>(off)[0] as u64,
            2 => u16::from_le_bytes(self.read_at(off)) as u64,
            4 => u32::from_le_bytes(self.read_at(off)) as u64,
            _ => u64::from_le_bytes(self.read_at(off)),
        }
    }

    /// Little-endian store of the low `size` (1, 2, 4 or 8) bytes of `v`,
    /// which must not cross a 4 KiB page. Returns true if the page held
    /// decoded code, which the store has now made stale.
    #[inline(always)]
    pub fn store_off(&self, off: usize, size: u8, v: u64) -> bool {
        self.write_sized(off, size, v);
        self.note_write(off >> PAGE_SHIFT)
    }

    #[inline(always)]
    fn write_sized(&self, off: usize, size: u8, v: u64) {
        match size {
            1 => self.write_at::<1>(off, [v as u8]),
            2 => self.write_at(off, (v as u16).to_le_bytes()),
            4 => self.write_at(off, (v as u32).to_le_bytes()),
            _ => self.write_at(off, v.to_le_bytes()),
        }
    }

    // ---- code tracking -----------------------------------------------------
    //
    // A hart that caches decoded instructions of a page marks the page as
    // code and remembers its generation. Every write path of this type
    // (hart stores, page-table A/D updates, device DMA, loaders) checks the
    // mark of each page it touches; a write to a marked page clears the mark
    // and bumps the generation, so the next time the hart enters the page it
    // sees the change and decodes afresh. The check costs one byte load per
    // store; stores to pages without code pay nothing else.

    /// Marks the page at RAM offset `page << 12` as holding decoded code
    /// and returns its generation. `page` must be below `pages()`.
    #[inline]
    pub fn mark_code(&self, page: usize) -> u32 {
        self.code[page].fetch_or(CODE_MARK, Ordering::Relaxed);
        self.code_gen[page].load(Ordering::Relaxed)
    }

    /// Whether code decoded from `page` at generation `gen` is still what
    /// RAM holds.
    #[inline]
    pub fn code_valid(&self, page: usize, gen: u32) -> bool {
        self.code[page].load(Ordering::Relaxed) & CODE_MARK != 0 && self.code_gen[page].load(Ordering::Relaxed) == gen
    }

    /// Host addresses for code generated at run time (the hart's JIT): RAM
    /// offset 0, and the code marks, one byte per 4 KiB page, nonzero while
    /// the page holds decoded code. Generated code may read and write RAM
    /// through the first only inside pages it knows to be in RAM (a TLB
    /// hit), and may write only to a page whose mark reads zero; a write to
    /// a marked page must go through [`store_off`](Self::store_off) so the
    /// page's generation moves. Both stay valid as long as `self`.
    pub fn raw_parts(&self) -> (*mut u8, *const u8) {
        let bytes = self.ptr;
        // `AtomicU8` has the size and alignment of `u8`; a plain byte load
        // of it is a relaxed load on the hosts the JIT supports.
        (bytes, self.code.as_ptr() as *const u8)
    }

    /// Number of 4 KiB pages (the last may be partial).
    #[inline]
    pub fn pages(&self) -> usize {
        self.code.len()
    }

    #[inline(always)]
    fn note_write(&self, page: usize) -> bool {
        let mark = self.code[page].load(Ordering::Relaxed);
        if mark == 0 {
            return false;
        }
        self.note_marked_write(page, mark)
    }

    /// The slow path of [`note_write`](Self::note_write): the page has a
    /// mark. A watch is one-shot (the write disarms it and moves its
    /// generation); decoded code goes stale as before.
    #[cold]
    fn note_marked_write(&self, page: usize, mark: u8) -> bool {
        if mark & WATCH_MARK != 0 {
            self.code[page].fetch_and(!WATCH_MARK, Ordering::SeqCst);
            self.watch_gen[page].fetch_add(1, Ordering::SeqCst);
        }
        if mark & CODE_MARK == 0 {
            return false;
        }
        self.code[page].fetch_and(!CODE_MARK, Ordering::Relaxed);
        self.code_gen[page].fetch_add(1, Ordering::Relaxed);
        self.code_writes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Arms a monitor's write watch on `page` (RAM offset `page << 12`,
    /// below `pages()`) and returns its generation: the next write to the
    /// page moves it ([`watch_unchanged`](Self::watch_unchanged) turns
    /// false) and disarms the watch. Costs the guest nothing until it
    /// writes the page; then that one store takes the slow path. A store
    /// whose bytes land at the very instant of arming may be missed (the
    /// writer checks the mark after writing; docs/monitor.md).
    pub fn watch_page(&self, page: usize) -> u32 {
        let g = self.watch_gen[page].load(Ordering::SeqCst);
        self.code[page].fetch_or(WATCH_MARK, Ordering::SeqCst);
        g
    }

    /// Whether `page` saw no write since [`watch_page`](Self::watch_page)
    /// gave `gen`.
    pub fn watch_unchanged(&self, page: usize, gen: u32) -> bool {
        self.watch_gen[page].load(Ordering::SeqCst) == gen
    }

    /// How many writes have reached pages marked as code so far: while it
    /// is unchanged, every page's `code_valid` answer is too (for caches
    /// that cannot afford to ask page by page).
    #[inline]
    pub fn code_writes(&self) -> u64 {
        self.code_writes.load(Ordering::Relaxed)
    }

    /// Notes a write to RAM offsets `off..off+len` (len > 0); true if it hit
    /// code.
    fn note_write_range(&self, off: usize, len: usize) -> bool {
        let mut hit = false;
        for page in off >> PAGE_SHIFT..=(off + len - 1) >> PAGE_SHIFT {
            hit |= self.note_write(page);
        }
        hit
    }

    /// Guest-physical load; `Err` if any byte is outside RAM.
    pub fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange> {
        let off = self.offset_of(addr, size as u64).ok_or(OutOfRange { addr, len: size as u64 })?;
        Ok(self.load_off(off, size))
    }

    /// Guest-physical store; `Err` if any byte is outside RAM.
    pub fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange> {
        self.store_checked(addr, size, v).map(|_| ())
    }

    /// As [`store`](Self::store), and says whether the store hit a page
    /// holding decoded code. The store may cross a page.
    pub fn store_checked(&self, addr: u64, size: u8, v: u64) -> Result<bool, OutOfRange> {
        let off = self.offset_of(addr, size as u64).ok_or(OutOfRange { addr, len: size as u64 })?;
        self.write_sized(off, size, v);
        Ok(self.note_write_range(off, size.max(1) as usize))
    }

    /// Copies guest memory into `dst`.
    pub fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        let len = dst.len() as u64;
        let off = self.offset_of(addr, len).ok_or(OutOfRange { addr, len })?;
        let mut i = 0;
        while i < dst.len() {
            if (off + i) % 8 == 0 && dst.len() - i >= 8 {
                let w = self.word::<AtomicU64>(off + i).load(Ordering::Relaxed);
                dst[i..i + 8].copy_from_slice(&w.to_le_bytes());
                i += 8;
            } else {
                dst[i] = self.byte(off + i).load(Ordering::Relaxed);
                i += 1;
            }
        }
        Ok(())
    }

    /// Copies `src` into guest memory.
    pub fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        let len = src.len() as u64;
        let off = self.offset_of(addr, len).ok_or(OutOfRange { addr, len })?;
        if src.is_empty() {
            return Ok(());
        }
        self.fill_with(off, src.len(), |i| u64::from_le_bytes(to_n(&src[i..i + 8])), |i| src[i]);
        self.note_write_range(off, src.len());
        Ok(())
    }

    /// Fills a range of guest memory with zeros.
    pub fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        let off = self.offset_of(addr, len).ok_or(OutOfRange { addr, len })?;
        if len == 0 {
            return Ok(());
        }
        self.fill_with(off, len as usize, |_| 0, |_| 0);
        self.note_write_range(off, len as usize);
        Ok(())
    }

    /// Stores `len` bytes at RAM offset `off` (checked by the caller): an
    /// aligned word `word(i)` where 8 bytes from source index `i` fit in an
    /// aligned host word, byte `byte(i)` elsewhere.
    fn fill_with(&self, off: usize, len: usize, word: impl Fn(usize) -> u64, byte: impl Fn(usize) -> u8) {
        let mut i = 0;
        while i < len {
            if (off + i) % 8 == 0 && len - i >= 8 {
                self.word::<AtomicU64>(off + i).store(word(i), Ordering::Relaxed);
                i += 8;
            } else {
                self.byte(off + i).store(byte(i), Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// An atomic read-modify-write of the naturally aligned 4- or 8-byte
    /// word at `addr` (an AMO): stores `f(old)` and returns `old`, as one
    /// sequentially consistent host operation. `Err` if outside RAM; the
    /// caller has checked alignment (misaligned AMOs trap, §8.4).
    pub fn atomic_rmw(&self, addr: u64, size: u8, f: impl Fn(u64) -> u64) -> Result<(u64, bool), OutOfRange> {
        let off = self.offset_of(addr, size as u64).ok_or(OutOfRange { addr, len: size as u64 })?;
        assert!(off % size as usize == 0, "misaligned AMO reached RAM");
        let old = if size == 4 {
            let w = self.word::<AtomicU32>(off);
            let r = w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(f(v as u64) as u32));
            r.unwrap_or_else(|v| v) as u64
        } else {
            let w = self.word::<AtomicU64>(off);
            w.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(f(v))).unwrap_or_else(|v| v)
        };
        Ok((old, self.note_write(off >> PAGE_SHIFT)))
    }

    /// Replaces the naturally aligned 4- or 8-byte word at `addr` with
    /// `new` if it holds `old`, as one sequentially consistent host
    /// operation (an SC, a page-table A/D update). Returns whether it did,
    /// and whether the write hit a page holding decoded code.
    pub fn compare_exchange(&self, addr: u64, size: u8, old: u64, new: u64) -> Result<(bool, bool), OutOfRange> {
        let off = self.offset_of(addr, size as u64).ok_or(OutOfRange { addr, len: size as u64 })?;
        assert!(off % size as usize == 0, "misaligned compare-exchange reached RAM");
        let done = if size == 4 {
            let w = self.word::<AtomicU32>(off);
            w.compare_exchange(old as u32, new as u32, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        } else {
            let w = self.word::<AtomicU64>(off);
            w.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        };
        Ok((done, done && self.note_write(off >> PAGE_SHIFT)))
    }
}

/// The first `N` bytes of `b` as an array (`b` has at least `N`).
#[inline(always)]
fn to_n<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

/// Guest memory as devices reach it for DMA: guest-physical addresses,
/// bounded accesses. [`GuestRam`] is the plain case; a VM under Strata's
/// hypervisor has a view that translates its guest-physical pages to the
/// machine pages that back them.
pub trait GuestMemory: Send + Sync {
    /// Whether `addr..addr+len` is all reachable.
    fn contains(&self, addr: u64, len: u64) -> bool;
    fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange>;
    fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange>;
    fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange>;
    fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange>;
    fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange>;
}

impl GuestMemory for GuestRam {
    fn contains(&self, addr: u64, len: u64) -> bool {
        GuestRam::contains(self, addr, len)
    }
    fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange> {
        GuestRam::load(self, addr, size)
    }
    fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange> {
        GuestRam::store(self, addr, size, v)
    }
    fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        GuestRam::read_bytes(self, addr, dst)
    }
    fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        GuestRam::write_bytes(self, addr, src)
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        GuestRam::zero(self, addr, len)
    }
}

impl<T: GuestMemory + ?Sized> GuestMemory for std::sync::Arc<T> {
    fn contains(&self, addr: u64, len: u64) -> bool {
        (**self).contains(addr, len)
    }
    fn load(&self, addr: u64, size: u8) -> Result<u64, OutOfRange> {
        (**self).load(addr, size)
    }
    fn store(&self, addr: u64, size: u8, v: u64) -> Result<(), OutOfRange> {
        (**self).store(addr, size, v)
    }
    fn read_bytes(&self, addr: u64, dst: &mut [u8]) -> Result<(), OutOfRange> {
        (**self).read_bytes(addr, dst)
    }
    fn write_bytes(&self, addr: u64, src: &[u8]) -> Result<(), OutOfRange> {
        (**self).write_bytes(addr, src)
    }
    fn zero(&self, addr: u64, len: u64) -> Result<(), OutOfRange> {
        (**self).zero(addr, len)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_write_watch_sees_the_first_write_and_leaves_code_marks_alone() {
        let ram = GuestRam::new(0x8000_0000, 4 << 12).unwrap();
        let g = ram.watch_page(1);
        assert!(ram.watch_unchanged(1, g));
        // A write elsewhere does not move it.
        ram.store(0x8000_0000, 8, 1).unwrap();
        assert!(ram.watch_unchanged(1, g));
        let cg = ram.mark_code(1);
        ram.store(0x8000_1010, 4, 7).unwrap();
        assert!(!ram.watch_unchanged(1, g), "the write to the watched page moved its generation");
        assert!(!ram.code_valid(1, cg), "the same write made the decoded code stale");
        // One-shot: disarmed; a new arm gives a new generation.
        let g2 = ram.watch_page(1);
        assert_ne!(g, g2);
        let cg2 = ram.mark_code(1);
        ram.write_bytes(0x8000_1ff0, &[1; 32]).unwrap();
        assert!(!ram.watch_unchanged(1, g2) && !ram.code_valid(1, cg2));
        let g3 = ram.watch_page(2);
        assert!(ram.watch_unchanged(2, g3));
    }

    use super::*;

    #[test]
    fn loads_and_stores_are_little_endian_and_bounded() {
        let ram = GuestRam::new(0x8000_0000, 0x1000).unwrap();
        ram.store(0x8000_0ff8, 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(ram.load(0x8000_0ff8, 1).unwrap(), 0x88);
        assert_eq!(ram.load(0x8000_0ffc, 4).unwrap(), 0x1122_3344);
        assert!(ram.load(0x8000_0ffc, 8).is_err());
        assert!(ram.load(0x7fff_ffff, 1).is_err());
        assert!(ram.store(0x8000_1000, 1, 0).is_err());
        assert!(ram.load(u64::MAX - 3, 8).is_err());
    }

    #[test]
    fn bulk_copies_are_bounded() {
        let ram = GuestRam::new(0x1000, 0x100).unwrap();
        ram.write_bytes(0x10f0, &[7u8; 16]).unwrap();
        let mut b = [0u8; 16];
        ram.read_bytes(0x10f0, &mut b).unwrap();
        assert_eq!(b, [7u8; 16]);
        assert!(ram.write_bytes(0x10f1, &[0u8; 16]).is_err());
        ram.zero(0x10f0, 16).unwrap();
        assert_eq!(ram.load(0x10f8, 8).unwrap(), 0);
    }

    #[test]
    fn writes_to_code_pages_bump_their_generation() {
        let ram = GuestRam::new(0x8000_0000, 0x3000).unwrap();
        let g = ram.mark_code(1);
        assert!(ram.code_valid(1, g));
        assert!(!ram.store_off(0x10, 4, 0), "page 0 holds no code");
        assert!(ram.code_valid(1, g));
        assert!(ram.store_off(0x1ffc, 4, 1), "page 1 does");
        assert!(!ram.code_valid(1, g));
        // Re-marked, then hit by DMA-style bulk writes and a page-crossing store.
        let g = ram.mark_code(1);
        ram.write_bytes(0x8000_0ff0, &[1; 0x20]).unwrap();
        assert!(!ram.code_valid(1, g));
        let g = ram.mark_code(2);
        assert_eq!(ram.store_checked(0x8000_1ffc, 8, 0), Ok(true));
        assert!(!ram.code_valid(2, g));
        let g = ram.mark_code(0);
        let w = ram.code_writes();
        ram.zero(0x8000_0000, 1).unwrap();
        assert!(!ram.code_valid(0, g));
        assert_eq!(ram.code_writes(), w + 1);
        // Writes to unmarked pages leave the count alone.
        ram.zero(0x8000_0000, 1).unwrap();
        assert_eq!(ram.code_writes(), w + 1);
    }

    #[test]
    fn atomics_from_many_threads_lose_nothing() {
        // Four threads add to one word with atomic_rmw and to another with a
        // compare-exchange loop (an LR/SC retry loop's shape); plain stores
        // and misaligned accesses race beside them on other words.
        let ram = std::sync::Arc::new(GuestRam::new(0x8000_0000, 0x1000).unwrap());
        let (threads, per) = (4u64, 20_000u64);
        std::thread::scope(|s| {
            for t in 0..threads {
                let ram = &ram;
                s.spawn(move || {
                    for i in 0..per {
                        ram.atomic_rmw(0x8000_0000, 8, |v| v.wrapping_add(1)).unwrap();
                        loop {
                            let old = ram.load(0x8000_0008, 4).unwrap();
                            if ram.compare_exchange(0x8000_0008, 4, old, old + 1).unwrap().0 {
                                break;
                            }
                        }
                        ram.store(0x8000_0010 + t * 8, 8, i).unwrap();
                        ram.store(0x8000_0043, 8, u64::MAX).unwrap();
                    }
                });
            }
        });
        assert_eq!(ram.load(0x8000_0000, 8).unwrap(), threads * per);
        assert_eq!(ram.load(0x8000_0008, 4).unwrap(), threads * per);
        for t in 0..threads {
            assert_eq!(ram.load(0x8000_0010 + t * 8, 8).unwrap(), per - 1);
        }
        assert_eq!(ram.load(0x8000_0043, 8).unwrap(), u64::MAX);
        // A 4-byte AMO returns the old word and writes 32 bits only.
        ram.store(0x8000_0100, 8, 0x1111_1111_ffff_ffff).unwrap();
        assert_eq!(ram.atomic_rmw(0x8000_0100, 4, |v| v + 1).unwrap().0, 0xffff_ffff);
        assert_eq!(ram.load(0x8000_0100, 8).unwrap(), 0x1111_1111_0000_0000);
        assert_eq!(ram.compare_exchange(0x8000_0100, 4, 1, 2).unwrap(), (false, false));
        assert!(ram.atomic_rmw(0x8000_1000, 8, |v| v).is_err());
    }

    #[test]
    fn storage_is_page_aligned() {
        // Naturally aligned guest accesses must be naturally aligned host
        // accesses (the atomics need it).
        let ram = GuestRam::new(0x8000_0000, 0x2000).unwrap();
        assert_eq!(ram.raw_parts().0 as usize % STORAGE_ALIGN, 0);
    }

    #[test]
    fn absurd_sizes_are_an_error_not_an_abort() {
        assert!(GuestRam::new(0, u64::MAX / 2).is_err());
        assert!(GuestRam::new(u64::MAX - 10, 100).is_err());
    }
}

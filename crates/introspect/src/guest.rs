//! What a monitor needs of the machine, as a trait: guest-physical reads,
//! write watches on guest-physical pages, and the harts' trap-relevant
//! registers. The platform implements it over `GuestRam` (crates/platform
//! src/monitor.rs); tests implement it over a byte vector.
//!
//! ## Write watches
//!
//! A watch is *armed* on a page ([`GuestMemory::arm`]) and gives a
//! generation; [`GuestMemory::unchanged`] says whether any write reached
//! the page since. A check arms every page before it reads it and asks
//! again when done: a page that moved means the guest wrote what the check
//! was reading, and the check starts again (optimistic retry). A watch may
//! report a write that changed nothing (a store of the same value, or to
//! another part of the page); it never misses one that landed after
//! arming (see docs/monitor.md for the one exception, a store in flight at
//! the instant of arming).

/// A guest-physical access outside RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("guest-physical {addr:#x}+{len:#x} is outside RAM")]
pub struct PhysError {
    pub addr: u64,
    pub len: u64,
}

/// The machine, as a monitor sees it. Every method may be called from the
/// monitor's own thread while the harts run.
pub trait GuestMemory: Send + Sync {
    /// Reads guest-physical bytes.
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), PhysError>;
    /// Arms a write watch on the page holding `addr`; its generation.
    fn arm(&self, addr: u64) -> Option<u32>;
    /// Whether the page at `addr` saw no write since `arm` gave `gen`.
    fn unchanged(&self, addr: u64, gen: u32) -> bool;
    /// Per hart: `(satp, stvec)` as last published (zero if unknown).
    fn hart_regs(&self) -> Vec<(u64, u64)>;
}

impl<T: GuestMemory + ?Sized> GuestMemory for std::sync::Arc<T> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        (**self).read_phys(addr, buf)
    }
    fn arm(&self, addr: u64) -> Option<u32> {
        (**self).arm(addr)
    }
    fn unchanged(&self, addr: u64, gen: u32) -> bool {
        (**self).unchanged(addr, gen)
    }
    fn hart_regs(&self) -> Vec<(u64, u64)> {
        (**self).hart_regs()
    }
}

/// A test machine: RAM as bytes, every write bumping its page's
/// generation.
pub struct VecGuest {
    pub base: u64,
    pub ram: std::sync::Mutex<Vec<u8>>,
    pub gens: std::sync::Mutex<Vec<u32>>,
    pub regs: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl VecGuest {
    pub fn new(base: u64, size: usize) -> Self {
        VecGuest {
            base,
            ram: std::sync::Mutex::new(vec![0; size]),
            gens: std::sync::Mutex::new(vec![0; size.div_ceil(4096)]),
            regs: std::sync::Mutex::new(vec![]),
        }
    }
    /// A guest write: the bytes, and the page generations.
    pub fn write(&self, addr: u64, data: &[u8]) {
        let off = (addr - self.base) as usize;
        self.ram.lock().expect("test lock")[off..off + data.len()].copy_from_slice(data);
        let mut g = self.gens.lock().expect("test lock");
        for p in off / 4096..=(off + data.len() - 1) / 4096 {
            g[p] += 1;
        }
    }
    pub fn write_u64(&self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes())
    }
}

impl GuestMemory for VecGuest {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), PhysError> {
        let ram = self.ram.lock().expect("test lock");
        let err = PhysError { addr, len: buf.len() as u64 };
        let off = addr.checked_sub(self.base).ok_or(err)? as usize;
        let src = ram.get(off..off.checked_add(buf.len()).ok_or(err)?).ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn arm(&self, addr: u64) -> Option<u32> {
        let off = addr.checked_sub(self.base)? as usize;
        self.gens.lock().expect("test lock").get(off / 4096).copied()
    }
    fn unchanged(&self, addr: u64, gen: u32) -> bool {
        self.arm(addr) == Some(gen)
    }
    fn hart_regs(&self) -> Vec<(u64, u64)> {
        self.regs.lock().expect("test lock").clone()
    }
}

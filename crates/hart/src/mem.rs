//! The hart's memory paths: fetch, load, store and AMO, with the TLB fast
//! path and the slow path through the page-table walker, PMP and the bus.

use crate::csr::{satp, status};
use crate::trap::{cause, Trap};
use crate::{Bus, Hart, Priv};
use strata_memory::GuestRam;
use strata_mmu::pmp::Pmp;
use strata_mmu::walk::{self, PtMemory, Scheme, WalkError};
use strata_mmu::Access;

/// Page-table memory for single-stage walks: RAM only, with each PTE access
/// checked by PMP as an S-mode access (Priv. §3.7.1: implicit accesses of a
/// walk are checked at S-mode privilege).
struct PhysPt<'a> {
    ram: &'a GuestRam,
    pmp: &'a Pmp,
}

impl PtMemory for PhysPt<'_> {
    type Error = ();
    fn read_pte(&mut self, a: u64) -> Result<u64, ()> {
        if !self.pmp.check(a, 8, Access::Load, Priv::S) {
            return Err(());
        }
        self.ram.load(a, 8).map_err(|_| ())
    }
    fn update_pte(&mut self, a: u64, old: u64, new: u64) -> Result<bool, ()> {
        if !self.pmp.check(a, 8, Access::Store, Priv::S) {
            return Err(());
        }
        // One host thread runs every hart, so this read-compare-write is
        // atomic with respect to the guest.
        let cur = self.ram.load(a, 8).map_err(|_| ())?;
        if cur != old {
            return Ok(false);
        }
        self.ram.store(a, 8, new).map_err(|_| ())?;
        Ok(true)
    }
}

fn page_fault(a: Access) -> u64 {
    match a {
        Access::Fetch => cause::INSN_PAGE,
        Access::Load => cause::LOAD_PAGE,
        Access::Store => cause::STORE_PAGE,
    }
}

fn access_fault(a: Access) -> u64 {
    match a {
        Access::Fetch => cause::INSN_ACCESS,
        Access::Load => cause::LOAD_ACCESS,
        Access::Store => cause::STORE_ACCESS,
    }
}

impl Hart {
    /// The privilege an access is made at (§3.1.6.3: MPRV makes M-mode loads
    /// and stores use MPP's privilege; fetches are unaffected).
    fn access_priv(&self, a: Access) -> Priv {
        if a != Access::Fetch && self.prv == Priv::M && self.csr.mstatus & status::MPRV != 0 {
            Priv::from_bits(self.csr.mstatus >> status::MPP_SHIFT)
        } else {
            self.prv
        }
    }

    /// Translates `va` for an access of `len` bytes that does not cross a
    /// page, checks PMP, and caches the page in the TLB when it may.
    fn translate(&mut self, va: u64, len: u64, a: Access) -> Result<u64, Trap> {
        let prv = self.access_priv(a);
        let mode = self.csr.satp >> satp::MODE_SHIFT;
        let mut page_shift = 12;
        let pa = if prv == Priv::M || mode == satp::BARE {
            va
        } else {
            let scheme = if mode == satp::SV48 { Scheme::SV48 } else { Scheme::SV39 };
            let ms = self.csr.mstatus;
            let perms = walk::Perms {
                user: prv == Priv::U,
                sum: ms & status::SUM != 0,
                mxr: ms & status::MXR != 0,
                hlvx: false,
            };
            let mut pt = PhysPt { ram: &self.ram, pmp: &self.pmp };
            let r = walk::walk(&mut pt, scheme, self.csr.satp & satp::PPN_MASK, va, a, perms);
            self.stats.walks += 1;
            match r {
                Ok(leaf) => {
                    self.stats.walk_refs += leaf.refs as u64;
                    page_shift = leaf.page_shift;
                    leaf.pa
                }
                Err(WalkError::PageFault) => return Err(Trap::new(page_fault(a), va)),
                Err(WalkError::Mem(())) => return Err(Trap::new(access_fault(a), va)),
            }
        };
        if !self.pmp.check(pa, len, a, prv) {
            return Err(Trap::new(access_fault(a), va));
        }
        if let Some(off) = self.ram.offset_of(pa & !0xfff, 0x1000) {
            if self.pmp.page_allows(pa, a, prv) {
                let ctx = if a == Access::Fetch { self.ctx_fetch } else { self.ctx_data };
                self.tlb.insert(a, va, ctx, off as u64, page_shift);
            }
        }
        Ok(pa)
    }

    /// Translates the fetch of the instruction at `pc` (filling the TLB
    /// when the page may be cached).
    pub(crate) fn translate_fetch(&mut self, pc: u64) -> Result<u64, Trap> {
        self.translate(pc, 2, Access::Fetch)
    }

    /// Fetches the instruction at `pc`: 32 bits, or 16 if the low half is a
    /// compressed instruction.
    #[inline(always)]
    pub(crate) fn fetch(&mut self, bus: &mut dyn Bus) -> Result<u32, Trap> {
        let pc = self.pc;
        if pc & 0xfff <= 0xffc {
            if let Some(off) = self.tlb.lookup(Access::Fetch, pc, self.ctx_fetch) {
                return Ok(self.ram.load_off(off, 4) as u32);
            }
        }
        self.fetch_slow(bus)
    }

    fn fetch_half(&mut self, va: u64) -> Result<u32, Trap> {
        if let Some(off) = self.tlb.lookup(Access::Fetch, va, self.ctx_fetch) {
            return Ok(self.ram.load_off(off, 2) as u32);
        }
        self.tlb.note_miss(Access::Fetch);
        let pa = self.translate(va, 2, Access::Fetch)?;
        // Instructions execute from RAM only (QEMU's virt board has a ROM
        // at 0x1000 that Strata does not need: harts start at the firmware).
        self.ram.load(pa, 2).map(|v| v as u32).map_err(|_| Trap::new(cause::INSN_ACCESS, va))
    }

    #[cold]
    fn fetch_slow(&mut self, _bus: &mut dyn Bus) -> Result<u32, Trap> {
        let pc = self.pc;
        let lo = self.fetch_half(pc)?;
        if lo & 3 != 3 {
            return Ok(lo);
        }
        // A 32-bit instruction whose upper half may lie on the next page:
        // a fault there reports that half's address (§3.1.16 mtval).
        let hi = self.fetch_half(pc.wrapping_add(2))?;
        Ok(lo | hi << 16)
    }

    #[inline(always)]
    pub(crate) fn load(&mut self, bus: &mut dyn Bus, va: u64, size: u8) -> Result<u64, Trap> {
        if (va & 0xfff) + size as u64 <= 0x1000 {
            if let Some(off) = self.tlb.lookup(Access::Load, va, self.ctx_data) {
                return Ok(self.ram.load_off(off, size));
            }
        }
        self.load_slow(bus, va, size)
    }

    #[cold]
    fn load_slow(&mut self, bus: &mut dyn Bus, va: u64, size: u8) -> Result<u64, Trap> {
        if (va & 0xfff) + size as u64 > 0x1000 {
            // Misaligned across a page: byte by byte, so each page is
            // translated and checked on its own (misaligned accesses are
            // supported in hardware here, as §2.6 permits).
            let mut v = 0;
            for i in 0..size as u64 {
                v |= self.load_slow(bus, va.wrapping_add(i), 1)? << (8 * i);
            }
            return Ok(v);
        }
        self.tlb.note_miss(Access::Load);
        let pa = self.translate(va, size as u64, Access::Load)?;
        if let Ok(v) = self.ram.load(pa, size) {
            return Ok(v);
        }
        self.event = true;
        bus.mmio_read(pa, size).ok_or(Trap::new(cause::LOAD_ACCESS, va))
    }

    #[inline(always)]
    pub(crate) fn store(&mut self, bus: &mut dyn Bus, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        if (va & 0xfff) + size as u64 <= 0x1000 {
            if let Some(off) = self.tlb.lookup(Access::Store, va, self.ctx_data) {
                if self.ram.store_off(off, size, v) {
                    // The page held decoded code: look at it afresh.
                    self.event = true;
                }
                return Ok(());
            }
        }
        self.store_slow(bus, va, size, v)
    }

    #[cold]
    fn store_slow(&mut self, bus: &mut dyn Bus, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        if (va & 0xfff) + size as u64 > 0x1000 {
            // Check both pages before writing either byte, so a fault on the
            // second page leaves memory unchanged.
            let second = (va | 0xfff).wrapping_add(1);
            self.translate(va, second.wrapping_sub(va), Access::Store)?;
            self.translate(second, va.wrapping_add(size as u64).wrapping_sub(second), Access::Store)?;
            for i in 0..size as u64 {
                self.store_slow(bus, va.wrapping_add(i), 1, v >> (8 * i))?;
            }
            return Ok(());
        }
        self.tlb.note_miss(Access::Store);
        let pa = self.translate(va, size as u64, Access::Store)?;
        if let Ok(hit_code) = self.ram.store_checked(pa, size, v) {
            self.event |= hit_code;
            return Ok(());
        }
        self.event = true;
        if bus.mmio_write(pa, size, v) {
            Ok(())
        } else {
            Err(Trap::new(cause::STORE_ACCESS, va))
        }
    }

    /// Translates the address of an LR, SC or AMO. These must be naturally
    /// aligned (§8.2, §8.4); a misaligned one raises an address-misaligned
    /// exception (load for LR, store/AMO otherwise).
    pub(crate) fn atomic_pa(&mut self, va: u64, size: u8, a: Access) -> Result<u64, Trap> {
        if va & (size as u64 - 1) != 0 {
            let c = if a == Access::Load { cause::LOAD_MISALIGNED } else { cause::STORE_MISALIGNED };
            return Err(Trap::new(c, va));
        }
        let pa = self.translate(va, size as u64, a)?;
        // AMOs need read permission too; W without R is a reserved PTE
        // encoding, so a writable page is readable. PMP is checked apart.
        if a == Access::Store && !self.pmp.check(pa, size as u64, Access::Load, self.access_priv(a)) {
            return Err(Trap::new(cause::STORE_ACCESS, va));
        }
        Ok(pa)
    }

    /// Reads physical memory for an atomic: RAM, or a device.
    pub(crate) fn phys_load(&mut self, bus: &mut dyn Bus, pa: u64, va: u64, size: u8, fault: u64) -> Result<u64, Trap> {
        match self.ram.load(pa, size) {
            Ok(v) => Ok(v),
            Err(_) => {
                self.event = true;
                bus.mmio_read(pa, size).ok_or(Trap::new(fault, va))
            }
        }
    }

    pub(crate) fn phys_store(&mut self, bus: &mut dyn Bus, pa: u64, va: u64, size: u8, v: u64) -> Result<(), Trap> {
        if let Ok(hit_code) = self.ram.store_checked(pa, size, v) {
            self.event |= hit_code;
            return Ok(());
        }
        self.event = true;
        if bus.mmio_write(pa, size, v) {
            Ok(())
        } else {
            Err(Trap::new(cause::STORE_ACCESS, va))
        }
    }

    pub(crate) fn set_reservation(&mut self, pa: Option<u64>) {
        self.reservation = pa;
    }

    pub(crate) fn reservation(&self) -> Option<u64> {
        self.reservation
    }

    pub(crate) fn flush_tlb(&mut self, va: Option<u64>) {
        // The run loop's cached code page came from the TLB.
        self.event = true;
        match va {
            Some(va) => self.tlb.flush_va(va),
            None => self.tlb.flush(),
        }
    }
}

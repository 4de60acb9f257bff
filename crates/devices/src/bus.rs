//! The MMIO bus: a sorted set of non-overlapping windows, each owned by one
//! device.

use crate::MmioDevice;

pub struct Window {
    pub base: u64,
    pub size: u64,
    pub name: &'static str,
    pub dev: Box<dyn MmioDevice>,
}

#[derive(Default)]
pub struct Bus {
    windows: Vec<Window>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `dev` at `base..base+size`. Overlaps are a platform bug and are
    /// reported, not silently accepted.
    pub fn add(&mut self, base: u64, size: u64, name: &'static str, dev: Box<dyn MmioDevice>) -> Result<(), String> {
        let end = base.checked_add(size).ok_or_else(|| format!("{name}: window overflows"))?;
        for w in &self.windows {
            if base < w.base + w.size && w.base < end {
                return Err(format!("{name} at {base:#x} overlaps {} at {:#x}", w.name, w.base));
            }
        }
        self.windows.push(Window { base, size, name, dev });
        self.windows.sort_by_key(|w| w.base);
        Ok(())
    }

    #[inline]
    fn find(&mut self, addr: u64, size: u8) -> Option<(&mut Window, u64)> {
        let i = self.windows.partition_point(|w| w.base <= addr);
        let w = self.windows.get_mut(i.checked_sub(1)?)?;
        let off = addr - w.base;
        if off.checked_add(size as u64)? <= w.size {
            Some((w, off))
        } else {
            None
        }
    }

    /// `None` when no device answers at `addr` (the hart raises an access
    /// fault).
    pub fn read(&mut self, addr: u64, size: u8) -> Option<u64> {
        let (w, off) = self.find(addr, size)?;
        Some(w.dev.read(off, size))
    }

    /// `false` when no device answers at `addr`.
    pub fn write(&mut self, addr: u64, size: u8, value: u64) -> bool {
        match self.find(addr, size) {
            Some((w, off)) => {
                w.dev.write(off, size, value);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reg(u64);
    impl MmioDevice for Reg {
        fn read(&mut self, off: u64, _size: u8) -> u64 {
            self.0 + off
        }
        fn write(&mut self, _off: u64, _size: u8, v: u64) {
            self.0 = v;
        }
    }

    #[test]
    fn routes_by_window_and_rejects_gaps_and_overlaps() {
        let mut bus = Bus::new();
        bus.add(0x1000, 0x100, "a", Box::new(Reg(0))).unwrap();
        bus.add(0x3000, 0x100, "b", Box::new(Reg(100))).unwrap();
        assert!(bus.add(0x10ff, 0x10, "c", Box::new(Reg(0))).is_err());
        assert_eq!(bus.read(0x3004, 4), Some(104));
        assert!(bus.write(0x1000, 8, 5));
        assert_eq!(bus.read(0x1001, 1), Some(6));
        assert_eq!(bus.read(0x2000, 4), None);
        assert_eq!(bus.read(0x10fe, 4), None, "access running past the window");
        assert!(!bus.write(0xfff, 1, 0));
    }
}

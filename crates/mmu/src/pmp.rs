//! Physical memory protection (Privileged Architecture 20211203, §3.7).
//!
//! Sixteen entries, grain 4 bytes (G = 0), with the OFF, TOR, NA4 and NAPOT
//! address-matching modes and the L (lock) bit. On RV64 the configuration
//! registers are `pmpcfg0` and `pmpcfg2` (§3.7.1: odd-numbered pmpcfg
//! registers are illegal on RV64).

use crate::{Access, Priv};

pub const ENTRIES: usize = 16;

const R: u8 = 1;
const W: u8 = 2;
const X: u8 = 4;
const A_SHIFT: u8 = 3;
const L: u8 = 0x80;

const A_OFF: u8 = 0;
const A_TOR: u8 = 1;
const A_NA4: u8 = 2;
const A_NAPOT: u8 = 3;

/// pmpaddr holds bits 55..2 of a 56-bit physical address (§3.7.1).
const ADDR_MASK: u64 = (1 << 54) - 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Range {
    lo: u64,
    /// Exclusive; `lo == hi` means the entry matches nothing.
    hi: u64,
    perm: u8,
    locked: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Pmp {
    cfg: [u8; ENTRIES],
    addr: [u64; ENTRIES],
    /// Decoded ranges of the active (A != OFF) entries, in priority order.
    ranges: Vec<Range>,
}

impl Pmp {
    pub fn new() -> Self {
        Self::default()
    }

    fn mode(cfg: u8) -> u8 {
        (cfg >> A_SHIFT) & 3
    }

    fn locked(&self, i: usize) -> bool {
        self.cfg[i] & L != 0
    }

    /// Reads `pmpcfg<n>` for n = 0 or 2 (RV64); other numbers read 0 and are
    /// rejected by the hart before they get here.
    pub fn read_cfg(&self, n: usize) -> u64 {
        let base = n * 4;
        if base + 8 > ENTRIES {
            return 0;
        }
        (0..8).fold(0u64, |v, k| v | (self.cfg[base + k] as u64) << (8 * k))
    }

    /// Writes `pmpcfg<n>`. Locked bytes keep their value; the reserved
    /// combination R=0,W=1 is not stored (the field is WARL: the write of
    /// that byte is ignored, which is what QEMU does too); bits 6..5 are
    /// reserved and read as zero.
    pub fn write_cfg(&mut self, n: usize, val: u64) {
        let base = n * 4;
        if base + 8 > ENTRIES {
            return;
        }
        for k in 0..8 {
            let i = base + k;
            if self.locked(i) {
                continue;
            }
            let b = (val >> (8 * k)) as u8 & !0x60;
            if b & (R | W) == W {
                continue;
            }
            self.cfg[i] = b;
        }
        self.rebuild();
    }

    pub fn read_addr(&self, i: usize) -> u64 {
        self.addr.get(i).copied().unwrap_or(0)
    }

    /// Writes `pmpaddr<i>`, unless entry i is locked, or entry i+1 is a
    /// locked TOR entry that uses `pmpaddr<i>` as its bottom (§3.7.1).
    pub fn write_addr(&mut self, i: usize, val: u64) {
        if i >= ENTRIES || self.locked(i) {
            return;
        }
        if i + 1 < ENTRIES && self.locked(i + 1) && Self::mode(self.cfg[i + 1]) == A_TOR {
            return;
        }
        self.addr[i] = val & ADDR_MASK;
        self.rebuild();
    }

    fn rebuild(&mut self) {
        self.ranges.clear();
        for i in 0..ENTRIES {
            let cfg = self.cfg[i];
            let a = self.addr[i];
            let (lo, hi) = match Self::mode(cfg) {
                A_OFF => continue,
                A_TOR => {
                    let lo = if i == 0 { 0 } else { self.addr[i - 1] << 2 };
                    let hi = a << 2;
                    if lo >= hi {
                        (0, 0)
                    } else {
                        (lo, hi)
                    }
                }
                A_NA4 => (a << 2, (a << 2) + 4),
                _ => {
                    debug_assert_eq!(Self::mode(cfg), A_NAPOT);
                    // The number of trailing ones in pmpaddr gives the size:
                    // 2^(ones+3) bytes.
                    let ones = a.trailing_ones();
                    if ones >= 54 {
                        (0, 1 << 56)
                    } else {
                        let size = 1u64 << (ones + 3);
                        let base = (a << 2) & !(size - 1);
                        (base, base + size)
                    }
                }
            };
            self.ranges.push(Range { lo, hi, perm: cfg & (R | W | X), locked: cfg & L != 0 });
        }
    }

    fn need(access: Access) -> u8 {
        match access {
            Access::Fetch => X,
            Access::Load => R,
            Access::Store => W,
        }
    }

    /// The permissions (R=1, W=2, X=4) that apply at `priv` to every byte of
    /// `addr..addr+len`, or `None` if the bytes are not all governed by the
    /// same entry (which fails any access, §3.7.1 "Priority and Matching
    /// Logic").
    pub fn perms(&self, addr: u64, len: u64, prv: Priv) -> Option<u8> {
        let end = addr.checked_add(len)?;
        for r in &self.ranges {
            if r.lo < end && addr < r.hi {
                if !(r.lo <= addr && end <= r.hi) {
                    return None;
                }
                return Some(if prv == Priv::M && !r.locked { R | W | X } else { r.perm });
            }
        }
        // No entry matches: M-mode succeeds; S and U fail because entries are
        // implemented.
        Some(if prv == Priv::M { R | W | X } else { 0 })
    }

    /// Whether an access of `len` bytes at `addr` is allowed.
    #[inline]
    pub fn check(&self, addr: u64, len: u64, access: Access, prv: Priv) -> bool {
        if self.ranges.is_empty() && prv == Priv::M {
            return true;
        }
        self.perms(addr, len, prv).is_some_and(|p| p & Self::need(access) != 0)
    }

    /// Whether a whole aligned 4 KiB page allows `access` at `prv`, so that
    /// a TLB entry for it may skip per-access PMP checks.
    pub fn page_allows(&self, page: u64, access: Access, prv: Priv) -> bool {
        self.check(page & !0xfff, 0x1000, access, prv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn napot(base: u64, size: u64) -> u64 {
        (base >> 2) | ((size >> 3) - 1)
    }

    #[test]
    fn no_entries_m_allowed_s_denied() {
        let p = Pmp::new();
        assert!(p.check(0x8000_0000, 8, Access::Store, Priv::M));
        assert!(!p.check(0x8000_0000, 8, Access::Load, Priv::S));
    }

    #[test]
    fn napot_tor_na4_and_priority() {
        let mut p = Pmp::new();
        // entry 0: NA4 at 0x8000_0000, no permissions
        p.write_addr(0, 0x8000_0000 >> 2);
        // entry 1: NAPOT 0x8000_0000..+64KiB, R only
        p.write_addr(1, napot(0x8000_0000, 0x1_0000));
        // entry 3: TOR 0 .. 1<<40 (bottom = pmpaddr2 = 0), RWX
        p.write_addr(3, (1u64 << 40) >> 2);
        let cfg = (A_NA4 << 3) as u64 | ((A_NAPOT << 3 | R) as u64) << 8 | ((A_TOR << 3 | R | W | X) as u64) << 24;
        p.write_cfg(0, cfg);
        assert!(!p.check(0x8000_0000, 4, Access::Load, Priv::S), "NA4 entry wins");
        assert!(p.check(0x8000_0004, 4, Access::Load, Priv::S));
        assert!(!p.check(0x8000_0004, 4, Access::Store, Priv::S));
        assert!(!p.check(0x8000_0002, 4, Access::Load, Priv::S), "straddles two entries");
        assert!(p.check(0x9000_0000, 8, Access::Store, Priv::U), "TOR catch-all");
        assert!(p.check(0x8000_0000, 4, Access::Store, Priv::M), "unlocked entries do not bind M");
        assert!(!p.page_allows(0x8000_0000, Access::Load, Priv::S));
        assert!(p.page_allows(0x8000_1000, Access::Load, Priv::S));
    }

    #[test]
    fn lock_binds_m_and_freezes_entry_and_tor_bottom() {
        let mut p = Pmp::new();
        p.write_addr(0, 0x1000 >> 2);
        p.write_addr(1, 0x2000 >> 2);
        p.write_cfg(0, ((L | A_TOR << 3 | R) as u64) << 8);
        assert!(!p.check(0x1800, 4, Access::Store, Priv::M));
        assert!(p.check(0x1800, 4, Access::Load, Priv::M));
        p.write_addr(0, 0);
        p.write_addr(1, 0x3000 >> 2);
        assert_eq!(p.read_addr(0), 0x1000 >> 2, "bottom of a locked TOR is frozen");
        assert_eq!(p.read_addr(1), 0x2000 >> 2);
        p.write_cfg(0, 0);
        assert_eq!(p.read_cfg(0) >> 8 & 0xff, (L | A_TOR << 3 | R) as u64);
    }

    #[test]
    fn reserved_rw_combination_is_not_stored() {
        let mut p = Pmp::new();
        p.write_cfg(0, (A_NA4 << 3 | W) as u64);
        assert_eq!(p.read_cfg(0), 0);
        assert_eq!(p.read_cfg(1), 0);
    }
}

//! Page-table formats: the PTE bits and the geometry of every translation
//! scheme Strata knows, single-stage Sv39/Sv48/Sv57 and the G-stage forms
//! Sv39x4/Sv48x4/Sv57x4.
//!
//! PTE layout (Priv. §4.3.1 Figure 4.18, §4.4.1 Figure 4.21 for 64-bit
//! PTEs; Sv48 and Sv57 use the same layout, §4.5.1, §4.6.1):
//!
//! | bits   | field | meaning                                          |
//! |--------|-------|--------------------------------------------------|
//! | 0      | V     | valid                                            |
//! | 1–3    | R W X | permissions; all zero = pointer to the next level; W without R is reserved |
//! | 4      | U     | user page (every G-stage leaf has U=1, §8.5.1)   |
//! | 5      | G     | global mapping                                   |
//! | 6–7    | A D   | accessed, dirty                                  |
//! | 8–9    | RSW   | for software                                     |
//! | 10–53  | PPN   | physical page number                             |
//! | 54–60  |       | reserved, must be zero                           |
//! | 61–62  | PBMT  | Svpbmt page-based memory types                   |
//! | 63     | N     | Svnapot                                          |
//!
//! The x4 forms (§8.5.1) widen the root index by two bits: the root table
//! is 16 KiB (2048 entries) and guest-physical addresses are zero-extended,
//! not sign-extended.

pub const V: u64 = 1 << 0;
pub const R: u64 = 1 << 1;
pub const W: u64 = 1 << 2;
pub const X: u64 = 1 << 3;
pub const U: u64 = 1 << 4;
pub const G: u64 = 1 << 5;
pub const A: u64 = 1 << 6;
pub const D: u64 = 1 << 7;
/// PPN field: bits 53..10.
pub const PPN_SHIFT: u32 = 10;
pub const PPN_MASK: u64 = (1 << 44) - 1;
/// Bits 60..54: reserved for future standard use.
pub const RESERVED: u64 = 0x7f << 54;
/// Bits 62..61: Svpbmt's memory type.
pub const PBMT: u64 = 3 << 61;
/// Bit 63: Svnapot.
pub const N: u64 = 1 << 63;
/// Bits 63..54, which must all be zero without Svpbmt and Svnapot (a PTE
/// with any of them set is a page fault, §4.4.1). Strata implements
/// neither extension.
pub const HIGH_BITS: u64 = RESERVED | PBMT | N;

/// The base page: 4 KiB (§4.3).
pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Bits of virtual page number per level (§4.4.1): 512 entries of 8 bytes
/// fill a page.
pub const LEVEL_BITS: u32 = 9;

/// The physical page number of `pte`.
#[inline]
pub const fn ppn(pte: u64) -> u64 {
    (pte >> PPN_SHIFT) & PPN_MASK
}

/// Whether `pte` (valid) is a leaf: any of R, W, X set (§4.3.2 step 4).
#[inline]
pub const fn is_leaf(pte: u64) -> bool {
    pte & (R | X) != 0
}

/// A translation scheme: how many levels, and whether it is an x4 form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scheme {
    /// Number of levels: 3 for Sv39(x4), 4 for Sv48(x4), 5 for Sv57(x4).
    pub levels: u32,
    /// A G-stage "x4" form: the root index is two bits wider and takes a
    /// 16 KiB root table (§8.5.1).
    pub x4: bool,
}

impl Scheme {
    pub const SV39: Scheme = Scheme { levels: 3, x4: false };
    pub const SV48: Scheme = Scheme { levels: 4, x4: false };
    pub const SV57: Scheme = Scheme { levels: 5, x4: false };
    pub const SV39X4: Scheme = Scheme { levels: 3, x4: true };
    pub const SV48X4: Scheme = Scheme { levels: 4, x4: true };
    pub const SV57X4: Scheme = Scheme { levels: 5, x4: true };

    /// Width of the virtual (or guest-physical) address in bits.
    pub const fn va_bits(self) -> u32 {
        PAGE_SHIFT + LEVEL_BITS * self.levels + if self.x4 { 2 } else { 0 }
    }

    /// Whether `va` is a legal input address. Single-stage VAs must be
    /// sign-extended from their top bit (§4.4.1); guest-physical addresses
    /// for the x4 forms must have all bits above the width zero (§8.5.1).
    pub const fn va_ok(self, va: u64) -> bool {
        let bits = self.va_bits();
        if self.x4 {
            va >> bits == 0
        } else {
            let shift = 64 - bits;
            ((va << shift) as i64 >> shift) as u64 == va
        }
    }

    /// Width of the table index at `level` (0 = the leaf level): 9 bits,
    /// 11 at the root of an x4 form.
    pub const fn index_bits(self, level: u32) -> u32 {
        if self.x4 && level == self.levels - 1 {
            LEVEL_BITS + 2
        } else {
            LEVEL_BITS
        }
    }

    /// The index into the table at `level` that `va` takes.
    pub const fn index(self, va: u64, level: u32) -> u64 {
        (va >> (PAGE_SHIFT + LEVEL_BITS * level)) & ((1 << self.index_bits(level)) - 1)
    }

    /// log2 of the size of a leaf at `level` (12, 21, 30, 39, 48).
    pub const fn page_shift(level: u32) -> u32 {
        PAGE_SHIFT + LEVEL_BITS * level
    }

    /// The `satp.MODE` (single-stage) or `hgatp.MODE` (x4) value that
    /// selects this scheme (Tables 4.4 and 8.6 give the x4 form the number
    /// of its single-stage twin).
    pub const fn atp_mode(self) -> u64 {
        match self.levels {
            3 => crate::csr::satp::SV39,
            4 => crate::csr::satp::SV48,
            _ => crate::csr::satp::SV57,
        }
    }

    /// The scheme `satp.MODE` (or, with `x4`, `hgatp.MODE`) selects; `None`
    /// for Bare and the reserved values.
    pub const fn from_atp_mode(mode: u64, x4: bool) -> Option<Scheme> {
        let levels = match mode {
            crate::csr::satp::SV39 => 3,
            crate::csr::satp::SV48 => 4,
            crate::csr::satp::SV57 => 5,
            _ => return None,
        };
        Some(Scheme { levels, x4 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::hgatp;

    #[test]
    fn geometry_as_the_spec_gives_it() {
        assert_eq!(
            [Scheme::SV39, Scheme::SV48, Scheme::SV57].map(|s| s.va_bits()),
            [39, 48, 57],
            "§4.4–4.6: 39-, 48- and 57-bit virtual addresses"
        );
        assert_eq!([Scheme::SV39X4, Scheme::SV48X4, Scheme::SV57X4].map(|s| s.va_bits()), [41, 50, 59], "§8.5.1");
        assert_eq!(Scheme::SV39X4.index_bits(2), 11);
        assert_eq!(Scheme::SV39X4.index_bits(1), 9);
        assert_eq!(Scheme::SV48.index_bits(3), 9);
        assert_eq!(Scheme::SV39X4.index(0x7ff << 30 | 0x1234, 2), 0x7ff);
        assert!(Scheme::SV39.va_ok(0xffff_ffc0_0000_0000));
        assert!(!Scheme::SV39.va_ok(1 << 39));
        assert!(Scheme::SV39X4.va_ok((1 << 41) - 1) && !Scheme::SV39X4.va_ok(1 << 41));
        assert_eq!(Scheme::page_shift(2), 30);
    }

    #[test]
    fn atp_modes_round_trip() {
        for s in [Scheme::SV39, Scheme::SV48, Scheme::SV57, Scheme::SV39X4, Scheme::SV48X4, Scheme::SV57X4] {
            assert_eq!(Scheme::from_atp_mode(s.atp_mode(), s.x4), Some(s));
        }
        assert_eq!(Scheme::SV48X4.atp_mode(), hgatp::SV48X4);
        assert_eq!(Scheme::from_atp_mode(0, false), None);
        assert_eq!(Scheme::from_atp_mode(11, true), None);
    }

    #[test]
    fn pte_fields_tile_the_word() {
        let fields = [V, R, W, X, U, G, A, D, 3 << 8, PPN_MASK << PPN_SHIFT, RESERVED, PBMT, N];
        let mut all = 0u64;
        for f in fields {
            assert_eq!(all & f, 0);
            all |= f;
        }
        assert_eq!(all, u64::MAX);
        assert_eq!(ppn(0x2000_0000_0000_0c01), 0x3);
        assert!(is_leaf(V | X) && !is_leaf(V));
    }
}

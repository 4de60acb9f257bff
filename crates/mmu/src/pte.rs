//! Page-table entry bits (Privileged Architecture 20211203, §4.3.1, Figure 4.18
//! and §4.4.1 for the Sv39 layout; Sv48/Sv57 use the same low bits).

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
/// Bits 60..54 are reserved for future standard use and must be zero
/// (§4.4.1); bits 62..61 are PBMT (Svpbmt) and 63 is N (Svnapot). Strata
/// implements neither extension, so a leaf or pointer with any of bits 63..54
/// set is a page fault.
pub const RESERVED_HIGH: u64 = 0x3ff << 54;

#[inline]
pub fn ppn(pte: u64) -> u64 {
    (pte >> PPN_SHIFT) & PPN_MASK
}

#[inline]
pub fn is_leaf(pte: u64) -> bool {
    pte & (R | X) != 0
}

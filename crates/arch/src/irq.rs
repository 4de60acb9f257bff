//! Interrupt numbers (Priv. §3.1.9, Figures 3.14–3.15; the VS and
//! guest-external interrupts of the Hypervisor extension, §8.4.3).
//!
//! Interrupt *n* is bit *n* of `mip`, `mie`, `mideleg`, `hip`, `hvip`, ...,
//! and, with bit 63 set, the value of `mcause`/`scause` when it is taken
//! ([`crate::cause::interrupt`]). The constants are bit numbers (what a
//! device line drives), named after their `mip` bits; [`bit`] makes a mask.
//!
//! | n | name  | level | raised by                                  |
//! |---|-------|-------|--------------------------------------------|
//! | 1 | SSIP  | S     | software (`sip`), SBI IPIs                 |
//! | 2 | VSSIP | VS    | the hypervisor (`hvip`)                    |
//! | 3 | MSIP  | M     | the ACLINT MSWI device                     |
//! | 5 | STIP  | S     | M-mode software, or Sstc                   |
//! | 6 | VSTIP | VS    | the hypervisor (`hvip`), or Sstc's vstimecmp |
//! | 7 | MTIP  | M     | the ACLINT MTIMER device                   |
//! | 9 | SEIP  | S     | the PLIC's S-mode context                  |
//! |10 | VSEIP | VS    | the hypervisor (`hvip`), or a guest file   |
//! |11 | MEIP  | M     | the PLIC's M-mode context                  |
//! |12 | SGEIP | HS    | guest external interrupts (`hgeip`)        |

pub const SSIP: u32 = 1;
pub const VSSIP: u32 = 2;
pub const MSIP: u32 = 3;
pub const STIP: u32 = 5;
pub const VSTIP: u32 = 6;
pub const MTIP: u32 = 7;
pub const SEIP: u32 = 9;
pub const VSEIP: u32 = 10;
pub const MEIP: u32 = 11;
pub const SGEIP: u32 = 12;

/// The mask of interrupt `n`.
pub const fn bit(n: u32) -> u64 {
    1 << n
}

/// The M-level interrupts.
pub const M_LEVEL: u64 = bit(MSIP) | bit(MTIP) | bit(MEIP);
/// The S-level (HS-level) interrupts.
pub const S_LEVEL: u64 = bit(SSIP) | bit(STIP) | bit(SEIP);
/// The VS-level interrupts: `mideleg` always delegates them (read-only
/// one, §8.4.2), `hideleg` may delegate them on to VS-mode, and `hvip`
/// injects them. Each is its S-level counterpart's bit plus one, which is
/// how `vsip`/`vsie` show them (§8.2.12).
pub const VS_LEVEL: u64 = bit(VSSIP) | bit(VSTIP) | bit(VSEIP);

/// The order in which simultaneous interrupts of one privilege level are
/// taken, highest first (§3.1.9 and §8.4.3: MEI, MSI, MTI, SEI, SSI, STI,
/// SGEI, VSEI, VSSI, VSTI).
pub const PRIORITY: [u32; 10] = [MEIP, MSIP, MTIP, SEIP, SSIP, STIP, SGEIP, VSEIP, VSSIP, VSTIP];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vs_bits_sit_one_above_their_s_bits() {
        assert_eq!(VS_LEVEL, (S_LEVEL << 1));
        assert_eq!(M_LEVEL & S_LEVEL, 0);
        assert_eq!((M_LEVEL | S_LEVEL) & VS_LEVEL, 0);
    }

    #[test]
    fn priority_names_every_interrupt_once() {
        let all = PRIORITY.iter().fold(0u64, |m, &n| {
            assert_eq!(m & bit(n), 0, "{n} twice");
            m | bit(n)
        });
        assert_eq!(all, M_LEVEL | S_LEVEL | VS_LEVEL | bit(SGEIP));
    }
}

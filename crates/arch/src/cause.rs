//! Trap causes: the values of `mcause`/`scause`/`vscause` (Priv. §3.1.15,
//! Table 3.6, with the Hypervisor extension's codes 10 and 20–23 from
//! §8.6.1, Table 8.6).
//!
//! An exception's cause is its code; an interrupt's is bit 63 ([`INTERRUPT`])
//! plus its interrupt number ([`crate::irq`]).

use crate::irq;

pub const INSN_MISALIGNED: u64 = 0;
pub const INSN_ACCESS: u64 = 1;
pub const ILLEGAL_INSN: u64 = 2;
pub const BREAKPOINT: u64 = 3;
pub const LOAD_MISALIGNED: u64 = 4;
pub const LOAD_ACCESS: u64 = 5;
pub const STORE_MISALIGNED: u64 = 6;
pub const STORE_ACCESS: u64 = 7;
pub const ECALL_U: u64 = 8;
/// ECALL from HS-mode (or S-mode without the H extension).
pub const ECALL_S: u64 = 9;
pub const ECALL_VS: u64 = 10;
pub const ECALL_M: u64 = 11;
pub const INSN_PAGE: u64 = 12;
pub const LOAD_PAGE: u64 = 13;
pub const STORE_PAGE: u64 = 15;
pub const INSN_GUEST_PAGE: u64 = 20;
pub const LOAD_GUEST_PAGE: u64 = 21;
pub const VIRTUAL_INSN: u64 = 22;
pub const STORE_GUEST_PAGE: u64 = 23;

/// Set in the cause of an interrupt.
pub const INTERRUPT: u64 = 1 << 63;

/// The cause value of interrupt `n`.
pub const fn interrupt(n: u32) -> u64 {
    INTERRUPT | n as u64
}

// Interrupt codes (the cause without bit 63): the interrupt numbers.
pub const SSI: u64 = irq::SSIP as u64;
pub const VSSI: u64 = irq::VSSIP as u64;
pub const MSI: u64 = irq::MSIP as u64;
pub const STI: u64 = irq::STIP as u64;
pub const VSTI: u64 = irq::VSTIP as u64;
pub const MTI: u64 = irq::MTIP as u64;
pub const SEI: u64 = irq::SEIP as u64;
pub const VSEI: u64 = irq::VSEIP as u64;
pub const MEI: u64 = irq::MEIP as u64;
pub const SGEI: u64 = irq::SGEIP as u64;

const fn bit(code: u64) -> u64 {
    1 << code
}

/// The exceptions `medeleg` can delegate: every standard exception but
/// ECALL from M-mode, which cannot be delegated (§3.1.8).
pub const M_DELEGABLE: u64 = bit(INSN_MISALIGNED)
    | bit(INSN_ACCESS)
    | bit(ILLEGAL_INSN)
    | bit(BREAKPOINT)
    | bit(LOAD_MISALIGNED)
    | bit(LOAD_ACCESS)
    | bit(STORE_MISALIGNED)
    | bit(STORE_ACCESS)
    | bit(ECALL_U)
    | bit(ECALL_S)
    | bit(ECALL_VS)
    | bit(INSN_PAGE)
    | bit(LOAD_PAGE)
    | bit(STORE_PAGE)
    | bit(INSN_GUEST_PAGE)
    | bit(LOAD_GUEST_PAGE)
    | bit(VIRTUAL_INSN)
    | bit(STORE_GUEST_PAGE);

/// The exceptions `hedeleg` can delegate on to VS-mode (§8.2.2, Table
/// 8.2): not ECALL from HS, VS or M, nor the guest-page faults and
/// virtual-instruction exceptions, which are the hypervisor's own.
pub const VS_DELEGABLE: u64 = M_DELEGABLE
    & !(bit(ECALL_S)
        | bit(ECALL_VS)
        | bit(INSN_GUEST_PAGE)
        | bit(LOAD_GUEST_PAGE)
        | bit(VIRTUAL_INSN)
        | bit(STORE_GUEST_PAGE));

/// Exceptions whose `tval` is an address (or the pc, for breakpoints),
/// hence a guest virtual address when taken from V=1 (§8.2.1, GVA).
pub const fn writes_address(code: u64) -> bool {
    matches!(
        code,
        INSN_MISALIGNED
            | INSN_ACCESS
            | BREAKPOINT
            | LOAD_MISALIGNED
            | LOAD_ACCESS
            | STORE_MISALIGNED
            | STORE_ACCESS
            | INSN_PAGE
            | LOAD_PAGE
            | STORE_PAGE
            | INSN_GUEST_PAGE
            | LOAD_GUEST_PAGE
            | STORE_GUEST_PAGE
    )
}

/// The name of a cause (Priv. Table 3.6 and Table 8.7), for messages.
pub fn name(c: u64) -> &'static str {
    if c & INTERRUPT != 0 {
        return match c & !INTERRUPT {
            SSI => "supervisor software interrupt",
            VSSI => "virtual supervisor software interrupt",
            MSI => "machine software interrupt",
            STI => "supervisor timer interrupt",
            VSTI => "virtual supervisor timer interrupt",
            MTI => "machine timer interrupt",
            SEI => "supervisor external interrupt",
            VSEI => "virtual supervisor external interrupt",
            MEI => "machine external interrupt",
            SGEI => "supervisor guest external interrupt",
            _ => "interrupt",
        };
    }
    match c {
        INSN_MISALIGNED => "instruction address misaligned",
        INSN_ACCESS => "instruction access fault",
        ILLEGAL_INSN => "illegal instruction",
        BREAKPOINT => "breakpoint",
        LOAD_MISALIGNED => "load address misaligned",
        LOAD_ACCESS => "load access fault",
        STORE_MISALIGNED => "store/AMO address misaligned",
        STORE_ACCESS => "store/AMO access fault",
        ECALL_U => "environment call from U-mode",
        ECALL_S => "environment call from S-mode",
        ECALL_VS => "environment call from VS-mode",
        ECALL_M => "environment call from M-mode",
        INSN_PAGE => "instruction page fault",
        LOAD_PAGE => "load page fault",
        STORE_PAGE => "store/AMO page fault",
        INSN_GUEST_PAGE => "instruction guest-page fault",
        LOAD_GUEST_PAGE => "load guest-page fault",
        VIRTUAL_INSN => "virtual instruction",
        STORE_GUEST_PAGE => "store/AMO guest-page fault",
        _ => "exception",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegable_sets_as_the_tables_draw_them() {
        // Table 3.6 with codes 10, 14 (reserved) and 16..19 absent except
        // as listed: bits 0..10, 12, 13, 15, 20..23.
        assert_eq!(M_DELEGABLE, 0xf0_b7ff);
        // Table 8.2: bits 0..8, 12, 13, 15.
        assert_eq!(VS_DELEGABLE, 0xb1ff);
    }

    #[test]
    fn interrupt_causes_carry_bit_63() {
        assert_eq!(interrupt(irq::MTIP), 0x8000_0000_0000_0007);
        assert_eq!(interrupt(irq::SEIP) & !INTERRUPT, SEI);
        assert!(!writes_address(ILLEGAL_INSN) && !writes_address(ECALL_U) && writes_address(STORE_GUEST_PAGE));
    }
}

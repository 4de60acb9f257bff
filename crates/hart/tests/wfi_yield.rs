//! A WFI that cannot wait (§3.3.3: an interrupt is pending in `mie`, but
//! the global enable keeps it from being taken) ends the hart's run early,
//! so that in a round-robin of harts a hart spinning on `wfi` in a polling
//! loop (OpenSBI's HSM wait with a stale IPI) does not take its whole
//! budget from the harts doing work. The architectural effect is unchanged:
//! WFI still completes as a no-op.

mod common;

use std::sync::Arc;

use common::{hart_with, NoDevices, BASE};
use strata_arch::csr::{addr, mstatus};
use strata_arch::irq as mip;
use strata_arch::isa::{encode, Op};
use strata_arch::{cause, irq};
use strata_hart::{Hart, RunExit};
use strata_irq::HartIrqs;

/// `csrrsi x0, mie, 8` (MSIE), `wfi`, `addi t0, t0, 1`, `j -8` (back to the wfi).
fn prog() -> [u32; 4] {
    [
        encode(Op::CSRRSI, 0, irq::bit(irq::MSIP) as u32, 0, addr::MIE as i64),
        encode(Op::WFI, 0, 0, 0, 0),
        encode(Op::ADDI, 5, 5, 0, 1),
        encode(Op::JAL, 0, 0, 0, -8),
    ]
}

fn hart(msip: bool, mstatus_mie: bool) -> (Hart, Arc<HartIrqs>) {
    let (mut h, irqs, ram) = hart_with(&prog(), 1 << 20);
    ram.store(BASE + 0x100, 4, encode(Op::JAL, 0, 0, 0, 0) as u64).unwrap(); // the trap handler: `j .`
    h.set_jit(false);
    if mstatus_mie {
        // An mtvec that spins at BASE + 0x100: `j .`.
        assert!(h.csr_poke(addr::MTVEC, BASE + 0x100));
        assert!(h.csr_poke(addr::MSTATUS, mstatus::MIE));
    }
    irqs.set(mip::MSIP, msip);
    (h, irqs)
}

#[test]
fn a_wfi_that_cannot_wait_gives_up_the_budget() {
    let (mut h, _irqs) = hart(true, false);
    let (used, exit) = h.run(&mut NoDevices, 10_000);
    assert_eq!(exit, RunExit::Budget);
    assert!(used <= 3, "ran {used} instructions: the hart kept its budget after a no-op WFI");
    assert_eq!(h.pc, BASE + 8, "WFI completed (as a no-op)");
    // The next run goes on from there, and yields again at the next WFI.
    let (used, _) = h.run(&mut NoDevices, 10_000);
    assert!(used <= 3);
    assert_eq!(h.x[5], 1, "the loop body ran once in between");
}

#[test]
fn a_wfi_with_nothing_pending_waits() {
    let (mut h, _irqs) = hart(false, false);
    let (_, exit) = h.run(&mut NoDevices, 10_000);
    assert_eq!(exit, RunExit::Idle);
    assert!(h.wfi);
}

#[test]
fn an_interrupt_that_can_be_taken_is_taken_without_yielding() {
    let (mut h, _irqs) = hart(true, true);
    assert!(h.csr_poke(addr::MIE, irq::bit(irq::MSIP))); // mie.MSIE before the first instruction
    let (used, exit) = h.run(&mut NoDevices, 1000);
    assert_eq!(exit, RunExit::Budget);
    assert_eq!(used, 1000, "the hart ran its whole budget (in the trap handler's loop)");
    assert_eq!(h.csr_peek(addr::MCAUSE).unwrap(), cause::interrupt(irq::MSIP), "mcause: machine software interrupt");
}

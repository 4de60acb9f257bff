//! The hart notices when it makes no progress (`progress.rs`): the same
//! trap, again and again, with nothing between but a handler that sends it
//! back. Loops whose handler completes the instruction, or retries it on a
//! new address each time, are progress and must never be reported.

mod common;

use common::{hart_with, NoDevices, BASE};
use strata_hart::{Hart, Priv, NO_PROGRESS_TRAPS};

// The programs' instructions, from the one encoding table.

use strata_arch::csr::addr::{MEPC, MTVEC, PMPADDR0, PMPCFG0};
use strata_arch::isa::{encode, Op};
use strata_testkit::asm::reg::{A0, A1, A2, T1, T2, ZERO};

/// `mret`
fn mret() -> u32 {
    encode(Op::MRET, 0, 0, 0, 0)
}
/// `addi a0, a0, 1`
fn addi_a0() -> u32 {
    encode(Op::ADDI, A0, A0, 0, 1)
}
/// `lw a1, 0(zero)`: address 0 is nothing on this bus, an access fault.
fn lw_zero() -> u32 {
    encode(Op::LW, A1, ZERO, 0, 0)
}
/// `lw a1, 0(a2)`
fn lw_a2() -> u32 {
    encode(Op::LW, A1, A2, 0, 0)
}
/// `j -4`
fn j_back4() -> u32 {
    encode(Op::JAL, ZERO, 0, 0, -4)
}
/// `csrw mepc, rs` (`csrrw zero, mepc, rs`)
fn csrw_mepc(rs: u32) -> u32 {
    encode(Op::CSRRW, ZERO, rs, 0, MEPC as i64)
}
/// `csrr t2, mepc` (`csrrs t2, mepc, zero`)
fn csrr_t2_mepc() -> u32 {
    encode(Op::CSRRS, T2, ZERO, 0, MEPC as i64)
}
/// `addi rd, rd, imm`
fn addi(rd: u32, imm: i64) -> u32 {
    encode(Op::ADDI, rd, rd, 0, imm)
}

use strata_arch::cause::LOAD_ACCESS;
const HANDLER: u64 = BASE + 0x100;
const USER: u64 = BASE + 0x200;

/// A hart that drops from M-mode (`mret` at `BASE`) to U-mode code `user`
/// at `USER`, with traps going to the M-mode `handler` at `HANDLER`, as
/// firmware under a kernel would handle them.
fn user_and_handler(user: &[u32], handler: &[u32], jit: bool) -> Hart {
    let mut prog = vec![0u32; 0x300 / 4];
    prog[0] = mret();
    prog[0x100 / 4..0x100 / 4 + handler.len()].copy_from_slice(handler);
    prog[0x200 / 4..0x200 / 4 + user.len()].copy_from_slice(user);
    let (mut h, _irqs, _ram) = hart_with(&prog, 1 << 20);
    h.set_jit(jit);
    assert!(h.csr_poke(MTVEC, HANDLER));
    // mret goes to USER in U-mode: mstatus.MPP is U after reset.
    assert!(h.csr_poke(MEPC, USER));
    // PMP entry 0: all of memory, RWX, for U-mode (§3.7.1).
    assert!(h.csr_poke(PMPADDR0, u64::MAX >> 10));
    assert!(h.csr_poke(PMPCFG0, 0x1f));
    h.x[T1 as usize] = USER; // where the handler sends the hart back
    h
}

/// Runs `h` one slot at a time until it reports no progress or `limit`
/// slots have gone; returns the slots used.
fn run_until_reported(h: &mut Hart, limit: u64) -> u64 {
    let mut used = 0;
    while used < limit && h.no_progress().is_none() {
        used += h.run(&mut NoDevices, 1).0;
    }
    used
}

#[test]
fn garbage_in_m_mode_is_reported_after_exactly_the_threshold() {
    for jit in [false, true] {
        // An illegal instruction (all zeros), mtvec 0: the fetch at 0 faults,
        // which goes to mtvec 0 again.
        let (mut h, _irqs, _ram) = hart_with(&[0], 1 << 20);
        h.set_jit(jit);
        // One slot for the illegal instruction, one per fetch fault after.
        h.run(&mut NoDevices, NO_PROGRESS_TRAPS);
        assert!(h.no_progress().is_none(), "jit {jit}: reported before the threshold");
        h.run(&mut NoDevices, 1);
        let r = *h.no_progress().expect("reported at the threshold");
        assert_eq!((r.cause, r.epc, r.tval, r.prv, r.virt, r.vmid), (1, 0, 0, Priv::M, false, None), "jit {jit}");
        assert_eq!(r.traps, NO_PROGRESS_TRAPS);
        let line = r.to_string();
        assert!(line.starts_with("hart 0 made no progress: trapping at pc 0x0 with cause 1"), "{line}");
        assert_eq!(h.take_no_progress(), Some(r));
        assert!(h.no_progress().is_none(), "taking the report clears it");
    }
}

#[test]
fn a_fault_the_handler_sends_back_to_the_same_code_is_reported() {
    // What OpenSBI does under a garbage kernel: redirect each fault to the
    // same entry, where the same instructions lead to the same fault.
    for jit in [false, true] {
        let mut h = user_and_handler(&[addi_a0(), lw_zero()], &[csrw_mepc(T1), mret()], jit);
        let used = run_until_reported(&mut h, 20 * NO_PROGRESS_TRAPS);
        let r = *h.no_progress().unwrap_or_else(|| panic!("jit {jit}: not reported in {used} slots"));
        assert_eq!((r.cause, r.epc, r.tval, r.prv), (LOAD_ACCESS, USER + 4, 0, Priv::U), "jit {jit}");
        if !jit {
            // One slot at a time: reported at the threshold's fault.
            assert_eq!(h.stats.exceptions[LOAD_ACCESS as usize], NO_PROGRESS_TRAPS);
        }
        assert_eq!(h.x[10], h.stats.exceptions[LOAD_ACCESS as usize], "the addi ran once per round");
    }
}

#[test]
fn a_fault_the_handler_completes_is_progress() {
    // The handler emulates the load and moves mepc on (MMIO, misaligned
    // accesses): a polling loop, the same fault at the same place forever.
    let mut h = user_and_handler(&[lw_zero(), j_back4()], &[csrr_t2_mepc(), addi(T2, 4), csrw_mepc(T2), mret()], true);
    let used = run_until_reported(&mut h, 20 * NO_PROGRESS_TRAPS);
    assert!(h.no_progress().is_none(), "reported: {}", h.no_progress().unwrap());
    assert!(h.stats.exceptions[LOAD_ACCESS as usize] > 2 * NO_PROGRESS_TRAPS, "only {used} slots ran");
}

#[test]
fn a_retried_fault_on_a_new_address_each_time_is_progress() {
    // The handler "fixes" something and retries the instruction, which
    // then faults on the next address: a kernel mapping page after page.
    let mut h = user_and_handler(&[lw_a2(), j_back4()], &[addi(A2, 64), mret()], true);
    run_until_reported(&mut h, 10 * NO_PROGRESS_TRAPS);
    assert!(h.no_progress().is_none(), "reported: {}", h.no_progress().unwrap());
    assert!(h.stats.exceptions[LOAD_ACCESS as usize] > 2 * NO_PROGRESS_TRAPS);
    assert_eq!(h.x[12], 64 * h.stats.exceptions[LOAD_ACCESS as usize], "one new address per fault");
}

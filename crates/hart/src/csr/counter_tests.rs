//! The counter-enable rules for `cycle`, `time`, `instret` and
//! `hpmcounter3..31`, mode by mode, for every combination of the counter's
//! bit in `mcounteren`, `hcounteren` and `scounteren`. The expected table is
//! written from the Privileged Architecture (20211203), not from the code:
//!
//! - §3.1.11 (`mcounteren`): a clear bit makes the counter an illegal
//!   instruction in every mode below M; M-mode always reads it.
//! - §4.1.5 (`scounteren`): with V=0, U-mode also needs the `scounteren`
//!   bit, else illegal instruction.
//! - §8.2.6 (`hcounteren`) and §8.6.1 (the virtual-instruction cases): with
//!   the `mcounteren` bit set, VS-mode raises a virtual-instruction
//!   exception when the `hcounteren` bit is clear, and VU-mode when either
//!   the `hcounteren` or the `scounteren` bit is clear. With the
//!   `mcounteren` bit clear the instruction is not HS-qualified: illegal.
//! - §2.1: counters are read-only (bits 11:10 = 3), so a CSR instruction
//!   that writes one is illegal everywhere, never virtual (the same write is
//!   illegal in HS-mode too).

use std::sync::Arc;

use strata_irq::HartIrqs;
use strata_memory::GuestRam;

use super::addr::{CYCLE, HPMCOUNTER3, HPMCOUNTER31, INSTRET, TIME};
use crate::trap::cause;
use crate::{Bus, Hart, Priv};

const MTIME: u64 = 1_000_000;
const TIME_DELTA: u64 = 5;

/// A bus whose `mtime` stands at [`MTIME`].
struct Clock;

impl Bus for Clock {
    fn mmio_read(&mut self, _: u64, _: u8) -> Option<u64> {
        None
    }
    fn mmio_write(&mut self, _: u64, _: u8, _: u64) -> bool {
        false
    }
    fn mtime(&self) -> u64 {
        MTIME
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Read,
    Illegal,
    Virtual,
}
use Outcome::{Illegal, Read, Virtual};

/// (mode, mcounteren bit, hcounteren bit, scounteren bit) → outcome.
#[rustfmt::skip]
const RULES: [(&str, u8, u8, u8, Outcome); 40] = [
    // M-mode: no counter-enable register applies (§3.1.11).
    ("M", 0, 0, 0, Read), ("M", 0, 0, 1, Read), ("M", 0, 1, 0, Read), ("M", 0, 1, 1, Read),
    ("M", 1, 0, 0, Read), ("M", 1, 0, 1, Read), ("M", 1, 1, 0, Read), ("M", 1, 1, 1, Read),
    // HS-mode: mcounteren alone (§3.1.11).
    ("HS", 0, 0, 0, Illegal), ("HS", 0, 0, 1, Illegal), ("HS", 0, 1, 0, Illegal), ("HS", 0, 1, 1, Illegal),
    ("HS", 1, 0, 0, Read), ("HS", 1, 0, 1, Read), ("HS", 1, 1, 0, Read), ("HS", 1, 1, 1, Read),
    // U-mode (V=0): mcounteren and scounteren; hcounteren plays no part (§4.1.5).
    ("U", 0, 0, 0, Illegal), ("U", 0, 0, 1, Illegal), ("U", 0, 1, 0, Illegal), ("U", 0, 1, 1, Illegal),
    ("U", 1, 0, 0, Illegal), ("U", 1, 0, 1, Read), ("U", 1, 1, 0, Illegal), ("U", 1, 1, 1, Read),
    // VS-mode: mcounteren, then hcounteren; scounteren plays no part (§8.6.1).
    ("VS", 0, 0, 0, Illegal), ("VS", 0, 0, 1, Illegal), ("VS", 0, 1, 0, Illegal), ("VS", 0, 1, 1, Illegal),
    ("VS", 1, 0, 0, Virtual), ("VS", 1, 0, 1, Virtual), ("VS", 1, 1, 0, Read), ("VS", 1, 1, 1, Read),
    // VU-mode: mcounteren, then both hcounteren and scounteren (§8.2.6, §8.6.1).
    ("VU", 0, 0, 0, Illegal), ("VU", 0, 0, 1, Illegal), ("VU", 0, 1, 0, Illegal), ("VU", 0, 1, 1, Illegal),
    ("VU", 1, 0, 0, Virtual), ("VU", 1, 0, 1, Virtual), ("VU", 1, 1, 0, Virtual), ("VU", 1, 1, 1, Read),
];

fn mode(name: &str) -> (Priv, bool) {
    match name {
        "M" => (Priv::M, false),
        "HS" => (Priv::S, false),
        "U" => (Priv::U, false),
        "VS" => (Priv::S, true),
        "VU" => (Priv::U, true),
        _ => unreachable!("{name}"),
    }
}

fn hart() -> Hart {
    let ram = Arc::new(GuestRam::new(0x8000_0000, 1 << 16).unwrap());
    let mut h = Hart::new(0, ram, HartIrqs::new());
    h.reset(0x8000_0000);
    h
}

/// An enable register with the counter's bit `on` and every other bit the
/// opposite, so a check of the wrong bit cannot pass.
fn enable(bit: u32, on: u8) -> u64 {
    if on == 1 {
        1 << bit
    } else {
        0xffff_ffff & !(1u64 << bit)
    }
}

/// `csrrs rd, n, rs1`: reads only when rs1 is x0, else also writes.
fn csrrs(n: u16, rs1: u32) -> u64 {
    ((n as u64) << 20) | (rs1 as u64) << 15 | 2 << 12 | 10 << 7 | 0x73
}

#[test]
fn counter_access_follows_the_enable_registers_in_every_mode() {
    let mut h = hart();
    let mut checked = 0;
    for n in [CYCLE, TIME, INSTRET, HPMCOUNTER3, 0xc10, HPMCOUNTER31] {
        let bit = u32::from(n & 31);
        for &(name, m, hc, s, want) in &RULES {
            let (p, v) = mode(name);
            h.csr.mcounteren = enable(bit, m);
            h.csr.hcounteren = enable(bit, hc);
            h.csr.scounteren = enable(bit, s);
            h.csr.htimedelta = TIME_DELTA;
            h.set_mode(p, v);
            let case =
                format!("{name}, counter {n:#x}, mcounteren.{bit}={m} hcounteren.{bit}={hc} scounteren.{bit}={s}");

            h.cur_insn_bits = csrrs(n, 0);
            let got = match h.csr_read(&mut Clock, n, false) {
                Ok(value) => {
                    if n == TIME {
                        // §8.2.7: with V=1, `time` reads as time + htimedelta.
                        let expect = if v { MTIME + TIME_DELTA } else { MTIME };
                        assert_eq!(value, expect, "{case}: the value of time");
                    }
                    Read
                }
                Err(t) => {
                    // §8.6.1: stval/mtval are written the same for both causes.
                    assert_eq!(t.tval, csrrs(n, 0), "{case}: tval is the instruction");
                    match t.cause {
                        cause::ILLEGAL_INSN => Illegal,
                        cause::VIRTUAL_INSN => Virtual,
                        c => panic!("{case}: unexpected cause {c}"),
                    }
                }
            };
            assert_eq!(got, want, "{case}: a read");

            // A write (csrrs with rs1 != x0) is illegal whatever the enables.
            h.cur_insn_bits = csrrs(n, 5);
            let w = h.csr_read(&mut Clock, n, true).map(|_| ()).map_err(|t| t.cause);
            assert_eq!(w, Err(cause::ILLEGAL_INSN), "{case}: a write to a read-only counter");
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * 40);
}

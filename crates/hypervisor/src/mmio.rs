//! Emulating a guest's MMIO access from the trap it causes.
//!
//! Device windows are not mapped in a VM's G-stage tables, so a guest load
//! or store there raises a load/store guest-page fault (causes 21/23) into
//! HS-mode with `htval` = GPA >> 2 and, on Strata's hart, `htinst` holding
//! the transformed instruction (Priv. §8.6.3): enough to emulate the access
//! without reading the guest's instruction from its memory. When `htinst`
//! is zero, which the specification allows, the handler reads the
//! instruction from the guest as HS-mode software would with HLVX. Both
//! forms are decoded by `strata_arch::tinst`, beside the hart's encoder.
//!
//! [`emulate`] is the handler:
//!
//! | the access | the device | outcome |
//! |---|---|---|
//! | a load or store it can decode (any width, integer or FP, compressed or not) | answers | done: the load's register written (sign- or zero-extended, FP NaN-boxed), `sepc` past the instruction |
//! | decodable | nothing at that address, or the device refuses the width | an access fault (cause 5 or 7) for the guest, `stval` = the faulting address |
//! | not a plain load or store (an AMO, a pseudoinstruction, unreadable) | – | the same access fault |

use strata_arch::tinst::{self, Transformed};
use strata_devices::bus::Bus as DeviceBus;

use crate::hart::{cause, Csr, HartOps};

/// What [`emulate`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Done; the guest goes on after the instruction.
    Done,
    /// The guest gets this exception (cause, `stval`) instead.
    Fault { cause: u64, tval: u64 },
}

/// The MMIO handler: emulates the access behind the load or store
/// guest-page fault `trap` (cause 21 or 23) now in `hart`'s CSRs, against
/// the VM's device `bus`.
pub fn emulate(hart: &mut dyn HartOps, bus: &mut DeviceBus, trap: u64) -> Emulated {
    let stval = hart.csr(Csr::Stval);
    let gpa = hart.csr(Csr::Htval) << 2 | (stval & 3);
    let fault = Emulated::Fault {
        cause: if trap == cause::LOAD_GUEST_PAGE { cause::LOAD_ACCESS } else { cause::STORE_ACCESS },
        tval: stval,
    };
    // htinst may be zero (Priv. §8.6.3): then read the instruction from
    // the guest, as an HS-mode hypervisor would with HLVX.
    let decoded = Transformed::decode(hart.csr(Csr::Htinst)).or_else(|| {
        let pc = hart.csr(Csr::Sepc);
        hart.read_guest_insn(pc).and_then(tinst::transform)
    });
    let Some(t) = decoded else { return fault };
    emulate_at(hart, bus, gpa, t, fault)
}

/// Carries out the decoded load or store `t` at guest-physical `gpa` on
/// the device `bus` (also for shadow paging, where an MMIO access is a
/// page fault whose gpa the hypervisor found in the guest's tables);
/// `fault` is what the guest gets if the device refuses.
pub fn emulate_at(hart: &mut dyn HartOps, bus: &mut DeviceBus, gpa: u64, t: Transformed, fault: Emulated) -> Emulated {
    let acc = t.access();
    let reg = usize::from(t.reg);
    let ok = if acc.store {
        let val = if acc.fp { hart.fpr(reg) } else { hart.gpr(reg) };
        bus.write(gpa, acc.size, val)
    } else {
        match bus.read(gpa, acc.size) {
            Some(raw) => {
                if acc.fp {
                    hart.set_fpr(reg, if acc.size == 4 { box_f32(raw & 0xffff_ffff) } else { raw });
                } else if reg != 0 {
                    hart.set_gpr(reg, extend(raw, acc.size, acc.signed));
                }
                true
            }
            None => false,
        }
    };
    if !ok {
        return fault;
    }
    let sepc = hart.csr(Csr::Sepc);
    hart.set_csr(Csr::Sepc, sepc.wrapping_add(t.insn_len()));
    Emulated::Done
}

/// Sign- or zero-extends a `size`-byte value read from a device.
pub fn extend(v: u64, size: u8, signed: bool) -> u64 {
    let shift = 64 - 8 * size as u32;
    if shift == 0 {
        v
    } else if signed {
        ((v << shift) as i64 >> shift) as u64
    } else {
        v & (u64::MAX >> shift)
    }
}

/// NaN-boxes a 32-bit FP value (Unprivileged ISA §12.2).
pub fn box_f32(v: u64) -> u64 {
    v | 0xffff_ffff_0000_0000
}

#[cfg(test)]
mod tests {
    use strata_arch::tinst::{transform, MemAccess, Transformed};

    use super::*;

    /// (register, access, length) of a decoded form, as `emulate` uses it.
    fn seen(t: Option<Transformed>) -> Option<(u8, MemAccess, u64)> {
        t.map(|t| (t.reg, t.access(), t.insn_len()))
    }
    fn load(size: u8, signed: bool, fp: bool) -> MemAccess {
        MemAccess { store: false, size, signed, fp }
    }
    fn store(size: u8, fp: bool) -> MemAccess {
        MemAccess { store: true, size, signed: false, fp }
    }

    // The words below are written from the specification's tables (Priv.
    // §8.6.3, Unpriv. Chapter 24), not from the encoder under test.
    #[test]
    fn decodes_transformed_loads_and_stores() {
        // lw a0, 0(x0) transformed: opcode 0x03, funct3 2, rd 10.
        assert_eq!(seen(Transformed::decode(0x0000_2503)), Some((10, load(4, true, false), 4)));
        // Compressed original: bit 1 clear.
        assert_eq!(seen(Transformed::decode(0x0000_2501)), Some((10, load(4, true, false), 2)));
        // sb a1: opcode 0x23, funct3 0, rs2 11.
        assert_eq!(seen(Transformed::decode(0x00b0_0023)), Some((11, store(1, false), 4)));
        // lbu t0.
        assert_eq!(seen(Transformed::decode(0x0000_4283)), Some((5, load(1, false, false), 4)));
        // ld t0: eight bytes, nothing to extend.
        assert_eq!(
            seen(Transformed::decode(0x0000_3283)).map(|(r, a, l)| (r, a.size, a.store, l)),
            Some((5, 8, false, 4))
        );
        // fsd f3.
        assert_eq!(seen(Transformed::decode(0x0030_3027)), Some((3, store(8, true), 4)));
    }

    #[test]
    fn refuses_what_is_not_a_transformed_load_or_store() {
        assert_eq!(Transformed::decode(0), None);
        assert_eq!(Transformed::decode(tinst::PT_READ_64), None, "the PTE-read pseudoinstruction");
        assert_eq!(Transformed::decode(0x0000_7003), None, "funct3 7 is no load");
        assert_eq!(Transformed::decode(0x0000_202f), None, "an AMO");
        assert_eq!(Transformed::decode(1 << 32 | 0x2503), None, "high bits set");
        assert_eq!(Transformed::decode(0x0040_2503), None, "a nonzero immediate");
    }

    #[test]
    fn decodes_instructions_read_from_the_guest() {
        // Words from riscv64-unknown-elf-as: lw a0,8(a1); sd a2,-16(sp);
        // c.lw a0,4(a1); c.sd a2,8(a3); c.fld fa0,0(a1); addi (not memory).
        assert_eq!(seen(transform(0x0085a503)), Some((10, load(4, true, false), 4)));
        assert_eq!(seen(transform(0xfec13823)), Some((12, store(8, false), 4)));
        assert_eq!(seen(transform(0x41c8)), Some((10, load(4, true, false), 2)));
        assert_eq!(seen(transform(0xe690)), Some((12, store(8, false), 2)));
        assert_eq!(seen(transform(0x2188)), Some((10, load(8, false, true), 2)));
        assert_eq!(transform(0x00150513), None);
    }

    #[test]
    fn extension() {
        assert_eq!(extend(0x80, 1, true), u64::MAX - 0x7f);
        assert_eq!(extend(0x1_0080, 1, false), 0x80);
        assert_eq!(extend(0xffff_ffff, 4, true), u64::MAX);
        assert_eq!(extend(5, 8, true), 5);
    }
}

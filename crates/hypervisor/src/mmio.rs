//! Emulating a guest's MMIO access from the trap it causes.
//!
//! Device windows are not mapped in a VM's G-stage tables, so a guest load
//! or store there raises a load/store guest-page fault (causes 21/23) into
//! HS-mode with `htval` = GPA >> 2 and, on Strata's hart, `htinst` holding
//! the transformed instruction (Priv. §8.6.3): enough to emulate the access
//! without reading the guest's instruction from its memory. When `htinst`
//! is zero, which the specification allows, the handler reads the
//! instruction from the guest as HS-mode software would with HLVX.
//!
//! [`emulate`] is the handler:
//!
//! | the access | the device | outcome |
//! |---|---|---|
//! | a load or store it can decode (any width, integer or FP, compressed or not) | answers | done: the load's register written (sign- or zero-extended, FP NaN-boxed), `sepc` past the instruction |
//! | decodable | nothing at that address, or the device refuses the width | an access fault (cause 5 or 7) for the guest, `stval` = the faulting address |
//! | not a plain load or store (an AMO, a pseudoinstruction, unreadable) | – | the same access fault |

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
    let decoded = decode(hart.csr(Csr::Htinst)).or_else(|| {
        let pc = hart.csr(Csr::Sepc);
        hart.read_guest_insn(pc).and_then(decode_insn)
    });
    let Some((acc, len)) = decoded else { return fault };
    let ok = match acc {
        Access::Load { rd, size, signed, fp } => match bus.read(gpa, size) {
            Some(raw) => {
                if fp {
                    hart.set_fpr(rd, if size == 4 { box_f32(raw & 0xffff_ffff) } else { raw });
                } else if rd != 0 {
                    hart.set_gpr(rd, extend(raw, size, signed));
                }
                true
            }
            None => false,
        },
        Access::Store { rs2, size, fp } => {
            let val = if fp { hart.fpr(rs2) } else { hart.gpr(rs2) };
            bus.write(gpa, size, val)
        }
    };
    if !ok {
        return fault;
    }
    let sepc = hart.csr(Csr::Sepc);
    hart.set_csr(Csr::Sepc, sepc.wrapping_add(len));
    Emulated::Done
}

/// A decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load into x`rd` (or f`rd` when `fp`).
    Load { rd: usize, size: u8, signed: bool, fp: bool },
    /// A store of x`rs2` (or f`rs2`).
    Store { rs2: usize, size: u8, fp: bool },
}

/// Decodes a transformed load/store instruction from `htinst`. Returns the
/// access and the original instruction's length, or `None` if `htinst` is
/// not a transformed basic load or store (zero, a pseudoinstruction, or
/// anything else): the caller then treats the access as a fault.
pub fn decode(tinst: u64) -> Option<(Access, u64)> {
    // Bit 0 set: a transformed standard instruction; bit 1 tells whether
    // the original was 32-bit (1) or compressed (0).
    if tinst & 1 == 0 || tinst >> 32 != 0 {
        return None;
    }
    let len = if tinst & 2 != 0 { 4 } else { 2 };
    let insn = tinst as u32 | 2;
    let opcode = insn & 0x7f;
    let funct3 = (insn >> 12) & 7;
    let rd = ((insn >> 7) & 31) as usize;
    let rs2 = ((insn >> 20) & 31) as usize;
    let acc = match opcode {
        0x03 => {
            let (size, signed) = match funct3 {
                0 => (1, true),
                1 => (2, true),
                2 => (4, true),
                3 => (8, false),
                4 => (1, false),
                5 => (2, false),
                6 => (4, false),
                _ => return None,
            };
            Access::Load { rd, size, signed, fp: false }
        }
        0x07 if funct3 == 2 || funct3 == 3 => Access::Load { rd, size: 1 << funct3, signed: false, fp: true },
        0x23 if funct3 <= 3 => Access::Store { rs2, size: 1 << funct3, fp: false },
        0x27 if funct3 == 2 || funct3 == 3 => Access::Store { rs2, size: 1 << funct3, fp: true },
        _ => return None,
    };
    Some((acc, len))
}

/// Decodes a guest's load or store instruction read from its memory (for
/// traps whose `htinst` is zero, which the spec allows): the 32-bit basic
/// loads and stores, and the compressed ones with register-based addresses
/// (C.LW, C.LD, C.SW, C.SD, C.FLD, C.FSD; Unprivileged ISA §16.3). Returns
/// the access and the instruction's length.
pub fn decode_insn(insn: u32) -> Option<(Access, u64)> {
    if insn & 3 == 3 {
        let opcode = insn & 0x7f;
        if !matches!(opcode, 0x03 | 0x07 | 0x23 | 0x27) {
            return None;
        }
        // The transformed form keeps opcode, funct3 and rd/rs2.
        let keep = insn & (0x7f | 7 << 12 | if opcode & 0x20 == 0 { 31 << 7 } else { 31 << 20 });
        return decode(keep as u64);
    }
    let rd_ = ((insn >> 2) & 7) as usize + 8;
    let (load, size, fp) = match (insn >> 13, insn & 3) {
        (0b010, 0) => (true, 4, false),
        (0b011, 0) => (true, 8, false),
        (0b001, 0) => (true, 8, true),
        (0b110, 0) => (false, 4, false),
        (0b111, 0) => (false, 8, false),
        (0b101, 0) => (false, 8, true),
        _ => return None,
    };
    let acc = if load {
        Access::Load { rd: rd_, size, signed: size == 4 && !fp, fp }
    } else {
        Access::Store { rs2: rd_, size, fp }
    };
    Some((acc, 2))
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
    use super::*;

    #[test]
    fn decodes_transformed_loads_and_stores() {
        // lw a0, 0(x0) transformed: opcode 0x03, funct3 2, rd 10.
        assert_eq!(decode(0x0000_2503), Some((Access::Load { rd: 10, size: 4, signed: true, fp: false }, 4)));
        // Compressed original: bit 1 clear.
        assert_eq!(decode(0x0000_2501), Some((Access::Load { rd: 10, size: 4, signed: true, fp: false }, 2)));
        // sb a1: opcode 0x23, funct3 0, rs2 11.
        assert_eq!(decode(0x00b0_0023), Some((Access::Store { rs2: 11, size: 1, fp: false }, 4)));
        // lbu, ld.
        assert_eq!(decode(0x0000_4283), Some((Access::Load { rd: 5, size: 1, signed: false, fp: false }, 4)));
        assert_eq!(decode(0x0000_3283), Some((Access::Load { rd: 5, size: 8, signed: false, fp: false }, 4)));
        // fsd f3.
        assert_eq!(decode(0x0030_3027), Some((Access::Store { rs2: 3, size: 8, fp: true }, 4)));
    }

    #[test]
    fn refuses_what_is_not_a_transformed_load_or_store() {
        assert_eq!(decode(0), None);
        assert_eq!(decode(0x3000), None, "the PTE-read pseudoinstruction");
        assert_eq!(decode(0x0000_7003), None, "funct3 7 is no load");
        assert_eq!(decode(0x0000_202f), None, "an AMO");
        assert_eq!(decode(1 << 32 | 0x2503), None, "high bits set");
    }

    #[test]
    fn decodes_instructions_read_from_the_guest() {
        // Words from riscv64-unknown-elf-as: lw a0,8(a1); sd a2,-16(sp);
        // c.lw a0,4(a1); c.sd a2,8(a3); c.fld fa0,0(a1); addi (not memory).
        assert_eq!(decode_insn(0x0085a503), Some((Access::Load { rd: 10, size: 4, signed: true, fp: false }, 4)));
        assert_eq!(decode_insn(0xfec13823), Some((Access::Store { rs2: 12, size: 8, fp: false }, 4)));
        assert_eq!(decode_insn(0x41c8), Some((Access::Load { rd: 10, size: 4, signed: true, fp: false }, 2)));
        assert_eq!(decode_insn(0xe690), Some((Access::Store { rs2: 12, size: 8, fp: false }, 2)));
        assert_eq!(decode_insn(0x2188), Some((Access::Load { rd: 10, size: 8, signed: false, fp: true }, 2)));
        assert_eq!(decode_insn(0x00150513), None);
    }

    #[test]
    fn extension() {
        assert_eq!(extend(0x80, 1, true), u64::MAX - 0x7f);
        assert_eq!(extend(0x1_0080, 1, false), 0x80);
        assert_eq!(extend(0xffff_ffff, 4, true), u64::MAX);
        assert_eq!(extend(5, 8, true), 5);
    }
}

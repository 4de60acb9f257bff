//! The SBI the hypervisor serves to its guests (RISC-V SBI 2.0): BASE,
//! TIME, IPI, RFENCE, HSM, SRST and DBCN. A guest calls it with `ecall`
//! from VS-mode (cause 10): a7 = extension id, a6 = function id, a0..a5 =
//! arguments; the result goes back in a0 (error) and a1 (value), §3.

/// Extension ids (SBI 2.0 §4–§12).
pub mod eid {
    pub const BASE: u64 = 0x10;
    pub const TIME: u64 = 0x5449_4d45;
    pub const IPI: u64 = 0x73_5049;
    pub const RFENCE: u64 = 0x5246_4e43;
    pub const HSM: u64 = 0x48_534d;
    pub const SRST: u64 = 0x5352_5354;
    pub const DBCN: u64 = 0x4442_434e;
}

/// Error codes (SBI 2.0 §3, Table 1).
pub mod err {
    pub const SUCCESS: i64 = 0;
    pub const FAILED: i64 = -1;
    pub const NOT_SUPPORTED: i64 = -2;
    pub const INVALID_PARAM: i64 = -3;
    pub const INVALID_ADDRESS: i64 = -5;
    pub const ALREADY_AVAILABLE: i64 = -6;
    pub const ALREADY_STOPPED: i64 = -8;
}

/// SBI specification version 2.0 (§4.1: major in bits 30..24).
pub const SPEC_VERSION: u64 = 2 << 24;
/// Implementation id. Ids are assigned by RISC-V International (§4.2);
/// Strata has none, so it reports one past the last assigned at the time
/// of writing and says so in docs/hypervisor.md.
pub const IMPL_ID: u64 = 0x5354;
pub const IMPL_VERSION: u64 = 0x0001_0000;

/// The extensions served, for probe_extension.
pub const EXTENSIONS: [u64; 7] = [eid::BASE, eid::TIME, eid::IPI, eid::RFENCE, eid::HSM, eid::SRST, eid::DBCN];

/// A decoded SBI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub eid: u64,
    pub fid: u64,
    pub args: [u64; 6],
}

/// `hart_mask`/`hart_mask_base` (§3.1): the vCPU ids selected, among
/// `count` vCPUs, or `None` if the mask names a vCPU that does not exist.
pub fn hart_mask(mask: u64, base: u64, count: u64) -> Option<Vec<u64>> {
    if base == u64::MAX {
        return Some((0..count).collect());
    }
    let mut v = Vec::new();
    for bit in 0..64 {
        if mask >> bit & 1 != 0 {
            let id = base.checked_add(bit)?;
            if id >= count {
                return None;
            }
            v.push(id);
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hart_masks() {
        assert_eq!(hart_mask(0b101, 0, 4), Some(vec![0, 2]));
        assert_eq!(hart_mask(0b1, 3, 4), Some(vec![3]));
        assert_eq!(hart_mask(0, u64::MAX, 3), Some(vec![0, 1, 2]));
        assert_eq!(hart_mask(0b10, 3, 4), None, "vCPU 4 does not exist");
        assert_eq!(hart_mask(1 << 63, u64::MAX - 1, 4), None, "base + bit overflows");
    }
}

//! The SBI the hypervisor serves to its guests (RISC-V SBI 2.0): BASE,
//! TIME, IPI, RFENCE, HSM, SRST and DBCN. A guest calls it with `ecall`
//! from VS-mode (cause 10): a7 = extension id, a6 = function id, a0..a5 =
//! arguments; the result goes back in a0 (error) and a1 (value), §3.
//!
//! [`serve`] is the handler. It decides, from the call and what it can ask
//! of the calling vCPU's VM ([`Caller`]), the [`Reply`] and the one
//! [`Action`] the hypervisor core then carries out on its harts and vCPUs:
//!
//! | extension, function | checks | reply | action |
//! |---|---|---|---|
//! | BASE 0–6 | – | versions, ids, probe | – |
//! | TIME set_timer | – | success | [`Action::SetTimer`]: arm the timer, clear VSTIP |
//! | IPI send_ipi | hart mask (§3.1) | success, or INVALID_PARAM | [`Action::Ipi`] to the vCPUs named |
//! | RFENCE fence_i | hart mask | success | – (harts keep decoded code coherent) |
//! | RFENCE sfence_vma(_asid) | hart mask | success | [`Action::FenceVm`]: the VM's translations on every hart |
//! | HSM hart_start | vCPU exists and is stopped | success, INVALID_PARAM, ALREADY_AVAILABLE | [`Action::Start`] |
//! | HSM hart_stop | – | success | [`Action::Stop`] |
//! | HSM hart_get_status | vCPU exists | its state | – |
//! | HSM hart_suspend, retentive default | – | success | [`Action::Suspend`]: wait like WFI |
//! | SRST system_reset | – | success | [`Action::End`] |
//! | DBCN console_write | buffer in the VM's RAM, high address half 0 (§12.1) | bytes written, or INVALID_PARAM | [`Action::Console`] |
//! | DBCN console_read / write_byte | – | 0 read / success | – / [`Action::Console`] |
//! | STRATA get_evidence | out_size ≥ [`EVIDENCE_LEN`] (else INVALID_PARAM, value the size needed); the nonce in the VM's RAM (else INVALID_ADDRESS) | success, value [`EVIDENCE_LEN`] | [`Action::WriteGuest`]: the signed evidence at out_addr (INVALID_ADDRESS if that is not the VM's RAM) |
//! | anything else | – | NOT_SUPPORTED | – |

use crate::attest::{EVIDENCE_LEN, NONCE_LEN};
use crate::hart::HartOps;
use crate::vcpu::HsmState;
use crate::vm::VmEnd;

/// Error codes (SBI 2.0 §3, Table 1).
pub use strata_arch::sbi::error as err;
/// Extension ids (SBI 2.0 §4–§12).
pub use strata_arch::sbi::ext as eid;

/// SBI specification version 2.0 (§4.1: major in bits 30..24).
pub const SPEC_VERSION: u64 = 2 << 24;
/// Implementation id (§4.2; strata_arch::sbi::IMPL_ID says why this one).
pub const IMPL_ID: u64 = strata_arch::sbi::IMPL_ID;
pub const IMPL_VERSION: u64 = 0x0001_0000;

/// The extensions served, for probe_extension.
pub const EXTENSIONS: [u64; 8] =
    [eid::BASE, eid::TIME, eid::IPI, eid::RFENCE, eid::HSM, eid::SRST, eid::DBCN, eid::STRATA];

/// A decoded SBI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub eid: u64,
    pub fid: u64,
    pub args: [u64; 6],
}

impl Call {
    /// The call in `hart`'s registers (a7, a6, a0..a5).
    pub fn read(hart: &dyn HartOps) -> Call {
        Call { eid: hart.gpr(17), fid: hart.gpr(16), args: [10, 11, 12, 13, 14, 15].map(|r| hart.gpr(r)) }
    }
}

/// The result the guest gets in a0 (error) and a1 (value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub error: i64,
    pub value: u64,
}

impl Reply {
    const fn ok(value: u64) -> Reply {
        Reply { error: err::SUCCESS, value }
    }

    const fn err(error: i64) -> Reply {
        Reply { error, value: 0 }
    }

    /// Puts the reply in `hart`'s a0 and a1.
    pub fn write(self, hart: &mut dyn HartOps) {
        hart.set_gpr(10, self.error as u64);
        hart.set_gpr(11, self.value);
    }
}

/// What the SBI may ask of the calling vCPU's VM.
pub trait Caller {
    /// How many vCPUs the VM has (their ids are 0 to this - 1).
    fn vcpus(&self) -> u64;
    /// The HSM state of the VM's vCPU `id` (< `vcpus()`).
    fn hsm(&self, id: u64) -> HsmState;
    /// Reads the VM's guest-physical memory at `gpa`; false if any byte of
    /// it is not the VM's RAM.
    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Signed evidence of the VM's initial state with `nonce`
    /// ([`crate::attest`]).
    fn evidence(&self, nonce: &[u8; NONCE_LEN]) -> [u8; EVIDENCE_LEN];
}

/// What a call asks of the hypervisor besides its reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    /// Arm the caller's timer at this `time` and clear its pending timer
    /// interrupt (§6.1).
    SetTimer(u64),
    /// A supervisor software interrupt for these vCPUs (ids in the VM).
    Ipi(Vec<u64>),
    /// Drop the VM's VS-stage translations on every hart: a superset of
    /// any remote SFENCE.VMA, and nobody else's.
    FenceVm,
    /// Start vCPU `id` at `pc` in VS-mode with a1 = `opaque` (§9.1).
    Start {
        id: u64,
        pc: u64,
        opaque: u64,
    },
    /// The caller stops.
    Stop,
    /// The caller waits for an interrupt (retentive suspend), then goes on.
    Suspend,
    /// The VM ends.
    End(VmEnd),
    /// Bytes for the VM's console.
    Console(Vec<u8>),
    /// Write `bytes` to the VM's memory at `gpa`; if that is not the VM's
    /// RAM, the reply becomes INVALID_ADDRESS.
    WriteGuest {
        gpa: u64,
        bytes: Vec<u8>,
    },
}

/// The SBI handler: the reply to `call` and what the hypervisor must do.
pub fn serve(call: &Call, caller: &dyn Caller) -> (Reply, Action) {
    let a = call.args;
    let count = caller.vcpus();
    match (call.eid, call.fid) {
        (eid::BASE, 0) => (Reply::ok(SPEC_VERSION), Action::None),
        (eid::BASE, 1) => (Reply::ok(IMPL_ID), Action::None),
        (eid::BASE, 2) => (Reply::ok(IMPL_VERSION), Action::None),
        (eid::BASE, 3) => (Reply::ok(EXTENSIONS.contains(&a[0]) as u64), Action::None),
        (eid::BASE, 4..=6) => (Reply::ok(0), Action::None),
        (eid::TIME, 0) => (Reply::ok(0), Action::SetTimer(a[0])),
        (eid::IPI, 0) => match hart_mask(a[0], a[1], count) {
            Some(ids) => (Reply::ok(0), Action::Ipi(ids)),
            None => (Reply::err(err::INVALID_PARAM), Action::None),
        },
        // Strata's harts keep decoded code coherent with memory writes, so
        // a remote FENCE.I has nothing more to do.
        (eid::RFENCE, 0) => match hart_mask(a[0], a[1], count) {
            Some(_) => (Reply::ok(0), Action::None),
            None => (Reply::err(err::INVALID_PARAM), Action::None),
        },
        (eid::RFENCE, 1 | 2) => match hart_mask(a[0], a[1], count) {
            Some(_) => (Reply::ok(0), Action::FenceVm),
            None => (Reply::err(err::INVALID_PARAM), Action::None),
        },
        (eid::HSM, 0) => {
            let (id, pc, opaque) = (a[0], a[1], a[2]);
            if id >= count {
                (Reply::err(err::INVALID_PARAM), Action::None)
            } else if caller.hsm(id) != HsmState::Stopped {
                (Reply::err(err::ALREADY_AVAILABLE), Action::None)
            } else {
                (Reply::ok(0), Action::Start { id, pc, opaque })
            }
        }
        (eid::HSM, 1) => (Reply::ok(0), Action::Stop),
        (eid::HSM, 2) if a[0] < count => (Reply::ok(caller.hsm(a[0]).sbi()), Action::None),
        (eid::HSM, 2) => (Reply::err(err::INVALID_PARAM), Action::None),
        // The default retentive suspend: wait like WFI, then succeed.
        (eid::HSM, 3) if a[0] as u32 == 0 => (Reply::ok(0), Action::Suspend),
        (eid::HSM, 3) => (Reply::err(err::NOT_SUPPORTED), Action::None),
        (eid::SRST, 0) => {
            let end = match (a[0], a[1]) {
                (0, 0) => VmEnd::PowerOff,
                (0, r) => VmEnd::Failure(r as u32),
                _ => VmEnd::Reset,
            };
            (Reply::ok(0), Action::End(end))
        }
        (eid::DBCN, 0) => {
            // §12.1: the buffer's address is base_addr_hi:base_addr_lo,
            // XLEN bits each; on RV64 a non-zero high half is beyond any
            // guest-physical address. At most a page is written per call
            // (a partial write is allowed, and the count returned).
            let n = a[0].min(4096) as usize;
            let mut buf = vec![0u8; n];
            if a[2] == 0 && caller.read_guest(a[1], &mut buf) {
                (Reply::ok(n as u64), Action::Console(buf))
            } else {
                // §12.1: memory that does not meet the requirements of
                // §3.2 (shared memory physical address range).
                (Reply::err(err::INVALID_PARAM), Action::None)
            }
        }
        (eid::DBCN, 1) => (Reply::ok(0), Action::None),
        (eid::DBCN, 2) => (Reply::ok(0), Action::Console(vec![a[0] as u8])),
        (eid::STRATA, strata_arch::sbi::fid::STRATA_GET_EVIDENCE) => {
            let (nonce_addr, out, size) = (a[0], a[1], a[2]);
            let mut nonce = [0u8; NONCE_LEN];
            if size < EVIDENCE_LEN as u64 {
                (Reply { error: err::INVALID_PARAM, value: EVIDENCE_LEN as u64 }, Action::None)
            } else if !caller.read_guest(nonce_addr, &mut nonce) {
                (Reply::err(err::INVALID_ADDRESS), Action::None)
            } else {
                let bytes = caller.evidence(&nonce).to_vec();
                (Reply::ok(EVIDENCE_LEN as u64), Action::WriteGuest { gpa: out, bytes })
            }
        }
        _ => (Reply::err(err::NOT_SUPPORTED), Action::None),
    }
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

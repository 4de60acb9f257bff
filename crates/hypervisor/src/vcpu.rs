//! Virtual harts and the world switch.
//!
//! A vCPU's architectural state lives here while it is not on a hart. The
//! world switch moves it in and out through [`HartOps`]: the general and FP
//! registers, the VS CSRs that stand in for the S CSRs while V=1 (Priv.
//! §8.2.11–8.2.18), the per-guest hypervisor CSRs (`hvip`, `hcounteren`,
//! `henvcfg`, `htimedelta`), the guest pc (in `sepc`) and privilege (VS or
//! VU, in `sstatus.SPP`). `hgatp` — the VM's G-stage root and VMID — is
//! switched with it; VMIDs, not flushes, keep VMs' cached translations
//! apart.

use crate::hart::{sstatus, Csr, HartOps};
use crate::ids::{HartIndex, VmIndex};
use strata_arch::csr::counters;

/// SBI HSM states (SBI 2.0 §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsmState {
    Started,
    Stopped,
    /// Waiting to start at the next scheduling point.
    StartPending,
    /// Retentive suspend (waits like WFI).
    Suspended,
}

impl HsmState {
    /// The SBI encoding.
    pub fn sbi(self) -> u64 {
        match self {
            HsmState::Started => 0,
            HsmState::Stopped => 1,
            HsmState::StartPending => 2,
            HsmState::Suspended => 4,
        }
    }
}

/// The CSRs saved and restored by the world switch: the VS CSRs, the
/// per-guest hypervisor CSRs, and the S CSRs that have no VS twin and so
/// must be swapped by software (§8.2: scounteren, senvcfg).
const SWITCHED: [Csr; 14] = [
    Csr::Vsstatus,
    Csr::Vsie,
    Csr::Vstvec,
    Csr::Vsscratch,
    Csr::Vsepc,
    Csr::Vscause,
    Csr::Vstval,
    Csr::Vsatp,
    Csr::Hcounteren,
    Csr::Henvcfg,
    Csr::Htimedelta,
    Csr::Fcsr,
    Csr::Scounteren,
    Csr::Senvcfg,
];

/// Where `c` is kept in a vCPU's saved CSRs.
const fn slot(c: Csr) -> usize {
    let mut i = 0;
    while i < SWITCHED.len() {
        if SWITCHED[i] as u8 == c as u8 {
            return i;
        }
        i += 1;
    }
    panic!("not a switched CSR")
}

/// `scounteren` at vCPU reset: CY, TM and IR readable in VU-mode.
pub const SCOUNTEREN_AT_RESET: u64 = counters::CY | counters::TM | counters::IR;

/// `hstatus` bits (Priv. §8.2.1).
pub use strata_arch::csr::hstatus;

/// `hvip`/`hip` bits (Priv. §8.2.3): the VS-level interrupts.
pub mod hvip {
    use strata_arch::irq;
    pub const VSSIP: u64 = irq::bit(irq::VSSIP);
    pub const VSTIP: u64 = irq::bit(irq::VSTIP);
    pub const VSEIP: u64 = irq::bit(irq::VSEIP);
}

/// Counters of one vCPU.
#[derive(Clone, Debug, Default)]
pub struct VcpuStats {
    /// Instruction slots it ran (retired instructions plus trapped ones):
    /// its share of the harts.
    pub slots: u64,
    pub exits: u64,
    pub sbi_calls: u64,
    pub mmio: u64,
    pub wfi: u64,
    pub preemptions: u64,
    pub injected: u64,
    pub switches_in: u64,
}

#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Its VM.
    pub(crate) vm: VmIndex,
    /// The vCPU's hart id inside its VM.
    pub(crate) id: u64,
    pub(crate) hsm: HsmState,
    pub(crate) x: [u64; 32],
    pub(crate) f: [u64; 32],
    pub(crate) pc: u64,
    /// Running in VS-mode (true) or VU-mode.
    pub(crate) vs_mode: bool,
    csrs: [u64; SWITCHED.len()],
    /// The injected interrupts the vCPU has pending: `hvip` while it is off
    /// a hart (VSSIP can also be set and cleared by the guest itself).
    pub(crate) hvip: u64,
    /// An IPI sent to it while its state was on a hart, for `hvip.VSSIP`
    /// when that hart next enters it.
    pub(crate) ipi: bool,
    /// SBI set_timer deadline (in `time` units), if armed.
    pub(crate) timer: Option<u64>,
    /// Waiting for an interrupt (WFI or retentive suspend).
    pub(crate) waiting: bool,
    /// Hart this vCPU's state is loaded on.
    pub(crate) loaded_on: Option<HartIndex>,
    /// Hart it ran on last (kept across `reset`: the translations it left
    /// there outlive a restart).
    pub(crate) last_hart: Option<HartIndex>,
    pub(crate) stats: VcpuStats,
    /// Its VM is shadow-paged: it runs with `hstatus.VTVM`.
    pub(crate) shadow: bool,
    /// A balancing move waits for it to leave its hart (not ready until
    /// then).
    pub(crate) moving: bool,
    /// A real-time move (`placement`) is under way: the host nanoseconds
    /// it has cost so far, completed by the load on its new hart.
    pub(crate) move_ns: Option<u64>,
}

impl Vcpu {
    pub(crate) fn new(vm: VmIndex, id: u64) -> Self {
        Self {
            vm,
            id,
            hsm: HsmState::Stopped,
            x: [0; 32],
            f: [0; 32],
            pc: 0,
            vs_mode: true,
            csrs: [0; SWITCHED.len()],
            hvip: 0,
            ipi: false,
            timer: None,
            waiting: false,
            loaded_on: None,
            last_hart: None,
            stats: VcpuStats::default(),
            shadow: false,
            moving: false,
            move_ns: None,
        }
    }

    /// Resets the vCPU to start at `pc` in VS-mode with a0 = hart id and
    /// a1 = `opaque`, translation off and interrupts disabled (SBI 2.0
    /// §9.2 hart_start; also the boot hart's entry, Linux's RISC-V boot
    /// protocol).
    pub(crate) fn reset(&mut self, pc: u64, opaque: u64) {
        let (vm, id, stats, last) = (self.vm, self.id, std::mem::take(&mut self.stats), self.last_hart);
        let shadow = self.shadow;
        *self = Vcpu::new(vm, id);
        self.shadow = shadow;
        self.stats = stats;
        self.last_hart = last;
        self.pc = pc;
        self.x[10] = id;
        self.x[11] = opaque;
        // The counter-enable chain for V=1 (Priv. §8.2.6 hcounteren, §4.1.5
        // scounteren, §8.6.1 virtual-instruction cases): `hcounteren` opens
        // every counter to the guest, so VS-mode reads them and what VU-mode
        // may read is decided by the guest's own `scounteren` alone. That
        // starts as firmware leaves it on a bare machine (OpenSBI, and KVM
        // for its guests, enable CY, TM and IR for U-mode): Linux never
        // writes `scounteren` without the SBI PMU extension, yet its vDSO
        // reads `time` from user programs (`clock_gettime`, issue 12 item 3).
        self.csrs[slot(Csr::Hcounteren)] = 0xffff_ffff;
        self.csrs[slot(Csr::Scounteren)] = SCOUNTEREN_AT_RESET;
    }

    /// Loads this vCPU onto a hart: registers, VS CSRs, the VM's `hgatp`,
    /// and SRET's return state.
    pub(crate) fn switch_in(&mut self, hart: &mut dyn HartOps, hgatp: u64, hart_index: HartIndex) {
        self.stats.switches_in += 1;
        for (n, &v) in self.x.iter().enumerate().skip(1) {
            hart.set_gpr(n, v);
        }
        for (n, &v) in self.f.iter().enumerate() {
            hart.set_fpr(n, v);
        }
        // §8.5.3 note: zero vsatp before switching hgatp, so no VS-stage
        // translation of one guest is ever cached under another's VMID.
        hart.set_csr(Csr::Vsatp, 0);
        hart.set_csr(Csr::Hgatp, hgatp);
        for (c, &v) in SWITCHED.iter().zip(self.csrs.iter()) {
            hart.set_csr(*c, v);
        }
        hart.set_csr(Csr::Hvip, self.hvip);
        self.loaded_on = Some(hart_index);
        self.prepare_return(hart);
    }

    /// Saves the vCPU's state from the hart it is on (after a trap into
    /// HS-mode, when the guest pc is in `sepc`).
    pub(crate) fn switch_out(&mut self, hart: &mut dyn HartOps) {
        self.capture_return(hart);
        for n in 1..32 {
            self.x[n] = hart.gpr(n);
        }
        for n in 0..32 {
            self.f[n] = hart.fpr(n);
        }
        for (c, v) in SWITCHED.iter().zip(self.csrs.iter_mut()) {
            *v = hart.csr(*c);
        }
        self.hvip = hart.csr(Csr::Hvip);
        self.loaded_on = None;
    }

    /// Reads where the guest was when it trapped: pc and VS/VU.
    pub(crate) fn capture_return(&mut self, hart: &dyn HartOps) {
        self.pc = hart.csr(Csr::Sepc);
        self.vs_mode = hart.csr(Csr::Sstatus) & sstatus::SPP != 0;
    }

    /// Sets `sepc`, `sstatus.SPP` and `hstatus` (SPV=1, SPVP, VTW) so that
    /// the next SRET enters the guest where it is to continue.
    pub(crate) fn prepare_return(&self, hart: &mut dyn HartOps) {
        hart.set_csr(Csr::Sepc, self.pc);
        let ss = hart.csr(Csr::Sstatus);
        hart.set_csr(Csr::Sstatus, if self.vs_mode { ss | sstatus::SPP } else { ss & !sstatus::SPP });
        let mut hs = hart.csr(Csr::Hstatus) | hstatus::SPV | hstatus::VTW;
        // Shadow paging: the guest's satp accesses and SFENCE.VMA trap
        // (Priv. §8.2.1, hstatus.VTVM).
        hs = if self.shadow { hs | hstatus::VTVM } else { hs & !hstatus::VTVM };
        hs = if self.vs_mode { hs | hstatus::SPVP } else { hs & !hstatus::SPVP };
        hart.set_csr(Csr::Hstatus, hs);
    }

    /// Whether an interrupt the guest has enabled (in `vsie`) is pending:
    /// what ends a WFI (Priv. §3.3.3).
    pub fn wakeup_pending(&self) -> bool {
        let vsie = self.csrs[slot(Csr::Vsie)];
        (self.hvip >> 1) & vsie != 0
    }

    /// `vsie`, as last saved.
    pub fn vsie(&self) -> u64 {
        self.csrs[slot(Csr::Vsie)]
    }

    /// Forgets the guest's state: registers, CSRs, pc and pending
    /// interrupts become zero and the vCPU stops (its VM has ended; nothing
    /// of a protected VM stays behind in the hypervisor's own memory).
    pub(crate) fn scrub(&mut self) {
        let (vm, id, stats, shadow) = (self.vm, self.id, std::mem::take(&mut self.stats), self.shadow);
        *self = Vcpu::new(vm, id);
        self.stats = stats;
        self.shadow = shadow;
    }

    /// Its hart id inside its VM.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its VM.
    pub fn vm(&self) -> VmIndex {
        self.vm
    }

    pub fn hsm(&self) -> HsmState {
        self.hsm
    }

    pub fn stats(&self) -> &VcpuStats {
        &self.stats
    }
}

/// Zeroes a hart's general and FP registers and the VS CSRs the world
/// switch loads, so nothing of the vCPU last on it stays there.
pub(crate) fn scrub_hart(hart: &mut dyn HartOps) {
    for n in 1..32 {
        hart.set_gpr(n, 0);
    }
    for n in 0..32 {
        hart.set_fpr(n, 0);
    }
    for c in SWITCHED {
        hart.set_csr(c, 0);
    }
    hart.set_csr(Csr::Hvip, 0);
    hart.set_csr(Csr::Vsatp, 0);
    hart.set_csr(Csr::Hgatp, 0);
}

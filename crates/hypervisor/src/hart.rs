//! The hypervisor's view of a hart: the small trait its core talks to.
//!
//! Everything here is something HS-mode software can do on a RISC-V hart
//! with the Hypervisor extension (Privileged Architecture 20211203 chapter
//! 8): read and write registers and CSRs, return to the guest with SRET and
//! get control back at the next trap into HS-mode, and fence address
//! translations. Strata's emulated hart implements it directly; on real
//! hardware the same calls would be a handful of instructions each. The one
//! addition is [`HartOps::invalidate_page`], an accelerator whose hardware
//! equivalent is one `HFENCE.GVMA gpa, vmid` per mapping of the page (which
//! the ownership tracker lists).

/// The CSRs the hypervisor uses, by their specification names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Csr {
    Sstatus,
    Sepc,
    Scause,
    Stval,
    Hstatus,
    Hedeleg,
    Hideleg,
    Hvip,
    Hcounteren,
    Henvcfg,
    Htimedelta,
    Htval,
    Htinst,
    Hgatp,
    Vsstatus,
    Vsie,
    Vstvec,
    Vsscratch,
    Vsepc,
    Vscause,
    Vstval,
    Vsatp,
    Scounteren,
    Senvcfg,
    Fcsr,
}

impl Csr {
    /// The CSR number (Priv. Tables 2.2–2.5).
    pub const fn number(self) -> u16 {
        use strata_arch::csr::addr;
        match self {
            Csr::Sstatus => addr::SSTATUS,
            Csr::Sepc => addr::SEPC,
            Csr::Scause => addr::SCAUSE,
            Csr::Stval => addr::STVAL,
            Csr::Hstatus => addr::HSTATUS,
            Csr::Hedeleg => addr::HEDELEG,
            Csr::Hideleg => addr::HIDELEG,
            Csr::Hvip => addr::HVIP,
            Csr::Hcounteren => addr::HCOUNTEREN,
            Csr::Henvcfg => addr::HENVCFG,
            Csr::Htimedelta => addr::HTIMEDELTA,
            Csr::Htval => addr::HTVAL,
            Csr::Htinst => addr::HTINST,
            Csr::Hgatp => addr::HGATP,
            Csr::Vsstatus => addr::VSSTATUS,
            Csr::Vsie => addr::VSIE,
            Csr::Vstvec => addr::VSTVEC,
            Csr::Vsscratch => addr::VSSCRATCH,
            Csr::Vsepc => addr::VSEPC,
            Csr::Vscause => addr::VSCAUSE,
            Csr::Vstval => addr::VSTVAL,
            Csr::Vsatp => addr::VSATP,
            Csr::Scounteren => addr::SCOUNTEREN,
            Csr::Senvcfg => addr::SENVCFG,
            Csr::Fcsr => addr::FCSR,
        }
    }
}

/// `scause` values (Priv. Table 8.6).
pub use strata_arch::cause;
/// `sstatus`/`vsstatus` bits (Priv. §4.1.1): `sstatus` is a view of
/// `mstatus` with its bits in the same places.
pub use strata_arch::csr::mstatus as sstatus;

/// Where the trap that ended a guest run went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapTo {
    /// Into HS-mode: the hypervisor reads `scause`, `sepc`, `stval`,
    /// `htval`, `htinst`, `hstatus` to see why.
    Hs,
    /// Into M-mode: nothing Strata's hypervisor delegates can end up there
    /// unless the machine itself failed; the VM is stopped.
    M,
}

pub trait HartOps {
    /// `mhartid`.
    fn hart_id(&self) -> u64;
    fn csr(&self, c: Csr) -> u64;
    /// Writes a CSR with the architectural write semantics (WARL fields).
    fn set_csr(&mut self, c: Csr, v: u64);
    fn gpr(&self, n: usize) -> u64;
    fn set_gpr(&mut self, n: usize, v: u64);
    fn fpr(&self, n: usize) -> u64;
    fn set_fpr(&mut self, n: usize, v: u64);
    /// The `time` CSR as HS-mode reads it.
    fn time(&self) -> u64;
    /// Runs the guest for up to `budget` instruction slots: SRET into it if
    /// the hart stopped at a trap into HS-mode, else let it go on. Returns
    /// the slots used and where a trap went, or `None` if the budget ended
    /// with the guest still running (its hypervisor timer has not fired).
    fn run_guest(&mut self, budget: u64) -> (u64, Option<TrapTo>);
    /// Stops a running guest with a supervisor timer interrupt into HS-mode
    /// (the hypervisor's timer firing), so its state is in trap form; no-op
    /// if it is stopped already.
    fn preempt(&mut self);
    /// HLVX.HU from HS-mode: the guest instruction at `va` (as the guest
    /// sees it: VS-stage then G-stage, with execute permission), or `None`
    /// if the access faults.
    fn read_guest_insn(&mut self, va: u64) -> Option<u32>;
    /// HFENCE.GVMA: `gpa` (not shifted) and `vmid`, each optional.
    fn hfence_gvma(&mut self, gpa: Option<u64>, vmid: Option<u64>);
    /// HFENCE.VVMA: the VS-stage translations of the current `hgatp`
    /// VMID for `va` and `asid`, each optional (shadow paging's
    /// intercepted SFENCE.VMA).
    fn hfence_vvma(&mut self, va: Option<u64>, asid: Option<u64>);
    /// Drops every cached translation, in every VMID and ASID, that reaches
    /// the machine page at `page_addr`; returns how many were dropped.
    fn invalidate_page(&mut self, page_addr: u64) -> u64;
    /// The coarse alternatives, for comparison: drop every translation of
    /// the given hardware VMIDs (`HFENCE.GVMA x0, vmid` each), or of
    /// everything (`None`: `HFENCE.GVMA x0, x0`), on account of a change
    /// to `page_addr`. Returns (dropped, collateral: dropped although they
    /// did not reach the page).
    fn invalidate_coarse(&mut self, vmids: Option<&[u64]>, page_addr: u64) -> (u64, u64);
    /// Misses on translations dropped as collateral, by hardware VMID.
    fn collateral_misses(&self) -> Vec<(u64, u64)>;
    /// Whether the caller's thread can reach this hart's registers. A hart
    /// running on another host thread ([`crate::smp`]) is reached only
    /// through its fences and invalidations, which become shootdown
    /// requests it serves itself; the core never loads, unloads or scrubs
    /// such a hart (it leaves a request in the hart's trace instead).
    fn local(&self) -> bool {
        true
    }

    /// The last [`run_guest`](Self::run_guest) ended at a PAUSE (Zihintpause,
    /// the spin-wait hint in every Linux spin loop): the guest waits for
    /// another of its vCPUs, which may be waiting for this hart (the
    /// scheduler then lets it run: pause-loop exiting).
    fn run_paused(&self) -> bool {
        false
    }
}

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
        match self {
            Csr::Sstatus => 0x100,
            Csr::Sepc => 0x141,
            Csr::Scause => 0x142,
            Csr::Stval => 0x143,
            Csr::Hstatus => 0x600,
            Csr::Hedeleg => 0x602,
            Csr::Hideleg => 0x603,
            Csr::Hvip => 0x645,
            Csr::Hcounteren => 0x606,
            Csr::Henvcfg => 0x60a,
            Csr::Htimedelta => 0x605,
            Csr::Htval => 0x643,
            Csr::Htinst => 0x64a,
            Csr::Hgatp => 0x680,
            Csr::Vsstatus => 0x200,
            Csr::Vsie => 0x204,
            Csr::Vstvec => 0x205,
            Csr::Vsscratch => 0x240,
            Csr::Vsepc => 0x241,
            Csr::Vscause => 0x242,
            Csr::Vstval => 0x243,
            Csr::Vsatp => 0x280,
            Csr::Scounteren => 0x106,
            Csr::Senvcfg => 0x10a,
            Csr::Fcsr => 0x003,
        }
    }
}

/// `scause` values the hypervisor handles (Priv. Table 8.6).
pub mod cause {
    /// Set in `scause` for an interrupt.
    pub const INTERRUPT: u64 = 1 << 63;
    pub const INSN_ACCESS: u64 = 1;
    pub const ILLEGAL_INSN: u64 = 2;
    pub const LOAD_ACCESS: u64 = 5;
    pub const STORE_ACCESS: u64 = 7;
    pub const ECALL_VS: u64 = 10;
    pub const INSN_GUEST_PAGE: u64 = 20;
    pub const LOAD_GUEST_PAGE: u64 = 21;
    pub const VIRTUAL_INSN: u64 = 22;
    pub const STORE_GUEST_PAGE: u64 = 23;
}

/// `sstatus`/`vsstatus` bits (Priv. §4.1.1).
pub mod sstatus {
    pub const SIE: u64 = 1 << 1;
    pub const SPIE: u64 = 1 << 5;
    pub const SPP: u64 = 1 << 8;
}

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
}

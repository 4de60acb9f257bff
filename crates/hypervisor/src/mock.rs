//! A scripted hart and machine memory for unit tests of the core: the
//! scheduler and the SBI are driven through [`HartOps`] exactly as on
//! Strata's emulated harts, with guests reduced to what the test needs.
//!
//! A [`MockHart`] knows which guest it runs from the VMID in `hgatp`
//! (the world switch writes it). Each guest (VM) follows a script of
//! [`Step`]s shared by all harts ([`Guests`]), one step per `run_guest` of
//! any of its vCPUs; when its script is empty it is busy and uses whatever
//! budget it gets. After each trap, the hart's next `run_guest` records a0
//! and a1 (the reply of an SBI call) first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use strata_ownership::{MachineMemory, TableMemError};

use crate::hart::{cause, Csr, HartOps, TrapTo};

/// One thing a scripted guest does in a `run_guest`.
#[derive(Clone, Debug)]
pub enum Step {
    /// Runs the whole budget.
    Busy,
    /// Runs `slots` slots, then makes the SBI call (a7 = eid, a6 = fid,
    /// a0.. = args).
    Sbi { slots: u64, eid: u64, fid: u64, args: Vec<u64> },
    /// Runs `slots` slots, sets `vsie` (the interrupts that may wake it),
    /// then executes WFI (a virtual-instruction trap with VTW set).
    Wfi { slots: u64, vsie: u64 },
}

/// What all the mock harts share: the guests' scripts and what they saw.
#[derive(Default)]
pub struct Guests {
    /// Per VMID: what the guest does next.
    pub scripts: BTreeMap<u64, VecDeque<Step>>,
    /// Per VMID: slots run, over all harts.
    pub ran: BTreeMap<u64, u64>,
    /// (VMID, a0, a1) seen on re-entry after each trap.
    pub replies: Vec<(u64, u64, u64)>,
    /// In order, over all harts: (hart, VMID) of each `hgatp` switch to a
    /// guest (`Load`) and each HFENCE.GVMA by VMID (`Fence`).
    pub events: Vec<Event>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Load { hart: u64, vmid: u64 },
    Fence { hart: u64, vmid: u64 },
}

pub struct MockHart {
    pub id: u64,
    pub now: u64,
    gpr: [u64; 32],
    fpr: [u64; 32],
    csrs: HashMap<Csr, u64>,
    pub guests: Arc<Mutex<Guests>>,
    /// The VMID of the guest stopped at a trap into HS (SRET pending).
    trapped: Option<u64>,
    pub preempts: u64,
    pub fences: Vec<Option<u64>>,
    /// HFENCE.VVMAs, by address.
    pub vvma: Vec<Option<u64>>,
    /// The ASID of each `HFENCE.VVMA` in `vvma` (`None`: every ASID).
    pub vvma_asid: Vec<Option<u64>>,
    /// What `read_guest_insn` returns (the guest's instruction at any pc).
    pub insn: Option<u32>,
}

impl MockHart {
    pub fn new(id: u64, guests: Arc<Mutex<Guests>>) -> Self {
        MockHart {
            id,
            now: 0,
            gpr: [0; 32],
            fpr: [0; 32],
            csrs: HashMap::new(),
            guests,
            trapped: None,
            preempts: 0,
            fences: Vec::new(),
            vvma: Vec::new(),
            vvma_asid: Vec::new(),
            insn: None,
        }
    }

    /// The VMID the hart's `hgatp` names (0: none).
    pub fn vmid(&self) -> u64 {
        self.csr(Csr::Hgatp) >> 44 & 0x3fff
    }

    /// Whether any general or FP register is not zero.
    pub fn holds_state(&self) -> bool {
        self.gpr.iter().chain(self.fpr.iter()).any(|&r| r != 0)
    }

    fn trap(&mut self, scause: u64, stval: u64) {
        self.csrs.insert(Csr::Scause, scause);
        self.csrs.insert(Csr::Stval, stval);
        self.trapped = Some(self.vmid());
    }
}

impl HartOps for MockHart {
    fn hart_id(&self) -> u64 {
        self.id
    }
    fn csr(&self, c: Csr) -> u64 {
        self.csrs.get(&c).copied().unwrap_or(0)
    }
    fn set_csr(&mut self, c: Csr, v: u64) {
        self.csrs.insert(c, v);
        if c == Csr::Hgatp && v != 0 {
            let vmid = self.vmid();
            self.guests.lock().unwrap().events.push(Event::Load { hart: self.id, vmid });
        }
    }
    fn gpr(&self, n: usize) -> u64 {
        self.gpr[n & 31]
    }
    fn set_gpr(&mut self, n: usize, v: u64) {
        if n & 31 != 0 {
            self.gpr[n & 31] = v;
        }
    }
    fn fpr(&self, n: usize) -> u64 {
        self.fpr[n & 31]
    }
    fn set_fpr(&mut self, n: usize, v: u64) {
        self.fpr[n & 31] = v;
    }
    fn time(&self) -> u64 {
        self.now
    }
    fn run_guest(&mut self, budget: u64) -> (u64, Option<TrapTo>) {
        let vmid = self.vmid();
        assert_ne!(vmid, 0, "run_guest with no guest loaded");
        let guests = self.guests.clone();
        let mut g = guests.lock().unwrap();
        // A reply is the trapping guest's a0/a1 when it comes back (with
        // several vCPUs in a VM, a test must not rely on which one).
        if self.trapped.take() == Some(vmid) {
            g.replies.push((vmid, self.gpr[10], self.gpr[11]));
        }
        let step = g.scripts.entry(vmid).or_default().pop_front().unwrap_or(Step::Busy);
        let (used, to) = match step {
            Step::Busy => (budget, None),
            Step::Sbi { slots, eid, fid, args } => {
                self.gpr[17] = eid;
                self.gpr[16] = fid;
                for (k, a) in args.iter().enumerate().take(6) {
                    self.gpr[10 + k] = *a;
                }
                self.trap(cause::ECALL_VS, 0);
                (slots.min(budget.saturating_sub(1)) + 1, Some(TrapTo::Hs))
            }
            Step::Wfi { slots, vsie } => {
                self.csrs.insert(Csr::Vsie, vsie);
                self.trap(
                    cause::VIRTUAL_INSN,
                    u64::from(strata_arch::isa::encode(strata_arch::isa::Op::WFI, 0, 0, 0, 0)),
                );
                (slots.min(budget.saturating_sub(1)) + 1, Some(TrapTo::Hs))
            }
        };
        *g.ran.entry(vmid).or_default() += used;
        (used, to)
    }
    fn preempt(&mut self) {
        if self.trapped.is_none() {
            self.preempts += 1;
            self.trap(cause::INTERRUPT | cause::STI, 0);
        }
    }
    fn read_guest_insn(&mut self, _: u64) -> Option<u32> {
        self.insn
    }
    fn hfence_gvma(&mut self, _: Option<u64>, vmid: Option<u64>) {
        self.fences.push(vmid);
        if let Some(vmid) = vmid {
            self.guests.lock().unwrap().events.push(Event::Fence { hart: self.id, vmid });
        }
    }
    fn hfence_vvma(&mut self, va: Option<u64>, asid: Option<u64>) {
        self.vvma.push(va);
        self.vvma_asid.push(asid);
    }
    fn invalidate_page(&mut self, _: u64) -> u64 {
        0
    }
    fn invalidate_coarse(&mut self, _: Option<&[u64]>, _: u64) -> (u64, u64) {
        (0, 0)
    }
    fn collateral_misses(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }
}

/// Machine memory in a vector the test keeps a handle on.
pub struct MockMem {
    pub base: u64,
    pub bytes: Arc<Mutex<Vec<u8>>>,
}

impl MockMem {
    pub fn new(base: u64, size: usize) -> Self {
        MockMem { base, bytes: Arc::new(Mutex::new(vec![0; size])) }
    }

    fn range(&self, pa: u64, len: usize) -> Result<std::ops::Range<usize>, TableMemError> {
        let size = self.bytes.lock().unwrap().len();
        let off = pa.checked_sub(self.base).ok_or(TableMemError::BadAddress(pa))? as usize;
        let end = off.checked_add(len).filter(|&e| e <= size).ok_or(TableMemError::BadAddress(pa))?;
        Ok(off..end)
    }
}

impl MachineMemory for MockMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), TableMemError> {
        let r = self.range(pa, buf.len())?;
        buf.copy_from_slice(&self.bytes.lock().unwrap()[r]);
        Ok(())
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> Result<(), TableMemError> {
        let r = self.range(pa, data.len())?;
        self.bytes.lock().unwrap()[r].copy_from_slice(data);
        Ok(())
    }
}

//! What the hypervisor does with a trap into HS-mode that ended a guest
//! run (Priv. §8.6: the trap's CSRs say why).
//!
//! | `scause` | meaning | handled by | then |
//! |---|---|---|---|
//! | an interrupt | only `preempt` raises one, and it is no guest exit | – | the vCPU stays, the round goes on |
//! | 10, ecall from VS | an SBI call | [`crate::sbi::serve`], then the action here | usually the vCPU goes on; stop, suspend or the VM's end take it off |
//! | 21, 23, load/store guest-page fault | MMIO, or an access outside the VM's RAM | [`crate::mmio::emulate`] | the access done, or an access fault injected |
//! | 20, instruction guest-page fault | a fetch outside the VM's RAM | – | an instruction access fault injected |
//! | 22, virtual instruction: WFI | the guest waits | `wait` | off the hart until an interrupt it enabled is pending |
//! | 22, anything else | what the hypervisor does not emulate | – | an illegal-instruction exception injected (§8.6.1 note) |
//! | any other | a trap not delegated by `hedeleg` | – | given to the guest as it is |
//!
//! Injection is the trap entry into VS-mode done by software (Priv.
//! §8.6.4): `vsstatus`, `vscause`, `vstval`, `vsepc` written, the guest
//! resumes at `vstvec`.

use crate::hart::{cause, sstatus, Csr, HartOps};
use crate::ids::{HartIndex, VcpuIndex};
use crate::mmio::{self, Emulated};
use crate::sbi::{self, Action, Call};
use crate::vcpu::{hvip, HsmState};
use crate::vm::Vm;
use crate::{Hypervisor, Next};

/// Whether `insn` (from `stval`) is WFI, whose instruction word has no
/// fields (Priv. §3.3.3).
pub(crate) fn is_wfi(insn: u64) -> bool {
    use strata_arch::isa::{encoding, Op};
    u32::try_from(insn).is_ok_and(|w| encoding(Op::WFI).is_some_and(|e| e.mask == u32::MAX && e.matches(w)))
}

/// The SBI's view of the calling vCPU's VM.
struct CallerView<'a> {
    hyp: &'a Hypervisor,
    vm: &'a Vm,
}

impl sbi::Caller for CallerView<'_> {
    fn vcpus(&self) -> u64 {
        self.vm.vcpus.len() as u64
    }
    fn hsm(&self, id: u64) -> HsmState {
        self.vm.vcpus.get(id as usize).map_or(HsmState::Stopped, |&c| self.hyp.vcpus[c].hsm)
    }
    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.hyp.guest_read(self.vm.id, gpa, buf)
    }
    fn evidence(&self, nonce: &[u8; crate::attest::NONCE_LEN]) -> [u8; crate::attest::EVIDENCE_LEN] {
        self.hyp.attest.sign(&crate::attest::Evidence {
            protected: self.vm.protected,
            measurement: self.vm.measurement,
            hypervisor: crate::attest::hypervisor_digest(),
            nonce: *nonce,
        })
    }
}

impl Hypervisor {
    /// Handles the trap that ended vCPU `v`'s run on hart `h`.
    pub(crate) fn handle_exit(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, v: VcpuIndex) -> Next {
        let scause = harts[h.0].csr(Csr::Scause);
        if scause & cause::INTERRUPT != 0 {
            // Only preempt() raises an interrupt into HS, and it is not a
            // guest exit; seen here, it is one all the same.
            return Next::Preempted;
        }
        let vm = self.vcpus[v].vm;
        let shadow = self.vms[vm].shadow.is_some();
        let next = match scause {
            cause::INSN_PAGE | cause::LOAD_PAGE | cause::STORE_PAGE if shadow => self.shadow_fault(harts, h, v, scause),
            cause::VIRTUAL_INSN if shadow && self.shadow_insn(harts, h, v) => Next::Continue,
            cause::ECALL_VS => {
                self.vms[vm].stats.sbi_calls += 1;
                self.vcpus[v].stats.sbi_calls += 1;
                let hart = &mut *harts[h.0];
                let sepc = hart.csr(Csr::Sepc);
                hart.set_csr(Csr::Sepc, sepc.wrapping_add(4));
                self.sbi_call(harts, h, v)
            }
            // A fault on RAM that is mapped again by now raced with a page
            // changing hands on another hart's thread (`migrate_page`
            // unmaps, invalidates, copies and maps again): the access is
            // retried as it was.
            cause::INSN_GUEST_PAGE | cause::LOAD_GUEST_PAGE | cause::STORE_GUEST_PAGE
                if self.remapped(&*harts[h.0], vm, scause) =>
            {
                Next::Continue
            }
            cause::LOAD_GUEST_PAGE | cause::STORE_GUEST_PAGE => {
                self.vms[vm].stats.mmio_exits += 1;
                self.vcpus[v].stats.mmio += 1;
                match mmio::emulate(&mut *harts[h.0], &mut self.vms[vm].bus, scause) {
                    Emulated::Done => {}
                    Emulated::Fault { cause, tval } => self.inject(&mut *harts[h.0], v, cause, tval),
                }
                Next::Continue
            }
            cause::INSN_GUEST_PAGE => {
                let tval = harts[h.0].csr(Csr::Stval);
                self.inject(&mut *harts[h.0], v, cause::INSN_ACCESS, tval);
                Next::Continue
            }
            cause::VIRTUAL_INSN => {
                self.vms[vm].stats.virtual_insn += 1;
                let hart = &mut *harts[h.0];
                let insn = hart.csr(Csr::Stval);
                if is_wfi(insn) {
                    let sepc = hart.csr(Csr::Sepc);
                    hart.set_csr(Csr::Sepc, sepc.wrapping_add(4));
                    self.vcpus[v].stats.wfi += 1;
                    self.wait(&mut *harts[h.0], v)
                } else {
                    // §8.6.1 note: what the hypervisor does not emulate is
                    // an illegal instruction for the guest.
                    self.inject(hart, v, cause::ILLEGAL_INSN, insn);
                    Next::Continue
                }
            }
            other => {
                // A trap the guest did not get through hedeleg: give it to
                // the guest as it is.
                let tval = harts[h.0].csr(Csr::Stval);
                self.inject(&mut *harts[h.0], v, other, tval);
                Next::Continue
            }
        };
        self.vms[vm].poll_power();
        if !self.vms[vm].running() {
            return Next::Off;
        }
        next
    }

    /// Whether the guest-page fault `scause` on `hart` names a
    /// guest-physical address VM `vm`'s G-stage tables now map with the
    /// permission the access needed (Priv. §8.6.3: `htval` holds the
    /// address shifted right by 2, `stval`'s low bits the rest).
    fn remapped(&self, hart: &dyn HartOps, vm: crate::VmIndex, scause: u64) -> bool {
        use strata_ownership::Perms;
        let v = &self.vms[vm];
        if v.paging() != crate::vm::Paging::Nested {
            return false;
        }
        let gpa = (hart.csr(Csr::Htval) << 2) | (hart.csr(Csr::Stval) & 3);
        let need = match scause {
            cause::INSN_GUEST_PAGE => Perms::X,
            cause::LOAD_GUEST_PAGE => Perms::R,
            _ => Perms::W,
        };
        matches!(self.hm.translate(&*self.mem, v.id, gpa), Ok(Some(leaf)) if leaf.perms.contains(need))
    }

    /// Serves an SBI call from vCPU `v` on hart `h` (sepc already moved
    /// past the ecall): [`sbi::serve`] decides, this carries it out.
    fn sbi_call(&mut self, harts: &mut [&mut dyn HartOps], h: HartIndex, v: VcpuIndex) -> Next {
        let vm = self.vcpus[v].vm;
        let call = Call::read(&*harts[h.0]);
        let (reply, action) = sbi::serve(&call, &CallerView { hyp: self, vm: &self.vms[vm] });
        reply.write(&mut *harts[h.0]);
        match action {
            Action::None => Next::Continue,
            Action::SetTimer(t) => {
                self.vcpus[v].timer = Some(t);
                let hv = harts[h.0].csr(Csr::Hvip) & !hvip::VSTIP;
                harts[h.0].set_csr(Csr::Hvip, hv);
                Next::Continue
            }
            Action::Ipi(ids) => {
                let mut next = Next::Continue;
                for id in ids {
                    let Some(&t) = self.vms[vm].vcpus.get(id as usize) else { continue };
                    if t == v {
                        let hv = harts[h.0].csr(Csr::Hvip) | hvip::VSSIP;
                        harts[h.0].set_csr(Csr::Hvip, hv);
                    } else if self.vcpus[t].loaded_on.is_some() {
                        self.vcpus[t].ipi = true;
                    } else {
                        // A guest that sends an IPI usually spins until it
                        // is answered: the receiver gets its hart early, and
                        // this one at once if it waits here.
                        self.vcpus[t].hvip |= hvip::VSSIP;
                        if self.sched.kick(t) == h {
                            next = Next::Requeue;
                        }
                    }
                }
                next
            }
            Action::FenceVm => {
                let vmid = self.vms[vm].tlb_vmid();
                for hart in harts.iter_mut() {
                    hart.hfence_gvma(None, Some(vmid));
                }
                Next::Continue
            }
            Action::Start { id, pc, opaque } => {
                if let Some(&t) = self.vms[vm].vcpus.get(id as usize) {
                    if let Some(s) = &mut self.vms[vm].shadow {
                        s.set_guest_satp(id as usize, 0);
                    }
                    self.vcpus[t].reset(pc, opaque);
                    self.vcpus[t].hsm = HsmState::StartPending;
                }
                Next::Continue
            }
            Action::Stop => {
                self.vcpus[v].hsm = HsmState::Stopped;
                Next::Off
            }
            Action::Suspend => {
                self.vcpus[v].hsm = HsmState::Suspended;
                self.wait(&mut *harts[h.0], v)
            }
            Action::WriteGuest { gpa, bytes } => {
                // Guest-chosen: bounds-checked page by page against the
                // VM's own G-stage map, like every SBI buffer.
                let ram = crate::vm::layout::RAM_BASE..=crate::vm::layout::RAM_BASE + self.vms[vm].ram_size;
                let in_ram =
                    gpa.checked_add(bytes.len() as u64).is_some_and(|end| ram.contains(&gpa) && ram.contains(&end));
                let id = self.vms[vm].id;
                // guest_write also tells shadow paging if the buffer lies
                // over the guest's own page tables.
                if !in_ram || self.guest_write(id, gpa, &bytes).is_err() {
                    sbi::Reply { error: sbi::err::INVALID_ADDRESS, value: 0 }.write(&mut *harts[h.0]);
                }
                Next::Continue
            }
            Action::End(end) => {
                self.vms[vm].finish(end);
                Next::Off
            }
            Action::Console(bytes) => {
                self.vms[vm].console_write(&bytes);
                Next::Continue
            }
        }
    }

    /// The vCPU waits for an interrupt (WFI, or a retentive suspend),
    /// unless one it has enabled is already pending.
    fn wait(&mut self, hart: &mut dyn HartOps, v: VcpuIndex) -> Next {
        self.sync_irqs(hart, v);
        let pending = hart.csr(Csr::Hvip);
        let vsie = hart.csr(Csr::Vsie);
        if (pending >> 1) & vsie != 0 {
            if self.vcpus[v].hsm == HsmState::Suspended {
                self.vcpus[v].hsm = HsmState::Started;
            }
            return Next::Continue;
        }
        self.vcpus[v].waiting = true;
        Next::Off
    }

    /// Redirects a trap into the guest's own handler, as if it had been
    /// delegated (Priv. §8.6.4 trap entry into VS-mode, done by software).
    pub(crate) fn inject(&mut self, hart: &mut dyn HartOps, v: VcpuIndex, cause: u64, tval: u64) {
        self.vms[self.vcpus[v].vm].stats.injected_faults += 1;
        self.vcpus[v].stats.injected += 1;
        let from_vs = hart.csr(Csr::Sstatus) & sstatus::SPP != 0;
        let mut vss = hart.csr(Csr::Vsstatus) & !(sstatus::SPP | sstatus::SPIE | sstatus::SIE);
        if hart.csr(Csr::Vsstatus) & sstatus::SIE != 0 {
            vss |= sstatus::SPIE;
        }
        if from_vs {
            vss |= sstatus::SPP;
        }
        hart.set_csr(Csr::Vsstatus, vss);
        hart.set_csr(Csr::Vscause, cause);
        hart.set_csr(Csr::Vstval, tval);
        let sepc = hart.csr(Csr::Sepc);
        hart.set_csr(Csr::Vsepc, sepc);
        hart.set_csr(Csr::Sepc, hart.csr(Csr::Vstvec) & !3);
        let c = &mut self.vcpus[v];
        c.vs_mode = true;
        c.pc = hart.csr(Csr::Sepc);
        c.prepare_return(hart);
    }
}

//! The core driven through mock harts ([`crate::mock`]): the scheduler's
//! fairness and work conservation, the SBI as a guest sees it, and a VM's
//! memory going back to the free pool when it ends.

use std::sync::{Arc, Mutex};

use strata_ownership::{MachinePage, Owner, PAGE_SIZE};

use crate::hart::HartOps;
use crate::mock::{Event, Guests, MockHart, MockMem, Step};
use crate::sbi::{eid, err};
use crate::vcpu::HsmState;
use crate::vm::{layout, Paging, VmEnd, VmSpec};
use crate::{Hypervisor, Policy, SchedParams, Slice, VmIndex};

/// The machine's RAM, where the mock harts' memory starts.
const BASE: u64 = strata_devices::board::VIRT.ram_base;
const MIB: u64 = 1 << 20;
const BUDGET: u64 = 4096;

struct Rig {
    hyp: Hypervisor,
    harts: Vec<MockHart>,
    guests: Arc<Mutex<Guests>>,
    mem: Arc<Mutex<Vec<u8>>>,
    consoles: Vec<Arc<Mutex<Vec<u8>>>>,
}

/// One VM to create: vCPUs, protected, and bytes to load at
/// guest-physical addresses.
struct Want {
    vcpus: u32,
    protected: bool,
    paging: Paging,
    segments: Vec<(u64, Vec<u8>)>,
}

fn vm(vcpus: u32) -> Want {
    Want { vcpus, protected: false, paging: Paging::Nested, segments: Vec::new() }
}

fn rig(harts: usize, vms: Vec<Want>) -> Rig {
    let guests = Arc::new(Mutex::new(Guests::default()));
    let size = (vms.len() as u64 * 17 + 8) * MIB;
    let mem = MockMem::new(BASE, size as usize);
    let bytes = mem.bytes.clone();
    let mut hyp = Hypervisor::new(Box::new(mem), BASE, size / PAGE_SIZE, harts, Policy::Pa).unwrap();
    let mut consoles = Vec::new();
    for (i, w) in vms.into_iter().enumerate() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = out.clone();
        consoles.push(out);
        hyp.create_vm(VmSpec {
            name: format!("vm{i}"),
            memory: 16 * MIB,
            vcpus: w.vcpus,
            protected: w.protected,
            paging: w.paging,
            segments: w.segments,
            entry: layout::RAM_BASE,
            dtb: 0,
            dtb_measured: None,
            console: Box::new(move |b| o.lock().unwrap().push(b)),
            clock: Box::new(|| 0),
            devices: Vec::new(),
        })
        .unwrap();
    }
    let harts = (0..harts).map(|h| MockHart::new(h as u64, guests.clone())).collect();
    Rig { hyp, harts, guests, mem: bytes, consoles }
}

impl Rig {
    /// One round; guest time moves by the most any hart used (10 slots a
    /// tick, as on the platform).
    fn round(&mut self) -> Slice {
        let mut refs: Vec<&mut dyn HartOps> = self.harts.iter_mut().map(|h| h as &mut dyn HartOps).collect();
        let s = self.hyp.run_slice(&mut refs, BUDGET);
        let ticks = s.used.iter().max().copied().unwrap_or(0) / 10;
        for h in &mut self.harts {
            h.now += ticks.max(1);
        }
        s
    }

    fn rounds(&mut self, n: u64) {
        for i in 0..n {
            self.round();
            if i % 500 == 0 || i == n - 1 {
                self.hyp.check_memory().unwrap();
            }
        }
    }

    fn vmid(&self, vm: usize) -> u64 {
        self.hyp.vm(VmIndex(vm)).unwrap().vmid()
    }

    fn script(&self, vm: usize, steps: Vec<Step>) {
        let vmid = self.vmid(vm);
        self.guests.lock().unwrap().scripts.entry(vmid).or_default().extend(steps);
    }

    fn replies(&self, vm: usize) -> Vec<(u64, u64)> {
        let vmid = self.vmid(vm);
        self.guests.lock().unwrap().replies.iter().filter(|r| r.0 == vmid).map(|r| (r.1, r.2)).collect()
    }

    fn slots(&self, vm: usize) -> u64 {
        self.hyp.vm_slots(VmIndex(vm))
    }
}

fn sbi(eid: u64, fid: u64, args: &[u64]) -> Step {
    Step::Sbi { slots: 10, eid, fid, args: args.to_vec() }
}

/// min/max of the values: 1.0 is a perfectly even share.
fn evenness(v: &[u64]) -> f64 {
    *v.iter().min().unwrap() as f64 / *v.iter().max().unwrap() as f64
}

// ---- SBI -------------------------------------------------------------------

#[test]
fn sbi_base_probe_and_unknown_calls() {
    let mut r = rig(1, vec![vm(1)]);
    r.script(
        0,
        vec![
            sbi(eid::BASE, 0, &[]),
            sbi(eid::BASE, 3, &[eid::HSM]),
            sbi(eid::BASE, 3, &[0x0a00_0000]),
            sbi(0x0123_4567, 0, &[]),
            sbi(eid::IPI, 0, &[1 << 5, 0]),
            sbi(eid::IPI, 0, &[1, 0]),
        ],
    );
    r.rounds(2);
    let got = r.replies(0);
    assert_eq!(got[0], (0, 2 << 24), "spec version 2.0");
    assert_eq!(got[1], (0, 1), "HSM is there");
    assert_eq!(got[2], (0, 0), "an extension Strata lacks");
    assert_eq!(got[3], (err::NOT_SUPPORTED as u64, 0));
    assert_eq!(got[4].0, err::INVALID_PARAM as u64, "no vCPU 5");
    assert_eq!(got[5], (0, 0), "an IPI to itself");
}

#[test]
fn sbi_set_timer_arms_the_timer_and_wfi_waits_for_it() {
    let mut r = rig(1, vec![vm(1)]);
    // STIE in vsie: the timer may wake it.
    r.script(0, vec![sbi(eid::TIME, 0, &[5000]), Step::Wfi { slots: 10, vsie: 1 << 5 }]);
    let s = r.round();
    assert!(!s.idle, "it ran until the WFI");
    assert_eq!(r.hyp.next_deadline(), Some(5000), "the vCPU waits for its timer");
    let ran = r.slots(0);
    // Nothing runs until the time comes.
    while r.harts[0].now < 5000 {
        assert!(r.round().idle);
    }
    assert_eq!(r.slots(0), ran);
    assert!(!r.round().idle, "the timer woke it");
    assert!(r.slots(0) > ran);
}

#[test]
fn sbi_hsm_starts_and_reports_a_vcpu_and_refuses_bad_ids() {
    let mut r = rig(1, vec![vm(2)]);
    r.script(
        0,
        vec![
            sbi(eid::HSM, 2, &[1]),
            sbi(eid::HSM, 0, &[1, layout::RAM_BASE + 0x100, 42]),
            sbi(eid::HSM, 0, &[1, layout::RAM_BASE, 0]),
            sbi(eid::HSM, 0, &[2, layout::RAM_BASE, 0]),
            sbi(eid::HSM, 2, &[7]),
        ],
    );
    // vCPU 1 gets the hart when vCPU 0's quantum is over.
    r.rounds(2 * SchedParams::default().quantum / BUDGET);
    let got = r.replies(0);
    assert_eq!(got[0], (0, HsmState::Stopped.sbi()), "vCPU 1 starts stopped");
    assert_eq!(got[1], (0, 0), "started");
    assert_eq!(got[2].0, err::ALREADY_AVAILABLE as u64, "not twice");
    assert_eq!(got[3].0, err::INVALID_PARAM as u64, "no vCPU 2");
    assert_eq!(got[4].0, err::INVALID_PARAM as u64);
    let v1 = r.hyp.vcpus_of(VmIndex(0)).nth(1).unwrap();
    assert_eq!(v1.hsm(), HsmState::Started);
    assert!(v1.stats().slots > 0, "vCPU 1 ran");
}

#[test]
fn sbi_ipi_reaches_a_waiting_vcpu_at_once() {
    let mut r = rig(1, vec![vm(2)]);
    r.script(0, vec![sbi(eid::HSM, 0, &[1, layout::RAM_BASE, 0])]);
    r.round();
    // Whichever vCPU runs next waits with SSIE enabled; the other then
    // sends it an IPI (and a bad mask first).
    r.script(0, vec![Step::Wfi { slots: 5, vsie: 1 << 1 }]);
    r.round();
    let (waiting, sender) = {
        let v: Vec<_> = r.hyp.vcpus_of(VmIndex(0)).collect();
        if v[0].waiting {
            (0, 1)
        } else {
            (1, 0)
        }
    };
    assert!(r.hyp.vcpus_of(VmIndex(0)).nth(waiting).unwrap().waiting);
    let before = r.hyp.vcpus_of(VmIndex(0)).nth(waiting).unwrap().stats().slots;
    r.script(0, vec![sbi(eid::IPI, 0, &[1 << waiting, 0])]);
    r.round();
    let c = r.hyp.vcpus_of(VmIndex(0)).nth(waiting).unwrap();
    assert!(!c.waiting, "the IPI woke it");
    assert!(c.stats().slots > before, "and it ran in the same round (vCPU {sender} yielded to it)");
}

#[test]
fn sbi_debug_console_and_system_reset() {
    let text = b"hello from the guest";
    let mut w = vm(1);
    w.segments.push((layout::RAM_BASE + 0x1000, text.to_vec()));
    let mut r = rig(1, vec![w]);
    r.script(
        0,
        vec![
            sbi(eid::DBCN, 0, &[text.len() as u64, layout::RAM_BASE + 0x1000, 0]),
            sbi(eid::DBCN, 0, &[4, layout::RAM_BASE + 0x1000, 1]),
            sbi(eid::DBCN, 2, &[b'!' as u64]),
            sbi(eid::SRST, 0, &[0, 0]),
        ],
    );
    r.rounds(2);
    let got = r.replies(0);
    assert_eq!(got[0], (0, text.len() as u64));
    assert_eq!(got[1].0, err::INVALID_PARAM as u64, "a high address half is no RAM");
    assert_eq!(&r.consoles[0].lock().unwrap()[..], b"hello from the guest!");
    let v = r.hyp.vm(VmIndex(0)).unwrap();
    assert_eq!(v.end(), Some(&VmEnd::PowerOff));
    assert!(r.hyp.all_ended());
}

/// STRATA get_evidence: the evidence lands in the guest's buffer, verifies
/// with the core's public key, carries the guest's nonce, the VM's
/// measurement and its protected flag; a short buffer, a nonce or buffer
/// outside the VM's RAM are refused and write nothing. (The VMs stay up:
/// an ended VM's memory is taken back.)
#[test]
fn sbi_evidence_is_signed_over_the_vms_measurement() {
    use crate::attest::{Evidence, EVIDENCE_LEN};
    use strata_arch::sbi::fid::STRATA_GET_EVIDENCE as GET;
    let nonce: Vec<u8> = (0..32).map(|i| 0xa0 ^ i).collect();
    let wants = [true, false].map(|protected| {
        let mut w = vm(1);
        w.protected = protected;
        w.segments.push((layout::RAM_BASE + 0x1000, nonce.clone()));
        w
    });
    let mut r = rig(1, wants.into_iter().collect());
    let (n, out) = (layout::RAM_BASE + 0x1000, layout::RAM_BASE + 0x2000);
    let end = layout::RAM_BASE + 16 * MIB;
    for v in 0..2 {
        r.script(
            v,
            vec![
                sbi(eid::STRATA, GET, &[n, out, EVIDENCE_LEN as u64 - 1]),
                sbi(eid::STRATA, GET, &[end - 8, out, EVIDENCE_LEN as u64]),
                sbi(eid::STRATA, GET, &[n, end - 100, EVIDENCE_LEN as u64]),
                sbi(eid::STRATA, GET, &[n, out, 4096]),
            ],
        );
    }
    // Two turns each on the one hart.
    r.rounds(4 * SchedParams::default().quantum / BUDGET);
    let key = r.hyp.attest_public_key();
    // Guest memory as the machine holds it (a protected VM's too: this is
    // the test's view of RAM, not a host interface).
    let read = |r: &Rig, v: usize, gpa: u64, len: usize| -> Vec<u8> {
        (0..len as u64)
            .map(|i| {
                let pa = r.hyp.translate(VmIndex(v), gpa + i).unwrap();
                r.mem.lock().unwrap()[(pa - BASE) as usize]
            })
            .collect()
    };
    for (v, protected) in [(0, true), (1, false)] {
        let got = r.replies(v);
        assert_eq!(got[0], (err::INVALID_PARAM as u64, EVIDENCE_LEN as u64), "VM {v}: a short buffer says the size");
        assert_eq!(got[1].0, err::INVALID_ADDRESS as u64, "VM {v}: a nonce across the end of RAM");
        assert_eq!(got[2].0, err::INVALID_ADDRESS as u64, "VM {v}: a buffer across the end of RAM");
        assert_eq!(read(&r, v, end - 100, 100), vec![0; 100], "VM {v}: nothing written past RAM's end");
        assert_eq!(got[3], (0, EVIDENCE_LEN as u64), "VM {v}");
        let e = Evidence::decode(&read(&r, v, out, EVIDENCE_LEN), &key).expect("verifies");
        assert_eq!(e.nonce.to_vec(), nonce, "VM {v}");
        assert_eq!(e.protected, protected, "VM {v}");
        assert_eq!(e.measurement, r.hyp.vm(VmIndex(v)).unwrap().measurement(), "VM {v}");
    }
    // The two VMs differ only in the protected flag: so do their measurements.
    assert_ne!(r.hyp.vm(VmIndex(0)).unwrap().measurement(), r.hyp.vm(VmIndex(1)).unwrap().measurement());
}

// ---- the counters a guest's user programs read ---------------------------------

/// Issue 12 item 3: Linux's vDSO reads `time` in VU-mode (`clock_gettime`,
/// `$RANDOM`), and Linux never writes `scounteren` without the SBI PMU
/// extension, which Strata's SBI does not offer. A vCPU must therefore
/// start with the `TM` bit open in `hcounteren` (else VS and VU get
/// virtual-instruction exceptions, Priv. §8.2.6, §8.6.1) and in the
/// guest's `scounteren` (else VU does, §4.1.5), as firmware leaves them on
/// a bare machine; otherwise every such program dies of SIGILL.
#[test]
fn item3_a_vcpu_starts_with_time_readable_from_vu_mode() {
    use crate::hart::Csr;
    use strata_arch::csr::counters::TM;
    let mut r = rig(1, vec![vm(1)]);
    r.round();
    let h = &r.harts[0];
    assert_ne!(h.vmid(), 0, "the vCPU is on the hart");
    assert_ne!(h.csr(Csr::Hcounteren) & TM, 0, "hcounteren {:#x}: time closed to the guest", h.csr(Csr::Hcounteren));
    assert_ne!(h.csr(Csr::Scounteren) & TM, 0, "scounteren {:#x}: time closed to VU-mode", h.csr(Csr::Scounteren));
}

// ---- scheduling ----------------------------------------------------------------

#[test]
fn vms_sharing_a_hart_get_equal_shares_and_switch_once_a_quantum() {
    let mut r = rig(1, vec![vm(1), vm(1), vm(1)]);
    let q = SchedParams::default().quantum;
    // Ten turns each.
    let rounds = 30 * q / BUDGET;
    r.rounds(rounds);
    let slots: Vec<u64> = (0..3).map(|v| r.slots(v)).collect();
    assert_eq!(slots.iter().sum::<u64>(), rounds * BUDGET, "work-conserving: every slot went to a VM");
    let spread = slots.iter().max().unwrap() - slots.iter().min().unwrap();
    assert!(spread <= q, "shares within a quantum of each other: {slots:?}");
    let switches = r.hyp.sched_stats().switches;
    assert!(switches * 8 <= rounds, "{switches} switches in {rounds} rounds: a VM keeps the hart for many rounds");
}

#[test]
fn nine_vms_on_eight_harts_share_them_evenly() {
    let mut r = rig(8, (0..9).map(|_| vm(1)).collect());
    let rounds = 100_000;
    r.rounds(rounds);
    let slots: Vec<u64> = (0..9).map(|v| r.slots(v)).collect();
    assert_eq!(slots.iter().sum::<u64>(), rounds * 8 * BUDGET, "no hart idled");
    assert!(evenness(&slots) > 0.9, "each VM gets about 8/9 of a hart: {slots:?}");
    let moves = r.hyp.sched_stats().migrations;
    assert!(moves > 0 && moves < rounds / 512, "{moves} moves: some, and not every few passes");
}

#[test]
fn three_vms_of_four_vcpus_on_eight_harts_share_them_evenly() {
    let mut r = rig(8, (0..3).map(|_| vm(4)).collect());
    // Start vCPUs 1-3 of each VM.
    for v in 0..3 {
        r.script(v, (1..4).map(|id| sbi(eid::HSM, 0, &[id, layout::RAM_BASE, 0])).collect());
    }
    r.rounds(100_000);
    let per_vcpu: Vec<u64> =
        (0..3).flat_map(|v| r.hyp.vcpus_of(VmIndex(v)).map(|c| c.stats().slots).collect::<Vec<_>>()).collect();
    assert_eq!(per_vcpu.len(), 12);
    assert!(evenness(&per_vcpu) > 0.85, "each vCPU gets about 2/3 of a hart: {per_vcpu:?}");
    let per_vm: Vec<u64> = (0..3).map(|v| r.slots(v)).collect();
    assert!(evenness(&per_vm) > 0.9, "{per_vm:?}");
}

#[test]
fn a_hart_left_idle_takes_work_from_a_crowded_one() {
    // Two VMs on each of two harts; both VMs of hart 1 power off.
    let mut r = rig(2, (0..4).map(|_| vm(1)).collect());
    r.rounds(10);
    let on_1: Vec<usize> =
        (0..4).filter(|&v| r.hyp.hart_of(r.hyp.vm(VmIndex(v)).unwrap().vcpus()[0]).unwrap().0 == 1).collect();
    assert_eq!(on_1.len(), 2);
    for &v in &on_1 {
        r.script(v, vec![sbi(eid::SRST, 0, &[0, 0])]);
    }
    // Each has had its turn to power off after two quanta.
    r.rounds(2 * SchedParams::default().quantum / BUDGET + 100);
    assert!(on_1.iter().all(|&v| !r.hyp.vm(VmIndex(v)).unwrap().running()));
    let s = r.round();
    assert_eq!(s.used, vec![BUDGET, BUDGET], "both harts busy again");
}

/// A guest's SFENCE.VMA is local to its hart, and all vCPUs of a VM share
/// a VMID: a vCPU that moves to another hart must not find translations it
/// left there before (and fenced elsewhere since). Seen as a guest whose
/// `init` died on a stale translation, with nine Debian VMs on eight harts.
#[test]
fn a_vcpu_that_moves_finds_its_new_hart_fenced() {
    let mut r = rig(8, (0..9).map(|_| vm(1)).collect());
    // Short quanta and a low lag limit: many moves.
    let p = SchedParams { quantum: 64 << 10, lag_limit: 256 << 10, ..SchedParams::default() };
    r.hyp.set_sched_params(p).unwrap();
    r.rounds(20_000);
    assert!(r.hyp.sched_stats().migrations > 10);
    let events = r.guests.lock().unwrap().events.clone();
    let mut last_hart = std::collections::BTreeMap::new();
    let mut checked = 0;
    for (i, e) in events.iter().enumerate() {
        if let Event::Load { hart, vmid } = *e {
            if last_hart.insert(vmid, hart).is_some_and(|was| was != hart) {
                let next = events[i + 1..]
                    .iter()
                    .find(|e| matches!(e, Event::Load { hart: h, .. } | Event::Fence { hart: h, .. } if *h == hart));
                assert_eq!(
                    next,
                    Some(&Event::Fence { hart, vmid }),
                    "VMID {vmid} moved to hart {hart} without a fence"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "{checked} moves seen");
}

#[test]
fn a_sleeper_does_not_bank_its_sleep() {
    let mut r = rig(1, vec![vm(1), vm(1)]);
    // VM 1 sleeps for a long time, then runs flat out like VM 0.
    r.script(1, vec![sbi(eid::TIME, 0, &[200_000]), Step::Wfi { slots: 1, vsie: 1 << 5 }]);
    while r.harts[0].now < 200_000 {
        r.round();
    }
    let (a0, b0) = (r.slots(0), r.slots(1));
    let q = SchedParams::default().quantum;
    r.rounds(6 * q / BUDGET);
    let (a, b) = (r.slots(0) - a0, r.slots(1) - b0);
    assert!(a > 0, "the sleeper did not take the hart for the time it slept ({a} against {b})");
    assert!(b.abs_diff(a) <= 2 * q, "then they share: {a} against {b}");
}

// ---- a VM's memory when it ends ------------------------------------------------

#[test]
fn an_ended_vms_pages_are_scrubbed_and_freed_at_once() {
    let pattern: Vec<u8> = b"PROTECTED-VM-SECRET:".iter().copied().cycle().take(64 << 10).collect();
    let mut p = vm(1);
    p.protected = true;
    p.segments.push((layout::RAM_BASE + MIB, pattern.clone()));
    let mut r = rig(2, vec![vm(1), p]);
    let find = |mem: &Arc<Mutex<Vec<u8>>>| mem.lock().unwrap().windows(20).any(|w| w == b"PROTECTED-VM-SECRET:");
    assert!(find(&r.mem), "the pattern is in machine memory while the VM lives");
    let id = r.hyp.vm(VmIndex(1)).unwrap().owner_id();
    let pages: Vec<MachinePage> = r.hyp.memory().tracker().owned_by(Owner::Vm(id));
    assert!(pages.len() >= 4096);
    r.rounds(3);
    let hart = r.hyp.hart_of(r.hyp.vm(VmIndex(1)).unwrap().vcpus()[0]).unwrap();
    r.script(1, vec![sbi(eid::SRST, 0, &[0, 0])]);
    r.round();
    assert!(!r.harts[hart.0].holds_state(), "the hart it ran on keeps none of its registers");
    let v = r.hyp.vm(VmIndex(1)).unwrap();
    assert_eq!(v.end(), Some(&VmEnd::PowerOff));
    assert!(v.retired(), "retired in the round it ended: {:?}", v.retire_error());
    assert!(!find(&r.mem), "no trace of the pattern right after");
    let t = r.hyp.memory().tracker();
    for &pg in &pages {
        assert_eq!(t.owner(pg), Ok(Owner::Free), "{pg} is free");
        assert!(!t.awaiting_zero(pg), "{pg} is zeroed already");
    }
    assert!(r.hyp.vm(VmIndex(0)).unwrap().running(), "the other VM runs on");
    let c = r.hyp.vcpus_of(VmIndex(1)).next().unwrap();
    assert!(c.x.iter().all(|&x| x == 0) && c.pc == 0, "its saved registers are gone");
    r.hyp.check_memory().unwrap();
    r.rounds(10);
    assert!(r.slots(0) > 10 * BUDGET, "the other VM has both harts now");
}

// ---- real-time placement (issue 22; placement.rs) ---------------------------

use crate::{HartIndex, Placement, PlacementError};

/// Three one-vCPU VMs on two harts: vm0 real-time on hart 0, waking every
/// 2000 ticks (SBI set_timer, then WFI), vm1 and vm2 always busy.
fn rt_rig(placement: Placement) -> Rig {
    let mut r = rig(2, vec![vm(1), vm(1), vm(1)]);
    r.hyp.configure_placement(placement, &[(VmIndex(0), vec![HartIndex(0)])]).unwrap();
    let mut steps = Vec::new();
    for k in 1..=60u64 {
        steps.push(sbi(eid::TIME, 0, &[k * 2000]));
        steps.push(Step::Wfi { slots: 10, vsie: 1 << 5 });
    }
    r.script(0, steps);
    r
}

/// The real-time guest's SBI calls and WFIs so far.
fn rt_calls(r: &Rig) -> (u64, u64) {
    let c = r.hyp.vcpus_of(VmIndex(0)).next().expect("vm0 has a vCPU").stats();
    (c.sbi_calls, c.wfi)
}

#[test]
fn migrate_lends_the_idle_rt_hart_and_takes_it_back_when_due() {
    let mut r = rt_rig(Placement::Migrate);
    r.rounds(400);
    let s = r.hyp.sched_stats();
    assert!(s.rt_borrows > 10, "the idle real-time hart was lent: {s:?}");
    assert!(s.rt_evictions > 10 && s.rt_preemptions > 10, "and taken back when its vCPU was due: {s:?}");
    assert!(s.foreign_slots_on_rt > 0, "{s:?}");
    // The real-time vCPU never waits more than one guest run of another VM.
    assert!(s.rt_wait_slots_max <= BUDGET, "{s:?}");
    assert!(s.timed_moves > 0, "{s:?}");
    // Every timer the real-time guest armed woke it: 60 set_timer replies.
    assert_eq!(rt_calls(&r), (60, 60), "the real-time guest ran its whole script");
    assert!(r.slots(1) > 0 && r.slots(2) > 0);
}

#[test]
fn dedicated_keeps_other_vms_off_the_rt_hart() {
    let mut r = rt_rig(Placement::Dedicated);
    r.rounds(400);
    let s = r.hyp.sched_stats();
    assert_eq!((s.foreign_slots_on_rt, s.rt_borrows, s.rt_evictions), (0, 0, 0), "{s:?}");
    assert_eq!(s.rt_wait_slots_max, 0, "{s:?}");
    assert_eq!(rt_calls(&r), (60, 60));
    assert!(r.slots(1) > 0 && r.slots(2) > 0, "both other VMs ran on hart 1");
    assert_eq!(r.hyp.hart_of(crate::VcpuIndex(1)), Some(HartIndex(1)));
    assert_eq!(r.hyp.hart_of(crate::VcpuIndex(2)), Some(HartIndex(1)));
}

#[test]
fn share_time_slices_the_rt_hart() {
    let mut r = rt_rig(Placement::Share);
    r.rounds(400);
    let s = r.hyp.sched_stats();
    assert_eq!((s.rt_borrows, s.rt_evictions), (0, 0), "{s:?}");
    assert!(s.foreign_slots_on_rt > 0, "another VM shares the real-time hart: {s:?}");
    assert_eq!(rt_calls(&r), (60, 60));
}

#[test]
fn placements_the_machine_cannot_honour_are_refused() {
    let rt = |h: &[usize]| vec![(VmIndex(0), h.iter().map(|&h| HartIndex(h)).collect::<Vec<_>>())];
    let mut r = rig(2, vec![vm(2), vm(1)]);
    let e = r.hyp.configure_placement(Placement::Dedicated, &rt(&[0])).unwrap_err();
    assert!(matches!(e, PlacementError::TooFewHarts { vcpus: 2, harts: 1, .. }), "{e}");
    let e = r.hyp.configure_placement(Placement::Dedicated, &rt(&[0, 1])).unwrap_err();
    assert!(matches!(e, PlacementError::NoHartForOthers { harts: 2, .. }), "{e}");
    let e = r.hyp.configure_placement(Placement::Migrate, &rt(&[0, 1])).unwrap_err();
    assert!(matches!(e, PlacementError::NoHartForOthers { .. }), "{e}");
    let e = r.hyp.configure_placement(Placement::Share, &rt(&[2])).unwrap_err();
    assert!(matches!(e, PlacementError::NoSuchHart { hart: 2, harts: 2, .. }), "{e}");
    let e = r.hyp.configure_placement(Placement::Share, &rt(&[])).unwrap_err();
    assert!(matches!(e, PlacementError::NoHarts { .. }), "{e}");
    let e = r.hyp.configure_placement(Placement::Migrate, &[]).unwrap_err();
    assert_eq!(e, PlacementError::NoRealtimeVm(Placement::Migrate));
    // Two real-time VMs may not share a dedicated hart.
    let mut r = rig(3, vec![vm(1), vm(1), vm(1)]);
    let both = vec![(VmIndex(0), vec![HartIndex(0)]), (VmIndex(1), vec![HartIndex(0)])];
    let e = r.hyp.configure_placement(Placement::Dedicated, &both).unwrap_err();
    assert!(matches!(e, PlacementError::Overlap { hart: 0, .. }), "{e}");
    // Share: time slicing allows it; the real-time vCPUs share hart 0.
    r.hyp.configure_placement(Placement::Share, &both).unwrap();
    r.hyp.check_memory().unwrap();
}

#[test]
fn a_vcpu_spinning_on_pause_gives_its_hart_to_another() {
    use crate::sched::{Ready, Scheduler};
    let mut s = Scheduler::new(1, SchedParams::default());
    let (a, b) = (crate::VcpuIndex(0), crate::VcpuIndex(1));
    s.add();
    s.add();
    let h = HartIndex(0);
    assert_eq!(s.pick(h, &mut |_| Ready::Yes), Some(a));
    s.set_current(h, Some(a));
    s.charge(h, a, 1000);
    // Without a spin, a keeps its quantum.
    assert_eq!(s.pick(h, &mut |_| Ready::Yes), Some(a));
    s.spin_yield(h);
    assert_eq!(s.pick(h, &mut |_| Ready::Yes), Some(b));
    assert_eq!(s.stats().spin_yields, 1);
    // A spin with nobody else ready keeps the spinner.
    s.spin_yield(h);
    assert_eq!(s.pick(h, &mut |v| if v == b { Ready::No } else { Ready::Yes }), Some(a));
}

//! Shadow paging driven through a mock hart: the traps of
//! crate::paging against guest page tables built here, by hand, in the
//! VM's memory (Sv39, Priv. §4.4), with the model's steps
//! (crates/models/src/shadow.rs) each shown: a shadow fault installing
//! the composed leaf, a guest fault injected, a page-table write emulated
//! and dropping the leaf it fed, a fence reaching the TLB, a page leaving
//! the VM through the reverse map.

use std::sync::{Arc, Mutex};

use strata_arch::csr::satp;
use strata_arch::isa::{encode, Op};
use strata_arch::pte;
use strata_ownership::PAGE_SIZE;

use crate::hart::{cause, sstatus, Csr, HartOps};
use crate::mock::{Guests, MockHart, MockMem};
use crate::vm::{layout, Paging, VmSpec};
use crate::{HartIndex, Hypervisor, Policy, VcpuIndex, VmIndex};

const BASE: u64 = strata_devices::board::VIRT.ram_base;
const MIB: u64 = 1 << 20;
const RAM: u64 = layout::RAM_BASE;
/// The guest's Sv39 tables: root, level 1, level 0.
const ROOT: u64 = RAM + 0x10_0000;
const L1: u64 = ROOT + 0x1000;
const L0: u64 = ROOT + 0x2000;
/// A data page and the virtual address the guest maps it at
/// (VPN[2] = 1, VPN[1] = 1, VPN[0] = 3).
const DATA: u64 = RAM + 0x20_0000;
const VA: u64 = 0x4020_3000;
/// Where the guest maps its own level-0 table (VPN[0] = 4).
const VA_PT: u64 = 0x4020_4000;
const PC: u64 = RAM + 0x1000;

fn leaf(gpa: u64, flags: u64) -> u64 {
    (gpa >> 12) << pte::PPN_SHIFT | flags | pte::V
}

struct Rig {
    hyp: Hypervisor,
    hart: MockHart,
}

fn rig(protected: bool) -> Rig {
    let size = 40 * MIB;
    let mem = MockMem::new(BASE, size as usize);
    let mut hyp = Hypervisor::new(Box::new(mem), BASE, size / PAGE_SIZE, 1, Policy::Pa).unwrap();
    hyp.create_vm(VmSpec {
        name: "s".into(),
        memory: 16 * MIB,
        vcpus: 1,
        protected,
        paging: Paging::Shadow,
        segments: Vec::new(),
        entry: RAM,
        dtb: 0,
        dtb_measured: None,
        console: Box::new(|_| {}),
        clock: Box::new(|| 0),
        devices: Vec::new(),
    })
    .unwrap();
    let mut r = Rig { hyp, hart: MockHart::new(0, Arc::new(Mutex::new(Guests::default()))) };
    let id = r.hyp.vms[VmIndex(0)].id;
    let w = |hyp: &mut Hypervisor, gpa: u64, v: u64| hyp.guest_write(id, gpa, &v.to_le_bytes()).unwrap();
    w(&mut r.hyp, ROOT + 8, leaf(L1, 0));
    w(&mut r.hyp, L1 + 8, leaf(L0, 0));
    // Readable and writable, not yet accessed or dirty.
    w(&mut r.hyp, L0 + 3 * 8, leaf(DATA, pte::R | pte::W));
    w(&mut r.hyp, L0 + 4 * 8, leaf(L0, pte::R | pte::W | pte::A | pte::D));
    // The guest turns Sv39 on: csrrw x0, satp, x5 traps (hstatus.VTVM).
    r.hart.set_gpr(5, satp::SV39 << satp::MODE_SHIFT | ROOT >> 12);
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP))));
    r
}

impl Rig {
    fn trap(&mut self, scause: u64, stval: u64) {
        let h = &mut self.hart;
        h.set_csr(Csr::Scause, scause);
        h.set_csr(Csr::Stval, stval);
        h.set_csr(Csr::Sepc, PC);
        h.set_csr(Csr::Sstatus, sstatus::SPP);
        let mut harts: Vec<&mut dyn HartOps> = vec![&mut self.hart];
        self.hyp.handle_exit(&mut harts, HartIndex(0), VcpuIndex(0));
    }

    fn shadow(&self) -> &crate::shadow::ShadowVm {
        self.hyp.vms[VmIndex(0)].shadow.as_ref().unwrap()
    }

    fn shadow_leaf(&self, va: u64) -> Option<u64> {
        self.shadow().leaf(&*self.hyp.mem, 0, va)
    }

    fn guest_u64(&self, gpa: u64) -> u64 {
        let mut b = [0u8; 8];
        assert!(self.hyp.guest_read(self.hyp.vms[VmIndex(0)].id, gpa, &mut b));
        u64::from_le_bytes(b)
    }

    fn machine(&self, gpa: u64) -> u64 {
        self.hyp.translate(VmIndex(0), gpa).unwrap()
    }
}

#[test]
fn satp_is_virtual_and_vsatp_points_at_a_shadow_root_outside_the_vm() {
    let r = rig(false);
    let s = r.shadow();
    assert_eq!(s.guest_satp(0), satp::SV39 << satp::MODE_SHIFT | ROOT >> 12);
    assert_eq!(s.stats().satp, 1);
    let vsatp = r.hart.csr(Csr::Vsatp);
    assert_eq!(vsatp >> satp::MODE_SHIFT, satp::SV39, "the shadow root has the guest's geometry");
    let root = (vsatp & satp::PPN_MASK) << 12;
    assert_ne!(root, r.machine(ROOT), "the hart walks the shadow root, not the guest's");
    let owner = r.hyp.hm.tracker().owner(strata_ownership::MachinePage::containing(root)).unwrap();
    assert_eq!(owner, strata_ownership::Owner::Hypervisor);
    assert_eq!(r.hart.csr(Csr::Sepc), PC + 4, "the csrrw is done");
    // Reading satp back (csrrs x7, satp, x0) gives the guest's value.
    let mut r = r;
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRS, 7, 0, 0, i64::from(strata_arch::csr::addr::SATP))));
    assert_eq!(r.hart.gpr(7), satp::SV39 << satp::MODE_SHIFT | ROOT >> 12);
    // Sv57 is not offered: the write leaves satp as it was (WARL).
    r.hart.set_gpr(5, satp::SV57 << satp::MODE_SHIFT | ROOT >> 12);
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP))));
    assert_eq!(r.shadow().guest_satp(0) >> satp::MODE_SHIFT, satp::SV39);
}

#[test]
fn a_shadow_fault_installs_the_composed_leaf_read_only_until_the_first_write() {
    let mut r = rig(false);
    r.trap(cause::LOAD_PAGE, VA + 0x10);
    let l = r.shadow_leaf(VA).expect("a shadow leaf for the address");
    assert_eq!(pte::ppn(l) << 12, r.machine(DATA), "guest leaf composed with the G-stage map");
    assert_eq!(l & (pte::R | pte::W), pte::R, "D=0 in the guest: mapped read-only");
    assert_ne!(r.guest_u64(L0 + 3 * 8) & pte::A, 0, "A set in the guest's entry");
    assert_eq!(r.guest_u64(L0 + 3 * 8) & pte::D, 0);
    assert_eq!(r.hart.vvma.last(), Some(&Some(VA + 0x10)), "the hart's stale entry fenced");
    r.trap(cause::STORE_PAGE, VA + 0x10);
    let l = r.shadow_leaf(VA).unwrap();
    assert_ne!(l & pte::W, 0, "writable after the first write");
    assert_ne!(r.guest_u64(L0 + 3 * 8) & pte::D, 0, "D set in the guest's entry");
    assert_eq!(r.shadow().stats().faults, 2);
    assert_eq!(r.shadow().stats().injected, 0);
    assert_eq!(r.hart.csr(Csr::Vscause), 0, "nothing injected");
    r.hyp.check_memory().unwrap();
}

#[test]
fn a_fault_the_guests_tables_make_is_injected() {
    let mut r = rig(false);
    let va = VA + 0x10_0000; // VPN[1] = 2: no entry
    r.hart.set_csr(Csr::Vstvec, RAM + 0x800);
    r.trap(cause::LOAD_PAGE, va);
    assert_eq!(r.hart.csr(Csr::Vscause), cause::LOAD_PAGE);
    assert_eq!(r.hart.csr(Csr::Vstval), va);
    assert_eq!(r.hart.csr(Csr::Sepc), RAM + 0x800, "the guest resumes at its handler");
    assert_eq!(r.shadow_leaf(va), None);
    assert_eq!(r.shadow().stats().injected, 1);
    // A store to a page the guest maps read-only is the guest's too.
    let mut r = rig(false);
    let id = r.hyp.vms[VmIndex(0)].id;
    r.hyp.guest_write(id, L0 + 3 * 8, &leaf(DATA, pte::R).to_le_bytes()).unwrap();
    r.trap(cause::STORE_PAGE, VA);
    assert_eq!(r.hart.csr(Csr::Vscause), cause::STORE_PAGE);
    assert_eq!(r.shadow_leaf(VA), None);
}

#[test]
fn a_write_to_a_guest_page_table_is_emulated_and_drops_the_leaf_it_fed() {
    let mut r = rig(false);
    r.trap(cause::LOAD_PAGE, VA);
    assert!(r.shadow_leaf(VA).is_some());
    // The guest's level-0 table was walked: it is write-protected, so even
    // a load through VA_PT gets a read-only leaf, despite D=1.
    r.trap(cause::LOAD_PAGE, VA_PT);
    assert_eq!(r.shadow_leaf(VA_PT).unwrap() & pte::W, 0, "a guest table page is mapped read-only");
    let gen = r.shadow().generation();
    // sd x5, 24(x6) with x6 = VA_PT: clear the entry for VA.
    r.hart.insn = Some(encode(Op::SD, 0, 6, 5, 24));
    r.hart.set_gpr(5, 0);
    r.hart.set_gpr(6, VA_PT);
    r.trap(cause::STORE_PAGE, VA_PT + 24);
    assert_eq!(r.guest_u64(L0 + 3 * 8), 0, "the store reached the guest's table");
    assert_eq!(r.shadow_leaf(VA), None, "the shadow leaf the entry fed is gone");
    assert!(r.shadow_leaf(VA_PT).is_some(), "other leaves stay");
    assert_eq!(r.hart.csr(Csr::Sepc), PC + 4);
    assert_eq!(r.shadow().stats().pt_writes, 1);
    assert!(r.shadow().generation() > gen, "the generation moved: a fault in flight would retry");
    // An AMO (amoor.d x7, x5, (x6)) on the entry: emulated, old value in x7.
    r.hart.insn = Some(encode(Op::AMOOR_D, 7, 6, 5, 0));
    r.hart.set_gpr(5, leaf(DATA, pte::R));
    r.hart.set_gpr(6, VA_PT + 24);
    r.trap(cause::STORE_PAGE, VA_PT + 24);
    assert_eq!(r.hart.gpr(7), 0);
    assert_eq!(r.guest_u64(L0 + 3 * 8), leaf(DATA, pte::R));
    // Now the guest maps VA read-only: a load installs that.
    r.trap(cause::LOAD_PAGE, VA);
    assert_eq!(r.shadow_leaf(VA).unwrap() & (pte::R | pte::W), pte::R);
    r.hyp.check_memory().unwrap();
}

#[test]
fn a_writable_leaf_to_a_page_that_becomes_a_table_is_write_protected() {
    let mut r = rig(false);
    // Map DATA writable and dirty, use it, then make it a table of the guest.
    let id = r.hyp.vms[VmIndex(0)].id;
    r.hyp.guest_write(id, L0 + 3 * 8, &leaf(DATA, pte::R | pte::W | pte::A | pte::D).to_le_bytes()).unwrap();
    r.trap(cause::STORE_PAGE, VA);
    assert_ne!(r.shadow_leaf(VA).unwrap() & pte::W, 0);
    // The guest makes DATA its level-0 table for VPN[1] = 2.
    r.hyp.guest_write(id, L1 + 2 * 8, &leaf(DATA, 0).to_le_bytes()).unwrap();
    r.hart.set_csr(Csr::Vstvec, RAM + 0x800);
    r.trap(cause::LOAD_PAGE, 0x4040_0000); // walks through DATA: an empty entry
    assert_eq!(r.hart.csr(Csr::Vscause), cause::LOAD_PAGE, "the guest's own fault");
    assert_eq!(r.shadow_leaf(VA), None, "the writable leaf to the new table is gone");
    r.trap(cause::LOAD_PAGE, VA);
    assert_eq!(r.shadow_leaf(VA).unwrap() & pte::W, 0, "and comes back read-only");
}

#[test]
fn an_sfence_vma_reaches_the_harts_tlb_for_that_address() {
    let mut r = rig(false);
    r.hart.set_gpr(5, VA);
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 5, 0, 0)));
    assert_eq!(r.hart.vvma.last(), Some(&Some(VA)));
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 0, 0, 0)));
    assert_eq!(r.hart.vvma.last(), Some(&None), "sfence.vma x0: everything");
    assert_eq!(r.shadow().stats().fences, 2);
    assert_eq!(r.hart.csr(Csr::Sepc), PC + 4);
}

#[test]
fn a_page_leaving_the_vm_leaves_every_shadow_table_through_the_reverse_map() {
    for protected in [false, true] {
        let mut r = rig(protected);
        r.trap(cause::LOAD_PAGE, VA);
        // A second address space of the guest that maps DATA too.
        let id = r.hyp.vms[VmIndex(0)].id;
        let root2 = ROOT + 0x3000;
        r.hyp.guest_write(id, root2 + 8, &leaf(L1, 0).to_le_bytes()).unwrap();
        r.hart.set_gpr(5, satp::SV39 << satp::MODE_SHIFT | root2 >> 12);
        r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP))));
        r.trap(cause::LOAD_PAGE, VA);
        assert!(r.shadow_leaf(VA).is_some());
        let data = r.machine(DATA);
        let gen = r.shadow().generation();
        let mut harts: Vec<&mut dyn HartOps> = vec![&mut r.hart];
        // A protected VM's page cannot be taken back; it can be moved.
        if protected {
            r.hyp.migrate_page(&mut harts, VmIndex(0), DATA).unwrap();
        } else {
            assert_eq!(r.hyp.reclaim_page(&mut harts, VmIndex(0), DATA).unwrap().addr(), data);
        }
        assert_eq!(r.shadow_leaf(VA), None, "gone from this address space");
        // ... and from the first one.
        r.hart.set_gpr(5, satp::SV39 << satp::MODE_SHIFT | ROOT >> 12);
        r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP))));
        assert_eq!(r.shadow_leaf(VA), None, "gone from every shadow table (protected: {protected})");
        assert!(r.shadow().generation() > gen);
        r.hyp.check_memory().unwrap();
        // The guest touching it again never reaches the old page: moved,
        // the new one; taken back, its gpa is no memory now (access fault).
        r.trap(cause::LOAD_PAGE, VA);
        if protected {
            let l = r.shadow_leaf(VA).unwrap();
            assert_ne!(pte::ppn(l) << 12, data);
            assert_eq!(pte::ppn(l) << 12, r.machine(DATA));
        } else {
            assert_eq!(r.shadow_leaf(VA), None);
            assert_eq!(r.hart.csr(Csr::Vscause), cause::LOAD_ACCESS);
        }
    }
}

#[test]
fn with_translation_off_the_guest_reaches_its_own_ram_and_nothing_else() {
    let mut r = rig(false);
    r.hart.set_gpr(5, 0);
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP))));
    assert_eq!(r.hart.csr(Csr::Vsatp) >> satp::MODE_SHIFT, satp::SV39, "Bare guest: an identity shadow");
    r.trap(cause::STORE_PAGE, DATA);
    let l = r.shadow_leaf(DATA).unwrap();
    assert_eq!(pte::ppn(l) << 12, r.machine(DATA));
    // Past the end of its RAM: no device there, an access fault.
    let past = RAM + 16 * MIB;
    r.trap(cause::LOAD_PAGE, past);
    assert_eq!(r.shadow_leaf(past), None);
    assert_eq!(r.hart.csr(Csr::Vscause), cause::LOAD_ACCESS);
    r.hyp.check_memory().unwrap();
}

#[test]
fn a_table_page_the_guest_keeps_writing_without_walking_is_unprotected() {
    let mut r = rig(false);
    // The guest maps its level-0 table L0 at VA2 through another table,
    // as Linux's linear map does (not through L0 itself).
    let (l0b, va2) = (ROOT + 0x4000, 0x4040_0000);
    let id = r.hyp.vms[VmIndex(0)].id;
    r.hyp.guest_write(id, L1 + 2 * 8, &leaf(l0b, 0).to_le_bytes()).unwrap();
    r.hyp.guest_write(id, l0b, &leaf(L0, pte::R | pte::W | pte::A | pte::D).to_le_bytes()).unwrap();
    r.trap(cause::LOAD_PAGE, VA);
    assert!(r.shadow_leaf(VA).is_some());
    // sd x5, 80(x6): entry 10 of L0, which maps nothing used.
    r.hart.insn = Some(encode(Op::SD, 0, 6, 5, 80));
    r.hart.set_gpr(6, va2);
    for n in 0..crate::shadow::UNPROTECT_AFTER {
        assert!(r.shadow().is_table(L0), "still protected after {n} writes");
        r.hart.set_gpr(5, u64::from(n));
        r.trap(cause::STORE_PAGE, va2 + 80);
    }
    assert!(!r.shadow().is_table(L0), "unprotected");
    assert_eq!(r.guest_u64(L0 + 80), u64::from(crate::shadow::UNPROTECT_AFTER - 1), "every write emulated");
    assert_eq!(r.shadow().stats().unprotected, 1);
    assert_eq!(r.shadow_leaf(VA), None, "the leaves made through it are gone");
    // Its leaf becomes writable (the guest's entry is dirty) ...
    r.trap(cause::STORE_PAGE, va2 + 80);
    assert_ne!(r.shadow_leaf(va2).unwrap() & pte::W, 0);
    // ... until a walk goes through it again, which protects it anew.
    r.trap(cause::LOAD_PAGE, VA);
    assert!(r.shadow().is_table(L0));
    assert_eq!(r.shadow_leaf(va2), None, "its writable leaf dropped");
    r.hyp.check_memory().unwrap();
}

/// A device writes one of the guest's table pages through the VM's DMA
/// map (what a virtio-blk read into it does): the write-protection cannot
/// see it, so the map logs it, and the guest's next fence drains the log
/// and drops every shadow leaf made through the page.
#[test]
fn a_device_write_to_a_guest_page_table_drops_the_leaves_made_through_it() {
    let mut r = rig(false);
    r.trap(cause::LOAD_PAGE, VA);
    let old = r.shadow_leaf(VA).expect("a shadow leaf for VA");
    assert_eq!(pte::ppn(old) << 12, r.machine(DATA));
    let dma = r.hyp.vms[VmIndex(0)].dma.clone().expect("an ordinary VM has a DMA map");
    // The device points the guest's entry for VA at another page, as
    // `VmMemory::write_bytes` in the platform does: bytes, then `wrote`.
    let other = DATA + 0x1000;
    let pa = dma.translate(L0 + 3 * 8).unwrap();
    r.hyp.mem.write(pa, &leaf(other, pte::R | pte::A).to_le_bytes()).unwrap();
    dma.wrote(L0 + 3 * 8, 8);
    // A write to a page that is no table is not logged.
    dma.wrote(DATA + 0x3000, 8);
    assert_eq!(dma.logged(), 1, "only the table page's write is logged");
    // Stale until drained, but isolation holds regardless: the stale leaf
    // reaches a page the VM owns and its G-stage maps.
    assert_eq!(r.shadow_leaf(VA), Some(old));
    r.hyp.check_memory().unwrap();
    // The guest fences (sfence.vma x0, x0): the log is drained first.
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 0, 0, 0)));
    assert_eq!(r.shadow_leaf(VA), None, "the stale shadow leaf is gone");
    assert_eq!(r.shadow().stats().dma_tables, 1);
    assert_eq!(r.shadow().stats().dma_leaves, 1);
    assert!(r.shadow().is_table(L0), "the page stays write-protected");
    r.trap(cause::LOAD_PAGE, VA);
    let new = r.shadow_leaf(VA).expect("the new translation, from the device's entry");
    assert_eq!(pte::ppn(new) << 12, r.machine(other));
    // The host interface's writes are logged the same way.
    r.hyp.host_write(VmIndex(0), L0 + 3 * 8, &leaf(DATA, pte::R | pte::A).to_le_bytes()).unwrap();
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 0, 0, 0)));
    assert_eq!(r.shadow_leaf(VA), None, "host_write into the table dropped the leaf too");
    assert_eq!(r.shadow().stats().dma_tables, 2);
    let logged = dma.logged();
    // A resync forgets the watches: a device write is no longer logged.
    let mut hyp_mem = std::mem::replace(&mut r.hyp.mem, Box::new(MockMem::new(BASE, 0)));
    let hm = &mut r.hyp.hm;
    r.hyp.vms[VmIndex(0)].shadow.as_mut().unwrap().resync(hm, &mut *hyp_mem);
    r.hyp.mem = hyp_mem;
    dma.wrote(L0, 8);
    assert_eq!(dma.logged(), logged, "nothing is watched after a resync");
    r.hyp.check_memory().unwrap();
}

/// Svpbmt's PBMT and Svnapot's N bits in a guest entry: the harts offer
/// neither extension (no `henvcfg.PBMTE`, no Svnapot in the walker), so
/// the bits are reserved and the guest's walk faults (Priv. §4.4.1, §4.3.2
/// step 2) — in shadow mode the same fault is injected; the bits are never
/// read as part of the address or dropped from it.
#[test]
fn pbmt_and_napot_bits_in_a_guest_entry_are_a_page_fault_as_on_the_hart() {
    for bits in [pte::PBMT, 1 << 61, pte::N] {
        let mut r = rig(false);
        let id = r.hyp.vms[VmIndex(0)].id;
        r.hyp.guest_write(id, L0 + 3 * 8, &(leaf(DATA, pte::R | pte::A) | bits).to_le_bytes()).unwrap();
        r.hart.set_csr(Csr::Vstvec, RAM + 0x800);
        r.trap(cause::LOAD_PAGE, VA);
        assert_eq!(r.hart.csr(Csr::Vscause), cause::LOAD_PAGE, "bits {bits:#x}: the guest's own fault");
        assert_eq!(r.shadow_leaf(VA), None, "bits {bits:#x}: no shadow leaf");
        assert_eq!(r.shadow().stats().injected, 1);
    }
}

/// Guest ASIDs: the guest's ASID is kept in its virtual `satp` (16 bits,
/// as the hart's) and carried into the real `vsatp`, one shadow root
/// serves the same tables under two ASIDs, and a fence by ASID reaches
/// the hart with that ASID.
#[test]
fn the_guests_asid_reaches_vsatp_and_its_fences() {
    let mut r = rig(false);
    let csrrw = u64::from(encode(Op::CSRRW, 0, 5, 0, i64::from(strata_arch::csr::addr::SATP)));
    let with_asid = |asid: u64| satp::SV39 << satp::MODE_SHIFT | asid << satp::ASID_SHIFT | ROOT >> 12;
    r.hart.set_gpr(5, with_asid(0xffff));
    r.trap(cause::VIRTUAL_INSN, csrrw);
    assert_eq!(r.shadow().guest_satp(0), with_asid(0xffff), "all 16 ASID bits are kept");
    let v1 = r.hart.csr(Csr::Vsatp);
    assert_eq!((v1 & satp::ASID_MASK) >> satp::ASID_SHIFT, 0xffff, "the real vsatp carries the ASID");
    r.hart.set_gpr(5, with_asid(5));
    r.trap(cause::VIRTUAL_INSN, csrrw);
    let v2 = r.hart.csr(Csr::Vsatp);
    assert_eq!((v2 & satp::ASID_MASK) >> satp::ASID_SHIFT, 5);
    assert_eq!(v1 & satp::PPN_MASK, v2 & satp::PPN_MASK, "the same tables share one shadow root");
    // sfence.vma x6, x7 with x7 = 5: that address, that ASID.
    r.hart.set_gpr(6, VA);
    r.hart.set_gpr(7, 5);
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 6, 7, 0)));
    assert_eq!(r.hart.vvma.last(), Some(&Some(VA)));
    assert_eq!(r.hart.vvma_asid.last(), Some(&Some(5)));
    // rs2 = x0: every address space.
    r.trap(cause::VIRTUAL_INSN, u64::from(encode(Op::SFENCE_VMA, 0, 6, 0, 0)));
    assert_eq!(r.hart.vvma_asid.last(), Some(&None));
    // Bare clears the ASID with the rest.
    r.hart.set_gpr(5, 0);
    r.trap(cause::VIRTUAL_INSN, csrrw);
    assert_eq!(r.shadow().guest_satp(0), 0);
    assert_eq!(r.hart.csr(Csr::Vsatp) & satp::ASID_MASK, 0);
}

/// A hostile length (a device told to write far past RAM, or from below
/// it) costs the DMA map only the VM's own pages, and logs what is
/// watched among them.
#[test]
fn a_device_write_of_any_length_looks_at_the_vms_pages_only() {
    let mut r = rig(false);
    r.trap(cause::LOAD_PAGE, VA);
    let dma = r.hyp.vms[VmIndex(0)].dma.clone().unwrap();
    dma.wrote(0, u64::MAX);
    assert_eq!(dma.logged(), 3, "the three watched table pages (root, L1, L0), once each");
    dma.wrote(u64::MAX - 8, u64::MAX);
    dma.wrote(RAM - 0x1000, 0x1000);
    dma.wrote(L0, 0);
    assert_eq!(dma.logged(), 3, "nothing in RAM, nothing logged");
    dma.wrote(L0 + 0xff8, 16); // the last entry of L0 and the next page
    assert_eq!(dma.logged(), 4);
}

//! Scenario tests of the ownership rules through the public API: the cases
//! issue 6 names (protected memory refused to the host, reclaimed pages read
//! as zero, no sharing out of protected VMs), and bad input.

use strata_ownership::*;

const BASE: u64 = 0x80000;
const PAGES: u64 = 256;

struct Ram(Vec<u8>);

impl Ram {
    fn new() -> Ram {
        Ram(vec![0; (PAGES * PAGE_SIZE) as usize])
    }
    fn off(&self, pa: u64, len: usize) -> Result<usize, TableMemError> {
        let o = pa.checked_sub(BASE * PAGE_SIZE).ok_or(TableMemError::BadAddress(pa))? as usize;
        if o + len > self.0.len() {
            return Err(TableMemError::BadAddress(pa));
        }
        Ok(o)
    }
}

impl MachineMemory for Ram {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), TableMemError> {
        let o = self.off(pa, buf.len())?;
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
        Ok(())
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> Result<(), TableMemError> {
        let o = self.off(pa, data.len())?;
        self.0[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }
}

fn page(i: u64) -> MachinePage {
    MachinePage::from_pfn(BASE + i)
}

const A: VmId = VmId(1);
const B: VmId = VmId(2);
const P: VmId = VmId(3);

fn setup() -> (HypMemory, Ram) {
    let mut ram = Ram::new();
    let mut hm = HypMemory::new(page(0), PAGES, GStageMode::Sv39x4).unwrap();
    hm.create_vm(&mut ram, A, false).unwrap();
    hm.create_vm(&mut ram, B, false).unwrap();
    hm.create_vm(&mut ram, P, true).unwrap();
    (hm, ram)
}

#[test]
fn host_read_of_protected_memory_is_refused() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(P)).unwrap();
    hm.map(&mut ram, P, 0x8000_0000, p, Perms::RWX).unwrap();
    // The guest writes a secret (directly in RAM, as its stores would).
    ram.write(p.addr() + 0x10, b"secret!!").unwrap();
    let mut buf = [0u8; 8];
    let err = hm.host_read(&ram, P, 0x8000_0010, &mut buf).unwrap_err();
    assert_eq!(err, Error::Refused(Refused::Protected { page: p, vm: P, access: HostAccess::Read }));
    let msg = err.to_string();
    assert!(msg.contains("protected VM 3") && msg.contains("refused"), "unclear message: {msg}");
    assert_eq!(buf, [0; 8], "nothing was read");
    assert!(hm.host_write(&mut ram, P, 0x8000_0010, b"xxxxxxxx").is_err());
    assert_eq!(&ram.0[(p.addr() - BASE * PAGE_SIZE) as usize + 0x10..][..8], b"secret!!");
    // A non-protected VM's memory is readable.
    let a = hm.alloc_page(&mut ram, Owner::Vm(A)).unwrap();
    hm.map(&mut ram, A, 0x8000_0000, a, Perms::RW).unwrap();
    hm.host_write(&mut ram, A, 0x8000_0ffc, b"abcdefgh").unwrap_err(); // runs into an unmapped page
    hm.host_write(&mut ram, A, 0x8000_0ff8, b"abcdefgh").unwrap();
    hm.host_read(&ram, A, 0x8000_0ff8, &mut buf).unwrap();
    assert_eq!(&buf, b"abcdefgh");
}

#[test]
fn protected_vm_shares_with_the_host_only() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(P)).unwrap();
    // Nobody else can share it.
    assert!(matches!(
        hm.share(Owner::Hypervisor, p, Owner::Vm(A), Perms::R),
        Err(Error::Ownership(OwnershipError::NotOwner { .. }))
    ));
    // The VM itself cannot share it with another VM...
    assert_eq!(
        hm.share(Owner::Vm(P), p, Owner::Vm(A), Perms::R),
        Err(Error::Ownership(OwnershipError::ProtectedShare { page: p, vm: P, borrower: Owner::Vm(A) }))
    );
    assert!(hm.map(&mut ram, A, 0, p, Perms::R).is_err());
    // ...but may share it with the host (a virtio buffer), read-only here.
    hm.map(&mut ram, P, 0x1000, p, Perms::RW).unwrap();
    hm.share(Owner::Vm(P), p, Owner::Hypervisor, Perms::R).unwrap();
    let mut b = [0u8; 4];
    hm.host_read(&ram, P, 0x1000, &mut b).unwrap();
    assert!(matches!(hm.host_write(&mut ram, P, 0x1000, &b), Err(Error::Refused(Refused::Protected { .. }))));
    // Unsharing takes the host's access away again.
    let eff = hm.unshare(&mut ram, Owner::Vm(P), p, Owner::Hypervisor).unwrap();
    assert!(eff.unmapped.is_empty(), "the host has no G-stage mappings");
    assert!(hm.host_read(&ram, P, 0x1000, &mut b).is_err());
    // And nobody can reclaim it while P lives.
    assert_eq!(
        hm.reclaim(&mut ram, Owner::Hypervisor, p),
        Err(Error::Ownership(OwnershipError::ProtectedPage { page: p, vm: P }))
    );
    hm.check(&ram).unwrap();
}

#[test]
fn reclaimed_page_reads_as_zero_in_its_next_owner() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Hypervisor).unwrap();
    let _ = hm.donate(&mut ram, Owner::Hypervisor, p, Owner::Vm(A)).unwrap();
    hm.map(&mut ram, A, 0x4000, p, Perms::RW).unwrap();
    hm.map(&mut ram, A, 0x9000, p, Perms::R).unwrap(); // an alias
    hm.host_write(&mut ram, A, 0x4123, b"A's data").unwrap();
    assert_eq!(hm.tracker().who_maps(p), vec![(A, 0x4000), (A, 0x9000)]);
    // The donor takes it back: both of A's mappings must be invalidated.
    let eff = hm.reclaim(&mut ram, Owner::Hypervisor, p).unwrap();
    assert_eq!(
        eff.unmapped,
        vec![
            Unmap { vm: A, gpa: 0x4000, page: p, perms: Perms::RW },
            Unmap { vm: A, gpa: 0x9000, page: p, perms: Perms::R }
        ]
    );
    assert_eq!(eff.awaiting_zero, vec![p]);
    assert_eq!(hm.translate(&ram, A, 0x4000).unwrap(), None, "G-stage entry gone");
    // Until it is zeroed, nobody can have it.
    assert_eq!(
        hm.donate(&mut ram, Owner::Hypervisor, p, Owner::Vm(B)),
        Err(Error::Ownership(OwnershipError::AwaitingZero(p)))
    );
    assert_eq!(hm.tracker().host_access(p, HostAccess::Read), Err(Refused::AwaitingZero(p)));
    assert!(hm.zero_pending(&mut ram).unwrap() >= 1);
    let _ = hm.donate(&mut ram, Owner::Hypervisor, p, Owner::Vm(B)).unwrap();
    hm.map(&mut ram, B, 0, p, Perms::R).unwrap();
    let mut buf = [0xffu8; 4096];
    hm.host_read(&ram, B, 0, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 0), "B sees A's data");
    hm.check(&ram).unwrap();
}

#[test]
fn destroying_a_protected_vm_frees_and_scrubs_its_pages() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(P)).unwrap();
    hm.map(&mut ram, P, 0, p, Perms::RW).unwrap();
    ram.write(p.addr(), b"secret").unwrap();
    let eff = hm.destroy_vm(&mut ram, P).unwrap();
    assert_eq!(eff.unmapped, vec![Unmap { vm: P, gpa: 0, page: p, perms: Perms::RW }]);
    assert_eq!(eff.awaiting_zero, vec![p]);
    assert_eq!(hm.tracker().owner(p), Ok(Owner::Free));
    assert_eq!(hm.tracker().host_access(p, HostAccess::Read), Err(Refused::AwaitingZero(p)));
    // The next allocation of that page zeroes it first.
    let q = hm.alloc_page(&mut ram, Owner::Vm(A)).unwrap();
    assert_eq!(q, p, "lowest free page");
    hm.map(&mut ram, A, 0, q, Perms::R).unwrap();
    let mut b = [1u8; 6];
    hm.host_read(&ram, A, 0, &mut b).unwrap();
    assert_eq!(b, [0; 6]);
    hm.check(&ram).unwrap();
}

#[test]
fn pages_a_protected_vm_gives_up_are_scrubbed() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(P)).unwrap();
    hm.map(&mut ram, P, 0, p, Perms::RW).unwrap();
    let eff = hm.donate(&mut ram, Owner::Vm(P), p, Owner::Hypervisor).unwrap();
    assert_eq!(eff.unmapped.len(), 1);
    assert_eq!(eff.awaiting_zero, vec![p], "a protected VM's data never leaves it by donation");
    // Non-protected donations keep their contents (e.g. a kernel image the
    // hypervisor loaded and hands to a VM).
    let k = hm.alloc_page(&mut ram, Owner::Hypervisor).unwrap();
    ram.write(k.addr(), b"kernel").unwrap();
    let eff = hm.donate(&mut ram, Owner::Hypervisor, k, Owner::Vm(P)).unwrap();
    assert!(eff.is_empty());
    hm.map(&mut ram, P, 0x2000, k, Perms::RX).unwrap();
}

#[test]
fn sharing_between_ordinary_vms_and_teardown_reports() {
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(A)).unwrap();
    hm.share(Owner::Vm(A), p, Owner::Vm(B), Perms::R).unwrap();
    assert!(matches!(
        hm.map(&mut ram, B, 0x3000, p, Perms::RW),
        Err(Error::Ownership(OwnershipError::PermsExceedGrant { .. }))
    ));
    hm.map(&mut ram, B, 0x3000, p, Perms::R).unwrap();
    hm.map(&mut ram, A, 0x5000, p, Perms::RW).unwrap();
    // A shared page cannot be donated.
    assert_eq!(
        hm.donate(&mut ram, Owner::Vm(A), p, Owner::Vm(B)),
        Err(Error::Ownership(OwnershipError::PageShared(p)))
    );
    // The owner ending all loans: only B's mapping goes.
    let eff = hm.reclaim(&mut ram, Owner::Vm(A), p).unwrap();
    assert_eq!(eff.unmapped, vec![Unmap { vm: B, gpa: 0x3000, page: p, perms: Perms::R }]);
    assert!(eff.awaiting_zero.is_empty(), "the owner keeps its own data");
    assert_eq!(hm.tracker().who_maps(p), vec![(A, 0x5000)]);
    // A donates to B, then takes it back as donor.
    let eff = hm.donate(&mut ram, Owner::Vm(A), p, Owner::Vm(B)).unwrap();
    assert_eq!(eff.unmapped, vec![Unmap { vm: A, gpa: 0x5000, page: p, perms: Perms::RW }]);
    assert_eq!(hm.tracker().donor(p), Ok(Some(Owner::Vm(A))));
    hm.map(&mut ram, B, 0x7000, p, Perms::RW).unwrap();
    let eff = hm.reclaim(&mut ram, Owner::Vm(A), p).unwrap();
    assert_eq!(eff.unmapped, vec![Unmap { vm: B, gpa: 0x7000, page: p, perms: Perms::RW }]);
    assert_eq!(hm.tracker().owner(p), Ok(Owner::Vm(A)));
    hm.check(&ram).unwrap();
}

#[test]
fn table_pages_cannot_be_given_away() {
    let (mut hm, mut ram) = setup();
    let t = hm.table_pages()[0];
    assert_eq!(hm.tracker().owner(t), Ok(Owner::Hypervisor));
    assert_eq!(hm.donate(&mut ram, Owner::Hypervisor, t, Owner::Vm(A)), Err(Error::TablePage(t)));
    assert_eq!(hm.share(Owner::Hypervisor, t, Owner::Vm(A), Perms::R), Err(Error::TablePage(t)));
    // Roots are 16 KiB aligned, from the top of memory.
    for vm in [A, B, P] {
        let r = hm.root(vm).unwrap();
        assert_eq!(r % 0x4000, 0);
        assert!(r >= (BASE + PAGES - 12) * PAGE_SIZE);
    }
    assert_eq!(hm.hgatp(A, 7).unwrap() & ((1 << 44) - 1), hm.root(A).unwrap() >> 12);
}

#[test]
fn bad_input_is_an_error() {
    assert!(matches!(Tracker::new(page(0), 0), Err(OwnershipError::BadRange { .. })));
    assert!(matches!(Tracker::new(MachinePage::from_pfn(u64::MAX - 1), 5), Err(OwnershipError::BadRange { .. })));
    assert!(matches!(Tracker::new(page(0), u64::MAX / 2), Err(OwnershipError::BadRange { .. })));
    let mut t = Tracker::new(page(0), 16).unwrap();
    let out = page(16);
    assert_eq!(t.alloc(out, Owner::Hypervisor), Err(OwnershipError::PageOutOfRange(out)));
    assert_eq!(t.owner(MachinePage::from_pfn(0)), Err(OwnershipError::PageOutOfRange(MachinePage::from_pfn(0))));
    assert_eq!(t.host_access(out, HostAccess::Read), Err(Refused::OutOfRange(out)));
    assert_eq!(t.create_vm(A, false), Ok(()));
    assert_eq!(t.create_vm(A, true), Err(OwnershipError::VmExists(A)));
    assert_eq!(t.destroy_vm(B), Err(OwnershipError::NoSuchVm(B)));
    assert_eq!(t.map(A, 0x1001, page(0), Perms::R), Err(OwnershipError::MisalignedGpa(0x1001)));
    assert_eq!(t.map(A, 0, page(0), Perms::R), Err(OwnershipError::NoRight { vm: A, page: page(0) }));
    t.alloc(page(0), Owner::Vm(A)).unwrap();
    assert_eq!(t.map(A, 0, page(0), Perms::W), Err(OwnershipError::InvalidPerms(Perms::W)));
    assert_eq!(t.share(Owner::Free, page(0), Owner::Vm(A), Perms::R), Err(OwnershipError::NotAParty));
    assert_eq!(t.share(Owner::Vm(A), page(0), Owner::Vm(A), Perms::R), Err(OwnershipError::SameParty(Owner::Vm(A))));
    assert_eq!(
        t.unshare(Owner::Vm(A), page(0), Owner::Hypervisor),
        Err(OwnershipError::NotShared { page: page(0), borrower: Owner::Hypervisor })
    );
    assert!(matches!(t.reclaim(Owner::Vm(A), page(0)), Err(OwnershipError::NotReclaimable { .. })));
    assert!(matches!(t.reclaim(Owner::Vm(A), page(1)), Err(OwnershipError::NotReclaimable { .. })));
    assert_eq!(t.unmap(A, 0), Err(OwnershipError::NotMapped { vm: A, gpa: 0 }));
    assert_eq!(t.host_access(page(1), HostAccess::Write), Err(Refused::FreePage(page(1))));
    // A refused operation changes nothing.
    t.check_invariants().unwrap();
    assert_eq!(t.owner(page(0)), Ok(Owner::Vm(A)));
    // Every error has a message naming what went wrong.
    let e = OwnershipError::NotOwner { page: page(2), requester: Owner::Vm(A), owner: Owner::Hypervisor };
    assert_eq!(e.to_string(), "VM 1 does not own machine page 0x80002000 (owner: the hypervisor)");
    // HypMemory: gpa outside the G-stage mode's range.
    let (mut hm, mut ram) = setup();
    let p = hm.alloc_page(&mut ram, Owner::Vm(A)).unwrap();
    assert_eq!(hm.map(&mut ram, A, 1 << 41, p, Perms::R), Err(Error::GStage(GStageError::GpaOutOfRange(1 << 41))));
    assert!(hm.tracker().mappings(A).unwrap().is_empty(), "rolled back");
}

#[test]
fn running_out_of_table_memory_rolls_back() {
    // 8 pages: 4 for the root, then 4 for data and tables.
    let mut ram = Ram::new();
    let mut hm = HypMemory::new(page(0), 8, GStageMode::Sv39x4).unwrap();
    hm.create_vm(&mut ram, A, false).unwrap();
    let pages: Vec<MachinePage> = (0..3).map(|_| hm.alloc_page(&mut ram, Owner::Vm(A)).unwrap()).collect();
    // One free page is left; a mapping needs two new tables.
    let r = hm.map(&mut ram, A, 0, pages[0], Perms::R);
    assert_eq!(r, Err(Error::GStage(GStageError::Memory(TableMemError::OutOfMemory))));
    assert!(hm.tracker().mappings(A).unwrap().is_empty());
    assert!(hm.table_pages().len() == 4, "only the root remains");
    hm.check(&ram).unwrap();
    // Free one data page and it works.
    let _ = hm.donate(&mut ram, Owner::Vm(A), pages[2], Owner::Free).unwrap();
    hm.map(&mut ram, A, 0, pages[0], Perms::R).unwrap();
    hm.check(&ram).unwrap();
}

//! G-stage table format tests over a HashMap-backed table memory. Expected
//! PTE and hgatp values are worked out by hand from the Privileged spec
//! (20211203 §4.4.1 PTE layout, §8.2.10 hgatp, §8.5.1 Sv39x4/Sv48x4).

use std::collections::{BTreeSet, HashMap};

use strata_ownership::{pte, GStage, GStageError, GStageMode, PageSize, Perms, TableMemError, TableMemory};

/// Table memory: a map of words, a bump allocator, and a record of what
/// was allocated and freed.
struct MapMem {
    words: HashMap<u64, u64>,
    next: u64,
    limit: u64,
    live: BTreeSet<u64>,
    misalign_root: bool,
}

impl MapMem {
    fn new() -> MapMem {
        MapMem {
            words: HashMap::new(),
            next: 0x9000_0000,
            limit: u64::MAX,
            live: BTreeSet::new(),
            misalign_root: false,
        }
    }
    fn word(&self, pa: u64) -> u64 {
        self.words.get(&pa).copied().unwrap_or(0)
    }
}

impl TableMemory for MapMem {
    fn read_u64(&self, pa: u64) -> Result<u64, TableMemError> {
        Ok(self.word(pa))
    }
    fn write_u64(&mut self, pa: u64, value: u64) -> Result<(), TableMemError> {
        // Junk first, so the builder must zero the tables it gets.
        self.words.insert(pa, value);
        Ok(())
    }
    fn alloc_table_page(&mut self) -> Result<u64, TableMemError> {
        if self.live.len() as u64 >= self.limit {
            return Err(TableMemError::OutOfMemory);
        }
        let p = self.next;
        self.next += 0x1000;
        for i in 0..512 {
            self.words.insert(p + 8 * i, 0xdead_beef_dead_beef);
        }
        self.live.insert(p);
        Ok(p)
    }
    fn alloc_root_table(&mut self) -> Result<u64, TableMemError> {
        self.next = (self.next + 0x3fff) & !0x3fff;
        let p = self.next + if self.misalign_root { 0x1000 } else { 0 };
        self.next = p + 0x4000;
        for i in 0..2048 {
            self.words.insert(p + 8 * i, 0xdead_beef_dead_beef);
        }
        Ok(p)
    }
    fn free_table_page(&mut self, pa: u64) -> Result<(), TableMemError> {
        assert!(self.live.remove(&pa), "freed a table page twice or one never allocated: {pa:#x}");
        for i in 0..512 {
            assert_eq!(self.word(pa + 8 * i), 0, "freed table {pa:#x} is not empty");
        }
        Ok(())
    }
    fn free_root_table(&mut self, _pa: u64) -> Result<(), TableMemError> {
        Ok(())
    }
}

#[test]
fn sv39x4_leaf_and_pointer_format() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    let root = g.root();
    assert_eq!(root % 0x4000, 0, "root must be 16 KiB aligned");
    // The top page of the 41-bit space: root index 0x7ff (11 bits), then 0x1ff, 0x1ff.
    let gpa = 0x1ff_ffff_f000;
    g.map(&mut m, gpa, 0x8123_4000, Perms::RW).unwrap();
    let l2 = m.word(root + 0x7ff * 8);
    assert_eq!(l2 & 0x3ff, 0x001, "pointer PTE: V only");
    let t1 = (l2 >> 10) << 12;
    let l1 = m.word(t1 + 0x1ff * 8);
    assert_eq!(l1 & 0x3ff, 0x001);
    let t0 = (l1 >> 10) << 12;
    // PPN 0x81234 in bits 53..10; V|R|W|U|A|D = 0x01|0x02|0x04|0x10|0x40|0x80.
    assert_eq!(m.word(t0 + 0x1ff * 8), 0x2048_d0d7);
    let leaf = g.translate(&m, gpa + 0xabc).unwrap().unwrap();
    assert_eq!((leaf.gpa, leaf.pa, leaf.size, leaf.perms), (gpa, 0x8123_4000, 4096, Perms::RW));
    assert_eq!(leaf.translate(gpa + 0xabc), 0x8123_4abc);
    // Read-only, execute-only: no W, no D.
    g.map(&mut m, 0x1000, 0x8000_0000, Perms::X).unwrap();
    let l = g.translate(&m, 0x1000).unwrap().unwrap();
    assert_eq!(l.perms, Perms::X);
    let t0b = (m.word((m.word(root) >> 10) << 12) >> 10) << 12;
    assert_eq!(m.word(t0b + 8), (0x80000 << 10) | 0x59, "V|X|U|A = 0x59");
}

#[test]
fn hgatp_encoding() {
    let mut m = MapMem::new();
    let g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    assert_eq!(g.root(), 0x9000_0000);
    // MODE=8 in 63..60, VMID=5 in 57..44, PPN=0x90000 in 43..0.
    assert_eq!(g.hgatp(5).unwrap(), 0x8000_5000_0009_0000);
    assert_eq!(g.hgatp(0x3fff).unwrap() >> 44 & 0x3fff, 0x3fff);
    assert_eq!(g.hgatp(0x4000), Err(GStageError::VmidTooLarge(0x4000)));
    let g48 = GStage::new(GStageMode::Sv48x4, &mut m).unwrap();
    assert_eq!(g48.hgatp(0).unwrap() >> 60, 9);
}

#[test]
fn misaligned_root_is_an_error_not_a_panic() {
    let mut m = MapMem::new();
    m.misalign_root = true;
    assert!(matches!(GStage::new(GStageMode::Sv39x4, &mut m), Err(GStageError::Corrupt { .. })));
}

#[test]
fn gpa_width_per_mode() {
    let mut m = MapMem::new();
    let mut g39 = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    let mut g48 = GStage::new(GStageMode::Sv48x4, &mut m).unwrap();
    assert_eq!(g39.map(&mut m, 1 << 41, 0x8000_0000, Perms::R), Err(GStageError::GpaOutOfRange(1 << 41)));
    g48.map(&mut m, 1 << 41, 0x8000_0000, Perms::R).unwrap();
    g48.map(&mut m, (1 << 50) - 0x1000, 0x8000_1000, Perms::R).unwrap();
    assert_eq!(g48.map(&mut m, 1 << 50, 0x8000_0000, Perms::R), Err(GStageError::GpaOutOfRange(1 << 50)));
    assert_eq!(g39.translate(&m, 1 << 41).unwrap(), None);
    assert_eq!(g48.translate(&m, (1 << 50) - 1).unwrap().map(|l| l.pa), Some(0x8000_1000));
}

#[test]
fn bad_requests_are_errors() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    assert_eq!(g.map(&mut m, 0, 0x8000_0000, Perms::W), Err(GStageError::InvalidPerms(Perms::W)));
    assert_eq!(g.map(&mut m, 0, 0x8000_0000, Perms::NONE), Err(GStageError::InvalidPerms(Perms::NONE)));
    assert_eq!(g.map(&mut m, 0x10, 0x8000_0000, Perms::R), Err(GStageError::Misaligned(0x10)));
    assert_eq!(g.map(&mut m, 0, 0x8000_0010, Perms::R), Err(GStageError::Misaligned(0x8000_0010)));
    assert_eq!(g.map(&mut m, 0, 1 << 56, Perms::R), Err(GStageError::PaOutOfRange(1 << 56)));
    g.map(&mut m, 0, 0x8000_0000, Perms::R).unwrap();
    assert_eq!(g.map(&mut m, 0, 0x8000_1000, Perms::R), Err(GStageError::AlreadyMapped { gpa: 0 }));
    assert_eq!(g.unmap(&mut m, 0x5000), Err(GStageError::NotMapped(0x5000)));
    assert!(m.live.len() == 2, "failed requests allocated nothing");
}

#[test]
fn unmap_frees_empty_tables_and_keeps_others() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv48x4, &mut m).unwrap();
    g.map(&mut m, 0x4000_0000, 0x8000_0000, Perms::RW).unwrap();
    let after_one = m.live.len();
    assert_eq!(after_one, 3, "Sv48x4: three tables below the root");
    g.map(&mut m, 0x4000_1000, 0x8000_1000, Perms::R).unwrap();
    assert_eq!(m.live.len(), 3, "same leaf table");
    let l = g.unmap(&mut m, 0x4000_0000).unwrap();
    assert_eq!((l.pa, l.perms), (0x8000_0000, Perms::RW));
    assert_eq!(m.live.len(), 3, "leaf table still holds the second page");
    g.unmap(&mut m, 0x4000_1000).unwrap();
    assert!(m.live.is_empty(), "every empty table was freed");
    for i in 0..2048 {
        assert_eq!(m.word(g.root() + 8 * i), 0);
    }
    assert_eq!(g.leaves(&m).unwrap(), vec![]);
}

#[test]
fn out_of_table_memory_leaves_no_trace() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    m.limit = 1; // one table page: not enough for the two levels needed
    assert_eq!(g.map(&mut m, 0x1000, 0x8000_0000, Perms::R), Err(GStageError::Memory(TableMemError::OutOfMemory)));
    assert!(m.live.is_empty(), "the table allocated before the failure was freed");
    assert_eq!(g.translate(&m, 0x1000).unwrap(), None);
    for i in 0..2048 {
        assert_eq!(m.word(g.root() + 8 * i), 0);
    }
}

#[test]
fn megapages() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    g.map_sized(&mut m, 0x20_0000, 0x8020_0000, Perms::RX, PageSize::Size2M).unwrap();
    let l = g.translate(&m, 0x21_2345).unwrap().unwrap();
    assert_eq!((l.gpa, l.pa, l.size), (0x20_0000, 0x8020_0000, 0x20_0000));
    assert_eq!(l.translate(0x21_2345), 0x8021_2345);
    assert_eq!(g.map(&mut m, 0x20_1000, 0x9000_0000, Perms::R), Err(GStageError::SuperpageInTheWay { gpa: 0x20_1000 }));
    assert_eq!(
        g.map_sized(&mut m, 0x20_0000, 0x8040_0000, Perms::R, PageSize::Size2M),
        Err(GStageError::AlreadyMapped { gpa: 0x20_0000 })
    );
    assert_eq!(
        g.map_sized(&mut m, 0x20_1000, 0x8040_0000, Perms::R, PageSize::Size2M),
        Err(GStageError::Misaligned(0x20_1000))
    );
    g.map(&mut m, 0x40_0000, 0x8000_0000, Perms::R).unwrap();
    assert_eq!(
        g.map_sized(&mut m, 0x40_0000, 0x8040_0000, Perms::R, PageSize::Size2M),
        Err(GStageError::TableInTheWay { gpa: 0x40_0000 })
    );
    let u = g.unmap(&mut m, 0x3f_f000).unwrap();
    assert_eq!(u.size, 0x20_0000);
}

#[test]
fn junk_in_a_table_is_reported_not_followed() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv39x4, &mut m).unwrap();
    let root = g.root();
    // A pointer with reserved bits 63..54 set.
    m.words.insert(root, (1 << 60) | (0x12345 << 10) | pte::V);
    assert!(matches!(g.translate(&m, 0), Err(GStageError::Corrupt { .. })));
    assert!(matches!(g.map(&mut m, 0, 0x8000_0000, Perms::R), Err(GStageError::Corrupt { .. })));
    // A leaf without U (G-stage leaves need U=1, §8.5.1) is not ours either.
    m.words.insert(root, (0x80000 << 10) | pte::V | pte::R | pte::A);
    assert!(matches!(g.translate(&m, 0), Err(GStageError::Corrupt { .. })));
}

#[test]
fn destroy_frees_everything() {
    let mut m = MapMem::new();
    let mut g = GStage::new(GStageMode::Sv48x4, &mut m).unwrap();
    for (i, gpa) in [0u64, 0x20_0000, 0x4000_0000, 0x80_0000_0000, 0x3_ffff_ffff_f000].iter().enumerate() {
        g.map(&mut m, *gpa, 0x8000_0000 + 0x1000 * i as u64, Perms::RWX).unwrap();
    }
    let tables = g.table_pages(&m).unwrap();
    assert_eq!(tables.len(), 4 + m.live.len());
    assert_eq!(g.leaves(&m).unwrap().len(), 5);
    g.destroy(&mut m).unwrap();
    assert!(m.live.is_empty());
}

/// The emulator's own walker (strata-mmu, test-only dependency) accepts the
/// tables and agrees with `translate`, without needing to set A/D.
#[test]
fn strata_mmu_walker_agrees() {
    use strata_mmu::walk::{walk, PtMemory, Scheme, WalkError};
    struct View<'a>(&'a MapMem, bool);
    impl PtMemory for View<'_> {
        type Error = ();
        fn read_pte(&mut self, a: u64) -> Result<u64, ()> {
            Ok(self.0.word(a))
        }
        fn update_pte(&mut self, _: u64, _: u64, _: u64) -> Result<bool, ()> {
            self.1 = true;
            Ok(true)
        }
    }
    let user = strata_mmu::walk::Perms { user: true, sum: false, mxr: false, hlvx: false };
    for (mode, scheme) in [(GStageMode::Sv39x4, Scheme::SV39X4), (GStageMode::Sv48x4, Scheme::SV48X4)] {
        let mut m = MapMem::new();
        let mut g = GStage::new(mode, &mut m).unwrap();
        let top = (1u64 << mode.gpa_bits()) - 0x1000;
        let cases = [(0x0, Perms::R), (0x7000, Perms::RW), (0x80_0000_0000, Perms::X), (top, Perms::RWX)];
        for (i, &(gpa, p)) in cases.iter().enumerate() {
            g.map(&mut m, gpa, 0x8000_0000 + 0x1000 * i as u64, p).unwrap();
        }
        for (i, &(gpa, p)) in cases.iter().enumerate() {
            for (acc, need) in [
                (strata_mmu::Access::Load, p.read()),
                (strata_mmu::Access::Store, p.write()),
                (strata_mmu::Access::Fetch, p.exec()),
            ] {
                let mut v = View(&m, false);
                let r = walk(&mut v, scheme, g.root() >> 12, gpa + 0x18, acc, user);
                assert!(!v.1, "walker wanted to update A/D");
                match r {
                    Ok(l) => {
                        assert!(need, "{mode:?} {gpa:#x} {acc:?} allowed beyond {p}");
                        assert_eq!(l.pa, 0x8000_0018 + 0x1000 * i as u64);
                    }
                    Err(WalkError::PageFault) => {
                        assert!(!need, "{mode:?} {gpa:#x} {acc:?} refused despite {p}")
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        // Unmapped neighbours fault.
        let mut v = View(&m, false);
        assert_eq!(
            walk(&mut v, scheme, g.root() >> 12, 0x1000, strata_mmu::Access::Load, user).err(),
            Some(WalkError::PageFault)
        );
    }
}

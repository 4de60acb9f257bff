//! Model-based tests: random sequences of operations on [`HypMemory`],
//! checked after every step against a small reference model written
//! separately from the implementation, against G-stage tables walked by an
//! independent walker (and by the emulator's own walker, `strata-mmu`), and
//! against the contents of machine RAM.
//!
//! The reference model is deliberately naive: plain vectors and maps, no
//! reverse index, the rules of the state table in the crate docs written out
//! again. For a refused operation the model computes the *set* of every
//! rule the request breaks, and the implementation's error must be one of
//! them (so the model does not depend on the order the implementation checks
//! things in).
//!
//! The deliberately broken variants at the end switch on bugs inside the
//! tracker, the manager, or the test RAM, and assert that the checker catches
//! each one.
//!
//! The random choices come from proptest: a run is a list of operations,
//! each drawing its choices (which operation, which page, VM, address...)
//! from its own [`Choices`]. A failing run shrinks: operations are dropped
//! and choices move towards 0, the first option of each. The seed is
//! printed; `STRATA_SEED` replays a run (`strata_testkit::prop`).

use std::collections::{BTreeMap, BTreeSet};

use crate::tracker::Bugs;
use crate::*;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::cell::RefCell;

// ---------------------------------------------------------------- choices

/// The choices one operation may draw: proptest generates them.
type Choices = [u64; 16];

/// Reads an operation's [`Choices`] in order (the few operations that draw
/// more than 16 read them again, rotated).
struct Rng {
    c: Choices,
    i: usize,
}

impl Rng {
    fn new() -> Rng {
        Rng { c: [0; 16], i: 0 }
    }
    fn start(&mut self, c: &Choices) {
        self.c = *c;
        self.i = 0;
    }
    fn next(&mut self) -> u64 {
        let v = self.c[self.i % 16].rotate_left(13 * (self.i / 16) as u32);
        self.i += 1;
        v
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A run of up to `2 * steps` operations (`steps` on average).
fn runs(steps: usize) -> impl Strategy<Value = Vec<Choices>> {
    prop::collection::vec(prop::array::uniform16(any::<u64>()), 1..=2 * steps)
}

// ---------------------------------------------------------------- RAM

const BASE_PFN: u64 = 0x80000; // machine address 0x8000_0000
/// Pages the random operations hand around. Table pages come from above.
const DATA: usize = 48;
const TOTAL: u64 = 512;
/// Word offsets inside a page that the test writes and checks.
const WORDS: [u64; 4] = [0, 8, 0x800, 0xff8];

fn page_of(i: usize) -> MachinePage {
    MachinePage::from_pfn(BASE_PFN + i as u64)
}

fn index_of(p: MachinePage) -> Option<usize> {
    p.pfn().checked_sub(BASE_PFN).map(|i| i as usize).filter(|&i| i < DATA)
}

/// Flat machine RAM for the managed range.
struct Ram {
    bytes: Vec<u8>,
    /// Broken variant: `zero_page` does nothing.
    broken_zero: bool,
}

impl Ram {
    fn new() -> Ram {
        Ram { bytes: vec![0; (TOTAL * PAGE_SIZE) as usize], broken_zero: false }
    }
    fn range(&self, pa: u64, len: usize) -> Result<std::ops::Range<usize>, TableMemError> {
        let off = pa.checked_sub(BASE_PFN * PAGE_SIZE).ok_or(TableMemError::BadAddress(pa))? as usize;
        if off.checked_add(len).is_none_or(|e| e > self.bytes.len()) {
            return Err(TableMemError::BadAddress(pa));
        }
        Ok(off..off + len)
    }
    fn word(&self, pa: u64) -> Option<u64> {
        let r = self.range(pa, 8).ok()?;
        Some(u64::from_le_bytes(self.bytes[r].try_into().ok()?))
    }
    fn set_word(&mut self, pa: u64, v: u64) {
        let r = self.range(pa, 8).expect("test RAM address");
        self.bytes[r].copy_from_slice(&v.to_le_bytes());
    }
}

impl MachineMemory for Ram {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), TableMemError> {
        let r = self.range(pa, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }
    fn write(&mut self, pa: u64, data: &[u8]) -> Result<(), TableMemError> {
        let r = self.range(pa, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
    fn zero_page(&mut self, page: MachinePage) -> Result<(), TableMemError> {
        if self.broken_zero {
            return Ok(());
        }
        let r = self.range(page.addr(), PAGE_SIZE as usize)?;
        self.bytes[r].fill(0);
        Ok(())
    }
}

/// `strata-mmu`'s walker reads tables through this. The tables preset A/D,
/// so a hardware walk must never want to write one; `wrote` records it if
/// it does.
struct MmuView<'a> {
    ram: &'a Ram,
    wrote: bool,
}

impl strata_mmu::walk::PtMemory for MmuView<'_> {
    type Error = u64;
    fn read_pte(&mut self, addr: u64) -> Result<u64, u64> {
        self.ram.word(addr).ok_or(addr)
    }
    fn update_pte(&mut self, _addr: u64, _old: u64, _new: u64) -> Result<bool, u64> {
        self.wrote = true;
        Ok(true)
    }
}

// ---------------------------------------------------------------- independent walker

/// Levels and GPA width of a mode, restated from §8.5.1.
fn geometry(mode: GStageMode) -> (u32, u32) {
    match mode {
        GStageMode::Sv39x4 => (3, 41),
        GStageMode::Sv48x4 => (4, 50),
    }
}

fn pte_perms(v: u64) -> Perms {
    Perms::from_bits(((v >> 1) & 7) as u8)
}

/// Checks one PTE's format; returns Ok(None) for invalid, Ok(Some(true)) for
/// a leaf, Ok(Some(false)) for a pointer.
fn classify(v: u64, level: u32, at: u64) -> Result<Option<bool>, String> {
    if v & 1 == 0 {
        // The builder writes only zero for an invalid entry.
        return if v == 0 { Ok(None) } else { Err(format!("junk in invalid PTE {v:#x} at {at:#x}")) };
    }
    if v >> 54 != 0 {
        return Err(format!("reserved bits set in PTE {v:#x} at {at:#x}"));
    }
    let (r, w, x) = (v >> 1 & 1, v >> 2 & 1, v >> 3 & 1);
    let (u, g, a, d) = (v >> 4 & 1, v >> 5 & 1, v >> 6 & 1, v >> 7 & 1);
    if r == 0 && w == 1 {
        return Err(format!("W without R in PTE {v:#x} at {at:#x}"));
    }
    if r == 0 && x == 0 {
        if level == 0 || u | a | d | g != 0 {
            return Err(format!("bad pointer PTE {v:#x} at {at:#x} (level {level})"));
        }
        return Ok(Some(false));
    }
    // G-stage leaves must have U=1 (§8.5.1); A preset, D preset iff writable.
    if u != 1 || g != 0 || a != 1 || d != w {
        return Err(format!("bad leaf PTE {v:#x} at {at:#x}"));
    }
    let size_shift = 12 + 9 * level;
    if ((v >> 10) << 12) & ((1 << size_shift) - 1) != 0 {
        return Err(format!("misaligned superpage PTE {v:#x} at {at:#x}"));
    }
    Ok(Some(true))
}

struct Walked {
    /// (gpa, pa, perms, size)
    leaves: Vec<(u64, u64, Perms, u64)>,
    tables: BTreeSet<u64>,
}

fn walk_all(ram: &Ram, mode: GStageMode, root: u64) -> Result<Walked, String> {
    let (levels, _) = geometry(mode);
    if root % 0x4000 != 0 {
        return Err(format!("root {root:#x} not 16 KiB aligned"));
    }
    let mut w = Walked { leaves: Vec::new(), tables: (0..4).map(|i| root + i * 0x1000).collect() };
    fn rec(ram: &Ram, w: &mut Walked, table: u64, level: u32, top: bool, prefix: u64) -> Result<(), String> {
        let n = if top { 2048 } else { 512 };
        for i in 0..n {
            let at = table + 8 * i;
            let v = ram.word(at).ok_or_else(|| format!("table at {table:#x} outside RAM"))?;
            let gpa = prefix + (i << (12 + 9 * level));
            match classify(v, level, at)? {
                None => {}
                Some(true) => {
                    let size = 1u64 << (12 + 9 * level);
                    w.leaves.push((gpa, (v >> 10) << 12, pte_perms(v), size));
                }
                Some(false) => {
                    let next = ((v >> 10) & ((1 << 44) - 1)) << 12;
                    if !w.tables.insert(next) {
                        return Err(format!("table {next:#x} reached twice"));
                    }
                    rec(ram, w, next, level - 1, false, gpa)?;
                }
            }
        }
        Ok(())
    }
    rec(ram, &mut w, root, levels - 1, true, 0)?;
    Ok(w)
}

/// Translate one gpa: Some((pa of the page, perms)).
fn walk_one(ram: &Ram, mode: GStageMode, root: u64, gpa: u64) -> Result<Option<(u64, Perms)>, String> {
    let (levels, bits) = geometry(mode);
    if gpa >> bits != 0 {
        return Ok(None);
    }
    let mut table = root;
    for level in (0..levels).rev() {
        let idx_bits = if level == levels - 1 { 11 } else { 9 };
        let idx = (gpa >> (12 + 9 * level)) & ((1 << idx_bits) - 1);
        let at = table + 8 * idx;
        let v = ram.word(at).ok_or("walk left RAM")?;
        match classify(v, level, at)? {
            None => return Ok(None),
            Some(true) => {
                let size = 1u64 << (12 + 9 * level);
                let pa = ((v >> 10) << 12) + (gpa & (size - 1) & !0xfff);
                return Ok(Some((pa, pte_perms(v))));
            }
            Some(false) => table = ((v >> 10) & ((1 << 44) - 1)) << 12,
        }
    }
    Err("walk fell off level 0".into())
}

// ---------------------------------------------------------------- reference model

#[derive(Clone, Debug, PartialEq)]
struct MPage {
    owner: Owner,
    donor: Option<Owner>,
    dirty: bool,
    loans: BTreeMap<Owner, Perms>,
    words: [u64; 4],
}

impl Default for MPage {
    fn default() -> Self {
        MPage { owner: Owner::Free, donor: None, dirty: false, loans: BTreeMap::new(), words: [0; 4] }
    }
}

#[derive(Clone, Debug, Default)]
struct Model {
    vms: BTreeMap<VmId, bool>,
    pages: Vec<MPage>,
    maps: BTreeMap<(VmId, u64), (usize, Perms)>,
}

/// Categories of refusal, for comparing the implementation's error with the
/// model's set of broken rules.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Why {
    PageRange,
    TablePage,
    NoVm,
    VmExists,
    NotAParty,
    Same,
    NotOwner,
    Dirty,
    Shared,
    ProtShare,
    ProtPage,
    AlreadyShared,
    NotShared,
    BadPerms,
    Misaligned,
    GpaInUse,
    NotMapped,
    NoRight,
    Exceeds,
    NotReclaimable,
    GpaRange,
}

fn why_of(e: &Error) -> Option<Why> {
    use OwnershipError as O;
    Some(match e {
        Error::TablePage(_) => Why::TablePage,
        Error::GStage(GStageError::GpaOutOfRange(_)) => Why::GpaRange,
        Error::Ownership(o) => match o {
            O::PageOutOfRange(_) => Why::PageRange,
            O::MisalignedGpa(_) => Why::Misaligned,
            O::NoSuchVm(_) => Why::NoVm,
            O::VmExists(_) => Why::VmExists,
            O::NotAParty => Why::NotAParty,
            O::SameParty(_) => Why::Same,
            O::NotOwner { .. } => Why::NotOwner,
            O::AwaitingZero(_) => Why::Dirty,
            O::PageShared(_) => Why::Shared,
            O::ProtectedShare { .. } => Why::ProtShare,
            O::ProtectedPage { .. } => Why::ProtPage,
            O::AlreadyShared { .. } => Why::AlreadyShared,
            O::NotShared { .. } => Why::NotShared,
            O::InvalidPerms(_) => Why::BadPerms,
            O::GpaInUse { .. } => Why::GpaInUse,
            O::NotMapped { .. } => Why::NotMapped,
            O::NoRight { .. } => Why::NoRight,
            O::PermsExceedGrant { .. } => Why::Exceeds,
            O::NotReclaimable { .. } => Why::NotReclaimable,
            O::BadRange { .. } | O::ZeroFailed(_) => return None,
        },
        _ => return None,
    })
}

/// What an operation is applied to.
#[derive(Clone, Copy, Debug)]
enum PageArg {
    Data(usize),
    /// A page holding G-stage tables.
    Table(MachinePage),
    /// Outside the managed range.
    Outside(MachinePage),
}

impl PageArg {
    fn page(self) -> MachinePage {
        match self {
            PageArg::Data(i) => page_of(i),
            PageArg::Table(p) | PageArg::Outside(p) => p,
        }
    }
}

/// Permissions as the model understands them: a leaf can say it iff it is
/// non-empty and does not write without reading.
fn model_perms_ok(p: Perms) -> bool {
    p != Perms::NONE && (p.read() || !p.write())
}

fn model_contains(big: Perms, small: Perms) -> bool {
    (small.bits() & !big.bits()) == 0
}

/// (vm, gpa, page index, perms) — a mapping the model says was removed.
type MUnmap = (VmId, u64, usize, Perms);

struct Prediction {
    unmapped: Vec<MUnmap>,
    zeroed: Vec<usize>,
}

type Predicted = Result<Prediction, BTreeSet<Why>>;

impl Model {
    fn new() -> Model {
        Model { pages: vec![MPage::default(); DATA], ..Model::default() }
    }

    fn is_prot(&self, o: Owner) -> bool {
        matches!(o, Owner::Vm(v) if self.vms.get(&v) == Some(&true))
    }

    fn exists(&self, o: Owner) -> bool {
        match o {
            Owner::Vm(v) => self.vms.contains_key(&v),
            _ => true,
        }
    }

    /// State of the page, as the model sees it. Table pages are
    /// hypervisor-owned, never lent, never dirty.
    fn state(&self, p: PageArg) -> Option<MPage> {
        match p {
            PageArg::Data(i) => Some(self.pages[i].clone()),
            PageArg::Table(_) => Some(MPage { owner: Owner::Hypervisor, ..MPage::default() }),
            PageArg::Outside(_) => None,
        }
    }

    fn maps_of_page(&self, i: usize, by: impl Fn(VmId) -> bool) -> Vec<MUnmap> {
        self.maps
            .iter()
            .filter(|(&(v, _), &(pi, _))| pi == i && by(v))
            .map(|(&(v, g), &(pi, pp))| (v, g, pi, pp))
            .collect()
    }

    fn remove_maps(&mut self, list: &[MUnmap]) {
        for &(v, g, _, _) in list {
            self.maps.remove(&(v, g));
        }
    }

    fn page_checks(&self, p: PageArg, guarded: bool, why: &mut BTreeSet<Why>) -> Option<MPage> {
        if guarded && matches!(p, PageArg::Table(_)) {
            why.insert(Why::TablePage);
        }
        let st = self.state(p);
        if st.is_none() {
            why.insert(Why::PageRange);
        }
        st
    }

    fn party(&self, o: Owner, why: &mut BTreeSet<Why>) {
        if o == Owner::Free {
            why.insert(Why::NotAParty);
        } else if !self.exists(o) {
            why.insert(Why::NoVm);
        }
    }

    fn done(why: BTreeSet<Why>, pred: Prediction) -> Predicted {
        if why.is_empty() {
            Ok(pred)
        } else {
            Err(why)
        }
    }

    fn none() -> Prediction {
        Prediction { unmapped: Vec::new(), zeroed: Vec::new() }
    }

    // Each op: predict, and if the prediction is success, apply it.

    fn create(&mut self, v: VmId, prot: bool) -> Predicted {
        if self.vms.contains_key(&v) {
            return Err([Why::VmExists].into());
        }
        self.vms.insert(v, prot);
        Ok(Self::none())
    }

    fn destroy(&mut self, v: VmId) -> Predicted {
        if !self.vms.contains_key(&v) {
            return Err([Why::NoVm].into());
        }
        let me = Owner::Vm(v);
        let mut unmapped: Vec<MUnmap> = Vec::new();
        for (&(mv, g), &(pi, pp)) in &self.maps {
            if mv == v || self.pages[pi].owner == me {
                unmapped.push((mv, g, pi, pp));
            }
        }
        let mut zeroed = Vec::new();
        for (i, pg) in self.pages.iter_mut().enumerate() {
            if pg.owner == me {
                pg.owner = Owner::Free;
                pg.donor = None;
                pg.loans.clear();
                pg.dirty = true;
                zeroed.push(i);
            }
            if pg.donor == Some(me) {
                pg.donor = None;
            }
            pg.loans.remove(&me);
        }
        self.remove_maps(&unmapped);
        self.vms.remove(&v);
        Ok(Prediction { unmapped, zeroed })
    }

    fn donate(&mut self, from: Owner, p: PageArg, to: Owner) -> Predicted {
        let mut why = BTreeSet::new();
        let st = self.page_checks(p, true, &mut why);
        for o in [from, to] {
            if !self.exists(o) {
                why.insert(Why::NoVm);
            }
        }
        if from == to {
            why.insert(Why::Same);
        }
        if let Some(st) = &st {
            if st.owner != from {
                why.insert(Why::NotOwner);
            }
            if st.dirty {
                why.insert(Why::Dirty);
            }
            if !st.loans.is_empty() {
                why.insert(Why::Shared);
            }
        }
        if !why.is_empty() {
            return Err(why);
        }
        let PageArg::Data(i) = p else { unreachable!("checked above") };
        let unmapped = match from {
            Owner::Vm(v) => self.maps_of_page(i, |m| m == v),
            _ => Vec::new(),
        };
        let zero = to == Owner::Free || self.is_prot(from);
        self.remove_maps(&unmapped);
        let pg = &mut self.pages[i];
        pg.owner = to;
        pg.donor = if from != Owner::Free && to != Owner::Free { Some(from) } else { None };
        pg.dirty |= zero;
        Self::done(why, Prediction { unmapped, zeroed: if zero { vec![i] } else { vec![] } })
    }

    fn share(&mut self, o: Owner, p: PageArg, b: Owner, perms: Perms) -> Predicted {
        let mut why = BTreeSet::new();
        let st = self.page_checks(p, true, &mut why);
        self.party(o, &mut why);
        self.party(b, &mut why);
        if o == b {
            why.insert(Why::Same);
        }
        if !model_perms_ok(perms) {
            why.insert(Why::BadPerms);
        }
        if let Some(st) = &st {
            if st.owner != o {
                why.insert(Why::NotOwner);
            }
            if st.dirty {
                why.insert(Why::Dirty);
            }
            if self.is_prot(st.owner) && b != Owner::Hypervisor {
                why.insert(Why::ProtShare);
            }
            if st.loans.contains_key(&b) {
                why.insert(Why::AlreadyShared);
            }
        }
        if !why.is_empty() {
            return Err(why);
        }
        let PageArg::Data(i) = p else { unreachable!() };
        self.pages[i].loans.insert(b, perms);
        Ok(Self::none())
    }

    fn unshare(&mut self, o: Owner, p: PageArg, b: Owner) -> Predicted {
        let mut why = BTreeSet::new();
        let st = self.page_checks(p, false, &mut why);
        self.party(o, &mut why);
        if b == Owner::Free {
            why.insert(Why::NotAParty);
        }
        if let Some(st) = &st {
            if st.owner != o {
                why.insert(Why::NotOwner);
            }
            if !st.loans.contains_key(&b) {
                why.insert(Why::NotShared);
            }
        }
        if !why.is_empty() {
            return Err(why);
        }
        let PageArg::Data(i) = p else { unreachable!() };
        let unmapped = match b {
            Owner::Vm(v) => self.maps_of_page(i, |m| m == v),
            _ => Vec::new(),
        };
        self.remove_maps(&unmapped);
        self.pages[i].loans.remove(&b);
        Ok(Prediction { unmapped, zeroed: vec![] })
    }

    fn reclaim(&mut self, r: Owner, p: PageArg) -> Predicted {
        let mut why = BTreeSet::new();
        let st = self.page_checks(p, true, &mut why);
        self.party(r, &mut why);
        let Some(st) = st else { return Err(why) };
        if st.owner == r {
            if st.loans.is_empty() {
                why.insert(Why::NotReclaimable);
            }
            if !why.is_empty() {
                return Err(why);
            }
            let PageArg::Data(i) = p else { unreachable!() };
            let borrowers: Vec<Owner> = st.loans.keys().copied().collect();
            let unmapped = self.maps_of_page(i, |m| borrowers.contains(&Owner::Vm(m)));
            self.remove_maps(&unmapped);
            self.pages[i].loans.clear();
            return Ok(Prediction { unmapped, zeroed: vec![] });
        }
        if self.is_prot(st.owner) {
            why.insert(Why::ProtPage);
        }
        let allowed = st.owner != Owner::Free
            && (st.donor == Some(r) || (r == Owner::Hypervisor && matches!(st.owner, Owner::Vm(_))));
        if !allowed {
            why.insert(Why::NotReclaimable);
        }
        if !why.is_empty() {
            return Err(why);
        }
        let PageArg::Data(i) = p else { unreachable!() };
        let unmapped = self.maps_of_page(i, |_| true);
        self.remove_maps(&unmapped);
        let pg = &mut self.pages[i];
        pg.owner = r;
        pg.donor = None;
        pg.loans.clear();
        pg.dirty = true;
        Ok(Prediction { unmapped, zeroed: vec![i] })
    }

    fn map(&mut self, mode: GStageMode, v: VmId, gpa: u64, p: PageArg, perms: Perms) -> Predicted {
        let mut why = BTreeSet::new();
        let st = self.page_checks(p, true, &mut why);
        if gpa >> geometry(mode).1 != 0 {
            why.insert(Why::GpaRange);
        }
        if !self.vms.contains_key(&v) {
            why.insert(Why::NoVm);
        }
        if gpa % 4096 != 0 {
            why.insert(Why::Misaligned);
        }
        if !model_perms_ok(perms) {
            why.insert(Why::BadPerms);
        }
        if self.maps.contains_key(&(v, gpa)) {
            why.insert(Why::GpaInUse);
        }
        if let Some(st) = &st {
            if st.dirty {
                why.insert(Why::Dirty);
            }
            if st.owner != Owner::Vm(v) {
                match st.loans.get(&Owner::Vm(v)) {
                    None => {
                        why.insert(Why::NoRight);
                    }
                    Some(&g) if !model_contains(g, perms) => {
                        why.insert(Why::Exceeds);
                    }
                    Some(_) => {}
                }
            }
        }
        if !why.is_empty() {
            return Err(why);
        }
        let PageArg::Data(i) = p else { unreachable!() };
        self.maps.insert((v, gpa), (i, perms));
        Ok(Self::none())
    }

    fn unmap(&mut self, v: VmId, gpa: u64) -> Predicted {
        let mut why = BTreeSet::new();
        if !self.vms.contains_key(&v) {
            why.insert(Why::NoVm);
        }
        if gpa % 4096 != 0 {
            why.insert(Why::Misaligned);
        }
        let Some(&(i, pp)) = self.maps.get(&(v, gpa)) else {
            why.insert(Why::NotMapped);
            return Err(why);
        };
        if !why.is_empty() {
            return Err(why);
        }
        self.maps.remove(&(v, gpa));
        Ok(Prediction { unmapped: vec![(v, gpa, i, pp)], zeroed: vec![] })
    }

    /// What a host access to `vm`'s `gpa` should give: Ok(page index) or the
    /// refusal kind.
    fn host(&self, v: VmId, gpa: u64, write: bool) -> Result<usize, &'static str> {
        if !self.vms.contains_key(&v) {
            return Err("novm");
        }
        let Some(&(i, _)) = self.maps.get(&(v, gpa & !0xfff)) else {
            return Err("notmapped");
        };
        let pg = &self.pages[i];
        if pg.dirty {
            return Err("dirty");
        }
        if self.is_prot(pg.owner) {
            let g = pg.loans.get(&Owner::Hypervisor).copied().unwrap_or(Perms::NONE);
            if !(if write { g.write() } else { g.read() }) {
                return Err("protected");
            }
        }
        Ok(i)
    }
}

fn refusal_kind(e: &Error) -> &'static str {
    match e {
        Error::Refused(Refused::NoSuchVm(_)) => "novm",
        Error::Refused(Refused::NotMapped { .. }) => "notmapped",
        Error::Refused(Refused::AwaitingZero(_)) => "dirty",
        Error::Refused(Refused::Protected { .. }) => "protected",
        Error::Refused(Refused::FreePage(_)) => "free",
        Error::Refused(Refused::OutOfRange(_)) => "range",
        _ => "other",
    }
}

// ---------------------------------------------------------------- the simulation

struct Sim {
    mode: GStageMode,
    hm: HypMemory,
    ram: Ram,
    model: Model,
    rng: Rng,
    step: usize,
    log: Vec<String>,
    /// Counts of operations that succeeded, per kind (to show coverage).
    ok_counts: BTreeMap<&'static str, usize>,
    /// Also run the implementation's own consistency check. The broken
    /// variants turn it off, to show the independent checks alone catch them.
    self_check: bool,
}

const VMS: [u32; 4] = [1, 2, 3, 4];
const ALL_PERMS: [Perms; 8] =
    [Perms::NONE, Perms::R, Perms::W, Perms::X, Perms::RW, Perms::RX, Perms::from_bits(6), Perms::RWX];

impl Sim {
    fn new(mode: GStageMode) -> Sim {
        Sim {
            mode,
            hm: HypMemory::new(MachinePage::from_pfn(BASE_PFN), TOTAL, mode).expect("range"),
            ram: Ram::new(),
            model: Model::new(),
            rng: Rng::new(),
            step: 0,
            log: Vec::new(),
            ok_counts: BTreeMap::new(),
            self_check: true,
        }
    }

    fn gpas(&self) -> &'static [u64] {
        match self.mode {
            GStageMode::Sv39x4 => &[
                0x0,
                0x1000,
                0x2000,
                0x20_0000,
                0x4000_0000,
                0x80_0000_0000,  // root index 512: beyond a plain Sv39 root
                0x100_0000_0000, // root index 1024
                0x1ff_ffff_f000, // the last page of the 41-bit space
            ],
            GStageMode::Sv48x4 => &[
                0x0,
                0x1000,
                0x20_0000,
                0x4000_0000,
                0x80_0000_0000,
                0x1_0000_0000_0000, // root index 512 (bit 48)
                0x3_ffff_ffff_f000, // the last page of the 50-bit space
            ],
        }
    }

    fn bad_gpa(&mut self) -> u64 {
        let top = 1u64 << geometry(self.mode).1;
        self.rng.pick(&[top, top | 0x5000, 0x1234, !0xfff])
    }

    fn gpa(&mut self) -> u64 {
        if self.rng.chance(5) {
            self.bad_gpa()
        } else {
            let g = self.gpas();
            self.rng.pick(g)
        }
    }

    fn vm(&mut self) -> VmId {
        if self.rng.chance(4) {
            VmId(99)
        } else {
            VmId(self.rng.pick(&VMS))
        }
    }

    fn party(&mut self) -> Owner {
        match self.rng.below(10) {
            0 => Owner::Free,
            1 | 2 => Owner::Hypervisor,
            _ => Owner::Vm(self.vm()),
        }
    }

    fn perms(&mut self) -> Perms {
        if self.rng.chance(8) {
            self.rng.pick(&ALL_PERMS)
        } else {
            self.rng.pick(&[Perms::R, Perms::RW, Perms::RX, Perms::RWX, Perms::X])
        }
    }

    fn page(&mut self) -> PageArg {
        let r = self.rng.below(100);
        if r < 3 {
            let outside = if self.rng.chance(50) { BASE_PFN + TOTAL + 7 } else { BASE_PFN - 1 };
            PageArg::Outside(MachinePage::from_pfn(outside))
        } else if r < 6 {
            let t = self.hm.table_pages();
            if t.is_empty() {
                PageArg::Data(self.rng.below(DATA))
            } else {
                PageArg::Table(self.rng.pick(&t))
            }
        } else {
            PageArg::Data(self.rng.below(DATA))
        }
    }

    /// A data page satisfying `f`, if any (to steer towards successful ops).
    fn page_where(&mut self, f: impl Fn(&MPage) -> bool) -> Option<usize> {
        let c: Vec<usize> = (0..DATA).filter(|&i| f(&self.model.pages[i])).collect();
        if c.is_empty() {
            None
        } else {
            Some(self.rng.pick(&c))
        }
    }

    fn compare(
        &mut self,
        what: &'static str,
        predicted: Predicted,
        actual: Result<Effects, Error>,
    ) -> Result<(), String> {
        match (predicted, actual) {
            (Ok(pred), Ok(eff)) => {
                *self.ok_counts.entry(what).or_default() += 1;
                let mut want: Vec<Unmap> = pred
                    .unmapped
                    .iter()
                    .map(|&(vm, gpa, i, perms)| Unmap { vm, gpa, page: page_of(i), perms })
                    .collect();
                want.sort();
                if eff.unmapped != want {
                    return Err(format!("{what}: teardown {:?}, model expects {:?}", eff.unmapped, want));
                }
                let mut wz: Vec<MachinePage> = pred.zeroed.iter().map(|&i| page_of(i)).collect();
                wz.sort();
                if eff.awaiting_zero != wz {
                    return Err(format!("{what}: awaiting zero {:?}, model expects {:?}", eff.awaiting_zero, wz));
                }
                Ok(())
            }
            (Ok(_), Err(e)) => Err(format!("{what}: refused ({e}), model expects success")),
            (Err(why), Ok(_)) => Err(format!("{what}: succeeded, model expects refusal for {why:?}")),
            (Err(why), Err(e)) => match why_of(&e) {
                Some(w) if why.contains(&w) => Ok(()),
                _ => Err(format!("{what}: refused with '{e}', model expects one of {why:?}")),
            },
        }
    }

    /// One random operation, checked against the model.
    fn op(&mut self) -> Result<(), String> {
        let k = self.rng.below(120);
        match k {
            0..=5 => {
                let v = self.vm();
                let prot = self.rng.chance(50);
                self.log.push(format!("create_vm({v:?}, protected={prot})"));
                let pred = self.model.create(v, prot);
                let act = self.hm.create_vm(&mut self.ram, v, prot).map(|()| Effects::default());
                self.compare("create", pred, act)
            }
            6..=7 => {
                let v = self.vm();
                self.log.push(format!("destroy_vm({v:?})"));
                let pred = self.model.destroy(v);
                let act = self.hm.destroy_vm(&mut self.ram, v);
                self.compare("destroy", pred, act)
            }
            8..=21 => {
                // alloc: donate from Free
                let p = match self.page_where(|p| p.owner == Owner::Free) {
                    Some(i) if self.rng.chance(85) => PageArg::Data(i),
                    _ => self.page(),
                };
                let to = self.party();
                self.log.push(format!("donate(Free, {p:?}, {to:?})"));
                let pred = self.model.donate(Owner::Free, p, to);
                let act = self.hm.donate(&mut self.ram, Owner::Free, p.page(), to);
                self.compare("alloc", pred, act)
            }
            22..=31 => {
                let p = self.page();
                let from = match p {
                    PageArg::Data(i) if self.rng.chance(75) => self.model.pages[i].owner,
                    _ => self.party(),
                };
                let to = if self.rng.chance(15) { Owner::Free } else { self.party() };
                self.log.push(format!("donate({from:?}, {p:?}, {to:?})"));
                let pred = self.model.donate(from, p, to);
                let act = self.hm.donate(&mut self.ram, from, p.page(), to);
                self.compare("donate", pred, act)
            }
            32..=43 => {
                let p = match self.page_where(|p| p.owner != Owner::Free) {
                    Some(i) if self.rng.chance(85) => PageArg::Data(i),
                    _ => self.page(),
                };
                let owner = match p {
                    PageArg::Data(i) if self.rng.chance(85) => self.model.pages[i].owner,
                    _ => self.party(),
                };
                let b = if self.model.is_prot(owner) && self.rng.chance(60) { Owner::Hypervisor } else { self.party() };
                let perms = self.perms();
                self.log.push(format!("share({owner:?}, {p:?}, {b:?}, {perms})"));
                let by_prot = self.model.is_prot(owner);
                let pred = self.model.share(owner, p, b, perms);
                if by_prot && pred.is_ok() {
                    *self.ok_counts.entry("share_by_protected").or_default() += 1;
                }
                let act = self.hm.share(owner, p.page(), b, perms).map(|()| Effects::default());
                self.compare("share", pred, act)
            }
            44..=50 => {
                let p = match self.page_where(|p| !p.loans.is_empty()) {
                    Some(i) if self.rng.chance(85) => PageArg::Data(i),
                    _ => self.page(),
                };
                let (owner, b) = match p {
                    PageArg::Data(i) if self.rng.chance(85) => {
                        let pg = &self.model.pages[i];
                        let ls: Vec<Owner> = pg.loans.keys().copied().collect();
                        let b = if ls.is_empty() { Owner::Hypervisor } else { self.rng.pick(&ls) };
                        (pg.owner, b)
                    }
                    _ => (self.party(), self.party()),
                };
                self.log.push(format!("unshare({owner:?}, {p:?}, {b:?})"));
                let pred = self.model.unshare(owner, p, b);
                let act = self.hm.unshare(&mut self.ram, owner, p.page(), b);
                self.compare("unshare", pred, act)
            }
            51..=60 => {
                let p = match self.page_where(|p| p.owner != Owner::Free) {
                    Some(i) if self.rng.chance(85) => PageArg::Data(i),
                    _ => self.page(),
                };
                let r = match (p, self.rng.below(4)) {
                    (PageArg::Data(i), 0) => self.model.pages[i].donor.unwrap_or(Owner::Hypervisor),
                    (PageArg::Data(i), 1) => self.model.pages[i].owner,
                    (_, 2) => Owner::Hypervisor,
                    _ => self.party(),
                };
                self.log.push(format!("reclaim({r:?}, {p:?})"));
                let pred = self.model.reclaim(r, p);
                let act = self.hm.reclaim(&mut self.ram, r, p.page());
                self.compare("reclaim", pred, act)
            }
            61..=82 => {
                let v = self.vm();
                let me = Owner::Vm(v);
                let p = match self.page_where(|p| p.owner == me || p.loans.contains_key(&me)) {
                    Some(i) if self.rng.chance(80) => PageArg::Data(i),
                    _ => self.page(),
                };
                let perms = match p {
                    PageArg::Data(i) if self.rng.chance(70) => {
                        let pg = &self.model.pages[i];
                        let max =
                            if pg.owner == me { Perms::RWX } else { pg.loans.get(&me).copied().unwrap_or(Perms::R) };
                        // a random valid subset of what it may have
                        let sub = Perms::from_bits(max.bits() & (self.rng.next() as u8 | 1));
                        if model_perms_ok(sub) {
                            sub
                        } else {
                            max
                        }
                    }
                    _ => self.perms(),
                };
                let gpa = self.gpa();
                self.log.push(format!("map({v:?}, {gpa:#x}, {p:?}, {perms})"));
                let pred = self.model.map(self.mode, v, gpa, p, perms);
                let act = self.hm.map(&mut self.ram, v, gpa, p.page(), perms).map(|()| Effects::default());
                self.compare("map", pred, act)
            }
            83..=89 => {
                let (v, gpa) = match self.model.maps.keys().copied().collect::<Vec<_>>() {
                    ks if !ks.is_empty() && self.rng.chance(85) => self.rng.pick(&ks),
                    _ => (self.vm(), self.gpa()),
                };
                self.log.push(format!("unmap({v:?}, {gpa:#x})"));
                let pred = self.model.unmap(v, gpa);
                let act =
                    self.hm.unmap(&mut self.ram, v, gpa).map(|u| Effects { unmapped: vec![u], awaiting_zero: vec![] });
                self.compare("unmap", pred, act)
            }
            90..=106 => self.guest_access(),
            107..=113 => self.host_access(),
            114..=115 => {
                let p = self.page();
                let access = if self.rng.chance(50) { HostAccess::Read } else { HostAccess::Write };
                self.log.push(format!("host_access({p:?}, {access:?})"));
                let want: Result<(), &str> = match p {
                    PageArg::Outside(_) => Err("range"),
                    PageArg::Table(_) => Ok(()),
                    PageArg::Data(i) => {
                        let pg = &self.model.pages[i];
                        let g = pg.loans.get(&Owner::Hypervisor).copied().unwrap_or(Perms::NONE);
                        if pg.dirty {
                            Err("dirty")
                        } else if pg.owner == Owner::Free && access == HostAccess::Write {
                            Err("free")
                        } else if self.model.is_prot(pg.owner) && !model_contains(g, access.needs()) {
                            Err("protected")
                        } else {
                            Ok(())
                        }
                    }
                };
                let got = self.hm.tracker().host_access(p.page(), access).map_err(|e| refusal_kind(&Error::Refused(e)));
                if got != want {
                    return Err(format!("host_access: got {got:?}, model expects {want:?}"));
                }
                Ok(())
            }
            _ => {
                self.log.push("zero_pending()".into());
                self.hm.zero_pending(&mut self.ram).map_err(|e| format!("zero_pending: {e}"))?;
                for pg in &mut self.model.pages {
                    if pg.dirty {
                        pg.dirty = false;
                        pg.words = [0; 4];
                    }
                }
                if !self.hm.tracker().pending_zero().is_empty() {
                    return Err("pages still pending after zero_pending".into());
                }
                Ok(())
            }
        }
    }

    /// A guest load/store/fetch at a gpa, as the hardware would do it:
    /// through the G-stage tables only.
    fn guest_access(&mut self) -> Result<(), String> {
        let v = VmId(self.rng.pick(&VMS));
        let gpa = match self.model.maps.keys().filter(|k| k.0 == v).copied().collect::<Vec<_>>() {
            ks if !ks.is_empty() && self.rng.chance(80) => self.rng.pick(&ks).1,
            _ => self.gpa() & !0xfff,
        };
        let w = self.rng.below(4);
        let access = self.rng.pick(&[Access::Read, Access::Write, Access::Execute]);
        let val = self.rng.next() | 1;
        self.log.push(format!("guest {v:?} {access:?} {gpa:#x}+{:#x}", WORDS[w]));
        let Some(root) = self.hm.root(v) else {
            if self.model.vms.contains_key(&v) {
                return Err(format!("{v:?} exists but has no root table"));
            }
            return Ok(());
        };
        let walked = walk_one(&self.ram, self.mode, root, gpa)?;
        let model = self.model.maps.get(&(v, gpa)).copied();
        // The tables translate to exactly the page and perms the model has.
        let model_t = model.map(|(i, pp)| (page_of(i).addr(), pp));
        if walked != model_t {
            return Err(format!("tables give {walked:x?} for {v:?} {gpa:#x}, model {model_t:x?}"));
        }
        let granted = walked.is_some_and(|(_, pp)| model_contains(pp, access.needs()));
        // The emulator's own walker agrees with ours and never needs to set A/D.
        let scheme = match self.mode {
            GStageMode::Sv39x4 => strata_mmu::walk::Scheme::SV39X4,
            GStageMode::Sv48x4 => strata_mmu::walk::Scheme::SV48X4,
        };
        let maccess = match access {
            Access::Read => strata_mmu::Access::Load,
            Access::Write => strata_mmu::Access::Store,
            Access::Execute => strata_mmu::Access::Fetch,
        };
        let perms = strata_mmu::walk::Perms { user: true, sum: false, mxr: false, hlvx: false };
        let mut view = MmuView { ram: &self.ram, wrote: false };
        let hw = strata_mmu::walk::walk(&mut view, scheme, root >> 12, gpa + WORDS[w], maccess, perms);
        if view.wrote {
            return Err(format!("hardware walk wanted to update A/D at {v:?} {gpa:#x}"));
        }
        match (&hw, granted) {
            (Ok(l), true) if l.pa == walked.map_or(0, |x| x.0) + WORDS[w] => {}
            (Err(strata_mmu::walk::WalkError::PageFault), false) => {}
            _ => return Err(format!("strata-mmu walk {hw:x?}, ours grants={granted} ({walked:x?})")),
        }
        *self.ok_counts.entry(if granted { "guest_granted" } else { "guest_faulted" }).or_default() += 1;
        if !granted {
            return Ok(());
        }
        let (pa, _) = walked.unwrap_or_default();
        let Some((i, _)) = model else {
            return Err("granted without a model mapping".into());
        };
        let addr = pa + WORDS[w];
        match access {
            Access::Write => {
                self.ram.set_word(addr, val);
                self.model.pages[i].words[w] = val;
            }
            Access::Read | Access::Execute => {
                let got = self.ram.word(addr).unwrap_or(!0);
                if got == 0 && self.model.pages[i].words[w] == 0 {
                    *self.ok_counts.entry("guest_read_zero").or_default() += 1;
                }
                if got != self.model.pages[i].words[w] {
                    return Err(format!(
                        "{v:?} reads {got:#x} at {gpa:#x}+{:#x}, model holds {:#x}",
                        WORDS[w], self.model.pages[i].words[w]
                    ));
                }
            }
        }
        Ok(())
    }

    /// The host-side guest-memory interface.
    fn host_access(&mut self) -> Result<(), String> {
        let mut v = self.vm();
        // Often aim at pages lent to the host (the virtio-buffer case).
        let lent: Vec<(VmId, u64)> = self
            .model
            .maps
            .iter()
            .filter(|(_, &(i, _))| self.model.pages[i].loans.contains_key(&Owner::Hypervisor))
            .map(|(&k, _)| k)
            .collect();
        let gpa = match self.model.maps.keys().filter(|k| k.0 == v).copied().collect::<Vec<_>>() {
            _ if !lent.is_empty() && self.rng.chance(40) => {
                let (lv, lg) = self.rng.pick(&lent);
                v = lv;
                lg
            }
            ks if !ks.is_empty() && self.rng.chance(80) => self.rng.pick(&ks).1,
            _ => self.gpa() & !0xfff,
        };
        let w = self.rng.below(4);
        let write = self.rng.chance(40);
        let addr = gpa.wrapping_add(WORDS[w]);
        self.log.push(format!("host {} {v:?} {addr:#x}", if write { "write" } else { "read" }));
        let want = self.model.host(v, addr, write);
        if write {
            let val = self.rng.next() | 1;
            let got = self.hm.host_write(&mut self.ram, v, addr, &val.to_le_bytes());
            match (want, got) {
                (Ok(i), Ok(())) => {
                    *self.ok_counts.entry("host_write").or_default() += 1;
                    self.model.pages[i].words[w] = val;
                }
                (Err(k), Err(e)) if k == refusal_kind(&e) => {}
                (want, got) => return Err(format!("host write: got {got:?}, model expects {want:?}")),
            }
        } else {
            let mut b = [0u8; 8];
            let got = self.hm.host_read(&self.ram, v, addr, &mut b);
            match (want, got) {
                (Ok(i), Ok(())) => {
                    *self.ok_counts.entry("host_read").or_default() += 1;
                    if self.model.is_prot(self.model.pages[i].owner) {
                        *self.ok_counts.entry("host_read_shared_protected").or_default() += 1;
                    }
                    let val = u64::from_le_bytes(b);
                    if val != self.model.pages[i].words[w] {
                        return Err(format!("host read {val:#x}, model holds {:#x}", self.model.pages[i].words[w]));
                    }
                }
                (Err(k), Err(e)) if k == refusal_kind(&e) => {
                    if k == "protected" {
                        *self.ok_counts.entry("host_read_refused_protected").or_default() += 1;
                    }
                }
                (want, got) => return Err(format!("host read: got {got:?}, model expects {want:?}")),
            }
        }
        Ok(())
    }

    /// Everything that must hold after every step.
    fn check(&self) -> Result<(), String> {
        if self.self_check {
            // The implementation's own consistency checks.
            self.hm.check(&self.ram).map_err(|e| format!("HypMemory::check: {e}"))?;
        }
        self.check_independent()
    }

    /// The model, the independent walker and RAM, without trusting anything
    /// the implementation says about itself beyond its query answers.
    fn check_independent(&self) -> Result<(), String> {
        let t = self.hm.tracker();
        // VMs.
        let vms: Vec<(VmId, bool)> = self.model.vms.iter().map(|(&v, &p)| (v, p)).collect();
        if t.vms() != vms {
            return Err(format!("VMs {:?}, model {:?}", t.vms(), vms));
        }
        // Every data page's state equals the model's.
        for (i, pg) in self.model.pages.iter().enumerate() {
            let p = page_of(i);
            let got = (t.owner(p).ok(), t.donor(p).ok().flatten(), t.awaiting_zero(p), t.borrowers(p));
            let want =
                (Some(pg.owner), pg.donor, pg.dirty, pg.loans.iter().map(|(&o, &pp)| (o, pp)).collect::<Vec<_>>());
            if got != want {
                return Err(format!("page {i}: (owner, donor, awaiting zero, borrowers) = {got:?}, model {want:?}"));
            }
            let wm: Vec<(VmId, u64)> =
                self.model.maps.iter().filter(|(_, &(pi, _))| pi == i).map(|(&k, _)| k).collect();
            if t.who_maps(p) != wm {
                return Err(format!("who maps page {i}: {:?}, model {:?}", t.who_maps(p), wm));
            }
            if self.hm.is_table_page(p) {
                return Err(format!("data page {i} is a table page"));
            }
            // RAM: a page not awaiting zero holds exactly what the model says
            // (zero if it was zeroed since its last owner wrote it).
            if !pg.dirty {
                for (k, &off) in WORDS.iter().enumerate() {
                    let got = self.ram.word(p.addr() + off);
                    if got != Some(pg.words[k]) {
                        return Err(format!("page {i}+{off:#x} holds {got:x?}, model {:#x}", pg.words[k]));
                    }
                }
            }
        }
        // Table region: free or hypervisor tables, nothing else.
        for j in DATA as u64..TOTAL {
            let p = MachinePage::from_pfn(BASE_PFN + j);
            let o = t.owner(p).map_err(|e| e.to_string())?;
            let table = self.hm.is_table_page(p);
            if !(o == Owner::Free && !table || o == Owner::Hypervisor && table) {
                return Err(format!("page {j} above the data pages: owner {o:?}, table {table}"));
            }
        }
        // Independent walk of every VM's tables.
        let mut all_tables = BTreeSet::new();
        let mut leaves_to: BTreeMap<usize, Vec<(VmId, Perms)>> = BTreeMap::new();
        for &v in self.model.vms.keys() {
            let root = self.hm.root(v).ok_or(format!("{v:?} has no root"))?;
            let w = walk_all(&self.ram, self.mode, root)?;
            for &tp in &w.tables {
                if !all_tables.insert(tp) {
                    return Err(format!("table page {tp:#x} shared between VMs"));
                }
            }
            let mut want: Vec<(u64, u64, Perms, u64)> = self
                .model
                .maps
                .iter()
                .filter(|(k, _)| k.0 == v)
                .map(|(&(_, g), &(i, pp))| (g, page_of(i).addr(), pp, 4096))
                .collect();
            want.sort();
            if w.leaves != want {
                return Err(format!("{v:?}: tables hold leaves {:x?}, model {:x?}", w.leaves, want));
            }
            for &(_, pa, pp, _) in &w.leaves {
                let i = index_of(MachinePage::containing(pa)).ok_or(format!("{v:?} maps {pa:#x}, not a data page"))?;
                leaves_to.entry(i).or_default().push((v, pp));
            }
        }
        let recorded: BTreeSet<u64> = self.hm.table_pages().iter().map(|p| p.addr()).collect();
        if all_tables != recorded {
            return Err(format!("walked table pages {all_tables:x?}, recorded {recorded:x?}"));
        }
        // The safety properties themselves, on what the tables allow.
        for (i, pg) in self.model.pages.iter().enumerate() {
            let p = page_of(i);
            let owner = t.owner(p).map_err(|e| e.to_string())?;
            for &(v, pp) in leaves_to.get(&i).map(|x| x.as_slice()).unwrap_or(&[]) {
                let by_right = owner == Owner::Vm(v) || t.grant(p, Owner::Vm(v)).is_some_and(|g| model_contains(g, pp));
                if !by_right {
                    return Err(format!("{v:?} can reach page {i} ({pp}) without owning or borrowing it"));
                }
                if pg.dirty {
                    return Err(format!("page {i} awaits zero but {v:?} can reach it"));
                }
                if self.model.is_prot(owner) && owner != Owner::Vm(v) {
                    return Err(format!("protected page {i} of {owner:?} reachable by {v:?}"));
                }
            }
            if self.model.is_prot(owner) {
                let g = t.grant(p, Owner::Hypervisor).unwrap_or(Perms::NONE);
                if t.host_access(p, HostAccess::Read).is_ok() != g.read() {
                    return Err(format!(
                        "host read of protected page {i}: {:?} with grant {g}",
                        t.host_access(p, HostAccess::Read)
                    ));
                }
                if t.host_access(p, HostAccess::Write).is_ok() != g.write() {
                    return Err(format!("host write of protected page {i} with grant {g}"));
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, ops: &[Choices]) -> Result<(), String> {
        self.check().map_err(|e| format!("initial state: {e}"))?;
        for (s, c) in ops.iter().enumerate() {
            self.step = s;
            self.rng.start(c);
            let r = self.op().and_then(|()| self.check());
            if let Err(e) = r {
                let tail: Vec<&String> = self.log.iter().rev().take(6).rev().collect();
                return Err(format!("step {s}: {e}\n  last ops: {tail:#?}"));
            }
        }
        Ok(())
    }
}

/// Runs `cases` random runs of about `steps` operations each (proptest
/// cases named `test`), with `set` applied to each fresh simulation.
/// Returns the successful operations by kind, summed, or the (shrunk)
/// failure. `shrink_iters` bounds the shrinking.
fn run_cases(
    test: &str,
    mode: GStageMode,
    cases: u32,
    steps: usize,
    shrink_iters: u32,
    set: impl Fn(&mut Sim),
) -> Result<BTreeMap<&'static str, usize>, String> {
    let total = RefCell::new(BTreeMap::new());
    let cfg = strata_testkit::prop::config(test, cases);
    let mut runner = TestRunner::new(ProptestConfig { max_shrink_iters: shrink_iters, ..cfg });
    let r = runner.run(&runs(steps), |ops| {
        let mut sim = Sim::new(mode);
        set(&mut sim);
        sim.run(&ops).map_err(|e| TestCaseError::fail(format!("{mode:?}: {e}")))?;
        for (k, n) in sim.ok_counts {
            *total.borrow_mut().entry(k).or_default() += n;
        }
        Ok(())
    });
    match r {
        Ok(()) => Ok(total.into_inner()),
        Err(e) => Err(e.to_string()),
    }
}

/// Every kind of operation must have succeeded a fair number of times, or
/// the random walk is not exploring what it claims to.
fn assert_coverage(counts: &BTreeMap<&'static str, usize>) {
    for k in [
        "create",
        "destroy",
        "alloc",
        "donate",
        "share",
        "unshare",
        "reclaim",
        "map",
        "unmap",
        "host_read",
        "host_write",
        "guest_granted",
        "guest_faulted",
        "guest_read_zero",
    ] {
        let n = counts.get(k).copied().unwrap_or(0);
        assert!(n >= 20, "operation {k} succeeded only {n} times: {counts:?}");
    }
    for k in ["share_by_protected", "host_read_shared_protected", "host_read_refused_protected"] {
        let n = counts.get(k).copied().unwrap_or(0);
        assert!(n >= 3, "event {k} happened only {n} times: {counts:?}");
    }
}

/// How many runs the main model tests make: 40 by default (30 for Sv48x4),
/// more with `STRATA_MODEL_SEEDS=N` for a longer soak (`cargo test --release`).
fn seeds() -> u32 {
    std::env::var("STRATA_MODEL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40)
}

/// Steps per seed: 400, or `STRATA_MODEL_STEPS=N`.
fn steps() -> usize {
    std::env::var("STRATA_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(400)
}

#[test]
fn model_sv39x4() {
    let counts =
        run_cases("model_sv39x4", GStageMode::Sv39x4, seeds(), steps(), 4096, |_| {}).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("sv39x4 successful operations: {counts:?}");
    assert_coverage(&counts);
}

#[test]
fn model_sv48x4() {
    let counts = run_cases("model_sv48x4", GStageMode::Sv48x4, seeds() * 3 / 4, steps(), 4096, |_| {})
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("sv48x4 successful operations: {counts:?}");
    assert_coverage(&counts);
}

// ---------------------------------------------------------------- broken variants

/// The checker must catch the bug within a few runs. The failure is shrunk
/// a little, so the message shows a short run that exposes the bug.
fn assert_caught(name: &str, set: impl Fn(&mut Sim)) {
    let r = run_cases(name, GStageMode::Sv39x4, 40, 400, 64, |s| {
        s.self_check = false;
        set(s)
    });
    match r {
        Err(msg) => eprintln!("{name}: caught as expected: {}", msg.lines().next().unwrap_or("")),
        Ok(_) => panic!("the checker did not catch the injected bug '{name}'"),
    }
}

#[test]
fn catches_protected_share_bug() {
    assert_caught("protected VM shares with another VM", |s| s.hm.tracker_bugs().protected_share = true);
}

#[test]
fn catches_kept_mappings_on_donate() {
    assert_caught("donor keeps its mappings", |s| s.hm.tracker_bugs().keep_mappings_on_donate = true);
}

#[test]
fn catches_missing_zero_on_reclaim() {
    assert_caught("reclaim without zeroing", |s| s.hm.tracker_bugs().no_zero_on_reclaim = true);
}

#[test]
fn catches_map_of_pending_page() {
    assert_caught("map a page awaiting zero", |s| s.hm.tracker_bugs().map_pending = true);
}

#[test]
fn catches_skipped_gstage_teardown() {
    assert_caught("tables not torn down", |s| s.hm.bug_skip_teardown = true);
}

#[test]
fn catches_zeroer_that_does_not_zero() {
    assert_caught("zeroer does nothing", |s| s.ram.broken_zero = true);
}

/// A stray PTE written behind the builder's back (e.g. a read-only share
/// made writable) is found by the independent walk.
#[test]
fn catches_corrupted_leaf() {
    let found = std::cell::Cell::new(0);
    proptest!(strata_testkit::prop::config("catches_corrupted_leaf", 20), |(ops in runs(300))| {
        let mut sim = Sim::new(GStageMode::Sv39x4);
        sim.run(&ops).unwrap_or_else(|e| panic!("{e}"));
        let Some((&(v, gpa), _)) = sim.model.maps.iter().find(|(_, &(_, pp))| !pp.write()) else {
            return Ok(());
        };
        let root = sim.hm.root(v).expect("root");
        // Find the leaf's address with the walker's own arithmetic.
        let mut table = root;
        let mut at = 0;
        for level in (0..3u32).rev() {
            let bits = if level == 2 { 11 } else { 9 };
            at = table + 8 * ((gpa >> (12 + 9 * level)) & ((1 << bits) - 1));
            let pte = sim.ram.word(at).expect("pte");
            table = ((pte >> 10) & ((1 << 44) - 1)) << 12;
        }
        let pte = sim.ram.word(at).expect("pte");
        sim.ram.set_word(at, pte | pte::R | pte::W | pte::D);
        prop_assert!(sim.check_independent().is_err(), "made a read-only leaf writable and the checker did not notice");
        found.set(found.get() + 1);
    });
    assert!(found.get() >= 5, "too few runs had a read-only mapping to corrupt ({})", found.get());
}

impl HypMemory {
    fn tracker_bugs(&mut self) -> &mut Bugs {
        &mut self.tracker_mut_for_tests().bugs
    }
}

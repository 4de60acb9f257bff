use super::*;
use proptest::prelude::*;

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    pc: u64,
    regs: Vec<u64>,
    name: String,
}

/// A small snapshot: a state section and 3 MiB of RAM with a few
/// non-zero pages spread over records.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let mut ram = vec![0u8; 3 << 20];
    ram[5 * PAGE + 7] = 0xaa;
    ram[300 * PAGE..301 * PAGE].fill(0x55);
    let last = ram.len() - 1;
    ram[last] = 1;
    let mut w = Writer::new(Vec::new()).unwrap();
    let st = State { pc: 0x8020_0000, regs: vec![1, 2, u64::MAX], name: "hart".into() };
    w.section(tag::STATE, &encode(&st)).unwrap();
    w.ram(0, &ram).unwrap();
    let (file, size) = w.finish().unwrap();
    assert_eq!(size, file.len() as u64);
    (file, ram)
}

#[test]
fn round_trip() {
    let (file, ram) = sample();
    let s = Snapshot::parse(&file).unwrap();
    assert_eq!(s.version, VERSION);
    let st: State = decode("state", s.section(tag::STATE, "state").unwrap()).unwrap();
    assert_eq!(st, State { pc: 0x8020_0000, regs: vec![1, 2, u64::MAX], name: "hart".into() });
    let mut back = vec![0u8; ram.len()];
    let mut stored = 0;
    s.ram((ram.len() / PAGE) as u64, |p, d| {
        back[p as usize * PAGE..][..PAGE].copy_from_slice(d);
        stored += 1;
    })
    .unwrap();
    assert_eq!(back, ram);
    // Zero pages are not stored: three pages hold data.
    assert_eq!(stored, 3);
    // Sparse: 3 MiB of RAM with 3 pages of data is far below one page a page.
    assert!(file.len() < 4 * PAGE, "{} bytes", file.len());
}

#[test]
fn stats_count_zero_pages() {
    let mut w = Writer::new(Vec::new()).unwrap();
    let mut ram = vec![0u8; 600 * PAGE];
    ram[PAGE] = 1;
    w.ram(0, &ram).unwrap();
    assert_eq!(w.ram.pages, 600);
    assert_eq!(w.ram.zero_pages, 599);
    assert!(w.ram.compressed > 0);
}

#[test]
fn wrong_magic_is_refused() {
    let (mut file, _) = sample();
    file[0] = b'X';
    assert!(matches!(Snapshot::parse(&file), Err(SnapshotError::Magic)));
    assert!(matches!(Snapshot::parse(b""), Err(SnapshotError::Magic)));
    assert!(matches!(Snapshot::parse(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0"), Err(SnapshotError::Magic)));
}

#[test]
fn other_versions_are_refused() {
    for v in [0u32, VERSION + 1, u32::MAX] {
        let (mut file, _) = sample();
        file[8..12].copy_from_slice(&v.to_le_bytes());
        match Snapshot::parse(&file) {
            Err(e @ SnapshotError::Version { found }) => {
                assert_eq!(found, v);
                assert!(e.to_string().contains(&format!("version {v}")), "{e}");
            }
            other => panic!("version {v}: {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let (file, _) = sample();
    for len in 0..file.len() {
        let e = Snapshot::parse(&file[..len]).unwrap_err();
        match len {
            0..=7 => assert!(matches!(e, SnapshotError::Magic), "{len}: {e:?}"),
            _ => assert!(matches!(e, SnapshotError::Truncated), "{len}: {e:?}"),
        }
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let (file, _) = sample();
    for at in 0..file.len() {
        let mut f = file.clone();
        f[at] ^= 0x10;
        assert!(Snapshot::parse(&f).is_err(), "byte {at} flipped was accepted");
    }
    // A byte flipped in a payload is a checksum failure.
    let mut f = file.clone();
    f[HEADER + SECTION_HEAD + 1] ^= 1;
    assert!(matches!(Snapshot::parse(&f), Err(SnapshotError::Checksum)));
}

#[test]
fn trailing_bytes_are_refused() {
    let (mut file, _) = sample();
    file.push(0);
    assert!(matches!(Snapshot::parse(&file), Err(SnapshotError::Malformed(_))));
}

#[test]
fn missing_and_doubled_sections() {
    let mut w = Writer::new(Vec::new()).unwrap();
    w.section(tag::META, b"a").unwrap();
    w.section(tag::META, b"b").unwrap();
    let (file, _) = w.finish().unwrap();
    let s = Snapshot::parse(&file).unwrap();
    assert!(matches!(s.section(tag::STATE, "state"), Err(SnapshotError::Missing("state"))));
    assert!(matches!(s.section(tag::META, "meta"), Err(SnapshotError::Malformed(_))));
}

#[test]
fn ram_outside_the_machine_is_refused() {
    let (file, ram) = sample();
    let s = Snapshot::parse(&file).unwrap();
    // A machine one record smaller than the snapshot's RAM.
    let e = s.ram((ram.len() / PAGE - 1) as u64, |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("outside RAM"), "{e}");
}

#[test]
fn decode_refuses_wrong_and_left_over_bytes() {
    assert!(decode::<State>("state", &[]).is_err());
    let mut b = encode(&State { pc: 1, regs: vec![], name: String::new() });
    b.push(0);
    assert!(decode::<State>("state", &b).unwrap_err().to_string().contains("left over"));
}

/// Hashes `body` into a well-formed file, so hostile section contents get
/// past the checksum and reach the decoders.
fn framed(sections: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new()).unwrap();
    for (t, p) in sections {
        w.section(*t, p).unwrap();
    }
    w.finish().unwrap().0
}

#[test]
fn write_atomic_replaces_whole_files() {
    let dir = std::env::temp_dir().join(format!("strata-snap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("s.snap");
    std::fs::write(&p, b"old").unwrap();
    let (size, _) = write_atomic(&p, |w| w.section(tag::META, b"new")).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(Snapshot::parse(&bytes).unwrap().section(tag::META, "meta").unwrap(), b"new");
    // A failing fill leaves the old file and no temporary.
    let e = write_atomic(&p, |_| Err(SnapshotError::Missing("x")));
    assert!(e.is_err());
    assert_eq!(std::fs::read(&p).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(strata_testkit::prop::config("hostile_bytes_never_panic", 512))]
    /// Random bytes, with and without a valid header: refused or parsed,
    /// never a panic.
    #[test]
    fn hostile_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512), header in any::<bool>()) {
        if header && bytes.len() >= HEADER {
            bytes[..8].copy_from_slice(&MAGIC);
            bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        }
        if let Ok(s) = Snapshot::parse(&bytes) {
            let _ = s.ram(1 << 20, |_, _| {});
            let _ = s.section(tag::STATE, "state").and_then(|b| decode::<State>("state", b));
        }
    }

    /// Hostile section contents behind a valid checksum: RAM records and
    /// state sections are refused or decoded, never a panic, and no page
    /// outside the machine is ever handed out.
    #[test]
    fn hostile_sections_never_panic(
        rec in proptest::collection::vec(any::<u8>(), 0..300),
        first in 0u64..2048,
        n in 0u32..300,
        state in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut r = first.to_le_bytes().to_vec();
        r.extend_from_slice(&n.to_le_bytes());
        r.extend_from_slice(&rec);
        let file = framed(&[(tag::RAM, r), (tag::RAM, rec.clone()), (tag::STATE, state)]);
        let s = Snapshot::parse(&file).unwrap();
        let pages = 1024;
        let _ = s.ram(pages, |p, d| {
            assert!(p < pages);
            assert_eq!(d.len(), PAGE);
        });
        let _ = decode::<State>("state", s.section(tag::STATE, "state").unwrap());
    }
}

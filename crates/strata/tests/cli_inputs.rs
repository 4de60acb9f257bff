//! The `strata` command against bad inputs (issue 12): host files that are
//! not what they claim or are too large (item 1), garbage kernels and
//! firmware (item 7), memory sizes (item 8). Each test runs the built
//! binary and checks its exit status and its one line on stderr; the test
//! names carry the item number.
//!
//! The random images take their seed from STRATA_SEED (default: the clock)
//! and print it. Tests 7 use the guest's OpenSBI (build/guest, `make setup`).
//! Every child runs under a watchdog, so a hang fails the test instead of
//! stalling it (nothing here asserts a time).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STRATA: &str = env!("CARGO_BIN_EXE_strata");
/// Long enough for anything here on a loaded machine; only a hang reaches it.
const WATCHDOG: Duration = Duration::from_secs(300);

/// What a finished `strata` run left behind.
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
    /// The child's peak resident set, in KiB (`getrusage` via `wait4`).
    max_rss_kib: i64,
}

impl Outcome {
    /// Exactly one line on stderr, which contains `want`.
    fn one_line(&self, want: &str) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "want one line on stderr, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("strata: "), "{:?}", lines[0]);
        assert!(lines[0].contains(want), "want {want:?} in {:?}", lines[0]);
        lines[0]
    }
}

/// Runs `strata ARGS` with stdin from /dev/null and waits for it with
/// `wait4`, which also gives its resource usage.
fn strata(args: &[&str]) -> Outcome {
    let mut child = Command::new(STRATA)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata");
    let pid = child.id() as libc::pid_t;
    let collect = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out_reader = collect(Box::new(child.stdout.take().unwrap()));
    let err_reader = collect(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our child, not yet reaped (std's Child is never
        // waited on); the pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break (std::process::ExitStatus::from_raw(status), usage);
        }
        if start.elapsed() > WATCHDOG {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("strata {args:?} did not finish: it hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::mem::forget(child); // reaped above
    let (stdout, stderr) = (out_reader.join().unwrap(), err_reader.join().unwrap());
    let status = status.code().unwrap_or_else(|| panic!("strata {args:?} died of signal {:?}", status.signal()));
    Outcome { status, stdout, stderr, max_rss_kib: usage.ru_maxrss }
}

/// A fresh directory for one test, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("strata-cli-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(s(p)).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A sparse file of `len` bytes (nothing written: it costs no disk).
fn sparse(p: &Path, len: u64) {
    fs::File::create(p).unwrap().set_len(len).unwrap();
}

/// The guest's firmware and kernel (fetched by `make setup`).
fn guest(file: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../build/guest").join(file);
    assert!(p.is_file(), "{} is missing: run `make setup`", p.display());
    p
}

/// A small valid kernel for `strata machine` behind firmware: a flat
/// binary (it never runs in the tests that use it).
fn raw_kernel(dir: &Path) -> PathBuf {
    let p = dir.join("kernel.bin");
    fs::write(&p, [0x6fu8, 0, 0, 0].repeat(1024)).unwrap(); // `j .`
    p
}

/// The seed for random images: STRATA_SEED, or the clock; printed.
fn seed(test: &str) -> u64 {
    let seed = match std::env::var("STRATA_SEED") {
        Ok(v) => v.parse().expect("STRATA_SEED must be a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    eprintln!("{test}: seed {seed} (STRATA_SEED={seed} repeats it)");
    seed
}

/// `n` pseudo-random bytes from `seed` (SplitMix64: a fixed, documented
/// generator, so a seed means the same bytes on every build, whatever
/// version of a random-number crate is around).
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Random bytes that Strata loads as they are: no magic it recognizes in
/// front (ELF, gzip, xz, zstd, "MZ").
fn random_flat(seed: u64, n: usize) -> Vec<u8> {
    let mut d = random_bytes(seed, n);
    d[0] = 0x13; // none of the magics starts with it
    d
}

/// A Linux RISC-V Image header (boot-image-header.rst: image_size at 0x10,
/// flags at 0x18, "RSC\x05" at 0x38) over random bytes.
fn random_image(seed: u64, n: usize) -> Vec<u8> {
    let mut d = random_flat(seed, n);
    d[0x10..0x18].copy_from_slice(&(n as u64).to_le_bytes());
    d[0x18..0x20].fill(0);
    d[0x38..0x3c].copy_from_slice(b"RSC\x05");
    d
}

// ---- item 1: host files are checked before they are read ------------------

/// Every file a guest boots from, each way a user can give it.
fn file_flags(kind: &str, path: &str, dir: &Path) -> Vec<Vec<String>> {
    let k = raw_kernel(dir);
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match kind {
        "kernel" => vec![
            own(&["machine", "--bios", "none", "-m", "64M", "--kernel", path]),
            own(&["run", "-m", "64M", "--kernel", path]),
        ],
        "initrd" => vec![
            own(&["machine", "--bios", s(&k), "-m", "64M", "--kernel", s(&k), "--initrd", path]),
            own(&["run", "-m", "64M", "--kernel", s(&guest_or_image(dir)), "--initrd", path]),
        ],
        "firmware" => vec![own(&["machine", "-m", "64M", "--kernel", s(&k), "--bios", path])],
        "configuration file" => vec![own(&["run", "--config", path])],
        _ => unreachable!(),
    }
}

/// A kernel `strata run` accepts up to its initrd: a small Linux Image.
fn guest_or_image(dir: &Path) -> PathBuf {
    let p = dir.join("Image");
    fs::write(&p, random_image(1, 8192)).unwrap();
    p
}

const KINDS: [&str; 4] = ["kernel", "initrd", "firmware", "configuration file"];

fn refused_at_once(kind: &str, path: &str, dir: &Path, want: &str) {
    for args in file_flags(kind, path, dir) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = strata(&args);
        assert_eq!(o.status, 1, "{args:?}: {}", o.stderr);
        let line = o.one_line(want);
        assert!(line.contains(&format!("{kind} {path}")), "{args:?}: the line names the file: {line}");
    }
}

#[test]
fn item1_dev_zero_is_refused_for_every_file() {
    let dir = scratch("zero");
    for kind in KINDS {
        refused_at_once(kind, "/dev/zero", &dir, "is a character device");
    }
}

#[test]
fn item1_a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = scratch("fifo");
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    for kind in KINDS {
        refused_at_once(kind, s(&fifo), &dir, "is a FIFO");
    }
}

#[test]
fn item1_a_directory_is_refused() {
    let dir = scratch("dir");
    for kind in KINDS {
        refused_at_once(kind, s(&dir), &dir, "is a directory");
    }
}

#[test]
fn item1_a_big_sparse_file_is_refused_without_reading_it() {
    const BIG: u64 = 8 << 30;
    let dir = scratch("sparse");
    let big = dir.join("big");
    sparse(&big, BIG);
    for kind in KINDS {
        for args in file_flags(kind, s(&big), &dir) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = strata(&args);
            assert_eq!(o.status, 1, "{args:?}: {}", o.stderr);
            o.one_line("is 8 GiB, larger than");
            // Reading it would make the process 8 GiB large; refusing it
            // first leaves it at its usual size (guest RAM is 64 MiB here,
            // and untouched).
            assert!(
                o.max_rss_kib < (BIG / 8 / 1024) as i64,
                "{args:?}: peak RSS {} KiB: the file was read",
                o.max_rss_kib
            );
        }
    }
}

#[test]
fn item1_an_elf_segment_larger_than_ram_is_refused_before_reading() {
    // A 4 GiB sparse file whose one PT_LOAD segment claims all of it.
    let dir = scratch("elf-big");
    let p = dir.join("big.elf");
    let mut h = elf_header(0x8000_0000);
    h[64 + 8..64 + 16].copy_from_slice(&0x1000u64.to_le_bytes()); // p_offset
    h[64 + 32..64 + 40].copy_from_slice(&(4u64 << 30).to_le_bytes()); // p_filesz
    h[64 + 40..64 + 48].copy_from_slice(&(4u64 << 30).to_le_bytes()); // p_memsz
    fs::write(&p, &h).unwrap();
    fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(0x1000 + (4 << 30)).unwrap();
    let o = strata(&["machine", "--bios", "none", "-m", "64M", "--kernel", s(&p)]);
    assert_eq!(o.status, 1, "{}", o.stderr);
    o.one_line("outside guest RAM");
    assert!(o.max_rss_kib < (512 << 10), "peak RSS {} KiB: the segment was read", o.max_rss_kib);
}

// ---- item 7: garbage kernels and firmware ----------------------------------

/// An ELF64 RISC-V executable header with one PT_LOAD program header at 64
/// (ELF-64 Object File Format: e_phoff at 32, e_phentsize/e_phnum at 54).
fn elf_header(paddr: u64) -> Vec<u8> {
    let mut d = vec![0u8; 64 + 56];
    d[0..4].copy_from_slice(b"\x7fELF");
    d[4] = 2; // ELFCLASS64
    d[5] = 1; // little-endian
    d[6] = 1; // EV_CURRENT
    d[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    d[18..20].copy_from_slice(&243u16.to_le_bytes()); // EM_RISCV
    d[24..32].copy_from_slice(&paddr.to_le_bytes()); // e_entry
    d[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    d[54..56].copy_from_slice(&56u16.to_le_bytes());
    d[56..58].copy_from_slice(&1u16.to_le_bytes());
    d[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    d[64 + 24..64 + 32].copy_from_slice(&paddr.to_le_bytes());
    d
}

#[test]
fn item7_a_truncated_kernel_image_is_refused() {
    // Debian's Image is an EFI/PE application: its sections must be in the
    // file. Cut it to its first MiB.
    let dir = scratch("truncated");
    let img = fs::read(guest("Image")).unwrap();
    let cut = dir.join("Image.cut");
    fs::write(&cut, &img[..1 << 20]).unwrap();
    for args in
        [vec!["machine", "--bios", s(&guest("fw_dynamic.bin")), "--kernel", s(&cut)], vec!["run", "--kernel", s(&cut)]]
    {
        let o = strata(&args);
        assert_eq!(o.status, 1, "{args:?}: {}", o.stderr);
        o.one_line("truncated: its section");
    }
}

#[test]
fn item7_an_image_longer_than_its_header_says_is_refused() {
    let dir = scratch("long-image");
    let mut d = random_image(7, 8192);
    d[0x10..0x18].copy_from_slice(&4096u64.to_le_bytes()); // image_size < file
    let p = dir.join("Image");
    fs::write(&p, d).unwrap();
    let o = strata(&["run", "--kernel", s(&p)]);
    assert_eq!(o.status, 1, "{}", o.stderr);
    o.one_line("more than the 0x1000 its header says the kernel occupies");
}

#[test]
fn item7_inconsistent_elf_files_are_refused() {
    let dir = scratch("elf");
    let entry = 0x8000_0000u64;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = elf_header(entry);
        d[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes());
        d[64 + 32..64 + 40].copy_from_slice(&8u64.to_le_bytes());
        d[64 + 40..64 + 48].copy_from_slice(&8u64.to_le_bytes());
        d.extend_from_slice(&[0x6f, 0, 0, 0, 0x6f, 0, 0, 0]);
        f(&mut d);
        d
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("segment past the end", with(&|d| d.truncate(124)), "runs past the end of the file"),
        ("program headers past the end", with(&|d| d.truncate(100)), "program headers at offset 0x40 run past"),
        ("odd phentsize", with(&|d| d[54] = 32), "program header entries of 32 bytes"),
        ("file part above memory part", with(&|d| d[64 + 40] = 4), "more bytes in the file"),
        ("entry outside", with(&|d| d[24..32].copy_from_slice(&(entry + 0x10_0000).to_le_bytes())), "entry point"),
    ];
    for (what, bytes, want) in cases {
        let p = dir.join("k.elf");
        fs::write(&p, bytes).unwrap();
        let o = strata(&["machine", "--bios", "none", "-m", "64M", "--kernel", s(&p)]);
        assert_eq!(o.status, 1, "{what}: {}", o.stderr);
        o.one_line(want);
    }
}

/// The run ended with status 7 and, for each `who`, one line saying it
/// made no progress.
fn no_progress(o: &Outcome, seed: u64, who: &[&str]) {
    assert_eq!(o.status, 7, "seed {seed}: {}", o.stderr);
    // With several VMs, the console's move to the next VM is announced.
    // The bare board adds the stuck hart's state (vector, translation root,
    // a few registers) on a line of its own.
    let state = |l: &str| l.contains(" state: tvec ");
    let lines: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("console input now goes to") && !state(l))
        .collect();
    assert_eq!(lines.len(), who.len(), "seed {seed}: {}", o.stderr);
    let harts = who.iter().filter(|w| w.starts_with("hart ")).count();
    assert_eq!(o.stderr.lines().filter(|l| state(l)).count(), harts, "seed {seed}: {}", o.stderr);
    for (line, who) in lines.iter().zip(who) {
        assert!(line.starts_with(&format!("strata: {who}")), "seed {seed}: {line}");
        assert!(line.contains("made no progress") && line.contains("trapping at pc 0x"), "seed {seed}: {line}");
    }
}

#[test]
fn item7_random_firmware_makes_no_progress() {
    let seed = seed("item7_random_firmware_makes_no_progress");
    let dir = scratch("random-fw");
    let fw = dir.join("fw.bin");
    fs::write(&fw, random_flat(seed, 64 << 10)).unwrap();
    let o = strata(&["machine", "-m", "64M", "--bios", s(&fw), "--kernel", s(&raw_kernel(&dir))]);
    no_progress(&o, seed, &["hart 0 made no progress"]);
}

#[test]
fn item7_a_random_kernel_behind_opensbi_makes_no_progress() {
    let seed = seed("item7_a_random_kernel_behind_opensbi_makes_no_progress");
    let dir = scratch("random-kernel");
    let k = dir.join("kernel.bin");
    fs::write(&k, random_flat(seed, 1 << 20)).unwrap();
    let o = strata(&["machine", "-m", "64M", "--bios", s(&guest("fw_dynamic.bin")), "--kernel", s(&k)]);
    no_progress(&o, seed, &["hart 0 made no progress"]);
}

#[test]
fn item7_a_random_kernel_image_makes_no_progress_as_a_vm() {
    let seed = seed("item7_a_random_kernel_image_makes_no_progress_as_a_vm");
    let dir = scratch("random-vm");
    let k = dir.join("Image");
    fs::write(&k, random_image(seed, 1 << 20)).unwrap();
    let o = strata(&["run", "-m", "64M", "--kernel", s(&k)]);
    no_progress(&o, seed, &["VM vm0: made no progress: its vCPU on hart 0"]);
}

#[test]
fn item7_two_stuck_vms_sharing_a_hart_are_both_found() {
    // One hart takes turns between them: each VM's streak must survive the
    // other's turns.
    let seed = seed("item7_two_stuck_vms_sharing_a_hart_are_both_found");
    let dir = scratch("random-vms");
    for (name, s) in [("a", seed), ("b", seed ^ 0x5555)] {
        fs::write(dir.join(name), random_image(s, 256 << 10)).unwrap();
    }
    let toml = "harts = 1\n[[vm]]\nname = \"a\"\nmemory = \"32M\"\nkernel = \"a\"\n\
                [[vm]]\nname = \"b\"\nmemory = \"32M\"\nkernel = \"b\"\n";
    fs::write(dir.join("vms.toml"), toml).unwrap();
    let o = strata(&["run", "--config", s(&dir.join("vms.toml"))]);
    no_progress(&o, seed, &["VM a: made no progress", "VM b: made no progress"]);
}

#[test]
fn item7_a_real_vm_sharing_a_hart_with_a_stuck_one_is_unaffected() {
    // The default guest boots, runs a command and powers off on the hart
    // a stuck VM takes turns on: only the stuck one is reported.
    let seed = seed("item7_a_real_vm_sharing_a_hart_with_a_stuck_one_is_unaffected");
    let dir = scratch("real-and-stuck");
    fs::write(dir.join("stuck"), random_image(seed, 256 << 10)).unwrap();
    let toml = format!(
        "harts = 1\n[[vm]]\nname = \"real\"\nmemory = \"256M\"\nkernel = \"{}\"\ninitrd = \"{}\"\n\
         cmdline = 'console=ttyS0 strata.cmd=\"echo item7-real-$((6*7))\"'\n\
         [[vm]]\nname = \"stuck\"\nmemory = \"32M\"\nkernel = \"stuck\"\n",
        s(&guest("Image")),
        s(&guest("initramfs.cpio"))
    );
    fs::write(dir.join("vms.toml"), toml).unwrap();
    let o = strata(&["run", "--config", s(&dir.join("vms.toml"))]);
    no_progress(&o, seed, &["VM stuck: made no progress"]);
    assert!(o.stdout.contains("[real] item7-real-42"), "seed {seed}: the real VM's command did not run:\n{}", o.stdout);
}

// ---- item 8: memory sizes --------------------------------------------------

#[test]
fn item8_a_size_is_reported_as_written() {
    for (m, want) in
        [("1K", "-m 1K: at least 16 MiB"), ("15M", "-m 15M: at least 16 MiB"), ("12Q", "-m 12Q: not a size")]
    {
        for cmd in ["machine", "run"] {
            let o = strata(&[cmd, "-m", m, "--kernel", "/nonexistent"]);
            assert_eq!(o.status, 1, "{cmd} -m {m}: {}", o.stderr);
            o.one_line(want);
        }
    }
}

#[test]
fn item8_zero_and_one_are_the_same_error() {
    for m in ["0", "1", "0K", "1B"] {
        let o = strata(&["machine", "-m", m, "--kernel", "/nonexistent"]);
        assert_eq!(o.status, 1, "-m {m}: {}", o.stderr);
        o.one_line(&format!("-m {m}: at least 16 MiB of RAM is needed"));
    }
}

#[test]
fn item8_qemu_size_syntax_is_accepted() {
    // Each is 16 MiB: accepted, the run goes on to the (missing) kernel.
    for m in ["16", "16M", "16m", "16384K", "16777216B", "0.015625G", "size=16M", "0.0000152587890625T"] {
        let o = strata(&["machine", "-m", m, "--kernel", "/nonexistent"]);
        assert_eq!(o.status, 1, "-m {m}: {}", o.stderr);
        o.one_line("cannot read kernel /nonexistent");
    }
    // T is a unit, and too large is one rule.
    for m in ["1T", "2t", "65G"] {
        let o = strata(&["machine", "-m", m, "--kernel", "/nonexistent"]);
        assert_eq!(o.status, 1, "-m {m}: {}", o.stderr);
        o.one_line(&format!("-m {m}: at most 64 GiB of RAM is supported"));
    }
}

#[test]
fn item8_vm_memory_in_toml_is_reported_as_written() {
    let dir = scratch("toml-mem");
    fs::write(dir.join("vm.toml"), "[[vm]]\nname = \"a\"\nmemory = \"1K\"\nkernel = \"k\"\n").unwrap();
    let o = strata(&["run", "--config", s(&dir.join("vm.toml"))]);
    assert_eq!(o.status, 1, "{}", o.stderr);
    o.one_line("VM a: memory \"1K\": at least 16 MiB");
}

/// Issue 13: hart threads need the host clock; the virtual clock counts
/// instructions, which only one thread keeps deterministic.
#[test]
fn threads_need_the_host_clock() {
    let dir = scratch("threads");
    let k = raw_kernel(&dir);
    let o = strata(&[
        "machine",
        "-m",
        "64M",
        "--bios",
        "none",
        "--kernel",
        s(&k),
        "--smp",
        "2",
        "--threads",
        "2",
        "--clock",
        "virtual",
    ]);
    assert_eq!(o.status, 1, "{}", o.stderr);
    o.one_line("--threads 2: the virtual clock moves with the instructions run");
    // Out of range: the argument parser's usage error.
    let o = strata(&["machine", "-m", "64M", "--bios", "none", "--kernel", s(&k), "--threads", "0"]);
    assert_eq!(o.status, 2, "{}", o.stderr);
}

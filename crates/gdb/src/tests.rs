//! The stub against a scripted machine, packet by packet over a socket
//! pair: what gdb sends, what the machine is asked, what gdb gets back.

use super::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// Two harts with registers in arrays and 64 KiB of memory at 0x10000
/// (virtual = physical); `resume` stops at the first breakpoint in
/// `script` order, or ends the machine.
struct Mock {
    x: [[u64; 32]; 2],
    pc: [u64; 2],
    mem: Vec<u8>,
    /// Addresses hart 1 "reaches" on a continue, in order.
    script: Vec<u64>,
    /// Data accesses hart 1 makes on a continue, in order: (va, len, read,
    /// write).
    accesses: Vec<(u64, u64, bool, bool)>,
    /// What `resume` was asked, for the test to check.
    asked: Vec<String>,
}

const MEM_BASE: u64 = 0x10000;

impl DebugMachine for Mock {
    fn harts(&self) -> usize {
        2
    }
    fn reg(&mut self, h: usize, r: Reg) -> Option<u64> {
        match r {
            Reg::X(i) => Some(self.x[h][i as usize]),
            Reg::Pc => Some(self.pc[h]),
            Reg::Csr(addr::MHARTID) => Some(h as u64),
            Reg::Priv => Some(1),
            _ => None,
        }
    }
    fn set_reg(&mut self, h: usize, r: Reg, v: u64) -> bool {
        match r {
            Reg::X(i) => self.x[h][i as usize] = v,
            Reg::Pc => self.pc[h] = v,
            _ => return false,
        }
        true
    }
    fn read_memory(&mut self, _h: usize, va: u64, buf: &mut [u8]) -> usize {
        let Some(off) = va.checked_sub(MEM_BASE) else { return 0 };
        let off = off as usize;
        let n = buf.len().min(self.mem.len().saturating_sub(off));
        buf[..n].copy_from_slice(&self.mem[off..off + n]);
        n
    }
    fn write_memory(&mut self, _h: usize, va: u64, data: &[u8]) -> bool {
        let Some(off) = va.checked_sub(MEM_BASE) else { return false };
        let off = off as usize;
        if off + data.len() > self.mem.len() {
            return false;
        }
        self.mem[off..off + data.len()].copy_from_slice(data);
        true
    }
    fn resume(&mut self, how: Resume<'_>, _interrupted: &mut dyn FnMut() -> bool) -> Stop {
        match how {
            Resume::Step { hart } => {
                self.asked.push(format!("step {hart}"));
                self.pc[hart] += 4;
                Stop::Stepped { hart }
            }
            Resume::Continue { breaks, watches } => {
                self.asked.push(format!("continue {breaks:x?} {} watches", watches.len()));
                while let Some((va, len, r, w)) = (!self.accesses.is_empty()).then(|| self.accesses.remove(0)) {
                    if let Some(watch) = watches.iter().find(|x| x.hit(va, len, r, w)) {
                        return Stop::Watchpoint { hart: 1, watch: *watch };
                    }
                }
                while let Some(a) = (!self.script.is_empty()).then(|| self.script.remove(0)) {
                    if breaks.contains(&a) {
                        self.pc[1] = a;
                        return Stop::Breakpoint { hart: 1 };
                    }
                }
                Stop::Ended(0)
            }
        }
    }
}

/// gdb's side of the connection.
struct Client(UnixStream);

impl Client {
    fn send(&mut self, p: &str) -> String {
        let sum = p.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        write!(self.0, "${p}#{sum:02x}").unwrap();
        self.reply()
    }
    /// The next packet's payload (acks skipped), acknowledged.
    fn reply(&mut self) -> String {
        let mut buf = Vec::new();
        let mut b = [0u8];
        loop {
            self.0.read_exact(&mut b).unwrap();
            if b[0] == b'$' || !buf.is_empty() {
                buf.push(b[0]);
            }
            if buf.len() >= 3 && buf[buf.len() - 3] == b'#' {
                break;
            }
        }
        // The stub may have closed already (after `D`).
        let _ = self.0.write_all(b"+");
        // Run-length encoding (`c*N`: N - 29 more of c).
        let mut out = Vec::new();
        let mut it = buf[1..buf.len() - 3].iter();
        while let Some(&b) = it.next() {
            if b == b'*' {
                let n = *it.next().unwrap() - 29;
                let last = *out.last().unwrap();
                out.extend(std::iter::repeat_n(last, n as usize));
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).unwrap()
    }
}

fn hex64(v: u64) -> String {
    v.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves `mock` on one end of a socket pair, on a thread of its own; gdb's
/// end, and the thread that returns how the session ended and the mock.
fn serve_mock(mock: Mock) -> (Client, std::thread::JoinHandle<(Ended, Mock)>) {
    let (a, b) = UnixStream::pair().unwrap();
    let t = std::thread::spawn(move || {
        let mut m = mock;
        let r = serve(&mut m, Box::new(a));
        (r.unwrap(), m)
    });
    let c = Client(b);
    c.0.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    (c, t)
}

#[test]
fn a_session_packet_by_packet() {
    let mut x = [[0u64; 32]; 2];
    x[1][10] = 0x1122_3344_5566_7788;
    let mock = Mock {
        x,
        pc: [0x8000_0000; 2],
        mem: (0..0x10000).map(|i| i as u8).collect(),
        script: vec![0x10010, 0x10020, 0x10030],
        accesses: Vec::new(),
        asked: Vec::new(),
    };
    let (mut c, t) = serve_mock(mock);
    let sup = c.send("qSupported:swbreak+;hwbreak+;xmlRegisters=i386");
    assert!(sup.contains("qXfer:features:read+"), "target description offered: {sup}");
    let xml = c.send("qXfer:features:read:target.xml:0,ffff");
    assert!(xml.starts_with('l') || xml.starts_with('m'));
    assert!(xml.contains("org.gnu.gdb.riscv.cpu"), "{xml}");
    // Threads: both harts.
    assert_eq!(c.send("qfThreadInfo"), "m01,02");
    assert_eq!(c.send("qsThreadInfo"), "l");
    // Registers of thread 2: a0 (x10) in `g`, mhartid and priv one by one.
    assert_eq!(c.send("Hg2"), "OK");
    let g = c.send("g");
    assert_eq!(&g[10 * 16..11 * 16], hex64(0x1122_3344_5566_7788));
    assert_eq!(&g[32 * 16..33 * 16], hex64(0x8000_0000), "pc is the 33rd register");
    assert_eq!(c.send(&format!("p{:x}", 65 + addr::MHARTID as usize)), hex64(1));
    assert_eq!(c.send(&format!("p{:x}", 65 + 4096)), "01");
    // A register written with P is read back.
    assert_eq!(c.send(&format!("P5={}", hex64(0xabc))), "OK");
    assert_eq!(c.send("p5"), hex64(0xabc));
    // Memory: read, write, and an address outside RAM refused.
    assert_eq!(c.send("m10004,4"), "04050607");
    assert_eq!(c.send("M10004,2:beef"), "OK");
    assert_eq!(c.send("m10004,4"), "beef0607");
    assert!(c.send("m100,4").starts_with('E'));
    // A software breakpoint at the second scripted address, a hardware
    // one at the third: the machine is asked to continue with both.
    assert_eq!(c.send("Z0,10020,4"), "OK");
    assert_eq!(c.send("Z1,10030,2"), "OK");
    let stop = c.send("vCont;c");
    assert!(stop.starts_with("T05") && stop.contains("thread:02") && stop.contains("swbreak"), "{stop}");
    assert_eq!(c.send("z0,10020,4"), "OK");
    // A step of thread 2 alone.
    let stop = c.send("vCont;s:2");
    assert!(stop.starts_with("T05") && stop.contains("thread:02"), "{stop}");
    let stop = c.send("vCont;c");
    assert!(stop.starts_with("T05"), "{stop}");
    // No breakpoint left ahead: the machine ends, gdb hears an exit.
    assert_eq!(c.send("z1,10030,2"), "OK");
    assert_eq!(c.send("vCont;c"), "W00");
    let (end, m) = t.join().unwrap();
    assert_eq!(end, Ended::MachineEnded(0));
    assert_eq!(
        m.asked,
        ["continue {10020, 10030} 0 watches", "step 1", "continue {10030} 0 watches", "continue {} 0 watches"],
        "what the machine was asked"
    );
}

/// `watch`, `rwatch` and `awatch` as gdb sends them (Z2, Z3, Z4 with a
/// length): the machine is asked to continue with them, and the first
/// access that hits one stops hart 1 with gdb's `watch`/`rwatch`/`awatch`
/// stop reply naming the watch's address.
#[test]
fn watchpoints_packet_by_packet() {
    let mock = Mock {
        x: [[0; 32]; 2],
        pc: [0; 2],
        mem: vec![0; 16],
        script: vec![],
        accesses: vec![
            (0x2000, 8, true, false), // a read next to the watched bytes
            (0x1004, 4, true, false), // a read of the write-watched word: no stop
            (0x1006, 1, false, true), // a byte store inside it: stop
            (0x3ffc, 8, true, false), // a read overlapping the rwatch by 4 bytes
            (0x5000, 8, true, true),  // an AMO on the awatch
        ],
        asked: Vec::new(),
    };
    let (mut c, t) = serve_mock(mock);
    c.send("qSupported:swbreak+;hwbreak+");
    assert_eq!(c.send("Z2,1004,4"), "OK");
    assert_eq!(c.send("Z3,4000,8"), "OK");
    assert_eq!(c.send("Z4,5000,8"), "OK");
    let stop = c.send("vCont;c");
    assert!(stop.starts_with("T05") && stop.contains("thread:02") && stop.contains("watch:1004"), "{stop}");
    let stop = c.send("vCont;c");
    assert!(stop.contains("rwatch:4000"), "{stop}");
    let stop = c.send("vCont;c");
    assert!(stop.contains("awatch:5000"), "{stop}");
    // Removed, a watchpoint is no longer passed to the machine.
    assert_eq!(c.send("z2,1004,4"), "OK");
    let again = c.send("z2,1004,4");
    assert_ne!(again, "OK", "a watchpoint removed twice");
    assert_eq!(c.send("vCont;c"), "W00");
    let (_, m) = t.join().unwrap();
    assert_eq!(
        m.asked,
        ["continue {} 3 watches", "continue {} 3 watches", "continue {} 3 watches", "continue {} 2 watches"]
    );
}

#[test]
fn watch_ranges_overlap_and_kinds() {
    let w = Watch { addr: 0x1000, len: 8, kind: WatchKind::Write };
    assert!(w.hit(0x1000, 1, false, true));
    assert!(w.hit(0x0ffc, 8, false, true), "a store straddling the start");
    assert!(w.hit(0x1007, 8, false, true), "a store straddling the end");
    assert!(!w.hit(0x1008, 8, false, true), "the byte after");
    assert!(!w.hit(0x0ff8, 8, false, true), "the bytes before");
    assert!(!w.hit(0x1000, 8, true, false), "a read of a write watch");
    assert!(w.hit(0x1000, 8, true, true), "an AMO writes");
    let r = Watch { addr: 0x1000, len: 8, kind: WatchKind::Read };
    assert!(r.hit(0x1000, 4, true, false) && !r.hit(0x1000, 4, false, true));
    let a = Watch { addr: 0x1000, len: 8, kind: WatchKind::Access };
    assert!(a.hit(0x1000, 4, true, false) && a.hit(0x1000, 4, false, true));
    let top = Watch { addr: u64::MAX - 3, len: 4, kind: WatchKind::Access };
    assert!(top.hit(u64::MAX, 1, true, false), "the last byte of the address space");
    assert!(!top.hit(0, 1, true, false), "no wrap-around to 0");
}

#[test]
fn detach_and_kill_end_the_session() {
    for (packet, want) in [("D", Ended::Detached), ("k", Ended::Killed)] {
        let (a, b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let mut m =
                Mock { x: [[0; 32]; 2], pc: [0; 2], mem: vec![0; 16], script: vec![], accesses: vec![], asked: vec![] };
            serve(&mut m, Box::new(a)).unwrap()
        });
        let mut c = Client(b);
        c.send("qSupported:swbreak+");
        // `D` is answered; `k` is not (the stub just ends).
        if packet == "D" {
            assert_eq!(c.send(packet), "OK");
        } else {
            let sum = packet.bytes().fold(0u8, |a, b| a.wrapping_add(b));
            write!(c.0, "${packet}#{sum:02x}").unwrap();
        }
        assert_eq!(t.join().unwrap(), want, "{packet}");
    }
}

#[test]
fn addresses_parse_or_are_refused() {
    assert_eq!("tcp:127.0.0.1:1234".parse::<GdbAddr>().unwrap(), GdbAddr::Tcp("127.0.0.1:1234".into()));
    assert_eq!("tcp::1234".parse::<GdbAddr>().unwrap(), GdbAddr::Tcp("0.0.0.0:1234".into()));
    assert_eq!("tcp:[::1]:1234".parse::<GdbAddr>().unwrap(), GdbAddr::Tcp("[::1]:1234".into()));
    assert_eq!("unix:gdb.sock".parse::<GdbAddr>().unwrap(), GdbAddr::Unix("gdb.sock".into()));
    assert_eq!("/tmp/g.sock".parse::<GdbAddr>().unwrap(), GdbAddr::Unix("/tmp/g.sock".into()));
    for bad in ["", "1234", "tcp:1234", "tcp:host:port", "tcp:host:70000", "unix:", "gdb.sock"] {
        let e = bad.parse::<GdbAddr>().unwrap_err();
        assert!(matches!(e, GdbError::BadAddress(_)), "{bad}: {e}");
    }
}

#[test]
fn an_existing_socket_path_is_not_taken_over() {
    let p = std::env::temp_dir().join(format!("strata-gdb-exists-{}", std::process::id()));
    std::fs::write(&p, b"keep").unwrap();
    let e = Listener::bind(&GdbAddr::Unix(p.clone())).err().expect("bind over a file");
    assert!(matches!(e, GdbError::SocketExists(_)), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"keep");
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn register_numbers_follow_gdb() {
    assert_eq!(reg_of_regnum(0), Some(Reg::X(0)));
    assert_eq!(reg_of_regnum(31), Some(Reg::X(31)));
    assert_eq!(reg_of_regnum(32), Some(Reg::Pc));
    assert_eq!(reg_of_regnum(33), Some(Reg::F(0)));
    assert_eq!(reg_of_regnum(64), Some(Reg::F(31)));
    assert_eq!(reg_of_regnum(65 + 0x300), Some(Reg::Csr(addr::MSTATUS)));
    assert_eq!(reg_of_regnum(4161), Some(Reg::Priv));
    assert_eq!(reg_of_regnum(4162), None);
    // Every CSR in the description once, at 65 + its number.
    let xml = target_xml();
    for (name, n) in CSRS {
        let tag = format!("<reg name=\"{name}\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>", 65 + *n as usize);
        assert_eq!(xml.matches(&tag).count(), 1, "{name}");
    }
    let mut names: Vec<_> = CSRS.iter().map(|c| c.1).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CSRS.len(), "a CSR listed twice");
}

#[test]
fn a_unix_socket_is_owner_only_and_removed() {
    use std::os::unix::fs::PermissionsExt;
    let p = std::env::temp_dir().join(format!("strata-gdb-mode-{}.sock", std::process::id()));
    let l = Listener::bind(&GdbAddr::Unix(p.clone())).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    drop(l);
    assert!(!p.exists(), "the socket file outlived its listener");
}

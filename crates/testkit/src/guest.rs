//! Tiny guest programs for tests and benchmarks of both machines, built
//! with [`crate::asm`] from the one encoding table.

use crate::asm::{elf, reg, Asm, LOADS, STORES};
use strata_arch::csr::addr;
use strata_arch::isa::{encode, Op};
use strata_arch::sbi::{ext, fid};

/// Where the board a guest runs on keeps its RAM and devices. Tests fill
/// it from the board's one home (today `strata_platform::fdt`,
/// `strata_platform::machine::RAM_BASE` and
/// `strata_platform::virtio::VIRTIO_MMIO_BASE`); this crate restates no
/// address.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    pub ram: u64,
    pub uart: u64,
    /// The "sifive,test" syscon: a 32-bit store of `poweroff` there powers
    /// the board off.
    pub syscon: u64,
    pub poweroff: u32,
    pub rtc: u64,
    pub plic: u64,
    pub clint: u64,
    /// The first virtio-mmio window.
    pub virtio: u64,
}

/// A guest that walks `pages` pages from `base` forever, one 8-byte
/// load and store per page (a counter per page), `stride` bytes apart. It
/// keeps its TLB entries hot: what invalidation benchmarks and tests need.
/// Loaded at `ram`.
pub fn page_walker(ram: u64, base: u64, pages: u64, stride: u64) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    let outer = a.here();
    a.li(T0, base).li(T1, pages);
    let inner = a.here();
    a.ld(T2, T0, 0).addi(T2, T2, 1).sd(T2, T0, 0);
    a.li(S0, stride).add(T0, T0, S0).addi(T1, T1, -1).bne(T1, ZERO, inner);
    a.j(outer);
    elf(&a.bytes(), ram)
}

/// Where a [`hostile`] guest runs, which decides its trap CSRs and how it
/// ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// In VS-mode under Strata's hypervisor: `stvec`/`sepc`/`sret`, ends
    /// with SBI SRST shutdown.
    Vs,
    /// In M-mode on the bare board with no firmware: `mtvec`/`mepc`/`mret`,
    /// ends by writing the power-off value to the syscon.
    M,
}

/// A hostile guest, a deterministic function of `seed`: `actions` random
/// things a guest should not be able to hurt anyone with, then a clean
/// power-off. It calls the SBI (`ecall`) with random extensions, functions
/// and arguments (not SRST, nor HSM stop or suspend of itself, which would
/// end the run early; it may start its second vCPU at a random address);
/// loads and stores at random physical addresses, in and out of its RAM,
/// device windows and holes, of every width, aligned or not (not at the
/// syscon, whose writes may power it off, nor into its own code); reads and
/// writes random CSRs (but not the handful that would stop its trap
/// handler from working: status, trap vector and pc, `satp`, PMP); runs
/// privileged and hypervisor instructions (MRET in VS-mode, HFENCE,
/// HLV/HSV, ...), and random instruction words of the opcodes that neither
/// jump nor store. Its trap handler skips whatever faulted.
///
/// The guest is a program generator driven by its seed (xorshift64), as
/// `strata-difftest`'s programs are: the tests that run it choose seeds,
/// print them, and take one from `STRATA_SEED` (`crate::prop`).
pub fn hostile(seed: u64, actions: usize, ram_bytes: u64, level: Level, board: &Board) -> Vec<u8> {
    use reg::*;
    let ram = board.ram;
    const CODE_MAX: u64 = 0x10_0000;
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // (epc, tvec, the return instruction) of the level.
    let (epc, tvec, ret) = match level {
        Level::Vs => (addr::SEPC, addr::STVEC, Op::SRET),
        Level::M => (addr::MEPC, addr::MTVEC, Op::MRET),
    };
    let mut a = Asm::new();
    let start = a.here();
    a.j(start + 24); // over the handler
                     // handler (at RAM + 4): epc += 4; return. Only 32-bit words fault here.
    a.csr(Op::CSRRS, T0, epc, ZERO).addi(T0, T0, 4).csr(Op::CSRRW, ZERO, epc, T0).insn(ret, 0, 0, 0, 0);
    a.addi(ZERO, ZERO, 0); // nop: the handler ends at +20, so `start + 24` is here
    a.li(T0, ram + 4).csr(Op::CSRRW, ZERO, tvec, T0);
    let eids = [
        ext::BASE,
        ext::TIME,
        ext::IPI,
        ext::RFENCE,
        ext::HSM,
        ext::DBCN,
        ext::LEGACY_PUTCHAR,
        ext::LEGACY_GETCHAR,
        0x0a00_0000, // no such extension
    ];
    for _ in 0..actions {
        let r = rnd();
        // An address: mostly where it hurts.
        let addr = |r: u64| -> u64 {
            let k = r % 16;
            let off = (r >> 8) & 0xfff;
            match k {
                0 => r.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                1 => ram + ram_bytes + off,               // just past RAM
                2 => ram.wrapping_sub(8 + off),           // just below RAM
                3 => board.plic + ((r >> 8) & 0x3f_ffff), // PLIC
                4 => board.uart + (r >> 8) % 8,           // UART
                5 => board.virtio + ((r >> 8) & 0x7fff),  // virtio windows (none here)
                6 => board.rtc + off,                     // RTC
                7 => board.clint + ((r >> 8) & 0xffff),   // where a CLINT would be
                8 => 1 << (30 + (r >> 8) % 34),           // far away
                9 => u64::MAX - off,
                10 => off,                                                   // page zero
                _ => ram + CODE_MAX + (r >> 8) % (ram_bytes - CODE_MAX - 8), // its own data
            }
        };
        match r % 8 {
            0 | 1 => {
                // An SBI call.
                let eid = if r >> 60 == 0 { rnd() } else { eids[(r >> 8) as usize % eids.len()] };
                let mut f = (r >> 16) % 8;
                if eid == ext::HSM && (f == fid::HSM_HART_STOP || f == fid::HSM_HART_SUSPEND) {
                    f = fid::HSM_HART_GET_STATUS; // instead of stopping itself
                }
                a.li(A7, eid).li(A6, if r >> 59 & 1 == 0 { f } else { rnd() });
                for reg in [A0, A1, A2, A3, A4, A5] {
                    let v = match rnd() % 4 {
                        0 => rnd() % 4,
                        1 => addr(rnd()),
                        2 => rnd(),
                        _ => u64::MAX,
                    };
                    a.li(reg, v);
                }
                a.ecall();
            }
            2 | 3 => {
                let at = addr(r >> 3);
                let op = LOADS[(r >> 40) as usize % LOADS.len()];
                a.li(T1, at).load(op, A0, T1, 0);
            }
            4 => {
                let at = addr(r >> 3);
                let syscon = (board.syscon..board.syscon + 0x1000).contains(&at);
                let code = (ram..ram + CODE_MAX).contains(&at);
                if !syscon && !code {
                    a.li(T1, at).li(A0, rnd()).store(STORES[(r >> 40) as usize % 4], A0, T1, 0);
                }
            }
            5 => {
                // A CSR: read any, write any but those the handler needs.
                let csr = (r >> 8) as u16 & 0xfff;
                let keep = [addr::SSTATUS, addr::STVEC, addr::SEPC, addr::SATP, addr::MSTATUS, addr::MTVEC, addr::MEPC];
                let pmp = (addr::PMPCFG0..=addr::PMPADDR63).contains(&csr);
                if r >> 40 & 1 == 0 || keep.contains(&csr) || pmp {
                    a.csr(Op::CSRRS, A0, csr, ZERO);
                } else {
                    let op = [Op::CSRRW, Op::CSRRS, Op::CSRRC][(r >> 41) as usize % 3];
                    a.li(A1, rnd()).csr(op, A0, csr, A1);
                }
            }
            6 => {
                // Instructions VS-mode may not run, or only harmlessly.
                let words = [
                    // mret (legal in M: a nop there)
                    if level == Level::Vs { encode(Op::MRET, 0, 0, 0, 0) } else { encode(Op::ADDI, 0, 0, 0, 0) },
                    encode(Op::HFENCE_VVMA, 0, 0, 0, 0),
                    encode(Op::HFENCE_GVMA, 0, 0, 0, 0),
                    encode(Op::HLV_D, A0, T1, 0, 0),
                    encode(Op::HSV_D, 0, T1, A0, 0),
                    encode(Op::EBREAK, 0, 0, 0, 0),
                    encode(Op::SFENCE_VMA, 0, 0, 0, 0),
                    encode(Op::FENCE_I, 0, 0, 0, 0),
                    // DRET (the debug specification's; Strata has no debug
                    // mode, so it is illegal everywhere and not in the table).
                    0x7b20_0073,
                    0x0000_0000, // the all-zero illegal word
                    0xffff_ffff, // the all-ones illegal word
                ];
                a.li(T1, addr(r >> 3)).word(words[(r >> 8) as usize % words.len()]);
            }
            _ => {
                // A random word of a major opcode (bits 6..0; Unpriv. Table
                // 24.1) that neither jumps nor stores, assigned or not.
                let ops = [
                    0x03u32, 0x07, 0x0b, 0x13, 0x1b, 0x2b, 0x33, 0x37, 0x3b, 0x43, 0x47, 0x4b, 0x4f, 0x53, 0x57, 0x5b,
                    0x77, 0x7b,
                ];
                let op = ops[(r >> 8) as usize % ops.len()];
                let mut w = (rnd() as u32 & !0x7f) | op;
                if (w >> 7) & 31 == T0 {
                    w &= !(31 << 7); // leave the handler's register alone
                }
                a.word(w);
            }
        }
    }
    match level {
        Level::Vs => a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0),
        Level::M => a.li(T1, board.syscon).li(A0, board.poweroff as u64).store(Op::SW, A0, T1, 0),
    };
    let end = a.here();
    a.j(end);
    assert!((a.bytes().len() as u64) < CODE_MAX, "the program fits its code area");
    elf(&a.bytes(), ram)
}

/// A guest that checks the SBI debug console's buffer rules (SBI 2.0
/// §12.1) and reports on the console itself, without branches: it writes
/// `text` with `console_write`, then prints, with `console_write_byte`,
/// `'I' + error` and `'0' + value` of that call, then `'I' + error` of a
/// call with the same low address but a non-zero `base_addr_hi`, and of one
/// whose buffer lies outside its RAM; then shuts down. Expected output:
/// `text`, `I`, `'0' + text.len()`, `F`, `F` (`F` = `'I'` - 3,
/// SBI_ERR_INVALID_PARAM). Loaded at `ram`.
pub fn dbcn_probe(ram: u64, text: &str) -> Vec<u8> {
    use reg::*;
    let msg = ram + 0x800;
    assert!(text.len() < 10);
    let mut a = Asm::new();
    let write_byte_of = |a: &mut Asm, from: u32, base: i32| {
        a.addi(A0, from, base).li(A7, ext::DBCN).li(A6, fid::DBCN_CONSOLE_WRITE_BYTE).ecall();
    };
    let write = |a: &mut Asm, len: u64, lo: u64, hi: u64| {
        a.li(A0, len).li(A1, lo).li(A2, hi).li(A7, ext::DBCN).li(A6, fid::DBCN_CONSOLE_WRITE).ecall();
    };
    write(&mut a, text.len() as u64, msg, 0);
    a.add(S0, A0, ZERO).add(S1, A1, ZERO);
    write_byte_of(&mut a, S0, 'I' as i32);
    write_byte_of(&mut a, S1, '0' as i32);
    // The same low half, a high half of 1.
    write(&mut a, text.len() as u64, msg, 1);
    write_byte_of(&mut a, A0, 'I' as i32);
    // Outside RAM.
    write(&mut a, 4, 0x1000, 0);
    write_byte_of(&mut a, A0, 'I' as i32);
    a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
    let end = a.here();
    a.j(end);
    let mut code = a.bytes();
    assert!(code.len() <= 0x800);
    code.resize(0x800, 0);
    code.extend_from_slice(text.as_bytes());
    elf(&code, ram)
}

/// The 16550's line status register and its data-ready bit (offset 5, bit
/// 0, in the register map every 16550 shares).
const UART_LSR: i32 = 5;
const UART_LSR_DR: i32 = 1;

/// A guest that echoes what its UART receives until a `q` (echoed too),
/// then shuts down with SBI SRST: console input made visible.
pub fn uart_echo(board: &Board) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, board.uart);
    let top = a.here();
    // Wait for LSR.DR.
    a.load(Op::LBU, T1, T0, UART_LSR).andi(T1, T1, UART_LSR_DR).xori(T1, T1, UART_LSR_DR).bne(T1, ZERO, top);
    a.load(Op::LBU, A0, T0, 0).sb(A0, T0, 0);
    a.li(T1, b'q' as u64).sub(T1, A0, T1).bne(T1, ZERO, top);
    a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), board.ram)
}

/// A guest that writes `text` to the UART byte by byte (MMIO stores, which
/// a hypervisor emulates) and shuts down with SBI SRST.
pub fn uart_hello(board: &Board, text: &str) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, board.uart);
    for b in text.bytes() {
        a.li(T1, b as u64).sb(T1, T0, 0);
    }
    a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), board.ram)
}

/// A guest linked and started at `addr` (in its RAM) that counts `n` down
/// in a loop, then shuts down with SBI SRST: code at a known place, run
/// often enough to be compiled.
pub fn countdown(addr: u64, n: u64) -> Vec<u8> {
    use reg::*;
    let mut a = Asm::new();
    a.li(T0, n);
    let top = a.here();
    a.addi(T0, T0, -1).bne(T0, ZERO, top);
    a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), addr)
}

/// A guest that checks which counters its user programs may read (issue 12
/// item 3): from VS-mode it reads `time` itself, then runs short VU-mode
/// snippets that read `time`, `cycle` or `instret` and `ecall` back, first
/// with `scounteren` as the hypervisor left it at reset, then after setting
/// it to 0 and to TM alone. Its trap handler prints `'A' + scause` on the
/// SBI debug console: `I` for the snippet's ecall (8, from U-mode), `C` for
/// an illegal instruction (2); it skips a faulting read and returns to the
/// snippet, and after the ecall goes on with the next case, printing `|`
/// between cases. On a bare machine (scounteren = CY|TM|IR, as OpenSBI
/// leaves it) the output is `V|I|I|I|CI|I|CI`. Loaded at `ram`.
pub fn counter_probe(ram: u64) -> Vec<u8> {
    use reg::*;
    use strata_arch::csr::mstatus as sstatus;
    let print = |a: &mut Asm, from: u32, plus: i32| {
        a.addi(A0, from, plus).li(A7, ext::DBCN).li(A6, fid::DBCN_CONSOLE_WRITE_BYTE).ecall();
    };
    let mut a = Asm::new();
    a.word(0); // `j main`, patched below
    let sret_at = a.here();
    a.insn(Op::SRET, 0, 0, 0, 0);
    // The handler: print 'A' + scause; sepc += 4; back to the snippet
    // unless this was its ecall, else on to the case's continuation in s1.
    let handler = a.here();
    a.csr(Op::CSRRS, T0, addr::SCAUSE, ZERO);
    print(&mut a, T0, 'A' as i32);
    a.csr(Op::CSRRS, T1, addr::SEPC, ZERO).addi(T1, T1, 4).csr(Op::CSRRW, ZERO, addr::SEPC, T1);
    a.addi(T1, T0, -8).bne(T1, ZERO, sret_at);
    a.insn(Op::JALR, ZERO, S1, 0, 0);
    // The VU-mode snippets: read a counter, ecall.
    let snippet = |a: &mut Asm, csr: u16| {
        let at = a.here();
        a.csr(Op::CSRRS, T2, csr, ZERO).ecall();
        at
    };
    let u_time = snippet(&mut a, addr::TIME);
    let u_cycle = snippet(&mut a, addr::CYCLE);
    let u_instret = snippet(&mut a, addr::INSTRET);
    let main = a.here();
    let mut jump = Asm::new();
    jump.insn(Op::JAL, ZERO, 0, 0, main);
    let patched: Vec<u32> = std::iter::once(jump.words()[0]).chain(a.words()[1..].iter().copied()).collect();
    let mut a = Asm::new();
    for w in patched {
        a.word(w);
    }
    a.li(T0, ram + handler as u64).csr(Op::CSRRW, ZERO, addr::STVEC, T0);
    a.csr(Op::CSRRS, T2, addr::TIME, ZERO);
    print(&mut a, ZERO, 'V' as i32);
    let cases =
        [(None, u_time), (None, u_cycle), (None, u_instret), (Some(0), u_time), (Some(2), u_time), (None, u_cycle)];
    for (scounteren, at) in cases {
        print(&mut a, ZERO, '|' as i32);
        if let Some(v) = scounteren {
            a.li(T0, v).csr(Op::CSRRW, ZERO, addr::SCOUNTEREN, T0);
        }
        a.li(T0, ram + at as u64).csr(Op::CSRRW, ZERO, addr::SEPC, T0);
        // To VU-mode: clear sstatus.SPP.
        a.li(T0, sstatus::SPP).csr(Op::CSRRC, ZERO, addr::SSTATUS, T0);
        // s1 = the instruction after the sret: auipc s1, 0; addi s1, s1, 12.
        a.insn(Op::AUIPC, S1, 0, 0, 0).addi(S1, S1, 12).insn(Op::SRET, 0, 0, 0, 0);
    }
    a.li(A1, 0).sbi(ext::SRST, fid::SRST_SYSTEM_RESET, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), ram)
}

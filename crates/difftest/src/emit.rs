//! Renders a [`Program`] as one self-contained assembly file: runtime
//! (start-up, M-mode trap handler, checkpoint dump, power-off) + the
//! generated instructions. Build with [`LINK_LD`] and
//! `riscv64-unknown-elf-gcc -march=rv64gc -mabi=lp64d -nostdlib -static`
//! (the text enables Zba/Zbb/Zbc/Zbs itself; Zicond, which binutils 2.40
//! lacks, is written with `.insn`).

use crate::gen::{Head, Item, Program, BASE0_OFF, BASE1_OFF, LOOP_REG, SANDBOX_SIZE};
use std::fmt::Write;
use strata_arch::csr::mstatus;

pub const LINK_LD: &str = "\
/* strata-difftest: everything in RAM at 0x8000_0000 */
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS
{
  . = 0x80000000;
  .text : { *(.text.init) *(.text .text.*) }
  . = ALIGN(4096);
  .rodata : { *(.rodata .rodata.*) }
  . = ALIGN(4096);
  .data : { *(.data .data.*) }
  /* Fixed address, so that removing or adding code (reduction) does not
     move the sandbox and change address-derived register values. */
  . = 0x80400000;
  .bss (NOLOAD) : { *(.bss .bss.*) }
  _end = .;
}
";

/// Trap-log capacity per checkpoint interval (further traps are counted).
pub const LOG_CAP: u64 = 32;
/// Total traps after which the run is abandoned (prints FATAL).
pub const MAX_TRAPS: u64 = 20000;

// Runtime area layout (offsets from gp).
const RT_TSAVE: u64 = 0; // 3 slots
const RT_TCOUNT: u64 = 24;
const RT_LOGN: u64 = 32;
const RT_CPNUM: u64 = 40;
const RT_RA: u64 = 48;
const RT_TSAVE3: u64 = 56;
const RT_X: u64 = 64; // 32 slots
const RT_F: u64 = 320; // 32 slots
const RT_LOG: u64 = 576; // LOG_CAP entries of 32 bytes
const RT_SIZE: u64 = 2048;

/// Assembly for a whole program. `note` goes into the header comment.
pub fn emit(p: &Program, note: &str) -> String {
    let mut s = String::new();
    writeln!(s, "# strata-difftest program, seed {:#018x}", p.seed).unwrap();
    for l in note.lines() {
        writeln!(s, "# {l}").unwrap();
    }
    s.push_str(&runtime_prologue(p));
    s.push_str("\n# ---- generated code ----\n");
    let mut labels = 0usize;
    emit_items(&p.items, &mut s, &mut labels);
    s.push_str("# ---- end of generated code ----\n");
    s.push_str("    sd x1, 72(gp)\n    jal x1, __cp\n    jal x1, __final\n");
    s.push_str(RUNTIME_ROUTINES);
    s
}

pub fn emit_items(items: &[Item], s: &mut String, labels: &mut usize) {
    for it in items {
        match it {
            Item::Op(text) => {
                for l in text.lines() {
                    writeln!(s, "    {l}").unwrap();
                }
            }
            Item::Skip { head, body } => {
                *labels += 1;
                let l = format!(".Lskip{}", *labels);
                match head {
                    Head::Direct(h) => writeln!(s, "    {h}, {l}").unwrap(),
                    Head::Indirect { rd, tmp, off } => {
                        writeln!(s, "    la x{tmp}, {l}\n    jalr x{rd}, {off}(x{tmp})").unwrap()
                    }
                }
                emit_items(body, s, labels);
                writeln!(s, "{l}:").unwrap();
            }
            Item::Loop { count, body } => {
                *labels += 1;
                let l = format!(".Lloop{}", *labels);
                writeln!(s, "    li x{LOOP_REG}, {count}\n{l}:").unwrap();
                emit_items(body, s, labels);
                writeln!(s, "    addi x{LOOP_REG}, x{LOOP_REG}, -1\n    bnez x{LOOP_REG}, {l}").unwrap();
            }
            Item::Checkpoint => {
                s.push_str("    sd x1, 72(gp)\n    jal x1, __cp\n    ld x1, 72(gp)\n");
            }
        }
    }
}

fn runtime_prologue(p: &Program) -> String {
    let mut s = String::new();
    write!(
        s,
        r#"
    .option norelax
    .option arch, +zba, +zbb, +zbc, +zbs, +zfhmin
    .section .text.init, "ax"
    .globl _start
_start:
    la gp, __rt
    la t0, __trap
    csrw mtvec, t0
    mv t0, gp
    li t1, {rt_words}
1:  sd x0, 0(t0)
    addi t0, t0, 8
    addi t1, t1, -1
    bnez t1, 1b
    # sandbox <- splitmix64 stream from the program's memory seed
    la t0, __sandbox
    li t1, {sb_words}
    li t2, {mem_seed}
    li t3, 0x9e3779b97f4a7c15
    li t4, 0xbf58476d1ce4e5b9
    li t5, 0x94d049bb133111eb
2:  add t2, t2, t3
    srli a1, t2, 30
    xor a0, t2, a1
    mul a0, a0, t4
    srli a1, a0, 27
    xor a0, a0, a1
    mul a0, a0, t5
    srli a1, a0, 31
    xor a0, a0, a1
    sd a0, 0(t0)
    addi t0, t0, 8
    addi t1, t1, -1
    bnez t1, 2b
    li t0, {fs_initial:#x}          # mstatus.FS = Initial
    csrs mstatus, t0
    csrwi fcsr, 0
    csrwi frm, {frm}
"#,
        rt_words = RT_SIZE / 8,
        sb_words = SANDBOX_SIZE / 8,
        mem_seed = p.mem_seed as i64,
        frm = p.frm,
        fs_initial = mstatus::FS_INITIAL,
    )
    .unwrap();
    for (i, v) in p.init_f.iter().enumerate() {
        writeln!(s, "    li t0, {}\n    fmv.d.x f{i}, t0", *v as i64).unwrap();
    }
    writeln!(s, "    la x8, __sandbox + {BASE0_OFF}\n    la x9, __sandbox + {BASE1_OFF}").unwrap();
    for (i, v) in p.init_x.iter().enumerate() {
        if matches!(i, 0 | 3 | 8 | 9) {
            continue;
        }
        writeln!(s, "    li x{i}, {}", *v as i64).unwrap();
    }
    s
}

/// Trap handler, checkpoint dump and power-off. Output (UART):
///   CP <n:4 hex>
///   X <i:2 hex> <value:16 hex>      x1..x31 (x3 is the runtime pointer: 0)
///   F <i:2 hex> <value:16 hex>      f0..f31, raw 64 bits
///   FCSR <8 hex>
///   MEM <hash:16 hex>               whole 64 KiB sandbox
///   TRAPS <n:8 hex>                 traps since the previous checkpoint
///   T <mcause> <mtval> <mepc> <insn:8 hex>   first LOG_CAP of them
/// and at the end, per 4 KiB of sandbox `M <i:2 hex> <hash>`, then `END`.
const RUNTIME_ROUTINES: &str = r#"
    .section .text
    .balign 4
# ---- M-mode trap handler: log mcause/mtval/mepc, resume after the insn ----
__trap:
    sd t0, 0(gp)
    sd t1, 8(gp)
    sd t2, 16(gp)
    sd t3, 56(gp)
    ld t0, 24(gp)
    addi t0, t0, 1
    sd t0, 24(gp)
    li t1, MAX_TRAPS
    bgeu t0, t1, __fatal
    # t3 = instruction bits at mepc (16 or 32), t2 = address after it
    csrr t2, mepc
    lhu t3, 0(t2)
    andi t1, t3, 3
    addi t2, t2, 2
    xori t1, t1, 3
    bnez t1, 1f
    lhu t1, 0(t2)
    slli t1, t1, 16
    or t3, t3, t1
    addi t2, t2, 2
1:  ld t0, 32(gp)
    li t1, LOG_CAP
    bgeu t0, t1, 2f
    slli t1, t0, 5
    add t1, t1, gp
    sd t3, 600(t1)
    csrr t3, mcause
    sd t3, 576(t1)
    csrr t3, mtval
    sd t3, 584(t1)
    csrr t3, mepc
    sd t3, 592(t1)
2:  addi t0, t0, 1
    sd t0, 32(gp)
    csrw mepc, t2
    ld t0, 0(gp)
    ld t1, 8(gp)
    ld t2, 16(gp)
    ld t3, 56(gp)
    mret

__fatal:
    la a0, __s_fatal
    jal x5, __puts
    j __poweroff

# ---- UART: putc(a0) clobbers t1,t2; returns via x1 ----
__putc:
    li t1, 0x10000000
1:  lbu t2, 5(t1)
    andi t2, t2, 0x20
    beqz t2, 1b
    sb a0, 0(t1)
    ret
# puthex(a0 = value, a1 = digits): clobbers a0-a3,t1,t2,x1; returns via x5
__puthex:
    mv a2, a0
    mv a3, a1
1:  addi a3, a3, -1
    slli a0, a3, 2
    srl a0, a2, a0
    andi a0, a0, 15
    addi a0, a0, 48
    li t1, 58
    blt a0, t1, 2f
    addi a0, a0, 39
2:  jal x1, __putc
    bnez a3, 1b
    jr x5
# puts(a0 = string): clobbers a0,a2,t1,t2,x1; returns via x5
__puts:
    mv a2, a0
1:  lbu a0, 0(a2)
    beqz a0, 2f
    jal x1, __putc
    addi a2, a2, 1
    j 1b
2:  jr x5
# hash(a0 = start, a1 = bytes) -> a0; clobbers a0-a4
__hash:
    li a2, 0x6a09e667f3bcc908
    li a4, 0x9e3779b97f4a7c15
1:  ld a3, 0(a0)
    xor a2, a2, a3
    mul a2, a2, a4
    srli a3, a2, 29
    xor a2, a2, a3
    addi a0, a0, 8
    addi a1, a1, -8
    bnez a1, 1b
    mv a0, a2
    ret

# ---- checkpoint: caller saved x1 at 72(gp) and called with jal x1 ----
__cp:
    sd x2, 80(gp)
    sd x4, 96(gp)
    sd x5, 104(gp)
    sd x6, 112(gp)
    sd x7, 120(gp)
    sd x8, 128(gp)
    sd x9, 136(gp)
    sd x10, 144(gp)
    sd x11, 152(gp)
    sd x12, 160(gp)
    sd x13, 168(gp)
    sd x14, 176(gp)
    sd x15, 184(gp)
    sd x16, 192(gp)
    sd x17, 200(gp)
    sd x18, 208(gp)
    sd x19, 216(gp)
    sd x20, 224(gp)
    sd x21, 232(gp)
    sd x22, 240(gp)
    sd x23, 248(gp)
    sd x24, 256(gp)
    sd x25, 264(gp)
    sd x26, 272(gp)
    sd x27, 280(gp)
    sd x28, 288(gp)
    sd x29, 296(gp)
    sd x30, 304(gp)
    sd x31, 312(gp)
    fsd f0, 320(gp)
    fsd f1, 328(gp)
    fsd f2, 336(gp)
    fsd f3, 344(gp)
    fsd f4, 352(gp)
    fsd f5, 360(gp)
    fsd f6, 368(gp)
    fsd f7, 376(gp)
    fsd f8, 384(gp)
    fsd f9, 392(gp)
    fsd f10, 400(gp)
    fsd f11, 408(gp)
    fsd f12, 416(gp)
    fsd f13, 424(gp)
    fsd f14, 432(gp)
    fsd f15, 440(gp)
    fsd f16, 448(gp)
    fsd f17, 456(gp)
    fsd f18, 464(gp)
    fsd f19, 472(gp)
    fsd f20, 480(gp)
    fsd f21, 488(gp)
    fsd f22, 496(gp)
    fsd f23, 504(gp)
    fsd f24, 512(gp)
    fsd f25, 520(gp)
    fsd f26, 528(gp)
    fsd f27, 536(gp)
    fsd f28, 544(gp)
    fsd f29, 552(gp)
    fsd f30, 560(gp)
    fsd f31, 568(gp)
    sd x1, 48(gp)
    ld s2, 40(gp)
    addi s2, s2, 1
    sd s2, 40(gp)
    la a0, __s_cp
    jal x5, __puts
    mv a0, s2
    li a1, 4
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    # x registers
    li s2, 1
1:  la a0, __s_x
    jal x5, __puts
    mv a0, s2
    li a1, 2
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    slli s3, s2, 3
    add s3, s3, gp
    ld a0, 64(s3)
    li a1, 16
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    addi s2, s2, 1
    li s3, 32
    blt s2, s3, 1b
    # f registers
    li s2, 0
2:  la a0, __s_f
    jal x5, __puts
    mv a0, s2
    li a1, 2
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    slli s3, s2, 3
    add s3, s3, gp
    ld a0, 320(s3)
    li a1, 16
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    addi s2, s2, 1
    li s3, 32
    blt s2, s3, 2b
    la a0, __s_fcsr
    jal x5, __puts
    csrr a0, fcsr
    li a1, 8
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    la a0, __s_mem
    jal x5, __puts
    la a0, __sandbox
    li a1, SANDBOX_SIZE
    jal x1, __hash
    li a1, 16
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    # trap log
    la a0, __s_traps
    jal x5, __puts
    ld a0, 32(gp)
    li a1, 8
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    ld s4, 32(gp)
    li s3, LOG_CAP
    bleu s4, s3, 3f
    mv s4, s3
3:  addi s2, gp, 576
4:  beqz s4, 5f
    la a0, __s_t
    jal x5, __puts
    ld a0, 0(s2)
    li a1, 16
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    ld a0, 8(s2)
    li a1, 16
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    ld a0, 16(s2)
    li a1, 16
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    ld a0, 24(s2)
    li a1, 8
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    addi s2, s2, 32
    addi s4, s4, -1
    j 4b
5:  sd x0, 32(gp)
    ld x1, 48(gp)
    ld x2, 80(gp)
    ld x4, 96(gp)
    ld x5, 104(gp)
    ld x6, 112(gp)
    ld x7, 120(gp)
    ld x8, 128(gp)
    ld x9, 136(gp)
    ld x10, 144(gp)
    ld x11, 152(gp)
    ld x12, 160(gp)
    ld x13, 168(gp)
    ld x14, 176(gp)
    ld x15, 184(gp)
    ld x16, 192(gp)
    ld x17, 200(gp)
    ld x18, 208(gp)
    ld x19, 216(gp)
    ld x20, 224(gp)
    ld x21, 232(gp)
    ld x22, 240(gp)
    ld x23, 248(gp)
    ld x24, 256(gp)
    ld x25, 264(gp)
    ld x26, 272(gp)
    ld x27, 280(gp)
    ld x28, 288(gp)
    ld x29, 296(gp)
    ld x30, 304(gp)
    ld x31, 312(gp)
    ret

# ---- final: per-4KiB sandbox hashes, END, power off ----
__final:
    li s2, 0
1:  la a0, __s_m
    jal x5, __puts
    mv a0, s2
    li a1, 2
    jal x5, __puthex
    li a0, 32
    jal x1, __putc
    slli a0, s2, 12
    la a1, __sandbox
    add a0, a0, a1
    li a1, 4096
    jal x1, __hash
    li a1, 16
    jal x5, __puthex
    li a0, 10
    jal x1, __putc
    addi s2, s2, 1
    li s3, SANDBOX_SIZE / 4096
    blt s2, s3, 1b
    la a0, __s_end
    jal x5, __puts
__poweroff:
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
1:  j 1b

    .section .rodata
__s_cp:    .string "CP "
__s_x:     .string "X "
__s_f:     .string "F "
__s_fcsr:  .string "FCSR "
__s_mem:   .string "MEM "
__s_traps: .string "TRAPS "
__s_t:     .string "T "
__s_m:     .string "M "
__s_end:   .string "END\n"
__s_fatal: .string "FATAL too many traps\n"

    .section .bss
    .balign 4096
__sandbox: .skip SANDBOX_SIZE
    .balign 64
__rt:      .skip RT_SIZE
"#;

/// Constants used by the runtime text, as assembler symbols.
fn runtime_equates() -> String {
    format!(
        "    .equ MAX_TRAPS, {MAX_TRAPS}\n    .equ LOG_CAP, {LOG_CAP}\n    .equ SANDBOX_SIZE, {SANDBOX_SIZE}\n    .equ RT_SIZE, {RT_SIZE}\n"
    )
}

/// Full text including the equates (what gets written to disk).
pub fn emit_file(p: &Program, note: &str) -> String {
    let body = emit(p, note);
    // Put the equates right after the header comment block.
    let split = body.find("\n    .option").unwrap_or(0);
    let (head, rest) = body.split_at(split + 1);
    format!("{head}{}{rest}", runtime_equates())
}

// Keep the layout constants and the literal offsets in the text in sync.
const _: () = {
    assert!(RT_TSAVE == 0 && RT_TCOUNT == 24 && RT_LOGN == 32 && RT_CPNUM == 40 && RT_RA == 48 && RT_TSAVE3 == 56);
    assert!(RT_X == 64 && RT_F == 320 && RT_LOG == 576);
    assert!(RT_LOG + LOG_CAP * 32 <= RT_SIZE);
};

//! A basic-block JIT for x86-64 hosts.
//!
//! A *block* is a run of instructions from one 4 KiB page, compiled to host
//! code the first time control reaches its first instruction. It ends at a
//! branch or jump, at the page end, before a 32-bit instruction straddling
//! the page end, after an instruction that always leaves the block (ECALL,
//! MRET, a CSR write, ...) or after [`MAX_BLOCK_INSNS`] instructions, which
//! bounds how far a block overruns the run loop's budget.
//!
//! **What is compiled.** RV64I/M integer instructions become straight-line
//! x86 code: ALU ops and their immediate and W forms, LUI/AUIPC, MUL*, and
//! branches and jumps, which write `Hart::pc`; Zba/Zbb/Zbs and Zicond as
//! short x86 sequences (rotates, `bt*`, `cmov`, `bswap`), the counting and
//! carry-less operations of Zbb/Zbc as helper calls. The (up to) four guest
//! registers a block uses most live in r8-r11 for its length; the others
//! are operated on in `Hart::x`, and every exit, helper call and trap path
//! writes the cached ones back first. DIV/REM call small helpers.
//! Loads and stores probe the hart's TLB inline (its layout comes from
//! `Tlb::raw_layout`, RAM's from `GuestRam::raw_parts`) and access RAM
//! directly on a hit that stays in the page (and, for stores, whose page
//! holds no decoded code); anything else calls an `extern "C"` helper that
//! goes through the hart's own `load`/`store` (page-table walk, PMP, MMIO
//! and every fault written once, in `mem.rs`). Every other instruction
//! (CSR, FP, AMO, system) calls [`interp`], which runs it through
//! `Hart::execute`, exactly as the interpreter does.
//!
//! **Chaining.** An exit to a constant target in the same page checks the
//! budget (`instret` against [`Ctx::limit`]) and jumps straight to the
//! target's block once the run loop has linked it; until then it returns
//! to the run loop, reporting the jump to patch. Blocks of one page are
//! valid together, so a link never outlives its target.
//!
//! **Precise state.** Whenever control can leave compiled code (a trap,
//! an exit, a helper), `Hart::x` holds exactly the registers as of the
//! instruction boundary there.
//! `instret` is added lazily: a block adds its count at each exit, and
//! before an interpreted instruction (which may read `minstret`). When a
//! helper reports a trap, the block's exit stub for that instruction sets
//! `pc` to the faulting instruction and `instret` to the number of
//! instructions before it; the run loop then calls `take_trap`, as the
//! interpreter would. A helper that completes its access but sets
//! `Hart::event` (MMIO, a store into a page holding code) makes the block
//! leave right after that instruction, so self-modifying code and device
//! side effects are seen at the very next instruction. Interrupts are taken
//! between blocks only, where the interpreter takes them (event points).
//!
//! **Validity.** Blocks are kept per starting slot in the decoded-code page
//! they were compiled from (`code.rs`), so a write to that page, seen
//! through [`GuestRam`](strata_memory::GuestRam)'s generation, drops them
//! with the decoded instructions. Blocks embed their virtual pc, so they
//! also belong to one virtual page; and to one epoch of the code buffer,
//! which is emptied all at once when full.
//!
//! **Host safety.** Generated code addresses only `Hart` fields (through
//! `rbx`), the block's [`Ctx`] (through `r12`), its own stack frame, and the
//! helpers it calls; guest memory is reached only through the helpers. The
//! register numbers it embeds are 5-bit fields, so displacements stay inside
//! `Hart::x`.

mod buf;
mod x86;

#[cfg(test)]
mod tests;

use std::mem::offset_of;
use std::sync::OnceLock;

use crate::decode::{insn_len, Insn};
use crate::isa::{self, Op};
use crate::stats::JitStats;
use crate::trap::Trap;
use crate::{Bus, Hart};
use x86::{mem, mem_idx, Alu, Asm, Bt, Cc, Fixup, Shift, M, R};

/// The longest block, in instructions.
pub(crate) const MAX_BLOCK_INSNS: usize = 64;
/// Size of each hart's code buffer. A Linux boot compiles about a tenth of
/// this; a flush costs only recompilation.
const CODE_BUF_BYTES: usize = 64 << 20;

/// Helper status codes (in `rax`, or `rdx` for the value-returning loads).
const ST_OK: u64 = 0;
/// The instruction trapped: the trap is in [`Ctx::trap`].
const ST_TRAP: u64 = 1;
/// The instruction completed, but the block must end after it.
const ST_EXIT: u64 = 2;

/// What a block returns: `RC_TRAP` means `Ctx::trap` must be taken (with
/// `Hart::pc` at the faulting instruction); anything else is a normal exit.
const RC_TRAP: u64 = 1;

/// `rbx` points this far into `Hart::x`, so that every `x[i]` is reached
/// with an 8-bit displacement.
const XBIAS: i32 = 128;
const OFF_X: usize = offset_of!(Hart, x);
const OFF_PC: i32 = offset_of!(Hart, pc) as i32 - OFF_X as i32 - XBIAS;
const OFF_INSTRET: i32 = offset_of!(Hart, instret) as i32 - OFF_X as i32 - XBIAS;
const OFF_JIT_HITS: i32 = offset_of!(Hart, jit_hits) as i32 - OFF_X as i32 - XBIAS;

/// What generated code and helpers share while a block runs. `r12` holds
/// its address; the entry stub loads the fast-path pointers into
/// registers.
#[repr(C)]
pub(crate) struct Ctx {
    hart: *mut Hart,
    /// Points at the run loop's `&mut dyn Bus`.
    bus: *mut (),
    trap: Trap,
    /// The TLB's entries (`Tlb::raw_layout`), into r13.
    tlb: *const u8,
    /// Guest RAM and its code marks (`GuestRam::raw_parts`), into r14, r15.
    ram: *mut u8,
    marks: *const u8,
    /// The TLB context id of loads and stores (`Hart::ctx_data`), into rbp.
    /// Anything that changes it sets `event`, which ends the block.
    data_ctx: u64,
    /// Chained jumps between blocks continue while `instret` is below this.
    limit: u64,
    /// Set by an exit that could jump straight to the next block: the
    /// address of that jump's rel32, which the run loop then links.
    exit_site: u64,
    /// The jump cache, and the stamp its entries must carry to be used now.
    jc: *const JcEntry,
    stamp: u64,
}

const CTX_JC: i32 = offset_of!(Ctx, jc) as i32;
const CTX_STAMP: i32 = offset_of!(Ctx, stamp) as i32;
const CTX_LIMIT: i32 = offset_of!(Ctx, limit) as i32;
const CTX_EXIT_SITE: i32 = offset_of!(Ctx, exit_site) as i32;

const CTX_TLB: i32 = offset_of!(Ctx, tlb) as i32;
const CTX_RAM: i32 = offset_of!(Ctx, ram) as i32;
const CTX_MARKS: i32 = offset_of!(Ctx, marks) as i32;
const CTX_DATA_CTX: i32 = offset_of!(Ctx, data_ctx) as i32;

/// How generated code finds TLB entries (from `Tlb::raw_layout`), checked
/// to be encodable; `None` makes every access call its helper.
#[derive(Clone, Copy)]
struct TlbShape {
    /// Right shifts of `va` that leave the set index's two halves (see
    /// `RawLayout`) times the entry size in place, to be XORed, and the
    /// mask that keeps just that.
    shift: u8,
    fold: u8,
    index_mask: i32,
    /// Displacements of the load and store entries' tag and delta.
    load_tag: i32,
    load_delta: i32,
    store_tag: i32,
    store_delta: i32,
    page_mask: i32,
}

impl TlbShape {
    fn new(l: &strata_mmu::tlb::RawLayout) -> Option<TlbShape> {
        let d = |kind: strata_mmu::Access, off: usize| i32::try_from(kind.index() * l.kind_stride + off).ok();
        let index_mask = ((l.sets as u64 - 1) << l.entry_shift) as i32;
        let ok = l.sets.is_power_of_two()
            && l.entry_shift <= 12
            && (l.sets as u64) << l.entry_shift < 1 << 31
            && (l.entry_shift..64).contains(&l.fold_shift);
        let page_mask = i32::try_from(l.page_mask as i64).ok()?;
        ok.then_some(TlbShape {
            shift: 12 - l.entry_shift as u8,
            fold: (l.fold_shift - l.entry_shift) as u8,
            index_mask,
            load_tag: d(strata_mmu::Access::Load, l.tag_off)?,
            load_delta: d(strata_mmu::Access::Load, l.delta_off)?,
            store_tag: d(strata_mmu::Access::Store, l.tag_off)?,
            store_delta: d(strata_mmu::Access::Store, l.delta_off)?,
            page_mask,
        })
    }
}

/// Entries in the jump cache (a power of two).
const JC_SIZE: usize = 2048;

/// A jump-cache entry: the block for virtual pc `vpc`, usable while the
/// hart's stamp equals `stamp`.
#[repr(C)]
#[derive(Clone, Copy)]
struct JcEntry {
    vpc: u64,
    stamp: u64,
    code: u64,
    _pad: u64,
}
const _: () = assert!(std::mem::size_of::<JcEntry>() == 32);

/// The jump-cache slot of `pc`: offset bits mixed with page bits, so that
/// the same offset in different pages (page-aligned functions) does not
/// collide. Generated code computes the same (`Compiler::jc_exit`).
#[inline]
fn jc_index(pc: u64) -> usize {
    ((pc >> 1) ^ (pc >> 12)) as usize & (JC_SIZE - 1)
}

/// A `vpc` no jump has: instruction addresses are even.
const JC_EMPTY: JcEntry = JcEntry { vpc: 1, stamp: 0, code: 0, _pad: 0 };

pub(crate) struct Jit {
    buf: buf::CodeBuf,
    /// Jumps whose target is known only at run time (JALR: returns,
    /// indirect calls) or lies in another page look their block up here,
    /// by virtual pc, instead of going back to the run loop. An entry is
    /// good while nothing has changed since it was made that the run loop
    /// would have checked: the fetch translation (no TLB flush), the code
    /// (no write to any page holding code), the code buffer (no flush) and
    /// the fetch context (privilege, paging). The first three bump
    /// `jc_gen`; the stamp is `jc_gen` with the context id.
    jc: Box<[JcEntry; JC_SIZE]>,
    jc_gen: u64,
    jc_tlb_gen: u64,
    jc_code_writes: u64,
    /// Bumped whenever the buffer is emptied; blocks of older epochs are
    /// dead.
    epoch: u32,
    /// Offset of the epilogue (`enter` is at 0), and the end of the
    /// permanent stubs.
    epilogue: usize,
    stubs_end: usize,
    /// With STRATA_PERF_MAP=1, every block is listed in /tmp/perf-PID.map
    /// ([`perf_map`]), so `perf report` names host code by the guest pc it
    /// came from; not those of a VM the hart keeps out of it
    /// (`Hart::set_perf_map_vmids`).
    perf_map: Option<&'static PerfMap>,
    /// Scratch space reused by every compilation.
    insns: Vec<(u64, u32, Insn)>,
    asm: Vec<u8>,
    pub stats: JitStats,
}

/// The entry stub's signature: runs the block at `code` with `rbx = xbase`
/// and `r12 = ctx`; returns the block's exit code.
type EnterFn = unsafe extern "C" fn(ctx: *mut Ctx, xbase: *mut u8, code: u64) -> u64;

impl Jit {
    /// A JIT with an empty code buffer; `None` if the host will not map
    /// executable memory.
    pub fn new() -> Option<Box<Jit>> {
        Self::with_buffer(CODE_BUF_BYTES)
    }

    /// A JIT whose code buffer holds `bytes` (tests use small ones, to
    /// flush often).
    pub fn with_buffer(bytes: usize) -> Option<Box<Jit>> {
        let mut buf = buf::CodeBuf::new(bytes)?;
        // The entry stub saves the callee-saved registers the SysV ABI
        // requires (generated code uses rbx, rbp and r12-r15; helpers keep
        // them),
        // keeps rsp 16-byte aligned for helper calls (6 pushes + 8 on top of
        // the return address), and jumps to the block. Blocks leave through
        // the epilogue.
        let mut a = Asm::new(buf.next_addr());
        for r in [R::Rbp, R::Rbx, R::R12, R::R13, R::R14, R::R15] {
            a.push(r);
        }
        a.alu_ri(Alu::Sub, true, R::Rsp, 8);
        a.mov_rr(true, R::R12, R::Rdi);
        a.mov_rr(true, R::Rbx, R::Rsi);
        a.mov_rm(true, R::R13, mem(R::R12, CTX_TLB));
        a.mov_rm(true, R::R14, mem(R::R12, CTX_RAM));
        a.mov_rm(true, R::R15, mem(R::R12, CTX_MARKS));
        a.mov_rm(true, R::Rbp, mem(R::R12, CTX_DATA_CTX));
        a.jmp_r(R::Rdx);
        let epilogue = a.len();
        a.alu_ri(Alu::Add, true, R::Rsp, 8);
        for r in [R::R15, R::R14, R::R13, R::R12, R::Rbx, R::Rbp] {
            a.pop(r);
        }
        a.ret();
        let at = buf.push(&a.buf)?;
        debug_assert_eq!(at, 0);
        let stubs_end = buf.pos();
        Some(Box::new(Jit {
            buf,
            epoch: 0,
            epilogue,
            stubs_end,
            jc: Box::new([JC_EMPTY; JC_SIZE]),
            jc_gen: 0,
            jc_tlb_gen: 0,
            jc_code_writes: 0,
            perf_map: perf_map(),
            insns: Vec::with_capacity(MAX_BLOCK_INSNS),
            asm: Vec::with_capacity(16 << 10),
            stats: JitStats::default(),
        }))
    }

    /// Points the chaining jump whose rel32 is at address `site` at the
    /// block at offset `block`. Both are in the current epoch: the site was
    /// just reported by a block that ran, and no flush happened since.
    fn link(&mut self, site: u64, block: u32) {
        let target = self.buf.addr(block as usize);
        let rel = target.wrapping_sub(site.wrapping_add(4)) as i64;
        if let (Ok(rel), Some(off)) = (i32::try_from(rel), site.checked_sub(self.buf.addr(0))) {
            if off as usize >= self.stubs_end {
                self.buf.patch_i32(off as usize, rel);
                self.stats.links += 1;
            }
        }
    }

    /// Forgets every jump-cache entry (the decoded-code cache was dropped:
    /// the blocks they name may be stale).
    pub(crate) fn forget_jumps(&mut self) {
        self.jc_gen += 1;
    }

    /// Empties the code buffer: every block compiled so far is dead.
    fn flush(&mut self) {
        self.buf.truncate(self.stubs_end);
        self.jc_gen += 1;
        self.epoch = self.epoch.wrapping_add(1);
        self.stats.flushes += 1;
    }
}

// ---- helpers called from generated code ---------------------------------------

/// The pieces of a block's context.
///
/// # Safety
/// `ctx` must be the `Ctx` of the block that is calling, whose `hart` and
/// `bus` point at the running hart and the run loop's bus reference, which
/// nothing else uses while the block runs.
#[inline(always)]
unsafe fn parts<'a>(ctx: *mut Ctx) -> (&'a mut Ctx, &'a mut Hart, &'a mut dyn Bus) {
    // SAFETY: as the caller promises; the three are distinct objects.
    unsafe {
        let c = &mut *ctx;
        let h = &mut *c.hart;
        let bus: &mut dyn Bus = &mut **(c.bus as *mut &'a mut (dyn Bus + 'a));
        (c, h, bus)
    }
}

/// A value and a status, returned in `rax` and `rdx` (SysV: a 16-byte
/// struct of two INTEGER eightbytes).
#[repr(C)]
struct ValSt {
    v: u64,
    st: u64,
}

type LoadFn = unsafe extern "C" fn(*mut Ctx, u64) -> ValSt;
type StoreFn = unsafe extern "C" fn(*mut Ctx, u64, u64) -> u64;
type InterpFn = unsafe extern "C" fn(*mut Ctx, u64, u64, u64) -> u64;

/// Loads `N` bytes at `va` (sign-extended if `S`).
///
/// # Safety
/// See [`parts`]; called only by generated code.
unsafe extern "C" fn load<const N: u8, const S: bool>(ctx: *mut Ctx, va: u64) -> ValSt {
    // SAFETY: generated code passes its own `Ctx`.
    let (c, h, bus) = unsafe { parts(ctx) };
    match h.load(bus, va, N) {
        Ok(v) => {
            let v = if S {
                let sh = 64 - 8 * N as u32;
                (((v << sh) as i64) >> sh) as u64
            } else {
                v
            };
            ValSt { v, st: if h.event { ST_EXIT } else { ST_OK } }
        }
        Err(t) => {
            c.trap = t;
            ValSt { v: 0, st: ST_TRAP }
        }
    }
}

/// Stores the low `N` bytes of `v` at `va`.
///
/// # Safety
/// See [`parts`]; called only by generated code.
unsafe extern "C" fn store<const N: u8>(ctx: *mut Ctx, va: u64, v: u64) -> u64 {
    // SAFETY: generated code passes its own `Ctx`.
    let (c, h, bus) = unsafe { parts(ctx) };
    match h.store(bus, va, N, v) {
        Ok(()) if h.event => ST_EXIT,
        Ok(()) => ST_OK,
        Err(t) => {
            c.trap = t;
            ST_TRAP
        }
    }
}

/// Runs one instruction (packed by [`pack`]) at `pc` through the
/// interpreter. On a trap, sets `pc` to the instruction and leaves the trap
/// in the context; when the instruction moves control elsewhere or sets
/// `event`, sets `pc` to the next instruction and asks the block to end.
///
/// # Safety
/// See [`parts`]; called only by generated code, with `instret` up to date.
unsafe extern "C" fn interp(ctx: *mut Ctx, packed: u64, raw: u64, pc: u64) -> u64 {
    // SAFETY: generated code passes its own `Ctx`.
    let (c, h, bus) = unsafe { parts(ctx) };
    let raw = raw as u32;
    h.cur_insn_bits = raw as u64;
    match h.execute(bus, unpack(packed), raw, pc) {
        Ok(next) => {
            h.instret += 1;
            if h.event || next != pc.wrapping_add(insn_len(raw)) {
                h.pc = next;
                ST_EXIT
            } else {
                ST_OK
            }
        }
        Err(t) => {
            h.pc = pc;
            c.trap = t;
            ST_TRAP
        }
    }
}

// Division (ISA §7.2: division by zero and overflow do not trap).
extern "C" fn div(a: u64, b: u64) -> u64 {
    if b == 0 {
        u64::MAX
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}
extern "C" fn divu(a: u64, b: u64) -> u64 {
    a.checked_div(b).unwrap_or(u64::MAX)
}
extern "C" fn rem(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}
extern "C" fn remu(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        a % b
    }
}
extern "C" fn divw(a: u64, b: u64) -> u64 {
    let (x, y) = (a as i32, b as i32);
    if y == 0 {
        u64::MAX
    } else {
        x.wrapping_div(y) as i64 as u64
    }
}
extern "C" fn divuw(a: u64, b: u64) -> u64 {
    let (x, y) = (a as u32, b as u32);
    x.checked_div(y).map_or(u64::MAX, |q| q as i32 as i64 as u64)
}
extern "C" fn remw(a: u64, b: u64) -> u64 {
    let (x, y) = (a as i32, b as i32);
    if y == 0 {
        x as i64 as u64
    } else {
        x.wrapping_rem(y) as i64 as u64
    }
}
extern "C" fn remuw(a: u64, b: u64) -> u64 {
    let (x, y) = (a as u32, b as u32);
    (if y == 0 { x } else { x % y }) as i32 as i64 as u64
}

/// The bit-manipulation operations compiled as calls (counting and
/// carry-less multiplication: plain Rust, so no BMI/POPCNT/PCLMULQDQ is
/// assumed of the host), each `bitmanip::alu` for one operation.
macro_rules! bitmanip_helpers {
    ($($f:ident => $op:ident),* $(,)?) => {
        $(extern "C" fn $f(a: u64, b: u64) -> u64 {
            crate::bitmanip::alu(Op::$op, a, b)
        })*
        /// The helper of `op`, if it is compiled as a call.
        fn bitmanip_helper(op: Op) -> Option<extern "C" fn(u64, u64) -> u64> {
            match op {
                $(Op::$op => Some($f),)*
                _ => None,
            }
        }
    };
}
bitmanip_helpers! {
    b_clz => CLZ, b_ctz => CTZ, b_cpop => CPOP, b_clzw => CLZW, b_ctzw => CTZW, b_cpopw => CPOPW,
    b_orc_b => ORC_B, b_clmul => CLMUL, b_clmulh => CLMULH, b_clmulr => CLMULR,
}

// ---- packing decoded instructions into an immediate -------------------------

/// Every `Op` by its discriminant (`ILLEGAL` is the last).
fn op_table() -> &'static [Op] {
    static T: OnceLock<Vec<Op>> = OnceLock::new();
    T.get_or_init(|| {
        let mut v = vec![Op::ILLEGAL; Op::ILLEGAL as usize + 1];
        for e in isa::ENCODINGS {
            v[e.op as usize] = e.op;
        }
        v
    })
}

/// `op` in bits 15..0, rd/rs1/rs2 in 20..16, 25..21, 30..26, imm in 63..32.
fn pack(i: &Insn) -> u64 {
    i.op as u64 & 0xffff
        | (i.rd as u64 & 31) << 16
        | (i.rs1 as u64 & 31) << 21
        | (i.rs2 as u64 & 31) << 26
        | (i.imm as u32 as u64) << 32
}

fn unpack(p: u64) -> Insn {
    Insn {
        op: op_table().get((p & 0xffff) as usize).copied().unwrap_or(Op::ILLEGAL),
        rd: (p >> 16 & 31) as u8,
        rs1: (p >> 21 & 31) as u8,
        rs2: (p >> 26 & 31) as u8,
        imm: (p >> 32) as u32 as i32,
    }
}

// ---- the block compiler --------------------------------------------------------

/// `x[r]`, relative to `rbx`.
#[inline]
fn xm(r: u8) -> M {
    mem(R::Rbx, (r as i32 & 31) * 8 - XBIAS)
}
const PC: M = mem(R::Rbx, OFF_PC);
const INSTRET: M = mem(R::Rbx, OFF_INSTRET);
const JIT_HITS: M = mem(R::Rbx, OFF_JIT_HITS);

/// Instructions that, run by the interpreter, always leave the block (a
/// trap, a change of privilege or control, or `event`): compiling what
/// follows them would be wasted.
fn always_leaves(i: &Insn) -> bool {
    match i.op {
        Op::ECALL | Op::EBREAK | Op::MRET | Op::SRET | Op::WFI | Op::FENCE_I | Op::SFENCE_VMA | Op::SINVAL_VMA => true,
        Op::ILLEGAL => true,
        // §9.1: CSRRW always writes; the others write unless rs1/uimm = 0.
        Op::CSRRW | Op::CSRRWI => true,
        Op::CSRRS | Op::CSRRC | Op::CSRRSI | Op::CSRRCI => i.rs1 != 0,
        _ => false,
    }
}

fn is_branch(op: Op) -> bool {
    matches!(op, Op::BEQ | Op::BNE | Op::BLT | Op::BGE | Op::BLTU | Op::BGEU | Op::JAL | Op::JALR)
}

/// The cold path of a load or store: the TLB missed (or the access
/// crosses a page, or a store hits a page holding code), so the helper
/// does the access; if it traps or sets `event` the block ends here.
struct Stub {
    /// The jumps that lead here from the fast path.
    miss: Vec<Fixup>,
    /// Where the fast path continues (the load's value is in rax there).
    resume: usize,
    helper: u64,
    /// The instruction's pc and length, and its index in the block.
    pc: u64,
    len: u64,
    k: u32,
    /// How many instructions of the block `instret` already includes.
    synced: u32,
    /// Inline-probed accesses before this one, and how many of them
    /// `jit_hits` already includes.
    m: u32,
    m_synced: u32,
    /// The cache slots holding values not yet in `Hart::x` there.
    dirty: u8,
    /// For loads, the destination register; for stores, the source.
    load_rd: Option<u8>,
    store_rs2: u8,
}

/// Host registers that hold guest registers for the length of a block
/// (caller-saved: helper calls clobber them, so each call is bracketed by
/// a write-back and a reload).
const CACHE_REGS: [R; 4] = [R::R8, R::R9, R::R10, R::R11];

struct Compiler {
    a: Asm,
    epilogue: u64,
    /// The virtual page the block comes from.
    vpage: u64,
    tlb: Option<TlbShape>,
    /// Instructions emitted so far, and how many of them `instret` has.
    n: u32,
    synced: u32,
    /// Loads and stores probed inline so far, and how many of them
    /// `jit_hits` has: counted lazily at the same points as `instret`,
    /// each as a hit unless its stub runs (the TLB's hit counters, which
    /// the interpreter keeps per access, would otherwise miss JIT code).
    m: u32,
    m_synced: u32,
    stubs: Vec<Stub>,
    /// The guest register each cache register holds for this block (0:
    /// none), and the slots written since they were last stored. The
    /// block is straight-line code, so these are known at every point.
    cached: [u8; 4],
    dirty: u8,
}

/// The registers instruction `i` reads and the one it writes (0: none),
/// for the compiled operations (others are handled by the interpreter,
/// which works on `Hart::x` in memory).
fn reg_uses(i: &Insn) -> ([u8; 2], u8) {
    match i.op {
        Op::LUI | Op::AUIPC | Op::JAL => ([0, 0], i.rd),
        Op::ADDI
        | Op::XORI
        | Op::ORI
        | Op::ANDI
        | Op::SLTI
        | Op::SLTIU
        | Op::SLLI
        | Op::SRLI
        | Op::SRAI
        | Op::ADDIW
        | Op::SLLIW
        | Op::SRLIW
        | Op::SRAIW
        | Op::LB
        | Op::LH
        | Op::LW
        | Op::LD
        | Op::LBU
        | Op::LHU
        | Op::LWU
        | Op::JALR => ([i.rs1, 0], i.rd),
        Op::SB | Op::SH | Op::SW | Op::SD | Op::BEQ | Op::BNE | Op::BLT | Op::BGE | Op::BLTU | Op::BGEU => {
            ([i.rs1, i.rs2], 0)
        }
        Op::FENCE => ([0, 0], 0),
        // The shift-amount and unary forms have no rs2 (its field is the
        // immediate, or part of the opcode).
        op if crate::bitmanip::handles(op) && (crate::bitmanip::takes_shamt(op) || crate::bitmanip::unary(op)) => {
            ([i.rs1, 0], i.rd)
        }
        _ if !classify_interp(i) => ([i.rs1, i.rs2], i.rd),
        _ => ([0, 0], 0),
    }
}

impl Compiler {
    fn call(&mut self, f: u64) {
        self.a.mov_ri(R::Rax, f);
        self.a.call_r(R::Rax);
    }

    // ---- the register cache ----------------------------------------------

    /// Picks the (up to four) registers used most often in the block, if
    /// used at least twice, and emits their loads for those read before
    /// being written.
    fn alloc_regs(&mut self, insns: &[(u64, u32, Insn)]) {
        let mut count = [0u32; 32];
        let mut first_read = [None::<bool>; 32];
        for (_, _, i) in insns {
            let (reads, write) = reg_uses(i);
            for r in reads.into_iter().filter(|&r| r != 0) {
                count[r as usize & 31] += 1;
                first_read[r as usize & 31].get_or_insert(true);
            }
            if write != 0 {
                count[write as usize & 31] += 1;
                first_read[write as usize & 31].get_or_insert(false);
            }
        }
        let mut regs: Vec<u8> = (1..32u8).filter(|&r| count[r as usize] >= 2).collect();
        regs.sort_by_key(|&r| std::cmp::Reverse(count[r as usize]));
        for (s, &r) in regs.iter().take(CACHE_REGS.len()).enumerate() {
            self.cached[s] = r;
            if first_read[r as usize] == Some(true) {
                self.a.mov_rm(true, CACHE_REGS[s], xm(r));
            }
        }
    }

    fn slot(&self, r: u8) -> Option<usize> {
        if r == 0 {
            return None;
        }
        self.cached.iter().position(|&c| c == r)
    }

    /// `dst = x[r]` (all 64 bits, or the low 32 zero-extended).
    fn get(&mut self, w64: bool, dst: R, r: u8) {
        match self.slot(r) {
            Some(s) => self.a.mov_rr(w64, dst, CACHE_REGS[s]),
            None => self.a.mov_rm(w64, dst, xm(r)),
        }
    }

    /// `dst = dst <op> x[r]`.
    fn alu_x(&mut self, op: Alu, w64: bool, dst: R, r: u8) {
        match self.slot(r) {
            Some(s) => self.a.alu_rr(op, w64, dst, CACHE_REGS[s]),
            None => self.a.alu_rm(op, w64, dst, xm(r)),
        }
    }

    /// `x[r] = src` (nothing for x0).
    fn put(&mut self, r: u8, src: R) {
        if r == 0 {
            return;
        }
        match self.slot(r) {
            Some(s) => {
                self.a.mov_rr(true, CACHE_REGS[s], src);
                self.dirty |= 1 << s;
            }
            None => self.a.mov_mr(true, xm(r), src),
        }
    }

    /// `x[r] = v`.
    fn put_const(&mut self, r: u8, v: u64) {
        if r == 0 {
            return;
        }
        match self.slot(r) {
            Some(s) => {
                self.a.mov_ri(CACHE_REGS[s], v);
                self.dirty |= 1 << s;
            }
            None => self.store_const(xm(r), v),
        }
    }

    /// Stores the slots in `mask` to `Hart::x`.
    fn write_back(&mut self, mask: u8) {
        for (s, &h) in CACHE_REGS.iter().enumerate() {
            if mask & 1 << s != 0 {
                self.a.mov_mr(true, xm(self.cached[s]), h);
            }
        }
    }

    /// Makes `Hart::x` current (before a call that reads or clobbers the
    /// cache registers).
    fn sync_regs(&mut self) {
        self.write_back(self.dirty);
        self.dirty = 0;
    }

    /// Reloads every cache register from `Hart::x` (after a call).
    fn reload_regs(&mut self) {
        for (s, &h) in CACHE_REGS.iter().enumerate() {
            if self.cached[s] != 0 {
                self.a.mov_rm(true, h, xm(self.cached[s]));
            }
        }
    }

    // ---- exits -----------------------------------------------------------

    /// Adds the instructions not yet counted, up to `upto`, to `instret`.
    fn add_instret(&mut self, upto: u32) {
        let d = upto - self.synced;
        if d != 0 {
            self.a.alu_mi(Alu::Add, INSTRET, d as i32);
        }
        self.add_hits();
    }

    /// Adds the inline accesses not yet counted to `jit_hits` (call where
    /// `instret` is brought up to date).
    fn add_hits(&mut self) {
        let d = self.m - self.m_synced;
        if d != 0 {
            self.a.alu_mi(Alu::Add, JIT_HITS, d as i32);
        }
    }

    /// Stores the constant `v` to `[m]` (64-bit).
    fn store_const(&mut self, m: M, v: u64) {
        if v as i64 == v as i32 as i64 {
            self.a.mov_mi(m, v as i32);
        } else {
            self.a.mov_ri(R::Rax, v);
            self.a.mov_mr(true, m, R::Rax);
        }
    }

    /// `rax = instret += (instructions not yet counted)`; then jumps to
    /// the returned fixup if the budget is spent.
    fn count_and_check_budget(&mut self) -> Fixup {
        self.add_hits();
        self.a.mov_rm(true, R::Rax, INSTRET);
        let d = self.n - self.synced;
        if d != 0 {
            self.a.alu_ri(Alu::Add, true, R::Rax, d as i32);
            self.a.mov_mr(true, INSTRET, R::Rax);
        }
        self.a.alu_rm(Alu::Cmp, true, R::Rax, mem(R::R12, CTX_LIMIT));
        self.a.jcc(Cc::Ae)
    }

    /// Leaves the block for `next` after `self.n` instructions. Within the
    /// block's page, the exit is a jump the run loop can later point
    /// straight at the block for `next` (*chaining*): blocks of one page
    /// are valid together, and nothing at a block's end can have set
    /// `event` (every helper that sets it ends the block early), so only
    /// the budget needs checking on the way.
    fn exit_to(&mut self, next: u64) {
        self.write_back(self.dirty);
        if next & !0xfff != self.vpage {
            self.a.mov_ri(R::Rcx, next);
            self.a.mov_mr(true, PC, R::Rcx);
            self.jc_exit();
            return;
        }
        let spent = self.count_and_check_budget();
        // The link: a jmp to the next instruction until the run loop
        // patches its rel32.
        let link = self.a.jmp();
        self.a.bind(link);
        let site = self.a.base + self.a.len() as u64 - 4;
        self.a.bind(spent);
        self.store_const(PC, next);
        self.a.mov_ri(R::Rax, site);
        self.a.mov_mr(true, mem(R::R12, CTX_EXIT_SITE), R::Rax);
        self.a.alu_rr(Alu::Xor, false, R::Rax, R::Rax);
        self.a.jmp_abs(self.epilogue);
    }

    /// Leaves the block for the pc in rcx (already in `Hart::pc`, the
    /// cache written back) after `self.n` instructions: through the jump
    /// cache if it has the target and the budget lasts, else to the run
    /// loop.
    fn jc_exit(&mut self) {
        let spent = self.count_and_check_budget();
        // rax = &jc[jc_index(pc)]
        self.a.mov_rr(false, R::Rax, R::Rcx);
        self.a.shift_ri(Shift::Shr, false, R::Rax, 11);
        self.a.alu_rr(Alu::Xor, false, R::Rax, R::Rcx);
        self.a.shift_ri(Shift::Shl, false, R::Rax, 4);
        self.a.alu_ri(Alu::And, false, R::Rax, ((JC_SIZE - 1) << 5) as i32);
        self.a.alu_rm(Alu::Add, true, R::Rax, mem(R::R12, CTX_JC));
        self.a.alu_rm(Alu::Cmp, true, R::Rcx, mem(R::Rax, offset_of!(JcEntry, vpc) as i32));
        let miss = self.a.jcc(Cc::Ne);
        self.a.mov_rm(true, R::Rdx, mem(R::R12, CTX_STAMP));
        self.a.alu_rm(Alu::Cmp, true, R::Rdx, mem(R::Rax, offset_of!(JcEntry, stamp) as i32));
        let stale = self.a.jcc(Cc::Ne);
        self.a.jmp_m(mem(R::Rax, offset_of!(JcEntry, code) as i32));
        self.a.bind(spent);
        self.a.bind(miss);
        self.a.bind(stale);
        self.a.alu_rr(Alu::Xor, false, R::Rax, R::Rax);
        self.a.jmp_abs(self.epilogue);
    }

    // ---- operations --------------------------------------------------------

    /// `rsi = x[rs1] + imm` (an effective address).
    fn addr_to_rsi(&mut self, rs1: u8, imm: i32) {
        self.get(true, R::Rsi, rs1);
        if imm != 0 {
            self.a.alu_ri(Alu::Add, true, R::Rsi, imm);
        }
    }

    /// `x[rd] = op(x[rs1], x[rs2])` for a two-operand x86 ALU op.
    fn alu_rr(&mut self, op: Alu, w64: bool, i: &Insn) {
        self.get(w64, R::Rax, i.rs1);
        self.alu_x(op, w64, R::Rax, i.rs2);
        if !w64 {
            self.a.movsxd(R::Rax, R::Rax);
        }
        self.put(i.rd, R::Rax);
    }

    /// `x[rd] = op(x[rs1], imm)`.
    fn alu_ri(&mut self, op: Alu, w64: bool, i: &Insn) {
        let nop = i.imm == 0 && matches!(op, Alu::Add | Alu::Or | Alu::Xor);
        if w64 && i.rd == i.rs1 {
            if !nop {
                match self.slot(i.rd) {
                    Some(s) => {
                        self.a.alu_ri(op, true, CACHE_REGS[s], i.imm);
                        self.dirty |= 1 << s;
                    }
                    None => self.a.alu_mi(op, xm(i.rd), i.imm),
                }
            }
            return;
        }
        if w64 && i.rs1 == 0 {
            // x0 op imm is a constant (li, and friends).
            let v = match op {
                Alu::Add | Alu::Or | Alu::Xor => i.imm as i64 as u64,
                _ => 0,
            };
            self.put_const(i.rd, v);
            return;
        }
        self.get(w64, R::Rax, i.rs1);
        if !(w64 && nop) {
            self.a.alu_ri(op, w64, R::Rax, i.imm);
        }
        if !w64 {
            self.a.movsxd(R::Rax, R::Rax);
        }
        self.put(i.rd, R::Rax);
    }

    /// `x[rd] = (x[rs1] <cc> src) as u64`, `src` being x[rs2] or imm.
    fn set_cc(&mut self, cc: Cc, i: &Insn, imm: bool) {
        self.a.alu_rr(Alu::Xor, false, R::Rcx, R::Rcx);
        self.get(true, R::Rax, i.rs1);
        if imm {
            self.a.alu_ri(Alu::Cmp, true, R::Rax, i.imm);
        } else {
            self.alu_x(Alu::Cmp, true, R::Rax, i.rs2);
        }
        self.a.setcc(cc, R::Rcx);
        self.put(i.rd, R::Rcx);
    }

    fn shift_imm(&mut self, op: Shift, w64: bool, i: &Insn) {
        self.get(w64, R::Rax, i.rs1);
        let sh = (i.imm as u8) & if w64 { 63 } else { 31 };
        if sh != 0 {
            self.a.shift_ri(op, w64, R::Rax, sh);
        }
        if !w64 {
            self.a.movsxd(R::Rax, R::Rax);
        }
        self.put(i.rd, R::Rax);
    }

    /// Shifts by x[rs2]; x86 masks the count to 6 (or 5) bits just as
    /// RV64 does (ISA §5.2).
    fn shift_reg(&mut self, op: Shift, w64: bool, i: &Insn) {
        self.get(false, R::Rcx, i.rs2);
        self.get(w64, R::Rax, i.rs1);
        self.a.shift_cl(op, w64, R::Rax);
        if !w64 {
            self.a.movsxd(R::Rax, R::Rax);
        }
        self.put(i.rd, R::Rax);
    }

    /// Zba, Zbb, Zbc, Zbs and Zicond (`i.rd` is not x0; none of them can
    /// trap): x86 sequences of one to five instructions, or a call for the
    /// counting and carry-less operations. Semantics: `bitmanip.rs`.
    fn bitmanip(&mut self, i: &Insn) {
        if let Some(f) = bitmanip_helper(i.op) {
            return self.call2(f, i);
        }
        let sh = (i.imm & 63) as u8;
        match i.op {
            Op::SH1ADD | Op::SH2ADD | Op::SH3ADD | Op::ADD_UW | Op::SH1ADD_UW | Op::SH2ADD_UW | Op::SH3ADD_UW => {
                let (n, uw) = match i.op {
                    Op::SH1ADD => (1, false),
                    Op::SH2ADD => (2, false),
                    Op::SH3ADD => (3, false),
                    Op::ADD_UW => (0, true),
                    Op::SH1ADD_UW => (1, true),
                    Op::SH2ADD_UW => (2, true),
                    _ => (3, true),
                };
                // A 32-bit move zero-extends: the .uw forms' zext32(rs1).
                self.get(!uw, R::Rax, i.rs1);
                if n != 0 {
                    self.a.shift_ri(Shift::Shl, true, R::Rax, n);
                }
                self.alu_x(Alu::Add, true, R::Rax, i.rs2);
            }
            Op::SLLI_UW => {
                self.get(false, R::Rax, i.rs1);
                if sh != 0 {
                    self.a.shift_ri(Shift::Shl, true, R::Rax, sh);
                }
            }
            Op::ANDN | Op::ORN | Op::XNOR => {
                // rs1 op !rs2 (XNOR: !(a ^ b) = a ^ !b).
                self.get(true, R::Rax, i.rs2);
                self.a.not(R::Rax);
                let op = match i.op {
                    Op::ANDN => Alu::And,
                    Op::ORN => Alu::Or,
                    _ => Alu::Xor,
                };
                self.alu_x(op, true, R::Rax, i.rs1);
            }
            Op::MAX | Op::MAXU | Op::MIN | Op::MINU => {
                self.get(true, R::Rax, i.rs1);
                self.get(true, R::Rcx, i.rs2);
                self.a.alu_rr(Alu::Cmp, true, R::Rax, R::Rcx);
                // Take rs2 where rs1 loses.
                let cc = match i.op {
                    Op::MAX => Cc::L,
                    Op::MAXU => Cc::B,
                    Op::MIN => Cc::G,
                    _ => Cc::A,
                };
                self.a.cmov(cc, R::Rax, R::Rcx);
            }
            Op::CZERO_EQZ | Op::CZERO_NEZ => {
                self.get(true, R::Rax, i.rs1);
                self.a.alu_rr(Alu::Xor, false, R::Rcx, R::Rcx);
                self.get(true, R::Rdx, i.rs2);
                self.a.test_rr(true, R::Rdx, R::Rdx);
                self.a.cmov(if i.op == Op::CZERO_EQZ { Cc::E } else { Cc::Ne }, R::Rax, R::Rcx);
            }
            Op::SEXT_B | Op::SEXT_H | Op::ZEXT_H | Op::REV8 => {
                self.get(true, R::Rax, i.rs1);
                match i.op {
                    Op::SEXT_B => self.a.movsx8_rr(R::Rax, R::Rax),
                    Op::SEXT_H => self.a.movsx16_rr(R::Rax, R::Rax),
                    Op::ZEXT_H => self.a.movzx16_rr(R::Rax, R::Rax),
                    _ => self.a.bswap(R::Rax),
                }
            }
            // x86 rotates mask the count as RV64 does (6 bits, 5 for the W
            // forms); the W forms sign-extend their 32-bit result.
            Op::ROL => return self.shift_reg(Shift::Rol, true, i),
            Op::ROR => return self.shift_reg(Shift::Ror, true, i),
            Op::ROLW => return self.shift_reg(Shift::Rol, false, i),
            Op::RORW => return self.shift_reg(Shift::Ror, false, i),
            Op::RORI => return self.shift_imm(Shift::Ror, true, i),
            Op::RORIW => return self.shift_imm(Shift::Ror, false, i),
            Op::BEXT | Op::BEXTI => {
                self.get(true, R::Rax, i.rs1);
                if i.op == Op::BEXT {
                    self.get(true, R::Rcx, i.rs2);
                }
                self.a.alu_rr(Alu::Xor, false, R::Rdx, R::Rdx);
                if i.op == Op::BEXT {
                    self.a.bt_rr(Bt::Test, R::Rax, R::Rcx);
                } else {
                    self.a.bt_ri(Bt::Test, R::Rax, sh);
                }
                self.a.setcc(Cc::B, R::Rdx);
                return self.put(i.rd, R::Rdx);
            }
            _ => {
                // BSET, BCLR, BINV and their immediate forms: x86 takes the
                // register bit number mod 64, as RV64 does.
                let (op, imm) = match i.op {
                    Op::BSET => (Bt::Set, false),
                    Op::BSETI => (Bt::Set, true),
                    Op::BCLR => (Bt::Reset, false),
                    Op::BCLRI => (Bt::Reset, true),
                    Op::BINV => (Bt::Complement, false),
                    _ => (Bt::Complement, true),
                };
                self.get(true, R::Rax, i.rs1);
                if imm {
                    self.a.bt_ri(op, R::Rax, sh);
                } else {
                    self.get(true, R::Rcx, i.rs2);
                    self.a.bt_rr(op, R::Rax, R::Rcx);
                }
            }
        }
        self.put(i.rd, R::Rax);
    }

    /// `rax * x[r]` into rdx:rax (`mul`/`imul` with one operand).
    fn mul_wide(&mut self, signed: bool, r: u8) {
        match (self.slot(r), signed) {
            (Some(s), _) => self.a.mul_r(signed, CACHE_REGS[s]),
            (None, false) => self.a.mul_m(xm(r)),
            (None, true) => self.a.imul1_m(xm(r)),
        }
    }

    /// `x[rd] = f(x[rs1], x[rs2])` through an `extern "C"` helper.
    fn call2(&mut self, f: extern "C" fn(u64, u64) -> u64, i: &Insn) {
        self.get(true, R::Rdi, i.rs1);
        self.get(true, R::Rsi, i.rs2);
        self.sync_regs();
        self.call(f as usize as u64);
        self.reload_regs();
        self.put(i.rd, R::Rax);
    }

    /// The inline TLB probe for an access of `n` bytes at `rsi`: on a hit
    /// leaves the RAM offset in rcx; jumps that miss go to `miss`. A
    /// page-crossing access misses: the tag is taken from its last byte.
    fn tlb_probe(&mut self, t: TlbShape, store: bool, n: u8, miss: &mut Vec<Fixup>) {
        let (tag, delta) = if store { (t.store_tag, t.store_delta) } else { (t.load_tag, t.load_delta) };
        self.a.mov_rr(true, R::Rax, R::Rsi);
        self.a.shift_ri(Shift::Shr, true, R::Rax, t.shift);
        self.a.mov_rr(true, R::Rcx, R::Rsi);
        self.a.shift_ri(Shift::Shr, true, R::Rcx, t.fold);
        self.a.alu_rr(Alu::Xor, true, R::Rax, R::Rcx);
        self.a.alu_ri(Alu::And, false, R::Rax, t.index_mask);
        if n > 1 {
            self.a.lea(R::Rcx, mem(R::Rsi, n as i32 - 1));
        } else {
            self.a.mov_rr(true, R::Rcx, R::Rsi);
        }
        self.a.alu_ri(Alu::And, true, R::Rcx, t.page_mask);
        self.a.alu_rr(Alu::Or, true, R::Rcx, R::Rbp);
        self.a.alu_rm(Alu::Cmp, true, R::Rcx, mem_idx(R::R13, R::Rax, tag));
        miss.push(self.a.jcc(Cc::Ne));
        self.a.mov_rm(true, R::Rcx, mem_idx(R::R13, R::Rax, delta));
        self.a.alu_rr(Alu::Add, true, R::Rcx, R::Rsi);
    }

    fn load(&mut self, f: LoadFn, n: u8, signed: bool, i: &Insn, pc: u64, len: u64) {
        self.addr_to_rsi(i.rs1, i.imm);
        let mut miss = Vec::new();
        match self.tlb {
            Some(t) => {
                self.tlb_probe(t, false, n, &mut miss);
                let m = mem_idx(R::R14, R::Rcx, 0);
                match (n, signed) {
                    (1, false) => self.a.movzx8(R::Rax, m),
                    (1, true) => self.a.movsx8(R::Rax, m),
                    (2, false) => self.a.movzx16(R::Rax, m),
                    (2, true) => self.a.movsx16(R::Rax, m),
                    (4, false) => self.a.mov_rm(false, R::Rax, m),
                    (4, true) => self.a.movsx32(R::Rax, m),
                    _ => self.a.mov_rm(true, R::Rax, m),
                }
            }
            None => miss.push(self.a.jmp()),
        }
        let resume = self.a.len();
        let dirty = self.dirty;
        self.put(i.rd, R::Rax);
        self.push_stub(miss, resume, f as usize as u64, pc, len, dirty, Some(i.rd), 0);
    }

    /// Records the slow path of the access at `pc` (see [`Stub`]), emitted
    /// after the block; counts the access as probed inline if the block
    /// probes the TLB inline at all.
    #[allow(clippy::too_many_arguments)]
    fn push_stub(
        &mut self,
        miss: Vec<Fixup>,
        resume: usize,
        helper: u64,
        pc: u64,
        len: u64,
        dirty: u8,
        load_rd: Option<u8>,
        store_rs2: u8,
    ) {
        self.stubs.push(Stub {
            miss,
            resume,
            helper,
            pc,
            len,
            k: self.n,
            synced: self.synced,
            m: self.m,
            m_synced: self.m_synced,
            dirty,
            load_rd,
            store_rs2,
        });
        self.m += self.tlb.is_some() as u32;
    }

    fn store(&mut self, f: StoreFn, n: u8, i: &Insn, pc: u64, len: u64) {
        self.addr_to_rsi(i.rs1, i.imm);
        let mut miss = Vec::new();
        match self.tlb {
            Some(t) => {
                self.tlb_probe(t, true, n, &mut miss);
                // A page holding decoded code is written by the helper, so
                // that its generation moves and the block ends.
                self.a.mov_rr(true, R::Rax, R::Rcx);
                self.a.shift_ri(Shift::Shr, true, R::Rax, 12);
                self.a.cmp_m8i(mem_idx(R::R15, R::Rax, 0), 0);
                miss.push(self.a.jcc(Cc::Ne));
                self.get(true, R::Rdx, i.rs2);
                let m = mem_idx(R::R14, R::Rcx, 0);
                match n {
                    1 => self.a.mov_m8(m, R::Rdx),
                    2 => self.a.mov_m16(m, R::Rdx),
                    4 => self.a.mov_mr(false, m, R::Rdx),
                    _ => self.a.mov_mr(true, m, R::Rdx),
                }
            }
            None => miss.push(self.a.jmp()),
        }
        let resume = self.a.len();
        self.push_stub(miss, resume, f as usize as u64, pc, len, self.dirty, None, i.rs2);
    }

    /// An instruction run by the interpreter, in the middle of the block.
    fn interp(&mut self, i: &Insn, raw: u32, pc: u64) {
        // It reads and writes Hart::x, and may read minstret/mcycle: bring
        // both up to date first.
        self.sync_regs();
        self.add_instret(self.n);
        self.synced = self.n + 1;
        self.m_synced = self.m;
        self.a.mov_rr(true, R::Rdi, R::R12);
        self.a.mov_ri(R::Rsi, pack(i));
        self.a.mov_ri(R::Rdx, raw as u64);
        self.a.mov_ri(R::Rcx, pc);
        let f: InterpFn = interp;
        self.call(f as usize as u64);
        self.a.test_rr(false, R::Rax, R::Rax);
        // The helper has set pc and instret; its status is the block's
        // exit code (ST_TRAP = RC_TRAP).
        self.a.jcc_abs(Cc::Ne, self.epilogue);
        self.reload_regs();
    }

    /// Emits instruction `i` (index `self.n`); returns false if it ends the
    /// block (having emitted the exit).
    fn insn(&mut self, i: &Insn, raw: u32, pc: u64) -> bool {
        let len = insn_len(raw);
        let next = pc.wrapping_add(len);
        let imm = i.imm as i64 as u64;
        // Register writes to x0 are dropped: ALU ops with rd = 0 are no-ops
        // (HINTs, ISA §2.9), so they need no code at all.
        let alu_nop = i.rd == 0;
        match i.op {
            Op::LUI if !alu_nop => self.put_const(i.rd, imm),
            Op::AUIPC if !alu_nop => self.put_const(i.rd, pc.wrapping_add(imm)),
            Op::ADDI if !alu_nop => self.alu_ri(Alu::Add, true, i),
            Op::XORI if !alu_nop => self.alu_ri(Alu::Xor, true, i),
            Op::ORI if !alu_nop => self.alu_ri(Alu::Or, true, i),
            Op::ANDI if !alu_nop => self.alu_ri(Alu::And, true, i),
            Op::SLTI if !alu_nop => self.set_cc(Cc::L, i, true),
            Op::SLTIU if !alu_nop => self.set_cc(Cc::B, i, true),
            Op::SLLI if !alu_nop => self.shift_imm(Shift::Shl, true, i),
            Op::SRLI if !alu_nop => self.shift_imm(Shift::Shr, true, i),
            Op::SRAI if !alu_nop => self.shift_imm(Shift::Sar, true, i),
            Op::ADD if !alu_nop => self.alu_rr(Alu::Add, true, i),
            Op::SUB if !alu_nop => self.alu_rr(Alu::Sub, true, i),
            Op::XOR if !alu_nop => self.alu_rr(Alu::Xor, true, i),
            Op::OR if !alu_nop => self.alu_rr(Alu::Or, true, i),
            Op::AND if !alu_nop => self.alu_rr(Alu::And, true, i),
            Op::SLT if !alu_nop => self.set_cc(Cc::L, i, false),
            Op::SLTU if !alu_nop => self.set_cc(Cc::B, i, false),
            Op::SLL if !alu_nop => self.shift_reg(Shift::Shl, true, i),
            Op::SRL if !alu_nop => self.shift_reg(Shift::Shr, true, i),
            Op::SRA if !alu_nop => self.shift_reg(Shift::Sar, true, i),
            Op::ADDIW if !alu_nop => self.alu_ri(Alu::Add, false, i),
            Op::SLLIW if !alu_nop => self.shift_imm(Shift::Shl, false, i),
            Op::SRLIW if !alu_nop => self.shift_imm(Shift::Shr, false, i),
            Op::SRAIW if !alu_nop => self.shift_imm(Shift::Sar, false, i),
            Op::ADDW if !alu_nop => self.alu_rr(Alu::Add, false, i),
            Op::SUBW if !alu_nop => self.alu_rr(Alu::Sub, false, i),
            Op::SLLW if !alu_nop => self.shift_reg(Shift::Shl, false, i),
            Op::SRLW if !alu_nop => self.shift_reg(Shift::Shr, false, i),
            Op::SRAW if !alu_nop => self.shift_reg(Shift::Sar, false, i),
            Op::MUL | Op::MULW if !alu_nop => {
                let w64 = i.op == Op::MUL;
                self.get(w64, R::Rax, i.rs1);
                match self.slot(i.rs2) {
                    Some(s) => self.a.imul_rr(w64, R::Rax, CACHE_REGS[s]),
                    None => self.a.imul_rm(w64, R::Rax, xm(i.rs2)),
                }
                if !w64 {
                    self.a.movsxd(R::Rax, R::Rax);
                }
                self.put(i.rd, R::Rax);
            }
            Op::MULH | Op::MULHU if !alu_nop => {
                self.get(true, R::Rax, i.rs1);
                self.mul_wide(i.op == Op::MULH, i.rs2);
                self.put(i.rd, R::Rdx);
            }
            Op::MULHSU if !alu_nop => {
                // hi(signed a * unsigned b) = hi(a * b unsigned) - (a < 0 ? b : 0)
                self.get(true, R::Rax, i.rs1);
                self.mul_wide(false, i.rs2);
                self.get(true, R::Rax, i.rs1);
                self.a.shift_ri(Shift::Sar, true, R::Rax, 63);
                self.alu_x(Alu::And, true, R::Rax, i.rs2);
                self.a.alu_rr(Alu::Sub, true, R::Rdx, R::Rax);
                self.put(i.rd, R::Rdx);
            }
            Op::DIV if !alu_nop => self.call2(div, i),
            Op::DIVU if !alu_nop => self.call2(divu, i),
            Op::REM if !alu_nop => self.call2(rem, i),
            Op::REMU if !alu_nop => self.call2(remu, i),
            Op::DIVW if !alu_nop => self.call2(divw, i),
            Op::DIVUW if !alu_nop => self.call2(divuw, i),
            Op::REMW if !alu_nop => self.call2(remw, i),
            Op::REMUW if !alu_nop => self.call2(remuw, i),
            // The pure ALU ops above with rd = x0.
            op if pure_alu(op) => {}
            // Compiled loads and stores are plain x86-64 moves (TSO), so
            // only a FENCE that orders stores before later loads needs an
            // instruction (as `mem::guest_fence` in the interpreter).
            Op::FENCE if raw == strata_arch::isa::fence::PAUSE => self.interp(i, raw, pc),
            Op::FENCE => {
                if crate::mem::fence_needs_full(raw) {
                    self.a.mfence();
                }
            }
            Op::LB => self.load(load::<1, true>, 1, true, i, pc, len),
            Op::LH => self.load(load::<2, true>, 2, true, i, pc, len),
            Op::LW => self.load(load::<4, true>, 4, true, i, pc, len),
            Op::LD => self.load(load::<8, false>, 8, false, i, pc, len),
            Op::LBU => self.load(load::<1, false>, 1, false, i, pc, len),
            Op::LHU => self.load(load::<2, false>, 2, false, i, pc, len),
            Op::LWU => self.load(load::<4, false>, 4, false, i, pc, len),
            Op::SB => self.store(store::<1>, 1, i, pc, len),
            Op::SH => self.store(store::<2>, 2, i, pc, len),
            Op::SW => self.store(store::<4>, 4, i, pc, len),
            Op::SD => self.store(store::<8>, 8, i, pc, len),
            Op::BEQ | Op::BNE | Op::BLT | Op::BGE | Op::BLTU | Op::BGEU => {
                let cc = match i.op {
                    Op::BEQ => Cc::E,
                    Op::BNE => Cc::Ne,
                    Op::BLT => Cc::L,
                    Op::BGE => Cc::Ge,
                    Op::BLTU => Cc::B,
                    _ => Cc::Ae,
                };
                self.n += 1;
                self.get(true, R::Rax, i.rs1);
                self.alu_x(Alu::Cmp, true, R::Rax, i.rs2);
                let taken = self.a.jcc(cc);
                self.exit_to(next);
                self.a.bind(taken);
                self.exit_to(pc.wrapping_add(imm));
                return false;
            }
            Op::JAL => {
                self.n += 1;
                self.put_const(i.rd, next);
                self.exit_to(pc.wrapping_add(imm));
                return false;
            }
            Op::JALR => {
                self.n += 1;
                // The target comes from rs1 before rd (which may be rs1) is
                // written; bit 0 is cleared (ISA §2.5).
                self.get(true, R::Rcx, i.rs1);
                if i.imm != 0 {
                    self.a.alu_ri(Alu::Add, true, R::Rcx, i.imm);
                }
                self.a.alu_ri(Alu::And, true, R::Rcx, -2);
                self.put_const(i.rd, next);
                self.write_back(self.dirty);
                self.a.mov_mr(true, PC, R::Rcx);
                self.jc_exit();
                return false;
            }
            op if crate::bitmanip::handles(op) => {
                if !alu_nop {
                    self.bitmanip(i);
                }
            }
            _ => self.interp(i, raw, pc),
        }
        self.n += 1;
        true
    }

    /// Emits the cold paths of the memory instructions.
    fn emit_stubs(&mut self) {
        for s in std::mem::take(&mut self.stubs) {
            for f in s.miss {
                self.a.bind(f);
            }
            // rsi still holds the address; the cache registers the values
            // of their guest registers. The helper clobbers them: write the
            // dirty ones back now (the trap and event exits need that
            // too), reload them all if the block goes on.
            if s.load_rd.is_none() {
                self.get(true, R::Rdx, s.store_rs2);
            }
            self.write_back(s.dirty);
            self.a.mov_rr(true, R::Rdi, R::R12);
            self.call(s.helper);
            // Status: in rdx for loads, rax for stores.
            let st = if s.load_rd.is_some() { R::Rdx } else { R::Rax };
            self.a.test_rr(false, st, st);
            let out = self.a.jcc(Cc::Ne);
            if s.load_rd.is_some() {
                // The reload must not clobber the value in rax: none of the
                // cache registers is rax.
                debug_assert!(!CACHE_REGS.contains(&R::Rax));
            }
            self.reload_regs();
            if self.tlb.is_some() {
                // The access was probed inline, and the helper counted it
                // too: the fast path's count is undone.
                self.a.alu_mi(Alu::Sub, JIT_HITS, 1);
            }
            let back = self.a.jmp();
            self.a.patch(back, s.resume);
            self.a.bind(out);
            // Trap or event: the block ends here, after the inline accesses
            // before this one.
            if s.m > s.m_synced {
                self.a.alu_mi(Alu::Add, JIT_HITS, (s.m - s.m_synced) as i32);
            }
            self.a.alu_ri(Alu::Cmp, false, st, ST_TRAP as i32);
            let event = self.a.jcc(Cc::Ne);
            // A trap: pc names the instruction, which did not retire.
            self.store_const(PC, s.pc);
            if s.k > s.synced {
                self.a.alu_mi(Alu::Add, INSTRET, (s.k - s.synced) as i32);
            }
            self.a.mov_ri(R::Rax, RC_TRAP);
            self.a.jmp_abs(self.epilogue);
            // Done, but the block must end: the load's value goes to rd.
            self.a.bind(event);
            if let Some(rd) = s.load_rd.filter(|&r| r != 0) {
                self.a.mov_mr(true, xm(rd), R::Rax);
            }
            self.store_const(PC, s.pc.wrapping_add(s.len));
            self.a.alu_mi(Alu::Add, INSTRET, (s.k + 1 - s.synced) as i32);
            self.a.alu_rr(Alu::Xor, false, R::Rax, R::Rax);
            self.a.jmp_abs(self.epilogue);
        }
    }
}

impl Hart {
    /// Turns the JIT on or off; returns whether it is on (it cannot be on
    /// if the host will not map executable memory).
    pub fn set_jit(&mut self, on: bool) -> bool {
        if on != self.jit.is_some() {
            // Block maps name offsets in the old buffer (if any): forget
            // them with the decoded pages, so a new JIT starts clean.
            self.code.clear();
            self.jit = if on { Jit::new() } else { None };
        }
        self.jit.is_some()
    }

    pub fn jit_stats(&self) -> Option<JitStats> {
        self.jit.as_ref().map(|j| j.stats)
    }

    /// Runs compiled blocks from decoded-code page `idx`, starting at `pc`
    /// (= `self.pc`), while control stays in the page, nothing sets `event`,
    /// and `budget` lasts. Returns the instruction slots used.
    pub(crate) fn run_page_jit(&mut self, mut bus: &mut dyn Bus, idx: usize, pc: u64, budget: u64) -> u64 {
        let vpage = pc & !0xfff;
        let Some(jit) = self.jit.as_ref() else {
            return 0;
        };
        let epoch = jit.epoch;
        let enter_addr = jit.buf.addr(0);
        self.code.jit_enter(idx, vpage, epoch);
        // SAFETY: offset 0 of the buffer holds the entry stub emitted by
        // `Jit::new`, which has exactly this signature and is never
        // overwritten (flushes keep the stubs).
        let enter: EnterFn = unsafe { std::mem::transmute::<usize, EnterFn>(enter_addr as usize) };
        let mut used = 0;
        // An exit of the last block that may jump straight to this one.
        let mut site = 0;
        loop {
            let pc = self.pc;
            let off = (pc & 0xfff) as usize;
            let mut block = self.code.jit_block(idx, off);
            if block == 0 {
                let epoch = self.jit.as_ref().map_or(0, |j| j.epoch);
                match self.jit_compile(idx, pc) {
                    Some(b) => {
                        let now = self.jit.as_ref().map_or(0, |j| j.epoch);
                        if now != epoch {
                            // A flush during compilation dropped the page's
                            // other blocks, and the site is gone too.
                            self.code.jit_enter(idx, vpage, now);
                            site = 0;
                        }
                        self.code.set_jit_block(idx, off, b);
                        block = b;
                    }
                    None => {
                        // Nothing to compile here (a 32-bit instruction
                        // straddling the page end).
                        self.step_slow(bus);
                        return used + 1;
                    }
                }
            }
            let Some(jit) = self.jit.as_mut() else {
                return used;
            };
            if site != 0 {
                jit.link(site, block);
            }
            jit.stats.runs += 1;
            let code = jit.buf.addr(block as usize);
            let (tlb_gen, code_writes) = (self.tlb.generation(), self.ram.code_writes());
            if tlb_gen != jit.jc_tlb_gen || code_writes != jit.jc_code_writes {
                jit.jc_gen += 1;
                jit.jc_tlb_gen = tlb_gen;
                jit.jc_code_writes = code_writes;
            }
            // The fetch context id must name everything that selects the
            // fetch translation besides the TLB's contents (privilege,
            // paging; with the H extension, V and the VMID too).
            let stamp = jit.jc_gen << 16 | self.ctx_fetch as u64;
            jit.jc[jc_index(pc)] = JcEntry { vpc: pc, stamp, code, _pad: 0 };
            let jc = jit.jc.as_ptr();
            let before = self.instret;
            let (ram, marks) = self.ram.raw_parts();
            let tlb = self.tlb.raw_layout().base;
            let data_ctx = self.ctx_data as u64;
            let hart: *mut Hart = self;
            let mut ctx = Ctx {
                hart,
                bus: &mut bus as *mut &mut dyn Bus as *mut (),
                trap: Trap::new(0, 0),
                tlb,
                ram,
                marks,
                data_ctx,
                limit: before.wrapping_add(budget.saturating_sub(used)),
                exit_site: 0,
                jc,
                stamp,
            };
            // SAFETY: `code` is a block compiled in the current epoch of this
            // hart's buffer, valid for this page's current contents and
            // virtual page (`jit_enter` and the page's generation check in
            // `CodeCache::enter`). It runs with rbx = &x[0] + XBIAS of this
            // hart and r12 = &ctx, touches only those and its stack, and
            // reaches everything else through the helpers, which get the
            // hart and bus through `ctx`; nothing else uses them meanwhile.
            let rc = unsafe {
                let xbase = (hart as *mut u8).add(OFF_X + XBIAS as usize);
                enter(&mut ctx, xbase, code)
            };
            used += self.instret.wrapping_sub(before);
            if self.jit_hits != 0 {
                // Every access in this entry used the data context it began
                // with (what changes it ends the entry).
                self.tlb.count_hits(data_ctx as u16, std::mem::take(&mut self.jit_hits));
            }
            site = ctx.exit_site;
            if rc == RC_TRAP {
                used += 1;
                self.take_trap(ctx.trap.cause, ctx.trap.tval);
                return used;
            }
            if self.event || used >= budget || self.pc & !0xfff != vpage {
                return used;
            }
        }
    }

    /// Compiles the block starting at `pc` in decoded-code page `idx`.
    /// Returns its offset in the code buffer, or `None` if there is nothing
    /// to compile.
    fn jit_compile(&mut self, idx: usize, pc: u64) -> Option<u32> {
        let jit = self.jit.as_mut()?;
        let mut insns = std::mem::take(&mut jit.insns);
        insns.clear();
        let vpage = pc & !0xfff;
        let mut p = pc;
        while insns.len() < MAX_BLOCK_INSNS && p & !0xfff == vpage {
            let Some(s) = self.code.slot(&self.ram, idx, (p & 0xfff) as usize, self.exts) else {
                break;
            };
            insns.push((p, s.raw, s.insn));
            p = p.wrapping_add(insn_len(s.raw));
            if is_branch(s.insn.op) || always_leaves(&s.insn) {
                break;
            }
        }
        let tlb = TlbShape::new(&self.tlb.raw_layout());
        let named = self.perf_map_allowed();
        let jit = self.jit.as_mut()?;
        let r = if insns.is_empty() {
            None
        } else {
            jit.compile_block(&insns, p, tlb, named).or_else(|| {
                // The buffer is full: empty it and try once more.
                jit.flush();
                jit.compile_block(&insns, p, tlb, named)
            })
        };
        jit.insns = insns;
        r
    }
}

impl Jit {
    /// Assembles `insns` (ending at `end`, the pc after the last) into the
    /// buffer; `None` if it does not fit. `named`: the perf map, if open,
    /// may list the block.
    fn compile_block(
        &mut self,
        insns: &[(u64, u32, Insn)],
        end: u64,
        tlb: Option<TlbShape>,
        named: bool,
    ) -> Option<u32> {
        let base = self.buf.next_addr();
        let mut buf = std::mem::take(&mut self.asm);
        buf.clear();
        let mut c = Compiler {
            a: Asm { buf, base },
            epilogue: self.buf.addr(self.epilogue),
            vpage: insns[0].0 & !0xfff,
            tlb,
            n: 0,
            synced: 0,
            m: 0,
            m_synced: 0,
            stubs: Vec::new(),
            cached: [0; 4],
            dirty: 0,
        };
        c.alloc_regs(insns);
        let mut open = true;
        for &(pc, raw, ref i) in insns {
            if !c.insn(i, raw, pc) {
                open = false;
                break;
            }
        }
        if open {
            c.exit_to(end);
        }
        c.emit_stubs();
        let interp = insns.iter().filter(|(_, _, i)| classify_interp(i)).count();
        let n = c.n;
        let bytes = c.a.buf.len();
        let at = self.buf.push(&c.a.buf);
        self.asm = c.a.buf;
        let at = at?;
        self.stats.blocks += 1;
        self.stats.insns += n as u64;
        self.stats.bytes += bytes as u64;
        self.stats.interp_insns += interp as u64;
        if let (Some(map), true) = (self.perf_map, named) {
            use std::io::Write;
            let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // perf's format for JIT code: start, size (hex), name.
            let _ = writeln!(map, "{:x} {:x} guest_{:x}", self.buf.addr(at), bytes, insns[0].0);
        }
        u32::try_from(at).ok()
    }
}

type PerfMap = std::sync::Mutex<std::io::LineWriter<std::fs::File>>;

/// The process's perf map, if `STRATA_PERF_MAP=1`: created (emptied) once
/// and shared by every hart's JIT, so that harts do not overwrite each
/// other's lines through separate file offsets; written a line at a time,
/// so that nothing is lost when the process ends with `exit`, which drops
/// nothing.
fn perf_map() -> Option<&'static PerfMap> {
    static MAP: OnceLock<Option<PerfMap>> = OnceLock::new();
    MAP.get_or_init(|| {
        std::env::var_os("STRATA_PERF_MAP")
            .filter(|v| v == "1")
            .and_then(|_| std::fs::File::create(format!("/tmp/perf-{}.map", std::process::id())).ok())
            .map(|f| std::sync::Mutex::new(std::io::LineWriter::new(f)))
    })
    .as_ref()
}

/// The integer ALU ops the compiler emits straight-line code for (RV64I
/// register and immediate forms, M), which with rd = x0 need none.
fn pure_alu(op: Op) -> bool {
    matches!(
        op,
        Op::LUI
            | Op::AUIPC
            | Op::ADDI
            | Op::XORI
            | Op::ORI
            | Op::ANDI
            | Op::SLTI
            | Op::SLTIU
            | Op::SLLI
            | Op::SRLI
            | Op::SRAI
            | Op::ADD
            | Op::SUB
            | Op::XOR
            | Op::OR
            | Op::AND
            | Op::SLT
            | Op::SLTU
            | Op::SLL
            | Op::SRL
            | Op::SRA
            | Op::ADDIW
            | Op::SLLIW
            | Op::SRLIW
            | Op::SRAIW
            | Op::ADDW
            | Op::SUBW
            | Op::SLLW
            | Op::SRLW
            | Op::SRAW
            | Op::MUL
            | Op::MULW
            | Op::MULH
            | Op::MULHU
            | Op::MULHSU
            | Op::DIV
            | Op::DIVU
            | Op::REM
            | Op::REMU
            | Op::DIVW
            | Op::DIVUW
            | Op::REMW
            | Op::REMUW
    )
}

/// Whether the compiler hands `i` to the interpreter.
fn classify_interp(i: &Insn) -> bool {
    !crate::bitmanip::handles(i.op)
        && !pure_alu(i.op)
        && !matches!(
            i.op,
            Op::FENCE
                | Op::LB
                | Op::LH
                | Op::LW
                | Op::LD
                | Op::LBU
                | Op::LHU
                | Op::LWU
                | Op::SB
                | Op::SH
                | Op::SW
                | Op::SD
                | Op::BEQ
                | Op::BNE
                | Op::BLT
                | Op::BGE
                | Op::BLTU
                | Op::BGEU
                | Op::JAL
                | Op::JALR
        )
}

//! Seeded generator of random RV64GC instruction streams.
//!
//! A program is a list of [`Item`]s. Every item is self-contained: an `Op` is
//! straight-line assembly without labels, and the compound items (`Skip`,
//! `Loop`) get their labels from the emitter. So any sub-list of items (and
//! any sub-list of a compound item's body) is again a well-formed program,
//! which is what the reducer relies on.
//!
//! Register conventions (never written by generated code):
//!   x3 (gp)  runtime area (trap log, register save area)
//!   x8 (s0)  sandbox + 16 KiB     x9 (s1)  sandbox + 48 KiB
//!   x31 (t6) loop counter (written only by `Loop` items)
//! Generated code may *read* all 32 registers.

use crate::prng::Rng;
use strata_arch::csr::mstatus;

pub const SANDBOX_SIZE: u64 = 64 * 1024;
pub const BASE0_OFF: u64 = 16 * 1024;
pub const BASE1_OFF: u64 = 48 * 1024;
pub const LOOP_REG: u32 = 31;
pub const RESERVED: [u32; 4] = [3, 8, 9, LOOP_REG];

/// Where a `Skip` jumps from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// `b<cond> rs1, rs2` or `jal rd`: the emitter appends `, <label>`.
    Direct(String),
    /// `la x<tmp>, <label>; jalr x<rd>, <off>(x<tmp>)` with off 0 or 1.
    Indirect { rd: u32, tmp: u32, off: i32 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// One generated instruction (plus, for some, the address set-up it
    /// needs), as assembly lines separated by '\n'. Never contains labels.
    Op(String),
    /// A forward jump over `body` (taken or not, depending on the data).
    Skip { head: Head, body: Vec<Item> },
    /// `body` executed `count` times, counted down in x31.
    Loop { count: u32, body: Vec<Item> },
    /// Dump the architectural state.
    Checkpoint,
}

impl Item {
    /// Number of generated instructions this item stands for (static).
    pub fn weight(&self) -> usize {
        match self {
            Item::Op(_) => 1,
            Item::Skip { body, .. } => 1 + body.iter().map(Item::weight).sum::<usize>(),
            Item::Loop { body, .. } => 2 + body.iter().map(Item::weight).sum::<usize>(),
            Item::Checkpoint => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub seed: u64,
    /// Seeds the sandbox contents (filled at start-up by the runtime).
    pub mem_seed: u64,
    /// Initial x registers; entries 0, 3, 8, 9 are ignored.
    pub init_x: Vec<u64>,
    /// Initial f registers (raw 64-bit patterns).
    pub init_f: Vec<u64>,
    /// Initial frm (always a valid rounding mode, 0..=4).
    pub frm: u8,
    pub items: Vec<Item>,
}

impl Program {
    pub fn weight(&self) -> usize {
        self.items.iter().map(Item::weight).sum()
    }
}

#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Generated instructions per program (static count).
    pub insns: usize,
    /// A checkpoint after every this many generated instructions.
    pub checkpoint_every: usize,
    /// Also generate what QEMU 7.2 lacks or departs from the specification
    /// on, for an oracle that is not QEMU (`--oracle interp`): Zicond,
    /// Zicbom/Zicboz/Zicbop, Zimop, Zihintntl, Zcb, Zcmop, Zawrs, Zfhmin,
    /// and CTZW
    /// (QEMU 7.2 counts past the low word
    /// when it is zero, tests/conformance/known-qemu-deviations.txt).
    pub beyond_qemu: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { insns: 5000, checkpoint_every: 500, beyond_qemu: false }
    }
}

pub fn generate(seed: u64, cfg: &GenConfig) -> Program {
    let mut g = Gen { r: Rng::new(seed), beyond_qemu: cfg.beyond_qemu };
    let mem_seed = g.r.next_u64();
    let init_x = (0..32).map(|_| g.int_val()).collect();
    let init_f = (0..32).map(|i| g.fp_val(i < 16)).collect();
    let frm = g.r.below(5) as u8;
    let mut items = Vec::new();
    let mut total = 0;
    let mut since_cp = 0;
    while total < cfg.insns {
        let it = g.top_item();
        let w = it.weight();
        items.push(it);
        total += w;
        since_cp += w;
        if since_cp >= cfg.checkpoint_every && total < cfg.insns {
            items.push(Item::Checkpoint);
            since_cp = 0;
        }
    }
    Program { seed, mem_seed, init_x, init_f, frm, items }
}

struct Gen {
    r: Rng,
    beyond_qemu: bool,
}

const WRITABLE: [u32; 27] =
    [1, 2, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30];

const RM: [&str; 6] = ["rne", "rtz", "rdn", "rup", "rmm", "dyn"];

const INT_EDGES: [u64; 16] = [
    0,
    1,
    2,
    u64::MAX,
    u64::MAX - 1,
    0x8000_0000_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000,
    0x7fff_ffff,
    0xffff_ffff,
    0xffff_ffff_8000_0000,
    0xffff_ffff_7fff_ffff,
    0x1_0000_0000,
    0x8000,
    0xffff_ffff_ffff_f800,
    0x7ff,
];

const F64_EDGES: [u64; 30] = [
    0x0000_0000_0000_0000, // +0
    0x8000_0000_0000_0000, // -0
    0x7ff0_0000_0000_0000, // +inf
    0xfff0_0000_0000_0000, // -inf
    0x7ff8_0000_0000_0000, // canonical qNaN
    0xfff8_0000_0000_0123, // qNaN, sign and payload
    0x7ff0_0000_0000_0001, // sNaN
    0xfff4_0000_0000_0000, // sNaN, sign
    0x0000_0000_0000_0001, // min subnormal
    0x000f_ffff_ffff_ffff, // max subnormal
    0x800f_ffff_ffff_ffff, // -max subnormal
    0x0010_0000_0000_0000, // min normal
    0x7fef_ffff_ffff_ffff, // max finite
    0xffef_ffff_ffff_ffff, // -max finite
    0x3ff0_0000_0000_0000, // 1.0
    0xbff0_0000_0000_0000, // -1.0
    0x3fe0_0000_0000_0000, // 0.5
    0x3ff8_0000_0000_0000, // 1.5
    0x4004_0000_0000_0000, // 2.5
    0xc004_0000_0000_0000, // -2.5
    0x41e0_0000_0000_0000, // 2^31
    0xc1e0_0000_0000_0000, // -2^31
    0x41df_ffff_ffc0_0000, // 2^31-1
    0x41f0_0000_0000_0000, // 2^32
    0x43e0_0000_0000_0000, // 2^63
    0xc3e0_0000_0000_0000, // -2^63
    0x43f0_0000_0000_0000, // 2^64
    0x3ca0_0000_0000_0000, // 2^-53
    0x47ef_ffff_e000_0000, // max finite single, as a double
    0x3690_0000_0000_0000, // below min subnormal single
];

const F32_EDGES: [u32; 24] = [
    0x0000_0000,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0xffc0_0001,
    0x7f80_0001,
    0xffa0_0000,
    0x0000_0001,
    0x007f_ffff,
    0x8000_0001,
    0x0080_0000,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x3f80_0000,
    0xbf80_0000,
    0x3f00_0000,
    0x4020_0000,
    0xc020_0000,
    0x4f00_0000,
    0xcf00_0000,
    0x5f00_0000,
    0xdf00_0000,
    0x4f80_0000,
];

impl Gen {
    fn wreg(&mut self) -> u32 {
        if self.r.chance(1, 50) {
            0
        } else {
            *self.r.pick(&WRITABLE)
        }
    }
    fn wreg_not(&mut self, avoid: &[u32]) -> u32 {
        loop {
            let r = *self.r.pick(&WRITABLE);
            if !avoid.contains(&r) {
                return r;
            }
        }
    }
    fn rreg(&mut self) -> u32 {
        self.r.below(32) as u32
    }
    fn freg(&mut self) -> u32 {
        // A small "hot" set now and then so results feed later operations.
        if self.r.chance(1, 3) {
            self.r.below(6) as u32
        } else {
            self.r.below(32) as u32
        }
    }
    fn rm(&mut self) -> &'static str {
        if self.r.chance(1, 3) {
            "dyn"
        } else {
            RM[self.r.below(RM.len() as u64) as usize]
        }
    }
    fn imm12(&mut self) -> i64 {
        match self.r.below(4) {
            0 => *self.r.pick(&[0, 1, -1, 2047, -2048, 2046, -2047, 0x7f0, -16]),
            1 => self.r.range_i64(-16, 16),
            _ => self.r.range_i64(-2048, 2047),
        }
    }
    fn int_val(&mut self) -> u64 {
        match self.r.below(7) {
            0 | 1 => *self.r.pick(&INT_EDGES),
            2 => self.r.range_i64(-64, 64) as u64,
            3 => self.r.next_u64() as u32 as i32 as i64 as u64,
            4 => {
                let k = self.r.below(64);
                let v = 1u64 << k;
                *self.r.pick(&[v, v.wrapping_sub(1), v.wrapping_neg()])
            }
            _ => self.r.next_u64(),
        }
    }
    /// An f-register value; `single` biases it towards NaN-boxed singles
    /// (f0-f15 mostly hold singles, f16-f31 doubles, so that results are
    /// not all NaN from mixing precisions).
    fn fp_val(&mut self, single: bool) -> u64 {
        let boxed = |s: u32| 0xffff_ffff_0000_0000 | s as u64;
        let k = self.r.below(10);
        if k == 0 {
            // Not NaN-boxed single: upper half not all ones.
            let hi = *self.r.pick(&[0u64, 0xffff_fffe, 0x7fff_ffff, 1]);
            return (hi << 32) | *self.r.pick(&F32_EDGES) as u64;
        }
        if k == 1 {
            return self.r.next_u64();
        }
        // Exact small numbers (conversions round-trip, ties to round).
        let small = self.r.range_i64(-300, 300) as f64 / *self.r.pick(&[1.0, 2.0, 4.0, 8.0]);
        if single {
            match k {
                2..=4 => boxed(*self.r.pick(&F32_EDGES)),
                5 => boxed((small as f32).to_bits()),
                _ => {
                    let e = (127 + self.r.range_i64(-40, 40)) as u32;
                    boxed(((self.r.next_u64() as u32) & 0x807f_ffff) | (e << 23))
                }
            }
        } else {
            match k {
                2..=4 => *self.r.pick(&F64_EDGES),
                5 => small.to_bits(),
                _ => {
                    let e = (1023 + self.r.range_i64(-70, 70)) as u64;
                    (self.r.next_u64() & 0x800f_ffff_ffff_ffff) | (e << 52)
                }
            }
        }
    }

    /// An f register for precision `p`, usually from that precision's half.
    fn freg_p(&mut self, p: &str) -> u32 {
        let base = if p == "s" { 0 } else { 16 };
        if self.r.chance(1, 8) {
            self.r.below(32) as u32
        } else if self.r.chance(1, 3) {
            base + self.r.below(4) as u32
        } else {
            base + self.r.below(16) as u32
        }
    }

    fn top_item(&mut self) -> Item {
        match self.r.below(1000) {
            0..=39 => self.skip_item(),
            40..=54 => self.loop_item(),
            _ => Item::Op(self.op()),
        }
    }

    fn skip_item(&mut self) -> Item {
        let head = match self.r.below(10) {
            0 => Head::Direct(format!("jal x{}", self.wreg())),
            1 => {
                let tmp = self.wreg_not(&[]);
                // JALR clears bit 0 of the target: offset 1 lands on the label.
                Head::Indirect { rd: self.wreg(), tmp, off: self.r.below(2) as i32 }
            }
            _ => {
                let c = *self.r.pick(&["beq", "bne", "blt", "bge", "bltu", "bgeu"]);
                // Same register now and then: always/never taken.
                let a = self.rreg();
                let b = if self.r.chance(1, 8) { a } else { self.rreg() };
                Head::Direct(format!("{c} x{a}, x{b}"))
            }
        };
        let n = 1 + self.r.below(6) as usize;
        let body = (0..n).map(|_| Item::Op(self.op())).collect();
        Item::Skip { head, body }
    }

    fn loop_item(&mut self) -> Item {
        let count = 1 + self.r.below(6) as u32;
        let n = 2 + self.r.below(7) as usize;
        let body = (0..n).map(|_| if self.r.chance(1, 8) { self.skip_item() } else { Item::Op(self.op()) }).collect();
        Item::Loop { count, body }
    }

    /// One straight-line generated instruction.
    fn op(&mut self) -> String {
        const W: [u32; 15] = [14, 10, 2, 9, 3, 12, 3, 5, 26, 5, 5, 1, 1, 1, 10];
        match self.r.weighted(&W) {
            0 => self.alu_rr(),
            1 => self.alu_ri(),
            2 => {
                let op = *self.r.pick(&["lui", "auipc"]);
                let imm = if self.r.chance(1, 4) {
                    *self.r.pick(&[0, 0x80000, 0x7ffff, 0xfffff, 1])
                } else {
                    self.r.below(1 << 20) as i64
                };
                format!("{op} x{}, {imm:#x}", self.wreg())
            }
            3 => {
                let op = *self.r.pick(&[
                    "mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu", "mulw", "divw", "divuw", "remw",
                    "remuw",
                ]);
                format!("{op} x{}, x{}, x{}", self.wreg(), self.rreg(), self.rreg())
            }
            4 => format!("li x{}, {}", self.wreg(), self.int_val() as i64),
            5 => self.mem(),
            6 => self.mem_computed(),
            7 => self.atomic(),
            8 => self.fp(),
            9 => {
                let t = self.wreg_not(&[]);
                let f = self.freg();
                format!("li x{t}, {}\nfmv.d.x f{f}, x{t}", self.fp_val(f < 16) as i64)
            }
            10 => self.csr(),
            11 => self.trap(),
            12 => self.unmapped(),
            13 => self.misc(),
            _ => self.bitmanip(),
        }
    }

    /// Zba, Zbb, Zbc, Zbs (QEMU's default CPU has them) and, beyond QEMU,
    /// Zicond, whose instructions are written with `.insn` (R-type, OP,
    /// funct7 0000111; funct3 5 CZERO.EQZ, 7 CZERO.NEZ).
    fn bitmanip(&mut self) -> String {
        const RR: [&str; 25] = [
            "sh1add",
            "sh2add",
            "sh3add",
            "add.uw",
            "sh1add.uw",
            "sh2add.uw",
            "sh3add.uw",
            "andn",
            "orn",
            "xnor",
            "max",
            "maxu",
            "min",
            "minu",
            "rol",
            "ror",
            "rolw",
            "rorw",
            "clmul",
            "clmulh",
            "clmulr",
            "bclr",
            "bext",
            "binv",
            "bset",
        ];
        const UNARY: [&str; 10] =
            ["clz", "ctz", "cpop", "clzw", "cpopw", "sext.b", "sext.h", "zext.h", "orc.b", "rev8"];
        const IMM: [(&str, u64); 7] =
            [("slli.uw", 64), ("rori", 64), ("roriw", 32), ("bclri", 64), ("bexti", 64), ("binvi", 64), ("bseti", 64)];
        let (rd, a, b) = (self.wreg(), self.rreg(), self.rreg());
        match self.r.below(if self.beyond_qemu { 5 } else { 4 }) {
            0 | 1 => format!("{} x{rd}, x{a}, x{b}", self.r.pick(&RR)),
            2 => {
                let op = if self.beyond_qemu && self.r.chance(1, 11) { "ctzw" } else { *self.r.pick(&UNARY) };
                format!("{op} x{rd}, x{a}")
            }
            3 => {
                let (op, n) = *self.r.pick(&IMM);
                let sh = if self.r.chance(1, 3) { *self.r.pick(&[0, 1, 31, n - 1]) } else { self.r.below(n) };
                format!("{op} x{rd}, x{a}, {sh}")
            }
            _ => format!(".insn r 0x33, {}, 7, x{rd}, x{a}, x{b}", self.r.pick(&[5, 7])),
        }
    }

    /// Fences, hints and other instructions without architectural effect
    /// (beyond decoding), and an SC without a reservation (must fail).
    ///
    /// Beyond QEMU (`--oracle interp`, which runs `--cpu max`): the
    /// Zicbom/Zicboz cache-block operations on a block of the sandbox
    /// (CBO.ZERO writes it), Zicbop's prefetch hints (ORI with rd = 0),
    /// Zimop's MOPs and Zihintntl's hints, Zcb's compressed forms (loads
    /// and stores at the sandbox bases x8/x9), Zcmop's C.MOP.n and Zawrs's
    /// WRS (which, with only LR/SC pairs generated, never has a
    /// reservation to wait on).
    fn misc(&mut self) -> String {
        match self.r.below(if self.beyond_qemu { 12 } else { 6 }) {
            10 => self.zcb(),
            11 => format!(".word {:#x}", self.r.pick(&[0x00d0_0073u32, 0x01d0_0073])),
            6 => {
                let base = self.base();
                let off = self.sandbox_off(1, false);
                let t = self.wreg_not(&[]);
                let op = *self.r.pick(&[0, 1, 2, 4, 4]);
                format!("addi x{t}, x{base}, {off}\n.insn i 0x0f, 2, x0, x{t}, {op}")
            }
            8 => {
                // Zimop: MOP.R.n (rs2 field 111nn) or MOP.RR.n, rd <- 0.
                let (rd, rs1) = (self.wreg(), self.rreg());
                let n = self.r.below(32) as u32;
                if self.r.chance(1, 2) {
                    let f7 = 0x40 | (n >> 4 & 1) << 5 | (n >> 2 & 3) << 1;
                    format!(".insn r 0x73, 4, {f7:#x}, x{rd}, x{rs1}, x{}", 28 + (n & 3))
                } else {
                    let f7 = 0x41 | (n >> 2 & 1) << 5 | (n & 3) << 1;
                    format!(".insn r 0x73, 4, {f7:#x}, x{rd}, x{rs1}, x{}", self.rreg())
                }
            }
            9 => {
                // Zihintntl: NTL.P1/PALL/S1/ALL (C.NTL.* when assembled
                // compressed is left to the assembler).
                format!("add x0, x0, x{}", 2 + self.r.below(4))
            }
            7 => {
                let kind = *self.r.pick(&[0, 1, 3]);
                format!("ori x0, x{}, {}", self.rreg(), (self.r.range_i64(-64, 63) << 5) | kind)
            }
            0 => "fence".into(),
            1 => "fence.i".into(),
            2 => format!(
                "fence {}, {}",
                self.r.pick(&["r", "w", "rw", "i", "o", "iorw"]),
                self.r.pick(&["r", "w", "rw", "iorw"])
            ),
            3 => "nop".into(),
            4 => format!("addi x0, x{}, {}", self.rreg(), self.imm12()),
            _ => {
                // After any earlier SC the reservation is gone, and only LR/SC
                // pairs (never a lone LR) are generated, so this SC fails
                // (rd = nonzero) and must not write memory.
                let (w, size) = *self.r.pick(&[("w", 4i64), ("d", 8i64)]);
                let base = self.base();
                let off = self.sandbox_off(size, true);
                let t = self.wreg_not(&[]);
                let rd = self.wreg();
                format!("addi x{t}, x{base}, {off}\nsc.{w} x{rd}, x{}, (x{t})", self.rreg())
            }
        }
    }

    /// One Zcb or Zcmop word (`.half`: binutils 2.40 lacks both), from the
    /// Zc* 1.0.0 and Zcmop 1.0 encoding figures. Destinations are x10..x15
    /// (rd' names x8..x15, and x8/x9 are the sandbox bases); loads and
    /// stores address the base itself plus 0..3.
    fn zcb(&mut self) -> String {
        let rd = 2 + self.r.below(6) as u32; // x10..x15 as rd'
        let base = self.base() - 8; // x8/x9 as rs1'
        let src = self.r.below(8) as u32; // any of x8..x15 as rs2'
        let u2 = self.r.below(4) as u32;
        let word = match self.r.below(7) {
            0 => 0x8000 | base << 7 | (u2 & 1) << 6 | (u2 >> 1) << 5 | rd << 2, // c.lbu
            1 => 0x8400 | base << 7 | (self.r.below(2) as u32) << 6 | (u2 >> 1) << 5 | rd << 2, // c.lh(u)
            2 => 0x8800 | base << 7 | (u2 & 1) << 6 | (u2 >> 1) << 5 | src << 2, // c.sb
            3 => 0x8c00 | base << 7 | (u2 >> 1) << 5 | src << 2,                // c.sh
            4 => 0x9c61 | rd << 7 | (self.r.below(6) as u32) << 2,              // c.zext.b .. c.not
            5 => 0x9c41 | rd << 7 | src << 2,                                   // c.mul
            _ => 0x6081 | (self.r.below(8) as u32) << 8,                        // c.mop.n
        };
        format!(".half {word:#06x}")
    }

    fn alu_rr(&mut self) -> String {
        let op = *self.r.pick(&[
            "add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and", "addw", "subw", "sllw", "srlw",
            "sraw",
        ]);
        format!("{op} x{}, x{}, x{}", self.wreg(), self.rreg(), self.rreg())
    }

    fn alu_ri(&mut self) -> String {
        let (rd, rs) = (self.wreg(), self.rreg());
        match self.r.below(4) {
            0 => {
                let op = *self.r.pick(&["slli", "srli", "srai"]);
                format!("{op} x{rd}, x{rs}, {}", self.r.below(64))
            }
            1 => {
                let op = *self.r.pick(&["slliw", "srliw", "sraiw"]);
                format!("{op} x{rd}, x{rs}, {}", self.r.below(32))
            }
            _ => {
                let op = *self.r.pick(&["addi", "slti", "sltiu", "xori", "ori", "andi", "addiw"]);
                format!("{op} x{rd}, x{rs}, {}", self.imm12())
            }
        }
    }

    /// Offset from a sandbox base so that [base+off, base+off+size) stays in
    /// the sandbox; aligned most of the time, clustered near 0 half the time
    /// so loads see earlier stores.
    fn sandbox_off(&mut self, size: i64, align: bool) -> i64 {
        let mut off =
            if self.r.chance(1, 2) { self.r.range_i64(-64, 64) } else { self.r.range_i64(-2048, 2047 - size) };
        if align {
            off &= !(size - 1);
        }
        off.clamp(-2048, 2047 - size + 1)
    }

    fn base(&mut self) -> u32 {
        if self.r.chance(1, 2) {
            8
        } else {
            9
        }
    }

    fn mem(&mut self) -> String {
        const K: [(&str, i64, u8); 15] = [
            ("lb", 1, b'l'),
            ("lh", 2, b'l'),
            ("lw", 4, b'l'),
            ("ld", 8, b'l'),
            ("lbu", 1, b'l'),
            ("lhu", 2, b'l'),
            ("lwu", 4, b'l'),
            ("sb", 1, b's'),
            ("sh", 2, b's'),
            ("sw", 4, b's'),
            ("sd", 8, b's'),
            ("flw", 4, b'L'),
            ("fld", 8, b'L'),
            ("fsw", 4, b'S'),
            ("fsd", 8, b'S'),
        ];
        let (op, size, kind) = *self.r.pick(&K);
        let align = !self.r.chance(1, 6);
        let off = self.sandbox_off(size, align);
        let base = self.base();
        match kind {
            b'l' => format!("{op} x{}, {off}(x{base})", self.wreg()),
            b's' => format!("{op} x{}, {off}(x{base})", self.rreg()),
            b'L' => format!("{op} f{}, {off}(x{base})", self.freg()),
            _ => format!("{op} f{}, {off}(x{base})", self.freg()),
        }
    }

    /// Data-dependent address: tmp = base + (reg & mask), then an access at
    /// a non-positive offset from tmp (stays inside the sandbox).
    fn mem_computed(&mut self) -> String {
        let src = self.rreg();
        let t = self.wreg_not(&[]);
        let base = self.base();
        let mask = *self.r.pick(&[0x7f8, 0x7ff, 0x7fc, 0x0f8, 0x7f0]);
        let off = -(self.r.below(1024) as i64) & !7;
        let (op, fp) = *self.r.pick(&[
            ("ld", false),
            ("lw", false),
            ("lhu", false),
            ("sd", false),
            ("sw", false),
            ("sb", false),
            ("fld", true),
            ("fsw", true),
        ]);
        let data = if fp {
            format!("f{}", self.freg())
        } else if op.starts_with('s') {
            format!("x{}", self.rreg())
        } else {
            format!("x{}", self.wreg())
        };
        format!("andi x{t}, x{src}, {mask}\nadd x{t}, x{t}, x{base}\n{op} {data}, {off}(x{t})")
    }

    fn atomic(&mut self) -> String {
        let (w, size) = *self.r.pick(&[("w", 4i64), ("d", 8i64)]);
        let ord = *self.r.pick(&["", ".aq", ".rl", ".aqrl"]);
        let base = self.base();
        let off = self.sandbox_off(size, true);
        let t = self.wreg_not(&[]);
        if self.r.chance(1, 4) {
            // A constrained LR/SC loop (Unpriv 8.3): SC may fail spuriously
            // (Strata drops the reservation between run slices), but the
            // loop must eventually succeed, so the end state is the same on
            // any conforming machine. rd2 is the retry flag: never x0 and
            // never an input of the SC.
            let rd1 = self.wreg_not(&[t]);
            let rs2 = self.wreg_not(&[t]);
            let rd2 = self.wreg_not(&[t, rs2, rd1]);
            let mid = if self.r.chance(1, 2) {
                format!("\naddi x{rs2}, x{rd1}, {}", self.r.range_i64(-8, 8))
            } else {
                String::new()
            };
            let ord2 = *self.r.pick(&["", ".aq", ".rl", ".aqrl"]);
            format!(
                "addi x{t}, x{base}, {off}\n1: lr.{w}{ord} x{rd1}, (x{t}){mid}\nsc.{w}{ord2} x{rd2}, x{rs2}, (x{t})\nbnez x{rd2}, 1b"
            )
        } else {
            let op = *self
                .r
                .pick(&["amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin", "amomax", "amominu", "amomaxu"]);
            let rd = self.wreg();
            format!("addi x{t}, x{base}, {off}\n{op}.{w}{ord} x{rd}, x{}, (x{t})", self.rreg())
        }
    }

    fn fp(&mut self) -> String {
        let p = *self.r.pick(&["s", "d"]);
        let (fd, fa, fb, fc) = (self.freg_p(p), self.freg_p(p), self.freg_p(p), self.freg_p(p));
        match self.r.below(if self.beyond_qemu { 15 } else { 13 }) {
            13 | 14 => self.zfhmin(),
            0 | 1 => {
                let op = *self.r.pick(&["fadd", "fsub", "fmul", "fdiv"]);
                format!("{op}.{p} f{fd}, f{fa}, f{fb}, {}", self.rm())
            }
            2 => format!("fsqrt.{p} f{fd}, f{fa}, {}", self.rm()),
            3 => {
                let op = *self.r.pick(&["fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"]);
                format!("{op}.{p} f{fd}, f{fa}, f{fb}")
            }
            4 | 5 => {
                let op = *self.r.pick(&["fmadd", "fmsub", "fnmsub", "fnmadd"]);
                format!("{op}.{p} f{fd}, f{fa}, f{fb}, f{fc}, {}", self.rm())
            }
            6 => {
                let op = *self.r.pick(&["feq", "flt", "fle"]);
                format!("{op}.{p} x{}, f{fa}, f{fb}", self.wreg())
            }
            7 => format!("fclass.{p} x{}, f{fa}", self.wreg()),
            8 => {
                let i = *self.r.pick(&["w", "wu", "l", "lu"]);
                format!("fcvt.{i}.{p} x{}, f{fa}, {}", self.wreg(), self.rm())
            }
            9 => {
                let i = *self.r.pick(&["w", "wu", "l", "lu"]);
                let rs = self.rreg();
                if p == "d" && i.starts_with('w') {
                    format!("fcvt.d.{i} f{fd}, x{rs}") // exact; no rm operand
                } else {
                    format!("fcvt.{p}.{i} f{fd}, x{rs}, {}", self.rm())
                }
            }
            10 => {
                if self.r.chance(1, 2) {
                    let (d, a) = (self.freg_p("s"), self.freg_p("d"));
                    format!("fcvt.s.d f{d}, f{a}, {}", self.rm())
                } else {
                    let (d, a) = (self.freg_p("d"), self.freg_p("s"));
                    format!("fcvt.d.s f{d}, f{a}")
                }
            }
            11 => {
                let q = if p == "s" { "w" } else { "d" };
                format!("fmv.x.{q} x{}, f{fa}", self.wreg())
            }
            _ => {
                let q = if p == "s" { "w" } else { "d" };
                format!("fmv.{q}.x f{fd}, x{}", self.rreg())
            }
        }
    }

    /// One Zfhmin instruction (beyond QEMU's default CPU): conversions
    /// between H and S/D, the moves, and FLH/FSH on the sandbox.
    fn zfhmin(&mut self) -> String {
        let (fd, fa) = (self.freg(), self.freg());
        match self.r.below(8) {
            0 => format!("fcvt.h.s f{fd}, f{fa}, {}", self.rm()),
            1 => format!("fcvt.h.d f{fd}, f{fa}, {}", self.rm()),
            2 => format!("fcvt.s.h f{fd}, f{fa}"),
            3 => format!("fcvt.d.h f{fd}, f{fa}"),
            4 => format!("fmv.x.h x{}, f{fa}", self.wreg()),
            5 => format!("fmv.h.x f{fd}, x{}", self.rreg()),
            6 => format!("flh f{fd}, {}(x{})", self.sandbox_off(2, false), self.base()),
            _ => format!("fsh f{fa}, {}(x{})", self.sandbox_off(2, false), self.base()),
        }
    }

    fn csr(&mut self) -> String {
        let csr = *self.r.pick(&["fflags", "frm", "fcsr", "mscratch", "sscratch"]);
        let rd = self.wreg();
        let fp_mode = csr == "frm" || csr == "fcsr";
        if fp_mode && self.r.chance(3, 4) {
            // Keep the rounding mode valid most of the time so dynamic-rm
            // instructions execute rather than trap.
            let v = if csr == "frm" { self.r.below(5) } else { self.r.below(32) };
            let op = *self.r.pick(&["csrrwi", "csrrwi", "csrrsi", "csrrci"]);
            let v = if op == "csrrsi" && csr == "frm" { v & 3 } else { v };
            return format!("{op} x{rd}, {csr}, {v}");
        }
        if self.r.chance(1, 2) {
            let op = *self.r.pick(&["csrrw", "csrrs", "csrrc"]);
            format!("{op} x{rd}, {csr}, x{}", self.rreg())
        } else {
            let op = *self.r.pick(&["csrrwi", "csrrsi", "csrrci"]);
            format!("{op} x{rd}, {csr}, {}", self.r.below(32))
        }
    }

    fn trap(&mut self) -> String {
        match self.r.below(9) {
            0 => "ecall".into(),
            1 => "ebreak".into(),
            2 => "c.ebreak".into(),
            3 => ".half 0x0000".into(),
            4 => format!(".word {:#x}", 0x0b | ((self.r.next_u64() as u32) << 7)),
            5 => {
                // OP-FP with a reserved static rounding mode (5 or 6).
                let f7 = *self.r.pick(&[0x00, 0x01, 0x04, 0x05, 0x08, 0x09, 0x0c, 0x0d]);
                let rm = 5 + self.r.below(2);
                format!(".insn r 0x53, {rm}, {f7:#x}, f{}, f{}, f{}", self.freg(), self.freg(), self.freg())
            }
            6 => format!("csrrw x{}, mvendorid, x{}", self.wreg(), self.rreg()),
            7 => format!("csrrs x{}, 0x8ff, x0", self.wreg()),
            _ => {
                // An FP instruction with mstatus.FS = Off is illegal.
                let t = self.wreg_not(&[]);
                let (a, b) = (self.freg(), self.freg());
                let op = match self.r.below(5) {
                    0 => format!("fadd.d f{a}, f{b}, f{b}"),
                    1 => format!("fmv.x.w x{}, f{a}", self.wreg_not(&[t])),
                    2 => format!("fld f{a}, 0(x8)"),
                    3 => format!("csrr x{}, fflags", self.wreg_not(&[t])),
                    _ => format!("fsgnj.s f{a}, f{b}, f{b}"),
                };
                let (fs, initial) = (mstatus::FS, mstatus::FS_INITIAL);
                format!("li x{t}, {fs:#x}\ncsrc mstatus, x{t}\n{op}\nli x{t}, {initial:#x}\ncsrs mstatus, x{t}")
            }
        }
    }

    /// Access to an address with nothing mapped (0x0..0x800 via x0).
    fn unmapped(&mut self) -> String {
        let off = *self.r.pick(&[0, 8, 16, 64, 256, 0x400]);
        match self.r.below(6) {
            0 => format!("sd x{}, {off}(x0)", self.rreg()),
            1 => format!("sw x{}, {off}(x0)", self.rreg()),
            2 => format!("fld f{}, {off}(x0)", self.freg()),
            _ => {
                let op = *self.r.pick(&["ld", "lw", "lh", "lb", "lbu", "lhu", "lwu"]);
                format!("{op} x{}, {off}(x0)", self.wreg())
            }
        }
    }
}

/// The integer register an assembly line writes, if any (for checks).
pub fn int_dest(line: &str) -> Option<u32> {
    let mut line = line.trim();
    if let Some((lab, rest)) = line.split_once(": ") {
        if lab.chars().all(|c| c.is_ascii_digit()) {
            line = rest.trim();
        }
    }
    let (mn, rest) = line.split_once(' ')?;
    if mn == ".insn" {
        // ".insn r OPCODE, FUNCT3, FUNCT7, RD, RS1, RS2" or
        // ".insn i OPCODE, FUNCT3, RD, RS1, IMM"
        let rd = if rest.starts_with("i ") { 2 } else { 3 };
        return rest.split(',').nth(rd)?.trim().strip_prefix('x')?.parse().ok();
    }
    let first = rest.split(',').next()?.trim();
    // Stores (sb, sh, sw, sd, fs*), branches and directives write no
    // register; everything else does.
    let store = ["sb", "sh", "sw", "sd"].contains(&mn);
    let writes = !(store || mn.starts_with("fs") || mn.starts_with('.') || mn.starts_with('b'));
    if !writes {
        return None;
    }
    first.strip_prefix('x')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(items: &[Item], out: &mut Vec<String>) {
        for it in items {
            match it {
                Item::Op(s) => out.extend(s.lines().map(String::from)),
                Item::Skip { head, body } => {
                    match head {
                        Head::Direct(h) => out.push(h.clone()),
                        Head::Indirect { rd, tmp, .. } => {
                            out.push(format!("la x{tmp}, L"));
                            out.push(format!("jalr x{rd}, 0(x{tmp})"));
                        }
                    }
                    all_lines(body, out)
                }
                Item::Loop { body, .. } => all_lines(body, out),
                Item::Checkpoint => {}
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let cfg = GenConfig { insns: 3000, checkpoint_every: 500, beyond_qemu: true };
        assert_eq!(generate(42, &cfg), generate(42, &cfg));
        assert_ne!(generate(42, &cfg).items, generate(43, &cfg).items);
    }

    #[test]
    fn size_and_checkpoints() {
        let cfg = GenConfig { insns: 4000, checkpoint_every: 500, beyond_qemu: true };
        let p = generate(7, &cfg);
        assert!(p.weight() >= 4000 && p.weight() < 4100, "{}", p.weight());
        let cps = p.items.iter().filter(|i| **i == Item::Checkpoint).count();
        assert!((6..=8).contains(&cps), "{cps}");
    }

    #[test]
    fn never_writes_reserved_registers() {
        for seed in 0..20 {
            let p = generate(seed, &GenConfig { insns: 3000, checkpoint_every: 500, beyond_qemu: true });
            let mut lines = Vec::new();
            all_lines(&p.items, &mut lines);
            for l in &lines {
                if let Some(rd) = int_dest(l) {
                    assert!(!RESERVED.contains(&rd), "seed {seed}: `{l}` writes x{rd}");
                }
            }
        }
    }

    /// The Zcb/Zcmop words (`.half`, which `int_dest` cannot read) decode
    /// to what they should: legal, and no write to x8/x9 or above x15;
    /// loads and stores on the sandbox bases.
    #[test]
    fn zcb_words_keep_the_bases() {
        use strata_arch::isa::{decode, Op};
        let mut seen = 0;
        for seed in 0..10 {
            let p = generate(seed, &GenConfig { insns: 3000, checkpoint_every: 500, beyond_qemu: true });
            let mut lines = Vec::new();
            all_lines(&p.items, &mut lines);
            for l in lines.iter().filter_map(|l| l.strip_prefix(".half 0x")) {
                let Ok(w) = u32::from_str_radix(l, 16) else { continue };
                if w == 0 {
                    continue; // the generator's deliberate illegal word
                }
                let i = decode(w);
                assert_ne!(i.op, Op::ILLEGAL, "{w:#06x}");
                let stores = matches!(i.op, Op::SB | Op::SH);
                assert!(stores || i.rd == 0 || (10..=15).contains(&i.rd), "{w:#06x} writes x{}", i.rd);
                if matches!(i.op, Op::LBU | Op::LH | Op::LHU | Op::SB | Op::SH) {
                    assert!(matches!(i.rs1, 8 | 9) && (0..4).contains(&i.imm), "{w:#06x}");
                }
                seen += 1;
            }
        }
        assert!(seen > 0, "no Zcb words generated");
    }

    #[test]
    fn int_dest_parses() {
        assert_eq!(int_dest("add x5, x6, x7"), Some(5));
        assert_eq!(int_dest("sd x8, 0(x9)"), None);
        assert_eq!(int_dest("sc.d x9, x1, (x2)"), Some(9));
        assert_eq!(int_dest("slli x8, x1, 3"), Some(8));
        assert_eq!(int_dest("fsd f1, 0(x8)"), None);
        assert_eq!(int_dest("la x31, L"), Some(31));
        assert_eq!(int_dest("1: lr.d x9, (x7)"), Some(9));
        assert_eq!(int_dest("sh x9, 0(x7)"), None);
        assert_eq!(int_dest("sh1add x9, x1, x2"), Some(9));
        assert_eq!(int_dest("sext.b x4, x1"), Some(4));
        assert_eq!(int_dest(".insn r 0x33, 5, 7, x12, x1, x2"), Some(12));
        assert_eq!(int_dest(".insn i 0x0f, 2, x0, x12, 4"), Some(0));
    }
}

//! A small x86-64 instruction encoder: exactly the instructions the block
//! compiler emits, in their general forms (any of the 16 registers, any
//! 32-bit displacement), and nothing else.
//!
//! Encodings follow the Intel 64 and IA-32 Architectures Software
//! Developer's Manual, Volume 2 (REX prefix §2.2.1, ModR/M and SIB §2.1.5,
//! and the instruction pages). The unit tests compare every form with the
//! bytes GNU `as` produces for the same instruction.

/// A general-purpose 64-bit register, numbered as in the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum R {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl R {
    #[inline]
    fn n(self) -> u8 {
        self as u8
    }
}

/// A memory operand `[base + index + disp]` (scale 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct M {
    pub base: R,
    /// Never rsp, which the SIB byte cannot name as an index.
    pub index: Option<R>,
    pub disp: i32,
}

/// `[base + disp]`.
pub const fn mem(base: R, disp: i32) -> M {
    M { base, index: None, disp }
}

/// `[base + index + disp]`.
pub fn mem_idx(base: R, index: R, disp: i32) -> M {
    debug_assert!(index != R::Rsp);
    M { base, index: Some(index), disp }
}

/// Condition codes (the low nibble of Jcc/SETcc/CMOVcc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Cc {
    O = 0x0,
    No = 0x1,
    B = 0x2,
    Ae = 0x3,
    E = 0x4,
    Ne = 0x5,
    Be = 0x6,
    A = 0x7,
    S = 0x8,
    Ns = 0x9,
    L = 0xc,
    Ge = 0xd,
    Le = 0xe,
    G = 0xf,
}

/// Two-operand integer ALU operations. The value is the `/digit` of the
/// immediate forms (opcode 81/83); the register forms use `digit*8 + 1`
/// (`op r/m, reg`) and the memory-source forms `digit*8 + 3` (`op reg, r/m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alu {
    Add = 0,
    Or = 1,
    And = 4,
    Sub = 5,
    Xor = 6,
    Cmp = 7,
}

/// Shifts and rotates (the `/digit` of opcodes C1 and D3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    Rol = 0,
    Ror = 1,
    Shl = 4,
    Shr = 5,
    Sar = 7,
}

/// Bit test and modify (`bt`/`bts`/`btr`/`btc`): the `/digit` of `0F BA`
/// with an immediate; the register forms are `0F A3 + 8 * (digit - 4)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bt {
    Test = 4,
    Set = 5,
    Reset = 6,
    Complement = 7,
}

/// A forward jump whose 32-bit displacement is filled in by [`Asm::bind`].
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct Fixup(usize);

/// Assembles into a byte vector. `base` is the address the bytes will run
/// at, which only the absolute-target jumps need.
pub struct Asm {
    pub buf: Vec<u8>,
    pub base: u64,
}

impl Asm {
    pub fn new(base: u64) -> Self {
        Self { buf: Vec::with_capacity(4096), base }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    fn b(&mut self, x: u8) {
        self.buf.push(x);
    }

    fn d32(&mut self, x: i32) {
        self.buf.extend_from_slice(&x.to_le_bytes());
    }

    /// A REX prefix if one is needed: `w` for 64-bit operand size, `r` the
    /// ModR/M reg field, `b` the r/m (or opcode) register.
    fn rex(&mut self, w: bool, r: u8, b: u8) {
        self.rex_x(w, r, 0, b, false);
    }

    /// As `rex`, with the SIB index `x`; `force` emits a REX even when it
    /// carries no bits (byte registers spl/bpl/sil/dil need one).
    fn rex_x(&mut self, w: bool, r: u8, x: u8, b: u8, force: bool) {
        let v = 0x40 | (w as u8) << 3 | (r >> 3 & 1) << 2 | (x >> 3 & 1) << 1 | (b >> 3 & 1);
        if v != 0x40 || force {
            self.b(v);
        }
    }

    /// ModR/M (+SIB, +displacement) for a memory operand.
    fn modrm_m(&mut self, reg: u8, m: M) {
        let base = m.base.n() & 7;
        // rbp/r13 as a base with mod 00 would mean "no base": use disp8 0.
        let (md, disp8) = if m.disp == 0 && base != 5 {
            (0u8, None)
        } else if (-128..=127).contains(&m.disp) {
            (1, Some(m.disp as i8))
        } else {
            (2, None)
        };
        match m.index {
            Some(ix) => {
                // r/m = 100: a SIB byte follows (scale 1, index, base).
                self.b(md << 6 | (reg & 7) << 3 | 4);
                self.b((ix.n() & 7) << 3 | base);
            }
            None => {
                self.b(md << 6 | (reg & 7) << 3 | base);
                if base == 4 {
                    // rsp/r12 as a base need a SIB byte: no index.
                    self.b(0x24);
                }
            }
        }
        match (md, disp8) {
            (1, Some(d)) => self.b(d as u8),
            (2, _) => self.d32(m.disp),
            _ => {}
        }
    }

    fn modrm_r(&mut self, reg: u8, rm: u8) {
        self.b(0xc0 | (reg & 7) << 3 | (rm & 7));
    }

    /// A one-byte opcode with two register operands.
    fn op_rr(&mut self, w: bool, op: u8, reg: R, rm: R) {
        self.rex(w, reg.n(), rm.n());
        self.b(op);
        self.modrm_r(reg.n(), rm.n());
    }

    fn op_rm(&mut self, w: bool, op: &[u8], reg: u8, m: M) {
        self.rex_x(w, reg, m.index.map_or(0, R::n), m.base.n(), false);
        self.buf.extend_from_slice(op);
        self.modrm_m(reg, m);
    }

    // ---- sized memory accesses -----------------------------------------------

    /// `movzx dst32, byte [m]` (zero-extends to 64 bits).
    pub fn movzx8(&mut self, dst: R, m: M) {
        self.op_rm(false, &[0x0f, 0xb6], dst.n(), m);
    }

    /// `movzx dst32, word [m]`.
    pub fn movzx16(&mut self, dst: R, m: M) {
        self.op_rm(false, &[0x0f, 0xb7], dst.n(), m);
    }

    /// `movsx dst64, byte [m]`.
    pub fn movsx8(&mut self, dst: R, m: M) {
        self.op_rm(true, &[0x0f, 0xbe], dst.n(), m);
    }

    /// `movsx dst64, word [m]`.
    pub fn movsx16(&mut self, dst: R, m: M) {
        self.op_rm(true, &[0x0f, 0xbf], dst.n(), m);
    }

    /// `movsxd dst64, dword [m]`.
    pub fn movsx32(&mut self, dst: R, m: M) {
        self.op_rm(true, &[0x63], dst.n(), m);
    }

    /// `mov byte [m], src8`.
    pub fn mov_m8(&mut self, m: M, src: R) {
        // spl/bpl/sil/dil exist only with a REX prefix (else ah..bh).
        let force = (4..8).contains(&src.n());
        self.rex_x(false, src.n(), m.index.map_or(0, R::n), m.base.n(), force);
        self.b(0x88);
        self.modrm_m(src.n(), m);
    }

    /// `mov word [m], src16`.
    pub fn mov_m16(&mut self, m: M, src: R) {
        self.b(0x66);
        self.op_rm(false, &[0x89], src.n(), m);
    }

    /// `cmp byte [m], imm8`.
    pub fn cmp_m8i(&mut self, m: M, imm: u8) {
        self.op_rm(false, &[0x80], 7, m);
        self.b(imm);
    }

    // ---- moves -------------------------------------------------------------

    /// `mov dst, [m]` (64- or 32-bit; the 32-bit form zero-extends).
    pub fn mov_rm(&mut self, w: bool, dst: R, m: M) {
        self.op_rm(w, &[0x8b], dst.n(), m);
    }

    /// `mov [m], src`.
    pub fn mov_mr(&mut self, w: bool, m: M, src: R) {
        self.op_rm(w, &[0x89], src.n(), m);
    }

    /// `mov dst, src` (89 /r, the form GNU as picks).
    pub fn mov_rr(&mut self, w: bool, dst: R, src: R) {
        self.op_rr(w, 0x89, src, dst);
    }

    /// `mov dst, imm` in the shortest form that gives the 64-bit value.
    pub fn mov_ri(&mut self, dst: R, imm: u64) {
        if imm <= u32::MAX as u64 {
            // mov r32, imm32 (B8+r) zero-extends.
            self.rex(false, 0, dst.n());
            self.b(0xb8 + (dst.n() & 7));
            self.d32(imm as u32 as i32);
        } else if imm as i64 == imm as i32 as i64 {
            // REX.W C7 /0: sign-extended imm32.
            self.rex(true, 0, dst.n());
            self.b(0xc7);
            self.modrm_r(0, dst.n());
            self.d32(imm as i32);
        } else {
            self.rex(true, 0, dst.n());
            self.b(0xb8 + (dst.n() & 7));
            self.buf.extend_from_slice(&imm.to_le_bytes());
        }
    }

    /// `mov qword [m], simm32` (sign-extended to 64 bits).
    pub fn mov_mi(&mut self, m: M, imm: i32) {
        self.op_rm(true, &[0xc7], 0, m);
        self.d32(imm);
    }

    /// `movsxd dst, src32`.
    pub fn movsxd(&mut self, dst: R, src: R) {
        self.op_rr(true, 0x63, dst, src);
    }

    /// `lea dst, [m]`.
    pub fn lea(&mut self, dst: R, m: M) {
        self.op_rm(true, &[0x8d], dst.n(), m);
    }

    // ---- arithmetic --------------------------------------------------------

    /// `op dst, src`.
    pub fn alu_rr(&mut self, op: Alu, w: bool, dst: R, src: R) {
        self.op_rr(w, (op as u8) * 8 + 1, src, dst);
    }

    /// `op dst, [m]`.
    pub fn alu_rm(&mut self, op: Alu, w: bool, dst: R, m: M) {
        self.op_rm(w, &[(op as u8) * 8 + 3], dst.n(), m);
    }

    /// `op dst, simm32` (imm8 form when it fits).
    pub fn alu_ri(&mut self, op: Alu, w: bool, dst: R, imm: i32) {
        self.rex(w, 0, dst.n());
        if (-128..=127).contains(&imm) {
            self.b(0x83);
            self.modrm_r(op as u8, dst.n());
            self.b(imm as i8 as u8);
        } else {
            self.b(0x81);
            self.modrm_r(op as u8, dst.n());
            self.d32(imm);
        }
    }

    /// `op qword [m], simm32`.
    pub fn alu_mi(&mut self, op: Alu, m: M, imm: i32) {
        if (-128..=127).contains(&imm) {
            self.op_rm(true, &[0x83], op as u8, m);
            self.b(imm as i8 as u8);
        } else {
            self.op_rm(true, &[0x81], op as u8, m);
            self.d32(imm);
        }
    }

    /// `test a, b`.
    pub fn test_rr(&mut self, w: bool, a: R, b: R) {
        // 85 /r: TEST r/m, r.
        self.rex(w, b.n(), a.n());
        self.b(0x85);
        self.modrm_r(b.n(), a.n());
    }

    /// `shl/shr/sar r, cl`.
    pub fn shift_cl(&mut self, op: Shift, w: bool, r: R) {
        self.rex(w, 0, r.n());
        self.b(0xd3);
        self.modrm_r(op as u8, r.n());
    }

    /// `shl/shr/sar r, imm8`.
    pub fn shift_ri(&mut self, op: Shift, w: bool, r: R, imm: u8) {
        self.rex(w, 0, r.n());
        self.b(0xc1);
        self.modrm_r(op as u8, r.n());
        self.b(imm);
    }

    /// `bswap r64`.
    pub fn bswap(&mut self, r: R) {
        self.rex(true, 0, r.n());
        self.b(0x0f);
        self.b(0xc8 + (r.n() & 7));
    }

    /// `not r64`.
    pub fn not(&mut self, r: R) {
        self.rex(true, 0, r.n());
        self.b(0xf7);
        self.modrm_r(2, r.n());
    }

    /// `movsx dst64, src8` / `movsx dst64, src16` / `movzx dst32, src16`
    /// (the REX.W prefix makes registers 4..7 name spl..dil as bytes).
    pub fn movsx8_rr(&mut self, dst: R, src: R) {
        self.rex(true, dst.n(), src.n());
        self.buf.extend_from_slice(&[0x0f, 0xbe]);
        self.modrm_r(dst.n(), src.n());
    }
    pub fn movsx16_rr(&mut self, dst: R, src: R) {
        self.rex(true, dst.n(), src.n());
        self.buf.extend_from_slice(&[0x0f, 0xbf]);
        self.modrm_r(dst.n(), src.n());
    }
    pub fn movzx16_rr(&mut self, dst: R, src: R) {
        self.rex(false, dst.n(), src.n());
        self.buf.extend_from_slice(&[0x0f, 0xb7]);
        self.modrm_r(dst.n(), src.n());
    }

    /// `bt/bts/btr/btc dst64, src64` (the bit number is `src` mod 64).
    pub fn bt_rr(&mut self, op: Bt, dst: R, src: R) {
        self.rex(true, src.n(), dst.n());
        self.b(0x0f);
        self.b(0xa3 + 8 * (op as u8 - 4));
        self.modrm_r(src.n(), dst.n());
    }

    /// `bt/bts/btr/btc dst64, imm8`.
    pub fn bt_ri(&mut self, op: Bt, dst: R, bit: u8) {
        self.rex(true, 0, dst.n());
        self.buf.extend_from_slice(&[0x0f, 0xba]);
        self.modrm_r(op as u8, dst.n());
        self.b(bit & 63);
    }

    /// `imul dst, [m]` (two-operand, low half).
    pub fn imul_rm(&mut self, w: bool, dst: R, m: M) {
        self.op_rm(w, &[0x0f, 0xaf], dst.n(), m);
    }

    /// `imul dst, src` (two-operand, low half).
    pub fn imul_rr(&mut self, w: bool, dst: R, src: R) {
        self.rex(w, dst.n(), src.n());
        self.b(0x0f);
        self.b(0xaf);
        self.modrm_r(dst.n(), src.n());
    }

    /// `mul r` / `imul r` (one operand): rdx:rax = rax * r.
    pub fn mul_r(&mut self, signed: bool, r: R) {
        self.rex(true, 0, r.n());
        self.b(0xf7);
        self.modrm_r(if signed { 5 } else { 4 }, r.n());
    }

    /// `mul qword [m]`: rdx:rax = rax * [m], unsigned.
    pub fn mul_m(&mut self, m: M) {
        self.op_rm(true, &[0xf7], 4, m);
    }

    /// `imul qword [m]`: rdx:rax = rax * [m], signed.
    pub fn imul1_m(&mut self, m: M) {
        self.op_rm(true, &[0xf7], 5, m);
    }

    /// `setcc r8` (for al, cl, dl, bl: no REX needed).
    pub fn setcc(&mut self, cc: Cc, r: R) {
        debug_assert!(r.n() < 4);
        self.b(0x0f);
        self.b(0x90 + cc as u8);
        self.modrm_r(0, r.n());
    }

    /// `cmovcc dst, src` (64-bit).
    pub fn cmov(&mut self, cc: Cc, dst: R, src: R) {
        self.rex(true, dst.n(), src.n());
        self.b(0x0f);
        self.b(0x40 + cc as u8);
        self.modrm_r(dst.n(), src.n());
    }

    // ---- control flow --------------------------------------------------------

    pub fn push(&mut self, r: R) {
        self.rex(false, 0, r.n());
        self.b(0x50 + (r.n() & 7));
    }

    pub fn pop(&mut self, r: R) {
        self.rex(false, 0, r.n());
        self.b(0x58 + (r.n() & 7));
    }

    pub fn ret(&mut self) {
        self.b(0xc3);
    }

    /// `mfence`: orders every earlier load and store before every later
    /// one (the only x86-64 reordering, a store passing a later load, too).
    pub fn mfence(&mut self) {
        self.b(0x0f);
        self.b(0xae);
        self.b(0xf0);
    }

    /// `call r`.
    pub fn call_r(&mut self, r: R) {
        self.rex(false, 0, r.n());
        self.b(0xff);
        self.modrm_r(2, r.n());
    }

    /// `jmp qword [m]`.
    pub fn jmp_m(&mut self, m: M) {
        self.op_rm(false, &[0xff], 4, m);
    }

    /// `jmp r`.
    pub fn jmp_r(&mut self, r: R) {
        self.rex(false, 0, r.n());
        self.b(0xff);
        self.modrm_r(4, r.n());
    }

    /// `jcc rel32` to a label bound later.
    pub fn jcc(&mut self, cc: Cc) -> Fixup {
        self.b(0x0f);
        self.b(0x80 + cc as u8);
        self.d32(0);
        Fixup(self.buf.len())
    }

    /// `jmp rel32` to a label bound later.
    #[allow(dead_code)]
    pub fn jmp(&mut self) -> Fixup {
        self.b(0xe9);
        self.d32(0);
        Fixup(self.buf.len())
    }

    /// Points the jump `f` at the current position.
    pub fn bind(&mut self, f: Fixup) {
        let here = self.buf.len();
        self.patch(f, here);
    }

    /// Points the jump `f` at offset `target` of this buffer.
    pub fn patch(&mut self, f: Fixup, target: usize) {
        let rel = target as i64 - f.0 as i64;
        // Blocks are a few KiB: the displacement always fits.
        let rel = rel as i32;
        self.buf[f.0 - 4..f.0].copy_from_slice(&rel.to_le_bytes());
    }

    /// `jmp rel32` to the absolute address `target`, which must lie within
    /// ±2 GiB of this code (the code buffer's own entry and exit stubs).
    pub fn jmp_abs(&mut self, target: u64) {
        self.b(0xe9);
        self.d32(0);
        self.rel_abs(target);
    }

    /// `jcc rel32` to the absolute address `target` (as for `jmp_abs`).
    pub fn jcc_abs(&mut self, cc: Cc, target: u64) {
        self.b(0x0f);
        self.b(0x80 + cc as u8);
        self.d32(0);
        self.rel_abs(target);
    }

    /// Fills the rel32 just emitted so that it reaches `target`.
    fn rel_abs(&mut self, target: u64) {
        let end = self.base.wrapping_add(self.buf.len() as u64);
        let rel = target.wrapping_sub(end) as i64;
        debug_assert!(rel == rel as i32 as i64);
        let n = self.buf.len();
        self.buf[n - 4..].copy_from_slice(&(rel as i32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use R::*;

    /// Each case: the encoder's output and the bytes GNU as 2.40 gives for
    /// the instruction in the comment (`as --64` then `objdump -d`).
    fn bytes(f: impl FnOnce(&mut Asm)) -> Vec<u8> {
        let mut a = Asm::new(0x1000);
        f(&mut a);
        a.buf
    }

    #[test]
    fn moves() {
        // mov rax, [rbx+0x10]
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, mem(Rbx, 0x10))), [0x48, 0x8b, 0x43, 0x10]);
        // mov rax, [rbx-0x80]
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, mem(Rbx, -0x80))), [0x48, 0x8b, 0x43, 0x80]);
        // mov rcx, [rbx+0x200]
        assert_eq!(bytes(|a| a.mov_rm(true, Rcx, mem(Rbx, 0x200))), [0x48, 0x8b, 0x8b, 0x00, 0x02, 0x00, 0x00]);
        // mov rdi, [r12]
        assert_eq!(bytes(|a| a.mov_rm(true, Rdi, mem(R12, 0))), [0x49, 0x8b, 0x3c, 0x24]);
        // mov rdi, [r12+8]
        assert_eq!(bytes(|a| a.mov_rm(true, Rdi, mem(R12, 8))), [0x49, 0x8b, 0x7c, 0x24, 0x08]);
        // mov rax, [rbp]   (needs disp8 0)
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, mem(Rbp, 0))), [0x48, 0x8b, 0x45, 0x00]);
        // mov r9, [r13+0x7f]
        assert_eq!(bytes(|a| a.mov_rm(true, R9, mem(R13, 0x7f))), [0x4d, 0x8b, 0x4d, 0x7f]);
        // mov eax, [rbx+8]
        assert_eq!(bytes(|a| a.mov_rm(false, Rax, mem(Rbx, 8))), [0x8b, 0x43, 0x08]);
        // mov [rbx-8], rdx
        assert_eq!(bytes(|a| a.mov_mr(true, mem(Rbx, -8), Rdx)), [0x48, 0x89, 0x53, 0xf8]);
        // mov [rsp], r15
        assert_eq!(bytes(|a| a.mov_mr(true, mem(Rsp, 0), R15)), [0x4c, 0x89, 0x3c, 0x24]);
        // mov rax, r10
        assert_eq!(bytes(|a| a.mov_rr(true, Rax, R10)), [0x4c, 0x89, 0xd0]);
        // mov r8d, ecx
        assert_eq!(bytes(|a| a.mov_rr(false, R8, Rcx)), [0x41, 0x89, 0xc8]);
        // mov eax, 0x12345678
        assert_eq!(bytes(|a| a.mov_ri(Rax, 0x1234_5678)), [0xb8, 0x78, 0x56, 0x34, 0x12]);
        // mov r11d, 0x80000000
        assert_eq!(bytes(|a| a.mov_ri(R11, 0x8000_0000)), [0x41, 0xbb, 0x00, 0x00, 0x00, 0x80]);
        // mov rcx, -2   (REX.W C7 /0)
        assert_eq!(bytes(|a| a.mov_ri(Rcx, u64::MAX - 1)), [0x48, 0xc7, 0xc1, 0xfe, 0xff, 0xff, 0xff]);
        // movabs rdx, 0x123456789abcdef0
        assert_eq!(
            bytes(|a| a.mov_ri(Rdx, 0x1234_5678_9abc_def0)),
            [0x48, 0xba, 0xf0, 0xde, 0xbc, 0x9a, 0x78, 0x56, 0x34, 0x12]
        );
        // movabs r10, 0x100000000
        assert_eq!(bytes(|a| a.mov_ri(R10, 1 << 32)), [0x49, 0xba, 0, 0, 0, 0, 1, 0, 0, 0]);
        // mov qword [rbx+0x18], -0x1000
        assert_eq!(bytes(|a| a.mov_mi(mem(Rbx, 0x18), -0x1000)), [0x48, 0xc7, 0x43, 0x18, 0x00, 0xf0, 0xff, 0xff]);
        // movsxd rax, eax ; movsxd r9, r10d
        assert_eq!(bytes(|a| a.movsxd(Rax, Rax)), [0x48, 0x63, 0xc0]);
        assert_eq!(bytes(|a| a.movsxd(R9, R10)), [0x4d, 0x63, 0xca]);
        // lea rcx, [rax-1]
        assert_eq!(bytes(|a| a.lea(Rcx, mem(Rax, -1))), [0x48, 0x8d, 0x48, 0xff]);
    }

    #[test]
    fn arithmetic() {
        // add rax, rcx ; sub rax, [rbx+0x10] ; and eax, [rbx+0x10]
        assert_eq!(bytes(|a| a.alu_rr(Alu::Add, true, Rax, Rcx)), [0x48, 0x01, 0xc8]);
        assert_eq!(bytes(|a| a.alu_rm(Alu::Sub, true, Rax, mem(Rbx, 0x10))), [0x48, 0x2b, 0x43, 0x10]);
        assert_eq!(bytes(|a| a.alu_rm(Alu::And, false, Rax, mem(Rbx, 0x10))), [0x23, 0x43, 0x10]);
        // or r8, r15 ; xor ecx, ecx ; cmp rax, [rbx-0x78]
        assert_eq!(bytes(|a| a.alu_rr(Alu::Or, true, R8, R15)), [0x4d, 0x09, 0xf8]);
        assert_eq!(bytes(|a| a.alu_rr(Alu::Xor, false, Rcx, Rcx)), [0x31, 0xc9]);
        assert_eq!(bytes(|a| a.alu_rm(Alu::Cmp, true, Rax, mem(Rbx, -0x78))), [0x48, 0x3b, 0x43, 0x88]);
        // add rax, 5 ; add rcx, 0x1000 ; and rdx, -16 ; xor ebx, 0x800 ; cmp r9, -1
        // (as has short forms for rax with imm32, which the encoder does not use)
        assert_eq!(bytes(|a| a.alu_ri(Alu::Add, true, Rax, 5)), [0x48, 0x83, 0xc0, 0x05]);
        assert_eq!(bytes(|a| a.alu_ri(Alu::Add, true, Rcx, 0x1000)), [0x48, 0x81, 0xc1, 0x00, 0x10, 0x00, 0x00]);
        assert_eq!(bytes(|a| a.alu_ri(Alu::And, true, Rdx, -16)), [0x48, 0x83, 0xe2, 0xf0]);
        assert_eq!(bytes(|a| a.alu_ri(Alu::Xor, false, Rbx, 0x800)), [0x81, 0xf3, 0x00, 0x08, 0x00, 0x00]);
        assert_eq!(bytes(|a| a.alu_ri(Alu::Cmp, true, R9, -1)), [0x49, 0x83, 0xf9, 0xff]);
        // add qword [rbx+0x40], 1 ; sub qword [rbx+0x300], 0x200 ; add qword [r12+0x10], -3
        assert_eq!(bytes(|a| a.alu_mi(Alu::Add, mem(Rbx, 0x40), 1)), [0x48, 0x83, 0x43, 0x40, 0x01]);
        assert_eq!(
            bytes(|a| a.alu_mi(Alu::Sub, mem(Rbx, 0x300), 0x200)),
            [0x48, 0x81, 0xab, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]
        );
        assert_eq!(bytes(|a| a.alu_mi(Alu::Add, mem(R12, 0x10), -3)), [0x49, 0x83, 0x44, 0x24, 0x10, 0xfd]);
        // test eax, eax ; test rdx, rdx ; test r8, rcx
        assert_eq!(bytes(|a| a.test_rr(false, Rax, Rax)), [0x85, 0xc0]);
        assert_eq!(bytes(|a| a.test_rr(true, Rdx, Rdx)), [0x48, 0x85, 0xd2]);
        assert_eq!(bytes(|a| a.test_rr(true, R8, Rcx)), [0x49, 0x85, 0xc8]);
        // shl rax, cl ; shr eax, cl ; sar rax, cl ; shl rax, 13 ; sar eax, 31 ; shr r10, 3
        assert_eq!(bytes(|a| a.shift_cl(Shift::Shl, true, Rax)), [0x48, 0xd3, 0xe0]);
        assert_eq!(bytes(|a| a.shift_cl(Shift::Shr, false, Rax)), [0xd3, 0xe8]);
        assert_eq!(bytes(|a| a.shift_cl(Shift::Sar, true, Rax)), [0x48, 0xd3, 0xf8]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Shl, true, Rax, 13)), [0x48, 0xc1, 0xe0, 0x0d]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Sar, false, Rax, 31)), [0xc1, 0xf8, 0x1f]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Shr, true, R10, 3)), [0x49, 0xc1, 0xea, 0x03]);
        // imul rax, [rbx+8] ; imul eax, [rbx+8] ; mul qword [rbx+8] ; imul qword [rbx-0x10]
        assert_eq!(bytes(|a| a.imul_rm(true, Rax, mem(Rbx, 8))), [0x48, 0x0f, 0xaf, 0x43, 0x08]);
        assert_eq!(bytes(|a| a.imul_rm(false, Rax, mem(Rbx, 8))), [0x0f, 0xaf, 0x43, 0x08]);
        assert_eq!(bytes(|a| a.mul_m(mem(Rbx, 8))), [0x48, 0xf7, 0x63, 0x08]);
        assert_eq!(bytes(|a| a.imul1_m(mem(Rbx, -0x10))), [0x48, 0xf7, 0x6b, 0xf0]);
        // imul rax, r9 ; imul eax, r10d ; mul r11 ; imul r8
        assert_eq!(bytes(|a| a.imul_rr(true, Rax, R9)), [0x49, 0x0f, 0xaf, 0xc1]);
        assert_eq!(bytes(|a| a.imul_rr(false, Rax, R10)), [0x41, 0x0f, 0xaf, 0xc2]);
        assert_eq!(bytes(|a| a.mul_r(false, R11)), [0x49, 0xf7, 0xe3]);
        assert_eq!(bytes(|a| a.mul_r(true, R8)), [0x49, 0xf7, 0xe8]);
        // mov r9, rax ; mov r10d, eax ; mov rax, r11 ; mov eax, r8d ; add rax, r9 ; cmp rax, r10
        assert_eq!(bytes(|a| a.mov_rr(true, R9, Rax)), [0x49, 0x89, 0xc1]);
        assert_eq!(bytes(|a| a.mov_rr(false, R10, Rax)), [0x41, 0x89, 0xc2]);
        assert_eq!(bytes(|a| a.mov_rr(true, Rax, R11)), [0x4c, 0x89, 0xd8]);
        assert_eq!(bytes(|a| a.mov_rr(false, Rax, R8)), [0x44, 0x89, 0xc0]);
        assert_eq!(bytes(|a| a.alu_rr(Alu::Add, true, Rax, R9)), [0x4c, 0x01, 0xc8]);
        assert_eq!(bytes(|a| a.alu_rr(Alu::Cmp, true, Rax, R10)), [0x4c, 0x39, 0xd0]);
        // setl cl ; setb al ; cmove rcx, rdx ; cmovne r8, r9
        assert_eq!(bytes(|a| a.setcc(Cc::L, Rcx)), [0x0f, 0x9c, 0xc1]);
        assert_eq!(bytes(|a| a.setcc(Cc::B, Rax)), [0x0f, 0x92, 0xc0]);
        assert_eq!(bytes(|a| a.cmov(Cc::E, Rcx, Rdx)), [0x48, 0x0f, 0x44, 0xca]);
        assert_eq!(bytes(|a| a.cmov(Cc::Ne, R8, R9)), [0x4d, 0x0f, 0x45, 0xc1]);
    }

    #[test]
    fn bit_manipulation() {
        // rol rax, cl ; ror eax, cl ; rol rax, 13 ; ror eax, 31 ; ror r10, 3
        assert_eq!(bytes(|a| a.shift_cl(Shift::Rol, true, Rax)), [0x48, 0xd3, 0xc0]);
        assert_eq!(bytes(|a| a.shift_cl(Shift::Ror, false, Rax)), [0xd3, 0xc8]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Rol, true, Rax, 13)), [0x48, 0xc1, 0xc0, 0x0d]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Ror, false, Rax, 31)), [0xc1, 0xc8, 0x1f]);
        assert_eq!(bytes(|a| a.shift_ri(Shift::Ror, true, R10, 3)), [0x49, 0xc1, 0xca, 0x03]);
        // bswap rax ; bswap r9 ; not rax ; not r8
        assert_eq!(bytes(|a| a.bswap(Rax)), [0x48, 0x0f, 0xc8]);
        assert_eq!(bytes(|a| a.bswap(R9)), [0x49, 0x0f, 0xc9]);
        assert_eq!(bytes(|a| a.not(Rax)), [0x48, 0xf7, 0xd0]);
        assert_eq!(bytes(|a| a.not(R8)), [0x49, 0xf7, 0xd0]);
        // movsx rax, al ; movsx rax, ax ; movzx eax, ax ; movsx rcx, sil
        assert_eq!(bytes(|a| a.movsx8_rr(Rax, Rax)), [0x48, 0x0f, 0xbe, 0xc0]);
        assert_eq!(bytes(|a| a.movsx16_rr(Rax, Rax)), [0x48, 0x0f, 0xbf, 0xc0]);
        assert_eq!(bytes(|a| a.movzx16_rr(Rax, Rax)), [0x0f, 0xb7, 0xc0]);
        assert_eq!(bytes(|a| a.movsx8_rr(Rcx, Rsi)), [0x48, 0x0f, 0xbe, 0xce]);
        // bts/btr/btc/bt rax, rcx
        assert_eq!(bytes(|a| a.bt_rr(Bt::Set, Rax, Rcx)), [0x48, 0x0f, 0xab, 0xc8]);
        assert_eq!(bytes(|a| a.bt_rr(Bt::Reset, Rax, Rcx)), [0x48, 0x0f, 0xb3, 0xc8]);
        assert_eq!(bytes(|a| a.bt_rr(Bt::Complement, Rax, Rcx)), [0x48, 0x0f, 0xbb, 0xc8]);
        assert_eq!(bytes(|a| a.bt_rr(Bt::Test, Rax, Rcx)), [0x48, 0x0f, 0xa3, 0xc8]);
        // bts rax, 63 ; btr rax, 0 ; btc r9, 5 ; bt rax, 40
        assert_eq!(bytes(|a| a.bt_ri(Bt::Set, Rax, 63)), [0x48, 0x0f, 0xba, 0xe8, 0x3f]);
        assert_eq!(bytes(|a| a.bt_ri(Bt::Reset, Rax, 0)), [0x48, 0x0f, 0xba, 0xf0, 0x00]);
        assert_eq!(bytes(|a| a.bt_ri(Bt::Complement, R9, 5)), [0x49, 0x0f, 0xba, 0xf9, 0x05]);
        assert_eq!(bytes(|a| a.bt_ri(Bt::Test, Rax, 40)), [0x48, 0x0f, 0xba, 0xe0, 0x28]);
        // cmovl/cmovg/cmovb/cmova rax, rcx
        assert_eq!(bytes(|a| a.cmov(Cc::L, Rax, Rcx)), [0x48, 0x0f, 0x4c, 0xc1]);
        assert_eq!(bytes(|a| a.cmov(Cc::G, Rax, Rcx)), [0x48, 0x0f, 0x4f, 0xc1]);
        assert_eq!(bytes(|a| a.cmov(Cc::B, Rax, Rcx)), [0x48, 0x0f, 0x42, 0xc1]);
        assert_eq!(bytes(|a| a.cmov(Cc::A, Rax, Rcx)), [0x48, 0x0f, 0x47, 0xc1]);
    }

    #[test]
    fn indexed_and_sized_accesses() {
        let x = |b, i, d| mem_idx(b, i, d);
        // cmp rcx, [r13+rax+0x2000] ; mov rcx, [r13+rax+8] ; mov rax, [r14+rcx]
        assert_eq!(
            bytes(|a| a.alu_rm(Alu::Cmp, true, Rcx, x(R13, Rax, 0x2000))),
            [0x49, 0x3b, 0x8c, 0x05, 0x00, 0x20, 0x00, 0x00]
        );
        assert_eq!(bytes(|a| a.mov_rm(true, Rcx, x(R13, Rax, 8))), [0x49, 0x8b, 0x4c, 0x05, 0x08]);
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, x(R14, Rcx, 0))), [0x49, 0x8b, 0x04, 0x0e]);
        // movzx eax, byte/word [r14+rcx] ; movsx rax, byte/word ; movsxd rax, dword ; mov eax, dword
        assert_eq!(bytes(|a| a.movzx8(Rax, x(R14, Rcx, 0))), [0x41, 0x0f, 0xb6, 0x04, 0x0e]);
        assert_eq!(bytes(|a| a.movzx16(Rax, x(R14, Rcx, 0))), [0x41, 0x0f, 0xb7, 0x04, 0x0e]);
        assert_eq!(bytes(|a| a.movsx8(Rax, x(R14, Rcx, 0))), [0x49, 0x0f, 0xbe, 0x04, 0x0e]);
        assert_eq!(bytes(|a| a.movsx16(Rax, x(R14, Rcx, 0))), [0x49, 0x0f, 0xbf, 0x04, 0x0e]);
        assert_eq!(bytes(|a| a.movsx32(Rax, x(R14, Rcx, 0))), [0x49, 0x63, 0x04, 0x0e]);
        assert_eq!(bytes(|a| a.mov_rm(false, Rax, x(R14, Rcx, 0))), [0x41, 0x8b, 0x04, 0x0e]);
        // mov byte/word/dword/qword [r14+rcx], dl/dx/edx/rdx
        assert_eq!(bytes(|a| a.mov_m8(x(R14, Rcx, 0), Rdx)), [0x41, 0x88, 0x14, 0x0e]);
        assert_eq!(bytes(|a| a.mov_m16(x(R14, Rcx, 0), Rdx)), [0x66, 0x41, 0x89, 0x14, 0x0e]);
        assert_eq!(bytes(|a| a.mov_mr(false, x(R14, Rcx, 0), Rdx)), [0x41, 0x89, 0x14, 0x0e]);
        assert_eq!(bytes(|a| a.mov_mr(true, x(R14, Rcx, 0), Rdx)), [0x49, 0x89, 0x14, 0x0e]);
        // cmp byte [r15+rax], 0 ; mov rax, [rbx+r12] ; mov rax, [rbp+rcx] ; mov rax, [r13+r9]
        assert_eq!(bytes(|a| a.cmp_m8i(x(R15, Rax, 0), 0)), [0x41, 0x80, 0x3c, 0x07, 0x00]);
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, x(Rbx, R12, 0))), [0x4a, 0x8b, 0x04, 0x23]);
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, x(Rbp, Rcx, 0))), [0x48, 0x8b, 0x44, 0x0d, 0x00]);
        assert_eq!(bytes(|a| a.mov_rm(true, Rax, x(R13, R9, 0))), [0x4b, 0x8b, 0x44, 0x0d, 0x00]);
        // lea rcx, [rsi+7] ; mov rbp, [r12+0x38]
        assert_eq!(bytes(|a| a.lea(Rcx, mem(Rsi, 7))), [0x48, 0x8d, 0x4e, 0x07]);
        assert_eq!(bytes(|a| a.mov_rm(true, Rbp, mem(R12, 0x38))), [0x49, 0x8b, 0x6c, 0x24, 0x38]);
    }

    #[test]
    fn control_flow() {
        // push rbx ; push r12 ; pop r15 ; pop rbp ; ret
        assert_eq!(bytes(|a| a.push(Rbx)), [0x53]);
        assert_eq!(bytes(|a| a.push(R12)), [0x41, 0x54]);
        assert_eq!(bytes(|a| a.pop(R15)), [0x41, 0x5f]);
        assert_eq!(bytes(|a| a.pop(Rbp)), [0x5d]);
        assert_eq!(bytes(|a| a.ret()), [0xc3]);
        // call rax ; call r11 ; jmp rdx ; jmp r8
        assert_eq!(bytes(|a| a.call_r(Rax)), [0xff, 0xd0]);
        assert_eq!(bytes(|a| a.call_r(R11)), [0x41, 0xff, 0xd3]);
        assert_eq!(bytes(|a| a.jmp_r(Rdx)), [0xff, 0xe2]);
        assert_eq!(bytes(|a| a.jmp_r(R8)), [0x41, 0xff, 0xe0]);
        // jmp qword [rax+16] ; jmp qword [r12+0x48] ; cmp rcx, [rax]
        assert_eq!(bytes(|a| a.jmp_m(mem(Rax, 16))), [0xff, 0x60, 0x10]);
        assert_eq!(bytes(|a| a.jmp_m(mem(R12, 0x48))), [0x41, 0xff, 0x64, 0x24, 0x48]);
        assert_eq!(bytes(|a| a.alu_rm(Alu::Cmp, true, Rcx, mem(Rax, 0))), [0x48, 0x3b, 0x08]);
        // {disp32} jne over one ret: 0f 85 01 00 00 00 c3 ; a jmp back to
        // the start from offset 7 ends at 12: displacement -12.
        let b = bytes(|a| {
            let f = a.jcc(Cc::Ne);
            a.ret();
            a.bind(f);
            let g = a.jmp();
            a.patch(g, 0);
        });
        assert_eq!(b, [0x0f, 0x85, 0x01, 0x00, 0x00, 0x00, 0xc3, 0xe9, 0xf4, 0xff, 0xff, 0xff]);
        // jmp / je to an absolute address 0x100 bytes before this code (at
        // 0x1000): displacements from the instruction's end, 0x1005 / 0x1006.
        assert_eq!(bytes(|a| a.jmp_abs(0xf00)), [0xe9, 0xfb, 0xfe, 0xff, 0xff]);
        assert_eq!(bytes(|a| a.jcc_abs(Cc::E, 0xf00)), [0x0f, 0x84, 0xfa, 0xfe, 0xff, 0xff]);
    }
}

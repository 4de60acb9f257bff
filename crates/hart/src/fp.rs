//! F and D instructions (Unprivileged ISA 20191213, chapters 11 and 12),
//! and Zfhmin's half-precision moves and conversions (Unpriv. "Zfh").
//! The arithmetic lives in `strata-fpu`; this file is the register, CSR and
//! `mstatus.FS` plumbing around it.

use crate::decode::Insn;
use crate::isa::Op;
use crate::trap::{cause, Trap};
use crate::{Bus, Hart};
use strata_fpu::{self as fpu, box_h, box_s, unbox_h, unbox_s, Rm};

impl Hart {
    fn fp_dirty(&mut self) {
        // §3.1.6.6: any change to FP state marks FS Dirty (in vsstatus too
        // when V=1, §8.2.11).
        self.fs_dirty();
    }

    /// Resolves an instruction's rm field, raising illegal instruction for
    /// the reserved values and for DYN when `frm` holds one (§11.2).
    fn rounding(&self, raw: u32) -> Result<Rm, Trap> {
        let field = (raw >> 12) & 7;
        let rm = if field == 7 { self.csr.frm } else { field as u64 };
        Rm::from_bits(rm).ok_or(Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits))
    }

    pub(crate) fn execute_fp(&mut self, bus: &mut dyn Bus, i: &Insn, raw: u32, addr: u64) -> Result<(), Trap> {
        // §8.2.11: when V=1, FS must be on in vsstatus as well; FS off is
        // an illegal instruction, never a virtual one (§8.6.1).
        if !self.fs_enabled() {
            return Err(Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits));
        }
        let (rd, r1, r2) = (i.rd as usize & 31, i.rs1 as usize & 31, i.rs2 as usize & 31);
        // rs3 (R4-type) sits in bits 31..27.
        let r3 = (raw >> 27) as usize;
        let (f1, f2, f3) = (self.f[r1], self.f[r2], self.f[r3]);
        let (s1, s2, s3) = (unbox_s(f1), unbox_s(f2), unbox_s(f3));
        let x1 = self.x[r1];
        // Each arm yields where its result goes and the flags it raised.
        enum Out {
            F(u64),
            X(u64),
            None,
        }
        let (out, flags) = match i.op {
            Op::FLW => (Out::F(box_s(self.load(bus, addr, 4)? as u32)), 0),
            Op::FLD => (Out::F(self.load(bus, addr, 8)?), 0),
            Op::FSW => {
                // FSW stores the low 32 bits whatever the boxing (§12.2).
                self.store(bus, addr, 4, f2)?;
                (Out::None, 0)
            }
            Op::FSD => {
                self.store(bus, addr, 8, f2)?;
                (Out::None, 0)
            }
            // Zfhmin: FLH NaN-boxes the half it loads; FSH stores the low
            // 16 bits whatever the boxing, as FSW does.
            Op::FLH => (Out::F(box_h(self.load(bus, addr, 2)? as u16)), 0),
            Op::FSH => {
                self.store(bus, addr, 2, f2)?;
                (Out::None, 0)
            }
            op => {
                macro_rules! s {
                    ($e:expr) => {{
                        let (v, fl) = $e;
                        (Out::F(box_s(v)), fl)
                    }};
                }
                macro_rules! d {
                    ($e:expr) => {{
                        let (v, fl) = $e;
                        (Out::F(v), fl)
                    }};
                }
                macro_rules! cmp {
                    ($e:expr) => {{
                        let (v, fl): (bool, u8) = $e;
                        (Out::X(v as u64), fl)
                    }};
                }
                macro_rules! x {
                    ($e:expr) => {{
                        let (v, fl) = $e;
                        (Out::X(v), fl)
                    }};
                }
                match op {
                    Op::FMADD_S => s!(fpu::fmadd_s(s1, s2, s3, self.rounding(raw)?)),
                    Op::FMSUB_S => s!(fpu::fmsub_s(s1, s2, s3, self.rounding(raw)?)),
                    Op::FNMSUB_S => s!(fpu::fnmsub_s(s1, s2, s3, self.rounding(raw)?)),
                    Op::FNMADD_S => s!(fpu::fnmadd_s(s1, s2, s3, self.rounding(raw)?)),
                    Op::FADD_S => s!(fpu::add_s(s1, s2, self.rounding(raw)?)),
                    Op::FSUB_S => s!(fpu::sub_s(s1, s2, self.rounding(raw)?)),
                    Op::FMUL_S => s!(fpu::mul_s(s1, s2, self.rounding(raw)?)),
                    Op::FDIV_S => s!(fpu::div_s(s1, s2, self.rounding(raw)?)),
                    Op::FSQRT_S => s!(fpu::sqrt_s(s1, self.rounding(raw)?)),
                    Op::FSGNJ_S => (Out::F(box_s(fpu::sgnj_s(s1, s2))), 0),
                    Op::FSGNJN_S => (Out::F(box_s(fpu::sgnjn_s(s1, s2))), 0),
                    Op::FSGNJX_S => (Out::F(box_s(fpu::sgnjx_s(s1, s2))), 0),
                    Op::FMIN_S => s!(fpu::min_s(s1, s2)),
                    Op::FMAX_S => s!(fpu::max_s(s1, s2)),
                    Op::FCVT_W_S => x!(fpu::cvt_w_s(s1, self.rounding(raw)?)),
                    Op::FCVT_WU_S => x!(fpu::cvt_wu_s(s1, self.rounding(raw)?)),
                    Op::FCVT_L_S => x!(fpu::cvt_l_s(s1, self.rounding(raw)?)),
                    Op::FCVT_LU_S => x!(fpu::cvt_lu_s(s1, self.rounding(raw)?)),
                    // FMV.X.W moves the low 32 bits as they are, boxed or
                    // not, sign-extended (§11.7).
                    Op::FMV_X_W => (Out::X(f1 as u32 as i32 as u64), 0),
                    Op::FCLASS_S => (Out::X(fpu::fclass_s(s1)), 0),
                    Op::FEQ_S => cmp!(fpu::feq_s(s1, s2)),
                    Op::FLT_S => cmp!(fpu::flt_s(s1, s2)),
                    Op::FLE_S => cmp!(fpu::fle_s(s1, s2)),
                    Op::FCVT_S_W => s!(fpu::cvt_s_w(x1, self.rounding(raw)?)),
                    Op::FCVT_S_WU => s!(fpu::cvt_s_wu(x1, self.rounding(raw)?)),
                    Op::FCVT_S_L => s!(fpu::cvt_s_l(x1, self.rounding(raw)?)),
                    Op::FCVT_S_LU => s!(fpu::cvt_s_lu(x1, self.rounding(raw)?)),
                    Op::FMV_W_X => (Out::F(box_s(x1 as u32)), 0),
                    Op::FMADD_D => d!(fpu::fmadd_d(f1, f2, f3, self.rounding(raw)?)),
                    Op::FMSUB_D => d!(fpu::fmsub_d(f1, f2, f3, self.rounding(raw)?)),
                    Op::FNMSUB_D => d!(fpu::fnmsub_d(f1, f2, f3, self.rounding(raw)?)),
                    Op::FNMADD_D => d!(fpu::fnmadd_d(f1, f2, f3, self.rounding(raw)?)),
                    Op::FADD_D => d!(fpu::add_d(f1, f2, self.rounding(raw)?)),
                    Op::FSUB_D => d!(fpu::sub_d(f1, f2, self.rounding(raw)?)),
                    Op::FMUL_D => d!(fpu::mul_d(f1, f2, self.rounding(raw)?)),
                    Op::FDIV_D => d!(fpu::div_d(f1, f2, self.rounding(raw)?)),
                    Op::FSQRT_D => d!(fpu::sqrt_d(f1, self.rounding(raw)?)),
                    Op::FSGNJ_D => (Out::F(fpu::sgnj_d(f1, f2)), 0),
                    Op::FSGNJN_D => (Out::F(fpu::sgnjn_d(f1, f2)), 0),
                    Op::FSGNJX_D => (Out::F(fpu::sgnjx_d(f1, f2)), 0),
                    Op::FMIN_D => d!(fpu::min_d(f1, f2)),
                    Op::FMAX_D => d!(fpu::max_d(f1, f2)),
                    Op::FCVT_S_D => s!(fpu::cvt_s_d(f1, self.rounding(raw)?)),
                    Op::FCVT_D_S => {
                        self.rounding(raw)?;
                        d!(fpu::cvt_d_s(s1))
                    }
                    Op::FEQ_D => cmp!(fpu::feq_d(f1, f2)),
                    Op::FLT_D => cmp!(fpu::flt_d(f1, f2)),
                    Op::FLE_D => cmp!(fpu::fle_d(f1, f2)),
                    Op::FCLASS_D => (Out::X(fpu::fclass_d(f1)), 0),
                    Op::FCVT_W_D => x!(fpu::cvt_w_d(f1, self.rounding(raw)?)),
                    Op::FCVT_WU_D => x!(fpu::cvt_wu_d(f1, self.rounding(raw)?)),
                    Op::FCVT_L_D => x!(fpu::cvt_l_d(f1, self.rounding(raw)?)),
                    Op::FCVT_LU_D => x!(fpu::cvt_lu_d(f1, self.rounding(raw)?)),
                    Op::FMV_X_D => (Out::X(f1), 0),
                    Op::FCVT_D_W => d!(fpu::cvt_d_w(x1, self.rounding(raw)?)),
                    Op::FCVT_D_WU => d!(fpu::cvt_d_wu(x1, self.rounding(raw)?)),
                    Op::FCVT_D_L => d!(fpu::cvt_d_l(x1, self.rounding(raw)?)),
                    Op::FCVT_D_LU => d!(fpu::cvt_d_lu(x1, self.rounding(raw)?)),
                    Op::FMV_D_X => (Out::F(x1), 0),
                    // Zfhmin. FMV.X.H moves the low 16 bits as they are,
                    // sign-extended; FMV.H.X boxes x's low 16 bits. The
                    // conversions read a half only if it is NaN-boxed.
                    Op::FMV_X_H => (Out::X(f1 as u16 as i16 as u64), 0),
                    Op::FMV_H_X => (Out::F(box_h(x1 as u16)), 0),
                    Op::FCVT_S_H => {
                        self.rounding(raw)?;
                        s!(fpu::cvt_s_h(unbox_h(f1)))
                    }
                    Op::FCVT_D_H => {
                        self.rounding(raw)?;
                        d!(fpu::cvt_d_h(unbox_h(f1)))
                    }
                    Op::FCVT_H_S => {
                        let (v, fl) = fpu::cvt_h_s(s1, self.rounding(raw)?);
                        (Out::F(box_h(v)), fl)
                    }
                    Op::FCVT_H_D => {
                        let (v, fl) = fpu::cvt_h_d(f1, self.rounding(raw)?);
                        (Out::F(box_h(v)), fl)
                    }
                    _ => return Err(Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits)),
                }
            }
        };
        match out {
            Out::F(v) => {
                self.f[rd] = v;
                self.fp_dirty();
            }
            Out::X(v) => {
                self.x[rd] = v;
                self.x[0] = 0;
            }
            Out::None => {}
        }
        if flags != 0 {
            self.csr.fflags |= flags as u64;
            self.fp_dirty();
        }
        Ok(())
    }
}

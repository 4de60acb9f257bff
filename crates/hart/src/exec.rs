//! Instruction semantics (Unprivileged ISA 20191213 chapters 2, 5, 7, 8, 9;
//! Privileged Architecture 20211203 §3.3 and §4.2.1). The bit-manipulation
//! and conditional operations are in `bitmanip.rs`, floating point in
//! `fp.rs`.

use crate::csr::{envcfg, hstatus, status};
use crate::decode::Insn;
use crate::isa::Op;
use crate::stats::Fence;
use crate::trap::{cause, Trap};
use crate::{Bus, Hart, Priv};
use strata_mmu::Access;

#[inline(always)]
fn sext32(v: u64) -> u64 {
    v as i32 as u64
}

impl Hart {
    #[inline(always)]
    fn illegal_insn(&self) -> Trap {
        Trap::new(cause::ILLEGAL_INSN, self.cur_insn_bits)
    }

    /// Whether a CBO whose enable is `field` (CBIE, CBCFE or CBZE) may run
    /// at the current privilege (Priv. §3.1.18 `menvcfg`, §4.1.10
    /// `senvcfg`, §8.2.5 `henvcfg`): always in M; below M only with the
    /// field set in `menvcfg` (else illegal); in VS and VU also in
    /// `henvcfg` (else virtual); in U and VU also in `senvcfg` (else
    /// illegal in U, virtual in VU). The current privilege decides, not
    /// MPRV's.
    fn cbo_enabled(&self, field: u64) -> Result<(), Trap> {
        if self.prv == Priv::M {
            return Ok(());
        }
        let on = |r: u64| r & field != 0;
        if !on(self.csr.menvcfg) {
            return Err(self.illegal_insn());
        }
        if self.virt && !on(self.csr.henvcfg) {
            return Err(self.virtual_insn());
        }
        if self.prv == Priv::U && !on(self.csr.senvcfg) {
            return Err(if self.virt { self.virtual_insn() } else { self.illegal_insn() });
        }
        Ok(())
    }

    /// SRET from M or HS (§3.3.2, §8.6.4): to the privilege in SPP and the
    /// V in `hstatus.SPV`, which is cleared; SIE = SPIE, SPIE = 1. Returns
    /// the new pc, `sepc`.
    pub(crate) fn sret_hs(&mut self) -> u64 {
        let ms = self.csr.mstatus;
        let spp = if ms & status::SPP != 0 { Priv::S } else { Priv::U };
        let virt = self.csr.hstatus & hstatus::SPV != 0;
        self.csr.hstatus &= !hstatus::SPV;
        let mut v = ms & !(status::SIE | status::SPP | status::MPRV);
        if ms & status::SPIE != 0 {
            v |= status::SIE;
        }
        v |= status::SPIE;
        self.csr.mstatus = v;
        self.set_mode(spp, virt);
        self.csr.sepc
    }

    /// The rules shared by the hypervisor instructions (§8.3, §8.6.1): a
    /// virtual-instruction exception when V=1; illegal in U-mode, except
    /// HLV/HLVX/HSV when `hstatus.HU` = 1 (`load_store`).
    fn hypervisor_insn_allowed(&self, load_store: bool) -> Result<(), Trap> {
        if self.virt {
            return Err(self.virtual_insn());
        }
        if self.prv == Priv::U && !(load_store && self.csr.hstatus & hstatus::HU != 0) {
            return Err(self.illegal_insn());
        }
        Ok(())
    }

    /// Executes `i` (whose bits are `raw`) at `pc` and returns the address
    /// of the next instruction. `self.pc` is not read or written: the
    /// caller keeps it, and sets it before taking a trap.
    #[inline(always)]
    pub(crate) fn execute(&mut self, bus: &mut dyn Bus, i: Insn, raw: u32, pc: u64) -> Result<u64, Trap> {
        let mut next = pc.wrapping_add(crate::decode::insn_len(raw));
        // Register fields are 5 bits; the masks let the compiler drop the
        // bounds checks.
        let a = self.x[i.rs1 as usize & 31];
        let b = self.x[i.rs2 as usize & 31];
        let imm = i.imm as i64 as u64;
        let rd = i.rd as usize & 31;
        macro_rules! wr {
            ($v:expr) => {{
                let v = $v;
                self.x[rd] = v;
                self.x[0] = 0;
            }};
        }
        macro_rules! branch {
            ($c:expr) => {
                if $c {
                    next = pc.wrapping_add(imm);
                }
            };
        }
        let addr = a.wrapping_add(imm);
        match i.op {
            Op::LUI => wr!(imm),
            Op::AUIPC => wr!(pc.wrapping_add(imm)),
            Op::JAL => {
                wr!(next);
                next = pc.wrapping_add(imm);
            }
            Op::JALR => {
                let t = addr & !1;
                wr!(next);
                next = t;
            }
            Op::BEQ => branch!(a == b),
            Op::BNE => branch!(a != b),
            Op::BLT => branch!((a as i64) < (b as i64)),
            Op::BGE => branch!((a as i64) >= (b as i64)),
            Op::BLTU => branch!(a < b),
            Op::BGEU => branch!(a >= b),
            Op::LB => wr!(self.load(bus, addr, 1)? as i8 as u64),
            Op::LH => wr!(self.load(bus, addr, 2)? as i16 as u64),
            Op::LW => wr!(self.load(bus, addr, 4)? as i32 as u64),
            Op::LD => wr!(self.load(bus, addr, 8)?),
            Op::LBU => wr!(self.load(bus, addr, 1)?),
            Op::LHU => wr!(self.load(bus, addr, 2)?),
            Op::LWU => wr!(self.load(bus, addr, 4)?),
            Op::SB => self.store(bus, addr, 1, b)?,
            Op::SH => self.store(bus, addr, 2, b)?,
            Op::SW => self.store(bus, addr, 4, b)?,
            Op::SD => self.store(bus, addr, 8, b)?,
            Op::ADDI => wr!(a.wrapping_add(imm)),
            Op::SLTI => wr!(((a as i64) < (imm as i64)) as u64),
            Op::SLTIU => wr!((a < imm) as u64),
            Op::XORI => wr!(a ^ imm),
            Op::ORI => wr!(a | imm),
            Op::ANDI => wr!(a & imm),
            Op::SLLI => wr!(a << (imm & 63)),
            Op::SRLI => wr!(a >> (imm & 63)),
            Op::SRAI => wr!(((a as i64) >> (imm & 63)) as u64),
            Op::ADD => wr!(a.wrapping_add(b)),
            Op::SUB => wr!(a.wrapping_sub(b)),
            Op::SLL => wr!(a << (b & 63)),
            Op::SLT => wr!(((a as i64) < (b as i64)) as u64),
            Op::SLTU => wr!((a < b) as u64),
            Op::XOR => wr!(a ^ b),
            Op::SRL => wr!(a >> (b & 63)),
            Op::SRA => wr!(((a as i64) >> (b & 63)) as u64),
            Op::OR => wr!(a | b),
            Op::AND => wr!(a & b),
            Op::ADDIW => wr!(sext32(a.wrapping_add(imm))),
            Op::SLLIW => wr!(sext32(((a as u32) << (imm & 31)) as u64)),
            Op::SRLIW => wr!(sext32(((a as u32) >> (imm & 31)) as u64)),
            Op::SRAIW => wr!(((a as i32) >> (imm & 31)) as u64),
            Op::ADDW => wr!(sext32(a.wrapping_add(b))),
            Op::SUBW => wr!(sext32(a.wrapping_sub(b))),
            Op::SLLW => wr!(sext32(((a as u32) << (b & 31)) as u64)),
            Op::SRLW => wr!(sext32(((a as u32) >> (b & 31)) as u64)),
            Op::SRAW => wr!(((a as i32) >> (b & 31)) as u64),
            // Host memory accesses are relaxed atomics (strata-memory), so
            // the FENCE's ordering is a host fence (docs/smp.md).
            Op::FENCE => {
                if raw == strata_arch::isa::fence::PAUSE {
                    // A spin-wait hint: leave the slice, so the thread can
                    // let another hart's thread run.
                    self.paused = true;
                    self.stats.pauses += 1;
                    self.yield_slice = true;
                    self.event = true;
                } else {
                    crate::mem::guest_fence(raw)
                }
            }
            // The decoded-code cache re-checks a page's generation whenever
            // the run loop enters it, which an event forces: writes by other
            // harts and by devices are seen from the next instruction on.
            // With harts on other threads that is not enough: a page's code
            // mark and another hart's store to it can pass each other (the
            // store-buffering pattern), leaving a stale page with a current
            // generation. So FENCE.I also compares the pages filled lately
            // with RAM (`CodeCache::revalidate`), dropping stale ones and
            // the JIT's jump cache, which may name their blocks.
            Op::FENCE_I => {
                if self.parallel {
                    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                    let stale = self.code.revalidate(&self.ram);
                    if stale > 0 {
                        self.forget_jumps();
                        self.stats.fence_i_stale += stale;
                    }
                }
                self.event = true
            }
            Op::ECALL => {
                let c = match (self.prv, self.virt) {
                    (Priv::U, _) => cause::ECALL_U,
                    (Priv::S, false) => cause::ECALL_S,
                    (Priv::S, true) => cause::ECALL_VS,
                    (Priv::M, _) => cause::ECALL_M,
                };
                return Err(Trap::new(c, 0));
            }
            Op::EBREAK => return Err(Trap::new(cause::BREAKPOINT, pc)),
            Op::CSRRW | Op::CSRRS | Op::CSRRC | Op::CSRRWI | Op::CSRRSI | Op::CSRRCI => {
                let n = i.imm as u16;
                let imm_form = matches!(i.op, Op::CSRRWI | Op::CSRRSI | Op::CSRRCI);
                let src = if imm_form { i.rs1 as u64 } else { a };
                // §9.1: CSRRS/CSRRC with rs1 = x0 (or uimm = 0) do not write.
                let is_write = matches!(i.op, Op::CSRRW | Op::CSRRWI) || i.rs1 != 0;
                let old = self.csr_read(bus, n, is_write)?;
                if is_write {
                    // §3.1.9: a read of mip ORs the external interrupt lines
                    // into SEIP (and MEIP, MTIP, MSIP), but only the
                    // software-writable bits take part in CSRRS/CSRRC; else
                    // clearing STIP while a device interrupt is pending would
                    // latch SEIP in software for good.
                    let base = if n == crate::csr::addr::MIP { self.mip_software() } else { old };
                    let new = match i.op {
                        Op::CSRRW | Op::CSRRWI => src,
                        Op::CSRRS | Op::CSRRSI => base | src,
                        _ => base & !src,
                    };
                    self.csr_write(n, new)?;
                    // Sstc: a new compare value, enable or time offset
                    // moves STIP/VSTIP now, not at the next run.
                    use crate::csr::addr::{HENVCFG, HTIMEDELTA, MENVCFG, STIMECMP, VSTIMECMP};
                    if matches!(n, STIMECMP | VSTIMECMP | MENVCFG | HENVCFG | HTIMEDELTA) {
                        self.sstc_update(bus.mtime());
                    }
                }
                wr!(old);
            }
            Op::MRET => {
                // Valid only in M; not HS-qualified, so illegal from V=1 too.
                if self.prv != Priv::M {
                    return Err(self.illegal_insn());
                }
                // §3.3.2, §8.6.4: to MPP (and MPV unless MPP is M); MPP
                // and MPV become U and 0, MIE = MPIE, MPIE = 1.
                let ms = self.csr.mstatus;
                let mpp = Priv::from_bits(ms >> status::MPP_SHIFT);
                let virt = mpp != Priv::M && ms & status::MPV != 0;
                let mut v = ms & !(status::MIE | status::MPP | status::MPV);
                if ms & status::MPIE != 0 {
                    v |= status::MIE;
                }
                v |= status::MPIE;
                // §3.1.6.3: returning to a mode below M clears MPRV.
                if mpp != Priv::M {
                    v &= !status::MPRV;
                }
                self.csr.mstatus = v;
                next = self.csr.mepc;
                self.set_mode(mpp, virt);
                // It retires after switching: the new mode starts after it.
                self.watch.entered(self.instret + 1, next);
            }
            Op::SRET => {
                if self.virt {
                    // §8.6.1: SRET in VU, or in VS with VTSR, is a virtual
                    // instruction; in VS it returns through vsstatus.
                    if self.prv == Priv::U || self.csr.hstatus & hstatus::VTSR != 0 {
                        return Err(self.virtual_insn());
                    }
                    let vs = self.csr.vsstatus;
                    let spp = if vs & status::SPP != 0 { Priv::S } else { Priv::U };
                    let mut v = vs & !(status::SIE | status::SPP);
                    if vs & status::SPIE != 0 {
                        v |= status::SIE;
                    }
                    v |= status::SPIE;
                    self.csr.vsstatus = v;
                    next = self.csr.vsepc;
                    self.set_mode(spp, true);
                } else {
                    if self.prv == Priv::U || (self.prv == Priv::S && self.csr.mstatus & status::TSR != 0) {
                        return Err(self.illegal_insn());
                    }
                    next = self.sret_hs();
                }
                // It retires after switching: the new mode starts after it.
                self.watch.entered(self.instret + 1, next);
            }
            Op::WFI => {
                // §3.1.6.5: TW makes WFI illegal below M; with S-mode
                // present, WFI in U-mode is illegal too (as QEMU does, with
                // a time limit of zero). §8.6.1: in VU (TW=0), or in VS with
                // VTW=1 (TW=0), it is a virtual instruction.
                let tw = self.csr.mstatus & status::TW != 0;
                match (self.prv, self.virt) {
                    (Priv::M, _) => {}
                    (_, _) if tw => return Err(self.illegal_insn()),
                    (Priv::U, false) => return Err(self.illegal_insn()),
                    (Priv::U, true) => return Err(self.virtual_insn()),
                    (Priv::S, true) if self.csr.hstatus & hstatus::VTW != 0 => return Err(self.virtual_insn()),
                    _ => {}
                }
                if self.mip() & self.csr.mie == 0 {
                    self.wfi = true;
                } else if self.interrupt_to_take().is_none() {
                    // §3.3.3: WFI does not wait while an interrupt is pending
                    // in mie, even one the global enables keep from being
                    // taken. Such a WFI is usually in a loop that polls
                    // memory, which only another hart can change: OpenSBI's
                    // HSM wait, entered with the cold-boot IPI still pending,
                    // spins like that until Linux starts the hart. Give the
                    // other harts the rest of this hart's budget (and, on a
                    // thread of its own, the host core for a moment).
                    self.yield_slice = true;
                    self.wfi_spin = true;
                }
                self.event = true;
            }
            // Zawrs 1.01: stall until the reservation set LR registered is
            // written, an interrupt is pending in `mie` (WFI's rule for
            // resuming), or a bound passes; with no valid reservation, or
            // such an interrupt already pending, there is no stall. Strata's
            // stall is the rest of the hart's turn: it leaves the slice and
            // yields the host core like PAUSE, and the reservation, dropped
            // at the end of every turn (`Hart::run`), is gone when the hart
            // runs again, so the next WRS completes at once and the guest's
            // loop re-reads memory (the chapter lets a stall end for any
            // reason). WRS.NTO's time limit for TW/VTW is zero, as WFI's:
            // below M with `mstatus.TW` a WRS.NTO that would stall is an
            // illegal instruction; in VS/VU with TW clear and
            // `hstatus.VTW` set, a virtual instruction. Unlike WFI, U-mode
            // may run both with TW clear. WRS.STO never traps.
            Op::WRS_NTO | Op::WRS_STO => {
                let stall = self.reservation().is_some() && self.mip() & self.csr.mie == 0;
                if stall && i.op == Op::WRS_NTO && self.prv != Priv::M {
                    if self.csr.mstatus & status::TW != 0 {
                        return Err(self.illegal_insn());
                    }
                    if self.virt && self.csr.hstatus & hstatus::VTW != 0 {
                        return Err(self.virtual_insn());
                    }
                }
                if stall {
                    self.paused = true;
                    self.stats.wrs_stalls += 1;
                    self.yield_slice = true;
                    self.event = true;
                }
            }
            // Svinval: SINVAL.VMA has SFENCE.VMA's traps and effect. Strata
            // invalidates at once, so there is nothing left for the
            // SFENCE.W.INVAL / SFENCE.INVAL.IR brackets to order.
            Op::SFENCE_VMA | Op::SINVAL_VMA => {
                let va = (i.rs1 != 0).then_some(a);
                let asid = (i.rs2 != 0).then_some(b);
                match (self.prv, self.virt) {
                    (Priv::U, false) => return Err(self.illegal_insn()),
                    (Priv::S, false) if self.csr.mstatus & status::TVM != 0 => return Err(self.illegal_insn()),
                    (Priv::U, true) => return Err(self.virtual_insn()),
                    (Priv::S, true) if self.csr.hstatus & hstatus::VTVM != 0 => return Err(self.virtual_insn()),
                    (_, virt) => {
                        self.stats.count_fence(if virt { Fence::SfenceV } else { Fence::Sfence });
                        self.fence_vma(virt, va, asid);
                    }
                }
            }
            // Zicbom: with no caches to maintain, CLEAN, FLUSH and INVAL
            // (whether CBIE says invalidate or flush) are their enable and
            // permission checks. Zicboz: CBO.ZERO zeroes the block.
            Op::CBO_CLEAN | Op::CBO_FLUSH | Op::CBO_INVAL => {
                self.cbo_enabled(if i.op == Op::CBO_INVAL { envcfg::CBIE } else { envcfg::CBCFE })?;
                self.cbo_block(a, false)?;
            }
            // Zimop: no later extension gives any MOP a meaning here, so
            // each writes 0 to rd (Unpriv. "Zimop").
            Op::MOP_R | Op::MOP_RR => wr!(0),
            Op::CBO_ZERO => {
                self.cbo_enabled(envcfg::CBZE)?;
                let block = self.cbo_block(a, true)?;
                self.cbo_zero(block, a)?;
            }
            Op::SFENCE_W_INVAL | Op::SFENCE_INVAL_IR => {
                // Svinval: illegal in U, virtual in VU; not trapped by TVM
                // or VTVM (they only order, and translate nothing).
                match (self.prv, self.virt) {
                    (Priv::U, false) => return Err(self.illegal_insn()),
                    (Priv::U, true) => return Err(self.virtual_insn()),
                    _ => {}
                }
            }
            // Svinval: HINVAL.VVMA/GVMA have HFENCE.VVMA/GVMA's traps and
            // effect.
            Op::HFENCE_VVMA | Op::HFENCE_GVMA | Op::HINVAL_VVMA | Op::HINVAL_GVMA => {
                // §8.3.2: valid in M and HS (GVMA in HS only with TVM=0).
                self.hypervisor_insn_allowed(false)?;
                if matches!(i.op, Op::HFENCE_GVMA | Op::HINVAL_GVMA) {
                    if self.prv == Priv::S && self.csr.mstatus & status::TVM != 0 {
                        return Err(self.illegal_insn());
                    }
                    self.stats.count_fence(Fence::HfenceGvma);
                    // rs1 holds the guest-physical address >> 2.
                    self.fence_gvma((i.rs1 != 0).then_some(a << 2), (i.rs2 != 0).then_some(b));
                } else {
                    self.stats.count_fence(Fence::HfenceVvma);
                    self.fence_vma(true, (i.rs1 != 0).then_some(a), (i.rs2 != 0).then_some(b));
                }
            }
            Op::HLV_B
            | Op::HLV_BU
            | Op::HLV_H
            | Op::HLV_HU
            | Op::HLVX_HU
            | Op::HLV_W
            | Op::HLV_WU
            | Op::HLVX_WU
            | Op::HLV_D => {
                self.hypervisor_insn_allowed(true)?;
                let (size, signed, hlvx) = match i.op {
                    Op::HLV_B => (1, true, false),
                    Op::HLV_BU => (1, false, false),
                    Op::HLV_H => (2, true, false),
                    Op::HLV_HU => (2, false, false),
                    Op::HLVX_HU => (2, false, true),
                    Op::HLV_W => (4, true, false),
                    Op::HLV_WU => (4, false, false),
                    Op::HLVX_WU => (4, false, true),
                    _ => (8, false, false),
                };
                // HLV takes no offset: the address is rs1.
                let v = self.hlv(bus, a, size, hlvx)?;
                let shift = 64 - 8 * size as u32;
                wr!(if signed { ((v << shift) as i64 >> shift) as u64 } else { v });
            }
            Op::HSV_B | Op::HSV_H | Op::HSV_W | Op::HSV_D => {
                self.hypervisor_insn_allowed(true)?;
                let size = match i.op {
                    Op::HSV_B => 1,
                    Op::HSV_H => 2,
                    Op::HSV_W => 4,
                    _ => 8,
                };
                self.hsv(bus, a, size, b)?;
            }
            Op::MUL => wr!(a.wrapping_mul(b)),
            Op::MULH => wr!(((a as i64 as i128 * b as i64 as i128) >> 64) as u64),
            Op::MULHSU => wr!(((a as i64 as i128 * b as i128) >> 64) as u64),
            Op::MULHU => wr!(((a as u128 * b as u128) >> 64) as u64),
            // §7.2: division by zero and overflow do not trap.
            Op::DIV => wr!(if b == 0 { u64::MAX } else { (a as i64).wrapping_div(b as i64) as u64 }),
            Op::DIVU => wr!(a.checked_div(b).unwrap_or(u64::MAX)),
            Op::REM => wr!(if b == 0 { a } else { (a as i64).wrapping_rem(b as i64) as u64 }),
            Op::REMU => wr!(if b == 0 { a } else { a % b }),
            Op::MULW => wr!(sext32(a.wrapping_mul(b))),
            Op::DIVW => {
                let (x, y) = (a as i32, b as i32);
                wr!(if y == 0 { u64::MAX } else { x.wrapping_div(y) as u64 })
            }
            Op::DIVUW => {
                let (x, y) = (a as u32, b as u32);
                wr!(x.checked_div(y).map_or(u64::MAX, |q| sext32(q as u64)))
            }
            Op::REMW => {
                let (x, y) = (a as i32, b as i32);
                wr!(if y == 0 { x as u64 } else { x.wrapping_rem(y) as u64 })
            }
            Op::REMUW => {
                let (x, y) = (a as u32, b as u32);
                wr!(sext32(if y == 0 { x } else { x % y } as u64))
            }
            Op::LR_W | Op::LR_D => {
                let size = if i.op == Op::LR_W { 4 } else { 8 };
                let pa = self.atomic_pa(a, size, Access::Load)?;
                let v = self.phys_load(bus, pa, a, size, cause::LOAD_ACCESS)?;
                self.set_reservation(Some(pa));
                self.lr_value = v;
                wr!(if size == 4 { sext32(v) } else { v });
            }
            Op::SC_W | Op::SC_D => {
                let size = if i.op == Op::SC_W { 4 } else { 8 };
                // Zalrsc: no SC retires unless it passes the memory
                // permission checks, so alignment, translation (as a store:
                // page faults, guest-page faults in V mode) and PMP come
                // first, whether or not the SC would succeed; only then the
                // reservation. Whether a failed SC sets the D bit is
                // unspecified; this one does, as the walk for a store.
                let pa = self.atomic_pa(a, size, Access::Store)?;
                // The reservation holds if it names these bytes and they
                // still hold what the LR read: the store is a host
                // compare-and-exchange against that value, so another
                // hart's store that changed them in between makes it fail
                // (docs/smp.md: what this guarantees).
                let ok = match self.reservation() {
                    Some(r) if r == pa => self.phys_cmpxchg(bus, pa, a, size, self.lr_value, b)?,
                    _ => false,
                };
                self.set_reservation(None);
                wr!(!ok as u64);
            }
            Op::AMOSWAP_W
            | Op::AMOADD_W
            | Op::AMOXOR_W
            | Op::AMOAND_W
            | Op::AMOOR_W
            | Op::AMOMIN_W
            | Op::AMOMAX_W
            | Op::AMOMINU_W
            | Op::AMOMAXU_W => {
                let pa = self.atomic_pa(a, 4, Access::Store)?;
                let op = i.op;
                let old = self.phys_amo(bus, pa, a, 4, &move |old| crate::isa::amo_result(op, old, b))?;
                wr!(old as u32 as i32 as u64);
            }
            Op::AMOSWAP_D
            | Op::AMOADD_D
            | Op::AMOXOR_D
            | Op::AMOAND_D
            | Op::AMOOR_D
            | Op::AMOMIN_D
            | Op::AMOMAX_D
            | Op::AMOMINU_D
            | Op::AMOMAXU_D => {
                let pa = self.atomic_pa(a, 8, Access::Store)?;
                let op = i.op;
                let old = self.phys_amo(bus, pa, a, 8, &move |old| crate::isa::amo_result(op, old, b))?;
                wr!(old);
            }
            Op::ILLEGAL => return Err(self.illegal_insn()),
            op if crate::bitmanip::handles(op) => {
                wr!(crate::bitmanip::alu(op, a, if crate::bitmanip::takes_shamt(op) { imm } else { b }))
            }
            _ => self.execute_fp(bus, &i, raw, addr)?,
        }
        Ok(next)
    }
}

//! Shadow paging and device DMA (issue 21): a shadow-paged guest programs
//! a virtio-blk read into its own level-0 page table, fences, and uses the
//! translation the disk gave it. The write-protection of the guest's table
//! pages cannot see a device's write, so without the DMA map's log
//! (`strata_hypervisor::vm::DmaMap`) the shadow table keeps the old leaf
//! and the guest reads the page its tables no longer map.

mod common;
use common::vm;

use std::path::PathBuf;

use strata_arch::csr::{addr, satp};
use strata_arch::isa::Op;
use strata_arch::pte;
use strata_arch::sbi::ext;
use strata_devices::board::VIRT_VM;
use strata_devices::virtio::block::req;
use strata_devices::virtio::mmio::reg;
use strata_devices::virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use strata_devices::virtio::{feature, status};
use strata_hypervisor::vm::VmEnd;
use strata_hypervisor::{Policy, VmIndex};
use strata_platform::hyp::{HypMachine, Paging, RunConfig};
use strata_platform::virtio::DriveSpec;
use strata_platform::ClockMode;
use strata_testkit::asm::{elf, reg as r, Asm};

const RAM: u64 = VIRT_VM.ram_base;
/// The guest's Sv39 tables.
const ROOT: u64 = RAM + 0x10_0000;
const L1: u64 = ROOT + 0x1000;
const L0: u64 = ROOT + 0x2000;
/// The page the guest maps at [`VA`] first, and the one the disk's entry
/// maps there, each holding its marker.
const PAGE_A: u64 = RAM + 0x20_0000;
const PAGE_B: u64 = RAM + 0x20_1000;
const MARK_A: u64 = 0xaaaa_0000_0000_aaaa;
const MARK_B: u64 = 0xbbbb_0000_0000_bbbb;
/// VPN[2] = 1, VPN[1] = 0, VPN[0] = 0: the first entry of `L0`.
const VA: u64 = 0x4000_0000;
/// The virtqueue (8 entries) and the request's header and status byte.
const DESC: u64 = RAM + 0x30_0000;
const AVAIL: u64 = DESC + 0x100;
const USED: u64 = DESC + 0x200;
const HDR: u64 = DESC + 0x1000;
const STATUS_BYTE: u64 = HDR + 0x100;

fn leaf(pa: u64, flags: u64) -> u64 {
    (pa >> 12) << pte::PPN_SHIFT | flags | pte::V
}

/// The guest. It ends with SBI SRST: a clean shutdown if it read
/// `MARK_B` through `VA` after the disk wrote its entry, else "system
/// failure" with a code, the sum of: 1 the read after the fence did not
/// give `MARK_B` (2 more if it gave `MARK_A`: the stale translation),
/// 4 the request's status byte is not OK, 8 the first read did not give
/// `MARK_A`.
fn guest() -> Vec<u8> {
    use r::*;
    let virtio = VIRT_VM.virtio.base;
    let mut a = Asm::new();
    let sw = |a: &mut Asm, base: u32, off: u64, v: u64| {
        a.li(T2, v).store(Op::SW, T2, base, off as i32);
    };
    let sh = |a: &mut Asm, base: u32, off: u64, v: u64| {
        a.li(T2, v).store(Op::SH, T2, base, off as i32);
    };
    let sd = |a: &mut Asm, at: u64, v: u64| {
        a.li(S0, at).li(T2, v).sd(T2, S0, 0);
    };
    // Markers, tables (translation is off: gpa = va).
    sd(&mut a, PAGE_A, MARK_A);
    sd(&mut a, PAGE_B, MARK_B);
    // 0..1 GiB (the devices) and the GiB of RAM, identity-mapped with
    // gigapages; VPN[2] = 1 through L1 and L0.
    sd(&mut a, ROOT, leaf(0, pte::R | pte::W | pte::A | pte::D));
    sd(&mut a, ROOT + 8, leaf(L1, 0));
    sd(&mut a, ROOT + 16, leaf(RAM, pte::R | pte::W | pte::X | pte::A | pte::D));
    sd(&mut a, L1, leaf(L0, 0));
    sd(&mut a, L0, leaf(PAGE_A, pte::R | pte::A));
    a.li(T0, satp::SV39 << satp::MODE_SHIFT | ROOT >> 12).csr(Op::CSRRW, ZERO, addr::SATP, T0);
    // First use: the shadow leaf VA -> PAGE_A is made, L0 is protected.
    a.li(S1, VA).ld(A2, S1, 0);
    // The virtio-blk device in slot 0 (Virtio 1.2 §3.1.1, §4.2.3).
    a.li(S0, virtio);
    let ad = u64::from(status::ACKNOWLEDGE | status::DRIVER);
    sw(&mut a, S0, reg::STATUS, ad);
    sw(&mut a, S0, reg::DRIVER_FEATURES_SEL, 1);
    sw(&mut a, S0, reg::DRIVER_FEATURES, feature::VERSION_1 >> 32);
    sw(&mut a, S0, reg::DRIVER_FEATURES_SEL, 0);
    sw(&mut a, S0, reg::DRIVER_FEATURES, 0);
    sw(&mut a, S0, reg::STATUS, ad | u64::from(status::FEATURES_OK));
    sw(&mut a, S0, reg::QUEUE_SEL, 0);
    sw(&mut a, S0, reg::QUEUE_NUM, 8);
    sw(&mut a, S0, reg::QUEUE_DESC_LOW, DESC & 0xffff_ffff);
    sw(&mut a, S0, reg::QUEUE_DESC_HIGH, DESC >> 32);
    sw(&mut a, S0, reg::QUEUE_DRIVER_LOW, AVAIL & 0xffff_ffff);
    sw(&mut a, S0, reg::QUEUE_DRIVER_HIGH, AVAIL >> 32);
    sw(&mut a, S0, reg::QUEUE_DEVICE_LOW, USED & 0xffff_ffff);
    sw(&mut a, S0, reg::QUEUE_DEVICE_HIGH, USED >> 32);
    sw(&mut a, S0, reg::QUEUE_READY, 1);
    sw(&mut a, S0, reg::STATUS, ad | u64::from(status::FEATURES_OK | status::DRIVER_OK));
    // The request: read sector 0 into L0 (§5.2.6): header, data, status.
    sd(&mut a, HDR, u64::from(req::IN));
    sd(&mut a, HDR + 8, 0);
    sd(&mut a, STATUS_BYTE, 0xff);
    let descs = [
        (HDR, 16, VIRTQ_DESC_F_NEXT, 1),
        (L0, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2),
        (STATUS_BYTE, 1, VIRTQ_DESC_F_WRITE, 0),
    ];
    for (i, &(at, len, flags, next)) in descs.iter().enumerate() {
        let d = DESC + 16 * i as u64;
        sd(&mut a, d, at);
        sw(&mut a, S0, 8, len);
        sh(&mut a, S0, 12, u64::from(flags));
        sh(&mut a, S0, 14, next);
    }
    a.li(S0, AVAIL);
    sh(&mut a, S0, 0, 0);
    sh(&mut a, S0, 4, 0); // ring[0]: the chain at descriptor 0
    sh(&mut a, S0, 2, 1); // idx
    a.li(S0, virtio);
    sw(&mut a, S0, reg::QUEUE_NOTIFY, 0);
    // Wait for the used ring's idx to reach 1.
    a.li(S0, USED).li(T1, 1);
    let poll = a.here();
    a.load(Op::LHU, T0, S0, 2).bne(T0, T1, poll);
    // Fence (Priv. §4.2.1: the new entry is only certain to be used
    // after one), then read through VA again.
    a.insn(Op::SFENCE_VMA, 0, 0, 0, 0);
    a.ld(A3, S1, 0);
    // The code in A1 (see above), without branches.
    let snez = |a: &mut Asm, rd: u32, x: u32, v: u64| {
        a.li(T2, v).sub(rd, x, T2).insn(Op::SLTU, rd, ZERO, rd, 0);
    };
    snez(&mut a, A1, A3, MARK_B);
    snez(&mut a, A4, A3, MARK_A);
    a.xori(A4, A4, 1).slli(A4, A4, 1).add(A1, A1, A4);
    a.li(S0, STATUS_BYTE).load(Op::LBU, A4, S0, 0).insn(Op::SLTU, A4, ZERO, A4, 0).slli(A4, A4, 2).add(A1, A1, A4);
    snez(&mut a, A4, A2, MARK_A);
    a.slli(A4, A4, 3).add(A1, A1, A4);
    a.sbi(ext::SRST, 0, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), RAM)
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-shadow-dma-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Issue 21: a virtio-blk read into a guest page-table page, in shadow
/// mode, must leave no stale shadow leaf once the guest fences.
#[test]
fn a_virtio_blk_read_into_a_guest_page_table_is_seen_after_the_fence() {
    let kernel = file("guest.elf", &guest());
    // The disk's sector 0: the new entry for VA, then nothing.
    let mut disk = vec![0u8; 4096];
    disk[..8].copy_from_slice(&leaf(PAGE_B, pte::R | pte::A).to_le_bytes());
    let disk = file("disk.img", &disk);
    let mut c = vm("dma", &kernel, false);
    c.paging = Paging::Shadow;
    c.virtio.drives.push(DriveSpec::parse(&format!("file={}", disk.display())).unwrap());
    let mut m = HypMachine::new(&RunConfig {
        vms: vec![c],
        harts: Some(1),
        policy: Policy::Pa,
        clock: ClockMode::Virtual,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut steps = 0;
    while m.hyp().vm(VmIndex(0)).unwrap().running() {
        if !m.step() {
            break;
        }
        steps += 1;
        assert!(steps < 5_000, "the guest never finished");
    }
    let hyp = m.hyp();
    let v = hyp.vm(VmIndex(0)).unwrap();
    let st = v.shadow_stats().cloned().expect("shadow-paged");
    let _ = std::fs::remove_file(&kernel);
    let _ = std::fs::remove_file(&disk);
    assert_eq!(
        v.end(),
        Some(&VmEnd::PowerOff),
        "the guest's verdict (1: not the disk's page after the fence, +2: the stale page; 4: I/O error; 8: \
         first read wrong); shadow counters {st:?}"
    );
    assert!(st.dma_tables >= 1, "the device's write to the table was seen: {st:?}");
    assert!(st.dma_leaves >= 1, "and the stale leaf dropped: {st:?}");
}

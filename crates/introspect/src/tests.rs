//! A tiny kernel built by hand in a [`VecGuest`]: Sv39 tables, a BTF blob,
//! a symbol map, two listed tasks and one only the pid table names.

use crate::btf::tests::Builder;
use crate::btf::Btf;
use crate::guest::{GuestMemory, VecGuest};
use crate::integrity::Integrity;
use crate::kernel::{ImagePlace, Kernel};
use crate::symbols::SymbolMap;
use strata_arch::pte;

/// Where the test kernel lives: any 1 GiB-aligned address (one gigapage
/// maps the image), not the board's.
const BASE: u64 = 0x4000_0000;
const VA: u64 = 0xffff_ffff_8000_0000;

fn btf() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let long = b.int("long", 8);
    let ch = b.int("char", 1);
    let comm = b.array(ch, int, 16);
    let name = b.array(ch, int, 56);
    let slots = b.array(long, int, 64);
    let list = b.aggregate("list_head", false, 16, &[("next", long, 0), ("prev", long, 64)]);
    b.aggregate(
        "task_struct",
        false,
        0x200,
        &[
            ("tasks", list, 0x10 * 8),
            ("pid", int, 0x20 * 8),
            ("tgid", int, 0x24 * 8),
            ("comm", comm, 0x30 * 8),
            ("mm", long, 0x40 * 8),
            ("real_parent", long, 0x48 * 8),
            ("signal", long, 0x50 * 8),
            ("thread_node", list, 0x60 * 8),
            ("pid_links", long, 0x80 * 8),
        ],
    );
    b.aggregate("signal_struct", false, 0x20, &[("thread_head", list, 0x8 * 8)]);
    b.aggregate("module", false, 0x60, &[("state", int, 0), ("list", list, 0x8 * 8), ("name", name, 0x18 * 8)]);
    b.aggregate("pid", false, 0x40, &[("tasks", long, 0x10 * 8)]);
    b.aggregate("xarray", false, 0x10, &[("xa_head", long, 0x8 * 8)]);
    let xa = b.aggregate("", false, 0x10, &[("xa_head", long, 0x8 * 8)]);
    let idr = b.aggregate("idr", false, 0x18, &[("idr_rt", xa, 0)]);
    b.aggregate("pid_namespace", false, 0x40, &[("idr", idr, 0)]);
    b.aggregate("xa_node", false, 0x228, &[("shift", ch, 0), ("slots", slots, 0x28 * 8)]);
    b.finish()
}

const INIT: u64 = VA + 0x10000;
const NODE: u64 = VA + 0x14000;
const TABLE: u64 = VA + 0x30000;

fn map() -> SymbolMap {
    let syms = [
        (0x0, "_start"),
        (0x0, "_stext"),
        (0x100, "satp_mode"),
        (0x800, "_etext"),
        (0x800, "handle_exception"),
        (0x1000, "swapper_pg_dir"),
        (0x10000, "init_task"),
        (0x20000, "init_pid_ns"),
        (0x30000, "__start_rodata"),
        (0x30000, "sys_call_table"),
        (0x30010, "after_table"),
        (0x30800, "__start___jump_table"),
        (0x30800, "__stop___jump_table"),
        (0x31000, "__end_rodata"),
        (0x40000, "modules"),
        (0x100000, "_end"),
    ];
    SymbolMap::parse(&syms.iter().map(|(o, n)| format!("{:x} D {n}\n", VA + o)).collect::<String>()).unwrap()
}

fn pa(va: u64) -> u64 {
    va - VA + BASE
}

/// The kernel: tasks at 0x11000 (pid 1) and 0x12000 (pid 2) on the list,
/// 0x16000 (pid 3) in the pid table only.
fn guest() -> VecGuest {
    let g = VecGuest::new(BASE, 1 << 20);
    let w = |va: u64, v: u64| g.write_u64(pa(va), v);
    w(VA + 0x100, strata_arch::csr::satp::SV39 << strata_arch::csr::satp::MODE_SHIFT);
    // One gigapage: VPN[2] of VA, to BASE.
    w(VA + 0x1000 + 0x1fe * 8, (BASE >> pte::PAGE_SHIFT) << pte::PPN_SHIFT | pte::V | pte::R | pte::W | pte::X);
    let tasks = [INIT, VA + 0x11000, VA + 0x12000];
    for (i, t) in tasks.iter().enumerate() {
        let next = tasks[(i + 1) % 3];
        let prev = tasks[(i + 2) % 3];
        w(t + 0x10, next + 0x10);
        w(t + 0x18, prev + 0x10);
    }
    for (i, t) in [VA + 0x11000, VA + 0x12000, VA + 0x16000].iter().enumerate() {
        g.write(pa(t + 0x20), &(i as u32 + 1).to_le_bytes());
        g.write(pa(t + 0x24), &(i as u32 + 1).to_le_bytes());
        g.write(pa(t + 0x30), format!("task{}\0", i + 1).as_bytes());
        w(t + 0x40, 0xffff_1000);
        w(t + 0x48, INIT);
        // A signal_struct whose thread list holds just this task.
        let sig = VA + 0x13000 + i as u64 * 0x100;
        w(t + 0x50, sig);
        w(sig + 0x8, t + 0x60);
        w(sig + 0x10, t + 0x60);
        w(t + 0x60, sig + 0x8);
        w(t + 0x68, sig + 0x8);
        // struct pid, in the xarray's slot i + 1.
        let pid = VA + 0x15000 + i as u64 * 0x100;
        w(pid + 0x10, t + 0x80);
        w(NODE + 0x28 + (i as u64 + 1) * 8, pid);
    }
    w(VA + 0x20000 + 0x8, NODE | 2);
    w(VA + 0x40000, VA + 0x40000);
    w(TABLE, VA + 0x200);
    w(TABLE + 8, VA + 0x300);
    g
}

fn kernel(g: VecGuest) -> Kernel<VecGuest> {
    Kernel::new(g, map(), Btf::parse(&btf()).unwrap(), ImagePlace { load_pa: BASE }).unwrap()
}

#[test]
fn walks_the_lists_and_finds_the_task_only_the_pid_table_names() {
    let k = kernel(guest());
    assert_eq!(k.translate(VA + 0x11020).unwrap(), BASE + 0x11020);
    assert!(k.translate(0xffff_ffc0_0000_0000).is_err());
    let mut s = k.session(true);
    let p = s.processes().unwrap();
    assert_eq!(p.iter().map(|p| (p.pid, p.comm.as_str())).collect::<Vec<_>>(), [(1, "task1"), (2, "task2")]);
    assert!(s.modules().unwrap().is_empty());
    assert_eq!(s.syscalls().unwrap()[1].symbol, "satp_mode+0x200");
    let listed = s.all_tasks().unwrap();
    let named: Vec<u64> = s.pid_table_tasks().unwrap().into_iter().map(|(_, t)| t).collect();
    assert_eq!(named, [VA + 0x11000, VA + 0x12000, VA + 0x16000]);
    assert!(!listed.contains(&(VA + 0x16000)));
    assert_eq!(s.changed(), None, "nothing wrote");
    k.guest.write_u64(pa(VA + 0x11010), VA + 0x12010);
    assert_eq!(s.changed(), Some(BASE + 0x11000), "a write to a page the session read");
}

#[test]
fn integrity_raises_the_hidden_task_and_a_replaced_syscall_once() {
    let k = kernel(guest());
    let mut i = Integrity::new(true);
    let v = i.round(&k).unwrap();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].check, "tasks");
    assert!(v[0].what.contains("pid 3 (task3)"), "{}", v[0].what);
    assert!(i.round(&k).unwrap().is_empty(), "raised once");
    k.guest.write_u64(pa(TABLE + 8), VA + 0x400);
    let v = i.round(&k).unwrap();
    let checks: Vec<_> = v.iter().map(|v| v.check).collect();
    assert_eq!(checks, ["rodata", "syscalls"], "{v:?}");
    assert!(v[1].what.starts_with("system call 1: "), "{}", v[1].what);
    k.guest.write(pa(VA + 0x10), &[0x13]);
    let v = i.round(&k).unwrap();
    assert_eq!(v.len(), 1);
    assert!(v[0].check == "text" && v[0].what.contains("0x00 -> 0x13"), "{v:?}");
    assert_eq!(i.stats.violations, 4);
}

#[test]
fn no_kernel_before_satp_mode_is_set() {
    let g = guest();
    g.write_u64(pa(VA + 0x100), 0);
    assert!(Kernel::new(g, map(), Btf::parse(&btf()).unwrap(), ImagePlace { load_pa: BASE }).is_err());
    // hart_regs of a test guest: none published.
    assert!(guest().hart_regs().is_empty());
}

//! Strata's hypervisor on emulated harts: memory isolation, protected VMs,
//! reclaimed pages, and invalidation by physical address, with small guests
//! that walk their memory (strata_testkit::guest).

mod common;

use std::path::{Path, PathBuf};

use strata_hypervisor::Policy;
use strata_platform::hyp::{HypMachine, RunConfig, VmConfig};
use strata_platform::ClockMode;
use strata_testkit::guest;

const RAM: u64 = strata_platform::machine::RAM_BASE;
/// The walkers touch pages 0x8010_0000.. of their VM (clear of the code).
const WALK_BASE: u64 = RAM + 0x10_0000;
const WALK_PAGES: u64 = 64;

fn guest_file(name: &str, bytes: &[u8]) -> PathBuf {
    // Tests run in parallel threads: each file gets its own name.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("strata-hyp-test-{}-{n}-{name}.elf", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn vm(name: &str, kernel: &Path, protected: bool) -> VmConfig {
    VmConfig {
        name: name.into(),
        memory: 16 << 20,
        vcpus: 1,
        protected,
        kernel: kernel.to_path_buf(),
        initrd: None,
        append: String::new(),
        serial_log: None,
        virtio: Default::default(),
    }
}

fn machine(vms: Vec<VmConfig>, harts: u32, policy: Policy) -> HypMachine {
    HypMachine::new(&RunConfig {
        vms,
        harts: Some(harts),
        policy,
        clock: ClockMode::Virtual,
        console_stdout: false,
        console_stdin: false,
        jit: true,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn walker() -> PathBuf {
    guest_file("walker", &guest::page_walker(RAM, WALK_BASE, WALK_PAGES, 4096))
}

/// Every cached two-stage translation on every hart must be one the VM's
/// current G-stage tables still make (the hypervisor maps all RAM RWX).
fn check_tlbs_against_tables(m: &HypMachine) -> usize {
    let mut n = 0;
    for h in &m.harts {
        for e in h.tlb_entries() {
            let Some(vmid) = e.vmid else { continue };
            let vm = m.hyp().vms.iter().position(|v| v.vmid == vmid).expect("an entry of an unknown VMID");
            let gpa = e.gpa.expect("two-stage entries remember their GPA");
            let mapped = m.hyp().translate(vm, gpa);
            let cached = RAM + (e.ram_page << 12);
            assert_eq!(
                mapped,
                Some(cached),
                "hart {}: {:?} for VM {vm} GPA {gpa:#x} reaches a page its tables do not map there",
                h.hartid,
                e
            );
            n += 1;
        }
    }
    n
}

#[test]
fn the_host_interface_refuses_protected_memory() {
    let k = walker();
    let m = machine(vec![vm("open", &k, false), vm("secret", &k, true)], 1, Policy::Pa);
    let code = guest::page_walker(RAM, WALK_BASE, WALK_PAGES, 4096);
    let mut buf = [0u8; 16];
    m.hyp().host_read(0, RAM, &mut buf).expect("an ordinary VM's memory is readable");
    assert_eq!(&buf[..], &code[0x1000..0x1010], "the host sees the VM's loaded program");
    let err = m.hyp().host_read(1, RAM, &mut buf).expect_err("a protected VM's memory must be refused");
    assert!(err.to_string().contains("protected"), "the refusal says why: {err}");
    // Nor through its other pages, nor by writing.
    assert!(m.hyp().host_read(1, WALK_BASE + 5 * 4096, &mut buf).is_err());
    let mut m = m;
    assert!(m.hyp_mut().host_write(1, WALK_BASE, &[1, 2, 3]).is_err());
    assert!(m.hyp_mut().host_write(0, WALK_BASE, &[1, 2, 3]).is_ok());
}

#[test]
fn a_reclaimed_page_reads_as_zero_in_its_next_owner() {
    let k = walker();
    let mut m = machine(vec![vm("a", &k, false), vm("b", &k, false)], 1, Policy::Pa);
    // A page of A outside what its walker touches, filled with A's data.
    let gpa = RAM + (8 << 20);
    m.hyp_mut().host_write(0, gpa, &[0xa5; 4096]).unwrap();
    for _ in 0..50 {
        assert!(m.step());
    }
    let page = m.with_harts(|hyp, harts| hyp.reclaim_page(harts, 0, gpa)).unwrap();
    let mut buf = [0u8; 8];
    assert!(m.hyp().host_read(0, gpa, &mut buf).is_err(), "A no longer maps it");
    // B gets it at a fresh guest-physical address.
    let at = 0x9000_0000;
    m.hyp_mut().give_page(1, page, at).unwrap();
    let mut got = vec![0xffu8; 4096];
    m.hyp().host_read(1, at, &mut got).unwrap();
    assert!(got.iter().all(|&b| b == 0), "B must not see A's data");
    for _ in 0..50 {
        assert!(m.step());
    }
    check_tlbs_against_tables(&m);
}

/// Random page migrations and reclaims under every policy, on two harts,
/// with both VMs running; after every step no cached translation may reach
/// a page its VM's tables no longer map there.
#[test]
fn no_cached_translation_outlives_its_mapping() {
    let k = walker();
    for policy in [Policy::Pa, Policy::Vmid, Policy::All] {
        let mut m = machine(vec![vm("a", &k, false), vm("b", &k, false)], 2, policy);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for step in 0..300 {
            assert!(m.step());
            checked += check_tlbs_against_tables(&m);
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let vm = (seed & 1) as usize;
            let gpa = WALK_BASE + (seed >> 8) % WALK_PAGES * 4096;
            match (seed >> 4) % 3 {
                // Move the page to another machine page.
                0 | 1 => m.with_harts(|hyp, harts| hyp.migrate_page(harts, vm, gpa)).unwrap(),
                // Take it away (it is zeroed), check, and give it back.
                _ => {
                    let page = m.with_harts(|hyp, harts| hyp.reclaim_page(harts, vm, gpa)).unwrap();
                    checked += check_tlbs_against_tables(&m);
                    let mut b = [0u8; 8];
                    assert!(m.hyp().host_read(vm, gpa, &mut b).is_err(), "a reclaimed page is unmapped");
                    m.hyp_mut().give_page(vm, page, gpa).unwrap();
                    m.hyp().host_read(vm, gpa, &mut b).unwrap();
                    assert_eq!(b, [0; 8], "and comes back zeroed");
                }
            }
            checked += check_tlbs_against_tables(&m);
            if step % 50 == 0 {
                m.hyp().check_memory().unwrap_or_else(|e| panic!("{policy}: {e}"));
            }
        }
        assert!(checked > 1000, "{policy}: the check must have seen cached translations ({checked})");
        assert!(m.hyp().inval.invalidations >= 300);
    }
}

#[test]
fn only_coarse_policies_cause_collateral_misses() {
    let k = walker();
    let mut collateral = Vec::new();
    for policy in [Policy::Pa, Policy::Vmid, Policy::All] {
        let mut m = machine(vec![vm("a", &k, false), vm("b", &k, false)], 2, policy);
        for i in 0..200u64 {
            assert!(m.step());
            // A's pages move; B only runs.
            let gpa = WALK_BASE + (i * 7 % WALK_PAGES) * 4096;
            m.with_harts(|hyp, harts| hyp.migrate_page(harts, 0, gpa)).unwrap();
        }
        let by_vm = m.with_harts(|hyp, harts| hyp.collateral_misses(harts));
        collateral.push((policy, by_vm, m.hyp().inval.clone()));
    }
    let get = |p: Policy, vm: &str| -> u64 {
        collateral.iter().find(|(q, ..)| *q == p).unwrap().1.iter().find(|(n, _)| n == vm).unwrap().1
    };
    assert_eq!(get(Policy::Pa, "a") + get(Policy::Pa, "b"), 0, "pa drops only what reached the moved pages");
    assert_eq!(collateral[0].2.collateral_dropped, 0);
    assert!(get(Policy::Vmid, "a") > 0, "vmid flushes all of A, most of it unrelated");
    assert_eq!(get(Policy::Vmid, "b"), 0, "vmid leaves B alone");
    assert!(get(Policy::All, "b") > 0, "all flushes B too, which had nothing to do with it");
}

/// MMIO emulation works from the transformed instruction in htinst, and
/// from the guest's instruction itself (read with HLVX) when the hart
/// writes zero to htinst, as the spec allows.
#[test]
fn mmio_is_emulated_with_and_without_transformed_htinst() {
    let k = guest_file("hello", &guest::uart_hello(&common::board(), "hello over mmio\n"));
    for transformed in [true, false] {
        let mut m = machine(vec![vm("h", &k, false)], 1, Policy::Pa);
        for h in m.harts.iter_mut() {
            h.transformed_tinst = transformed;
        }
        let out = m.run();
        assert_eq!(out.status(), 0, "htinst transformed={transformed}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&m.console_output(0)), "hello over mmio\n", "transformed={transformed}");
        let mmio: u64 = m.hyp().vcpus.iter().map(|c| c.stats.mmio).sum();
        assert_eq!(mmio, 16, "one exit per byte");
    }
}

/// Hostile guests (`strata_testkit::guest::hostile`: random SBI calls, loads and stores
/// anywhere, random CSRs, privileged and hypervisor instructions, random
/// instruction words, a second vCPU started at a random address), ordinary
/// and protected, each beside a page walker. Whatever they do, the host
/// keeps running, the hostile VM gets to its own shutdown, the walker runs
/// on with memory only it wrote, and the ownership and TLB invariants hold.
#[test]
fn hostile_guests_hurt_nobody() {
    use strata_hypervisor::vm::VmEnd;
    let w = walker();
    let board = common::board();
    for seed in common::seeds(1..=24) {
        let h = guest_file(
            "hostile",
            &guest::hostile(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1500, 16 << 20, guest::Level::Vs, &board),
        );
        let mut hostile = vm("hostile", &h, seed % 2 == 1);
        hostile.vcpus = 2;
        let mut m = machine(vec![hostile, vm("walker", &w, false)], 2, Policy::Pa);
        let mut steps = 0u64;
        while m.hyp().vms[0].end.is_none() {
            assert!(m.step(), "seed {seed}: the machine stopped");
            steps += 1;
            assert!(steps < 100_000, "seed {seed}: the hostile VM never finished");
            if steps % 256 == 0 {
                check_tlbs_against_tables(&m);
            }
        }
        let vm0 = &m.hyp().vms[0];
        assert!(matches!(vm0.end, Some(VmEnd::PowerOff)), "seed {seed}: the hostile VM ended {:?}", vm0.end);
        assert!(vm0.stats.sbi_calls > 100, "seed {seed}: it made its SBI calls ({:?})", vm0.stats);
        assert!(
            vm0.stats.injected_faults + vm0.stats.mmio_exits > 100,
            "seed {seed}: its faults reached the hypervisor ({:?})",
            vm0.stats
        );
        // The walker went on, and its counters are its own: each pass adds
        // one to every page in order, so they never differ by more than 1.
        for _ in 0..64 {
            assert!(m.step());
        }
        assert!(m.hyp().vms[1].end.is_none(), "seed {seed}: the walker stopped: {:?}", m.hyp().vms[1].end);
        let mut counts = Vec::new();
        for p in 0..WALK_PAGES {
            let mut b = [0u8; 8];
            m.hyp().host_read(1, WALK_BASE + p * 4096, &mut b).unwrap();
            counts.push(u64::from_le_bytes(b));
        }
        assert!(counts[0] > 0, "seed {seed}: the walker made progress");
        assert!(
            counts.windows(2).all(|p| p[0] == p[1] || p[0] == p[1] + 1) && counts[0] <= counts[63] + 1,
            "seed {seed}: the walker's memory was touched by someone else: {counts:?}"
        );
        m.hyp().check_memory().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        check_tlbs_against_tables(&m);
    }
}

/// The SBI debug console takes its buffer's address as base_addr_hi:lo
/// (SBI 2.0 §12.1) and refuses memory the VM does not have with
/// SBI_ERR_INVALID_PARAM (a regression: the high half was ORed in shifted
/// by 32, and the error was INVALID_ADDRESS).
#[test]
fn the_debug_console_checks_its_buffer() {
    let k = guest_file("dbcn", &guest::dbcn_probe(RAM, "hello"));
    let log = std::env::temp_dir().join(format!("strata-hyp-test-{}-dbcn.log", std::process::id()));
    let mut v = vm("d", &k, false);
    v.serial_log = Some(log.clone());
    let mut m = machine(vec![v], 1, Policy::Pa);
    let out = m.run();
    assert_eq!(out.status(), 0, "{out:?}");
    drop(m);
    let got = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert_eq!(got, "helloI5FF", "text, SUCCESS and its length, then INVALID_PARAM twice");
}

/// Console input with several VMs: it goes to one VM at a time, `Ctrl-A c`
/// moves it to the next, and no byte is lost when a UART has no room (the
/// guests here never enable the FIFO, so each holds one byte at a time).
#[test]
fn console_input_goes_to_the_focused_vm_and_is_never_dropped() {
    use strata_platform::console::Input;
    let k = guest_file("echo", &guest::uart_echo(&common::board()));
    let mut m = machine(vec![vm("a", &k, false), vm("b", &k, false)], 1, Policy::Pa);
    let tx = m.input_sender();
    let to_a = "a long line for a small receiver: one byte at a time, then q";
    for b in to_a.bytes() {
        assert!(tx.send(Input::Byte(b)));
    }
    assert!(tx.send(Input::NextConsole));
    for b in "hello q".bytes() {
        assert!(tx.send(Input::Byte(b)));
    }
    drop(tx);
    let out = m.run_rounds(200_000);
    assert_eq!(out.status(), 0, "both echo VMs got their 'q' and shut down: {out:?}");
    assert_eq!(String::from_utf8_lossy(&m.console_output(0)), to_a, "VM a echoes every byte sent to it, in order");
    assert_eq!(String::from_utf8_lossy(&m.console_output(1)), "hello q", "VM b gets only what came after Ctrl-A c");
    assert_eq!(m.console_focus(), 1);
}

/// Issue 12 item 3: user programs in a VM read `time` (Linux's vDSO does
/// for `clock_gettime`). The hypervisor opens every counter to the guest in
/// `hcounteren` and starts each vCPU with `scounteren` = CY|TM|IR, as
/// firmware leaves it on a bare machine, so VU-mode reads them; a counter
/// the guest kernel closes in `scounteren` is an illegal instruction for
/// the guest (the hart raises a virtual-instruction exception, Priv.
/// §8.6.1, which the hypervisor turns into one). See
/// `strata_testkit::guest::counter_probe` for the output's key.
#[test]
fn user_mode_in_a_vm_reads_the_counters_its_kernel_allows() {
    let k = guest_file("counters", &strata_testkit::guest::counter_probe(strata_hypervisor::vm::layout::RAM_BASE));
    let mut m = machine(vec![vm("c", &k, false)], 1, Policy::Pa);
    let out = m.run();
    assert_eq!(out.status(), 0, "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&m.console_output(0)),
        "V|I|I|I|CI|I|CI",
        "VS reads time; VU reads time, cycle, instret at reset; not time with scounteren = 0; \
         time but not cycle with scounteren = TM"
    );
    assert_eq!(m.hyp().vms[0].stats.virtual_insn, 2, "the two refused reads were virtual-instruction exits");
}

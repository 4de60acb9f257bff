//! The control API on real machines (`Runner::serve_api`): the bare board
//! and the hypervisor, each running a small guest while clients talk to
//! the socket. Every response is checked against the OpenAPI document
//! (docs/api.json); `/metrics` is parsed as Prometheus text by a parser
//! written here from the format's description, not by the code that
//! writes it.
//!
//! A client thread that fails stops the machine (as a signal would), so a
//! failing test ends instead of hanging.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_api::client::{request, Response};
use strata_api::openapi;
use strata_arch::isa::Op;
use strata_devices::board::VIRT;
use strata_hypervisor::Policy;
use strata_platform::hyp::{HypMachine, Paging, RunConfig, VmConfig};
use strata_platform::{ClockMode, ExitReason, Machine, MachineConfig, StopHandle};
use strata_testkit::asm::{elf, reg::*, Asm};

const RAM: u64 = VIRT.ram_base;
/// Where the bare-board guest keeps its counter, and the flag that makes
/// it power off.
const COUNTER: u64 = RAM + 0x1000;
const FLAG: u64 = RAM + 0x1008;
const POWER_OFF: i64 = 0x100;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-api-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// M-mode: counts at COUNTER forever; powers off once FLAG is non-zero.
fn counting_guest() -> Vec<u8> {
    let mut a = Asm::new();
    a.li(T0, COUNTER);
    let top = a.here();
    a.ld(T1, T0, 0).addi(T1, T1, 1).sd(T1, T0, 0);
    a.ld(T2, T0, 8).bne(T2, ZERO, POWER_OFF);
    a.j(top);
    while a.here() < POWER_OFF {
        a.addi(ZERO, ZERO, 0);
    }
    a.li(T0, VIRT.syscon.base).li(T1, strata_devices::syscon::FINISHER_PASS.into()).store(Op::SW, T1, T0, 0);
    let end = a.here();
    a.j(end);
    elf(&a.bytes(), RAM)
}

/// VS-mode: spins forever.
fn spinning_guest() -> Vec<u8> {
    let mut a = Asm::new();
    let top = a.here();
    a.addi(T0, T0, 1).j(top);
    a.bytes()
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(&format!("{name}.elf"));
    std::fs::write(&p, bytes).unwrap();
    p
}

fn bare() -> Machine {
    Machine::new(&MachineConfig {
        ram_size: 16 << 20,
        harts: 1,
        bios: None,
        kernel: file("count", &counting_guest()),
        initrd: None,
        append: String::new(),
        clock: ClockMode::Host,
        console_stdout: false,
        console_stdin: false,
        serial_log: None,
        virtio: Default::default(),
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
        tpm: None,
        iommu: None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A call that must answer as the document says; `template` names the
/// operation.
fn call(sock: &Path, method: &str, url: &str, template: &str, body: &str) -> Response {
    let r = request(sock, method, url, body.as_bytes()).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    if let Err(e) = openapi::check_response(&openapi::document(), method, template, r.status, &r.body) {
        panic!("{e}; body {}", r.text());
    }
    r
}

fn read_u64(sock: &Path, addr: u64) -> u64 {
    let r = call(sock, "GET", &format!("/machine/memory?addr={addr:#x}&len=8"), "/machine/memory", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let hex = r.json()["data"].as_str().unwrap().to_string();
    let bytes: Vec<u8> = (0..8).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
    u64::from_le_bytes(bytes.try_into().unwrap())
}

/// Parses a Prometheus text exposition (format 0.0.4): every sample's
/// family has `# TYPE` before it, names and labels are well formed, values
/// are numbers, counters end in `_total`. Returns series -> value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.splitn(3, ' ');
            let (kw, name) = (w.next().unwrap(), w.next().unwrap_or(""));
            assert!(name_ok(name), "bad metric name in {line:?}");
            if kw == "TYPE" {
                let t = w.next().unwrap_or("");
                assert!(["counter", "gauge"].contains(&t), "{line:?}");
                assert!(t != "counter" || name.ends_with("_total"), "a counter not named _total: {line:?}");
                assert!(types.insert(name.into(), t.into()).is_none(), "TYPE twice: {line:?}");
            } else {
                assert_eq!(kw, "HELP", "{line:?}");
            }
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = key.split('{').next().unwrap();
        assert!(name_ok(name), "{line:?}");
        assert!(types.contains_key(name), "sample before its TYPE: {line:?}");
        if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect("labels in braces");
            for pair in inner.split("\",").map(|p| p.trim_end_matches('"')) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
                assert!(name_ok(k) && !v.contains('\n'), "{line:?}");
            }
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value {value:?} in {line:?}"));
        assert!(series.insert(key.to_string(), v).is_none(), "series twice: {line:?}");
    }
    assert!(!series.is_empty());
    series
}

fn metrics(sock: &Path) -> BTreeMap<String, f64> {
    let r = call(sock, "GET", "/metrics", "/metrics", "");
    assert_eq!(r.status, 200);
    parse_prometheus(&r.text())
}

/// Counters never go down between two scrapes.
fn assert_grown(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) {
    for (k, v) in before {
        let family = k.split('{').next().unwrap();
        if family.ends_with("_total") {
            let now = after.get(k).unwrap_or_else(|| panic!("{k} went away"));
            assert!(now >= v, "{k}: {v} then {now}");
        }
    }
}

/// Runs `client` on a thread while the machine runs here; a failing
/// client stops the machine, and its panic goes on.
fn with_client<T>(stop: StopHandle, run: impl FnOnce() -> T, client: impl FnOnce() + Send + 'static) -> T {
    let t = std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(client));
        if r.is_err() {
            stop.stop(15);
        }
        r
    });
    let out = run();
    if let Err(p) = t.join().unwrap() {
        std::panic::resume_unwind(p);
    }
    out
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(30), "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_bare_board_answers_every_route_while_it_runs() {
    let mut m = bare();
    let sock = tmp("bare.sock");
    let server = m.serve_api(&sock).unwrap_or_else(|e| panic!("{e}"));
    let p = sock.clone();
    let end = with_client(
        m.stop_handle(),
        || m.run(),
        move || {
            let r = call(&p, "GET", "/machine", "/machine", "");
            assert_eq!(r.status, 200);
            let j = r.json();
            assert_eq!(
                (j["state"].as_str(), j["harts"].as_u64(), j["ram_bytes"].as_u64()),
                (Some("running"), Some(1), Some(16 << 20))
            );
            assert_eq!(j["config"]["machine"], "strata machine");

            // The guest runs: its counter moves.
            let c0 = read_u64(&p, COUNTER);
            wait_until("the counter moves", || read_u64(&p, COUNTER) > c0);

            // Clients at once, while it runs: each gets its answer, and the
            // counters each sees only grow.
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let p = p.clone();
                    std::thread::spawn(move || {
                        let mut last = metrics(&p);
                        for _ in 0..5 {
                            let now = metrics(&p);
                            assert_grown(&last, &now);
                            last = now;
                            assert!(read_u64(&p, COUNTER) > 0);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }

            // Paused: nothing runs, the counters stand still.
            assert_eq!(call(&p, "PUT", "/machine/pause", "/machine/pause", "").status, 204);
            assert_eq!(call(&p, "GET", "/machine", "/machine", "").json()["state"], "paused");
            assert_eq!(call(&p, "PUT", "/machine/pause", "/machine/pause", "").status, 409);
            let (c1, m1) = (read_u64(&p, COUNTER), metrics(&p));
            std::thread::sleep(Duration::from_millis(50));
            let (c2, m2) = (read_u64(&p, COUNTER), metrics(&p));
            assert_eq!(c1, c2, "the guest ran while paused");
            let retired = "strata_instructions_retired_total{hart=\"0\"}";
            assert_eq!(m1[retired], m2[retired], "instructions retired while paused");
            assert_eq!(m2["strata_paused"], 1.0);
            // Memory can be written while paused, and the guest sees it after.
            let w = call(
                &p,
                "PUT",
                "/machine/memory",
                "/machine/memory",
                &format!(r#"{{"addr":"{COUNTER:#x}","data":"0000000000001000"}}"#),
            );
            assert_eq!(w.status, 204, "{}", w.text());
            assert_eq!(read_u64(&p, COUNTER), 1 << 52);

            assert_eq!(call(&p, "PUT", "/machine/resume", "/machine/resume", "{}").status, 204);
            assert_eq!(call(&p, "PUT", "/machine/resume", "/machine/resume", "").status, 409);
            wait_until("the counter moves on from what was written", || read_u64(&p, COUNTER) > 1 << 52);
            let m3 = metrics(&p);
            assert!(m3[retired] > m2[retired]);
            assert_grown(&m2, &m3);

            // Errors of the bare board.
            for (m, url, template, body, want) in [
                ("GET", "/vms", "/vms", "", 404),
                ("GET", "/vms/a", "/vms/{id}", "", 404),
                ("GET", "/vms/a/memory?addr=0&len=1", "/vms/{id}/memory", "", 404),
                ("GET", "/machine/memory?addr=0x1000&len=8", "/machine/memory", "", 400),
                ("GET", &format!("/machine/memory?addr={:#x}&len=2", RAM + (16 << 20) - 1), "/machine/memory", "", 400),
                ("PUT", "/machine/memory", "/machine/memory", r#"{"addr":"0x80001000","data":"00","size":1}"#, 400),
                ("PUT", "/machine/pause", "/machine/pause", "{,}", 400),
            ] {
                let r = call(&p, m, url, template, body);
                assert_eq!(r.status, want, "{m} {url}: {}", r.text());
            }

            // The flag: the guest powers off.
            let w = call(
                &p,
                "PUT",
                "/machine/memory",
                "/machine/memory",
                &format!(r#"{{"addr":"{FLAG:#x}","data":"01"}}"#),
            );
            assert_eq!(w.status, 204);
        },
    );
    assert_eq!(end, ExitReason::PowerOff, "the guest powers off when the API writes its flag");
    assert!(!m.stopped_by_api());
    drop(server);
    assert!(!sock.exists(), "the socket file goes with the server");
}

#[test]
fn stop_ends_the_run_as_quit_also_while_paused() {
    for paused in [false, true] {
        let mut m = bare();
        let sock = tmp(&format!("stop-{paused}.sock"));
        let server = m.serve_api(&sock).unwrap();
        let p = sock.clone();
        let end = with_client(
            m.stop_handle(),
            || m.run(),
            move || {
                if paused {
                    assert_eq!(call(&p, "PUT", "/machine/pause", "/machine/pause", "").status, 204);
                }
                assert_eq!(call(&p, "PUT", "/machine/stop", "/machine/stop", "").status, 204);
            },
        );
        assert_eq!(end, ExitReason::Quit, "paused {paused}");
        assert!(m.stopped_by_api());
        assert_eq!(m.paused(), paused);
        drop(server);
    }
}

#[test]
fn under_the_hypervisor_vms_are_listed_and_protected_memory_refused() {
    let code = spinning_guest();
    let vm = |name: &str, protected: bool| VmConfig {
        name: name.into(),
        memory: 16 << 20,
        vcpus: 1,
        protected,
        kernel: file(name, &elf(&code, RAM)),
        initrd: None,
        append: String::new(),
        serial_log: None,
        virtio: Default::default(),
        // The protected VM shadow-paged: its memory is refused all the same.
        paging: if protected { Paging::Shadow } else { Paging::Nested },
    };
    let mut h = HypMachine::new(&RunConfig {
        vms: vec![vm("open", false), vm("sealed", true)],
        harts: Some(1),
        policy: Policy::Pa,
        clock: ClockMode::Host,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let sock = tmp("hyp.sock");
    let server = h.serve_api(&sock).unwrap();
    let p = sock.clone();
    let want = strata_api::hex_encode(&code);
    let out = with_client(
        h.stop_handle(),
        || h.run(),
        move || {
            let r = call(&p, "GET", "/vms", "/vms", "");
            assert_eq!(r.status, 200);
            let names: Vec<_> =
                r.json().as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
            assert_eq!(names, ["open", "sealed"]);
            let r = call(&p, "GET", "/vms/sealed", "/vms/{id}", "");
            assert_eq!((r.status, r.json()["protected"].as_bool()), (200, Some(true)));
            assert_eq!(r.json()["paging"].as_str(), Some("shadow"));
            assert_eq!(call(&p, "GET", "/vms/nobody", "/vms/{id}", "").status, 404);
            assert_eq!(call(&p, "GET", "/vms/nobody/memory?addr=0&len=1", "/vms/{id}/memory", "").status, 404);

            // The open VM's memory holds its code where the ELF put it.
            let url = format!("/vms/open/memory?addr={RAM:#x}&len={}", code.len());
            let r = call(&p, "GET", &url, "/vms/{id}/memory", "");
            assert_eq!((r.status, r.json()["data"].as_str()), (200, Some(want.as_str())), "{}", r.text());
            let oob = format!("/vms/open/memory?addr={:#x}&len=8", RAM + (16 << 20) - 4);
            assert_eq!(call(&p, "GET", &oob, "/vms/{id}/memory", "").status, 400);

            // The protected VM's: refused with the reason, both ways; and
            // machine memory, which holds its pages, too.
            let url = format!("/vms/sealed/memory?addr={RAM:#x}&len=16");
            let r = call(&p, "GET", &url, "/vms/{id}/memory", "");
            assert_eq!(r.status, 403);
            assert!(r.json()["error"].as_str().unwrap().contains("protected"), "{}", r.text());
            let body = format!(r#"{{"addr":"{RAM:#x}","data":"00"}}"#);
            assert_eq!(call(&p, "PUT", "/vms/sealed/memory", "/vms/{id}/memory", &body).status, 403);
            assert_eq!(call(&p, "GET", "/machine/memory?addr=0x80000000&len=4", "/machine/memory", "").status, 403);

            // Per-VM counters, in JSON and in the metrics, grow.
            let slots =
                |p: &Path| call(p, "GET", "/vms/open", "/vms/{id}", "").json()["vcpus"][0]["slots"].as_u64().unwrap();
            let s0 = slots(&p);
            wait_until("the open VM runs", || slots(&p) > s0);
            let m = metrics(&p);
            for k in
                ["strata_vcpu_slots_total{vm=\"open\",vcpu=\"0\"}", "strata_vcpu_exits_total{vm=\"sealed\",vcpu=\"0\"}"]
            {
                assert!(m.contains_key(k), "{k} missing from /metrics");
            }
            let running: Vec<_> =
                m.iter().filter(|(k, _)| k.starts_with("strata_vm_running{")).map(|(_, v)| *v).collect();
            assert_eq!(running, [1.0, 1.0], "both VMs run");
            assert_eq!(call(&p, "GET", "/machine", "/machine", "").json()["config"]["machine"], "strata run");
            assert_eq!(call(&p, "PUT", "/machine/stop", "/machine/stop", "").status, 204);
        },
    );
    assert!(out.quit && out.status() == 0, "{out:?}");
    drop(server);
}

/// VS-mode: writes `pattern` at RAM+0x10_0000 (8 bytes), then spins.
fn marking_guest(pattern: u64) -> Vec<u8> {
    let mut a = Asm::new();
    a.li(T0, RAM + 0x10_0000).li(T1, pattern).sd(T1, T0, 0);
    let top = a.here();
    a.addi(T2, T2, 1).j(top);
    elf(&a.bytes(), RAM)
}

#[test]
fn vms_are_created_on_a_running_hypervisor_and_deleted_with_their_memory_returned() {
    let base = VmConfig {
        name: "base".into(),
        memory: 16 << 20,
        vcpus: 1,
        protected: false,
        kernel: file("base", &elf(&spinning_guest(), RAM)),
        initrd: None,
        append: String::new(),
        serial_log: None,
        virtio: Default::default(),
        paging: Paging::Nested,
    };
    let cfg = RunConfig {
        vms: vec![base],
        harts: Some(1),
        policy: Policy::Pa,
        clock: ClockMode::Host,
        console_stdout: false,
        console_stdin: false,
        jit: true,
        extensions: strata_platform::Extensions::DEFAULT,
    };
    // Room for one more 16 MiB VM, not two.
    let mut h = HypMachine::with_spare_memory(&cfg, 16 << 20).unwrap_or_else(|e| panic!("{e}"));
    let sock = tmp("create.sock");
    let server = h.serve_api(&sock).unwrap();
    let p = sock.clone();
    let marked = file("marked", &marking_guest(0x5a5a_1234_abcd_0001));
    let plain = file("plain", &marking_guest(0));
    let out = with_client(
        h.stop_handle(),
        || h.run(),
        move || {
            let create = |name: &str, kernel: &Path| {
                let body = format!(r#"{{"name":"{name}","kernel":"{}","memory":"16M"}}"#, kernel.display());
                call(&p, "POST", "/vms", "/vms", &body)
            };
            let r = create("b", &marked);
            assert_eq!(r.status, 201, "{}", r.text());
            assert_eq!((r.json()["name"].as_str(), r.json()["state"].as_str()), (Some("b"), Some("running")));
            assert_eq!(create("b", &marked).status, 409, "a name in use");
            // No room for a third VM while b holds its memory.
            let r = create("c", &plain);
            assert_eq!(r.status, 409, "{}", r.text());
            assert!(r.json()["error"].as_str().unwrap().contains("memory"), "{}", r.text());
            let r = call(&p, "POST", "/vms", "/vms", r#"{"name":"d","kernel":"/nonexistent/kernel"}"#);
            assert_eq!(r.status, 400, "{}", r.text());

            // b runs: its mark appears in its memory.
            let mark = format!("/vms/b/memory?addr={:#x}&len=8", RAM + 0x10_0000);
            let want = strata_api::hex_encode(&0x5a5a_1234_abcd_0001u64.to_le_bytes());
            wait_until("b writes its mark", || {
                call(&p, "GET", &mark, "/vms/{id}/memory", "").json()["data"] == want.as_str()
            });

            // Deleted: it ends, and its memory comes back (c now fits).
            assert_eq!(call(&p, "DELETE", "/vms/b", "/vms/{id}", "").status, 204);
            assert_eq!(call(&p, "DELETE", "/vms/b", "/vms/{id}", "").status, 409, "ended already");
            assert_eq!(call(&p, "DELETE", "/vms/nobody", "/vms/{id}", "").status, 404);
            assert_ne!(call(&p, "GET", "/vms/b", "/vms/{id}", "").json()["state"], "running");
            let mut r = create("c", &plain);
            // Retirement happens in the hypervisor's next slice.
            wait_until("b's memory is returned", || {
                if r.status == 409 {
                    r = create("c", &plain);
                }
                r.status == 201
            });
            // c's memory reads zero where b wrote its mark (c writes zeros there
            // too, so look beside it as well: the whole page but c's own word).
            let page = format!("/vms/c/memory?addr={:#x}&len=4096", RAM + 0x10_0000);
            let data = call(&p, "GET", &page, "/vms/{id}/memory", "").json()["data"].as_str().unwrap().to_string();
            assert!(data.chars().all(|c| c == '0'), "c's memory holds b's data: {}", &data[..32]);
            let vms = call(&p, "GET", "/vms", "/vms", "").json();
            let names: Vec<_> =
                vms.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
            assert_eq!(names, ["base", "b", "c"]);
            assert_eq!(call(&p, "PUT", "/machine/stop", "/machine/stop", "").status, 204);
        },
    );
    assert!(out.quit, "{out:?}");
    drop(server);
}

//! Issue 12 item 10: `STRATA_PERF_MAP=1` writes `/tmp/perf-PID.map`, which
//! names compiled guest code by its guest address in a file any host user
//! may read. A protected VM's code must not be in it. Two VMs run under
//! `strata run`, an ordinary one whose code lies at the start of its RAM
//! and a protected one whose code lies 4 MiB in; the map must name the
//! first one's code and nothing of the second's.

use std::path::PathBuf;
use std::process::Command;

use strata_testkit::guest::countdown;

const RAM: u64 = strata_devices::board::VIRT.ram_base;
const OPEN_CODE: u64 = RAM;
const SECRET_CODE: u64 = RAM + (4 << 20);

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("strata-perfmap-test-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn item10_the_perf_map_names_no_code_of_a_protected_vm() {
    let open = file("open.elf", &countdown(OPEN_CODE, 200_000));
    let secret = file("secret.elf", &countdown(SECRET_CODE, 200_000));
    let config = file(
        "vms.toml",
        format!(
            "harts = 2\n\
             [[vm]]\nname = \"open\"\nmemory = \"16M\"\nkernel = \"{}\"\n\
             [[vm]]\nname = \"secret\"\nmemory = \"16M\"\nprotected = true\nkernel = \"{}\"\n",
            open.display(),
            secret.display()
        )
        .as_bytes(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["run", "--clock", "virtual", "--config"])
        .arg(&config)
        .env("STRATA_PERF_MAP", "1")
        .env_remove("STRATA_NO_JIT")
        .stdin(std::process::Stdio::null())
        .output_with_pid();
    let (pid, out) = child;
    let map_path = PathBuf::from(format!("/tmp/perf-{pid}.map"));
    let map = std::fs::read_to_string(&map_path);
    for p in [&open, &secret, &config, &map_path] {
        let _ = std::fs::remove_file(p);
    }
    assert!(out.status.success(), "strata run failed: {}", String::from_utf8_lossy(&out.stderr));
    let map = map.unwrap_or_else(|e| panic!("no perf map {}: {e}", map_path.display()));
    // perf's JIT map format: "start size name"; Strata's names are guest_<pc>.
    let pcs: Vec<u64> = map
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.strip_prefix("guest_").map(str::to_owned))
        .map(|h| u64::from_str_radix(&h, 16).expect("a hex guest pc"))
        .collect();
    let in_page = |pc: u64, code: u64| (code..code + 4096).contains(&pc);
    assert!(
        pcs.iter().any(|&pc| in_page(pc, OPEN_CODE)),
        "the ordinary VM's blocks are named ({} lines):\n{map}",
        pcs.len()
    );
    let leaked: Vec<String> = pcs.iter().filter(|&&pc| in_page(pc, SECRET_CODE)).map(|pc| format!("{pc:#x}")).collect();
    assert!(leaked.is_empty(), "the protected VM's code is named in the perf map: {leaked:?}");
}

/// `Command::output`, and the child's pid (the perf map is named by it).
trait OutputWithPid {
    fn output_with_pid(&mut self) -> (u32, std::process::Output);
}

impl OutputWithPid for Command {
    fn output_with_pid(&mut self) -> (u32, std::process::Output) {
        let child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("strata starts");
        let pid = child.id();
        (pid, child.wait_with_output().expect("strata runs"))
    }
}

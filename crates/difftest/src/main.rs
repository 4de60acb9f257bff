//! strata-difftest: seeded random differential tester (Strata vs QEMU).
//!
//!   strata-difftest run --seed S --count N [--insns-per-program M]
//!                       [--checkpoint-every K] [--reduce] [--dir D]
//!   strata-difftest gen --prog-seed X [--insns M] [-o FILE]
//!   strata-difftest reduce (--prog-seed X | --seed S --program I) [--insns M] [-o FILE]
//!   strata-difftest check FILE.S...
//!
//! Every command takes `--oracle qemu|interp` (default qemu): `interp`
//! compares Strata with its JIT against Strata with `--no-jit`.
//!
//! Environment: STRATA_BIN (default $CARGO_TARGET_DIR/release/strata or
//! target/release/strata), QEMU, CC_RISCV, TIMEOUT (seconds per run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use strata_difftest::emit::emit_file;
use strata_difftest::exec::{self, Tools, Verdict};
use strata_difftest::gen::{generate, GenConfig, Program};
use strata_difftest::prng::program_seed;
use strata_difftest::reduce::Reducer;

struct Args {
    cmd: String,
    opts: Vec<(String, String)>,
    flags: Vec<String>,
    files: Vec<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let cmd = it.next().ok_or_else(usage)?;
        let (mut opts, mut flags, mut files) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(a) = it.next() {
            match a.as_str() {
                "--reduce" | "--keep" => flags.push(a),
                _ if a.starts_with('-') => {
                    let v = it.next().ok_or(format!("{a} needs a value"))?;
                    opts.push((a, v));
                }
                _ => files.push(a),
            }
        }
        Ok(Args { cmd, opts, flags, files })
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }
    fn num(&self, k: &str) -> Result<Option<u64>, String> {
        self.get(k).map(|v| parse_num(v).ok_or(format!("bad number for {k}: {v}"))).transpose()
    }
    fn flag(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn usage() -> String {
    "usage: strata-difftest run --seed S --count N [--insns-per-program M] [--checkpoint-every K] [--reduce] [--dir D]\n\
     \x20      strata-difftest gen --prog-seed X [--insns M] [-o FILE]\n\
     \x20      strata-difftest reduce (--prog-seed X | --seed S --program I) [--insns M] [-o FILE]\n\
     \x20      strata-difftest check FILE.S...\n\
     \x20      (any command: --oracle qemu|interp; interp = Strata with --no-jit)"
        .into()
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let r = match args.cmd.as_str() {
        "run" => cmd_run(&args),
        "gen" => cmd_gen(&args),
        "reduce" => cmd_reduce(&args),
        "check" => cmd_check(&args),
        _ => Err(usage()),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("strata-difftest: {e}");
            ExitCode::from(2)
        }
    }
}

/// The generator's configuration. With `--oracle interp` the programs also
/// hold what QEMU 7.2 cannot check (see [`GenConfig::beyond_qemu`]), so
/// reproduce such a program with the same `--oracle`.
fn gen_config(a: &Args) -> Result<GenConfig, String> {
    let d = GenConfig::default();
    Ok(GenConfig {
        insns: a.num("--insns-per-program")?.or(a.num("--insns")?).map_or(d.insns, |v| v as usize),
        checkpoint_every: a.num("--checkpoint-every")?.map_or(d.checkpoint_every, |v| v as usize),
        beyond_qemu: tools(a)?.oracle == strata_difftest::exec::Oracle::Interp,
    })
}

fn work_dir(a: &Args) -> Result<PathBuf, String> {
    let d = PathBuf::from(a.get("--dir").unwrap_or("build/difftest"));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

fn tools(a: &Args) -> Result<Tools, String> {
    let mut t = Tools::from_env();
    if let Some(o) = a.get("--oracle") {
        t.oracle = strata_difftest::exec::Oracle::parse(o)?;
    }
    Ok(t)
}

fn check_tools(t: &Tools) -> Result<(), String> {
    if !t.strata.exists() {
        return Err(format!("strata binary not found at {} (set STRATA_BIN)", t.strata.display()));
    }
    Ok(())
}

/// Generate, build and compare one program.
fn run_program(tools: &Tools, p: &Program, src: &Path) -> Result<Verdict, String> {
    std::fs::write(src, emit_file(p, "")).map_err(|e| format!("{}: {e}", src.display()))?;
    exec::check_source(tools, src)
}

fn cmd_run(a: &Args) -> Result<bool, String> {
    let seed = a.num("--seed")?.ok_or("run needs --seed")?;
    let count = a.num("--count")?.unwrap_or(100_000) as usize;
    let cfg = gen_config(a)?;
    let tools = tools(a)?;
    check_tools(&tools)?;
    let dir = work_dir(a)?;
    let programs = count.div_ceil(cfg.insns.max(1)).max(1);
    let started = Instant::now();
    let (mut passed, mut failed) = (0usize, 0usize);
    for i in 0..programs {
        let ps = program_seed(seed, i as u64);
        let p = generate(ps, &cfg);
        let src = dir.join(format!("prog-{ps:016x}.S"));
        let v = run_program(&tools, &p, &src)?;
        match &v {
            Verdict::Pass { checkpoints, traps, mtval_choices } => {
                passed += 1;
                println!(
                    "PASS program {i} prog-seed {ps:#018x} ({checkpoints} checkpoints, {traps} traps{})",
                    choices_note(*mtval_choices)
                );
                if !a.flag("--keep") {
                    for ext in ["S", "elf", "ld"] {
                        let _ = std::fs::remove_file(src.with_extension(ext));
                    }
                }
            }
            Verdict::OracleBroken(m) => {
                failed += 1;
                println!("FAIL program {i} prog-seed {ps:#018x}: {m} (source kept: {})", src.display());
            }
            Verdict::Mismatch(m) => {
                failed += 1;
                println!("FAIL program {i} prog-seed {ps:#018x}: {m} (source kept: {})", src.display());
                if a.flag("--reduce") {
                    let out = dir.join(format!("reduced-{ps:016x}.S"));
                    reduce_to_file(&tools, &p, &cfg, &dir, &out)?;
                }
            }
        }
    }
    eprintln!(
        "difftest: seed {seed}, {programs} programs of {} instructions, {:.1}s",
        cfg.insns,
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn cmd_gen(a: &Args) -> Result<bool, String> {
    let ps = a.num("--prog-seed")?.ok_or("gen needs --prog-seed")?;
    let p = generate(ps, &gen_config(a)?);
    let text = emit_file(&p, "");
    match a.get("-o") {
        Some(f) => std::fs::write(f, text).map_err(|e| format!("{f}: {e}"))?,
        None => print!("{text}"),
    }
    Ok(true)
}

fn cmd_reduce(a: &Args) -> Result<bool, String> {
    let ps = match a.num("--prog-seed")? {
        Some(s) => s,
        None => program_seed(
            a.num("--seed")?.ok_or("reduce needs --prog-seed or --seed and --program")?,
            a.num("--program")?.ok_or("reduce needs --program with --seed")?,
        ),
    };
    let cfg = gen_config(a)?;
    let tools = tools(a)?;
    check_tools(&tools)?;
    let dir = work_dir(a)?;
    let out = a.get("-o").map(PathBuf::from).unwrap_or_else(|| dir.join(format!("reduced-{ps:016x}.S")));
    let p = generate(ps, &cfg);
    reduce_to_file(&tools, &p, &cfg, &dir, &out)
}

fn reduce_to_file(tools: &Tools, p: &Program, cfg: &GenConfig, dir: &Path, out: &Path) -> Result<bool, String> {
    let src = dir.join(format!("reduce-{:016x}.S", p.seed));
    let first = match run_program(tools, p, &src)? {
        Verdict::Mismatch(m) => m,
        v => {
            println!("prog-seed {:#018x} does not fail: {v:?}", p.seed);
            return Ok(true);
        }
    };
    println!("reducing prog-seed {:#018x}: {first}", p.seed);
    let kind = first.kind.clone();
    let mut last = first.clone();
    let mut err = None;
    let mut test = |c: &Program| match run_program(tools, c, &src) {
        Ok(Verdict::Mismatch(m)) if m.kind == kind => {
            last = m;
            true
        }
        Ok(_) => false,
        Err(e) => {
            err = Some(e);
            false
        }
    };
    let mut log = |s: &str| eprintln!("  {s}");
    let mut r = Reducer { test: &mut test, log: &mut log, tests_run: 0 };
    let small = r.reduce(p);
    let runs = r.tests_run;
    if let Some(e) = err {
        eprintln!("note: some candidates failed to build/run: {e}");
    }
    // Re-run the result to report its exact mismatch.
    let fin = match run_program(tools, &small, &src)? {
        Verdict::Mismatch(m) => m,
        v => return Err(format!("reduced program no longer fails: {v:?}")),
    };
    let note = format!(
        "Reduced by `strata-difftest reduce --prog-seed {:#x} --insns {}` ({} runs).\n\
         Original: {first}\nReduced:  {fin}",
        p.seed, cfg.insns, runs
    );
    std::fs::write(out, emit_file(&small, &note)).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("reduced to {} instructions in {runs} runs: {fin}\nwrote {}", small.weight(), out.display());
    Ok(false)
}

fn cmd_check(a: &Args) -> Result<bool, String> {
    if a.files.is_empty() {
        return Err("check needs .S files".into());
    }
    let tools = tools(a)?;
    check_tools(&tools)?;
    let dir = work_dir(a)?;
    let (mut passed, mut failed) = (0, 0);
    for f in &a.files {
        let name = Path::new(f).file_stem().unwrap().to_string_lossy().to_string();
        let src = dir.join(format!("regress-{name}.S"));
        std::fs::copy(f, &src).map_err(|e| format!("{f}: {e}"))?;
        match exec::check_source(&tools, &src)? {
            Verdict::Pass { checkpoints, traps, mtval_choices } => {
                passed += 1;
                println!("PASS {name} ({checkpoints} checkpoints, {traps} traps{})", choices_note(mtval_choices));
            }
            Verdict::OracleBroken(m) => {
                failed += 1;
                println!("FAIL {name}: {m}");
            }
            Verdict::Mismatch(m) => {
                failed += 1;
                println!("FAIL {name}: {m}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}

fn choices_note(n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {n} with differing spec-permitted mtval")
    }
}

//! Delta-debugging reducer over the item tree of a [`Program`].
//!
//! Every sub-list of items is a well-formed program (see `gen`), so the
//! reducer only ever removes items, flattens a compound item into its body,
//! or lowers a loop count; labels are re-created by the emitter.

use crate::gen::{Item, Program};

pub struct Reducer<'a> {
    /// True when the candidate still shows the failure.
    pub test: &'a mut dyn FnMut(&Program) -> bool,
    pub log: &'a mut dyn FnMut(&str),
    pub tests_run: usize,
}

impl<'a> Reducer<'a> {
    fn check(&mut self, p: &Program) -> bool {
        self.tests_run += 1;
        (self.test)(p)
    }

    pub fn reduce(&mut self, p: &Program) -> Program {
        let mut cur = self.truncate(p);
        (self.log)(&format!("after truncation: {} instructions", cur.weight()));
        cur = self.localize(cur);
        (self.log)(&format!("after localization: {} instructions; last item: {:?}", cur.weight(), cur.items.last()));
        loop {
            let before = (cur.weight(), count_items(&cur.items), loop_total(&cur.items));
            cur = self.ddmin_at(cur, &[]);
            cur = self.simplify_compounds(cur, &mut Vec::new());
            (self.log)(&format!("pass done: {} instructions, {} tests so far", cur.weight(), self.tests_run));
            if (cur.weight(), count_items(&cur.items), loop_total(&cur.items)) == before {
                return cur;
            }
        }
    }

    /// Cut the program after the first checkpoint that shows the failure.
    fn truncate(&mut self, p: &Program) -> Program {
        let cps: Vec<usize> =
            p.items.iter().enumerate().filter(|(_, i)| **i == Item::Checkpoint).map(|(k, _)| k).collect();
        // Smallest prefix (ending at a checkpoint) that still fails; binary search.
        let (mut lo, mut hi) = (0usize, cps.len()); // answer in lo..=hi; hi = whole program
        while lo < hi {
            let mid = (lo + hi) / 2;
            let mut cand = p.clone();
            cand.items.truncate(cps[mid]);
            if self.check(&cand) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let mut out = p.clone();
        if hi < cps.len() {
            out.items.truncate(cps[hi]);
        }
        out
    }

    /// Smallest failing prefix at item granularity (binary search below
    /// the first failing checkpoint). Cutting the tail keeps the addresses
    /// of everything before it, so this works for layout-sensitive bugs.
    fn localize(&mut self, cur: Program) -> Program {
        let start = cur.items.iter().rposition(|i| *i == Item::Checkpoint).map_or(0, |k| k + 1);
        let (mut lo, mut hi) = (start, cur.items.len()); // items[..hi] fails
        while lo < hi {
            let mid = (lo + hi) / 2;
            let mut cand = cur.clone();
            cand.items.truncate(mid);
            if self.check(&cand) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let mut out = cur;
        out.items.truncate(hi);
        out
    }

    /// Classic ddmin-style chunk removal on the item list at `path`.
    fn ddmin_at(&mut self, mut cur: Program, path: &[usize]) -> Program {
        let mut n = 2usize;
        loop {
            let len = body_at(&cur.items, path).len();
            if len == 0 {
                return cur;
            }
            let chunk = len.div_ceil(n).max(1);
            let mut removed = false;
            let mut start = 0;
            while start < body_at(&cur.items, path).len() {
                let mut cand = cur.clone();
                let b = body_at_mut(&mut cand.items, path);
                let end = (start + chunk).min(b.len());
                b.drain(start..end);
                if self.check(&cand) {
                    cur = cand;
                    removed = true;
                } else {
                    start += chunk;
                }
            }
            if !removed {
                if chunk == 1 {
                    return cur;
                }
                n = (n * 2).min(len);
            }
        }
    }

    /// For each compound item (depth first): try replacing it by its body,
    /// reduce its body, and try a loop count of 1.
    fn simplify_compounds(&mut self, mut cur: Program, path: &mut Vec<usize>) -> Program {
        let mut i = 0;
        while i < body_at(&cur.items, path).len() {
            let item = body_at(&cur.items, path)[i].clone();
            let body = match &item {
                Item::Skip { body, .. } | Item::Loop { body, .. } => body.clone(),
                _ => {
                    i += 1;
                    continue;
                }
            };
            // Flatten.
            let mut cand = cur.clone();
            let list = body_at_mut(&mut cand.items, path);
            list.splice(i..=i, body.iter().cloned());
            if self.check(&cand) {
                cur = cand;
                continue; // re-examine the items now at i
            }
            if let Item::Loop { count, body } = &item {
                if *count > 1 {
                    let mut cand = cur.clone();
                    body_at_mut(&mut cand.items, path)[i] = Item::Loop { count: 1, body: body.clone() };
                    if self.check(&cand) {
                        cur = cand;
                    }
                }
            }
            path.push(i);
            cur = self.ddmin_at(cur, path);
            cur = self.simplify_compounds(cur, path);
            path.pop();
            i += 1;
        }
        cur
    }
}

fn count_items(items: &[Item]) -> usize {
    items
        .iter()
        .map(|i| match i {
            Item::Skip { body, .. } | Item::Loop { body, .. } => 1 + count_items(body),
            _ => 1,
        })
        .sum()
}

fn loop_total(items: &[Item]) -> u64 {
    items
        .iter()
        .map(|i| match i {
            Item::Loop { count, body } => *count as u64 + loop_total(body),
            Item::Skip { body, .. } => loop_total(body),
            _ => 0,
        })
        .sum()
}

pub fn body_at<'b>(items: &'b [Item], path: &[usize]) -> &'b [Item] {
    match path.split_first() {
        None => items,
        Some((&k, rest)) => match &items[k] {
            Item::Skip { body, .. } | Item::Loop { body, .. } => body_at(body, rest),
            _ => panic!("path through a non-compound item"),
        },
    }
}

pub fn body_at_mut<'b>(items: &'b mut Vec<Item>, path: &[usize]) -> &'b mut Vec<Item> {
    match path.split_first() {
        None => items,
        Some((&k, rest)) => match &mut items[k] {
            Item::Skip { body, .. } | Item::Loop { body, .. } => body_at_mut(body, rest),
            _ => panic!("path through a non-compound item"),
        },
    }
}

/// Structural check of emitted assembly: every generated label is defined
/// once, skips jump forward, loops jump backward, and every loop is entered
/// through its counter initialisation.
pub fn check_well_formed(asm: &str) -> Result<(), String> {
    use std::collections::HashMap;
    let mut defs: HashMap<String, usize> = HashMap::new();
    let mut uses: Vec<(String, usize)> = Vec::new();
    let lines: Vec<&str> = asm.lines().collect();
    for (n, l) in lines.iter().enumerate() {
        let t = l.trim();
        if let Some(lab) = t.strip_suffix(':') {
            if lab.starts_with(".L") && defs.insert(lab.to_string(), n).is_some() {
                return Err(format!("label {lab} defined twice"));
            }
            if lab.starts_with(".Lloop") {
                let prev = n.checked_sub(1).map(|k| lines[k].trim()).unwrap_or("");
                if prev != "li x31, 1" && !prev.starts_with("li x31, ") {
                    return Err(format!("loop {lab} not preceded by its counter init"));
                }
            }
        } else if let Some(pos) = t.find(".L") {
            let lab: String = t[pos..].chars().take_while(|c| c.is_alphanumeric() || *c == '.' || *c == '_').collect();
            uses.push((lab, n));
        }
    }
    for (lab, n) in uses {
        let d = *defs.get(&lab).ok_or(format!("label {lab} used but not defined"))?;
        if lab.starts_with(".Lskip") && d <= n {
            return Err(format!("skip {lab} jumps backward"));
        }
        if lab.starts_with(".Lloop") && d >= n {
            return Err(format!("loop {lab} jumps forward"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::emit_file;
    use crate::gen::{generate, GenConfig};

    fn find_deep_op(items: &[Item], depth: usize) -> Option<String> {
        for it in items {
            match it {
                Item::Op(s) if depth >= 1 => return Some(s.clone()),
                Item::Skip { body, .. } | Item::Loop { body, .. } => {
                    if let Some(s) = find_deep_op(body, depth + 1) {
                        return Some(s);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn contains(items: &[Item], op: &str) -> bool {
        items.iter().any(|i| match i {
            Item::Op(s) => s == op,
            Item::Skip { body, .. } | Item::Loop { body, .. } => contains(body, op),
            _ => false,
        })
    }

    fn assemble_if_possible(asm: &str, name: &str) {
        let cc = "riscv64-unknown-elf-gcc";
        if std::process::Command::new(cc).arg("--version").output().is_err() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("difftest-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join(format!("{name}.S"));
        std::fs::write(&src, asm).unwrap();
        let out = std::process::Command::new(cc)
            .args(["-march=rv64gc", "-mabi=lp64d", "-c", "-o"])
            .arg(dir.join(format!("{name}.o")))
            .arg(&src)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn generated_programs_are_well_formed() {
        for seed in 0..10 {
            let p = generate(seed, &GenConfig { insns: 2000, checkpoint_every: 500, beyond_qemu: true });
            check_well_formed(&emit_file(&p, "")).unwrap();
        }
        let p = generate(99, &GenConfig { insns: 3000, checkpoint_every: 500, beyond_qemu: true });
        assemble_if_possible(&emit_file(&p, ""), "gen99");
    }

    #[test]
    fn well_formed_check_catches_breakage() {
        assert!(check_well_formed("    beq x1, x2, .Lskip1\n").is_err());
        assert!(check_well_formed(".Lskip1:\n    beq x1, x2, .Lskip1\n").is_err());
        assert!(check_well_formed(".Lloop1:\n    bnez x31, .Lloop1\n").is_err());
        assert!(check_well_formed("    li x31, 2\n.Lloop1:\n    bnez x31, .Lloop1\n").is_ok());
    }

    #[test]
    fn reducer_keeps_programs_well_formed_and_minimal() {
        for seed in 0..6u64 {
            let p = generate(seed, &GenConfig { insns: 1500, checkpoint_every: 300, beyond_qemu: true });
            let Some(target) = find_deep_op(&p.items, 0) else { continue };
            let mut seen_bad = None;
            let mut test = |c: &Program| {
                let asm = emit_file(c, "");
                if let Err(e) = check_well_formed(&asm) {
                    seen_bad = Some(e);
                }
                contains(&c.items, &target)
            };
            let mut log = |_: &str| {};
            let mut r = Reducer { test: &mut test, log: &mut log, tests_run: 0 };
            let out = r.reduce(&p);
            assert_eq!(seen_bad, None, "seed {seed}: reducer produced a malformed candidate");
            // Only the one interesting op is left, flattened out of its compounds.
            assert_eq!(out.items, vec![Item::Op(target.clone())], "seed {seed}");
            let asm = emit_file(&out, "");
            check_well_formed(&asm).unwrap();
            assemble_if_possible(&asm, &format!("red{seed}"));
        }
    }

    #[test]
    fn reducer_keeps_needed_loop_structure() {
        // Failure needs a loop whose body still contains some op: the loop
        // must survive with its label and counter intact.
        let p = generate(5, &GenConfig { insns: 1500, checkpoint_every: 300, beyond_qemu: true });
        let mut test = |c: &Program| {
            fn has(items: &[Item]) -> bool {
                items.iter().any(|i| match i {
                    Item::Loop { count, body } => *count >= 1 && body.iter().any(|b| matches!(b, Item::Op(_))),
                    Item::Skip { body, .. } => has(body),
                    _ => false,
                })
            }
            has(&c.items)
        };
        let mut log = |_: &str| {};
        let mut r = Reducer { test: &mut test, log: &mut log, tests_run: 0 };
        let out = r.reduce(&p);
        assert_eq!(out.items.len(), 1);
        match &out.items[0] {
            Item::Loop { count, body } => {
                assert_eq!(*count, 1);
                assert_eq!(body.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        check_well_formed(&emit_file(&out, "")).unwrap();
    }
}

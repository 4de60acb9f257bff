//! The Prometheus text exposition format (version 0.0.4): one family per
//! metric name, its `# HELP` and `# TYPE` lines, then its samples with
//! their labels. Families stay in the order they were first named, and a
//! family's samples stay together, as the format requires.

use std::fmt::Write as _;

/// A metric family's type (`# TYPE` line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only grows (Prometheus convention: the name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

struct Family {
    name: String,
    help: String,
    kind: MetricKind,
    samples: Vec<(String, String)>,
}

/// A text exposition being built.
#[derive(Default)]
pub struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a counter sample: `name` ends in `_total`.
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        debug_assert!(name.ends_with("_total"), "{name}: counters end in _total");
        self.sample(name, help, MetricKind::Counter, labels, value.to_string());
    }

    /// Adds a counter sample that is a float (seconds).
    pub fn counter_f(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        debug_assert!(name.ends_with("_total"), "{name}: counters end in _total");
        self.sample(name, help, MetricKind::Counter, labels, fmt_f64(value));
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, help, MetricKind::Gauge, labels, fmt_f64(value));
    }

    fn sample(&mut self, name: &str, help: &str, kind: MetricKind, labels: &[(&str, &str)], value: String) {
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family { name: name.into(), help: help.into(), kind, samples: Vec::new() });
                self.families.len() - 1
            }
        };
        let mut l = String::new();
        for (k, v) in labels {
            if !l.is_empty() {
                l.push(',');
            }
            let _ = write!(l, "{k}=\"{}\"", escape_label(v));
        }
        self.families[i].samples.push((l, value));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in &self.families {
            let kind = match f.kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
            };
            let _ = writeln!(s, "# HELP {} {}", f.name, f.help.replace('\\', "\\\\").replace('\n', "\\n"));
            let _ = writeln!(s, "# TYPE {} {kind}", f.name);
            for (labels, v) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(s, "{} {v}", f.name);
                } else {
                    let _ = writeln!(s, "{}{{{labels}}} {v}", f.name);
                }
            }
        }
        s
    }
}

/// A label value with `\`, `"` and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn fmt_f64(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

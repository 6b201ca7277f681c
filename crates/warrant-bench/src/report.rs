//! Figures, their targets and verdicts, and the facts about the machine a run needs to be
//! read correctly (cores, CPU, load before and after).

use std::fs;

use anyhow::Result;
use serde::Serialize;
use warrant_core::{Clock, SystemClock};

/// Which direction is better for a figure; decides how it is rounded (never in our favour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// A rate: printed rounded down.
    Higher,
    /// A latency or a duration: printed rounded up.
    Lower,
}

/// A goal from PRODUCT.md.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// The figure must be at least this.
    AtLeast(f64),
    /// The figure must be under this.
    Below(f64),
    /// The figure must be at most this ("within").
    AtMost(f64),
    /// The figure must be zero (a count of errors).
    Zero,
}

/// The target of a figure and whether it was met.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The target as PRODUCT.md states it.
    pub target: String,
    /// Whether the figure meets it.
    pub met: bool,
    /// figure / target.
    pub ratio: f64,
    /// In words, e.g. `not met: 14.2% of the target`.
    pub text: String,
}

impl Goal {
    fn judge(self, value: f64, target: &str) -> Verdict {
        match self {
            Goal::AtLeast(t) => {
                let ratio = value / t;
                let met = value >= t;
                let text = if met {
                    format!("met ({}x the target)", floor2(ratio))
                } else {
                    format!("NOT MET: {}% of the target", floor1(ratio * 100.0))
                };
                Verdict {
                    target: target.to_owned(),
                    met,
                    ratio,
                    text,
                }
            }
            Goal::Zero => Verdict {
                target: target.to_owned(),
                met: value == 0.0,
                ratio: value,
                text: if value == 0.0 {
                    "met".to_owned()
                } else {
                    format!("NOT MET: {value}")
                },
            },
            Goal::Below(t) | Goal::AtMost(t) => {
                let ratio = value / t;
                let met = match self {
                    Goal::AtMost(_) => value <= t,
                    _ => value < t,
                };
                let text = if met {
                    format!("met ({}% of the limit)", ceil1(ratio * 100.0))
                } else {
                    format!("NOT MET: {}x the limit", ceil2(ratio))
                };
                Verdict {
                    target: target.to_owned(),
                    met,
                    ratio,
                    text,
                }
            }
        }
    }
}

fn floor1(v: f64) -> f64 {
    (v * 10.0).floor() / 10.0
}

fn floor2(v: f64) -> f64 {
    (v * 100.0).floor() / 100.0
}

fn ceil1(v: f64) -> f64 {
    (v * 10.0).ceil() / 10.0
}

fn ceil2(v: f64) -> f64 {
    (v * 100.0).ceil() / 100.0
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Dotted name, e.g. `check.http.decisions_per_s`.
    pub name: String,
    /// The value, unrounded.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// The target and verdict, when PRODUCT.md sets one.
    pub verdict: Option<Verdict>,
    /// How it was measured (counts, durations, settings).
    pub detail: String,
}

impl Figure {
    /// A figure without a target.
    pub fn new(name: &str, value: f64, unit: &str, better: Better, detail: String) -> Self {
        Self {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            better,
            verdict: None,
            detail,
        }
    }

    /// The same figure judged against a goal.
    pub fn goal(mut self, goal: Goal, target: &str) -> Self {
        self.verdict = Some(goal.judge(self.value, target));
        self
    }

    /// The value as printed: 3 significant decimals at most, rounded against us.
    pub fn shown(&self) -> String {
        let v = self.value;
        let scale = if v.abs() >= 100.0 {
            1.0
        } else if v.abs() >= 1.0 {
            100.0
        } else {
            1000.0
        };
        let r = match self.better {
            Better::Higher => (v * scale).floor() / scale,
            Better::Lower => (v * scale).ceil() / scale,
        };
        if scale == 1.0 {
            format!("{r:.0}")
        } else {
            format!("{r}")
        }
    }

    fn line(&self) -> String {
        let mut s = format!("{:<44} {:>12} {}", self.name, self.shown(), self.unit);
        if let Some(v) = &self.verdict {
            s.push_str(&format!("  [target {}: {}]", v.target, v.text));
        }
        if !self.detail.is_empty() {
            s.push_str(&format!("  ({})", self.detail));
        }
        s
    }
}

/// Facts about the machine at the time of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available.
    pub nproc: usize,
    /// From /proc/cpuinfo.
    pub cpu_model: String,
    /// From /proc/meminfo.
    pub mem_total: String,
    /// /proc/loadavg at the start.
    pub loadavg_before: String,
    /// /proc/loadavg at the end.
    pub loadavg_after: String,
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn proc_field(file: &str, key: &str) -> String {
    fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The report of one scenario.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// Its options.
    pub args: String,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// The figures, in order.
    pub figures: Vec<Figure>,
    /// Remarks made while measuring (setup facts, anomalies).
    pub notes: Vec<String>,
    #[serde(skip)]
    json: bool,
}

impl Report {
    /// A report for `scenario`; prints its header unless `json`.
    pub fn start(scenario: &str, args: String, json: bool) -> Self {
        let machine = Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: proc_field("/proc/cpuinfo", "model name"),
            mem_total: proc_field("/proc/meminfo", "MemTotal"),
            loadavg_before: loadavg(),
            loadavg_after: String::new(),
        };
        let r = Self {
            scenario: scenario.to_owned(),
            args,
            started_at: SystemClock.now().rfc3339(),
            machine,
            figures: Vec::new(),
            notes: Vec::new(),
            json,
        };
        if !json {
            println!(
                "# warrant-bench {} at {} on {} CPU(s) ({}, {}), load average {}",
                r.scenario,
                r.started_at,
                r.machine.nproc,
                r.machine.cpu_model,
                r.machine.mem_total,
                r.machine.loadavg_before
            );
            println!("# options: {}", r.args);
        }
        r
    }

    /// Adds a figure (printed at once unless `--json`).
    pub fn add(&mut self, f: Figure) {
        if !self.json {
            println!("{}", f.line());
        }
        self.figures.push(f);
    }

    /// Adds a remark (printed at once, as a comment, unless `--json`).
    pub fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !self.json {
            println!("# {s}");
        }
        self.notes.push(s);
    }

    /// Records the load at the end and prints the footer (or the JSON report).
    pub fn finish(&mut self) -> Result<()> {
        self.machine.loadavg_after = loadavg();
        if self.json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            println!("# load average at the end {}", self.machine.loadavg_after);
        }
        Ok(())
    }
}

/// Progress on stderr (never mixed into the figures on stdout).
pub fn progress(s: &str) {
    eprintln!("warrant-bench: {s}");
}

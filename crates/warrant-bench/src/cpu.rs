//! Where the CPU went during a measurement: this process's CPU time by thread name, read from
//! `/proc/self/task/*/stat`. Tokio's workers (HTTP, engine, load generator when in process)
//! show as `tokio-runtime-w`, sqlx's SQLite connection threads as `sqlx-sqlite-wor`.

use std::collections::BTreeMap;
use std::fs;
use std::time::Instant;

/// Clock ticks per second of `/proc` times (`CLK_TCK`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds used so far, by thread name (trailing digits removed).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    at: Option<Instant>,
    by_tid: BTreeMap<String, (String, f64)>,
    process: Option<f64>,
    machine: Option<MachineTicks>,
}

/// Machine-wide CPU ticks from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default)]
struct MachineTicks {
    /// user + nice + system + irq + softirq (everything but idle, iowait and steal).
    busy: f64,
    /// Time the hypervisor gave to someone else.
    steal: f64,
}

fn machine_ticks() -> Option<MachineTicks> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let f = |i: usize| v.get(i).copied().unwrap_or(0.0);
    Some(MachineTicks {
        busy: f(0) + f(1) + f(2) + f(5) + f(6),
        steal: f(7),
    })
}

/// User + system CPU seconds of a `stat(5)` line: fields 14 and 15, counted after the name
/// (which may hold spaces) ends.
fn stat_seconds(stat: &str) -> Option<f64> {
    let close = stat.rfind(')')?;
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / TICKS_PER_SEC)
}

/// This process's CPU seconds, threads that have ended included (the per-thread list loses
/// them: a verification connection's thread is gone by the end of its phase).
fn process_seconds() -> Option<f64> {
    stat_seconds(&fs::read_to_string("/proc/self/stat").ok()?)
}

fn thread_times() -> BTreeMap<String, (String, f64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(stat) = fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat
            .get(open + 1..close)
            .unwrap_or("?")
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
            .to_owned();
        let Some(secs) = stat_seconds(&stat) else {
            continue;
        };
        let tid = entry.file_name().to_string_lossy().into_owned();
        out.insert(tid, (name, secs));
    }
    out
}

impl Snapshot {
    /// The CPU times now.
    pub fn take() -> Self {
        Self {
            at: Some(Instant::now()),
            by_tid: thread_times(),
            process: process_seconds(),
            machine: machine_ticks(),
        }
    }

    /// CPU used since `self`, as a percentage of one core per thread name, over the wall time
    /// elapsed; e.g. `tokio-runtime-w 120%, sqlx-sqlite-wor 70%, total 190% of 200%`.
    pub fn since(&self) -> String {
        let now = thread_times();
        let wall = self.at.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if wall <= 0.0 {
            return String::new();
        }
        let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
        for (tid, (name, secs)) in &now {
            let before = self.by_tid.get(tid).map_or(0.0, |(_, s)| *s);
            *by_name.entry(name.clone()).or_default() += secs - before;
        }
        let threads: f64 = by_name.values().sum();
        let total = match (self.process, process_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => threads,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut parts: Vec<(String, f64)> = by_name.into_iter().filter(|(_, s)| *s > 0.0).collect();
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut s: Vec<String> = parts
            .iter()
            .map(|(n, secs)| format!("{n} {:.0}%", secs / wall * 100.0))
            .collect();
        s.push(format!(
            "process total {:.0}% of {}%",
            total / wall * 100.0,
            cores * 100
        ));
        if let (Some(a), Some(b)) = (self.machine, machine_ticks()) {
            let busy = (b.busy - a.busy) / TICKS_PER_SEC;
            let steal = (b.steal - a.steal) / TICKS_PER_SEC;
            s.push(format!(
                "other processes {:.0}%, steal {:.0}%",
                ((busy - total) / wall * 100.0).max(0.0),
                steal / wall * 100.0
            ));
        }
        format!("CPU: {}", s.join(", "))
    }
}

//! `kill -9` under load: after a restart, everything the server acknowledged is there, every
//! approved request has its grant, and the audit chain verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Run, Who, World, s, warrant};

const WORKERS: usize = 8;
/// When the server is killed, counted from the start of the burst.
const KILL_AFTER: Duration = Duration::from_millis(2000);
/// The burst ends at the kill; this bounds it should the kill never come.
const BURST_LIMIT: Duration = Duration::from_secs(4);

/// What the server acknowledged (exit 0 with the JSON answer).
#[derive(Debug, Default)]
struct Acks {
    /// Request id → what was acknowledged about it, in order.
    requests: BTreeMap<String, Vec<Ack>>,
    /// Failures seen before the kill (there should be none).
    early_failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ack {
    /// Created; `grant` when approved at once.
    Created {
        status: String,
        grant: Option<String>,
    },
    /// Approved by someone; `grant` once the last stage is done.
    Approved {
        by: &'static str,
        grant: Option<String>,
    },
}

struct Burst<'a> {
    url: &'a str,
    killed: &'a AtomicBool,
    acks: &'a Mutex<Acks>,
}

impl Burst<'_> {
    /// Runs one step; `Some(answer)` when acknowledged.
    fn step(&self, who: &Who, args: &[&str]) -> Option<Value> {
        let run: Run = warrant(self.url, who, args, None);
        if run.code == Some(0) {
            return Some(run.json());
        }
        // The kill flag is set before the signal is sent: a failure seen while it is still
        // clear happened on a healthy server.
        if !self.killed.load(Ordering::SeqCst) {
            self.acks
                .lock()
                .expect("acks")
                .early_failures
                .push(run.to_string());
        }
        None
    }

    fn ack(&self, id: &str, ack: Ack) {
        self.acks
            .lock()
            .expect("acks")
            .requests
            .entry(id.to_owned())
            .or_default()
            .push(ack);
    }

    fn running(&self, started: Instant) -> bool {
        !self.killed.load(Ordering::SeqCst) && started.elapsed() < BURST_LIMIT
    }

    /// Alice's read-only requests, approved at once.
    fn readonly(&self, alice: &Who, worker: usize, started: Instant) {
        let mut i = 0;
        while self.running(started) {
            i += 1;
            let reason = format!("burst {worker}.{i}");
            let args = [
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", &reason, "--json",
            ];
            let Some(r) = self.step(alice, &args) else {
                continue;
            };
            let grant = r["grant"]["id"].as_str().map(str::to_owned);
            self.ack(
                s(&r, "id"),
                Ack::Created {
                    status: s(&r, "status").to_owned(),
                    grant,
                },
            );
        }
    }

    /// Alice's admin requests, approved by bob then dave.
    fn two_stage(&self, [alice, bob, dave]: [&Who; 3], worker: usize, started: Instant) {
        let mut i = 0;
        while self.running(started) {
            i += 1;
            let ticket = format!("CHG-{worker}{i:04}");
            let args = [
                "request", "pg-prod", "admin", "--for", "30m", "--reason", "burst", "--ticket",
                &ticket, "--json",
            ];
            let Some(r) = self.step(alice, &args) else {
                continue;
            };
            let id = s(&r, "id").to_owned();
            self.ack(
                &id,
                Ack::Created {
                    status: s(&r, "status").to_owned(),
                    grant: None,
                },
            );
            for (by, who) in [("bob", bob), ("dave", dave)] {
                let Some(r) = self.step(who, &["approve", &id, "--json"]) else {
                    break;
                };
                let grant = r["grant"]["id"].as_str().map(str::to_owned);
                self.ack(&id, Ack::Approved { by, grant });
            }
        }
    }
}

/// Checks one acknowledged request against what the restarted server shows.
fn check_request(w: &World, admin: &Who, id: &str, acks: &[Ack]) -> Result<(), String> {
    let run = w.run(admin, &["show", id, "--json"]);
    if run.code != Some(0) {
        return Err(format!("acknowledged request {id} is lost:\n{run}"));
    }
    let r = run.json();
    let status = s(&r, "status");
    let grant = r["grant"]["id"].as_str();
    let approvers: BTreeSet<&str> = r["approvals"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["approver"].as_str()).collect())
        .unwrap_or_default();
    for ack in acks {
        let fine = match ack {
            Ack::Created {
                status: acked,
                grant: None,
            } => acked == "pending" && ["pending", "approved"].contains(&status),
            Ack::Created {
                status: acked,
                grant: Some(g),
            } => acked == "approved" && status == "approved" && grant == Some(g.as_str()),
            Ack::Approved { by, grant: None } => approvers.contains(by),
            Ack::Approved { by, grant: Some(g) } => {
                approvers.contains(by) && status == "approved" && grant == Some(g.as_str())
            }
        };
        if !fine {
            return Err(format!(
                "request {id}: acknowledged {ack:?}, but after the restart it is {r:#}"
            ));
        }
    }
    Ok(())
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let mut w = World::demo();
    let admin = w.admin();
    let people = [w.login("alice"), w.login("bob"), w.login("dave")];
    let [alice, bob, dave] = &people;

    let killed = AtomicBool::new(false);
    let acks = Mutex::new(Acks::default());
    let url = w.server.url.clone();
    let burst = Burst {
        url: &url,
        killed: &killed,
        acks: &acks,
    };
    let started = Instant::now();
    thread::scope(|scope| {
        for worker in 0..WORKERS {
            let burst = &burst;
            if worker % 2 == 0 {
                scope.spawn(move || burst.readonly(alice, worker, started));
            } else {
                scope.spawn(move || burst.two_stage([alice, bob, dave], worker, started));
            }
        }
        sleep(KILL_AFTER);
        killed.store(true, Ordering::SeqCst);
        w.server.kill9();
    });
    let acks = acks.into_inner().expect("acks");
    assert!(
        acks.early_failures.is_empty(),
        "{} command(s) failed before the kill, e.g.:\n{}",
        acks.early_failures.len(),
        acks.early_failures[0]
    );
    let two_stage_done = acks
        .requests
        .values()
        .filter(|a| {
            a.iter()
                .any(|x| matches!(x, Ack::Approved { by: "dave", .. }))
        })
        .count();
    assert!(
        acks.requests.len() >= 2 * WORKERS && two_stage_done >= 2,
        "the burst was too thin to mean anything: {} requests, {two_stage_done} fully approved",
        acks.requests.len()
    );
    eprintln!(
        "crash test: {} acknowledged requests ({two_stage_done} through two stages) before kill -9",
        acks.requests.len()
    );

    w.restart();
    let verify = w.run(&admin, &["audit", "verify"]);
    assert!(verify.ok().starts_with("audit chain intact"), "{verify}");

    // Every acknowledged request, looked up one by one (a few lookups at a time).
    let list: Vec<(&String, &Vec<Ack>)> = acks.requests.iter().collect();
    let errors: Vec<String> = thread::scope(|scope| {
        let handles: Vec<_> = list
            .chunks(list.len().div_ceil(4))
            .map(|chunk| {
                let (w, admin) = (&w, &admin);
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(id, a)| check_request(w, admin, id, a).err())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("checker thread"))
            .collect()
    });
    assert!(
        errors.is_empty(),
        "{} problem(s):\n{}",
        errors.len(),
        errors.join("\n")
    );

    // No approved request without its grant, no grant without its approved request: across
    // everything stored, including what was in flight at the kill. (Judged by the grants
    // listing; the requests listing's own `grant` field is tested in `listings`.)
    let requests = w.run(&admin, &["requests", "--all", "--json"]).json_array();
    let grants = w.run(&admin, &["grants", "--all", "--json"]).json_array();
    let granted: BTreeSet<&str> = grants.iter().map(|g| s(g, "request_id")).collect();
    for r in &requests {
        let approved = s(r, "status") == "approved";
        assert_eq!(
            approved,
            granted.contains(s(r, "id")),
            "request and grants disagree: {r:#}"
        );
    }
    assert_eq!(
        granted.len(),
        grants.len(),
        "a request has two grants: {grants:#?}"
    );
    assert!(requests.len() >= acks.requests.len());
    eprintln!(
        "crash test: {} requests stored, {} acknowledged; {} grants",
        requests.len(),
        acks.requests.len(),
        grants.len()
    );

    w.server.stop();
    let offline = w.run(
        &admin,
        &[
            "audit",
            "verify",
            "--data-dir",
            w.data_dir.to_str().expect("utf-8"),
        ],
    );
    assert!(offline.ok().starts_with("audit chain intact"), "{offline}");
}

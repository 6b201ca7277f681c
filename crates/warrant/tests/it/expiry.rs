//! Grants end on time: reads never show an ended grant as active, and a restart closes what
//! ended while the server was down.

use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Who, World, poll, s};

const CHECK_ALICE: [&str; 7] = [
    "check",
    "--identity",
    "alice",
    "--target",
    "pg-prod",
    "--role",
    "readonly",
];

fn grant_status(w: &World, alice: &Who, grant_id: &str) -> String {
    let grants = w.run(alice, &["grants", "--json"]).json_array();
    let g = grants
        .iter()
        .find(|g| s(g, "id") == grant_id)
        .unwrap_or_else(|| panic!("grant {grant_id} not listed: {grants:#?}"));
    s(g, "status").to_owned()
}

fn audit_has_ended(w: &World, admin: &Who, grant_id: &str) -> bool {
    let tail = w.run(admin, &["audit", "tail", "-n", "50", "--json"]);
    tail.ok().lines().any(|l| {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        v["kind"] == "grant.ended" && v["data"].to_string().contains(grant_id)
    })
}

#[test]
fn a_grant_ended_while_down_is_closed_after_restart() {
    let mut w = World::demo();
    let alice = w.login("alice");
    let admin = w.admin();
    let req = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "2s", "--reason", "brief", "--json",
            ],
        )
        .json();
    let grant_id = s(&req["grant"], "id").to_owned();
    assert_eq!(s(&req["grant"], "status"), "active", "{req:#}");

    w.server.stop();
    sleep(Duration::from_secs(3));
    w.restart();

    // The very first read already says ended; the scheduler's audit event follows shortly.
    assert_eq!(grant_status(&w, &alice, &grant_id), "ended");
    assert_eq!(w.run(&alice, &CHECK_ALICE).code, Some(1));
    let started = Instant::now();
    let closed = poll(Duration::from_secs(5), || {
        audit_has_ended(&w, &admin, &grant_id).then_some(())
    });
    assert!(
        closed.is_some(),
        "no grant.ended for {grant_id} within 5 s of the restart ({:?}):\n{}",
        started.elapsed(),
        w.run(&admin, &["audit", "tail", "-n", "20"]).stdout
    );
    let tail = w.run(&admin, &["audit", "tail"]);
    assert!(tail.ok().contains("grant.ended"), "{tail}");
    assert_eq!(grant_status(&w, &alice, &grant_id), "ended");
}

#[test]
fn a_grant_reads_ended_right_after_its_end() {
    let w = World::demo();
    let alice = w.login("alice");
    let req = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1s", "--reason", "blink", "--json",
            ],
        )
        .json();
    let answered = Instant::now();
    let grant_id = s(&req["grant"], "id").to_owned();
    let request_id = s(&req, "id").to_owned();
    assert_eq!(s(&req["grant"], "status"), "active", "{req:#}");

    sleep(Duration::from_millis(1200).saturating_sub(answered.elapsed()));
    // No polling: whatever the scheduler has done by now, reads say ended.
    assert_eq!(grant_status(&w, &alice, &grant_id), "ended");
    let shown = w.run(&alice, &["show", &request_id, "--json"]).json();
    assert_eq!(s(&shown["grant"], "status"), "ended", "{shown:#}");
    assert_eq!(w.run(&alice, &CHECK_ALICE).code, Some(1));
    let active = w
        .run(&alice, &["grants", "--active", "--json"])
        .json_array();
    assert!(
        active.is_empty(),
        "--active lists an ended grant: {active:#?}"
    );
}

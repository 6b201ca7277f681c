//! The access lifecycle through HTTP: request, staged approvals with their refusals, the grant
//! and the check; a leaver losing a grant; an approve and a deny racing on one request.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warrant_api::Client;

use crate::harness::{Server, expect_err, expect_ok, make_request, request_body};

fn rfc3339(v: &Value, what: &str) -> OffsetDateTime {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {v}"));
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{what} {s:?} is RFC 3339: {e}"))
}

/// Asserts the grant shape that scripts rely on, and returns the grant's id.
#[track_caller]
fn check_grant(
    g: &Value,
    identity: &str,
    target: &str,
    role: &str,
    status: &str,
    secs: i64,
) -> String {
    for key in [
        "id",
        "request_id",
        "identity",
        "target",
        "role",
        "status",
        "starts_at",
        "ends_at",
    ] {
        assert!(
            g.get(key).is_some_and(|v| !v.is_null()),
            "a grant has {key}: {g}"
        );
    }
    assert_eq!(
        (&g["identity"], &g["target"], &g["role"], &g["status"]),
        (
            &json!(identity),
            &json!(target),
            &json!(role),
            &json!(status)
        ),
        "{g}"
    );
    let (start, end) = (
        rfc3339(&g["starts_at"], "starts_at"),
        rfc3339(&g["ends_at"], "ends_at"),
    );
    assert_eq!(
        (end - start).whole_seconds(),
        secs,
        "the grant lasts as asked: {g}"
    );
    g["id"].as_str().expect("id").to_owned()
}

async fn approve(c: &Client, id: &str) -> crate::harness::Outcome {
    c.post::<_, Value>(&format!("/api/v1/requests/{id}/approve"), &json!({}))
        .await
}

async fn to_approve(c: &Client) -> Vec<Value> {
    let v: Value = expect_ok(
        c.get("/api/v1/requests?filter=to-approve").await,
        "to-approve",
    );
    v.as_array().expect("a list").clone()
}

async fn check(c: &Client, identity: &str, target: &str, role: &str) -> Value {
    expect_ok(
        c.post(
            "/api/v1/check",
            &json!({"identity": identity, "target": target, "role": role}),
        )
        .await,
        "check",
    )
}

#[tokio::test]
async fn pg_prod_admin_takes_an_owner_then_security_and_becomes_an_active_grant() {
    let s = Server::start().await;
    let (alice, bob, dave, carol) = (
        s.login("alice").await,
        s.login("bob").await,
        s.login("dave").await,
        s.login("carol").await,
    );

    let req = make_request(
        &alice,
        &request_body("pg-prod", "admin", "30m", "schema migration", Some("CHG-1")),
    )
    .await;
    let id = req["id"].as_str().expect("id").to_owned();
    assert_eq!(req["status"], json!("pending"), "{req}");
    assert_eq!(req["grant"], Value::Null);
    assert_eq!(req["stages"].as_array().map(Vec::len), Some(2), "{req}");
    assert_eq!(
        check(&alice, "alice", "pg-prod", "admin").await["allowed"],
        json!(false),
        "no access before approval"
    );

    // Bob (an owner of pg-prod) sees who, what, how long, why and which ticket.
    let waiting = to_approve(&bob).await;
    let row = waiting
        .iter()
        .find(|r| r["id"] == json!(id))
        .unwrap_or_else(|| panic!("bob sees the request: {waiting:?}"));
    assert_eq!(row["identity"], json!("alice"));
    assert_eq!(
        (&row["target"], &row["role"]),
        (&json!("pg-prod"), &json!("admin"))
    );
    assert_eq!(
        (&row["duration"], &row["duration_secs"]),
        (&json!("30m"), &json!(1800))
    );
    assert_eq!(row["reason"], json!("schema migration"));
    assert_eq!(row["ticket"], json!("CHG-1"));
    assert_eq!(row["status"], json!("pending"));
    assert_eq!(row["can_approve"], json!(true));
    // Stage 2 is not open yet: security has nothing to approve, nor has the requester.
    assert!(!to_approve(&dave).await.iter().any(|r| r["id"] == json!(id)));
    assert!(
        !to_approve(&alice)
            .await
            .iter()
            .any(|r| r["id"] == json!(id))
    );

    expect_err(approve(&alice, &id).await, 403, "self_approval");
    expect_err(approve(&dave, &id).await, 403, "not_an_approver");
    // Someone with no part in it cannot even see it.
    expect_err(approve(&carol, &id).await, 404, "request_not_found");

    let after_bob = expect_ok(approve(&bob, &id).await, "bob approves stage 1");
    assert_eq!(after_bob["status"], json!("pending"), "{after_bob}");
    assert_eq!(after_bob["current_stage"], json!(1));
    assert_eq!(after_bob["grant"], Value::Null);
    assert_eq!(after_bob["approvals"][0]["approver"], json!("bob"));
    expect_err(approve(&bob, &id).await, 409, "already_approved");
    assert!(!to_approve(&bob).await.iter().any(|r| r["id"] == json!(id)));
    assert!(
        to_approve(&dave).await.iter().any(|r| r["id"] == json!(id)),
        "stage 2 is dave's now"
    );
    assert_eq!(
        check(&alice, "alice", "pg-prod", "admin").await["allowed"],
        json!(false),
        "one stage is not enough"
    );

    let done = expect_ok(approve(&dave, &id).await, "dave approves stage 2");
    assert_eq!(done["status"], json!("approved"), "{done}");
    assert_eq!(done["decided_by"], json!("dave"));
    let grant = &done["grant"];
    let grant_id = check_grant(grant, "alice", "pg-prod", "admin", "active", 1800);
    assert_eq!(grant["request_id"], json!(id));
    // Decided: any further decision is a conflict, whoever tries.
    expect_err(approve(&dave, &id).await, 409, "request_not_pending");
    expect_err(approve(&bob, &id).await, 409, "request_not_pending");

    let c = check(&alice, "alice", "pg-prod", "admin").await;
    assert_eq!(c["allowed"], json!(true), "{c}");
    assert_eq!(c["grant_id"], json!(grant_id));
    assert_eq!(c["ends_at"], grant["ends_at"]);
    // The check is per role: readonly was not granted.
    assert_eq!(
        check(&alice, "alice", "pg-prod", "readonly").await["allowed"],
        json!(false)
    );

    let mine: Value = expect_ok(alice.get("/api/v1/grants").await, "alice's grants");
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    check_grant(&mine[0], "alice", "pg-prod", "admin", "active", 1800);
    let one: Value = expect_ok(
        alice.get(&format!("/api/v1/grants/{grant_id}")).await,
        "one grant",
    );
    assert_eq!(one["id"], json!(grant_id));

    let kinds: Vec<String> = s
        .audit_after(0)
        .await
        .iter()
        .filter(|r| r["data"]["request_id"] == json!(id))
        .filter_map(|r| r["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds,
        [
            "request.created",
            "request.approved",
            "request.approved",
            "grant.created"
        ]
    );
}

#[tokio::test]
async fn a_disabled_identity_loses_its_grant_and_its_pending_requests() {
    let s = Server::start().await;
    let (carol, erin) = (s.login("carol").await, s.login("erin").await);
    let req = make_request(
        &carol,
        &request_body("web-1", "root", "1h", "deploy 4.2", None),
    )
    .await;
    let id = req["id"].as_str().expect("id").to_owned();
    let done = expect_ok(approve(&erin, &id).await, "erin (ops, the owners) approves");
    assert_eq!(done["status"], json!("approved"));
    let grant_id = check_grant(&done["grant"], "carol", "web-1", "root", "active", 3600);
    assert_eq!(
        check(&carol, "carol", "web-1", "root").await["allowed"],
        json!(true)
    );
    let pending = make_request(
        &carol,
        &request_body("web-1", "root", "2h", "deploy 4.3", None),
    )
    .await;
    let pending_id = pending["id"].as_str().expect("id").to_owned();
    assert_eq!(pending["status"], json!("pending"));

    expect_ok(
        s.admin
            .post::<_, Value>("/api/v1/identities/carol/disable", &json!({}))
            .await,
        "disable carol",
    );

    let g: Value = expect_ok(
        s.admin.get(&format!("/api/v1/grants/{grant_id}")).await,
        "the grant",
    );
    check_grant(&g, "carol", "web-1", "root", "revoked", 3600);
    assert!(g["revoked_at"].is_string(), "{g}");
    let c = check(&s.admin, "carol", "web-1", "root").await;
    assert_eq!(c["allowed"], json!(false), "{c}");
    assert_eq!(c["grant_id"], Value::Null);
    let p: Value = expect_ok(
        s.admin.get(&format!("/api/v1/requests/{pending_id}")).await,
        "the pending request",
    );
    assert_eq!(p["status"], json!("cancelled"), "{p}");
    expect_err(
        approve(&erin, &pending_id).await,
        409,
        "request_not_pending",
    );
    expect_err(carol.get::<Value>("/api/v1/me").await, 401, "invalid_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racing_approve_and_deny_leave_one_consistent_decision() {
    let s = Server::start().await;
    s.add_identity("frank", "user", &["ops"]).await;
    let (carol, erin, frank) = (
        s.login("carol").await,
        s.login("erin").await,
        s.login("frank").await,
    );
    let mut outcomes = Vec::new();
    let mut wrong_losers = Vec::new();
    for round in 0..8 {
        let req = make_request(
            &carol,
            &request_body("web-1", "root", "30m", &format!("round {round}"), None),
        )
        .await;
        let id = req["id"].as_str().expect("id").to_owned();
        let deny_path = format!("/api/v1/requests/{id}/deny");
        let deny_body = json!({"reason": "not now"});
        let (a, d) = tokio::join!(
            approve(&erin, &id),
            frank.post::<_, Value>(&deny_path, &deny_body)
        );
        assert!(
            a.is_ok() != d.is_ok(),
            "round {round}: exactly one decision wins: approve {a:?}, deny {d:?}"
        );
        let loser = if a.is_ok() {
            ("deny", &d)
        } else {
            ("approve", &a)
        };
        if let (what, Err(e)) = loser
            && (e.status, e.code.as_str()) != (Some(409), "request_not_pending")
        {
            wrong_losers.push(format!(
                "round {round}: the losing {what} got {:?} {}: {}",
                e.status, e.code, e.message
            ));
        }

        let fin: Value = expect_ok(
            s.admin.get(&format!("/api/v1/requests/{id}")).await,
            "the request",
        );
        let all: Value = expect_ok(s.admin.get("/api/v1/grants?all=true").await, "all grants");
        let grants: Vec<&Value> = all
            .as_array()
            .expect("list")
            .iter()
            .filter(|g| g["request_id"] == json!(id))
            .collect();
        if a.is_ok() {
            assert_eq!(
                (&fin["status"], &fin["decided_by"]),
                (&json!("approved"), &json!("erin")),
                "round {round}: {fin}"
            );
            assert_eq!(grants.len(), 1, "round {round}: one grant: {grants:?}");
            check_grant(grants[0], "carol", "web-1", "root", "active", 1800);
            assert_eq!(fin["grant"]["id"], grants[0]["id"]);
        } else {
            assert_eq!(
                (&fin["status"], &fin["decided_by"]),
                (&json!("denied"), &json!("frank")),
                "round {round}: {fin}"
            );
            assert_eq!(fin["note"], json!("not now"));
            assert!(
                grants.is_empty(),
                "round {round}: a denied request has no grant: {grants:?}"
            );
            assert_eq!(fin["grant"], Value::Null);
        }
        outcomes.push(if a.is_ok() { "approved" } else { "denied" });
    }
    let audit = s.audit_after(0).await;
    let decisions = audit
        .iter()
        .filter(|r| r["kind"] == "request.approved" || r["kind"] == "request.denied")
        .count();
    assert_eq!(
        decisions,
        outcomes.len(),
        "one audited decision per request ({outcomes:?})"
    );
    assert_eq!(
        s.audit_count().await,
        audit.len() as u64,
        "the chain verifies after the races"
    );
    // The losing decision is told that the request is decided (409 request_not_pending).
    assert!(
        wrong_losers.is_empty(),
        "outcomes {outcomes:?}:\n  {}",
        wrong_losers.join("\n  ")
    );
}

#[tokio::test]
async fn every_approver_gets_409_on_a_decided_request() {
    let s = Server::start().await;
    s.add_identity("frank", "user", &["ops"]).await;
    let (carol, erin, frank) = (
        s.login("carol").await,
        s.login("erin").await,
        s.login("frank").await,
    );
    let deny = |c: &Client, id: &str| {
        let (c, path) = (c.clone(), format!("/api/v1/requests/{id}/deny"));
        async move { c.post::<_, Value>(&path, &json!({})).await }
    };

    // Denied by frank: erin, who could have approved it, is told it is no longer pending.
    let req = make_request(
        &carol,
        &request_body("web-1", "root", "30m", "deploy", None),
    )
    .await;
    let id = req["id"].as_str().expect("id").to_owned();
    expect_ok(deny(&frank, &id).await, "frank denies");
    expect_err(approve(&erin, &id).await, 409, "request_not_pending");
    expect_err(deny(&erin, &id).await, 409, "request_not_pending");

    // Approved by erin: frank, who could have denied it, must be told the same, not that the
    // request does not exist (this is what the loser of an approve/deny race sees).
    let req = make_request(
        &carol,
        &request_body("web-1", "root", "30m", "deploy", None),
    )
    .await;
    let id = req["id"].as_str().expect("id").to_owned();
    expect_ok(approve(&erin, &id).await, "erin approves");
    expect_err(deny(&frank, &id).await, 409, "request_not_pending");
    expect_err(approve(&frank, &id).await, 409, "request_not_pending");
}

#[tokio::test]
async fn applying_the_demo_again_changes_nothing() {
    let s = Server::start().await;
    let before = s.audit_count().await;
    let again: Value = expect_ok(
        s.admin
            .post("/api/v1/apply", &json!({"yaml": crate::harness::DEMO_ORG}))
            .await,
        "apply again",
    );
    assert_eq!(again["changes"], json!([]), "{again}");
    assert_eq!(
        s.audit_count().await,
        before,
        "a second apply writes nothing"
    );
    // A dry run of a change reports it and writes nothing either.
    let dry: Value = expect_ok(
        s.admin
            .post(
                "/api/v1/apply",
                &json!({"yaml": "groups: [{name: qa}]", "dry_run": true}),
            )
            .await,
        "dry run",
    );
    assert_eq!(
        (&dry["changes"], &dry["dry_run"]),
        (&json!(["created group qa"]), &json!(true)),
        "{dry}"
    );
    assert_eq!(s.audit_count().await, before, "a dry run writes nothing");
}

#[tokio::test]
async fn checks_are_counted_in_the_metrics() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let before = s.metrics_text().await;
    let denied = check(&alice, "alice", "pg-prod", "readonly").await;
    assert_eq!(denied["allowed"], json!(false));
    let after = s.metrics_text().await;
    let count = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("warrant_checks_total") && l.contains("allowed=\"false\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        count(&after) >= count(&before) + 1.0,
        "warrant_checks_total did not move:\n{after}"
    );
}

//! The README's five-minute tour: it must keep working exactly as written.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::harness::{World, s};

#[test]
fn demo_walkthrough() {
    let w = World::demo();

    // The server says where the admin token is, and how to sign in.
    let log = w.server.log();
    let token_path = w.data_dir.join("admin.token");
    assert!(
        log.contains(&format!("its API token is in {}", token_path.display())),
        "the start message does not name {}:\n{log}",
        token_path.display()
    );
    let mode = fs::metadata(&token_path)
        .expect("admin.token exists")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "admin.token mode is {:o}",
        mode & 0o777
    );
    for line in [
        format!("export WARRANT_SERVER={}", w.server.url),
        "warrant login --user alice --password-stdin".to_owned(),
        "warrant request pg-prod readonly --for 1h".to_owned(),
        "warrant approve <ID>".to_owned(),
    ] {
        assert!(log.contains(&line), "the demo help lacks {line:?}:\n{log}");
    }

    // Alice signs in; her token is kept for her only.
    let alice = w.login("alice");
    let creds = alice.config_dir.join("credentials.json");
    let mode = fs::metadata(&creds)
        .expect("credentials saved")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "credentials.json mode is {:o}",
        mode & 0o777
    );

    // Read-only: no approval needed, the grant is active at once.
    let ro = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "x", "--json",
            ],
        )
        .json();
    assert!(!s(&ro, "id").is_empty(), "{ro:#}");
    assert_eq!(s(&ro, "status"), "approved", "{ro:#}");
    assert_eq!(s(&ro["grant"], "status"), "active", "{ro:#}");
    assert_eq!(s(&ro["grant"], "request_id"), s(&ro, "id"), "{ro:#}");

    // Admin: a ticket and two approval stages.
    let req = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "admin", "--for", "30m", "--reason", "r", "--ticket",
                "CHG-7", "--json",
            ],
        )
        .json();
    let id = s(&req, "id").to_owned();
    assert_eq!(s(&req, "status"), "pending", "{req:#}");
    assert!(req["grant"].is_null(), "{req:#}");
    assert_eq!(req["stages"].as_array().map(Vec::len), Some(2), "{req:#}");

    // Alice cannot approve her own request, nor can the admin check pass yet.
    w.run(&alice, &["approve", &id]).fails();
    assert_eq!(
        w.run(
            &alice,
            &[
                "check",
                "--identity",
                "alice",
                "--target",
                "pg-prod",
                "--role",
                "admin"
            ]
        )
        .code,
        Some(1)
    );

    let bob = w.login("bob");
    let waiting = w
        .run(&bob, &["requests", "--to-approve", "--json"])
        .json_array();
    assert!(
        waiting.iter().any(|r| s(r, "id") == id),
        "bob does not see {id}: {waiting:#?}"
    );
    let after_bob = w.run(&bob, &["approve", &id, "--json"]).json();
    assert_eq!(s(&after_bob, "status"), "pending", "{after_bob:#}");
    assert_eq!(after_bob["current_stage"], 1, "{after_bob:#}");
    // Bob's stage is done: he has nothing left to approve, and cannot approve twice.
    let waiting = w
        .run(&bob, &["requests", "--to-approve", "--json"])
        .json_array();
    assert!(waiting.iter().all(|r| s(r, "id") != id), "{waiting:#?}");

    let dave = w.login("dave");
    let done = w.run(&dave, &["approve", &id, "--json"]).json();
    assert_eq!(s(&done, "status"), "approved", "{done:#}");
    assert_eq!(s(&done["grant"], "status"), "active", "{done:#}");

    let allowed = w.run(
        &alice,
        &[
            "check",
            "--identity",
            "alice",
            "--target",
            "pg-prod",
            "--role",
            "admin",
        ],
    );
    assert!(
        allowed
            .ok()
            .starts_with("allowed: alice holds admin on pg-prod"),
        "{allowed}"
    );
    let admin = w.admin();
    let denied = w.run(
        &admin,
        &[
            "check",
            "--identity",
            "carol",
            "--target",
            "pg-prod",
            "--role",
            "readonly",
        ],
    );
    assert_eq!(denied.code, Some(1), "{denied}");
    assert!(denied.stdout.starts_with("denied:"), "{denied}");

    let grants = w.run(&alice, &["grants", "--json"]).json_array();
    assert_eq!(grants.len(), 2, "{grants:#?}");
    for g in &grants {
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
            assert!(g[key].is_string(), "grant lacks {key}: {g:#}");
        }
        assert_eq!(s(g, "identity"), "alice");
        assert_eq!(s(g, "status"), "active");
    }
    assert!(
        grants
            .iter()
            .any(|g| s(g, "request_id") == id && s(g, "role") == "admin")
    );

    // The table the README shows.
    let table = w.run(&alice, &["grants"]);
    for word in ["IDENTITY", "pg-prod", "admin", "readonly", "active"] {
        assert!(
            table.ok().contains(word),
            "the grants table lacks {word}:\n{table}"
        );
    }

    // "asking for 2h hits a forbid policy"
    let test = w.run(
        &alice,
        &[
            "policy", "test", "--target", "pg-prod", "--role", "admin", "--for", "2h", "--reason",
            "x", "--ticket", "CHG-1",
        ],
    );
    assert_eq!(test.code, Some(1), "{test}");
    assert!(test.stdout.starts_with("DENY"), "{test}");
    assert!(test.stdout.contains("critical-max-1h"), "{test}");

    // As admin: the directory, a leaver, the audit trail.
    assert!(w.run(&admin, &["identities"]).ok().contains("alice"));
    let out = w.run(&admin, &["identity", "disable", "alice"]);
    assert!(out.ok().contains("grants are revoked"), "{out}");
    let all = w.run(&admin, &["grants", "--all", "--json"]).json_array();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|g| s(g, "status") == "revoked"), "{all:#?}");
    let tail = w.run(&admin, &["audit", "tail", "-n", "10"]);
    assert_eq!(tail.ok().lines().count(), 10, "{tail}");
    assert!(tail.stdout.contains("identity.disabled"), "{tail}");
    let verify = w.run(&admin, &["audit", "verify"]);
    assert!(verify.ok().starts_with("audit chain intact"), "{verify}");
    let bundle = w.root().join("trail.bundle");
    let bundle = bundle.to_str().expect("utf-8");
    w.run(&admin, &["audit", "export", "-o", bundle]).ok();
    let fp = w.run(&admin, &["audit", "verify", "--json"]).json();
    let fp = s(&fp, "key_fingerprint");
    let checked = w.run(
        &admin,
        &["audit", "verify", "--bundle", bundle, "--fingerprint", fp],
    );
    assert!(
        checked.ok().contains("signed by the trusted audit key"),
        "{checked}"
    );
}

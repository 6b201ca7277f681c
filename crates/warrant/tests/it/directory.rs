//! Identity and group verbs, and errors that name the fix.

use serde_json::Value;

use crate::harness::{Who, World, s};

fn identity(w: &World, admin: &Who, name: &str) -> Option<Value> {
    w.run(admin, &["identities", "--json"])
        .json_array()
        .into_iter()
        .find(|i| s(i, "name") == name)
}

fn members(w: &World, admin: &Who, group: &str) -> Option<Vec<String>> {
    w.run(admin, &["groups", "--json"])
        .json_array()
        .into_iter()
        .find(|g| s(g, "name") == group)
        .map(|g| {
            g["members"]
                .as_array()
                .expect("members is an array")
                .iter()
                .map(|m| m.as_str().expect("member name").to_owned())
                .collect()
        })
}

#[test]
fn identity_and_group_verbs() {
    let w = World::demo();
    let admin = w.admin();

    let out = w.run(
        &admin,
        &["identity", "add", "frank", "--email", "frank@example.com"],
    );
    assert!(out.ok().contains("created identity frank"), "{out}");
    let frank = identity(&w, &admin, "frank").expect("frank is listed");
    assert_eq!(s(&frank, "email"), "frank@example.com");
    assert_eq!(s(&frank, "status"), "active");
    assert!(
        w.run(&admin, &["identities"])
            .ok()
            .contains("frank@example.com")
    );
    let dup = w.run(&admin, &["identity", "add", "frank"]).fails();
    assert!(dup.contains("already exists"), "{dup}");

    let out = w.run(
        &admin,
        &[
            "group",
            "add",
            "oncall",
            "--description",
            "On call this week",
        ],
    );
    assert!(out.ok().contains("created group oncall"), "{out}");
    assert_eq!(members(&w, &admin, "oncall"), Some(vec![]));
    assert!(
        w.run(&admin, &["groups"])
            .ok()
            .contains("On call this week")
    );

    w.run(&admin, &["group", "add-member", "oncall", "frank"])
        .ok();
    assert_eq!(
        members(&w, &admin, "oncall"),
        Some(vec!["frank".to_owned()])
    );
    let shown = w
        .run(&admin, &["identity", "show", "frank", "--json"])
        .json();
    assert_eq!(shown["groups"], serde_json::json!(["oncall"]), "{shown:#}");
    w.run(&admin, &["group", "remove-member", "oncall", "frank"])
        .ok();
    assert_eq!(members(&w, &admin, "oncall"), Some(vec![]));

    let out = w.run(&admin, &["identity", "disable", "frank"]);
    assert!(out.ok().contains("disabled frank"), "{out}");
    assert_eq!(
        s(&identity(&w, &admin, "frank").expect("listed"), "status"),
        "disabled"
    );
    w.run(&admin, &["identity", "enable", "frank"]).ok();
    assert_eq!(
        s(&identity(&w, &admin, "frank").expect("listed"), "status"),
        "active"
    );
    w.run(&admin, &["identity", "delete", "frank"]).ok();
    assert!(
        identity(&w, &admin, "frank").is_none(),
        "frank is still listed after delete"
    );
    assert!(!w.run(&admin, &["identities"]).ok().contains("frank"));

    // Errors exit non-zero and say what to do.
    let cases: [(&[&str], &str); 5] = [
        (
            &["group", "add-member", "nosuchgroup", "alice"],
            "warrant group add",
        ),
        (
            &["group", "add-member", "oncall", "nosuchperson"],
            "warrant identities",
        ),
        (
            &["identity", "disable", "nosuchperson"],
            "warrant identities",
        ),
        (&["group", "add", "oncall"], "already exists"),
        (&["identity", "delete", "admin"], "another admin"),
    ];
    for (args, hint) in cases {
        let msg = w.run(&admin, args).fails();
        assert!(
            msg.contains(hint),
            "`warrant {}` should mention {hint:?}: {msg}",
            args.join(" ")
        );
    }
    let alice = w.login("alice");
    let msg = w.run(&alice, &["identity", "add", "mallory"]).fails();
    assert!(msg.contains("admin role"), "{msg}");
    let msg = w.run(&w.person("nobody"), &["whoami"]).fails();
    assert!(msg.contains("warrant login"), "{msg}");
}

#[test]
fn disabling_a_leaver_revokes_grants_and_sign_in() {
    let w = World::demo();
    let admin = w.admin();
    let alice = w.login("alice");
    w.run(
        &alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "x",
        ],
    )
    .ok();
    let check = [
        "check",
        "--identity",
        "alice",
        "--target",
        "pg-prod",
        "--role",
        "readonly",
    ];
    assert_eq!(w.run(&admin, &check).code, Some(0));

    let out = w.run(&admin, &["identity", "disable", "alice"]);
    assert!(out.ok().contains("grants are revoked"), "{out}");
    assert_eq!(
        w.run(&admin, &check).code,
        Some(1),
        "a disabled identity still holds its grant"
    );
    let grants = w.run(&admin, &["grants", "--all", "--json"]).json_array();
    assert!(
        grants.iter().all(|g| s(g, "status") == "revoked"),
        "{grants:#?}"
    );
    // Her saved session token no longer works.
    let msg = w.run(&alice, &["grants"]).fails();
    assert!(msg.contains("warrant login"), "{msg}");
}

//! `warrant apply -f`: dry run, idempotence, and refusal of a bad file as a whole.

use std::fs;

use crate::harness::{DEMO_ORG, Who, World, s};

fn names(w: &World, admin: &Who, verb: &str) -> Vec<String> {
    w.run(admin, &[verb, "--json"])
        .json_array()
        .iter()
        .map(|v| s(v, "name").to_owned())
        .collect()
}

/// The number in the final `N change(s)` line.
fn change_count(stdout: &str) -> usize {
    let last = stdout.lines().last().unwrap_or_default();
    let n = last.split(' ').next().unwrap_or_default();
    n.parse()
        .unwrap_or_else(|_| panic!("no `N change(s)` line in:\n{stdout}"))
}

#[test]
fn apply_dry_run_then_twice() {
    let w = World::plain();
    let admin = w.admin();
    assert_eq!(names(&w, &admin, "identities"), ["admin"]);

    let dry = w.run(&admin, &["apply", "-f", DEMO_ORG, "--dry-run"]);
    let out = dry.ok();
    assert!(out.contains("would have created identity alice"), "{dry}");
    assert!(out.contains("would have created target pg-prod"), "{dry}");
    assert!(
        out.trim_end().ends_with("(dry run: nothing written)"),
        "{dry}"
    );
    let planned = change_count(out);
    assert!(planned > 10, "{dry}");
    assert_eq!(
        names(&w, &admin, "identities"),
        ["admin"],
        "a dry run wrote identities"
    );
    assert!(
        names(&w, &admin, "groups").is_empty(),
        "a dry run wrote groups"
    );
    assert!(
        names(&w, &admin, "targets").is_empty(),
        "a dry run wrote targets"
    );

    let first = w.run(&admin, &["apply", "-f", DEMO_ORG]);
    assert!(first.ok().contains("created identity alice"), "{first}");
    assert_eq!(
        change_count(&first.stdout),
        planned,
        "the dry run planned something else:\n{first}"
    );
    let mut ids = names(&w, &admin, "identities");
    ids.sort();
    assert_eq!(ids, ["admin", "alice", "bob", "carol", "dave", "erin"]);

    let second = w.run(&admin, &["apply", "-f", DEMO_ORG]);
    assert_eq!(second.ok().trim(), "0 change(s)", "{second}");

    // The applied passwords work.
    let alice = w.login("alice");
    w.run(
        &alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "x",
        ],
    )
    .ok();
}

#[test]
fn a_bad_org_file_changes_nothing() {
    let w = World::plain();
    let admin = w.admin();
    let audit_before = w.run(&admin, &["audit", "verify", "--json"]).json()["records"].clone();

    // An unknown key on line 7; the valid group before it must not be created either.
    let bad = w.root().join("bad.yaml");
    fs::write(
        &bad,
        "groups:\n  - name: web\n    description: Web team\nidentities:\n  - name: zoe\n    email: zoe@example.com\n    emial: typo@example.com\n",
    )
    .expect("write bad.yaml");
    let bad_path = bad.to_str().expect("utf-8 path");
    for dry in [true, false] {
        let mut args = vec!["apply", "-f", bad_path];
        if dry {
            args.push("--dry-run");
        }
        let msg = w.run(&admin, &args).fails();
        assert!(
            msg.contains("line 7"),
            "the error should name line 7: {msg}"
        );
        assert!(
            msg.contains("emial"),
            "the error should name the key: {msg}"
        );
    }

    // A file that parses but fails half-way (an owner group that does not exist): nothing of it
    // is kept, although its group came first.
    let half = w.root().join("half.yaml");
    fs::write(
        &half,
        "groups:\n  - name: web\ntargets:\n  - name: web-2\n    kind: ssh\n    owner: nosuchgroup\n",
    )
    .expect("write half.yaml");
    let msg = w
        .run(&admin, &["apply", "-f", half.to_str().expect("utf-8 path")])
        .fails();
    assert!(msg.contains("nosuchgroup"), "{msg}");

    assert!(
        names(&w, &admin, "groups").is_empty(),
        "a refused file created groups"
    );
    assert_eq!(
        names(&w, &admin, "identities"),
        ["admin"],
        "a refused file created identities"
    );
    assert!(
        names(&w, &admin, "targets").is_empty(),
        "a refused file created targets"
    );
    let audit_after = w.run(&admin, &["audit", "verify", "--json"]).json()["records"].clone();
    assert_eq!(
        audit_before, audit_after,
        "a refused file left audit records"
    );
}

//! Every listing verb works as a table and as `--json`.

use crate::harness::{World, s};

#[test]
fn listings_as_tables_and_json() {
    let w = World::demo();
    let alice = w.login("alice");
    let req = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "listing", "--json",
            ],
        )
        .json();
    let grant_id = s(&req["grant"], "id").to_owned();
    let admin = w.admin();

    let rules = w.run(&admin, &["rules", "--json"]).json_array();
    assert!(!rules.is_empty(), "the demo has rules");
    let rule_id = s(&rules[0], "id").to_owned();

    // (verb, something the table must show, how many items at least)
    let cases: Vec<(Vec<&str>, &str, usize)> = vec![
        (vec!["identities"], "alice", 6),
        (vec!["groups"], "db-owners", 4),
        (vec!["targets"], "pg-prod", 2),
        (vec!["requests", "--all"], "listing", 1),
        (vec!["grants", "--all"], &grant_id, 1),
        (vec!["rules"], &rule_id, 3),
        (vec!["tokens"], "bootstrap", 1),
        (vec!["jobs"], "LAST ERROR", 0),
        (vec!["policy", "list"], "critical-max-1h", 1),
        // The admin's own requests and grants: none, but a valid answer.
        (vec!["requests"], "STATUS", 0),
        (vec!["grants"], "ENDS", 0),
    ];
    for (verb, known, at_least) in cases {
        let mut args = verb.clone();
        args.push("--json");
        let items = w.run(&admin, &args).json_array();
        assert!(
            items.len() >= at_least,
            "`{}` listed {} items, expected {at_least}+",
            verb.join(" "),
            items.len()
        );
        let table = w.run(&admin, &verb);
        assert!(
            table.ok().contains(known),
            "the `{}` table lacks {known:?}:\n{table}",
            verb.join(" ")
        );
        assert!(
            !table.stdout.trim_start().starts_with('['),
            "a table was expected:\n{table}"
        );
    }

    // Alice sees her own requests and grants without --all.
    let mine = w.run(&alice, &["requests", "--json"]).json_array();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let mine = w.run(&alice, &["grants", "--json"]).json_array();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    // …and cannot list the directory or the audit jobs, which need the auditor role.
    for verb in [&["identities"][..], &["jobs"][..], &["policy", "list"][..]] {
        let msg = w.run(&alice, verb).fails();
        assert!(msg.contains("auditor"), "`{}`: {msg}", verb.join(" "));
    }
}

#[test]
fn request_listings_show_the_grant_of_approved_requests() {
    let w = World::demo();
    let alice = w.login("alice");
    let req = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "x", "--json",
            ],
        )
        .json();
    let (id, grant_id) = (s(&req, "id"), s(&req["grant"], "id"));
    // `show` has it…
    let shown = w.run(&alice, &["show", id, "--json"]).json();
    assert_eq!(s(&shown["grant"], "id"), grant_id, "{shown:#}");
    // …and so must the listings of the same request, mine and everyone's.
    for (who, args) in [
        (&alice, &["requests", "--json"][..]),
        (&w.admin(), &["requests", "--all", "--json"][..]),
    ] {
        let listed = w.run(who, args).json_array();
        let r = listed
            .iter()
            .find(|r| s(r, "id") == id)
            .expect("the request is listed");
        assert_eq!(s(r, "status"), "approved");
        assert!(
            r["grant"].is_object() && r["grant"]["id"] == grant_id,
            "`warrant {}` lists approved request {id} with grant {} (`show` says {grant_id})",
            args.join(" "),
            r["grant"]
        );
    }
}

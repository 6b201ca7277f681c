//! Every listing verb works as a table and as `--json`.

use crate::harness::{World, s};

#[test]
fn listings_as_tables_and_json() {
    let w = World::demo();
    let alice = w.login("alice");
    let req = w
        .run(&alice, &["request", "pg-prod", "readonly", "--for", "1h", "--reason", "listing", "--json"])
        .json();
    let grant_id = s(&req["grant"], "id").to_owned();
    let admin = w.admin();

    let rules = w.run(&admin, &["rules", "--json"]).json_array();
    assert_eq!(rules.len(), 3, "{rules:#?}");
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
        assert!(items.len() >= at_least, "`{}` listed {} items, expected {at_least}+", verb.join(" "), items.len());
        let table = w.run(&admin, &verb);
        assert!(table.ok().contains(known), "the `{}` table lacks {known:?}:\n{table}", verb.join(" "));
        assert!(!table.stdout.trim_start().starts_with('['), "a table was expected:\n{table}");
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

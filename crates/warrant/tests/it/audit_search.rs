//! `warrant audit search` through the real server: each filter against the whole trail read
//! the same way, pages followed to the end without gaps or repeats in both orders, a search cut
//! off and continued, a non-auditor refused, bad input refused with its code.

use serde_json::Value;
use warrant_core::Timestamp;

use crate::harness::{Run, Who, World, s};

/// Stdout as JSON lines.
fn lines(run: &Run) -> Vec<Value> {
    run.ok()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{run}"))
        })
        .collect()
}

fn search(w: &World, who: &Who, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "search", "--json"];
    all.extend_from_slice(args);
    lines(&w.run(who, &all))
}

fn seqs(records: &[Value]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect()
}

fn at_ms(r: &Value) -> i64 {
    Timestamp::parse_rfc3339(s(r, "at"))
        .expect("an RFC 3339 time")
        .millis()
}

/// A field of the event's data, if it is a string.
fn field<'a>(r: &'a Value, key: &str) -> Option<&'a str> {
    r["data"][key].as_str()
}

#[test]
fn audit_search_filters_pages_and_refuses() {
    let w = World::demo();
    let admin = w.admin();
    let alice = w.login("alice");
    let carol = w.login("carol");
    let erin = w.login("erin");
    for reason in ["one", "two", "three"] {
        w.run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", reason,
            ],
        )
        .ok();
    }
    let r = w
        .run(
            &carol,
            &[
                "request", "web-1", "root", "--for", "1h", "--reason", "outage", "--json",
            ],
        )
        .json();
    let request_id = s(&r, "id").to_owned();
    w.run(&erin, &["approve", &request_id]).ok();
    let grants = w.run(&admin, &["grants", "--all", "--json"]).json_array();
    let grant = grants
        .iter()
        .find(|g| s(g, "identity") == "carol")
        .unwrap_or_else(|| panic!("carol's grant in {grants:#?}"));
    let grant_id = s(grant, "id").to_owned();
    w.run(&admin, &["revoke", &grant_id, "--reason", "done"])
        .ok();

    // The whole trail, oldest first, read page by page; every filter is checked against it.
    let everything = search(&w, &admin, &["--all"]);
    let n = everything.len();
    let total = w.run(&admin, &["audit", "verify", "--json"]).json()["records"]
        .as_u64()
        .expect("records");
    assert_eq!(n as u64, total, "--all reads every record");
    let mut sorted = everything.clone();
    sorted.sort_by_key(|r| (at_ms(r), r["seq"].as_u64()));
    assert_eq!(seqs(&sorted), seqs(&everything), "time order");

    let mid = at_ms(&everything[n / 2]);
    let mid_text = s(&everything[n / 2], "at").to_owned();
    type Pick = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Vec<String>, Pick)> = vec![
        (
            vec!["--actor".into(), "alice".into()],
            Box::new(|r| r["actor"] == "alice"),
        ),
        (
            vec!["--identity".into(), "carol".into()],
            Box::new(|r| field(r, "identity") == Some("carol")),
        ),
        (
            vec!["--target".into(), "web-1".into()],
            Box::new(|r| field(r, "target") == Some("web-1")),
        ),
        (
            vec!["--kind".into(), "grant.created".into()],
            Box::new(|r| r["kind"] == "grant.created"),
        ),
        (
            vec!["--kind".into(), "grant.".into()],
            Box::new(|r| s(r, "kind").starts_with("grant.")),
        ),
        (
            vec!["--request".into(), request_id.clone()],
            Box::new({
                let id = request_id.clone();
                move |r| field(r, "request_id") == Some(id.as_str())
            }),
        ),
        (
            vec!["--grant".into(), grant_id.clone()],
            Box::new({
                let id = grant_id.clone();
                move |r| field(r, "grant_id") == Some(id.as_str())
            }),
        ),
        (
            vec!["--since".into(), mid_text.clone()],
            Box::new(move |r| at_ms(r) >= mid),
        ),
        (
            vec!["--until".into(), mid_text.clone()],
            Box::new(move |r| at_ms(r) < mid),
        ),
        (
            vec![
                "--actor".into(),
                "alice".into(),
                "--kind".into(),
                "request.".into(),
                "--since".into(),
                "1h".into(),
            ],
            Box::new(|r| r["actor"] == "alice" && s(r, "kind").starts_with("request.")),
        ),
    ];
    for (args, pick) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want: Vec<u64> = seqs(
            &everything
                .iter()
                .filter(|r| pick(r))
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert!(
            !want.is_empty() && want.len() < n,
            "{args:?} should pick some records, not all: {want:?}"
        );
        let mut all = args.clone();
        all.push("--all");
        assert_eq!(seqs(&search(&w, &admin, &all)), want, "{args:?}");
        all.extend(["--desc", "--page-size", "2"]);
        let mut back = want.clone();
        back.reverse();
        assert_eq!(seqs(&search(&w, &admin, &all)), back, "{args:?} --desc");
    }
    // Grant and request searches find the whole story: request, approval, grant, revocation.
    let story = search(&w, &admin, &["--grant", &grant_id]);
    let kinds: Vec<&str> = story.iter().map(|r| s(r, "kind")).collect();
    assert!(kinds.contains(&"grant.created"), "{kinds:?}");
    assert!(kinds.contains(&"grant.revoked"), "{kinds:?}");

    // Pages of 3 followed to the end, both ways: every record once, in order.
    assert_eq!(
        seqs(&search(&w, &admin, &["--all", "--page-size", "3"])),
        seqs(&everything)
    );
    let mut newest_first = seqs(&everything);
    newest_first.reverse();
    assert_eq!(
        seqs(&search(
            &w,
            &admin,
            &["--all", "--page-size", "3", "--desc"]
        )),
        newest_first
    );

    // A search cut off by --limit says how to continue, and continuing loses nothing.
    let first = w.run(&admin, &["audit", "search", "--json", "-n", "5"]);
    let head = lines(&first);
    assert_eq!(seqs(&head), seqs(&everything[..5]));
    let hint = first
        .stderr
        .split("--after ")
        .nth(1)
        .and_then(|t| t.split([',', ' ', '\n']).next())
        .unwrap_or_else(|| panic!("no --after hint:\n{first}"))
        .to_owned();
    let rest = search(&w, &admin, &["--after", &hint, "--all"]);
    let mut joined = seqs(&head);
    joined.extend(seqs(&rest));
    assert_eq!(joined, seqs(&everything));

    // The table: a header, one line per record, the kind and actor readable.
    let table = w.run(&admin, &["audit", "search", "--actor", "alice", "-n", "2"]);
    let text = table.ok();
    assert_eq!(text.lines().count(), 3, "{table}");
    assert!(text.starts_with(&format!("{:>8}", "SEQ")), "{table}");
    assert!(
        text.lines().nth(1).is_some_and(|l| l.contains("alice")),
        "{table}"
    );
    let none = w.run(&admin, &["audit", "search", "--identity", "nobody"]);
    assert_eq!(none.ok().trim(), "no audit record matches", "{none}");

    // An auditor may search; a user may not.
    w.run_stdin(
        &admin,
        &[
            "identity",
            "add",
            "audra",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        "audra-long-password-1\n",
    )
    .ok();
    let audra = w.person("audra");
    w.run_stdin(
        &audra,
        &["login", "--user", "audra", "--password-stdin"],
        "audra-long-password-1\n",
    )
    .ok();
    assert_eq!(search(&w, &audra, &["--kind", "grant.revoked"]).len(), 1);
    let msg = w.run(&alice, &["audit", "search"]).fails();
    assert!(msg.contains("role_required"), "{msg}");

    // Bad input: refused with its code, by the CLI or by the server.
    let before_bad = w.run(&admin, &["audit", "verify", "--json"]).json()["records"]
        .as_u64()
        .expect("records");
    let msg = w
        .run(&admin, &["audit", "search", "--kind", "grant.revoke"])
        .fails();
    assert!(
        msg.contains("unknown_kind") && msg.contains("grant.revoked"),
        "{msg}"
    );
    let msg = w
        .run(&admin, &["audit", "search", "--after", "99999999"])
        .fails();
    assert!(msg.contains("invalid_cursor"), "{msg}");
    let msg = w
        .run(&admin, &["audit", "search", "--since", "last tuesday"])
        .fails();
    assert!(msg.contains("--since"), "{msg}");
    let msg = w
        .run(
            &admin,
            &["audit", "search", "--since", "1h", "--until", "2h"],
        )
        .fails();
    assert!(msg.contains("invalid_time_range"), "{msg}");
    let token = admin.token.clone().expect("the admin token");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let http = reqwest::Client::new();
    for (query, code) in [
        ("order=sideways", "invalid_order"),
        ("actr=alice", "unknown_parameter"),
        ("actor=alice&actor=bob", "repeated_parameter"),
        ("from=yesterday", "invalid_time"),
        ("limit=0", "invalid_limit"),
        ("kind=", "invalid_filter"),
    ] {
        let url = format!("{}/api/v1/audit/search?{query}", w.server.url);
        let (status, body) = rt.block_on(async {
            let r = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .expect("the server answers");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("a JSON error"))
        });
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    // Searching changed nothing: the trail is as long as before.
    let after = w.run(&admin, &["audit", "verify", "--json"]).json()["records"]
        .as_u64()
        .expect("records");
    assert_eq!(after, before_bad, "refused searches recorded nothing");
}

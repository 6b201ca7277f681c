//! `warrant discover` against a real PostgreSQL: the baseline inventory, then a privilege
//! granted outside Warrant shows up as an exception and an audit event.

use warrant_testkit::PgFixture;

use crate::harness::{demo_on_postgres, s, set_pg_secret};

#[test]
fn a_privilege_granted_outside_warrant_becomes_an_exception() {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    let (w, admin) = demo_on_postgres(pg, |org| org);
    set_pg_secret(&w, &admin, pg);
    let id = warrant_iam::new_id().unwrap();
    // `alice` is a known identity: her personal role is unmanaged; `svc_…` has no identity.
    let personal = "alice";
    let orphan = format!("svc_{}", &id[..8]);
    pg.psql(
        &pg.url(),
        &format!(
            "DROP ROLE IF EXISTS {personal}; CREATE ROLE {personal} LOGIN CREATEDB PASSWORD 'x'; \
             DROP ROLE IF EXISTS {orphan}; CREATE ROLE {orphan} LOGIN PASSWORD 'y' VALID UNTIL 'infinity'"
        ),
    )
    .unwrap();

    let alice = w.login("alice");
    let denied = w.run(&alice, &["discover", "pg-prod"]).fails();
    assert!(denied.contains("role_required"), "{denied}");

    let first = w.run(&admin, &["discover", "pg-prod", "--json"]).json();
    assert_eq!(first["baseline"], true, "{first}");
    assert!(first["differences"].as_array().unwrap().is_empty());
    let inv = first["inventory"].as_array().unwrap();
    let find = |inv: &[serde_json::Value], name: &str| {
        inv.iter()
            .find(|r| r["account"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in the inventory: {inv:?}"))
    };
    let me = find(inv, pg.user());
    assert_eq!(
        s(&me, "status"),
        "managed",
        "the connector's own login: {me}"
    );
    assert_eq!(s(&me, "risk"), "critical", "{me}");
    let a = find(inv, personal);
    assert_eq!(s(&a, "status"), "unmanaged", "{a}");
    assert!(
        a["privileges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "createdb"),
        "{a}"
    );
    let o = find(inv, &orphan);
    assert_eq!(s(&o, "status"), "orphaned", "{o}");
    assert_eq!(
        s(&o, "risk"),
        "medium",
        "login without expiry, orphaned: {o}"
    );

    // Outside Warrant: the orphan becomes superuser, a new replication role appears.
    let newcomer = format!("repl_{}", &id[8..16]);
    pg.psql(
        &pg.url(),
        &format!(
            "ALTER ROLE {orphan} SUPERUSER; DROP ROLE IF EXISTS {newcomer}; \
             CREATE ROLE {newcomer} REPLICATION LOGIN PASSWORD 'z' VALID UNTIL '2100-01-01'"
        ),
    )
    .unwrap();
    let table = w.run(&admin, &["discover", "pg-prod"]).ok().to_owned();
    assert!(table.contains("granted outside Warrant"), "{table}");
    let ex = w
        .run(&admin, &["exceptions", "--target", "pg-prod", "--json"])
        .json_array();
    let e1 = ex
        .iter()
        .find(|e| e["account"] == orphan.as_str())
        .unwrap_or_else(|| panic!("{ex:?}"));
    assert!(s(e1, "what").contains("superuser"), "{e1}");
    assert_eq!(s(e1, "risk"), "critical", "{e1}");
    let e2 = ex
        .iter()
        .find(|e| e["account"] == newcomer.as_str())
        .unwrap_or_else(|| panic!("{ex:?}"));
    assert!(s(e2, "what").contains("new privileged account"), "{e2}");
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "200", "--json"])
        .ok()
        .to_owned();
    assert!(audit.contains("discovery.difference"), "{audit}");
    assert!(audit.contains("discovery.scanned"), "{audit}");

    // Resolving needs a note; a resolved exception leaves the open list.
    let no_note = w
        .run(&admin, &["resolve-exception", s(e1, "id"), "--note", " "])
        .fails();
    assert!(no_note.contains("note_required"), "{no_note}");
    w.run(
        &admin,
        &[
            "resolve-exception",
            s(e1, "id"),
            "--note",
            "accepted: CHG-7",
        ],
    )
    .ok();
    let open = w.run(&admin, &["exceptions", "--json"]).json_array();
    assert!(open.iter().all(|e| e["id"] != e1["id"]), "{open:?}");
    let all = w
        .run(&admin, &["exceptions", "--all", "--json"])
        .json_array();
    assert!(all.iter().any(|e| e["id"] == e1["id"]), "{all:?}");

    // A third scan opens nothing more for them (other tests share this PostgreSQL, so other
    // roles may come and go meanwhile).
    let third = w.run(&admin, &["discover", "pg-prod", "--json"]).json();
    assert!(
        third["differences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["account"] != orphan.as_str() && d["account"] != newcomer.as_str()),
        "{third}"
    );
    let listed = w
        .run(&admin, &["inventory", "--target", "pg-prod"])
        .ok()
        .to_owned();
    assert!(listed.contains(&newcomer), "{listed}");

    pg.psql(
        &pg.url(),
        &format!("DROP ROLE {orphan}; DROP ROLE {newcomer}; DROP ROLE {personal}"),
    )
    .unwrap();
}

#[test]
fn discovery_runs_on_the_configured_schedule() {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    let (mut w, admin) = demo_on_postgres(pg, |org| org);
    set_pg_secret(&w, &admin, pg);
    let bad = w.root().join("bad.yaml");
    std::fs::write(&bad, "discovery:\n  every: soon\n").unwrap();
    let out = crate::harness::warrant_command()
        .args(["serve", "--config", bad.to_str().unwrap(), "--data-dir"])
        .arg(w.root().join("unused"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("discovery.every"),
        "{out:?}"
    );

    let config = w.root().join("server.yaml");
    std::fs::write(&config, "discovery:\n  every: 1s\n").unwrap();
    w.restart_with(&["--demo", "--config", config.to_str().unwrap()]);
    let scanned = crate::harness::poll(std::time::Duration::from_secs(30), || {
        let inv = w
            .run(&admin, &["inventory", "--target", "pg-prod", "--json"])
            .json_array();
        (!inv.is_empty()).then_some(inv)
    })
    .expect("no scheduled scan of pg-prod within 30 s");
    assert!(
        scanned.iter().any(|r| r["account"] == pg.user()),
        "{scanned:?}"
    );
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "100", "--json"])
        .ok()
        .to_owned();
    assert!(audit.contains("discovery.scanned"), "{audit}");
}

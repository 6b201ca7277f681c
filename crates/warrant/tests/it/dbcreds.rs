//! `warrant target set-secret` and `warrant db-creds` against a real PostgreSQL target: a
//! temporary role for the grant, shown once, dropped by the server's clean-up when revoked.

use std::time::Duration;

use warrant_testkit::PgFixture;

use crate::harness::{DEMO_ORG, Who, World, demo_on_postgres, poll, s, set_pg_secret};

/// The demo organisation with pg-prod pointing at the shared throwaway PostgreSQL.
fn demo_on_throwaway_postgres() -> (&'static PgFixture, World, Who) {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    let (w, admin) = demo_on_postgres(pg, |org| org);
    (pg, w, admin)
}

#[test]
fn db_creds_give_a_role_that_dies_with_the_grant() {
    let (pg, w, admin) = demo_on_throwaway_postgres();
    let refused = w.run(&admin, &["target", "set-secret", "pg-prod"]).fails();
    assert!(refused.contains("--password-stdin"), "{refused}");
    set_pg_secret(&w, &admin, pg);

    let alice = w.login("alice");
    let r = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report", "--json",
            ],
        )
        .json();
    let grant = s(&r["grant"], "id").to_owned();
    let c = w.run(&alice, &["db-creds", &grant, "--json"]).json();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/postgres",
        s(&c, "user"),
        s(&c, "password"),
        pg.port()
    );
    assert!(pg.psql(&url, "SELECT 1").is_ok());
    let again = w.run(&alice, &["db-creds", &grant]).fails();
    assert!(again.contains("once"), "{again}");
    // The password is in no audit record.
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "100", "--json"])
        .ok()
        .to_owned();
    assert!(!audit.contains(s(&c, "password")));
    assert!(!audit.contains(pg.password()));

    w.run(&admin, &["revoke", &grant]).ok();
    let gone = poll(Duration::from_secs(15), || {
        pg.psql(&url, "SELECT 1").is_err().then_some(())
    });
    assert!(gone.is_some(), "the role is dropped after the revocation");
}

#[test]
fn a_key_rotation_keeps_the_target_secret_usable() {
    let (pg, w, admin) = demo_on_throwaway_postgres();
    set_pg_secret(&w, &admin, pg);
    let r = w.run(&admin, &["vault", "rekey", "--json"]).json();
    assert!(r["rewrapped"].as_u64().unwrap() >= 1, "{r}");
    let alice = w.login("alice");
    let g = w
        .run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report", "--json",
            ],
        )
        .json();
    let c = w
        .run(&alice, &["db-creds", s(&g["grant"], "id"), "--json"])
        .json();
    assert!(s(&c, "user").starts_with("w_alice_"), "{c}");
}

#[test]
fn warrant_psql_runs_psql_as_the_grants_temporary_role() {
    let (pg, w, admin) = demo_on_throwaway_postgres();
    set_pg_secret(&w, &admin, pg);
    let alice = w.login("alice");
    let none = w
        .run(&alice, &["psql", "pg-prod", "--", "-c", "SELECT 1"])
        .fails();
    assert!(none.contains("no active grant"), "{none}");
    w.run(
        &alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report",
        ],
    )
    .ok();
    let out = w.run(
        &alice,
        &["psql", "pg-prod", "--", "-tA", "-c", "SELECT current_user"],
    );
    assert!(out.ok().trim().starts_with("w_alice_"), "{out}");
}

#[test]
fn a_target_with_tls_is_reached_only_through_a_verified_certificate() {
    let pg = PgFixture::start_tls().unwrap_or_else(|e| panic!("{e}"));
    let ca = pg.ca_file().unwrap().to_str().unwrap().to_owned();
    let w = World::demo();
    let admin = w.admin();
    let apply = |tls: &str| {
        let org = std::fs::read_to_string(DEMO_ORG)
            .unwrap()
            .replace("127.0.0.1:5432", &format!("localhost:{}", pg.port()))
            .replace(
                "admin_user: warrant",
                &format!("admin_user: {}\n    {tls}", pg.user()),
            );
        let file = w.root().join("org.yaml");
        std::fs::write(&file, org).unwrap();
        w.run(&admin, &["apply", "-f", file.to_str().unwrap()]).ok();
    };
    let bad = w.root().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(DEMO_ORG)
            .unwrap()
            .replace("admin_user: warrant", "admin_user: warrant\n    tls: maybe"),
    )
    .unwrap();
    let refused = w
        .run(&admin, &["apply", "-f", bad.to_str().unwrap()])
        .fails();
    assert!(refused.contains("verify-full or disable"), "{refused}");

    // verify-full against the system's roots: the test CA is not one of them.
    apply("tls: verify-full");
    set_pg_secret(&w, &admin, &pg);
    let alice = w.login("alice");
    let request = |who: &Who| {
        let g = w
            .run(
                who,
                &[
                    "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report", "--json",
                ],
            )
            .json();
        s(&g["grant"], "id").to_owned()
    };
    let grant = request(&alice);
    let untrusted = w.run(&alice, &["db-creds", &grant]).fails();
    assert!(untrusted.contains("pg_tls"), "{untrusted}");

    // With the target's CA file the certificate verifies and the credentials work.
    apply(&format!("tls: verify-full\n    ca_file: {ca}"));
    let c = w.run(&alice, &["db-creds", &grant, "--json"]).json();
    let url = format!(
        "postgres://{}:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={ca}",
        s(&c, "user"),
        s(&c, "password"),
        pg.port()
    );
    assert!(pg.psql(&url, "SELECT 1").is_ok());
}

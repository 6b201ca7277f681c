//! The PostgreSQL store: the same server on `--database-url`.
//!
//! Needs the Debian `postgresql` package; without it the fixture's error says what to install
//! and the test fails with it.

use warrant_testkit::PgFixture;

use crate::harness::{World, s};

#[test]
fn postgres_store_serves_the_demo() {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("PostgreSQL for the store: {e}"));
    let url = pg
        .fresh_database()
        .unwrap_or_else(|e| panic!("PostgreSQL for the store: {e}"));
    let mut w = World::start(&["--database-url", &url, "--demo"]);
    let admin = w.admin();
    let alice = w.login("alice");

    let req = w
        .run(
            &alice,
            &[
                "request",
                "pg-prod",
                "readonly",
                "--for",
                "1h",
                "--reason",
                "on postgres",
                "--json",
            ],
        )
        .json();
    assert_eq!(s(&req["grant"], "status"), "active", "{req:#}");
    let check = [
        "check",
        "--identity",
        "alice",
        "--target",
        "pg-prod",
        "--role",
        "readonly",
    ];
    assert_eq!(w.run(&alice, &check).code, Some(0));
    assert_eq!(
        w.run(
            &admin,
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

    let verify = w.run(&admin, &["audit", "verify"]);
    assert!(verify.ok().starts_with("audit chain intact"), "{verify}");

    // The data lives in PostgreSQL, not in the data dir: it survives a restart, and verifies
    // offline against the database.
    assert!(
        !w.data_dir.join("warrant.db").exists(),
        "a SQLite store was created next to PostgreSQL"
    );
    w.server.stop();
    let offline = w.run(&admin, &["audit", "verify", "--database-url", &url]);
    assert!(offline.ok().starts_with("audit chain intact"), "{offline}");
    w.restart();
    assert_eq!(
        w.run(&alice, &check).code,
        Some(0),
        "the grant did not survive a restart"
    );
}

//! Vaulted accounts against a real PostgreSQL target: checkout under a grant, audited reveal,
//! check-in at the grant's end, rotation after check-in, journaled rotation that survives a
//! crash at every step, and a canary secret that never shows up where it should not.

use std::time::Duration;

use warrant_testkit::PgFixture;

use crate::harness::{Run, Who, World, demo_on_postgres, poll, s, set_pg_secret};

/// The demo organisation with pg-prod on the throwaway PostgreSQL, its admin secret set, a
/// role `break-glass` that names the vaulted account `account`, which dba members may request
/// without approval, and `account` created on the server with `password` (LOGIN).
fn world_with_account(account: &str, password: &str) -> (&'static PgFixture, World, Who) {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    let (w, admin) = demo_on_postgres(pg, |org| {
        org.replace(
            "      - name: readonly\n        db_roles: [pg_read_all_data]\n",
            &format!(
                "      - name: readonly\n        db_roles: [pg_read_all_data]\n      - name: break-glass\n        account: {account}\n"
            ),
        )
        .replace(
            "policies:\n",
            "  - group: dba\n    target: pg-prod\n    role: break-glass\n    max_duration: 1h\n    require_reason: true\npolicies:\n",
        )
    });
    set_pg_secret(&w, &admin, pg);
    pg.psql(
        &pg.url(),
        &format!(
            "DROP ROLE IF EXISTS {account}; CREATE ROLE {account} LOGIN PASSWORD '{password}'"
        ),
    )
    .unwrap();
    (pg, w, admin)
}

/// `warrant account add pg-prod ACCOUNT --owner db-owners --secret-stdin` with `secret`.
fn vault(w: &World, admin: &Who, account: &str, secret: &str) -> Run {
    w.run_stdin(
        admin,
        &[
            "account",
            "add",
            "pg-prod",
            account,
            "--owner",
            "db-owners",
            "--secret-stdin",
        ],
        &format!("{secret}\n"),
    )
}

/// `warrant account set-secret pg-prod ACCOUNT --secret-stdin` with `secret`.
fn set_secret(w: &World, admin: &Who, account: &str, secret: &str) -> Run {
    w.run_stdin(
        admin,
        &[
            "account",
            "set-secret",
            "pg-prod",
            account,
            "--secret-stdin",
        ],
        &format!("{secret}\n"),
    )
}

/// Alice (dba) takes break-glass, checks `account` out and reveals its secret.
fn break_glass_reveal(w: &World, account: &str) -> String {
    let alice = w.login("alice");
    w.run(
        &alice,
        &[
            "request",
            "pg-prod",
            "break-glass",
            "--for",
            "1h",
            "--reason",
            "check",
        ],
    )
    .ok();
    w.run(&alice, &["account", "checkout", "pg-prod", account])
        .ok();
    let shown = w
        .run(&alice, &["account", "reveal", "pg-prod", account, "--json"])
        .json();
    s(&shown, "secret").to_owned()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        warrant_iam::new_id().unwrap()[..8].to_owned()
    )
}

fn logs_in(pg: &PgFixture, user: &str, password: &str) -> bool {
    pg.psql(
        &format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            pg.port()
        ),
        "SELECT 1",
    )
    .is_ok()
}

fn account_row(w: &World, admin: &Who, account: &str) -> serde_json::Value {
    w.run(admin, &["accounts", "--json"])
        .json_array()
        .into_iter()
        .find(|a| a["name"] == account)
        .unwrap_or_else(|| panic!("no account {account}"))
}

/// Waits until the account has no rotation in progress and was rotated at least once.
fn wait_rotated(w: &World, admin: &Who, account: &str) -> serde_json::Value {
    poll(Duration::from_secs(30), || {
        let a = account_row(w, admin, account);
        (a["rotation_step"].is_null() && !a["last_rotated_at"].is_null()).then_some(a)
    })
    .unwrap_or_else(|| {
        panic!(
            "{account} was not rotated: {}\n{}",
            account_row(w, admin, account),
            w.server.log()
        )
    })
}

#[test]
fn checkout_reveal_and_rotation_after_the_grant_ends() {
    let account = unique("app_owner");
    let first = "first-Secret-1";
    let (pg, w, admin) = world_with_account(&account, first);
    let add = [
        "account",
        "add",
        "pg-prod",
        &account,
        "--owner",
        "db-owners",
        "--secret-stdin",
    ];
    let refused = w.run(&admin, &add[..6]).fails();
    assert!(refused.contains("--secret-stdin"), "{refused}");
    w.run_stdin(&admin, &add, &format!("{first}\n")).ok();

    let alice = w.login("alice");
    let no_grant = w
        .run(&alice, &["account", "checkout", "pg-prod", &account])
        .fails();
    assert!(no_grant.contains("no_active_grant"), "{no_grant}");
    let g = w
        .run(
            &alice,
            &[
                "request",
                "pg-prod",
                "break-glass",
                "--for",
                "1h",
                "--reason",
                "incident",
                "--json",
            ],
        )
        .json();
    let grant = s(&g["grant"], "id").to_owned();
    let not_out = w
        .run(&alice, &["account", "reveal", "pg-prod", &account])
        .fails();
    assert!(not_out.contains("not_checked_out"), "{not_out}");
    w.run(&alice, &["account", "checkout", "pg-prod", &account])
        .ok();
    let shown = w
        .run(
            &alice,
            &["account", "reveal", "pg-prod", &account, "--json"],
        )
        .json();
    assert_eq!(s(&shown, "secret"), first);
    assert!(logs_in(pg, &account, first));

    // Exclusive: another holder of a grant cannot check it out meanwhile.
    let dave = w.login("dave");
    w.run(&admin, &["group", "add-member", "dba", "dave"]).ok();
    w.run(
        &dave,
        &[
            "request",
            "pg-prod",
            "break-glass",
            "--for",
            "1h",
            "--reason",
            "incident",
        ],
    )
    .ok();
    let busy = w
        .run(&dave, &["account", "checkout", "pg-prod", &account])
        .fails();
    assert!(
        busy.contains("account_checked_out") && busy.contains("alice"),
        "{busy}"
    );

    // The grant's end checks the account in and a rotation follows: the secret alice saw dies.
    w.run(&admin, &["revoke", &grant, "--reason", "incident over"])
        .ok();
    let a = wait_rotated(&w, &admin, &account);
    assert!(a["checked_out"].as_array().unwrap().is_empty(), "{a}");
    assert!(!logs_in(pg, &account, first), "the old secret still works");
    let gone = w
        .run(&alice, &["account", "reveal", "pg-prod", &account])
        .fails();
    assert!(gone.contains("not_checked_out"), "{gone}");

    // Dave may check it out now and sees the new secret, which works.
    w.run(&dave, &["account", "checkout", "pg-prod", &account])
        .ok();
    let new = w
        .run(&dave, &["account", "reveal", "pg-prod", &account, "--json"])
        .json();
    assert_ne!(s(&new, "secret"), first);
    assert!(logs_in(pg, &account, s(&new, "secret")));

    let audit = w
        .run(&admin, &["audit", "tail", "-n", "500", "--json"])
        .ok()
        .to_owned();
    for kind in [
        "account.created",
        "account.checked_out",
        "account.revealed",
        "account.checked_in",
        "account.rotation_step",
    ] {
        assert!(audit.contains(kind), "no {kind} in the audit trail");
    }
    for step in ["new_kept", "set_new", "verified_new", "committed"] {
        assert!(
            audit.contains(&format!("\"{step}\"")),
            "no rotation step {step}"
        );
    }
}

#[test]
fn a_crash_at_any_rotation_step_never_loses_the_working_secret() {
    for step in ["new_kept", "set_new", "verified_new"] {
        let account = unique("crash");
        let first = "before-Crash-1";
        let (pg, mut w, admin) = world_with_account(&account, first);
        vault(&w, &admin, &account, first).ok();
        w.server.stop();
        w.restart_env(&[("WARRANT_TEST_CRASH_AT", step)]);
        // The server aborts right after the step commits: the CLI sees the connection drop.
        let _ = w.run(&admin, &["account", "rotate", "pg-prod", &account]);
        let status = w.server.wait_exit(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| !s.success()),
            "the server did not crash at {step}: {status:?}\n{}",
            w.server.log()
        );
        w.restart_env(&[]);
        // Recovery at start finishes the rotation; the vault's secret is the one that works.
        wait_rotated(&w, &admin, &account);
        let shown = break_glass_reveal(&w, &account);
        assert!(
            logs_in(pg, &account, &shown),
            "after a crash at {step} the vault's secret does not work"
        );
        assert!(
            !logs_in(pg, &account, first),
            "after a crash at {step} the old secret still works"
        );
        let audit = w
            .run(&admin, &["audit", "tail", "-n", "200", "--json"])
            .ok()
            .to_owned();
        assert!(audit.contains("\"recovery\""), "no recovery after {step}");
    }
}

#[test]
fn a_canary_secret_appears_only_in_the_reveal() {
    let account = unique("canary");
    let canary = format!("CANARY-{}", warrant_iam::new_id().unwrap());
    let (pg, w, admin) = world_with_account(&account, &canary);
    let mut outputs = Vec::new();
    let mut keep = |r: crate::harness::Run| outputs.push(r.to_string());
    keep(vault(&w, &admin, &account, &canary));
    // A wrong secret set by hand, a failing rotation, then the right one again.
    keep(set_secret(&w, &admin, &account, "not-the-password"));
    keep(w.run(&admin, &["account", "rotate", "pg-prod", &account]));
    keep(set_secret(&w, &admin, &account, &canary));
    let alice = w.login("alice");
    keep(w.run(
        &alice,
        &[
            "request",
            "pg-prod",
            "break-glass",
            "--for",
            "1h",
            "--reason",
            "canary",
        ],
    ));
    keep(w.run(&alice, &["account", "checkout", "pg-prod", &account]));
    let revealed = w.run(&alice, &["account", "reveal", "pg-prod", &account]);
    assert!(revealed.ok().contains(&canary), "{revealed}");
    keep(w.run(&alice, &["account", "checkout", "pg-prod", &account]));
    keep(w.run(&admin, &["accounts", "--json"]));
    keep(w.run(&admin, &["accounts"]));
    keep(w.run(&alice, &["account", "checkin", "pg-prod", &account]));
    wait_rotated(&w, &admin, &account);
    keep(w.run(&admin, &["audit", "tail", "-n", "1000", "--json"]));
    keep(w.run(&admin, &["jobs", "--json"]));
    assert!(!logs_in(pg, &account, &canary));

    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(&canary), "output {i} shows the canary:\n{o}");
    }
    assert!(
        !w.all_logs().contains(&canary),
        "a server log shows the canary"
    );
    // At rest it is sealed: no file of the data directory holds it.
    for entry in walk(&w.data_dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes
                .windows(canary.len())
                .any(|win| win == canary.as_bytes()),
            "{} holds the canary in clear",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_api_key_on_a_generic_target_is_vaulted_but_never_rotated_by_warrant() {
    let w = World::demo();
    let admin = w.admin();
    w.run(
        &admin,
        &[
            "target",
            "add",
            "billing-api",
            "--kind",
            "generic",
            "--owner",
            "ops",
        ],
    )
    .ok();
    w.run(
        &admin,
        &[
            "target",
            "add-role",
            "billing-api",
            "key-holder",
            "--account",
            "root-key",
        ],
    )
    .ok();
    w.run(
        &admin,
        &[
            "rule",
            "add",
            "--group",
            "ops",
            "--target",
            "billing-api",
            "--role",
            "key-holder",
            "--max-duration",
            "1h",
        ],
    )
    .ok();
    let key = "sk_live_0123456789";
    let refused = w
        .run_stdin(
            &admin,
            &[
                "account",
                "add",
                "billing-api",
                "root-key",
                "--owner",
                "ops",
                "--rotate-every",
                "24h",
                "--secret-stdin",
            ],
            &format!("{key}\n"),
        )
        .fails();
    assert!(refused.contains("rotation_unsupported"), "{refused}");
    let added = w
        .run_stdin(
            &admin,
            &[
                "account",
                "add",
                "billing-api",
                "root-key",
                "--owner",
                "ops",
                "--secret-stdin",
                "--json",
            ],
            &format!("{key}\n"),
        )
        .json();
    assert_eq!(added["rotate_after_checkin"], false, "{added}");
    let again = w
        .run(&admin, &["account", "rotate", "billing-api", "root-key"])
        .fails();
    assert!(
        again.contains("rotation_unsupported") && again.contains("set-secret"),
        "{again}"
    );

    let carol = w.login("carol");
    w.run(
        &carol,
        &[
            "request",
            "billing-api",
            "key-holder",
            "--for",
            "30m",
            "--reason",
            "invoice run",
        ],
    )
    .ok();
    w.run(&carol, &["account", "checkout", "billing-api", "root-key"])
        .ok();
    let shown = w
        .run(&carol, &["account", "reveal", "billing-api", "root-key"])
        .ok()
        .to_owned();
    assert_eq!(shown.trim(), key);
    w.run(&carol, &["account", "checkin", "billing-api", "root-key"])
        .ok();
    // A user sees no listing of the vault; an auditor does, without secrets.
    let no = w.run(&carol, &["accounts"]).fails();
    assert!(no.contains("role_required"), "{no}");
    let listed = w.run(&admin, &["accounts", "--json"]).json_array();
    assert_eq!(listed.len(), 1);
    assert!(listed[0]["last_rotated_at"].is_null(), "{listed:?}");
    assert!(!listed[0].to_string().contains(key));
}

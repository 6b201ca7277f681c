//! `warrant serve --pg-listen`: the real `psql` through Warrant's PostgreSQL gateway to a real
//! PostgreSQL, with a `warrant db-token` as the password, over verified TLS; refused without a
//! grant or with a bad token; every statement in the signed statement log; cut when the grant
//! is revoked; audited.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use warrant_testkit::PgFixture;

use crate::harness::{DEMO_ORG, Who, World, poll, s};

struct Setup {
    w: World,
    pg: &'static PgFixture,
    gw_port: u16,
    alice: Who,
    admin: Who,
}

fn setup() -> Setup {
    setup_with(|org| org)
}

/// [`setup`] with `edit` applied to the org file's text.
fn setup_with(edit: impl FnOnce(String) -> String) -> Setup {
    let pg = PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    let gw_port = warrant_testkit::free_port();
    let w = World::start(&["--demo", "--pg-listen", &format!("127.0.0.1:{gw_port}")]);
    let admin = w.admin();
    let org = std::fs::read_to_string(DEMO_ORG)
        .unwrap()
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port()))
        .replace("admin_user: warrant", &format!("admin_user: {}", pg.user()));
    let file = w.root().join("org.yaml");
    std::fs::write(&file, edit(org)).unwrap();
    w.run(&admin, &["apply", "-f", file.to_str().unwrap()]).ok();
    crate::harness::set_pg_secret(&w, &admin, pg);
    let alice = w.login("alice");
    Setup {
        w,
        pg,
        gw_port,
        alice,
        admin,
    }
}

/// `psql` to the gateway as `user` on `dbname`, TLS verified against the gateway's own
/// certificate in the data directory.
fn psql(st: &Setup, user: &str, dbname: &str, password: &str, args: &[&str]) -> Command {
    let cert = st.w.data_dir.join("pg_gateway_tls.crt");
    let mut c = Command::new("psql");
    c.arg(format!(
        "host=localhost port={} user={user} dbname={dbname} sslmode=verify-full sslrootcert={} connect_timeout=10",
        st.gw_port,
        cert.display()
    ))
    .args(["-X", "-v", "ON_ERROR_STOP=1"])
    .args(args)
    .env("PGPASSWORD", password)
    .env_remove("PGSERVICE")
    .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn db_token(st: &Setup) -> String {
    st.w.run(&st.alice, &["db-token"]).ok().trim().to_owned()
}

#[test]
fn psql_through_the_gateway_under_a_grant_logged_and_cut_when_revoked() {
    let st = setup();
    let token = db_token(&st);

    // No grant yet: refused, with what to do.
    let o = psql(&st, "alice", "pg-prod", &token, &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no active grant"), "{}", text(&o));

    let g =
        st.w.run(
            &st.alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report", "--json",
            ],
        )
        .json();
    let grant = s(&g["grant"], "id").to_owned();

    // Under the grant: psql works as the grant's temporary role, which alice never sees.
    let o = psql(
        &st,
        "alice",
        "pg-prod",
        &token,
        &[
            "-tA",
            "-c",
            "SELECT current_user",
            "-c",
            "SELECT 'gateway-canary-' || 41 + 1",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("w_alice_"), "{out}");
    assert!(out.contains("gateway-canary-42"), "{out}");

    // The session is listed, ended, with its statement log signed and verifiable.
    // (Sessions are recorded by a task of their own: the listing may lag the client a little.)
    let session = poll(Duration::from_secs(10), || {
        st.w.run(&st.alice, &["sessions", "--json"])
            .json_array()
            .into_iter()
            .find(|x| s(x, "kind") == "postgres")
    })
    .expect("the postgres session is listed");
    let id = s(&session, "id").to_owned();
    let ended = poll(Duration::from_secs(10), || {
        let one = st.w.run(&st.admin, &["sessions", "--json"]).json_array();
        one.into_iter()
            .find(|x| s(x, "id") == id && !x["ended_at"].is_null())
    })
    .expect("the session is recorded as ended");
    assert_eq!(s(&ended, "identity"), "alice");
    assert_eq!(s(&ended, "target"), "pg-prod");
    let log =
        st.w.run(&st.admin, &["recording", "get", &id])
            .ok()
            .to_owned();
    assert!(log.contains("SELECT current_user"), "{log}");
    assert!(log.contains("'gateway-canary-' || 41 + 1"), "{log}");
    st.w.run(&st.admin, &["recording", "verify", &id]).ok();

    // A live session is cut within a second or two of the revocation, with the reason.
    let mut live = psql(
        &st,
        "alice",
        "pg-prod",
        &token,
        &["-c", "SELECT pg_sleep(60)"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let listed = poll(Duration::from_secs(10), || {
        st.w.run(&st.admin, &["sessions", "--json"])
            .json_array()
            .into_iter()
            .find(|x| s(x, "kind") == "postgres" && x["ended_at"].is_null())
    });
    assert!(listed.is_some(), "the live session is listed");
    let revoked_at = Instant::now();
    st.w.run(&st.admin, &["revoke", &grant]).ok();
    let o = poll(Duration::from_secs(15), || live.try_wait().unwrap())
        .map(|_| live.wait_with_output().unwrap())
        .expect("psql ends after the revocation");
    assert!(revoked_at.elapsed() < Duration::from_secs(10));
    assert!(!o.status.success(), "{}", text(&o));
    // The gateway's watcher or the grant's clean-up (which terminates the role's backends) gets
    // there first: either way the person is told.
    assert!(
        text(&o).contains("no longer active") || text(&o).contains("terminating connection"),
        "{}",
        text(&o)
    );

    // The grant's temporary role goes with it.
    let role = out.lines().next().unwrap().to_owned();
    let gone = poll(Duration::from_secs(15), || {
        let n = st
            .pg
            .psql(
                &st.pg.url(),
                &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"),
            )
            .unwrap();
        (n.trim() == "0").then_some(())
    });
    assert!(
        gone.is_some(),
        "role {role} is dropped after the revocation"
    );

    // Audited: the sessions, their end, and the refusal before the grant.
    let audit =
        st.w.run(&st.admin, &["audit", "tail", "-n", "200", "--json"])
            .ok()
            .to_owned();
    for event in [
        "gateway.session_started",
        "gateway.session_ended",
        "gateway.refused",
    ] {
        assert!(audit.contains(event), "{event} missing from the audit");
    }
    // The token and the injected password appear in no log and no audit record.
    assert!(!audit.contains(&token));
    assert!(!st.w.all_logs().contains(&token));
}

#[test]
fn bad_tokens_other_people_and_the_api_are_refused() {
    let st = setup();
    let token = db_token(&st);
    st.w.run(
        &st.alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "report",
        ],
    )
    .ok();
    // A wrong password.
    let o = psql(&st, "alice", "pg-prod", "not-a-token", &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("password authentication failed"),
        "{}",
        text(&o)
    );
    // Alice's token as someone else.
    let o = psql(&st, "bob", "pg-prod", &token, &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("password authentication failed"),
        "{}",
        text(&o)
    );
    // A password typed into the user field reaches no audit record (kept as a digest).
    let o = psql(
        &st,
        "Hunter2-typed-as-user",
        "pg-prod",
        &token,
        &["-c", "SELECT 1"],
    )
    .output()
    .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let audited = poll(Duration::from_secs(10), || {
        let a =
            st.w.run(&st.admin, &["audit", "tail", "-n", "200", "--json"])
                .ok()
                .to_owned();
        a.contains("unknown:").then_some(a)
    })
    .expect("the refusal is audited");
    assert!(!audited.contains("Hunter2-typed-as-user"), "{audited}");
    // A database name that is no target.
    let o = psql(&st, "alice", "nowhere", &token, &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("no PostgreSQL target nowhere"),
        "{}",
        text(&o)
    );
    // The token opens nothing on the API.
    let holder = Who {
        config_dir: st.w.root().join("db-token-holder"),
        token: Some(token.clone()),
    };
    let refused = st.w.run(&holder, &["whoami"]).fails();
    assert!(refused.contains("scope"), "{refused}");
    // Tokens are minutes long.
    let long = st.w.run(&st.alice, &["db-token", "--ttl", "2h"]).fails();
    assert!(long.contains("at most"), "{long}");
}

#[test]
fn a_role_naming_a_vaulted_account_logs_in_as_that_account() {
    let account = "gw_vaulted";
    let st = setup_with(|org| {
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
    let password = "vaulted-Secret-0451";
    st.pg
        .psql(
            &st.pg.url(),
            &format!(
                "DROP ROLE IF EXISTS {account}; CREATE ROLE {account} LOGIN PASSWORD '{password}'"
            ),
        )
        .unwrap();
    st.w.run_stdin(
        &st.admin,
        &[
            "account",
            "add",
            "pg-prod",
            account,
            "--owner",
            "db-owners",
            "--secret-stdin",
        ],
        &format!("{password}\n"),
    )
    .ok();
    let token = db_token(&st);
    for role in ["readonly", "break-glass"] {
        st.w.run(
            &st.alice,
            &[
                "request", "pg-prod", role, "--for", "1h", "--reason", "incident",
            ],
        )
        .ok();
    }
    // Two roles with database access: the person says which.
    let o = psql(&st, "alice", "pg-prod", &token, &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(text(&o).contains("pg-prod+ROLE"), "{}", text(&o));
    let o = psql(
        &st,
        "alice",
        "pg-prod+break-glass",
        &token,
        &["-tA", "-c", "SELECT current_user"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), account);
    // Not checked out to anyone: the password never left the vault.
    let accounts = st.w.run(&st.admin, &["accounts", "--json"]).ok().to_owned();
    assert!(!accounts.contains(password));
    assert!(!st.w.all_logs().contains(password));
}

/// The current TOTP code of `seed`.
fn totp_now(seed: &[u8]) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    warrant_iam::totp::code_at(seed, warrant_iam::totp::Hash::Sha1, 6, now).unwrap()
}

#[test]
fn a_rule_that_requires_mfa_needs_a_token_made_after_a_second_factor() {
    let st = setup_with(|org| {
        org.replace(
            "      - name: readonly\n        db_roles: [pg_read_all_data]\n",
            "      - name: readonly\n        db_roles: [pg_read_all_data]\n      - name: mfa-read\n        db_roles: [pg_read_all_data]\n",
        )
        .replace(
            "policies:\n",
            "  - group: dba\n    target: pg-prod\n    role: mfa-read\n    max_duration: 1h\n    require_reason: true\n    require_mfa: true\npolicies:\n",
        )
    });
    let w = &st.w;
    // Made before alice has any second factor: the token carries none.
    let without = db_token(&st);

    let e = w.run(&st.alice, &["mfa", "enrol", "--json"]).json();
    let seed = warrant_iam::totp::seed_from_base32(s(&e, "secret")).unwrap();
    let confirmed = w
        .run(&st.alice, &["mfa", "confirm", &totp_now(&seed)])
        .ok()
        .to_owned();
    let recovery: Vec<&str> = confirmed
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim().len() == 19)
        .map(str::trim)
        .collect();
    assert!(!recovery.is_empty(), "{confirmed}");
    w.run(&st.alice, &["mfa", "verify", recovery[0]]).ok();
    w.run(
        &st.alice,
        &[
            "request", "pg-prod", "mfa-read", "--for", "30m", "--reason", "report",
        ],
    )
    .ok();

    let o = psql(&st, "alice", "pg-prod", &without, &["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("requires a second factor"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("warrant db-token"), "{}", text(&o));

    // Made right after the second factor: admitted.
    let with = db_token(&st);
    let o = psql(
        &st,
        "alice",
        "pg-prod",
        &with,
        &["-tA", "-c", "SELECT current_user"],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("w_alice_"), "{out}");
}

#[test]
fn the_gateway_certificate_names_the_hosts_people_connect_to() {
    let gw_port = warrant_testkit::free_port();
    let w = World::start(&[
        "--demo",
        "--pg-listen",
        &format!("127.0.0.1:{gw_port}"),
        "--pg-tls-name",
        "warrant-gw.test",
    ]);
    let alice = w.login("alice");
    let token = w.run(&alice, &["db-token"]).ok().trim().to_owned();
    let cert = w.data_dir.join("pg_gateway_tls.crt");
    let connect = |host: &str| {
        Command::new("psql")
            .arg(format!(
                "host={host} hostaddr=127.0.0.1 port={gw_port} user=alice dbname=pg-prod sslmode=verify-full sslrootcert={} connect_timeout=10",
                cert.display()
            ))
            .args(["-X", "-c", "SELECT 1"])
            .env("PGPASSWORD", &token)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // The name verifies: the refusal is the gateway's (no grant), past TLS.
    let named = connect("warrant-gw.test");
    assert!(text(&named).contains("no active grant"), "{}", text(&named));
    // Another name does not.
    let other = connect("elsewhere.test");
    assert!(
        !text(&other).contains("no active grant"),
        "{}",
        text(&other)
    );
    assert!(text(&other).contains("certificate"), "{}", text(&other));
}

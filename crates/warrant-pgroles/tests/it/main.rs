//! Temporary roles against a real PostgreSQL (`warrant_testkit::PgFixture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use tokio_postgres::NoTls;
use warrant_core::Secret;
use warrant_pgroles::{
    OnDrop, PgRolesError, TargetConn, TempRole, TempRoleSpec, TlsMode, create_temp_role,
    drop_temp_role, managed_roles, verify_login,
};
use warrant_testkit::PgFixture;

mod account;
mod discover;
mod session;

/// 2100-01-01T00:00:00Z: a grant end far enough ahead that the role can log in.
const END: i64 = 4_102_444_800;

/// A fresh database on the shared server, and the admin connection to it.
fn fresh() -> (&'static PgFixture, String, TargetConn) {
    let pg = PgFixture::shared().unwrap();
    let url = pg.fresh_database().unwrap();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let conn = target(pg, &db);
    (pg, url, conn)
}

fn target(pg: &PgFixture, db: &str) -> TargetConn {
    TargetConn {
        host: "127.0.0.1".to_owned(),
        port: pg.port(),
        dbname: db.to_owned(),
        admin_user: pg.user().to_owned(),
        admin_password: Secret::new(pg.password().to_owned()),
        tls: TlsMode::Disable,
        connect_timeout: Duration::from_secs(10),
    }
}

fn spec<'a>(identity: &'a str, grant: &'a str, member_of: &'a [String]) -> TempRoleSpec<'a> {
    TempRoleSpec {
        prefix: "w_",
        identity,
        grant_id: grant,
        valid_until: END,
        member_of,
    }
}

/// Logs in as `role` to `conn`'s database, the way a holder would.
async fn login(
    conn: &TargetConn,
    role: &TempRole,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(&conn.host)
        .port(conn.port)
        .dbname(&conn.dbname)
        .user(&role.name)
        .password(role.password.expose().as_bytes())
        .connect(NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

fn role_exists(pg: &PgFixture, name: &str) -> bool {
    pg.psql(
        &pg.url(),
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"),
    )
    .unwrap()
    .trim()
        == "1"
}

#[tokio::test]
async fn role_logs_in_with_mapped_privileges_until_the_grant_end() {
    let (pg, url, conn) = fresh();
    pg.psql(
        &url,
        "CREATE TABLE secrets (v text); INSERT INTO secrets VALUES ('x')",
    )
    .unwrap();
    let member_of = vec!["pg_read_all_data".to_owned()];
    let role = create_temp_role(&conn, &spec("Alice.Smith", "g-login", &member_of))
        .await
        .unwrap();
    assert!(role.name.starts_with("w_alice_smith_"), "{}", role.name);
    assert_eq!(role.name.len(), "w_alice_smith_".len() + 8);

    let client = login(&conn, &role).await.unwrap();
    let v: String = client
        .query_one("SELECT v FROM secrets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "x");
    // Reading is all it may do.
    assert!(client.batch_execute("DELETE FROM secrets").await.is_err());

    let until = pg
        .psql(
            &url,
            &format!(
                "SELECT extract(epoch FROM rolvaliduntil)::bigint, rolsuper, rolcreaterole \
                 FROM pg_roles WHERE rolname = '{}'",
                role.name
            ),
        )
        .unwrap();
    assert_eq!(until.trim(), format!("{END}|f|f"));

    let listed = managed_roles(&conn).await.unwrap();
    let mine = listed.iter().find(|r| r.name == role.name).unwrap();
    assert_eq!(mine.grant_id, "g-login");
    assert_eq!(mine.valid_until, Some(END));

    drop_temp_role(&conn, &role.name, &OnDrop::Drop)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_role_cannot_log_in() {
    let (_pg, _url, conn) = fresh();
    let mut s = spec("bob", "g-expired", &[]);
    s.valid_until = 946_684_800; // 2000-01-01
    let role = create_temp_role(&conn, &s).await.unwrap();
    assert!(login(&conn, &role).await.is_err());
    drop_temp_role(&conn, &role.name, &OnDrop::Drop)
        .await
        .unwrap();
}

#[tokio::test]
async fn dropping_terminates_open_sessions_and_is_idempotent() {
    let (pg, _url, conn) = fresh();
    let role = create_temp_role(&conn, &spec("carol", "g-session", &[]))
        .await
        .unwrap();
    let held = login(&conn, &role).await.unwrap();
    held.batch_execute("SELECT 1").await.unwrap();

    let report = drop_temp_role(&conn, &role.name, &OnDrop::Drop)
        .await
        .unwrap();
    assert!(report.existed);
    assert_eq!(report.backends_terminated, 1);
    assert!(
        held.batch_execute("SELECT 1").await.is_err(),
        "the held session survived"
    );
    assert!(!role_exists(pg, &role.name));
    assert!(login(&conn, &role).await.is_err());

    let again = drop_temp_role(&conn, &role.name, &OnDrop::Drop)
        .await
        .unwrap();
    assert!(!again.existed);
    assert_eq!(again.backends_terminated, 0);
}

/// A role that may create tables in `public`, creates one, and is dropped with `owned`;
/// returns the owner of the table afterwards (empty when it is gone).
async fn owner_after_drop(owned: OnDrop) -> String {
    let (pg, url, conn) = fresh();
    pg.psql(&url, "GRANT CREATE ON SCHEMA public TO PUBLIC")
        .unwrap();
    let role = create_temp_role(&conn, &spec("dave", "g-owned", &[]))
        .await
        .unwrap();
    let client = login(&conn, &role).await.unwrap();
    client
        .batch_execute("CREATE TABLE mine (v int); INSERT INTO mine VALUES (1)")
        .await
        .unwrap();
    drop(client);
    drop_temp_role(&conn, &role.name, &owned).await.unwrap();
    assert!(!role_exists(pg, &role.name));
    pg.psql(
        &url,
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = 'mine'",
    )
    .unwrap()
    .trim()
    .to_owned()
}

#[tokio::test]
async fn owned_objects_are_reassigned_when_asked() {
    assert_eq!(
        owner_after_drop(OnDrop::Reassign("admin".to_owned())).await,
        "admin"
    );
}

#[tokio::test]
async fn owned_objects_are_dropped_when_asked() {
    assert_eq!(owner_after_drop(OnDrop::Drop).await, "");
}

#[tokio::test]
async fn objects_in_other_databases_do_not_block_the_drop() {
    let (pg, url, conn) = fresh();
    let other_url = pg.fresh_database().unwrap();
    let other_db = other_url.rsplit('/').next().unwrap().to_owned();
    pg.psql(&other_url, "GRANT CREATE ON SCHEMA public TO PUBLIC")
        .unwrap();
    let role = create_temp_role(&conn, &spec("erin", "g-otherdb", &[]))
        .await
        .unwrap();
    let client = login(&target(pg, &other_db), &role).await.unwrap();
    client
        .batch_execute("CREATE TABLE theirs (v int)")
        .await
        .unwrap();
    drop(client);
    let report = drop_temp_role(&conn, &role.name, &OnDrop::Reassign("admin".to_owned()))
        .await
        .unwrap();
    assert_eq!(report.other_databases, vec![other_db]);
    assert!(!role_exists(pg, &role.name));
    let owner = pg
        .psql(
            &other_url,
            "SELECT tableowner FROM pg_tables WHERE tablename = 'theirs'",
        )
        .unwrap();
    assert_eq!(owner.trim(), "admin");
    let _ = url;
}

#[tokio::test]
async fn unmanaged_roles_are_never_dropped() {
    let (pg, url, conn) = fresh();
    pg.psql(
        &url,
        "CREATE ROLE someone_else LOGIN; CREATE ROLE w_lookalike LOGIN; \
         COMMENT ON ROLE w_lookalike IS 'warrant-managed? no'",
    )
    .unwrap();
    for name in ["someone_else", "w_lookalike"] {
        let err = drop_temp_role(&conn, name, &OnDrop::Drop)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "pg_not_managed", "{err}");
        assert!(role_exists(pg, name));
        let can_login = pg
            .psql(
                &url,
                &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{name}'"),
            )
            .unwrap();
        assert_eq!(can_login.trim(), "t", "{name} lost its login");
    }
    pg.psql(&url, "DROP ROLE someone_else; DROP ROLE w_lookalike")
        .unwrap();
}

#[tokio::test]
async fn a_missing_mapped_role_creates_nothing() {
    let (pg, url, conn) = fresh();
    let member_of = vec!["pg_read_all_data".to_owned(), "no_such_role".to_owned()];
    let err = create_temp_role(&conn, &spec("frank", "g-missing", &member_of))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_role_missing");
    assert!(err.to_string().contains("no_such_role"), "{err}");
    let left = pg
        .psql(
            &url,
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'w_frank_%'",
        )
        .unwrap();
    assert_eq!(left.trim(), "0");
    let reassign_to_nobody = drop_temp_role(
        &conn,
        "w_whoever",
        &OnDrop::Reassign("no_such_role".to_owned()),
    )
    .await;
    // A role that is gone is success whatever the reassignment target.
    assert!(!reassign_to_nobody.unwrap().existed);
}

/// A server of its own: statement logging on, so the log shows everything Warrant sends;
/// exactly Warrant's roles are listed.
#[tokio::test]
async fn managed_roles_lists_exactly_warrants_and_no_password_reaches_log_or_errors() {
    let pg = PgFixture::start().unwrap();
    pg.psql(
        &pg.url(),
        // Every later session of the admin (Warrant's) logs every statement it sends.
        "ALTER ROLE admin SET log_statement = 'all'",
    )
    .unwrap();
    let conn = target(&pg, "postgres");
    pg.psql(
        &pg.url(),
        "CREATE ROLE plain LOGIN; CREATE ROLE commented; COMMENT ON ROLE commented IS 'ops team'",
    )
    .unwrap();
    let a = create_temp_role(&conn, &spec("gina", "g-a", &[]))
        .await
        .unwrap();
    let b = create_temp_role(&conn, &spec("hank", "g-b", &[]))
        .await
        .unwrap();
    let held = login(&conn, &a).await.unwrap();

    let mut listed = managed_roles(&conn).await.unwrap();
    listed.sort_by(|x, y| x.grant_id.cmp(&y.grant_id));
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|r| (r.name.as_str(), r.grant_id.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![(a.name.as_str(), "g-a"), (b.name.as_str(), "g-b")]
    );

    let mut errors: Vec<PgRolesError> = Vec::new();
    let member_of = vec!["missing_role".to_owned()];
    errors.push(
        create_temp_role(&conn, &spec("ivan", "g-c", &member_of))
            .await
            .unwrap_err(),
    );
    errors.push(
        drop_temp_role(&conn, "plain", &OnDrop::Drop)
            .await
            .unwrap_err(),
    );
    let mut wrong = target(&pg, "postgres");
    wrong.admin_password = Secret::new(format!("{}-wrong", pg.password()));
    errors.push(managed_roles(&wrong).await.unwrap_err());
    assert_eq!(errors[2].code(), "pg_auth", "{}", errors[2]);

    drop_temp_role(&conn, &a.name, &OnDrop::Drop).await.unwrap();
    drop_temp_role(&conn, &b.name, &OnDrop::Drop).await.unwrap();
    assert!(held.batch_execute("SELECT 1").await.is_err());
    assert!(managed_roles(&conn).await.unwrap().is_empty());

    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(
        log.contains("CREATE ROLE"),
        "statement logging is not on:\n{log}"
    );
    for role in [&a, &b] {
        let pw = role.password.expose();
        assert_eq!(pw.len(), 43, "32 bytes base64url");
        assert!(!log.contains(pw.as_str()), "password in the server log");
        assert!(
            log.contains("SCRAM-SHA-256$4096:"),
            "the verifier is what is sent"
        );
        for e in &errors {
            assert!(!e.to_string().contains(pw.as_str()));
            assert!(!format!("{e:?}").contains(pw.as_str()));
        }
        assert!(!format!("{role:?}").contains(pw.as_str()));
    }
    for e in &errors {
        assert!(!e.to_string().contains(pg.password()), "{e}");
        assert!(!format!("{e:?}").contains(pg.password()), "{e:?}");
    }
}

#[tokio::test]
async fn connection_failures_have_their_codes() {
    let pg = PgFixture::shared().unwrap();
    let mut tls = target(pg, "postgres");
    tls.tls = TlsMode::Require { ca_file: None };
    let err = managed_roles(&tls).await.unwrap_err();
    assert_eq!(err.code(), "pg_tls", "{err}");

    tls.tls = TlsMode::Require {
        ca_file: Some("/nonexistent/ca.pem".into()),
    };
    let err = managed_roles(&tls).await.unwrap_err();
    assert_eq!(err.code(), "pg_tls", "{err}");

    let mut closed = target(pg, "postgres");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = managed_roles(&closed).await.unwrap_err();
    assert_eq!(err.code(), "pg_connect", "{err}");

    let mut nobody = target(pg, "postgres");
    nobody.admin_user = "nobody_here".to_owned();
    let err = managed_roles(&nobody).await.unwrap_err();
    assert_eq!(err.code(), "pg_auth", "{err}");
}

/// Whether the server sees the one session of `user` as encrypted (`t` or `f`; empty when
/// `user` has no session).
fn encrypted_sessions_of(pg: &PgFixture, user: &str) -> String {
    pg.psql(
        &pg.url(),
        &format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = '{user}'"
        ),
    )
    .unwrap()
}

/// A server with TLS: `TlsMode::Require` with the fixture's CA verifies it by IP address and by
/// host name, and the server sees Warrant's session encrypted; a CA that did not sign the
/// server's certificate and the system's trust store are both refused.
#[tokio::test]
async fn tls_is_verified_against_the_given_ca_by_address_and_by_name() {
    let pg = PgFixture::start_tls().unwrap();
    let ca = pg.ca_file().unwrap().to_path_buf();
    // One admin per connection kind, so that each held session is the only one of its user.
    pg.psql(
        &pg.url(),
        "CREATE ROLE adm_plain SUPERUSER LOGIN PASSWORD 'adm-pw'; \
         CREATE ROLE adm_127_0_0_1 SUPERUSER LOGIN PASSWORD 'adm-pw'; \
         CREATE ROLE adm_localhost SUPERUSER LOGIN PASSWORD 'adm-pw'; \
         CREATE ROLE acct_tls LOGIN PASSWORD 'acct-tls-pw'",
    )
    .unwrap();
    let as_admin = |admin: &str, host: &str, tls: TlsMode| TargetConn {
        host: host.to_owned(),
        admin_user: admin.to_owned(),
        admin_password: Secret::new("adm-pw".to_owned()),
        tls,
        ..target(&pg, "postgres")
    };

    // Plain TCP is still accepted, and the check below tells it apart.
    let plain = as_admin("adm_plain", "127.0.0.1", TlsMode::Disable);
    let session = plain.session().await.unwrap();
    assert_eq!(encrypted_sessions_of(&pg, "adm_plain"), "f\n");
    drop(session);

    for host in ["127.0.0.1", "localhost"] {
        let admin = format!("adm_{}", host.replace('.', "_"));
        let conn = as_admin(
            &admin,
            host,
            TlsMode::Require {
                ca_file: Some(ca.clone()),
            },
        );
        let session = conn.session().await.unwrap();
        assert_eq!(encrypted_sessions_of(&pg, &admin), "t\n", "{host}");

        let grant = format!("g-tls-{host}");
        let role = create_temp_role(&conn, &spec("tina", &grant, &[]))
            .await
            .unwrap();
        let listed = managed_roles(&conn).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| &r.grant_id).collect::<Vec<_>>(),
            vec![&grant],
            "{host}"
        );
        assert!(
            verify_login(&conn, &role.name, &role.password)
                .await
                .unwrap()
        );
        let acct_pw = Secret::new("acct-tls-pw".to_owned());
        assert!(verify_login(&conn, "acct_tls", &acct_pw).await.unwrap());
        let wrong = Secret::new("not-the-password".to_owned());
        assert!(!verify_login(&conn, "acct_tls", &wrong).await.unwrap());

        let report = session
            .drop_temp_role(&role.name, &OnDrop::Drop)
            .await
            .unwrap();
        assert!(report.existed, "{host}");
        assert!(session.managed_roles().await.unwrap().is_empty(), "{host}");
    }

    let untrusted = pg.untrusted_ca_file().unwrap().to_path_buf();
    for tls in [
        TlsMode::Require {
            ca_file: Some(untrusted),
        },
        TlsMode::Require { ca_file: None },
    ] {
        for host in ["127.0.0.1", "localhost"] {
            let conn = as_admin("adm_localhost", host, tls.clone());
            let err = managed_roles(&conn).await.unwrap_err();
            assert_eq!(err.code(), "pg_tls", "{host} {tls:?}: {err}");
            assert!(
                err.to_string().contains("invalid peer certificate"),
                "{host} {tls:?}: {err}"
            );
            // Not a refused password: it says nothing about one.
            let acct_pw = Secret::new("acct-tls-pw".to_owned());
            let err = verify_login(&conn, "acct_tls", &acct_pw).await.unwrap_err();
            assert_eq!(err.code(), "pg_tls", "{host} {tls:?}: {err}");
        }
    }
}

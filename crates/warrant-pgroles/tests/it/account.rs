//! Passwords of vaulted accounts: generate, set, verify.

use warrant_core::Secret;
use warrant_pgroles::{
    OnDrop, PgRolesError, create_temp_role, drop_temp_role, generate_password, set_password,
    verify_login,
};
use warrant_testkit::PgFixture;

use crate::{fresh, login, spec, target};

fn secret(s: &str) -> Secret<String> {
    Secret::new(s.to_owned())
}

#[test]
fn generated_passwords_are_43_url_safe_characters_and_differ() {
    let a = generate_password().unwrap();
    let b = generate_password().unwrap();
    for p in [&a, &b] {
        assert_eq!(p.expose().len(), 43, "32 bytes, base64url without padding");
        assert!(
            p.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "not URL-safe"
        );
    }
    assert_ne!(a.expose(), b.expose());
}

#[tokio::test]
async fn a_rotation_sets_the_new_password_and_the_old_one_stops_working() {
    let (pg, url, conn) = fresh();
    pg.psql(
        &url,
        "CREATE ROLE acct_app LOGIN PASSWORD 'acct-initial-pw'; \
         CREATE ROLE acct_nologin NOLOGIN PASSWORD 'acct-nologin-pw'",
    )
    .unwrap();
    let old = secret("acct-initial-pw");
    assert!(verify_login(&conn, "acct_app", &old).await.unwrap());

    let new = generate_password().unwrap();
    set_password(&conn, "acct_app", &new).await.unwrap();
    assert!(verify_login(&conn, "acct_app", &new).await.unwrap());
    assert!(!verify_login(&conn, "acct_app", &old).await.unwrap());

    // Refused logins are `false`: an unknown role (28P01), a role that may not log in (28000).
    assert!(!verify_login(&conn, "acct_nobody", &new).await.unwrap());
    assert!(
        !verify_login(&conn, "acct_nologin", &secret("acct-nologin-pw"))
            .await
            .unwrap()
    );

    let err = set_password(&conn, "acct_nobody", &new).await.unwrap_err();
    assert_eq!(err.code(), "pg_account_missing", "{err}");
    assert!(err.to_string().contains("acct_nobody"), "{err}");

    let err = set_password(&conn, "acct_app", &secret(""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_invalid", "{err}");
    assert!(verify_login(&conn, "acct_app", &new).await.unwrap());

    // Warrant's own temporary roles are not vaulted accounts.
    let temp = create_temp_role(&conn, &spec("acct_temp", "g-acct", &[]))
        .await
        .unwrap();
    let err = set_password(&conn, &temp.name, &new).await.unwrap_err();
    assert_eq!(err.code(), "pg_temp_role", "{err}");
    assert!(login(&conn, &temp).await.is_ok(), "its password changed");
    assert!(
        verify_login(&conn, &temp.name, &temp.password)
            .await
            .unwrap()
    );
    drop_temp_role(&conn, &temp.name, &OnDrop::Drop)
        .await
        .unwrap();

    pg.psql(&url, "DROP ROLE acct_app, acct_nologin").unwrap();
}

/// Failures that say nothing about the password are errors, not `false`.
#[tokio::test]
async fn verify_login_errors_when_it_cannot_tell() {
    let pg = PgFixture::shared().unwrap();
    let admin_pw = secret(pg.password());

    let missing_db = target(pg, "acct_no_such_database");
    let err = verify_login(&missing_db, "admin", &admin_pw)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_login", "{err}");
    assert!(err.to_string().contains("3D000"), "{err}");

    let mut closed = target(pg, "postgres");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    closed.port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = verify_login(&closed, "admin", &admin_pw).await.unwrap_err();
    assert_eq!(err.code(), "pg_connect", "{err}");

    assert!(
        verify_login(&target(pg, "postgres"), "admin", &admin_pw)
            .await
            .unwrap()
    );
}

/// A server of its own with every statement of the admin logged: the log shows the verifiers
/// Warrant sends, never a plaintext; nor does any error.
#[tokio::test]
async fn no_plaintext_reaches_the_server_log_or_an_error() {
    let pg = PgFixture::start().unwrap();
    pg.psql(&pg.url(), "ALTER ROLE admin SET log_statement = 'all'")
        .unwrap();
    pg.psql(&pg.url(), "CREATE ROLE acct_vaulted LOGIN")
        .unwrap();
    let conn = target(&pg, "postgres");

    let first = generate_password().unwrap();
    set_password(&conn, "acct_vaulted", &first).await.unwrap();
    assert!(verify_login(&conn, "acct_vaulted", &first).await.unwrap());
    let second = generate_password().unwrap();
    set_password(&conn, "acct_vaulted", &second).await.unwrap();
    assert!(verify_login(&conn, "acct_vaulted", &second).await.unwrap());
    assert!(!verify_login(&conn, "acct_vaulted", &first).await.unwrap());

    let temp = create_temp_role(&conn, &spec("acct_log", "g-log", &[]))
        .await
        .unwrap();
    let errors: Vec<PgRolesError> = vec![
        set_password(&conn, "acct_missing", &second)
            .await
            .unwrap_err(),
        set_password(&conn, &temp.name, &second).await.unwrap_err(),
        verify_login(&target(&pg, "acct_no_such_db"), "acct_vaulted", &second)
            .await
            .unwrap_err(),
    ];

    let log = std::fs::read_to_string(pg.log_path()).unwrap();
    assert!(
        log.contains("ALTER ROLE \"acct_vaulted\" PASSWORD 'SCRAM-SHA-256$4096:"),
        "statement logging is not on, or no verifier was sent:\n{log}"
    );
    for pw in [&first, &second] {
        let pw = pw.expose().as_str();
        assert!(!log.contains(pw), "a password in the server log");
        for e in &errors {
            assert!(!e.to_string().contains(pw), "{e}");
            assert!(!format!("{e:?}").contains(pw), "{e:?}");
        }
    }
}

//! `AdminSession`: many drops over one connection, shared or broken sessions.

use std::sync::Arc;

use tokio_postgres::NoTls;
use warrant_pgroles::{OnDrop, TargetConn, create_temp_role};

use crate::{fresh, login, role_exists, spec, target};

/// Logs in as `user` with `password` to `conn`'s database.
async fn login_as(conn: &TargetConn, user: &str, password: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host(&conn.host)
        .port(conn.port)
        .dbname(&conn.dbname)
        .user(user)
        .password(password)
        .connect(NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn alive(client: &tokio_postgres::Client) -> bool {
    client.batch_execute("SELECT 1").await.is_ok()
}

fn can_login(pg: &warrant_testkit::PgFixture, name: &str) -> String {
    pg.psql(
        &pg.url(),
        &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{name}'"),
    )
    .unwrap()
    .trim()
    .to_owned()
}

#[tokio::test]
async fn one_session_drops_many_roles_with_their_sessions_and_objects() {
    let (pg, url, conn) = fresh();
    let other_url = pg.fresh_database().unwrap();
    let other_db = other_url.rsplit('/').next().unwrap().to_owned();
    for u in [&url, &other_url] {
        pg.psql(u, "GRANT CREATE ON SCHEMA public TO PUBLIC")
            .unwrap();
    }
    let plain = create_temp_role(&conn, &spec("s_plain", "g-s1", &[]))
        .await
        .unwrap();
    let held = create_temp_role(&conn, &spec("s_held", "g-s2", &[]))
        .await
        .unwrap();
    let elsewhere = create_temp_role(&conn, &spec("s_else", "g-s3", &[]))
        .await
        .unwrap();
    let local = create_temp_role(&conn, &spec("s_local", "g-s4", &[]))
        .await
        .unwrap();

    let h1 = login(&conn, &held).await.unwrap();
    let h2 = login(&conn, &held).await.unwrap();
    // Sessions that made objects stay open: the drop must end them too.
    let e = login(&target(pg, &other_db), &elsewhere).await.unwrap();
    e.batch_execute("CREATE TABLE theirs (v int)")
        .await
        .unwrap();
    let l = login(&conn, &local).await.unwrap();
    l.batch_execute("CREATE TABLE mine (v int)").await.unwrap();

    let session = conn.session().await.unwrap();
    let to_admin = OnDrop::Reassign("admin".to_owned());
    let expected = [
        (&plain, 0, vec![]),
        (&held, 2, vec![]),
        (&elsewhere, 1, vec![other_db.clone()]),
        (&local, 1, vec![]),
    ];
    for (role, terminated, others) in expected {
        let report = session.drop_temp_role(&role.name, &to_admin).await.unwrap();
        assert!(report.existed, "{}", role.name);
        assert_eq!(report.backends_terminated, terminated, "{}", role.name);
        assert_eq!(report.other_databases, others, "{}", role.name);
        assert!(!role_exists(pg, &role.name), "{}", role.name);
    }
    for client in [&h1, &h2, &e, &l] {
        assert!(!alive(client).await, "a session outlived its role");
    }
    let owner = |u: &str, table: &str| {
        pg.psql(
            u,
            &format!("SELECT tableowner FROM pg_tables WHERE tablename = '{table}'"),
        )
        .unwrap()
        .trim()
        .to_owned()
    };
    assert_eq!(owner(&url, "mine"), "admin");
    assert_eq!(owner(&other_url, "theirs"), "admin");

    // Idempotent over the same session.
    let again = session
        .drop_temp_role(&held.name, &OnDrop::Drop)
        .await
        .unwrap();
    assert!(!again.existed);
    assert_eq!(again.backends_terminated, 0);
    assert!(!session.is_closed());
}

/// The sessions of a role Warrant refuses to drop are not touched either (step 1 terminates
/// only what step 2 will drop).
#[tokio::test]
async fn refused_roles_keep_their_sessions_and_their_login() {
    let (pg, url, conn) = fresh();
    pg.psql(
        &url,
        "CREATE ROLE s_other LOGIN PASSWORD 'pw-other'; \
         CREATE ROLE w_s_lookalike LOGIN PASSWORD 'pw-look'; \
         COMMENT ON ROLE w_s_lookalike IS 'warrant-managed grant='",
    )
    .unwrap();
    let managed = create_temp_role(&conn, &spec("s_kept", "g-kept", &[]))
        .await
        .unwrap();
    let other = login_as(&conn, "s_other", "pw-other").await;
    let lookalike = login_as(&conn, "w_s_lookalike", "pw-look").await;
    let kept = login(&conn, &managed).await.unwrap();

    let session = conn.session().await.unwrap();
    for name in ["s_other", "w_s_lookalike"] {
        let err = session
            .drop_temp_role(name, &OnDrop::Drop)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "pg_not_managed", "{err}");
        assert_eq!(can_login(pg, name), "t");
    }
    let err = session
        .drop_temp_role(
            &managed.name,
            &OnDrop::Reassign("s_no_such_role".to_owned()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_role_missing", "{err}");
    assert!(err.to_string().contains("s_no_such_role"), "{err}");
    assert_eq!(can_login(pg, &managed.name), "t");
    for client in [&other, &lookalike, &kept] {
        assert!(alive(client).await, "a refused drop ended a session");
    }

    drop((other, lookalike, kept));
    session
        .drop_temp_role(&managed.name, &OnDrop::Drop)
        .await
        .unwrap();
    pg.psql(&url, "DROP ROLE s_other; DROP ROLE w_s_lookalike")
        .unwrap();
}

/// Tasks may share a session: each drop's messages are atomic on their own.
#[tokio::test]
async fn a_shared_session_serves_concurrent_drops() {
    let (pg, _url, conn) = fresh();
    let mut roles = Vec::new();
    for i in 0..8 {
        let grant = format!("g-shared-{i}");
        let role = create_temp_role(&conn, &spec("s_shared", &grant, &[]))
            .await
            .unwrap();
        let held = login(&conn, &role).await.unwrap();
        roles.push((role, held));
    }
    let session = Arc::new(conn.session().await.unwrap());
    let mut tasks = Vec::new();
    for (role, _) in &roles {
        let session = Arc::clone(&session);
        let name = role.name.clone();
        tasks.push(tokio::spawn(async move {
            session.drop_temp_role(&name, &OnDrop::Drop).await
        }));
    }
    for task in tasks {
        let report = task.await.unwrap().unwrap();
        assert!(report.existed);
        assert_eq!(report.backends_terminated, 1);
    }
    for (role, held) in &roles {
        assert!(!role_exists(pg, &role.name));
        assert!(!alive(held).await);
    }
}

/// The engine reconnects on `pg_disconnected`; the drop it retries then converges.
#[tokio::test]
async fn a_broken_session_says_so_and_a_new_one_carries_on() {
    let (pg, url, conn) = fresh();
    let role = create_temp_role(&conn, &spec("s_broken", "g-broken", &[]))
        .await
        .unwrap();
    let session = conn.session().await.unwrap();
    let db = &conn.dbname;
    let killed = pg
        .psql(
            &url,
            &format!(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND application_name = 'warrant-pgroles'"
            ),
        )
        .unwrap();
    assert_ne!(killed.trim(), "0");

    let err = session
        .drop_temp_role(&role.name, &OnDrop::Drop)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_disconnected", "{err}");
    assert!(err.is_disconnected());
    assert!(session.is_closed());
    assert!(!err.to_string().contains(pg.password()), "{err}");
    // Still closed: every call says so.
    let again = session.managed_roles().await.unwrap_err();
    assert_eq!(again.code(), "pg_disconnected", "{again}");

    let fresh_session = conn.session().await.unwrap();
    let report = fresh_session
        .drop_temp_role(&role.name, &OnDrop::Drop)
        .await
        .unwrap();
    assert!(report.existed);
    assert!(!role_exists(pg, &role.name));
}

/// A drop that fails (here: the role owns a database, which `DROP OWNED` leaves) takes the slow
/// path, so the role is left unable to log in and its sessions ended; a reassignment, which
/// moves databases too, then drops it.
#[tokio::test]
async fn a_failed_drop_leaves_the_role_nologin() {
    let (pg, url, conn) = fresh();
    let other_url = pg.fresh_database().unwrap();
    let other_db = other_url.rsplit('/').next().unwrap().to_owned();
    let role = create_temp_role(&conn, &spec("s_dbowner", "g-dbowner", &[]))
        .await
        .unwrap();
    let held = login(&conn, &role).await.unwrap();
    pg.psql(
        &url,
        &format!("ALTER DATABASE {other_db} OWNER TO {}", role.name),
    )
    .unwrap();

    let session = conn.session().await.unwrap();
    let err = session
        .drop_temp_role(&role.name, &OnDrop::Drop)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "pg_sql", "{err}");
    assert!(err.to_string().contains("2BP01"), "{err}");
    assert!(role_exists(pg, &role.name));
    assert_eq!(can_login(pg, &role.name), "f");
    assert!(!alive(&held).await);

    let report = session
        .drop_temp_role(&role.name, &OnDrop::Reassign("admin".to_owned()))
        .await
        .unwrap();
    assert!(report.existed);
    assert!(!role_exists(pg, &role.name));
    let owner = pg
        .psql(
            &url,
            &format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{other_db}'"
            ),
        )
        .unwrap();
    assert_eq!(owner.trim(), "admin");
}

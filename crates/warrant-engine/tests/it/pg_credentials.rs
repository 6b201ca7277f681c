//! Temporary PostgreSQL roles for grants, against a real PostgreSQL as the target: credentials
//! once, under an active grant; the role dropped by the clean-up job when the grant is revoked.

use warrant_core::{Clock, Secret, SystemClock};

use crate::harness::{Backend, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_gets_a_temporary_role_once_and_loses_it_when_revoked() {
    let (cleanup, cell) = warrant_engine::pg::pg_cleanup_fn();
    let env = Env::with_cleanups(Backend::Sqlite, vec![cleanup]).await;
    assert!(cell.set(env.engine.clone()).is_ok());
    // The role's VALID UNTIL is checked by PostgreSQL's own clock.
    env.clock.set(SystemClock.now());

    let pg = warrant_testkit::PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
    point_pg_prod(&env, pg).await;

    let r = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap();
    let grant = r.grant.unwrap().id;
    let alice = env.user("alice");
    let e = env.engine.db_creds(&alice, &grant).await.unwrap_err();
    assert_eq!(e.code, "target_secret_missing", "{e}");
    env.engine
        .set_target_secret(&env.admin, "pg-prod", Secret::new(pg.password().to_owned()))
        .await
        .unwrap();
    // Someone else's grant is not yours.
    let e = env
        .engine
        .db_creds(&env.user("bob"), &grant)
        .await
        .unwrap_err();
    assert_eq!(e.code, "grant_not_found");

    let creds = env.engine.db_creds(&alice, &grant).await.unwrap();
    assert!(creds.user.starts_with("w_alice_"), "{}", creds.user);
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/postgres",
        creds.user,
        creds.password.expose(),
        creds.port
    );
    let who = pg.psql(&url, "SELECT current_user").unwrap();
    assert!(who.contains(&creds.user), "{who}");
    // Once.
    let e = env.engine.db_creds(&alice, &grant).await.unwrap_err();
    assert_eq!(e.code, "credential_delivered");

    // A session of the role is open (a long query) when the grant is revoked.
    let open = {
        let url = url.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let out = pg.psql(&url, "SELECT pg_sleep(60)");
            (out, started.elapsed())
        })
    };
    let count_sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'",
        creds.user
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pg.psql(&pg.url(), &count_sql).unwrap().trim() == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // Revoked: the clean-up job drops the role, ends its session, and it can no longer log in.
    env.engine
        .revoke(&env.admin, &grant, Some("done".into()))
        .await
        .unwrap();
    let report = env.engine.tick().await.unwrap();
    assert_eq!(report.jobs_failed, 0, "{report:?}");
    assert!(pg.psql(&url, "SELECT 1").is_err(), "the role is gone");
    let (out, took) = open.join().unwrap();
    assert!(out.is_err(), "the open session survived: {out:?}");
    assert!(
        took < std::time::Duration::from_secs(50),
        "the open session was not ended but ran out: {took:?}"
    );
    assert_eq!(pg.psql(&pg.url(), &count_sql).unwrap().trim(), "0");
    let kinds = env.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "credential.created"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "credential.dropped"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "target.secret_set"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_drops_roles_no_active_grant_backs() {
    let env = Env::new(Backend::Sqlite).await;
    env.clock.set(SystemClock.now());
    let pg = pg_target(&env).await;
    // A role of an active grant, and one left behind by a grant Warrant no longer has.
    let r = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap();
    let grant = r.grant.unwrap().id;
    let kept = env
        .engine
        .db_creds(&env.user("alice"), &grant)
        .await
        .unwrap();
    let conn = warrant_pgroles::TargetConn {
        host: "127.0.0.1".into(),
        port: pg.port(),
        dbname: "postgres".into(),
        admin_user: pg.user().to_owned(),
        admin_password: Secret::new(pg.password().to_owned()),
        tls: warrant_pgroles::TlsMode::Disable,
        connect_timeout: std::time::Duration::from_secs(10),
    };
    let orphan = warrant_pgroles::create_temp_role(
        &conn,
        &warrant_pgroles::TempRoleSpec {
            prefix: "w_",
            identity: "ghost",
            grant_id: "lostgrant0001",
            valid_until: SystemClock.now().unix_seconds() + 3600,
            member_of: &["pg_read_all_data".to_owned()],
        },
    )
    .await
    .unwrap();

    let report = env.engine.reconcile_pg().await.unwrap();
    assert_eq!((report.targets, report.dropped), (1, 1), "{report:?}");
    let names: Vec<String> = warrant_pgroles::managed_roles(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        std::slice::from_ref(&kept.user),
        "only the backed role is left"
    );
    assert!(!names.contains(&orphan.name));
    // Nothing more to do on the next pass.
    assert_eq!(env.engine.reconcile_pg().await.unwrap().dropped, 0);
}

/// The demo's pg-prod pointed at `pg`, with `pg`'s superuser as its admin.
async fn point_pg_prod(env: &Env, pg: &warrant_testkit::PgFixture) {
    let mut target = env
        .engine
        .targets()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.target.name.as_str() == "pg-prod")
        .unwrap()
        .target;
    target.address = Some(format!("127.0.0.1:{}", pg.port()));
    target.admin_user = Some(pg.user().to_owned());
    env.engine.save_target(&env.admin, &target).await.unwrap();
}

/// pg-prod on a throwaway PostgreSQL of its own, its admin secret set.
async fn pg_target(env: &Env) -> warrant_testkit::PgFixture {
    let pg = warrant_testkit::PgFixture::start().unwrap_or_else(|e| panic!("{e}"));
    point_pg_prod(env, &pg).await;
    env.engine
        .set_target_secret(&env.admin, "pg-prod", Secret::new(pg.password().to_owned()))
        .await
        .unwrap();
    pg
}

fn logs_in(pg: &warrant_testkit::PgFixture, user: &str, password: &str) -> bool {
    pg.psql(
        &format!(
            "postgres://{user}:{password}@127.0.0.1:{}/postgres",
            pg.port()
        ),
        "SELECT 1",
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vaulted_account_is_rotated_on_its_schedule() {
    let env = Env::new(Backend::Sqlite).await;
    env.clock.set(SystemClock.now());
    let pg = pg_target(&env).await;
    pg.psql(
        &pg.url(),
        "CREATE ROLE app_admin LOGIN PASSWORD 'scheduled-1'",
    )
    .unwrap();
    env.engine
        .create_account(
            &env.admin,
            warrant_engine::accounts::AccountSpec {
                target: "pg-prod".into(),
                name: "app_admin".into(),
                owner: "db-owners".into(),
                shared: false,
                rotate_every_secs: Some(3600),
                rotate_after_checkin: Some(false),
                secret: Secret::new("scheduled-1".into()),
            },
        )
        .await
        .unwrap();
    // Not due yet: nothing changes.
    env.engine.rotate_due_accounts().await.unwrap();
    assert!(logs_in(&pg, "app_admin", "scheduled-1"));
    assert_eq!(env.count_kind("account.rotation_step").await, 0);

    env.clock.advance_secs(3601);
    assert_eq!(env.engine.rotate_due_accounts().await.unwrap(), 1);
    assert!(!logs_in(&pg, "app_admin", "scheduled-1"), "not rotated");
    let a = env.engine.accounts(&env.admin).await.unwrap();
    let row = &a[0].row;
    assert!(
        row.pending_sealed.is_none() && row.rotation_step.is_none(),
        "{row:?}"
    );
    assert_eq!(row.last_rotated_at, Some(env.clock.now()));
    assert_eq!(
        row.rotation_due_at,
        Some(env.clock.now().plus_secs(3600)),
        "the next one is due a period later"
    );
    let records = env.engine.audit_records(&env.admin, 0, 1000).await.unwrap();
    let steps: Vec<String> = records
        .iter()
        .filter(|r| r.kind == "account.rotation_step")
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.data).unwrap();
            format!("{}/{}", v["step"], v["trigger"])
        })
        .collect();
    assert_eq!(
        steps,
        [
            r#""new_kept"/"schedule""#,
            r#""set_new"/"schedule""#,
            r#""verified_new"/"schedule""#,
            r#""committed"/"schedule""#
        ],
        "{steps:?}"
    );
    // A target with vaulted accounts is not deleted from under them.
    let e = env
        .engine
        .delete_target(&env.admin, "pg-prod")
        .await
        .unwrap_err();
    assert_eq!(e.code, "target_has_accounts", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_objects_follow_the_targets_setting() {
    let (cleanup, cell) = warrant_engine::pg::pg_cleanup_fn();
    let env = Env::with_cleanups(Backend::Sqlite, vec![cleanup]).await;
    assert!(cell.set(env.engine.clone()).is_ok());
    env.clock.set(SystemClock.now());
    let pg = pg_target(&env).await;
    pg.psql(
        &pg.url(),
        "CREATE SCHEMA scratch; GRANT CREATE, USAGE ON SCHEMA scratch TO PUBLIC",
    )
    .unwrap();
    let mut target = env
        .engine
        .targets()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.target.name.as_str() == "pg-prod")
        .unwrap()
        .target;
    target.connector.owned_objects = Some("sideways".into());
    let e = env
        .engine
        .save_target(&env.admin, &target)
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_owned_objects", "{e}");

    for (setting, table, survives) in [(None, "kept", true), (Some("drop"), "gone", false)] {
        target.connector.owned_objects = setting.map(str::to_owned);
        env.engine.save_target(&env.admin, &target).await.unwrap();
        // Any role may create tables in `scratch` (CREATE granted to PUBLIC).
        let r = env
            .request("alice", "pg-prod", "readonly", "1h", None)
            .await
            .unwrap();
        let grant = r.grant.unwrap().id;
        let creds = env
            .engine
            .db_creds(&env.user("alice"), &grant)
            .await
            .unwrap();
        let url = format!(
            "postgres://{}:{}@127.0.0.1:{}/postgres",
            creds.user,
            creds.password.expose(),
            creds.port
        );
        pg.psql(&url, &format!("CREATE TABLE scratch.{table} (x int)"))
            .unwrap();
        env.engine
            .revoke(&env.admin, &grant, Some("done".into()))
            .await
            .unwrap();
        let report = env.engine.tick().await.unwrap();
        assert_eq!(report.jobs_failed, 0, "{report:?}");
        let owner = pg
            .psql(
                &pg.url(),
                &format!("SELECT tableowner FROM pg_tables WHERE tablename = '{table}'"),
            )
            .unwrap();
        if survives {
            assert_eq!(owner.trim(), pg.user(), "reassigned to the admin");
        } else {
            assert_eq!(owner.trim(), "", "dropped with the role");
        }
    }
}

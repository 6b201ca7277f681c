//! Temporary PostgreSQL roles for grants, against a real PostgreSQL as the target: credentials
//! once, under an active grant; the role dropped by the clean-up job when the grant is revoked.

use std::sync::{Arc, OnceLock};

use warrant_core::{Clock, Secret, SystemClock};
use warrant_engine::{CleanupFn, Engine};

use crate::harness::{Backend, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_gets_a_temporary_role_once_and_loses_it_when_revoked() {
    let cell: Arc<OnceLock<Engine>> = Arc::new(OnceLock::new());
    let for_cleanup = Arc::clone(&cell);
    let cleanup: CleanupFn = Arc::new(move |g| {
        let cell = Arc::clone(&for_cleanup);
        Box::pin(async move {
            match cell.get() {
                Some(e) => e.pg_cleanup(&g).await,
                None => Err("engine not ready".into()),
            }
        })
    });
    let env = Env::with_cleanups(Backend::Sqlite, vec![cleanup]).await;
    assert!(cell.set(env.engine.clone()).is_ok());
    // The role's VALID UNTIL is checked by PostgreSQL's own clock.
    env.clock.set(SystemClock.now());

    let pg = warrant_testkit::PgFixture::shared().unwrap_or_else(|e| panic!("{e}"));
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

    // Revoked: the clean-up job drops the role, and it can no longer log in.
    env.engine
        .revoke(&env.admin, &grant, Some("done".into()))
        .await
        .unwrap();
    let report = env.engine.tick().await.unwrap();
    assert_eq!(report.jobs_failed, 0, "{report:?}");
    assert!(pg.psql(&url, "SELECT 1").is_err(), "the role is gone");
    let kinds = env.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "credential.created"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "credential.dropped"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "target.secret_set"), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_drops_roles_no_active_grant_backs() {
    let env = Env::new(Backend::Sqlite).await;
    env.clock.set(SystemClock.now());
    let pg = warrant_testkit::PgFixture::start().unwrap_or_else(|e| panic!("{e}"));
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
    env.engine
        .set_target_secret(&env.admin, "pg-prod", Secret::new(pg.password().to_owned()))
        .await
        .unwrap();
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

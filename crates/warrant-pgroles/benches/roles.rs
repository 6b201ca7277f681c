//! Temporary roles on a throwaway PostgreSQL (`fsync=off`, loopback):
//!
//! - creating and dropping 100 roles, one at a time, each operation over its own admin
//!   connection (SCRAM login), as the engine does for single grants;
//! - dropping 1,000 roles whose grants end together: over one [`AdminSession`], over 4
//!   sessions in parallel tasks, and (for comparison, 100 of them) a login each. The roles
//!   are made beforehand in one batch, outside the measured time; opening the sessions is
//!   measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::Runtime;
use warrant_core::Secret;
use warrant_pgroles::{
    AdminSession, OnDrop, TargetConn, TempRoleSpec, TlsMode, create_temp_role, drop_temp_role,
};
use warrant_testkit::PgFixture;

fn main() {
    divan::main();
}

fn conn(pg: &PgFixture) -> TargetConn {
    TargetConn {
        host: "127.0.0.1".to_owned(),
        port: pg.port(),
        dbname: "postgres".to_owned(),
        admin_user: pg.user().to_owned(),
        admin_password: Secret::new(pg.password().to_owned()),
        tls: TlsMode::Disable,
        connect_timeout: Duration::from_secs(10),
    }
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn create_and_drop_100_roles(bencher: divan::Bencher) {
    let pg = PgFixture::shared().expect("PostgreSQL fixture");
    let rt = Runtime::new().expect("tokio runtime");
    let conn = conn(pg);
    let member_of = vec!["pg_read_all_data".to_owned()];
    bencher.bench_local(|| {
        rt.block_on(async {
            let mut names = Vec::with_capacity(100);
            for i in 0..100 {
                let grant = format!("bench-{i}");
                let spec = TempRoleSpec {
                    prefix: "w_",
                    identity: "bench",
                    grant_id: &grant,
                    valid_until: 4_102_444_800,
                    member_of: &member_of,
                };
                names.push(create_temp_role(&conn, &spec).await.unwrap().name);
            }
            for name in names {
                drop_temp_role(&conn, &name, &OnDrop::Drop).await.unwrap();
            }
        });
    });
}

/// `n` roles shaped like `create_temp_role`'s (login, SCRAM verifier, `VALID UNTIL`, member of
/// `pg_read_all_data`, marked), made in one transaction; their names.
fn make_roles(rt: &Runtime, conn: &TargetConn, n: usize) -> Vec<String> {
    static BATCH: AtomicU64 = AtomicU64::new(0);
    let batch = BATCH.fetch_add(1, Ordering::Relaxed);
    let verifier = shared_verifier();
    let names: Vec<String> = (0..n).map(|i| format!("w_bench_{batch}_{i}")).collect();
    let mut sql = String::from("BEGIN;");
    for (i, name) in names.iter().enumerate() {
        sql.push_str(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{verifier}' VALID UNTIL '2100-01-01T00:00:00Z' \
             IN ROLE pg_read_all_data; \
             COMMENT ON ROLE {name} IS 'warrant-managed grant=bench-{batch}-{i}';"
        ));
    }
    sql.push_str("COMMIT;");
    rt.block_on(async {
        // The crate has no raw SQL API on purpose; a plain client makes the roles.
        let (client, connection) = tokio_postgres::Config::new()
            .host(&conn.host)
            .port(conn.port)
            .dbname(&conn.dbname)
            .user(&conn.admin_user)
            .password(conn.admin_password.expose().as_bytes())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(&sql).await.unwrap();
    });
    names
}

/// One SCRAM verifier for all bench roles (computing 1,000 would dominate the set-up).
fn shared_verifier() -> String {
    static VERIFIER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            let pw = warrant_pgroles::generate_password().unwrap();
            postgres_protocol::password::scram_sha_256(pw.expose().as_bytes())
        })
        .clone()
}

/// Drops `names` over `sessions` sessions, each in its own task.
async fn drop_in_parallel(conn: &TargetConn, names: Vec<String>, sessions: usize) {
    let chunk = names.len().div_ceil(sessions);
    let mut tasks = Vec::new();
    for part in names.chunks(chunk) {
        let part = part.to_vec();
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let session: AdminSession = conn.session().await.unwrap();
            for name in part {
                let report = session.drop_temp_role(&name, &OnDrop::Drop).await.unwrap();
                assert!(report.existed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn drop_1000_roles_one_session(bencher: divan::Bencher) {
    let pg = PgFixture::shared().expect("PostgreSQL fixture");
    let rt = Runtime::new().expect("tokio runtime");
    let conn = conn(pg);
    bencher
        .with_inputs(|| make_roles(&rt, &conn, 1000))
        .bench_local_values(|names| {
            rt.block_on(async {
                let session = conn.session().await.unwrap();
                for name in names {
                    let report = session.drop_temp_role(&name, &OnDrop::Drop).await.unwrap();
                    assert!(report.existed);
                }
            });
        });
}

#[divan::bench(sample_count = 5, sample_size = 1, args = [2, 4, 8])]
fn drop_1000_roles_parallel_sessions(bencher: divan::Bencher, sessions: usize) {
    let pg = PgFixture::shared().expect("PostgreSQL fixture");
    let rt = Runtime::new().expect("tokio runtime");
    let conn = conn(pg);
    bencher
        .with_inputs(|| make_roles(&rt, &conn, 1000))
        .bench_local_values(|names| rt.block_on(drop_in_parallel(&conn, names, sessions)));
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn drop_100_roles_a_login_each(bencher: divan::Bencher) {
    let pg = PgFixture::shared().expect("PostgreSQL fixture");
    let rt = Runtime::new().expect("tokio runtime");
    let conn = conn(pg);
    bencher
        .with_inputs(|| make_roles(&rt, &conn, 100))
        .bench_local_values(|names| {
            rt.block_on(async {
                for name in names {
                    drop_temp_role(&conn, &name, &OnDrop::Drop).await.unwrap();
                }
            });
        });
}

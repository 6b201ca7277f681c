//! Creating and dropping 100 temporary roles, one at a time, on a throwaway PostgreSQL.
//! Each operation opens its own admin connection (SCRAM login), as the engine will.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use warrant_core::Secret;
use warrant_pgroles::{
    OnDrop, TargetConn, TempRoleSpec, TlsMode, create_temp_role, drop_temp_role,
};
use warrant_testkit::PgFixture;

fn main() {
    divan::main();
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn create_and_drop_100_roles(bencher: divan::Bencher) {
    let pg = PgFixture::shared().expect("PostgreSQL fixture");
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let conn = TargetConn {
        host: "127.0.0.1".to_owned(),
        port: pg.port(),
        dbname: "postgres".to_owned(),
        admin_user: pg.user().to_owned(),
        admin_password: Secret::new(pg.password().to_owned()),
        tls: TlsMode::Disable,
        connect_timeout: Duration::from_secs(10),
    };
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

//! Discovery of privileged roles, as a superuser and as a `CREATEROLE` admin.

use warrant_core::Secret;
use warrant_pgroles::{PgAccount, create_temp_role, discover};

use crate::{END, fresh, spec};

fn find<'a>(accounts: &'a [PgAccount], name: &str) -> Option<&'a PgAccount> {
    accounts.iter().find(|a| a.name == name)
}

/// An account with no privilege at all, to be filled in with `..`.
fn account(name: &str) -> PgAccount {
    PgAccount {
        name: name.to_owned(),
        can_login: false,
        superuser: false,
        createrole: false,
        createdb: false,
        replication: false,
        bypassrls: false,
        admin_roles: Vec::new(),
        valid_until: None,
        warrant_grant: None,
    }
}

#[tokio::test]
async fn discovery_lists_privileged_roles_and_only_those() {
    let (pg, url, conn) = fresh();
    // Roles are cluster-wide and the server is shared: every name here starts with `disc_`.
    pg.psql(
        &url,
        "CREATE ROLE disc_su SUPERUSER; \
         CREATE ROLE disc_su_member IN ROLE disc_su; \
         CREATE ROLE disc_cdb CREATEDB VALID UNTIL '-infinity'; \
         CREATE ROLE disc_repl REPLICATION BYPASSRLS; \
         CREATE ROLE disc_group IN ROLE pg_read_all_data, pg_monitor; \
         CREATE ROLE disc_member IN ROLE disc_group; \
         CREATE ROLE disc_deep IN ROLE disc_member; \
         CREATE ROLE disc_login LOGIN; \
         CREATE ROLE disc_login_forever LOGIN VALID UNTIL 'infinity'; \
         CREATE ROLE disc_login_expiring LOGIN VALID UNTIL '2100-01-01 00:00:00+00'; \
         CREATE ROLE disc_plain; \
         CREATE ROLE disc_admin LOGIN CREATEROLE PASSWORD 'disc-admin-pw' VALID UNTIL '2100-01-01 00:00:00+00'",
    )
    .unwrap();
    let member_of = vec!["pg_read_all_data".to_owned()];
    let temp = create_temp_role(&conn, &spec("disc_temp", "g-disc", &member_of))
        .await
        .unwrap();

    let mut expected = vec![
        PgAccount {
            superuser: true,
            ..account("disc_su")
        },
        PgAccount {
            admin_roles: vec!["disc_su".to_owned()],
            ..account("disc_su_member")
        },
        PgAccount {
            createdb: true,
            valid_until: Some(i64::MIN),
            ..account("disc_cdb")
        },
        PgAccount {
            replication: true,
            bypassrls: true,
            ..account("disc_repl")
        },
        PgAccount {
            admin_roles: vec!["pg_monitor".to_owned(), "pg_read_all_data".to_owned()],
            ..account("disc_group")
        },
        PgAccount {
            admin_roles: vec!["pg_monitor".to_owned(), "pg_read_all_data".to_owned()],
            ..account("disc_member")
        },
        PgAccount {
            admin_roles: vec!["pg_monitor".to_owned(), "pg_read_all_data".to_owned()],
            ..account("disc_deep")
        },
        PgAccount {
            can_login: true,
            ..account("disc_login")
        },
        PgAccount {
            can_login: true,
            ..account("disc_login_forever")
        },
        PgAccount {
            can_login: true,
            createrole: true,
            valid_until: Some(END),
            ..account("disc_admin")
        },
        PgAccount {
            can_login: true,
            admin_roles: vec!["pg_read_all_data".to_owned()],
            valid_until: Some(END),
            warrant_grant: Some("g-disc".to_owned()),
            ..account(&temp.name)
        },
    ];
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    let absent = ["disc_login_expiring", "disc_plain"];

    let check = |accounts: &[PgAccount], who: &str| {
        let mine: Vec<PgAccount> = accounts
            .iter()
            .filter(|a| a.name.starts_with("disc_") || a.name.starts_with("w_disc_temp_"))
            .cloned()
            .collect();
        assert_eq!(mine, expected, "as {who}");
        for name in absent {
            assert!(find(accounts, name).is_none(), "{name} listed as {who}");
        }
        assert!(
            accounts.iter().all(|a| !a.name.starts_with("pg_")),
            "a predefined role is listed as {who}"
        );
        let mut sorted: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        sorted.sort_unstable();
        let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, sorted, "sorted by name");
    };

    let as_superuser = discover(&conn).await.unwrap();
    check(&as_superuser, "the superuser");
    let fixture_admin = find(&as_superuser, "admin").unwrap();
    assert!(fixture_admin.superuser && fixture_admin.can_login);

    let mut limited = conn.clone();
    limited.admin_user = "disc_admin".to_owned();
    limited.admin_password = Secret::new("disc-admin-pw".to_owned());
    let as_createrole = discover(&limited).await.unwrap();
    check(&as_createrole, "a CREATEROLE admin");

    warrant_pgroles::drop_temp_role(&conn, &temp.name, &warrant_pgroles::OnDrop::Drop)
        .await
        .unwrap();
    pg.psql(
        &url,
        "DROP ROLE disc_su_member, disc_su, disc_cdb, disc_repl, disc_deep, disc_member, \
         disc_group, disc_login, disc_login_forever, disc_login_expiring, disc_plain, disc_admin",
    )
    .unwrap();
}

//! Discovery: the privileged roles of a target, candidates for vaulting or clean-up.

use tokio_postgres::types::Type;

use crate::sql;
use crate::{PgRolesError, TargetConn};

/// PostgreSQL's predefined roles that confer admin-like power (reading or writing every table,
/// the server's files and programs, signalling backends, monitoring, checkpoints,
/// subscriptions). `pg_database_owner` is left out: every database owner is one implicitly.
/// Roles a server version does not have simply match nothing.
pub const ADMIN_ROLES: &[&str] = &[
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
    "pg_monitor",
    "pg_checkpoint",
    "pg_create_subscription",
];

/// A privileged role found by [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgAccount {
    /// The role's name.
    pub name: String,
    /// `LOGIN`.
    pub can_login: bool,
    /// `SUPERUSER`.
    pub superuser: bool,
    /// `CREATEROLE`.
    pub createrole: bool,
    /// `CREATEDB`.
    pub createdb: bool,
    /// `REPLICATION`.
    pub replication: bool,
    /// `BYPASSRLS`.
    pub bypassrls: bool,
    /// The roles of [`ADMIN_ROLES`] and the superuser roles this role is a member of, directly
    /// or through other roles; sorted.
    pub admin_roles: Vec<String>,
    /// `VALID UNTIL` in Unix seconds; `None` when the password never expires (unset or
    /// `infinity`), `Some(i64::MIN)` for `-infinity` (never valid).
    pub valid_until: Option<i64>,
    /// The grant id when the role is one of Warrant's temporary roles (it carries the marker).
    pub warrant_grant: Option<String>,
}

/// The roles' attributes and their admin memberships, in one statement. Memberships are
/// followed whatever their `INHERIT`/`SET` options: any of them is a path to the role's power.
/// `UNION` (not `UNION ALL`) keeps the recursion finite whatever the graph.
const DISCOVER: &str = "\
WITH RECURSIVE
roots AS (
  SELECT oid FROM pg_roles WHERE rolname = ANY($1) OR rolsuper
),
member_of(member, root) AS (
  SELECT m.member, m.roleid FROM pg_auth_members m JOIN roots ON roots.oid = m.roleid
  UNION
  SELECT m.member, mo.root FROM pg_auth_members m JOIN member_of mo ON m.roleid = mo.member
),
admin AS (
  SELECT mo.member, array_agg(DISTINCT r.rolname::text ORDER BY r.rolname::text) AS roles
  FROM member_of mo JOIN pg_roles r ON r.oid = mo.root
  GROUP BY mo.member
)
SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolreplication, r.rolbypassrls, coalesce(a.roles, '{}'),
       CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
            WHEN r.rolvaliduntil = '-infinity' THEN (-9223372036854775807 - 1)::bigint
            ELSE extract(epoch FROM r.rolvaliduntil)::bigint END,
       shobj_description(r.oid, 'pg_authid')
FROM pg_roles r LEFT JOIN admin a ON a.member = r.oid
WHERE NOT starts_with(r.rolname, 'pg_')
  AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls
       OR a.roles IS NOT NULL
       OR (r.rolcanlogin AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity')))
ORDER BY 1";

/// The target's privileged roles, by name: any with `SUPERUSER`, `CREATEROLE`, `CREATEDB`,
/// `REPLICATION` or `BYPASSRLS`; members (directly or through other roles) of the
/// [`ADMIN_ROLES`] or of a superuser role; and login roles whose password never expires.
/// PostgreSQL's own `pg_*` roles are left out.
///
/// One statement over `pg_roles`, `pg_auth_members` and the roles' comments, all readable by
/// any role: the admin need not be a superuser.
pub async fn discover(conn: &TargetConn) -> Result<Vec<PgAccount>, PgRolesError> {
    let client = conn.connect().await?;
    let rows = client
        .query_typed(DISCOVER, &[(&ADMIN_ROLES, Type::TEXT_ARRAY)])
        .await
        .map_err(|e| PgRolesError::sql("discovering privileged roles", &e))?;
    Ok(rows
        .iter()
        .map(|row| {
            let comment: Option<String> = row.get(9);
            PgAccount {
                name: row.get(0),
                can_login: row.get(1),
                superuser: row.get(2),
                createrole: row.get(3),
                createdb: row.get(4),
                replication: row.get(5),
                bypassrls: row.get(6),
                admin_roles: row.get(7),
                valid_until: row.get(8),
                warrant_grant: sql::parse_marker(comment.as_deref()).map(str::to_owned),
            }
        })
        .collect())
}

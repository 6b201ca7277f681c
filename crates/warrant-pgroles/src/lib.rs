//! Temporary PostgreSQL login roles that live as long as a grant.
//!
//! [`create_temp_role`] makes a login role with a readable name, a random password (sent to the
//! server only as a SCRAM-SHA-256 verifier computed here), `VALID UNTIL` the grant's end and
//! membership in the mapped roles, and marks it with the comment `warrant-managed grant=<id>`.
//! [`drop_temp_role`] takes it away again — `NOLOGIN`, terminate its sessions, reassign or drop
//! what it owns, drop it — and only ever touches roles that carry the marker. [`managed_roles`]
//! lists the marked roles for reconciliation.
//!
//! Layout: `conn` (the admin connection, TLS), `error` ([`PgRolesError`]), `sql` (names,
//! quoting, the marker); this file holds the three operations.

mod conn;
mod error;
mod sql;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_postgres::Client;
use warrant_core::Secret;

pub use crate::conn::{TargetConn, TlsMode};
pub use crate::error::PgRolesError;
use crate::sql::{MARKER, ident, literal};

/// The longest role name PostgreSQL keeps (`NAMEDATALEN - 1` bytes).
pub const MAX_ROLE_NAME: usize = 63;

/// What to create: one temporary role for one grant.
#[derive(Debug, Clone, Copy)]
pub struct TempRoleSpec<'a> {
    /// A readable prefix, e.g. `w_` (lowercase letters, digits, `_`; at most 32 bytes).
    pub prefix: &'a str,
    /// The holder's identity name; sanitised into the role name so a DBA can read it.
    pub identity: &'a str,
    /// The grant the role belongs to (recorded in the marker comment).
    pub grant_id: &'a str,
    /// The grant's end, in Unix seconds: the role's `VALID UNTIL`.
    pub valid_until: i64,
    /// Database roles the temporary role becomes a member of (`IN ROLE`).
    pub member_of: &'a [String],
}

/// A role just created; the password is handed to the holder once and not kept.
#[derive(Debug)]
pub struct TempRole {
    /// The role's name (use it quoted: it is not always a plain identifier for every client).
    pub name: String,
    /// The login password: 32 random bytes, base64url without padding.
    pub password: Secret<String>,
}

/// What happens to the objects a temporary role owns when it is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDrop {
    /// `REASSIGN OWNED BY … TO <role>`, then `DROP OWNED` (which now only revokes privileges).
    Reassign(String),
    /// `DROP OWNED BY …`: the role's objects go with it.
    Drop,
}

/// What [`drop_temp_role`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DropReport {
    /// False when the role was already gone (a retried clean-up).
    pub existed: bool,
    /// Sessions of the role that were terminated.
    pub backends_terminated: u64,
    /// Databases besides the connection's where owned objects were reassigned or dropped.
    pub other_databases: Vec<String>,
}

/// A role that carries Warrant's marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedRole {
    /// The role's name.
    pub name: String,
    /// The grant named in the marker.
    pub grant_id: String,
    /// `VALID UNTIL` in Unix seconds; `None` when unset or infinite.
    pub valid_until: Option<i64>,
}

/// Creates the temporary login role for a grant.
///
/// In one transaction: checks that every role of `member_of` exists (else
/// [`PgRolesError::RoleMissing`] and nothing is created), `CREATE ROLE … LOGIN PASSWORD
/// '<SCRAM verifier>' VALID UNTIL '<end>' IN ROLE …`, and `COMMENT ON ROLE … IS
/// 'warrant-managed grant=<id>'`.
///
/// The password never leaves this process: the server receives only its SCRAM-SHA-256
/// verifier (random salt, 4096 iterations), which it stores as is. So neither the server log
/// (even with `log_statement = 'all'`) nor `pg_stat_activity` ever shows the plaintext, and the
/// admin need not be a superuser to silence statement logging.
pub async fn create_temp_role(
    conn: &TargetConn,
    spec: &TempRoleSpec<'_>,
) -> Result<TempRole, PgRolesError> {
    let name = sql::role_name(spec.prefix, spec.identity, &random_hex(4)?)?;
    sql::check_grant_id(spec.grant_id)?;
    let password = Secret::new(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?));
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let until = sql::timestamp(spec.valid_until)?;

    let mut client = conn.connect().await?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgRolesError::sql("starting a transaction", &e))?;
    let missing = missing_roles(&tx, spec.member_of).await?;
    if !missing.is_empty() {
        return Err(PgRolesError::RoleMissing { roles: missing });
    }
    let mut create = format!(
        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS \
         INHERIT PASSWORD {} VALID UNTIL {}",
        ident(&name),
        literal(&verifier),
        literal(&until)
    );
    if !spec.member_of.is_empty() {
        let roles: Vec<String> = spec.member_of.iter().map(|r| ident(r)).collect();
        create.push_str(" IN ROLE ");
        create.push_str(&roles.join(", "));
    }
    tx.batch_execute(&create)
        .await
        .map_err(|e| PgRolesError::sql("creating the role", &e))?;
    tx.batch_execute(&format!(
        "COMMENT ON ROLE {} IS {}",
        ident(&name),
        literal(&format!("{MARKER}{}", spec.grant_id))
    ))
    .await
    .map_err(|e| PgRolesError::sql("marking the role", &e))?;
    tx.commit()
        .await
        .map_err(|e| PgRolesError::sql("committing the role", &e))?;
    tracing::info!(target = %conn.label(), role = %name, grant = %spec.grant_id, "created temporary role");
    Ok(TempRole { name, password })
}

/// Takes a temporary role away: `ALTER ROLE … NOLOGIN`, terminates its sessions, reassigns or
/// drops what it owns (in every database where it owns something), `DROP ROLE`.
///
/// Idempotent: a role that is already gone is success (`existed: false`), so a retried clean-up
/// converges. A role without Warrant's marker is refused ([`PgRolesError::NotManaged`]) and
/// left untouched.
pub async fn drop_temp_role(
    conn: &TargetConn,
    name: &str,
    owned: &OnDrop,
) -> Result<DropReport, PgRolesError> {
    let client = conn.connect().await?;
    let Some(comment) = role_comment(&client, name).await? else {
        return Ok(DropReport::default());
    };
    if sql::parse_marker(comment.as_deref()).is_none() {
        return Err(PgRolesError::NotManaged {
            role: name.to_owned(),
        });
    }
    if let OnDrop::Reassign(to) = owned {
        let missing = missing_roles(&client, std::slice::from_ref(to)).await?;
        if !missing.is_empty() {
            return Err(PgRolesError::RoleMissing { roles: missing });
        }
    }
    let role = ident(name);
    client
        .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
        .await
        .map_err(|e| PgRolesError::sql("disabling the role's login", &e))?;
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) \
             FROM pg_stat_activity WHERE usename = $1",
            &[&name],
        )
        .await
        .map_err(|e| PgRolesError::sql("terminating the role's sessions", &e))?;
    let terminated: i64 = row.get(0);

    // REASSIGN/DROP OWNED act on the current database only: visit the others where the role
    // owns objects or holds privileges first.
    let others: Vec<String> = client
        .query(
            "SELECT DISTINCT d.datname FROM pg_shdepend s \
             JOIN pg_database d ON d.oid = s.dbid \
             JOIN pg_roles r ON r.oid = s.refobjid \
             WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = $1 \
               AND d.datname <> current_database() AND d.datallowconn \
             ORDER BY 1",
            &[&name],
        )
        .await
        .map_err(|e| PgRolesError::sql("finding the role's objects in other databases", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for db in &others {
        let other = conn.connect_to(db).await?;
        other
            .batch_execute(&owned_sql(&role, owned))
            .await
            .map_err(|e| PgRolesError::sql("handling the role's objects", &e))?;
    }
    client
        .batch_execute(&format!(
            "BEGIN; {} DROP ROLE IF EXISTS {role}; COMMIT;",
            owned_sql(&role, owned)
        ))
        .await
        .map_err(|e| PgRolesError::sql("dropping the role", &e))?;
    tracing::info!(target = %conn.label(), role = %name, terminated, "dropped temporary role");
    Ok(DropReport {
        existed: true,
        backends_terminated: u64::try_from(terminated).unwrap_or(0),
        other_databases: others,
    })
}

/// Every role on the target that carries Warrant's marker, by name.
pub async fn managed_roles(conn: &TargetConn) -> Result<Vec<ManagedRole>, PgRolesError> {
    let client = conn.connect().await?;
    let rows = client
        .query(
            "SELECT r.rolname::text, shobj_description(r.oid, 'pg_authid'), \
               CASE WHEN r.rolvaliduntil IS NULL OR NOT isfinite(r.rolvaliduntil) THEN NULL \
                    ELSE extract(epoch FROM r.rolvaliduntil)::bigint END \
             FROM pg_roles r \
             WHERE starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), $1) \
             ORDER BY 1",
            &[&MARKER],
        )
        .await
        .map_err(|e| PgRolesError::sql("listing managed roles", &e))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let comment: Option<String> = row.get(1);
            let grant_id = sql::parse_marker(comment.as_deref())?;
            Some(ManagedRole {
                name: row.get(0),
                grant_id: grant_id.to_owned(),
                valid_until: row.get(2),
            })
        })
        .collect())
}

fn owned_sql(role: &str, owned: &OnDrop) -> String {
    match owned {
        OnDrop::Reassign(to) => {
            format!(
                "REASSIGN OWNED BY {role} TO {}; DROP OWNED BY {role};",
                ident(to)
            )
        }
        OnDrop::Drop => format!("DROP OWNED BY {role};"),
    }
}

/// Which of `roles` do not exist, in the order given.
async fn missing_roles<C: tokio_postgres::GenericClient>(
    client: &C,
    roles: &[String],
) -> Result<Vec<String>, PgRolesError> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<String> = client
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)",
            &[&roles],
        )
        .await
        .map_err(|e| PgRolesError::sql("checking the mapped roles", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(roles
        .iter()
        .filter(|r| !found.contains(r))
        .cloned()
        .collect())
}

/// `None` when the role does not exist, else its comment (which may be absent).
async fn role_comment(client: &Client, name: &str) -> Result<Option<Option<String>>, PgRolesError> {
    let row = client
        .query_opt(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .map_err(|e| PgRolesError::sql("looking up the role", &e))?;
    Ok(row.map(|r| r.get(0)))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], PgRolesError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| PgRolesError::Random(e.to_string()))?;
    Ok(buf)
}

fn random_hex(n: usize) -> Result<String, PgRolesError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| PgRolesError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

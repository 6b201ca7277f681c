//! Temporary PostgreSQL login roles that live as long as a grant, and the target's own
//! privileged accounts.
//!
//! [`create_temp_role`] makes a login role with a readable name, a random password (sent to the
//! server only as a SCRAM-SHA-256 verifier computed here), `VALID UNTIL` the grant's end and
//! membership in the mapped roles, and marks it with the comment `warrant-managed grant=<id>`.
//! [`drop_temp_role`] takes it away again — terminate its sessions, reassign or drop what it
//! owns, drop it — and only ever touches roles that carry the marker; an [`AdminSession`]
//! ([`TargetConn::session`]) drops many over one connection. [`managed_roles`] lists the marked
//! roles for reconciliation.
//!
//! [`discover`] lists the target's privileged roles (attributes, membership in admin-like
//! roles, logins that never expire); [`generate_password`], [`set_password`] and
//! [`verify_login`] are the steps of rotating the password of a shared account Warrant vaults.
//!
//! Layout: `conn` (connections, TLS), `error` ([`PgRolesError`]), `sql` (names, quoting, the
//! marker), `session` ([`AdminSession`]: dropping roles), `discover`, `account` (passwords of
//! vaulted accounts); this file holds the types and creating a role.

mod account;
mod conn;
mod discover;
mod error;
mod session;
mod sql;

use warrant_core::Secret;

pub use crate::account::{generate_password, set_password, verify_login};
pub use crate::conn::{TargetConn, TlsMode, client_tls_config};
pub use crate::discover::{ADMIN_ROLES, PgAccount, discover};
pub use crate::error::PgRolesError;
pub use crate::session::AdminSession;
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
    let password = account::generate_password()?;
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

/// Takes a temporary role away over a connection of its own: see
/// [`AdminSession::drop_temp_role`], which this opens a session for. To drop many roles, open
/// one session ([`TargetConn::session`]) and drop them all over it.
///
/// Idempotent: a role that is already gone is success (`existed: false`), so a retried clean-up
/// converges. A role without Warrant's marker is refused ([`PgRolesError::NotManaged`]) and
/// left untouched.
pub async fn drop_temp_role(
    conn: &TargetConn,
    name: &str,
    owned: &OnDrop,
) -> Result<DropReport, PgRolesError> {
    conn.session().await?.drop_temp_role(name, owned).await
}

/// Every role on the target that carries Warrant's marker, by name (over a connection of its
/// own; [`AdminSession::managed_roles`] reuses a session's).
pub async fn managed_roles(conn: &TargetConn) -> Result<Vec<ManagedRole>, PgRolesError> {
    conn.session().await?.managed_roles().await
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

fn random_hex(n: usize) -> Result<String, PgRolesError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| PgRolesError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

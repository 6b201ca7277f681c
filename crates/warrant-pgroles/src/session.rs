//! [`AdminSession`]: one admin connection over which many temporary roles are dropped.
//!
//! Dropping a role costs two round trips when it owns nothing outside the session's database
//! (the common case), instead of a SCRAM login and five round trips:
//!
//! 1. one statement reads the role (its oid, its comment, whether the reassignment target
//!    exists, the other databases where it owns objects or holds privileges) and — only when
//!    the comment is Warrant's marker and the target exists — terminates its sessions;
//! 2. two messages sent together: one transaction that terminates the sessions again (a login
//!    may have slipped in), reassigns or drops what the role owns and drops the role; then,
//!    after that commit, a last termination of the role's sessions, which acts only when the role
//!    is gone or `NOLOGIN` (so it never runs when the drop failed).
//!
//! No login can outlive the drop: one before the commit is caught by step 2's second message,
//! none is possible after it. When the role owns something in another database (known from
//! step 1), or when step 2's drop fails (typically `2BP01` because one of its sessions created
//! something elsewhere meanwhile), the slow path runs: the role is made `NOLOGIN` (committed)
//! and its sessions terminated, the other databases are visited over connections of their own,
//! then step 2 runs again. So a role whose drop fails is at least left unable to log in.
//!
//! Every message is a single implicit transaction (no `BEGIN`), so a failed drop never leaves
//! the connection inside an aborted transaction, and tasks may share one session: their
//! messages interleave, each still atomic.

use std::collections::BTreeSet;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use crate::sql::{self, MARKER, ident};
use crate::{DropReport, ManagedRole, OnDrop, PgRolesError, TargetConn};

/// One admin connection to a target, for dropping many temporary roles without a login each.
///
/// Open it with [`TargetConn::session`]. Methods take `&self`: tasks may share a session (their
/// statements queue on the one connection) or each hold their own to drop in parallel. When the
/// connection breaks, methods return [`PgRolesError::Disconnected`]
/// ([`is_disconnected`](PgRolesError::is_disconnected)) and the session stays unusable: open a
/// new one and retry (drops are idempotent).
pub struct AdminSession {
    client: Client,
    conn: TargetConn,
    role_state: Statement,
    /// Set when a call found the connection unusable: the driver task may not have noticed yet,
    /// and callers (a pool) must not hand the session out again.
    broken: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession")
            .field("target", &self.conn.label())
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl TargetConn {
    /// Opens an admin session: one connection (one SCRAM login) for many operations, with the
    /// role look-up of [`AdminSession::drop_temp_role`] prepared on it.
    pub async fn session(&self) -> Result<AdminSession, PgRolesError> {
        let client = self.connect().await?;
        let role_state = client
            .prepare_typed(ROLE_STATE, &[Type::TEXT, Type::TEXT, Type::TEXT])
            .await
            .map_err(|e| PgRolesError::sql("preparing the session", &e))?;
        Ok(AdminSession {
            client,
            conn: self.clone(),
            role_state,
            broken: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// The role as step 1 found it.
struct RoleState {
    oid: u32,
    comment: Option<String>,
    target_exists: bool,
    others: Vec<String>,
    terminated: Vec<i32>,
}

/// Step 1, prepared once per session (planning it costs more than running it). Terminates only when the role is Warrant's (the same test as `sql::parse_marker`:
/// the marker and a non-empty grant id) and the reassignment target exists, so that Rust's
/// checks afterwards refuse exactly the roles whose sessions were left alone. The termination
/// sits in an aggregate's `FILTER`, which runs after `WHERE` has kept only the role's sessions.
const ROLE_STATE: &str = "\
WITH r AS (
  SELECT p.oid, c.description AS comment,
         ($2::text IS NULL OR EXISTS (SELECT 1 FROM pg_roles t WHERE t.rolname = $2)) AS target_ok
  FROM pg_roles p
  LEFT JOIN pg_shdescription c ON c.objoid = p.oid AND c.classoid = 'pg_authid'::regclass
  WHERE p.rolname = $1
)
SELECT r.oid, r.comment, r.target_ok,
  array(SELECT DISTINCT d.datname::text FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
        WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = r.oid
          AND d.datname <> current_database() AND d.datallowconn ORDER BY 1),
  (SELECT coalesce(array_agg(a.pid) FILTER (WHERE pg_terminate_backend(a.pid)), '{}')
     FROM pg_stat_get_activity(NULL) a
    WHERE a.usesysid = r.oid AND r.target_ok
      AND starts_with(r.comment, $3) AND length(r.comment) > length($3))
FROM r";

impl AdminSession {
    /// True once the connection is gone; every later call fails with
    /// [`PgRolesError::Disconnected`].
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.broken.load(std::sync::atomic::Ordering::SeqCst) || self.client.is_closed()
    }

    /// The target this session is connected to.
    #[must_use]
    pub fn target(&self) -> &TargetConn {
        &self.conn
    }

    /// Takes a temporary role away: terminates its sessions, reassigns or drops what it owns
    /// (in every database where it owns something), drops it; see the module documentation
    /// for the round trips and why no session outlives it.
    ///
    /// Idempotent: a role that is already gone is success (`existed: false`). A role without
    /// Warrant's marker is refused ([`PgRolesError::NotManaged`]) and left untouched, its
    /// sessions included; so is every role when the [`OnDrop::Reassign`] target is missing
    /// ([`PgRolesError::RoleMissing`]).
    pub async fn drop_temp_role(
        &self,
        name: &str,
        owned: &OnDrop,
    ) -> Result<DropReport, PgRolesError> {
        let Some(state) = self.role_state(name, owned).await? else {
            return Ok(DropReport::default());
        };
        if sql::parse_marker(state.comment.as_deref()).is_none() {
            return Err(PgRolesError::NotManaged {
                role: name.to_owned(),
            });
        }
        if let (OnDrop::Reassign(to), false) = (owned, state.target_exists) {
            return Err(PgRolesError::RoleMissing {
                roles: vec![to.clone()],
            });
        }
        let mut terminated: BTreeSet<i32> = state.terminated.into_iter().collect();
        let mut others = Vec::new();
        if !state.others.is_empty() {
            others = self
                .clear_other_databases(state.oid, name, owned, &mut terminated)
                .await?;
        }
        let mut outcome = self
            .terminate_and_drop(state.oid, name, owned, &mut terminated)
            .await?;
        if others.is_empty() && outcome.is_err() {
            // Typically `2BP01`: one of its sessions created something in another database
            // after step 1. Whatever the cause, the role ends up unable to log in, as with the
            // slow path, even if the retry fails too.
            others = self
                .clear_other_databases(state.oid, name, owned, &mut terminated)
                .await?;
            outcome = self
                .terminate_and_drop(state.oid, name, owned, &mut terminated)
                .await?;
        }
        outcome.map_err(|e| self.error("dropping the role", &e))?;
        let report = DropReport {
            existed: true,
            backends_terminated: terminated.len() as u64,
            other_databases: others,
        };
        tracing::info!(
            target = %self.conn.label(),
            role = %name,
            terminated = report.backends_terminated,
            "dropped temporary role"
        );
        Ok(report)
    }

    /// Every role on the target that carries Warrant's marker, by name.
    pub async fn managed_roles(&self) -> Result<Vec<ManagedRole>, PgRolesError> {
        let rows = self
            .client
            .query_typed(
                "SELECT r.rolname::text, shobj_description(r.oid, 'pg_authid'), \
                   CASE WHEN r.rolvaliduntil IS NULL OR NOT isfinite(r.rolvaliduntil) THEN NULL \
                        ELSE extract(epoch FROM r.rolvaliduntil)::bigint END \
                 FROM pg_roles r \
                 WHERE starts_with(coalesce(shobj_description(r.oid, 'pg_authid'), ''), $1) \
                 ORDER BY 1",
                &[(&MARKER, Type::TEXT)],
            )
            .await
            .map_err(|e| self.error("listing managed roles", &e))?;
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

    /// Step 1 (one round trip); `None` when the role does not exist.
    async fn role_state(
        &self,
        name: &str,
        owned: &OnDrop,
    ) -> Result<Option<RoleState>, PgRolesError> {
        let to = match owned {
            OnDrop::Reassign(to) => Some(to.as_str()),
            OnDrop::Drop => None,
        };
        let row = self
            .client
            .query_opt(&self.role_state, &[&name, &to, &MARKER])
            .await
            .map_err(|e| self.error("looking up the role", &e))?;
        Ok(row.map(|row| RoleState {
            oid: row.get(0),
            comment: row.get(1),
            target_exists: row.get(2),
            others: row.get(3),
            terminated: row.get(4),
        }))
    }

    /// Step 2 (one round trip). The outer error is the session's (the connection, the
    /// termination); the inner one is the drop's, for the caller to look at its SQLSTATE.
    async fn terminate_and_drop(
        &self,
        oid: u32,
        name: &str,
        owned: &OnDrop,
        terminated: &mut BTreeSet<i32>,
    ) -> Result<Result<(), tokio_postgres::Error>, PgRolesError> {
        let role = ident(name);
        // `pg_stat_get_activity(NULL)` rather than the `pg_stat_activity` view: the same rows,
        // but the view costs five times as much to plan, and these statements are planned for
        // every role.
        let drop = format!(
            "SELECT string_agg(pid::text, ',') FILTER (WHERE pg_terminate_backend(pid)) \
             FROM pg_stat_get_activity(NULL) WHERE usesysid = {oid}; \
             {} DROP ROLE IF EXISTS {role};",
            owned_sql(&role, owned)
        );
        // After the drop's commit; acts only if the role is gone or cannot log in, so not
        // after a failed drop.
        let after = format!(
            "SELECT string_agg(pid::text, ',') FILTER (WHERE pg_terminate_backend(pid)) \
             FROM pg_stat_get_activity(NULL) WHERE usesysid = {oid} \
               AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE oid = {oid} AND rolcanlogin)"
        );
        // Both messages go out before either answer comes back (tokio-postgres pipelines
        // requests in the order they are first polled).
        let (dropped, late) = tokio::join!(
            self.client.simple_query(&drop),
            self.client.simple_query(&after)
        );
        let late = late.map_err(|e| self.error("terminating the role's sessions", &e))?;
        terminated.extend(pids(late.as_slice()));
        match dropped {
            Ok(messages) => {
                terminated.extend(pids(messages.as_slice()));
                Ok(Ok(()))
            }
            Err(e) if self.is_broken(&e) => Err(self.error("dropping the role", &e)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// The slow path for roles that own something elsewhere: `NOLOGIN`, terminate, then
    /// `REASSIGN`/`DROP OWNED` in each other database. Returns the databases visited.
    async fn clear_other_databases(
        &self,
        oid: u32,
        name: &str,
        owned: &OnDrop,
        terminated: &mut BTreeSet<i32>,
    ) -> Result<Vec<String>, PgRolesError> {
        let role = ident(name);
        let nologin = format!("ALTER ROLE {role} NOLOGIN");
        let params: [(&(dyn ToSql + Sync), Type); 1] = [(&oid, Type::OID)];
        let (nologin, rest) = tokio::join!(
            self.client.batch_execute(&nologin),
            self.client.query_typed_one(
                "SELECT \
                   (SELECT coalesce(array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)), '{}') \
                      FROM pg_stat_activity WHERE usesysid = $1 \
                       AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE oid = $1 AND rolcanlogin)), \
                   array(SELECT DISTINCT d.datname::text FROM pg_shdepend s \
                         JOIN pg_database d ON d.oid = s.dbid \
                         WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = $1 \
                           AND d.datname <> current_database() AND d.datallowconn ORDER BY 1)",
                &params,
            )
        );
        nologin.map_err(|e| self.error("disabling the role's login", &e))?;
        let row = rest.map_err(|e| self.error("terminating the role's sessions", &e))?;
        let pids: Vec<i32> = row.get(0);
        terminated.extend(pids);
        let others: Vec<String> = row.get(1);
        // REASSIGN/DROP OWNED act on the current database only.
        for db in &others {
            let other = self.conn.connect_to(db).await?;
            other
                .batch_execute(&owned_sql(&role, owned))
                .await
                .map_err(|e| PgRolesError::sql("handling the role's objects", &e))?;
        }
        Ok(others)
    }

    /// Whether `e` means the connection is unusable.
    fn is_broken(&self, e: &tokio_postgres::Error) -> bool {
        e.is_closed()
            || self.client.is_closed()
            || e.as_db_error()
                .is_some_and(|db| matches!(db.severity(), "FATAL" | "PANIC"))
    }

    /// `e` as [`PgRolesError::Disconnected`] when the connection is unusable, else as
    /// [`PgRolesError::Sql`].
    fn error(&self, doing: &'static str, e: &tokio_postgres::Error) -> PgRolesError {
        if self.is_broken(e) {
            self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
            PgRolesError::Disconnected {
                target: self.conn.label(),
                reason: crate::error::describe(e),
            }
        } else {
            PgRolesError::sql(doing, e)
        }
    }
}

/// The pids in the first row of a simple query's answer (`string_agg(pid::text, ',')`).
fn pids(messages: &[SimpleQueryMessage]) -> Vec<i32> {
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or_default()),
            _ => None,
        })
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.parse().ok())
        .collect()
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

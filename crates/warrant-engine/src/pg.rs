//! Temporary PostgreSQL roles for grants on targets of kind `postgres`.
//!
//! The target's admin password is sealed by the vault (`warrant target set-secret`). When the
//! holder of an active grant asks for credentials (`warrant db-creds GRANT`), Warrant creates a
//! login role on the target (`warrant-pgroles`: valid until the grant's end, member of the role's
//! `db_roles`) and hands the password over once. When the grant closes (end, revocation,
//! leaver), the clean-up job drops the role — NOLOGIN, its sessions terminated, what it owns
//! reassigned to the admin — and is retried until it succeeds.

use std::time::Duration;

use warrant_audit::Event;
use warrant_core::{Grant, GrantStatus, Secret, Target, TargetKind, Timestamp};
use warrant_pgroles::{AdminSession, OnDrop, TargetConn, TempRoleSpec, TlsMode};

use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// The prefix of every temporary role Warrant creates.
pub const ROLE_PREFIX: &str = "w_";

pub(crate) fn secret_aad(target: &str) -> String {
    format!("target-secret:{target}")
}

/// Credentials for a temporary database role, shown once.
#[derive(Debug)]
pub struct DbCreds {
    /// Host to connect to.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub dbname: String,
    /// The role's name.
    pub user: String,
    /// Its password.
    pub password: Secret<String>,
    /// When it stops working (the grant's end).
    pub valid_until: Timestamp,
    /// The grant.
    pub grant_id: String,
}

fn pg_error(e: warrant_pgroles::PgRolesError) -> EngineError {
    EngineError::unavailable(e.code(), format!("the target database: {e}"))
}

/// The target's `host:port` (`[v6]:port` too), `default_port` when no port is given.
pub(crate) fn host_port(target: &Target, default_port: u16) -> Result<(String, u16)> {
    let addr = target.address.as_deref().ok_or_else(|| {
        EngineError::invalid(
            "target_address_missing",
            format!("target {} has no address: set one (host:port)", target.name),
        )
    })?;
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_matches(['[', ']']).to_owned(),
            p.parse::<u16>().map_err(|_| {
                EngineError::invalid(
                    "target_address_invalid",
                    format!("target {}: {addr:?} is not host:port", target.name),
                )
            })?,
        ),
        None => (addr.to_owned(), default_port),
    };
    Ok((host, port))
}

/// The target's TLS setting; absent, plain TCP only to a loopback address.
pub(crate) fn tls_mode(target: &Target, host: &str) -> TlsMode {
    let require = || TlsMode::Require {
        ca_file: target
            .connector
            .ca_file
            .as_ref()
            .map(std::path::PathBuf::from),
    };
    match target.connector.tls.as_deref() {
        Some("disable") => TlsMode::Disable,
        Some(_) => require(),
        None => {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                TlsMode::Disable
            } else {
                require()
            }
        }
    }
}

/// What happens to a temporary role's objects when it is dropped, as the target says.
pub(crate) fn on_drop(target: &Target, conn: &TargetConn) -> OnDrop {
    match target.connector.owned_objects.as_deref() {
        Some("drop") => OnDrop::Drop,
        _ => OnDrop::Reassign(conn.admin_user.clone()),
    }
}

impl Engine {
    /// Stores a target's admin password, sealed (admins).
    pub async fn set_target_secret(
        &self,
        actor: &Actor,
        target: &str,
        password: Secret<String>,
    ) -> Result<()> {
        require_admin(actor)?;
        if password.expose().is_empty() {
            return Err(EngineError::invalid(
                "secret_empty",
                "the secret on standard input is empty",
            ));
        }
        let vault = self.vault()?;
        let sealed = vault
            .seal(&secret_aad(target), password.expose().as_bytes())
            .map_err(|e| EngineError::internal(format!("sealing a target secret: {}", e.code())))?
            .to_string();
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.q()
            .target(target)
            .await?
            .ok_or_else(|| crate::catalogue::target_not_found(target))?;
        tx.w()
            .await?
            .set_target_secret(target, &sealed, now)
            .await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::TargetSecretSet {
                target: target.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.inner.pg_sessions.clear().await;
        Ok(())
    }

    pub(crate) async fn target_conn(&self, target: &Target) -> Result<TargetConn> {
        let (host, port) = host_port(target, 5432)?;
        let admin_user = target.admin_user.clone().ok_or_else(|| {
            EngineError::invalid(
                "target_admin_missing",
                format!(
                    "target {} names no admin_user: set it in the org file",
                    target.name
                ),
            )
        })?;
        let sealed = {
            let mut r = self.store().read().await?;
            r.q().target_secret(target.name.as_str()).await?
        }
        .ok_or_else(|| {
            EngineError::invalid(
                "target_secret_missing",
                format!(
                    "target {} has no admin password: an admin sets it with `warrant target set-secret {} --password-stdin`",
                    target.name, target.name
                ),
            )
        })?;
        let sealed: warrant_vault::Sealed = sealed
            .parse()
            .map_err(|_| EngineError::internal("a stored target secret does not parse"))?;
        let plain = self
            .vault()?
            .open(&secret_aad(target.name.as_str()), &sealed)
            .map_err(|e| EngineError::internal(format!("opening a target secret: {}", e.code())))?;
        let password = String::from_utf8(plain.to_vec())
            .map_err(|_| EngineError::internal("a stored target secret is not text"))?;
        Ok(TargetConn {
            tls: tls_mode(target, &host),
            host,
            port,
            dbname: "postgres".into(),
            admin_user,
            admin_password: Secret::new(password),
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// Creates the temporary role for the actor's active grant `grant_id` and returns its
    /// credentials, once: a grant gets one role, shown one time.
    pub async fn db_creds(&self, actor: &Actor, grant_id: &str) -> Result<DbCreds> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let now = self.now();
        let (grant, target, role) = {
            let mut r = self.store().read().await?;
            let not_yours = || {
                EngineError::not_found("grant_not_found", format!("you hold no grant {grant_id}"))
            };
            let g = r.q().grant(grant_id).await?.ok_or_else(not_yours)?;
            if g.identity != actor.name {
                return Err(not_yours());
            }
            if g.status_at(now) != GrantStatus::Active {
                return Err(EngineError::conflict(
                    "grant_not_active",
                    format!("grant {grant_id} is not active"),
                ));
            }
            if r.q().db_credential(grant_id).await?.is_some() {
                return Err(EngineError::conflict(
                    "credential_delivered",
                    "the credentials of this grant were already handed out, once: request a new grant for new ones",
                ));
            }
            let t = r
                .q()
                .target(g.target.as_str())
                .await?
                .ok_or_else(|| crate::catalogue::target_not_found(g.target.as_str()))?;
            let role = r
                .q()
                .role(g.target.as_str(), g.role.as_str())
                .await?
                .ok_or_else(|| {
                    EngineError::not_found("role_not_found", "the grant's role is gone")
                })?;
            (g, t, role)
        };
        if target.kind != TargetKind::Postgres || role.db_roles.is_empty() {
            return Err(EngineError::invalid(
                "no_db_roles",
                format!(
                    "{} on {} maps to no database roles: an admin sets `db_roles` in the org file",
                    role.name, target.name
                ),
            ));
        }
        let conn = self.target_conn(&target).await?;
        let made = warrant_pgroles::create_temp_role(
            &conn,
            &TempRoleSpec {
                prefix: ROLE_PREFIX,
                identity: actor.name.as_str(),
                grant_id: &grant.id,
                valid_until: grant.ends_at.unix_seconds(),
                member_of: &role.db_roles,
            },
        )
        .await
        .map_err(pg_error)?;
        let mut tx = self.store().begin().await?;
        // The grant may have closed while the role was being made: then it goes at once.
        let still = tx
            .q()
            .grant(grant_id)
            .await?
            .is_some_and(|g| g.status_at(self.now()) == GrantStatus::Active);
        let recorded = if still && tx.q().db_credential(grant_id).await?.is_none() {
            tx.w()
                .await?
                .insert_db_credential(grant_id, target.name.as_str(), &made.name, now)
                .await?;
            tx.audit(
                now,
                Some(actor.name.as_str()),
                &Event::CredentialCreated {
                    identity: actor.name.to_string(),
                    target: target.name.to_string(),
                    grant_id: grant_id.to_owned(),
                    role_name: made.name.clone(),
                },
            )
            .await?;
            tx.commit().await?;
            true
        } else {
            tx.rollback().await?;
            false
        };
        if !recorded {
            let _ =
                warrant_pgroles::drop_temp_role(&conn, &made.name, &on_drop(&target, &conn)).await;
            return Err(EngineError::conflict(
                "grant_not_active",
                format!("grant {grant_id} closed (or its credentials were handed out) meanwhile"),
            ));
        }
        Ok(DbCreds {
            host: conn.host,
            port: conn.port,
            dbname: conn.dbname,
            user: made.name,
            password: made.password,
            valid_until: grant.ends_at,
            grant_id: grant.id,
        })
    }

    /// The clean-up of a closed grant's temporary roles — the one handed out with
    /// `db-creds`, and those the PostgreSQL gateway logged in with (registered as a clean-up
    /// job; retried until it succeeds). A grant without any has nothing to do. Returns a
    /// `credential.dropped` event per role, which the scheduler records with the job.
    pub async fn pg_cleanup(&self, grant: &Grant) -> std::result::Result<Vec<Event>, String> {
        let (roles, target) = {
            let mut r = self.store().read().await.map_err(|e| e.to_string())?;
            let mut roles: Vec<(String, String)> = r
                .q()
                .gateway_db_roles(&grant.id)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(row) = r
                .q()
                .db_credential(&grant.id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|r| r.dropped_at.is_none())
            {
                roles.push((row.target, row.role_name));
            }
            let Some((target_name, _)) = roles.first() else {
                return Ok(Vec::new());
            };
            let target = r.q().target(target_name).await.map_err(|e| e.to_string())?;
            (roles, target)
        };
        let target = target.ok_or_else(|| {
            let names: Vec<&str> = roles.iter().map(|(_, n)| n.as_str()).collect();
            format!(
                "target {} is gone; drop role(s) {} by hand",
                roles[0].0,
                names.join(", ")
            )
        })?;
        let conn = self.target_conn(&target).await.map_err(|e| e.message)?;
        let owned = on_drop(&target, &conn);
        let session = match self.inner.pg_sessions.take(&conn).await {
            Some(s) => s,
            None => conn
                .session()
                .await
                .map_err(|e| format!("{} ({})", e, e.code()))?,
        };
        let mut events = Vec::with_capacity(roles.len());
        for (_, role_name) in &roles {
            let report = session
                .drop_temp_role(role_name, &owned)
                .await
                .map_err(|e| format!("{} ({})", e, e.code()))?;
            events.push(Event::CredentialDropped {
                target: target.name.to_string(),
                grant_id: grant.id.clone(),
                role_name: role_name.clone(),
                backends_terminated: report.backends_terminated,
            });
        }
        self.inner.pg_sessions.give(&conn, session).await;
        Ok(events)
    }
}

/// Idle admin sessions to PostgreSQL targets, reused by clean-ups so that many roles ending
/// together do not each pay a login. Keyed by where, how (TLS) and as whom they log in (the
/// password's hash included, so a new admin secret never reuses an old session); a broken
/// session is not given back.
#[derive(Default)]
pub(crate) struct PgSessions(
    tokio::sync::Mutex<std::collections::HashMap<String, Vec<AdminSession>>>,
);

/// Idle sessions kept per target.
const IDLE_SESSIONS: usize = 16;

fn session_key(conn: &TargetConn) -> String {
    use sha2::Digest;
    let pw = sha2::Sha256::digest(conn.admin_password.expose().as_bytes());
    format!(
        "{}:{}/{} {} {} {:?}",
        conn.host,
        conn.port,
        conn.dbname,
        conn.admin_user,
        hex::encode(pw),
        conn.tls
    )
}

impl PgSessions {
    async fn take(&self, conn: &TargetConn) -> Option<AdminSession> {
        let key = session_key(conn);
        let mut m = self.0.lock().await;
        let idle = m.get_mut(&key)?;
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    async fn give(&self, conn: &TargetConn, s: AdminSession) {
        if s.is_closed() {
            return;
        }
        let key = session_key(conn);
        let mut m = self.0.lock().await;
        let idle = m.entry(key).or_default();
        if idle.len() < IDLE_SESSIONS {
            idle.push(s);
        }
    }

    /// Forgets every idle session (a target's admin secret changed).
    pub(crate) async fn clear(&self) {
        self.0.lock().await.clear();
    }
}

/// The database clean-up as a [`crate::CleanupFn`], for an engine that is still to be built
/// (an engine takes its clean-ups when it is made): put the engine in the returned cell once it
/// exists; until then the clean-up fails and is retried.
pub fn pg_cleanup_fn() -> (
    crate::CleanupFn,
    std::sync::Arc<std::sync::OnceLock<Engine>>,
) {
    let cell: std::sync::Arc<std::sync::OnceLock<Engine>> = std::sync::Arc::default();
    let for_cleanup = std::sync::Arc::clone(&cell);
    let f: crate::CleanupFn = std::sync::Arc::new(move |g| {
        let cell = std::sync::Arc::clone(&for_cleanup);
        Box::pin(async move {
            match cell.get() {
                Some(e) => e.pg_cleanup(&g).await,
                None => Err("the engine is starting".into()),
            }
        })
    });
    (f, cell)
}

/// What a reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// PostgreSQL targets looked at.
    pub targets: u64,
    /// Targets that could not be reached (retried at the next pass).
    pub unreachable: u64,
    /// Temporary roles that no active grant backs any more, dropped.
    pub dropped: u64,
}

impl Engine {
    /// Drops every temporary role Warrant made that no active grant backs any more (a
    /// clean-up that was lost, a crash between creating a role and recording it). Run at start
    /// and periodically by `warrant serve`. A role whose grant is active stays, recorded or not
    /// (its `db-creds` may be in flight).
    pub async fn reconcile_pg(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        let targets = {
            let mut r = self.store().read().await?;
            let mut with_secret = Vec::new();
            for t in r.q().targets().await? {
                if t.kind == TargetKind::Postgres
                    && r.q().target_secret(t.name.as_str()).await?.is_some()
                {
                    with_secret.push(t);
                }
            }
            with_secret
        };
        for target in targets {
            report.targets += 1;
            let conn = self.target_conn(&target).await?;
            let roles = match warrant_pgroles::managed_roles(&conn).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(target = %target.name, error = %e, "reconciliation: target unreachable");
                    report.unreachable += 1;
                    continue;
                }
            };
            for role in roles {
                let now = self.now();
                let backed = {
                    let mut r = self.store().read().await?;
                    r.q()
                        .grant(&role.grant_id)
                        .await?
                        .is_some_and(|g| g.status_at(now) == GrantStatus::Active)
                };
                if backed {
                    continue;
                }
                let dropped = match warrant_pgroles::drop_temp_role(
                    &conn,
                    &role.name,
                    &on_drop(&target, &conn),
                )
                .await
                {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(role = %role.name, error = %e, "reconciliation: drop failed; retried at the next pass");
                        continue;
                    }
                };
                let mut tx = self.store().begin().await?;
                tx.w()
                    .await?
                    .mark_db_credential_dropped(&role.grant_id, &role.name, now)
                    .await?;
                tx.audit(
                    now,
                    None,
                    &Event::CredentialDropped {
                        target: target.name.to_string(),
                        grant_id: role.grant_id.clone(),
                        role_name: role.name.clone(),
                        backends_terminated: dropped.backends_terminated,
                    },
                )
                .await?;
                tx.commit().await?;
                report.dropped += 1;
            }
        }
        Ok(report)
    }
}

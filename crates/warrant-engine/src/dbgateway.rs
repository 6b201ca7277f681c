//! What the PostgreSQL gateway asks the engine: whose database token this is, and — for a
//! person, a target and maybe a role — whether they hold an active grant there now and with
//! which credential to log in.
//!
//! - Database tokens (`warrant db-token`) are bearer tokens of scope `db`: minutes long
//!   (10 by default, 1 hour at most), usable only as the gateway's password, bound to the
//!   identity that typed them as `user`; making one needs a fresh second factor when the person
//!   has one, and a token made with a fresh factor carries it, which a role whose rule requires
//!   MFA needs at the gateway.
//! - The credential the gateway injects: the role's vaulted account when the role names one
//!   (`account:`), else a temporary role of the grant (`db_roles`), made at the first
//!   connection and reused by the next ones of this server process. Its password lives only in
//!   this process's memory; the role is recorded (`gateway_db_roles`) so the grant's clean-up
//!   drops it with the grant, like the one `db-creds` hands out.

use std::collections::HashMap;

use warrant_audit::Event;
use warrant_core::{GrantStatus, IdentityStatus, Name, Secret, TargetKind, Timestamp};
use warrant_pgroles::{TempRoleSpec, TlsMode};

use crate::auth::{IssuedToken, Scope, TokenSpec, issue_token};
use crate::error::{EngineError, Result};
use crate::gateway::denied;
use crate::pg::{ROLE_PREFIX, host_port, on_drop};
use crate::{Actor, Engine};

/// A database token's life unless asked otherwise.
pub const DB_TOKEN_DEFAULT_SECS: i64 = 10 * 60;
/// The longest a database token may live.
pub const DB_TOKEN_MAX_SECS: i64 = 60 * 60;

/// Where and how the gateway logs in for one session.
pub struct DbUpstream {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security, as for Warrant's admin connections to the target.
    pub tls: TlsMode,
    /// The database.
    pub database: String,
    /// The role to log in as.
    pub user: String,
    /// Its password.
    pub password: Secret<String>,
    /// The grant.
    pub grant_id: String,
    /// The role the grant is for.
    pub role: String,
    /// When the grant ends.
    pub ends_at: Timestamp,
    /// Statement log: `strict`, `best-effort` or `off`.
    pub record: String,
    /// Log the values bound to prepared statements too.
    pub record_input: bool,
}

/// The gateway's temporary roles made by this process, by grant: (role name, password).
#[derive(Default)]
pub(crate) struct GatewayRoles(tokio::sync::Mutex<HashMap<String, (String, Secret<String>)>>);

impl Engine {
    /// Issues a database token for the actor: the password at the PostgreSQL gateway, for
    /// `ttl_secs` (default 10 minutes, at most an hour). Shown once.
    pub async fn create_db_token(
        &self,
        actor: &Actor,
        ttl_secs: Option<i64>,
    ) -> Result<IssuedToken> {
        if actor.scope != Scope::Full {
            return Err(EngineError::forbidden(
                "scope_insufficient",
                "database tokens are made from a full sign-in (warrant login)",
            ));
        }
        let ttl = ttl_secs.unwrap_or(DB_TOKEN_DEFAULT_SECS);
        if !(1..=DB_TOKEN_MAX_SECS).contains(&ttl) {
            return Err(EngineError::invalid(
                "invalid_ttl",
                format!(
                    "a database token lives at most {} minutes: give --ttl up to 1h",
                    DB_TOKEN_MAX_SECS / 60
                ),
            ));
        }
        if self.has_mfa(actor.name.as_str()).await? && !crate::mfa::is_fresh(actor, self.now()) {
            return Err(crate::mfa::step_up_required(
                "a database token needs a fresh second factor",
            ));
        }
        let now = self.now();
        // The token carries the factor only while it is fresh, so the gateway can honour a
        // rule's `require_mfa` for a token made right after `warrant mfa verify`.
        let mfa_at = actor.mfa_at.filter(|_| crate::mfa::is_fresh(actor, now));
        let mut tx = self.store().begin().await?;
        let token = issue_token(
            &mut tx,
            &actor.name,
            TokenSpec {
                kind: "db",
                label: "database token",
                expires_at: Some(now.plus_secs(ttl)),
                scope: Scope::Db,
                mfa_at,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The active identity a database token belongs to, if it is `claimed` (the `user` the
    /// client gave), and whether the token carries a second factor (one proved within minutes
    /// before the token was made). `None` for anything else: an unknown, expired or revoked
    /// token, a token of another scope or another person.
    pub async fn db_token_identity(
        &self,
        claimed: &str,
        token: &Secret<String>,
    ) -> Result<Option<(Name, bool)>> {
        match self.authenticate(token.expose()).await {
            Ok(a) if a.scope == Scope::Db && a.name.as_str().eq_ignore_ascii_case(claimed) => {
                let second_factor = a.mfa_at.is_some();
                Ok(Some((a.name, second_factor)))
            }
            Ok(_) => Ok(None),
            Err(e) if e.code == "invalid_token" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The upstream of a PostgreSQL gateway session for `identity` on `target` (and `role`,
    /// needed when several of the person's active grants there give database access), on
    /// `database` (default `postgres`). `second_factor`: whether the person's token carries one;
    /// a grant whose rule requires MFA is refused without it. Refusals say what to do.
    pub async fn db_gateway_upstream(
        &self,
        identity: &str,
        target: &str,
        role: Option<&str>,
        database: Option<&str>,
        second_factor: bool,
    ) -> Result<DbUpstream> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let now = self.now();
        let (t, grant, role_def, vaulted) = {
            let mut r = self.store().read().await?;
            let t = r
                .q()
                .target(target)
                .await?
                .filter(|t| t.kind == TargetKind::Postgres)
                .ok_or_else(|| {
                    denied(format!("no PostgreSQL target {target} (warrant targets)"))
                })?;
            let who = r
                .q()
                .identity(identity)
                .await?
                .filter(|i| i.status == IdentityStatus::Active)
                .ok_or_else(|| denied("your identity is not active"))?;
            let (grant, rd) = crate::gateway::the_grant(
                &mut r.q(),
                &who.name,
                target,
                role,
                now,
                |rd| rd.account.is_some() || !rd.db_roles.is_empty(),
                ("with database access", &format!("dbname={target}+ROLE")),
            )
            .await?;
            if !second_factor && crate::gateway::rule_requires_mfa(&self.policy(), &grant) {
                return Err(denied(format!(
                    "{} on {target} requires a second factor: run `warrant mfa verify CODE`, then make a new token with `warrant db-token`",
                    grant.role
                )));
            }
            let vaulted = match &rd.account {
                Some(a) => Some(r.q().vaulted_account(target, a).await?.ok_or_else(|| {
                    denied(format!(
                        "the role's account {a} is not in the vault: tell an admin"
                    ))
                })?),
                None => None,
            };
            (t, grant, rd, vaulted)
        };
        let (host, port) = host_port(&t, 5432)?;
        let tls = crate::pg::tls_mode(&t, &host);
        let (user, password) = match vaulted {
            Some(row) => {
                let secret = self.open_text(
                    &crate::accounts::account_aad(target, &row.name),
                    &row.sealed,
                )?;
                (row.name, secret)
            }
            None => self.gateway_role(&t, &grant, &role_def.db_roles).await?,
        };
        Ok(DbUpstream {
            host,
            port,
            tls,
            database: database.unwrap_or("postgres").to_owned(),
            user,
            password,
            grant_id: grant.id.clone(),
            role: grant.role.to_string(),
            ends_at: grant.ends_at,
            record: role_def.record.clone().unwrap_or_else(|| "strict".into()),
            record_input: role_def.record_input,
        })
    }

    /// The grant's temporary role for the gateway: the one this process made, or a new one
    /// (recorded and audited; dropped by the grant's clean-up). Made on a task of its own, so
    /// that a caller that gives up waiting cannot leave a role made on the target but not
    /// recorded for the clean-up.
    async fn gateway_role(
        &self,
        target: &warrant_core::Target,
        grant: &warrant_core::Grant,
        db_roles: &[String],
    ) -> Result<(String, Secret<String>)> {
        let engine = self.clone();
        let (target, grant, db_roles) = (target.clone(), grant.clone(), db_roles.to_vec());
        tokio::spawn(async move { engine.make_gateway_role(&target, &grant, &db_roles).await })
            .await
            .map_err(|e| EngineError::internal(format!("making a gateway role: {e}")))?
    }

    async fn make_gateway_role(
        &self,
        target: &warrant_core::Target,
        grant: &warrant_core::Grant,
        db_roles: &[String],
    ) -> Result<(String, Secret<String>)> {
        let mut made = self.inner.gateway_roles.0.lock().await;
        if let Some((name, password)) = made.get(&grant.id) {
            return Ok((name.clone(), password.clone()));
        }
        let conn = self.target_conn(target).await?;
        let role = warrant_pgroles::create_temp_role(
            &conn,
            &TempRoleSpec {
                prefix: ROLE_PREFIX,
                identity: grant.identity.as_str(),
                grant_id: &grant.id,
                valid_until: grant.ends_at.unix_seconds(),
                member_of: db_roles,
            },
        )
        .await
        .map_err(|e| EngineError::unavailable(e.code(), format!("the target database: {e}")))?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        // The grant may have closed while the role was being made: then it goes at once.
        let still = tx
            .q()
            .grant(&grant.id)
            .await?
            .is_some_and(|g| g.status_at(now) == GrantStatus::Active);
        if !still {
            tx.rollback().await?;
            let _ =
                warrant_pgroles::drop_temp_role(&conn, &role.name, &on_drop(target, &conn)).await;
            return Err(denied(format!("grant {} closed meanwhile", grant.id)));
        }
        tx.w()
            .await?
            .insert_gateway_db_role(&grant.id, target.name.as_str(), &role.name, now)
            .await?;
        tx.audit(
            now,
            None,
            &Event::CredentialCreated {
                identity: grant.identity.to_string(),
                target: target.name.to_string(),
                grant_id: grant.id.clone(),
                role_name: role.name.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        // Forget roles of grants that are over (their clean-up drops them).
        let mut r = self.store().read().await?;
        let mut over = Vec::new();
        for id in made.keys() {
            if !r
                .q()
                .grant(id)
                .await?
                .is_some_and(|g| g.status_at(now) == GrantStatus::Active)
            {
                over.push(id.clone());
            }
        }
        for id in over {
            made.remove(&id);
        }
        made.insert(grant.id.clone(), (role.name.clone(), role.password.clone()));
        Ok((role.name, role.password))
    }
}

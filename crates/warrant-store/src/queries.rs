//! Every statement Warrant runs, as methods on [`Q`] (reads) and [`W`] (writes).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use warrant_audit::Record;
use warrant_core::model::rule_id;
use warrant_core::{
    ActivationDuration, ActivationSettings, Approval, ApprovalStage, ConnectorSettings, Grant,
    GrantStatus, Group, Identity, IdentityStatus, Name, Request, RequestStatus, Rule, Source,
    Subject, SystemRole, Target, TargetKind, TargetRole, Timestamp,
};

use crate::{Result, StoreError};

/// Read queries over a connection or a transaction.
#[derive(Debug)]
pub struct Q<'c>(pub(crate) &'c mut AnyConnection);

/// Write statements; only a [`crate::WriteTx`] hands these out.
#[derive(Debug)]
pub struct W<'c>(pub(crate) &'c mut AnyConnection);

fn corrupt(table: &'static str, column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        detail: detail.to_string(),
    }
}

fn name(row: &AnyRow, table: &'static str, col: &'static str) -> Result<Name> {
    let s: String = row.try_get(col)?;
    Name::new(s).map_err(|e| corrupt(table, col, e))
}

fn opt_name(row: &AnyRow, table: &'static str, col: &'static str) -> Result<Option<Name>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Name::new(s).map_err(|e| corrupt(table, col, e)))
        .transpose()
}

fn ts(row: &AnyRow, col: &'static str) -> Result<Timestamp> {
    Ok(Timestamp::from_millis(row.try_get(col)?))
}

fn opt_ts(row: &AnyRow, col: &'static str) -> Result<Option<Timestamp>> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(Timestamp::from_millis))
}

const IDENTITY_COLS: &str =
    "name, display_name, email, status, manager, system_role, created_at, source, external_id";

fn source(row: &AnyRow, table: &'static str) -> Result<Source> {
    let s: String = row.try_get("source")?;
    Source::parse(&s).ok_or_else(|| corrupt(table, "source", &s))
}

fn identity(row: &AnyRow) -> Result<Identity> {
    let status: String = row.try_get("status")?;
    let role: String = row.try_get("system_role")?;
    Ok(Identity {
        name: name(row, "identities", "name")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        status: IdentityStatus::parse(&status)
            .ok_or_else(|| corrupt("identities", "status", &status))?,
        manager: opt_name(row, "identities", "manager")?,
        system_role: SystemRole::parse(&role)
            .ok_or_else(|| corrupt("identities", "system_role", &role))?,
        created_at: ts(row, "created_at")?,
        source: source(row, "identities")?,
        external_id: row.try_get("external_id")?,
    })
}

const GROUP_COLS: &str = "name, description, source, external_id";

fn group(row: &AnyRow) -> Result<Group> {
    Ok(Group {
        name: name(row, "groups", "name")?,
        description: row.try_get("description")?,
        source: source(row, "groups")?,
        external_id: row.try_get("external_id")?,
    })
}

fn target(row: &AnyRow) -> Result<Target> {
    let kind: String = row.try_get("kind")?;
    Ok(Target {
        name: name(row, "targets", "name")?,
        kind: TargetKind::parse(&kind).ok_or_else(|| corrupt("targets", "kind", &kind))?,
        address: row.try_get("address")?,
        owner: name(row, "targets", "owner")?,
        risk_tier: row.try_get("risk_tier")?,
        description: row.try_get("description")?,
        admin_user: row.try_get("admin_user")?,
        host_key: row.try_get("host_key")?,
        connector: {
            let c: Option<String> = row.try_get("connector")?;
            match c {
                Some(c) => {
                    serde_json::from_str(&c).map_err(|e| corrupt("targets", "connector", e))?
                }
                None => ConnectorSettings::default(),
            }
        },
    })
}

/// Connector settings of a role, stored as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RoleConfig {
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    db_roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    record_input: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forwarding: Vec<String>,
}

fn role(row: &AnyRow) -> Result<TargetRole> {
    let config: String = row.try_get("config")?;
    let c: RoleConfig = serde_json::from_str(&config).map_err(|e| corrupt("roles", "config", e))?;
    Ok(TargetRole {
        target: name(row, "roles", "target")?,
        name: name(row, "roles", "name")?,
        principals: c.principals,
        login: c.login,
        db_roles: c.db_roles,
        account: c.account,
        record: c.record,
        record_input: c.record_input,
        forwarding: c.forwarding,
    })
}

/// Activation settings, stored as JSON.
#[derive(Debug, Serialize, Deserialize)]
struct StoredSettings {
    max_duration_secs: i64,
    require_reason: bool,
    ticket_pattern: Option<String>,
    require_mfa: bool,
    approvals: Vec<ApprovalStage>,
}

/// The stored JSON of a rule's settings (also what the audit event records).
pub fn settings_json(s: &ActivationSettings) -> serde_json::Value {
    serde_json::to_value(StoredSettings {
        max_duration_secs: s.max_duration.secs(),
        require_reason: s.require_reason,
        ticket_pattern: s.ticket_pattern.clone(),
        require_mfa: s.require_mfa,
        approvals: s.approvals.clone(),
    })
    .unwrap_or_default()
}

fn rule(row: &AnyRow) -> Result<Rule> {
    let kind: String = row.try_get("subject_kind")?;
    let subject = name(row, "rules", "subject")?;
    let subject = match kind.as_str() {
        "identity" => Subject::Identity(subject),
        "group" => Subject::Group(subject),
        other => return Err(corrupt("rules", "subject_kind", other)),
    };
    let settings: String = row.try_get("settings")?;
    let s: StoredSettings =
        serde_json::from_str(&settings).map_err(|e| corrupt("rules", "settings", e))?;
    Ok(Rule {
        subject,
        target: name(row, "rules", "target")?,
        role: name(row, "rules", "role")?,
        settings: ActivationSettings {
            max_duration: ActivationDuration::from_secs(s.max_duration_secs)
                .map_err(|e| corrupt("rules", "settings", e))?,
            require_reason: s.require_reason,
            ticket_pattern: s.ticket_pattern,
            require_mfa: s.require_mfa,
            approvals: s.approvals,
        },
    })
}

const REQUEST_COLS: &str = "id, identity, target, role, duration_secs, reason, ticket, start_at, rule_id, stages, current_stage, status, created_at, expires_at, decided_at, decided_by, note";

fn request(row: &AnyRow) -> Result<Request> {
    let status: String = row.try_get("status")?;
    let stages: String = row.try_get("stages")?;
    let current_stage: i64 = row.try_get("current_stage")?;
    Ok(Request {
        id: row.try_get("id")?,
        identity: name(row, "requests", "identity")?,
        target: name(row, "requests", "target")?,
        role: name(row, "requests", "role")?,
        duration: ActivationDuration::from_secs(row.try_get("duration_secs")?)
            .map_err(|e| corrupt("requests", "duration_secs", e))?,
        reason: row.try_get("reason")?,
        ticket: row.try_get("ticket")?,
        start_at: opt_ts(row, "start_at")?,
        rule_id: row.try_get("rule_id")?,
        stages: serde_json::from_str(&stages).map_err(|e| corrupt("requests", "stages", e))?,
        current_stage: u32::try_from(current_stage)
            .map_err(|e| corrupt("requests", "current_stage", e))?,
        status: RequestStatus::parse(&status)
            .ok_or_else(|| corrupt("requests", "status", &status))?,
        approvals: Vec::new(),
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        decided_at: opt_ts(row, "decided_at")?,
        decided_by: opt_name(row, "requests", "decided_by")?,
        note: row.try_get("note")?,
    })
}

const GRANT_COLS: &str = "id, request_id, identity, target, role, rule_id, starts_at, ends_at, status, revoked_at, revoked_by, revoke_reason";

fn grant(row: &AnyRow) -> Result<Grant> {
    let status: String = row.try_get("status")?;
    Ok(Grant {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        identity: name(row, "grants", "identity")?,
        target: name(row, "grants", "target")?,
        role: name(row, "grants", "role")?,
        rule_id: row.try_get("rule_id")?,
        starts_at: ts(row, "starts_at")?,
        ends_at: ts(row, "ends_at")?,
        status: GrantStatus::parse(&status).ok_or_else(|| corrupt("grants", "status", &status))?,
        revoked_at: opt_ts(row, "revoked_at")?,
        revoked_by: opt_name(row, "grants", "revoked_by")?,
        revoke_reason: row.try_get("revoke_reason")?,
    })
}

/// Clean-up work owed after a grant closed. Never deleted: done rows keep `done_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    /// Unique id.
    pub id: String,
    /// What to do (`grant_cleanup`).
    pub kind: String,
    /// The grant concerned.
    pub grant_id: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it is next due.
    pub next_at: Timestamp,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it completed.
    pub done_at: Option<Timestamp>,
}

fn job(row: &AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        grant_id: row.try_get("grant_id")?,
        attempts: row.try_get("attempts")?,
        next_at: ts(row, "next_at")?,
        last_error: row.try_get("last_error")?,
        created_at: ts(row, "created_at")?,
        done_at: opt_ts(row, "done_at")?,
    })
}

/// A stored token (its secret only as a hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id.
    pub id: String,
    /// Whose.
    pub identity: Name,
    /// `session` or `api`.
    pub kind: String,
    /// Label.
    pub label: String,
    /// SHA-256 of the secret part (hex).
    pub secret_hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expiry.
    pub expires_at: Option<Timestamp>,
    /// Revocation.
    pub revoked_at: Option<Timestamp>,
    /// What it may do: `full` (the holder's rights) or `scim` (provisioning only).
    pub scope: String,
    /// Last use, recorded at most once a minute (idle timeout of sessions).
    pub last_used_at: Option<Timestamp>,
    /// When the holder last proved a second factor in this session.
    pub mfa_at: Option<Timestamp>,
}

/// A second factor (TOTP seed or WebAuthn credential), its secret sealed by the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRow {
    /// Public id.
    pub id: String,
    /// Whose.
    pub identity: Name,
    /// `totp` or `webauthn`.
    pub kind: String,
    /// Label shown in listings.
    pub label: String,
    /// The sealed secret (vault text form) or, for WebAuthn, the public credential JSON.
    pub secret: String,
    /// When enrolment was confirmed with a first code; unconfirmed factors prove nothing.
    pub confirmed_at: Option<Timestamp>,
    /// The last TOTP step accepted (each code works once).
    pub last_step: Option<i64>,
    /// Last successful use.
    pub last_used_at: Option<Timestamp>,
    /// Created.
    pub created_at: Timestamp,
}

fn factor(row: &AnyRow) -> Result<FactorRow> {
    Ok(FactorRow {
        id: row.try_get("id")?,
        identity: name(row, "mfa_factors", "identity")?,
        kind: row.try_get("kind")?,
        label: row.try_get("label")?,
        secret: row.try_get("secret")?,
        confirmed_at: opt_ts(row, "confirmed_at")?,
        last_step: row.try_get("last_step")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        created_at: ts(row, "created_at")?,
    })
}

const TOKEN_COLS: &str = "t.id, t.identity, t.kind, t.label, t.secret_hash, t.created_at, t.expires_at, t.revoked_at, t.scope, t.last_used_at, t.mfa_at";

fn token(row: &AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        identity: name(row, "tokens", "identity")?,
        kind: row.try_get("kind")?,
        label: row.try_get("label")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: ts(row, "created_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        scope: row.try_get("scope")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        mfa_at: opt_ts(row, "mfa_at")?,
    })
}

pub(crate) fn record(row: &AnyRow) -> Result<Record> {
    Ok(Record {
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at")?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        data: row.try_get("data")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Filters for reading the audit trail.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    /// Records after this sequence number.
    pub after_seq: i64,
    /// At most this many.
    pub limit: i64,
}

fn collect<T>(rows: Vec<AnyRow>, f: fn(&AnyRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

impl Q<'_> {
    /// One identity.
    pub async fn identity(&mut self, n: &str) -> Result<Option<Identity>> {
        let sql = format!("SELECT {IDENTITY_COLS} FROM identities WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(n)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(identity).transpose()
    }

    /// Every identity, by name.
    pub async fn identities(&mut self) -> Result<Vec<Identity>> {
        let sql = format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY name");
        collect(
            sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&mut *self.0)
                .await?,
            identity,
        )
    }

    /// An identity's password hash, if it has one.
    pub async fn password_hash(&mut self, n: &str) -> Result<Option<String>> {
        let v: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM identities WHERE name = $1")
                .bind(n)
                .fetch_optional(&mut *self.0)
                .await?;
        Ok(v.flatten())
    }

    /// One group.
    pub async fn group(&mut self, n: &str) -> Result<Option<Group>> {
        let sql = format!("SELECT {GROUP_COLS} FROM groups WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(n)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(group).transpose()
    }

    /// Every group, by name.
    pub async fn groups(&mut self) -> Result<Vec<Group>> {
        let sql = format!("SELECT {GROUP_COLS} FROM groups ORDER BY name");
        collect(
            sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&mut *self.0)
                .await?,
            group,
        )
    }

    /// Members of a group, by name.
    pub async fn members(&mut self, g: &str) -> Result<Vec<Name>> {
        let rows =
            sqlx::query("SELECT identity FROM memberships WHERE group_name = $1 ORDER BY identity")
                .bind(g)
                .fetch_all(&mut *self.0)
                .await?;
        rows.iter()
            .map(|r| name(r, "memberships", "identity"))
            .collect()
    }

    /// Every membership as (group, identity).
    pub async fn memberships(&mut self) -> Result<Vec<(Name, Name)>> {
        let rows = sqlx::query(
            "SELECT group_name, identity FROM memberships ORDER BY group_name, identity",
        )
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    name(r, "memberships", "group_name")?,
                    name(r, "memberships", "identity")?,
                ))
            })
            .collect()
    }

    /// The groups an identity belongs to, by name.
    pub async fn groups_of(&mut self, identity: &str) -> Result<Vec<Name>> {
        let rows = sqlx::query(
            "SELECT group_name FROM memberships WHERE identity = $1 ORDER BY group_name",
        )
        .bind(identity)
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| name(r, "memberships", "group_name"))
            .collect()
    }

    /// Whether `identity` is a member of `g`.
    pub async fn is_member(&mut self, g: &str, identity: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM memberships WHERE group_name = $1 AND identity = $2")
            .bind(g)
            .bind(identity)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(row.is_some())
    }

    /// One target.
    pub async fn target(&mut self, n: &str) -> Result<Option<Target>> {
        let row = sqlx::query(
            "SELECT name, kind, address, owner, risk_tier, description, admin_user, host_key, connector FROM targets WHERE name = $1",
        )
        .bind(n)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(target).transpose()
    }

    /// Every target, by name.
    pub async fn targets(&mut self) -> Result<Vec<Target>> {
        collect(
            sqlx::query(
                "SELECT name, kind, address, owner, risk_tier, description, admin_user, host_key, connector FROM targets ORDER BY name",
            )
            .fetch_all(&mut *self.0)
            .await?,
            target,
        )
    }

    /// One role of a target.
    pub async fn role(&mut self, t: &str, r: &str) -> Result<Option<TargetRole>> {
        let row =
            sqlx::query("SELECT target, name, config FROM roles WHERE target = $1 AND name = $2")
                .bind(t)
                .bind(r)
                .fetch_optional(&mut *self.0)
                .await?;
        row.as_ref().map(role).transpose()
    }

    /// Every role, by target and name.
    pub async fn roles(&mut self) -> Result<Vec<TargetRole>> {
        collect(
            sqlx::query("SELECT target, name, config FROM roles ORDER BY target, name")
                .fetch_all(&mut *self.0)
                .await?,
            role,
        )
    }

    /// One rule by id.
    pub async fn rule(&mut self, id: &str) -> Result<Option<Rule>> {
        let row = sqlx::query(
            "SELECT subject_kind, subject, target, role, settings FROM rules WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(rule).transpose()
    }

    /// Every rule, by id.
    pub async fn rules(&mut self) -> Result<Vec<Rule>> {
        collect(
            sqlx::query(
                "SELECT subject_kind, subject, target, role, settings FROM rules ORDER BY id",
            )
            .fetch_all(&mut *self.0)
            .await?,
            rule,
        )
    }

    /// One custom policy's text.
    pub async fn policy(&mut self, n: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM policies WHERE name = $1")
                .bind(n)
                .fetch_optional(&mut *self.0)
                .await?,
        )
    }

    /// Every custom policy as (name, text).
    pub async fn policies(&mut self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, body FROM policies ORDER BY name")
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("body")?)))
            .collect()
    }

    async fn with_approvals(&mut self, mut reqs: Vec<Request>) -> Result<Vec<Request>> {
        for r in &mut reqs {
            let rows = sqlx::query(
                "SELECT approver, stage, at FROM approvals WHERE request_id = $1 ORDER BY at, approver",
            )
            .bind(&r.id)
            .fetch_all(&mut *self.0)
            .await?;
            r.approvals = rows
                .iter()
                .map(|row| {
                    let stage: i64 = row.try_get("stage")?;
                    Ok(Approval {
                        approver: name(row, "approvals", "approver")?,
                        stage: u32::try_from(stage)
                            .map_err(|e| corrupt("approvals", "stage", e))?,
                        at: ts(row, "at")?,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(reqs)
    }

    /// One request, with its approvals.
    pub async fn request(&mut self, id: &str) -> Result<Option<Request>> {
        let sql = format!("SELECT {REQUEST_COLS} FROM requests WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(r) = row.as_ref().map(request).transpose()? else {
            return Ok(None);
        };
        Ok(self.with_approvals(vec![r]).await?.pop())
    }

    /// Requests, newest first: of one identity, or all; optionally only stored-pending ones.
    pub async fn requests(
        &mut self,
        identity: Option<&str>,
        pending_only: bool,
        limit: i64,
    ) -> Result<Vec<Request>> {
        // Only the clauses that apply, so that the planner can use the (identity, status) index.
        let mut sql = format!("SELECT {REQUEST_COLS} FROM requests WHERE 1 = 1");
        if identity.is_some() {
            sql.push_str(" AND identity = $1");
        }
        if pending_only {
            sql.push_str(" AND status = 'pending'");
        }
        let n = 1 + usize::from(identity.is_some());
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${n}"));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(i) = identity {
            q = q.bind(i);
        }
        let rows = q.bind(limit).fetch_all(&mut *self.0).await?;
        let reqs = collect(rows, request)?;
        self.with_approvals(reqs).await
    }

    /// Pending requests whose deadline has passed.
    pub async fn requests_past_deadline(
        &mut self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Request>> {
        let sql = format!(
            "SELECT {REQUEST_COLS} FROM requests WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        collect(rows, request)
    }

    /// The earliest deadline of a pending request.
    pub async fn next_request_deadline(&mut self) -> Result<Option<Timestamp>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(expires_at) FROM requests WHERE status = 'pending'")
                .fetch_one(&mut *self.0)
                .await?;
        Ok(v.map(Timestamp::from_millis))
    }

    /// One grant.
    pub async fn grant(&mut self, id: &str) -> Result<Option<Grant>> {
        let sql = format!("SELECT {GRANT_COLS} FROM grants WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(grant).transpose()
    }

    /// Grants, newest first: of one identity, or all; optionally only those not closed.
    pub async fn grants(
        &mut self,
        identity: Option<&str>,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<Grant>> {
        let mut sql = format!("SELECT {GRANT_COLS} FROM grants WHERE 1 = 1");
        if identity.is_some() {
            sql.push_str(" AND identity = $1");
        }
        if open_only {
            sql.push_str(" AND status IN ('scheduled', 'active')");
        }
        let n = 1 + usize::from(identity.is_some());
        sql.push_str(&format!(" ORDER BY created_at DESC, id DESC LIMIT ${n}"));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(i) = identity {
            q = q.bind(i);
        }
        let rows = q.bind(limit).fetch_all(&mut *self.0).await?;
        collect(rows, grant)
    }

    /// The grant a request produced, if any.
    pub async fn grant_of_request(&mut self, request_id: &str) -> Result<Option<Grant>> {
        let sql = format!("SELECT {GRANT_COLS} FROM grants WHERE request_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(request_id)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(grant).transpose()
    }

    /// The grant in force at `now` for `identity` on `target`/`role` (the one ending last).
    pub async fn active_grant(
        &mut self,
        identity: &str,
        target: &str,
        role: &str,
        now: Timestamp,
    ) -> Result<Option<Grant>> {
        let sql = format!(
            // `status || ''` and `ends_at + 0` keep the planner off the (status, ends_at) index,
            // which would walk every open grant of every identity: this must use the holder's.
            "SELECT {GRANT_COLS} FROM grants WHERE identity = $1 AND target = $2 AND role = $3 AND (status || '') IN ('scheduled', 'active') AND starts_at <= $4 AND ends_at + 0 > $4 ORDER BY ends_at DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(identity)
            .bind(target)
            .bind(role)
            .bind(now.millis())
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(grant).transpose()
    }

    /// Grants not yet closed whose end has passed, earliest end first.
    pub async fn grants_past_end(&mut self, now: Timestamp, limit: i64) -> Result<Vec<Grant>> {
        let sql = format!(
            "SELECT {GRANT_COLS} FROM grants WHERE status IN ('scheduled', 'active') AND ends_at <= $1 ORDER BY ends_at LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(limit)
            .fetch_all(&mut *self.0)
            .await?;
        collect(rows, grant)
    }

    /// The earliest end of a grant not yet closed.
    pub async fn next_grant_end(&mut self) -> Result<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(ends_at) FROM grants WHERE status IN ('scheduled', 'active')",
        )
        .fetch_one(&mut *self.0)
        .await?;
        Ok(v.map(Timestamp::from_millis))
    }

    /// Open grants (not closed) in number.
    pub async fn count_open_grants(&mut self) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE status IN ('scheduled', 'active')",
        )
        .fetch_one(&mut *self.0)
        .await?)
    }

    /// Clean-up jobs that are due, oldest first.
    pub async fn jobs_due(&mut self, now: Timestamp, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, grant_id, attempts, next_at, last_error, created_at, done_at FROM jobs WHERE done_at IS NULL AND next_at <= $1 ORDER BY next_at LIMIT $2",
        )
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?;
        collect(rows, job)
    }

    /// Clean-up jobs not done, oldest first.
    pub async fn jobs_pending(&mut self, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT id, kind, grant_id, attempts, next_at, last_error, created_at, done_at FROM jobs WHERE done_at IS NULL ORDER BY created_at LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?;
        collect(rows, job)
    }

    /// How many clean-up jobs are not done.
    pub async fn count_pending_jobs(&mut self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE done_at IS NULL")
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    /// The earliest due time of a job not done.
    pub async fn next_job_due(&mut self) -> Result<Option<Timestamp>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_at) FROM jobs WHERE done_at IS NULL")
                .fetch_one(&mut *self.0)
                .await?;
        Ok(v.map(Timestamp::from_millis))
    }

    /// One token.
    pub async fn token(&mut self, id: &str) -> Result<Option<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(token).transpose()
    }

    /// A token with its holder's status and system role, in one round trip (the hot path of
    /// every authenticated call).
    pub async fn token_and_holder(
        &mut self,
        id: &str,
    ) -> Result<Option<(TokenRow, IdentityStatus, SystemRole)>> {
        let sql = format!(
            "SELECT {TOKEN_COLS}, i.status, i.system_role FROM tokens t JOIN identities i ON i.name = t.identity WHERE t.id = $1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status")?;
        let role: String = row.try_get("system_role")?;
        Ok(Some((
            token(&row)?,
            IdentityStatus::parse(&status)
                .ok_or_else(|| corrupt("identities", "status", &status))?,
            SystemRole::parse(&role).ok_or_else(|| corrupt("identities", "system_role", &role))?,
        )))
    }

    /// Tokens of an identity, newest first.
    pub async fn tokens_of(&mut self, identity: &str) -> Result<Vec<TokenRow>> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE t.identity = $1 ORDER BY t.created_at DESC"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(identity)
            .fetch_all(&mut *self.0)
            .await?;
        collect(rows, token)
    }

    /// An identity's second factors, oldest first.
    pub async fn factors_of(&mut self, identity: &str) -> Result<Vec<FactorRow>> {
        let rows = sqlx::query(
            "SELECT id, identity, kind, label, secret, confirmed_at, last_step, last_used_at, created_at \
             FROM mfa_factors WHERE identity = $1 ORDER BY created_at, id",
        )
        .bind(identity)
        .fetch_all(&mut *self.0)
        .await?;
        collect(rows, factor)
    }

    /// Every second factor (for re-wrapping their sealed secrets under a new key).
    pub async fn all_factors(&mut self) -> Result<Vec<FactorRow>> {
        let rows = sqlx::query(
            "SELECT id, identity, kind, label, secret, confirmed_at, last_step, last_used_at, created_at \
             FROM mfa_factors ORDER BY id",
        )
        .fetch_all(&mut *self.0)
        .await?;
        collect(rows, factor)
    }

    /// How many unused recovery codes an identity has.
    pub async fn recovery_codes_left(&mut self, identity: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE identity = $1 AND used_at IS NULL",
        )
        .bind(identity)
        .fetch_one(&mut *self.0)
        .await?)
    }

    /// Audit records after a position, in order.
    pub async fn audit(&mut self, q: &AuditQuery) -> Result<Vec<Record>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, data, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(q.after_seq)
        .bind(q.limit)
        .fetch_all(&mut *self.0)
        .await?;
        collect(rows, record)
    }

    /// The recorded head of the chain: (seq, hash).
    pub async fn audit_head(&mut self) -> Result<(i64, String)> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *self.0)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

impl W<'_> {
    /// Creates or replaces an identity's attributes (not its password).
    pub async fn save_identity(&mut self, i: &Identity, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO identities (name, display_name, email, status, manager, system_role, created_at, updated_at, source, external_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO UPDATE SET display_name = $2, email = $3, status = $4, manager = $5, system_role = $6, updated_at = $8, source = $9, external_id = $10",
        )
        .bind(i.name.as_str())
        .bind(&i.display_name)
        .bind(&i.email)
        .bind(i.status.as_str())
        .bind(i.manager.as_ref().map(Name::as_str))
        .bind(i.system_role.as_str())
        .bind(i.created_at.millis())
        .bind(now.millis())
        .bind(i.source.as_str())
        .bind(i.external_id.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Sets (or clears) an identity's password hash.
    pub async fn set_password_hash(&mut self, n: &str, hash: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE identities SET password_hash = $2 WHERE name = $1")
            .bind(n)
            .bind(hash)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Deletes an identity, its memberships and the rules that name it, and revokes its tokens.
    pub async fn delete_identity(&mut self, n: &str, now: Timestamp) -> Result<()> {
        sqlx::query("DELETE FROM memberships WHERE identity = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE identity = $1 AND revoked_at IS NULL")
            .bind(n)
            .bind(now.millis())
            .execute(&mut *self.0)
            .await?;
        // Rules naming the identity go with it: a new identity of the same name must not
        // inherit its eligibility.
        sqlx::query("DELETE FROM rules WHERE subject_kind = 'identity' AND subject = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        sqlx::query("UPDATE identities SET manager = NULL WHERE manager = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        sqlx::query("DELETE FROM identities WHERE name = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Revokes every token of an identity (sign-out everywhere, leavers).
    pub async fn revoke_tokens_of(&mut self, n: &str, now: Timestamp) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE identity = $1 AND revoked_at IS NULL",
        )
        .bind(n)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected())
    }

    /// Revokes an identity's sign-in sessions except `keep` (after a password change).
    pub async fn revoke_sessions_of(
        &mut self,
        n: &str,
        keep: Option<&str>,
        now: Timestamp,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE tokens SET revoked_at = $2 WHERE identity = $1 AND kind = 'session' AND revoked_at IS NULL AND id <> $3",
        )
        .bind(n)
        .bind(now.millis())
        .bind(keep.unwrap_or(""))
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected())
    }

    /// Creates or updates a group.
    pub async fn save_group(&mut self, g: &Group, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO groups (name, description, created_at, source, external_id) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET description = $2, source = $4, external_id = $5",
        )
        .bind(g.name.as_str())
        .bind(&g.description)
        .bind(now.millis())
        .bind(g.source.as_str())
        .bind(g.external_id.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a group and its memberships.
    pub async fn delete_group(&mut self, n: &str) -> Result<()> {
        sqlx::query("DELETE FROM memberships WHERE group_name = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        sqlx::query("DELETE FROM groups WHERE name = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Adds a member; returns false if already a member.
    pub async fn add_member(&mut self, g: &str, identity: &str, now: Timestamp) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO memberships (group_name, identity, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(g)
        .bind(identity)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes a member; returns false if not a member.
    pub async fn remove_member(&mut self, g: &str, identity: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM memberships WHERE group_name = $1 AND identity = $2")
            .bind(g)
            .bind(identity)
            .execute(&mut *self.0)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or updates a target.
    pub async fn save_target(&mut self, t: &Target, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO targets (name, kind, address, owner, risk_tier, description, admin_user, created_at, host_key, connector) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO UPDATE SET kind = $2, address = $3, owner = $4, risk_tier = $5, description = $6, admin_user = $7, host_key = $9, connector = $10",
        )
        .bind(t.name.as_str())
        .bind(t.kind.as_str())
        .bind(t.address.as_deref())
        .bind(t.owner.as_str())
        .bind(t.risk_tier)
        .bind(&t.description)
        .bind(t.admin_user.as_deref())
        .bind(now.millis())
        .bind(t.host_key.as_deref())
        .bind(if t.connector == ConnectorSettings::default() {
            None
        } else {
            serde_json::to_string(&t.connector).ok()
        })
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a target with its roles and rules.
    pub async fn delete_target(&mut self, n: &str) -> Result<()> {
        for sql in [
            "DELETE FROM rules WHERE target = $1",
            "DELETE FROM roles WHERE target = $1",
            "DELETE FROM targets WHERE name = $1",
        ] {
            sqlx::query(sql).bind(n).execute(&mut *self.0).await?;
        }
        Ok(())
    }

    /// Creates or updates a role.
    pub async fn save_role(&mut self, r: &TargetRole, now: Timestamp) -> Result<()> {
        let config = serde_json::to_string(&RoleConfig {
            principals: r.principals.clone(),
            login: r.login.clone(),
            db_roles: r.db_roles.clone(),
            account: r.account.clone(),
            record: r.record.clone(),
            record_input: r.record_input,
            forwarding: r.forwarding.clone(),
        })
        .unwrap_or_default();
        sqlx::query(
            "INSERT INTO roles (target, name, config, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (target, name) DO UPDATE SET config = $3",
        )
        .bind(r.target.as_str())
        .bind(r.name.as_str())
        .bind(config)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a role and the rules that name it.
    pub async fn delete_role(&mut self, t: &str, r: &str) -> Result<()> {
        for sql in [
            "DELETE FROM rules WHERE target = $1 AND role = $2",
            "DELETE FROM roles WHERE target = $1 AND name = $2",
        ] {
            sqlx::query(sql)
                .bind(t)
                .bind(r)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    /// Creates or updates a rule.
    pub async fn save_rule(&mut self, r: &Rule, now: Timestamp) -> Result<()> {
        let (kind, subject) = match &r.subject {
            Subject::Identity(n) => ("identity", n),
            Subject::Group(n) => ("group", n),
        };
        sqlx::query(
            "INSERT INTO rules (id, subject_kind, subject, target, role, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET settings = $6",
        )
        .bind(rule_id(&r.subject, &r.target, &r.role))
        .bind(kind)
        .bind(subject.as_str())
        .bind(r.target.as_str())
        .bind(r.role.as_str())
        .bind(settings_json(&r.settings).to_string())
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a rule.
    pub async fn delete_rule(&mut self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM rules WHERE id = $1")
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Creates or replaces a custom policy.
    pub async fn save_policy(&mut self, n: &str, body: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO policies (name, body, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET body = $2, updated_at = $3",
        )
        .bind(n)
        .bind(body)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a custom policy.
    pub async fn delete_policy(&mut self, n: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(n)
            .execute(&mut *self.0)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Stores a new request (its approvals are added with [`W::add_approval`]).
    pub async fn insert_request(&mut self, r: &Request) -> Result<()> {
        sqlx::query(
            "INSERT INTO requests (id, identity, target, role, duration_secs, reason, ticket, start_at, rule_id, stages, current_stage, status, created_at, expires_at, decided_at, decided_by, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        )
        .bind(&r.id)
        .bind(r.identity.as_str())
        .bind(r.target.as_str())
        .bind(r.role.as_str())
        .bind(r.duration.secs())
        .bind(&r.reason)
        .bind(r.ticket.as_deref())
        .bind(r.start_at.map(Timestamp::millis))
        .bind(&r.rule_id)
        .bind(serde_json::to_string(&r.stages).unwrap_or_default())
        .bind(i64::from(r.current_stage))
        .bind(r.status.as_str())
        .bind(r.created_at.millis())
        .bind(r.expires_at.millis())
        .bind(r.decided_at.map(Timestamp::millis))
        .bind(r.decided_by.as_ref().map(Name::as_str))
        .bind(r.note.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Stores a request's progress (stage, status, decision) if it is still pending; returns
    /// whether it was.
    pub async fn update_request(&mut self, r: &Request) -> Result<bool> {
        // Every transition starts from pending: a request decided meanwhile is never overwritten.
        let done = sqlx::query(
            "UPDATE requests SET current_stage = $2, status = $3, decided_at = $4, decided_by = $5, note = $6 WHERE id = $1 AND status = 'pending'",
        )
        .bind(&r.id)
        .bind(i64::from(r.current_stage))
        .bind(r.status.as_str())
        .bind(r.decided_at.map(Timestamp::millis))
        .bind(r.decided_by.as_ref().map(Name::as_str))
        .bind(r.note.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records an approval. The key (request, approver) makes a second approval impossible.
    pub async fn add_approval(&mut self, request_id: &str, a: &Approval) -> Result<()> {
        sqlx::query(
            "INSERT INTO approvals (request_id, approver, stage, at) VALUES ($1, $2, $3, $4)",
        )
        .bind(request_id)
        .bind(a.approver.as_str())
        .bind(i64::from(a.stage))
        .bind(a.at.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Stores a new grant.
    pub async fn insert_grant(&mut self, g: &Grant, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO grants (id, request_id, identity, target, role, rule_id, starts_at, ends_at, status, revoked_at, revoked_by, revoke_reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&g.id)
        .bind(&g.request_id)
        .bind(g.identity.as_str())
        .bind(g.target.as_str())
        .bind(g.role.as_str())
        .bind(&g.rule_id)
        .bind(g.starts_at.millis())
        .bind(g.ends_at.millis())
        .bind(g.status.as_str())
        .bind(g.revoked_at.map(Timestamp::millis))
        .bind(g.revoked_by.as_ref().map(Name::as_str))
        .bind(g.revoke_reason.as_deref())
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Closes a grant (ended or revoked) if it is still open; returns whether it was.
    pub async fn close_grant(&mut self, g: &Grant) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE grants SET status = $2, revoked_at = $3, revoked_by = $4, revoke_reason = $5 WHERE id = $1 AND status IN ('scheduled', 'active')",
        )
        .bind(&g.id)
        .bind(g.status.as_str())
        .bind(g.revoked_at.map(Timestamp::millis))
        .bind(g.revoked_by.as_ref().map(Name::as_str))
        .bind(g.revoke_reason.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Owes clean-up work for a closed grant.
    pub async fn insert_job(&mut self, j: &JobRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, grant_id, attempts, next_at, last_error, created_at, done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(&j.grant_id)
        .bind(j.attempts)
        .bind(j.next_at.millis())
        .bind(j.last_error.as_deref())
        .bind(j.created_at.millis())
        .bind(j.done_at.map(Timestamp::millis))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Records a job's attempt.
    pub async fn update_job(&mut self, j: &JobRow) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET attempts = $2, next_at = $3, last_error = $4, done_at = $5 WHERE id = $1",
        )
        .bind(&j.id)
        .bind(j.attempts)
        .bind(j.next_at.millis())
        .bind(j.last_error.as_deref())
        .bind(j.done_at.map(Timestamp::millis))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Stores a token (its secret hashed).
    pub async fn insert_token(&mut self, t: &TokenRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (id, identity, kind, label, secret_hash, created_at, expires_at, revoked_at, scope, mfa_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.id)
        .bind(t.identity.as_str())
        .bind(&t.kind)
        .bind(&t.label)
        .bind(&t.secret_hash)
        .bind(t.created_at.millis())
        .bind(t.expires_at.map(Timestamp::millis))
        .bind(t.revoked_at.map(Timestamp::millis))
        .bind(&t.scope)
        .bind(t.mfa_at.map(Timestamp::millis))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Stores a new second factor.
    pub async fn insert_factor(&mut self, f: &FactorRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO mfa_factors (id, identity, kind, label, secret, confirmed_at, last_step, last_used_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&f.id)
        .bind(f.identity.as_str())
        .bind(&f.kind)
        .bind(&f.label)
        .bind(&f.secret)
        .bind(f.confirmed_at.map(Timestamp::millis))
        .bind(f.last_step)
        .bind(f.last_used_at.map(Timestamp::millis))
        .bind(f.created_at.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Records a successful use of a factor: the step accepted (TOTP) and when; confirms the
    /// factor if it was not yet.
    pub async fn factor_used(&mut self, id: &str, step: Option<i64>, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE mfa_factors SET last_step = COALESCE($2, last_step), last_used_at = $3, \
             confirmed_at = COALESCE(confirmed_at, $3) WHERE id = $1",
        )
        .bind(id)
        .bind(step)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Replaces the secret of a factor (WebAuthn counters, re-wrapping).
    pub async fn set_factor_secret(&mut self, id: &str, secret: &str) -> Result<()> {
        sqlx::query("UPDATE mfa_factors SET secret = $2 WHERE id = $1")
            .bind(id)
            .bind(secret)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Deletes an identity's unconfirmed factors of `kind` (an abandoned enrolment).
    pub async fn delete_unconfirmed_factors(&mut self, identity: &str, kind: &str) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM mfa_factors WHERE identity = $1 AND kind = $2 AND confirmed_at IS NULL",
        )
        .bind(identity)
        .bind(kind)
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected())
    }

    /// Deletes every factor and recovery code of an identity (an MFA reset, or a leaver).
    pub async fn delete_mfa_of(&mut self, identity: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM mfa_factors WHERE identity = $1")
            .bind(identity)
            .execute(&mut *self.0)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE identity = $1")
            .bind(identity)
            .execute(&mut *self.0)
            .await?;
        Ok(r.rows_affected())
    }

    /// Replaces an identity's recovery codes with these hashes.
    pub async fn set_recovery_codes(
        &mut self,
        identity: &str,
        hashes: &[String],
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE identity = $1")
            .bind(identity)
            .execute(&mut *self.0)
            .await?;
        for h in hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (identity, code_hash, used_at, created_at) VALUES ($1, $2, NULL, $3)",
            )
            .bind(identity)
            .bind(h)
            .bind(now.millis())
            .execute(&mut *self.0)
            .await?;
        }
        Ok(())
    }

    /// Spends a recovery code; returns whether it was there and unused.
    pub async fn use_recovery_code(
        &mut self,
        identity: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE identity = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(identity)
        .bind(hash)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Records a second factor proved in the session of token `id`.
    /// Records a second factor proved in the session of token `id`. A token of scope
    /// `mfa_pending` becomes `full` (the sign-in is complete) and lives until `session_end`.
    pub async fn set_token_mfa(
        &mut self,
        id: &str,
        now: Timestamp,
        session_end: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE tokens SET mfa_at = $2, \
             expires_at = CASE WHEN scope = 'mfa_pending' THEN $3 ELSE expires_at END, \
             scope = CASE WHEN scope = 'mfa_pending' THEN 'full' ELSE scope END WHERE id = $1",
        )
        .bind(id)
        .bind(now.millis())
        .bind(session_end.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Revokes one token; returns whether it was live.
    pub async fn revoke_token(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let r =
            sqlx::query("UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(now.millis())
                .execute(&mut *self.0)
                .await?;
        Ok(r.rows_affected() > 0)
    }
}

//! The org file: a declarative description of groups, identities, targets, roles, eligibility
//! rules and custom policies, applied with `warrant apply -f org.yaml [--dry-run]`.
//!
//! Applying creates what is missing and updates what differs; it deletes nothing that the file
//! does not mention. An identity's `groups`, when given, are its exact memberships (leaving a
//! group is mover handling). A `password` is set only when the identity has none yet, so that
//! applying the same file twice changes nothing. The whole file applies in one transaction: an
//! error anywhere changes nothing. The format is documented in docs/org-file.md.

use serde::Deserialize;
use warrant_core::{
    ActivationDuration, ActivationSettings, ApprovalStage, Name, Rule, Secret, Subject, SystemRole,
    Target, TargetKind, TargetRole,
};

use crate::auth::Actor;
use crate::catalogue::{tx_save_policy, tx_save_role, tx_save_rule, tx_save_target};
use crate::directory::{
    IdentityInput, IdentityUpdate, tx_add_group, tx_add_identity, tx_add_member, tx_remove_member,
    tx_set_password, tx_update_identity,
};
use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFile {
    /// Groups.
    #[serde(default)]
    pub groups: Vec<OrgGroup>,
    /// Identities.
    #[serde(default)]
    pub identities: Vec<OrgIdentity>,
    /// Targets with their roles.
    #[serde(default)]
    pub targets: Vec<OrgTarget>,
    /// Eligibility rules.
    #[serde(default)]
    pub eligibility: Vec<OrgRule>,
    /// Custom Cedar policies.
    #[serde(default)]
    pub policies: Vec<OrgPolicy>,
}

/// A group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgGroup {
    /// Name.
    pub name: Name,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// An identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgIdentity {
    /// Name.
    pub name: Name,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Initial password (set only if the identity has none).
    #[serde(default)]
    pub password: Option<Secret<String>>,
    /// Manager.
    #[serde(default)]
    pub manager: Option<Name>,
    /// Exact group memberships, when given.
    #[serde(default)]
    pub groups: Option<Vec<Name>>,
    /// System role: user (default), auditor, admin.
    #[serde(default)]
    pub role: Option<String>,
}

/// A target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgTarget {
    /// Name.
    pub name: Name,
    /// postgres | ssh | generic.
    pub kind: String,
    /// Owner group.
    pub owner: Name,
    /// host:port.
    #[serde(default)]
    pub address: Option<String>,
    /// The connector's own login (PostgreSQL; SSH: the account Warrant's managed key uses).
    #[serde(default)]
    pub admin_user: Option<String>,
    /// SSH: the host key Warrant pins for its own connections.
    #[serde(default)]
    pub host_key: Option<String>,
    /// PostgreSQL: `verify-full` or `disable` (default: plain TCP on loopback only).
    #[serde(default)]
    pub tls: Option<String>,
    /// PostgreSQL: the CA certificates `verify-full` trusts (PEM file).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PostgreSQL: `reassign` (default) or `drop` what a temporary role owns when it goes.
    #[serde(default)]
    pub owned_objects: Option<String>,
    /// 1 low … 4 critical (default 2).
    #[serde(default)]
    pub risk_tier: Option<i64>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<OrgRole>,
}

/// A role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRole {
    /// Name.
    pub name: Name,
    /// SSH principals.
    #[serde(default)]
    pub principals: Vec<String>,
    /// SSH upstream login.
    #[serde(default)]
    pub login: Option<String>,
    /// PostgreSQL memberships.
    #[serde(default)]
    pub db_roles: Vec<String>,
    /// A vaulted account on the target that a grant of this role may check out.
    #[serde(default)]
    pub account: Option<String>,
    /// SSH gateway recording: strict (default) | best-effort | off.
    #[serde(default)]
    pub record: Option<String>,
    /// SSH gateway: record input too.
    #[serde(default)]
    pub record_input: bool,
    /// SSH gateway: forwarding allowed through it (`port`).
    #[serde(default)]
    pub forwarding: Vec<String>,
}

/// An eligibility rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgRule {
    /// Subject group (or identity).
    #[serde(default)]
    pub group: Option<Name>,
    /// Subject identity (or group).
    #[serde(default)]
    pub identity: Option<Name>,
    /// Target.
    pub target: Name,
    /// Role.
    pub role: Name,
    /// Maximum duration, e.g. 1h.
    pub max_duration: ActivationDuration,
    /// Reason required (default true).
    #[serde(default = "yes")]
    pub require_reason: bool,
    /// MFA required (default false).
    #[serde(default)]
    pub require_mfa: bool,
    /// Ticket pattern.
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// Ordered approval stages.
    #[serde(default)]
    pub approvals: Vec<ApprovalStage>,
}

fn yes() -> bool {
    true
}

/// A custom Cedar policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgPolicy {
    /// Name.
    pub name: Name,
    /// Cedar text (one policy).
    pub cedar: String,
}

/// What an apply changed (or would change, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// One line per change, e.g. `created identity alice`.
    pub changes: Vec<String>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// Parses an org file (YAML, which includes JSON), with the line of any error.
pub fn parse(text: &str) -> Result<OrgFile> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        EngineError::invalid(
            "invalid_org_file",
            format!("org file: {e} (see docs/org-file.md for the format)"),
        )
    })
}

fn at(section: &str, i: usize, name: &Name) -> impl Fn(EngineError) -> EngineError {
    let place = format!("{section}[{i}] ({name})");
    move |e| EngineError {
        message: format!("org file {place}: {}", e.message),
        ..e
    }
}

impl Engine {
    /// Applies an org file in one transaction; with `dry_run`, reports and rolls back.
    pub async fn apply(&self, actor: &Actor, org: OrgFile, dry_run: bool) -> Result<ApplyReport> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let policy = self.policy();
        let jobs = self.jobs_enabled();
        let mut tx = self.store().begin().await?;
        let mut changes = Vec::new();
        let mut note = |changed: bool, what: String| {
            if changed {
                changes.push(what);
            }
        };

        for (i, g) in org.groups.iter().enumerate() {
            let e = at("groups", i, &g.name);
            let existed = tx.q().group(g.name.as_str()).await?.is_some();
            let changed = tx_add_group(&mut tx, actor, &g.name, &g.description, now)
                .await
                .map_err(&e)?;
            note(
                changed,
                format!(
                    "{} group {}",
                    if existed { "updated" } else { "created" },
                    g.name
                ),
            );
        }

        // Identities first without managers (a manager may appear later in the file).
        for (i, id) in org.identities.iter().enumerate() {
            let e = at("identities", i, &id.name);
            let role = match id.role.as_deref() {
                None => None,
                Some(r) => Some(SystemRole::parse(r).ok_or_else(|| {
                    e(EngineError::invalid(
                        "invalid_role",
                        format!("role {r:?} is not one of user, auditor, admin"),
                    ))
                })?),
            };
            match tx.q().identity(id.name.as_str()).await? {
                None => {
                    tx_add_identity(
                        &mut tx,
                        actor,
                        IdentityInput {
                            name: id.name.clone(),
                            display_name: id.display_name.clone(),
                            email: id.email.clone().unwrap_or_default(),
                            manager: None,
                            system_role: role.unwrap_or(SystemRole::User),
                            password: id.password.clone(),
                            external_id: None,
                        },
                        now,
                    )
                    .await
                    .map_err(&e)?;
                    note(true, format!("created identity {}", id.name));
                }
                Some(_) => {
                    let changed = tx_update_identity(
                        &mut tx,
                        actor,
                        id.name.as_str(),
                        IdentityUpdate {
                            display_name: id.display_name.clone(),
                            email: id.email.clone(),
                            manager: None,
                            system_role: role,
                        },
                        now,
                    )
                    .await
                    .map_err(&e)?;
                    note(
                        !changed.is_empty(),
                        format!("updated identity {} ({})", id.name, changed.join(", ")),
                    );
                    if let Some(pw) = &id.password
                        && tx.q().password_hash(id.name.as_str()).await?.is_none()
                    {
                        tx_set_password(&mut tx, actor, &id.name, pw.clone(), now)
                            .await
                            .map_err(&e)?;
                        note(true, format!("set password of {}", id.name));
                    }
                }
            }
        }
        for (i, id) in org.identities.iter().enumerate() {
            let e = at("identities", i, &id.name);
            let changed = tx_update_identity(
                &mut tx,
                actor,
                id.name.as_str(),
                IdentityUpdate {
                    manager: Some(id.manager.clone()),
                    ..IdentityUpdate::default()
                },
                now,
            )
            .await
            .map_err(&e)?;
            note(!changed.is_empty(), format!("set manager of {}", id.name));
        }

        for (i, t) in org.targets.iter().enumerate() {
            let e = at("targets", i, &t.name);
            let kind = TargetKind::parse(&t.kind).ok_or_else(|| {
                e(EngineError::invalid(
                    "invalid_kind",
                    format!("kind {:?} is not one of postgres, ssh, generic", t.kind),
                ))
            })?;
            let existed = tx.q().target(t.name.as_str()).await?.is_some();
            let changed = tx_save_target(
                &mut tx,
                actor,
                &Target {
                    name: t.name.clone(),
                    kind,
                    address: t.address.clone(),
                    owner: t.owner.clone(),
                    risk_tier: t.risk_tier.unwrap_or(2),
                    description: t.description.clone(),
                    admin_user: t.admin_user.clone(),
                    host_key: t.host_key.clone(),
                    connector: warrant_core::ConnectorSettings {
                        tls: t.tls.clone(),
                        ca_file: t.ca_file.clone(),
                        owned_objects: t.owned_objects.clone(),
                    },
                },
                now,
            )
            .await
            .map_err(&e)?;
            note(
                changed,
                format!(
                    "{} target {}",
                    if existed { "updated" } else { "created" },
                    t.name
                ),
            );
            for r in &t.roles {
                let existed = tx
                    .q()
                    .role(t.name.as_str(), r.name.as_str())
                    .await?
                    .is_some();
                let changed = tx_save_role(
                    &mut tx,
                    actor,
                    &TargetRole {
                        target: t.name.clone(),
                        name: r.name.clone(),
                        principals: r.principals.clone(),
                        login: r.login.clone(),
                        db_roles: r.db_roles.clone(),
                        account: r.account.clone(),
                        record: r.record.clone(),
                        record_input: r.record_input,
                        forwarding: r.forwarding.clone(),
                    },
                    now,
                )
                .await
                .map_err(&e)?;
                note(
                    changed,
                    format!(
                        "{} role {} on {}",
                        if existed { "updated" } else { "created" },
                        r.name,
                        t.name
                    ),
                );
            }
        }

        // Memberships after targets and groups exist; removals are mover handling against the
        // policy as it stands before this file's rules.
        for (i, id) in org.identities.iter().enumerate() {
            let e = at("identities", i, &id.name);
            let Some(want) = &id.groups else { continue };
            let have = tx.q().groups_of(id.name.as_str()).await?;
            for g in want.iter().filter(|g| !have.contains(g)) {
                let added = tx_add_member(&mut tx, actor, g.as_str(), id.name.as_str(), now)
                    .await
                    .map_err(&e)?;
                note(added, format!("added {} to group {g}", id.name));
            }
            for g in have.iter().filter(|g| !want.contains(g)) {
                let removed = tx_remove_member(
                    &mut tx,
                    &policy,
                    actor,
                    g.as_str(),
                    id.name.as_str(),
                    jobs,
                    now,
                )
                .await
                .map_err(&e)?;
                note(removed, format!("removed {} from group {g}", id.name));
            }
        }

        for (i, r) in org.eligibility.iter().enumerate() {
            let subject = match (&r.group, &r.identity) {
                (Some(g), None) => Subject::Group(g.clone()),
                (None, Some(n)) => Subject::Identity(n.clone()),
                _ => {
                    return Err(EngineError::invalid(
                        "invalid_org_file",
                        format!("org file eligibility[{i}]: give exactly one of group or identity"),
                    ));
                }
            };
            let rule = Rule {
                subject,
                target: r.target.clone(),
                role: r.role.clone(),
                settings: ActivationSettings {
                    max_duration: r.max_duration,
                    require_reason: r.require_reason,
                    ticket_pattern: r.ticket_pattern.clone(),
                    require_mfa: r.require_mfa,
                    approvals: r.approvals.clone(),
                },
            };
            let id = rule.id();
            let e = at("eligibility", i, &r.target);
            let existed = tx.q().rule(&id).await?.is_some();
            let changed = tx_save_rule(&mut tx, actor, &rule, now).await.map_err(&e)?;
            note(
                changed,
                format!("{} rule {id}", if existed { "updated" } else { "created" }),
            );
        }

        for (i, p) in org.policies.iter().enumerate() {
            let e = at("policies", i, &p.name);
            let existed = tx.q().policy(p.name.as_str()).await?.is_some();
            let changed = tx_save_policy(&mut tx, actor, &p.name, &p.cedar, now)
                .await
                .map_err(&e)?;
            note(
                changed,
                format!(
                    "{} policy {}",
                    if existed { "updated" } else { "created" },
                    p.name
                ),
            );
        }

        let report = ApplyReport { changes, dry_run };
        if dry_run || report.changes.is_empty() {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
            self.reload_policy().await?;
            self.wake_scheduler();
        }
        Ok(report)
    }
}

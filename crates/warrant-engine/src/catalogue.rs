//! Targets, roles, eligibility rules and custom Cedar policies; `warrant policy test`.

use warrant_audit::Event;
use warrant_core::{
    ActivationDuration, ActivationSettings, ApproverSource, Name, Rule, Subject, SystemRole,
    Target, TargetRole, Timestamp,
};
use warrant_policy::RequestContext;
use warrant_store::{WriteTx, settings_json};

use crate::access::{choose, decide};
use crate::auth::Actor;
use crate::directory::{group_not_found, identity_not_found};
use crate::error::{EngineError, Result};
use crate::policy::PolicyState;
use crate::{Engine, require_admin, require_role};

/// A target with its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    /// The target.
    pub target: Target,
    /// Its roles.
    pub roles: Vec<TargetRole>,
}

/// A hypothetical request for `warrant policy test`.
#[derive(Debug, Clone)]
pub struct PolicyTestInput {
    /// Who would ask.
    pub identity: Name,
    /// For which target.
    pub target: Name,
    /// Which role.
    pub role: Name,
    /// For how long.
    pub duration: ActivationDuration,
    /// With a reason?
    pub reason: String,
    /// With a ticket?
    pub ticket: Option<String>,
    /// With MFA?
    pub mfa: bool,
    /// At what time (default now).
    pub at: Option<Timestamp>,
}

/// What `warrant policy test` found.
#[derive(Debug, Clone)]
pub struct PolicyTestResult {
    /// Whether the request would be accepted (possibly pending approval).
    pub allowed: bool,
    /// The stable code of the refusal, when refused.
    pub code: Option<String>,
    /// One line: who decided and why.
    pub explanation: String,
    /// The rule or policy the request would go under.
    pub rule: Option<String>,
    /// Its settings.
    pub settings: Option<ActivationSettings>,
    /// Every rule whose permit matched.
    pub matched_rules: Vec<String>,
    /// Every custom permit that matched.
    pub custom_permits: Vec<String>,
    /// Every custom forbid that fired.
    pub forbids: Vec<String>,
    /// Evaluation errors.
    pub errors: Vec<String>,
    /// How many policies the decision evaluated (its slice).
    pub evaluated: usize,
}

pub(crate) fn target_not_found(name: &str) -> EngineError {
    EngineError::not_found(
        "target_not_found",
        format!("no target named {name:?} (see warrant targets)"),
    )
}

fn role_not_found(target: &str, role: &str) -> EngineError {
    EngineError::not_found(
        "role_not_found",
        format!("target {target} has no role {role:?} (see warrant targets)"),
    )
}

/// Refuses connector settings that cannot work, naming the fix.
fn check_connector(t: &Target) -> Result<()> {
    let c = &t.connector;
    if let Some(tls) = &c.tls
        && !matches!(tls.as_str(), "verify-full" | "disable")
    {
        return Err(EngineError::invalid(
            "invalid_tls",
            format!(
                "target {}: tls {tls:?} is not verify-full or disable",
                t.name
            ),
        ));
    }
    if c.ca_file.is_some() && c.tls.as_deref() == Some("disable") {
        return Err(EngineError::invalid(
            "invalid_tls",
            format!("target {}: ca_file needs tls: verify-full", t.name),
        ));
    }
    if let Some(o) = &c.owned_objects
        && !matches!(o.as_str(), "reassign" | "drop")
    {
        return Err(EngineError::invalid(
            "invalid_owned_objects",
            format!(
                "target {}: owned_objects {o:?} is not reassign or drop",
                t.name
            ),
        ));
    }
    if let Some(k) = &t.host_key {
        warrant_hostssh::HostTarget::parse_host_key(k).map_err(|e| {
            EngineError::invalid(
                "invalid_host_key",
                format!(
                    "target {}: host_key: {e} (give the host's /etc/ssh/ssh_host_ed25519_key.pub line)",
                    t.name
                ),
            )
        })?;
    }
    Ok(())
}

pub(crate) async fn tx_save_target(
    tx: &mut WriteTx,
    actor: &Actor,
    t: &Target,
    now: Timestamp,
) -> Result<bool> {
    if !warrant_core::model::RISK_TIERS.contains(&t.risk_tier) {
        return Err(EngineError::invalid(
            "invalid_risk_tier",
            format!(
                "risk tier {} is outside 1 (low) to 4 (critical)",
                t.risk_tier
            ),
        ));
    }
    if tx.q().group(t.owner.as_str()).await?.is_none() {
        return Err(EngineError::invalid(
            "owner_not_found",
            format!(
                "owner group {:?} does not exist: create it first (warrant group add)",
                t.owner.as_str()
            ),
        ));
    }
    check_connector(t)?;
    let old = tx.q().target(t.name.as_str()).await?;
    if old.as_ref() == Some(t) {
        return Ok(false);
    }
    tx.w().await?.save_target(t, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::TargetSaved {
            target: t.name.to_string(),
            created: old.is_none(),
            kind: t.kind.as_str().to_owned(),
            owner: t.owner.to_string(),
            risk_tier: t.risk_tier,
        },
    )
    .await?;
    Ok(true)
}

pub(crate) async fn tx_save_role(
    tx: &mut WriteTx,
    actor: &Actor,
    r: &TargetRole,
    now: Timestamp,
) -> Result<bool> {
    if tx.q().target(r.target.as_str()).await?.is_none() {
        return Err(target_not_found(r.target.as_str()));
    }
    if let Some(mode) = &r.record
        && !matches!(mode.as_str(), "strict" | "best-effort" | "off")
    {
        return Err(EngineError::invalid(
            "invalid_record",
            format!(
                "role {} on {}: record {mode:?} is not strict, best-effort or off",
                r.name, r.target
            ),
        ));
    }
    if let Some(f) = r
        .forwarding
        .iter()
        .find(|f| !matches!(f.as_str(), "port" | "agent"))
    {
        return Err(EngineError::invalid(
            "invalid_forwarding",
            format!(
                "role {} on {}: forwarding {f:?} is not allowed through the gateway (only `port` and `agent`; remote, socket and X11 forwarding are always refused)",
                r.name, r.target
            ),
        ));
    }
    let old = tx.q().role(r.target.as_str(), r.name.as_str()).await?;
    if old.as_ref() == Some(r) {
        return Ok(false);
    }
    tx.w().await?.save_role(r, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::RoleSaved {
            target: r.target.to_string(),
            role: r.name.to_string(),
            created: old.is_none(),
        },
    )
    .await?;
    Ok(true)
}

pub(crate) fn validate_settings(s: &ActivationSettings) -> Result<()> {
    if let Some(p) = &s.ticket_pattern {
        regex::Regex::new(p).map_err(|e| {
            EngineError::invalid(
                "invalid_ticket_pattern",
                format!("ticket pattern {p:?} is not a regular expression: {e}"),
            )
        })?;
    }
    if s.approvals.iter().any(|a| a.count == 0) {
        return Err(EngineError::invalid(
            "invalid_approvals",
            "each approval stage needs a count of at least 1",
        ));
    }
    if s.approvals.len() > 10 {
        return Err(EngineError::invalid(
            "invalid_approvals",
            "at most 10 approval stages",
        ));
    }
    Ok(())
}

pub(crate) async fn tx_save_rule(
    tx: &mut WriteTx,
    actor: &Actor,
    r: &Rule,
    now: Timestamp,
) -> Result<bool> {
    validate_settings(&r.settings)?;
    if tx
        .q()
        .role(r.target.as_str(), r.role.as_str())
        .await?
        .is_none()
    {
        return Err(if tx.q().target(r.target.as_str()).await?.is_none() {
            target_not_found(r.target.as_str())
        } else {
            role_not_found(r.target.as_str(), r.role.as_str())
        });
    }
    match &r.subject {
        Subject::Identity(n) => {
            if tx.q().identity(n.as_str()).await?.is_none() {
                return Err(identity_not_found(n.as_str()));
            }
        }
        Subject::Group(g) => {
            if tx.q().group(g.as_str()).await?.is_none() {
                return Err(group_not_found(g.as_str()));
            }
        }
    }
    for stage in &r.settings.approvals {
        if let ApproverSource::Group(g) = &stage.from
            && tx.q().group(g.as_str()).await?.is_none()
        {
            return Err(group_not_found(g.as_str()));
        }
    }
    let id = r.id();
    let old = tx.q().rule(&id).await?;
    if old.as_ref() == Some(r) {
        return Ok(false);
    }
    tx.w().await?.save_rule(r, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::RuleSaved {
            rule: id,
            target: r.target.to_string(),
            created: old.is_none(),
            settings: settings_json(&r.settings),
        },
    )
    .await?;
    Ok(true)
}

pub(crate) async fn tx_save_policy(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    text: &str,
    now: Timestamp,
) -> Result<bool> {
    warrant_policy::validate_custom(name.as_str(), text)
        .map_err(|e| EngineError::invalid(e.code(), e.to_string()))?;
    let old = tx.q().policy(name.as_str()).await?;
    if old.as_deref() == Some(text) {
        return Ok(false);
    }
    // The whole set must still compile, annotations included.
    let rules = tx.q().rules().await?;
    let mut policies = tx.q().policies().await?;
    policies.retain(|(n, _)| n != name.as_str());
    policies.push((name.to_string(), text.to_owned()));
    PolicyState::build(rules, policies)?;
    tx.w().await?.save_policy(name.as_str(), text, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::PolicySaved {
            policy: name.to_string(),
            created: old.is_none(),
            sha256: sha256_hex(text),
        },
    )
    .await?;
    Ok(true)
}

fn sha256_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

impl Engine {
    /// Every target with its roles (anyone signed in: requesters need to know what exists).
    pub async fn targets(&self) -> Result<Vec<TargetView>> {
        let mut r = self.store().read().await?;
        let targets = r.q().targets().await?;
        let roles = r.q().roles().await?;
        Ok(targets
            .into_iter()
            .map(|t| TargetView {
                roles: roles
                    .iter()
                    .filter(|r| r.target == t.name)
                    .cloned()
                    .collect(),
                target: t,
            })
            .collect())
    }

    /// Creates or updates a target; returns whether anything changed.
    pub async fn save_target(&self, actor: &Actor, t: &Target) -> Result<bool> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let changed = tx_save_target(&mut tx, actor, t, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes a target with its roles and rules. Refused while it has open grants.
    pub async fn delete_target(&self, actor: &Actor, name: &str) -> Result<()> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if tx.q().target(name).await?.is_none() {
            return Err(target_not_found(name));
        }
        let open = tx.q().grants(None, true, i64::MAX).await?;
        if open
            .iter()
            .any(|g| g.target.as_str() == name && !g.status_at(now).is_closed())
        {
            return Err(EngineError::conflict(
                "target_has_grants",
                format!("target {name} has open grants: revoke them first (warrant grants --all)"),
            ));
        }
        if tx
            .q()
            .vaulted_accounts()
            .await?
            .iter()
            .any(|a| a.target == name)
        {
            return Err(EngineError::conflict(
                "target_has_accounts",
                format!(
                    "target {name} has vaulted accounts: delete them first (warrant accounts; warrant account delete {name} NAME)"
                ),
            ));
        }
        tx.w().await?.delete_target(name).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::TargetDeleted {
                target: name.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload_policy().await
    }

    /// Creates or updates a role.
    pub async fn save_role(&self, actor: &Actor, r: &TargetRole) -> Result<bool> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let changed = tx_save_role(&mut tx, actor, r, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes a role and its rules. Refused while it has open grants.
    pub async fn delete_role(&self, actor: &Actor, target: &str, role: &str) -> Result<()> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if tx.q().role(target, role).await?.is_none() {
            return Err(role_not_found(target, role));
        }
        let open = tx.q().grants(None, true, i64::MAX).await?;
        if open.iter().any(|g| {
            g.target.as_str() == target && g.role.as_str() == role && !g.status_at(now).is_closed()
        }) {
            return Err(EngineError::conflict(
                "role_has_grants",
                format!("role {role} on {target} has open grants: revoke them first"),
            ));
        }
        tx.w().await?.delete_role(target, role).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RoleDeleted {
                target: target.to_owned(),
                role: role.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload_policy().await
    }

    /// Eligibility rules: all for auditors and admins; one's own otherwise.
    pub async fn rules(&self, actor: &Actor) -> Result<Vec<Rule>> {
        let mut r = self.store().read().await?;
        let rules = r.q().rules().await?;
        if actor.role >= SystemRole::Auditor {
            return Ok(rules);
        }
        let groups = r.q().groups_of(actor.name.as_str()).await?;
        Ok(rules
            .into_iter()
            .filter(|rule| match &rule.subject {
                Subject::Identity(n) => *n == actor.name,
                Subject::Group(g) => groups.contains(g),
            })
            .collect())
    }

    /// Creates or updates an eligibility rule.
    pub async fn save_rule(&self, actor: &Actor, rule: &Rule) -> Result<bool> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let changed = tx_save_rule(&mut tx, actor, rule, now).await?;
        tx.commit().await?;
        self.reload_policy().await?;
        Ok(changed)
    }

    /// Deletes an eligibility rule by id. Grants already issued run to their end.
    pub async fn delete_rule(&self, actor: &Actor, id: &str) -> Result<()> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let Some(rule) = tx.q().rule(id).await? else {
            return Err(EngineError::not_found(
                "rule_not_found",
                format!("no rule with id {id:?} (see warrant rules)"),
            ));
        };
        tx.w().await?.delete_rule(id).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::RuleDeleted {
                rule: id.to_owned(),
                target: rule.target.to_string(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload_policy().await
    }

    /// Custom policies as (name, text) (auditors and admins).
    pub async fn policies(&self, actor: &Actor) -> Result<Vec<(String, String)>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        Ok(r.q().policies().await?)
    }

    /// Creates or replaces a custom Cedar policy, validated against the schema first.
    pub async fn save_policy(&self, actor: &Actor, name: &Name, text: &str) -> Result<bool> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let changed = tx_save_policy(&mut tx, actor, name, text, now).await?;
        tx.commit().await?;
        self.reload_policy().await?;
        Ok(changed)
    }

    /// Deletes a custom policy.
    pub async fn delete_policy(&self, actor: &Actor, name: &str) -> Result<()> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if !tx.w().await?.delete_policy(name).await? {
            return Err(EngineError::not_found(
                "policy_not_found",
                format!("no policy named {name:?} (see warrant policy list)"),
            ));
        }
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::PolicyDeleted {
                policy: name.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.reload_policy().await
    }

    /// Evaluates a hypothetical request and says which policy decided and why. Auditors and
    /// admins may test anyone; others only themselves. Changes nothing.
    pub async fn policy_test(
        &self,
        actor: &Actor,
        input: &PolicyTestInput,
    ) -> Result<PolicyTestResult> {
        if input.identity != actor.name {
            require_role(actor, SystemRole::Auditor)?;
        }
        let policy = self.policy();
        let mut r = self.store().read().await?;
        let ident = r
            .q()
            .identity(input.identity.as_str())
            .await?
            .ok_or_else(|| identity_not_found(input.identity.as_str()))?;
        let target = r
            .q()
            .target(input.target.as_str())
            .await?
            .ok_or_else(|| target_not_found(input.target.as_str()))?;
        if r.q()
            .role(input.target.as_str(), input.role.as_str())
            .await?
            .is_none()
        {
            return Err(role_not_found(input.target.as_str(), input.role.as_str()));
        }
        let groups = r.q().groups_of(input.identity.as_str()).await?;
        let at = input.at.unwrap_or_else(|| self.now());
        let ticket = input.ticket.as_deref().filter(|t| !t.trim().is_empty());
        let d = decide(
            &policy,
            &ident,
            &groups,
            &target,
            input.role.as_str(),
            RequestContext {
                duration_secs: input.duration.secs(),
                has_reason: !input.reason.trim().is_empty(),
                has_ticket: ticket.is_some(),
                mfa: input.mfa,
                now_unix: at.unix_seconds(),
            },
        );
        let chosen = choose(
            &policy,
            &d,
            input.duration,
            &input.reason,
            ticket,
            input.mfa,
        );
        let (allowed, code, explanation, rule, settings) = match chosen {
            Ok((id, s)) => {
                let stages = if s.approvals.is_empty() {
                    "no approval needed".to_owned()
                } else {
                    let list: Vec<String> = s
                        .approvals
                        .iter()
                        .map(|a| format!("{}×{}", a.count, a.from))
                        .collect();
                    format!("approval stages: {}", list.join(" then "))
                };
                (
                    true,
                    None,
                    format!("{}; under {id}: {stages}", d.explain()),
                    Some(id),
                    Some(s),
                )
            }
            Err(e) => (false, Some(e.code.to_owned()), e.message, None, None),
        };
        Ok(PolicyTestResult {
            allowed,
            code,
            explanation,
            rule,
            settings,
            matched_rules: d.matched_rules,
            custom_permits: d.custom_permits,
            forbids: d.forbids,
            errors: d.errors,
            evaluated: d.evaluated,
        })
    }
}

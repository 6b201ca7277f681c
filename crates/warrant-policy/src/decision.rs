//! What a decision is asked (who, which role on which target, in what context) and what it
//! answers.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy::{Entities, EntityTypeName, Request};
use cedar_policy_core::ast;
use cedar_policy_core::entities;
use cedar_policy_core::extensions::Extensions;

use crate::schema::NAMES;

/// The target a role belongs to, with the attributes policies may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetAttrs<'a> {
    /// Target name, unique among targets.
    pub name: &'a str,
    /// Kind of target, e.g. `"postgres"` or `"ssh"`.
    pub kind: &'a str,
    /// Risk tier, 1 (low) to 4 (critical).
    pub risk_tier: i64,
    /// Name of the owner group.
    pub owner: &'a str,
}

/// Facts about the activation request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// Requested duration of the grant, in seconds.
    pub duration_secs: i64,
    /// Whether the requester gave a reason.
    pub has_reason: bool,
    /// Whether the requester gave a ticket reference.
    pub has_ticket: bool,
    /// Whether the requester passed multi-factor authentication in this session.
    pub mfa: bool,
    /// The time of the request, unix seconds.
    pub now_unix: i64,
}

impl RequestContext {
    /// Hour of the day (0–23, UTC) at `now_unix`.
    pub fn hour(&self) -> i64 {
        self.now_unix.rem_euclid(86_400) / 3_600
    }

    /// Day of the week (1 = Monday .. 7 = Sunday, UTC) at `now_unix`.
    pub fn weekday(&self) -> i64 {
        // 1970-01-01 was a Thursday (4).
        (self.now_unix.div_euclid(86_400) + 3).rem_euclid(7) + 1
    }
}

/// One question to the engine: may `identity` activate `role` on `target` now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionInput<'a> {
    /// Identity id.
    pub identity: &'a str,
    /// The identity's email address.
    pub email: &'a str,
    /// Whether the identity is active (not suspended or departed).
    pub active: bool,
    /// Names of every group the identity belongs to, directly or not.
    pub groups: &'a [String],
    /// The target holding the role.
    pub target: TargetAttrs<'a>,
    /// Role name on the target.
    pub role: &'a str,
    /// Facts about the request.
    pub context: RequestContext,
}

impl DecisionInput<'_> {
    /// The Cedar request and entities for this input.
    ///
    /// Built with `cedar-policy-core` rather than the public API because the public
    /// `Entities::from_entities` always recomputes the transitive closure of the hierarchy, which
    /// costs ~10 µs even for three entities, more than the rest of a decision. Ours is closed by
    /// construction: the identity's parents are all its groups (groups have no parents), the
    /// role's parent is its target (targets have none). Group entities are left out: with no
    /// attributes and no parents they add nothing to an evaluation.
    pub(crate) fn to_cedar(self) -> Result<(Request, Entities), String> {
        let uid = |ty: &EntityTypeName, id: &str| {
            ast::EntityUID::from_components(ty.as_ref().clone(), ast::Eid::new(id), None)
        };
        let principal = uid(&NAMES.identity, self.identity);
        let target = uid(&NAMES.target, self.target.name);
        let resource = uid(&NAMES.role, &role_id(self.target.name, self.role));
        let groups = self.groups.iter().map(|g| uid(&NAMES.group, g)).collect();
        let entity = |uid: &ast::EntityUID, attrs: Vec<(&str, ast::Value)>, parents| {
            let attrs = attrs.into_iter().map(|(k, v)| (k.into(), v.into()));
            ast::Entity::new_with_attr_partial_value(
                uid.clone(),
                attrs,
                HashSet::new(),
                parents,
                [],
            )
        };
        let entities = [
            entity(
                &principal,
                vec![("email", self.email.into()), ("active", self.active.into())],
                groups,
            ),
            entity(
                &target,
                vec![
                    ("kind", self.target.kind.into()),
                    ("risk_tier", self.target.risk_tier.into()),
                    ("owner", self.target.owner.into()),
                ],
                HashSet::new(),
            ),
            entity(
                &resource,
                vec![
                    ("name", self.role.into()),
                    ("target", target.clone().into()),
                ],
                HashSet::from([target.clone()]),
            ),
        ];
        let entities = entities::Entities::from_entities(
            entities,
            None::<&entities::NoEntitiesSchema>,
            entities::TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        )
        .map_err(|e| e.to_string())?;

        let c = &self.context;
        let context = [
            ("duration_secs", c.duration_secs.into()),
            ("has_reason", c.has_reason.into()),
            ("has_ticket", c.has_ticket.into()),
            ("mfa", c.mfa.into()),
            ("now", c.now_unix.into()),
            ("hour", c.hour().into()),
            ("weekday", c.weekday().into()),
        ];
        let context = context
            .into_iter()
            .map(|(k, v): (&str, ast::Value)| (k.into(), v))
            .collect();
        let known = |uid: ast::EntityUID| ast::EntityUIDEntry::known(uid, None);
        let request = ast::Request::new_unchecked(
            known(principal),
            known(NAMES.activate.as_ref().clone()),
            known(resource),
            Some(ast::Context::Value(Arc::new(context))),
        );
        Ok((request.into(), entities.into()))
    }
}

/// The entity id of a role: `"TARGET/ROLE"`.
pub(crate) fn role_id(target: &str, role: &str) -> String {
    format!("{target}/{role}")
}

/// The answer, with what led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether activation is allowed: some permit was satisfied, no forbid fired, no error.
    pub allowed: bool,
    /// Ids of the eligibility rules whose permit was satisfied.
    pub matched_rules: Vec<String>,
    /// Names of the custom permits that were satisfied.
    pub custom_permits: Vec<String>,
    /// Names of the custom forbids that fired.
    pub forbids: Vec<String>,
    /// Evaluation errors (e.g. an attribute missing); an error never allows.
    pub errors: Vec<String>,
    /// How many policies were evaluated: the slice for this target and role.
    pub evaluated: usize,
    /// The identity asked about.
    pub identity: String,
    /// The target asked about.
    pub target: String,
    /// The role asked about.
    pub role: String,
}

impl Decision {
    /// One line for people, e.g. `allowed by rule r1` or `denied: forbidden by policy
    /// no-weekends`.
    pub fn explain(&self) -> String {
        if self.allowed {
            let mut by = Vec::new();
            if !self.matched_rules.is_empty() {
                by.push(list("rule", "rules", &self.matched_rules));
            }
            if !self.custom_permits.is_empty() {
                by.push(list("policy", "policies", &self.custom_permits));
            }
            format!("allowed by {}", by.join(" and "))
        } else if !self.forbids.is_empty() {
            format!(
                "denied: forbidden by {}",
                list("policy", "policies", &self.forbids)
            )
        } else if !self.errors.is_empty() {
            format!("denied: evaluation error: {}", self.errors.join("; "))
        } else {
            format!(
                "denied: no eligibility rule or policy permits {} to activate {}/{}",
                self.identity, self.target, self.role
            )
        }
    }
}

/// `rule r1` or `rules r1, r2`.
fn list(one: &str, many: &str, names: &[String]) -> String {
    let kind = if names.len() == 1 { one } else { many };
    format!("{kind} {}", names.join(", "))
}

//! The engine: rules and custom policies sliced by resource, one small Cedar evaluation per
//! decision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::LazyLock;

use cedar_policy::{
    Authorizer, Effect, EntityId, EntityUid, Policy, PolicyId, PolicySet, ResourceConstraint,
    SlotId, Template,
};

use crate::custom::{self, CustomPolicy};
use crate::decision::{Decision, DecisionInput, role_id};
use crate::error::PolicyError;
use crate::schema::NAMES;

/// Who an eligibility rule makes eligible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One identity, by id.
    Identity(String),
    /// Every member of a group, by name.
    Group(String),
}

/// An eligibility rule: `subject` may activate `role` on `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Unique id; decisions report it in `matched_rules`.
    pub id: String,
    /// Who is eligible.
    pub subject: Subject,
    /// Target name; must not contain `/`.
    pub target: String,
    /// Role name on the target; must not contain `/`.
    pub role: String,
}

/// The template every rule links: principal and resource are the rule's subject and role.
const RULE_TEMPLATE: &str = r#"permit(principal in ?principal, action == Warrant::Action::"activate", resource == ?resource);"#;

#[expect(
    clippy::expect_used,
    reason = "the template is a constant; the test suite parses it"
)]
static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    Template::parse(Some(PolicyId::new("rule")), RULE_TEMPLATE).expect("RULE_TEMPLATE parses")
});

const RULE_PREFIX: &str = "rule:";

/// Decides eligibility with Cedar, evaluating per decision only the policies that can apply.
///
/// Policies are sliced by their resource scope: a rule, or a custom policy scoped to one role
/// (`resource == Warrant::Role::"t/r"`), lands in that role's slice; a custom policy scoped to a
/// target (`resource in Warrant::Target::"t"`) in every slice of that target; any other custom
/// policy in every slice. All slices are built up front, so deciding takes no lock.
pub struct PolicyEngine {
    authorizer: Authorizer,
    targets: HashMap<String, TargetSlices>,
    /// For targets with no rule and no target-scoped policy.
    global: Slice,
    annotations: HashMap<String, BTreeMap<String, String>>,
    rule_count: usize,
}

struct TargetSlices {
    roles: HashMap<String, Slice>,
    /// For roles of this target with no slice of their own, when the target has scoped policies.
    any_role: Option<Slice>,
}

/// The policies for one key; forbids apart so that satisfied permits are known even when a
/// forbid fires (Cedar reports only the policies that determined the decision).
struct Slice {
    permits: PolicySet,
    forbids: PolicySet,
}

/// Where a custom policy applies, from its resource scope.
enum Scope {
    Global,
    Target(String),
    Role(String, String),
}

#[derive(Default)]
struct TargetPolicies<'a> {
    roles: HashMap<String, RolePolicies<'a>>,
    custom: Vec<Policy>,
}

#[derive(Default)]
struct RolePolicies<'a> {
    rules: Vec<&'a RuleSpec>,
    custom: Vec<Policy>,
}

impl PolicyEngine {
    /// Builds the engine, validating every custom policy against the schema.
    pub fn new(rules: &[RuleSpec], custom: &[CustomPolicy]) -> Result<Self, PolicyError> {
        let mut targets: HashMap<String, TargetPolicies<'_>> = HashMap::new();
        let mut global = Vec::new();
        let mut annotations = HashMap::new();
        for c in custom {
            let policy = custom::parse(&c.name, &c.text)?;
            let annotated = policy
                .annotations()
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
            if annotations
                .insert(c.name.clone(), annotated.collect())
                .is_some()
            {
                return Err(PolicyError::Duplicate {
                    id: policy.id().to_string(),
                });
            }
            match scope(&policy) {
                Scope::Global => global.push(policy),
                Scope::Target(t) => targets.entry(t).or_default().custom.push(policy),
                Scope::Role(t, r) => {
                    let role = targets.entry(t).or_default().roles.entry(r).or_default();
                    role.custom.push(policy);
                }
            }
        }
        let mut ids = HashSet::new();
        for rule in rules {
            if !ids.insert(rule.id.as_str()) {
                return Err(PolicyError::Duplicate {
                    id: format!("{RULE_PREFIX}{}", rule.id),
                });
            }
            if let Some(name) = [&rule.target, &rule.role]
                .into_iter()
                .find(|n| n.contains('/'))
            {
                return Err(PolicyError::BadName {
                    rule: rule.id.clone(),
                    name: name.clone(),
                });
            }
            let target = targets.entry(rule.target.clone()).or_default();
            target
                .roles
                .entry(rule.role.clone())
                .or_default()
                .rules
                .push(rule);
        }

        let targets = targets
            .into_iter()
            .map(|(name, target)| {
                let shared: Vec<&Policy> = target.custom.iter().chain(&global).collect();
                let roles = target
                    .roles
                    .into_iter()
                    .map(|(role, p)| {
                        let slice = Slice::new(&p.rules, p.custom.iter().chain(shared.clone()))?;
                        Ok((role, slice))
                    })
                    .collect::<Result<_, PolicyError>>()?;
                let any_role = match target.custom.is_empty() {
                    true => None,
                    false => Some(Slice::new(&[], shared)?),
                };
                Ok((name, TargetSlices { roles, any_role }))
            })
            .collect::<Result<_, PolicyError>>()?;
        Ok(Self {
            authorizer: Authorizer::new(),
            targets,
            global: Slice::new(&[], &global)?,
            annotations,
            rule_count: rules.len(),
        })
    }

    /// Decides whether the input's identity may activate its role; denies by default, and on
    /// any evaluation error.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let slice = self.slice(input.target.name, input.role);
        let mut decision = Decision {
            allowed: false,
            matched_rules: Vec::new(),
            custom_permits: Vec::new(),
            forbids: Vec::new(),
            errors: Vec::new(),
            evaluated: slice.len(),
            identity: input.identity.to_owned(),
            target: input.target.name.to_owned(),
            role: input.role.to_owned(),
        };
        // A '/' would make the role id ambiguous, and the slice possibly not the right one.
        if input.target.name.contains('/') || input.role.contains('/') {
            decision
                .errors
                .push("target and role names must not contain '/'".to_owned());
            return decision;
        }
        let (request, entities) = match input.to_cedar() {
            Ok(cedar) => cedar,
            Err(error) => {
                decision.errors.push(error);
                return decision;
            }
        };
        let sets = [
            (&slice.permits, &mut decision.custom_permits),
            (&slice.forbids, &mut decision.forbids),
        ];
        for (set, custom_names) in sets {
            if set.is_empty() {
                continue;
            }
            let response = self.authorizer.is_authorized(&request, set, &entities);
            let diagnostics = response.diagnostics();
            decision
                .errors
                .extend(diagnostics.errors().map(ToString::to_string));
            for id in diagnostics.reason().map(AsRef::<str>::as_ref) {
                if let Some(rule) = id.strip_prefix(RULE_PREFIX) {
                    decision.matched_rules.push(rule.to_owned());
                } else if let Some(name) = id.strip_prefix(custom::PREFIX) {
                    custom_names.push(name.to_owned());
                }
            }
        }
        // Cedar reports in no particular order.
        decision.matched_rules.sort_unstable();
        decision.custom_permits.sort_unstable();
        decision.forbids.sort_unstable();
        decision.allowed = (!decision.matched_rules.is_empty()
            || !decision.custom_permits.is_empty())
            && decision.forbids.is_empty()
            && decision.errors.is_empty();
        decision
    }

    /// The annotations of the custom policy `name` (e.g. `@max_duration("2h")`), if it exists.
    pub fn custom_annotations(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.annotations.get(name).cloned()
    }

    /// Number of eligibility rules.
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Number of custom policies.
    pub fn custom_count(&self) -> usize {
        self.annotations.len()
    }

    fn slice(&self, target: &str, role: &str) -> &Slice {
        self.targets
            .get(target)
            .and_then(|t| t.roles.get(role).or(t.any_role.as_ref()))
            .unwrap_or(&self.global)
    }
}

impl Slice {
    fn new<'p>(
        rules: &[&RuleSpec],
        custom: impl IntoIterator<Item = &'p Policy>,
    ) -> Result<Self, PolicyError> {
        let mut permits = PolicySet::new();
        let mut forbids = PolicySet::new();
        if !rules.is_empty() {
            permits.add_template(TEMPLATE.clone())?;
        }
        for rule in rules {
            let (ty, name) = match &rule.subject {
                Subject::Identity(id) => (&NAMES.identity, id),
                Subject::Group(group) => (&NAMES.group, group),
            };
            let principal = EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(name));
            let resource = EntityUid::from_type_name_and_id(
                NAMES.role.clone(),
                EntityId::new(role_id(&rule.target, &rule.role)),
            );
            permits.link(
                TEMPLATE.id().clone(),
                PolicyId::new(format!("{RULE_PREFIX}{}", rule.id)),
                HashMap::from([
                    (SlotId::principal(), principal),
                    (SlotId::resource(), resource),
                ]),
            )?;
        }
        for policy in custom {
            match policy.effect() {
                Effect::Permit => permits.add(policy.clone())?,
                Effect::Forbid => forbids.add(policy.clone())?,
            }
        }
        Ok(Self { permits, forbids })
    }

    fn len(&self) -> usize {
        self.permits.num_of_policies() + self.forbids.num_of_policies()
    }
}

/// The slice a custom policy belongs to, from its resource scope; anything not naming one role
/// or one target is global.
fn scope(policy: &Policy) -> Scope {
    let (ResourceConstraint::Eq(uid)
    | ResourceConstraint::In(uid)
    | ResourceConstraint::IsIn(_, uid)) = policy.resource_constraint()
    else {
        return Scope::Global;
    };
    let (ty, id) = (uid.type_name(), uid.id().unescaped());
    if *ty == NAMES.target {
        return Scope::Target(id.to_owned());
    }
    match id.split_once('/') {
        Some((target, role)) if *ty == NAMES.role => {
            Scope::Role(target.to_owned(), role.to_owned())
        }
        _ => Scope::Global,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use cedar_policy::{PolicySet, ValidationMode};

    use super::TEMPLATE;
    use crate::schema::NAMES;

    #[test]
    fn rule_template_fits_the_schema() {
        let mut set = PolicySet::new();
        set.add_template(TEMPLATE.clone()).unwrap();
        let result = NAMES.validator.validate(&set, ValidationMode::Strict);
        assert!(result.validation_passed_without_warnings(), "{result}");
    }
}

//! The cached policy set: rules and custom policies compiled into a
//! [`warrant_policy::PolicyEngine`], with each permit's activation settings beside it.

use std::collections::{BTreeMap, HashMap};

use warrant_core::{ActivationDuration, ActivationSettings, ApprovalStage, Rule, Subject};
use warrant_policy::{CustomPolicy, PolicyEngine, RuleSpec};
use warrant_store::Store;

use crate::error::{EngineError, Result};

/// A compiled policy set.
pub struct PolicyState {
    /// The decision engine.
    pub engine: PolicyEngine,
    /// Rules by id.
    pub rules: HashMap<String, Rule>,
    /// Activation settings of each custom permit, from its annotations.
    pub custom_settings: HashMap<String, ActivationSettings>,
}

/// Settings for a custom permit policy that names none: one hour, a reason, and one approval by
/// the target's owners. An admin's permit never skips approval unless it says so.
pub fn default_custom_settings() -> ActivationSettings {
    ActivationSettings {
        max_duration: ActivationDuration::ONE_HOUR,
        require_reason: true,
        ticket_pattern: None,
        require_mfa: false,
        approvals: vec![ApprovalStage {
            from: warrant_core::ApproverSource::Owners,
            count: 1,
            require_mfa: false,
        }],
    }
}

/// Reads activation settings from a custom policy's annotations:
/// `@max_duration("2h")`, `@require_reason("false")`, `@require_mfa("true")`,
/// `@ticket_pattern("^CHG-[0-9]+$")`, `@approvals("owners:1, group:security:2")` (`none` for no
/// approval).
pub fn settings_from_annotations(
    name: &str,
    a: &BTreeMap<String, String>,
) -> Result<ActivationSettings> {
    let bad = |what: &str, v: &str, hint: &str| {
        EngineError::invalid(
            "policy_invalid",
            format!("policy {name}: annotation @{what}({v:?}) is invalid: {hint}"),
        )
    };
    let bool_of = |k: &str, default: bool| -> Result<bool> {
        match a.get(k).map(String::as_str) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(bad(k, v, "write \"true\" or \"false\"")),
        }
    };
    let mut s = default_custom_settings();
    if let Some(v) = a.get("max_duration") {
        s.max_duration =
            ActivationDuration::parse(v).map_err(|e| bad("max_duration", v, &e.to_string()))?;
    }
    s.require_reason = bool_of("require_reason", s.require_reason)?;
    s.require_mfa = bool_of("require_mfa", s.require_mfa)?;
    if let Some(v) = a.get("ticket_pattern") {
        regex::Regex::new(v).map_err(|e| bad("ticket_pattern", v, &e.to_string()))?;
        s.ticket_pattern = Some(v.clone());
    }
    if let Some(v) = a.get("approvals") {
        s.approvals = parse_stages(v).map_err(|e| bad("approvals", v, &e))?;
    }
    Ok(s)
}

/// Parses `owners:1, group:security:2:mfa` (or `none`) into stages; a trailing `:mfa` makes the
/// stage's approvers prove a fresh second factor.
pub fn parse_stages(v: &str) -> std::result::Result<Vec<ApprovalStage>, String> {
    if v.trim() == "none" || v.trim().is_empty() {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|part| {
            let part = part.trim();
            let (part, require_mfa) = match part.strip_suffix(":mfa") {
                Some(rest) => (rest, true),
                None => (part, false),
            };
            let (from, count) = part
                .rsplit_once(':')
                .ok_or_else(|| format!("{part:?} should read SOURCE:COUNT, e.g. owners:1"))?;
            let count: u32 = count
                .parse()
                .ok()
                .filter(|c| *c >= 1)
                .ok_or_else(|| format!("{part:?}: the count must be a whole number ≥ 1"))?;
            Ok(ApprovalStage {
                from: from.parse()?,
                count,
                require_mfa,
            })
        })
        .collect()
}

impl PolicyState {
    /// Compiles the rules and custom policies stored in `store`.
    pub async fn load(store: &Store) -> Result<Self> {
        let mut r = store.read().await?;
        let rules = r.q().rules().await?;
        let policies = r.q().policies().await?;
        Self::build(rules, policies)
    }

    /// Compiles a policy set.
    pub fn build(rules: Vec<Rule>, policies: Vec<(String, String)>) -> Result<Self> {
        let specs: Vec<RuleSpec> = rules
            .iter()
            .map(|r| RuleSpec {
                id: r.id(),
                subject: match &r.subject {
                    Subject::Identity(n) => warrant_policy::Subject::Identity(n.to_string()),
                    Subject::Group(n) => warrant_policy::Subject::Group(n.to_string()),
                },
                target: r.target.to_string(),
                role: r.role.to_string(),
            })
            .collect();
        let custom: Vec<CustomPolicy> = policies
            .into_iter()
            .map(|(name, text)| CustomPolicy { name, text })
            .collect();
        let engine = PolicyEngine::new(&specs, &custom)
            .map_err(|e| EngineError::invalid(e.code(), e.to_string()))?;
        let mut custom_settings = HashMap::new();
        for c in &custom {
            let a = engine.custom_annotations(&c.name).unwrap_or_default();
            custom_settings.insert(c.name.clone(), settings_from_annotations(&c.name, &a)?);
        }
        Ok(Self {
            engine,
            rules: rules.into_iter().map(|r| (r.id(), r)).collect(),
            custom_settings,
        })
    }
}

//! Custom policies written by admins: parsed, checked to be a single policy, validated.

use std::str::FromStr;

use cedar_policy::{Policy, PolicyId, PolicySet, ValidationMode};

use crate::error::{Diagnostic, PolicyError};
use crate::schema::NAMES;

/// Prefix of the Cedar policy ids of custom policies.
pub(crate) const PREFIX: &str = "custom:";

/// A Cedar policy written by an admin, such as a time window or a risk-tier forbid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPolicy {
    /// Unique name; decisions report it in `custom_permits` and `forbids`.
    pub name: String,
    /// Exactly one Cedar policy, in Cedar syntax.
    pub text: String,
}

/// Checks that `text` is exactly one Cedar policy that validates (strictly) against
/// [`SCHEMA`](crate::SCHEMA). Errors carry 1-based line and column positions in `text`.
pub fn validate_custom(name: &str, text: &str) -> Result<(), PolicyError> {
    parse(name, text).map(drop)
}

/// Parses and validates a custom policy, giving it the id `custom:{name}`.
pub(crate) fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let parse_error = |e: cedar_policy::ParseErrors| PolicyError::Parse {
        name: name.to_owned(),
        diagnostics: Diagnostic::collect(text, e.iter()),
    };
    let set = PolicySet::from_str(text).map_err(parse_error)?;
    let count = set.num_of_policies() + set.num_of_templates();
    if count != 1 {
        return Err(PolicyError::NotSingle {
            name: name.to_owned(),
            count,
        });
    }
    // Parsed again as a single policy so that a template (a policy with slots) is refused with
    // a positioned error, and so that the policy gets our id.
    let id = PolicyId::new(format!("{PREFIX}{name}"));
    let policy = Policy::parse(Some(id.clone()), text).map_err(parse_error)?;
    let result = NAMES.validator.validate(
        &PolicySet::from_policies([policy.clone()])?,
        ValidationMode::Strict,
    );
    if result.validation_passed() {
        Ok(policy)
    } else {
        // Cedar names the policy by its id, which the author never wrote.
        let ours = format!("for policy `{id}`, ");
        let mut diagnostics = Diagnostic::collect(text, result.validation_errors());
        for d in &mut diagnostics {
            if let Some(rest) = d.message.strip_prefix(&ours) {
                d.message = rest.to_owned();
            }
        }
        Err(PolicyError::Validation {
            name: name.to_owned(),
            diagnostics,
        })
    }
}

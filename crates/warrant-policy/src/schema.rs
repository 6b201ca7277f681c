//! The Cedar schema every policy is validated against, and the names it defines.

use std::str::FromStr;
use std::sync::LazyLock;

use cedar_policy::{EntityTypeName, EntityUid, Schema, Validator};

/// The Cedar schema (human-readable syntax) for eligibility and custom policies.
///
/// Identities belong to groups; a role (`"TARGET/ROLE"`) belongs to its target and refers to
/// it, so that policies can read the target's attributes (`resource.target.risk_tier`). The single
/// action, `activate`, carries the request's context: the requested duration, whether a reason
/// and a ticket were given, whether the identity passed MFA, and the time (`now` in unix seconds,
/// `hour` 0–23 UTC, `weekday` 1 = Monday .. 7 = Sunday).
pub const SCHEMA: &str = r#"namespace Warrant {
    entity Group;
    entity Identity in [Group] { email: String, active: Bool };
    entity Target { kind: String, risk_tier: Long, owner: String };
    entity Role in [Target] { name: String, target: Target };
    action "activate" appliesTo {
        principal: Identity,
        resource: Role,
        context: {
            duration_secs: Long,
            has_reason: Bool,
            has_ticket: Bool,
            mfa: Bool,
            now: Long,
            hour: Long,
            weekday: Long,
        }
    };
}
"#;

/// Parsed forms of [`SCHEMA`] and its names, built once per process.
pub(crate) struct Names {
    pub(crate) validator: Validator,
    pub(crate) group: EntityTypeName,
    pub(crate) identity: EntityTypeName,
    pub(crate) target: EntityTypeName,
    pub(crate) role: EntityTypeName,
    pub(crate) activate: EntityUid,
}

#[expect(
    clippy::expect_used,
    reason = "the schema and names are constants; the test suite parses them"
)]
pub(crate) static NAMES: LazyLock<Names> = LazyLock::new(|| {
    let ty = |name: &str| EntityTypeName::from_str(name).expect("valid entity type name");
    Names {
        validator: Validator::new(Schema::from_str(SCHEMA).expect("SCHEMA parses")),
        group: ty("Warrant::Group"),
        identity: ty("Warrant::Identity"),
        target: ty("Warrant::Target"),
        role: ty("Warrant::Role"),
        activate: EntityUid::from_str(r#"Warrant::Action::"activate""#).expect("valid action uid"),
    }
});

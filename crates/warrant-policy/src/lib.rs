//! Eligibility decisions for Warrant, with [Cedar](https://www.cedarpolicy.com) behind a small
//! API of our own.
//!
//! Eligibility rules ([`RuleSpec`]: an identity or group may activate a role on a target) become
//! links of one Cedar template; admins add [`CustomPolicy`]s (time windows, risk tiers, forbid
//! rules) that are validated against [`SCHEMA`] when written, with positioned errors. A
//! [`PolicyEngine`] answers [`DecisionInput`]s with a [`Decision`], evaluating only the policies
//! that can apply to the requested target and role, so a decision costs the same with three
//! rules or ten thousand.
//!
//! Layout: `schema` holds the Cedar schema; `custom` parses and validates custom policies;
//! `engine` slices policies by resource and decides; `decision` holds the input and output
//! types; `error` the errors and their source positions.

mod custom;
mod decision;
mod engine;
mod error;
mod schema;

pub use custom::{CustomPolicy, validate_custom};
pub use decision::{Decision, DecisionInput, RequestContext, TargetAttrs};
pub use engine::{PolicyEngine, RuleSpec, Subject};
pub use error::{Diagnostic, PolicyError};
pub use schema::SCHEMA;

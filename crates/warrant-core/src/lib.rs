//! Warrant's domain: the types and state machines of privileged access, with no IO.
//!
//! - [`name`]: validated names of identities, groups, targets and roles.
//! - [`time`]: [`Timestamp`], [`Clock`] and validated [`ActivationDuration`]s.
//! - [`model`]: the directory and catalogue (identities, groups, targets, roles, eligibility
//!   rules with their activation settings and approval stages).
//! - [`request`]: the request state machine (pending → approved | denied | cancelled | expired).
//! - [`grant`]: grants and their effective status at a given instant.
//!
//! Everything here is pure: the clock is passed in, so expiry is tested without sleeping.

pub mod grant;
pub mod model;
pub mod name;
pub mod request;
pub mod secret;
pub mod time;

pub use grant::{Grant, GrantStatus};
pub use model::{
    ActivationSettings, ApprovalStage, ApproverSource, ConnectorSettings, Group, Identity,
    IdentityStatus, Rule, Source, Subject, SystemRole, Target, TargetKind, TargetRole,
};
pub use name::{Name, NameError};
pub use request::{Approval, Request, RequestError, RequestStatus, StageOutcome};
pub use secret::Secret;
pub use time::{ActivationDuration, Clock, DurationError, ManualClock, SystemClock, Timestamp};

//! Grants: time-bound privileges, and their status at an instant.

use crate::name::Name;
use crate::time::Timestamp;

/// A grant's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Approved, waiting for its requested start.
    Scheduled,
    /// In force.
    Active,
    /// Reached its end.
    Ended,
    /// Ended early by a revocation (admin, owner, holder, leaver, mover).
    Revoked,
}

impl GrantStatus {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Ended => "ended",
            Self::Revoked => "revoked",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => Self::Scheduled,
            "active" => Self::Active,
            "ended" => Self::Ended,
            "revoked" => Self::Revoked,
            _ => return None,
        })
    }

    /// Whether the grant is closed for good.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Ended | Self::Revoked)
    }
}

/// A time-bound privilege: `identity` holds `role` on `target` from `starts_at` until `ends_at`.
/// A grant cannot exist without an end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Unique id.
    pub id: String,
    /// The request it came from.
    pub request_id: String,
    /// The holder.
    pub identity: Name,
    /// The target.
    pub target: Name,
    /// The role on the target.
    pub role: Name,
    /// The rule that made the holder eligible.
    pub rule_id: String,
    /// When it takes effect.
    pub starts_at: Timestamp,
    /// When it ends, always after `starts_at`.
    pub ends_at: Timestamp,
    /// Stored status (see [`Grant::status_at`] for the effective one).
    pub status: GrantStatus,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Who revoked it (none for leaver and mover handling).
    pub revoked_by: Option<Name>,
    /// Why it was revoked.
    pub revoke_reason: Option<String>,
}

impl Grant {
    /// The status at `now`. An ended grant is never reported active, even when the scheduler has
    /// not yet closed it.
    pub fn status_at(&self, now: Timestamp) -> GrantStatus {
        match self.status {
            GrantStatus::Revoked | GrantStatus::Ended => self.status,
            _ if now >= self.ends_at => GrantStatus::Ended,
            _ if now < self.starts_at => GrantStatus::Scheduled,
            _ => GrantStatus::Active,
        }
    }

    /// Whether the grant is in force at `now`.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.status_at(now) == GrantStatus::Active
    }
}

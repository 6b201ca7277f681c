//! The directory (identities, groups) and the catalogue (targets, roles, eligibility rules).

use std::fmt;

use crate::name::Name;
use crate::time::{ActivationDuration, Timestamp};

/// Whether an identity may act at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    /// May sign in, request and approve.
    Active,
    /// A leaver: no grants, no pending requests, no sign-in.
    Disabled,
}

impl IdentityStatus {
    /// The stable spelling: `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// Warrant's own authority of an identity. Approver rights are not a role: they come from
/// approval stages and target ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SystemRole {
    /// Everyone: may request, and approve where a stage names them.
    User,
    /// Reads everything, audit included; changes nothing.
    Auditor,
    /// Manages the directory, catalogue and policy; revokes any grant.
    Admin,
}

impl SystemRole {
    /// The stable spelling: `user`, `auditor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// Where an identity or group comes from: the authority for its attributes.
///
/// Attributes that a source owns (everything but Warrant's own system role) are changed only by
/// that source; local edits are refused, so a sync never silently undoes an admin's change and
/// an admin never silently overrides the organisation's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Created in Warrant (CLI, API, org file, demo).
    Local,
    /// Provisioned by an IdP over SCIM 2.0.
    Scim,
    /// Pulled from LDAP / Active Directory.
    Ldap,
    /// Created at first OIDC sign-in.
    Oidc,
}

impl Source {
    /// The stable spelling: `local`, `scim`, `ldap` or `oidc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Scim => "scim",
            Self::Ldap => "ldap",
            Self::Oidc => "oidc",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "scim" => Some(Self::Scim),
            "ldap" => Some(Self::Ldap),
            "oidc" => Some(Self::Oidc),
            _ => None,
        }
    }

    /// Whether this source owns the attributes of what it created (everything but `Local`).
    pub fn is_external(self) -> bool {
        self != Self::Local
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person (or service) known to Warrant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Unique name; what people sign in with.
    pub name: Name,
    /// Human-friendly name.
    pub display_name: String,
    /// Contact address.
    pub email: String,
    /// Active or disabled.
    pub status: IdentityStatus,
    /// The identity's manager, who may approve stages that name `manager`.
    pub manager: Option<Name>,
    /// Warrant's own authority.
    pub system_role: SystemRole,
    /// When the identity was created.
    pub created_at: Timestamp,
    /// Who owns its attributes.
    pub source: Source,
    /// The source's own id for it (SCIM `externalId`, LDAP `entryUUID`/`objectGUID`, OIDC `sub`).
    pub external_id: Option<String>,
}

/// A group of identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Unique name.
    pub name: Name,
    /// Free text (for groups from a source: its display name there).
    pub description: String,
    /// Who owns the group and its memberships.
    pub source: Source,
    /// The source's own id for it.
    pub external_id: Option<String>,
}

impl Group {
    /// A group created in Warrant.
    pub fn local(name: Name, description: impl Into<String>) -> Self {
        Self {
            name,
            description: description.into(),
            source: Source::Local,
            external_id: None,
        }
    }
}

/// The kind of a target, which decides the connector that will realise its roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A PostgreSQL server.
    Postgres,
    /// An SSH host.
    Ssh,
    /// Anything else: grants are answered through the check API.
    Generic,
}

impl TargetKind {
    /// The stable spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Ssh => "ssh",
            Self::Generic => "generic",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "postgres" => Some(Self::Postgres),
            "ssh" => Some(Self::Ssh),
            "generic" => Some(Self::Generic),
            _ => None,
        }
    }
}

/// The lowest and highest risk tier (1 low, 2 medium, 3 high, 4 critical).
pub const RISK_TIERS: std::ops::RangeInclusive<i64> = 1..=4;

/// A system that privileged roles give access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Unique name.
    pub name: Name,
    /// What kind of system it is.
    pub kind: TargetKind,
    /// Where connectors reach it (`host:port`).
    pub address: Option<String>,
    /// The accountable group: its members approve `owners` stages and may revoke grants.
    pub owner: Name,
    /// 1 low, 2 medium, 3 high, 4 critical.
    pub risk_tier: i64,
    /// Free text.
    pub description: String,
    /// The connector's own login on the target (PostgreSQL; SSH: the account Warrant's managed
    /// key logs in as, for discovery and rotation).
    pub admin_user: Option<String>,
    /// SSH: the target's host key (one OpenSSH public key line), pinned for Warrant's own
    /// connections.
    pub host_key: Option<String>,
    /// How Warrant's connector talks to the target.
    pub connector: ConnectorSettings,
}

/// Connector settings of a target (PostgreSQL).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectorSettings {
    /// `verify-full` (TLS, the server's certificate checked) or `disable` (plain TCP). Absent:
    /// plain TCP to a loopback address, `verify-full` to anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// PEM file of the CA certificates that `verify-full` trusts (default: the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// What happens to objects a temporary role created when it is dropped: `reassign` (to
    /// the admin_user; the default) or `drop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_objects: Option<String>,
}

/// A privileged role on a target: a named privilege that grants refer to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRole {
    /// The target it belongs to.
    pub target: Name,
    /// Its name, unique within the target.
    pub name: Name,
    /// SSH: principals of certificates issued under this role.
    pub principals: Vec<String>,
    /// SSH: the upstream account the gateway logs in as.
    pub login: Option<String>,
    /// PostgreSQL: memberships of the temporary role.
    pub db_roles: Vec<String>,
    /// A vaulted account on the target that a grant of this role may check out.
    pub account: Option<String>,
    /// SSH gateway: `strict` (default: no recording, no session), `best-effort` or `off`.
    pub record: Option<String>,
    /// SSH gateway: record what the person types too.
    pub record_input: bool,
    /// SSH gateway: forwarding the role allows through the gateway (`port`: `ssh -L` / `-W`
    /// to what the target can reach; `agent`: `ssh -A`). Everything else is refused.
    pub forwarding: Vec<String>,
}

/// Who an eligibility rule is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// One identity.
    Identity(Name),
    /// Every member of a group.
    Group(Name),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity(n) => write!(f, "identity:{n}"),
            Self::Group(n) => write!(f, "group:{n}"),
        }
    }
}

/// Where the approvers of a stage come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApproverSource {
    /// Members of the target's owner group.
    Owners,
    /// The requester's manager.
    Manager,
    /// Members of a named group.
    Group(Name),
}

impl fmt::Display for ApproverSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Owners => f.write_str("owners"),
            Self::Manager => f.write_str("manager"),
            Self::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl std::str::FromStr for ApproverSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owners" => Ok(Self::Owners),
            "manager" => Ok(Self::Manager),
            _ => match s.strip_prefix("group:") {
                Some(g) => Name::new(g).map(Self::Group).map_err(|e| e.to_string()),
                None => Err(format!(
                    "approver source {s:?} is not one of owners, manager, group:NAME"
                )),
            },
        }
    }
}

impl serde::Serialize for ApproverSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ApproverSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One approval stage: `count` distinct approvals from `from`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStage {
    /// Where the approvers come from.
    pub from: ApproverSource,
    /// How many distinct approvals pass the stage (at least 1).
    pub count: u32,
    /// Approvers of this stage must have proved a second factor within the last 5 minutes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_mfa: bool,
}

/// What an activation under a rule must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationSettings {
    /// The longest grant the rule allows.
    pub max_duration: ActivationDuration,
    /// A reason must be given.
    pub require_reason: bool,
    /// A ticket must be given and match this regular expression (anchored).
    pub ticket_pattern: Option<String>,
    /// MFA is required (enforced once sign-in MFA exists).
    pub require_mfa: bool,
    /// Ordered stages; empty means no approval needed.
    pub approvals: Vec<ApprovalStage>,
}

/// An eligibility rule: `subject` may request `role` on `target` under `settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Who.
    pub subject: Subject,
    /// Which target.
    pub target: Name,
    /// Which role on it.
    pub role: Name,
    /// Activation settings.
    pub settings: ActivationSettings,
}

impl Rule {
    /// The rule's stable id: `group:dba/pg-prod/admin` or `identity:alice/pg-prod/admin`.
    /// Names never contain `/`, so the id is unambiguous.
    pub fn id(&self) -> String {
        rule_id(&self.subject, &self.target, &self.role)
    }
}

/// The id of the rule for `subject` → `role` on `target`.
pub fn rule_id(subject: &Subject, target: &Name, role: &Name) -> String {
    format!("{subject}/{target}/{role}")
}

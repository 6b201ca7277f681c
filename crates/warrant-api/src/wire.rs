//! The JSON shapes of the REST API: the only serialisable views of Warrant's domain. Inputs
//! refuse unknown fields; outputs keep the spellings that scripts rely on (PRODUCT.md).

use serde::{Deserialize, Serialize};
use warrant_core::{Grant, Identity, Request, Rule, Subject, Target, TargetRole};
use warrant_engine::{CheckResult, GroupView, PolicyTestResult, RequestView, TargetView};

const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for LoginIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginIn")
            .field("user", &self.user)
            .field("password", &REDACTED)
            .field("otp", &self.otp.as_ref().map(|_| REDACTED))
            .finish()
    }
}

impl std::fmt::Debug for PasswordIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordIn")
            .field("password", &REDACTED)
            .field(
                "current_password",
                &self.current_password.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

impl std::fmt::Debug for IdentityIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityIn")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("manager", &self.manager)
            .field("role", &self.role)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ApplyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyIn")
            .field("yaml_bytes", &self.yaml.len())
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

impl std::fmt::Debug for TokenOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenOut")
            .field("id", &self.id)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("identity", &self.identity)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: String,
    /// What to fix.
    pub message: String,
}

/// Sign-in. Its `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Identity name.
    pub user: String,
    /// Password.
    pub password: String,
    /// A one-time code (or recovery code) when the identity has a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// A one-time code (TOTP or recovery code). Its `Debug` hides the code.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeIn {
    /// The code.
    pub code: String,
}

impl std::fmt::Debug for CodeIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeIn").field("code", &REDACTED).finish()
    }
}

/// A new TOTP factor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolIn {
    /// Label (e.g. the phone's name).
    #[serde(default)]
    pub label: Option<String>,
}

/// What an authenticator app needs; shown once. Its `Debug` hides the secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct TotpEnrolOut {
    /// The factor's id.
    pub factor_id: String,
    /// `otpauth://totp/...` for a QR code.
    pub uri: String,
    /// The seed in base32, to type in.
    pub secret: String,
}

impl std::fmt::Debug for TotpEnrolOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolOut")
            .field("factor_id", &self.factor_id)
            .field("uri", &REDACTED)
            .field("secret", &REDACTED)
            .finish()
    }
}

/// Recovery codes, shown once. Its `Debug` hides them.
#[derive(Clone, Serialize, Deserialize)]
pub struct RecoveryCodesOut {
    /// Single-use codes (empty when the identity already had some).
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodesOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodesOut")
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

/// A second factor, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FactorOut {
    /// Id.
    pub id: String,
    /// `totp` or `webauthn`.
    pub kind: String,
    /// Label.
    pub label: String,
    /// Enrolment confirmed.
    pub confirmed: bool,
    /// Created.
    pub created_at: String,
    /// Last use.
    pub last_used_at: Option<String>,
}

/// An identity's second factors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MfaStatusOut {
    /// Whose.
    pub identity: String,
    /// Whether a confirmed factor exists.
    pub enrolled: bool,
    /// Factors.
    pub factors: Vec<FactorOut>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

impl From<&warrant_engine::mfa::MfaStatus> for MfaStatusOut {
    fn from(s: &warrant_engine::mfa::MfaStatus) -> Self {
        Self {
            identity: s.identity.to_string(),
            enrolled: s.enrolled(),
            factors: s
                .factors
                .iter()
                .map(|f| FactorOut {
                    id: f.id.clone(),
                    kind: f.kind.clone(),
                    label: f.label.clone(),
                    confirmed: f.confirmed,
                    created_at: f.created_at.rfc3339(),
                    last_used_at: f.last_used_at.map(warrant_core::Timestamp::rfc3339),
                })
                .collect(),
            recovery_codes_left: s.recovery_codes_left,
        }
    }
}

/// A step-up proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MfaVerifiedOut {
    /// When the proof was made.
    pub mfa_at: String,
    /// Until when it counts for step-up.
    pub valid_until: String,
}

/// A token, shown once. Its `Debug` hides the token.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenOut {
    /// Public id.
    pub id: String,
    /// The bearer token (only when just issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Whose.
    pub identity: String,
    /// `session` or `api`.
    #[serde(default)]
    pub kind: String,
    /// Label.
    #[serde(default)]
    pub label: String,
    /// Expiry.
    pub expires_at: Option<String>,
    /// Revocation.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// `full` or `scim`.
    #[serde(default)]
    pub scope: String,
}

/// A new API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenIn {
    /// Label.
    pub name: String,
    /// Lifetime, e.g. `30d`; none for no expiry.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// `full` (default) or `scim` (provisioning only; admins).
    #[serde(default)]
    pub scope: Option<String>,
}

/// An identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityOut {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Email.
    pub email: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Manager.
    pub manager: Option<String>,
    /// `user`, `auditor` or `admin`.
    pub role: String,
    /// Groups, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Created.
    pub created_at: String,
    /// Who owns its attributes: `local`, `scim`, `ldap` or `oidc`.
    #[serde(default)]
    pub source: String,
    /// The source's id for it.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl IdentityOut {
    /// From the domain.
    pub fn new(i: &Identity, groups: Option<Vec<String>>) -> Self {
        Self {
            name: i.name.to_string(),
            display_name: i.display_name.clone(),
            email: i.email.clone(),
            status: i.status.as_str().to_owned(),
            manager: i.manager.as_ref().map(ToString::to_string),
            role: i.system_role.as_str().to_owned(),
            groups,
            created_at: i.created_at.rfc3339(),
            source: i.source.as_str().to_owned(),
            external_id: i.external_id.clone(),
        }
    }
}

/// A new identity. Its `Debug` hides the password.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    /// Name.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Manager.
    #[serde(default)]
    pub manager: Option<String>,
    /// `user` (default), `auditor`, `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// Initial password.
    #[serde(default)]
    pub password: Option<String>,
}

/// Changes to an identity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityPatch {
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Manager (empty string clears).
    #[serde(default)]
    pub manager: Option<String>,
    /// Role.
    #[serde(default)]
    pub role: Option<String>,
}

/// A password. Its `Debug` hides it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// The new password.
    pub password: String,
    /// The current password (required to change one's own).
    #[serde(default)]
    pub current_password: Option<String>,
}

/// A group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupOut {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Members.
    pub members: Vec<String>,
}

impl From<&GroupView> for GroupOut {
    fn from(g: &GroupView) -> Self {
        Self {
            name: g.group.name.to_string(),
            description: g.group.description.clone(),
            members: g.members.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A new group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// A member to add.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    /// Identity name.
    pub identity: String,
}

/// A role of a target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleOut {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// SSH principals.
    #[serde(default)]
    pub principals: Vec<String>,
    /// SSH upstream login.
    #[serde(default)]
    pub login: Option<String>,
    /// PostgreSQL memberships.
    #[serde(default)]
    pub db_roles: Vec<String>,
    /// The vaulted account a grant of this role may check out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// SSH gateway recording: `strict` (default), `best-effort` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// SSH gateway: record input too.
    #[serde(default)]
    pub record_input: bool,
    /// SSH gateway: forwarding allowed through it (`port`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwarding: Vec<String>,
}

impl From<&TargetRole> for RoleOut {
    fn from(r: &TargetRole) -> Self {
        Self {
            name: r.name.to_string(),
            principals: r.principals.clone(),
            login: r.login.clone(),
            db_roles: r.db_roles.clone(),
            account: r.account.clone(),
            record: r.record.clone(),
            record_input: r.record_input,
            forwarding: r.forwarding.clone(),
        }
    }
}

/// A target with its roles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetOut {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Address.
    pub address: Option<String>,
    /// Owner group.
    pub owner: String,
    /// Risk tier.
    pub risk_tier: i64,
    /// Description.
    pub description: String,
    /// Connector login.
    pub admin_user: Option<String>,
    /// SSH: the pinned host key for Warrant's own connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    /// PostgreSQL connector settings (TLS, CA file, owned objects).
    #[serde(default)]
    pub connector: warrant_core::ConnectorSettings,
    /// Roles.
    pub roles: Vec<RoleOut>,
}

impl From<&TargetView> for TargetOut {
    fn from(v: &TargetView) -> Self {
        let t: &Target = &v.target;
        Self {
            name: t.name.to_string(),
            kind: t.kind.as_str().to_owned(),
            address: t.address.clone(),
            owner: t.owner.to_string(),
            risk_tier: t.risk_tier,
            description: t.description.clone(),
            admin_user: t.admin_user.clone(),
            host_key: t.host_key.clone(),
            connector: t.connector.clone(),
            roles: v.roles.iter().map(RoleOut::from).collect(),
        }
    }
}

/// A target to create or update.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetIn {
    /// Kind.
    pub kind: String,
    /// Owner group.
    pub owner: String,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// Risk tier (default 2).
    #[serde(default)]
    pub risk_tier: Option<i64>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Connector login.
    #[serde(default)]
    pub admin_user: Option<String>,
    /// SSH: the pinned host key (one OpenSSH public key line).
    #[serde(default)]
    pub host_key: Option<String>,
    /// PostgreSQL connector settings.
    #[serde(default)]
    pub connector: warrant_core::ConnectorSettings,
}

/// An approval stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageOut {
    /// `owners`, `manager` or `group:NAME`.
    pub from: String,
    /// Approvals needed.
    pub count: u32,
    /// Approvers must have proved a second factor within the last 5 minutes.
    #[serde(default)]
    pub require_mfa: bool,
}

/// An eligibility rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOut {
    /// Id (output only).
    #[serde(default)]
    pub id: String,
    /// Subject group.
    #[serde(default)]
    pub group: Option<String>,
    /// Subject identity.
    #[serde(default)]
    pub identity: Option<String>,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// Maximum duration.
    pub max_duration: String,
    /// Reason required.
    #[serde(default = "yes")]
    pub require_reason: bool,
    /// MFA required.
    #[serde(default)]
    pub require_mfa: bool,
    /// Ticket pattern.
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// Stages.
    #[serde(default)]
    pub approvals: Vec<StageOut>,
}

fn yes() -> bool {
    true
}

impl From<&Rule> for RuleOut {
    fn from(r: &Rule) -> Self {
        let (group, identity) = match &r.subject {
            Subject::Group(g) => (Some(g.to_string()), None),
            Subject::Identity(i) => (None, Some(i.to_string())),
        };
        Self {
            id: r.id(),
            group,
            identity,
            target: r.target.to_string(),
            role: r.role.to_string(),
            max_duration: r.settings.max_duration.to_string(),
            require_reason: r.settings.require_reason,
            require_mfa: r.settings.require_mfa,
            ticket_pattern: r.settings.ticket_pattern.clone(),
            approvals: r
                .settings
                .approvals
                .iter()
                .map(|a| StageOut {
                    from: a.from.to_string(),
                    count: a.count,
                    require_mfa: a.require_mfa,
                })
                .collect(),
        }
    }
}

/// A custom policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOut {
    /// Name (output only).
    #[serde(default)]
    pub name: String,
    /// Cedar text.
    pub cedar: String,
}

/// A hypothetical request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTestIn {
    /// Who (default: the caller).
    #[serde(default)]
    pub identity: Option<String>,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// Duration (default 1h).
    #[serde(default)]
    pub duration: Option<String>,
    /// Reason.
    #[serde(default)]
    pub reason: String,
    /// Ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// MFA.
    #[serde(default)]
    pub mfa: bool,
    /// When (RFC 3339).
    #[serde(default)]
    pub at: Option<String>,
}

/// What a policy test found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyTestOut {
    /// Accepted (possibly pending approval)?
    pub allowed: bool,
    /// Refusal code.
    pub code: Option<String>,
    /// Who decided and why.
    pub explanation: String,
    /// The rule or policy it would go under.
    pub rule: Option<String>,
    /// Its maximum duration.
    pub max_duration: Option<String>,
    /// Its approval stages.
    pub approvals: Vec<StageOut>,
    /// Rules that matched.
    pub matched_rules: Vec<String>,
    /// Custom permits that matched.
    pub custom_permits: Vec<String>,
    /// Custom forbids that fired.
    pub forbids: Vec<String>,
    /// Evaluation errors.
    pub errors: Vec<String>,
    /// Policies evaluated.
    pub evaluated: usize,
}

impl From<PolicyTestResult> for PolicyTestOut {
    fn from(r: PolicyTestResult) -> Self {
        Self {
            allowed: r.allowed,
            code: r.code,
            explanation: r.explanation,
            rule: r.rule,
            max_duration: r.settings.as_ref().map(|s| s.max_duration.to_string()),
            approvals: r
                .settings
                .map(|s| {
                    s.approvals
                        .iter()
                        .map(|a| StageOut {
                            from: a.from.to_string(),
                            count: a.count,
                            require_mfa: a.require_mfa,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            matched_rules: r.matched_rules,
            custom_permits: r.custom_permits,
            forbids: r.forbids,
            errors: r.errors,
            evaluated: r.evaluated,
        }
    }
}

/// A new request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIn {
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// Duration, e.g. `30m`.
    pub duration: String,
    /// Reason.
    #[serde(default)]
    pub reason: String,
    /// Ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// Start (RFC 3339).
    #[serde(default)]
    pub start_at: Option<String>,
}

/// An approval given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalOut {
    /// Who.
    pub approver: String,
    /// Stage (0-based).
    pub stage: u32,
    /// When.
    pub at: String,
}

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestOut {
    /// Id.
    pub id: String,
    /// Requester.
    pub identity: String,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// Duration.
    pub duration: String,
    /// Duration in seconds.
    pub duration_secs: i64,
    /// Reason.
    pub reason: String,
    /// Ticket.
    pub ticket: Option<String>,
    /// Requested start.
    pub start_at: Option<String>,
    /// Status now.
    pub status: String,
    /// The rule it went under.
    pub rule: String,
    /// Stages.
    pub stages: Vec<StageOut>,
    /// The open stage (0-based).
    pub current_stage: u32,
    /// Approvals.
    pub approvals: Vec<ApprovalOut>,
    /// Created.
    pub created_at: String,
    /// Pending deadline.
    pub expires_at: String,
    /// Decided.
    pub decided_at: Option<String>,
    /// Decided by.
    pub decided_by: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Whether the caller may approve the open stage.
    pub can_approve: bool,
    /// The grant, once approved.
    pub grant: Option<GrantOut>,
}

impl RequestOut {
    /// From the engine's view.
    pub fn new(v: &RequestView, now: warrant_core::Timestamp) -> Self {
        let r: &Request = &v.request;
        Self {
            id: r.id.clone(),
            identity: r.identity.to_string(),
            target: r.target.to_string(),
            role: r.role.to_string(),
            duration: r.duration.to_string(),
            duration_secs: r.duration.secs(),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            start_at: r.start_at.map(|t| t.rfc3339()),
            status: v.status.as_str().to_owned(),
            rule: r.rule_id.clone(),
            stages: r
                .stages
                .iter()
                .map(|a| StageOut {
                    from: a.from.to_string(),
                    count: a.count,
                    require_mfa: a.require_mfa,
                })
                .collect(),
            current_stage: r.current_stage,
            approvals: r
                .approvals
                .iter()
                .map(|a| ApprovalOut {
                    approver: a.approver.to_string(),
                    stage: a.stage,
                    at: a.at.rfc3339(),
                })
                .collect(),
            created_at: r.created_at.rfc3339(),
            expires_at: r.expires_at.rfc3339(),
            decided_at: r.decided_at.map(|t| t.rfc3339()),
            decided_by: r.decided_by.as_ref().map(ToString::to_string),
            note: r.note.clone(),
            can_approve: v.can_approve,
            grant: v.grant.as_ref().map(|g| GrantOut::new(g, g.status_at(now))),
        }
    }
}

/// A decision note.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteIn {
    /// Note or reason.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantOut {
    /// Id.
    pub id: String,
    /// The request.
    pub request_id: String,
    /// Holder.
    pub identity: String,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// `scheduled`, `active`, `ended` or `revoked`, at the time of the answer.
    pub status: String,
    /// Start.
    pub starts_at: String,
    /// End.
    pub ends_at: String,
    /// The rule.
    pub rule: String,
    /// Revoked at.
    pub revoked_at: Option<String>,
    /// Revoked by.
    pub revoked_by: Option<String>,
    /// Why revoked.
    pub revoke_reason: Option<String>,
}

impl GrantOut {
    /// From the domain, with its status at the time of the answer.
    pub fn new(g: &Grant, status: warrant_core::GrantStatus) -> Self {
        Self {
            id: g.id.clone(),
            request_id: g.request_id.clone(),
            identity: g.identity.to_string(),
            target: g.target.to_string(),
            role: g.role.to_string(),
            status: status.as_str().to_owned(),
            starts_at: g.starts_at.rfc3339(),
            ends_at: g.ends_at.rfc3339(),
            rule: g.rule_id.clone(),
            revoked_at: g.revoked_at.map(|t| t.rfc3339()),
            revoked_by: g.revoked_by.as_ref().map(ToString::to_string),
            revoke_reason: g.revoke_reason.clone(),
        }
    }
}

/// A check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// Identity.
    pub identity: String,
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
}

/// The check's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckOut {
    /// Whether an active grant exists now.
    pub allowed: bool,
    /// The grant.
    pub grant_id: Option<String>,
    /// Its end.
    pub ends_at: Option<String>,
}

impl From<&CheckResult> for CheckOut {
    fn from(c: &CheckResult) -> Self {
        Self {
            allowed: c.allowed,
            grant_id: c.grant.as_ref().map(|g| g.id.clone()),
            ends_at: c.grant.as_ref().map(|g| g.ends_at.rfc3339()),
        }
    }
}

/// An org file to apply. Its `Debug` shows the size only: the file may hold passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyIn {
    /// The file's text (YAML or JSON).
    pub yaml: String,
    /// Report only.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an apply changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyOut {
    /// One line per change.
    pub changes: Vec<String>,
    /// Nothing was written.
    pub dry_run: bool,
}

/// An audit record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditOut {
    /// Position.
    pub seq: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: Option<String>,
    /// Kind.
    pub kind: String,
    /// The event.
    pub data: serde_json::Value,
    /// Hash.
    pub hash: String,
}

impl From<&warrant_audit::Record> for AuditOut {
    fn from(r: &warrant_audit::Record) -> Self {
        Self {
            seq: r.seq,
            at: warrant_core::Timestamp::from_millis(r.at_ms).rfc3339(),
            actor: r.actor.clone(),
            kind: r.kind.clone(),
            data: serde_json::from_str(&r.data).unwrap_or(serde_json::Value::Null),
            hash: r.hash.clone(),
        }
    }
}

/// A clean-up job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobOut {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Grant.
    pub grant_id: String,
    /// Attempts.
    pub attempts: i64,
    /// Next attempt.
    pub next_at: String,
    /// Last error.
    pub last_error: Option<String>,
}

impl From<&warrant_store::JobRow> for JobOut {
    fn from(j: &warrant_store::JobRow) -> Self {
        Self {
            id: j.id.clone(),
            kind: j.kind.clone(),
            grant_id: j.grant_id.clone(),
            attempts: j.attempts,
            next_at: j.next_at.rfc3339(),
            last_error: j.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let login = LoginIn {
            user: "alice".into(),
            password: "canary-pw-1".into(),
            otp: Some("canary-otp".into()),
        };
        let code = CodeIn {
            code: "canary-code".into(),
        };
        let enrol = TotpEnrolOut {
            factor_id: "f".into(),
            uri: "otpauth://canary".into(),
            secret: "CANARYSECRET".into(),
        };
        let rc = RecoveryCodesOut {
            recovery_codes: vec!["canary-rc".into()],
        };
        let more = format!("{code:?} {enrol:?} {rc:?}");
        assert!(!more.to_lowercase().contains("canary"), "{more}");
        let pw = PasswordIn {
            password: "canary-pw-2".into(),
            current_password: Some("canary-pw-4".into()),
        };
        let ident = IdentityIn {
            name: "bob".into(),
            password: Some("canary-pw-3".into()),
            ..IdentityIn::default()
        };
        let token = TokenOut {
            id: "x".into(),
            token: Some("wt_canary".into()),
            identity: "alice".into(),
            kind: "api".into(),
            label: "ci".into(),
            expires_at: None,
            revoked_at: None,
            scope: "full".into(),
        };
        let all = format!("{login:?} {pw:?} {ident:?} {token:?}");
        assert!(!all.contains("canary"), "{all}");
        assert!(all.contains("alice") && all.contains("<redacted>"), "{all}");
    }
}

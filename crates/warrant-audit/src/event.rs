//! Typed audit events.
//!
//! Field names are conventions that search relies on: `identity` is the identity the event is
//! about, `target`, `request_id` and `grant_id` name what it touched. Secrets never appear:
//! events carry names, ids, durations and reasons, never passwords or tokens.

use serde::Serialize;
use serde_json::Value;

/// One state change (or refused attempt) worth recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    /// The first start created the admin identity and token.
    #[serde(rename = "server.bootstrapped")]
    Bootstrapped {
        /// The admin identity.
        identity: String,
    },
    /// An identity was created.
    #[serde(rename = "identity.created")]
    IdentityCreated {
        /// Its name.
        identity: String,
        /// Its email.
        email: String,
        /// Its system role.
        system_role: String,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// Attributes of an identity changed.
    #[serde(rename = "identity.updated")]
    IdentityUpdated {
        /// Its name.
        identity: String,
        /// Which attributes changed (names only).
        changed: Vec<String>,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity was disabled (a leaver).
    #[serde(rename = "identity.disabled")]
    IdentityDisabled {
        /// Its name.
        identity: String,
        /// Grants revoked as a consequence.
        grants_revoked: u64,
        /// Pending requests cancelled as a consequence.
        requests_cancelled: u64,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity was enabled again.
    #[serde(rename = "identity.enabled")]
    IdentityEnabled {
        /// Its name.
        identity: String,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity was deleted (a leaver).
    #[serde(rename = "identity.deleted")]
    IdentityDeleted {
        /// Its name.
        identity: String,
        /// Grants revoked as a consequence.
        grants_revoked: u64,
        /// Pending requests cancelled as a consequence.
        requests_cancelled: u64,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity's password was set (the password itself is never recorded).
    #[serde(rename = "identity.password_set")]
    PasswordSet {
        /// Whose.
        identity: String,
        /// Through which channel: `admin` (the identity itself or an admin) or `scim`.
        via: String,
    },
    /// A group was created or its description changed.
    #[serde(rename = "group.saved")]
    GroupSaved {
        /// Its name.
        group: String,
        /// Whether it is new.
        created: bool,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// A group was deleted.
    #[serde(rename = "group.deleted")]
    GroupDeleted {
        /// Its name.
        group: String,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity joined a group.
    #[serde(rename = "group.member_added")]
    MemberAdded {
        /// The group.
        group: String,
        /// The member.
        identity: String,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// An identity left a group (a mover).
    #[serde(rename = "group.member_removed")]
    MemberRemoved {
        /// The group.
        group: String,
        /// The former member.
        identity: String,
        /// Grants revoked because their eligibility came only through this group.
        grants_revoked: u64,
        /// Pending requests cancelled for the same reason.
        requests_cancelled: u64,
        /// Through which channel: `admin`, `scim`, `ldap` or `oidc`.
        via: String,
    },
    /// A target was created or changed.
    #[serde(rename = "target.saved")]
    TargetSaved {
        /// Its name.
        target: String,
        /// Whether it is new.
        created: bool,
        /// Its kind.
        kind: String,
        /// Its owner group.
        owner: String,
        /// Its risk tier.
        risk_tier: i64,
    },
    /// A target was deleted.
    #[serde(rename = "target.deleted")]
    TargetDeleted {
        /// Its name.
        target: String,
    },
    /// A role was created or changed.
    #[serde(rename = "role.saved")]
    RoleSaved {
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// Whether it is new.
        created: bool,
    },
    /// A role was deleted.
    #[serde(rename = "role.deleted")]
    RoleDeleted {
        /// The target.
        target: String,
        /// The role.
        role: String,
    },
    /// An eligibility rule was created or changed.
    #[serde(rename = "rule.saved")]
    RuleSaved {
        /// The rule id.
        rule: String,
        /// The target.
        target: String,
        /// Whether it is new.
        created: bool,
        /// Its settings, as stored.
        settings: Value,
    },
    /// An eligibility rule was deleted.
    #[serde(rename = "rule.deleted")]
    RuleDeleted {
        /// The rule id.
        rule: String,
        /// The target.
        target: String,
    },
    /// A custom Cedar policy was created or changed.
    #[serde(rename = "policy.saved")]
    PolicySaved {
        /// Its name.
        policy: String,
        /// Whether it is new.
        created: bool,
        /// SHA-256 of its text.
        sha256: String,
    },
    /// A custom Cedar policy was deleted.
    #[serde(rename = "policy.deleted")]
    PolicyDeleted {
        /// Its name.
        policy: String,
    },
    /// A request was made and is waiting for approvals (or was approved at once).
    #[serde(rename = "request.created")]
    RequestCreated {
        /// The request.
        request_id: String,
        /// The requester.
        identity: String,
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// Requested duration in seconds.
        duration_secs: i64,
        /// The reason given.
        reason: String,
        /// The ticket given.
        ticket: Option<String>,
        /// The rule that made the requester eligible.
        rule: String,
        /// How many approval stages it needs.
        stages: usize,
    },
    /// A request was refused at once (not eligible, or a setting not met).
    #[serde(rename = "request.refused")]
    RequestRefused {
        /// The requester.
        identity: String,
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// The stable error code.
        code: String,
        /// Why.
        reason: String,
    },
    /// An approval was given.
    #[serde(rename = "request.approved")]
    RequestApproved {
        /// The request.
        request_id: String,
        /// The requester.
        identity: String,
        /// The target.
        target: String,
        /// The stage it counted for (0-based).
        stage: u32,
        /// Whether the whole request is now approved.
        complete: bool,
    },
    /// A request was denied.
    #[serde(rename = "request.denied")]
    RequestDenied {
        /// The request.
        request_id: String,
        /// The requester.
        identity: String,
        /// The target.
        target: String,
        /// The approver's note.
        note: Option<String>,
    },
    /// A request was cancelled (by the requester, or because they left or moved).
    #[serde(rename = "request.cancelled")]
    RequestCancelled {
        /// The request.
        request_id: String,
        /// The requester.
        identity: String,
        /// The target.
        target: String,
        /// Why, when not the requester's own choice.
        note: Option<String>,
    },
    /// A request expired undecided.
    #[serde(rename = "request.expired")]
    RequestExpired {
        /// The request.
        request_id: String,
        /// The requester.
        identity: String,
        /// The target.
        target: String,
    },
    /// A grant was created.
    #[serde(rename = "grant.created")]
    GrantCreated {
        /// The grant.
        grant_id: String,
        /// The request it came from.
        request_id: String,
        /// The holder.
        identity: String,
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// Start (RFC 3339).
        starts_at: String,
        /// End (RFC 3339).
        ends_at: String,
    },
    /// A grant reached its end.
    #[serde(rename = "grant.ended")]
    GrantEnded {
        /// The grant.
        grant_id: String,
        /// The holder.
        identity: String,
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// Milliseconds between the grant's end and this record (scheduler lag).
        lag_ms: i64,
    },
    /// A grant was revoked.
    #[serde(rename = "grant.revoked")]
    GrantRevoked {
        /// The grant.
        grant_id: String,
        /// The holder.
        identity: String,
        /// The target.
        target: String,
        /// The role.
        role: String,
        /// Why.
        reason: String,
    },
    /// Clean-up work after a grant closed failed and will be retried.
    #[serde(rename = "grant.cleanup_failed")]
    CleanupFailed {
        /// The grant.
        grant_id: String,
        /// Attempts so far.
        attempts: i64,
        /// The error.
        error: String,
    },
    /// Clean-up work after a grant closed completed.
    #[serde(rename = "grant.cleanup_done")]
    CleanupDone {
        /// The grant.
        grant_id: String,
        /// Attempts it took.
        attempts: i64,
    },
    /// Someone signed in.
    #[serde(rename = "auth.signin_succeeded")]
    SigninSucceeded {
        /// Who.
        identity: String,
        /// From where.
        source: String,
    },
    /// A sign-in failed.
    #[serde(rename = "auth.signin_failed")]
    SigninFailed {
        /// The name given.
        identity: String,
        /// From where.
        source: String,
        /// Why (stable code).
        reason: String,
    },
    /// Someone signed out.
    #[serde(rename = "auth.signout")]
    Signout {
        /// Who.
        identity: String,
    },
    /// A token was issued.
    #[serde(rename = "token.issued")]
    TokenIssued {
        /// Whose.
        identity: String,
        /// Its public id.
        token_id: String,
        /// `session` or `api`.
        kind: String,
        /// Its label.
        label: String,
        /// `full` or `scim`.
        scope: String,
    },
    /// A SCIM resource (user or group) was created or replaced by the IdP.
    #[serde(rename = "scim.resource_saved")]
    ScimResourceSaved {
        /// `user` or `group`.
        kind: String,
        /// Its SCIM id.
        scim_id: String,
        /// The Warrant identity or group.
        name: String,
        /// Its new version (the ETag).
        version: i64,
    },
    /// A SCIM resource was deleted by the IdP.
    #[serde(rename = "scim.resource_deleted")]
    ScimResourceDeleted {
        /// `user` or `group`.
        kind: String,
        /// Its SCIM id.
        scim_id: String,
        /// The Warrant identity or group.
        name: String,
    },
    /// A second factor's enrolment started (not usable until confirmed).
    #[serde(rename = "mfa.enrolment_started")]
    MfaEnrolmentStarted {
        /// Whose.
        identity: String,
        /// The factor's id.
        factor_id: String,
        /// `totp` or `webauthn`.
        kind: String,
    },
    /// A second factor was confirmed and is now in force.
    #[serde(rename = "mfa.enrolled")]
    MfaEnrolled {
        /// Whose.
        identity: String,
        /// The factor's id.
        factor_id: String,
        /// `totp` or `webauthn`.
        kind: String,
    },
    /// Someone proved a second factor.
    #[serde(rename = "mfa.verified")]
    MfaVerified {
        /// Who.
        identity: String,
        /// `totp`, `webauthn` or `recovery_code`.
        method: String,
        /// `sign-in`, `step-up` or `enrolment`.
        purpose: String,
    },
    /// A second factor was refused.
    #[serde(rename = "mfa.failed")]
    MfaFailed {
        /// Who.
        identity: String,
        /// `sign-in`, `step-up` or `enrolment`.
        purpose: String,
        /// Why (stable code).
        reason: String,
    },
    /// New recovery codes were issued (the codes themselves are never recorded).
    #[serde(rename = "mfa.recovery_codes_issued")]
    RecoveryCodesIssued {
        /// Whose.
        identity: String,
        /// How many.
        count: u64,
    },
    /// An admin removed every second factor of an identity.
    #[serde(rename = "mfa.reset")]
    MfaReset {
        /// Whose.
        identity: String,
        /// Factors removed.
        factors_removed: u64,
    },
    /// A directory sync ran to its end (`warrant sync ldap`, or the scheduled pull); the counts
    /// of what it changed. The changes themselves are recorded one by one with `via`.
    #[serde(rename = "sync.completed")]
    SyncCompleted {
        /// The directory: `ldap`.
        via: String,
        /// Identities created.
        created: u64,
        /// Identities whose attributes changed.
        updated: u64,
        /// Identities disabled because the directory marks them disabled.
        disabled: u64,
        /// Identities enabled again.
        enabled: u64,
        /// Identities newly found missing from the directory (their grace period starts).
        marked_missing: u64,
        /// Identities disabled because they stayed missing past the grace period.
        disabled_after_grace: u64,
        /// Groups created.
        groups_created: u64,
        /// Groups whose description changed.
        groups_updated: u64,
        /// Memberships added.
        members_added: u64,
        /// Memberships removed (movers).
        members_removed: u64,
        /// Grants revoked as a consequence.
        grants_revoked: u64,
        /// Pending requests cancelled as a consequence.
        requests_cancelled: u64,
        /// Directory entries left out, each with its reason in the sync's report.
        skipped: u64,
        /// Names held by another source, left untouched.
        conflicts: u64,
        /// Whether the removal safety valve was overridden.
        forced: bool,
    },
    /// A directory sync was refused before changing anything: it would have removed more
    /// identities than the configured share (a broken search must not disable everyone).
    #[serde(rename = "sync.refused")]
    SyncRefused {
        /// The directory: `ldap`.
        via: String,
        /// Active identities of that directory the sync would have marked missing or disabled.
        would_remove: u64,
        /// Active identities of that directory before the sync.
        active: u64,
        /// The largest share of them one sync may remove.
        max_removal_share: f64,
    },
    /// Every sealed secret was re-wrapped under the key-encryption key in force.
    #[serde(rename = "vault.rekeyed")]
    VaultRekeyed {
        /// The KEK's id (a fingerprint, never the key).
        kek_id: String,
        /// Whether a new KEK was created for this.
        new_kek: bool,
        /// Secrets re-wrapped.
        rewrapped: u64,
        /// Secrets already under this KEK.
        unchanged: u64,
    },
    /// A target's admin secret was set (the secret itself is never recorded).
    #[serde(rename = "target.secret_set")]
    TargetSecretSet {
        /// The target.
        target: String,
    },
    /// A temporary database role was created for a grant and handed to its holder.
    #[serde(rename = "credential.created")]
    CredentialCreated {
        /// The holder.
        identity: String,
        /// The target.
        target: String,
        /// The grant.
        grant_id: String,
        /// The role's name on the target.
        role_name: String,
    },
    /// A grant's temporary database role was dropped.
    #[serde(rename = "credential.dropped")]
    CredentialDropped {
        /// The target.
        target: String,
        /// The grant.
        grant_id: String,
        /// The role's name on the target.
        role_name: String,
        /// Sessions of the role that were ended.
        backends_terminated: u64,
    },
    /// The SSH user CA was created.
    #[serde(rename = "ssh.ca_created")]
    SshCaCreated {
        /// Its public key's fingerprint.
        fingerprint: String,
    },
    /// An SSH user certificate was issued under a grant.
    #[serde(rename = "ssh.cert_issued")]
    SshCertIssued {
        /// To whom.
        identity: String,
        /// For which target.
        target: String,
        /// Under which role.
        role: String,
        /// Under which grant.
        grant_id: String,
        /// Its serial (what the KRL revokes).
        serial: i64,
        /// The accounts it may log in as.
        principals: Vec<String>,
        /// Until when (the grant's end).
        valid_before: String,
    },
    /// A token was revoked.
    #[serde(rename = "token.revoked")]
    TokenRevoked {
        /// Whose.
        identity: String,
        /// Its public id.
        token_id: String,
    },
    /// A vaulted account was created (its secret is never recorded).
    #[serde(rename = "account.created")]
    AccountCreated {
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The accountable group.
        owner: String,
        /// One checkout at a time.
        exclusive: bool,
        /// Scheduled rotation period in seconds, if any.
        rotate_every_secs: Option<i64>,
    },
    /// A vaulted account's secret was replaced by an admin.
    #[serde(rename = "account.secret_set")]
    AccountSecretSet {
        /// The target.
        target: String,
        /// The account.
        account: String,
    },
    /// A vaulted account was deleted.
    #[serde(rename = "account.deleted")]
    AccountDeleted {
        /// The target.
        target: String,
        /// The account.
        account: String,
    },
    /// A vaulted account was checked out under a grant.
    #[serde(rename = "account.checked_out")]
    AccountCheckedOut {
        /// Who.
        identity: String,
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The grant.
        grant_id: String,
        /// The checkout.
        checkout_id: String,
    },
    /// A checkout ended: returned, or closed with its grant.
    #[serde(rename = "account.checked_in")]
    AccountCheckedIn {
        /// Who held it.
        identity: String,
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The grant.
        grant_id: String,
        /// The checkout.
        checkout_id: String,
        /// `returned` or `grant_closed`.
        reason: String,
    },
    /// A vaulted account's secret was shown to its checkout holder.
    #[serde(rename = "account.revealed")]
    AccountRevealed {
        /// Who saw it.
        identity: String,
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The grant.
        grant_id: String,
        /// The checkout.
        checkout_id: String,
    },
    /// One journaled step of a rotation: `verified_current`, `new_kept`, `set_new`,
    /// `verified_new`, `committed`, or `resumed`.
    #[serde(rename = "account.rotation_step")]
    AccountRotationStep {
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The rotation.
        rotation_id: String,
        /// The step done.
        step: String,
        /// Why the rotation runs: `checkin`, `schedule`, `manual`, `recovery`.
        trigger: String,
    },
    /// A rotation step failed; the working secret is kept and the rotation retried.
    #[serde(rename = "account.rotation_failed")]
    AccountRotationFailed {
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The rotation.
        rotation_id: String,
        /// The step that failed.
        step: String,
        /// What went wrong (never a secret).
        error: String,
        /// Failed attempts so far.
        attempts: i64,
    },
    /// Warrant's managed SSH key (for discovery and rotation on hosts) was created.
    #[serde(rename = "ssh.managed_key_created")]
    SshManagedKeyCreated {
        /// Its public key line.
        public_key: String,
    },
    /// A discovery scan of a target finished.
    #[serde(rename = "discovery.scanned")]
    DiscoveryScanned {
        /// The target.
        target: String,
        /// The scan.
        scan_id: String,
        /// Privileged accounts found.
        accounts: u64,
        /// Of which managed by Warrant.
        managed: u64,
        /// Unmanaged (linked to an identity by name).
        unmanaged: u64,
        /// Orphaned (no identity).
        orphaned: u64,
        /// Differences from the previous scan.
        differences: u64,
    },
    /// A privilege appeared since the last scan that Warrant did not grant.
    #[serde(rename = "discovery.difference")]
    DiscoveryDifference {
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The scan.
        scan_id: String,
        /// The exception opened.
        exception_id: String,
        /// What appeared.
        what: String,
        /// The account's risk.
        risk: String,
    },
    /// A person registered an SSH public key (for the gateway).
    #[serde(rename = "ssh.key_added")]
    SshKeyAdded {
        /// Whose.
        identity: String,
        /// Its SHA-256 fingerprint.
        fingerprint: String,
    },
    /// An SSH public key was removed.
    #[serde(rename = "ssh.key_removed")]
    SshKeyRemoved {
        /// Whose.
        identity: String,
        /// Its SHA-256 fingerprint.
        fingerprint: String,
    },
    /// The key that signs session recordings was created.
    #[serde(rename = "recording.key_created")]
    RecordingKeyCreated {
        /// Its public key, base64.
        public_key: String,
    },
    /// The key that signs the audit chain's checkpoints and export seals was created.
    #[serde(rename = "audit.key_created")]
    AuditKeyCreated {
        /// Its public key, base64.
        public_key: String,
    },
    /// Records older than the retention were archived (a signed bundle) and pruned; the chain
    /// now starts after `up_to_seq`, anchored by a signed checkpoint of that record.
    #[serde(rename = "audit.pruned")]
    AuditPruned {
        /// The last record pruned.
        up_to_seq: i64,
        /// How many records were pruned.
        records: u64,
        /// The archive's file name in the archive directory.
        archive: String,
        /// SHA-256 of the archive, hex.
        archive_sha256: String,
    },
    /// A gateway session began (the person authenticated, the grant checked, upstream reached).
    #[serde(rename = "gateway.session_started")]
    GatewaySessionStarted {
        /// The session.
        session_id: String,
        /// `ssh` or `postgres`.
        kind: String,
        /// Who.
        identity: String,
        /// Where.
        target: String,
        /// As which upstream account.
        account: String,
        /// Under which grant.
        grant_id: String,
    },
    /// A gateway session ended.
    #[serde(rename = "gateway.session_ended")]
    GatewaySessionEnded {
        /// The session.
        session_id: String,
        /// Who.
        identity: String,
        /// Where.
        target: String,
        /// `closed`, `target_closed`, `grant_ended`, `killed: …`, `recording_failed: …`,
        /// `server_stopped`, `protocol_error: …` (both gateways use the same codes).
        reason: String,
        /// Bytes from the person.
        bytes_up: u64,
        /// Bytes to the person.
        bytes_down: u64,
        /// SHA-256 of the recording, when there is one.
        recording_sha256: Option<String>,
    },
    /// The gateway refused something: a sign-in, a session, a forwarding, a recording failure.
    #[serde(rename = "gateway.refused")]
    GatewayRefused {
        /// Who (as they claimed to be).
        identity: String,
        /// Where, if known.
        target: Option<String>,
        /// What was refused, e.g. `port forwarding`, `agent forwarding`, `session`.
        what: String,
        /// Why.
        reason: String,
    },
    /// An exception was resolved (accepted or fixed).
    #[serde(rename = "discovery.exception_resolved")]
    DiscoveryExceptionResolved {
        /// The target.
        target: String,
        /// The account.
        account: String,
        /// The exception.
        exception_id: String,
        /// Why.
        note: String,
    },
}

/// The references an event carries, for indexing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    /// The identity it is about.
    pub identity: Option<String>,
    /// The target it touched.
    pub target: Option<String>,
    /// The request it touched.
    pub request_id: Option<String>,
    /// The grant it touched.
    pub grant_id: Option<String>,
}

impl Event {
    /// The event's JSON and kind (`grant.revoked`, …).
    pub fn to_json(&self) -> (String, Value) {
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        (kind, v)
    }

    /// The references an event's JSON carries.
    pub fn refs(v: &Value) -> Refs {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Refs {
            identity: s("identity"),
            target: s("target"),
            request_id: s("request_id"),
            grant_id: s("grant_id"),
        }
    }
}

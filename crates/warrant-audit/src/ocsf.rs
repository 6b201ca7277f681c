//! Audit records as OCSF 1.5 events: what `warrant audit export --format ocsf` writes, one event a
//! line, and what the SIEM sinks send.
//!
//! `MAPPINGS` has one row per event kind: the OCSF class (through the `Shape` of attributes the
//! kind fills), the activity, and a message template. [`to_ocsf`] writes the attributes every
//! event carries, then the class's own attributes from the event's data, and keeps the whole
//! record (kind, position, hashes, data) under `unmapped`, so nothing Warrant recorded is lost in
//! translation. `docs/specs/audit-events.md` is the same table for readers; a test keeps the two
//! in step.

use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::Record;

/// The OCSF schema version written in `metadata.version`.
pub const OCSF_VERSION: &str = "1.5.0";

/// The product and vendor name in `metadata.product`, and the service in `service` and `api`.
const PRODUCT: &str = "Warrant";

/// The attributes a kind fills beyond the common ones; each shape is one OCSF class.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Account Change (3001): `user` is the data field naming the account.
    Account { user: &'static str },
    /// Authentication (3002): the user is the data's `identity`.
    Auth,
    /// Authorize Session (3003): `privilege` is the data field naming what was assigned.
    Session { privilege: &'static str },
    /// Entity Management (3004): the entity's type, and templates for its name and uid (empty
    /// for none).
    Entity {
        ty: &'static str,
        name: &'static str,
        uid: &'static str,
    },
    /// User Access Management (3005): the data fields naming the user and the privilege.
    Access {
        user: &'static str,
        privilege: &'static str,
    },
    /// Group Management (3006): the data's `group`, and `identity` when there is one.
    Group,
    /// Network Activity (4001): gateway sessions.
    Network,
    /// API Activity (6003).
    Api,
}

impl Shape {
    const fn class(self) -> (u32, &'static str) {
        match self {
            Shape::Account { .. } => (3001, "Account Change"),
            Shape::Auth => (3002, "Authentication"),
            Shape::Session { .. } => (3003, "Authorize Session"),
            Shape::Entity { .. } => (3004, "Entity Management"),
            Shape::Access { .. } => (3005, "User Access Management"),
            Shape::Group => (3006, "Group Management"),
            Shape::Network => (4001, "Network Activity"),
            Shape::Api => (6003, "API Activity"),
        }
    }
}

/// How one kind maps.
#[derive(Debug)]
struct Mapping {
    kind: &'static str,
    shape: Shape,
    /// `activity_id` and `activity_name`.
    activity: (u32, &'static str),
    /// `message`, with `{field}` replaced by the data's field.
    message: &'static str,
}

const fn m(
    kind: &'static str,
    shape: Shape,
    activity: (u32, &'static str),
    message: &'static str,
) -> Mapping {
    Mapping {
        kind,
        shape,
        activity,
        message,
    }
}

const ACCOUNT: Shape = Shape::Account { user: "identity" };
const fn entity(ty: &'static str, name: &'static str, uid: &'static str) -> Shape {
    Shape::Entity { ty, name, uid }
}
const TARGET: Shape = entity("target", "{target}", "");
const VAULTED: Shape = entity("vaulted account", "{account}", "{target}/{account}");
const SCIM: Shape = entity("SCIM {kind}", "{name}", "{scim_id}");
const SSH_KEY: Shape = entity("SSH public key", "", "{fingerprint}");
const ROLE: Shape = entity("role", "{role}", "{target}/{role}");
const RULE: Shape = entity("rule", "", "{rule}");
const POLICY: Shape = entity("policy", "{policy}", "");
const GRANT: Shape = Shape::Access {
    user: "identity",
    privilege: "role",
};

/// Every kind this version knows. Kinds whose data says `created` (the `*.saved` ones) are listed
/// with their Update activity; [`to_ocsf`] writes Create when `created` is true.
#[rustfmt::skip]
static MAPPINGS: &[Mapping] = &[
    // Identities and their credentials.
    m("server.bootstrapped", ACCOUNT, (1, "Create"),
      "The first start created the admin identity {identity}"),
    m("identity.created", ACCOUNT, (1, "Create"),
      "Identity {identity} was created (via {via})"),
    m("identity.updated", ACCOUNT, (99, "Update"),
      "Identity {identity} was updated (via {via})"),
    m("identity.disabled", ACCOUNT, (5, "Disable"),
      "Identity {identity} was disabled (via {via}): {grants_revoked} grants revoked, {requests_cancelled} requests cancelled"),
    m("identity.enabled", ACCOUNT, (2, "Enable"),
      "Identity {identity} was enabled (via {via})"),
    m("identity.deleted", ACCOUNT, (6, "Delete"),
      "Identity {identity} was deleted (via {via}): {grants_revoked} grants revoked, {requests_cancelled} requests cancelled"),
    m("identity.password_set", ACCOUNT, (3, "Password Change"),
      "The password of {identity} was set (via {via})"),
    m("mfa.enrolment_started", ACCOUNT, (99, "MFA Factor Enrolment"),
      "{identity} started enrolling a {kind} factor"),
    m("mfa.enrolled", ACCOUNT, (10, "MFA Factor Enable"),
      "{identity} enrolled a {kind} factor"),
    m("mfa.recovery_codes_issued", ACCOUNT, (10, "MFA Factor Enable"),
      "{count} new recovery codes were issued to {identity}"),
    m("mfa.reset", ACCOUNT, (11, "MFA Factor Disable"),
      "The second factors of {identity} were removed ({factors_removed})"),
    m("ssh.key_added", SSH_KEY, (1, "Create"),
      "{identity} registered SSH key {fingerprint}"),
    m("ssh.key_removed", SSH_KEY, (4, "Delete"),
      "SSH key {fingerprint} of {identity} was removed"),
    // Sign-in.
    m("auth.signin_succeeded", Shape::Auth, (1, "Logon"),
      "{identity} signed in from {source}"),
    m("auth.signin_failed", Shape::Auth, (1, "Logon"),
      "A sign-in as {identity} from {source} failed: {reason}"),
    m("auth.signout", Shape::Auth, (2, "Logoff"),
      "{identity} signed out"),
    m("mfa.verified", Shape::Auth, (99, "MFA Verification"),
      "{identity} proved a second factor ({method}) for {purpose}"),
    m("mfa.failed", Shape::Auth, (99, "MFA Verification"),
      "A second factor of {identity} for {purpose} was refused: {reason}"),
    m("token.issued", Shape::Auth, (3, "Authentication Ticket"),
      "A {kind} token {token_id} was issued to {identity}"),
    m("token.revoked", Shape::Auth, (99, "Token Revocation"),
      "Token {token_id} of {identity} was revoked"),
    // Groups.
    m("group.saved", Shape::Group, (99, "Update"),
      "Group {group} was saved (via {via})"),
    m("group.deleted", Shape::Group, (5, "Delete"),
      "Group {group} was deleted (via {via})"),
    m("group.member_added", Shape::Group, (3, "Add User"),
      "{identity} was added to group {group} (via {via})"),
    m("group.member_removed", Shape::Group, (4, "Remove User"),
      "{identity} was removed from group {group} (via {via}): {grants_revoked} grants revoked, {requests_cancelled} requests cancelled"),
    // Directory provisioning.
    m("scim.resource_saved", SCIM, (3, "Update"),
      "The identity provider saved SCIM {kind} {name} (version {version})"),
    m("scim.resource_deleted", SCIM, (4, "Delete"),
      "The identity provider deleted SCIM {kind} {name}"),
    m("sync.completed", Shape::Api, (3, "Update"),
      "A {via} sync completed: {created} identities created, {updated} updated, {disabled} disabled, {enabled} enabled, {members_added} memberships added, {members_removed} removed"),
    m("sync.refused", Shape::Api, (3, "Update"),
      "A {via} sync was refused: it would have removed {would_remove} of {active} active identities"),
    // Configuration.
    m("target.saved", TARGET, (3, "Update"),
      "Target {target} was saved"),
    m("target.deleted", TARGET, (4, "Delete"),
      "Target {target} was deleted"),
    m("target.secret_set", TARGET, (3, "Update"),
      "The admin secret of target {target} was set"),
    m("role.saved", ROLE, (3, "Update"),
      "Role {role} on {target} was saved"),
    m("role.deleted", ROLE, (4, "Delete"),
      "Role {role} on {target} was deleted"),
    m("rule.saved", RULE, (3, "Update"),
      "Rule {rule} on {target} was saved"),
    m("rule.deleted", RULE, (4, "Delete"),
      "Rule {rule} on {target} was deleted"),
    m("policy.saved", POLICY, (3, "Update"),
      "Policy {policy} was saved"),
    m("policy.deleted", POLICY, (4, "Delete"),
      "Policy {policy} was deleted"),
    // Requests.
    m("request.created", Shape::Api, (1, "Create"),
      "{identity} requested {role} on {target} for {duration_secs} s: {reason}"),
    m("request.refused", Shape::Api, (1, "Create"),
      "The request of {identity} for {role} on {target} was refused ({code}): {reason}"),
    m("request.approved", Shape::Api, (3, "Update"),
      "Request {request_id} of {identity} on {target} was approved at stage {stage}"),
    m("request.denied", Shape::Api, (3, "Update"),
      "Request {request_id} of {identity} on {target} was denied"),
    m("request.cancelled", Shape::Api, (3, "Update"),
      "Request {request_id} of {identity} on {target} was cancelled"),
    m("request.expired", Shape::Api, (3, "Update"),
      "Request {request_id} of {identity} on {target} expired undecided"),
    // Grants.
    m("grant.created", GRANT, (1, "Assign Privileges"),
      "{identity} was granted {role} on {target} until {ends_at} (grant {grant_id})"),
    m("grant.ended", GRANT, (2, "Revoke Privileges"),
      "Grant {grant_id} of {role} on {target} to {identity} ended"),
    m("grant.revoked", GRANT, (2, "Revoke Privileges"),
      "Grant {grant_id} of {role} on {target} to {identity} was revoked: {reason}"),
    m("grant.cleanup_failed", Shape::Api, (4, "Delete"),
      "Clean-up after grant {grant_id} failed (attempt {attempts}) and will be retried: {error}"),
    m("grant.cleanup_done", Shape::Api, (4, "Delete"),
      "Clean-up after grant {grant_id} completed (attempts: {attempts})"),
    // Credentials handed out under grants.
    m("credential.created", Shape::Session { privilege: "role_name" }, (1, "Assign Privileges"),
      "Temporary database role {role_name} was created on {target} for {identity} (grant {grant_id})"),
    m("credential.dropped", Shape::Account { user: "role_name" }, (6, "Delete"),
      "Temporary database role {role_name} was dropped on {target} (grant {grant_id}): {backends_terminated} sessions ended"),
    m("ssh.cert_issued", Shape::Session { privilege: "role" }, (1, "Assign Privileges"),
      "SSH certificate {serial} for {role} on {target} was issued to {identity}, valid until {valid_before}"),
    // Vaulted accounts.
    m("account.created", VAULTED, (1, "Create"),
      "Vaulted account {account} on {target} was created"),
    m("account.secret_set", VAULTED, (3, "Update"),
      "The secret of vaulted account {account} on {target} was replaced"),
    m("account.deleted", VAULTED, (4, "Delete"),
      "Vaulted account {account} on {target} was deleted"),
    m("account.checked_out", Shape::Session { privilege: "account" }, (1, "Assign Privileges"),
      "{identity} checked out {account} on {target} (checkout {checkout_id})"),
    m("account.checked_in", Shape::Access { user: "identity", privilege: "account" }, (2, "Revoke Privileges"),
      "Checkout {checkout_id} of {account} on {target} by {identity} ended ({reason})"),
    m("account.revealed", VAULTED, (2, "Read"),
      "The secret of {account} on {target} was shown to {identity}"),
    m("account.rotation_step", Shape::Account { user: "account" }, (3, "Password Change"),
      "Rotation {rotation_id} of {account} on {target} did step {step} ({trigger})"),
    m("account.rotation_failed", Shape::Account { user: "account" }, (3, "Password Change"),
      "Rotation {rotation_id} of {account} on {target} failed at step {step} (attempt {attempts}): {error}"),
    // Discovery.
    m("discovery.scanned", TARGET, (2, "Read"),
      "A discovery scan of {target} found {accounts} privileged accounts ({managed} managed, {unmanaged} unmanaged, {orphaned} orphaned) and {differences} differences"),
    m("discovery.difference", Shape::Access { user: "account", privilege: "what" }, (1, "Assign Privileges"),
      "{account} on {target} gained {what} without a grant (exception {exception_id})"),
    m("discovery.exception_resolved", entity("discovery exception", "", "{exception_id}"), (3, "Update"),
      "Exception {exception_id} for {account} on {target} was resolved: {note}"),
    // Keys Warrant keeps.
    m("vault.rekeyed", entity("key-encryption key", "", "{kek_id}"), (3, "Update"),
      "Sealed secrets were re-wrapped under key-encryption key {kek_id}: {rewrapped} re-wrapped, {unchanged} unchanged"),
    m("ssh.ca_created", entity("SSH user CA", "", "{fingerprint}"), (1, "Create"),
      "The SSH user CA was created ({fingerprint})"),
    m("ssh.managed_key_created", entity("managed SSH key", "", "{public_key}"), (1, "Create"),
      "Warrant's managed SSH key was created"),
    m("recording.key_created", entity("recording signing key", "", "{public_key}"), (1, "Create"),
      "The key that signs session recordings was created"),
    m("audit.key_created", entity("audit signing key", "", "{public_key}"), (1, "Create"),
      "The key that signs audit checkpoints and export seals was created"),
    m("audit.pruned", entity("audit records", "{archive}", "{archive_sha256}"), (4, "Delete"),
      "Audit records up to {up_to_seq} were archived to {archive} and pruned"),
    // Gateway sessions.
    m("gateway.session_started", Shape::Network, (1, "Open"),
      "{identity} opened {kind} session {session_id} to {target} as {account}"),
    m("gateway.session_ended", Shape::Network, (2, "Close"),
      "Session {session_id} of {identity} to {target} ended ({reason})"),
    m("gateway.refused", Shape::Network, (5, "Refuse"),
      "The gateway refused {what} to {identity}: {reason}"),
];

/// Every event kind this version maps, in the order of its table.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    MAPPINGS.iter().map(|m| m.kind)
}

/// The OCSF class and activity a kind maps to: (class_uid, class_name, activity_id,
/// activity_name); None for a kind this version does not know.
///
/// For the `*.saved` kinds, which record both creation and change, this is the Update activity
/// (Other for `group.saved`: Group Management has no Update); [`to_ocsf`] writes Create when the
/// record's `created` is true. `identity.password_set` is a Password Change here and in
/// [`to_ocsf`] when the identity set its own password, a Password Reset otherwise.
pub fn class_of(kind: &str) -> Option<(u32, &'static str, u32, &'static str)> {
    let m = mapping(kind)?;
    let (class_uid, class_name) = m.shape.class();
    Some((class_uid, class_name, m.activity.0, m.activity.1))
}

fn mapping(kind: &str) -> Option<&'static Mapping> {
    MAPPINGS.iter().find(|m| m.kind == kind)
}

/// An audit record as one OCSF 1.5 event (a JSON object).
///
/// A kind this version does not know (a newer server's) becomes an API Activity with activity
/// Other (99). Data that is not JSON is kept as text under `unmapped.data`.
pub fn to_ocsf(record: &Record) -> Value {
    let data: Value =
        serde_json::from_str(&record.data).unwrap_or_else(|_| Value::String(record.data.clone()));
    let known = mapping(&record.kind);
    let shape = known.map_or(Shape::Api, |m| m.shape);
    let (class_uid, class_name) = shape.class();
    let (activity_id, activity_name) = activity(record, &data, known);
    let (status, severity_id) = outcome(&record.kind, &data, known.is_some());
    let message = match known {
        Some(m) => fill(m.message, &data),
        None => format!(
            "Event of kind {}, which this version does not know",
            record.kind
        ),
    };

    let mut e = Map::new();
    e.insert("class_uid".into(), class_uid.into());
    e.insert("class_name".into(), class_name.into());
    e.insert("category_uid".into(), (class_uid / 1000).into());
    e.insert(
        "category_name".into(),
        category_name(class_uid / 1000).into(),
    );
    e.insert("activity_id".into(), activity_id.into());
    e.insert("activity_name".into(), activity_name.into());
    e.insert("type_uid".into(), (class_uid * 100 + activity_id).into());
    e.insert(
        "type_name".into(),
        format!("{class_name}: {activity_name}").into(),
    );
    e.insert("severity_id".into(), severity_id.into());
    e.insert("severity".into(), severity_name(severity_id).into());
    e.insert("time".into(), record.at_ms.into());
    e.insert("message".into(), message.into());
    if let Some(failed) = status {
        e.insert("status_id".into(), (if failed { 2 } else { 1 }).into());
        e.insert(
            "status".into(),
            (if failed { "Failure" } else { "Success" }).into(),
        );
        if failed {
            if let Some(detail) = str_field(&data, "reason").or(str_field(&data, "error")) {
                e.insert("status_detail".into(), detail.into());
            }
            if let Some(code) = str_field(&data, "code") {
                e.insert("status_code".into(), code.into());
            }
        }
    }
    e.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": { "name": PRODUCT, "vendor_name": PRODUCT },
            "uid": record.seq.to_string(),
            "log_name": "audit",
        }),
    );

    let mut actor = Map::new();
    if let Some(name) = &record.actor {
        actor.insert("user".into(), named(name));
    }
    class_attributes(&mut e, &mut actor, shape, &record.kind, &data);
    if !actor.is_empty() {
        e.insert("actor".into(), actor.into());
    }

    e.insert(
        "unmapped".into(),
        json!({
            "warrant_kind": record.kind,
            "seq": record.seq,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
            "data": data,
        }),
    );
    Value::Object(e)
}

/// The activity, refined by what the record says where the kind alone does not decide it.
fn activity(record: &Record, data: &Value, known: Option<&Mapping>) -> (u32, &'static str) {
    let Some(m) = known else {
        return (99, "Other");
    };
    if data.get("created").and_then(Value::as_bool) == Some(true) {
        match m.shape {
            Shape::Entity { .. } => return (1, "Create"),
            Shape::Group => return (6, "Create"),
            _ => {}
        }
    }
    if m.kind == "identity.password_set" && record.actor.as_deref() != str_field(data, "identity") {
        return (4, "Password Reset");
    }
    m.activity
}

/// Whether the activity failed (None: not known) and the severity.
fn outcome(kind: &str, data: &Value, known: bool) -> (Option<bool>, u32) {
    const INFORMATIONAL: u32 = 1;
    const MEDIUM: u32 = 3;
    const HIGH: u32 = 4;
    match kind {
        // A credential or privilege may outlive its grant until a retry succeeds.
        "grant.cleanup_failed" => (Some(true), HIGH),
        // A privilege on a target that Warrant did not grant.
        "discovery.difference" => (Some(false), HIGH),
        "auth.signin_failed"
        | "mfa.failed"
        | "request.refused"
        | "sync.refused"
        | "gateway.refused"
        | "account.rotation_failed" => (Some(true), MEDIUM),
        "request.denied" => (Some(false), MEDIUM),
        "gateway.session_ended" if str_field(data, "reason") == Some("recording_failed") => {
            (Some(false), MEDIUM)
        }
        _ if known => (Some(false), INFORMATIONAL),
        _ => (None, INFORMATIONAL),
    }
}

/// The attributes of the event's class.
fn class_attributes(
    e: &mut Map<String, Value>,
    actor: &mut Map<String, Value>,
    shape: Shape,
    kind: &str,
    data: &Value,
) {
    let field = |k: &str| str_field(data, k);
    let insert_named = |e: &mut Map<String, Value>, key: &str, field: &str| {
        if let Some(v) = str_field(data, field) {
            e.insert(key.into(), named(v));
        }
    };
    match shape {
        Shape::Account { user } => {
            if let Some(name) = field(user) {
                let mut u = Map::new();
                u.insert("name".into(), name.into());
                if let Some(email) = field("email") {
                    u.insert("email_addr".into(), email.into());
                }
                e.insert("user".into(), u.into());
            }
        }
        Shape::Auth => {
            insert_named(e, "user", "identity");
            e.insert("service".into(), named(PRODUCT));
            if kind.starts_with("mfa.") {
                e.insert("is_mfa".into(), true.into());
            }
            if let Some(source) = field("source") {
                if let Ok(ip) = source.parse::<IpAddr>() {
                    e.insert("src_endpoint".into(), json!({ "ip": ip.to_string() }));
                } else if source.starts_with("oidc") {
                    e.insert("auth_protocol_id".into(), 4.into());
                    e.insert("auth_protocol".into(), "OpenID".into());
                }
            }
        }
        Shape::Session { privilege } => {
            insert_named(e, "user", "identity");
            if let Some(p) = field(privilege) {
                e.insert("privileges".into(), json!([p]));
            }
            insert_named(e, "dst_endpoint", "target");
        }
        Shape::Entity { ty, name, uid } => {
            let mut entity = Map::new();
            entity.insert("type".into(), fill(ty, data).into());
            if !name.is_empty() {
                entity.insert("name".into(), fill(name, data).into());
            }
            if !uid.is_empty() {
                entity.insert("uid".into(), fill(uid, data).into());
            }
            if let Some(version) = data.get("version").filter(|v| v.is_number()) {
                entity.insert("version".into(), version.to_string().into());
            }
            if let Some(settings) = data.get("settings") {
                entity.insert("data".into(), settings.clone());
            }
            e.insert("entity".into(), entity.into());
            if let Some(note) = field("note") {
                e.insert("comment".into(), note.into());
            }
        }
        Shape::Access { user, privilege } => {
            insert_named(e, "user", user);
            if let Some(p) = field(privilege) {
                e.insert("privileges".into(), json!([p]));
            }
            if let Some(target) = field("target") {
                e.insert(
                    "resources".into(),
                    json!([{ "type": "target", "name": target }]),
                );
            }
        }
        Shape::Group => {
            insert_named(e, "group", "group");
            insert_named(e, "user", "identity");
        }
        Shape::Network => {
            // The person connects to a target through the gateway: the target is the responder.
            // Without a target (a refusal before one was named), the gateway itself is.
            let dst = field("target").unwrap_or(PRODUCT);
            e.insert("dst_endpoint".into(), named(dst));
            if !actor.contains_key("user")
                && let Some(identity) = field("identity")
            {
                actor.insert("user".into(), named(identity));
            }
            if let Some(session) = field("session_id") {
                actor.insert("session".into(), json!({ "uid": session }));
            }
            let up = data.get("bytes_up").and_then(Value::as_u64);
            let down = data.get("bytes_down").and_then(Value::as_u64);
            if let (Some(up), Some(down)) = (up, down) {
                e.insert(
                    "traffic".into(),
                    json!({
                        "bytes_out": up,
                        "bytes_in": down,
                        "bytes": up.saturating_add(down),
                    }),
                );
            }
        }
        Shape::Api => {
            e.insert(
                "api".into(),
                json!({ "operation": kind, "service": { "name": PRODUCT } }),
            );
            // The record does not carry the caller's address; the source recorded is Warrant.
            e.insert("src_endpoint".into(), named(PRODUCT));
            if actor.is_empty() {
                actor.insert("app_name".into(), PRODUCT.into());
            }
            let mut resources = Vec::new();
            if let Some(target) = field("target") {
                resources.push(json!({ "type": "target", "name": target }));
            }
            for (key, ty) in [("request_id", "request"), ("grant_id", "grant")] {
                if let Some(uid) = field(key) {
                    resources.push(json!({ "type": ty, "uid": uid }));
                }
            }
            if !resources.is_empty() {
                e.insert("resources".into(), resources.into());
            }
        }
    }
}

fn named(name: &str) -> Value {
    json!({ "name": name })
}

fn str_field<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key).and_then(Value::as_str)
}

fn category_name(category_uid: u32) -> &'static str {
    match category_uid {
        3 => "Identity & Access Management",
        4 => "Network Activity",
        6 => "Application Activity",
        _ => "Other",
    }
}

fn severity_name(severity_id: u32) -> &'static str {
    match severity_id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

/// The template with each `{field}` replaced by the data's field (`?` when it has none).
fn fill(template: &str, data: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        match data.get(&after[..close]) {
            Some(Value::String(s)) => out.push_str(s),
            None | Some(Value::Null) => out.push('?'),
            Some(v) => out.push_str(&v.to_string()),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;
    use crate::Event;

    /// The kinds of `Event` and the fields of each, read from its source: a variant added
    /// without a mapping fails here.
    fn event_kinds() -> BTreeMap<String, Vec<(String, String)>> {
        let src = include_str!("event.rs");
        let mut kinds = BTreeMap::new();
        let mut current: Option<(String, Vec<(String, String)>)> = None;
        for line in src.lines() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("#[serde(rename = \"") {
                let kind = rest.split('"').next().unwrap().to_owned();
                current = Some((kind, Vec::new()));
            } else if let Some((_, fields)) = current.as_mut() {
                if line.starts_with("        ") && !t.starts_with("//") {
                    if let Some((name, ty)) = t.trim_end_matches(',').split_once(": ") {
                        fields.push((name.to_owned(), ty.to_owned()));
                    }
                } else if t == "}," {
                    let (kind, fields) = current.take().unwrap();
                    kinds.insert(kind, fields);
                }
            }
        }
        kinds
    }

    /// Data for a kind with each of its fields set by type; optional fields are null, so a
    /// message that needs one shows up as `?`.
    fn data_for(kind: &str, fields: &[(String, String)]) -> Value {
        let mut d = serde_json::Map::new();
        d.insert("type".into(), kind.into());
        for (name, ty) in fields {
            let v = match ty.as_str() {
                t if t.starts_with("Option<") => Value::Null,
                "String" => format!("{name}-1").into(),
                "bool" => true.into(),
                "f64" => 0.5.into(),
                "Vec<String>" => json!([format!("{name}-1")]),
                "Value" => json!({ "k": 1 }),
                _ => 7.into(),
            };
            d.insert(name.clone(), v);
        }
        Value::Object(d)
    }

    fn record(kind: &str, actor: Option<&str>, data: &Value) -> Record {
        Record {
            seq: 42,
            at_ms: 1_700_000_000_123,
            actor: actor.map(str::to_owned),
            kind: kind.to_owned(),
            data: data.to_string(),
            prev_hash: "aa".repeat(32),
            hash: "bb".repeat(32),
        }
    }

    fn record_of(event: &Event, actor: Option<&str>) -> Record {
        let (kind, data) = event.to_json();
        record(&kind, actor, &data)
    }

    fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
        path.split('.')
            .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
    }

    /// The attributes OCSF 1.5 requires of every event and of the event's class (and the
    /// common ones Warrant promises), with the arithmetic that ties them together.
    fn check_required(e: &Value) {
        let class = e["class_uid"].as_u64().unwrap();
        let activity = e["activity_id"].as_u64().unwrap();
        for path in [
            "class_name",
            "category_uid",
            "category_name",
            "activity_name",
            "type_uid",
            "type_name",
            "severity_id",
            "severity",
            "time",
            "message",
            "metadata.version",
            "metadata.product.name",
            "metadata.product.vendor_name",
            "metadata.uid",
            "metadata.log_name",
            "unmapped.warrant_kind",
            "unmapped.seq",
            "unmapped.hash",
            "unmapped.data",
        ] {
            assert!(!get(e, path).is_null(), "{path} missing in {e}");
        }
        assert_eq!(e["type_uid"], class * 100 + activity, "{e}");
        assert_eq!(e["category_uid"], class / 1000, "{e}");
        assert_eq!(e["metadata"]["version"], "1.5.0");
        assert_eq!(
            e["type_name"],
            format!(
                "{}: {}",
                e["class_name"].as_str().unwrap(),
                e["activity_name"].as_str().unwrap()
            )
        );
        let has = |path: &str| !get(e, path).is_null();
        let present: &[&str] = match class {
            3001 => &["user.name"],
            3002 => &["user.name", "service.name"],
            3003 => &["user.name", "privileges", "dst_endpoint.name"],
            3005 => &["user.name", "privileges", "resources"],
            3006 => &["group.name"],
            4001 => &["dst_endpoint.name"],
            6003 => &["api.operation", "actor", "src_endpoint.name"],
            3004 => &["entity.type"],
            other => panic!("unexpected class {other}"),
        };
        for path in present {
            assert!(has(path), "{path} missing in {e}");
        }
        if class == 3004 {
            assert!(has("entity.name") || has("entity.uid"), "{e}");
        }
    }

    #[test]
    fn every_kind_of_event_rs_maps_to_a_known_class() {
        let kinds = event_kinds();
        assert!(kinds.len() > 60, "parsed only {} kinds", kinds.len());
        for kind in kinds.keys() {
            assert!(class_of(kind).is_some(), "{kind} has no OCSF mapping");
        }
        for kind in super::kinds() {
            assert!(
                kinds.contains_key(kind),
                "{kind} is mapped but not an event kind"
            );
        }
    }

    #[test]
    fn every_kind_carries_its_class_s_required_attributes() {
        for (kind, fields) in event_kinds() {
            let data = data_for(&kind, &fields);
            for actor in [None, Some("carol")] {
                let e = to_ocsf(&record(&kind, actor, &data));
                check_required(&e);
                let (class, _, activity, _) = class_of(&kind).unwrap();
                assert_eq!(e["class_uid"], class, "{kind}");
                if data.get("created").is_none() && kind != "identity.password_set" {
                    assert_eq!(e["activity_id"], activity, "{kind}");
                }
                let message = e["message"].as_str().unwrap();
                assert!(!message.contains('?'), "{kind}: {message}");
                assert!(!message.contains('{'), "{kind}: {message}");
                assert_eq!(e["unmapped"]["data"], data, "{kind}");
                assert_eq!(e["actor"]["user"]["name"].as_str().is_some(), {
                    actor.is_some() || class == 4001
                });
            }
        }
    }

    #[test]
    fn kinds_are_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in super::kinds() {
            assert!(seen.insert(kind), "{kind} is listed twice");
        }
    }

    #[test]
    fn an_unknown_kind_is_an_api_activity_other_with_its_data_kept() {
        let data = json!({ "type": "widget.frobbed", "widget": "w-1", "target": "web-1" });
        let e = to_ocsf(&record("widget.frobbed", None, &data));
        check_required(&e);
        assert_eq!(e["class_uid"], 6003);
        assert_eq!(e["activity_id"], 99);
        assert_eq!(e["activity_name"], "Other");
        assert_eq!(e["type_uid"], 600_399);
        assert_eq!(e["type_name"], "API Activity: Other");
        assert_eq!(e["api"]["operation"], "widget.frobbed");
        assert_eq!(e["actor"]["app_name"], "Warrant");
        assert_eq!(e["unmapped"]["warrant_kind"], "widget.frobbed");
        assert_eq!(e["unmapped"]["data"], data);
        assert!(e.get("status_id").is_none());
        assert_eq!(class_of("widget.frobbed"), None);
    }

    #[test]
    fn data_that_is_not_json_is_kept_as_text() {
        let mut r = record("grant.revoked", None, &json!({}));
        r.data = "not json {".into();
        let e = to_ocsf(&r);
        assert_eq!(e["class_uid"], 3005);
        assert_eq!(e["unmapped"]["data"], "not json {");
    }

    #[test]
    fn a_revoked_grant_field_by_field() {
        let event = Event::GrantRevoked {
            grant_id: "g-1".into(),
            identity: "alice".into(),
            target: "db-prod".into(),
            role: "admin".into(),
            reason: "incident closed".into(),
        };
        let e = to_ocsf(&record_of(&event, Some("bob")));
        let (_, data) = event.to_json();
        assert_eq!(
            e,
            json!({
                "class_uid": 3005,
                "class_name": "User Access Management",
                "category_uid": 3,
                "category_name": "Identity & Access Management",
                "activity_id": 2,
                "activity_name": "Revoke Privileges",
                "type_uid": 300_502,
                "type_name": "User Access Management: Revoke Privileges",
                "severity_id": 1,
                "severity": "Informational",
                "time": 1_700_000_000_123_i64,
                "message": "Grant g-1 of admin on db-prod to alice was revoked: incident closed",
                "status_id": 1,
                "status": "Success",
                "metadata": {
                    "version": "1.5.0",
                    "product": { "name": "Warrant", "vendor_name": "Warrant" },
                    "uid": "42",
                    "log_name": "audit",
                },
                "actor": { "user": { "name": "bob" } },
                "user": { "name": "alice" },
                "privileges": ["admin"],
                "resources": [{ "type": "target", "name": "db-prod" }],
                "unmapped": {
                    "warrant_kind": "grant.revoked",
                    "seq": 42,
                    "prev_hash": "aa".repeat(32),
                    "hash": "bb".repeat(32),
                    "data": data,
                },
            })
        );
    }

    #[test]
    fn sign_ins_field_by_field() {
        let ok = to_ocsf(&record_of(
            &Event::SigninSucceeded {
                identity: "alice".into(),
                source: "192.0.2.7".into(),
            },
            Some("alice"),
        ));
        assert_eq!(ok["type_uid"], 300_201);
        assert_eq!(ok["type_name"], "Authentication: Logon");
        assert_eq!(ok["user"], json!({ "name": "alice" }));
        assert_eq!(ok["src_endpoint"], json!({ "ip": "192.0.2.7" }));
        assert_eq!(ok["service"], json!({ "name": "Warrant" }));
        assert_eq!(ok["status_id"], 1);
        assert_eq!(ok["severity_id"], 1);
        assert_eq!(ok["message"], "alice signed in from 192.0.2.7");

        let failed = to_ocsf(&record_of(
            &Event::SigninFailed {
                identity: "alice".into(),
                source: "oidc".into(),
                reason: "identity_disabled".into(),
            },
            None,
        ));
        assert_eq!(failed["type_uid"], 300_201);
        assert_eq!(failed["status_id"], 2);
        assert_eq!(failed["status"], "Failure");
        assert_eq!(failed["status_detail"], "identity_disabled");
        assert_eq!(failed["severity_id"], 3);
        assert_eq!(failed["severity"], "Medium");
        assert_eq!(failed["auth_protocol_id"], 4);
        assert!(failed.get("src_endpoint").is_none());
        assert!(failed.get("actor").is_none());
    }

    #[test]
    fn saved_kinds_are_a_create_when_new() {
        let saved = |created| Event::TargetSaved {
            target: "web-1".into(),
            created,
            kind: "ssh".into(),
            owner: "ops".into(),
            risk_tier: 2,
        };
        let new = to_ocsf(&record_of(&saved(true), Some("root")));
        assert_eq!(
            (new["type_uid"].clone(), new["activity_name"].clone()),
            (json!(300_401), json!("Create"))
        );
        assert_eq!(new["entity"], json!({ "type": "target", "name": "web-1" }));
        let changed = to_ocsf(&record_of(&saved(false), Some("root")));
        assert_eq!(changed["type_uid"], 300_403);

        let group = to_ocsf(&record_of(
            &Event::GroupSaved {
                group: "ops".into(),
                created: true,
                via: "scim".into(),
            },
            None,
        ));
        assert_eq!(group["type_uid"], 300_606);
        assert_eq!(group["group"], json!({ "name": "ops" }));
    }

    #[test]
    fn a_password_set_by_someone_else_is_a_reset() {
        let event = Event::PasswordSet {
            identity: "alice".into(),
            via: "admin".into(),
        };
        assert_eq!(to_ocsf(&record_of(&event, Some("alice")))["activity_id"], 3);
        let reset = to_ocsf(&record_of(&event, Some("root")));
        assert_eq!(reset["activity_name"], "Password Reset");
        assert_eq!(reset["type_uid"], 300_104);
    }

    #[test]
    fn a_gateway_session_is_network_activity_to_its_target() {
        let ended = to_ocsf(&record_of(
            &Event::GatewaySessionEnded {
                session_id: "s-1".into(),
                identity: "alice".into(),
                target: "web-1".into(),
                reason: "recording_failed".into(),
                bytes_up: 10,
                bytes_down: 32,
                recording_sha256: None,
            },
            None,
        ));
        assert_eq!(ended["type_uid"], 400_102);
        assert_eq!(ended["dst_endpoint"], json!({ "name": "web-1" }));
        assert_eq!(
            ended["actor"],
            json!({ "user": { "name": "alice" }, "session": { "uid": "s-1" } })
        );
        assert_eq!(
            ended["traffic"],
            json!({ "bytes_out": 10, "bytes_in": 32, "bytes": 42 })
        );
        assert_eq!(ended["severity_id"], 3);

        let refused = to_ocsf(&record_of(
            &Event::GatewayRefused {
                identity: "alice".into(),
                target: None,
                what: "agent forwarding".into(),
                reason: "not allowed".into(),
            },
            None,
        ));
        assert_eq!(refused["type_uid"], 400_105);
        assert_eq!(refused["status_id"], 2);
        assert_eq!(refused["dst_endpoint"], json!({ "name": "Warrant" }));
    }

    /// The documentation's table names every kind with the class and activity of `class_of`.
    #[test]
    fn the_documentation_table_matches() {
        let doc = include_str!("../../../docs/specs/audit-events.md");
        let (_, table) = doc.split_once("## Event kinds").unwrap();
        let table = table.split("\n## ").next().unwrap();
        let mut documented = BTreeMap::new();
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let kind = cells[1].trim_matches('`').to_owned();
            let number = |cell: &str| -> u32 {
                cell.split(|c: char| !c.is_ascii_digit())
                    .find(|s| !s.is_empty())
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            documented.insert(kind, (number(cells[2]), number(cells[3])));
        }
        let kinds: Vec<&str> = super::kinds().collect();
        assert_eq!(
            documented.len(),
            kinds.len(),
            "every kind once in the table"
        );
        for kind in kinds {
            let (class, _, activity, _) = class_of(kind).unwrap();
            assert_eq!(documented.get(kind), Some(&(class, activity)), "{kind}");
        }
    }
}

//! Role × route: the route table is exactly the one written out here, and every route refuses
//! exactly the callers that lack its access (401 `unauthenticated` for anonymous callers, 403
//! `role_required` for signed-in ones, 403 `scope_insufficient` for a provisioning token
//! outside SCIM, SCIM errors on SCIM routes), and lets the others through to the handler.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;
use warrant_api::server::{Access, route_table};
use warrant_core::SystemRole;

use crate::harness::{Server, call};

use Access::{Admin, Auditor, Public, Scim, Signed};

/// Every route with the access it should need, written out by hand: a new route without an
/// entry here fails `route_table_is_exactly_the_expected_one`.
const EXPECTED: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Public),
    ("GET", "/metrics", Public),
    ("POST", "/api/v1/auth/login", Public),
    ("POST", "/api/v1/auth/logout", Signed),
    ("POST", "/api/v1/auth/oidc/start", Public),
    ("POST", "/api/v1/auth/oidc/complete", Public),
    ("POST", "/api/v1/sync/ldap", Admin),
    ("GET", "/api/v1/sync/ldap", Admin),
    ("GET", "/api/v1/me", Signed),
    ("GET", "/api/v1/tokens", Signed),
    ("POST", "/api/v1/tokens", Signed),
    ("DELETE", "/api/v1/tokens/{id}", Signed),
    ("GET", "/api/v1/identities", Auditor),
    ("POST", "/api/v1/identities", Admin),
    ("GET", "/api/v1/identities/{name}", Signed),
    ("PATCH", "/api/v1/identities/{name}", Admin),
    ("DELETE", "/api/v1/identities/{name}", Admin),
    ("POST", "/api/v1/identities/{name}/disable", Admin),
    ("POST", "/api/v1/identities/{name}/enable", Admin),
    ("POST", "/api/v1/identities/{name}/password", Signed),
    ("GET", "/api/v1/identities/{name}/mfa", Auditor),
    ("DELETE", "/api/v1/identities/{name}/mfa", Admin),
    ("GET", "/api/v1/mfa", Signed),
    ("POST", "/api/v1/mfa/totp", Signed),
    ("POST", "/api/v1/mfa/totp/confirm", Signed),
    ("POST", "/api/v1/mfa/verify", Signed),
    ("POST", "/api/v1/mfa/recovery-codes", Signed),
    ("GET", "/api/v1/groups", Auditor),
    ("POST", "/api/v1/groups", Admin),
    ("DELETE", "/api/v1/groups/{name}", Admin),
    ("POST", "/api/v1/groups/{name}/members", Admin),
    ("DELETE", "/api/v1/groups/{name}/members/{identity}", Admin),
    ("GET", "/api/v1/targets", Signed),
    ("PUT", "/api/v1/targets/{name}", Admin),
    ("DELETE", "/api/v1/targets/{name}", Admin),
    ("PUT", "/api/v1/targets/{name}/roles/{role}", Admin),
    ("DELETE", "/api/v1/targets/{name}/roles/{role}", Admin),
    ("GET", "/api/v1/rules", Signed),
    ("POST", "/api/v1/rules", Admin),
    ("DELETE", "/api/v1/rules", Admin),
    ("GET", "/api/v1/policies", Auditor),
    ("PUT", "/api/v1/policies/{name}", Admin),
    ("DELETE", "/api/v1/policies/{name}", Admin),
    ("POST", "/api/v1/policy/test", Signed),
    ("POST", "/api/v1/apply", Admin),
    ("GET", "/api/v1/requests", Signed),
    ("POST", "/api/v1/requests", Signed),
    ("GET", "/api/v1/requests/{id}", Signed),
    ("POST", "/api/v1/requests/{id}/approve", Signed),
    ("POST", "/api/v1/requests/{id}/deny", Signed),
    ("POST", "/api/v1/requests/{id}/cancel", Signed),
    ("GET", "/api/v1/grants", Signed),
    ("GET", "/api/v1/grants/{id}", Signed),
    ("POST", "/api/v1/grants/{id}/revoke", Signed),
    ("POST", "/api/v1/check", Signed),
    ("GET", "/api/v1/audit", Auditor),
    ("GET", "/api/v1/audit/search", Auditor),
    ("GET", "/api/v1/audit/verify", Auditor),
    ("GET", "/api/v1/audit/export", Auditor),
    ("GET", "/api/v1/audit/sinks", Auditor),
    ("POST", "/api/v1/audit/prune", Admin),
    ("GET", "/api/v1/jobs", Auditor),
    ("POST", "/api/v1/vault/rekey", Admin),
    ("GET", "/api/v1/ssh/ca", Public),
    ("GET", "/api/v1/ssh/krl", Public),
    ("POST", "/api/v1/ssh/certs", Signed),
    ("POST", "/api/v1/targets/{name}/secret", Admin),
    ("POST", "/api/v1/grants/{id}/db-creds", Signed),
    ("POST", "/api/v1/db-tokens", Signed),
    ("GET", "/scim/v2/ServiceProviderConfig", Public),
    ("GET", "/scim/v2/ResourceTypes", Public),
    ("GET", "/scim/v2/Schemas", Public),
    ("GET", "/scim/v2/{endpoint}", Scim),
    ("POST", "/scim/v2/{endpoint}", Scim),
    ("GET", "/scim/v2/{endpoint}/{id}", Scim),
    ("PUT", "/scim/v2/{endpoint}/{id}", Scim),
    ("PATCH", "/scim/v2/{endpoint}/{id}", Scim),
    ("DELETE", "/scim/v2/{endpoint}/{id}", Scim),
    ("POST", "/api/v1/mfa/webauthn/register", Signed),
    ("POST", "/api/v1/mfa/webauthn/register/finish", Signed),
    ("POST", "/api/v1/mfa/webauthn/verify", Signed),
    ("POST", "/api/v1/mfa/webauthn/verify/finish", Signed),
    ("POST", "/api/v1/auth/webauthn/start", Public),
    ("POST", "/api/v1/auth/webauthn/finish", Public),
    ("GET", "/api/v1/accounts", Auditor),
    ("POST", "/api/v1/accounts", Admin),
    ("DELETE", "/api/v1/accounts/{target}/{name}", Admin),
    ("POST", "/api/v1/accounts/{target}/{name}/secret", Admin),
    ("POST", "/api/v1/accounts/{target}/{name}/checkout", Signed),
    ("POST", "/api/v1/accounts/{target}/{name}/reveal", Signed),
    ("POST", "/api/v1/accounts/{target}/{name}/checkin", Signed),
    ("POST", "/api/v1/accounts/{target}/{name}/rotate", Signed),
    ("GET", "/api/v1/ssh/managed-key", Admin),
    ("POST", "/api/v1/discovery/{target}", Admin),
    ("GET", "/api/v1/discovery/{target}", Admin),
    ("GET", "/api/v1/inventory", Auditor),
    ("GET", "/api/v1/exceptions", Auditor),
    ("POST", "/api/v1/exceptions/{id}/resolve", Admin),
    ("GET", "/api/v1/ssh/keys", Signed),
    ("POST", "/api/v1/ssh/keys", Signed),
    ("DELETE", "/api/v1/ssh/keys/{id}", Signed),
    ("GET", "/api/v1/sessions", Signed),
    ("GET", "/api/v1/sessions/{id}", Signed),
    ("POST", "/api/v1/sessions/{id}/kill", Admin),
    ("GET", "/api/v1/sessions/{id}/recording", Signed),
    ("GET", "/api/v1/sessions/{id}/manifest", Signed),
    ("GET", "/api/v1/recordings/key", Signed),
];

#[test]
fn route_table_is_exactly_the_expected_one() {
    let mut problems = Vec::new();
    let mut want = BTreeMap::new();
    for &(m, p, a) in EXPECTED {
        if want.insert((m, p), a).is_some() {
            problems.push(format!("EXPECTED lists {m} {p} twice"));
        }
    }
    let mut have = BTreeMap::new();
    for r in route_table() {
        if have.insert((r.method, r.path), r.access).is_some() {
            problems.push(format!("route_table() lists {} {} twice", r.method, r.path));
        }
    }
    for ((m, p), a) in &have {
        match want.get(&(*m, *p)) {
            None => problems.push(format!("{m} {p} ({a:?}) is served but not expected")),
            Some(w) if w != a => problems.push(format!("{m} {p} needs {a:?}, expected {w:?}")),
            Some(_) => {}
        }
    }
    for ((m, p), a) in &want {
        if !have.contains_key(&(*m, *p)) {
            problems.push(format!("{m} {p} ({a:?}) is expected but not served"));
        }
    }
    assert!(
        problems.is_empty(),
        "the route table differs from the expected one:\n  {}",
        problems.join("\n  ")
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Anonymous,
    User,
    Auditor,
    Admin,
    /// An admin's token of scope `scim`: SCIM and nothing else.
    Provisioner,
    /// A user's database token (`warrant db-token`): the PostgreSQL gateway's password, no
    /// right on the API at all.
    DbToken,
}

impl Caller {
    const ALL: [Caller; 6] = [
        Self::Anonymous,
        Self::User,
        Self::Auditor,
        Self::Admin,
        Self::Provisioner,
        Self::DbToken,
    ];

    /// The identity behind the caller, with its system role.
    fn identity(self) -> Option<(&'static str, SystemRole)> {
        match self {
            Self::Anonymous => None,
            Self::User | Self::DbToken => Some(("alice", SystemRole::User)),
            Self::Auditor => Some(("audrey", SystemRole::Auditor)),
            Self::Admin | Self::Provisioner => Some(("admin", SystemRole::Admin)),
        }
    }

    fn has(self, access: Access) -> bool {
        match (access, self) {
            (Public, _) => true,
            (Scim, c) => c == Self::Provisioner,
            (_, Self::Provisioner | Self::DbToken) => false,
            (Signed, c) => c >= Self::User,
            (Auditor, c) => c >= Self::Auditor,
            (Admin, c) => c >= Self::Admin,
        }
    }

    /// The refusal a caller without the access gets: (status, code). SCIM routes answer in
    /// the SCIM error schema, which the client reports as `http_error`.
    fn refusal(self, access: Access) -> (u16, &'static str) {
        match (access, self) {
            (Scim, Self::Anonymous) => (401, "http_error"),
            (Scim, _) => (403, "http_error"),
            (_, Self::Anonymous) => (401, "unauthenticated"),
            (_, Self::Provisioner | Self::DbToken) => (403, "scope_insufficient"),
            _ => (403, "role_required"),
        }
    }
}

/// A plausible concrete path for `pattern`: identity routes name the caller itself (so that
/// disabling or deleting hits the self-protection, not the fixture), everything else names
/// something that does not exist.
fn concrete(pattern: &str, caller: Caller) -> String {
    let me = caller.identity().map_or("alice", |(n, _)| n);
    let name = if pattern.starts_with("/api/v1/identities/") {
        me
    } else {
        "ghost"
    };
    pattern
        .replace("{name}", name)
        .replace("{identity}", me)
        .replace("{role}", "ghost")
        .replace("{id}", "0000")
        .replace("{endpoint}", "Users")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_exactly_the_callers_without_its_access() {
    let s = Server::start().await;
    s.add_identity("audrey", "auditor", &[]).await;

    let mut mismatches = Vec::new();
    let mut calls = 0;
    for spec in route_table() {
        let method = Method::from_bytes(spec.method.as_bytes()).expect("method");
        let body = matches!(spec.method, "POST" | "PUT" | "PATCH").then(|| json!({}));
        for caller in Caller::ALL {
            // A fresh token per call: logout, token revocation or disabling cannot break
            // the calls after it.
            let client = match (caller, caller.identity()) {
                (_, None) => s.anon(),
                (Caller::Provisioner, _) => s.client(&s.fresh_scim_token().await),
                (Caller::DbToken, _) => s.client(&s.fresh_db_token("alice").await),
                (_, Some((name, role))) => s.client(&s.fresh_token(name, role).await),
            };
            let path = concrete(spec.path, caller);
            let r = call(&client, method.clone(), &path, body.clone()).await;
            calls += 1;
            let (status, code) = match &r {
                Ok(_) => (200, String::new()),
                Err(e) => (e.status.unwrap_or(0), e.code.clone()),
            };
            let got = format!("{status} {code}");
            let line = |want: &str| {
                format!(
                    "{:<7} {:<48} as {:<9} -> {got:<28} want {want}",
                    spec.method,
                    path,
                    format!("{caller:?}"),
                )
            };
            if caller.has(spec.access) {
                let refused = matches!(
                    code.as_str(),
                    "unauthenticated" | "role_required" | "invalid_token" | "scope_insufficient"
                ) || (spec.access == Scim && matches!(status, 401 | 403));
                if refused {
                    mismatches.push(line("past authorisation"));
                } else if status >= 500 {
                    mismatches.push(line("past authorisation, and no server error"));
                }
            } else {
                let want = caller.refusal(spec.access);
                if (status, code.as_str()) != want {
                    mismatches.push(line(&format!("{} {}", want.0, want.1)));
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {calls} calls did not meet the route's access:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

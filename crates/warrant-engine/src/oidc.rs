//! OpenID Connect sign-in: between `warrant-oidc` (the protocol) and the HTTP and CLI layers.
//!
//! [`OidcService::discover`] is built once at server start from [`OidcSignIn`].
//! [`Engine::oidc_begin`] keeps the [`PendingLogin`] server side (table `pending_logins`, ten
//! minutes) under a random login id and returns the provider's authorization URL;
//! [`Engine::oidc_complete`] takes that login out of the store (single use), lets the relying
//! party exchange the code and verify the ID token, finds the identity, applies the group
//! mapping (with mover handling), audits and issues a new session token.
//!
//! Identity matching, in order, never by name alone:
//! 1. `sub` equals the identity's `external_id` and the identity came from a directory source
//!    (OIDC first; else SCIM or LDAP, whose IdP may provision with the same id);
//! 2. with `match_email`, a verified email (`email_verified: true`) shared by exactly one
//!    identity that is not linked to another OpenID subject; audited as the source
//!    `oidc-email`, so an email match is never silent;
//! 3. with `create_unknown`, a new identity (source `oidc`, `external_id` = `sub`) named by
//!    `name_claim`; a name already taken is refused;
//! 4. otherwise the sign-in is refused (`oidc_no_identity`).
//!
//! Group mapping: each Warrant group the mapping names is managed: joined when one of the claim
//! values mapped to it is in the groups claim, left (mover: grants and requests that only this
//! group supported go in the same transaction) when none is. Memberships of groups the mapping
//! does not name are never touched. A mapped group that does not exist, or that SCIM or LDAP
//! owns (its members are theirs to manage), is skipped and logged as a warning; the sign-in
//! goes on. A missing groups claim counts as no groups: the managed memberships are left,
//! which fails towards less access.
//!
//! The session carries no second-factor proof (`mfa_at` is empty): step-up for rules and
//! approval stages that require MFA still asks for Warrant's own factor.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Deserialize;
use url::{Host, Url};
use warrant_audit::Event;
use warrant_core::{Identity, IdentityStatus, Name, Source, SystemRole, Timestamp};
use warrant_oidc::{
    Claims, OidcConfig, OidcError, PENDING_LOGIN_TTL_SECS, PendingLogin, RelyingParty,
};
use warrant_store::WriteTx;

use crate::Engine;
use crate::auth::{Actor, IssuedToken, Scope, TokenSpec, issue_token};
use crate::directory::{IdentityInput, tx_add_identity, tx_add_member, tx_remove_member};
use crate::error::{EngineError, ErrorKind, Result};
use crate::policy::PolicyState;

/// How long an `mfa_pending` session (an OIDC sign-in still owing Warrant's second factor) lasts.
pub const MFA_PENDING_SECS: i64 = 600;

/// The `kind` of OIDC logins in the `pending_logins` table.
const LOGIN_KIND: &str = "oidc";

/// At most this many logins may wait for their callback at once; more are refused
/// (`rate_limited`) so that unauthenticated callers cannot fill the store.
pub const MAX_PENDING_LOGINS: i64 = 10_000;

/// The audited `source` of an OIDC sign-in matched by subject (or creating the identity).
pub const SOURCE_SUBJECT: &str = "oidc";

/// The audited `source` of an OIDC sign-in matched by verified email.
pub const SOURCE_EMAIL: &str = "oidc-email";

/// The label of the session tokens OIDC sign-ins issue.
pub const TOKEN_LABEL: &str = "oidc sign-in";

/// Which claim names an identity created at its first sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameClaim {
    /// `preferred_username` (the default).
    #[default]
    PreferredUsername,
    /// `email`, only when the provider says it is verified.
    Email,
    /// `sub`.
    Sub,
}

/// How Warrant signs people in through an OpenID provider (the server's `oidc` settings).
///
/// ```
/// let cfg: warrant_engine::oidc::OidcSignIn = serde_json::from_str(r#"{
///     "provider": {"issuer": "https://idp.example.com", "client_id": "warrant"},
///     "redirect_uris": ["https://warrant.example.com/api/v1/auth/oidc/callback",
///                       "http://127.0.0.1/callback"],
///     "group_mapping": {"pam-dba": "dba"}
/// }"#).unwrap();
/// assert!(!cfg.match_email && !cfg.create_unknown);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSignIn {
    /// The provider and Warrant's registration there.
    pub provider: OidcConfig,
    /// Match an existing identity by the provider's *verified* email when no identity has the
    /// subject as its external id. Default: false (an email match could hand an account to
    /// whoever controls that address at the provider).
    #[serde(default)]
    pub match_email: bool,
    /// Create an identity (source `oidc`, role `user`) at the first sign-in of an unknown
    /// subject. Default: false (an admin, SCIM or LDAP provisions identities).
    #[serde(default)]
    pub create_unknown: bool,
    /// Which claim names a created identity. Default: `preferred_username`.
    #[serde(default)]
    pub name_claim: NameClaim,
    /// Groups claim value → Warrant group. Only the groups named here are managed by sign-in.
    #[serde(default)]
    pub group_mapping: BTreeMap<String, String>,
    /// The redirect URIs sign-ins may use: the server's callback, and loopback URIs for the
    /// CLI. A loopback IP literal (`http://127.0.0.1/…`, `http://[::1]/…`) allows any port
    /// (RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
}

/// OIDC sign-in, ready to use: the provider discovered and the settings checked.
#[derive(Debug, Clone)]
pub struct OidcService {
    rp: RelyingParty,
    cfg: OidcSignIn,
    redirects: Vec<Url>,
    mapping: BTreeMap<String, Name>,
}

impl OidcService {
    /// Checks the settings and reads the provider's discovery document and keys. Built once at
    /// server start.
    pub async fn discover(cfg: OidcSignIn) -> Result<Self> {
        let invalid = |m: String| EngineError::invalid("oidc_config", m);
        if cfg.redirect_uris.is_empty() {
            return Err(invalid(
                "redirect_uris is empty: list the server's callback URL (and http://127.0.0.1/callback for the CLI)".into(),
            ));
        }
        let mut redirects = Vec::new();
        for uri in &cfg.redirect_uris {
            let url = Url::parse(uri)
                .map_err(|e| invalid(format!("redirect URI {uri:?} is not a URL ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
                return Err(invalid(format!(
                    "redirect URI {uri:?} must be an http(s) URL without a fragment"
                )));
            }
            redirects.push(url);
        }
        let mut mapping = BTreeMap::new();
        for (value, group) in &cfg.group_mapping {
            let name = Name::new(group.as_str()).map_err(|e| {
                invalid(format!(
                    "group_mapping maps {value:?} to {group:?}, which is not a group name: {e}"
                ))
            })?;
            mapping.insert(value.clone(), name);
        }
        let rp = RelyingParty::discover(cfg.provider.clone())
            .await
            .map_err(oidc_error)?;
        Ok(Self {
            rp,
            cfg,
            redirects,
            mapping,
        })
    }

    /// The settings.
    pub fn config(&self) -> &OidcSignIn {
        &self.cfg
    }

    /// The relying party (issuer, client id).
    pub fn relying_party(&self) -> &RelyingParty {
        &self.rp
    }

    /// `uri` parsed, if it is one of the allowed redirect URIs.
    pub fn check_redirect_uri(&self, uri: &str) -> Result<Url> {
        Url::parse(uri)
            .ok()
            .filter(|u| redirect_allowed(&self.redirects, u))
            .ok_or_else(|| {
                EngineError::invalid(
                    "oidc_redirect_uri",
                    format!(
                        "redirect URI {uri:?} is not allowed: use one of {} (any port on a loopback address)",
                        self.cfg.redirect_uris.join(", ")
                    ),
                )
            })
    }
}

fn loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        _ => false,
    }
}

/// Whether `requested` is one of `allowed`: equal, or on the same loopback IP literal over
/// plain http with the same path and query and any port (RFC 8252 §7.3, native apps).
fn redirect_allowed(allowed: &[Url], requested: &Url) -> bool {
    if requested.fragment().is_some()
        || !requested.username().is_empty()
        || requested.password().is_some()
    {
        return false;
    }
    allowed.iter().any(|a| {
        a == requested
            || (a.scheme() == "http"
                && requested.scheme() == "http"
                && loopback_ip(a)
                && a.host() == requested.host()
                && a.path() == requested.path()
                && a.query() == requested.query())
    })
}

/// An `OidcError` as an engine error with the same stable code. Its messages never carry the
/// code, tokens, the client secret or the PKCE verifier.
fn oidc_error(e: OidcError) -> EngineError {
    let kind = match e {
        OidcError::Config(_) | OidcError::Discovery(_) => ErrorKind::Internal,
        _ => ErrorKind::Unauthenticated,
    };
    EngineError {
        kind,
        code: e.code(),
        message: e.to_string(),
    }
}

fn refused(code: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::unauthenticated(code, message)
}

/// How the identity was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Matched {
    Subject,
    Email,
    Created,
}

/// What a successful sign-in transaction produced.
struct SignedIn {
    token: IssuedToken,
    grants_revoked: bool,
}

impl Engine {
    /// Starts an OIDC sign-in for `redirect_uri` (one of the allowed ones): keeps the pending
    /// login server side for ten minutes under a random id. Returns `(login_id,
    /// authorize_url)`: send the browser to the URL and keep the id (a cookie, or the CLI's
    /// memory) for [`oidc_complete`](Self::oidc_complete).
    pub async fn oidc_begin(&self, svc: &OidcService, redirect_uri: &str) -> Result<(String, Url)> {
        let redirect = svc.check_redirect_uri(redirect_uri)?;
        let now = self.now();
        let (url, pending) = svc.rp.begin(&redirect, &*self.inner.clock);
        let data = serde_json::to_string(&pending)
            .map_err(|e| EngineError::internal(format!("pending login not serialisable: {e}")))?;
        let id = warrant_iam::new_id()?;
        let stored = self
            .store()
            .put_pending_login(
                warrant_store::PendingLogin {
                    id: &id,
                    kind: LOGIN_KIND,
                    data: &data,
                    expires_at: now.plus_secs(PENDING_LOGIN_TTL_SECS),
                    owner: None,
                },
                now,
                MAX_PENDING_LOGINS,
            )
            .await?;
        if stored.is_none() {
            return Err(EngineError::rate_limited(
                "too many sign-ins are in progress: try again in a few minutes",
            ));
        }
        Ok((id, url))
    }

    /// Completes an OIDC sign-in with the callback's `state` and `code`: takes the pending
    /// login `login_id` out of the store (it works once), verifies the provider's answer, finds
    /// the identity, applies the group mapping and issues a new session token. `peer` (the
    /// caller's address) goes to the log. Every outcome is audited (`auth.signin_succeeded`
    /// with source `oidc` or `oidc-email`, or `auth.signin_failed` with the error's code as the
    /// reason); codes, tokens and the verifier never appear in errors or audit records.
    pub async fn oidc_complete(
        &self,
        svc: &OidcService,
        login_id: &str,
        state: &str,
        code: &str,
        peer: &str,
    ) -> Result<IssuedToken> {
        const UNKNOWN: &str = "oidc:unknown";
        let now = self.now();
        let Some((data, expires_at)) = self
            .store()
            .take_pending_login(login_id, LOGIN_KIND)
            .await?
        else {
            let e = refused(
                "oidc_login_unknown",
                "this sign-in is unknown or was already used: start the sign-in again",
            );
            return Err(self.oidc_refused(UNKNOWN, e, peer).await);
        };
        if expires_at <= now {
            let e = refused(
                "oidc_expired",
                "this sign-in took more than ten minutes: start it again",
            );
            return Err(self.oidc_refused(UNKNOWN, e, peer).await);
        }
        let pending: PendingLogin = serde_json::from_str(&data)
            .map_err(|e| EngineError::internal(format!("stored pending login unreadable: {e}")))?;
        let claims = match svc
            .rp
            .complete(&pending, state, code, &*self.inner.clock)
            .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.oidc_refused(UNKNOWN, oidc_error(e), peer).await),
        };
        let _gate = self.policy_gate_read().await;
        let policy = self.policy();
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let mut who = format!("oidc:{}", claims.subject);
        match self
            .tx_oidc_sign_in(&mut tx, svc, &claims, &policy, &mut who, now)
            .await
        {
            Ok(done) => {
                tx.commit().await?;
                if done.grants_revoked {
                    self.wake_scheduler();
                }
                tracing::info!(identity = %who, peer, "OIDC sign-in");
                Ok(done.token)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(self.oidc_refused(&who, e, peer).await)
            }
        }
    }

    /// Audits a refused sign-in (reason: the error's code) and returns the error.
    async fn oidc_refused(&self, who: &str, e: EngineError, peer: &str) -> EngineError {
        tracing::info!(identity = who, peer, code = e.code, "OIDC sign-in refused");
        let audit = async {
            let now = self.now();
            let mut tx = self.store().begin().await?;
            tx.audit(
                now,
                None,
                &Event::SigninFailed {
                    identity: who.to_owned(),
                    source: SOURCE_SUBJECT.to_owned(),
                    reason: e.code.to_owned(),
                },
            )
            .await?;
            tx.commit().await
        };
        match audit.await {
            Ok(()) => e,
            Err(store) => store.into(),
        }
    }

    async fn tx_oidc_sign_in(
        &self,
        tx: &mut WriteTx,
        svc: &OidcService,
        claims: &Claims,
        policy: &PolicyState,
        who: &mut String,
        now: Timestamp,
    ) -> Result<SignedIn> {
        let (ident, matched) = find_identity(tx, svc, claims, now).await?;
        *who = ident.name.to_string();
        if ident.status != IdentityStatus::Active {
            return Err(refused(
                "oidc_identity_disabled",
                format!(
                    "identity {:?} is disabled: an admin must enable it",
                    ident.name.as_str()
                ),
            ));
        }
        let actor = Actor::internal(ident.name.clone(), ident.system_role).through(Source::Oidc);
        let grants_revoked = self
            .tx_apply_group_mapping(tx, svc, &actor, claims, policy, now)
            .await?;
        tx.audit(
            now,
            Some(ident.name.as_str()),
            &Event::SigninSucceeded {
                identity: ident.name.to_string(),
                source: match matched {
                    Matched::Email => SOURCE_EMAIL,
                    Matched::Subject | Matched::Created => SOURCE_SUBJECT,
                }
                .to_owned(),
            },
        )
        .await?;
        // The provider vouches for the person, not for Warrant's second factor: an identity
        // that has one gets a session that can only prove it (`mfa_pending`).
        let has_factor = tx
            .q()
            .factors_of(ident.name.as_str())
            .await?
            .iter()
            .any(|f| f.confirmed_at.is_some());
        let token = issue_token(
            tx,
            &ident.name,
            TokenSpec {
                kind: "session",
                label: TOKEN_LABEL,
                // A session that can only prove the factor lasts minutes, not a working day:
                // it is not a standing handle for guessing codes.
                expires_at: Some(if has_factor {
                    now.plus_secs(MFA_PENDING_SECS)
                } else {
                    now.plus_secs(self.inner.config.session_ttl_secs)
                }),
                scope: if has_factor {
                    Scope::MfaPending
                } else {
                    Scope::Full
                },
                mfa_at: None,
            },
            now,
        )
        .await?;
        Ok(SignedIn {
            token,
            grants_revoked,
        })
    }

    /// Joins and leaves the groups the mapping manages; returns whether a membership was
    /// removed (grants may have been revoked).
    async fn tx_apply_group_mapping(
        &self,
        tx: &mut WriteTx,
        svc: &OidcService,
        actor: &Actor,
        claims: &Claims,
        policy: &PolicyState,
        now: Timestamp,
    ) -> Result<bool> {
        let wanted: BTreeSet<&Name> = claims
            .groups
            .iter()
            .filter_map(|g| svc.mapping.get(g))
            .collect();
        let managed: BTreeSet<&Name> = svc.mapping.values().collect();
        let who = actor.name.as_str();
        let current: BTreeSet<Name> = tx.q().groups_of(who).await?.into_iter().collect();
        let mut removed = false;
        for group in managed {
            let g = group.as_str();
            let Some(found) = tx.q().group(g).await? else {
                tracing::warn!(
                    group = g,
                    identity = who,
                    "OIDC group mapping names a group that does not exist: skipped"
                );
                continue;
            };
            if found.source.is_external() && found.source != Source::Oidc {
                tracing::warn!(group = g, identity = who, source = %found.source, "OIDC group mapping names a group another source owns: skipped");
                continue;
            }
            if wanted.contains(group) {
                if !current.contains(group) {
                    tx_add_member(tx, actor, g, who, now).await?;
                }
            } else if current.contains(group) {
                removed |=
                    tx_remove_member(tx, policy, actor, g, who, self.jobs_enabled(), now).await?;
            }
        }
        Ok(removed)
    }
}

/// Finds (or, with `create_unknown`, creates) the identity of `claims`; see the module docs.
async fn find_identity(
    tx: &mut WriteTx,
    svc: &OidcService,
    claims: &Claims,
    now: Timestamp,
) -> Result<(Identity, Matched)> {
    let cfg = &svc.cfg;
    let linked: Vec<(Name, Source)> = tx
        .q()
        .identities_by_external_id(&claims.subject)
        .await?
        .into_iter()
        .filter(|(_, s)| s.is_external())
        .collect();
    let own: Vec<&Name> = linked
        .iter()
        .filter(|(_, s)| *s == Source::Oidc)
        .map(|(n, _)| n)
        .collect();
    let candidates: Vec<&Name> = if own.is_empty() {
        linked.iter().map(|(n, _)| n).collect()
    } else {
        own
    };
    match candidates.as_slice() {
        [one] => return Ok((load(tx, one).await?, Matched::Subject)),
        [] => {}
        several => {
            return Err(refused(
                "oidc_identity_ambiguous",
                format!(
                    "several identities ({}) have this OpenID subject as their external id: an admin must keep one",
                    names(several)
                ),
            ));
        }
    }
    let verified_email = claims
        .email
        .as_deref()
        .filter(|e| !e.is_empty() && claims.email_verified == Some(true));
    if cfg.match_email
        && let Some(email) = verified_email
    {
        let found = tx.q().identities_by_email(email).await?;
        match found.as_slice() {
            [(_, Source::Oidc)] => {
                return Err(refused(
                    "oidc_email_linked",
                    "the identity with this email is linked to another OpenID subject: an admin must resolve it",
                ));
            }
            [(one, _)] => {
                let ident = load(tx, one).await?;
                // An email is weaker evidence than a subject: it never reaches an identity
                // already linked to some external account, nor one Warrant made an auditor or
                // admin (their owners link them by subject).
                if ident.external_id.is_some() {
                    return Err(refused(
                        "oidc_email_linked",
                        "the identity with this email is linked to another account of its source: an admin must resolve it",
                    ));
                }
                if ident.system_role > SystemRole::User {
                    return Err(refused(
                        "oidc_email_privileged",
                        "the identity with this email is an auditor or admin of Warrant: it signs in by OpenID subject only (an admin sets its external id)",
                    ));
                }
                return Ok((ident, Matched::Email));
            }
            [] => {}
            several => {
                let several: Vec<&Name> = several.iter().map(|(n, _)| n).collect();
                return Err(refused(
                    "oidc_email_ambiguous",
                    format!(
                        "several identities ({}) have this email: an admin must link one (set its external id to the OpenID subject)",
                        names(&several)
                    ),
                ));
            }
        }
    }
    if !cfg.create_unknown {
        return Err(refused(
            "oidc_no_identity",
            "no Warrant identity matches this OpenID account: an admin must provision the identity (or enable create_unknown)",
        ));
    }
    let raw = match cfg.name_claim {
        NameClaim::PreferredUsername => claims.preferred_username.as_deref(),
        NameClaim::Email => verified_email,
        NameClaim::Sub => Some(claims.subject.as_str()),
    };
    let claim = match cfg.name_claim {
        NameClaim::PreferredUsername => "preferred_username",
        NameClaim::Email => "email (verified)",
        NameClaim::Sub => "sub",
    };
    let name = raw.and_then(|r| Name::new(r).ok()).ok_or_else(|| {
        refused(
            "oidc_invalid_name",
            format!(
                "the provider's {claim} claim is missing or not a valid Warrant name (A-Z a-z 0-9 . _ @ -): an admin must provision the identity, or change name_claim"
            ),
        )
    })?;
    if tx.q().identity(name.as_str()).await?.is_some() {
        return Err(refused(
            "oidc_name_taken",
            format!(
                "an identity named {:?} exists but is not linked to this OpenID account: an admin must link it (its external id) or rename one",
                name.as_str()
            ),
        ));
    }
    let actor = Actor::internal(name.clone(), SystemRole::User).through(Source::Oidc);
    let ident = tx_add_identity(
        tx,
        &actor,
        IdentityInput {
            name,
            display_name: claims.name.clone(),
            email: verified_email.unwrap_or_default().to_owned(),
            manager: None,
            system_role: SystemRole::User,
            password: None,
            external_id: Some(claims.subject.clone()),
        },
        now,
    )
    .await?;
    Ok((ident, Matched::Created))
}

async fn load(tx: &mut WriteTx, name: &Name) -> Result<Identity> {
    tx.q()
        .identity(name.as_str())
        .await?
        .ok_or_else(|| EngineError::internal(format!("identity {name} vanished")))
}

fn names(names: &[&Name]) -> String {
    names
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn allowed(requested: &str) -> bool {
        let list: Vec<Url> = [
            "https://warrant.example.com/api/v1/auth/oidc/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:8400/cb",
        ]
        .iter()
        .map(|u| Url::parse(u).unwrap())
        .collect();
        redirect_allowed(&list, &Url::parse(requested).unwrap())
    }

    #[test]
    fn redirect_uris() {
        assert!(allowed(
            "https://warrant.example.com/api/v1/auth/oidc/callback"
        ));
        assert!(!allowed(
            "https://warrant.example.com/api/v1/auth/oidc/callback2"
        ));
        assert!(!allowed(
            "https://warrant.example.com:8443/api/v1/auth/oidc/callback"
        ));
        assert!(!allowed(
            "http://warrant.example.com/api/v1/auth/oidc/callback"
        ));
        assert!(!allowed(
            "https://warrant.example.com/api/v1/auth/oidc/callback#x"
        ));
        assert!(!allowed(
            "https://u@warrant.example.com/api/v1/auth/oidc/callback"
        ));
        // Loopback: any port, same address, path and query (RFC 8252 §7.3).
        assert!(allowed("http://127.0.0.1/callback"));
        assert!(allowed("http://127.0.0.1:53121/callback"));
        assert!(allowed("http://[::1]:1/cb"));
        assert!(!allowed("http://127.0.0.1:53121/other"));
        assert!(!allowed("http://127.0.0.1:53121/callback?x=1"));
        assert!(!allowed("http://localhost:53121/callback"));
        assert!(!allowed("http://127.0.0.2:53121/callback"));
        assert!(!allowed("https://127.0.0.1:53121/callback"));
    }

    #[test]
    fn settings_defaults() {
        let cfg: OidcSignIn = serde_json::from_str(
            r#"{"provider": {"issuer": "https://idp.example.com", "client_id": "w"},
                "redirect_uris": ["http://127.0.0.1/cb"], "name_claim": "sub"}"#,
        )
        .unwrap();
        assert_eq!(cfg.name_claim, NameClaim::Sub);
        assert!(!cfg.match_email && !cfg.create_unknown && cfg.group_mapping.is_empty());
        assert!(
            serde_json::from_str::<OidcSignIn>(
                r#"{"provider": {"issuer": "https://i", "client_id": "w"}, "redirect_uris": [],
                    "match_emails": true}"#,
            )
            .is_err()
        );
    }
}

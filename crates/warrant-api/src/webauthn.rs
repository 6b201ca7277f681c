//! WebAuthn over HTTP: `/api/v1/mfa/webauthn/*` (register a security key, step-up) and
//! `/api/v1/auth/webauthn/*` (sign-in with password and security key). Each ceremony is a
//! start call, whose `options` go to the browser's `navigator.credentials.create` / `.get`,
//! and a finish call with the browser's answer and the `challenge_id` of the start.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::{Secret, Timestamp};
use warrant_engine::Actor;
use warrant_engine::webauthn::Ceremony;

use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJson};
use crate::server::AppState;
use crate::wire::{MfaVerifiedOut, TokenOut};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Body of `POST /api/v1/mfa/webauthn/register` (optional).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// A label for the key, e.g. `yubikey`.
    #[serde(default)]
    pub label: Option<String>,
}

/// A ceremony started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeremonyOut {
    /// Give it back with the answer.
    pub challenge_id: String,
    /// For `navigator.credentials.create` (registration) or `.get` (`{"publicKey": …}`).
    pub options: serde_json::Value,
}

impl From<Ceremony> for CeremonyOut {
    fn from(c: Ceremony) -> Self {
        Self {
            challenge_id: c.challenge_id,
            options: c.options,
        }
    }
}

/// The browser's answer to a ceremony.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FinishIn {
    /// From the start call.
    pub challenge_id: String,
    /// The `PublicKeyCredential` as JSON (binary fields base64url).
    pub credential: serde_json::Value,
}

/// A key registered.
#[derive(Clone, Serialize, Deserialize)]
pub struct RegisteredOut {
    /// The factor's id.
    pub factor_id: String,
    /// Single-use recovery codes (empty when the identity already had some).
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RegisteredOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredOut")
            .field("factor_id", &self.factor_id)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

/// Body of `POST /api/v1/auth/webauthn/start`. Its `Debug` hides the password.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigninStartIn {
    /// Identity name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SigninStartIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigninStartIn")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `POST /api/v1/mfa/webauthn/register`: options for `navigator.credentials.create`.
pub async fn register_start(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    OptionalJson(b): OptionalJson<RegisterIn>,
) -> ApiResult<CeremonyOut> {
    let label = b.and_then(|b| b.label).unwrap_or_default();
    let c = s.engine().webauthn_register_start(&a, &label).await?;
    Ok(Json(c.into()))
}

/// `POST /api/v1/mfa/webauthn/register/finish`: the key is registered.
pub async fn register_finish(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<FinishIn>,
) -> ApiResult<RegisteredOut> {
    let r = s
        .engine()
        .webauthn_register_finish(&a, &b.challenge_id, &b.credential)
        .await?;
    Ok(Json(RegisteredOut {
        factor_id: r.factor_id,
        recovery_codes: r
            .recovery_codes
            .iter()
            .map(|c| c.expose().clone())
            .collect(),
    }))
}

/// `POST /api/v1/mfa/webauthn/verify`: options for `navigator.credentials.get` (step-up).
pub async fn verify_start(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<CeremonyOut> {
    let c = s.engine().webauthn_verify_start(&a).await?;
    Ok(Json(c.into()))
}

/// `POST /api/v1/mfa/webauthn/verify/finish`: the session's second factor counts from now.
pub async fn verify_finish(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<FinishIn>,
) -> ApiResult<MfaVerifiedOut> {
    let at = s
        .engine()
        .webauthn_verify_finish(&a, &b.challenge_id, &b.credential)
        .await?;
    Ok(Json(MfaVerifiedOut {
        mfa_at: at.rfc3339(),
        valid_until: at.plus_secs(warrant_engine::mfa::STEP_UP_SECS).rfc3339(),
    }))
}

/// `POST /api/v1/auth/webauthn/start`: checks the password, returns options for
/// `navigator.credentials.get`.
pub async fn signin_start(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(b): JsonBody<SigninStartIn>,
) -> ApiResult<CeremonyOut> {
    let user = b.user.trim().to_owned();
    s.check_signin_rate(peer.ip(), &user)?;
    let c = s
        .engine()
        .webauthn_signin_start(&user, Secret::new(b.password), &peer.ip().to_string())
        .await?;
    Ok(Json(c.into()))
}

/// `POST /api/v1/auth/webauthn/finish`: a new session token, MFA-proved.
pub async fn signin_finish(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(b): JsonBody<FinishIn>,
) -> ApiResult<TokenOut> {
    s.check_ip_rate(peer.ip())?;
    let t = s
        .engine()
        .webauthn_signin_finish(&b.challenge_id, &b.credential, &peer.ip().to_string())
        .await?;
    Ok(Json(TokenOut {
        id: t.id,
        token: Some(t.token.expose().clone()),
        identity: t.identity.to_string(),
        kind: "session".into(),
        label: "sign-in".into(),
        expires_at: t.expires_at.map(Timestamp::rfc3339),
        revoked_at: None,
        scope: "full".into(),
    }))
}

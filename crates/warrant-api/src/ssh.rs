//! The SSH CA over HTTP: its public key and KRL (plain, for sshd hosts to fetch), and
//! certificates under an active grant.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::Timestamp;
use warrant_engine::Actor;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::server::AppState;

/// `GET /api/v1/ssh/ca`: the CA's public key line (text), for `TrustedUserCAKeys`.
pub async fn ca(State(s): State<AppState>) -> Result<Response, ApiError> {
    let line = s.engine().ssh_ca_public().await?;
    Ok((StatusCode::OK, format!("{line}\n")).into_response())
}

/// `GET /api/v1/ssh/krl`: the KRL (binary), for `RevokedKeys`.
pub async fn krl(State(s): State<AppState>) -> Result<Response, ApiError> {
    let bytes = s.engine().ssh_krl().await?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(r)
}

/// Body of `POST /api/v1/ssh/certs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertIn {
    /// Target.
    pub target: String,
    /// Role.
    pub role: String,
    /// The OpenSSH public key line to certify.
    pub public_key: String,
}

/// A certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertOut {
    /// The OpenSSH certificate line.
    pub certificate: String,
    /// Its serial.
    pub serial: i64,
    /// The grant it depends on.
    pub grant_id: String,
    /// Its end.
    pub valid_before: String,
    /// The accounts it may log in as.
    pub principals: Vec<String>,
}

/// `POST /api/v1/ssh/certs`.
pub async fn issue(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<CertIn>,
) -> Result<Json<CertOut>, ApiError> {
    let c = s
        .engine()
        .issue_ssh_cert(&a, &b.target, &b.role, &b.public_key)
        .await?;
    Ok(Json(CertOut {
        certificate: c.certificate,
        serial: c.serial,
        grant_id: c.grant_id,
        valid_before: Timestamp::rfc3339(c.valid_before),
        principals: c.principals,
    }))
}

/// A registered SSH public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKeyOut {
    /// Its id.
    pub id: String,
    /// Whose.
    pub identity: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// The public key line.
    pub public_key: String,
    /// Label.
    pub label: String,
    /// Registered.
    pub created_at: String,
    /// Last used at the gateway.
    pub last_used_at: Option<String>,
}

impl From<&warrant_store::SshKeyRow> for SshKeyOut {
    fn from(k: &warrant_store::SshKeyRow) -> Self {
        Self {
            id: k.id.clone(),
            identity: k.identity.clone(),
            fingerprint: k.fingerprint.clone(),
            public_key: k.public_key.clone(),
            label: k.label.clone(),
            created_at: k.created_at.rfc3339(),
            last_used_at: k.last_used_at.map(warrant_core::Timestamp::rfc3339),
        }
    }
}

/// Body of `POST /api/v1/ssh/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshKeyIn {
    /// One OpenSSH public key line.
    pub public_key: String,
    /// A label (default: the key's comment).
    #[serde(default)]
    pub label: Option<String>,
    /// Whose (admins; default: yours).
    #[serde(default)]
    pub identity: Option<String>,
}

/// Query of the key listing and deletion.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    /// Whose (admins; default: yours).
    #[serde(default)]
    pub identity: Option<String>,
}

/// `GET /api/v1/ssh/keys`.
pub async fn keys(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    axum::extract::Query(q): axum::extract::Query<KeysQuery>,
) -> Result<Json<Vec<SshKeyOut>>, ApiError> {
    let v = s.engine().ssh_keys(&a, q.identity.as_deref()).await?;
    Ok(Json(v.iter().map(SshKeyOut::from).collect()))
}

/// `POST /api/v1/ssh/keys`.
pub async fn add_key(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<SshKeyIn>,
) -> Result<Json<SshKeyOut>, ApiError> {
    let k = s
        .engine()
        .add_ssh_key(&a, b.identity.as_deref(), &b.public_key, b.label.as_deref())
        .await?;
    Ok(Json(SshKeyOut::from(&k)))
}

/// `DELETE /api/v1/ssh/keys/{id}`.
pub async fn delete_key(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<KeysQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.engine()
        .delete_ssh_key(&a, q.identity.as_deref(), &id)
        .await?;
    Ok(Json(serde_json::json!({"id": id, "deleted": true})))
}

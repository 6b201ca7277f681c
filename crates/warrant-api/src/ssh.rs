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

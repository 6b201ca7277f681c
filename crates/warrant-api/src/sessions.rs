//! Gateway sessions over HTTP: the list (live ones with their byte counts), one session, ending
//! a live one, and its recording with its signed manifest.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::Timestamp;
use warrant_engine::Actor;
use warrant_store::GatewaySessionRow;

use crate::error::ApiError;
use crate::server::AppState;

/// A live session as a gateway sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveSession {
    /// The session id.
    pub id: String,
    /// Bytes from the person so far.
    pub bytes_up: u64,
    /// Bytes to the person so far.
    pub bytes_down: u64,
}

/// What the running gateways offer for live control (`warrant serve` wires the SSH gateway
/// here; the API does not depend on it).
pub trait LiveSessions: Send + Sync {
    /// The sessions running now.
    fn live(&self) -> Vec<LiveSession>;
    /// Ends a session with a message to its person; false if no such live session.
    fn kill(&self, id: &str, message: &str) -> bool;
}

/// A session as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionOut {
    /// Its id.
    pub id: String,
    /// `ssh` or `postgres`.
    pub kind: String,
    /// Who.
    pub identity: String,
    /// Where.
    pub target: String,
    /// As which upstream account.
    pub account: String,
    /// Under which grant.
    pub grant_id: String,
    /// Started.
    pub started_at: String,
    /// Ended (absent while live).
    pub ended_at: Option<String>,
    /// Live now.
    pub live: bool,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Bytes from the person.
    pub bytes_up: u64,
    /// Bytes to the person.
    pub bytes_down: u64,
    /// Whether there is a recording.
    pub recorded: bool,
}

fn out(s: &GatewaySessionRow, live: Option<&LiveSession>) -> SessionOut {
    SessionOut {
        id: s.id.clone(),
        kind: s.kind.clone(),
        identity: s.identity.clone(),
        target: s.target.clone(),
        account: s.account.clone(),
        grant_id: s.grant_id.clone(),
        started_at: s.started_at.rfc3339(),
        ended_at: s.ended_at.map(Timestamp::rfc3339),
        live: live.is_some(),
        end_reason: s.end_reason.clone(),
        bytes_up: live.map_or(u64::try_from(s.bytes_up).unwrap_or(0), |l| l.bytes_up),
        bytes_down: live.map_or(u64::try_from(s.bytes_down).unwrap_or(0), |l| l.bytes_down),
        recorded: s.recording.is_some(),
    }
}

fn live_of(s: &AppState) -> Vec<LiveSession> {
    s.live_sessions().map(|l| l.live()).unwrap_or_default()
}

/// `GET /api/v1/sessions`: auditors see all, others their own.
pub async fn list(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> Result<Json<Vec<SessionOut>>, ApiError> {
    let rows = s.engine().gateway_sessions(&a).await?;
    let live = live_of(&s);
    Ok(Json(
        rows.iter()
            .map(|r| out(r, live.iter().find(|l| l.id == r.id)))
            .collect(),
    ))
}

/// `GET /api/v1/sessions/{id}`.
pub async fn get(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<SessionOut>, ApiError> {
    let r = s.engine().gateway_session(&a, &id).await?;
    let live = live_of(&s);
    Ok(Json(out(&r, live.iter().find(|l| l.id == r.id))))
}

/// `POST /api/v1/sessions/{id}/kill` (admins).
pub async fn kill(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let live: Option<Arc<dyn LiveSessions>> = s.live_sessions();
    let message = format!("this session was ended by {}", a.name);
    if live.is_some_and(|l| l.kill(&id, &message)) {
        Ok(Json(serde_json::json!({"id": id, "killed": true})))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_live",
            format!("no live session {id} (warrant sessions)"),
        ))
    }
}

fn recording_file(s: &AppState, row: &GatewaySessionRow) -> Result<std::path::PathBuf, ApiError> {
    let name = row.recording.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            format!("session {} was not recorded", row.id),
        )
    })?;
    let dir = s.recordings().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            "this server keeps no recordings",
        )
    })?;
    // Names are the gateway's own (`<session id>.cast`); refuse anything else.
    if name.contains('/') || name.contains("..") {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "recording_name",
            "a stored recording name is not a plain file name",
        ));
    }
    Ok(dir.join(name))
}

/// `GET /api/v1/sessions/{id}/recording`: the asciicast v2 file.
pub async fn recording(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // The engine shows a session to auditors and to its own person only.
    let row = s.engine().gateway_session(&a, &id).await?;
    let path = recording_file(&s, &row)?;
    let body = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recording",
            format!("the recording of {id} cannot be read: {e}"),
        )
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-asciicast")],
        body,
    )
        .into_response())
}

/// `GET /api/v1/sessions/{id}/manifest`: the recording's signed manifest.
pub async fn manifest(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<warrant_recording::Manifest>, ApiError> {
    let row = s.engine().gateway_session(&a, &id).await?;
    let path = recording_file(&s, &row)?;
    let m = warrant_recording::read_manifest(&warrant_recording::manifest_path(&path)).map_err(
        |e| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_manifest",
                format!("the manifest of {id}: {e} (a session still running has none yet)"),
            )
        },
    )?;
    Ok(Json(m))
}

/// `GET /api/v1/recordings/key`: the public key recordings are signed with.
pub async fn key(State(s): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let k = s.engine().recording_public_key().await?;
    Ok(Json(
        serde_json::json!({"public_key": k, "algorithm": "ed25519"}),
    ))
}

//! Temporary database credentials over HTTP: a target's admin secret (admins) and a grant's
//! credentials, once (its holder).

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::{Secret, Timestamp};
use warrant_engine::Actor;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::server::AppState;

/// Body of `POST /api/v1/targets/{name}/secret`. Its `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The target's admin password.
    pub password: String,
}

impl std::fmt::Debug for SecretIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretIn")
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A grant's database credentials, shown once. Its `Debug` hides the password.
#[derive(Clone, Serialize, Deserialize)]
pub struct DbCredsOut {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub dbname: String,
    /// Role name.
    pub user: String,
    /// Password.
    pub password: String,
    /// When it stops working.
    pub valid_until: String,
    /// The grant.
    pub grant_id: String,
}

impl std::fmt::Debug for DbCredsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCredsOut")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/targets/{name}/secret`.
pub async fn set_secret(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<SecretIn>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.engine()
        .set_target_secret(&a, &name, Secret::new(b.password))
        .await?;
    Ok(Json(
        serde_json::json!({"target": name, "secret_set": true}),
    ))
}

/// `POST /api/v1/grants/{id}/db-creds`.
pub async fn db_creds(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Json<DbCredsOut>, ApiError> {
    let c = s.engine().db_creds(&a, &id).await?;
    Ok(Json(DbCredsOut {
        host: c.host,
        port: c.port,
        dbname: c.dbname,
        user: c.user,
        password: c.password.expose().clone(),
        valid_until: Timestamp::rfc3339(c.valid_until),
        grant_id: c.grant_id,
    }))
}

/// Body of `POST /api/v1/db-tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTokenIn {
    /// How long it lives, e.g. `10m` (default 10 minutes, at most `1h`).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// A database token: the password at the PostgreSQL gateway. Shown once; `Debug` hides it.
#[derive(Clone, Serialize, Deserialize)]
pub struct DbTokenOut {
    /// The identity to connect as (`user`).
    pub user: String,
    /// The token (`password`).
    pub token: String,
    /// When it stops working for new connections.
    pub expires_at: String,
}

impl std::fmt::Debug for DbTokenOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbTokenOut")
            .field("user", &self.user)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `POST /api/v1/db-tokens`.
pub async fn db_token(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<DbTokenIn>,
) -> Result<Json<DbTokenOut>, ApiError> {
    let ttl = b
        .ttl
        .as_deref()
        .map(crate::server::duration)
        .transpose()?
        .map(|d| d.secs());
    let t = s.engine().create_db_token(&a, ttl).await?;
    Ok(Json(DbTokenOut {
        user: t.identity.to_string(),
        token: t.token.expose().clone(),
        expires_at: t.expires_at.map(Timestamp::rfc3339).unwrap_or_default(),
    }))
}

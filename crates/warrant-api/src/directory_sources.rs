//! OIDC sign-in and LDAP sync over HTTP: `/api/v1/auth/oidc/*`, `/api/v1/sync/ldap`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::Timestamp;
use warrant_engine::Actor;
use warrant_engine::oidc::OidcService;
use warrant_engine::sync::{LdapSetup, SyncReport};

use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJson};
use crate::server::AppState;
use crate::wire::TokenOut;

/// The optional directory sources a server is configured with.
#[derive(Default)]
pub struct Sources {
    /// OIDC sign-in, when configured.
    pub oidc: Option<OidcService>,
    /// LDAP sync, when configured.
    pub ldap: Option<LdapSetup>,
    /// The sync under way (or the last one).
    pub sync: Mutex<SyncState>,
}

/// Where the LDAP sync is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// A sync is running.
    pub running: bool,
    /// `users` or `groups` while reading, `applying` after.
    pub phase: Option<String>,
    /// Entries read so far in this phase.
    pub entries: u64,
    /// The last finished run.
    pub last: Option<SyncReport>,
    /// The last run's failure, if it failed.
    pub last_error: Option<String>,
    /// When the last run finished.
    pub finished_at: Option<String>,
}

fn lock(s: &Mutex<SyncState>) -> std::sync::MutexGuard<'_, SyncState> {
    match s.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Marks the sync finished however its future ends (a client that hangs up drops the handler
/// mid-run; the flag must not stay set and block every later sync).
struct Running(Arc<Sources>);

impl Drop for Running {
    fn drop(&mut self) {
        let mut st = lock(&self.0.sync);
        if st.running {
            st.running = false;
            st.phase = None;
            st.last_error
                .get_or_insert_with(|| "the sync was interrupted".into());
        }
    }
}

/// Runs one LDAP sync, keeping [`SyncState`] current; refuses a second concurrent run.
pub async fn run_ldap_sync(
    state: &AppState,
    actor: &Actor,
    dry_run: bool,
    force: bool,
) -> Result<SyncReport, ApiError> {
    let sources: Arc<Sources> = state.sources();
    let Some(setup) = sources.ldap.clone() else {
        return Err(ldap_not_configured());
    };
    {
        let mut st = lock(&sources.sync);
        if st.running {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "sync_running",
                "an LDAP sync is already running: wait for it (warrant sync ldap --status)",
            ));
        }
        st.running = true;
        st.phase = Some("connecting".into());
        st.entries = 0;
        st.last_error = None;
    }
    let _running = Running(Arc::clone(&sources));
    let progress_sources = Arc::clone(&sources);
    let result = state
        .engine()
        .sync_ldap(actor, &setup, dry_run, force, move |p| {
            let mut st = lock(&progress_sources.sync);
            st.phase = Some(
                match p.phase {
                    warrant_ldap::Phase::Users => "users",
                    warrant_ldap::Phase::Groups => "groups",
                }
                .into(),
            );
            st.entries = p.entries;
        })
        .await;
    let mut st = lock(&sources.sync);
    st.running = false;
    st.phase = None;
    st.finished_at = Some(state.engine().now().rfc3339());
    match result {
        Ok(r) => {
            st.last = Some(r.clone());
            st.last_error = None;
            Ok(r)
        }
        Err(e) => {
            st.last_error = Some(e.to_string());
            Err(e.into())
        }
    }
}

/// Body of `POST /api/v1/sync/ldap`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncIn {
    /// Compute the changes, apply none.
    #[serde(default)]
    pub dry_run: bool,
    /// Apply even beyond the removal safeguard.
    #[serde(default)]
    pub force: bool,
}

/// `POST /api/v1/sync/ldap`.
pub async fn sync_ldap(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    OptionalJson(b): OptionalJson<SyncIn>,
) -> Result<Json<SyncReport>, ApiError> {
    let b = b.unwrap_or_default();
    Ok(Json(run_ldap_sync(&s, &a, b.dry_run, b.force).await?))
}

/// `GET /api/v1/sync/ldap`: the sync under way, or the last one.
pub async fn sync_status(State(s): State<AppState>) -> Result<Json<SyncState>, ApiError> {
    let sources = s.sources();
    if sources.ldap.is_none() {
        return Err(ldap_not_configured());
    }
    Ok(Json(lock(&sources.sync).clone()))
}

/// Body of `POST /api/v1/auth/oidc/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcStartIn {
    /// Where the provider sends the browser back: the CLI's loopback listener or the server's
    /// callback, as allowed by the server's `oidc.redirect_uris`.
    pub redirect_uri: String,
}

/// Answer of `POST /api/v1/auth/oidc/start`.
#[derive(Debug, Serialize, Deserialize)]
pub struct OidcStartOut {
    /// Names the login in `complete`.
    pub login_id: String,
    /// Send the browser here.
    pub authorize_url: String,
}

/// Body of `POST /api/v1/auth/oidc/complete`. Its `Debug` hides the code.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcCompleteIn {
    /// From `start`.
    pub login_id: String,
    /// The `state` the provider sent back.
    pub state: String,
    /// The authorization `code` the provider sent back.
    pub code: String,
}

impl std::fmt::Debug for OidcCompleteIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcCompleteIn")
            .field("login_id", &self.login_id)
            .field("state", &"<redacted>")
            .field("code", &"<redacted>")
            .finish()
    }
}

fn ldap_not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ldap_not_configured",
        "this server has no LDAP sync: add an `ldap:` section to its --config file",
    )
}

fn oidc_not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "oidc_not_configured",
        "this server has no OIDC sign-in: add an `oidc:` section to its --config file",
    )
}

/// `POST /api/v1/auth/oidc/start`.
pub async fn oidc_start(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(b): JsonBody<OidcStartIn>,
) -> Result<Json<OidcStartOut>, ApiError> {
    let sources = s.sources();
    let svc = sources.oidc.as_ref().ok_or_else(oidc_not_configured)?;
    // Each start holds a pending login for 10 minutes: one source address cannot fill them.
    s.check_ip_rate(peer.ip())?;
    let (login_id, url) = s.engine().oidc_begin(svc, &b.redirect_uri).await?;
    Ok(Json(OidcStartOut {
        login_id,
        authorize_url: url.to_string(),
    }))
}

/// `POST /api/v1/auth/oidc/complete`: a new session token.
pub async fn oidc_complete(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(b): JsonBody<OidcCompleteIn>,
) -> Result<Json<TokenOut>, ApiError> {
    let sources = s.sources();
    let svc = sources.oidc.as_ref().ok_or_else(oidc_not_configured)?;
    s.check_ip_rate(peer.ip())?;
    let t = s
        .engine()
        .oidc_complete(svc, &b.login_id, &b.state, &b.code, &peer.ip().to_string())
        .await?;
    Ok(Json(TokenOut {
        id: t.id,
        token: Some(t.token.expose().clone()),
        identity: t.identity.to_string(),
        kind: "session".into(),
        label: "oidc sign-in".into(),
        expires_at: t.expires_at.map(Timestamp::rfc3339),
        revoked_at: None,
        scope: t.scope.as_str().into(),
    }))
}

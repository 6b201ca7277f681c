//! The HTTP server: the route table (every route with the coarse role it needs), the
//! authentication middleware, and the handlers that call the engine.
//!
//! [`route_table`] is the single list of routes; [`router`] is built from it, so no route can
//! exist without an access entry, and the role × route test walks the same list.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json, Router};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokio::net::TcpListener;
use warrant_core::{
    ActivationDuration, IdentityStatus, Name, Secret, SystemRole, Target, TargetKind, TargetRole,
    Timestamp,
};
use warrant_engine::{
    Actor, Engine, IdentityInput, IdentityUpdate, NewRequest, PolicyTestInput, RequestFilter, Scope,
};

use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJson, QueryArgs};
use crate::wire::*;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The coarse authority a route needs; finer rights (approver, owner, holder) are the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in identity.
    Signed,
    /// Auditors and admins.
    Auditor,
    /// Admins.
    Admin,
    /// SCIM provisioning: a `scim`-scoped token of an admin, and nothing else.
    Scim,
}

/// One route: method, path and the authority it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern.
    pub path: &'static str,
    /// Authority.
    pub access: Access,
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    metrics: Option<PrometheusHandle>,
    by_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    by_user: Arc<DefaultKeyedRateLimiter<String>>,
    sources: Arc<crate::directory_sources::Sources>,
    kek_file: Option<Arc<std::path::PathBuf>>,
    recordings: Option<Arc<std::path::PathBuf>>,
    live: Option<Arc<dyn crate::sessions::LiveSessions>>,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let pm = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    let b = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(pm).allow_burst(b)
}

impl AppState {
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The same state with OIDC sign-in and LDAP sync as configured.
    pub fn with_sources(mut self, sources: crate::directory_sources::Sources) -> Self {
        self.sources = Arc::new(sources);
        self
    }

    /// The same state with the vault's key file (key rotation writes beside it).
    pub fn with_kek_file(mut self, path: std::path::PathBuf) -> Self {
        self.kek_file = Some(Arc::new(path));
        self
    }

    /// The same state with the directory where gateways write recordings.
    pub fn with_recordings(mut self, dir: std::path::PathBuf) -> Self {
        self.recordings = Some(Arc::new(dir));
        self
    }

    /// The recordings directory, when the server has one.
    pub fn recordings(&self) -> Option<std::path::PathBuf> {
        self.recordings.as_deref().cloned()
    }

    /// The same state with live gateway sessions to list and end.
    pub fn with_live_sessions(mut self, live: Arc<dyn crate::sessions::LiveSessions>) -> Self {
        self.live = Some(live);
        self
    }

    /// The live gateway sessions, when a gateway runs.
    pub fn live_sessions(&self) -> Option<Arc<dyn crate::sessions::LiveSessions>> {
        self.live.clone()
    }

    /// The vault's key file, when the key lives in the data directory.
    pub fn kek_file(&self) -> Option<std::path::PathBuf> {
        self.kek_file.as_deref().cloned()
    }

    /// The directory sources (OIDC, LDAP).
    pub fn sources(&self) -> Arc<crate::directory_sources::Sources> {
        Arc::clone(&self.sources)
    }

    /// Refuses a source address that has made too many sign-in attempts.
    pub fn check_ip_rate(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.by_ip.check_key(&ip).is_err() {
            metrics::counter!("warrant_signin_throttled_total").increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many sign-in attempts: wait a minute and try again",
            ));
        }
        Ok(())
    }

    /// Refuses a sign-in attempt beyond the limits per identity name and per source address.
    pub fn check_signin_rate(&self, ip: IpAddr, user: &str) -> Result<(), ApiError> {
        if self.by_user.check_key(&user.to_owned()).is_err() {
            metrics::counter!("warrant_signin_throttled_total").increment(1);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many sign-in attempts: wait a minute and try again",
            ));
        }
        self.check_ip_rate(ip)
    }

    /// State for `engine`, with Prometheus metrics when a recorder is installed.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            metrics: metrics_handle(),
            // Sign-in: 5 attempts at once per identity, then one every 12 s; 20 per source
            // address, then one every 3 s.
            by_user: Arc::new(RateLimiter::keyed(quota(5, 5))),
            by_ip: Arc::new(RateLimiter::keyed(quota(20, 20))),
            sources: Arc::default(),
            kek_file: None,
            recordings: None,
            live: None,
        }
    }
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

type Entry = (RouteSpec, MethodRouter<AppState>);

macro_rules! route {
    ($method:ident, $path:literal, $access:ident, $handler:expr) => {
        (
            RouteSpec {
                method: stringify!($method),
                path: $path,
                access: Access::$access,
            },
            on(MethodFilter::$method, $handler),
        )
    };
}

fn entries() -> Vec<Entry> {
    vec![
        route!(GET, "/healthz", Public, healthz),
        route!(GET, "/metrics", Public, metrics_text),
        route!(POST, "/api/v1/auth/login", Public, login),
        route!(POST, "/api/v1/auth/logout", Signed, logout),
        route!(
            POST,
            "/api/v1/auth/oidc/start",
            Public,
            crate::directory_sources::oidc_start
        ),
        route!(
            POST,
            "/api/v1/auth/oidc/complete",
            Public,
            crate::directory_sources::oidc_complete
        ),
        route!(
            POST,
            "/api/v1/sync/ldap",
            Admin,
            crate::directory_sources::sync_ldap
        ),
        route!(
            GET,
            "/api/v1/sync/ldap",
            Admin,
            crate::directory_sources::sync_status
        ),
        route!(GET, "/api/v1/me", Signed, me),
        route!(GET, "/api/v1/tokens", Signed, list_tokens),
        route!(POST, "/api/v1/tokens", Signed, create_token),
        route!(DELETE, "/api/v1/tokens/{id}", Signed, revoke_token),
        route!(GET, "/api/v1/identities", Auditor, list_identities),
        route!(POST, "/api/v1/identities", Admin, add_identity),
        route!(GET, "/api/v1/identities/{name}", Signed, get_identity),
        route!(PATCH, "/api/v1/identities/{name}", Admin, patch_identity),
        route!(DELETE, "/api/v1/identities/{name}", Admin, delete_identity),
        route!(
            POST,
            "/api/v1/identities/{name}/disable",
            Admin,
            disable_identity
        ),
        route!(
            POST,
            "/api/v1/identities/{name}/enable",
            Admin,
            enable_identity
        ),
        route!(
            POST,
            "/api/v1/identities/{name}/password",
            Signed,
            set_password
        ),
        route!(GET, "/api/v1/identities/{name}/mfa", Auditor, identity_mfa),
        route!(DELETE, "/api/v1/identities/{name}/mfa", Admin, mfa_reset),
        route!(GET, "/api/v1/mfa", Signed, mfa_status),
        route!(POST, "/api/v1/mfa/totp", Signed, totp_enrol),
        route!(POST, "/api/v1/mfa/totp/confirm", Signed, totp_confirm),
        route!(POST, "/api/v1/mfa/verify", Signed, mfa_verify),
        route!(POST, "/api/v1/mfa/recovery-codes", Signed, recovery_codes),
        route!(GET, "/api/v1/groups", Auditor, list_groups),
        route!(POST, "/api/v1/groups", Admin, add_group),
        route!(DELETE, "/api/v1/groups/{name}", Admin, delete_group),
        route!(POST, "/api/v1/groups/{name}/members", Admin, add_member),
        route!(
            DELETE,
            "/api/v1/groups/{name}/members/{identity}",
            Admin,
            remove_member
        ),
        route!(GET, "/api/v1/targets", Signed, list_targets),
        route!(PUT, "/api/v1/targets/{name}", Admin, put_target),
        route!(DELETE, "/api/v1/targets/{name}", Admin, delete_target),
        route!(PUT, "/api/v1/targets/{name}/roles/{role}", Admin, put_role),
        route!(
            DELETE,
            "/api/v1/targets/{name}/roles/{role}",
            Admin,
            delete_role
        ),
        route!(GET, "/api/v1/rules", Signed, list_rules),
        route!(POST, "/api/v1/rules", Admin, put_rule),
        route!(DELETE, "/api/v1/rules", Admin, delete_rule),
        route!(GET, "/api/v1/policies", Auditor, list_policies),
        route!(PUT, "/api/v1/policies/{name}", Admin, put_policy),
        route!(DELETE, "/api/v1/policies/{name}", Admin, delete_policy),
        route!(POST, "/api/v1/policy/test", Signed, policy_test),
        route!(POST, "/api/v1/apply", Admin, apply),
        route!(GET, "/api/v1/requests", Signed, list_requests),
        route!(POST, "/api/v1/requests", Signed, create_request),
        route!(GET, "/api/v1/requests/{id}", Signed, get_request),
        route!(POST, "/api/v1/requests/{id}/approve", Signed, approve),
        route!(POST, "/api/v1/requests/{id}/deny", Signed, deny),
        route!(POST, "/api/v1/requests/{id}/cancel", Signed, cancel),
        route!(GET, "/api/v1/grants", Signed, list_grants),
        route!(GET, "/api/v1/grants/{id}", Signed, get_grant),
        route!(POST, "/api/v1/grants/{id}/revoke", Signed, revoke_grant),
        route!(POST, "/api/v1/check", Signed, check),
        route!(GET, "/api/v1/audit", Auditor, audit_list),
        route!(
            GET,
            "/api/v1/audit/search",
            Auditor,
            crate::audit_search::search
        ),
        route!(GET, "/api/v1/audit/verify", Auditor, audit_verify),
        route!(GET, "/api/v1/audit/export", Auditor, audit_export),
        route!(GET, "/api/v1/audit/sinks", Auditor, audit_sinks),
        route!(POST, "/api/v1/audit/prune", Admin, audit_prune),
        route!(GET, "/api/v1/jobs", Auditor, list_jobs),
        route!(POST, "/api/v1/vault/rekey", Admin, crate::vault::rekey),
        route!(GET, "/api/v1/ssh/ca", Public, crate::ssh::ca),
        route!(GET, "/api/v1/ssh/krl", Public, crate::ssh::krl),
        route!(POST, "/api/v1/ssh/certs", Signed, crate::ssh::issue),
        route!(GET, "/api/v1/sessions", Signed, crate::sessions::list),
        route!(GET, "/api/v1/sessions/{id}", Signed, crate::sessions::get),
        route!(
            POST,
            "/api/v1/sessions/{id}/kill",
            Admin,
            crate::sessions::kill
        ),
        route!(
            GET,
            "/api/v1/sessions/{id}/recording",
            Signed,
            crate::sessions::recording
        ),
        route!(
            GET,
            "/api/v1/sessions/{id}/manifest",
            Signed,
            crate::sessions::manifest
        ),
        route!(GET, "/api/v1/recordings/key", Signed, crate::sessions::key),
        route!(GET, "/api/v1/ssh/keys", Signed, crate::ssh::keys),
        route!(POST, "/api/v1/ssh/keys", Signed, crate::ssh::add_key),
        route!(
            DELETE,
            "/api/v1/ssh/keys/{id}",
            Signed,
            crate::ssh::delete_key
        ),
        route!(GET, "/api/v1/accounts", Auditor, crate::accounts::list),
        route!(POST, "/api/v1/accounts", Admin, crate::accounts::create),
        route!(
            DELETE,
            "/api/v1/accounts/{target}/{name}",
            Admin,
            crate::accounts::delete
        ),
        route!(
            POST,
            "/api/v1/accounts/{target}/{name}/secret",
            Admin,
            crate::accounts::set_secret
        ),
        route!(
            POST,
            "/api/v1/accounts/{target}/{name}/checkout",
            Signed,
            crate::accounts::checkout
        ),
        route!(
            POST,
            "/api/v1/accounts/{target}/{name}/reveal",
            Signed,
            crate::accounts::reveal
        ),
        route!(
            POST,
            "/api/v1/accounts/{target}/{name}/checkin",
            Signed,
            crate::accounts::checkin
        ),
        route!(
            POST,
            "/api/v1/accounts/{target}/{name}/rotate",
            Signed,
            crate::accounts::rotate
        ),
        route!(
            GET,
            "/api/v1/ssh/managed-key",
            Admin,
            crate::accounts::managed_key
        ),
        route!(
            POST,
            "/api/v1/discovery/{target}",
            Admin,
            crate::accounts::discover
        ),
        route!(
            GET,
            "/api/v1/discovery/{target}",
            Admin,
            crate::accounts::progress
        ),
        route!(
            GET,
            "/api/v1/inventory",
            Auditor,
            crate::accounts::inventory
        ),
        route!(
            GET,
            "/api/v1/exceptions",
            Auditor,
            crate::accounts::exceptions
        ),
        route!(
            POST,
            "/api/v1/exceptions/{id}/resolve",
            Admin,
            crate::accounts::resolve
        ),
        route!(
            POST,
            "/api/v1/targets/{name}/secret",
            Admin,
            crate::pg::set_secret
        ),
        route!(
            POST,
            "/api/v1/grants/{id}/db-creds",
            Signed,
            crate::pg::db_creds
        ),
        route!(POST, "/api/v1/db-tokens", Signed, crate::pg::db_token),
        route!(
            GET,
            "/scim/v2/ServiceProviderConfig",
            Public,
            crate::scim::service_provider_config
        ),
        route!(
            GET,
            "/scim/v2/ResourceTypes",
            Public,
            crate::scim::resource_types
        ),
        route!(GET, "/scim/v2/Schemas", Public, crate::scim::schemas),
        route!(GET, "/scim/v2/{endpoint}", Scim, crate::scim::list),
        route!(POST, "/scim/v2/{endpoint}", Scim, crate::scim::create),
        route!(GET, "/scim/v2/{endpoint}/{id}", Scim, crate::scim::get),
        route!(PUT, "/scim/v2/{endpoint}/{id}", Scim, crate::scim::replace),
        route!(PATCH, "/scim/v2/{endpoint}/{id}", Scim, crate::scim::patch),
        route!(
            DELETE,
            "/scim/v2/{endpoint}/{id}",
            Scim,
            crate::scim::delete
        ),
        route!(
            POST,
            "/api/v1/mfa/webauthn/register",
            Signed,
            crate::webauthn::register_start
        ),
        route!(
            POST,
            "/api/v1/mfa/webauthn/register/finish",
            Signed,
            crate::webauthn::register_finish
        ),
        route!(
            POST,
            "/api/v1/mfa/webauthn/verify",
            Signed,
            crate::webauthn::verify_start
        ),
        route!(
            POST,
            "/api/v1/mfa/webauthn/verify/finish",
            Signed,
            crate::webauthn::verify_finish
        ),
        route!(
            POST,
            "/api/v1/auth/webauthn/start",
            Public,
            crate::webauthn::signin_start
        ),
        route!(
            POST,
            "/api/v1/auth/webauthn/finish",
            Public,
            crate::webauthn::signin_finish
        ),
    ]
}

/// Every route with the authority it needs.
pub fn route_table() -> Vec<RouteSpec> {
    entries().into_iter().map(|(s, _)| s).collect()
}

/// The router, built from the route table.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (spec, mr) in entries() {
        let access = spec.access;
        let mr = mr.layer(middleware::from_fn_with_state(
            (state.clone(), access, spec.path),
            authorise,
        ));
        router = router.route(spec.path, mr);
    }
    router
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/scim/") {
                return crate::scim::error_response(
                    StatusCode::NOT_FOUND,
                    None,
                    "no such SCIM endpoint (Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas)",
                );
            }
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_route",
                "no such route (the API lives under /api/v1)",
            )
            .into_response()
        })
        .method_not_allowed_fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/scim/") {
                return crate::scim::error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    "this SCIM endpoint does not support that method",
                );
            }
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
            .into_response()
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// What a session of scope `mfa_pending` may reach: proving the second factor, itself, sign-out.
const MFA_PENDING_ROUTES: &[&str] = &[
    "/api/v1/mfa/verify",
    "/api/v1/mfa/webauthn/verify",
    "/api/v1/mfa/webauthn/verify/finish",
    "/api/v1/mfa",
    "/api/v1/me",
    "/api/v1/auth/logout",
];

async fn authorise(
    State((state, access, path)): State<(AppState, Access, &'static str)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let Some(token) = bearer(req.headers()) else {
        if access == Access::Scim {
            return crate::scim::error_response(
                StatusCode::UNAUTHORIZED,
                None,
                "send Authorization: Bearer <token> with a provisioning token (warrant token create --scope scim)",
            );
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first: send Authorization: Bearer <token> (warrant login, or an API token)",
        )
        .into_response();
    };
    let actor = match state.engine.authenticate(token).await {
        Ok(a) => a,
        Err(e) if access == Access::Scim => {
            return crate::scim::error_response(StatusCode::UNAUTHORIZED, None, &e.message);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    if access == Access::Scim {
        if actor.scope != Scope::Scim || actor.role < SystemRole::Admin {
            return crate::scim::error_response(
                StatusCode::FORBIDDEN,
                None,
                "SCIM needs a provisioning token: an admin creates one with `warrant token create --scope scim`",
            );
        }
        req.extensions_mut().insert(actor);
        return next.run(req).await;
    }
    if actor.scope == Scope::MfaPending && !MFA_PENDING_ROUTES.contains(&path) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "finish signing in: prove your second factor with `warrant mfa verify CODE` (a code from your authenticator app, or a recovery code)",
        )
        .into_response();
    }
    if !matches!(actor.scope, Scope::Full | Scope::MfaPending) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "scope_insufficient",
            format!(
                "this token's scope is {}: it may only be used for that; use a full token (warrant login)",
                actor.scope.as_str()
            ),
        )
        .into_response();
    }
    let needed = match access {
        Access::Auditor => Some(SystemRole::Auditor),
        Access::Admin => Some(SystemRole::Admin),
        Access::Public | Access::Signed | Access::Scim => None,
    };
    if let Some(min) = needed
        && actor.role < min
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "role_required",
            format!(
                "this needs the {} role; you are {}",
                min.as_str(),
                actor.role.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(actor);
    next.run(req).await
}

type ApiResult<T> = Result<Json<T>, ApiError>;

fn name(s: &str) -> Result<Name, ApiError> {
    Name::new(s).map_err(|e| ApiError::invalid("invalid_name", e.to_string()))
}

pub(crate) fn duration(s: &str) -> Result<ActivationDuration, ApiError> {
    ActivationDuration::parse(s).map_err(|e| ApiError::invalid("invalid_duration", e.to_string()))
}

fn time(s: &str, what: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(s).ok_or_else(|| {
        ApiError::invalid(
            "invalid_time",
            format!("{what} {s:?} is not an RFC 3339 time, e.g. 2026-12-04T10:00:00Z"),
        )
    })
}

fn role_of(s: &str) -> Result<SystemRole, ApiError> {
    SystemRole::parse(s).ok_or_else(|| {
        ApiError::invalid(
            "invalid_role",
            format!("role {s:?} is not one of user, auditor, admin"),
        )
    })
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    match &s.metrics {
        Some(h) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "no metrics recorder",
        )
        .into_response(),
    }
}

async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<LoginIn>,
) -> ApiResult<TokenOut> {
    let user = body.user.trim().to_owned();
    if s.by_ip.check_key(&peer.ip()).is_err() || s.by_user.check_key(&user).is_err() {
        metrics::counter!("warrant_signin_throttled_total").increment(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many sign-in attempts: wait a minute and try again",
        ));
    }
    if s.by_user.len() > 100_000 {
        s.by_user.retain_recent();
        s.by_ip.retain_recent();
    }
    let t = s
        .engine
        .sign_in(
            &user,
            Secret::new(body.password),
            body.otp.map(Secret::new),
            &peer.ip().to_string(),
        )
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

async fn logout(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<serde_json::Value> {
    s.engine.sign_out(&a).await?;
    Ok(Json(serde_json::json!({"signed_out": true})))
}

async fn me(State(s): State<AppState>, Extension(a): Extension<Actor>) -> ApiResult<IdentityOut> {
    let (i, groups) = s.engine.identity(&a, a.name.as_str()).await?;
    Ok(Json(IdentityOut::new(
        &i,
        Some(groups.iter().map(ToString::to_string).collect()),
    )))
}

async fn list_tokens(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<TokenOut>> {
    let rows = s.engine.tokens(&a, None).await?;
    Ok(Json(
        rows.iter()
            .map(|t| TokenOut {
                id: t.id.clone(),
                token: None,
                identity: t.identity.to_string(),
                kind: t.kind.clone(),
                label: t.label.clone(),
                expires_at: t.expires_at.map(Timestamp::rfc3339),
                revoked_at: t.revoked_at.map(Timestamp::rfc3339),
                scope: t.scope.clone(),
            })
            .collect(),
    ))
}

async fn create_token(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(body): JsonBody<TokenIn>,
) -> ApiResult<TokenOut> {
    let ttl = body
        .expires_in
        .as_deref()
        .map(duration)
        .transpose()?
        .map(|d| d.secs());
    let scope = match body.scope.as_deref() {
        None => Scope::Full,
        Some(x) => Scope::parse(x).ok_or_else(|| {
            ApiError::invalid(
                "invalid_scope",
                format!("unknown token scope {x:?}: use full or scim"),
            )
        })?,
    };
    let t = s
        .engine
        .create_api_token(&a, &body.name, ttl, scope)
        .await?;
    Ok(Json(TokenOut {
        id: t.id,
        token: Some(t.token.expose().clone()),
        identity: t.identity.to_string(),
        kind: "api".into(),
        label: body.name,
        expires_at: t.expires_at.map(Timestamp::rfc3339),
        revoked_at: None,
        scope: scope.as_str().to_owned(),
    }))
}

async fn revoke_token(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.engine.revoke_token(&a, &id).await?;
    Ok(Json(serde_json::json!({"revoked": id})))
}

async fn list_identities(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<IdentityOut>> {
    let ids = s.engine.identities(&a).await?;
    Ok(Json(
        ids.iter().map(|i| IdentityOut::new(i, None)).collect(),
    ))
}

async fn add_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<IdentityIn>,
) -> ApiResult<IdentityOut> {
    let input = IdentityInput {
        name: name(&b.name)?,
        display_name: b.display_name,
        email: b.email,
        manager: b
            .manager
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(name)
            .transpose()?,
        system_role: b
            .role
            .as_deref()
            .map(role_of)
            .transpose()?
            .unwrap_or(SystemRole::User),
        password: b.password.map(Secret::new),
        external_id: None,
    };
    let i = s.engine.add_identity(&a, input).await?;
    Ok(Json(IdentityOut::new(&i, None)))
}

async fn get_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<IdentityOut> {
    let (i, groups) = s.engine.identity(&a, &n).await?;
    Ok(Json(IdentityOut::new(
        &i,
        Some(groups.iter().map(ToString::to_string).collect()),
    )))
}

async fn patch_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
    JsonBody(b): JsonBody<IdentityPatch>,
) -> ApiResult<IdentityOut> {
    let update = IdentityUpdate {
        display_name: b.display_name,
        email: b.email,
        manager: match b.manager.as_deref() {
            None => None,
            Some("") => Some(None),
            Some(m) => Some(Some(name(m)?)),
        },
        system_role: b.role.as_deref().map(role_of).transpose()?,
    };
    s.engine.update_identity(&a, &n, update).await?;
    let (i, groups) = s.engine.identity(&a, &n).await?;
    Ok(Json(IdentityOut::new(
        &i,
        Some(groups.iter().map(ToString::to_string).collect()),
    )))
}

async fn delete_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.engine.delete_identity(&a, &n).await?;
    Ok(Json(serde_json::json!({"deleted": n})))
}

async fn set_status(
    s: &AppState,
    a: &Actor,
    n: &str,
    st: IdentityStatus,
) -> ApiResult<IdentityOut> {
    let i = s.engine.set_identity_status(a, n, st).await?;
    Ok(Json(IdentityOut::new(&i, None)))
}

async fn disable_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<IdentityOut> {
    set_status(&s, &a, &n, IdentityStatus::Disabled).await
}

async fn enable_identity(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<IdentityOut> {
    set_status(&s, &a, &n, IdentityStatus::Active).await
}

async fn set_password(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
    JsonBody(b): JsonBody<PasswordIn>,
) -> ApiResult<serde_json::Value> {
    s.engine
        .set_password(
            &a,
            &n,
            Secret::new(b.password),
            b.current_password.map(Secret::new),
        )
        .await?;
    Ok(Json(serde_json::json!({"password_set": n})))
}

async fn mfa_status(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<MfaStatusOut> {
    Ok(Json(MfaStatusOut::from(
        &s.engine.mfa_status(&a, None).await?,
    )))
}

async fn identity_mfa(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<MfaStatusOut> {
    Ok(Json(MfaStatusOut::from(
        &s.engine.mfa_status(&a, Some(&n)).await?,
    )))
}

async fn mfa_reset(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<serde_json::Value> {
    let removed = s.engine.mfa_reset(&a, &n).await?;
    Ok(Json(
        serde_json::json!({"identity": n, "factors_removed": removed}),
    ))
}

async fn totp_enrol(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    OptionalJson(b): OptionalJson<TotpEnrolIn>,
) -> ApiResult<TotpEnrolOut> {
    let label = b.and_then(|b| b.label).unwrap_or_default();
    let e = s.engine.totp_enrol(&a, &label).await?;
    Ok(Json(TotpEnrolOut {
        factor_id: e.factor_id,
        uri: e.uri.expose().clone(),
        secret: e.secret.expose().clone(),
    }))
}

async fn totp_confirm(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<CodeIn>,
) -> ApiResult<RecoveryCodesOut> {
    let codes = s.engine.totp_confirm(&a, &Secret::new(b.code)).await?;
    Ok(Json(RecoveryCodesOut {
        recovery_codes: codes.iter().map(|c| c.expose().clone()).collect(),
    }))
}

async fn mfa_verify(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<CodeIn>,
) -> ApiResult<MfaVerifiedOut> {
    let at = s.engine.mfa_verify(&a, &Secret::new(b.code)).await?;
    Ok(Json(MfaVerifiedOut {
        mfa_at: at.rfc3339(),
        valid_until: at.plus_secs(warrant_engine::mfa::STEP_UP_SECS).rfc3339(),
    }))
}

async fn recovery_codes(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<RecoveryCodesOut> {
    let codes = s.engine.regenerate_recovery_codes(&a).await?;
    Ok(Json(RecoveryCodesOut {
        recovery_codes: codes.iter().map(|c| c.expose().clone()).collect(),
    }))
}

async fn list_groups(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<GroupOut>> {
    let g = s.engine.groups(&a).await?;
    Ok(Json(g.iter().map(GroupOut::from).collect()))
}

async fn add_group(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<GroupIn>,
) -> ApiResult<GroupOut> {
    let n = name(&b.name)?;
    s.engine.add_group(&a, &n, &b.description).await?;
    Ok(Json(GroupOut {
        name: b.name,
        description: b.description,
        members: Vec::new(),
    }))
}

async fn delete_group(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.engine.delete_group(&a, &n).await?;
    Ok(Json(serde_json::json!({"deleted": n})))
}

async fn add_member(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(g): Path<String>,
    JsonBody(b): JsonBody<MemberIn>,
) -> ApiResult<serde_json::Value> {
    let changed = s.engine.add_member(&a, &g, &b.identity).await?;
    Ok(Json(
        serde_json::json!({"group": g, "identity": b.identity, "changed": changed}),
    ))
}

async fn remove_member(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((g, i)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    let changed = s.engine.remove_member(&a, &g, &i).await?;
    Ok(Json(
        serde_json::json!({"group": g, "identity": i, "changed": changed}),
    ))
}

async fn list_targets(State(s): State<AppState>) -> ApiResult<Vec<TargetOut>> {
    let t = s.engine.targets().await?;
    Ok(Json(t.iter().map(TargetOut::from).collect()))
}

async fn put_target(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
    JsonBody(b): JsonBody<TargetIn>,
) -> ApiResult<serde_json::Value> {
    let kind = TargetKind::parse(&b.kind).ok_or_else(|| {
        ApiError::invalid(
            "invalid_kind",
            format!("kind {:?} is not one of postgres, ssh, generic", b.kind),
        )
    })?;
    let t = Target {
        name: name(&n)?,
        kind,
        address: b.address,
        owner: name(&b.owner)?,
        risk_tier: b.risk_tier.unwrap_or(2),
        description: b.description,
        admin_user: b.admin_user,
        host_key: b.host_key,
        connector: b.connector,
    };
    let changed = s.engine.save_target(&a, &t).await?;
    Ok(Json(serde_json::json!({"target": n, "changed": changed})))
}

async fn delete_target(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.engine.delete_target(&a, &n).await?;
    Ok(Json(serde_json::json!({"deleted": n})))
}

async fn put_role(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((t, r)): Path<(String, String)>,
    JsonBody(b): JsonBody<RoleOut>,
) -> ApiResult<serde_json::Value> {
    let role = TargetRole {
        target: name(&t)?,
        name: name(&r)?,
        principals: b.principals,
        login: b.login,
        db_roles: b.db_roles,
        account: b.account,
        record: b.record,
        record_input: b.record_input,
        forwarding: b.forwarding,
    };
    let changed = s.engine.save_role(&a, &role).await?;
    Ok(Json(
        serde_json::json!({"target": t, "role": r, "changed": changed}),
    ))
}

async fn delete_role(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((t, r)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    s.engine.delete_role(&a, &t, &r).await?;
    Ok(Json(serde_json::json!({"deleted": format!("{t}/{r}")})))
}

async fn list_rules(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<RuleOut>> {
    let r = s.engine.rules(&a).await?;
    Ok(Json(r.iter().map(RuleOut::from).collect()))
}

async fn put_rule(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<RuleOut>,
) -> ApiResult<RuleOut> {
    let subject = match (&b.group, &b.identity) {
        (Some(g), None) => warrant_core::Subject::Group(name(g)?),
        (None, Some(i)) => warrant_core::Subject::Identity(name(i)?),
        _ => {
            return Err(ApiError::invalid(
                "invalid_subject",
                "give exactly one of group or identity",
            ));
        }
    };
    let approvals = b
        .approvals
        .iter()
        .map(|st| {
            Ok(warrant_core::ApprovalStage {
                from: st
                    .from
                    .parse()
                    .map_err(|e: String| ApiError::invalid("invalid_approvals", e))?,
                count: st.count,
                require_mfa: st.require_mfa,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let rule = warrant_core::Rule {
        subject,
        target: name(&b.target)?,
        role: name(&b.role)?,
        settings: warrant_core::ActivationSettings {
            max_duration: duration(&b.max_duration)?,
            require_reason: b.require_reason,
            ticket_pattern: b.ticket_pattern,
            require_mfa: b.require_mfa,
            approvals,
        },
    };
    s.engine.save_rule(&a, &rule).await?;
    Ok(Json(RuleOut::from(&rule)))
}

#[derive(Debug, Default, Deserialize)]
struct IdQuery {
    #[serde(default)]
    id: Option<String>,
}

async fn delete_rule(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(q): QueryArgs<IdQuery>,
) -> ApiResult<serde_json::Value> {
    let Some(id) = q.id else {
        return Err(ApiError::invalid(
            "missing_id",
            "give the rule id: DELETE /api/v1/rules?id=RULE_ID",
        ));
    };
    s.engine.delete_rule(&a, &id).await?;
    Ok(Json(serde_json::json!({"deleted": id})))
}

async fn list_policies(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<PolicyOut>> {
    let p = s.engine.policies(&a).await?;
    Ok(Json(
        p.into_iter()
            .map(|(name, cedar)| PolicyOut { name, cedar })
            .collect(),
    ))
}

async fn put_policy(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
    JsonBody(b): JsonBody<PolicyOut>,
) -> ApiResult<serde_json::Value> {
    let changed = s.engine.save_policy(&a, &name(&n)?, &b.cedar).await?;
    Ok(Json(serde_json::json!({"policy": n, "changed": changed})))
}

async fn delete_policy(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(n): Path<String>,
) -> ApiResult<serde_json::Value> {
    s.engine.delete_policy(&a, &n).await?;
    Ok(Json(serde_json::json!({"deleted": n})))
}

async fn policy_test(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<PolicyTestIn>,
) -> ApiResult<PolicyTestOut> {
    let input = PolicyTestInput {
        identity: match &b.identity {
            Some(i) => name(i)?,
            None => a.name.clone(),
        },
        target: name(&b.target)?,
        role: name(&b.role)?,
        duration: b
            .duration
            .as_deref()
            .map(duration)
            .transpose()?
            .unwrap_or(ActivationDuration::ONE_HOUR),
        reason: b.reason,
        ticket: b.ticket,
        mfa: b.mfa,
        at: b.at.as_deref().map(|t| time(t, "at")).transpose()?,
    };
    let r = s.engine.policy_test(&a, &input).await?;
    Ok(Json(PolicyTestOut::from(r)))
}

async fn apply(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<ApplyIn>,
) -> ApiResult<ApplyOut> {
    let org = warrant_engine::org::parse(&b.yaml)?;
    let r = s.engine.apply(&a, org, b.dry_run).await?;
    Ok(Json(ApplyOut {
        changes: r.changes,
        dry_run: r.dry_run,
    }))
}

#[derive(Debug, Default, Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    filter: Option<String>,
}

async fn list_requests(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(q): QueryArgs<RequestsQuery>,
) -> ApiResult<Vec<RequestOut>> {
    let filter = match q.filter.as_deref() {
        None | Some("mine") => RequestFilter::Mine,
        Some("to-approve") => RequestFilter::ToApprove,
        Some("all") => RequestFilter::All,
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_filter",
                format!("filter {other:?} is not one of mine, to-approve, all"),
            ));
        }
    };
    let now = s.engine.now();
    let r = s.engine.requests(&a, filter).await?;
    Ok(Json(r.iter().map(|v| RequestOut::new(v, now)).collect()))
}

async fn create_request(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<RequestIn>,
) -> Result<(StatusCode, Json<RequestOut>), ApiError> {
    let input = NewRequest {
        target: name(&b.target)?,
        role: name(&b.role)?,
        duration: duration(&b.duration)?,
        reason: b.reason,
        ticket: b.ticket,
        start_at: b
            .start_at
            .as_deref()
            .map(|t| time(t, "start_at"))
            .transpose()?,
    };
    let v = s.engine.create_request(&a, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(RequestOut::new(&v, s.engine.now())),
    ))
}

async fn get_request(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<RequestOut> {
    let v = s.engine.request(&a, &id).await?;
    Ok(Json(RequestOut::new(&v, s.engine.now())))
}

async fn approve(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<RequestOut> {
    let v = s.engine.approve(&a, &id).await?;
    Ok(Json(RequestOut::new(&v, s.engine.now())))
}

async fn deny(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<NoteIn>,
) -> ApiResult<RequestOut> {
    let note = body.and_then(|b| b.reason);
    let v = s.engine.deny(&a, &id, note).await?;
    Ok(Json(RequestOut::new(&v, s.engine.now())))
}

async fn cancel(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<RequestOut> {
    let v = s.engine.cancel(&a, &id).await?;
    Ok(Json(RequestOut::new(&v, s.engine.now())))
}

#[derive(Debug, Default, Deserialize)]
struct GrantsQuery {
    #[serde(default)]
    all: Option<bool>,
    #[serde(default)]
    active: Option<bool>,
}

async fn list_grants(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(q): QueryArgs<GrantsQuery>,
) -> ApiResult<Vec<GrantOut>> {
    let g = s
        .engine
        .grants(&a, q.all.unwrap_or(false), q.active.unwrap_or(false))
        .await?;
    let now = s.engine.now();
    Ok(Json(
        g.iter()
            .map(|g| GrantOut::new(g, g.status_at(now)))
            .collect(),
    ))
}

async fn get_grant(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<GrantOut> {
    let g = s.engine.grant(&a, &id).await?;
    Ok(Json(GrantOut::new(&g, g.status_at(s.engine.now()))))
}

async fn revoke_grant(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<NoteIn>,
) -> ApiResult<GrantOut> {
    let reason = body.and_then(|b| b.reason);
    let g = s.engine.revoke(&a, &id, reason).await?;
    Ok(Json(GrantOut::new(&g, g.status_at(s.engine.now()))))
}

async fn check(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<CheckIn>,
) -> ApiResult<CheckOut> {
    let r = s.engine.check(&a, &b.identity, &b.target, &b.role).await?;
    metrics::counter!("warrant_checks_total", "allowed" => if r.allowed { "true" } else { "false" }).increment(1);
    Ok(Json(CheckOut::from(&r)))
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

async fn audit_list(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> ApiResult<Vec<AuditOut>> {
    let recs = s
        .engine
        .audit_records(&a, q.after.unwrap_or(0), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(recs.iter().map(AuditOut::from).collect()))
}

async fn audit_verify(State(s): State<AppState>) -> ApiResult<warrant_audit::VerifyReport> {
    Ok(Json(s.engine.audit_verify().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PruneIn {
    /// Prune the records made before this time, ms since the epoch.
    before_ms: i64,
}

/// Retention by hand: archive (signed) and prune the records made before a time.
async fn audit_prune(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<PruneIn>,
) -> ApiResult<warrant_engine::audittrail::PruneReport> {
    Ok(Json(s.engine.audit_prune_now(&a, b.before_ms).await?))
}

/// Each SIEM sink's delivery state: cursor, lag, errors.
async fn audit_sinks(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<warrant_engine::sinks::SinkStatus>> {
    Ok(Json(s.engine.sink_statuses(&a)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// Records from this time on, ms since the epoch (default: all).
    #[serde(default)]
    since_ms: Option<i64>,
    /// `bundle` (default), `jsonl` or `ocsf`.
    #[serde(default)]
    format: Option<String>,
}

/// The audit trail from a time on, streamed as JSON lines: a signed bundle (default), Warrant's
/// JSON lines or OCSF. An error after the first bytes ends the stream abruptly, so that a
/// client never takes a cut export for a whole one.
async fn audit_export(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(q): QueryArgs<ExportQuery>,
) -> Result<Response, ApiError> {
    use futures_util::StreamExt;
    use warrant_engine::audittrail::ExportFormat;
    let format = match q.format.as_deref().unwrap_or("bundle") {
        "bundle" => ExportFormat::Bundle,
        "jsonl" => ExportFormat::Jsonl,
        "ocsf" => ExportFormat::Ocsf,
        other => {
            return Err(ApiError::invalid(
                "invalid_format",
                format!("format {other:?} is not one of bundle, jsonl, ocsf"),
            ));
        }
    };
    // Refused with its status before anything is streamed.
    if a.role < warrant_core::SystemRole::Auditor {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this needs the auditor role",
        ));
    }
    let since = q.since_ms.unwrap_or(0);
    let (mut writer, reader) = tokio::io::duplex(64 * 1024);
    let engine = s.engine.clone();
    let task = tokio::spawn(async move {
        let done = engine.audit_export(&a, since, format, &mut writer).await;
        drop(writer);
        done
    });
    let end = futures_util::stream::once(async move {
        let failed = match task.await {
            Ok(Ok(_)) => return None,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %failed, "audit export failed");
        Some(Err(std::io::Error::other(failed)))
    })
    .filter_map(std::future::ready);
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader).chain(end));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

async fn list_jobs(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<JobOut>> {
    let j = s.engine.pending_jobs(&a).await?;
    Ok(Json(j.iter().map(JobOut::from).collect()))
}

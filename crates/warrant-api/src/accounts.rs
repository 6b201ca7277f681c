//! Vaulted accounts (create, set secret, checkout, reveal, check-in, rotate), Warrant's managed
//! SSH key, and discovery (scan, progress, inventory, exceptions) over HTTP.

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::{Secret, Timestamp};
use warrant_engine::Actor;
use warrant_engine::accounts::{AccountSpec, AccountView, RotationOutcome};
use warrant_engine::discovery::{ScanProgress, ScanReport};
use warrant_store::{CheckoutRow, ExceptionRow, InventoryRow};

use crate::error::ApiError;
use crate::extract::{JsonBody, OptionalJson};
use crate::server::AppState;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Body of `POST /api/v1/accounts`. Its `Debug` hides the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountIn {
    /// The target.
    pub target: String,
    /// The account's name there.
    pub name: String,
    /// The accountable group.
    pub owner: String,
    /// Allow several checkouts at a time.
    #[serde(default)]
    pub shared: bool,
    /// Rotate on this period (`24h`, `7d`).
    #[serde(default)]
    pub rotate_every: Option<String>,
    /// Rotate after every check-in (default: where Warrant can rotate).
    #[serde(default)]
    pub rotate_after_checkin: Option<bool>,
    /// The current secret.
    pub secret: String,
}

impl std::fmt::Debug for AccountIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountIn")
            .field("target", &self.target)
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Body of `POST /api/v1/accounts/{target}/{name}/secret`. Its `Debug` hides the secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSecretIn {
    /// The new secret.
    pub secret: String,
}

impl std::fmt::Debug for AccountSecretIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSecretIn")
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// One checkout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckoutOut {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// The grant it is under.
    pub grant_id: String,
    /// Who holds it.
    pub identity: String,
    /// Since when.
    pub checked_out_at: String,
    /// Secrets shown under it.
    pub reveals: i64,
}

impl From<&CheckoutRow> for CheckoutOut {
    fn from(c: &CheckoutRow) -> Self {
        Self {
            id: c.id.clone(),
            target: c.target.clone(),
            account: c.account.clone(),
            grant_id: c.grant_id.clone(),
            identity: c.identity.clone(),
            checked_out_at: c.checked_out_at.rfc3339(),
            reveals: c.reveals,
        }
    }
}

/// A vaulted account as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountOut {
    /// The target.
    pub target: String,
    /// The account.
    pub name: String,
    /// The accountable group.
    pub owner: String,
    /// One checkout at a time.
    pub exclusive: bool,
    /// Scheduled rotation period in seconds.
    pub rotate_every_secs: Option<i64>,
    /// Rotated after every check-in.
    pub rotate_after_checkin: bool,
    /// The open checkouts.
    pub checked_out: Vec<CheckoutOut>,
    /// A rotation in progress: its last journaled step.
    pub rotation_step: Option<String>,
    /// When a rotation is next due.
    pub rotation_due_at: Option<String>,
    /// When the secret was last rotated.
    pub last_rotated_at: Option<String>,
    /// The last rotation failure.
    pub last_error: Option<String>,
    /// Failed attempts of the current rotation.
    pub rotation_attempts: i64,
}

impl From<&AccountView> for AccountOut {
    fn from(v: &AccountView) -> Self {
        let a = &v.row;
        Self {
            target: a.target.clone(),
            name: a.name.clone(),
            owner: a.owner.clone(),
            exclusive: a.exclusive,
            rotate_every_secs: a.rotate_every_secs,
            rotate_after_checkin: a.rotate_after_checkin,
            checked_out: v.checkouts.iter().map(CheckoutOut::from).collect(),
            rotation_step: a.rotation_step.clone(),
            rotation_due_at: a.rotation_due_at.map(Timestamp::rfc3339),
            last_rotated_at: a.last_rotated_at.map(Timestamp::rfc3339),
            last_error: a.last_error.clone(),
            rotation_attempts: a.rotation_attempts,
        }
    }
}

/// A revealed secret. Its `Debug` hides it.
#[derive(Clone, Serialize, Deserialize)]
pub struct RevealOut {
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// The secret.
    pub secret: String,
}

impl std::fmt::Debug for RevealOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevealOut")
            .field("target", &self.target)
            .field("account", &self.account)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What `rotate` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotateOut {
    /// `rotated`, `deferred` or `failed`.
    pub outcome: String,
    /// The rotation, when it ran.
    #[serde(default)]
    pub rotation_id: Option<String>,
    /// The failed step, when it failed.
    #[serde(default)]
    pub step: Option<String>,
    /// Why it was deferred or failed.
    #[serde(default)]
    pub detail: Option<String>,
}

fn duration_secs(field: &str, v: &str) -> Result<i64, ApiError> {
    humantime::parse_duration(v)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_duration",
                format!("{field}: {v:?} is not a duration (e.g. 24h, 7d)"),
            )
        })
}

/// `GET /api/v1/accounts`.
pub async fn list(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<Vec<AccountOut>> {
    let v = s.engine().accounts(&a).await?;
    Ok(Json(v.iter().map(AccountOut::from).collect()))
}

/// `POST /api/v1/accounts`.
pub async fn create(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    JsonBody(b): JsonBody<AccountIn>,
) -> ApiResult<AccountOut> {
    let rotate_every_secs = b
        .rotate_every
        .as_deref()
        .map(|v| duration_secs("rotate_every", v))
        .transpose()?;
    let v = s
        .engine()
        .create_account(
            &a,
            AccountSpec {
                target: b.target,
                name: b.name,
                owner: b.owner,
                shared: b.shared,
                rotate_every_secs,
                rotate_after_checkin: b.rotate_after_checkin,
                secret: Secret::new(b.secret),
            },
        )
        .await?;
    Ok(Json(AccountOut::from(&v)))
}

/// `POST /api/v1/accounts/{target}/{name}/secret`.
pub async fn set_secret(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
    JsonBody(b): JsonBody<AccountSecretIn>,
) -> ApiResult<serde_json::Value> {
    s.engine()
        .set_account_secret(&a, &target, &name, Secret::new(b.secret))
        .await?;
    Ok(Json(
        serde_json::json!({"target": target, "account": name, "secret_set": true}),
    ))
}

/// `DELETE /api/v1/accounts/{target}/{name}`.
pub async fn delete(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    s.engine().delete_account(&a, &target, &name).await?;
    Ok(Json(
        serde_json::json!({"target": target, "account": name, "deleted": true}),
    ))
}

/// `POST /api/v1/accounts/{target}/{name}/checkout`.
pub async fn checkout(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
) -> ApiResult<CheckoutOut> {
    let c = s.engine().checkout_account(&a, &target, &name).await?;
    Ok(Json(CheckoutOut::from(&c)))
}

/// `POST /api/v1/accounts/{target}/{name}/reveal`.
pub async fn reveal(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
) -> ApiResult<RevealOut> {
    let secret = s.engine().reveal_account(&a, &target, &name).await?;
    Ok(Json(RevealOut {
        target,
        account: name,
        secret: secret.expose().clone(),
    }))
}

/// `POST /api/v1/accounts/{target}/{name}/checkin`.
pub async fn checkin(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
) -> ApiResult<serde_json::Value> {
    s.engine().checkin_account(&a, &target, &name).await?;
    Ok(Json(
        serde_json::json!({"target": target, "account": name, "checked_in": true}),
    ))
}

/// `POST /api/v1/accounts/{target}/{name}/rotate`.
pub async fn rotate(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((target, name)): Path<(String, String)>,
) -> ApiResult<RotateOut> {
    let out = match s.engine().rotate_account_now(&a, &target, &name).await? {
        RotationOutcome::Rotated { rotation_id } => RotateOut {
            outcome: "rotated".into(),
            rotation_id: Some(rotation_id),
            step: None,
            detail: None,
        },
        RotationOutcome::Deferred(why) => RotateOut {
            outcome: "deferred".into(),
            rotation_id: None,
            step: None,
            detail: Some(why),
        },
        RotationOutcome::Failed { step, error } => RotateOut {
            outcome: "failed".into(),
            rotation_id: None,
            step: Some(step),
            detail: Some(error),
        },
    };
    Ok(Json(out))
}

/// `GET /api/v1/ssh/managed-key`: the public key to authorise on hosts for discovery and
/// rotation.
pub async fn managed_key(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> ApiResult<serde_json::Value> {
    let key = s.engine().managed_ssh_public_key(&a).await?;
    Ok(Json(serde_json::json!({"public_key": key})))
}

/// One inventory entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryOut {
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// Its privileges.
    pub privileges: Vec<String>,
    /// `managed`, `unmanaged` or `orphaned`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub risk: String,
    /// First seen.
    pub first_seen: String,
    /// Last seen.
    pub last_seen: String,
}

impl From<&InventoryRow> for InventoryOut {
    fn from(r: &InventoryRow) -> Self {
        Self {
            target: r.target.clone(),
            account: r.account.clone(),
            privileges: serde_json::from_str(&r.privileges).unwrap_or_default(),
            status: r.status.clone(),
            risk: r.risk.clone(),
            first_seen: r.first_seen.rfc3339(),
            last_seen: r.last_seen.rfc3339(),
        }
    }
}

/// One exception.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExceptionOut {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// What appeared.
    pub what: String,
    /// The account's risk.
    pub risk: String,
    /// The scan that found it.
    pub scan_id: String,
    /// When.
    pub found_at: String,
    /// When resolved.
    pub resolved_at: Option<String>,
    /// By whom.
    pub resolved_by: Option<String>,
}

impl From<&ExceptionRow> for ExceptionOut {
    fn from(e: &ExceptionRow) -> Self {
        Self {
            id: e.id.clone(),
            target: e.target.clone(),
            account: e.account.clone(),
            what: e.what.clone(),
            risk: e.risk.clone(),
            scan_id: e.scan_id.clone(),
            found_at: e.found_at.rfc3339(),
            resolved_at: e.resolved_at.map(Timestamp::rfc3339),
            resolved_by: e.resolved_by.clone(),
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanOut {
    /// The scan.
    pub scan_id: String,
    /// The target.
    pub target: String,
    /// The first scan of the target (no exceptions opened).
    pub baseline: bool,
    /// The inventory after it.
    pub inventory: Vec<InventoryOut>,
    /// Exceptions it opened.
    pub differences: Vec<ExceptionOut>,
    /// Accounts no longer found.
    pub removed: Vec<String>,
    /// Started.
    pub started_at: String,
    /// Finished.
    pub finished_at: String,
}

impl From<&ScanReport> for ScanOut {
    fn from(r: &ScanReport) -> Self {
        Self {
            scan_id: r.scan.id.clone(),
            target: r.scan.target.clone(),
            baseline: r.baseline,
            inventory: r.inventory.iter().map(InventoryOut::from).collect(),
            differences: r.differences.iter().map(ExceptionOut::from).collect(),
            removed: r.removed.clone(),
            started_at: r.scan.started_at.rfc3339(),
            finished_at: r.scan.finished_at.rfc3339(),
        }
    }
}

/// `POST /api/v1/discovery/{target}`: scans now and answers when done.
pub async fn discover(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(target): Path<String>,
) -> ApiResult<ScanOut> {
    let r = s.engine().discover(&a, &target).await?;
    Ok(Json(ScanOut::from(&r)))
}

/// The progress of a scan (`running: false` when none runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressOut {
    /// A scan of the target is running.
    pub running: bool,
    /// What it does.
    pub phase: Option<String>,
    /// Items done.
    pub done: u64,
    /// Items in all (0: not known yet).
    pub total: u64,
}

/// `GET /api/v1/discovery/{target}`: the scan under way, if any.
pub async fn progress(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(target): Path<String>,
) -> ApiResult<ProgressOut> {
    let p: Option<ScanProgress> = s.engine().scan_progress(&a, &target)?;
    Ok(Json(match p {
        Some(p) => ProgressOut {
            running: true,
            phase: Some(p.phase),
            done: p.done,
            total: p.total,
        },
        None => ProgressOut {
            running: false,
            phase: None,
            done: 0,
            total: 0,
        },
    }))
}

/// Query of the inventory and exception listings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One target only.
    #[serde(default)]
    pub target: Option<String>,
    /// Exceptions: resolved ones too.
    #[serde(default)]
    pub all: Option<bool>,
}

/// `GET /api/v1/inventory`.
pub async fn inventory(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<InventoryOut>> {
    let v = s.engine().inventory(&a, q.target.as_deref()).await?;
    Ok(Json(v.iter().map(InventoryOut::from).collect()))
}

/// `GET /api/v1/exceptions`.
pub async fn exceptions(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Vec<ExceptionOut>> {
    let v = s
        .engine()
        .exceptions(&a, q.target.as_deref(), q.all.unwrap_or(false))
        .await?;
    Ok(Json(v.iter().map(ExceptionOut::from).collect()))
}

/// Body of `POST /api/v1/exceptions/{id}/resolve`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveIn {
    /// Why: accepted, or fixed on the target.
    #[serde(default)]
    pub note: String,
}

/// `POST /api/v1/exceptions/{id}/resolve`.
pub async fn resolve(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(id): Path<String>,
    OptionalJson(b): OptionalJson<ResolveIn>,
) -> ApiResult<serde_json::Value> {
    let b = b.unwrap_or_default();
    s.engine().resolve_exception(&a, &id, &b.note).await?;
    Ok(Json(serde_json::json!({"id": id, "resolved": true})))
}

//! `POST /api/v1/vault/rekey`: key rotation of the vault.
//!
//! With a key file (`DATA_DIR/kek`), a new key is written to `kek.next` first, put in force, every
//! sealed secret re-wrapped under it, and only then does it replace `kek` (the old key stays as
//! `kek.old`, for anything sealed while the rotation ran). A crash at any point leaves keys that
//! open everything: at start the server finishes an interrupted rotation (`kek.next` becomes
//! `kek`) and loads `kek.old` beside it. With `WARRANT_KEK` the operator rotates the key
//! (`WARRANT_KEK` new, `WARRANT_KEK_PREVIOUS` old, restart) and this re-wraps under it.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use warrant_engine::Actor;
use warrant_engine::mfa::RekeyReport;

use crate::error::ApiError;
use crate::server::AppState;

/// Serialises rotations.
static ROTATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn file_error(what: &str, path: &Path, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "vault_key_file",
        format!("{what} {}: {e}", path.display()),
    )
}

/// The sibling of the key file named `name`.
pub fn sibling(kek: &Path, name: &str) -> PathBuf {
    kek.with_file_name(name)
}

/// `POST /api/v1/vault/rekey`.
pub async fn rekey(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
) -> Result<Json<RekeyReport>, ApiError> {
    let _one = ROTATION.lock().await;
    let Some(path) = s.kek_file() else {
        return Ok(Json(s.engine().vault_rekey(&a, None).await?));
    };
    let next = sibling(&path, "kek.next");
    let kek = warrant_vault::Kek::load_or_create(&next)
        .map_err(|e| file_error("cannot create the new key", &next, e))?;
    let report = s.engine().vault_rekey(&a, Some(kek)).await?;
    let old = sibling(&path, "kek.old");
    std::fs::rename(&path, &old).map_err(|e| file_error("cannot keep the old key as", &old, e))?;
    std::fs::rename(&next, &path)
        .map_err(|e| file_error("cannot install the new key as", &path, e))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(Json(report))
}

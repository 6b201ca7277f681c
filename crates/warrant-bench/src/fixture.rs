//! A fresh store and engine in a temporary directory, optionally with the demo organisation.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tempfile::TempDir;
use warrant_audit::Event;
use warrant_core::{Clock, Grant, Name, SystemClock, SystemRole};
use warrant_engine::{Actor, Engine, EngineConfig};
use warrant_store::Store;

use crate::Common;
use crate::report::progress;

/// The demo organisation (`warrant serve --demo` seeds the same file).
pub const DEMO_ORG: &str = include_str!("../../../docs/examples/demo-org.yaml");

/// A store and an engine over it, on the real clock.
pub struct Fixture {
    /// The data directory (removed on drop unless kept).
    pub dir: TempDir,
    /// The engine.
    pub engine: Engine,
    /// The bootstrap admin token (bearer).
    pub admin_token: String,
    /// The admin, as the engine authenticates it.
    pub admin: Actor,
}

impl Fixture {
    /// A fresh SQLite store under `common.data_dir`, bootstrapped, with the demo organisation
    /// applied when `demo`.
    pub async fn new(common: &Common, demo: bool) -> Result<Self> {
        Self::with_cleanups(common, demo, Vec::new()).await
    }

    /// [`new`](Self::new) with clean-up work registered, as `warrant serve` does.
    pub async fn with_cleanups(
        common: &Common,
        demo: bool,
        cleanups: Vec<warrant_engine::CleanupFn>,
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("warrant-bench-")
            .tempdir_in(&common.data_dir)
            .with_context(|| {
                format!(
                    "cannot create a temporary directory in {}",
                    common.data_dir.display()
                )
            })?;
        let store = open(dir.path()).await?;
        let engine = Engine::with_cleanups(
            store,
            Arc::new(SystemClock),
            EngineConfig::default(),
            cleanups,
        )
        .await?;
        let token = engine
            .bootstrap()
            .await?
            .context("the fresh store already had identities")?;
        let admin_token = token.token.expose().clone();
        let admin = engine.authenticate(&admin_token).await?;
        if demo {
            let org = warrant_engine::org::parse(DEMO_ORG)?;
            engine.apply(&admin, org, false).await?;
        }
        Ok(Self {
            dir,
            engine,
            admin_token,
            admin,
        })
    }

    /// Closes the store and removes the directory (or keeps it and says where).
    pub async fn close(self, common: &Common) -> Result<()> {
        self.engine.store().close().await;
        close_dir(self.dir, common)
    }
}

/// Opens the SQLite store in `dir` (WAL, synchronous=FULL: what `warrant serve` uses).
pub async fn open(dir: &Path) -> Result<Store> {
    Store::open_sqlite(dir)
        .await
        .with_context(|| format!("cannot open the SQLite store in {}", dir.display()))
}

/// Removes `dir`, or keeps it when asked and says where it is.
pub fn close_dir(dir: TempDir, common: &Common) -> Result<()> {
    if common.keep {
        let path = dir.keep();
        progress(&format!("kept the data directory {}", path.display()));
        Ok(())
    } else {
        dir.close().context("cannot remove the temporary directory")
    }
}

/// An actor as the engine sees a signed-in user (no token: the engine does not need one).
pub fn user(name: &str) -> Result<Actor> {
    Ok(Actor::internal(Name::new(name)?, SystemRole::User))
}

/// Inserts grants directly through the store, `batch` per transaction, each with its own
/// `grant.created` event (as the engine writes it), approved by `approver`.
pub async fn insert_grants(
    store: &Store,
    grants: &[Grant],
    batch: usize,
    approver: &str,
) -> Result<()> {
    for chunk in grants.chunks(batch.max(1)) {
        let now = SystemClock.now();
        let mut tx = store.begin().await?;
        for g in chunk {
            tx.w().await?.insert_grant(g, now).await?;
            tx.audit(
                now,
                Some(approver),
                &Event::GrantCreated {
                    grant_id: g.id.clone(),
                    request_id: g.request_id.clone(),
                    identity: g.identity.to_string(),
                    target: g.target.to_string(),
                    role: g.role.to_string(),
                    starts_at: g.starts_at.rfc3339(),
                    ends_at: g.ends_at.rfc3339(),
                },
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

//! The engine: every operation Warrant offers, each a transaction over `warrant-store` that
//! applies `warrant-core`'s state machines, decides eligibility with `warrant-policy`, and
//! appends its `warrant-audit` event before it commits.
//!
//! - [`Engine`]: the handle the API and the CLI's offline commands use.
//! - `directory`: identities and groups, with leaver and mover handling.
//! - `catalogue`: targets, roles, eligibility rules and custom policies; the cached
//!   [`policy::PolicyState`].
//! - `access`: requests, approvals, grants, revocation and the check.
//! - `auth`: sign-in, tokens, bootstrap.
//! - [`mfa`], [`webauthn`]: second factors (TOTP, recovery codes, security keys), step-up.
//! - `scheduler`: expiry of grants and requests, and clean-up jobs retried with backoff.
//! - [`org`]: the declarative org file (`warrant apply -f`).
//!
//! Authorisation of data-dependent rights (approver, owner, holder) happens here; the API
//! checks the coarse role of each route before calling in.

mod access;
pub mod accounts;
pub mod auditsearch;
pub mod audittrail;
mod auth;
mod catalogue;
pub mod dbgateway;
mod directory;
pub mod discovery;
pub mod error;
pub mod gateway;
mod hosts;
pub mod mfa;
pub mod oidc;
pub mod org;
mod ownkeys;
pub mod pg;
pub mod policy;
mod scheduler;
pub mod scim;
pub mod sinks;
pub mod ssh;
pub mod sshkeys;
pub mod sync;
pub mod webauthn;

use std::sync::{Arc, RwLock};

pub use access::{CheckResult, NewRequest, RequestFilter, RequestView};
pub use auth::{Actor, IssuedToken, Scope};
pub use catalogue::{PolicyTestInput, PolicyTestResult, TargetView};
pub use directory::{GroupView, IdentityInput, IdentityUpdate};
pub use error::{EngineError, ErrorKind, Result};
pub use scheduler::{CleanupFn, TickReport};
use tokio::sync::Notify;
use warrant_core::{Clock, SystemRole, Timestamp};
use warrant_store::Store;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a request may stay pending before it expires.
    pub request_ttl_secs: i64,
    /// How long a sign-in session token lives at most (absolute timeout).
    pub session_ttl_secs: i64,
    /// How long a sign-in session survives without use (idle timeout).
    pub session_idle_secs: i64,
    /// How many grants the scheduler closes per transaction.
    pub expiry_batch: i64,
    /// Seals and opens secrets kept at rest (TOTP seeds); `None` refuses whatever needs it.
    pub vault: Option<Arc<warrant_vault::Vault>>,
    /// The WebAuthn relying party; `None` refuses WebAuthn (`webauthn_not_configured`).
    pub webauthn: Option<webauthn::WebauthnSettings>,
    /// Test hook: abort the process right after this rotation step commits
    /// (`WARRANT_TEST_CRASH_AT`; see `accounts`).
    pub crash_at: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            request_ttl_secs: 24 * 3600,
            session_ttl_secs: 12 * 3600,
            session_idle_secs: 3600,
            expiry_batch: 2000,
            // A throwaway key: tests and tools. The server passes the data directory's key.
            vault: warrant_vault::Kek::generate()
                .ok()
                .map(|k| Arc::new(warrant_vault::Vault::new(k))),
            webauthn: None,
            crash_at: None,
        }
    }
}

/// The engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    policy: RwLock<Arc<policy::PolicyState>>,
    cleanups: Vec<CleanupFn>,
    wake: Notify,
    /// Serialises reloads so that an older policy set never replaces a newer one.
    reload: tokio::sync::Mutex<()>,
    /// Held for writing by a change of rules or policies from before its transaction until the
    /// new set is in force, and for reading by every decision from before its transaction until
    /// it commits: no decision ever uses a set that a committed change has replaced.
    gate: tokio::sync::RwLock<()>,
    /// The last reload failed: decisions deny everything until a reload succeeds.
    policy_failed: std::sync::atomic::AtomicBool,
    /// Recent wrong second-factor codes per identity.
    mfa_failures: mfa::FailureLimiter,
    /// The vault in force (replaced by a key rotation).
    vault: RwLock<Option<Arc<warrant_vault::Vault>>>,
    /// Wakes the rotation loop (a check-in made a rotation due).
    rotate_wake: Notify,
    /// Accounts whose rotation runs in this process.
    rotations: accounts::RotationLocks,
    /// Discovery scans under way, with their progress.
    scans: discovery::ScanProgressMap,
    /// Idle admin sessions to PostgreSQL targets (clean-ups reuse them).
    pg_sessions: pg::PgSessions,
    /// The PostgreSQL gateway's temporary roles made by this process, by grant.
    gateway_roles: dbgateway::GatewayRoles,
    /// The SIEM sinks' delivery state, once started.
    sinks: sinks::SinkBoard,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `store`, loading the policy set from it.
    pub async fn new(store: Store, clock: Arc<dyn Clock>, config: EngineConfig) -> Result<Self> {
        Self::with_cleanups(store, clock, config, Vec::new()).await
    }

    /// An engine with clean-up work to run after each grant closes (connectors register here).
    pub async fn with_cleanups(
        store: Store,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        cleanups: Vec<CleanupFn>,
    ) -> Result<Self> {
        let state = policy::PolicyState::load(&store).await?;
        let vault = config.vault.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                policy: RwLock::new(Arc::new(state)),
                cleanups,
                wake: Notify::new(),
                reload: tokio::sync::Mutex::new(()),
                gate: tokio::sync::RwLock::new(()),
                policy_failed: std::sync::atomic::AtomicBool::new(false),
                mfa_failures: mfa::FailureLimiter::default(),
                vault: RwLock::new(vault),
                rotate_wake: Notify::new(),
                rotations: accounts::RotationLocks::default(),
                scans: discovery::ScanProgressMap::default(),
                pg_sessions: pg::PgSessions::default(),
                gateway_roles: dbgateway::GatewayRoles::default(),
                sinks: sinks::SinkBoard::default(),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn policy(&self) -> Arc<policy::PolicyState> {
        match self.inner.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) async fn policy_gate_read(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.inner.gate.read().await
    }

    pub(crate) async fn policy_gate_write(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.inner.gate.write().await
    }

    fn install_policy(&self, state: policy::PolicyState) {
        let state = Arc::new(state);
        match self.inner.policy.write() {
            Ok(mut p) => *p = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }

    /// Reloads the policy set from the store (after rules or policies changed). If the reload
    /// fails, Warrant fails closed: an empty set (deny everything) is installed until a reload
    /// succeeds; the scheduler retries.
    pub async fn reload_policy(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let _serial = self.inner.reload.lock().await;
        match policy::PolicyState::load(&self.inner.store).await {
            Ok(state) => {
                self.install_policy(state);
                self.inner.policy_failed.store(false, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "policy reload failed: denying every request until it succeeds");
                if let Ok(empty) = policy::PolicyState::build(Vec::new(), Vec::new()) {
                    self.install_policy(empty);
                }
                self.inner.policy_failed.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Whether the last policy reload failed (and every request is denied until one succeeds).
    pub fn policy_failed(&self) -> bool {
        self.inner
            .policy_failed
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Audit records after `after_seq`, at most `limit`.
    pub async fn audit_records(
        &self,
        actor: &Actor,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<warrant_audit::Record>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.inner.store.read().await?;
        Ok(r.q()
            .audit(&warrant_store::AuditQuery {
                after_seq,
                limit: limit.clamp(1, 10_000),
            })
            .await?)
    }
}

pub use audittrail::verify_store;

/// Refuses unless the actor's system role is at least `min` (auditor < admin).
pub(crate) fn require_role(actor: &Actor, min: SystemRole) -> Result<()> {
    if actor.role >= min {
        Ok(())
    } else {
        Err(EngineError::forbidden(
            "forbidden",
            format!("this needs the {} role", min.as_str()),
        ))
    }
}

/// Refuses unless the actor is an admin.
pub(crate) fn require_admin(actor: &Actor) -> Result<()> {
    require_role(actor, SystemRole::Admin)
}

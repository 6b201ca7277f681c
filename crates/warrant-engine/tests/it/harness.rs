//! A fresh engine on a fresh store, with a manual clock and the demo organisation.

use std::sync::Arc;

use warrant_core::{ActivationDuration, ManualClock, Name, SystemRole, Timestamp};
use warrant_engine::{Actor, CleanupFn, Engine, EngineConfig, NewRequest, RequestView};
use warrant_store::Store;

pub const DEMO: &str = include_str!("../../../../docs/examples/demo-org.yaml");

/// Wednesday 2 December 2026, 10:00 UTC.
pub fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-12-02T10:00:00Z").unwrap()
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub engine: Engine,
    pub clock: ManualClock,
    pub admin: Actor,
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    pub async fn new(backend: Backend) -> Self {
        Self::with_cleanups(backend, Vec::new()).await
    }

    pub async fn with_cleanups(backend: Backend, cleanups: Vec<CleanupFn>) -> Self {
        let (store, url, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open_sqlite(dir.path()).await.unwrap();
                let url = format!("sqlite://{}/warrant.db", dir.path().display());
                (store, url, Some(dir))
            }
            Backend::Postgres => {
                let fixture = warrant_testkit::PgFixture::shared()
                    .unwrap_or_else(|e| panic!("PostgreSQL for the conformance suite: {e}"));
                let url = fixture.fresh_database().unwrap();
                (Store::open_postgres(&url).await.unwrap(), url, None)
            }
        };
        let clock = ManualClock::new(t0());
        let engine = Engine::with_cleanups(
            store,
            Arc::new(clock.clone()),
            EngineConfig::default(),
            cleanups,
        )
        .await
        .unwrap();
        engine
            .bootstrap()
            .await
            .unwrap()
            .expect("fresh store bootstraps");
        let admin = Actor::internal(Name::new("admin").unwrap(), SystemRole::Admin);
        let org = warrant_engine::org::parse(DEMO).unwrap();
        engine.apply(&admin, org, false).await.unwrap();
        Self {
            engine,
            clock,
            admin,
            url,
            backend,
            _dir: dir,
        }
    }

    /// A second engine on the same store (a restart).
    pub async fn restart(&self) -> Engine {
        let store = match self.backend {
            Backend::Sqlite => {
                let dir = self
                    .url
                    .trim_start_matches("sqlite://")
                    .trim_end_matches("/warrant.db");
                Store::open_sqlite(std::path::Path::new(dir)).await.unwrap()
            }
            Backend::Postgres => Store::open_postgres(&self.url).await.unwrap(),
        };
        Engine::new(store, Arc::new(self.clock.clone()), EngineConfig::default())
            .await
            .unwrap()
    }

    pub fn user(&self, name: &str) -> Actor {
        Actor::internal(Name::new(name).unwrap(), SystemRole::User)
    }

    pub async fn request(
        &self,
        who: &str,
        target: &str,
        role: &str,
        dur: &str,
        ticket: Option<&str>,
    ) -> warrant_engine::Result<RequestView> {
        self.engine
            .create_request(
                &self.user(who),
                NewRequest {
                    target: Name::new(target).unwrap(),
                    role: Name::new(role).unwrap(),
                    duration: ActivationDuration::parse(dur).unwrap(),
                    reason: "testing".into(),
                    ticket: ticket.map(str::to_owned),
                    start_at: None,
                },
            )
            .await
    }

    /// Audit kinds in order.
    pub async fn audit_kinds(&self) -> Vec<String> {
        self.engine
            .audit_records(&self.admin, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.kind)
            .collect()
    }

    pub async fn count_kind(&self, kind: &str) -> usize {
        self.audit_kinds()
            .await
            .iter()
            .filter(|k| *k == kind)
            .count()
    }
}

/// Runs a test body against both backends.
#[macro_export]
macro_rules! conformance {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($env: $crate::harness::Env) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                body($crate::harness::Env::new($crate::harness::Backend::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                body($crate::harness::Env::new($crate::harness::Backend::Postgres).await).await;
            }
        }
    };
}

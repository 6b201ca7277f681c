//! Warrant's storage: one interface, two backends.
//!
//! [`Store`] opens SQLite (the embedded default, WAL, in the data directory) or PostgreSQL
//! (`--database-url`), applies [`schema::MIGRATIONS`] at start, and hands out two kinds of
//! handle:
//!
//! - [`ReadTx`]: a pooled connection for reads ([`Q`]).
//! - [`WriteTx`]: a transaction for changes ([`Q`] and [`W`]) that holds the audit chain's head.
//!   Every change appends its typed audit event in the same transaction
//!   ([`WriteTx::audit`]); [`WriteTx::commit`] refuses to commit writes that carry no event.
//!
//! The two backends share every statement (sqlx's `Any` driver, `$N` placeholders, SQL both
//! dialects accept); they differ only in [`Dialect`]: connection setup and how the writer lock
//! is taken (a single writer connection on SQLite, `SELECT … FOR UPDATE` on the chain head on
//! PostgreSQL). Writers are therefore serialised, which the hash chain needs anyway.
//!
//! The conformance suite in `tests/it` runs every behaviour against both backends.

mod account_queries;
mod audit_queries;
pub mod audit_search;
mod discovery_queries;
mod gateway_queries;
mod oidc_queries;
mod pg_queries;
mod queries;
pub mod schema;
mod scim_queries;
mod ssh_queries;
mod sync_queries;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub use account_queries::{CheckoutRow, VaultedAccountRow};
pub use discovery_queries::{ExceptionRow, InventoryRow, ScanRow};
pub use gateway_queries::GatewaySessionRow;
pub use oidc_queries::PendingLogin;
pub use pg_queries::DbCredentialRow;
pub use queries::{AuditQuery, FactorRow, JobRow, Q, TokenRow, W, settings_json};
pub use scim_queries::ScimRow;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
pub use ssh_queries::SshKeyRow;
use warrant_audit::{Event, record_hash};
use warrant_core::Timestamp;

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored value does not parse (the database was edited by hand, or is corrupt).
    #[error("corrupt stored value in {table}.{column}: {detail}")]
    Corrupt {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A change was about to commit without its audit event.
    #[error("refusing to commit a change without its audit event")]
    Unaudited,
    /// The URL names no supported backend.
    #[error("unsupported database URL {0:?}: use postgres://… or sqlite://…")]
    BadUrl(String),
    /// The database was written by a newer Warrant.
    #[error(
        "the database schema is version {found}, newer than this Warrant ({known}): upgrade Warrant"
    )]
    TooNew {
        /// Version found.
        found: usize,
        /// Latest version known.
        known: usize,
    },
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The backend in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store: pools for reading and writing.
#[derive(Debug, Clone)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    dialect: Dialect,
}

fn install_drivers() {
    sqlx::any::install_default_drivers();
}

impl Store {
    /// Opens (creating if needed) the SQLite database `warrant.db` in `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self> {
        install_drivers();
        let path = data_dir.join("warrant.db");
        let url = format!("sqlite://{}", path.display());
        let pragmas =
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000;";
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |c, _| {
                Box::pin(async move {
                    c.execute(pragmas).await?;
                    Ok(())
                })
            })
            .connect_with(AnyConnectOptions::from_str(&format!("{url}?mode=rwc"))?)
            .await?;
        let reader = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|c, _| {
                Box::pin(async move {
                    c.execute("PRAGMA busy_timeout=10000;").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(AnyConnectOptions::from_str(&format!("{url}?mode=ro"))?);
        let store = Self {
            writer,
            reader,
            dialect: Dialect::Sqlite,
        };
        store.migrate().await?;
        // Lets SQLite gather the statistics its planner needs (cheap; a no-op when fresh).
        sqlx::query("PRAGMA optimize=0x10002")
            .execute(&store.writer)
            .await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url`.
    pub async fn open_postgres(url: &str) -> Result<Self> {
        install_drivers();
        let opts = AnyConnectOptions::from_str(url)?;
        let writer = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        let reader = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(opts);
        let store = Self {
            writer,
            reader,
            dialect: Dialect::Postgres,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The backend in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.writer.acquire().await?;
        if self.dialect == Dialect::Postgres {
            // Several nodes may start at once: one migrates, the others wait.
            sqlx::query("SELECT pg_advisory_lock(8200)")
                .execute(&mut *c)
                .await?;
        }
        let result = self.migrate_locked(&mut c).await;
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_unlock(8200)")
                .execute(&mut *c)
                .await?;
        }
        result
    }

    async fn migrate_locked(&self, c: &mut AnyConnection) -> Result<()> {
        let has_meta = match self.dialect {
            Dialect::Sqlite => {
                sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
                    .fetch_optional(&mut *c)
                    .await?
            }
            Dialect::Postgres => {
                sqlx::query("SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'meta'")
                    .fetch_optional(&mut *c)
                    .await?
            }
        }
        .is_some();
        let current: usize = if has_meta {
            let v: Option<String> =
                sqlx::query_scalar("SELECT value FROM meta WHERE key = 'schema_version'")
                    .fetch_optional(&mut *c)
                    .await?;
            v.and_then(|v| v.parse().ok()).unwrap_or(0)
        } else {
            0
        };
        if current > schema::MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                found: current,
                known: schema::MIGRATIONS.len(),
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(current) {
            let mut tx = c.begin().await?;
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            let v = (i + 1).to_string();
            sqlx::query("DELETE FROM meta WHERE key = 'schema_version'")
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES ('schema_version', $1)")
                .bind(v)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx(self.reader.acquire().await?))
    }

    /// Starts a change. Writers are serialised: this waits for the previous writer to finish.
    pub async fn begin(&self) -> Result<WriteTx> {
        let mut tx = self.writer.begin().await?;
        let sql = match self.dialect {
            Dialect::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
            Dialect::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        };
        let row = sqlx::query(sql).fetch_one(&mut *tx).await?;
        Ok(WriteTx {
            head_seq: row.try_get(0)?,
            head_hash: row.try_get(1)?,
            tx,
            dirty: false,
            audited: false,
        })
    }

    /// Records that a session token was used (its idle timeout counts from here).
    ///
    /// The one write outside [`WriteTx`]: it is bookkeeping for a timeout, not a change of
    /// state anyone could be held to account for, and it must not cost an audit event per call.
    pub async fn touch_token(&self, id: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now.millis())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// A read handle.
#[derive(Debug)]
pub struct ReadTx(PoolConnection<Any>);

impl ReadTx {
    /// Queries.
    pub fn q(&mut self) -> Q<'_> {
        Q(&mut self.0)
    }
}

/// A change in progress, holding the audit chain's head.
#[derive(Debug)]
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    head_seq: i64,
    head_hash: String,
    dirty: bool,
    audited: bool,
}

impl WriteTx {
    /// Queries, seeing this transaction's own changes.
    pub fn q(&mut self) -> Q<'_> {
        Q(&mut self.tx)
    }

    /// Writes. Using them obliges the transaction to carry an audit event.
    pub fn w(&mut self) -> W<'_> {
        self.dirty = true;
        W(&mut self.tx)
    }

    /// Appends `event` to the audit chain, in this transaction. Returns its sequence number.
    pub async fn audit(
        &mut self,
        at: Timestamp,
        actor: Option<&str>,
        event: &Event,
    ) -> Result<i64> {
        let (kind, value) = event.to_json();
        let refs = Event::refs(&value);
        let data = value.to_string();
        let seq = self.head_seq + 1;
        let hash = record_hash(&self.head_hash, seq, at.millis(), actor, &kind, &data);
        sqlx::query(
            "INSERT INTO audit (seq, at, actor, kind, identity, target, request_id, grant_id, data, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(seq)
        .bind(at.millis())
        .bind(actor)
        .bind(&kind)
        .bind(refs.identity)
        .bind(refs.target)
        .bind(refs.request_id)
        .bind(refs.grant_id)
        .bind(data)
        .bind(&self.head_hash)
        .bind(&hash)
        .execute(&mut *self.tx)
        .await?;
        self.head_seq = seq;
        self.head_hash = hash;
        self.audited = true;
        Ok(seq)
    }

    /// Commits the change and its audit events together.
    pub async fn commit(mut self) -> Result<()> {
        if self.dirty && !self.audited {
            self.tx.rollback().await?;
            return Err(StoreError::Unaudited);
        }
        if self.audited {
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(self.head_seq)
                .bind(&self.head_hash)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }

    /// Abandons the change.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

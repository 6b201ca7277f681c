//! Warrant's storage: one interface, two backends.
//!
//! [`Store`] opens SQLite (the embedded default, WAL, in the data directory) or PostgreSQL
//! (`--database-url`), applies [`schema::MIGRATIONS`] at start, and hands out two kinds of
//! handle:
//!
//! - [`ReadTx`]: a pooled connection for reads ([`Q`]).
//! - [`WriteTx`]: a transaction for changes ([`Q`] and [`W`]) that holds the audit chain's head.
//!   Every change appends its typed audit event in the same transaction
//!   ([`WriteTx::audit`]); [`WriteTx::commit`] refuses to commit writes that carry no event,
//!   and returns only once the change and its events are durable.
//!
//! The two backends share every statement (sqlx's `Any` driver, `$N` placeholders, SQL both
//! dialects accept); they differ in [`Dialect`]: connection setup and how writers are
//! serialised, which the hash chain needs. On PostgreSQL a change is a transaction of its own
//! that locks the chain's head (`SELECT … FOR UPDATE`). On SQLite there is one writer
//! connection and changes share it by group commit ([`writer`]): each change is a savepoint in
//! a batch transaction, and the changes that queued while one was made commit together, with
//! one fsync.
//!
//! The conformance suite in `tests/it` runs every behaviour against both backends.

mod account_queries;
mod audit_queries;
pub mod audit_read;
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
mod writer;

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
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
pub use ssh_queries::SshKeyRow;
use warrant_audit::{Event, record_hash};
use warrant_core::Timestamp;
pub use writer::GroupStats;

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
    /// The batch of changes this change was committed with failed: nothing of it was kept.
    #[error("the change could not be committed: {0}")]
    GroupCommit(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// A write outside the audit chain tried to append an event.
    #[error("an unaudited bookkeeping write cannot carry audit events")]
    Bookkeeping,
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
    writer: WritePath,
    reader: AnyPool,
    dialect: Dialect,
    sqlite_path: Option<std::path::PathBuf>,
}

/// How changes reach the database.
#[derive(Debug, Clone)]
enum WritePath {
    /// PostgreSQL: a pool; each change is its own transaction.
    Pool(AnyPool),
    /// SQLite: the one writer connection, with group commit.
    Group(writer::Shared),
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
        let mut conn =
            AnyConnection::connect_with(&AnyConnectOptions::from_str(&format!("{url}?mode=rwc"))?)
                .await?;
        conn.execute(pragmas).await?;
        migrate_locked(Dialect::Sqlite, &mut conn).await?;
        // Lets SQLite gather the statistics its planner needs (cheap; a no-op when fresh).
        sqlx::query("PRAGMA optimize=0x10002")
            .execute(&mut conn)
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
        Ok(Self {
            writer: WritePath::Group(writer::Writer::new(conn)),
            reader,
            dialect: Dialect::Sqlite,
            sqlite_path: Some(path),
        })
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
        let mut c = writer.acquire().await?;
        // Several nodes may start at once: one migrates, the others wait.
        sqlx::query("SELECT pg_advisory_lock(8200)")
            .execute(&mut *c)
            .await?;
        let migrated = migrate_locked(Dialect::Postgres, &mut c).await;
        sqlx::query("SELECT pg_advisory_unlock(8200)")
            .execute(&mut *c)
            .await?;
        migrated?;
        drop(c);
        Ok(Self {
            writer: WritePath::Pool(writer),
            reader,
            dialect: Dialect::Postgres,
            sqlite_path: None,
        })
    }

    /// The backend in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQLite database file (None on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// A connection for reads.
    pub async fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx(self.reader.acquire().await?))
    }

    /// Starts a change. Writers are serialised: this waits for the previous writer to finish.
    pub async fn begin(&self) -> Result<WriteTx> {
        self.begin_as(false).await
    }

    /// Starts a write outside the audit chain: bookkeeping that nobody is held to account
    /// for (checkpoints, sink cursors, token use, pending logins). It cannot carry events and
    /// does not lock the chain's head on PostgreSQL; on SQLite it joins the group commit.
    pub(crate) async fn begin_bookkeeping(&self) -> Result<WriteTx> {
        self.begin_as(true).await
    }

    async fn begin_as(&self, bookkeeping: bool) -> Result<WriteTx> {
        let (conn, head) = match &self.writer {
            WritePath::Pool(pool) => {
                let mut tx = pool.begin().await?;
                let head = if bookkeeping {
                    (0, String::new())
                } else {
                    writer::stored_head(&mut tx, true).await?
                };
                (Conn::Pool(tx), head)
            }
            WritePath::Group(shared) => {
                let (held, head) = writer::Writer::take(shared).await?;
                (
                    Conn::Group {
                        held,
                        shared: std::sync::Arc::clone(shared),
                        savepoint: false,
                    },
                    head,
                )
            }
        };
        Ok(WriteTx {
            conn: Some(conn),
            head,
            rows: Vec::new(),
            dirty: false,
            bookkeeping,
        })
    }

    /// Records that a session token was used (its idle timeout counts from here).
    ///
    /// Bookkeeping outside the audit chain: it is for a timeout, not a change of state anyone
    /// could be held to account for, and it must not cost an audit event per call.
    pub async fn touch_token(&self, id: &str, now: Timestamp) -> Result<()> {
        let mut tx = self.begin_bookkeeping().await?;
        sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now.millis())
            .execute(tx.w().await?.0)
            .await?;
        tx.commit().await
    }

    /// How group commit has gone since the store opened (SQLite; None on PostgreSQL, where
    /// each change commits on its own).
    pub async fn group_commit_stats(&self) -> Option<GroupStats> {
        match &self.writer {
            WritePath::Pool(_) => None,
            WritePath::Group(shared) => Some(shared.lock().await.stats()),
        }
    }

    /// Commits what is pending and closes the store's pools; later changes are refused (the
    /// SQLite writer's connection closes when the last clone of the store is dropped).
    pub async fn close(&self) {
        match &self.writer {
            WritePath::Pool(pool) => pool.close().await,
            WritePath::Group(shared) => {
                let _ = writer::Writer::close(shared).await;
            }
        }
        self.reader.close().await;
    }
}

/// Applies the migrations the database lacks, each in its own transaction.
async fn migrate_locked(dialect: Dialect, c: &mut AnyConnection) -> Result<()> {
    let has_meta = match dialect {
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

/// A read handle.
#[derive(Debug)]
pub struct ReadTx(PoolConnection<Any>);

impl ReadTx {
    /// Queries.
    pub fn q(&mut self) -> Q<'_> {
        Q(&mut self.0)
    }
}

/// The connection a change writes on.
#[derive(Debug)]
enum Conn {
    /// PostgreSQL: a transaction of its own.
    Pool(Transaction<'static, Any>),
    /// SQLite: the writer, held until the change is committed or undone.
    Group {
        held: writer::Held,
        shared: writer::Shared,
        /// The change's savepoint is open (it has written).
        savepoint: bool,
    },
}

impl Conn {
    fn conn(&mut self) -> &mut AnyConnection {
        match self {
            Conn::Pool(tx) => tx,
            Conn::Group { held, .. } => &mut held.conn,
        }
    }
}

/// A change in progress, holding the audit chain's head.
///
/// Its audit records are written when it commits (in one statement with those of the other
/// changes committed with it), so a query inside the change does not see them.
#[derive(Debug)]
pub struct WriteTx {
    /// `None` once committed or rolled back.
    conn: Option<Conn>,
    head: (i64, String),
    rows: Vec<writer::AuditRow>,
    dirty: bool,
    bookkeeping: bool,
}

impl WriteTx {
    fn conn(&mut self) -> &mut Conn {
        // Only `commit` and `rollback` take it, and they consume the change.
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("a finished change was used"))
    }

    /// Queries, seeing this transaction's own changes.
    pub fn q(&mut self) -> Q<'_> {
        Q(self.conn().conn())
    }

    /// Writes. Using them obliges the transaction to carry an audit event. The first call
    /// opens the change's savepoint on SQLite (a change that only reads and audits needs none).
    pub async fn w(&mut self) -> Result<W<'_>> {
        self.dirty = true;
        let conn = self.conn();
        if let Conn::Group {
            held, savepoint, ..
        } = conn
            && !*savepoint
        {
            held.savepoint().await?;
            *savepoint = true;
        }
        Ok(W(conn.conn()))
    }

    /// Appends `event` to the audit chain, in this transaction. Returns its sequence number.
    pub async fn audit(
        &mut self,
        at: Timestamp,
        actor: Option<&str>,
        event: &Event,
    ) -> Result<i64> {
        if self.bookkeeping {
            return Err(StoreError::Bookkeeping);
        }
        let (kind, value) = event.to_json();
        let refs = Event::refs(&value);
        let data = value.to_string();
        let seq = self.head.0 + 1;
        let hash = record_hash(&self.head.1, seq, at.millis(), actor, &kind, &data);
        let prev_hash = std::mem::replace(&mut self.head.1, hash.clone());
        self.head.0 = seq;
        self.rows.push(writer::AuditRow {
            seq,
            at: at.millis(),
            actor: actor.map(str::to_owned),
            kind,
            refs,
            data,
            prev_hash,
            hash,
        });
        Ok(seq)
    }

    /// Commits the change and its audit events together; returns once they are durable.
    pub async fn commit(mut self) -> Result<()> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        if self.dirty && self.rows.is_empty() && !self.bookkeeping {
            finish(conn).await?;
            return Err(StoreError::Unaudited);
        }
        let rows = std::mem::take(&mut self.rows);
        let head = std::mem::take(&mut self.head);
        match conn {
            Conn::Pool(mut tx) => {
                if !rows.is_empty() {
                    writer::insert_rows(&mut tx, &rows).await?;
                    writer::save_head(&mut tx, &head).await?;
                }
                tx.commit().await?;
                Ok(())
            }
            Conn::Group {
                held,
                shared,
                savepoint,
            } => {
                if !savepoint && rows.is_empty() && !held.pending() {
                    return Ok(());
                }
                // A change that only read still waits for the open batch: what it read may be
                // a member's change that is not durable yet.
                writer::Writer::commit_change(held, shared, savepoint, rows, head).await
            }
        }
    }

    /// Abandons the change.
    pub async fn rollback(mut self) -> Result<()> {
        match self.conn.take() {
            Some(conn) => finish(conn).await,
            None => Ok(()),
        }
    }
}

/// Undoes a change's writes and lets go of its connection.
async fn finish(conn: Conn) -> Result<()> {
    match conn {
        Conn::Pool(tx) => tx.rollback().await?,
        Conn::Group {
            held,
            savepoint,
            shared,
        } => {
            if savepoint {
                writer::Writer::undo_change(held).await?;
            } else if held.pending() {
                // It may have read a member's change of the open batch: it learns whether
                // that became durable, like a commit.
                let head = (0, String::new());
                writer::Writer::commit_change(held, shared, false, Vec::new(), head).await?;
            }
        }
    }
    Ok(())
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // A change dropped mid-way: its savepoint is undone on a task of its own, or by
        // whoever takes the writer next (PostgreSQL's transaction rolls back by itself).
        if let Some(Conn::Group {
            held,
            savepoint: true,
            ..
        }) = self.conn.take()
        {
            writer::Writer::abandon(held);
        }
    }
}

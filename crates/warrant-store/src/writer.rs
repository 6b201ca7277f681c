//! Group commit on SQLite: one writer connection, taken by changes in turn; the changes that
//! queue while one is being made commit together, with one fsync.
//!
//! A change ([`crate::WriteTx`]) takes the writer (a FIFO lock) and makes its writes inside a
//! savepoint of the batch's open transaction; its audit rows wait in memory. At commit it
//! releases the savepoint (its writes are now part of the batch), hands its rows and the new
//! chain head to the batch, lets go of the writer and queues for it again. The changes that
//! were waiting meanwhile join the batch the same way. Whoever gets the writer back first
//! while the batch is still open commits it: the audit rows (multi-row inserts), the chain's
//! head, `COMMIT` (one fsync). Every member of the batch learns the outcome: none is told its
//! change is committed before that fsync has returned, and a batch that fails fails every
//! change in it (none of them is committed). Alone, a change commits as soon as it lets go;
//! under load a batch holds the changes that queued during the previous one.
//!
//! A member's change sees the writes of the members before it (they share the transaction),
//! which is what a serial order needs: if the batch fails, they all fail together.

use std::sync::{Arc, OnceLock};

use sqlx::{AnyConnection, Row};
use tokio::sync::{Mutex, OwnedMutexGuard};
use warrant_audit::Refs;

use crate::{Result, StoreError};

/// The outcome of one batch: set once, when it has committed or failed.
pub(crate) type Outcome = Arc<OnceLock<Result<(), String>>>;

/// The writer, shared by the store's clones.
pub(crate) type Shared = Arc<Mutex<Writer>>;

/// A change's hold on the writer.
pub(crate) type Held = OwnedMutexGuard<Writer>;

/// The savepoint each change's writes are made in, inside the batch's own savepoint. Every
/// step that needs the batch's transaction first releases and retakes `warrant_batch`: if
/// SQLite rolled the transaction back under the writer (a full disk, an I/O error in any
/// statement, even a read), that fails ("no such savepoint") and fails the batch, where a bare
/// `SAVEPOINT` would silently start a new transaction and its `RELEASE` commit it.
const SAVEPOINT: &str = "RELEASE warrant_batch; SAVEPOINT warrant_batch; SAVEPOINT warrant_change";
const BEGIN_AND_SAVEPOINT: &str =
    "BEGIN IMMEDIATE; SAVEPOINT warrant_batch; SAVEPOINT warrant_change";
const RELEASE: &str = "RELEASE warrant_change";
const UNDO: &str = "ROLLBACK TO warrant_change; RELEASE warrant_change";
/// Checks that the batch's transaction is still there, before its commit.
const STILL_OPEN: &str = "RELEASE warrant_batch";
/// How long a change waits for the writer before giving up (as the pool's acquire did).
const TAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One audit record waiting to be inserted.
#[derive(Debug)]
pub(crate) struct AuditRow {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) actor: Option<String>,
    pub(crate) kind: String,
    pub(crate) refs: Refs,
    pub(crate) data: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

/// The most rows one insert carries (11 parameters each; both backends allow far more).
const MAX_ROWS: usize = 256;

/// The insert statement for `n` rows (`n` a power of two up to [`MAX_ROWS`], so that a
/// handful of distinct statements cover every batch and stay prepared).
fn insert_sql(n: usize) -> &'static str {
    static SQL: [OnceLock<String>; 9] = [const { OnceLock::new() }; 9];
    let i = n.trailing_zeros() as usize;
    SQL[i.min(8)].get_or_init(|| {
        let mut s = String::from(
            "INSERT INTO audit (seq, at, actor, kind, identity, target, request_id, grant_id, data, prev_hash, hash) VALUES ",
        );
        for r in 0..n {
            if r > 0 {
                s.push_str(", ");
            }
            let b = r * 11;
            s.push('(');
            for c in 1..=11 {
                if c > 1 {
                    s.push_str(", ");
                }
                s.push_str(&format!("${}", b + c));
            }
            s.push(')');
        }
        s
    })
}

/// Inserts `rows` in order, in as few statements as the sizes allow.
pub(crate) async fn insert_rows(conn: &mut AnyConnection, rows: &[AuditRow]) -> Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let n = 1 << rest.len().min(MAX_ROWS).ilog2();
        let (chunk, tail) = rest.split_at(n);
        let mut q = sqlx::query(insert_sql(n));
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(r.at)
                .bind(r.actor.as_deref())
                .bind(&r.kind)
                .bind(r.refs.identity.as_deref())
                .bind(r.refs.target.as_deref())
                .bind(r.refs.request_id.as_deref())
                .bind(r.refs.grant_id.as_deref())
                .bind(&r.data)
                .bind(&r.prev_hash)
                .bind(&r.hash);
        }
        q.execute(&mut *conn).await?;
        rest = tail;
    }
    Ok(())
}

/// Runs `work` to its end whatever becomes of the caller.
async fn detached(work: impl Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    match tokio::spawn(work).await {
        Ok(r) => r,
        Err(e) => Err(StoreError::GroupCommit(format!(
            "the commit task ended: {e}"
        ))),
    }
}

/// The chain's head as the store records it.
pub(crate) async fn stored_head(conn: &mut AnyConnection, lock: bool) -> Result<(i64, String)> {
    let sql = if lock {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    };
    let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Records the chain's new head.
pub(crate) async fn save_head(conn: &mut AnyConnection, head: &(i64, String)) -> Result<()> {
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(head.0)
        .bind(&head.1)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The SQLite writer: its connection and the batch it has not committed yet.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) conn: AnyConnection,
    /// The batch's transaction is open (`BEGIN` issued).
    open: bool,
    /// The chain's head with every released change of the batch; `None` after a failure
    /// (read again from the store).
    head: Option<(i64, String)>,
    /// Audit rows of released changes, inserted when the batch commits.
    rows: Vec<AuditRow>,
    /// What the members of the open batch will learn.
    outcome: Outcome,
    /// A change was dropped with its savepoint open: undone by the next holder.
    dangling: bool,
    /// The store was closed.
    closed: bool,
    /// Changes in the open batch.
    members: u64,
    /// Batches committed and the changes they held, since the store opened.
    stats: GroupStats,
}

/// How group commit has gone since the store opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupStats {
    /// Batches committed (one fsync each).
    pub batches: u64,
    /// Changes committed in them.
    pub changes: u64,
}

impl Writer {
    pub(crate) fn new(conn: AnyConnection) -> Shared {
        Arc::new(Mutex::new(Self {
            conn,
            open: false,
            head: None,
            rows: Vec::new(),
            outcome: Arc::default(),
            dangling: false,
            closed: false,
            stats: GroupStats::default(),
            members: 0,
        }))
    }

    /// Takes the writer for a change: a left-over savepoint undone, the head known.
    pub(crate) async fn take(shared: &Shared) -> Result<(Held, (i64, String))> {
        let mut w = tokio::time::timeout(TAKE_TIMEOUT, Arc::clone(shared).lock_owned())
            .await
            .map_err(|_| {
                StoreError::GroupCommit(format!(
                    "the store's writer was busy for {} s (another change held it): nothing was changed, try again",
                    TAKE_TIMEOUT.as_secs()
                ))
            })?;
        if w.closed {
            return Err(StoreError::Closed);
        }
        if w.dangling {
            // Cleared only once undone: a caller giving up here leaves it for the next one.
            w.step(UNDO).await?;
            w.dangling = false;
        }
        let head = match &w.head {
            Some(h) => h.clone(),
            None => match stored_head(&mut w.conn, false).await {
                Ok(h) => {
                    w.head = Some(h.clone());
                    h
                }
                Err(e) => {
                    w.fail(e.to_string()).await;
                    return Err(e);
                }
            },
        };
        Ok((w, head))
    }

    /// Opens a change's savepoint (and the batch's transaction first when none is open).
    pub(crate) async fn savepoint(&mut self) -> Result<()> {
        let sql = if self.open {
            SAVEPOINT
        } else {
            BEGIN_AND_SAVEPOINT
        };
        self.step(sql).await?;
        self.open = true;
        Ok(())
    }

    /// Undoes a change's writes; a batch left with nothing in it is closed (its transaction
    /// holds SQLite's write lock, which other processes wait for).
    async fn undo(&mut self) -> Result<()> {
        self.step(UNDO).await?;
        self.close_if_empty().await
    }

    async fn close_if_empty(&mut self) -> Result<()> {
        if self.open && self.members == 0 && self.rows.is_empty() {
            self.step("ROLLBACK").await?;
            self.open = false;
        }
        Ok(())
    }

    /// Whether the open batch holds anything a change may have seen and not yet durable.
    pub(crate) fn pending(&self) -> bool {
        self.open || !self.rows.is_empty()
    }

    /// Adds a finished change to the batch: releases its savepoint (if it wrote), keeps its
    /// audit rows and head. Returns the outcome its caller waits for.
    async fn join(
        &mut self,
        wrote: bool,
        rows: Vec<AuditRow>,
        head: (i64, String),
    ) -> Result<Outcome> {
        // Its records must continue the batch's chain: a change that carried on after a step
        // of its batch failed was made against a head that is gone.
        if let Some(first) = rows.first() {
            let continues = self
                .head
                .as_ref()
                .is_some_and(|(seq, hash)| first.seq == seq + 1 && first.prev_hash == *hash);
            if !continues {
                if wrote {
                    let _ = self.undo().await;
                }
                return Err(StoreError::GroupCommit(
                    "the change was made against a chain head its batch has since lost (an earlier step failed): nothing of it was kept".into(),
                ));
            }
        }
        if wrote {
            self.step(RELEASE).await?;
        }
        let rows_empty = rows.is_empty();
        if !rows_empty {
            self.rows.extend(rows);
            self.head = Some(head);
        }
        if wrote || !rows_empty {
            self.members += 1;
        }
        Ok(Arc::clone(&self.outcome))
    }

    /// Commits a finished change: adds it to the batch ([`Writer::join`]), lets go of the
    /// writer and takes it again (after everyone who was waiting for it, so they join too),
    /// then, if nobody has committed the batch meanwhile, commits it. On a task of its own: a
    /// caller that gives up half way (a dropped request) cannot leave its writes in the batch
    /// without their audit records, nor the batch half committed.
    pub(crate) async fn commit_change(
        mut held: Held,
        shared: Shared,
        wrote: bool,
        rows: Vec<AuditRow>,
        head: (i64, String),
    ) -> Result<()> {
        detached(async move {
            let outcome = held.join(wrote, rows, head).await?;
            drop(held);
            let mut w = shared.lock_owned().await;
            if let Some(done) = outcome.get() {
                return done.clone().map_err(StoreError::GroupCommit);
            }
            w.commit_batch().await
        })
        .await
    }

    /// Undoes a change's writes, on a task of its own for the same reason.
    pub(crate) async fn undo_change(mut held: Held) -> Result<()> {
        detached(async move { held.undo().await }).await
    }

    /// Undoes the writes of a change dropped mid-way: on a task of its own when there is a
    /// runtime to run it (else by whoever takes the writer next).
    pub(crate) fn abandon(mut held: Held) {
        held.dangling = true;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if held.step(UNDO).await.is_ok() {
                    held.dangling = false;
                    let _ = held.close_if_empty().await;
                }
            });
        }
    }

    /// Commits the open batch, if there is one, and tells its members.
    pub(crate) async fn commit_batch(&mut self) -> Result<()> {
        if self.dangling {
            self.step(UNDO).await?;
            self.dangling = false;
        }
        if !self.open && self.rows.is_empty() {
            self.settle(Ok(()));
            return Ok(());
        }
        match self.try_commit().await {
            Ok(()) => {
                self.open = false;
                self.rows.clear();
                self.stats.batches += 1;
                self.stats.changes += self.members;
                metrics::counter!("warrant_store_group_commits_total").increment(1);
                metrics::counter!("warrant_store_group_commit_changes_total")
                    .increment(self.members);
                self.settle(Ok(()));
                Ok(())
            }
            Err(e) => {
                self.fail(e.to_string()).await;
                Err(e)
            }
        }
    }

    async fn try_commit(&mut self) -> Result<()> {
        if self.open {
            sqlx::raw_sql(STILL_OPEN).execute(&mut self.conn).await?;
        } else {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await?;
            self.open = true;
        }
        if !self.rows.is_empty() {
            insert_rows(&mut self.conn, &self.rows).await?;
            if let Some(head) = &self.head {
                save_head(&mut self.conn, head).await?;
            }
        }
        sqlx::raw_sql("COMMIT").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Closes the writer: what is open commits (on a task of its own), later changes are
    /// refused. The connection itself closes when the last clone of the store is dropped.
    pub(crate) async fn close(shared: &Shared) -> Result<()> {
        let mut w = Arc::clone(shared).lock_owned().await;
        detached(async move {
            let r = w.commit_batch().await;
            w.closed = true;
            r
        })
        .await
    }

    /// Runs one step of the protocol; a failed step fails the whole batch (SQLite may have
    /// rolled the transaction back under it).
    async fn step(&mut self, sql: &'static str) -> Result<()> {
        if let Err(e) = sqlx::raw_sql(sql).execute(&mut self.conn).await {
            self.fail(e.to_string()).await;
            return Err(e.into());
        }
        Ok(())
    }

    /// The batch cannot commit: what is open is rolled back, its rows forgotten, the head read
    /// again from the store next time, and every member told.
    async fn fail(&mut self, why: String) {
        // The state first, so that a caller giving up during the rollback below leaves a
        // writer that knows nothing is open (a transaction still there makes the next
        // `BEGIN` fail, which fails that batch and rolls back again).
        self.open = false;
        self.dangling = false;
        self.rows.clear();
        self.head = None;
        metrics::counter!("warrant_store_group_commit_failures_total").increment(1);
        tracing::error!(error = %why, "a group commit failed: every change in it was refused");
        self.settle(Err(why));
        // Nothing may be open any more (SQLite rolls back by itself on some errors).
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut self.conn).await;
    }

    fn settle(&mut self, result: Result<(), String>) {
        let _ = self.outcome.set(result);
        self.outcome = Arc::default();
        self.members = 0;
    }

    /// Batches and changes committed so far.
    pub(crate) fn stats(&self) -> GroupStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use warrant_audit::{Event, Verifier};
    use warrant_core::Timestamp;

    use crate::{AuditQuery, Store, StoreError, WriteTx};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let mut tx = store.begin_bookkeeping().await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(tx.w().await.unwrap().0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (dir, store)
    }

    fn event(k: &str) -> Event {
        Event::GroupDeleted {
            group: k.to_owned(),
            via: "admin".into(),
        }
    }

    /// A change that writes `k` into `t` and audits it, not yet committed.
    async fn change(store: &Store, k: &str, e: Event) -> WriteTx {
        let mut tx = store.begin().await.unwrap();
        sqlx::query("INSERT INTO t (k) VALUES ($1)")
            .bind(k)
            .execute(tx.w().await.unwrap().0)
            .await
            .unwrap();
        tx.audit(Timestamp::from_millis(1_000), Some("alice"), &e)
            .await
            .unwrap();
        tx
    }

    /// What the readers see: the keys in `t`, the audit kinds' groups, whether the chain and its
    /// recorded head verify.
    async fn committed(store: &Store) -> (Vec<String>, Vec<String>, bool) {
        let mut r = store.read().await.unwrap();
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(r.q().0)
            .await
            .unwrap();
        let recs = r
            .q()
            .audit(&AuditQuery {
                after_seq: 0,
                limit: 1_000,
            })
            .await
            .unwrap();
        let head = r.q().audit_head().await.unwrap();
        let mut v = Verifier::new();
        let pushed = recs.iter().all(|rec| v.push(rec));
        let intact = pushed && v.finish(Some((head.0, &head.1))).intact;
        let groups = recs
            .iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.data).unwrap()["group"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        (keys, groups, intact)
    }

    /// Makes the database refuse the audit record of any change about "bad" when its batch
    /// commits.
    async fn refuse_bad(store: &Store) {
        let mut tx = store.begin_bookkeeping().await.unwrap();
        sqlx::raw_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.data LIKE '%\"bad\"%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .execute(tx.w().await.unwrap().0)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// Lets spawned changes reach the writer's queue (they wait for it in the order spawned).
    async fn queued() {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_changes_that_queue_commit_together_and_each_is_durable() {
        let (_dir, store) = store().await;
        let before = store.group_commit_stats().await.unwrap();
        let first = change(&store, "k00", event("k00")).await;
        let tasks: Vec<_> = (1..=20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let k = format!("k{i:02}");
                    change(&store, &k, event(&k)).await.commit().await
                })
            })
            .collect();
        queued().await;
        first.commit().await.unwrap();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let after = store.group_commit_stats().await.unwrap();
        assert_eq!(after.changes - before.changes, 21);
        // The 20 that queued behind the first joined its batch (one fsync for all 21).
        assert_eq!(after.batches - before.batches, 1, "{before:?} → {after:?}");
        let (keys, groups, intact) = committed(&store).await;
        assert_eq!(keys.len(), 21);
        assert_eq!(groups.len(), 21);
        assert!(intact);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_undone_or_dropped_change_leaves_the_rest_of_its_batch() {
        let (_dir, store) = store().await;
        let first = change(&store, "a", event("a")).await;
        let spawn = |k: &'static str, end: &'static str| {
            let store = store.clone();
            tokio::spawn(async move {
                let tx = change(&store, k, event(k)).await;
                match end {
                    "commit" => tx.commit().await,
                    "rollback" => tx.rollback().await,
                    _ => {
                        drop(tx);
                        Ok(())
                    }
                }
            })
        };
        let b = spawn("b", "rollback");
        queued().await;
        let c = spawn("c", "drop");
        queued().await;
        let d = spawn("d", "commit");
        queued().await;
        first.commit().await.unwrap();
        for t in [b, c, d] {
            t.await.unwrap().unwrap();
        }
        let (keys, groups, intact) = committed(&store).await;
        assert_eq!(keys, ["a", "d"]);
        assert_eq!(groups, ["a", "d"]);
        assert!(intact);
        // The next change follows on from the committed head.
        change(&store, "e", event("e"))
            .await
            .commit()
            .await
            .unwrap();
        let (keys, _, intact) = committed(&store).await;
        assert_eq!(keys, ["a", "d", "e"]);
        assert!(intact);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_that_fails_fails_every_change_in_it_and_keeps_nothing() {
        let (_dir, store) = store().await;
        change(&store, "before", event("before"))
            .await
            .commit()
            .await
            .unwrap();
        refuse_bad(&store).await;

        let first = change(&store, "good", event("good")).await;
        let bad = {
            let store = store.clone();
            tokio::spawn(async move { change(&store, "bad", event("bad")).await.commit().await })
        };
        queued().await;
        let first = first.commit().await;
        let bad = bad.await.unwrap();
        assert!(first.is_err(), "{first:?}");
        assert!(bad.is_err(), "{bad:?}");
        let (keys, groups, intact) = committed(&store).await;
        assert_eq!(keys, ["before"]);
        assert_eq!(groups, ["before"]);
        assert!(intact);
        // The writer recovers: the next change commits after the last committed record.
        change(&store, "after", event("after"))
            .await
            .commit()
            .await
            .unwrap();
        let (keys, groups, intact) = committed(&store).await;
        assert_eq!(keys, ["after", "before"]);
        assert_eq!(groups, ["before", "after"]);
        assert!(intact);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_mid_commit_leaves_no_write_without_its_record() {
        let (_dir, store) = store().await;
        for (i, end) in ["commit", "rollback"].iter().enumerate() {
            let k = format!("given-up-{i}");
            let tx = change(&store, &k, event(&k)).await;
            // Polled once, then dropped at its first wait (as a dropped request would).
            let _ = match *end {
                "commit" => tokio::time::timeout(Duration::from_nanos(1), tx.commit()).await,
                _ => tokio::time::timeout(Duration::from_nanos(1), tx.rollback()).await,
            };
            let k = format!("after-{i}");
            change(&store, &k, event(&k)).await.commit().await.unwrap();
        }
        let (keys, groups, intact) = committed(&store).await;
        // Each write is there exactly when its audit record is.
        assert_eq!(keys, ["after-0", "after-1", "given-up-0"]);
        let mut sorted = groups.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert!(intact);
    }

    /// SQLite may roll the whole transaction back under the writer (a full disk, an I/O
    /// error, in any statement, even a read): the batch then fails as a whole, and no later
    /// change slips a write in without its audit record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_lost_under_the_writer_fails_its_batch_and_keeps_nothing() {
        let (_dir, store) = store().await;
        let first = change(&store, "a", event("a")).await;
        let lost = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                // What SQLite does by itself on SQLITE_FULL or SQLITE_IOERR.
                sqlx::raw_sql("ROLLBACK").execute(tx.q().0).await.unwrap();
                tx.rollback().await
            })
        };
        queued().await;
        let later = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await?;
                sqlx::query("INSERT INTO t (k) VALUES ('e')")
                    .execute(tx.w().await?.0)
                    .await?;
                tx.audit(Timestamp::from_millis(1_000), None, &event("e"))
                    .await?;
                tx.commit().await
            })
        };
        queued().await;
        let first = first.commit().await;
        let lost = lost.await.unwrap();
        let later = later.await.unwrap();
        assert!(first.is_err(), "{first:?}");
        assert!(lost.is_err(), "{lost:?}");
        assert!(later.is_err(), "{later:?}");
        let (keys, groups, intact) = committed(&store).await;
        assert!(keys.is_empty(), "{keys:?}");
        assert!(groups.is_empty(), "{groups:?}");
        assert!(intact);
        change(&store, "b", event("b"))
            .await
            .commit()
            .await
            .unwrap();
        let (keys, groups, intact) = committed(&store).await;
        assert_eq!((keys, groups), (vec!["b".to_owned()], vec!["b".to_owned()]));
        assert!(intact);
    }

    /// A change that carries on after its batch failed under it cannot add records that do not
    /// continue the chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_that_carries_on_after_its_batch_failed_keeps_nothing() {
        let (_dir, store) = store().await;
        let member = change(&store, "m", event("m")).await;
        let stubborn = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                tx.audit(Timestamp::from_millis(1_000), None, &event("a"))
                    .await
                    .unwrap();
                // The transaction goes under the writer; the change's next write step fails
                // the batch, and the change ignores that, audits again and commits.
                sqlx::raw_sql("ROLLBACK").execute(tx.q().0).await.unwrap();
                assert!(tx.w().await.is_err());
                tx.audit(Timestamp::from_millis(1_000), None, &event("a2"))
                    .await
                    .unwrap();
                tx.commit().await
            })
        };
        queued().await;
        let member = member.commit().await;
        let stubborn = stubborn.await.unwrap();
        assert!(member.is_err(), "{member:?}");
        assert!(stubborn.is_err(), "{stubborn:?}");
        let (keys, groups, intact) = committed(&store).await;
        assert!(keys.is_empty() && groups.is_empty(), "{keys:?} {groups:?}");
        assert!(intact);
        change(&store, "after", event("after"))
            .await
            .commit()
            .await
            .unwrap();
        assert!(committed(&store).await.2);
    }

    /// A change that only read waits for the batch it may have read from.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_of_a_pending_batch_learns_its_outcome() {
        let (_dir, store) = store().await;
        refuse_bad(&store).await;
        let bad = change(&store, "bad", event("bad")).await;
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let seen: Vec<String> = sqlx::query_scalar("SELECT k FROM t")
                    .fetch_all(tx.q().0)
                    .await
                    .unwrap();
                (seen, tx.commit().await)
            })
        };
        queued().await;
        assert!(bad.commit().await.is_err());
        let (seen, outcome) = reader.await.unwrap();
        // It saw the write that then failed, and is told so.
        assert_eq!(seen, ["bad"]);
        assert!(outcome.is_err(), "{outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_without_an_event_are_refused_and_undone() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        sqlx::query("INSERT INTO t (k) VALUES ('x')")
            .execute(tx.w().await.unwrap().0)
            .await
            .unwrap();
        assert!(matches!(tx.commit().await, Err(StoreError::Unaudited)));
        let mut tx = store.begin_bookkeeping().await.unwrap();
        assert!(matches!(
            tx.audit(Timestamp::from_millis(1), None, &event("x")).await,
            Err(StoreError::Bookkeeping)
        ));
        drop(tx);
        let (keys, groups, _) = committed(&store).await;
        assert!(keys.is_empty() && groups.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_store_commits_what_was_pending_and_refuses_more() {
        let (_dir, store) = store().await;
        change(&store, "a", event("a"))
            .await
            .commit()
            .await
            .unwrap();
        store.close().await;
        assert!(matches!(store.begin().await, Err(StoreError::Closed)));
    }
}

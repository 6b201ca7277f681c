//! Verifying a SQLite store's whole audit chain fast.
//!
//! [`Q::audit`](crate::Q::audit) reads pages through sqlx's `Any` driver, which converts every
//! value of every row into a `String` of its own: about 4 s per million records, most of
//! verification's time. [`verify_sqlite`] instead opens a read-only connection of sqlx's native
//! SQLite driver on the same file. The driver steps SQLite on its own worker thread and hands
//! over rows one at a time; each row is checked where it lies (its text borrowed, not copied
//! into a [`Record`](warrant_audit::Record)) while the worker reads the next ones, so reading
//! and hashing overlap on two cores.
//!
//! Two things keep the threads from slowing each other down (without them a million records
//! took 2.5 to 5 s instead of 1.3 s on two idle cores):
//!
//! - The rows come in pages of 2,000, each of which fits in the driver's row buffer, so the
//!   worker reads a whole page without waiting for the checks. (One statement over the whole
//!   chain with a small buffer makes the two threads wake each other at nearly every row.)
//! - A page's rows are dropped together once the page is read, while the worker waits for the
//!   next query. Every value of a row is allocated by the worker; freeing them on this thread
//!   while the worker allocates makes both fight over the allocator's locks at every row.
//!
//! The pages and the head are read in one transaction: one snapshot, so records committed
//! meanwhile are neither half seen nor taken for an added tail.
//!
//! PostgreSQL stores keep the `Any` path: this module is for SQLite only.

use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{Connection, Row};
use warrant_audit::chain::RecordRef;
use warrant_audit::{Verifier, VerifyReport};

use crate::Result;

/// Records per page (about 2 MB of rows).
const PAGE: usize = 2_000;

/// Checks every record after `after_seq` of the SQLite database at `path` with `verifier`
/// (already holding its checkpoints), in `seq` order, and finishes it against the head recorded
/// in the same snapshot. The report is the one [`Verifier::push`] over
/// [`Q::audit`](crate::Q::audit)'s pages would give.
pub async fn verify_sqlite(
    path: &Path,
    after_seq: i64,
    verifier: Verifier,
) -> Result<VerifyReport> {
    verify_in_pages(path, after_seq, verifier, PAGE).await
}

/// [`verify_sqlite`] with pages of `page` records (the tests use small ones).
async fn verify_in_pages(
    path: &Path,
    after_seq: i64,
    mut verifier: Verifier,
    page: usize,
) -> Result<VerifyReport> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10))
        // The page and the message that ends it.
        .row_buffer_size(page + 1);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let mut tx = conn.begin().await?;
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let head: (i64, String) = (head.try_get(0)?, head.try_get(1)?);
    let mut after = after_seq;
    let mut held = Vec::with_capacity(page);
    'pages: loop {
        let mut rows = sqlx::query(
            "SELECT seq, at, actor, kind, data, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(page as i64)
        .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let record = fields(&row)?;
            after = record.seq;
            if !verifier.push_ref(record) {
                break 'pages;
            }
            held.push(row);
        }
        drop(rows);
        let full = held.len() == page;
        // The worker is idle now: freeing the page cannot contend with its allocations.
        held.clear();
        if !full {
            break;
        }
    }
    tx.rollback().await?;
    conn.close().await?;
    Ok(verifier.finish(Some((head.0, &head.1))))
}

/// A row's fields, by position in the `SELECT` above.
fn fields(row: &SqliteRow) -> Result<RecordRef<'_>> {
    Ok(RecordRef {
        seq: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        kind: row.try_get(3)?,
        data: row.try_get(4)?,
        prev_hash: row.try_get(5)?,
        hash: row.try_get(6)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use sqlx::Executor;
    use warrant_audit::checkpoint::{AuditKey, Checkpoint};
    use warrant_audit::{Event, record_hash};
    use warrant_core::Timestamp;

    use super::*;
    use crate::{AuditQuery, Store};

    const RECORDS: i64 = 25;

    /// A store of [`RECORDS`] records (1, 4, 7, … without an actor), signed checkpoints at 8
    /// and 22, and the audit key.
    async fn store(dir: &Path) -> (Store, Vec<Checkpoint>, AuditKey) {
        let store = Store::open_sqlite(dir).await.unwrap();
        for n in 0..RECORDS {
            let mut tx = store.begin().await.unwrap();
            let actor = (n % 3 != 0).then_some("alice");
            let event = Event::GrantRevoked {
                grant_id: format!("g{n}"),
                identity: "bob".into(),
                target: "web-1".into(),
                role: "root".into(),
                reason: "done \"é\"".into(),
            };
            tx.audit(Timestamp::from_millis(1_000 + n), actor, &event)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let key = AuditKey::generate().unwrap();
        let checkpoints = [8, 22]
            .into_iter()
            .map(|seq| key.checkpoint(seq, &stored_hash_of(&store, seq), 5_000))
            .collect::<Vec<_>>();
        (store, checkpoints, key)
    }

    fn stored_hash_of(store: &Store, seq: i64) -> String {
        let path = store.sqlite_path().unwrap().to_owned();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query_scalar("SELECT hash FROM audit WHERE seq = $1")
                    .bind(seq)
                    .fetch_one(&mut db)
                    .await
                    .unwrap()
            })
        })
        .join()
        .unwrap()
    }

    /// What verification said before this module: the head first, then pages through `Any`.
    async fn through_pages(store: &Store, after: i64, mut v: Verifier) -> VerifyReport {
        let mut r = store.read().await.unwrap();
        let head = r.q().audit_head().await.unwrap();
        let mut after = after;
        loop {
            let page = r
                .q()
                .audit(&AuditQuery {
                    after_seq: after,
                    limit: 7,
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            if !page.iter().all(|rec| v.push(rec)) {
                break;
            }
        }
        v.finish(Some((head.0, &head.1)))
    }

    /// Tampers with a fresh store through `sql`, then checks that [`verify_sqlite`] reports
    /// exactly what the pages do, and returns that report.
    async fn check(sql: &str, anchor: Option<i64>, key: Option<&AuditKey>) -> VerifyReport {
        let dir = tempfile::tempdir().unwrap();
        let (store, checkpoints, own_key) = store(dir.path()).await;
        let key = key.unwrap_or(&own_key);
        let path = store.sqlite_path().unwrap().to_owned();
        let anchor = anchor.map(|seq| (seq, stored_hash_of(&store, seq)));
        let mut db = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        // A chain rewritten from record 3 on (every link and hash recomputed, head moved).
        if sql == "REWRITE" {
            let mut prev = stored_hash_of(&store, 2);
            for seq in 3..=RECORDS {
                let (at, actor, kind): (i64, Option<String>, String) =
                    sqlx::query_as("SELECT at, actor, kind FROM audit WHERE seq = $1")
                        .bind(seq)
                        .fetch_one(&mut db)
                        .await
                        .unwrap();
                let data = format!("{{\"n\":{seq}}}");
                let hash = record_hash(&prev, seq, at, actor.as_deref(), &kind, &data);
                sqlx::query("UPDATE audit SET data = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
                    .bind(&data)
                    .bind(&prev)
                    .bind(&hash)
                    .bind(seq)
                    .execute(&mut db)
                    .await
                    .unwrap();
                prev = hash;
            }
            sqlx::query("UPDATE audit_head SET hash = $1")
                .bind(&prev)
                .execute(&mut db)
                .await
                .unwrap();
        } else {
            db.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                .await
                .unwrap();
        }
        db.close().await.unwrap();

        let public = key.public_base64();
        let verifier = || {
            let v = match &anchor {
                Some((seq, hash)) => Verifier::starting_at(seq + 1, hash),
                None => Verifier::new(),
            };
            v.with_checkpoints(checkpoints.clone(), Some(&public))
        };
        let after = anchor.as_ref().map_or(0, |a| a.0);
        let expected = through_pages(&store, after, verifier()).await;
        let fast = verify_sqlite(&path, after, verifier()).await.unwrap();
        assert_eq!(fast, expected, "{sql}");
        // Across pages, one of which ends right at the chain's end (25 = 5 × 5).
        for page in [4, 5] {
            let paged = verify_in_pages(&path, after, verifier(), page)
                .await
                .unwrap();
            assert_eq!(paged, expected, "{sql}, pages of {page}");
        }
        fast
    }

    async fn broken(sql: &str) -> (i64, String) {
        let r = check(sql, None, None).await;
        assert!(!r.intact, "{sql}: {r:?}");
        (r.first_broken.unwrap(), r.problem.unwrap())
    }

    #[tokio::test]
    async fn an_intact_chain_verifies_with_its_checkpoints() {
        let r = check("SELECT 1", None, None).await;
        assert!(r.intact, "{r:?}");
        assert_eq!((r.records, r.checkpoints), (25, 2));
    }

    #[tokio::test]
    async fn every_kind_of_tampering_is_reported_as_through_the_pages() {
        let cases = [
            (
                "UPDATE audit SET data = replace(data, 'bob', 'eve') WHERE seq = 7",
                7,
                "modified",
            ),
            ("UPDATE audit SET actor = NULL WHERE seq = 8", 8, "modified"),
            (
                "UPDATE audit SET actor = 'alice' WHERE seq = 10",
                10,
                "modified",
            ),
            ("UPDATE audit SET at = at + 1 WHERE seq = 7", 7, "modified"),
            (
                "UPDATE audit SET hash = upper(hash) WHERE seq = 7",
                7,
                "modified",
            ),
            (
                "UPDATE audit SET prev_hash = hash WHERE seq = 7",
                7,
                "prev_hash",
            ),
            ("DELETE FROM audit WHERE seq = 7", 7, "deleted or reordered"),
            (
                "UPDATE audit SET seq = -seq WHERE seq IN (5, 9); \
                 UPDATE audit SET seq = 14 + seq WHERE seq IN (-5, -9)",
                5,
                "prev_hash",
            ),
            (
                "DELETE FROM audit WHERE seq = 7; UPDATE audit SET seq = seq - 1 WHERE seq > 7",
                7,
                "prev_hash",
            ),
            (
                "DELETE FROM audit WHERE seq > 23",
                24,
                "removed or added at the end",
            ),
            (
                "DELETE FROM audit WHERE seq > 20; \
                 UPDATE audit_head SET seq = 20, hash = (SELECT hash FROM audit WHERE seq = 20)",
                21,
                "cut off",
            ),
            (
                "INSERT INTO audit (seq, at, actor, kind, data, prev_hash, hash) \
                 SELECT 26, at, actor, kind, data, hash, hash FROM audit WHERE seq = 25",
                26,
                "modified",
            ),
            ("REWRITE", 8, "rewritten"),
        ];
        for (sql, at, problem) in cases {
            let (first, text) = broken(sql).await;
            assert_eq!(first, at, "{sql}: {text}");
            assert!(text.contains(problem), "{sql}: {text}");
        }
    }

    #[tokio::test]
    async fn a_pruned_chain_verifies_from_its_anchor() {
        let r = check("DELETE FROM audit WHERE seq <= 5", Some(5), None).await;
        assert!(r.intact, "{r:?}");
        assert_eq!(r.records, 20);
        // Rows left before the anchor are not read, as through the pages.
        let r = check("SELECT 1", Some(5), None).await;
        assert!(r.intact, "{r:?}");
        // One record too many deleted: the anchor no longer links.
        let r = check("DELETE FROM audit WHERE seq <= 6", Some(5), None).await;
        assert_eq!(r.first_broken, Some(6), "{r:?}");
    }

    #[tokio::test]
    async fn checkpoints_under_another_key_are_a_break() {
        let other = AuditKey::generate().unwrap();
        let r = check("SELECT 1", None, Some(&other)).await;
        assert_eq!(r.first_broken, Some(8), "{r:?}");
        assert!(r.problem.unwrap().contains("not valid"));
    }
}

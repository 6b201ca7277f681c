//! Storage for the audit chain's signed checkpoints, and the look-ups verification and export
//! need.

use sqlx::Row;
use warrant_audit::Record;
use warrant_audit::checkpoint::Checkpoint;

use crate::{Q, Result, Store, W};

impl Store {
    /// Keeps a signed checkpoint of the chain (a second one for the same position is ignored).
    ///
    /// Written outside [`crate::WriteTx`] and without an audit event: a checkpoint is a
    /// statement about the chain, not a change anyone is held to account for, and an event for
    /// it would move the head it signs.
    pub async fn add_audit_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        let mut tx = self.begin_bookkeeping().await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, signature) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.at_ms)
        .bind(&c.signature)
        .execute(tx.w().await?.0)
        .await?;
        tx.commit().await
    }
}

impl Store {
    /// Moves a sink's cursor to `seq` (the last record it delivered). Outside
    /// [`crate::WriteTx`] and unaudited, like checkpoints: delivery is not a change of state
    /// anyone is held to account for, and an event per delivery would feed itself.
    pub async fn set_sink_cursor(&self, name: &str, seq: i64, now_ms: i64) -> Result<()> {
        let mut tx = self.begin_bookkeeping().await?;
        sqlx::query(
            "INSERT INTO audit_sink_cursors (name, seq, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET seq = $2, updated_at = $3",
        )
        .bind(name)
        .bind(seq)
        .bind(now_ms)
        .execute(tx.w().await?.0)
        .await?;
        tx.commit().await
    }
}

impl W<'_> {
    /// Removes every record up to `anchor.seq` and makes `anchor` (a signed checkpoint of the
    /// last removed record) where the chain now starts. Part of the retention's transaction,
    /// which audits it.
    pub async fn prune_audit(&mut self, after: i64, anchor: &Checkpoint) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE seq > $1 AND seq <= $2")
            .bind(after)
            .bind(anchor.seq)
            .execute(&mut *self.0)
            .await?;
        sqlx::query(
            "INSERT INTO audit_anchor (id, seq, hash, at, signature) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, at = $3, signature = $4",
        )
        .bind(anchor.seq)
        .bind(&anchor.hash)
        .bind(anchor.at_ms)
        .bind(&anchor.signature)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Q<'_> {
    /// Where the chain starts after pruning: a signed checkpoint of the last pruned record.
    pub async fn audit_anchor(&mut self) -> Result<Option<Checkpoint>> {
        let row = sqlx::query("SELECT seq, hash, at, signature FROM audit_anchor WHERE id = 1")
            .fetch_optional(&mut *self.0)
            .await?;
        row.as_ref().map(checkpoint).transpose()
    }

    /// The last record made before `at_ms` (None: there is none).
    pub async fn last_audit_seq_before(&mut self, at_ms: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MAX(seq) FROM audit WHERE at < $1")
                .bind(at_ms)
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    /// A sink's cursor: the last record it delivered (None: it never delivered any).
    pub async fn sink_cursor(&mut self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM audit_sink_cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *self.0)
                .await?,
        )
    }

    /// Every stored checkpoint, by position.
    pub async fn audit_checkpoints(&mut self) -> Result<Vec<Checkpoint>> {
        let rows =
            sqlx::query("SELECT seq, hash, at, signature FROM audit_checkpoints ORDER BY seq")
                .fetch_all(&mut *self.0)
                .await?;
        rows.iter().map(checkpoint).collect()
    }

    /// The last checkpoint, if any.
    pub async fn last_audit_checkpoint(&mut self) -> Result<Option<Checkpoint>> {
        let row = sqlx::query(
            "SELECT seq, hash, at, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(checkpoint).transpose()
    }

    /// The position of the first record at or after `at_ms` (None: there is none).
    pub async fn first_audit_seq_since(&mut self, at_ms: i64) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT MIN(seq) FROM audit WHERE at >= $1")
                .bind(at_ms)
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    /// The record at `seq`, if any.
    pub async fn audit_record(&mut self, seq: i64) -> Result<Option<Record>> {
        let row = sqlx::query(
            "SELECT seq, at, actor, kind, data, prev_hash, hash FROM audit WHERE seq = $1",
        )
        .bind(seq)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(crate::queries::record).transpose()
    }
}

/// A checkpoint (or the anchor) from its row: seq, hash, at, signature.
fn checkpoint(r: &sqlx::any::AnyRow) -> Result<Checkpoint> {
    Ok(Checkpoint {
        seq: r.try_get(0)?,
        hash: r.try_get(1)?,
        at_ms: r.try_get(2)?,
        signature: r.try_get(3)?,
    })
}

//! Gateway sessions (live and ended).

use sqlx::Row;
use sqlx::any::AnyRow;
use warrant_core::Timestamp;

use crate::Result;
use crate::queries::{Q, W};

/// One gateway session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySessionRow {
    /// Its id.
    pub id: String,
    /// `ssh` or `postgres`.
    pub kind: String,
    /// Who.
    pub identity: String,
    /// Where.
    pub target: String,
    /// As which upstream account.
    pub account: String,
    /// Under which grant.
    pub grant_id: String,
    /// Started.
    pub started_at: Timestamp,
    /// Ended (None while live, or when the server stopped under it).
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Bytes from the person.
    pub bytes_up: i64,
    /// Bytes to the person.
    pub bytes_down: i64,
    /// The recording's file name under the recordings directory.
    pub recording: Option<String>,
    /// Its SHA-256 (from the signed manifest).
    pub sha256: Option<String>,
}

const COLUMNS: &str = "id, kind, identity, target, account, grant_id, started_at, ended_at, \
    end_reason, bytes_up, bytes_down, recording, sha256";

fn session(r: &AnyRow) -> Result<GatewaySessionRow> {
    let ended: Option<i64> = r.try_get("ended_at")?;
    Ok(GatewaySessionRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        identity: r.try_get("identity")?,
        target: r.try_get("target")?,
        account: r.try_get("account")?,
        grant_id: r.try_get("grant_id")?,
        started_at: Timestamp::from_millis(r.try_get("started_at")?),
        ended_at: ended.map(Timestamp::from_millis),
        end_reason: r.try_get("end_reason")?,
        bytes_up: r.try_get("bytes_up")?,
        bytes_down: r.try_get("bytes_down")?,
        recording: r.try_get("recording")?,
        sha256: r.try_get("sha256")?,
    })
}

impl Q<'_> {
    /// One session.
    pub async fn gateway_session(&mut self, id: &str) -> Result<Option<GatewaySessionRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM gateway_sessions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(session).transpose()
    }

    /// The ids of sessions not recorded as ended.
    pub async fn unended_gateway_sessions(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT id FROM gateway_sessions WHERE ended_at IS NULL ORDER BY id",
            )
            .fetch_all(&mut *self.0)
            .await?,
        )
    }

    /// The most recent sessions, newest first.
    pub async fn gateway_sessions(&mut self, limit: i64) -> Result<Vec<GatewaySessionRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM gateway_sessions ORDER BY started_at DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(session)
        .collect()
    }
}

impl W<'_> {
    /// Records a session that started.
    pub async fn insert_gateway_session(&mut self, s: &GatewaySessionRow) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO gateway_sessions ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(&s.id)
        .bind(&s.kind)
        .bind(&s.identity)
        .bind(&s.target)
        .bind(&s.account)
        .bind(&s.grant_id)
        .bind(s.started_at.millis())
        .bind(s.ended_at.map(Timestamp::millis))
        .bind(s.end_reason.as_deref())
        .bind(s.bytes_up)
        .bind(s.bytes_down)
        .bind(s.recording.as_deref())
        .bind(s.sha256.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Records the end of a session.
    pub async fn end_gateway_session(&mut self, s: &GatewaySessionRow) -> Result<()> {
        sqlx::query(
            "UPDATE gateway_sessions SET ended_at = $2, end_reason = $3, bytes_up = $4, \
             bytes_down = $5, sha256 = $6 WHERE id = $1",
        )
        .bind(&s.id)
        .bind(s.ended_at.map(Timestamp::millis))
        .bind(s.end_reason.as_deref())
        .bind(s.bytes_up)
        .bind(s.bytes_down)
        .bind(s.sha256.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }
}

//! Directory sync bookkeeping: when an identity was first found missing from the source that
//! owns it (`identities.missing_since`), which starts its grace period before it is disabled.

use sqlx::Row;
use warrant_core::{Name, Source, Timestamp};

use crate::queries::{Q, W};
use crate::{Result, StoreError};

impl Q<'_> {
    /// Every identity owned by `source`, by name, with when it was first found missing from that
    /// source (`None`: it was present at the last sync).
    pub async fn missing_since_by_source(
        &mut self,
        source: Source,
    ) -> Result<Vec<(Name, Option<Timestamp>)>> {
        let rows = sqlx::query(
            "SELECT name, missing_since FROM identities WHERE source = $1 ORDER BY name",
        )
        .bind(source.as_str())
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| {
                let n: String = r.try_get("name")?;
                let since: Option<i64> = r.try_get("missing_since")?;
                let n = Name::new(n).map_err(|e| StoreError::Corrupt {
                    table: "identities",
                    column: "name",
                    detail: e.to_string(),
                })?;
                Ok((n, since.map(Timestamp::from_millis)))
            })
            .collect()
    }
}

impl W<'_> {
    /// Records that an identity went missing from its source at `since`, unless already
    /// recorded; returns whether it was newly recorded.
    pub async fn mark_missing(&mut self, name: &str, since: Timestamp) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE identities SET missing_since = $2 WHERE name = $1 AND missing_since IS NULL",
        )
        .bind(name)
        .bind(since.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Forgets that an identity was missing (it is back in its source); returns whether it was
    /// marked.
    pub async fn clear_missing(&mut self, name: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE identities SET missing_since = NULL WHERE name = $1 AND missing_since IS NOT NULL",
        )
        .bind(name)
        .execute(&mut *self.0)
        .await?;
        Ok(r.rows_affected() > 0)
    }
}

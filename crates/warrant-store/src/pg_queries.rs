//! Target admin secrets (sealed by the vault) and the temporary database roles of grants.

use sqlx::Row;
use warrant_core::Timestamp;

use crate::Result;
use crate::queries::{Q, W};

/// A temporary database role made for a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCredentialRow {
    /// The grant.
    pub grant_id: String,
    /// The target it lives on.
    pub target: String,
    /// The role's name there.
    pub role_name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was dropped, once it was.
    pub dropped_at: Option<Timestamp>,
}

impl Q<'_> {
    /// A target's sealed admin secret.
    pub async fn target_secret(&mut self, target: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM target_secrets WHERE target = $1")
                .bind(target)
                .fetch_optional(&mut *self.0)
                .await?,
        )
    }

    /// Every target's sealed admin secret, as (target, sealed).
    pub async fn target_secrets(&mut self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT target, sealed FROM target_secrets ORDER BY target")
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The temporary role of a grant, if one was made.
    pub async fn db_credential(&mut self, grant_id: &str) -> Result<Option<DbCredentialRow>> {
        let row = sqlx::query(
            "SELECT grant_id, target, role_name, created_at, dropped_at FROM db_credentials WHERE grant_id = $1",
        )
        .bind(grant_id)
        .fetch_optional(&mut *self.0)
        .await?;
        row.map(|r| {
            let dropped: Option<i64> = r.try_get("dropped_at")?;
            Ok(DbCredentialRow {
                grant_id: r.try_get("grant_id")?,
                target: r.try_get("target")?,
                role_name: r.try_get("role_name")?,
                created_at: Timestamp::from_millis(r.try_get("created_at")?),
                dropped_at: dropped.map(Timestamp::from_millis),
            })
        })
        .transpose()
    }

    /// The temporary roles the PostgreSQL gateway made for a grant and has not dropped, as
    /// (target, role name).
    pub async fn gateway_db_roles(&mut self, grant_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT target, role_name FROM gateway_db_roles WHERE grant_id = $1 AND dropped_at IS NULL ORDER BY created_at",
        )
        .bind(grant_id)
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl W<'_> {
    /// Records a temporary role the PostgreSQL gateway made for a grant.
    pub async fn insert_gateway_db_role(
        &mut self,
        grant_id: &str,
        target: &str,
        role_name: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO gateway_db_roles (role_name, grant_id, target, created_at, dropped_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(role_name)
        .bind(grant_id)
        .bind(target)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Stores (or replaces) a target's sealed admin secret.
    pub async fn set_target_secret(
        &mut self,
        target: &str,
        sealed: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO target_secrets (target, sealed, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (target) DO UPDATE SET sealed = $2, updated_at = $3",
        )
        .bind(target)
        .bind(sealed)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Records a temporary role made for a grant.
    pub async fn insert_db_credential(
        &mut self,
        grant_id: &str,
        target: &str,
        role_name: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO db_credentials (grant_id, target, role_name, created_at, dropped_at) VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(grant_id)
        .bind(target)
        .bind(role_name)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Records that a grant's temporary role `role_name` was dropped (the one handed out, or
    /// one of the gateway's).
    pub async fn mark_db_credential_dropped(
        &mut self,
        grant_id: &str,
        role_name: &str,
        now: Timestamp,
    ) -> Result<()> {
        for statement in [
            "UPDATE db_credentials SET dropped_at = $3 WHERE grant_id = $1 AND role_name = $2",
            "UPDATE gateway_db_roles SET dropped_at = $3 WHERE grant_id = $1 AND role_name = $2",
        ] {
            sqlx::query(statement)
                .bind(grant_id)
                .bind(role_name)
                .bind(now.millis())
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }
}

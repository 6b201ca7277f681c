//! The SSH user CA's key (sealed) and the certificates it issued (for the KRL).

use sqlx::Row;
use warrant_core::Timestamp;

use crate::Result;
use crate::queries::{Q, W};

impl Q<'_> {
    /// The CA: (sealed private key, public key line), if created.
    pub async fn ssh_ca(&mut self) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT sealed_key, public_key FROM ssh_ca WHERE id = 1")
            .fetch_optional(&mut *self.0)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The next certificate serial (serials start at 1 and never repeat).
    pub async fn next_ssh_serial(&mut self) -> Result<i64> {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(serial) FROM ssh_certs")
            .fetch_one(&mut *self.0)
            .await?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// Serials of certificates still within their validity whose grant was revoked: the KRL.
    pub async fn revoked_ssh_serials(&mut self, now: Timestamp) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT c.serial FROM ssh_certs c JOIN grants g ON g.id = c.grant_id \
             WHERE g.revoked_at IS NOT NULL AND c.valid_before > $1 ORDER BY c.serial",
        )
        .bind(now.millis())
        .fetch_all(&mut *self.0)
        .await?)
    }
}

impl W<'_> {
    /// Stores the CA (once).
    pub async fn insert_ssh_ca(
        &mut self,
        sealed: &str,
        public: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ssh_ca (id, sealed_key, public_key, created_at) VALUES (1, $1, $2, $3)",
        )
        .bind(sealed)
        .bind(public)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Replaces the CA's sealed key (key rotation of the vault).
    pub async fn set_ssh_ca_sealed(&mut self, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE ssh_ca SET sealed_key = $1 WHERE id = 1")
            .bind(sealed)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Records an issued certificate.
    pub async fn insert_ssh_cert(
        &mut self,
        serial: i64,
        grant_id: &str,
        identity: &str,
        key_id: &str,
        valid_before: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ssh_certs (serial, grant_id, identity, key_id, valid_before, issued_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(serial)
        .bind(grant_id)
        .bind(identity)
        .bind(key_id)
        .bind(valid_before.millis())
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }
}

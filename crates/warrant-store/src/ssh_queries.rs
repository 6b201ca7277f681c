//! The SSH user CA's key (sealed), the certificates it issued (for the KRL), and people's SSH
//! public keys (for the gateway).

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

/// A person's registered SSH public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRow {
    /// Its id.
    pub id: String,
    /// Whose.
    pub identity: String,
    /// SHA-256 fingerprint (`SHA256:…`), unique.
    pub fingerprint: String,
    /// The OpenSSH public key line (algorithm and key; no comment).
    pub public_key: String,
    /// The person's label (the key's comment, or what they chose).
    pub label: String,
    /// Registered.
    pub created_at: Timestamp,
    /// Last used to sign in to the gateway.
    pub last_used_at: Option<Timestamp>,
}

fn ssh_key(r: &sqlx::any::AnyRow) -> Result<SshKeyRow> {
    let used: Option<i64> = r.try_get("last_used_at")?;
    Ok(SshKeyRow {
        id: r.try_get("id")?,
        identity: r.try_get("identity")?,
        fingerprint: r.try_get("fingerprint")?,
        public_key: r.try_get("public_key")?,
        label: r.try_get("label")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        last_used_at: used.map(Timestamp::from_millis),
    })
}

impl Q<'_> {
    /// The key with this fingerprint, whoever holds it.
    pub async fn ssh_key_by_fingerprint(&mut self, fingerprint: &str) -> Result<Option<SshKeyRow>> {
        let row = sqlx::query(
            "SELECT id, identity, fingerprint, public_key, label, created_at, last_used_at \
             FROM ssh_keys WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(ssh_key).transpose()
    }

    /// An identity's keys, oldest first.
    pub async fn ssh_keys_of(&mut self, identity: &str) -> Result<Vec<SshKeyRow>> {
        sqlx::query(
            "SELECT id, identity, fingerprint, public_key, label, created_at, last_used_at \
             FROM ssh_keys WHERE identity = $1 ORDER BY created_at, id",
        )
        .bind(identity)
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(ssh_key)
        .collect()
    }
}

impl W<'_> {
    /// Registers a key.
    pub async fn insert_ssh_key(&mut self, k: &SshKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ssh_keys (id, identity, fingerprint, public_key, label, created_at, last_used_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&k.id)
        .bind(&k.identity)
        .bind(&k.fingerprint)
        .bind(&k.public_key)
        .bind(&k.label)
        .bind(k.created_at.millis())
        .bind(k.last_used_at.map(Timestamp::millis))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Removes one of an identity's keys; true if it was there.
    pub async fn delete_ssh_key(&mut self, identity: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM ssh_keys WHERE identity = $1 AND id = $2")
            .bind(identity)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

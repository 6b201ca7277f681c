//! Vaulted accounts (sealed secrets, journaled rotation), their checkouts, and Warrant's own
//! sealed keys (the managed SSH key, the recording key).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use warrant_core::Timestamp;

use crate::Result;
use crate::queries::{Q, W};

/// A shared privileged account whose secret Warrant keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultedAccountRow {
    /// The target it lives on.
    pub target: String,
    /// The account's name there.
    pub name: String,
    /// The accountable group.
    pub owner: String,
    /// At most one open checkout at a time.
    pub exclusive: bool,
    /// Scheduled rotation period, if any.
    pub rotate_every_secs: Option<i64>,
    /// Rotate after every check-in.
    pub rotate_after_checkin: bool,
    /// The working secret, sealed.
    pub sealed: String,
    /// A rotation in progress: the new secret, sealed, kept until it is verified on the target.
    pub pending_sealed: Option<String>,
    /// The rotation in progress.
    pub rotation_id: Option<String>,
    /// The last journaled step of the rotation in progress.
    pub rotation_step: Option<String>,
    /// When a rotation is next due.
    pub rotation_due_at: Option<Timestamp>,
    /// Failed attempts of the current rotation.
    pub rotation_attempts: i64,
    /// When the secret last changed by rotation.
    pub last_rotated_at: Option<Timestamp>,
    /// The last rotation failure (never a secret).
    pub last_error: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// One checkout of a vaulted account under a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRow {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// The grant it is under.
    pub grant_id: String,
    /// Who holds it.
    pub identity: String,
    /// When.
    pub checked_out_at: Timestamp,
    /// When it was returned (by hand or at the grant's end).
    pub checked_in_at: Option<Timestamp>,
    /// How many times the secret was revealed under it.
    pub reveals: i64,
}

const ACCOUNT_COLUMNS: &str = "target, name, owner, exclusive, rotate_every_secs, \
    rotate_after_checkin, sealed, pending_sealed, rotation_id, rotation_step, rotation_due_at, \
    rotation_attempts, last_rotated_at, last_error, created_at, updated_at";

const CHECKOUT_COLUMNS: &str =
    "id, target, account, grant_id, identity, checked_out_at, checked_in_at, reveals";

fn ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    let v: Option<i64> = row.try_get(col)?;
    Ok(v.map(Timestamp::from_millis))
}

fn account(row: &AnyRow) -> Result<VaultedAccountRow> {
    let exclusive: i64 = row.try_get("exclusive")?;
    let after: i64 = row.try_get("rotate_after_checkin")?;
    Ok(VaultedAccountRow {
        target: row.try_get("target")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        exclusive: exclusive != 0,
        rotate_every_secs: row.try_get("rotate_every_secs")?,
        rotate_after_checkin: after != 0,
        sealed: row.try_get("sealed")?,
        pending_sealed: row.try_get("pending_sealed")?,
        rotation_id: row.try_get("rotation_id")?,
        rotation_step: row.try_get("rotation_step")?,
        rotation_due_at: ts(row, "rotation_due_at")?,
        rotation_attempts: row.try_get("rotation_attempts")?,
        last_rotated_at: ts(row, "last_rotated_at")?,
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

fn checkout(row: &AnyRow) -> Result<CheckoutRow> {
    Ok(CheckoutRow {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        account: row.try_get("account")?,
        grant_id: row.try_get("grant_id")?,
        identity: row.try_get("identity")?,
        checked_out_at: Timestamp::from_millis(row.try_get("checked_out_at")?),
        checked_in_at: ts(row, "checked_in_at")?,
        reveals: row.try_get("reveals")?,
    })
}

impl Q<'_> {
    /// One vaulted account.
    pub async fn vaulted_account(
        &mut self,
        target: &str,
        name: &str,
    ) -> Result<Option<VaultedAccountRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM vaulted_accounts WHERE target = $1 AND name = $2"
        )))
        .bind(target)
        .bind(name)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(account).transpose()
    }

    /// Every vaulted account, by target and name.
    pub async fn vaulted_accounts(&mut self) -> Result<Vec<VaultedAccountRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM vaulted_accounts ORDER BY target, name"
        )))
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(account)
        .collect()
    }

    /// Accounts with a rotation in progress or due by `now`.
    pub async fn accounts_to_rotate(&mut self, now: Timestamp) -> Result<Vec<VaultedAccountRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM vaulted_accounts \
             WHERE pending_sealed IS NOT NULL OR rotation_due_at <= $1 ORDER BY target, name"
        )))
        .bind(now.millis())
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(account)
        .collect()
    }

    /// The earliest rotation due.
    pub async fn next_rotation_due(&mut self) -> Result<Option<Timestamp>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(rotation_due_at) FROM vaulted_accounts WHERE rotation_due_at IS NOT NULL",
        )
        .fetch_one(&mut *self.0)
        .await?;
        Ok(v.map(Timestamp::from_millis))
    }

    /// The open checkouts of an account (at most one when it is exclusive).
    pub async fn open_checkouts(&mut self, target: &str, name: &str) -> Result<Vec<CheckoutRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM account_checkouts \
             WHERE target = $1 AND account = $2 AND checked_in_at IS NULL ORDER BY checked_out_at"
        )))
        .bind(target)
        .bind(name)
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(checkout)
        .collect()
    }

    /// The open checkouts under a grant.
    pub async fn open_checkouts_of_grant(&mut self, grant_id: &str) -> Result<Vec<CheckoutRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM account_checkouts \
             WHERE grant_id = $1 AND checked_in_at IS NULL ORDER BY checked_out_at"
        )))
        .bind(grant_id)
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(checkout)
        .collect()
    }

    /// The most recent checkouts of an account, newest first.
    pub async fn checkouts(
        &mut self,
        target: &str,
        name: &str,
        limit: i64,
    ) -> Result<Vec<CheckoutRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHECKOUT_COLUMNS} FROM account_checkouts \
             WHERE target = $1 AND account = $2 ORDER BY checked_out_at DESC, id DESC LIMIT $3"
        )))
        .bind(target)
        .bind(name)
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?
        .iter()
        .map(checkout)
        .collect()
    }

    /// One of Warrant's own keys (the managed SSH key, the recording key): (sealed private
    /// key, public key), if made.
    pub async fn sealed_key(&mut self, name: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT sealed_key, public_key FROM sealed_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Every one of Warrant's own keys, as (name, sealed private key).
    pub async fn sealed_keys(&mut self) -> Result<Vec<(String, String)>> {
        sqlx::query("SELECT name, sealed_key FROM sealed_keys ORDER BY name")
            .fetch_all(&mut *self.0)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl W<'_> {
    /// Creates a vaulted account.
    pub async fn insert_vaulted_account(&mut self, a: &VaultedAccountRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO vaulted_accounts ({ACCOUNT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
        )))
        .bind(&a.target)
        .bind(&a.name)
        .bind(&a.owner)
        .bind(i64::from(a.exclusive))
        .bind(a.rotate_every_secs)
        .bind(i64::from(a.rotate_after_checkin))
        .bind(&a.sealed)
        .bind(a.pending_sealed.as_deref())
        .bind(a.rotation_id.as_deref())
        .bind(a.rotation_step.as_deref())
        .bind(a.rotation_due_at.map(Timestamp::millis))
        .bind(a.rotation_attempts)
        .bind(a.last_rotated_at.map(Timestamp::millis))
        .bind(a.last_error.as_deref())
        .bind(a.created_at.millis())
        .bind(a.updated_at.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Writes every mutable field of a vaulted account back (the engine changes the row it read
    /// under the writer lock).
    pub async fn update_vaulted_account(&mut self, a: &VaultedAccountRow) -> Result<()> {
        sqlx::query(
            "UPDATE vaulted_accounts SET owner = $3, exclusive = $4, rotate_every_secs = $5, \
             rotate_after_checkin = $6, sealed = $7, pending_sealed = $8, rotation_id = $9, \
             rotation_step = $10, rotation_due_at = $11, rotation_attempts = $12, \
             last_rotated_at = $13, last_error = $14, updated_at = $15 \
             WHERE target = $1 AND name = $2",
        )
        .bind(&a.target)
        .bind(&a.name)
        .bind(&a.owner)
        .bind(i64::from(a.exclusive))
        .bind(a.rotate_every_secs)
        .bind(i64::from(a.rotate_after_checkin))
        .bind(&a.sealed)
        .bind(a.pending_sealed.as_deref())
        .bind(a.rotation_id.as_deref())
        .bind(a.rotation_step.as_deref())
        .bind(a.rotation_due_at.map(Timestamp::millis))
        .bind(a.rotation_attempts)
        .bind(a.last_rotated_at.map(Timestamp::millis))
        .bind(a.last_error.as_deref())
        .bind(a.updated_at.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Deletes a vaulted account and its checkout history.
    pub async fn delete_vaulted_account(&mut self, target: &str, name: &str) -> Result<()> {
        for sql in [
            "DELETE FROM account_checkouts WHERE target = $1 AND account = $2",
            "DELETE FROM vaulted_accounts WHERE target = $1 AND name = $2",
        ] {
            sqlx::query(sql)
                .bind(target)
                .bind(name)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    /// Records a checkout.
    pub async fn insert_checkout(&mut self, c: &CheckoutRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO account_checkouts ({CHECKOUT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )))
        .bind(&c.id)
        .bind(&c.target)
        .bind(&c.account)
        .bind(&c.grant_id)
        .bind(&c.identity)
        .bind(c.checked_out_at.millis())
        .bind(c.checked_in_at.map(Timestamp::millis))
        .bind(c.reveals)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Checks a checkout in (if still open); true if it was.
    pub async fn check_in(&mut self, id: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE account_checkouts SET checked_in_at = $2 WHERE id = $1 AND checked_in_at IS NULL",
        )
        .bind(id)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts one reveal under a checkout.
    pub async fn count_reveal(&mut self, id: &str) -> Result<()> {
        sqlx::query("UPDATE account_checkouts SET reveals = reveals + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Stores one of Warrant's own keys (once).
    pub async fn insert_sealed_key(
        &mut self,
        name: &str,
        sealed: &str,
        public: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sealed_keys (name, sealed_key, public_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(sealed)
        .bind(public)
        .bind(now.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Replaces a key's sealed form (key rotation of the vault).
    pub async fn set_sealed_key(&mut self, name: &str, sealed: &str) -> Result<()> {
        sqlx::query("UPDATE sealed_keys SET sealed_key = $2 WHERE name = $1")
            .bind(name)
            .bind(sealed)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

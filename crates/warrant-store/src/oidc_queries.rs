//! Storage for OpenID Connect sign-in: pending logins (server-side login state between the
//! redirect to the provider and its callback) and identity look-ups by `externalId` and email.

use sqlx::Row;
use warrant_core::{Name, Source, Timestamp};

use crate::{Q, Result, Store, StoreError};

/// A login or ceremony to keep until its callback or answer.
#[derive(Debug, Clone, Copy)]
pub struct PendingLogin<'a> {
    /// Its id (random).
    pub id: &'a str,
    /// `oidc`, `webauthn-reg`, …
    pub kind: &'a str,
    /// What the callback needs (JSON).
    pub data: &'a str,
    /// When it is no longer accepted.
    pub expires_at: Timestamp,
    /// The identity it belongs to, when known: one per owner and kind.
    pub owner: Option<&'a str>,
}

impl Store {
    /// Keeps a pending login of `kind` under `id` until `expires_at`, after dropping every
    /// expired one and, when it has an `owner` (an identity), that owner's earlier one of the
    /// same kind: nobody holds more than one ceremony of a kind at a time. Returns how many
    /// unexpired logins of `kind` there are, this one included, or `None` (nothing stored)
    /// when there are already `max_live` of them (each kind has its own budget, so one kind
    /// cannot crowd out another).
    ///
    /// Written outside [`crate::WriteTx`] and without an audit event, like
    /// [`Store::touch_token`]: a started login changes no state anyone is held to account for
    /// (it grants nothing until its callback completes, which is audited), and anyone may start
    /// one, so auditing each would let unauthenticated callers grow the audit chain at will.
    pub async fn put_pending_login(
        &self,
        login: PendingLogin<'_>,
        now: Timestamp,
        max_live: i64,
    ) -> Result<Option<i64>> {
        let PendingLogin {
            id,
            kind,
            data,
            expires_at,
            owner,
        } = login;
        let mut tx = self.begin_bookkeeping().await?;
        sqlx::query("DELETE FROM pending_logins WHERE expires_at <= $1")
            .bind(now.millis())
            .execute(tx.w().await?.0)
            .await?;
        if let Some(o) = owner {
            sqlx::query("DELETE FROM pending_logins WHERE kind = $1 AND owner = $2")
                .bind(kind)
                .bind(o)
                .execute(tx.w().await?.0)
                .await?;
        }
        let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_logins WHERE kind = $1")
            .bind(kind)
            .fetch_one(tx.q().0)
            .await?;
        if live >= max_live {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO pending_logins (id, kind, data, expires_at, owner) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(kind)
        .bind(data)
        .bind(expires_at.millis())
        .bind(owner)
        .execute(tx.w().await?.0)
        .await?;
        tx.commit().await?;
        Ok(Some(live + 1))
    }

    /// How many pending logins of `kind` are stored (expired ones included until the next put).
    pub async fn count_pending_logins(&self, kind: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM pending_logins WHERE kind = $1")
                .bind(kind)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// Removes the pending login `id` of `kind` and returns what was stored with its expiry
    /// (expired or not: the caller decides), or `None` when there is none. One statement
    /// (`DELETE … RETURNING`, which SQLite and PostgreSQL both have), so of two concurrent
    /// callers only one gets it: a pending login is used at most once.
    pub async fn take_pending_login(
        &self,
        id: &str,
        kind: &str,
    ) -> Result<Option<(String, Timestamp)>> {
        let mut tx = self.begin_bookkeeping().await?;
        let row = sqlx::query(
            "DELETE FROM pending_logins WHERE id = $1 AND kind = $2 RETURNING data, expires_at",
        )
        .bind(id)
        .bind(kind)
        .fetch_optional(tx.w().await?.0)
        .await?;
        tx.commit().await?;
        row.map(|r| {
            Ok((
                r.try_get("data")?,
                Timestamp::from_millis(r.try_get("expires_at")?),
            ))
        })
        .transpose()
    }
}

fn names(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<(Name, Source)>> {
    rows.iter()
        .map(|r| {
            let n: String = r.try_get("name")?;
            let s: String = r.try_get("source")?;
            let corrupt = |column, detail: String| StoreError::Corrupt {
                table: "identities",
                column,
                detail,
            };
            Ok((
                Name::new(n).map_err(|e| corrupt("name", e.to_string()))?,
                Source::parse(&s).ok_or_else(|| corrupt("source", s.clone()))?,
            ))
        })
        .collect()
}

impl Q<'_> {
    /// Identities whose `external_id` is `external_id`, with their source, by name.
    pub async fn identities_by_external_id(
        &mut self,
        external_id: &str,
    ) -> Result<Vec<(Name, Source)>> {
        names(
            sqlx::query("SELECT name, source FROM identities WHERE external_id = $1 ORDER BY name")
                .bind(external_id)
                .fetch_all(&mut *self.0)
                .await?,
        )
    }

    /// Identities whose email is `email`, compared case-insensitively, with their source, by
    /// name.
    pub async fn identities_by_email(&mut self, email: &str) -> Result<Vec<(Name, Source)>> {
        names(
            sqlx::query(
                "SELECT name, source FROM identities WHERE email <> '' AND LOWER(email) = LOWER($1) \
                 ORDER BY name",
            )
            .bind(email)
            .fetch_all(&mut *self.0)
            .await?,
        )
    }
}

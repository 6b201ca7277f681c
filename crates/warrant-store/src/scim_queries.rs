//! The SCIM resources table: each identity or group provisioned over SCIM keeps its resource
//! document (the attributes the IdP sent, minus `id`, `meta`, `password` and relations) and the
//! version that its ETag names.

use sqlx::Row;
use sqlx::any::AnyRow;
use warrant_core::Timestamp;

use crate::queries::{Q, W};
use crate::{Result, StoreError};

/// One SCIM resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimRow {
    /// The SCIM `id` (never reused).
    pub id: String,
    /// `user` or `group`.
    pub kind: String,
    /// The Warrant identity or group it is.
    pub name: String,
    /// The IdP's `externalId`.
    pub external_id: Option<String>,
    /// The stored resource document (JSON).
    pub data: String,
    /// Incremented at every change; the ETag is `W/"<version>"`.
    pub version: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

const COLS: &str = "id, kind, name, external_id, data, version, created_at, updated_at";

fn row(r: &AnyRow) -> Result<ScimRow> {
    Ok(ScimRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        external_id: r.try_get("external_id")?,
        data: r.try_get("data")?,
        version: r.try_get("version")?,
        created_at: Timestamp::from_millis(r.try_get("created_at")?),
        updated_at: Timestamp::from_millis(r.try_get("updated_at")?),
    })
}

impl Q<'_> {
    /// The name of an identity whose name equals `name` ignoring ASCII case (SCIM `userName` is
    /// not case-exact, so `Sam` and `sam` are the same user there).
    pub async fn identity_named_ci(&mut self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM identities WHERE LOWER(name) = LOWER($1) LIMIT 1")
                .bind(name)
                .fetch_optional(&mut *self.0)
                .await?,
        )
    }

    /// A resource by its SCIM id.
    pub async fn scim_by_id(&mut self, kind: &str, id: &str) -> Result<Option<ScimRow>> {
        let sql = format!("SELECT {COLS} FROM scim_resources WHERE kind = $1 AND id = $2");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// A resource by the name of its identity or group.
    pub async fn scim_by_name(&mut self, kind: &str, name: &str) -> Result<Option<ScimRow>> {
        let sql = format!("SELECT {COLS} FROM scim_resources WHERE kind = $1 AND name = $2");
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Every resource of a kind, oldest first (a stable order for paging).
    pub async fn scim_all(&mut self, kind: &str) -> Result<Vec<ScimRow>> {
        let sql =
            format!("SELECT {COLS} FROM scim_resources WHERE kind = $1 ORDER BY created_at, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind)
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter().map(row).collect()
    }
}

impl W<'_> {
    /// Stores a new resource.
    pub async fn insert_scim(&mut self, r: &ScimRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO scim_resources (id, kind, name, external_id, data, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&r.id)
        .bind(&r.kind)
        .bind(&r.name)
        .bind(r.external_id.as_deref())
        .bind(&r.data)
        .bind(r.version)
        .bind(r.created_at.millis())
        .bind(r.updated_at.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Replaces a resource's document, guarded on the version read (optimistic concurrency
    /// under the single writer: a mismatch means the caller's read is stale).
    pub async fn update_scim(&mut self, r: &ScimRow, read_version: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE scim_resources SET external_id = $3, data = $4, version = $5, updated_at = $6 \
             WHERE id = $1 AND kind = $2 AND version = $7",
        )
        .bind(&r.id)
        .bind(&r.kind)
        .bind(r.external_id.as_deref())
        .bind(&r.data)
        .bind(r.version)
        .bind(r.updated_at.millis())
        .bind(read_version)
        .execute(&mut *self.0)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Corrupt {
                table: "scim_resources",
                column: "version",
                detail: format!("resource {} changed under the writer lock", r.id),
            });
        }
        Ok(())
    }

    /// Deletes the resource of the identity or group `name`, if it has one.
    pub async fn delete_scim_of(&mut self, kind: &str, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM scim_resources WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Deletes a resource.
    pub async fn delete_scim(&mut self, kind: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM scim_resources WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

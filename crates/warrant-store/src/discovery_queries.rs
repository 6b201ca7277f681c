//! Discovery: the inventory of privileged accounts found on targets, the scans, and the
//! exceptions (privileges that appeared outside Warrant).

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use warrant_core::Timestamp;

use crate::Result;
use crate::queries::{Q, W};

/// One account in the inventory of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryRow {
    /// The target.
    pub target: String,
    /// The account's name there.
    pub account: String,
    /// Its privileges, as a JSON array of strings (sorted).
    pub privileges: String,
    /// `managed`, `unmanaged` or `orphaned`.
    pub status: String,
    /// `low`, `medium`, `high` or `critical`.
    pub risk: String,
    /// First seen by a scan.
    pub first_seen: Timestamp,
    /// Last seen by a scan.
    pub last_seen: Timestamp,
}

/// One scan of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRow {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// Started.
    pub started_at: Timestamp,
    /// Finished.
    pub finished_at: Timestamp,
    /// Accounts in the inventory after it.
    pub accounts: i64,
    /// Differences from the previous scan (exceptions opened).
    pub differences: i64,
}

/// A privilege found that Warrant did not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionRow {
    /// Its id.
    pub id: String,
    /// The target.
    pub target: String,
    /// The account.
    pub account: String,
    /// What appeared, e.g. `new privileged account: superuser` or `new privilege: sudoers`.
    pub what: String,
    /// The account's risk when found.
    pub risk: String,
    /// The scan that found it.
    pub scan_id: String,
    /// When.
    pub found_at: Timestamp,
    /// When it was resolved (accepted or fixed), and by whom.
    pub resolved_at: Option<Timestamp>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
}

fn inventory(row: &AnyRow) -> Result<InventoryRow> {
    Ok(InventoryRow {
        target: row.try_get("target")?,
        account: row.try_get("account")?,
        privileges: row.try_get("privileges")?,
        status: row.try_get("status")?,
        risk: row.try_get("risk")?,
        first_seen: Timestamp::from_millis(row.try_get("first_seen")?),
        last_seen: Timestamp::from_millis(row.try_get("last_seen")?),
    })
}

fn scan(row: &AnyRow) -> Result<ScanRow> {
    Ok(ScanRow {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        started_at: Timestamp::from_millis(row.try_get("started_at")?),
        finished_at: Timestamp::from_millis(row.try_get("finished_at")?),
        accounts: row.try_get("accounts")?,
        differences: row.try_get("differences")?,
    })
}

fn exception(row: &AnyRow) -> Result<ExceptionRow> {
    let resolved: Option<i64> = row.try_get("resolved_at")?;
    Ok(ExceptionRow {
        id: row.try_get("id")?,
        target: row.try_get("target")?,
        account: row.try_get("account")?,
        what: row.try_get("what")?,
        risk: row.try_get("risk")?,
        scan_id: row.try_get("scan_id")?,
        found_at: Timestamp::from_millis(row.try_get("found_at")?),
        resolved_at: resolved.map(Timestamp::from_millis),
        resolved_by: row.try_get("resolved_by")?,
    })
}

const EXCEPTION_COLUMNS: &str =
    "id, target, account, what, risk, scan_id, found_at, resolved_at, resolved_by";

impl Q<'_> {
    /// A target's inventory (every target's when `target` is `None`), by target and account.
    pub async fn inventory(&mut self, target: Option<&str>) -> Result<Vec<InventoryRow>> {
        let filter = if target.is_some() {
            "WHERE target = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT target, account, privileges, status, risk, first_seen, last_seen \
             FROM discovery_inventory {filter} ORDER BY target, account"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(t) = target {
            q = q.bind(t);
        }
        q.fetch_all(&mut *self.0)
            .await?
            .iter()
            .map(inventory)
            .collect()
    }

    /// The last scan of a target.
    pub async fn last_scan(&mut self, target: &str) -> Result<Option<ScanRow>> {
        let row = sqlx::query(
            "SELECT id, target, started_at, finished_at, accounts, differences FROM discovery_scans \
             WHERE target = $1 ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(target)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(scan).transpose()
    }

    /// Exceptions, newest first: open ones only unless `all`, of one target or all.
    pub async fn exceptions(
        &mut self,
        target: Option<&str>,
        all: bool,
        limit: i64,
    ) -> Result<Vec<ExceptionRow>> {
        let mut conds = Vec::new();
        if target.is_some() {
            conds.push("target = $2");
        }
        if !all {
            conds.push("resolved_at IS NULL");
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {EXCEPTION_COLUMNS} FROM discovery_exceptions {filter} \
             ORDER BY found_at DESC, id DESC LIMIT $1"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(limit);
        if let Some(t) = target {
            q = q.bind(t);
        }
        q.fetch_all(&mut *self.0)
            .await?
            .iter()
            .map(exception)
            .collect()
    }

    /// One exception.
    pub async fn exception(&mut self, id: &str) -> Result<Option<ExceptionRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EXCEPTION_COLUMNS} FROM discovery_exceptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&mut *self.0)
        .await?;
        row.as_ref().map(exception).transpose()
    }
}

impl W<'_> {
    /// Creates or replaces an inventory entry.
    pub async fn upsert_inventory(&mut self, r: &InventoryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO discovery_inventory (target, account, privileges, status, risk, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (target, account) DO UPDATE SET privileges = $3, status = $4, risk = $5, last_seen = $7",
        )
        .bind(&r.target)
        .bind(&r.account)
        .bind(&r.privileges)
        .bind(&r.status)
        .bind(&r.risk)
        .bind(r.first_seen.millis())
        .bind(r.last_seen.millis())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Removes an account the last scan no longer found.
    pub async fn delete_inventory(&mut self, target: &str, account: &str) -> Result<()> {
        sqlx::query("DELETE FROM discovery_inventory WHERE target = $1 AND account = $2")
            .bind(target)
            .bind(account)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    /// Records a scan.
    pub async fn insert_scan(&mut self, s: &ScanRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO discovery_scans (id, target, started_at, finished_at, accounts, differences) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id)
        .bind(&s.target)
        .bind(s.started_at.millis())
        .bind(s.finished_at.millis())
        .bind(s.accounts)
        .bind(s.differences)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Opens an exception.
    pub async fn insert_exception(&mut self, e: &ExceptionRow) -> Result<()> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO discovery_exceptions ({EXCEPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(&e.id)
        .bind(&e.target)
        .bind(&e.account)
        .bind(&e.what)
        .bind(&e.risk)
        .bind(&e.scan_id)
        .bind(e.found_at.millis())
        .bind(e.resolved_at.map(Timestamp::millis))
        .bind(e.resolved_by.as_deref())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// Resolves an open exception; true if it was open.
    pub async fn resolve_exception(&mut self, id: &str, by: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE discovery_exceptions SET resolved_at = $2, resolved_by = $3 \
             WHERE id = $1 AND resolved_at IS NULL",
        )
        .bind(id)
        .bind(now.millis())
        .bind(by)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

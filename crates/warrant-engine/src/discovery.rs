//! Discovery: scan a target for privileged accounts and keep an inventory of them.
//!
//! A PostgreSQL target is read over its admin connection (`warrant-pgroles::discover`: roles
//! with superuser, createrole, createdb, replication or bypassrls, members of the predefined
//! admin roles, login roles that never expire); a Linux host over SSH with Warrant's managed key
//! (`warrant-hostssh::scan_linux`: uid 0, sudo/wheel/admin members, sudoers rules, authorized
//! keys, password login). Each account found is classified:
//!
//! - `managed`: Warrant manages it (a vaulted account, a temporary role of a grant, or the
//!   target's own connector login);
//! - `unmanaged`: a personal account of a known, enabled identity (same name), outside Warrant;
//! - `orphaned`: no identity it belongs to.
//!
//! and given a risk level from its privileges (one level higher when orphaned). A scan replaces
//! the target's inventory; what is new since the previous scan — an account or a privilege that
//! Warrant did not grant — is a `discovery.difference` event and an open exception. The first
//! scan of a target is the baseline: it opens no exceptions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;
use warrant_audit::Event;
use warrant_core::{SystemRole, Target, TargetKind, Timestamp};
use warrant_store::{ExceptionRow, InventoryRow, ScanRow};

use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::{Engine, require_admin, require_role};

/// One account a scan found, with its privileges (stable words, sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The account's name on the target.
    pub account: String,
    /// e.g. `superuser`, `member:pg_read_all_data`, `uid0`, `group:sudo`, `sudoers`.
    pub privileges: BTreeSet<String>,
    /// A temporary role of a Warrant grant.
    pub warrant_temporary: bool,
}

/// A scan under way: what it is doing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanProgress {
    /// What it does now.
    pub phase: String,
    /// Items done.
    pub done: u64,
    /// Items in all (0 when not known yet).
    pub total: u64,
}

/// Scans under way, by target.
#[derive(Debug, Default)]
pub(crate) struct ScanProgressMap(Mutex<HashMap<String, ScanProgress>>);

impl ScanProgressMap {
    fn set(&self, target: &str, p: ScanProgress) {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.insert(target.to_owned(), p);
    }

    fn start(&self, target: &str) -> bool {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if m.contains_key(target) {
            return false;
        }
        m.insert(
            target.to_owned(),
            ScanProgress {
                phase: "connecting".into(),
                ..ScanProgress::default()
            },
        );
        true
    }

    fn finish(&self, target: &str) {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.remove(target);
    }

    fn get(&self, target: &str) -> Option<ScanProgress> {
        let m = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        m.get(target).cloned()
    }
}

/// What a scan found and changed.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// The scan.
    pub scan: ScanRow,
    /// The target's inventory after it.
    pub inventory: Vec<InventoryRow>,
    /// Exceptions it opened.
    pub differences: Vec<ExceptionRow>,
    /// The first scan of the target: the baseline, no exceptions.
    pub baseline: bool,
    /// Accounts no longer found.
    pub removed: Vec<String>,
}

/// Risk levels, lowest first.
const LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];

fn level_of(p: &str) -> usize {
    match p {
        "superuser"
        | "uid0"
        | "member:pg_execute_server_program"
        | "member:pg_write_server_files" => 3,
        "createrole"
        | "replication"
        | "bypassrls"
        | "sudoers"
        | "member:pg_write_all_data"
        | "member:pg_read_server_files"
        | "member:superuser_role" => 2,
        p if p.starts_with("group:") => 2,
        "createdb" | "member:pg_read_all_data" | "member:pg_signal_backend" => 1,
        p if p.starts_with("member:") => 1,
        _ => 0,
    }
}

/// The risk of an account with these privileges: the highest of them, one level up when the
/// account is orphaned.
pub fn risk(privileges: &BTreeSet<String>, status: &str) -> &'static str {
    let base = privileges.iter().map(|p| level_of(p)).max().unwrap_or(0);
    let level = if status == "orphaned" {
        (base + 1).min(3)
    } else {
        base
    };
    LEVELS[level]
}

/// Findings from a PostgreSQL scan.
pub fn pg_findings(accounts: &[warrant_pgroles::PgAccount]) -> Vec<Finding> {
    accounts
        .iter()
        .map(|a| {
            let mut p = BTreeSet::new();
            for (flag, word) in [
                (a.superuser, "superuser"),
                (a.createrole, "createrole"),
                (a.createdb, "createdb"),
                (a.replication, "replication"),
                (a.bypassrls, "bypassrls"),
            ] {
                if flag {
                    p.insert(word.to_owned());
                }
            }
            for r in &a.admin_roles {
                p.insert(format!("member:{r}"));
            }
            if a.can_login && a.valid_until.is_none() {
                p.insert("login_without_expiry".to_owned());
            }
            Finding {
                account: a.name.clone(),
                privileges: p,
                warrant_temporary: a.warrant_grant.is_some(),
            }
        })
        .collect()
}

/// Findings from a Linux scan.
pub fn linux_findings(scan: &warrant_hostssh::LinuxScan) -> Vec<Finding> {
    scan.accounts
        .iter()
        .map(|a| {
            let mut p = BTreeSet::new();
            if a.uid0 {
                p.insert("uid0".to_owned());
            }
            for g in &a.admin_groups {
                p.insert(format!("group:{g}"));
            }
            if !a.sudoers_rules.is_empty() {
                p.insert("sudoers".to_owned());
            }
            if a.authorized_keys > 0 {
                p.insert("authorized_keys".to_owned());
            }
            if a.password_login {
                p.insert("password_login".to_owned());
            }
            Finding {
                account: a.name.clone(),
                privileges: p,
                warrant_temporary: false,
            }
        })
        .collect()
}

fn privileges_json(p: &BTreeSet<String>) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "[]".into())
}

fn parse_privileges(s: &str) -> BTreeSet<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl Engine {
    /// The progress of a scan of `target` under way (admins).
    pub fn scan_progress(&self, actor: &Actor, target: &str) -> Result<Option<ScanProgress>> {
        require_admin(actor)?;
        Ok(self.inner.scans.get(target))
    }

    /// Scans a target for privileged accounts, updates its inventory and opens exceptions for
    /// what is new since the last scan (admins).
    pub async fn discover(&self, actor: &Actor, target: &str) -> Result<ScanReport> {
        require_admin(actor)?;
        self.discover_target(target, Some(actor.name.as_str()))
            .await
    }

    /// Scans every PostgreSQL and SSH target Warrant can reach (the schedule of `warrant
    /// serve`); a target that fails is logged and skipped.
    pub async fn discover_all(&self) -> Result<u64> {
        let targets = {
            let mut r = self.store().read().await?;
            r.q().targets().await?
        };
        let mut n = 0;
        for t in targets {
            if t.kind == TargetKind::Generic {
                continue;
            }
            match self.discover_target(t.name.as_str(), None).await {
                Ok(_) => n += 1,
                Err(e) => {
                    tracing::warn!(target = %t.name, error = %e, "scheduled discovery failed")
                }
            }
        }
        Ok(n)
    }

    async fn discover_target(&self, target: &str, by: Option<&str>) -> Result<ScanReport> {
        let t = {
            let mut r = self.store().read().await?;
            r.q()
                .target(target)
                .await?
                .ok_or_else(|| crate::catalogue::target_not_found(target))?
        };
        if !self.inner.scans.start(target) {
            return Err(EngineError::conflict(
                "scan_running",
                format!("a scan of {target} is already running: wait for it"),
            ));
        }
        let result = self.scan_and_record(&t, by).await;
        self.inner.scans.finish(target);
        result
    }

    async fn scan_and_record(&self, t: &Target, by: Option<&str>) -> Result<ScanReport> {
        let name = t.name.as_str();
        let started = self.now();
        let findings = match t.kind {
            TargetKind::Postgres => {
                let conn = self.target_conn(t).await?;
                self.inner.scans.set(
                    name,
                    ScanProgress {
                        phase: "reading roles".into(),
                        done: 0,
                        total: 1,
                    },
                );
                let accounts = warrant_pgroles::discover(&conn).await.map_err(|e| {
                    EngineError::unavailable(e.code(), format!("scanning {name}: {e}"))
                })?;
                pg_findings(&accounts)
            }
            TargetKind::Ssh => {
                let host = self.host_access(t).await?;
                let scans = &self.inner.scans;
                let scan = host
                    .scan(&mut |phase, done, total| {
                        scans.set(name, ScanProgress { phase, done, total });
                    })
                    .await
                    .map_err(|e| {
                        EngineError::unavailable("scan_failed", format!("scanning {name}: {e}"))
                    })?;
                linux_findings(&scan)
            }
            TargetKind::Generic => {
                return Err(EngineError::invalid(
                    "discovery_unsupported",
                    format!("target {name} is generic: Warrant has no way to scan it"),
                ));
            }
        };
        self.inner.scans.set(
            name,
            ScanProgress {
                phase: "recording".into(),
                done: 0,
                total: findings.len() as u64,
            },
        );
        self.record_scan(t, findings, started, by).await
    }

    async fn record_scan(
        &self,
        t: &Target,
        findings: Vec<Finding>,
        started: Timestamp,
        by: Option<&str>,
    ) -> Result<ScanReport> {
        let target = t.name.as_str();
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let previous: HashMap<String, InventoryRow> = tx
            .q()
            .inventory(Some(target))
            .await?
            .into_iter()
            .map(|r| (r.account.clone(), r))
            .collect();
        let baseline = tx.q().last_scan(target).await?.is_none();
        let vaulted: HashSet<String> = tx
            .q()
            .vaulted_accounts()
            .await?
            .into_iter()
            .filter(|a| a.target == target)
            .map(|a| a.name)
            .collect();
        // Enabled identities by name, ignoring case (names are unique that way): one read.
        let people: HashSet<String> = tx
            .q()
            .identities()
            .await?
            .into_iter()
            .filter(|i| i.status == warrant_core::IdentityStatus::Active)
            .map(|i| i.name.as_str().to_lowercase())
            .collect();
        let scan_id = warrant_iam::new_id()?;
        let mut differences = Vec::new();
        let (mut managed, mut unmanaged, mut orphaned) = (0u64, 0u64, 0u64);
        let mut seen = HashSet::new();
        for f in &findings {
            seen.insert(f.account.clone());
            let status = if f.warrant_temporary
                || vaulted.contains(&f.account)
                || t.admin_user.as_deref() == Some(f.account.as_str())
            {
                managed += 1;
                "managed"
            } else if people.contains(&f.account.to_lowercase()) {
                unmanaged += 1;
                "unmanaged"
            } else {
                orphaned += 1;
                "orphaned"
            };
            let risk = risk(&f.privileges, status);
            let before = previous.get(&f.account);
            let row = InventoryRow {
                target: target.to_owned(),
                account: f.account.clone(),
                privileges: privileges_json(&f.privileges),
                status: status.to_owned(),
                risk: risk.to_owned(),
                first_seen: before.map_or(now, |b| b.first_seen),
                last_seen: now,
            };
            tx.w().await?.upsert_inventory(&row).await?;
            if baseline || status == "managed" {
                continue;
            }
            let what = match before {
                None => Some(format!(
                    "new privileged account: {}",
                    f.privileges.iter().cloned().collect::<Vec<_>>().join(", ")
                )),
                Some(b) => {
                    let had = parse_privileges(&b.privileges);
                    let added: Vec<String> = f.privileges.difference(&had).cloned().collect();
                    (!added.is_empty()).then(|| format!("new privileges: {}", added.join(", ")))
                }
            };
            let Some(what) = what else { continue };
            let e = ExceptionRow {
                id: warrant_iam::new_id()?,
                target: target.to_owned(),
                account: f.account.clone(),
                what: what.clone(),
                risk: risk.to_owned(),
                scan_id: scan_id.clone(),
                found_at: now,
                resolved_at: None,
                resolved_by: None,
            };
            tx.w().await?.insert_exception(&e).await?;
            tx.audit(
                now,
                by,
                &Event::DiscoveryDifference {
                    target: target.to_owned(),
                    account: f.account.clone(),
                    scan_id: scan_id.clone(),
                    exception_id: e.id.clone(),
                    what,
                    risk: risk.to_owned(),
                },
            )
            .await?;
            differences.push(e);
        }
        let mut removed = Vec::new();
        for account in previous.keys() {
            if !seen.contains(account) {
                tx.w().await?.delete_inventory(target, account).await?;
                removed.push(account.clone());
            }
        }
        removed.sort();
        let scan = ScanRow {
            id: scan_id.clone(),
            target: target.to_owned(),
            started_at: started,
            finished_at: now,
            accounts: findings.len() as i64,
            differences: differences.len() as i64,
        };
        tx.w().await?.insert_scan(&scan).await?;
        tx.audit(
            now,
            by,
            &Event::DiscoveryScanned {
                target: target.to_owned(),
                scan_id,
                accounts: findings.len() as u64,
                managed,
                unmanaged,
                orphaned,
                differences: differences.len() as u64,
            },
        )
        .await?;
        let inventory = tx.q().inventory(Some(target)).await?;
        tx.commit().await?;
        Ok(ScanReport {
            scan,
            inventory,
            differences,
            baseline,
            removed,
        })
    }

    /// The inventory of privileged accounts (auditors and admins).
    pub async fn inventory(
        &self,
        actor: &Actor,
        target: Option<&str>,
    ) -> Result<Vec<InventoryRow>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        Ok(r.q().inventory(target).await?)
    }

    /// Exceptions found by discovery, newest first (auditors and admins).
    pub async fn exceptions(
        &self,
        actor: &Actor,
        target: Option<&str>,
        all: bool,
    ) -> Result<Vec<ExceptionRow>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        Ok(r.q().exceptions(target, all, 1000).await?)
    }

    /// Resolves an exception with a note: accepted, or fixed on the target (admins).
    pub async fn resolve_exception(&self, actor: &Actor, id: &str, note: &str) -> Result<()> {
        require_admin(actor)?;
        if note.trim().is_empty() {
            return Err(EngineError::invalid(
                "note_required",
                "say why the exception is resolved (--note)",
            ));
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let e = tx.q().exception(id).await?.ok_or_else(|| {
            EngineError::not_found(
                "exception_not_found",
                format!("no exception {id} (warrant exceptions)"),
            )
        })?;
        if !tx
            .w()
            .await?
            .resolve_exception(id, actor.name.as_str(), now)
            .await?
        {
            return Err(EngineError::conflict(
                "exception_resolved",
                format!("exception {id} is resolved already"),
            ));
        }
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::DiscoveryExceptionResolved {
                target: e.target,
                account: e.account,
                exception_id: id.to_owned(),
                note: note.trim().to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> BTreeSet<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn risk_is_the_highest_privilege_and_one_up_when_orphaned() {
        assert_eq!(risk(&set(&["superuser"]), "unmanaged"), "critical");
        assert_eq!(risk(&set(&["createdb"]), "unmanaged"), "medium");
        assert_eq!(risk(&set(&["createdb"]), "orphaned"), "high");
        assert_eq!(risk(&set(&["login_without_expiry"]), "managed"), "low");
        assert_eq!(
            risk(&set(&["authorized_keys", "group:sudo"]), "unmanaged"),
            "high"
        );
        assert_eq!(risk(&set(&["uid0"]), "orphaned"), "critical");
        assert_eq!(risk(&set(&[]), "orphaned"), "medium");
    }
}

//! Vaulted accounts: the shared privileged accounts that must exist (a PostgreSQL superuser, a
//! Linux root password, an API key), their secrets sealed by the vault.
//!
//! - An account lives on a target and has an accountable owner group. A role of that target
//!   names it (`account:` in the org file); a grant of that role lets its holder check the
//!   account out — exclusively unless the account is shared — reveal the secret (each reveal
//!   audited) and check it in. A grant that closes checks its checkouts in, in the same
//!   transaction.
//! - Rotation runs after a check-in, on a schedule, or on demand, through the target's
//!   connector (PostgreSQL: `ALTER ROLE` over the target's admin connection; Linux: `chpasswd`
//!   over SSH with Warrant's managed key). It is journaled so that a crash at any step never
//!   loses the working secret: verify current → keep the new secret as pending (committed) →
//!   set it on the target (committed) → verify it → commit (pending becomes current). A pending
//!   rotation found later resumes: if the pending secret works it is committed; if the current
//!   one still works the new one is set again; if neither works the rotation fails visibly and
//!   both are kept.
//! - Secrets are [`Secret`]s: never in logs, errors or audit payloads (tested with a canary).

use std::collections::HashSet;
use std::sync::Mutex;

use warrant_audit::Event;
use warrant_core::{GrantStatus, Secret, SystemRole, Target, TargetKind, Timestamp};
use warrant_store::{CheckoutRow, VaultedAccountRow, WriteTx};

use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::scheduler::backoff_secs;
use crate::{Engine, require_admin, require_role};

/// The vault's associated data for an account's secrets (current and pending alike).
pub(crate) fn account_aad(target: &str, name: &str) -> String {
    format!("vaulted-account:{target}/{name}")
}

/// What an admin gives to create an account.
#[derive(Debug)]
pub struct AccountSpec {
    /// The target it lives on.
    pub target: String,
    /// Its name there (the PostgreSQL role, the Linux user, a label for an API key).
    pub name: String,
    /// The accountable group.
    pub owner: String,
    /// More than one checkout at a time (default: exclusive).
    pub shared: bool,
    /// Rotate on this period, in seconds.
    pub rotate_every_secs: Option<i64>,
    /// Rotate after every check-in (default where the target has a rotation connector).
    pub rotate_after_checkin: Option<bool>,
    /// The current secret.
    pub secret: Secret<String>,
}

/// A vaulted account as listed (never its secret).
#[derive(Debug, Clone)]
pub struct AccountView {
    /// The stored row (its sealed fields are not for display).
    pub row: VaultedAccountRow,
    /// The open checkouts.
    pub checkouts: Vec<CheckoutRow>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The new secret is in force.
    Rotated {
        /// The rotation.
        rotation_id: String,
    },
    /// Not now: the account is checked out, or another rotation of it is running.
    Deferred(String),
    /// A step failed; the working secret is kept and the rotation will be retried.
    Failed {
        /// The step.
        step: String,
        /// Why (never a secret).
        error: String,
    },
}

/// Accounts whose rotation is running in this process.
#[derive(Debug, Default)]
pub(crate) struct RotationLocks(Mutex<HashSet<(String, String)>>);

struct RotationGuard<'a> {
    locks: &'a RotationLocks,
    key: (String, String),
}

impl RotationLocks {
    fn try_lock(&self, target: &str, name: &str) -> Option<RotationGuard<'_>> {
        let key = (target.to_owned(), name.to_owned());
        let mut set = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        set.insert(key.clone())
            .then_some(RotationGuard { locks: self, key })
    }
}

impl Drop for RotationGuard<'_> {
    fn drop(&mut self) {
        let mut set = match self.locks.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        set.remove(&self.key);
    }
}

const CURRENT_FAILS: &str = "the working secret no longer works on the target: it was changed outside Warrant; an admin sets the real one with `warrant account set-secret`";
const NEITHER_WORKS: &str = "neither the working nor the pending secret works on the target: it was changed outside Warrant; an admin sets the real one with `warrant account set-secret`";
const NEW_REFUSED: &str = "the target does not accept the new secret; the working one is kept";

fn not_found(target: &str, name: &str) -> EngineError {
    EngineError::not_found(
        "account_not_found",
        format!("no vaulted account {name:?} on target {target:?} (see warrant accounts)"),
    )
}

/// How Warrant verifies and changes an account's secret on its target.
pub(crate) enum Connector {
    /// A PostgreSQL role, over the target's admin connection.
    Postgres(warrant_pgroles::TargetConn),
    /// A Linux account, over SSH with Warrant's managed key.
    Linux(Box<crate::hosts::HostAccess>),
}

impl Connector {
    async fn verify(
        &self,
        account: &str,
        secret: &Secret<String>,
    ) -> std::result::Result<bool, String> {
        match self {
            Self::Postgres(conn) => warrant_pgroles::verify_login(conn, account, secret)
                .await
                .map_err(|e| format!("{e} ({})", e.code())),
            Self::Linux(h) => h.verify_password(account, secret).await,
        }
    }

    async fn set(&self, account: &str, secret: &Secret<String>) -> std::result::Result<(), String> {
        match self {
            Self::Postgres(conn) => warrant_pgroles::set_password(conn, account, secret)
                .await
                .map_err(|e| format!("{e} ({})", e.code())),
            Self::Linux(h) => h.set_password(account, secret).await,
        }
    }

    fn generate(&self) -> Result<Secret<String>> {
        warrant_pgroles::generate_password()
            .map_err(|e| EngineError::internal(format!("generating a secret: {}", e.code())))
    }
}

impl Engine {
    pub(crate) fn seal_text(&self, aad: &str, plain: &Secret<String>) -> Result<String> {
        Ok(self
            .vault()?
            .seal(aad, plain.expose().as_bytes())
            .map_err(|e| EngineError::internal(format!("sealing a secret: {}", e.code())))?
            .to_string())
    }

    pub(crate) fn open_text(&self, aad: &str, sealed: &str) -> Result<Secret<String>> {
        let sealed: warrant_vault::Sealed = sealed
            .parse()
            .map_err(|_| EngineError::internal("a stored secret does not parse"))?;
        let plain = self
            .vault()?
            .open(aad, &sealed)
            .map_err(|e| EngineError::internal(format!("opening a secret: {}", e.code())))?;
        let text = String::from_utf8(plain.to_vec())
            .map_err(|_| EngineError::internal("a stored secret is not text"))?;
        Ok(Secret::new(text))
    }

    /// Whether a target has a connector that can rotate its accounts.
    fn rotatable(target: &Target) -> bool {
        matches!(target.kind, TargetKind::Postgres | TargetKind::Ssh)
    }

    /// Creates a vaulted account (admins).
    pub async fn create_account(&self, actor: &Actor, spec: AccountSpec) -> Result<AccountView> {
        require_admin(actor)?;
        warrant_core::Name::new(spec.name.clone()).map_err(|e| {
            EngineError::invalid("invalid_name", format!("account name {:?}: {e}", spec.name))
        })?;
        if spec.secret.expose().is_empty() {
            return Err(EngineError::invalid(
                "secret_empty",
                "the secret on standard input is empty",
            ));
        }
        if let Some(s) = spec.rotate_every_secs
            && s < 60
        {
            return Err(EngineError::invalid(
                "invalid_rotation_period",
                "the rotation period must be at least a minute (e.g. 24h)",
            ));
        }
        let sealed = self.seal_text(&account_aad(&spec.target, &spec.name), &spec.secret)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let target = tx
            .q()
            .target(&spec.target)
            .await?
            .ok_or_else(|| crate::catalogue::target_not_found(&spec.target))?;
        if tx.q().group(&spec.owner).await?.is_none() {
            return Err(EngineError::invalid(
                "owner_not_found",
                format!(
                    "no group {:?} to own the account (warrant groups)",
                    spec.owner
                ),
            ));
        }
        if tx
            .q()
            .vaulted_account(&spec.target, &spec.name)
            .await?
            .is_some()
        {
            return Err(EngineError::conflict(
                "account_exists",
                format!(
                    "account {} on {} is vaulted already: change its secret with `warrant account set-secret`",
                    spec.name, spec.target
                ),
            ));
        }
        let rotatable = Self::rotatable(&target);
        if !rotatable
            && (spec.rotate_every_secs.is_some() || spec.rotate_after_checkin == Some(true))
        {
            return Err(EngineError::invalid(
                "rotation_unsupported",
                format!(
                    "target {} is of kind {}: Warrant cannot change secrets there, so it cannot rotate them (rotate by hand and use `warrant account set-secret`)",
                    target.name,
                    target.kind.as_str()
                ),
            ));
        }
        let row = VaultedAccountRow {
            target: spec.target.clone(),
            name: spec.name.clone(),
            owner: spec.owner.clone(),
            exclusive: !spec.shared,
            rotate_every_secs: spec.rotate_every_secs,
            rotate_after_checkin: spec.rotate_after_checkin.unwrap_or(rotatable),
            sealed,
            pending_sealed: None,
            rotation_id: None,
            rotation_step: None,
            rotation_due_at: spec.rotate_every_secs.map(|s| now.plus_secs(s)),
            rotation_attempts: 0,
            last_rotated_at: None,
            last_error: None,
            created_at: now,
            updated_at: now,
        };
        tx.w().await?.insert_vaulted_account(&row).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::AccountCreated {
                target: row.target.clone(),
                account: row.name.clone(),
                owner: row.owner.clone(),
                exclusive: row.exclusive,
                rotate_every_secs: row.rotate_every_secs,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(AccountView {
            row,
            checkouts: Vec::new(),
        })
    }

    /// Replaces an account's secret by hand (admins): after a change made outside Warrant, or
    /// for kinds Warrant cannot rotate. Refused while a rotation is in progress.
    pub async fn set_account_secret(
        &self,
        actor: &Actor,
        target: &str,
        name: &str,
        secret: Secret<String>,
    ) -> Result<()> {
        require_admin(actor)?;
        if secret.expose().is_empty() {
            return Err(EngineError::invalid(
                "secret_empty",
                "the secret on standard input is empty",
            ));
        }
        let sealed = self.seal_text(&account_aad(target, name), &secret)?;
        // Not while a rotation of it runs here: it would race the admin's value.
        let Some(_guard) = self.inner.rotations.try_lock(target, name) else {
            return Err(EngineError::conflict(
                "rotation_running",
                format!("{name} on {target} is being rotated right now: try again in a moment"),
            ));
        };
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let mut row = tx
            .q()
            .vaulted_account(target, name)
            .await?
            .ok_or_else(|| not_found(target, name))?;
        row.sealed = sealed;
        // A stuck rotation (neither secret worked) is settled by the admin's secret.
        row.pending_sealed = None;
        row.rotation_id = None;
        row.rotation_step = None;
        row.rotation_attempts = 0;
        row.last_error = None;
        row.rotation_due_at = row.rotate_every_secs.map(|s| now.plus_secs(s));
        row.updated_at = now;
        tx.w().await?.update_vaulted_account(&row).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::AccountSecretSet {
                target: target.to_owned(),
                account: name.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a vaulted account (admins); refused while it is checked out.
    pub async fn delete_account(&self, actor: &Actor, target: &str, name: &str) -> Result<()> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.q()
            .vaulted_account(target, name)
            .await?
            .ok_or_else(|| not_found(target, name))?;
        if !tx.q().open_checkouts(target, name).await?.is_empty() {
            return Err(EngineError::conflict(
                "account_checked_out",
                format!("{name} on {target} is checked out: revoke the grant first"),
            ));
        }
        tx.w().await?.delete_vaulted_account(target, name).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::AccountDeleted {
                target: target.to_owned(),
                account: name.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every vaulted account with its open checkouts (auditors and admins).
    pub async fn accounts(&self, actor: &Actor) -> Result<Vec<AccountView>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        let mut out = Vec::new();
        for row in r.q().vaulted_accounts().await? {
            let checkouts = r.q().open_checkouts(&row.target, &row.name).await?;
            out.push(AccountView { row, checkouts });
        }
        Ok(out)
    }

    /// Checks an account out under the actor's active grant of a role that names it.
    pub async fn checkout_account(
        &self,
        actor: &Actor,
        target: &str,
        name: &str,
    ) -> Result<CheckoutRow> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let row = tx
            .q()
            .vaulted_account(target, name)
            .await?
            .ok_or_else(|| not_found(target, name))?;
        let mut grant = None;
        for g in tx.q().grants(Some(actor.name.as_str()), true, 1000).await? {
            if g.target.as_str() != target || g.status_at(now) != GrantStatus::Active {
                continue;
            }
            let role = tx.q().role(target, g.role.as_str()).await?;
            if role.is_some_and(|r| r.account.as_deref() == Some(name)) {
                grant = Some(g);
                break;
            }
        }
        let grant = grant.ok_or_else(|| {
            EngineError::forbidden(
                "no_active_grant",
                format!(
                    "you hold no active grant of a role on {target} that gives account {name}: request one first (warrant targets shows which role names it)"
                ),
            )
        })?;
        if row.pending_sealed.is_some() {
            return Err(EngineError::conflict(
                "rotation_in_progress",
                format!("{name} on {target} is being rotated: try again in a moment"),
            ));
        }
        let open = tx.q().open_checkouts(target, name).await?;
        if let Some(mine) = open.iter().find(|c| c.identity == actor.name.as_str()) {
            return Err(EngineError::conflict(
                "already_checked_out",
                format!(
                    "you have {name} on {target} checked out already (checkout {}): `warrant account reveal {target} {name}` shows it",
                    mine.id
                ),
            ));
        }
        if row.exclusive
            && let Some(other) = open.first()
        {
            return Err(EngineError::conflict(
                "account_checked_out",
                format!(
                    "{name} on {target} is checked out by {} since {} (exclusive): wait for the check-in",
                    other.identity,
                    other.checked_out_at.rfc3339()
                ),
            ));
        }
        let c = CheckoutRow {
            id: warrant_iam::new_id()?,
            target: target.to_owned(),
            account: name.to_owned(),
            grant_id: grant.id.clone(),
            identity: actor.name.to_string(),
            checked_out_at: now,
            checked_in_at: None,
            reveals: 0,
        };
        tx.w().await?.insert_checkout(&c).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::AccountCheckedOut {
                identity: c.identity.clone(),
                target: c.target.clone(),
                account: c.account.clone(),
                grant_id: c.grant_id.clone(),
                checkout_id: c.id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    async fn my_checkout(
        tx: &mut WriteTx,
        actor: &Actor,
        target: &str,
        name: &str,
    ) -> Result<CheckoutRow> {
        tx.q()
            .open_checkouts(target, name)
            .await?
            .into_iter()
            .find(|c| c.identity == actor.name.as_str())
            .ok_or_else(|| {
                EngineError::forbidden(
                    "not_checked_out",
                    format!(
                        "you do not have {name} on {target} checked out: `warrant account checkout {target} {name}` first"
                    ),
                )
            })
    }

    /// Shows the secret to the holder of an open checkout whose grant is still active. Every
    /// reveal is audited (the secret is not).
    pub async fn reveal_account(
        &self,
        actor: &Actor,
        target: &str,
        name: &str,
    ) -> Result<Secret<String>> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let row = tx
            .q()
            .vaulted_account(target, name)
            .await?
            .ok_or_else(|| not_found(target, name))?;
        let c = Self::my_checkout(&mut tx, actor, target, name).await?;
        let active = tx
            .q()
            .grant(&c.grant_id)
            .await?
            .is_some_and(|g| g.status_at(now) == GrantStatus::Active);
        if !active {
            return Err(EngineError::forbidden(
                "grant_not_active",
                format!(
                    "the grant of your checkout ({}) is no longer active",
                    c.grant_id
                ),
            ));
        }
        let secret = self.open_text(&account_aad(target, name), &row.sealed)?;
        tx.w().await?.count_reveal(&c.id).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::AccountRevealed {
                identity: c.identity.clone(),
                target: c.target.clone(),
                account: c.account.clone(),
                grant_id: c.grant_id.clone(),
                checkout_id: c.id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    /// Returns the actor's checkout of an account; a rotation follows where configured.
    pub async fn checkin_account(&self, actor: &Actor, target: &str, name: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let c = Self::my_checkout(&mut tx, actor, target, name).await?;
        check_in(&mut tx, &c, Some(actor.name.as_str()), "returned", now).await?;
        tx.commit().await?;
        self.inner.rotate_wake.notify_one();
        Ok(())
    }

    /// Rotates an account now (admins and members of its owner group). Runs the journaled
    /// rotation and reports what it did.
    pub async fn rotate_account_now(
        &self,
        actor: &Actor,
        target: &str,
        name: &str,
    ) -> Result<RotationOutcome> {
        let row = {
            let mut r = self.store().read().await?;
            let row = r
                .q()
                .vaulted_account(target, name)
                .await?
                .ok_or_else(|| not_found(target, name))?;
            if actor.role < SystemRole::Admin
                && !r.q().is_member(&row.owner, actor.name.as_str()).await?
            {
                return Err(EngineError::forbidden(
                    "forbidden",
                    format!(
                        "only admins and members of {} rotate this account",
                        row.owner
                    ),
                ));
            }
            let t = r
                .q()
                .target(target)
                .await?
                .ok_or_else(|| crate::catalogue::target_not_found(target))?;
            if !Self::rotatable(&t) {
                return Err(EngineError::invalid(
                    "rotation_unsupported",
                    format!(
                        "target {target} is generic: Warrant cannot change secrets there; rotate by hand and store the new one with `warrant account set-secret {target} {name} --secret-stdin`"
                    ),
                ));
            }
            row
        };
        self.rotate(&row.target, &row.name, "manual").await
    }

    /// Runs every rotation that is due or was interrupted (at start, and by the rotation loop
    /// of `warrant serve`). Returns how many accounts it looked at.
    pub async fn rotate_due_accounts(&self) -> Result<u64> {
        let due = {
            let mut r = self.store().read().await?;
            r.q().accounts_to_rotate(self.now()).await?
        };
        let mut n = 0;
        for a in due {
            n += 1;
            let scheduled = a
                .rotate_every_secs
                .map(|s| a.last_rotated_at.unwrap_or(a.created_at).plus_secs(s));
            let trigger = if a.pending_sealed.is_some() {
                "recovery"
            } else if scheduled.is_some() && scheduled == a.rotation_due_at {
                "schedule"
            } else {
                "checkin"
            };
            if let Err(e) = self.rotate(&a.target, &a.name, trigger).await {
                tracing::warn!(target = %a.target, account = %a.name, error = %e, "rotation could not run");
            }
        }
        Ok(n)
    }

    /// Runs [`rotate_due_accounts`](Self::rotate_due_accounts) until `shutdown`: every five
    /// seconds, and at once after a check-in.
    pub async fn run_rotations(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.rotate_due_accounts().await {
                tracing::error!(error = %e, "rotation pass failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                () = self.inner.rotate_wake.notified() => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// A test hook: `WARRANT_TEST_CRASH_AT=<step>` in the server's environment aborts the
    /// process right after that rotation step is committed, so tests can show recovery.
    fn crash_point(&self, step: &str) {
        if self.inner.config.crash_at.as_deref() == Some(step) {
            tracing::error!(step, "WARRANT_TEST_CRASH_AT: aborting the process");
            std::process::abort();
        }
    }

    async fn connector(&self, target: &Target) -> Result<Connector> {
        match target.kind {
            TargetKind::Postgres => Ok(Connector::Postgres(self.target_conn(target).await?)),
            TargetKind::Ssh => Ok(Connector::Linux(Box::new(self.host_access(target).await?))),
            TargetKind::Generic => Err(EngineError::invalid(
                "rotation_unsupported",
                format!(
                    "target {} is generic: Warrant cannot change secrets there",
                    target.name
                ),
            )),
        }
    }

    /// One journaled step: updates the row and audits the step, in one transaction. Returns
    /// false (and changes nothing) if the account changed meanwhile, or — when the step starts
    /// a rotation — if it is checked out.
    async fn journal(
        &self,
        before: &VaultedAccountRow,
        after: &VaultedAccountRow,
        step: &str,
        trigger: &str,
    ) -> Result<bool> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let current = tx.q().vaulted_account(&before.target, &before.name).await?;
        if current
            .as_ref()
            .map(|c| (&c.sealed, &c.pending_sealed, &c.rotation_id))
            != Some((&before.sealed, &before.pending_sealed, &before.rotation_id))
        {
            tx.rollback().await?;
            return Ok(false);
        }
        // Starting a rotation: not while someone holds the account. Checked under the writer
        // lock; once the pending secret is committed, checkouts wait for the rotation.
        if before.pending_sealed.is_none()
            && after.pending_sealed.is_some()
            && !tx
                .q()
                .open_checkouts(&before.target, &before.name)
                .await?
                .is_empty()
        {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut after = after.clone();
        after.updated_at = now;
        tx.w().await?.update_vaulted_account(&after).await?;
        tx.audit(
            now,
            None,
            &Event::AccountRotationStep {
                target: after.target.clone(),
                account: after.name.clone(),
                rotation_id: after
                    .rotation_id
                    .clone()
                    .or_else(|| before.rotation_id.clone())
                    .unwrap_or_default(),
                step: step.to_owned(),
                trigger: trigger.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.crash_point(step);
        Ok(true)
    }

    async fn rotation_failed(
        &self,
        row: &VaultedAccountRow,
        rotation_id: &str,
        step: &str,
        error: String,
    ) -> Result<RotationOutcome> {
        let now = self.now();
        let error: String = error.chars().take(500).collect();
        let mut tx = self.store().begin().await?;
        let Some(mut cur) = tx.q().vaulted_account(&row.target, &row.name).await? else {
            tx.rollback().await?;
            return Ok(RotationOutcome::Failed {
                step: step.to_owned(),
                error,
            });
        };
        cur.rotation_attempts += 1;
        cur.last_error = Some(format!("{step}: {error}"));
        cur.rotation_due_at = Some(now.plus_secs(backoff_secs(cur.rotation_attempts - 1).max(5)));
        cur.updated_at = now;
        tx.w().await?.update_vaulted_account(&cur).await?;
        tx.audit(
            now,
            None,
            &Event::AccountRotationFailed {
                target: row.target.clone(),
                account: row.name.clone(),
                rotation_id: rotation_id.to_owned(),
                step: step.to_owned(),
                error: error.clone(),
                attempts: cur.rotation_attempts,
            },
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("warrant_rotation_failures_total").increment(1);
        tracing::warn!(target = %row.target, account = %row.name, step, error = %error, "rotation failed; the working secret is kept");
        Ok(RotationOutcome::Failed {
            step: step.to_owned(),
            error,
        })
    }

    /// The journaled rotation of one account (see the module's documentation).
    async fn rotate(&self, target: &str, name: &str, trigger: &str) -> Result<RotationOutcome> {
        let Some(_guard) = self.inner.rotations.try_lock(target, name) else {
            return Ok(RotationOutcome::Deferred(
                "another rotation of this account is running".into(),
            ));
        };
        let (row, tgt, open) = {
            let mut r = self.store().read().await?;
            let row = r
                .q()
                .vaulted_account(target, name)
                .await?
                .ok_or_else(|| not_found(target, name))?;
            let tgt = r
                .q()
                .target(target)
                .await?
                .ok_or_else(|| crate::catalogue::target_not_found(target))?;
            let open = r.q().open_checkouts(target, name).await?;
            (row, tgt, open)
        };
        if row.pending_sealed.is_none() && !open.is_empty() {
            return Ok(RotationOutcome::Deferred(format!(
                "checked out by {}: rotated after the check-in",
                open.iter()
                    .map(|c| c.identity.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let aad = account_aad(target, name);
        let rotation_id = match &row.rotation_id {
            Some(id) => id.clone(),
            None => warrant_iam::new_id()?,
        };
        let conn = match self.connector(&tgt).await {
            Ok(c) => c,
            Err(e) => {
                return self
                    .rotation_failed(&row, &rotation_id, "connect", e.message)
                    .await;
            }
        };
        let current = self.open_text(&aad, &row.sealed)?;

        // Resume an interrupted rotation.
        if let Some(pending_sealed) = &row.pending_sealed {
            let pending = self.open_text(&aad, pending_sealed)?;
            match conn.verify(name, &pending).await {
                Ok(true) => {
                    return self.commit_rotation(&row, &rotation_id, trigger).await;
                }
                Ok(false) => {}
                Err(e) => {
                    return self
                        .rotation_failed(&row, &rotation_id, "verify_pending", e)
                        .await;
                }
            }
            if let Some(failed) = self
                .check_works(
                    &conn,
                    &row,
                    &rotation_id,
                    "verify_current",
                    &current,
                    NEITHER_WORKS,
                )
                .await?
            {
                return Ok(failed);
            }
            return self
                .set_and_commit(&conn, &row, &pending, &rotation_id, trigger)
                .await;
        }

        if let Some(failed) = self
            .check_works(
                &conn,
                &row,
                &rotation_id,
                "verify_current",
                &current,
                CURRENT_FAILS,
            )
            .await?
        {
            return Ok(failed);
        }
        let new = conn.generate()?;
        let mut kept = row.clone();
        kept.pending_sealed = Some(self.seal_text(&aad, &new)?);
        kept.rotation_id = Some(rotation_id.clone());
        kept.rotation_step = Some("new_kept".into());
        if !self.journal(&row, &kept, "new_kept", trigger).await? {
            return Ok(RotationOutcome::Deferred(
                "the account was checked out or changed meanwhile".into(),
            ));
        }
        self.set_and_commit(&conn, &kept, &new, &rotation_id, trigger)
            .await
    }

    /// Verifies `secret` on the target: `None` when it works, otherwise the recorded failure of
    /// `step` (`refused` when the target says no, the connector's error otherwise).
    async fn check_works(
        &self,
        conn: &Connector,
        row: &VaultedAccountRow,
        rotation_id: &str,
        step: &str,
        secret: &Secret<String>,
        refused: &str,
    ) -> Result<Option<RotationOutcome>> {
        let error = match conn.verify(&row.name, secret).await {
            Ok(true) => return Ok(None),
            Ok(false) => refused.to_owned(),
            Err(e) => e,
        };
        Ok(Some(
            self.rotation_failed(row, rotation_id, step, error).await?,
        ))
    }

    async fn set_and_commit(
        &self,
        conn: &Connector,
        row: &VaultedAccountRow,
        new: &Secret<String>,
        rotation_id: &str,
        trigger: &str,
    ) -> Result<RotationOutcome> {
        let name = row.name.as_str();
        if let Err(e) = conn.set(name, new).await {
            return self.rotation_failed(row, rotation_id, "set_new", e).await;
        }
        let mut set = row.clone();
        set.rotation_step = Some("set_new".into());
        if !self.journal(row, &set, "set_new", trigger).await? {
            return Ok(RotationOutcome::Deferred(
                "the account changed meanwhile".into(),
            ));
        }
        if let Some(failed) = self
            .check_works(conn, &set, rotation_id, "verify_new", new, NEW_REFUSED)
            .await?
        {
            return Ok(failed);
        }
        let mut verified = set.clone();
        verified.rotation_step = Some("verified_new".into());
        if !self
            .journal(&set, &verified, "verified_new", trigger)
            .await?
        {
            return Ok(RotationOutcome::Deferred(
                "the account changed meanwhile".into(),
            ));
        }
        self.commit_rotation(&verified, rotation_id, trigger).await
    }

    async fn commit_rotation(
        &self,
        row: &VaultedAccountRow,
        rotation_id: &str,
        trigger: &str,
    ) -> Result<RotationOutcome> {
        let now = self.now();
        let Some(pending) = row.pending_sealed.clone() else {
            return Ok(RotationOutcome::Deferred("nothing pending".into()));
        };
        let mut done = row.clone();
        done.sealed = pending;
        done.pending_sealed = None;
        done.rotation_id = None;
        done.rotation_step = None;
        done.rotation_attempts = 0;
        done.last_error = None;
        done.last_rotated_at = Some(now);
        done.rotation_due_at = row.rotate_every_secs.map(|s| now.plus_secs(s));
        if !self.journal(row, &done, "committed", trigger).await? {
            return Ok(RotationOutcome::Deferred(
                "the account changed meanwhile".into(),
            ));
        }
        metrics::counter!("warrant_rotations_total").increment(1);
        Ok(RotationOutcome::Rotated {
            rotation_id: rotation_id.to_owned(),
        })
    }
}

/// Checks one checkout in, audits it, and makes the account's rotation due where configured.
pub(crate) async fn check_in(
    tx: &mut WriteTx,
    c: &CheckoutRow,
    by: Option<&str>,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    if !tx.w().await?.check_in(&c.id, now).await? {
        return Ok(());
    }
    tx.audit(
        now,
        by,
        &Event::AccountCheckedIn {
            identity: c.identity.clone(),
            target: c.target.clone(),
            account: c.account.clone(),
            grant_id: c.grant_id.clone(),
            checkout_id: c.id.clone(),
            reason: reason.to_owned(),
        },
    )
    .await?;
    if let Some(mut a) = tx.q().vaulted_account(&c.target, &c.account).await?
        && a.rotate_after_checkin
    {
        a.rotation_due_at = Some(now);
        a.updated_at = now;
        tx.w().await?.update_vaulted_account(&a).await?;
    }
    Ok(())
}

/// Checks in every open checkout of a grant that is closing (same transaction as the close).
pub(crate) async fn check_in_grant(tx: &mut WriteTx, grant_id: &str, now: Timestamp) -> Result<()> {
    for c in tx.q().open_checkouts_of_grant(grant_id).await? {
        check_in(tx, &c, None, "grant_closed", now).await?;
    }
    Ok(())
}

//! Second factors: TOTP enrolment and verification, recovery codes, step-up, admin reset.
//!
//! A TOTP seed is sealed by the vault (envelope encryption, bound to the factor's id and
//! owner) and opened only inside the writer transaction that verifies a code, so the step
//! that a code used is recorded before anyone else can present it: each code works once.
//! Failures are rate-limited per identity and every success and failure is audited.

use std::collections::HashMap;
use std::sync::Mutex;

use warrant_audit::Event;
use warrant_core::{Name, Secret, SystemRole, Timestamp};
use warrant_store::{FactorRow, WriteTx};

use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// How long a proved second factor counts for step-up.
pub const STEP_UP_SECS: i64 = 300;
/// Failed second-factor attempts allowed per identity within [`FAILURE_WINDOW_SECS`].
pub const MAX_FAILURES: usize = 5;
/// The window of [`MAX_FAILURES`].
pub const FAILURE_WINDOW_SECS: i64 = 300;

/// Whether the actor proved a second factor within the last [`STEP_UP_SECS`].
pub(crate) fn is_fresh(actor: &Actor, now: Timestamp) -> bool {
    actor
        .mfa_at
        .is_some_and(|t| t <= now && t.plus_secs(STEP_UP_SECS) > now)
}

/// The refusal when a fresh second factor is needed, saying how to give one.
pub(crate) fn step_up_required(why: &str) -> EngineError {
    EngineError::forbidden(
        "mfa_required",
        format!(
            "{why}: run `warrant mfa verify` with a code from your authenticator app (or a recovery code), or prove your security key (POST /api/v1/mfa/webauthn/verify), and try again; no authenticator yet? `warrant mfa enrol`"
        ),
    )
}

/// Why a second factor was refused.
fn code_refused() -> EngineError {
    EngineError::unauthenticated(
        "mfa_invalid",
        "the code is wrong, expired or already used: wait for the next code of your authenticator app",
    )
}

/// Per-identity failure counts (in memory: a restart forgets them, the audit does not).
#[derive(Debug, Default)]
pub(crate) struct FailureLimiter(Mutex<HashMap<String, Vec<Timestamp>>>);

impl FailureLimiter {
    fn recent(&self, who: &str, now: Timestamp) -> usize {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let v = m.entry(who.to_owned()).or_default();
        v.retain(|t| t.plus_secs(FAILURE_WINDOW_SECS) > now);
        v.len()
    }

    fn record(&self, who: &str, now: Timestamp) {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.len() > 100_000 {
            m.retain(|_, v| v.iter().any(|t| t.plus_secs(FAILURE_WINDOW_SECS) > now));
        }
        m.entry(who.to_owned()).or_default().push(now);
    }

    fn clear(&self, who: &str) {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.remove(who);
    }
}

/// A TOTP enrolment in progress: what the authenticator app needs. Shown once.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The factor's id.
    pub factor_id: String,
    /// `otpauth://totp/…` (render it as a QR code).
    pub uri: Secret<String>,
    /// The seed as base32 text, to type into the app.
    pub secret: Secret<String>,
}

/// One second factor, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorView {
    /// Id.
    pub id: String,
    /// `totp` or `webauthn`.
    pub kind: String,
    /// Label.
    pub label: String,
    /// Whether enrolment was confirmed.
    pub confirmed: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last successful use.
    pub last_used_at: Option<Timestamp>,
}

/// An identity's second factors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    /// Whose.
    pub identity: Name,
    /// Its factors.
    pub factors: Vec<FactorView>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

impl MfaStatus {
    /// Whether a confirmed factor exists (sign-in then needs one).
    pub fn enrolled(&self) -> bool {
        self.factors.iter().any(|f| f.confirmed)
    }
}

/// The associated data a factor's secret is sealed with (TOTP seeds and WebAuthn credentials).
pub(crate) fn aad(f: &FactorRow) -> String {
    format!("mfa:{}:{}", f.id, f.identity)
}

/// How a second factor was proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    Totp,
    RecoveryCode,
}

impl Proof {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

impl Engine {
    pub(crate) fn vault(&self) -> Result<std::sync::Arc<warrant_vault::Vault>> {
        let v = match self.inner.vault.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        };
        v.ok_or_else(|| {
            EngineError::internal("no key-encryption key is configured: start the server with a data directory or WARRANT_KEK")
        })
    }

    /// Whether `identity` has a confirmed second factor.
    pub(crate) async fn has_mfa(&self, identity: &str) -> Result<bool> {
        let mut r = self.store().read().await?;
        Ok(r.q()
            .factors_of(identity)
            .await?
            .iter()
            .any(|f| f.confirmed_at.is_some()))
    }

    /// Checks `code` against `identity`'s confirmed TOTP factors and then its recovery codes
    /// or, when `enrolment`, against its unconfirmed TOTP factor only (a code of a factor
    /// already in force does not confirm a new one), inside `tx`, recording the use. Returns
    /// how it was proved, or `None`.
    pub(crate) async fn tx_prove(
        &self,
        tx: &mut WriteTx,
        identity: &str,
        code: &str,
        unconfirmed_too: bool,
        now: Timestamp,
    ) -> Result<Option<Proof>> {
        let vault = self.vault()?;
        let unix = u64::try_from(now.unix_seconds()).unwrap_or(0);
        let factors = tx.q().factors_of(identity).await?;
        for f in factors
            .iter()
            .filter(|f| f.kind == "totp" && f.confirmed_at.is_none() == unconfirmed_too)
        {
            let sealed: warrant_vault::Sealed = f
                .secret
                .parse()
                .map_err(|_| EngineError::internal("a stored TOTP seed does not parse"))?;
            let seed = vault
                .open(&aad(f), &sealed)
                .map_err(|e| EngineError::internal(format!("opening a TOTP seed: {}", e.code())))?;
            let last = f.last_step.and_then(|s| u64::try_from(s).ok());
            if let Some(step) = warrant_iam::totp::verify(&seed, code, unix, last) {
                let step = i64::try_from(step).unwrap_or(i64::MAX);
                tx.w().await?.factor_used(&f.id, Some(step), now).await?;
                return Ok(Some(Proof::Totp));
            }
        }
        if !unconfirmed_too {
            let hash = warrant_iam::totp::recovery_code_hash(code);
            if tx
                .w()
                .await?
                .use_recovery_code(identity, &hash, now)
                .await?
            {
                return Ok(Some(Proof::RecoveryCode));
            }
        }
        Ok(None)
    }

    /// When a sign-in session that starts at `now` ends (absolute timeout).
    pub(crate) fn session_end(&self, now: Timestamp) -> Timestamp {
        now.plus_secs(self.inner.config.session_ttl_secs)
    }

    /// Refuses while `who` has too many recent failures.
    pub(crate) fn mfa_rate_check(&self, who: &str, now: Timestamp) -> Result<()> {
        if self.inner.mfa_failures.recent(who, now) >= MAX_FAILURES {
            return Err(EngineError::rate_limited(format!(
                "too many wrong codes: wait {} minutes and try again",
                FAILURE_WINDOW_SECS / 60
            )));
        }
        Ok(())
    }

    pub(crate) fn mfa_failed(&self, who: &str, now: Timestamp) {
        self.inner.mfa_failures.record(who, now);
    }

    pub(crate) fn mfa_succeeded(&self, who: &str) {
        self.inner.mfa_failures.clear(who);
    }

    /// Records a failed proof in its own transaction (the caller's was rolled back).
    pub(crate) async fn audit_mfa_failure(
        &self,
        identity: &str,
        purpose: &str,
        reason: &str,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.audit(
            now,
            Some(identity),
            &Event::MfaFailed {
                identity: identity.to_owned(),
                purpose: purpose.to_owned(),
                reason: reason.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The second factors of `identity` (oneself, or anyone for auditors and admins).
    pub async fn mfa_status(&self, actor: &Actor, identity: Option<&str>) -> Result<MfaStatus> {
        let who = identity.unwrap_or(actor.name.as_str());
        if who != actor.name.as_str() {
            crate::require_role(actor, SystemRole::Auditor)?;
        }
        let mut r = self.store().read().await?;
        let ident = r
            .q()
            .identity(who)
            .await?
            .ok_or_else(|| crate::directory::identity_not_found(who))?;
        let factors = r.q().factors_of(who).await?;
        let left = r.q().recovery_codes_left(who).await?;
        Ok(MfaStatus {
            identity: ident.name,
            factors: factors
                .into_iter()
                .map(|f| FactorView {
                    id: f.id,
                    kind: f.kind,
                    label: f.label,
                    confirmed: f.confirmed_at.is_some(),
                    created_at: f.created_at,
                    last_used_at: f.last_used_at,
                })
                .collect(),
            recovery_codes_left: left,
        })
    }

    /// Starts a TOTP enrolment for the actor: a new seed, sealed and stored unconfirmed. An
    /// earlier unconfirmed TOTP enrolment is replaced. Adding a factor when one is already in
    /// force needs a fresh proof of the existing one.
    pub async fn totp_enrol(&self, actor: &Actor, label: &str) -> Result<TotpEnrolment> {
        let label = label.trim();
        let label = if label.is_empty() {
            "authenticator"
        } else {
            label
        };
        if label.chars().count() > 100 {
            return Err(EngineError::invalid(
                "invalid_label",
                "give the factor a label of at most 100 characters",
            ));
        }
        let now = self.now();
        if self.has_mfa(actor.name.as_str()).await? && !is_fresh(actor, now) {
            return Err(step_up_required(
                "adding a second factor when you already have one needs a fresh proof of it",
            ));
        }
        let vault = self.vault()?;
        let seed = warrant_iam::totp::new_seed()?;
        let (uri, text) =
            warrant_iam::totp::enrolment(seed.expose(), "Warrant", actor.name.as_str())?;
        let mut row = FactorRow {
            id: warrant_iam::new_id()?,
            identity: actor.name.clone(),
            kind: "totp".into(),
            label: label.to_owned(),
            secret: String::new(),
            confirmed_at: None,
            last_step: None,
            last_used_at: None,
            created_at: now,
        };
        row.secret = vault
            .seal(&aad(&row), seed.expose())
            .map_err(|e| EngineError::internal(format!("sealing a TOTP seed: {}", e.code())))?
            .to_string();
        let mut tx = self.store().begin().await?;
        crate::directory::load_identity(&mut tx, actor.name.as_str()).await?;
        tx.w()
            .await?
            .delete_unconfirmed_factors(actor.name.as_str(), "totp")
            .await?;
        tx.w().await?.insert_factor(&row).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::MfaEnrolmentStarted {
                identity: actor.name.to_string(),
                factor_id: row.id.clone(),
                kind: "totp".into(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(TotpEnrolment {
            factor_id: row.id,
            uri: Secret::new(uri),
            secret: Secret::new(text),
        })
    }

    /// Confirms the actor's TOTP enrolment with a first code. Returns new recovery codes
    /// (shown once) when the identity had none; the session counts as MFA-proved.
    pub async fn totp_confirm(
        &self,
        actor: &Actor,
        code: &Secret<String>,
    ) -> Result<Vec<Secret<String>>> {
        let who = actor.name.as_str();
        let now = self.now();
        // Checked and counted under the writer lock, so parallel guesses queue and are counted
        // one by one.
        let mut tx = self.store().begin().await?;
        self.mfa_rate_check(who, now)?;
        let pending = tx
            .q()
            .factors_of(who)
            .await?
            .into_iter()
            .find(|f| f.kind == "totp" && f.confirmed_at.is_none());
        let Some(pending) = pending else {
            return Err(EngineError::conflict(
                "no_enrolment",
                "there is no TOTP enrolment to confirm: start one with `warrant mfa enrol`",
            ));
        };
        let proof = self
            .tx_prove(&mut tx, who, code.expose(), true, now)
            .await?;
        if proof.is_none() {
            self.mfa_failed(who, now);
            tx.rollback().await?;
            self.audit_mfa_failure(who, "enrolment", "wrong_code")
                .await?;
            return Err(code_refused());
        }
        tx.audit(
            now,
            Some(who),
            &Event::MfaEnrolled {
                identity: who.to_owned(),
                factor_id: pending.id.clone(),
                kind: "totp".into(),
            },
        )
        .await?;
        let codes = if tx.q().recovery_codes_left(who).await? == 0 {
            tx_issue_recovery_codes(&mut tx, who, now).await?
        } else {
            Vec::new()
        };
        if let Some(t) = &actor.token_id {
            tx.w()
                .await?
                .set_token_mfa(t, now, self.session_end(now))
                .await?;
        }
        tx.commit().await?;
        self.mfa_succeeded(who);
        Ok(codes)
    }

    /// Step-up: proves a second factor (a TOTP code or a recovery code) for the actor's
    /// session. Returns the instant it counts from.
    pub async fn mfa_verify(&self, actor: &Actor, code: &Secret<String>) -> Result<Timestamp> {
        let who = actor.name.as_str();
        let Some(token) = actor.token_id.as_deref() else {
            return Err(EngineError::invalid(
                "no_session",
                "step-up applies to a sign-in session: sign in with `warrant login`",
            ));
        };
        let now = self.now();
        let mut tx = self.store().begin().await?;
        self.mfa_rate_check(who, now)?;
        let proof = self
            .tx_prove(&mut tx, who, code.expose(), false, now)
            .await?;
        let Some(proof) = proof else {
            self.mfa_failed(who, now);
            tx.rollback().await?;
            let reason = if self.has_mfa(who).await? {
                "wrong_code"
            } else {
                "not_enrolled"
            };
            self.audit_mfa_failure(who, "step-up", reason).await?;
            if reason == "not_enrolled" {
                return Err(EngineError::conflict(
                    "mfa_not_enrolled",
                    "you have no second factor yet: enrol one with `warrant mfa enrol`",
                ));
            }
            return Err(code_refused());
        };
        tx.w()
            .await?
            .set_token_mfa(token, now, self.session_end(now))
            .await?;
        tx.audit(
            now,
            Some(who),
            &Event::MfaVerified {
                identity: who.to_owned(),
                method: proof.as_str().to_owned(),
                purpose: "step-up".into(),
            },
        )
        .await?;
        tx.commit().await?;
        self.mfa_succeeded(who);
        Ok(now)
    }

    /// New recovery codes for the actor, replacing the old ones (needs a fresh proof).
    pub async fn regenerate_recovery_codes(&self, actor: &Actor) -> Result<Vec<Secret<String>>> {
        let now = self.now();
        if !is_fresh(actor, now) {
            return Err(step_up_required(
                "new recovery codes need a fresh second factor",
            ));
        }
        let mut tx = self.store().begin().await?;
        let codes = tx_issue_recovery_codes(&mut tx, actor.name.as_str(), now).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// An admin removes every second factor and recovery code of `identity` (a lost phone);
    /// the identity's sessions end, so the next sign-in is a fresh one.
    pub async fn mfa_reset(&self, actor: &Actor, identity: &str) -> Result<u64> {
        require_admin(actor)?;
        if self.has_mfa(actor.name.as_str()).await? && !is_fresh(actor, self.now()) {
            return Err(step_up_required(
                "removing someone's second factors needs a fresh proof of yours",
            ));
        }
        if actor.name.as_str() == identity {
            return Err(EngineError::conflict(
                "cannot_reset_self",
                "you cannot reset your own MFA; ask another admin",
            ));
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        crate::directory::load_identity(&mut tx, identity).await?;
        let removed = tx.w().await?.delete_mfa_of(identity).await?;
        tx.w()
            .await?
            .revoke_sessions_of(identity, None, now)
            .await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::MfaReset {
                identity: identity.to_owned(),
                factors_removed: removed,
            },
        )
        .await?;
        tx.commit().await?;
        self.mfa_succeeded(identity);
        Ok(removed)
    }
}

pub(crate) async fn tx_issue_recovery_codes(
    tx: &mut WriteTx,
    identity: &str,
    now: Timestamp,
) -> Result<Vec<Secret<String>>> {
    let fresh = warrant_iam::totp::new_recovery_codes()?;
    let hashes: Vec<String> = fresh.iter().map(|(_, h)| h.clone()).collect();
    tx.w()
        .await?
        .set_recovery_codes(identity, &hashes, now)
        .await?;
    tx.audit(
        now,
        Some(identity),
        &Event::RecoveryCodesIssued {
            identity: identity.to_owned(),
            count: hashes.len() as u64,
        },
    )
    .await?;
    Ok(fresh.into_iter().map(|(c, _)| c).collect())
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RekeyReport {
    /// The KEK every secret is now wrapped under (its id).
    pub kek_id: String,
    /// Whether a new KEK was put in force first.
    pub new_kek: bool,
    /// Secrets re-wrapped.
    pub rewrapped: u64,
    /// Secrets that were already under it.
    pub unchanged: u64,
}

impl Engine {
    /// Key rotation: puts `new_kek` in force (when given; the previous keys still open what
    /// they sealed) and re-wraps every sealed secret's data key under the key in force, in one
    /// audited transaction. The sealed data itself is not touched. Admins, with a fresh second
    /// factor when they have one.
    pub async fn vault_rekey(
        &self,
        actor: &Actor,
        new_kek: Option<warrant_vault::Kek>,
    ) -> Result<RekeyReport> {
        require_admin(actor)?;
        if self.has_mfa(actor.name.as_str()).await? && !is_fresh(actor, self.now()) {
            return Err(step_up_required(
                "a key rotation needs a fresh second factor",
            ));
        }
        let new = new_kek.is_some();
        if let Some(k) = new_kek {
            let rotated = std::sync::Arc::new(self.vault()?.rotated(k));
            match self.inner.vault.write() {
                Ok(mut v) => *v = Some(rotated),
                Err(p) => *p.into_inner() = Some(rotated),
            }
        }
        let vault = self.vault()?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let (mut rewrapped, mut unchanged) = (0u64, 0u64);
        for f in tx.q().all_factors().await? {
            let sealed: warrant_vault::Sealed = f.secret.parse().map_err(|_| {
                EngineError::internal(format!("factor {}: sealed secret does not parse", f.id))
            })?;
            if !vault.needs_rewrap(&sealed) {
                unchanged += 1;
                continue;
            }
            let again = vault.rewrap(&aad(&f), &sealed).map_err(|e| {
                EngineError::internal(format!("factor {}: re-wrapping failed: {}", f.id, e.code()))
            })?;
            tx.w()
                .await?
                .set_factor_secret(&f.id, &again.to_string())
                .await?;
            rewrapped += 1;
        }
        for (target, sealed) in tx.q().target_secrets().await? {
            let parsed: warrant_vault::Sealed = sealed.parse().map_err(|_| {
                EngineError::internal(format!("target {target}: sealed secret does not parse"))
            })?;
            if vault.needs_rewrap(&parsed) {
                let again = vault
                    .rewrap(&crate::pg::secret_aad(&target), &parsed)
                    .map_err(|e| {
                        EngineError::internal(format!(
                            "target {target}: re-wrapping failed: {}",
                            e.code()
                        ))
                    })?;
                tx.w()
                    .await?
                    .set_target_secret(&target, &again.to_string(), now)
                    .await?;
                rewrapped += 1;
            } else {
                unchanged += 1;
            }
        }
        if let Some((sealed, _)) = tx.q().ssh_ca().await? {
            let sealed: warrant_vault::Sealed = sealed
                .parse()
                .map_err(|_| EngineError::internal("the stored SSH CA does not parse"))?;
            if vault.needs_rewrap(&sealed) {
                let again = vault.rewrap(crate::ssh::CA_AAD, &sealed).map_err(|e| {
                    EngineError::internal(format!("re-wrapping the SSH CA failed: {}", e.code()))
                })?;
                tx.w().await?.set_ssh_ca_sealed(&again.to_string()).await?;
                rewrapped += 1;
            } else {
                unchanged += 1;
            }
        }
        for mut a in tx.q().vaulted_accounts().await? {
            let aad = crate::accounts::account_aad(&a.target, &a.name);
            let mut changed = false;
            let rewrap = |s: &str| -> Result<Option<String>> {
                let parsed: warrant_vault::Sealed = s.parse().map_err(|_| {
                    EngineError::internal("a vaulted account's sealed secret does not parse")
                })?;
                if !vault.needs_rewrap(&parsed) {
                    return Ok(None);
                }
                Ok(Some(
                    vault
                        .rewrap(&aad, &parsed)
                        .map_err(|e| {
                            EngineError::internal(format!(
                                "re-wrapping a vaulted account failed: {}",
                                e.code()
                            ))
                        })?
                        .to_string(),
                ))
            };
            if let Some(again) = rewrap(&a.sealed)? {
                a.sealed = again;
                changed = true;
            }
            if let Some(p) = a.pending_sealed.as_deref()
                && let Some(again) = rewrap(p)?
            {
                a.pending_sealed = Some(again);
                changed = true;
            }
            if changed {
                tx.w().await?.update_vaulted_account(&a).await?;
                rewrapped += 1;
            } else {
                unchanged += 1;
            }
        }
        for (name, sealed) in tx.q().sealed_keys().await? {
            let parsed: warrant_vault::Sealed = sealed.parse().map_err(|_| {
                EngineError::internal(format!("the stored key {name} does not parse"))
            })?;
            if vault.needs_rewrap(&parsed) {
                // Each of Warrant's own keys is sealed with its name as associated data.
                let again = vault.rewrap(&name, &parsed).map_err(|e| {
                    EngineError::internal(format!(
                        "re-wrapping the key {name} failed: {}",
                        e.code()
                    ))
                })?;
                tx.w()
                    .await?
                    .set_sealed_key(&name, &again.to_string())
                    .await?;
                rewrapped += 1;
            } else {
                unchanged += 1;
            }
        }
        let report = RekeyReport {
            kek_id: vault.current_kek_id().to_owned(),
            new_kek: new,
            rewrapped,
            unchanged,
        };
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::VaultRekeyed {
                kek_id: report.kek_id.clone(),
                new_kek: new,
                rewrapped,
                unchanged,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}

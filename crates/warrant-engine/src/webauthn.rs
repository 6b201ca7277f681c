//! WebAuthn (passkeys, security keys) as a second factor, through `webauthn-rs`: registration,
//! step-up, and sign-in after the password.
//!
//! Each ceremony has two calls. The first keeps the ceremony's state server side (table
//! `pending_logins`, five minutes, a random id; kinds `webauthn-reg`, `webauthn-stepup`,
//! `webauthn-signin`) and returns the options for the browser's `navigator.credentials`; the
//! second takes that state out of the store in one statement (so a challenge is answered at
//! most once) and verifies the authenticator's answer. Step-up and registration states are bound
//! to the session that started them.
//!
//! Credentials are `webauthn-rs` passkeys (user verification required: a PIN or biometric on the
//! authenticator). The stored credential (public key, id, signature counter) is sealed by the
//! vault like a TOTP seed, bound to the factor's id and owner: the public key is no secret, but
//! sealing means that someone who can write the database but has no key-encryption key cannot
//! plant a credential of their own, nor move one to another identity. The counter is updated
//! after each use, in the transaction that records the use; a counter that goes backwards (a
//! cloned authenticator) is refused by `webauthn-rs`.

use serde::{Deserialize, Serialize};
use warrant_audit::Event;
use warrant_core::{IdentityStatus, Secret, Timestamp};
use warrant_store::{FactorRow, WriteTx};
use webauthn_rs::prelude::{
    CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::Engine;
use crate::auth::{Actor, IssuedToken, Scope, TokenSpec, issue_token};
use crate::error::{EngineError, Result};
use crate::mfa::aad;
use crate::mfa::{is_fresh, step_up_required, tx_issue_recovery_codes};

/// How long a WebAuthn ceremony may take, from its start to its answer.
pub const CEREMONY_SECS: i64 = 300;

/// The `kind` of factors and of what they are stored as.
const KIND: &str = "webauthn";
const REG_KIND: &str = "webauthn-reg";
const STEP_UP_KIND: &str = "webauthn-stepup";
const SIGN_IN_KIND: &str = "webauthn-signin";

/// The relying party: this server as authenticators and browsers know it (`webauthn:` in the
/// server's config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebauthnSettings {
    /// The relying party id: the domain credentials are bound to, e.g. `warrant.example.com`
    /// (or a parent domain of the origin).
    pub rp_id: String,
    /// The origin browsers report, e.g. `https://warrant.example.com` (plain `http` only for
    /// `localhost`, as browsers allow).
    pub rp_origin: String,
    /// The name authenticators show.
    #[serde(default = "default_rp_name")]
    pub rp_name: String,
}

fn default_rp_name() -> String {
    "Warrant".into()
}

impl WebauthnSettings {
    /// The `webauthn-rs` relying party, or why the settings do not make one.
    pub fn build(&self) -> Result<Webauthn> {
        let bad = |why: &str| {
            EngineError::invalid(
                "invalid_webauthn_settings",
                format!(
                    "webauthn: {why} (rp_id {:?}, rp_origin {:?})",
                    self.rp_id, self.rp_origin
                ),
            )
        };
        let origin = Url::parse(&self.rp_origin).map_err(|_| bad("rp_origin is not a URL"))?;
        let local = origin.host_str() == Some("localhost");
        if origin.scheme() != "https" && !(local && origin.scheme() == "http") {
            return Err(bad("rp_origin must be https (http only for localhost)"));
        }
        WebauthnBuilder::new(&self.rp_id, &origin)
            .map_err(|_| bad("rp_id must be the origin's host or a parent domain of it"))?
            .rp_name(&self.rp_name)
            .build()
            .map_err(|_| bad("the relying party cannot be built"))
    }
}

/// A ceremony started: its id (give it back with the answer) and the options for the browser
/// (`navigator.credentials.create` or `.get`, as `webauthn-rs` serialises them).
#[derive(Debug, Clone)]
pub struct Ceremony {
    /// The id of the ceremony's server-side state.
    pub challenge_id: String,
    /// `CreationChallengeResponse` or `RequestChallengeResponse` as JSON.
    pub options: serde_json::Value,
}

/// A WebAuthn registration completed.
#[derive(Debug)]
pub struct Registered {
    /// The new factor's id.
    pub factor_id: String,
    /// New recovery codes (shown once) when the identity had none.
    pub recovery_codes: Vec<Secret<String>>,
}

#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    identity: String,
    token_id: Option<String>,
    label: String,
    state: PasskeyRegistration,
}

#[derive(Serialize, Deserialize)]
struct PendingAuthentication {
    identity: String,
    /// The session a step-up is for; `None` for a sign-in.
    token_id: Option<String>,
    state: PasskeyAuthentication,
}

/// A stored credential, opened.
struct Credential {
    row: FactorRow,
    passkey: Passkey,
}

/// The user handle given to authenticators: stable per identity, not its name.
fn user_handle(identity: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("warrant-webauthn-user:{identity}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid()
}

/// The audited reason of a refused answer: which check failed, never what was presented.
fn refusal_reason(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::InvalidRPOrigin | WebauthnError::InvalidRPIDHash => "wrong_origin",
        WebauthnError::CredentialNotFound => "unknown_credential",
        WebauthnError::UserNotVerified | WebauthnError::UserNotPresent => "user_not_verified",
        WebauthnError::CredentialPossibleCompromise => "counter_regressed",
        _ => "assertion_refused",
    }
}

fn refused() -> EngineError {
    EngineError::unauthenticated(
        "mfa_invalid",
        "the security key's answer was refused (another key, another site, or a challenge that expired or was already used): start again",
    )
}

fn no_ceremony(what: &str) -> EngineError {
    EngineError::conflict(
        "no_ceremony",
        format!(
            "there is no {what} in progress with this challenge id (it lasts {} minutes and is answered once): start again",
            CEREMONY_SECS / 60
        ),
    )
}

fn not_enrolled() -> EngineError {
    EngineError::conflict(
        "webauthn_not_enrolled",
        "there is no security key registered for this identity: register one (POST /api/v1/mfa/webauthn/register)",
    )
}

impl Engine {
    fn webauthn(&self) -> Result<Webauthn> {
        match &self.inner.config.webauthn {
            Some(s) => s.build(),
            None => Err(EngineError::not_found(
                "webauthn_not_configured",
                "this server has no WebAuthn relying party: add a `webauthn:` section (rp_id, rp_origin) to its --config file",
            )),
        }
    }

    /// The confirmed WebAuthn credentials of `identity`, opened.
    async fn tx_credentials(&self, tx: &mut WriteTx, identity: &str) -> Result<Vec<Credential>> {
        let rows = tx.q().factors_of(identity).await?;
        self.open_credentials(rows)
    }

    async fn credentials(&self, identity: &str) -> Result<Vec<Credential>> {
        let mut r = self.store().read().await?;
        let rows = r.q().factors_of(identity).await?;
        drop(r);
        self.open_credentials(rows)
    }

    fn open_credentials(&self, rows: Vec<FactorRow>) -> Result<Vec<Credential>> {
        let vault = self.vault()?;
        rows.into_iter()
            .filter(|f| f.kind == KIND && f.confirmed_at.is_some())
            .map(|row| {
                let sealed: warrant_vault::Sealed = row.secret.parse().map_err(|_| {
                    EngineError::internal("a stored WebAuthn credential does not parse")
                })?;
                let plain = vault.open(&aad(&row), &sealed).map_err(|e| {
                    EngineError::internal(format!("opening a WebAuthn credential: {}", e.code()))
                })?;
                let passkey: Passkey = serde_json::from_slice(&plain).map_err(|_| {
                    EngineError::internal("a stored WebAuthn credential does not decode")
                })?;
                Ok(Credential { row, passkey })
            })
            .collect()
    }

    fn seal_passkey(&self, row: &FactorRow, passkey: &Passkey) -> Result<String> {
        let json = serde_json::to_vec(passkey)
            .map_err(|e| EngineError::internal(format!("encoding a WebAuthn credential: {e}")))?;
        Ok(self
            .vault()?
            .seal(&aad(row), &json)
            .map_err(|e| {
                EngineError::internal(format!("sealing a WebAuthn credential: {}", e.code()))
            })?
            .to_string())
    }

    async fn keep_ceremony<T: Serialize>(
        &self,
        kind: &str,
        owner: &str,
        state: &T,
    ) -> Result<String> {
        let now = self.now();
        let id = warrant_iam::new_id()?;
        let data = serde_json::to_string(state)
            .map_err(|e| EngineError::internal(format!("encoding a WebAuthn ceremony: {e}")))?;
        let stored = self
            .store()
            .put_pending_login(
                warrant_store::PendingLogin {
                    id: &id,
                    kind,
                    data: &data,
                    expires_at: now.plus_secs(CEREMONY_SECS),
                    owner: Some(owner),
                },
                now,
                crate::oidc::MAX_PENDING_LOGINS,
            )
            .await?;
        if stored.is_none() {
            return Err(EngineError::rate_limited(
                "too many sign-ins and registrations are in progress: try again in a few minutes",
            ));
        }
        Ok(id)
    }

    /// Takes the ceremony `id` of `kind` out of the store: `None` if unknown, used or expired.
    async fn take_ceremony<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        kind: &str,
    ) -> Result<Option<T>> {
        let Some((data, expires_at)) = self.store().take_pending_login(id, kind).await? else {
            return Ok(None);
        };
        if expires_at <= self.now() {
            return Ok(None);
        }
        serde_json::from_str(&data)
            .map(Some)
            .map_err(|e| EngineError::internal(format!("decoding a WebAuthn ceremony: {e}")))
    }

    /// Verifies an assertion against `state` for `identity`; on success records the use in
    /// `tx` (last use, new signature counter). Returns why it was refused otherwise.
    async fn tx_prove_webauthn(
        &self,
        tx: &mut WriteTx,
        wa: &Webauthn,
        identity: &str,
        state: &PasskeyAuthentication,
        credential: &serde_json::Value,
        now: Timestamp,
    ) -> Result<std::result::Result<(), &'static str>> {
        let Ok(assertion) = serde_json::from_value::<PublicKeyCredential>(credential.clone())
        else {
            return Ok(Err("malformed_assertion"));
        };
        let result = match wa.finish_passkey_authentication(&assertion, state) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(identity, error = %e, "WebAuthn assertion refused");
                return Ok(Err(refusal_reason(&e)));
            }
        };
        // The credential must still be registered (an MFA reset may have come in between).
        let found = self
            .tx_credentials(tx, identity)
            .await?
            .into_iter()
            .find(|c| c.passkey.cred_id() == result.cred_id());
        let Some(mut c) = found else {
            return Ok(Err("unknown_credential"));
        };
        if c.passkey.update_credential(&result) == Some(true) {
            let sealed = self.seal_passkey(&c.row, &c.passkey)?;
            tx.w().await?.set_factor_secret(&c.row.id, &sealed).await?;
        }
        tx.w().await?.factor_used(&c.row.id, None, now).await?;
        Ok(Ok(()))
    }

    /// Starts registering a security key or passkey for the actor: the options for
    /// `navigator.credentials.create`. The identity's registered credentials are excluded.
    /// Adding a factor when one is already in force needs a fresh proof of it.
    pub async fn webauthn_register_start(&self, actor: &Actor, label: &str) -> Result<Ceremony> {
        let wa = self.webauthn()?;
        let label = label.trim();
        let label = if label.is_empty() {
            "security key"
        } else {
            label
        };
        if label.chars().count() > 100 {
            return Err(EngineError::invalid(
                "invalid_label",
                "give the factor a label of at most 100 characters",
            ));
        }
        let who = actor.name.as_str();
        let now = self.now();
        if self.has_mfa(who).await? && !is_fresh(actor, now) {
            return Err(step_up_required(
                "adding a second factor when you already have one needs a fresh proof of it",
            ));
        }
        let exclude: Vec<CredentialID> = self
            .credentials(who)
            .await?
            .into_iter()
            .map(|c| c.passkey.cred_id().clone())
            .collect();
        let (options, state) = wa
            .start_passkey_registration(user_handle(who), who, who, Some(exclude))
            .map_err(|e| EngineError::internal(format!("starting a WebAuthn registration: {e}")))?;
        let challenge_id = self
            .keep_ceremony(
                REG_KIND,
                who,
                &PendingRegistration {
                    identity: who.to_owned(),
                    token_id: actor.token_id.clone(),
                    label: label.to_owned(),
                    state,
                },
            )
            .await?;
        Ok(Ceremony {
            challenge_id,
            options: serde_json::to_value(&options)
                .map_err(|e| EngineError::internal(format!("encoding WebAuthn options: {e}")))?,
        })
    }

    /// Completes a registration with the authenticator's answer (`RegisterPublicKeyCredential`
    /// as JSON): the credential is stored confirmed, recovery codes are issued when the identity
    /// had none, and the session counts as MFA-proved.
    pub async fn webauthn_register_finish(
        &self,
        actor: &Actor,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<Registered> {
        let wa = self.webauthn()?;
        let who = actor.name.as_str();
        let now = self.now();
        self.mfa_rate_check(who, now)?;
        let pending: Option<PendingRegistration> =
            self.take_ceremony(challenge_id, REG_KIND).await?;
        let Some(pending) = pending.filter(|p| p.identity == who && p.token_id == actor.token_id)
        else {
            return Err(no_ceremony("WebAuthn registration"));
        };
        let passkey = serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone())
            .ok()
            .and_then(|reg| {
                wa.finish_passkey_registration(&reg, &pending.state)
                    .inspect_err(|e| {
                        tracing::info!(identity = who, error = %e, "WebAuthn registration refused");
                    })
                    .ok()
            });
        let Some(passkey) = passkey else {
            self.mfa_failed(who, now);
            self.audit_mfa_failure(who, "enrolment", "attestation_refused")
                .await?;
            return Err(refused());
        };
        let mut row = FactorRow {
            id: warrant_iam::new_id()?,
            identity: actor.name.clone(),
            kind: KIND.into(),
            label: pending.label,
            secret: String::new(),
            confirmed_at: Some(now),
            last_step: None,
            last_used_at: None,
            created_at: now,
        };
        row.secret = self.seal_passkey(&row, &passkey)?;
        let mut tx = self.store().begin().await?;
        crate::directory::load_identity(&mut tx, who).await?;
        if self
            .tx_credentials(&mut tx, who)
            .await?
            .iter()
            .any(|c| c.passkey.cred_id() == passkey.cred_id())
        {
            tx.rollback().await?;
            return Err(EngineError::conflict(
                "credential_exists",
                "this security key is already registered",
            ));
        }
        tx.w().await?.insert_factor(&row).await?;
        tx.audit(
            now,
            Some(who),
            &Event::MfaEnrolled {
                identity: who.to_owned(),
                factor_id: row.id.clone(),
                kind: KIND.into(),
            },
        )
        .await?;
        let recovery_codes = if tx.q().recovery_codes_left(who).await? == 0 {
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
        Ok(Registered {
            factor_id: row.id,
            recovery_codes,
        })
    }

    /// Starts a step-up with a security key for the actor's session: the options for
    /// `navigator.credentials.get`.
    pub async fn webauthn_verify_start(&self, actor: &Actor) -> Result<Ceremony> {
        let wa = self.webauthn()?;
        let Some(token) = actor.token_id.clone() else {
            return Err(EngineError::invalid(
                "no_session",
                "step-up applies to a sign-in session: sign in first",
            ));
        };
        let who = actor.name.as_str();
        self.mfa_rate_check(who, self.now())?;
        self.start_authentication(&wa, who, Some(token), STEP_UP_KIND)
            .await
    }

    async fn start_authentication(
        &self,
        wa: &Webauthn,
        who: &str,
        token_id: Option<String>,
        kind: &str,
    ) -> Result<Ceremony> {
        let passkeys: Vec<Passkey> = self
            .credentials(who)
            .await?
            .into_iter()
            .map(|c| c.passkey)
            .collect();
        if passkeys.is_empty() {
            return Err(not_enrolled());
        }
        let (options, state) = wa.start_passkey_authentication(&passkeys).map_err(|e| {
            EngineError::internal(format!("starting a WebAuthn authentication: {e}"))
        })?;
        let challenge_id = self
            .keep_ceremony(
                kind,
                who,
                &PendingAuthentication {
                    identity: who.to_owned(),
                    token_id,
                    state,
                },
            )
            .await?;
        Ok(Ceremony {
            challenge_id,
            options: serde_json::to_value(&options)
                .map_err(|e| EngineError::internal(format!("encoding WebAuthn options: {e}")))?,
        })
    }

    /// Completes a step-up with the authenticator's answer (`PublicKeyCredential` as JSON).
    /// Returns the instant the proof counts from.
    pub async fn webauthn_verify_finish(
        &self,
        actor: &Actor,
        challenge_id: &str,
        credential: &serde_json::Value,
    ) -> Result<Timestamp> {
        let wa = self.webauthn()?;
        let who = actor.name.as_str();
        let Some(token) = actor.token_id.as_deref() else {
            return Err(EngineError::invalid(
                "no_session",
                "step-up applies to a sign-in session: sign in first",
            ));
        };
        let now = self.now();
        self.mfa_rate_check(who, now)?;
        let pending: Option<PendingAuthentication> =
            self.take_ceremony(challenge_id, STEP_UP_KIND).await?;
        let Some(pending) =
            pending.filter(|p| p.identity == who && p.token_id.as_deref() == Some(token))
        else {
            self.mfa_failed(who, now);
            self.audit_mfa_failure(who, "step-up", "unknown_challenge")
                .await?;
            return Err(refused());
        };
        let mut tx = self.store().begin().await?;
        if let Err(reason) = self
            .tx_prove_webauthn(&mut tx, &wa, who, &pending.state, credential, now)
            .await?
        {
            tx.rollback().await?;
            self.mfa_failed(who, now);
            self.audit_mfa_failure(who, "step-up", reason).await?;
            return Err(refused());
        }
        tx.w()
            .await?
            .set_token_mfa(token, now, self.session_end(now))
            .await?;
        tx.audit(
            now,
            Some(who),
            &Event::MfaVerified {
                identity: who.to_owned(),
                method: KIND.into(),
                purpose: "step-up".into(),
            },
        )
        .await?;
        tx.commit().await?;
        self.mfa_succeeded(who);
        Ok(now)
    }

    /// Sign-in with a security key, first step: checks the password (as [`Engine::sign_in`]
    /// does, audited alike) and returns the options for `navigator.credentials.get`.
    pub async fn webauthn_signin_start(
        &self,
        name: &str,
        password: Secret<String>,
        source: &str,
    ) -> Result<Ceremony> {
        let wa = self.webauthn()?;
        let ident = self.check_password(name, password, source).await?;
        let who = ident.name.as_str();
        self.mfa_rate_check(who, self.now())?;
        self.start_authentication(&wa, who, None, SIGN_IN_KIND)
            .await
    }

    /// Sign-in with a security key, second step: verifies the authenticator's answer and
    /// issues a session token whose second factor counts from now.
    pub async fn webauthn_signin_finish(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        source: &str,
    ) -> Result<IssuedToken> {
        let wa = self.webauthn()?;
        let pending: Option<PendingAuthentication> =
            self.take_ceremony(challenge_id, SIGN_IN_KIND).await?;
        let Some(pending) = pending else {
            // Nobody to hold to account: the ceremony is unknown, used or expired.
            return Err(refused());
        };
        let who = pending.identity.as_str();
        let now = self.now();
        self.mfa_rate_check(who, now)?;
        let mut tx = self.store().begin().await?;
        let ident = crate::directory::load_identity(&mut tx, who).await?;
        if ident.status != IdentityStatus::Active {
            tx.rollback().await?;
            return Err(EngineError::unauthenticated(
                "invalid_credentials",
                "unknown identity or wrong password",
            ));
        }
        if let Err(reason) = self
            .tx_prove_webauthn(&mut tx, &wa, who, &pending.state, credential, now)
            .await?
        {
            tx.rollback().await?;
            self.mfa_failed(who, now);
            self.audit_mfa_failure(who, "sign-in", reason).await?;
            return Err(refused());
        }
        tx.audit(
            now,
            Some(who),
            &Event::MfaVerified {
                identity: who.to_owned(),
                method: KIND.into(),
                purpose: "sign-in".into(),
            },
        )
        .await?;
        tx.audit(
            now,
            Some(who),
            &Event::SigninSucceeded {
                identity: who.to_owned(),
                source: source.to_owned(),
            },
        )
        .await?;
        let ttl = self.inner.config.session_ttl_secs;
        let token = issue_token(
            &mut tx,
            &ident.name,
            TokenSpec {
                kind: "session",
                label: "sign-in",
                expires_at: Some(now.plus_secs(ttl)),
                scope: Scope::Full,
                mfa_at: Some(now),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        self.mfa_succeeded(who);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(rp_id: &str, rp_origin: &str) -> WebauthnSettings {
        WebauthnSettings {
            rp_id: rp_id.into(),
            rp_origin: rp_origin.into(),
            rp_name: default_rp_name(),
        }
    }

    #[test]
    fn settings_need_https_and_a_matching_rp_id() {
        for (id, origin) in [
            ("warrant.example.com", "https://warrant.example.com"),
            ("example.com", "https://warrant.example.com"),
            ("localhost", "http://localhost"),
            ("localhost", "http://localhost:8080"),
        ] {
            assert!(settings(id, origin).build().is_ok(), "{id} {origin}");
        }
        for (id, origin) in [
            ("warrant.example.com", "http://warrant.example.com"),
            ("example.org", "https://warrant.example.com"),
            ("ample.com", "https://warrant.example.com"),
            ("warrant.example.com", "not a url"),
        ] {
            let e = settings(id, origin).build().unwrap_err();
            assert_eq!(e.code, "invalid_webauthn_settings", "{id} {origin}");
        }
    }

    #[test]
    fn user_handles_are_stable_and_distinct() {
        assert_eq!(user_handle("alice"), user_handle("alice"));
        assert_ne!(user_handle("alice"), user_handle("bob"));
    }
}

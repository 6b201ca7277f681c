//! Sign-in, bearer tokens and the first-start bootstrap.

use warrant_audit::Event;
use warrant_core::{Identity, IdentityStatus, Name, Secret, Source, SystemRole, Timestamp};
use warrant_store::TokenRow;

use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything the holder's system role allows.
    Full,
    /// SCIM provisioning under `/scim/v2`, nothing else.
    Scim,
    /// A sign-in through the organisation's OpenID provider by an identity that has a second
    /// factor in Warrant: only proving it (`mfa/verify`), `me` and sign-out, until it is proved;
    /// then the token becomes `full`.
    MfaPending,
    /// A database token (`warrant db-token`): the password at the PostgreSQL gateway, for
    /// minutes; no right on the API.
    Db,
}

impl Scope {
    /// The stable spelling: `full` or `scim`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Scim => "scim",
            Self::MfaPending => "mfa_pending",
            Self::Db => "db",
        }
    }

    /// Parses the stable spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "scim" => Some(Self::Scim),
            "mfa_pending" => Some(Self::MfaPending),
            "db" => Some(Self::Db),
            _ => None,
        }
    }
}

/// Who is calling: an authenticated identity and its system role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity.
    pub name: Name,
    /// Its system role.
    pub role: SystemRole,
    /// The token it presented, if any.
    pub token_id: Option<String>,
    /// What the token may be used for.
    pub scope: Scope,
    /// When the caller last proved a second factor in this session (step-up).
    pub mfa_at: Option<Timestamp>,
    /// The channel it acts through; directory changes record it and sources own what they
    /// created.
    pub via: Source,
}

impl Actor {
    /// An actor acting with full rights and no token (the server itself, tests, tools).
    pub fn internal(name: Name, role: SystemRole) -> Self {
        Self {
            name,
            role,
            token_id: None,
            scope: Scope::Full,
            mfa_at: None,
            via: Source::Local,
        }
    }

    /// The same identity acting through a directory source (SCIM, an LDAP sync, OIDC).
    pub fn through(mut self, via: Source) -> Self {
        self.via = via;
        self
    }

    /// The channel's spelling in audit events: `admin`, `scim`, `ldap` or `oidc`.
    pub fn via(&self) -> &'static str {
        match self.via {
            Source::Local => "admin",
            other => other.as_str(),
        }
    }
}

/// A token just issued: shown once, never again.
#[derive(Debug)]
pub struct IssuedToken {
    /// The public id.
    pub id: String,
    /// The whole bearer token.
    pub token: Secret<String>,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Whose it is.
    pub identity: Name,
    /// What it may do.
    pub scope: Scope,
}

/// How often a session's last use is written (the idle timeout's resolution).
const TOUCH_EVERY_SECS: i64 = 60;

/// How the audit names a claimed identity that is none: people type passwords into the name
/// field, so only a digest is kept, which still correlates repeated attempts.
pub(crate) fn unknown_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = hex::encode(Sha256::digest(name.as_bytes()));
    format!("unknown:{}", &d[..12])
}

fn bad_credentials() -> EngineError {
    EngineError::unauthenticated("invalid_credentials", "unknown identity or wrong password")
}

impl Engine {
    /// The identity that a bearer token belongs to, if the token is live.
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor> {
        let invalid = || {
            EngineError::unauthenticated(
                "invalid_token",
                "the token is unknown, expired or revoked: sign in again (warrant login) or create a new API token",
            )
        };
        let (id, secret) = warrant_iam::parse_token(bearer).ok_or_else(invalid)?;
        let now = self.now();
        let mut r = self.store().read().await?;
        let (row, status, role) = r.q().token_and_holder(id).await?.ok_or_else(invalid)?;
        drop(r);
        let config = &self.inner.config;
        let idle = row.kind == "session"
            && row
                .last_used_at
                .unwrap_or(row.created_at)
                .plus_secs(config.session_idle_secs)
                <= now;
        if !warrant_iam::token_matches(secret, &row.secret_hash)
            || row.revoked_at.is_some()
            || row.expires_at.is_some_and(|e| now >= e)
            || idle
            || status != IdentityStatus::Active
        {
            return Err(invalid());
        }
        let scope = Scope::parse(&row.scope).ok_or_else(invalid)?;
        // Bookkeeping for the idle timeout, at most once a minute per token.
        if row.kind == "session"
            && row
                .last_used_at
                .is_none_or(|t| t.plus_secs(TOUCH_EVERY_SECS) <= now)
        {
            self.store().touch_token(&row.id, now).await?;
        }
        Ok(Actor {
            name: row.identity,
            role,
            token_id: Some(row.id),
            via: match scope {
                Scope::Scim => Source::Scim,
                Scope::Full | Scope::MfaPending | Scope::Db => Source::Local,
            },
            scope,
            mfa_at: row.mfa_at,
        })
    }

    /// Checks a local password: the identity if it exists, is active and the password matches;
    /// otherwise `sign-in.failed` is audited and the refusal says nothing more.
    pub(crate) async fn check_password(
        &self,
        name: &str,
        password: Secret<String>,
        source: &str,
    ) -> Result<Identity> {
        let (ident, hash) = {
            let mut r = self.store().read().await?;
            let ident = r.q().identity(name).await?;
            let hash = match &ident {
                Some(_) => r.q().password_hash(name).await?,
                None => None,
            };
            (ident, hash)
        };
        let hash_for_check = hash.clone();
        let matches = tokio::task::spawn_blocking(move || {
            warrant_iam::verify_password(&password, hash_for_check.as_deref())
        })
        .await
        .map_err(|e| EngineError::internal(format!("password check failed: {e}")))?;
        let now = self.now();
        let failure = match &ident {
            None => Some("unknown_identity"),
            Some(_) if hash.is_none() => Some("no_password"),
            Some(_) if !matches => Some("wrong_password"),
            Some(i) if i.status != IdentityStatus::Active => Some("identity_disabled"),
            Some(_) => None,
        };
        if let Some(reason) = failure {
            let mut tx = self.store().begin().await?;
            tx.audit(
                now,
                None,
                &Event::SigninFailed {
                    identity: match &ident {
                        Some(i) => i.name.to_string(),
                        None => unknown_name(name),
                    },
                    source: source.to_owned(),
                    reason: reason.to_owned(),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(bad_credentials());
        }
        ident.ok_or_else(bad_credentials)
    }

    /// Signs in with a local password, and a second factor (TOTP or recovery code) when the
    /// identity has one; returns a session token (a new one at every sign-in). A WebAuthn
    /// second factor signs in through [`Engine::webauthn_signin_start`] instead.
    pub async fn sign_in(
        &self,
        name: &str,
        password: Secret<String>,
        second: Option<Secret<String>>,
        source: &str,
    ) -> Result<IssuedToken> {
        let ident = self.check_password(name, password, source).await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let who = ident.name.to_string();
        let mut mfa_at = None;
        if self.has_mfa(&who).await? {
            let Some(code) = second else {
                tx.rollback().await?;
                return Err(EngineError::unauthenticated(
                    "mfa_required",
                    "this identity has a second factor: give a code from your authenticator app (warrant login --otp CODE) or a recovery code, or sign in with a security key (POST /api/v1/auth/webauthn/start)",
                ));
            };
            self.mfa_rate_check(&who, now)?;
            match self
                .tx_prove(&mut tx, &who, code.expose(), false, now)
                .await?
            {
                Some(proof) => {
                    tx.audit(
                        now,
                        Some(&who),
                        &Event::MfaVerified {
                            identity: who.clone(),
                            method: proof.as_str().to_owned(),
                            purpose: "sign-in".into(),
                        },
                    )
                    .await?;
                    mfa_at = Some(now);
                    self.mfa_succeeded(&who);
                }
                None => {
                    self.mfa_failed(&who, now);
                    tx.rollback().await?;
                    let mut tx = self.store().begin().await?;
                    tx.audit(
                        now,
                        Some(&who),
                        &Event::MfaFailed {
                            identity: who.clone(),
                            purpose: "sign-in".into(),
                            reason: "wrong_code".into(),
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    return Err(EngineError::unauthenticated(
                        "mfa_invalid",
                        "the one-time code is wrong, expired or already used: wait for the next code",
                    ));
                }
            }
        }
        tx.audit(
            now,
            Some(ident.name.as_str()),
            &Event::SigninSucceeded {
                identity: ident.name.to_string(),
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
                mfa_at,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Revokes the token the actor signed in with.
    pub async fn sign_out(&self, actor: &Actor) -> Result<()> {
        let Some(id) = &actor.token_id else {
            return Ok(());
        };
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx.w().await?.revoke_token(id, now).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::Signout {
                identity: actor.name.to_string(),
            },
        )
        .await?;
        tx.commit().await.map_err(Into::into)
    }

    /// Issues an API token for the actor (for automation). Shown once. A `scim` token, whose
    /// only right is provisioning under `/scim/v2`, needs an admin.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        label: &str,
        ttl_secs: Option<i64>,
        scope: Scope,
    ) -> Result<IssuedToken> {
        match scope {
            Scope::Full => {}
            Scope::Scim => require_admin(actor)?,
            Scope::MfaPending | Scope::Db => {
                return Err(EngineError::invalid(
                    "invalid_scope",
                    format!(
                        "an API token's scope is full or scim, not {} (database tokens come from `warrant db-token`)",
                        scope.as_str()
                    ),
                ));
            }
        }
        // A token outlives the session that makes it: someone holding only a stolen session
        // must not mint one without the owner's second factor.
        if self.has_mfa(actor.name.as_str()).await? && !crate::mfa::is_fresh(actor, self.now()) {
            return Err(crate::mfa::step_up_required(
                "creating an API token needs a fresh second factor",
            ));
        }
        let label = label.trim();
        if label.is_empty() || label.len() > 200 {
            return Err(EngineError::invalid(
                "invalid_label",
                "give the token a label of 1 to 200 characters (--name)",
            ));
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let token = issue_token(
            &mut tx,
            &actor.name,
            TokenSpec {
                kind: "api",
                label,
                expires_at: ttl_secs.map(|s| now.plus_secs(s)),
                scope,
                mfa_at: None,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The actor's tokens (admins may list anyone's).
    pub async fn tokens(&self, actor: &Actor, identity: Option<&str>) -> Result<Vec<TokenRow>> {
        let who = identity.unwrap_or(actor.name.as_str());
        if who != actor.name.as_str() {
            require_admin(actor)?;
        }
        let mut r = self.store().read().await?;
        Ok(r.q().tokens_of(who).await?)
    }

    /// Revokes a token: one's own, or anyone's for an admin.
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let row = tx.q().token(id).await?.ok_or_else(|| {
            EngineError::not_found("token_not_found", format!("no token with id {id}"))
        })?;
        if row.identity != actor.name {
            require_admin(actor)?;
        }
        tx.w().await?.revoke_token(id, now).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::TokenRevoked {
                identity: row.identity.to_string(),
                token_id: row.id,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// On an empty store: creates the identity `admin` and an admin API token. Returns the
    /// token, or `None` when the store already has identities.
    pub async fn bootstrap(&self) -> Result<Option<IssuedToken>> {
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if !tx.q().identities().await?.is_empty() {
            tx.rollback().await?;
            return Ok(None);
        }
        let admin = Name::new("admin")?;
        tx.w()
            .await?
            .save_identity(
                &Identity {
                    name: admin.clone(),
                    display_name: "Administrator".into(),
                    email: String::new(),
                    status: IdentityStatus::Active,
                    manager: None,
                    system_role: SystemRole::Admin,
                    created_at: now,
                    source: Source::Local,
                    external_id: None,
                },
                now,
            )
            .await?;
        tx.audit(
            now,
            None,
            &Event::Bootstrapped {
                identity: admin.to_string(),
            },
        )
        .await?;
        let token = issue_token(
            &mut tx,
            &admin,
            TokenSpec {
                kind: "api",
                label: "bootstrap",
                expires_at: None,
                scope: Scope::Full,
                mfa_at: None,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(token))
    }
}

/// What kind of token to issue.
pub(crate) struct TokenSpec<'a> {
    /// `session` or `api`.
    pub kind: &'a str,
    /// Shown in listings.
    pub label: &'a str,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// What it may do.
    pub scope: Scope,
    /// A second factor proved at issue (sign-in with MFA).
    pub mfa_at: Option<Timestamp>,
}

pub(crate) async fn issue_token(
    tx: &mut warrant_store::WriteTx,
    identity: &Name,
    spec: TokenSpec<'_>,
    now: Timestamp,
) -> Result<IssuedToken> {
    let TokenSpec {
        kind,
        label,
        expires_at,
        scope,
        mfa_at,
    } = spec;
    let t = warrant_iam::new_token()?;
    tx.w()
        .await?
        .insert_token(&TokenRow {
            id: t.id.clone(),
            identity: identity.clone(),
            kind: kind.to_owned(),
            label: label.to_owned(),
            secret_hash: t.secret_hash,
            created_at: now,
            expires_at,
            revoked_at: None,
            scope: scope.as_str().to_owned(),
            last_used_at: None,
            mfa_at,
        })
        .await?;
    tx.audit(
        now,
        Some(identity.as_str()),
        &Event::TokenIssued {
            identity: identity.to_string(),
            token_id: t.id.clone(),
            kind: kind.to_owned(),
            label: label.to_owned(),
            scope: scope.as_str().to_owned(),
        },
    )
    .await?;
    Ok(IssuedToken {
        id: t.id,
        token: t.token,
        expires_at,
        identity: identity.clone(),
        scope,
    })
}

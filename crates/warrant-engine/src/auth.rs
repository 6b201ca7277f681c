//! Sign-in, bearer tokens and the first-start bootstrap.

use warrant_audit::Event;
use warrant_core::{Identity, IdentityStatus, Name, Secret, SystemRole, Timestamp};
use warrant_store::TokenRow;

use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// Who is calling: an authenticated identity and its system role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity.
    pub name: Name,
    /// Its system role.
    pub role: SystemRole,
    /// The token it presented, if any.
    pub token_id: Option<String>,
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
        if !warrant_iam::token_matches(secret, &row.secret_hash)
            || row.revoked_at.is_some()
            || row.expires_at.is_some_and(|e| now >= e)
            || status != IdentityStatus::Active
        {
            return Err(invalid());
        }
        Ok(Actor {
            name: row.identity,
            role,
            token_id: Some(row.id),
        })
    }

    /// Signs in with a local password; returns a session token.
    pub async fn sign_in(
        &self,
        name: &str,
        password: Secret<String>,
        source: &str,
    ) -> Result<IssuedToken> {
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
        let mut tx = self.store().begin().await?;
        if let Some(reason) = failure {
            tx.audit(
                now,
                None,
                &Event::SigninFailed {
                    // People type passwords into the name field: a name that is no identity is
                    // recorded only as a digest, which still correlates repeated attempts.
                    identity: match &ident {
                        Some(i) => i.name.to_string(),
                        None => {
                            use sha2::{Digest, Sha256};
                            let d = hex::encode(Sha256::digest(name.as_bytes()));
                            format!("unknown:{}", &d[..12])
                        }
                    },
                    source: source.to_owned(),
                    reason: reason.to_owned(),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(bad_credentials());
        }
        let ident = ident.ok_or_else(bad_credentials)?;
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
            "session",
            "sign-in",
            Some(now.plus_secs(ttl)),
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
        tx.w().revoke_token(id, now).await?;
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

    /// Issues an API token for the actor (for automation). Shown once.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        label: &str,
        ttl_secs: Option<i64>,
    ) -> Result<IssuedToken> {
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
            "api",
            label,
            ttl_secs.map(|s| now.plus_secs(s)),
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
        tx.w().revoke_token(id, now).await?;
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
            .save_identity(
                &Identity {
                    name: admin.clone(),
                    display_name: "Administrator".into(),
                    email: String::new(),
                    status: IdentityStatus::Active,
                    manager: None,
                    system_role: SystemRole::Admin,
                    created_at: now,
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
        let token = issue_token(&mut tx, &admin, "api", "bootstrap", None, now).await?;
        tx.commit().await?;
        Ok(Some(token))
    }
}

async fn issue_token(
    tx: &mut warrant_store::WriteTx,
    identity: &Name,
    kind: &str,
    label: &str,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<IssuedToken> {
    let t = warrant_iam::new_token()?;
    tx.w()
        .insert_token(&TokenRow {
            id: t.id.clone(),
            identity: identity.clone(),
            kind: kind.to_owned(),
            label: label.to_owned(),
            secret_hash: t.secret_hash,
            created_at: now,
            expires_at,
            revoked_at: None,
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
        },
    )
    .await?;
    Ok(IssuedToken {
        id: t.id,
        token: t.token,
        expires_at,
        identity: identity.clone(),
    })
}

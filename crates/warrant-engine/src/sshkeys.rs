//! People's SSH public keys: what the SSH gateway authenticates them with
//! (`warrant ssh-key add FILE`). Keys are unique across identities (by SHA-256 fingerprint);
//! only ed25519 and ECDSA keys are accepted (RSA is kept out of Warrant, see DEPENDENCIES.md).

use warrant_audit::Event;
use warrant_core::SystemRole;
use warrant_hostssh::ssh_key::{Algorithm, HashAlg, PublicKey};
use warrant_store::SshKeyRow;

use crate::Engine;
use crate::auth::Actor;
use crate::error::{EngineError, Result};

/// Parses one OpenSSH public key line into (key, fingerprint), refusing what the gateway
/// cannot use.
pub fn parse_public_key(line: &str) -> Result<(PublicKey, String)> {
    let line = line.trim();
    if line.contains("-cert-v01@openssh.com") {
        return Err(EngineError::invalid(
            "invalid_ssh_key",
            "that is a certificate: register the public key itself (the .pub file)",
        ));
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        EngineError::invalid(
            "invalid_ssh_key",
            format!(
                "not an OpenSSH public key line ({e}): give the .pub file, e.g. ~/.ssh/id_ed25519.pub"
            ),
        )
    })?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        other => {
            return Err(EngineError::invalid(
                "unsupported_ssh_key",
                format!(
                    "{} keys are not accepted: make an ed25519 key (ssh-keygen -t ed25519)",
                    other.as_str()
                ),
            ));
        }
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    Ok((key, fingerprint))
}

impl Engine {
    /// Registers one of the actor's SSH public keys (or, for admins, someone else's).
    pub async fn add_ssh_key(
        &self,
        actor: &Actor,
        identity: Option<&str>,
        public_key: &str,
        label: Option<&str>,
    ) -> Result<SshKeyRow> {
        let identity = self.key_owner(actor, identity)?;
        let (key, fingerprint) = parse_public_key(public_key)?;
        let label = label
            .map(str::to_owned)
            .unwrap_or_else(|| key.comment().to_string());
        let mut line_key = key.clone();
        line_key.set_comment("");
        let line = line_key
            .to_openssh()
            .map_err(|e| EngineError::internal(format!("encoding a public key: {e}")))?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let who = tx.q().identity(&identity).await?.ok_or_else(|| {
            EngineError::not_found("identity_not_found", format!("no identity {identity}"))
        })?;
        if tx.q().ssh_key_by_fingerprint(&fingerprint).await?.is_some() {
            return Err(EngineError::conflict(
                "ssh_key_registered",
                format!(
                    "the key {fingerprint} is registered already (a key belongs to one identity)"
                ),
            ));
        }
        let row = SshKeyRow {
            id: warrant_iam::new_id()?,
            identity: who.name.to_string(),
            fingerprint: fingerprint.clone(),
            public_key: line.trim().to_owned(),
            label: label.chars().take(200).collect(),
            created_at: now,
            last_used_at: None,
        };
        tx.w().await?.insert_ssh_key(&row).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::SshKeyAdded {
                identity: row.identity.clone(),
                fingerprint,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The actor's SSH keys (admins: anyone's).
    pub async fn ssh_keys(&self, actor: &Actor, identity: Option<&str>) -> Result<Vec<SshKeyRow>> {
        let identity = self.key_owner(actor, identity)?;
        let mut r = self.store().read().await?;
        Ok(r.q().ssh_keys_of(&identity).await?)
    }

    /// Removes one of the actor's SSH keys (admins: anyone's).
    pub async fn delete_ssh_key(
        &self,
        actor: &Actor,
        identity: Option<&str>,
        id: &str,
    ) -> Result<()> {
        let identity = self.key_owner(actor, identity)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let key = tx
            .q()
            .ssh_keys_of(&identity)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| {
                EngineError::not_found(
                    "ssh_key_not_found",
                    format!("{identity} has no SSH key {id} (warrant ssh-keys)"),
                )
            })?;
        tx.w().await?.delete_ssh_key(&identity, id).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::SshKeyRemoved {
                identity,
                fingerprint: key.fingerprint,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    fn key_owner(&self, actor: &Actor, identity: Option<&str>) -> Result<String> {
        match identity {
            None => Ok(actor.name.to_string()),
            Some(i) if i == actor.name.as_str() => Ok(i.to_owned()),
            Some(i) if actor.role >= SystemRole::Admin => Ok(i.to_owned()),
            Some(_) => Err(EngineError::forbidden(
                "forbidden",
                "only admins manage other people's SSH keys",
            )),
        }
    }
}

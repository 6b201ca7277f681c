//! The SSH user certificate authority in service: certificates only under an active grant,
//! valid until the grant ends, and a KRL of those whose grant was revoked.
//!
//! The CA key is created at first use, sealed by the vault (associated data `ssh-ca:user`) and
//! opened only to sign. Serials come from the store inside the writer transaction that records
//! the certificate and its audit event, so they are unique and never reused.

use warrant_audit::Event;
use warrant_core::{Secret, Timestamp};
use warrant_sshca::{CaKey, CertRequest, Extensions};

use crate::Engine;
use crate::auth::Actor;
use crate::error::{EngineError, Result};

/// How far before now a certificate is valid from (clock skew between hosts).
pub const CLOCK_SKEW_SECS: i64 = 60;
/// The associated data the CA key is sealed with.
pub(crate) const CA_AAD: &str = "ssh-ca:user";

/// A certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The OpenSSH certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA…`).
    pub certificate: String,
    /// Its serial.
    pub serial: i64,
    /// The grant it depends on.
    pub grant_id: String,
    /// Its end (the grant's).
    pub valid_before: Timestamp,
    /// The accounts it may log in as.
    pub principals: Vec<String>,
}

fn ca_error(e: warrant_sshca::SshCaError) -> EngineError {
    EngineError::invalid(e.code(), e.to_string())
}

impl Engine {
    /// The CA, created (and audited) at first use.
    pub(crate) async fn ssh_ca(&self) -> Result<CaKey> {
        let vault = self.vault()?;
        let stored = {
            let mut r = self.store().read().await?;
            r.q().ssh_ca().await?
        };
        let (sealed, _) = match stored {
            Some(s) => s,
            None => {
                let ca = CaKey::generate().map_err(ca_error)?;
                let pem = ca.to_openssh().map_err(ca_error)?;
                let sealed = vault
                    .seal(CA_AAD, pem.expose().as_bytes())
                    .map_err(|e| {
                        EngineError::internal(format!("sealing the SSH CA: {}", e.code()))
                    })?
                    .to_string();
                let now = self.now();
                let mut tx = self.store().begin().await?;
                // Another caller may have created it meanwhile: the first one stays.
                if let Some(existing) = tx.q().ssh_ca().await? {
                    tx.rollback().await?;
                    existing
                } else {
                    tx.w()
                        .await?
                        .insert_ssh_ca(&sealed, &ca.public_openssh(), now)
                        .await?;
                    tx.audit(
                        now,
                        None,
                        &Event::SshCaCreated {
                            fingerprint: ca.fingerprint(),
                        },
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(ca);
                }
            }
        };
        let sealed: warrant_vault::Sealed = sealed
            .parse()
            .map_err(|_| EngineError::internal("the stored SSH CA does not parse"))?;
        let pem = vault
            .open(CA_AAD, &sealed)
            .map_err(|e| EngineError::internal(format!("opening the SSH CA: {}", e.code())))?;
        let text = String::from_utf8(pem.to_vec())
            .map_err(|_| EngineError::internal("the stored SSH CA is not text"))?;
        CaKey::from_openssh(Secret::new(text)).map_err(ca_error)
    }

    /// The CA's public key line, for sshd's `TrustedUserCAKeys`.
    pub async fn ssh_ca_public(&self) -> Result<String> {
        Ok(self.ssh_ca().await?.public_openssh())
    }

    /// Signs `public_key` for the actor's active grant of `role` on `target`: the role's
    /// principals, valid from a minute ago until the grant ends, key id naming the identity
    /// and the grant.
    pub async fn issue_ssh_cert(
        &self,
        actor: &Actor,
        target: &str,
        role: &str,
        public_key: &str,
    ) -> Result<IssuedCert> {
        // Nothing that hands out access while a mandatory audit sink is behind.
        self.audit_gate()?;
        let ca = self.ssh_ca().await?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let r = tx.q().role(target, role).await?.ok_or_else(|| {
            EngineError::not_found(
                "role_not_found",
                format!("no role {role:?} on target {target:?} (see warrant targets)"),
            )
        })?;
        if r.principals.is_empty() {
            return Err(EngineError::invalid(
                "no_principals",
                format!(
                    "role {role} on {target} names no SSH principals: an admin sets `principals` in the org file"
                ),
            ));
        }
        let grant = tx
            .q()
            .active_grant(actor.name.as_str(), target, role, now)
            .await?
            .filter(|g| g.starts_at <= now)
            .ok_or_else(|| {
                EngineError::forbidden(
                    "no_active_grant",
                    format!("you hold no active grant of {role} on {target}: request it first (warrant request {target} {role} --for 1h --reason …)"),
                )
            })?;
        let (certificate, serial) =
            sign_for_grant(&mut tx, &ca, &grant, &r, &r.principals, public_key, "", now).await?;
        tx.commit().await?;
        Ok(IssuedCert {
            certificate,
            serial,
            grant_id: grant.id,
            valid_before: grant.ends_at,
            principals: r.principals,
        })
    }

    /// The KRL (OpenSSH binary format) revoking every certificate whose grant was revoked and
    /// which would otherwise still be valid. Served to sshd's `RevokedKeys`.
    pub async fn ssh_krl(&self) -> Result<Vec<u8>> {
        let ca = self.ssh_ca().await?;
        let now = self.now();
        let serials: Vec<u64> = {
            let mut r = self.store().read().await?;
            r.q()
                .revoked_ssh_serials(now)
                .await?
                .into_iter()
                .filter_map(|s| u64::try_from(s).ok())
                .collect()
        };
        let at = u64::try_from(now.unix_seconds()).unwrap_or(0);
        Ok(ca.krl(&serials, at))
    }
}

/// Signs `public_key` for `grant` (valid from a minute ago until the grant ends, key id naming
/// the identity and the grant, plus `note`; a pty, and port or agent forwarding when the
/// role's `forwarding` allows it), records the certificate for the KRL and audits it, in the caller's
/// transaction. Returns the certificate line and its serial.
#[expect(
    clippy::too_many_arguments,
    reason = "the certificate's parts, each its own"
)]
pub(crate) async fn sign_for_grant(
    tx: &mut warrant_store::WriteTx,
    ca: &CaKey,
    grant: &warrant_core::Grant,
    role: &warrant_core::TargetRole,
    principals: &[String],
    public_key: &str,
    note: &str,
    now: Timestamp,
) -> Result<(String, i64)> {
    let serial = tx.q().next_ssh_serial().await?;
    let key_id = format!(
        "{} grant={} target={} role={}{note}",
        grant.identity, grant.id, grant.target, grant.role
    );
    let secs = |t: Timestamp| u64::try_from(t.unix_seconds()).unwrap_or(0);
    let certificate = ca
        .issue(&CertRequest {
            public_key,
            principals: principals.to_vec(),
            key_id: key_id.clone(),
            serial: u64::try_from(serial).unwrap_or(u64::MAX),
            valid_after: secs(now).saturating_sub(CLOCK_SKEW_SECS.unsigned_abs()),
            valid_before: secs(grant.ends_at),
            extensions: Extensions {
                port_forwarding: role.forwarding.iter().any(|f| f == "port"),
                agent_forwarding: role.forwarding.iter().any(|f| f == "agent"),
                ..Extensions::default()
            },
        })
        .map_err(ca_error)?;
    tx.w()
        .await?
        .insert_ssh_cert(
            serial,
            &grant.id,
            grant.identity.as_str(),
            &key_id,
            grant.ends_at,
            now,
        )
        .await?;
    tx.audit(
        now,
        Some(grant.identity.as_str()),
        &Event::SshCertIssued {
            identity: grant.identity.to_string(),
            target: grant.target.to_string(),
            role: grant.role.to_string(),
            grant_id: grant.id.clone(),
            serial,
            principals: principals.to_vec(),
            valid_before: grant.ends_at.rfc3339(),
        },
    )
    .await?;
    Ok((certificate, serial))
}

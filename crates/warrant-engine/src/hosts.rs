//! Warrant's own access to Linux hosts (targets of kind `ssh`): one ed25519 key, made and sealed
//! at first use, that an admin authorises for the target's `admin_user` (root, or an account
//! with passwordless sudo); the target's `host_key` is pinned. Discovery and the rotation of
//! vaulted Linux accounts go through it (`warrant-hostssh`).

use warrant_audit::Event;
use warrant_core::{Secret, Target};
use warrant_hostssh::{HostTarget, ManagedKey};

use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::{Engine, require_admin};

/// The vault's associated data for the managed key.
pub(crate) const MANAGED_KEY_AAD: &str = "ssh-managed-key";

/// A host and the key to reach it.
pub(crate) struct HostAccess {
    target: HostTarget,
    key: ManagedKey,
}

fn host_error(e: &warrant_hostssh::HostSshError) -> String {
    format!("{e} ({})", e.code())
}

impl HostAccess {
    pub(crate) async fn verify_password(
        &self,
        account: &str,
        secret: &Secret<String>,
    ) -> std::result::Result<bool, String> {
        warrant_hostssh::verify_account_password(&self.target, &self.key, account, secret)
            .await
            .map_err(|e| host_error(&e))
    }

    pub(crate) async fn set_password(
        &self,
        account: &str,
        secret: &Secret<String>,
    ) -> std::result::Result<(), String> {
        warrant_hostssh::set_password(&self.target, &self.key, account, secret)
            .await
            .map_err(|e| host_error(&e))
    }

    /// Scans the host; `progress(phase, done, total)` follows it.
    pub(crate) async fn scan(
        &self,
        progress: &mut (dyn FnMut(String, u64, u64) + Send),
    ) -> std::result::Result<warrant_hostssh::LinuxScan, String> {
        warrant_hostssh::scan_linux(
            &self.target,
            &self.key,
            &mut |s: warrant_hostssh::ScanStep| {
                progress(s.what.clone(), u64::from(s.done), u64::from(s.total));
            },
        )
        .await
        .map_err(|e| host_error(&e))
    }
}

fn key_error(e: &warrant_hostssh::HostSshError) -> EngineError {
    EngineError::internal(format!("the managed SSH key: {}", e.code()))
}

impl Engine {
    /// Warrant's managed key, created and sealed at first use.
    async fn managed_key(&self) -> Result<ManagedKey> {
        let pem = self
            .own_key(
                MANAGED_KEY_AAD,
                || {
                    let key = ManagedKey::generate().map_err(|e| key_error(&e))?;
                    Ok(crate::ownkeys::NewKey {
                        private: key.to_openssh().map_err(|e| key_error(&e))?,
                        public: key.public_openssh(),
                    })
                },
                |public| Event::SshManagedKeyCreated {
                    public_key: public.to_owned(),
                },
            )
            .await?;
        ManagedKey::from_openssh(&pem).map_err(|e| key_error(&e))
    }

    /// The managed key's public half, to put in the admin account's `authorized_keys` on each
    /// host (admins).
    pub async fn managed_ssh_public_key(&self, actor: &Actor) -> Result<String> {
        require_admin(actor)?;
        Ok(self.managed_key().await?.public_openssh())
    }

    pub(crate) async fn host_access(&self, target: &Target) -> Result<HostAccess> {
        let name = target.name.as_str();
        let (host, port) = crate::pg::host_port(target, 22)?;
        let user = target.admin_user.clone().ok_or_else(|| {
            EngineError::invalid(
                "target_admin_missing",
                format!(
                    "target {name} names no admin_user: set it in the org file (root, or an account with passwordless sudo that holds Warrant's key: `warrant ssh managed-key`)"
                ),
            )
        })?;
        let line = target.host_key.as_deref().ok_or_else(|| {
            EngineError::invalid(
                "target_host_key_missing",
                format!(
                    "target {name} has no host_key to pin: set it in the org file (the host's /etc/ssh/ssh_host_ed25519_key.pub)"
                ),
            )
        })?;
        let host_key = HostTarget::parse_host_key(line).map_err(|e| {
            EngineError::invalid("target_host_key_invalid", format!("target {name}: {e}"))
        })?;
        Ok(HostAccess {
            target: HostTarget::new(host, port, user, host_key),
            key: self.managed_key().await?,
        })
    }
}

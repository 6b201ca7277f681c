//! [`ManagedKey`]: the ed25519 key Warrant logs in to hosts with.

use std::fmt;
use std::sync::Arc;

use ssh_key::private::{Ed25519Keypair, Ed25519PrivateKey, KeypairData};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use warrant_core::Secret;

use crate::error::{HostSshError, Result};

/// The comment on the public key line, so an admin reading `authorized_keys` knows whose it is.
pub const MANAGED_KEY_COMMENT: &str = "warrant-managed";

/// An ed25519 private key that Warrant owns and logs in to hosts with.
///
/// It leaves this type only as [`ManagedKey::to_openssh`] (a [`Secret`], for the vault to
/// seal). `Debug` prints the fingerprint, never the key; the key material is zeroed on drop
/// (by `ssh-key`).
#[derive(Clone)]
pub struct ManagedKey {
    key: Arc<PrivateKey>,
}

impl ManagedKey {
    /// A new random key, with the comment [`MANAGED_KEY_COMMENT`].
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; Ed25519PrivateKey::BYTE_SIZE];
        getrandom::fill(&mut seed).map_err(|_| HostSshError::Random)?;
        let keypair = Ed25519Keypair::from_seed(&seed);
        seed.fill(0);
        let key = PrivateKey::new(KeypairData::from(keypair), MANAGED_KEY_COMMENT)
            .map_err(|e| HostSshError::Key(e.to_string()))?;
        Ok(Self { key: Arc::new(key) })
    }

    /// Reads a key written by [`ManagedKey::to_openssh`]: an unencrypted OpenSSH ed25519
    /// private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn from_openssh(pem: &Secret<String>) -> Result<Self> {
        // ssh-key's parse errors describe the structure, never the key bytes.
        let key = PrivateKey::from_openssh(pem.expose())
            .map_err(|e| HostSshError::Key(format!("not an OpenSSH private key ({e})")))?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(HostSshError::Key(format!(
                "a managed key must be ed25519, not {}",
                key.algorithm()
            )));
        }
        if key.is_encrypted() {
            return Err(HostSshError::Key(
                "a managed key must not be passphrase-protected (the vault seals it)".to_owned(),
            ));
        }
        Ok(Self { key: Arc::new(key) })
    }

    /// The private key as an unencrypted OpenSSH private key (PEM, LF line endings), for the
    /// caller to seal with the vault. Never log it.
    pub fn to_openssh(&self) -> Result<Secret<String>> {
        let pem = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| HostSshError::Key(e.to_string()))?;
        Ok(Secret::new(pem.as_str().to_owned()))
    }

    /// The public key line, `ssh-ed25519 AAAA… warrant-managed`, for the admin account's
    /// `authorized_keys`.
    #[must_use]
    pub fn public_openssh(&self) -> String {
        let mut public = self.key.public_key().clone();
        public.set_comment(MANAGED_KEY_COMMENT);
        // Encoding an ed25519 public key cannot fail; fall back to the bare key just in case.
        public
            .to_openssh()
            .unwrap_or_else(|_| format!("ssh-ed25519 {MANAGED_KEY_COMMENT}"))
    }

    /// The SHA-256 fingerprint of the public key, `SHA256:…` as `ssh-keygen -l` prints it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    pub(crate) fn private(&self) -> Arc<PrivateKey> {
        Arc::clone(&self.key)
    }
}

impl fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn round_trips_through_openssh_and_never_prints_the_key() {
        let key = ManagedKey::generate().unwrap();
        let pem = key.to_openssh().unwrap();
        assert!(
            pem.expose()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        let again = ManagedKey::from_openssh(&pem).unwrap();
        assert_eq!(again.public_openssh(), key.public_openssh());
        assert_eq!(again.fingerprint(), key.fingerprint());

        let line = key.public_openssh();
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert!(line.ends_with(" warrant-managed"), "{line}");

        let debug = format!("{key:?}");
        assert!(debug.contains(&key.fingerprint()), "{debug}");
        let body: String = pem
            .expose()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!debug.contains(&body[..20]), "{debug}");
    }

    #[test]
    fn refuses_what_is_not_a_plain_ed25519_key() {
        let e = ManagedKey::from_openssh(&Secret::new("not a key".to_owned())).unwrap_err();
        assert_eq!(e.code(), "host_managed_key");
        assert!(!e.to_string().contains("not a key"), "{e}");
    }
}

//! [`VaultError`]: what can go wrong, with a stable code per kind and never a key or plaintext.

use std::path::PathBuf;

/// An error of the vault. No variant carries key material, plaintext or anything derived from
/// them beyond a KEK's public id; [`VaultError::Decrypt`] is deliberately one opaque message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The sealed value names a KEK this vault does not hold (neither current nor previous).
    #[error("no key-encryption key with id {kek_id} is configured")]
    UnknownKek {
        /// The id the sealed value names.
        kek_id: String,
    },
    /// The value does not open: wrong key, wrong record, or tampered. Which one is not said.
    #[error("the sealed value could not be decrypted")]
    Decrypt,
    /// The text form of a sealed value is malformed (says which part; the format is public).
    #[error("malformed sealed value: {0}")]
    Format(String),
    /// A KEK file could not be created, read or accepted.
    #[error("key file {}: {reason}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        reason: String,
    },
    /// A KEK given as a value (e.g. `WARRANT_KEK`) is not base64 of 32 bytes.
    #[error("key-encryption key value: {reason}")]
    KeyValue {
        /// What is wrong with it (never the value itself).
        reason: String,
    },
    /// The associated data (the record's identity) is empty, so the value would be bound to
    /// nothing.
    #[error("the record identity (associated data) must not be empty")]
    EmptyAad,
    /// The plaintext is larger than [`crate::MAX_PLAINTEXT`].
    #[error("secret of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Encryption failed (unreachable within [`crate::MAX_PLAINTEXT`]; kept instead of a panic).
    #[error("encryption failed")]
    Encrypt,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl VaultError {
    /// A stable, greppable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownKek { .. } => "vault.unknown_kek",
            Self::Decrypt => "vault.decrypt",
            Self::Format(_) => "vault.format",
            Self::KeyFile { .. } => "vault.key_file",
            Self::KeyValue { .. } => "vault.key_value",
            Self::EmptyAad => "vault.empty_aad",
            Self::TooLarge { .. } => "vault.too_large",
            Self::Encrypt => "vault.encrypt",
            Self::Random(_) => "vault.random",
        }
    }
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::fill(buf).map_err(|e| VaultError::Random(e.to_string()))
}

use thiserror::Error;

/// Why the certificate authority refused a key or a request.
///
/// Messages name what was wrong but never contain key material; [`SshCaError::code`] is the
/// stable, greppable code for APIs and logs.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SshCaError {
    /// The user's public key is not an OpenSSH public key line.
    #[error("not an OpenSSH public key: {0}")]
    InvalidPublicKey(String),
    /// The user's key is of a kind the CA does not certify (DSA, RSA under 3072 bits, a
    /// certificate, an unknown algorithm).
    #[error("key not accepted: {0}")]
    WeakKey(String),
    /// The request lists no principals, or an empty one.
    #[error("a certificate needs at least one principal, and none may be empty")]
    NoPrincipals,
    /// `valid_before` is not after `valid_after`.
    #[error(
        "empty validity window: valid_before ({valid_before}) must be after valid_after ({valid_after})"
    )]
    InvalidValidity {
        /// The requested start (unix seconds).
        valid_after: u64,
        /// The requested end (unix seconds).
        valid_before: u64,
    },
    /// Serial 0 cannot be revoked through a KRL (OpenSSH rejects it), so it is never issued.
    #[error("serial 0 is reserved: a KRL cannot revoke it")]
    ZeroSerial,
    /// The CA key could not be read (not an unencrypted OpenSSH ed25519 private key) or written.
    #[error("CA key: {0}")]
    CaKey(String),
    /// The CA public key given for a KRL is not an OpenSSH public key line.
    #[error("not an OpenSSH CA public key: {0}")]
    InvalidCaPublicKey(String),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Building or signing the certificate failed.
    #[error("could not sign the certificate: {0}")]
    Sign(String),
}

impl SshCaError {
    /// A stable code for this kind of error, e.g. `sshca.weak_key`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPublicKey(_) => "sshca.invalid_public_key",
            Self::WeakKey(_) => "sshca.weak_key",
            Self::NoPrincipals => "sshca.no_principals",
            Self::InvalidValidity { .. } => "sshca.invalid_validity",
            Self::ZeroSerial => "sshca.zero_serial",
            Self::CaKey(_) => "sshca.ca_key",
            Self::InvalidCaPublicKey(_) => "sshca.invalid_ca_public_key",
            Self::Random => "sshca.random",
            Self::Sign(_) => "sshca.sign",
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, SshCaError>;

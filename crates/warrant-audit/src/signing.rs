//! The ed25519 keys Warrant keeps for itself — the audit key (checkpoints, export seals) and the
//! recording key (session manifests) — and the check of their signatures: one type, so that
//! both are made, stored, shown and checked alike.
//!
//! A key is stored as its 32-byte seed in hex (sealed by the vault, never shown); its public
//! half travels as base64. Its `Debug` shows only the public half. Checks are strict
//! (`verify_strict`: no weak keys, no malleable signatures).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer};
use warrant_core::Secret;

/// Why a key or a signature is not right.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// No randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// A stored key or public key that does not decode.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The signature does not decode.
    #[error("malformed signature")]
    MalformedSignature,
    /// The signature does not match what it signs under that key.
    #[error("the signature does not match")]
    Mismatch,
}

/// One of Warrant's own ed25519 signing keys.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, SignatureError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SignatureError::Random(e.to_string()))?;
        let key = Self(ed25519_dalek::SigningKey::from_bytes(&seed));
        seed.fill(0);
        Ok(key)
    }

    /// The key from its seed (hex), as [`SigningKey::to_seed`] gave it.
    pub fn from_seed(seed_hex: &Secret<String>) -> Result<Self, SignatureError> {
        let bytes = hex::decode(seed_hex.expose().trim())
            .map_err(|_| SignatureError::MalformedKey("the seed is not hex"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SignatureError::MalformedKey("the seed is not 32 bytes"))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The seed (hex), for sealing in the vault.
    #[must_use]
    pub fn to_seed(&self) -> Secret<String> {
        Secret::new(hex::encode(self.0.to_bytes()))
    }

    /// The public key, base64: what verifiers trust.
    #[must_use]
    pub fn public_base64(&self) -> String {
        B64.encode(self.0.verifying_key().to_bytes())
    }

    /// The signature of `bytes`, base64.
    #[must_use]
    pub fn sign(&self, bytes: &[u8]) -> String {
        B64.encode(self.0.sign(bytes).to_bytes())
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public_base64())
            .finish_non_exhaustive()
    }
}

/// Checks `signature` (base64) of `bytes` under `public_key` (base64).
pub fn verify(public_key: &str, signature: &str, bytes: &[u8]) -> Result<(), SignatureError> {
    let key: [u8; 32] = B64
        .decode(public_key.trim())
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(SignatureError::MalformedKey(
            "the public key is not 32 bytes of base64",
        ))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| SignatureError::MalformedKey("not an ed25519 public key"))?;
    let sig: [u8; 64] = B64
        .decode(signature.trim())
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or(SignatureError::MalformedSignature)?;
    key.verify_strict(bytes, &Signature::from_bytes(&sig))
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_key_signs_survives_its_seed_and_shows_only_its_public_half() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_seed(&key.to_seed()).unwrap();
        assert_eq!(key.public_base64(), again.public_base64());
        let sig = key.sign(b"hello");
        verify(&again.public_base64(), &sig, b"hello").unwrap();
        assert_eq!(
            verify(&key.public_base64(), &sig, b"hellO"),
            Err(SignatureError::Mismatch)
        );
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            verify(&other.public_base64(), &sig, b"hello"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("bm90IGEga2V5", &sig, b"hello"),
            Err(SignatureError::MalformedKey(
                "the public key is not 32 bytes of base64"
            ))
        );
        assert_eq!(
            verify(&key.public_base64(), "!!", b"hello"),
            Err(SignatureError::MalformedSignature)
        );
        let shown = format!("{key:?}");
        assert!(shown.contains(&key.public_base64()));
        assert!(!shown.contains(key.to_seed().expose().as_str()));
        assert!(SigningKey::from_seed(&Secret::new("zz".into())).is_err());
        assert!(SigningKey::from_seed(&Secret::new("abcd".into())).is_err());
    }
}

//! Signed checkpoints and export seals: what makes the audit chain tamper-evident beyond its
//! own hashes.
//!
//! The hash chain finds a record that was modified, deleted or moved — but not records cut off
//! at the end together with the recorded head, nor a chain rewritten from some point on by
//! someone who recomputes the hashes. A [`Checkpoint`] closes both: Warrant signs the chain's
//! head (`seq`, `hash`) with an ed25519 key of its own ([`AuditKey`], not the SSH CA), on a
//! period and at shutdown. A chain that ends before a checkpoint, or whose record at a
//! checkpoint's position has another hash, has been cut or rewritten, and only the holder of
//! the key could have signed a checkpoint that hides it.
//!
//! An export bundle ends with a [`Seal`]: the same key signs the bundle's first record's
//! position and predecessor, its last record's position and hash, and the `since` it was asked
//! for, so that an auditor verifying the bundle offline finds records removed at either end.
//!
//! Signed bytes are a fixed text layout with a domain prefix per kind, so that a checkpoint's
//! signature can never pass as a seal's or the other way round.

use serde::{Deserialize, Serialize};

pub use crate::signing::SignatureError;
use crate::signing::{SigningKey, verify};

/// Warrant's audit signing key (ed25519): [`SigningKey`], which signs checkpoints and seals.
pub type AuditKey = SigningKey;

impl SigningKey {
    /// Signs the chain's head at `seq` (whose record hash is `hash`) at `at_ms`.
    #[must_use]
    pub fn checkpoint(&self, seq: i64, hash: &str, at_ms: i64) -> Checkpoint {
        let mut c = Checkpoint {
            seq,
            hash: hash.to_owned(),
            at_ms,
            signature: String::new(),
        };
        c.signature = self.sign(&c.signed_bytes());
        c
    }

    /// Seals an export: `seal`'s fields as given, its signature made here.
    #[must_use]
    pub fn seal(&self, mut seal: Seal) -> Seal {
        seal.signature = self.sign(&seal.signed_bytes());
        seal
    }
}

/// A signed statement that the chain's record `seq` had hash `hash` at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The position of the head it signs.
    pub seq: i64,
    /// That record's hash (hex).
    pub hash: String,
    /// When it was signed, ms since the epoch.
    pub at_ms: i64,
    /// ed25519 signature (base64) over the signed bytes.
    pub signature: String,
}

impl Checkpoint {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "warrant audit checkpoint v1\nseq {}\nhash {}\nat {}\n",
            self.seq, self.hash, self.at_ms
        )
        .into_bytes()
    }

    /// Checks the signature against `public_key` (base64).
    pub fn verify(&self, public_key: &str) -> Result<(), SignatureError> {
        verify(public_key, &self.signature, &self.signed_bytes())
    }
}

/// The signed end of an export bundle: which piece of the chain it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// The `since` the export was asked for, ms since the epoch (0: from the start).
    pub since_ms: i64,
    /// The first record's position (0 when the bundle holds no record).
    pub first_seq: i64,
    /// The first record's `prev_hash`: where the piece hangs in the whole chain.
    pub first_prev_hash: String,
    /// The last record's position (the chain's head when the export was made).
    pub last_seq: i64,
    /// The last record's hash.
    pub last_hash: String,
    /// How many records the bundle holds.
    pub records: u64,
    /// When the export was made, ms since the epoch.
    pub at_ms: i64,
    /// ed25519 signature (base64) over the signed bytes.
    pub signature: String,
}

impl Seal {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "warrant audit export seal v1\nsince {}\nfirst {} {}\nlast {} {}\nrecords {}\nat {}\n",
            self.since_ms,
            self.first_seq,
            self.first_prev_hash,
            self.last_seq,
            self.last_hash,
            self.records,
            self.at_ms
        )
        .into_bytes()
    }

    /// Checks the signature against `public_key` (base64).
    pub fn verify(&self, public_key: &str) -> Result<(), SignatureError> {
        verify(public_key, &self.signature, &self.signed_bytes())
    }
}

/// A short fingerprint of a public key (base64) for people to compare: the first 16 bytes of
/// its SHA-256, hex, in groups of four.
#[must_use]
pub fn fingerprint(public_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(public_key.trim().as_bytes());
    hex::encode(&digest[..16])
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_checkpoint_verifies_and_any_change_is_found() {
        let key = AuditKey::generate().unwrap();
        let public = key.public_base64();
        let c = key.checkpoint(42, "ab".repeat(32).as_str(), 1_000);
        c.verify(&public).unwrap();

        let mut moved = c.clone();
        moved.seq = 41;
        assert_eq!(moved.verify(&public), Err(SignatureError::Mismatch));
        let mut rehashed = c.clone();
        rehashed.hash = "cd".repeat(32);
        assert_eq!(rehashed.verify(&public), Err(SignatureError::Mismatch));

        let other = AuditKey::generate().unwrap().public_base64();
        assert_eq!(c.verify(&other), Err(SignatureError::Mismatch));
        let mut garbled = c;
        garbled.signature = "not base64!".into();
        assert_eq!(
            garbled.verify(&public),
            Err(SignatureError::MalformedSignature)
        );
    }

    #[test]
    fn a_seal_verifies_and_is_not_a_checkpoint() {
        let key = AuditKey::generate().unwrap();
        let public = key.public_base64();
        let seal = key.seal(Seal {
            since_ms: 0,
            first_seq: 1,
            first_prev_hash: "00".repeat(32),
            last_seq: 42,
            last_hash: "ab".repeat(32),
            records: 42,
            at_ms: 1_000,
            signature: String::new(),
        });
        seal.verify(&public).unwrap();
        let mut fewer = seal.clone();
        fewer.records = 41;
        assert_eq!(fewer.verify(&public), Err(SignatureError::Mismatch));

        // A checkpoint's signature over the same head does not pass as the seal's.
        let c = key.checkpoint(42, &"ab".repeat(32), 1_000);
        let mut forged = seal;
        forged.signature = c.signature;
        assert_eq!(forged.verify(&public), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_seed_round_trips() {
        let key = AuditKey::generate().unwrap();
        let again = AuditKey::from_seed(&key.to_seed()).unwrap();
        assert_eq!(key.public_base64(), again.public_base64());
        assert!(AuditKey::from_seed(&warrant_core::Secret::new("zz".into())).is_err());
        assert!(!format!("{key:?}").contains(key.to_seed().expose()));
        assert_eq!(fingerprint(&key.public_base64()).len(), 39);
    }
}

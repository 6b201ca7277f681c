//! Time-based one-time passwords (RFC 6238) through `totp-rs`, and single-use recovery codes.
//!
//! Warrant's authenticator codes are the common profile every app understands: SHA-1, 6
//! digits, 30-second steps. A code is accepted for the step before, the current one and the
//! step after (±1 step of clock skew), and only for a step later than the last one accepted,
//! so each code works once. The comparison is constant time (`totp-rs` compares tokens with
//! `constant_time_eq`).

use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};
use warrant_core::Secret;

use crate::IamError;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Bytes of a new seed (160 bits, RFC 4226's recommendation).
pub const SEED_LEN: usize = 20;

/// The hash a TOTP profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// HMAC-SHA-1 (what authenticator apps use).
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

fn totp(
    seed: &[u8],
    hash: Hash,
    digits: u8,
    account: Option<(&str, &str)>,
) -> Result<Totp, IamError> {
    let algorithm = match hash {
        Hash::Sha1 => Algorithm::SHA1,
        Hash::Sha256 => Algorithm::SHA256,
        Hash::Sha512 => Algorithm::SHA512,
    };
    let mut b = Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(STEP_SECS)
        .with_skew(1)
        .with_secret(seed.to_vec());
    if let Some((issuer, name)) = account {
        b = b.with_issuer(Some(issuer)).with_account_name(name);
    }
    b.build().map_err(|e| IamError::Totp(e.to_string()))
}

/// The code for instant `unix_secs` (RFC 6238 §4): for tests and for the vectors of its
/// appendix B.
pub fn code_at(seed: &[u8], hash: Hash, digits: u8, unix_secs: u64) -> Result<String, IamError> {
    Ok(totp(seed, hash, digits, None)?
        .generate(unix_secs)
        .to_string())
}

/// A new random seed.
pub fn new_seed() -> Result<Secret<Vec<u8>>, IamError> {
    let mut seed = vec![0u8; SEED_LEN];
    getrandom::fill(&mut seed).map_err(|_| IamError::Random)?;
    Ok(Secret::new(seed))
}

/// What an authenticator app needs: the `otpauth://` URI (for a QR code) and the seed as
/// base32 text (to type in).
pub fn enrolment(seed: &[u8], issuer: &str, account: &str) -> Result<(String, String), IamError> {
    let t = totp(seed, Hash::Sha1, DIGITS, Some((issuer, account)))?;
    let uri = t.to_url().map_err(|e| IamError::Totp(e.to_string()))?;
    Ok((uri, t.secret().to_base32()))
}

/// The seed behind base32 text as an enrolment shows it (for clients and tests).
pub fn seed_from_base32(text: &str) -> Option<Vec<u8>> {
    totp_rs::Secret::try_from_base32(text.trim())
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// Checks `code` at `unix_secs` (±1 step). Returns the step it matched, which must be later
/// than `last_step` (the last step accepted for this seed): a code is accepted only once.
pub fn verify(seed: &[u8], code: &str, unix_secs: u64, last_step: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(seed, Hash::Sha1, DIGITS, None).ok()?;
    let step = t.check(code, unix_secs)?;
    match last_step {
        Some(last) if step <= last => None,
        _ => Some(step),
    }
}

/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;

/// New single-use recovery codes (`xxxx-xxxx-xxxx-xxxx`, 80 random bits each, base32 without
/// look-alike letters) with the SHA-256 hashes to store. Shown once.
pub fn new_recovery_codes() -> Result<Vec<(Secret<String>, String)>, IamError> {
    // 23 letters without i, l, o and the digits 0, 2-9: 32 symbols, 5 bits each.
    const ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";
    let mut out = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|_| IamError::Random)?;
        let chars: String = raw
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        let code = format!(
            "{}-{}-{}-{}",
            &chars[0..4],
            &chars[4..8],
            &chars[8..12],
            &chars[12..16]
        );
        let hash = recovery_code_hash(&code);
        out.push((Secret::new(code), hash));
    }
    Ok(out)
}

/// The stored form of a recovery code: SHA-256 of its normalised text (lower case, no spaces).
/// The codes are random, so a fast hash is enough; the store compares hashes only.
pub fn recovery_code_hash(code: &str) -> String {
    let norm: String = code
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

//! Sign-in material: password hashes (argon2id) and bearer tokens.
//!
//! A token reads `wt_<id>_<secret>`. Only SHA-256 of the secret is stored; the id finds the row
//! and the secret is compared in constant time. [`totp`]: one-time passwords and recovery codes.

pub mod totp;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warrant_core::Secret;

/// The shortest password Warrant accepts.
pub const MIN_PASSWORD_LEN: usize = 10;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The password is too short.
    #[error("a password needs at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// The system's randomness or hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The system's randomness failed.
    #[error("the system's random number generator failed")]
    Random,
    /// A TOTP profile was refused (bad seed length, digits).
    #[error("TOTP: {0}")]
    Totp(String),
}

/// Hashes a password with argon2id (default parameters) into a PHC string.
pub fn hash_password(pw: &Secret<String>) -> Result<String, IamError> {
    if pw.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(IamError::WeakPassword);
    }
    Argon2::default()
        .hash_password(pw.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| IamError::Hash(e.to_string()))
}

/// Whether `pw` matches the PHC string `phc`. Always does the full work, so an unknown user
/// (pass `None`) costs as much as a wrong password.
pub fn verify_password(pw: &Secret<String>, phc: Option<&str>) -> bool {
    // A real hash with the same parameters, so that checking against it costs the same.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"warrant-dummy-password")
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    let ok = Argon2::default()
        .verify_password(pw.expose().as_bytes(), phc.unwrap_or(dummy))
        .is_ok();
    ok && phc.is_some()
}

/// A freshly made token: the whole token is shown once, only its hash is kept.
#[derive(Debug)]
pub struct IssuedToken {
    /// The public id (what listings and audit show).
    pub id: String,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
    /// `wt_<id>_<secret>`.
    pub token: Secret<String>,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], IamError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| IamError::Random)?;
    Ok(b)
}

fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Makes a new token.
pub fn new_token() -> Result<IssuedToken, IamError> {
    let id = hex::encode(random_bytes::<8>()?);
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok(IssuedToken {
        secret_hash: secret_hash(&secret),
        token: Secret::new(format!("wt_{id}_{secret}")),
        id,
    })
}

/// Splits a presented token into (id, secret), or `None` if it is not shaped like one.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("wt_")?;
    let (id, secret) = rest.split_once('_')?;
    let ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty();
    ok.then_some((id, secret))
}

/// Whether the presented secret matches the stored hash, compared in constant time.
pub fn token_matches(secret: &str, stored_hash: &str) -> bool {
    secret_hash(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A random id for requests, grants and jobs: 128 bits, hex.
pub fn new_id() -> Result<String, IamError> {
    Ok(hex::encode(random_bytes::<16>()?))
}

/// A new id that sorts by creation time: the milliseconds of `now` (48 bits, big-endian)
/// then 80 random bits, as 32 hex digits (the layout of a UUIDv7 without its version bits).
/// For rows made often and looked up by id (requests, grants): their indexes, and the audit
/// trail's, then grow at the end instead of at a random place, which keeps writes cheap.
/// Not for anything that must be unguessable.
pub fn new_time_ordered_id(now: warrant_core::Timestamp) -> Result<String, IamError> {
    let mut b = [0_u8; 16];
    let ms = u64::try_from(now.millis()).unwrap_or(0).to_be_bytes();
    b[..6].copy_from_slice(&ms[2..]);
    b[6..].copy_from_slice(&random_bytes::<10>()?);
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_ids_sort_by_time_and_differ() -> Result<(), IamError> {
        let a = new_time_ordered_id(warrant_core::Timestamp::from_millis(1_764_900_000_000))?;
        let b = new_time_ordered_id(warrant_core::Timestamp::from_millis(1_764_900_000_001))?;
        let c = new_time_ordered_id(warrant_core::Timestamp::from_millis(1_764_900_000_001))?;
        assert_eq!(a.len(), 32);
        assert!(a < b && a < c);
        assert_ne!(b, c);
        assert_eq!(&b[..12], &c[..12]);
        assert_eq!(&a[..12], "019aec3cd100");
        Ok(())
    }

    #[test]
    fn passwords() -> Result<(), IamError> {
        let pw = Secret::new("correct horse battery".to_owned());
        let h = hash_password(&pw)?;
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&pw, Some(&h)));
        assert!(!verify_password(
            &Secret::new("wrong password!".into()),
            Some(&h)
        ));
        assert!(!verify_password(&pw, None));
        assert!(matches!(
            hash_password(&Secret::new("short".into())),
            Err(IamError::WeakPassword)
        ));
        Ok(())
    }

    #[test]
    fn tokens() -> Result<(), IamError> {
        let t = new_token()?;
        let (id, secret) = parse_token(t.token.expose()).ok_or(IamError::Random)?;
        assert_eq!(id, t.id);
        assert!(token_matches(secret, &t.secret_hash));
        assert!(!token_matches("nope", &t.secret_hash));
        assert!(parse_token("wt_zz_abc").is_none());
        assert!(parse_token("Bearer x").is_none());
        Ok(())
    }
}

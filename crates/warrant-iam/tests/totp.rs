//! RFC 6238 appendix B vectors, ±1 step, single use, recovery codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use warrant_iam::totp::{self, Hash};

const SHA1_SEED: &[u8] = b"12345678901234567890";
const SHA256_SEED: &[u8] = b"12345678901234567890123456789012";
const SHA512_SEED: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 6238 appendix B: (time, SHA-1, SHA-256, SHA-512), 8 digits.
const VECTORS: &[(u64, &str, &str, &str)] = &[
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
];

#[test]
fn rfc_6238_appendix_b_vectors() {
    for &(t, sha1, sha256, sha512) in VECTORS {
        assert_eq!(
            totp::code_at(SHA1_SEED, Hash::Sha1, 8, t).unwrap(),
            sha1,
            "SHA1 at {t}"
        );
        assert_eq!(
            totp::code_at(SHA256_SEED, Hash::Sha256, 8, t).unwrap(),
            sha256,
            "SHA256 at {t}"
        );
        assert_eq!(
            totp::code_at(SHA512_SEED, Hash::Sha512, 8, t).unwrap(),
            sha512,
            "SHA512 at {t}"
        );
    }
}

#[test]
fn codes_are_accepted_one_step_either_side_and_not_beyond() {
    let seed = SHA1_SEED;
    let now = 1_700_000_015u64; // step 56666667
    let at = |t: u64| totp::code_at(seed, Hash::Sha1, 6, t).unwrap();
    let step = now / 30;
    assert_eq!(totp::verify(seed, &at(now), now, None), Some(step));
    assert_eq!(totp::verify(seed, &at(now - 30), now, None), Some(step - 1));
    assert_eq!(totp::verify(seed, &at(now + 30), now, None), Some(step + 1));
    assert_eq!(totp::verify(seed, &at(now - 60), now, None), None);
    assert_eq!(totp::verify(seed, &at(now + 60), now, None), None);
}

#[test]
fn each_code_is_accepted_once() {
    let seed = SHA1_SEED;
    let now = 1_700_000_015u64;
    let code = totp::code_at(seed, Hash::Sha1, 6, now).unwrap();
    let step = totp::verify(seed, &code, now, None).unwrap();
    assert_eq!(totp::verify(seed, &code, now, Some(step)), None, "replay");
    // An older code (the previous step) is refused after a newer one was used.
    let older = totp::code_at(seed, Hash::Sha1, 6, now - 30).unwrap();
    assert_eq!(totp::verify(seed, &older, now, Some(step)), None);
    // The next step's code is still good.
    let next = totp::code_at(seed, Hash::Sha1, 6, now + 30).unwrap();
    assert_eq!(
        totp::verify(seed, &next, now + 30, Some(step)),
        Some(step + 1)
    );
}

#[test]
fn malformed_codes_are_refused() {
    let now = 1_700_000_015u64;
    for bad in ["", "12345", "1234567", "abcdef", "12 456", "１２３４５６"] {
        assert_eq!(totp::verify(SHA1_SEED, bad, now, None), None, "{bad:?}");
    }
}

#[test]
fn enrolment_gives_an_otpauth_uri_and_the_base32_seed() {
    let seed = totp::new_seed().unwrap();
    let (uri, text) = totp::enrolment(seed.expose(), "Warrant", "alice").unwrap();
    assert!(uri.starts_with("otpauth://totp/Warrant:alice?"), "{uri}");
    assert!(uri.contains(&format!("secret={text}")), "{uri}");
    assert!(uri.contains("issuer=Warrant"), "{uri}");
    assert_eq!(text.len(), 32, "160 bits in base32: {text}");
    // Two seeds differ.
    assert_ne!(totp::new_seed().unwrap().expose(), seed.expose());
}

#[test]
fn recovery_codes_are_random_and_hashed_after_normalising() {
    let codes = totp::new_recovery_codes().unwrap();
    assert_eq!(codes.len(), totp::RECOVERY_CODES);
    let mut seen = std::collections::BTreeSet::new();
    for (code, hash) in &codes {
        let c = code.expose();
        assert_eq!(c.len(), 19, "{c}");
        assert!(seen.insert(c.clone()));
        assert_eq!(&totp::recovery_code_hash(c), hash);
        assert_eq!(
            &totp::recovery_code_hash(&format!("  {} ", c.to_uppercase())),
            hash
        );
        assert!(!hash.contains(c.as_str()));
    }
}

//! Integration tests of the vault: sealing, the text form, KEK files and values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kek;
mod sealing;
mod text_form;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use warrant_vault::{Kek, Sealed, Vault, VaultError};

/// A KEK with known bytes, so tests can look for them in output.
fn known_kek(byte: u8) -> (Kek, [u8; 32]) {
    let bytes = [byte; 32];
    (Kek::from_env_value(&STANDARD.encode(bytes)).unwrap(), bytes)
}

fn vault() -> Vault {
    Vault::new(Kek::generate().unwrap())
}

/// The five dot-separated parts of the text form.
fn parts(sealed: &Sealed) -> Vec<String> {
    sealed.to_string().split('.').map(str::to_owned).collect()
}

/// `sealed` with one bit flipped in byte `byte` of part `part` (2 wrapped key, 3 nonce,
/// 4 ciphertext), as someone with write access to the column could do.
fn tamper(sealed: &Sealed, part: usize, byte: usize, bit: u8) -> Sealed {
    let mut p = parts(sealed);
    let mut bytes = URL_SAFE_NO_PAD.decode(&p[part]).unwrap();
    bytes[byte] ^= 1 << bit;
    p[part] = URL_SAFE_NO_PAD.encode(bytes);
    p.join(".").parse().unwrap()
}

/// Every way the key could be printed: hex, both base64 alphabets, the byte array's `Debug`.
fn assert_no_key(text: &str, key: &[u8; 32]) {
    for needle in [
        hex::encode(key),
        hex::encode_upper(key),
        STANDARD.encode(key),
        URL_SAFE_NO_PAD.encode(key),
        format!("{key:?}"),
        format!("{:?}", key.as_slice()),
    ] {
        assert!(
            !text.contains(&needle),
            "{text:?} contains the key as {needle:?}"
        );
    }
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: Result<T, VaultError>, code: &str) -> VaultError {
    let err = result.expect_err("expected an error");
    assert_eq!(err.code(), code, "{err:?}");
    err
}

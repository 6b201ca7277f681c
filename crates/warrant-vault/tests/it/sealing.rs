//! Seal, open, rewrap: round trips, record binding, tampering, unknown keys.

use warrant_vault::{Kek, MAX_PLAINTEXT, Vault, VaultError};

use crate::{assert_code, assert_no_key, known_kek, parts, tamper, vault};

#[test]
fn round_trip() {
    let v = vault();
    for plaintext in [
        &b""[..],
        b"x",
        b"JBSWY3DPEHPK3PXP",
        &[0xff; 32],
        &vec![7; MAX_PLAINTEXT],
    ] {
        let sealed = v.seal("totp:alice", plaintext).unwrap();
        assert_eq!(sealed.kek_id(), v.current_kek_id());
        assert_eq!(v.open("totp:alice", &sealed).unwrap().as_slice(), plaintext);
    }
}

#[test]
fn limits_and_empty_record_identity() {
    let v = vault();
    let err = assert_code(
        v.seal("totp:a", &vec![0; MAX_PLAINTEXT + 1]),
        "vault.too_large",
    );
    assert!(
        matches!(err, VaultError::TooLarge { len, max } if len == MAX_PLAINTEXT + 1 && max == MAX_PLAINTEXT)
    );
    assert_code(v.seal("", b"s"), "vault.empty_aad");
    let sealed = v.seal("totp:a", b"s").unwrap();
    assert_code(v.open("", &sealed), "vault.empty_aad");
    assert_code(v.rewrap("", &sealed), "vault.empty_aad");
}

#[test]
fn another_record_does_not_open() {
    let v = vault();
    let sealed = v.seal("totp:1", b"seed").unwrap();
    for aad in [
        "totp:10",
        "totp:",
        "TOTP:1",
        "totp:1 ",
        "totp:1\0",
        "password:1",
    ] {
        let err = assert_code(v.open(aad, &sealed), "vault.decrypt");
        assert_eq!(err.to_string(), "the sealed value could not be decrypted");
        assert_code(v.rewrap(aad, &sealed), "vault.decrypt");
    }
}

#[test]
fn every_tampered_bit_fails() {
    let v = vault();
    let sealed = v
        .seal("totp:alice", b"0123456789abcdef0123456789abcdef")
        .unwrap();
    // 2: wrapped key (72 bytes), 3: nonce (24), 4: ciphertext (32 + 16).
    for (part, len) in [(2, 72), (3, 24), (4, 48)] {
        for byte in 0..len {
            for bit in [0, 7] {
                let t = tamper(&sealed, part, byte, bit);
                assert_ne!(t, sealed);
                assert_code(v.open("totp:alice", &t), "vault.decrypt");
            }
        }
    }
}

#[test]
fn parts_do_not_move_between_values() {
    let (k1, _) = known_kek(1);
    let (k2, _) = known_kek(2);
    let v = Vault::new(k1.clone()).with_previous(k2.clone());
    let a = v.seal("totp:alice", b"same").unwrap();
    let b = v.seal("totp:alice", b"same").unwrap();
    let (pa, pb) = (parts(&a), parts(&b));
    // b's wrapped key with a's data, and a's key relabelled as wrapped by the other KEK.
    let mixed = [&pa[0], &pa[1], &pb[2], &pa[3], &pa[4]]
        .map(String::as_str)
        .join(".");
    assert_code(
        v.open("totp:alice", &mixed.parse().unwrap()),
        "vault.decrypt",
    );
    let relabelled = a.to_string().replace(k1.id(), k2.id());
    assert_code(
        v.open("totp:alice", &relabelled.parse().unwrap()),
        "vault.decrypt",
    );
}

#[test]
fn two_seals_of_the_same_secret_differ() {
    let v = vault();
    let (a, b) = (
        v.seal("r:1", b"same").unwrap(),
        v.seal("r:1", b"same").unwrap(),
    );
    let (pa, pb) = (parts(&a), parts(&b));
    assert_eq!(pa[1], pb[1]);
    for i in 2..5 {
        assert_ne!(pa[i], pb[i], "part {i}");
    }
}

#[test]
fn rewrap_under_a_new_kek_leaves_the_data_alone() {
    let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
    let sealed = Vault::new(old.clone()).seal("totp:alice", b"seed").unwrap();

    let rotating = Vault::new(new.clone()).with_previous(old.clone());
    assert!(rotating.needs_rewrap(&sealed));
    assert_eq!(
        rotating.open("totp:alice", &sealed).unwrap().as_slice(),
        b"seed"
    );
    let rewrapped = rotating.rewrap("totp:alice", &sealed).unwrap();
    assert!(!rotating.needs_rewrap(&rewrapped));
    assert_eq!(rewrapped.kek_id(), new.id());
    let (before, after) = (parts(&sealed), parts(&rewrapped));
    assert_eq!(before[3..], after[3..], "nonce and ciphertext unchanged");
    assert_ne!(before[2], after[2]);

    let only_new = Vault::new(new);
    assert_eq!(
        only_new.open("totp:alice", &rewrapped).unwrap().as_slice(),
        b"seed"
    );
    assert!(!only_new.needs_rewrap(&rewrapped));
    // Re-wrapping under the current key again is harmless.
    let again = only_new.rewrap("totp:alice", &rewrapped).unwrap();
    assert_eq!(
        only_new.open("totp:alice", &again).unwrap().as_slice(),
        b"seed"
    );

    let only_old = Vault::new(old);
    let err = assert_code(only_old.open("totp:alice", &rewrapped), "vault.unknown_kek");
    assert!(matches!(err, VaultError::UnknownKek { kek_id } if kek_id == rewrapped.kek_id()));
}

#[test]
fn a_vault_without_the_named_kek_says_so() {
    let sealed = vault().seal("totp:alice", b"seed").unwrap();
    let other = vault();
    let err = assert_code(other.open("totp:alice", &sealed), "vault.unknown_kek");
    assert!(err.to_string().contains(sealed.kek_id()), "{err}");
    assert_code(other.rewrap("totp:alice", &sealed), "vault.unknown_kek");
    assert!(other.needs_rewrap(&sealed));
}

#[test]
fn keys_are_never_printed() {
    let (k1, key1) = known_kek(0x5a);
    let (k2, key2) = known_kek(0xa5);
    let v = Vault::new(k1.clone())
        .with_previous(k2.clone())
        .with_previous(k2.clone());
    let kek_debug = format!("{k1:?} {k1:#?}");
    assert_eq!(
        format!("{k1:?}"),
        format!("Kek {{ id: {:?}, .. }}", k1.id())
    );
    let vault_debug = format!("{v:?} {v:#?}");
    assert_eq!(
        format!("{v:?}"),
        format!(
            "Vault {{ current: {:?}, previous: [{:?}] }}",
            k1.id(),
            k2.id()
        )
    );
    let sealed = v.seal("r:1", b"s").unwrap();
    let errors = [
        v.open("r:2", &sealed).unwrap_err(),
        Vault::new(Kek::generate().unwrap())
            .open("r:1", &sealed)
            .unwrap_err(),
        v.rewrap("r:2", &sealed).unwrap_err(),
    ];
    for text in [kek_debug, vault_debug, format!("{errors:?} {sealed:?}")]
        .iter()
        .chain(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .iter(),
        )
    {
        assert_no_key(text, &key1);
        assert_no_key(text, &key2);
    }
}

#[test]
fn plaintext_is_not_in_the_sealed_value() {
    let v = vault();
    let sealed = v.seal("r:1", b"hunter2-canary-hunter2-canary").unwrap();
    let text = format!("{sealed} {sealed:?}");
    assert!(!text.contains("hunter2"));
    assert!(!text.contains(&hex::encode("hunter2")));
}

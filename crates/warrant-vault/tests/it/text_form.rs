//! The text form of sealed values: round trips, garbage, and never a panic.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use warrant_vault::{Kek, MAX_PLAINTEXT, Sealed, Vault};

use crate::assert_code;

static VAULT: LazyLock<Vault> = LazyLock::new(|| Vault::new(Kek::generate().unwrap()));

#[test]
fn round_trip() {
    let sealed = VAULT.seal("totp:alice", b"seed").unwrap();
    let text = sealed.to_string();
    let p: Vec<_> = text.split('.').collect();
    assert_eq!(p.len(), 5);
    assert_eq!((p[0], p[1]), ("v1", sealed.kek_id()));
    assert_eq!(text.parse::<Sealed>().unwrap(), sealed);
    assert_eq!(format!("{sealed:?}"), format!("Sealed({text})"));
    // The largest value still parses.
    let largest = VAULT.seal("r:1", &vec![0xff; MAX_PLAINTEXT]).unwrap();
    assert_eq!(largest.to_string().parse::<Sealed>().unwrap(), largest);
}

#[test]
fn garbage_rejected() {
    let good = VAULT.seal("r:1", b"seed").unwrap().to_string();
    let p: Vec<String> = good.split('.').map(str::to_owned).collect();
    let with = |i: usize, s: &str| {
        let mut q = p.clone();
        q[i] = s.to_owned();
        q.join(".")
    };
    let cases = [
        String::new(),
        "v1".into(),
        ".....".into(),
        with(0, "v2"),
        with(0, "V1"),
        with(0, ""),
        format!("{good}."),
        format!("{good}.x"),
        p[..4].join("."),
        format!(" {good}"),
        format!("{good}\n"),
        with(1, &p[1].to_uppercase()),
        with(1, &p[1][..7]),
        with(1, &format!("{}0", p[1])),
        with(1, "zzzzzzzz"),
        with(2, &p[2][1..]),
        with(2, &format!("{}=", p[2])),
        with(
            2,
            &p[2].replacen(|c: char| c.is_ascii_alphanumeric(), "+", 1),
        ),
        with(3, &p[3][..30]),
        with(3, &format!("{}AAAA", p[3])),
        with(4, ""),
        with(4, "AAAAAAAAAAAAAAAAAAAA"),
        with(4, &format!("{}=", p[4])),
        with(4, &format!("{}/", p[4])),
        with(4, &"A".repeat(200_000)),
    ];
    for case in cases {
        assert_code(case.parse::<Sealed>(), "vault.format");
    }
}

fn b64url(len: impl Into<proptest::collection::SizeRange>) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), len).prop_map(|b| URL_SAFE_NO_PAD.encode(b))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in any::<String>(), aad in any::<String>()) {
        if let Ok(sealed) = s.parse::<Sealed>() {
            prop_assert_eq!(sealed.to_string(), s);
            prop_assert!(VAULT.open(&aad, &sealed).is_err());
        }
    }

    #[test]
    fn well_formed_noise_never_opens(wrapped in b64url(72), nonce in b64url(24), ct in b64url(16..80)) {
        let text = format!("v1.{}.{wrapped}.{nonce}.{ct}", VAULT.current_kek_id());
        let sealed: Sealed = text.parse().unwrap();
        prop_assert_eq!(sealed.to_string(), text);
        assert_code(VAULT.open("r:1", &sealed), "vault.decrypt");
        assert_code(VAULT.rewrap("r:1", &sealed), "vault.decrypt");
    }

    #[test]
    fn any_changed_character_is_refused(pos in any::<prop::sample::Index>(), c in any::<char>()) {
        let sealed = VAULT.seal("r:1", b"0123456789abcdef0123456789abcdef").unwrap();
        let text = sealed.to_string();
        let i = pos.index(text.len());
        let mut changed = text.clone();
        changed.replace_range(i..=i, c.encode_utf8(&mut [0; 4]));
        if changed != text
            && let Ok(s) = changed.parse::<Sealed>()
        {
            prop_assert!(VAULT.open("r:1", &s).is_err());
        }
    }

    #[test]
    fn any_secret_round_trips_for_its_record_only(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in ".{1,40}",
        other in ".{1,40}",
    ) {
        let sealed = VAULT.seal(&aad, &plaintext).unwrap();
        let text = sealed.to_string();
        let parsed: Sealed = text.parse().unwrap();
        prop_assert_eq!(parsed.to_string(), text);
        let opened = VAULT.open(&aad, &parsed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        if other != aad {
            assert_code(VAULT.open(&other, &parsed), "vault.decrypt");
        }
    }
}

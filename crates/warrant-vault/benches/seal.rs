//! Sealing and opening a 32-byte secret (one data key, two AEAD operations each).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use warrant_vault::{Kek, Vault};

fn main() {
    divan::main();
}

const SECRET: [u8; 32] = [0x42; 32];

#[divan::bench]
fn seal(bencher: Bencher) {
    let vault = Vault::new(Kek::generate().unwrap());
    bencher.bench(|| {
        vault
            .seal(black_box("totp:alice"), black_box(&SECRET))
            .unwrap()
    });
}

#[divan::bench]
fn open(bencher: Bencher) {
    let vault = Vault::new(Kek::generate().unwrap());
    let sealed = vault.seal("totp:alice", &SECRET).unwrap();
    bencher.bench(|| {
        vault
            .open(black_box("totp:alice"), black_box(&sealed))
            .unwrap()
    });
}

#[divan::bench]
fn open_from_text(bencher: Bencher) {
    let vault = Vault::new(Kek::generate().unwrap());
    let text = vault.seal("totp:alice", &SECRET).unwrap().to_string();
    bencher.bench(|| {
        let sealed = black_box(&text).parse().unwrap();
        vault.open("totp:alice", &sealed).unwrap()
    });
}

#[divan::bench]
fn rewrap(bencher: Bencher) {
    let old = Kek::generate().unwrap();
    let sealed = Vault::new(old.clone()).seal("totp:alice", &SECRET).unwrap();
    let vault = Vault::new(Kek::generate().unwrap()).with_previous(old);
    bencher.bench(|| {
        vault
            .rewrap(black_box("totp:alice"), black_box(&sealed))
            .unwrap()
    });
}

//! Certificates signed per second, and KRLs of many serials.
//!
//! `cargo bench -p warrant-sshca --bench issue`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use warrant_sshca::{CaKey, CertRequest, Extensions};

fn main() {
    divan::main();
}

#[divan::bench]
fn issue_certificate(bencher: Bencher) {
    let ca = CaKey::generate().unwrap();
    let user = CaKey::generate().unwrap().public_openssh();
    let mut serial = 0u64;
    bencher.bench_local(|| {
        serial += 1;
        ca.issue(&CertRequest {
            public_key: black_box(&user),
            principals: vec!["root".into()],
            key_id: format!("alice grant=g{serial}"),
            serial,
            valid_after: 1_800_000_000,
            valid_before: 1_800_003_600,
            extensions: Extensions::default(),
        })
        .unwrap()
    });
}

#[divan::bench(args = [10, 1_000, 100_000])]
fn krl_of_serials(bencher: Bencher, n: u64) {
    let ca = CaKey::generate().unwrap();
    let serials: Vec<u64> = (1..=n).map(|i| i * 3).collect();
    bencher.bench_local(|| ca.krl(black_box(&serials), 1_800_000_000));
}

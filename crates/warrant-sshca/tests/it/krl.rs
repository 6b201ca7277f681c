//! KRLs as `ssh-keygen -Q` reads them.

use warrant_sshca::CaKey;

use crate::{ed25519_key, issue_to_file, request, ssh_keygen, text};

/// `ssh-keygen -Q -f krl cert`: `(revoked, output)`; panics on anything but "ok" / "REVOKED".
fn query(krl: &std::path::Path, cert: &std::path::Path) -> (bool, String) {
    let out = ssh_keygen(&[
        "-Q",
        "-f",
        krl.to_str().expect("path"),
        cert.to_str().expect("path"),
    ]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    match out.status.code() {
        Some(0) => (false, all),
        Some(1) if all.contains("REVOKED") => (true, all),
        other => panic!("ssh-keygen -Q exited {other:?}: {all}"),
    }
}

#[test]
fn revoked_serials_are_revoked_and_others_are_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (key, public) = ed25519_key(dir.path(), "alice");
    let certs: Vec<_> = [5u64, 6, 7, 1 << 40]
        .iter()
        .map(|serial| {
            let key_copy = dir.path().join(format!("alice{serial}"));
            std::fs::copy(&key, &key_copy).expect("copy key");
            (
                *serial,
                issue_to_file(&ca, &key_copy, &request(&public, *serial)),
            )
        })
        .collect();

    let krl_path = dir.path().join("krl.bin");
    std::fs::write(&krl_path, ca.krl(&[7, 5, 7, 1 << 40, 0], 1_700_000_000)).expect("write");
    for (serial, cert) in &certs {
        let (revoked, out) = query(&krl_path, cert);
        assert_eq!(revoked, *serial != 6, "serial {serial}: {out}");
    }

    // The same KRL through the public key line, as the server will build it.
    let from_line = warrant_sshca::krl(&ca.public_openssh(), &[7, 5, 7, 1 << 40, 0], 1_700_000_000)
        .expect("krl");
    assert_eq!(from_line, ca.krl(&[5, 7, 1 << 40], 1_700_000_000));

    // ssh-keygen lists what it parsed: version, date, comment and the serials.
    let out = ssh_keygen(&["-Q", "-l", "-f", krl_path.to_str().expect("path")]);
    let listing = text(&out.stdout);
    assert!(listing.contains("KRL version 1700000000"), "{listing}");
    assert!(listing.contains("Comment: warrant"), "{listing}");
    assert!(listing.contains(&ca.fingerprint()), "{listing}");
}

#[test]
fn another_cas_certificate_is_not_revoked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let other = CaKey::generate().expect("other CA");
    let (key, public) = ed25519_key(dir.path(), "bob");
    let cert = issue_to_file(&other, &key, &request(&public, 9));
    let krl_path = dir.path().join("krl.bin");
    std::fs::write(&krl_path, ca.krl(&[9], 1)).expect("write");
    assert!(!query(&krl_path, &cert).0);
}

#[test]
fn an_empty_krl_revokes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (key, public) = ed25519_key(dir.path(), "carol");
    let cert = issue_to_file(&ca, &key, &request(&public, 1));
    let krl_path = dir.path().join("krl.bin");
    std::fs::write(&krl_path, ca.krl(&[], 1)).expect("write");
    assert!(!query(&krl_path, &cert).0);

    let err = warrant_sshca::krl("nonsense", &[1], 1).expect_err("bad CA line");
    assert_eq!(err.code(), "sshca.invalid_ca_public_key");
}

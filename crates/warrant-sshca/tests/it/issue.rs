//! Issuing certificates: what `ssh-keygen -L` reads in them, and what the CA refuses.

use warrant_core::Secret;
use warrant_sshca::{CaKey, CertRequest, Extensions, SshCaError};

use crate::{ed25519_key, issue_to_file, request, ssh_keygen, text, user_key};

#[test]
fn ssh_keygen_reads_key_id_serial_principals_and_validity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (key, public) = ed25519_key(dir.path(), "alice");
    let req = CertRequest {
        public_key: &public,
        principals: vec!["ops".to_owned(), "deploy".to_owned()],
        key_id: "alice grant=g-42".to_owned(),
        serial: 42,
        valid_after: 1_700_000_000,
        valid_before: 1_700_003_600,
        extensions: Extensions::default(),
    };
    let cert = issue_to_file(&ca, &key, &req);

    let out = ssh_keygen(&["-L", "-f", cert.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "ssh-keygen -L: {}", text(&out.stderr));
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().map(str::trim).collect();
    for expected in [
        "Type: ssh-ed25519-cert-v01@openssh.com user certificate",
        "Key ID: \"alice grant=g-42\"",
        "Serial: 42",
        "Valid: from 2023-11-14T22:13:20 to 2023-11-14T23:13:20",
        "ops",
        "deploy",
        "permit-pty",
        "permit-user-rc",
        "Critical Options: (none)",
    ] {
        assert!(lines.contains(&expected), "{expected:?} not in:\n{listing}");
    }
    assert!(
        listing.contains(&format!("Signing CA: ED25519 {}", ca.fingerprint())),
        "{listing}"
    );
    assert!(!listing.contains("forwarding"), "{listing}");
}

#[test]
fn forwarding_only_when_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (key, public) = ed25519_key(dir.path(), "bob");
    let mut req = request(&public, 7);
    req.extensions.port_forwarding = true;
    req.extensions.pty = false;
    let cert = issue_to_file(&ca, &key, &req);
    let listing = text(&ssh_keygen(&["-L", "-f", cert.to_str().expect("path")]).stdout);
    assert!(listing.contains("permit-port-forwarding"), "{listing}");
    assert!(!listing.contains("permit-pty"), "{listing}");
    assert!(!listing.contains("permit-agent-forwarding"), "{listing}");
}

#[test]
fn ca_key_round_trips_and_matches_ssh_keygen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let public = ca.public_openssh();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.ends_with(" warrant-user-ca"), "{public}");

    let pem = ca.to_openssh().expect("export");
    assert_eq!(format!("{pem:?}"), "<redacted>");
    let again = CaKey::from_openssh(Secret::new(pem.expose().clone())).expect("import");
    assert_eq!(again.public_openssh(), public);
    assert_eq!(again.fingerprint(), ca.fingerprint());

    let path = dir.path().join("ca.pub");
    std::fs::write(&path, format!("{public}\n")).expect("write");
    let out = ssh_keygen(&["-l", "-f", path.to_str().expect("path")]);
    assert!(
        text(&out.stdout).contains(&ca.fingerprint()),
        "{}",
        text(&out.stdout)
    );

    let bad = CaKey::from_openssh(Secret::new("not a key".to_owned())).expect_err("garbage");
    assert_eq!(bad.code(), "sshca.ca_key");
}

#[test]
fn rsa_keys_of_3072_bits_are_certified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (key, public) = user_key(dir.path(), "rsa3072", &["rsa", "-b", "3072"]);
    let cert = issue_to_file(&ca, &key, &request(&public, 3));
    let out = ssh_keygen(&["-L", "-f", cert.to_str().expect("path")]);
    assert!(
        text(&out.stdout).contains("ssh-rsa-cert-v01@openssh.com user certificate"),
        "{}",
        text(&out.stdout)
    );
}

/// The code of the refusal of `req`.
fn refusal(ca: &CaKey, req: &CertRequest<'_>) -> &'static str {
    match ca.issue(req) {
        Ok(cert) => panic!("issued {cert}"),
        Err(e) => e.code(),
    }
}

#[test]
fn bad_requests_are_refused_with_stable_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = CaKey::generate().expect("CA");
    let (_, public) = ed25519_key(dir.path(), "carol");
    let (_, rsa2048) = user_key(dir.path(), "rsa2048", &["rsa", "-b", "2048"]);

    assert_eq!(
        refusal(&ca, &request("ssh-ed25519 !!!", 1)),
        "sshca.invalid_public_key"
    );
    assert_eq!(refusal(&ca, &request("", 1)), "sshca.invalid_public_key");
    assert_eq!(refusal(&ca, &request(&rsa2048, 1)), "sshca.weak_key");
    // A DSA key (1024 bits by definition); ssh-keygen 9.x no longer generates them by default.
    let dsa = "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NWPq/xfW6MPbLm1Vs14E7gB00b/JmYLdrmVClpJ+f6AR7ECLCT7up1/63xhv4O1fnxqimFQ8E+4P208UewwI1VBNaFpEy9nXzrith1yrv8iIDGZ3RSAHHAAAAFQCXYFCPFSMLzLKSuYKi64QL8Fgc9QAAAIEA9+GghdabPd7LvKtcNrhXuXmUr7v6OuqC+VdMCz0HgmdRWVeOutRZT+ZxBxCBgLRJFnEj6EwoFhO3zwkyjMim4TwWeotUfI0o4KOuHiuzpnWRbqN/C/ohNWLx+2J6ASQ7zKTxvqhRkImog9/hWuWfBpKLZl6Ae1UlZAFMO/7PSSoAAACBAPJYqU5v3hTJ9+5VmVUnd3ZRakM1PIM2X6cg5T59OygTN7Yo9hQjAj6nVEbNnT5BvYrWNq1sAd7b8ZeZmdG5hPhU0zKhYomMsZIaghqqzWpc8HOs+y0nTOC0hMw4VR7zs2mJcXNDmE3SNSmrNxn9ILpgujSsg9UtJuJ2BdC3K4wP dsa";
    assert_eq!(refusal(&ca, &request(dsa, 1)), "sshca.weak_key");

    let mut no_principals = request(&public, 1);
    no_principals.principals.clear();
    assert_eq!(refusal(&ca, &no_principals), "sshca.no_principals");
    let mut blank = request(&public, 1);
    blank.principals.push(" ".to_owned());
    assert_eq!(refusal(&ca, &blank), "sshca.no_principals");

    let mut empty_window = request(&public, 1);
    empty_window.valid_before = empty_window.valid_after;
    assert_eq!(refusal(&ca, &empty_window), "sshca.invalid_validity");
    let mut backwards = request(&public, 1);
    backwards.valid_before = backwards.valid_after - 1;
    assert_eq!(refusal(&ca, &backwards), "sshca.invalid_validity");

    assert_eq!(refusal(&ca, &request(&public, 0)), "sshca.zero_serial");

    let err = ca.issue(&request(&rsa2048, 1)).expect_err("weak");
    assert!(matches!(err, SshCaError::WeakKey(_)));
    assert!(err.to_string().contains("2048 bits"), "{err}");
}

//! Certificates against a real sshd that trusts the CA.

use warrant_sshca::CaKey;
use warrant_testkit::SshdFixture;

use crate::{ed25519_key, issue_to_file, now, request};

/// A CA, an sshd trusting it with principal `ops` for its user, and a temp dir for keys.
fn setup() -> (CaKey, SshdFixture, tempfile::TempDir) {
    let ca = CaKey::generate().expect("CA");
    let sshd = SshdFixture::start(&ca.public_openssh()).expect("sshd");
    sshd.set_principals(&["ops"]).expect("principals");
    let dir = tempfile::tempdir().expect("temp dir");
    (ca, sshd, dir)
}

fn assert_refused(sshd: &SshdFixture, result: (i32, String, String)) {
    let (code, stdout, stderr) = result;
    assert_eq!(
        code,
        255,
        "stdout: {stdout}\nstderr: {stderr}\nlog:\n{}",
        sshd.log()
    );
    assert!(stderr.contains("Permission denied (publickey)"), "{stderr}");
}

#[test]
fn a_certificate_for_the_principal_is_accepted_and_logged() {
    let (ca, sshd, dir) = setup();
    let (key, public) = ed25519_key(dir.path(), "alice");
    let cert = issue_to_file(&ca, &key, &request(&public, 101));

    let (code, stdout, stderr) = sshd.ssh(&key, &cert, "id -un").expect("ssh");
    assert_eq!(code, 0, "stderr: {stderr}\nlog:\n{}", sshd.log());
    assert_eq!(stdout.trim(), sshd.user());
    let log = sshd.log();
    assert!(
        log.contains(&format!(
            "Accepted certificate ID \"alice grant=g101\" (serial 101) signed by ED25519 CA {}",
            ca.fingerprint()
        )),
        "{log}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let (ca, sshd, dir) = setup();
    let (key, public) = ed25519_key(dir.path(), "alice");
    let mut req = request(&public, 102);
    req.valid_after = now() - 7200;
    req.valid_before = now() - 60;
    let cert = issue_to_file(&ca, &key, &req);
    assert_refused(&sshd, sshd.ssh(&key, &cert, "true").expect("ssh"));
}

#[test]
fn a_revoked_serial_is_refused_while_another_still_works() {
    let (ca, sshd, dir) = setup();
    let (key, public) = ed25519_key(dir.path(), "alice");
    let revoked = issue_to_file(&ca, &key, &request(&public, 201));
    let (key2, public2) = ed25519_key(dir.path(), "alice2");
    let kept = issue_to_file(&ca, &key2, &request(&public2, 202));

    // Accepted before the KRL names it, refused after: sshd re-reads RevokedKeys per connection.
    assert_eq!(
        sshd.ssh(&key, &revoked, "true").expect("ssh").0,
        0,
        "{}",
        sshd.log()
    );
    sshd.set_krl(&ca.krl(&[201], now())).expect("krl");
    assert_refused(&sshd, sshd.ssh(&key, &revoked, "true").expect("ssh"));

    let (code, _, stderr) = sshd.ssh(&key2, &kept, "true").expect("ssh");
    assert_eq!(code, 0, "{stderr}\nlog:\n{}", sshd.log());
}

#[test]
fn a_certificate_without_the_listed_principal_is_refused() {
    let (ca, sshd, dir) = setup();
    let (key, public) = ed25519_key(dir.path(), "alice");
    let mut req = request(&public, 301);
    req.principals = vec!["dba".to_owned(), "web".to_owned()];
    let cert = issue_to_file(&ca, &key, &req);
    assert_refused(&sshd, sshd.ssh(&key, &cert, "true").expect("ssh"));

    // The same certificate once the account lists one of its principals.
    sshd.set_principals(&["ops", "web"]).expect("principals");
    assert_eq!(
        sshd.ssh(&key, &cert, "true").expect("ssh").0,
        0,
        "{}",
        sshd.log()
    );
}

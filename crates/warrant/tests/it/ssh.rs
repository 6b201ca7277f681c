//! `warrant ssh ca` and `warrant ssh-cert`: the certificate a person gets for an active grant.

use std::process::Command;

use crate::harness::{World, s};

#[test]
fn ssh_cert_needs_an_active_grant_and_carries_the_roles_principals() {
    let w = World::demo();
    let carol = w.login("carol");
    let ca = w.run(&carol, &["ssh", "ca"]);
    assert!(ca.ok().starts_with("ssh-ed25519 "), "{ca}");

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = key.with_extension("pub");
    let public = public.to_str().unwrap();

    let refused = w
        .run(&carol, &["ssh-cert", "web-1", "root", "--key", public])
        .fails();
    assert!(refused.contains("warrant request web-1 root"), "{refused}");

    let r = w
        .run(
            &carol,
            &[
                "request", "web-1", "root", "--for", "1h", "--reason", "deploy", "--json",
            ],
        )
        .json();
    let erin = w.login("erin");
    w.run(&erin, &["approve", s(&r, "id")]).ok();

    let cert = dir.path().join("id-cert.pub");
    let done = w.run(
        &carol,
        &[
            "ssh-cert",
            "web-1",
            "root",
            "--key",
            public,
            "-o",
            cert.to_str().unwrap(),
        ],
    );
    assert!(done.ok().contains("serial"), "{done}");
    let shown = Command::new("ssh-keygen")
        .arg("-L")
        .arg("-f")
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("Key ID: \"carol grant="), "{text}");
    assert!(text.contains("root"), "{text}");
}

#[test]
fn people_register_their_ssh_keys_for_the_gateway() {
    let w = World::demo();
    let carol = w.login("carol");
    let erin = w.login("erin");
    let admin = w.admin();
    let dir = tempfile::tempdir().unwrap();
    let keygen = |name: &str, kind: &str| {
        let key = dir.path().join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-t", kind, "-C", "carol@laptop", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        key.with_extension("pub").to_str().unwrap().to_owned()
    };
    let ed = keygen("ed", "ed25519");
    let k = w.run(&carol, &["ssh-key", "add", &ed, "--json"]).json();
    assert!(s(&k, "fingerprint").starts_with("SHA256:"), "{k}");
    assert_eq!(s(&k, "label"), "carol@laptop");
    let listed = w.run(&carol, &["ssh-keys", "--json"]).json_array();
    assert_eq!(listed.len(), 1);
    assert!(
        w.run(&carol, &["ssh-keys"])
            .ok()
            .contains(s(&k, "fingerprint"))
    );

    // One key, one identity; no RSA; not a certificate; not someone else's list.
    let taken = w.run(&erin, &["ssh-key", "add", &ed]).fails();
    assert!(taken.contains("ssh_key_registered"), "{taken}");
    let rsa = keygen("rsa", "rsa");
    let refused = w.run(&carol, &["ssh-key", "add", &rsa]).fails();
    assert!(refused.contains("ssh-keygen -t ed25519"), "{refused}");
    let nosy = w.run(&erin, &["ssh-keys", "--identity", "carol"]).fails();
    assert!(nosy.contains("forbidden"), "{nosy}");
    let theirs = w
        .run(&admin, &["ssh-keys", "--identity", "carol", "--json"])
        .json_array();
    assert_eq!(theirs.len(), 1);
    let gone = w.run(&erin, &["ssh-key", "delete", s(&k, "id")]).fails();
    assert!(gone.contains("ssh_key_not_found"), "{gone}");

    w.run(&carol, &["ssh-key", "delete", s(&k, "id")]).ok();
    assert!(
        w.run(&carol, &["ssh-keys", "--json"])
            .json_array()
            .is_empty()
    );
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "50", "--json"])
        .ok()
        .to_owned();
    assert!(audit.contains("ssh.key_added") && audit.contains("ssh.key_removed"));
}

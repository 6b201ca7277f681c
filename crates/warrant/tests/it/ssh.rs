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

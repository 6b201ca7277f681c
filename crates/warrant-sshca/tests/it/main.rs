//! Warrant's SSH CA against the real OpenSSH tools: `ssh-keygen` reads its certificates and
//! KRLs, and a throwaway sshd (warrant-testkit's `SshdFixture`) accepts or refuses them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod issue;
mod krl;
mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use warrant_core::{Clock, SystemClock};
use warrant_sshca::{CaKey, CertRequest, Extensions};

/// Now, in unix seconds.
fn now() -> u64 {
    u64::try_from(SystemClock.now().unix_seconds()).expect("after 1970")
}

/// A fresh key pair from `ssh-keygen -t <kind>` in `dir`: the private key's path and the
/// public key line.
fn user_key(dir: &Path, name: &str, kind: &[&str]) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-t"])
        .args(kind)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", text(&out.stderr));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public)
}

fn ed25519_key(dir: &Path, name: &str) -> (PathBuf, String) {
    user_key(dir, name, &["ed25519"])
}

/// A request for `public_key` with principal `ops`, valid for the hour around now.
fn request(public_key: &str, serial: u64) -> CertRequest<'_> {
    CertRequest {
        public_key,
        principals: vec!["ops".to_owned()],
        key_id: format!("alice grant=g{serial}"),
        serial,
        valid_after: now() - 60,
        valid_before: now() + 3600,
        extensions: Extensions::default(),
    }
}

/// Issues `req` and writes the certificate next to the key (`<key>-cert.pub`).
fn issue_to_file(ca: &CaKey, key: &Path, req: &CertRequest<'_>) -> PathBuf {
    let cert = ca.issue(req).expect("issue");
    let path = PathBuf::from(format!("{}-cert.pub", key.display()));
    std::fs::write(&path, format!("{cert}\n")).expect("write certificate");
    path
}

fn ssh_keygen(args: &[&str]) -> Output {
    Command::new("ssh-keygen")
        .args(args)
        .env("TZ", "UTC")
        .output()
        .expect("run ssh-keygen")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

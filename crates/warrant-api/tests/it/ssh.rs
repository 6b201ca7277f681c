//! SSH certificates from Warrant's CA against a real sshd: only under an active grant, accepted
//! during it with Warrant's key id in sshd's log, cut off by the KRL once the grant is revoked.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use warrant_testkit::SshdFixture;

use crate::harness::Server;

fn user_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", name, "-t", "ed25519", "-f"])
        .arg(&path)
        .output()
        .expect("run ssh-keygen (Debian openssh-client)");
    assert!(out.status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public)
}

async fn text(s: &Server, path: &str) -> reqwest::Response {
    let r = reqwest::get(format!("{}{path}", s.admin.base()))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_live_and_die_with_the_grant() {
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = user_key(dir.path(), "carol");
    let carol = s.login("carol").await;

    // No grant, no certificate.
    let ask = json!({"target": "web-1", "role": "root", "public_key": public});
    let e = carol
        .post::<_, Value>("/api/v1/ssh/certs", &ask)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code.as_str()),
        (Some(403), "no_active_grant"),
        "{e}"
    );

    // carol asks for root on web-1; erin (another owner) approves.
    let r: Value = carol
        .post(
            "/api/v1/requests",
            &json!({"target": "web-1", "role": "root", "duration": "1h", "reason": "deploy"}),
        )
        .await
        .unwrap();
    let erin = s.login("erin").await;
    let done: Value = erin
        .post(
            &format!("/api/v1/requests/{}/approve", r["id"].as_str().unwrap()),
            &json!({}),
        )
        .await
        .unwrap();
    let grant = done["grant"]["id"].as_str().unwrap().to_owned();

    let c: Value = carol.post("/api/v1/ssh/certs", &ask).await.unwrap();
    assert_eq!(c["grant_id"], json!(grant));
    assert_eq!(c["principals"], json!(["root"]));
    let cert = dir.path().join("carol-cert.pub");
    std::fs::write(&cert, format!("{}\n", c["certificate"].as_str().unwrap())).unwrap();

    // A real sshd trusting Warrant's CA, where the account accepts the principal `root`.
    let ca = text(&s, "/api/v1/ssh/ca").await.text().await.unwrap();
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    let sshd = SshdFixture::start(ca.trim()).unwrap_or_else(|e| panic!("{e}"));
    sshd.set_principals(&["root"]).unwrap();
    let krl = text(&s, "/api/v1/ssh/krl").await.bytes().await.unwrap();
    sshd.set_krl(&krl).unwrap();
    let (code, out, err) = sshd.ssh(&key, &cert, "echo granted").unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "granted");
    let serial = c["serial"].as_i64().unwrap();
    let log = sshd.log();
    assert!(
        log.contains(&format!("grant={grant}")) && log.contains(&format!("(serial {serial})")),
        "sshd's log names Warrant's key id and serial:\n{log}"
    );

    // Revoking the grant puts the certificate in the KRL: refused before it expires.
    let _: Value = s
        .admin
        .post(
            &format!("/api/v1/grants/{grant}/revoke"),
            &json!({"reason": "incident over"}),
        )
        .await
        .unwrap();
    let krl = text(&s, "/api/v1/ssh/krl").await.bytes().await.unwrap();
    sshd.set_krl(&krl).unwrap();
    let (code, _, err) = sshd.ssh(&key, &cert, "echo granted").unwrap();
    assert_eq!(code, 255, "refused after revocation: {err}");
    // And no new certificate without a grant.
    let e = carol
        .post::<_, Value>("/api/v1/ssh/certs", &ask)
        .await
        .unwrap_err();
    assert_eq!(e.code, "no_active_grant");

    // Issuance is audited with the serial and the grant.
    let audit = s.audit_after(0).await;
    let issued = audit
        .iter()
        .find(|r| r["kind"] == json!("ssh.cert_issued"))
        .expect("ssh.cert_issued");
    assert!(issued["data"].to_string().contains(&grant), "{issued}");
}

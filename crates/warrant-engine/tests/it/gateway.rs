//! What the SSH gateway asks the engine: whose key this is, and the upstream credential of an
//! active grant (a certificate for the role's login, valid until the grant ends).

use warrant_core::{Clock, IdentityStatus, SystemClock};

use crate::harness::{Backend, Env};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl carol@laptop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_finds_its_person_and_a_grant_finds_its_upstream() {
    let env = Env::new(Backend::Sqlite).await;
    env.clock.set(SystemClock.now());
    let carol = env.user("carol");
    let k = env
        .engine
        .add_ssh_key(&carol, None, KEY, None)
        .await
        .unwrap();
    assert_eq!(
        env.engine
            .gateway_identity("carol", &k.fingerprint)
            .await
            .unwrap()
            .map(|n| n.to_string()),
        Some("carol".to_owned())
    );
    // Someone else's name with carol's key, or an unknown key: nobody.
    assert!(
        env.engine
            .gateway_identity("erin", &k.fingerprint)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.engine
            .gateway_identity("carol", "SHA256:nope")
            .await
            .unwrap()
            .is_none()
    );

    // No grant yet: a refusal that says what to do.
    let e = env
        .engine
        .gateway_upstream("carol", "web-1", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "gateway_denied");
    assert!(e.message.contains("warrant request web-1"), "{e}");

    let mut t = env
        .engine
        .targets()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.target.name.as_str() == "web-1")
        .unwrap()
        .target;
    t.host_key = Some(KEY.to_owned());
    env.engine.save_target(&env.admin, &t).await.unwrap();
    let r = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap();
    env.engine
        .approve(&env.user("erin"), &r.request.id)
        .await
        .unwrap();
    let up = env
        .engine
        .gateway_upstream("carol", "web-1", None)
        .await
        .unwrap();
    assert_eq!(up.account, "root");
    assert_eq!((up.record.as_str(), up.record_input), ("strict", false));
    assert_eq!((up.host.as_str(), up.port), ("127.0.0.1", 2222));
    assert!(
        up.certificate
            .starts_with("ssh-ed25519-cert-v01@openssh.com ")
    );
    assert!(up.private_key.expose().contains("OPENSSH PRIVATE KEY"));
    assert!(up.ends_at > env.clock.now());
    let kinds = env.audit_kinds().await;
    assert!(kinds.iter().any(|k| k == "ssh.cert_issued"), "{kinds:?}");
    let e = env
        .engine
        .gateway_upstream("carol", "web-1", Some("admin"))
        .await
        .unwrap_err();
    assert!(e.message.contains("no active grant of admin"), "{e}");

    // Recording modes are checked.
    let mut role = env
        .engine
        .targets()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.target.name.as_str() == "web-1")
        .unwrap()
        .roles
        .remove(0);
    role.record = Some("sometimes".into());
    let e = env.engine.save_role(&env.admin, &role).await.unwrap_err();
    assert_eq!(e.code, "invalid_record", "{e}");

    // A leaver's key opens nothing.
    env.engine
        .set_identity_status(&env.admin, "carol", IdentityStatus::Disabled)
        .await
        .unwrap();
    assert!(
        env.engine
            .gateway_identity("carol", &k.fingerprint)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_recorded_and_audited_and_listed_to_whom_they_concern() {
    let env = Env::new(Backend::Sqlite).await;
    let start = warrant_engine::gateway::SessionStart {
        session_id: "s-1".into(),
        kind: "ssh".into(),
        identity: "carol".into(),
        target: "web-1".into(),
        account: "root".into(),
        grant_id: "g-1".into(),
        recording: Some("s-1.cast".into()),
    };
    env.engine.gateway_session_started(&start).await.unwrap();
    let live = env.engine.gateway_sessions(&env.admin).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].ended_at.is_none());
    env.engine
        .gateway_session_ended("s-1", "grant_ended", 10, 2000, Some("ab".repeat(32)))
        .await
        .unwrap();
    let s = env
        .engine
        .gateway_session(&env.user("carol"), "s-1")
        .await
        .unwrap();
    assert_eq!(s.end_reason.as_deref(), Some("grant_ended"));
    assert_eq!((s.bytes_up, s.bytes_down), (10, 2000));
    // Erin sees neither the list entry nor the session.
    assert!(
        env.engine
            .gateway_sessions(&env.user("erin"))
            .await
            .unwrap()
            .is_empty()
    );
    let e = env
        .engine
        .gateway_session(&env.user("erin"), "s-1")
        .await
        .unwrap_err();
    assert_eq!(e.code, "session_not_found");
    env.engine
        .gateway_refused(
            "carol",
            Some("web-1"),
            "port forwarding",
            "not allowed by the role",
        )
        .await
        .unwrap();
    let kinds = env.audit_kinds().await;
    for k in [
        "gateway.session_started",
        "gateway.session_ended",
        "gateway.refused",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k}: {kinds:?}");
    }
    // A session left open by a stopped server is closed at the next start.
    let mut again = start.clone();
    again.session_id = "s-2".into();
    env.engine.gateway_session_started(&again).await.unwrap();
    assert_eq!(env.engine.close_dangling_sessions().await.unwrap(), 1);
    let s2 = env.engine.gateway_session(&env.admin, "s-2").await.unwrap();
    assert_eq!(s2.end_reason.as_deref(), Some("server_stopped"));
    assert_eq!(env.engine.close_dangling_sessions().await.unwrap(), 0);
    // The recording key is made once and kept.
    let a = env.engine.recording_public_key().await.unwrap();
    assert_eq!(a, env.engine.recording_public_key().await.unwrap());
}

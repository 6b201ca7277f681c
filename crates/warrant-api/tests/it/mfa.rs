//! MFA over HTTP: TOTP enrolment and confirmation, sign-in with a second factor, each code
//! once, failures rate-limited, recovery codes, admin reset, step-up for rules and approval
//! stages that require it, and the audit of each of these.

use serde_json::{Value, json};
use warrant_iam::totp::{self, Hash};

use crate::harness::{Server, password_of};

fn unix_now() -> u64 {
    // The server's clock is the system clock; so is this one.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The code of `seed` for the step `offset` steps from now.
fn code(seed: &[u8], offset: i64) -> String {
    let t = unix_now().checked_add_signed(offset * 30).unwrap();
    totp::code_at(seed, Hash::Sha1, 6, t).unwrap()
}

/// Enrols `c` in TOTP; returns the seed and the recovery codes.
async fn enrol(c: &warrant_api::Client) -> (Vec<u8>, Vec<String>) {
    let e: Value = c
        .post("/api/v1/mfa/totp", &json!({"label": "phone"}))
        .await
        .unwrap();
    let uri = e["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Warrant:"), "{uri}");
    let seed = totp::seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let r: Value = c
        .post("/api/v1/mfa/totp/confirm", &json!({"code": code(&seed, 0)}))
        .await
        .unwrap();
    let codes: Vec<String> = r["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (seed, codes)
}

async fn login(
    s: &Server,
    user: &str,
    otp: Option<&str>,
) -> Result<warrant_api::Client, warrant_api::ClientError> {
    let mut body = json!({"user": user, "password": password_of(user)});
    if let Some(o) = otp {
        body["otp"] = json!(o);
    }
    let t: Value = s.anon().post("/api/v1/auth/login", &body).await?;
    Ok(s.client(t["token"].as_str().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_then_sign_in_needs_a_code_used_once() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["enrolled"], json!(false));
    // A wrong first code does not confirm the enrolment.
    let e: Value = alice.post("/api/v1/mfa/totp", &json!({})).await.unwrap();
    let seed = totp::seed_from_base32(e["secret"].as_str().unwrap()).unwrap();
    let wrong = format!(
        "{:06}",
        (code(&seed, 0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let err = alice
        .post::<_, Value>("/api/v1/mfa/totp/confirm", &json!({"code": wrong}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "mfa_invalid");
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["enrolled"], json!(false), "{st}");

    let (seed, recovery) = enrol(&alice).await;
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["enrolled"], json!(true));
    assert_eq!(st["recovery_codes_left"], json!(10));
    assert!(!st.to_string().contains("secret"), "{st}");

    // Sign-in now needs the second factor.
    let e = login(&s, "alice", None).await.err().unwrap();
    assert_eq!((e.status, e.code.as_str()), (Some(401), "mfa_required"));
    // The code used to confirm is spent; the next one works, once.
    let next = code(&seed, 1);
    assert!(login(&s, "alice", Some(&next)).await.is_ok());
    let e = login(&s, "alice", Some(&next)).await.err().unwrap();
    assert_eq!(e.code, "mfa_invalid", "a code works once");
    // A recovery code works once (as a step-up here: sign-in attempts are throttled).
    let ok: Value = alice
        .post("/api/v1/mfa/verify", &json!({"code": recovery[0]}))
        .await
        .unwrap();
    assert!(ok["valid_until"].is_string());
    let e = alice
        .post::<_, Value>("/api/v1/mfa/verify", &json!({"code": recovery[0]}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_invalid");
    let st: Value = s.admin.get("/api/v1/identities/alice/mfa").await.unwrap();
    assert_eq!(st["recovery_codes_left"], json!(9));

    // Every enrolment, success and failure is audited; no code or seed is.
    let audit = s.audit_after(0).await;
    let kinds: Vec<&str> = audit.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    for k in [
        "mfa.enrolment_started",
        "mfa.enrolled",
        "mfa.recovery_codes_issued",
        "mfa.verified",
        "mfa.failed",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let all = serde_json::to_string(&audit).unwrap();
    for secret in [&next, &recovery[0], &recovery[1]] {
        assert!(!all.contains(secret.as_str()), "{secret} is in the audit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_are_rate_limited() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let (seed, _) = enrol(&alice).await;
    for _ in 0..5 {
        let e = alice
            .post::<_, Value>("/api/v1/mfa/verify", &json!({"code": "000000"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "mfa_invalid");
    }
    // Even the right code is refused until the window passes.
    let e = alice
        .post::<_, Value>("/api/v1/mfa/verify", &json!({"code": code(&seed, 1)}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code.as_str()),
        (Some(429), "rate_limited"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_that_requires_mfa_needs_a_fresh_step_up() {
    let s = Server::start().await;
    let _: Value = s
        .admin
        .post(
            "/api/v1/rules",
            &json!({"id": "", "group": "dba", "target": "web-1", "role": "root",
                    "max_duration": "1h", "require_reason": true, "require_mfa": true,
                    "ticket_pattern": null, "approvals": []}),
        )
        .await
        .unwrap();
    let alice = s.login("alice").await;
    let ask = json!({"target": "web-1", "role": "root", "duration": "30m", "reason": "incident"});
    let e = alice
        .post::<_, Value>("/api/v1/requests", &ask)
        .await
        .unwrap_err();
    assert_eq!((e.status, e.code.as_str()), (Some(403), "mfa_required"));
    assert!(
        e.message.contains("warrant mfa verify"),
        "the error says how: {}",
        e.message
    );
    let (seed, _) = enrol(&alice).await;
    // Confirming the enrolment proves the factor for this session.
    let r: Value = alice.post("/api/v1/requests", &ask).await.unwrap();
    assert_eq!(r["grant"]["status"], json!("active"), "{r}");
    // A session without a proof (an API token) is refused until it steps up.
    let t: Value = alice
        .post("/api/v1/tokens", &json!({"name": "script"}))
        .await
        .unwrap();
    let script = s.client(t["token"].as_str().unwrap());
    let e = script
        .post::<_, Value>("/api/v1/requests", &ask)
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_required");
    let v: Value = script
        .post("/api/v1/mfa/verify", &json!({"code": code(&seed, 1)}))
        .await
        .unwrap();
    assert!(v["valid_until"].is_string(), "{v}");
    let r: Value = script.post("/api/v1/requests", &ask).await.unwrap();
    assert_eq!(r["status"], json!("approved"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_stage_marked_mfa_needs_the_approver_to_step_up() {
    let s = Server::start().await;
    let _: Value = s
        .admin
        .post(
            "/api/v1/rules",
            &json!({"id": "", "group": "ops", "target": "pg-prod", "role": "readonly",
                    "max_duration": "1h", "require_reason": true, "require_mfa": false,
                    "ticket_pattern": null,
                    "approvals": [{"from": "group:security", "count": 1, "require_mfa": true}]}),
        )
        .await
        .unwrap();
    let carol = s.login("carol").await;
    let r: Value = carol
        .post(
            "/api/v1/requests",
            &json!({"target": "pg-prod", "role": "readonly", "duration": "30m", "reason": "report"}),
        )
        .await
        .unwrap();
    let id = r["id"].as_str().unwrap();
    let dave = s.login("dave").await;
    let e = dave
        .post::<_, Value>(&format!("/api/v1/requests/{id}/approve"), &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_required", "{e}");
    let (seed, _) = enrol(&dave).await;
    let _ = seed;
    let ok: Value = dave
        .post(&format!("/api/v1/requests/{id}/approve"), &json!({}))
        .await
        .unwrap();
    assert_eq!(ok["status"], json!("approved"), "{ok}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_resets_a_lost_factor_and_it_is_audited() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    enrol(&alice).await;
    let r: Value = s
        .admin
        .delete("/api/v1/identities/alice/mfa")
        .await
        .unwrap();
    assert_eq!(r["factors_removed"], json!(1));
    assert!(
        alice.get::<Value>("/api/v1/me").await.is_err(),
        "alice's sessions ended"
    );
    assert!(
        login(&s, "alice", None).await.is_ok(),
        "no second factor any more"
    );
    let audit = s.audit_after(0).await;
    let reset = audit
        .iter()
        .find(|r| r["kind"] == json!("mfa.reset"))
        .unwrap();
    assert_eq!(reset["actor"], json!("admin"));
    // Nobody else may.
    let bob = s.login("bob").await;
    assert_eq!(
        bob.delete::<Value>("/api/v1/identities/alice/mfa")
            .await
            .unwrap_err()
            .status,
        Some(403)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_needs_a_fresh_factor_and_an_old_factor_does_not_confirm_a_new_one() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let (seed, _) = enrol(&alice).await;
    // Fresh after confirming: a token may be minted; the token itself proves nothing.
    let t: Value = alice
        .post("/api/v1/tokens", &json!({"name": "script"}))
        .await
        .unwrap();
    let script = s.client(t["token"].as_str().unwrap());
    let e = script
        .post::<_, Value>("/api/v1/tokens", &json!({"name": "another"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_required", "{e}");
    // A second authenticator: the first one's code does not confirm it.
    let _: Value = alice
        .post("/api/v1/mfa/totp", &json!({"label": "tablet"}))
        .await
        .unwrap();
    let e = alice
        .post::<_, Value>("/api/v1/mfa/totp/confirm", &json!({"code": code(&seed, 1)}))
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_invalid");
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    let confirmed = st["factors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["confirmed"] == json!(true))
        .count();
    assert_eq!(confirmed, 1, "{st}");
}

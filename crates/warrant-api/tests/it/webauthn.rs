//! WebAuthn over HTTP with a real (software) authenticator, `webauthn-authenticator-rs`'s
//! `SoftPasskey`, acting as browser and security key: registration, step-up, sign-in with
//! password and key, and the refusals (a replayed answer, another origin, another identity's
//! key), the signature counter, admin reset, and the audit of each without credential material.

use serde_json::{Value, json};
use warrant_api::{Client, ClientError};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::harness::{Server, WEBAUTHN_ORIGIN, expect_err, password_of};

/// A security key; it reports user verification (a PIN) as done.
fn new_key() -> SoftPasskey {
    SoftPasskey::new(true)
}

fn origin() -> Url {
    Url::parse(WEBAUTHN_ORIGIN).unwrap()
}

/// Registers `key` for the identity behind `c`; returns the finish answer and the
/// credential id (base64url) the key made.
async fn register(c: &Client, key: &mut SoftPasskey) -> (Value, String) {
    let start: Value = c
        .post(
            "/api/v1/mfa/webauthn/register",
            &json!({"label": "yubikey"}),
        )
        .await
        .unwrap();
    let options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    let cred = key.do_registration(origin(), options).unwrap();
    let cred = serde_json::to_value(&cred).unwrap();
    let done: Value = c
        .post(
            "/api/v1/mfa/webauthn/register/finish",
            &json!({"challenge_id": start["challenge_id"], "credential": cred}),
        )
        .await
        .unwrap();
    (done, cred["id"].as_str().unwrap().to_owned())
}

/// Starts a step-up; returns the challenge id and the options.
async fn verify_start(c: &Client) -> (String, RequestChallengeResponse) {
    let start: Value = c
        .post("/api/v1/mfa/webauthn/verify", &json!({}))
        .await
        .unwrap();
    (
        start["challenge_id"].as_str().unwrap().to_owned(),
        serde_json::from_value(start["options"].clone()).unwrap(),
    )
}

fn answer(key: &mut SoftPasskey, at: &str, options: RequestChallengeResponse) -> Value {
    let a: PublicKeyCredential = key
        .do_authentication(Url::parse(at).unwrap(), options)
        .unwrap();
    serde_json::to_value(&a).unwrap()
}

async fn verify_finish(
    c: &Client,
    challenge_id: &str,
    credential: &Value,
) -> Result<Value, ClientError> {
    c.post(
        "/api/v1/mfa/webauthn/verify/finish",
        &json!({"challenge_id": challenge_id, "credential": credential}),
    )
    .await
}

/// A complete step-up of `c` with `key`.
async fn step_up(c: &Client, key: &mut SoftPasskey) -> Result<Value, ClientError> {
    let (id, options) = verify_start(c).await;
    let a = answer(key, WEBAUTHN_ORIGIN, options);
    verify_finish(c, &id, &a).await
}

/// Sign-in with password and key; the client carries the new session.
async fn sign_in(s: &Server, user: &str, key: &mut SoftPasskey) -> Result<Client, ClientError> {
    let start: Value = s
        .anon()
        .post(
            "/api/v1/auth/webauthn/start",
            &json!({"user": user, "password": password_of(user)}),
        )
        .await?;
    let options: RequestChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    let a = answer(key, WEBAUTHN_ORIGIN, options);
    let t: Value = s
        .anon()
        .post(
            "/api/v1/auth/webauthn/finish",
            &json!({"challenge_id": start["challenge_id"], "credential": a}),
        )
        .await?;
    Ok(s.client(t["token"].as_str().unwrap()))
}

/// The sealed credential blob of `who`'s WebAuthn factor and its last use, as stored.
async fn stored_factor(s: &Server, who: &str) -> (String, Option<String>) {
    let mut r = s.engine.store().read().await.unwrap();
    let f = r
        .q()
        .factors_of(who)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.kind == "webauthn")
        .expect("a WebAuthn factor");
    (f.secret, f.last_used_at.map(|t| t.rfc3339()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_then_step_up_with_the_key() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let mut key = new_key();
    // A registration made for another origin is refused, and its challenge is spent.
    let start: Value = alice
        .post("/api/v1/mfa/webauthn/register", &json!({}))
        .await
        .unwrap();
    let options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).unwrap();
    let cred = key
        .do_registration(Url::parse("http://localhost:8443").unwrap(), options)
        .unwrap();
    let body = json!({"challenge_id": start["challenge_id"], "credential": cred});
    let e = alice
        .post::<_, Value>("/api/v1/mfa/webauthn/register/finish", &body)
        .await;
    expect_err(e, 401, "mfa_invalid");
    let e = alice
        .post::<_, Value>("/api/v1/mfa/webauthn/register/finish", &body)
        .await;
    expect_err(e, 409, "no_ceremony");
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["enrolled"], json!(false), "{st}");

    let (done, cred_id) = register(&alice, &mut key).await;
    assert_eq!(
        done["recovery_codes"].as_array().unwrap().len(),
        10,
        "{done}"
    );
    let st: Value = alice.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["enrolled"], json!(true), "{st}");
    assert_eq!(st["factors"][0]["kind"], json!("webauthn"), "{st}");
    assert_eq!(st["factors"][0]["label"], json!("yubikey"), "{st}");

    // A password alone no longer signs in.
    let e = s
        .anon()
        .post::<_, Value>(
            "/api/v1/auth/login",
            &json!({"user": "alice", "password": password_of("alice")}),
        )
        .await;
    expect_err(e, 401, "mfa_required");

    // A session without a fresh proof cannot get new recovery codes; after a step-up with
    // the key it can.
    let token = s.fresh_token("alice", warrant_core::SystemRole::User).await;
    let api = s.client(&token);
    let e = call_recovery(&api).await;
    expect_err(e, 403, "mfa_required");
    let v = step_up(&api, &mut key).await.unwrap();
    assert!(v["valid_until"].is_string(), "{v}");
    let codes = call_recovery(&api).await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    // A second key needs a fresh proof: the step-up above gives it.
    let mut second = new_key();
    let (done2, cred2) = register(&api, &mut second).await;
    assert_ne!(cred2, cred_id);
    assert!(
        done2["recovery_codes"].as_array().unwrap().is_empty(),
        "{done2}"
    );
    // Both keys work; the registration excluded the first key's credential.
    step_up(&api, &mut second).await.unwrap();
    step_up(&api, &mut key).await.unwrap();

    // Audit: enrolled and verified with method webauthn, no credential id in it.
    let audit = s.audit_after(0).await;
    let enrolled: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == json!("mfa.enrolled"))
        .collect();
    assert_eq!(enrolled.len(), 2, "{enrolled:?}");
    assert!(enrolled.iter().all(|r| r.to_string().contains("webauthn")));
    let verified = audit
        .iter()
        .filter(|r| r["kind"] == json!("mfa.verified") && r.to_string().contains("webauthn"))
        .count();
    assert_eq!(verified, 3);
    let all = serde_json::to_string(&audit).unwrap();
    for material in [&cred_id, &cred2] {
        assert!(
            !all.contains(material.as_str()),
            "{material} is in the audit"
        );
    }
}

async fn call_recovery(c: &Client) -> Result<Value, ClientError> {
    c.post("/api/v1/mfa/recovery-codes", &json!({})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_password_and_key() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let mut key = new_key();
    register(&alice, &mut key).await;

    // A wrong password gets no challenge.
    let e = s
        .anon()
        .post::<_, Value>(
            "/api/v1/auth/webauthn/start",
            &json!({"user": "alice", "password": "wrong"}),
        )
        .await;
    expect_err(e, 401, "invalid_credentials");
    // Someone without a key is told so (after their password).
    let e = s
        .anon()
        .post::<_, Value>(
            "/api/v1/auth/webauthn/start",
            &json!({"user": "bob", "password": password_of("bob")}),
        )
        .await;
    expect_err(e, 409, "webauthn_not_enrolled");

    let session = sign_in(&s, "alice", &mut key).await.unwrap();
    let me: Value = session.get("/api/v1/me").await.unwrap();
    assert_eq!(me["name"], json!("alice"), "{me}");
    // The session's second factor counts from the sign-in: step-up rights at once.
    let codes = call_recovery(&session).await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);

    let audit = s.audit_after(0).await;
    assert!(audit.iter().any(|r| r["kind"] == json!("mfa.verified")
        && r.to_string().contains("sign-in")
        && r.to_string().contains("webauthn")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_other_origins_and_other_keys_are_refused() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let bob = s.login("bob").await;
    let mut alice_key = new_key();
    let mut bob_key = new_key();
    let (_, alice_cred) = register(&alice, &mut alice_key).await;
    register(&bob, &mut bob_key).await;

    // An answer works once: the same challenge again is refused, and so is the answer
    // under a new challenge.
    let (id, options) = verify_start(&alice).await;
    let a = answer(&mut alice_key, WEBAUTHN_ORIGIN, options);
    verify_finish(&alice, &id, &a).await.unwrap();
    expect_err(verify_finish(&alice, &id, &a).await, 401, "mfa_invalid");
    let (id2, _) = verify_start(&alice).await;
    expect_err(verify_finish(&alice, &id2, &a).await, 401, "mfa_invalid");

    // Sign-in: the same answer twice gets one session.
    let start: Value = s
        .anon()
        .post(
            "/api/v1/auth/webauthn/start",
            &json!({"user": "alice", "password": password_of("alice")}),
        )
        .await
        .unwrap();
    let a = answer(
        &mut alice_key,
        WEBAUTHN_ORIGIN,
        serde_json::from_value(start["options"].clone()).unwrap(),
    );
    let body = json!({"challenge_id": start["challenge_id"], "credential": a});
    let _: Value = s
        .anon()
        .post("/api/v1/auth/webauthn/finish", &body)
        .await
        .unwrap();
    let again = s
        .anon()
        .post::<_, Value>("/api/v1/auth/webauthn/finish", &body)
        .await;
    expect_err(again, 401, "mfa_invalid");

    // An answer made for another origin (another port of the same host: a different site to
    // the browser) is refused.
    let (id, options) = verify_start(&alice).await;
    let a = answer(&mut alice_key, "http://localhost:8443", options);
    expect_err(verify_finish(&alice, &id, &a).await, 401, "mfa_invalid");

    // Bob's key cannot answer Alice's challenge, even when offered as allowed.
    let (id, mut options) = verify_start(&alice).await;
    let (_, bob_options) = verify_start(&bob).await;
    options.public_key.allow_credentials = bob_options.public_key.allow_credentials.clone();
    let a = answer(&mut bob_key, WEBAUTHN_ORIGIN, options);
    expect_err(verify_finish(&alice, &id, &a).await, 401, "mfa_invalid");
    // Nor can Bob's answer to his own challenge be spent in Alice's session.
    let (bob_id, bob_options) = verify_start(&bob).await;
    let a = answer(&mut bob_key, WEBAUTHN_ORIGIN, bob_options);
    expect_err(verify_finish(&alice, &bob_id, &a).await, 401, "mfa_invalid");
    // Bob's challenge is spent: Bob starts again and succeeds.
    step_up(&bob, &mut bob_key).await.unwrap();

    // Each refusal is audited as mfa.failed, without credential material.
    let audit = s.audit_after(0).await;
    // (The replayed sign-in has nobody to hold to account: its ceremony is gone.)
    let reasons: Vec<&str> = audit
        .iter()
        .filter(|r| r["kind"] == json!("mfa.failed"))
        .map(|r| {
            assert!(r.to_string().contains("step-up"), "{r}");
            [
                "unknown_challenge",
                "wrong_challenge",
                "wrong_origin",
                "unknown_credential",
            ]
            .into_iter()
            .find(|reason| r.to_string().contains(reason))
            .unwrap_or_else(|| panic!("a known reason in {r}"))
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "unknown_challenge",
            "wrong_challenge",
            "wrong_origin",
            "unknown_credential",
            "unknown_challenge"
        ]
    );
    let all = serde_json::to_string(&audit).unwrap();
    assert!(
        !all.contains(&alice_cred),
        "the credential id is in the audit"
    );
    assert!(!all.contains("clientDataJSON"), "an answer is in the audit");

    // Alice has failed three times since her last success; two more and she must wait.
    for _ in 0..2 {
        let e = verify_finish(&alice, "0000", &json!({})).await;
        expect_err(e, 401, "mfa_invalid");
    }
    let e = alice
        .post::<_, Value>("/api/v1/mfa/webauthn/verify", &json!({}))
        .await;
    expect_err(e, 429, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_counter_is_kept_and_a_reset_removes_keys() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let mut key = new_key();
    register(&alice, &mut key).await;
    let (sealed0, used0) = stored_factor(&s, "alice").await;
    assert_eq!(used0, None);
    step_up(&alice, &mut key).await.unwrap();
    let (sealed1, used1) = stored_factor(&s, "alice").await;
    assert!(used1.is_some());
    assert_ne!(sealed0, sealed1, "the new counter is stored (re-sealed)");
    step_up(&alice, &mut key).await.unwrap();
    let (sealed2, _) = stored_factor(&s, "alice").await;
    assert_ne!(sealed1, sealed2, "each use stores the counter");
    assert!(
        !sealed2.contains("cred_id"),
        "the credential is stored sealed"
    );

    // An admin reset removes the key: no step-up with it, and a password signs in again.
    let r: Value = s
        .admin
        .delete("/api/v1/identities/alice/mfa")
        .await
        .unwrap();
    assert!(r["factors_removed"].as_u64().unwrap() >= 1, "{r}");
    let again = s.login("alice").await;
    let st: Value = again.get("/api/v1/mfa").await.unwrap();
    assert_eq!(st["factors"], json!([]), "{st}");
    let e = again
        .post::<_, Value>("/api/v1/mfa/webauthn/verify", &json!({}))
        .await;
    expect_err(e, 409, "webauthn_not_enrolled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_holds_one_ceremony_of_a_kind_at_a_time() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    for _ in 0..25 {
        let v: Value = alice
            .post("/api/v1/mfa/webauthn/register", &json!({}))
            .await
            .unwrap();
        assert!(v["challenge_id"].is_string(), "{v}");
    }
    let kept = s
        .engine
        .store()
        .count_pending_logins("webauthn-reg")
        .await
        .unwrap();
    assert_eq!(kept, 1, "each start replaces the identity's previous one");
}

//! Sign-in, sign-out, the sign-in rate limit, API tokens and disabled identities.

use serde_json::{Value, json};
use warrant_api::Client;

use crate::harness::{Server, expect_err, expect_ok, password_of};

async fn sign_in(s: &Server, user: &str, password: &str) -> crate::harness::Outcome {
    s.anon()
        .post::<_, Value>(
            "/api/v1/auth/login",
            &json!({"user": user, "password": password}),
        )
        .await
}

#[tokio::test]
async fn signing_in_with_the_demo_password_gives_a_working_token() {
    let s = Server::start().await;
    let t = expect_ok(
        sign_in(&s, "alice", &password_of("alice")).await,
        "alice signs in",
    );
    assert_eq!(t["identity"], json!("alice"));
    assert_eq!(t["kind"], json!("session"));
    assert!(t["expires_at"].is_string(), "a session expires: {t}");
    let alice = s.client(t["token"].as_str().expect("token"));
    let me: Value = expect_ok(alice.get("/api/v1/me").await, "me");
    assert_eq!(me["name"], json!("alice"));
    assert_eq!(me["role"], json!("user"));
    assert_eq!(me["groups"], json!(["dba"]));

    let audit = s.audit_after(0).await;
    assert!(
        audit
            .iter()
            .any(|r| r["kind"] == "auth.signin_succeeded" && r["data"]["identity"] == "alice"),
        "the sign-in is audited"
    );
}

#[tokio::test]
async fn a_wrong_password_is_401_invalid_credentials_and_audited() {
    let s = Server::start().await;
    let before = s.audit_count().await;
    let wrong = expect_err(
        sign_in(&s, "alice", "not-her-password").await,
        401,
        "invalid_credentials",
    );
    let new = s.audit_after(before).await;
    assert_eq!(new.len(), 1, "one record for one failure: {new:?}");
    assert_eq!(new[0]["kind"], json!("auth.signin_failed"));
    assert_eq!(new[0]["data"]["identity"], json!("alice"));
    assert!(
        !new[0].to_string().contains("not-her-password"),
        "the audit never holds the password: {}",
        new[0]
    );

    // An unknown identity gets the same answer: nobody learns who exists.
    let unknown = expect_err(
        sign_in(&s, "mallory", "whatever").await,
        401,
        "invalid_credentials",
    );
    assert_eq!(unknown.message, wrong.message);
    let new = s.audit_after(before + 1).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["kind"], json!("auth.signin_failed"));
    // A name that is no identity may be a mistyped password: only its digest is kept.
    let recorded = new[0]["data"]["identity"].as_str().unwrap();
    assert!(recorded.starts_with("unknown:"), "{recorded}");
    assert!(!new[0].to_string().contains("mallory"), "{}", new[0]);
}

#[tokio::test]
async fn logout_revokes_the_token() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    expect_ok(alice.get::<Value>("/api/v1/me").await, "before logout");
    expect_ok(
        alice
            .post::<_, Value>("/api/v1/auth/logout", &json!({}))
            .await,
        "logout",
    );
    expect_err(alice.get::<Value>("/api/v1/me").await, 401, "invalid_token");
    expect_err(
        alice
            .post::<_, Value>("/api/v1/auth/logout", &json!({}))
            .await,
        401,
        "invalid_token",
    );
    // Another session of hers is untouched.
    let again = s.login("alice").await;
    expect_ok(again.get::<Value>("/api/v1/me").await, "a new session");
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_identity_out_even_with_the_right_password() {
    let s = Server::start().await;
    for i in 0..5 {
        expect_err(
            sign_in(&s, "bob", &format!("guess-{i}")).await,
            401,
            "invalid_credentials",
        );
    }
    let before = s.audit_count().await;
    expect_err(
        sign_in(&s, "bob", &password_of("bob")).await,
        429,
        "rate_limited",
    );
    let new = s.audit_after(before).await;
    assert!(
        !new.iter()
            .any(|r| r["kind"] == "auth.signin_succeeded" || r["kind"] == "token.issued"),
        "a throttled attempt issues no token: {new:?}"
    );
    // The limit is per identity: others still sign in from the same address.
    expect_ok(
        sign_in(&s, "carol", &password_of("carol")).await,
        "carol signs in",
    );
}

#[tokio::test]
async fn an_api_token_is_shown_once_and_never_listed() {
    let s = Server::start().await;
    let alice = s.login("alice").await;
    let t: Value = expect_ok(
        alice.post("/api/v1/tokens", &json!({"name": "ci"})).await,
        "create token",
    );
    let secret = t["token"]
        .as_str()
        .expect("the new token is shown")
        .to_owned();
    let id = t["id"].as_str().expect("id").to_owned();
    assert_eq!(t["kind"], json!("api"));
    assert_eq!(t["label"], json!("ci"));
    assert_eq!(t["expires_at"], Value::Null, "no expiry unless asked");

    let ci = s.client(&secret);
    let me: Value = expect_ok(ci.get("/api/v1/me").await, "the API token works");
    assert_eq!(me["name"], json!("alice"));

    for viewer in [&alice, &ci] {
        let list: Value = expect_ok(viewer.get("/api/v1/tokens").await, "list tokens");
        let list = list.as_array().expect("a list");
        assert!(
            list.iter().any(|r| r["id"] == json!(id)),
            "the token is listed: {list:?}"
        );
        for row in list {
            assert!(
                row.get("token").is_none(),
                "a listing never shows a token: {row}"
            );
        }
        assert!(!Value::Array(list.clone()).to_string().contains(&secret));
    }

    let with_expiry: Value = expect_ok(
        alice
            .post(
                "/api/v1/tokens",
                &json!({"name": "short", "expires_in": "1h"}),
            )
            .await,
        "token with expiry",
    );
    assert!(with_expiry["expires_at"].is_string(), "{with_expiry}");

    // Revoking it by id ends it.
    expect_ok(
        alice.delete::<Value>(&format!("/api/v1/tokens/{id}")).await,
        "revoke",
    );
    expect_err(ci.get::<Value>("/api/v1/me").await, 401, "invalid_token");
}

#[tokio::test]
async fn a_disabled_identitys_tokens_stop_working_at_once() {
    let s = Server::start().await;
    let session = s.login("alice").await;
    let api: Value = expect_ok(
        session.post("/api/v1/tokens", &json!({"name": "ci"})).await,
        "token",
    );
    let api = s.client(api["token"].as_str().expect("token"));
    let sessions: [&Client; 2] = [&session, &api];
    for c in sessions {
        expect_ok(c.get::<Value>("/api/v1/me").await, "before");
    }
    let out: Value = expect_ok(
        s.admin
            .post("/api/v1/identities/alice/disable", &json!({}))
            .await,
        "disable",
    );
    assert_eq!(out["status"], json!("disabled"));
    for c in sessions {
        expect_err(c.get::<Value>("/api/v1/me").await, 401, "invalid_token");
    }
    expect_err(
        sign_in(&s, "alice", &password_of("alice")).await,
        401,
        "invalid_credentials",
    );

    // Enabling gives nothing back: the old tokens stay dead, a new sign-in works.
    expect_ok(
        s.admin
            .post::<_, Value>("/api/v1/identities/alice/enable", &json!({}))
            .await,
        "enable",
    );
    for c in sessions {
        expect_err(c.get::<Value>("/api/v1/me").await, 401, "invalid_token");
    }
    let again = s.login("alice").await;
    expect_ok(
        again.get::<Value>("/api/v1/me").await,
        "a new session after enabling",
    );
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one_and_ends_other_sessions() {
    let s = Server::start().await;
    let here = s.login("alice").await;
    let elsewhere = s.login("alice").await;
    let path = "/api/v1/identities/alice/password";
    expect_err(
        here.post::<_, Value>(path, &json!({"password": "a-new-long-password"}))
            .await,
        400,
        "current_password_required",
    );
    expect_err(
        here.post::<_, Value>(
            path,
            &json!({"password": "a-new-long-password", "current_password": "wrong-wrong-wrong"}),
        )
        .await,
        403,
        "invalid_credentials",
    );
    expect_ok(
        here.post::<_, Value>(
            path,
            &json!({"password": "a-new-long-password", "current_password": password_of("alice")}),
        )
        .await,
        "alice changes her password",
    );
    expect_ok(
        here.get::<Value>("/api/v1/me").await,
        "this session goes on",
    );
    expect_err(
        elsewhere.get::<Value>("/api/v1/me").await,
        401,
        "invalid_token",
    );
    expect_err(
        sign_in(&s, "alice", &password_of("alice")).await,
        401,
        "invalid_credentials",
    );
    expect_ok(
        sign_in(&s, "alice", "a-new-long-password").await,
        "the new password works",
    );

    // An admin resets bob's password: bob's sessions end; no current password is asked.
    let bob = s.login("bob").await;
    expect_ok(
        s.admin
            .post::<_, Value>(
                "/api/v1/identities/bob/password",
                &json!({"password": "bob-reset-password"}),
            )
            .await,
        "admin resets bob",
    );
    expect_err(bob.get::<Value>("/api/v1/me").await, 401, "invalid_token");
    // And a user cannot set someone else's.
    expect_err(
        here.post::<_, Value>(
            "/api/v1/identities/bob/password",
            &json!({"password": "mallory-was-here"}),
        )
        .await,
        403,
        "forbidden",
    );
}

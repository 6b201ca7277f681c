//! Sign-ins against a real OpenID provider (oidc-provider-mock, see warrant-testkit).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use warrant_core::Clock;
use warrant_oidc::{JWKS_REFETCH_INTERVAL_SECS, OidcConfig, RelyingParty};
use warrant_testkit::OidcProviderFixture;

use crate::{assert_code, clock, clock_at, login, redirect, registered, tampered};

async fn provider() -> OidcProviderFixture {
    OidcProviderFixture::start(json!([
        {"sub": "alice", "email": "alice@example.com", "email_verified": true,
         "preferred_username": "alice", "name": "Alice Liddell",
         "groups": ["dba", "ops"], "amr": ["pwd", "otp"]},
        {"sub": "bob", "email": "bob@example.com", "groups": "dba"},
    ]))
    .await
    .unwrap()
}

#[tokio::test]
async fn sign_in_returns_the_verified_claims() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();

    let (url, pending) = rp.begin(&redirect(), &now);
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(get("client_id"), Some(rp.client_id()));
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("state"), Some(pending.state()));
    assert_eq!(get("redirect_uri"), Some(crate::REDIRECT));
    assert_eq!(get("scope"), Some("openid email profile"));
    assert!(get("nonce").is_some_and(|n| n.len() >= 16));
    assert!(get("code_challenge").is_some_and(|c| c.len() == 43));
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth2/authorize?", idp.issuer()))
    );

    let cb = login(&rp, &idp, "alice", &now).await;
    let claims = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(claims.issuer, idp.issuer());
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.email.as_deref(), Some("alice@example.com"));
    assert_eq!(claims.email_verified, Some(true));
    assert_eq!(claims.preferred_username.as_deref(), Some("alice"));
    assert_eq!(claims.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(claims.groups, ["dba", "ops"]);
    assert_eq!(claims.amr, ["pwd", "otp"]);
    let auth_time = claims.auth_time.unwrap();
    assert!((auth_time - now.now().unix_seconds()).abs() < 60);

    // A single string is one group; no groups claim is no groups.
    let cb = login(&rp, &idp, "bob", &now).await;
    let bob = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(bob.groups, ["dba"]);
    assert_eq!(bob.amr, Vec::<String>::new());
    let cb = login(&rp, &idp, "carol", &now).await;
    let carol = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!((carol.subject.as_str(), carol.groups.len()), ("carol", 0));

    // Claims changed at the provider show at the next sign-in.
    idp.set_user_claims(
        "alice",
        json!({"email": "alice@example.com", "groups": ["auditors"]}),
    )
    .await
    .unwrap();
    let cb = login(&rp, &idp, "alice", &now).await;
    let claims = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(claims.groups, ["auditors"]);
    assert_eq!(claims.name, None, "the new claims replaced the old ones");
}

#[tokio::test]
async fn a_pending_login_survives_the_servers_store() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    // What the server does between the two requests: serialise, keep, read back.
    let stored = serde_json::to_string(&cb.pending).unwrap();
    let pending = serde_json::from_str(&stored).unwrap();
    let claims = rp
        .complete(&pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(claims.subject, "alice");
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_before_the_code_is_spent() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    let other = login(&rp, &idp, "alice", &now).await;

    assert_code(
        rp.complete(&cb.pending, &other.state, &cb.code, &now).await,
        "oidc_state_mismatch",
        &[&cb.code],
    );
    assert_code(
        rp.complete(&cb.pending, "", &cb.code, &now).await,
        "oidc_state_mismatch",
        &[],
    );
    // The refused callback did not reach the provider: the code still works with its state.
    let claims = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(claims.subject, "alice");
}

#[tokio::test]
async fn a_replayed_code_is_refused_by_the_provider() {
    let idp = provider().await;
    let (rp, cfg) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    rp.complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();

    let secret = cfg.client_secret.as_ref().unwrap().expose().clone();
    let verifier = serde_json::to_value(&cb.pending).unwrap()["pkce_verifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = assert_code(
        rp.complete(&cb.pending, &cb.state, &cb.code, &now).await,
        "oidc_exchange",
        &[&cb.code, &secret, &verifier],
    );
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    assert!(e.to_string().contains("start the sign-in again"), "{e}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_without_printing_it() {
    let idp = provider().await;
    let (client_id, _) = idp.register_client(&[crate::REDIRECT]).await.unwrap();
    let wrong = "not-the-secret-canary";
    let rp =
        RelyingParty::discover(OidcConfig::new(idp.issuer(), client_id).with_client_secret(wrong))
            .await
            .unwrap();
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    let e = assert_code(
        rp.complete(&cb.pending, &cb.state, &cb.code, &now).await,
        "oidc_exchange",
        &[wrong, &cb.code],
    );
    assert!(e.to_string().contains("client_secret"), "{e}");
    assert!(!format!("{rp:?}").contains(wrong));
}

#[tokio::test]
async fn a_token_for_another_nonce_is_refused() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    // The stored login was altered (or another login's token was substituted): the ID token
    // carries the nonce of the authorization request, not this one.
    let pending = tampered(&cb.pending, "nonce", "some-other-nonce");
    assert_code(
        rp.complete(&pending, &cb.state, &cb.code, &now).await,
        "oidc_nonce",
        &[&cb.code],
    );
}

/// The mock always issues a token to the client that authenticates at its token endpoint, so a
/// token "for another client" is obtained by a second registered client and handed to the
/// first one's verification; completing the first client's login with the second client's
/// credentials is refused by the provider itself.
#[tokio::test]
async fn a_token_issued_to_another_client_is_refused() {
    let idp = provider().await;
    let (rp_a, _) = registered(&idp).await;
    let (rp_b, _) = registered(&idp).await;
    let now = clock();

    let cb = login(&rp_b, &idp, "alice", &now).await;
    let token_for_b = rp_b
        .exchange_for_id_token(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    let nonce = serde_json::to_value(&cb.pending).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let e = assert_code(
        rp_a.verify_id_token(&token_for_b, &nonce, &now).await,
        "oidc_audience",
        &[&token_for_b],
    );
    assert!(e.to_string().contains(rp_a.client_id()), "{e}");
    // The same token passes for its own client.
    rp_b.verify_id_token(&token_for_b, &nonce, &now)
        .await
        .unwrap();

    // A's code presented by B: the provider refuses, the code belongs to A.
    let cb = login(&rp_a, &idp, "alice", &now).await;
    assert_code(
        rp_b.complete(&cb.pending, &cb.state, &cb.code, &now).await,
        "oidc_exchange",
        &[&cb.code],
    );
}

#[tokio::test]
async fn an_expired_token_and_a_token_from_the_future_are_refused() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;

    // The mock's tokens live one hour; Warrant's clock two hours ahead finds them expired.
    let later = clock_at(2 * 3600);
    let cb = login(&rp, &idp, "alice", &later).await;
    let e = assert_code(
        rp.complete(&cb.pending, &cb.state, &cb.code, &later).await,
        "oidc_expired",
        &[&cb.code],
    );
    assert!(e.to_string().contains("expired"), "{e}");

    // Two hours behind: issued in the future.
    let earlier = clock_at(-2 * 3600);
    let cb = login(&rp, &idp, "alice", &earlier).await;
    let e = assert_code(
        rp.complete(&cb.pending, &cb.state, &cb.code, &earlier)
            .await,
        "oidc_expired",
        &[],
    );
    assert!(e.to_string().contains("future"), "{e}");

    // Within the allowed skew both ways: accepted.
    for skew in [-30, 30] {
        let c = clock_at(skew);
        let cb = login(&rp, &idp, "alice", &c).await;
        rp.complete(&cb.pending, &cb.state, &cb.code, &c)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_login_left_pending_too_long_is_refused() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    now.advance_secs(warrant_oidc::PENDING_LOGIN_TTL_SECS + 1);
    let e = assert_code(
        rp.complete(&cb.pending, &cb.state, &cb.code, &now).await,
        "oidc_expired",
        &[&cb.code],
    );
    assert!(e.to_string().contains("start it again"), "{e}");
}

/// Flips one character of a compact JWS segment (0 = header, 1 = payload, 2 = signature).
fn flip(token: &str, segment: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let s = &mut parts[segment];
    let c = s.remove(0);
    s.insert(0, if c == 'A' { 'B' } else { 'A' });
    parts.join(".")
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    let token = rp
        .exchange_for_id_token(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    let nonce = serde_json::to_value(&cb.pending).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    rp.verify_id_token(&token, &nonce, &now).await.unwrap();

    assert_code(
        rp.verify_id_token(&flip(&token, 2), &nonce, &now).await,
        "oidc_signature",
        &[&token],
    );

    // A payload claiming to be someone else, with the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("mallory");
    payload["groups"] = json!(["admins"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap()),
        parts[2]
    );
    assert_code(
        rp.verify_id_token(&forged, &nonce, &now).await,
        "oidc_signature",
        &[],
    );

    // Not a JWT at all.
    assert_code(
        rp.verify_id_token("not.a.token", &nonce, &now).await,
        "oidc_invalid_token",
        &[],
    );
}

/// The mock makes a new RSA key at each start and publishes only that one, without `kid`:
/// restarting it on the same port is a key rotation that removes the old key.
#[tokio::test]
async fn after_a_key_rotation_new_tokens_verify_and_old_keys_are_no_longer_trusted() {
    let mut idp = provider().await;
    let (rp, _) = registered(&idp).await;
    let now = clock();
    let nonce_of = |p: &warrant_oidc::PendingLogin| {
        serde_json::to_value(p).unwrap()["nonce"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let cb = login(&rp, &idp, "alice", &now).await;
    let old_nonce = nonce_of(&cb.pending);
    let old_token = rp
        .exchange_for_id_token(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    rp.verify_id_token(&old_token, &old_nonce, &now)
        .await
        .unwrap();

    idp.restart_with_new_keys().await.unwrap();

    // The new key is unknown: the key set is fetched again and the sign-in succeeds.
    let cb = login(&rp, &idp, "alice", &now).await;
    let claims = rp
        .complete(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_eq!(claims.groups, ["dba", "ops"]);

    // The old key is gone from the key set: a token it signed is refused, now and after the
    // refetch interval (when the key set is fetched again and still lacks it).
    assert_code(
        rp.verify_id_token(&old_token, &old_nonce, &now).await,
        "oidc_signature",
        &[],
    );
    now.advance_secs(JWKS_REFETCH_INTERVAL_SECS + 1);
    assert_code(
        rp.verify_id_token(&old_token, &old_nonce, &now).await,
        "oidc_signature",
        &[],
    );

    // Another rotation right after that fetch: within the interval the key set is not fetched
    // again, so the new token is refused; once the interval has passed, it verifies.
    idp.restart_with_new_keys().await.unwrap();
    let cb = login(&rp, &idp, "alice", &now).await;
    let nonce = nonce_of(&cb.pending);
    let token = rp
        .exchange_for_id_token(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    now.advance_secs(JWKS_REFETCH_INTERVAL_SECS - 5);
    assert_code(
        rp.verify_id_token(&token, &nonce, &now).await,
        "oidc_signature",
        &[],
    );
    now.advance_secs(10);
    let claims = rp.verify_id_token(&token, &nonce, &now).await.unwrap();
    assert_eq!(claims.subject, "alice");
}

#[tokio::test]
async fn an_issuer_that_differs_from_the_providers_is_refused() {
    let idp = provider().await;
    let (client_id, secret) = idp.register_client(&[crate::REDIRECT]).await.unwrap();
    let cfg = |issuer: String| {
        OidcConfig::new(issuer, client_id.clone()).with_client_secret(secret.clone())
    };

    // A trailing slash: the document is found, but names the issuer without it.
    let e = assert_code(
        RelyingParty::discover(cfg(format!("{}/", idp.issuer()))).await,
        "oidc_issuer",
        &[&secret],
    );
    assert!(e.to_string().contains(&idp.issuer()), "{e}");
    assert!(e.to_string().contains("exactly"), "{e}");

    // A trailing path: there is no discovery document there.
    let e = assert_code(
        RelyingParty::discover(cfg(format!("{}/realms/corp", idp.issuer()))).await,
        "oidc_discovery",
        &[&secret],
    );
    assert!(e.to_string().contains("404"), "{e}");

    // Nothing listens there.
    let port = warrant_testkit::free_port();
    assert_code(
        RelyingParty::discover(cfg(format!("http://127.0.0.1:{port}"))).await,
        "oidc_discovery",
        &[&secret],
    );

    // The mock names itself after the address it was reached at: through `localhost` it is
    // another issuer, and a token from the 127.0.0.1 issuer is refused there.
    let rp = RelyingParty::discover(cfg(idp.issuer())).await.unwrap();
    let localhost = format!("http://localhost:{}", idp.port());
    let rp_localhost = RelyingParty::discover(cfg(localhost.clone()))
        .await
        .unwrap();
    assert_eq!(rp_localhost.issuer(), localhost);
    let now = clock();
    let cb = login(&rp, &idp, "alice", &now).await;
    let nonce = serde_json::to_value(&cb.pending).unwrap()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = rp
        .exchange_for_id_token(&cb.pending, &cb.state, &cb.code, &now)
        .await
        .unwrap();
    assert_code(
        rp_localhost.verify_id_token(&token, &nonce, &now).await,
        "oidc_issuer",
        &[],
    );
}

#[tokio::test]
async fn a_plain_http_issuer_off_loopback_and_a_missing_ca_file_are_configuration_errors() {
    assert_code(
        RelyingParty::discover(OidcConfig::new("http://idp.example.com", "warrant")).await,
        "oidc_config",
        &[],
    );
    let cfg = OidcConfig {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..OidcConfig::new("https://idp.example.com", "warrant")
    };
    let e = assert_code(RelyingParty::discover(cfg).await, "oidc_config", &[]);
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}

#[test]
fn a_relying_party_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<RelyingParty>();
    // Compiled, not run: complete's future must be Send for axum handlers.
    #[allow(dead_code)]
    fn complete_is_send(rp: &RelyingParty, p: &warrant_oidc::PendingLogin, c: &dyn Clock) {
        send(rp.complete(p, "state", "code", c));
    }
}

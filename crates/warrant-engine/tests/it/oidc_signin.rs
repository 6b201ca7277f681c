//! OIDC sign-in through the engine against a real OpenID provider (oidc-provider-mock, started
//! by warrant-testkit), on both backends.

use serde_json::{Value, json};
use sqlx::AnyPool;
use url::Url;
use warrant_core::{Clock, GrantStatus, IdentityStatus, Name, Source, SystemClock, SystemRole};
use warrant_engine::oidc::{OidcService, OidcSignIn};
use warrant_engine::{EngineError, ErrorKind, IdentityInput, IdentityUpdate, IssuedToken};
use warrant_testkit::OidcProviderFixture;

use crate::conformance;
use crate::harness::Env;

/// Where the provider sends the browser back to: a loopback URI on a port the configuration
/// does not name (RFC 8252: any port). Nothing listens there; the tests read the redirect.
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PEER: &str = "198.51.100.7";

/// An engine, a provider with Warrant registered at it, and every secret seen on the way (the
/// client secret, states, nonces, PKCE verifiers, codes, session tokens), which no audit record
/// and no error may contain.
struct Oidc {
    env: Env,
    idp: OidcProviderFixture,
    svc: OidcService,
    client_id: String,
    secrets: Vec<String>,
    db: AnyPool,
}

/// A login up to the provider's callback.
struct Callback {
    login_id: String,
    state: String,
    code: String,
}

impl Oidc {
    async fn start(env: Env, users: Value, configure: impl FnOnce(&mut OidcSignIn)) -> Self {
        // ID tokens are stamped with the real time: the engine's clock starts there too.
        env.clock.set(SystemClock.now());
        let idp = OidcProviderFixture::start(users).await.unwrap();
        let (client_id, secret) = idp.register_client(&[REDIRECT]).await.unwrap();
        sqlx::any::install_default_drivers();
        let db = AnyPool::connect(&env.url).await.unwrap();
        let mut me = Self {
            svc: service(&idp, &client_id, &secret, |_| {}).await,
            env,
            idp,
            client_id,
            secrets: vec![secret],
            db,
        };
        me.svc = me.service(configure).await;
        me
    }

    /// Another service for the same provider and client, configured by `configure`.
    async fn service(&self, configure: impl FnOnce(&mut OidcSignIn)) -> OidcService {
        service(&self.idp, &self.client_id, &self.secrets[0], configure).await
    }

    async fn callback(&mut self, sub: &str) -> Callback {
        let (login_id, url) = self
            .env
            .engine
            .oidc_begin(&self.svc, REDIRECT)
            .await
            .unwrap();
        // What the server keeps: none of it may reach the audit trail.
        let data: String = sqlx::query_scalar("SELECT data FROM pending_logins WHERE id = $1")
            .bind(&login_id)
            .fetch_one(&self.db)
            .await
            .unwrap();
        let kept: Value = serde_json::from_str(&data).unwrap();
        for k in ["state", "nonce", "pkce_verifier"] {
            self.secrets.push(kept[k].as_str().unwrap().to_owned());
        }
        let location = Url::parse(&self.idp.login(url.as_str(), sub).await.unwrap()).unwrap();
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in the callback {location}"))
        };
        let cb = Callback {
            login_id,
            state: param("state"),
            code: param("code"),
        };
        self.secrets.push(cb.code.clone());
        cb
    }

    async fn complete_with(
        &mut self,
        login_id: &str,
        state: &str,
        code: &str,
    ) -> warrant_engine::Result<IssuedToken> {
        let r = self
            .env
            .engine
            .oidc_complete(&self.svc, login_id, state, code, PEER)
            .await;
        match &r {
            Ok(t) => {
                let (_, secret) = t.token.expose()[3..].split_once('_').unwrap();
                self.secrets.push(secret.to_owned());
            }
            Err(e) => {
                let text = format!("{e} {e:?}");
                for s in &self.secrets {
                    assert!(!text.contains(s.as_str()), "{text} leaks a secret");
                }
            }
        }
        r
    }

    async fn complete(&mut self, cb: &Callback) -> warrant_engine::Result<IssuedToken> {
        self.complete_with(&cb.login_id, &cb.state, &cb.code).await
    }

    async fn sign_in(&mut self, sub: &str) -> warrant_engine::Result<IssuedToken> {
        let cb = self.callback(sub).await;
        self.complete(&cb).await
    }

    /// Creates `name` as a directory source would, linked to the OpenID subject `sub`.
    async fn provision(&self, via: Source, name: &str, sub: &str, email: &str) {
        let actor = self.env.admin.clone().through(via);
        self.env
            .engine
            .add_identity(
                &actor,
                IdentityInput {
                    name: Name::new(name).unwrap(),
                    display_name: None,
                    email: email.to_owned(),
                    manager: None,
                    system_role: SystemRole::User,
                    password: None,
                    external_id: Some(sub.to_owned()),
                },
            )
            .await
            .unwrap();
    }

    /// The data of every audit record of `kind`.
    async fn events(&self, kind: &str) -> Vec<Value> {
        self.env
            .engine
            .audit_records(&self.env.admin, 0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| serde_json::from_str(&r.data).unwrap())
            .collect()
    }

    async fn groups_of(&self, name: &str) -> Vec<String> {
        let (_, groups) = self
            .env
            .engine
            .identity(&self.env.admin, name)
            .await
            .unwrap();
        groups.iter().map(|g| g.to_string()).collect()
    }

    /// The chain verifies and no record carries a secret seen in the test.
    async fn assert_audit_clean(&self) {
        assert!(self.env.engine.audit_verify().await.unwrap().intact);
        let records = self
            .env
            .engine
            .audit_records(&self.env.admin, 0, 10_000)
            .await
            .unwrap();
        assert!(self.secrets.len() > 1);
        for r in &records {
            for s in &self.secrets {
                assert!(!r.data.contains(s.as_str()), "{} leaks a secret", r.data);
            }
        }
    }
}

async fn service(
    idp: &OidcProviderFixture,
    client_id: &str,
    secret: &str,
    configure: impl FnOnce(&mut OidcSignIn),
) -> OidcService {
    let mut cfg: OidcSignIn = serde_json::from_value(json!({
        "provider": {"issuer": idp.issuer(), "client_id": client_id, "client_secret": secret},
        "redirect_uris": [
            "https://warrant.example.com/api/v1/auth/oidc/callback",
            "http://127.0.0.1/callback",
        ],
    }))
    .unwrap();
    configure(&mut cfg);
    OidcService::discover(cfg).await.unwrap()
}

/// Asserts `r` failed with `code`.
#[track_caller]
fn refused(r: warrant_engine::Result<IssuedToken>, code: &str) -> EngineError {
    let e = r.expect_err("should have been refused");
    assert_eq!(e.code, code, "{e}");
    e
}

conformance!(
    oidc_signs_in_by_subject_and_refuses_unknown_accounts,
    |env| {
        let mut o = Oidc::start(
            env,
            json!([
                {"sub": "s-frank", "email": "frank@example.com", "email_verified": true,
                 "preferred_username": "frank"},
                {"sub": "s-gina", "preferred_username": "gina"},
                {"sub": "s-alice", "email": "alice@example.com", "email_verified": true,
                 "preferred_username": "alice"},
            ]),
            |_| {},
        )
        .await;
        o.provision(Source::Scim, "frank", "s-frank", "frank@example.com")
            .await;
        o.provision(Source::Oidc, "gina", "s-gina", "").await;

        // Matched by subject, whichever directory source provisioned the identity.
        let first = o.sign_in("s-frank").await.unwrap();
        assert_eq!(first.identity.as_str(), "frank");
        let second = o.sign_in("s-frank").await.unwrap();
        assert_ne!(first.id, second.id, "a new token at every sign-in");
        for t in [&first, &second] {
            let actor = o.env.engine.authenticate(t.token.expose()).await.unwrap();
            assert_eq!(actor.name.as_str(), "frank");
            assert_eq!(
                t.expires_at,
                Some(o.env.engine.now().plus_secs(12 * 3600)),
                "the session's absolute timeout"
            );
        }
        assert_eq!(o.sign_in("s-gina").await.unwrap().identity.as_str(), "gina");

        // alice exists locally with the same verified email and username, but nothing links her
        // to this subject: no email matching unless configured, no creation unless configured.
        let e = refused(o.sign_in("s-alice").await, "oidc_no_identity");
        assert_eq!(e.kind, ErrorKind::Unauthenticated);
        assert!(e.message.contains("provision"), "{e}");
        refused(o.sign_in("s-nobody").await, "oidc_no_identity");
        let (alice, _) = o.env.engine.identity(&o.env.admin, "alice").await.unwrap();
        assert_eq!((alice.source, alice.external_id), (Source::Local, None));

        // A disabled identity is refused, and was logged out.
        o.env
            .engine
            .set_identity_status(
                &o.env.admin.clone().through(Source::Scim),
                "frank",
                IdentityStatus::Disabled,
            )
            .await
            .unwrap();
        let e = refused(o.sign_in("s-frank").await, "oidc_identity_disabled");
        assert_eq!(e.kind, ErrorKind::Unauthenticated);
        assert!(
            o.env
                .engine
                .authenticate(first.token.expose())
                .await
                .is_err()
        );

        let ok = o.events("auth.signin_succeeded").await;
        assert_eq!(ok.len(), 3);
        assert!(ok.iter().all(|e| e["source"] == "oidc"));
        let issued = o.events("token.issued").await;
        let sessions: Vec<_> = issued.iter().filter(|e| e["kind"] == "session").collect();
        assert_eq!(sessions.len(), 3);
        assert!(sessions.iter().all(|e| e["label"] == "oidc sign-in"));
        let failed = o.events("auth.signin_failed").await;
        let failed: Vec<(&str, &str, &str)> = failed
            .iter()
            .map(|e| {
                (
                    e["identity"].as_str().unwrap(),
                    e["source"].as_str().unwrap(),
                    e["reason"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            failed,
            [
                ("oidc:s-alice", "oidc", "oidc_no_identity"),
                ("oidc:s-nobody", "oidc", "oidc_no_identity"),
                ("frank", "oidc", "oidc_identity_disabled"),
            ]
        );
        o.assert_audit_clean().await;
    }
);

conformance!(oidc_creates_unknown_accounts_only_when_configured, |env| {
    let mut o = Oidc::start(
        env,
        json!([
            {"sub": "s-hal", "preferred_username": "hal", "name": "Hal Nine",
             "email": "hal@example.com", "email_verified": true},
            {"sub": "s-ivy", "preferred_username": "ivy", "email": "ivy@example.com",
             "email_verified": false},
            {"sub": "s-fake", "preferred_username": "alice"},
            {"sub": "s-bad", "preferred_username": "not a name!"},
            {"sub": "s-anon"},
        ]),
        |c| c.create_unknown = true,
    )
    .await;
    let before = o.env.engine.identities(&o.env.admin).await.unwrap().len();

    assert_eq!(o.sign_in("s-hal").await.unwrap().identity.as_str(), "hal");
    let (hal, groups) = o.env.engine.identity(&o.env.admin, "hal").await.unwrap();
    assert_eq!(hal.source, Source::Oidc);
    assert_eq!(hal.external_id.as_deref(), Some("s-hal"));
    assert_eq!(hal.display_name, "Hal Nine");
    assert_eq!(hal.email, "hal@example.com");
    assert_eq!(hal.system_role, SystemRole::User);
    assert!(groups.is_empty());
    // The second sign-in finds it by subject.
    assert_eq!(o.sign_in("s-hal").await.unwrap().identity.as_str(), "hal");
    // An unverified email is not recorded.
    o.sign_in("s-ivy").await.unwrap();
    let (ivy, _) = o.env.engine.identity(&o.env.admin, "ivy").await.unwrap();
    assert_eq!(ivy.email, "");

    // A name that is taken is never taken over; a claim that is no name is refused.
    let e = refused(o.sign_in("s-fake").await, "oidc_name_taken");
    assert!(e.message.contains("\"alice\""), "{e}");
    refused(o.sign_in("s-bad").await, "oidc_invalid_name");
    refused(o.sign_in("s-anon").await, "oidc_invalid_name");
    let (alice, _) = o.env.engine.identity(&o.env.admin, "alice").await.unwrap();
    assert_eq!(alice.external_id, None);
    assert_eq!(
        o.env.engine.identities(&o.env.admin).await.unwrap().len(),
        before + 2
    );
    let created = o.events("identity.created").await;
    let created: Vec<_> = created.iter().filter(|e| e["via"] == "oidc").collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["identity"], "hal");

    // Named by `sub` when configured so.
    o.svc = o
        .service(|c| {
            c.create_unknown = true;
            c.name_claim = warrant_engine::oidc::NameClaim::Sub;
        })
        .await;
    assert_eq!(
        o.sign_in("s-anon").await.unwrap().identity.as_str(),
        "s-anon"
    );
    o.assert_audit_clean().await;
});

conformance!(oidc_matches_a_verified_email_only_when_configured, |env| {
    let mut o = Oidc::start(
        env,
        json!([
            {"sub": "s-alice", "email": "alice@example.com", "email_verified": true},
            {"sub": "s-bob", "email": "bob@example.com", "email_verified": false},
            {"sub": "s-dave", "email": "dave@example.com"},
            {"sub": "s-carol", "email": "CAROL@example.com", "email_verified": true},
            {"sub": "s-gina2", "email": "gina@example.com", "email_verified": true},
        ]),
        |_| {},
    )
    .await;
    refused(o.sign_in("s-alice").await, "oidc_no_identity");

    o.svc = o.service(|c| c.match_email = true).await;
    assert_eq!(
        o.sign_in("s-alice").await.unwrap().identity.as_str(),
        "alice"
    );
    // Not linked by the match: each sign-in matches by email again, and says so.
    let (alice, _) = o.env.engine.identity(&o.env.admin, "alice").await.unwrap();
    assert_eq!((alice.source, alice.external_id), (Source::Local, None));
    let ok = o.events("auth.signin_succeeded").await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["identity"], "alice");
    assert_eq!(ok[0]["source"], "oidc-email");

    // Unverified, or verification not stated: no match.
    refused(o.sign_in("s-bob").await, "oidc_no_identity");
    refused(o.sign_in("s-dave").await, "oidc_no_identity");

    // carol's email (compared case-insensitively) is unique, until erin has it too.
    assert_eq!(
        o.sign_in("s-carol").await.unwrap().identity.as_str(),
        "carol"
    );
    o.env
        .engine
        .update_identity(
            &o.env.admin,
            "erin",
            IdentityUpdate {
                email: Some("carol@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = refused(o.sign_in("s-carol").await, "oidc_email_ambiguous");
    assert!(e.message.contains("carol, erin"), "{e}");

    // An identity linked to another subject is never handed over by its email.
    o.provision(Source::Oidc, "gina", "s-gina", "gina@example.com")
        .await;
    refused(o.sign_in("s-gina2").await, "oidc_email_linked");
    o.assert_audit_clean().await;
});

conformance!(
    oidc_group_claims_drive_mapped_memberships_with_mover_handling,
    |env| {
        let mut o = Oidc::start(
            env,
            json!({"sub": "s-kim", "groups": ["pam-ops", "pam-scim", "pam-ghost", "unmapped"]}),
            |c| {
                c.group_mapping = [
                    ("pam-dba", "dba"),
                    ("pam-dba-2", "dba"),
                    ("pam-ops", "ops"),
                    ("pam-security", "security"),
                    ("pam-scim", "scim-team"),
                    ("pam-ghost", "ghost"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            },
        )
        .await;
        o.provision(Source::Oidc, "kim", "s-kim", "").await;
        let admin = o.env.admin.clone();
        o.env.engine.add_member(&admin, "dba", "kim").await.unwrap();
        o.env
            .engine
            .add_member(&admin, "db-owners", "kim")
            .await
            .unwrap();
        let scim = admin.clone().through(Source::Scim);
        o.env
            .engine
            .add_group(&scim, &Name::new("scim-team").unwrap(), "owned by SCIM")
            .await
            .unwrap();
        let grant = o
            .env
            .request("kim", "pg-prod", "readonly", "1h", None)
            .await
            .unwrap()
            .grant
            .unwrap();

        // ops joined; dba left (its grant revoked in the same transaction); db-owners is not
        // mapped and stays; scim-team belongs to SCIM and ghost does not exist: both skipped.
        o.sign_in("s-kim").await.unwrap();
        assert_eq!(o.groups_of("kim").await, ["db-owners", "ops"]);
        let g = o.env.engine.grant(&admin, &grant.id).await.unwrap();
        assert_eq!(g.status, GrantStatus::Revoked);
        let removed = o.events("group.member_removed").await;
        assert_eq!(removed.len(), 1);
        assert_eq!(
            (
                &removed[0]["group"],
                &removed[0]["via"],
                &removed[0]["grants_revoked"]
            ),
            (&json!("dba"), &json!("oidc"), &json!(1))
        );
        let added = o.events("group.member_added").await;
        let by_oidc: Vec<_> = added.iter().filter(|e| e["via"] == "oidc").collect();
        assert_eq!(by_oidc.len(), 1);
        assert_eq!(by_oidc[0]["group"], "ops");

        // The same claims again change nothing.
        o.sign_in("s-kim").await.unwrap();
        assert_eq!(o.events("group.member_added").await.len(), added.len());
        assert_eq!(o.events("group.member_removed").await.len(), 1);

        // Moved back: either claim value mapped to dba counts.
        o.idp
            .set_user_claims("s-kim", json!({"groups": ["pam-dba-2"]}))
            .await
            .unwrap();
        o.sign_in("s-kim").await.unwrap();
        assert_eq!(o.groups_of("kim").await, ["db-owners", "dba"]);
        assert!(
            o.env
                .request("kim", "pg-prod", "readonly", "1h", None)
                .await
                .unwrap()
                .grant
                .is_some()
        );

        // No groups claim at all: the managed memberships go, the others stay.
        o.idp.set_user_claims("s-kim", json!({})).await.unwrap();
        o.sign_in("s-kim").await.unwrap();
        assert_eq!(o.groups_of("kim").await, ["db-owners"]);
        o.assert_audit_clean().await;
    }
);

conformance!(oidc_pending_logins_are_single_use_and_expire, |env| {
    let mut o = Oidc::start(env, json!({"sub": "s-frank"}), |_| {}).await;
    o.provision(Source::Oidc, "frank", "s-frank", "").await;

    // Completing twice: the second finds nothing.
    let cb = o.callback("s-frank").await;
    o.complete(&cb).await.unwrap();
    refused(o.complete(&cb).await, "oidc_login_unknown");
    refused(
        o.complete_with("0123456789abcdef", &cb.state, &cb.code)
            .await,
        "oidc_login_unknown",
    );

    // Eleven minutes later the login is expired, and gone.
    let late = o.callback("s-frank").await;
    o.env.clock.advance_secs(11 * 60);
    refused(o.complete(&late).await, "oidc_expired");
    refused(o.complete(&late).await, "oidc_login_unknown");
    o.env.clock.set(SystemClock.now());

    // Another login's state: refused before the code is spent, and the login is burnt.
    let a = o.callback("s-frank").await;
    let b = o.callback("s-frank").await;
    let e = refused(
        o.complete_with(&a.login_id, &b.state, &a.code).await,
        "oidc_state_mismatch",
    );
    assert_eq!(e.kind, ErrorKind::Unauthenticated);
    refused(o.complete(&a).await, "oidc_login_unknown");
    o.complete(&b).await.unwrap();

    // A code already exchanged is refused by the provider.
    let c = o.callback("s-frank").await;
    refused(
        o.complete_with(&c.login_id, &c.state, &b.code).await,
        "oidc_exchange",
    );

    // Only the configured redirect URIs (any port on the loopback one).
    let e = o
        .env
        .engine
        .oidc_begin(&o.svc, "https://evil.example.com/callback")
        .await
        .unwrap_err();
    assert_eq!(e.code, "oidc_redirect_uri");
    o.env
        .engine
        .oidc_begin(
            &o.svc,
            "https://warrant.example.com/api/v1/auth/oidc/callback",
        )
        .await
        .unwrap();

    let reasons: Vec<String> = o
        .events("auth.signin_failed")
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "oidc_login_unknown",
            "oidc_login_unknown",
            "oidc_expired",
            "oidc_login_unknown",
            "oidc_state_mismatch",
            "oidc_login_unknown",
            "oidc_exchange",
        ]
    );
    assert_eq!(o.events("auth.signin_succeeded").await.len(), 2);
    o.assert_audit_clean().await;
});

conformance!(
    an_oidc_session_owes_warrants_second_factor_for_minutes_only,
    |env| {
        let mut o = Oidc::start(
            env,
            json!([{"sub": "s-hal", "preferred_username": "hal", "email": "hal@example.com",
                "email_verified": true}]),
            |c| c.create_unknown = true,
        )
        .await;
        let first = o.sign_in("s-hal").await.unwrap();
        assert_eq!(first.scope, warrant_engine::Scope::Full, "no factor yet");
        // hal enrols TOTP (on the manual clock).
        let hal = o
            .env
            .engine
            .authenticate(first.token.expose())
            .await
            .unwrap();
        let e = o.env.engine.totp_enrol(&hal, "phone").await.unwrap();
        let seed = warrant_iam::totp::seed_from_base32(e.secret.expose()).unwrap();
        let at = |clock: &warrant_core::ManualClock| {
            use warrant_core::Clock;
            let t = u64::try_from(clock.now().unix_seconds()).unwrap();
            warrant_iam::totp::code_at(&seed, warrant_iam::totp::Hash::Sha1, 6, t).unwrap()
        };
        let code = at(&o.env.clock);
        o.env
            .engine
            .totp_confirm(&hal, &warrant_core::Secret::new(code))
            .await
            .unwrap();

        // Now the provider's word gives a session that only lasts minutes, until the factor.
        o.env.clock.advance_secs(60);
        let pending = o.sign_in("s-hal").await.unwrap();
        assert_eq!(pending.scope, warrant_engine::Scope::MfaPending);
        let left = pending.expires_at.unwrap().millis() - o.env.engine.now().millis();
        assert!(left <= 600_000, "{left} ms");
        let actor = o
            .env
            .engine
            .authenticate(pending.token.expose())
            .await
            .unwrap();
        o.env
            .engine
            .mfa_verify(&actor, &warrant_core::Secret::new(at(&o.env.clock)))
            .await
            .unwrap();
        // Proved: a full session, living the usual hours.
        o.env.clock.advance_secs(3000);
        let actor = o
            .env
            .engine
            .authenticate(pending.token.expose())
            .await
            .unwrap();
        assert_eq!(actor.scope, warrant_engine::Scope::Full);
        // An unproved one ends after its minutes.
        let idle = o.sign_in("s-hal").await.unwrap();
        o.env.clock.advance_secs(601);
        assert!(
            o.env
                .engine
                .authenticate(idle.token.expose())
                .await
                .is_err()
        );
    }
);

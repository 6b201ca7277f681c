//! The server fixture: a fresh SQLite store in a temp dir, bootstrapped, with the demo
//! organisation applied through `POST /api/v1/apply`, served in process on a free loopback
//! port until the fixture is dropped. Plus the helpers that keep each test short.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use warrant_api::{AppState, Client, ClientError};
use warrant_core::{Name, SystemClock, SystemRole};
use warrant_engine::webauthn::WebauthnSettings;
use warrant_engine::{Actor, Engine, EngineConfig, Scope};

/// The demo organisation, the same file `warrant serve --demo` seeds.
pub const DEMO_ORG: &str = include_str!("../../../../docs/examples/demo-org.yaml");

/// The origin the test server's WebAuthn relying party expects (browsers allow plain http
/// only for localhost).
pub const WEBAUTHN_ORIGIN: &str = "http://localhost";

/// The demo's password convention, also used for the identities the tests add.
pub fn password_of(name: &str) -> String {
    format!("{name}-demo-password")
}

/// One call's outcome, as the CLI sees it.
pub type Outcome = Result<Value, ClientError>;

/// A running server over its own store.
pub struct Server {
    /// The engine behind the server (used only to mint tokens).
    pub engine: Engine,
    /// A client with the bootstrap admin token.
    pub admin: Client,
    base: String,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Server {
    /// Starts a server with the demo organisation applied.
    pub async fn start() -> Self {
        let s = Self::start_empty().await;
        let applied = s
            .admin
            .post::<_, Value>("/api/v1/apply", &json!({"yaml": DEMO_ORG}))
            .await
            .expect("the demo org file applies");
        assert!(
            !applied["changes"].as_array().expect("changes").is_empty(),
            "applying the demo to an empty store changes something: {applied}"
        );
        s
    }

    /// Starts a bootstrapped server with nothing else in it.
    pub async fn start_empty() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = warrant_store::Store::open_sqlite(dir.path())
            .await
            .expect("open the SQLite store");
        let config = EngineConfig {
            webauthn: Some(WebauthnSettings {
                rp_id: "localhost".into(),
                rp_origin: WEBAUTHN_ORIGIN.into(),
                rp_name: "Warrant".into(),
            }),
            ..EngineConfig::default()
        };
        let engine = Engine::new(store, Arc::new(SystemClock), config)
            .await
            .expect("engine");
        let admin_token = engine
            .bootstrap()
            .await
            .expect("bootstrap")
            .expect("an empty store bootstraps an admin token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(warrant_api::serve(
            listener,
            AppState::new(engine.clone()),
            async move {
                let _ = rx.await;
            },
        ));
        let admin = Client::new(&base, Some(admin_token.token.expose().clone()));
        Self {
            engine,
            admin,
            base,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    /// A client that sends no token.
    pub fn anon(&self) -> Client {
        Client::new(&self.base, None)
    }

    /// A client with `token`.
    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token.to_owned()))
    }

    /// Signs `name` in over HTTP with its demo password; the client carries the session token.
    pub async fn login(&self, name: &str) -> Client {
        let t: Value = self
            .anon()
            .post(
                "/api/v1/auth/login",
                &json!({"user": name, "password": password_of(name)}),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} signs in: {e}"));
        self.client(t["token"].as_str().expect("a sign-in shows its token"))
    }

    /// A new API token of `name`, minted by the engine (so that minting does not depend on
    /// the routes under test, nor on the sign-in rate limit).
    pub async fn fresh_token(&self, name: &str, role: SystemRole) -> String {
        // Minted as if right after a step-up (the token itself carries no proof).
        let actor = Actor {
            mfa_at: Some(self.engine.now()),
            ..Actor::internal(Name::new(name).expect("name"), role)
        };
        let t = self
            .engine
            .create_api_token(&actor, "test", None, Scope::Full)
            .await
            .unwrap_or_else(|e| panic!("a token for {name}: {e}"));
        t.token.expose().clone()
    }

    /// A new provisioning token (scope `scim`) of the admin.
    pub async fn fresh_scim_token(&self) -> String {
        let actor = Actor::internal(Name::new("admin").expect("name"), SystemRole::Admin);
        let t = self
            .engine
            .create_api_token(&actor, "scim", None, Scope::Scim)
            .await
            .unwrap_or_else(|e| panic!("a provisioning token: {e}"));
        t.token.expose().clone()
    }

    /// A new database token (scope `db`, for the PostgreSQL gateway only) of `name`.
    pub async fn fresh_db_token(&self, name: &str) -> String {
        let actor = Actor::internal(Name::new(name).expect("name"), SystemRole::User);
        let t = self
            .engine
            .create_db_token(&actor, None)
            .await
            .unwrap_or_else(|e| panic!("a database token: {e}"));
        t.token.expose().clone()
    }

    /// Adds an identity as admin, with the demo password convention, in `groups`.
    pub async fn add_identity(&self, name: &str, role: &str, groups: &[&str]) {
        let _: Value = self
            .admin
            .post(
                "/api/v1/identities",
                &json!({"name": name, "role": role, "password": password_of(name),
                        "email": format!("{name}@example.com")}),
            )
            .await
            .unwrap_or_else(|e| panic!("admin adds {name}: {e}"));
        for g in groups {
            let _: Value = self
                .admin
                .post(
                    &format!("/api/v1/groups/{g}/members"),
                    &json!({"identity": name}),
                )
                .await
                .unwrap_or_else(|e| panic!("admin adds {name} to {g}: {e}"));
        }
    }

    /// How many audit records the chain holds (and that it verifies).
    pub async fn audit_count(&self) -> u64 {
        let v: Value = self
            .admin
            .get("/api/v1/audit/verify")
            .await
            .expect("audit verify");
        assert_eq!(v["intact"], json!(true), "the audit chain verifies: {v}");
        v["records"].as_u64().expect("records")
    }

    /// The audit records after position `after`, oldest first.
    pub async fn audit_after(&self, after: u64) -> Vec<Value> {
        let v: Value = self
            .admin
            .get(&format!("/api/v1/audit?after={after}&limit=10000"))
            .await
            .expect("audit list");
        v.as_array().expect("audit is a list").clone()
    }

    /// Every request and every grant, as the admin sees them.
    pub async fn requests_and_grants(&self) -> (Vec<Value>, Vec<Value>) {
        let r: Value = self
            .admin
            .get("/api/v1/requests?filter=all")
            .await
            .expect("all requests");
        let g: Value = self
            .admin
            .get("/api/v1/grants?all=true")
            .await
            .expect("all grants");
        (
            r.as_array().expect("list").clone(),
            g.as_array().expect("list").clone(),
        )
    }

    /// The Prometheus text at /metrics (no token needed).
    pub async fn metrics_text(&self) -> String {
        let resp = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("the server answers");
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().await.expect("the metrics text")
    }

    /// A request the client cannot make: raw bytes, any content type (or none).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        let resp = req.body(body).send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("the answer's body");
        let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "the answer ({status}) is JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, v)
    }
}

/// Sends `method path` with an optional JSON body.
pub async fn call(c: &Client, method: Method, path: &str, body: Option<Value>) -> Outcome {
    c.send::<Value, Value>(method, path, body.as_ref()).await
}

/// Asserts that `r` failed with `status` and `code`, and returns the error.
#[track_caller]
pub fn expect_err(r: Outcome, status: u16, code: &str) -> ClientError {
    expect_err_in(r, status, code, "")
}

/// As [`expect_err`], naming the call in the failure.
#[track_caller]
pub fn expect_err_in(r: Outcome, status: u16, code: &str, call: &str) -> ClientError {
    match r {
        Ok(v) => panic!("{call}: expected {status} {code}, got success: {v}"),
        Err(e) => {
            assert_eq!(
                (e.status, e.code.as_str()),
                (Some(status), code),
                "{call}: expected {status} {code}, got {:?} {}: {}",
                e.status,
                e.code,
                e.message
            );
            e
        }
    }
}

/// Asserts that `r` succeeded, and returns its JSON.
#[track_caller]
pub fn expect_ok(r: Outcome, what: &str) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => panic!(
            "{what}: expected success, got {:?} {}: {}",
            e.status, e.code, e.message
        ),
    }
}

/// The body of a request for `target`/`role` for `duration`, with `reason` and `ticket`.
pub fn request_body(
    target: &str,
    role: &str,
    duration: &str,
    reason: &str,
    ticket: Option<&str>,
) -> Value {
    let mut b = json!({"target": target, "role": role, "duration": duration, "reason": reason});
    if let Some(t) = ticket {
        b["ticket"] = json!(t);
    }
    b
}

/// Makes a request and returns its JSON (status 201 is success to the client).
pub async fn make_request(c: &Client, body: &Value) -> Value {
    expect_ok(
        c.post::<_, Value>("/api/v1/requests", body).await,
        &format!("request {body}"),
    )
}

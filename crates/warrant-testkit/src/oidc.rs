//! A throwaway OpenID provider for tests: PyPI `oidc-provider-mock`, run as a real server.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use url::Url;

use crate::error::tail;
use crate::{FixtureError, try_free_port};

/// Overrides the provider executable.
const EXE_ENV: &str = "WARRANT_TEST_OIDC_PROVIDER";
/// Where `scripts/deps/oidc.sh` puts its venv (under `$WARRANT_TOOLS_DIR`, by default
/// `$HOME/.cache/warrant-tools`).
const TOOLS_ENV: &str = "WARRANT_TOOLS_DIR";
const VENV_EXE: &str = "oidc-venv/bin/oidc-provider-mock";
const INSTALL_FIX: &str = "run `bash scripts/deps/oidc.sh` (installs PyPI oidc-provider-mock into \
     ${WARRANT_TOOLS_DIR:-$HOME/.cache/warrant-tools}/oidc-venv; needs python3 with venv), or \
     point $WARRANT_TEST_OIDC_PROVIDER at an oidc-provider-mock executable";
/// How many times a start is retried when another process took the port first.
const START_ATTEMPTS: usize = 5;
/// How long the server may take to answer its discovery document (Python imports are slow).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart on the same port keeps trying while the port is not free yet.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops the server and removes the temp dir once the test process is gone, however it ends: it
/// blocks reading a pipe whose only writer is the test process and acts on end of file. The
/// server's pid is read from `$1/pid` at that moment, so restarts are covered. `$1` = temp dir.
const WATCHDOG_SCRIPT: &str =
    r#"cat >/dev/null; [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null; rm -rf "$1""#;

/// How the provider is started.
#[derive(Debug, Clone)]
pub struct OidcProviderOptions {
    /// Predefined users, each a JSON object with `sub` and the claims to put in its ID tokens
    /// (e.g. `email`, `groups`, `amr`). Any other `sub` can sign in too, with `email = sub`.
    pub users: Vec<Value>,
    /// Refuse authorization requests without a `nonce` (default: true).
    pub require_nonce: bool,
    /// Refuse clients that were not registered with [`OidcProviderFixture::register_client`]
    /// (default: false: any client id and secret is accepted at the token endpoint).
    pub require_registration: bool,
    /// Lifetime of access and ID tokens in seconds (the mock's default: one hour).
    pub token_max_age_secs: Option<u64>,
}

impl Default for OidcProviderOptions {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            require_nonce: true,
            require_registration: false,
            token_max_age_secs: None,
        }
    }
}

/// A throwaway OpenID provider on `http://127.0.0.1:PORT`: PyPI `oidc-provider-mock`, a real
/// authorization server (authlib) with discovery, RS256-signed ID tokens, dynamic client
/// registration, userinfo and a one-field login form.
///
/// What the mock does, read from its source (0.3.4): it generates a new RSA signing key at each
/// start and publishes only that one key, without `kid` in the ID token header, so
/// [`restart_with_new_keys`](Self::restart_with_new_keys) (same port, same issuer) is a key
/// rotation in which the old key disappears. Its issuer is the URL the request came to
/// (`http://127.0.0.1:PORT`), it does not enforce PKCE (the challenge is accepted and ignored),
/// it refuses a used authorization code (`invalid_grant`) and it has no device authorization
/// endpoint. All state (registered clients, users set at run time, codes, tokens) is in memory.
///
/// The executable comes from `$WARRANT_TEST_OIDC_PROVIDER`, else from the venv that
/// `scripts/deps/oidc.sh` installs; when neither exists the fixture fails with a
/// [`FixtureError`] saying so. The server's output goes to a log in a fresh
/// `/tmp/warrant-oidc.*` directory ([`log_tail`](Self::log_tail)). Dropping the fixture stops the
/// server and removes the directory; a watchdog process does the same if the test process dies
/// without dropping it.
///
/// ```no_run
/// # async fn f() -> Result<(), warrant_testkit::FixtureError> {
/// use warrant_testkit::OidcProviderFixture;
/// let idp = OidcProviderFixture::start(serde_json::json!(
///     {"sub": "alice", "email": "alice@example.com", "groups": ["dba"]}
/// )).await?;
/// let (client_id, secret) = idp.register_client(&["http://127.0.0.1:1/cb"]).await?;
/// // … build the authorize URL for client_id with a relying party, then:
/// # let authorize_url = String::new();
/// // http://127.0.0.1:1/cb?code=…&state=…
/// let callback = idp.login(&authorize_url, "alice").await?;
/// # let _ = (secret, callback);
/// # Ok(())
/// # }
/// ```
pub struct OidcProviderFixture {
    port: u16,
    options: OidcProviderOptions,
    exe: PathBuf,
    http: reqwest::Client,
    /// Claims set with `set_user_claims`, replayed after a restart.
    user_claims: Mutex<BTreeMap<String, Value>>,
    guard: Guard,
}

impl OidcProviderFixture {
    /// Starts a provider with one predefined user (a JSON object with `sub`) or several (an
    /// array of them), requiring a nonce; it stops when the fixture is dropped.
    pub async fn start(user_claims: Value) -> Result<Self, FixtureError> {
        let users = match user_claims {
            Value::Array(users) => users,
            Value::Null => Vec::new(),
            user => vec![user],
        };
        Self::start_with(OidcProviderOptions {
            users,
            ..OidcProviderOptions::default()
        })
        .await
    }

    /// Starts a provider with the given options.
    pub async fn start_with(options: OidcProviderOptions) -> Result<Self, FixtureError> {
        for user in &options.users {
            if !user.get("sub").is_some_and(Value::is_string) {
                return Err(FixtureError::new(format!(
                    "user claims {user} have no string \"sub\""
                ))
                .with_fix("give every user a \"sub\", e.g. {\"sub\": \"alice\", \"email\": …}"));
            }
        }
        let exe = find_exe()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                FixtureError::new("could not build an HTTP client").with_detail(e.to_string())
            })?;
        let dir = make_temp_dir()?;
        let mut guard = Guard {
            dir,
            server: None,
            watchdog: None,
        };
        guard.watchdog = Some(spawn_watchdog(&guard.dir)?);

        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = try_free_port()?;
            match launch(&exe, &options, port, &mut guard, &http, READY_TIMEOUT).await {
                Ok(()) => {
                    return Ok(Self {
                        port,
                        options,
                        exe,
                        http,
                        user_claims: Mutex::new(BTreeMap::new()),
                        guard,
                    });
                }
                Err(Launch::PortTaken(e)) => last_error = Some(e),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| FixtureError::new("the OpenID provider was never started")))
    }

    /// The issuer, `http://127.0.0.1:PORT` (no trailing slash), as the discovery document and
    /// the ID tokens state it.
    #[must_use]
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TCP port the provider listens on (127.0.0.1 only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Registers a confidential client (OAuth 2.0 dynamic client registration, RFC 7591,
    /// `client_secret_basic`) allowed to use `redirect_uris`; returns its client id and secret.
    pub async fn register_client(
        &self,
        redirect_uris: &[&str],
    ) -> Result<(String, String), FixtureError> {
        let url = format!("{}/oauth2/clients", self.issuer());
        let body = json!({ "redirect_uris": redirect_uris });
        let response = self.http.post(&url).json(&body).send().await;
        let (status, text) = self.read(response, "POST", &url).await?;
        let parsed: Option<(String, String)> =
            serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                Some((
                    v.get("client_id")?.as_str()?.to_owned(),
                    v.get("client_secret")?.as_str()?.to_owned(),
                ))
            });
        match parsed {
            Some(pair) if status == 201 => Ok(pair),
            _ => Err(self.http_error(
                format!("client registration answered {status}, without client_id and secret"),
                &text,
            )),
        }
    }

    /// Signs `sub` in at `authorize_url` (an authorization request URL built by a relying
    /// party), headless: posts the login form's `sub` field as a person would, and returns the
    /// redirect the provider answers with (not followed): the relying party's redirect URI with
    /// `code` and `state`, or with `error` when the provider refused the request.
    pub async fn login(&self, authorize_url: &str, sub: &str) -> Result<String, FixtureError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sub", sub)
            .finish();
        let response = self
            .http
            .post(authorize_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        let response = response.map_err(|e| {
            FixtureError::new(format!("POST {authorize_url} failed"))
                .with_detail(format!("{e}\n--- provider log ---\n{}", self.log_tail(20)))
        })?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match location {
            Some(location) if status.is_redirection() => Ok(location),
            _ => {
                let text = response.text().await.unwrap_or_default();
                Err(self.http_error(
                    format!(
                        "the login form at {authorize_url} answered {status} instead of a \
                         redirect to the client"
                    ),
                    &text,
                ))
            }
        }
    }

    /// Replaces the claims of user `sub` (a JSON object, without `sub`) for the next logins.
    /// Remembered across [`restart_with_new_keys`](Self::restart_with_new_keys).
    pub async fn set_user_claims(&self, sub: &str, claims: Value) -> Result<(), FixtureError> {
        let mut claims = claims;
        if let Value::Object(map) = &mut claims {
            map.remove("sub");
        } else {
            return Err(FixtureError::new(format!(
                "claims for {sub:?} must be a JSON object, not {claims}"
            )));
        }
        self.put_user(sub, &claims).await?;
        self.user_claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(sub.to_owned(), claims);
        Ok(())
    }

    /// Revokes every access and refresh token of `sub` (`POST /users/<sub>/revoke-tokens`).
    pub async fn revoke_tokens(&self, sub: &str) -> Result<(), FixtureError> {
        let url = self.user_url(sub, Some("revoke-tokens"))?;
        let response = self.http.post(url.as_str()).send().await;
        let (status, text) = self.read(response, "POST", url.as_str()).await?;
        if status != 204 {
            return Err(self.http_error(format!("token revocation answered {status}"), &text));
        }
        Ok(())
    }

    /// Restarts the provider on the same port, so with the same issuer: it comes back with a
    /// new RSA signing key and publishes only that one (the old key disappears from its JWKS).
    ///
    /// Everything else the mock keeps in memory is lost too: registered clients (with
    /// registration not required, their ids and secrets are still accepted, as any are),
    /// authorization codes and tokens. Predefined users and claims set with
    /// [`set_user_claims`](Self::set_user_claims) are restored.
    pub async fn restart_with_new_keys(&mut self) -> Result<(), FixtureError> {
        self.guard.stop_server();
        let deadline = Instant::now() + RESTART_TIMEOUT;
        loop {
            match launch(
                &self.exe,
                &self.options,
                self.port,
                &mut self.guard,
                &self.http,
                READY_TIMEOUT,
            )
            .await
            {
                Ok(()) => break,
                Err(Launch::PortTaken(e)) => {
                    if Instant::now() > deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        let claims = self
            .user_claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for (sub, claims) in &claims {
            self.put_user(sub, claims).await?;
        }
        Ok(())
    }

    /// The temp dir: `log` (the server's output) and `pid`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// The last `lines` lines of the server's output (empty if it cannot be read).
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        fs::read_to_string(self.guard.dir.join("log"))
            .map(|log| tail(&log, lines))
            .unwrap_or_default()
    }

    async fn put_user(&self, sub: &str, claims: &Value) -> Result<(), FixtureError> {
        let url = self.user_url(sub, None)?;
        let response = self.http.put(url.as_str()).json(claims).send().await;
        let (status, text) = self.read(response, "PUT", url.as_str()).await?;
        if status != 204 {
            return Err(self.http_error(
                format!("setting the claims of {sub:?} answered {status}"),
                &text,
            ));
        }
        Ok(())
    }

    /// `<issuer>/users/<sub>[/<action>]`, with `sub` escaped as one path segment.
    fn user_url(&self, sub: &str, action: Option<&str>) -> Result<Url, FixtureError> {
        let mut url = Url::parse(&self.issuer())
            .map_err(|e| FixtureError::new("bad issuer URL").with_detail(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|()| FixtureError::new("the issuer URL cannot have a path"))?
            .extend(["users", sub])
            .extend(action);
        Ok(url)
    }

    async fn read(
        &self,
        response: reqwest::Result<reqwest::Response>,
        method: &str,
        url: &str,
    ) -> Result<(u16, String), FixtureError> {
        let response = response.map_err(|e| {
            FixtureError::new(format!("{method} {url} failed"))
                .with_detail(format!("{e}\n--- provider log ---\n{}", self.log_tail(20)))
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            FixtureError::new(format!("{method} {url}: reading the answer failed"))
                .with_detail(e.to_string())
        })?;
        Ok((status, text))
    }

    fn http_error(&self, what: String, body: &str) -> FixtureError {
        FixtureError::new(what).with_detail(format!(
            "{}\n--- provider log ---\n{}",
            tail(body, 20),
            self.log_tail(20)
        ))
    }
}

impl std::fmt::Debug for OidcProviderFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviderFixture")
            .field("issuer", &self.issuer())
            .field("dir", &self.guard.dir)
            .field("exe", &self.exe)
            .finish_non_exhaustive()
    }
}

/// Owns the temp dir, the server and the watchdog; cleans up all three on drop.
struct Guard {
    dir: PathBuf,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl Guard {
    fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = fs::remove_file(self.dir.join("pid"));
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_server();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            // End of file on its stdin: it finds no pid file, exits, and is reaped here.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

enum Launch {
    /// Someone else holds the port: try another (or, on restart, wait).
    PortTaken(FixtureError),
    Failed(FixtureError),
}

/// Starts the server on `port` and waits until it serves its discovery document.
async fn launch(
    exe: &Path,
    options: &OidcProviderOptions,
    port: u16,
    guard: &mut Guard,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<(), Launch> {
    let log_path = guard.dir.join("log");
    let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| {
            Launch::Failed(
                FixtureError::new(format!("could not open {}", log_path.display()))
                    .with_detail(e.to_string()),
            )
        })?;
    let log_err = log.try_clone().map_err(|e| {
        Launch::Failed(
            FixtureError::new("could not duplicate the log file").with_detail(e.to_string()),
        )
    })?;
    let mut cmd = Command::new(exe);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--require-nonce", bool_arg(options.require_nonce)])
        .args([
            "--require-registration",
            bool_arg(options.require_registration),
        ]);
    if let Some(secs) = options.token_max_age_secs {
        cmd.args(["--token-max-age", &secs.to_string()]);
    }
    for user in &options.users {
        cmd.arg("--user-claims").arg(user.to_string());
    }
    cmd.env("NO_COLOR", "1")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(&guard.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    let child = cmd.spawn().map_err(|e| {
        Launch::Failed(
            FixtureError::new(format!("could not start {}", exe.display()))
                .with_command(&cmd)
                .with_detail(e.to_string())
                .with_fix(INSTALL_FIX),
        )
    })?;
    let pid = child.id();
    guard.server = Some(child);
    if let Err(e) = fs::File::create(guard.dir.join("pid")).and_then(|mut f| write!(f, "{pid}")) {
        guard.stop_server();
        return Err(Launch::Failed(
            FixtureError::new("could not write the provider's pid file").with_detail(e.to_string()),
        ));
    }

    let discovery = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    let deadline = Instant::now() + timeout;
    loop {
        let exited = guard
            .server
            .as_mut()
            .and_then(|server| server.try_wait().ok().flatten());
        if let Some(status) = exited {
            guard.server = None;
            let _ = fs::remove_file(guard.dir.join("pid"));
            let output = read_from(&log_path, log_start);
            let e = FixtureError::new(format!("the OpenID provider exited at start ({status})"))
                .with_command(&cmd)
                .with_detail(&output)
                .with_fix(INSTALL_FIX);
            return Err(if output.contains("Address already in use") {
                Launch::PortTaken(e)
            } else {
                Launch::Failed(e)
            });
        }
        if let Ok(response) = http.get(&discovery).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            guard.stop_server();
            return Err(Launch::Failed(
                FixtureError::new(format!(
                    "the OpenID provider did not serve {discovery} within {} s",
                    timeout.as_secs()
                ))
                .with_command(&cmd)
                .with_detail(read_from(&log_path, log_start)),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn bool_arg(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// `$WARRANT_TEST_OIDC_PROVIDER`, else the venv of `scripts/deps/oidc.sh`.
fn find_exe() -> Result<PathBuf, FixtureError> {
    if let Some(exe) = std::env::var_os(EXE_ENV) {
        let exe = PathBuf::from(exe);
        if exe.is_file() {
            return Ok(exe);
        }
        return Err(FixtureError::new(format!(
            "${EXE_ENV} is {}, which is not a file",
            exe.display()
        ))
        .with_fix(format!("unset {EXE_ENV} or point it at oidc-provider-mock")));
    }
    let tools = match std::env::var_os(TOOLS_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/warrant-tools"))
            .ok_or_else(|| {
                FixtureError::new("neither $WARRANT_TOOLS_DIR nor $HOME is set")
                    .with_fix(INSTALL_FIX)
            })?,
    };
    let exe = tools.join(VENV_EXE);
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(FixtureError::new(format!(
            "the OpenID provider oidc-provider-mock is not installed ({} is missing)",
            exe.display()
        ))
        .with_fix(INSTALL_FIX))
    }
}

/// A new `/tmp/warrant-oidc.<pid>.<n>` directory only we can enter.
fn make_temp_dir() -> Result<PathBuf, FixtureError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("warrant-oidc.{}.{n}", std::process::id()));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            // Left over by an earlier process with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(
                    FixtureError::new(format!("could not create {}", dir.display()))
                        .with_detail(e.to_string()),
                );
            }
        }
    }
}

fn spawn_watchdog(dir: &Path) -> Result<Child, FixtureError> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", WATCHDOG_SCRIPT, "warrant-oidc-watchdog"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().map_err(|e| {
        FixtureError::new("could not start the OpenID provider fixture's watchdog")
            .with_command(&cmd)
            .with_detail(e.to_string())
            .with_fix("needs `sh`")
    })
}

/// What was appended to `path` after byte `offset`.
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

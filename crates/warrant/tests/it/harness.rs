//! The harness: a real `warrant serve` in a temp dir on a free loopback port, and the real CLI
//! run against it as one person or another.
//!
//! Every wait is bounded: the server must answer `/healthz` within [`START_TIMEOUT`], stop within
//! [`STOP_TIMEOUT`], and every CLI run must finish within [`CLI_TIMEOUT`]; a child that overstays
//! is killed (by its own handle) and the test fails saying so.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Seek, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_warrant");
/// How long a start may take until `/healthz` answers.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop (SIGTERM) may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one CLI run may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a start is retried when another process took the free port first.
const PORT_ATTEMPTS: usize = 3;

/// The demo organisation, as the README's walkthrough and `warrant serve --demo` use it.
pub const DEMO_ORG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/examples/demo-org.yaml"
);

/// A `Command` for the binary that inherits no `WARRANT_*` setting from the developer's shell.
pub fn warrant_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WARRANT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("XDG_CONFIG_HOME").env("NO_COLOR", "1");
    cmd
}

/// Waits for `child` at most `timeout`, polling; `None` when it is still running.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("cannot wait for process {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// One HTTP GET of `/healthz`; true when it answers 200 with status ok.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(250),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.contains(r#""status":"ok""#)
}

/// A running `warrant serve`; killed (SIGKILL) on drop if still running.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its stdout and stderr.
    log: PathBuf,
}

impl Server {
    /// Starts `warrant serve --data-dir DATA --listen 127.0.0.1:PORT EXTRA...` and waits until
    /// `/healthz` answers. Its output goes to a log file in `logs`.
    pub fn start(data_dir: &Path, logs: &Path, extra: &[&str]) -> Self {
        Self::start_env(data_dir, logs, extra, &[])
    }

    /// [`start`](Self::start) with extra environment variables for the server.
    pub fn start_env(data_dir: &Path, logs: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = warrant_testkit::free_port();
            let n = STARTS.fetch_add(1, Ordering::Relaxed);
            let log = logs.join(format!("serve-{n}-{port}.log"));
            let file =
                File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
            let mut cmd = warrant_command();
            cmd.arg("serve")
                .arg("--data-dir")
                .arg(data_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(extra)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(file.try_clone().expect("clone log handle"))
                .stderr(file);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Some(status) = wait_bounded(&mut child, Duration::ZERO) {
                    last_log = fs::read_to_string(&log).unwrap_or_default();
                    if last_log.contains("cannot listen") {
                        break; // someone took the port meanwhile: try another
                    }
                    panic!("warrant serve exited during start ({status}):\n{last_log}");
                }
                if healthy(port) {
                    return Self {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        log,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "warrant serve did not answer /healthz within {START_TIMEOUT:?}:\n{}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                sleep(Duration::from_millis(25));
            }
        }
        panic!("warrant serve found no free port in {PORT_ATTEMPTS} attempts:\n{last_log}");
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it as an operator would (`kill -TERM PID`) and expects a clean exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(sent.success(), "kill -TERM {pid} failed");
        match wait_bounded(&mut self.child, STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "warrant serve exited with {status} after SIGTERM:\n{}",
                self.log()
            ),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "warrant serve did not stop within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
        }
    }

    /// Waits for the server to exit by itself (e.g. an injected crash); its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        wait_bounded(&mut self.child, timeout)
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A no-op when it was already reaped (std remembers the exit status).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who runs a CLI command: a config dir of their own (where `warrant login` saves), and maybe
/// a token given through `WARRANT_TOKEN`.
#[derive(Debug, Clone)]
pub struct Who {
    /// `WARRANT_CONFIG_DIR`.
    pub config_dir: PathBuf,
    /// `WARRANT_TOKEN`, if set.
    pub token: Option<String>,
}

/// A finished CLI run.
pub struct Run {
    args: Vec<String>,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`warrant {}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Run {
    /// Asserts exit 0; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success:\n{self}");
        &self.stdout
    }

    /// Asserts exit 0 and parses stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Asserts exit 0 and a JSON array on stdout; returns its items.
    #[track_caller]
    pub fn json_array(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(items) => items,
            other => panic!("expected a JSON array, got {other}:\n{self}"),
        }
    }

    /// Asserts a non-zero exit; returns stderr followed by stdout (where the message is).
    #[track_caller]
    pub fn fails(&self) -> String {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a failure:\n{self}"
        );
        format!("{}{}", self.stderr, self.stdout)
    }
}

/// Runs `warrant ARGS` against `server_url` as `who`, with `stdin` on standard input.
pub fn warrant(server_url: &str, who: &Who, args: &[&str], stdin: Option<&str>) -> Run {
    let stdout = tempfile::tempfile().expect("temp file for stdout");
    let stderr = tempfile::tempfile().expect("temp file for stderr");
    let mut cmd = warrant_command();
    cmd.args(args)
        .env("WARRANT_SERVER", server_url)
        .env("WARRANT_CONFIG_DIR", &who.config_dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(stdout.try_clone().expect("clone stdout handle"))
        .stderr(stderr.try_clone().expect("clone stderr handle"));
    if let Some(token) = &who.token {
        cmd.env("WARRANT_TOKEN", token);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        // The command may exit before reading (a usage error): a broken pipe is its answer.
        let _ = pipe.write_all(input.as_bytes());
    }
    let Some(status) = wait_bounded(&mut child, CLI_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`warrant {}` did not finish within {CLI_TIMEOUT:?}",
            args.join(" ")
        );
    };
    let read = |mut f: File| {
        let mut s = String::new();
        f.rewind().expect("rewind output");
        f.read_to_string(&mut s).expect("read output");
        s
    };
    Run {
        args: args.iter().map(|s| (*s).to_owned()).collect(),
        code: status.code(),
        stdout: read(stdout),
        stderr: read(stderr),
    }
}

/// A test's world: its temp dir (data dir, logs, one config dir per person) and its server.
pub struct World {
    root: TempDir,
    /// `--data-dir` of the server.
    pub data_dir: PathBuf,
    /// The server (replaced by [`World::restart`]).
    pub server: Server,
    serve_args: Vec<String>,
}

impl World {
    /// A server seeded with the demo organisation.
    pub fn demo() -> Self {
        Self::start(&["--demo"])
    }

    /// A fresh server with nothing but the bootstrap admin.
    pub fn plain() -> Self {
        Self::start(&[])
    }

    /// A server started with `extra` serve arguments.
    pub fn start(extra: &[&str]) -> Self {
        let root = tempfile::Builder::new()
            .prefix("warrant-it.")
            .tempdir()
            .expect("temp dir");
        let data_dir = root.path().join("data");
        let logs = root.path().join("logs");
        fs::create_dir(&logs).expect("create logs dir");
        let server = Server::start(&data_dir, &logs, extra);
        Self {
            root,
            data_dir,
            server,
            serve_args: extra.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The temp dir of this test.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Starts the server again on the same data dir with the same arguments (after
    /// [`Server::stop`] or [`Server::kill9`]), on a new free port.
    /// Restarts the server with other `serve` arguments (same data directory).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.server.stop();
        self.serve_args = extra.iter().map(|s| (*s).to_owned()).collect();
        self.restart();
    }

    pub fn restart(&mut self) {
        self.restart_env(&[]);
    }

    /// Starts the server again (after it stopped or crashed) with extra environment variables.
    pub fn restart_env(&mut self, env: &[(&str, &str)]) {
        let args: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        self.server = Server::start_env(&self.data_dir, &self.root.path().join("logs"), &args, env);
    }

    /// Every server log of this test so far (all restarts).
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = fs::read_dir(self.root.path().join("logs")) {
            for e in dir.flatten() {
                out.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    /// Someone with a config dir of their own and no token yet.
    pub fn person(&self, name: &str) -> Who {
        Who {
            config_dir: self.root.path().join(format!("config-{name}")),
            token: None,
        }
    }

    /// The bootstrap admin: the token from `DATA/admin.token` through `WARRANT_TOKEN`.
    pub fn admin(&self) -> Who {
        let path = self.data_dir.join("admin.token");
        let token =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Who {
            token: Some(token.trim().to_owned()),
            ..self.person("admin")
        }
    }

    /// A demo identity signed in with `warrant login --password-stdin` (its token is saved in its
    /// config dir).
    pub fn login(&self, name: &str) -> Who {
        let who = self.person(name);
        self.run_stdin(
            &who,
            &["login", "--user", name, "--password-stdin"],
            &format!("{name}-demo-password\n"),
        )
        .ok();
        who
    }

    /// `warrant ARGS` as `who`.
    pub fn run(&self, who: &Who, args: &[&str]) -> Run {
        warrant(&self.server.url, who, args, None)
    }

    /// `warrant ARGS` as `who` with `stdin`.
    pub fn run_stdin(&self, who: &Who, args: &[&str], stdin: &str) -> Run {
        warrant(&self.server.url, who, args, Some(stdin))
    }
}

/// `v[key]` as a string, failing with the document when it is not one.
#[track_caller]
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v:#}"))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(Duration::from_millis(100));
    }
}

/// A server with the demo organisation whose pg-prod points at `pg` (its superuser as the
/// connector's admin_user), after `edit` of the org file's text; applied, admin secret not set.
pub fn demo_on_postgres(
    pg: &warrant_testkit::PgFixture,
    edit: impl FnOnce(String) -> String,
) -> (World, Who) {
    let w = World::demo();
    let admin = w.admin();
    let org = fs::read_to_string(DEMO_ORG)
        .expect("read the demo org")
        .replace("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port()))
        .replace("admin_user: warrant", &format!("admin_user: {}", pg.user()));
    let file = w.root().join("org.yaml");
    fs::write(&file, edit(org)).expect("write the org file");
    w.run(&admin, &["apply", "-f", file.to_str().expect("utf-8 path")])
        .ok();
    (w, admin)
}

/// `warrant target set-secret pg-prod --password-stdin` with `pg`'s admin password.
pub fn set_pg_secret(w: &World, admin: &Who, pg: &warrant_testkit::PgFixture) {
    w.run_stdin(
        admin,
        &["target", "set-secret", "pg-prod", "--password-stdin"],
        &format!("{}\n", pg.password()),
    )
    .ok();
}

//! The gateway between the real OpenSSH client (`ssh`, `scp`, `sftp`) and a real sshd
//! (`warrant_testkit::SshdFixture`) that trusts a test CA. The test authority knows one person
//! (`tester`, one key) and one target (`fixture`: the sshd, account `warrant-ssh-test`); it
//! denies target `denied`. Runs as root (the sshd fixture needs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warrant_core::{Clock, SystemClock};
use warrant_sshca::{CaKey, CertRequest, Extensions};
use warrant_sshgw::ssh_key::{Certificate, PrivateKey, PublicKey};
use warrant_sshgw::{
    Authority, BoxFuture, Command, Denied, EndReason, Gateway, GatewayConfig, GatewayEvent,
    GatewayHandle, GwError, Login, OfferedKey, Person, RecordingMode, Refusal, Upstream,
};
use warrant_testkit::SshdFixture;

mod recording;
mod window;

/// The person's identity and the target the authority knows.
const PERSON: &str = "tester";
const TARGET: &str = "fixture";
const LOGIN: &str = "tester+fixture";
const GRANT: &str = "g-1";
/// What the authority says to a login for target `denied`.
const DENIAL: &str =
    "no active grant of denied: warrant request denied root --for 1h --reason \"…\"";
/// A bound on every client process a test runs.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// The authority of these tests.
struct TestAuthority {
    person_key: PublicKey,
    ca: CaKey,
    sshd_port: u16,
    account: String,
    /// The host key handed out as pinned.
    host_key: Mutex<PublicKey>,
    /// Seconds from authorization to the grant's end.
    grant_secs: AtomicU64,
    /// The key the upstream certificate is issued for, and its public line.
    upstream_key: PrivateKey,
    upstream_public: String,
    serial: AtomicU64,
    events: Mutex<Vec<GatewayEvent>>,
    /// The role's recording settings handed out with each session.
    recording: Mutex<RecordingMode>,
    record_input: AtomicBool,
}

impl Authority for TestAuthority {
    fn authenticate<'a>(
        &'a self,
        login: &'a Login,
        key: &'a OfferedKey,
    ) -> BoxFuture<'a, Result<Option<Person>, GwError>> {
        Box::pin(async move {
            let known = login.identity == PERSON
                && key.public_key().key_data() == self.person_key.key_data();
            Ok(known.then(|| Person {
                identity: PERSON.to_owned(),
                label: "Test Person".to_owned(),
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a Login,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            if login.target == "slow" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            if login.target != TARGET {
                return Err(Denied::new(if login.target == "denied" {
                    DENIAL.to_owned()
                } else {
                    format!("no target {}", login.target)
                }));
            }
            let now = SystemClock.now();
            let grant_secs = self.grant_secs.load(Ordering::SeqCst);
            let serial = self.serial.fetch_add(1, Ordering::SeqCst);
            let cert = self
                .ca
                .issue(&CertRequest {
                    public_key: &self.upstream_public,
                    principals: vec![self.account.clone()],
                    key_id: format!("{} grant={GRANT}", person.identity),
                    serial,
                    valid_after: u64::try_from(now.unix_seconds() - 60).unwrap(),
                    valid_before: u64::try_from(now.unix_seconds()).unwrap() + 300,
                    extensions: Extensions::default(),
                })
                .map_err(|e| Denied::new(e.to_string()))?;
            Ok(Upstream {
                host: "127.0.0.1".to_owned(),
                port: self.sshd_port,
                host_key: self.host_key.lock().unwrap().clone(),
                account: self.account.clone(),
                key: self.upstream_key.clone(),
                certificate: Certificate::from_openssh(&cert).unwrap(),
                grant_id: GRANT.to_owned(),
                grant_end: now.plus_secs(i64::try_from(grant_secs).unwrap()),
                recording: *self.recording.lock().unwrap(),
                record_input: self.record_input.load(Ordering::SeqCst),
                port_forwarding: false,
                agent_forwarding: false,
            })
        })
    }

    fn event(&self, event: &GatewayEvent) {
        self.events.lock().unwrap().push(event.clone());
    }
}

impl TestAuthority {
    fn events(&self) -> Vec<GatewayEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to 10 s for an event matching `pred`.
    async fn wait_event(&self, what: &str, pred: impl Fn(&GatewayEvent) -> bool) -> GatewayEvent {
        for _ in 0..200 {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} event; got {:#?}", self.events());
    }
}

/// A gateway in front of a real sshd, with the person's key in a temp dir.
struct Gw {
    sshd: SshdFixture,
    authority: Arc<TestAuthority>,
    dir: tempfile::TempDir,
    /// The person's private key file (for `ssh -i`).
    key: PathBuf,
    port: u16,
    handle: GatewayHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), GwError>>>,
}

/// `ssh-keygen -t ed25519` into `dir/name`: (private key file, public key line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

fn read_private(path: &Path) -> PrivateKey {
    PrivateKey::from_openssh(std::fs::read_to_string(path).unwrap()).unwrap()
}

impl Gw {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut GatewayConfig)) -> Self {
        let ca = CaKey::generate().unwrap();
        let sshd = SshdFixture::start(&ca.public_openssh()).unwrap_or_else(|e| panic!("{e}"));
        sshd.set_principals(&[sshd.user()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (key, person_public) = keygen(dir.path(), "person");
        let (upstream_key, upstream_public) = keygen(dir.path(), "upstream");
        let (host_key, _) = keygen(dir.path(), "gateway_host");
        let authority = Arc::new(TestAuthority {
            person_key: PublicKey::from_openssh(&person_public).unwrap(),
            ca,
            sshd_port: sshd.port(),
            account: sshd.user().to_owned(),
            host_key: Mutex::new(PublicKey::from_openssh(&sshd.host_public_key()).unwrap()),
            grant_secs: AtomicU64::new(600),
            upstream_key: read_private(&upstream_key),
            upstream_public,
            serial: AtomicU64::new(1),
            events: Mutex::new(Vec::new()),
            recording: Mutex::new(RecordingMode::Off),
            record_input: AtomicBool::new(false),
        });
        let port = warrant_testkit::free_port();
        let mut config = GatewayConfig::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
            read_private(&host_key),
        );
        tweak(&mut config);
        let gateway = Gateway::bind(config, authority.clone()).await.unwrap();
        assert_eq!(gateway.local_addr().port(), port);
        let handle = gateway.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async {
            let _ = stopped.await;
        }));
        Gw {
            sshd,
            authority,
            dir,
            key,
            port,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The options every client run uses: no config, no agent, no host key checks, this key.
    fn client_options(&self, key: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "ConnectTimeout=10",
            "-i",
        ]
        .map(str::to_owned)
        .to_vec();
        args.push(key.display().to_string());
        args
    }

    /// `ssh [options] -p PORT [extra] LOGIN@127.0.0.1 [command]`.
    fn ssh_command(
        &self,
        login: &str,
        extra: &[&str],
        command: Option<&str>,
    ) -> tokio::process::Command {
        self.ssh_command_with_key(&self.key, login, extra, command)
    }

    fn ssh_command_with_key(
        &self,
        key: &Path,
        login: &str,
        extra: &[&str],
        command: Option<&str>,
    ) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("ssh");
        cmd.args(self.client_options(key))
            .args(["-p", &self.port.to_string()])
            .args(extra)
            .arg(format!("{login}@127.0.0.1"));
        if let Some(command) = command {
            cmd.arg(command);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `ssh … LOGIN@127.0.0.1 command` with `stdin`: (exit code, stdout, stderr).
    async fn ssh(&self, login: &str, extra: &[&str], command: &str, stdin: &[u8]) -> Out {
        let mut cmd = self.ssh_command(login, extra, Some(command));
        run(&mut cmd, stdin).await
    }

    /// Stops the gateway and returns what `run` returned.
    async fn shutdown(&mut self) -> Result<(), GwError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("run returns after shutdown")
            .unwrap()
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A finished client: exit code (-1 for a signal), stdout, stderr.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdin` written and closed; bounded by [`CLIENT_TIMEOUT`].
async fn run(cmd: &mut tokio::process::Command, stdin: &[u8]) -> Out {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        drop(input);
    });
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the client finished in time")
        .unwrap();
    writer.abort();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_and_exit_status_come_through() {
    let gw = Gw::start().await;
    let out = gw
        .ssh(LOGIN, &[], "echo hi; id -un; echo oops >&2; exit 3", b"")
        .await;
    assert_eq!(out.code, 3, "{out:?}\nsshd log:\n{}", gw.sshd.log());
    assert_eq!(out.stdout, format!("hi\n{}\n", gw.sshd.user()));
    assert!(out.stderr.contains("oops"), "{out:?}");

    // The target saw Warrant's certificate, not the person's key.
    let log = gw.sshd.log();
    assert!(
        log.contains(&format!(
            "Accepted certificate ID \"{PERSON} grant={GRANT}\""
        )),
        "{log}"
    );
    let started = gw
        .authority
        .wait_event("started", |e| matches!(e, GatewayEvent::SessionStarted(_)))
        .await;
    let GatewayEvent::SessionStarted(info) = started else {
        unreachable!()
    };
    assert_eq!(
        (
            info.identity.as_str(),
            info.target.as_str(),
            info.account.as_str(),
            info.grant_id.as_str(),
            info.role.as_deref()
        ),
        (PERSON, TARGET, gw.sshd.user(), GRANT, None)
    );
    gw.authority
        .wait_event("exec", |e| {
            matches!(e, GatewayEvent::Command { command: Command::Exec(c), .. } if c.starts_with("echo hi;"))
        })
        .await;
    let ended = gw
        .authority
        .wait_event("ended", |e| matches!(e, GatewayEvent::SessionEnded { .. }))
        .await;
    let GatewayEvent::SessionEnded {
        info,
        reason,
        recording,
    } = ended
    else {
        unreachable!()
    };
    assert_eq!(reason, EndReason::ClientClosed);
    assert_eq!(recording, warrant_sshgw::RecordingOutcome::NotRecorded);
    assert_eq!(info.recording, None);
    assert!(info.bytes_down >= 3, "{info:?}");
    assert!(gw.handle.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_forwarded_both_ways_with_backpressure() {
    let gw = Gw::start().await;
    let out = gw.ssh(LOGIN, &[], "cat", b"abc").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "abc"), "{out:?}");

    // More than every window on the way, in both directions at once.
    let big: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| b"0123456789abcdef\n"[(i % 17) as usize])
        .collect();
    let mut cmd = gw.ssh_command(LOGIN, &[], Some("cat"));
    let out = run(&mut cmd, &big).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.len(), big.len());
    assert!(out.stdout.as_bytes() == big.as_slice());

    // A large download.
    let out = gw
        .ssh(
            LOGIN,
            &[],
            "head -c 20000000 /dev/zero | wc -c; head -c 20000000 /dev/zero",
            b"",
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.len(), "20000000\n".len() + 20_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_key_or_a_malformed_login_is_refused() {
    let gw = Gw::start().await;
    let (other, _) = keygen(gw.dir.path(), "other");
    let mut cmd = gw.ssh_command_with_key(&other, LOGIN, &[], Some("true"));
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{out:?}"
    );

    // An identity alone is the jump host of `ssh -J`: logged in, but no shell there.
    let out = gw.ssh("tester", &[], "true", b"").await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("ssh -J"), "{out:?}");

    for login in ["tester+fixture+root+x", "tester+fix/ture", "te/ster"] {
        let out = gw.ssh(login, &[], "true", b"").await;
        assert_eq!(out.code, 255, "{login}: {out:?}");
        assert!(
            out.stderr.contains("Permission denied (publickey)"),
            "{out:?}"
        );
    }
    assert!(
        !gw.sshd.log().contains("Accepted certificate"),
        "{}",
        gw.sshd.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_shows_its_message_and_fails() {
    let gw = Gw::start().await;
    let out = gw
        .ssh("tester+denied", &[], "echo should-not-run", b"")
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("warrant: {DENIAL}")),
        "{out:?}"
    );
    assert!(!out.stdout.contains("should-not-run"));
    // Also with a pty requested.
    let out = gw.ssh("tester+denied", &["-tt"], "true", b"").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains(DENIAL),
        "{out:?}"
    );
    assert!(
        !gw.authority
            .events()
            .iter()
            .any(|e| matches!(e, GatewayEvent::SessionStarted(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forwarding_is_refused_and_reported() {
    let gw = Gw::start().await;

    // -L: the forward is set up by the client; the gateway refuses the channel on use.
    let local = warrant_testkit::free_port();
    let forward = format!("{local}:127.0.0.1:{}", gw.sshd.port());
    let mut client = gw
        .ssh_command(LOGIN, &["-L", &forward], Some("sleep 20"))
        .spawn()
        .unwrap();
    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = stream.expect("ssh -L listens");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the forwarded connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "no SSH banner from the target may come through");
    gw.authority
        .wait_event("refused -L", |e| {
            matches!(e, GatewayEvent::Refused { refusal: Refusal::LocalForward { host, port }, identity, .. }
                if host == "127.0.0.1" && *port == u32::from(gw.sshd.port()) && identity == PERSON)
        })
        .await;
    client.kill().await.unwrap();

    // -R with ExitOnForwardFailure: the client gives up at once.
    let out = gw
        .ssh(
            LOGIN,
            &["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9"],
            "sleep 20",
            b"",
        )
        .await;
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains("remote port forwarding failed"),
        "{out:?}"
    );
    gw.authority
        .wait_event("refused -R", |e| {
            matches!(
                e,
                GatewayEvent::Refused {
                    refusal: Refusal::RemoteForward { .. },
                    ..
                }
            )
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_and_x11_forwarding_are_refused_and_reported() {
    let gw = Gw::start().await;
    // A real agent for the client to offer (started here, stopped by its handle).
    let socket = gw.dir.path().join("agent.sock");
    let mut agent = tokio::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The usual options but `IdentityAgent=none`, which would hide the agent from the client.
    let mut options = gw.client_options(&gw.key);
    let at = options
        .iter()
        .position(|o| o == "IdentityAgent=none")
        .unwrap();
    options.drain(at - 1..=at);
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args(options)
        .args(["-p", &gw.port.to_string(), "-A", "-X"])
        .arg(format!("{LOGIN}@127.0.0.1"))
        .arg("echo \"agent=[$SSH_AUTH_SOCK] display=[$DISPLAY]\"")
        .env("SSH_AUTH_SOCK", &socket)
        .env("DISPLAY", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = run(&mut cmd, b"").await;
    agent.kill().await.unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "agent=[] display=[]\n", "{out:?}");
    gw.authority
        .wait_event("refused -A", |e| {
            matches!(
                e,
                GatewayEvent::Refused {
                    refusal: Refusal::AgentForward,
                    ..
                }
            )
        })
        .await;
    gw.authority
        .wait_event("refused -X", |e| {
            matches!(
                e,
                GatewayEvent::Refused {
                    refusal: Refusal::X11Forward,
                    ..
                }
            )
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_that_does_not_answer_in_time_refuses_with_a_message() {
    let gw = Gw::start_with(|c| c.authority_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let out = gw.ssh("tester+slow", &[], "true", b"").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("warrant: Warrant did not answer in time"),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_its_grant() {
    let gw = Gw::start().await;
    gw.authority.grant_secs.store(2, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let out = gw
        .ssh(LOGIN, &[], "echo started; sleep 30; echo too-late", b"")
        .await;
    let took = started.elapsed();
    assert_eq!(out.stdout, "started\n", "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("warrant: your grant {GRANT} of {TARGET} ended at")),
        "{out:?}"
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    gw.authority
        .wait_event("ended by the grant", |e| {
            matches!(
                e,
                GatewayEvent::SessionEnded {
                    reason: EndReason::GrantEnded,
                    ..
                }
            )
        })
        .await;
    assert!(gw.handle.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_key_other_than_the_pinned_one_is_refused() {
    let gw = Gw::start().await;
    let (_, impostor) = keygen(gw.dir.path(), "impostor");
    *gw.authority.host_key.lock().unwrap() = PublicKey::from_openssh(&impostor).unwrap();
    let out = gw.ssh(LOGIN, &[], "echo should-not-run", b"").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("presented a host key other than the one Warrant has pinned"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("should-not-run"));
    assert!(!gw.sshd.log().contains("Accepted certificate"));
    gw.authority
        .wait_event("upstream failed", |e| {
            matches!(e, GatewayEvent::UpstreamFailed { error, .. } if error.starts_with("sshgw_upstream_host_key"))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_shell_gets_a_pty() {
    let gw = Gw::start().await;
    let mut cmd = gw.ssh_command(LOGIN, &["-tt"], None);
    cmd.env("TERM", "xterm-256color").stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(b"echo \"T=$TERM\"; tty; exit 7\n")
        .await
        .unwrap();
    // Input stays open until the shell has exited by itself.
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the shell exits")
        .unwrap();
    drop(input);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("T=xterm-256color"), "{stdout}");
    assert!(stdout.contains("/dev/pts/"), "{stdout}");
    gw.authority
        .wait_event("shell", |e| {
            matches!(
                e,
                GatewayEvent::Command {
                    command: Command::Shell,
                    ..
                }
            )
        })
        .await;
}

/// Adds `Subsystem sftp internal-sftp` to the fixture's sshd config (it has none) and makes
/// sshd re-read it (SIGHUP: sshd re-executes itself with the same pid and port).
async fn enable_sftp(sshd: &SshdFixture) {
    let config = sshd.dir().join("sshd_config");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("Subsystem sftp internal-sftp\n");
    std::fs::write(&config, text).unwrap();
    let listening = || sshd.log().matches("Server listening on").count();
    let before = listening();
    let pid = std::fs::read_to_string(sshd.dir().join("sshd.pid")).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..100 {
        if listening() > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sshd did not come back after SIGHUP:\n{}", sshd.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_and_sftp_work_through_the_gateway() {
    let gw = Gw::start().await;
    let local = gw.dir.path().join("payload");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &payload).unwrap();
    let remote_dir = tempfile::Builder::new()
        .prefix("warrant-sshgw-")
        .tempdir_in("/tmp")
        .unwrap();
    // The remote side writes as the test account.
    std::process::Command::new("chmod")
        .arg("777")
        .arg(remote_dir.path())
        .status()
        .unwrap();
    let scp = |extra: &[&str], from: String, to: String| {
        let mut cmd = tokio::process::Command::new("scp");
        cmd.args(gw.client_options(&gw.key))
            .args(["-P", &gw.port.to_string()])
            .args(extra)
            .arg(from)
            .arg(to)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    };
    let remote = |name: &str| format!("{LOGIN}@127.0.0.1:{}/{name}", remote_dir.path().display());

    // Legacy protocol: `scp -t` through exec.
    let out = run(
        &mut scp(&["-O"], local.display().to_string(), remote("legacy")),
        b"",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(remote_dir.path().join("legacy")).unwrap(),
        payload
    );

    // Today's default: the sftp subsystem. The fixture's sshd has none configured, and its
    // refusal reaches the client as it is...
    let out = run(
        &mut scp(&[], local.display().to_string(), remote("sftp")),
        b"",
    )
    .await;
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("subsystem request failed"), "{out:?}");
    // ...until it has one.
    enable_sftp(&gw.sshd).await;
    let out = run(
        &mut scp(&[], local.display().to_string(), remote("sftp")),
        b"",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read(remote_dir.path().join("sftp")).unwrap(),
        payload
    );

    // Download with scp -O (`scp -f`) and with sftp.
    let back = gw.dir.path().join("back-legacy");
    let out = run(
        &mut scp(&["-O"], remote("legacy"), back.display().to_string()),
        b"",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(&back).unwrap(), payload);

    let back = gw.dir.path().join("back-sftp");
    let mut sftp = tokio::process::Command::new("sftp");
    sftp.args(gw.client_options(&gw.key))
        .args(["-P", &gw.port.to_string(), "-b", "-"])
        .arg(format!("{LOGIN}@127.0.0.1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let batch = format!(
        "get {}/sftp {}\n",
        remote_dir.path().display(),
        back.display()
    );
    let out = run(&mut sftp, batch.as_bytes()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read(&back).unwrap(), payload);

    let events = gw.authority.events();
    assert!(events.iter().any(|e| matches!(e, GatewayEvent::Command { command: Command::Exec(c), .. } if c.starts_with("scp -t"))), "{events:#?}");
    assert!(events.iter().any(|e| matches!(e, GatewayEvent::Command { command: Command::Subsystem(s), .. } if s == "sftp")), "{events:#?}");
}

/// Reads `child`'s stdout until it printed `ready\n` (its command runs); returns what it read.
async fn wait_ready(child: &mut tokio::process::Child) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !seen.ends_with(b"ready\n") {
        let n = tokio::time::timeout(CLIENT_TIMEOUT, stdout.read(&mut buf))
            .await
            .expect("the command prints ready")
            .unwrap();
        assert_ne!(n, 0, "no ready: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(seen).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_can_be_killed() {
    let gw = Gw::start().await;
    let mut client = gw
        .ssh_command(LOGIN, &[], Some("echo ready; sleep 30"))
        .spawn()
        .unwrap();
    let ready = wait_ready(&mut client).await;
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = gw.handle.sessions();
        if listed.first().is_some_and(|s| s.channels == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed.len(), 1, "{listed:?}");
    let session = &listed[0];
    assert_eq!(session.identity, PERSON);
    assert_eq!(session.label, "Test Person");
    assert_eq!(session.target, TARGET);
    assert_eq!(session.account, gw.sshd.user());
    assert_eq!(session.grant_id, GRANT);
    assert_eq!(session.upstream, format!("127.0.0.1:{}", gw.sshd.port()));
    assert!(session.key_fingerprint.starts_with("SHA256:"));
    assert!(session.started <= SystemClock.now());
    assert!(session.grant_end > SystemClock.now());

    assert!(gw.handle.kill(session.id, "incident 42"));
    let out = tokio::time::timeout(CLIENT_TIMEOUT, client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warrant: this session was ended: incident 42"),
        "{stderr}"
    );
    assert_eq!(ready + &String::from_utf8_lossy(&out.stdout), "ready\n");
    gw.authority
        .wait_event("killed", |e| {
            matches!(e, GatewayEvent::SessionEnded { reason: EndReason::Killed { reason }, .. } if reason == "incident 42")
        })
        .await;
    assert!(gw.handle.sessions().is_empty());
    assert!(!gw.handle.kill(session.id, "again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sessions_and_returns() {
    let mut gw = Gw::start().await;
    let mut client = gw
        .ssh_command(LOGIN, &[], Some("echo ready; sleep 30"))
        .spawn()
        .unwrap();
    // Shut down once the command runs, not while it is being started (the client would then
    // report its failure and leave before the gateway's message).
    wait_ready(&mut client).await;
    for _ in 0..100 {
        if !gw.handle.sessions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gw.handle.sessions().len(), 1);
    gw.shutdown().await.unwrap();
    let out = tokio::time::timeout(CLIENT_TIMEOUT, client.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the gateway is shutting down"), "{stderr}");
    assert!(gw.handle.sessions().is_empty());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_log_in_is_closed() {
    let gw = Gw::start_with(|c| c.auth_timeout = Duration::from_secs(1)).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after the auth timeout");
    assert!(seen.starts_with(b"SSH-2.0-Warrant"), "{seen:?}");
}

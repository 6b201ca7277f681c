//! `warrant serve --ssh-listen`: the real OpenSSH client through Warrant's gateway to a real
//! sshd, under a grant; refused without one; cut when the grant is revoked; audited.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use warrant_testkit::SshdFixture;

use crate::harness::{DEMO_ORG, World, poll, s};

struct Setup {
    w: World,
    sshd: SshdFixture,
    gw_port: u16,
    key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let gw_port = warrant_testkit::free_port();
    let w = World::start(&["--demo", "--ssh-listen", &format!("127.0.0.1:{gw_port}")]);
    let admin = w.admin();
    let ca = w.run(&admin, &["ssh", "ca"]).ok().trim().to_owned();
    let sshd = SshdFixture::start(&ca).unwrap_or_else(|e| panic!("{e}"));
    let user = sshd.user().to_owned();
    sshd.set_principals(&[&user]).unwrap();
    let org = std::fs::read_to_string(DEMO_ORG)
        .unwrap()
        .replace(
            "    address: 127.0.0.1:2222\n",
            &format!(
                "    address: 127.0.0.1:{}\n    host_key: \"{}\"\n",
                sshd.port(),
                sshd.host_public_key().trim()
            ),
        )
        .replace(
            "        principals: [root]\n        login: root\n",
            &format!(
                "        principals: [root]\n        login: root\n      - name: shell\n        principals: [{user}]\n        login: {user}\n      - name: mfa-shell\n        principals: [{user}]\n        login: {user}\n      - name: tunnel\n        principals: [{user}]\n        login: {user}\n        forwarding: [port]\n      - name: agent-shell\n        principals: [{user}]\n        login: {user}\n        forwarding: [agent]\n"
            ),
        )
        .replace(
            "policies:\n",
            "  - group: ops\n    target: web-1\n    role: shell\n    max_duration: 1h\n    require_reason: true\n  - group: ops\n    target: web-1\n    role: mfa-shell\n    max_duration: 1h\n    require_reason: true\n    require_mfa: true\n  - group: ops\n    target: web-1\n    role: tunnel\n    max_duration: 1h\n    require_reason: true\n  - group: ops\n    target: web-1\n    role: agent-shell\n    max_duration: 1h\n    require_reason: true\npolicies:\n",
        );
    let file = w.root().join("org.yaml");
    std::fs::write(&file, org).unwrap();
    w.run(&admin, &["apply", "-f", file.to_str().unwrap()]).ok();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("carol");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-C", "carol", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let carol = w.login("carol");
    w.run(
        &carol,
        &[
            "ssh-key",
            "add",
            key.with_extension("pub").to_str().unwrap(),
        ],
    )
    .ok();
    Setup {
        w,
        sshd,
        gw_port,
        key,
        _dir: dir,
    }
}

fn ssh(st: &Setup, login: &str, command: &str) -> Command {
    ssh_as(st, &st.key, None, login, command)
}

/// `ssh` through the gateway with `key` (and a certificate for it).
fn ssh_as(
    st: &Setup,
    key: &std::path::Path,
    cert: Option<&std::path::Path>,
    login: &str,
    command: &str,
) -> Command {
    ssh_with(st, key, cert, login, command, "yes")
}

/// `ssh` through the gateway; `batch` is `BatchMode` (`no` lets it answer prompts, through
/// `SSH_ASKPASS`).
fn ssh_with(
    st: &Setup,
    key: &std::path::Path,
    cert: Option<&std::path::Path>,
    login: &str,
    command: &str,
    batch: &str,
) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-p", &st.gw_port.to_string()])
        .args([
            "-o",
            &format!("BatchMode={batch}"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg("-i")
        .arg(key);
    if let Some(c) = cert {
        cmd.arg("-o")
            .arg(format!("CertificateFile={}", c.display()));
    }
    cmd.arg(format!("{login}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null());
    cmd
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn through_the_gateway_under_a_grant_and_cut_when_it_is_revoked() {
    let st = setup();
    let w = &st.w;
    let admin = w.admin();
    let carol = w.login("carol");

    let no_grant = ssh(&st, "carol+web-1", "true").output().unwrap();
    assert!(!no_grant.status.success(), "{}", text(&no_grant));
    assert!(
        String::from_utf8_lossy(&no_grant.stderr).contains("warrant request web-1"),
        "{}",
        text(&no_grant)
    );

    let g = w
        .run(
            &carol,
            &[
                "request", "web-1", "shell", "--for", "30m", "--reason", "deploy", "--json",
            ],
        )
        .json();
    let grant = s(&g["grant"], "id").to_owned();
    let out = ssh(&st, "carol+web-1", "echo hi; id -un; exit 3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("hi") && stdout.contains("warrant-ssh-test"),
        "{}",
        text(&out)
    );

    // The session was recorded (the role records strictly by default), signed and verifiable.
    let rec = poll(Duration::from_secs(10), || {
        let v = w.run(&carol, &["sessions", "--json"]).json_array();
        v.into_iter()
            .find(|x| x["recorded"] == true && !x["ended_at"].is_null())
    })
    .expect("no recorded, ended session");
    let id = s(&rec, "id").to_owned();
    let cast = w.run(&carol, &["recording", "get", &id]).ok().to_owned();
    assert!(
        cast.lines().next().unwrap().contains(r#""version":2"#),
        "{cast}"
    );
    assert!(
        cast.contains("hi") && cast.contains("exec: echo hi"),
        "{cast}"
    );
    let verified = w.run(&admin, &["recording", "verify", &id]).ok().to_owned();
    assert!(verified.contains("is intact"), "{verified}");
    let played = w
        .run(&carol, &["sessions", "play", &id, "--speed", "100"])
        .ok()
        .to_owned();
    assert!(played.contains("hi"), "{played}");
    let erin = w.login("erin");
    let nosy = w.run(&erin, &["recording", "get", &id]).fails();
    assert!(nosy.contains("session_not_found"), "{nosy}");
    // Any change to the file is found.
    let file = w.data_dir.join("recordings").join(format!("{id}.cast"));
    let changed = std::fs::read_to_string(&file).unwrap().replace("hi", "ho");
    std::fs::write(&file, changed).unwrap();
    let tampered = w.run(&admin, &["recording", "verify", &id]).fails();
    assert!(tampered.contains("NOT intact"), "{tampered}");

    // A Warrant-issued certificate for an unregistered key works too, while its grant lasts.
    let other_key = st._dir.path().join("laptop");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(&other_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cert = st._dir.path().join("laptop-cert.pub");
    w.run(
        &carol,
        &[
            "ssh-cert",
            "web-1",
            "shell",
            "--key",
            other_key.with_extension("pub").to_str().unwrap(),
            "-o",
            cert.to_str().unwrap(),
        ],
    )
    .ok();
    let with_cert =
        |st: &Setup| ssh_as(st, &other_key, Some(&cert), "carol+web-1", "echo via-cert");
    let out = with_cert(&st).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("via-cert"),
        "{}",
        text(&out)
    );

    // Someone else's login with carol's key is refused.
    let other = ssh(&st, "erin+web-1", "true").output().unwrap();
    assert!(!other.status.success(), "{}", text(&other));

    // A long session is cut soon after the grant is revoked.
    let mut long = ssh(&st, "carol+web-1", "sleep 60").spawn().unwrap();
    let live = poll(Duration::from_secs(20), || {
        let v = w.run(&admin, &["sessions", "--json"]).json_array();
        v.into_iter().find(|x| x["live"] == true)
    })
    .expect("the session never showed as live");
    assert_eq!(s(&live, "identity"), "carol");
    let revoked_at = Instant::now();
    w.run(&admin, &["revoke", &grant, "--reason", "done"]).ok();
    let status = poll(Duration::from_secs(10), || long.try_wait().unwrap())
        .expect("the session outlived its grant");
    assert!(!status.success());
    assert!(
        revoked_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        revoked_at.elapsed()
    );

    // The revoked grant's certificate opens nothing now.
    let out = with_cert(&st).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));

    let ended = poll(Duration::from_secs(10), || {
        let v = w.run(&admin, &["sessions", "--json"]).json_array();
        v.into_iter()
            .find(|x| x["id"] == live["id"] && x["live"] == false && !x["ended_at"].is_null())
    })
    .expect("the session's end was not recorded");
    assert!(s(&ended, "end_reason").contains("killed"), "{ended}");
    // Carol sees her own sessions, not others'.
    let mine = w.run(&carol, &["sessions", "--json"]).json_array();
    assert!(mine.iter().all(|x| x["identity"] == "carol"), "{mine:?}");
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "200", "--json"])
        .ok()
        .to_owned();
    for kind in [
        "gateway.session_started",
        "gateway.session_ended",
        "gateway.refused",
    ] {
        assert!(audit.contains(kind), "no {kind} in the audit trail");
    }
}

/// A TOTP code of `seed` for the step `offset` steps from now.
fn totp_code(seed: &[u8], offset: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    warrant_iam::totp::code_at(
        seed,
        warrant_iam::totp::Hash::Sha1,
        6,
        now.checked_add_signed(offset * 30).unwrap(),
    )
    .unwrap()
}

/// Waits, if needed, until the current 30-second TOTP step has at least 15 s left.
fn early_in_a_totp_step() {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let into = now % 30;
    if into > 15 {
        std::thread::sleep(Duration::from_secs(30 - into));
    }
}

#[test]
fn a_rule_that_requires_mfa_asks_for_a_code_at_the_gateway() {
    let st = setup();
    let w = &st.w;
    let carol = w.login("carol");
    early_in_a_totp_step();
    let e = w.run(&carol, &["mfa", "enrol", "--json"]).json();
    let seed = warrant_iam::totp::seed_from_base32(s(&e, "secret")).unwrap();
    let confirmed = w
        .run(&carol, &["mfa", "confirm", &totp_code(&seed, -1)])
        .ok()
        .to_owned();
    let recovery: Vec<&str> = confirmed
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim().len() == 19)
        .map(str::trim)
        .collect();
    // The request itself needs a fresh step-up (here with a recovery code).
    w.run(&carol, &["mfa", "verify", recovery[0]]).ok();
    w.run(
        &carol,
        &[
            "request",
            "web-1",
            "mfa-shell",
            "--for",
            "30m",
            "--reason",
            "deploy",
        ],
    )
    .ok();

    // Without a way to answer the prompt (BatchMode), no session.
    let batch = ssh(&st, "carol+web-1+mfa-shell", "true").output().unwrap();
    assert!(!batch.status.success(), "{}", text(&batch));

    // A wrong code, three times: refused.
    let dir = tempfile::tempdir().unwrap();
    let askpass = |code: &str| {
        let path = dir.path().join(format!("askpass-{code}"));
        std::fs::write(&path, format!("#!/bin/sh\necho {code}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    let with_code = |code: &str| {
        let mut c = ssh_with(&st, &st.key, None, "carol+web-1+mfa-shell", "id -un", "no");
        c.env("SSH_ASKPASS", askpass(code))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        c.output().unwrap()
    };
    let wrong = with_code("000000");
    assert!(!wrong.status.success(), "{}", text(&wrong));

    // The right code: the session runs.
    let right = with_code(&totp_code(&seed, 0));
    assert!(right.status.success(), "{}\n{}", text(&right), w.all_logs());
    assert!(
        String::from_utf8_lossy(&right.stdout).contains("warrant-ssh-test"),
        "{}",
        text(&right)
    );
    // The same code again: used once only.
    let replay = with_code(&totp_code(&seed, 0));
    assert!(!replay.status.success(), "{}", text(&replay));

    // The ordinary shell role (its rule asks no MFA) needs no code.
    w.run(
        &carol,
        &[
            "request", "web-1", "shell", "--for", "30m", "--reason", "deploy",
        ],
    )
    .ok();
    let plain = ssh(&st, "carol+web-1+shell", "true").output().unwrap();
    assert!(plain.status.success(), "{}", text(&plain));

    let admin = w.admin();
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "300", "--json"])
        .ok()
        .to_owned();
    assert!(
        audit.contains(r#""purpose":"gateway""#),
        "mfa.verified for the gateway"
    );
}

#[test]
fn port_forwarding_goes_through_only_where_the_role_allows_it() {
    let st = setup();
    let w = &st.w;
    let carol = w.login("carol");
    for role in ["shell", "tunnel"] {
        w.run(
            &carol,
            &[
                "request", "web-1", role, "--for", "30m", "--reason", "tunnel",
            ],
        )
        .ok();
    }
    let to = format!("127.0.0.1:{}", st.sshd.port());
    // `ssh -W` opens a direct-tcpip channel, as `-L` does for each connection: through the
    // target to its own sshd, whose banner comes back.
    let forward = |login: &str| {
        // The gateway test's usual options, with -W before the destination and no command.
        let args: Vec<String> = ssh(&st, login, "")
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut child = Command::new("ssh")
            .args(&args[..args.len() - 2])
            .args(["-W", &to])
            .arg(&args[args.len() - 2])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while Instant::now() < deadline && !out.ends_with(b"\n") {
            match std::io::Read::read(&mut stdout, &mut byte) {
                Ok(1) => out.push(byte[0]),
                _ => break,
            }
        }
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        (String::from_utf8_lossy(&out).into_owned(), text(&o))
    };
    let (banner, log) = forward("carol+web-1+tunnel");
    assert!(banner.starts_with("SSH-2.0-"), "{banner:?}\n{log}");
    let (nothing, log) = forward("carol+web-1+shell");
    assert!(nothing.is_empty(), "{nothing:?}\n{log}");

    let admin = w.admin();
    // Refusals are recorded by a task of their own: the audit may lag a little.
    let audit = poll(Duration::from_secs(10), || {
        let a = w
            .run(&admin, &["audit", "tail", "-n", "300", "--json"])
            .ok()
            .to_owned();
        a.contains("port forwarding to 127.0.0.1").then_some(a)
    })
    .unwrap_or_default();
    assert!(
        audit.contains("port forwarding to 127.0.0.1"),
        "the refusal is audited"
    );
    // The allowed one is in its session's recording.
    let found = poll(Duration::from_secs(10), || {
        let sessions = w.run(&carol, &["sessions", "--json"]).json_array();
        sessions
            .iter()
            .filter(|x| !x["ended_at"].is_null() && x["recorded"] == true)
            .map(|x| {
                w.run(&carol, &["recording", "get", s(x, "id")])
                    .ok()
                    .to_owned()
            })
            .find(|cast| cast.contains(&format!("forward: {to} opened")))
    });
    assert!(found.is_some(), "a recording with the forwarding's marker");
}

#[test]
fn ssh_dash_j_through_the_gateway_is_a_recorded_session_of_its_own() {
    let st = setup();
    let w = &st.w;
    let carol = w.login("carol");
    let config = st._dir.path().join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host gw\n  HostName 127.0.0.1\n  Port {}\n  User carol\n\
             Host web-1\n  ProxyJump gw\n\
             Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n  \
             LogLevel ERROR\n  ConnectTimeout 10\n",
            st.gw_port,
            st.key.display()
        ),
    )
    .unwrap();
    let jump = |login: &str, command: &str| {
        Command::new("ssh")
            .arg("-F")
            .arg(&config)
            .arg(format!("{login}@web-1"))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // No grant: the inner session is refused with what to request.
    let refused = jump("shell", "true");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("warrant request web-1"),
        "{}",
        text(&refused)
    );
    w.run(
        &carol,
        &[
            "request", "web-1", "shell", "--for", "30m", "--reason", "jump",
        ],
    )
    .ok();
    // ROLE@TARGET through the jump host.
    let out = jump("shell", "echo through-the-jump; id -un");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("through-the-jump") && stdout.contains("warrant-ssh-test"),
        "{}",
        text(&out)
    );
    // IDENTITY@TARGET lets the grant pick the role.
    let out = jump("carol", "true");
    assert!(out.status.success(), "{}", text(&out));
    // The jump host alone opens no shell.
    let alone = ssh(&st, "carol", "true").output().unwrap();
    assert!(!alone.status.success(), "{}", text(&alone));
    assert!(
        String::from_utf8_lossy(&alone.stderr).contains("ssh -J"),
        "{}",
        text(&alone)
    );
    // The inner session was recorded like any other.
    let found = poll(Duration::from_secs(10), || {
        w.run(&carol, &["sessions", "--json"])
            .json_array()
            .iter()
            .filter(|x| !x["ended_at"].is_null() && x["recorded"] == true)
            .map(|x| {
                w.run(&carol, &["recording", "get", s(x, "id")])
                    .ok()
                    .to_owned()
            })
            .find(|cast| cast.contains("through-the-jump"))
    });
    assert!(found.is_some(), "the jumped session's recording");
}

#[test]
fn agent_forwarding_goes_through_only_where_the_role_allows_it() {
    let st = setup();
    let w = &st.w;
    let carol = w.login("carol");
    for role in ["shell", "agent-shell"] {
        w.run(
            &carol,
            &[
                "request", "web-1", role, "--for", "30m", "--reason", "agent",
            ],
        )
        .ok();
    }
    // An agent of carol's, holding a key of its own.
    let sock = st._dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        poll(Duration::from_secs(5), || sock.exists().then_some(())).is_some(),
        "ssh-agent started"
    );
    let agent_key = st._dir.path().join("in-agent");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-C", "in-the-agent", "-f"])
        .arg(&agent_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let added = Command::new("ssh-add")
        .arg(&agent_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added));
    let with_agent = |login: &str| {
        let mut c = ssh(&st, login, "ssh-add -l");
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        // The usual options but `IdentityAgent=none` (which turns forwarding off too).
        c = Command::new("ssh");
        c.arg("-A")
            .args(args.iter().map(|a| {
                if a == "IdentityAgent=none" {
                    "IdentityAgent=SSH_AUTH_SOCK"
                } else {
                    a.as_str()
                }
            }))
            .env("SSH_AUTH_SOCK", &sock)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let allowed = with_agent("carol+web-1+agent-shell");
    let refused = with_agent("carol+web-1+shell");
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(
        String::from_utf8_lossy(&allowed.stdout).contains("in-the-agent"),
        "{}",
        text(&allowed)
    );
    let admin = w.admin();
    assert!(!refused.status.success(), "{}", text(&refused));
    let audited = poll(Duration::from_secs(10), || {
        w.run(&admin, &["audit", "tail", "-n", "300", "--json"])
            .ok()
            .contains("agent forwarding")
            .then_some(())
    });
    assert!(audited.is_some(), "the refusal is audited");
}

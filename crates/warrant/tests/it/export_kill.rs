//! Exports that hold up in front of an auditor, and fail whole when they cannot: the server
//! killed (-9) in the middle of `warrant audit export -o FILE` leaves no file and loses no
//! record; a store whose chain does not verify is never exported under a seal; and a bundle
//! counts as vouched for only when checked against a key the auditor names (`--fingerprint`,
//! `--key`), with an exit code of its own when it was not.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit::{Tamper, copy_dir, tamper};
use crate::harness::{Run, Server, Who, World, s, warrant, warrant_command};

/// Identities made per org file, about 420 bytes each (an apply's body must stay under 1 MiB).
const PER_FILE: usize = 2200;
/// A bundle line of one of those identities' records (742 bytes, give or take a digit).
const RECORD_BYTES: usize = 740;
/// How much of the export the test reads before the kill.
const READ_BEFORE_KILL: usize = 64 * 1024;

/// How many org files make a bundle half again the size of what the loopback sockets can hold
/// between the server and the command (the server's send buffer grows up to `tcp_wmem`'s
/// maximum, 4 MiB on Debian; the command's receive buffer starts at `tcp_rmem`'s default;
/// about 4 MB were seen in flight): then the server is still streaming while the test holds
/// the rest back, sized from this machine's settings. Four files (8,800 records, 6.5 MB) on
/// Debian's defaults.
fn files_needed() -> usize {
    let field = |path: &str, i: usize, default: usize| {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| t.split_whitespace().nth(i).and_then(|v| v.parse().ok()))
            .unwrap_or(default)
    };
    let in_flight = field("/proc/sys/net/ipv4/tcp_wmem", 2, 4 << 20)
        + field("/proc/sys/net/ipv4/tcp_rmem", 1, 128 << 10);
    (3 * in_flight / 2)
        .div_ceil(RECORD_BYTES)
        .div_ceil(PER_FILE)
}

/// `warrant audit verify --json` through the server: (records, head), intact.
fn chain(w: &World, who: &Who) -> (u64, String) {
    let r = w.run(who, &["audit", "verify", "--json"]).json();
    assert_eq!(r["intact"], true, "{r:#}");
    (
        r["records"].as_u64().expect("records"),
        s(&r, "head").to_owned(),
    )
}

/// The audit key's fingerprint as `warrant audit verify` shows it on the server.
fn fingerprint(w: &World, who: &Who) -> String {
    let r = w.run(who, &["audit", "verify", "--json"]).json();
    s(&r, "key_fingerprint").to_owned()
}

/// `files` × [`PER_FILE`] identities with the longest names and emails Warrant takes (128 and
/// 254 characters), through `warrant apply`: an audit record each, as large as they come.
fn many_identities(w: &World, admin: &Who, files: usize) {
    for f in 0..files {
        let mut text = String::from("identities:\n");
        for i in f * PER_FILE..(f + 1) * PER_FILE {
            let mut name = format!("u{i:06}-");
            name.push_str(&"x".repeat(128 - name.len()));
            let mut email = format!("{name}.");
            email.push_str(&"y".repeat(254 - email.len() - "@example.com".len()));
            text.push_str(&format!(
                "  - {{ name: {name}, email: {email}@example.com }}\n"
            ));
        }
        let org = w.root().join(format!("many-{f}.yaml"));
        fs::write(&org, text).expect("write the org file");
        w.run(admin, &["apply", "-f", org.to_str().expect("utf-8")])
            .ok();
    }
}

/// `warrant audit export ARGS` as `who`, started and left running.
fn spawn_export(w: &World, who: &Who, args: &[&str]) -> (Child, PathBuf) {
    let err = w.root().join("export.stderr");
    let mut cmd = warrant_command();
    cmd.args(["audit", "export"])
        .args(args)
        .env("WARRANT_SERVER", &w.server.url)
        .env("WARRANT_CONFIG_DIR", &who.config_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&err).expect("stderr file"));
    if let Some(t) = &who.token {
        cmd.env("WARRANT_TOKEN", t);
    }
    (cmd.spawn().expect("start warrant audit export"), err)
}

/// Waits at most `timeout` for `child`; its exit code.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the export") {
            return status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("warrant audit export did not end within {timeout:?}");
        }
        sleep(Duration::from_millis(10));
    }
}

/// The server killed (-9) while `warrant audit export -o FILE` streams a large bundle: the
/// command fails saying the export is incomplete and keeps neither FILE nor FILE.part; after
/// the restart the chain is whole, with the same records and head, and a new export holds
/// every record and verifies offline under the server's key.
///
/// FILE.part is made a named pipe that the test reads from, so the export can only go as fast
/// as the test lets it: after the first 64 KiB the test stops reading, the rest (more than
/// the sockets hold, [`files_needed`]) waits on the server's side, and the kill lands
/// mid-stream every time, however loaded the machine. (The command writes FILE.part through
/// the same `File::create` either way.)
#[test]
fn a_kill_during_an_export_loses_nothing_and_leaves_no_file() {
    let mut w = World::plain();
    let admin = w.admin();
    let files = files_needed();
    many_identities(&w, &admin, files);
    let (n, head) = chain(&w, &admin);
    assert!(n >= (files * PER_FILE) as u64, "{n} records");
    let fp = fingerprint(&w, &admin);

    let file = w.root().join("trail.bundle");
    let part = w.root().join("trail.bundle.part");
    let made = Command::new("mkfifo")
        .arg(&part)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success(), "mkfifo {}", part.display());
    let file_arg = file.to_str().expect("utf-8").to_owned();
    let (mut cli, err) = spawn_export(&w, &admin, &["--since", "1h", "-o", &file_arg]);

    // The pipe opens once the command opens FILE.part for writing.
    let (tx, rx) = mpsc::channel();
    let fifo = part.clone();
    std::thread::spawn(move || {
        let _ = tx.send(File::open(fifo));
    });
    let Ok(opened) = rx.recv_timeout(Duration::from_secs(20)) else {
        let _ = cli.kill();
        let _ = cli.wait();
        // Unblock the opener before failing.
        let _ = fs::OpenOptions::new().write(true).open(&part);
        panic!(
            "the export never opened {}: {}",
            part.display(),
            fs::read_to_string(&err).unwrap_or_default()
        );
    };
    let mut pipe = opened.expect("open the pipe");
    let mut received = vec![0u8; READ_BEFORE_KILL];
    pipe.read_exact(&mut received).unwrap_or_else(|e| {
        panic!(
            "the export ended before {READ_BEFORE_KILL} bytes ({e}): {}",
            fs::read_to_string(&err).unwrap_or_default()
        )
    });
    let header: Value = serde_json::from_slice(
        received
            .split(|b| *b == b'\n')
            .next()
            .expect("a first line"),
    )
    .expect("the header is JSON");
    assert_eq!(header["type"], "header", "{header:#}");

    // Mid-stream: kill -9, then let the command read whatever was already on its way.
    w.server.kill9();
    pipe.read_to_end(&mut received).expect("drain the pipe");
    let code = wait_for(&mut cli, Duration::from_secs(20));
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(
        code,
        Some(2),
        "the export of a killed server did not fail (did the whole export fit in the socket buffers? then make the trail bigger): {stderr}"
    );
    assert!(
        stderr.contains("download_cut") && stderr.contains("incomplete"),
        "not a clear error: {stderr}"
    );
    let text = String::from_utf8_lossy(&received);
    assert!(
        !text.contains(r#""type":"seal""#),
        "the stream got its seal before the kill: the kill did not land mid-stream"
    );
    let got = text
        .lines()
        .filter(|l| l.contains(r#""type":"record""#))
        .count() as u64;
    assert!(got < n, "{got} of {n} records before the kill");
    assert!(!file.exists(), "a cut export took the file's name");
    assert!(
        !part.exists(),
        "the cut export's {} was left behind",
        part.display()
    );

    // Nothing was lost: the same chain, to the same head.
    w.restart();
    assert_eq!(
        chain(&w, &admin),
        (n, head.clone()),
        "the chain after the kill"
    );

    // A new export holds every record and verifies offline under the server's key.
    let again = w.root().join("again.bundle");
    let again_arg = again.to_str().expect("utf-8");
    w.run(
        &admin,
        &["audit", "export", "--since", "1h", "-o", again_arg],
    )
    .ok();
    assert!(!w.root().join("again.bundle.part").exists());
    let report = w
        .run(
            &admin,
            &[
                "audit",
                "verify",
                "--bundle",
                again_arg,
                "--fingerprint",
                &fp,
                "--json",
            ],
        )
        .json();
    assert_eq!(report["chain"]["intact"], true, "{report:#}");
    assert_eq!(report["key_checked"], true, "{report:#}");
    let seal = &report["seal"];
    assert_eq!(seal["records"], n, "{seal:#}");
    assert_eq!(seal["first_seq"], 1, "{seal:#}");
    assert_eq!(seal["last_seq"], n, "{seal:#}");
    assert_eq!(seal["last_hash"], head.as_str(), "{seal:#}");
}

/// A server whose chain does not verify exports no sealed bundle: the stream stops at the
/// break without a seal, the command fails and keeps no file; the unsigned formats stop there
/// too. The untouched store exports and verifies.
#[test]
fn an_export_of_a_tampered_store_stops_without_a_seal() {
    let mut w = World::demo();
    let admin = w.admin();
    let alice = w.login("alice");
    for reason in ["one", "two", "three"] {
        w.run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", reason,
            ],
        )
        .ok();
    }
    // The stop signs the head (a checkpoint).
    w.server.stop();
    let logs = w.root().join("logs");
    for how in [Tamper::Modify, Tamper::Rewrite] {
        let dir = w.root().join(format!("{how:?}"));
        copy_dir(&w.data_dir, &dir);
        let at = tamper(&dir, how);
        let mut server = Server::start(&dir, &logs, &[]);
        let file = w.root().join(format!("{how:?}.bundle"));
        let file_arg = file.to_str().expect("utf-8");
        let run = |args: &[&str]| -> Run { warrant(&server.url, &admin, args, None) };
        let cut = run(&["audit", "export", "-o", file_arg]);
        let msg = cut.fails();
        assert!(msg.contains("download_cut"), "{how:?}: {msg}");
        assert!(
            !file.exists(),
            "{how:?}: a broken piece was kept as {file_arg}"
        );
        assert!(
            !w.root().join(format!("{how:?}.bundle.part")).exists(),
            "{how:?}: FILE.part left behind"
        );
        // To standard output: the records before the break, then the cut; never a seal.
        let out = run(&["audit", "export"]);
        out.fails();
        assert!(!out.stdout.contains(r#""type":"seal""#), "{how:?}: {out}");
        let last = out
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "record")
            .filter_map(|v| v["seq"].as_i64())
            .max()
            .unwrap_or(0);
        assert!(
            last < at,
            "{how:?}: record {last} was exported past the break at {at}"
        );
        let jsonl = run(&["audit", "export", "--format", "jsonl"]);
        jsonl.fails();
        assert!(
            (jsonl.stdout.lines().count() as i64) < at,
            "{how:?}: jsonl went past the break:\n{jsonl}"
        );
        let log = server.log();
        assert!(
            log.contains(&format!("does not verify at record {at}"))
                && log.contains("audit_chain_broken"),
            "{how:?}: the server's log does not say where:\n{log}"
        );
        // `audit verify` finds the same break.
        let verify = run(&["audit", "verify", "--json"]);
        assert_eq!(verify.code, Some(1), "{how:?}: {verify}");
        server.stop();
    }

    // The untouched store exports a bundle that verifies.
    w.restart();
    let fp = fingerprint(&w, &admin);
    let file = w.root().join("whole.bundle");
    let file_arg = file.to_str().expect("utf-8");
    w.run(&admin, &["audit", "export", "-o", file_arg]).ok();
    w.run(
        &admin,
        &[
            "audit",
            "verify",
            "--bundle",
            file_arg,
            "--fingerprint",
            &fp,
        ],
    )
    .ok();
}

/// `warrant audit verify --bundle`: 0 only when the bundle is intact and signed by the key the
/// auditor names; 3 when intact but checked only against the key the bundle names itself (which
/// a forger chooses); 1 when broken or signed by another key; 2 when it cannot be checked.
#[test]
fn a_bundle_is_vouched_for_only_by_a_fingerprint_or_key() {
    let w = World::demo();
    let admin = w.admin();
    let fp = fingerprint(&w, &admin);
    let file = w.root().join("trail.bundle");
    let path = file.to_str().expect("utf-8");
    w.run(&admin, &["audit", "export", "-o", path]).ok();
    let header: Value = serde_json::from_str(
        fs::read_to_string(&file)
            .expect("read")
            .lines()
            .next()
            .expect("line"),
    )
    .expect("header");
    let public = s(&header, "public_key").to_owned();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--bundle"];
        args.extend_from_slice(extra);
        w.run(&admin, &args)
    };

    // No key named: intact, but the verdict says the bundle's own key was used.
    let own = verify(&[path]);
    assert_eq!(own.code, Some(3), "{own}");
    assert!(own.stdout.contains("audit chain intact"), "{own}");
    assert!(
        own.stdout.contains("KEY NOT CHECKED") && own.stdout.contains(&format!("own key {fp}")),
        "{own}"
    );
    let own = verify(&[path, "--json"]);
    assert_eq!(own.code, Some(3), "{own}");
    let report: Value = serde_json::from_str(&own.stdout).expect("JSON");
    assert_eq!(report["key_checked"], false, "{report:#}");
    assert_eq!(report["chain"]["intact"], true, "{report:#}");
    assert_eq!(report["key_fingerprint"], fp.as_str(), "{report:#}");

    // Checked against the server's key: by fingerprint (as shown, or bare and upper case), or
    // by the key itself.
    let bare = fp.replace(':', "").to_uppercase();
    for extra in [
        ["--fingerprint", fp.as_str()],
        ["--fingerprint", bare.as_str()],
        ["--key", public.as_str()],
    ] {
        let ok = verify(&[path, extra[0], extra[1]]);
        assert!(
            ok.ok()
                .contains(&format!("signed by the trusted audit key {fp}")),
            "{ok}"
        );
        assert!(!ok.stdout.contains("NOT CHECKED"), "{ok}");
    }
    let checked = verify(&[path, "--fingerprint", &fp, "--json"]).json();
    assert_eq!(checked["key_checked"], true, "{checked:#}");

    // Another key than the one named: 1, saying both.
    let other_fp = format!("0000{}", &fp[4..]);
    let msg = verify(&[path, "--fingerprint", &other_fp]);
    assert_eq!(msg.code, Some(1), "{msg}");
    assert!(
        msg.stdout.contains("NOT TRUSTED") && msg.stdout.contains(&other_fp),
        "{msg}"
    );
    let other_key = "A".repeat(43) + "=";
    let msg = verify(&[path, "--key", &other_key]);
    assert_eq!(msg.code, Some(1), "{msg}");
    assert!(msg.stdout.contains("not the trusted key"), "{msg}");

    // A bundle sealed by another server, with a key of its own: intact on its own terms (3),
    // refused under this server's fingerprint (1).
    let forger = World::plain();
    let forged = w.root().join("forged.bundle");
    let forged_arg = forged.to_str().expect("utf-8");
    forger
        .run(&forger.admin(), &["audit", "export", "-o", forged_arg])
        .ok();
    assert_eq!(verify(&[forged_arg]).code, Some(3));
    let refused = verify(&[forged_arg, "--fingerprint", &fp]);
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stdout.contains("NOT TRUSTED"), "{refused}");

    // Broken beats not checked: a damaged bundle is 1 with or without a key.
    let text = fs::read_to_string(&file).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(lines.len() / 2);
    let damaged = w.root().join("damaged.bundle");
    fs::write(&damaged, lines.join("\n") + "\n").expect("write");
    let damaged = damaged.to_str().expect("utf-8");
    for extra in [&[][..], &["--fingerprint", fp.as_str()][..]] {
        let mut args = vec![damaged];
        args.extend_from_slice(extra);
        let out = verify(&args);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stdout.contains("BROKEN"), "{out}");
    }

    // Cannot be checked: 2, saying what to fix.
    let msg = verify(&[path, "--fingerprint", "ab12"]);
    assert_eq!(msg.code, Some(2), "{msg}");
    assert!(msg.stderr.contains("32 hex digits"), "{msg}");
    let both = verify(&[path, "--fingerprint", &fp, "--key", &public]);
    assert_eq!(both.code, Some(2), "{both}");
    let no_bundle = w.run(&admin, &["audit", "verify", "--fingerprint", &fp]);
    assert_eq!(no_bundle.code, Some(2), "{no_bundle}");
    let missing = verify(&["/nonexistent/trail.bundle", "--fingerprint", &fp]);
    assert_eq!(missing.code, Some(2), "{missing}");
}

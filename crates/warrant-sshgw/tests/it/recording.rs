//! Recorded sessions: asciicast v2 with a signed manifest, input only when the role says,
//! commands and file transfers as markers; strict and best-effort modes on a full disk (a
//! 64 KiB tmpfs), on a recordings directory that is gone, and without one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use warrant_recording::RecordingKey;
use warrant_sshgw::{
    EndReason, GatewayEvent, RecordingMode, RecordingOutcome, RecordingsConfig, Refusal,
    SessionInfo,
};

use super::{CLIENT_TIMEOUT, GRANT, Gw, LOGIN, PERSON, TARGET, enable_sftp, run};

/// A gateway recording into `dir` (or nowhere), with the role's settings `mode` and
/// `record_input`.
async fn start(
    dir: Option<&Path>,
    mode: RecordingMode,
    record_input: bool,
) -> (Gw, Arc<RecordingKey>) {
    let key = Arc::new(RecordingKey::generate().unwrap());
    let recordings = dir.map(|dir| RecordingsConfig {
        dir: dir.to_owned(),
        key: key.clone(),
    });
    let gw = Gw::start_with(|c| c.recordings = recordings).await;
    *gw.authority.recording.lock().unwrap() = mode;
    gw.authority
        .record_input
        .store(record_input, Ordering::SeqCst);
    (gw, key)
}

/// Waits up to 10 s for the `n`th (from 1) session to end: its listing, why, its recording.
async fn ended(gw: &Gw, n: usize) -> (SessionInfo, EndReason, RecordingOutcome) {
    for _ in 0..200 {
        let found = gw
            .authority
            .events()
            .into_iter()
            .filter_map(|e| match e {
                GatewayEvent::SessionEnded {
                    info,
                    reason,
                    recording,
                } => Some((info, reason, recording)),
                _ => None,
            })
            .nth(n - 1);
        if let Some(found) = found {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("session {n} did not end; got {:#?}", gw.authority.events());
}

/// A recording read back: its header, and its events `(seconds, code, data)`.
struct Cast {
    header: serde_json::Value,
    events: Vec<(f64, String, String)>,
}

impl Cast {
    fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines = text.lines();
        let header = serde_json::from_str(lines.next().unwrap()).unwrap();
        let events = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
        Self { header, events }
    }

    /// The data of every event of kind `code`, joined.
    fn joined(&self, code: &str) -> String {
        self.events
            .iter()
            .filter(|e| e.1 == code)
            .map(|e| e.2.as_str())
            .collect()
    }

    fn markers(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.1 == "m")
            .map(|e| e.2.as_str())
            .collect()
    }
}

/// Checks a signed recording: its file is the session's, its manifest verifies against the
/// key, and the event's SHA-256 is the manifest's. Returns it read back.
fn check_signed(
    dir: &Path,
    key: &RecordingKey,
    info: &SessionInfo,
    outcome: &RecordingOutcome,
) -> Cast {
    let summary = outcome
        .summary()
        .unwrap_or_else(|| panic!("not signed: {outcome:?}"));
    assert_eq!(summary.file, format!("{}.cast", info.id));
    assert_eq!(info.recording.as_deref(), Some(summary.file.as_str()));
    let path = dir.join(&summary.file);
    let manifest = warrant_recording::verify(&path, &key.public_base64())
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", path.display()));
    assert_eq!(manifest.sha256, summary.sha256);
    assert_eq!((manifest.write_errors, summary.write_errors), (0, 0));
    assert_eq!(summary.dropped_bytes, 0);
    assert_eq!(manifest.session.session_id, info.id.to_string());
    assert_eq!(manifest.session.identity, PERSON);
    assert_eq!(manifest.session.target, TARGET);
    assert_eq!(manifest.session.grant_id, GRANT);
    Cast::read(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_session_is_recorded_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, key) = start(Some(dir.path()), RecordingMode::Strict, false).await;
    let command = "echo hello; printf 'é\\n'; echo to-stderr >&2";
    let out = gw.ssh(LOGIN, &[], command, b"typed but not recorded").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello\né\n");

    let (info, reason, outcome) = ended(&gw, 1).await;
    assert_eq!(reason, EndReason::ClientClosed);
    let cast = check_signed(dir.path(), &key, &info, &outcome);
    let started = gw
        .authority
        .wait_event("started", |e| matches!(e, GatewayEvent::SessionStarted(_)))
        .await;
    let GatewayEvent::SessionStarted(started) = started else {
        unreachable!()
    };
    assert_eq!(started.recording, info.recording, "known from the start");

    assert_eq!(cast.header["version"], 2);
    assert_eq!(
        (
            cast.header["width"].as_u64(),
            cast.header["height"].as_u64()
        ),
        (Some(80), Some(24))
    );
    assert_eq!(
        cast.header["title"],
        format!("{PERSON} on {TARGET} as {} (grant {GRANT})", gw.sshd.user())
    );
    let output = cast.joined("o");
    assert!(output.contains("hello\n"), "{output:?}");
    assert!(output.contains("é\n"), "{output:?}");
    assert!(output.contains("to-stderr\n"), "{output:?}");
    assert_eq!(
        cast.joined("i"),
        "",
        "input is not recorded unless the role says"
    );
    assert_eq!(
        cast.markers(),
        [
            format!("exec: {command}").as_str(),
            "session ended: client closed"
        ]
    );
}

/// Bulk output through a strict recording: many chunks in flight between the target, the
/// recording's writer and the person at once. Every byte reaches the person in order, and the
/// recording holds exactly what they got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_output_through_a_strict_recording_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, key) = start(Some(dir.path()), RecordingMode::Strict, false).await;
    let out = gw.ssh(LOGIN, &[], "seq 1 400000", b"").await;
    assert_eq!(out.code, 0, "{out:?}");
    let expected: String = (1..=400_000).map(|i| format!("{i}\n")).collect();
    assert!(
        out.stdout == expected,
        "output differs ({} bytes)",
        out.stdout.len()
    );

    let (info, reason, outcome) = ended(&gw, 1).await;
    assert_eq!(reason, EndReason::ClientClosed);
    let cast = check_signed(dir.path(), &key, &info, &outcome);
    assert!(cast.joined("o") == expected, "the recording differs");
}

/// Runs an interactive shell (`ssh -tt`) through the gateway, typing `typed`; returns its
/// output once the shell has exited by itself.
async fn shell(gw: &Gw, typed: &[u8]) -> String {
    let mut cmd = gw.ssh_command(LOGIN, &["-tt"], None);
    cmd.env("TERM", "xterm-256color").stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(typed).await.unwrap();
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the shell exits")
        .unwrap();
    drop(input);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_records_input_only_when_the_role_says() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, key) = start(Some(dir.path()), RecordingMode::BestEffort, true).await;
    let typed = b"echo typed-$((6*7))\nexit\n";
    let stdout = shell(&gw, typed).await;
    assert!(stdout.contains("typed-42"), "{stdout}");
    let (info, _, outcome) = ended(&gw, 1).await;
    let cast = check_signed(dir.path(), &key, &info, &outcome);
    assert_eq!(cast.header["env"]["TERM"], "xterm-256color");
    assert!(cast.joined("o").contains("typed-42"));
    assert_eq!(cast.joined("i").as_bytes(), typed);
    assert_eq!(cast.markers()[0], "shell");

    // The same without input.
    gw.authority.record_input.store(false, Ordering::SeqCst);
    let stdout = shell(&gw, typed).await;
    assert!(stdout.contains("typed-42"), "{stdout}");
    let (info, _, outcome) = ended(&gw, 2).await;
    let cast = check_signed(dir.path(), &key, &info, &outcome);
    assert!(cast.joined("o").contains("typed-42"));
    assert!(cast.events.iter().all(|e| e.1 != "i"), "{:?}", cast.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_transfers_are_markers_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, key) = start(Some(dir.path()), RecordingMode::Strict, false).await;
    enable_sftp(&gw.sshd).await;
    let local = gw.dir.path().join("payload");
    // Text, so that it would be plain to see in the recording if it were there.
    let payload = "not-in-the-recording\n".repeat(5000);
    std::fs::write(&local, &payload).unwrap();
    let remote_dir = tempfile::Builder::new()
        .prefix("warrant-sshgw-")
        .tempdir_in("/tmp")
        .unwrap();
    std::process::Command::new("chmod")
        .arg("777")
        .arg(remote_dir.path())
        .status()
        .unwrap();
    for (n, extra) in [&["-O"][..], &[]].into_iter().enumerate() {
        let mut scp = tokio::process::Command::new("scp");
        scp.args(gw.client_options(&gw.key))
            .args(["-P", &gw.port.to_string()])
            .args(extra)
            .arg(&local)
            .arg(format!(
                "{LOGIN}@127.0.0.1:{}/copy{n}",
                remote_dir.path().display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = run(&mut scp, b"").await;
        assert_eq!(out.code, 0, "{out:?}");
        let (info, _, outcome) = ended(&gw, n + 1).await;
        let cast = check_signed(dir.path(), &key, &info, &outcome);
        assert!(
            !cast.joined("o").contains("not-in-the-recording"),
            "{:?}",
            cast.events
        );
        let markers = cast.markers();
        let (started, done) = if extra.is_empty() {
            ("subsystem: sftp", "subsystem sftp ended: ")
        } else {
            ("scp upload: scp ", "scp upload ended: ")
        };
        assert!(markers[0].starts_with(started), "{markers:?}");
        let done = markers
            .iter()
            .find(|m| m.starts_with(done))
            .unwrap_or_else(|| panic!("{markers:?}"));
        let sent: u64 = done[done.find("ended: ").unwrap() + 7..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(sent >= payload.len() as u64, "{done}");
    }
}

/// A small tmpfs mounted for one test (they run as root), unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the recording failure tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a writer thread finishing): detach it now, it goes when unused.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Far more output than the 64 KiB tmpfs holds once recorded: 2,000,000 bytes as base64.
const FLOOD: &str = "head -c 2000000 /dev/zero | base64";
/// Its size: 4 characters per 3 bytes, in lines of 76 and a newline each.
const FLOOD_BYTES: usize =
    2_000_000_usize.div_ceil(3) * 4 + (2_000_000_usize.div_ceil(3) * 4).div_ceil(76);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_session_ends_when_its_recording_fails() {
    let disk = Tmpfs::mount("64k");
    let (gw, _key) = start(Some(disk.path()), RecordingMode::Strict, false).await;
    let started = Instant::now();
    let out = gw.ssh(LOGIN, &[], FLOOD, b"").await;
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "warrant: the session recording failed (No space left on device (os error 28)); \
             this session is closed."
        ),
        "{}",
        out.stderr
    );
    // Nothing reached the person that is not in the recording: at most what 64 KiB holds.
    assert!(out.stdout.len() <= 64 * 1024, "{}", out.stdout.len());
    assert!(started.elapsed() < Duration::from_secs(15));

    let (_, reason, outcome) = ended(&gw, 1).await;
    assert_eq!(
        reason,
        EndReason::RecordingFailed {
            error: "No space left on device (os error 28)".to_owned()
        }
    );
    // Not even the manifest fits.
    assert!(
        matches!(&outcome, RecordingOutcome::Unfinished { error, .. } if error.contains("No space left")),
        "{outcome:?}"
    );
    gw.authority
        .wait_event("recording failed", |e| {
            matches!(e, GatewayEvent::RecordingFailed { mode: RecordingMode::Strict, error, .. }
                if error.starts_with("recording_io: writing ") && error.contains("No space left"))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_effort_session_goes_on_when_its_recording_fails() {
    let disk = Tmpfs::mount("64k");
    let (gw, _key) = start(Some(disk.path()), RecordingMode::BestEffort, false).await;
    let out = gw.ssh(LOGIN, &[], FLOOD, b"").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.len(),
        FLOOD_BYTES,
        "all of the output came through"
    );
    assert!(!out.stderr.contains("warrant:"), "{}", out.stderr);

    let (info, reason, outcome) = ended(&gw, 1).await;
    assert_eq!(reason, EndReason::ClientClosed);
    assert_eq!(info.bytes_down, FLOOD_BYTES as u64);
    // What it could record: never a clean, complete recording.
    match &outcome {
        RecordingOutcome::Signed(summary) => assert!(summary.write_errors > 0, "{summary:?}"),
        RecordingOutcome::Unfinished { error, .. } => {
            assert!(error.contains("No space left"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let failed: Vec<_> = gw
        .authority
        .events()
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::RecordingFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "reported once: {failed:#?}");
    assert!(
        matches!(&failed[0], GatewayEvent::RecordingFailed { mode: RecordingMode::BestEffort, identity, error, .. }
            if identity == PERSON && error.contains("No space left")),
        "{failed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_session_that_cannot_be_recorded_is_refused() {
    // No recordings configured.
    let (gw, _key) = start(None, RecordingMode::Strict, false).await;
    let out = gw.ssh(LOGIN, &[], "echo should-not-run", b"").await;
    assert_eq!(out.code, 1, "{out:?}");
    let message = format!(
        "warrant: sessions as {} on {TARGET} must be recorded, and this one cannot be (this \
         gateway keeps no recordings). Tell your Warrant administrator.\n",
        gw.sshd.user()
    );
    assert!(out.stderr.contains(&message), "{out:?}");
    assert!(!out.stdout.contains("should-not-run"));
    gw.authority
        .wait_event("refused", |e| {
            matches!(e, GatewayEvent::Refused { refusal: Refusal::Unrecordable { reason }, identity, .. }
                if identity == PERSON && reason.starts_with("recording_unconfigured"))
        })
        .await;
    // The target was never logged in to.
    assert!(!gw.sshd.log().contains("Accepted certificate"));
    assert!(
        !gw.authority
            .events()
            .iter()
            .any(|e| matches!(e, GatewayEvent::SessionStarted(_)))
    );
    // A best-effort session goes on unrecorded, and nothing says it failed: the gateway was
    // set up so.
    *gw.authority.recording.lock().unwrap() = RecordingMode::BestEffort;
    let out = gw.ssh(LOGIN, &[], "echo ran", b"").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    let (info, _, outcome) = ended(&gw, 1).await;
    assert_eq!(
        (info.recording, outcome),
        (None, RecordingOutcome::NotRecorded)
    );

    // A recordings directory that is gone: the file cannot be created.
    let dir = tempfile::tempdir().unwrap();
    let gone: PathBuf = dir.path().join("recordings");
    let (gw, _key) = start(Some(&gone), RecordingMode::Strict, false).await;
    assert!(gone.is_dir(), "made at bind");
    std::fs::remove_dir(&gone).unwrap();
    let out = gw.ssh(LOGIN, &[], "echo should-not-run", b"").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("must be recorded, and this one cannot be (No such file or directory"),
        "{out:?}"
    );
    assert!(!gw.sshd.log().contains("Accepted certificate"));
    gw.authority
        .wait_event("refused", |e| {
            matches!(e, GatewayEvent::Refused { refusal: Refusal::Unrecordable { reason }, .. }
                if reason.starts_with("recording_io: creating "))
        })
        .await;
    // Best-effort: the session goes on unrecorded, and says so.
    *gw.authority.recording.lock().unwrap() = RecordingMode::BestEffort;
    let out = gw.ssh(LOGIN, &[], "echo ran", b"").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    let (info, _, outcome) = ended(&gw, 1).await;
    assert_eq!(
        (info.recording, outcome),
        (None, RecordingOutcome::NotRecorded)
    );
    gw.authority
        .wait_event("recording failed", |e| {
            matches!(e, GatewayEvent::RecordingFailed { mode: RecordingMode::BestEffort, error, .. }
                if error.starts_with("recording_io: creating "))
        })
        .await;
}

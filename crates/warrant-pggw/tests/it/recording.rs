//! Statement logs: each statement as it passes (simple queries, the text of a prepared statement
//! at each execute, bound values only when the role says, COPY as a count), signed; a strict
//! role's session refused or ended when its log cannot be written (a recordings directory that
//! is gone, a 64 KiB tmpfs that fills up), a best-effort one going on and reported.

use std::path::Path;
use std::time::Duration;

use tokio_postgres::NoTls;
use warrant_pggw::{EndReason, PgEvent, RecordingMode, RecordingOutcome, SessionInfo};

use super::{GRANT, Gw, PERSON, TARGET};

/// A gateway whose sessions are logged with `mode`, values too when `record_values`.
async fn start(mode: RecordingMode, record_values: bool) -> Gw {
    let gw = Gw::start().await;
    gw.set_recording(mode, record_values);
    gw
}

impl Gw {
    fn set_recording(&self, mode: RecordingMode, record_values: bool) {
        *self.authority.recording.lock().unwrap() = mode;
        self.authority
            .record_values
            .store(record_values, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A statement log read back: its header, and its events `(seconds, code, data)`.
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

    /// The statement lines, as written (`=> …`, without the line ending).
    fn statements(&self) -> Vec<String> {
        let output: String = self
            .events
            .iter()
            .filter(|e| e.1 == "o")
            .map(|e| e.2.as_str())
            .collect();
        output.split_terminator("\r\n").map(str::to_owned).collect()
    }

    fn markers(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter(|e| e.1 == "m")
            .map(|e| e.2.as_str())
            .collect()
    }
}

/// Checks a signed statement log: its file is the session's, its manifest verifies against the
/// gateway's key and names the session. Returns it read back.
fn check_signed(gw: &Gw, info: &SessionInfo, outcome: &RecordingOutcome) -> Cast {
    let summary = outcome
        .summary()
        .unwrap_or_else(|| panic!("not signed: {outcome:?}"));
    assert_eq!(summary.file, format!("{}.cast", info.id));
    assert_eq!(info.recording.as_deref(), Some(summary.file.as_str()));
    let path = gw.recordings.join(&summary.file);
    let manifest = warrant_recording::verify(&path, &gw.key.public_base64())
        .unwrap_or_else(|e| panic!("{} does not verify: {e}", path.display()));
    assert_eq!(manifest.sha256, summary.sha256);
    assert_eq!((manifest.write_errors, summary.write_errors), (0, 0));
    assert_eq!(manifest.session.session_id, info.id.to_string());
    assert_eq!(manifest.session.identity, PERSON);
    assert_eq!(manifest.session.target, TARGET);
    assert_eq!(manifest.session.account, gw.account());
    assert_eq!(manifest.session.grant_id, GRANT);
    assert_eq!(manifest.session.end_reason, "closed");
    // Another key does not verify it.
    let other = warrant_recording::RecordingKey::generate().unwrap();
    assert!(warrant_recording::verify(&path, &other.public_base64()).is_err());
    Cast::read(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_is_logged_and_the_log_is_signed() {
    let gw = start(RecordingMode::Strict, false).await;
    let (client, connection) = gw.connect().await;
    client
        .batch_execute("CREATE TABLE t (k int, v text);\nINSERT INTO t VALUES (1, 'simple')")
        .await
        .unwrap();
    let insert = client
        .prepare("INSERT INTO t VALUES ($1, $2)")
        .await
        .unwrap();
    for k in 2..5_i32 {
        client
            .execute(&insert, &[&k, &"secret value"])
            .await
            .unwrap();
    }
    let n: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let started = gw.authority.started(1).await;
    assert_eq!((started.bytes_up, started.bytes_down), (0, 0));
    let (info, reason, outcome) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::Closed);
    assert_eq!(info.id, started.id);
    assert!(info.bytes_up > 0 && info.bytes_down > 0, "{info:?}");
    let cast = check_signed(&gw, &info, &outcome);
    assert_eq!(cast.header["version"], 2);
    let title = cast.header["title"].as_str().unwrap();
    assert_eq!(
        title,
        format!("{PERSON} on {TARGET} as {} (grant {GRANT})", gw.account())
    );

    let statements = cast.statements();
    assert_eq!(
        statements[0], "=> CREATE TABLE t (k int, v text);",
        "{statements:#?}"
    );
    assert_eq!(statements[1], "INSERT INTO t VALUES (1, 'simple')");
    // The prepared statement's text once at its preparation, and at each of its three
    // executes; its values are not logged for this role.
    let parses: Vec<&String> = statements
        .iter()
        .filter(|s| s.starts_with("-- parse [s") && s.ends_with("]: INSERT INTO t VALUES ($1, $2)"))
        .collect();
    assert_eq!(parses.len(), 1, "{statements:#?}");
    let executes: Vec<&String> = statements
        .iter()
        .filter(|s| s.starts_with("=> ") && s.contains("INSERT INTO t VALUES ($1, $2)"))
        .collect();
    assert_eq!(executes.len(), 3, "{statements:#?}");
    for line in executes {
        assert!(line.starts_with("=> [s"), "{line}");
        assert!(line.ends_with("] INSERT INTO t VALUES ($1, $2)"), "{line}");
    }
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("=> [s") && s.ends_with("] SELECT count(*) FROM t")),
        "{statements:#?}"
    );
    assert!(
        !statements.iter().any(|s| s.contains("secret value")),
        "{statements:#?}"
    );
    assert_eq!(
        cast.markers(),
        [
            format!(
                "session: {PERSON} on {TARGET}/{} as {} (grant {GRANT})",
                gw.authority.database,
                gw.account()
            )
            .as_str(),
            "end: closed"
        ]
    );

    // psql's \copy: the statement, and the data as a count.
    let data: String = (0..100).map(|i| format!("{i}\tcopied\n")).collect();
    std::fs::write(gw.dir.path().join("rows.tsv"), &data).unwrap();
    let out = gw.psql(&["-c", "\\copy t FROM 'rows.tsv'"], b"").await;
    assert_eq!(out.code, 0, "{out:?}");
    let (info, _, outcome) = gw.authority.ended(2).await;
    let statements = check_signed(&gw, &info, &outcome).statements();
    assert!(
        statements
            .iter()
            .any(|s| s.starts_with("=> COPY") && s.trim_end().ends_with(" t FROM STDIN")),
        "{statements:#?}"
    );
    let counted = format!("=> [copy done: {} bytes in ", data.len());
    assert!(
        statements.iter().any(|s| s.starts_with(&counted)),
        "{statements:#?}"
    );
}

/// Statements a client pipelines (sent together, before any answer) are each logged, in
/// order, with the answers in order too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_statements_are_each_logged_in_order() {
    let gw = start(RecordingMode::Strict, false).await;
    let (client, connection) = gw.connect().await;
    let c = &client;
    let select = |i: i32| async move {
        let row = c.query_one(&format!("SELECT {i} AS n"), &[]).await?;
        Ok::<i32, tokio_postgres::Error>(row.get(0))
    };
    // join_all polls in order: the client sends the statements in order.
    let answers: Vec<i32> = futures_util::future::join_all((1..=5).map(select))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answers, [1, 2, 3, 4, 5]);
    drop(client);
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let (info, _, outcome) = gw.authority.ended(1).await;
    let statements = check_signed(&gw, &info, &outcome).statements();
    // Each prepared (`-- parse [sN]: …`), then each executed (`=> [sN] …`), in order.
    let parsed: Vec<&str> = statements
        .iter()
        .filter(|s| s.starts_with("-- parse "))
        .filter_map(|s| s.split_once("]: ").map(|(_, sql)| sql))
        .collect();
    let executed: Vec<&str> = statements
        .iter()
        .filter(|s| s.starts_with("=> "))
        .filter_map(|s| s.split_once("] ").map(|(_, sql)| sql))
        .collect();
    let expected: Vec<String> = (1..=5).map(|i| format!("SELECT {i} AS n")).collect();
    assert_eq!(parsed, expected, "{statements:#?}");
    assert_eq!(executed, expected, "{statements:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_values_are_logged_when_the_role_says() {
    let gw = start(RecordingMode::BestEffort, true).await;
    let (client, connection) = gw.connect().await;
    let row = client
        .query_one("SELECT $1::int + 1, $2::text", &[&41_i32, &"it's"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;
    let (info, _, outcome) = gw.authority.ended(1).await;
    let summary = outcome.summary().unwrap();
    let path = gw.recordings.join(&summary.file);
    warrant_recording::verify(&path, &gw.key.public_base64()).unwrap();
    assert_eq!(info.recording.as_deref(), Some(summary.file.as_str()));
    let statements = Cast::read(&path).statements();
    // tokio-postgres sends its parameters in binary: hex in the log.
    assert!(
        statements.iter().any(|s| s
            .ends_with("] SELECT $1::int + 1, $2::text  -- values: '\\x00000029', '\\x69742773'")),
        "{statements:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_session_whose_log_cannot_be_created_is_refused() {
    let gw = start(RecordingMode::Strict, false).await;
    assert!(gw.recordings.is_dir(), "made at bind");
    std::fs::remove_dir(&gw.recordings).unwrap();

    let out = gw.psql(&["-c", "SELECT 'should not run'"], b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "the statement log cannot be written (No such file or directory (os error 2)): \
             the session is refused"
        ),
        "{out:?}"
    );
    gw.authority
        .wait_event("refused", |e| {
            matches!(e, PgEvent::Refused { identity, target: Some(t), reason, .. }
                if identity == PERSON && t == TARGET && reason.contains("statement log cannot be written"))
        })
        .await;
    assert!(
        !gw.authority
            .events()
            .iter()
            .any(|e| matches!(e, PgEvent::SessionStarted(_)))
    );

    // Best-effort: the session goes on unlogged, and the failure is reported.
    gw.set_recording(RecordingMode::BestEffort, false);
    let out = gw.psql(&["-c", "SELECT 'ran'"], b"").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    gw.authority
        .wait_event("recording failed", |e| {
            matches!(e, PgEvent::RecordingFailed { identity, target, error }
                if identity == PERSON && target == TARGET && error.starts_with("recording_io: creating "))
        })
        .await;
    let (info, reason, outcome) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::Closed);
    assert_eq!(
        (info.recording, outcome),
        (None, RecordingOutcome::NotRecorded)
    );

    // No recordings configured at all: strict is refused, best-effort goes on.
    let gw = Gw::start_with(|c| c.recordings = None).await;
    gw.set_recording(RecordingMode::Strict, false);
    let out = gw.psql(&["-c", "SELECT 'should not run'"], b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "this role requires a statement log, and the gateway keeps none: tell an admin"
        ),
        "{out:?}"
    );
    gw.set_recording(RecordingMode::BestEffort, false);
    let out = gw.psql(&["-c", "SELECT 'ran'"], b"").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
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
            "cannot mount a tmpfs (the statement log failure tests need root): {}",
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

/// A statement far longer than a 64 KiB tmpfs holds, that leaves a table behind if it runs.
fn oversized_statement() -> String {
    format!(
        "CREATE TABLE leaked AS SELECT length('{}') AS n",
        "x".repeat(200_000)
    )
}

/// Whether table `name` exists in the gateway's database on the target.
async fn table_exists(gw: &Gw, name: &str) -> bool {
    let (admin, connection) =
        tokio_postgres::connect(&gw.pg.url_for(&gw.authority.database), NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    admin
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_session_ends_before_a_statement_its_log_cannot_hold() {
    let disk = Tmpfs::mount("64k");
    let gw = Gw::start_with(|c| c.recordings.as_mut().unwrap().dir = disk.path().to_owned()).await;
    gw.set_recording(RecordingMode::Strict, false);
    let (client, _connection) = gw.connect().await;
    client
        .batch_execute("CREATE TABLE small (n int)")
        .await
        .unwrap();
    let e = client
        .batch_execute(&oversized_statement())
        .await
        .expect_err("the session ends");
    assert_eq!(
        e.as_db_error().map(|d| d.message()),
        Some("the statement log could not be written: the session is closed"),
        "{e:?}"
    );
    let (_, reason, _) = gw.authority.ended(1).await;
    assert!(
        matches!(&reason, EndReason::RecordingFailed { error } if error.contains("No space left on device")),
        "{reason:?}"
    );
    assert!(table_exists(&gw, "small").await);
    // The target never ran what the log does not hold.
    assert!(
        !table_exists(&gw, "leaked").await,
        "a strict session ran a statement its log could not hold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_best_effort_session_goes_on_when_its_log_fails() {
    let disk = Tmpfs::mount("64k");
    let gw = Gw::start_with(|c| c.recordings.as_mut().unwrap().dir = disk.path().to_owned()).await;
    gw.set_recording(RecordingMode::BestEffort, false);
    let (client, connection) = gw.connect().await;
    client.batch_execute(&oversized_statement()).await.unwrap();
    client
        .batch_execute(&oversized_statement().replace("leaked", "leaked2"))
        .await
        .unwrap();
    let n: i32 = client
        .query_one("SELECT n FROM leaked", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 200_000);
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(10), connection).await;

    let (_, reason, outcome) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::Closed);
    match &outcome {
        RecordingOutcome::Signed(summary) => assert!(summary.write_errors > 0, "{summary:?}"),
        RecordingOutcome::Unfinished { error, .. } => {
            assert!(error.contains("No space left"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let failed: Vec<PgEvent> = gw
        .authority
        .events()
        .into_iter()
        .filter(|e| matches!(e, PgEvent::RecordingFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "reported once: {failed:#?}");
    assert!(
        matches!(&failed[0], PgEvent::RecordingFailed { identity, target, error }
            if identity == PERSON && target == TARGET && error.contains("No space left")),
        "{failed:#?}"
    );
}

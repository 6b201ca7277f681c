//! Live control: the listing of sessions, a kill, the grant's end and shutdown, each ending a
//! session in the middle of a statement with a message the person sees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use warrant_core::{ManualClock, Timestamp};
use warrant_pggw::{EndReason, PgEvent};

use super::{GRANT, Gw, PERSON, TARGET, active_queries, backends, now, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_can_be_killed() {
    let gw = Gw::start().await;
    let admin = gw.admin().await;
    let before = now();
    let (client, connection) = gw.connect().await;
    let sessions = gw.handle.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    let s = &sessions[0];
    assert_eq!(
        (
            s.identity.as_str(),
            s.target.as_str(),
            s.database.as_str(),
            s.account.as_str(),
            s.grant_id.as_str(),
            s.tls,
            s.recording.as_deref()
        ),
        (
            PERSON,
            TARGET,
            gw.authority.database.as_str(),
            gw.account(),
            GRANT,
            false,
            None
        )
    );
    assert!(s.peer.unwrap().ip().is_loopback());
    assert!(
        s.started >= before.plus_secs(-1) && s.started <= now(),
        "{s:?}"
    );
    let grant_end = before.plus_secs(600);
    assert!(
        s.grant_end >= grant_end && s.grant_end <= now().plus_secs(600),
        "{s:?}"
    );
    // Bytes are counted as they pass.
    client.query_one("SELECT 1", &[]).await.unwrap();
    let counted = gw.handle.sessions()[0].clone();
    assert!(
        counted.bytes_up > 0 && counted.bytes_down > 0,
        "{counted:?}"
    );

    let id = s.id;
    let sleeper = tokio::spawn(async move { client.query("SELECT pg_sleep(30)", &[]).await });
    wait_until("pg_sleep running on the target", async || {
        active_queries(&admin, gw.account(), "pg_sleep(30)").await == 1
    })
    .await;
    let killed = Instant::now();
    assert!(gw.handle.kill(id, "revoked by bob (incident 42)"));
    let e = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the session ended at once")
        .unwrap()
        .unwrap_err();
    assert!(killed.elapsed() < Duration::from_secs(5));
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        db.message(),
        "the session was ended: revoked by bob (incident 42)"
    );
    assert_eq!(db.severity(), "FATAL");
    let _ = tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .expect("the connection closed");

    let (info, reason, _) = gw.authority.ended(1).await;
    assert_eq!(info.id, id);
    assert_eq!(
        reason,
        EndReason::Killed {
            reason: "revoked by bob (incident 42)".to_owned()
        }
    );
    assert!(gw.handle.sessions().is_empty());
    assert!(!gw.handle.kill(id, "again"), "no such session any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_session_stops_its_statement_on_the_target() {
    let gw = Gw::start().await;
    let admin = gw.admin().await;
    let (client, _connection) = gw.connect().await;
    let id = gw.handle.sessions()[0].id;
    let sleeper = tokio::spawn(async move { client.query("SELECT pg_sleep(30)", &[]).await });
    wait_until("pg_sleep running on the target", async || {
        active_queries(&admin, gw.account(), "pg_sleep(30)").await == 1
    })
    .await;
    assert!(gw.handle.kill(id, "revoked"));
    let _ = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the session ended at once");
    // A session that is ended must not leave its statement running on the target under the
    // injected role for the rest of its 30 s.
    wait_until("the target's backend to go", async || {
        backends(&admin, gw.account()).await == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_with_its_grant() {
    let gw = Gw::start().await;
    gw.authority
        .grant_millis
        .store(2000, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let out = gw.psql(&["-c", "SELECT pg_sleep(30)"], b"").await;
    let took = started.elapsed();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("FATAL:  your grant ended: the gateway closed the session"),
        "{out:?}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    let (_, reason, _) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::GrantEnded);
    assert!(gw.handle.sessions().is_empty());

    // A grant that already ended: the session ends as soon as it starts.
    gw.authority
        .grant_millis
        .store(-1000, std::sync::atomic::Ordering::SeqCst);
    let out = gw.psql(&["-c", "SELECT pg_sleep(30)"], b"").await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("your grant ended"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_does_not_outlive_its_grant_by_a_rounded_second() {
    // The gateway's clock stands 1 ms before a whole second; the grant ends 1.001 s later (on
    // a whole second). Rounding both to seconds would give the session 2 s.
    let clock = ManualClock::new(Timestamp::from_millis(1_900_000_000_999));
    let gw = Gw::start_with(|c| c.clock = Arc::new(clock.clone())).await;
    gw.authority
        .grant_millis
        .store(1001, std::sync::atomic::Ordering::SeqCst);
    let (client, _connection) = gw.connect().await;
    let started = Instant::now();
    let e = client.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    let took = started.elapsed();
    let db = e.as_db_error().unwrap_or_else(|| panic!("{e:?}"));
    assert_eq!(
        db.message(),
        "your grant ended: the gateway closed the session"
    );
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1700),
        "a grant of 1.001 s ended the session after {took:?}"
    );
    let info = gw.authority.started(1).await;
    assert_eq!(info.started, Timestamp::from_millis(1_900_000_000_999));
    assert_eq!(info.grant_end, Timestamp::from_millis(1_900_000_002_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sessions_and_returns() {
    let mut gw = Gw::start().await;
    let admin = gw.admin().await;
    let (client, _connection) = gw.connect().await;
    let sleeper = tokio::spawn(async move { client.query("SELECT pg_sleep(30)", &[]).await });
    wait_until("pg_sleep running on the target", async || {
        active_queries(&admin, gw.account(), "pg_sleep(30)").await == 1
    })
    .await;
    let started = Instant::now();
    gw.shutdown().await;
    let e = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.as_db_error().map(|d| d.message()),
        Some("the gateway is shutting down"),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let (_, reason, _) = gw.authority.ended(1).await;
    assert_eq!(reason, EndReason::Shutdown);
    // Nothing listens any more.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
            .await
            .is_err()
    );
    assert!(
        gw.authority
            .events()
            .iter()
            .all(|e| !matches!(e, PgEvent::Refused { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_ends_a_session_whose_target_does_not_read() {
    // The target runs a long statement and reads nothing meanwhile; the client pipelines
    // more than the sockets hold behind it, so the gateway's write to the target blocks. A
    // kill must still end the session (and cancel the statement), not wait for that write.
    let gw = Gw::start().await;
    let admin = gw.admin().await;
    let (client, _connection) = gw.connect().await;
    let id = gw.handle.sessions()[0].id;
    let client = std::sync::Arc::new(client);
    let sleeper = {
        let c = client.clone();
        tokio::spawn(async move { c.query("SELECT pg_sleep(30)", &[]).await })
    };
    wait_until("pg_sleep running on the target", async || {
        active_queries(&admin, gw.account(), "pg_sleep(30)").await == 1
    })
    .await;
    let big = format!("SELECT 1 -- {}", "x".repeat(16 << 20));
    let mut pipelined = Vec::new();
    for _ in 0..3 {
        let c = client.clone();
        let q = big.clone();
        pipelined.push(tokio::spawn(async move { c.simple_query(&q).await }));
    }
    // Let the sockets fill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(gw.handle.kill(id, "revoked"));
    wait_until("the session to end", async || {
        gw.handle.sessions().is_empty()
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the client sees the end");
    wait_until("the target's backend to go", async || {
        backends(&admin, gw.account()).await == 0
    })
    .await;
    for p in pipelined {
        p.abort();
    }
}

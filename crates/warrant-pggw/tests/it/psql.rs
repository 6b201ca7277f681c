//! The real `psql` through the gateway: queries run as the injected role, scripts, `\copy` in
//! and out; and the refusals a person sees (a wrong token, a target without a grant, a name
//! that is no target, a token without TLS from another machine).

use std::net::{Ipv4Addr, SocketAddr};

use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use warrant_pggw::{EndReason, PgEvent};

use super::{DENIAL, GRANT, Gw, PERSON, TARGET, TOKEN, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_statements_as_the_injected_role() {
    let gw = Gw::start().await;
    let out = gw.psql(&["-c", "SELECT current_user"], b"").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{}\n", gw.account()));

    // A script of several statements on stdin, in one session.
    let script = "CREATE TABLE notes (id int PRIMARY KEY, body text);\n\
                  INSERT INTO notes VALUES (1, 'one'), (2, 'two');\n\
                  UPDATE notes SET body = body || '!' WHERE id = 2;\n\
                  SELECT current_database(), session_user;\n\
                  SELECT id, body FROM notes ORDER BY id;\n";
    let out = gw.psql(&["-f", "-"], script.as_bytes()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "{}|{}\n1|one\n2|two!\n",
            gw.authority.database,
            gw.account()
        )
    );
    // A statement that fails stops the script with the server's own error.
    let out = gw
        .psql(
            &["-f", "-"],
            b"SELECT 1;\nSELECT * FROM missing;\nSELECT 2;\n",
        )
        .await;
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "1\n");
    assert!(
        out.stderr
            .contains("ERROR:  relation \"missing\" does not exist"),
        "{out:?}"
    );

    // TARGET/DBNAME picks the database on the target.
    let mut cmd = gw.psql_command(
        &gw.conninfo(&format!("{TARGET}/postgres")),
        TOKEN,
        &["-c", "SELECT current_database()"],
    );
    let out = run(&mut cmd, b"").await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "postgres\n"),
        "{out:?}"
    );

    let info = gw.authority.started(1).await;
    assert_eq!(
        (
            info.identity.as_str(),
            info.target.as_str(),
            info.database.as_str(),
            info.account.as_str(),
            info.grant_id.as_str(),
            info.tls
        ),
        (
            PERSON,
            TARGET,
            gw.authority.database.as_str(),
            gw.account(),
            GRANT,
            false
        )
    );
    assert!(info.peer.unwrap().ip().is_loopback(), "{info:?}");
    for n in 1..=4 {
        let (_, reason, _) = gw.authority.ended(n).await;
        assert_eq!(reason, EndReason::Closed);
    }
    assert!(gw.handle.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_copies_in_and_out() {
    let gw = Gw::start().await;
    // More than one 64 KiB read in either direction, with multi-byte characters and a NULL.
    let mut data = String::new();
    for i in 0..5000 {
        if i == 17 {
            data.push_str("17\t\\N\n");
        } else {
            data.push_str(&format!("{i}\trow {i}: été, 東京, \"quoted\"\n"));
        }
    }
    assert!(data.len() > 128 * 1024);
    std::fs::write(gw.dir.path().join("in.tsv"), &data).unwrap();
    let out = gw
        .psql(
            &[
                "-c",
                "CREATE TABLE items (id int PRIMARY KEY, label text)",
                "-c",
                "\\copy items FROM 'in.tsv'",
                "-c",
                "\\copy (SELECT * FROM items ORDER BY id) TO 'out.tsv'",
                "-c",
                "SELECT count(*), count(label) FROM items",
            ],
            b"",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "5000|4999\n");
    let back = std::fs::read_to_string(gw.dir.path().join("out.tsv")).unwrap();
    assert!(back == data, "the rows came back changed");

    // COPY FROM STDIN and TO STDOUT inside a script, the data inline.
    let script = "COPY items FROM STDIN;\n5000\tinline\n5001\tinline too\n\\.\n\
                  COPY (SELECT id, label FROM items WHERE id >= 5000 ORDER BY id) TO STDOUT;\n";
    let out = gw.psql(&["-f", "-"], script.as_bytes()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "5000\tinline\n5001\tinline too\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_psql_and_the_audit() {
    let gw = Gw::start().await;

    // A wrong token.
    let mut cmd = gw.psql_command(&gw.conninfo(TARGET), "not-the-token", &["-c", "SELECT 1"]);
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "password authentication failed for user \"{PERSON}\""
        )),
        "{out:?}"
    );
    gw.authority
        .wait_event("refused token", |e| {
            matches!(e, PgEvent::Refused { identity, target: None, peer: Some(_), reason }
                if identity == PERSON && reason.contains("password authentication failed"))
        })
        .await;

    // A target the person holds no grant of: the authority's words.
    let mut cmd = gw.psql_command(&gw.conninfo("prod-db"), TOKEN, &["-c", "SELECT 1"]);
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    let denial = DENIAL.replace("{target}", "prod-db");
    assert!(out.stderr.contains(&denial), "{out:?}");
    gw.authority
        .wait_event("refused target", |e| {
            matches!(e, PgEvent::Refused { identity, target: Some(t), reason, .. }
                if identity == PERSON && t == "prod-db" && *reason == denial)
        })
        .await;

    // A database name that names no target.
    let mut cmd = gw.psql_command(&gw.conninfo("pg+"), TOKEN, &["-c", "SELECT 1"]);
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "the database name \"pg+\" is not TARGET, TARGET+ROLE or TARGET[+ROLE]/DBNAME"
        ),
        "{out:?}"
    );

    // A user the authority does not know, even with a token that is someone's.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=mallory dbname={TARGET} sslmode=disable",
        gw.port
    );
    let mut cmd = gw.psql_command(&conninfo, TOKEN, &["-c", "SELECT 1"]);
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("password authentication failed for user \"mallory\""),
        "{out:?}"
    );

    // Nothing reached the target.
    assert!(
        !gw.authority
            .events()
            .iter()
            .any(|e| matches!(e, PgEvent::SessionStarted(_))),
        "{:#?}",
        gw.authority.events()
    );
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn local_address() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "inet" {
            let ip: Ipv4Addr = words.next()?.split('/').next()?.parse().ok()?;
            if !ip.is_loopback() {
                return Some(ip);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_tls_is_taken_only_from_loopback() {
    // A connection from this machine's own non-loopback address to the gateway on 127.0.0.1:
    // the gateway sees a peer that is not loopback, and no packet leaves the machine (nor goes
    // to an address outside 127.0.0.0/8).
    let Some(ip) = local_address() else {
        eprintln!(
            "SKIPPED a_token_without_tls_is_taken_only_from_loopback: this machine has no \
             non-loopback IPv4 address (`ip -o -4 addr show scope global` lists none)"
        );
        return;
    };
    let gw = Gw::start().await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(ip.into(), 0)).unwrap();
    let stream = socket
        .connect(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), gw.port))
        .await
        .unwrap();
    let error = gw
        .client_config(TARGET)
        .connect_raw(stream, NoTls)
        .await
        .err()
        .expect("refused");
    let db = error.as_db_error().unwrap_or_else(|| panic!("{error:?}"));
    assert_eq!(db.code(), &SqlState::INVALID_AUTHORIZATION_SPECIFICATION);
    assert_eq!(db.message(), "the gateway takes tokens only over TLS");
    assert_eq!(
        db.hint(),
        Some("connect with sslmode=verify-full and the gateway's certificate as sslrootcert")
    );

    // The same gateway takes the token from loopback.
    let (client, _conn) = gw.connect().await;
    let row = client.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_logins_is_summarised_not_audited_one_by_one() {
    let gw = Gw::start().await;
    for _ in 0..30 {
        let mut config = gw.client_config(TARGET);
        config.password("not-the-token");
        assert!(config.connect(NoTls).await.is_err());
    }
    let refused: Vec<String> = gw
        .authority
        .events()
        .into_iter()
        .filter_map(|e| match e {
            PgEvent::Refused { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    // Twenty one by one, then one notice that the rest is counted.
    assert_eq!(refused.len(), 21, "{refused:#?}");
    assert!(
        refused[20].contains("further ones are counted"),
        "{refused:#?}"
    );
    // Each client was still told.
    let mut config = gw.client_config(TARGET);
    config.password("not-the-token");
    let e = config.connect(NoTls).await.err().unwrap();
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("password authentication failed")),
        "{e:?}"
    );
}

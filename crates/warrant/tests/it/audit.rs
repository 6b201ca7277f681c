//! The audit chain: verification through the server and offline, tampering detected at the
//! right position, `audit tail`.

use std::fs;
use std::path::Path;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, query, query_scalar};

use crate::harness::{Who, World, s};

/// How a copy of the store is damaged; each returns the position the verifier must report.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// One record's data rewritten (an identity renamed in it).
    Modify,
    /// A record in the middle deleted.
    DeleteMiddle,
    /// Two neighbouring records' positions swapped.
    Swap,
    /// The last record deleted.
    DeleteLast,
}

/// Applies `tamper` to the SQLite store in `dir` (the server must be stopped).
fn tamper(dir: &Path, tamper: Tamper) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let opts = SqliteConnectOptions::new().filename(dir.join("warrant.db"));
        let mut db = SqliteConnection::connect_with(&opts).await.expect("open warrant.db");
        let last: i64 = query_scalar("SELECT max(seq) FROM audit").fetch_one(&mut db).await.expect("max seq");
        let middle = last / 2;
        assert!(middle > 1 && middle + 1 < last, "too few audit records ({last}) to tamper with");
        let position = match tamper {
            Tamper::Modify => {
                let seq: i64 = query_scalar(
                    "SELECT seq FROM audit WHERE data LIKE '%\"alice\"%' AND seq > 1 AND seq < (SELECT max(seq) FROM audit) ORDER BY seq LIMIT 1",
                )
                .fetch_one(&mut db)
                .await
                .expect("a record about alice");
                let done = query("UPDATE audit SET data = replace(data, '\"alice\"', '\"mallory\"') WHERE seq = ?")
                    .bind(seq)
                    .execute(&mut db)
                    .await
                    .expect("modify");
                assert_eq!(done.rows_affected(), 1);
                seq
            }
            Tamper::DeleteMiddle => {
                let done = query("DELETE FROM audit WHERE seq = ?").bind(middle).execute(&mut db).await.expect("delete");
                assert_eq!(done.rows_affected(), 1);
                middle
            }
            Tamper::Swap => {
                for (from, to) in [(middle, -1), (middle + 1, middle), (-1, middle + 1)] {
                    let done = query("UPDATE audit SET seq = ? WHERE seq = ?")
                        .bind(to)
                        .bind(from)
                        .execute(&mut db)
                        .await
                        .expect("swap");
                    assert_eq!(done.rows_affected(), 1);
                }
                middle
            }
            Tamper::DeleteLast => {
                let done = query("DELETE FROM audit WHERE seq = ?").bind(last).execute(&mut db).await.expect("delete");
                assert_eq!(done.rows_affected(), 1);
                last
            }
        };
        db.close().await.expect("close warrant.db");
        position
    })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read data dir") {
        let entry = entry.expect("dir entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy store file");
    }
}

fn records(w: &World, who: &Who, args: &[&str]) -> u64 {
    let r = w.run(who, args).json();
    assert_eq!(r["intact"], true, "{r:#}");
    r["records"].as_u64().expect("records")
}

#[test]
fn audit_verify_tail_and_tampering() {
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
    let online = w.run(&admin, &["audit", "verify"]);
    assert!(online.ok().starts_with("audit chain intact: "), "{online}");
    let n = records(&w, &admin, &["audit", "verify", "--json"]);
    assert!(n > 20, "only {n} audit records after the demo");
    let msg = w.run(&alice, &["audit", "verify"]).fails();
    assert!(msg.contains("auditor"), "{msg}");

    // The last five events, one JSON object per line, in order.
    let tail = w.run(&admin, &["audit", "tail", "-n", "5", "--json"]);
    let lines: Vec<Value> = tail
        .ok()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{tail}"))
        })
        .collect();
    assert_eq!(lines.len(), 5, "{tail}");
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    let first = n - 4;
    assert_eq!(seqs, (first..=n).collect::<Vec<_>>(), "{tail}");
    assert_eq!(s(&lines[4], "kind"), "grant.created", "{tail}");
    let table = w.run(&admin, &["audit", "tail", "-n", "3"]);
    assert_eq!(table.ok().lines().count(), 3, "{table}");
    assert!(table.stdout.contains("grant.created"), "{table}");

    w.server.stop();
    let offline = w.run(
        &admin,
        &[
            "audit",
            "verify",
            "--data-dir",
            w.data_dir.to_str().expect("utf-8"),
        ],
    );
    assert!(
        offline
            .ok()
            .starts_with(&format!("audit chain intact: {n} records")),
        "{offline}"
    );
    let empty = w.root().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    let msg = w
        .run(
            &admin,
            &[
                "audit",
                "verify",
                "--data-dir",
                empty.to_str().expect("utf-8"),
            ],
        )
        .fails();
    assert!(msg.contains("holds no Warrant store"), "{msg}");

    for how in [
        Tamper::Modify,
        Tamper::DeleteMiddle,
        Tamper::Swap,
        Tamper::DeleteLast,
    ] {
        let dir = w.root().join(format!("{how:?}"));
        copy_dir(&w.data_dir, &dir);
        let position = tamper(&dir, how);
        let dir = dir.to_str().expect("utf-8");
        let text = w.run(&admin, &["audit", "verify", "--data-dir", dir]);
        assert_eq!(text.code, Some(1), "{how:?} not detected:\n{text}");
        assert!(
            text.stdout
                .starts_with(&format!("audit chain BROKEN at record {position}:")),
            "{how:?} at record {position}:\n{text}"
        );
        let json = w.run(&admin, &["audit", "verify", "--data-dir", dir, "--json"]);
        assert_eq!(json.code, Some(1), "{json}");
        let report: Value = serde_json::from_str(&json.stdout).expect("JSON report");
        assert_eq!(report["intact"], false, "{report:#}");
        assert_eq!(report["first_broken"], position, "{how:?}: {report:#}");
    }

    // The untouched store still verifies, online too after a restart.
    w.restart();
    assert_eq!(records(&w, &admin, &["audit", "verify", "--json"]), n);
}

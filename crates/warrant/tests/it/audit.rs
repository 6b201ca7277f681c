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
pub(crate) enum Tamper {
    /// One record's data rewritten (an identity renamed in it).
    Modify,
    /// A record in the middle deleted.
    DeleteMiddle,
    /// Two neighbouring records' positions swapped.
    Swap,
    /// The last record deleted.
    DeleteLast,
    /// The last three records deleted and the recorded head moved back with them: only the
    /// signed checkpoint (made at shutdown) can tell.
    CutTail,
    /// A record in the middle rewritten and every later hash recomputed, the head too: the
    /// links all hold, only the signed checkpoint can tell.
    Rewrite,
}

/// Applies `tamper` to the SQLite store in `dir` (the server must be stopped); returns the
/// first position where verification (and an export) must find the break.
pub(crate) fn tamper(dir: &Path, tamper: Tamper) -> i64 {
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
            Tamper::CutTail => {
                let done = query("DELETE FROM audit WHERE seq > ?").bind(last - 3).execute(&mut db).await.expect("delete");
                assert_eq!(done.rows_affected(), 3);
                let hash: String = query_scalar("SELECT hash FROM audit WHERE seq = ?").bind(last - 3).fetch_one(&mut db).await.expect("new last");
                query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1").bind(last - 3).bind(hash).execute(&mut db).await.expect("head");
                last - 2
            }
            Tamper::Rewrite => {
                let rows: Vec<(i64, i64, Option<String>, String, String, String)> = sqlx::query_as(
                    "SELECT seq, at, actor, kind, data, prev_hash FROM audit WHERE seq >= ? ORDER BY seq",
                )
                .bind(middle)
                .fetch_all(&mut db)
                .await
                .expect("the tail");
                let mut prev = rows[0].5.clone();
                for (seq, at, actor, kind, data, _) in rows {
                    let data = if seq == middle { data.replace('"', "'") } else { data };
                    let hash = warrant_audit::record_hash(&prev, seq, at, actor.as_deref(), &kind, &data);
                    query("UPDATE audit SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?")
                        .bind(&data)
                        .bind(&prev)
                        .bind(&hash)
                        .bind(seq)
                        .execute(&mut db)
                        .await
                        .expect("rewrite");
                    prev = hash;
                }
                query("UPDATE audit_head SET hash = ? WHERE id = 1").bind(&prev).execute(&mut db).await.expect("head");
                // Found at the first signed checkpoint at or after the change (the stop's, at
                // the head, unless a periodic one came earlier).
                query_scalar("SELECT min(seq) FROM audit_checkpoints WHERE seq >= ?")
                    .bind(middle)
                    .fetch_one(&mut db)
                    .await
                    .expect("the checkpoint after the change")
            }
        };
        db.close().await.expect("close warrant.db");
        position
    })
}

/// Copies a stopped server's store files (not its archive or recordings) to `to`.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("create copy dir");
    for entry in fs::read_dir(from).expect("read data dir") {
        let entry = entry.expect("dir entry");
        // The store's files (not the archive or recordings directories).
        if entry.file_type().expect("file type").is_file() {
            fs::copy(entry.path(), to.join(entry.file_name())).expect("copy store file");
        }
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

    // The shutdown signed the head; the chain and that checkpoint verify offline.
    let report = w
        .run(
            &admin,
            &[
                "audit",
                "verify",
                "--json",
                "--data-dir",
                w.data_dir.to_str().expect("utf-8"),
            ],
        )
        .json();
    assert_eq!(report["last_checkpoint"], n, "{report:#}");
    assert!(report["checkpoints"].as_u64() >= Some(1), "{report:#}");
    assert!(
        offline.stdout.contains("signed checkpoints checked"),
        "{offline}"
    );

    for how in [
        Tamper::Modify,
        Tamper::DeleteMiddle,
        Tamper::Swap,
        Tamper::DeleteLast,
        Tamper::CutTail,
        Tamper::Rewrite,
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

    // The audit key's public half swapped in the store (and the checkpoints it would not
    // verify removed): offline there is nothing left to catch it, the server compares it
    // with the key it holds sealed.
    w.server.stop();
    sqlite_exec(&w.data_dir, "DELETE FROM audit_checkpoints");
    sqlite_exec(
        &w.data_dir,
        "UPDATE sealed_keys SET public_key = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' WHERE name = 'audit-key'",
    );
    w.restart();
    let swapped = w.run(&admin, &["audit", "verify", "--json"]);
    assert_eq!(
        swapped.code,
        Some(1),
        "a swapped audit key passes:\n{swapped}"
    );
    assert!(swapped.stdout.contains("not the sealed key"), "{swapped}");
}

/// A bundle's lines, each parsed.
fn bundle_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read the bundle")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn line_type(line: &str) -> String {
    let v: Value = serde_json::from_str(line).expect("a JSON line");
    s(&v, "type").to_owned()
}

#[test]
fn audit_export_bundle_verifies_offline_and_finds_tampering() {
    let w = World::demo();
    let admin = w.admin();
    let alice = w.login("alice");
    for reason in ["one", "two"] {
        w.run(
            &alice,
            &[
                "request", "pg-prod", "readonly", "--for", "1h", "--reason", reason,
            ],
        )
        .ok();
    }
    let n = records(&w, &admin, &["audit", "verify", "--json"]);
    let msg = w.run(&alice, &["audit", "export"]).fails();
    assert!(msg.contains("auditor"), "{msg}");

    // The whole trail: header, every record, the seal.
    let file = w.root().join("trail.bundle");
    let path = file.to_str().expect("utf-8");
    w.run(&admin, &["audit", "export", "-o", path]).ok();
    assert!(!file.with_extension("part").exists());
    let lines = bundle_lines(&file);
    assert_eq!(line_type(&lines[0]), "header");
    assert_eq!(line_type(lines.last().expect("lines")), "seal");
    let record_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| line_type(&lines[i]) == "record")
        .collect();
    assert_eq!(record_lines.len() as u64, n, "every record up to the head");

    // The key the server shows is the one the bundle is sealed with.
    let online = w.run(&admin, &["audit", "verify", "--json"]).json();
    let fp = s(&online, "key_fingerprint");
    let ok = w.run(
        &admin,
        &["audit", "verify", "--bundle", path, "--fingerprint", fp],
    );
    assert!(ok.ok().contains(&format!("({n} records)")), "{ok}");
    assert!(ok.stdout.contains("audit chain intact"), "{ok}");
    let report = w
        .run(
            &admin,
            &[
                "audit",
                "verify",
                "--bundle",
                path,
                "--fingerprint",
                fp,
                "--json",
            ],
        )
        .json();
    assert_eq!(
        report["key_fingerprint"], online["key_fingerprint"],
        "{report:#}"
    );
    let public: Value = serde_json::from_str(&lines[0]).expect("header");
    w.run(
        &admin,
        &[
            "audit",
            "verify",
            "--bundle",
            path,
            "--key",
            s(&public, "public_key"),
        ],
    )
    .ok();
    let other = "A".repeat(43) + "=";
    let msg = w
        .run(
            &admin,
            &["audit", "verify", "--bundle", path, "--key", &other],
        )
        .fails();
    assert!(msg.contains("not the trusted key"), "{msg}");

    // Each kind of damage, on a copy of the lines.
    let middle = record_lines[record_lines.len() / 2];
    let last_record = *record_lines.last().expect("records");
    let damaged: Vec<(&str, Vec<String>)> = vec![
        ("modified", {
            let mut l = lines.clone();
            l[middle] = l[middle].replace("pg-prod", "pg-test");
            if l[middle] == lines[middle] {
                l[middle] = l[middle].replacen("\\\"type\\\"", "\\\"kind\\\"", 1);
            }
            l
        }),
        ("deleted in the middle", {
            let mut l = lines.clone();
            l.remove(middle);
            l
        }),
        ("reordered", {
            let mut l = lines.clone();
            l.swap(middle, middle + 1);
            l
        }),
        ("first record cut", {
            let mut l = lines.clone();
            l.remove(record_lines[0]);
            l
        }),
        ("last record cut", {
            let mut l = lines.clone();
            l.remove(last_record);
            l
        }),
        ("seal cut off", lines[..lines.len() - 1].to_vec()),
        ("a line after the seal", {
            let mut l = lines.clone();
            l.push(lines[middle].clone());
            l
        }),
    ];
    for (how, l) in damaged {
        assert_ne!(l, lines, "{how}: nothing changed");
        let copy = w.root().join("damaged.bundle");
        fs::write(&copy, l.join("\n") + "\n").expect("write the copy");
        let out = w.run(
            &admin,
            &["audit", "verify", "--bundle", copy.to_str().expect("utf-8")],
        );
        assert_eq!(out.code, Some(1), "{how} not detected:\n{out}");
        assert!(out.stdout.contains("BROKEN"), "{how}:\n{out}");
    }

    // From a time on: nothing yet in the future, an empty bundle that still verifies.
    let future = w.root().join("future.bundle");
    w.run(
        &admin,
        &[
            "audit",
            "export",
            "--since",
            "2999-01-01T00:00:00Z",
            "-o",
            future.to_str().expect("utf-8"),
        ],
    )
    .ok();
    assert_eq!(bundle_lines(&future).len(), 2, "header and seal only");
    w.run(
        &admin,
        &[
            "audit",
            "verify",
            "--bundle",
            future.to_str().expect("utf-8"),
            "--fingerprint",
            fp,
        ],
    )
    .ok();
    let msg = w
        .run(&admin, &["audit", "export", "--since", "yesterday-ish"])
        .fails();
    assert!(msg.contains("RFC 3339"), "{msg}");

    // Warrant's own JSON lines: one per record, in order, on standard output.
    let jsonl = w.run(
        &admin,
        &["audit", "export", "--format", "jsonl", "--since", "1h"],
    );
    let seqs: Vec<u64> = jsonl
        .ok()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            assert!(v["event"].is_object(), "{v:#}");
            v["seq"].as_u64().expect("seq")
        })
        .collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());

    // OCSF 1.5: one event per record, each with its class, activity and type_uid.
    let ocsf = w.run(&admin, &["audit", "export", "--format", "ocsf"]);
    let events: Vec<Value> = ocsf
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len() as u64, n, "{ocsf}");
    for e in &events {
        let class = e["class_uid"].as_u64().expect("class_uid");
        let activity = e["activity_id"].as_u64().expect("activity_id");
        assert_eq!(
            e["type_uid"].as_u64(),
            Some(class * 100 + activity),
            "{e:#}"
        );
        assert_eq!(e["metadata"]["version"], "1.5.0", "{e:#}");
        assert!(e["time"].as_i64().is_some(), "{e:#}");
    }
    let signin = events
        .iter()
        .find(|e| e["unmapped"]["warrant_kind"] == "auth.signin_succeeded")
        .unwrap_or_else(|| panic!("no sign-in among {events:#?}"));
    assert_eq!(signin["class_uid"], 3002, "{signin:#}");
    let grant = events
        .iter()
        .find(|e| e["unmapped"]["warrant_kind"] == "grant.created")
        .unwrap_or_else(|| panic!("no grant among {events:#?}"));
    assert_eq!(grant["class_uid"], 3005, "{grant:#}");
}

/// Opens the SQLite store in `dir` and runs `sql` (the server must be stopped).
fn sqlite_exec(dir: &Path, sql: &'static str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let opts = SqliteConnectOptions::new().filename(dir.join("warrant.db"));
        let mut db = SqliteConnection::connect_with(&opts)
            .await
            .expect("open warrant.db");
        let done = query(sql).execute(&mut db).await.expect("tamper");
        assert!(done.rows_affected() > 0, "{sql} changed nothing");
        db.close().await.expect("close");
    });
}

#[test]
fn audit_prune_archives_and_what_remains_still_verifies() {
    let mut w = World::demo();
    let admin = w.admin();
    let alice = w.login("alice");
    w.run(
        &alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "before",
        ],
    )
    .ok();
    let n = records(&w, &admin, &["audit", "verify", "--json"]);
    let msg = w.run(&alice, &["audit", "prune", "--before", "0s"]).fails();
    assert!(msg.contains("admin"), "{msg}");
    let msg = w
        .run(
            &admin,
            &["audit", "prune", "--before", "2999-01-01T00:00:00Z"],
        )
        .fails();
    assert!(msg.contains("invalid_before"), "{msg}");

    // Everything made so far: archived, then pruned.
    let report = w
        .run(&admin, &["audit", "prune", "--before", "0s", "--json"])
        .json();
    let pruned = report["records"].as_u64().expect("records");
    let up_to = report["up_to_seq"].as_u64().expect("up_to_seq");
    assert!(pruned > 10 && up_to >= pruned, "{report:#}");
    let archive = w.data_dir.join("audit-archive").join(s(&report, "archive"));
    let archive = archive.to_str().expect("utf-8");
    let fp = w.run(&admin, &["audit", "verify", "--json"]).json()["key_fingerprint"].clone();
    let fp = fp.as_str().expect("key_fingerprint");
    let bundle = w
        .run(
            &admin,
            &[
                "audit",
                "verify",
                "--bundle",
                archive,
                "--fingerprint",
                fp,
                "--json",
            ],
        )
        .json();
    assert_eq!(bundle["chain"]["intact"], true, "{bundle:#}");
    assert_eq!(bundle["seal"]["records"], pruned, "{bundle:#}");
    assert_eq!(bundle["seal"]["last_seq"], up_to, "{bundle:#}");

    // What remains (the prune's own event and what follows) verifies from the anchor.
    w.run(
        &alice,
        &[
            "request", "pg-prod", "readonly", "--for", "1h", "--reason", "after",
        ],
    )
    .ok();
    let rest = w.run(&admin, &["audit", "verify", "--json"]).json();
    assert_eq!(rest["intact"], true, "{rest:#}");
    let remaining = rest["records"].as_u64().expect("records");
    assert!(remaining >= 2 && remaining < n, "{rest:#}");
    let tail = w.run(&admin, &["audit", "tail", "-n", "50", "--json"]);
    assert!(tail.ok().contains("audit.pruned"), "{tail}");
    let again = w
        .run(&admin, &["audit", "prune", "--before", "0s", "--json"])
        .json();
    assert!(again["up_to_seq"].as_u64() > Some(up_to), "{again:#}");

    // Offline too; and a forged anchor or a removed first record is found.
    w.server.stop();
    let dir = w.data_dir.to_str().expect("utf-8").to_owned();
    let offline = w
        .run(&admin, &["audit", "verify", "--data-dir", &dir, "--json"])
        .json();
    assert_eq!(offline["intact"], true, "{offline:#}");
    // A copy of the store damaged by `sql` no longer verifies offline.
    let damaged = |name: &str, sql: &'static str| {
        let copy = w.root().join(name);
        copy_dir(&w.data_dir, &copy);
        sqlite_exec(&copy, sql);
        let copy = copy.to_str().expect("utf-8").to_owned();
        w.run(&admin, &["audit", "verify", "--data-dir", &copy])
    };
    let out = damaged("forged-anchor", "UPDATE audit_anchor SET seq = seq - 1");
    assert_eq!(out.code, Some(1), "a moved anchor passes:\n{out}");
    let out = damaged(
        "cut-front",
        "DELETE FROM audit WHERE seq = (SELECT min(seq) FROM audit)",
    );
    assert_eq!(out.code, Some(1), "a removed first record passes:\n{out}");
}

//! SIEM sinks with the real server and a real rsyslog: every audit record arrives, parsed
//! field by field, in order; a file sink gets the same; the SIEM goes down and comes back and
//! nothing is lost; a mandatory sink that falls behind stops the handing out of access until
//! it catches up.

use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use warrant_testkit::RsyslogFixture;

use crate::harness::{World, poll, s};

/// `warrant audit sinks --json`, by name.
fn sink(w: &World, who: &crate::harness::Who, name: &str) -> Value {
    let all = w.run(who, &["audit", "sinks", "--json"]).json();
    all.as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no sink {name} in {all:#}"))
}

/// The chain's head (records so far).
fn head(w: &World, who: &crate::harness::Who) -> u64 {
    let r = w.run(who, &["audit", "verify", "--json"]).json();
    r["records"].as_u64().expect("records")
}

/// Checks that rsyslog received records 1..=n exactly in order (each once; a redelivery after
/// an outage may repeat a record, never skip or reorder one), parsed as sent.
fn check_received(received: &[Value], n: u64) {
    let mut expected = 1u64;
    for m in received {
        assert_eq!(m["app_name"], "warrant", "{m:#}");
        assert_eq!(m["hostname"], "warrant-test", "{m:#}");
        assert_eq!(m["facility"], "13", "log audit: {m:#}");
        let sd = m["structured_data"].as_str().expect("structured data");
        assert!(sd.starts_with("[warrant@32473 seq=\""), "{m:#}");
        let msg = m["msg"].as_str().expect("msg");
        let event: Value = serde_json::from_str(msg.trim_start_matches('\u{feff}'))
            .unwrap_or_else(|e| panic!("the message is not OCSF JSON ({e}): {msg}"));
        let seq: u64 = s(&event["metadata"], "uid")
            .parse()
            .expect("uid is the seq");
        assert!(sd.contains(&format!("seq=\"{seq}\"")), "{m:#}");
        assert_eq!(m["msgid"], event["unmapped"]["warrant_kind"], "{m:#}");
        assert_eq!(
            event["type_uid"].as_u64(),
            Some(
                event["class_uid"].as_u64().expect("class") * 100
                    + event["activity_id"].as_u64().expect("activity")
            )
        );
        assert!(seq <= expected, "record {expected} was skipped (got {seq})");
        if seq == expected {
            expected += 1;
        }
    }
    assert_eq!(expected, n + 1, "records up to {n} arrived");
}

#[test]
fn audit_reaches_rsyslog_and_a_file_in_order_and_survives_an_outage() {
    let mut rsyslog = RsyslogFixture::start().expect("rsyslog (scripts/deps/rsyslog.sh)");
    let cfg_dir = tempfile::tempdir().expect("temp dir");
    let archive = cfg_dir.path().join("audit.jsonl");
    let config = cfg_dir.path().join("warrant.yaml");
    fs::write(
        &config,
        format!(
            "audit:\n  sinks:\n    - name: siem\n      syslog: {{ address: \"{}\", hostname: warrant-test }}\n      mandatory: {{ max_lag: 2s }}\n    - name: archive\n      file: {{ path: \"{}\" }}\n      format: jsonl\n",
            rsyslog.address(),
            archive.display()
        ),
    )
    .expect("write the config");
    let w = World::start(&["--demo", "--config", config.to_str().expect("utf-8")]);
    let admin = w.admin();

    let n = head(&w, &admin);
    let received = rsyslog
        .wait_for(n as usize, Duration::from_secs(20))
        .expect("rsyslog gets the trail");
    check_received(&received, n);
    let caught_up = poll(Duration::from_secs(10), || {
        let st = sink(&w, &admin, "siem");
        (st["cursor"].as_u64() >= Some(n)).then_some(st)
    })
    .expect("the cursor reaches the head");
    assert_eq!(caught_up["kind"], "syslog");
    assert_eq!(caught_up["errors"], 0, "{caught_up:#}");
    let text = w.run(&admin, &["audit", "sinks"]);
    assert!(
        text.ok().contains("siem") && text.stdout.contains("yes, 2 s"),
        "{text}"
    );

    // The file sink: the same records, as Warrant's JSON lines.
    let file_seqs = poll(Duration::from_secs(10), || {
        let seqs: Vec<u64> = fs::read_to_string(&archive)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("a JSON line")["seq"]
                    .as_u64()
                    .expect("seq")
            })
            .collect();
        (seqs.len() as u64 >= n).then_some(seqs)
    })
    .expect("the file gets the trail");
    assert_eq!(file_seqs[..n as usize], (1..=n).collect::<Vec<_>>()[..]);

    // The SIEM goes down; the server goes on recording, and says the sink is behind.
    rsyslog.stop();
    let carol = w.login("carol");
    let r = w
        .run(
            &carol,
            &[
                "request", "web-1", "root", "--for", "1h", "--reason", "outage", "--json",
            ],
        )
        .json();
    let erin = w.login("erin");
    w.run(&erin, &["approve", s(&r, "id")]).ok();
    let behind = poll(Duration::from_secs(15), || {
        let st = sink(&w, &admin, "siem");
        (st["blocking"] == true && st["errors"].as_u64() > Some(0)).then_some(st)
    })
    .expect("the sink reports the outage and blocks");
    assert!(behind["lag_records"].as_u64() > Some(0), "{behind:#}");
    assert!(behind["last_error"].is_string(), "{behind:#}");

    // While the mandatory sink is behind, no certificate is issued.
    let keys = tempfile::tempdir().expect("temp dir");
    let key = keys.path().join("id");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(made.status.success());
    let public = key.with_extension("pub");
    let public = public.to_str().expect("utf-8");
    let refused = w
        .run(&carol, &["ssh-cert", "web-1", "root", "--key", public])
        .fails();
    assert!(refused.contains("audit_sink_behind"), "{refused}");

    // The SIEM comes back: the backlog drains, in order, nothing lost, and access resumes.
    rsyslog.resume().expect("rsyslog again");
    let n2 = head(&w, &admin);
    assert!(n2 > n + 2, "the outage's records: {n} → {n2}");
    let drained = poll(Duration::from_secs(40), || {
        let st = sink(&w, &admin, "siem");
        (st["cursor"].as_u64() >= Some(n2) && st["blocking"] == false).then_some(st)
    })
    .expect("the backlog drains");
    assert!(drained["delivered"].as_u64() >= Some(n2), "{drained:#}");
    let received = rsyslog
        .wait_for(n2 as usize, Duration::from_secs(20))
        .expect("rsyslog gets the backlog");
    check_received(&received, n2);
    let done = w.run(&carol, &["ssh-cert", "web-1", "root", "--key", public]);
    assert!(
        done.ok().starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{done}"
    );

    // Metrics for the SIEM's dashboards.
    let metrics = reqwest_blocking_get(&format!("{}/metrics", w.server.url));
    assert!(
        metrics.contains("warrant_audit_sink_lag_records{sink=\"siem\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("warrant_audit_sink_errors_total{sink=\"siem\"}"),
        "{metrics}"
    );
}

/// GET a URL's text over plain HTTP/1.0 on loopback.
fn reqwest_blocking_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
    let mut conn = std::net::TcpStream::connect(host).expect("connect");
    write!(conn, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut out = String::new();
    conn.read_to_string(&mut out).expect("answer");
    out
}

/// The server killed (-9) while a sink drains its backlog one record at a time: after the
/// restart the sink goes on from its durable cursor, and the receiver ends up with every
/// record, in order (a record may come twice, none goes missing).
#[test]
fn a_kill_during_a_backlog_drain_loses_nothing() {
    let mut rsyslog = RsyslogFixture::start().expect("rsyslog (scripts/deps/rsyslog.sh)");
    // Down from the start: the whole trail is the backlog.
    rsyslog.stop();
    let cfg_dir = tempfile::tempdir().expect("temp dir");
    let config = cfg_dir.path().join("warrant.yaml");
    fs::write(
        &config,
        format!(
            "audit:\n  sinks:\n    - name: siem\n      syslog: {{ address: \"{}\", hostname: warrant-test }}\n      batch: 1\n",
            rsyslog.address()
        ),
    )
    .expect("write the config");
    let mut w = World::start(&["--demo", "--config", config.to_str().expect("utf-8")]);
    let admin = w.admin();
    // A backlog long enough to kill the server in the middle of its drain: 1,500 identities
    // from an org file, each an audit record.
    let org = cfg_dir.path().join("many.yaml");
    let mut text = String::from("identities:\n");
    for i in 0..1500 {
        text.push_str(&format!(
            "  - {{ name: user-{i}, email: user-{i}@example.com }}\n"
        ));
    }
    fs::write(&org, text).expect("write the org file");
    w.run(&admin, &["apply", "-f", org.to_str().expect("utf-8")])
        .ok();
    let n = head(&w, &admin);
    assert!(n > 1500, "{n}");
    let down = sink(&w, &admin, "siem");
    assert_eq!(down["cursor"], 0, "nothing delivered while down: {down:#}");

    rsyslog.resume().expect("rsyslog again");
    // Killed once the drain has begun.
    poll(Duration::from_secs(40), || {
        (rsyslog.received().len() >= 50).then_some(())
    })
    .expect("the drain begins");
    w.server.kill9();
    let at_kill = rsyslog.received().len() as u64;
    assert!(
        at_kill < n,
        "the drain was over before the kill ({at_kill} of {n})"
    );

    w.restart();
    let n2 = head(&w, &admin);
    assert!(n2 >= n);
    let received = poll(Duration::from_secs(30), || {
        let got = rsyslog.received();
        let last = got
            .last()
            .and_then(|m| {
                m["structured_data"]
                    .as_str()
                    .and_then(|sd| sd.split("seq=\"").nth(1))
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        (last >= n2).then_some(got)
    })
    .expect("the drain finishes after the restart");
    check_received(&received, n2);
    // The chain itself survived the kill.
    let verified = w.run(&admin, &["audit", "verify"]);
    assert!(
        verified.ok().starts_with("audit chain intact"),
        "{verified}"
    );
}

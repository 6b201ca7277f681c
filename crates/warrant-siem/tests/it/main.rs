//! The sinks against real receivers: rsyslog over TLS (RFC 5425) parsing every field, a
//! webhook receiver that checks each batch's signature and fails the first attempt.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warrant_audit::Record;
use warrant_core::{Clock, Secret, SystemClock};
use warrant_siem::syslog::{SyslogConfig, SyslogSink, TlsConfig};
use warrant_siem::webhook::{WebhookSink, verify};
use warrant_siem::{Format, Sink};
use warrant_testkit::RsyslogFixture;

fn record(seq: i64) -> Record {
    Record {
        seq,
        at_ms: 1_764_900_000_000 + seq,
        actor: Some("alice".into()),
        kind: "grant.revoked".into(),
        data: format!(
            r#"{{"type":"grant.revoked","grant_id":"g{seq}","identity":"bob","target":"pg-prod","reason":"done"}}"#
        ),
        prev_hash: format!("p{seq}"),
        hash: format!("h{seq}"),
    }
}

#[tokio::test]
async fn syslog_over_tls_reaches_rsyslog_parsed_and_in_order() {
    let rsyslog = RsyslogFixture::start_tls().expect("rsyslog with TLS (scripts/deps/rsyslog.sh)");
    let config = SyslogConfig {
        address: rsyslog.address(),
        tls: Some(TlsConfig {
            ca_file: rsyslog.ca_file(),
            server_name: Some("localhost".into()),
        }),
        hostname: Some("warrant-tls".into()),
        app_name: "warrant".into(),
        sd_id: "warrant@32473".into(),
    };
    let mut sink = Sink::Syslog(SyslogSink::new(config.clone(), Format::Ocsf).unwrap());
    for start in [1, 4] {
        let batch: Vec<Record> = (start..start + 3).map(record).collect();
        sink.deliver(&batch).await.unwrap();
    }
    let got = tokio::task::spawn_blocking(move || {
        let got = rsyslog.wait_for(6, Duration::from_secs(15));
        (got, rsyslog)
    })
    .await
    .unwrap();
    let received = got.0.unwrap();
    for (i, m) in received.iter().enumerate() {
        let seq = i + 1;
        assert_eq!(m["hostname"], "warrant-tls", "{m:#}");
        assert_eq!(m["app_name"], "warrant", "{m:#}");
        assert_eq!(m["msgid"], "grant.revoked", "{m:#}");
        assert_eq!(m["severity"], "6", "{m:#}");
        let sd = m["structured_data"].as_str().unwrap();
        assert_eq!(
            sd,
            format!(
                "[warrant@32473 seq=\"{seq}\" hash=\"h{seq}\" actor=\"alice\" identity=\"bob\" target=\"pg-prod\" grant_id=\"g{seq}\"]"
            )
        );
        let msg = m["msg"].as_str().unwrap().trim_start_matches('\u{feff}');
        let event: serde_json::Value = serde_json::from_str(msg).unwrap();
        assert_eq!(event["metadata"]["uid"], seq.to_string());
        assert_eq!(event["class_uid"], 3005, "{event:#}");
    }

    // A receiver whose certificate is not for the name asked for is refused.
    let wrong = SyslogConfig {
        tls: Some(TlsConfig {
            ca_file: got.1.ca_file(),
            server_name: Some("siem.example.com".into()),
        }),
        ..config
    };
    let mut sink = SyslogSink::new(wrong, Format::Ocsf).unwrap();
    let e = sink.deliver(&[record(7)]).await.unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
}

/// A webhook receiver: answers 401 to a request whose signature (over the timestamp, the
/// range and the body) does not verify, 500 to the first signed one, 200 after; keeps each
/// accepted range and body.
async fn receiver(
    secret: &'static [u8],
) -> (String, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<u16>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let (b, st) = (bodies.clone(), statuses.clone());
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let k = conn.read(&mut chunk).await.unwrap();
                assert!(k > 0, "the client closed early");
                buf.extend_from_slice(&chunk[..k]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap();
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let k = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..k]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let body = &buf[head_end..head_end + len];
            // The signature covers the range header too: a receiver that verifies it can
            // trust which records the batch says it holds.
            let signed = verify(
                secret,
                &header("x-warrant-timestamp"),
                &header("x-warrant-records"),
                body,
                &header("x-warrant-signature"),
            );
            n += 1;
            let status = if !signed {
                401
            } else if n == 1 {
                500
            } else {
                b.lock().unwrap().push(format!(
                    "{}|{}",
                    header("x-warrant-records"),
                    String::from_utf8_lossy(body)
                ));
                200
            };
            st.lock().unwrap().push(status);
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            conn.write_all(answer.as_bytes()).await.unwrap();
            let _ = conn.shutdown().await;
        }
    });
    (url, bodies, statuses)
}

#[tokio::test]
async fn a_webhook_batch_is_signed_refused_once_then_delivered() {
    const SECRET: &[u8] = b"webhook secret of the test";
    let (url, bodies, statuses) = receiver(SECRET).await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut sink = Sink::Webhook(
        WebhookSink::with_secret(
            &url,
            Secret::new(SECRET.to_vec()),
            Format::Jsonl,
            clock.clone(),
        )
        .unwrap(),
    );
    let batch: Vec<Record> = (1..=5).map(record).collect();
    let e = sink.deliver(&batch).await.unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
    sink.deliver(&batch).await.unwrap();
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (range, body) = got[0].split_once('|').unwrap();
    assert_eq!(range, "1-5");
    let seqs: Vec<i64> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);

    // Signed with another secret: the receiver refuses it, the sink reports it.
    let mut forged = WebhookSink::with_secret(
        &url,
        Secret::new(b"not the shared secret!!".to_vec()),
        Format::Jsonl,
        clock.clone(),
    )
    .unwrap();
    let e = forged.deliver(&batch).await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");

    // A batch signed with the shared secret whose range was rewritten on the way (records
    // 1-5 passed off as 6-10): the range is signed, so the receiver refuses it.
    let timestamp = (clock.now().millis() / 1000).to_string();
    let body = "{\"seq\":1}\n";
    let signature = warrant_siem::webhook::sign(SECRET, &timestamp, "1-5", body.as_bytes());
    let http = reqwest::Client::new();
    for (records, expected) in [("6-10", 401), ("1-5", 200)] {
        let answer = http
            .post(&url)
            .header("X-Warrant-Timestamp", &timestamp)
            .header("X-Warrant-Records", records)
            .header("X-Warrant-Signature", format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), expected, "range {records}");
    }
    assert_eq!(*statuses.lock().unwrap(), [500, 200, 401, 401, 200]);
    assert_eq!(
        bodies.lock().unwrap().last().unwrap(),
        &format!("1-5|{body}")
    );
}

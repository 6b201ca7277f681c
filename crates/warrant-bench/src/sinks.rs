//! `sinks`: how fast a SIEM sink drains a backlog. A store is filled with `--events` audit
//! events (~300-byte `grant.created`, in transactions of 1,000), then the engine's sink
//! workers start, each on its own sink, and the bench times each until its cursor reaches the
//! head: a JSON-lines file (synced per batch) and RFC 5424 syslog over TCP to a real rsyslog
//! (`warrant-testkit`), both with the default batch of 500 and OCSF encoding.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use warrant_audit::Event;
use warrant_core::{Clock, SystemClock};
use warrant_engine::sinks::SinkConfig;
use warrant_testkit::RsyslogFixture;

use crate::Common;
use crate::fixture::Fixture;
use crate::report::{Better, Figure, Report, progress};

/// Options of `sinks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the backlog.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Records per delivery.
    #[arg(long, default_value_t = 500)]
    batch: i64,
}

fn event(n: u64) -> Event {
    Event::GrantCreated {
        grant_id: format!("0190f3a1c2d34e5f8a9b{n:012x}"),
        request_id: format!("0190f3a1c2d34e5f8a9c{n:012x}"),
        identity: format!("user{}", n % 1000),
        target: "web-1".into(),
        role: "root".into(),
        starts_at: "2026-01-05T10:00:00.000Z".into(),
        ends_at: "2026-01-05T11:00:00.000Z".into(),
    }
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    let fx = Fixture::new(common, false).await?;
    progress(&format!("sinks: writing {} events", args.events));
    let store = fx.engine.store().clone();
    let mut n = 0;
    while n < args.events {
        let now = SystemClock.now();
        let mut tx = store.begin().await?;
        for _ in 0..1000.min(args.events - n) {
            tx.audit(now, Some("erin"), &event(n)).await?;
            n += 1;
        }
        tx.commit().await?;
    }
    let head = {
        let mut r = store.read().await?;
        r.q().audit_head().await?.0
    };
    let rsyslog = RsyslogFixture::start().context("rsyslog (scripts/deps/rsyslog.sh)")?;
    let file = fx.dir.path().join("sink.jsonl");
    let yaml = format!(
        "- {{ name: file, file: {{ path: \"{}\", rotate_bytes: 10000000000 }}, batch: {b} }}\n- {{ name: syslog, syslog: {{ address: \"{}\" }}, batch: {b} }}\n",
        file.display(),
        rsyslog.address(),
        b = args.batch
    );
    let configs: Vec<SinkConfig> = serde_yaml_ng::from_str(&yaml)?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    progress(&format!("sinks: draining {head} records into each sink"));
    let started = Instant::now();
    let workers = fx.engine.start_sinks(&configs, &stop)?;
    let mut done: Vec<(String, f64)> = Vec::new();
    let deadline = started + Duration::from_secs(600);
    while done.len() < configs.len() && Instant::now() < deadline {
        for s in fx.engine.sink_statuses(&fx.admin)? {
            if s.cursor >= head && !done.iter().any(|(n, _)| *n == s.name) {
                done.push((s.name.clone(), started.elapsed().as_secs_f64()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let received = rsyslog.received().len();
    for (name, secs) in &done {
        #[allow(clippy::cast_precision_loss)]
        let rate = head as f64 / secs;
        report.add(Figure::new(
            &format!("sinks.{name}.events_per_s"),
            rate,
            "events/s",
            Better::Higher,
            format!(
                "{head} records drained in {secs:.2} s, batches of {}, OCSF{}",
                args.batch,
                if name == "syslog" {
                    format!(
                        ", RFC 5424 over TCP to rsyslog on loopback ({received} messages written by rsyslog when the cursor reached the head)"
                    )
                } else {
                    ", JSON lines appended and fdatasync'd per batch".to_owned()
                }
            ),
        ));
    }
    anyhow::ensure!(
        done.len() == configs.len(),
        "not every sink caught up within 600 s: {done:?}"
    );
    fx.close(common).await
}

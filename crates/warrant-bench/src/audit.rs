//! `audit`: durable audit events per second on SQLite (WAL, synchronous=FULL, as the store
//! opens it), and the speed of verifying the chain.
//!
//! Each phase appends `grant.created` events (a typical ~300-byte event) through the store's
//! own write path: `Store::begin`, `WriteTx::audit` × k, `WriteTx::commit`; an event counts only
//! once its commit (and so its fsync) has returned. Phases: one event per transaction from one
//! task and from C tasks (there is no group commit: the store has a single writer connection,
//! so C tasks queue for it), then k = 10 and k = 100 events per transaction. Then
//! `warrant_engine::verify_store` over everything written, with the time split into reading
//! and hashing, and a probe of the disk's raw fsync rate for context.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use warrant_audit::{Event, Verifier};
use warrant_core::{Clock, SystemClock};
use warrant_store::{AuditQuery, Store};

use crate::Common;
use crate::cpu;
use crate::fixture::Fixture;
use crate::load::drive;
use crate::report::{Better, Figure, Goal, Report, progress};

/// Options of `audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent writers in the multi-task phases.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to measure per phase.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Seconds of warm-up per phase (not counted).
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Events per transaction in the batch phases.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100])]
    batches: Vec<usize>,
    /// At most this many events per phase.
    #[arg(long, default_value_t = 1_000_000)]
    max_events: u64,
    /// Seconds of the raw fsync probe (0 skips it).
    #[arg(long, default_value_t = 2.0)]
    fsync_secs: f64,
    /// Records to hash in memory for the hashing-only figure.
    #[arg(long, default_value_t = 200_000)]
    hash_sample: usize,
}

fn event(task: usize, n: u64) -> Event {
    Event::GrantCreated {
        grant_id: format!("0190f3a1c2d34e5f8a9b{task:04x}{n:08x}"),
        request_id: format!("0190f3a1c2d34e5f8a9b{n:08x}{task:04x}"),
        identity: format!("user{}", n % 1000),
        target: "web-1".into(),
        role: "root".into(),
        starts_at: "2026-01-05T10:00:00.000Z".into(),
        ends_at: "2026-01-05T11:00:00.000Z".into(),
    }
}

/// Appends `k` events in one transaction and commits.
async fn append(store: &Store, task: usize, seq: u64, k: usize) -> Result<()> {
    let now = SystemClock.now();
    let mut tx = store.begin().await?;
    for i in 0..k {
        tx.audit(now, Some("erin"), &event(task, seq * 1000 + i as u64))
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    let fx = Fixture::new(common, false).await?;
    let store = fx.engine.store().clone();

    if args.fsync_secs > 0.0 {
        let dir = fx.dir.path().to_path_buf();
        let secs = args.fsync_secs;
        let rate = tokio::task::spawn_blocking(move || fsync_probe(&dir, secs))
            .await
            .context("the fsync probe failed")??;
        report.add(Figure::new(
            "audit.disk.fsyncs_per_s",
            rate,
            "fsyncs/s",
            Better::Higher,
            format!(
                "4 KiB append + fdatasync in a loop for {secs} s, same directory as the store (context: PRODUCT.md says ~8,000/s)"
            ),
        ));
    }

    let mut phases: Vec<(usize, usize)> = vec![(1, 1)];
    if args.concurrency > 1 {
        phases.push((1, args.concurrency));
    }
    for &k in &args.batches {
        phases.push((k.max(1), args.concurrency.max(1)));
    }
    for (k, c) in phases {
        progress(&format!(
            "audit: {k} event(s) per transaction from {c} task(s), {} s",
            args.duration
        ));
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cpu = cpu::Snapshot::take();
        let st = store.clone();
        let out = drive(
            c,
            args.warmup,
            args.duration,
            (args.max_events / k as u64).max(1),
            move |task| {
                let st = st.clone();
                let counter = std::sync::Arc::clone(&counter);
                async move {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    append(&st, task, n, k).await
                }
            },
        )
        .await?;
        let events = out.ok * k as u64;
        let rate = events as f64 / out.secs;
        let detail = format!(
            "{k} event(s)/transaction, {c} task(s): {events} events in {:.1} s = {:.0} commits/s; commit p50 {:.3} ms, p99 {:.3} ms; {} errors; {}",
            out.secs,
            out.rate(),
            out.latency.p50_ms,
            out.latency.p99_ms,
            out.errors,
            cpu.since()
        );
        let fig = Figure::new(
            &format!("audit.k{k}.c{c}.events_per_s"),
            rate,
            "events/s",
            Better::Higher,
            detail,
        )
        .goal(
            Goal::AtLeast(50_000.0),
            ">= 50,000 durable events/s (group commit)",
        );
        report.add(fig);
        if let Some(e) = out.first_error {
            report.note(format!("first error: {e}"));
        }
    }

    verify(&store, &args, report).await?;
    fx.close(common).await
}

/// Appends 4 KiB and fdatasyncs, in a loop, for `secs`; returns fsyncs per second.
fn fsync_probe(dir: &std::path::Path, secs: f64) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let block = [0x5a_u8; 4096];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut n = 0_u64;
    while Instant::now() < end {
        f.write_all(&block)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

async fn verify(store: &Store, args: &Args, report: &mut Report) -> Result<()> {
    let head = {
        let mut r = store.read().await?;
        r.q().audit_head().await?.0
    };
    progress(&format!("audit: verifying the chain of {head} events"));

    let cpu = cpu::Snapshot::take();
    let start = Instant::now();
    let rep = warrant_engine::verify_store(store).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu_text = cpu.since();
    anyhow::ensure!(
        rep.intact,
        "the chain does not verify: {:?} at {:?}",
        rep.problem,
        rep.first_broken
    );
    let rate = rep.records as f64 / secs;
    report.add(Figure::new(
        "audit.verify.events_per_s",
        rate,
        "events/s",
        Better::Higher,
        format!(
            "verify_store over {} events in {secs:.2} s (pages of 10,000); {cpu_text}",
            rep.records
        ),
    ));
    report.add(
        Figure::new(
            "audit.verify.extrapolated_1m_s",
            1_000_000.0 / rate,
            "s",
            Better::Lower,
            format!(
                "EXTRAPOLATED linearly from {} events: 1,000,000 / {rate:.0} per s",
                rep.records
            ),
        )
        .goal(Goal::Below(2.0), "1,000,000 events verified in < 2 s"),
    );

    // Where the time goes: reading the records alone, then hashing alone in memory.
    let start = Instant::now();
    let mut read = 0_u64;
    let mut sample = Vec::with_capacity(args.hash_sample);
    {
        let mut r = store.read().await?;
        let mut after = 0;
        loop {
            let page = r
                .q()
                .audit(&AuditQuery {
                    after_seq: after,
                    limit: 10_000,
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            read += page.len() as u64;
            if sample.len() < args.hash_sample {
                let room = args.hash_sample - sample.len();
                sample.extend(page.into_iter().take(room));
            }
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    report.add(Figure::new(
        "audit.verify.read_only_events_per_s",
        read as f64 / read_secs,
        "events/s",
        Better::Higher,
        format!("the same pages read through the store, no hashing: {read} in {read_secs:.2} s"),
    ));
    let start = Instant::now();
    let mut v = Verifier::new();
    for rec in &sample {
        if !v.push(rec) {
            break;
        }
    }
    let hash_secs = start.elapsed().as_secs_f64();
    let hashed = v.finish(None);
    anyhow::ensure!(hashed.intact, "the in-memory sample does not verify");
    report.add(Figure::new(
        "audit.verify.hash_only_events_per_s",
        hashed.records as f64 / hash_secs,
        "events/s",
        Better::Higher,
        format!(
            "Verifier::push over {} records already in memory (SHA-256 + hex), one thread",
            hashed.records
        ),
    ));
    Ok(())
}

//! `audit`: durable audit events per second on SQLite (WAL, synchronous=FULL, as the store
//! opens it), and the speed of verifying the chain.
//!
//! Each phase appends `grant.created` events (a typical ~300-byte event, time-ordered request
//! and grant ids as the engine makes them) through the store's own write path: `Store::begin`,
//! `WriteTx::audit` × k, `WriteTx::commit`; an event counts only once its commit (and so its
//! fsync) has returned. Phases: one event per change from one task (nothing to group: one
//! fsync per change), from C tasks and from `--group` tasks (group commit: the changes that
//! queue for the writer commit together), a typical change (a row written and its event)
//! from `--group` tasks, then k = 10 and k = 100 events per change from C tasks. Each phase
//! reports the batches the group commit made. Then `warrant_engine::verify_store` over
//! everything written, with the time split into reading and hashing, and a probe of the disk's
//! raw fsync rate for context.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use warrant_audit::{Event, Verifier};
use warrant_core::Timestamp;
use warrant_core::{Clock, SystemClock};
use warrant_store::{AuditQuery, JobRow, Store};

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
    /// Concurrent writers in the group-commit phases (a busy server's requests in flight).
    #[arg(long, default_value_t = 64)]
    group: usize,
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

fn event(now: Timestamp, n: u64) -> Result<Event> {
    Ok(Event::GrantCreated {
        grant_id: warrant_iam::new_time_ordered_id(now)?,
        request_id: warrant_iam::new_time_ordered_id(now)?,
        identity: format!("user{}", n % 1000),
        target: "web-1".into(),
        role: "root".into(),
        starts_at: "2026-01-05T10:00:00.000Z".into(),
        ends_at: "2026-01-05T11:00:00.000Z".into(),
    })
}

/// Appends `k` events in one change and commits; with `row`, the change also writes a row
/// (a job, as a grant's cleanup would), so it has a savepoint of its own.
async fn append(store: &Store, seq: u64, k: usize, row: bool) -> Result<()> {
    let now = SystemClock.now();
    let mut tx = store.begin().await?;
    if row {
        tx.w()
            .await?
            .insert_job(&JobRow {
                id: warrant_iam::new_time_ordered_id(now)?,
                kind: "bench".into(),
                grant_id: warrant_iam::new_time_ordered_id(now)?,
                attempts: 0,
                // Never due: the scheduler leaves it alone.
                next_at: Timestamp::from_millis(now.millis() + 365 * 86_400_000),
                last_error: None,
                created_at: now,
                done_at: None,
            })
            .await?;
    }
    for i in 0..k {
        tx.audit(now, Some("erin"), &event(now, seq * 1000 + i as u64)?)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A phase: `k` events per change from `c` tasks; `row`: each change also writes a row.
struct Phase {
    k: usize,
    c: usize,
    row: bool,
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

    let phase = |k: usize, c: usize, row: bool| Phase {
        k: k.max(1),
        c: c.max(1),
        row,
    };
    let mut phases = vec![phase(1, 1, false)];
    if args.concurrency > 1 {
        phases.push(phase(1, args.concurrency, false));
    }
    if args.group > 1 {
        phases.push(phase(1, args.group, false));
        phases.push(phase(1, args.group, true));
    }
    for &k in &args.batches {
        phases.push(phase(k, args.concurrency, false));
    }
    for Phase { k, c, row } in phases {
        let what = if row { "a row and " } else { "" };
        progress(&format!(
            "audit: {what}{k} event(s) per change from {c} task(s), {} s",
            args.duration
        ));
        let before = store.group_commit_stats().await;
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let cpu = cpu::Snapshot::take();
        let st = store.clone();
        let out = drive(
            c,
            args.warmup,
            args.duration,
            (args.max_events / k as u64).max(1),
            move |_task| {
                let st = st.clone();
                let counter = std::sync::Arc::clone(&counter);
                async move {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    append(&st, n, k, row).await
                }
            },
        )
        .await?;
        let events = out.ok * k as u64;
        let rate = events as f64 / out.secs;
        let batches = match (before, store.group_commit_stats().await) {
            (Some(b), Some(a)) if a.batches > b.batches => {
                let n = a.batches - b.batches;
                format!(
                    "{n} group commits, {:.1} changes each",
                    (a.changes - b.changes) as f64 / n as f64
                )
            }
            _ => "no group commit".to_owned(),
        };
        let what = if row { "a row + " } else { "" };
        let detail = format!(
            "{what}{k} event(s)/change, {c} task(s): {events} events in {:.1} s = {:.0} changes/s; commit p50 {:.3} ms, p99 {:.3} ms; {batches}; {} errors; {}",
            out.secs,
            out.rate(),
            out.latency.p50_ms,
            out.latency.p99_ms,
            out.errors,
            cpu.since()
        );
        let name = if row {
            format!("audit.row.k{k}.c{c}.events_per_s")
        } else {
            format!("audit.k{k}.c{c}.events_per_s")
        };
        let mut fig = Figure::new(&name, rate, "events/s", Better::Higher, detail);
        fig = if k == 1 && c > 1 && !row {
            fig.goal(
                Goal::AtLeast(20_000.0),
                ">= 20,000 durable events/s with group commit (issue 6; PRODUCT.md asks 50,000)",
            )
        } else {
            fig.goal(
                Goal::AtLeast(50_000.0),
                ">= 50,000 durable events/s (PRODUCT.md)",
            )
        };
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
            "verify_store over {} events in {secs:.2} s (SQLite: native driver, pages of 2,000 in one snapshot); {cpu_text}",
            rep.records
        ),
    ));
    let how = if rep.records >= 1_000_000 {
        format!(
            "MEASURED over {} events, scaled to 1,000,000: 1,000,000 / {rate:.0} per s",
            rep.records
        )
    } else {
        format!(
            "EXTRAPOLATED linearly from {} events: 1,000,000 / {rate:.0} per s",
            rep.records
        )
    };
    report.add(
        Figure::new(
            "audit.verify.1m_s",
            1_000_000.0 / rate,
            "s",
            Better::Lower,
            how,
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
        "audit.verify.any_pages_read_only_events_per_s",
        read as f64 / read_secs,
        "events/s",
        Better::Higher,
        format!(
            "for comparison, the Any driver's pages of 10,000 (PostgreSQL's path), read only, no hashing: {read} in {read_secs:.2} s"
        ),
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

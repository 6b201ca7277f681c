//! `expiry`: how late the real scheduler closes grants, with many active and a burst that ends
//! in the same second.
//!
//! Setup: N active grants (default 100,000) inserted directly through the store, in
//! transactions of `--batch` grants, each grant with its own `grant.created` audit event, as
//! the engine writes it. Their ends are on the real clock: `--burst` of them (10,000) end at
//! the same instant B (or spread over `--burst-spread-ms`), the rest evenly over the
//! `--spread-secs` (60) after B + 1 s. Then `Engine::run_scheduler` runs.
//!
//! Two lags per grant:
//!
//! - recorded: the `lag_ms` of its `grant.ended` event, which the scheduler computes from the
//!   instant it *starts* the closing transaction;
//! - committed: from its end to the first moment a reader saw the event committed (a poller
//!   reads the audit head every `--poll-ms`), an upper bound that includes the transaction
//!   itself and the fsync. This is the one judged against the target.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::sync::watch;
use warrant_core::{Clock, Grant, GrantStatus, Name, SystemClock, Timestamp};

use crate::Common;
use crate::cpu;
use crate::fixture::{Fixture, insert_grants};
use crate::report::{Better, Figure, Goal, Report, progress};
use crate::stats::summarise_ms;

/// Options of `expiry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Active grants in all.
    #[arg(long, default_value_t = 100_000)]
    grants: usize,
    /// Of which this many end at the same instant.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Spread the burst's ends over this many milliseconds (0: the same millisecond).
    #[arg(long, default_value_t = 0)]
    burst_spread_ms: i64,
    /// The other grants end evenly over this many seconds after the burst's second.
    #[arg(long, default_value_t = 60)]
    spread_secs: i64,
    /// Seconds from the start of the run to the burst (must cover the inserts).
    #[arg(long, default_value_t = 25)]
    lead_secs: i64,
    /// Grants per insert transaction.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Identities the grants are spread over.
    #[arg(long, default_value_t = 1_000)]
    identities: usize,
    /// How often the poller reads the audit head, in milliseconds.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Give up this many seconds after the last end.
    #[arg(long, default_value_t = 30)]
    drain_timeout_secs: i64,
}

/// When grant `i` ends.
fn ends_at(args: &Args, burst_at: Timestamp, i: usize) -> Timestamp {
    if i < args.burst {
        let off = if args.burst > 1 {
            args.burst_spread_ms * i as i64 / args.burst as i64
        } else {
            0
        };
        burst_at.plus_millis(off)
    } else {
        let rest = (args.grants - args.burst).max(1) as i64;
        let k = (i - args.burst) as i64 + 1;
        burst_at.plus_millis(1000 + args.spread_secs * 1000 * k / rest)
    }
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(args.burst <= args.grants, "--burst exceeds --grants");
    ensure!(
        args.batch > 0 && args.identities > 0,
        "--batch and --identities must be positive"
    );
    let fx = Fixture::new(common, false).await?;
    let store = fx.engine.store().clone();
    let clock = SystemClock;
    let t_start = clock.now();
    let burst_at = Timestamp::from_millis((t_start.millis() / 1000 + args.lead_secs) * 1000);
    let last_end = ends_at(&args, burst_at, args.grants.saturating_sub(1)).max(burst_at);

    // Insert the grants, with one grant.created event each.
    progress(&format!(
        "expiry: inserting {} grants in transactions of {}",
        args.grants, args.batch
    ));
    let target = Name::new("web-1")?;
    let role = Name::new("root")?;
    let users: Vec<Name> = (0..args.identities)
        .map(|i| Name::new(format!("user{i}")))
        .collect::<Result<_, _>>()?;
    let grants = (0..args.grants)
        .map(|j| {
            Ok(Grant {
                id: warrant_iam::new_id()?,
                request_id: warrant_iam::new_id()?,
                identity: users.get(j % users.len()).context("no identity")?.clone(),
                target: target.clone(),
                role: role.clone(),
                rule_id: "group:ops/web-1/root".into(),
                starts_at: t_start,
                ends_at: ends_at(&args, burst_at, j),
                status: GrantStatus::Active,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let insert_start = Instant::now();
    insert_grants(&store, &grants, args.batch, "erin").await?;
    drop(grants);
    let insert_secs = insert_start.elapsed().as_secs_f64();
    report.add(Figure::new(
        "expiry.setup.grants_inserted_per_s",
        args.grants as f64 / insert_secs,
        "grants/s",
        Better::Higher,
        format!(
            "{} grants + {} grant.created events in {insert_secs:.1} s, {} per transaction (setup, not a target)",
            args.grants, args.grants, args.batch
        ),
    ));
    let margin = burst_at.millis() - clock.now().millis();
    if margin < 1000 {
        bail!(
            "inserting took too long: the burst is {margin} ms away; raise --lead-secs (now {})",
            args.lead_secs
        );
    }
    report.note(format!(
        "burst of {} at {burst_at} ({margin} ms after the inserts), {} more until {last_end}",
        args.burst,
        args.grants - args.burst
    ));

    // Poller and scheduler.
    let (stop_tx, stop_rx) = watch::channel(false);
    let poller = {
        let store = store.clone();
        let mut stop = stop_rx.clone();
        let every = Duration::from_millis(args.poll_ms.max(1));
        tokio::spawn(async move {
            let mut seen: Vec<(i64, i64)> = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut last = -1;
            loop {
                let stopping = *stop.borrow();
                let head = {
                    let mut r = store.read().await?;
                    r.q().audit_head().await?.0
                };
                let at = SystemClock.now().millis();
                if head != last {
                    seen.push((at, head));
                    last = head;
                }
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => {}
                }
            }
            anyhow::Ok(seen)
        })
    };
    let scheduler = {
        let engine = fx.engine.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            engine
                .run_scheduler(async move {
                    let _ = stop.wait_for(|v| *v).await;
                })
                .await;
        })
    };

    let deadline = last_end.plus_secs(args.drain_timeout_secs);
    let mut cpu_window = None;
    let mut last_progress = Instant::now();
    let open_at_end = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = clock.now();
        if cpu_window.is_none() && now.millis() >= burst_at.millis() - 100 {
            cpu_window = Some(cpu::Snapshot::take());
        }
        let open = {
            let mut r = store.read().await?;
            r.q().count_open_grants().await?
        };
        if last_progress.elapsed() >= Duration::from_secs(5) {
            progress(&format!(
                "expiry: {open} grants open, {:.1} s to the last end",
                (last_end.millis() - now.millis()) as f64 / 1000.0
            ));
            last_progress = Instant::now();
        }
        if open == 0 || now > deadline {
            break open;
        }
    };
    let cpu_text = cpu_window.map(|c| c.since()).unwrap_or_default();
    let _ = stop_tx.send(true);
    let seen = poller.await.context("the poller failed")??;
    scheduler.await.context("the scheduler task failed")?;

    // Read every grant.ended back.
    let mut recorded = Vec::with_capacity(args.grants);
    let mut committed = Vec::with_capacity(args.grants);
    let mut burst_committed = Vec::with_capacity(args.burst);
    let mut steady_committed = Vec::with_capacity(args.grants - args.burst);
    let mut burst_last_visible = burst_at.millis();
    let mut burst_commits: std::collections::BTreeMap<i64, usize> = Default::default();
    let burst_until = burst_at.millis() + args.burst_spread_ms;
    let mut after = 0;
    loop {
        let page = fx.engine.audit_records(&fx.admin, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for rec in page.iter().filter(|r| r.kind == "grant.ended") {
            let v: serde_json::Value = serde_json::from_str(&rec.data)?;
            let lag = v
                .get("lag_ms")
                .and_then(serde_json::Value::as_i64)
                .context("grant.ended without lag_ms")?;
            let end = rec.at_ms - lag;
            let idx = seen.partition_point(|(_, s)| *s < rec.seq);
            let visible = seen
                .get(idx)
                .map_or_else(|| clock.now().millis(), |(at, _)| *at);
            let c = visible - end;
            recorded.push(lag);
            committed.push(c);
            if end <= burst_until {
                burst_committed.push(c);
                burst_last_visible = burst_last_visible.max(visible);
                *burst_commits
                    .entry(visible - burst_at.millis())
                    .or_default() += 1;
            } else {
                steady_committed.push(c);
            }
        }
    }
    let closed = committed.len();
    let all = summarise_ms(&committed);
    let rec = summarise_ms(&recorded);
    let burst = summarise_ms(&burst_committed);
    let steady = summarise_ms(&steady_committed);
    let setting = format!(
        "{closed} of {} grants closed; committed lag (end → visible to a reader, poll {} ms)",
        args.grants, args.poll_ms
    );
    report.add(Figure::new(
        "expiry.lag_p50_ms",
        all.p50_ms,
        "ms",
        Better::Lower,
        setting.clone(),
    ));
    report.add(
        Figure::new(
            "expiry.lag_p99_ms",
            all.p99_ms,
            "ms",
            Better::Lower,
            setting,
        )
        .goal(Goal::AtMost(1000.0), "p99 within 1 s, burst included"),
    );
    report.add(Figure::new(
        "expiry.lag_max_ms",
        all.max_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));
    report.add(Figure::new(
        "expiry.recorded_lag_p99_ms",
        rec.p99_ms,
        "ms",
        Better::Lower,
        format!(
            "lag_ms of the grant.ended events (to the start of the closing transaction): p50 {} ms, max {} ms",
            rec.p50_ms, rec.max_ms
        ),
    ));
    let burst_secs = (burst_last_visible - burst_at.millis()) as f64 / 1000.0;
    report.add(
        Figure::new(
            "expiry.burst.lag_p99_ms",
            burst.p99_ms,
            "ms",
            Better::Lower,
            format!(
                "{} grants ending within {} ms: p50 {} ms, max {} ms",
                burst.count, args.burst_spread_ms, burst.p50_ms, burst.max_ms
            ),
        )
        .goal(Goal::AtMost(1000.0), "within 1 s"),
    );
    report.add(Figure::new(
        "expiry.burst.closed_per_s",
        if burst_secs > 0.0 {
            burst.count as f64 / burst_secs
        } else {
            0.0
        },
        "grants/s",
        Better::Higher,
        format!(
            "the burst was fully committed {burst_secs:.3} s after its end (a peer: ~2,500 leases/s in bulk)"
        ),
    ));
    report.add(Figure::new(
        "expiry.steady.lag_p99_ms",
        steady.p99_ms,
        "ms",
        Better::Lower,
        format!(
            "{} grants ending ~{:.0}/s after the burst: p50 {} ms, max {} ms",
            steady.count,
            steady.count as f64 / args.spread_secs.max(1) as f64,
            steady.p50_ms,
            steady.max_ms
        ),
    ));
    report.add(
        Figure::new(
            "expiry.not_closed",
            (args.grants - closed.min(args.grants)) as f64,
            "grants",
            Better::Lower,
            format!("{open_at_end} still open when the run stopped"),
        )
        .goal(Goal::Zero, "0"),
    );
    let timeline: Vec<String> = burst_commits
        .iter()
        .take(20)
        .map(|(ms, n)| format!("+{ms} ms: {n}"))
        .collect();
    report.note(format!(
        "the burst became visible in {} steps (ms after its end: grants): {}",
        burst_commits.len(),
        timeline.join(", ")
    ));
    report.note(format!("during the expiry window: {cpu_text}"));
    fx.close(common).await
}

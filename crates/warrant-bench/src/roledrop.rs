//! `roledrop`: from grant end to the temporary PostgreSQL role gone, with many roles ending at
//! once.
//!
//! Setup: a throwaway PostgreSQL (`warrant-testkit`, started here), the demo organisation with
//! pg-prod pointed at it and its admin secret set, `--grants` active grants (1,000) inserted
//! through the store, all ending at the same instant E on the real clock, and for each the
//! temporary role made by the engine's own `db_creds` (`--setup-concurrency` at a time). Then
//! the real scheduler runs with the server's clean-up (`Engine::pg_cleanup`, as `warrant serve`
//! registers it), and a poller lists Warrant's roles on the target every `--poll-ms` and notes
//! when each one is gone.
//!
//! Figure: per role, the time from E to the first poll that no longer sees it (an upper bound
//! by up to one poll interval); the largest is judged against the target (every one within
//! 2 s).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use warrant_core::{Clock, Grant, GrantStatus, Name, Secret, SystemClock, Target, TargetKind};
use warrant_pgroles::{TargetConn, TlsMode};

use crate::Common;
use crate::fixture::{Fixture, insert_grants, user};
use crate::report::{Better, Figure, Goal, Report, progress};
use crate::stats::summarise_ms;

/// Options of `roledrop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Grants (and temporary roles) ending at the same instant.
    #[arg(long, default_value_t = 1_000)]
    grants: usize,
    /// Roles created at a time during the setup.
    #[arg(long, default_value_t = 8)]
    setup_concurrency: usize,
    /// Seconds from the start to the common end (must cover the setup).
    #[arg(long, default_value_t = 60)]
    lead_secs: i64,
    /// How often the poller lists the roles, in milliseconds.
    #[arg(long, default_value_t = 10)]
    poll_ms: u64,
    /// Give up this many seconds after the end.
    #[arg(long, default_value_t = 60)]
    drain_timeout_secs: u64,
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(args.grants > 0, "--grants must be at least 1");
    progress("starting a throwaway PostgreSQL");
    let pg = warrant_testkit::PgFixture::start().map_err(|e| anyhow::anyhow!("{e}"))?;

    let (cleanup, cell) = warrant_engine::pg::pg_cleanup_fn();
    let fx = Fixture::with_cleanups(common, true, vec![cleanup]).await?;
    let engine = fx.engine.clone();
    let _ = cell.set(engine.clone());

    let target = Target {
        name: Name::new("pg-prod")?,
        kind: TargetKind::Postgres,
        address: Some(format!("127.0.0.1:{}", pg.port())),
        owner: Name::new("db-owners")?,
        risk_tier: 4,
        description: "roledrop bench".into(),
        admin_user: Some(pg.user().to_owned()),
        host_key: None,
        connector: Default::default(),
    };
    engine.save_target(&fx.admin, &target).await?;
    engine
        .set_target_secret(&fx.admin, "pg-prod", Secret::new(pg.password().to_owned()))
        .await?;

    let holders = ["alice", "bob", "carol", "dave", "erin"];
    let start = SystemClock.now();
    let ends = start.plus_secs(args.lead_secs);
    let grants: Vec<Grant> = (0..args.grants)
        .map(|i| -> Result<Grant> {
            Ok(Grant {
                id: format!("g{i:07}"),
                request_id: format!("r{i:07}"),
                identity: Name::new(holders[i % holders.len()])?,
                target: Name::new("pg-prod")?,
                role: Name::new("readonly")?,
                rule_id: "bench".into(),
                starts_at: start,
                ends_at: ends,
                status: GrantStatus::Active,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
            })
        })
        .collect::<Result<_>>()?;
    insert_grants(engine.store(), &grants, 1000, "admin").await?;

    progress(&format!(
        "creating {} temporary roles through db_creds ({} at a time)",
        args.grants, args.setup_concurrency
    ));
    let made = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(args.setup_concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for g in &grants {
        let engine = engine.clone();
        let limit = Arc::clone(&limit);
        let (id, who) = (g.id.clone(), g.identity.to_string());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let actor = user(&who)?;
            let c = engine.db_creds(&actor, &id).await?;
            Ok::<_, anyhow::Error>((id, c.user))
        });
    }
    let mut roles: HashMap<String, String> = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (grant, role) = r??;
        roles.insert(role, grant);
    }
    let setup_secs = made.elapsed().as_secs_f64();
    report.add(Figure::new(
        "roledrop.setup.roles_created_per_s",
        args.grants as f64 / setup_secs,
        "roles/s",
        Better::Higher,
        format!(
            "{} db_creds calls, {} at a time, each a new admin login (setup, not a target)",
            args.grants, args.setup_concurrency
        ),
    ));
    let now = SystemClock.now();
    if now >= ends {
        bail!(
            "the setup took {setup_secs:.1} s, past the common end: raise --lead-secs above {}",
            args.lead_secs
        );
    }

    let conn = TargetConn {
        host: "127.0.0.1".into(),
        port: pg.port(),
        dbname: "postgres".into(),
        admin_user: pg.user().to_owned(),
        admin_password: Secret::new(pg.password().to_owned()),
        tls: TlsMode::Disable,
        connect_timeout: Duration::from_secs(10),
    };
    let poller = conn.session().await.context("the poller's admin session")?;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sched = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run_scheduler(async move {
                    let _ = stop_rx.wait_for(|v| *v).await;
                })
                .await;
        })
    };
    progress(&format!(
        "{} roles end together in {:.1} s; polling every {} ms",
        roles.len(),
        (ends.millis() - now.millis()) as f64 / 1000.0,
        args.poll_ms
    ));
    let mut gone_ms: Vec<i64> = Vec::with_capacity(roles.len());
    let mut left: HashMap<String, String> = roles.clone();
    let deadline = ends.plus_secs(i64::try_from(args.drain_timeout_secs).unwrap_or(60));
    while !left.is_empty() {
        let t = SystemClock.now();
        if t > deadline {
            break;
        }
        let present: std::collections::HashSet<String> = poller
            .managed_roles()
            .await
            .context("listing the roles")?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let seen = SystemClock.now();
        left.retain(|name, _| {
            if present.contains(name) {
                true
            } else {
                gone_ms.push((seen.millis() - ends.millis()).max(0));
                false
            }
        });
        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
    }
    let _ = stop_tx.send(true);
    let _ = sched.await;
    ensure!(
        left.is_empty(),
        "{} roles were still there {} s after their grants ended",
        left.len(),
        args.drain_timeout_secs
    );
    let early = gone_ms.iter().filter(|&&ms| ms == 0).count();
    let s = summarise_ms(&gone_ms);
    let setting = format!(
        "{} roles (pg_read_all_data members) whose grants end at the same instant; clean-up by the real scheduler; poll every {} ms; {} seen gone at the end instant",
        s.count, args.poll_ms, early
    );
    report.add(Figure::new(
        "roledrop.end_to_gone_p50_ms",
        s.p50_ms,
        "ms",
        Better::Lower,
        setting,
    ));
    report.add(Figure::new(
        "roledrop.end_to_gone_p99_ms",
        s.p99_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));
    report.add(
        Figure::new(
            "roledrop.end_to_gone_max_ms",
            s.max_ms,
            "ms",
            Better::Lower,
            String::new(),
        )
        .goal(Goal::AtMost(2000.0), "every role gone within 2 s"),
    );
    fx.close(common).await
}

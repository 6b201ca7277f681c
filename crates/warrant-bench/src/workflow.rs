//! `workflow`: full request → approve → active grant workflows per second.
//!
//! carol (ops) asks for `root` on `web-1` for 1 h with a reason; the demo's rule has one stage
//! (an owner of web-1, the `ops` group), so erin approves and the grant is created in the same
//! transaction as the approval. Each workflow is two write transactions. Grants accumulate
//! (carol ends up holding thousands of active grants, which the engine allows); nothing is
//! revoked, so every transaction in the run is part of a workflow.
//!
//! First through the engine (no HTTP), then, on a fresh store, through the HTTP API with the
//! same client the CLI uses.

use anyhow::{Context, Result, ensure};
use reqwest::Method;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warrant_api::wire::{RequestIn, RequestOut};
use warrant_core::{ActivationDuration, GrantStatus, Name, RequestStatus};
use warrant_engine::NewRequest;

use crate::Common;
use crate::cpu;
use crate::fixture::{Fixture, user};
use crate::load::{Outcome, drive};
use crate::report::{Better, Figure, Goal, Report, progress};

/// Where to run the workflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Through the engine, then through HTTP.
    Both,
    /// Through the engine only.
    Engine,
    /// Through HTTP only.
    Http,
}

/// Options of `workflow`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent workflows.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to measure, per mode.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// At most this many workflows per mode.
    #[arg(long, default_value_t = 200_000)]
    max: u64,
    /// Which path to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    if args.mode != Mode::Http {
        engine_mode(common, &args, report).await?;
    }
    if args.mode != Mode::Engine {
        http_mode(common, &args, report).await?;
    }
    Ok(())
}

fn new_request() -> Result<NewRequest> {
    Ok(NewRequest {
        target: Name::new("web-1")?,
        role: Name::new("root")?,
        duration: ActivationDuration::parse("1h")?,
        reason: "benchmark: restart the web tier".into(),
        ticket: None,
        start_at: None,
    })
}

async fn engine_mode(common: &Common, args: &Args, report: &mut Report) -> Result<()> {
    let fx = Fixture::new(common, true).await?;
    let carol = user("carol")?;
    let erin = user("erin")?;
    let input = new_request()?;
    progress(&format!(
        "workflow (engine): {} concurrent, {} s warm-up + {} s",
        args.concurrency, args.warmup, args.duration
    ));
    let cpu = cpu::Snapshot::take();
    let engine = fx.engine.clone();
    let out = drive(
        args.concurrency,
        args.warmup,
        args.duration,
        args.max,
        move |_| {
            let (engine, carol, erin, input) =
                (engine.clone(), carol.clone(), erin.clone(), input.clone());
            async move {
                let v = engine.create_request(&carol, input).await?;
                ensure!(
                    v.status == RequestStatus::Pending,
                    "the request is {:?}, not pending",
                    v.status
                );
                let v = engine.approve(&erin, &v.request.id).await?;
                let g = v.grant.context("the approval created no grant")?;
                ensure!(
                    g.status == GrantStatus::Active,
                    "the grant is {:?}",
                    g.status
                );
                Ok(())
            }
        },
    )
    .await?;
    let cpu_text = cpu.since();
    let open = {
        let mut r = fx.engine.store().read().await?;
        r.q().count_open_grants().await?
    };
    add_figures(
        report,
        "workflow.engine",
        "through the engine",
        args,
        &out,
        open,
    );
    report.note(cpu_text);
    fx.close(common).await
}

async fn http_mode(common: &Common, args: &Args, report: &mut Report) -> Result<()> {
    let fx = Fixture::new(common, true).await?;
    let carol_token = fx
        .engine
        .create_api_token(&user("carol")?, "bench", None, warrant_engine::Scope::Full)
        .await?
        .token
        .expose()
        .clone();
    let erin_token = fx
        .engine
        .create_api_token(&user("erin")?, "bench", None, warrant_engine::Scope::Full)
        .await?
        .token
        .expose()
        .clone();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(warrant_api::serve(
        listener,
        warrant_api::AppState::new(fx.engine.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    // One client pair (same connection pool) per task.
    let clients: Vec<(warrant_api::Client, warrant_api::Client)> = (0..args.concurrency.max(1))
        .map(|_| {
            let carol = warrant_api::Client::new(&base, Some(carol_token.clone()));
            let erin = carol.with_token(Some(erin_token.clone()));
            (carol, erin)
        })
        .collect();
    let body = RequestIn {
        target: "web-1".into(),
        role: "root".into(),
        duration: "1h".into(),
        reason: "benchmark: restart the web tier".into(),
        ticket: None,
        start_at: None,
    };
    progress(&format!(
        "workflow (HTTP): {} concurrent, {} s warm-up + {} s, server on {base}",
        args.concurrency, args.warmup, args.duration
    ));
    let cpu = cpu::Snapshot::take();
    let clients = std::sync::Arc::new(clients);
    let out = drive(
        args.concurrency,
        args.warmup,
        args.duration,
        args.max,
        move |task| {
            let clients = std::sync::Arc::clone(&clients);
            let body = body.clone();
            async move {
                let (carol, erin) = clients.get(task).context("no client for this task")?;
                let r: RequestOut = carol.post("/api/v1/requests", &body).await?;
                ensure!(r.status == "pending", "the request is {}", r.status);
                let path = format!("/api/v1/requests/{}/approve", r.id);
                let r: RequestOut = erin.send::<(), _>(Method::POST, &path, None).await?;
                let g = r.grant.context("the approval created no grant")?;
                ensure!(g.status == "active", "the grant is {}", g.status);
                Ok(())
            }
        },
    )
    .await?;
    let cpu_text = cpu.since();
    let open = {
        let mut r = fx.engine.store().read().await?;
        r.q().count_open_grants().await?
    };
    add_figures(report, "workflow.http", "through HTTP", args, &out, open);
    report.note(cpu_text);
    let _ = stop.send(());
    server.await.context("the server task failed")??;
    fx.close(common).await
}

fn add_figures(
    report: &mut Report,
    prefix: &str,
    path: &str,
    args: &Args,
    out: &Outcome,
    open_grants: i64,
) {
    report.add(
        Figure::new(
            &format!("{prefix}.per_s"),
            out.rate(),
            "workflows/s",
            Better::Higher,
            format!(
                "{path}, {} concurrent, {} ok in {:.1} s, 2 write transactions each; {open_grants} grants open at the end",
                args.concurrency, out.ok, out.secs
            ),
        )
        .goal(Goal::AtLeast(1_000.0), ">= 1,000 workflows/s on SQLite"),
    );
    report.add(Figure::new(
        &format!("{prefix}.p50_ms"),
        out.latency.p50_ms,
        "ms",
        Better::Lower,
        "one workflow, request to active grant".into(),
    ));
    report.add(Figure::new(
        &format!("{prefix}.p99_ms"),
        out.latency.p99_ms,
        "ms",
        Better::Lower,
        format!("max {:.3} ms", out.latency.max_ms),
    ));
    report.add(
        Figure::new(
            &format!("{prefix}.errors"),
            out.errors as f64,
            "errors",
            Better::Lower,
            out.first_error.clone().unwrap_or_default(),
        )
        .goal(crate::report::Goal::Zero, "0"),
    );
}

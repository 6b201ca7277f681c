//! `check`: `POST /api/v1/check` over loopback against the real server, in process.
//!
//! Setup: a fresh SQLite store, bootstrap, the demo organisation, and a 1 h grant of
//! `readonly` on `pg-prod` to alice (the demo's `critical-max-1h` policy forbids longer on that
//! target). Then N HTTP/1.1 keep-alive clients, each its own connection, post
//! `{identity: alice, target: pg-prod, role: readonly}` with the admin token as fast as they
//! can. The server and the load generator share the machine's cores (and this process).
//!
//! `--serve-only SECS` runs the same server without the load generator so that an external
//! tool (wrk with `crates/warrant-bench/check.lua`) can load it instead.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use warrant_core::{ActivationDuration, Grant, GrantStatus, Name};
use warrant_engine::{Engine, NewRequest};

use crate::Common;
use crate::cpu;
use crate::fixture::{Fixture, insert_grants, user};
use crate::load::drive;
use crate::report::{Better, Figure, Goal, Report, progress};
use crate::stats::{micros, summarise_us};

/// Options of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent HTTP/1.1 keep-alive clients, one connection each.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds to measure the engine alone (authenticate + check, no HTTP); 0 skips it.
    #[arg(long, default_value_t = 3.0)]
    engine_secs: f64,
    /// Give alice this many more active grants of the same role on the same target first (an
    /// identity that holds many grants; 0: only the one).
    #[arg(long, default_value_t = 0)]
    holder_grants: usize,
    /// Open this many active grants of other identities (web-1/root) first: the store as it is
    /// with many grants in force (PRODUCT.md's 100,000).
    #[arg(long, default_value_t = 0)]
    other_grants: usize,
    /// Serve for this many seconds without generating load (for wrk); prints the URL and token.
    #[arg(long)]
    serve_only: Option<f64>,
    /// Where to listen (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// With --serve-only: write `WARRANT_BENCH_URL=…` and `WARRANT_BENCH_TOKEN=…` lines here.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

/// The JSON body every client posts.
const BODY: &str = r#"{"identity":"alice","target":"pg-prod","role":"readonly"}"#;

/// The grant that makes every check an "allowed" one.
async fn grant_alice(engine: &Engine) -> Result<String> {
    let alice = user("alice")?;
    let view = engine
        .create_request(
            &alice,
            NewRequest {
                target: Name::new("pg-prod")?,
                role: Name::new("readonly")?,
                duration: ActivationDuration::parse("1h")?,
                reason: "benchmark".into(),
                ticket: None,
                start_at: None,
            },
        )
        .await?;
    let grant = view
        .grant
        .context("alice's readonly request on pg-prod did not produce a grant at once")?;
    Ok(grant.id)
}

/// Inserts `n` active grants of `role` on `target`, ending 1 h to 2 h from now, held by
/// `holder(i)`.
async fn more_grants(
    fx: &Fixture,
    n: usize,
    holder: impl Fn(usize) -> String,
    target: &str,
    role: &str,
) -> Result<()> {
    let now = fx.engine.now();
    let grants = (0..n)
        .map(|i| {
            Ok(Grant {
                id: warrant_iam::new_id()?,
                request_id: warrant_iam::new_id()?,
                identity: Name::new(holder(i))?,
                target: Name::new(target)?,
                role: Name::new(role)?,
                rule_id: format!("bench/{target}/{role}"),
                starts_at: now,
                ends_at: now.plus_secs(3600 + (i as i64 % 3600)),
                status: GrantStatus::Active,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    insert_grants(fx.engine.store(), &grants, 5_000, "bob").await
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(
        args.listen.ip().is_loopback(),
        "--listen must be a loopback address"
    );
    ensure!(args.clients > 0, "--clients must be at least 1");
    let fx = Fixture::new(common, true).await?;
    let grant_id = grant_alice(&fx.engine).await?;
    if args.holder_grants > 0 {
        more_grants(
            &fx,
            args.holder_grants,
            |_| "alice".into(),
            "pg-prod",
            "readonly",
        )
        .await?;
        report.note(format!(
            "alice holds {} more active grants of pg-prod/readonly",
            args.holder_grants
        ));
    }
    if args.other_grants > 0 {
        more_grants(
            &fx,
            args.other_grants,
            |i| format!("user{}", i % 1000),
            "web-1",
            "root",
        )
        .await?;
        report.note(format!(
            "{} other active grants (web-1/root, 1,000 other identities) are open",
            args.other_grants
        ));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(warrant_api::serve(
        listener,
        warrant_api::AppState::new(fx.engine.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let base = format!("http://{addr}");
    report.note(format!(
        "server on {base}; alice holds grant {grant_id} (pg-prod/readonly, 1h)"
    ));

    let outcome = if let Some(secs) = args.serve_only {
        serve_only(&args, &base, &fx.admin_token, secs, report).await
    } else {
        measure(&args, &base, &fx, report).await
    };
    let _ = stop.send(());
    match server.await {
        Ok(r) => r.context("the server failed")?,
        Err(e) => bail!("the server task failed: {e}"),
    }
    fx.close(common).await?;
    outcome
}

async fn serve_only(
    args: &Args,
    base: &str,
    token: &str,
    secs: f64,
    report: &mut Report,
) -> Result<()> {
    let lines = format!("WARRANT_BENCH_URL={base}\nWARRANT_BENCH_TOKEN={token}\n");
    match &args.env_file {
        Some(path) => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.write_all(lines.as_bytes())?;
            f.sync_all()?;
        }
        None => print!("{lines}"),
    }
    report.note(format!(
        "serving for {secs} s without load (point wrk at {base}/api/v1/check)"
    ));
    tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
    Ok(())
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientResult {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn client_loop(
    url: String,
    auth: String,
    warm_end: Instant,
    end: Instant,
) -> Result<ClientResult> {
    // One client, one keep-alive connection: N clients are N connections.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()?;
    let mut out = ClientResult {
        latencies_us: Vec::with_capacity(1 << 16),
        ..ClientResult::default()
    };
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        let answer = http
            .post(&url)
            .header(AUTHORIZATION, &auth)
            .header(CONTENT_TYPE, "application/json")
            .body(BODY)
            .send()
            .await;
        let outcome = match answer {
            Ok(resp) => {
                let status = resp.status();
                match resp.bytes().await {
                    Ok(b) if status.is_success() && contains(&b, br#""allowed":true"#) => Ok(()),
                    Ok(b) => Err(format!("{status}: {}", String::from_utf8_lossy(&b))),
                    Err(e) => Err(format!("reading the answer: {e}")),
                }
            }
            Err(e) => Err(format!("sending: {e}")),
        };
        let done = Instant::now();
        if done < warm_end || done > end {
            continue;
        }
        match outcome {
            Ok(()) => out.latencies_us.push(micros(done - start)),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn measure(args: &Args, base: &str, fx: &Fixture, report: &mut Report) -> Result<()> {
    let url = format!("{base}/api/v1/check");
    let auth = format!("Bearer {}", fx.admin_token);

    // One call first: the answer must be an allowed decision.
    let first = reqwest::Client::new()
        .post(&url)
        .header(AUTHORIZATION, &auth)
        .header(CONTENT_TYPE, "application/json")
        .body(BODY)
        .send()
        .await?;
    let status = first.status();
    let text = first.text().await?;
    ensure!(
        status.is_success() && text.contains(r#""allowed":true"#),
        "the check does not answer allowed: {status} {text}"
    );

    progress(&format!(
        "check: {} clients, {} s warm-up + {} s measured",
        args.clients, args.warmup, args.duration
    ));
    let t0 = Instant::now();
    let warm_end = t0 + Duration::from_secs_f64(args.warmup.max(0.0));
    let end = warm_end + Duration::from_secs_f64(args.duration.max(0.1));
    let handles: Vec<_> = (0..args.clients)
        .map(|_| tokio::spawn(client_loop(url.clone(), auth.clone(), warm_end, end)))
        .collect();
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu = cpu::Snapshot::take();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for h in handles {
        let r = h.await.context("a client task failed")??;
        all.extend(r.latencies_us);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let cpu_text = cpu.since();
    let secs = (end - warm_end).as_secs_f64();
    let ok = all.len();
    let s = summarise_us(all);
    let rate = ok as f64 / secs;
    let setting = format!(
        "{} keep-alive clients in process, {} ok in {secs:.1} s, server and load generator share the machine",
        args.clients, ok
    );
    report.add(
        Figure::new(
            "check.http.decisions_per_s",
            rate,
            "decisions/s",
            Better::Higher,
            setting,
        )
        .goal(Goal::AtLeast(30_000.0), ">= 30,000/s on 2 cores"),
    );
    report.add(Figure::new(
        "check.http.p50_ms",
        s.p50_ms,
        "ms",
        Better::Lower,
        format!("mean {:.3} ms", s.mean_ms),
    ));
    report.add(
        Figure::new(
            "check.http.p99_ms",
            s.p99_ms,
            "ms",
            Better::Lower,
            format!("p99.9 {:.3} ms, max {:.3} ms", s.p999_ms, s.max_ms),
        )
        .goal(Goal::Below(5.0), "p99 < 5 ms"),
    );
    report.add(
        Figure::new(
            "check.http.errors",
            errors as f64,
            "errors",
            Better::Lower,
            first_error.unwrap_or_default(),
        )
        .goal(Goal::Zero, "0"),
    );
    report.note(cpu_text);

    if args.engine_secs > 0.0 {
        engine_only(args, fx, report).await?;
    }
    Ok(())
}

/// What the engine-only loop does per operation.
#[derive(Debug, Clone, Copy)]
enum Inner {
    /// `authenticate` (what the middleware does per request) and `check`.
    AuthAndCheck,
    /// `check` alone.
    CheckOnly,
    /// The cheapest store read there is (the audit head, one row by key), for the ceiling.
    TrivialRead,
}

/// The same decision without HTTP, then its parts, from as many tasks as there were clients.
async fn engine_only(args: &Args, fx: &Fixture, report: &mut Report) -> Result<()> {
    for inner in [Inner::AuthAndCheck, Inner::CheckOnly, Inner::TrivialRead] {
        let cpu = cpu::Snapshot::take();
        let (engine, token, admin) = (fx.engine.clone(), fx.admin_token.clone(), fx.admin.clone());
        let out = drive(args.clients, 0.0, args.engine_secs, u64::MAX, move |_| {
            let (engine, token, admin) = (engine.clone(), token.clone(), admin.clone());
            async move {
                match inner {
                    Inner::AuthAndCheck | Inner::CheckOnly => {
                        let actor = match inner {
                            Inner::AuthAndCheck => engine.authenticate(&token).await?,
                            _ => admin,
                        };
                        let r = engine.check(&actor, "alice", "pg-prod", "readonly").await?;
                        ensure!(r.allowed, "the engine's check did not allow alice");
                    }
                    Inner::TrivialRead => {
                        let mut r = engine.store().read().await?;
                        r.q().audit_head().await?;
                    }
                }
                Ok(())
            }
        })
        .await?;
        let (name, what, unit) = match inner {
            Inner::AuthAndCheck => (
                "check.engine.auth_and_check_per_s",
                "Engine::authenticate + Engine::check (3 SQL queries)",
                "decisions/s",
            ),
            Inner::CheckOnly => (
                "check.engine.check_only_per_s",
                "Engine::check alone (1 SQL query)",
                "decisions/s",
            ),
            Inner::TrivialRead => (
                "check.store.trivial_reads_per_s",
                "Store::read + one-row read by key (the ceiling per SQL round trip)",
                "reads/s",
            ),
        };
        report.add(Figure::new(
            name,
            out.rate(),
            unit,
            Better::Higher,
            format!(
                "{what}, no HTTP, {} tasks, {} in {:.1} s, p50 {:.3} ms, p99 {:.3} ms, {} errors; {}",
                args.clients,
                out.ok,
                out.secs,
                out.latency.p50_ms,
                out.latency.p99_ms,
                out.errors,
                cpu.since()
            ),
        ));
    }
    Ok(())
}

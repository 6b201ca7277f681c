//! `certs`: SSH user certificates issued per second under an active grant, through the engine
//! and through `POST /api/v1/ssh/certs` over loopback HTTP.
//!
//! Each issue is what production does: the grant looked up under the writer lock, a unique
//! serial, the ed25519 signature, the certificate recorded (for the KRL) with its
//! `ssh.cert_issued` audit event, one durable transaction. The signature alone is measured by
//! `cargo bench -p warrant-sshca`.

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tokio::sync::oneshot;
use warrant_core::{Clock, Grant, GrantStatus, Name, SystemClock};

use crate::Common;
use crate::fixture::{Fixture, insert_grants};
use crate::load::drive;
use crate::report::{Better, Figure, Report, progress};

/// Options of `certs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent clients (HTTP: one keep-alive connection each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds to measure each path.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(args.clients > 0, "--clients must be at least 1");
    let fx = Fixture::new(common, true).await?;
    let now = SystemClock.now();
    // The admin holds web-1/root (principal `root`) for the whole run.
    let grant = Grant {
        id: "bench-cert-grant".into(),
        request_id: "bench-cert-request".into(),
        identity: Name::new("admin")?,
        target: Name::new("web-1")?,
        role: Name::new("root")?,
        rule_id: "bench".into(),
        starts_at: now,
        ends_at: now.plus_secs(3600),
        status: GrantStatus::Active,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
    };
    insert_grants(fx.engine.store(), &[grant], 1, "admin").await?;
    let user_key = warrant_sshca::CaKey::generate()
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .public_openssh();
    let setting = format!(
        "{} clients, {} s after {} s warm-up; ed25519 CA and user key, one principal; SQLite WAL synchronous=FULL",
        args.clients, args.duration, args.warmup
    );

    progress("issuing through the engine");
    let (engine, admin, key) = (fx.engine.clone(), fx.admin.clone(), user_key.clone());
    let out = drive(
        args.clients,
        args.warmup,
        args.duration,
        u64::MAX,
        move |_| {
            let (engine, admin, key) = (engine.clone(), admin.clone(), key.clone());
            async move {
                engine.issue_ssh_cert(&admin, "web-1", "root", &key).await?;
                Ok(())
            }
        },
    )
    .await?;
    ensure!(out.errors == 0, "engine path failed: {:?}", out.first_error);
    report.add(Figure::new(
        "certs.engine.per_s",
        out.rate(),
        "certificates/s",
        Better::Higher,
        format!("Engine::issue_ssh_cert; {setting}"),
    ));
    report.add(Figure::new(
        "certs.engine.p99_ms",
        out.latency.p99_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));

    progress("issuing through POST /api/v1/ssh/certs");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(warrant_api::serve(
        listener,
        warrant_api::AppState::new(fx.engine.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let clients: Vec<reqwest::Client> = (0..args.clients)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).build())
        .collect::<Result<_, _>>()
        .context("HTTP client")?;
    let (token, url) = (fx.admin_token.clone(), format!("{base}/api/v1/ssh/certs"));
    let body = json!({"target": "web-1", "role": "root", "public_key": user_key}).to_string();
    let out = drive(
        args.clients,
        args.warmup,
        args.duration,
        u64::MAX,
        move |i| {
            let (client, token, url, body) = (
                clients[i % clients.len()].clone(),
                token.clone(),
                url.clone(),
                body.clone(),
            );
            async move {
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = resp.status();
                let text = resp.text().await?;
                ensure!(status.is_success(), "{status}: {text}");
                Ok(())
            }
        },
    )
    .await?;
    let _ = stop.send(());
    let _ = server.await;
    ensure!(out.errors == 0, "HTTP path failed: {:?}", out.first_error);
    report.add(Figure::new(
        "certs.http.per_s",
        out.rate(),
        "certificates/s",
        Better::Higher,
        format!("POST /api/v1/ssh/certs over loopback HTTP/1.1 keep-alive; {setting}"),
    ));
    report.add(Figure::new(
        "certs.http.p99_ms",
        out.latency.p99_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));
    fx.close(common).await
}

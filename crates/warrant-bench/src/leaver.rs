//! `leaver`: from a SCIM deactivation to every grant of that identity revoked.
//!
//! Setup: `--identities` users (10,000) provisioned through the engine's SCIM path, and
//! `--grants` active grants (1,000) spread over the first `--holders` of them (500), inserted
//! through the store with their audit events. Then the real HTTP server (in process, loopback)
//! receives, one at a time, `--samples` Entra-style `PATCH /scim/v2/Users/{id}` with
//! `{"op": "Replace", "path": "active", "value": "False"}` for grant holders, and a reader polls
//! the store until no grant of that identity is open any more.
//!
//! Figures: the PATCH round trip, and the time from sending it to the moment a reader sees every
//! grant of the identity revoked (the one judged against the target). Revocation happens in the
//! transaction that answers the PATCH, so the second figure is the first plus one read.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warrant_core::{Clock, Grant, GrantStatus, Name, SystemClock};
use warrant_engine::Scope;
use warrant_engine::scim::Kind;

use crate::Common;
use crate::fixture::{Fixture, insert_grants};
use crate::report::{Better, Figure, Goal, Report, progress};
use crate::stats::{micros, summarise_us};

/// Options of `leaver`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Users provisioned over SCIM.
    #[arg(long, default_value_t = 10_000)]
    identities: usize,
    /// Active grants in all.
    #[arg(long, default_value_t = 1_000)]
    grants: usize,
    /// Users the grants are spread over.
    #[arg(long, default_value_t = 500)]
    holders: usize,
    /// Deactivations measured (each of a different holder).
    #[arg(long, default_value_t = 100)]
    samples: usize,
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(
        args.holders <= args.identities,
        "--holders exceeds --identities"
    );
    ensure!(args.samples <= args.holders, "--samples exceeds --holders");
    ensure!(args.holders > 0, "--holders must be at least 1");
    let fx = Fixture::new(common, true).await?;
    let engine = fx.engine.clone();

    progress(&format!("provisioning {} users over SCIM", args.identities));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(args.identities);
    for i in 0..args.identities {
        let user = format!("u{i:05}");
        let r = engine
            .scim_create(
                &fx.admin,
                "http://bench/scim/v2",
                Kind::User,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user,
                    "externalId": format!("ext-{i}"),
                    "emails": [{"value": format!("{user}@example.com"), "primary": true}],
                    "active": true,
                }),
            )
            .await
            .map_err(|e| anyhow::anyhow!("provisioning {user}: {}", e.detail))?;
        let id = r.body["id"].as_str().context("a SCIM id")?.to_owned();
        ids.push((user, id));
        if (i + 1) % 2000 == 0 {
            progress(&format!("  {} provisioned", i + 1));
        }
    }
    let provision_secs = started.elapsed().as_secs_f64();
    report.add(Figure::new(
        "leaver.setup.scim_creates_per_s",
        args.identities as f64 / provision_secs,
        "users/s",
        Better::Higher,
        format!(
            "{} POST /Users through the engine, one transaction each (setup, not a target)",
            args.identities
        ),
    ));

    progress(&format!("inserting {} active grants", args.grants));
    let now = SystemClock.now();
    let grants: Vec<Grant> = (0..args.grants)
        .map(|i| -> Result<Grant> {
            let (user, _) = &ids[i % args.holders];
            Ok(Grant {
                id: format!("g{i:07}"),
                request_id: format!("r{i:07}"),
                identity: Name::new(user.as_str())?,
                target: Name::new("pg-prod")?,
                role: Name::new("readonly")?,
                rule_id: "bench".into(),
                starts_at: now,
                ends_at: now.plus_secs(3600),
                status: GrantStatus::Active,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
            })
        })
        .collect::<Result<_>>()?;
    insert_grants(engine.store(), &grants, 1000, "admin").await?;

    let token = engine
        .create_api_token(&fx.admin, "bench-scim", None, Scope::Scim)
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(warrant_api::serve(
        listener,
        warrant_api::AppState::new(engine.clone()),
        async move {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();

    progress(&format!("deactivating {} grant holders", args.samples));
    let mut round_trips = Vec::with_capacity(args.samples);
    let mut to_revoked = Vec::with_capacity(args.samples);
    let mut revoked_total = 0usize;
    for (user, id) in ids.iter().take(args.samples) {
        let sent = Instant::now();
        let resp = http
            .patch(format!("{base}/scim/v2/Users/{id}"))
            .bearer_auth(token.token.expose())
            .header("Content-Type", "application/scim+json")
            .body(
                json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "Replace", "path": "active", "value": "False"}]
                })
                .to_string(),
            )
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        round_trips.push(micros(sent.elapsed()));
        ensure!(status.is_success(), "PATCH {user}: {status} {body}");
        ensure!(
            body["active"] == json!(false),
            "PATCH {user} answered {body}"
        );
        loop {
            let mut r = engine.store().read().await?;
            let open = r.q().grants(Some(user.as_str()), true, 10_000).await?;
            if open.is_empty() {
                break;
            }
            drop(r);
            tokio::task::yield_now().await;
        }
        to_revoked.push(micros(sent.elapsed()));
        revoked_total += grants
            .iter()
            .filter(|g| g.identity.as_str() == user)
            .count();
    }
    let _ = stop.send(());
    let _ = server.await;

    let rt = summarise_us(round_trips);
    let rv = summarise_us(to_revoked);
    let setting = format!(
        "{} samples; {} SCIM users, {} active grants over {} holders ({} revoked); SQLite WAL synchronous=FULL",
        rv.count, args.identities, args.grants, args.holders, revoked_total
    );
    report.add(Figure::new(
        "leaver.scim_patch_p50_ms",
        rt.p50_ms,
        "ms",
        Better::Lower,
        "PATCH active=False round trip over loopback HTTP".into(),
    ));
    report.add(Figure::new(
        "leaver.scim_patch_p99_ms",
        rt.p99_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));
    report.add(
        Figure::new(
            "leaver.sent_to_all_revoked_p99_ms",
            rv.p99_ms,
            "ms",
            Better::Lower,
            setting,
        )
        .goal(Goal::Below(2000.0), "every grant revoked under 2 s"),
    );
    report.add(Figure::new(
        "leaver.sent_to_all_revoked_max_ms",
        rv.max_ms,
        "ms",
        Better::Lower,
        String::new(),
    ));
    fx.close(common).await
}

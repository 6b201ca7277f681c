//! `warrant serve`: store, engine, scheduler and HTTP server, with bootstrap and the demo.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use warrant_core::{ActivationDuration, Name, SystemClock, SystemRole};
use warrant_engine::{Actor, Engine, EngineConfig};
use warrant_store::Store;

use crate::args::ServeArgs;

/// The demo organisation (also applied by the tests).
pub const DEMO_ORG: &str = include_str!("../../../docs/examples/demo-org.yaml");

pub async fn run(args: ServeArgs) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARRANT_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let request_ttl = ActivationDuration::parse(&args.request_ttl)
        .with_context(|| format!("--request-ttl {:?}", args.request_ttl))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.data_dir)
        .with_context(|| {
            format!(
                "cannot create the data directory {}",
                args.data_dir.display()
            )
        })?;
    let store = match &args.database_url {
        Some(url) => Store::open_postgres(url)
            .await
            .context("cannot open the PostgreSQL store (check --database-url)")?,
        None => Store::open_sqlite(&args.data_dir).await.with_context(|| {
            format!(
                "cannot open the SQLite store in {}",
                args.data_dir.display()
            )
        })?,
    };
    let (vault, kek_file) = load_vault(&args.data_dir)?;
    tracing::info!(kek = vault.current_kek_id(), "key-encryption key loaded");
    let settings = match &args.config {
        Some(p) => crate::settings::load(p)?,
        None => crate::settings::ServerConfig::default(),
    };
    let mut config = EngineConfig {
        request_ttl_secs: request_ttl.secs(),
        vault: Some(Arc::new(vault)),
        webauthn: settings.webauthn.clone(),
        // A test hook (see warrant_engine::accounts): abort after this rotation step commits.
        crash_at: std::env::var("WARRANT_TEST_CRASH_AT").ok(),
        ..EngineConfig::default()
    };
    if let Some(v) = &settings.sessions.idle {
        config.session_idle_secs = crate::settings::secs("sessions.idle", v)?;
    }
    if let Some(v) = &settings.sessions.absolute {
        config.session_ttl_secs = crate::settings::secs("sessions.absolute", v)?;
    }
    let oidc = match settings.oidc {
        Some(o) => Some(
            warrant_engine::oidc::OidcService::discover(o)
                .await
                .map_err(|e| anyhow::anyhow!("oidc: {e}"))?,
        ),
        None => None,
    };
    let sources = warrant_api::directory_sources::Sources {
        oidc,
        ldap: settings.ldap,
        ..Default::default()
    };
    // The clean-up of closed grants: their temporary database roles go (retried until done).
    let (pg_cleanup, cell) = warrant_engine::pg::pg_cleanup_fn();
    let engine =
        Engine::with_cleanups(store, Arc::new(SystemClock), config, vec![pg_cleanup]).await?;
    let _ = cell.set(engine.clone());
    warrant_api::server::metrics_handle();

    let fresh = engine.bootstrap().await?;
    let bootstrapped = fresh.is_some();
    if let Some(token) = fresh {
        let path = args.data_dir.join("admin.token");
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(f, "{}", token.token.expose())?;
        f.sync_all()?;
        eprintln!(
            "First start: created the identity `admin`; its API token is in {} (mode 0600). It will not be shown again.",
            path.display()
        );
    }
    if args.demo && !bootstrapped {
        eprintln!("Demo: the store is not empty, so the demo organisation is not seeded again.");
    } else if args.demo {
        let admin = Actor::internal(Name::new("admin")?, SystemRole::Admin);
        let org = warrant_engine::org::parse(DEMO_ORG)?;
        let report = engine.apply(&admin, org, false).await?;
        eprintln!(
            "Demo organisation: {} change(s) applied.",
            report.changes.len()
        );
    }

    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (choose another with --listen)",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    eprintln!("Warrant is listening on http://{addr}");
    if args.demo {
        print_demo_help(addr);
    }

    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
    });
    let sched = {
        let engine = engine.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            engine
                .run_scheduler(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
        })
    };
    // Recordings stay readable whether or not this run serves the gateway.
    let mut state = warrant_api::AppState::new(engine.clone())
        .with_sources(sources)
        .with_recordings(args.data_dir.join("recordings"));
    if let Some(path) = kek_file {
        state = state.with_kek_file(path);
    }
    match engine.close_dangling_sessions().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            sessions = n,
            "gateway sessions cut by the last stop marked ended"
        ),
        Err(e) => tracing::error!(error = %e, "closing gateway sessions left open failed"),
    }
    let mut gateways: Vec<Arc<dyn crate::gateway::LiveControl>> = Vec::new();
    if let Some(listen) = args.ssh_listen {
        let host_key = crate::gateway::host_key(&args.data_dir)?;
        let fingerprint = host_key
            .public_key()
            .fingerprint(warrant_sshgw::ssh_key::HashAlg::Sha256);
        let (authority, recorder) = crate::gateway::EngineAuthority::new(engine.clone());
        tokio::spawn(recorder);
        let mut config = warrant_sshgw::GatewayConfig::new(listen, host_key);
        config.recordings = Some(warrant_sshgw::RecordingsConfig {
            dir: args.data_dir.join("recordings"),
            key: Arc::new(engine.recording_key().await?),
        });
        let gw = warrant_sshgw::Gateway::bind(config, Arc::new(authority))
            .await
            .map_err(|e| anyhow::anyhow!("--ssh-listen {listen}: {e}"))?;
        eprintln!(
            "SSH gateway listening on {} (host key {fingerprint}): ssh -p {} IDENTITY+TARGET@HOST",
            gw.local_addr(),
            gw.local_addr().port()
        );
        gateways.push(Arc::new(gw.handle()));
        let mut rx = rx.clone();
        tokio::spawn(async move {
            if let Err(e) = gw
                .run(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await
            {
                tracing::error!(error = %e, "the SSH gateway stopped");
            }
        });
    }
    if let Some(listen) = args.pg_listen {
        let (tls, cert) = crate::pggateway::tls(
            &args.data_dir,
            listen,
            args.pg_tls_cert.as_deref(),
            args.pg_tls_key.as_deref(),
            &args.pg_tls_name,
        )
        .with_context(|| format!("--pg-listen {listen}"))?;
        let (authority, recorder) = crate::pggateway::EngineDbAuthority::new(engine.clone());
        tokio::spawn(recorder);
        let mut config = warrant_pggw::PgGatewayConfig::new(listen);
        config.tls = Some(tls);
        config.recordings = Some(warrant_pggw::RecordingsConfig {
            dir: args.data_dir.join("recordings"),
            key: Arc::new(engine.recording_key().await?),
        });
        let gw = warrant_pggw::PgGateway::bind(config, Arc::new(authority))
            .await
            .map_err(|e| anyhow::anyhow!("--pg-listen {listen}: {e}"))?;
        eprintln!(
            "PostgreSQL gateway listening on {} (TLS certificate {}): psql \"host=HOST port={} user=IDENTITY dbname=TARGET sslmode=verify-full sslrootcert=CERT\" with `warrant db-token` as the password",
            gw.local_addr(),
            cert.display(),
            gw.local_addr().port()
        );
        gateways.push(Arc::new(gw.handle()));
        let mut rx = rx.clone();
        tokio::spawn(async move {
            gw.run(async move {
                let _ = rx.wait_for(|v| *v).await;
            })
            .await;
        });
    }
    if !gateways.is_empty() {
        state = state.with_live_sessions(Arc::new(crate::gateway::Live(gateways.clone())));
        let mut rx = rx.clone();
        let engine = engine.clone();
        tokio::spawn(crate::gateway::watch_grants(engine, gateways, async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
    }
    if let Some(setup) = state.sources().ldap.clone() {
        let interval = setup.interval_secs().map_err(|e| anyhow::anyhow!("{e}"))?;
        if interval > 0 {
            let state = state.clone();
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let actor = match Name::new("ldap-sync") {
                    Ok(n) => Actor::internal(n, SystemRole::Admin),
                    Err(_) => return,
                };
                let every = std::time::Duration::from_secs(interval.unsigned_abs());
                loop {
                    match warrant_api::directory_sources::run_ldap_sync(
                        &state, &actor, false, false,
                    )
                    .await
                    {
                        Ok(r) => tracing::info!(
                            created = r.created,
                            updated = r.updated,
                            disabled = r.disabled + r.disabled_after_grace,
                            "LDAP sync done"
                        ),
                        Err(e) => tracing::error!(error = ?e, "LDAP sync failed"),
                    }
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = rx.wait_for(|v| *v) => break,
                    }
                }
            });
        }
    }
    // Temporary database roles that no active grant backs are dropped at start and every
    // five minutes (a lost clean-up, a crash between creating a role and recording it).
    {
        let engine = engine.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            loop {
                match engine.reconcile_pg().await {
                    Ok(r) if r.dropped > 0 || r.unreachable > 0 => tracing::info!(
                        dropped = r.dropped,
                        unreachable = r.unreachable,
                        "temporary database roles reconciled"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciling temporary database roles failed")
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(300)) => {}
                    _ = rx.wait_for(|v| *v) => break,
                }
            }
        });
    }
    // Rotations of vaulted accounts: interrupted ones resume at start, due ones run every few
    // seconds and right after a check-in.
    {
        let engine = engine.clone();
        let mut rx = rx.clone();
        tokio::spawn(async move {
            engine
                .run_rotations(async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await;
        });
    }
    if let Some(every) = &settings.discovery.every {
        let every = crate::settings::secs("discovery.every", every)?;
        let engine = engine.clone();
        periodically(&rx, every, false, move || {
            let engine = engine.clone();
            async move {
                match engine.discover_all().await {
                    Ok(n) => tracing::info!(targets = n, "scheduled discovery done"),
                    Err(e) => tracing::warn!(error = %e, "scheduled discovery failed"),
                }
            }
        });
    }
    let checkpoints = {
        let every = settings
            .audit
            .checkpoint_every
            .as_deref()
            .map(|v| crate::settings::secs("audit.checkpoint_every", v))
            .transpose()?
            .unwrap_or(60);
        // The key exists before the first request, so that its creation is not a surprise
        // in the middle of someone's export.
        engine.audit_key().await?;
        let engine = engine.clone();
        periodically(&rx, every, false, move || {
            let engine = engine.clone();
            async move {
                if let Err(e) = engine.audit_checkpoint().await {
                    tracing::warn!(error = %e, "signing an audit checkpoint failed");
                }
            }
        })
    };
    let sinks = engine
        .start_sinks(&settings.audit.sinks, &rx)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let retention = &settings.audit.retention;
    let archive_dir = retention
        .archive_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("audit-archive"));
    engine.set_audit_archive_dir(archive_dir.clone());
    if let Some(keep) = &retention.keep {
        let keep = crate::settings::secs("audit.retention.keep", keep)?;
        let every = retention
            .every
            .as_deref()
            .map(|v| crate::settings::secs("audit.retention.every", v))
            .transpose()?
            .unwrap_or(3600);
        let engine = engine.clone();
        periodically(&rx, every, true, move || {
            let (engine, archive_dir) = (engine.clone(), archive_dir.clone());
            async move {
                let before = engine.now().millis() - keep * 1000;
                match engine.audit_prune(None, before, &archive_dir).await {
                    Ok(r) if r.records > 0 => tracing::info!(
                        records = r.records,
                        up_to = r.up_to_seq,
                        archive = ?r.archive,
                        "audit retention: archived and pruned"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "audit retention failed"),
                }
            }
        });
    }
    let mut rx2 = rx.clone();
    warrant_api::serve(listener, state, async move {
        let _ = rx2.wait_for(|v| *v).await;
    })
    .await?;
    let _ = sched.await;
    let _ = checkpoints.await;
    for sink in sinks {
        let _ = sink.await;
    }
    // The last word of this run: the head as it is at shutdown, signed.
    match engine.audit_checkpoint().await {
        Ok(Some(c)) => eprintln!("Signed the audit chain's head at record {}.", c.seq),
        Ok(None) => {}
        Err(e) => eprintln!("Could not sign the audit chain's head at shutdown: {e}"),
    }
    engine.store().close().await;
    eprintln!("Warrant stopped.");
    Ok(())
}

/// Runs `job` every `secs` seconds (first right away when `now`, else after one period) until
/// `stop` turns true: the server's periodic work (discovery, checkpoints, retention).
fn periodically<F, Fut>(
    stop: &watch::Receiver<bool>,
    secs: i64,
    now: bool,
    mut job: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut stop = stop.clone();
    let period = std::time::Duration::from_secs(secs.unsigned_abs());
    tokio::spawn(async move {
        if now {
            job().await;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|v| *v) => break,
            }
            job().await;
        }
    })
}

/// The vault's keys: `WARRANT_KEK` (and `WARRANT_KEK_PREVIOUS` during a rotation), or the data
/// directory's `kek` file (created at first start), with `kek.old` beside it after a rotation.
/// A rotation that stopped half-way (`kek.next` present) is finished here, before anything is
/// sealed: `kek.next` becomes `kek`, and the former `kek` is kept as `kek.old`.
fn load_vault(
    data_dir: &std::path::Path,
) -> Result<(warrant_vault::Vault, Option<std::path::PathBuf>)> {
    use warrant_vault::{Kek, Vault};
    let key_err = |what: &str, e: warrant_vault::VaultError| anyhow::anyhow!("{what}: {e}");
    if let Ok(v) = std::env::var("WARRANT_KEK") {
        let mut vault = Vault::new(
            Kek::from_env_value(&v)
                .map_err(|e| key_err("WARRANT_KEK (give 32 random bytes in base64)", e))?,
        );
        if let Ok(p) = std::env::var("WARRANT_KEK_PREVIOUS") {
            vault = vault.with_previous(
                Kek::from_env_value(&p).map_err(|e| key_err("WARRANT_KEK_PREVIOUS", e))?,
            );
        }
        return Ok((vault, None));
    }
    let path = data_dir.join("kek");
    let next = warrant_api::vault::sibling(&path, "kek.next");
    let old = warrant_api::vault::sibling(&path, "kek.old");
    if next.exists() {
        if path.exists() {
            fs::rename(&path, &old)
                .with_context(|| format!("cannot keep {} as {}", path.display(), old.display()))?;
        }
        fs::rename(&next, &path).with_context(|| format!("cannot install {}", next.display()))?;
        eprintln!(
            "Finished an interrupted key rotation: {} is in force.",
            path.display()
        );
    }
    let mut vault = Vault::new(
        Kek::load_or_create(&path)
            .map_err(|e| key_err(&format!("the key-encryption key {}", path.display()), e))?,
    );
    if old.exists() {
        vault = vault.with_previous(
            Kek::load_or_create(&old)
                .map_err(|e| key_err(&format!("the previous key {}", old.display()), e))?,
        );
    }
    Ok((vault, Some(path)))
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn print_demo_help(addr: std::net::SocketAddr) {
    eprintln!(
        r#"
Try it (in another terminal):
  export WARRANT_SERVER=http://{addr}
  # Alice (a DBA) asks for read-only access: no approval needed.
  echo alice-demo-password | WARRANT_CONFIG_DIR=/tmp/w-alice warrant login --user alice --password-stdin
  WARRANT_CONFIG_DIR=/tmp/w-alice warrant request pg-prod readonly --for 1h --reason "check a slow query"
  # Admin on pg-prod needs a ticket and two approvals: an owner (bob), then security (dave).
  WARRANT_CONFIG_DIR=/tmp/w-alice warrant request pg-prod admin --for 30m --reason "fix index" --ticket CHG-1042
  echo bob-demo-password | WARRANT_CONFIG_DIR=/tmp/w-bob warrant login --user bob --password-stdin
  WARRANT_CONFIG_DIR=/tmp/w-bob warrant requests --to-approve
  WARRANT_CONFIG_DIR=/tmp/w-bob warrant approve <ID>
  echo dave-demo-password | WARRANT_CONFIG_DIR=/tmp/w-dave warrant login --user dave --password-stdin
  WARRANT_CONFIG_DIR=/tmp/w-dave warrant approve <ID>
  WARRANT_CONFIG_DIR=/tmp/w-alice warrant grants
  WARRANT_CONFIG_DIR=/tmp/w-alice warrant check --identity alice --target pg-prod --role admin
Other demo identities: carol and erin (ops, web-1), passwords <name>-demo-password.
"#
    );
}

//! The PostgreSQL gateway in `warrant serve --pg-listen`: `warrant-pggw` asks, the engine
//! answers.
//!
//! - [`EngineDbAuthority`]: the password is a database token of the person named as `user`
//!   (`warrant db-token`); a session may go when they hold an active grant of a role with
//!   `db_roles` or a vaulted `account` on a PostgreSQL target, and then logs in with that
//!   account or the grant's temporary role (`Engine::db_gateway_upstream`). Refusals are
//!   audited and shown to the person.
//! - Events (sessions started and ended, refusals, statement-log failures) go to a task that
//!   records and audits them in order.
//! - [`tls`]: the gateway's TLS server configuration, from the given files or a self-signed
//!   certificate made at first start in the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;
use warrant_core::Secret;
use warrant_engine::Engine;
use warrant_pggw::{
    Authority, BoxFuture, DbLogin, Denied, EndReason, Person, PgEvent, PgGatewayHandle,
    RecordingMode, Upstream,
};

use crate::gateway::{LiveControl, LiveRef, Recorded, event_recorder, session_ended};

/// The engine as the PostgreSQL gateway's authority.
pub struct EngineDbAuthority {
    engine: Engine,
    events: mpsc::UnboundedSender<PgEvent>,
}

impl EngineDbAuthority {
    /// The authority, and the task that records its events (run it).
    pub fn new(engine: Engine) -> (Self, impl std::future::Future<Output = ()>) {
        let (events, recorder) = event_recorder(engine.clone());
        (Self { engine, events }, recorder)
    }
}

impl Recorded for PgEvent {
    fn record<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> impl std::future::Future<Output = warrant_engine::Result<()>> + Send + 'a {
        record(engine, self)
    }
}

async fn record(engine: &Engine, ev: &PgEvent) -> warrant_engine::Result<()> {
    match ev {
        PgEvent::SessionStarted(info) => {
            engine
                .gateway_session_started(&warrant_engine::gateway::SessionStart {
                    session_id: info.id.to_string(),
                    kind: "postgres".into(),
                    identity: info.identity.clone(),
                    target: info.target.clone(),
                    account: info.account.clone(),
                    grant_id: info.grant_id.clone(),
                    recording: info.recording.clone(),
                })
                .await
        }
        PgEvent::SessionEnded {
            info,
            reason,
            recording,
        } => {
            let reason = match reason {
                EndReason::Killed { reason } => format!("killed: {reason}"),
                EndReason::RecordingFailed { error } => format!("recording_failed: {error}"),
                EndReason::Error(e) => format!("protocol_error: {e}"),
                other => other.code().to_owned(),
            };
            session_ended(
                engine,
                &info.id.to_string(),
                (&info.identity, &info.target),
                &reason,
                (info.bytes_up, info.bytes_down),
                recording,
            )
            .await
        }
        PgEvent::Refused {
            identity,
            target,
            reason,
            ..
        } => {
            engine
                .gateway_refused(identity, target.as_deref(), "database session", reason)
                .await
        }
        PgEvent::RecordingFailed {
            identity,
            target,
            error,
        } => {
            engine
                .gateway_refused(identity, Some(target), "recording", error)
                .await
        }
    }
}

impl Authority for EngineDbAuthority {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> BoxFuture<'a, Result<Option<Person>, String>> {
        Box::pin(async move {
            let who = self
                .engine
                .db_token_identity(user, password)
                .await
                .map_err(|e| e.to_string())?;
            Ok(who.map(|(name, second_factor)| Person {
                identity: name.to_string(),
                second_factor,
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a DbLogin,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            let up = self
                .engine
                .db_gateway_upstream(
                    &person.identity,
                    &login.target,
                    login.role.as_deref(),
                    login.database.as_deref(),
                    person.second_factor,
                )
                .await
                .map_err(|e| Denied(e.message))?;
            Ok(Upstream {
                host: up.host,
                port: up.port,
                tls: up.tls,
                database: up.database,
                user: up.user,
                password: up.password,
                grant_id: up.grant_id,
                role: up.role,
                grant_end: up.ends_at,
                recording: match up.record.as_str() {
                    "off" => RecordingMode::Off,
                    "best-effort" => RecordingMode::BestEffort,
                    _ => RecordingMode::Strict,
                },
                record_values: up.record_input,
            })
        })
    }

    fn event(&self, event: &PgEvent) {
        let _ = self.events.send(event.clone());
    }
}

impl LiveControl for PgGatewayHandle {
    fn sessions(&self) -> Vec<LiveRef> {
        PgGatewayHandle::sessions(self)
            .into_iter()
            .map(|s| LiveRef {
                id: s.id.to_string(),
                grant_id: s.grant_id,
                identity: s.identity,
                bytes_up: s.bytes_up,
                bytes_down: s.bytes_down,
            })
            .collect()
    }

    fn kill(&self, id: &str, message: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok_and(|id| PgGatewayHandle::kill(self, id, message))
    }
}

/// The gateway's TLS configuration: `cert` and `key` (PEM) when given, else a self-signed
/// certificate for `localhost`, the loopback addresses, `listen`'s address and `extra_names`
/// (the host names people connect to), kept as `pg_gateway_tls.crt` / `.key` (0600) in the
/// data directory and made again when the names change. Returns it with the certificate's path
/// (what clients give as `sslrootcert` for `sslmode=verify-full`).
pub fn tls(
    data_dir: &Path,
    listen: std::net::SocketAddr,
    cert: Option<&Path>,
    key: Option<&Path>,
    extra_names: &[String],
) -> anyhow::Result<(Arc<rustls::ServerConfig>, PathBuf)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned()),
        _ => {
            let c = data_dir.join("pg_gateway_tls.crt");
            let k = data_dir.join("pg_gateway_tls.key");
            let n = data_dir.join("pg_gateway_tls.names");
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
                names.push(listen.ip().to_string());
            }
            names.extend(extra_names.iter().cloned());
            let wanted = names.join("\n");
            let same_names = std::fs::read_to_string(&n).is_ok_and(|had| had == wanted);
            if !c.exists() || !k.exists() || !same_names {
                let made = rcgen::generate_simple_self_signed(names)
                    .context("making the PostgreSQL gateway's TLS certificate")?;
                write_private(&k, made.signing_key.serialize_pem().as_bytes())?;
                std::fs::write(&c, made.cert.pem())
                    .with_context(|| format!("cannot write {}", c.display()))?;
                std::fs::write(&n, &wanted)
                    .with_context(|| format!("cannot write {}", n.display()))?;
            }
            (c, k)
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect)
        .with_context(|| format!("cannot read the certificates in {}", cert_path.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read the private key in {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                cert_path.display(),
                key_path.display()
            )
        })?;
    Ok((Arc::new(config), cert_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

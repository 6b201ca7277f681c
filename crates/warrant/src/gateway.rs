//! The SSH gateway in `warrant serve --ssh-listen`: `warrant-sshgw` asks, the engine answers.
//!
//! - [`EngineAuthority`]: a key is a person's when it is one of their registered keys
//!   (`warrant ssh-key add`) and they are active; a session may go when they hold an active
//!   grant of a role with a `login` on an SSH target, and then goes with a session key and a
//!   certificate from Warrant's CA valid until the grant's end (`Engine::gateway_upstream`).
//!   Denials are audited and shown to the person.
//! - Events (sessions started and ended, refusals, upstream failures) are handed to a task that
//!   records and audits them in order, so the gateway never waits for the store.
//! - [`watch_grants`]: twice a second, every live session of either gateway whose grant is no
//!   longer active (ended, revoked, its person disabled) is ended with a message.
//! - [`Live`]: the API's live-session hook over both gateways ([`LiveControl`]).

use std::time::Duration;

use tokio::sync::mpsc;
use warrant_engine::Engine;
use warrant_sshgw::ssh_key::{Certificate, PrivateKey, PublicKey};
use warrant_sshgw::{
    Authority, BoxFuture, Denied, EndReason, GatewayEvent, GatewayHandle, GwError, Login,
    OfferedKey, Person, RecordingMode, RecordingOutcome, SessionId, Upstream,
};

/// The engine as the gateway's authority.
pub struct EngineAuthority {
    engine: Engine,
    events: mpsc::UnboundedSender<GatewayEvent>,
}

impl EngineAuthority {
    /// The authority, and the task that records its events (run it).
    pub fn new(engine: Engine) -> (Self, impl std::future::Future<Output = ()>) {
        let (events, recorder) = event_recorder(engine.clone());
        (Self { engine, events }, recorder)
    }
}

/// A gateway's event, as the engine records it.
pub trait Recorded: Send + 'static {
    /// Records (and audits) it.
    fn record<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> impl std::future::Future<Output = warrant_engine::Result<()>> + Send + 'a;
}

impl Recorded for GatewayEvent {
    fn record<'a>(
        &'a self,
        engine: &'a Engine,
    ) -> impl std::future::Future<Output = warrant_engine::Result<()>> + Send + 'a {
        record(engine, self)
    }
}

/// A channel for a gateway's events, and the task that records them in order (run it), so
/// that the gateway never waits for the store.
pub fn event_recorder<E: Recorded>(
    engine: Engine,
) -> (
    mpsc::UnboundedSender<E>,
    impl std::future::Future<Output = ()>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<E>();
    let recorder = async move {
        while let Some(ev) = rx.recv().await {
            if let Err(e) = ev.record(&engine).await {
                tracing::error!(error = %e, "recording a gateway event failed");
            }
        }
    };
    (tx, recorder)
}

async fn record(engine: &Engine, ev: &GatewayEvent) -> warrant_engine::Result<()> {
    match ev {
        GatewayEvent::SessionStarted(info) => {
            engine
                .gateway_session_started(&warrant_engine::gateway::SessionStart {
                    session_id: info.id.to_string(),
                    kind: "ssh".into(),
                    identity: info.identity.clone(),
                    target: info.target.clone(),
                    account: info.account.clone(),
                    grant_id: info.grant_id.clone(),
                    recording: info.recording.clone(),
                })
                .await
        }
        GatewayEvent::SessionEnded {
            info,
            reason,
            recording,
        } => {
            let reason = match reason {
                EndReason::Killed { reason } => format!("killed: {reason}"),
                EndReason::RecordingFailed { error } => format!("recording_failed: {error}"),
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
        GatewayEvent::RecordingFailed {
            identity, error, ..
        } => {
            engine
                .gateway_refused(identity, None, "recording", error)
                .await
        }
        GatewayEvent::Refused {
            identity,
            target,
            refusal,
            ..
        } => {
            engine
                .gateway_refused(
                    identity,
                    Some(target),
                    &refusal.to_string(),
                    "not allowed through the gateway",
                )
                .await
        }
        GatewayEvent::UpstreamFailed {
            identity,
            target,
            error,
            ..
        } => {
            engine
                .gateway_refused(identity, Some(target), "session", error)
                .await
        }
        _ => Ok(()),
    }
}

/// Records the end of a session of either gateway: a recording that could not be finished is
/// audited first, then the session is closed with its reason, counters and recording hash.
pub async fn session_ended(
    engine: &Engine,
    session_id: &str,
    (identity, target): (&str, &str),
    reason: &str,
    (bytes_up, bytes_down): (u64, u64),
    recording: &RecordingOutcome,
) -> warrant_engine::Result<()> {
    if let RecordingOutcome::Unfinished { file, error } = recording {
        engine
            .gateway_refused(
                identity,
                Some(target),
                "recording",
                &format!("{file} could not be finished: {error}"),
            )
            .await?;
    }
    engine
        .gateway_session_ended(
            session_id,
            reason,
            bytes_up,
            bytes_down,
            recording.summary().map(|s| s.sha256.clone()),
        )
        .await
}

impl Authority for EngineAuthority {
    fn authenticate<'a>(
        &'a self,
        login: &'a Login,
        key: &'a OfferedKey,
    ) -> BoxFuture<'a, Result<Option<Person>, GwError>> {
        Box::pin(async move {
            // A registered key, or a certificate from Warrant's CA under an active grant.
            let who = match key {
                OfferedKey::Key(_) => {
                    self.engine
                        .gateway_identity(&login.identity, &key.fingerprint())
                        .await
                }
                OfferedKey::Certificate(cert) => {
                    self.engine
                        .gateway_identity_by_cert(&login.identity, cert)
                        .await
                }
            }
            .map_err(|e| GwError::Authority(e.to_string()))?;
            Ok(who.map(|name| Person {
                identity: name.to_string(),
                label: name.to_string(),
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a Login,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            let up = match self
                .engine
                .gateway_upstream(&person.identity, &login.target, login.role.as_deref())
                .await
            {
                Ok(up) => up,
                Err(e) => {
                    let _ = self
                        .engine
                        .gateway_refused(
                            &person.identity,
                            Some(&login.target),
                            "session",
                            &e.message,
                        )
                        .await;
                    return Err(Denied::new(e.message));
                }
            };
            let broken = |what: &str| {
                Denied::new(format!("the gateway could not use {what}; tell an admin"))
            };
            Ok(Upstream {
                host_key: PublicKey::from_openssh(&up.host_key)
                    .map_err(|_| broken("the target's pinned host key"))?,
                key: PrivateKey::from_openssh(up.private_key.expose())
                    .map_err(|_| broken("the session key"))?,
                certificate: Certificate::from_openssh(&up.certificate)
                    .map_err(|_| broken("the session certificate"))?,
                host: up.host,
                port: up.port,
                account: up.account,
                grant_id: up.grant_id,
                grant_end: up.ends_at,
                recording: match up.record.as_str() {
                    "off" => RecordingMode::Off,
                    "best-effort" => RecordingMode::BestEffort,
                    _ => RecordingMode::Strict,
                },
                record_input: up.record_input,
                port_forwarding: up.port_forwarding,
                agent_forwarding: up.agent_forwarding,
            })
        })
    }

    fn second_factor_required<'a>(
        &'a self,
        person: &'a Person,
        login: &'a Login,
    ) -> BoxFuture<'a, Result<bool, GwError>> {
        Box::pin(async move {
            self.engine
                .gateway_mfa_required(&person.identity, &login.target, login.role.as_deref())
                .await
                .map_err(|e| GwError::Authority(e.to_string()))
        })
    }

    fn verify_second_factor<'a>(
        &'a self,
        person: &'a Person,
        code: &'a str,
    ) -> BoxFuture<'a, Result<bool, GwError>> {
        Box::pin(async move {
            self.engine
                .gateway_verify_code(
                    &person.identity,
                    &warrant_core::Secret::new(code.to_owned()),
                )
                .await
                .map_err(|e| GwError::Authority(e.to_string()))
        })
    }

    fn event(&self, event: &GatewayEvent) {
        let _ = self.events.send(event.clone());
    }
}

/// A live session of either gateway, as the grant watcher and the API see it.
pub struct LiveRef {
    /// The session id.
    pub id: String,
    /// Its grant.
    pub grant_id: String,
    /// Its person.
    pub identity: String,
    /// Bytes from the person so far.
    pub bytes_up: u64,
    /// Bytes to the person so far.
    pub bytes_down: u64,
}

/// Live control over one gateway (SSH or PostgreSQL).
pub trait LiveControl: Send + Sync {
    /// Its live sessions.
    fn sessions(&self) -> Vec<LiveRef>;
    /// Ends session `id` with `message`; false when it is not one of this gateway's.
    fn kill(&self, id: &str, message: &str) -> bool;
}

impl LiveControl for GatewayHandle {
    fn sessions(&self) -> Vec<LiveRef> {
        GatewayHandle::sessions(self)
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
        SessionId::parse(id).is_some_and(|id| GatewayHandle::kill(self, id, message))
    }
}

/// Ends, within half a second, every live session whose grant is no longer active: revoked,
/// ended early, or its person disabled (each gateway's own timer covers the planned end).
pub async fn watch_grants(
    engine: Engine,
    gateways: Vec<std::sync::Arc<dyn LiveControl>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        for gw in &gateways {
            for s in gw.sessions() {
                match engine.grant_still_active(&s.grant_id, &s.identity).await {
                    Ok(true) => {}
                    Ok(false) => {
                        gw.kill(&s.id, "your grant is no longer active (revoked or ended)");
                    }
                    Err(e) => tracing::warn!(error = %e, "checking a session's grant failed"),
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = &mut shutdown => return,
        }
    }
}

/// The API's view of the gateways' live sessions.
pub struct Live(pub Vec<std::sync::Arc<dyn LiveControl>>);

impl warrant_api::sessions::LiveSessions for Live {
    fn live(&self) -> Vec<warrant_api::sessions::LiveSession> {
        self.0
            .iter()
            .flat_map(|gw| gw.sessions())
            .map(|s| warrant_api::sessions::LiveSession {
                id: s.id,
                bytes_up: s.bytes_up,
                bytes_down: s.bytes_down,
            })
            .collect()
    }

    fn kill(&self, id: &str, message: &str) -> bool {
        self.0.iter().any(|gw| gw.kill(id, message))
    }
}

/// The gateway's own host key in the data directory (`ssh_gateway_host_key`, mode 0600), made
/// at first start.
pub fn host_key(data_dir: &std::path::Path) -> anyhow::Result<PrivateKey> {
    use anyhow::Context;
    let path = data_dir.join("ssh_gateway_host_key");
    if !path.exists() {
        let key = warrant_sshca::CaKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let pem = key.to_openssh().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::io::Write::write_all(&mut f, pem.expose().as_bytes())?;
        f.sync_all()?;
    }
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    PrivateKey::from_openssh(pem.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

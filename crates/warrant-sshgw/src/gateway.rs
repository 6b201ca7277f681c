//! [`Gateway`]: the listener and its accept loop, one task per connection, and the
//! [`GatewayHandle`] for live control.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::server::{self, run_stream};
use russh::{Disconnect, MethodKind, MethodSet, SshId};
use ssh_key::Algorithm;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use warrant_core::Clock;

use crate::authority::{Authority, EndReason};
use crate::config::{GatewayConfig, RecordingsConfig};
use crate::error::GwError;
use crate::server::{Conn, ConnState, Jump};
use crate::session::{Registry, SessionId, SessionInfo, lock};

/// How long shutdown waits for connections to finish after ending their sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the accept loop pauses after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What every connection of one gateway shares.
pub(crate) struct Shared {
    pub(crate) authority: Arc<dyn Authority>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) registry: Registry,
    pub(crate) upstream_timeout: Duration,
    pub(crate) authority_timeout: Duration,
    pub(crate) recordings: Option<RecordingsConfig>,
    /// The SSH server settings (the listener's, and those of the sessions `ssh -J` opens
    /// through a channel).
    pub(crate) ssh: Arc<server::Config>,
    /// From connect to the first session.
    pub(crate) auth_timeout: Duration,
    /// Turns true when the gateway shuts down.
    pub(crate) stop: watch::Receiver<bool>,
}

/// A bound SSH gateway, ready to [`run`](Gateway::run).
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl Gateway {
    /// Checks the configuration and binds the listening socket.
    pub async fn bind(
        config: GatewayConfig,
        authority: Arc<dyn Authority>,
    ) -> Result<Self, GwError> {
        if config.host_key.algorithm() != Algorithm::Ed25519 {
            return Err(GwError::HostKey(format!(
                "it must be ed25519, not {}",
                config.host_key.algorithm()
            )));
        }
        if config.host_key.is_encrypted() {
            return Err(GwError::HostKey("it is passphrase-protected".to_owned()));
        }
        if let Some(recordings) = &config.recordings {
            recordings_dir(&recordings.dir)?;
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| GwError::Bind {
                addr: config.listen,
                reason: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| GwError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
        let ssh = server::Config {
            server_id: SshId::Standard(Cow::Borrowed("SSH-2.0-Warrant")),
            // Public keys (no passwords, no "none"); keyboard-interactive only as the second
            // step after an accepted key, when the grant's rule requires a second factor.
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_secs(1),
            // OpenSSH's client starts with a "none" probe to learn the methods; no need to
            // make every login a second slower for it.
            auth_rejection_time_initial: Some(Duration::ZERO),
            max_auth_attempts: 6,
            keys: vec![config.host_key.clone()],
            // Idle interactive sessions are legitimate; dead peers are found by keepalives,
            // and every session ends with its grant anyway.
            inactivity_timeout: None,
            keepalive_interval: Some(config.keepalive),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        tracing::info!(listen = %local_addr, "SSH gateway listening");
        let (stop, stop_rx) = watch::channel(false);
        Ok(Self {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                authority,
                clock: config.clock,
                registry: Registry::default(),
                upstream_timeout: config.upstream_timeout,
                authority_timeout: config.authority_timeout,
                recordings: config.recordings,
                ssh: Arc::new(ssh),
                auth_timeout: config.auth_timeout,
                stop: stop_rx,
            }),
            stop,
        })
    }

    /// The address the gateway listens on (with the real port when the config said 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for listing and ending sessions; valid before, during and after
    /// [`run`](Gateway::run).
    #[must_use]
    pub fn handle(&self) -> GatewayHandle {
        GatewayHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections until `shutdown` resolves; then ends every session (the person is
    /// told the gateway is shutting down), waits up to 10 s for connections to finish, and
    /// returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), GwError> {
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        connections.spawn(connection(self.shared.clone(), socket, peer, None));
                    }
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = connections.join_next() => {}
            }
        }
        tracing::info!("SSH gateway shutting down");
        drop(self.listener);
        for live in self.shared.registry.all() {
            live.end(EndReason::Shutdown);
        }
        self.stop.send_replace(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = connections.len(),
                "connections still open after the shutdown grace; dropping them"
            );
            connections.shutdown().await;
        }
        // Supervisors unregister their sessions once both sides are closed.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while !self.shared.registry.all().is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Ok(())
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local_addr)
            .field("auth_timeout", &self.shared.auth_timeout)
            .finish_non_exhaustive()
    }
}

/// Creates the recordings directory if missing (only its owner may read it) and checks that it
/// is one.
fn recordings_dir(dir: &std::path::Path) -> Result<(), GwError> {
    let unusable = |reason: String| GwError::Recordings {
        dir: dir.display().to_string(),
        reason,
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| unusable(e.to_string()))?;
    if !dir.is_dir() {
        return Err(unusable("not a directory".to_owned()));
    }
    Ok(())
}

/// Binds and runs a gateway until `shutdown` resolves: [`Gateway::bind`] then
/// [`Gateway::run`]. Use those two to learn the bound address or to get a [`GatewayHandle`].
pub async fn serve(
    config: GatewayConfig,
    authority: Arc<dyn Authority>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GwError> {
    Gateway::bind(config, authority).await?.run(shutdown).await
}

/// Live control of a gateway's sessions: list them, end one.
#[derive(Clone)]
pub struct GatewayHandle {
    shared: Arc<Shared>,
}

impl GatewayHandle {
    /// The sessions logged in to their targets now, oldest first.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> = self
            .shared
            .registry
            .all()
            .iter()
            .map(|live| live.snapshot())
            .collect();
        sessions.sort_by_key(|s| (s.started, s.id));
        sessions
    }

    /// Ends session `id`: `reason` is shown on the person's terminal, then both connections
    /// are closed. Returns `false` when there is no such session (or it is already ending).
    pub fn kill(&self, id: SessionId, reason: &str) -> bool {
        match self.shared.registry.get(id) {
            Some(live) => {
                let ended = live.end(EndReason::Killed {
                    reason: reason.to_owned(),
                });
                if ended {
                    tracing::info!(session = %id, identity = %live.info().identity, reason, "session killed");
                }
                ended
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle").finish_non_exhaustive()
    }
}

/// One person's connection, from TCP accept to close: or, for `ssh -J`, the SSH connection
/// the person makes to a target through a `direct-tcpip` channel of their first one (`jump`:
/// who they are and which target they named), which the gateway ends itself so that the
/// session is authorized, recorded and ended like any other.
pub(crate) async fn connection<S>(
    shared: Arc<Shared>,
    stream: S,
    peer: SocketAddr,
    jump: Option<Jump>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let id = SessionId::new(shared.clock.now());
    tracing::debug!(session = %id, %peer, jump = jump.is_some(), "connection accepted");
    let state = Arc::new(ConnState::default());
    let ssh = shared.ssh.clone();
    let auth_timeout = shared.auth_timeout;
    let mut stop = shared.stop.clone();
    let handler = Conn::new(shared, id, Some(peer), state.clone(), jump);
    let deadline = tokio::time::Instant::now() + auth_timeout;
    let running = match tokio::time::timeout_at(deadline, run_stream(ssh, stream, handler)).await {
        Ok(Ok(running)) => running,
        Ok(Err(e)) => {
            tracing::debug!(session = %id, %peer, "handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(session = %id, %peer, "no SSH handshake within {auth_timeout:?}");
            return;
        }
    };
    let handle = running.handle();
    tokio::pin!(running);
    let mut deadline_armed = true;
    let mut stopping = false;
    loop {
        tokio::select! {
            result = &mut running => {
                if let Err(e) = result {
                    tracing::debug!(session = %id, %peer, "connection ended: {e}");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline), if deadline_armed => {
                deadline_armed = false;
                let settled = state.settled.load(Ordering::SeqCst);
                let live = lock(&state.live).is_some() || state.jumping.load(Ordering::SeqCst);
                // Not logged in with a session by now; or refused (and told so) but still
                // holding the connection open, e.g. as a connection-sharing master.
                if !live {
                    tracing::info!(session = %id, %peer, settled, "no session within {auth_timeout:?}; disconnecting");
                    let _ = handle
                        .disconnect(
                            Disconnect::ByApplication,
                            "warrant: no session within the time allowed".to_owned(),
                            "en".to_owned(),
                        )
                        .await;
                }
            }
            () = wait_true(&mut stop), if !stopping => {
                stopping = true;
                let live = lock(&state.live).clone();
                match live {
                    // Its supervisor tells the person and closes the connection.
                    Some(live) => {
                        live.end(EndReason::Shutdown);
                    }
                    None => {
                        let _ = handle
                            .disconnect(
                                Disconnect::ByApplication,
                                "warrant: the gateway is shutting down".to_owned(),
                                "en".to_owned(),
                            )
                            .await;
                    }
                }
            }
        }
    }
    tracing::debug!(session = %id, %peer, "connection closed");
}

/// Resolves once `rx` holds `true` (or its sender is gone).
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

//! [`PgGateway`]: its settings, the listener and accept loop, one task per connection, and
//! the [`PgGatewayHandle`] for live control.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;
use warrant_core::{Clock, SystemClock};
use warrant_recording::RecordingKey;

use crate::authority::{Authority, EndReason, PgEvent};
use crate::session::{Registry, SessionInfo};

/// How long shutdown waits for connections to finish after ending their sessions.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the accept loop pauses after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The gateway's settings.
#[derive(Clone)]
pub struct PgGatewayConfig {
    /// The address to listen on; port 0 picks a free port ([`PgGateway::local_addr`]).
    pub listen: SocketAddr,
    /// TLS offered to clients (`SSLRequest`). Without it, passwords are taken only from
    /// loopback clients.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// From TCP connect to the session's start (TLS, password, authorization, the target's
    /// login).
    pub auth_timeout: Duration,
    /// Connecting and logging in to a target.
    pub upstream_timeout: Duration,
    /// One [`Authority`] call.
    pub authority_timeout: Duration,
    /// Where "now" comes from (start times, time left until a grant's end).
    pub clock: Arc<dyn Clock>,
    /// Where statement logs go, and the key that signs them. `None`: nothing is logged, and
    /// a session whose role requires a log is refused.
    pub recordings: Option<RecordingsConfig>,
}

/// Where the gateway writes statement logs (`<session id>.cast`), and their signing key.
#[derive(Clone)]
pub struct RecordingsConfig {
    /// The directory (created at bind if missing).
    pub dir: PathBuf,
    /// Signs each log's manifest.
    pub key: Arc<RecordingKey>,
}

impl PgGatewayConfig {
    /// Settings with the default time limits, the system clock, no TLS and no logs.
    #[must_use]
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: None,
            auth_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(15),
            authority_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
            recordings: None,
        }
    }
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PgGwError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// The recordings directory is unusable.
    #[error("the recordings directory {dir} is unusable: {reason}")]
    Recordings {
        /// The directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
}

/// What every connection of one gateway shares.
pub(crate) struct Shared {
    pub(crate) authority: Arc<dyn Authority>,
    pub(crate) registry: Registry,
    pub(crate) config: PgGatewayConfig,
    /// Refusals reported one by one, per window (a flood of bad logins is summarised).
    pub(crate) refusals: std::sync::Mutex<RefusalWindow>,
}

/// Refusals reported in the current window, and those only counted.
#[derive(Default)]
pub(crate) struct RefusalWindow {
    started: Option<tokio::time::Instant>,
    reported: u32,
    counted: u64,
}

/// Refusals reported one by one per [`REFUSAL_WINDOW`]; more are counted and reported as one.
const REFUSALS_PER_WINDOW: u32 = 20;
/// See [`REFUSALS_PER_WINDOW`].
const REFUSAL_WINDOW: Duration = Duration::from_secs(10);

impl Shared {
    /// Reports a refusal, unless this window already reported its share: then it is counted,
    /// and the count is reported with the first refusal of a later window.
    pub(crate) fn refused(&self, event: PgEvent) {
        let now = tokio::time::Instant::now();
        let summary = {
            let mut w = crate::session::lock(&self.refusals);
            let fresh = w
                .started
                .is_none_or(|s| now.duration_since(s) >= REFUSAL_WINDOW);
            let summary = if fresh {
                let counted = std::mem::take(&mut w.counted);
                w.started = Some(now);
                w.reported = 0;
                (counted > 0).then_some(counted)
            } else {
                None
            };
            if w.reported >= REFUSALS_PER_WINDOW {
                w.counted += 1;
                if w.counted == 1 {
                    drop(w);
                    // The flood is in the audit trail at once; its size follows later.
                    self.authority.event(&PgEvent::Refused {
                        identity: "*".to_owned(),
                        target: None,
                        peer: None,
                        reason: format!(
                            "more than {REFUSALS_PER_WINDOW} refused connections within {} s: further ones are counted and reported as one",
                            REFUSAL_WINDOW.as_secs()
                        ),
                    });
                }
                return;
            }
            w.reported += 1;
            summary
        };
        if let Some(n) = summary {
            self.authority.event(&PgEvent::Refused {
                identity: "*".to_owned(),
                target: None,
                peer: None,
                reason: format!(
                    "{n} more refused connections in the previous {} s were counted, not reported one by one",
                    REFUSAL_WINDOW.as_secs()
                ),
            });
        }
        self.authority.event(&event);
    }
}

/// A bound PostgreSQL gateway, ready to [`run`](PgGateway::run).
pub struct PgGateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl PgGateway {
    /// Binds the listening socket (and makes the recordings directory).
    ///
    /// # Errors
    /// The address cannot be bound, or the recordings directory cannot be made.
    pub async fn bind(
        config: PgGatewayConfig,
        authority: Arc<dyn Authority>,
    ) -> Result<Self, PgGwError> {
        if let Some(r) = &config.recordings {
            std::fs::create_dir_all(&r.dir).map_err(|e| PgGwError::Recordings {
                dir: r.dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let bind_error = |e: std::io::Error| PgGwError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        tracing::info!(listen = %local_addr, tls = config.tls.is_some(), "PostgreSQL gateway listening");
        Ok(Self {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                authority,
                registry: Registry::default(),
                config,
                refusals: std::sync::Mutex::default(),
            }),
        })
    }

    /// The address the gateway listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle for listing and ending sessions.
    #[must_use]
    pub fn handle(&self) -> PgGatewayHandle {
        PgGatewayHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections until `shutdown` resolves; then ends every session (the person
    /// gets an error saying so), waits up to 10 s for connections to finish, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        connections.spawn(crate::conn::connection(
                            self.shared.clone(),
                            socket,
                            peer,
                            stop_rx.clone(),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = connections.join_next() => {}
            }
        }
        drop(self.listener);
        let _ = stop_tx.send(true);
        for live in self.shared.registry.all() {
            live.end(EndReason::Shutdown);
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
    }
}

/// Lists and ends the gateway's sessions.
#[derive(Clone)]
pub struct PgGatewayHandle {
    shared: Arc<Shared>,
}

impl PgGatewayHandle {
    /// The live sessions.
    #[must_use]
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<SessionInfo> = self
            .shared
            .registry
            .all()
            .iter()
            .map(|l| l.snapshot())
            .collect();
        all.sort_by_key(|s| s.id);
        all
    }

    /// Ends session `id`, telling the person `message`. False when no such session is live.
    #[must_use]
    pub fn kill(&self, id: Uuid, message: &str) -> bool {
        self.shared.registry.get(id).is_some_and(|l| {
            l.end(EndReason::Killed {
                reason: message.to_owned(),
            })
        })
    }
}

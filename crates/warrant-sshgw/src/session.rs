//! Live sessions: their ids and listings ([`SessionId`], [`SessionInfo`]), and how one ends
//! (grant end, kill, shutdown, either side closing).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use russh::{ChannelId, Disconnect};
use tokio::sync::watch;
use uuid::Uuid;
use warrant_core::Timestamp;

use crate::authority::{EndReason, GatewayEvent};
use crate::gateway::Shared;
use crate::upstream::UpstreamHandle;

/// How long a client is given to leave by itself after its channels were closed at a grant's
/// end (or a kill) before the gateway disconnects it.
const CLIENT_GRACE: Duration = Duration::from_secs(2);
/// A bound on each message to a client or target while a session is being ended.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection's id: given at TCP accept, so refusals before authorization carry it too.
/// A UUIDv7 made from the gateway's clock, so ids sort by start time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    pub(crate) fn new(now: Timestamp) -> Self {
        let millis = u64::try_from(now.millis()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
        );
        Self(Uuid::new_v7(ts))
    }

    /// Parses the text [`Display`](fmt::Display) gives.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(Self)
    }

    /// The UUID.
    #[must_use]
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0)
    }
}

/// One live session, as [`GatewayHandle::sessions`](crate::GatewayHandle::sessions) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session (connection) id.
    pub id: SessionId,
    /// The person's identity.
    pub identity: String,
    /// The person's label (see [`Person::label`](crate::Person::label)).
    pub label: String,
    /// SHA-256 fingerprint of the key they logged in with.
    pub key_fingerprint: String,
    /// Where they connected from.
    pub peer: Option<SocketAddr>,
    /// The target, as in their login.
    pub target: String,
    /// The role, if their login named one.
    pub role: Option<String>,
    /// The account on the target.
    pub account: String,
    /// `host:port` of the target's sshd.
    pub upstream: String,
    /// The grant the session runs under.
    pub grant_id: String,
    /// When the grant (and so the session) ends.
    pub grant_end: Timestamp,
    /// When the session logged in to the target.
    pub started: Timestamp,
    /// Bytes of channel data from the person to the target so far.
    pub bytes_up: u64,
    /// Bytes of channel data (stdout and stderr) from the target to the person so far.
    pub bytes_down: u64,
    /// Session channels open now (more than one with OpenSSH connection sharing).
    pub channels: usize,
}

/// A session logged in to its target: shared by the connection handler, its channel pumps,
/// its supervisor and the registry.
pub(crate) struct Live {
    /// The fixed part of the listing; counters and channels are read live.
    info: SessionInfo,
    pub(crate) bytes_up: AtomicU64,
    pub(crate) bytes_down: AtomicU64,
    /// Set once, by whoever ends the session first.
    end: watch::Sender<Option<EndReason>>,
    /// Set when the person's connection is gone.
    gone: watch::Sender<bool>,
    /// The person's connection.
    pub(crate) down: russh::server::Handle,
    /// The target connection.
    pub(crate) up: UpstreamHandle,
    /// Open session channels (downstream ids) and whether each has a pty.
    channels: Mutex<Vec<(ChannelId, bool)>>,
}

impl Live {
    pub(crate) fn new(info: SessionInfo, down: russh::server::Handle, up: UpstreamHandle) -> Self {
        Self {
            info,
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            end: watch::channel(None).0,
            gone: watch::channel(false).0,
            down,
            up,
            channels: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn id(&self) -> SessionId {
        self.info.id
    }

    pub(crate) fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The listing as of now.
    pub(crate) fn snapshot(&self) -> SessionInfo {
        let mut info = self.info.clone();
        info.bytes_up = self.bytes_up.load(Ordering::Relaxed);
        info.bytes_down = self.bytes_down.load(Ordering::Relaxed);
        info.channels = lock(&self.channels).len();
        info
    }

    /// Ends the session for `reason` unless it is already ending. Returns whether this call
    /// was the one that ended it.
    pub(crate) fn end(&self, reason: EndReason) -> bool {
        self.end.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        })
    }

    /// Whether the session is ending.
    pub(crate) fn is_ending(&self) -> bool {
        self.end.borrow().is_some()
    }

    /// A receiver for [`wait_end`].
    pub(crate) fn ending(&self) -> watch::Receiver<Option<EndReason>> {
        self.end.subscribe()
    }

    /// The person's connection is gone (the handler was dropped).
    pub(crate) fn connection_gone(&self) {
        self.gone.send_replace(true);
        self.end(EndReason::ClientClosed);
    }

    pub(crate) fn add_channel(&self, id: ChannelId, pty: bool) {
        lock(&self.channels).push((id, pty));
    }

    pub(crate) fn set_pty(&self, id: ChannelId) {
        for entry in lock(&self.channels).iter_mut() {
            if entry.0 == id {
                entry.1 = true;
            }
        }
    }

    pub(crate) fn remove_channel(&self, id: ChannelId) {
        lock(&self.channels).retain(|(c, _)| *c != id);
    }
}

/// Resolves once the session is ending (or its `Live` is gone).
pub(crate) async fn wait_end(rx: &mut watch::Receiver<Option<EndReason>>) {
    let _ = rx.wait_for(Option::is_some).await;
}

/// Runs `fut` unless the session ends first.
pub(crate) async fn unless_ending<F: Future>(
    rx: &mut watch::Receiver<Option<EndReason>>,
    fut: F,
) -> Option<F::Output> {
    tokio::select! {
        out = fut => Some(out),
        () = wait_end(rx) => None,
    }
}

/// The live sessions by id.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<SessionId, Arc<Live>>>,
}

impl Registry {
    pub(crate) fn insert(&self, live: Arc<Live>) {
        lock(&self.sessions).insert(live.id(), live);
    }

    pub(crate) fn remove(&self, id: SessionId) {
        lock(&self.sessions).remove(&id);
    }

    pub(crate) fn get(&self, id: SessionId) -> Option<Arc<Live>> {
        lock(&self.sessions).get(&id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Live>> {
        lock(&self.sessions).values().cloned().collect()
    }
}

/// A poisoned lock only means another task panicked while holding it; the data (lists and
/// maps) is still consistent, so carry on.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Watches one session from login to end: its grant's end, a kill, shutdown, or either side
/// leaving. Then tells the person why (when it is the gateway's doing), closes both sides,
/// unregisters the session and reports [`GatewayEvent::SessionEnded`].
pub(crate) async fn supervise(shared: Arc<Shared>, live: Arc<Live>) {
    let left_ms = live.info.grant_end.millis() - shared.clock.now().millis();
    let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
    let mut ending = live.ending();
    tokio::select! {
        () = tokio::time::sleep(left) => {
            live.end(EndReason::GrantEnded);
        }
        () = wait_end(&mut ending) => {}
    }
    let reason = live.end.borrow().clone().unwrap_or(EndReason::ClientClosed);
    tracing::info!(
        session = %live.id(),
        identity = %live.info.identity,
        target = %live.info.target,
        %reason,
        "ending session"
    );

    if let Some(message) = message_for(&reason, &live.info) {
        let channels = lock(&live.channels).clone();
        for (id, pty) in channels {
            let text = if pty {
                message.replace('\n', "\r\n")
            } else {
                message.clone()
            };
            let down = &live.down;
            let _ = tokio::time::timeout(SEND_TIMEOUT, async {
                let _ = down.extended_data(id, 1, text.into_bytes()).await;
                let _ = down.eof(id).await;
                let _ = down.close(id).await;
            })
            .await;
        }
    }
    if reason != EndReason::ClientClosed {
        // With its channels closed, OpenSSH's client leaves by itself; give it a moment, so
        // that what was written reaches it, then cut the connection.
        let mut gone = live.gone.subscribe();
        let _ = tokio::time::timeout(CLIENT_GRACE, gone.wait_for(|g| *g)).await;
        if !*gone.borrow() {
            let _ = tokio::time::timeout(
                SEND_TIMEOUT,
                live.down.disconnect(
                    Disconnect::ByApplication,
                    format!("warrant: session ended ({reason})"),
                    "en".to_owned(),
                ),
            )
            .await;
        }
    }
    let _ = tokio::time::timeout(
        SEND_TIMEOUT,
        live.up.disconnect(Disconnect::ByApplication, "", "en"),
    )
    .await;

    shared.registry.remove(live.id());
    let info = live.snapshot();
    tracing::info!(
        session = %info.id,
        identity = %info.identity,
        target = %info.target,
        bytes_up = info.bytes_up,
        bytes_down = info.bytes_down,
        %reason,
        "session ended"
    );
    shared
        .authority
        .event(&GatewayEvent::SessionEnded { info, reason });
}

/// What the person's terminal is told when the gateway ends their session.
fn message_for(reason: &EndReason, info: &SessionInfo) -> Option<String> {
    match reason {
        EndReason::GrantEnded => Some(format!(
            "\nwarrant: your grant {} of {} ended at {}; this session is closed.\n",
            info.grant_id, info.target, info.grant_end
        )),
        EndReason::Killed { reason } => Some(format!(
            "\nwarrant: this session was ended by an administrator: {reason}\n"
        )),
        EndReason::Shutdown => {
            Some("\nwarrant: the gateway is shutting down; this session is closed.\n".to_owned())
        }
        EndReason::ClientClosed | EndReason::UpstreamClosed => None,
    }
}

//! Live sessions: their ids and listings ([`SessionId`], [`SessionInfo`]), and how one ends
//! (grant end, kill, shutdown, either side closing, a strict recording failing) and its
//! recording is finished.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use russh::{ChannelId, Disconnect};
use tokio::sync::watch;
use uuid::Uuid;
use warrant_core::Timestamp;
use warrant_recording::SessionFacts;
use warrant_recording::live::{Failure, Recording, RecordingMode, RecordingOutcome};

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
    /// The recording's file name in the recordings directory (`<session id>.cast`), when the
    /// session is recorded.
    pub recording: Option<String>,
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
    /// The session's recording, when it is recorded.
    pub(crate) recording: Option<Recording>,
    /// Whether `ssh -L` / `-W` channels go through to the target.
    pub(crate) port_forwarding: bool,
    /// Whether the target may use the person's agent (`ssh -A`).
    pub(crate) agent_forwarding: bool,
    /// Set once the person asked for agent forwarding and the target agreed: only then are
    /// the target's agent channels passed on.
    pub(crate) agent_requested: AtomicBool,
}

impl Live {
    pub(crate) fn new(
        info: SessionInfo,
        down: russh::server::Handle,
        up: UpstreamHandle,
        recording: Option<Recording>,
        port_forwarding: bool,
        agent_forwarding: bool,
    ) -> Self {
        Self {
            info,
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            end: watch::channel(None).0,
            gone: watch::channel(false).0,
            down,
            up,
            channels: Mutex::new(Vec::new()),
            recording,
            port_forwarding,
            agent_forwarding,
            agent_requested: AtomicBool::new(false),
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

/// Watches one session from login to end: its grant's end, a kill, shutdown, either side
/// leaving, or its recording failing. Reports a recording failure once (and ends a strict
/// session for it). At the end, tells the person why (when it is the gateway's doing), closes
/// both sides, unregisters the session, finishes its recording and reports
/// [`GatewayEvent::SessionEnded`].
pub(crate) async fn supervise(shared: Arc<Shared>, live: Arc<Live>) {
    let left_ms = live.info.grant_end.millis() - shared.clock.now().millis();
    let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
    let grant_end = tokio::time::sleep(left);
    tokio::pin!(grant_end);
    let mut ending = live.ending();
    let mut failures = live.recording.as_ref().map(Recording::failures);
    loop {
        tokio::select! {
            () = &mut grant_end => {
                live.end(EndReason::GrantEnded);
                break;
            }
            () = wait_end(&mut ending) => break,
            failure = next_failure(failures.as_mut()) => {
                failures = None;
                recording_failed(&shared, &live, &failure);
            }
        }
    }
    // A pump may have ended a strict session for its recording before the loop saw it.
    if let Some(failure) = failures.and_then(|rx| rx.borrow().clone()) {
        recording_failed(&shared, &live, &failure);
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

    let info = live.snapshot();
    let recording = match &live.recording {
        Some(recording) => finish_recording(&shared, recording, &info, &reason).await,
        None => RecordingOutcome::NotRecorded,
    };
    // Only now: shutdown waits for the registry to empty, and so for the manifests.
    shared.registry.remove(live.id());
    tracing::info!(
        session = %info.id,
        identity = %info.identity,
        target = %info.target,
        bytes_up = info.bytes_up,
        bytes_down = info.bytes_down,
        %reason,
        ?recording,
        "session ended"
    );
    shared.authority.event(&GatewayEvent::SessionEnded {
        info,
        reason,
        recording,
    });
}

/// Resolves with the recording's first failure; never, for a session not recorded (or once
/// reported).
async fn next_failure(rx: Option<&mut watch::Receiver<Option<Failure>>>) -> Failure {
    if let Some(rx) = rx
        && let Ok(failure) = rx.wait_for(Option::is_some).await
        && let Some(failure) = failure.clone()
    {
        return failure;
    }
    std::future::pending().await
}

/// Reports a recording failure, and ends the session for it in strict mode.
fn recording_failed(shared: &Shared, live: &Live, failure: &Failure) {
    let mode = live
        .recording
        .as_ref()
        .map_or(RecordingMode::Off, Recording::mode);
    tracing::warn!(
        session = %live.id(),
        identity = %live.info.identity,
        ?mode,
        error = %failure.detail,
        "the session recording failed"
    );
    shared.authority.event(&GatewayEvent::RecordingFailed {
        session: live.id(),
        identity: live.info.identity.clone(),
        mode,
        error: failure.detail.clone(),
    });
    if mode == RecordingMode::Strict {
        live.end(EndReason::RecordingFailed {
            error: failure.cause.clone(),
        });
    }
}

/// Marks how the session ended, then syncs the recording and writes its signed manifest.
async fn finish_recording(
    shared: &Shared,
    recording: &Recording,
    info: &SessionInfo,
    reason: &EndReason,
) -> RecordingOutcome {
    // A failed strict recording gets nothing more.
    if recording.strict_failure().is_none() {
        recording.marker(format!("session ended: {reason}")).await;
    }
    let end_reason = match reason {
        EndReason::Killed { reason } => format!("killed: {reason}"),
        EndReason::RecordingFailed { error } => format!("recording_failed: {error}"),
        other => other.code().to_owned(),
    };
    recording
        .finish(SessionFacts {
            session_id: info.id.to_string(),
            identity: info.identity.clone(),
            target: info.target.clone(),
            account: info.account.clone(),
            grant_id: info.grant_id.clone(),
            started_at: info.started.unix_seconds(),
            ended_at: shared.clock.now().unix_seconds(),
            end_reason,
        })
        .await
}

/// What the person's terminal is told when the gateway ends their session.
fn message_for(reason: &EndReason, info: &SessionInfo) -> Option<String> {
    match reason {
        EndReason::GrantEnded => Some(format!(
            "\nwarrant: your grant {} of {} ended at {}; this session is closed.\n",
            info.grant_id, info.target, info.grant_end
        )),
        // Killed by an administrator, or by the engine when the grant was revoked.
        EndReason::Killed { reason } => {
            Some(format!("\nwarrant: this session was ended: {reason}\n"))
        }
        EndReason::RecordingFailed { error } => Some(format!(
            "\nwarrant: the session recording failed ({error}); this session is closed.\n"
        )),
        EndReason::Shutdown => {
            Some("\nwarrant: the gateway is shutting down; this session is closed.\n".to_owned())
        }
        EndReason::ClientClosed | EndReason::UpstreamClosed => None,
    }
}

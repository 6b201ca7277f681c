//! One client connection: start-up (TLS, the token as password, authorization, the target's
//! login with the injected credential), then the relay until either side leaves or the session
//! is ended — at the grant's end, by a kill, at shutdown, or when a strict statement log fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;
use warrant_core::Secret;
use warrant_recording::SessionFacts;
use warrant_recording::live::{Recording, RecordingMode, RecordingOutcome, Start};

use crate::authority::{DbLogin, Denied, EndReason, Person, PgEvent, Upstream};
use crate::gateway::Shared;
use crate::proto::{self, ProtoError, Startup};
use crate::session::{CancelTarget, Live, SessionInfo};
use crate::statements::Statements;
use crate::upstream::{self, Io, UpConn};

/// SQLSTATE `28000` invalid_authorization_specification.
const INVALID_AUTHORIZATION: &str = "28000";
/// SQLSTATE `28P01` invalid_password.
const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE `42501` insufficient_privilege.
const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// SQLSTATE `3D000` invalid_catalog_name.
const INVALID_CATALOG: &str = "3D000";
/// SQLSTATE `08006` connection_failure.
const CONNECTION_FAILURE: &str = "08006";
/// SQLSTATE `0A000` feature_not_supported.
const NOT_SUPPORTED: &str = "0A000";
/// SQLSTATE `57P01` admin_shutdown: what a terminated backend says.
const ADMIN_SHUTDOWN: &str = "57P01";
/// SQLSTATE `58000` system_error.
const SYSTEM_ERROR: &str = "58000";

/// Bytes read from a target per read.
const READ_CHUNK: usize = 64 * 1024;

/// Serves one connection to its end.
pub(crate) async fn connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let started = tokio::time::timeout(shared.config.auth_timeout, setup(&shared, socket, peer));
    match started.await {
        Ok(Ok(Some(session))) => relay(&shared, session, stop).await,
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "a connection ended during start-up"),
        Err(_) => tracing::debug!(%peer, "a connection did not start in time"),
    }
}

/// A session ready to relay.
struct Session {
    client: Box<dyn Io>,
    upstream: Box<dyn Io>,
    live: Arc<Live>,
    recording: Option<Recording>,
    statements: Statements,
    cancel: (i32, [u8; 4]),
}

/// What [`start`] makes: a session but for the client's stream.
struct Started {
    upstream: Box<dyn Io>,
    live: Arc<Live>,
    recording: Option<Recording>,
    statements: Statements,
    cancel: (i32, [u8; 4]),
}

/// A refusal during start-up: written to the client as a FATAL error, audited.
struct Refusal {
    sqlstate: &'static str,
    message: String,
    hint: Option<&'static str>,
    /// Recorded as an event (the person and target, when known).
    audit: Option<(String, Option<String>)>,
    /// The event's reason, when it must differ from the message (which may repeat what the
    /// client typed).
    audit_reason: Option<&'static str>,
}

impl Refusal {
    fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self {
            sqlstate,
            message: message.into(),
            hint: None,
            audit: None,
            audit_reason: None,
        }
    }

    fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// The event says `reason` instead of the message (the message names the user as typed,
    /// which may be a password).
    fn reason_in_audit(mut self, reason: &'static str) -> Self {
        self.audit_reason = Some(reason);
        self
    }

    fn audited(mut self, identity: &str, target: Option<&str>) -> Self {
        self.audit = Some((identity.to_owned(), target.map(str::to_owned)));
        self
    }
}

async fn setup(
    shared: &Arc<Shared>,
    mut socket: TcpStream,
    peer: SocketAddr,
) -> Result<Option<Session>, ProtoError> {
    let mut first = proto::read_startup(&mut socket).await?;
    if first == Startup::GssEnc {
        socket.write_all(b"N").await?;
        first = proto::read_startup(&mut socket).await?;
    }
    let (mut client, tls): (Box<dyn Io>, bool) = match (&first, &shared.config.tls) {
        (Startup::Ssl, Some(config)) => {
            socket.write_all(b"S").await?;
            let stream = tokio_rustls::TlsAcceptor::from(config.clone())
                .accept(socket)
                .await?;
            (Box::new(stream), true)
        }
        (Startup::Ssl, None) => {
            socket.write_all(b"N").await?;
            (Box::new(socket), false)
        }
        _ => (Box::new(socket), false),
    };
    let startup = if first == Startup::Ssl {
        proto::read_startup(&mut client).await?
    } else {
        first
    };
    let (minor, params) = match startup {
        Startup::Start { minor, params } => (minor, params),
        Startup::Cancel { pid, key } => {
            if let Some(t) = shared.registry.cancel_target(pid, &key) {
                upstream::cancel(&t.host, t.port, &t.tls, t.pid, &t.key).await;
            }
            return Ok(None);
        }
        Startup::Ssl | Startup::GssEnc => {
            return Err(ProtoError::Invalid("a second encryption request".into()));
        }
    };
    match start(shared, &mut client, peer, tls, minor, &params).await? {
        Ok(started) => Ok(Some(Session {
            client,
            upstream: started.upstream,
            live: started.live,
            recording: started.recording,
            statements: started.statements,
            cancel: started.cancel,
        })),
        Err(refusal) => {
            if let Some((identity, target)) = &refusal.audit {
                shared.refused(PgEvent::Refused {
                    identity: identity.clone(),
                    target: target.clone(),
                    peer: Some(peer),
                    reason: refusal
                        .audit_reason
                        .map_or_else(|| refusal.message.clone(), str::to_owned),
                });
            }
            let mut out = BytesMut::new();
            proto::error_response(
                &mut out,
                "FATAL",
                refusal.sqlstate,
                &refusal.message,
                refusal.hint,
            );
            proto::flush(&mut client, &mut out).await?;
            Ok(None)
        }
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// From the start-up message to a logged-in session, or the refusal to send.
#[expect(clippy::too_many_lines, reason = "one sequence of checks, in order")]
async fn start(
    shared: &Arc<Shared>,
    client: &mut Box<dyn Io>,
    peer: SocketAddr,
    tls: bool,
    minor: u16,
    params: &[(String, String)],
) -> Result<Result<Started, Refusal>, ProtoError> {
    let config = &shared.config;
    let mut out = BytesMut::new();
    let options = proto::protocol_options(params);
    if minor > 0 || !options.is_empty() {
        proto::negotiate_protocol_version(&mut out, &options);
    }
    let Some(user) = param(params, "user").filter(|u| !u.is_empty()) else {
        return Ok(Err(Refusal::new(
            INVALID_AUTHORIZATION,
            "no user name given: connect as your Warrant identity",
        )));
    };
    let database = param(params, "database")
        .filter(|d| !d.is_empty())
        .unwrap_or(user);
    if param(params, "replication").is_some_and(|r| !matches!(r, "false" | "off" | "0" | "no")) {
        return Ok(Err(Refusal::new(
            NOT_SUPPORTED,
            "replication connections are not relayed by the gateway",
        )
        .audited(user, None)));
    }
    if !tls && !peer.ip().to_canonical().is_loopback() {
        return Ok(Err(Refusal::new(
            INVALID_AUTHORIZATION,
            "the gateway takes tokens only over TLS",
        )
        .hint(
            "connect with sslmode=verify-full and the gateway's certificate as sslrootcert",
        )));
    }
    // The token, as a cleartext password: inside TLS (or on this machine).
    proto::auth_cleartext(&mut out);
    proto::flush(client, &mut out).await?;
    let (tag, body) = proto::read_message(client).await?;
    if tag != b'p' {
        return Err(ProtoError::Invalid(format!(
            "expected a password, got a {:?} message",
            char::from(tag)
        )));
    }
    let mut b = body.as_slice();
    let password = Secret::new(proto::cstr(&mut b)?);
    let authenticated = tokio::time::timeout(
        config.authority_timeout,
        shared.authority.authenticate(user, &password),
    )
    .await;
    drop(password);
    let person = match authenticated {
        Ok(Ok(Some(person))) => person,
        Ok(Ok(None)) => {
            return Ok(Err(Refusal::new(
                INVALID_PASSWORD,
                format!("password authentication failed for user \"{user}\""),
            )
            .hint("the password is a token from `warrant db-token`; it lasts minutes")
            .audited(user, None)
            .reason_in_audit(
                "password authentication failed (no live database token of that identity)",
            )));
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the authority could not check a database token");
            return Ok(Err(Refusal::new(
                SYSTEM_ERROR,
                "Warrant could not check the token; try again",
            )));
        }
        Err(_) => {
            return Ok(Err(Refusal::new(
                SYSTEM_ERROR,
                "Warrant did not answer in time; try again",
            )));
        }
    };
    let login = match DbLogin::parse(database) {
        Ok(l) => l,
        Err(e) => {
            return Ok(Err(Refusal::new(INVALID_CATALOG, e).hint(
                "the database name is the target: dbname=TARGET (or TARGET+ROLE)",
            )));
        }
    };
    let authorized =
        tokio::time::timeout(config.authority_timeout, authorize(shared, &person, &login)).await;
    let up = match authorized {
        Ok(Ok(up)) => up,
        Ok(Err(Denied(message))) => {
            return Ok(Err(Refusal::new(INSUFFICIENT_PRIVILEGE, message)
                .audited(&person.identity, Some(&login.target))));
        }
        Err(_) => {
            return Ok(Err(Refusal::new(
                SYSTEM_ERROR,
                "Warrant did not answer in time; try again",
            )));
        }
    };
    let now = config.clock.now();
    let id = crate::session_id(now);
    let recording = match open_recording(shared, &person, &login, &up, id, now) {
        Ok(r) => r,
        Err(message) => {
            return Ok(Err(
                Refusal::new(SYSTEM_ERROR, message).audited(&person.identity, Some(&login.target))
            ));
        }
    };
    let conn = match upstream::connect(&up, params, config.upstream_timeout).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(r) = recording {
                r.discard();
            }
            tracing::warn!(error = %e, target = %login.target, "a database session could not reach its target");
            return Ok(Err(Refusal::new(
                CONNECTION_FAILURE,
                format!("the gateway could not log in to {}: {e}", login.target),
            )
            .audited(&person.identity, Some(&login.target))));
        }
    };
    let UpConn {
        stream: upstream,
        greeting,
        pid,
        key,
    } = conn;
    let cancel = shared.registry.cancel_key(CancelTarget {
        host: up.host.clone(),
        port: up.port,
        tls: up.tls.clone(),
        pid,
        key,
    });
    // Until the session is handed over, leaving (an error, or the start-up time limit dropping
    // this future) forgets the cancel key and removes the unfinished log.
    let mut pending = Pending {
        shared,
        cancel: Some(cancel),
        recording,
    };
    // AuthenticationOk, the target's parameters and notices, our key, its ReadyForQuery.
    proto::auth_ok(&mut out);
    let (before, ready) = greeting.split_at(greeting.len().saturating_sub(6));
    out.extend_from_slice(before);
    proto::backend_key_data(&mut out, cancel.0, cancel.1);
    out.extend_from_slice(ready);
    proto::flush(client, &mut out).await?;
    let info = SessionInfo {
        id,
        identity: person.identity.clone(),
        peer: Some(peer),
        target: login.target.clone(),
        database: up.database.clone(),
        account: up.user.clone(),
        grant_id: up.grant_id.clone(),
        grant_end: up.grant_end,
        started: now,
        bytes_up: 0,
        bytes_down: 0,
        recording: pending.recording.as_ref().map(|r| r.file().to_owned()),
        tls,
    };
    if let Some(r) = &pending.recording {
        r.begin().await;
        r.marker(format!(
            "session: {} on {}/{} as {} (grant {})",
            info.identity, info.target, info.database, info.account, info.grant_id
        ))
        .await;
    }
    let live = Arc::new(Live::new(info.clone()));
    shared.registry.insert(live.clone());
    shared.authority.event(&PgEvent::SessionStarted(info));
    pending.cancel = None;
    Ok(Ok(Started {
        upstream,
        live,
        recording: pending.recording.take(),
        statements: Statements::new(up.record_values),
        cancel,
    }))
}

/// A session being started: what to undo if it never is.
struct Pending<'a> {
    shared: &'a Shared,
    cancel: Option<(i32, [u8; 4])>,
    recording: Option<Recording>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some((pid, key)) = self.cancel.take() {
            self.shared.registry.forget_cancel_key(pid, key);
        }
        if let Some(r) = self.recording.take() {
            r.discard();
        }
    }
}

async fn authorize(shared: &Shared, person: &Person, login: &DbLogin) -> Result<Upstream, Denied> {
    shared.authority.authorize(person, login).await
}

/// The session's statement log, as its role asks; `Err` refuses the session.
fn open_recording(
    shared: &Shared,
    person: &Person,
    login: &DbLogin,
    up: &Upstream,
    id: Uuid,
    now: warrant_core::Timestamp,
) -> Result<Option<Recording>, String> {
    if up.recording == RecordingMode::Off {
        return Ok(None);
    }
    let Some(config) = &shared.config.recordings else {
        return match up.recording {
            RecordingMode::Strict => Err(
                "this role requires a statement log, and the gateway keeps none: tell an admin"
                    .into(),
            ),
            _ => Ok(None),
        };
    };
    let created = Recording::create(Start {
        dir: &config.dir,
        key: config.key.clone(),
        session_id: id.to_string(),
        mode: up.recording,
        record_input: false,
        title: format!(
            "{} on {} as {} (grant {})",
            person.identity, login.target, up.user, up.grant_id
        ),
        timestamp: now.unix_seconds(),
    });
    match created {
        Ok(r) => Ok(Some(r)),
        Err(failure) if up.recording == RecordingMode::Strict => Err(format!(
            "the statement log cannot be written ({}): the session is refused",
            failure.cause
        )),
        Err(failure) => {
            shared.authority.event(&PgEvent::RecordingFailed {
                identity: person.identity.clone(),
                target: login.target.clone(),
                error: failure.detail,
            });
            Ok(None)
        }
    }
}

/// Relays until the session ends, then closes it: the message to the person, the log's
/// manifest, the event.
async fn relay(shared: &Arc<Shared>, mut s: Session, mut stop: watch::Receiver<bool>) {
    let now = shared.config.clock.now();
    let left = s.live.snapshot().grant_end.millis() - now.millis();
    // The grant's end and shutdown end the session like a kill: one signal, which every wait
    // of the relay (reads, and writes to a side that does not read) gives way to.
    let ender = {
        let live = s.live.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0))) => {
                    live.end(EndReason::GrantEnded);
                }
                _ = stop.wait_for(|v| *v) => {
                    live.end(EndReason::Shutdown);
                }
            }
        })
    };
    let mut ending = s.live.ending();
    // The select's own receiver (the other one is lent to the waits inside its arms).
    let mut ended = s.live.ending();
    let mut failures = s.recording.as_ref().map(Recording::failures);
    let mut failure_reported = false;
    let mut cbuf = BytesMut::with_capacity(16 * 1024);
    let mut ubuf = BytesMut::with_capacity(READ_CHUNK);
    let mut boundaries = proto::Boundaries::default();
    let reason = loop {
        tokio::select! {
            biased;
            () = ending_signal(&mut ended) => break end_reason(&ending),
            read = s.client.read_buf(&mut cbuf) => match read {
                Ok(0) | Err(_) => break EndReason::Closed,
                Ok(_) => match from_client(&mut s, &mut cbuf, &mut ending).await {
                    Ok(true) => {}
                    Ok(false) => break EndReason::Closed,
                    Err(Some(e)) => break EndReason::Error(e),
                    Err(None) => break end_reason(&ending),
                },
            },
            read = s.upstream.read_buf(&mut ubuf) => match read {
                Ok(0) | Err(_) => break EndReason::UpstreamClosed,
                Ok(n) => {
                    boundaries.feed(&ubuf);
                    match or_end(&mut ending, s.client.write_all(&ubuf)).await {
                        None => break end_reason(&ending),
                        Some(Err(_)) => break EndReason::Closed,
                        Some(Ok(())) => {}
                    }
                    s.live.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
                    ubuf.clear();
                    if ubuf.capacity() < READ_CHUNK {
                        ubuf.reserve(READ_CHUNK);
                    }
                }
            },
            Some(failure) = recording_failure(failures.as_mut()) => {
                let rec = s.recording.as_ref();
                if rec.is_some_and(|r| r.mode() == RecordingMode::Strict) {
                    break EndReason::RecordingFailed { error: failure.detail };
                }
                if !failure_reported {
                    failure_reported = true;
                    let info = s.live.snapshot();
                    shared.authority.event(&PgEvent::RecordingFailed {
                        identity: info.identity,
                        target: info.target,
                        error: failure.detail,
                    });
                }
                failures = None;
            }
        }
    };
    ender.abort();
    close(shared, s, reason, boundaries.at_boundary()).await;
}

/// Runs `f` unless the session is ending first (`None` then).
async fn or_end<T>(
    ending: &mut watch::Receiver<Option<EndReason>>,
    f: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = ending_signal(ending) => None,
        r = f => Some(r),
    }
}

/// Resolves once the session is ending (its reason is not held, so the future stays `Send`).
async fn ending_signal(ending: &mut watch::Receiver<Option<EndReason>>) {
    let _ = ending.wait_for(Option::is_some).await;
}

/// Why the session is ending, once it is.
fn end_reason(ending: &watch::Receiver<Option<EndReason>>) -> EndReason {
    ending.borrow().clone().unwrap_or(EndReason::Shutdown)
}

/// The next failure of the statement log, or never.
async fn recording_failure(
    failures: Option<&mut watch::Receiver<Option<warrant_recording::live::Failure>>>,
) -> Option<warrant_recording::live::Failure> {
    let Some(rx) = failures else {
        return std::future::pending().await;
    };
    loop {
        if let Some(f) = rx.borrow_and_update().clone() {
            return Some(f);
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Handles the client's whole messages in `buf`: logs their statements (before the target sees
/// them, so that it never runs one the log does not hold, in strict mode), then passes them on.
/// The statements of one read go to the log together: one wait for the writer per read, not
/// per statement, for a client that pipelines. False when the client said goodbye;
/// `Err(None)` when the session is ending meanwhile.
async fn from_client(
    s: &mut Session,
    buf: &mut BytesMut,
    ending: &mut watch::Receiver<Option<EndReason>>,
) -> Result<bool, Option<String>> {
    let mut pos = 0;
    let mut goodbye = false;
    let mut lines = String::new();
    loop {
        let rest = &buf[pos..];
        match proto::whole_message(rest).map_err(|e| Some(e.to_string()))? {
            Some(n) => {
                let tag = rest[0];
                // Unlogged sessions keep no statements at all.
                if s.recording.is_some()
                    && let Some(line) = s.statements.on_message(tag, &rest[5..n])
                {
                    push_line(&mut lines, &line);
                }
                goodbye |= tag == b'X';
                pos += n;
            }
            None => {
                // Room for the rest of a long message at once.
                if rest.len() >= 5 {
                    let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
                    let need = usize::try_from(len).unwrap_or(0) + 1;
                    buf.reserve(need.saturating_sub(rest.len()));
                }
                break;
            }
        }
    }
    if let Some(r) = &s.recording
        && (!lines.is_empty() || r.strict_failure().is_some())
    {
        if !lines.is_empty() && or_end(ending, r.output(lines.as_bytes())).await.is_none() {
            return Err(None);
        }
        if r.strict_failure().is_some() {
            // Not in the log: not passed on (the relay ends the session for the failure).
            buf.advance(pos);
            return Ok(true);
        }
    }
    if pos > 0 {
        let ended = ending.borrow().is_some();
        if ended {
            return Err(None);
        }
        or_end(ending, s.upstream.write_all(&buf[..pos]))
            .await
            .ok_or(None)?
            .map_err(|e| Some(format!("writing to the target: {e}")))?;
        s.live.bytes_up.fetch_add(pos as u64, Ordering::Relaxed);
        buf.advance(pos);
    }
    Ok(!goodbye)
}

/// Appends a statement line as terminal output: each line ends with CR LF, as a terminal
/// shows it on replay.
fn push_line(lines: &mut String, line: &str) {
    for (i, part) in line.split('\n').enumerate() {
        if i > 0 {
            lines.push_str("\r\n");
        }
        lines.push_str(part);
    }
    lines.push_str("\r\n");
}

/// Ends a session: tells the person why (when the relay stopped between two messages), says
/// goodbye to the target, finishes the log, reports.
async fn close(shared: &Arc<Shared>, mut s: Session, reason: EndReason, at_boundary: bool) {
    let message = match &reason {
        EndReason::GrantEnded => Some("your grant ended: the gateway closed the session".into()),
        EndReason::Killed { reason } => Some(format!("the session was ended: {reason}")),
        EndReason::RecordingFailed { .. } => {
            Some("the statement log could not be written: the session is closed".into())
        }
        EndReason::Shutdown => Some("the gateway is shutting down".into()),
        EndReason::Closed | EndReason::UpstreamClosed | EndReason::Error(_) => None,
    };
    let bounded = Duration::from_secs(5);
    if message.is_some()
        && let Some(t) = shared.registry.cancel_target(s.cancel.0, &s.cancel.1)
    {
        // Whatever the target still runs for the session stops now, not when it finishes.
        let _ = tokio::time::timeout(
            bounded,
            upstream::cancel(&t.host, t.port, &t.tls, t.pid, &t.key),
        )
        .await;
    }
    if let Some(message) = message
        && at_boundary
    {
        let mut out = BytesMut::new();
        proto::error_response(&mut out, "FATAL", ADMIN_SHUTDOWN, &message, None);
        let _ = tokio::time::timeout(bounded, proto::flush(&mut s.client, &mut out)).await;
    }
    let mut bye = BytesMut::new();
    proto::put_message(&mut bye, b'X', &[]);
    let _ = tokio::time::timeout(bounded, proto::flush(&mut s.upstream, &mut bye)).await;
    let _ = tokio::time::timeout(bounded, s.client.shutdown()).await;
    let _ = tokio::time::timeout(bounded, s.upstream.shutdown()).await;
    shared.registry.remove(s.live.snapshot().id);
    shared.registry.forget_cancel_key(s.cancel.0, s.cancel.1);
    let info = s.live.snapshot();
    let recording = match &s.recording {
        Some(r) => {
            r.marker(format!("end: {}", reason.code())).await;
            r.finish(SessionFacts {
                session_id: info.id.to_string(),
                identity: info.identity.clone(),
                target: info.target.clone(),
                account: info.account.clone(),
                grant_id: info.grant_id.clone(),
                started_at: info.started.unix_seconds(),
                ended_at: shared.config.clock.now().unix_seconds(),
                end_reason: reason.code().to_owned(),
            })
            .await
        }
        None => RecordingOutcome::NotRecorded,
    };
    shared.authority.event(&PgEvent::SessionEnded {
        info,
        reason,
        recording,
    });
}

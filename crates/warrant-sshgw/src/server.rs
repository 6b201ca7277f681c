//! The gateway's SSH server side: one [`Conn`] per person's connection, a russh server
//! handler. It authenticates the person, asks for authorization at the first session channel,
//! mirrors each session channel onto a channel of the upstream connection, and refuses
//! everything else (forwarding of ports, sockets, agent and X11).
//!
//! Data from the person goes upstream inside the `data` callback, which waits for the
//! target's window: while it waits, russh reads nothing more from the person's socket, so a
//! fast sender is held back by TCP instead of being buffered (russh grants the person more
//! window as soon as data arrives, so TCP is the only brake it leaves us). Data from the
//! target is written by one pump task per channel, which waits for the person's window;
//! russh's client side holds the target back by TCP the same way. Nothing is buffered beyond
//! russh's bounded per-channel queues.
//!
//! The known limit of this: while the `data` callback waits, the connection's loop cannot
//! read the person's window adjustments either. A person whose client stops reading output
//! while pushing more input than the windows hold, to a command that stops reading input
//! while its output is blocked, stalls that connection until the session ends (its grant's
//! end or a kill, which both still work). Per-channel windows granted as data is consumed,
//! as OpenSSH's sshd does, would need russh to let the handler grant the window.
//!
//! A recorded session's recording is created when it is authorized, before the target is
//! logged in to. Each chunk of terminal output (and input, when the role records it) is handed
//! to the recording before it is passed on (in strict mode: written; see `recording`); a strict
//! session whose recording has failed passes nothing more on and ends. Commands are markers. File
//! transfers (subsystems such as sftp, and `scp -t` / `scp -f`) are markers too, with their byte
//! counts when they end, but their data is not recorded: it is a binary protocol, which
//! asciicast would keep only mangled (as UTF-8 text) and large.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session};
use russh::{
    Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, MethodKind, MethodSet, Pty,
    Sig, client,
};
use ssh_key::Certificate;
use tokio::sync::{oneshot, watch};
use warrant_recording::live::{self, Failure, Recording, RecordingMode};

use crate::authority::{Command, EndReason, GatewayEvent, OfferedKey, Person, Refusal, Upstream};
use crate::error::GwError;
use crate::gateway::Shared;
use crate::login::{Login, LoginError, parse_login};
use crate::session::{Live, SessionId, SessionInfo, lock, supervise, unless_ending};
use crate::upstream;

/// How long the gateway waits for the target to answer a channel request (pty, shell, exec,
/// subsystem) before answering the person with a failure.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Environment variable values longer than this are not forwarded.
const MAX_ENV_VALUE: usize = 256;

/// What the connection task and the handler share.
#[derive(Default)]
pub(crate) struct ConnState {
    /// Set once the first session channel was answered (a live session or a refusal): the
    /// connection has done what it came for within `auth_timeout`.
    pub(crate) settled: AtomicBool,
    /// The live session, once authorized (for shutdown).
    pub(crate) live: Mutex<Option<Arc<Live>>>,
    /// An `ssh -J` jump host connection that opened a channel to a target: it carries a
    /// session of its own (its inner connection), so the time limit for a first session is
    /// met.
    pub(crate) jumping: AtomicBool,
    /// `ssh -J` inner connections open through this one now (at most [`MAX_JUMPS`]).
    pub(crate) jumps_open: Arc<std::sync::atomic::AtomicUsize>,
}

/// Inner `ssh -J` connections one jump host connection may carry at a time.
pub(crate) const MAX_JUMPS: usize = 8;

/// Where a connection stands.
enum Phase {
    /// Not asked yet (no session channel so far).
    Unauthorized,
    /// Refused (by the authority, or the target could not be reached): every session channel
    /// shows this message and fails.
    Refused(String),
    /// Logged in to the target.
    Live(Arc<Live>),
}

/// One downstream session channel.
struct Chan {
    /// The upstream channel's write side; `None` on a refused connection.
    up: Option<ChannelWriteHalf<client::Msg>>,
    /// Waiting for the target's answers to our requests, in order (SSH answers channel
    /// requests in the order they were made).
    replies: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>,
    /// Whether a pty was granted (messages then end lines with CR LF).
    pty: bool,
    /// The task copying the target's output to the person.
    pump: Option<tokio::task::JoinHandle<()>>,
    /// What the channel carries, for the recording.
    traffic: Arc<Traffic>,
}

/// What one session channel carries, for the session's recording.
#[derive(Default)]
struct Traffic {
    /// Set when the channel starts a shell, a command or a subsystem.
    kind: OnceLock<Kind>,
    /// Bytes from the person, and from the target.
    up: AtomicU64,
    down: AtomicU64,
}

/// How a channel is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A shell or a command: its output (and input, if the role says) is recorded.
    Terminal,
    /// A file transfer (`scp upload`, `subsystem sftp`, …): marked, with its byte counts when
    /// it ends; its data is not recorded.
    Transfer(String),
}

impl Traffic {
    fn is_terminal(&self) -> bool {
        self.kind.get() == Some(&Kind::Terminal)
    }
}

/// How `command` is recorded: its marker, and what its channel carries.
fn classify(command: &Command) -> (String, Kind) {
    match command {
        Command::Shell => ("shell".to_owned(), Kind::Terminal),
        Command::Exec(line) => match scp_direction(line) {
            Some(direction) => (
                format!("scp {direction}: {line}"),
                Kind::Transfer(format!("scp {direction}")),
            ),
            None => (format!("exec: {line}"), Kind::Terminal),
        },
        Command::Subsystem(name) => (
            format!("subsystem: {name}"),
            Kind::Transfer(format!("subsystem {name}")),
        ),
    }
}

/// `upload` for the server side of `scp -O` sending files to the target (`scp -t …`),
/// `download` for the other way (`scp -f …`); `None` for any other command.
fn scp_direction(line: &str) -> Option<&'static str> {
    let mut words = line.split_whitespace();
    let program = words.next()?;
    if program != "scp" && !program.ends_with("/scp") {
        return None;
    }
    for word in words {
        if word == "--" || !word.starts_with('-') {
            break;
        }
        if word.contains('t') {
            return Some("upload");
        }
        if word.contains('f') {
            return Some("download");
        }
    }
    None
}

/// Whether a strict session may go on: once its recording has failed, it ends (and nothing
/// more is passed on).
fn recording_holds(live: &Live) -> bool {
    match live.recording.as_ref().and_then(Recording::strict_failure) {
        Some(failure) => {
            live.end(EndReason::RecordingFailed {
                error: failure.cause,
            });
            false
        }
        None => true,
    }
}

/// Records what the person sent on a channel (only a terminal's, and only when the role
/// records input). Returns whether to pass it on.
async fn record_input(
    live: &Live,
    traffic: &Traffic,
    data: &[u8],
    ending: &mut watch::Receiver<Option<EndReason>>,
) -> bool {
    traffic.up.fetch_add(data.len() as u64, Ordering::Relaxed);
    let Some(recording) = &live.recording else {
        return true;
    };
    if traffic.is_terminal() && unless_ending(ending, recording.input(data)).await.is_none() {
        return false;
    }
    recording_holds(live)
}

/// An `ssh -J` connection's context: the person, already authenticated on the outer
/// connection, and the target they named as the host to reach.
#[derive(Debug, Clone)]
pub(crate) struct Jump {
    pub(crate) identity: String,
    pub(crate) target: String,
}

/// What a session channel of a login without a target (the jump host of `ssh -J`) shows.
const JUMP_ONLY: &str = "warrant: this login (IDENTITY without a target) is for jumping: ssh -J IDENTITY@gateway ROLE@TARGET; to log in here, use IDENTITY+TARGET\n";

/// The russh server handler of one person's connection.
pub(crate) struct Conn {
    shared: Arc<Shared>,
    id: SessionId,
    peer: Option<SocketAddr>,
    state: Arc<ConnState>,
    login: Option<Login>,
    person: Option<Person>,
    key_fingerprint: String,
    /// Key accepted, second factor still to come: the login, the person and the key's
    /// fingerprint, and the codes tried so far.
    second_factor: Option<(Login, Person, String, u8)>,
    /// An `ssh -J` inner connection: whose, and to which target.
    jump: Option<Jump>,
    /// An outer `ssh -J` connection (the login named an identity only): it may only open
    /// channels to targets.
    jump_host: bool,
    /// Whether the person proved a second factor on this connection.
    second_factor_proved: bool,
    /// Wrong second-factor codes on this connection.
    codes_tried: u8,
    phase: Phase,
    channels: HashMap<ChannelId, Chan>,
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: SessionId,
        peer: Option<SocketAddr>,
        state: Arc<ConnState>,
        jump: Option<Jump>,
    ) -> Self {
        Self {
            shared,
            id,
            peer,
            state,
            login: None,
            person: None,
            key_fingerprint: String::new(),
            second_factor: None,
            jump,
            jump_host: false,
            second_factor_proved: false,
            codes_tried: 0,
            phase: Phase::Unauthorized,
            channels: HashMap::new(),
        }
    }

    /// The login a user name means on this connection: `identity+target[+role]`; an identity
    /// alone on a first connection (the jump host of `ssh -J`, whose login has no target);
    /// on an `ssh -J` inner connection, the role (or the identity, to let the grant decide).
    fn login_for(&self, user: &str) -> Result<(Login, bool), LoginError> {
        if let Some(j) = &self.jump {
            let composed = if user.eq_ignore_ascii_case(&j.identity) {
                format!("{}+{}", j.identity, j.target)
            } else {
                format!("{}+{}+{user}", j.identity, j.target)
            };
            return parse_login(&composed).map(|l| (l, false));
        }
        if !user.contains('+') {
            // Validated as a login with a placeholder target, which is then dropped.
            let mut login = parse_login(&format!("{user}+jump"))?;
            login.target = String::new();
            return Ok((login, true));
        }
        parse_login(user).map(|l| (l, false))
    }

    async fn authenticate(&mut self, user: &str, key: OfferedKey) -> Auth {
        let (login, jump_host) = match self.login_for(user) {
            Ok(login) => login,
            Err(e) => {
                tracing::info!(session = %self.id, peer = ?self.peer, code = e.code(), "login refused: {e}");
                return Auth::reject();
            }
        };
        let fingerprint = key.fingerprint();
        let answer = tokio::time::timeout(
            self.shared.authority_timeout,
            self.shared.authority.authenticate(&login, &key),
        )
        .await
        .unwrap_or_else(|_| {
            Err(GwError::Authority(format!(
                "no answer within {:?}",
                self.shared.authority_timeout
            )))
        });
        match answer {
            Ok(Some(person)) => {
                match self.second_factor_required(&person, &login).await {
                    Ok(false) => {}
                    Ok(true) => {
                        tracing::info!(session = %self.id, identity = %person.identity, target = %login.target, "key accepted; a second factor is required");
                        self.second_factor = Some((login, person, fingerprint, 0));
                        return Auth::Reject {
                            proceed_with_methods: Some(MethodSet::from(
                                &[MethodKind::KeyboardInteractive][..],
                            )),
                            partial_success: true,
                        };
                    }
                    Err(e) => {
                        tracing::warn!(session = %self.id, code = e.code(), "deciding on a second factor failed: {e}");
                        return Auth::reject();
                    }
                }
                tracing::info!(
                    session = %self.id,
                    peer = ?self.peer,
                    identity = %person.identity,
                    target = %login.target,
                    key = %fingerprint,
                    "authenticated"
                );
                self.login = Some(login);
                self.person = Some(person);
                self.key_fingerprint = fingerprint;
                if jump_host {
                    self.jump_host = true;
                    self.phase = Phase::Refused(JUMP_ONLY.to_owned());
                }
                Auth::Accept
            }
            Ok(None) => {
                tracing::info!(
                    session = %self.id,
                    peer = ?self.peer,
                    identity = %login.identity,
                    key = %fingerprint,
                    "key not registered for this identity"
                );
                Auth::reject()
            }
            Err(e) => {
                tracing::warn!(session = %self.id, code = e.code(), "authentication failed: {e}");
                Auth::reject()
            }
        }
    }

    /// Asks the authority, then logs in to the target.
    async fn authorize(&self, down: server::Handle) -> Phase {
        let (Some(person), Some(login)) = (&self.person, &self.login) else {
            return Phase::Refused("warrant: not logged in\n".to_owned());
        };
        // Asked again now: a grant that became active (or was approved) since the key was
        // accepted may be one whose rule requires a second factor.
        if !self.second_factor_proved {
            match self.second_factor_required(person, login).await {
                Ok(false) => {}
                Ok(true) => {
                    return Phase::Refused(format!(
                        "warrant: {} on {} requires a second factor: connect again to be asked for it\n",
                        login.role.as_deref().unwrap_or("this role"),
                        login.target
                    ));
                }
                Err(e) => {
                    tracing::warn!(session = %self.id, code = e.code(), "deciding on a second factor failed: {e}");
                    return Phase::Refused(
                        "warrant: the gateway could not decide on a second factor; try again\n"
                            .to_owned(),
                    );
                }
            }
        }
        let answer = tokio::time::timeout(
            self.shared.authority_timeout,
            self.shared.authority.authorize(person, login),
        )
        .await;
        let upstream = match answer {
            Ok(Ok(upstream)) => upstream,
            Err(_) => {
                tracing::warn!(
                    session = %self.id,
                    identity = %person.identity,
                    target = %login.target,
                    "the authority did not answer within {:?}",
                    self.shared.authority_timeout
                );
                return Phase::Refused(
                    "warrant: Warrant did not answer in time; try again in a moment.\n".to_owned(),
                );
            }
            Ok(Err(denied)) => {
                tracing::info!(
                    session = %self.id,
                    identity = %person.identity,
                    target = %login.target,
                    "denied: {denied}"
                );
                return Phase::Refused(format!("warrant: {}\n", denied.message));
            }
        };
        // Before the target is logged in to: a strict session that cannot be recorded never
        // reaches it.
        let (recording, unrecorded) = match self.open_recording(person, login, &upstream) {
            Ok(recording) => (recording, None),
            Err(failure) if upstream.recording == RecordingMode::Strict => {
                self.refused(Refusal::Unrecordable {
                    reason: failure.detail,
                });
                return Phase::Refused(format!(
                    "warrant: sessions as {} on {} must be recorded, and this one cannot be \
                     ({}). Tell your Warrant administrator.\n",
                    upstream.account, login.target, failure.cause
                ));
            }
            Err(failure) => (None, Some(failure)),
        };
        let label = upstream::label(&upstream);
        let (agent_tx, agent_rx) = if upstream.agent_forwarding {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let up = match upstream::connect(&upstream, self.shared.upstream_timeout, agent_tx).await {
            Ok(up) => up,
            Err(e) => {
                if let Some(recording) = recording {
                    recording.discard();
                }
                tracing::warn!(
                    session = %self.id,
                    identity = %person.identity,
                    target = %login.target,
                    code = e.code(),
                    "upstream failed: {e}"
                );
                self.shared.authority.event(&GatewayEvent::UpstreamFailed {
                    session: self.id,
                    identity: person.identity.clone(),
                    target: login.target.clone(),
                    grant_id: upstream.grant_id.clone(),
                    error: format!("{}: {e}", e.code()),
                });
                return Phase::Refused(upstream_message(&login.target, &e));
            }
        };
        let info = SessionInfo {
            id: self.id,
            identity: person.identity.clone(),
            label: person.label.clone(),
            key_fingerprint: self.key_fingerprint.clone(),
            peer: self.peer,
            target: login.target.clone(),
            role: login.role.clone(),
            account: upstream.account.clone(),
            upstream: format!("{}:{}", upstream.host, upstream.port),
            grant_id: upstream.grant_id.clone(),
            grant_end: upstream.grant_end,
            started: self.shared.clock.now(),
            bytes_up: 0,
            bytes_down: 0,
            channels: 0,
            recording: recording.as_ref().map(|r| r.file().to_owned()),
        };
        tracing::info!(
            session = %self.id,
            identity = %info.identity,
            target = %info.target,
            upstream = %label,
            grant = %info.grant_id,
            grant_end = %info.grant_end,
            "session started"
        );
        let live = Arc::new(Live::new(
            info,
            down,
            up,
            recording,
            upstream.port_forwarding,
            upstream.agent_forwarding,
        ));
        if let Some(rx) = agent_rx {
            tokio::spawn(agent_channels(live.clone(), rx));
        }
        self.shared.registry.insert(live.clone());
        *lock(&self.state.live) = Some(live.clone());
        self.shared
            .authority
            .event(&GatewayEvent::SessionStarted(live.snapshot()));
        if let Some(failure) = unrecorded {
            // Best-effort: the session goes on unrecorded.
            tracing::warn!(session = %self.id, identity = %person.identity, error = %failure.detail, "the session goes on unrecorded");
            self.shared.authority.event(&GatewayEvent::RecordingFailed {
                session: self.id,
                identity: person.identity.clone(),
                mode: RecordingMode::BestEffort,
                error: failure.detail,
            });
        }
        tokio::spawn(supervise(self.shared.clone(), live.clone()));
        Phase::Live(live)
    }

    /// The session's recording, as its role says: `None` when it is not recorded (the role
    /// does not record, or the gateway keeps no recordings and the role does not insist).
    fn open_recording(
        &self,
        person: &Person,
        login: &Login,
        upstream: &Upstream,
    ) -> Result<Option<Recording>, Failure> {
        if upstream.recording == RecordingMode::Off {
            return Ok(None);
        }
        let Some(recordings) = &self.shared.recordings else {
            if upstream.recording == RecordingMode::Strict {
                return Err(Failure {
                    cause: "this gateway keeps no recordings".to_owned(),
                    detail: "recording_unconfigured: this gateway keeps no recordings".to_owned(),
                });
            }
            tracing::info!(session = %self.id, "not recorded: this gateway keeps no recordings");
            return Ok(None);
        };
        Recording::create(live::Start {
            dir: &recordings.dir,
            key: recordings.key.clone(),
            session_id: self.id.to_string(),
            mode: upstream.recording,
            record_input: upstream.record_input,
            title: format!(
                "{} on {} as {} (grant {})",
                person.identity, login.target, upstream.account, upstream.grant_id
            ),
            timestamp: self.shared.clock.now().unix_seconds(),
        })
        .map(Some)
    }

    fn refused(&self, refusal: Refusal) {
        let identity = self
            .person
            .as_ref()
            .map_or_else(String::new, |p| p.identity.clone());
        let target = self
            .login
            .as_ref()
            .map_or_else(String::new, |l| l.target.clone());
        tracing::warn!(session = %self.id, %identity, %target, "refused {refusal}");
        self.shared.authority.event(&GatewayEvent::Refused {
            session: self.id,
            identity,
            target,
            peer: self.peer,
            refusal,
        });
    }

    fn live(&self) -> Option<&Arc<Live>> {
        match &self.phase {
            Phase::Live(live) => Some(live),
            _ => None,
        }
    }

    /// Sends `request` upstream on `channel` and waits for the target's answer (or the
    /// session's end, or [`REPLY_TIMEOUT`]); then gives the same answer to the person.
    async fn forward_request(
        &self,
        channel: ChannelId,
        session: &mut Session,
        request: UpRequest,
    ) -> Result<bool, russh::Error> {
        let ok = self.ask_upstream(channel, request).await;
        if ok {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(ok)
    }

    /// Sends `request` on the target's side of session channel `channel` and waits for its
    /// answer (false without a live session, on an error, or past the time limit).
    async fn ask_upstream(&self, channel: ChannelId, request: UpRequest) -> bool {
        match (self.channels.get(&channel), self.live()) {
            (
                Some(Chan {
                    up: Some(up),
                    replies,
                    ..
                }),
                Some(live),
            ) => {
                let (tx, rx) = oneshot::channel();
                // Queued before sending, so the pump cannot see the answer first. On a
                // timeout the sender stays queued and takes the late answer.
                lock(replies).push_back(tx);
                if request.send(up).await.is_err() {
                    false
                } else {
                    let mut ending = live.ending();
                    matches!(
                        unless_ending(&mut ending, tokio::time::timeout(REPLY_TIMEOUT, rx)).await,
                        Some(Ok(Ok(true)))
                    )
                }
            }
            _ => false,
        }
    }

    /// Starts a shell, command or subsystem: upstream on a live session; on a refused one,
    /// the refusal message, exit status 1, and the channel closed.
    async fn start(
        &mut self,
        channel: ChannelId,
        command: Command,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        if let Phase::Refused(message) = &self.phase {
            let pty = self.channels.get(&channel).is_some_and(|c| c.pty);
            let text = if pty {
                message.replace('\n', "\r\n")
            } else {
                message.clone()
            };
            session.channel_success(channel)?;
            session.extended_data(channel, 1, text.into_bytes())?;
            session.exit_status_request(channel, 1)?;
            session.eof(channel)?;
            session.close(channel)?;
            return Ok(());
        }
        if let (Some(live), Some(chan)) = (self.live(), self.channels.get(&channel))
            && let Some(recording) = &live.recording
        {
            let (marker, kind) = classify(&command);
            // Before the target starts it, so its first output is classified.
            let _ = chan.traffic.kind.set(kind);
            let mut ending = live.ending();
            let _ = unless_ending(&mut ending, async {
                recording.begin().await;
                recording.marker(marker).await;
            })
            .await;
        }
        let ok = self
            .forward_request(channel, session, UpRequest::Start(command.clone()))
            .await?;
        if !ok && let Some(recording) = self.live().and_then(|l| l.recording.as_ref()) {
            recording
                .marker(format!("refused by the target: {}", classify(&command).0))
                .await;
        }
        if let (true, Some(person)) = (ok, &self.person) {
            tracing::info!(session = %self.id, channel = %channel, ?command, "started");
            self.shared.authority.event(&GatewayEvent::Command {
                session: self.id,
                identity: person.identity.clone(),
                command,
            });
        }
        Ok(())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Phase::Live(live) = &self.phase {
            live.connection_gone();
        }
    }
}

impl Conn {
    async fn second_factor_required(
        &self,
        person: &Person,
        login: &Login,
    ) -> Result<bool, GwError> {
        tokio::time::timeout(
            self.shared.authority_timeout,
            self.shared.authority.second_factor_required(person, login),
        )
        .await
        .unwrap_or_else(|_| Err(GwError::Authority("no answer in time".to_owned())))
    }

    /// The keyboard-interactive step after an accepted key: one prompt for a code, at most
    /// [`MAX_CODES`] tries per connection.
    async fn second_factor(&mut self, user: &str, response: Option<server::Response<'_>>) -> Auth {
        let Some((login, person, fingerprint, tries)) = self.second_factor.take() else {
            // Keyboard-interactive only ever follows an accepted key.
            return Auth::reject();
        };
        if self.codes_tried >= MAX_CODES
            || self.login_for(user).ok().map(|(l, _)| l).as_ref() != Some(&login)
        {
            return Auth::reject();
        }
        let Some(mut response) = response else {
            let prompt = Auth::Partial {
                name: Cow::Borrowed("Warrant"),
                instructions: Cow::Owned(format!(
                    "{} on {} requires a second factor.",
                    login.role.as_deref().unwrap_or("this role"),
                    login.target
                )),
                prompts: Cow::Owned(vec![(
                    Cow::Borrowed("Authenticator code (or recovery code): "),
                    false,
                )]),
            };
            self.second_factor = Some((login, person, fingerprint, tries));
            return prompt;
        };
        let code = response
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let ok = tokio::time::timeout(
            self.shared.authority_timeout,
            self.shared.authority.verify_second_factor(&person, &code),
        )
        .await
        .unwrap_or_else(|_| Err(GwError::Authority("no answer in time".to_owned())));
        match ok {
            Ok(true) => {
                tracing::info!(session = %self.id, identity = %person.identity, target = %login.target, key = %fingerprint, "authenticated with a second factor");
                self.second_factor_proved = true;
                self.login = Some(login);
                self.person = Some(person);
                self.key_fingerprint = fingerprint;
                Auth::Accept
            }
            Ok(false) | Err(_) => {
                if let Err(e) = ok {
                    tracing::warn!(session = %self.id, code = e.code(), "checking a second factor failed: {e}");
                }
                // Counted per connection: offering the key again does not reset it.
                self.codes_tried = self.codes_tried.saturating_add(1);
                let tries = tries + 1;
                if self.codes_tried < MAX_CODES {
                    self.second_factor = Some((login, person, fingerprint, tries));
                    Auth::Reject {
                        proceed_with_methods: Some(MethodSet::from(
                            &[MethodKind::KeyboardInteractive][..],
                        )),
                        partial_success: true,
                    }
                } else {
                    Auth::reject()
                }
            }
        }
    }
}

impl Conn {
    /// What the person sent on a session channel (stdin, or extended data `ext`): counted,
    /// recorded as the role says, then passed to the target, waiting for its window (the
    /// backpressure on the person's side, see the module docs) unless the session is ending.
    async fn pass_up(&self, channel: ChannelId, ext: Option<u32>, data: &[u8]) {
        let (
            Some(Chan {
                up: Some(up),
                traffic,
                ..
            }),
            Some(live),
        ) = (self.channels.get(&channel), self.live())
        else {
            return;
        };
        live.bytes_up
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut ending = live.ending();
        if !record_input(live, traffic, data, &mut ending).await {
            return;
        }
        let _ = match ext {
            None => unless_ending(&mut ending, up.data_bytes(data.to_vec())).await,
            Some(code) => {
                unless_ending(&mut ending, up.extended_data_bytes(code, data.to_vec())).await
            }
        };
    }
}

/// Codes a connection may try at the second-factor prompt.
const MAX_CODES: u8 = 3;

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.second_factor(user, response).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        _offer: server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // A malformed login fails before the client is asked to sign anything; whether the
        // key is registered is asked once, after the signature was checked.
        Ok(match self.login_for(user) {
            Ok(_) => Auth::Accept,
            Err(e) => {
                tracing::info!(session = %self.id, peer = ?self.peer, code = e.code(), "login refused: {e}");
                Auth::reject()
            }
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .authenticate(user, OfferedKey::Key(key.public_key.clone()))
            .await)
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .authenticate(user, OfferedKey::Certificate(Box::new(certificate.clone())))
            .await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.person.is_none() {
            return Ok(());
        }
        if matches!(self.phase, Phase::Unauthorized) {
            self.phase = self.authorize(session.handle()).await;
            self.state.settled.store(true, Ordering::SeqCst);
        }
        let id = channel.id();
        let (up, pump) = match &self.phase {
            Phase::Unauthorized | Phase::Refused(_) => (None, None),
            Phase::Live(live) => {
                if live.is_ending() {
                    // Dropping the reply refuses the channel.
                    return Ok(());
                }
                match live.up.channel_open_session().await {
                    Ok(up_channel) => {
                        let (up_read, up_write) = up_channel.split();
                        let (down_read, down_write) = channel.split();
                        // Everything the person sends arrives through the handler's
                        // callbacks; russh also queues a copy for this reader, and an
                        // unread queue would block its loop once full.
                        drop(down_read);
                        let replies = Arc::new(Mutex::new(VecDeque::new()));
                        let traffic = Arc::new(Traffic::default());
                        let pump = Pump {
                            up: up_read,
                            down: down_write,
                            down_handle: session.handle(),
                            id,
                            replies: replies.clone(),
                            live: live.clone(),
                            traffic: traffic.clone(),
                        };
                        live.add_channel(id, false);
                        (Some((up_write, replies, traffic)), Some(pump))
                    }
                    Err(e) => {
                        tracing::warn!(session = %self.id, "target refused a session channel: {e}");
                        return Ok(());
                    }
                }
            }
        };
        reply.accept().await;
        let (up, replies, traffic) = match up {
            Some((up, replies, traffic)) => (Some(up), replies, traffic),
            None => (None, Arc::default(), Arc::default()),
        };
        self.channels.insert(
            id,
            Chan {
                up,
                replies,
                pty: false,
                pump: pump.map(|p| tokio::spawn(p.run())),
                traffic,
            },
        );
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(person) = &self.person else {
            return Ok(());
        };
        if self.jump_host {
            // `ssh -J`: the person's SSH connection to the target comes through this channel;
            // the gateway ends it itself, as a session of its own.
            let jump = Jump {
                identity: person.identity.clone(),
                target: host_to_connect.to_owned(),
            };
            let open = self.state.jumps_open.clone();
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_JUMPS {
                open.fetch_sub(1, Ordering::SeqCst);
                tracing::info!(session = %self.id, identity = %jump.identity, "too many jumps at once; refused");
                return Ok(());
            }
            tracing::info!(session = %self.id, identity = %jump.identity, target = %jump.target, "jump to a target");
            self.state.jumping.store(true, Ordering::SeqCst);
            reply.accept().await;
            let peer = self
                .peer
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            let inner = crate::gateway::connection(
                self.shared.clone(),
                channel.into_stream(),
                peer,
                Some(jump),
            );
            tokio::spawn(async move {
                inner.await;
                open.fetch_sub(1, Ordering::SeqCst);
            });
            return Ok(());
        }
        // `ssh -N -L` opens no session channel: the forwarding is what starts the session.
        if matches!(self.phase, Phase::Unauthorized) {
            self.phase = self.authorize(session.handle()).await;
            self.state.settled.store(true, Ordering::SeqCst);
        }
        let refusal = Refusal::LocalForward {
            host: host_to_connect.to_owned(),
            port: port_to_connect,
        };
        let Phase::Live(live) = &self.phase else {
            drop(reply);
            return Ok(());
        };
        if !live.port_forwarding || live.is_ending() {
            drop(reply);
            self.refused(refusal);
            return Ok(());
        }
        let opened = live
            .up
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await;
        let up_channel = match opened {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(session = %self.id, host = host_to_connect, port = port_to_connect, "the target refused a forwarding: {e}");
                return Ok(());
            }
        };
        reply.accept().await;
        tokio::spawn(forward(
            live.clone(),
            channel,
            up_channel,
            format!("{host_to_connect}:{port_to_connect}"),
        ));
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        drop(reply);
        self.refused(Refusal::SocketForward {
            path: socket_path.to_owned(),
        });
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        drop(reply);
        self.refused(Refusal::Channel {
            kind: "x11".to_owned(),
        });
        Ok(())
    }

    async fn channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        drop(reply);
        self.refused(Refusal::Channel {
            kind: "forwarded-tcpip".to_owned(),
        });
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused(Refusal::RemoteForward {
            address: address.to_owned(),
            port: *port,
        });
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused(Refusal::SocketForward {
            path: socket_path.to_owned(),
        });
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // russh answers the request with what this returns.
        if !self.live().is_some_and(|l| l.agent_forwarding) {
            self.refused(Refusal::AgentForward);
            return Ok(false);
        }
        let ok = self.ask_upstream(channel, UpRequest::Agent).await;
        if ok && let Some(live) = self.live() {
            live.agent_requested.store(true, Ordering::SeqCst);
        }
        tracing::info!(session = %self.id, ok, "agent forwarding passed on");
        Ok(ok)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refused(Refusal::X11Forward);
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if matches!(self.phase, Phase::Refused(_)) {
            // Answered yes so the refusal message is shown like any output.
            if let Some(chan) = self.channels.get_mut(&channel) {
                chan.pty = true;
            }
            session.channel_success(channel)?;
            return Ok(());
        }
        let recorded_term = term.to_owned();
        let request = UpRequest::Pty {
            term: term.to_owned(),
            size: [col_width, row_height, pix_width, pix_height],
            modes: modes.to_vec(),
        };
        let ok = self.forward_request(channel, session, request).await?;
        if ok {
            if let Some(chan) = self.channels.get_mut(&channel) {
                chan.pty = true;
            }
            if let Some(live) = self.live() {
                live.set_pty(channel);
                if let Some(recording) = &live.recording {
                    recording.note_pty(&recorded_term, col_width, row_height);
                }
            }
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // OpenSSH asks for no answer; the target's is not waited for.
        let sent = match self.channels.get(&channel) {
            Some(Chan { up: Some(up), .. }) => up
                .window_change(col_width, row_height, pix_width, pix_height)
                .await
                .is_ok(),
            _ => false,
        };
        if sent {
            if let Some(recording) = self.live().and_then(|l| l.recording.as_ref()) {
                recording.resize(col_width, row_height).await;
            }
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Only the locale, which OpenSSH sends by default (SendEnv LANG LC_*) and Debian's
        // sshd accepts (AcceptEnv LANG LC_*); anything else could change how the target's
        // shell or loader behaves. The target's answer is not waited for.
        let sent = match self.channels.get(&channel) {
            Some(Chan { up: Some(up), .. }) if forwardable_env(variable_name, variable_value) => up
                .set_env(false, variable_name, variable_value)
                .await
                .is_ok(),
            _ => false,
        };
        if sent {
            session.channel_success(channel)?;
        } else {
            tracing::debug!(session = %self.id, variable_name, "environment variable not forwarded");
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Command::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        self.start(channel, Command::Exec(command), session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Command::Subsystem(name.to_owned()), session)
            .await
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan { up: Some(up), .. }) = self.channels.get(&channel) {
            let _ = up.signal(signal).await;
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pass_up(channel, None, data).await;
        Ok(())
    }

    async fn extended_data(
        &mut self,
        channel: ChannelId,
        code: u32,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.pass_up(channel, Some(code), data).await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(Chan { up: Some(up), .. }) = self.channels.get(&channel) {
            let _ = up.eof().await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(chan) = self.channels.remove(&channel) {
            if let Some(up) = &chan.up {
                let _ = up.close().await;
            }
            // The person is gone from this channel: nothing more to copy to it.
            if let Some(pump) = &chan.pump {
                pump.abort();
            }
        }
        if let Some(live) = self.live() {
            live.remove_channel(channel);
        }
        Ok(())
    }
}

/// A channel request forwarded to the target, whose answer the person waits for.
enum UpRequest {
    /// `pty-req`: terminal type, size (columns, rows, pixel width, pixel height), modes.
    Pty {
        term: String,
        size: [u32; 4],
        modes: Vec<(Pty, u32)>,
    },
    /// `shell`, `exec` or `subsystem`.
    Start(Command),
    /// `auth-agent-req@openssh.com`: the target may open agent channels.
    Agent,
}

impl UpRequest {
    async fn send(self, up: &ChannelWriteHalf<client::Msg>) -> Result<(), russh::Error> {
        match self {
            Self::Pty { term, size, modes } => {
                let [cols, rows, width, height] = size;
                up.request_pty(true, &term, cols, rows, width, height, &modes)
                    .await
            }
            Self::Start(Command::Shell) => up.request_shell(true).await,
            Self::Start(Command::Exec(command)) => up.exec(true, command.into_bytes()).await,
            Self::Start(Command::Subsystem(name)) => up.request_subsystem(true, name).await,
            Self::Agent => up.agent_forward(true).await,
        }
    }
}

/// Copies one upstream channel's output, end of file, exit status and request answers to
/// the person's channel.
struct Pump {
    up: ChannelReadHalf,
    down: ChannelWriteHalf<Msg>,
    down_handle: server::Handle,
    id: ChannelId,
    replies: Arc<Mutex<VecDeque<oneshot::Sender<bool>>>>,
    live: Arc<Live>,
    traffic: Arc<Traffic>,
}

/// Chunks of output (each at most one SSH packet, 32 KiB) a channel holds at most while its
/// strict recording writes them.
const HELD: usize = 8;

/// Output from the target held until its strict recording has it.
struct Held {
    written: live::Written,
    data: bytes::Bytes,
    /// The extended data type (stderr), for extended data.
    ext: Option<u32>,
}

/// What to do with a chunk of output.
enum Output {
    /// Pass it on now.
    Pass,
    /// Pass it on once written.
    Hold(live::Written),
    /// Pass nothing more on (the session is ending, or its strict recording failed).
    Stop,
}

impl Pump {
    async fn run(mut self) {
        let mut ending = self.live.ending();
        // Strict recording: output being written, passed on in order as soon as each chunk is,
        // while the next messages are read (writing and passing on overlap instead of
        // alternating, and the writer gets several chunks per batch).
        let mut held: VecDeque<Held> = VecDeque::with_capacity(HELD);
        loop {
            let full = held.len() >= HELD;
            let msg = if let Some(h) = held.front_mut() {
                if !full {
                    tokio::select! {
                        () = h.written.wait() => {
                            match self.deliver_front(&mut held, &mut ending).await {
                                Some(true) => continue,
                                Some(false) => break,
                                None => return,
                            }
                        }
                        msg = unless_ending(&mut ending, self.up.wait()) => msg,
                    }
                } else {
                    // As much held as allowed: read nothing more until the oldest is written.
                    if unless_ending(&mut ending, h.written.wait()).await.is_none() {
                        return;
                    }
                    match self.deliver_front(&mut held, &mut ending).await {
                        Some(true) => continue,
                        Some(false) => break,
                        None => return,
                    }
                }
            } else {
                unless_ending(&mut ending, self.up.wait()).await
            };
            let Some(msg) = msg else {
                // The supervisor tells the person and closes the channel.
                return;
            };
            // Anything but more output goes after all the held output.
            if !matches!(
                msg,
                Some(ChannelMsg::Data { .. } | ChannelMsg::ExtendedData { .. })
            ) {
                match self.deliver_all(&mut held, &mut ending).await {
                    Some(true) => {}
                    Some(false) => break,
                    None => return,
                }
            }
            let delivered = match msg {
                None | Some(ChannelMsg::Close) => break,
                Some(ChannelMsg::Data { data }) => {
                    self.output(data, None, &mut held, &mut ending).await
                }
                Some(ChannelMsg::ExtendedData { data, ext }) => {
                    self.output(data, Some(ext), &mut held, &mut ending).await
                }
                Some(ChannelMsg::Eof) => unless_ending(&mut ending, self.down.eof())
                    .await
                    .map(|r| r.is_ok()),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    unless_ending(&mut ending, self.down.exit_status(exit_status))
                        .await
                        .map(|r| r.is_ok())
                }
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                }) => unless_ending(
                    &mut ending,
                    self.down_handle.exit_signal_request(
                        self.id,
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    ),
                )
                .await
                .map(|r| r.is_ok()),
                Some(ChannelMsg::XonXoff { client_can_do }) => unless_ending(
                    &mut ending,
                    self.down_handle.xon_xoff_request(self.id, client_can_do),
                )
                .await
                .map(|r| r.is_ok()),
                Some(ChannelMsg::Success) => {
                    self.answer(true);
                    Some(true)
                }
                Some(ChannelMsg::Failure) => {
                    self.answer(false);
                    Some(true)
                }
                Some(_) => Some(true),
            };
            match delivered {
                // The session is ending: the supervisor takes over.
                None => return,
                // The person's side of the channel is gone.
                Some(false) => break,
                Some(true) => {}
            }
        }
        self.transfer_ended().await;
        if self.live.up.is_closed() {
            self.live.end(EndReason::UpstreamClosed);
        }
        if !self.live.is_ending() {
            let _ = self.down.close().await;
        }
        self.live.remove_channel(self.id);
    }

    /// Passes the oldest held output on, once its recording has it (`None`: the session is
    /// ending; `Some(false)`: the person's side is gone).
    async fn deliver_front(
        &self,
        held: &mut VecDeque<Held>,
        ending: &mut watch::Receiver<Option<EndReason>>,
    ) -> Option<bool> {
        let Some(h) = held.pop_front() else {
            return Some(true);
        };
        if !recording_holds(&self.live) {
            return None;
        }
        self.send_down(h.data, h.ext, ending).await
    }

    /// Passes all held output on, in order, each once its recording has it.
    async fn deliver_all(
        &self,
        held: &mut VecDeque<Held>,
        ending: &mut watch::Receiver<Option<EndReason>>,
    ) -> Option<bool> {
        while let Some(h) = held.front_mut() {
            unless_ending(ending, h.written.wait()).await?;
            match self.deliver_front(held, ending).await {
                Some(true) => {}
                other => return other,
            }
        }
        Some(true)
    }

    /// Output (stdout, or extended data `ext`) from the target: recorded, then passed on now
    /// (after anything held), or held until written (strict mode). `None`: pass nothing more
    /// on.
    async fn output(
        &self,
        data: bytes::Bytes,
        ext: Option<u32>,
        held: &mut VecDeque<Held>,
        ending: &mut watch::Receiver<Option<EndReason>>,
    ) -> Option<bool> {
        match self.record_output(&data, ending).await {
            Output::Stop => None,
            Output::Hold(written) => {
                held.push_back(Held { written, data, ext });
                Some(true)
            }
            Output::Pass => {
                if !self.deliver_all(held, ending).await? {
                    return Some(false);
                }
                self.send_down(data, ext, ending).await
            }
        }
    }

    /// Passes output to the person's channel (`Some(false)`: their side is gone).
    async fn send_down(
        &self,
        data: bytes::Bytes,
        ext: Option<u32>,
        ending: &mut watch::Receiver<Option<EndReason>>,
    ) -> Option<bool> {
        match ext {
            None => unless_ending(ending, self.down.data_bytes(data))
                .await
                .map(|r| r.is_ok()),
            Some(ext) => unless_ending(ending, self.down.extended_data_bytes(ext, data))
                .await
                .map(|r| r.is_ok()),
        }
    }

    /// Counts output from the target and records a terminal's: what to do with it (hold it
    /// until written in strict mode; nothing more when the session is ending or its strict
    /// recording has failed).
    async fn record_output(
        &self,
        data: &bytes::Bytes,
        ending: &mut watch::Receiver<Option<EndReason>>,
    ) -> Output {
        self.live
            .bytes_down
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.traffic
            .down
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let Some(recording) = &self.live.recording else {
            return Output::Pass;
        };
        if self.traffic.is_terminal() {
            match unless_ending(ending, recording.output_queued(data)).await {
                None => return Output::Stop,
                Some(Some(written)) => {
                    return if recording_holds(&self.live) {
                        Output::Hold(written)
                    } else {
                        Output::Stop
                    };
                }
                Some(None) => {}
            }
        }
        if recording_holds(&self.live) {
            Output::Pass
        } else {
            Output::Stop
        }
    }

    /// A file transfer's channel is done: its byte counts as a marker.
    async fn transfer_ended(&self) {
        if let (Some(recording), Some(Kind::Transfer(label))) =
            (&self.live.recording, self.traffic.kind.get())
        {
            recording
                .marker(format!(
                    "{label} ended: {} bytes sent to the target, {} bytes received from it",
                    self.traffic.up.load(Ordering::Relaxed),
                    self.traffic.down.load(Ordering::Relaxed)
                ))
                .await;
        }
    }

    fn answer(&self, ok: bool) {
        if let Some(waiting) = lock(&self.replies).pop_front() {
            let _ = waiting.send(ok);
        }
    }
}

/// `LANG` and `LC_*` with a short printable value.
fn forwardable_env(name: &str, value: &str) -> bool {
    (name == "LANG" || name.starts_with("LC_"))
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value.len() <= MAX_ENV_VALUE
        && !value.chars().any(char::is_control)
}

/// What the person is told when the target cannot be used.
fn upstream_message(target: &str, e: &GwError) -> String {
    match e {
        GwError::UpstreamHostKey {
            expected,
            presented,
            ..
        } => format!(
            "warrant: {target} presented a host key other than the one Warrant has pinned; \
             not connecting (presented {presented}, pinned {expected}). Tell your Warrant \
             administrator.\n"
        ),
        GwError::UpstreamAuth { account, .. } => format!(
            "warrant: {target} refused Warrant's certificate for {account}. Tell your Warrant \
             administrator.\n"
        ),
        other => format!("warrant: cannot open a session on {target}: {other}\n"),
    }
}

/// Relays one allowed `direct-tcpip` channel (`ssh -L`, `-W`) between the person and the
/// target until either side closes it or the session ends; its opening and its byte counts are
/// markers in the recording.
async fn forward(live: Arc<Live>, down: Channel<Msg>, up: Channel<client::Msg>, to: String) {
    if let Some(r) = &live.recording {
        r.marker(format!("forward: {to} opened")).await;
    }
    let mut ending = live.ending();
    let mut down = down.into_stream();
    let mut up = up.into_stream();
    let copied = tokio::select! {
        r = tokio::io::copy_bidirectional(&mut down, &mut up) => r.ok(),
        _ = ending.wait_for(Option::is_some) => None,
    };
    let (sent, received) = copied.unwrap_or_default();
    live.bytes_up.fetch_add(sent, Ordering::Relaxed);
    live.bytes_down.fetch_add(received, Ordering::Relaxed);
    if let Some(r) = &live.recording {
        r.marker(format!(
            "forward: {to} closed ({sent} bytes sent, {received} bytes received)"
        ))
        .await;
    }
}

/// Passes the agent channels the target opens (someone on it used the forwarded agent) to
/// the person's agent, each over a channel the gateway opens to their client; each use is a
/// marker in the recording.
async fn agent_channels(
    live: Arc<Live>,
    mut from_target: tokio::sync::mpsc::UnboundedReceiver<Channel<client::Msg>>,
) {
    let mut ending = live.ending();
    loop {
        let up = tokio::select! {
            c = from_target.recv() => match c {
                Some(c) => c,
                None => return,
            },
            _ = ending.wait_for(Option::is_some) => return,
        };
        if !live.agent_requested.load(Ordering::SeqCst) {
            // The person never asked for their agent here: the target's channel is closed.
            tracing::info!(session = %live.id(), "an agent channel the person did not ask for; closed");
            drop(up);
            continue;
        }
        let down = match live.down.channel_open_agent().await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(session = %live.id(), "the person's client refused an agent channel: {e}");
                continue;
            }
        };
        if let Some(r) = &live.recording {
            r.marker("agent: the target used the forwarded agent".to_owned())
                .await;
        }
        let live = live.clone();
        tokio::spawn(async move {
            let mut ending = live.ending();
            let mut down = down.into_stream();
            let mut up = up.into_stream();
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                _ = ending.wait_for(Option::is_some) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_locale_is_forwarded() {
        assert!(forwardable_env("LANG", "en_GB.UTF-8"));
        assert!(forwardable_env("LC_ALL", "C"));
        assert!(!forwardable_env("LD_PRELOAD", "/tmp/x.so"));
        assert!(!forwardable_env("PATH", "/tmp"));
        assert!(!forwardable_env("LC_ALL", "C\nevil"));
        assert!(!forwardable_env("LC_X", &"a".repeat(300)));
        assert!(!forwardable_env("LC_$(id)", "C"));
    }

    #[test]
    fn commands_are_classified_for_the_recording() {
        let check = |command: Command, marker: &str, kind: Kind| {
            assert_eq!(classify(&command), (marker.to_owned(), kind), "{command:?}");
        };
        let exec = |line: &str| Command::Exec(line.to_owned());
        check(Command::Shell, "shell", Kind::Terminal);
        check(exec("ls -l"), "exec: ls -l", Kind::Terminal);
        check(
            exec("scp -t /tmp/x"),
            "scp upload: scp -t /tmp/x",
            Kind::Transfer("scp upload".to_owned()),
        );
        check(
            exec("scp -v -p -f -- /etc/hosts"),
            "scp download: scp -v -p -f -- /etc/hosts",
            Kind::Transfer("scp download".to_owned()),
        );
        check(
            exec("/usr/bin/scp -dt /tmp"),
            "scp upload: /usr/bin/scp -dt /tmp",
            Kind::Transfer("scp upload".to_owned()),
        );
        // A file named like a flag, or scp run as a client on the target, is a command.
        check(exec("scp -- -t"), "exec: scp -- -t", Kind::Terminal);
        check(
            exec("scp a.txt host:/tmp"),
            "exec: scp a.txt host:/tmp",
            Kind::Terminal,
        );
        check(exec("scpx -t /tmp"), "exec: scpx -t /tmp", Kind::Terminal);
        check(
            Command::Subsystem("sftp".to_owned()),
            "subsystem: sftp",
            Kind::Transfer("subsystem sftp".to_owned()),
        );
    }
}

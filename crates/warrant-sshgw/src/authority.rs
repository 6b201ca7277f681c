//! What the gateway asks of the rest of Warrant: the [`Authority`] trait, and the types that
//! cross it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use ssh_key::{Certificate, HashAlg, PrivateKey, PublicKey};
use warrant_core::Timestamp;
use warrant_recording::live::{RecordingMode, RecordingOutcome};

use crate::error::GwError;
use crate::login::Login;
use crate::session::SessionId;

/// A boxed, sendable future: what [`Authority`]'s methods return (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The gateway's questions to the engine: who is this, and may they go there now?
///
/// Implemented by the engine (over its store, policy and SSH CA); tests implement it by hand.
/// Calls happen on the connection's task: answer within seconds (authentication waits for
/// [`Authority::authenticate`], the session for [`Authority::authorize`]).
pub trait Authority: Send + Sync + 'static {
    /// Is `key` one of `login.identity`'s registered keys? The gateway has already checked
    /// that the client holds the private key (its signature over the session). Returns the
    /// person, or `None` to refuse the key (the client may try another). An error refuses
    /// the key too, and is logged.
    fn authenticate<'a>(
        &'a self,
        login: &'a Login,
        key: &'a OfferedKey,
    ) -> BoxFuture<'a, Result<Option<Person>, GwError>>;

    /// May `person` open a session to `login.target` (as `login.role`, or the role their
    /// grant is for) now? If so: where, as whom, and with which short-lived credential.
    /// Asked once per connection, when it opens its first session channel. A [`Denied`]
    /// message is written to the person's terminal (stderr) and the command fails.
    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a Login,
    ) -> BoxFuture<'a, Result<Upstream, Denied>>;

    /// Does `person`'s login to `login.target` need a second factor typed at the gateway (the
    /// rule of their grant requires MFA)? Asked once, after the key was accepted; `true`
    /// makes the client answer a keyboard-interactive prompt, checked by
    /// [`Authority::verify_second_factor`]. An error refuses the login. `false` by default.
    fn second_factor_required<'a>(
        &'a self,
        person: &'a Person,
        login: &'a Login,
    ) -> BoxFuture<'a, Result<bool, GwError>> {
        let _ = (person, login);
        Box::pin(async { Ok(false) })
    }

    /// Is `code` (typed by the person at the prompt) a valid second factor of theirs now?
    /// Refuses by default.
    fn verify_second_factor<'a>(
        &'a self,
        person: &'a Person,
        code: &'a str,
    ) -> BoxFuture<'a, Result<bool, GwError>> {
        let _ = (person, code);
        Box::pin(async { Ok(false) })
    }

    /// Something happened that the engine may want to audit: a session started or ended, a
    /// command ran, a request was refused. Called synchronously on the connection's task:
    /// hand the event off (a channel, a queue), do not block. Does nothing by default.
    fn event(&self, event: &GatewayEvent) {
        let _ = event;
    }
}

/// The key a person authenticated with: a plain public key, or an OpenSSH certificate (for
/// people whose keys are themselves certified). In both cases the client proved it holds the
/// private key; for a certificate, whether its signer is trusted is the authority's call.
#[derive(Debug, Clone)]
pub enum OfferedKey {
    /// A plain public key.
    Key(PublicKey),
    /// An OpenSSH user certificate.
    Certificate(Box<Certificate>),
}

impl OfferedKey {
    /// The public key itself (for a certificate: the key it certifies).
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Key(key) => key.clone(),
            Self::Certificate(cert) => PublicKey::from(cert.public_key().clone()),
        }
    }

    /// `SHA256:…` of the public key, as `ssh-keygen -l` prints it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.public_key().fingerprint(HashAlg::Sha256).to_string()
    }
}

/// An authenticated person, as [`Authority::authenticate`] knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The Warrant identity (normally the identity part of the login).
    pub identity: String,
    /// How listings and logs name the person, e.g. `Alice Smith <alice@example.com>`.
    pub label: String,
}

/// The answer to [`Authority::authorize`] when the person may go: where to connect, as whom,
/// with what. The credential is the engine's to make short-lived; the gateway never stores it.
pub struct Upstream {
    /// Host name or address of the target's sshd.
    pub host: String,
    /// Its port, usually 22.
    pub port: u16,
    /// The target's pinned host key (ed25519 or ECDSA). Any other key is refused, and the
    /// person is told so.
    pub host_key: PublicKey,
    /// The account to log in as: the role's `login`.
    pub account: String,
    /// The private key the certificate is for (made per grant or per session by the engine).
    pub key: PrivateKey,
    /// An OpenSSH user certificate for `key`, naming `account` as a principal, valid at least
    /// until the session starts (sshd checks it only at login).
    pub certificate: Certificate,
    /// The grant this session runs under (for listings and audit).
    pub grant_id: String,
    /// When the grant ends: the gateway ends the session then, with a message to the person.
    pub grant_end: Timestamp,
    /// Whether and how the session is recorded (the role's setting).
    pub recording: RecordingMode,
    /// Whether what the person types is recorded too (the role's setting; passwords typed at
    /// a prompt included). Only with a recording.
    pub record_input: bool,
    /// Whether `direct-tcpip` channels (`ssh -L`, `-W`) are passed on to the target, which
    /// connects them to what it can reach (the role's `forwarding: [port]`). Each opening is
    /// a marker in the recording. Off: refused and reported, like every other forwarding.
    pub port_forwarding: bool,
    /// Whether `ssh -A` is passed on: the target's agent requests reach the person's agent
    /// through the gateway (the role's `forwarding: [agent]`). Each use is a marker in the
    /// recording. Off: refused and reported.
    pub agent_forwarding: bool,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("host_key", &self.host_key.fingerprint(HashAlg::Sha256))
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .field("certificate", &self.certificate.key_id())
            .field("grant_id", &self.grant_id)
            .field("grant_end", &self.grant_end)
            .field("recording", &self.recording)
            .field("record_input", &self.record_input)
            .finish()
    }
}

/// A refusal by [`Authority::authorize`]: the message is shown to the person as it is, so make
/// it say what to do, e.g. `no active grant of web-1: warrant request web-1 root --for 1h
/// --reason …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Shown on the person's terminal (stderr), after `warrant: `.
    pub message: String,
}

impl Denied {
    /// A refusal with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Something the gateway refused to do for an authenticated person (and logged).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// `ssh -L` / `-W`: a `direct-tcpip` channel to `host:port` (where the role does not
    /// allow port forwarding).
    LocalForward {
        /// Where the person wanted to connect.
        host: String,
        /// The port there.
        port: u32,
    },
    /// `ssh -R`: a `tcpip-forward` request to listen on `address:port`.
    RemoteForward {
        /// The address to listen on.
        address: String,
        /// The port to listen on.
        port: u32,
    },
    /// Forwarding of a Unix socket, in either direction.
    SocketForward {
        /// The socket path.
        path: String,
    },
    /// `ssh -A`: agent forwarding.
    AgentForward,
    /// `ssh -X` / `-Y`: X11 forwarding.
    X11Forward,
    /// A channel type the gateway does not proxy (e.g. `x11` or `forwarded-tcpip` opened by
    /// the client).
    Channel {
        /// The channel type.
        kind: String,
    },
    /// A session whose role requires a recording ([`RecordingMode::Strict`]), which the
    /// gateway cannot make: it keeps no recordings, or creating the file failed.
    Unrecordable {
        /// Why it cannot be recorded.
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocalForward { host, port } => write!(f, "port forwarding to {host}:{port}"),
            Self::RemoteForward { address, port } => {
                write!(f, "remote port forwarding from {address}:{port}")
            }
            Self::SocketForward { path } => write!(f, "socket forwarding of {path}"),
            Self::AgentForward => f.write_str("agent forwarding"),
            Self::X11Forward => f.write_str("X11 forwarding"),
            Self::Channel { kind } => write!(f, "a {kind} channel"),
            Self::Unrecordable { reason } => {
                write!(
                    f,
                    "a session that must be recorded, which cannot be: {reason}"
                )
            }
        }
    }
}

/// What a session channel runs on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An interactive login shell.
    Shell,
    /// `ssh target 'command'` (also `scp -O`, which runs `scp -t` / `scp -f`).
    Exec(String),
    /// A subsystem, e.g. `sftp` (also plain `scp` since OpenSSH 9).
    Subsystem(String),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The person's client closed the connection.
    ClientClosed,
    /// The target closed the connection.
    UpstreamClosed,
    /// The grant ended (the gateway's timer).
    GrantEnded,
    /// [`GatewayHandle::kill`](crate::GatewayHandle::kill).
    Killed {
        /// The reason given, shown to the person.
        reason: String,
    },
    /// The gateway shut down.
    Shutdown,
    /// The session's recording could not be written, and its role requires one
    /// ([`RecordingMode::Strict`]).
    RecordingFailed {
        /// What failed, as shown to the person (e.g. `No space left on device (os error
        /// 28)`); [`GatewayEvent::RecordingFailed`] has the details.
        error: String,
    },
}

impl EndReason {
    /// A stable code, the same as the PostgreSQL gateway's: `closed`, `target_closed`,
    /// `grant_ended`, `killed`, `server_stopped` or `recording_failed`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::ClientClosed => "closed",
            Self::UpstreamClosed => "target_closed",
            Self::GrantEnded => "grant_ended",
            Self::Killed { .. } => "killed",
            Self::Shutdown => "server_stopped",
            Self::RecordingFailed { .. } => "recording_failed",
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => f.write_str("client closed"),
            Self::UpstreamClosed => f.write_str("target closed"),
            Self::GrantEnded => f.write_str("grant ended"),
            Self::Killed { reason } => write!(f, "killed: {reason}"),
            Self::Shutdown => f.write_str("gateway shut down"),
            Self::RecordingFailed { error } => write!(f, "recording failed: {error}"),
        }
    }
}

/// What [`Authority::event`] is told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// A session was authorized and logged in to its target.
    SessionStarted(crate::SessionInfo),
    /// A session channel started a shell, a command or a subsystem on the target.
    Command {
        /// The session.
        session: SessionId,
        /// The person.
        identity: String,
        /// What runs.
        command: Command,
    },
    /// The gateway refused a request of an authenticated person.
    Refused {
        /// The connection's session id (a session that was never authorized has one too).
        session: SessionId,
        /// The person.
        identity: String,
        /// The target of their login.
        target: String,
        /// Where they connected from.
        peer: Option<SocketAddr>,
        /// What was refused.
        refusal: Refusal,
    },
    /// The authority allowed the session but the target could not be reached or refused the
    /// credential, or presented a host key other than the pinned one.
    UpstreamFailed {
        /// The connection's session id.
        session: SessionId,
        /// The person.
        identity: String,
        /// The target of their login.
        target: String,
        /// The grant.
        grant_id: String,
        /// What went wrong, with a stable code first (see [`GwError::code`]).
        error: String,
    },
    /// A session's recording failed (reported once per session, in both modes): it could not
    /// be created (best-effort: the session goes on unrecorded), a write failed, or the disk did
    /// not keep up. In strict mode the session then ends with [`EndReason::RecordingFailed`].
    RecordingFailed {
        /// The session.
        session: SessionId,
        /// The person.
        identity: String,
        /// Whether the session goes on ([`RecordingMode::BestEffort`]) or is ended.
        mode: RecordingMode,
        /// What failed, with a stable code first (`recording_io: writing …: No space left on
        /// device`).
        error: String,
    },
    /// A session ended; its final counters and its recording.
    SessionEnded {
        /// The session as it ended.
        info: crate::SessionInfo,
        /// Why.
        reason: EndReason,
        /// Its recording's manifest (SHA-256), or why there is none.
        recording: RecordingOutcome,
    },
}

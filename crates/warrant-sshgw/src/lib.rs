//! Warrant's SSH gateway, as a library: people reach targets with their own OpenSSH client,
//! `ssh -p PORT alice+web-1@gateway` (or `alice+web-1+root@gateway` to name the role).
//!
//! The gateway authenticates the person by public key, asks an [`Authority`] (implemented by
//! the engine; this crate does not depend on it) whether they may reach that target now and
//! with which credential, logs in to the target with that short-lived OpenSSH certificate
//! after checking the target's host key against the pinned one, and proxies the session:
//! shells with a pty, commands, `scp` and `sftp`, with exit statuses, window changes and
//! signals. A second factor is asked (keyboard-interactive) where the authority says the
//! grant's rule requires one. Port forwarding (`-L`, `-W`) and agent forwarding (`-A`) go
//! through where the role allows them; remote, socket and X11 forwarding are refused and
//! reported. With an
//! identity alone as the login the gateway is a jump host: the SSH connection `ssh -J` makes
//! through it to a target is ended here and served as a session of its own. Each session
//! ends when its grant does, with a message to the person's terminal; [`GatewayHandle`]
//! lists sessions and ends one. Sessions are recorded as the role says ([`RecordingMode`]):
//! terminal output, and input if asked, as asciicast v2 with commands and file transfers as
//! markers, and a signed manifest at the end; a strict role's session is refused or ended
//! when its recording cannot be written. The recording itself (its handle, writer thread and
//! modes) is `warrant_recording::live`, shared with the other gateways; this crate re-exports
//! its [`RecordingMode`], [`RecordingOutcome`] and [`RecordingSummary`].
//!
//! Layout: `login` ([`parse_login`]), `authority` (the [`Authority`] trait and what crosses
//! it), `config` ([`GatewayConfig`]), `gateway` ([`Gateway`], [`serve`], the accept loop,
//! [`GatewayHandle`]), `server` (the russh server handler of one connection and its channel
//! pumps), `upstream` (the russh client to the target), `session` (live sessions, their
//! listing and how one ends), `error` ([`GwError`]).

mod authority;
mod config;
mod error;
mod gateway;
mod login;
mod server;
mod session;
mod upstream;

pub use authority::{
    Authority, BoxFuture, Command, Denied, EndReason, GatewayEvent, OfferedKey, Person, Refusal,
    Upstream,
};
pub use config::{
    DEFAULT_AUTH_TIMEOUT, DEFAULT_KEEPALIVE, DEFAULT_UPSTREAM_TIMEOUT, GatewayConfig,
    RecordingsConfig,
};
pub use error::GwError;
pub use gateway::{Gateway, GatewayHandle, serve};
pub use login::{Login, LoginError, MAX_LOGIN_LEN, parse_login};
pub use session::{SessionId, SessionInfo};
/// The key types of the API ([`ssh_key::PrivateKey`], [`ssh_key::PublicKey`],
/// [`ssh_key::Certificate`]), at the exact version this crate uses.
pub use ssh_key;
pub use warrant_recording::live::{RecordingMode, RecordingOutcome, RecordingSummary};

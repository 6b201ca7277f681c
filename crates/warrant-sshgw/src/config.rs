//! [`GatewayConfig`]: where the gateway listens, its host key, its time limits, and where it
//! keeps recordings ([`RecordingsConfig`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ssh_key::{HashAlg, PrivateKey};
use warrant_core::{Clock, SystemClock};
use warrant_recording::RecordingKey;

/// How long a client may take from TCP connect to its first session (handshake, login and the
/// first session channel) unless configured otherwise.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting and logging in to a target may take unless configured otherwise.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an [`Authority`](crate::Authority) call may take unless configured otherwise.
pub const DEFAULT_AUTHORITY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle connection (either side) is probed unless configured otherwise.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// The gateway's settings.
#[derive(Clone)]
pub struct GatewayConfig {
    /// The address to listen on, e.g. `0.0.0.0:2222`; port 0 picks a free port (see
    /// [`Gateway::local_addr`](crate::Gateway::local_addr)).
    pub listen: SocketAddr,
    /// The gateway's own host key, ed25519: what people's `known_hosts` pins.
    pub host_key: PrivateKey,
    /// From TCP connect to the first session channel (handshake, public key login, and the
    /// session request): a connection that has not got that far by then is closed. Also ends
    /// logged-in connections that never open a session (`ssh -N`).
    pub auth_timeout: Duration,
    /// Connecting and logging in to a target.
    pub upstream_timeout: Duration,
    /// One [`Authority`](crate::Authority) call: a key not answered for in time is refused,
    /// a session not authorized in time is refused with a message to try again.
    pub authority_timeout: Duration,
    /// Keepalive probe interval on both sides; three unanswered probes close the connection.
    pub keepalive: Duration,
    /// Where "now" comes from (session start times, time left until a grant's end).
    pub clock: Arc<dyn Clock>,
    /// Where session recordings go. `None`: nothing is recorded, whatever a role says; a
    /// session whose role requires a recording ([`RecordingMode::Strict`]) is then refused.
    ///
    /// [`RecordingMode::Strict`]: crate::RecordingMode::Strict
    pub recordings: Option<RecordingsConfig>,
}

/// Where the gateway writes session recordings, and the key that signs their manifests.
#[derive(Clone)]
pub struct RecordingsConfig {
    /// The directory: one `<session id>.cast` (asciicast v2) per recorded session, and its
    /// signed `<session id>.cast.manifest.json` when it ends. Created at bind if missing.
    pub dir: PathBuf,
    /// Signs each recording's manifest (SHA-256 of the recording, the session's facts).
    pub key: Arc<RecordingKey>,
}

impl fmt::Debug for RecordingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingsConfig")
            .field("dir", &self.dir)
            .field("key", &self.key)
            .finish()
    }
}

impl GatewayConfig {
    /// Settings with the default time limits and the system clock.
    #[must_use]
    pub fn new(listen: SocketAddr, host_key: PrivateKey) -> Self {
        Self {
            listen,
            host_key,
            auth_timeout: DEFAULT_AUTH_TIMEOUT,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            authority_timeout: DEFAULT_AUTHORITY_TIMEOUT,
            keepalive: DEFAULT_KEEPALIVE,
            clock: Arc::new(SystemClock),
            recordings: None,
        }
    }
}

impl fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field(
                "host_key",
                &self.host_key.public_key().fingerprint(HashAlg::Sha256),
            )
            .field("auth_timeout", &self.auth_timeout)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("authority_timeout", &self.authority_timeout)
            .field("keepalive", &self.keepalive)
            .field("recordings", &self.recordings)
            .finish_non_exhaustive()
    }
}

//! [`GwError`]: the gateway's errors, each with a stable code.

use std::net::SocketAddr;
use std::time::Duration;

/// An error of the gateway or of its [`Authority`](crate::Authority).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GwError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
    /// The gateway's own host key is unusable.
    #[error("the gateway host key is unusable: {0}")]
    HostKey(String),
    /// The recordings directory cannot be created or is not a directory.
    #[error("the recordings directory {dir} is unusable: {reason}")]
    Recordings {
        /// The configured directory.
        dir: String,
        /// What is wrong.
        reason: String,
    },
    /// Accepting connections failed.
    #[error("accepting connections failed: {0}")]
    Accept(String),
    /// The authority could not answer (its own failure, not a refusal).
    #[error("the authority failed: {0}")]
    Authority(String),
    /// The target could not be reached or the SSH handshake with it failed.
    #[error("cannot connect to {target}: {reason}")]
    UpstreamConnect {
        /// `account@host:port`.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The target presented a host key other than the pinned one.
    #[error("{target} presented host key {presented}, but {expected} is pinned")]
    UpstreamHostKey {
        /// `account@host:port`.
        target: String,
        /// The pinned key's fingerprint and algorithm.
        expected: String,
        /// The presented key's fingerprint and algorithm.
        presented: String,
    },
    /// The target refused the certificate.
    #[error("{target} refused the certificate for {account}")]
    UpstreamAuth {
        /// `account@host:port`.
        target: String,
        /// The account.
        account: String,
    },
    /// Connecting to the target took too long.
    #[error("connecting to {target} timed out after {after:?}")]
    UpstreamTimeout {
        /// `account@host:port`.
        target: String,
        /// The limit.
        after: Duration,
    },
    /// An SSH protocol error on an established upstream connection.
    #[error("SSH error with {target} while {doing}: {reason}")]
    UpstreamSsh {
        /// `account@host:port`.
        target: String,
        /// What the gateway was doing.
        doing: &'static str,
        /// The library's reason.
        reason: String,
    },
}

impl GwError {
    /// A stable, greppable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Bind { .. } => "sshgw_bind",
            Self::HostKey(_) => "sshgw_host_key",
            Self::Recordings { .. } => "sshgw_recordings",
            Self::Accept(_) => "sshgw_accept",
            Self::Authority(_) => "sshgw_authority",
            Self::UpstreamConnect { .. } => "sshgw_upstream_connect",
            Self::UpstreamHostKey { .. } => "sshgw_upstream_host_key",
            Self::UpstreamAuth { .. } => "sshgw_upstream_auth",
            Self::UpstreamTimeout { .. } => "sshgw_upstream_timeout",
            Self::UpstreamSsh { .. } => "sshgw_upstream_ssh",
        }
    }
}

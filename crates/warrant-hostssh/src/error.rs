//! `HostSshError`: what went wrong, with a stable code and never a secret.

use std::time::Duration;

/// The result type of this crate.
pub type Result<T, E = HostSshError> = std::result::Result<T, E>;

/// An error of this crate. `code()` is stable and greppable. Messages name the target
/// (`user@host:port`), accounts, fingerprints and what the host printed on stderr (with the
/// secrets of the call cut out); never a private key, a password or a password hash.
#[derive(Debug, thiserror::Error)]
pub enum HostSshError {
    /// The host could not be reached, or the SSH handshake failed (refused, unreachable, no
    /// common algorithm, closed).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// `user@host:port`.
        target: String,
        /// What the network or the SSH library said.
        reason: String,
    },
    /// The host presented another host key than the pinned one: possibly a man in the middle,
    /// possibly a reinstalled host. Nothing was sent to it.
    #[error(
        "host key of {target} does not match the pinned key: pinned {expected}, host presented \
         {presented}; if the host was reinstalled, pin its new key"
    )]
    HostKeyMismatch {
        /// `user@host:port`.
        target: String,
        /// The pinned key's `SHA256:…` fingerprint (and algorithm).
        expected: String,
        /// The presented key's `SHA256:…` fingerprint (and algorithm).
        presented: String,
    },
    /// The host refused Warrant's managed key for the admin account.
    #[error(
        "{target} refused the managed key {fingerprint} for {user}: is its public key in the \
         account's authorized_keys?"
    )]
    Auth {
        /// `user@host:port`.
        target: String,
        /// The admin account.
        user: String,
        /// The managed key's `SHA256:…` fingerprint.
        fingerprint: String,
    },
    /// The SSH session failed after login (channel refused, connection lost).
    #[error("SSH error on {target} while {doing}: {reason}")]
    Ssh {
        /// `user@host:port`.
        target: String,
        /// What Warrant was doing, e.g. `running a command`.
        doing: &'static str,
        /// What the SSH library said.
        reason: String,
    },
    /// Connecting or a command took longer than the target allows.
    #[error("{target}: timed out after {} s while {doing}", .after.as_secs())]
    Timeout {
        /// `user@host:port`.
        target: String,
        /// What Warrant was doing.
        doing: &'static str,
        /// The limit that was reached.
        after: Duration,
    },
    /// `sudo -n` refused to run the command (the admin account needs passwordless sudo).
    #[error("sudo on {target} refused {user} while {doing}: {reason}")]
    Sudo {
        /// `user@host:port`.
        target: String,
        /// The admin account.
        user: String,
        /// What Warrant was doing.
        doing: &'static str,
        /// What sudo printed.
        reason: String,
    },
    /// A remote command ended with a non-zero status.
    #[error("{target}: {doing} failed (exit status {status}): {stderr}")]
    Command {
        /// `user@host:port`.
        target: String,
        /// What Warrant was doing, e.g. `setting the password of alice`.
        doing: String,
        /// The exit status (or `signal NAME`).
        status: String,
        /// The end of what the command printed on stderr, secrets of the call cut out.
        stderr: String,
    },
    /// The account does not exist on the host (no entry in `/etc/shadow`).
    #[error("{target}: account {account:?} does not exist")]
    AccountNotFound {
        /// `user@host:port`.
        target: String,
        /// The account name.
        account: String,
    },
    /// The account name is not a Linux user name; nothing was sent to the host.
    #[error("invalid account name {name:?}: {reason}")]
    InvalidAccountName {
        /// The name as given (at most 40 characters of it).
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The host printed something Warrant cannot read (missing scan sections, too much output).
    #[error("{target}: unexpected output while {doing}: {reason}")]
    Output {
        /// `user@host:port`.
        target: String,
        /// What Warrant was doing.
        doing: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A managed key could not be made, read or written.
    #[error("managed key: {0}")]
    Key(String),
    /// A pinned host key or target setting cannot be used.
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// The password hash uses a scheme this crate cannot verify.
    #[error("unsupported password hash scheme {scheme}: {reason}")]
    UnsupportedHash {
        /// The scheme's identifier, e.g. `$2b$` or `DES`.
        scheme: String,
        /// Why, and what is supported.
        reason: &'static str,
    },
    /// The password hash is not well formed (or asks for an unreasonable cost).
    #[error("malformed password hash: {0}")]
    MalformedHash(String),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system")]
    Random,
}

impl HostSshError {
    /// The stable code: `host_connect`, `host_key_mismatch`, `host_auth`, `host_ssh`,
    /// `host_timeout`, `host_sudo`, `host_command`, `host_account_not_found`,
    /// `host_invalid_account`, `host_output`, `host_managed_key`, `host_invalid_target`,
    /// `host_unsupported_hash`, `host_malformed_hash`, `host_random`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "host_connect",
            Self::HostKeyMismatch { .. } => "host_key_mismatch",
            Self::Auth { .. } => "host_auth",
            Self::Ssh { .. } => "host_ssh",
            Self::Timeout { .. } => "host_timeout",
            Self::Sudo { .. } => "host_sudo",
            Self::Command { .. } => "host_command",
            Self::AccountNotFound { .. } => "host_account_not_found",
            Self::InvalidAccountName { .. } => "host_invalid_account",
            Self::Output { .. } => "host_output",
            Self::Key(_) => "host_managed_key",
            Self::InvalidTarget(_) => "host_invalid_target",
            Self::UnsupportedHash { .. } => "host_unsupported_hash",
            Self::MalformedHash(_) => "host_malformed_hash",
            Self::Random => "host_random",
        }
    }
}

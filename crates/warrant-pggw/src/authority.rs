//! What the gateway asks of the rest of Warrant: the [`Authority`] trait, and the types that
//! cross it.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use warrant_core::{Secret, Timestamp};
use warrant_pgroles::TlsMode;
use warrant_recording::live::{RecordingMode, RecordingOutcome};

use crate::session::SessionInfo;

/// A boxed, sendable future: what [`Authority`]'s methods return (the trait stays object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The gateway's questions to the engine: who is this, and may they reach that database now?
pub trait Authority: Send + Sync + 'static {
    /// Is `password` a live database token of `user`? The person, or `None` to refuse.
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> BoxFuture<'a, Result<Option<Person>, String>>;

    /// May `person` reach `login.target` (as `login.role`, or the role their grant is for)
    /// now? If so: where, and with which credential.
    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a DbLogin,
    ) -> BoxFuture<'a, Result<Upstream, Denied>>;

    /// Something happened that the engine may want to audit. Called on the connection's task:
    /// hand the event off, do not block.
    fn event(&self, event: &PgEvent) {
        let _ = event;
    }
}

/// The person behind a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Their identity.
    pub identity: String,
    /// Whether the credential the person logged in with carries a recent second factor: a
    /// role whose rule requires MFA is refused without one.
    pub second_factor: bool,
}

/// Where a connection asks to go: the start-up packet's `database`, `TARGET[+ROLE][/DBNAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLogin {
    /// The target's name.
    pub target: String,
    /// The role, when named.
    pub role: Option<String>,
    /// The database on the target, when named (else the target's own).
    pub database: Option<String>,
}

impl DbLogin {
    /// Parses `TARGET[+ROLE][/DBNAME]`.
    ///
    /// # Errors
    /// An empty part, or one that is too long.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (rest, database) = match s.split_once('/') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        let (target, role) = match rest.split_once('+') {
            Some((t, r)) => (t, Some(r)),
            None => (rest, None),
        };
        let ok = |p: &str| !p.is_empty() && p.len() <= 63 && !p.contains(['+', '/', '\0']);
        if !ok(target) || role.is_some_and(|r| !ok(r)) || database.is_some_and(|d| !ok(d)) {
            return Err(format!(
                "the database name {s:?} is not TARGET, TARGET+ROLE or TARGET[+ROLE]/DBNAME"
            ));
        }
        Ok(Self {
            target: target.to_owned(),
            role: role.map(str::to_owned),
            database: database.map(str::to_owned),
        })
    }
}

/// A refusal, shown to the person as the connection's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where and how the gateway connects for an authorized person.
pub struct Upstream {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security to the target.
    pub tls: TlsMode,
    /// The database.
    pub database: String,
    /// The role to log in as (the grant's temporary role, or a vaulted account).
    pub user: String,
    /// Its password: the person never sees it.
    pub password: Secret<String>,
    /// The grant.
    pub grant_id: String,
    /// The role the grant is for.
    pub role: String,
    /// When the grant (and so the session) ends.
    pub grant_end: Timestamp,
    /// Whether statements are logged, and what happens when the log cannot be written.
    pub recording: RecordingMode,
    /// Whether the values bound to prepared statements are logged too.
    pub record_values: bool,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The client said goodbye or went away.
    Closed,
    /// The target closed the connection.
    UpstreamClosed,
    /// The grant reached its end.
    GrantEnded,
    /// Someone ended it (`warrant sessions kill`, a revocation).
    Killed {
        /// The message the person was given.
        reason: String,
    },
    /// The statement log could not be written (strict mode).
    RecordingFailed {
        /// What failed.
        error: String,
    },
    /// The gateway is shutting down.
    Shutdown,
    /// The protocol broke down.
    Error(String),
}

impl EndReason {
    /// A stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::UpstreamClosed => "target_closed",
            Self::GrantEnded => "grant_ended",
            Self::Killed { .. } => "killed",
            Self::RecordingFailed { .. } => "recording_failed",
            Self::Shutdown => "server_stopped",
            Self::Error(_) => "protocol_error",
        }
    }
}

/// What the gateway reports.
#[derive(Debug, Clone)]
pub enum PgEvent {
    /// A session is logged in to its target.
    SessionStarted(SessionInfo),
    /// A session ended.
    SessionEnded {
        /// The session as it ended.
        info: SessionInfo,
        /// Why.
        reason: EndReason,
        /// Its statement log.
        recording: RecordingOutcome,
    },
    /// A connection was refused: a bad token, no grant, the target unreachable.
    Refused {
        /// The `user` the client gave.
        identity: String,
        /// The target, when known.
        target: Option<String>,
        /// Where the client came from.
        peer: Option<SocketAddr>,
        /// Why.
        reason: String,
    },
    /// The statement log of a best-effort session failed and the session goes on.
    RecordingFailed {
        /// Who.
        identity: String,
        /// The target.
        target: String,
        /// What failed.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn database_names_name_target_role_and_database() {
        let l = DbLogin::parse("pg-prod").unwrap();
        assert_eq!(
            (l.target.as_str(), l.role, l.database),
            ("pg-prod", None, None)
        );
        let l = DbLogin::parse("pg-prod+readonly/app").unwrap();
        assert_eq!(l.role.as_deref(), Some("readonly"));
        assert_eq!(l.database.as_deref(), Some("app"));
        for bad in ["", "+r", "t+", "t/", "t+r+x", "t/a/b"] {
            assert!(DbLogin::parse(bad).is_err(), "{bad}");
        }
    }
}

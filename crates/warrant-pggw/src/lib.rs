//! Warrant's PostgreSQL gateway, as a library: people connect with `psql` or any driver,
//! `psql "host=gateway port=PORT user=alice dbname=pg-prod sslmode=require"`, with a token from
//! `warrant db-token` as the password.
//!
//! The gateway offers TLS (and takes tokens in the clear only from loopback clients), asks an
//! [`Authority`] (implemented by the engine; this crate does not depend on it) who the token
//! belongs to and whether they hold a grant on the target named by the database
//! (`TARGET[+ROLE][/DBNAME]`), logs in to the target with the credential the authority injects
//! (the grant's temporary role, or a vaulted account) — the person never sees it — and relays
//! the connection byte for byte: simple and extended queries, prepared statements, COPY in and
//! out, cancel requests (mapped to the target's own key). Every statement is written to the
//! session's statement log as it passes, before the target receives it ([`RecordingMode`]:
//! a strict role's session is refused or ended when its log cannot be written). Sessions end at
//! the grant's end, or when [`PgGatewayHandle::kill`] ends them, with a FATAL error that says
//! why.
//!
//! Layout: `proto` (the wire protocol: start-up, frames, the messages the gateway writes),
//! `authority` ([`Authority`] and what crosses it), `upstream` (logging in to the target),
//! `statements` (what the statement log says), `session` (live sessions, cancel keys), `conn`
//! (one connection: start-up, relay, close), `gateway` ([`PgGateway`], [`PgGatewayHandle`]).

mod authority;
mod conn;
mod gateway;
mod proto;
mod session;
mod statements;
mod upstream;

pub use authority::{Authority, BoxFuture, DbLogin, Denied, EndReason, Person, PgEvent, Upstream};
pub use gateway::{PgGateway, PgGatewayConfig, PgGatewayHandle, PgGwError, RecordingsConfig};
pub use session::SessionInfo;
pub use warrant_pgroles::TlsMode;
pub use warrant_recording::live::{RecordingMode, RecordingOutcome, RecordingSummary};

/// A session id: a UUIDv7 from the gateway's clock, so ids sort by start.
pub(crate) fn session_id(now: warrant_core::Timestamp) -> uuid::Uuid {
    let millis = u64::try_from(now.millis()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        u32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
    );
    uuid::Uuid::new_v7(ts)
}

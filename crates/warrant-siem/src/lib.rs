//! Delivery of audit records to a SIEM. Each [`Sink`] takes a batch of records in chain order
//! and returns only once the batch is handed over (written to the peer's socket, answered 2xx,
//! or synced to disk): the caller (the engine's sink worker) then moves its durable cursor, so
//! delivery is at least once and in order.
//!
//! - [`syslog`]: RFC 5424 messages, octet-counted (RFC 6587 §3.4.1) over TCP, or over TLS
//!   (RFC 5425), with the record's ids as structured data.
//! - [`webhook`]: JSON lines in one POST per batch, signed with HMAC-SHA-256.
//! - [`file`]: JSON lines appended to a file, synced per batch, rotated by size.
//!
//! Every network wait has a time limit ([`TIMEOUT`]): a sink that hangs fails the batch, it
//! never holds anything else up.

pub mod file;
pub mod syslog;
pub mod webhook;

use std::time::Duration;

use serde::Deserialize;
use warrant_audit::Record;

/// How long connecting, writing a batch, or a webhook's answer may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// What a sink writes for each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OCSF 1.5 events (`docs/specs/audit-events.md`).
    #[default]
    Ocsf,
    /// Warrant's own JSON lines (as `warrant audit export --format jsonl`).
    Jsonl,
}

impl Format {
    /// One record as a JSON object in this format.
    #[must_use]
    pub fn encode(self, r: &Record) -> serde_json::Value {
        match self {
            Self::Ocsf => warrant_audit::ocsf::to_ocsf(r),
            Self::Jsonl => jsonl(r),
        }
    }
}

/// A record as Warrant's own JSON line: the event as an object, the time readable too.
#[must_use]
pub fn jsonl(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "seq": r.seq,
        "at": rfc3339(r.at_ms),
        "at_ms": r.at_ms,
        "actor": r.actor,
        "kind": r.kind,
        "event": serde_json::from_str::<serde_json::Value>(&r.data)
            .unwrap_or_else(|_| serde_json::Value::String(r.data.clone())),
        "hash": r.hash,
        "prev_hash": r.prev_hash,
    })
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds, UTC.
#[must_use]
pub fn rfc3339(ms: i64) -> String {
    warrant_core::Timestamp::from_millis(ms).rfc3339()
}

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's settings are wrong (reported at start, before any delivery).
    #[error("{0}")]
    Config(String),
    /// The peer could not be reached or the write failed.
    #[error("{0}")]
    Io(String),
    /// The peer answered, but not with success.
    #[error("{0}")]
    Refused(String),
    /// The peer did not answer in time.
    #[error("no answer within {} s", TIMEOUT.as_secs())]
    Timeout,
}

/// A configured sink.
#[derive(Debug)]
pub enum Sink {
    /// RFC 5424 syslog over TCP or TLS.
    Syslog(syslog::SyslogSink),
    /// An HTTP webhook.
    Webhook(webhook::WebhookSink),
    /// A JSON-lines file.
    File(file::FileSink),
}

impl Sink {
    /// `syslog`, `webhook` or `file`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Syslog(_) => "syslog",
            Self::Webhook(_) => "webhook",
            Self::File(_) => "file",
        }
    }

    /// Hands `batch` (records in chain order) over; on error nothing of it counts as
    /// delivered (the next attempt sends it again, whole).
    pub async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        match self {
            Self::Syslog(s) => s.deliver(batch).await,
            Self::Webhook(s) => s.deliver(batch).await,
            Self::File(s) => s.deliver(batch).await,
        }
    }
}

//! Typed audit events and the hash chain that makes the audit trail tamper-evident.
//!
//! - [`event`]: [`Event`], one variant per kind of state change; the only shape in which
//!   anything enters the audit trail (no free-form strings, so no secret can ride along).
//! - [`chain`]: how a record's hash is computed from its predecessor, and [`chain::Verifier`],
//!   which walks records in order and reports the first broken position.
//! - [`checkpoint`]: signed checkpoints of the chain's head and export seals.
//! - [`signing`]: Warrant's own ed25519 keys (audit, recordings) and their checks.
//!
//! Storage of the chain is `warrant-store`'s job; this crate does no IO.

pub mod bundle;
pub mod chain;
pub mod checkpoint;
pub mod event;
pub mod ocsf;
pub mod signing;

pub use chain::{GENESIS_HASH, Record, RecordRef, Verifier, VerifyReport, record_hash};
pub use event::{Event, Refs};

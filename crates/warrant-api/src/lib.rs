//! Warrant's HTTP interface: the REST API under `/api/v1`, `/healthz` and `/metrics`; the JSON
//! shapes ([`wire`]); and the [`client`] that the CLI and the tests use to talk to it.
//!
//! - [`server`]: the route table with each route's authority, the authentication middleware,
//!   the handlers and [`server::serve`] (which takes its listener and shutdown signal from the
//!   caller, so tests run it in process on port 0).
//! - [`error`]: the single mapping from engine errors to HTTP statuses.
//! - [`extract`]: extractors whose rejections are JSON errors with stable codes.
//! - [`webauthn`]: security-key registration, step-up and sign-in.

pub mod accounts;
pub mod audit_search;
pub mod client;
pub mod directory_sources;
pub mod error;
pub mod extract;
pub mod pg;
pub mod scim;
pub mod server;
pub mod sessions;
pub mod ssh;
pub mod vault;
pub mod webauthn;
pub mod wire;

pub use client::{Client, ClientError};
pub use server::{AppState, router, serve};

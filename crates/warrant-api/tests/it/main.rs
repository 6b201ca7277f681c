//! Integration tests of the REST API: each test starts the server in process on port 0 over a
//! fresh SQLite store with the demo organisation applied, and talks to it through
//! `warrant_api::Client` (raw `reqwest` only for requests the client cannot make).
//!
//! - `harness`: the server fixture and the `check`-style helpers.
//! - `matrix`: the route table and every route × caller (anonymous, user, auditor, admin).
//! - `bad_input`: refusals with stable codes that change nothing.
//! - `auth`: sign-in, sign-out, rate limits, API tokens, disabled identities.
//! - `flows`: request → approvals → grant → check, leavers, concurrent decisions.
//! - `scim`: SCIM 2.0 provisioning as Entra ID and Okta do it, and its lifecycle effects.
//! - `webauthn`: security keys (a software authenticator) for registration, step-up, sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod bad_input;
mod flows;
mod harness;
mod matrix;
mod mfa;
mod scim;
mod ssh;
mod webauthn;

//! The engine's conformance suite: every behaviour runs against SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gateway;
mod harness;
mod ldap_sync;
mod lifecycle;
mod oidc_signin;
mod parsers;
mod pg_credentials;
mod props;
mod sessions;
mod store;

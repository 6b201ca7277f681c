//! End-to-end tests of the `warrant` binary: the real server (`warrant serve`) in a temp dir on
//! a free loopback port, driven by the real CLI, as a user would.
//!
//! - `harness`: start/stop/kill the server, run the CLI as someone, bounded waits.
//! - `walkthrough`: the README's five-minute tour with the demo organisation.
//! - `linux`: a vaulted Linux password rotated over SSH, discovery of a Linux host (real sshd).
//! - `gateway`: the SSH gateway with the real ssh client and a real sshd, under a grant.
//! - `pggateway`: the PostgreSQL gateway with the real psql and a real PostgreSQL, under a grant.
//! - `listings`: every listing verb, as a table and as `--json`.
//! - `mfa`: TOTP enrolment from the terminal and sign-in with `--otp`.
//! - `discovery`: `warrant discover` on a real PostgreSQL, exceptions for outside grants.
//! - `directory`: identity and group verbs, and their error messages.
//! - `apply`: the org file, dry run, idempotence, refusal of a bad file.
//! - `accounts`: vaulted accounts on a real PostgreSQL: checkout, reveal, rotation, a crash at
//!   every rotation step, a canary secret.
//! - `dbcreds`: a temporary PostgreSQL role for a grant, dropped when it is revoked.
//! - `audit`: verification online and offline, tampering, `audit tail`.
//! - `export_kill`: `kill -9` in the middle of an audit export: no file left, nothing lost.
//! - `expiry`: grants end on time, across a restart too.
//! - `crash`: `kill -9` under load loses nothing acknowledged.
//! - `postgres`: the PostgreSQL store.
//! - `serve`: bootstrap once, `--demo` on restart, refused options.
//! - `ssh`: `warrant ssh ca` and `warrant ssh-cert` under a grant.
//! - `sources`: `login --oidc` with a real OpenID provider, `sync ldap` with a real slapd.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod apply;
mod audit;
mod audit_search;
mod crash;
mod dbcreds;
mod directory;
mod discovery;
mod expiry;
mod export_kill;
mod gateway;
mod harness;
mod linux;
mod listings;
mod mfa;
mod pggateway;
mod postgres;
mod serve;
mod sinks;
mod sources;
mod ssh;
mod walkthrough;

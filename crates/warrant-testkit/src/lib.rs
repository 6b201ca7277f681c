//! Dev-only helpers for Warrant's tests.
//!
//! * [`PgFixture`] starts a throwaway PostgreSQL server (real `initdb`/`pg_ctl` from the Debian
//!   `postgresql` package) in a temp dir under `/tmp` on a free loopback port, and stops it again.
//!   [`PgFixture::shared`] gives one server per test binary; each test then takes its own database
//!   with [`PgFixture::fresh_database`] or [`PgFixture::create_database`].
//!   [`PgFixture::start_tls`] starts one that also speaks TLS, with a certificate from a test CA.
//! * [`SlapdFixture`] starts a throwaway OpenLDAP server (Debian `slapd`) with `ldap://`
//!   (StartTLS) and `ldaps://` listeners, a test CA, the memberof overlay and a test-only
//!   imitation of a few Active Directory attributes.
//! * [`OidcProviderFixture`] starts a throwaway OpenID provider (PyPI `oidc-provider-mock`,
//!   installed by `scripts/deps/oidc.sh`) with discovery, client registration and a headless
//!   login.
//! * [`SshdFixture`] starts a throwaway OpenSSH server (Debian `openssh-server`, installed by
//!   `scripts/deps/ssh.sh`) that trusts a given user CA, with principals and a KRL the test
//!   sets, and logs in to it with the real `ssh` client. Tests can also authorize plain keys
//!   for any account, root included ([`SshdFixture::authorize_key`]), and pin its host key
//!   ([`SshdFixture::host_public_key`]).
//! * [`LinuxAccountFixture`] creates a throwaway local account (`wt-…`) with a password, puts
//!   it in groups and gives it `authorized_keys`; [`SudoersDropIn`] adds a temporary file to
//!   `/etc/sudoers.d`. Both clean up on drop.
//! * [`RsyslogFixture`] starts a throwaway rsyslog (Debian `rsyslog`, `rsyslog-openssl`) that
//!   receives RFC 5424 over TCP or TLS and writes what it parsed of each message as JSON.
//! * [`free_port`] / [`try_free_port`] pick a free port on 127.0.0.1 for any other component a test
//!   starts. Never hard-code a port.
//!
//! Nothing here is mocked and nothing is skipped: when PostgreSQL is missing, the fixture returns a
//! [`FixtureError`] whose message names the command that failed and the package to install.

mod certs;
mod error;
mod linux;
mod oidc;
mod pg;
mod port;
mod rsyslog;
mod slapd;
mod sshd;

pub use error::FixtureError;
pub use linux::{LinuxAccountFixture, SudoersDropIn};
pub use oidc::{OidcProviderFixture, OidcProviderOptions};
pub use pg::PgFixture;
pub use port::{free_port, try_free_port};
pub use rsyslog::RsyslogFixture;
pub use slapd::SlapdFixture;
pub use sshd::SshdFixture;

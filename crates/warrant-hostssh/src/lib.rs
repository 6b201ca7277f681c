//! Warrant's work on a Linux host over SSH: discovery of privileged accounts and rotation of
//! a vaulted account's password.
//!
//! Warrant logs in with its own ed25519 key ([`ManagedKey`]; the vault keeps it, its public
//! line goes into the admin account's `authorized_keys`) as `root` or as an account with
//! passwordless sudo, to a host whose host key is pinned ([`HostTarget`]); any other host key
//! is refused before anything is sent. A [`Session`] is one such connection and runs any
//! number of commands ([`Session::exec`]); the free functions open one connection per call.
//!
//! * [`scan_linux`] reads `/etc/passwd`, `/etc/group`, `/etc/shadow`, the sudoers policy and
//!   the `authorized_keys` files (two round trips, as root) and reports the accounts worth
//!   managing ([`LinuxScan`]).
//! * [`password_hash`], [`verify_password`], [`verify_account_password`] and
//!   [`set_password`] are the steps of a journaled rotation (verify current → set new →
//!   verify new). Passwords are verified and hashed here; the host only ever receives a
//!   `$6$` hash, on `chpasswd -e`'s standard input. No secret is ever on a command line, in
//!   an error or in a log line.
//!
//! Layout: `key` ([`ManagedKey`]), `session` (russh client, host key pinning, command
//! execution, running as root), `scan` (discovery), `password` (rotation primitives),
//! `parse` and `sudoers` (pure parsers of what the host prints), `error` ([`HostSshError`]).

mod error;
mod key;
mod parse;
mod password;
pub mod pinned;
mod scan;
mod session;
mod sudoers;

/// The `ssh-key` crate this crate's API uses ([`ssh_key::PublicKey`] for pinned host keys).
pub use ssh_key;

pub use crate::error::{HostSshError, Result};
pub use crate::key::{MANAGED_KEY_COMMENT, ManagedKey};
pub use crate::password::{
    MAX_ACCOUNT_NAME, SHA512_CRYPT_ROUNDS, hash_password, password_hash, set_password,
    validate_account_name, verify_account_password, verify_password,
};
pub use crate::scan::{ADMIN_GROUPS, LinuxAccount, LinuxScan, ScanStep, scan_linux};
pub use crate::session::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, ExecOutput, HostTarget, MAX_OUTPUT, Session,
    exec,
};

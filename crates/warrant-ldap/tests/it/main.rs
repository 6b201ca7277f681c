//! Integration tests against a real OpenLDAP server (warrant-testkit's `SlapdFixture`): each test
//! starts its own slapd on free loopback ports. They fail, never skip, when slapd is missing:
//! install it with `scripts/deps/ldap.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod active_directory;
mod common;
mod errors;
mod fixture;
mod openldap;
mod paging;
mod tls;

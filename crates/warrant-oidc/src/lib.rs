//! OpenID Connect relying party for Warrant sign-in.
//!
//! [`RelyingParty::discover`] reads a provider's discovery document and keys;
//! [`RelyingParty::begin`] starts a login (authorization code flow with PKCE S256, random
//! `state` and `nonce`) and returns the URL for the browser plus a [`PendingLogin`] the server
//! keeps; [`RelyingParty::complete`] exchanges the callback's code and verifies the ID token,
//! returning its [`Claims`]. Failures are [`OidcError`]s with stable codes.
//!
//! Layout: `config` ([`OidcConfig`]), `rp` (discovery, login, exchange, verification and the
//! key cache), `login` ([`PendingLogin`]), `claims` ([`Claims`]), `http` (openidconnect's HTTP
//! calls sent through `reqwest` with rustls/aws-lc-rs), `error`.
//!
//! The protocol and the signature checks are the `openidconnect` crate's; this crate adds the
//! injected clock (never the system time), key rotation with a rate-limited refetch, `azp`
//! checks, the groups claim and errors that say what to fix without carrying secrets.

mod claims;
mod config;
mod error;
mod http;
mod login;
mod rp;

pub use claims::Claims;
pub use config::{DEFAULT_GROUPS_CLAIM, DEFAULT_SCOPES, OidcConfig};
pub use error::OidcError;
pub use login::{PENDING_LOGIN_TTL_SECS, PendingLogin};
pub use rp::{ALLOWED_CLOCK_SKEW_SECS, JWKS_REFETCH_INTERVAL_SECS, RelyingParty};

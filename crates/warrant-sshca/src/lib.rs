//! Warrant's SSH user certificate authority.
//!
//! Instead of putting users' keys on servers, Warrant signs a short-lived OpenSSH user
//! certificate for the key of whoever holds a grant: its principals are the accounts the grant's
//! role allows, its validity ends no later than the grant, its key id names the identity and
//! the grant (sshd logs it), and its serial lets a KRL revoke it before it expires. Targets trust
//! the CA through sshd's `TrustedUserCAKeys` and read the KRL through `RevokedKeys`.
//!
//! The CA key is ed25519; nothing here signs with RSA (RSA user keys of at least 3072 bits
//! are certified, which signs *over* them, never *with* them).
//!
//! Layout: `ca` ([`CaKey`], [`CertRequest`], [`Extensions`]), `krl` (the hand-written KRL
//! serialiser, [`krl()`]), `error` ([`SshCaError`] with stable codes).

mod ca;
mod error;
mod krl;

pub use ca::{CA_COMMENT, CaKey, CertRequest, Extensions, MIN_RSA_BITS};
pub use error::{Result, SshCaError};
pub use krl::krl;

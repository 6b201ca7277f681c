//! Envelope encryption of secrets at rest: the only crate that sees plaintext secrets.
//!
//! A key-encryption key ([`Kek`]: a file in the data directory, created at first start, or a
//! value such as `WARRANT_KEK`) wraps a fresh random data key per secret; the secret is sealed
//! under that data key with XChaCha20-Poly1305, bound to the identity of the record it belongs
//! to. A [`Sealed`] value is one line of text for a TEXT column and names its KEK by id, so the
//! KEK can be rotated by re-wrapping data keys ([`Vault::rewrap`]) without touching the data.
//! Plaintext leaves [`Vault::open`] only as `Zeroizing<Vec<u8>>`, wiped when dropped.
//!
//! Layout: `kek` (the key and its file), `vault` (seal, open, rewrap), `sealed` (the stored
//! value and its text form), `error`.

mod error;
mod kek;
mod sealed;
mod vault;

pub use error::VaultError;
pub use kek::{KEY_LEN, Kek};
pub use sealed::Sealed;
pub use vault::{MAX_PLAINTEXT, Vault};
pub use zeroize::Zeroizing;

//! [`Sealed`]: a secret at rest, and its one text form.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::VaultError;
use crate::vault::MAX_PLAINTEXT;

/// Length of an XChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;
/// Length of a data key.
pub(crate) const DEK_LEN: usize = 32;
/// Length of a wrapped data key: its nonce, the encrypted key and the tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;
/// Length of a KEK id in hex digits.
const KEK_ID_LEN: usize = 8;
/// The version tag of the only text form so far.
const VERSION: &str = "v1";

/// A sealed secret: the data encrypted under a fresh data key (DEK), and that DEK wrapped by
/// the KEK named `kek_id`. Nothing in it is secret.
///
/// Its text form, for a TEXT column, is
/// `v1.<kek_id>.<wrapped DEK>.<nonce>.<ciphertext>` with URL-safe base64 without padding
/// (so no `.` inside a part). Parsing accepts only the canonical form, so
/// `s.parse::<Sealed>()?.to_string() == s`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub(crate) kek_id: String,
    /// Nonce, then the DEK encrypted under the KEK, then its tag.
    pub(crate) wrapped_dek: [u8; WRAPPED_LEN],
    pub(crate) nonce: [u8; NONCE_LEN],
    /// The data encrypted under the DEK, then its tag.
    pub(crate) ciphertext: Vec<u8>,
}

impl Sealed {
    /// The id of the KEK that wraps this value's data key.
    pub fn kek_id(&self) -> &str {
        &self.kek_id
    }
}

impl fmt::Display for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERSION}.{}.{}.{}.{}",
            self.kek_id,
            URL_SAFE_NO_PAD.encode(self.wrapped_dek),
            URL_SAFE_NO_PAD.encode(self.nonce),
            URL_SAFE_NO_PAD.encode(&self.ciphertext),
        )
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({self})")
    }
}

impl FromStr for Sealed {
    type Err = VaultError;

    fn from_str(s: &str) -> Result<Self, VaultError> {
        // Anything longer than the largest value we seal is refused before decoding.
        let max = VERSION.len() + KEK_ID_LEN + 4 * (MAX_PLAINTEXT + TAG_LEN + 2 * WRAPPED_LEN) / 3;
        if s.len() > max {
            return Err(format(format!("longer than {max} characters")));
        }
        let mut parts = s.split('.');
        let (Some(version), Some(kek_id), Some(wrapped), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(format(
                "expected five parts `v1.<kek_id>.<wrapped key>.<nonce>.<ciphertext>`".into(),
            ));
        };
        if version != VERSION {
            return Err(format(format!(
                "unsupported version {:?} (expected {VERSION})",
                truncated(version)
            )));
        }
        if kek_id.len() != KEK_ID_LEN
            || !kek_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(format(format!(
                "the key id must be {KEK_ID_LEN} lowercase hex digits"
            )));
        }
        let ciphertext = decode(ct, "ciphertext")?;
        if ciphertext.len() < TAG_LEN {
            return Err(format(format!(
                "the ciphertext is {} bytes, shorter than its {TAG_LEN}-byte tag",
                ciphertext.len()
            )));
        }
        Ok(Self {
            kek_id: kek_id.to_owned(),
            wrapped_dek: fixed(wrapped, "wrapped key")?,
            nonce: fixed(nonce, "nonce")?,
            ciphertext,
        })
    }
}

fn format(msg: String) -> VaultError {
    VaultError::Format(msg)
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, VaultError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format(format!("the {what} is not URL-safe base64 without padding")))
}

fn fixed<const N: usize>(part: &str, what: &str) -> Result<[u8; N], VaultError> {
    let bytes = decode(part, what)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format(format!("the {what} is {} bytes, expected {N}", bytes.len())))
}

/// At most 16 characters of untrusted input, for a message.
fn truncated(s: &str) -> String {
    s.chars().take(16).collect()
}

//! [`Vault`]: seals and opens secrets under the current KEK, opens and re-wraps under old ones.

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{VaultError, fill_random};
use crate::kek::Kek;
use crate::sealed::{DEK_LEN, NONCE_LEN, Sealed, TAG_LEN, WRAPPED_LEN};

/// The largest secret the vault seals, in bytes. Secrets are small (seeds, passwords, private
/// keys); the limit keeps a stored value and the work of parsing it bounded.
pub const MAX_PLAINTEXT: usize = 64 * 1024;

/// Envelope encryption with one current KEK and any number of previous ones.
///
/// [`Vault::seal`] always uses the current KEK; [`Vault::open`] and [`Vault::rewrap`] use
/// whichever KEK the value names, so values sealed before a key rotation stay readable until
/// they are re-wrapped. `Debug` prints only key ids.
///
/// # Binding to the record
///
/// `aad` is the identity of the record the secret belongs to (e.g. `totp:<identity id>`). It
/// is authenticated twice, each time with a distinct label:
/// - the data is sealed with `"warrant-vault/v1/data\0" ‖ aad`;
/// - the data key is wrapped with `"warrant-vault/v1/dek\0" ‖ kek_id ‖ "\0" ‖ aad`.
///
/// So a value copied to another record opens nowhere, and its data key is not even unwrapped
/// there; the same holds for a wrapped key moved between values or relabelled with another
/// KEK id. This is why [`Vault::rewrap`] takes the record identity too.
pub struct Vault {
    current: Kek,
    previous: Vec<Kek>,
}

impl Vault {
    /// A vault that seals under `current`.
    pub fn new(current: Kek) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Also opens (and re-wraps) values sealed under `old`. A key equal to one already held is
    /// ignored.
    #[must_use]
    pub fn with_previous(mut self, old: Kek) -> Self {
        if self.find(old.id()).is_none() {
            self.previous.push(old);
        }
        self
    }

    /// A vault that seals under `new` and still opens (and re-wraps) everything this one
    /// opens: the step of a key rotation before every value is re-wrapped.
    #[must_use]
    pub fn rotated(&self, new: Kek) -> Self {
        let mut v = Self::new(new).with_previous(self.current.clone());
        for k in &self.previous {
            v = v.with_previous(k.clone());
        }
        v
    }

    /// The id of the KEK new values are sealed under.
    pub fn current_kek_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plaintext` for the record `aad` under a fresh random data key, wrapped by the
    /// current KEK. Two seals of the same plaintext differ (fresh key and nonces each time).
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Sealed, VaultError> {
        check_aad(aad)?;
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(VaultError::TooLarge {
                len: plaintext.len(),
                max: MAX_PLAINTEXT,
            });
        }
        let mut dek = Zeroizing::new([0u8; DEK_LEN]);
        fill_random(dek.as_mut_slice())?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;

        // Room for the tag up front: the buffer never reallocates, so no copy of the plaintext
        // is left behind in freed memory; and it is zeroised if encryption fails midway.
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        cipher(&dek)
            .encrypt_in_place((&nonce).into(), &data_aad(aad), &mut *buf)
            .map_err(|_| VaultError::Encrypt)?;
        let ciphertext = std::mem::take(&mut *buf);

        Ok(Sealed {
            kek_id: self.current.id().to_owned(),
            wrapped_dek: wrap(&self.current, aad, &dek)?,
            nonce,
            ciphertext,
        })
    }

    /// Opens `sealed` for the record `aad`. The plaintext is zeroised when dropped.
    ///
    /// Fails with [`VaultError::UnknownKek`] if no KEK held has the id the value names, and
    /// with the opaque [`VaultError::Decrypt`] for a wrong key, a wrong record or any tampering.
    pub fn open(&self, aad: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        check_aad(aad)?;
        let dek = self.unwrap_dek(aad, sealed)?;
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        cipher(&dek)
            .decrypt_in_place((&sealed.nonce).into(), &data_aad(aad), &mut *buf)
            .map_err(|_| VaultError::Decrypt)?;
        Ok(buf)
    }

    /// The same value with its data key re-wrapped under the current KEK; the sealed data is
    /// unchanged. `aad` is the record identity the value was sealed for (the wrap is bound to
    /// it). Use after rotating the KEK: build the vault with the new key as current and the
    /// old one as previous, re-wrap every value for which [`Vault::needs_rewrap`] holds, and
    /// retire the old key once none is left.
    pub fn rewrap(&self, aad: &str, sealed: &Sealed) -> Result<Sealed, VaultError> {
        check_aad(aad)?;
        let dek = self.unwrap_dek(aad, sealed)?;
        Ok(Sealed {
            kek_id: self.current.id().to_owned(),
            wrapped_dek: wrap(&self.current, aad, &dek)?,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext.clone(),
        })
    }

    /// Whether `sealed` is wrapped under a KEK other than the current one.
    pub fn needs_rewrap(&self, sealed: &Sealed) -> bool {
        sealed.kek_id != self.current.id()
    }

    fn find(&self, kek_id: &str) -> Option<&Kek> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == kek_id)
    }

    fn unwrap_dek(
        &self,
        aad: &str,
        sealed: &Sealed,
    ) -> Result<Zeroizing<[u8; DEK_LEN]>, VaultError> {
        let kek = self
            .find(&sealed.kek_id)
            .ok_or_else(|| VaultError::UnknownKek {
                kek_id: sealed.kek_id.clone(),
            })?;
        let (nonce, rest) = sealed.wrapped_dek.split_at(NONCE_LEN);
        let (encrypted, tag) = rest.split_at(DEK_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| VaultError::Decrypt)?;
        let tag = Tag::try_from(tag).map_err(|_| VaultError::Decrypt)?;
        let mut dek = Zeroizing::new([0u8; DEK_LEN]);
        dek.copy_from_slice(encrypted);
        cipher(kek.key())
            .decrypt_inout_detached(
                &nonce,
                &dek_aad(kek.id(), aad),
                dek.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| VaultError::Decrypt)?;
        Ok(dek)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current.id())
            .field(
                "previous",
                &self.previous.iter().map(Kek::id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Wraps `dek` under `kek` for the record `aad`: nonce ‖ encrypted key ‖ tag.
fn wrap(kek: &Kek, aad: &str, dek: &[u8; DEK_LEN]) -> Result<[u8; WRAPPED_LEN], VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = [0u8; WRAPPED_LEN];
    let (nonce_out, rest) = out.split_at_mut(NONCE_LEN);
    let (body, tag_out) = rest.split_at_mut(DEK_LEN);
    nonce_out.copy_from_slice(&nonce);
    body.copy_from_slice(dek);
    match cipher(kek.key()).encrypt_inout_detached(
        (&nonce).into(),
        &dek_aad(kek.id(), aad),
        body.into(),
    ) {
        Ok(tag) => {
            tag_out.copy_from_slice(&tag);
            Ok(out)
        }
        Err(_) => {
            // The body may still hold the data key.
            out.zeroize();
            Err(VaultError::Encrypt)
        }
    }
}

fn cipher(key: &[u8; 32]) -> XChaCha20Poly1305 {
    let key: &Key = key.into();
    XChaCha20Poly1305::new(key)
}

fn check_aad(aad: &str) -> Result<(), VaultError> {
    if aad.is_empty() {
        Err(VaultError::EmptyAad)
    } else {
        Ok(())
    }
}

fn data_aad(aad: &str) -> Vec<u8> {
    [b"warrant-vault/v1/data\0".as_slice(), aad.as_bytes()].concat()
}

/// The KEK id is hex (no NUL), so the encoding splits one way only.
fn dek_aad(kek_id: &str, aad: &str) -> Vec<u8> {
    [
        b"warrant-vault/v1/dek\0".as_slice(),
        kek_id.as_bytes(),
        b"\0",
        aad.as_bytes(),
    ]
    .concat()
}

//! [`Kek`]: the key-encryption key, generated, read from a file or from an environment value.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::{DecodeSliceError, Engine};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{VaultError, fill_random};

/// Length of a KEK in bytes.
pub const KEY_LEN: usize = 32;

/// The longest key file read: base64 of 32 bytes plus generous whitespace. Anything longer is
/// not a key file and is refused before it is read into memory.
const MAX_KEY_FILE: u64 = 256;

/// A key-encryption key: 32 random bytes that wrap the per-secret data keys.
///
/// Its [`Kek::id`] is a short public fingerprint stored beside every value it wraps; `Debug`
/// prints only that id. The key is zeroised on drop.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Kek {
    /// A new random KEK from the operating system's generator.
    pub fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut_slice())?;
        Ok(Self::from_key(key))
    }

    /// The KEK in `path`, creating it (mode 0600) if the file does not exist.
    ///
    /// The file holds the key as standard base64 (what [`Kek::from_env_value`] takes) or as 32
    /// raw bytes; a created file holds base64 and a newline. An existing file that the group
    /// or others may read, or that is not a key of 32 bytes, is refused. Creation writes a
    /// temporary file, syncs it and links it into place without replacing anything, so two
    /// processes starting at once end up with the same key, never with one each.
    pub fn load_or_create(path: &Path) -> Result<Self, VaultError> {
        match File::open(path) {
            Ok(file) => Self::read_file(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(key_file(path, format!("cannot open: {e}"))),
        }
    }

    /// The KEK from a value such as the `WARRANT_KEK` environment variable: standard base64 of
    /// 32 bytes (surrounding whitespace ignored), e.g. the output of `openssl rand -base64 32`.
    pub fn from_env_value(s: &str) -> Result<Self, VaultError> {
        decode_b64_key(s.as_bytes()).map_err(|reason| VaultError::KeyValue { reason })
    }

    /// The public fingerprint of this key: 8 hex digits of a SHA-256 over a fixed label and
    /// the key. It names the key in sealed values; it reveals nothing usable about the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes, for this crate's AEAD only.
    pub(crate) fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    fn from_key(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        // The label keeps this hash distinct from any other use of SHA-256 over the key.
        let digest = Sha256::new()
            .chain_update(b"warrant-vault/v1/kek-id\0")
            .chain_update(key.as_slice())
            .finalize();
        Self {
            id: hex::encode(&digest[..4]),
            key,
        }
    }

    fn read_file(path: &Path, file: File) -> Result<Self, VaultError> {
        // Checked on the open handle, so the file checked is the file read.
        let meta = file
            .metadata()
            .map_err(|e| key_file(path, format!("cannot read its metadata: {e}")))?;
        if !meta.is_file() {
            return Err(key_file(path, "is not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_file(
                path,
                format!(
                    "is readable by group or others (mode {mode:04o}); restrict it with \
                     `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
        let mut content = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
        file.take(MAX_KEY_FILE + 1)
            .read_to_end(&mut content)
            .map_err(|e| key_file(path, format!("cannot read: {e}")))?;
        if content.len() == KEY_LEN {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&content);
            return Ok(Self::from_key(key));
        }
        decode_b64_key(&content).map_err(|reason| {
            key_file(
                path,
                format!(
                    "{reason} (or 32 raw bytes; the file holds {} bytes)",
                    content.len()
                ),
            )
        })
    }

    fn create(path: &Path) -> Result<Self, VaultError> {
        let kek = Self::generate()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut suffix = [0u8; 8];
        fill_random(&mut suffix)?;
        let name = path
            .file_name()
            .ok_or_else(|| key_file(path, "has no file name".into()))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            hex::encode(suffix)
        ));
        let result = Self::write_new(&tmp, path, &dir, &kek);
        // The temporary name is only a staging step: gone whether linking worked or not.
        let _ = fs::remove_file(&tmp);
        match result {
            Ok(()) => Ok(kek),
            // Another process created the key meanwhile: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match File::open(path) {
                Ok(file) => Self::read_file(path, file),
                Err(e) => Err(key_file(path, format!("cannot open: {e}"))),
            },
            Err(e) => Err(key_file(path, format!("cannot create: {e}"))),
        }
    }

    /// Writes the key to `tmp` (0600 from the start: the mode is given to `open`, and a umask
    /// only removes bits), syncs it, then hard-links it to `path`. Unlike `rename`, `link` fails
    /// if `path` exists, so a key already in use is never replaced.
    fn write_new(tmp: &Path, path: &Path, dir: &Path, kek: &Self) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        let text = Zeroizing::new(STANDARD.encode(kek.key.as_slice()));
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        fs::hard_link(tmp, path)?;
        // Make the new directory entry durable too.
        File::open(dir)?.sync_all()
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Decodes standard base64 of exactly 32 bytes; the error says what is wrong, never the value.
fn decode_b64_key(text: &[u8]) -> Result<Kek, String> {
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        return Err("is empty; expected standard base64 of 32 random bytes".into());
    }
    // Decoded into a fixed zeroised buffer rather than a `Vec`, so no copy outlives the call.
    let mut buf = Zeroizing::new([0u8; 2 * KEY_LEN]);
    let len = STANDARD
        .decode_slice(trimmed, buf.as_mut_slice())
        .map_err(|e| match e {
            DecodeSliceError::OutputSliceTooSmall => {
                format!("decodes to more than {KEY_LEN} bytes (expected base64 of 32 random bytes)")
            }
            DecodeSliceError::DecodeError(_) => {
                "is not standard base64 (expected base64 of 32 random bytes)".to_owned()
            }
        })?;
    if len != KEY_LEN {
        return Err(format!(
            "decodes to {len} bytes, expected {KEY_LEN} (base64 of 32 random bytes)"
        ));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&buf[..KEY_LEN]);
    Ok(Kek::from_key(key))
}

fn key_file(path: &Path, reason: String) -> VaultError {
    VaultError::KeyFile {
        path: path.to_path_buf(),
        reason,
    }
}

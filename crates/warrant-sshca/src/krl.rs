//! OpenSSH key revocation lists (KRLs), serialised by hand.
//!
//! No Rust crate writes KRLs (`ssh-key` reads and writes keys and certificates only), so this
//! module writes the format of OpenSSH's `PROTOCOL.krl` itself. It is a container of SSH wire
//! primitives (big-endian `uint32`/`uint64`, length-prefixed `string`s), not cryptography: the
//! KRL is unsigned, and sshd trusts it because it reads it from its own `RevokedKeys` file.
//!
//! ```text
//! uint64 KRL_MAGIC (0x5353484b524c0a00, "SSHKRL\n\0")   uint32 KRL_FORMAT_VERSION (1)
//! uint64 krl_version   uint64 generated_date   uint64 flags (0)
//! string reserved ("")  string comment
//! byte   KRL_SECTION_CERTIFICATES (1)   string section:
//!        string ca_key (the CA public key, wire encoding)   string reserved ("")
//!        byte KRL_SECTION_CERT_SERIAL_LIST (0x20)   string { uint64 serial … }
//! ```

use ssh_key::PublicKey;
use ssh_key::encoding::Encode;

use crate::error::{Result, SshCaError};

const KRL_MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const KRL_FORMAT_VERSION: u32 = 1;
const KRL_SECTION_CERTIFICATES: u8 = 1;
const KRL_SECTION_CERT_SERIAL_LIST: u8 = 0x20;
/// The KRL's comment (ssh-keygen prints it with `-Q -l`).
const COMMENT: &str = "warrant";

/// A KRL that revokes the certificates with serials `revoked_serials` signed by the CA whose
/// public key line is `ca_public` (`ssh-ed25519 AAAA… comment`), for sshd's `RevokedKeys`.
///
/// `generated_at` (unix seconds) is both the generation date and the `krl_version`, so a later
/// KRL has a higher version. Serials are sorted and deduplicated; serial 0 is left out (OpenSSH
/// refuses to revoke it, and [`CaKey::issue`](crate::CaKey::issue) never issues it). With no
/// serials the KRL has no sections and revokes nothing.
pub fn krl(ca_public: &str, revoked_serials: &[u64], generated_at: u64) -> Result<Vec<u8>> {
    let key = PublicKey::from_openssh(ca_public.trim())
        .map_err(|e| SshCaError::InvalidCaPublicKey(e.to_string()))?;
    let mut ca_blob = Vec::new();
    key.key_data()
        .encode(&mut ca_blob)
        .map_err(|e| SshCaError::InvalidCaPublicKey(e.to_string()))?;
    Ok(encode(&ca_blob, revoked_serials, generated_at))
}

/// The KRL for the CA public key `ca_blob` (SSH wire encoding).
pub(crate) fn encode(ca_blob: &[u8], revoked_serials: &[u64], generated_at: u64) -> Vec<u8> {
    let mut serials: Vec<u64> = revoked_serials
        .iter()
        .copied()
        .filter(|s| *s != 0)
        .collect();
    serials.sort_unstable();
    serials.dedup();

    let mut out = Vec::with_capacity(64 + ca_blob.len() + 8 * serials.len());
    out.extend_from_slice(KRL_MAGIC);
    put_u32(&mut out, KRL_FORMAT_VERSION);
    put_u64(&mut out, generated_at); // krl_version
    put_u64(&mut out, generated_at); // generated_date
    put_u64(&mut out, 0); // flags
    put_string(&mut out, b""); // reserved
    put_string(&mut out, COMMENT.as_bytes());

    if !serials.is_empty() {
        let mut list = Vec::with_capacity(8 * serials.len());
        for serial in &serials {
            put_u64(&mut list, *serial);
        }
        let mut section = Vec::new();
        put_string(&mut section, ca_blob);
        put_string(&mut section, b""); // reserved
        section.push(KRL_SECTION_CERT_SERIAL_LIST);
        put_string(&mut section, &list);

        out.push(KRL_SECTION_CERTIFICATES);
        put_string(&mut out, &section);
    }
    out
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// An SSH `string`: `uint32` length, then the bytes. Our strings (a key blob, a serial list of
/// at most a few million entries) are far below 4 GiB; a longer one would saturate the length
/// and make the KRL unreadable rather than wrap it.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_krl_is_the_header_only() {
        let krl = encode(b"KEY", &[0], 7);
        let mut expected = b"SSHKRL\n\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 1]);
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&0u64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"warrant");
        assert_eq!(krl, expected);
    }

    #[test]
    fn serials_are_sorted_and_deduplicated() {
        let krl = encode(b"KEY", &[9, 2, 9, 0], 1);
        let header_len = 8 + 4 + 8 + 8 + 8 + 4 + 4 + COMMENT.len();
        let section = &krl[header_len..];
        assert_eq!(section[0], KRL_SECTION_CERTIFICATES);
        let mut inner = Vec::new();
        put_string(&mut inner, b"KEY");
        put_string(&mut inner, b"");
        inner.push(KRL_SECTION_CERT_SERIAL_LIST);
        inner.extend_from_slice(&[0, 0, 0, 16]);
        inner.extend_from_slice(&2u64.to_be_bytes());
        inner.extend_from_slice(&9u64.to_be_bytes());
        let mut expected = vec![KRL_SECTION_CERTIFICATES];
        put_string(&mut expected, &inner);
        assert_eq!(section, expected.as_slice());
    }
}

//! The CA key and certificate issuance.

use ssh_key::certificate::{Builder, CertType};
use ssh_key::encoding::Encode;
use ssh_key::private::{Ed25519Keypair, Ed25519PrivateKey, KeypairData};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey};
use warrant_core::Secret;

use crate::error::{Result, SshCaError};
use crate::krl;

/// The comment on the CA key, shown at the end of [`CaKey::public_openssh`].
pub const CA_COMMENT: &str = "warrant-user-ca";
/// The smallest RSA modulus the CA certifies (NIST: 3072 bits for use past 2030).
pub const MIN_RSA_BITS: u32 = 3072;
/// Bytes of random nonce per certificate (OpenSSH uses 32).
const NONCE_LEN: usize = 32;

/// Warrant's SSH user certificate authority: one ed25519 key pair.
///
/// The private key leaves this type only as [`CaKey::to_openssh`] (a [`Secret`], for the
/// vault to seal); the public key is what sshd's `TrustedUserCAKeys` and the KRL name.
pub struct CaKey {
    key: PrivateKey,
    /// The public key in SSH wire encoding, as a KRL's certificate section names it.
    public_blob: Vec<u8>,
    /// `ssh-ed25519 AAAA… warrant-user-ca`.
    public_line: String,
}

impl CaKey {
    /// A new random ed25519 CA key, with the comment [`CA_COMMENT`].
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; Ed25519PrivateKey::BYTE_SIZE];
        getrandom::fill(&mut seed).map_err(|_| SshCaError::Random)?;
        let keypair = Ed25519Keypair::from_seed(&seed);
        seed.fill(0);
        let key = PrivateKey::new(KeypairData::from(keypair), CA_COMMENT)
            .map_err(|e| SshCaError::CaKey(e.to_string()))?;
        Self::from_private(key)
    }

    /// Reads a CA key written by [`CaKey::to_openssh`]: an unencrypted OpenSSH ed25519 private
    /// key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn from_openssh(pem: Secret<String>) -> Result<Self> {
        let key = PrivateKey::from_openssh(pem.expose())
            .map_err(|e| SshCaError::CaKey(format!("not an OpenSSH private key ({e})")))?;
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(SshCaError::CaKey(format!(
                "the CA key must be ed25519, not {}",
                key.algorithm()
            )));
        }
        if key.is_encrypted() {
            return Err(SshCaError::CaKey(
                "the CA key must not be passphrase-protected (the vault seals it)".to_owned(),
            ));
        }
        Self::from_private(key)
    }

    fn from_private(key: PrivateKey) -> Result<Self> {
        let key_err = |e: ssh_key::Error| SshCaError::CaKey(e.to_string());
        let mut public_blob = Vec::new();
        key.public_key()
            .key_data()
            .encode(&mut public_blob)
            .map_err(|e| SshCaError::CaKey(e.to_string()))?;
        let mut public = key.public_key().clone();
        public.set_comment(CA_COMMENT);
        let public_line = public.to_openssh().map_err(key_err)?;
        Ok(Self {
            key,
            public_blob,
            public_line,
        })
    }

    /// The private key as an unencrypted OpenSSH private key (PEM, LF line endings), for the
    /// caller to seal with the vault. Never log it.
    pub fn to_openssh(&self) -> Result<Secret<String>> {
        let pem = self
            .key
            .to_openssh(LineEnding::LF)
            .map_err(|e| SshCaError::CaKey(e.to_string()))?;
        Ok(Secret::new(pem.as_str().to_owned()))
    }

    /// The public key line, `ssh-ed25519 AAAA… warrant-user-ca`: the content of sshd's
    /// `TrustedUserCAKeys` file.
    #[must_use]
    pub fn public_openssh(&self) -> String {
        self.public_line.clone()
    }

    /// The SHA-256 fingerprint of the public key, `SHA256:…` as `ssh-keygen -l` prints it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// A user certificate for `request.public_key`, signed by this CA: one OpenSSH certificate
    /// line (`ssh-ed25519-cert-v01@openssh.com AAAA… <key id>`), for the user's
    /// `CertificateFile` or `id_ed25519-cert.pub`.
    ///
    /// Refuses an unparsable key, DSA keys, RSA keys under [`MIN_RSA_BITS`], certificates and
    /// unknown algorithms; empty or blank principals; an empty validity window; serial 0.
    pub fn issue(&self, request: &CertRequest<'_>) -> Result<String> {
        let subject = parse_user_key(request.public_key)?;
        if request.principals.is_empty() || request.principals.iter().any(|p| p.trim().is_empty()) {
            return Err(SshCaError::NoPrincipals);
        }
        if request.valid_before <= request.valid_after {
            return Err(SshCaError::InvalidValidity {
                valid_after: request.valid_after,
                valid_before: request.valid_before,
            });
        }
        if request.serial == 0 {
            return Err(SshCaError::ZeroSerial);
        }

        let mut nonce = vec![0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SshCaError::Random)?;
        let sign_err = |e: ssh_key::Error| SshCaError::Sign(e.to_string());
        let mut builder = Builder::new(
            nonce,
            subject.key_data().clone(),
            request.valid_after,
            request.valid_before,
        )
        .map_err(sign_err)?;
        builder
            .serial(request.serial)
            .map_err(sign_err)?
            .cert_type(CertType::User)
            .map_err(sign_err)?
            .key_id(request.key_id.clone())
            .map_err(sign_err)?
            .comment(request.key_id.clone())
            .map_err(sign_err)?;
        for principal in &request.principals {
            builder
                .valid_principal(principal.clone())
                .map_err(sign_err)?;
        }
        for name in request.extensions.names() {
            builder.extension(name, "").map_err(sign_err)?;
        }
        let cert = builder.sign(&self.key).map_err(sign_err)?;
        cert.to_openssh().map_err(sign_err)
    }

    /// A KRL revoking `revoked_serials` of this CA's certificates; see [`krl::krl`].
    #[must_use]
    pub fn krl(&self, revoked_serials: &[u64], generated_at: u64) -> Vec<u8> {
        krl::encode(&self.public_blob, revoked_serials, generated_at)
    }
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// What a certificate says: whose key, for which accounts, for how long, under which id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest<'a> {
    /// The user's OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub public_key: &'a str,
    /// The accounts the certificate may log in as (matched against sshd's
    /// `AuthorizedPrincipalsFile`); at least one.
    pub principals: Vec<String>,
    /// Shown in sshd's log (`Accepted certificate ID "…"`), e.g. `alice grant=<id>`.
    pub key_id: String,
    /// Unique per certificate and never 0; the KRL revokes by serial.
    pub serial: u64,
    /// Unix seconds from which the certificate is valid.
    pub valid_after: u64,
    /// Unix seconds from which it is no longer valid; after `valid_after`.
    pub valid_before: u64,
    /// The `permit-*` extensions; by default a pty and `~/.ssh/rc`, no forwarding.
    pub extensions: Extensions,
}

/// The certificate's `permit-*` extensions (what the session may do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one flag per OpenSSH extension, named as in ssh-keygen -O"
)]
pub struct Extensions {
    /// `permit-pty`: an interactive terminal.
    pub pty: bool,
    /// `permit-user-rc`: run `~/.ssh/rc`.
    pub user_rc: bool,
    /// `permit-agent-forwarding`.
    pub agent_forwarding: bool,
    /// `permit-port-forwarding`.
    pub port_forwarding: bool,
    /// `permit-X11-forwarding`.
    pub x11_forwarding: bool,
}

impl Default for Extensions {
    /// `permit-pty` and `permit-user-rc`; no forwarding of any kind.
    fn default() -> Self {
        Self {
            pty: true,
            user_rc: true,
            agent_forwarding: false,
            port_forwarding: false,
            x11_forwarding: false,
        }
    }
}

impl Extensions {
    /// The OpenSSH names of the enabled extensions.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.x11_forwarding, "permit-X11-forwarding"),
            (self.agent_forwarding, "permit-agent-forwarding"),
            (self.port_forwarding, "permit-port-forwarding"),
            (self.pty, "permit-pty"),
            (self.user_rc, "permit-user-rc"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// Parses the user's key and refuses kinds the CA does not certify.
fn parse_user_key(line: &str) -> Result<PublicKey> {
    let key = PublicKey::from_openssh(line.trim())
        .map_err(|e| SshCaError::InvalidPublicKey(e.to_string()))?;
    match key.key_data() {
        KeyData::Ed25519(_)
        | KeyData::Ecdsa(_)
        | KeyData::SkEd25519(_)
        | KeyData::SkEcdsaSha2NistP256(_) => Ok(key),
        KeyData::Rsa(rsa) if rsa.key_size() >= MIN_RSA_BITS => Ok(key),
        KeyData::Rsa(rsa) => Err(SshCaError::WeakKey(format!(
            "RSA key of {} bits; at least {MIN_RSA_BITS} are required",
            rsa.key_size()
        ))),
        KeyData::Dsa(_) => Err(SshCaError::WeakKey("DSA keys are not accepted".to_owned())),
        _ => Err(SshCaError::WeakKey(format!(
            "{} keys are not accepted",
            key.algorithm()
        ))),
    }
}

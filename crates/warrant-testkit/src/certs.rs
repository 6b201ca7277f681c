//! Throwaway test CAs and the server certificates they sign (rcgen), for the fixtures that
//! serve TLS (slapd, PostgreSQL).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::FixtureError;

/// A self-signed CA made for one fixture; its key lives only in memory.
pub(crate) struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its private key, both PEM (the key in PKCS#8).
pub(crate) struct ServerCert {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl TestCa {
    /// A new CA whose certificate has the common name `name`.
    pub(crate) fn new(name: &str) -> Result<Self, FixtureError> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: what a client trusts.
    pub(crate) fn pem(&self) -> &str {
        &self.pem
    }

    /// A TLS server certificate signed by this CA, with common name `localhost` and one subject
    /// alternative name per entry of `names`: an IP address SAN for an entry that parses as one
    /// (`127.0.0.1`, `::1`), a DNS name SAN otherwise.
    pub(crate) fn server_cert(&self, names: &[&str]) -> Result<ServerCert, FixtureError> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.use_authority_key_identifier_extension = true;
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_error)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn cert_error(e: rcgen::Error) -> FixtureError {
    FixtureError::new("could not generate the test certificates (rcgen)").with_detail(e.to_string())
}

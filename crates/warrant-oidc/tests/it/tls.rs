//! `ca_file`: a provider behind TLS with a certificate from a private CA (generated here with
//! rcgen), served by the in-process provider of `local` over tokio-rustls. Also shows that the
//! crate's TLS client and a rustls server run in one process with one crypto provider
//! (aws-lc-rs).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use warrant_core::Clock;
use warrant_oidc::{OidcConfig, RelyingParty};

use crate::local::{LocalProvider, NONCE, TestKey};
use crate::{assert_code, clock};

/// A TLS listener for `axum::serve`: connections whose handshake fails are dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A self-signed CA: its PEM and the issuer that signs with its key.
fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Serves the in-process provider over TLS with a certificate for 127.0.0.1 signed by `ca`.
async fn start_tls(ca: &Issuer<'static, KeyPair>) -> LocalProvider {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    let cert = params.signed_by(&key, ca).unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", tcp.local_addr().unwrap());
    let (provider, app) = LocalProvider::app(issuer, &["EdDSA"]);
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    provider
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_provider_with_a_private_ca_is_trusted_only_through_ca_file() {
    let (ca_pem, ca) = new_ca("Warrant OIDC test CA");
    let (other_pem, _) = new_ca("Unrelated test CA");
    let idp = start_tls(&ca).await;
    let key = TestKey::generate("k1");
    idp.publish(&[&key]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = |ca_file: Option<PathBuf>| OidcConfig {
        ca_file,
        ..OidcConfig::new(idp.issuer.clone(), "warrant")
    };

    let rp = RelyingParty::discover(cfg(Some(write(&dir, "ca.pem", &ca_pem))))
        .await
        .unwrap();
    let now = clock();
    let claims = rp
        .verify_id_token(
            &key.sign(&idp.claims(now.now().unix_seconds())),
            NONCE,
            &now,
        )
        .await
        .unwrap();
    assert_eq!(claims.subject, "alice");

    // Without the CA, or with another one, the provider's certificate is not trusted.
    for ca_file in [None, Some(write(&dir, "other.pem", &other_pem))] {
        let e = assert_code(
            RelyingParty::discover(cfg(ca_file)).await,
            "oidc_discovery",
            &[],
        );
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        assert!(e.to_string().contains("ca_file"), "{e}");
    }

    // A file without certificates is a configuration error.
    let e = assert_code(
        RelyingParty::discover(cfg(Some(write(&dir, "empty.pem", "not a certificate\n")))).await,
        "oidc_config",
        &[],
    );
    assert!(e.to_string().contains("empty.pem"), "{e}");
}

//! TLS to the person: the gateway offers a certificate (from a test CA made here with rcgen)
//! and psql verifies it (`sslmode=verify-full`); plain connections from loopback still work.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Gw, PERSON, TARGET, TOKEN, run};

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

/// The gateway's TLS settings: a certificate for `localhost` signed by `ca`, on aws-lc-rs.
fn server_config(ca: &Issuer<'static, KeyPair>) -> Arc<rustls::ServerConfig> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages.push(KeyUsagePurpose::DigitalSignature);
    params
        .extended_key_usages
        .push(ExtendedKeyUsagePurpose::ServerAuth);
    let cert = params.signed_by(&key, ca).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_verifies_the_gateway_and_talks_tls() {
    let (ca_pem, ca) = new_ca("Warrant pggw test CA");
    let (other_pem, _) = new_ca("Unrelated test CA");
    let tls = server_config(&ca);
    let gw = Gw::start_with(|c| c.tls = Some(tls)).await;
    let write = |name: &str, pem: &str| -> PathBuf {
        let path = gw.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_file = write("ca.pem", &ca_pem);
    let other_file = write("other.pem", &other_pem);
    let conninfo = |sslmode: &str, root: &PathBuf| {
        format!(
            "host=localhost hostaddr=127.0.0.1 port={} user={PERSON} dbname={TARGET} \
             sslmode={sslmode} sslrootcert={}",
            gw.port,
            root.display()
        )
    };

    // Verified, by name: the session is TLS while it runs, and works.
    let mut cmd = gw.psql_command(
        &conninfo("verify-full", &ca_file),
        TOKEN,
        &["-c", "SELECT current_user", "-c", "SELECT 'over tls'"],
    );
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("{}\nover tls\n", gw.account()));
    let info = gw.authority.started(1).await;
    assert!(info.tls, "{info:?}");

    // A client that trusts another CA refuses the gateway before it sends its token.
    let mut cmd = gw.psql_command(
        &conninfo("verify-full", &other_file),
        TOKEN,
        &["-c", "SELECT 1"],
    );
    let out = run(&mut cmd, b"").await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("certificate verify failed"), "{out:?}");

    // `sslmode=require` (no verification) gets TLS too.
    let mut cmd = gw.psql_command(
        &conninfo("require", &ca_file),
        TOKEN,
        &["-c", "SELECT 'required'"],
    );
    let out = run(&mut cmd, b"").await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "required\n"),
        "{out:?}"
    );
    assert!(gw.authority.started(2).await.tls);

    // From loopback, a plain connection is still taken.
    let out = gw.psql(&["-c", "SELECT 'plain'"], b"").await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "plain\n"), "{out:?}");
    assert!(!gw.authority.started(3).await.tls);
    // Only the three sessions started; the refused client never got as far as a session.
    for n in 1..=3 {
        gw.authority.ended(n).await;
    }
    assert_eq!(
        gw.authority
            .events()
            .iter()
            .filter(|e| matches!(e, warrant_pggw::PgEvent::SessionStarted(_)))
            .count(),
        3
    );
}

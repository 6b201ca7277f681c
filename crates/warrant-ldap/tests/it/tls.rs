//! StartTLS and LDAPS against the fixture's test CA; a CA that did not sign the server's
//! certificate is refused with `ldap_tls` and the message names the CA file.

use warrant_ldap::TlsMode;

use crate::common::*;

#[tokio::test]
async fn starttls_with_the_ca_file() {
    let ldap = slapd();
    load_org(&ldap);
    let mut cfg = openldap_config(&ldap);
    cfg.tls = TlsMode::Starttls;
    cfg.ca_file = Some(ldap.ca_pem_path());
    assert_org(&fetch(&cfg).await);
}

#[tokio::test]
async fn ldaps_with_the_ca_file() {
    let ldap = slapd();
    load_org(&ldap);
    let mut cfg = openldap_config(&ldap);
    cfg.url = ldap.ldaps_url();
    cfg.tls = TlsMode::Ldaps;
    cfg.ca_file = Some(ldap.ca_pem_path());
    assert_org(&fetch(&cfg).await);

    // The certificate also names localhost.
    cfg.url = format!("ldaps://localhost:{}", ldap.ldaps_port());
    assert_org(&fetch(&cfg).await);
}

#[tokio::test]
async fn a_wrong_ca_is_refused_on_both_ways_in() {
    let ldap = slapd();
    let wrong_ca = ldap.untrusted_ca_pem_path();
    let mut cfg = openldap_config(&ldap);
    cfg.ca_file = Some(wrong_ca.clone());

    cfg.url = ldap.ldaps_url();
    cfg.tls = TlsMode::Ldaps;
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_tls", "{e}");
    let msg = e.to_string();
    assert!(msg.contains("not trusted"), "{msg}");
    assert!(msg.contains(&wrong_ca.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("127.0.0.1:{}", ldap.ldaps_port())),
        "{msg}"
    );

    cfg.url = ldap.ldap_url();
    cfg.tls = TlsMode::Starttls;
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_tls", "{e}");
    assert!(e.to_string().contains("not trusted"), "{e}");
}

#[tokio::test]
async fn the_system_roots_do_not_trust_a_test_ca() {
    let ldap = slapd();
    let mut cfg = openldap_config(&ldap);
    cfg.url = ldap.ldaps_url();
    cfg.tls = TlsMode::Ldaps;
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_tls", "{e}");
    assert!(e.to_string().contains("set ca_file"), "{e}");
}

#[tokio::test]
async fn tls_to_a_plain_port_fails_as_tls() {
    let ldap = slapd();
    let mut cfg = openldap_config(&ldap);
    cfg.url = format!("ldaps://127.0.0.1:{}", ldap.ldap_port());
    cfg.tls = TlsMode::Ldaps;
    cfg.ca_file = Some(ldap.ca_pem_path());
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_tls", "{e}");
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_a_config_error() {
    let ldap = slapd();
    let mut cfg = openldap_config(&ldap);
    cfg.tls = TlsMode::Starttls;
    let not_pem = ldap.dir().join("slapd.conf");
    cfg.ca_file = Some(not_pem.clone());
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_config", "{e}");
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
}

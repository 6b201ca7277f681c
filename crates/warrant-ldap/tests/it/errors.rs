//! Failures name what was tried and carry a stable code; the bind password never appears.

use warrant_core::Secret;
use warrant_ldap::LdapError;

use crate::common::*;

#[tokio::test]
async fn a_wrong_password_is_a_bind_error_without_the_password() {
    let ldap = slapd();
    let password = "Wr0ng-canary-pa55word";
    let cfg = openldap_config(&ldap).with_bind(ldap.admin_dn(), Secret::new(password.to_owned()));
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_bind");
    let msg = e.to_string();
    assert!(
        msg.contains("invalid credentials for bind DN cn=admin,dc=warrant,dc=test"),
        "{msg}"
    );
    assert!(!msg.contains(password), "{msg}");
    assert!(!format!("{e:?}").contains(password));
    assert!(!format!("{cfg:?}").contains(password));
    assert!(matches!(e, LdapError::Bind { ref bind_dn, .. } if bind_dn == ldap.admin_dn()));
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error_naming_the_address() {
    let port = warrant_testkit::try_free_port().unwrap();
    let cfg = warrant_ldap::LdapConfig::with_preset(
        warrant_ldap::Preset::Openldap,
        format!("ldap://127.0.0.1:{port}"),
        "dc=warrant,dc=test",
    );
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_connect", "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn a_missing_base_is_a_search_error_naming_base_and_filter() {
    let ldap = slapd();
    let mut cfg = openldap_config(&ldap);
    cfg.user_base_dn = Some(format!("ou=nowhere,{}", ldap.base_dn()));
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_search", "{e}");
    let msg = e.to_string();
    assert!(msg.contains("ou=nowhere,dc=warrant,dc=test"), "{msg}");
    assert!(msg.contains("(objectClass=inetOrgPerson)"), "{msg}");
    assert!(msg.contains("noSuchObject"), "{msg}");
}

#[tokio::test]
async fn a_bad_filter_is_a_config_error_before_connecting() {
    // No server at all: validation refuses the filter first.
    let mut cfg = warrant_ldap::LdapConfig::with_preset(
        warrant_ldap::Preset::Openldap,
        "ldap://127.0.0.1:1",
        "dc=warrant,dc=test",
    );
    cfg.group_filter = "(&(objectClass=groupOfNames)".into();
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_config", "{e}");
    assert!(e.to_string().contains("group_filter"), "{e}");
}

#[tokio::test]
async fn starttls_with_an_ldaps_url_is_a_config_error() {
    let mut cfg = warrant_ldap::LdapConfig::with_preset(
        warrant_ldap::Preset::Openldap,
        "ldaps://127.0.0.1:1",
        "dc=warrant,dc=test",
    );
    cfg.tls = warrant_ldap::TlsMode::Starttls;
    let e = fetch_err(&cfg).await;
    assert_eq!(e.code(), "ldap_config", "{e}");
}

//! Paged search: the fixture gives non-root users at most 100 entries per search (like AD's
//! MaxPageSize), so reading 250 users only works page by page.

use std::collections::HashSet;

use ldap3::{LdapConnAsync, Scope};
use warrant_core::Secret;

use crate::common::*;

const USERS: usize = 250;
const READER: &str = "cn=reader,dc=warrant,dc=test";
const READER_PASSWORD: &str = "reader-secret";

fn load_many(ldap: &warrant_testkit::SlapdFixture) {
    let p = ldap.people_dn();
    let mut ldif = format!(
        "dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: reader\nuserPassword: {READER_PASSWORD}\n\n"
    );
    for i in 0..USERS {
        ldif += &format!(
            "dn: uid=u{i:03},{p}\nobjectClass: inetOrgPerson\nuid: u{i:03}\ncn: User {i}\nsn: U\n\n"
        );
    }
    ldif += &format!(
        "dn: cn=everyone,{}\nobjectClass: groupOfNames\ncn: everyone\n",
        ldap.groups_dn()
    );
    for i in 0..USERS {
        ldif += &format!("member: uid=u{i:03},{p}\n");
    }
    ldap.add_ldif(&ldif).unwrap();
}

#[tokio::test]
async fn pages_smaller_than_the_directory_return_every_user() {
    let ldap = slapd();
    load_many(&ldap);
    assert!(USERS > ldap.size_limit() as usize);

    // Unpaged, the reader hits the size limit: paging is what makes the fetch below work.
    let (conn, mut raw) = LdapConnAsync::new(&ldap.ldap_url()).await.unwrap();
    ldap3::drive!(conn);
    raw.simple_bind(READER, READER_PASSWORD)
        .await
        .unwrap()
        .success()
        .unwrap();
    let unpaged = raw
        .search(
            ldap.people_dn(),
            Scope::Subtree,
            "(objectClass=inetOrgPerson)",
            vec!["uid"],
        )
        .await
        .unwrap();
    assert_eq!(
        unpaged.1.rc, 4,
        "expected sizeLimitExceeded: {:?}",
        unpaged.1
    );

    let mut cfg = openldap_config(&ldap).with_bind(READER, Secret::new(READER_PASSWORD.into()));
    cfg.page_size = 50;
    let snapshot = fetch(&cfg).await;
    assert_eq!(snapshot.users.len(), USERS);
    let distinct: HashSet<&str> = snapshot.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(distinct.len(), USERS);
    assert_eq!(members(&snapshot, "everyone").len(), USERS);
    assert!(snapshot.skipped.is_empty(), "{:?}", snapshot.skipped);

    // One page larger than the directory works too.
    cfg.page_size = 1000;
    assert_eq!(fetch(&cfg).await.users.len(), USERS);
}

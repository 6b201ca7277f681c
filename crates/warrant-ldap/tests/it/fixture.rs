//! The slapd fixture itself: it starts, loads LDIF, maintains memberOf and cleans up.

use warrant_testkit::SlapdFixture;

#[test]
fn fixture_starts_loads_ldif_and_cleans_up() {
    let ldap = SlapdFixture::start().unwrap();
    let people = ldap.people_dn().to_owned();
    let groups = ldap.groups_dn().to_owned();
    ldap.add_ldif(&format!(
        "dn: uid=alice,{people}\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\n\n\
         dn: cn=dba,{groups}\nobjectClass: groupOfNames\ncn: dba\nmember: uid=alice,{people}\n"
    ))
    .unwrap();
    let out = ldap
        .search(&people, "(uid=alice)", &["memberOf", "entryUUID"])
        .unwrap();
    assert!(out.contains(&format!("memberOf: cn=dba,{groups}")), "{out}");
    assert!(out.contains("entryUUID: "), "{out}");

    ldap.modify_ldif(&format!(
        "dn: uid=alice,{people}\nchangetype: modify\nreplace: cn\ncn: Alice A.\n"
    ))
    .unwrap();
    ldap.delete(&format!("cn=dba,{groups}")).unwrap();
    let out = ldap
        .search(&people, "(uid=alice)", &["cn", "memberOf"])
        .unwrap();
    assert!(out.contains("cn: Alice A."), "{out}");
    assert!(!out.contains("memberOf"), "{out}");

    let err = ldap
        .add_ldif("dn: cn=x,dc=elsewhere\nobjectClass: person\ncn: x\nsn: x\n")
        .unwrap_err();
    assert!(err.to_string().contains("ldapadd failed"), "{err}");

    let dir = ldap.dir().to_owned();
    assert!(ldap.ca_pem_path().is_file());
    drop(ldap);
    assert!(!dir.exists(), "{} left behind", dir.display());
}

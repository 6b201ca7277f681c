//! The OpenLDAP shape: inetOrgPerson, groupOfNames with nesting and a cycle, managers, a disabled
//! flag by attribute, entryUUID ids, `member` and `memberOf` (the overlay) membership.

use warrant_ldap::{Disabled, Membership, Phase, Progress};

use crate::common::*;

#[tokio::test]
async fn member_mode_reads_users_groups_nesting_managers_and_skips() {
    let ldap = slapd();
    load_org(&ldap);
    let mut cfg = openldap_config(&ldap);
    cfg.disabled = Disabled::Attribute {
        name: "employeeType".into(),
        value: Some("disabled".into()),
    };
    let snapshot = fetch(&cfg).await;
    assert_org(&snapshot);
    assert!(user(&snapshot, "dave").disabled);
    assert!(!user(&snapshot, "erin").disabled);
    assert!(!user(&snapshot, "alice").disabled);

    // external_id is the entryUUID the server assigned.
    let alice = user(&snapshot, "alice");
    let ldif = ldap
        .search(ldap.people_dn(), "(uid=alice)", &["entryUUID"])
        .unwrap();
    assert!(
        ldif.contains(&format!("entryUUID: {}", alice.external_id)),
        "{ldif} vs {}",
        alice.external_id
    );
    assert_eq!(alice.dn, format!("uid=alice,{}", ldap.people_dn()));
    let dba = group(&snapshot, "dba");
    assert_eq!(dba.external_id.len(), 36, "{}", dba.external_id);
}

#[tokio::test]
async fn member_of_mode_through_the_overlay() {
    let ldap = slapd();
    load_org(&ldap);
    // The overlay really maintains memberOf, on users and on nested groups.
    let ldif = ldap
        .search(ldap.groups_dn(), "(cn=ops)", &["memberOf"])
        .unwrap();
    assert!(ldif.contains("memberOf: cn=dba,"), "{ldif}");

    let mut cfg = openldap_config(&ldap);
    cfg.membership = Membership::MemberOf;
    let snapshot = fetch(&cfg).await;
    assert_org(&snapshot);
}

#[tokio::test]
async fn presence_of_an_attribute_can_mean_disabled() {
    let ldap = slapd();
    load_org(&ldap);
    let mut cfg = openldap_config(&ldap);
    cfg.disabled = Disabled::Attribute {
        name: "employeeType".into(),
        value: None,
    };
    let snapshot = fetch(&cfg).await;
    let disabled: Vec<&str> = snapshot
        .users
        .iter()
        .filter(|u| u.disabled)
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(disabled, ["dave", "erin"]);
}

#[tokio::test]
async fn progress_is_reported_per_entry_and_phase() {
    let ldap = slapd();
    load_org(&ldap);
    let cfg = openldap_config(&ldap);
    let mut seen: Vec<Progress> = Vec::new();
    let snapshot = warrant_ldap::fetch_with_progress(&cfg, |p| seen.push(p))
        .await
        .unwrap();
    let users: Vec<u64> = seen
        .iter()
        .filter(|p| p.phase == Phase::Users)
        .map(|p| p.entries)
        .collect();
    let groups: Vec<u64> = seen
        .iter()
        .filter(|p| p.phase == Phase::Groups)
        .map(|p| p.entries)
        .collect();
    // Six user entries (one skipped later), four groups; users first.
    assert_eq!(users, [1, 2, 3, 4, 5, 6]);
    assert_eq!(groups, [1, 2, 3, 4]);
    assert_eq!(seen[0].phase, Phase::Users);
    assert_eq!(snapshot.users.len() + snapshot.skipped.len(), 6);
}

#[tokio::test]
async fn separate_bases_and_anonymous_bind() {
    let ldap = slapd();
    load_org(&ldap);
    // An entry outside the user base is not a user.
    ldap.add_ldif(&format!(
        "dn: ou=elsewhere,{b}\nobjectClass: organizationalUnit\nou: elsewhere\n\n\
         dn: uid=zed,ou=elsewhere,{b}\nobjectClass: inetOrgPerson\nuid: zed\ncn: Zed\nsn: Z\n",
        b = ldap.base_dn()
    ))
    .unwrap();
    let mut cfg = openldap_config(&ldap);
    cfg.bind_dn = None;
    cfg.bind_password = None;
    cfg.user_base_dn = Some(ldap.people_dn().to_owned());
    cfg.group_base_dn = Some(ldap.groups_dn().to_owned());
    let snapshot = fetch(&cfg).await;
    assert_org(&snapshot);

    cfg.user_base_dn = None;
    let snapshot = fetch(&cfg).await;
    assert!(names(&snapshot).contains(&"zed"));
}

//! The test organisation and the helpers every test goes through.

use warrant_core::Secret;
use warrant_ldap::{LdapConfig, LdapError, LdapGroup, LdapUser, Preset, Snapshot};
use warrant_testkit::SlapdFixture;

/// A fresh slapd; panics with the fixture's message (which names the packages to install).
pub fn slapd() -> SlapdFixture {
    SlapdFixture::start().unwrap_or_else(|e| panic!("{e}"))
}

/// The OpenLDAP preset over plain LDAP, bound as the root DN.
pub fn openldap_config(ldap: &SlapdFixture) -> LdapConfig {
    LdapConfig::with_preset(Preset::Openldap, ldap.ldap_url(), ldap.base_dn()).with_bind(
        ldap.admin_dn(),
        Secret::new(ldap.admin_password().to_owned()),
    )
}

pub async fn fetch(cfg: &LdapConfig) -> Snapshot {
    warrant_ldap::fetch(cfg)
        .await
        .unwrap_or_else(|e| panic!("fetch failed [{}]: {e}", e.code()))
}

pub async fn fetch_err(cfg: &LdapConfig) -> LdapError {
    match warrant_ldap::fetch(cfg).await {
        Ok(snapshot) => panic!("fetch succeeded: {snapshot:?}"),
        Err(e) => e,
    }
}

pub fn user<'a>(snapshot: &'a Snapshot, name: &str) -> &'a LdapUser {
    snapshot
        .users
        .iter()
        .find(|u| u.name == name)
        .unwrap_or_else(|| panic!("no user {name} in {:?}", names(snapshot)))
}

pub fn group<'a>(snapshot: &'a Snapshot, name: &str) -> &'a LdapGroup {
    snapshot
        .groups
        .iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no group {name} in {:?}", snapshot.groups))
}

pub fn members(snapshot: &Snapshot, name: &str) -> Vec<String> {
    group(snapshot, name).members.iter().cloned().collect()
}

pub fn names(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.users.iter().map(|u| u.name.as_str()).collect()
}

/// An OpenLDAP-shaped organisation under `people_dn` / `groups_dn`:
///
/// * alice (manager bob), bob (manager outside the directory), carol, dave (employeeType
///   disabled), erin; "No Name" has no uid.
/// * dba = alice + ops; ops = bob + oncall; oncall = carol + ops (a cycle); auditors = erin.
pub fn load_org(ldap: &SlapdFixture) {
    let p = ldap.people_dn();
    let g = ldap.groups_dn();
    let person = |uid: &str, extra: &str| {
        format!(
            "dn: uid={uid},{p}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Example\n\
             sn: Example\nmail: {uid}@example.com\n{extra}\n"
        )
    };
    let mut ldif = String::new();
    ldif += &person(
        "bob",
        "manager: uid=ghost,ou=elsewhere,dc=warrant,dc=test\n",
    );
    ldif += &person(
        "alice",
        &format!("manager: UID=Bob, OU=People, {}\n", ldap.base_dn()),
    );
    ldif += &person("carol", "");
    ldif += &person("dave", "employeeType: disabled\n");
    ldif += &person("erin", "employeeType: staff\n");
    ldif += &format!("dn: cn=No Name,{p}\nobjectClass: inetOrgPerson\ncn: No Name\nsn: Name\n\n");
    // groupOfNames needs a member to exist: create ops and oncall with their users first, then
    // close the cycle.
    ldif += &format!(
        "dn: cn=oncall,{g}\nobjectClass: groupOfNames\ncn: oncall\nmember: uid=carol,{p}\n\n\
         dn: cn=ops,{g}\nobjectClass: groupOfNames\ncn: ops\nmember: uid=bob,{p}\n\
         member: cn=oncall,{g}\n\n\
         dn: cn=dba,{g}\nobjectClass: groupOfNames\ncn: dba\nmember: uid=alice,{p}\n\
         member: cn=ops,{g}\n\n\
         dn: cn=auditors,{g}\nobjectClass: groupOfNames\ncn: auditors\nmember: uid=erin,{p}\n"
    );
    ldap.add_ldif(&ldif).unwrap();
    ldap.modify_ldif(&format!(
        "dn: cn=oncall,{g}\nchangetype: modify\nadd: member\nmember: cn=ops,{g}\n"
    ))
    .unwrap();
}

/// What [`load_org`] must read back as, whichever way membership is read.
pub fn assert_org(snapshot: &Snapshot) {
    assert_eq!(names(snapshot), ["alice", "bob", "carol", "dave", "erin"]);
    assert_eq!(members(snapshot, "dba"), ["alice", "bob", "carol"]);
    assert_eq!(members(snapshot, "ops"), ["bob", "carol"]);
    assert_eq!(members(snapshot, "oncall"), ["bob", "carol"]);
    assert_eq!(members(snapshot, "auditors"), ["erin"]);
    assert_eq!(snapshot.groups.len(), 4);
    assert_eq!(user(snapshot, "alice").manager.as_deref(), Some("bob"));
    assert_eq!(user(snapshot, "bob").manager, None);
    assert_eq!(user(snapshot, "carol").display_name, "carol Example");
    assert_eq!(
        user(snapshot, "carol").email.as_deref(),
        Some("carol@example.com")
    );
    let skipped: Vec<String> = snapshot.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        skipped,
        ["user cn=No Name,ou=people,dc=warrant,dc=test skipped: no uid (the name attribute)"]
    );
}

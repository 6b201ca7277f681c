//! An Active Directory layout on slapd, through the fixture's test-only imitation of AD's
//! attributes: `user`/`group` classes, `objectCategory`, `sAMAccountName`, `userAccountControl`
//! and binary `objectGUID`s, read with the `active_directory` preset.

use warrant_ldap::{Membership, Preset, SkipReason};

use crate::common::*;

/// Base64 of 16 GUID bytes.
fn b64(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Binary GUID bytes (not UTF-8) and its canonical string.
const ALICE_GUID: [u8; 16] = [
    0x35, 0x9e, 0x8b, 0x5a, 0x0c, 0x3b, 0x4d, 0x42, 0x9a, 0x12, 0x00, 0xc0, 0x4f, 0xd9, 0x30, 0xc9,
];
const ALICE_ID: &str = "5a8b9e35-3b0c-424d-9a12-00c04fd930c9";
/// GUID bytes that happen to be valid UTF-8 (ldap3 hands those over as text).
const BOB_GUID: [u8; 16] = *b"ABCDEFGHIJKLMNOP";
const BOB_ID: &str = "44434241-4645-4847-494a-4b4c4d4e4f50";

fn load_ad(ldap: &warrant_testkit::SlapdFixture) {
    let p = ldap.people_dn();
    let g = ldap.groups_dn();
    let ad_user = |cn: &str, sam: Option<&str>, uac: u32, guid: &[u8; 16], extra: &str| {
        let sam = sam.map_or(String::new(), |s| format!("sAMAccountName: {s}\n"));
        format!(
            "dn: CN={cn},{p}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: {cn}\nsn: X\n\
             displayName: {cn}\n{sam}userAccountControl: {uac}\nobjectCategory: person\n\
             objectGUID:: {}\n{extra}\n",
            b64(guid)
        )
    };
    let mut ldif = String::new();
    ldif += &ad_user(
        "Bob Boss",
        Some("bboss"),
        512,
        &BOB_GUID,
        "mail: bob@corp.example\n",
    );
    ldif += &ad_user(
        "Alice Admin",
        Some("aadmin"),
        512,
        &ALICE_GUID,
        &format!("manager: CN=Bob Boss,{p}\n"),
    );
    // 514 = NORMAL_ACCOUNT | ACCOUNTDISABLE; 66050 adds DONT_EXPIRE_PASSWORD.
    ldif += &ad_user("Dan Departed", Some("ddeparted"), 514, &[3; 16], "");
    ldif += &ad_user("Nora Noexpiry", Some("nnoexpiry"), 66050, &[4; 16], "");
    ldif += &ad_user("Sam Nosam", None, 512, &[5; 16], "");
    // A computer account: objectCategory is not person, so the preset's filter leaves it out.
    ldif += &format!(
        "dn: CN=WS01,{p}\nobjectClass: inetOrgPerson\nobjectClass: user\ncn: WS01\nsn: WS01\n\
         sAMAccountName: WS01$\nuserAccountControl: 4096\nobjectCategory: computer\n\
         objectGUID:: {}\n\n",
        b64(&[6; 16])
    );
    ldif += &format!(
        "dn: CN=Helpdesk,{g}\nobjectClass: groupOfNames\nobjectClass: group\ncn: Helpdesk\n\
         objectGUID:: {}\nmember: CN=Bob Boss,{p}\n\n\
         dn: CN=Domain Admins,{g}\nobjectClass: groupOfNames\nobjectClass: group\n\
         cn: Domain Admins\nobjectGUID:: {}\nmember: CN=Alice Admin,{p}\n\
         member: CN=Helpdesk,{g}\nmember: CN=Dan Departed,{p}\n\n",
        b64(&[7; 16]),
        b64(&[8; 16])
    );
    ldap.add_ldif(&ldif).unwrap();
}

#[tokio::test]
async fn active_directory_preset_on_an_ad_shaped_directory() {
    let ldap = slapd();
    load_ad(&ldap);
    let mut cfg = openldap_config(&ldap);
    let bind = (cfg.bind_dn.take(), cfg.bind_password.take());
    cfg = warrant_ldap::LdapConfig::with_preset(
        Preset::ActiveDirectory,
        ldap.ldap_url(),
        ldap.base_dn(),
    );
    (cfg.bind_dn, cfg.bind_password) = bind;

    for membership in [Membership::Member, Membership::MemberOf] {
        cfg.membership = membership;
        let snapshot = fetch(&cfg).await;
        assert_eq!(
            names(&snapshot),
            ["aadmin", "bboss", "ddeparted", "nnoexpiry"],
            "{membership:?}"
        );
        let alice = user(&snapshot, "aadmin");
        assert_eq!(alice.external_id, ALICE_ID);
        assert_eq!(alice.display_name, "Alice Admin");
        assert_eq!(alice.manager.as_deref(), Some("bboss"));
        assert!(!alice.disabled);
        let bob = user(&snapshot, "bboss");
        assert_eq!(bob.external_id, BOB_ID);
        assert_eq!(bob.email.as_deref(), Some("bob@corp.example"));
        assert!(user(&snapshot, "ddeparted").disabled);
        assert!(user(&snapshot, "nnoexpiry").disabled);

        assert_eq!(
            members(&snapshot, "Domain Admins"),
            ["aadmin", "bboss", "ddeparted"],
            "{membership:?}"
        );
        assert_eq!(members(&snapshot, "Helpdesk"), ["bboss"]);
        assert_eq!(
            group(&snapshot, "Helpdesk").external_id,
            "07070707-0707-0707-0707-070707070707"
        );

        assert_eq!(snapshot.skipped.len(), 1, "{:?}", snapshot.skipped);
        let skipped = &snapshot.skipped[0];
        assert_eq!(
            warrant_ldap::normalize_dn(&skipped.dn),
            warrant_ldap::normalize_dn(&format!("CN=Sam Nosam,{}", ldap.people_dn()))
        );
        assert_eq!(
            skipped.reason,
            SkipReason::MissingName {
                attribute: "sAMAccountName".into()
            }
        );
    }
}

//! The LDAP sync against a real slapd (`SlapdFixture`) read by `warrant_ldap::fetch`, on both
//! backends: creation with source `ldap`, eligibility through LDAP groups (nested included),
//! leavers (disabled in the directory, or missing past the grace period), movers, the removal
//! safety valve, conflicts with local names, source ownership, dry runs and the audit trail.

use serde_json::Value;
use warrant_core::{GrantStatus, IdentityStatus, Name, Secret, Source, SystemRole};
use warrant_engine::sync::{LdapSyncSettings, SyncReport};
use warrant_engine::{Actor, ErrorKind, IdentityUpdate, Scope};
use warrant_ldap::{Disabled, LdapConfig, Preset};
use warrant_testkit::SlapdFixture;

use crate::conformance;
use crate::harness::Env;

/// An OpenLDAP directory:
///
/// * lena (manager olga), lars, mia, olga; alice, whose name a local identity of the demo
///   organisation holds; "bad name", which is no valid Warrant name.
/// * "Platform Team" = lena + "DB Oncall" (nested); "DB Oncall" = lars; readers = mia + alice;
///   ops, whose name a local group holds.
struct Directory {
    ldap: SlapdFixture,
    cfg: LdapConfig,
}

impl Directory {
    fn start() -> Self {
        let ldap = SlapdFixture::start().unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = LdapConfig::with_preset(Preset::Openldap, ldap.ldap_url(), ldap.base_dn())
            .with_bind(
                ldap.admin_dn(),
                Secret::new(ldap.admin_password().to_owned()),
            );
        cfg.disabled = Disabled::Attribute {
            name: "employeeType".into(),
            value: Some("disabled".into()),
        };
        let d = Self { ldap, cfg };
        let mut ldif = String::new();
        ldif += &d.person("olga", "");
        ldif += &d.person("lena", &format!("manager: {}\n", d.user_dn("olga")));
        ldif += &d.person("lars", "");
        ldif += &d.person("mia", "");
        ldif += &d.person("alice", "");
        ldif += &d.person("bad name", "");
        let g = |cn: &str, members: &[String]| {
            let mut s = format!(
                "dn: cn={cn},{}\nobjectClass: groupOfNames\ncn: {cn}\n",
                d.ldap.groups_dn()
            );
            for m in members {
                s += &format!("member: {m}\n");
            }
            s + "\n"
        };
        ldif += &g("DB Oncall", &[d.user_dn("lars")]);
        ldif += &g(
            "Platform Team",
            &[d.user_dn("lena"), d.group_dn("DB Oncall")],
        );
        ldif += &g("readers", &[d.user_dn("mia"), d.user_dn("alice")]);
        ldif += &g("ops", &[d.user_dn("lena")]);
        d.ldap.add_ldif(&ldif).unwrap();
        d
    }

    fn user_dn(&self, uid: &str) -> String {
        format!("uid={uid},{}", self.ldap.people_dn())
    }

    fn group_dn(&self, cn: &str) -> String {
        format!("cn={cn},{}", self.ldap.groups_dn())
    }

    fn person(&self, uid: &str, extra: &str) -> String {
        format!(
            "dn: {}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Example\nsn: Example\n\
             mail: {}@example.com\n{extra}\n",
            self.user_dn(uid),
            uid.replace(' ', "")
        )
    }

    fn add_user(&self, uid: &str) {
        self.ldap.add_ldif(&self.person(uid, "")).unwrap();
    }

    fn delete_user(&self, uid: &str) {
        self.ldap.delete(&self.user_dn(uid)).unwrap();
    }

    fn set_disabled(&self, uid: &str, disabled: bool) {
        let change = if disabled {
            "add: employeeType\nemployeeType: disabled\n"
        } else {
            "delete: employeeType\n"
        };
        self.ldap
            .modify_ldif(&format!(
                "dn: {}\nchangetype: modify\n{change}",
                self.user_dn(uid)
            ))
            .unwrap();
    }

    fn member(&self, group: &str, member_dn: &str, add: bool) {
        let op = if add { "add" } else { "delete" };
        self.ldap
            .modify_ldif(&format!(
                "dn: {}\nchangetype: modify\n{op}: member\nmember: {member_dn}\n",
                self.group_dn(group)
            ))
            .unwrap();
    }
}

fn sync_actor() -> Actor {
    Actor::internal(Name::new("ldap-sync").unwrap(), SystemRole::Admin).through(Source::Ldap)
}

async fn try_sync(
    env: &Env,
    dir: &Directory,
    settings: &LdapSyncSettings,
    dry_run: bool,
    force: bool,
) -> warrant_engine::Result<SyncReport> {
    let snap = warrant_ldap::fetch(&dir.cfg)
        .await
        .unwrap_or_else(|e| panic!("fetch failed [{}]: {e}", e.code()));
    env.engine
        .apply_ldap_snapshot(&sync_actor(), &snap, settings, dry_run, force)
        .await
}

async fn sync(env: &Env, dir: &Directory) -> SyncReport {
    try_sync(env, dir, &LdapSyncSettings::default(), false, false)
        .await
        .unwrap()
}

/// What a run reports when the directory has not changed: only the standing conflicts and the
/// skipped entry.
fn quiet(r: &SyncReport) -> SyncReport {
    SyncReport {
        skipped: r.skipped.clone(),
        conflicts: r.conflicts.clone(),
        ..SyncReport::default()
    }
}

/// Eligibility through the LDAP group (nested members included) and for mia by name.
async fn apply_rules(env: &Env) {
    let org = warrant_engine::org::parse(
        "eligibility:\n\
         \x20 - group: platform-team\n    target: pg-prod\n    role: readonly\n    max_duration: 8h\n\
         \x20 - identity: mia\n    target: pg-prod\n    role: readonly\n    max_duration: 8h\n",
    )
    .unwrap();
    env.engine.apply(&env.admin, org, false).await.unwrap();
}

/// An active grant of pg-prod/readonly for `who`, at once (the rule has no approval stage).
async fn grant(env: &Env, who: &str) -> String {
    let v = env
        .request(who, "pg-prod", "readonly", "30m", None)
        .await
        .unwrap();
    let g = v.grant.expect("no approval needed");
    assert_eq!(g.status_at(env.engine.now()), GrantStatus::Active);
    g.id
}

async fn grant_status(env: &Env, id: &str) -> GrantStatus {
    let g = env.engine.grant(&env.admin, id).await.unwrap();
    g.status_at(env.engine.now())
}

async fn status(env: &Env, who: &str) -> IdentityStatus {
    env.engine.identity(&env.admin, who).await.unwrap().0.status
}

async fn groups_of(env: &Env, who: &str) -> Vec<String> {
    let (_, groups) = env.engine.identity(&env.admin, who).await.unwrap();
    groups.iter().map(ToString::to_string).collect()
}

/// Audit records after `after` as (kind, data).
async fn records_after(env: &Env, after: i64) -> Vec<(String, Value)> {
    env.engine
        .audit_records(&env.admin, after, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, serde_json::from_str(&r.data).unwrap()))
        .collect()
}

async fn last_seq(env: &Env) -> i64 {
    let recs = env
        .engine
        .audit_records(&env.admin, 0, 100_000)
        .await
        .unwrap();
    recs.last().map_or(0, |r| r.seq)
}

async fn chain_intact(env: &Env) {
    let v = warrant_engine::verify_store(env.engine.store())
        .await
        .unwrap();
    assert!(v.intact, "{v:?}");
}

conformance!(
    first_sync_mirrors_the_directory_and_grants_through_ldap_groups,
    |env| {
        let dir = Directory::start();
        let before = last_seq(&env).await;
        let r = sync(&env, &dir).await;
        assert_eq!(
            (r.created, r.groups_created, r.members_added),
            (4, 3, 4),
            "{r:#?}"
        );
        assert_eq!((r.updated, r.disabled, r.marked_missing), (0, 0, 0));
        assert!(!r.dry_run);
        assert!(
            r.skipped.iter().any(|s| s.contains("uid=bad name,")),
            "{:?}",
            r.skipped
        );
        assert_eq!(r.conflicts.len(), 2, "{:?}", r.conflicts);
        assert!(r.conflicts[0].starts_with("user alice: the name belongs to a local identity"));
        assert!(r.conflicts[1].starts_with("group ops: the name belongs to a local group"));

        // Identities with their source, the entry's id, attributes and manager.
        let (lena, lena_groups) = env.engine.identity(&env.admin, "lena").await.unwrap();
        assert_eq!(lena.source, Source::Ldap);
        assert_eq!(lena.external_id.as_deref().map(str::len), Some(36));
        assert_eq!(lena.display_name, "lena Example");
        assert_eq!(lena.email, "lena@example.com");
        assert_eq!(lena.manager.as_ref().map(Name::as_str), Some("olga"));
        assert_eq!(lena.system_role, SystemRole::User);
        assert_eq!(
            lena_groups.iter().map(Name::as_str).collect::<Vec<_>>(),
            ["platform-team"]
        );
        // Nested: lars is in Platform Team through DB Oncall.
        assert_eq!(
            groups_of(&env, "lars").await,
            ["db-oncall", "platform-team"]
        );
        let groups = env.engine.groups(&env.admin).await.unwrap();
        let team = groups
            .iter()
            .find(|g| g.group.name.as_str() == "platform-team")
            .unwrap();
        assert_eq!(team.group.description, "Platform Team");
        assert_eq!(team.group.source, Source::Ldap);
        assert!(team.group.external_id.is_some());

        // The local alice and the local ops group are untouched.
        let (alice, _) = env.engine.identity(&env.admin, "alice").await.unwrap();
        assert_eq!(
            (alice.source, alice.display_name.as_str()),
            (Source::Local, "Alice (DBA)")
        );
        assert_eq!(groups_of(&env, "alice").await, ["dba"]);
        let ops = groups
            .iter()
            .find(|g| g.group.name.as_str() == "ops")
            .unwrap();
        assert_eq!(ops.group.source, Source::Local);
        assert!(!ops.members.iter().any(|m| m.as_str() == "lena"));

        // Every directory change is audited through the ldap channel, then the run's counts.
        let recs = records_after(&env, before).await;
        let directory: Vec<&(String, Value)> = recs
            .iter()
            .filter(|(k, _)| k.starts_with("identity.") || k.starts_with("group."))
            .collect();
        assert_eq!(directory.len(), 4 + 1 + 3 + 4, "{recs:?}"); // created, olga as manager, groups, members
        for (kind, data) in &directory {
            assert_eq!(data["via"], "ldap", "{kind}: {data}");
        }
        let (kind, done) = recs.last().unwrap();
        assert_eq!(kind, "sync.completed");
        assert_eq!(
            (done["created"].as_u64(), done["members_added"].as_u64()),
            (Some(4), Some(4))
        );
        assert_eq!(
            (done["conflicts"].as_u64(), done["forced"].as_bool()),
            (Some(2), Some(false))
        );

        // Again: nothing to do, and the run is still recorded.
        let again = sync(&env, &dir).await;
        assert_eq!(again, quiet(&r));
        assert_eq!(env.count_kind("sync.completed").await, 2);

        // Group → eligibility: directly (lena) and through the nested group (lars).
        apply_rules(&env).await;
        grant(&env, "lena").await;
        grant(&env, "lars").await;
        chain_intact(&env).await;
    }
);

conformance!(
    disabled_in_the_directory_is_a_leaver_at_the_next_sync,
    |env| {
        let dir = Directory::start();
        sync(&env, &dir).await;
        apply_rules(&env).await;
        let g = grant(&env, "lena").await;
        let lena = Actor::internal(Name::new("lena").unwrap(), SystemRole::User);
        let token = env
            .engine
            .create_api_token(&lena, "automation", None, Scope::Full)
            .await
            .unwrap();
        env.engine.authenticate(token.token.expose()).await.unwrap();

        dir.set_disabled("lena", true);
        let r = sync(&env, &dir).await;
        assert_eq!((r.disabled, r.grants_revoked), (1, 1), "{r:#?}");
        assert_eq!(status(&env, "lena").await, IdentityStatus::Disabled);
        assert_eq!(grant_status(&env, &g).await, GrantStatus::Revoked);
        assert!(env.engine.authenticate(token.token.expose()).await.is_err());
        let recs = records_after(&env, 0).await;
        let (_, disabled) = recs
            .iter()
            .rfind(|(k, _)| k == "identity.disabled")
            .unwrap();
        assert_eq!(disabled["via"], "ldap");
        assert_eq!(disabled["grants_revoked"], 1);
        // Disabled, not gone: the memberships stay as the directory has them.
        assert_eq!(groups_of(&env, "lena").await, ["platform-team"]);

        // Enabled in the directory: enabled in Warrant, with nothing given back.
        dir.set_disabled("lena", false);
        let r = sync(&env, &dir).await;
        assert_eq!(r.enabled, 1, "{r:#?}");
        assert_eq!(status(&env, "lena").await, IdentityStatus::Active);
        assert_eq!(grant_status(&env, &g).await, GrantStatus::Revoked);
        chain_intact(&env).await;
    }
);

conformance!(leaving_an_ldap_group_is_a_mover, |env| {
    let dir = Directory::start();
    sync(&env, &dir).await;
    apply_rules(&env).await;
    let lena = grant(&env, "lena").await;
    let lars = grant(&env, "lars").await;

    // DB Oncall is no longer part of Platform Team: lars loses what came through it.
    dir.member("Platform Team", &dir.group_dn("DB Oncall"), false);
    let r = sync(&env, &dir).await;
    assert_eq!((r.members_removed, r.grants_revoked), (1, 1), "{r:#?}");
    assert_eq!(r.members_added, 0);
    assert_eq!(grant_status(&env, &lars).await, GrantStatus::Revoked);
    assert_eq!(grant_status(&env, &lena).await, GrantStatus::Active);
    assert_eq!(groups_of(&env, "lars").await, ["db-oncall"]);
    assert_eq!(status(&env, "lars").await, IdentityStatus::Active);
    let recs = records_after(&env, 0).await;
    let (_, removed) = recs
        .iter()
        .rfind(|(k, _)| k == "group.member_removed")
        .unwrap();
    assert_eq!(
        (
            &removed["via"],
            &removed["identity"],
            &removed["grants_revoked"]
        ),
        (&Value::from("ldap"), &Value::from("lars"), &Value::from(1))
    );
    chain_intact(&env).await;
});

conformance!(
    users_deleted_from_the_directory_leave_after_the_grace_period,
    |env| {
        let dir = Directory::start();
        sync(&env, &dir).await;
        apply_rules(&env).await;
        let g = grant(&env, "mia").await;
        let old_id = env
            .engine
            .identity(&env.admin, "mia")
            .await
            .unwrap()
            .0
            .external_id;

        dir.delete_user("mia");
        let r = sync(&env, &dir).await;
        assert_eq!((r.marked_missing, r.disabled_after_grace), (1, 0), "{r:#?}");
        // Missing is not gone: still active, grant and memberships kept through the grace period.
        assert_eq!(status(&env, "mia").await, IdentityStatus::Active);
        assert_eq!(grant_status(&env, &g).await, GrantStatus::Active);
        assert_eq!(groups_of(&env, "mia").await, ["readers"]);
        assert_eq!(r.members_removed, 0);

        env.clock.advance_secs(71 * 3600 + 1800);
        env.engine.tick().await.unwrap();
        let r = sync(&env, &dir).await;
        assert_eq!((r.marked_missing, r.disabled_after_grace), (0, 0), "{r:#?}");
        assert_eq!(status(&env, "mia").await, IdentityStatus::Active);

        // The first grant has ended; a fresh one, still running when the grace period is over.
        let g = grant(&env, "mia").await;
        env.clock.advance_secs(1800);
        let r = sync(&env, &dir).await;
        assert_eq!((r.disabled_after_grace, r.grants_revoked), (1, 1), "{r:#?}");
        assert_eq!(status(&env, "mia").await, IdentityStatus::Disabled);
        assert_eq!(grant_status(&env, &g).await, GrantStatus::Revoked);

        // A new entry of the same name is another person: it does not inherit the old
        // identity (role, rules, password, second factors). It is a conflict until an admin
        // deletes the disabled identity, which any source's leaver may be.
        dir.add_user("mia");
        dir.member("readers", &dir.user_dn("mia"), true);
        let r = sync(&env, &dir).await;
        assert_eq!(r.enabled, 0, "{r:#?}");
        assert!(
            r.conflicts
                .iter()
                .any(|c| c.contains("mia") && c.contains("former")),
            "{r:#?}"
        );
        assert_eq!(status(&env, "mia").await, IdentityStatus::Disabled);
        env.engine.delete_identity(&env.admin, "mia").await.unwrap();
        let r = sync(&env, &dir).await;
        assert_eq!(r.created, 1, "{r:#?}");
        let (mia, groups) = env.engine.identity(&env.admin, "mia").await.unwrap();
        assert_eq!(mia.status, IdentityStatus::Active);
        assert_ne!(mia.external_id, old_id);
        assert_eq!(
            groups.iter().map(Name::as_str).collect::<Vec<_>>(),
            ["readers"]
        );
        // And the next run finds nothing left to do.
        let again = sync(&env, &dir).await;
        assert_eq!(again, quiet(&again));
        chain_intact(&env).await;
    }
);

conformance!(a_sync_removing_too_many_is_refused_unless_forced, |env| {
    let dir = Directory::start();
    for i in 0..12 {
        dir.add_user(&format!("bulk{i:02}"));
    }
    let r = sync(&env, &dir).await;
    assert_eq!(r.created, 16);
    for i in 0..3 {
        dir.delete_user(&format!("bulk{i:02}"));
    }
    let before = last_seq(&env).await;
    let settings = LdapSyncSettings::default();

    // A dry run says it would be refused, and records nothing.
    let e = try_sync(&env, &dir, &settings, true, false)
        .await
        .unwrap_err();
    assert_eq!(e.code, "sync_refused");
    assert_eq!(last_seq(&env).await, before);

    let e = try_sync(&env, &dir, &settings, false, false)
        .await
        .unwrap_err();
    assert_eq!((e.code, e.kind), ("sync_refused", ErrorKind::Conflict));
    assert!(
        e.message.contains("3 of the 16 active LDAP identities"),
        "{e}"
    );
    assert!(e.message.contains("--force"), "{e}");
    assert!(e.message.contains("max_removal_share"), "{e}");
    // Nothing changed but the refusal's record.
    let recs = records_after(&env, before).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (kind, data) = &recs[0];
    assert_eq!(kind, "sync.refused");
    assert_eq!(
        (data["would_remove"].as_u64(), data["active"].as_u64()),
        (Some(3), Some(16))
    );
    assert_eq!(data["via"], "ldap");

    // A dry run with force shows what it would do; then force applies it.
    let preview = try_sync(&env, &dir, &settings, true, true).await.unwrap();
    assert_eq!(preview.marked_missing, 3);
    let r = try_sync(&env, &dir, &settings, false, true).await.unwrap();
    assert_eq!(r.marked_missing, 3);
    assert_eq!(
        r,
        SyncReport {
            dry_run: false,
            ..preview
        }
    );
    let (kind, done) = records_after(&env, 0).await.pop().unwrap();
    assert_eq!(
        (kind.as_str(), done["forced"].as_bool()),
        ("sync.completed", Some(true))
    );

    // A larger share lets the same kind of run through without force.
    for i in 3..5 {
        dir.delete_user(&format!("bulk{i:02}"));
    }
    let e = try_sync(&env, &dir, &settings, false, false)
        .await
        .unwrap_err();
    assert_eq!(e.code, "sync_refused");
    let wider = LdapSyncSettings {
        max_removal_share: 0.25,
        ..settings
    };
    let r = try_sync(&env, &dir, &wider, false, false).await.unwrap();
    assert_eq!(r.marked_missing, 2);
    chain_intact(&env).await;
});

conformance!(dry_run_reports_and_changes_nothing, |env| {
    let dir = Directory::start();
    let before = last_seq(&env).await;
    let snap = warrant_ldap::fetch(&dir.cfg).await.unwrap();
    // The calling admin, whatever its channel: the changes are made through ldap.
    let settings = LdapSyncSettings::default();
    let preview = env
        .engine
        .apply_ldap_snapshot(&env.admin, &snap, &settings, true, false)
        .await
        .unwrap();
    assert!(preview.dry_run);
    assert_eq!((preview.created, preview.members_added), (4, 4));
    assert_eq!(last_seq(&env).await, before);
    assert!(env.engine.identity(&env.admin, "lena").await.is_err());

    let r = env
        .engine
        .apply_ldap_snapshot(&env.admin, &snap, &settings, false, false)
        .await
        .unwrap();
    assert_eq!(
        r,
        SyncReport {
            dry_run: false,
            ..preview
        }
    );
    let (lena, _) = env.engine.identity(&env.admin, "lena").await.unwrap();
    assert_eq!(lena.source, Source::Ldap);
    let recs = records_after(&env, before).await;
    assert!(
        recs.iter()
            .any(|(k, d)| k == "identity.created" && d["via"] == "ldap")
    );

    // Not for users.
    let e = env
        .engine
        .apply_ldap_snapshot(&env.user("lena"), &snap, &settings, true, false)
        .await
        .unwrap_err();
    assert_eq!(e.code, "forbidden");
});

conformance!(what_ldap_owns_is_refused_to_local_admins, |env| {
    let dir = Directory::start();
    sync(&env, &dir).await;
    fn code<T>(r: warrant_engine::Result<T>) -> &'static str {
        r.map(|_| ()).unwrap_err().code
    }
    let rename = IdentityUpdate {
        display_name: Some("Someone else".into()),
        ..IdentityUpdate::default()
    };
    assert_eq!(
        code(env.engine.update_identity(&env.admin, "lena", rename).await),
        "source_owned"
    );
    assert_eq!(
        code(
            env.engine
                .set_identity_status(&env.admin, "lena", IdentityStatus::Disabled)
                .await
        ),
        "source_owned"
    );
    assert_eq!(
        code(
            env.engine
                .remove_member(&env.admin, "platform-team", "lena")
                .await
        ),
        "source_owned"
    );
    assert_eq!(
        code(
            env.engine
                .add_member(&env.admin, "platform-team", "alice")
                .await
        ),
        "source_owned"
    );
    // Warrant's own authority stays local: the system role is not the directory's.
    env.engine
        .update_identity(
            &env.admin,
            "lena",
            IdentityUpdate {
                system_role: Some(SystemRole::Auditor),
                ..IdentityUpdate::default()
            },
        )
        .await
        .unwrap();
    let (lena, groups) = env.engine.identity(&env.admin, "lena").await.unwrap();
    assert_eq!(
        (lena.display_name.as_str(), lena.status),
        ("lena Example", IdentityStatus::Active)
    );
    assert_eq!(
        groups.iter().map(Name::as_str).collect::<Vec<_>>(),
        ["platform-team"]
    );
    // The next sync keeps the role it does not own.
    sync(&env, &dir).await;
    let (lena, _) = env.engine.identity(&env.admin, "lena").await.unwrap();
    assert_eq!(lena.system_role, SystemRole::Auditor);
});

conformance!(
    a_directory_larger_than_a_batch_applies_in_several_transactions,
    |env| {
        let dir = Directory::start();
        let n = warrant_engine::sync::BATCH + 100;
        let mut ldif = String::new();
        let mut group = format!(
            "dn: {}\nobjectClass: groupOfNames\ncn: everyone\n",
            dir.group_dn("everyone")
        );
        for i in 0..n {
            let uid = format!("user{i:04}");
            ldif += &dir.person(&uid, "");
            group += &format!("member: {}\n", dir.user_dn(&uid));
        }
        dir.ldap.add_ldif(&(ldif + &group)).unwrap();
        let r = sync(&env, &dir).await;
        assert_eq!(
            (r.created, r.members_added),
            (n as u64 + 4, n as u64 + 4),
            "{r:#?}"
        );
        let everyone = env
            .engine
            .groups(&env.admin)
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.group.name.as_str() == "everyone")
            .unwrap();
        assert_eq!(everyone.members.len(), n);
        assert_eq!(env.count_kind("sync.completed").await, 1);
        let again = sync(&env, &dir).await;
        assert_eq!(again, quiet(&again));
        chain_intact(&env).await;
    }
);

conformance!(
    a_sync_stripping_too_many_memberships_is_refused_unless_forced,
    |env| {
        let dir = Directory::start();
        for i in 0..12 {
            let uid = format!("m{i:02}");
            dir.add_user(&uid);
            dir.member("readers", &dir.user_dn(&uid), true);
        }
        let r = sync(&env, &dir).await;
        assert!(r.members_added >= 12, "{r:#?}");
        // The group search now finds the group without most of its members (every person still
        // exists): that is a broken search or a mass change, not routine.
        for i in 0..6 {
            dir.member("readers", &dir.user_dn(&format!("m{i:02}")), false);
        }
        let settings = LdapSyncSettings::default();
        let e = try_sync(&env, &dir, &settings, false, false)
            .await
            .unwrap_err();
        assert_eq!(e.code, "sync_refused");
        assert!(e.message.contains("memberships"), "{e}");
        assert_eq!(groups_of(&env, "m00").await, ["readers"], "nothing changed");
        let r = try_sync(&env, &dir, &settings, false, true).await.unwrap();
        assert_eq!(r.members_removed, 6, "{r:#?}");
        assert!(groups_of(&env, "m00").await.is_empty());
    }
);

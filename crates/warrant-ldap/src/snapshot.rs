//! From search result entries to a [`Snapshot`]: users and groups with stable ids, managers and
//! transitive memberships. Pure: no IO, tested without a server.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use crate::config::{Disabled, IdFormat, LdapConfig, Membership};
use crate::dn;
use crate::entry::{Entry, format_guid};

/// What the directory holds: its users and groups as Warrant sees them, and the entries that
/// could not be used (each with its reason, so nothing disappears silently).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The users, sorted by name.
    pub users: Vec<LdapUser>,
    /// The groups, sorted by name.
    pub groups: Vec<LdapGroup>,
    /// The entries matched by the user or group filter that were left out, sorted by DN.
    pub skipped: Vec<Skipped>,
}

/// A user entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUser {
    /// The entry's DN as the server wrote it.
    pub dn: String,
    /// The stable identifier: the `entryUUID` text, or the `objectGUID` as the canonical GUID
    /// string. Survives renames and moves.
    pub external_id: String,
    /// The login name (`uid` / `sAMAccountName`). Unique in the snapshot, ignoring case.
    pub name: String,
    /// The display name; the name when the entry has none.
    pub display_name: String,
    /// The e-mail address, if any.
    pub email: Option<String>,
    /// Whether the directory marks the account disabled.
    pub disabled: bool,
    /// The manager's `name`, when the manager DN is one of the users in this snapshot.
    pub manager: Option<String>,
}

/// A group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapGroup {
    /// The entry's DN as the server wrote it.
    pub dn: String,
    /// The stable identifier, as for users.
    pub external_id: String,
    /// The group's name (`cn`). Unique in the snapshot, ignoring case.
    pub name: String,
    /// The names of the users in the group, directly or through nested groups (transitively;
    /// cycles between groups are harmless). Members that are not users of this snapshot (left
    /// out by the user filter, or skipped) are not listed.
    pub members: BTreeSet<String>,
}

/// An entry that was left out of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The entry's DN.
    pub dn: String,
    /// Whether the user or the group search found it.
    pub kind: EntryKind,
    /// Why it was left out.
    pub reason: SkipReason,
}

/// Which search found an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// The user search.
    User,
    /// The group search.
    Group,
}

/// Why an entry was left out of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The name attribute (`uid`, `sAMAccountName`, `cn`) has no value.
    MissingName {
        /// The attribute.
        attribute: String,
    },
    /// The id attribute (`entryUUID`, `objectGUID`) has no value.
    MissingId {
        /// The attribute.
        attribute: String,
    },
    /// The id attribute's value cannot be read (e.g. an `objectGUID` that is not 16 bytes).
    InvalidId {
        /// The attribute.
        attribute: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Another entry of the same kind has the same name (ignoring case): all of them are left
    /// out rather than guessing which one the name belongs to.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// Whether the user is disabled cannot be told (AD: `userAccountControl` missing or not a
    /// number); the user is left out rather than assumed enabled.
    UnknownDisabledState {
        /// The attribute.
        attribute: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingName { attribute } => write!(f, "no {attribute} (the name attribute)"),
            Self::MissingId { attribute } => write!(f, "no {attribute} (the id attribute)"),
            Self::InvalidId { attribute, detail } => write!(f, "unreadable {attribute}: {detail}"),
            Self::DuplicateName { name } => {
                write!(f, "the name {name:?} belongs to more than one entry")
            }
            Self::UnknownDisabledState { attribute, detail } => {
                write!(
                    f,
                    "cannot tell whether it is disabled: {attribute} {detail}"
                )
            }
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            EntryKind::User => "user",
            EntryKind::Group => "group",
        };
        write!(f, "{kind} {} skipped: {}", self.dn, self.reason)
    }
}

/// A user with the DNs it refers to, before those are resolved.
struct UserDraft {
    user: LdapUser,
    manager_dn: Option<String>,
    member_of: Vec<String>,
}

/// A group with the DNs it refers to, before those are resolved.
struct GroupDraft {
    group: LdapGroup,
    member: Vec<String>,
    member_of: Vec<String>,
}

/// Builds the snapshot from the entries the user and group searches returned.
pub(crate) fn build(cfg: &LdapConfig, users: Vec<Entry>, groups: Vec<Entry>) -> Snapshot {
    let mut skipped = Vec::new();

    let mut user_drafts = Vec::new();
    for entry in users {
        match read_user(cfg, &entry) {
            Ok(draft) => user_drafts.push(draft),
            Err(reason) => skipped.push(Skipped {
                dn: entry.dn,
                kind: EntryKind::User,
                reason,
            }),
        }
    }
    let mut group_drafts = Vec::new();
    for entry in groups {
        match read_group(cfg, &entry) {
            Ok(draft) => group_drafts.push(draft),
            Err(reason) => skipped.push(Skipped {
                dn: entry.dn,
                kind: EntryKind::Group,
                reason,
            }),
        }
    }
    let user_drafts = drop_duplicates(user_drafts, EntryKind::User, &mut skipped, |d| {
        (&d.user.name, &d.user.dn)
    });
    let mut group_drafts = drop_duplicates(group_drafts, EntryKind::Group, &mut skipped, |d| {
        (&d.group.name, &d.group.dn)
    });

    let user_by_dn: HashMap<String, usize> = user_drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (dn::normalize(&d.user.dn), i))
        .collect();
    let group_by_dn: HashMap<String, usize> = group_drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (dn::normalize(&d.group.dn), i))
        .collect();
    let resolve = |dns: &[String], index: &HashMap<String, usize>| -> Vec<usize> {
        dns.iter()
            .filter_map(|d| index.get(&dn::normalize(d)).copied())
            .collect()
    };

    match cfg.membership {
        Membership::Member => {
            // Direct user members and nested groups of each group, then every group's users
            // are those of all groups reachable from it.
            let direct: Vec<Vec<usize>> = group_drafts
                .iter()
                .map(|g| resolve(&g.member, &user_by_dn))
                .collect();
            let nested: Vec<Vec<usize>> = group_drafts
                .iter()
                .map(|g| resolve(&g.member, &group_by_dn))
                .collect();
            for (g, draft) in group_drafts.iter_mut().enumerate() {
                for reached in reachable(g, &nested) {
                    for &u in &direct[reached] {
                        draft.group.members.insert(user_drafts[u].user.name.clone());
                    }
                }
            }
        }
        Membership::MemberOf => {
            // A user is in each group of their memberOf and in every group those are
            // (transitively) members of.
            let parents: Vec<Vec<usize>> = group_drafts
                .iter()
                .map(|g| resolve(&g.member_of, &group_by_dn))
                .collect();
            let mut ancestors: HashMap<usize, Vec<usize>> = HashMap::new();
            for draft in &user_drafts {
                for g in resolve(&draft.member_of, &group_by_dn) {
                    let all = ancestors.entry(g).or_insert_with(|| reachable(g, &parents));
                    for &ancestor in all.iter() {
                        group_drafts[ancestor]
                            .group
                            .members
                            .insert(draft.user.name.clone());
                    }
                }
            }
        }
    }

    let manager_names: Vec<Option<String>> = user_drafts
        .iter()
        .map(|d| {
            let m = d.manager_dn.as_ref()?;
            let &i = user_by_dn.get(&dn::normalize(m))?;
            Some(user_drafts[i].user.name.clone())
        })
        .collect();
    let mut users: Vec<LdapUser> = user_drafts
        .into_iter()
        .zip(manager_names)
        .map(|(d, manager)| LdapUser { manager, ..d.user })
        .collect();
    users.sort_by(|x, y| x.name.cmp(&y.name));
    let mut groups: Vec<LdapGroup> = group_drafts.into_iter().map(|d| d.group).collect();
    groups.sort_by(|x, y| x.name.cmp(&y.name));
    skipped.sort_by(|x, y| (x.kind, &x.dn).cmp(&(y.kind, &y.dn)));
    if !skipped.is_empty() {
        tracing::warn!(
            count = skipped.len(),
            first = %skipped[0],
            "LDAP entries skipped"
        );
    }
    Snapshot {
        users,
        groups,
        skipped,
    }
}

/// The nodes reachable from `start` along `edges`, `start` included; each once, so cycles end.
fn reachable(start: usize, edges: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = HashSet::from([start]);
    let mut order = vec![start];
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &next in &edges[node] {
            if seen.insert(next) {
                order.push(next);
                queue.push_back(next);
            }
        }
    }
    order
}

/// Leaves out every entry whose name (ignoring case) another entry also has.
fn drop_duplicates<T>(
    drafts: Vec<T>,
    kind: EntryKind,
    skipped: &mut Vec<Skipped>,
    key: impl Fn(&T) -> (&String, &String),
) -> Vec<T> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for d in &drafts {
        *count.entry(key(d).0.to_lowercase()).or_default() += 1;
    }
    let mut kept = Vec::with_capacity(drafts.len());
    for d in drafts {
        let (name, dn) = key(&d);
        if count.get(&name.to_lowercase()).copied().unwrap_or(0) > 1 {
            skipped.push(Skipped {
                dn: dn.clone(),
                kind,
                reason: SkipReason::DuplicateName { name: name.clone() },
            });
        } else {
            kept.push(d);
        }
    }
    kept
}

/// The entry's name: the RDN's value when the name attribute is the RDN's (an entry may carry
/// several `uid`s, the RDN says which is canonical), else its first value.
fn entry_name(entry: &Entry, attribute: &str) -> Option<String> {
    if let Some(rdn) = dn::leading_value(&entry.dn, attribute)
        && entry.texts(attribute).any(|v| v.trim() == rdn.trim())
    {
        return Some(rdn.trim().to_owned());
    }
    entry.text(attribute).map(str::to_owned)
}

fn external_id(cfg: &LdapConfig, entry: &Entry) -> Result<String, SkipReason> {
    let attribute = &cfg.attributes.id;
    let Some(raw) = entry.raw(attribute).first() else {
        return Err(SkipReason::MissingId {
            attribute: attribute.clone(),
        });
    };
    match cfg.attributes.id_format {
        IdFormat::Guid => format_guid(raw).ok_or_else(|| SkipReason::InvalidId {
            attribute: attribute.clone(),
            detail: format!("{} bytes, a GUID has 16", raw.len()),
        }),
        IdFormat::Text => match std::str::from_utf8(raw).map(str::trim) {
            Ok(id) if !id.is_empty() => Ok(id.to_owned()),
            Ok(_) => Err(SkipReason::MissingId {
                attribute: attribute.clone(),
            }),
            Err(_) => Err(SkipReason::InvalidId {
                attribute: attribute.clone(),
                detail: "not text (set attributes.id_format: guid for a binary GUID)".to_owned(),
            }),
        },
    }
}

fn is_disabled(cfg: &LdapConfig, entry: &Entry) -> Result<bool, SkipReason> {
    match &cfg.disabled {
        Disabled::None => Ok(false),
        Disabled::ActiveDirectory => {
            let attribute = "userAccountControl";
            let Some(value) = entry.text(attribute) else {
                return Err(SkipReason::UnknownDisabledState {
                    attribute: attribute.to_owned(),
                    detail: "is missing (can the bind DN read it?)".to_owned(),
                });
            };
            let flags: i64 = value
                .parse()
                .map_err(|_| SkipReason::UnknownDisabledState {
                    attribute: attribute.to_owned(),
                    detail: format!("{value:?} is not a number"),
                })?;
            // ADS_UF_ACCOUNTDISABLE
            Ok(flags & 0x2 != 0)
        }
        Disabled::Attribute { name, value: None } => Ok(entry.has(name)),
        Disabled::Attribute {
            name,
            value: Some(wanted),
        } => {
            let wanted = wanted.trim().to_lowercase();
            Ok(entry.texts(name).any(|v| v.trim().to_lowercase() == wanted))
        }
    }
}

fn read_user(cfg: &LdapConfig, entry: &Entry) -> Result<UserDraft, SkipReason> {
    let a = &cfg.attributes;
    let name = entry_name(entry, &a.name).ok_or_else(|| SkipReason::MissingName {
        attribute: a.name.clone(),
    })?;
    let external_id = external_id(cfg, entry)?;
    let disabled = is_disabled(cfg, entry)?;
    let display_name = entry
        .text(&a.display_name)
        .map_or_else(|| name.clone(), str::to_owned);
    let email = entry.text(&a.email).map(str::to_owned);
    let manager_dn = a
        .manager
        .as_ref()
        .and_then(|m| entry.text(m))
        .map(str::to_owned);
    let member_of = match cfg.membership {
        Membership::MemberOf => entry.texts(&a.member_of).map(str::to_owned).collect(),
        Membership::Member => Vec::new(),
    };
    Ok(UserDraft {
        user: LdapUser {
            dn: entry.dn.clone(),
            external_id,
            name,
            display_name,
            email,
            disabled,
            manager: None,
        },
        manager_dn,
        member_of,
    })
}

fn read_group(cfg: &LdapConfig, entry: &Entry) -> Result<GroupDraft, SkipReason> {
    let a = &cfg.attributes;
    let name = entry_name(entry, &a.group_name).ok_or_else(|| SkipReason::MissingName {
        attribute: a.group_name.clone(),
    })?;
    let external_id = external_id(cfg, entry)?;
    let (member, member_of) = match cfg.membership {
        Membership::Member => (
            entry.texts(&a.member).map(str::to_owned).collect(),
            Vec::new(),
        ),
        Membership::MemberOf => (
            Vec::new(),
            entry.texts(&a.member_of).map(str::to_owned).collect(),
        ),
    };
    Ok(GroupDraft {
        group: LdapGroup {
            dn: entry.dn.clone(),
            external_id,
            name,
            members: BTreeSet::new(),
        },
        member,
        member_of,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::config::Preset;

    fn openldap(membership: Membership) -> LdapConfig {
        let mut cfg = LdapConfig::with_preset(Preset::Openldap, "ldap://127.0.0.1", "dc=x");
        cfg.membership = membership;
        cfg
    }

    fn user(uid: &str, extra: &[(&str, &[&str])]) -> Entry {
        let dn = format!("uid={uid},ou=people,dc=x");
        let id = format!("id-{uid}");
        let mut attrs: Vec<(&str, &[&str])> = vec![];
        let uid_values = [uid];
        let id_values = [id.as_str()];
        attrs.push(("uid", &uid_values));
        attrs.push(("entryUUID", &id_values));
        attrs.extend_from_slice(extra);
        Entry::with(&dn, &attrs)
    }

    fn group(cn: &str, attr: &str, values: &[&str]) -> Entry {
        let id = format!("id-{cn}");
        Entry::with(
            &format!("cn={cn},ou=groups,dc=x"),
            &[("cn", &[cn]), ("entryUUID", &[id.as_str()]), (attr, values)],
        )
    }

    fn members(snapshot: &Snapshot, group: &str) -> Vec<String> {
        snapshot
            .groups
            .iter()
            .find(|g| g.name == group)
            .unwrap_or_else(|| panic!("no group {group}"))
            .members
            .iter()
            .cloned()
            .collect()
    }

    #[test]
    fn member_mode_expands_nested_groups_and_survives_cycles() {
        let cfg = openldap(Membership::Member);
        let snapshot = build(
            &cfg,
            vec![user("alice", &[]), user("bob", &[]), user("carol", &[])],
            vec![
                group(
                    "dba",
                    "member",
                    &["UID=Alice, OU=People,DC=X", "cn=ops,ou=groups,dc=x"],
                ),
                group(
                    "ops",
                    "member",
                    &["uid=bob,ou=people,dc=x", "cn=loop,ou=groups,dc=x"],
                ),
                group(
                    "loop",
                    "member",
                    &["uid=carol,ou=people,dc=x", "cn=ops,ou=groups,dc=x"],
                ),
                group(
                    "self",
                    "member",
                    &["cn=self,ou=groups,dc=x", "uid=nobody,dc=x"],
                ),
            ],
        );
        assert_eq!(members(&snapshot, "dba"), ["alice", "bob", "carol"]);
        assert_eq!(members(&snapshot, "ops"), ["bob", "carol"]);
        assert_eq!(members(&snapshot, "loop"), ["bob", "carol"]);
        assert!(members(&snapshot, "self").is_empty());
        assert!(snapshot.skipped.is_empty());
    }

    #[test]
    fn member_of_mode_follows_groups_memberof_transitively() {
        let cfg = openldap(Membership::MemberOf);
        let snapshot = build(
            &cfg,
            vec![
                user("alice", &[("memberOf", &["cn=dba,ou=groups,dc=x"])]),
                user(
                    "bob",
                    &[("memberOf", &["CN=Ops,OU=Groups,DC=x", "cn=gone,dc=x"])],
                ),
            ],
            vec![
                group("dba", "memberOf", &["cn=ops,ou=groups,dc=x"]),
                group("ops", "memberOf", &["cn=all,ou=groups,dc=x"]),
                // A cycle: all is in ops and ops in all.
                group("all", "memberOf", &["cn=ops,ou=groups,dc=x"]),
            ],
        );
        assert_eq!(members(&snapshot, "dba"), ["alice"]);
        assert_eq!(members(&snapshot, "ops"), ["alice", "bob"]);
        assert_eq!(members(&snapshot, "all"), ["alice", "bob"]);
    }

    #[test]
    fn managers_disabled_and_skipped_entries() {
        let mut cfg = openldap(Membership::Member);
        cfg.disabled = Disabled::Attribute {
            name: "employeeType".into(),
            value: Some("disabled".into()),
        };
        let snapshot = build(
            &cfg,
            vec![
                user(
                    "alice",
                    &[
                        ("manager", &["uid=BOB,ou=people,dc=x"]),
                        ("cn", &["Alice A"]),
                    ],
                ),
                user(
                    "bob",
                    &[
                        ("manager", &["uid=outside,dc=x"]),
                        ("employeeType", &["Disabled"]),
                    ],
                ),
                Entry::with("uid=noname,ou=people,dc=x", &[("entryUUID", &["id-x"])]),
                Entry::with("uid=noid,ou=people,dc=x", &[("uid", &["noid"])]),
                Entry::with(
                    "uid=twin,ou=a,dc=x",
                    &[("uid", &["twin"]), ("entryUUID", &["1"])],
                ),
                Entry::with(
                    "uid=Twin,ou=b,dc=x",
                    &[("uid", &["Twin"]), ("entryUUID", &["2"])],
                ),
            ],
            vec![],
        );
        let names: Vec<_> = snapshot.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let alice = &snapshot.users[0];
        assert_eq!(alice.manager.as_deref(), Some("bob"));
        assert_eq!(alice.display_name, "Alice A");
        assert!(!alice.disabled);
        assert_eq!(snapshot.users[1].manager, None);
        assert_eq!(snapshot.users[1].display_name, "bob");
        assert!(snapshot.users[1].disabled);
        let reasons: Vec<String> = snapshot.skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "user uid=Twin,ou=b,dc=x skipped: the name \"Twin\" belongs to more than one entry",
                "user uid=noid,ou=people,dc=x skipped: no entryUUID (the id attribute)",
                "user uid=noname,ou=people,dc=x skipped: no uid (the name attribute)",
                "user uid=twin,ou=a,dc=x skipped: the name \"twin\" belongs to more than one entry",
            ]
        );
    }

    #[test]
    fn name_prefers_the_rdn_value() {
        let cfg = openldap(Membership::Member);
        let entry = Entry::with(
            "uid=asmith,ou=people,dc=x",
            &[("uid", &["alice", "asmith"]), ("entryUUID", &["1"])],
        );
        let snapshot = build(&cfg, vec![entry], vec![]);
        assert_eq!(snapshot.users[0].name, "asmith");
    }

    #[test]
    fn active_directory_accounts() {
        let cfg = LdapConfig::with_preset(Preset::ActiveDirectory, "ldaps://dc", "DC=x");
        let guid: Vec<u8> = (1..=16).collect();
        let ad_user = |sam: &str, uac: Option<&str>, guid: &[u8]| {
            let mut entry = Entry::with(
                &format!("CN={sam},CN=Users,DC=x"),
                &[("sAMAccountName", &[sam]), ("displayName", &["Some One"])],
            );
            if let Some(uac) = uac {
                entry
                    .attrs
                    .insert("useraccountcontrol".into(), vec![uac.as_bytes().to_vec()]);
            }
            entry.attrs.insert("objectguid".into(), vec![guid.to_vec()]);
            entry
        };
        let snapshot = build(
            &cfg,
            vec![
                ad_user("enabled", Some("512"), &guid),
                ad_user("disabled", Some("514"), &guid),
                ad_user("nouac", None, &guid),
                ad_user("shortguid", Some("512"), &guid[..4]),
            ],
            vec![],
        );
        let users: Vec<_> = snapshot
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.disabled, u.external_id.as_str()))
            .collect();
        assert_eq!(
            users,
            [
                ("disabled", true, "04030201-0605-0807-090a-0b0c0d0e0f10"),
                ("enabled", false, "04030201-0605-0807-090a-0b0c0d0e0f10"),
            ]
        );
        assert!(matches!(
            snapshot.skipped[0].reason,
            SkipReason::UnknownDisabledState { .. }
        ));
        assert!(matches!(
            snapshot.skipped[1].reason,
            SkipReason::InvalidId { .. }
        ));
    }
}

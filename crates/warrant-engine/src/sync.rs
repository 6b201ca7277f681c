//! The LDAP sync: applies a [`warrant_ldap::Snapshot`] to Warrant's directory
//! (`warrant sync ldap` and the scheduled pull).
//!
//! A run has three parts:
//!
//! 1. **Plan**, from a read of the directory (the writer is not held): users are matched to
//!    identities by (source `ldap`, external id), then by name; groups by (source `ldap`,
//!    external id), then by the slug of their `cn`. A name held by another source (local, SCIM,
//!    OIDC) is a conflict: reported and left untouched, never taken over. The plan is a list of
//!    steps, each one change of one identity, group or membership.
//! 2. **Safety valve**: if the plan would mark missing or disable more than
//!    [`LdapSyncSettings::max_removal_share`] of the active LDAP identities, the run is refused
//!    (and `sync.refused` audited) before anything changes, unless forced. A broken search must
//!    not disable everyone.
//! 3. **Apply**, in transactions of at most [`BATCH`] steps, each taking the policy gate for
//!    reading (memberships removed are mover handling). Every step re-checks what it changes
//!    inside its transaction, so a directory changed meanwhile is never overwritten, and a crash
//!    between two transactions leaves a consistent directory that the next run completes. A dry
//!    run applies every step in one transaction and rolls it back, so its counts (grants revoked
//!    included) are exact.
//!
//! Identities absent from the directory are not leavers at once: the first run that misses one
//! records `missing_since`; the first run after `missing_since + grace_secs` disables it (leaver
//! handling). While missing, it keeps its memberships; coming back clears the mark and, if it
//! was disabled, enables it (which gives nothing back). An LDAP group absent from the directory
//! loses its members (mover handling) but stays, since rules may name it.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use warrant_audit::Event;
use warrant_core::{Group, Identity, IdentityStatus, Name, Source, SystemRole, Timestamp};
use warrant_ldap::Snapshot;
use warrant_store::WriteTx;

use crate::access::revoke_all_of;
use crate::auth::Actor;
use crate::directory::{
    IdentityInput, IdentityUpdate, tx_add_identity, tx_add_member, tx_remove_member,
    tx_update_identity,
};
use crate::error::{EngineError, ErrorKind, Result};
use crate::policy::PolicyState;
use crate::{Engine, require_admin};

/// The most steps (each one change of an identity, group or membership) applied in one
/// transaction: a large directory does not hold the single writer for long.
pub const BATCH: usize = 500;

/// How a sync treats identities that the directory no longer lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LdapSyncSettings {
    /// How long an identity may be missing from the directory before it is disabled (default
    /// 72 hours).
    pub grace_secs: i64,
    /// The largest share (0 to 1) of the active LDAP identities that one run may newly mark
    /// missing or disable (default 0.10); a run that would exceed it is refused unless forced.
    pub max_removal_share: f64,
    /// The share check applies only from this many active LDAP identities (default 10), so that
    /// a small directory can lose one person.
    pub min_identities_for_share: usize,
}

impl Default for LdapSyncSettings {
    fn default() -> Self {
        Self {
            grace_secs: 72 * 3600,
            max_removal_share: 0.10,
            min_identities_for_share: 10,
        }
    }
}

/// What a sync changed (or, in a dry run, would change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Identities created.
    pub created: u64,
    /// Identities whose attributes (display name, email, manager, LDAP entry) changed, or that
    /// came back after going missing.
    pub updated: u64,
    /// Identities disabled because the directory marks them disabled (leavers).
    pub disabled: u64,
    /// Identities enabled again.
    pub enabled: u64,
    /// Identities newly found missing from the directory (their grace period starts).
    pub marked_missing: u64,
    /// Identities disabled because they stayed missing past the grace period (leavers).
    pub disabled_after_grace: u64,
    /// Groups created.
    pub groups_created: u64,
    /// Groups whose description (the LDAP name) or LDAP entry changed.
    pub groups_updated: u64,
    /// Memberships added.
    pub members_added: u64,
    /// Memberships removed (movers).
    pub members_removed: u64,
    /// Grants revoked by leaver and mover handling.
    pub grants_revoked: u64,
    /// Pending requests cancelled by leaver and mover handling.
    pub requests_cancelled: u64,
    /// Directory entries (or changes) left out, one line each with the reason.
    pub skipped: Vec<String>,
    /// Names held by another source (or another LDAP entry), left untouched, one line each.
    pub conflicts: Vec<String>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// One change of the plan. Applying it re-checks the directory inside the transaction.
#[derive(Debug, Clone)]
enum Step {
    /// The LDAP identity `name` now stands for another directory entry: the previous holder
    /// left, so its grants, requests and tokens go.
    Rebind {
        name: Name,
        external_id: String,
    },
    Create(IdentityInput),
    /// Attributes (and manager); `new` when the identity was created by this run.
    Update {
        name: Name,
        update: IdentityUpdate,
        new: bool,
    },
    ClearMissing(Name),
    Enable(Name),
    SaveGroup {
        name: Name,
        description: String,
        external_id: String,
    },
    AddMember {
        group: Name,
        identity: Name,
    },
    RemoveMember {
        group: Name,
        identity: Name,
    },
    Disable {
        name: Name,
        after_grace: bool,
    },
    MarkMissing(Name),
}

/// The directory as Warrant holds it before the run.
struct Current {
    identities: Vec<Identity>,
    /// `missing_since` of every LDAP identity.
    missing: HashMap<Name, Option<Timestamp>>,
    groups: Vec<Group>,
    memberships: Vec<(Name, Name)>,
}

struct Plan {
    steps: Vec<Step>,
    skipped: Vec<String>,
    conflicts: Vec<String>,
    /// Active LDAP identities that the plan newly marks missing or disables.
    removals: BTreeSet<Name>,
    /// Active LDAP identities before the run.
    active: usize,
}

/// The steps that turn `cur` into what `snap` describes, in the order they must apply:
/// identities before the memberships that need them, additions before removals (a mover keeps
/// what another new group supports), leavers last.
fn plan(cur: &Current, snap: &Snapshot, settings: &LdapSyncSettings, now: Timestamp) -> Plan {
    let mut skipped: Vec<String> = snap.skipped.iter().map(ToString::to_string).collect();
    let mut conflicts = Vec::new();
    let mut removals = BTreeSet::new();

    let ldap = |i: &&Identity| i.source == Source::Ldap;
    // Identity names are unique ignoring case, so the directory's names are matched that way.
    let by_name: HashMap<String, &Identity> = cur
        .identities
        .iter()
        .map(|i| (i.name.as_str().to_ascii_lowercase(), i))
        .collect();
    let by_ext: HashMap<&str, &Identity> = cur
        .identities
        .iter()
        .filter(ldap)
        .filter_map(|i| i.external_id.as_deref().map(|e| (e, i)))
        .collect();
    let active = cur
        .identities
        .iter()
        .filter(ldap)
        .filter(|i| i.status == IdentityStatus::Active)
        .count();

    // Users: the external id first for everyone (an entry renamed in LDAP keeps its identity
    // even if another entry took its old name), then the name for the rest.
    let mut claimed: HashSet<Name> = HashSet::new();
    let mut matched: Vec<Option<&Identity>> = snap
        .users
        .iter()
        .map(|u| {
            let i = by_ext.get(u.external_id.as_str()).copied();
            if let Some(i) = i {
                claimed.insert(i.name.clone());
            }
            i
        })
        .collect();
    // LDAP user name → Warrant identity, for managers and memberships.
    let mut resolved: HashMap<&str, Name> = HashMap::new();
    let mut rebinds = Vec::new();
    let mut new_users = Vec::new();
    let mut present = Vec::new();
    for (u, found) in snap.users.iter().zip(matched.iter_mut()) {
        if found.is_none() {
            let name = match Name::new(u.name.as_str()) {
                Ok(n) => n,
                Err(e) => {
                    skipped.push(format!("user {}: {e}", u.dn));
                    continue;
                }
            };
            match by_name.get(&name.as_str().to_ascii_lowercase()) {
                Some(i) if i.source != Source::Ldap => {
                    conflicts.push(format!(
                        "user {name}: the name belongs to a {} identity, left untouched (LDAP entry {})",
                        i.source, u.dn
                    ));
                    continue;
                }
                // The name belonged to another directory entry (another entryUUID/objectGUID):
                // a new person must not inherit a former one's role, rules, password or second
                // factors.
                Some(i)
                    if i.external_id
                        .as_deref()
                        .is_some_and(|e| e != u.external_id.as_str()) =>
                {
                    conflicts.push(format!(
                        "user {name}: the name belongs to the identity of a former LDAP entry (another id); a new person does not inherit it: once that identity is disabled, delete it in Warrant (warrant identity delete {name}) and sync again (LDAP entry {})",
                        u.dn
                    ));
                    continue;
                }
                Some(i) if claimed.contains(&i.name) => {
                    conflicts.push(format!(
                        "user {name}: the name belongs to the identity of another LDAP entry (renamed in the directory?), left untouched (LDAP entry {})",
                        u.dn
                    ));
                    continue;
                }
                Some(i) => {
                    claimed.insert(i.name.clone());
                    if i.external_id.as_deref() != Some(u.external_id.as_str()) {
                        rebinds.push(Step::Rebind {
                            name: i.name.clone(),
                            external_id: u.external_id.clone(),
                        });
                    }
                    *found = Some(i);
                }
                // A disabled account that Warrant never knew has nothing to lose: not created.
                None if u.disabled => continue,
                None => {
                    resolved.insert(u.name.as_str(), name.clone());
                    new_users.push((u, name));
                    continue;
                }
            }
        }
        if let Some(i) = *found {
            resolved.insert(u.name.as_str(), i.name.clone());
            present.push((u, i));
        }
    }

    let manager_of = |u: &warrant_ldap::LdapUser, me: &Name| {
        u.manager
            .as_deref()
            .and_then(|m| resolved.get(m))
            .filter(|m| *m != me)
            .cloned()
    };
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    let mut returns = Vec::new();
    let mut leavers = Vec::new();
    // New identities first without managers (a manager may be created later in the run).
    for (u, name) in &new_users {
        creates.push(Step::Create(IdentityInput {
            name: name.clone(),
            display_name: Some(u.display_name.clone()),
            email: u.email.clone().unwrap_or_default(),
            manager: None,
            system_role: SystemRole::User,
            password: None,
            external_id: Some(u.external_id.clone()),
        }));
        if let Some(m) = manager_of(u, name) {
            updates.push(Step::Update {
                name: name.clone(),
                update: IdentityUpdate {
                    manager: Some(Some(m)),
                    ..IdentityUpdate::default()
                },
                new: true,
            });
        }
    }
    for (u, i) in &present {
        let email = u.email.clone().unwrap_or_default();
        let manager = manager_of(u, &i.name);
        let update = IdentityUpdate {
            display_name: Some(u.display_name.clone()).filter(|d| *d != i.display_name),
            email: Some(email).filter(|e| *e != i.email),
            manager: Some(manager).filter(|m| *m != i.manager),
            system_role: None,
        };
        if update.display_name.is_some() || update.email.is_some() || update.manager.is_some() {
            updates.push(Step::Update {
                name: i.name.clone(),
                update,
                new: false,
            });
        }
        if cur.missing.get(&i.name).copied().flatten().is_some() {
            returns.push(Step::ClearMissing(i.name.clone()));
        }
        match (u.disabled, i.status) {
            (true, IdentityStatus::Active) => {
                removals.insert(i.name.clone());
                leavers.push(Step::Disable {
                    name: i.name.clone(),
                    after_grace: false,
                });
            }
            (false, IdentityStatus::Disabled) => returns.push(Step::Enable(i.name.clone())),
            _ => {}
        }
    }

    // LDAP identities the directory no longer lists.
    let mut missing_steps = Vec::new();
    for i in cur.identities.iter().filter(ldap) {
        if claimed.contains(&i.name) {
            continue;
        }
        let since = cur.missing.get(&i.name).copied().flatten();
        let is_active = i.status == IdentityStatus::Active;
        if since.is_none() {
            missing_steps.push(Step::MarkMissing(i.name.clone()));
            if is_active {
                removals.insert(i.name.clone());
            }
        }
        if is_active && since.unwrap_or(now).plus_secs(settings.grace_secs) <= now {
            removals.insert(i.name.clone());
            leavers.push(Step::Disable {
                name: i.name.clone(),
                after_grace: true,
            });
        }
    }

    // Groups, matched like users.
    let groups_by_name: HashMap<&str, &Group> =
        cur.groups.iter().map(|g| (g.name.as_str(), g)).collect();
    let groups_by_ext: HashMap<&str, &Group> = cur
        .groups
        .iter()
        .filter(|g| g.source == Source::Ldap)
        .filter_map(|g| g.external_id.as_deref().map(|e| (e, g)))
        .collect();
    let mut members_now: HashMap<&Name, BTreeSet<&Name>> = HashMap::new();
    for (g, i) in &cur.memberships {
        members_now.entry(g).or_default().insert(i);
    }
    let mut taken: HashSet<Name> = HashSet::new();
    let mut group_names: Vec<Option<Name>> = snap
        .groups
        .iter()
        .map(|lg| {
            let g = groups_by_ext.get(lg.external_id.as_str())?;
            taken.insert(g.name.clone());
            Some(g.name.clone())
        })
        .collect();
    let mut group_steps = Vec::new();
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    // Members that the directory still lists: only those can leave a group. An identity
    // missing from the directory keeps its memberships through its grace period.
    let listed: HashSet<&Name> = resolved.values().collect();
    let ldap_members_absent = |name: &Name| {
        by_name
            .get(&name.as_str().to_ascii_lowercase())
            .is_some_and(|i| i.source == Source::Ldap)
            && !listed.contains(name)
    };
    for (lg, name) in snap.groups.iter().zip(group_names.iter_mut()) {
        if name.is_none() {
            let Some(slug) = Name::slug(&lg.name) else {
                skipped.push(format!(
                    "group {}: no usable name can be made from {:?}",
                    lg.dn, lg.name
                ));
                continue;
            };
            if let Some(g) = groups_by_name.get(slug.as_str())
                && g.source != Source::Ldap
            {
                conflicts.push(format!(
                    "group {slug}: the name belongs to a {} group, left untouched (LDAP entry {})",
                    g.source, lg.dn
                ));
                continue;
            }
            if !taken.insert(slug.clone()) {
                conflicts.push(format!(
                    "group {slug}: the name belongs to another LDAP group, left untouched (LDAP entry {})",
                    lg.dn
                ));
                continue;
            }
            *name = Some(slug);
        }
        let Some(name) = name.as_ref() else { continue };
        let existing = groups_by_name.get(name.as_str());
        if existing.is_none_or(|g| {
            g.description != lg.name || g.external_id.as_deref() != Some(lg.external_id.as_str())
        }) {
            group_steps.push(Step::SaveGroup {
                name: name.clone(),
                description: lg.name.clone(),
                external_id: lg.external_id.clone(),
            });
        }
        let want: BTreeSet<&Name> = lg
            .members
            .iter()
            .filter_map(|m| resolved.get(m.as_str()))
            .collect();
        let have = members_now.get(name).cloned().unwrap_or_default();
        for i in want.difference(&have) {
            adds.push(Step::AddMember {
                group: name.clone(),
                identity: (*i).clone(),
            });
        }
        for i in have.difference(&want) {
            if !ldap_members_absent(i) {
                removes.push(Step::RemoveMember {
                    group: name.clone(),
                    identity: (*i).clone(),
                });
            }
        }
    }
    // LDAP groups the directory no longer lists lose their members.
    for g in cur.groups.iter().filter(|g| g.source == Source::Ldap) {
        if taken.contains(&g.name) {
            continue;
        }
        for i in members_now.get(&g.name).into_iter().flatten() {
            if !ldap_members_absent(i) {
                removes.push(Step::RemoveMember {
                    group: g.name.clone(),
                    identity: (*i).clone(),
                });
            }
        }
    }

    let mut steps = rebinds;
    steps.extend(creates);
    steps.extend(updates);
    steps.extend(returns);
    steps.extend(group_steps);
    steps.extend(adds);
    steps.extend(removes);
    steps.extend(leavers);
    steps.extend(missing_steps);
    Plan {
        steps,
        skipped,
        conflicts,
        removals,
        active,
    }
}

/// Whether an error of a step concerns that one entry only (the step changed nothing and the
/// run goes on), rather than Warrant itself.
fn entry_error(e: &EngineError) -> bool {
    !matches!(e.kind, ErrorKind::Internal)
}

fn note_error(report: &mut SyncReport, what: String, e: &EngineError) {
    let line = format!("{what}: {} ({})", e.message, e.code);
    if matches!(e.code, "source_owned" | "identity_exists" | "group_exists") {
        report.conflicts.push(line);
    } else {
        report.skipped.push(line);
    }
}

/// Refuses a step on an identity or group that is not LDAP's (one created meanwhile in
/// Warrant under a name the plan expected to be free): the sync never takes anything over.
fn not_ldap(kind: &str, name: &Name, source: Source) -> EngineError {
    EngineError::conflict(
        "source_owned",
        format!("{kind} {name:?} belongs to the {source} source, left untouched"),
    )
}

async fn ldap_identity(tx: &mut WriteTx, name: &Name) -> Result<()> {
    match tx.q().identity(name.as_str()).await? {
        Some(i) if i.source != Source::Ldap => Err(not_ldap("identity", name, i.source)),
        _ => Ok(()),
    }
}

async fn ldap_group(tx: &mut WriteTx, name: &Name) -> Result<()> {
    match tx.q().group(name.as_str()).await? {
        Some(g) if g.source != Source::Ldap => Err(not_ldap("group", name, g.source)),
        _ => Ok(()),
    }
}

/// Open grants and pending requests of an identity, to count what mover handling revoked.
async fn open_counts(tx: &mut WriteTx, identity: &str) -> Result<(u64, u64)> {
    let grants = tx.q().grants(Some(identity), true, i64::MAX).await?.len();
    let requests = tx.q().requests(Some(identity), true, i64::MAX).await?.len();
    Ok((grants as u64, requests as u64))
}

/// Leaver handling for an LDAP identity, as an admin's disable does it: status, grants,
/// requests and tokens in the same transaction. Returns false when there was nothing to do.
async fn disable(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    why: &str,
    jobs: bool,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<bool> {
    let Some(mut ident) = tx.q().identity(name.as_str()).await? else {
        return Ok(false);
    };
    if ident.source != Source::Ldap || ident.status == IdentityStatus::Disabled {
        return Ok(false);
    }
    ident.status = IdentityStatus::Disabled;
    tx.w().await?.save_identity(&ident, now).await?;
    let (g, r) = revoke_all_of(tx, name.as_str(), why, jobs, now).await?;
    tx.w().await?.revoke_tokens_of(name.as_str(), now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityDisabled {
            via: actor.via().to_owned(),
            identity: name.to_string(),
            grants_revoked: g,
            requests_cancelled: r,
        },
    )
    .await?;
    report.grants_revoked += g;
    report.requests_cancelled += r;
    Ok(true)
}

async fn missing_changed(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    now: Timestamp,
) -> Result<()> {
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityUpdated {
            via: actor.via().to_owned(),
            identity: name.to_string(),
            changed: vec!["missing_since".to_owned()],
        },
    )
    .await?;
    Ok(())
}

/// Applies one step inside `tx`. An error about this entry alone is reported and the run goes
/// on (every directory function checks before it writes, so the step changed nothing); an
/// internal error ends the run.
async fn apply_step(
    tx: &mut WriteTx,
    policy: &PolicyState,
    actor: &Actor,
    step: Step,
    jobs: bool,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    match run_step(tx, policy, actor, &step, jobs, now, report).await {
        Err(e) if entry_error(&e) => {
            note_error(report, describe(&step), &e);
            Ok(())
        }
        other => other,
    }
}

async fn run_step(
    tx: &mut WriteTx,
    policy: &PolicyState,
    actor: &Actor,
    step: &Step,
    jobs: bool,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    match step {
        Step::Rebind { name, external_id } => {
            rebind(tx, actor, name, external_id, jobs, now, report).await
        }
        Step::Create(input) => create(tx, actor, input.clone(), now, report).await,
        Step::Update { name, update, new } => {
            ldap_identity(tx, name).await?;
            let mut update = update.clone();
            let mut result =
                tx_update_identity(tx, actor, name.as_str(), update.clone(), now).await;
            if let Err(e) = &result
                && e.code == "invalid_email"
            {
                report.skipped.push(format!(
                    "user {name}: the directory's email is not an address, left unchanged ({})",
                    e.message
                ));
                update.email = None;
                result = tx_update_identity(tx, actor, name.as_str(), update, now).await;
            }
            result.map(|changed| {
                if !changed.is_empty() && !new {
                    report.updated += 1;
                }
            })
        }
        Step::ClearMissing(name) => {
            ldap_identity(tx, name).await?;
            if tx.w().await?.clear_missing(name.as_str()).await? {
                missing_changed(tx, actor, name, now).await?;
                report.updated += 1;
            }
            Ok(())
        }
        Step::Enable(name) => enable(tx, actor, name, now, report).await,
        Step::SaveGroup {
            name,
            description,
            external_id,
        } => save_group(tx, actor, name, description, external_id, now, report).await,
        Step::AddMember { group, identity } => {
            ldap_group(tx, group).await?;
            ldap_identity(tx, identity).await?;
            tx_add_member(tx, actor, group.as_str(), identity.as_str(), now)
                .await
                .map(|added| report.members_added += u64::from(added))
        }
        Step::RemoveMember { group, identity } => {
            ldap_group(tx, group).await?;
            let (g0, r0) = open_counts(tx, identity.as_str()).await?;
            let removed = tx_remove_member(
                tx,
                policy,
                actor,
                group.as_str(),
                identity.as_str(),
                jobs,
                now,
            )
            .await;
            match removed {
                Ok(true) => {
                    let (g1, r1) = open_counts(tx, identity.as_str()).await?;
                    report.members_removed += 1;
                    report.grants_revoked += g0.saturating_sub(g1);
                    report.requests_cancelled += r0.saturating_sub(r1);
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Step::Disable { name, after_grace } => {
            let why = if *after_grace {
                "missing from the LDAP directory past the grace period"
            } else {
                "disabled in the LDAP directory"
            };
            if disable(tx, actor, name, why, jobs, now, report).await? {
                if *after_grace {
                    report.disabled_after_grace += 1;
                } else {
                    report.disabled += 1;
                }
            }
            Ok(())
        }
        Step::MarkMissing(name) => {
            ldap_identity(tx, name).await?;
            if tx.w().await?.mark_missing(name.as_str(), now).await? {
                missing_changed(tx, actor, name, now).await?;
                report.marked_missing += 1;
            }
            Ok(())
        }
    }
}

fn describe(step: &Step) -> String {
    match step {
        Step::Rebind { name, .. }
        | Step::Update { name, .. }
        | Step::ClearMissing(name)
        | Step::Enable(name)
        | Step::Disable { name, .. }
        | Step::MarkMissing(name) => format!("user {name}"),
        Step::Create(input) => format!("user {}", input.name),
        Step::SaveGroup { name, .. } => format!("group {name}"),
        Step::AddMember { group, identity } => format!("adding {identity} to group {group}"),
        Step::RemoveMember { group, identity } => {
            format!("removing {identity} from group {group}")
        }
    }
}

async fn create(
    tx: &mut WriteTx,
    actor: &Actor,
    input: IdentityInput,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    let name = input.name.clone();
    let mut retry = input.clone();
    match tx_add_identity(tx, actor, input, now).await {
        Err(e) if e.code == "invalid_email" => {
            report.skipped.push(format!(
                "user {name}: the directory's email is not an address, left empty ({})",
                e.message
            ));
            retry.email = String::new();
            tx_add_identity(tx, actor, retry, now).await?;
        }
        other => {
            other?;
        }
    }
    report.created += 1;
    Ok(())
}

async fn rebind(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    external_id: &str,
    jobs: bool,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    let Some(mut ident) = tx.q().identity(name.as_str()).await? else {
        return Ok(());
    };
    if ident.source != Source::Ldap {
        return Err(not_ldap("identity", name, ident.source));
    }
    if ident.external_id.as_deref() == Some(external_id) {
        return Ok(());
    }
    let previous = ident.external_id.replace(external_id.to_owned());
    tx.w().await?.save_identity(&ident, now).await?;
    if previous.is_some() {
        // Another directory entry now has this name: whoever held it before left.
        let (g, r) = revoke_all_of(
            tx,
            name.as_str(),
            "its LDAP entry was replaced by another entry of the same name",
            jobs,
            now,
        )
        .await?;
        tx.w().await?.revoke_tokens_of(name.as_str(), now).await?;
        report.grants_revoked += g;
        report.requests_cancelled += r;
    }
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityUpdated {
            via: actor.via().to_owned(),
            identity: name.to_string(),
            changed: vec!["external_id".to_owned()],
        },
    )
    .await?;
    report.updated += 1;
    Ok(())
}

async fn enable(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    let Some(mut ident) = tx.q().identity(name.as_str()).await? else {
        return Ok(());
    };
    if ident.source != Source::Ldap || ident.status == IdentityStatus::Active {
        return Ok(());
    }
    ident.status = IdentityStatus::Active;
    tx.w().await?.save_identity(&ident, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityEnabled {
            via: actor.via().to_owned(),
            identity: name.to_string(),
        },
    )
    .await?;
    report.enabled += 1;
    Ok(())
}

async fn save_group(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    description: &str,
    external_id: &str,
    now: Timestamp,
    report: &mut SyncReport,
) -> Result<()> {
    let existing = tx.q().group(name.as_str()).await?;
    if let Some(g) = &existing {
        if g.source != Source::Ldap {
            return Err(not_ldap("group", name, g.source));
        }
        if g.description == description && g.external_id.as_deref() == Some(external_id) {
            return Ok(());
        }
    }
    let group = Group {
        name: name.clone(),
        description: description.to_owned(),
        source: Source::Ldap,
        external_id: Some(external_id.to_owned()),
    };
    tx.w().await?.save_group(&group, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::GroupSaved {
            via: actor.via().to_owned(),
            group: name.to_string(),
            created: existing.is_none(),
        },
    )
    .await?;
    if existing.is_some() {
        report.groups_updated += 1;
    } else {
        report.groups_created += 1;
    }
    Ok(())
}

impl Engine {
    /// Applies an LDAP directory snapshot (from [`warrant_ldap::fetch`]) to Warrant's
    /// directory: creates, updates, disables and enables LDAP identities, marks the missing ones
    /// and disables them after [`LdapSyncSettings::grace_secs`], and mirrors LDAP groups and
    /// their (transitive) memberships, with leaver and mover handling. Admins only; the changes
    /// are made and audited through the `ldap` channel whatever `actor.via` is.
    ///
    /// Refused with `sync_refused` (nothing changed, `sync.refused` audited unless `dry_run`)
    /// when it would mark missing or disable more than
    /// [`LdapSyncSettings::max_removal_share`] of the active LDAP identities, unless `force`.
    /// With `dry_run`, the report says what would change and nothing is written. Otherwise the
    /// run ends with a `sync.completed` event carrying the report's counts.
    pub async fn apply_ldap_snapshot(
        &self,
        actor: &Actor,
        snap: &Snapshot,
        settings: &LdapSyncSettings,
        dry_run: bool,
        force: bool,
    ) -> Result<SyncReport> {
        require_admin(actor)?;
        if !(0.0..=1.0).contains(&settings.max_removal_share) || settings.grace_secs < 0 {
            return Err(EngineError::invalid(
                "invalid_sync_settings",
                format!(
                    "max_removal_share must be between 0 and 1 (got {}) and grace_secs not negative (got {})",
                    settings.max_removal_share, settings.grace_secs
                ),
            ));
        }
        let actor = actor.clone().through(Source::Ldap);
        let cur = {
            let mut r = self.store().read().await?;
            Current {
                identities: r.q().identities().await?,
                missing: r
                    .q()
                    .missing_since_by_source(Source::Ldap)
                    .await?
                    .into_iter()
                    .collect(),
                groups: r.q().groups().await?,
                memberships: r.q().memberships().await?,
            }
        };
        let plan = plan(&cur, snap, settings, self.now());

        let removing = plan.removals.len();
        // Memberships count too: a group search that comes back empty must not strip every
        // LDAP group (and every grant that came through them) any more than a broken user
        // search may disable everyone.
        let ldap_groups: HashSet<&str> = cur
            .groups
            .iter()
            .filter(|g| g.source == Source::Ldap)
            .map(|g| g.name.as_str())
            .collect();
        let memberships = cur
            .memberships
            .iter()
            .filter(|(g, _)| ldap_groups.contains(g.as_str()))
            .count();
        let leaving = plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::RemoveMember { .. }))
            .count();
        let too_many_members = memberships >= settings.min_identities_for_share
            && leaving as f64 > settings.max_removal_share * memberships as f64;
        let too_many = too_many_members
            || (plan.active >= settings.min_identities_for_share
                && removing as f64 > settings.max_removal_share * plan.active as f64);
        if too_many && !force {
            if too_many_members
                && removing as f64 <= settings.max_removal_share * plan.active as f64
            {
                return Err(self
                    .refuse_memberships(&actor, leaving, memberships, settings, dry_run)
                    .await?);
            }
            return Err(self.refuse(&actor, &plan, settings, dry_run).await?);
        }

        let mut report = SyncReport {
            skipped: plan.skipped,
            conflicts: plan.conflicts,
            dry_run,
            ..SyncReport::default()
        };
        let jobs = self.jobs_enabled();
        if dry_run {
            let _gate = self.policy_gate_read().await;
            let policy = self.policy();
            let mut tx = self.store().begin().await?;
            let now = self.now();
            for step in plan.steps {
                apply_step(&mut tx, &policy, &actor, step, jobs, now, &mut report).await?;
            }
            tx.rollback().await?;
            return Ok(report);
        }

        let mut steps = plan.steps.into_iter().peekable();
        while steps.peek().is_some() {
            let _gate = self.policy_gate_read().await;
            let policy = self.policy();
            let mut tx = self.store().begin().await?;
            let now = self.now();
            for step in steps.by_ref().take(BATCH) {
                apply_step(&mut tx, &policy, &actor, step, jobs, now, &mut report).await?;
            }
            tx.commit().await?;
        }
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let count = |v: &Vec<String>| v.len() as u64;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::SyncCompleted {
                via: actor.via().to_owned(),
                created: report.created,
                updated: report.updated,
                disabled: report.disabled,
                enabled: report.enabled,
                marked_missing: report.marked_missing,
                disabled_after_grace: report.disabled_after_grace,
                groups_created: report.groups_created,
                groups_updated: report.groups_updated,
                members_added: report.members_added,
                members_removed: report.members_removed,
                grants_revoked: report.grants_revoked,
                requests_cancelled: report.requests_cancelled,
                skipped: count(&report.skipped),
                conflicts: count(&report.conflicts),
                forced: force && too_many,
            },
        )
        .await?;
        tx.commit().await?;
        self.wake_scheduler();
        Ok(report)
    }

    /// Records a run refused for the memberships it would remove (unless dry) and builds its
    /// error.
    async fn refuse_memberships(
        &self,
        actor: &Actor,
        leaving: usize,
        memberships: usize,
        settings: &LdapSyncSettings,
        dry_run: bool,
    ) -> Result<EngineError> {
        if !dry_run {
            let mut tx = self.store().begin().await?;
            tx.audit(
                self.now(),
                Some(actor.name.as_str()),
                &Event::SyncRefused {
                    via: actor.via().to_owned(),
                    would_remove: leaving as u64,
                    active: memberships as u64,
                    max_removal_share: settings.max_removal_share,
                },
            )
            .await?;
            tx.commit().await?;
        }
        Ok(EngineError::conflict(
            "sync_refused",
            format!(
                "this LDAP sync would remove {leaving} of the {memberships} memberships of LDAP groups, more than the allowed share of {}%: nothing was changed. Check the directory's group search (base DN, filter); if the groups really lost them, run the sync again with --force, or raise max_removal_share",
                settings.max_removal_share * 100.0
            ),
        ))
    }

    /// Records a refused run (unless dry) and builds its error.
    async fn refuse(
        &self,
        actor: &Actor,
        plan: &Plan,
        settings: &LdapSyncSettings,
        dry_run: bool,
    ) -> Result<EngineError> {
        let removing = plan.removals.len();
        if !dry_run {
            let mut tx = self.store().begin().await?;
            tx.audit(
                self.now(),
                Some(actor.name.as_str()),
                &Event::SyncRefused {
                    via: actor.via().to_owned(),
                    would_remove: removing as u64,
                    active: plan.active as u64,
                    max_removal_share: settings.max_removal_share,
                },
            )
            .await?;
            tx.commit().await?;
        }
        let some: Vec<&str> = plan.removals.iter().take(5).map(Name::as_str).collect();
        let more = if removing > some.len() { ", …" } else { "" };
        Ok(EngineError::conflict(
            "sync_refused",
            format!(
                "this LDAP sync would mark missing or disable {removing} of the {} active LDAP identities ({}{more}), more than the allowed share of {}%: nothing was changed. Check the directory search (base DN, filter); if the directory really lost them, run the sync again with --force, or raise max_removal_share",
                plan.active,
                some.join(", "),
                settings.max_removal_share * 100.0
            ),
        ))
    }
}

/// The LDAP sync as the server config describes it: the directory, the schedule and the
/// removal safeguards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapSetup {
    /// Where and what to read (see `warrant_ldap::LdapConfig`).
    pub connection: warrant_ldap::LdapConfig,
    /// How often the server pulls, e.g. `15m`; `0s` for never (only `warrant sync ldap`).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// How long an identity may be missing before it is disabled, e.g. `72h`.
    #[serde(default)]
    pub grace: Option<String>,
    /// The largest share of LDAP identities one run may remove (0 to 1).
    #[serde(default)]
    pub max_removal_share: Option<f64>,
}

fn default_interval() -> String {
    "15m".into()
}

fn secs_of(what: &str, v: &str) -> Result<i64> {
    humantime::parse_duration(v.trim())
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(|| {
            EngineError::invalid(
                "invalid_sync_settings",
                format!("ldap.{what}: {v:?} is not a duration such as 15m or 72h"),
            )
        })
}

impl LdapSetup {
    /// The removal safeguards.
    pub fn settings(&self) -> Result<LdapSyncSettings> {
        let mut s = LdapSyncSettings::default();
        if let Some(g) = &self.grace {
            s.grace_secs = secs_of("grace", g)?;
        }
        if let Some(m) = self.max_removal_share {
            s.max_removal_share = m;
        }
        Ok(s)
    }

    /// The pull interval in seconds (0: no schedule).
    pub fn interval_secs(&self) -> Result<i64> {
        secs_of("interval", &self.interval)
    }

    /// Checks the whole setup (at server start, so a bad file fails early).
    pub fn validate(&self) -> Result<()> {
        self.connection
            .validate()
            .map_err(|e| EngineError::invalid("ldap_config", format!("ldap.connection: {e}")))?;
        self.settings()?;
        self.interval_secs()?;
        Ok(())
    }
}

impl Engine {
    /// Reads the directory and applies it: `warrant sync ldap` and the schedule. A directory
    /// that cannot be read changes nothing (`ldap_*` codes, 503).
    pub async fn sync_ldap(
        &self,
        actor: &Actor,
        setup: &LdapSetup,
        dry_run: bool,
        force: bool,
        on_progress: impl FnMut(warrant_ldap::Progress),
    ) -> Result<SyncReport> {
        require_admin(actor)?;
        let settings = setup.settings()?;
        let snap = warrant_ldap::fetch_with_progress(&setup.connection, on_progress)
            .await
            .map_err(|e| EngineError::unavailable(e.code(), format!("LDAP: {e}")))?;
        self.apply_ldap_snapshot(actor, &snap, &settings, dry_run, force)
            .await
    }
}

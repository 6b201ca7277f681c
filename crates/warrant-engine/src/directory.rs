//! Identities and groups, with leaver and mover handling in the same transaction as the change.

use warrant_audit::Event;
use warrant_core::{
    ApproverSource, Group, Identity, IdentityStatus, Name, Secret, Source, Subject, SystemRole,
    Timestamp,
};
use warrant_store::WriteTx;

use crate::access::{revoke_all_of, revoke_ineligible};
use crate::auth::Actor;
use crate::error::{EngineError, Result};
use crate::policy::PolicyState;
use crate::{Engine, require_admin, require_role};

/// A new identity.
#[derive(Debug, Clone)]
pub struct IdentityInput {
    /// Its name.
    pub name: Name,
    /// Human-friendly name (defaults to the name).
    pub display_name: Option<String>,
    /// Email.
    pub email: String,
    /// Manager.
    pub manager: Option<Name>,
    /// System role.
    pub system_role: SystemRole,
    /// Initial password for local sign-in.
    pub password: Option<Secret<String>>,
    /// The source's id for it (the source itself is the actor's channel, [`Actor::via`]).
    pub external_id: Option<String>,
}

/// Changes to an identity's attributes; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct IdentityUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New manager (`Some(None)` clears it).
    pub manager: Option<Option<Name>>,
    /// New system role.
    pub system_role: Option<SystemRole>,
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group.
    pub group: Group,
    /// Its members, by name.
    pub members: Vec<Name>,
}

fn validate_email(email: &str) -> Result<()> {
    let ok = email.is_empty()
        || (email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            && !email.chars().any(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "invalid_email",
            format!("{email:?} is not an email address (name@example.com)"),
        ))
    }
}

pub(crate) async fn load_identity(tx: &mut WriteTx, name: &str) -> Result<Identity> {
    tx.q()
        .identity(name)
        .await?
        .ok_or_else(|| identity_not_found(name))
}

pub(crate) fn identity_not_found(name: &str) -> EngineError {
    EngineError::not_found(
        "identity_not_found",
        format!("no identity named {name:?} (see warrant identities)"),
    )
}

/// Refuses a change to something a directory source owns unless it comes through that source.
pub(crate) fn guard_source(actor: &Actor, kind: &str, name: &str, source: Source) -> Result<()> {
    if source.is_external() && actor.via != source {
        let how = match source {
            Source::Scim => "in the identity provider that provisions it over SCIM",
            Source::Ldap => {
                "in the LDAP directory (Warrant follows at the next `warrant sync ldap`)"
            }
            _ => "at its OpenID provider",
        };
        return Err(EngineError::conflict(
            "source_owned",
            format!("{kind} {name:?} is managed by {source}: change it {how}"),
        ));
    }
    Ok(())
}

pub(crate) fn group_not_found(name: &str) -> EngineError {
    EngineError::not_found(
        "group_not_found",
        format!("no group named {name:?} (see warrant groups; create it with warrant group add)"),
    )
}

/// Custom policies whose text names `Warrant::<kind>::"<name>"`.
async fn policies_naming(tx: &mut WriteTx, kind: &str, name: &str) -> Result<Vec<String>> {
    let pattern = format!(r#"{kind}\s*::\s*"{}""#, regex::escape(name));
    let re = regex::Regex::new(&pattern)
        .map_err(|e| EngineError::internal(format!("policy search pattern: {e}")))?;
    Ok(tx
        .q()
        .policies()
        .await?
        .into_iter()
        .filter(|(_, text)| re.is_match(text))
        .map(|(n, _)| n)
        .collect())
}

async fn check_manager(tx: &mut WriteTx, who: &Name, manager: Option<&Name>) -> Result<()> {
    let Some(m) = manager else { return Ok(()) };
    if m == who {
        return Err(EngineError::invalid(
            "invalid_manager",
            "an identity cannot be its own manager",
        ));
    }
    if tx.q().identity(m.as_str()).await?.is_none() {
        return Err(EngineError::invalid(
            "invalid_manager",
            format!("manager {m:?} is not an identity: create it first"),
        ));
    }
    Ok(())
}

/// Creates an identity inside `tx`.
pub(crate) async fn tx_add_identity(
    tx: &mut WriteTx,
    actor: &Actor,
    input: IdentityInput,
    now: Timestamp,
) -> Result<Identity> {
    validate_email(&input.email)?;
    // Names are unique ignoring case: `Admin` next to `admin` would mislead every reader.
    if let Some(existing) = tx.q().identity_named_ci(input.name.as_str()).await? {
        return Err(EngineError::conflict(
            "identity_exists",
            format!(
                "an identity named {existing:?} already exists (names are unique ignoring case)"
            ),
        ));
    }
    check_manager(tx, &input.name, input.manager.as_ref()).await?;
    let ident = Identity {
        display_name: input
            .display_name
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| input.name.to_string()),
        name: input.name,
        email: input.email,
        status: IdentityStatus::Active,
        manager: input.manager,
        system_role: input.system_role,
        created_at: now,
        source: actor.via,
        external_id: input.external_id.filter(|_| actor.via.is_external()),
    };
    tx.w().await?.save_identity(&ident, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityCreated {
            via: actor.via().to_owned(),
            identity: ident.name.to_string(),
            email: ident.email.clone(),
            system_role: ident.system_role.as_str().to_owned(),
        },
    )
    .await?;
    if let Some(pw) = input.password {
        tx_set_password(tx, actor, &ident.name, pw, now).await?;
    }
    Ok(ident)
}

/// Changes attributes inside `tx`; returns the names of the attributes that changed.
pub(crate) async fn tx_update_identity(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &str,
    u: IdentityUpdate,
    now: Timestamp,
) -> Result<Vec<String>> {
    let mut ident = load_identity(tx, name).await?;
    let owned_change = u
        .display_name
        .as_ref()
        .is_some_and(|d| *d != ident.display_name)
        || u.email.as_ref().is_some_and(|e| *e != ident.email)
        || u.manager.as_ref().is_some_and(|m| *m != ident.manager);
    if owned_change {
        guard_source(actor, "identity", name, ident.source)?;
    }
    let mut changed = Vec::new();
    if let Some(d) = u.display_name.filter(|d| *d != ident.display_name) {
        ident.display_name = d;
        changed.push("display_name".to_owned());
    }
    if let Some(e) = u.email.filter(|e| *e != ident.email) {
        validate_email(&e)?;
        ident.email = e;
        changed.push("email".to_owned());
    }
    if let Some(m) = u.manager.filter(|m| *m != ident.manager) {
        check_manager(tx, &ident.name, m.as_ref()).await?;
        ident.manager = m;
        changed.push("manager".to_owned());
    }
    if let Some(r) = u.system_role.filter(|r| *r != ident.system_role) {
        if ident.name.as_str() == actor.name.as_str() && r < SystemRole::Admin {
            return Err(EngineError::conflict(
                "last_admin",
                "you cannot take the admin role from yourself; ask another admin",
            ));
        }
        ident.system_role = r;
        changed.push("system_role".to_owned());
    }
    if changed.is_empty() {
        return Ok(changed);
    }
    tx.w().await?.save_identity(&ident, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityUpdated {
            via: actor.via().to_owned(),
            identity: ident.name.to_string(),
            changed: changed.clone(),
        },
    )
    .await?;
    Ok(changed)
}

/// Hashes a password with argon2id on a blocking thread (tens of milliseconds of CPU).
pub(crate) async fn hash_password(pw: Secret<String>) -> Result<String> {
    tokio::task::spawn_blocking(move || warrant_iam::hash_password(&pw))
        .await
        .map_err(|e| EngineError::internal(format!("password hashing failed: {e}")))?
        .map_err(Into::into)
}

pub(crate) async fn tx_set_password(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    pw: Secret<String>,
    now: Timestamp,
) -> Result<()> {
    let hash = hash_password(pw).await?;
    tx_set_password_hash(tx, actor, name, &hash, now).await
}

pub(crate) async fn tx_set_password_hash(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    hash: &str,
    now: Timestamp,
) -> Result<()> {
    tx.w()
        .await?
        .set_password_hash(name.as_str(), Some(hash))
        .await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::PasswordSet {
            identity: name.to_string(),
            via: actor.via().to_owned(),
        },
    )
    .await?;
    Ok(())
}

/// Enables or disables (a leaver: grants revoked, requests cancelled, tokens revoked) inside
/// `tx`. Returns the identity and whether anything changed.
pub(crate) async fn tx_set_status(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &str,
    status: IdentityStatus,
    jobs: bool,
    now: Timestamp,
) -> Result<(Identity, bool)> {
    let mut ident = load_identity(tx, name).await?;
    guard_source(actor, "identity", name, ident.source)?;
    if ident.status == status {
        return Ok((ident, false));
    }
    ident.status = status;
    tx.w().await?.save_identity(&ident, now).await?;
    let event = match status {
        IdentityStatus::Disabled => {
            let (g, r) = revoke_all_of(tx, name, "identity disabled", jobs, now).await?;
            tx.w().await?.revoke_tokens_of(name, now).await?;
            Event::IdentityDisabled {
                via: actor.via().to_owned(),
                identity: name.to_owned(),
                grants_revoked: g,
                requests_cancelled: r,
            }
        }
        IdentityStatus::Active => Event::IdentityEnabled {
            via: actor.via().to_owned(),
            identity: name.to_owned(),
        },
    };
    tx.audit(now, Some(actor.name.as_str()), &event).await?;
    Ok((ident, true))
}

/// Deletes an identity (a leaver) inside `tx`; refused while a custom policy names it. The
/// caller holds the policy gate for writing and reloads the policy after committing (rules
/// naming the identity go with it).
pub(crate) async fn tx_delete_identity(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &str,
    jobs: bool,
    now: Timestamp,
) -> Result<()> {
    let ident = load_identity(tx, name).await?;
    // A disabled identity (a leaver already) may be deleted whatever its source: clearing it
    // lets its source create a new identity of that name for someone else.
    if ident.status != IdentityStatus::Disabled {
        guard_source(actor, "identity", name, ident.source)?;
    }
    let naming = policies_naming(tx, "Identity", name).await?;
    if !naming.is_empty() {
        return Err(EngineError::conflict(
            "identity_in_policy",
            format!(
                "identity {name:?} is named in the custom policies {}: edit them first (or disable the identity, which revokes everything just the same)",
                naming.join(", ")
            ),
        ));
    }
    let (g, r) = revoke_all_of(tx, name, "identity deleted", jobs, now).await?;
    tx.w().await?.delete_identity(name, now).await?;
    tx.w().await?.delete_mfa_of(name).await?;
    // Its SCIM resource goes with it, so the IdP cannot reach a later identity of that name.
    tx.w().await?.delete_scim_of("user", name).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::IdentityDeleted {
            via: actor.via().to_owned(),
            identity: name.to_owned(),
            grants_revoked: g,
            requests_cancelled: r,
        },
    )
    .await?;
    Ok(())
}

/// Whether a target, rule, custom policy or pending request's approval stage names the group.
pub(crate) async fn group_in_use(tx: &mut WriteTx, name: &str) -> Result<bool> {
    let owns_target = tx
        .q()
        .targets()
        .await?
        .iter()
        .any(|t| t.owner.as_str() == name);
    let in_rule = tx.q().rules().await?.iter().any(|r| {
        matches!(&r.subject, Subject::Group(g) if g.as_str() == name)
            || r.settings
                .approvals
                .iter()
                .any(|s| matches!(&s.from, ApproverSource::Group(g) if g.as_str() == name))
    });
    let in_policy = !policies_naming(tx, "Group", name).await?.is_empty();
    let pending = tx.q().requests(None, true, i64::MAX).await?;
    let in_pending = pending.iter().any(|r| {
        r.stages
            .iter()
            .any(|s| matches!(&s.from, ApproverSource::Group(g) if g.as_str() == name))
    });
    Ok(owns_target || in_rule || in_policy || in_pending)
}

pub(crate) async fn tx_add_group(
    tx: &mut WriteTx,
    actor: &Actor,
    name: &Name,
    description: &str,
    now: Timestamp,
) -> Result<bool> {
    let existing = tx.q().group(name.as_str()).await?;
    if let Some(g) = &existing {
        guard_source(actor, "group", name.as_str(), g.source)?;
    }
    if existing
        .as_ref()
        .is_some_and(|g| g.description == description)
    {
        return Ok(false);
    }
    let group = Group {
        source: actor.via,
        external_id: existing.as_ref().and_then(|g| g.external_id.clone()),
        ..Group::local(name.clone(), description)
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
    Ok(true)
}

pub(crate) async fn tx_add_member(
    tx: &mut WriteTx,
    actor: &Actor,
    group: &str,
    identity: &str,
    now: Timestamp,
) -> Result<bool> {
    let Some(g) = tx.q().group(group).await? else {
        return Err(group_not_found(group));
    };
    guard_source(actor, "group", group, g.source)?;
    load_identity(tx, identity).await?;
    if !tx.w().await?.add_member(group, identity, now).await? {
        return Ok(false);
    }
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::MemberAdded {
            via: actor.via().to_owned(),
            group: group.to_owned(),
            identity: identity.to_owned(),
        },
    )
    .await?;
    Ok(true)
}

pub(crate) async fn tx_remove_member(
    tx: &mut WriteTx,
    policy: &PolicyState,
    actor: &Actor,
    group: &str,
    identity: &str,
    jobs: bool,
    now: Timestamp,
) -> Result<bool> {
    let Some(g) = tx.q().group(group).await? else {
        return Err(group_not_found(group));
    };
    guard_source(actor, "group", group, g.source)?;
    if !tx.w().await?.remove_member(group, identity).await? {
        return Ok(false);
    }
    let why = format!("{identity} left group {group}");
    let (grants, requests) = revoke_ineligible(tx, policy, identity, &why, jobs, now).await?;
    tx.audit(
        now,
        Some(actor.name.as_str()),
        &Event::MemberRemoved {
            via: actor.via().to_owned(),
            group: group.to_owned(),
            identity: identity.to_owned(),
            grants_revoked: grants,
            requests_cancelled: requests,
        },
    )
    .await?;
    Ok(true)
}

impl Engine {
    /// Every identity (auditors and admins).
    pub async fn identities(&self, actor: &Actor) -> Result<Vec<Identity>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        Ok(r.q().identities().await?)
    }

    /// One identity: oneself, or anyone for auditors and admins.
    pub async fn identity(&self, actor: &Actor, name: &str) -> Result<(Identity, Vec<Name>)> {
        if actor.name.as_str() != name {
            require_role(actor, SystemRole::Auditor)?;
        }
        let mut r = self.store().read().await?;
        let i = r
            .q()
            .identity(name)
            .await?
            .ok_or_else(|| identity_not_found(name))?;
        let groups = r.q().groups_of(name).await?;
        Ok((i, groups))
    }

    /// Creates an identity.
    pub async fn add_identity(&self, actor: &Actor, input: IdentityInput) -> Result<Identity> {
        require_admin(actor)?;
        // Hash before taking the writer: argon2 must not hold up approvals and revocations.
        let mut input = input;
        let hash = match input.password.take() {
            Some(pw) => Some(hash_password(pw).await?),
            None => None,
        };
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let i = tx_add_identity(&mut tx, actor, input, now).await?;
        if let Some(h) = hash {
            tx_set_password_hash(&mut tx, actor, &i.name, &h, now).await?;
        }
        tx.commit().await?;
        Ok(i)
    }

    /// Changes an identity's attributes; returns what changed.
    pub async fn update_identity(
        &self,
        actor: &Actor,
        name: &str,
        u: IdentityUpdate,
    ) -> Result<Vec<String>> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let changed = tx_update_identity(&mut tx, actor, name, u, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Sets a password: one's own (the current password is required), or anyone's for an
    /// admin. The identity's other sign-in sessions end in the same transaction.
    pub async fn set_password(
        &self,
        actor: &Actor,
        name: &str,
        pw: Secret<String>,
        current: Option<Secret<String>>,
    ) -> Result<()> {
        let own = actor.name.as_str() == name;
        if own {
            let stored = {
                let mut r = self.store().read().await?;
                r.q().password_hash(name).await?
            };
            let Some(stored) = stored else {
                return Err(EngineError::forbidden(
                    "no_current_password",
                    "you have no password yet: ask an admin to set one",
                ));
            };
            let current = current.ok_or_else(|| {
                EngineError::invalid(
                    "current_password_required",
                    "changing your own password needs your current password",
                )
            })?;
            let ok = tokio::task::spawn_blocking(move || {
                warrant_iam::verify_password(&current, Some(&stored))
            })
            .await
            .map_err(|e| EngineError::internal(format!("password check failed: {e}")))?;
            if !ok {
                return Err(EngineError::forbidden(
                    "invalid_credentials",
                    "the current password is wrong",
                ));
            }
        } else {
            require_admin(actor)?;
        }
        let hash = hash_password(pw).await?;
        let mut tx = self.store().begin().await?;
        let now = self.now();
        let ident = load_identity(&mut tx, name).await?;
        tx_set_password_hash(&mut tx, actor, &ident.name, &hash, now).await?;
        let keep = if own { actor.token_id.as_deref() } else { None };
        tx.w().await?.revoke_sessions_of(name, keep, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Disables an identity (a leaver): revokes its grants, cancels its pending requests and
    /// revokes its tokens, all in the same transaction. Enabling gives nothing back.
    pub async fn set_identity_status(
        &self,
        actor: &Actor,
        name: &str,
        status: IdentityStatus,
    ) -> Result<Identity> {
        require_admin(actor)?;
        if status == IdentityStatus::Disabled && actor.name.as_str() == name {
            return Err(EngineError::conflict(
                "cannot_disable_self",
                "you cannot disable yourself; ask another admin",
            ));
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let (ident, changed) =
            tx_set_status(&mut tx, actor, name, status, self.jobs_enabled(), now).await?;
        if !changed {
            tx.rollback().await?;
            return Ok(ident);
        }
        tx.commit().await?;
        self.wake_scheduler();
        Ok(ident)
    }

    /// Deletes an identity (a leaver): as disabling, then the identity is gone. Its history
    /// (requests, grants, audit) keeps its name.
    pub async fn delete_identity(&self, actor: &Actor, name: &str) -> Result<()> {
        require_admin(actor)?;
        let _gate = self.policy_gate_write().await;
        if actor.name.as_str() == name {
            return Err(EngineError::conflict(
                "cannot_delete_self",
                "you cannot delete yourself; ask another admin",
            ));
        }
        let now = self.now();
        let mut tx = self.store().begin().await?;
        tx_delete_identity(&mut tx, actor, name, self.jobs_enabled(), now).await?;
        tx.commit().await?;
        self.wake_scheduler();
        self.reload_policy().await
    }

    /// Every group with its members (auditors and admins).
    pub async fn groups(&self, actor: &Actor) -> Result<Vec<GroupView>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        let groups = r.q().groups().await?;
        let memberships = r.q().memberships().await?;
        Ok(groups
            .into_iter()
            .map(|g| GroupView {
                members: memberships
                    .iter()
                    .filter(|(gn, _)| *gn == g.name)
                    .map(|(_, i)| i.clone())
                    .collect(),
                group: g,
            })
            .collect())
    }

    /// Creates a group.
    pub async fn add_group(&self, actor: &Actor, name: &Name, description: &str) -> Result<()> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        if tx.q().group(name.as_str()).await?.is_some() {
            return Err(EngineError::conflict(
                "group_exists",
                format!("a group named {:?} already exists", name.as_str()),
            ));
        }
        tx_add_group(&mut tx, actor, name, description, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a group that no target, rule or approval stage refers to.
    pub async fn delete_group(&self, actor: &Actor, name: &str) -> Result<()> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let Some(group) = tx.q().group(name).await? else {
            return Err(group_not_found(name));
        };
        guard_source(actor, "group", name, group.source)?;
        if group_in_use(&mut tx, name).await? {
            return Err(EngineError::conflict(
                "group_in_use",
                format!(
                    "group {name:?} owns a target, or appears in an eligibility rule, a custom policy or a pending request's approval stages: change those first"
                ),
            ));
        }
        if !tx.q().members(name).await?.is_empty() {
            return Err(EngineError::conflict(
                "group_not_empty",
                format!("group {name:?} still has members: remove them first"),
            ));
        }
        tx.w().await?.delete_group(name).await?;
        tx.audit(
            now,
            Some(actor.name.as_str()),
            &Event::GroupDeleted {
                via: actor.via().to_owned(),
                group: name.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a member to a group.
    pub async fn add_member(&self, actor: &Actor, group: &str, identity: &str) -> Result<bool> {
        require_admin(actor)?;
        let now = self.now();
        let mut tx = self.store().begin().await?;
        let added = tx_add_member(&mut tx, actor, group, identity, now).await?;
        if added {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(added)
    }

    /// Removes a member (a mover): grants and pending requests whose eligibility came only
    /// through this group are revoked and cancelled in the same transaction.
    pub async fn remove_member(&self, actor: &Actor, group: &str, identity: &str) -> Result<bool> {
        require_admin(actor)?;
        let _gate = self.policy_gate_read().await;
        let now = self.now();
        let policy = self.policy();
        let mut tx = self.store().begin().await?;
        let removed = tx_remove_member(
            &mut tx,
            &policy,
            actor,
            group,
            identity,
            self.jobs_enabled(),
            now,
        )
        .await?;
        if removed {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(removed)
    }
}

//! Reads users and groups from OpenLDAP or Active Directory: the LDAP side of Warrant's
//! directory sync. The sync engine diffs the [`Snapshot`] against Warrant's directory; this crate
//! only reads.
//!
//! [`fetch`] connects (plain, StartTLS or LDAPS; rustls with aws-lc-rs, trusting a CA file or the
//! system roots), binds, runs two paged subtree searches (RFC 2696, so directories larger than
//! AD's 1000-entry page work) and resolves what the entries refer to: managers, nested groups
//! (transitively, cycle-safe) through groups' `member` or users' and groups' `memberOf`.
//!
//! * `config` — [`LdapConfig`], presets for OpenLDAP and Active Directory, [`LdapConfig::validate`].
//! * `client` — connection, TLS, bind and paged search over `ldap3`.
//! * `entry` — attribute lookup ignoring case, AD's binary GUIDs ([`format_guid`]), ranged values.
//! * `dn` — DN comparison keys ([`normalize_dn`]).
//! * `snapshot` — [`Snapshot`] from the entries: pure, unit-tested without a server.
//! * `error` — [`LdapError`] with stable codes.
//!
//! The bind password is a [`warrant_core::Secret`]: it is sent in the bind and nowhere else, never
//! in an error or a log line.

mod client;
mod config;
mod dn;
mod entry;
mod error;
mod snapshot;

pub use config::{
    Attributes, DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_SECS, Disabled, IdFormat, LdapConfig,
    Membership, Preset, TlsMode,
};
pub use dn::normalize as normalize_dn;
pub use entry::format_guid;
pub use error::LdapError;
pub use snapshot::{EntryKind, LdapGroup, LdapUser, SkipReason, Skipped, Snapshot};

use client::Session;
use config::Membership as M;
use entry::Entry;

/// Which search a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading user entries.
    Users,
    /// Reading group entries.
    Groups,
}

/// How far a fetch is: reported after every entry read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The search under way.
    pub phase: Phase,
    /// Entries read so far in this phase.
    pub entries: u64,
}

/// Reads the directory described by `cfg` (validated first) into a [`Snapshot`].
pub async fn fetch(cfg: &LdapConfig) -> Result<Snapshot, LdapError> {
    fetch_with_progress(cfg, |_| {}).await
}

/// Like [`fetch`], calling `on_entry` after every entry read, e.g. to draw a progress bar.
pub async fn fetch_with_progress(
    cfg: &LdapConfig,
    mut on_entry: impl FnMut(Progress),
) -> Result<Snapshot, LdapError> {
    cfg.validate()?;
    let a = &cfg.attributes;
    let mut session = Session::open(cfg).await?;

    let mut user_attrs = vec![
        a.name.clone(),
        a.display_name.clone(),
        a.email.clone(),
        a.id.clone(),
    ];
    user_attrs.extend(a.manager.clone());
    match &cfg.disabled {
        Disabled::None => {}
        Disabled::ActiveDirectory => user_attrs.push("userAccountControl".to_owned()),
        Disabled::Attribute { name, .. } => user_attrs.push(name.clone()),
    }
    let membership_attr = match cfg.membership {
        M::Member => a.member.clone(),
        M::MemberOf => a.member_of.clone(),
    };
    if cfg.membership == M::MemberOf {
        user_attrs.push(membership_attr.clone());
    }
    let group_attrs = vec![a.group_name.clone(), a.id.clone(), membership_attr.clone()];

    let result = async {
        let mut users = session
            .search_all(
                cfg.user_base(),
                &cfg.user_filter,
                &dedup(user_attrs),
                cfg.page_size,
                |entries| {
                    on_entry(Progress {
                        phase: Phase::Users,
                        entries,
                    });
                },
            )
            .await?;
        let mut groups = session
            .search_all(
                cfg.group_base(),
                &cfg.group_filter,
                &dedup(group_attrs),
                cfg.page_size,
                |entries| {
                    on_entry(Progress {
                        phase: Phase::Groups,
                        entries,
                    });
                },
            )
            .await?;
        // AD hands out at most 1500 values of a multi-valued attribute per entry and says so
        // with `member;range=0-1499`: fetch the rest.
        let ranged = if cfg.membership == M::MemberOf {
            users
                .iter_mut()
                .chain(groups.iter_mut())
                .collect::<Vec<_>>()
        } else {
            groups.iter_mut().collect()
        };
        for entry in ranged {
            read_remaining_ranges(&mut session, entry, &membership_attr).await?;
        }
        Ok::<_, LdapError>((users, groups))
    }
    .await;
    session.close().await;
    let (users, groups) = result?;
    Ok(snapshot::build(cfg, users, groups))
}

/// Fetches the rest of a ranged attribute of `entry` (`attr;range=N-*` until the last range).
async fn read_remaining_ranges(
    session: &mut Session,
    entry: &mut Entry,
    attr: &str,
) -> Result<(), LdapError> {
    let mut next = entry.merge_range(attr);
    while let Some(start) = next {
        let request = vec![format!("{attr};range={start}-*")];
        let Some(mut more) = session.read(&entry.dn, &request).await? else {
            break;
        };
        let values = more.merge_range(attr);
        let got = more.raw(attr).to_vec();
        entry
            .attrs
            .entry(attr.to_ascii_lowercase())
            .or_default()
            .extend(got);
        // Each answer must move forward; a server that repeats itself ends the loop.
        next = values.filter(|&n| n > start);
    }
    Ok(())
}

/// The attribute list without repeats (ignoring case), in first-seen order.
fn dedup(attrs: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    attrs
        .into_iter()
        .filter(|a| seen.insert(a.to_ascii_lowercase()))
        .collect()
}

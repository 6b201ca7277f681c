//! [`LdapConfig`]: where the directory is, how to reach it and how its entries map to users and
//! groups; presets for OpenLDAP and Active Directory.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warrant_core::Secret;

use crate::LdapError;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain LDAP: the bind password crosses the network in the clear. Only for `ldap://`.
    None,
    /// `ldap://`, then the StartTLS extended operation before the bind.
    Starttls,
    /// TLS from the first byte; the URL is `ldaps://`.
    Ldaps,
}

/// Defaults for the filters, attributes, membership and disabled flag of a directory product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// `inetOrgPerson` users (`uid`, `cn`, `mail`, `entryUUID`), `groupOfNames` groups with
    /// `member`, no disabled flag.
    Openldap,
    /// `user`/`person` users (`sAMAccountName`, `displayName`, `mail`, `objectGUID`), `group`
    /// groups with `member`, disabled by `userAccountControl` bit 0x2.
    ActiveDirectory,
}

/// Where group membership is read from. Either way, Active Directory's primary group of a user
/// (`primaryGroupID`, usually Domain Users) is listed in neither attribute and so not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// Each group's `member` attribute lists user DNs and nested group DNs.
    Member,
    /// Each user's `memberOf` attribute lists the groups they are directly in, and each group's
    /// `memberOf` the groups it is nested in (AD, or OpenLDAP with the memberof overlay).
    MemberOf,
}

/// How a disabled user is recognised. A disabled user is still in the snapshot, with
/// `disabled: true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disabled {
    /// Users are never disabled by the directory (they leave by being deleted).
    None,
    /// Active Directory: bit 0x2 (`ACCOUNTDISABLE`) of `userAccountControl`. A user without a
    /// readable `userAccountControl` is skipped, not assumed enabled.
    ActiveDirectory,
    /// The user has attribute `name`; with `value`, one of its values equals `value` (ignoring
    /// case), e.g. `employeeType: disabled`; without, any value at all, e.g.
    /// `pwdAccountLockedTime`.
    Attribute {
        /// The attribute, e.g. `employeeType` or `pwdAccountLockedTime`.
        name: String,
        /// The value that means disabled; `None` means presence alone does.
        #[serde(default)]
        value: Option<String>,
    },
}

/// How an identifier attribute's values are turned into `external_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// The value is text and used as it is (OpenLDAP `entryUUID`).
    Text,
    /// The value is a 16-byte binary GUID in Microsoft's layout (AD `objectGUID`), written as
    /// the canonical lower-case string `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    Guid,
}

/// Which attribute holds what. Names are matched without regard to case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// The user's login name: `uid` or `sAMAccountName`. Users without it are skipped.
    pub name: String,
    /// The user's display name: `cn` or `displayName`; the name when missing.
    pub display_name: String,
    /// The user's e-mail address: `mail`.
    pub email: String,
    /// The stable identifier of users and groups: `entryUUID` or `objectGUID`.
    pub id: String,
    /// How [`id`](Self::id) is read; by default `Guid` for `objectGUID`, else `Text`.
    pub id_format: IdFormat,
    /// The user's manager's DN: `manager`; `None` to not read managers.
    pub manager: Option<String>,
    /// The group's name: `cn`.
    pub group_name: String,
    /// The group attribute that lists members (with [`Membership::Member`]): `member`.
    pub member: String,
    /// The attribute that lists the groups an entry is in (with [`Membership::MemberOf`]):
    /// `memberOf`.
    pub member_of: String,
}

/// Default page size: below Active Directory's `MaxPageSize` of 1000.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Default timeout in seconds for the connection and for each operation (each page).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Everything needed to read users and groups from one directory.
///
/// Deserialised from the sync configuration: `url` and `base_dn` are required; `preset`
/// (`openldap` or `active_directory`) fills in the filters, attributes, membership and disabled
/// flag, each of which can still be set explicitly. Without a preset, `user_filter`,
/// `group_filter` and the `name` and `id` attributes must be given. Unknown keys are refused.
///
/// ```yaml
/// url: ldaps://dc1.corp.example.com
/// ca_file: /etc/warrant/corp-ca.pem
/// bind_dn: CN=warrant-sync,OU=Service,DC=corp,DC=example,DC=com
/// bind_password: "..."
/// base_dn: DC=corp,DC=example,DC=com
/// preset: active_directory
/// group_base_dn: OU=Groups,DC=corp,DC=example,DC=com
/// ```
///
/// Call [`validate`](Self::validate) after building one by hand; [`fetch`](crate::fetch) does.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ConfigFile")]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// How the connection is protected; from the file, `ldaps` for `ldaps://` and `none` for
    /// `ldap://` unless set.
    pub tls: TlsMode,
    /// PEM file of the CA certificate(s) that may sign the server's certificate; when absent,
    /// the system's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// The DN to bind as; anonymous when absent.
    pub bind_dn: Option<String>,
    /// The bind password; required with `bind_dn`. Never printed.
    pub bind_password: Option<Secret<String>>,
    /// Where to search when `user_base_dn` / `group_base_dn` are not set.
    pub base_dn: String,
    /// Where to search for users (subtree); `base_dn` when absent.
    pub user_base_dn: Option<String>,
    /// Where to search for groups (subtree); `base_dn` when absent.
    pub group_base_dn: Option<String>,
    /// Which entries are users, e.g. `(objectClass=inetOrgPerson)`.
    pub user_filter: String,
    /// Which entries are groups, e.g. `(objectClass=groupOfNames)`.
    pub group_filter: String,
    /// Which attribute holds what.
    pub attributes: Attributes,
    /// Where group membership is read from.
    pub membership: Membership,
    /// How a disabled user is recognised.
    pub disabled: Disabled,
    /// Entries per page of the paged search (RFC 2696).
    pub page_size: u32,
    /// Timeout for connecting (TCP and TLS), for the bind and for each page of a search.
    pub timeout_secs: u64,
}

impl LdapConfig {
    /// A configuration with every default of `preset`: anonymous, TLS as the URL's scheme says
    /// (`ldaps` for `ldaps://`, else none), the system's trusted roots.
    #[must_use]
    pub fn with_preset(preset: Preset, url: impl Into<String>, base_dn: impl Into<String>) -> Self {
        let url = url.into();
        let d = PresetDefaults::of(preset);
        let id = d.id.to_owned();
        Self {
            tls: tls_from_scheme(&url),
            url,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            base_dn: base_dn.into(),
            user_base_dn: None,
            group_base_dn: None,
            user_filter: d.user_filter.to_owned(),
            group_filter: d.group_filter.to_owned(),
            attributes: Attributes {
                name: d.name.to_owned(),
                display_name: d.display_name.to_owned(),
                email: "mail".to_owned(),
                id_format: default_id_format(&id),
                id,
                manager: Some("manager".to_owned()),
                group_name: "cn".to_owned(),
                member: "member".to_owned(),
                member_of: "memberOf".to_owned(),
            },
            membership: Membership::Member,
            disabled: d.disabled,
            page_size: DEFAULT_PAGE_SIZE,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }

    /// Binds as `bind_dn` with `password` instead of anonymously.
    #[must_use]
    pub fn with_bind(mut self, bind_dn: impl Into<String>, password: Secret<String>) -> Self {
        self.bind_dn = Some(bind_dn.into());
        self.bind_password = Some(password);
        self
    }

    /// The base of the user search.
    #[must_use]
    pub fn user_base(&self) -> &str {
        self.user_base_dn.as_deref().unwrap_or(&self.base_dn)
    }

    /// The base of the group search.
    #[must_use]
    pub fn group_base(&self) -> &str {
        self.group_base_dn.as_deref().unwrap_or(&self.base_dn)
    }

    /// [`timeout_secs`](Self::timeout_secs) as a duration.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Checks that the configuration can work, with a message that says what to change:
    /// the URL and its scheme against `tls`, `ca_file` only with TLS and readable, bind DN and
    /// password together, DNs, filter syntax, attribute names, page size and timeout.
    pub fn validate(&self) -> Result<(), LdapError> {
        let bad = |msg: String| Err(LdapError::Config(msg));
        let endpoint = Endpoint::parse(&self.url)?;
        match (endpoint.ldaps, self.tls) {
            (true, TlsMode::Starttls) => {
                return bad(format!(
                    "tls: starttls does not go with the ldaps:// URL {} (ldaps is TLS from the \
                     first byte): use an ldap:// URL for StartTLS, or tls: ldaps",
                    self.url
                ));
            }
            (true, TlsMode::None) => {
                return bad(format!(
                    "tls: none contradicts the ldaps:// URL {}: use an ldap:// URL for plain \
                     LDAP, or tls: ldaps",
                    self.url
                ));
            }
            (false, TlsMode::Ldaps) => {
                return bad(format!(
                    "tls: ldaps needs an ldaps:// URL, not {} (for TLS on an ldap:// port use \
                     tls: starttls)",
                    self.url
                ));
            }
            _ => {}
        }
        if let Some(ca_file) = &self.ca_file {
            if self.tls == TlsMode::None {
                return bad(format!(
                    "ca_file {} is set but tls is none: use tls: starttls or an ldaps:// URL",
                    ca_file.display()
                ));
            }
            if !ca_file.is_file() {
                return bad(format!(
                    "ca_file {} does not exist or is not a file",
                    ca_file.display()
                ));
            }
        }
        match (&self.bind_dn, &self.bind_password) {
            (Some(dn), None) => {
                return bad(format!("bind_dn {dn} is set but bind_password is not"));
            }
            (None, Some(_)) => return bad("bind_password is set but bind_dn is not".to_owned()),
            (Some(dn), Some(pw)) if pw.expose().is_empty() => {
                // An empty password is an unauthenticated bind (RFC 4513 5.1.2): it "succeeds"
                // without checking anything.
                return bad(format!(
                    "bind_password for {dn} is empty (an empty password is an unauthenticated \
                     bind): set the password, or drop bind_dn for an anonymous bind"
                ));
            }
            (Some(dn), _) => check_dn("bind_dn", dn)?,
            (None, None) => {}
        }
        check_dn("base_dn", &self.base_dn)?;
        if let Some(dn) = &self.user_base_dn {
            check_dn("user_base_dn", dn)?;
        }
        if let Some(dn) = &self.group_base_dn {
            check_dn("group_base_dn", dn)?;
        }
        check_filter("user_filter", &self.user_filter)?;
        check_filter("group_filter", &self.group_filter)?;
        let a = &self.attributes;
        for (key, value) in [
            ("name", Some(&a.name)),
            ("display_name", Some(&a.display_name)),
            ("email", Some(&a.email)),
            ("id", Some(&a.id)),
            ("manager", a.manager.as_ref()),
            ("group_name", Some(&a.group_name)),
            ("member", Some(&a.member)),
            ("member_of", Some(&a.member_of)),
        ] {
            if let Some(value) = value {
                check_attribute(&format!("attributes.{key}"), value)?;
            }
        }
        if let Disabled::Attribute { name, value } = &self.disabled {
            check_attribute("disabled.attribute.name", name)?;
            if value.as_deref().is_some_and(str::is_empty) {
                return bad(
                    "disabled.attribute.value is empty: leave it out to mean \"the attribute \
                     is present\""
                        .to_owned(),
                );
            }
        }
        if self.page_size == 0 || i32::try_from(self.page_size).is_err() {
            return bad(format!(
                "page_size {} is out of range: use 1 to {} (Active Directory answers at most \
                 1000 per page)",
                self.page_size,
                i32::MAX
            ));
        }
        if !(1..=3600).contains(&self.timeout_secs) {
            return bad(format!(
                "timeout_secs {} is out of range: use 1 to 3600",
                self.timeout_secs
            ));
        }
        Ok(())
    }
}

/// The host and port of an `ldap://` / `ldaps://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The host as written (no brackets around IPv6 addresses).
    pub host: String,
    pub port: u16,
    pub ldaps: bool,
}

impl Endpoint {
    pub(crate) fn parse(raw: &str) -> Result<Self, LdapError> {
        let bad = |why: &str| {
            Err(LdapError::Config(format!(
                "url {raw:?} {why}: use ldap://host[:port] or ldaps://host[:port]"
            )))
        };
        let Ok(url) = url::Url::parse(raw) else {
            return bad("is not a URL");
        };
        let ldaps = match url.scheme() {
            "ldap" => false,
            "ldaps" => true,
            _ => return bad("has an unsupported scheme"),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return bad("has no host"),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return bad("carries credentials (use bind_dn and bind_password)");
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return bad("has a DN, attributes or a filter (set base_dn and the filters instead)");
        }
        let port = url.port().unwrap_or(if ldaps { 636 } else { 389 });
        Ok(Self { host, port, ldaps })
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn tls_from_scheme(url: &str) -> TlsMode {
    if url.trim_start().to_ascii_lowercase().starts_with("ldaps:") {
        TlsMode::Ldaps
    } else {
        TlsMode::None
    }
}

fn default_id_format(id_attribute: &str) -> IdFormat {
    if id_attribute.eq_ignore_ascii_case("objectGUID") {
        IdFormat::Guid
    } else {
        IdFormat::Text
    }
}

fn check_dn(key: &str, dn: &str) -> Result<(), LdapError> {
    let components = crate::dn::parse(dn);
    let valid = components.as_ref().is_some_and(|c| !c.is_empty());
    if valid {
        Ok(())
    } else {
        Err(LdapError::Config(format!(
            "{key} {dn:?} is not a distinguished name (e.g. dc=example,dc=com)"
        )))
    }
}

fn check_filter(key: &str, filter: &str) -> Result<(), LdapError> {
    if ldap3::parse_filter(filter).is_ok() {
        Ok(())
    } else {
        Err(LdapError::Config(format!(
            "{key} {filter:?} is not a valid LDAP filter (RFC 4515), e.g. \
             (objectClass=inetOrgPerson) or (&(objectClass=user)(objectCategory=person))"
        )))
    }
}

/// An attribute description without options: a name (`[A-Za-z][A-Za-z0-9-]*`) or an OID.
fn check_attribute(key: &str, name: &str) -> Result<(), LdapError> {
    let is_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let is_oid = !name.is_empty()
        && name
            .split('.')
            .all(|arc| !arc.is_empty() && arc.chars().all(|c| c.is_ascii_digit()));
    if is_name || is_oid {
        Ok(())
    } else {
        Err(LdapError::Config(format!(
            "{key} {name:?} is not an attribute name (letters, digits and '-', starting with a \
             letter)"
        )))
    }
}

struct PresetDefaults {
    user_filter: &'static str,
    group_filter: &'static str,
    name: &'static str,
    display_name: &'static str,
    id: &'static str,
    disabled: Disabled,
}

impl PresetDefaults {
    fn of(preset: Preset) -> Self {
        match preset {
            Preset::Openldap => Self {
                user_filter: "(objectClass=inetOrgPerson)",
                group_filter: "(objectClass=groupOfNames)",
                name: "uid",
                display_name: "cn",
                id: "entryUUID",
                disabled: Disabled::None,
            },
            Preset::ActiveDirectory => Self {
                user_filter: "(&(objectClass=user)(objectCategory=person))",
                group_filter: "(objectClass=group)",
                name: "sAMAccountName",
                display_name: "displayName",
                id: "objectGUID",
                disabled: Disabled::ActiveDirectory,
            },
        }
    }
}

/// The configuration as written: everything a preset supplies is optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    url: String,
    #[serde(default)]
    tls: Option<TlsMode>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    bind_dn: Option<String>,
    #[serde(default)]
    bind_password: Option<Secret<String>>,
    base_dn: String,
    #[serde(default)]
    user_base_dn: Option<String>,
    #[serde(default)]
    group_base_dn: Option<String>,
    #[serde(default)]
    user_filter: Option<String>,
    #[serde(default)]
    group_filter: Option<String>,
    #[serde(default)]
    attributes: AttributesFile,
    #[serde(default)]
    membership: Option<Membership>,
    #[serde(default)]
    disabled: Option<Disabled>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    preset: Option<Preset>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributesFile {
    name: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    id: Option<String>,
    id_format: Option<IdFormat>,
    /// `manager: ""` turns reading managers off.
    manager: Option<String>,
    group_name: Option<String>,
    member: Option<String>,
    member_of: Option<String>,
}

impl TryFrom<ConfigFile> for LdapConfig {
    type Error = String;

    fn try_from(f: ConfigFile) -> Result<Self, String> {
        let defaults = f.preset.map(PresetDefaults::of);
        let required = |value: Option<String>, key: &str, pick: fn(&PresetDefaults) -> &str| {
            value
                .or_else(|| defaults.as_ref().map(|d| pick(d).to_owned()))
                .ok_or_else(|| {
                    format!(
                        "{key} is missing: set it, or set preset: openldap or \
                         preset: active_directory for the usual defaults"
                    )
                })
        };
        let user_filter = required(f.user_filter, "user_filter", |d| d.user_filter)?;
        let group_filter = required(f.group_filter, "group_filter", |d| d.group_filter)?;
        let a = f.attributes;
        let name = required(a.name, "attributes.name", |d| d.name)?;
        let id = required(a.id, "attributes.id", |d| d.id)?;
        let display_name = a
            .display_name
            .or_else(|| defaults.as_ref().map(|d| d.display_name.to_owned()))
            .unwrap_or_else(|| "cn".to_owned());
        let manager = match a.manager {
            Some(m) if m.is_empty() => None,
            Some(m) => Some(m),
            None => Some("manager".to_owned()),
        };
        let tls = f.tls.unwrap_or_else(|| tls_from_scheme(&f.url));
        Ok(Self {
            url: f.url,
            tls,
            ca_file: f.ca_file,
            bind_dn: f.bind_dn,
            bind_password: f.bind_password,
            base_dn: f.base_dn,
            user_base_dn: f.user_base_dn,
            group_base_dn: f.group_base_dn,
            user_filter,
            group_filter,
            attributes: Attributes {
                name,
                display_name,
                email: a.email.unwrap_or_else(|| "mail".to_owned()),
                id_format: a.id_format.unwrap_or_else(|| default_id_format(&id)),
                id,
                manager,
                group_name: a.group_name.unwrap_or_else(|| "cn".to_owned()),
                member: a.member.unwrap_or_else(|| "member".to_owned()),
                member_of: a.member_of.unwrap_or_else(|| "memberOf".to_owned()),
            },
            membership: f.membership.unwrap_or(Membership::Member),
            disabled: f
                .disabled
                .or_else(|| defaults.map(|d| d.disabled))
                .unwrap_or(Disabled::None),
            page_size: f.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            timeout_secs: f.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn parse(json: &str) -> Result<LdapConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn config_error(cfg: &LdapConfig) -> String {
        match cfg.validate() {
            Err(LdapError::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn active_directory_preset_fills_everything_and_overrides_win() {
        let cfg = parse(
            r#"{"url": "ldaps://dc1.example.com", "base_dn": "DC=example,DC=com",
                "preset": "active_directory", "group_base_dn": "OU=Groups,DC=example,DC=com",
                "attributes": {"group_name": "sAMAccountName"},
                "bind_dn": "CN=sync,DC=example,DC=com", "bind_password": "hunter2-canary"}"#,
        )
        .unwrap();
        assert_eq!(cfg.tls, TlsMode::Ldaps);
        assert_eq!(
            cfg.user_filter,
            "(&(objectClass=user)(objectCategory=person))"
        );
        assert_eq!(cfg.group_filter, "(objectClass=group)");
        assert_eq!(cfg.attributes.name, "sAMAccountName");
        assert_eq!(cfg.attributes.id, "objectGUID");
        assert_eq!(cfg.attributes.id_format, IdFormat::Guid);
        assert_eq!(cfg.attributes.group_name, "sAMAccountName");
        assert_eq!(cfg.disabled, Disabled::ActiveDirectory);
        assert_eq!(cfg.user_base(), "DC=example,DC=com");
        assert_eq!(cfg.group_base(), "OU=Groups,DC=example,DC=com");
        assert_eq!(cfg.page_size, 500);
        assert_eq!(cfg.timeout_secs, 30);
        cfg.validate().unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2-canary"));
    }

    #[test]
    fn openldap_preset_and_explicit_settings() {
        let cfg = parse(
            r#"{"url": "ldap://ldap.example.com:1389", "tls": "starttls",
                "base_dn": "dc=example,dc=com", "preset": "openldap", "membership": "member_of",
                "disabled": {"attribute": {"name": "employeeType", "value": "disabled"}},
                "page_size": 50, "timeout_secs": 5}"#,
        )
        .unwrap();
        assert_eq!(cfg.tls, TlsMode::Starttls);
        assert_eq!(cfg.attributes.name, "uid");
        assert_eq!(cfg.attributes.id_format, IdFormat::Text);
        assert_eq!(cfg.membership, Membership::MemberOf);
        assert_eq!(
            cfg.disabled,
            Disabled::Attribute {
                name: "employeeType".into(),
                value: Some("disabled".into())
            }
        );
        cfg.validate().unwrap();
        let endpoint = Endpoint::parse(&cfg.url).unwrap();
        assert_eq!(endpoint.address(), "ldap.example.com:1389");
    }

    #[test]
    fn without_preset_the_essentials_are_required() {
        let err = parse(r#"{"url": "ldap://h", "base_dn": "dc=x", "group_filter": "(cn=*)"}"#)
            .unwrap_err();
        assert!(err.contains("user_filter is missing"), "{err}");
        let err =
            parse(r#"{"url": "ldap://h", "base_dn": "dc=x", "preset": "openldap", "colour": 1}"#)
                .unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn validate_explains_what_to_change() {
        let base = || LdapConfig::with_preset(Preset::Openldap, "ldap://127.0.0.1:389", "dc=x");
        base().validate().unwrap();

        let mut cfg = LdapConfig::with_preset(Preset::Openldap, "ldaps://h", "dc=x");
        cfg.tls = TlsMode::Starttls;
        assert!(config_error(&cfg).contains("starttls does not go with the ldaps:// URL"));

        let mut cfg = base();
        cfg.tls = TlsMode::Ldaps;
        assert!(config_error(&cfg).contains("tls: ldaps needs an ldaps:// URL"));

        let mut cfg = base();
        cfg.url = "http://h".into();
        assert!(config_error(&cfg).contains("unsupported scheme"));

        let mut cfg = base();
        cfg.url = "ldap://h/dc=x?uid".into();
        assert!(config_error(&cfg).contains("has a DN"));

        let mut cfg = base();
        cfg.ca_file = Some("/etc/hostname".into());
        assert!(config_error(&cfg).contains("but tls is none"));

        let mut cfg = base();
        cfg.tls = TlsMode::Starttls;
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(config_error(&cfg).contains("/nonexistent/ca.pem does not exist"));

        let mut cfg = base();
        cfg.bind_dn = Some("cn=sync,dc=x".into());
        assert!(config_error(&cfg).contains("bind_password is not"));

        let cfg = base().with_bind("cn=sync,dc=x", Secret::new(String::new()));
        assert!(config_error(&cfg).contains("unauthenticated bind"));

        let mut cfg = base();
        cfg.user_filter = "(objectClass=inetOrgPerson".into();
        let msg = config_error(&cfg);
        assert!(
            msg.contains("user_filter \"(objectClass=inetOrgPerson\" is not a valid LDAP filter"),
            "{msg}"
        );
        assert_eq!(cfg.validate().unwrap_err().code(), "ldap_config");

        let mut cfg = base();
        cfg.base_dn = "example.com".into();
        assert!(config_error(&cfg).contains("base_dn \"example.com\" is not a distinguished name"));

        let mut cfg = base();
        cfg.attributes.name = "u id".into();
        assert!(config_error(&cfg).contains("attributes.name"));

        let mut cfg = base();
        cfg.page_size = 0;
        assert!(config_error(&cfg).contains("page_size 0"));
    }
}

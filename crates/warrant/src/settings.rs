//! The server's config file (`warrant serve --config FILE`, YAML): the directory sources and
//! session timeouts. Everything else is a flag. The file may hold secrets (the OIDC client
//! secret, the LDAP bind password): keep it readable by the server's user only.
//!
//! ```yaml
//! sessions: { idle: 1h, absolute: 12h }
//! oidc:
//!   provider: { issuer: https://idp.example.com, client_id: warrant, client_secret: ... }
//!   group_mapping: { pam-dba: dba }
//!   redirect_uris: ["http://127.0.0.1/callback"]
//! ldap:
//!   connection: { preset: active_directory, url: ldaps://dc1:636, base_dn: "dc=corp,dc=example" }
//!   interval: 15m
//! webauthn: { rp_id: warrant.example.com, rp_origin: "https://warrant.example.com" }
//! audit:
//!   checkpoint_every: 1m
//!   sinks:
//!     - name: siem
//!       syslog: { address: "siem.example.com:6514", tls: { ca_file: /etc/warrant/siem-ca.pem } }
//!       mandatory: { max_lag: 30s }
//!     - { name: archive, file: { path: /var/log/warrant/audit.jsonl }, format: jsonl }
//!     - { name: soar, webhook: { url: "https://soar.example.com/hook", secret_env: SOAR_SECRET } }
//!   retention: { keep: 400d, every: 1h, archive_dir: /var/lib/warrant/audit-archive }
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use warrant_engine::oidc::OidcSignIn;
use warrant_engine::sync::LdapSetup;
use warrant_engine::webauthn::WebauthnSettings;

/// Session timeouts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// A session unused this long ends, e.g. `1h`.
    pub idle: Option<String>,
    /// A session ends this long after sign-in whatever happens, e.g. `12h`.
    pub absolute: Option<String>,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Session timeouts.
    #[serde(default)]
    pub sessions: Sessions,
    /// OIDC sign-in.
    #[serde(default)]
    pub oidc: Option<OidcSignIn>,
    /// LDAP sync.
    #[serde(default)]
    pub ldap: Option<LdapSetup>,
    /// WebAuthn (security keys as a second factor): the relying party.
    #[serde(default)]
    pub webauthn: Option<WebauthnSettings>,
    /// Scheduled discovery of privileged accounts.
    #[serde(default)]
    pub discovery: Discovery,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditSettings,
}

/// `audit:` in the server config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// How often the chain's head is signed (a checkpoint), e.g. `1m`; default 1m. It is
    /// also signed at shutdown, and skipped while nothing new was recorded.
    #[serde(default)]
    pub checkpoint_every: Option<String>,
    /// Where the trail is delivered (SIEM): syslog, webhook or file sinks.
    #[serde(default)]
    pub sinks: Vec<warrant_engine::sinks::SinkConfig>,
    /// How long records stay in the store before they are archived and pruned.
    #[serde(default)]
    pub retention: Retention,
}

/// `audit: retention:` in the server config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Records older than this are archived and pruned, e.g. `400d`; absent: kept forever
    /// (`warrant audit prune` still works).
    #[serde(default)]
    pub keep: Option<String>,
    /// How often retention runs (default `1h`).
    #[serde(default)]
    pub every: Option<String>,
    /// Where the signed archives go (default `DATA_DIR/audit-archive`).
    #[serde(default)]
    pub archive_dir: Option<std::path::PathBuf>,
}

/// `discovery:` in the server config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Scan every PostgreSQL and SSH target on this period (e.g. `24h`); absent: only
    /// `warrant discover`.
    #[serde(default)]
    pub every: Option<String>,
}

/// Seconds of a duration setting.
pub fn secs(what: &str, v: &str) -> Result<i64> {
    let d = humantime::parse_duration(v.trim())
        .with_context(|| format!("{what}: {v:?} is not a duration such as 30m or 12h"))?;
    let s = i64::try_from(d.as_secs()).context("duration too long")?;
    if s <= 0 {
        bail!("{what}: must be longer than 0s");
    }
    Ok(s)
}

/// Reads and checks the file.
pub fn load(path: &Path) -> Result<ServerConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let cfg: ServerConfig = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("the config file {} is not valid", path.display()))?;
    if let Some(v) = &cfg.sessions.idle {
        secs("sessions.idle", v)?;
    }
    if let Some(v) = &cfg.sessions.absolute {
        secs("sessions.absolute", v)?;
    }
    if let Some(w) = &cfg.webauthn {
        w.build()
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
    }
    if let Some(l) = &cfg.ldap {
        l.validate()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    if let Some(v) = &cfg.discovery.every {
        secs("discovery.every", v)?;
    }
    Ok(cfg)
}

//! [`OidcConfig`]: which provider to trust and how Warrant is registered there.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use url::{Host, Url};
use warrant_core::Secret;

use crate::OidcError;

/// The scopes asked for when the configuration names none.
pub const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The claim that carries group names when the configuration names none.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// How Warrant signs people in with an OpenID provider.
///
/// ```
/// let cfg: warrant_oidc::OidcConfig = serde_json::from_str(
///     r#"{"issuer": "https://idp.example.com/realms/corp", "client_id": "warrant",
///         "client_secret": "s3cret"}"#,
/// ).unwrap();
/// assert_eq!(cfg.scopes, ["openid", "email", "profile"]);
/// assert_eq!(cfg.groups_claim, "groups");
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer identifier, exactly as its discovery document states it (trailing
    /// slash included or not). `https://` is required, except on loopback addresses.
    pub issuer: String,
    /// Warrant's client id at the provider.
    pub client_id: String,
    /// Warrant's client secret; `None` for a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<Secret<String>>,
    /// The scopes to ask for; `openid` is always sent. Default: `openid email profile`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim holding the user's groups (an array of strings or one string).
    /// Default: `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Other audiences an ID token may name besides `client_id` (the token's `azp` must then be
    /// `client_id`). Default: none, so a token for several audiences is refused.
    #[serde(default)]
    pub extra_audiences: Vec<String>,
    /// A PEM file of extra trust roots for the provider's TLS certificate (a private CA); the
    /// system's roots stay trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

fn default_groups_claim() -> String {
    DEFAULT_GROUPS_CLAIM.to_owned()
}

impl OidcConfig {
    /// A configuration with the defaults: no secret, `openid email profile`, `groups`.
    #[must_use]
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: None,
            scopes: default_scopes(),
            groups_claim: default_groups_claim(),
            extra_audiences: Vec::new(),
            ca_file: None,
        }
    }

    /// The same configuration with `secret` as the client secret.
    #[must_use]
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Secret::new(secret.into()));
        self
    }

    /// Checks what can be checked without the network; returns the parsed issuer URL.
    pub(crate) fn validate(&self) -> Result<Url, OidcError> {
        let issuer = Url::parse(&self.issuer).map_err(|e| {
            OidcError::Config(format!(
                "issuer {:?} is not a URL ({e}): write it like https://idp.example.com/realms/corp",
                self.issuer
            ))
        })?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(OidcError::Config(format!(
                "issuer {:?} has a query or fragment; an issuer is a plain https URL",
                self.issuer
            )));
        }
        if !issuer.username().is_empty() || issuer.password().is_some() {
            return Err(OidcError::Config(
                "the issuer URL carries credentials; remove the user:password@ part".to_owned(),
            ));
        }
        match issuer.scheme() {
            "https" => {}
            "http" if is_loopback(&issuer) => {}
            "http" => {
                return Err(OidcError::Config(format!(
                    "issuer {:?} uses plain http: use https (plain http is only accepted on \
                     loopback addresses, for tests)",
                    self.issuer
                )));
            }
            other => {
                return Err(OidcError::Config(format!(
                    "issuer {:?} has scheme {other:?}: use https",
                    self.issuer
                )));
            }
        }
        if self.client_id.trim().is_empty() {
            return Err(OidcError::Config(
                "client_id is empty: set it to Warrant's client id at the provider".to_owned(),
            ));
        }
        if self
            .client_secret
            .as_ref()
            .is_some_and(|s| s.expose().is_empty())
        {
            return Err(OidcError::Config(
                "client_secret is empty: set it, or leave it out for a public client".to_owned(),
            ));
        }
        if self.groups_claim.trim().is_empty() {
            return Err(OidcError::Config(
                "groups_claim is empty: name the claim holding groups (default \"groups\")"
                    .to_owned(),
            ));
        }
        if let Some(scope) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(OidcError::Config(format!(
                "scope {scope:?} is empty or has spaces: list one scope per entry"
            )));
        }
        Ok(issuer)
    }
}

/// `127.0.0.0/8`, `::1` or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn check(issuer: &str) -> Result<(), String> {
        OidcConfig::new(issuer, "warrant")
            .validate()
            .map(|_| ())
            .map_err(|e| {
                assert_eq!(e.code(), "oidc_config");
                e.to_string()
            })
    }

    #[test]
    fn issuers() {
        check("https://idp.example.com/realms/corp").unwrap();
        check("http://127.0.0.1:9400").unwrap();
        check("http://[::1]:9400").unwrap();
        check("http://localhost:9400").unwrap();
        assert!(
            check("http://idp.example.com")
                .unwrap_err()
                .contains("use https")
        );
        assert!(
            check("ftp://idp.example.com")
                .unwrap_err()
                .contains("use https")
        );
        assert!(check("idp.example.com").unwrap_err().contains("not a URL"));
        assert!(
            check("https://idp.example.com/?a=b")
                .unwrap_err()
                .contains("query")
        );
        assert!(
            check("https://u:p@idp.example.com/")
                .unwrap_err()
                .contains("credentials")
        );
    }

    #[test]
    fn defaults_and_fields() {
        let cfg: OidcConfig = serde_json::from_str(
            r#"{"issuer": "https://idp.example.com", "client_id": "w", "client_secret": "x",
                "groups_claim": "roles", "scopes": ["openid", "groups"], "ca_file": "/etc/ca.pem"}"#,
        )
        .unwrap();
        assert_eq!(cfg.groups_claim, "roles");
        assert_eq!(cfg.scopes, ["openid", "groups"]);
        assert_eq!(cfg.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(
            !format!("{cfg:?}").contains("\"x\""),
            "the secret never prints"
        );
        let err = serde_json::from_str::<OidcConfig>(
            r#"{"issuer": "https://idp.example.com", "client_id": "w", "client_secret_typo": "x"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("client_secret_typo"));
        let empty = OidcConfig::new("https://idp.example.com", " ");
        assert!(
            empty
                .validate()
                .unwrap_err()
                .to_string()
                .contains("client_id")
        );
        let spaced = OidcConfig {
            scopes: vec!["openid email".into()],
            ..OidcConfig::new("https://idp.example.com", "w")
        };
        assert!(
            spaced
                .validate()
                .unwrap_err()
                .to_string()
                .contains("one scope per entry")
        );
    }
}

//! [`LdapError`]: why a fetch failed, with a stable code per kind.

use thiserror::Error;

/// Why reading the directory failed.
///
/// Every message names what was tried (address, bind DN, base and filter) and never the bind
/// password. [`code`](Self::code) is stable and greppable, for the CLI, logs and audit details.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LdapError {
    /// The configuration is invalid (also: a filter that is not valid LDAP filter syntax, an
    /// unreadable CA file). Code `ldap_config`.
    #[error("invalid LDAP configuration: {0}")]
    Config(String),
    /// No TCP connection to the server. Code `ldap_connect`.
    #[error("could not connect to the LDAP server at {address}: {reason}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The underlying reason (refused, timed out, name not resolved, ...).
        reason: String,
    },
    /// The TLS handshake (LDAPS or StartTLS) failed, e.g. the certificate is not trusted.
    /// Code `ldap_tls`.
    #[error("TLS with the LDAP server at {address} failed: {reason}")]
    Tls {
        /// `host:port`.
        address: String,
        /// What went wrong, naming the CA file when the certificate was not trusted.
        reason: String,
    },
    /// The server refused the bind. Code `ldap_bind`.
    #[error("LDAP bind failed: {reason}")]
    Bind {
        /// The bind DN that was refused.
        bind_dn: String,
        /// E.g. "invalid credentials for bind DN cn=sync,dc=example,dc=com" (result 49).
        reason: String,
    },
    /// A search failed. Code `ldap_search`.
    #[error("LDAP search under {base} with filter {filter} failed: {reason}")]
    Search {
        /// The search base.
        base: String,
        /// The search filter.
        filter: String,
        /// The result code and the server's diagnostic, or the transport error.
        reason: String,
    },
}

impl LdapError {
    /// The stable code of this kind of error: `ldap_config`, `ldap_connect`, `ldap_tls`,
    /// `ldap_bind` or `ldap_search`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "ldap_config",
            Self::Connect { .. } => "ldap_connect",
            Self::Tls { .. } => "ldap_tls",
            Self::Bind { .. } => "ldap_bind",
            Self::Search { .. } => "ldap_search",
        }
    }
}

/// The name of an LDAP result code (RFC 4511 appendix A), for messages.
pub(crate) fn result_code_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown result code",
    }
}

/// `result 49 (invalidCredentials): <diagnostic>` for an LDAP result.
pub(crate) fn describe_result(rc: u32, text: &str) -> String {
    let name = result_code_name(rc);
    let text = text.trim();
    if text.is_empty() {
        format!("result {rc} ({name})")
    } else {
        format!("result {rc} ({name}): {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let connect = LdapError::Connect {
            address: "a:1".into(),
            reason: "refused".into(),
        };
        assert_eq!(connect.code(), "ldap_connect");
        assert_eq!(LdapError::Config("x".into()).code(), "ldap_config");
        assert_eq!(
            connect.to_string(),
            "could not connect to the LDAP server at a:1: refused"
        );
        assert_eq!(
            describe_result(49, " data 52e "),
            "result 49 (invalidCredentials): data 52e"
        );
        assert_eq!(describe_result(32, ""), "result 32 (noSuchObject)");
    }
}

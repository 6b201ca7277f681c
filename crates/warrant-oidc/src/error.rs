//! [`OidcError`]: what went wrong during discovery or a sign-in, with a stable code.

/// Why discovery or a sign-in failed.
///
/// Each variant has a stable [`code`](Self::code) for logs, metrics and API errors. Messages say
/// what to fix; they never carry the authorization code, a token, the client secret or the PKCE
/// verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The configuration is unusable (bad issuer URL, unreadable `ca_file`, …).
    #[error("OpenID Connect configuration: {0}")]
    Config(String),
    /// The provider's discovery document or key set could not be fetched or read.
    #[error("OpenID provider discovery failed: {0}")]
    Discovery(String),
    /// The `state` of the callback is not the one this login was started with: a forged or stale
    /// callback, or one meant for another login.
    #[error(
        "the sign-in callback does not belong to this login (state mismatch): start the sign-in again"
    )]
    StateMismatch,
    /// The token endpoint refused the authorization code or could not be reached.
    #[error("the OpenID provider refused to exchange the authorization code: {0}")]
    Exchange(String),
    /// The ID token is missing, malformed or fails a check that has no code of its own.
    #[error("invalid ID token: {0}")]
    InvalidToken(String),
    /// The ID token (or the pending login) is expired, or was issued in the future.
    #[error("expired: {0}")]
    Expired(String),
    /// The ID token's nonce is missing or is not the one this login sent.
    #[error(
        "the ID token's nonce does not match this login ({0}): a replayed or substituted token; start the sign-in again"
    )]
    Nonce(String),
    /// The ID token was issued to another client.
    #[error("the ID token was issued for another client: {0}")]
    Audience(String),
    /// The issuer named by the provider or the ID token is not the configured one.
    #[error("issuer mismatch: {0}")]
    Issuer(String),
    /// The ID token's signature does not verify with any key the provider publishes.
    #[error("the ID token's signature does not verify: {0}")]
    Signature(String),
}

impl OidcError {
    /// The stable, greppable code of this error, e.g. `oidc_state_mismatch`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "oidc_config",
            Self::Discovery(_) => "oidc_discovery",
            Self::StateMismatch => "oidc_state_mismatch",
            Self::Exchange(_) => "oidc_exchange",
            Self::InvalidToken(_) => "oidc_invalid_token",
            Self::Expired(_) => "oidc_expired",
            Self::Nonce(_) => "oidc_nonce",
            Self::Audience(_) => "oidc_audience",
            Self::Issuer(_) => "oidc_issuer",
            Self::Signature(_) => "oidc_signature",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let all = [
            (OidcError::Config(String::new()), "oidc_config"),
            (OidcError::Discovery(String::new()), "oidc_discovery"),
            (OidcError::StateMismatch, "oidc_state_mismatch"),
            (OidcError::Exchange(String::new()), "oidc_exchange"),
            (OidcError::InvalidToken(String::new()), "oidc_invalid_token"),
            (OidcError::Expired(String::new()), "oidc_expired"),
            (OidcError::Nonce(String::new()), "oidc_nonce"),
            (OidcError::Audience(String::new()), "oidc_audience"),
            (OidcError::Issuer(String::new()), "oidc_issuer"),
            (OidcError::Signature(String::new()), "oidc_signature"),
        ];
        for (error, code) in all {
            assert_eq!(error.code(), code);
        }
    }
}

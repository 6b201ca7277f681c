//! [`Claims`]: what a verified ID token says about the person signing in.

use openidconnect::core::CoreGenderClaim;
use openidconnect::{AdditionalClaims, IdTokenClaims};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::OidcError;

/// The verified claims of an ID token, as Warrant uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `iss`: the provider that vouches for the identity.
    pub issuer: String,
    /// `sub`: the provider's stable identifier of the person (unique per issuer).
    pub subject: String,
    /// `email`, if the provider shared it.
    pub email: Option<String>,
    /// `email_verified`, if the provider stated it.
    pub email_verified: Option<bool>,
    /// `preferred_username`, if any (not unique, not stable: never match identities on it alone).
    pub preferred_username: Option<String>,
    /// `name` (the default-language one), if any.
    pub name: Option<String>,
    /// The groups from the configured groups claim; empty when the claim is absent.
    pub groups: Vec<String>,
    /// `auth_time`: when the person authenticated at the provider (Unix seconds), if stated.
    pub auth_time: Option<i64>,
    /// `amr`: how the person authenticated (e.g. `pwd`, `otp`, `hwk`); empty when absent.
    pub amr: Vec<String>,
}

/// Every claim that is not a standard one, kept as JSON so the groups claim can be configured.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct ExtraClaims(serde_json::Map<String, Value>);

impl AdditionalClaims for ExtraClaims {}

impl Claims {
    /// Reads the claims Warrant uses from verified ID token claims.
    pub(crate) fn from_id_token(
        claims: &IdTokenClaims<ExtraClaims, CoreGenderClaim>,
        groups_claim: &str,
    ) -> Result<Self, OidcError> {
        let groups = groups(claims.additional_claims().0.get(groups_claim), groups_claim)?;
        Ok(Self {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified(),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            groups,
            auth_time: claims.auth_time().map(|t| t.timestamp()),
            amr: claims
                .auth_method_refs()
                .map(|amr| amr.iter().map(|m| m.as_str().to_owned()).collect())
                .unwrap_or_default(),
        })
    }
}

/// An array of strings, one string, or nothing (absent or `null`).
fn groups(value: Option<&Value>, claim: &str) -> Result<Vec<String>, OidcError> {
    let invalid = || {
        OidcError::InvalidToken(format!(
            "claim {claim:?} should be an array of group names (strings) or one string; \
             check the provider's claim mapping or the groups_claim setting"
        ))
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(g)) => Ok(vec![g.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    #[test]
    fn groups_shapes() {
        let g = |v: Option<Value>| groups(v.as_ref(), "groups");
        assert_eq!(g(None).unwrap(), Vec::<String>::new());
        assert_eq!(g(Some(Value::Null)).unwrap(), Vec::<String>::new());
        assert_eq!(g(Some(json!("dba"))).unwrap(), ["dba"]);
        assert_eq!(g(Some(json!(["dba", "ops"]))).unwrap(), ["dba", "ops"]);
        assert_eq!(g(Some(json!([]))).unwrap(), Vec::<String>::new());
        let err = g(Some(json!(["dba", 3]))).unwrap_err();
        assert_eq!(err.code(), "oidc_invalid_token");
        assert!(err.to_string().contains("\"groups\""));
        assert!(g(Some(json!({"a": 1}))).is_err());
    }
}

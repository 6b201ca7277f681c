//! [`PendingLogin`]: what the server keeps between sending the browser away and the callback.

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::Url;
use warrant_core::{Secret, Timestamp};

/// How long a started login may wait for its callback: after that, [`complete`] refuses it with
/// `oidc_expired`. The server's store should drop pending logins after the same time.
///
/// [`complete`]: crate::RelyingParty::complete
pub const PENDING_LOGIN_TTL_SECS: i64 = 600;

/// A login started by [`begin`](crate::RelyingParty::begin) and not yet completed.
///
/// Keep it on the server (keyed by [`state`](Self::state)) until the callback arrives, and
/// never hand it to the browser: the PKCE verifier in it is what makes a stolen authorization
/// code useless. It serialises (verifier included, as a plain string) so the server can put it
/// in its store; `Debug` redacts everything but the redirect URI and the creation time.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    #[serde(with = "exposed")]
    pub(crate) pkce_verifier: Secret<String>,
    pub(crate) redirect_uri: Url,
    pub(crate) created_at: Timestamp,
}

impl PendingLogin {
    /// The `state` sent to the provider; the callback must bring it back. A store key.
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Where the provider sends the browser back to.
    #[must_use]
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// When the login started.
    #[must_use]
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// Whether `state` (from the callback) is this login's, compared in constant time.
    pub(crate) fn state_matches(&self, state: &str) -> bool {
        self.state.as_bytes().ct_eq(state.as_bytes()).into()
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &self.pkce_verifier)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Serialises a `Secret<String>` as its plain value: only for the server's own store.
mod exposed {
    use serde::{Deserialize, Deserializer, Serializer};
    use warrant_core::Secret;

    pub(super) fn serialize<S: Serializer>(
        secret: &Secret<String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<String>, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn pending() -> PendingLogin {
        PendingLogin {
            state: "state-canary".into(),
            nonce: "nonce-canary".into(),
            pkce_verifier: Secret::new("verifier-canary".into()),
            redirect_uri: Url::parse("http://127.0.0.1:8080/cb").unwrap(),
            created_at: Timestamp::from_millis(1_764_000_000_000),
        }
    }

    #[test]
    fn debug_redacts_and_serde_round_trips() {
        let p = pending();
        let debug = format!("{p:?}");
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("127.0.0.1:8080/cb"));
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("verifier-canary"));
        let back: PendingLogin = serde_json::from_str(&json).unwrap();
        assert_eq!(back.pkce_verifier.expose(), "verifier-canary");
        assert_eq!(back.state(), "state-canary");
        assert_eq!(back.created_at(), p.created_at());
    }

    #[test]
    fn state_comparison() {
        let p = pending();
        assert!(p.state_matches("state-canary"));
        assert!(!p.state_matches("state-canarx"));
        assert!(!p.state_matches("state-canary-longer"));
        assert!(!p.state_matches(""));
    }
}

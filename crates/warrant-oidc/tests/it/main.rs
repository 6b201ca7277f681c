//! warrant-oidc against a real OpenID provider (`provider`: oidc-provider-mock, started by
//! warrant-testkit) and, for what that provider cannot produce, against ID tokens signed here with
//! keys served from a small in-process provider (`local`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod local;
mod provider;
mod tls;

use serde_json::Value;
use url::Url;
use warrant_core::{Clock, ManualClock, SystemClock};
use warrant_oidc::{OidcConfig, OidcError, PendingLogin, RelyingParty};
use warrant_testkit::OidcProviderFixture;

/// Where the provider sends the browser back to. Nothing listens there: the tests read the
/// redirect instead of following it.
const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn redirect() -> Url {
    Url::parse(REDIRECT).unwrap()
}

/// A clock standing at the real time, moved by hand from there.
fn clock() -> ManualClock {
    ManualClock::new(SystemClock.now())
}

/// A clock `secs` seconds away from the real time.
fn clock_at(secs: i64) -> ManualClock {
    let c = clock();
    c.advance_secs(secs);
    c
}

/// A relying party registered at `idp` as a new confidential client.
async fn registered(idp: &OidcProviderFixture) -> (RelyingParty, OidcConfig) {
    let (client_id, secret) = idp.register_client(&[REDIRECT]).await.unwrap();
    let cfg = OidcConfig::new(idp.issuer(), client_id).with_client_secret(secret);
    let rp = RelyingParty::discover(cfg.clone()).await.unwrap();
    (rp, cfg)
}

/// A login of `sub` up to the callback: the pending login and the callback's `state` and `code`.
struct Callback {
    pending: PendingLogin,
    state: String,
    code: String,
}

async fn login(
    rp: &RelyingParty,
    idp: &OidcProviderFixture,
    sub: &str,
    clock: &dyn Clock,
) -> Callback {
    let (url, pending) = rp.begin(&redirect(), clock);
    let location = idp.login(url.as_str(), sub).await.unwrap();
    let location = Url::parse(&location).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some(REDIRECT),
        "redirected to the registered URI"
    );
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in the callback {location}"))
    };
    Callback {
        state: param("state"),
        code: param("code"),
        pending,
    }
}

/// Asserts `result` failed with `code`, and that its message leaks none of `secrets`.
#[track_caller]
fn assert_code<T: std::fmt::Debug>(
    result: Result<T, OidcError>,
    code: &str,
    secrets: &[&str],
) -> OidcError {
    let e = result.expect_err("should have failed");
    assert_eq!(e.code(), code, "{e}");
    let text = format!("{e} {e:?}");
    for secret in secrets {
        assert!(!text.contains(secret), "{text:?} leaks {secret:?}");
    }
    e
}

/// The JSON form of a pending login with `field` replaced: what a tampered store would hold.
fn tampered(pending: &PendingLogin, field: &str, value: &str) -> PendingLogin {
    let mut json = serde_json::to_value(pending).unwrap();
    json[field] = Value::String(value.to_owned());
    serde_json::from_value(json).unwrap()
}

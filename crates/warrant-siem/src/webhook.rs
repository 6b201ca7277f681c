//! An HTTP webhook: one POST per batch, the records as JSON lines
//! (`application/x-ndjson`), signed so that the receiver can tell the batch came from this
//! Warrant, names the records it holds, and was not replayed later:
//!
//! - `X-Warrant-Timestamp`: Unix seconds when the batch was sent;
//! - `X-Warrant-Records`: the positions of the first and last record, `FIRST-LAST`;
//! - `X-Warrant-Signature`: `sha256=` and the hex HMAC-SHA-256, under the shared secret, of
//!   the signed string `TIMESTAMP.FIRST-LAST.BODY` — the two headers' values exactly as sent,
//!   each followed by a `.`, then the body's bytes (neither header value contains a `.`, so the
//!   string splits one way only). E.g. `1767225600.41-45.{"seq":41,…}\n…`.
//!
//! A receiver recomputes the HMAC from the headers it got ([`verify`]) and so checks the range
//! too: a proxy or attacker who rewrites `X-Warrant-Records` breaks the signature. It should
//! also refuse a timestamp far from its own clock (a replay).
//!
//! A 2xx answer delivers the batch; anything else (or no answer within [`TIMEOUT`]) fails it,
//! and the engine's worker sends it again with backoff.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use warrant_audit::Record;
use warrant_core::{Clock, Secret};

use crate::{Format, SinkError, TIMEOUT};

/// `webhook:` settings of a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST (`https://…`; `http://` only to loopback).
    pub url: String,
    /// The environment variable holding the shared secret (never the secret itself in the
    /// config file).
    pub secret_env: String,
}

/// A webhook sink.
pub struct WebhookSink {
    url: String,
    /// The URL as shown in errors, logs and `Debug`: without user info or query, which may
    /// carry a token.
    shown: String,
    secret: Secret<Vec<u8>>,
    format: Format,
    http: reqwest::Client,
    clock: std::sync::Arc<dyn Clock>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Checks the settings and reads the secret from its environment variable.
    pub fn new(
        config: &WebhookConfig,
        format: Format,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, SinkError> {
        let secret = std::env::var(&config.secret_env).map_err(|_| {
            SinkError::Config(format!(
                "webhook secret: set the environment variable {} (at least 16 bytes)",
                config.secret_env
            ))
        })?;
        Self::with_secret(&config.url, Secret::new(secret.into_bytes()), format, clock)
    }

    /// A webhook sink with its secret given.
    pub fn with_secret(
        url: &str,
        secret: Secret<Vec<u8>>,
        format: Format,
        clock: std::sync::Arc<dyn Clock>,
    ) -> Result<Self, SinkError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| SinkError::Config(format!("webhook url {url:?}: {e}")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(SinkError::Config(format!(
                    "webhook url {url:?}: use https (http only to loopback)"
                )));
            }
            other => {
                return Err(SinkError::Config(format!(
                    "webhook url {url:?}: scheme {other} is not https"
                )));
            }
        }
        if secret.expose().len() < 16 {
            return Err(SinkError::Config(
                "the webhook secret is shorter than 16 bytes".to_owned(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SinkError::Config(format!("webhook client: {e}")))?;
        let mut shown = parsed.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        Ok(Self {
            url: url.to_owned(),
            shown: shown.to_string(),
            secret,
            format,
            http,
            clock,
        })
    }

    /// POSTs the batch; a 2xx answer delivers it.
    pub async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let mut body = Vec::with_capacity(batch.len() * 1024);
        for r in batch {
            body.extend_from_slice(self.format.encode(r).to_string().as_bytes());
            body.push(b'\n');
        }
        let now = (self.clock.now().millis() / 1000).to_string();
        let records = format!("{}-{}", first.seq, last.seq);
        let signature = sign(self.secret.expose(), &now, &records, &body);
        let sent = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header("X-Warrant-Timestamp", &now)
            .header("X-Warrant-Signature", format!("sha256={signature}"))
            .header("X-Warrant-Records", &records)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    SinkError::Timeout
                } else {
                    SinkError::Io(format!("webhook {}: {}", self.shown, e.without_url()))
                }
            })?;
        let status = sent.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SinkError::Refused(format!(
                "webhook {} answered {status}",
                self.shown
            )))
        }
    }
}

/// The HMAC-SHA-256 under `secret` of the signed string `timestamp.records.body`, ready to
/// finish or compare.
fn mac(secret: &[u8], timestamp: &str, records: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    // HMAC takes a key of any length: `new_from_slice` does not fail for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(records.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The hex HMAC-SHA-256 under `secret` of `timestamp.records.body` (the values of
/// `X-Warrant-Timestamp` and `X-Warrant-Records`, then the body): what a receiver recomputes.
#[must_use]
pub fn sign(secret: &[u8], timestamp: &str, records: &str, body: &[u8]) -> String {
    mac(secret, timestamp, records, body)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `signature` (`sha256=HEX`, the `X-Warrant-Signature` header) is the one for
/// `timestamp.records.body` under `secret`, compared in constant time. `timestamp` and
/// `records` are the `X-Warrant-Timestamp` and `X-Warrant-Records` headers as received: a
/// batch whose range was rewritten on the way does not verify. Headers not in their form
/// (Unix seconds; `FIRST-LAST`, digits) never verify, so the signed string splits one way only.
#[must_use]
pub fn verify(secret: &[u8], timestamp: &str, records: &str, body: &[u8], signature: &str) -> bool {
    let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let ranged = records
        .split_once('-')
        .is_some_and(|(first, last)| digits(first) && digits(last));
    if !digits(timestamp) || !ranged {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    mac(secret, timestamp, records, body).is_some_and(|m| m.verify_slice(&given).is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        const SECRET: &[u8] = b"0123456789abcdef";
        let body: &[u8] = b"{\"seq\":41,\"v\":\"1.5\"}\n{\"seq\":42}\n";
        let s = sign(SECRET, "1700000000", "41-42", body);
        let header = format!("sha256={s}");
        assert!(verify(SECRET, "1700000000", "41-42", body, &header));
        // The signed string, spelled out as the docs give it.
        let mut by_hand = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        by_hand.update(b"1700000000.41-42.");
        by_hand.update(body);
        assert_eq!(s, hex::encode(by_hand.finalize().into_bytes()));
        for (timestamp, records, body, secret, sig) in [
            ("1700000001", "41-42", body, SECRET, header.as_str()),
            ("1700000000", "41-41", body, SECRET, &header),
            ("1700000000", "40-42", body, SECRET, &header),
            ("1700000000", "", body, SECRET, &header),
            ("1700000000", "41-42", b"{\"seq\":41}\n", SECRET, &header),
            ("1700000000", "41-42", body, b"another secret!!", &header),
            ("1700000000", "41-42", body, SECRET, &s),
        ] {
            assert!(
                !verify(secret, timestamp, records, body, sig),
                "{timestamp} {records} verified"
            );
        }
        // The same signed string split another way (the range reaching into the body): the
        // headers' form is checked, so it does not verify.
        let cut = body.iter().position(|b| *b == b'.').unwrap();
        let records = format!("41-42.{}", String::from_utf8_lossy(&body[..cut]));
        let rest = &body[cut + 1..];
        assert_eq!(
            sign(SECRET, "1700000000", &records, rest),
            s,
            "the same string"
        );
        assert!(!verify(SECRET, "1700000000", &records, rest, &header));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(warrant_core::SystemClock);
        let c = |url: &str, secret: &[u8]| {
            WebhookSink::with_secret(
                url,
                Secret::new(secret.to_vec()),
                Format::Ocsf,
                clock.clone(),
            )
        };
        let secret = b"0123456789abcdef0123";
        assert!(c("http://127.0.0.1:9/hook", secret).is_ok());
        assert!(c("https://siem.example.com/hook", secret).is_ok());
        assert!(c("http://siem.example.com/hook", secret).is_err());
        assert!(c("ftp://siem.example.com/hook", secret).is_err());
        assert!(c("https://siem.example.com/hook", b"short").is_err());
        let tokened = c("https://siem.example.com/hook?token=abc123", secret).unwrap();
        assert!(!format!("{tokened:?}").contains("abc123"));
        let missing = WebhookConfig {
            url: "https://siem.example.com/hook".into(),
            secret_env: "WARRANT_SIEM_TEST_NO_SUCH_VAR".into(),
        };
        let e = WebhookSink::new(&missing, Format::Ocsf, clock.clone()).unwrap_err();
        assert!(
            e.to_string().contains("WARRANT_SIEM_TEST_NO_SUCH_VAR"),
            "{e}"
        );
    }
}

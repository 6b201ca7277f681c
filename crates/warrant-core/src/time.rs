//! Instants, the clock, and activation durations.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, in milliseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant moved by `secs` seconds (saturating).
    pub const fn plus_secs(self, secs: i64) -> Self {
        Self(self.0.saturating_add(secs.saturating_mul(1000)))
    }

    /// This instant moved by `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// RFC 3339 text, in UTC with millisecond precision.
    pub fn rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| format!("@{}ms", self.0))
    }

    /// Parses RFC 3339 text.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .map(Self)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not an RFC 3339 time (e.g. 2026-12-04T10:00:00Z)"
            ))
        })
    }
}

/// Where "now" comes from. Every component takes one, so expiry is testable without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real clock: the only caller of the system time in Warrant.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one real clock is where the system time is read"
    )]
    fn now(&self) -> Timestamp {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
    }
}

/// A clock that moves only when told: for tests and simulations.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(t.millis())))
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The longest activation Warrant accepts from any rule: 30 days.
pub const MAX_ACTIVATION_SECS: i64 = 30 * 24 * 3600;

/// How long a grant lasts once active: positive, whole seconds, at most 30 days.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActivationDuration(i64);

/// Why a duration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("{0:?} is not a duration: write it like 30m, 1h or 1h30m")]
    Invalid(String),
    /// Zero or negative.
    #[error("a duration must be longer than zero")]
    NotPositive,
    /// Longer than Warrant allows anywhere.
    #[error("a duration cannot exceed 30 days")]
    TooLong,
}

impl ActivationDuration {
    /// One hour.
    pub const ONE_HOUR: Self = Self(3600);

    /// A duration of `secs` seconds.
    pub fn from_secs(secs: i64) -> Result<Self, DurationError> {
        if secs <= 0 {
            return Err(DurationError::NotPositive);
        }
        if secs > MAX_ACTIVATION_SECS {
            return Err(DurationError::TooLong);
        }
        Ok(Self(secs))
    }

    /// Parses `30m`, `1h`, `1h30m`, `90s`, `2d`.
    pub fn parse(s: &str) -> Result<Self, DurationError> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(DurationError::NotPositive);
        }
        let d = humantime::parse_duration(t).map_err(|_| DurationError::Invalid(s.to_owned()))?;
        let secs = i64::try_from(d.as_secs()).map_err(|_| DurationError::TooLong)?;
        if d.subsec_nanos() != 0 {
            return Err(DurationError::Invalid(s.to_owned()));
        }
        Self::from_secs(secs)
    }

    /// Whole seconds.
    pub const fn secs(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ActivationDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, (self.0 % 3600) / 60, self.0 % 60);
        let mut out = String::new();
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        if s > 0 || out.is_empty() {
            out.push_str(&format!("{s}s"));
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for ActivationDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for ActivationDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for ActivationDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ActivationDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(ActivationDuration::parse("30m").map(|d| d.secs()), Ok(1800));
        assert_eq!(
            ActivationDuration::parse("1h30m").map(|d| d.secs()),
            Ok(5400)
        );
        assert_eq!(
            ActivationDuration::parse("0s"),
            Err(DurationError::NotPositive)
        );
        assert_eq!(
            ActivationDuration::parse("-5m"),
            Err(DurationError::NotPositive)
        );
        assert_eq!(
            ActivationDuration::parse("31d"),
            Err(DurationError::TooLong)
        );
        assert!(matches!(
            ActivationDuration::parse("soon"),
            Err(DurationError::Invalid(_))
        ));
        assert_eq!(
            ActivationDuration::from_secs(5400).map(|d| d.to_string()),
            Ok("1h30m".into())
        );
    }

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::from_millis(1_764_000_000_123);
        assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        assert_eq!(t.rfc3339(), "2025-11-24T16:00:00.123Z");
    }
}

//! Validated names.

use std::fmt;

/// The longest name Warrant accepts.
pub const MAX_NAME_LEN: usize = 128;

/// The name of an identity, group, target or role.
///
/// 1 to 128 characters from `A-Z a-z 0-9 . _ @ -`, starting with a letter or digit. Names never
/// contain `/` (role entities are `target/role`) nor `+` (the SSH gateway reads `alice+web-1`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

/// Why a string is not a [`Name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The string is empty.
    #[error("a name cannot be empty")]
    Empty,
    /// The string is longer than [`MAX_NAME_LEN`].
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    /// The string has a character outside the allowed set.
    #[error(
        "name {0:?} has a character outside A-Z a-z 0-9 . _ @ - (or does not start with a letter or digit)"
    )]
    BadCharacter(String),
}

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        let mut chars = s.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
        let rest_ok =
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
        if !first_ok || !rest_ok {
            return Err(NameError::BadCharacter(s));
        }
        Ok(Self(s))
    }

    /// A name made from a directory's display name (`Domain Admins` → `domain-admins`):
    /// lower case, each run of other characters as one `-`, trimmed to the length limit.
    /// `None` when nothing usable is left.
    pub fn slug(display: &str) -> Option<Self> {
        let mut out = String::with_capacity(display.len());
        let mut dash = false;
        for c in display.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@') {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push(c);
            } else {
                dash = true;
            }
            if out.len() >= MAX_NAME_LEN {
                break;
            }
        }
        let trimmed = out.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
        Self::new(trimmed.chars().take(MAX_NAME_LEN).collect::<String>()).ok()
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(s).map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        for ok in ["alice", "pg-prod", "a", "alice@example.com", "db_owners.1"] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("x".repeat(129)), Err(NameError::TooLong));
        for bad in ["-a", "a/b", "alice+web", "a b", ".x", "é"] {
            assert!(
                matches!(Name::new(bad), Err(NameError::BadCharacter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn slugs_of_display_names() {
        let slug = |s: &str| Name::slug(s).map(|n| n.to_string());
        assert_eq!(slug("Domain Admins").as_deref(), Some("domain-admins"));
        assert_eq!(
            slug("  DB / Owners (prod) ").as_deref(),
            Some("db-owners-prod")
        );
        assert_eq!(slug("ops@example.com").as_deref(), Some("ops@example.com"));
        assert_eq!(slug("--x").as_deref(), Some("x"));
        assert_eq!(slug("Équipe Sécurité").as_deref(), Some("quipe-s-curit"));
        assert_eq!(slug("   "), None);
        assert_eq!(slug("ééé"), None);
        assert_eq!(
            Name::slug(&"a b".repeat(100)).map(|n| n.as_str().len()),
            Some(128)
        );
    }
}

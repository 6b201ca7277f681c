//! Role names, SQL quoting and the marker comment.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{MAX_ROLE_NAME, PgRolesError};

/// The start of the comment that marks a role as Warrant's; the grant id follows.
pub(crate) const MARKER: &str = "warrant-managed grant=";

/// The longest prefix accepted, so the identity always keeps some room.
const MAX_PREFIX: usize = 32;

/// `prefix` + sanitised `identity` + `_` + `suffix`, at most [`MAX_ROLE_NAME`] bytes.
///
/// The identity is lowercased and every byte outside `a-z0-9_` becomes `_`, then it is cut so
/// the whole fits; the random suffix keeps names unique.
pub(crate) fn role_name(
    prefix: &str,
    identity: &str,
    suffix: &str,
) -> Result<String, PgRolesError> {
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    if prefix.is_empty() || prefix.len() > MAX_PREFIX || !plain(prefix) {
        return Err(PgRolesError::Invalid(format!(
            "role prefix {prefix:?} must be 1 to {MAX_PREFIX} of a-z, 0-9, _"
        )));
    }
    let room = MAX_ROLE_NAME - prefix.len() - 1 - suffix.len();
    let ident: String = identity
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(room)
        .collect();
    Ok(format!("{prefix}{ident}_{suffix}"))
}

/// A grant id goes into a comment: keep it printable and short.
pub(crate) fn check_grant_id(id: &str) -> Result<(), PgRolesError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(PgRolesError::Invalid(format!(
            "grant id {id:?} must be 1 to 128 of A-Z, a-z, 0-9, - _ . :"
        )))
    }
}

/// The grant id in a marker comment, if it is one.
pub(crate) fn parse_marker(comment: Option<&str>) -> Option<&str> {
    comment?.strip_prefix(MARKER).filter(|id| !id.is_empty())
}

/// A quoted identifier: `"..."` with `"` doubled.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal: `'...'` with `'` doubled, or `E'...'` with `\` doubled when needed, so it
/// reads the same whatever `standard_conforming_strings` says.
pub(crate) fn literal(s: &str) -> String {
    let quoted = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// Unix seconds as RFC 3339 in UTC, which PostgreSQL reads as a `timestamptz`.
pub(crate) fn timestamp(unix: i64) -> Result<String, PgRolesError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| PgRolesError::Invalid(format!("valid_until {unix} is out of range")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_bounded_and_plain() {
        let n = role_name("w_", "Alice.Smith@Example.com", "0123abcd").unwrap();
        assert_eq!(n, "w_alice_smith_example_com_0123abcd");
        let long = role_name("w_", &"ü".repeat(100), "0123abcd").unwrap();
        assert_eq!(long.len(), MAX_ROLE_NAME);
        assert!(long.starts_with("w____") && long.ends_with("_0123abcd"));
        assert!(role_name("W", "a", "00").is_err());
        assert!(role_name("", "a", "00").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\'b"), r"E'a\\''b'");
    }

    #[test]
    fn markers() {
        assert_eq!(parse_marker(Some("warrant-managed grant=g1")), Some("g1"));
        assert_eq!(parse_marker(Some("warrant-managed grant=")), None);
        assert_eq!(parse_marker(Some("someone else's")), None);
        assert_eq!(parse_marker(None), None);
        assert!(check_grant_id("g'1").is_err());
        assert_eq!(timestamp(0).unwrap(), "1970-01-01T00:00:00Z");
    }
}

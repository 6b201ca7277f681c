//! The SSH user name people log in with: `identity+target` or `identity+target+role`.

use std::fmt;

/// The longest SSH user name accepted, in bytes (OpenSSH's own limit for a login is lower for
/// local accounts, but ours carries three names).
pub const MAX_LOGIN_LEN: usize = 256;

/// Who logs in and where to: parsed from the SSH user name `identity+target[+role]` by
/// [`parse_login`]. Each part is non-empty and uses only `A-Z a-z 0-9 . _ @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Login {
    /// The person's Warrant identity, e.g. `alice` or `alice@example.com`.
    pub identity: String,
    /// The target to reach, e.g. `web-1`.
    pub target: String,
    /// The role on the target, when the person names one (`alice+web-1+root`); otherwise the
    /// authority picks the one the person's grant is for.
    pub role: Option<String>,
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.identity, self.target)?;
        if let Some(role) = &self.role {
            write!(f, "+{role}")?;
        }
        Ok(())
    }
}

/// Why an SSH user name is not a [`Login`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No `+`: the user name names no target.
    #[error(
        "the user name {0:?} names no target: log in as identity+target or identity+target+role"
    )]
    NoTarget(String),
    /// More than two `+`.
    #[error(
        "the user name {0:?} has too many parts: log in as identity+target or identity+target+role"
    )]
    TooManyParts(String),
    /// A part is empty (`+web-1`, `alice+`, `alice++root`).
    #[error("the user name {login:?} has an empty {part}")]
    EmptyPart {
        /// The user name as given.
        login: String,
        /// `identity`, `target` or `role`.
        part: &'static str,
    },
    /// A part holds a character outside `A-Z a-z 0-9 . _ @ -`.
    #[error(
        "the {part} in {login:?} holds {found:?}: only letters, digits and . _ @ - are allowed"
    )]
    BadCharacter {
        /// The user name as given (printable: control characters escaped by `Debug`).
        login: String,
        /// `identity`, `target` or `role`.
        part: &'static str,
        /// The first offending character.
        found: char,
    },
    /// Longer than [`MAX_LOGIN_LEN`] bytes.
    #[error("the user name is longer than {MAX_LOGIN_LEN} bytes")]
    TooLong,
}

impl LoginError {
    /// A stable, greppable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoTarget(_) => "login_no_target",
            Self::TooManyParts(_) => "login_too_many_parts",
            Self::EmptyPart { .. } => "login_empty_part",
            Self::BadCharacter { .. } => "login_bad_character",
            Self::TooLong => "login_too_long",
        }
    }
}

/// Parses the SSH user name `identity+target` or `identity+target+role`.
pub fn parse_login(user: &str) -> Result<Login, LoginError> {
    if user.len() > MAX_LOGIN_LEN {
        return Err(LoginError::TooLong);
    }
    let parts: Vec<&str> = user.split('+').collect();
    let (identity, target, role) = match parts.as_slice() {
        [_] => return Err(LoginError::NoTarget(user.to_owned())),
        [identity, target] => (*identity, *target, None),
        [identity, target, role] => (*identity, *target, Some(*role)),
        _ => return Err(LoginError::TooManyParts(user.to_owned())),
    };
    let check = |part: &'static str, value: &str| -> Result<String, LoginError> {
        if value.is_empty() {
            return Err(LoginError::EmptyPart {
                login: user.to_owned(),
                part,
            });
        }
        if let Some(found) = value.chars().find(|c| !allowed(*c)) {
            return Err(LoginError::BadCharacter {
                login: user.to_owned(),
                part,
                found,
            });
        }
        Ok(value.to_owned())
    };
    Ok(Login {
        identity: check("identity", identity)?,
        target: check("target", target)?,
        role: role.map(|r| check("role", r)).transpose()?,
    })
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// `Ok("identity target role")` or `Err(code)`.
    fn check(user: &str, expected: Result<&str, &str>) {
        let got = parse_login(user).map(|l| {
            let mut s = format!("{} {}", l.identity, l.target);
            if let Some(role) = &l.role {
                s.push(' ');
                s.push_str(role);
            }
            // Display gives the user name back.
            assert_eq!(l.to_string(), user);
            s
        });
        let got = got.as_deref().map_err(LoginError::code);
        assert_eq!(got, expected, "{user:?}");
    }

    #[test]
    fn valid_logins() {
        check("alice+web-1", Ok("alice web-1"));
        check("alice+web-1+root", Ok("alice web-1 root"));
        check(
            "alice.smith@example.com+db_2.prod+read-only",
            Ok("alice.smith@example.com db_2.prod read-only"),
        );
        check("A+B+C", Ok("A B C"));
    }

    #[test]
    fn invalid_logins() {
        check("", Err("login_no_target"));
        check("alice", Err("login_no_target"));
        check("+web-1", Err("login_empty_part"));
        check("alice+", Err("login_empty_part"));
        check("alice++root", Err("login_empty_part"));
        check("alice+web-1+", Err("login_empty_part"));
        check("+", Err("login_empty_part"));
        check("alice+web-1+root+extra", Err("login_too_many_parts"));
        check("a+b+c+d+e", Err("login_too_many_parts"));
        check("alice+web 1", Err("login_bad_character"));
        check("alice+web-1+ro/ot", Err("login_bad_character"));
        check("al:ice+web-1", Err("login_bad_character"));
        check("alice+web-1\n", Err("login_bad_character"));
        check("alice+wéb", Err("login_bad_character"));
        check("alice+$(id)", Err("login_bad_character"));
        check(&format!("alice+{}", "a".repeat(300)), Err("login_too_long"));
    }

    #[test]
    fn errors_name_the_part_and_character() {
        let e = parse_login("alice+web 1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the target in \"alice+web 1\" holds ' ': only letters, digits and . _ @ - are allowed"
        );
        let e = parse_login("alice++root").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the user name \"alice++root\" has an empty target"
        );
    }
}

//! Distinguished names as comparison keys: the same entry is named `uid=Alice, ou=People,dc=x`
//! in one attribute and `uid=alice,ou=people,dc=x` in another, and both must match.

/// The comparison key of a DN: attribute types and values lower-cased, spaces around `,`, `+`
/// and `=` removed, escapes decoded (`\2C` and `\,` are the same), the parts of a multi-valued
/// RDN sorted. Two DNs name the same entry when their keys are equal (attribute type aliases and
/// OIDs aside). A string that is not a DN is its own key, trimmed and lower-cased.
#[must_use]
pub fn normalize(dn: &str) -> String {
    let Some(rdns) = parse(dn) else {
        return dn.trim().to_lowercase();
    };
    let mut key = String::with_capacity(dn.len());
    for (i, rdn) in rdns.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        let mut parts: Vec<String> = rdn
            .iter()
            .map(|(attr, value)| {
                let mut part = attr.to_ascii_lowercase();
                part.push('=');
                for c in value.to_lowercase().chars() {
                    if matches!(c, ',' | '+' | '=' | '\\' | '"' | '<' | '>' | ';') {
                        part.push('\\');
                    }
                    part.push(c);
                }
                part
            })
            .collect();
        parts.sort();
        key.push_str(&parts.join("+"));
    }
    key
}

/// One relative DN: its `(attribute type, decoded value)` pairs.
pub(crate) type Rdn = Vec<(String, String)>;

/// Splits a DN (RFC 4514, leniently: spaces around separators allowed) into RDNs; `None` when
/// it is not one (an RDN without `=`, an empty attribute type, a dangling escape). The empty
/// string is the root DN: no RDNs.
pub(crate) fn parse(dn: &str) -> Option<Vec<Rdn>> {
    let mut rdns = Vec::new();
    if dn.trim().is_empty() {
        return Some(rdns);
    }
    let mut rdn: Rdn = Vec::new();
    let mut attr = String::new();
    let mut value: Vec<u8> = Vec::new();
    // Length of `value` up to its last escaped byte: escaped trailing spaces are kept.
    let mut value_kept = 0;
    let mut in_value = false;
    let mut chars = dn.chars().peekable();
    let finish_pair = |rdn: &mut Rdn,
                       attr: &mut String,
                       value: &mut Vec<u8>,
                       value_kept: &mut usize|
     -> Option<()> {
        let name = attr.trim();
        if name.is_empty() {
            return None;
        }
        let mut end = value.len();
        while end > *value_kept && value[end - 1] == b' ' {
            end -= 1;
        }
        value.truncate(end);
        let decoded = String::from_utf8_lossy(value).into_owned();
        rdn.push((name.to_owned(), decoded));
        attr.clear();
        value.clear();
        *value_kept = 0;
        Some(())
    };
    while let Some(c) = chars.next() {
        if !in_value {
            match c {
                '=' => in_value = true,
                ',' | '+' | ';' | '\\' => return None,
                _ => attr.push(c),
            }
            continue;
        }
        match c {
            '\\' => {
                let first = chars.next()?;
                if let (Some(hi), Some(&next)) = (first.to_digit(16), chars.peek())
                    && let Some(lo) = next.to_digit(16)
                {
                    chars.next();
                    value.push(u8::try_from(hi * 16 + lo).ok()?);
                } else {
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(first.encode_utf8(&mut buf).as_bytes());
                }
                value_kept = value.len();
            }
            ',' | ';' | '+' => {
                finish_pair(&mut rdn, &mut attr, &mut value, &mut value_kept)?;
                in_value = false;
                if c != '+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            ' ' if value.is_empty() => {}
            _ => {
                let mut buf = [0u8; 4];
                value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if !in_value {
        return None;
    }
    finish_pair(&mut rdn, &mut attr, &mut value, &mut value_kept)?;
    rdns.push(rdn);
    Some(rdns)
}

/// The decoded value of the first RDN when its attribute type is `attribute` (e.g. `alice` for
/// `uid=alice,ou=people,...` and `uid`).
pub(crate) fn leading_value(dn: &str, attribute: &str) -> Option<String> {
    let rdns = parse(dn)?;
    rdns.first()?
        .iter()
        .find(|(attr, _)| attr.eq_ignore_ascii_case(attribute))
        .map(|(_, value)| value.clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn same_entry_same_key() {
        let cases = [
            (
                "uid=alice,ou=people,dc=example,dc=com",
                "uid=alice,ou=people,dc=example,dc=com",
            ),
            (
                "UID=Alice, OU=People , DC=Example,DC=COM",
                "uid=alice,ou=people,dc=example,dc=com",
            ),
            ("cn=Smith\\, John,dc=x", "cn=smith\\, john,dc=x"),
            ("cn=Smith\\2C John,dc=x", "cn=smith\\, john,dc=x"),
            ("cn=a+sn=B,dc=x", "cn=a+sn=b,dc=x"),
            ("sn=B + cn=a,dc=x", "cn=a+sn=b,dc=x"),
            ("cn=trailing\\ ,dc=x", "cn=trailing ,dc=x"),
            ("cn=J\\C3\\BCrgen,dc=x", "cn=jürgen,dc=x"),
            ("CN=Jürgen,DC=x", "cn=jürgen,dc=x"),
            ("", ""),
        ];
        for (dn, key) in cases {
            assert_eq!(normalize(dn), key, "{dn}");
        }
        assert_ne!(normalize("cn=a\\,b,dc=x"), normalize("cn=a,b=,dc=x"));
    }

    #[test]
    fn not_a_dn() {
        assert_eq!(parse("example.com"), None);
        assert_eq!(parse("=x,dc=y"), None);
        assert_eq!(parse("cn=x\\"), None);
        assert_eq!(normalize(" Not A DN "), "not a dn");
        assert_eq!(parse("dc=x").unwrap().len(), 1);
    }

    #[test]
    fn leading_value_of_the_rdn() {
        assert_eq!(
            leading_value("uid=alice,ou=people,dc=x", "UID").as_deref(),
            Some("alice")
        );
        assert_eq!(leading_value("cn=Alice,ou=people,dc=x", "uid"), None);
    }
}

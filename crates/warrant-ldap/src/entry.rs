//! One search result entry with its attributes looked up without regard to case, and the value
//! formats that need decoding: AD's binary `objectGUID` and ranged attribute retrieval.

use std::collections::HashMap;
use std::fmt::Write as _;

/// A search result entry: its DN and its attribute values as bytes, keyed by the lower-cased
/// attribute description (with options such as `;range=0-1499`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// From ldap3's entry, which splits values into UTF-8 text and the rest.
    pub(crate) fn from_search(entry: ldap3::SearchEntry) -> Self {
        let mut attrs: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (name, values) in entry.attrs {
            attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values.into_iter().map(String::into_bytes));
        }
        for (name, values) in entry.bin_attrs {
            attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values);
        }
        Self {
            dn: entry.dn,
            attrs,
        }
    }

    /// A test entry with text values.
    #[cfg(test)]
    pub(crate) fn with(dn: &str, attrs: &[(&str, &[&str])]) -> Self {
        let mut entry = Self {
            dn: dn.to_owned(),
            attrs: HashMap::new(),
        };
        for (name, values) in attrs {
            entry
                .attrs
                .entry(name.to_ascii_lowercase())
                .or_default()
                .extend(values.iter().map(|v| v.as_bytes().to_vec()));
        }
        entry
    }

    /// All values of `attribute` (no options), as bytes.
    pub(crate) fn raw(&self, attribute: &str) -> &[Vec<u8>] {
        self.attrs
            .get(&attribute.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The values of `attribute` that are UTF-8 text.
    pub(crate) fn texts(&self, attribute: &str) -> impl Iterator<Item = &str> {
        self.raw(attribute)
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// The first non-empty text value of `attribute`, trimmed.
    pub(crate) fn text(&self, attribute: &str) -> Option<&str> {
        self.texts(attribute).map(str::trim).find(|v| !v.is_empty())
    }

    /// Whether `attribute` has any value.
    pub(crate) fn has(&self, attribute: &str) -> bool {
        !self.raw(attribute).is_empty()
    }

    /// Moves the values of `attribute;range=LOW-HIGH` (AD's ranged retrieval of a large
    /// multi-valued attribute) into `attribute` and returns where the next range starts, or
    /// `None` when there is no range or it was the last one (`HIGH` is `*`).
    pub(crate) fn merge_range(&mut self, attribute: &str) -> Option<u64> {
        let prefix = format!("{};", attribute.to_ascii_lowercase());
        let key = self
            .attrs
            .keys()
            .find(|k| k.starts_with(&prefix) && parse_range(&k[prefix.len()..]).is_some())?
            .clone();
        let values = self.attrs.remove(&key).unwrap_or_default();
        let next = parse_range(&key[prefix.len()..]).flatten();
        self.attrs
            .entry(attribute.to_ascii_lowercase())
            .or_default()
            .extend(values);
        next
    }
}

/// For the options after `attribute;` (e.g. `range=0-1499`): `Some(Some(1500))` when more
/// values follow, `Some(None)` for the last range (`range=1500-*`), `None` when it is not a
/// range option.
pub(crate) fn parse_range(options: &str) -> Option<Option<u64>> {
    let range = options
        .split(';')
        .find_map(|opt| opt.strip_prefix("range="))?;
    let (low, high) = range.split_once('-')?;
    low.parse::<u64>().ok()?;
    if high == "*" {
        return Some(None);
    }
    Some(Some(high.parse::<u64>().ok()?.checked_add(1)?))
}

/// The canonical string of a Microsoft GUID in its binary layout (`objectGUID`): the first three
/// fields are little-endian (4, 2 and 2 bytes), the last 8 bytes are in order. `None` unless
/// exactly 16 bytes.
#[must_use]
pub fn format_guid(bytes: &[u8]) -> Option<String> {
    let b: &[u8; 16] = bytes.try_into().ok()?;
    let data1 = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let data2 = u16::from_le_bytes([b[4], b[5]]);
    let data3 = u16::from_le_bytes([b[6], b[7]]);
    let mut out = format!("{data1:08x}-{data2:04x}-{data3:04x}-");
    for (i, byte) in b[8..].iter().enumerate() {
        if i == 2 {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn guid_in_microsoft_byte_layout() {
        // .NET: new Guid("01234567-89ab-cdef-0123-456789abcdef").ToByteArray()
        let bytes = [
            0x67, 0x45, 0x23, 0x01, 0xab, 0x89, 0xef, 0xcd, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        assert_eq!(
            format_guid(&bytes).as_deref(),
            Some("01234567-89ab-cdef-0123-456789abcdef")
        );
        // As AD tools print it: objectGUID 0x35 0x9e 0x8b 0x5a ... = {5a8b9e35-...}.
        let bytes = [
            0x35, 0x9e, 0x8b, 0x5a, 0x0c, 0x3b, 0x4d, 0x42, 0x9a, 0x12, 0x00, 0xc0, 0x4f, 0xd9,
            0x30, 0xc9,
        ];
        assert_eq!(
            format_guid(&bytes).as_deref(),
            Some("5a8b9e35-3b0c-424d-9a12-00c04fd930c9")
        );
        assert_eq!(format_guid(&bytes[..15]), None);
        assert_eq!(format_guid(&[0; 17]), None);
    }

    #[test]
    fn ranged_values_are_merged() {
        let mut entry = Entry::with(
            "cn=big,dc=x",
            &[("member;range=0-1499", &["uid=a,dc=x", "uid=b,dc=x"])],
        );
        assert_eq!(entry.merge_range("member"), Some(1500));
        assert_eq!(entry.texts("MEMBER").count(), 2);
        let mut last = Entry::with("cn=big,dc=x", &[("member;range=1500-*", &["uid=c,dc=x"])]);
        assert_eq!(last.merge_range("member"), None);
        assert_eq!(last.texts("member").collect::<Vec<_>>(), ["uid=c,dc=x"]);
        assert_eq!(parse_range("range=0-*"), Some(None));
        assert_eq!(parse_range("binary"), None);
        assert_eq!(parse_range("range=x-1"), None);
    }

    #[test]
    fn lookups_ignore_case() {
        let entry = Entry::with("uid=a,dc=x", &[("sAMAccountName", &["  ", "alice"])]);
        assert_eq!(entry.text("samaccountname"), Some("alice"));
        assert!(entry.has("SAMACCOUNTNAME"));
        assert!(!entry.has("mail"));
    }
}

//! Case-insensitive access to JSON objects: SCIM attribute names are case-insensitive, so a
//! stored `userName` answers to `USERNAME`.

use serde_json::{Map, Value};

/// The value under `name`: the exact key if present, else the first key equal ignoring case.
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Mutable access to the value under `name`, matched as [`get_ci`] does.
pub(crate) fn get_ci_mut<'v>(obj: &'v mut Map<String, Value>, name: &str) -> Option<&'v mut Value> {
    let key = key_ci(obj, name)?;
    obj.get_mut(&key)
}

/// The key spelling `name` ignoring case, as stored.
pub(crate) fn key_ci(obj: &Map<String, Value>, name: &str) -> Option<String> {
    if obj.contains_key(name) {
        return Some(name.to_owned());
    }
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Removes every key equal to `name` ignoring case; returns the last value removed.
pub(crate) fn remove_ci(obj: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let keys: Vec<String> = obj
        .keys()
        .filter(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    keys.iter().filter_map(|k| obj.remove(k)).last()
}

/// Stores `value` under the canonical spelling `name`, dropping other spellings of it.
pub(crate) fn set_ci(obj: &mut Map<String, Value>, name: &str, value: Value) {
    remove_ci(obj, name);
    obj.insert(name.to_owned(), value);
}

/// Whether a value counts as present for `pr`: not null, not an empty string, array or object.
pub(crate) fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(map) => map.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

/// The values of an attribute: the elements of an array, or the value itself.
pub(crate) fn values_of(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

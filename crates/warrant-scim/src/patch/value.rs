//! Checking a value against an attribute definition, shared by PATCH and POST/PUT validation.
//!
//! The result uses the schema's spelling of sub-attribute names. Leniencies for what identity
//! providers send: `"True"`/`"False"` (any case) for booleans (Entra ID sends `"active":
//! "False"`); a bare value for a complex attribute with a `value` sub-attribute (Entra ID sends
//! the manager's id as a string); a single value for a multi-valued attribute. Sub-attributes
//! that are `null`, or read-only in a writable attribute, are dropped, as RFC 7644 §3.3 says read-only input is ignored.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ScimError;
use crate::schema::{AttrDef, AttrType, Mutability};

/// `value` checked against `def`, with canonical sub-attribute names. `null` stays `null`.
pub(crate) fn coerce(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    if !def.multi_valued {
        return coerce_one(def, value);
    }
    let items = match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items.into_iter().filter(|v| !v.is_null()) {
        out.push(coerce_one(def, item)?);
    }
    Ok(Value::Array(out))
}

/// One value (an element, for multi-valued attributes).
pub(crate) fn coerce_one(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match def.ty {
        AttrType::String | AttrType::Reference => expect_string(def, value),
        AttrType::DateTime => coerce_date_time(def, value),
        AttrType::Boolean => coerce_bool(def, value),
        AttrType::Integer => coerce_integer(def, value),
        AttrType::Complex => coerce_complex(def, value),
    }
}

fn type_error(def: &AttrDef, expected: &str) -> ScimError {
    ScimError::invalid_value(format!("'{}' takes {expected}", def.name))
}

fn expect_string(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::String(_) => Ok(value.clone()),
        _ => Err(type_error(def, "a string")),
    }
}

fn coerce_date_time(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::String(s) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => Ok(value.clone()),
        _ => Err(type_error(def, "an RFC 3339 date-time")),
    }
}

fn coerce_bool(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        _ => Err(type_error(def, "true or false")),
    }
}

fn coerce_integer(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
        _ => Err(type_error(def, "an integer")),
    }
}

fn coerce_complex(def: &AttrDef, value: &Value) -> Result<Value, ScimError> {
    let obj = match value {
        Value::Object(obj) => obj,
        Value::Array(_) => return Err(type_error(def, "an object")),
        scalar if def.has_value_sub_attribute() => {
            let mut wrapped = Map::new();
            wrapped.insert("value".to_owned(), scalar.clone());
            return coerce_complex(def, &Value::Object(wrapped));
        }
        _ => return Err(type_error(def, "an object")),
    };
    let mut out = Map::new();
    for (key, sub_value) in obj {
        let Some(sub) = def.sub_attribute(key) else {
            return Err(ScimError::invalid_value(format!(
                "'{}' has no sub-attribute '{key}'",
                def.name
            )));
        };
        let ignored_read_only =
            sub.mutability == Mutability::ReadOnly && def.mutability != Mutability::ReadOnly;
        if sub_value.is_null() || ignored_read_only {
            continue;
        }
        out.insert(sub.name.clone(), coerce(sub, sub_value)?);
    }
    Ok(Value::Object(out))
}

//! Checking a POST or PUT body against the resource's schemas.

use serde_json::{Map, Value};

use super::value::coerce;
use crate::error::ScimError;
use crate::schema::{AttrDef, Mutability, ResourceSchema};

/// Checks a full resource (a POST or PUT body) against `schemas` and rewrites it with the
/// schemas' spelling of attribute names.
///
/// - `schemas` must be an array of supported schema URNs containing the core one
///   (`invalidSyntax` otherwise); extensions present in the body are added to it.
/// - Values must have their attribute's type (`invalidValue`), with the lenient boolean
///   strings `"True"`/`"False"`; unknown attributes are `invalidSyntax`; required attributes
///   must be present (`invalidValue`).
/// - Read-only attributes (`id`, `meta`, `groups`) are dropped, as RFC 7644 §3.3 says they are
///   ignored; so are `null` values and the standard attributes the schema ignores.
///
/// `password` (write-only) stays in the result: the caller takes it out and hashes it.
pub fn validate(resource: &mut Value, schemas: &[&ResourceSchema]) -> Result<(), ScimError> {
    let Some(core) = schemas.first() else {
        return Err(ScimError::invalid_syntax("no schema to validate against"));
    };
    let body = resource
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a resource is a JSON object"))?;
    let mut listed = listed_schemas(body, schemas)?;
    let mut out = Map::new();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(extension) = schemas[1..].iter().find(|s| s.is(key)) {
            let attributes = validate_attributes(extension, value)?;
            if !attributes.is_empty() {
                if !listed.contains(&extension.id) {
                    listed.push(extension.id.clone());
                }
                out.insert(extension.id.clone(), Value::Object(attributes));
            }
            continue;
        }
        validate_attribute(core, key, value, &mut out)?;
    }
    check_required(core, &out)?;
    out.insert(
        "schemas".to_owned(),
        Value::Array(listed.into_iter().map(Value::from).collect()),
    );
    *resource = Value::Object(out);
    Ok(())
}

/// The canonical URNs of the body's `schemas`, which must all be supported and include the
/// core schema.
fn listed_schemas(
    body: &Map<String, Value>,
    schemas: &[&ResourceSchema],
) -> Result<Vec<String>, ScimError> {
    let entries = crate::json::get_ci(body, "schemas")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("'schemas' must be an array of schema URNs"))?;
    let mut listed = Vec::new();
    for entry in entries {
        let urn = entry.as_str().ok_or_else(|| {
            ScimError::invalid_syntax("'schemas' must be an array of schema URNs")
        })?;
        let schema = schemas.iter().find(|s| s.is(urn)).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unsupported schema '{urn}' in 'schemas'"))
        })?;
        if !listed.contains(&schema.id) {
            listed.push(schema.id.clone());
        }
    }
    let core = schemas.first().map(|s| s.id.as_str()).unwrap_or_default();
    if !listed.iter().any(|id| id == core) {
        return Err(ScimError::invalid_syntax(format!(
            "'schemas' must contain {core}"
        )));
    }
    Ok(listed)
}

/// The attributes of an extension object.
fn validate_attributes(
    schema: &ResourceSchema,
    value: &Value,
) -> Result<Map<String, Value>, ScimError> {
    let body = value
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax(format!("'{}' must be an object", schema.id)))?;
    let mut out = Map::new();
    for (key, value) in body {
        validate_attribute(schema, key, value, &mut out)?;
    }
    check_required(schema, &out)?;
    Ok(out)
}

/// Checks one attribute of `schema` and adds it to `out` unless it is dropped.
fn validate_attribute(
    schema: &ResourceSchema,
    key: &str,
    value: &Value,
    out: &mut Map<String, Value>,
) -> Result<(), ScimError> {
    let Some(attr) = schema.attribute(key) else {
        if schema.is_ignored(key) {
            return Ok(());
        }
        return Err(ScimError::invalid_syntax(format!(
            "unknown attribute '{key}' for {}",
            schema.id
        )));
    };
    if let Some(value) = checked_value(attr, value)? {
        out.insert(attr.name.clone(), value);
    }
    Ok(())
}

fn checked_value(attr: &AttrDef, value: &Value) -> Result<Option<Value>, ScimError> {
    if attr.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    let value = coerce(attr, value)?;
    let unassigned = match &value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(obj) => obj.is_empty(),
        _ => false,
    };
    Ok((!unassigned).then_some(value))
}

fn check_required(schema: &ResourceSchema, out: &Map<String, Value>) -> Result<(), ScimError> {
    match schema
        .attributes
        .iter()
        .find(|a| a.required && !out.contains_key(&a.name))
    {
        Some(missing) => Err(ScimError::invalid_value(format!(
            "'{}' is required",
            missing.name
        ))),
        None => Ok(()),
    }
}

//! Applying PATCH operations with RFC 7644 §3.5.2 semantics.
//!
//! Every write computes the attribute's new value from its current one, checks mutability by
//! comparing the two (so re-sending a read-only attribute's current value, as Okta does with a
//! group's `id`, is accepted), then stores it under the schema's spelling. Extension attributes
//! live under their schema URN, which is added to (or removed from) `schemas` as the extension
//! object appears (or empties).

use serde_json::{Map, Value};

use super::value::{coerce, coerce_one};
use super::{PatchOp, PatchOpKind};
use crate::error::ScimError;
use crate::filter::eval::element_matches;
use crate::filter::{CompValue, CompareOp, Filter};
use crate::json::{get_ci, get_ci_mut, remove_ci, set_ci};
use crate::path::{PatchPath, parse_path};
use crate::resolve::{Lookup, Target, container, find_attr};
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema};

/// Applies `ops` to `resource` in order. Either all succeed and `resource` holds the result, or
/// the first failure is returned and `resource` is unchanged.
///
/// Errors: a read-only attribute changed, an immutable one changed once set, or a required one
/// removed is `mutability`; an unknown attribute is `invalidPath`; a value of the wrong type is
/// `invalidValue`; a filter that selects nothing where something must be replaced is
/// `noTarget`. Standard attributes the schema lists as ignored are accepted and dropped.
pub fn apply(
    resource: &mut Value,
    ops: &[PatchOp],
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let mut working = resource.clone();
    let obj = working
        .as_object_mut()
        .ok_or_else(|| ScimError::invalid_syntax("the resource is not a JSON object"))?;
    for op in ops {
        apply_op(obj, op, schemas)?;
    }
    *resource = working;
    Ok(())
}

fn apply_op(
    resource: &mut Map<String, Value>,
    op: &PatchOp,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let needs_value = || ScimError::invalid_syntax(format!("'{}' needs a value", op.op.as_str()));
    match (&op.path, op.op) {
        (None, PatchOpKind::Remove) => Err(ScimError::no_target("'remove' needs a path")),
        (Some(path), PatchOpKind::Remove) => remove(resource, path, op.value.as_ref(), schemas),
        (None, kind) => {
            let value = op.value.as_ref().ok_or_else(needs_value)?;
            write_attributes(resource, kind, value, schemas)
        }
        (Some(path), kind) => {
            let value = op.value.as_ref().ok_or_else(needs_value)?;
            write(resource, kind, path, value, schemas)
        }
    }
}

/// A path-less add or replace: `value` is an object whose keys are attribute paths
/// (`displayName`, `name.givenName`, `urn:…:User:department`) or an extension's URN mapping
/// to an object of its attributes.
fn write_attributes(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    value: &Value,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let attributes = value.as_object().ok_or_else(|| {
        ScimError::invalid_value(format!(
            "'{}' without a path takes an object of attributes",
            kind.as_str()
        ))
    })?;
    for (key, value) in attributes {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(schema) = schemas.iter().find(|s| s.is(key)) {
            write_schema_attributes(resource, kind, schema, value, schemas)?;
            continue;
        }
        write(resource, kind, &parse_path(key)?, value, schemas)?;
    }
    Ok(())
}

fn write_schema_attributes(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    schema: &ResourceSchema,
    value: &Value,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let attributes = value.as_object().ok_or_else(|| {
        ScimError::invalid_value(format!("'{}' takes an object of attributes", schema.id))
    })?;
    for (key, value) in attributes {
        let mut path = parse_path(key)?;
        path.attr.urn.get_or_insert_with(|| schema.id.clone());
        write(resource, kind, &path, value, schemas)?;
    }
    Ok(())
}

/// What a path resolved to.
struct Resolved<'s> {
    target: Target<'s>,
    sub: Option<&'s AttrDef>,
}

/// Resolves `path`; `None` for an attribute the schema ignores.
fn resolve<'s>(
    path: &PatchPath,
    schemas: &[&'s ResourceSchema],
) -> Result<Option<Resolved<'s>>, ScimError> {
    let attr = &path.attr;
    let target = match find_attr(schemas, attr.urn.as_deref(), &attr.name) {
        Lookup::Found(target) => target,
        Lookup::Ignored => return Ok(None),
        Lookup::UnknownSchema => {
            return Err(ScimError::invalid_path(format!(
                "'{path}' names a schema this resource does not have"
            )));
        }
        Lookup::Unknown => {
            return Err(ScimError::invalid_path(format!(
                "unknown attribute '{}'",
                attr.name
            )));
        }
    };
    let sub = match &attr.sub {
        None => None,
        Some(sub) => Some(target.attr.sub_attribute(sub).ok_or_else(|| {
            ScimError::invalid_path(format!(
                "'{}' has no sub-attribute '{sub}'",
                target.attr.name
            ))
        })?),
    };
    if path.filter.is_some() && !(target.attr.multi_valued && target.attr.ty == AttrType::Complex) {
        return Err(ScimError::invalid_path(format!(
            "'{}' is not a multi-valued complex attribute, so it takes no [filter]",
            target.attr.name
        )));
    }
    if path.filter.is_none() && sub.is_some() && target.attr.multi_valued {
        return Err(ScimError::invalid_path(format!(
            "a sub-attribute of the multi-valued '{0}' needs a filter, as in {0}[type eq \"work\"].{1}",
            target.attr.name,
            attr.sub.as_deref().unwrap_or_default()
        )));
    }
    if let Some(sub) = sub.filter(|s| s.mutability == Mutability::ReadOnly) {
        return Err(ScimError::mutability(format!(
            "'{}.{}' is read-only",
            target.attr.name, sub.name
        )));
    }
    Ok(Some(Resolved { target, sub }))
}

fn current<'r>(resource: &'r Map<String, Value>, target: &Target<'_>) -> Option<&'r Value> {
    container(resource, target).and_then(|obj| get_ci(obj, &target.attr.name))
}

/// An add or replace at `path`.
fn write(
    resource: &mut Map<String, Value>,
    kind: PatchOpKind,
    path: &PatchPath,
    value: &Value,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    if value.is_null() && path.filter.is_none() {
        return remove(resource, path, None, schemas);
    }
    let Some(Resolved { target, sub }) = resolve(path, schemas)? else {
        return Ok(());
    };
    let attr = target.attr;
    let old = current(resource, &target).cloned();
    let new = match (&path.filter, sub) {
        (None, None) => write_whole(kind, attr, old.as_ref(), value)?,
        (None, Some(sub)) => set_sub(old.as_ref(), sub, coerce(sub, value)?),
        (Some(filter), sub) => write_selected(kind, attr, filter, sub, old.as_ref(), value)?,
    };
    check_mutability(attr, old.as_ref(), Some(&new))?;
    store(resource, &target, Some(new));
    Ok(())
}

/// The attribute's new value after writing `value` to the whole of it.
fn write_whole(
    kind: PatchOpKind,
    attr: &AttrDef,
    old: Option<&Value>,
    value: &Value,
) -> Result<Value, ScimError> {
    let value = coerce(attr, value)?;
    Ok(match (kind, attr.multi_valued, attr.ty) {
        (PatchOpKind::Add, true, _) => append(attr, old, value),
        (_, false, AttrType::Complex) => merge(old, value),
        _ => value,
    })
}

/// `new` merged into the object `old`: keys of `new` win, others stay.
fn merge(old: Option<&Value>, new: Value) -> Value {
    let mut out = old.and_then(Value::as_object).cloned().unwrap_or_default();
    if let Value::Object(new) = new {
        out.extend(new);
    }
    Value::Object(out)
}

/// `new` values appended to `old`: an equal value is not added twice, and a complex value
/// whose `value` is already there is merged into it. A new primary value makes the others
/// non-primary.
fn append(attr: &AttrDef, old: Option<&Value>, new: Value) -> Value {
    let mut items = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let Value::Array(new) = new else {
        return Value::Array(items);
    };
    for item in new {
        let existing = items.iter().position(|old| same_value(attr, old, &item));
        let index = match existing {
            Some(i) => {
                items[i] = merge(Some(&items[i]), item);
                i
            }
            None => {
                items.push(item);
                items.len() - 1
            }
        };
        if is_primary(&items[index]) {
            demote_others(&mut items, index);
        }
    }
    Value::Array(items)
}

fn is_primary(item: &Value) -> bool {
    item.get("primary") == Some(&Value::Bool(true))
}

fn demote_others(items: &mut [Value], primary: usize) {
    for (i, item) in items.iter_mut().enumerate() {
        if i != primary && is_primary(item) {
            set_sub_in_place(item, "primary", Value::Bool(false));
        }
    }
}

/// Whether two values of `attr` are the same value: equal `value` sub-attributes for complex
/// attributes that have one (compared as the sub-attribute's caseExact says), equal JSON
/// otherwise.
fn same_value(attr: &AttrDef, a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let Some(value_def) = attr
        .sub_attribute("value")
        .filter(|_| attr.ty == AttrType::Complex)
    else {
        return false;
    };
    match (a.get("value"), b.get("value")) {
        (Some(Value::String(x)), Some(Value::String(y))) if !value_def.case_exact => {
            x.to_lowercase() == y.to_lowercase()
        }
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The single-valued complex `old` with `sub` set to `value` (or removed, for `null`).
fn set_sub(old: Option<&Value>, sub: &AttrDef, value: Value) -> Value {
    let mut out = old
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()));
    set_sub_in_place(&mut out, &sub.name, value);
    out
}

fn set_sub_in_place(item: &mut Value, name: &str, value: Value) {
    if let Some(obj) = item.as_object_mut() {
        if value.is_null() {
            remove_ci(obj, name);
        } else {
            set_ci(obj, name, value);
        }
    }
}

/// An add or replace at `attr[filter]` or `attr[filter].sub`.
fn write_selected(
    kind: PatchOpKind,
    attr: &AttrDef,
    filter: &Filter,
    sub: Option<&AttrDef>,
    old: Option<&Value>,
    value: &Value,
) -> Result<Value, ScimError> {
    let mut items = old.and_then(Value::as_array).cloned().unwrap_or_default();
    let selected: Vec<usize> = (0..items.len())
        .filter(|&i| element_matches(filter, &items[i], attr))
        .collect();
    if selected.is_empty() {
        let created = create_selected(attr, filter, sub, value)?;
        items.push(created);
        return Ok(Value::Array(items));
    }
    for i in selected {
        items[i] = match (sub, kind) {
            (Some(sub), _) => set_sub(Some(&items[i]), sub, coerce(sub, value)?),
            (None, PatchOpKind::Add) => merge(Some(&items[i]), coerce_one(attr, value)?),
            (None, _) => coerce_one(attr, value)?,
        };
    }
    Ok(Value::Array(items))
}

/// The value to add when `attr[filter]` selects nothing: possible when the filter is `eq`
/// comparisons joined by `and` (Entra ID writes `emails[type eq "work"].value` for a user
/// without a work e-mail and expects one to be created); otherwise `noTarget`.
fn create_selected(
    attr: &AttrDef,
    filter: &Filter,
    sub: Option<&AttrDef>,
    value: &Value,
) -> Result<Value, ScimError> {
    let no_target = || {
        ScimError::no_target(format!(
            "no value of '{}' matches the filter '{filter}'",
            attr.name
        ))
    };
    let mut item = Map::new();
    if !collect_equalities(attr, filter, &mut item) {
        return Err(no_target());
    }
    let written = match sub {
        Some(sub) => set_sub(Some(&Value::Object(Map::new())), sub, coerce(sub, value)?),
        None => coerce_one(attr, value)?,
    };
    Ok(merge(Some(&Value::Object(item)), written))
}

/// Fills `item` with the `sub eq literal` comparisons of `filter`; false if it has others.
fn collect_equalities(attr: &AttrDef, filter: &Filter, item: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::And(left, right) => {
            collect_equalities(attr, left, item) && collect_equalities(attr, right, item)
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub.is_none() => {
            let Some(sub) = attr.sub_attribute(&path.name) else {
                return false;
            };
            let literal = match value {
                CompValue::String(s) => Value::from(s.as_str()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(_) | CompValue::Null => return false,
            };
            item.insert(sub.name.clone(), literal);
            true
        }
        _ => false,
    }
}

/// A remove at `path`; `value` (for multi-valued attributes without a filter) lists the values
/// to remove, as Entra ID does for group members.
fn remove(
    resource: &mut Map<String, Value>,
    path: &PatchPath,
    value: Option<&Value>,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let Some(Resolved { target, sub }) = resolve(path, schemas)? else {
        return Ok(());
    };
    let attr = target.attr;
    if attr.required && sub.is_none() && path.filter.is_none() {
        return Err(ScimError::mutability(format!(
            "'{}' is required and cannot be removed",
            attr.name
        )));
    }
    let old = current(resource, &target).cloned();
    let new = match (&path.filter, sub) {
        (None, None) => remove_listed(attr, old.as_ref(), value)?,
        (None, Some(sub)) => Some(set_sub(old.as_ref(), sub, Value::Null)),
        (Some(filter), sub) => Some(remove_selected(attr, filter, sub, old.as_ref())),
    };
    check_mutability(attr, old.as_ref(), new.as_ref())?;
    store(resource, &target, new);
    Ok(())
}

/// Removing a whole attribute: all of it, or for a multi-valued attribute with a `value`, the
/// values listed there.
fn remove_listed(
    attr: &AttrDef,
    old: Option<&Value>,
    value: Option<&Value>,
) -> Result<Option<Value>, ScimError> {
    let Some(value) = value.filter(|v| !v.is_null() && attr.multi_valued) else {
        return Ok(None);
    };
    let Value::Array(listed) = coerce(attr, value)? else {
        return Ok(None);
    };
    let mut items = old.and_then(Value::as_array).cloned().unwrap_or_default();
    items.retain(|item| !listed.iter().any(|l| same_value(attr, item, l)));
    Ok(Some(Value::Array(items)))
}

fn remove_selected(
    attr: &AttrDef,
    filter: &Filter,
    sub: Option<&AttrDef>,
    old: Option<&Value>,
) -> Value {
    let mut items = old.and_then(Value::as_array).cloned().unwrap_or_default();
    match sub {
        None => items.retain(|item| !element_matches(filter, item, attr)),
        Some(sub) => {
            for item in items
                .iter_mut()
                .filter(|item| element_matches(filter, item, attr))
            {
                set_sub_in_place(item, &sub.name, Value::Null);
            }
        }
    }
    Value::Array(items)
}

/// Refuses a change to a read-only attribute, or to an immutable one that has a value.
fn check_mutability(
    attr: &AttrDef,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), ScimError> {
    let unassigned = |v: Option<&Value>| v.is_none_or(is_unassigned);
    if old == new || (unassigned(old) && unassigned(new)) {
        return Ok(());
    }
    match attr.mutability {
        Mutability::ReadOnly => Err(ScimError::mutability(format!(
            "'{}' is read-only",
            attr.name
        ))),
        Mutability::Immutable if !unassigned(old) => Err(ScimError::mutability(format!(
            "'{}' is immutable",
            attr.name
        ))),
        _ => Ok(()),
    }
}

/// `null`, `[]` and `{}` leave an attribute unassigned (RFC 7643 §2.5).
fn is_unassigned(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(obj) => obj.is_empty(),
        _ => false,
    }
}

/// Stores the attribute's new value (or removes it), under the schema's spelling.
fn store(resource: &mut Map<String, Value>, target: &Target<'_>, new: Option<Value>) {
    let new = new.filter(|v| !is_unassigned(v));
    let name = &target.attr.name;
    if !target.extension {
        match new {
            Some(value) => set_ci(resource, name, value),
            None => {
                remove_ci(resource, name);
            }
        }
        return;
    }
    let urn = &target.schema.id;
    let mut extension = remove_ci(resource, urn)
        .and_then(|v| match v {
            Value::Object(obj) => Some(obj),
            _ => None,
        })
        .unwrap_or_default();
    match new {
        Some(value) => set_ci(&mut extension, name, value),
        None => {
            remove_ci(&mut extension, name);
        }
    }
    let listed = !extension.is_empty();
    if listed {
        resource.insert(urn.clone(), Value::Object(extension));
    }
    list_schema(resource, urn, listed);
}

/// Adds `urn` to (or removes it from) the resource's `schemas`, when it has that array.
fn list_schema(resource: &mut Map<String, Value>, urn: &str, listed: bool) {
    let Some(Value::Array(schemas)) = get_ci_mut(resource, "schemas") else {
        return;
    };
    let is_urn = |v: &Value| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn));
    let present = schemas.iter().any(is_urn);
    if listed && !present {
        schemas.push(Value::from(urn));
    } else if !listed && present {
        schemas.retain(|v| !is_urn(v));
    }
}

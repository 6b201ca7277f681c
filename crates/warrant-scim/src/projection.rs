//! The `attributes` and `excludedAttributes` query parameters (RFC 7644 §3.9).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::json::{get_ci, get_ci_mut, remove_ci};
use crate::resolve::{Lookup, find_attr};
use crate::schema::{AttrDef, ResourceSchema, Returned};
use crate::syntax;

/// What a list names of one attribute: all of it, or some of its sub-attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Whole,
    Subs(Vec<String>),
}

/// Attributes named by a list, keyed by (index of the schema, canonical attribute name).
type Selection = BTreeMap<(usize, String), Part>;

/// The representation of `resource` to return, given the comma-separated `attributes` or
/// `excludedAttributes` parameter (at most one of them).
///
/// Names are case-insensitive and may name sub-attributes (`name.givenName`,
/// `emails.value`), be URN-qualified (`urn:…:User:department`), or be an extension's URN (all
/// of its attributes). Names no schema declares are ignored. `schemas` and attributes returned
/// `always` (`id`) are always kept; attributes returned `never` (`password`) never are.
/// A malformed name is `invalidPath`; both parameters at once is `invalidSyntax`.
pub fn project(
    resource: &Value,
    attributes: Option<&str>,
    excluded_attributes: Option<&str>,
    schemas: &[&ResourceSchema],
) -> Result<Value, ScimError> {
    let obj = resource
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("a resource is a JSON object"))?;
    let attributes = attributes.filter(|a| !a.trim().is_empty());
    let excluded = excluded_attributes.filter(|a| !a.trim().is_empty());
    match (attributes, excluded) {
        (Some(_), Some(_)) => Err(ScimError::invalid_syntax(
            "use either attributes or excludedAttributes, not both",
        )),
        (Some(list), None) => Ok(Value::Object(keep(obj, &select(list, schemas)?, schemas))),
        (None, excluded) => {
            let selection = match excluded {
                Some(list) => select(list, schemas)?,
                None => Selection::new(),
            };
            Ok(Value::Object(drop(obj, &selection, schemas)))
        }
    }
}

/// Parses a comma-separated list of attribute names.
fn select(list: &str, schemas: &[&ResourceSchema]) -> Result<Selection, ScimError> {
    let mut selection = Selection::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(index) = schemas.iter().position(|s| s.is(name)) {
            for attr in &schemas[index].attributes {
                selection.insert((index, attr.name.clone()), Part::Whole);
            }
            continue;
        }
        let path = syntax::attr_path(name)
            .map_err(|e| ScimError::invalid_path(format!("'{name}' {}", e.describe())))?;
        let Lookup::Found(target) = find_attr(schemas, path.urn.as_deref(), &path.name) else {
            continue;
        };
        let index = schemas
            .iter()
            .position(|s| std::ptr::eq(*s, target.schema))
            .unwrap_or_default();
        let key = (index, target.attr.name.clone());
        let part = match path.sub.as_deref().map(|s| target.attr.sub_attribute(s)) {
            None => Part::Whole,
            Some(None) => continue,
            Some(Some(sub)) => Part::Subs(vec![sub.name.clone()]),
        };
        add_part(&mut selection, key, part);
    }
    Ok(selection)
}

fn add_part(selection: &mut Selection, key: (usize, String), part: Part) {
    let merged = match (selection.remove(&key), part) {
        (Some(Part::Whole), _) | (_, Part::Whole) => Part::Whole,
        (Some(Part::Subs(mut old)), Part::Subs(new)) => {
            old.extend(new);
            Part::Subs(old)
        }
        (None, part) => part,
    };
    selection.insert(key, merged);
}

/// The object holding schema `index`'s attributes: the resource, or its extension object.
fn container<'r>(
    resource: &'r Map<String, Value>,
    index: usize,
    schema: &ResourceSchema,
) -> Option<&'r Map<String, Value>> {
    if index == 0 {
        Some(resource)
    } else {
        get_ci(resource, &schema.id).and_then(Value::as_object)
    }
}

/// `attributes=`: `schemas`, the always-returned attributes and the selected ones.
fn keep(
    resource: &Map<String, Value>,
    selection: &Selection,
    schemas: &[&ResourceSchema],
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(listed) = get_ci(resource, "schemas") {
        out.insert("schemas".to_owned(), listed.clone());
    }
    for (index, schema) in schemas.iter().enumerate() {
        let Some(source) = container(resource, index, schema) else {
            continue;
        };
        let mut kept = Map::new();
        for attr in &schema.attributes {
            let Some(value) = get_ci(source, &attr.name) else {
                continue;
            };
            let part = match attr.returned {
                Returned::Never => None,
                Returned::Always => Some(&Part::Whole),
                Returned::Default | Returned::Request => selection.get(&(index, attr.name.clone())),
            };
            let projected = match part {
                None => continue,
                Some(Part::Whole) => value.clone(),
                Some(Part::Subs(subs)) => only_subs(attr, value, subs),
            };
            kept.insert(attr.name.clone(), projected);
        }
        if index == 0 {
            out.extend(kept);
        } else if !kept.is_empty() {
            out.insert(schema.id.clone(), Value::Object(kept));
        }
    }
    out
}

/// A complex value (or each value of a multi-valued one) cut down to `subs` and the
/// always-returned sub-attributes.
fn only_subs(attr: &AttrDef, value: &Value, subs: &[String]) -> Value {
    let keep_sub = |key: &str| {
        subs.iter().any(|s| s.eq_ignore_ascii_case(key))
            || attr
                .sub_attribute(key)
                .is_some_and(|d| d.returned == Returned::Always)
    };
    let cut = |item: &Value| match item {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .filter(|(k, _)| keep_sub(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    };
    match value {
        Value::Array(items) => Value::Array(items.iter().map(cut).collect()),
        single => cut(single),
    }
}

/// Default and `excludedAttributes=`: everything but the never-returned, the request-only and
/// the excluded attributes (always-returned ones stay).
fn drop(
    resource: &Map<String, Value>,
    selection: &Selection,
    schemas: &[&ResourceSchema],
) -> Map<String, Value> {
    let mut out = resource.clone();
    for (index, schema) in schemas.iter().enumerate() {
        let target = if index == 0 {
            Some(&mut out)
        } else {
            get_ci_mut(&mut out, &schema.id).and_then(Value::as_object_mut)
        };
        let Some(target) = target else {
            continue;
        };
        for attr in &schema.attributes {
            drop_attribute(target, attr, selection.get(&(index, attr.name.clone())));
        }
        if index > 0 && target.is_empty() {
            remove_ci(&mut out, &schema.id);
        }
    }
    out
}

fn drop_attribute(container: &mut Map<String, Value>, attr: &AttrDef, excluded: Option<&Part>) {
    let gone = match (attr.returned, excluded) {
        (Returned::Never | Returned::Request, _) => true,
        (Returned::Always, _) => false,
        (Returned::Default, Some(Part::Whole)) => true,
        (Returned::Default, _) => false,
    };
    if gone {
        remove_ci(container, &attr.name);
        return;
    }
    let (Some(Part::Subs(subs)), Some(value)) = (excluded, get_ci_mut(container, &attr.name))
    else {
        return;
    };
    let strip = |item: &mut Value| {
        if let Some(obj) = item.as_object_mut() {
            for sub in subs {
                let always = attr
                    .sub_attribute(sub)
                    .is_some_and(|d| d.returned == Returned::Always);
                if !always {
                    remove_ci(obj, sub);
                }
            }
        }
    };
    match value {
        Value::Array(items) => items.iter_mut().for_each(strip),
        single => strip(single),
    }
}

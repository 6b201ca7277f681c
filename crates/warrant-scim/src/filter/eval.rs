//! Filter evaluation over resource JSON, and checking a filter against the schemas.

use std::cmp::Ordering;

use serde_json::{Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{AttrPath, CompValue, CompareOp, Filter};
use crate::error::ScimError;
use crate::json::{get_ci, is_present, values_of};
use crate::resolve::{Lookup, container, find_attr, schemas_attr};
use crate::schema::{AttrDef, AttrType, ResourceSchema, Returned};

/// What paths are resolved against: the resource, or one value of a complex attribute inside
/// `attr[...]`.
enum Scope<'a> {
    Resource {
        resource: &'a Value,
        schemas: &'a [&'a ResourceSchema],
    },
    Element {
        element: &'a Value,
        parent: &'a AttrDef,
    },
}

/// The values a path selects, and the definition that says how to compare them.
struct Selected<'a> {
    def: Option<&'a AttrDef>,
    values: Vec<&'a Value>,
}

impl<'a> Selected<'a> {
    fn none() -> Self {
        Self {
            def: None,
            values: Vec::new(),
        }
    }
}

pub(super) fn matches(filter: &Filter, resource: &Value, schemas: &[&ResourceSchema]) -> bool {
    eval(filter, &Scope::Resource { resource, schemas })
}

/// Matches a value of the complex attribute `parent` against a value filter (the inside of
/// `attr[...]`): used by PATCH to select the values a path names.
pub(crate) fn element_matches(filter: &Filter, element: &Value, parent: &AttrDef) -> bool {
    eval(filter, &Scope::Element { element, parent })
}

fn eval(filter: &Filter, scope: &Scope<'_>) -> bool {
    match filter {
        Filter::Present(path) => select(scope, path).values.into_iter().any(is_present),
        Filter::Compare { path, op, value } => compare(&select(scope, path), *op, value),
        Filter::ValuePath { path, filter } => value_path(scope, path, filter),
        Filter::And(left, right) => eval(left, scope) && eval(right, scope),
        Filter::Or(left, right) => eval(left, scope) || eval(right, scope),
        Filter::Not(inner) => !eval(inner, scope),
    }
}

fn value_path(scope: &Scope<'_>, path: &AttrPath, inner: &Filter) -> bool {
    let Scope::Resource { .. } = scope else {
        return false;
    };
    let selected = select(scope, path);
    let Some(parent) = selected.def.filter(|d| d.ty == AttrType::Complex) else {
        return false;
    };
    selected
        .values
        .into_iter()
        .any(|element| eval(inner, &Scope::Element { element, parent }))
}

/// The values `path` selects in `scope`.
fn select<'a>(scope: &Scope<'a>, path: &AttrPath) -> Selected<'a> {
    match scope {
        Scope::Resource { resource, schemas } => select_in_resource(resource, schemas, path),
        Scope::Element { element, parent } => select_in_element(element, parent, path),
    }
}

fn select_in_resource<'a>(
    resource: &'a Value,
    schemas: &'a [&'a ResourceSchema],
    path: &AttrPath,
) -> Selected<'a> {
    if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("schemas") {
        let values = resource
            .as_object()
            .and_then(|obj| get_ci(obj, "schemas"))
            .map(values_of)
            .unwrap_or_default();
        return Selected {
            def: Some(schemas_attr()),
            values,
        };
    }
    let Lookup::Found(target) = find_attr(schemas, path.urn.as_deref(), &path.name) else {
        return Selected::none();
    };
    if target.attr.returned == Returned::Never {
        return Selected::none();
    }
    let value = resource
        .as_object()
        .and_then(|obj| container(obj, &target))
        .and_then(|obj| get_ci(obj, &target.attr.name));
    let values = value.map(values_of).unwrap_or_default();
    match &path.sub {
        None => Selected {
            def: Some(target.attr),
            values,
        },
        Some(sub) => select_sub(target.attr, values, sub),
    }
}

fn select_sub<'a>(parent: &'a AttrDef, values: Vec<&'a Value>, sub: &str) -> Selected<'a> {
    let Some(def) = parent.sub_attribute(sub) else {
        return Selected::none();
    };
    let values = values
        .into_iter()
        .filter_map(Value::as_object)
        .filter_map(|obj| get_ci(obj, &def.name))
        .flat_map(values_of)
        .collect();
    Selected {
        def: Some(def),
        values,
    }
}

fn select_in_element<'a>(element: &'a Value, parent: &'a AttrDef, path: &AttrPath) -> Selected<'a> {
    if path.urn.is_some() || path.sub.is_some() {
        return Selected::none();
    }
    let Some(def) = parent.sub_attribute(&path.name) else {
        return Selected::none();
    };
    let values = element
        .as_object()
        .and_then(|obj| get_ci(obj, &def.name))
        .map(values_of)
        .unwrap_or_default();
    Selected {
        def: Some(def),
        values,
    }
}

/// A complex attribute compared as a whole compares its `value` sub-attribute.
fn comparable<'a>(selected: &Selected<'a>) -> Selected<'a> {
    match selected.def {
        Some(def) if def.ty == AttrType::Complex => {
            select_sub(def, selected.values.clone(), "value")
        }
        _ => Selected {
            def: selected.def,
            values: selected.values.clone(),
        },
    }
}

fn compare(selected: &Selected<'_>, op: CompareOp, expected: &CompValue) -> bool {
    let selected = comparable(selected);
    if *expected == CompValue::Null {
        let present = selected.values.iter().any(|v| is_present(v));
        return match op {
            CompareOp::Eq => !present,
            CompareOp::Ne => present,
            _ => false,
        };
    }
    let any_matches = |op| {
        selected
            .values
            .iter()
            .any(|actual| compare_one(actual, op, expected, selected.def))
    };
    match op {
        CompareOp::Ne => !any_matches(CompareOp::Eq),
        _ => any_matches(op),
    }
}

fn compare_one(actual: &Value, op: CompareOp, expected: &CompValue, def: Option<&AttrDef>) -> bool {
    match (actual, expected) {
        (Value::String(actual), CompValue::String(expected)) => {
            compare_strings(actual, op, expected, def)
        }
        (Value::Number(actual), CompValue::Number(expected)) => {
            holds(op, compare_numbers(actual, expected))
        }
        (Value::Bool(actual), CompValue::Bool(expected)) => {
            op == CompareOp::Eq && actual == expected
        }
        _ => false,
    }
}

fn compare_strings(actual: &str, op: CompareOp, expected: &str, def: Option<&AttrDef>) -> bool {
    if def.is_some_and(|d| d.ty == AttrType::DateTime)
        && matches!(
            op,
            CompareOp::Eq | CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
        && let (Ok(a), Ok(e)) = (
            OffsetDateTime::parse(actual, &Rfc3339),
            OffsetDateTime::parse(expected, &Rfc3339),
        )
    {
        return holds(op, Some(a.cmp(&e)));
    }
    let case_exact = def.is_some_and(|d| d.case_exact);
    let (actual, expected) = if case_exact {
        (actual.to_owned(), expected.to_owned())
    } else {
        (actual.to_lowercase(), expected.to_lowercase())
    };
    match op {
        CompareOp::Co => actual.contains(&expected),
        CompareOp::Sw => actual.starts_with(&expected),
        CompareOp::Ew => actual.ends_with(&expected),
        _ => holds(op, Some(actual.cmp(&expected))),
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Whether an ordering satisfies `op` (`eq` and the ordering operators).
fn holds(op: CompareOp, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Ne | CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

pub(super) fn check(filter: &Filter, schemas: &[&ResourceSchema]) -> Result<(), ScimError> {
    check_in(filter, schemas, None)
}

/// Checks `filter`; `parent` is the complex attribute inside `attr[...]`.
fn check_in(
    filter: &Filter,
    schemas: &[&ResourceSchema],
    parent: Option<&AttrDef>,
) -> Result<(), ScimError> {
    match filter {
        Filter::Present(path) => check_path(path, schemas, parent).map(|_| ()),
        Filter::Compare { path, op, .. } => {
            let def = check_path(path, schemas, parent)?;
            if op.is_ordering() && def.ty == AttrType::Boolean {
                return Err(ScimError::invalid_filter(format!(
                    "'{op}' cannot order the boolean attribute '{path}'"
                )));
            }
            Ok(())
        }
        Filter::ValuePath { path, filter } => {
            let def = check_path(path, schemas, parent)?;
            if def.ty != AttrType::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}' is not a complex attribute, so it takes no [filter]"
                )));
            }
            check_in(filter, schemas, Some(def))
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            check_in(left, schemas, parent)?;
            check_in(right, schemas, parent)
        }
        Filter::Not(inner) => check_in(inner, schemas, parent),
    }
}

/// The definition `path` names, or `invalidFilter`.
fn check_path<'s>(
    path: &AttrPath,
    schemas: &[&'s ResourceSchema],
    parent: Option<&'s AttrDef>,
) -> Result<&'s AttrDef, ScimError> {
    let unknown = || ScimError::invalid_filter(format!("unknown attribute '{path}'"));
    let attr = match parent {
        Some(parent) if path.urn.is_none() && path.sub.is_none() => {
            return parent.sub_attribute(&path.name).ok_or_else(unknown);
        }
        Some(_) => return Err(unknown()),
        None if path.urn.is_none()
            && path.sub.is_none()
            && path.name.eq_ignore_ascii_case("schemas") =>
        {
            return Ok(schemas_attr());
        }
        None => match find_attr(schemas, path.urn.as_deref(), &path.name) {
            Lookup::Found(target) => target.attr,
            Lookup::UnknownSchema => {
                return Err(ScimError::invalid_filter(format!(
                    "'{path}' names a schema this resource does not have"
                )));
            }
            Lookup::Ignored | Lookup::Unknown => return Err(unknown()),
        },
    };
    if attr.returned == Returned::Never {
        return Err(ScimError::invalid_filter(format!(
            "'{}' cannot be filtered on",
            attr.name
        )));
    }
    match &path.sub {
        None => Ok(attr),
        Some(sub) => attr.sub_attribute(sub).ok_or_else(unknown),
    }
}

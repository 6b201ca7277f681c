//! Finding an attribute's definition from a path, across a resource's core schema and its
//! extensions.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::json::get_ci;
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema};

/// `schemas`, the common attribute every resource has (RFC 7643 §3), which no schema declares.
static SCHEMAS_ATTR: LazyLock<AttrDef> = LazyLock::new(|| {
    AttrDef::new("schemas", AttrType::Reference)
        .multi()
        .with_mutability(Mutability::ReadOnly)
});

/// The definition of `schemas`, for filters such as `schemas eq "urn:…:enterprise:2.0:User"`.
pub(crate) fn schemas_attr() -> &'static AttrDef {
    &SCHEMAS_ATTR
}

/// Where an attribute was found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'s> {
    /// The schema declaring it.
    pub schema: &'s ResourceSchema,
    /// Whether that schema is an extension (its attributes live under its URN).
    pub extension: bool,
    /// The attribute.
    pub attr: &'s AttrDef,
}

/// The outcome of looking an attribute up.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup<'s> {
    /// A declared attribute.
    Found(Target<'s>),
    /// A standard attribute Warrant accepts and drops.
    Ignored,
    /// A URN that names none of the resource's schemas.
    UnknownSchema,
    /// No schema declares it.
    Unknown,
}

/// Looks `name` up: in the schema `urn` names, or (unqualified) in the core schema, then in
/// the extensions.
pub(crate) fn find_attr<'s>(
    schemas: &[&'s ResourceSchema],
    urn: Option<&str>,
    name: &str,
) -> Lookup<'s> {
    let candidates: Vec<(usize, &'s ResourceSchema)> = match urn {
        Some(urn) => {
            let found: Vec<_> = schemas
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, s)| s.is(urn))
                .collect();
            if found.is_empty() {
                return Lookup::UnknownSchema;
            }
            found
        }
        None => schemas.iter().copied().enumerate().collect(),
    };
    for (index, schema) in &candidates {
        if let Some(attr) = schema.attribute(name) {
            return Lookup::Found(Target {
                schema,
                extension: *index > 0,
                attr,
            });
        }
    }
    if candidates.iter().any(|(_, s)| s.is_ignored(name)) {
        Lookup::Ignored
    } else {
        Lookup::Unknown
    }
}

/// The object holding the target's attribute in `resource`: the resource itself, or the
/// extension object under the schema URN.
pub(crate) fn container<'v>(
    resource: &'v Map<String, Value>,
    target: &Target<'_>,
) -> Option<&'v Map<String, Value>> {
    if target.extension {
        get_ci(resource, &target.schema.id).and_then(Value::as_object)
    } else {
        Some(resource)
    }
}

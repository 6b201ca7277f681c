//! PATCH (RFC 7644 §3.5.2) and the validation of POST and PUT bodies (§3.3, §3.5.1).
//!
//! [`PatchRequest::parse`] checks the message; [`apply`] runs its operations in order on a copy
//! of the resource and keeps the result only if all succeed. [`validate`] checks a full
//! resource against its schemas and rewrites it with the schemas' spelling of attribute names.

mod apply;
mod validate;
mod value;

use serde_json::Value;

pub use self::apply::apply;
pub use self::validate::validate;
use crate::error::ScimError;
use crate::json::get_ci;
use crate::path::{PatchPath, parse_path};

/// The URN of the PATCH message schema.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    /// Adds values (appends to multi-valued attributes, merges complex ones).
    Add,
    /// Replaces values.
    Replace,
    /// Removes values.
    Remove,
}

impl PatchOpKind {
    /// The kind spelled `op`, case-insensitively (Entra ID sends `Replace`, `Add`, `Remove`).
    pub fn parse(op: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(op))
    }

    /// The lower-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }
}

/// One PATCH operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// What it does.
    pub op: PatchOpKind,
    /// Where; `None` for an add or replace of several attributes at once.
    pub path: Option<PatchPath>,
    /// The value; required for add and replace.
    pub value: Option<Value>,
}

/// A parsed PATCH request body.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRequest {
    /// The operations, in order.
    pub operations: Vec<PatchOp>,
}

impl PatchRequest {
    /// Parses a PATCH body: `schemas` must contain [`PATCH_OP_SCHEMA`] and `Operations` must be
    /// an array of operations. Structural errors are `invalidSyntax`, bad paths `invalidPath`,
    /// a remove without a path `noTarget`.
    pub fn parse(body: &Value) -> Result<Self, ScimError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a PATCH body is a JSON object"))?;
        let lists_patch_op = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|schemas| {
                schemas
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
            });
        if !lists_patch_op {
            return Err(ScimError::invalid_syntax(format!(
                "'schemas' must contain {PATCH_OP_SCHEMA}"
            )));
        }
        let operations = get_ci(obj, "Operations")
            .and_then(Value::as_array)
            .ok_or_else(|| ScimError::invalid_syntax("'Operations' must be an array"))?;
        let operations = operations
            .iter()
            .enumerate()
            .map(|(i, op)| parse_op(i, op))
            .collect::<Result<_, _>>()?;
        Ok(Self { operations })
    }
}

fn parse_op(index: usize, op: &Value) -> Result<PatchOp, ScimError> {
    let at = |detail: String| format!("Operations[{index}]: {detail}");
    let obj = op
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax(at("an operation is a JSON object".into())))?;
    let kind = get_ci(obj, "op")
        .and_then(Value::as_str)
        .and_then(PatchOpKind::parse)
        .ok_or_else(|| {
            ScimError::invalid_syntax(at("'op' must be add, replace or remove".into()))
        })?;
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(path)) => Some(parse_path(path).map_err(|e| ScimError {
            detail: at(e.detail.clone()),
            ..e
        })?),
        Some(_) => {
            return Err(ScimError::invalid_path(
                at("'path' must be a string".into()),
            ));
        }
    };
    let value = get_ci(obj, "value").cloned();
    if kind != PatchOpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(at(format!(
            "'{}' needs a value",
            kind.as_str()
        ))));
    }
    if kind == PatchOpKind::Remove && path.is_none() {
        return Err(ScimError::no_target(at("'remove' needs a path".into())));
    }
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

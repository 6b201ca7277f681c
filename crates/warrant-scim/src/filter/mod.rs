//! The `filter` query parameter (RFC 7644 §3.4.2.2): parsing, printing and evaluation.
//!
//! The parser is hand-written rather than taken from the `scim_v2` crate: Warrant evaluates
//! filters over its own JSON resources, with case-insensitive attribute resolution and
//! schema-aware comparisons (caseExact, dateTime), and wants errors that say where and what.
//!
//! Precedence follows the RFC: `not` binds tighter than `and`, which binds tighter than `or`;
//! `and` and `or` associate to the left. [`Filter`]'s `Display` prints a filter that parses back
//! to the same tree.

pub(crate) mod eval;

use std::fmt;

use serde_json::{Number, Value};

use crate::error::ScimError;
use crate::schema::ResourceSchema;
use crate::syntax;

pub use crate::syntax::{MAX_DEPTH, MAX_INPUT_LEN};

/// An attribute path: `[urn ":"] name ["." sub]`, spelled as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN, when fully qualified.
    pub urn: Option<String>,
    /// The attribute name.
    pub name: String,
    /// The sub-attribute name.
    pub sub: Option<String>,
}

impl AttrPath {
    /// An unqualified path to `name`.
    pub fn new(name: &str) -> Self {
        Self {
            urn: None,
            name: name.to_owned(),
            sub: None,
        }
    }

    /// Whether this names the attribute `name` of `schema` itself (no sub-attribute): matched
    /// case-insensitively, either unqualified or qualified with the schema's URN.
    pub fn is(&self, schema: &ResourceSchema, name: &str) -> bool {
        self.sub.is_none()
            && self.name.eq_ignore_ascii_case(name)
            && self.urn.as_deref().is_none_or(|urn| schema.is(urn))
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal: true when no value is equal, so also when the attribute is absent.
    Ne,
    /// Contains (strings).
    Co,
    /// Starts with (strings).
    Sw,
    /// Ends with (strings).
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl CompareOp {
    /// All operators, in RFC order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator spelled `word`, case-insensitively.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// The lower-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Whether this operator orders values (`gt`, `ge`, `lt`, `le`).
    pub fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    /// Whether this operator can take `value` at all: ordering a boolean or null is an
    /// `invalidFilter` error at parse time (RFC 7644 §3.4.2.2).
    pub fn accepts(self, value: &CompValue) -> bool {
        !(self.is_ordering() && matches!(value, CompValue::Bool(_) | CompValue::Null))
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A literal in a comparison: `compValue = false / null / true / number / string`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompValue {
    /// `null`: `attr eq null` holds when the attribute has no value, `attr ne null` when it has.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number.
    Number(Number),
    /// A JSON string, escapes decoded.
    String(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::String(s) => write!(f, "{}", Value::from(s.as_str())),
        }
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `attr pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `attr op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The literal.
        value: CompValue,
    },
    /// `attr[filter]`: some value of the complex attribute matches the inner filter, whose
    /// paths name sub-attributes.
    ValuePath {
        /// The complex attribute.
        path: AttrPath,
        /// The filter over its sub-attributes.
        filter: Box<Filter>,
    },
    /// `left and right`.
    And(Box<Filter>, Box<Filter>),
    /// `left or right`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`.
    Not(Box<Filter>),
}

/// Parses a filter; errors are `invalidFilter` and say at which byte offset and what was
/// expected there. Filters longer than [`MAX_INPUT_LEN`] bytes or nested deeper than
/// [`MAX_DEPTH`] levels are refused.
pub fn parse_filter(input: &str) -> Result<Filter, ScimError> {
    syntax::filter(input).map_err(|e| ScimError::invalid_filter(format!("filter {}", e.describe())))
}

impl Filter {
    /// Whether `resource` matches, evaluated as RFC 7644 §3.4.2.2 says.
    ///
    /// - Attribute names resolve case-insensitively against `schemas` (the core schema, then the
    ///   extensions); an attribute no schema declares, or one never returned (`password`),
    ///   has no value.
    /// - Strings compare case-insensitively unless the attribute is caseExact; `dateTime`
    ///   attributes compare as instants when both sides are RFC 3339; numbers numerically.
    /// - A multi-valued attribute matches when any of its values does; a complex attribute
    ///   compared without a sub-attribute compares its `value` sub-attribute.
    /// - `pr` is false for absent, null, empty strings, empty arrays and empty objects.
    /// - `gt`/`ge`/`lt`/`le` never match a boolean (ordering a boolean literal is refused by the
    ///   parser); `co`/`sw`/`ew` only match strings.
    pub fn matches(&self, resource: &Value, schemas: &[&ResourceSchema]) -> bool {
        eval::matches(self, resource, schemas)
    }

    /// Checks the filter against `schemas`: unknown attributes and sub-attributes, filters on
    /// `password`, value filters on simple attributes and ordering of booleans are
    /// `invalidFilter`. [`Filter::matches`] does not need it (it treats those as non-matching);
    /// the server calls it to answer a bad filter with a precise 400.
    pub fn check(&self, schemas: &[&ResourceSchema]) -> Result<(), ScimError> {
        eval::check(self, schemas)
    }

    /// `Some((path, value))` when the whole filter is one `attr eq "string"`, such as
    /// `userName eq "bjensen"`, so the server can answer it from an index.
    ///
    /// The comparison rules still apply: `userName` and `displayName` are not caseExact, so
    /// the index lookup must ignore case; `externalId` and `id` are caseExact.
    pub fn eq_value(&self) -> Option<(&AttrPath, &str)> {
        match self {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: CompValue::String(value),
            } => Some((path, value)),
            _ => None,
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::And(left, right) => {
                write_operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(
                    f,
                    right,
                    matches!(**right, Filter::Or(..) | Filter::And(..)),
                )
            }
            Filter::Or(left, right) => {
                write!(f, "{left} or ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..)))
            }
        }
    }
}

/// Writes an operand of `and`/`or`, in parentheses where precedence or left associativity
/// would otherwise regroup it.
fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

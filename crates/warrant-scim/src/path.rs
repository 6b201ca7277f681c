//! PATCH paths (RFC 7644 §3.5.2): `attr`, `attr.sub`, `urn:…:attr`, `urn:…:attr.sub`,
//! `attr[filter]` and `attr[filter].sub`, parsed with the filter machinery.

use std::fmt;

use crate::error::ScimError;
use crate::filter::{AttrPath, Filter};
use crate::syntax;

/// A parsed PATCH path.
///
/// `emails[type eq "work"].value` has `attr` = `emails.value` (the sub-attribute comes after
/// the filter) and `filter` = `type eq "work"`; `name.familyName` has no filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchPath {
    /// The attribute, and the sub-attribute targeted (if any).
    pub attr: AttrPath,
    /// The value filter selecting values of a multi-valued attribute.
    pub filter: Option<Box<Filter>>,
}

/// Parses a PATCH path; errors are `invalidPath`, with the byte offset and what was expected.
pub fn parse_path(input: &str) -> Result<PatchPath, ScimError> {
    syntax::patch_path(input).map_err(|e| ScimError::invalid_path(format!("path {}", e.describe())))
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(filter) = &self.filter else {
            return write!(f, "{}", self.attr);
        };
        let whole = AttrPath {
            sub: None,
            ..self.attr.clone()
        };
        write!(f, "{whole}[{filter}]")?;
        if let Some(sub) = &self.attr.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

//! The protocol half of Warrant's SCIM 2.0 service provider (RFC 7643, RFC 7644), without IO.
//!
//! `warrant-api` owns the routes and `warrant-store` the rows; this crate turns requests into
//! checked values and back:
//!
//! - [`error`]: `ScimError`, the RFC 7644 §3.12 error body.
//! - [`schema`]: the User (with the enterprise extension) and Group schemas, and the discovery
//!   documents (`/Schemas`, `/ResourceTypes`, `/ServiceProviderConfig`).
//! - [`filter`]: the `filter` query parameter: parser, printer and evaluation over resource JSON.
//! - [`path`]: PATCH paths (`emails[type eq "work"].value`).
//! - [`patch`]: PATCH requests applied to resource JSON, and `validate` for POST and PUT bodies.
//! - [`projection`]: the `attributes` and `excludedAttributes` query parameters.
//!
//! Resources are `serde_json::Value`s in the RFC 7643 representation: core attributes at the top
//! level, extension attributes under their schema URN. Every function that takes
//! `schemas: &[&ResourceSchema]` treats the first one as the resource's core schema and the
//! others as its extensions ([`schema::user_schemas`], [`schema::group_schemas`]).

#![warn(missing_docs)]

pub mod error;
pub mod filter;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schema;

mod json;
mod resolve;
mod syntax;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, parse_filter};
pub use patch::{PatchOp, PatchOpKind, PatchRequest, apply, validate};
pub use path::{PatchPath, parse_path};
pub use projection::project;
pub use schema::{AttrDef, AttrType, Mutability, ResourceSchema, Returned, Uniqueness};

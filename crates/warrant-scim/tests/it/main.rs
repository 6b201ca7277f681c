//! warrant-scim's test suite: one binary, one module per feature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod corpus;
mod discovery;
mod errors;
mod filter_eval;
mod filter_parse;
mod fixtures;
mod patch_idp;
mod patch_rules;
mod projection;
mod props;
mod validate;

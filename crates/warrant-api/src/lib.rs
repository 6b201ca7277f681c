//! warrant-api

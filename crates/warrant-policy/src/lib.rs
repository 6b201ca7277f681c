//! warrant-policy

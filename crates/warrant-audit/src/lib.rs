//! warrant-audit

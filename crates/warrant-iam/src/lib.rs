//! warrant-iam

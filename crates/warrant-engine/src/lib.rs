//! warrant-engine

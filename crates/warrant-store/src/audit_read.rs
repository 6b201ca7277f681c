//! Fast bulk reading of the audit chain for verification (stub; being written).

//! OCSF 1.5 mapping of audit records (being written).

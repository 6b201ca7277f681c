//! The schema, as ordered migrations. Every statement is written in the SQL that SQLite and
//! PostgreSQL share (TEXT, BIGINT, composite keys), so one list serves both backends.

/// Migrations, applied in order at start; `meta.schema_version` records the last applied.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE identities (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    manager TEXT,
    system_role TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    group_name TEXT NOT NULL,
    identity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, identity)
);
CREATE INDEX memberships_identity ON memberships (identity);

CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    address TEXT,
    owner TEXT NOT NULL,
    risk_tier BIGINT NOT NULL,
    description TEXT NOT NULL,
    admin_user TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE roles (
    target TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (target, name)
);

CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    target TEXT NOT NULL,
    role TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX rules_target_role ON rules (target, role);

CREATE TABLE policies (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    target TEXT NOT NULL,
    role TEXT NOT NULL,
    duration_secs BIGINT NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT,
    start_at BIGINT,
    rule_id TEXT NOT NULL,
    stages TEXT NOT NULL,
    current_stage BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    note TEXT
);
CREATE INDEX requests_status_expires ON requests (status, expires_at);
CREATE INDEX requests_identity ON requests (identity, status);

CREATE TABLE approvals (
    request_id TEXT NOT NULL,
    approver TEXT NOT NULL,
    stage BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    target TEXT NOT NULL,
    role TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX grants_open_ends ON grants (status, ends_at);
CREATE INDEX grants_holder ON grants (identity, target, role, status);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX jobs_due ON jobs (done_at, next_at);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX tokens_identity ON tokens (identity);

CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT,
    kind TEXT NOT NULL,
    identity TEXT,
    target TEXT,
    request_id TEXT,
    grant_id TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
"#,
    r#"
CREATE INDEX grants_request ON grants (request_id);
"#,
    // Issue 3: sources of truth, SCIM, MFA, sessions, OIDC, LDAP sync.
    r#"
ALTER TABLE identities ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE identities ADD COLUMN external_id TEXT;
ALTER TABLE identities ADD COLUMN missing_since BIGINT;
ALTER TABLE groups ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE groups ADD COLUMN external_id TEXT;

ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE tokens ADD COLUMN mfa_at BIGINT;

CREATE TABLE scim_resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    external_id TEXT,
    data TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX scim_resources_name ON scim_resources (kind, name);

CREATE TABLE mfa_factors (
    id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    secret TEXT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX mfa_factors_identity ON mfa_factors (identity);

CREATE TABLE recovery_codes (
    identity TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (identity, code_hash)
);

CREATE TABLE pending_logins (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
"#,
    r#"
ALTER TABLE pending_logins ADD COLUMN owner TEXT;
CREATE INDEX pending_logins_owner ON pending_logins (kind, owner);
"#,
    // Issue 4: the SSH user CA and the certificates it issued.
    r#"
CREATE TABLE ssh_ca (
    id BIGINT PRIMARY KEY,
    sealed_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE ssh_certs (
    serial BIGINT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    key_id TEXT NOT NULL,
    valid_before BIGINT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE INDEX ssh_certs_grant ON ssh_certs (grant_id);
"#,
    // Issue 4: target admin secrets (sealed) and the temporary database roles of grants.
    r#"
CREATE TABLE target_secrets (
    target TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE db_credentials (
    grant_id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    role_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dropped_at BIGINT
);
"#,
    // Issue 4: vaulted accounts (checkout, journaled rotation), Warrant's managed SSH key, and
    // discovery (inventory, scans, exceptions). Booleans are 0/1.
    r#"
ALTER TABLE targets ADD COLUMN host_key TEXT;
ALTER TABLE targets ADD COLUMN connector TEXT;
CREATE TABLE vaulted_accounts (
    target TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    exclusive BIGINT NOT NULL,
    rotate_every_secs BIGINT,
    rotate_after_checkin BIGINT NOT NULL,
    sealed TEXT NOT NULL,
    pending_sealed TEXT,
    rotation_id TEXT,
    rotation_step TEXT,
    rotation_due_at BIGINT,
    rotation_attempts BIGINT NOT NULL,
    last_rotated_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (target, name)
);
CREATE TABLE account_checkouts (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    account TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    identity TEXT NOT NULL,
    checked_out_at BIGINT NOT NULL,
    checked_in_at BIGINT,
    reveals BIGINT NOT NULL
);
CREATE INDEX account_checkouts_account ON account_checkouts (target, account, checked_in_at);
CREATE INDEX account_checkouts_grant ON account_checkouts (grant_id);
CREATE TABLE sealed_keys (
    name TEXT PRIMARY KEY,
    sealed_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE discovery_inventory (
    target TEXT NOT NULL,
    account TEXT NOT NULL,
    privileges TEXT NOT NULL,
    status TEXT NOT NULL,
    risk TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (target, account)
);
CREATE TABLE discovery_scans (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    accounts BIGINT NOT NULL,
    differences BIGINT NOT NULL
);
CREATE INDEX discovery_scans_target ON discovery_scans (target, finished_at);
CREATE TABLE discovery_exceptions (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    account TEXT NOT NULL,
    what TEXT NOT NULL,
    risk TEXT NOT NULL,
    scan_id TEXT NOT NULL,
    found_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT
);
CREATE INDEX discovery_exceptions_target ON discovery_exceptions (target, resolved_at);
"#,
    // Issue 5: people's SSH public keys, for the gateway.
    r#"
CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX ssh_keys_fingerprint ON ssh_keys (fingerprint);
CREATE INDEX ssh_keys_identity ON ssh_keys (identity);
CREATE TABLE gateway_sessions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    identity TEXT NOT NULL,
    target TEXT NOT NULL,
    account TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    bytes_up BIGINT NOT NULL,
    bytes_down BIGINT NOT NULL,
    recording TEXT,
    sha256 TEXT
);
CREATE INDEX gateway_sessions_started ON gateway_sessions (started_at);
"#,
    // Issue 5: the temporary roles the PostgreSQL gateway logs in with (several per grant: one
    // per server process; their passwords live only in that process's memory).
    r#"
CREATE TABLE gateway_db_roles (
    role_name TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dropped_at BIGINT
);
CREATE INDEX gateway_db_roles_grant ON gateway_db_roles (grant_id);
"#,
    // Issue 6: signed checkpoints of the audit chain; the time index export and search use;
    // each SIEM sink's durable cursor (the last record it has delivered).
    r#"
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
CREATE TABLE audit_sink_cursors (
    name TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    // Issue 6: audit search (`audit_search`). Results are in (at, seq) order, so every index
    // ends in (at, seq): a filter, its time range and the page's position are one index range.
    // (at, seq) replaces (at) (export's `first_audit_seq_since` uses it as well). One index per
    // filter the issue asks for and nothing more, since each costs every append a B-tree
    // insert; the columns an event may lack are partial (events without them cost nothing
    // there). A request or a grant has a handful of events, so (request_id) and (grant_id)
    // need no (at, seq): their few rows are sorted in memory.
    r#"
DROP INDEX audit_at;
CREATE INDEX audit_at_seq ON audit (at, seq);
CREATE INDEX audit_actor ON audit (actor, at, seq) WHERE actor IS NOT NULL;
CREATE INDEX audit_identity ON audit (identity, at, seq) WHERE identity IS NOT NULL;
CREATE INDEX audit_target ON audit (target, at, seq) WHERE target IS NOT NULL;
CREATE INDEX audit_kind ON audit (kind, at, seq);
CREATE INDEX audit_request ON audit (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_grant ON audit (grant_id) WHERE grant_id IS NOT NULL;
"#,
    // Issue 6: retention. The chain starts after the last pruned record: its position and hash,
    // signed by the audit key, are the anchor verification starts from.
    r#"
CREATE TABLE audit_anchor (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    signature TEXT NOT NULL
);
"#,
];

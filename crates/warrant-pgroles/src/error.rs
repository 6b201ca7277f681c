//! `PgRolesError`: what went wrong, with a stable code and never a secret.

use tokio_postgres::error::SqlState;

/// An error of this crate. `code()` is stable and greppable; messages name hosts, roles and
/// PostgreSQL's own error text, never a password (the admin's or a temporary role's).
#[derive(Debug, thiserror::Error)]
pub enum PgRolesError {
    /// The server could not be reached (refused, unreachable, timed out, closed).
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// `host:port/dbname`.
        target: String,
        /// What the client or the network said.
        reason: String,
    },
    /// TLS could not be set up: CA file unreadable, server without TLS, handshake refused.
    #[error("TLS to PostgreSQL at {target} failed: {reason}")]
    Tls {
        /// `host:port/dbname`.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// The server refused the admin login (wrong password, unknown user, `pg_hba.conf`).
    #[error("PostgreSQL at {target} refused the admin login: {reason}")]
    Auth {
        /// `host:port/dbname`.
        target: String,
        /// What the server said.
        reason: String,
    },
    /// Database roles the temporary role should join (or receive owned objects) do not exist;
    /// nothing was created.
    #[error("database role(s) {} do not exist on the target; create them or fix the mapping", .roles.join(", "))]
    RoleMissing {
        /// The missing role names.
        roles: Vec<String>,
    },
    /// The role does not carry Warrant's marker comment: Warrant never drops it.
    #[error(
        "role {role:?} is not managed by Warrant (no 'warrant-managed' comment); refusing to touch it"
    )]
    NotManaged {
        /// The role's name.
        role: String,
    },
    /// An [`AdminSession`](crate::AdminSession)'s connection is gone (the server ended it, the
    /// network broke, the server restarted): open a new session and retry. The operation that
    /// saw this may or may not have taken effect; every operation of the session is idempotent.
    #[error("the admin session to PostgreSQL at {target} is closed ({reason}); open a new one")]
    Disconnected {
        /// `host:port/dbname`.
        target: String,
        /// What the client or the server said.
        reason: String,
    },
    /// The account whose password was to be set does not exist on the target.
    #[error("database role {role:?} does not exist on the target")]
    AccountMissing {
        /// The role's name.
        role: String,
    },
    /// The account is one of Warrant's temporary roles: its password belongs to its grant and
    /// is never rotated.
    #[error("role {role:?} is a Warrant temporary role; refusing to set its password")]
    TempRole {
        /// The role's name.
        role: String,
    },
    /// Checking an account's password failed for another reason than a refused password (for
    /// instance the role may not connect to the database, or the database does not exist).
    #[error("PostgreSQL at {target} could not check the login of {user:?}: {reason}")]
    Login {
        /// `host:port/dbname`.
        target: String,
        /// The account.
        user: String,
        /// What the client or the server said.
        reason: String,
    },
    /// A statement failed.
    #[error("PostgreSQL error while {doing}: {reason}")]
    Sql {
        /// What Warrant was doing, e.g. `creating the role`.
        doing: &'static str,
        /// PostgreSQL's message (severity, text, SQLSTATE), or the client's.
        reason: String,
    },
    /// The caller's input cannot make a valid role (e.g. an empty or too long prefix).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The operating system gave no randomness for the name or password.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

impl PgRolesError {
    /// The stable code: `pg_connect`, `pg_tls`, `pg_auth`, `pg_role_missing`, `pg_not_managed`,
    /// `pg_disconnected`, `pg_account_missing`, `pg_temp_role`, `pg_login`, `pg_sql`,
    /// `pg_invalid`, `pg_random`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "pg_connect",
            Self::Tls { .. } => "pg_tls",
            Self::Auth { .. } => "pg_auth",
            Self::RoleMissing { .. } => "pg_role_missing",
            Self::NotManaged { .. } => "pg_not_managed",
            Self::Disconnected { .. } => "pg_disconnected",
            Self::AccountMissing { .. } => "pg_account_missing",
            Self::TempRole { .. } => "pg_temp_role",
            Self::Login { .. } => "pg_login",
            Self::Sql { .. } => "pg_sql",
            Self::Invalid(_) => "pg_invalid",
            Self::Random(_) => "pg_random",
        }
    }

    /// A statement's error while `doing`.
    pub(crate) fn sql(doing: &'static str, e: &tokio_postgres::Error) -> Self {
        Self::Sql {
            doing,
            reason: describe(e),
        }
    }

    /// True when the connection this error came from is unusable: retry on a new one.
    #[must_use]
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected { .. })
    }

    /// A connection error, sorted into TLS, authentication or connection.
    pub(crate) fn connecting(target: String, e: &tokio_postgres::Error) -> Self {
        let reason = describe(e);
        let auth_codes = [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        ];
        if e.code().is_some_and(|c| auth_codes.contains(c))
            || reason.starts_with("authentication error")
        {
            Self::Auth { target, reason }
        } else if reason.starts_with("error performing TLS handshake") {
            Self::Tls { target, reason }
        } else {
            Self::Connect { target, reason }
        }
    }
}

/// The client's message with its sources, or the server's error with its SQLSTATE. Neither
/// contains a password: the server never echoes one, and the client's messages are fixed text
/// around IO and TLS errors.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str("; ");
            s.push_str(detail);
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

//! The engine's one error type: a kind (which decides the HTTP status in `warrant-api`), a
//! stable code that scripts can match, and a message that says what to fix.

use std::fmt;

/// Broad classes of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is wrong; fix it and retry.
    Invalid,
    /// Something named does not exist.
    NotFound,
    /// It already exists, or the state no longer allows the change.
    Conflict,
    /// The caller is known but may not do this.
    Forbidden,
    /// The caller is not known (bad or missing credentials).
    Unauthenticated,
    /// Too many attempts.
    RateLimited,
    /// A system Warrant depends on (the LDAP directory, the OpenID provider) failed.
    Unavailable,
    /// Warrant itself failed; nothing was changed.
    Internal,
}

/// An error with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// A stable, greppable code such as `duration_exceeds_max`.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for EngineError {}

/// Result alias.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }

    /// An upstream system failed.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// Bad input.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// Missing thing.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    /// State conflict.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// Not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// Not signed in.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, code, message)
    }

    /// Too many attempts.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited, "rate_limited", message)
    }

    /// Warrant failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, "internal", message)
    }
}

impl From<warrant_store::StoreError> for EngineError {
    fn from(e: warrant_store::StoreError) -> Self {
        // The detail goes to the server's log, not to the client.
        tracing::error!(error = %e, "storage failure");
        Self::internal("internal storage error: nothing was changed; see the server log")
    }
}

impl From<warrant_iam::IamError> for EngineError {
    fn from(e: warrant_iam::IamError) -> Self {
        match e {
            warrant_iam::IamError::WeakPassword => Self::invalid("weak_password", e.to_string()),
            other => Self::internal(other.to_string()),
        }
    }
}

impl From<warrant_core::RequestError> for EngineError {
    fn from(e: warrant_core::RequestError) -> Self {
        use warrant_core::RequestError as R;
        let code = match e {
            R::NotPending(_) => "request_not_pending",
            R::Expired => "request_expired",
            R::SelfApproval => "self_approval",
            R::AlreadyApproved => "already_approved",
            R::NotAnApprover => "not_an_approver",
            R::NotRequester => "not_requester",
        };
        match e {
            R::SelfApproval | R::NotAnApprover | R::NotRequester => {
                Self::forbidden(code, e.to_string())
            }
            _ => Self::conflict(code, e.to_string()),
        }
    }
}

impl From<warrant_core::NameError> for EngineError {
    fn from(e: warrant_core::NameError) -> Self {
        Self::invalid("invalid_name", e.to_string())
    }
}

impl From<warrant_core::DurationError> for EngineError {
    fn from(e: warrant_core::DurationError) -> Self {
        Self::invalid("invalid_duration", e.to_string())
    }
}

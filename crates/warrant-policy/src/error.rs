//! Errors and their source positions.

use std::fmt;

/// One problem in a policy's text, positioned in that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line; 0 when Cedar gave no position.
    pub line: usize,
    /// 1-based column, counted in characters; 0 when Cedar gave no position.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// Converts every error in `errors` into a diagnostic positioned in `source`.
    pub(crate) fn collect<'e, E>(source: &str, errors: impl IntoIterator<Item = &'e E>) -> Vec<Self>
    where
        E: miette::Diagnostic + 'e,
    {
        errors.into_iter().map(|e| Self::new(source, e)).collect()
    }

    fn new(source: &str, error: &dyn miette::Diagnostic) -> Self {
        let label = error.labels().and_then(|mut labels| labels.next());
        let mut message = error.to_string();
        if let Some(text) = label.as_ref().and_then(|l| l.label()) {
            message = format!("{message} ({text})");
        }
        if let Some(help) = error.help() {
            message = format!("{message}; {help}");
        }
        let (line, column) = label.map_or((0, 0), |l| line_column(source, l.offset()));
        Self {
            line,
            column,
            message,
        }
    }
}

/// 1-based line and character column of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.column, self.message
            )
        }
    }
}

/// Why a policy or a rule set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy text is not valid Cedar.
    #[error("policy {name}: {}", join(.diagnostics))]
    Parse {
        /// Name of the custom policy.
        name: String,
        /// Each syntax error with its position.
        diagnostics: Vec<Diagnostic>,
    },
    /// The policy parses but does not fit the schema (unknown attribute, wrong type, ...).
    #[error("policy {name} does not fit the schema: {}", join(.diagnostics))]
    Validation {
        /// Name of the custom policy.
        name: String,
        /// Each schema violation with its position.
        diagnostics: Vec<Diagnostic>,
    },
    /// The text holds no policy or more than one.
    #[error("policy {name} must hold exactly one Cedar policy, found {count}")]
    NotSingle {
        /// Name of the custom policy.
        name: String,
        /// How many policies (and templates) the text holds.
        count: usize,
    },
    /// Two rules or two custom policies share an id.
    #[error("duplicate policy id {id}")]
    Duplicate {
        /// The Cedar policy id, `rule:{id}` or `custom:{name}`.
        id: String,
    },
    /// A rule's target or role name contains `/`, the separator of role ids.
    #[error("rule {rule}: target and role names must not contain '/': {name}")]
    BadName {
        /// Id of the rule.
        rule: String,
        /// The offending target or role name.
        name: String,
    },
    /// Cedar refused to assemble a policy set.
    #[error(transparent)]
    PolicySet(Box<cedar_policy::PolicySetError>),
}

impl PolicyError {
    /// A stable, greppable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Parse { .. } => "policy_parse_error",
            Self::Validation { .. } => "policy_invalid",
            Self::NotSingle { .. } => "policy_not_single",
            Self::Duplicate { .. } => "policy_duplicate_id",
            Self::BadName { .. } => "policy_bad_name",
            Self::PolicySet(_) => "policy_set_error",
        }
    }
}

impl From<cedar_policy::PolicySetError> for PolicyError {
    fn from(error: cedar_policy::PolicySetError) -> Self {
        Self::PolicySet(Box::new(error))
    }
}

fn join(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

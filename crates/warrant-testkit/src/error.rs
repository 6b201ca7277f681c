use std::fmt;
use std::process::Command;

/// Why a fixture could not be started or used.
///
/// The message names what failed, the command line (when a command failed), the last lines of
/// its output (or of the server log) and what to do about it, e.g. which package to install.
/// `Debug` prints the same text as `Display`, so a test that returns `Result<(), FixtureError>`
/// fails with a readable message.
#[derive(Clone, PartialEq, Eq)]
pub struct FixtureError {
    what: String,
    command: Option<String>,
    detail: Option<String>,
    fix: Option<String>,
}

/// How many trailing lines of a command's output an error keeps.
const TAIL_LINES: usize = 20;

impl FixtureError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            command: None,
            detail: None,
            fix: None,
        }
    }

    pub(crate) fn with_command(mut self, command: &Command) -> Self {
        self.command = Some(describe(command));
        self
    }

    pub(crate) fn with_detail(mut self, detail: impl AsRef<str>) -> Self {
        let detail = tail(detail.as_ref(), TAIL_LINES);
        if !detail.is_empty() {
            self.detail = Some(detail);
        }
        self
    }

    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// What failed, in one line.
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The command line that failed, if a command failed.
    #[must_use]
    pub fn command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// The last lines of the failing command's stderr/stdout or of the server log.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// What to do about it.
    #[must_use]
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(command) = &self.command {
            write!(f, "\n  command: {command}")?;
        }
        if let Some(detail) = &self.detail {
            f.write_str("\n  output (last lines):")?;
            for line in detail.lines() {
                write!(f, "\n    {line}")?;
            }
        }
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for FixtureError {}

/// The command line as a shell would show it (arguments with spaces or quotes are quoted).
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
            {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `n` non-empty-trailing lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_command_output_and_fix() {
        let mut cmd = Command::new("/usr/bin/psql");
        cmd.args(["-c", "select 1"]);
        let err = FixtureError::new("psql failed")
            .with_command(&cmd)
            .with_detail("a\nb\n")
            .with_fix("apt-get install -y postgresql");
        let text = err.to_string();
        assert_eq!(
            text,
            "psql failed\n  command: /usr/bin/psql -c 'select 1'\n  output (last lines):\n    a\n    b\n  fix: apt-get install -y postgresql"
        );
        assert_eq!(format!("{err:?}"), text);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("1\n2\n3\n4\n\n", 2), "3\n4");
        assert_eq!(tail("", 2), "");
    }
}

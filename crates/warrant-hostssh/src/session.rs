//! The SSH connection: [`HostTarget`] (where, as whom, which host key), [`Session`] (one
//! logged-in connection that runs commands) and [`exec`] (one command, one connection).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;
use russh::{ChannelMsg, Disconnect};
use ssh_key::{Algorithm, PublicKey};

use crate::error::{HostSshError, Result};
use crate::key::ManagedKey;
use crate::pinned::{HandshakeError, HandshakeFailure, PinnedHost, describe_key};

/// How long connecting (TCP, handshake, login) may take unless the target says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one remote command may take unless the target says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// The most stdout plus stderr one command may return; a host printing more is refused.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;
/// How much of a failing command's stderr an error keeps.
const STDERR_TAIL: usize = 600;

/// A Linux host and how Warrant logs in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct HostTarget {
    /// Host name or address.
    pub host: String,
    /// SSH port, usually 22.
    pub port: u16,
    /// The admin account: `root`, or an account with passwordless sudo for any command
    /// (everything that needs root then runs as `sudo -n /bin/sh …`; sudo rules limited to
    /// single commands do not suffice). Whether it is root is decided by the name.
    pub user: String,
    /// The host's pinned public key (ed25519 or ECDSA). Any other host key is refused with
    /// [`HostSshError::HostKeyMismatch`] before anything is sent.
    pub host_key: PublicKey,
    /// How long connecting (TCP, handshake, login) may take.
    pub connect_timeout: Duration,
    /// How long one remote command may take.
    pub command_timeout: Duration,
}

impl HostTarget {
    /// A target with [`DEFAULT_CONNECT_TIMEOUT`] and [`DEFAULT_COMMAND_TIMEOUT`].
    #[must_use]
    pub fn new(
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        host_key: PublicKey,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            host_key,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Parses a host key to pin: one OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`,
    /// as in `/etc/ssh/ssh_host_ed25519_key.pub` or from `ssh-keyscan -t ed25519`, without the
    /// host name column).
    pub fn parse_host_key(line: &str) -> Result<PublicKey> {
        let key = PublicKey::from_openssh(line.trim())
            .map_err(|e| HostSshError::InvalidTarget(format!("not an SSH public key ({e})")))?;
        check_host_key_algorithm(&key)?;
        Ok(key)
    }

    /// Whether the admin account is `root` itself (otherwise root work goes through `sudo -n`).
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.user == "root"
    }

    /// `user@host:port`, as errors and logs name the target.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

impl fmt::Debug for HostTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("host_key", &describe_key(&self.host_key))
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// What one remote command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status; `None` when the command was killed by a signal or the server reported
    /// none (see [`ExecOutput::signal`]).
    pub code: Option<u32>,
    /// The name of the signal that ended the command, if one did.
    pub signal: Option<String>,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Whether the command exited with status 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The exit status as errors show it: `3`, `signal KILL` or `unknown`.
    #[must_use]
    pub fn status(&self) -> String {
        match (&self.code, &self.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown".to_owned(),
        }
    }
}

/// Runs `command` on the target in a fresh connection: connect, verify the pinned host key,
/// log in with `key`, run, disconnect. `stdin`, if given, is written to the command's standard
/// input and then closed — the way to hand a command anything that must not appear on a
/// command line. A non-zero exit status is not an error here: look at [`ExecOutput::code`].
pub async fn exec(
    target: &HostTarget,
    key: &ManagedKey,
    command: &str,
    stdin: Option<&[u8]>,
) -> Result<ExecOutput> {
    let session = Session::connect(target, key).await?;
    let result = session.exec(command, stdin).await;
    session.close().await;
    result
}

/// One logged-in SSH connection to a target; runs any number of commands, one channel each.
pub struct Session {
    handle: Handle<PinnedHost>,
    target: HostTarget,
}

impl Session {
    /// Connects to `target`, checks that it presents the pinned host key, and logs in as
    /// `target.user` with `key` (public key authentication only).
    pub async fn connect(target: &HostTarget, key: &ManagedKey) -> Result<Self> {
        check_host_key_algorithm(&target.host_key)?;
        let label = target.label();
        let config = client::Config {
            // The host key algorithm of the pinned key only: a host with several host keys
            // then proves the one that was pinned.
            preferred: russh::Preferred {
                key: Cow::Owned(vec![target.host_key.algorithm()]),
                ..Default::default()
            },
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        };
        let handler = PinnedHost::new(target.host_key.clone());
        let login = async {
            let mut handle = client::connect(
                Arc::new(config),
                (target.host.as_str(), target.port),
                handler,
            )
            .await
            .map_err(|e| handler_error(&label, target, e))?;
            let auth = handle
                .authenticate_publickey(
                    target.user.clone(),
                    PrivateKeyWithHashAlg::new(key.private(), None),
                )
                .await
                .map_err(|e| HostSshError::Connect {
                    target: label.clone(),
                    reason: format!("during login: {e}"),
                })?;
            if !auth.success() {
                return Err(HostSshError::Auth {
                    target: label.clone(),
                    user: target.user.clone(),
                    fingerprint: key.fingerprint(),
                });
            }
            Ok(handle)
        };
        let handle = tokio::time::timeout(target.connect_timeout, login)
            .await
            .map_err(|_| HostSshError::Timeout {
                target: label.clone(),
                doing: "connecting",
                after: target.connect_timeout,
            })??;
        tracing::debug!(target = %label, key = %key.fingerprint(), "logged in");
        Ok(Self {
            handle,
            target: target.clone(),
        })
    }

    /// The target this session is logged in to.
    #[must_use]
    pub fn target(&self) -> &HostTarget {
        &self.target
    }

    /// Runs `command` (interpreted by the admin account's login shell, as `ssh host command`
    /// does) in a new channel, writes `stdin` to it and closes its input, and collects its
    /// output and exit status. A non-zero exit status is not an error here. Bounded by the
    /// target's `command_timeout` and by [`MAX_OUTPUT`].
    pub async fn exec(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput> {
        let timeout = self.target.command_timeout;
        tokio::time::timeout(timeout, self.exec_inner(command, stdin))
            .await
            .map_err(|_| HostSshError::Timeout {
                target: self.target.label(),
                doing: "running a command",
                after: timeout,
            })?
    }

    async fn exec_inner(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput> {
        let ssh_err = |doing: &'static str| {
            let target = self.target.label();
            move |e: russh::Error| HostSshError::Ssh {
                target,
                doing,
                reason: e.to_string(),
            }
        };
        let mut channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(ssh_err("opening a channel"))?;
        channel
            .exec(true, command)
            .await
            .map_err(ssh_err("starting a command"))?;
        if let Some(input) = stdin {
            channel
                .data(input)
                .await
                .map_err(ssh_err("writing a command's input"))?;
        }
        channel
            .eof()
            .await
            .map_err(ssh_err("closing a command's input"))?;

        let mut out = ExecOutput {
            code: None,
            signal: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                // Extended data type 1 is stderr (RFC 4254 §5.2); there is no other in use.
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.code = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.signal = Some(format!("{signal_name:?}"));
                }
                ChannelMsg::Failure => {
                    return Err(HostSshError::Ssh {
                        target: self.target.label(),
                        doing: "starting a command",
                        reason: "the server refused to run it".to_owned(),
                    });
                }
                _ => {}
            }
            if out.stdout.len() + out.stderr.len() > MAX_OUTPUT {
                let _ = channel.close().await;
                return Err(HostSshError::Output {
                    target: self.target.label(),
                    doing: "running a command",
                    reason: format!("more than {MAX_OUTPUT} bytes of output"),
                });
            }
        }
        Ok(out)
    }

    /// Runs a fixed `/bin/sh` script as root: directly when the admin account is `root`,
    /// otherwise through `sudo -n`. `args` become `$1`, `$2`, …; each is single-quoted, so it
    /// must not contain `'` (callers pass validated account names only). `stdin` goes to the
    /// script's standard input. Only a refusal by sudo is an error here.
    pub(crate) async fn run_as_root(
        &self,
        script: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<ExecOutput> {
        let command = root_command(self.target.is_root(), script, args)?;
        self.exec_as_root(&command, stdin).await
    }

    /// Runs `script` (given on standard input to `/bin/sh -s`) as root, like
    /// [`Session::run_as_root`]; for scripts too long or too quoted for a command line.
    pub(crate) async fn run_stdin_script_as_root(&self, script: &str) -> Result<ExecOutput> {
        let command = if self.target.is_root() {
            "/bin/sh -s"
        } else {
            "sudo -n /bin/sh -s"
        };
        self.exec_as_root(command, Some(script.as_bytes())).await
    }

    async fn exec_as_root(&self, command: &str, stdin: Option<&[u8]>) -> Result<ExecOutput> {
        let out = self.exec(command, stdin).await?;
        if !self.target.is_root() && out.code == Some(1) {
            let stderr = clean_stderr(&out.stderr, &[]);
            if stderr.starts_with("sudo:") {
                return Err(HostSshError::Sudo {
                    target: self.target.label(),
                    user: self.target.user.clone(),
                    doing: "running a command as root",
                    reason: stderr,
                });
            }
        }
        Ok(out)
    }

    /// The error for a command that ended badly while `doing`, quoting its stderr with every
    /// string in `redact` cut out.
    pub(crate) fn command_failed(
        &self,
        doing: &str,
        out: &ExecOutput,
        redact: &[&str],
    ) -> HostSshError {
        HostSshError::Command {
            target: self.target.label(),
            doing: doing.to_owned(),
            status: out.status(),
            stderr: clean_stderr(&out.stderr, redact),
        }
    }

    /// Disconnects politely; errors are ignored (the connection is going away either way).
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.target.label())
            .finish_non_exhaustive()
    }
}

/// `/bin/sh -c '<script>' sh '<arg>'…`, behind `sudo -n` unless already root. The command is
/// read by the admin account's login shell; single quotes mean the same in sh, bash, zsh and
/// fish as long as neither the script nor an argument contains `'` or `\`.
fn root_command(is_root: bool, script: &str, args: &[&str]) -> Result<String> {
    let quotable = |s: &str| !s.contains(['\'', '\\']);
    if !quotable(script) || !args.iter().all(|a| quotable(a)) {
        return Err(HostSshError::InvalidTarget(
            "internal: a remote command would need quoting it cannot have".to_owned(),
        ));
    }
    let mut command = String::new();
    if !is_root {
        command.push_str("sudo -n ");
    }
    command.push_str("/bin/sh -c '");
    command.push_str(script);
    command.push_str("' sh");
    for arg in args {
        command.push_str(" '");
        command.push_str(arg);
        command.push('\'');
    }
    Ok(command)
}

/// The end of `stderr` as text, with every string in `redact` replaced by `<redacted>`.
fn clean_stderr(stderr: &[u8], redact: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(stderr).trim().to_owned();
    for secret in redact.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    if text.len() > STDERR_TAIL {
        let mut start = text.len() - STDERR_TAIL;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text = format!("…{}", &text[start..]);
    }
    text
}

/// Host keys russh can verify without the `rsa` feature.
fn check_host_key_algorithm(key: &PublicKey) -> Result<()> {
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(()),
        other => Err(HostSshError::InvalidTarget(format!(
            "cannot pin a {other} host key: pin the host's ed25519 (or ECDSA) key, e.g. \
             /etc/ssh/ssh_host_ed25519_key.pub or `ssh-keyscan -t ed25519 HOST`"
        ))),
    }
}

fn handler_error(label: &str, target: &HostTarget, e: HandshakeError) -> HostSshError {
    match e.explain(&target.host_key) {
        HandshakeFailure::HostKeyMismatch {
            expected,
            presented,
        } => HostSshError::HostKeyMismatch {
            target: label.to_owned(),
            expected,
            presented,
        },
        HandshakeFailure::Connect(reason) => HostSshError::Connect {
            target: label.to_owned(),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn root_commands_quote_arguments_and_use_sudo_only_when_needed() {
        assert_eq!(
            root_command(true, "getent shadow \"$1\"", &["alice"]).unwrap(),
            "/bin/sh -c 'getent shadow \"$1\"' sh 'alice'"
        );
        assert_eq!(
            root_command(false, "chpasswd -e", &[]).unwrap(),
            "sudo -n /bin/sh -c 'chpasswd -e' sh"
        );
        assert!(root_command(true, "echo", &["it's"]).is_err());
        assert!(root_command(true, "echo '", &[]).is_err());
    }

    #[test]
    fn stderr_is_redacted_and_cut() {
        let text = clean_stderr(
            b"chpasswd: bad line alice:$6$abc$def\n",
            &["$6$abc$def", ""],
        );
        assert_eq!(text, "chpasswd: bad line alice:<redacted>");
        let long = "é".repeat(1000);
        let cut = clean_stderr(long.as_bytes(), &[]);
        assert!(
            cut.starts_with('…') && cut.len() <= STDERR_TAIL + 4,
            "{cut}"
        );
    }
}

//! A throwaway OpenSSH server (sshd) for tests, trusting a given user CA.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::tail;
use crate::{FixtureError, try_free_port};

const INSTALL_FIX: &str = "install OpenSSH with scripts/deps/ssh.sh (as root), or: \
     apt-get update && apt-get install -y --no-install-recommends openssh-server openssh-client";
const SSHD: &str = "/usr/sbin/sshd";
/// The local account the fixture logs in to; created once (as root) and reused.
const TEST_USER: &str = "warrant-ssh-test";
/// sshd's privilege separation directory; it refuses to start without it.
const PRIVSEP_DIR: &str = "/run/sshd";
/// How many times a start is retried when another process took the port first.
const START_ATTEMPTS: usize = 5;
/// How long sshd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stop waits for sshd after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Stops sshd and removes the temp dir once the test process is gone, however it ends: it
/// blocks reading a pipe whose only writer is the test process and acts on end of file. It runs
/// in its own process group so Ctrl-C on the test does not kill it before it has cleaned up.
/// `$1` = sshd's pid file, `$2` = temp dir.
const WATCHDOG_SCRIPT: &str = r#"cat >/dev/null
pid=$(cat "$1" 2>/dev/null)
if [ -n "$pid" ]; then
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 "$pid" 2>/dev/null
fi
rm -rf "$2""#;

/// A throwaway sshd on 127.0.0.1 that trusts one user CA, owned by one test.
///
/// It runs the Debian `openssh-server` binary (`/usr/sbin/sshd`, in the foreground) as root
/// with its own config in a fresh `/tmp/warrant-sshd.XXXXXX` directory: `TrustedUserCAKeys`
/// (the CA given to [`start`](Self::start)), `AuthorizedPrincipalsFile principals/%u`
/// ([`set_principals`](Self::set_principals), empty at first: no certificate is accepted
/// until a test names its principals), `RevokedKeys revoked.krl`
/// ([`set_krl`](Self::set_krl); sshd re-reads it on every authentication),
/// `AuthorizedKeysFile authorized_keys/%u` (empty at first: no plain key is accepted until a
/// test calls [`authorize_key`](Self::authorize_key)), `PermitRootLogin prohibit-password`
/// (root only with a key a test authorized), no passwords, no PAM, `LogLevel VERBOSE` into
/// [`log`](Self::log). The login account for certificates is the local user
/// `warrant-ssh-test`, created on first use (`useradd -m`, with a `*` password field: a locked
/// account would be refused). Tests must run as root.
///
/// Dropping the fixture stops sshd and removes the temp dir; a watchdog process does the same
/// when the test process dies without dropping it.
///
/// ```no_run
/// # fn main() -> Result<(), warrant_testkit::FixtureError> {
/// # let ca_public_key = "ssh-ed25519 AAAA… warrant-user-ca";
/// let sshd = warrant_testkit::SshdFixture::start(ca_public_key)?;
/// sshd.set_principals(&["ops"])?;
/// # let (key, cert) = (std::path::Path::new("k"), std::path::Path::new("k-cert.pub"));
/// let (code, stdout, _stderr) = sshd.ssh(key, cert, "id -un")?;
/// assert_eq!((code, stdout.trim()), (0, sshd.user()));
/// # Ok(())
/// # }
/// ```
pub struct SshdFixture {
    port: u16,
    host_public_key: String,
    guard: Guard,
}

impl SshdFixture {
    /// Starts sshd trusting `ca_public_key` (one OpenSSH public key line) as user CA.
    pub fn start(ca_public_key: &str) -> Result<Self, FixtureError> {
        if !Path::new(SSHD).is_file() {
            return Err(
                FixtureError::new(format!("OpenSSH's sshd not found at {SSHD}"))
                    .with_fix(INSTALL_FIX),
            );
        }
        if effective_uid() != Some(0) {
            return Err(FixtureError::new(
                "the sshd fixture must run as root (sshd switches to the test user)",
            )
            .with_fix("run the SSH tests as root, as .ci/run does"));
        }
        ensure_test_user()?;
        fs::create_dir_all(PRIVSEP_DIR)
            .map_err(|e| io_error("create", Path::new(PRIVSEP_DIR), &e))?;

        let dir = make_temp_dir()?;
        // From here on the guard (and, once spawned, the watchdog) cleans up on every error.
        let mut guard = Guard {
            dir,
            sshd: None,
            watchdog: None,
        };
        guard.watchdog = Some(spawn_watchdog(&guard.dir)?);

        let dir = guard.dir.clone();
        let mut keygen = Command::new("ssh-keygen");
        keygen
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "warrant-sshd-fixture",
                "-f",
            ])
            .arg(dir.join("hostkey"))
            .stdin(Stdio::null());
        run(&mut keygen, "ssh-keygen (host key) failed", INSTALL_FIX)?;
        let host_key_path = dir.join("hostkey.pub");
        let host_public_key = fs::read_to_string(&host_key_path)
            .map_err(|e| io_error("read", &host_key_path, &e))?
            .trim()
            .to_owned();
        write_file(
            &dir.join("user_ca.pub"),
            format!("{}\n", ca_public_key.trim()).as_bytes(),
            0o644,
        )?;
        write_file(&dir.join("revoked.krl"), b"", 0o644)?;
        // sshd reads the principals file with the user's privileges: world-readable.
        let principals = dir.join("principals");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&principals)
            .map_err(|e| io_error("create", &principals, &e))?;
        write_file(&principals.join(TEST_USER), b"", 0o644)?;
        // Read by sshd as the logging-in user, like the principals: world-readable.
        let authorized_keys = dir.join("authorized_keys");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&authorized_keys)
            .map_err(|e| io_error("create", &authorized_keys, &e))?;
        fs::set_permissions(&authorized_keys, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error("chmod", &authorized_keys, &e))?;

        let port = start_server(&mut guard)?;
        Ok(Self {
            port,
            host_public_key,
            guard,
        })
    }

    /// The TCP port sshd listens on (127.0.0.1 only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The account to log in as, `warrant-ssh-test`.
    #[must_use]
    pub fn user(&self) -> &str {
        TEST_USER
    }

    /// The temp dir: `sshd_config`, `log`, `user_ca.pub`, `revoked.krl`, `principals/`,
    /// `authorized_keys/`, `hostkey.pub`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// The server's host public key, one OpenSSH line (`ssh-ed25519 AAAA…
    /// warrant-sshd-fixture`): what a client pins.
    #[must_use]
    pub fn host_public_key(&self) -> String {
        self.host_public_key.clone()
    }

    /// Adds `public_key_line` (one OpenSSH public key line) to `user`'s `AuthorizedKeysFile`
    /// (`<dir>/authorized_keys/<user>`, world-readable): sshd accepts that key for `user` —
    /// any local account, `root` included — from the next connection on.
    pub fn authorize_key(&self, user: &str, public_key_line: &str) -> Result<(), FixtureError> {
        if user.is_empty() || user.contains(['/', '\0']) || user.starts_with('.') {
            return Err(FixtureError::new(format!(
                "authorize_key: {user:?} is not a user name"
            )));
        }
        let path = self.guard.dir.join("authorized_keys").join(user);
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{}\n", public_key_line.trim()).as_bytes()))
            .map_err(|e| io_error("write", &path, &e))
    }

    /// Replaces the user's `AuthorizedPrincipalsFile`: a certificate is accepted only if it
    /// names one of `principals`. Takes effect on the next connection.
    pub fn set_principals(&self, principals: &[&str]) -> Result<(), FixtureError> {
        let mut text = principals.join("\n");
        text.push('\n');
        replace_file(
            &self.guard.dir.join("principals").join(TEST_USER),
            text.as_bytes(),
        )
    }

    /// Replaces the `RevokedKeys` file with `krl` (a binary KRL, or a list of public keys).
    /// sshd re-reads it on every authentication.
    pub fn set_krl(&self, krl: &[u8]) -> Result<(), FixtureError> {
        replace_file(&self.guard.dir.join("revoked.krl"), krl)
    }

    /// sshd's log so far (`-E`, `LogLevel VERBOSE`): accepted certificates appear as
    /// `Accepted certificate ID "<key id>" (serial N) signed by ED25519 CA …`.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.guard.dir.join("log")).unwrap_or_default()
    }

    /// Runs `command` over SSH as [`user`](Self::user) with the real `ssh` client,
    /// authenticating with the private key `key` and the certificate `cert` only (no agent, no
    /// other identities, no config file, host key not checked). Returns ssh's exit code (255
    /// when the connection or authentication failed, e.g. `Permission denied (publickey)`),
    /// stdout and stderr.
    pub fn ssh(
        &self,
        key: &Path,
        cert: &Path,
        command: &str,
    ) -> Result<(i32, String, String), FixtureError> {
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("CertificateFile={}", cert.display()))
            .arg("-i")
            .arg(key)
            .arg(format!("{TEST_USER}@127.0.0.1"))
            .arg(command)
            .stdin(Stdio::null());
        let out = cmd.output().map_err(|e| {
            FixtureError::new("could not run the ssh client")
                .with_command(&cmd)
                .with_detail(e.to_string())
                .with_fix(INSTALL_FIX)
        })?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

impl std::fmt::Debug for SshdFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshdFixture")
            .field("port", &self.port)
            .field("dir", &self.guard.dir)
            .finish_non_exhaustive()
    }
}

/// Owns the temp dir, sshd and the watchdog; cleans up all three on drop.
struct Guard {
    dir: PathBuf,
    sshd: Option<Child>,
    watchdog: Option<Child>,
}

impl Guard {
    fn stop_sshd(&mut self) {
        let Some(mut sshd) = self.sshd.take() else {
            return;
        };
        if matches!(sshd.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .arg(sshd.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(sshd.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = sshd.kill();
        }
        let _ = sshd.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_sshd();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            // End of file on its stdin: it finds nothing left to do, exits, and is reaped here.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

fn sshd_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {d}/hostkey\n\
         PidFile {d}/sshd.pid\n\
         TrustedUserCAKeys {d}/user_ca.pub\n\
         AuthorizedPrincipalsFile {d}/principals/%u\n\
         RevokedKeys {d}/revoked.krl\n\
         AuthorizedKeysFile {d}/authorized_keys/%u\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         LogLevel VERBOSE\n"
    )
}

/// Writes the config for a free port, checks it with `sshd -t`, starts sshd in the foreground
/// and waits until it listens; retried on a new port when someone took it meanwhile.
fn start_server(guard: &mut Guard) -> Result<u16, FixtureError> {
    let config = guard.dir.join("sshd_config");
    let log_path = guard.dir.join("log");
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = try_free_port()?;
        replace_file(&config, sshd_config(&guard.dir, port).as_bytes())?;
        let mut check = Command::new(SSHD);
        check.arg("-t").arg("-f").arg(&config).stdin(Stdio::null());
        run(
            &mut check,
            "sshd -t rejected the fixture's config",
            INSTALL_FIX,
        )?;

        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        // What sshd prints before it opens its log (bad options) goes to a file of its own.
        let stderr_path = guard.dir.join("sshd.stderr");
        let stderr =
            fs::File::create(&stderr_path).map_err(|e| io_error("create", &stderr_path, &e))?;
        let mut cmd = Command::new(SSHD);
        // -D: stay in the foreground (a child we can wait for); -E: log to our file.
        cmd.arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(&log_path)
            .current_dir(&guard.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().map_err(|e| {
            FixtureError::new("could not run sshd")
                .with_command(&cmd)
                .with_detail(e.to_string())
                .with_fix(INSTALL_FIX)
        })?;
        guard.sshd = Some(child);
        match wait_until_ready(guard, &log_path, log_start, port) {
            Ok(()) => return Ok(port),
            Err(log) => {
                guard.stop_sshd();
                let e = FixtureError::new("sshd did not start")
                    .with_command(&cmd)
                    .with_detail(format!("--- sshd log ---\n{log}"))
                    .with_fix(format!(
                        "see the log above; `{SSHD} -t -f {}` checks the config",
                        config.display()
                    ));
                if !log.contains("Address already in use") {
                    return Err(e);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| FixtureError::new("sshd was never started")))
}

/// Waits until sshd has logged that it listens and accepts a connection on `port`; on failure
/// (it exited, or timed out) returns what it logged.
fn wait_until_ready(
    guard: &mut Guard,
    log_path: &Path,
    log_start: u64,
    port: u16,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let listening = format!("Server listening on 127.0.0.1 port {port}");
    loop {
        let log = read_from(log_path, log_start);
        let Some(sshd) = guard.sshd.as_mut() else {
            return Err(log);
        };
        if let Ok(Some(status)) = sshd.try_wait() {
            let stderr = read_from(&guard.dir.join("sshd.stderr"), 0);
            return Err(format!("{log}{stderr}\n(sshd exited: {status})"));
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        if log.contains(&listening)
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{log}\n(not listening on port {port} after {} s)",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates the test account once per process: `useradd -m`, then `usermod -p '*'` (an
/// unlocked account without a usable password; sshd refuses locked ones). Idempotent across
/// processes: an account that exists already is only unlocked.
fn ensure_test_user() -> Result<(), FixtureError> {
    static DONE: OnceLock<Result<(), FixtureError>> = OnceLock::new();
    DONE.get_or_init(|| {
        let exists = || {
            Command::new("id")
                .arg("-u")
                .arg(TEST_USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let fix = "needs useradd and usermod (Debian: passwd) and root";
        if !exists() {
            let mut add = Command::new("useradd");
            add.args(["-m", "-s", "/bin/sh", TEST_USER])
                .stdin(Stdio::null());
            // Another test process may have created it meanwhile.
            if let Err(e) = run(&mut add, "useradd failed", fix)
                && !exists()
            {
                return Err(e);
            }
        }
        let mut unlock = Command::new("usermod");
        unlock.args(["-p", "*", TEST_USER]).stdin(Stdio::null());
        run(&mut unlock, "usermod -p '*' failed", fix).map(|_| ())
    })
    .clone()
}

/// The effective uid of this process: the owner of `/proc/self`, else `id -u`.
pub(crate) fn effective_uid() -> Option<u32> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Some(meta.uid());
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `/tmp/warrant-sshd.XXXXXX` (random suffix). Mode 0711: sshd reads the principals file inside
/// it as the test user, who may traverse but not list it.
fn make_temp_dir() -> Result<PathBuf, FixtureError> {
    let mut last = None;
    for _ in 0..10 {
        let dir = PathBuf::from(format!("/tmp/warrant-sshd.{}", random_hex(6)?));
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {
                // The umask may have taken bits away.
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))
                    .map_err(|e| io_error("chmod", &dir, &e))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_error("create", &dir, &e).with_fix("/tmp must be writable")),
        }
    }
    Err(
        FixtureError::new("could not create a fresh /tmp/warrant-sshd.* directory")
            .with_detail(last.map(|e| e.to_string()).unwrap_or_default()),
    )
}

fn spawn_watchdog(dir: &Path) -> Result<Child, FixtureError> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", WATCHDOG_SCRIPT, "warrant-sshd-watchdog"])
        .arg(dir.join("sshd.pid"))
        .arg(dir)
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().map_err(|e| {
        FixtureError::new("could not start the sshd fixture's watchdog")
            .with_command(&cmd)
            .with_detail(e.to_string())
            .with_fix("needs `sh`")
    })
}

/// Runs `cmd` to completion and returns its stdout; on failure an error with the command, the
/// tail of its stderr (and stdout) and `fix`.
pub(crate) fn run(cmd: &mut Command, what: &str, fix: &str) -> Result<String, FixtureError> {
    let out = cmd.output().map_err(|e| {
        FixtureError::new(format!("{what}: could not run it ({e})"))
            .with_command(cmd)
            .with_fix(fix)
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(FixtureError::new(format!("{what} ({})", out.status))
        .with_command(cmd)
        .with_detail(
            [stdout.trim_end(), stderr.trim_end()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .with_fix(fix))
}

/// Writes a new file with `mode`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), FixtureError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| io_error("write", path, &e))
}

/// Replaces `path` atomically (a new file renamed over it, world-readable), so sshd never
/// reads half a file.
fn replace_file(path: &Path, contents: &[u8]) -> Result<(), FixtureError> {
    let tmp = path.with_extension("new");
    let _ = fs::remove_file(&tmp);
    write_file(&tmp, contents, 0o644)?;
    fs::rename(&tmp, path).map_err(|e| io_error("replace", path, &e))
}

/// What was appended to `path` after byte `offset`.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    }
    tail(&text, 40)
}

pub(crate) fn io_error(verb: &str, path: &Path, e: &std::io::Error) -> FixtureError {
    FixtureError::new(format!("could not {verb} {}", path.display())).with_detail(e.to_string())
}

/// `2 * n` hex digits from `/dev/urandom`.
pub(crate) fn random_hex(n: usize) -> Result<String, FixtureError> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| FixtureError::new("could not read /dev/urandom").with_detail(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

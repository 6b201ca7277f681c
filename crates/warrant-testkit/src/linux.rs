//! Throwaway local Linux accounts, group memberships and sudoers drop-ins for tests that
//! manage a real host (this one). All need root.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::FixtureError;
use crate::sshd::{effective_uid, io_error, random_hex, run};

const FIX: &str = "needs root and the Debian `passwd` package (useradd, usermod, userdel, \
                   groupadd, groupdel, chpasswd)";
/// How often a command is retried while another test holds the lock on /etc/passwd & co.
const LOCK_ATTEMPTS: usize = 100;
const LOCK_PAUSE: Duration = Duration::from_millis(50);
const SUDOERS_DIR: &str = "/etc/sudoers.d";

/// Groups that tests put accounts in: who holds them, and whether a test created them (and
/// so removes them when the last holder is gone).
static GROUPS: Mutex<Option<HashMap<String, GroupState>>> = Mutex::new(None);

struct GroupState {
    holders: usize,
    created: bool,
}

/// A local account that exists for one test: `useradd -m -s /bin/sh wt-<random>`, its
/// password set with `chpasswd` (hashed the way the system hashes passwords, yescrypt on
/// current Debian). Dropping it runs `userdel -r` and gives back the groups it was put in
/// with [`add_to_group`](Self::add_to_group). Commands that find `/etc/passwd`, `/etc/group`
/// or `/etc/shadow` locked by a parallel test are retried.
///
/// ```no_run
/// # fn main() -> Result<(), warrant_testkit::FixtureError> {
/// let mut account = warrant_testkit::LinuxAccountFixture::create("old password")?;
/// account.add_to_group("sudo")?;
/// assert!(account.name().starts_with("wt-"));
/// # Ok(())
/// # }
/// ```
pub struct LinuxAccountFixture {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    groups: Vec<String>,
}

impl LinuxAccountFixture {
    /// Creates the account and sets its password to `password`.
    pub fn create(password: &str) -> Result<Self, FixtureError> {
        require_root()?;
        let name = format!("wt-{}", random_hex(4)?);
        let mut add = Command::new("useradd");
        add.args(["-m", "-s", "/bin/sh", &name]);
        run_locked(&mut add, None, "useradd failed")?;
        // From here on, drop removes the account again.
        let mut account = Self {
            name,
            uid: 0,
            gid: 0,
            home: PathBuf::new(),
            groups: Vec::new(),
        };
        let entry = run(
            Command::new("getent").args(["passwd", &account.name]),
            "getent passwd failed",
            FIX,
        )?;
        let fields: Vec<&str> = entry.trim().split(':').collect();
        let parsed = match fields[..] {
            [_, _, uid, gid, _, home, _] => uid
                .parse()
                .ok()
                .zip(gid.parse().ok())
                .map(|ids| (ids, home)),
            _ => None,
        };
        let Some(((uid, gid), home)) = parsed else {
            return Err(
                FixtureError::new("getent passwd printed an unexpected line")
                    .with_detail(entry.trim()),
            );
        };
        account.uid = uid;
        account.gid = gid;
        account.home = PathBuf::from(home);
        account.set_password(password)?;
        Ok(account)
    }

    /// The account's name, `wt-` and 8 hex digits.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The account's uid.
    #[must_use]
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The account's primary gid (its own group).
    #[must_use]
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// The account's home directory (created by `useradd -m`).
    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Sets the password with `chpasswd` (`name:password` on its standard input).
    pub fn set_password(&self, password: &str) -> Result<(), FixtureError> {
        let line = format!("{}:{password}\n", self.name);
        run_locked(
            &mut Command::new("chpasswd"),
            Some(line.as_bytes()),
            "chpasswd failed",
        )
    }

    /// The account's current `/etc/shadow` password field.
    pub fn shadow_field(&self) -> Result<String, FixtureError> {
        let entry = run(
            Command::new("getent").args(["shadow", &self.name]),
            "getent shadow failed",
            FIX,
        )?;
        Ok(entry
            .trim()
            .split(':')
            .nth(1)
            .unwrap_or_default()
            .to_owned())
    }

    /// Adds the account to `group` (`usermod -aG`), creating the group first if it does not
    /// exist; a group created here is removed when the last account put in it is dropped.
    pub fn add_to_group(&mut self, group: &str) -> Result<(), FixtureError> {
        {
            let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
            let groups = groups.get_or_insert_with(HashMap::new);
            if !groups.contains_key(group) {
                let exists = Command::new("getent")
                    .args(["group", group])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if !exists {
                    run_locked(Command::new("groupadd").arg(group), None, "groupadd failed")?;
                }
                groups.insert(
                    group.to_owned(),
                    GroupState {
                        holders: 0,
                        created: !exists,
                    },
                );
            }
            if let Some(state) = groups.get_mut(group) {
                state.holders += 1;
            }
        }
        self.groups.push(group.to_owned());
        run_locked(
            Command::new("usermod").args(["-aG", group, &self.name]),
            None,
            "usermod -aG failed",
        )
    }

    /// Writes `~/.ssh/authorized_keys` (one key line each), owned by the account, mode 0600.
    pub fn write_authorized_keys(&self, lines: &[&str]) -> Result<(), FixtureError> {
        let ssh_dir = self.home.join(".ssh");
        fs::create_dir_all(&ssh_dir).map_err(|e| io_error("create", &ssh_dir, &e))?;
        fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("chmod", &ssh_dir, &e))?;
        let path = ssh_dir.join("authorized_keys");
        let mut text = lines.join("\n");
        text.push('\n');
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| io_error("write", &path, &e))?;
        for p in [&ssh_dir, &path] {
            chown(p, Some(self.uid), Some(self.gid)).map_err(|e| io_error("chown", p, &e))?;
        }
        Ok(())
    }
}

impl Drop for LinuxAccountFixture {
    fn drop(&mut self) {
        // -f: even if a session of the test is still winding down.
        let _ = run_locked(
            Command::new("userdel").args(["-f", "-r", &self.name]),
            None,
            "userdel failed",
        );
        let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(groups) = groups.as_mut() else {
            return;
        };
        for group in self.groups.drain(..) {
            let Some(state) = groups.get_mut(&group) else {
                continue;
            };
            state.holders = state.holders.saturating_sub(1);
            if state.holders == 0 {
                if state.created {
                    let _ = run_locked(
                        Command::new("groupdel").arg(&group),
                        None,
                        "groupdel failed",
                    );
                }
                groups.remove(&group);
            }
        }
    }
}

impl std::fmt::Debug for LinuxAccountFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxAccountFixture")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// A file in `/etc/sudoers.d` for one test (`warrant-test-<random>`, mode 0440, checked with
/// `visudo -c` before it is put in place), removed on drop. Needs the Debian `sudo` package
/// (whose `/etc/sudoers` includes `/etc/sudoers.d`).
#[derive(Debug)]
pub struct SudoersDropIn {
    path: PathBuf,
}

impl SudoersDropIn {
    /// Writes `contents` (sudoers syntax) to a new drop-in file.
    pub fn create(contents: &str) -> Result<Self, FixtureError> {
        require_root()?;
        let fix = "install sudo: apt-get install -y --no-install-recommends sudo";
        if !Path::new("/etc/sudoers").is_file() {
            return Err(FixtureError::new("/etc/sudoers does not exist").with_fix(fix));
        }
        fs::create_dir_all(SUDOERS_DIR)
            .map_err(|e| io_error("create", Path::new(SUDOERS_DIR), &e))?;
        // No `.` in the name: sudo skips such files in an include directory.
        let name = format!("warrant-test-{}", random_hex(4)?);
        // Written under a dotted name first, so sudo never reads a half-written file.
        let tmp = Path::new(SUDOERS_DIR).join(format!(".{name}.tmp"));
        let path = Path::new(SUDOERS_DIR).join(&name);
        let mut text = contents.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| io_error("write", &tmp, &e))?;
        let mut check = Command::new("visudo");
        check.arg("-c").arg("-q").arg("-f").arg(&tmp);
        if let Err(e) = run(&mut check, "visudo -c rejected the drop-in", fix) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_error("rename", &tmp, &e)
        })?;
        Ok(Self { path })
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SudoersDropIn {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn require_root() -> Result<(), FixtureError> {
    if effective_uid() == Some(0) {
        Ok(())
    } else {
        Err(FixtureError::new("managing local accounts needs root")
            .with_fix("run these tests as root, as .ci/run does"))
    }
}

/// Runs `cmd` (with `stdin` on its standard input), retrying while it reports that another
/// process holds the lock of a user database.
fn run_locked(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Result<(), FixtureError> {
    let mut last = None;
    for _ in 0..LOCK_ATTEMPTS {
        let out = cmd
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
                    pipe.write_all(input)?;
                }
                child.wait_with_output()
            })
            .map_err(|e| {
                FixtureError::new(format!("{what}: could not run it ({e})"))
                    .with_command(cmd)
                    .with_fix(FIX)
            })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let e = FixtureError::new(format!("{what} ({})", out.status))
            .with_command(cmd)
            .with_detail(&stderr)
            .with_fix(FIX);
        if !stderr.contains("lock") {
            return Err(e);
        }
        last = Some(e);
        std::thread::sleep(LOCK_PAUSE);
    }
    Err(last.unwrap_or_else(|| FixtureError::new(what)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn getent(db: &str, key: &str) -> Option<String> {
        let out = Command::new("getent").args([db, key]).output().unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    #[test]
    fn account_group_and_drop_in_exist_until_dropped() {
        let group = format!("wt-g-{}", random_hex(3).unwrap());
        let mut account = LinuxAccountFixture::create("fixture-pw").unwrap();
        let name = account.name().to_owned();
        account.add_to_group(&group).unwrap();
        account
            .write_authorized_keys(&["ssh-ed25519 AAAA test"])
            .unwrap();
        let keys = account.home().join(".ssh/authorized_keys");
        assert_eq!(
            fs::read_to_string(&keys).unwrap(),
            "ssh-ed25519 AAAA test\n"
        );
        assert!(getent("group", &group).unwrap().trim_end().ends_with(&name));
        let field = account.shadow_field().unwrap();
        assert!(field.starts_with('$'), "a real hash: {field}");
        let drop_in = SudoersDropIn::create(&format!("{name} ALL=(ALL) NOPASSWD: ALL")).unwrap();
        let path = drop_in.path().to_owned();
        assert!(path.is_file());

        drop(drop_in);
        let home = account.home().to_owned();
        drop(account);
        assert!(!path.exists());
        assert_eq!(getent("passwd", &name), None);
        assert_eq!(getent("group", &group), None, "created here, so removed");
        assert!(!home.exists());
    }
}

//! Discovery of privileged accounts on a Linux host: two root shell scripts over one SSH
//! connection (account databases and sudoers, then `authorized_keys` files), parsed here.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::error::{HostSshError, Result};
use crate::key::ManagedKey;
use crate::parse::{
    DEFAULT_AUTHORIZED_KEYS_FILES, GroupEntry, PasswdEntry, Sections, authorized_keys_patterns,
    count_authorized_keys, expand_authorized_keys_path, login_shell, parse_group, parse_passwd,
    parse_sections, parse_shadow, password_usable, sh_quote,
};
use crate::session::{HostTarget, Session};
use crate::sudoers::{SudoUser, Sudoers};

/// Groups whose members are administrators by convention (Debian/Ubuntu `sudo`, Red Hat and
/// SUSE `wheel`, older Ubuntu `admin`).
pub const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];

/// What a scan found on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxScan {
    /// The host as the target names it.
    pub host: String,
    /// Accounts worth managing, in `/etc/passwd` order: privileged ones (uid 0, an admin
    /// group, a sudoers rule) and those that can log in (authorized keys, a usable or an
    /// empty password).
    pub accounts: Vec<LinuxAccount>,
    /// What could not be read or understood (missing files, include loops), for the operator.
    pub warnings: Vec<String>,
}

/// One local account (from `/etc/passwd`) and what makes it interesting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxAccount {
    /// The user name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory.
    pub home: String,
    /// The login shell, as in `/etc/passwd`.
    pub shell: String,
    /// Whether the uid is 0 (root, or an alias of root such as `toor`).
    pub uid0: bool,
    /// The [`ADMIN_GROUPS`] the account is in, as primary or supplementary group.
    pub admin_groups: Vec<String>,
    /// The sudoers rules that apply to the account — naming it, its uid, one of its groups, a
    /// `User_Alias` it is in, or `ALL` — as written (continuation lines joined, comments cut).
    pub sudoers_rules: Vec<String>,
    /// The number of keys in its `authorized_keys` files (sshd's `AuthorizedKeysFile`, by
    /// default `~/.ssh/authorized_keys` and `~/.ssh/authorized_keys2`).
    pub authorized_keys: u32,
    /// Whether the shadow password field holds a usable hash (not empty, not `!…`, not `*…`).
    pub password_login: bool,
    /// Whether the shadow password field is empty: no password at all (PAM's `nullok` lets
    /// such an account log in without one).
    pub password_empty: bool,
    /// Whether the shell allows a login (not `nologin`, not `false`).
    pub login_shell: bool,
}

impl LinuxAccount {
    /// Whether the account has administrator rights: uid 0, an admin group or a sudoers rule.
    #[must_use]
    pub fn privileged(&self) -> bool {
        self.uid0 || !self.admin_groups.is_empty() || !self.sudoers_rules.is_empty()
    }
}

/// Progress of a scan, for a progress bar: `done` of `total` steps, and what just happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanStep {
    /// Steps finished.
    pub done: u32,
    /// Steps in all.
    pub total: u32,
    /// What the last step did, e.g. `read authorized_keys files of 31 accounts`.
    pub what: String,
}

/// Scans the target in a connection of its own; see [`Session::scan_linux`]. Reports four
/// steps: connected, account databases read, `authorized_keys` read, done.
pub async fn scan_linux(
    target: &HostTarget,
    key: &ManagedKey,
    progress: &mut (dyn FnMut(ScanStep) + Send),
) -> Result<LinuxScan> {
    let session = Session::connect(target, key).await?;
    progress(ScanStep {
        done: 1,
        total: 4,
        what: format!("connected to {}", target.label()),
    });
    let result = session.scan_steps(progress, 1, 4).await;
    session.close().await;
    result
}

impl Session {
    /// Reads, as root (directly or through `sudo -n`), `/etc/passwd`, `/etc/group`,
    /// `/etc/shadow`, `/etc/sudoers` with what it includes, sshd's `AuthorizedKeysFile` (from
    /// `sshd -T`), then every account's `authorized_keys` files — two round trips — and
    /// reports the accounts worth managing. Reports three steps to `progress`.
    pub async fn scan_linux(
        &self,
        progress: &mut (dyn FnMut(ScanStep) + Send),
    ) -> Result<LinuxScan> {
        self.scan_steps(progress, 0, 3).await
    }

    async fn scan_steps(
        &self,
        progress: &mut (dyn FnMut(ScanStep) + Send),
        done_before: u32,
        total: u32,
    ) -> Result<LinuxScan> {
        let label = self.target().label();
        let marker = new_marker()?;

        let out = self
            .run_stdin_script_as_root(&databases_script(&marker))
            .await?;
        let sections = self.sections(&out, &marker, "reading account databases")?;
        let databases = Databases::read(&sections).map_err(|reason| HostSshError::Output {
            target: label.clone(),
            doing: "reading account databases",
            reason,
        })?;
        progress(ScanStep {
            done: done_before + 1,
            total,
            what: format!(
                "read /etc/passwd ({} accounts), /etc/group, /etc/shadow and sudoers",
                databases.passwd.len()
            ),
        });

        let paths = databases.authorized_keys_paths();
        let all_paths: BTreeSet<&str> = paths.iter().flatten().map(String::as_str).collect();
        let out = self
            .run_stdin_script_as_root(&files_script(&marker, &all_paths))
            .await?;
        let key_files = self.sections(&out, &marker, "reading authorized_keys files")?;
        progress(ScanStep {
            done: done_before + 2,
            total,
            what: format!(
                "read authorized_keys files ({} found)",
                key_files.files.len()
            ),
        });

        let scan = databases.assemble(&self.target().host, &paths, &key_files);
        progress(ScanStep {
            done: done_before + 3,
            total,
            what: format!("{} accounts to manage", scan.accounts.len()),
        });
        tracing::info!(target = %label, accounts = scan.accounts.len(), "linux scan done");
        Ok(scan)
    }

    fn sections(
        &self,
        out: &crate::session::ExecOutput,
        marker: &str,
        doing: &'static str,
    ) -> Result<Sections> {
        if !out.success() {
            return Err(self.command_failed(doing, out, &[]));
        }
        let sections = parse_sections(&String::from_utf8_lossy(&out.stdout), marker);
        if !sections.complete {
            return Err(HostSshError::Output {
                target: self.target().label(),
                doing,
                reason: "the script's output ended early".to_owned(),
            });
        }
        Ok(sections)
    }
}

/// `@@warrant-<16 hex digits>@@`: fresh for every scan, so nothing a user writes into a file
/// (an `authorized_keys` line, a GECOS field) can pass for a section marker.
fn new_marker() -> Result<String> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| HostSshError::Random)?;
    let mut marker = String::from("@@warrant-");
    for b in nonce {
        let _ = write!(marker, "{b:02x}");
    }
    marker.push_str("@@");
    Ok(marker)
}

/// The shell functions both scripts share: a fixed `PATH` and locale, and `emit FILE`, which
/// prints a marker line (after a newline, so the marker starts a line) and the file.
fn prelude(marker: &str) -> String {
    format!(
        r#"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
M='{marker}'
emit() {{
  if [ -f "$1" ] && [ -r "$1" ]; then
    printf '\n%s file %s\n' "$M" "$1"
    cat -- "$1"
  else
    printf '\n%s missing %s\n' "$M" "$1"
  fi
}}
"#
    )
}

/// Prints the account databases, the sudoers files (following includes: a directory's
/// files, and the targets of include lines, relative ones resolved against the including
/// file's directory; which of them sudo really reads is decided when parsing) and sshd's
/// effective `AuthorizedKeysFile`.
fn databases_script(marker: &str) -> String {
    let mut script = prelude(marker);
    script.push_str(
        r#"seen=' '
sudoers() {
  case "$seen" in *" $1 "*) return 0 ;; esac
  seen="$seen$1 "
  if [ -d "$1" ]; then
    for f in "$1"/*; do
      if [ -f "$f" ]; then sudoers "$f"; fi
    done
    return 0
  fi
  emit "$1"
  [ -f "$1" ] || return 0
  for inc in $(sed -n 's/^[[:space:]]*[#@]include\(dir\)\{0,1\}[[:space:]][[:space:]]*//p' "$1" | tr -d '"'); do
    case "$inc" in
      /*) sudoers "$inc" ;;
      *) sudoers "${1%/*}/$inc" ;;
    esac
  done
}
emit /etc/passwd
emit /etc/group
emit /etc/shadow
sudoers /etc/sudoers
printf '\n%s sshd\n' "$M"
sshd -T 2>/dev/null | grep -i '^authorizedkeysfile[[:space:]]'
printf '\n%s end\n' "$M"
"#,
    );
    script
}

/// Prints each of `paths` that exists.
fn files_script(marker: &str, paths: &BTreeSet<&str>) -> String {
    let mut script = prelude(marker);
    for path in paths {
        script.push_str("emit ");
        script.push_str(&sh_quote(path));
        script.push('\n');
    }
    script.push_str("printf '\\n%s end\\n' \"$M\"\n");
    script
}

/// The account databases of one host, parsed.
struct Databases {
    passwd: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
    shadow: HashMap<String, String>,
    sudoers: Sudoers,
    key_patterns: Vec<String>,
    warnings: Vec<String>,
}

impl Databases {
    fn read(sections: &Sections) -> std::result::Result<Self, String> {
        let passwd = sections
            .files
            .get("/etc/passwd")
            .map(|text| parse_passwd(text))
            .ok_or("/etc/passwd is missing or unreadable")?;
        let mut warnings = Vec::new();
        let mut file = |path: &str, what: &str| {
            let text = sections.files.get(path).cloned();
            if text.is_none() {
                warnings.push(format!("{path} is missing or unreadable: {what}"));
            }
            text.unwrap_or_default()
        };
        let groups = parse_group(&file("/etc/group", "group memberships unknown"));
        let shadow = parse_shadow(&file("/etc/shadow", "password states unknown"));
        let mut sudoers = Sudoers::parse(&sections.files, "/etc/sudoers");
        if !sections.files.contains_key("/etc/sudoers") {
            warnings.push("/etc/sudoers is missing (sudo not installed?): no sudo rules".into());
        }
        warnings.append(&mut sudoers.warnings);
        let sshd = sections.other.get("sshd").map(String::as_str);
        let key_patterns = match sshd.and_then(authorized_keys_patterns) {
            Some(patterns) => patterns,
            None => {
                warnings.push(
                    "sshd -T did not tell AuthorizedKeysFile; read the default \
                     .ssh/authorized_keys and .ssh/authorized_keys2"
                        .into(),
                );
                DEFAULT_AUTHORIZED_KEYS_FILES.map(str::to_owned).to_vec()
            }
        };
        Ok(Self {
            passwd,
            groups,
            shadow,
            sudoers,
            key_patterns,
            warnings,
        })
    }

    /// For each `passwd` entry (same order), the `authorized_keys` files sshd would read.
    fn authorized_keys_paths(&self) -> Vec<Vec<String>> {
        self.passwd
            .iter()
            .map(|account| {
                let mut paths: Vec<String> = self
                    .key_patterns
                    .iter()
                    .filter_map(|p| expand_authorized_keys_path(p, account))
                    .collect();
                paths.dedup();
                paths
            })
            .collect()
    }

    fn assemble(self, host: &str, key_paths: &[Vec<String>], key_files: &Sections) -> LinuxScan {
        let group_by_gid: HashMap<u32, &GroupEntry> =
            self.groups.iter().rev().map(|g| (g.gid, g)).collect();
        let mut accounts = Vec::new();
        for (account, paths) in self.passwd.iter().zip(key_paths) {
            // Primary group first, then supplementary groups, each once.
            let mut groups: Vec<&GroupEntry> = Vec::new();
            if let Some(primary) = group_by_gid.get(&account.gid) {
                groups.push(primary);
            }
            for group in &self.groups {
                if group.members.contains(&account.name)
                    && !groups.iter().any(|g| g.name == group.name)
                {
                    groups.push(group);
                }
            }
            let group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
            let mut gids: Vec<u32> = groups.iter().map(|g| g.gid).collect();
            if !gids.contains(&account.gid) {
                gids.push(account.gid);
            }
            let admin_groups = ADMIN_GROUPS
                .iter()
                .filter(|admin| group_names.iter().any(|g| g == *admin))
                .map(|admin| (*admin).to_owned())
                .collect();
            let sudoers_rules = self.sudoers.rules_for(&SudoUser {
                name: &account.name,
                uid: account.uid,
                groups: &group_names,
                gids: &gids,
            });
            let authorized_keys = paths
                .iter()
                .filter_map(|p| key_files.files.get(p))
                .map(|text| count_authorized_keys(text))
                .fold(0u32, u32::saturating_add);
            let field = self.shadow.get(&account.name).map(String::as_str);
            let candidate = LinuxAccount {
                name: account.name.clone(),
                uid: account.uid,
                gid: account.gid,
                home: account.home.clone(),
                shell: account.shell.clone(),
                uid0: account.uid == 0,
                admin_groups,
                sudoers_rules,
                authorized_keys,
                password_login: field.is_some_and(password_usable),
                password_empty: field == Some(""),
                login_shell: login_shell(&account.shell),
            };
            if candidate.privileged()
                || candidate.authorized_keys > 0
                || candidate.password_login
                || candidate.password_empty
            {
                accounts.push(candidate);
            }
        }
        LinuxScan {
            host: host.to_owned(),
            accounts,
            warnings: self.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const M: &str = "@@warrant-test@@";

    fn sections(files: &[(&str, &str)], sshd: Option<&str>) -> Sections {
        let mut out = String::new();
        for (path, text) in files {
            out.push_str(&format!("\n{M} file {path}\n{text}"));
        }
        if let Some(sshd) = sshd {
            out.push_str(&format!("\n{M} sshd\n{sshd}"));
        }
        out.push_str(&format!("\n{M} end\n"));
        parse_sections(&out, M)
    }

    /// Scans a host made of `files` (account databases and sudoers) and `keys` (the
    /// authorized_keys files that exist).
    fn check(files: &[(&str, &str)], sshd: Option<&str>, keys: &[(&str, &str)]) -> LinuxScan {
        let databases = Databases::read(&sections(files, sshd)).unwrap();
        let paths = databases.authorized_keys_paths();
        databases.assemble("web-1", &paths, &sections(keys, None))
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        toor:x:0:0::/root:/bin/sh\n\
        alice:x:1000:1000::/home/alice:/bin/bash\n\
        bob:x:1001:1001::/home/bob:/bin/bash\n\
        carol:x:1002:10::/home/carol:/bin/bash\n\
        deploy:x:1003:1003::/srv/deploy:/usr/sbin/nologin\n\
        nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
        guest:x:1004:1004::/home/guest:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:\nsudo:x:27:alice\nalice:x:1000:\n";
    const SHADOW: &str = "root:*:19000:0:99999:7:::\n\
        daemon:*:19000::::::\n\
        toor:!:19000::::::\n\
        alice:$y$j9T$abc$def:19000::::::\n\
        bob:!$6$x$y:19000::::::\n\
        carol:!:19000::::::\n\
        deploy:!:19000::::::\n\
        nobody:*:19000::::::\n\
        guest::19000::::::\n";
    const SUDOERS: &str = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n\
        @includedir /etc/sudoers.d\n";

    #[test]
    fn finds_privileged_accounts_and_ways_in() {
        let scan = check(
            &[
                ("/etc/passwd", PASSWD),
                ("/etc/group", GROUP),
                ("/etc/shadow", SHADOW),
                ("/etc/sudoers", SUDOERS),
                (
                    "/etc/sudoers.d/bob",
                    "bob ALL=(root) NOPASSWD: /usr/bin/apt\n",
                ),
            ],
            Some("authorizedkeysfile .ssh/authorized_keys /etc/ssh/keys/%u\n"),
            &[
                ("/srv/deploy/.ssh/authorized_keys", "ssh-ed25519 AAAA ci\n"),
                ("/etc/ssh/keys/deploy", "ssh-ed25519 AAAA ci2\n# old\n"),
            ],
        );
        assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
        let names: Vec<&str> = scan.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["root", "toor", "alice", "bob", "carol", "deploy", "guest"]
        );
        let get = |n: &str| scan.accounts.iter().find(|a| a.name == n).unwrap();

        let root = get("root");
        assert!(root.uid0 && root.login_shell && !root.password_login);
        assert_eq!(root.sudoers_rules, ["root ALL=(ALL:ALL) ALL"]);
        assert!(get("toor").uid0);

        let alice = get("alice");
        assert_eq!(alice.admin_groups, ["sudo"]);
        assert_eq!(alice.sudoers_rules, ["%sudo ALL=(ALL:ALL) ALL"]);
        assert!(alice.password_login && !alice.password_empty);

        let bob = get("bob");
        assert_eq!(bob.sudoers_rules, ["bob ALL=(root) NOPASSWD: /usr/bin/apt"]);
        assert!(!bob.password_login, "a locked hash is not a way in");

        assert_eq!(get("carol").admin_groups, ["wheel"], "primary group");

        let deploy = get("deploy");
        assert_eq!(deploy.authorized_keys, 2);
        assert!(!deploy.privileged() && !deploy.login_shell);

        let guest = get("guest");
        assert!(guest.password_empty && !guest.password_login);
    }

    #[test]
    fn missing_files_become_warnings_and_defaults() {
        let scan = check(
            &[("/etc/passwd", PASSWD)],
            None,
            &[("/home/bob/.ssh/authorized_keys2", "ssh-rsa AAAA old\n")],
        );
        let names: Vec<&str> = scan.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["root", "toor", "bob"]);
        assert_eq!(scan.warnings.len(), 4, "{:?}", scan.warnings);
        assert!(Databases::read(&sections(&[], None)).is_err());
    }

    #[test]
    fn scripts_are_plain_sh() {
        let script = databases_script(M);
        assert!(script.contains("M='@@warrant-test@@'"));
        let paths: BTreeSet<&str> = ["/home/o'brien/.ssh/authorized_keys"].into();
        assert!(files_script(M, &paths).contains(r"emit '/home/o'\''brien/.ssh/authorized_keys'"));
        let marker = new_marker().unwrap();
        assert_eq!(marker.len(), "@@warrant-@@".len() + 16);
        assert_ne!(marker, new_marker().unwrap());
    }

    /// The scripts run under the local /bin/sh against a fake root made of temp files: what
    /// the remote shell does, minus SSH.
    #[test]
    fn scripts_run_under_sh() {
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!("warrant-hostssh-{}", new_marker().unwrap()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        let main = dir.join("main");
        std::fs::write(
            &main,
            "x ALL=(ALL) ALL\n#includedir d\n@include \"other\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("d").join("one"), "y ALL=(ALL) ALL\n").unwrap();
        std::fs::write(dir.join("other"), "z ALL=(ALL) ALL\n@include main\n").unwrap();
        let main_path = main.to_str().unwrap();
        let script =
            databases_script(M).replace("sudoers /etc/sudoers", &format!("sudoers {main_path}"));
        let run = |script: &str| {
            let mut child = Command::new("/bin/sh")
                .arg("-s")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            parse_sections(&String::from_utf8(out.stdout).unwrap(), M)
        };
        let s = run(&script);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(s.complete);
        let d = dir.to_str().unwrap();
        let printed: Vec<&String> = s.files.keys().filter(|p| p.starts_with(d)).collect();
        assert_eq!(
            printed,
            [
                &format!("{d}/d/one"),
                &format!("{d}/main"),
                &format!("{d}/other")
            ]
        );
        assert!(s.files.contains_key("/etc/passwd"));
        let sudoers = Sudoers::parse(&s.files, main_path);
        assert!(
            sudoers.warnings.iter().any(|w| w.contains("loop")),
            "{sudoers:?}"
        );
    }
}

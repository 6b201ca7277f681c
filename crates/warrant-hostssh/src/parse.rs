//! Pure parsers for what a scan reads: `/etc/passwd`, `/etc/group`, `/etc/shadow`,
//! `authorized_keys`, sshd's `AuthorizedKeysFile`, and the marked sections the scan script
//! prints.

use std::collections::{BTreeMap, HashMap};

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PasswdEntry {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
    pub(crate) shell: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntry {
    pub(crate) name: String,
    pub(crate) gid: u32,
    pub(crate) members: Vec<String>,
}

/// `name:password:uid:gid:gecos:home:shell`. Skips blank lines, comments, NIS `+`/`-` lines,
/// malformed lines and later duplicates of a name (the first entry is the one that counts).
pub(crate) fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, _, home, shell] = fields[..] else {
                return None;
            };
            if name.is_empty() || name.starts_with(['#', '+', '-']) {
                return None;
            }
            Some(PasswdEntry {
                name: name.to_owned(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home: home.to_owned(),
                shell: shell.to_owned(),
            })
        })
        .filter(|entry| seen.insert(entry.name.clone()))
        .collect()
}

/// `name:password:gid:member,member`. Skips what `parse_passwd` skips.
pub(crate) fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, gid, members] = fields[..] else {
                return None;
            };
            if name.is_empty() || name.starts_with(['#', '+', '-']) {
                return None;
            }
            Some(GroupEntry {
                name: name.to_owned(),
                gid: gid.parse().ok()?,
                members: members
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Name → password field of `/etc/shadow` (`name:hash:lastchg:…`, 9 fields; lines with at
/// least the first two are taken). The first entry of a name counts.
pub(crate) fn parse_shadow(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(hash)) = (fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        map.entry(name.to_owned())
            .or_insert_with(|| hash.to_owned());
    }
    map
}

/// The password field of `name` in one `getent shadow NAME` line, if the line is for `name`.
pub(crate) fn shadow_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mut fields = line.trim_end_matches(['\n', '\r']).split(':');
    (fields.next() == Some(name)).then(|| fields.next())?
}

/// Whether a shadow password field lets the account log in with a password: not empty (no
/// password at all is its own finding), not locked (`!…`) and not disabled (`*…`).
pub(crate) fn password_usable(field: &str) -> bool {
    !field.is_empty() && !field.starts_with(['!', '*'])
}

/// Whether a login shell lets the account log in: anything but `nologin` and `false`.
pub(crate) fn login_shell(shell: &str) -> bool {
    let program = shell.trim().rsplit('/').next().unwrap_or_default();
    !matches!(program, "nologin" | "false")
}

/// Key types that can start a key in `authorized_keys` (after the options, if any).
const KEY_TYPE_PREFIXES: [&str; 4] = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-sha2-"];

/// The number of keys in an `authorized_keys` file: lines that are not blank, not comments,
/// and carry a key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `sk-…`) as a word, so that a
/// file that is not an authorized_keys file (a symlink to something else) counts nothing.
pub(crate) fn count_authorized_keys(text: &str) -> u32 {
    let count = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|line| {
            line.split_whitespace()
                .any(|word| KEY_TYPE_PREFIXES.iter().any(|p| word.starts_with(p)))
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// sshd's default `AuthorizedKeysFile`.
pub(crate) const DEFAULT_AUTHORIZED_KEYS_FILES: [&str; 2] =
    [".ssh/authorized_keys", ".ssh/authorized_keys2"];

/// The `AuthorizedKeysFile` patterns from `sshd -T` output (`authorizedkeysfile a b`), or
/// `None` when the output has no such line. `none` yields an empty list.
pub(crate) fn authorized_keys_patterns(sshd_t: &str) -> Option<Vec<String>> {
    let line = sshd_t.lines().find_map(|line| {
        let (key, value) = line.trim().split_once(char::is_whitespace)?;
        key.eq_ignore_ascii_case("authorizedkeysfile")
            .then_some(value)
    })?;
    Some(
        line.split_whitespace()
            .filter(|p| *p != "none")
            .map(str::to_owned)
            .collect(),
    )
}

/// Expands one `AuthorizedKeysFile` pattern for an account as sshd does: `%%` → `%`, `%h` →
/// home, `%u` → user name, `%U` → uid; a relative result is relative to the home directory.
/// `None` for a pattern with a token sshd would reject.
pub(crate) fn expand_authorized_keys_path(pattern: &str, account: &PasswdEntry) -> Option<String> {
    let mut path = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            path.push(c);
            continue;
        }
        match chars.next()? {
            '%' => path.push('%'),
            'h' => path.push_str(&account.home),
            'u' => path.push_str(&account.name),
            'U' => path.push_str(&account.uid.to_string()),
            _ => return None,
        }
    }
    if path.starts_with('/') {
        Some(path)
    } else {
        Some(format!("{}/{path}", account.home.trim_end_matches('/')))
    }
}

/// The marked output of a scan script, cut into sections.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sections {
    /// Files that were printed: path → content.
    pub(crate) files: BTreeMap<String, String>,
    /// Files that were asked for but are missing or unreadable.
    pub(crate) missing: Vec<String>,
    /// Other sections by name (e.g. `sshd`), content as printed.
    pub(crate) other: BTreeMap<String, String>,
    /// Whether the closing `end` marker was seen (the script ran to its end).
    pub(crate) complete: bool,
}

/// Cuts `stdout` at the lines `<marker> file PATH`, `<marker> missing PATH`,
/// `<marker> NAME` and `<marker> end`. The script prints a newline before each marker, so a
/// marker always starts a line and that newline is not part of the content before it. The
/// marker holds a random nonce: file contents cannot forge a section.
pub(crate) fn parse_sections(stdout: &str, marker: &str) -> Sections {
    let mut sections = Sections::default();
    let separator = format!("\n{marker} ");
    for chunk in stdout.split(separator.as_str()).skip(1) {
        let (header, content) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let (kind, arg) = header.split_once(' ').unwrap_or((header, ""));
        match kind {
            "file" => {
                sections.files.insert(arg.to_owned(), content.to_owned());
            }
            "missing" => sections.missing.push(arg.to_owned()),
            "end" => sections.complete = true,
            name => {
                sections.other.insert(name.to_owned(), content.to_owned());
            }
        }
    }
    sections
}

/// `s` single-quoted for `/bin/sh`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn passwd_lines() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                    \n\
                    # comment\n\
                    +nisuser::::::\n\
                    broken:x:notanumber:0::/:/bin/sh\n\
                    short:x:5\n\
                    toor:x:0:0::/root:/bin/sh\n\
                    root:x:99:99::/tmp:/bin/sh\n";
        let entries = parse_passwd(text);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "toor"]);
        assert_eq!(
            entries[0],
            PasswdEntry {
                name: "root".into(),
                uid: 0,
                gid: 0,
                home: "/root".into(),
                shell: "/bin/bash".into(),
            }
        );
    }

    #[test]
    fn group_lines() {
        let groups = parse_group("sudo:x:27:alice, bob\nwheel:x:10:\nbad:x:y:z\n");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, ["alice", "bob"]);
        assert!(groups[1].members.is_empty());
    }

    #[test]
    fn shadow_lines_and_password_states() {
        let shadow = parse_shadow(
            "root:*:19000:0:99999:7:::\nalice:$6$s$h:19000::::::\nbob:!$y$j9T$a$b:1::::::\n\
             nopw::19000::::::\nlocked:!:1::::::\n",
        );
        assert_eq!(shadow["alice"], "$6$s$h");
        let usable = |n: &str| password_usable(&shadow[n]);
        assert!(usable("alice"));
        assert!(!usable("root") && !usable("bob") && !usable("nopw") && !usable("locked"));
        assert_eq!(
            shadow_field("alice:$6$s$h:1::::::\n", "alice"),
            Some("$6$s$h")
        );
        assert_eq!(shadow_field("alice:$6$s$h:1::::::\n", "alic"), None);
        assert_eq!(shadow_field("", "alice"), None);
    }

    #[test]
    fn login_shells() {
        assert!(login_shell("/bin/bash"));
        assert!(login_shell(""));
        assert!(!login_shell("/usr/sbin/nologin"));
        assert!(!login_shell("/sbin/nologin"));
        assert!(!login_shell("/bin/false"));
    }

    #[test]
    fn authorized_keys_counts_key_lines_only() {
        let text = "# keys\n\
                    ssh-ed25519 AAAAC3Nza alice@laptop\n\
                    \n\
                    from=\"10.0.0.0/8\",no-pty ecdsa-sha2-nistp256 AAAAE2 ops\n\
                    sk-ssh-ed25519@openssh.com AAAA yubikey\n\
                    root:$6$abc:19000:0:99999:7:::\n";
        assert_eq!(count_authorized_keys(text), 3);
        assert_eq!(count_authorized_keys(""), 0);
    }

    #[test]
    fn authorized_keys_file_patterns() {
        let out = "port 22\nauthorizedkeysfile .ssh/authorized_keys /etc/ssh/keys/%u %h/k%%\n";
        let patterns = authorized_keys_patterns(out).unwrap();
        assert_eq!(
            patterns,
            [".ssh/authorized_keys", "/etc/ssh/keys/%u", "%h/k%%"]
        );
        assert_eq!(
            authorized_keys_patterns("authorizedkeysfile none\n").unwrap(),
            Vec::<String>::new()
        );
        assert!(authorized_keys_patterns("port 22\n").is_none());

        let alice = PasswdEntry {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice/".into(),
            shell: "/bin/sh".into(),
        };
        let expand = |p: &str| expand_authorized_keys_path(p, &alice);
        assert_eq!(
            expand(".ssh/authorized_keys").unwrap(),
            "/home/alice/.ssh/authorized_keys"
        );
        assert_eq!(expand("/etc/ssh/keys/%u").unwrap(), "/etc/ssh/keys/alice");
        assert_eq!(expand("/k/%U/%h%%").unwrap(), "/k/1000//home/alice/%");
        assert_eq!(expand("/k/%x"), None);
    }

    #[test]
    fn sections_cannot_be_forged_without_the_marker() {
        let m = "@@warrant-0123@@";
        let out = format!(
            "\n{m} file /etc/passwd\nroot:x:0:0::/root:/bin/sh\n\
             @@warrant-guess@@ file /etc/shadow\n\
             \n{m} missing /etc/sudoers\n\
             \n{m} file /home/a/.ssh/authorized_keys\nssh-ed25519 AAAA no-newline\
             \n{m} sshd\nauthorizedkeysfile .ssh/authorized_keys\n\
             \n{m} end\n"
        );
        let s = parse_sections(&out, m);
        assert_eq!(
            s.files["/etc/passwd"],
            "root:x:0:0::/root:/bin/sh\n@@warrant-guess@@ file /etc/shadow\n"
        );
        assert_eq!(
            s.files["/home/a/.ssh/authorized_keys"],
            "ssh-ed25519 AAAA no-newline"
        );
        assert_eq!(s.missing, ["/etc/sudoers"]);
        assert_eq!(s.other["sshd"], "authorizedkeysfile .ssh/authorized_keys\n");
        assert!(s.complete);
        assert!(!parse_sections(&out[..out.len() - 10], m).complete);
    }

    #[test]
    fn sh_quoting() {
        assert_eq!(sh_quote("/home/o'brien/.ssh"), r"'/home/o'\''brien/.ssh'");
    }
}

//! Just enough of sudoers(5) to tell which rules apply to which user: includes, `User_Alias`,
//! user lists (`name`, `#uid`, `%group`, `%#gid`, `%:group`, `+netgroup`, `ALL`, `!`
//! negation). Host, runas and command parts are not interpreted: a rule is reported as
//! written.

use std::collections::{BTreeMap, HashMap};

/// sudo's own limit on nested includes.
const MAX_INCLUDE_DEPTH: usize = 128;
/// How deep `User_Alias` definitions may refer to each other before we stop following.
const MAX_ALIAS_DEPTH: usize = 32;

/// The user rules and user aliases of a sudoers policy, includes resolved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sudoers {
    rules: Vec<Rule>,
    user_aliases: HashMap<String, Vec<UserItem>>,
    /// Problems met while reading (missing includes, include loops).
    pub(crate) warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    users: Vec<UserItem>,
    /// The logical line (continuations joined, comment cut), as written.
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UserItem {
    negated: bool,
    who: Who,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    All,
    Name(String),
    Uid(u32),
    Group(String),
    Gid(u32),
    /// `+netgroup`: cannot be resolved from the files read; never matches.
    Netgroup,
    Alias(String),
}

/// A user as sudoers matches it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SudoUser<'a> {
    pub(crate) name: &'a str,
    pub(crate) uid: u32,
    /// Names of all groups the user is in (primary and supplementary).
    pub(crate) groups: &'a [String],
    /// Ids of the same groups.
    pub(crate) gids: &'a [u32],
}

impl Sudoers {
    /// Parses the policy starting at `main` (normally `/etc/sudoers`), following `#include`,
    /// `@include`, `#includedir` and `@includedir` into `files` (path → content). For an
    /// include directory, the files directly in it are read in lexical order, skipping names
    /// that end in `~` or contain a `.`, as sudo does.
    pub(crate) fn parse(files: &BTreeMap<String, String>, main: &str) -> Self {
        let mut sudoers = Self::default();
        if files.contains_key(main) {
            let mut stack = Vec::new();
            sudoers.read_file(files, main, &mut stack);
        }
        sudoers
    }

    fn read_file(&mut self, files: &BTreeMap<String, String>, path: &str, stack: &mut Vec<String>) {
        let Some(text) = files.get(path) else {
            self.warnings
                .push(format!("sudoers include {path} not found"));
            return;
        };
        if stack.len() >= MAX_INCLUDE_DEPTH || stack.iter().any(|p| p == path) {
            self.warnings
                .push(format!("sudoers include loop or too deep at {path}"));
            return;
        }
        stack.push(path.to_owned());
        for line in logical_lines(text) {
            self.statement(files, path, &line, stack);
        }
        stack.pop();
    }

    fn statement(
        &mut self,
        files: &BTreeMap<String, String>,
        path: &str,
        line: &str,
        stack: &mut Vec<String>,
    ) {
        if let Some((is_dir, target)) = include_directive(line) {
            let target = resolve(path, &target);
            if is_dir {
                let prefix = format!("{}/", target.trim_end_matches('/'));
                let members: Vec<&String> = files
                    .keys()
                    .filter(|p| {
                        p.strip_prefix(&prefix).is_some_and(|name| {
                            !name.is_empty()
                                && !name.contains('/')
                                && !name.contains('.')
                                && !name.ends_with('~')
                        })
                    })
                    .collect();
                for member in members {
                    self.read_file(files, member, stack);
                }
            } else {
                self.read_file(files, &target, stack);
            }
            return;
        }
        let line = strip_comment(line);
        let line = line.trim();
        if line.is_empty() || is_defaults(line) {
            return;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        match first {
            "User_Alias" => self.user_alias(&line[first.len()..]),
            "Runas_Alias" | "Host_Alias" | "Cmnd_Alias" | "Cmd_Alias" => {}
            _ => {
                if let Some((users, rest)) = split_user_list(line)
                    && rest.contains('=')
                {
                    self.rules.push(Rule {
                        users: parse_user_list(users),
                        text: line.to_owned(),
                    });
                }
            }
        }
    }

    /// `NAME = list [: NAME = list]…`
    fn user_alias(&mut self, definitions: &str) {
        for definition in split_alias_definitions(definitions) {
            if let Some((name, list)) = definition.split_once('=') {
                let name = name.trim();
                if is_alias_name(name) {
                    self.user_aliases
                        .insert(name.to_owned(), parse_user_list(list.trim()));
                }
            }
        }
    }

    /// The rules whose user list matches `user` (directly, through a group, an alias or
    /// `ALL`), as written, in policy order.
    pub(crate) fn rules_for(&self, user: &SudoUser<'_>) -> Vec<String> {
        self.rules
            .iter()
            .filter(|rule| self.list_matches(&rule.users, user, 0))
            .map(|rule| rule.text.clone())
            .collect()
    }

    /// sudo's rule for lists: the last item that matches decides, and a negated item that
    /// matches means "no".
    fn list_matches(&self, items: &[UserItem], user: &SudoUser<'_>, depth: usize) -> bool {
        for item in items.iter().rev() {
            if self.item_matches(&item.who, user, depth) {
                return !item.negated;
            }
        }
        false
    }

    fn item_matches(&self, who: &Who, user: &SudoUser<'_>, depth: usize) -> bool {
        match who {
            Who::All => true,
            Who::Name(name) => name == user.name,
            Who::Uid(uid) => *uid == user.uid,
            Who::Group(group) => user.groups.iter().any(|g| g == group),
            Who::Gid(gid) => user.gids.contains(gid),
            Who::Netgroup => false,
            Who::Alias(alias) => {
                depth < MAX_ALIAS_DEPTH
                    && self
                        .user_aliases
                        .get(alias)
                        .is_some_and(|items| self.list_matches(items, user, depth + 1))
            }
        }
    }
}

/// The file's lines with backslash continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        if let Some(head) = raw.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(raw);
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        lines.push(current);
    }
    lines
}

/// `#include x`, `@include x`, `#includedir x`, `@includedir x` → (is a dir, path).
fn include_directive(line: &str) -> Option<(bool, String)> {
    let line = line.trim();
    let rest = line
        .strip_prefix("#include")
        .or_else(|| line.strip_prefix("@include"))?;
    let (is_dir, rest) = match rest.strip_prefix("dir") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let path = rest.trim();
    let path = path
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or(path);
    (!path.is_empty()).then(|| (is_dir, path.to_owned()))
}

/// A relative include is relative to the directory of the file that names it (sudo 1.9.1+).
fn resolve(including: &str, target: &str) -> String {
    if target.starts_with('/') {
        return target.to_owned();
    }
    match including.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{target}"),
        None => target.to_owned(),
    }
}

/// Cuts a `#` comment: a `#` outside quotes, not escaped and not followed by a digit (`#1000`
/// is a uid).
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => {
                let next = line[i + 1..].chars().next();
                if !next.is_some_and(|n| n.is_ascii_digit()) {
                    return &line[..i];
                }
            }
            _ => {}
        }
    }
    line
}

/// `Defaults`, `Defaults:user`, `Defaults@host`, `Defaults>runas`, `Defaults!cmnd`.
fn is_defaults(line: &str) -> bool {
    line.strip_prefix("Defaults").is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(|c: char| c.is_whitespace() || ":@>!".contains(c))
    })
}

/// Splits a user specification into its user list and the rest: the list ends at the first
/// whitespace (outside quotes, not escaped) that is not next to a comma.
fn split_user_list(line: &str) -> Option<(&str, &str)> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
                let before = line[..i].trim_end().ends_with(',');
                let after = line[i..].trim_start().starts_with(',');
                if !before && !after {
                    return Some((line[..i].trim(), line[i..].trim()));
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits on `sep` outside double quotes and not after a backslash.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits `A = x, %:grp : B = y` at the colons that start a new `NAME =` definition (a colon
/// can also be part of `%:group`).
fn split_alias_definitions(s: &str) -> Vec<String> {
    let mut definitions: Vec<String> = Vec::new();
    for piece in split_outside_quotes(s, ':') {
        let starts_definition = piece
            .split_once('=')
            .is_some_and(|(name, _)| is_alias_name(name.trim()));
        match definitions.last_mut() {
            Some(last) if !starts_definition => {
                last.push(':');
                last.push_str(piece);
            }
            _ => definitions.push(piece.to_owned()),
        }
    }
    definitions
}

fn parse_user_list(list: &str) -> Vec<UserItem> {
    split_outside_quotes(list, ',')
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(parse_user_item)
        .collect()
}

fn parse_user_item(item: &str) -> UserItem {
    let mut negated = false;
    let mut rest = item;
    while let Some(r) = rest.strip_prefix('!') {
        negated = !negated;
        rest = r.trim_start();
    }
    let who = if rest == "ALL" {
        Who::All
    } else if let Some(group) = rest.strip_prefix('%') {
        let group = group.strip_prefix(':').unwrap_or(group);
        match group.strip_prefix('#').map(str::parse::<u32>) {
            Some(Ok(gid)) => Who::Gid(gid),
            _ => Who::Group(unquote(group)),
        }
    } else if let Some(Ok(uid)) = rest.strip_prefix('#').map(str::parse::<u32>) {
        Who::Uid(uid)
    } else if rest.starts_with('+') {
        Who::Netgroup
    } else if is_alias_name(rest) {
        Who::Alias(rest.to_owned())
    } else {
        Who::Name(unquote(rest))
    };
    UserItem { negated, who }
}

/// Alias names: an upper-case letter, then upper-case letters, digits and `_`.
fn is_alias_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Removes surrounding double quotes and backslash escapes.
fn unquote(s: &str) -> String {
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, String> {
        list.iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect()
    }

    /// The rules for `name` (uid, groups with gids) in a policy whose main file is `main`.
    fn check(policy: &[(&str, &str)], name: &str, uid: u32, groups: &[(&str, u32)]) -> Vec<String> {
        let sudoers = Sudoers::parse(&files(policy), "/etc/sudoers");
        let names: Vec<String> = groups.iter().map(|(g, _)| (*g).to_owned()).collect();
        let gids: Vec<u32> = groups.iter().map(|(_, id)| *id).collect();
        sudoers.rules_for(&SudoUser {
            name,
            uid,
            groups: &names,
            gids: &gids,
        })
    }

    const DEBIAN: &str = "\
#
# This file MUST be edited with the 'visudo' command as root.
Defaults\tenv_reset
Defaults\tsecure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"
Defaults:alice !requiretty
# User privilege specification
root\tALL=(ALL:ALL) ALL

# Allow members of group sudo to execute any command
%sudo\tALL=(ALL:ALL) ALL

# See sudoers(5) for more information on \"@include\" directives:

@includedir /etc/sudoers.d
";

    #[test]
    fn debian_default_policy_names_root_and_the_sudo_group() {
        let policy = [("/etc/sudoers", DEBIAN)];
        assert_eq!(
            check(&policy, "root", 0, &[("root", 0)]),
            ["root\tALL=(ALL:ALL) ALL"]
        );
        assert_eq!(
            check(&policy, "alice", 1000, &[("alice", 1000), ("sudo", 27)]),
            ["%sudo\tALL=(ALL:ALL) ALL"]
        );
        assert!(check(&policy, "bob", 1001, &[("bob", 1001)]).is_empty());
    }

    #[test]
    fn includedir_reads_files_in_order_and_skips_dotted_and_backup_names() {
        let policy = [
            ("/etc/sudoers", DEBIAN),
            (
                "/etc/sudoers.d/20-bob",
                "bob ALL=(root) NOPASSWD: /usr/bin/systemctl\n",
            ),
            (
                "/etc/sudoers.d/10-bob",
                "bob, carol ALL=(ALL) ALL # carol too\n",
            ),
            ("/etc/sudoers.d/README", "# nothing\n"),
            ("/etc/sudoers.d/bob.disabled", "bob ALL=(ALL) ALL\n"),
            ("/etc/sudoers.d/bob~", "bob ALL=(ALL) ALL\n"),
            ("/etc/sudoers.d/sub/bob", "bob ALL=(ALL) ALL\n"),
        ];
        assert_eq!(
            check(&policy, "bob", 1001, &[("bob", 1001)]),
            [
                "bob, carol ALL=(ALL) ALL",
                "bob ALL=(root) NOPASSWD: /usr/bin/systemctl"
            ]
        );
    }

    #[test]
    fn include_forms_relative_paths_and_loops() {
        let policy = [
            (
                "/etc/sudoers",
                "#include sudoers.local\n#includedir /etc/extra\n@include \"/etc/missing\"\n",
            ),
            (
                "/etc/sudoers.local",
                "dave ALL=(ALL) ALL\n#include /etc/sudoers\n",
            ),
            ("/etc/extra/x", "#1002 ALL=(ALL) ALL\n"),
        ];
        let sudoers = Sudoers::parse(&files(&policy), "/etc/sudoers");
        assert_eq!(sudoers.rules.len(), 2, "{sudoers:?}");
        assert_eq!(
            sudoers.warnings,
            [
                "sudoers include loop or too deep at /etc/sudoers",
                "sudoers include /etc/missing not found"
            ]
        );
        assert_eq!(check(&policy, "dave", 1003, &[]), ["dave ALL=(ALL) ALL"]);
        assert_eq!(check(&policy, "erin", 1002, &[]), ["#1002 ALL=(ALL) ALL"]);
    }

    #[test]
    fn aliases_groups_negation_and_continuations() {
        let policy = [(
            "/etc/sudoers",
            "User_Alias ADMINS = alice, %ops, \\\n    !mallory : WEB = %#2000, %:nt\n\
             Host_Alias SERVERS = web1, web2\n\
             Cmnd_Alias RESTART = /usr/bin/systemctl restart *\n\
             ADMINS SERVERS = (root) RESTART\n\
             WEB ALL = (www-data) ALL\n\
             ALL, !guest ALL = (ALL) /usr/bin/id\n\
             %:\"domain admins\" ALL = (ALL) ALL\n\
             +netops ALL = (ALL) ALL\n\
             Defaults>root !set_logname\n\
             Defaults!/bin/ls noexec\n",
        )];
        let alice = check(&policy, "alice", 1000, &[("alice", 1000)]);
        assert_eq!(
            alice,
            [
                "ADMINS SERVERS = (root) RESTART",
                "ALL, !guest ALL = (ALL) /usr/bin/id"
            ]
        );
        // In %ops, but the alias excludes mallory by name (the last match wins).
        let mallory = check(&policy, "mallory", 1005, &[("ops", 3000)]);
        assert_eq!(mallory, ["ALL, !guest ALL = (ALL) /usr/bin/id"]);
        let ops = check(&policy, "olga", 1006, &[("ops", 3000), ("web", 2000)]);
        assert_eq!(
            ops,
            [
                "ADMINS SERVERS = (root) RESTART",
                "WEB ALL = (www-data) ALL",
                "ALL, !guest ALL = (ALL) /usr/bin/id"
            ]
        );
        assert!(check(&policy, "guest", 1007, &[]).is_empty());
        assert_eq!(
            check(&policy, "ned", 1009, &[("nt", 7000)]),
            [
                "WEB ALL = (www-data) ALL",
                "ALL, !guest ALL = (ALL) /usr/bin/id"
            ]
        );
        assert_eq!(
            check(&policy, "dan", 1008, &[("domain admins", 5000)]),
            [
                "ALL, !guest ALL = (ALL) /usr/bin/id",
                "%:\"domain admins\" ALL = (ALL) ALL"
            ]
        );
    }

    #[test]
    fn comments_and_defaults_are_ignored() {
        assert_eq!(
            strip_comment("root ALL=(ALL) ALL # note"),
            "root ALL=(ALL) ALL "
        );
        assert_eq!(strip_comment("#1000 ALL=(#0) ALL"), "#1000 ALL=(#0) ALL");
        assert_eq!(strip_comment("# comment"), "");
        assert!(is_defaults("Defaults env_reset"));
        assert!(is_defaults("Defaults:%sudo !lecture"));
        assert!(!is_defaults("DefaultsUser ALL=(ALL) ALL"));
        assert!(include_directive("#includedir /etc/sudoers.d").is_some());
        assert!(include_directive("# includedir /etc/sudoers.d").is_none());
        assert!(include_directive("#includes").is_none());
    }
}

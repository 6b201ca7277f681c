//! Linux hosts through Warrant's managed SSH key, against a real sshd and real local accounts:
//! a vaulted account's password rotated with `chpasswd`, and discovery of privileged accounts.

use warrant_core::Secret;
use warrant_testkit::{LinuxAccountFixture, SshdFixture};

use crate::harness::{DEMO_ORG, Who, World, s};

/// The demo organisation with web-1 on a throwaway sshd (admin_user root, its host key
/// pinned, Warrant's managed key authorised for root), a role `root-password` naming the
/// vaulted account `account`, which ops members may request without approval.
fn world_with_host(account: &str) -> (SshdFixture, World, Who) {
    let w = World::demo();
    let admin = w.admin();
    let ca = w.run(&admin, &["ssh", "ca"]).ok().trim().to_owned();
    let sshd = SshdFixture::start(&ca).unwrap_or_else(|e| panic!("{e}"));
    let managed = w
        .run(&admin, &["ssh", "managed-key"])
        .ok()
        .trim()
        .to_owned();
    assert!(managed.starts_with("ssh-ed25519 "), "{managed}");
    sshd.authorize_key("root", &managed).unwrap();
    let org = std::fs::read_to_string(DEMO_ORG)
        .unwrap()
        .replace(
            "    address: 127.0.0.1:2222\n",
            &format!(
                "    address: 127.0.0.1:{}\n    admin_user: root\n    host_key: \"{}\"\n",
                sshd.port(),
                sshd.host_public_key().trim()
            ),
        )
        .replace(
            "        principals: [root]\n        login: root\n",
            &format!(
                "        principals: [root]\n        login: root\n      - name: root-password\n        account: {account}\n"
            ),
        )
        .replace(
            "policies:\n",
            "  - group: ops\n    target: web-1\n    role: root-password\n    max_duration: 1h\n    require_reason: true\npolicies:\n",
        );
    let file = w.root().join("org.yaml");
    std::fs::write(&file, org).unwrap();
    w.run(&admin, &["apply", "-f", file.to_str().unwrap()]).ok();
    (sshd, w, admin)
}

fn works(account: &LinuxAccountFixture, password: &str) -> bool {
    let hash = account.shadow_field().unwrap();
    warrant_hostssh::verify_password(&hash, &Secret::new(password.to_owned())).unwrap()
}

#[test]
fn a_vaulted_linux_password_is_rotated_over_ssh() {
    let first = "first-Linux-1";
    let account = LinuxAccountFixture::create(first).unwrap();
    let (_sshd, w, admin) = world_with_host(account.name());
    // Rotated by hand only here, so that no rotation after the check-in races the test.
    w.run_stdin(
        &admin,
        &[
            "account",
            "add",
            "web-1",
            account.name(),
            "--owner",
            "ops",
            "--no-rotate-after-checkin",
            "--secret-stdin",
        ],
        &format!("{first}\n"),
    )
    .ok();
    let r = w
        .run(
            &admin,
            &["account", "rotate", "web-1", account.name(), "--json"],
        )
        .json();
    assert_eq!(s(&r, "outcome"), "rotated", "{r}\n{}", w.server.log());
    assert!(!works(&account, first), "the old password still works");

    let carol = w.login("carol");
    w.run(
        &carol,
        &[
            "request",
            "web-1",
            "root-password",
            "--for",
            "1h",
            "--reason",
            "console",
        ],
    )
    .ok();
    w.run(&carol, &["account", "checkout", "web-1", account.name()])
        .ok();
    let shown = w
        .run(
            &carol,
            &["account", "reveal", "web-1", account.name(), "--json"],
        )
        .json();
    assert!(works(&account, s(&shown, "secret")));

    // Changed outside Warrant: the rotation fails visibly and keeps what it has.
    w.run(&carol, &["account", "checkin", "web-1", account.name()])
        .ok();
    account.set_password("changed-by-hand").unwrap();
    let failed = w
        .run(&admin, &["account", "rotate", "web-1", account.name()])
        .fails();
    assert!(
        failed.contains("rotation failed at verify_current"),
        "{failed}"
    );
    assert!(works(&account, "changed-by-hand"));
    let listed = w.run(&admin, &["accounts", "--json"]).json_array();
    let a = listed.iter().find(|a| a["name"] == account.name()).unwrap();
    assert!(
        s(a, "last_error").contains("changed outside Warrant"),
        "{a}"
    );
}

#[test]
fn discovery_of_a_linux_host_reports_new_sudo_members() {
    let mut account = LinuxAccountFixture::create("pw-Discover-1").unwrap();
    let (_sshd, w, admin) = world_with_host("nobody-vaulted");
    let first = w.run(&admin, &["discover", "web-1", "--json"]).json();
    assert_eq!(first["baseline"], true, "{first}");
    let inv = first["inventory"].as_array().unwrap();
    let root = inv
        .iter()
        .find(|r| r["account"] == "root")
        .unwrap_or_else(|| panic!("{inv:?}"));
    assert!(
        root["privileges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "uid0"),
        "{root}"
    );
    assert_eq!(
        s(root, "status"),
        "managed",
        "root is Warrant's own login here: {root}"
    );
    assert_eq!(s(root, "risk"), "critical");
    let mine = inv
        .iter()
        .find(|r| r["account"] == account.name())
        .unwrap_or_else(|| panic!("{inv:?}"));
    assert_eq!(s(mine, "status"), "orphaned", "{mine}");

    // Outside Warrant: the account joins sudo.
    account.add_to_group("sudo").unwrap();
    let second = w.run(&admin, &["discover", "web-1", "--json"]).json();
    let diff = second["differences"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["account"] == account.name())
        .unwrap_or_else(|| panic!("{second}"));
    assert!(s(diff, "what").contains("group:sudo"), "{diff}");
    assert_eq!(s(diff, "risk"), "critical", "orphaned sudoer: {diff}");
}

//! warrant-hostssh against a real sshd on this machine (`warrant_testkit::SshdFixture`),
//! managing real throwaway local accounts (`LinuxAccountFixture`). Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use warrant_core::Secret;
use warrant_hostssh::ssh_key::HashAlg;
use warrant_hostssh::{
    HostSshError, HostTarget, LinuxScan, ManagedKey, ScanStep, Session, exec, scan_linux,
    set_password, verify_account_password, verify_password,
};
use warrant_testkit::{LinuxAccountFixture, SshdFixture, SudoersDropIn};

/// A real sshd that accepts Warrant's managed key for root, and the target pinning its key.
struct Host {
    sshd: SshdFixture,
    key: ManagedKey,
    root: HostTarget,
}

fn host() -> Host {
    // The fixture trusts a user CA; these tests log in with plain keys, so any key will do.
    let unused_ca = ManagedKey::generate().unwrap().public_openssh();
    let sshd = SshdFixture::start(&unused_ca).unwrap_or_else(|e| panic!("{e}"));
    let key = ManagedKey::generate().unwrap();
    sshd.authorize_key("root", &key.public_openssh()).unwrap();
    let root = target(&sshd, "root");
    Host { sshd, key, root }
}

fn target(sshd: &SshdFixture, user: &str) -> HostTarget {
    let host_key = HostTarget::parse_host_key(&sshd.host_public_key()).unwrap();
    HostTarget::new("127.0.0.1", sshd.port(), user, host_key)
}

fn secret(s: &str) -> Secret<String> {
    Secret::new(s.to_owned())
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn exec_returns_output_and_exit_status() {
    let h = host();
    let out = exec(&h.root, &h.key, "id -un; echo to-stderr >&2; exit 3", None)
        .await
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", h.sshd.log()));
    assert_eq!(out.code, Some(3));
    assert_eq!(text(&out.stdout), "root\n");
    assert_eq!(text(&out.stderr), "to-stderr\n");

    // Several commands over one connection; stdin reaches the command and is closed.
    let session = Session::connect(&h.root, &h.key).await.unwrap();
    let out = session.exec("tr a-z A-Z", Some(b"piped in")).await.unwrap();
    assert!(out.success());
    assert_eq!(text(&out.stdout), "PIPED IN");
    let out = session.exec("id -u", None).await.unwrap();
    assert_eq!(text(&out.stdout), "0\n");
    session.close().await;
    assert!(
        h.sshd.log().contains("Accepted publickey for root"),
        "{}",
        h.sshd.log()
    );
}

#[tokio::test]
async fn a_host_key_other_than_the_pinned_one_is_refused() {
    let h = host();
    let impostor = ManagedKey::generate().unwrap().public_openssh();
    let mut wrong = h.root.clone();
    wrong.host_key = HostTarget::parse_host_key(&impostor).unwrap();

    let e = exec(&wrong, &h.key, "true", None).await.unwrap_err();
    assert_eq!(e.code(), "host_key_mismatch", "{e}");
    let fingerprint = |line: &str| {
        HostTarget::parse_host_key(line)
            .unwrap()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    };
    let message = e.to_string();
    assert!(message.contains(&fingerprint(&impostor)), "{message}");
    assert!(
        message.contains(&fingerprint(&h.sshd.host_public_key())),
        "{message}"
    );
    // Refused before logging in.
    assert!(
        !h.sshd.log().contains("Accepted publickey"),
        "{}",
        h.sshd.log()
    );
}

#[tokio::test]
async fn a_key_the_host_does_not_know_is_refused() {
    let h = host();
    let stranger = ManagedKey::generate().unwrap();
    let e = exec(&h.root, &stranger, "true", None).await.unwrap_err();
    assert_eq!(e.code(), "host_auth", "{e}");
    assert!(e.to_string().contains(&stranger.fingerprint()), "{e}");
}

#[tokio::test]
async fn scan_finds_privileged_accounts_and_ways_in() {
    let h = host();
    let mut in_sudo_group = LinuxAccountFixture::create("pw-sudo-group").unwrap();
    in_sudo_group.add_to_group("sudo").unwrap();
    let in_sudoers = LinuxAccountFixture::create("pw-sudoers").unwrap();
    let rule = format!("{} ALL=(root) NOPASSWD: /usr/bin/id", in_sudoers.name());
    let _drop_in = SudoersDropIn::create(&format!("# test\n{rule}\n")).unwrap();
    let with_keys = LinuxAccountFixture::create("pw-keys").unwrap();
    let k1 = ManagedKey::generate().unwrap().public_openssh();
    let k2 = ManagedKey::generate().unwrap().public_openssh();
    with_keys
        .write_authorized_keys(&["# two keys", &k1, &k2])
        .unwrap();
    let with_password = LinuxAccountFixture::create("pw-only").unwrap();

    let mut steps = Vec::new();
    let scan = scan_linux(&h.root, &h.key, &mut |step: ScanStep| steps.push(step))
        .await
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", h.sshd.log()));
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(steps.iter().all(|s| s.total == 4));
    assert_eq!(
        steps.iter().map(|s| s.done).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(scan.host, "127.0.0.1");

    let get = |scan: &LinuxScan, name: &str| {
        scan.accounts
            .iter()
            .find(|a| a.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {scan:#?}"))
    };
    let root = get(&scan, "root");
    assert!(root.uid0 && root.privileged());
    assert!(
        root.sudoers_rules.iter().any(|r| r.starts_with("root")),
        "{root:?}"
    );

    let a = get(&scan, in_sudo_group.name());
    assert_eq!(a.admin_groups, ["sudo"]);
    assert!(
        a.sudoers_rules.iter().any(|r| r.starts_with("%sudo")),
        "Debian's %sudo rule: {a:?}"
    );
    assert!(!a.uid0 && a.password_login && a.login_shell);
    assert_eq!(a.uid, in_sudo_group.uid());

    let b = get(&scan, in_sudoers.name());
    assert_eq!(b.sudoers_rules, [rule]);
    assert!(b.admin_groups.is_empty());

    let c = get(&scan, with_keys.name());
    assert_eq!(c.authorized_keys, 2);
    assert!(!c.privileged());

    let d = get(&scan, with_password.name());
    assert!(d.password_login && !d.password_empty && !d.privileged());
    assert_eq!(d.authorized_keys, 0);
    assert_eq!(d.home, with_password.home().to_str().unwrap());

    // System accounts without a way in are left out.
    assert!(
        !scan.accounts.iter().any(|a| a.name == "daemon"),
        "{scan:#?}"
    );
}

#[tokio::test]
async fn rotation_sets_a_password_that_verifies_and_the_old_one_stops() {
    let h = host();
    let account = LinuxAccountFixture::create("old-Passw0rd").unwrap();
    let name = account.name();
    let (old, new) = (secret("old-Passw0rd"), secret("new-Passw0rd-2"));

    // The system hashed the first password (yescrypt on Debian 12): verified here.
    let system_hash = account.shadow_field().unwrap();
    assert!(
        verify_password(&system_hash, &old).unwrap(),
        "{system_hash}"
    );
    let session = Session::connect(&h.root, &h.key).await.unwrap();
    assert!(session.verify_account_password(name, &old).await.unwrap());
    assert!(
        !session
            .verify_account_password(name, &secret("wrong"))
            .await
            .unwrap()
    );

    session.set_password(name, &new).await.unwrap();
    assert!(session.verify_account_password(name, &new).await.unwrap());
    assert!(!session.verify_account_password(name, &old).await.unwrap());
    let hash = session.password_hash(name).await.unwrap().unwrap();
    assert_eq!(hash.expose(), &account.shadow_field().unwrap());
    session.close().await;

    // An independent implementation agrees with the hash Warrant wrote.
    let field = account.shadow_field().unwrap();
    let parts: Vec<&str> = field.split('$').collect();
    assert_eq!(parts[1..3], ["6", "rounds=100000"], "{field}");
    let salt = format!("{}${}", parts[2], parts[3]);
    let out = Command::new("openssl")
        .args(["passwd", "-6", "-salt", &salt, "new-Passw0rd-2"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), field);

    // The one-connection helpers do the same.
    assert!(
        verify_account_password(&h.root, &h.key, name, &new)
            .await
            .unwrap()
    );
    let e = verify_account_password(&h.root, &h.key, "wt-nosuchuser", &new)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_account_not_found", "{e}");
}

#[tokio::test]
async fn a_sudo_admin_scans_and_rotates_through_sudo() {
    let h = host();
    let admin = LinuxAccountFixture::create("admin-pw").unwrap();
    let _rule =
        SudoersDropIn::create(&format!("{} ALL=(ALL) NOPASSWD: ALL", admin.name())).unwrap();
    h.sshd
        .authorize_key(admin.name(), &h.key.public_openssh())
        .unwrap();
    let via_sudo = target(&h.sshd, admin.name());

    let scan = scan_linux(&via_sudo, &h.key, &mut |_| {})
        .await
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", h.sshd.log()));
    assert!(scan.accounts.iter().any(|a| a.name == "root" && a.uid0));
    let me = scan
        .accounts
        .iter()
        .find(|a| a.name == admin.name())
        .unwrap();
    assert!(me.sudoers_rules[0].ends_with("NOPASSWD: ALL"), "{me:?}");

    let managed = LinuxAccountFixture::create("managed-old").unwrap();
    set_password(&via_sudo, &h.key, managed.name(), &secret("managed-new"))
        .await
        .unwrap();
    assert!(
        verify_account_password(&via_sudo, &h.key, managed.name(), &secret("managed-new"))
            .await
            .unwrap()
    );

    // Without a sudo rule, sudo -n refuses rather than asking for a password.
    let plain = LinuxAccountFixture::create("plain-pw").unwrap();
    h.sshd
        .authorize_key(plain.name(), &h.key.public_openssh())
        .unwrap();
    let e = scan_linux(&target(&h.sshd, plain.name()), &h.key, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), "host_sudo", "{e}");
}

/// A password planted in every call that can fail must not appear in any error (Display or
/// Debug) nor in sshd's log.
#[tokio::test]
async fn no_secret_in_errors_or_the_sshd_log() {
    const CANARY: &str = "canary-9c41e7-Pa55";
    let h = host();
    let account = LinuxAccountFixture::create(CANARY).unwrap();
    let canary = secret(CANARY);
    let mut errors: Vec<HostSshError> = Vec::new();

    // Successful calls with the canary first: they log too.
    assert!(
        verify_account_password(&h.root, &h.key, account.name(), &canary)
            .await
            .unwrap()
    );
    set_password(&h.root, &h.key, account.name(), &canary)
        .await
        .unwrap();

    errors.push(
        set_password(&h.root, &h.key, "wt-nosuchuser", &canary)
            .await
            .unwrap_err(),
    );
    errors.push(
        set_password(&h.root, &h.key, "bad;name", &canary)
            .await
            .unwrap_err(),
    );
    errors.push(
        verify_account_password(&h.root, &h.key, "wt-nosuchuser", &canary)
            .await
            .unwrap_err(),
    );
    let mut wrong_host = h.root.clone();
    wrong_host.host_key =
        HostTarget::parse_host_key(&ManagedKey::generate().unwrap().public_openssh()).unwrap();
    errors.push(
        set_password(&wrong_host, &h.key, account.name(), &canary)
            .await
            .unwrap_err(),
    );
    let nobody = LinuxAccountFixture::create("x").unwrap();
    h.sshd
        .authorize_key(nobody.name(), &h.key.public_openssh())
        .unwrap();
    errors.push(
        set_password(
            &target(&h.sshd, nobody.name()),
            &h.key,
            account.name(),
            &canary,
        )
        .await
        .unwrap_err(),
    );
    errors.push(verify_password("$1$abc$def", &canary).unwrap_err());
    errors.push(verify_password("$6$abc$def$ghi", &canary).unwrap_err());
    let codes: Vec<&str> = errors.iter().map(HostSshError::code).collect();
    assert_eq!(
        codes,
        [
            "host_account_not_found",
            "host_invalid_account",
            "host_account_not_found",
            "host_key_mismatch",
            "host_sudo",
            "host_unsupported_hash",
            "host_malformed_hash",
        ]
    );
    for e in &errors {
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(CANARY), "{shown}");
    }
    let log = h.sshd.log();
    assert!(log.contains("Accepted publickey"), "{log}");
    assert!(!log.contains(CANARY), "{log}");
}

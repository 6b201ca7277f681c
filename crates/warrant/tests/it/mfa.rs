//! `warrant mfa` and `warrant login --otp`: enrolment from the terminal, a second factor at
//! sign-in, recovery codes shown once, an admin reset.

use warrant_iam::totp::{self, Hash};

use crate::harness::{World, s};

fn code(seed: &[u8], offset: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp::code_at(
        seed,
        Hash::Sha1,
        6,
        now.checked_add_signed(offset * 30).unwrap(),
    )
    .unwrap()
}

#[test]
fn enrol_confirm_and_sign_in_with_a_code() {
    let w = World::demo();
    let alice = w.login("alice");
    let e = w.run(&alice, &["mfa", "enrol", "--json"]).json();
    assert!(
        s(&e, "uri").starts_with("otpauth://totp/Warrant:alice"),
        "{e}"
    );
    let seed = totp::seed_from_base32(s(&e, "secret")).unwrap();
    let table = w.run(&alice, &["mfa", "enrol"]);
    assert!(
        table.ok().contains("warrant mfa confirm CODE"),
        "a second enrolment replaces the first and says what is next: {table}"
    );
    let e = w.run(&alice, &["mfa", "enrol", "--json"]).json();
    let seed2 = totp::seed_from_base32(s(&e, "secret")).unwrap();
    assert_ne!(seed, seed2);
    let confirmed = w.run(&alice, &["mfa", "confirm", &code(&seed2, 0)]);
    let out = confirmed.ok();
    assert!(out.contains("Recovery codes"), "{confirmed}");
    let codes: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("  ") && l.trim().len() == 19)
        .map(str::trim)
        .collect();
    assert_eq!(codes.len(), 10, "{confirmed}");

    let status = w.run(&alice, &["mfa", "status", "--json"]).json();
    assert_eq!(status["enrolled"], serde_json::json!(true));

    let again = w.person("alice-again");
    let refused = w
        .run_stdin(
            &again,
            &["login", "--user", "alice", "--password-stdin"],
            "alice-demo-password\n",
        )
        .fails();
    assert!(refused.contains("--otp"), "the error says how: {refused}");
    let next = code(&seed2, 1);
    w.run_stdin(
        &again,
        &[
            "login",
            "--user",
            "alice",
            "--password-stdin",
            "--otp",
            &next,
        ],
        "alice-demo-password\n",
    )
    .ok();
    assert_eq!(
        s(&w.run(&again, &["whoami", "--json"]).json(), "name"),
        "alice"
    );
    // A recovery code works as a step-up, once.
    w.run(&again, &["mfa", "verify", codes[0]]).ok();
    let twice = w.run(&again, &["mfa", "verify", codes[0]]).fails();
    assert!(
        twice.contains("already used") || twice.contains("wrong"),
        "{twice}"
    );

    let admin = w.admin();
    let reset = w.run(&admin, &["mfa", "reset", "alice"]);
    assert!(reset.ok().contains("removed"), "{reset}");
    assert!(w.run(&again, &["whoami"]).fails().contains("sign in again"));
}

#[test]
fn the_vault_key_rotates_while_the_server_runs_and_secrets_still_open() {
    let mut w = World::demo();
    let alice = w.login("alice");
    let e = w.run(&alice, &["mfa", "enrol", "--json"]).json();
    let seed = totp::seed_from_base32(s(&e, "secret")).unwrap();
    // Codes one step apart, in order: the previous step's, then the current, then the next.
    w.run(&alice, &["mfa", "confirm", &code(&seed, -1)]).ok();
    let kek = w.data_dir.join("kek");
    let before = std::fs::read(&kek).unwrap();

    let admin = w.admin();
    // The SSH CA's key is sealed too.
    let ca = w.run(&admin, &["ssh", "ca"]).ok().to_owned();
    let r = w.run(&admin, &["vault", "rekey", "--json"]).json();
    assert_eq!(r["new_kek"], serde_json::json!(true), "{r}");
    assert!(
        r["rewrapped"].as_u64().unwrap() >= 2,
        "the TOTP seed and the CA: {r}"
    );
    let after = std::fs::read(&kek).unwrap();
    assert_ne!(before, after, "a new key is in force");
    assert_eq!(std::fs::read(w.data_dir.join("kek.old")).unwrap(), before);
    assert!(!w.data_dir.join("kek.next").exists());
    // The seed still opens, now under the new key...
    w.run(&alice, &["mfa", "verify", &code(&seed, 0)]).ok();
    // ...and after a restart, which loads the new key and keeps the old one beside it.
    w.restart();
    let again = w.person("alice-after");
    w.run_stdin(
        &again,
        &[
            "login",
            "--user",
            "alice",
            "--password-stdin",
            "--otp",
            &code(&seed, 1),
        ],
        "alice-demo-password\n",
    )
    .ok();
    assert_eq!(
        w.run(&admin, &["ssh", "ca"]).ok(),
        ca,
        "the same CA opens under the new key"
    );
    let audit = w
        .run(&admin, &["audit", "tail", "-n", "50", "--json"])
        .ok()
        .to_owned();
    assert!(audit.contains("vault.rekeyed"), "{audit}");
    assert!(!audit.contains(&String::from_utf8_lossy(&after).trim().to_string()));
}

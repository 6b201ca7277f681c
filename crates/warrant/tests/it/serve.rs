//! `warrant serve` itself: bootstrap once, `--demo` seeds only an empty store, refusals.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};

use crate::harness::{World, s, warrant};

#[test]
fn a_restart_keeps_the_admin_token_and_bootstraps_nothing() {
    let mut w = World::plain();
    let admin = w.admin();
    let token = fs::read_to_string(w.data_dir.join("admin.token")).expect("admin.token");
    w.server.stop();
    assert!(
        w.server.log().contains("Warrant stopped."),
        "{}",
        w.server.log()
    );
    w.restart();
    let log = w.server.log();
    assert!(
        !log.contains("First start"),
        "a second start bootstrapped again:\n{log}"
    );
    assert_eq!(
        fs::read_to_string(w.data_dir.join("admin.token")).expect("admin.token"),
        token
    );
    let me = w.run(&admin, &["whoami", "--json"]).json();
    assert_eq!(s(&me, "name"), "admin");
    assert_eq!(s(&me, "role"), "admin");
}

/// `--demo` is documented as "Seed the demo organisation (on an empty store)": restarting with
/// the same command line must not undo what an admin changed since.
#[test]
fn demo_on_restart_does_not_undo_admin_changes() {
    let mut w = World::demo();
    let admin = w.admin();
    w.run(&admin, &["group", "remove-member", "dba", "alice"])
        .ok();
    w.run(
        &admin,
        &[
            "identity",
            "update",
            "carol",
            "--email",
            "carol@new.example.com",
        ],
    )
    .ok();
    w.server.stop();
    w.restart();

    let groups = w.run(&admin, &["groups", "--json"]).json_array();
    let dba = groups
        .iter()
        .find(|g| s(g, "name") == "dba")
        .expect("group dba");
    assert_eq!(
        dba["members"],
        serde_json::json!([]),
        "restarting with --demo put alice back into dba; server log:\n{}",
        w.server.log()
    );
    let ids = w.run(&admin, &["identities", "--json"]).json_array();
    let carol = ids.iter().find(|i| s(i, "name") == "carol").expect("carol");
    assert_eq!(
        s(carol, "email"),
        "carol@new.example.com",
        "restarting with --demo reset carol's email"
    );
}

#[test]
fn serve_refuses_what_it_cannot_do() {
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let data = data.to_str().expect("utf-8");
    let who = crate::harness::Who {
        config_dir: root.path().join("config"),
        token: None,
    };
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--data-dir", data];
        args.extend_from_slice(extra);
        warrant("http://127.0.0.1:9", &who, &args, None)
    };

    // A port someone else holds.
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let msg = serve(&["--listen", &addr]).fails();
    assert!(msg.contains("choose another with --listen"), "{msg}");

    let port = warrant_testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let msg = serve(&["--listen", &listen, "--pg-listen", &addr]).fails();
    assert!(msg.contains("--pg-listen"), "{msg}");
    let msg = serve(&["--listen", &listen, "--pg-tls-cert", "/nonexistent.crt"]).fails();
    assert!(msg.contains("--pg-tls-key"), "{msg}");
    // The SSH gateway's port is taken: a clear error, nothing half-started.
    let msg = serve(&["--listen", &listen, "--ssh-listen", &addr]).fails();
    assert!(msg.contains("--ssh-listen"), "{msg}");
    let msg = serve(&["--listen", &listen, "--request-ttl", "soon"]).fails();
    assert!(msg.contains("--request-ttl"), "{msg}");
}

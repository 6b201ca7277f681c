//! The directory sources from the command line: `warrant login --oidc` against a real OpenID
//! provider (the browser replaced by the provider's headless login), and `warrant sync ldap`
//! against a real slapd, both configured through `warrant serve --config`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warrant_testkit::{OidcProviderFixture, SlapdFixture};

use crate::harness::{World, s, warrant_command};

fn write_config(w: &World, yaml: &str) -> String {
    let path = w.root().join("warrant.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[test]
fn login_with_oidc_through_the_loopback_redirect() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let idp = rt
        .block_on(OidcProviderFixture::start(json!({
            "sub": "olga-sub", "preferred_username": "olga", "email": "olga@example.com",
            "email_verified": true, "groups": ["pam-dba"]
        })))
        .unwrap_or_else(|e| panic!("{e}"));
    // The mock accepts only the exact redirect a client registered: pin the CLI's port.
    let port = warrant_testkit::free_port().to_string();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let (client_id, secret) = rt.block_on(idp.register_client(&[&redirect])).unwrap();
    // A world whose config names the provider: started in two steps because the config file
    // lives in the world's own directory.
    let mut w = World::start(&["--demo"]);
    let config = write_config(
        &w,
        &format!(
            "oidc:\n  provider: {{ issuer: \"{}\", client_id: \"{client_id}\", client_secret: \"{secret}\" }}\n  create_unknown: true\n  group_mapping: {{ pam-dba: dba }}\n  redirect_uris: [\"http://127.0.0.1/callback\"]\n",
            idp.issuer()
        ),
    );
    w.restart_with(&["--demo", "--config", &config]);

    let olga = w.person("olga");
    let out = oidc_dance(&rt, &idp, &w, &olga, &port, &[]);
    assert!(out.status.success(), "login --oidc: {out:?}");
    let me = w.run(&olga, &["whoami", "--json"]).json();
    assert_eq!(s(&me, "name"), "olga", "{me}");
    // Created at first sign-in, owned by OIDC, and in the mapped group.
    let admin = w.admin();
    let ids = w.run(&admin, &["identities", "--json"]).json_array();
    let o = ids.iter().find(|i| s(i, "name") == "olga").unwrap();
    assert_eq!(s(o, "source"), "oidc");
    let groups = w.run(&admin, &["groups", "--json"]).json_array();
    let dba = groups.iter().find(|g| s(g, "name") == "dba").unwrap();
    assert!(
        dba["members"].as_array().unwrap().contains(&json!("olga")),
        "{dba}"
    );

    // Once olga has a second factor in Warrant, the provider's word is not enough: the new
    // session can only prove it, until it does.
    let e = w.run(&olga, &["mfa", "enrol", "--json"]).json();
    let seed = warrant_iam::totp::seed_from_base32(s(&e, "secret")).unwrap();
    let confirmed = w
        .run(&olga, &["mfa", "confirm", &totp_code(&seed, 0), "--json"])
        .json();
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let out = oidc_dance(&rt, &idp, &w, &olga, &port, &[]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warrant mfa verify"),
        "{out:?}"
    );
    let refused = w.run(&olga, &["grants"]).fails();
    assert!(refused.contains("mfa_required"), "{refused}");
    w.run(&olga, &["mfa", "verify", &totp_code(&seed, 1)]).ok();
    w.run(&olga, &["grants"]).ok();
    // With --otp (here a recovery code: the next authenticator code is not due yet), the
    // sign-in finishes at once.
    let out = oidc_dance(&rt, &idp, &w, &olga, &port, &["--otp", &recovery]);
    assert!(out.status.success(), "{out:?}");
    w.run(&olga, &["grants"]).ok();
}

fn totp_code(seed: &[u8], offset: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    warrant_iam::totp::code_at(
        seed,
        warrant_iam::totp::Hash::Sha1,
        6,
        now.checked_add_signed(offset * 30).unwrap(),
    )
    .unwrap()
}

/// Runs `warrant login --oidc` and plays the browser: the provider's headless login, then the
/// redirect to the CLI's listener.
fn oidc_dance(
    rt: &tokio::runtime::Runtime,
    idp: &OidcProviderFixture,
    w: &World,
    who: &crate::harness::Who,
    port: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["login", "--oidc", "--redirect-port", port];
    args.extend_from_slice(extra);
    let mut child = warrant_command()
        .args(&args)
        .env("WARRANT_SERVER", &w.server.url)
        .env("WARRANT_CONFIG_DIR", &who.config_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI prints where the browser should go.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(u) = line.trim().strip_prefix("http") {
            url = format!("http{u}");
            break;
        }
    }
    assert!(url.contains("code_challenge="), "PKCE: {url}");
    let location = rt.block_on(idp.login(&url, "olga-sub")).unwrap();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let page = rt
        .block_on(async { reqwest::get(&location).await?.text().await })
        .unwrap();
    assert!(page.contains("Signed in to Warrant"), "{page}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stderr = rest.into_bytes();
    out
}

#[test]
fn sync_ldap_from_the_cli_with_a_dry_run_and_a_summary() {
    let ldap = SlapdFixture::start().unwrap_or_else(|e| panic!("{e}"));
    let p = ldap.people_dn().to_owned();
    let g = ldap.groups_dn().to_owned();
    let mut ldif = String::new();
    for uid in ["lena", "lars", "liv"] {
        ldif += &format!(
            "dn: uid={uid},{p}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid} Example\nsn: Example\nmail: {uid}@example.com\n\n"
        );
    }
    ldif += &format!(
        "dn: cn=Platform Team,{g}\nobjectClass: groupOfNames\ncn: Platform Team\nmember: uid=lena,{p}\nmember: uid=lars,{p}\n\n"
    );
    ldap.add_ldif(&ldif).unwrap();

    let mut w = World::start(&["--demo"]);
    let config = write_config(
        &w,
        &format!(
            "ldap:\n  connection:\n    preset: openldap\n    url: \"{}\"\n    base_dn: \"{}\"\n    bind_dn: \"{}\"\n    bind_password: \"{}\"\n  interval: 0s\n",
            ldap.ldap_url(),
            ldap.base_dn(),
            ldap.admin_dn(),
            ldap.admin_password()
        ),
    );
    w.restart_with(&["--demo", "--config", &config]);
    let admin = w.admin();

    let dry = w.run(&admin, &["sync", "ldap", "--dry-run"]);
    let out = dry.ok();
    assert!(
        out.contains("DRY RUN") && out.contains("3 created"),
        "{dry}"
    );
    let ids = w.run(&admin, &["identities", "--json"]).json_array();
    assert!(
        !ids.iter().any(|i| s(i, "name") == "lena"),
        "a dry run changes nothing"
    );

    let real = w.run(&admin, &["sync", "ldap", "--json"]).json();
    assert_eq!(real["created"], json!(3), "{real}");
    assert_eq!(real["groups_created"], json!(1), "{real}");
    let ids = w.run(&admin, &["identities", "--json"]).json_array();
    let lena = ids.iter().find(|i| s(i, "name") == "lena").unwrap();
    assert_eq!(s(lena, "source"), "ldap");
    let groups = w.run(&admin, &["groups", "--json"]).json_array();
    let team = groups
        .iter()
        .find(|g| s(g, "name") == "platform-team")
        .unwrap();
    assert_eq!(team["members"], json!(["lars", "lena"]), "{team}");

    // The source owns them: local edits are refused with what to do instead.
    let refused = w.run(&admin, &["identity", "disable", "lena"]).fails();
    assert!(refused.contains("managed by ldap"), "{refused}");

    let status = w.run(&admin, &["sync", "ldap", "--status"]);
    assert!(status.ok().contains("3 created"), "{status}");
    // A second run changes nothing.
    let again: Value = w.run(&admin, &["sync", "ldap", "--json"]).json();
    assert_eq!(again["created"], json!(0), "{again}");
    // Only admins.
    let alice = w.login("alice");
    let e = w.run(&alice, &["sync", "ldap"]).fails();
    assert!(e.contains("admin"), "{e}");
}

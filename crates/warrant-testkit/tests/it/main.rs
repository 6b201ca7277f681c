//! Integration tests of the PostgreSQL fixture against the real server binaries.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warrant_testkit::{PgFixture, free_port};

type TestResult = Result<(), Box<dyn Error>>;

/// Set in the child process of `shared_server_stops_when_the_test_process_exits`.
const CHILD_ENV: &str = "WARRANT_TESTKIT_WATCHDOG_CHILD";

/// Runs the real `psql` client against `url`, as a test outside the fixture would.
fn psql(url: &str, sql: &str) -> Result<String, Box<dyn Error>> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1)).is_ok()
}

#[test]
fn owned_fixture_serves_separate_databases_and_stops_on_drop() -> TestResult {
    let started = Instant::now();
    let pg = PgFixture::start()?;
    eprintln!("PgFixture::start took {:?} ({pg:?})", started.elapsed());

    let url = pg.url();
    assert!(
        url.starts_with("postgres://admin:")
            && url.ends_with(&format!("@127.0.0.1:{}/postgres", pg.port())),
        "{url}"
    );
    assert_eq!(psql(&url, "select 1")?, "1\n");

    let a = pg.create_database("alpha")?;
    let b = pg.create_database("beta")?;
    assert!(a.ends_with("/alpha") && b.ends_with("/beta"), "{a} {b}");
    assert_eq!(psql(&a, "select 1")?, "1\n");
    assert_eq!(psql(&b, "select 1")?, "1\n");
    assert_eq!(psql(&a, "select current_database()")?, "alpha\n");
    assert_eq!(psql(&b, "select current_database()")?, "beta\n");

    // The databases are separate: a table in one is not in the other.
    psql(&a, "create table only_in_alpha (id int)")?;
    assert_eq!(psql(&a, "select count(*) from only_in_alpha")?, "0\n");
    assert!(psql(&b, "select count(*) from only_in_alpha").is_err());

    // Creating the same database twice fails with the server's message.
    let err = pg
        .create_database("alpha")
        .err()
        .ok_or("duplicate database was created")?;
    eprintln!("duplicate database error:\n{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(pg.create_database("bad name").is_err());
    assert!(pg.create_database("").is_err());

    // A wrong password is refused (scram-sha-256 over TCP, not trust).
    let wrong = url.replacen(pg.password(), "wrong", 1);
    assert!(psql(&wrong, "select 1").is_err());

    // The unix socket sits in the temp dir.
    assert!(
        pg.socket_dir()
            .join(format!(".s.PGSQL.{}", pg.port()))
            .exists()
    );

    let port = pg.port();
    let dir = pg.dir().to_path_buf();
    assert!(accepts_connections(port));
    let stopping = Instant::now();
    drop(pg);
    eprintln!("dropping the fixture took {:?}", stopping.elapsed());
    assert!(
        !accepts_connections(port),
        "port {port} still accepts connections"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
    Ok(())
}

/// libpq's key=value connection string for the fixture's superuser, with `extra` settings
/// (`sslmode`, `sslrootcert`, `host`, …) appended.
fn conninfo(pg: &PgFixture, extra: &str) -> String {
    format!(
        "port={} dbname=postgres user={} password={} connect_timeout=10 {extra}",
        pg.port(),
        pg.user(),
        pg.password()
    )
}

#[test]
fn tls_fixture_is_verified_as_localhost_and_127_0_0_1_and_still_serves_plain_tcp() -> TestResult {
    const ENCRYPTED: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let pg = PgFixture::start_tls()?;
    eprintln!("{pg:?}");
    let ca = pg.ca_file().ok_or("a TLS fixture without a CA file")?;
    let untrusted = pg
        .untrusted_ca_file()
        .ok_or("a TLS fixture without an untrusted CA file")?;
    assert!(std::fs::read_to_string(ca)?.starts_with("-----BEGIN CERTIFICATE-----"));

    // verify-full: the chain up to the CA and the host name (DNS or IP SAN).
    for host in ["localhost", "127.0.0.1"] {
        let verified = conninfo(
            &pg,
            &format!(
                "host={host} sslmode=verify-full sslrootcert={}",
                ca.display()
            ),
        );
        assert_eq!(psql(&verified, ENCRYPTED)?, "t\n", "{host}");
    }
    // The fixture's own client and URL get TLS too (libpq's default sslmode is `prefer`).
    assert_eq!(pg.psql(&pg.url(), ENCRYPTED)?, "t\n");
    // TLS is offered, not forced.
    let plain = conninfo(&pg, "host=127.0.0.1 sslmode=disable");
    assert_eq!(psql(&plain, ENCRYPTED)?, "f\n");

    let wrong_ca = conninfo(
        &pg,
        &format!(
            "host=127.0.0.1 sslmode=verify-full sslrootcert={}",
            untrusted.display()
        ),
    );
    let err = psql(&wrong_ca, "select 1")
        .err()
        .ok_or("a server certificate from another CA was accepted")?;
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
    // A name that is not on the certificate, at the right address.
    let wrong_name = conninfo(
        &pg,
        &format!(
            "host=db.example.invalid hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={}",
            ca.display()
        ),
    );
    let err = psql(&wrong_name, "select 1")
        .err()
        .ok_or("a server certificate for another name was accepted")?;
    assert!(
        err.to_string().contains("does not match host name"),
        "{err}"
    );

    // PostgreSQL checks this too, but only when it starts: the key is the server user's alone.
    let key = std::fs::metadata(pg.dir().join("server.key"))?;
    assert_eq!(key.mode() & 0o777, 0o600);
    assert_eq!(key.uid(), std::fs::metadata(pg.dir())?.uid());

    let port = pg.port();
    let dir = pg.dir().to_path_buf();
    drop(pg);
    assert!(!accepts_connections(port));
    assert!(!dir.exists(), "{} still exists", dir.display());
    Ok(())
}

#[test]
fn shared_fixture_is_started_once_and_hands_out_fresh_databases() -> TestResult {
    let pg = PgFixture::shared()?;
    assert!(std::ptr::eq(pg, PgFixture::shared()?));
    let first = pg.fresh_database()?;
    let second = pg.fresh_database()?;
    assert_ne!(first, second);
    assert!(pg.ca_file().is_none() && pg.untrusted_ca_file().is_none());
    assert_eq!(pg.psql(&first, "select 1")?, "1\n");
    assert_eq!(psql(&second, "select 1")?, "1\n");
    Ok(())
}

/// The shared instance is never dropped: its watchdog must stop the server and remove the temp
/// dir when the test process exits. Runs this test binary again as a child that starts the
/// shared server, prints its port and dir, and exits.
#[test]
fn shared_server_stops_when_the_test_process_exits() -> TestResult {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "watchdog_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut found = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        // libtest prints `test watchdog_child ... ` on the same line first.
        if let Some((_, rest)) = line.split_once("WATCHDOG_CHILD ") {
            let (port, dir) = rest.split_once(' ').ok_or("bad child line")?;
            found = Some((port.parse::<u16>()?, std::path::PathBuf::from(dir)));
        }
    }
    let status = child.wait()?;
    assert!(status.success(), "child failed: {status}");
    let (port, dir) = found.ok_or("the child printed no port")?;

    let deadline = Instant::now() + Duration::from_secs(30);
    while (accepts_connections(port) || dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !accepts_connections(port),
        "port {port} still accepts connections"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
    Ok(())
}

/// The child half of the test above; does nothing unless started by it.
#[test]
fn watchdog_child() -> TestResult {
    if std::env::var_os(CHILD_ENV).is_none() {
        return Ok(());
    }
    let pg = PgFixture::shared()?;
    assert_eq!(pg.psql(&pg.url(), "select 1")?, "1\n");
    println!("WATCHDOG_CHILD {} {}", pg.port(), pg.dir().display());
    Ok(())
}

#[test]
fn free_port_is_bindable_on_loopback() -> TestResult {
    let port = free_port();
    assert_ne!(port, 0);
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
    assert_eq!(listener.local_addr()?.port(), port);
    Ok(())
}

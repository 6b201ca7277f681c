//! A throwaway PostgreSQL server for tests.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::certs::TestCa;
use crate::error::tail;
use crate::{FixtureError, try_free_port};

/// Where Debian installs the server binaries, one directory per major version.
const PG_ROOT: &str = "/usr/lib/postgresql";
/// Overrides the binary directory (must hold `initdb` and `pg_ctl`).
const BIN_ENV: &str = "WARRANT_TEST_PG_BIN";
const INSTALL_FIX: &str = "apt-get update && apt-get install -y --no-install-recommends postgresql";
/// The superuser `initdb` creates.
const ADMIN: &str = "admin";
/// How many times a start is retried when another process took the port first.
const START_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl -w` waits for start/stop.
const PG_CTL_TIMEOUT: &str = "60";
/// The names on the server certificate of [`PgFixture::start_tls`]: what a client may connect to
/// and verify (the server listens on 127.0.0.1 only).
const TLS_SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Stops the server and removes the temp dir once the test process is gone, however it ends
/// (normal exit, panic, `kill -9`, Ctrl-C): it blocks reading a pipe whose only writer is the
/// test process and acts on end of file. It runs in its own process group so Ctrl-C on the test
/// does not kill it before it has cleaned up. `$1` = pg_ctl, `$2` = data dir, `$3` = temp dir.
const WATCHDOG_SCRIPT: &str =
    r#"cat >/dev/null; "$1" -D "$2" -m immediate -w -t 30 stop >/dev/null 2>&1; rm -rf "$3""#;

/// A throwaway PostgreSQL server on 127.0.0.1, owned by one test or shared by a test binary.
///
/// The server runs from the highest version under `/usr/lib/postgresql/*/bin` (or the directory
/// in `$WARRANT_TEST_PG_BIN`), as the `postgres` user when the tests run as root (PostgreSQL
/// refuses root) and as the current user otherwise. Its data dir, log and unix socket live in a
/// fresh `/tmp/warrant-pg.XXXXXX` directory; it listens on a free loopback port with
/// `fsync=off` (data does not survive a crash of the machine, which no test needs). The
/// superuser is `admin` with a random password, authenticated with SCRAM-SHA-256.
///
/// Dropping an owned fixture stops the server (`pg_ctl -m fast -w stop`) and removes the temp
/// dir. Each fixture also has a watchdog process that does the same when the test process exits
/// without dropping it (the [`shared`](Self::shared) instance lives in a static and is never
/// dropped; a test process killed with `kill -9` never drops anything).
///
/// A server from [`start_tls`](Self::start_tls) also speaks TLS, with a certificate from a test
/// CA ([`ca_file`](Self::ca_file)); plain TCP connections are still accepted.
///
/// ```no_run
/// # fn main() -> Result<(), warrant_testkit::FixtureError> {
/// let pg = warrant_testkit::PgFixture::shared()?;
/// let url = pg.fresh_database()?; // postgres://admin:…@127.0.0.1:PORT/t_1
/// # let _ = url;
/// # Ok(())
/// # }
/// ```
pub struct PgFixture {
    port: u16,
    password: String,
    psql: PathBuf,
    bin_dir: PathBuf,
    next_db: AtomicU64,
    tls: Option<TlsFiles>,
    guard: Guard,
}

/// The CA files of a TLS fixture (the server's certificate and key sit next to them).
struct TlsFiles {
    ca: PathBuf,
    untrusted_ca: PathBuf,
}

impl PgFixture {
    /// Starts a new server owned by the caller; it stops when the fixture is dropped.
    ///
    /// Takes about a second (mostly `initdb`). Tests that do not need a server of their own
    /// should use [`shared`](Self::shared) and a database of their own instead.
    pub fn start() -> Result<Self, FixtureError> {
        Self::start_with(false)
    }

    /// Starts a new server owned by the caller, like [`start`](Self::start), that also speaks
    /// TLS (`ssl = on`).
    ///
    /// The server certificate is made at start: common name `localhost`, subject alternative
    /// names DNS `localhost` and IP `127.0.0.1`, for TLS server authentication, signed by a
    /// fresh test CA whose certificate is [`ca_file`](Self::ca_file) (the CA's key is never
    /// written down). A second CA that signed nothing,
    /// [`untrusted_ca_file`](Self::untrusted_ca_file), is there for tests of a wrong CA. The
    /// certificate and its key (mode 0600) sit in the temp dir, are owned by the user the server
    /// runs as and are named in `postgresql.conf` (`ssl_cert_file`, `ssl_key_file`).
    ///
    /// TLS is offered, not forced: `pg_hba.conf` keeps initdb's `host` lines, which match
    /// connections with and without TLS, so `sslmode=disable` still logs in, libpq's default
    /// `prefer` (and so [`psql`](Self::psql) and [`url`](Self::url)) gets TLS, and
    /// `sslmode=verify-full sslrootcert=<ca_file>` verifies the server as `localhost` or
    /// `127.0.0.1`. No client certificates are asked for.
    pub fn start_tls() -> Result<Self, FixtureError> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Self, FixtureError> {
        let bin_dir = find_bin_dir()?;
        let as_postgres = effective_uid() == Some(0);
        let pg_ctl = bin_dir.join("pg_ctl");

        let dir = make_temp_dir(as_postgres)?;
        let data = dir.join("data");
        // From here on the guard (and, once spawned, the watchdog) cleans up on every error.
        let mut guard = Guard {
            dir,
            data,
            pg_ctl,
            as_postgres,
            watchdog: None,
        };
        guard.watchdog = Some(spawn_watchdog(&guard)?);

        let password = random_hex(16)?;
        let pwfile = guard.dir.join("pwfile");
        write_pwfile(&pwfile, &password)?;
        initdb(&bin_dir, &guard, &pwfile)?;
        // Only initdb reads it; the hash is in the cluster now.
        let _ = fs::remove_file(&pwfile);
        let tls = if tls {
            Some(configure_tls(&guard)?)
        } else {
            None
        };

        let port = start_server(&guard)?;
        let psql = find_psql(&bin_dir);
        Ok(Self {
            port,
            password,
            psql,
            bin_dir,
            next_db: AtomicU64::new(1),
            tls,
            guard,
        })
    }

    /// The server shared by all tests of this test binary, started on first use.
    ///
    /// It is never dropped: its watchdog stops it and removes its temp dir when the test process
    /// exits. If the first start failed, every call returns that error.
    pub fn shared() -> Result<&'static PgFixture, FixtureError> {
        static SHARED: OnceLock<Result<PgFixture, FixtureError>> = OnceLock::new();
        SHARED
            .get_or_init(Self::start)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `postgres://admin:PASSWORD@127.0.0.1:PORT/postgres`: the superuser on the maintenance
    /// database.
    #[must_use]
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The superuser's URL for database `database` (not checked to exist).
    #[must_use]
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{ADMIN}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates the empty database `name` and returns its URL (superuser `admin`).
    ///
    /// `name` is 1 to 63 ASCII letters, digits, `_` or `-`; it is quoted, so case is kept.
    /// Fails if the database exists.
    pub fn create_database(&self, name: &str) -> Result<String, FixtureError> {
        let valid = (1..=63).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(FixtureError::new(format!(
                "invalid database name {name:?}: use 1 to 63 ASCII letters, digits, '_' or '-'"
            )));
        }
        self.psql(&self.url(), &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// Creates a database with a name unique on this server (`t_1`, `t_2`, …) and returns its
    /// URL: one per test, so tests sharing a server do not see each other's tables.
    pub fn fresh_database(&self) -> Result<String, FixtureError> {
        loop {
            let name = format!("t_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
            match self.create_database(&name) {
                // Someone took the name by hand with create_database: try the next one.
                Err(e) if e.detail().is_some_and(|d| d.contains("already exists")) => {}
                other => return other,
            }
        }
    }

    /// Runs `sql` with `psql` against `url` (stops at the first error) and returns what it
    /// printed: unaligned, tuples only, so `select 1` gives `"1\n"`.
    pub fn psql(&self, url: &str, sql: &str) -> Result<String, FixtureError> {
        let mut cmd = Command::new(&self.psql);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
        run(
            &mut cmd,
            "psql failed",
            &format!(
                "an SQL error is the statement's; if the server is down, see its log: {}",
                self.log_path().display()
            ),
        )
    }

    /// The TCP port the server listens on (127.0.0.1 only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name, `admin`.
    #[must_use]
    pub fn user(&self) -> &str {
        ADMIN
    }

    /// The superuser's random password (hex, safe in a URL).
    #[must_use]
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The temp dir: `data/` (the cluster), `log` (the server log) and the unix socket.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// The directory of the unix socket (`.s.PGSQL.PORT`), for `host=` in a libpq URL.
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.guard.dir
    }

    /// The server log.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.guard.dir.join("log")
    }

    /// The last `lines` lines of the server log (empty if it cannot be read).
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        fs::read_to_string(self.log_path())
            .map(|log| tail(&log, lines))
            .unwrap_or_default()
    }

    /// The directory of the server binaries in use, e.g. `/usr/lib/postgresql/15/bin`.
    #[must_use]
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The PEM file of the test CA that signed the server certificate, for a client's
    /// `sslrootcert`; `None` unless the server was started with [`start_tls`](Self::start_tls).
    #[must_use]
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// The PEM file of a second test CA that signed nothing this server presents: a client
    /// trusting only it must refuse the server. `None` unless started with
    /// [`start_tls`](Self::start_tls).
    #[must_use]
    pub fn untrusted_ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.untrusted_ca.as_path())
    }
}

impl std::fmt::Debug for PgFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFixture")
            .field("port", &self.port)
            .field("dir", &self.guard.dir)
            .field("bin_dir", &self.bin_dir)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Owns the temp dir, the server in it and the watchdog; cleans up all three on drop.
struct Guard {
    dir: PathBuf,
    data: PathBuf,
    pg_ctl: PathBuf,
    as_postgres: bool,
    watchdog: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let fast = pg_command(self.as_postgres, &self.pg_ctl)
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "-t", PG_CTL_TIMEOUT, "stop"])
                .output();
            if !fast.is_ok_and(|out| out.status.success()) {
                let _ = pg_command(self.as_postgres, &self.pg_ctl)
                    .arg("-D")
                    .arg(&self.data)
                    .args(["-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT, "stop"])
                    .output();
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            // End of file on its stdin: it finds nothing left to do, exits, and is reaped here.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// `/usr/lib/postgresql/<highest version>/bin`, or `$WARRANT_TEST_PG_BIN`.
fn find_bin_dir() -> Result<PathBuf, FixtureError> {
    let has_tools = |bin: &Path| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file();
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        let bin = PathBuf::from(bin);
        if has_tools(&bin) {
            return Ok(bin);
        }
        return Err(FixtureError::new(format!(
            "${BIN_ENV} is {}, which holds no initdb and pg_ctl",
            bin.display()
        ))
        .with_fix(format!(
            "unset {BIN_ENV} or point it at a PostgreSQL bin directory"
        )));
    }
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        FixtureError::new(format!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under {PG_ROOT}/*/bin"
        ))
        .with_fix(INSTALL_FIX)
    })
}

/// The client of the same version, else the one on `/usr/bin` (Debian's version-picking
/// wrapper), else whatever `psql` is on `PATH`.
fn find_psql(bin_dir: &Path) -> PathBuf {
    [bin_dir.join("psql"), PathBuf::from("/usr/bin/psql")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// The effective uid of this process: the owner of `/proc/self`, else `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(meta) = fs::metadata("/proc/self") {
        return Some(meta.uid());
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("runuser")
}

/// `program`, run as `postgres` via `runuser` when we are root, else as ourselves; in `/tmp`
/// (the caller's working directory may be unreadable for `postgres`), with no stdin.
fn pg_command(as_postgres: bool, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = if as_postgres {
        let mut cmd = Command::new(runuser());
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    cmd.current_dir("/tmp").stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion and returns its stdout; on failure an error with the command, the
/// tail of its stderr (and stdout) and `fix`.
fn run(cmd: &mut Command, what: &str, fix: &str) -> Result<String, FixtureError> {
    let out = cmd.output().map_err(|e| {
        FixtureError::new(format!("{what}: could not run it ({e})"))
            .with_command(cmd)
            .with_fix(fix)
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(FixtureError::new(format!("{what} ({})", out.status))
        .with_command(cmd)
        .with_detail(
            [stdout.trim_end(), stderr.trim_end()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .with_fix(fix))
}

/// `mktemp -d /tmp/warrant-pg.XXXXXX`, as the user that will run the server.
fn make_temp_dir(as_postgres: bool) -> Result<PathBuf, FixtureError> {
    let mut cmd = pg_command(as_postgres, "mktemp");
    cmd.args(["-d", "/tmp/warrant-pg.XXXXXX"]);
    let fix = if as_postgres {
        format!(
            "running as root, the server runs as the `postgres` user via runuser; the Debian \
             package creates that user: {INSTALL_FIX}"
        )
    } else {
        "/tmp must be writable".to_owned()
    };
    let out = run(&mut cmd, "could not create the PostgreSQL temp dir", &fix)?;
    let dir = PathBuf::from(out.trim());
    if !dir.is_absolute() {
        return Err(
            FixtureError::new(format!("mktemp printed {out:?}, not a directory"))
                .with_command(&cmd),
        );
    }
    Ok(dir)
}

fn spawn_watchdog(guard: &Guard) -> Result<Child, FixtureError> {
    let mut cmd = pg_command(guard.as_postgres, "sh");
    cmd.args(["-c", WATCHDOG_SCRIPT, "warrant-pg-watchdog"])
        .arg(&guard.pg_ctl)
        .arg(&guard.data)
        .arg(&guard.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().map_err(|e| {
        FixtureError::new("could not start the PostgreSQL fixture's watchdog")
            .with_command(&cmd)
            .with_detail(e.to_string())
            .with_fix("needs `sh` and, as root, `runuser` (util-linux)")
    })
}

/// A real file (initdb cannot read a `<(...)` pipe as another user). World-readable, but inside
/// the temp dir that only the server's user can enter.
fn write_pwfile(path: &Path, password: &str) -> Result<(), FixtureError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| writeln!(f, "{password}"))
        .map_err(|e| {
            FixtureError::new(format!("could not write {}", path.display()))
                .with_detail(e.to_string())
        })
}

fn initdb(bin_dir: &Path, guard: &Guard, pwfile: &Path) -> Result<(), FixtureError> {
    let mut cmd = pg_command(guard.as_postgres, bin_dir.join("initdb"));
    cmd.arg("-D")
        .arg(&guard.data)
        .args(["-U", ADMIN, "--auth=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]);
    run(
        &mut cmd,
        "initdb failed",
        "the C.UTF-8 locale comes with libc (Debian: libc-bin); PostgreSQL refuses to run as \
         root, so as root the fixture needs `runuser` and the `postgres` user",
    )?;
    Ok(())
}

/// Makes the test CAs and the server certificate, writes them to the temp dir and turns TLS on
/// in `postgresql.conf`.
fn configure_tls(guard: &Guard) -> Result<TlsFiles, FixtureError> {
    let ca = TestCa::new("Warrant test CA (PostgreSQL)")?;
    let untrusted = TestCa::new("Warrant untrusted test CA (PostgreSQL)")?;
    let server = ca.server_cert(&TLS_SERVER_NAMES)?;

    let files = TlsFiles {
        ca: guard.dir.join("ca.pem"),
        untrusted_ca: guard.dir.join("untrusted-ca.pem"),
    };
    let cert = guard.dir.join("server.crt");
    // PostgreSQL refuses to start with a key file that anyone but its owner may read.
    let key = guard.dir.join("server.key");
    write_server_file(guard, &files.ca, ca.pem(), 0o644)?;
    write_server_file(guard, &files.untrusted_ca, untrusted.pem(), 0o644)?;
    write_server_file(guard, &cert, &server.cert_pem, 0o644)?;
    write_server_file(guard, &key, &server.key_pem, 0o600)?;

    // Appended, so the settings win over initdb's and survive a `pg_ctl restart` by a test.
    let conf = guard.data.join("postgresql.conf");
    OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| {
            write!(
                f,
                "\n# warrant-testkit PgFixture::start_tls\nssl = on\n\
                 ssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                cert.display(),
                key.display()
            )
        })
        .map_err(|e| {
            FixtureError::new(format!("could not append to {}", conf.display()))
                .with_detail(e.to_string())
        })?;
    Ok(files)
}

/// Writes the new file `path` with `mode`, owned by the user the server runs as: the owner of
/// the temp dir, which that user created.
fn write_server_file(
    guard: &Guard,
    path: &Path,
    contents: &str,
    mode: u32,
) -> Result<(), FixtureError> {
    let error = |e: std::io::Error| {
        FixtureError::new(format!("could not write {}", path.display())).with_detail(e.to_string())
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(error)?;
    if guard.as_postgres {
        let owner = fs::metadata(&guard.dir).map_err(error)?;
        chown(path, Some(owner.uid()), Some(owner.gid())).map_err(error)?;
    }
    Ok(())
}

/// `pg_ctl -w start` on a free port; retried on a new port when someone took it meanwhile.
fn start_server(guard: &Guard) -> Result<u16, FixtureError> {
    let log = guard.dir.join("log");
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = try_free_port()?;
        let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let options = format!(
            "-p {port} -k '{}' -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            guard.dir.display()
        );
        let mut cmd = pg_command(guard.as_postgres, &guard.pg_ctl);
        cmd.arg("-D").arg(&guard.data).arg("-l").arg(&log).args([
            "-w",
            "-t",
            PG_CTL_TIMEOUT,
            "-o",
            &options,
            "start",
        ]);
        match run(&mut cmd, "pg_ctl start failed", "see the server log above") {
            Ok(_) => return Ok(port),
            Err(e) => {
                let server_log = read_from(&log, log_start);
                let e = FixtureError::new(e.what())
                    .with_command(&cmd)
                    .with_detail(format!(
                        "{}\n--- server log ---\n{server_log}",
                        e.detail().unwrap_or_default()
                    ))
                    .with_fix("see the server log above");
                if !server_log.contains("Address already in use") {
                    return Err(e);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| FixtureError::new("pg_ctl start was never tried")))
}

/// What was appended to `path` after byte `offset`.
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    }
    text
}

/// `2 * n` hex digits from `/dev/urandom`.
fn random_hex(n: usize) -> Result<String, FixtureError> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            FixtureError::new("could not read /dev/urandom for the password")
                .with_detail(e.to_string())
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

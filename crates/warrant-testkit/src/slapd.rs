//! A throwaway OpenLDAP server (slapd) for tests, with a test CA for StartTLS and LDAPS.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::certs::TestCa;
use crate::error::tail;
use crate::{FixtureError, try_free_port};

const INSTALL_FIX: &str = "install OpenLDAP with scripts/deps/ldap.sh (as root), or: \
     apt-get update && apt-get install -y --no-install-recommends slapd ldap-utils";
/// Where Debian keeps the schema files and the dynamically loaded backends and overlays.
const SCHEMA_DIR: &str = "/etc/ldap/schema";
const MODULE_DIR: &str = "/usr/lib/ldap";
const BASE_DN: &str = "dc=warrant,dc=test";
const ADMIN_DN: &str = "cn=admin,dc=warrant,dc=test";
const PEOPLE_DN: &str = "ou=people,dc=warrant,dc=test";
const GROUPS_DN: &str = "ou=groups,dc=warrant,dc=test";
/// The size limit for everyone but the root DN; see [`SlapdFixture`].
const SIZE_LIMIT: u32 = 100;
/// How many times a start is retried when another process took a port first.
const START_ATTEMPTS: usize = 5;
/// How long slapd may take to open its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for slapd after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops slapd and removes the temp dir once the test process is gone, however it ends: it
/// blocks reading a pipe whose only writer is the test process and acts on end of file. It runs
/// in its own process group so Ctrl-C on the test does not kill it before it has cleaned up.
/// `$1` = slapd's pid file, `$2` = temp dir.
const WATCHDOG_SCRIPT: &str = r#"cat >/dev/null
pid=$(cat "$1" 2>/dev/null)
if [ -n "$pid" ]; then
  kill "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -9 "$pid" 2>/dev/null
fi
rm -rf "$2""#;

/// A test-only imitation of a few Active Directory attributes, so that AD-shaped entries can be
/// stored in OpenLDAP. It is not Microsoft's schema: the OIDs sit under IANA's documentation
/// enterprise number (1.3.6.1.4.1.32473, RFC 5612) and the syntaxes are simplified. The classes
/// are auxiliary so they combine with `inetOrgPerson` and `groupOfNames` (which the memberof
/// overlay maintains `memberOf` for, as AD does).
const AD_IMITATION_SCHEMA: &str = "\
# TEST-ONLY imitation of Active Directory attributes for Warrant's slapd fixture.
# Not Microsoft's schema: example OIDs (1.3.6.1.4.1.32473, RFC 5612), simplified syntaxes.
attributetype ( 1.3.6.1.4.1.32473.1.1.1 NAME 'sAMAccountName'
    EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.2 NAME 'userAccountControl'
    EQUALITY integerMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.3 NAME 'objectGUID'
    EQUALITY octetStringMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{16} SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.32473.1.1.4 NAME 'objectCategory'
    EQUALITY caseIgnoreMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.1.2.1 NAME 'user' SUP top AUXILIARY
    MAY ( sAMAccountName $ userAccountControl $ objectGUID $ objectCategory ) )
objectclass ( 1.3.6.1.4.1.32473.1.2.2 NAME 'group' SUP top AUXILIARY
    MAY ( sAMAccountName $ objectGUID $ objectCategory ) )
";

/// A throwaway OpenLDAP server on 127.0.0.1, owned by one test.
///
/// It runs the Debian `slapd` in the foreground from a fresh `/tmp/warrant-slapd.XXXXXX`
/// directory (config, database, certificates, log), listening on two free loopback ports:
/// `ldap://` (StartTLS available) and `ldaps://`. The configuration: the core, cosine,
/// inetorgperson and nis schemas plus a test-only imitation of a few Active Directory attributes
/// (`sAMAccountName`, `userAccountControl`, `objectGUID`, `objectCategory`, auxiliary classes
/// `user` and `group`), one `back_mdb` database for [`base_dn`](Self::base_dn) with the
/// `memberof` overlay (`memberOf` on members of a `groupOfNames`, kept up to date on delete).
///
/// The directory starts with the base entry, [`people_dn`](Self::people_dn) and
/// [`groups_dn`](Self::groups_dn). The root DN [`admin_dn`](Self::admin_dn) has a random
/// password and no limits. Everyone else gets at most 100 entries from a search that is not
/// paged (RFC 2696; paged searches have no limit on the page or the total): a scaled-down
/// imitation of AD's limit of 1000, so tests can show that paging is needed.
///
/// The server certificate (for `127.0.0.1`, `::1` and `localhost`) is signed by a test CA
/// generated at start ([`ca_pem_path`](Self::ca_pem_path)); a second CA that signed nothing
/// ([`untrusted_ca_pem_path`](Self::untrusted_ca_pem_path)) is there for tests of a wrong CA.
///
/// Dropping the fixture stops slapd and removes the temp dir; a watchdog process does the same
/// when the test process exits without dropping it (e.g. `kill -9`).
///
/// ```no_run
/// # fn main() -> Result<(), warrant_testkit::FixtureError> {
/// let ldap = warrant_testkit::SlapdFixture::start()?;
/// ldap.add_ldif(&format!(
///     "dn: uid=alice,{}\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\nsn: A\n",
///     ldap.people_dn()
/// ))?;
/// # Ok(())
/// # }
/// ```
pub struct SlapdFixture {
    ldap_port: u16,
    ldaps_port: u16,
    admin_password: String,
    next_file: AtomicU64,
    guard: Guard,
}

impl SlapdFixture {
    /// Starts a new server owned by the caller; it stops when the fixture is dropped.
    ///
    /// Takes a fraction of a second. Fails with a message naming the packages to install when
    /// slapd or the ldap-utils clients are missing.
    pub fn start() -> Result<Self, FixtureError> {
        let tools = Tools::find()?;
        let dir = make_temp_dir()?;
        // From here on the guard (and, once spawned, the watchdog) cleans up on every error.
        let mut guard = Guard {
            dir,
            slapd: None,
            watchdog: None,
        };
        guard.watchdog = Some(spawn_watchdog(&guard.dir)?);
        fs::create_dir(guard.dir.join("db")).map_err(|e| io_error("create", &guard.dir, &e))?;

        let admin_password = random_hex(16)?;
        write_private(&guard.dir.join("admin.pw"), admin_password.as_bytes())?;
        write_certificates(&guard.dir)?;
        write_private(
            &guard.dir.join("ad-imitation.schema"),
            AD_IMITATION_SCHEMA.as_bytes(),
        )?;
        let root_hash = hash_password(&tools, &guard.dir.join("admin.pw"))?;
        write_private(
            &guard.dir.join("slapd.conf"),
            slapd_conf(&guard.dir, &root_hash).as_bytes(),
        )?;

        let (ldap_port, ldaps_port) = start_server(&tools, &mut guard)?;
        let fixture = Self {
            ldap_port,
            ldaps_port,
            admin_password,
            next_file: AtomicU64::new(1),
            guard,
        };
        fixture.add_ldif(&format!(
            "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: warrant\n\
             o: Warrant tests\n\n\
             dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups\n"
        ))?;
        Ok(fixture)
    }

    /// `ldap://127.0.0.1:PORT`: plain LDAP, with StartTLS available.
    #[must_use]
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`: LDAP over TLS from the first byte.
    #[must_use]
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The port of [`ldap_url`](Self::ldap_url).
    #[must_use]
    pub fn ldap_port(&self) -> u16 {
        self.ldap_port
    }

    /// The port of [`ldaps_url`](Self::ldaps_url).
    #[must_use]
    pub fn ldaps_port(&self) -> u16 {
        self.ldaps_port
    }

    /// The suffix of the one database, `dc=warrant,dc=test`.
    #[must_use]
    pub fn base_dn(&self) -> &str {
        BASE_DN
    }

    /// `ou=people,dc=warrant,dc=test`, created at start.
    #[must_use]
    pub fn people_dn(&self) -> &str {
        PEOPLE_DN
    }

    /// `ou=groups,dc=warrant,dc=test`, created at start.
    #[must_use]
    pub fn groups_dn(&self) -> &str {
        GROUPS_DN
    }

    /// The root DN, `cn=admin,dc=warrant,dc=test` (no size limits).
    #[must_use]
    pub fn admin_dn(&self) -> &str {
        ADMIN_DN
    }

    /// The root DN's random password (hex).
    #[must_use]
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The most entries a search that is not paged returns to anyone but the root DN (100).
    #[must_use]
    pub fn size_limit(&self) -> u32 {
        SIZE_LIMIT
    }

    /// The PEM file of the test CA that signed the server certificate.
    #[must_use]
    pub fn ca_pem_path(&self) -> PathBuf {
        self.guard.dir.join("ca.pem")
    }

    /// The PEM file of a second test CA that signed nothing this server presents: a client
    /// trusting only it must refuse the server.
    #[must_use]
    pub fn untrusted_ca_pem_path(&self) -> PathBuf {
        self.guard.dir.join("untrusted-ca.pem")
    }

    /// The temp dir: `slapd.conf`, `db/`, the certificates and `log`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// The server log (errors only).
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

    /// Adds the entries in `ldif` (`ldapadd` as the root DN); stops at the first error.
    pub fn add_ldif(&self, ldif: &str) -> Result<(), FixtureError> {
        self.ldapmodify(ldif, true)
    }

    /// Applies the change records in `ldif` (`ldapmodify` as the root DN, e.g.
    /// `changetype: modify`); stops at the first error.
    pub fn modify_ldif(&self, ldif: &str) -> Result<(), FixtureError> {
        self.ldapmodify(ldif, false)
    }

    /// Deletes the entry `dn` (`ldapdelete` as the root DN); it must have no children.
    pub fn delete(&self, dn: &str) -> Result<(), FixtureError> {
        let mut cmd = self.client("ldapdelete");
        cmd.arg(dn);
        run(&mut cmd, "ldapdelete failed", &self.client_fix())?;
        Ok(())
    }

    /// Searches the subtree under `base` as the root DN (`ldapsearch -LLL`, unwrapped) and
    /// returns the LDIF it printed. `attrs` may name operational attributes such as `memberOf`
    /// or `entryUUID`; empty means all user attributes.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<String, FixtureError> {
        let mut cmd = self.client("ldapsearch");
        cmd.args(["-LLL", "-o", "ldif-wrap=no", "-b", base, filter])
            .args(attrs);
        run(&mut cmd, "ldapsearch failed", &self.client_fix())
    }

    fn ldapmodify(&self, ldif: &str, add: bool) -> Result<(), FixtureError> {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        let file = self.guard.dir.join(format!("change-{n}.ldif"));
        write_private(&file, ldif.as_bytes())?;
        let mut cmd = self.client("ldapmodify");
        if add {
            cmd.arg("-a");
        }
        cmd.arg("-f").arg(&file);
        let what = if add {
            "ldapadd failed"
        } else {
            "ldapmodify failed"
        };
        let result = run(&mut cmd, what, &self.client_fix());
        let _ = fs::remove_file(&file);
        result.map(drop)
    }

    /// An ldap-utils client bound as the root DN over plain LDAP (password from a file, never
    /// on the command line).
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(["-x", "-o", "nettimeout=10", "-H"])
            .arg(self.ldap_url())
            .args(["-D", ADMIN_DN, "-y"])
            .arg(self.guard.dir.join("admin.pw"))
            .stdin(Stdio::null());
        cmd
    }

    fn client_fix(&self) -> String {
        format!(
            "an LDAP error (e.g. \"Invalid syntax\", \"Already exists\") is the LDIF's; if the \
             server is down, see its log: {}. The clients come with ldap-utils: {INSTALL_FIX}",
            self.log_path().display()
        )
    }
}

impl std::fmt::Debug for SlapdFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlapdFixture")
            .field("ldap_port", &self.ldap_port)
            .field("ldaps_port", &self.ldaps_port)
            .field("dir", &self.guard.dir)
            .finish_non_exhaustive()
    }
}

/// Owns the temp dir, slapd and the watchdog; cleans up all three on drop.
struct Guard {
    dir: PathBuf,
    slapd: Option<Child>,
    watchdog: Option<Child>,
}

impl Guard {
    fn stop_slapd(&mut self) {
        let Some(mut slapd) = self.slapd.take() else {
            return;
        };
        if matches!(slapd.try_wait(), Ok(None)) {
            // SIGTERM: slapd closes the database cleanly; SIGKILL only if it hangs.
            let _ = Command::new("kill")
                .arg(slapd.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(slapd.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = slapd.kill();
        }
        let _ = slapd.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_slapd();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            // End of file on its stdin: it finds nothing left to do, exits, and is reaped here.
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

/// The binaries the fixture runs.
struct Tools {
    slapd: PathBuf,
    slappasswd: PathBuf,
}

impl Tools {
    fn find() -> Result<Self, FixtureError> {
        let sbin = |name: &str| {
            ["/usr/sbin", "/usr/local/sbin", "/sbin"]
                .into_iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|p| p.is_file())
        };
        let slapd = sbin("slapd").ok_or_else(|| {
            FixtureError::new("OpenLDAP's slapd not found in /usr/sbin").with_fix(INSTALL_FIX)
        })?;
        let slappasswd = sbin("slappasswd").ok_or_else(|| {
            FixtureError::new("OpenLDAP's slappasswd not found in /usr/sbin").with_fix(INSTALL_FIX)
        })?;
        let on_path = |name: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(name).is_file())
            })
        };
        if let Some(missing) = ["ldapmodify", "ldapdelete", "ldapsearch"]
            .into_iter()
            .find(|name| !on_path(name))
        {
            return Err(FixtureError::new(format!(
                "the OpenLDAP client `{missing}` (ldap-utils) is not on PATH"
            ))
            .with_fix(INSTALL_FIX));
        }
        let modules = ["back_mdb.la", "memberof.la"];
        if let Some(missing) = modules
            .iter()
            .find(|m| !Path::new(MODULE_DIR).join(m).is_file())
        {
            return Err(FixtureError::new(format!(
                "the slapd module {MODULE_DIR}/{missing} is missing"
            ))
            .with_fix(INSTALL_FIX));
        }
        Ok(Self { slapd, slappasswd })
    }
}

/// `/tmp/warrant-slapd.XXXXXX` (random suffix), readable by us only.
fn make_temp_dir() -> Result<PathBuf, FixtureError> {
    let mut last = None;
    for _ in 0..10 {
        let dir = PathBuf::from(format!("/tmp/warrant-slapd.{}", random_hex(6)?));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_error("create", &dir, &e).with_fix("/tmp must be writable")),
        }
    }
    Err(
        FixtureError::new("could not create a fresh /tmp/warrant-slapd.* directory")
            .with_detail(last.map(|e| e.to_string()).unwrap_or_default()),
    )
}

fn spawn_watchdog(dir: &Path) -> Result<Child, FixtureError> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", WATCHDOG_SCRIPT, "warrant-slapd-watchdog"])
        .arg(dir.join("slapd.pid"))
        .arg(dir)
        .current_dir("/tmp")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn().map_err(|e| {
        FixtureError::new("could not start the slapd fixture's watchdog")
            .with_command(&cmd)
            .with_detail(e.to_string())
            .with_fix("needs `sh`")
    })
}

/// `{SSHA}` hash of the password in `pwfile`, for `rootpw`.
fn hash_password(tools: &Tools, pwfile: &Path) -> Result<String, FixtureError> {
    let mut cmd = Command::new(&tools.slappasswd);
    cmd.arg("-T").arg(pwfile).stdin(Stdio::null());
    let out = run(&mut cmd, "slappasswd failed", INSTALL_FIX)?;
    let hash = out.trim().to_owned();
    if !hash.starts_with('{') {
        return Err(
            FixtureError::new(format!("slappasswd printed {hash:?}, not a password hash"))
                .with_command(&cmd),
        );
    }
    Ok(hash)
}

fn slapd_conf(dir: &Path, root_hash: &str) -> String {
    let d = dir.display();
    format!(
        "# Throwaway slapd for Warrant's tests (warrant-testkit SlapdFixture).
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
include {SCHEMA_DIR}/nis.schema
include \"{d}/ad-imitation.schema\"

pidfile \"{d}/slapd.pid\"
argsfile \"{d}/slapd.args\"
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload memberof

TLSCACertificateFile \"{d}/ca.pem\"
TLSCertificateFile \"{d}/server.pem\"
TLSCertificateKeyFile \"{d}/server.key\"

# Like AD's size limit, scaled down: at most {SIZE_LIMIT} entries per search for everyone but
# the root DN unless the search is paged (any page size, no limit on the total).
sizelimit size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.pr=unlimited size.prtotal=unlimited

database mdb
maxsize 268435456
suffix \"{BASE_DN}\"
rootdn \"{ADMIN_DN}\"
rootpw {root_hash}
directory \"{d}/db\"
dbnosync
index objectClass eq
index uid,cn,member eq

overlay memberof
memberof-refint TRUE
"
    )
}

/// The test CA, a server certificate it signed for 127.0.0.1, ::1 and localhost, and a second,
/// unrelated CA.
fn write_certificates(dir: &Path) -> Result<(), FixtureError> {
    let ca = TestCa::new("Warrant test CA")?;
    let untrusted = TestCa::new("Warrant untrusted test CA")?;
    let server = ca.server_cert(&["127.0.0.1", "::1", "localhost"])?;

    write_private(&dir.join("ca.pem"), ca.pem().as_bytes())?;
    write_private(&dir.join("untrusted-ca.pem"), untrusted.pem().as_bytes())?;
    write_private(&dir.join("server.pem"), server.cert_pem.as_bytes())?;
    write_private(&dir.join("server.key"), server.key_pem.as_bytes())?;
    Ok(())
}

/// Starts slapd on two free ports; retried on new ports when someone took one meanwhile.
fn start_server(tools: &Tools, guard: &mut Guard) -> Result<(u16, u16), FixtureError> {
    let log_path = guard.dir.join("log");
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let ldap_port = try_free_port()?;
        let ldaps_port = loop {
            let port = try_free_port()?;
            if port != ldap_port {
                break port;
            }
        };
        let log = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| io_error("create", &log_path, &e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| io_error("open", &log_path, &e))?;
        let mut cmd = Command::new(&tools.slapd);
        // `-d none`: stay in the foreground (a child we can wait for) and log only errors.
        cmd.arg("-f")
            .arg(guard.dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/"
            ))
            .args(["-d", "none"])
            .current_dir(&guard.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd.spawn().map_err(|e| {
            FixtureError::new("could not run slapd")
                .with_command(&cmd)
                .with_detail(e.to_string())
                .with_fix(INSTALL_FIX)
        })?;
        guard.slapd = Some(child);
        match wait_until_ready(guard, &log_path, &[ldap_port, ldaps_port]) {
            Ok(()) => return Ok((ldap_port, ldaps_port)),
            Err(log) => {
                guard.stop_slapd();
                let e = FixtureError::new("slapd did not start")
                    .with_command(&cmd)
                    .with_detail(format!("--- server log ---\n{log}"))
                    .with_fix(format!(
                        "see the server log above; `slaptest -u -f {}` checks the config",
                        guard.dir.join("slapd.conf").display()
                    ));
                if !log.contains("Address already in use") {
                    return Err(e);
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| FixtureError::new("slapd was never started")))
}

/// Waits until slapd has logged that it is starting and accepts connections on `ports`; on
/// failure (it exited, or timed out) returns its log.
fn wait_until_ready(guard: &mut Guard, log_path: &Path, ports: &[u16]) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = fs::read_to_string(log_path).unwrap_or_default();
        let Some(slapd) = guard.slapd.as_mut() else {
            return Err(log);
        };
        if let Ok(Some(status)) = slapd.try_wait() {
            return Err(format!("{log}\n(slapd exited: {status})"));
        }
        let listening = || {
            ports.iter().all(|&port| {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            })
        };
        if log.contains("slapd starting") && listening() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{log}\n(not listening on ports {ports:?} after {} s)",
                START_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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

/// Writes a new file readable by us only (keys, passwords, config).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), FixtureError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| io_error("write", path, &e))
}

fn io_error(verb: &str, path: &Path, e: &std::io::Error) -> FixtureError {
    FixtureError::new(format!("could not {verb} {}", path.display())).with_detail(e.to_string())
}

/// `2 * n` hex digits from `/dev/urandom`.
fn random_hex(n: usize) -> Result<String, FixtureError> {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| FixtureError::new("could not read /dev/urandom").with_detail(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

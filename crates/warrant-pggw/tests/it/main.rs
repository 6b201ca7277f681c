//! The gateway between real PostgreSQL clients (`psql`, tokio-postgres) and a real PostgreSQL
//! (`warrant_testkit::PgFixture::shared()`). The test authority knows one person (`alice`, one
//! token) and one target (`pg`: the fixture, logged in to as a role each test creates, with a
//! database of its own that the role owns); it denies every other target. Statement logs go to
//! a temp dir of each gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use warrant_core::{Clock, Secret, SystemClock};
use warrant_pggw::{
    Authority, BoxFuture, DbLogin, Denied, EndReason, Person, PgEvent, PgGateway, PgGatewayConfig,
    PgGatewayHandle, RecordingMode, RecordingOutcome, RecordingsConfig, SessionInfo, TlsMode,
    Upstream,
};
use warrant_recording::RecordingKey;
use warrant_testkit::PgFixture;

mod control;
mod driver;
mod psql;
mod recording;
mod tls;

/// The person the authority knows, and their token.
const PERSON: &str = "alice";
const TOKEN: &str = "wdb_alice-token-0123456789";
/// The target the authority knows, the grant and the role it is for.
const TARGET: &str = "pg";
const GRANT: &str = "g-1";
const GRANT_ROLE: &str = "readwrite";
/// What the authority says to a login for any other target.
const DENIAL: &str = "no active grant of {target}: warrant request {target} --for 1h";
/// A bound on every client a test runs.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// The authority of these tests.
struct TestAuthority {
    pg_port: u16,
    /// The role logged in as on the target, its password, and the database it owns.
    account: String,
    password: String,
    database: String,
    /// The clock grant ends are computed from (the gateway's own, unless a test says).
    clock: Arc<dyn Clock>,
    /// Milliseconds from authorization to the grant's end.
    grant_millis: AtomicI64,
    recording: Mutex<RecordingMode>,
    record_values: AtomicBool,
    events: Mutex<Vec<PgEvent>>,
}

impl Authority for TestAuthority {
    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret<String>,
    ) -> BoxFuture<'a, Result<Option<Person>, String>> {
        Box::pin(async move {
            let known = user == PERSON && password.expose() == TOKEN;
            Ok(known.then(|| Person {
                identity: PERSON.to_owned(),
                second_factor: false,
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        person: &'a Person,
        login: &'a DbLogin,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            assert_eq!(person.identity, PERSON);
            if login.target != TARGET {
                return Err(Denied(DENIAL.replace("{target}", &login.target)));
            }
            Ok(Upstream {
                host: "127.0.0.1".to_owned(),
                port: self.pg_port,
                tls: TlsMode::Disable,
                database: login
                    .database
                    .clone()
                    .unwrap_or_else(|| self.database.clone()),
                user: self.account.clone(),
                password: Secret::new(self.password.clone()),
                grant_id: GRANT.to_owned(),
                role: login.role.clone().unwrap_or_else(|| GRANT_ROLE.to_owned()),
                grant_end: self
                    .clock
                    .now()
                    .plus_millis(self.grant_millis.load(Ordering::SeqCst)),
                recording: *self.recording.lock().unwrap(),
                record_values: self.record_values.load(Ordering::SeqCst),
            })
        })
    }

    fn event(&self, event: &PgEvent) {
        self.events.lock().unwrap().push(event.clone());
    }
}

impl TestAuthority {
    fn events(&self) -> Vec<PgEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to 10 s for an event matching `pred`.
    async fn wait_event(&self, what: &str, pred: impl Fn(&PgEvent) -> bool) -> PgEvent {
        for _ in 0..200 {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} event; got {:#?}", self.events());
    }

    /// Waits up to 10 s for the `n`th (from 1) session to end: its listing, why, its log.
    async fn ended(&self, n: usize) -> (SessionInfo, EndReason, RecordingOutcome) {
        for _ in 0..200 {
            let found = self
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    PgEvent::SessionEnded {
                        info,
                        reason,
                        recording,
                    } => Some((info, reason, recording)),
                    _ => None,
                })
                .nth(n - 1);
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("session {n} did not end; got {:#?}", self.events());
    }

    /// The listing the `n`th (from 1) `SessionStarted` event carried.
    async fn started(&self, n: usize) -> SessionInfo {
        for _ in 0..200 {
            let found = self
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    PgEvent::SessionStarted(info) => Some(info),
                    _ => None,
                })
                .nth(n - 1);
            if let Some(found) = found {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("session {n} did not start; got {:#?}", self.events());
    }
}

/// Role names unique in this test process (which owns the shared server).
static NEXT_ROLE: AtomicU64 = AtomicU64::new(1);

/// The shared server, or a failure that says what to install.
fn pg() -> &'static PgFixture {
    PgFixture::shared().unwrap_or_else(|e| panic!("{e}"))
}

/// A gateway in front of the shared PostgreSQL, for a role and database of its own.
struct Gw {
    pg: &'static PgFixture,
    authority: Arc<TestAuthority>,
    /// Where statement logs go (the gateway's `recordings.dir`, unless a test changed it).
    recordings: PathBuf,
    key: Arc<RecordingKey>,
    /// Owns `recordings` and whatever else a test writes.
    dir: tempfile::TempDir,
    port: u16,
    handle: PgGatewayHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gw {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A gateway on 127.0.0.1:0 with recordings in a temp dir, after `tweak` changed its
    /// settings; the authority's grants run on the settings' clock.
    async fn start_with(tweak: impl FnOnce(&mut PgGatewayConfig)) -> Self {
        let pg = pg();
        let n = NEXT_ROLE.fetch_add(1, Ordering::SeqCst);
        let account = format!("pggw_role_{n}");
        let password = format!("pw-{n}-{}", std::process::id());
        pg.psql(
            &pg.url(),
            &format!("CREATE ROLE {account} LOGIN PASSWORD '{password}'"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let url = pg.fresh_database().unwrap_or_else(|e| panic!("{e}"));
        let database = url.rsplit('/').next().unwrap().to_owned();
        pg.psql(
            &pg.url(),
            &format!("ALTER DATABASE \"{database}\" OWNER TO {account}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let dir = tempfile::tempdir().unwrap();
        let recordings = dir.path().join("recordings");
        let key = Arc::new(RecordingKey::generate().unwrap());
        let mut config = PgGatewayConfig {
            recordings: Some(RecordingsConfig {
                dir: recordings.clone(),
                key: key.clone(),
            }),
            ..PgGatewayConfig::new("127.0.0.1:0".parse().unwrap())
        };
        tweak(&mut config);
        let authority = Arc::new(TestAuthority {
            pg_port: pg.port(),
            account,
            password,
            database,
            clock: config.clock.clone(),
            grant_millis: AtomicI64::new(600_000),
            recording: Mutex::new(RecordingMode::Off),
            record_values: AtomicBool::new(false),
            events: Mutex::new(Vec::new()),
        });
        let recordings = config
            .recordings
            .as_ref()
            .map_or(recordings, |r| r.dir.clone());
        let gateway = PgGateway::bind(config, authority.clone()).await.unwrap();
        let port = gateway.local_addr().port();
        let handle = gateway.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.run(async {
            let _ = stopped.await;
        }));
        Gw {
            pg,
            authority,
            recordings,
            key,
            dir,
            port,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The role each session logs in to the target as.
    fn account(&self) -> &str {
        &self.authority.account
    }

    /// `host=127.0.0.1 port=PORT user=alice dbname=DBNAME sslmode=disable`.
    fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={PERSON} dbname={dbname} sslmode=disable",
            self.port
        )
    }

    /// `psql -X -q -tA -v ON_ERROR_STOP=1 CONNINFO ARGS…` with `token` as the password.
    fn psql_command(&self, conninfo: &str, token: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(psql_binary(self.pg));
        cmd.args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
        ])
        .args(args)
        .env("PGPASSWORD", token)
        .env("PGPASSFILE", "/dev/null")
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSSLMODE")
        .current_dir(self.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        cmd
    }

    /// Runs psql on the target `pg` with the right token, `stdin` fed to it.
    async fn psql(&self, args: &[&str], stdin: &[u8]) -> Out {
        let mut cmd = self.psql_command(&self.conninfo(TARGET), TOKEN, args);
        run(&mut cmd, stdin).await
    }

    /// tokio-postgres's settings for the gateway and `dbname`, without TLS.
    fn client_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(PERSON)
            .password(TOKEN)
            .dbname(dbname)
            .ssl_mode(SslMode::Disable)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// A tokio-postgres client through the gateway to target `pg`, and its connection's task.
    async fn connect(&self) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
        let (client, connection) = self
            .client_config(TARGET)
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting through the gateway: {e:?}"));
        (client, tokio::spawn(connection))
    }

    /// A client logged in to the fixture directly as its superuser (for checks on the target).
    async fn admin(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.pg.url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Stops the gateway and waits for `run` to return.
    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("run returns after shutdown")
            .unwrap();
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The fixture's own psql, else Debian's wrapper.
fn psql_binary(pg: &PgFixture) -> PathBuf {
    [pg.bin_dir().join("psql"), PathBuf::from("/usr/bin/psql")]
        .into_iter()
        .find(|p| p.is_file())
        .expect("psql is installed with PostgreSQL: apt-get install -y postgresql-client")
}

/// A finished client: exit code (-1 for a signal), stdout, stderr.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `stdin` written and closed; bounded by [`CLIENT_TIMEOUT`].
async fn run(cmd: &mut tokio::process::Command, stdin: &[u8]) -> Out {
    cmd.stdin(Stdio::piped());
    let child = cmd.spawn().unwrap();
    finish(child, stdin).await
}

/// Feeds `stdin` to a spawned child (with a piped stdin) and waits for it, bounded by
/// [`CLIENT_TIMEOUT`].
async fn finish(mut child: tokio::process::Child, stdin: &[u8]) -> Out {
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        drop(input);
    });
    let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
        .await
        .expect("the client finished in time")
        .unwrap();
    writer.abort();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits up to 10 s for `cond` to hold.
async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// How many backends of `account` on the target run a statement containing `text`.
async fn active_queries(admin: &Client, account: &str, text: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = $1 AND state = 'active' AND strpos(query, $2) > 0",
            &[&account, &text],
        )
        .await
        .unwrap()
        .get(0)
}

/// How many backends `account` has on the target.
async fn backends(admin: &Client, account: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
            &[&account],
        )
        .await
        .unwrap()
        .get(0)
}

/// The system clock, for grant ends.
fn now() -> warrant_core::Timestamp {
    SystemClock.now()
}

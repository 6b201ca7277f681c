//! `pggateway`: `pgbench` through the PostgreSQL gateway against `pgbench` straight to
//! PostgreSQL, on the same machine, in one run.
//!
//! Setup: a throwaway PostgreSQL (`warrant-testkit`, started here, `fsync=off` as for every test
//! cluster), a database initialised once with `pgbench -i -s SCALE`, and the gateway in process
//! (`warrant-pggw`) on a loopback port with an authority that takes one token and sends the
//! session to that database as the cluster's superuser (the engine would inject a grant's
//! temporary role; its own cost per connection is one transaction, measured elsewhere). TLS is
//! off on both legs (`sslmode=disable`; the gateway takes a token in the clear from loopback
//! only), so the comparison is the relay itself.
//!
//! Each measured run is `pgbench -n -b BUILTIN -M PROTOCOL -c C -j J -T SECONDS` as a child
//! process, for both protocols (`simple`, `prepared` = the extended protocol) and three paths:
//! direct, through the gateway with the statement log off, and with the statement log strict
//! (Warrant's default: each statement is written before the target receives it). The paths
//! take turns, their order rotated each round, and before every run the tables get what
//! `pgbench` itself does without `-n` (vacuum branches and tellers, empty the history), directly
//! and outside the timed run, so that every run starts from the same state.
//!
//! With `--pgbouncer`, pgbouncer (installed separately, session pooling) is a fourth path: what
//! another proxy costs on the same machine.
//!
//! Figures, per protocol and path: TPS (pgbench's "without initial connection time", median of
//! `--runs` with the range), the ratio of a path's median to the direct one, pgbench's average
//! latency and initial connection time, and context switches per transaction (machine-wide),
//! which is where a relay's cost shows on a small machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use warrant_core::{Clock, Secret, SystemClock};
use warrant_pggw::{
    Authority, BoxFuture, DbLogin, Denied, Person, PgEvent, PgGateway, PgGatewayConfig,
    RecordingMode, RecordingsConfig, TlsMode, Upstream,
};
use warrant_testkit::PgFixture;

use crate::Common;
use crate::cpu::Snapshot;
use crate::fixture::close_dir;
use crate::report::{Better, Figure, Report, progress};

/// Who pgbench says it is to the gateway, and its token (given as the password).
const PERSON: &str = "bench";
const TOKEN: &str = "wdb_bench-token-0123456789";
/// The target the authority knows: pgbench's `dbname` through the gateway.
const TARGET: &str = "pg-bench";
/// The database on the cluster that holds pgbench's tables.
const DATABASE: &str = "pgbench";

/// pgbench's built-in scripts (`-b`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Builtin {
    /// TPC-B-like: 3 updates, a select and an insert per transaction (pgbench's default).
    TpcbLike,
    /// One update, a select and an insert per transaction.
    SimpleUpdate,
    /// One select by primary key per transaction (PRODUCT.md's target is stated for this).
    SelectOnly,
}

impl Builtin {
    fn name(self) -> &'static str {
        match self {
            Self::TpcbLike => "tpcb-like",
            Self::SimpleUpdate => "simple-update",
            Self::SelectOnly => "select-only",
        }
    }
}

/// Options of `pggateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Seconds per pgbench run (`-T`).
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Runs per path and protocol (the median counts); the paths take turns.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Client connections (`-c`).
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// pgbench threads (`-j`).
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Scale factor of `pgbench -i`.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// pgbench's built-in script.
    #[arg(long, value_enum, default_value_t = Builtin::TpcbLike)]
    builtin: Builtin,
    /// Seconds of an unmeasured direct run first (warms the caches); 0 for none.
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    /// Also measure pgbouncer (installed separately; session pooling, logs nothing) as a
    /// fourth path: what another proxy costs on the same machine.
    #[arg(long)]
    pgbouncer: bool,
    /// TLS on both legs, as PRODUCT.md's target states it: the cluster with a certificate,
    /// pgbench with `sslmode=require` to it and to the gateway (a self-signed certificate), the
    /// gateway verifying the cluster against its CA.
    #[arg(long)]
    tls: bool,
}

/// The authority of the bench: one person, one token, one target; every session on the
/// cluster's superuser, logged as `recording` says.
struct BenchAuthority {
    pg_port: u16,
    tls: TlsMode,
    user: String,
    password: String,
    recording: Mutex<RecordingMode>,
    started: AtomicU64,
    ended: AtomicU64,
    signed: AtomicU64,
    /// The first refusal, or a statement log that failed.
    trouble: Mutex<Option<String>>,
}

impl BenchAuthority {
    fn set_recording(&self, mode: RecordingMode) {
        *self.recording.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    fn note_trouble(&self, what: String) {
        let mut t = self.trouble.lock().unwrap_or_else(|p| p.into_inner());
        t.get_or_insert(what);
    }

    fn trouble(&self) -> Option<String> {
        self.trouble
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Authority for BenchAuthority {
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
        _person: &'a Person,
        login: &'a DbLogin,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            if login.target != TARGET {
                return Err(Denied(format!("no grant of {}", login.target)));
            }
            Ok(Upstream {
                host: "127.0.0.1".to_owned(),
                port: self.pg_port,
                tls: self.tls.clone(),
                database: DATABASE.to_owned(),
                user: self.user.clone(),
                password: Secret::new(self.password.clone()),
                grant_id: "bench".to_owned(),
                role: "bench".to_owned(),
                grant_end: SystemClock.now().plus_secs(3600),
                recording: *self.recording.lock().unwrap_or_else(|p| p.into_inner()),
                record_values: false,
            })
        })
    }

    fn event(&self, event: &PgEvent) {
        match event {
            PgEvent::SessionStarted(_) => {
                self.started.fetch_add(1, Ordering::SeqCst);
            }
            PgEvent::SessionEnded { recording, .. } => {
                if recording.summary().is_some() {
                    self.signed.fetch_add(1, Ordering::SeqCst);
                }
                self.ended.fetch_add(1, Ordering::SeqCst);
            }
            PgEvent::Refused { reason, .. } => self.note_trouble(format!("refused: {reason}")),
            PgEvent::RecordingFailed { error, .. } => {
                self.note_trouble(format!("statement log failed: {error}"));
            }
        }
    }
}

/// One way to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route {
    Direct,
    /// Through the gateway, statement log off.
    Gateway,
    /// Through the gateway, statement log strict.
    Logged,
    /// Through pgbouncer (`--pgbouncer`).
    Pgbouncer,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Gateway => "gateway, log off",
            Self::Logged => "gateway, log strict",
            Self::Pgbouncer => "pgbouncer",
        }
    }

    /// Its part of a figure's name.
    fn key(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Gateway => "gateway",
            Self::Logged => "logged",
            Self::Pgbouncer => "pgbouncer",
        }
    }
}

/// The extended protocol or not (`-M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Protocol {
    Simple,
    Prepared,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Simple => "simple",
            Self::Prepared => "prepared",
        }
    }
}

/// What one pgbench run printed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    /// "tps = … (without initial connection time)".
    tps: f64,
    /// "latency average = … ms".
    latency_ms: f64,
    /// "initial connection time = … ms".
    connect_ms: f64,
    /// "number of transactions actually processed: …".
    transactions: u64,
}

/// Reads pgbench's summary.
fn parse(out: &str) -> Result<Run> {
    let after = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let number = |prefix: &str| -> Result<f64> {
        let rest = after(prefix).with_context(|| format!("no {prefix:?} in pgbench's output"))?;
        let first = rest.split_whitespace().next().unwrap_or("");
        first
            .parse::<f64>()
            .with_context(|| format!("{prefix:?} is followed by {rest:?}"))
    };
    let tps_line = out
        .lines()
        .find(|l| l.starts_with("tps = ") && l.contains("without initial connection time"))
        .context("no \"tps = … (without initial connection time)\" in pgbench's output")?;
    let tps = tps_line
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse::<f64>()
        .with_context(|| format!("cannot read {tps_line:?}"))?;
    if let Some(failed) = after("number of failed transactions:") {
        ensure!(
            failed.starts_with("0 "),
            "pgbench had failed transactions: {failed}"
        );
    }
    Ok(Run {
        tps,
        latency_ms: number("latency average =")?,
        connect_ms: number("initial connection time =")?,
        transactions: number("number of transactions actually processed:")? as u64,
    })
}

/// The pgbench of the cluster's own installation, else Debian's wrapper.
fn pgbench_binary(pg: &PgFixture) -> Result<PathBuf> {
    [
        pg.bin_dir().join("pgbench"),
        PathBuf::from("/usr/bin/pgbench"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .context("pgbench is not installed: apt-get install -y postgresql-contrib (or postgresql)")
}

/// Where pgbench connects, and as whom.
struct Endpoint {
    port: u16,
    user: String,
    password: String,
    dbname: String,
    /// `PGSSLMODE`.
    sslmode: &'static str,
}

/// Runs pgbench with `args` against `to`; its stdout.
async fn pgbench(bin: &Path, to: &Endpoint, args: &[String], limit: Duration) -> Result<String> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &to.port.to_string(),
        "-U",
        &to.user,
    ])
    .args(args)
    .arg(&to.dbname)
    .env("PGPASSWORD", &to.password)
    .env("PGSSLMODE", to.sslmode)
    .env("PGPASSFILE", "/dev/null")
    .env("PGCONNECT_TIMEOUT", "10")
    .env_remove("PGSERVICE")
    .env_remove("PGOPTIONS")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .context("pgbench did not finish in time")?
        .context("running pgbench")?;
    if !out.status.success() {
        bail!(
            "pgbench failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits up to 20 s until every session the gateway started has ended (and its statement log
/// is signed), so that one run's closing does not fall into the next one.
async fn settle(authority: &BenchAuthority) -> Result<()> {
    for _ in 0..400 {
        if authority.ended.load(Ordering::SeqCst) >= authority.started.load(Ordering::SeqCst) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the gateway's sessions did not end within 20 s of pgbench's exit")
}

/// What pgbench does before a run without `-n`, done directly.
fn reset_tables(pg: &PgFixture) -> Result<()> {
    let url = pg.url_for(DATABASE);
    for sql in [
        "VACUUM pgbench_branches",
        "VACUUM pgbench_tellers",
        "TRUNCATE pgbench_history",
    ] {
        pg.psql(&url, sql).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// A pgbouncer in front of the cluster's pgbench database, stopped on drop.
struct Pgbouncer {
    child: std::process::Child,
    port: u16,
}

impl Pgbouncer {
    /// Starts pgbouncer on a free loopback port, configured in `dir`: session pooling (every
    /// pgbench connection keeps its server connection, as through the gateway), no TLS, clients
    /// trusted (only their connection time would differ), logging to `dir/pgbouncer.log`.
    async fn start(dir: &Path, pg: &PgFixture) -> Result<Self> {
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .context("pgbouncer is not installed: apt-get install -y pgbouncer")?;
        let port = warrant_testkit::try_free_port().map_err(|e| anyhow::anyhow!("{e}"))?;
        let ini = dir.join("pgbouncer.ini");
        let users = dir.join("userlist.txt");
        std::fs::write(&users, format!("\"{}\" \"\"\n", pg.user()))?;
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{DATABASE} = host=127.0.0.1 port={} dbname={DATABASE} user={} password={}\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = session\n\
                 max_client_conn = 100\ndefault_pool_size = 64\nlogfile =\npidfile =\n",
                pg.port(),
                pg.user(),
                pg.password(),
                users.display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("pgbouncer.log"))?;
        let mut cmd = std::process::Command::new(bin);
        // pgbouncer refuses to run as root; it reads its files before it changes user.
        if is_root() {
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting pgbouncer")?;
        let mut bouncer = Self { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(bouncer);
            }
            if let Some(status) = bouncer.child.try_wait()? {
                bail!(
                    "pgbouncer exited ({status}): {}",
                    std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("pgbouncer did not listen on port {port} within 5 s")
    }
}

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Context switches so far, machine-wide (`ctxt` in /proc/stat).
fn context_switches() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("ctxt "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Whether this process runs as root (from /proc/self/status).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            == Some("0")
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// A rate as printed: whole numbers from 100 up, else two decimals; rounded down.
fn rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{}", v.floor())
    } else {
        format!("{:.2}", (v * 100.0).floor() / 100.0)
    }
}

/// A latency in ms as printed: two decimals, rounded up.
fn millis(v: f64) -> String {
    format!("{:.2}", (v * 100.0).ceil() / 100.0)
}

/// The statement log's lines (one per statement, plus a marker or two per session) and bytes
/// in `dir`'s `.cast` files.
fn log_size(dir: &Path) -> (u64, u64, usize) {
    let (mut lines, mut bytes, mut files) = (0, 0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "cast")
                && let Ok(text) = std::fs::read_to_string(&p)
            {
                files += 1;
                bytes += text.len() as u64;
                lines += text.lines().filter(|l| l.contains("\"=> ")).count() as u64;
            }
        }
    }
    (lines, bytes, files)
}

#[expect(clippy::too_many_lines, reason = "one scenario, in the order it runs")]
pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(
        args.runs > 0 && args.secs > 0 && args.clients > 0 && args.threads > 0 && args.scale > 0,
        "--runs, --secs, --clients, --threads and --scale must be positive"
    );
    let protocols = [Protocol::Simple, Protocol::Prepared];
    let mut routes = vec![Route::Direct, Route::Gateway, Route::Logged];
    if args.pgbouncer {
        routes.push(Route::Pgbouncer);
    }
    let total = args.warmup_secs + (protocols.len() * routes.len() * args.runs) as u64 * args.secs;
    progress(&format!(
        "about {total} s of pgbench ({} runs of {} s per path and protocol)",
        args.runs, args.secs
    ));
    let dir = tempfile::Builder::new()
        .prefix("warrant-bench-pggw-")
        .tempdir_in(&common.data_dir)?;

    progress("starting a throwaway PostgreSQL");
    let pg = if args.tls {
        PgFixture::start_tls()
    } else {
        PgFixture::start()
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sslmode = if args.tls { "require" } else { "disable" };
    let bin = pgbench_binary(&pg)?;
    pg.create_database(DATABASE)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let direct = Endpoint {
        port: pg.port(),
        user: pg.user().to_owned(),
        password: pg.password().to_owned(),
        dbname: DATABASE.to_owned(),
        sslmode,
    };
    progress(&format!("pgbench -i -s {}", args.scale));
    pgbench(
        &bin,
        &direct,
        &[
            "-i".into(),
            "-q".into(),
            "-s".into(),
            args.scale.to_string(),
        ],
        Duration::from_secs(600),
    )
    .await?;

    let recordings = dir.path().join("recordings");
    let authority = Arc::new(BenchAuthority {
        pg_port: pg.port(),
        tls: if args.tls {
            TlsMode::Require {
                ca_file: pg.ca_file().map(Path::to_path_buf),
            }
        } else {
            TlsMode::Disable
        },
        user: pg.user().to_owned(),
        password: pg.password().to_owned(),
        recording: Mutex::new(RecordingMode::Off),
        started: AtomicU64::new(0),
        ended: AtomicU64::new(0),
        signed: AtomicU64::new(0),
        trouble: Mutex::new(None),
    });
    let config = PgGatewayConfig {
        recordings: Some(RecordingsConfig {
            dir: recordings.clone(),
            key: Arc::new(
                warrant_recording::RecordingKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
        }),
        tls: if args.tls {
            Some(self_signed_tls()?)
        } else {
            None
        },
        ..PgGatewayConfig::new("127.0.0.1:0".parse()?)
    };
    let gw = PgGateway::bind(config, authority.clone() as Arc<dyn Authority>)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let via = Endpoint {
        port: gw.local_addr().port(),
        user: PERSON.to_owned(),
        password: TOKEN.to_owned(),
        dbname: TARGET.to_owned(),
        sslmode,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gw.run(async move {
        let _ = stopped.await;
    }));

    let bouncer = if args.pgbouncer {
        progress("starting pgbouncer");
        Some(Pgbouncer::start(dir.path(), &pg).await?)
    } else {
        None
    };
    let bounced = Endpoint {
        port: bouncer.as_ref().map_or(0, |b| b.port),
        user: pg.user().to_owned(),
        password: String::new(),
        dbname: DATABASE.to_owned(),
        // pgbouncer here is set up without TLS.
        sslmode: "disable",
    };

    let limit = Duration::from_secs(args.secs + 120);
    let common_args = |protocol: Protocol, secs: u64| -> Vec<String> {
        vec![
            "-n".into(),
            "-b".into(),
            args.builtin.name().into(),
            "-M".into(),
            protocol.name().into(),
            "-c".into(),
            args.clients.to_string(),
            "-j".into(),
            args.threads.to_string(),
            "-T".into(),
            secs.to_string(),
        ]
    };
    if args.warmup_secs > 0 {
        progress(&format!("warm-up: {} s direct", args.warmup_secs));
        reset_tables(&pg)?;
        pgbench(
            &bin,
            &direct,
            &common_args(Protocol::Simple, args.warmup_secs),
            limit,
        )
        .await?;
    }

    let mut runs: HashMap<(Protocol, Route), Vec<Run>> = HashMap::new();
    let mut cpu: HashMap<(Protocol, Route), String> = HashMap::new();
    let mut switches: HashMap<(Protocol, Route), Vec<f64>> = HashMap::new();
    let mut logged_transactions = 0u64;
    for protocol in protocols {
        for round in 0..args.runs {
            let mut order = routes.clone();
            order.rotate_left(round % routes.len());
            for path in order {
                progress(&format!(
                    "{} protocol, round {}/{}: {}",
                    protocol.name(),
                    round + 1,
                    args.runs,
                    path.label()
                ));
                reset_tables(&pg)?;
                let to = match path {
                    Route::Direct => &direct,
                    Route::Pgbouncer => &bounced,
                    Route::Gateway => {
                        authority.set_recording(RecordingMode::Off);
                        &via
                    }
                    Route::Logged => {
                        authority.set_recording(RecordingMode::Strict);
                        &via
                    }
                };
                let before = Snapshot::take();
                let switched = context_switches();
                let out = pgbench(&bin, to, &common_args(protocol, args.secs), limit).await?;
                let switched = context_switches().saturating_sub(switched);
                cpu.insert((protocol, path), before.since());
                let run = parse(&out)
                    .with_context(|| format!("pgbench ({}) printed:\n{out}", path.label()))?;
                switches
                    .entry((protocol, path))
                    .or_default()
                    .push(switched as f64 / run.transactions.max(1) as f64);
                if path == Route::Logged {
                    logged_transactions += run.transactions;
                }
                settle(&authority).await?;
                if let Some(t) = authority.trouble() {
                    bail!("the gateway reported: {t}");
                }
                runs.entry((protocol, path)).or_default().push(run);
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    drop(bouncer);

    let setting = format!(
        "pgbench -n -b {} -c {} -j {} -T {} (scale {}), median of {} runs per path, paths alternating; PostgreSQL {} with fsync=off, {}",
        args.builtin.name(),
        args.clients,
        args.threads,
        args.secs,
        args.scale,
        args.runs,
        pg.bin_dir()
            .parent()
            .and_then(|p| p.file_name())
            .map_or_else(|| "?".into(), |v| v.to_string_lossy().into_owned()),
        if args.tls {
            "TLS on both legs (sslmode=require; the gateway verifies the cluster)"
        } else {
            "sslmode=disable on both legs"
        },
    );
    let mut summary = Vec::new();
    for protocol in protocols {
        let p = protocol.name();
        let get = |path: Route| runs.get(&(protocol, path)).cloned().unwrap_or_default();
        let tps = |path: Route| get(path).iter().map(|r| r.tps).collect::<Vec<_>>();
        let direct_tps = median(&tps(Route::Direct));
        let mut line = format!("{p:<8}");
        for &path in &routes {
            let all = get(path);
            let t = tps(path);
            let (lo, hi) = range(&t);
            let med = median(&t);
            let lat = median(&all.iter().map(|r| r.latency_ms).collect::<Vec<_>>());
            let conn = median(&all.iter().map(|r| r.connect_ms).collect::<Vec<_>>());
            let switched = median(switches.get(&(protocol, path)).map_or(&[], Vec::as_slice));
            let key = path.key();
            let what = match path {
                Route::Direct if protocol == Protocol::Simple => setting.clone(),
                Route::Direct => "-M prepared".to_owned(),
                Route::Gateway => "statement log off".to_owned(),
                Route::Logged => "statement log strict".to_owned(),
                Route::Pgbouncer => "pgbouncer, session pooling, no statement log".to_owned(),
            };
            let runs_text = t.iter().map(|v| rate(*v)).collect::<Vec<_>>().join(", ");
            let detail = format!(
                "{what}; runs {runs_text}; min {} max {}",
                rate(lo),
                rate(hi)
            );
            report.add(Figure::new(
                &format!("pggateway.{p}.{key}_tps"),
                med,
                "tx/s",
                Better::Higher,
                detail,
            ));
            report.add(Figure::new(
                &format!("pggateway.{p}.{key}_latency_ms"),
                lat,
                "ms",
                Better::Lower,
                "pgbench's latency average, median of the runs".into(),
            ));
            report.add(Figure::new(
                &format!("pggateway.{p}.{key}_connect_ms"),
                conn,
                "ms",
                Better::Lower,
                format!(
                    "pgbench's initial connection time ({} connections over {} threads), median of the runs",
                    args.clients, args.threads
                ),
            ));
            report.add(Figure::new(
                &format!("pggateway.{p}.{key}_switches_per_tx"),
                switched,
                "/tx",
                Better::Lower,
                "context switches per transaction, machine-wide (/proc/stat ctxt over the run), median of the runs".into(),
            ));
            line.push_str(&format!(
                " | {:<19} {:>6} tx/s [{}–{}] {} ms",
                path.label(),
                rate(med),
                rate(lo),
                rate(hi),
                millis(lat)
            ));
            if path != Route::Direct {
                // The same round's direct run against this one: how much the ratio moves.
                let pairs: Vec<f64> = t
                    .iter()
                    .zip(tps(Route::Direct))
                    .map(|(g, d)| g / d)
                    .collect();
                let (plo, phi) = range(&pairs);
                let ratio = med / direct_tps;
                report.add(Figure::new(
                    &format!("pggateway.{p}.ratio_{key}"),
                    ratio,
                    "×direct",
                    Better::Higher,
                    format!("median over median; round by round {:.3}–{:.3}", plo, phi),
                ));
                line.push_str(&format!(" ×{:.3}", (ratio * 1000.0).floor() / 1000.0));
            }
        }
        summary.push(line);
    }
    for protocol in protocols {
        for &path in &routes {
            if let Some(c) = cpu.get(&(protocol, path)) {
                report.note(format!(
                    "{} protocol, {}, last run: {c} (the other processes: pgbench, PostgreSQL, pgbouncer when used)",
                    protocol.name(),
                    path.label()
                ));
            }
        }
    }
    let (lines, bytes, files) = log_size(&recordings);
    ensure!(
        files > 0 && lines >= logged_transactions,
        "the strict runs left {lines} statements in {files} logs for {logged_transactions} transactions"
    );
    report.note(format!(
        "statement logs of the strict runs: {files} files ({} signed), {lines} statements, {:.1} MiB, for {logged_transactions} transactions ({:.2} statements and {:.0} bytes per transaction)",
        authority.signed.load(Ordering::SeqCst),
        bytes as f64 / 1024.0 / 1024.0,
        lines as f64 / logged_transactions.max(1) as f64,
        bytes as f64 / logged_transactions.max(1) as f64,
    ));
    report.note("summary, TPS median [min–max] and latency average:");
    for line in summary {
        report.note(format!("  {line}"));
    }
    drop(pg);
    close_dir(dir, common)
}

/// The gateway's TLS for `--tls`: a self-signed certificate for 127.0.0.1 (pgbench's
/// `sslmode=require` does not verify it; the handshake and encryption are what is measured).
fn self_signed_tls() -> Result<Arc<rustls::ServerConfig>> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What pgbench 15 prints.
    const OUT: &str = "pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 10452
number of failed transactions: 0 (0.000%)
latency average = 1.913 ms
initial connection time = 12.345 ms
tps = 2090.810442 (without initial connection time)
";

    #[test]
    fn reads_pgbench_summary() {
        let r = parse(OUT).unwrap();
        assert_eq!(
            r,
            Run {
                tps: 2090.810442,
                latency_ms: 1.913,
                connect_ms: 12.345,
                transactions: 10452,
            }
        );
    }

    #[test]
    fn failed_transactions_and_missing_lines_are_errors() {
        let failed = OUT.replace(
            "failed transactions: 0 (0.000%)",
            "failed transactions: 3 (0.030%)",
        );
        assert!(parse(&failed).is_err());
        let no_tps = OUT.replace("tps = ", "tx = ");
        assert!(parse(&no_tps).is_err());
    }
}

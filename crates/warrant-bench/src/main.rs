//! `warrant-bench`: the benchmark harness behind `docs/BENCHMARKS.md`.
//!
//! Each scenario builds its own throwaway SQLite store in a temporary directory (on the same
//! disk as the data directory would be), runs for a bounded time and number of operations, talks
//! only over loopback, and prints one line per figure (or a JSON report with `--json`), with the
//! target from `PRODUCT.md` and a plain verdict.
//!
//! - `check`: `POST /api/v1/check` against the real HTTP server, in process.
//! - `workflow`: request → approve → active grant, through the engine and through HTTP.
//! - `expiry`: 100,000 active grants closed by the real scheduler, with a burst of 10,000.
//! - `audit`: durable audit events per second, and chain verification speed.
//! - `auditsearch`: audit search over 10,000,000 events, by filter, first and deep pages.
//! - `leaver`: from a SCIM deactivation to every grant of the identity revoked.
//! - `roledrop`: from grant end to the temporary PostgreSQL role gone, 1,000 ending at once.
//! - `certs`: SSH certificates issued per second through `POST /api/v1/ssh/certs`.
//! - `gateway`: the SSH gateway against direct OpenSSH: bulk throughput (with and without
//!   recording) and connect + exec round trips.
//! - `pggateway`: the PostgreSQL gateway against direct PostgreSQL: `pgbench` transactions/s
//!   (simple and extended protocol, statement log off and strict) and latency, as ratios.
//!
//! Layout: [`report`] (figures, verdicts, machine facts), [`stats`] (percentiles), [`fixture`]
//! (store, engine, demo organisation), one module per scenario.

mod audit;
mod auditsearch;
mod certs;
mod check;
mod cpu;
mod expiry;
mod fixture;
mod gateway;
mod leaver;
mod load;
mod pggateway;
mod report;
mod roledrop;
mod sinks;
mod stats;
mod workflow;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::report::Report;

/// Warrant's benchmarks. Every scenario is bounded in time and count and uses loopback only.
#[derive(Debug, Parser)]
#[command(name = "warrant-bench", version)]
struct Cli {
    /// Print a JSON report instead of one line per figure.
    #[arg(long, global = true)]
    json: bool,

    /// Where to create the scenario's temporary data directory (default: the system temp
    /// directory). Put it on the disk you want to measure: the store fsyncs there.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,

    /// Keep the temporary data directory after the run (its path is printed).
    #[arg(long, global = true)]
    keep: bool,

    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// POST /api/v1/check over loopback HTTP/1.1 keep-alive against the in-process server.
    Check(check::Args),
    /// Request → approve → active grant workflows per second (engine, then HTTP).
    Workflow(workflow::Args),
    /// Expiry lag of the scheduler over many active grants, with a burst ending together.
    Expiry(expiry::Args),
    /// Durable audit events per second, and verification speed of the chain.
    Audit(audit::Args),
    /// Audit search over a large trail (10,000,000 events by default): fill time and search
    /// latency by filter.
    Auditsearch(auditsearch::Args),
    /// How fast the SIEM sinks drain a backlog (a file, syslog to a real rsyslog).
    Sinks(sinks::Args),
    /// From a SCIM deactivation to every grant of the identity revoked.
    Leaver(leaver::Args),
    /// From grant end to the temporary PostgreSQL role gone, many ending at once.
    Roledrop(roledrop::Args),
    /// SSH certificates issued per second through the HTTP API.
    Certs(certs::Args),
    /// The SSH gateway against direct OpenSSH on the same machine.
    Gateway(gateway::Args),
    /// The PostgreSQL gateway against direct PostgreSQL, with pgbench.
    Pggateway(pggateway::Args),
}

/// Options every scenario shares.
#[derive(Debug, Clone)]
pub struct Common {
    /// The parent of the temporary data directory.
    pub data_dir: PathBuf,
    /// Keep the data directory.
    pub keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let common = Common {
        data_dir: cli.data_dir.unwrap_or_else(std::env::temp_dir),
        keep: cli.keep,
    };
    // The server installs the Prometheus recorder at start; so do we, so that every metric the
    // engine records costs what it costs in production.
    warrant_api::server::metrics_handle();

    let (name, args) = match &cli.scenario {
        Scenario::Check(a) => ("check", format!("{a:?}")),
        Scenario::Workflow(a) => ("workflow", format!("{a:?}")),
        Scenario::Expiry(a) => ("expiry", format!("{a:?}")),
        Scenario::Audit(a) => ("audit", format!("{a:?}")),
        Scenario::Auditsearch(a) => ("auditsearch", format!("{a:?}")),
        Scenario::Sinks(a) => ("sinks", format!("{a:?}")),
        Scenario::Leaver(a) => ("leaver", format!("{a:?}")),
        Scenario::Roledrop(a) => ("roledrop", format!("{a:?}")),
        Scenario::Certs(a) => ("certs", format!("{a:?}")),
        Scenario::Gateway(a) => ("gateway", format!("{a:?}")),
        Scenario::Pggateway(a) => ("pggateway", format!("{a:?}")),
    };
    let mut report = Report::start(name, args, cli.json);
    let result = match cli.scenario {
        Scenario::Check(a) => check::run(&common, a, &mut report).await,
        Scenario::Workflow(a) => workflow::run(&common, a, &mut report).await,
        Scenario::Expiry(a) => expiry::run(&common, a, &mut report).await,
        Scenario::Audit(a) => audit::run(&common, a, &mut report).await,
        Scenario::Auditsearch(a) => auditsearch::run(&common, a, &mut report).await,
        Scenario::Sinks(a) => sinks::run(&common, a, &mut report).await,
        Scenario::Leaver(a) => leaver::run(&common, a, &mut report).await,
        Scenario::Roledrop(a) => roledrop::run(&common, a, &mut report).await,
        Scenario::Certs(a) => certs::run(&common, a, &mut report).await,
        Scenario::Gateway(a) => gateway::run(&common, a, &mut report).await,
        Scenario::Pggateway(a) => pggateway::run(&common, a, &mut report).await,
    };
    if let Err(e) = &result {
        report.note(format!("the scenario failed: {e:#}"));
    }
    report.finish()?;
    result
}

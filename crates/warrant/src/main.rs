//! `warrant`: the server (`warrant serve`) and the CLI that talks to it.
//!
//! - `args`: the command line (clap).
//! - `serve`: wiring of store, engine, scheduler and HTTP server; bootstrap; the demo.
//! - `cli`: every client verb, printing tables or `--json`.
//! - `config`: where `warrant login` keeps the server and token.
//! - `settings`: the server's config file (OIDC sign-in, LDAP sync, session timeouts).

mod args;
mod cli;
mod config;
mod gateway;
mod pggateway;
mod serve;
mod settings;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

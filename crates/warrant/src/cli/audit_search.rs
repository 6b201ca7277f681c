//! `warrant audit search`: the audit trail filtered by time, actor, identity, target, kind,
//! request or grant (`GET /api/v1/audit/search`), as lines or JSON lines, one page or every
//! page (`--all`, with a progress bar when standard error is a terminal).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use warrant_api::audit_search::AuditPageOut;
use warrant_api::client::enc;
use warrant_api::wire::AuditOut;

use super::Ctx;

/// Options of `warrant audit search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// From when: an RFC 3339 time (2026-12-01T00:00:00Z) or a duration ago (24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Until when (exclusive): an RFC 3339 time or a duration ago.
    #[arg(long)]
    until: Option<String>,
    /// Who acted (an identity's name; events of the server itself have none).
    #[arg(long)]
    actor: Option<String>,
    /// The identity the event is about.
    #[arg(long)]
    identity: Option<String>,
    /// The target it touched.
    #[arg(long)]
    target: Option<String>,
    /// An event kind (grant.revoked), or every kind of a family (grant.).
    #[arg(long)]
    kind: Option<String>,
    /// The request it touched (its id).
    #[arg(long = "request")]
    request: Option<String>,
    /// The grant it touched (its id).
    #[arg(long = "grant")]
    grant: Option<String>,
    /// Show at most this many records.
    #[arg(short = 'n', long, default_value_t = 50, conflicts_with = "all",
          value_parser = clap::value_parser!(u64).range(1..))]
    limit: u64,
    /// Newest first.
    #[arg(long)]
    desc: bool,
    /// Every matching record, following the pages to the end.
    #[arg(long)]
    all: bool,
    /// Records per request to the server.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    page_size: u64,
    /// Only records after this one (a seq; what a cut-off search prints to continue).
    #[arg(long)]
    after: Option<i64>,
    /// Only records before this one (a seq; what a cut-off --desc search prints to continue).
    #[arg(long)]
    before: Option<i64>,
}

/// `--since` / `--until`: an RFC 3339 time, or a duration ago; ms since the epoch.
fn when(flag: &str, v: &str) -> Result<i64> {
    let v = v.trim();
    if let Some(t) = warrant_core::Timestamp::parse_rfc3339(v) {
        return Ok(t.millis());
    }
    let ago = humantime::parse_duration(v).map_err(|_| {
        anyhow::anyhow!(
            "{flag} {v:?} is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration ago (24h, 7d)"
        )
    })?;
    let now = warrant_core::Clock::now(&warrant_core::SystemClock).millis();
    let ago = i64::try_from(ago.as_millis()).context("duration too long")?;
    Ok(now.saturating_sub(ago))
}

/// The query string's fixed part (everything but the page's size and position).
fn filters(a: &SearchArgs) -> Result<String> {
    let mut q: Vec<String> = Vec::new();
    if let Some(v) = &a.since {
        q.push(format!("from={}", when("--since", v)?));
    }
    if let Some(v) = &a.until {
        q.push(format!("to={}", when("--until", v)?));
    }
    for (name, v) in [
        ("actor", &a.actor),
        ("identity", &a.identity),
        ("target", &a.target),
        ("kind", &a.kind),
        ("request_id", &a.request),
        ("grant_id", &a.grant),
    ] {
        if let Some(v) = v {
            q.push(format!("{name}={}", enc(v)));
        }
    }
    q.push(format!("order={}", if a.desc { "desc" } else { "asc" }));
    Ok(q.join("&"))
}

fn line(r: &AuditOut) -> String {
    let mut data = r.data.clone();
    if let Some(o) = data.as_object_mut() {
        o.remove("type");
    }
    format!(
        "{:>8}  {:<24}  {:<28}  {:<12}  {}",
        r.seq,
        r.at,
        r.kind,
        r.actor.as_deref().unwrap_or("-"),
        data
    )
}

/// Writes a page to standard output; false when the reader went away (`| head`).
fn emit(json: bool, header: bool, records: &[AuditOut]) -> Result<bool> {
    let mut out = String::new();
    if header && !json {
        out.push_str(&format!(
            "{:>8}  {:<24}  {:<28}  {:<12}  {}\n",
            "SEQ", "AT", "KIND", "ACTOR", "DATA"
        ));
    }
    for r in records {
        if json {
            out.push_str(&serde_json::to_string(r)?);
        } else {
            out.push_str(&line(r));
        }
        out.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("writing to standard output"),
    }
}

/// `warrant audit search`.
pub(super) async fn run(ctx: &Ctx, a: SearchArgs) -> Result<()> {
    let fixed = filters(&a)?;
    let bar = if a.all && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            b.set_style(style);
        }
        b.enable_steady_tick(Duration::from_millis(120));
        b.set_message("searching the audit trail");
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut after = a.after;
    let mut before = a.before;
    let mut shown: u64 = 0;
    let mut pages: u64 = 0;
    let cut = loop {
        let want = if a.all {
            a.page_size
        } else {
            a.page_size.min(a.limit - shown)
        };
        if want == 0 {
            break None;
        }
        let mut path = format!("/api/v1/audit/search?{fixed}&limit={want}");
        if let Some(s) = after {
            path.push_str(&format!("&after={s}"));
        }
        if let Some(s) = before {
            path.push_str(&format!("&before={s}"));
        }
        let page: AuditPageOut = ctx.get(&path).await?;
        pages += 1;
        let header = pages == 1 && !page.records.is_empty();
        let open = bar.suspend(|| emit(ctx.json, header, &page.records))?;
        shown += page.records.len() as u64;
        bar.set_message(format!("{shown} records in {pages} pages"));
        if !open {
            break None;
        }
        let Some(next) = page.next else { break None };
        if a.desc {
            before = Some(next);
        } else {
            after = Some(next);
        }
        if !a.all && shown >= a.limit {
            break Some(next);
        }
    };
    bar.finish_and_clear();
    if shown == 0 && !ctx.json {
        println!("no audit record matches");
    }
    if let Some(next) = cut {
        let flag = if a.desc { "--before" } else { "--after" };
        eprintln!("more records match: continue with {flag} {next}, or show them all with --all");
    }
    Ok(())
}

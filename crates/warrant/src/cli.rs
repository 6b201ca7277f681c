//! The client verbs: each calls the REST API and prints a table, or JSON with `--json`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warrant_api::client::enc;
use warrant_api::wire::*;
use warrant_api::{Client, ClientError};

use crate::args::*;
use crate::config;

mod accounts;
pub(crate) mod audit_search;
mod sessions;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8200";

struct Ctx {
    client: Client,
    json: bool,
}

impl Ctx {
    fn out<T: Serialize>(&self, v: &T, table: impl FnOnce(&T) -> Table) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            println!("{}", table(v));
        }
        Ok(())
    }

    fn done<T: Serialize>(&self, v: &T, line: &str) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            println!("{line}");
        }
        Ok(())
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client.get(path).await.map_err(explain)
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.client.post(path, body).await.map_err(explain)
    }

    async fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.client.put(path, body).await.map_err(explain)
    }

    async fn patch<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        self.client.patch(path, body).await.map_err(explain)
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client.delete(path).await.map_err(explain)
    }
}

fn explain(e: ClientError) -> anyhow::Error {
    let hint = match e.code.as_str() {
        "unauthenticated" | "invalid_token" => {
            "\n  hint: sign in with `warrant login --user NAME --password-stdin`, or pass --token / WARRANT_TOKEN"
        }
        _ => "",
    };
    anyhow::anyhow!("{} ({}){hint}", e.message, e.code)
}

fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(headers.to_vec());
    t
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn read_stdin_secret(what: &str) -> Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let s = s.trim_end_matches(['\n', '\r']).to_owned();
    if s.is_empty() {
        bail!("the {what} on standard input is empty");
    }
    Ok(s)
}

fn requests_table(rs: &Vec<RequestOut>) -> Table {
    let mut t = table(&[
        "ID", "IDENTITY", "TARGET", "ROLE", "FOR", "STATUS", "STAGE", "REASON", "TICKET",
    ]);
    for r in rs {
        let stage = if r.stages.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "{}/{}",
                (r.current_stage as usize).min(r.stages.len()),
                r.stages.len()
            )
        };
        t.add_row(vec![
            r.id.clone(),
            r.identity.clone(),
            r.target.clone(),
            r.role.clone(),
            r.duration.clone(),
            r.status.clone(),
            stage,
            r.reason.clone(),
            opt(&r.ticket),
        ]);
    }
    t
}

fn request_detail(r: &RequestOut) -> Table {
    let mut t = table(&["FIELD", "VALUE"]);
    let stages: Vec<String> = r
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let got: Vec<&str> = r
                .approvals
                .iter()
                .filter(|a| a.stage as usize == i)
                .map(|a| a.approver.as_str())
                .collect();
            format!(
                "{}. {} × {} (approved by: {})",
                i + 1,
                s.count,
                s.from,
                if got.is_empty() {
                    "nobody yet".to_owned()
                } else {
                    got.join(", ")
                }
            )
        })
        .collect();
    for (k, v) in [
        ("id", r.id.clone()),
        ("who", r.identity.clone()),
        ("what", format!("{} on {}", r.role, r.target)),
        ("how long", r.duration.clone()),
        ("why", r.reason.clone()),
        ("ticket", opt(&r.ticket)),
        ("status", r.status.clone()),
        ("rule", r.rule.clone()),
        (
            "stages",
            if stages.is_empty() {
                "none".into()
            } else {
                stages.join("\n")
            },
        ),
        ("expires if undecided", r.expires_at.clone()),
        ("note", opt(&r.note)),
        (
            "grant",
            r.grant.as_ref().map_or("-".into(), |g| {
                format!("{} ({} until {})", g.id, g.status, g.ends_at)
            }),
        ),
    ] {
        t.add_row(vec![k.to_owned(), v]);
    }
    t
}

fn grants_table(gs: &Vec<GrantOut>) -> Table {
    let mut t = table(&[
        "ID", "IDENTITY", "TARGET", "ROLE", "STATUS", "STARTS", "ENDS",
    ]);
    for g in gs {
        t.add_row(vec![
            g.id.clone(),
            g.identity.clone(),
            g.target.clone(),
            g.role.clone(),
            g.status.clone(),
            g.starts_at.clone(),
            g.ends_at.clone(),
        ]);
    }
    t
}

/// Runs a command; the exit code is 0 on success (and for `check`, 1 when denied).
pub async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Serve(args) = cli.command {
        crate::serve::run(args).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Audit(AuditCmd::Verify {
        bundle: Some(b),
        key,
        fingerprint,
        ..
    }) = &cli.command
    {
        let trust = match (key, fingerprint) {
            (Some(k), _) => BundleTrust::Key(k),
            (None, Some(fp)) => BundleTrust::Fingerprint(parse_fingerprint(fp)?),
            (None, None) => BundleTrust::Own,
        };
        return verify_bundle(b, trust, cli.json);
    }
    if let Command::Audit(AuditCmd::Verify { store: s, .. }) = &cli.command
        && (s.data_dir.is_some() || s.database_url.is_some())
    {
        return verify_offline(s, cli.json).await;
    }
    let saved = config::load();
    let server = cli
        .server
        .clone()
        .or(saved.server.clone())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let token = cli.token.clone().or(saved.token.clone());
    let ctx = Ctx {
        client: Client::new(&server, token),
        json: cli.json,
    };
    command(&ctx, cli.command, &server).await
}

async fn verify_offline(s: &StoreArgs, json: bool) -> Result<ExitCode> {
    let store = match (&s.database_url, &s.data_dir) {
        (Some(url), _) => warrant_store::Store::open_postgres(url).await?,
        (None, Some(dir)) => {
            if !dir.join("warrant.db").exists() {
                bail!("{} holds no Warrant store (warrant.db)", dir.display());
            }
            warrant_store::Store::open_sqlite(dir).await?
        }
        (None, None) => bail!("give --data-dir or --database-url"),
    };
    let report = warrant_engine::verify_store(&store).await?;
    print_verify(&report, json)
}

/// `warrant audit verify --bundle` exit code: intact, but checked only against the key the
/// bundle names (no `--key` or `--fingerprint`). 0 is intact and the key vouched for, 1
/// broken (or signed by another key), 2 not checked at all (an error).
const EXIT_KEY_NOT_CHECKED: u8 = 3;

/// Which audit key a bundle must be signed with.
enum BundleTrust<'a> {
    /// This public key (base64), `--key`.
    Key(&'a str),
    /// The key with this fingerprint (normalised: `ab12:cd34:…`, lower case), `--fingerprint`.
    Fingerprint(String),
    /// Whatever key the bundle names: nothing vouches for it.
    Own,
}

/// `--fingerprint`: 32 hex digits, with or without the colons `warrant audit verify` shows;
/// normalised to that form.
fn parse_fingerprint(v: &str) -> Result<String> {
    let hex: String = v
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "--fingerprint {v:?} is not an audit key fingerprint: give the 32 hex digits `warrant audit verify` shows on the server (ab12:cd34:…)"
        );
    }
    Ok(hex
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":"))
}

/// `warrant audit verify --bundle FILE`: offline, nothing but the file and the key vouched for.
/// Exit 0 intact and signed by that key, 1 broken or signed by another key, 3 intact but
/// checked only against the bundle's own key ([`EXIT_KEY_NOT_CHECKED`]).
fn verify_bundle(path: &std::path::Path, trust: BundleTrust<'_>, json: bool) -> Result<ExitCode> {
    let open = || std::fs::File::open(path).map(std::io::BufReader::new);
    open().with_context(|| format!("cannot read the bundle {}", path.display()))?;
    let key = match &trust {
        BundleTrust::Key(k) => Some(*k),
        BundleTrust::Fingerprint(_) | BundleTrust::Own => None,
    };
    let report = match warrant_audit::bundle::verify_bundle(open, key) {
        Ok(r) => r,
        Err(warrant_audit::bundle::BundleError::UntrustedKey { found, trusted }) => {
            return untrusted_bundle(path, &found, &trusted, json);
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{} cannot be verified", path.display()));
        }
    };
    if let BundleTrust::Fingerprint(fp) = &trust
        && *fp != report.key_fingerprint
    {
        return untrusted_bundle(path, &report.key_fingerprint, fp, json);
    }
    let checked = !matches!(trust, BundleTrust::Own);
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["key_checked"] = checked.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(seal) = &report.seal {
            println!(
                "bundle of records {}–{} ({} records) since {}, sealed {}, key {}",
                seal.first_seq,
                seal.last_seq,
                seal.records,
                ms_rfc3339(seal.since_ms),
                ms_rfc3339(seal.at_ms),
                report.key_fingerprint
            );
        }
        print_verify(&report.chain, false)?;
        if report.chain.intact {
            if checked {
                println!("signed by the trusted audit key {}", report.key_fingerprint);
            } else {
                println!(
                    "KEY NOT CHECKED: verified with the bundle's own key {}, which nothing vouches for (anyone can seal a bundle with a key of their own); compare it with the fingerprint `warrant audit verify` shows on the server, or pass --fingerprint FP or --key BASE64 (exit code {EXIT_KEY_NOT_CHECKED} until then)",
                    report.key_fingerprint
                );
            }
        }
    }
    Ok(match (report.chain.intact, checked) {
        (false, _) => ExitCode::from(1),
        (true, true) => ExitCode::SUCCESS,
        (true, false) => ExitCode::from(EXIT_KEY_NOT_CHECKED),
    })
}

/// A bundle signed by another key than the trusted one: exit 1, saying both fingerprints.
fn untrusted_bundle(
    path: &std::path::Path,
    found: &str,
    trusted: &str,
    json: bool,
) -> Result<ExitCode> {
    let problem = format!(
        "the bundle is signed by audit key {found}, not the trusted key {trusted}: it was not sealed by that server (or the fingerprint or key given is wrong)"
    );
    if json {
        let v = json!({
            "chain": { "intact": false, "problem": problem },
            "key_fingerprint": found,
            "key_checked": true,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("bundle {} NOT TRUSTED: {problem}", path.display());
    }
    Ok(ExitCode::from(1))
}

/// An export that stopped part way: the server went away, or it found a break in the chain
/// (it never exports past one, nor seals it); say how to tell which.
fn export_cut(e: ClientError) -> anyhow::Error {
    if e.code == "download_cut" {
        anyhow::anyhow!(
            "{e}\nif the server is still up it stopped at a break in the audit chain: run `warrant audit verify` (the server's log names the record)"
        )
    } else {
        e.into()
    }
}

/// A time in ms since the epoch as RFC 3339.
fn ms_rfc3339(ms: i64) -> String {
    warrant_core::Timestamp::from_millis(ms).rfc3339()
}

/// `--since`: an RFC 3339 time, or a duration ago; ms since the epoch.
fn parse_since(v: &str) -> Result<i64> {
    if let Ok(t) =
        time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("time out of range");
    }
    let ago = humantime::parse_duration(v.trim()).map_err(|_| {
        anyhow::anyhow!(
            "--since {v:?} is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration (24h, 7d)"
        )
    })?;
    let now = warrant_core::Clock::now(&warrant_core::SystemClock).millis();
    let ago = i64::try_from(ago.as_millis()).context("duration too long")?;
    Ok(now.saturating_sub(ago))
}

fn print_verify(report: &warrant_audit::VerifyReport, json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else if report.intact {
        println!(
            "audit chain intact: {} records, head {}",
            report.records, report.head
        );
        match (report.last_checkpoint, &report.key_fingerprint) {
            (Some(last), Some(fp)) => println!(
                "{} signed checkpoints checked, the last at record {last}; audit key {fp}",
                report.checkpoints
            ),
            (None, Some(fp)) => println!("no signed checkpoint yet; audit key {fp}"),
            _ => println!("no signed checkpoint yet"),
        }
    } else {
        println!(
            "audit chain BROKEN at record {}: {}",
            report.first_broken.unwrap_or_default(),
            report.problem.clone().unwrap_or_default()
        );
    }
    Ok(if report.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn command(ctx: &Ctx, cmd: Command, server: &str) -> Result<ExitCode> {
    match cmd {
        Command::Serve(_) => return unreachable_serve(),
        Command::Login {
            user,
            oidc,
            redirect_port,
            password_stdin,
            otp,
        } => {
            let t: TokenOut = if oidc {
                let t = oidc_login(ctx, redirect_port).await?;
                if t.scope == "mfa_pending" {
                    match (&otp, &t.token) {
                        (Some(code), Some(token)) => {
                            let _: MfaVerifiedOut = ctx
                                .client
                                .with_token(Some(token.clone()))
                                .post("/api/v1/mfa/verify", &CodeIn { code: code.clone() })
                                .await
                                .map_err(explain)?;
                        }
                        _ => eprintln!(
                            "This identity has a second factor in Warrant: finish signing in with `warrant mfa verify CODE`."
                        ),
                    }
                }
                t
            } else {
                let Some(user) = user else {
                    bail!("give --user NAME (or --oidc)");
                };
                if !password_stdin {
                    bail!(
                        "pass --password-stdin and the password on standard input (passwords are never taken as arguments)"
                    );
                }
                let password = read_stdin_secret("password")?;
                ctx.client
                    .with_token(None)
                    .post(
                        "/api/v1/auth/login",
                        &LoginIn {
                            user,
                            password,
                            otp,
                        },
                    )
                    .await
                    .map_err(explain)?
            };
            let path = config::save(&config::Saved {
                server: Some(server.to_owned()),
                token: t.token.clone(),
            })?;
            let shown = TokenOut { token: None, ..t };
            ctx.done(
                &shown,
                &format!(
                    "signed in as {}; token saved in {}",
                    shown.identity,
                    path.display()
                ),
            )?;
        }
        Command::Sync(SyncCmd::Ldap {
            dry_run,
            force,
            status,
        }) => sync_ldap(ctx, dry_run, force, status).await?,
        Command::Logout => {
            let v: Value = ctx.post("/api/v1/auth/logout", &json!({})).await?;
            config::clear_token()?;
            ctx.done(&v, "signed out")?;
        }
        Command::Whoami => {
            let me: IdentityOut = ctx.get("/api/v1/me").await?;
            ctx.out(&me, |i| {
                let mut t = table(&["NAME", "ROLE", "EMAIL", "GROUPS"]);
                t.add_row(vec![
                    i.name.clone(),
                    i.role.clone(),
                    i.email.clone(),
                    i.groups.clone().unwrap_or_default().join(", "),
                ]);
                t
            })?;
        }
        Command::Identity(c) => identity(ctx, c).await?,
        Command::Identities => {
            let ids: Vec<IdentityOut> = ctx.get("/api/v1/identities").await?;
            ctx.out(&ids, |ids| {
                let mut t = table(&[
                    "NAME",
                    "DISPLAY NAME",
                    "EMAIL",
                    "STATUS",
                    "MANAGER",
                    "ROLE",
                    "SOURCE",
                ]);
                for i in ids {
                    t.add_row(vec![
                        i.name.clone(),
                        i.display_name.clone(),
                        i.email.clone(),
                        i.status.clone(),
                        opt(&i.manager),
                        i.role.clone(),
                        i.source.clone(),
                    ]);
                }
                t
            })?;
        }
        Command::Group(c) => group(ctx, c).await?,
        Command::Groups => {
            let gs: Vec<GroupOut> = ctx.get("/api/v1/groups").await?;
            ctx.out(&gs, |gs| {
                let mut t = table(&["GROUP", "DESCRIPTION", "MEMBERS"]);
                for g in gs {
                    t.add_row(vec![
                        g.name.clone(),
                        g.description.clone(),
                        g.members.join(", "),
                    ]);
                }
                t
            })?;
        }
        Command::Target(c) => target(ctx, c).await?,
        Command::Targets => {
            let ts: Vec<TargetOut> = ctx.get("/api/v1/targets").await?;
            ctx.out(&ts, |ts| {
                let mut t = table(&["TARGET", "KIND", "ADDRESS", "OWNER", "RISK", "ROLES"]);
                for x in ts {
                    let roles: Vec<String> = x.roles.iter().map(|r| r.name.clone()).collect();
                    t.add_row(vec![
                        x.name.clone(),
                        x.kind.clone(),
                        opt(&x.address),
                        x.owner.clone(),
                        x.risk_tier.to_string(),
                        roles.join(", "),
                    ]);
                }
                t
            })?;
        }
        Command::Rule(c) => rule(ctx, c).await?,
        Command::Rules => {
            let rs: Vec<RuleOut> = ctx.get("/api/v1/rules").await?;
            ctx.out(&rs, |rs| {
                let mut t = table(&["ID", "MAX", "REASON", "TICKET", "MFA", "APPROVALS"]);
                for r in rs {
                    let stages: Vec<String> = r
                        .approvals
                        .iter()
                        .map(|s| format!("{}×{}", s.count, s.from))
                        .collect();
                    t.add_row(vec![
                        r.id.clone(),
                        r.max_duration.clone(),
                        r.require_reason.to_string(),
                        opt(&r.ticket_pattern),
                        r.require_mfa.to_string(),
                        if stages.is_empty() {
                            "none".into()
                        } else {
                            stages.join(" → ")
                        },
                    ]);
                }
                t
            })?;
        }
        Command::Policy(c) => return policy(ctx, c).await,
        Command::Apply { file, dry_run } => {
            let yaml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let r: ApplyOut = ctx
                .post("/api/v1/apply", &ApplyIn { yaml, dry_run })
                .await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for c in &r.changes {
                    println!("{}{c}", if r.dry_run { "would have " } else { "" });
                }
                println!(
                    "{} change(s){}",
                    r.changes.len(),
                    if r.dry_run {
                        " (dry run: nothing written)"
                    } else {
                        ""
                    }
                );
            }
        }
        Command::Request {
            target,
            role,
            duration,
            reason,
            ticket,
            start,
        } => {
            let r: RequestOut = ctx
                .post(
                    "/api/v1/requests",
                    &RequestIn {
                        target,
                        role,
                        duration,
                        reason,
                        ticket,
                        start_at: start,
                    },
                )
                .await?;
            let line = match &r.grant {
                Some(g) => format!(
                    "request {} approved: grant {} is {} until {}",
                    r.id, g.id, g.status, g.ends_at
                ),
                None => format!(
                    "request {} is {}: waiting for {} approval stage(s)",
                    r.id,
                    r.status,
                    r.stages.len()
                ),
            };
            ctx.done(&r, &line)?;
        }
        Command::Requests { all, to_approve } => {
            let filter = if all {
                "all"
            } else if to_approve {
                "to-approve"
            } else {
                "mine"
            };
            let rs: Vec<RequestOut> = ctx
                .get(&format!("/api/v1/requests?filter={filter}"))
                .await?;
            ctx.out(&rs, requests_table)?;
        }
        Command::Show { id } => {
            let r: RequestOut = ctx.get(&format!("/api/v1/requests/{}", enc(&id))).await?;
            ctx.out(&r, request_detail)?;
        }
        Command::Approve { id } => {
            let r: RequestOut = ctx
                .post(
                    &format!("/api/v1/requests/{}/approve", enc(&id)),
                    &json!({}),
                )
                .await?;
            let line = match &r.grant {
                Some(g) => format!(
                    "approved; grant {} for {} is {} until {}",
                    g.id, r.identity, g.status, g.ends_at
                ),
                None => format!(
                    "approved stage; request {} is {} at stage {}/{}",
                    r.id,
                    r.status,
                    r.current_stage + 1,
                    r.stages.len()
                ),
            };
            ctx.done(&r, &line)?;
        }
        Command::Deny { id, reason } => {
            let r: RequestOut = ctx
                .post(
                    &format!("/api/v1/requests/{}/deny", enc(&id)),
                    &NoteIn { reason },
                )
                .await?;
            ctx.done(&r, &format!("request {} denied", r.id))?;
        }
        Command::Cancel { id } => {
            let r: RequestOut = ctx
                .post(&format!("/api/v1/requests/{}/cancel", enc(&id)), &json!({}))
                .await?;
            ctx.done(&r, &format!("request {} cancelled", r.id))?;
        }
        Command::Grants { all, active } => {
            let gs: Vec<GrantOut> = ctx
                .get(&format!("/api/v1/grants?all={all}&active={active}"))
                .await?;
            ctx.out(&gs, grants_table)?;
        }
        Command::Revoke { id, reason } => {
            let g: GrantOut = ctx
                .post(
                    &format!("/api/v1/grants/{}/revoke", enc(&id)),
                    &NoteIn { reason },
                )
                .await?;
            ctx.done(&g, &format!("grant {} revoked", g.id))?;
        }
        Command::Check {
            identity,
            target,
            role,
        } => {
            let c: CheckOut = ctx
                .post(
                    "/api/v1/check",
                    &CheckIn {
                        identity: identity.clone(),
                        target: target.clone(),
                        role: role.clone(),
                    },
                )
                .await?;
            let line = if c.allowed {
                format!(
                    "allowed: {identity} holds {role} on {target} (grant {} until {})",
                    opt(&c.grant_id),
                    opt(&c.ends_at)
                )
            } else {
                format!("denied: {identity} holds no active grant for {role} on {target}")
            };
            ctx.done(&c, &line)?;
            return Ok(if c.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Token(TokenCmd::Create {
            name,
            expires,
            scope,
        }) => {
            let t: TokenOut = ctx
                .post(
                    "/api/v1/tokens",
                    &TokenIn {
                        name,
                        expires_in: expires,
                        scope: Some(scope),
                    },
                )
                .await?;
            ctx.done(
                &t,
                &format!(
                    "{}\n(token {} — shown once; store it now)",
                    t.token.clone().unwrap_or_default(),
                    t.id
                ),
            )?;
        }
        Command::Token(TokenCmd::Revoke { id }) => {
            let v: Value = ctx.delete(&format!("/api/v1/tokens/{}", enc(&id))).await?;
            ctx.done(&v, &format!("token {id} revoked"))?;
        }
        Command::Tokens => {
            let ts: Vec<TokenOut> = ctx.get("/api/v1/tokens").await?;
            ctx.out(&ts, |ts| {
                let mut t = table(&["ID", "KIND", "LABEL", "EXPIRES", "REVOKED"]);
                for x in ts {
                    t.add_row(vec![
                        x.id.clone(),
                        x.kind.clone(),
                        x.label.clone(),
                        opt(&x.expires_at),
                        opt(&x.revoked_at),
                    ]);
                }
                t
            })?;
        }
        Command::Audit(AuditCmd::Export {
            since,
            format,
            output,
        }) => {
            let since = since.as_deref().map(parse_since).transpose()?.unwrap_or(0);
            let path = format!("/api/v1/audit/export?since_ms={since}&format={format}");
            let bytes = match &output {
                Some(file) => {
                    // Written beside the target and renamed at the end: a cut export never
                    // takes the file's name.
                    let mut part = file.clone().into_os_string();
                    part.push(".part");
                    let part = std::path::PathBuf::from(part);
                    let mut f = std::fs::File::create(&part)
                        .with_context(|| format!("cannot create {}", part.display()))?;
                    let n = ctx.client.download(&path, &mut f).await;
                    let n = match n {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = std::fs::remove_file(&part);
                            return Err(export_cut(e));
                        }
                    };
                    f.sync_all()?;
                    std::fs::rename(&part, file)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    n
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout());
                    ctx.client
                        .download(&path, &mut out)
                        .await
                        .map_err(export_cut)?
                }
            };
            if let Some(file) = output {
                eprintln!("wrote {bytes} bytes to {}", file.display());
            }
        }
        Command::Audit(AuditCmd::Verify { .. }) => {
            let r: warrant_audit::VerifyReport = ctx.get("/api/v1/audit/verify").await?;
            return print_verify(&r, ctx.json);
        }
        Command::Audit(AuditCmd::Tail { lines, follow }) => audit_tail(ctx, lines, follow).await?,
        Command::Audit(AuditCmd::Search(a)) => audit_search::run(ctx, a).await?,
        Command::Audit(AuditCmd::Prune { before }) => {
            let before_ms = parse_since(&before)?;
            let r: warrant_engine::audittrail::PruneReport = ctx
                .post(
                    "/api/v1/audit/prune",
                    &serde_json::json!({ "before_ms": before_ms }),
                )
                .await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.records == 0 {
                println!(
                    "nothing pruned: the chain starts after record {}",
                    r.up_to_seq
                );
            } else {
                println!(
                    "pruned {} records up to record {}; archive {}",
                    r.records,
                    r.up_to_seq,
                    r.archive.clone().unwrap_or_default()
                );
            }
            if let Some(why) = &r.held_back {
                eprintln!("held back: {why}");
            }
        }
        Command::Audit(AuditCmd::Sinks) => {
            let sinks: Vec<warrant_engine::sinks::SinkStatus> =
                ctx.get("/api/v1/audit/sinks").await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&sinks)?);
            } else if sinks.is_empty() {
                println!("no audit sinks configured (audit: sinks: in the server config)");
            } else {
                let mut t = table(&[
                    "SINK",
                    "KIND",
                    "DELIVERED UP TO",
                    "HEAD",
                    "LAG",
                    "ERRORS",
                    "LAST ERROR",
                    "MANDATORY",
                ]);
                for s in &sinks {
                    t.add_row(vec![
                        s.name.clone(),
                        s.kind.clone(),
                        s.cursor.to_string(),
                        s.head.to_string(),
                        format!("{} records, {:.1} s", s.lag_records, s.lag_seconds),
                        s.errors.to_string(),
                        match (&s.last_error, &s.last_error_at) {
                            (Some(e), Some(at)) => format!("{at}: {e}"),
                            _ => "-".to_owned(),
                        },
                        match s.max_lag_seconds {
                            Some(max) if s.blocking => format!("BLOCKING (over {max} s)"),
                            Some(max) => format!("yes, {max} s"),
                            None => "no".to_owned(),
                        },
                    ]);
                }
                println!("{t}");
            }
        }
        Command::Mfa(cmd) => mfa(ctx, cmd).await?,
        Command::DbCreds { grant } => {
            let c: warrant_api::pg::DbCredsOut = ctx
                .post(
                    &format!("/api/v1/grants/{}/db-creds", enc(&grant)),
                    &json!({}),
                )
                .await?;
            ctx.done(
                &c,
                &format!(
                    "host={} port={} dbname={} user={} password={}\n(valid until {}; shown once: the role is dropped when the grant ends)",
                    c.host, c.port, c.dbname, c.user, c.password, c.valid_until
                ),
            )?;
        }
        Command::DbToken { ttl } => {
            let t: warrant_api::pg::DbTokenOut = ctx
                .post("/api/v1/db-tokens", &json!({ "ttl": ttl }))
                .await?;
            if ctx.json {
                ctx.done(&t, "")?;
            } else {
                println!("{}", t.token);
                eprintln!(
                    "the password of {} at the PostgreSQL gateway until {} (for new connections): \
                     psql \"host=GATEWAY port=PORT user={} dbname=TARGET sslmode=verify-full sslrootcert=GATEWAY-CERT\"",
                    t.user, t.expires_at, t.user
                );
            }
        }
        Command::Psql { target, role, args } => {
            let me: Value = ctx.get("/api/v1/me").await?;
            let who = me["name"].as_str().unwrap_or_default().to_owned();
            let gs: Vec<GrantOut> = ctx.get("/api/v1/grants?all=false&active=true").await?;
            let mine: Vec<&GrantOut> = gs
                .iter()
                .filter(|g| g.identity == who && g.target == target && g.status == "active")
                .filter(|g| role.as_ref().is_none_or(|r| *r == g.role))
                .collect();
            let grant = match mine.as_slice() {
                [one] => *one,
                [] => bail!(
                    "you hold no active grant on {target}: request one first (warrant request {target} ROLE --for 1h --reason …)"
                ),
                _ => bail!("you hold several grants on {target}: choose one with --role"),
            };
            let c: warrant_api::pg::DbCredsOut = ctx
                .post(
                    &format!("/api/v1/grants/{}/db-creds", enc(&grant.id)),
                    &json!({}),
                )
                .await?;
            let status = std::process::Command::new("psql")
                .args([
                    "-h",
                    &c.host,
                    "-p",
                    &c.port.to_string(),
                    "-U",
                    &c.user,
                    "-d",
                    &c.dbname,
                ])
                .args(&args)
                .env("PGPASSWORD", &c.password)
                .status()
                .context("cannot run psql (install postgresql-client)")?;
            return Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(u8::try_from(status.code().unwrap_or(1)).unwrap_or(1))
            });
        }
        Command::Ssh(SshCmd::ManagedKey) => accounts::managed_key(ctx).await?,
        Command::Sessions { cmd } => return sessions::sessions(ctx, cmd).await,
        Command::Recording(c) => return sessions::recording(ctx, c).await,
        Command::SshKey(SshKeyCmd::Add {
            file,
            label,
            identity,
        }) => {
            let line = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let k: warrant_api::ssh::SshKeyOut = ctx
                .post(
                    "/api/v1/ssh/keys",
                    &warrant_api::ssh::SshKeyIn {
                        public_key: line.trim().to_owned(),
                        label,
                        identity,
                    },
                )
                .await?;
            ctx.done(
                &k,
                &format!(
                    "registered {} ({}) for {}",
                    k.fingerprint, k.label, k.identity
                ),
            )?;
        }
        Command::SshKey(SshKeyCmd::Delete { id, identity }) => {
            let q = identity.map_or_else(String::new, |i| format!("?identity={}", enc(&i)));
            let v: Value = ctx
                .delete(&format!("/api/v1/ssh/keys/{}{q}", enc(&id)))
                .await?;
            ctx.done(&v, &format!("SSH key {id} removed"))?;
        }
        Command::SshKeys { identity } => {
            let q = identity.map_or_else(String::new, |i| format!("?identity={}", enc(&i)));
            let ks: Vec<warrant_api::ssh::SshKeyOut> =
                ctx.get(&format!("/api/v1/ssh/keys{q}")).await?;
            ctx.out(&ks, |ks| {
                let mut t = table(&["ID", "FINGERPRINT", "LABEL", "ADDED", "LAST USED"]);
                for k in ks {
                    t.add_row(vec![
                        k.id.clone(),
                        k.fingerprint.clone(),
                        k.label.clone(),
                        k.created_at.clone(),
                        opt(&k.last_used_at),
                    ]);
                }
                t
            })?;
        }
        Command::Account(c) => return accounts::account(ctx, c).await,
        Command::Accounts => accounts::accounts(ctx).await?,
        Command::Discover { target } => accounts::discover(ctx, &target).await?,
        Command::Inventory { target } => accounts::inventory(ctx, target).await?,
        Command::Exceptions { target, all } => accounts::exceptions(ctx, target, all).await?,
        Command::ResolveException { id, note } => accounts::resolve(ctx, &id, note).await?,
        Command::Ssh(SshCmd::Ca) => {
            let line = ctx
                .client
                .get_text("/api/v1/ssh/ca")
                .await
                .map_err(explain)?;
            print!("{line}");
        }
        Command::SshCert {
            target,
            role,
            key,
            output,
        } => {
            let public_key = std::fs::read_to_string(&key)
                .with_context(|| format!("cannot read the public key {}", key.display()))?;
            let c: warrant_api::ssh::CertOut = ctx
                .post(
                    "/api/v1/ssh/certs",
                    &warrant_api::ssh::CertIn {
                        target,
                        role,
                        public_key: public_key.trim().to_owned(),
                    },
                )
                .await?;
            match output {
                Some(path) => {
                    std::fs::write(&path, format!("{}\n", c.certificate))
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    ctx.done(
                        &c,
                        &format!(
                            "certificate {} (serial {}, as {}) valid until {}: {}",
                            path.display(),
                            c.serial,
                            c.principals.join(", "),
                            c.valid_before,
                            "use it with ssh -i KEY -o CertificateFile=…"
                        ),
                    )?;
                }
                None if ctx.json => ctx.done(&c, "")?,
                None => println!("{}", c.certificate),
            }
        }
        Command::Vault(VaultCmd::Rekey) => {
            let r: warrant_engine::mfa::RekeyReport =
                ctx.post("/api/v1/vault/rekey", &json!({})).await?;
            ctx.done(
                &r,
                &format!(
                    "{}re-wrapped {} secret(s) under key {} ({} already were)",
                    if r.new_kek { "new key in force; " } else { "" },
                    r.rewrapped,
                    r.kek_id,
                    r.unchanged
                ),
            )?;
        }
        Command::Jobs => {
            let js: Vec<JobOut> = ctx.get("/api/v1/jobs").await?;
            ctx.out(&js, |js| {
                let mut t = table(&["JOB", "KIND", "GRANT", "ATTEMPTS", "NEXT", "LAST ERROR"]);
                for j in js {
                    t.add_row(vec![
                        j.id.clone(),
                        j.kind.clone(),
                        j.grant_id.clone(),
                        j.attempts.to_string(),
                        j.next_at.clone(),
                        opt(&j.last_error),
                    ]);
                }
                t
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unreachable_serve() -> Result<ExitCode> {
    bail!("serve is handled before connecting to a server")
}

async fn identity(ctx: &Ctx, c: IdentityCmd) -> Result<()> {
    match c {
        IdentityCmd::Add {
            name,
            email,
            display_name,
            manager,
            role,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_stdin_secret("password")?)
            } else {
                None
            };
            let i: IdentityOut = ctx
                .post(
                    "/api/v1/identities",
                    &IdentityIn {
                        name,
                        display_name,
                        email,
                        manager,
                        role,
                        password,
                    },
                )
                .await?;
            ctx.done(&i, &format!("created identity {}", i.name))
        }
        IdentityCmd::Update {
            name,
            email,
            display_name,
            manager,
            role,
        } => {
            let i: IdentityOut = ctx
                .patch(
                    &format!("/api/v1/identities/{}", enc(&name)),
                    &IdentityPatch {
                        display_name,
                        email,
                        manager,
                        role,
                    },
                )
                .await?;
            ctx.done(&i, &format!("updated identity {}", i.name))
        }
        IdentityCmd::Disable { name } => {
            let i: IdentityOut = ctx
                .post(
                    &format!("/api/v1/identities/{}/disable", enc(&name)),
                    &json!({}),
                )
                .await?;
            ctx.done(
                &i,
                &format!(
                    "disabled {}: its grants are revoked and its pending requests cancelled",
                    i.name
                ),
            )
        }
        IdentityCmd::Enable { name } => {
            let i: IdentityOut = ctx
                .post(
                    &format!("/api/v1/identities/{}/enable", enc(&name)),
                    &json!({}),
                )
                .await?;
            ctx.done(&i, &format!("enabled {}", i.name))
        }
        IdentityCmd::Delete { name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/identities/{}", enc(&name)))
                .await?;
            ctx.done(
                &v,
                &format!(
                    "deleted {name}: its grants are revoked and its pending requests cancelled"
                ),
            )
        }
        IdentityCmd::Passwd { name, current } => {
            let input = read_stdin_secret("password")?;
            // With --current, standard input holds the current password, then the new one.
            let (current_password, password) = if current {
                let (cur, new) = input.split_once('\n').with_context(|| {
                    "with --current, give two lines on standard input: the current password, then the new one"
                })?;
                (Some(cur.trim_end_matches('\r').to_owned()), new.to_owned())
            } else {
                (None, input)
            };
            let v: Value = ctx
                .post(
                    &format!("/api/v1/identities/{}/password", enc(&name)),
                    &PasswordIn {
                        password,
                        current_password,
                    },
                )
                .await?;
            ctx.done(&v, &format!("password of {name} set"))
        }
        IdentityCmd::Show { name } => {
            let i: IdentityOut = ctx
                .get(&format!("/api/v1/identities/{}", enc(&name)))
                .await?;
            ctx.out(&i, |i| {
                let mut t = table(&["NAME", "STATUS", "ROLE", "MANAGER", "GROUPS"]);
                t.add_row(vec![
                    i.name.clone(),
                    i.status.clone(),
                    i.role.clone(),
                    opt(&i.manager),
                    i.groups.clone().unwrap_or_default().join(", "),
                ]);
                t
            })
        }
    }
}

async fn group(ctx: &Ctx, c: GroupCmd) -> Result<()> {
    match c {
        GroupCmd::Add { name, description } => {
            let g: GroupOut = ctx
                .post("/api/v1/groups", &GroupIn { name, description })
                .await?;
            ctx.done(&g, &format!("created group {}", g.name))
        }
        GroupCmd::Delete { name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/groups/{}", enc(&name)))
                .await?;
            ctx.done(&v, &format!("deleted group {name}"))
        }
        GroupCmd::AddMember { group, name } => {
            let v: Value = ctx
                .post(
                    &format!("/api/v1/groups/{}/members", enc(&group)),
                    &MemberIn {
                        identity: name.clone(),
                    },
                )
                .await?;
            ctx.done(&v, &format!("{name} is a member of {group}"))
        }
        GroupCmd::RemoveMember { group, name } => {
            let v: Value = ctx
                .delete(&format!(
                    "/api/v1/groups/{}/members/{}",
                    enc(&group),
                    enc(&name)
                ))
                .await?;
            ctx.done(&v, &format!("{name} is no longer a member of {group}; grants that depended on it are revoked"))
        }
    }
}

async fn target(ctx: &Ctx, c: TargetCmd) -> Result<()> {
    match c {
        TargetCmd::Add {
            name,
            kind,
            owner,
            address,
            risk_tier,
            description,
        } => {
            let v: Value = ctx
                .put(
                    &format!("/api/v1/targets/{}", enc(&name)),
                    &TargetIn {
                        kind,
                        owner,
                        address,
                        risk_tier,
                        description,
                        admin_user: None,
                        host_key: None,
                        connector: Default::default(),
                    },
                )
                .await?;
            ctx.done(&v, &format!("saved target {name}"))
        }
        TargetCmd::Delete { name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/targets/{}", enc(&name)))
                .await?;
            ctx.done(&v, &format!("deleted target {name}"))
        }
        TargetCmd::AddRole {
            target,
            role,
            principals,
            login,
            db_roles,
            account,
        } => {
            let v: Value = ctx
                .put(
                    &format!("/api/v1/targets/{}/roles/{}", enc(&target), enc(&role)),
                    &RoleOut {
                        name: role.clone(),
                        principals,
                        login,
                        db_roles,
                        account,
                        record: None,
                        record_input: false,
                        forwarding: Vec::new(),
                    },
                )
                .await?;
            ctx.done(&v, &format!("saved role {role} on {target}"))
        }
        TargetCmd::SetSecret {
            target,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("pass --password-stdin and the password on standard input");
            }
            let password = read_stdin_secret("password")?;
            let v: Value = ctx
                .post(
                    &format!("/api/v1/targets/{}/secret", enc(&target)),
                    &warrant_api::pg::SecretIn { password },
                )
                .await?;
            ctx.done(&v, &format!("admin password of {target} stored, sealed"))
        }
        TargetCmd::DeleteRole { target, role } => {
            let v: Value = ctx
                .delete(&format!(
                    "/api/v1/targets/{}/roles/{}",
                    enc(&target),
                    enc(&role)
                ))
                .await?;
            ctx.done(&v, &format!("deleted role {role} on {target}"))
        }
    }
}

async fn rule(ctx: &Ctx, c: RuleCmd) -> Result<()> {
    match c {
        RuleCmd::Add {
            group,
            identity,
            target,
            role,
            max_duration,
            require_reason,
            require_mfa,
            ticket_pattern,
            approvals,
        } => {
            // One parser for stages everywhere: the engine's (also behind policy annotations).
            let approvals = warrant_engine::policy::parse_stages(&approvals.join(","))
                .map_err(|e| anyhow::anyhow!("--approval: {e}"))?
                .into_iter()
                .map(|a| StageOut {
                    from: a.from.to_string(),
                    count: a.count,
                    require_mfa: a.require_mfa,
                })
                .collect();
            let r: RuleOut = ctx
                .post(
                    "/api/v1/rules",
                    &RuleOut {
                        id: String::new(),
                        group,
                        identity,
                        target,
                        role,
                        max_duration,
                        require_reason,
                        require_mfa,
                        ticket_pattern,
                        approvals,
                    },
                )
                .await?;
            ctx.done(&r, &format!("saved rule {}", r.id))
        }
        RuleCmd::Delete { id } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/rules?id={}", enc(&id)))
                .await?;
            ctx.done(&v, &format!("deleted rule {id}"))
        }
    }
}

async fn policy(ctx: &Ctx, c: PolicyCmd) -> Result<ExitCode> {
    match c {
        PolicyCmd::Add { name, file } => {
            let cedar = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let v: Value = ctx
                .put(
                    &format!("/api/v1/policies/{}", enc(&name)),
                    &PolicyOut {
                        name: name.clone(),
                        cedar,
                    },
                )
                .await?;
            ctx.done(&v, &format!("saved policy {name}"))?;
        }
        PolicyCmd::Delete { name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/policies/{}", enc(&name)))
                .await?;
            ctx.done(&v, &format!("deleted policy {name}"))?;
        }
        PolicyCmd::List => {
            let ps: Vec<PolicyOut> = ctx.get("/api/v1/policies").await?;
            ctx.out(&ps, |ps| {
                let mut t = table(&["POLICY", "CEDAR"]);
                for p in ps {
                    t.add_row(vec![p.name.clone(), p.cedar.clone()]);
                }
                t
            })?;
        }
        PolicyCmd::Test {
            identity,
            target,
            role,
            duration,
            reason,
            ticket,
            mfa,
            at,
        } => {
            let r: PolicyTestOut = ctx
                .post(
                    "/api/v1/policy/test",
                    &PolicyTestIn {
                        identity,
                        target,
                        role,
                        duration: Some(duration),
                        reason,
                        ticket,
                        mfa,
                        at,
                    },
                )
                .await?;
            if ctx.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {}",
                    if r.allowed { "ALLOW" } else { "DENY" },
                    r.explanation
                );
                println!(
                    "  matched rules: {}",
                    if r.matched_rules.is_empty() {
                        "none".into()
                    } else {
                        r.matched_rules.join(", ")
                    }
                );
                if !r.custom_permits.is_empty() {
                    println!("  custom permits: {}", r.custom_permits.join(", "));
                }
                if !r.forbids.is_empty() {
                    println!("  forbidden by: {}", r.forbids.join(", "));
                }
                for e in &r.errors {
                    println!("  evaluation error: {e}");
                }
                println!("  policies evaluated: {}", r.evaluated);
            }
            return Ok(if r.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit_tail(ctx: &Ctx, lines: i64, follow: bool) -> Result<()> {
    let head: warrant_audit::VerifyReport = ctx.get("/api/v1/audit/verify").await?;
    let records = i64::try_from(head.records).unwrap_or(i64::MAX);
    let mut after = (records - lines.max(0)).max(0);
    loop {
        let recs: Vec<AuditOut> = ctx
            .get(&format!("/api/v1/audit?after={after}&limit=1000"))
            .await?;
        for r in &recs {
            if ctx.json {
                println!("{}", serde_json::to_string(r)?);
            } else {
                println!(
                    "{:>6} {} {:<24} {:<10} {}",
                    r.seq,
                    r.at,
                    r.kind,
                    r.actor.clone().unwrap_or_else(|| "-".into()),
                    r.data
                );
            }
            after = r.seq;
        }
        if !follow {
            return Ok(());
        }
        if recs.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn print_recovery_codes(codes: &[String]) {
    if codes.is_empty() {
        return;
    }
    println!(
        "Recovery codes — each works once; store them somewhere safe now, they are not shown again:"
    );
    for c in codes {
        println!("  {c}");
    }
}

async fn mfa(ctx: &Ctx, cmd: MfaCmd) -> Result<()> {
    match cmd {
        MfaCmd::Status { name } => {
            let path = match &name {
                Some(n) => format!("/api/v1/identities/{}/mfa", enc(n)),
                None => "/api/v1/mfa".to_owned(),
            };
            let st: MfaStatusOut = ctx.get(&path).await?;
            ctx.out(&st, |st| {
                let mut t = table(&[
                    "FACTOR",
                    "KIND",
                    "LABEL",
                    "CONFIRMED",
                    "CREATED",
                    "LAST USED",
                ]);
                for f in &st.factors {
                    t.add_row(vec![
                        f.id.clone(),
                        f.kind.clone(),
                        f.label.clone(),
                        if f.confirmed {
                            "yes"
                        } else {
                            "no (run warrant mfa confirm)"
                        }
                        .to_owned(),
                        f.created_at.clone(),
                        f.last_used_at.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                t
            })?;
            if !ctx.json {
                println!(
                    "{}: {} recovery code(s) left",
                    st.identity, st.recovery_codes_left
                );
            }
        }
        MfaCmd::Enrol { label } => {
            let e: TotpEnrolOut = ctx.post("/api/v1/mfa/totp", &TotpEnrolIn { label }).await?;
            ctx.done(
                &e,
                &format!(
                    "Add this to your authenticator app (scan the URI as a QR code, or type the secret):\n  {}\n  secret: {}\nthen confirm with: warrant mfa confirm CODE",
                    e.uri, e.secret
                ),
            )?;
        }
        MfaCmd::Confirm { code } => {
            let r: RecoveryCodesOut = ctx
                .post("/api/v1/mfa/totp/confirm", &CodeIn { code })
                .await?;
            if ctx.json {
                ctx.done(&r, "")?;
            } else {
                println!("second factor confirmed: sign-in now asks for a code");
                print_recovery_codes(&r.recovery_codes);
            }
        }
        MfaCmd::Verify { code } => {
            let v: MfaVerifiedOut = ctx.post("/api/v1/mfa/verify", &CodeIn { code }).await?;
            ctx.done(
                &v,
                &format!(
                    "second factor proved; step-up valid until {}",
                    v.valid_until
                ),
            )?;
        }
        MfaCmd::RecoveryCodes => {
            let r: RecoveryCodesOut = ctx.post("/api/v1/mfa/recovery-codes", &json!({})).await?;
            if ctx.json {
                ctx.done(&r, "")?;
            } else {
                print_recovery_codes(&r.recovery_codes);
            }
        }
        MfaCmd::Reset { name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/identities/{}/mfa", enc(&name)))
                .await?;
            ctx.done(
                &v,
                &format!("every second factor of {name} removed; its sessions ended"),
            )?;
        }
    }
    Ok(())
}

/// The browser sign-in: a one-shot listener on 127.0.0.1 (RFC 8252 loopback redirect) receives
/// the provider's redirect; the server, which holds the PKCE verifier and nonce, completes it.
async fn oidc_login(ctx: &Ctx, port: u16) -> Result<TokenOut> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use warrant_api::directory_sources::{OidcCompleteIn, OidcStartOut};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port} for the sign-in redirect (choose another --redirect-port)")
        })?;
    let redirect = format!("http://{}/callback", listener.local_addr()?);
    let anon = ctx.client.with_token(None);
    let start: OidcStartOut = anon
        .post(
            "/api/v1/auth/oidc/start",
            &json!({"redirect_uri": redirect}),
        )
        .await
        .map_err(explain)?;
    eprintln!(
        "Open this address in your browser to sign in (waiting up to 5 minutes):\n  {}",
        start.authorize_url
    );
    let wait = async {
        loop {
            let (mut sock, _) = listener.accept().await?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
                let n = sock.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf);
            let target = head
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("")
                .to_owned();
            if !target.starts_with("/callback") {
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            }
            let url = url::Url::parse(&format!("http://127.0.0.1{target}"))?;
            let get = |k: &str| {
                url.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            let page = "<!doctype html><title>Warrant</title><p>Signed in to Warrant. You can close this window and return to the terminal.</p>";
            let _ = sock
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                )
                .await;
            if let Some(err) = get("error") {
                bail!(
                    "the OpenID provider refused the sign-in: {err} {}",
                    get("error_description").unwrap_or_default()
                );
            }
            match (get("code"), get("state")) {
                (Some(code), Some(state)) => return Ok::<_, anyhow::Error>((code, state)),
                _ => bail!("the provider's redirect carried no code"),
            }
        }
    };
    let (code, state) = tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .context("no sign-in within 5 minutes: run `warrant login --oidc` again")??;
    anon.post(
        "/api/v1/auth/oidc/complete",
        &OidcCompleteIn {
            login_id: start.login_id,
            state,
            code,
        },
    )
    .await
    .map_err(explain)
}

async fn sync_ldap(ctx: &Ctx, dry_run: bool, force: bool, status: bool) -> Result<()> {
    use warrant_api::directory_sources::SyncState;
    use warrant_engine::sync::SyncReport;
    if status {
        let st: SyncState = ctx.get("/api/v1/sync/ldap").await?;
        return ctx.done(
            &st,
            &match (&st.running, &st.last, &st.last_error) {
                (true, _, _) => format!(
                    "running: reading {} ({} entries so far)",
                    st.phase.clone().unwrap_or_default(),
                    st.entries
                ),
                (false, _, Some(e)) => format!("the last sync failed: {e}"),
                (false, Some(r), None) => sync_summary(r),
                (false, None, None) => "no sync has run since the server started".to_owned(),
            },
        );
    }
    let bar = if ctx.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(120));
        b.set_message("connecting to the directory");
        b
    };
    let body = json!({"dry_run": dry_run, "force": force});
    let run = ctx.post::<SyncReport>("/api/v1/sync/ldap", &body);
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            r = &mut run => break r,
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if let Ok(st) = ctx.get::<SyncState>("/api/v1/sync/ldap").await
                    && st.running
                {
                    bar.set_message(format!(
                        "reading {}: {} entries",
                        st.phase.unwrap_or_default(),
                        st.entries
                    ));
                }
            }
        }
    };
    bar.finish_and_clear();
    let report = report?;
    ctx.done(&report, &sync_summary(&report))
}

fn sync_summary(r: &warrant_engine::sync::SyncReport) -> String {
    let mut s = format!(
        "{}identities: {} created, {} updated, {} disabled, {} enabled, {} newly missing, {} disabled after the grace period\ngroups: {} created, {} updated; memberships: {} added, {} removed\ngrants revoked: {}, requests cancelled: {}",
        if r.dry_run {
            "DRY RUN (nothing changed) — "
        } else {
            ""
        },
        r.created,
        r.updated,
        r.disabled,
        r.enabled,
        r.marked_missing,
        r.disabled_after_grace,
        r.groups_created,
        r.groups_updated,
        r.members_added,
        r.members_removed,
        r.grants_revoked,
        r.requests_cancelled,
    );
    for c in &r.conflicts {
        s.push_str(&format!("\nconflict: {c}"));
    }
    for k in &r.skipped {
        s.push_str(&format!("\nskipped: {k}"));
    }
    s
}

//! Verbs for vaulted accounts, Warrant's managed SSH key and discovery.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use warrant_api::accounts::{
    AccountIn, AccountOut, AccountSecretIn, CheckoutOut, ExceptionOut, InventoryOut, ProgressOut,
    ResolveIn, RevealOut, RotateOut, ScanOut,
};
use warrant_api::client::enc;

use super::{Ctx, explain, opt, read_stdin_secret, table};
use crate::args::AccountCmd;

fn path(target: &str, name: &str, verb: &str) -> String {
    format!("/api/v1/accounts/{}/{}/{verb}", enc(target), enc(name))
}

pub(super) async fn account(ctx: &Ctx, c: AccountCmd) -> Result<ExitCode> {
    match c {
        AccountCmd::Add {
            target,
            name,
            owner,
            shared,
            rotate_every,
            no_rotate_after_checkin,
            secret_stdin,
        } => {
            if !secret_stdin {
                bail!("pass --secret-stdin and the account's current secret on standard input");
            }
            let secret = read_stdin_secret("secret")?;
            let a: AccountOut = ctx
                .post(
                    "/api/v1/accounts",
                    &AccountIn {
                        target,
                        name,
                        owner,
                        shared,
                        rotate_every,
                        rotate_after_checkin: no_rotate_after_checkin.then_some(false),
                        secret,
                    },
                )
                .await?;
            ctx.done(
                &a,
                &format!(
                    "vaulted {} on {} (owner {}, {}{})",
                    a.name,
                    a.target,
                    a.owner,
                    if a.exclusive { "exclusive" } else { "shared" },
                    if a.rotate_after_checkin {
                        ", rotated after each check-in"
                    } else {
                        ""
                    }
                ),
            )?;
        }
        AccountCmd::SetSecret {
            target,
            name,
            secret_stdin,
        } => {
            if !secret_stdin {
                bail!("pass --secret-stdin and the secret on standard input");
            }
            let secret = read_stdin_secret("secret")?;
            let v: Value = ctx
                .post(&path(&target, &name, "secret"), &AccountSecretIn { secret })
                .await?;
            ctx.done(&v, &format!("secret of {name} on {target} stored, sealed"))?;
        }
        AccountCmd::Delete { target, name } => {
            let v: Value = ctx
                .delete(&format!("/api/v1/accounts/{}/{}", enc(&target), enc(&name)))
                .await?;
            ctx.done(&v, &format!("deleted vaulted account {name} on {target}"))?;
        }
        AccountCmd::Checkout { target, name } => {
            let c: CheckoutOut = ctx
                .post(&path(&target, &name, "checkout"), &json!({}))
                .await?;
            ctx.done(
                &c,
                &format!(
                    "checked out {name} on {target} (checkout {}, under grant {}); `warrant account reveal {target} {name}` shows the secret",
                    c.id, c.grant_id
                ),
            )?;
        }
        AccountCmd::Reveal { target, name } => {
            let r: RevealOut = ctx
                .post(&path(&target, &name, "reveal"), &json!({}))
                .await?;
            ctx.done(&r, &r.secret)?;
        }
        AccountCmd::Checkin { target, name } => {
            let v: Value = ctx
                .post(&path(&target, &name, "checkin"), &json!({}))
                .await?;
            ctx.done(&v, &format!("checked in {name} on {target}"))?;
        }
        AccountCmd::Rotate { target, name } => {
            let r: RotateOut = ctx
                .post(&path(&target, &name, "rotate"), &json!({}))
                .await?;
            let line = match r.outcome.as_str() {
                "rotated" => format!("rotated {name} on {target}"),
                "deferred" => format!("not rotated now: {}", r.detail.clone().unwrap_or_default()),
                _ => format!(
                    "rotation failed at {}: {} (the working secret is kept; retried)",
                    r.step.clone().unwrap_or_default(),
                    r.detail.clone().unwrap_or_default()
                ),
            };
            ctx.done(&r, &line)?;
            if r.outcome == "failed" {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn accounts(ctx: &Ctx) -> Result<()> {
    let v: Vec<AccountOut> = ctx.get("/api/v1/accounts").await?;
    ctx.out(&v, |v| {
        let mut t = table(&[
            "TARGET",
            "ACCOUNT",
            "OWNER",
            "MODE",
            "CHECKED OUT BY",
            "LAST ROTATED",
            "ROTATION",
        ]);
        for a in v {
            let rotation = match (&a.rotation_step, &a.last_error) {
                (_, Some(e)) => format!("failing ({} attempts): {e}", a.rotation_attempts),
                (Some(step), None) => format!("in progress: {step}"),
                (None, None) => a
                    .rotation_due_at
                    .as_ref()
                    .map_or_else(|| "-".into(), |d| format!("due {d}")),
            };
            t.add_row(vec![
                a.target.clone(),
                a.name.clone(),
                a.owner.clone(),
                if a.exclusive { "exclusive" } else { "shared" }.to_owned(),
                if a.checked_out.is_empty() {
                    "-".to_owned()
                } else {
                    a.checked_out
                        .iter()
                        .map(|c| c.identity.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                opt(&a.last_rotated_at),
                rotation,
            ]);
        }
        t
    })
}

pub(super) async fn managed_key(ctx: &Ctx) -> Result<()> {
    let v: Value = ctx.get("/api/v1/ssh/managed-key").await?;
    ctx.done(&v, v["public_key"].as_str().unwrap_or_default())
}

fn inventory_table(v: &Vec<InventoryOut>) -> comfy_table::Table {
    let mut t = table(&[
        "TARGET",
        "ACCOUNT",
        "STATUS",
        "RISK",
        "PRIVILEGES",
        "FIRST SEEN",
    ]);
    for r in v {
        t.add_row(vec![
            r.target.clone(),
            r.account.clone(),
            r.status.clone(),
            r.risk.clone(),
            r.privileges.join(", "),
            r.first_seen.clone(),
        ]);
    }
    t
}

fn exceptions_table(v: &Vec<ExceptionOut>) -> comfy_table::Table {
    let mut t = table(&[
        "ID", "TARGET", "ACCOUNT", "RISK", "WHAT", "FOUND", "RESOLVED",
    ]);
    for e in v {
        t.add_row(vec![
            e.id.clone(),
            e.target.clone(),
            e.account.clone(),
            e.risk.clone(),
            e.what.clone(),
            e.found_at.clone(),
            opt(&e.resolved_at),
        ]);
    }
    t
}

/// `warrant discover TARGET`: runs the scan and follows its progress with a bar.
pub(super) async fn discover(ctx: &Ctx, target: &str) -> Result<()> {
    let bar = if ctx.json {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}")
        {
            b.set_style(style.progress_chars("=> "));
        }
        b.enable_steady_tick(Duration::from_millis(120));
        b.set_message(format!("scanning {target}: connecting"));
        b
    };
    let scan_path = format!("/api/v1/discovery/{}", enc(target));
    let body = json!({});
    let run = ctx.client.post::<_, ScanOut>(&scan_path, &body);
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            r = &mut run => break r,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if let Ok(p) = ctx.get::<ProgressOut>(&scan_path).await
                    && p.running
                {
                    bar.set_length(p.total);
                    bar.set_position(p.done);
                    bar.set_message(format!(
                        "scanning {target}: {}",
                        p.phase.unwrap_or_default()
                    ));
                }
            }
        }
    };
    bar.finish_and_clear();
    let report = report.map_err(explain)?;
    if ctx.json {
        return ctx.done(&report, "");
    }
    println!("{}", inventory_table(&report.inventory));
    let count = |s: &str| report.inventory.iter().filter(|r| r.status == s).count();
    println!(
        "{} privileged accounts on {}: {} managed, {} unmanaged, {} orphaned{}",
        report.inventory.len(),
        report.target,
        count("managed"),
        count("unmanaged"),
        count("orphaned"),
        if report.baseline {
            " (first scan: the baseline; later scans report what changes)"
        } else {
            ""
        }
    );
    for r in &report.removed {
        println!("no longer found: {r}");
    }
    if !report.differences.is_empty() {
        println!(
            "{} new since the last scan (granted outside Warrant):",
            report.differences.len()
        );
        println!("{}", exceptions_table(&report.differences));
    }
    Ok(())
}

pub(super) async fn inventory(ctx: &Ctx, target: Option<String>) -> Result<()> {
    let q = target.map_or_else(String::new, |t| format!("?target={}", enc(&t)));
    let v: Vec<InventoryOut> = ctx.get(&format!("/api/v1/inventory{q}")).await?;
    ctx.out(&v, inventory_table)
}

pub(super) async fn exceptions(ctx: &Ctx, target: Option<String>, all: bool) -> Result<()> {
    let mut q = vec![format!("all={all}")];
    if let Some(t) = target {
        q.push(format!("target={}", enc(&t)));
    }
    let v: Vec<ExceptionOut> = ctx
        .get(&format!("/api/v1/exceptions?{}", q.join("&")))
        .await?;
    ctx.out(&v, exceptions_table)
}

pub(super) async fn resolve(ctx: &Ctx, id: &str, note: String) -> Result<()> {
    let v: Value = ctx
        .post(
            &format!("/api/v1/exceptions/{}/resolve", enc(id)),
            &ResolveIn { note },
        )
        .await?;
    ctx.done(&v, &format!("exception {id} resolved"))
}

//! Verbs for gateway sessions and their recordings.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use warrant_api::client::enc;
use warrant_api::sessions::SessionOut;

use super::{Ctx, explain, opt, table};
use crate::args::{RecordingCmd, SessionsCmd};

/// Fetches a session's recording and manifest into a temporary directory; returns the
/// recording's path there (the manifest beside it, as the library expects).
async fn fetch(ctx: &Ctx, id: &str) -> Result<(tempfile::TempDir, std::path::PathBuf)> {
    let body = ctx
        .client
        .get_bytes(&format!("/api/v1/sessions/{}/recording", enc(id)))
        .await
        .map_err(explain)?;
    let manifest: Value = ctx
        .get(&format!("/api/v1/sessions/{}/manifest", enc(id)))
        .await?;
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let path = dir.path().join(format!("{id}.cast"));
    std::fs::write(&path, &body).context("writing the recording")?;
    std::fs::write(
        warrant_recording::manifest_path(&path),
        serde_json::to_vec(&manifest)?,
    )
    .context("writing the manifest")?;
    Ok((dir, path))
}

pub(super) async fn sessions(ctx: &Ctx, cmd: Option<SessionsCmd>) -> Result<ExitCode> {
    match cmd {
        None => {
            let v: Vec<SessionOut> = ctx.get("/api/v1/sessions").await?;
            ctx.out(&v, |v| {
                let mut t = table(&[
                    "ID",
                    "IDENTITY",
                    "TARGET",
                    "ACCOUNT",
                    "STARTED",
                    "ENDED",
                    "BYTES ↑/↓",
                    "GRANT",
                ]);
                for s in v {
                    t.add_row(vec![
                        s.id.clone(),
                        s.identity.clone(),
                        s.target.clone(),
                        s.account.clone(),
                        s.started_at.clone(),
                        if s.live {
                            "live".to_owned()
                        } else {
                            format!(
                                "{} ({})",
                                opt(&s.ended_at),
                                s.end_reason.clone().unwrap_or_default()
                            )
                        },
                        format!("{}/{}", s.bytes_up, s.bytes_down),
                        s.grant_id.clone(),
                    ]);
                }
                t
            })?;
        }
        Some(SessionsCmd::Kill { id }) => {
            let v: Value = ctx
                .post(&format!("/api/v1/sessions/{}/kill", enc(&id)), &json!({}))
                .await?;
            ctx.done(&v, &format!("session {id} ended"))?;
        }
        Some(SessionsCmd::Play {
            id,
            speed,
            max_idle,
        }) => {
            let (_dir, path) = fetch(ctx, &id).await?;
            let mut out = std::io::stdout().lock();
            warrant_recording::play(
                &path,
                &mut out,
                speed,
                Duration::from_secs_f64(max_idle.max(0.0)),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn recording(ctx: &Ctx, cmd: RecordingCmd) -> Result<ExitCode> {
    match cmd {
        RecordingCmd::Get { id } => {
            let body = ctx
                .client
                .get_bytes(&format!("/api/v1/sessions/{}/recording", enc(&id)))
                .await
                .map_err(explain)?;
            std::io::stdout().lock().write_all(&body)?;
            Ok(ExitCode::SUCCESS)
        }
        RecordingCmd::Verify { id, key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let v: Value = ctx.get("/api/v1/recordings/key").await?;
                    v["public_key"].as_str().unwrap_or_default().to_owned()
                }
            };
            let (_dir, path) = fetch(ctx, &id).await?;
            match warrant_recording::verify(&path, &key) {
                Ok(m) => {
                    ctx.done(
                        &json!({"id": id, "intact": true, "sha256": m.sha256, "bytes": m.bytes}),
                        &format!(
                            "recording {id} is intact: sha256 {} ({} bytes), signed by {}",
                            m.sha256, m.bytes, m.public_key
                        ),
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    ctx.done(
                        &json!({"id": id, "intact": false, "problem": e.to_string()}),
                        &format!("recording {id} is NOT intact: {e}"),
                    )?;
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

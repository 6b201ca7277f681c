//! A closed-loop load driver: C tasks each run one operation after another until the end; the
//! operations that complete inside the measured window count, the warm-up's do not.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::stats::{Summary, micros, summarise_us};

/// What a run of the driver saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations completed without error inside the window.
    pub ok: u64,
    /// Operations that failed inside the window.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Latency of the successful operations.
    pub latency: Summary,
    /// Length of the measured window, in seconds.
    pub secs: f64,
}

impl Outcome {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Runs `op` from `concurrency` tasks for `warmup` + `duration` seconds, or until `max_ops`
/// operations have completed in the window (the window then ends at the last of them).
pub async fn drive<F, Fut>(
    concurrency: usize,
    warmup: f64,
    duration: f64,
    max_ops: u64,
    op: F,
) -> Result<Outcome>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let t0 = Instant::now();
    let warm_end = t0 + Duration::from_secs_f64(warmup.max(0.0));
    let end = warm_end + Duration::from_secs_f64(duration.max(0.1));
    let done_ops = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..concurrency.max(1))
        .map(|task| {
            let op = op.clone();
            let done_ops = Arc::clone(&done_ops);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                let mut first_error = None;
                let mut last_done = None;
                loop {
                    let start = Instant::now();
                    if start >= end || done_ops.load(Ordering::Relaxed) >= max_ops {
                        break;
                    }
                    let r = op(task).await;
                    let done = Instant::now();
                    if done < warm_end || done > end {
                        continue;
                    }
                    last_done = Some(done);
                    match r {
                        Ok(()) => {
                            done_ops.fetch_add(1, Ordering::Relaxed);
                            lat.push(micros(done - start));
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                (lat, errors, first_error, last_done)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut out = Outcome::default();
    let mut window_end = warm_end;
    for h in handles {
        let (lat, errors, first_error, last_done) = h.await.context("a load task failed")?;
        all.extend(lat);
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first_error;
        }
        if let Some(d) = last_done {
            window_end = window_end.max(d);
        }
    }
    // The window is the configured one unless the count cap ended it early.
    let window_end = if done_ops.load(Ordering::Relaxed) >= max_ops {
        window_end
    } else {
        end
    };
    out.ok = all.len() as u64;
    out.latency = summarise_us(all);
    out.secs = window_end.saturating_duration_since(warm_end).as_secs_f64();
    Ok(out)
}

//! The durable scheduler: closes grants at their end, expires undecided requests, and runs the
//! clean-up work owed after a grant closes, retrying with backoff until it succeeds.
//!
//! Everything it acts on is in the store (grant ends, request deadlines, the `jobs` table), so a
//! restart loses nothing: the first tick after start closes whatever ended while the server was
//! down. Reads never depend on it: an ended grant is reported ended even before the tick.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use warrant_audit::Event;
use warrant_core::{Grant, GrantStatus, SystemRole, Timestamp};
use warrant_store::JobRow;

use crate::access::close_grant;
use crate::auth::Actor;
use crate::error::Result;
use crate::{Engine, require_role};

/// Clean-up work run after a grant closes (a connector dropping a temporary role, say). It
/// returns the audit events of what it did, which the scheduler records with the job's
/// completion (a `credential.dropped` event also marks the grant's temporary role dropped). An
/// error is retried with backoff; it is never dropped.
pub type CleanupFn = Arc<
    dyn Fn(Grant) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Event>, String>> + Send>>
        + Send
        + Sync,
>;

/// Clean-up jobs taken per pass (and recorded per transaction).
const JOB_BATCH: i64 = 500;
/// Clean-up jobs run at the same time: 1,000 temporary roles ending together must all be gone
/// within 2 s (docs/BENCHMARKS.md).
const JOB_CONCURRENCY: usize = 16;

/// What one scheduler pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Grants closed at their end.
    pub grants_ended: u64,
    /// Requests expired undecided.
    pub requests_expired: u64,
    /// Clean-up jobs completed.
    pub jobs_done: u64,
    /// Clean-up attempts that failed (to be retried).
    pub jobs_failed: u64,
}

/// Backoff after `attempts` failures: 1 s, 2 s, 4 s … capped at 5 minutes.
pub fn backoff_secs(attempts: i64) -> i64 {
    1_i64
        .checked_shl(u32::try_from(attempts.clamp(0, 20)).unwrap_or(20))
        .unwrap_or(i64::MAX)
        .min(300)
}

impl Engine {
    /// Wakes the scheduler (a grant was created or closed, its plan may have changed).
    pub fn wake_scheduler(&self) {
        self.inner.wake.notify_one();
    }

    /// One pass of the scheduler at the clock's current time.
    pub async fn tick(&self) -> Result<TickReport> {
        if self.policy_failed() {
            let _gate = self.policy_gate_write().await;
            // Still failing: the error is logged and decisions keep denying.
            let _ = self.reload_policy().await;
        }
        let mut report = TickReport::default();
        let batch = self.inner.config.expiry_batch;
        let jobs = self.jobs_enabled();
        loop {
            let now = self.now();
            let due = {
                let mut r = self.store().read().await?;
                r.q().grants_past_end(now, batch).await?
            };
            if due.is_empty() {
                break;
            }
            let n = due.len();
            let mut tx = self.store().begin().await?;
            for g in due {
                let lag = (now.millis() - g.ends_at.millis()).max(0);
                if close_grant(&mut tx, g, GrantStatus::Ended, None, "ended", jobs, now).await? {
                    report.grants_ended += 1;
                    metrics::histogram!("warrant_expiry_lag_seconds").record(lag as f64 / 1000.0);
                }
            }
            tx.commit().await?;
            if (n as i64) < batch {
                break;
            }
        }
        metrics::counter!("warrant_grants_ended_total").increment(report.grants_ended);

        let now = self.now();
        let any_expired = {
            let mut r = self.store().read().await?;
            !r.q().requests_past_deadline(now, 1).await?.is_empty()
        };
        if any_expired {
            // Re-read under the writer lock: a request approved or denied meanwhile stays so.
            let mut tx = self.store().begin().await?;
            let now = self.now();
            let expired = tx.q().requests_past_deadline(now, batch).await?;
            for mut req in expired {
                if req.expire(now).is_ok() && tx.w().await?.update_request(&req).await? {
                    tx.audit(
                        now,
                        None,
                        &Event::RequestExpired {
                            request_id: req.id.clone(),
                            identity: req.identity.to_string(),
                            target: req.target.to_string(),
                        },
                    )
                    .await?;
                    report.requests_expired += 1;
                }
            }
            if report.requests_expired > 0 {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
        }

        if jobs {
            self.run_jobs(&mut report).await?;
        }
        Ok(report)
    }

    async fn run_jobs(&self, report: &mut TickReport) -> Result<()> {
        loop {
            let now = self.now();
            let due = {
                let mut r = self.store().read().await?;
                let jobs = r.q().jobs_due(now, JOB_BATCH).await?;
                let mut with_grants = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let grant = r.q().grant(&job.grant_id).await?;
                    with_grants.push((job, grant));
                }
                with_grants
            };
            if due.is_empty() {
                break;
            }
            let n = due.len();
            // Run them concurrently; record every outcome in one transaction.
            let limit = Arc::new(tokio::sync::Semaphore::new(JOB_CONCURRENCY));
            let mut set = tokio::task::JoinSet::new();
            for (i, (_, grant)) in due.iter().enumerate() {
                let Some(g) = grant.clone() else { continue };
                let cleanups = self.inner.cleanups.clone();
                let limit = Arc::clone(&limit);
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    let mut events = Vec::new();
                    for f in &cleanups {
                        match f(g.clone()).await {
                            Ok(mut e) => events.append(&mut e),
                            Err(e) => return (i, Err(e)),
                        }
                    }
                    (i, Ok(events))
                });
            }
            let mut outcomes: Vec<std::result::Result<Vec<Event>, String>> =
                (0..n).map(|_| Ok(Vec::new())).collect();
            while let Some(done) = set.join_next().await {
                match done {
                    Ok((i, outcome)) => outcomes[i] = outcome,
                    Err(e) => tracing::error!(error = %e, "a clean-up task panicked"),
                }
            }
            let now = self.now();
            let mut tx = self.store().begin().await?;
            for ((mut job, _), outcome) in due.into_iter().zip(outcomes) {
                job.attempts += 1;
                let event = match outcome {
                    Ok(events) => {
                        for e in &events {
                            if let Event::CredentialDropped {
                                grant_id,
                                role_name,
                                ..
                            } = e
                            {
                                tx.w()
                                    .await?
                                    .mark_db_credential_dropped(grant_id, role_name, now)
                                    .await?;
                            }
                            tx.audit(now, None, e).await?;
                        }
                        job.done_at = Some(now);
                        job.last_error = None;
                        report.jobs_done += 1;
                        Event::CleanupDone {
                            grant_id: job.grant_id.clone(),
                            attempts: job.attempts,
                        }
                    }
                    Err(e) => {
                        let e: String = e.chars().take(1000).collect();
                        job.next_at = now.plus_secs(backoff_secs(job.attempts - 1));
                        job.last_error = Some(e.clone());
                        report.jobs_failed += 1;
                        metrics::counter!("warrant_cleanup_failures_total").increment(1);
                        tracing::warn!(grant = %job.grant_id, attempts = job.attempts, error = %e, "grant clean-up failed; will retry");
                        Event::CleanupFailed {
                            grant_id: job.grant_id.clone(),
                            attempts: job.attempts,
                            error: e,
                        }
                    }
                };
                tx.w().await?.update_job(&job).await?;
                tx.audit(now, None, &event).await?;
            }
            tx.commit().await?;
            if (n as i64) < JOB_BATCH {
                break;
            }
        }
        let pending = {
            let mut r = self.store().read().await?;
            r.q().count_pending_jobs().await?
        };
        metrics::gauge!("warrant_cleanup_jobs_pending").set(pending as f64);
        Ok(())
    }

    /// Clean-up jobs not yet done, with their attempts and last error (auditors and admins).
    pub async fn pending_jobs(&self, actor: &Actor) -> Result<Vec<JobRow>> {
        require_role(actor, SystemRole::Auditor)?;
        let mut r = self.store().read().await?;
        Ok(r.q().jobs_pending(1000).await?)
    }

    async fn next_wakeup(&self) -> Result<Option<Timestamp>> {
        let mut r = self.store().read().await?;
        let a = r.q().next_grant_end().await?;
        let b = r.q().next_request_deadline().await?;
        let c = if self.jobs_enabled() {
            r.q().next_job_due().await?
        } else {
            None
        };
        Ok([a, b, c].into_iter().flatten().min())
    }

    /// Runs the scheduler until `shutdown` completes. Sleeps until the next grant end, request
    /// deadline or job, at most one second, and wakes early when told.
    pub async fn run_scheduler(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %e, "scheduler pass failed; retrying");
            }
            let wait = match self.next_wakeup().await {
                Ok(Some(t)) => (t.millis() - self.now().millis()).clamp(0, 1000),
                Ok(None) => 1000,
                Err(_) => 1000,
            };
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(1000));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.wake.notified() => {}
                () = &mut shutdown => return,
            }
        }
    }
}

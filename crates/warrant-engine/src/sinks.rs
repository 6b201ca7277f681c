//! Audit export to the SIEM: one worker per configured sink, each with a durable cursor (the
//! last record it delivered, in the store), so that delivery is at least once and in order,
//! and nothing is lost while a sink is down: the backlog drains, oldest first, when it returns.
//!
//! A worker reads batches after its cursor from the store and hands each to its
//! [`warrant_siem::Sink`]; only then does the cursor move. A failure is counted, shown, and
//! retried with backoff (1 s doubling to 30 s). The workers never sit between a request and
//! its answer: a slow or dead sink only grows its own lag.
//!
//! A sink may be **mandatory** (`mandatory: { max_lag: 30s }`): while its oldest undelivered
//! record is older than that, [`Engine::audit_gate`] refuses what hands out access
//! (certificates, database credentials, checkouts, gateway sessions) with `audit_sink_behind`,
//! and lets it through again by itself once the sink has caught up.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use warrant_siem::{Format, Sink};
use warrant_store::AuditQuery;

use crate::error::{EngineError, Result};
use crate::{Actor, Engine, require_role};

/// How often an idle worker looks for new records.
const POLL: Duration = Duration::from_millis(200);
/// The longest wait between two attempts on a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One sink in the server config's `audit: sinks:` list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Its name: the key of its cursor (renaming a sink starts it over).
    pub name: String,
    /// RFC 5424 syslog over TCP or TLS.
    #[serde(default)]
    pub syslog: Option<warrant_siem::syslog::SyslogConfig>,
    /// An HTTP webhook.
    #[serde(default)]
    pub webhook: Option<warrant_siem::webhook::WebhookConfig>,
    /// A JSON-lines file.
    #[serde(default)]
    pub file: Option<warrant_siem::file::FileConfig>,
    /// `ocsf` (default) or `jsonl`.
    #[serde(default)]
    pub format: Format,
    /// Records per delivery (default 500).
    #[serde(default)]
    pub batch: Option<i64>,
    /// Where a sink with no cursor yet starts: `beginning` (default: the whole trail) or
    /// `end` (from the records made after it is added).
    #[serde(default)]
    pub start: Option<String>,
    /// Refuse to hand out access while this sink is behind.
    #[serde(default)]
    pub mandatory: Option<Mandatory>,
}

/// `mandatory:` of a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandatory {
    /// How far behind (the age of its oldest undelivered record) the sink may be, e.g. `30s`.
    pub max_lag: String,
}

/// A sink's state as `warrant audit sinks` and `GET /api/v1/audit/sinks` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkStatus {
    /// Its name.
    pub name: String,
    /// `syslog`, `webhook` or `file`.
    pub kind: String,
    /// The last record delivered.
    pub cursor: i64,
    /// The chain's head when the worker last looked.
    pub head: i64,
    /// Records not yet delivered.
    pub lag_records: i64,
    /// Age of the oldest undelivered record, seconds (0 when caught up).
    pub lag_seconds: f64,
    /// Records delivered since the server started.
    pub delivered: u64,
    /// Failed deliveries since the server started.
    pub errors: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// For a mandatory sink: its limit, seconds.
    pub max_lag_seconds: Option<u64>,
    /// A mandatory sink over its limit: access is being refused.
    pub blocking: bool,
}

/// The delivery state of every sink, shared by the workers, the gate and the listing.
#[derive(Debug, Default)]
pub struct SinkBoard {
    sinks: Mutex<BTreeMap<String, Slot>>,
    /// Where retention writes its archives (`audit.retention.archive_dir`).
    archive_dir: Mutex<Option<std::path::PathBuf>>,
    /// One pruning at a time (the scheduled one and one by hand would write the same archive).
    pub(crate) prune: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Slot {
    status: SinkStatus,
    /// When the oldest undelivered record was made (ms), 0 when caught up.
    pending_since_ms: i64,
}

impl SinkBoard {
    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.sinks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Slot)) {
        let mut sinks = self.slots();
        if let Some(slot) = sinks.get_mut(name) {
            f(slot);
        }
    }
}

impl Engine {
    /// Checks every sink's settings (a wrong one fails the start, with what to fix) and starts
    /// one worker per sink, until `stop` turns true.
    pub fn start_sinks(
        &self,
        configs: &[SinkConfig],
        stop: &watch::Receiver<bool>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>> {
        let mut names = std::collections::HashSet::new();
        let mut ready = Vec::new();
        for c in configs {
            let bad = |m: String| {
                EngineError::invalid("invalid_sink", format!("audit sink {:?}: {m}", c.name))
            };
            if c.name.is_empty() || !names.insert(c.name.clone()) {
                return Err(bad("each sink needs a name of its own".to_owned()));
            }
            let sink = match (&c.syslog, &c.webhook, &c.file) {
                (Some(s), None, None) => {
                    warrant_siem::syslog::SyslogSink::new(s.clone(), c.format).map(Sink::Syslog)
                }
                (None, Some(w), None) => {
                    warrant_siem::webhook::WebhookSink::new(w, c.format, self.inner.clock.clone())
                        .map(Sink::Webhook)
                }
                (None, None, Some(f)) => {
                    warrant_siem::file::FileSink::new(f.clone(), c.format).map(Sink::File)
                }
                _ => {
                    return Err(bad(
                        "give exactly one of syslog:, webhook: or file:".to_owned()
                    ));
                }
            }
            .map_err(|e| bad(e.to_string()))?;
            let max_lag = c
                .mandatory
                .as_ref()
                .map(|m| {
                    humantime::parse_duration(m.max_lag.trim())
                        .map(|d| d.as_secs().max(1))
                        .map_err(|_| {
                            bad(format!(
                                "max_lag {:?} is not a duration such as 30s",
                                m.max_lag
                            ))
                        })
                })
                .transpose()?;
            let batch = c.batch.unwrap_or(500);
            if !(1..=10_000).contains(&batch) {
                return Err(bad("batch must be 1 to 10000".to_owned()));
            }
            let from_end = match c.start.as_deref() {
                None | Some("beginning") => false,
                Some("end") => true,
                Some(other) => {
                    return Err(bad(format!("start {other:?} is not beginning or end")));
                }
            };
            ready.push((c.name.clone(), sink, max_lag, batch, from_end));
        }
        let mut handles = Vec::new();
        for (name, sink, max_lag, batch, from_end) in ready {
            {
                self.inner.sinks.slots().insert(
                    name.clone(),
                    Slot {
                        status: SinkStatus {
                            name: name.clone(),
                            kind: sink.kind().to_owned(),
                            max_lag_seconds: max_lag,
                            ..SinkStatus::default()
                        },
                        pending_since_ms: 0,
                    },
                );
            }
            let engine = self.clone();
            let stop = stop.clone();
            handles.push(tokio::spawn(async move {
                engine.run_sink(name, sink, batch, from_end, stop).await;
            }));
        }
        Ok(handles)
    }

    /// Sets where retention writes its archives.
    pub fn set_audit_archive_dir(&self, dir: std::path::PathBuf) {
        *self
            .inner
            .sinks
            .archive_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dir);
    }

    /// Retention by hand: prunes the records made before `before_ms` into the configured
    /// archive directory (admins).
    pub async fn audit_prune_now(
        &self,
        actor: &Actor,
        before_ms: i64,
    ) -> Result<crate::audittrail::PruneReport> {
        require_role(actor, warrant_core::SystemRole::Admin)?;
        let dir = self
            .inner
            .sinks
            .archive_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                EngineError::conflict(
                    "no_archive_dir",
                    "this server has no audit archive directory (audit: retention: archive_dir:)",
                )
            })?;
        if before_ms > self.now().millis() {
            return Err(EngineError::invalid(
                "invalid_before",
                "--before is in the future: only records already made can be pruned",
            ));
        }
        self.audit_prune(Some(actor), before_ms, &dir).await
    }

    /// The names of the sinks started in this process.
    pub(crate) fn sink_names(&self) -> Vec<String> {
        let sinks = self.inner.sinks.slots();
        sinks.keys().cloned().collect()
    }

    /// Every sink's state (auditors and admins).
    pub fn sink_statuses(&self, actor: &Actor) -> Result<Vec<SinkStatus>> {
        require_role(actor, warrant_core::SystemRole::Auditor)?;
        let now = self.now().millis();
        let sinks = self.inner.sinks.slots();
        Ok(sinks
            .values()
            .map(|slot| {
                let mut s = slot.status.clone();
                s.lag_seconds = lag_seconds(now, slot.pending_since_ms);
                s.blocking = s
                    .max_lag_seconds
                    .is_some_and(|max| s.lag_seconds > max as f64);
                s
            })
            .collect())
    }

    /// Refuses while a mandatory sink is further behind than its limit: called before
    /// anything that hands out access.
    pub fn audit_gate(&self) -> Result<()> {
        let now = self.now().millis();
        let sinks = self.inner.sinks.slots();
        for slot in sinks.values() {
            let Some(max) = slot.status.max_lag_seconds else {
                continue;
            };
            let lag = lag_seconds(now, slot.pending_since_ms);
            if lag > max as f64 {
                return Err(EngineError::unavailable(
                    "audit_sink_behind",
                    format!(
                        "the mandatory audit sink {:?} is {lag:.0} s behind (limit {max} s): access is refused until it catches up; see `warrant audit sinks`",
                        slot.status.name
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn run_sink(
        &self,
        name: String,
        mut sink: Sink,
        batch: i64,
        from_end: bool,
        mut stop: watch::Receiver<bool>,
    ) {
        let board = &self.inner.sinks;
        let mut backoff = Duration::from_secs(1);
        let mut cursor: Option<i64> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            let step = self
                .sink_step(&name, &mut sink, batch, from_end, &mut cursor)
                .await;
            let wait = match step {
                Ok(true) => {
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Ok(false) => POLL,
                Err(e) => {
                    let now = self.now();
                    let message = e.to_string();
                    tracing::warn!(sink = %name, error = %message, "audit sink delivery failed");
                    metrics::counter!("warrant_audit_sink_errors_total", "sink" => name.clone())
                        .increment(1);
                    board.update(&name, |slot| {
                        slot.status.errors += 1;
                        slot.status.last_error = Some(message);
                        slot.status.last_error_at = Some(now.rfc3339());
                    });
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }

    /// One step of a worker: `Ok(true)` when it delivered a batch (there may be more), `Ok(false)`
    /// when caught up.
    async fn sink_step(
        &self,
        name: &str,
        sink: &mut Sink,
        batch: i64,
        from_end: bool,
        cursor: &mut Option<i64>,
    ) -> std::result::Result<bool, String> {
        let board = &self.inner.sinks;
        let store_err = |e: warrant_store::StoreError| format!("reading the audit trail: {e}");
        let (head, at) = {
            let mut r = self.store().read().await.map_err(store_err)?;
            let head = r.q().audit_head().await.map_err(store_err)?.0;
            if cursor.is_none() {
                *cursor = Some(match r.q().sink_cursor(name).await.map_err(store_err)? {
                    Some(c) => c,
                    None if from_end => {
                        drop(r);
                        self.store()
                            .set_sink_cursor(name, head, self.now().millis())
                            .await
                            .map_err(store_err)?;
                        head
                    }
                    None => 0,
                });
                return Ok(true);
            }
            let after = cursor.unwrap_or(0);
            let records = if after < head {
                r.q()
                    .audit(&AuditQuery {
                        after_seq: after,
                        limit: batch,
                    })
                    .await
                    .map_err(store_err)?
            } else {
                Vec::new()
            };
            (head, records)
        };
        let after = cursor.unwrap_or(0);
        // Where the sink stands before this batch: on the board and in `/metrics`.
        let pending_since = at.first().map_or(0, |r| r.at_ms);
        board.update(name, |slot| {
            slot.pending_since_ms = pending_since;
            slot.status.cursor = after;
            slot.status.head = head;
            slot.status.lag_records = head - after;
        });
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("warrant_audit_sink_lag_records", "sink" => name.to_owned())
            .set((head - after) as f64);
        metrics::gauge!("warrant_audit_sink_lag_seconds", "sink" => name.to_owned())
            .set(lag_seconds(self.now().millis(), pending_since));
        if at.is_empty() {
            return Ok(false);
        }
        // The sink's own time limits apply inside; this one bounds the whole batch.
        let delivered = tokio::time::timeout(
            warrant_siem::TIMEOUT + Duration::from_secs(5),
            sink.deliver(&at),
        )
        .await
        .map_err(|_| "the sink did not finish the batch in time".to_owned())?;
        delivered.map_err(|e| e.to_string())?;
        let last = at.last().map_or(after, |r| r.seq);
        self.store()
            .set_sink_cursor(name, last, self.now().millis())
            .await
            .map_err(|e| format!("saving the sink's cursor: {e}"))?;
        *cursor = Some(last);
        let n = at.len() as u64;
        metrics::counter!("warrant_audit_sink_delivered_total", "sink" => name.to_owned())
            .increment(n);
        board.update(name, |slot| {
            slot.status.delivered += n;
            slot.status.cursor = last;
            slot.status.lag_records = head - last;
            if last >= head {
                slot.pending_since_ms = 0;
            }
        });
        Ok(true)
    }
}

/// Seconds since `since_ms` (0 for none).
#[allow(clippy::cast_precision_loss)]
fn lag_seconds(now_ms: i64, since_ms: i64) -> f64 {
    if since_ms <= 0 {
        0.0
    } else {
        (now_ms - since_ms).max(0) as f64 / 1000.0
    }
}

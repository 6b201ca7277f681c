//! `auditsearch`: audit search over a large trail (10,000,000 events by default).
//!
//! Fill: events appended through the store's own write path (`Store::begin`,
//! `WriteTx::audit` × `--batch`, `WriteTx::commit`) into a throwaway SQLite store, so the chain
//! is real and the search columns are filled as the server fills them. The trail is a
//! simulation of an organisation: `--identities` people and `--targets` targets, both with a
//! skewed popularity (a few busy ones, a long tail); up to 2,000 access workflows in flight at
//! once, each `request.created` → approvals (or a denial, a cancellation, an expiry) →
//! `grant.created` → certificates, credentials and gateway sessions → `grant.ended` (or
//! `grant.revoked`) → `grant.cleanup_done`, with its own request and grant ids (128 random
//! bits in hex, as `warrant_iam::new_id` makes them); and around them sign-ins, tokens, second factors, SCIM and group
//! changes, scans, and rare changes of policy, rules, factors and keys: 30 kinds in all. Times
//! span `--days` evenly, with jitter that puts some records out of time order, as writers
//! that read the clock before the writer lock do.
//!
//! Then the store is closed and opened again, as a server start on that data directory would
//! (which lets SQLite gather statistics: `PRAGMA optimize`), and each search runs `--reps`
//! times through `Engine::audit_search` (what `GET /api/v1/audit/search` calls; HTTP and JSON
//! are not included), each time with another value (a busy actor or a rare one, another
//! window), pages of 100: median and p99. The plan of each search is printed, before and after
//! the statistics, and must be the same (searches do not depend on statistics).

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use warrant_audit::Event;
use warrant_core::{Name, SystemClock, SystemRole, Timestamp};
use warrant_engine::auditsearch::{AuditPage, AuditSearch};
use warrant_engine::{Actor, Engine, EngineConfig};
use warrant_store::Store;
use warrant_store::audit_search::AuditFilter;

use crate::Common;
use crate::fixture::{close_dir, open};
use crate::report::{Better, Figure, Report, progress};
use crate::stats::{micros, summarise_us};

/// Options of `auditsearch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events in the trail.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Events per fill transaction.
    #[arg(long, default_value_t = 20_000)]
    batch: u64,
    /// Days the trail spans (ending at the start of the run).
    #[arg(long, default_value_t = 90)]
    days: i64,
    /// People (actors and the identities events are about).
    #[arg(long, default_value_t = 5_000)]
    identities: usize,
    /// Targets.
    #[arg(long, default_value_t = 2_000)]
    targets: usize,
    /// Runs of each search, each with other values.
    #[arg(long, default_value_t = 100)]
    reps: usize,
    /// Records per page.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Search this store (a data directory a previous run kept with --keep) instead of
    /// filling a new one.
    #[arg(long)]
    reuse: Option<std::path::PathBuf>,
}

/// xorshift64*: deterministic, fast, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// An index in 0..n where low indices are much more likely (a few busy, a long tail).
    fn skewed(&mut self, n: usize) -> usize {
        ((n as f64 * self.unit().powi(2)) as usize).min(n.saturating_sub(1))
    }
}

fn person(i: usize) -> String {
    format!("user{i:05}")
}

fn admin(i: usize) -> String {
    format!("admin{:02}", i % 20)
}

fn target(i: usize) -> String {
    let kind = ["db", "web", "app", "k8s"][i % 4];
    format!("{kind}-{i:04}")
}

/// A request or grant id as the server makes them: 128 random bits in hex.
fn id(rng: &mut Rng) -> String {
    format!("{:016x}{:016x}", rng.next(), rng.next())
}

/// An access workflow in flight.
struct Flow {
    identity: usize,
    target: usize,
    request_id: String,
    grant_id: String,
    step: u8,
    approvals: u8,
    uses: u8,
}

/// The simulated organisation.
struct Org {
    rng: Rng,
    identities: usize,
    targets: usize,
    flows: Vec<Flow>,
}

const FLOWS: usize = 2_000;

impl Org {
    fn new(identities: usize, targets: usize) -> Self {
        Self {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            identities,
            targets,
            flows: Vec::with_capacity(FLOWS),
        }
    }

    fn flow(&mut self) -> Flow {
        let identity = self.rng.skewed(self.identities);
        let target = self.rng.skewed(self.targets);
        Flow {
            identity,
            target,
            request_id: id(&mut self.rng),
            grant_id: id(&mut self.rng),
            step: 0,
            approvals: self.rng.below(3) as u8,
            uses: self.rng.below(7) as u8,
        }
    }

    /// The next event at `at`: a workflow's next step (60 %) or a background event.
    fn event(&mut self, at: i64) -> (Option<String>, Event) {
        if self.rng.chance(0.6) {
            if self.flows.len() < FLOWS {
                let f = self.flow();
                self.flows.push(f);
            }
            let i = self.rng.below(self.flows.len());
            let (actor, event, done) = self.step(i, at);
            if done {
                let f = self.flow();
                if let Some(slot) = self.flows.get_mut(i) {
                    *slot = f;
                }
            }
            (actor, event)
        } else {
            self.background()
        }
    }

    fn step(&mut self, i: usize, at: i64) -> (Option<String>, Event, bool) {
        let approver = admin(self.rng.below(20));
        let roll = self.rng.unit();
        let serial = (self.rng.next() >> 2) as i64;
        let Some(f) = self.flows.get_mut(i) else {
            return (
                None,
                Event::Signout {
                    identity: person(0),
                },
                true,
            );
        };
        let who = person(f.identity);
        let tgt = target(f.target);
        let step = f.step;
        f.step += 1;
        match step {
            0 => (
                Some(who.clone()),
                Event::RequestCreated {
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                    role: "admin".into(),
                    duration_secs: 3600,
                    reason: "change CHG-1042: rotate the replica's certificates".into(),
                    ticket: Some("CHG-1042".into()),
                    rule: "rule-0001".into(),
                    stages: usize::from(f.approvals),
                },
                false,
            ),
            1 if roll < 0.05 => (
                Some(approver),
                Event::RequestDenied {
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                    note: Some("not during the freeze".into()),
                },
                true,
            ),
            1 if roll < 0.08 => (
                Some(who.clone()),
                Event::RequestCancelled {
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                    note: None,
                },
                true,
            ),
            1 if roll < 0.10 => (
                None,
                Event::RequestExpired {
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                },
                true,
            ),
            s if (1..=f.approvals).contains(&s) => (
                Some(approver),
                Event::RequestApproved {
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                    stage: u32::from(s - 1),
                    complete: s == f.approvals,
                },
                false,
            ),
            s if s == f.approvals + 1 => (
                Some(approver),
                Event::GrantCreated {
                    grant_id: f.grant_id.clone(),
                    request_id: f.request_id.clone(),
                    identity: who,
                    target: tgt,
                    role: "admin".into(),
                    starts_at: Timestamp::from_millis(at).rfc3339(),
                    ends_at: Timestamp::from_millis(at + 3_600_000).rfc3339(),
                },
                false,
            ),
            s if s <= f.approvals + 1 + f.uses => {
                let e = match (s - f.approvals) % 3 {
                    0 => Event::SshCertIssued {
                        identity: who.clone(),
                        target: tgt,
                        role: "admin".into(),
                        grant_id: f.grant_id.clone(),
                        serial,
                        principals: vec!["root".into()],
                        valid_before: Timestamp::from_millis(at + 3_600_000).rfc3339(),
                    },
                    1 => Event::GatewaySessionStarted {
                        session_id: format!("s{serial:x}"),
                        kind: "ssh".into(),
                        identity: who.clone(),
                        target: tgt,
                        account: "root".into(),
                        grant_id: f.grant_id.clone(),
                    },
                    _ => Event::GatewaySessionEnded {
                        session_id: format!("s{serial:x}"),
                        identity: who.clone(),
                        target: tgt,
                        reason: "closed".into(),
                        bytes_up: 4_096,
                        bytes_down: 65_536,
                        recording_sha256: None,
                    },
                };
                (Some(who), e, false)
            }
            s if s == f.approvals + 2 + f.uses => {
                if roll < 0.05 {
                    (
                        Some(approver),
                        Event::GrantRevoked {
                            grant_id: f.grant_id.clone(),
                            identity: who,
                            target: tgt,
                            role: "admin".into(),
                            reason: "incident closed".into(),
                        },
                        false,
                    )
                } else {
                    (
                        None,
                        Event::GrantEnded {
                            grant_id: f.grant_id.clone(),
                            identity: who,
                            target: tgt,
                            role: "admin".into(),
                            lag_ms: 12,
                        },
                        false,
                    )
                }
            }
            _ => (
                None,
                Event::CleanupDone {
                    grant_id: f.grant_id.clone(),
                    attempts: 1,
                },
                true,
            ),
        }
    }

    fn background(&mut self) -> (Option<String>, Event) {
        let who = person(self.rng.skewed(self.identities));
        let by = admin(self.rng.below(20));
        let tgt = target(self.rng.skewed(self.targets));
        let roll = self.rng.unit();
        let token = format!("{:016x}", self.rng.next());
        let via = || "admin".to_owned();
        match roll {
            r if r < 0.35 => (
                Some(who.clone()),
                Event::SigninSucceeded {
                    identity: who,
                    source: "10.1.2.3".into(),
                },
            ),
            r if r < 0.45 => (
                None,
                Event::SigninFailed {
                    identity: who,
                    source: "10.1.2.3".into(),
                    reason: "bad_password".into(),
                },
            ),
            r if r < 0.60 => (
                Some(who.clone()),
                Event::TokenIssued {
                    identity: who,
                    token_id: token,
                    kind: "session".into(),
                    label: "cli".into(),
                    scope: "full".into(),
                },
            ),
            r if r < 0.78 => (
                Some(who.clone()),
                Event::MfaVerified {
                    identity: who,
                    method: "totp".into(),
                    purpose: "step-up".into(),
                },
            ),
            r if r < 0.80 => (
                Some(who.clone()),
                Event::MfaFailed {
                    identity: who,
                    purpose: "step-up".into(),
                    reason: "wrong_code".into(),
                },
            ),
            r if r < 0.88 => (
                Some(by),
                Event::ScimResourceSaved {
                    kind: "user".into(),
                    scim_id: token,
                    name: who,
                    version: 3,
                },
            ),
            r if r < 0.93 => (
                Some(by),
                Event::IdentityUpdated {
                    identity: who,
                    changed: vec!["email".into()],
                    via: via(),
                },
            ),
            r if r < 0.97 => (
                Some(by),
                Event::MemberAdded {
                    group: "ops".into(),
                    identity: who,
                    via: via(),
                },
            ),
            r if r < 0.995 => (
                Some(by),
                Event::DiscoveryScanned {
                    target: tgt,
                    scan_id: token,
                    accounts: 12,
                    managed: 9,
                    unmanaged: 2,
                    orphaned: 1,
                    differences: 0,
                },
            ),
            r if r < 0.998 => (
                Some(by),
                Event::RuleSaved {
                    rule: format!("rule-{token}"),
                    target: tgt,
                    created: false,
                    settings: serde_json::json!({"max_duration_secs": 3600}),
                },
            ),
            r if r < 0.9993 => (
                Some(by),
                Event::PolicySaved {
                    policy: "critical-max-1h".into(),
                    created: false,
                    sha256: token,
                },
            ),
            r if r < 0.99999 => (
                Some(by),
                Event::MfaReset {
                    identity: who,
                    factors_removed: 1,
                },
            ),
            _ => (
                Some(by),
                Event::VaultRekeyed {
                    kek_id: token,
                    new_kek: true,
                    rewrapped: 4_000,
                    unchanged: 0,
                },
            ),
        }
    }
}

/// Appends `args.events` events; returns the time span (first, last ms).
async fn fill(store: &Store, args: &Args, report: &mut Report) -> Result<(i64, i64)> {
    let end = warrant_core::Clock::now(&SystemClock).millis();
    let span = args.days.max(1) * 86_400_000;
    let start = end - span;
    let n = args.events.max(1);
    let mut org = Org::new(args.identities, args.targets);
    let started = Instant::now();
    let mut last_note = Instant::now();
    let mut done = 0_u64;
    while done < n {
        let k = args.batch.max(1).min(n - done);
        let mut tx = store.begin().await?;
        for i in done..done + k {
            // Even spread, then up to 250 ms of jitter either way: some records land out of
            // time order.
            let at = start
                + (i128::from(span) * i128::from(i) / i128::from(n)) as i64
                + org.rng.below(500) as i64
                - 250;
            let (actor, event) = org.event(at);
            tx.audit(Timestamp::from_millis(at), actor.as_deref(), &event)
                .await?;
        }
        tx.commit().await?;
        done += k;
        if last_note.elapsed().as_secs() >= 15 {
            last_note = Instant::now();
            progress(&format!(
                "auditsearch: {done} of {n} events ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            ));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    report.add(Figure::new(
        "auditsearch.fill.events_per_s",
        n as f64 / secs,
        "events/s",
        Better::Higher,
        format!(
            "{n} events in {secs:.0} s, {} per transaction, through WriteTx::audit with every search index",
            args.batch
        ),
    ));
    Ok((start, end))
}

/// Total size of the store's files, in bytes.
fn store_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("warrant.db"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The search for run `i` of a case.
type MakeSearch = Box<dyn Fn(usize, &mut Rng) -> AuditSearch>;

/// A search to time: its name, what it shows, and the search for run `i`.
struct Case {
    name: &'static str,
    what: &'static str,
    make: MakeSearch,
}

/// The filter the store runs for `q` (to show its plan).
fn filter(q: &AuditSearch) -> Result<AuditFilter> {
    let kinds = match &q.kind {
        Some(k) => warrant_engine::auditsearch::expand_kind(k)?,
        None => Vec::new(),
    };
    Ok(AuditFilter {
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        actor: q.actor.clone(),
        identity: q.identity.clone(),
        target: q.target.clone(),
        kinds,
        request_id: q.request_id.clone(),
        grant_id: q.grant_id.clone(),
        after: None,
        before: None,
        descending: q.descending,
        limit: q.limit.unwrap_or(100) + 1,
    })
}

async fn plans(store: &Store, cases: &[Case]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut r = store.read().await?;
    let mut rng = Rng(42);
    for c in cases {
        let q = (c.make)(0, &mut rng);
        let plan = r.q().explain_audit_search(&filter(&q)?).await?;
        out.push(format!("{}: {}", c.name, plan.join(" / ")));
    }
    Ok(out)
}

/// Ids of grants and requests spread over the trail, read back from it.
async fn sample_ids(
    engine: &Engine,
    auditor: &Actor,
    span: (i64, i64),
    n: usize,
) -> Result<Vec<(String, String)>> {
    let mut rng = Rng(7);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n * 2 {
        let from = span.0 + (rng.unit() * (span.1 - span.0) as f64) as i64;
        let page = engine
            .audit_search(
                auditor,
                &AuditSearch {
                    from_ms: Some(from),
                    kind: Some("grant.created".into()),
                    limit: Some(1),
                    ..AuditSearch::default()
                },
            )
            .await?;
        if let Some(r) = page.records.first() {
            let v: serde_json::Value = serde_json::from_str(&r.data)?;
            if let (Some(g), Some(q)) = (v["grant_id"].as_str(), v["request_id"].as_str()) {
                ids.push((g.to_owned(), q.to_owned()));
            }
        }
        if ids.len() >= n {
            break;
        }
    }
    ensure!(!ids.is_empty(), "the trail holds no grant.created event");
    Ok(ids)
}

/// The searches to time, over the trail's time `span`, with grant and request `ids` from it.
fn cases(args: &Args, span: (i64, i64), ids: &[(String, String)]) -> Vec<Case> {
    let day = 86_400_000_i64;
    let (start, end) = span;
    let limit = Some(args.limit);
    let identities = args.identities;
    let targets = args.targets;
    let when = move |rng: &mut Rng, width: i64| {
        let from = start + (rng.unit() * (end - start - width).max(1) as f64) as i64;
        (Some(from), Some(from + width))
    };
    let mut cases: Vec<Case> = Vec::new();
    cases.push(Case {
        name: "latest",
        what: "no filter, newest first (the first page of `audit search --desc`)",
        make: Box::new(move |_, _| AuditSearch {
            limit,
            descending: true,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "time_1h",
        what: "a one-hour window anywhere in the trail, oldest first",
        make: Box::new(move |_, rng| {
            let (from_ms, to_ms) = when(rng, 3_600_000);
            AuditSearch {
                from_ms,
                to_ms,
                limit,
                ..AuditSearch::default()
            }
        }),
    });
    cases.push(Case {
        name: "time_30d",
        what: "a 30-day window, oldest first",
        make: Box::new(move |_, rng| {
            let (from_ms, to_ms) = when(rng, 30 * day);
            AuditSearch {
                from_ms,
                to_ms,
                limit,
                ..AuditSearch::default()
            }
        }),
    });
    for (name, what, descending) in [
        (
            "actor_7d_asc",
            "one actor (busy or not) in a 7-day window, oldest first",
            false,
        ),
        (
            "actor_7d_desc",
            "one actor in a 7-day window, newest first",
            true,
        ),
    ] {
        cases.push(Case {
            name,
            what,
            make: Box::new(move |_, rng| {
                let (from_ms, to_ms) = when(rng, 7 * day);
                AuditSearch {
                    from_ms,
                    to_ms,
                    actor: Some(person(rng.skewed(identities))),
                    limit,
                    descending,
                    ..AuditSearch::default()
                }
            }),
        });
    }
    cases.push(Case {
        name: "identity_all",
        what: "everything about one identity, newest first",
        make: Box::new(move |_, rng| AuditSearch {
            identity: Some(person(rng.below(identities))),
            limit,
            descending: true,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "target_all_desc",
        what: "one target (busy or not), all time, newest first",
        make: Box::new(move |_, rng| AuditSearch {
            target: Some(target(rng.skewed(targets))),
            limit,
            descending: true,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "target_all_asc",
        what: "one target, all time, oldest first",
        make: Box::new(move |_, rng| AuditSearch {
            target: Some(target(rng.below(targets))),
            limit,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "kind_revoked",
        what: "kind grant.revoked (about 1 in 300 events), newest first",
        make: Box::new(move |_, _| AuditSearch {
            kind: Some("grant.revoked".into()),
            limit,
            descending: true,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "kind_rare",
        what: "kind vault.rekeyed (a handful in the trail), all time",
        make: Box::new(move |_, _| AuditSearch {
            kind: Some("vault.rekeyed".into()),
            limit,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "kind_family_24h",
        what: "every grant.* kind (5 kinds) in a 24-hour window, oldest first",
        make: Box::new(move |_, rng| {
            let (from_ms, to_ms) = when(rng, day);
            AuditSearch {
                from_ms,
                to_ms,
                kind: Some("grant.".into()),
                limit,
                ..AuditSearch::default()
            }
        }),
    });
    cases.push(Case {
        name: "identity_kind_family",
        what: "one identity's request.* events, newest first",
        make: Box::new(move |_, rng| AuditSearch {
            identity: Some(person(rng.skewed(identities))),
            kind: Some("request.".into()),
            limit,
            descending: true,
            ..AuditSearch::default()
        }),
    });
    let grant_ids: Vec<String> = ids.iter().map(|(g, _)| g.clone()).collect();
    let request_ids: Vec<String> = ids.iter().map(|(_, r)| r.clone()).collect();
    cases.push(Case {
        name: "grant_id",
        what: "every event of one grant",
        make: Box::new(move |i, _| AuditSearch {
            grant_id: grant_ids.get(i % grant_ids.len()).cloned(),
            limit,
            ..AuditSearch::default()
        }),
    });
    cases.push(Case {
        name: "request_id",
        what: "every event of one request",
        make: Box::new(move |i, _| AuditSearch {
            request_id: request_ids.get(i % request_ids.len()).cloned(),
            limit,
            ..AuditSearch::default()
        }),
    });

    cases
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("warrant-bench-")
        .tempdir_in(&common.data_dir)
        .with_context(|| format!("cannot create a directory in {}", common.data_dir.display()))?;
    let fresh = args.reuse.is_none();
    let dir = args
        .reuse
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let auditor = Actor::internal(Name::new("auditor")?, SystemRole::Auditor);
    let engine = |store: &Store| {
        Engine::new(
            store.clone(),
            std::sync::Arc::new(SystemClock),
            EngineConfig::default(),
        )
    };

    // Fill (or look at the kept store), then note the plans while SQLite has no statistics
    // of the trail yet (it gathered them on the empty table).
    let store = open(&dir).await?;
    let span = if fresh {
        progress(&format!("auditsearch: filling {} events", args.events));
        fill(&store, &args, report).await?
    } else {
        let mut r = store.read().await?;
        let (head, _) = r.q().audit_head().await?;
        let last = r
            .q()
            .audit_position(head)
            .await?
            .context("no head record")?;
        let first = r
            .q()
            .audit_search(&AuditFilter {
                limit: 1,
                ..AuditFilter::default()
            })
            .await?;
        let first = first.first().context("an empty store")?.at_ms;
        report.note(format!(
            "searching the kept store {} ({head} events)",
            dir.display()
        ));
        (first, last.at_ms)
    };
    let ids = sample_ids(&engine(&store).await?, &auditor, span, args.reps).await?;
    let cases = cases(&args, span, &ids);
    let before = if fresh {
        Some(plans(&store, &cases).await?)
    } else {
        None
    };
    store.close().await;

    // Open it again, as a server start would, and search.
    let opened = Instant::now();
    let store = open(&dir).await?;
    let open_secs = opened.elapsed().as_secs_f64();
    let head = {
        let mut r = store.read().await?;
        r.q().audit_head().await?.0
    };
    report.add(Figure::new(
        "auditsearch.store.open_s",
        open_secs,
        "s",
        Better::Lower,
        format!(
            "Store::open_sqlite on {head} events (migrations checked, PRAGMA optimize), as a server start; {:.2} GB on disk",
            store_bytes(&dir) as f64 / 1e9
        ),
    ));
    let engine = engine(&store).await?;
    for c in &cases {
        progress(&format!("auditsearch: {} × {}", c.name, args.reps));
        let mut rng = Rng(1 + c.name.len() as u64);
        let mut us = Vec::with_capacity(args.reps);
        let mut rows = 0_usize;
        for i in 0..args.reps {
            let q = (c.make)(i, &mut rng);
            let t = Instant::now();
            let page = engine.audit_search(&auditor, &q).await?;
            us.push(micros(t.elapsed()));
            rows += page.records.len();
        }
        latency(
            report,
            c.name,
            us,
            format!(
                "{}; {:.1} records per page on average",
                c.what,
                rows as f64 / args.reps.max(1) as f64
            ),
        );
    }
    deep_pages(&engine, &auditor, &args, head, report).await?;
    follow_all(&engine, &auditor, report).await?;

    // The plans, now that SQLite has statistics: they must be those it chose without.
    let after = plans(&store, &cases).await?;
    for p in &after {
        report.note(format!("plan {p}"));
    }
    match before {
        Some(before) => {
            ensure!(
                before == after,
                "a plan changed with statistics:\nbefore {before:#?}\nafter {after:#?}"
            );
            report.note(
                "every plan is the same without statistics (right after the fill) and with them",
            );
        }
        None => report.note("plans not compared: the kept store already had statistics"),
    }
    drop(engine);
    store.close().await;
    if args.reuse.is_some() {
        tmp.close()?;
        Ok(())
    } else {
        close_dir(tmp, common)
    }
}

/// The median and p99 of one search's runs (in microseconds), as two figures.
fn latency(report: &mut Report, name: &str, us: Vec<u64>, what: String) {
    let s = summarise_us(us);
    report.add(Figure::new(
        &format!("auditsearch.{name}.p50_ms"),
        s.p50_ms,
        "ms",
        Better::Lower,
        format!("{what}; {} runs, mean {:.3} ms", s.count, s.mean_ms),
    ));
    report.add(Figure::new(
        &format!("auditsearch.{name}.p99_ms"),
        s.p99_ms,
        "ms",
        Better::Lower,
        format!("max {:.3} ms", s.max_ms),
    ));
}

/// Pages deep in a result: the page after a record halfway through the whole trail, and the
/// 101st page of a busy target's events.
async fn deep_pages(
    engine: &Engine,
    auditor: &Actor,
    args: &Args,
    head: i64,
    report: &mut Report,
) -> Result<()> {
    let limit = Some(args.limit);
    let middle = AuditSearch {
        after: Some(head / 2),
        limit,
        ..AuditSearch::default()
    };
    let busy = AuditSearch {
        target: Some(target(0)),
        limit,
        ..AuditSearch::default()
    };
    let mut q = busy.clone();
    let mut pages = 0;
    for _ in 0..100 {
        let AuditPage { next, .. } = engine.audit_search(auditor, &q).await?;
        let Some(next) = next else { break };
        q.after = Some(next);
        pages += 1;
    }
    for (name, what, q) in [
        (
            "deep_middle",
            format!("the page after record {} (halfway), no filter", head / 2),
            middle,
        ),
        (
            "deep_target",
            format!(
                "page {} of the busiest target's events ({}), oldest first",
                pages + 1,
                target(0)
            ),
            q,
        ),
    ] {
        let mut us = Vec::with_capacity(args.reps);
        for _ in 0..args.reps {
            let t = Instant::now();
            let page = engine.audit_search(auditor, &q).await?;
            us.push(micros(t.elapsed()));
            ensure!(!page.records.is_empty(), "{name}: an empty page");
        }
        latency(report, name, us, what);
    }
    Ok(())
}

/// Every event of the busiest actor, page after page (what `audit search --all` does).
async fn follow_all(engine: &Engine, auditor: &Actor, report: &mut Report) -> Result<()> {
    let mut q = AuditSearch {
        actor: Some(person(0)),
        limit: Some(1000),
        ..AuditSearch::default()
    };
    let t = Instant::now();
    let mut records = 0_usize;
    let mut pages = 0_usize;
    loop {
        let page = engine.audit_search(auditor, &q).await?;
        records += page.records.len();
        pages += 1;
        let Some(next) = page.next else { break };
        q.after = Some(next);
    }
    let secs = t.elapsed().as_secs_f64();
    report.add(Figure::new(
        "auditsearch.follow_all.records_per_s",
        records as f64 / secs,
        "records/s",
        Better::Higher,
        format!(
            "every event of the busiest actor ({}): {records} records in {pages} pages of 1,000 in {secs:.2} s",
            person(0)
        ),
    ));
    Ok(())
}

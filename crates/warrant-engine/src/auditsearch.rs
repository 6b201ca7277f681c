//! Audit search for auditors: the trail filtered by time range, actor, identity, target, event
//! kind (exact, or every kind of a family such as `grant.`), request or grant, in time order,
//! a page at a time.
//!
//! The order is `(at, seq)` (see `warrant_store::audit_search`), oldest first or newest first.
//! A page that is not the last carries `next`, the `seq` of its last record: the following
//! page is the same search with `after = next` (oldest first) or `before = next` (newest
//! first). Pages are keyset pages, so records appended meanwhile never shift them: no gaps, no
//! repeats.
//!
//! A kind this version does not know is refused (`unknown_kind`) rather than searched: a typo
//! must not look like an empty trail.

use warrant_audit::Record;
use warrant_core::SystemRole;
use warrant_store::audit_search::{AuditFilter, Position};

use crate::error::{EngineError, Result};
use crate::{Actor, Engine, require_role};

/// Records per page when the caller names no limit.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most records one page holds; larger limits are cut to this.
pub const MAX_LIMIT: i64 = 1000;
/// The longest value a text filter may have, in bytes.
const MAX_FILTER_LEN: usize = 256;

/// A search as the caller asked it; [`Engine::audit_search`] validates every part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSearch {
    /// Records at or after this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Records before this time (ms since the epoch, exclusive).
    pub to_ms: Option<i64>,
    /// Who acted.
    pub actor: Option<String>,
    /// The identity the event is about.
    pub identity: Option<String>,
    /// The target it touched.
    pub target: Option<String>,
    /// An event kind (`grant.revoked`) or a family of kinds (`grant.` or `grant.*`).
    pub kind: Option<String>,
    /// The request it touched.
    pub request_id: Option<String>,
    /// The grant it touched.
    pub grant_id: Option<String>,
    /// Continue after this record (the `next` of the previous page, oldest first); 0 means
    /// from the start.
    pub after: Option<i64>,
    /// Continue before this record (the `next` of the previous page, newest first).
    pub before: Option<i64>,
    /// Records per page ([`DEFAULT_LIMIT`] when unset, at most [`MAX_LIMIT`]).
    pub limit: Option<i64>,
    /// Newest first.
    pub descending: bool,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The records, in the order asked.
    pub records: Vec<Record>,
    /// When more records match: the `seq` to pass as `after` (oldest first) or `before`
    /// (newest first) for the next page.
    pub next: Option<i64>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> EngineError {
    EngineError::invalid(code, message)
}

/// A text filter: unset, or a non-empty value of printable characters.
fn text(name: &str, v: &Option<String>) -> Result<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    if v.is_empty() {
        return Err(invalid(
            "invalid_filter",
            format!("{name} is empty: give a value or leave the filter out"),
        ));
    }
    if v.len() > MAX_FILTER_LEN {
        return Err(invalid(
            "invalid_filter",
            format!("{name} is longer than {MAX_FILTER_LEN} bytes"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_filter",
            format!("{name} contains control characters"),
        ));
    }
    Ok(Some(v.clone()))
}

/// The known kinds a `kind` filter stands for: itself, or every kind of a family when it ends
/// in `.` or `.*`.
pub fn expand_kind(kind: &str) -> Result<Vec<String>> {
    let known: Vec<&'static str> = warrant_audit::ocsf::kinds().collect();
    let family = kind
        .strip_suffix(".*")
        .or_else(|| kind.strip_suffix('.'))
        .filter(|f| !f.is_empty() && !f.contains('.'));
    let found: Vec<String> = match family {
        Some(f) => known
            .iter()
            .filter(|k| k.split_once('.').is_some_and(|(kf, _)| kf == f))
            .map(|k| (*k).to_owned())
            .collect(),
        None => known
            .iter()
            .filter(|k| **k == kind)
            .map(|k| (*k).to_owned())
            .collect(),
    };
    if !found.is_empty() {
        return Ok(found);
    }
    let wanted = family.unwrap_or_else(|| kind.split('.').next().unwrap_or(kind));
    let same_family: Vec<&str> = known
        .iter()
        .copied()
        .filter(|k| k.split_once('.').is_some_and(|(kf, _)| kf == wanted))
        .collect();
    let hint = if same_family.is_empty() {
        let mut families: Vec<&str> = known
            .iter()
            .filter_map(|k| k.split_once('.').map(|(f, _)| f))
            .collect();
        families.dedup();
        families.sort_unstable();
        families.dedup();
        format!(
            "families: {} (a family ends in a dot, e.g. grant.)",
            families.join(", ")
        )
    } else {
        format!(
            "kinds of {wanted}.: {} (or {wanted}. for all of them)",
            same_family.join(", ")
        )
    };
    Err(invalid(
        "unknown_kind",
        format!("no event kind {kind:?}; {hint}"),
    ))
}

impl Engine {
    /// One page of the audit records that match `q` (auditors and admins only).
    pub async fn audit_search(&self, actor: &Actor, q: &AuditSearch) -> Result<AuditPage> {
        require_role(actor, SystemRole::Auditor)?;
        let limit = match q.limit {
            None => DEFAULT_LIMIT,
            Some(n) if n < 1 => {
                return Err(invalid(
                    "invalid_limit",
                    format!("limit {n} is not a positive number of records"),
                ));
            }
            Some(n) => n.min(MAX_LIMIT),
        };
        if let (Some(from), Some(to)) = (q.from_ms, q.to_ms)
            && from >= to
        {
            return Err(invalid(
                "invalid_time_range",
                "the time range is empty: `from` must be earlier than `to`",
            ));
        }
        let kinds = match &q.kind {
            None => Vec::new(),
            Some(k) => match text("kind", &Some(k.clone()))? {
                Some(k) => expand_kind(&k)?,
                None => Vec::new(),
            },
        };
        let mut f = AuditFilter {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            actor: text("actor", &q.actor)?,
            identity: text("identity", &q.identity)?,
            target: text("target", &q.target)?,
            kinds,
            request_id: text("request_id", &q.request_id)?,
            grant_id: text("grant_id", &q.grant_id)?,
            after: None,
            before: None,
            descending: q.descending,
            // One more than the page, to know whether another page follows.
            limit: limit + 1,
        };
        let mut r = self.store().read().await?;
        f.after = match q.after {
            None | Some(0) => None,
            Some(seq) => Some(position(r.q().audit_position(seq).await?, "after", seq)?),
        };
        f.before = match q.before {
            None => None,
            Some(seq) => Some(position(r.q().audit_position(seq).await?, "before", seq)?),
        };
        let mut records = r.q().audit_search(&f).await?;
        let more = records.len() as i64 > limit;
        records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }
}

fn position(p: Option<Position>, name: &str, seq: i64) -> Result<Position> {
    p.ok_or_else(|| {
        invalid(
            "invalid_cursor",
            format!(
                "{name} {seq} names no audit record: pass the `next` of a previous page (or a record's seq)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Arc;

    use warrant_audit::Event;
    use warrant_core::{ManualClock, Name, Timestamp};
    use warrant_store::Store;

    use super::*;
    use crate::{EngineConfig, ErrorKind};

    /// A small deterministic generator (no dependency for tests).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    const ACTORS: [&str; 4] = ["alice", "bob", "carol", "scim"];
    const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
    const TARGETS: [&str; 3] = ["pg-prod", "web-1", "web-2"];

    /// The event for step `i`: several kinds of several families, each with the refs it has.
    fn event(g: &mut Lcg) -> Event {
        let who = PEOPLE[g.next(5) as usize].to_owned();
        let target = TARGETS[g.next(3) as usize].to_owned();
        let req = format!("r{}", g.next(12));
        let grant = format!("g{}", g.next(12));
        match g.next(7) {
            0 => Event::RequestCreated {
                request_id: req,
                identity: who,
                target,
                role: "admin".into(),
                duration_secs: 3600,
                reason: "incident".into(),
                ticket: None,
                rule: "r".into(),
                stages: 1,
            },
            1 => Event::RequestApproved {
                request_id: req,
                identity: who,
                target,
                stage: 0,
                complete: true,
            },
            2 => Event::GrantCreated {
                grant_id: grant,
                request_id: req,
                identity: who,
                target,
                role: "admin".into(),
                starts_at: "2026-12-02T10:00:00Z".into(),
                ends_at: "2026-12-02T11:00:00Z".into(),
            },
            3 => Event::GrantEnded {
                grant_id: grant,
                identity: who,
                target,
                role: "admin".into(),
                lag_ms: 3,
            },
            4 => Event::CleanupDone {
                grant_id: grant,
                attempts: 1,
            },
            5 => Event::SigninSucceeded {
                identity: who,
                source: "127.0.0.1".into(),
            },
            _ => Event::PolicySaved {
                policy: "p".into(),
                created: false,
                sha256: "00".into(),
            },
        }
    }

    /// What the oracle knows of a record.
    #[derive(Debug, Clone)]
    struct Row {
        seq: i64,
        at: i64,
        actor: Option<String>,
        kind: String,
        refs: warrant_audit::Refs,
    }

    struct Fx {
        engine: Engine,
        rows: Vec<Row>,
        auditor: Actor,
        _dir: Option<tempfile::TempDir>,
    }

    async fn fixture(postgres: bool) -> Fx {
        let (store, dir) = if postgres {
            let pg = warrant_testkit::PgFixture::shared()
                .unwrap_or_else(|e| panic!("PostgreSQL for the audit search tests: {e}"));
            let url = pg.fresh_database().unwrap();
            (Store::open_postgres(&url).await.unwrap(), None)
        } else {
            let dir = tempfile::tempdir().unwrap();
            (Store::open_sqlite(dir.path()).await.unwrap(), Some(dir))
        };
        let t0 = Timestamp::parse_rfc3339("2026-12-02T10:00:00Z").unwrap();
        let clock = ManualClock::new(t0);
        let engine = Engine::new(store.clone(), Arc::new(clock), EngineConfig::default())
            .await
            .unwrap();
        // Times mostly rise, with repeats of one millisecond and steps back (a clock stepped
        // back, or a writer that read the clock before waiting for the lock).
        let mut g = Lcg(7);
        let mut at = t0.millis();
        for _ in 0..30 {
            let mut tx = store.begin().await.unwrap();
            for _ in 0..20 {
                at += match g.next(10) {
                    0 => 0,
                    1 => -1500,
                    _ => 1000,
                };
                let actor = match g.next(5) {
                    4 => None,
                    i => Some(ACTORS[i as usize]),
                };
                tx.audit(Timestamp::from_millis(at), actor, &event(&mut g))
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        let mut r = store.read().await.unwrap();
        let all = r
            .q()
            .audit(&warrant_store::AuditQuery {
                after_seq: 0,
                limit: 100_000,
            })
            .await
            .unwrap();
        let rows = all
            .iter()
            .map(|rec| Row {
                seq: rec.seq,
                at: rec.at_ms,
                actor: rec.actor.clone(),
                kind: rec.kind.clone(),
                refs: Event::refs(&serde_json::from_str(&rec.data).unwrap()),
            })
            .collect();
        Fx {
            engine,
            rows,
            auditor: Actor::internal(Name::new("audra").unwrap(), SystemRole::Auditor),
            _dir: dir,
        }
    }

    fn oracle(rows: &[Row], q: &AuditSearch) -> Vec<i64> {
        let kinds = q
            .kind
            .as_deref()
            .map(|k| expand_kind(k).unwrap())
            .unwrap_or_default();
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let mut hits: Vec<&Row> = rows
            .iter()
            .filter(|r| q.from_ms.is_none_or(|f| r.at >= f))
            .filter(|r| q.to_ms.is_none_or(|t| r.at < t))
            .filter(|r| eq(&q.actor, &r.actor))
            .filter(|r| eq(&q.identity, &r.refs.identity))
            .filter(|r| eq(&q.target, &r.refs.target))
            .filter(|r| eq(&q.request_id, &r.refs.request_id))
            .filter(|r| eq(&q.grant_id, &r.refs.grant_id))
            .filter(|r| kinds.is_empty() || kinds.contains(&r.kind))
            .collect();
        hits.sort_by_key(|r| (r.at, r.seq));
        if q.descending {
            hits.reverse();
        }
        hits.iter().map(|r| r.seq).collect()
    }

    /// Every page of `q` with `limit` records per page, followed through `next`.
    async fn all_pages(fx: &Fx, q: &AuditSearch, limit: i64) -> Vec<i64> {
        let mut q = AuditSearch {
            limit: Some(limit),
            ..q.clone()
        };
        let mut seen = Vec::new();
        for _ in 0..10_000 {
            let page = fx.engine.audit_search(&fx.auditor, &q).await.unwrap();
            assert!(page.records.len() as i64 <= limit);
            seen.extend(page.records.iter().map(|r| r.seq));
            let Some(next) = page.next else { return seen };
            assert_eq!(page.records.len() as i64, limit, "a short page with a next");
            if q.descending {
                q.before = Some(next);
            } else {
                q.after = Some(next);
            }
        }
        panic!("paging did not end");
    }

    fn searches(fx: &Fx) -> Vec<AuditSearch> {
        let mid = fx.rows[fx.rows.len() / 2].at;
        let s = |v: &str| Some(v.to_owned());
        let base = AuditSearch::default();
        vec![
            base.clone(),
            AuditSearch {
                from_ms: Some(mid - 40_000),
                to_ms: Some(mid + 40_000),
                ..base.clone()
            },
            AuditSearch {
                from_ms: Some(mid),
                ..base.clone()
            },
            AuditSearch {
                actor: s("alice"),
                ..base.clone()
            },
            AuditSearch {
                actor: s("bob"),
                to_ms: Some(mid),
                ..base.clone()
            },
            AuditSearch {
                identity: s("dave"),
                ..base.clone()
            },
            AuditSearch {
                target: s("web-1"),
                from_ms: Some(mid - 100_000),
                ..base.clone()
            },
            AuditSearch {
                kind: s("grant.created"),
                ..base.clone()
            },
            AuditSearch {
                kind: s("grant."),
                ..base.clone()
            },
            AuditSearch {
                kind: s("request.*"),
                from_ms: Some(mid - 60_000),
                to_ms: Some(mid + 90_000),
                ..base.clone()
            },
            AuditSearch {
                request_id: s("r3"),
                ..base.clone()
            },
            AuditSearch {
                grant_id: s("g5"),
                ..base.clone()
            },
            AuditSearch {
                grant_id: s("g5"),
                kind: s("grant.ended"),
                ..base.clone()
            },
            AuditSearch {
                actor: s("carol"),
                target: s("pg-prod"),
                kind: s("grant."),
                ..base.clone()
            },
            AuditSearch {
                identity: s("nobody"),
                ..base
            },
        ]
    }

    async fn pages_hold_every_match_once_in_order(postgres: bool) {
        let fx = fixture(postgres).await;
        assert_eq!(fx.rows.len(), 600);
        assert!(
            fx.rows.windows(2).any(|w| w[1].at < w[0].at),
            "the trail should have steps back in time"
        );
        for q in searches(&fx) {
            for descending in [false, true] {
                let q = AuditSearch {
                    descending,
                    ..q.clone()
                };
                let want = oracle(&fx.rows, &q);
                assert!(
                    !want.is_empty() || q.identity.as_deref() == Some("nobody"),
                    "{q:?} matches nothing: a weak case"
                );
                for limit in [1, 7, 1000] {
                    let got = all_pages(&fx, &q, limit).await;
                    assert_eq!(got, want, "{q:?} in pages of {limit}");
                }
            }
        }
        // A window between two records, both ways.
        let (a, b) = (fx.rows[100].seq, fx.rows[400].seq);
        let (pa, pb) = ((fx.rows[100].at, a), (fx.rows[400].at, b));
        let (lo, hi) = (pa.min(pb), pa.max(pb));
        let mut want: Vec<&Row> = fx
            .rows
            .iter()
            .filter(|r| (r.at, r.seq) > lo && (r.at, r.seq) < hi)
            .collect();
        want.sort_by_key(|r| (r.at, r.seq));
        let want: Vec<i64> = want.iter().map(|r| r.seq).collect();
        let q = AuditSearch {
            after: Some(lo.1),
            before: Some(hi.1),
            limit: Some(1000),
            ..AuditSearch::default()
        };
        let page = fx.engine.audit_search(&fx.auditor, &q).await.unwrap();
        let got: Vec<i64> = page.records.iter().map(|r| r.seq).collect();
        assert_eq!(got, want);
        assert_eq!(page.next, None);
    }

    async fn refusals(postgres: bool) {
        let fx = fixture(postgres).await;
        let user = Actor::internal(Name::new("alice").unwrap(), SystemRole::User);
        let e = fx
            .engine
            .audit_search(&user, &AuditSearch::default())
            .await
            .unwrap_err();
        assert_eq!((e.kind, e.code), (ErrorKind::Forbidden, "forbidden"));
        let s = |v: &str| Some(v.to_owned());
        for (q, code) in [
            (
                AuditSearch {
                    limit: Some(0),
                    ..AuditSearch::default()
                },
                "invalid_limit",
            ),
            (
                AuditSearch {
                    from_ms: Some(10),
                    to_ms: Some(10),
                    ..AuditSearch::default()
                },
                "invalid_time_range",
            ),
            (
                AuditSearch {
                    kind: s("grant.revoke"),
                    ..AuditSearch::default()
                },
                "unknown_kind",
            ),
            (
                AuditSearch {
                    kind: s("nonsense."),
                    ..AuditSearch::default()
                },
                "unknown_kind",
            ),
            (
                AuditSearch {
                    actor: s(""),
                    ..AuditSearch::default()
                },
                "invalid_filter",
            ),
            (
                AuditSearch {
                    target: s("a\nb"),
                    ..AuditSearch::default()
                },
                "invalid_filter",
            ),
            (
                AuditSearch {
                    after: Some(1_000_000),
                    ..AuditSearch::default()
                },
                "invalid_cursor",
            ),
            (
                AuditSearch {
                    before: Some(-1),
                    ..AuditSearch::default()
                },
                "invalid_cursor",
            ),
        ] {
            let e = fx.engine.audit_search(&fx.auditor, &q).await.unwrap_err();
            assert_eq!((e.kind, e.code), (ErrorKind::Invalid, code), "{q:?}: {e}");
        }
        let e = expand_kind("grant.revoke").unwrap_err();
        assert!(e.message.contains("grant.revoked"), "{e}");
        // A large limit is cut to the most a page holds.
        let q = AuditSearch {
            limit: Some(1_000_000),
            ..AuditSearch::default()
        };
        let page = fx.engine.audit_search(&fx.auditor, &q).await.unwrap();
        assert_eq!(page.records.len(), 600);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_hold_every_match_once_in_order_sqlite() {
        pages_hold_every_match_once_in_order(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_hold_every_match_once_in_order_postgres() {
        pages_hold_every_match_once_in_order(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_searches_are_refused_with_their_code_sqlite() {
        refusals(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_searches_are_refused_with_their_code_postgres() {
        refusals(true).await;
    }

    /// Each filter reads its own index on SQLite, the time bounds and the page's position as
    /// part of the index range where the index has them (the plans the benchmark measures).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_filter_reads_its_index() {
        let fx = fixture(false).await;
        let s = |v: &str| Some(v.to_owned());
        let base = AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        };
        for (f, index) in [
            (
                AuditFilter {
                    from_ms: Some(1),
                    to_ms: Some(2),
                    ..base.clone()
                },
                "audit_at_seq (at>? AND at<?)",
            ),
            (
                AuditFilter {
                    actor: s("alice"),
                    target: s("web-1"),
                    from_ms: Some(1),
                    after: Some(Position { at_ms: 5, seq: 3 }),
                    ..base.clone()
                },
                "audit_actor (actor=? AND at>?)",
            ),
            (
                AuditFilter {
                    identity: s("alice"),
                    descending: true,
                    ..base.clone()
                },
                "audit_identity",
            ),
            (
                AuditFilter {
                    target: s("web-1"),
                    kinds: vec!["grant.created".into()],
                    ..base.clone()
                },
                "audit_target",
            ),
            (
                AuditFilter {
                    kinds: vec!["grant.created".into(), "grant.ended".into()],
                    to_ms: Some(10),
                    ..base.clone()
                },
                "audit_kind (kind=? AND at<?)",
            ),
            (
                AuditFilter {
                    request_id: s("r1"),
                    ..base.clone()
                },
                "audit_request",
            ),
            (
                AuditFilter {
                    grant_id: s("g1"),
                    actor: s("alice"),
                    ..base
                },
                "audit_grant",
            ),
        ] {
            let mut r = fx.engine.store().read().await.unwrap();
            let plan = r.q().explain_audit_search(&f).await.unwrap().join("\n");
            assert!(plan.contains(index), "{f:?} does not use {index}:\n{plan}");
            assert!(
                !plan.contains("SCAN audit\n") && !plan.ends_with("SCAN audit"),
                "{f:?} scans the table:\n{plan}"
            );
        }
    }
}

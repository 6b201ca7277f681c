//! Audit search: the audit trail filtered by time, actor, identity, target, kind, request or
//! grant, in time order, a page at a time.
//!
//! Results are ordered by `(at, seq)`: time, then position in the chain for records of the same
//! millisecond. That is the chain's order whenever the clock did not step back, and it lets
//! every filter index end in `(at, seq)`, so that a time range and the page's position are one
//! contiguous range of the index, whatever the filter (see the last migration in
//! [`crate::schema::MIGRATIONS`]). A page continues after (or before) a record: its position
//! `(at, seq)`, found from its `seq` with [`Q::audit_position`].
//!
//! One index drives each query, chosen here in a fixed order of selectivity (request, grant,
//! actor, identity, target, kind, time); the other equality filters are written as
//! `col || '' = $n`, which no index can serve, so that neither backend's planner can wander off
//! to a less selective index when its statistics are stale. Several kinds (a prefix such as
//! `grant.`) that drive the query become one index range per kind, each cut at the page's size,
//! merged by `UNION ALL`: a page costs at most `kinds × limit` index entries.
//!
//! Values are only ever bound (`$n`), never written into the statement.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};
use warrant_audit::Record;

use crate::{Q, Result};

/// A record's position in search order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Its time, ms since the epoch.
    pub at_ms: i64,
    /// Its sequence number.
    pub seq: i64,
}

/// What to search for. Every filter that is set must hold; unset filters match everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
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
    /// Any of these kinds (empty: any kind).
    pub kinds: Vec<String>,
    /// The request it touched.
    pub request_id: Option<String>,
    /// The grant it touched.
    pub grant_id: Option<String>,
    /// Only records after this one (in `(at, seq)` order).
    pub after: Option<Position>,
    /// Only records before this one (in `(at, seq)` order).
    pub before: Option<Position>,
    /// Newest first.
    pub descending: bool,
    /// At most this many (the caller caps it).
    pub limit: i64,
}

/// More kinds than this that drive a query are read with one `IN` instead of a range each.
const MAX_KIND_RANGES: usize = 16;

const COLS: &str = "seq, at, actor, kind, data, prev_hash, hash";

#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Text(String),
}

/// A statement being built, with its bound values in placeholder order.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    binds: Vec<Val>,
}

impl Sql {
    /// A new placeholder bound to `v`.
    fn arg(&mut self, v: Val) -> String {
        self.binds.push(v);
        format!("${}", self.binds.len())
    }

    fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text.clone()));
        for v in &self.binds {
            q = match v {
                Val::Int(i) => q.bind(*i),
                Val::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }
}

/// The column whose index drives the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// An equality filter on this column (its index is `(col, at, seq)` or `(col)`).
    Column(&'static str),
    /// The kinds (`(kind, at, seq)`), one range each.
    Kinds,
    /// Time alone (`(at, seq)`).
    Time,
}

impl AuditFilter {
    /// The equality filters, most selective first.
    fn equalities(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("request_id", self.request_id.as_ref()),
            ("grant_id", self.grant_id.as_ref()),
            ("actor", self.actor.as_ref()),
            ("identity", self.identity.as_ref()),
            ("target", self.target.as_ref()),
        ]
    }

    fn driver(&self) -> Driver {
        if let Some((col, _)) = self.equalities().into_iter().find(|(_, v)| v.is_some()) {
            Driver::Column(col)
        } else if !self.kinds.is_empty() {
            Driver::Kinds
        } else {
            Driver::Time
        }
    }

    /// The time bounds, inclusive, with the page's position folded in: one lower and one upper
    /// bound on `at`, so that the index range starts at the page (never at `from`).
    fn at_bounds(&self) -> (Option<i64>, Option<i64>) {
        let lo = [self.from_ms, self.after.map(|p| p.at_ms)]
            .into_iter()
            .flatten()
            .max();
        let hi = [
            self.to_ms.map(|t| t.saturating_sub(1)),
            self.before.map(|p| p.at_ms),
        ]
        .into_iter()
        .flatten()
        .min();
        (lo, hi)
    }

    /// True when no record can match (an empty time range, an empty window).
    fn is_empty(&self) -> bool {
        if self.limit <= 0 {
            return true;
        }
        if let (Some(a), Some(b)) = (self.after, self.before)
            && (a.at_ms, a.seq) >= (b.at_ms, b.seq)
        {
            return true;
        }
        matches!(self.at_bounds(), (Some(lo), Some(hi)) if lo > hi)
    }

    fn order_by(&self) -> &'static str {
        if self.descending {
            " ORDER BY at DESC, seq DESC"
        } else {
            " ORDER BY at, seq"
        }
    }

    /// `SELECT … WHERE …` for one arm; `kind` is the kind this arm drives on, if any.
    fn arm(&self, sql: &mut Sql, driver: Driver, kind: Option<&str>) {
        let mut conds: Vec<String> = Vec::new();
        for (col, v) in self.equalities() {
            if let Some(v) = v {
                let p = sql.arg(Val::Text(v.clone()));
                if driver == Driver::Column(col) {
                    conds.push(format!("{col} = {p}"));
                } else {
                    conds.push(format!("{col} || '' = {p}"));
                }
            }
        }
        match kind {
            Some(k) => {
                let p = sql.arg(Val::Text(k.to_owned()));
                conds.push(format!("kind = {p}"));
            }
            None if !self.kinds.is_empty() => {
                let col = if driver == Driver::Kinds {
                    "kind"
                } else {
                    "kind || ''"
                };
                let ps: Vec<String> = self
                    .kinds
                    .iter()
                    .map(|k| sql.arg(Val::Text(k.clone())))
                    .collect();
                conds.push(format!("{col} IN ({})", ps.join(", ")));
            }
            None => {}
        }
        let (lo, hi) = self.at_bounds();
        if let Some(lo) = lo {
            let p = sql.arg(Val::Int(lo));
            conds.push(format!("at >= {p}"));
        }
        if let Some(hi) = hi {
            let p = sql.arg(Val::Int(hi));
            conds.push(format!("at <= {p}"));
        }
        if let Some(a) = self.after {
            let pa = sql.arg(Val::Int(a.at_ms));
            let ps = sql.arg(Val::Int(a.seq));
            conds.push(format!("(at > {pa} OR seq > {ps})"));
        }
        if let Some(b) = self.before {
            let pb = sql.arg(Val::Int(b.at_ms));
            let ps = sql.arg(Val::Int(b.seq));
            conds.push(format!("(at < {pb} OR seq < {ps})"));
        }
        sql.text.push_str("SELECT ");
        sql.text.push_str(COLS);
        sql.text.push_str(" FROM audit");
        if !conds.is_empty() {
            sql.text.push_str(" WHERE ");
            sql.text.push_str(&conds.join(" AND "));
        }
    }

    /// The statement and its values.
    fn sql(&self) -> Sql {
        let mut sql = Sql::default();
        let driver = self.driver();
        let ranges =
            driver == Driver::Kinds && self.kinds.len() > 1 && self.kinds.len() <= MAX_KIND_RANGES;
        if ranges {
            for (i, k) in self.kinds.iter().enumerate() {
                if i > 0 {
                    sql.text.push_str(" UNION ALL ");
                }
                sql.text.push_str(&format!("SELECT {COLS} FROM ("));
                self.arm(&mut sql, driver, Some(k));
                sql.text.push_str(self.order_by());
                let p = sql.arg(Val::Int(self.limit));
                sql.text.push_str(&format!(" LIMIT {p}) AS k{i}"));
            }
        } else {
            let kind = match self.kinds.as_slice() {
                [only] if driver == Driver::Kinds => Some(only.as_str()),
                _ => None,
            };
            self.arm(&mut sql, driver, kind);
        }
        sql.text.push_str(self.order_by());
        let p = sql.arg(Val::Int(self.limit));
        sql.text.push_str(&format!(" LIMIT {p}"));
        sql
    }
}

impl Q<'_> {
    /// The search position of record `seq`, if it exists.
    pub async fn audit_position(&mut self, seq: i64) -> Result<Option<Position>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT at FROM audit WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(at.map(|at_ms| Position { at_ms, seq }))
    }

    /// The records that match `f`, in `(at, seq)` order (reversed when descending), at most
    /// `f.limit`.
    pub async fn audit_search(&mut self, f: &AuditFilter) -> Result<Vec<Record>> {
        if f.is_empty() {
            return Ok(Vec::new());
        }
        let sql = f.sql();
        let rows = sql.query().fetch_all(&mut *self.0).await?;
        rows.iter().map(crate::queries::record).collect()
    }

    /// How the database would run [`Q::audit_search`] for `f`, one line per plan step (for
    /// the benchmark and the tests that keep each filter on its index).
    pub async fn explain_audit_search(&mut self, f: &AuditFilter) -> Result<Vec<String>> {
        let mut sql = f.sql();
        let sqlite = self.0.backend_name().eq_ignore_ascii_case("sqlite");
        sql.text = if sqlite {
            format!("EXPLAIN QUERY PLAN {}", sql.text)
        } else {
            format!("EXPLAIN {}", sql.text)
        };
        let rows = sql.query().fetch_all(&mut *self.0).await?;
        rows.iter()
            .map(|r| {
                if sqlite {
                    r.try_get::<String, _>("detail")
                } else {
                    r.try_get::<String, _>(0)
                }
                .map_err(Into::into)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn filter() -> AuditFilter {
        AuditFilter {
            limit: 50,
            ..AuditFilter::default()
        }
    }

    #[test]
    fn the_most_selective_filter_drives_and_the_others_are_demoted() {
        let f = AuditFilter {
            actor: Some("alice".into()),
            target: Some("pg-prod".into()),
            grant_id: Some("g1".into()),
            kinds: vec!["grant.created".into()],
            ..filter()
        };
        let sql = f.sql();
        assert!(sql.text.contains("grant_id = $1"), "{}", sql.text);
        assert!(sql.text.contains("actor || '' = $2"), "{}", sql.text);
        assert!(sql.text.contains("target || '' = $3"), "{}", sql.text);
        assert!(sql.text.contains("kind || '' IN ($4)"), "{}", sql.text);
        assert_eq!(sql.binds.len(), 5);
    }

    #[test]
    fn several_driving_kinds_become_one_range_each() {
        let f = AuditFilter {
            kinds: vec!["grant.created".into(), "grant.ended".into()],
            descending: true,
            ..filter()
        };
        let sql = f.sql();
        assert_eq!(sql.text.matches("UNION ALL").count(), 1, "{}", sql.text);
        assert_eq!(
            sql.text.matches("ORDER BY at DESC, seq DESC").count(),
            3,
            "{}",
            sql.text
        );
        assert!(sql.text.contains("kind = $1"), "{}", sql.text);
    }

    #[test]
    fn the_page_position_is_folded_into_the_time_bounds() {
        let f = AuditFilter {
            from_ms: Some(1_000),
            to_ms: Some(5_000),
            after: Some(Position {
                at_ms: 2_000,
                seq: 7,
            }),
            ..filter()
        };
        assert_eq!(f.at_bounds(), (Some(2_000), Some(4_999)));
        let sql = f.sql();
        assert_eq!(sql.text.matches("at >= ").count(), 1, "{}", sql.text);
        assert_eq!(sql.text.matches("at <= ").count(), 1, "{}", sql.text);
        let empty = AuditFilter {
            from_ms: Some(5_000),
            to_ms: Some(5_000),
            ..filter()
        };
        assert!(empty.is_empty());
    }
}

//! `GET /api/v1/audit/search`: audit records filtered by time range, actor, identity, target,
//! kind, request or grant, oldest or newest first, a page at a time.
//!
//! A route of its own rather than more parameters on `GET /api/v1/audit`: that one answers a
//! bare array read by `seq` (`audit tail`, scripts), which has no room for the next page's
//! cursor, and its `after` means "seq greater than" where a search pages in time order.
//!
//! Query parameters (all optional): `from`, `to` (RFC 3339 or ms since the epoch; `from`
//! inclusive, `to` exclusive), `actor`, `identity`, `target`, `kind` (`grant.revoked`, or a
//! family: `grant.` / `grant.*`), `request_id`, `grant_id`, `after`, `before` (a record's
//! `seq`: the `next` of the previous page), `limit` (default 100, at most 1000),
//! `order` (`asc`, the default, or `desc`). An unknown or repeated parameter is refused, never
//! ignored: a misspelt filter must not widen an audit search.

use axum::extract::State;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use warrant_core::Timestamp;
use warrant_engine::Actor;
use warrant_engine::auditsearch::AuditSearch;

use crate::error::ApiError;
use crate::extract::QueryArgs;
use crate::server::AppState;
use crate::wire::AuditOut;

/// One page of a search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPageOut {
    /// The records, in the order asked.
    pub records: Vec<AuditOut>,
    /// When more match: the `seq` to pass as `after` (order `asc`) or `before` (order `desc`)
    /// for the next page; absent on the last page.
    pub next: Option<i64>,
}

const PARAMS: &[&str] = &[
    "from",
    "to",
    "actor",
    "identity",
    "target",
    "kind",
    "request_id",
    "grant_id",
    "after",
    "before",
    "limit",
    "order",
];

/// A time given as RFC 3339 or as ms since the epoch.
fn time(name: &str, v: &str) -> Result<i64, ApiError> {
    let v = v.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    Timestamp::parse_rfc3339(v)
        .map(Timestamp::millis)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_time",
                format!(
                    "{name} {v:?} is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor milliseconds since the epoch"
                ),
            )
        })
}

fn number(name: &str, v: &str, code: &str) -> Result<i64, ApiError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ApiError::invalid(code, format!("{name} {v:?} is not a whole number")))
}

/// The search the query string asks for.
pub fn parse(pairs: &[(String, String)]) -> Result<AuditSearch, ApiError> {
    let mut q = AuditSearch::default();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        let Some(name) = PARAMS.iter().copied().find(|p| p == k) else {
            return Err(ApiError::invalid(
                "unknown_parameter",
                format!(
                    "unknown parameter {k:?}; an audit search takes {}",
                    PARAMS.join(", ")
                ),
            ));
        };
        if seen.contains(&name) {
            return Err(ApiError::invalid(
                "repeated_parameter",
                format!("{name} is given more than once"),
            ));
        }
        seen.push(name);
        let text = Some(v.clone());
        match name {
            "from" => q.from_ms = Some(time(name, v)?),
            "to" => q.to_ms = Some(time(name, v)?),
            "actor" => q.actor = text,
            "identity" => q.identity = text,
            "target" => q.target = text,
            "kind" => q.kind = text,
            "request_id" => q.request_id = text,
            "grant_id" => q.grant_id = text,
            "after" => q.after = Some(number(name, v, "invalid_cursor")?),
            "before" => q.before = Some(number(name, v, "invalid_cursor")?),
            "limit" => q.limit = Some(number(name, v, "invalid_limit")?),
            _ => {
                q.descending = match v.as_str() {
                    "asc" => false,
                    "desc" => true,
                    other => {
                        return Err(ApiError::invalid(
                            "invalid_order",
                            format!("order {other:?} is neither asc nor desc"),
                        ));
                    }
                }
            }
        }
    }
    Ok(q)
}

/// The handler of `GET /api/v1/audit/search` (auditors and admins).
pub async fn search(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    QueryArgs(pairs): QueryArgs<Vec<(String, String)>>,
) -> Result<Json<AuditPageOut>, ApiError> {
    let q = parse(&pairs)?;
    let page = s.engine().audit_search(&a, &q).await?;
    Ok(Json(AuditPageOut {
        records: page.records.iter().map(AuditOut::from).collect(),
        next: page.next,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_parameter_is_read() {
        let q = parse(&pairs(
            "from=2026-12-01T00:00:00Z&to=1796169600001&actor=alice&identity=bob&target=web-1&kind=grant.&request_id=r1&grant_id=g1&after=3&before=9&limit=20&order=desc",
        ))
        .unwrap();
        assert_eq!(
            q,
            AuditSearch {
                from_ms: Some(1_796_083_200_000),
                to_ms: Some(1_796_169_600_001),
                actor: Some("alice".into()),
                identity: Some("bob".into()),
                target: Some("web-1".into()),
                kind: Some("grant.".into()),
                request_id: Some("r1".into()),
                grant_id: Some("g1".into()),
                after: Some(3),
                before: Some(9),
                limit: Some(20),
                descending: true,
            }
        );
        assert_eq!(parse(&[]).unwrap(), AuditSearch::default());
    }

    #[test]
    fn bad_parameters_are_refused_with_their_code() {
        for (q, want) in [
            ("actr=alice", "unknown_parameter"),
            ("actor=a&actor=b", "repeated_parameter"),
            ("from=yesterday", "invalid_time"),
            ("to=2026-13-01T00:00:00Z", "invalid_time"),
            ("after=x", "invalid_cursor"),
            ("limit=ten", "invalid_limit"),
            ("order=up", "invalid_order"),
        ] {
            let e = parse(&pairs(q)).unwrap_err();
            assert!(
                format!("{e:?}").contains(&format!("code: {want:?}")),
                "{q}: {e:?}"
            );
            let answer = axum::response::IntoResponse::into_response(e);
            assert_eq!(answer.status(), axum::http::StatusCode::BAD_REQUEST, "{q}");
        }
    }
}

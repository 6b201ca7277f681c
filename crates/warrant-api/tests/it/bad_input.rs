//! Bad input: each refusal has its status and stable code, and changes nothing. Input refused
//! before the engine leaves the audit chain as it was; a request refused by policy leaves
//! exactly one `request.refused` record and no request or grant.

use reqwest::Method;
use serde_json::{Value, json};
use warrant_api::{Client, ClientError};
use warrant_core::SystemRole;

use crate::harness::{Server, call, expect_err_in, expect_ok, request_body};

/// Sends the call and asserts that it is refused with `status` and `code`, and that the audit
/// chain did not move (nothing was written).
async fn check_untouched(
    s: &Server,
    c: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) -> ClientError {
    let before = s.audit_count().await;
    let what = format!("{method} {path} {body:?}");
    let e = expect_err_in(
        call(c, method.clone(), path, body.clone()).await,
        status,
        code,
        &what,
    );
    let new = s.audit_after(before).await;
    assert!(
        new.is_empty(),
        "{method} {path} {body:?} was refused ({code}) but wrote {new:?}"
    );
    e
}

/// As [`check_untouched`], for raw bytes with an optional content type.
async fn check_raw_untouched(
    s: &Server,
    token: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    status: u16,
    code: &str,
) -> Value {
    let before = s.audit_count().await;
    let (got, v) = s
        .raw(Method::POST, path, Some(token), content_type, body)
        .await;
    assert_eq!(
        (got, v["error"]["code"].as_str()),
        (status, Some(code)),
        "POST {path} ({content_type:?}): {v}"
    );
    assert_eq!(
        s.audit_count().await,
        before,
        "POST {path} wrote to the audit chain"
    );
    v
}

/// Makes a request as `who` and asserts that it is refused with `status` and `code`, that the
/// refusal is the only new audit record (`request.refused`, naming who, what and why), and that
/// no request or grant appeared.
async fn check_refused(s: &Server, who: &str, body: Value, status: u16, code: &str) -> ClientError {
    let c = s.client(&s.fresh_token(who, SystemRole::User).await);
    let before = s.audit_count().await;
    let (requests, grants) = s.requests_and_grants().await;
    let e = expect_err_in(
        call(&c, Method::POST, "/api/v1/requests", Some(body.clone())).await,
        status,
        code,
        &format!("{who} requests {body}"),
    );
    let new = s.audit_after(before).await;
    let kinds: Vec<&str> = new.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["request.refused"],
        "audit records after refusing {body}: {new:?}"
    );
    let data = &new[0]["data"];
    assert_eq!(data["identity"], json!(who), "{data}");
    assert_eq!(data["target"], body["target"], "{data}");
    assert_eq!(data["role"], body["role"], "{data}");
    assert_eq!(data["code"], json!(code), "{data}");
    assert_eq!(new[0]["actor"], json!(who));
    let (requests_after, grants_after) = s.requests_and_grants().await;
    assert_eq!(
        requests_after.len(),
        requests.len(),
        "a refused request was stored: {body}"
    );
    assert_eq!(
        grants_after.len(),
        grants.len(),
        "a refused request made a grant: {body}"
    );
    e
}

async fn alice(s: &Server) -> (Client, String) {
    let t = s.fresh_token("alice", SystemRole::User).await;
    (s.client(&t), t)
}

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    let s = Server::start().await;
    let (_, t) = alice(&s).await;
    let json = Some("application/json");
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/requests",
        json,
        br#"{"target": "pg-prod","#.to_vec(),
        400,
        "malformed_json",
    )
    .await;
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/requests",
        json,
        b"not json".to_vec(),
        400,
        "malformed_json",
    )
    .await;
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/auth/login",
        json,
        b"{".to_vec(),
        400,
        "malformed_json",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_field_is_400_invalid_body_naming_it() {
    let s = Server::start().await;
    let (c, _) = alice(&s).await;
    let mut body = request_body("pg-prod", "readonly", "30m", "report", None);
    body["colour"] = json!("blue");
    let e = check_untouched(
        &s,
        &c,
        Method::POST,
        "/api/v1/requests",
        Some(body),
        400,
        "invalid_body",
    )
    .await;
    assert!(
        e.message.contains("colour"),
        "the message names the field: {}",
        e.message
    );

    let body = json!({"name": "eve", "colour": "blue"});
    let e = check_untouched(
        &s,
        &s.admin,
        Method::POST,
        "/api/v1/identities",
        Some(body),
        400,
        "invalid_body",
    )
    .await;
    assert!(
        e.message.contains("colour"),
        "the message names the field: {}",
        e.message
    );
}

#[tokio::test]
async fn a_wrong_type_is_400_invalid_body() {
    let s = Server::start().await;
    let (c, _) = alice(&s).await;
    for body in [
        json!({"target": 5, "role": "readonly", "duration": "30m", "reason": "x"}),
        json!({"target": "pg-prod", "role": "readonly", "duration": 30, "reason": "x"}),
        json!({"target": "pg-prod", "role": "readonly", "duration": "30m", "reason": ["x"]}),
        json!(["pg-prod", "readonly"]),
        json!({"role": "readonly", "duration": "30m", "reason": "x"}),
    ] {
        check_untouched(
            &s,
            &c,
            Method::POST,
            "/api/v1/requests",
            Some(body),
            400,
            "invalid_body",
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_without_json_content_type_is_415() {
    let s = Server::start().await;
    let (_, t) = alice(&s).await;
    let body =
        serde_json::to_vec(&request_body("pg-prod", "readonly", "30m", "report", None)).unwrap();
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/requests",
        None,
        body.clone(),
        415,
        "unsupported_media_type",
    )
    .await;
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/requests",
        Some("text/plain"),
        body,
        415,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn a_body_over_one_mib_is_413_body_too_large() {
    let s = Server::start().await;
    let (_, t) = alice(&s).await;
    let reason = "x".repeat(warrant_api::server::BODY_LIMIT);
    let body =
        serde_json::to_vec(&request_body("pg-prod", "readonly", "30m", &reason, None)).unwrap();
    assert!(body.len() > 1024 * 1024);
    check_raw_untouched(
        &s,
        &t,
        "/api/v1/requests",
        Some("application/json"),
        body,
        413,
        "body_too_large",
    )
    .await;
}

#[tokio::test]
async fn bad_durations_are_400_invalid_duration() {
    let s = Server::start().await;
    let (c, _) = alice(&s).await;
    for d in ["0s", "-5m", "31d", "soon", "", "30", "1h 30x"] {
        let body = request_body("pg-prod", "readonly", d, "report", None);
        check_untouched(
            &s,
            &c,
            Method::POST,
            "/api/v1/requests",
            Some(body),
            400,
            "invalid_duration",
        )
        .await;
    }
    let body = json!({"name": "ci", "expires_in": "soon"});
    check_untouched(
        &s,
        &c,
        Method::POST,
        "/api/v1/tokens",
        Some(body),
        400,
        "invalid_duration",
    )
    .await;
}

#[tokio::test]
async fn a_duration_beyond_the_rule_maximum_is_400_duration_exceeds_max() {
    let s = Server::start().await;
    // web-1 root: the ops rule allows 2h; no policy caps a tier-2 target.
    let e = check_refused(
        &s,
        "carol",
        request_body("web-1", "root", "3h", "deploy", None),
        400,
        "duration_exceeds_max",
    )
    .await;
    assert!(
        e.message.contains("2h"),
        "the message says the maximum: {}",
        e.message
    );
    // pg-prod readonly: the dba rule allows 8h. The demo's critical-max-1h policy would refuse
    // 9h first (see the next test), so take it away to reach the rule's own maximum.
    expect_ok(
        s.admin
            .delete::<Value>("/api/v1/policies/critical-max-1h")
            .await,
        "delete the policy",
    );
    let e = check_refused(
        &s,
        "alice",
        request_body("pg-prod", "readonly", "9h", "report", None),
        400,
        "duration_exceeds_max",
    )
    .await;
    assert!(
        e.message.contains("8h"),
        "the message says the maximum: {}",
        e.message
    );
    // Within the maximum it goes through (readonly needs no approval).
    let c = s.client(&s.fresh_token("alice", SystemRole::User).await);
    let ok = expect_ok(
        c.post::<_, Value>(
            "/api/v1/requests",
            &request_body("pg-prod", "readonly", "8h", "report", None),
        )
        .await,
        "8h",
    );
    assert_eq!(ok["status"], json!("approved"), "{ok}");
}

#[tokio::test]
async fn a_duration_over_a_forbid_policy_is_403_not_eligible_naming_the_policy() {
    let s = Server::start().await;
    // critical-max-1h forbids more than 1h on pg-prod (tier 4), whatever the dba rule allows;
    // a forbid is decided before the rule's settings, so 9h (over the rule's 8h too) gets it.
    for d in ["9h", "2h", "1h1s"] {
        let e = check_refused(
            &s,
            "alice",
            request_body("pg-prod", "readonly", d, "report", None),
            403,
            "not_eligible",
        )
        .await;
        assert!(
            e.message.contains("critical-max-1h"),
            "the message names the policy: {}",
            e.message
        );
    }
}

#[tokio::test]
async fn a_missing_reason_is_400_reason_required() {
    let s = Server::start().await;
    check_refused(
        &s,
        "alice",
        request_body("pg-prod", "readonly", "30m", "", None),
        400,
        "reason_required",
    )
    .await;
    check_refused(
        &s,
        "alice",
        request_body("pg-prod", "readonly", "30m", "   ", None),
        400,
        "reason_required",
    )
    .await;
    let no_reason_at_all = json!({"target": "pg-prod", "role": "readonly", "duration": "30m"});
    check_refused(&s, "alice", no_reason_at_all, 400, "reason_required").await;
}

#[tokio::test]
async fn pg_prod_admin_needs_a_ticket_matching_the_pattern() {
    let s = Server::start().await;
    let body = |t: Option<&str>| request_body("pg-prod", "admin", "30m", "migration", t);
    check_refused(&s, "alice", body(None), 400, "ticket_required").await;
    check_refused(&s, "alice", body(Some("  ")), 400, "ticket_required").await;
    for bad in ["JIRA-1", "CHG-", "CHG-1 and more", "xCHG-1"] {
        let e = check_refused(&s, "alice", body(Some(bad)), 400, "ticket_mismatch").await;
        assert!(
            e.message.contains("CHG-[0-9]+"),
            "the message gives the pattern: {}",
            e.message
        );
    }
}

#[tokio::test]
async fn an_unknown_target_or_role_is_404() {
    let s = Server::start().await;
    check_refused(
        &s,
        "alice",
        request_body("pg-staging", "readonly", "30m", "x", None),
        404,
        "target_not_found",
    )
    .await;
    check_refused(
        &s,
        "alice",
        request_body("pg-prod", "superuser", "30m", "x", None),
        404,
        "role_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_request_without_a_rule_is_403_not_eligible() {
    let s = Server::start().await;
    let e = check_refused(
        &s,
        "carol",
        request_body("pg-prod", "readonly", "30m", "curious", None),
        403,
        "not_eligible",
    )
    .await;
    assert!(e.message.contains("carol"), "{}", e.message);
}

#[tokio::test]
async fn bad_names_are_400_invalid_name() {
    let s = Server::start().await;
    let (c, _) = alice(&s).await;
    for target in ["pg prod", "-pg", "pg/prod", ""] {
        let body = request_body(target, "readonly", "30m", "x", None);
        check_untouched(
            &s,
            &c,
            Method::POST,
            "/api/v1/requests",
            Some(body),
            400,
            "invalid_name",
        )
        .await;
    }
    for name in ["-eve", "eve smith", "", "eve!", &"e".repeat(1000)] {
        let body = json!({"name": name});
        check_untouched(
            &s,
            &s.admin,
            Method::POST,
            "/api/v1/identities",
            Some(body),
            400,
            "invalid_name",
        )
        .await;
    }
    let body = json!({"name": "a/b"});
    check_untouched(
        &s,
        &s.admin,
        Method::POST,
        "/api/v1/groups",
        Some(body),
        400,
        "invalid_name",
    )
    .await;
    let body = json!({"kind": "generic", "owner": "ops"});
    check_untouched(
        &s,
        &s.admin,
        Method::PUT,
        "/api/v1/targets/bad%20name",
        Some(body),
        400,
        "invalid_name",
    )
    .await;
}

/// Applies `yaml` and asserts that it is refused with `status` and `code`, and that nothing
/// changed: no audit record, and none of the groups or identities it names appeared.
async fn check_bad_org_file(s: &Server, yaml: &str, status: u16, code: &str) {
    let groups_before: Value = s.admin.get("/api/v1/groups").await.unwrap();
    let identities_before: Value = s.admin.get("/api/v1/identities").await.unwrap();
    let e = check_untouched(
        s,
        &s.admin,
        Method::POST,
        "/api/v1/apply",
        Some(json!({"yaml": yaml})),
        status,
        code,
    )
    .await;
    assert!(!e.message.is_empty());
    let groups_after: Value = s.admin.get("/api/v1/groups").await.unwrap();
    let identities_after: Value = s.admin.get("/api/v1/identities").await.unwrap();
    assert_eq!(
        groups_after, groups_before,
        "a refused org file changed the groups:\n{yaml}"
    );
    assert_eq!(
        identities_after, identities_before,
        "a refused org file changed the identities:\n{yaml}"
    );
}

#[tokio::test]
async fn a_bad_org_file_is_refused_whole() {
    let s = Server::start().await;
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\ncolour: blue\n",
        400,
        "invalid_org_file",
    )
    .await;
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\n    colour: blue\n",
        400,
        "invalid_org_file",
    )
    .await;
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\neligibility:\n  - group: newgroup\n    target: web-1\n    role: root\n    max_duration: soon\n",
        400,
        "invalid_org_file",
    )
    .await;
    check_bad_org_file(
        &s,
        "groups: [{name: 'bad name'}]\n",
        400,
        "invalid_org_file",
    )
    .await;
    check_bad_org_file(&s, "groups: [", 400, "invalid_org_file").await;
    // Valid syntax, unknown references: everything before the error rolls back too.
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\nidentities:\n  - name: zed\n    groups: [no-such-group]\n",
        404,
        "group_not_found",
    )
    .await;
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\neligibility:\n  - group: no-such-group\n    target: web-1\n    role: root\n    max_duration: 1h\n",
        404,
        "group_not_found",
    )
    .await;
    check_bad_org_file(
        &s,
        "groups:\n  - name: newgroup\ntargets:\n  - name: db-2\n    kind: postgres\n    owner: no-such-group\n",
        400,
        "owner_not_found",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_route_is_404_no_such_route() {
    let s = Server::start().await;
    for path in [
        "/api/v1/nope",
        "/nope",
        "/api/v2/me",
        "/api/v1/requests/1/approve/now",
    ] {
        check_untouched(&s, &s.admin, Method::GET, path, None, 404, "no_such_route").await;
        check_untouched(&s, &s.anon(), Method::GET, path, None, 404, "no_such_route").await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_405() {
    let s = Server::start().await;
    check_untouched(
        &s,
        &s.admin,
        Method::DELETE,
        "/api/v1/me",
        None,
        405,
        "method_not_allowed",
    )
    .await;
    check_untouched(
        &s,
        &s.admin,
        Method::PUT,
        "/api/v1/requests",
        Some(json!({})),
        405,
        "method_not_allowed",
    )
    .await;
    check_untouched(
        &s,
        &s.anon(),
        Method::POST,
        "/healthz",
        Some(json!({})),
        405,
        "method_not_allowed",
    )
    .await;
    check_untouched(
        &s,
        &s.anon(),
        Method::GET,
        "/api/v1/auth/login",
        None,
        405,
        "method_not_allowed",
    )
    .await;
}

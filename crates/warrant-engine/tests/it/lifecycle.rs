//! Requests, approvals, grants, expiry, leavers and movers, on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use warrant_core::{
    ActivationDuration, ActivationSettings, GrantStatus, IdentityStatus, Name, RequestStatus, Rule,
    Subject,
};
use warrant_engine::{PolicyTestInput, RequestFilter};

use crate::conformance;

/// A rule for one identity: up to 1 h, no reason, no approval.
fn own_rule(identity: &str, target: &str, role: &str, require_mfa: bool) -> Rule {
    Rule {
        subject: Subject::Identity(Name::new(identity).unwrap()),
        target: Name::new(target).unwrap(),
        role: Name::new(role).unwrap(),
        settings: ActivationSettings {
            max_duration: ActivationDuration::parse("1h").unwrap(),
            require_reason: false,
            ticket_pattern: None,
            require_mfa,
            approvals: vec![],
        },
    }
}
use crate::harness::{Backend, Env};

conformance!(two_stage_approval_counts_duration_from_activation, |env| {
    let r = env
        .request("alice", "pg-prod", "admin", "30m", Some("CHG-1"))
        .await
        .unwrap();
    assert_eq!(r.status, RequestStatus::Pending);
    let id = r.request.id.clone();
    let code = |e: warrant_engine::EngineError| e.code;
    assert_eq!(
        env.engine
            .approve(&env.user("alice"), &id)
            .await
            .map_err(code)
            .unwrap_err(),
        "self_approval"
    );
    assert_eq!(
        env.engine
            .approve(&env.user("dave"), &id)
            .await
            .map_err(code)
            .unwrap_err(),
        "not_an_approver"
    );
    assert_eq!(
        env.engine
            .approve(&env.user("carol"), &id)
            .await
            .map_err(code)
            .unwrap_err(),
        "request_not_found"
    );
    env.clock.advance_secs(600);
    let v = env.engine.approve(&env.user("bob"), &id).await.unwrap();
    assert_eq!(
        (v.status, v.request.current_stage),
        (RequestStatus::Pending, 1)
    );
    assert!(v.grant.is_none());
    assert_eq!(
        env.engine
            .approve(&env.user("bob"), &id)
            .await
            .map_err(code)
            .unwrap_err(),
        "already_approved"
    );
    env.clock.advance_secs(600);
    let approved_at = env.engine.now();
    let v = env.engine.approve(&env.user("dave"), &id).await.unwrap();
    assert_eq!(v.status, RequestStatus::Approved);
    let g = v.grant.unwrap();
    assert_eq!(g.starts_at, approved_at);
    assert_eq!(
        g.ends_at,
        approved_at.plus_secs(1800),
        "duration counts from activation"
    );
    let c = env
        .engine
        .check(&env.admin, "alice", "pg-prod", "admin")
        .await
        .unwrap();
    assert!(c.allowed);
    assert_eq!(c.grant.unwrap().id, g.id);
    let c = env
        .engine
        .check(&env.admin, "alice", "pg-prod", "readonly")
        .await
        .unwrap();
    assert!(!c.allowed);
});

conformance!(refusals_carry_codes_and_are_audited, |env| {
    let cases = [
        ("carol", "web-1", "root", "3h", None, "duration_exceeds_max"),
        ("alice", "pg-prod", "admin", "30m", None, "ticket_required"),
        (
            "alice",
            "pg-prod",
            "admin",
            "30m",
            Some("JIRA-1"),
            "ticket_mismatch",
        ),
        ("carol", "pg-prod", "readonly", "1h", None, "not_eligible"),
        (
            "alice",
            "pg-prod",
            "admin",
            "2h",
            Some("CHG-1"),
            "not_eligible",
        ),
        ("alice", "nope", "admin", "1h", None, "target_not_found"),
        ("alice", "pg-prod", "nope", "1h", None, "role_not_found"),
    ];
    let before = env.count_kind("request.refused").await;
    for (who, t, r, d, ticket, code) in cases {
        let e = env.request(who, t, r, d, ticket).await.unwrap_err();
        assert_eq!(e.code, code, "{who} {t}/{r} {d}: {}", e.message);
    }
    assert_eq!(
        env.count_kind("request.refused").await,
        before + cases.len()
    );
    let reqs = env
        .engine
        .requests(&env.admin, RequestFilter::All)
        .await
        .unwrap();
    assert!(
        reqs.is_empty(),
        "a refused request leaves no request behind"
    );
    // The 2h pg-prod admin refusal names the forbid policy that decided.
    let e = env
        .request("alice", "pg-prod", "admin", "2h", Some("CHG-1"))
        .await
        .unwrap_err();
    assert!(e.message.contains("critical-max-1h"), "{}", e.message);
});

conformance!(deny_cancel_and_expiry_end_requests, |env| {
    let a = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .request
        .id;
    let v = env
        .engine
        .deny(&env.user("erin"), &a, Some("not now".into()))
        .await
        .unwrap();
    assert_eq!(v.status, RequestStatus::Denied);
    assert_eq!(
        env.engine
            .approve(&env.user("erin"), &a)
            .await
            .unwrap_err()
            .code,
        "request_not_pending"
    );

    let b = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .request
        .id;
    assert_eq!(
        env.engine
            .cancel(&env.user("erin"), &b)
            .await
            .unwrap_err()
            .code,
        "request_not_found"
    );
    assert_eq!(
        env.engine
            .cancel(&env.user("carol"), &b)
            .await
            .unwrap()
            .status,
        RequestStatus::Cancelled
    );

    let c = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .request
        .id;
    env.clock.advance_secs(24 * 3600);
    // Expired on read, before the scheduler runs.
    let v = env.engine.request(&env.user("carol"), &c).await.unwrap();
    assert_eq!(v.status, RequestStatus::Expired);
    assert_eq!(
        env.engine
            .approve(&env.user("erin"), &c)
            .await
            .unwrap_err()
            .code,
        "request_expired"
    );
    let rep = env.engine.tick().await.unwrap();
    assert_eq!(rep.requests_expired, 1);
    assert_eq!(env.count_kind("request.expired").await, 1);
});

conformance!(grants_end_on_read_and_by_the_scheduler, |env| {
    let g = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(g.status_at(env.engine.now()), GrantStatus::Active);
    env.clock.advance_secs(3600);
    // The scheduler has not run: the read still says ended.
    assert!(
        !env.engine
            .check(&env.admin, "alice", "pg-prod", "readonly")
            .await
            .unwrap()
            .allowed
    );
    let open = env
        .engine
        .grants(&env.user("alice"), false, true)
        .await
        .unwrap();
    assert!(open.is_empty(), "an ended grant is never reported open");
    let rep = env.engine.tick().await.unwrap();
    assert_eq!(rep.grants_ended, 1);
    let g = env.engine.grant(&env.user("alice"), &g.id).await.unwrap();
    assert_eq!(g.status, GrantStatus::Ended);
    assert_eq!(env.count_kind("grant.ended").await, 1);
    assert_eq!(env.engine.tick().await.unwrap().grants_ended, 0);
});

conformance!(a_restart_closes_grants_that_ended_while_down, |env| {
    let g = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    env.engine.store().close().await;
    env.clock.advance_secs(7200);
    let engine = env.restart().await;
    let rep = engine.tick().await.unwrap();
    assert_eq!(rep.grants_ended, 1);
    let g = engine.grant(&env.admin, &g.id).await.unwrap();
    assert_eq!(g.status, GrantStatus::Ended);
    assert!(engine.audit_verify().await.unwrap().intact);
});

conformance!(leavers_lose_everything_in_the_same_transaction, |env| {
    let g = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    let r = env
        .request("alice", "pg-prod", "admin", "30m", Some("CHG-2"))
        .await
        .unwrap()
        .request
        .id;
    env.engine
        .set_identity_status(&env.admin, "alice", IdentityStatus::Disabled)
        .await
        .unwrap();
    let g = env.engine.grant(&env.admin, &g.id).await.unwrap();
    assert_eq!(g.status, GrantStatus::Revoked);
    assert_eq!(
        env.engine.request(&env.admin, &r).await.unwrap().status,
        RequestStatus::Cancelled
    );
    assert!(
        !env.engine
            .check(&env.admin, "alice", "pg-prod", "readonly")
            .await
            .unwrap()
            .allowed
    );
    // Enabling gives nothing back.
    env.engine
        .set_identity_status(&env.admin, "alice", IdentityStatus::Active)
        .await
        .unwrap();
    assert!(
        !env.engine
            .check(&env.admin, "alice", "pg-prod", "readonly")
            .await
            .unwrap()
            .allowed
    );

    let g = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .request
        .id;
    let g = env
        .engine
        .approve(&env.user("erin"), &g)
        .await
        .unwrap()
        .grant
        .unwrap();
    let own_rule = own_rule("carol", "pg-prod", "readonly", false);
    env.engine.save_rule(&env.admin, &own_rule).await.unwrap();
    env.engine
        .delete_identity(&env.admin, "carol")
        .await
        .unwrap();
    assert_eq!(
        env.engine.grant(&env.admin, &g.id).await.unwrap().status,
        GrantStatus::Revoked
    );
    assert_eq!(env.count_kind("identity.deleted").await, 1);
    // A new identity of the same name inherits nothing.
    let input = warrant_engine::IdentityInput {
        name: Name::new("carol").unwrap(),
        display_name: None,
        email: String::new(),
        manager: None,
        system_role: warrant_core::SystemRole::User,
        password: None,
        external_id: None,
    };
    env.engine.add_identity(&env.admin, input).await.unwrap();
    let rules = env.engine.rules(&env.admin).await.unwrap();
    assert!(rules.iter().all(|r| r.id() != own_rule.id()));
    let e = env
        .request("carol", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "not_eligible");
});

conformance!(movers_lose_only_what_came_through_the_group, |env| {
    let rule = own_rule("alice", "web-1", "root", false);
    env.engine.save_rule(&env.admin, &rule).await.unwrap();
    let pg = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    let web = env
        .request("alice", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    let pending = env
        .request("alice", "pg-prod", "admin", "30m", Some("CHG-3"))
        .await
        .unwrap()
        .request
        .id;
    assert!(
        env.engine
            .remove_member(&env.admin, "dba", "alice")
            .await
            .unwrap()
    );
    assert_eq!(
        env.engine.grant(&env.admin, &pg.id).await.unwrap().status,
        GrantStatus::Revoked
    );
    assert_eq!(
        env.engine.grant(&env.admin, &web.id).await.unwrap().status,
        GrantStatus::Active
    );
    assert_eq!(
        env.engine
            .request(&env.admin, &pending)
            .await
            .unwrap()
            .status,
        RequestStatus::Cancelled
    );
});

conformance!(concurrent_approve_and_deny_resolve_to_one_outcome, |env| {
    let frank = warrant_engine::IdentityInput {
        name: Name::new("frank").unwrap(),
        display_name: None,
        email: String::new(),
        manager: None,
        system_role: warrant_core::SystemRole::User,
        password: None,
        external_id: None,
    };
    env.engine.add_identity(&env.admin, frank).await.unwrap();
    env.engine
        .add_member(&env.admin, "ops", "frank")
        .await
        .unwrap();
    for _ in 0..5 {
        let id = env
            .request("carol", "web-1", "root", "1h", None)
            .await
            .unwrap()
            .request
            .id;
        let (erin, frank) = (env.user("erin"), env.user("frank"));
        let (a, d) = tokio::join!(
            env.engine.approve(&erin, &id),
            env.engine.deny(&frank, &id, None)
        );
        assert!(
            a.is_ok() ^ d.is_ok(),
            "exactly one of approve and deny wins: {a:?} {d:?}"
        );
        let v = env.engine.request(&env.admin, &id).await.unwrap();
        match v.status {
            RequestStatus::Approved => assert!(a.is_ok() && v.grant.is_some()),
            RequestStatus::Denied => assert!(d.is_ok() && v.grant.is_none()),
            s => panic!("unexpected {s:?}"),
        }
        if let Some(g) = v.grant {
            env.engine.revoke(&env.admin, &g.id, None).await.unwrap();
        }
    }
});

conformance!(revocation_rights, |env| {
    let id = env
        .request("carol", "web-1", "root", "1h", None)
        .await
        .unwrap()
        .request
        .id;
    let g = env
        .engine
        .approve(&env.user("erin"), &id)
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(
        env.engine
            .revoke(&env.user("alice"), &g.id, None)
            .await
            .unwrap_err()
            .code,
        "grant_not_found"
    );
    let r = env
        .engine
        .revoke(&env.user("erin"), &g.id, Some("owner says".into()))
        .await
        .unwrap();
    assert_eq!(r.status, GrantStatus::Revoked);
    assert_eq!(r.revoke_reason.as_deref(), Some("owner says"));
    assert_eq!(
        env.engine
            .revoke(&env.user("carol"), &g.id, None)
            .await
            .unwrap_err()
            .code,
        "grant_closed"
    );
    let g = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    env.engine
        .revoke(&env.user("alice"), &g.id, None)
        .await
        .unwrap();
});

conformance!(apply_is_idempotent_and_dry_run_writes_nothing, |env| {
    let again = env
        .engine
        .apply(
            &env.admin,
            warrant_engine::org::parse(crate::harness::DEMO).unwrap(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(again.changes, Vec::<String>::new());
    let before = env.engine.audit_verify().await.unwrap().records;
    let org = warrant_engine::org::parse(
        "identities:\n  - name: zed\n    email: zed@example.com\n    groups: [ops]\n",
    )
    .unwrap();
    let dry = env.engine.apply(&env.admin, org, true).await.unwrap();
    assert_eq!(
        dry.changes,
        vec!["created identity zed", "added zed to group ops"]
    );
    assert_eq!(env.engine.audit_verify().await.unwrap().records, before);
    assert!(env.engine.identity(&env.admin, "zed").await.is_err());
    // An error anywhere changes nothing.
    let bad = warrant_engine::org::parse("identities:\n  - name: zed\n    groups: [nosuchgroup]\n")
        .unwrap();
    let e = env.engine.apply(&env.admin, bad, false).await.unwrap_err();
    assert_eq!(e.code, "group_not_found");
    assert!(e.message.contains("identities[0]"), "{}", e.message);
    assert!(env.engine.identity(&env.admin, "zed").await.is_err());
    let e = warrant_engine::org::parse("groups:\n  - name: x\n    colour: red\n").unwrap_err();
    assert_eq!(e.code, "invalid_org_file");
    assert!(e.message.contains("line 3"), "{}", e.message);
});

conformance!(custom_policies_validate_decide_and_explain, |env| {
    let e = env
        .engine
        .save_policy(
            &env.admin,
            &Name::new("bad").unwrap(),
            "forbid(principal, action, resource)\nwhen { resource.nope };",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, "policy_invalid");
    assert!(e.message.contains("line 2"), "{}", e.message);
    env.engine
        .save_policy(
            &env.admin,
            &Name::new("office-hours").unwrap(),
            "forbid(principal, action, resource == Warrant::Role::\"web-1/root\")\nunless { context.hour >= 8 && context.hour < 18 };",
        )
        .await
        .unwrap();
    let mut input = PolicyTestInput {
        identity: Name::new("carol").unwrap(),
        target: Name::new("web-1").unwrap(),
        role: Name::new("root").unwrap(),
        duration: ActivationDuration::parse("1h").unwrap(),
        reason: "x".into(),
        ticket: None,
        mfa: false,
        at: None,
    };
    let r = env.engine.policy_test(&env.admin, &input).await.unwrap();
    assert!(r.allowed, "{}", r.explanation);
    assert_eq!(r.rule.as_deref(), Some("group:ops/web-1/root"));
    input.at = Some(warrant_core::Timestamp::parse_rfc3339("2026-12-02T22:00:00Z").unwrap());
    let r = env.engine.policy_test(&env.admin, &input).await.unwrap();
    assert!(!r.allowed);
    assert_eq!(r.forbids, vec!["office-hours"]);
    assert!(r.explanation.contains("office-hours"), "{}", r.explanation);
    // Users may test themselves only.
    assert_eq!(
        env.engine
            .policy_test(&env.user("alice"), &input)
            .await
            .unwrap_err()
            .code,
        "forbidden"
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_work_is_retried_with_backoff_and_never_dropped() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&calls);
    let cleanup: warrant_engine::CleanupFn = Arc::new(move |_g| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if n < 3 {
                Err(format!("target unreachable (attempt {})", n + 1))
            } else {
                Ok(Vec::new())
            }
        })
    });
    let env = Env::with_cleanups(Backend::Sqlite, vec![cleanup]).await;
    let g = env
        .request("alice", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap()
        .grant
        .unwrap();
    env.engine.revoke(&env.admin, &g.id, None).await.unwrap();
    let mut waits = Vec::new();
    for _ in 0..3 {
        let rep = env.engine.tick().await.unwrap();
        assert_eq!(rep.jobs_failed, 1);
        let jobs = env.engine.pending_jobs(&env.admin).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert!(
            jobs[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("unreachable")
        );
        let wait = (jobs[0].next_at.millis() - env.engine.now().millis()) / 1000;
        waits.push(wait);
        // Not due yet: nothing happens.
        assert_eq!(env.engine.tick().await.unwrap().jobs_failed, 0);
        env.clock.advance_secs(wait);
    }
    assert_eq!(waits, vec![1, 2, 4]);
    assert_eq!(env.engine.tick().await.unwrap().jobs_done, 1);
    assert!(
        env.engine
            .pending_jobs(&env.admin)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(env.count_kind("grant.cleanup_failed").await, 3);
    assert_eq!(env.count_kind("grant.cleanup_done").await, 1);
}

conformance!(
    a_thousand_grants_end_in_one_pass_with_a_verifying_chain,
    |env| {
        // More than one 500-row statement of the bulk expiry path.
        let n = 1100;
        for _ in 0..n {
            env.request("alice", "pg-prod", "readonly", "1h", None)
                .await
                .unwrap();
        }
        env.clock.advance_secs(3600);
        let rep = env.engine.tick().await.unwrap();
        assert_eq!(rep.grants_ended, n);
        assert_eq!(env.count_kind("grant.ended").await, n as usize);
        assert!(
            env.engine
                .grants(&env.admin, true, true)
                .await
                .unwrap()
                .is_empty()
        );
        let report = env.engine.audit_verify().await.unwrap();
        assert!(report.intact, "{report:?}");
        assert_eq!(env.engine.tick().await.unwrap().grants_ended, 0);
    }
);

conformance!(rules_that_require_mfa_fail_closed_until_mfa_exists, |env| {
    let rule = own_rule("erin", "pg-prod", "readonly", true);
    env.engine.save_rule(&env.admin, &rule).await.unwrap();
    let e = env
        .request("erin", "pg-prod", "readonly", "1h", None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "mfa_required", "{}", e.message);
    assert!(
        !env.engine
            .check(&env.admin, "erin", "pg-prod", "readonly")
            .await
            .unwrap()
            .allowed
    );
    let mut input = PolicyTestInput {
        identity: Name::new("erin").unwrap(),
        target: Name::new("pg-prod").unwrap(),
        role: Name::new("readonly").unwrap(),
        duration: ActivationDuration::parse("1h").unwrap(),
        reason: String::new(),
        ticket: None,
        mfa: false,
        at: None,
    };
    let r = env.engine.policy_test(&env.admin, &input).await.unwrap();
    assert_eq!(r.code.as_deref(), Some("mfa_required"));
    input.mfa = true;
    assert!(
        env.engine
            .policy_test(&env.admin, &input)
            .await
            .unwrap()
            .allowed
    );
});

conformance!(
    no_grant_is_issued_under_a_rule_after_its_deletion_commits,
    |env| {
        let rule_id = "group:dba/pg-prod/readonly";
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let engine = env.engine.clone();
            let alice = env.user("alice");
            tasks.push(tokio::spawn(async move {
                engine
                    .create_request(
                        &alice,
                        warrant_engine::NewRequest {
                            target: Name::new("pg-prod").unwrap(),
                            role: Name::new("readonly").unwrap(),
                            duration: ActivationDuration::parse("1h").unwrap(),
                            reason: "race".into(),
                            ticket: None,
                            start_at: None,
                        },
                    )
                    .await
            }));
        }
        tokio::task::yield_now().await;
        env.engine.delete_rule(&env.admin, rule_id).await.unwrap();
        for t in tasks {
            let _ = t.await.unwrap();
        }
        let records = env
            .engine
            .audit_records(&env.admin, 0, 10_000)
            .await
            .unwrap();
        let deleted = records
            .iter()
            .find(|r| r.kind == "rule.deleted")
            .map(|r| r.seq)
            .unwrap();
        let late: Vec<i64> = records
            .iter()
            .filter(|r| r.kind == "grant.created" && r.seq > deleted)
            .map(|r| r.seq)
            .collect();
        assert!(
            late.is_empty(),
            "grants issued after the rule's deletion: {late:?}"
        );
        assert_eq!(
            env.request("alice", "pg-prod", "readonly", "1h", None)
                .await
                .unwrap_err()
                .code,
            "not_eligible"
        );
    }
);

conformance!(names_in_use_by_policies_cannot_be_deleted, |env| {
    env.engine
        .save_policy(
            &env.admin,
            &Name::new("carol-no-prod").unwrap(),
            "forbid(principal == Warrant::Identity::\"carol\", action, resource in Warrant::Target::\"pg-prod\");",
        )
        .await
        .unwrap();
    let e = env
        .engine
        .delete_identity(&env.admin, "carol")
        .await
        .unwrap_err();
    assert_eq!(e.code, "identity_in_policy");
    assert!(e.message.contains("carol-no-prod"), "{}", e.message);

    env.engine
        .add_group(&env.admin, &Name::new("contractors").unwrap(), "")
        .await
        .unwrap();
    env.engine
        .save_policy(
            &env.admin,
            &Name::new("no-contractors").unwrap(),
            "forbid(principal in Warrant::Group::\"contractors\", action, resource);",
        )
        .await
        .unwrap();
    let e = env
        .engine
        .delete_group(&env.admin, "contractors")
        .await
        .unwrap_err();
    assert_eq!(e.code, "group_in_use");
    env.engine
        .delete_policy(&env.admin, "no-contractors")
        .await
        .unwrap();
    env.engine
        .delete_group(&env.admin, "contractors")
        .await
        .unwrap();
});

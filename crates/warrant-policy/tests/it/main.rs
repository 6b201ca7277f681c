//! Behaviour of warrant-policy through its public API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use warrant_policy::{
    CustomPolicy, Decision, DecisionInput, PolicyEngine, PolicyError, RequestContext, RuleSpec,
    Subject, TargetAttrs, validate_custom,
};

/// Monday 2024-01-01 10:00 UTC.
const MONDAY_10H: i64 = 1_704_103_200;

fn rule(id: &str, subject: Subject, target: &str, role: &str) -> RuleSpec {
    RuleSpec {
        id: id.into(),
        subject,
        target: target.into(),
        role: role.into(),
    }
}

fn group(name: &str) -> Subject {
    Subject::Group(name.into())
}

fn identity(id: &str) -> Subject {
    Subject::Identity(id.into())
}

fn custom(name: &str, text: &str) -> CustomPolicy {
    CustomPolicy {
        name: name.into(),
        text: text.into(),
    }
}

/// One decision request; `target` is `"TARGET/ROLE"`, tier 1 unless the target starts with
/// `crit-` (tier 4).
struct Ask<'a> {
    who: &'a str,
    groups: &'a [&'a str],
    target: &'a str,
    now: i64,
    mfa: bool,
}

fn ask<'a>(who: &'a str, groups: &'a [&'a str], target: &'a str) -> Ask<'a> {
    Ask {
        who,
        groups,
        target,
        now: MONDAY_10H,
        mfa: false,
    }
}

fn decide(engine: &PolicyEngine, a: &Ask<'_>) -> Decision {
    let (target, role) = a.target.split_once('/').unwrap();
    let groups: Vec<String> = a.groups.iter().map(|g| g.to_string()).collect();
    engine.decide(&DecisionInput {
        identity: a.who,
        email: &format!("{}@example.com", a.who),
        active: true,
        groups: &groups,
        target: TargetAttrs {
            name: target,
            kind: "postgres",
            risk_tier: if target.starts_with("crit-") { 4 } else { 1 },
            owner: "dba",
        },
        role,
        context: RequestContext {
            duration_secs: 3600,
            has_reason: true,
            has_ticket: false,
            mfa: a.mfa,
            now_unix: a.now,
        },
    })
}

/// Builds an engine and checks each request against the expected `explain()` line.
fn check(rules: &[RuleSpec], custom: &[CustomPolicy], cases: &[(Ask<'_>, &str)]) {
    let engine = PolicyEngine::new(rules, custom).unwrap();
    for (a, expected) in cases {
        let decision = decide(&engine, a);
        assert_eq!(
            decision.explain(),
            *expected,
            "{} on {}: {decision:?}",
            a.who,
            a.target
        );
        assert_eq!(decision.allowed, expected.starts_with("allowed"));
    }
}

#[test]
fn eligibility_rules() {
    let rules = [
        rule("r1", group("dba"), "pg-prod", "admin"),
        rule("r2", identity("alice"), "web", "deploy"),
        rule("r3", group("web-team"), "web", "deploy"),
    ];
    check(
        &rules,
        &[],
        &[
            (ask("bob", &["dba"], "pg-prod/admin"), "allowed by rule r1"),
            (
                ask("carol", &["ops"], "pg-prod/admin"),
                "denied: no eligibility rule or policy permits carol to activate pg-prod/admin",
            ),
            (ask("alice", &[], "web/deploy"), "allowed by rule r2"),
            (
                ask("alice", &["web-team"], "web/deploy"),
                "allowed by rules r2, r3",
            ),
            (
                ask("alicia", &[], "web/deploy"),
                "denied: no eligibility rule or policy permits alicia to activate web/deploy",
            ),
            (
                ask("bob", &["dba"], "pg-prod/readonly"),
                "denied: no eligibility rule or policy permits bob to activate pg-prod/readonly",
            ),
            (
                ask("bob", &["dba"], "pg-dev/admin"),
                "denied: no eligibility rule or policy permits bob to activate pg-dev/admin",
            ),
        ],
    );
}

#[test]
fn custom_forbids() {
    let rules = [
        rule("r1", group("dba"), "pg-prod", "admin"),
        rule("r2", group("dba"), "crit-db", "admin"),
    ];
    let custom = [
        custom(
            "business-hours",
            "forbid(principal, action, resource) when { context.hour < 8 || context.hour >= 18 };",
        ),
        custom(
            "critical-needs-mfa",
            "forbid(principal, action, resource) when { resource.target.risk_tier >= 4 } unless { context.mfa };",
        ),
    ];
    let evening = MONDAY_10H + 9 * 3600;
    check(
        &rules,
        &custom,
        &[
            (ask("bob", &["dba"], "pg-prod/admin"), "allowed by rule r1"),
            (
                Ask {
                    now: evening,
                    ..ask("bob", &["dba"], "pg-prod/admin")
                },
                "denied: forbidden by policy business-hours",
            ),
            (
                ask("bob", &["dba"], "crit-db/admin"),
                "denied: forbidden by policy critical-needs-mfa",
            ),
            (
                Ask {
                    mfa: true,
                    ..ask("bob", &["dba"], "crit-db/admin")
                },
                "allowed by rule r2",
            ),
            (
                Ask {
                    now: evening,
                    ..ask("bob", &["dba"], "crit-db/admin")
                },
                "denied: forbidden by policies business-hours, critical-needs-mfa",
            ),
        ],
    );
}

#[test]
fn forbidden_decision_still_reports_the_satisfied_rule() {
    let forbid = custom("no-one", "forbid(principal, action, resource);");
    let engine =
        PolicyEngine::new(&[rule("r1", group("dba"), "pg-prod", "admin")], &[forbid]).unwrap();
    let decision = decide(&engine, &ask("bob", &["dba"], "pg-prod/admin"));
    assert!(!decision.allowed);
    assert_eq!(decision.matched_rules, ["r1"]);
    assert_eq!(decision.forbids, ["no-one"]);
    assert_eq!(decision.evaluated, 2);
}

#[test]
fn custom_permits_and_their_annotations() {
    let custom = [
        custom(
            "oncall-break-glass",
            r#"@max_duration("2h")
@approvals("0")
permit(principal in Warrant::Group::"oncall", action, resource in Warrant::Target::"pg-prod")
when { context.mfa };"#,
        ),
        custom(
            "web-readonly",
            r#"permit(principal, action, resource == Warrant::Role::"web/readonly");"#,
        ),
    ];
    let rules = [rule("r1", group("dba"), "pg-prod", "admin")];
    check(
        &rules,
        &custom,
        &[
            (
                Ask {
                    mfa: true,
                    ..ask("carol", &["oncall"], "pg-prod/superuser")
                },
                "allowed by policy oncall-break-glass",
            ),
            (
                Ask {
                    mfa: true,
                    ..ask("carol", &["oncall", "dba"], "pg-prod/admin")
                },
                "allowed by rule r1 and policy oncall-break-glass",
            ),
            (
                ask("carol", &["oncall"], "pg-prod/superuser"),
                "denied: no eligibility rule or policy permits carol to activate pg-prod/superuser",
            ),
            (
                Ask {
                    mfa: true,
                    ..ask("carol", &["oncall"], "pg-dev/admin")
                },
                "denied: no eligibility rule or policy permits carol to activate pg-dev/admin",
            ),
            (
                ask("anyone", &[], "web/readonly"),
                "allowed by policy web-readonly",
            ),
            (
                ask("anyone", &[], "web/deploy"),
                "denied: no eligibility rule or policy permits anyone to activate web/deploy",
            ),
        ],
    );

    let engine = PolicyEngine::new(&rules, &custom).unwrap();
    let expected = BTreeMap::from([
        ("max_duration".to_owned(), "2h".to_owned()),
        ("approvals".to_owned(), "0".to_owned()),
    ]);
    assert_eq!(
        engine.custom_annotations("oncall-break-glass"),
        Some(expected)
    );
    assert_eq!(
        engine.custom_annotations("web-readonly"),
        Some(BTreeMap::new())
    );
    assert_eq!(engine.custom_annotations("nope"), None);
    assert_eq!((engine.rule_count(), engine.custom_count()), (1, 2));
}

#[test]
fn evaluation_errors_never_allow() {
    // Strict validation rules out most errors; arithmetic overflow remains.
    let overflow = "context.now * 1000000000000 > 0";
    let rules = [rule("r1", group("dba"), "pg-prod", "admin")];
    for (name, text) in [
        (
            "bad-forbid",
            format!("forbid(principal, action, resource) when {{ {overflow} }};"),
        ),
        (
            "bad-permit",
            format!("permit(principal, action, resource) when {{ {overflow} }};"),
        ),
    ] {
        let engine = PolicyEngine::new(&rules, &[custom(name, &text)]).unwrap();
        for target in ["pg-prod/admin", "web/deploy"] {
            let decision = decide(&engine, &ask("bob", &["dba"], target));
            assert!(!decision.allowed, "{name} on {target}");
            assert_eq!(decision.errors.len(), 1, "{decision:?}");
            assert!(decision.explain().starts_with("denied: evaluation error: "));
            assert!(
                decision.errors[0].contains(&format!("custom:{name}")),
                "{decision:?}"
            );
        }
    }
}

#[test]
fn names_with_a_slash_are_refused() {
    for (target, role) in [("pg/prod", "admin"), ("pg", "prod/admin")] {
        let err = PolicyEngine::new(&[rule("r1", group("dba"), target, role)], &[]).err();
        assert_eq!(err.map(|e| e.code()), Some("policy_bad_name"));
    }

    let engine = PolicyEngine::new(&[rule("r1", group("dba"), "a", "b")], &[]).unwrap();
    let decision = decide(&engine, &ask("bob", &["dba"], "a/b/c"));
    assert!(!decision.allowed);
    assert_eq!(decision.errors.len(), 1);
}

#[test]
fn scoped_policies_land_in_their_slices() {
    let rules = [
        rule("r1", group("dba"), "db", "admin"),
        rule("r2", group("dba"), "db", "read"),
    ];
    let custom = [
        custom(
            "admin-needs-mfa",
            r#"forbid(principal, action, resource == Warrant::Role::"db/admin") unless { context.mfa };"#,
        ),
        custom(
            "oncall-db",
            r#"permit(principal in Warrant::Group::"oncall", action, resource in Warrant::Target::"db");"#,
        ),
        custom(
            "root",
            r#"permit(principal == Warrant::Identity::"root", action, resource);"#,
        ),
    ];
    let engine = PolicyEngine::new(&rules, &custom).unwrap();
    let cases = [
        // Rule, role forbid, target permit, global permit.
        (
            ask("bob", &["dba"], "db/admin"),
            4,
            "denied: forbidden by policy admin-needs-mfa",
        ),
        (
            Ask {
                mfa: true,
                ..ask("bob", &["dba"], "db/admin")
            },
            4,
            "allowed by rule r1",
        ),
        (ask("bob", &["dba"], "db/read"), 3, "allowed by rule r2"),
        (
            ask("carol", &["oncall"], "db/read"),
            3,
            "allowed by policy oncall-db",
        ),
        // A role with no rule: the target's policies and the global ones.
        (
            ask("carol", &["oncall"], "db/backup"),
            2,
            "allowed by policy oncall-db",
        ),
        (ask("root", &[], "db/backup"), 2, "allowed by policy root"),
        // A target with nothing of its own: global policies only.
        (ask("root", &[], "web/deploy"), 1, "allowed by policy root"),
        (
            ask("carol", &["oncall"], "web/deploy"),
            1,
            "denied: no eligibility rule or policy permits carol to activate web/deploy",
        ),
    ];
    for (a, evaluated, expected) in cases {
        let decision = decide(&engine, &a);
        assert_eq!(
            (decision.evaluated, decision.explain().as_str()),
            (evaluated, expected),
            "{}",
            a.target
        );
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let rules = [
        rule("r1", group("a"), "t", "r"),
        rule("r1", group("b"), "u", "r"),
    ];
    let err = PolicyEngine::new(&rules, &[]).err().unwrap();
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        ("policy_duplicate_id", "duplicate policy id rule:r1")
    );

    let p = custom("p", "permit(principal, action, resource);");
    let err = PolicyEngine::new(&[], &[p.clone(), p]).err().unwrap();
    assert_eq!(err.to_string(), "duplicate policy id custom:p");
}

#[test]
fn an_invalid_custom_policy_refuses_the_engine() {
    let err = PolicyEngine::new(
        &[],
        &[custom(
            "bad",
            "permit(principal, action, resource) when { resource.nope };",
        )],
    );
    assert_eq!(err.err().map(|e| e.code()), Some("policy_invalid"));
}

/// `(line, column, message start)` of each diagnostic, or the error code when there are none.
fn diagnostics(text: &str) -> Result<Vec<(usize, usize, String)>, &'static str> {
    match validate_custom("p", text) {
        Ok(()) => Ok(Vec::new()),
        Err(
            PolicyError::Parse { diagnostics, .. } | PolicyError::Validation { diagnostics, .. },
        ) => Ok(diagnostics
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect()),
        Err(other) => Err(other.code()),
    }
}

#[test]
fn validate_custom_positions_and_codes() {
    let cases: &[(&str, usize, usize, &str)] = &[
        // Syntax errors.
        (
            "permit(principal action, resource);",
            1,
            18,
            "unexpected token `action`",
        ),
        (
            "forbid(principal, action, resource)\nwhen {\n    context.hour >= 18 ||| true\n};",
            3,
            26,
            "invalid token",
        ),
        (
            "permit(\n  principal,\n  action,\n  resource\n) when {\n  context.mfa &&\n};",
            7,
            1,
            "unexpected token `}`",
        ),
        // A template is not a custom policy.
        (
            "permit(principal, action, resource == ?resource);",
            1,
            39,
            "expected a static policy",
        ),
        // Schema violations.
        (
            "permit(principal, action, resource)\nwhen {\n  resource.nope == 1\n};",
            3,
            3,
            "attribute `nope` on entity type `Warrant::Role` not found",
        ),
        (
            "permit(principal, action, resource)\nwhen {\n  resource.target.risk_tier > \"x\"\n};",
            3,
            31,
            "unexpected type: expected Long but saw String",
        ),
        (
            "permit(principal, action, resource) when {\n  context.ticket\n};",
            2,
            3,
            "attribute `ticket`",
        ),
    ];
    for (text, line, column, message) in cases {
        let got = diagnostics(text).unwrap();
        assert!(
            matches!(got.first(), Some((l, c, m)) if (l, c) == (line, column) && m.starts_with(message)),
            "{text}: {got:?}"
        );
    }

    let err = validate_custom("p", "permit(principal action, resource);")
        .err()
        .unwrap();
    assert_eq!(err.code(), "policy_parse_error");
    assert!(
        err.to_string()
            .starts_with("policy p: line 1, column 18: unexpected token"),
        "{err}"
    );

    let two = "permit(principal, action, resource);\nforbid(principal, action, resource);";
    assert_eq!(diagnostics(two), Err("policy_not_single"));
    assert_eq!(diagnostics("// nothing"), Err("policy_not_single"));
    assert_eq!(
        diagnostics("permit(principal, action, resource) when { context.mfa };"),
        Ok(vec![])
    );
}

#[test]
fn clock_arithmetic() {
    let at = |now_unix| RequestContext {
        duration_secs: 0,
        has_reason: false,
        has_ticket: false,
        mfa: false,
        now_unix,
    };
    let cases = [
        (0, 0, 4),                                    // 1970-01-01 00:00, Thursday
        (MONDAY_10H, 10, 1),                          // 2024-01-01 10:00, Monday
        (MONDAY_10H + 6 * 86_400 + 13 * 3600, 23, 7), // Sunday 23:00
        (-1, 23, 3),                                  // 1969-12-31 23:59:59, Wednesday
    ];
    for (now, hour, weekday) in cases {
        assert_eq!(
            (at(now).hour(), at(now).weekday()),
            (hour, weekday),
            "{now}"
        );
    }
}

#[test]
fn engine_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyEngine>();
}

/// A small deterministic generator (xorshift), to keep the test free of dependencies.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn ten_thousand_rules_agree_with_brute_force() {
    const ROLES: [&str; 5] = ["read", "write", "admin", "owner", "audit"];
    let mut rng = Rng(0x5eed);
    let rules: Vec<RuleSpec> = (0..10_000)
        .map(|i| {
            let subject = match rng.below(4) {
                0 => identity(&format!("user{}", rng.below(2_000))),
                _ => group(&format!("group{}", rng.below(300))),
            };
            let target = format!("target{}", rng.below(1_000));
            rule(
                &format!("r{i}"),
                subject,
                &target,
                ROLES[rng.below(ROLES.len())],
            )
        })
        .collect();
    let custom = [
        custom(
            "weekdays",
            "forbid(principal, action, resource) when { context.weekday > 5 };",
        ),
        custom(
            "t7-mfa",
            r#"forbid(principal, action, resource in Warrant::Target::"target7") unless { context.mfa };"#,
        ),
    ];
    let engine = PolicyEngine::new(&rules, &custom).unwrap();

    let mut checked_allowed = 0;
    for _ in 0..3_000 {
        let who = format!("user{}", rng.below(2_000));
        let groups: Vec<String> = (0..rng.below(8))
            .map(|_| format!("group{}", rng.below(300)))
            .collect();
        let target = format!("target{}", rng.below(1_000));
        let role = ROLES[rng.below(ROLES.len())];
        let in_slice: Vec<&RuleSpec> = rules
            .iter()
            .filter(|r| r.target == target && r.role == role)
            .collect();
        let expected: BTreeSet<&str> = in_slice
            .iter()
            .filter(|r| match &r.subject {
                Subject::Identity(id) => *id == who,
                Subject::Group(g) => groups.contains(g),
            })
            .map(|r| r.id.as_str())
            .collect();

        let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let address = format!("{target}/{role}");
        let decision = decide(
            &engine,
            &Ask {
                mfa: true,
                ..ask(&who, &group_refs, &address)
            },
        );
        let matched: BTreeSet<&str> = decision.matched_rules.iter().map(String::as_str).collect();
        assert_eq!(matched, expected, "{who} {groups:?} {address}");
        assert_eq!(decision.allowed, !expected.is_empty());
        let scoped = usize::from(target == "target7");
        assert_eq!(decision.evaluated, in_slice.len() + 1 + scoped, "{address}");
        checked_allowed += usize::from(decision.allowed);
    }
    assert!(
        checked_allowed > 10,
        "too few allowed samples to mean anything: {checked_allowed}"
    );
}

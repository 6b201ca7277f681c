//! Decision latency with few and many rules, and the cost of building an engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use warrant_policy::{
    CustomPolicy, DecisionInput, PolicyEngine, RequestContext, RuleSpec, Subject, TargetAttrs,
};

fn main() {
    divan::main();
}

const ROLES: [&str; 5] = ["read", "write", "admin", "owner", "audit"];

/// `n` rules over 1,000 targets × 5 roles, three in four for one of 300 groups, the rest for
/// one of 2,000 identities; the first rule lets `group0` activate `target0/admin`.
fn rules(n: usize) -> Vec<RuleSpec> {
    let mut state = 0x5eed_u64;
    let mut below = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut rules = vec![RuleSpec {
        id: "r0".into(),
        subject: Subject::Group("group0".into()),
        target: "target0".into(),
        role: "admin".into(),
    }];
    rules.extend((1..n).map(|i| RuleSpec {
        id: format!("r{i}"),
        subject: match below(4) {
            0 => Subject::Identity(format!("user{}", below(2_000))),
            _ => Subject::Group(format!("group{}", below(300))),
        },
        target: format!("target{}", below(1_000)),
        role: ROLES[below(ROLES.len())].into(),
    }));
    rules
}

/// Two global policies, as a typical deployment might have.
fn custom() -> Vec<CustomPolicy> {
    let policy = |name: &str, text: &str| CustomPolicy {
        name: name.into(),
        text: text.into(),
    };
    vec![
        policy(
            "business-hours",
            "forbid(principal, action, resource) when { context.hour < 8 || context.hour >= 18 };",
        ),
        policy(
            "critical-needs-mfa",
            "forbid(principal, action, resource) when { resource.target.risk_tier >= 4 } unless { context.mfa };",
        ),
    ]
}

fn bench_decide(bencher: Bencher<'_, '_>, rule_count: usize) {
    let engine = PolicyEngine::new(&rules(rule_count), &custom()).unwrap();
    let groups: Vec<String> = (0..5).map(|i| format!("group{i}")).collect();
    let input = DecisionInput {
        identity: "user1",
        email: "user1@example.com",
        active: true,
        groups: &groups,
        target: TargetAttrs {
            name: "target0",
            kind: "postgres",
            risk_tier: 3,
            owner: "dba",
        },
        role: "admin",
        context: RequestContext {
            duration_secs: 3_600,
            has_reason: true,
            has_ticket: true,
            mfa: true,
            now_unix: 1_704_103_200, // Monday 10:00 UTC
        },
    };
    assert!(engine.decide(&input).allowed);
    bencher.bench_local(|| engine.decide(black_box(&input)));
}

#[divan::bench(args = [3, 10_000], sample_count = 1000)]
fn decide(bencher: Bencher<'_, '_>, rules: usize) {
    bench_decide(bencher, rules);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn new_10k_rules(bencher: Bencher<'_, '_>) {
    let (rules, custom) = (rules(10_000), custom());
    bencher.bench_local(|| PolicyEngine::new(black_box(&rules), &custom).unwrap());
}

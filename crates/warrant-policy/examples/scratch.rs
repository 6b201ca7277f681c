use std::time::Instant;
use warrant_policy::*;
fn main() {
    let rules: Vec<RuleSpec> = (0..3).map(|i| RuleSpec { id: format!("r{i}"), subject: Subject::Group(format!("group{}", i * 7)), target: "target0".into(), role: ["admin", "read", "write"][i].into() }).collect();
    let custom = vec![
        CustomPolicy { name: "bh".into(), text: "forbid(principal, action, resource) when { context.hour < 8 || context.hour >= 18 };".into() },
        CustomPolicy { name: "crit".into(), text: "forbid(principal, action, resource) when { resource.target.risk_tier >= 4 } unless { context.mfa };".into() },
    ];
    let engine = PolicyEngine::new(&rules, &custom).unwrap();
    let groups: Vec<String> = (0..5).map(|i| format!("group{i}")).collect();
    let input = DecisionInput { identity: "user1", email: "u@x", active: true, groups: &groups,
        target: TargetAttrs { name: "target0", kind: "pg", risk_tier: 3, owner: "dba" }, role: "admin",
        context: RequestContext { duration_secs: 3600, has_reason: true, has_ticket: true, mfa: true, now_unix: 1_704_103_200 } };
    assert!(engine.decide(&input).allowed);
    let n = std::env::var("N").map(|s| s.parse().unwrap()).unwrap_or(200_000u32);
    let start = Instant::now();
    for _ in 0..n { std::hint::black_box(engine.decide(std::hint::black_box(&input))); }
    println!("decide: {:?}", start.elapsed() / n);
}

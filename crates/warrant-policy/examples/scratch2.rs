use warrant_policy::*;
fn rss() -> String { std::fs::read_to_string("/proc/self/status").unwrap().lines().find(|l| l.starts_with("VmRSS")).unwrap().to_owned() }
fn main() {
    const ROLES: [&str; 5] = ["read", "write", "admin", "owner", "audit"];
    let rules: Vec<RuleSpec> = (0..10_000).map(|i| RuleSpec { id: format!("r{i}"), subject: Subject::Group(format!("group{}", i % 300)), target: format!("target{}", (i * 7919) % 1000), role: ROLES[(i / 1000) % 5].into() }).collect();
    println!("{}", rss());
    let t = std::time::Instant::now();
    let engine = PolicyEngine::new(&rules, &[]).unwrap();
    println!("{:?} {}", t.elapsed(), rss());
    std::hint::black_box(engine);
}

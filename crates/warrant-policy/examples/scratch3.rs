use cedar_policy::*;
use std::collections::HashMap;
use std::str::FromStr;
fn rss() -> i64 { std::fs::read_to_string("/proc/self/status").unwrap().lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap() }
fn main() {
    let t = Template::parse(Some(PolicyId::new("rule")), r#"permit(principal in ?principal, action == Warrant::Action::"activate", resource == ?resource);"#).unwrap();
    let n = 5000;
    let r0 = rss();
    let empty: Vec<PolicySet> = (0..n).map(|_| PolicySet::new()).collect();
    let r1 = rss();
    println!("empty set: {} B", (r1 - r0) * 1024 / n);
    let with_t: Vec<PolicySet> = (0..n).map(|_| { let mut p = PolicySet::new(); p.add_template(t.clone()).unwrap(); p }).collect();
    let r2 = rss();
    println!("set+template: {} B", (r2 - r1) * 1024 / n);
    let linked: Vec<PolicySet> = (0..n).map(|i| { let mut p = PolicySet::new(); p.add_template(t.clone()).unwrap();
        for j in 0..2 { p.link(PolicyId::new("rule"), PolicyId::new(format!("rule:{i}-{j}")), HashMap::from([(SlotId::principal(), EntityUid::from_str(&format!("Warrant::Group::\"g{j}\"")).unwrap()), (SlotId::resource(), EntityUid::from_str(&format!("Warrant::Role::\"t{i}/r\"")).unwrap())])).unwrap(); } p }).collect();
    let r3 = rss();
    println!("set+template+2 links: {} B", (r3 - r2) * 1024 / n);
    std::hint::black_box((empty, with_t, linked));
}

//! Property test: random interleavings keep the invariants.
//!
//! Operations: request, approve, deny, cancel, advance time (expiry), tick, revoke, disable,
//! enable, group removal and re-adding, restart. After every step: no grant without all its
//! approvals from distinct non-requesters, none in force past its end, none open for a disabled
//! identity, and the audit chain verifies.

use proptest::prelude::*;
use warrant_core::{GrantStatus, IdentityStatus, RequestStatus};
use warrant_engine::{Engine, RequestFilter};

use crate::harness::{Backend, Env};

#[derive(Debug, Clone)]
enum Op {
    Request { who: usize, which: usize },
    Approve { who: usize, pick: usize },
    Deny { who: usize, pick: usize },
    Cancel { pick: usize },
    Advance { secs: i64 },
    Tick,
    Revoke { pick: usize },
    Disable { who: usize },
    Enable { who: usize },
    RemoveFromGroup { who: usize },
    AddToGroup { who: usize },
    Restart,
}

const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const ASKS: [(&str, &str, &str, Option<&str>); 3] = [
    ("pg-prod", "readonly", "1h", None),
    ("pg-prod", "admin", "30m", Some("CHG-9")),
    ("web-1", "root", "1h", None),
];
const HOME_GROUP: [&str; 5] = ["dba", "db-owners", "ops", "security", "ops"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..5usize, 0..3usize).prop_map(|(who, which)| Op::Request { who, which }),
        5 => (0..5usize, 0..8usize).prop_map(|(who, pick)| Op::Approve { who, pick }),
        1 => (0..5usize, 0..8usize).prop_map(|(who, pick)| Op::Deny { who, pick }),
        1 => (0..8usize).prop_map(|pick| Op::Cancel { pick }),
        2 => (1..4000i64).prop_map(|secs| Op::Advance { secs }),
        2 => Just(Op::Tick),
        1 => (0..8usize).prop_map(|pick| Op::Revoke { pick }),
        1 => (0..5usize).prop_map(|who| Op::Disable { who }),
        1 => (0..5usize).prop_map(|who| Op::Enable { who }),
        1 => (0..5usize).prop_map(|who| Op::RemoveFromGroup { who }),
        1 => (0..5usize).prop_map(|who| Op::AddToGroup { who }),
        1 => Just(Op::Restart),
    ]
}

async fn check_invariants(env: &Env, engine: &Engine) {
    let now = engine.now();
    let grants = engine.grants(&env.admin, true, false).await.unwrap();
    let reqs = engine
        .requests(&env.admin, RequestFilter::All)
        .await
        .unwrap();
    let ids = engine.identities(&env.admin).await.unwrap();
    for g in &grants {
        let req = reqs
            .iter()
            .find(|r| r.request.id == g.request_id)
            .expect("grant without request");
        let r = &req.request;
        assert_eq!(
            r.status,
            RequestStatus::Approved,
            "grant {} from a request that is {:?}",
            g.id,
            r.status
        );
        for (i, stage) in r.stages.iter().enumerate() {
            let n = r.approvals.iter().filter(|a| a.stage as usize == i).count();
            assert!(
                n >= stage.count as usize,
                "grant {} missing approvals in stage {i}",
                g.id
            );
        }
        assert!(
            r.approvals.iter().all(|a| a.approver != r.identity),
            "self-approval in {}",
            r.id
        );
        let mut who: Vec<_> = r.approvals.iter().map(|a| a.approver.clone()).collect();
        who.sort();
        who.dedup();
        assert_eq!(
            who.len(),
            r.approvals.len(),
            "an approver counted twice in {}",
            r.id
        );
        assert!(g.ends_at.millis() - g.starts_at.millis() <= r.duration.secs() * 1000);
        if g.status_at(now) == GrantStatus::Active {
            assert!(now < g.ends_at, "grant {} active past its end", g.id);
            let holder = ids.iter().find(|i| i.name == g.identity);
            assert!(
                holder.is_some_and(|i| i.status == IdentityStatus::Active),
                "open grant {} for a disabled or deleted identity",
                g.id
            );
        }
    }
    for i in ids.iter().filter(|i| i.status == IdentityStatus::Disabled) {
        assert!(
            !reqs
                .iter()
                .any(|r| r.request.identity == i.name && r.status == RequestStatus::Pending),
            "pending request of disabled {}",
            i.name
        );
    }
    assert!(engine.audit_verify().await.unwrap().intact);
}

async fn run(ops: Vec<Op>) {
    let env = Env::new(Backend::Sqlite).await;
    let mut engine = env.engine.clone();
    let mut seen: Vec<String> = Vec::new();
    let pick = |seen: &Vec<String>, i: usize| seen.get(i % seen.len().max(1)).cloned();
    for op in ops {
        match op {
            Op::Request { who, which } => {
                let (t, r, d, ticket) = ASKS[which];
                let actor = env.user(PEOPLE[who]);
                let res = engine
                    .create_request(
                        &actor,
                        warrant_engine::NewRequest {
                            target: t.parse().unwrap(),
                            role: r.parse().unwrap(),
                            duration: warrant_core::ActivationDuration::parse(d).unwrap(),
                            reason: "prop".into(),
                            ticket: ticket.map(str::to_owned),
                            start_at: None,
                        },
                    )
                    .await;
                if let Ok(v) = res {
                    seen.push(v.request.id);
                }
            }
            Op::Approve { who, pick: p } => {
                if let Some(id) = pick(&seen, p) {
                    let _ = engine.approve(&env.user(PEOPLE[who]), &id).await;
                }
            }
            Op::Deny { who, pick: p } => {
                if let Some(id) = pick(&seen, p) {
                    let _ = engine.deny(&env.user(PEOPLE[who]), &id, None).await;
                }
            }
            Op::Cancel { pick: p } => {
                if let Some(id) = pick(&seen, p) {
                    let r = engine.request(&env.admin, &id).await.unwrap();
                    let _ = engine
                        .cancel(&env.user(r.request.identity.as_str()), &id)
                        .await;
                }
            }
            Op::Advance { secs } => env.clock.advance_secs(secs),
            Op::Tick => {
                engine.tick().await.unwrap();
            }
            Op::Revoke { pick: p } => {
                let grants = engine.grants(&env.admin, true, true).await.unwrap();
                if !grants.is_empty() {
                    let g = &grants[p % grants.len()];
                    let _ = engine.revoke(&env.admin, &g.id, None).await;
                }
            }
            Op::Disable { who } => {
                engine
                    .set_identity_status(&env.admin, PEOPLE[who], IdentityStatus::Disabled)
                    .await
                    .unwrap();
            }
            Op::Enable { who } => {
                engine
                    .set_identity_status(&env.admin, PEOPLE[who], IdentityStatus::Active)
                    .await
                    .unwrap();
            }
            Op::RemoveFromGroup { who } => {
                engine
                    .remove_member(&env.admin, HOME_GROUP[who], PEOPLE[who])
                    .await
                    .unwrap();
            }
            Op::AddToGroup { who } => {
                engine
                    .add_member(&env.admin, HOME_GROUP[who], PEOPLE[who])
                    .await
                    .unwrap();
            }
            Op::Restart => {
                engine.store().close().await;
                engine = env.restart().await;
            }
        }
        check_invariants(&env, &engine).await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 200, .. ProptestConfig::default() })]
    #[test]
    fn interleavings_keep_the_invariants(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops));
    }
}

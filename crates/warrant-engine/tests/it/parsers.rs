//! Fuzzing the parsers Warrant writes by hand (and the inputs it hands to others): arbitrary
//! text never panics, and what parses round-trips.

use proptest::prelude::*;
use warrant_core::{ActivationDuration, ApproverSource, Name, Timestamp};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn names(s in "\\PC{0,140}") {
        if let Ok(n) = Name::new(s.clone()) {
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert!(!s.contains('/') && !s.contains('+'));
        }
    }

    #[test]
    fn durations(s in "[0-9a-z -]{0,20}") {
        if let Ok(d) = ActivationDuration::parse(&s) {
            prop_assert!(d.secs() > 0);
            prop_assert_eq!(ActivationDuration::parse(&d.to_string()), Ok(d));
        }
    }

    #[test]
    fn timestamps(ms in -10_000_000_000_000i64..10_000_000_000_000i64, junk in "\\PC{0,40}") {
        let t = Timestamp::from_millis(ms);
        prop_assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        let _ = Timestamp::parse_rfc3339(&junk);
    }

    #[test]
    fn approver_sources_and_stages(s in "[a-z:, 0-9-]{0,40}") {
        if let Ok(src) = s.parse::<ApproverSource>() {
            prop_assert_eq!(src.to_string().parse::<ApproverSource>(), Ok(src));
        }
        if let Ok(stages) = warrant_engine::policy::parse_stages(&s) {
            prop_assert!(stages.iter().all(|st| st.count >= 1));
        }
    }

    #[test]
    fn tokens(s in "\\PC{0,80}") {
        if let Some((id, secret)) = warrant_iam::parse_token(&s) {
            prop_assert_eq!(id.len(), 16);
            prop_assert!(!secret.is_empty());
        }
    }

    #[test]
    fn org_files(s in "[a-z_:\\- \\n\\[\\],0-9\"]{0,300}") {
        let _ = warrant_engine::org::parse(&s);
    }
}

#[test]
fn org_file_errors_name_the_line() {
    let e = warrant_engine::org::parse("groups:\n  - name: ok\n  - name: \"a/b\"\n").unwrap_err();
    assert_eq!(e.code, "invalid_org_file");
    assert!(e.message.contains("line 3"), "{}", e.message);
    let e = warrant_engine::org::parse(
        "eligibility:\n  - group: g\n    target: t\n    role: r\n    max_duration: 0s\n",
    )
    .unwrap_err();
    assert!(e.message.contains("longer than zero"), "{}", e.message);
}

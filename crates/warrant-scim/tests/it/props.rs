//! Property tests: printed filters parse back to the same tree, and no input makes the parsers
//! (or evaluation and PATCH with what they parse) panic.

use proptest::prelude::*;
use serde_json::{Number, json};
use warrant_scim::filter::MAX_INPUT_LEN;
use warrant_scim::{
    AttrPath, CompValue, CompareOp, Filter, PatchOp, PatchOpKind, apply, parse_filter, parse_path,
};

use crate::fixtures::{group, groups, user, users};

const URNS: [&str; 3] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:example:x",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z][a-zA-Z0-9_-]{0,7}",
        1 => prop::sample::select(vec!["$ref", "and", "or", "not", "pr", "eq", "true", "null"])
            .prop_map(str::to_owned),
    ]
}

fn attr_path() -> impl Strategy<Value = AttrPath> {
    (
        prop::option::weighted(0.2, prop::sample::select(URNS.to_vec())),
        name(),
        prop::option::weighted(0.3, name()),
    )
        .prop_map(|(urn, name, sub)| AttrPath {
            urn: urn.map(str::to_owned),
            name,
            sub,
        })
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(CompValue::Number),
        "\\PC{0,12}".prop_map(CompValue::String),
        any::<String>().prop_map(|s| CompValue::String(s.chars().take(12).collect())),
    ]
}

fn comparison() -> impl Strategy<Value = Filter> {
    (
        attr_path(),
        prop::sample::select(CompareOp::ALL.to_vec()),
        comp_value(),
    )
        .prop_map(|(path, op, value)| {
            let op = if op.accepts(&value) {
                op
            } else {
                CompareOp::Eq
            };
            Filter::Compare { path, op, value }
        })
}

fn combine(leaf: impl Strategy<Value = Filter> + Clone + 'static) -> impl Strategy<Value = Filter> {
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::Or(Box::new(l), Box::new(r))),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

/// Filters without value paths: the inside of `attr[...]`.
fn value_filter() -> impl Strategy<Value = Filter> {
    combine(prop_oneof![
        attr_path().prop_map(Filter::Present),
        comparison()
    ])
}

fn filter() -> impl Strategy<Value = Filter> {
    let value_path = (name(), value_filter()).prop_map(|(name, inner)| Filter::ValuePath {
        path: AttrPath::new(&name),
        filter: Box::new(inner),
    });
    combine(prop_oneof![
        2 => attr_path().prop_map(Filter::Present),
        4 => comparison(),
        1 => value_path,
    ])
}

/// Tokens that make the parser go deep into its grammar.
fn filter_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "userName",
        "emails",
        "name.familyName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "eq",
        "ne",
        "co",
        "sw",
        "gt",
        "le",
        "pr",
        "and",
        "or",
        "not",
        "(",
        ")",
        "[",
        "]",
        ".",
        "\"x\"",
        "\"\\u00e9\"",
        "\"",
        "\\",
        "42",
        "-1.5e3",
        "true",
        "null",
        "type",
        "value",
        "$ref",
        ":",
        " ",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.join(" "))
}

/// Parses `input` as a filter and as a path, and uses whatever parses: evaluation, checking,
/// printing, and a PATCH replace and remove at the path. Nothing may panic.
pub fn exercise(input: &str) {
    if let Ok(filter) = parse_filter(input) {
        let _ = filter.matches(&user(), &users());
        let _ = filter.matches(&group(), &groups());
        let _ = filter.check(&users());
        let _ = filter.eq_value();
        assert_eq!(
            parse_filter(&filter.to_string()).ok(),
            Some(filter),
            "{input:?}"
        );
    }
    if let Ok(path) = parse_path(input) {
        assert_eq!(
            parse_path(&path.to_string()).ok(),
            Some(path.clone()),
            "{input:?}"
        );
        for (op, value) in [
            (PatchOpKind::Replace, Some(json!("x"))),
            (
                PatchOpKind::Add,
                Some(json!({ "value": "v", "type": "work" })),
            ),
            (PatchOpKind::Remove, None),
        ] {
            let ops = [PatchOp {
                op,
                path: Some(path.clone()),
                value,
            }];
            let _ = apply(&mut user(), &ops, &users());
            let _ = apply(&mut group(), &ops, &groups());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_filters_parse_back_to_the_same_tree(filter in filter()) {
        let printed = filter.to_string();
        prop_assume!(printed.len() <= MAX_INPUT_LEN);
        let parsed = parse_filter(&printed);
        prop_assert_eq!(parsed, Ok(filter), "printed as {}", printed);
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        exercise(&input);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn filter_like_token_soup_never_panics(input in filter_like()) {
        exercise(&input);
    }

    #[test]
    fn generated_filters_evaluate_and_check_without_panicking(filter in filter()) {
        let _ = filter.matches(&user(), &users());
        let _ = filter.check(&users());
        exercise(&filter.to_string());
    }
}

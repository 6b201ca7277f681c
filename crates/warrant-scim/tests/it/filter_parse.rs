//! Filter parsing: grammar, precedence, printing and error positions.

use warrant_scim::filter::{MAX_DEPTH, MAX_INPUT_LEN};
use warrant_scim::schema::user;
use warrant_scim::{AttrPath, CompValue, CompareOp, Filter, ScimType, parse_filter};

fn parse(input: &str) -> Filter {
    parse_filter(input).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn pr(name: &str) -> Filter {
    Filter::Present(AttrPath::new(name))
}

fn and(l: Filter, r: Filter) -> Filter {
    Filter::And(Box::new(l), Box::new(r))
}

fn or(l: Filter, r: Filter) -> Filter {
    Filter::Or(Box::new(l), Box::new(r))
}

fn not(f: Filter) -> Filter {
    Filter::Not(Box::new(f))
}

/// Parses `input`, checks the tree, and checks that printing it parses back to the same tree.
fn check(input: &str, expected: Filter) {
    let parsed = parse(input);
    assert_eq!(parsed, expected, "{input}");
    assert_eq!(parse(&parsed.to_string()), parsed, "printed as {parsed}");
}

/// Checks that `input` fails with `invalidFilter` at `offset`, with `needle` in the message.
fn check_error(input: &str, offset: usize, needle: &str) {
    let error = parse_filter(input).expect_err(input);
    assert_eq!(error.scim_type, Some(ScimType::InvalidFilter), "{input}");
    assert!(
        error.detail.contains(&format!("at offset {offset}:")) && error.detail.contains(needle),
        "{input:?}: {:?} should be at offset {offset} and mention {needle:?}",
        error.detail
    );
}

#[test]
fn rfc_7644_example_filters_parse() {
    let examples = [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for example in examples {
        let parsed = parse(example);
        assert_eq!(parse(&parsed.to_string()), parsed, "{example}");
    }
}

#[test]
fn comparisons_and_literals() {
    let cmp = |name: &str, op, value| Filter::Compare {
        path: AttrPath::new(name),
        op,
        value,
    };
    check(
        r#"userName eq "bjensen""#,
        cmp(
            "userName",
            CompareOp::Eq,
            CompValue::String("bjensen".into()),
        ),
    );
    check(
        "active eq true",
        cmp("active", CompareOp::Eq, CompValue::Bool(true)),
    );
    check(
        "active ne FALSE",
        cmp("active", CompareOp::Ne, CompValue::Bool(false)),
    );
    check(
        "manager eq null",
        cmp("manager", CompareOp::Eq, CompValue::Null),
    );
    check(
        "count ge -12.5e2",
        cmp(
            "count",
            CompareOp::Ge,
            CompValue::Number(serde_json::Number::from_f64(-1250.0).unwrap()),
        ),
    );
    check(
        "count lt 42",
        cmp("count", CompareOp::Lt, CompValue::Number(42.into())),
    );
    check(
        r#"displayName eq "say \"hi\"\\ \u00e9\n""#,
        cmp(
            "displayName",
            CompareOp::Eq,
            CompValue::String("say \"hi\"\\ é\n".into()),
        ),
    );
    check(
        r#"displayName co "Zoë 東京""#,
        cmp(
            "displayName",
            CompareOp::Co,
            CompValue::String("Zoë 東京".into()),
        ),
    );
    for op in CompareOp::ALL {
        let input = format!("userName {} \"x\"", op.as_str().to_uppercase());
        check(&input, cmp("userName", op, CompValue::String("x".into())));
    }
}

#[test]
fn attribute_paths_with_sub_attributes_and_urns() {
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    check(
        &format!("{enterprise}:department pr"),
        Filter::Present(AttrPath {
            urn: Some(enterprise.into()),
            name: "department".into(),
            sub: None,
        }),
    );
    check(
        &format!(r#"{enterprise}:manager.value eq "26118915""#),
        Filter::Compare {
            path: AttrPath {
                urn: Some(enterprise.into()),
                name: "manager".into(),
                sub: Some("value".into()),
            },
            op: CompareOp::Eq,
            value: CompValue::String("26118915".into()),
        },
    );
    check(
        "name.familyName pr",
        Filter::Present(AttrPath {
            urn: None,
            name: "name".into(),
            sub: Some("familyName".into()),
        }),
    );
    check(
        r#"members[$ref sw "https://"]"#,
        Filter::ValuePath {
            path: AttrPath::new("members"),
            filter: Box::new(Filter::Compare {
                path: AttrPath::new("$ref"),
                op: CompareOp::Sw,
                value: CompValue::String("https://".into()),
            }),
        },
    );
}

#[test]
fn precedence_is_not_then_and_then_or() {
    check("a pr or b pr and c pr", or(pr("a"), and(pr("b"), pr("c"))));
    check("a pr and b pr or c pr", or(and(pr("a"), pr("b")), pr("c")));
    check(
        "a pr and b pr or c pr and d pr",
        or(and(pr("a"), pr("b")), and(pr("c"), pr("d"))),
    );
    check(
        "(a pr or b pr) and c pr",
        and(or(pr("a"), pr("b")), pr("c")),
    );
    check("not (a pr) and b pr", and(not(pr("a")), pr("b")));
    check(
        "not (a pr and b pr) or c pr",
        or(not(and(pr("a"), pr("b"))), pr("c")),
    );
    check(
        "a pr and b pr and c pr",
        and(and(pr("a"), pr("b")), pr("c")),
    );
    check(
        "a pr and (b pr and c pr)",
        and(pr("a"), and(pr("b"), pr("c"))),
    );
    check("a pr or (b pr or c pr)", or(pr("a"), or(pr("b"), pr("c"))));
    check(
        "a pr OR b pr AnD NOT(c pr)",
        or(pr("a"), and(pr("b"), not(pr("c")))),
    );
    check("((a pr))", pr("a"));
    check(
        "emails[type eq \"work\" or not (primary eq true)] and x pr",
        and(
            Filter::ValuePath {
                path: AttrPath::new("emails"),
                filter: Box::new(or(
                    Filter::Compare {
                        path: AttrPath::new("type"),
                        op: CompareOp::Eq,
                        value: CompValue::String("work".into()),
                    },
                    not(Filter::Compare {
                        path: AttrPath::new("primary"),
                        op: CompareOp::Eq,
                        value: CompValue::Bool(true),
                    }),
                )),
            },
            pr("x"),
        ),
    );
}

#[test]
fn keywords_can_be_attribute_names() {
    check("and pr or or pr", or(pr("and"), pr("or")));
    check("not pr", pr("not"));
}

#[test]
fn display_prints_the_canonical_form() {
    let printed =
        parse(r#"USERNAME Eq "x" AND (title PR Or NOT (Emails[Type EQ "work"]))"#).to_string();
    assert_eq!(
        printed,
        r#"USERNAME eq "x" and (title pr or not (Emails[Type eq "work"]))"#
    );
}

#[test]
fn errors_say_where_and_what_was_expected() {
    check_error("userName eq", 11, "expected a value");
    check_error(r#"userName foo "x""#, 9, "expected an operator");
    check_error(r#"userName eq "bjensen"#, 12, "unterminated string");
    check_error("(userName pr", 12, "expected 'and', 'or' or ')'");
    check_error(
        r#"emails[type eq "work""#,
        21,
        "expected 'and', 'or' or ']'",
    );
    check_error(
        "userName pr garbage",
        12,
        "expected 'and', 'or' or the end of the filter",
    );
    check_error("active gt true", 10, "'gt' cannot compare with 'true'");
    check_error("meta.created lt null", 16, "cannot compare");
    check_error("", 0, "expected an attribute name, 'not' or '('");
    check_error("userName eq bjensen", 12, "expected a value");
    check_error("name.givenName.x pr", 0, "more than one sub-attribute");
    check_error("user#name pr", 4, "unexpected character '#'");
    check_error(r#"emails[value[type eq "x"]]"#, 12, "cannot be nested");
    check_error(r#"name.givenName[type eq "x"]"#, 14, "not a sub-attribute");
    check_error("userName eq 1.2.3", 12, "invalid number");
    check_error(r#"userName eq "\q""#, 12, "invalid string literal");
    check_error(
        "urn:ietf:params:scim:schemas:core:2.0:User: pr",
        43,
        "after the schema URN",
    );
    check_error("not (a pr", 9, "expected 'and', 'or' or ')'");
    check_error("a pr and", 8, "expected an attribute name");
    check_error("9lives pr", 0, "expected an attribute name");
}

#[test]
fn nesting_and_length_are_bounded() {
    let nested = |depth: usize| format!("{}a pr{}", "(".repeat(depth), ")".repeat(depth));
    assert!(parse_filter(&nested(MAX_DEPTH)).is_ok());
    check_error(
        &nested(MAX_DEPTH + 1),
        MAX_DEPTH,
        "nested deeper than 64 levels",
    );
    let nots = |depth: usize| format!("{}a pr{}", "not (".repeat(depth), ")".repeat(depth));
    assert!(parse_filter(&nots(MAX_DEPTH)).is_ok());
    assert!(parse_filter(&nots(MAX_DEPTH + 1)).is_err());
    // Deep enough to overflow the stack without the bound.
    assert!(parse_filter(&nested(100_000)).is_err());

    let long_value = "x".repeat(MAX_INPUT_LEN);
    check_error(
        &format!("userName eq \"{long_value}\""),
        MAX_INPUT_LEN,
        "longer than 4096 bytes",
    );
    let chain = vec!["a pr"; 400].join(" and ");
    assert!(chain.len() <= MAX_INPUT_LEN);
    assert!(parse_filter(&chain).is_ok());
}

#[test]
fn eq_value_recognises_a_single_string_equality() {
    let filter = parse(r#"userName eq "bjensen@example.com""#);
    let (path, value) = filter.eq_value().unwrap();
    assert!(path.is(user(), "username"));
    assert_eq!(value, "bjensen@example.com");

    let qualified = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:externalId eq "00u1""#);
    let (path, value) = qualified.eq_value().unwrap();
    assert!(path.is(user(), "externalId") && !path.is(user(), "userName"));
    assert_eq!(value, "00u1");

    let other_schema = parse(r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x""#);
    assert!(!other_schema.eq_value().unwrap().0.is(user(), "displayName"));

    for not_single in [
        r#"userName ne "x""#,
        r#"userName eq "x" and active eq true"#,
        r#"userName co "x""#,
        "active eq true",
        r#"emails[value eq "x"]"#,
    ] {
        assert!(parse(not_single).eq_value().is_none(), "{not_single}");
    }
    assert!(
        parse(r#"name.familyName eq "x""#)
            .eq_value()
            .unwrap()
            .0
            .sub
            .is_some()
    );
}

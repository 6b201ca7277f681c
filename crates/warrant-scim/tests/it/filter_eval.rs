//! Filter evaluation over resource JSON (RFC 7644 §3.4.2.2).

use serde_json::{Value, json};
use warrant_scim::schema::{enterprise_user, user};
use warrant_scim::{AttrDef, AttrType, ResourceSchema, ScimType, parse_filter};

use crate::fixtures::{ENTERPRISE, USER, assert_error, groups, users};

/// The User schema with the RFC attributes the examples use (Warrant ignores them).
fn rfc_user_schema() -> ResourceSchema {
    let mut schema = user().clone();
    schema.attributes.push(AttrDef::string("title"));
    schema.attributes.push(AttrDef::string("userType"));
    schema.attributes.push(
        AttrDef::complex(
            "ims",
            vec![AttrDef::string("value"), AttrDef::string("type")],
        )
        .multi(),
    );
    schema
        .attributes
        .push(AttrDef::new("loginCount", AttrType::Integer));
    schema.ignored.clear();
    schema
}

fn people() -> Vec<Value> {
    vec![
        json!({
            "schemas": [USER, ENTERPRISE],
            "id": "1", "userName": "bjensen", "title": "Tour Guide", "userType": "Employee",
            "name": { "familyName": "Jensen", "givenName": "Barbara" },
            "emails": [
                { "value": "bjensen@example.com", "type": "work", "primary": true },
                { "value": "babs@jensen.org", "type": "home" }
            ],
            "ims": [{ "value": "someaimhandle", "type": "aim" }],
            "active": true, "loginCount": 12,
            "meta": { "lastModified": "2011-08-01T18:29:49.793Z" },
            ENTERPRISE: { "department": "Tour Operations", "manager": { "value": "26118915" } }
        }),
        json!({
            "schemas": [USER],
            "id": "2", "userName": "JSmith", "userType": "Intern",
            "name": { "familyName": "Smith" },
            "emails": [{ "value": "jsmith@example.org", "type": "work" }],
            "ims": [{ "value": "jsmith@foo.com", "type": "xmpp" }],
            "active": false, "loginCount": 3,
            "meta": { "lastModified": "2010-01-23T04:56:22Z" }
        }),
        json!({
            "schemas": [USER],
            "id": "3", "userName": "pomalley", "title": "Engineer", "userType": "Contractor",
            "name": { "familyName": "O'Malley" },
            "emails": [{ "value": "pat@omalley.net", "type": "home" }],
            "meta": { "lastModified": "2011-05-13T06:42:34+02:00" }
        }),
    ]
}

/// The ids of the people `filter` matches.
fn matching(filter: &str, schemas: &[&ResourceSchema]) -> Vec<String> {
    let filter = parse_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    people()
        .iter()
        .filter(|p| filter.matches(p, schemas))
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

fn check(filter: &str, expected: &[&str]) {
    let schema = rfc_user_schema();
    let schemas = [&schema, enterprise_user()];
    assert_eq!(matching(filter, &schemas), expected, "{filter}");
}

#[test]
fn rfc_7644_examples_evaluate_as_the_rfc_says() {
    check(r#"userName eq "bjensen""#, &["1"]);
    check(r#"name.familyName co "O'Malley""#, &["3"]);
    check(r#"userName sw "J""#, &["2"]);
    check(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        &["2"],
    );
    check("title pr", &["1", "3"]);
    // Person 3 was modified at exactly 2011-05-13T04:42:34Z, written with another offset.
    check(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, &["1"]);
    check(
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        &["1", "3"],
    );
    check(r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, &["2"]);
    check(
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        &["2", "3"],
    );
    check(r#"title pr and userType eq "Employee""#, &["1"]);
    check(r#"title pr or userType eq "Intern""#, &["1", "2", "3"]);
    check(
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        &["1"],
    );
    check(
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        &["1"],
    );
    check(
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        &["3"],
    );
    check(
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        &["1"],
    );
    check(
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        &["1"],
    );
    check(
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        &["1", "2"],
    );
}

#[test]
fn names_operators_and_strings_are_case_insensitive() {
    check(r#"USERNAME EQ "BJENSEN""#, &["1"]);
    check(r#"Emails[TYPE eq "WORK"]"#, &["1", "2"]);
    check(r#"name.FAMILYNAME ew "LEY""#, &["3"]);
    check(r#"emails.value sw "BJ""#, &["1"]);
}

#[test]
fn case_exact_attributes_compare_exactly() {
    let resource =
        json!({ "schemas": [USER], "id": "AbC", "userName": "u", "externalId": "Ext-1" });
    let schemas = users();
    let matches = |f: &str| parse_filter(f).unwrap().matches(&resource, &schemas);
    assert!(matches(r#"externalId eq "Ext-1""#));
    assert!(!matches(r#"externalId eq "ext-1""#));
    assert!(matches(r#"id eq "AbC""#) && !matches(r#"id eq "abc""#));
    assert!(!matches(r#"externalId sw "ext""#));
    assert!(matches(r#"userName eq "U""#));
}

#[test]
fn multi_valued_and_complex_attributes() {
    // A complex multi-valued attribute compared without a sub-attribute compares its `value`.
    check(r#"emails eq "BABS@jensen.org""#, &["1"]);
    // Any value matching is enough; `ne` holds when no value is equal.
    check(r#"emails.type eq "home""#, &["1", "3"]);
    check(r#"emails.type ne "home""#, &["2"]);
    // A complex single-valued attribute without `value` matches nothing.
    check(r#"name eq "Jensen""#, &[]);
    // A value filter must hold within one value, not across values.
    check(r#"emails[type eq "home" and value co "example.com"]"#, &[]);
    check(
        r#"emails[type eq "home"] and emails[value co "example.com"]"#,
        &["1"],
    );
    check(r#"emails[not (type eq "work")]"#, &["1", "3"]);
}

#[test]
fn presence() {
    let schemas = users();
    let present = |resource: Value, attr: &str| {
        parse_filter(&format!("{attr} pr"))
            .unwrap()
            .matches(&resource, &schemas)
    };
    assert!(present(json!({ "displayName": "x" }), "displayName"));
    assert!(!present(json!({ "displayName": null }), "displayName"));
    assert!(!present(json!({ "displayName": "" }), "displayName"));
    assert!(!present(json!({}), "displayName"));
    assert!(!present(json!({ "emails": [] }), "emails"));
    assert!(present(json!({ "emails": [{ "value": "a@b" }] }), "emails"));
    assert!(!present(
        json!({ "emails": [{ "type": "work" }] }),
        "emails.value"
    ));
    assert!(!present(json!({ "name": {} }), "name"));
    assert!(present(json!({ "active": false }), "active"));
    // An attribute no schema declares has no value.
    assert!(!present(json!({ "nickName": "babs" }), "nickName"));
}

#[test]
fn numbers_dates_and_booleans() {
    check("loginCount gt 3", &["1"]);
    check("loginCount ge 3.0", &["1", "2"]);
    check("loginCount lt 1e1", &["2"]);
    check("active eq true", &["1"]);
    check("active eq false", &["2"]);
    check("active ne true", &["2", "3"]);
    // A boolean never matches an ordering comparison, nor a string a number.
    check(r#"active gt "a""#, &[]);
    check(r#"loginCount eq "12""#, &[]);
    check(r#"userName gt "k""#, &["3"]);
    check(r#"userName le "jsmith""#, &["1", "2"]);
    // Dates compare as instants, including fractional seconds.
    check(
        r#"meta.lastModified eq "2011-08-01T20:29:49.793+02:00""#,
        &["1"],
    );
    check(r#"meta.lastModified gt "2011-08-01T18:29:49.792Z""#, &["1"]);
}

#[test]
fn null_compares_as_absence() {
    check("title eq null", &["2"]);
    check("title ne null", &["1", "3"]);
}

#[test]
fn enterprise_attributes_by_urn_or_plain_name() {
    check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#,
        &["1"],
    );
    check(r#"department sw "Tour""#, &["1"]);
    check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
        &["1"],
    );
    check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "26118915""#,
        &["1"],
    );
    check(
        r#"urn:example:unknown:department eq "Tour Operations""#,
        &[],
    );
}

#[test]
fn password_never_matches() {
    let resource = json!({ "userName": "u", "password": "secret" });
    let schemas = users();
    for filter in [
        r#"password eq "secret""#,
        "password pr",
        r#"password sw "s""#,
    ] {
        assert!(
            !parse_filter(filter).unwrap().matches(&resource, &schemas),
            "{filter}"
        );
    }
}

#[test]
fn group_members() {
    let group = crate::fixtures::group();
    let schemas = groups();
    let matches = |f: &str| parse_filter(f).unwrap().matches(&group, &schemas);
    assert!(matches(
        r#"members[value eq "902c246b-6245-4190-8e05-00816be7344a"]"#
    ));
    assert!(matches(
        r#"members eq "902c246b-6245-4190-8e05-00816be7344a""#
    ));
    assert!(!matches(
        r#"members[value eq "902C246B-6245-4190-8E05-00816BE7344A"]"#
    ));
    assert!(matches(r#"displayName eq "tour guides""#));
}

#[test]
fn check_reports_filters_the_schema_cannot_answer() {
    let schemas = users();
    let check = |f: &str| parse_filter(f).unwrap().check(&schemas);
    assert!(check(r#"userName eq "x" and emails[type eq "work"] and meta.created gt "2020-01-01T00:00:00Z""#).is_ok());
    assert!(
        check(r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#).is_ok()
    );
    assert!(
        check(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#)
            .is_ok()
    );
    assert_error(
        check("nickName pr"),
        ScimType::InvalidFilter,
        "unknown attribute 'nickName'",
    );
    assert_error(
        check("name.middleName pr"),
        ScimType::InvalidFilter,
        "unknown attribute",
    );
    assert_error(
        check(r#"emails[kind eq "x"]"#),
        ScimType::InvalidFilter,
        "unknown attribute 'kind'",
    );
    assert_error(
        check(r#"userName[value eq "x"]"#),
        ScimType::InvalidFilter,
        "not a complex attribute",
    );
    assert_error(
        check(r#"password eq "x""#),
        ScimType::InvalidFilter,
        "cannot be filtered",
    );
    assert_error(
        check(r#"active lt "x""#),
        ScimType::InvalidFilter,
        "boolean",
    );
    assert_error(
        check("urn:example:other:x pr"),
        ScimType::InvalidFilter,
        "names a schema",
    );
}

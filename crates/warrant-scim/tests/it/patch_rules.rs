//! PATCH semantics (RFC 7644 §3.5.2) and errors.

use serde_json::{Value, json};
use warrant_scim::{PatchOpKind, PatchRequest, ScimType, apply, parse_path};

use crate::fixtures::{PATCH_OP, assert_error, group, groups, patch, patch_body, user, users};

fn patch_user(ops: Value) -> Result<Value, warrant_scim::ScimError> {
    let mut resource = user();
    patch(&mut resource, patch_body(ops), &users()).map(|()| resource)
}

#[test]
fn parse_checks_the_message() {
    let request = PatchRequest::parse(&json!({
        "schemas": [PATCH_OP],
        "Operations": [
            { "op": "ADD", "path": "emails", "value": [] },
            { "op": "Replace", "value": {} },
            { "op": "remove", "path": "name.givenName" }
        ]
    }))
    .unwrap();
    let kinds: Vec<PatchOpKind> = request.operations.iter().map(|o| o.op).collect();
    assert_eq!(
        kinds,
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
    );
    assert_eq!(
        request.operations[2].path,
        Some(parse_path("name.givenName").unwrap())
    );

    let parse = |body: Value| PatchRequest::parse(&body);
    assert_error(parse(json!([])), ScimType::InvalidSyntax, "JSON object");
    assert_error(
        parse(json!({ "Operations": [] })),
        ScimType::InvalidSyntax,
        PATCH_OP,
    );
    assert_error(
        parse(
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": [] }),
        ),
        ScimType::InvalidSyntax,
        PATCH_OP,
    );
    assert_error(
        parse(json!({ "schemas": [PATCH_OP], "Operations": {} })),
        ScimType::InvalidSyntax,
        "'Operations' must be an array",
    );
    assert_error(
        parse(patch_body(json!([{ "op": "move", "path": "x" }]))),
        ScimType::InvalidSyntax,
        "Operations[0]: 'op'",
    );
    assert_error(
        parse(patch_body(json!([{ "op": "add", "path": "x" }]))),
        ScimType::InvalidSyntax,
        "'add' needs a value",
    );
    assert_error(
        parse(patch_body(json!([{ "op": "remove" }]))),
        ScimType::NoTarget,
        "'remove' needs a path",
    );
    assert_error(
        parse(patch_body(json!([{ "op": "remove", "path": 3 }]))),
        ScimType::InvalidPath,
        "must be a string",
    );
    assert_error(
        parse(patch_body(
            json!([{ "op": "add", "value": 1 }, { "op": "remove", "path": "emails[type eq]" }]),
        )),
        ScimType::InvalidPath,
        "Operations[1]: path at offset 14: expected a value",
    );
    // `operations` in any case is accepted.
    assert!(parse(json!({ "schemas": [PATCH_OP], "operations": [] })).is_ok());
}

#[test]
fn paths_parse_and_print() {
    for path in [
        "userName",
        "name.familyName",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        r#"emails[type eq "work"]"#,
        r#"emails[type eq "work" and primary eq true].value"#,
        r#"members[value eq "2819c223"]"#,
    ] {
        let parsed = parse_path(path).unwrap();
        assert_eq!(parsed.to_string(), path);
        assert_eq!(parse_path(&parsed.to_string()).unwrap(), parsed);
    }
    let parsed = parse_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!(parsed.attr.name, "emails");
    assert_eq!(parsed.attr.sub.as_deref(), Some("value"));
    assert!(parsed.filter.is_some());

    for (bad, offset) in [
        ("", 0),
        ("emails[", 7),
        (r#"emails[type eq "work"]value"#, 22),
        (r#"emails[type eq "work"]."#, 23),
        ("name.givenName[type pr]", 14),
        ("userName eq \"x\"", 9),
        ("a.b.c", 0),
    ] {
        let error = parse_path(bad).expect_err(bad);
        assert_eq!(error.scim_type, Some(ScimType::InvalidPath), "{bad}");
        assert!(
            error.detail.contains(&format!("at offset {offset}:")),
            "{bad}: {}",
            error.detail
        );
    }
}

#[test]
fn add_appends_to_multi_valued_attributes_without_duplicates() {
    let resource = patch_user(json!([{
        "op": "add",
        "path": "emails",
        "value": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@example.net", "type": "other" }
        ]
    }]))
    .unwrap();
    let emails = resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3);
    assert_eq!(emails[2]["value"], "babs@example.net");

    // Values are the same when their `value`s are (emails are not caseExact); values without
    // one when they are equal.
    let resource = patch_user(json!([
        { "op": "add", "path": "emails", "value": [{ "value": "BJENSEN@example.com", "display": "x" }] },
        { "op": "add", "path": "emails", "value": [{ "type": "pager" }, { "type": "pager" }] }
    ]));
    let error = resource.expect_err("emails have no display");
    assert!(error.detail.contains("no sub-attribute 'display'"));
    let resource = patch_user(json!([
        { "op": "add", "path": "emails", "value": [{ "value": "BJENSEN@example.com", "type": "other" }] },
        { "op": "add", "path": "emails", "value": [{ "type": "pager" }, { "type": "pager" }] }
    ]))
    .unwrap();
    let emails = resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3);
    assert_eq!(
        emails[0],
        json!({ "value": "BJENSEN@example.com", "type": "other", "primary": true })
    );
    assert_eq!(emails[2], json!({ "type": "pager" }));
}

#[test]
fn a_new_primary_value_demotes_the_old_one() {
    let resource = patch_user(json!([{
        "op": "add", "path": "emails", "value": { "value": "new@example.com", "type": "work", "primary": true }
    }]))
    .unwrap();
    assert_eq!(resource["emails"][0]["primary"], false);
    assert_eq!(resource["emails"][2]["primary"], true);
}

#[test]
fn add_merges_complex_and_sets_simple_attributes() {
    let resource = patch_user(json!([
        { "op": "add", "path": "name", "value": { "givenName": "Babs" } },
        { "op": "add", "path": "displayName", "value": "Babs" },
        { "op": "add", "path": "externalId", "value": "ext-2" }
    ]))
    .unwrap();
    assert_eq!(resource["name"]["givenName"], "Babs");
    assert_eq!(resource["name"]["familyName"], "Jensen");
    assert_eq!(resource["displayName"], "Babs");
    assert_eq!(resource["externalId"], "ext-2");
}

#[test]
fn replace_of_a_value_path_changes_only_the_selected_values() {
    let resource = patch_user(json!([
        { "op": "replace", "path": "emails[type eq \"home\"].type", "value": "other" },
        { "op": "replace", "path": "emails[value ew \"jensen.org\"]", "value": { "value": "b@j.org", "type": "home" } }
    ]))
    .unwrap();
    assert_eq!(resource["emails"][0]["type"], "work");
    assert_eq!(
        resource["emails"][1],
        json!({ "value": "b@j.org", "type": "home" })
    );
}

#[test]
fn replace_of_a_multi_valued_attribute_replaces_the_list() {
    let resource = patch_user(json!([
        { "op": "replace", "path": "emails", "value": [{ "value": "only@example.com" }] }
    ]))
    .unwrap();
    assert_eq!(resource["emails"], json!([{ "value": "only@example.com" }]));
}

#[test]
fn replace_without_a_match_is_no_target_unless_the_filter_describes_a_value() {
    assert_error(
        patch_user(
            json!([{ "op": "replace", "path": "emails[value co \"nowhere\"].type", "value": "x" }]),
        ),
        ScimType::NoTarget,
        "no value of 'emails' matches",
    );
    let resource = patch_user(json!([
        { "op": "replace", "path": "emails[type eq \"other\" and primary eq false].value", "value": "o@example.com" }
    ]))
    .unwrap();
    assert_eq!(
        resource["emails"][2],
        json!({ "type": "other", "primary": false, "value": "o@example.com" })
    );
}

#[test]
fn remove_targets() {
    let resource = patch_user(json!([
        { "op": "remove", "path": "emails[type eq \"home\"]" },
        { "op": "remove", "path": "name.formatted" },
        { "op": "remove", "path": "displayName" },
        { "op": "remove", "path": "emails[type eq \"work\"].primary" },
        { "op": "remove", "path": "emails[type eq \"nothing\"]" }
    ]))
    .unwrap();
    assert_eq!(
        resource["emails"],
        json!([{ "value": "bjensen@example.com", "type": "work" }])
    );
    assert!(resource["name"].get("formatted").is_none());
    assert!(resource.get("displayName").is_none());

    let resource = patch_user(json!([{ "op": "remove", "path": "emails" }])).unwrap();
    assert!(resource.get("emails").is_none());
    let resource = patch_user(json!([{ "op": "remove", "path": "emails[type pr]" }])).unwrap();
    assert!(resource.get("emails").is_none());
}

#[test]
fn keys_take_the_schemas_spelling() {
    let resource = patch_user(json!([
        { "op": "replace", "path": "USERNAME", "value": "babs@example.com" },
        { "op": "replace", "path": "Name.GivenName", "value": "B" },
        { "op": "add", "path": "EMAILS", "value": { "VALUE": "x@example.com", "Type": "other" } },
        { "op": "replace", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:DEPARTMENT", "value": "R&D" }
    ]))
    .unwrap();
    assert_eq!(resource["userName"], "babs@example.com");
    assert!(resource.get("USERNAME").is_none());
    assert_eq!(resource["name"]["givenName"], "B");
    assert_eq!(
        resource["emails"][2],
        json!({ "value": "x@example.com", "type": "other" })
    );
    assert_eq!(
        resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "R&D"
    );

    let mut stored = user();
    stored["USERNAME"] = stored["userName"].take();
    stored.as_object_mut().unwrap().remove("userName");
    patch(
        &mut stored,
        patch_body(json!([{ "op": "replace", "path": "userName", "value": "n" }])),
        &users(),
    )
    .unwrap();
    assert_eq!(stored["userName"], "n");
    assert!(stored.get("USERNAME").is_none());
}

#[test]
fn path_less_values_can_hold_an_extension_object() {
    let resource = patch_user(json!([{
        "op": "replace",
        "value": {
            "schemas": ["ignored"],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Legal", "manager": { "value": "m2" } }
        }
    }]))
    .unwrap();
    let enterprise = &resource["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(enterprise["department"], "Legal");
    assert_eq!(enterprise["employeeNumber"], "701984");
    // Replacing a complex attribute merges its sub-attributes (RFC 7644 §3.5.2.3).
    assert_eq!(
        enterprise["manager"],
        json!({ "value": "m2", "displayName": "John Smith" })
    );
}

#[test]
fn read_only_attributes_cannot_change() {
    for ops in [
        json!([{ "op": "replace", "path": "id", "value": "other" }]),
        json!([{ "op": "remove", "path": "id" }]),
        json!([{ "op": "replace", "value": { "id": "other" } }]),
        json!([{ "op": "add", "path": "groups", "value": [{ "value": "g2" }] }]),
        json!([{ "op": "remove", "path": "groups" }]),
        json!([{ "op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z" }]),
        json!([{ "op": "replace", "path": "meta", "value": { "version": "x" } }]),
        json!([{ "op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName", "value": "x" }]),
    ] {
        assert_error(patch_user(ops.clone()), ScimType::Mutability, "read-only");
    }
    // Re-sending the current value is not a change.
    assert!(patch_user(json!([{ "op": "replace", "path": "id", "value": "2819c223-7f76-453a-919d-413861904646" }])).is_ok());
}

#[test]
fn add_with_a_filter_merges_into_the_selected_values() {
    let mut resource = group();
    let body = patch_body(
        json!([{ "op": "add", "path": "members[value eq \"902c246b-6245-4190-8e05-00816be7344a\"]", "value": { "display": "Mandy P." } }]),
    );
    patch(&mut resource, body, &groups()).unwrap();
    assert_eq!(resource["members"][1]["display"], "Mandy P.");
}

#[test]
fn required_attributes_cannot_be_removed() {
    assert_error(
        patch_user(json!([{ "op": "remove", "path": "userName" }])),
        ScimType::Mutability,
        "'userName' is required",
    );
    assert_error(
        patch_user(json!([{ "op": "replace", "path": "userName", "value": null }])),
        ScimType::Mutability,
        "required",
    );
    let mut resource = group();
    assert_error(
        patch(
            &mut resource,
            patch_body(json!([{ "op": "remove", "path": "displayName" }])),
            &groups(),
        ),
        ScimType::Mutability,
        "'displayName' is required",
    );
}

#[test]
fn unknown_attributes_are_invalid_paths() {
    assert_error(
        patch_user(json!([{ "op": "add", "path": "nickname2", "value": "x" }])),
        ScimType::InvalidPath,
        "unknown attribute 'nickname2'",
    );
    assert_error(
        patch_user(json!([{ "op": "add", "path": "name.middle", "value": "x" }])),
        ScimType::InvalidPath,
        "no sub-attribute 'middle'",
    );
    assert_error(
        patch_user(json!([{ "op": "add", "value": { "shoeSize": 42 } }])),
        ScimType::InvalidPath,
        "unknown attribute 'shoeSize'",
    );
    assert_error(
        patch_user(json!([{ "op": "add", "path": "urn:example:ext:1.0:User:x", "value": "x" }])),
        ScimType::InvalidPath,
        "names a schema",
    );
    assert_error(
        patch_user(json!([{ "op": "add", "path": "userName[value eq \"x\"]", "value": "x" }])),
        ScimType::InvalidPath,
        "takes no [filter]",
    );
    assert_error(
        patch_user(json!([{ "op": "replace", "path": "emails.value", "value": "x" }])),
        ScimType::InvalidPath,
        "needs a filter",
    );
    assert_error(
        patch_user(json!([{ "op": "add", "value": "x" }])),
        ScimType::InvalidValue,
        "takes an object of attributes",
    );
}

#[test]
fn values_of_the_wrong_type_are_invalid_values() {
    for (ops, needle) in [
        (
            json!([{ "op": "replace", "path": "active", "value": "yes" }]),
            "'active' takes true or false",
        ),
        (
            json!([{ "op": "replace", "path": "active", "value": 1 }]),
            "'active' takes true or false",
        ),
        (
            json!([{ "op": "replace", "path": "displayName", "value": 42 }]),
            "'displayName' takes a string",
        ),
        (
            json!([{ "op": "replace", "path": "name", "value": "Babs" }]),
            "'name' takes an object",
        ),
        (
            json!([{ "op": "add", "path": "emails", "value": [{ "value": "a@b", "kind": "x" }] }]),
            "no sub-attribute 'kind'",
        ),
        (
            json!([{ "op": "add", "path": "emails", "value": [{ "value": "a@b", "primary": "maybe" }] }]),
            "'primary' takes true or false",
        ),
        (
            json!([{ "op": "replace", "path": "password", "value": ["hunter2"] }]),
            "'password' takes a string",
        ),
    ] {
        let error = patch_user(ops.clone()).expect_err("wrong type");
        assert_eq!(error.scim_type, Some(ScimType::InvalidValue), "{ops}");
        assert!(error.detail.contains(needle), "{}", error.detail);
        assert!(
            !error.detail.contains("hunter2"),
            "values stay out of errors"
        );
    }
}

#[test]
fn a_failing_operation_leaves_the_resource_unchanged() {
    let mut resource = user();
    let body = patch_body(json!([
        { "op": "replace", "path": "displayName", "value": "changed" },
        { "op": "replace", "path": "id", "value": "changed" }
    ]));
    assert!(patch(&mut resource, body, &users()).is_err());
    assert_eq!(resource, user());
}

#[test]
fn apply_takes_operations_built_in_code() {
    let mut resource = user();
    let ops = vec![warrant_scim::PatchOp {
        op: PatchOpKind::Replace,
        path: Some(parse_path("displayName").unwrap()),
        value: Some(json!("Built")),
    }];
    apply(&mut resource, &ops, &users()).unwrap();
    assert_eq!(resource["displayName"], "Built");
    let remove_everything = vec![warrant_scim::PatchOp {
        op: PatchOpKind::Remove,
        path: None,
        value: None,
    }];
    assert_error(
        apply(&mut resource, &remove_everything, &users()),
        ScimType::NoTarget,
        "needs a path",
    );
}

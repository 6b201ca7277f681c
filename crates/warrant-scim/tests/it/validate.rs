//! POST and PUT bodies checked against the schemas.

use serde_json::json;
use warrant_scim::{ScimType, validate};

use crate::fixtures::{ENTERPRISE, GROUP, USER, assert_error, groups, users};

#[test]
fn okta_create_user_body_is_accepted() {
    let mut body = json!({
        "schemas": [USER],
        "userName": "test.user@okta.local",
        "name": { "givenName": "Test", "familyName": "User" },
        "emails": [{ "primary": true, "value": "test.user@okta.local", "type": "work" }],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    validate(&mut body, &users()).unwrap();
    assert_eq!(
        body,
        json!({
            "schemas": [USER],
            "userName": "test.user@okta.local",
            "name": { "givenName": "Test", "familyName": "User" },
            "emails": [{ "primary": true, "value": "test.user@okta.local", "type": "work" }],
            "displayName": "Test User",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "password": "1mz050nq",
            "active": true
        })
    );
}

#[test]
fn entra_create_user_body_is_accepted_and_normalised() {
    let mut body = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "UserName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": "True",
        "emails": [{ "primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com" }],
        "meta": { "resourceType": "User" },
        "name": { "familyName": "familyName", "givenName": "givenName" },
        "title": "Tour Guide",
        "roles": [],
        ENTERPRISE: { "department": "Sales", "manager": { "value": "m1", "displayName": "ignored" }, "costCenter": "4130" }
    });
    validate(&mut body, &users()).unwrap();
    assert_eq!(
        body["userName"],
        "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
    );
    assert!(body.get("UserName").is_none());
    assert_eq!(body["active"], true);
    assert!(
        body.get("meta").is_none() && body.get("title").is_none() && body.get("roles").is_none()
    );
    assert_eq!(
        body[ENTERPRISE],
        json!({ "department": "Sales", "manager": { "value": "m1" } })
    );
    assert_eq!(body["schemas"], json!([USER, ENTERPRISE]));
}

#[test]
fn read_only_attributes_and_nulls_are_dropped() {
    let mut body = json!({
        "schemas": [USER],
        "id": "client-chosen",
        "userName": "u",
        "displayName": null,
        "groups": [{ "value": "g" }],
        "meta": { "version": "1" }
    });
    validate(&mut body, &users()).unwrap();
    assert_eq!(body, json!({ "schemas": [USER], "userName": "u" }));
}

#[test]
fn extensions_in_the_body_are_listed_in_schemas() {
    let mut body = json!({
        "schemas": ["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"],
        "userName": "u",
        ENTERPRISE: { "employeeNumber": "7" }
    });
    validate(&mut body, &users()).unwrap();
    assert_eq!(body["schemas"], json!([USER, ENTERPRISE]));
}

#[test]
fn group_bodies() {
    let mut body = json!({
        "schemas": [GROUP],
        "displayName": "Ops",
        "members": [{ "value": "u1", "$ref": null, "display": "Ann" }, { "value": "u2" }]
    });
    validate(&mut body, &groups()).unwrap();
    assert_eq!(
        body["members"],
        json!([{ "value": "u1", "display": "Ann" }, { "value": "u2" }])
    );
    assert_error(
        validate(&mut json!({ "schemas": [GROUP], "members": [] }), &groups()),
        ScimType::InvalidValue,
        "'displayName' is required",
    );
}

#[test]
fn bad_bodies_are_refused_with_clear_messages() {
    let check = |mut body: serde_json::Value, scim_type, needle| {
        assert_error(validate(&mut body, &users()), scim_type, needle);
    };
    check(json!("user"), ScimType::InvalidSyntax, "JSON object");
    check(
        json!({ "userName": "u" }),
        ScimType::InvalidSyntax,
        "'schemas' must be an array",
    );
    check(
        json!({ "schemas": [GROUP], "userName": "u" }),
        ScimType::InvalidSyntax,
        "unsupported schema",
    );
    check(
        json!({ "schemas": [ENTERPRISE], "userName": "u" }),
        ScimType::InvalidSyntax,
        "must contain urn:ietf:params:scim:schemas:core:2.0:User",
    );
    check(
        json!({ "schemas": [USER, "urn:ietf:params:scim:schemas:extension:custom:2.0:User"], "userName": "u" }),
        ScimType::InvalidSyntax,
        "unsupported schema 'urn:ietf:params:scim:schemas:extension:custom:2.0:User'",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", "shoeSize": 44 }),
        ScimType::InvalidSyntax,
        "unknown attribute 'shoeSize'",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", ENTERPRISE: { "rank": 1 } }),
        ScimType::InvalidSyntax,
        "unknown attribute 'rank'",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", ENTERPRISE: "Sales" }),
        ScimType::InvalidSyntax,
        "must be an object",
    );
    check(
        json!({ "schemas": [USER] }),
        ScimType::InvalidValue,
        "'userName' is required",
    );
    check(
        json!({ "schemas": [USER], "userName": 7 }),
        ScimType::InvalidValue,
        "'userName' takes a string",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", "active": "yes" }),
        ScimType::InvalidValue,
        "'active' takes true or false",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", "emails": [{ "value": 1 }] }),
        ScimType::InvalidValue,
        "'value' takes a string",
    );
    check(
        json!({ "schemas": [USER], "userName": "u", "name": { "middleName": "J" } }),
        ScimType::InvalidValue,
        "no sub-attribute 'middleName'",
    );
}

//! `attributes` and `excludedAttributes` (RFC 7644 §3.9).

use serde_json::{Value, json};
use warrant_scim::{ScimType, project};

use crate::fixtures::{ENTERPRISE, USER, assert_error, group, groups, user, users};

fn project_user(attributes: Option<&str>, excluded: Option<&str>) -> Value {
    project(&user(), attributes, excluded, &users()).unwrap()
}

#[test]
fn by_default_everything_but_the_password() {
    let projected = project_user(None, None);
    let mut expected = user();
    expected.as_object_mut().unwrap().remove("password");
    assert_eq!(projected, expected);
    assert_eq!(project_user(Some(" "), Some("")), expected);
}

#[test]
fn attributes_keeps_schemas_id_and_what_was_asked() {
    assert_eq!(
        project_user(Some("userName"), None),
        json!({ "schemas": [USER, ENTERPRISE], "id": "2819c223-7f76-453a-919d-413861904646", "userName": "bjensen@example.com" })
    );
    let projected = project_user(
        Some("NAME.givenName, emails.value,emails.TYPE,password,nickName"),
        None,
    );
    assert_eq!(projected["name"], json!({ "givenName": "Barbara" }));
    assert_eq!(
        projected["emails"],
        json!([{ "value": "bjensen@example.com", "type": "work" }, { "value": "babs@jensen.org", "type": "home" }])
    );
    assert!(projected.get("password").is_none());
    assert!(projected.get("displayName").is_none());
}

#[test]
fn attributes_with_urns() {
    let projected = project_user(
        Some(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,urn:ietf:params:scim:schemas:core:2.0:User:displayName",
        ),
        None,
    );
    assert_eq!(
        projected[ENTERPRISE],
        json!({ "department": "Tour Operations" })
    );
    assert_eq!(projected["displayName"], "Babs Jensen");
    assert!(projected.get("userName").is_none());

    let manager = project_user(
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        None,
    );
    assert_eq!(
        manager[ENTERPRISE],
        json!({ "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" } })
    );

    let whole = project_user(Some(ENTERPRISE), None);
    assert_eq!(whole[ENTERPRISE], user()[ENTERPRISE]);
    assert!(whole.get("emails").is_none());

    let plain = project_user(Some("department"), None);
    assert_eq!(
        plain[ENTERPRISE],
        json!({ "department": "Tour Operations" })
    );
}

#[test]
fn excluded_attributes_never_drops_id_or_schemas() {
    let projected = project_user(
        None,
        Some(
            "id,schemas,emails,name.formatted,meta.version,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ),
    );
    assert_eq!(projected["id"], "2819c223-7f76-453a-919d-413861904646");
    assert!(projected.get("schemas").is_some());
    assert!(projected.get("emails").is_none());
    assert_eq!(
        projected["name"],
        json!({ "givenName": "Barbara", "familyName": "Jensen" })
    );
    assert!(projected["meta"].get("version").is_none());
    assert_eq!(
        projected[ENTERPRISE],
        json!({ "employeeNumber": "701984", "department": "Tour Operations" })
    );
    assert!(projected.get("password").is_none());

    let no_extension = project_user(None, Some(ENTERPRISE));
    assert!(no_extension.get(ENTERPRISE).is_none());
}

#[test]
fn entra_reads_groups_without_members() {
    let projected = project(&group(), None, Some("members"), &groups()).unwrap();
    let mut expected = group();
    expected.as_object_mut().unwrap().remove("members");
    assert_eq!(projected, expected);
}

#[test]
fn errors() {
    assert_error(
        project(&user(), Some("userName"), Some("emails"), &users()),
        ScimType::InvalidSyntax,
        "not both",
    );
    assert_error(
        project(&user(), Some("userName,emails["), None, &users()),
        ScimType::InvalidPath,
        "'emails['",
    );
    assert_error(
        project(&user(), Some("a.b.c"), None, &users()),
        ScimType::InvalidPath,
        "more than one sub-attribute",
    );
    assert_error(
        project(&json!([]), None, None, &users()),
        ScimType::InvalidSyntax,
        "JSON object",
    );
}

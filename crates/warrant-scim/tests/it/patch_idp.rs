//! PATCH bodies as Microsoft Entra ID and Okta send them (shapes from their published SCIM
//! documentation), applied to a user and a group.

use serde_json::json;

use crate::fixtures::{ENTERPRISE, group, groups, patch, patch_body, user, users};

#[test]
fn entra_updates_a_users_work_email_and_family_name() {
    let mut resource = user();
    let body = patch_body(json!([
        { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com" },
        { "op": "Replace", "path": "name.familyName", "value": "updatedFamilyName" }
    ]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(resource["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(resource["emails"][0]["type"], "work");
    assert_eq!(resource["emails"][1]["value"], "babs@jensen.org");
    assert_eq!(resource["name"]["familyName"], "updatedFamilyName");
    assert_eq!(resource["name"]["givenName"], "Barbara");
}

#[test]
fn entra_adds_a_work_email_to_a_user_without_one() {
    let mut resource = user();
    resource["emails"] = json!([{ "value": "babs@jensen.org", "type": "home" }]);
    let body = patch_body(json!([
        { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "bjensen@contoso.com" }
    ]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(
        resource["emails"],
        json!([
            { "value": "babs@jensen.org", "type": "home" },
            { "value": "bjensen@contoso.com", "type": "work" }
        ])
    );
}

#[test]
fn entra_disables_a_user_with_a_string_boolean() {
    for body in [
        json!([{ "op": "Replace", "path": "active", "value": "False" }]),
        json!([{ "op": "Replace", "value": { "active": "false" } }]),
        json!([{ "op": "replace", "path": "active", "value": false }]),
    ] {
        let mut resource = user();
        patch(&mut resource, patch_body(body.clone()), &users()).unwrap();
        assert_eq!(resource["active"], false, "{body}");
    }
    let mut resource = user();
    resource["active"] = json!(false);
    patch(
        &mut resource,
        patch_body(json!([{ "op": "Replace", "path": "active", "value": "True" }])),
        &users(),
    )
    .unwrap();
    assert_eq!(resource["active"], true);
}

#[test]
fn entra_replaces_several_attributes_without_a_path() {
    let mut resource = user();
    let body = patch_body(json!([
        { "op": "Replace", "value": { "displayName": "Barbara J.", "active": false, "name.givenName": "Barb" } }
    ]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(resource["displayName"], "Barbara J.");
    assert_eq!(resource["active"], false);
    assert_eq!(resource["name"]["givenName"], "Barb");
    assert_eq!(resource["name"]["familyName"], "Jensen");
}

#[test]
fn entra_sets_enterprise_attributes_and_the_manager() {
    let mut resource = user();
    resource.as_object_mut().unwrap().remove(ENTERPRISE);
    resource["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
    let body = patch_body(json!([
        { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701984" },
        { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "26118915-6090-4610-87e4-49d8ca9f808d" },
        { "op": "Add", "value": { "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales" } }
    ]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(
        resource[ENTERPRISE],
        json!({
            "employeeNumber": "701984",
            "department": "Sales",
            "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d" }
        })
    );
    assert_eq!(resource["schemas"][1], ENTERPRISE);

    let clear = patch_body(json!([
        { "op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager" },
        { "op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" },
        { "op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber" }
    ]));
    patch(&mut resource, clear, &users()).unwrap();
    assert!(resource.get(ENTERPRISE).is_none());
    assert_eq!(
        resource["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

#[test]
fn entra_sends_default_mapped_attributes_warrant_ignores() {
    let mut resource = user();
    let before = resource.clone();
    let body = patch_body(json!([
        { "op": "Replace", "path": "title", "value": "Tour Guide" },
        { "op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "555-555-5555" },
        { "op": "Replace", "value": { "preferredLanguage": "en-US" } }
    ]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(resource, before);
}

#[test]
fn entra_adds_and_removes_group_members() {
    let mut resource = group();
    let add = patch_body(json!([
        { "op": "Add", "path": "members", "value": [{ "$ref": null, "value": "f648f8d5ea4e4cd38e9c" }] }
    ]));
    patch(&mut resource, add, &groups()).unwrap();
    assert_eq!(resource["members"].as_array().unwrap().len(), 3);
    assert_eq!(
        resource["members"][2],
        json!({ "value": "f648f8d5ea4e4cd38e9c" })
    );

    let remove = patch_body(json!([
        { "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": "f648f8d5ea4e4cd38e9c" }] }
    ]));
    patch(&mut resource, remove, &groups()).unwrap();
    assert_eq!(resource["members"], group()["members"]);

    let remove_by_filter = patch_body(json!([
        { "op": "Remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]" }
    ]));
    patch(&mut resource, remove_by_filter, &groups()).unwrap();
    let members = resource["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["value"], "902c246b-6245-4190-8e05-00816be7344a");

    let rename = patch_body(json!([{ "op": "Replace", "path": "displayName", "value": "Guides" }]));
    patch(&mut resource, rename, &groups()).unwrap();
    assert_eq!(resource["displayName"], "Guides");
}

#[test]
fn okta_deactivates_a_user() {
    let mut resource = user();
    let body = patch_body(json!([{ "op": "replace", "value": { "active": false } }]));
    patch(&mut resource, body, &users()).unwrap();
    assert_eq!(resource["active"], false);
}

#[test]
fn okta_renames_a_group_resending_its_id() {
    let mut resource = group();
    let body = patch_body(json!([{
        "op": "replace",
        "value": { "id": "e9e30dba-f08f-4109-8486-d5c6a331660a", "displayName": "Test SCIMv2" }
    }]));
    patch(&mut resource, body, &groups()).unwrap();
    assert_eq!(resource["displayName"], "Test SCIMv2");
    assert_eq!(resource["id"], "e9e30dba-f08f-4109-8486-d5c6a331660a");
}

#[test]
fn okta_adds_removes_and_replaces_members() {
    let mut resource = group();
    let add = patch_body(json!([{
        "op": "add",
        "path": "members",
        "value": [{ "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local" }]
    }]));
    patch(&mut resource, add, &groups()).unwrap();
    assert_eq!(resource["members"][2]["display"], "test.user@okta.local");

    let remove = patch_body(json!([{
        "op": "remove",
        "path": "members[value eq \"23a35c27-23d3-4c03-b4c5-6443c09e7173\"]"
    }]));
    patch(&mut resource, remove, &groups()).unwrap();
    assert_eq!(resource["members"], group()["members"]);

    let replace = patch_body(json!([{
        "op": "replace",
        "path": "members",
        "value": [{ "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local" }]
    }]));
    patch(&mut resource, replace, &groups()).unwrap();
    assert_eq!(
        resource["members"],
        json!([{ "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local" }])
    );

    let empty = patch_body(json!([{ "op": "replace", "path": "members", "value": [] }]));
    patch(&mut resource, empty, &groups()).unwrap();
    assert!(resource.get("members").is_none());
}

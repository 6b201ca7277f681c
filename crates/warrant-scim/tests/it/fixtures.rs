//! Sample resources and helpers shared by the tests.

use serde_json::{Value, json};
use warrant_scim::schema::{group_schemas, user_schemas};
use warrant_scim::{PatchRequest, ResourceSchema, ScimError, ScimType, apply};

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A stored user, as the server keeps it.
pub fn user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "bjensen-ext",
        "userName": "bjensen@example.com",
        "name": { "formatted": "Ms. Barbara J Jensen III", "givenName": "Barbara", "familyName": "Jensen" },
        "displayName": "Babs Jensen",
        "emails": [
            { "value": "bjensen@example.com", "type": "work", "primary": true },
            { "value": "babs@jensen.org", "type": "home" }
        ],
        "active": true,
        "password": "t1meMa$heen",
        "groups": [{ "value": "e9e30dba-f08f-4109-8486-d5c6a331660a", "display": "Tour Guides" }],
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
            "version": "W/\"a330bc54f0671c9\""
        },
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": { "value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith" }
        }
    })
}

/// A stored group.
pub fn group() -> Value {
    json!({
        "schemas": [GROUP],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "displayName": "Tour Guides",
        "members": [
            { "value": "2819c223-7f76-453a-919d-413861904646", "display": "Babs Jensen", "type": "User" },
            { "value": "902c246b-6245-4190-8e05-00816be7344a", "display": "Mandy Pepperidge", "type": "User" }
        ],
        "meta": { "resourceType": "Group", "created": "2010-01-23T04:56:22Z" }
    })
}

pub fn users() -> Vec<&'static ResourceSchema> {
    user_schemas().to_vec()
}

pub fn groups() -> Vec<&'static ResourceSchema> {
    group_schemas().to_vec()
}

/// A PATCH body with these operations.
pub fn patch_body(ops: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

/// Parses and applies a PATCH body to `resource`.
pub fn patch(
    resource: &mut Value,
    body: Value,
    schemas: &[&ResourceSchema],
) -> Result<(), ScimError> {
    let request = PatchRequest::parse(&body)?;
    apply(resource, &request.operations, schemas)
}

/// Asserts an error's type and that its detail mentions `needle`.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, ScimError>,
    scim_type: ScimType,
    needle: &str,
) {
    let error = result.expect_err("expected an error");
    assert_eq!(error.scim_type, Some(scim_type), "{error:?}");
    assert!(
        error.detail.contains(needle),
        "detail {:?} should mention {needle:?}",
        error.detail
    );
}

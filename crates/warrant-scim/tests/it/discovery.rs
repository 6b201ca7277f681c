//! Schemas and the discovery documents (RFC 7643 §5-§7).

use serde_json::{Value, json};
use warrant_scim::schema::{
    MAX_RESULTS, enterprise_user, group, resource_types_json, schemas_json,
    service_provider_config_json, user,
};
use warrant_scim::{AttrType, Mutability, Returned, Uniqueness};

use crate::fixtures::{ENTERPRISE, GROUP, USER};

fn attribute<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no attribute {name}"))
}

#[test]
fn user_schema_declares_what_warrant_keeps() {
    let schema = user();
    assert_eq!(schema.id, USER);
    let user_name = schema.attribute("USERNAME").unwrap();
    assert!(user_name.required && !user_name.case_exact);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);
    let id = schema.attribute("id").unwrap();
    assert_eq!(
        (id.mutability, id.returned, id.case_exact),
        (Mutability::ReadOnly, Returned::Always, true)
    );
    assert!(schema.attribute("externalId").unwrap().case_exact);
    let password = schema.attribute("password").unwrap();
    assert_eq!(
        (password.mutability, password.returned),
        (Mutability::WriteOnly, Returned::Never)
    );
    let emails = schema.attribute("emails").unwrap();
    assert!(emails.multi_valued);
    assert_eq!(
        emails.sub_attribute("primary").unwrap().ty,
        AttrType::Boolean
    );
    assert_eq!(
        schema.attribute("groups").unwrap().mutability,
        Mutability::ReadOnly
    );
    let meta = schema.attribute("meta").unwrap();
    assert_eq!(
        meta.sub_attribute("lastModified").unwrap().ty,
        AttrType::DateTime
    );
    assert!(schema.attribute("title").is_none() && schema.is_ignored("title"));

    let manager = enterprise_user().attribute("manager").unwrap();
    assert_eq!(
        manager.sub_attribute("displayName").unwrap().mutability,
        Mutability::ReadOnly
    );
    assert!(group().attribute("displayName").unwrap().required);
}

#[test]
fn schemas_endpoint_lists_the_three_schemas_in_rfc_form() {
    let list = schemas_json();
    assert_eq!(
        list["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(list["totalResults"], 3);
    let ids: Vec<&Value> = list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP]);

    let user = &list["Resources"][0];
    assert_eq!(
        user["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:Schema"
    );
    assert_eq!(user["name"], "User");
    assert_eq!(
        attribute(user, "userName"),
        &json!({
            "name": "userName", "type": "string", "multiValued": false, "required": true,
            "caseExact": false, "mutability": "readWrite", "returned": "default",
            "uniqueness": "server",
        })
    );
    assert_eq!(attribute(user, "password")["returned"], "never");
    assert_eq!(attribute(user, "password")["mutability"], "writeOnly");
    let groups = attribute(user, "groups");
    assert_eq!(groups["mutability"], "readOnly");
    let reference = &groups["subAttributes"][1];
    assert_eq!(reference["name"], "$ref");
    assert_eq!(reference["type"], "reference");
    assert_eq!(reference["referenceTypes"], json!(["User", "Group"]));
    let members = attribute(&list["Resources"][2], "members");
    assert_eq!(members["multiValued"], true);
    assert_eq!(members["subAttributes"].as_array().unwrap().len(), 4);
}

#[test]
fn resource_types_are_user_with_the_enterprise_extension_and_group() {
    let list = resource_types_json();
    assert_eq!(list["totalResults"], 2);
    let user = &list["Resources"][0];
    assert_eq!(
        user["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
    );
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], USER);
    assert_eq!(
        user["schemaExtensions"],
        json!([{ "schema": ENTERPRISE, "required": false }])
    );
    let group = &list["Resources"][1];
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schemaExtensions"], json!([]));
}

#[test]
fn service_provider_config_says_what_is_supported() {
    let config = service_provider_config_json("https://warrant.example.com/scim/v2/");
    assert_eq!(
        config["schemas"][0],
        "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    );
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(
        config["filter"],
        json!({ "supported": true, "maxResults": MAX_RESULTS })
    );
    assert_eq!(config["changePassword"]["supported"], true);
    assert_eq!(config["sort"]["supported"], false);
    assert_eq!(config["etag"]["supported"], true);
    assert_eq!(
        config["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    assert_eq!(
        config["meta"]["location"],
        "https://warrant.example.com/scim/v2/ServiceProviderConfig"
    );
}

//! The discovery documents: `/Schemas` (RFC 7643 §7), `/ResourceTypes` (§6) and
//! `/ServiceProviderConfig` (§5).

use serde_json::{Map, Value, json};

use super::defs::{
    ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, enterprise_user, group, user,
};
use super::{AttrDef, AttrType, Mutability, ResourceSchema, Returned, Uniqueness};

/// The most resources one list response holds; advertised as `filter.maxResults`.
pub const MAX_RESULTS: usize = 200;

const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SERVICE_PROVIDER_CONFIG_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// A list response holding these resources.
fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

/// `GET /Schemas`: a list response with the User, enterprise User and Group schemas.
pub fn schemas_json() -> Value {
    list(vec![
        user().to_json(),
        enterprise_user().to_json(),
        group().to_json(),
    ])
}

/// `GET /ResourceTypes`: User (with the enterprise extension) and Group.
pub fn resource_types_json() -> Value {
    list(vec![
        resource_type(
            "User",
            "/Users",
            "User Account",
            USER_SCHEMA,
            Some(ENTERPRISE_USER_SCHEMA),
        ),
        resource_type("Group", "/Groups", "Group", GROUP_SCHEMA, None),
    ])
}

fn resource_type(
    name: &str,
    endpoint: &str,
    description: &str,
    schema: &str,
    extension: Option<&str>,
) -> Value {
    let extensions: Vec<Value> = extension
        .map(|urn| json!({ "schema": urn, "required": false }))
        .into_iter()
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": name,
        "name": name,
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "schemaExtensions": extensions,
        "meta": { "resourceType": "ResourceType" },
    })
}

/// `GET /ServiceProviderConfig`: what this service provider supports.
///
/// `base_url` is the SCIM root (such as `https://warrant.example.com/scim/v2`), used for
/// `meta.location`.
pub fn service_provider_config_json(base_url: &str) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": true },
        "sort": { "supported": false },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token (RFC 6750)",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base_url.trim_end_matches('/')),
        },
    })
}

impl ResourceSchema {
    /// This schema as a `/Schemas` resource (RFC 7643 §7).
    pub fn to_json(&self) -> Value {
        let attributes: Vec<Value> = self.attributes.iter().map(AttrDef::to_json).collect();
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": attributes,
            "meta": { "resourceType": "Schema" },
        })
    }
}

impl AttrDef {
    /// This attribute as an entry of a schema's `attributes` (RFC 7643 §7).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(type_name(self.ty)));
        out.insert("multiValued".into(), json!(self.multi_valued));
        out.insert("required".into(), json!(self.required));
        out.insert("caseExact".into(), json!(self.case_exact));
        out.insert("mutability".into(), json!(mutability_name(self.mutability)));
        out.insert("returned".into(), json!(returned_name(self.returned)));
        out.insert("uniqueness".into(), json!(uniqueness_name(self.uniqueness)));
        if self.ty == AttrType::Reference {
            out.insert("referenceTypes".into(), json!(self.reference_types));
        }
        if self.ty == AttrType::Complex {
            let subs: Vec<Value> = self.sub_attributes.iter().map(AttrDef::to_json).collect();
            out.insert("subAttributes".into(), Value::Array(subs));
        }
        Value::Object(out)
    }
}

fn type_name(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "string",
        AttrType::Boolean => "boolean",
        AttrType::Integer => "integer",
        AttrType::DateTime => "dateTime",
        AttrType::Reference => "reference",
        AttrType::Complex => "complex",
    }
}

fn mutability_name(m: Mutability) -> &'static str {
    match m {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
        Mutability::WriteOnly => "writeOnly",
    }
}

fn returned_name(r: Returned) -> &'static str {
    match r {
        Returned::Always => "always",
        Returned::Never => "never",
        Returned::Default => "default",
        Returned::Request => "request",
    }
}

fn uniqueness_name(u: Uniqueness) -> &'static str {
    match u {
        Uniqueness::None => "none",
        Uniqueness::Server => "server",
        Uniqueness::Global => "global",
    }
}

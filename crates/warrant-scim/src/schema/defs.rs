//! The schemas Warrant serves: User (RFC 7643 §4.1), the enterprise User extension (§4.3) and
//! Group (§4.2), each cut down to the attributes Warrant keeps.

use std::sync::LazyLock;

use super::{AttrDef, AttrType, Mutability, ResourceSchema, Returned, Uniqueness};

/// The core User schema URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise User extension URN.
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The core Group schema URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

static USER: LazyLock<ResourceSchema> = LazyLock::new(user_definition);
static ENTERPRISE_USER: LazyLock<ResourceSchema> = LazyLock::new(enterprise_definition);
static GROUP: LazyLock<ResourceSchema> = LazyLock::new(group_definition);

/// The core User schema.
pub fn user() -> &'static ResourceSchema {
    &USER
}

/// The enterprise User extension.
pub fn enterprise_user() -> &'static ResourceSchema {
    &ENTERPRISE_USER
}

/// The core Group schema.
pub fn group() -> &'static ResourceSchema {
    &GROUP
}

/// A User's schemas: the core schema, then the enterprise extension.
pub fn user_schemas() -> [&'static ResourceSchema; 2] {
    [user(), enterprise_user()]
}

/// A Group's schemas: the core schema alone.
pub fn group_schemas() -> [&'static ResourceSchema; 1] {
    [group()]
}

fn read_only(attr: AttrDef) -> AttrDef {
    attr.with_mutability(Mutability::ReadOnly)
}

fn id() -> AttrDef {
    read_only(AttrDef::string("id"))
        .exact()
        .with_returned(Returned::Always)
        .with_uniqueness(Uniqueness::Server)
}

fn external_id() -> AttrDef {
    AttrDef::string("externalId").exact()
}

fn meta() -> AttrDef {
    read_only(AttrDef::complex(
        "meta",
        vec![
            read_only(AttrDef::string("resourceType")).exact(),
            read_only(AttrDef::new("created", AttrType::DateTime)),
            read_only(AttrDef::new("lastModified", AttrType::DateTime)),
            read_only(AttrDef::reference("location", &["uri"])),
            read_only(AttrDef::string("version")).exact(),
        ],
    ))
}

fn user_definition() -> ResourceSchema {
    let name = AttrDef::complex(
        "name",
        vec![
            AttrDef::string("formatted"),
            AttrDef::string("givenName"),
            AttrDef::string("familyName"),
        ],
    );
    let emails = AttrDef::complex(
        "emails",
        vec![
            AttrDef::string("value"),
            AttrDef::string("type"),
            AttrDef::new("primary", AttrType::Boolean),
        ],
    )
    .multi();
    let groups = read_only(AttrDef::complex(
        "groups",
        vec![
            read_only(AttrDef::string("value")).exact(),
            read_only(AttrDef::reference("$ref", &["User", "Group"])),
            read_only(AttrDef::string("display")),
        ],
    ))
    .multi();
    ResourceSchema {
        id: USER_SCHEMA.to_owned(),
        name: "User".to_owned(),
        description: "User Account".to_owned(),
        attributes: vec![
            id(),
            external_id(),
            AttrDef::string("userName")
                .mandatory()
                .with_uniqueness(Uniqueness::Server),
            name,
            AttrDef::string("displayName"),
            emails,
            AttrDef::new("active", AttrType::Boolean),
            AttrDef::string("password")
                .exact()
                .with_mutability(Mutability::WriteOnly)
                .with_returned(Returned::Never),
            groups,
            meta(),
        ],
        ignored: [
            "nickName",
            "profileUrl",
            "title",
            "userType",
            "preferredLanguage",
            "locale",
            "timezone",
            "phoneNumbers",
            "addresses",
            "ims",
            "photos",
            "entitlements",
            "roles",
            "x509Certificates",
        ]
        .map(str::to_owned)
        .to_vec(),
    }
}

fn enterprise_definition() -> ResourceSchema {
    let manager = AttrDef::complex(
        "manager",
        vec![
            AttrDef::string("value").exact(),
            AttrDef::reference("$ref", &["User"]),
            read_only(AttrDef::string("displayName")),
        ],
    );
    ResourceSchema {
        id: ENTERPRISE_USER_SCHEMA.to_owned(),
        name: "EnterpriseUser".to_owned(),
        description: "Enterprise User".to_owned(),
        attributes: vec![
            AttrDef::string("employeeNumber"),
            AttrDef::string("department"),
            manager,
        ],
        ignored: ["costCenter", "organization", "division"]
            .map(str::to_owned)
            .to_vec(),
    }
}

fn group_definition() -> ResourceSchema {
    let members = AttrDef::complex(
        "members",
        vec![
            AttrDef::string("value")
                .exact()
                .with_mutability(Mutability::Immutable),
            AttrDef::reference("$ref", &["User", "Group"]).with_mutability(Mutability::Immutable),
            AttrDef::string("display"),
            AttrDef::string("type").with_mutability(Mutability::Immutable),
        ],
    )
    .multi();
    ResourceSchema {
        id: GROUP_SCHEMA.to_owned(),
        name: "Group".to_owned(),
        description: "Group".to_owned(),
        attributes: vec![
            id(),
            external_id(),
            AttrDef::string("displayName").mandatory(),
            members,
            meta(),
        ],
        ignored: Vec::new(),
    }
}

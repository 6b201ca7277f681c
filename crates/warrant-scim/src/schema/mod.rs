//! Schemas: what attributes a resource type has, their types and how they behave (RFC 7643 §2, §7).
//!
//! [`user_schemas`] and [`group_schemas`] are the resource types Warrant serves; `discovery`
//! renders them (and the service provider configuration) as the RFC 7643 discovery documents.

mod defs;
mod discovery;

pub use defs::{
    ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, enterprise_user, group, group_schemas, user,
    user_schemas,
};
pub use discovery::{MAX_RESULTS, resource_types_json, schemas_json, service_provider_config_json};

/// The data type of an attribute (RFC 7643 §2.3). Warrant uses no decimal or binary attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A Unicode string.
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// An RFC 3339 instant, kept as a string.
    DateTime,
    /// A URI (a string), such as `$ref`.
    Reference,
    /// An object of sub-attributes.
    Complex,
}

/// Whether and how an attribute can be written (RFC 7643 §7 `mutability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the service provider only.
    ReadOnly,
    /// Written freely.
    ReadWrite,
    /// Written once (while absent), then fixed.
    Immutable,
    /// Written but never returned.
    WriteOnly,
}

/// When an attribute is returned (RFC 7643 §7 `returned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, whatever the `attributes` parameter says.
    Always,
    /// Never (passwords).
    Never,
    /// Unless excluded.
    Default,
    /// Only when asked for by the `attributes` parameter.
    Request,
}

/// How unique an attribute's value is (RFC 7643 §7 `uniqueness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// No constraint.
    None,
    /// Unique within the service provider (per resource type).
    Server,
    /// Globally unique.
    Global,
}

/// One attribute (or sub-attribute) of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrDef {
    /// The canonical spelling, used as the JSON key.
    pub name: String,
    /// The data type.
    pub ty: AttrType,
    /// Whether the value is an array.
    pub multi_valued: bool,
    /// Whether string comparisons respect case.
    pub case_exact: bool,
    /// Whether clients may write it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Its uniqueness constraint.
    pub uniqueness: Uniqueness,
    /// Whether a resource must have it.
    pub required: bool,
    /// For references: what they may point at (`User`, `Group`, `external`, `uri`).
    pub reference_types: Vec<String>,
    /// For complex attributes: their sub-attributes.
    pub sub_attributes: Vec<AttrDef>,
}

impl AttrDef {
    /// A single-valued, optional, read-write attribute returned by default, not case-exact.
    pub fn new(name: &str, ty: AttrType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            multi_valued: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            required: false,
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
        }
    }

    /// A string attribute.
    pub fn string(name: &str) -> Self {
        Self::new(name, AttrType::String)
    }

    /// A complex attribute with these sub-attributes.
    pub fn complex(name: &str, sub_attributes: Vec<AttrDef>) -> Self {
        Self {
            sub_attributes,
            ..Self::new(name, AttrType::Complex)
        }
    }

    /// A reference attribute (such as `$ref`) to these resource types.
    pub fn reference(name: &str, types: &[&str]) -> Self {
        Self {
            reference_types: types.iter().map(|t| (*t).to_owned()).collect(),
            case_exact: true,
            ..Self::new(name, AttrType::Reference)
        }
    }

    /// Makes it multi-valued.
    pub fn multi(self) -> Self {
        Self {
            multi_valued: true,
            ..self
        }
    }

    /// Makes string comparisons case-sensitive.
    pub fn exact(self) -> Self {
        Self {
            case_exact: true,
            ..self
        }
    }

    /// Makes it required.
    pub fn mandatory(self) -> Self {
        Self {
            required: true,
            ..self
        }
    }

    /// Sets its mutability.
    pub fn with_mutability(self, mutability: Mutability) -> Self {
        Self { mutability, ..self }
    }

    /// Sets when it is returned.
    pub fn with_returned(self, returned: Returned) -> Self {
        Self { returned, ..self }
    }

    /// Sets its uniqueness.
    pub fn with_uniqueness(self, uniqueness: Uniqueness) -> Self {
        Self { uniqueness, ..self }
    }

    /// The sub-attribute called `name`, matched case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttrDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether values are objects with a `value` sub-attribute (`emails`, `members`, `manager`).
    pub fn has_value_sub_attribute(&self) -> bool {
        self.ty == AttrType::Complex && self.sub_attribute("value").is_some()
    }
}

/// A schema: a URN and its attributes (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSchema {
    /// The schema URN, such as `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub id: String,
    /// Its short name (`User`, `Group`, `EnterpriseUser`).
    pub name: String,
    /// A human-readable description.
    pub description: String,
    /// The attributes Warrant keeps.
    pub attributes: Vec<AttrDef>,
    /// Standard attributes of this schema that Warrant accepts from identity providers and
    /// drops (Entra ID and Okta send `title`, `locale`, `phoneNumbers`, ... by default).
    pub ignored: Vec<String>,
}

impl ResourceSchema {
    /// The attribute called `name`, matched case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&AttrDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether `name` is a standard attribute Warrant drops.
    pub fn is_ignored(&self, name: &str) -> bool {
        self.ignored.iter().any(|i| i.eq_ignore_ascii_case(name))
    }

    /// Whether `urn` names this schema (case-insensitively).
    pub fn is(&self, urn: &str) -> bool {
        self.id.eq_ignore_ascii_case(urn)
    }
}

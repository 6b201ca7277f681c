//! The error body (RFC 7644 §3.12).

use serde_json::{Value, json};
use warrant_scim::{ScimError, ScimType};

#[test]
fn error_body_has_status_as_a_string_and_the_scim_type() {
    let error = ScimError::invalid_filter("filter at offset 3: expected a value");
    assert_eq!(error.status, 400);
    assert_eq!(
        error.to_json(),
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "invalidFilter",
            "detail": "filter at offset 3: expected a value",
        })
    );
}

#[test]
fn errors_without_a_type_omit_scim_type() {
    let body = ScimError::not_found("no such user").to_json();
    assert_eq!(body["status"], "404");
    assert!(body.get("scimType").is_none());
    assert_eq!(ScimError::uniqueness("userName taken").status, 409);
    assert_eq!(ScimError::precondition_failed("stale").status, 412);
}

#[test]
fn scim_types_serialise_with_the_rfc_spellings() {
    let cases = [
        (
            ScimType::InvalidFilter,
            ScimError::invalid_filter("x"),
            "invalidFilter",
        ),
        (ScimType::TooMany, ScimError::too_many("x"), "tooMany"),
        (
            ScimType::Uniqueness,
            ScimError::uniqueness("x"),
            "uniqueness",
        ),
        (
            ScimType::Mutability,
            ScimError::mutability("x"),
            "mutability",
        ),
        (
            ScimType::InvalidSyntax,
            ScimError::invalid_syntax("x"),
            "invalidSyntax",
        ),
        (
            ScimType::InvalidPath,
            ScimError::invalid_path("x"),
            "invalidPath",
        ),
        (ScimType::NoTarget, ScimError::no_target("x"), "noTarget"),
        (
            ScimType::InvalidValue,
            ScimError::invalid_value("x"),
            "invalidValue",
        ),
        (
            ScimType::InvalidVers,
            ScimError::invalid_vers("x"),
            "invalidVers",
        ),
        (ScimType::Sensitive, ScimError::sensitive("x"), "sensitive"),
    ];
    for (scim_type, error, spelling) in cases {
        assert_eq!(
            serde_json::to_value(scim_type).unwrap(),
            Value::from(spelling)
        );
        assert_eq!(scim_type.as_str(), spelling);
        assert_eq!(error.scim_type, Some(scim_type));
        assert_eq!(error.to_json()["scimType"], spelling);
        let back: ScimType = serde_json::from_value(Value::from(spelling)).unwrap();
        assert_eq!(back, scim_type);
    }
}

#[test]
fn display_names_status_type_and_detail() {
    let error = ScimError::no_target("nothing matched");
    assert_eq!(error.to_string(), "SCIM 400 noTarget: nothing matched");
}

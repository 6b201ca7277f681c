//! SCIM 2.0 (RFC 7643, RFC 7644) over HTTP: `/scim/v2`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A SCIM error body (RFC 7644 §3.12) with its status.
pub fn error_response(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = t.into();
    }
    (status, Json(body)).into_response()
}

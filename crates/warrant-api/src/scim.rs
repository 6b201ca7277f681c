//! SCIM 2.0 (RFC 7643, RFC 7644) over HTTP under `/scim/v2`: discovery, `/Users`, `/Groups`.
//!
//! Requests are authenticated by a provisioning token (scope `scim`, see `server::authorise`);
//! bodies are read as JSON whatever the media type says (`application/scim+json` or
//! `application/json`); every error is a SCIM error document; responses carry
//! `application/scim+json`, the resource's `ETag` and, on creation, `Location`.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use warrant_engine::Actor;
use warrant_engine::scim::{Kind, ListQuery, ScimResource};
use warrant_scim::ScimError;

use crate::server::AppState;

/// The media type of SCIM documents.
pub const SCIM_JSON: &str = "application/scim+json";

/// A SCIM error body (RFC 7644 §3.12) with its status.
pub fn error_response(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response {
    let mut body = serde_json::json!({
        "schemas": [warrant_scim::error::ERROR_SCHEMA],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = t.into();
    }
    document(status, &body)
}

fn document(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    r
}

/// A SCIM error on its way to the client.
#[derive(Debug)]
pub struct ScimFailure(pub ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        document(status, &self.0.to_json())
    }
}

type ScimReply = Result<Response, ScimFailure>;

fn kind_of(endpoint: &str) -> Result<Kind, ScimFailure> {
    match endpoint {
        "Users" => Ok(Kind::User),
        "Groups" => Ok(Kind::Group),
        _ => Err(ScimError::not_found(format!("no SCIM endpoint /{endpoint}")).into()),
    }
}

/// The base URL of the SCIM service as the client reached it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}/scim/v2")
}

fn body_json(bytes: &Bytes) -> Result<Value, ScimFailure> {
    serde_json::from_slice(bytes).map_err(|e| {
        ScimFailure(ScimError::invalid_syntax(format!(
            "the body is not valid JSON: {e}"
        )))
    })
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
}

fn resource(status: StatusCode, r: &ScimResource, with_location: bool) -> Response {
    let mut resp = document(status, &r.body);
    if let Ok(v) = HeaderValue::from_str(&r.etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    if with_location && let Ok(v) = HeaderValue::from_str(&r.location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn param(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn int_param(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ScimFailure> {
    param(q, name)
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimFailure(ScimError::invalid_value(format!(
                    "{name} must be a whole number, not {v:?}"
                )))
            })
        })
        .transpose()
}

/// `GET /scim/v2/ServiceProviderConfig`.
pub async fn service_provider_config(headers: HeaderMap) -> Response {
    document(
        StatusCode::OK,
        &warrant_scim::schema::service_provider_config_json(&base_url(&headers)),
    )
}

/// `GET /scim/v2/ResourceTypes`.
pub async fn resource_types() -> Response {
    document(StatusCode::OK, &warrant_scim::schema::resource_types_json())
}

/// `GET /scim/v2/Schemas`.
pub async fn schemas() -> Response {
    document(StatusCode::OK, &warrant_scim::schema::schemas_json())
}

/// `GET /scim/v2/{Users|Groups}`.
pub async fn list(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    let query = ListQuery {
        filter: param(&q, "filter"),
        start_index: int_param(&q, "startIndex")?,
        count: int_param(&q, "count")?,
        attributes: param(&q, "attributes"),
        excluded_attributes: param(&q, "excludedAttributes"),
    };
    let body = s
        .engine()
        .scim_list(&a, &base_url(&headers), kind, &query)
        .await?;
    Ok(document(StatusCode::OK, &body))
}

/// `POST /scim/v2/{Users|Groups}`.
pub async fn create(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    let doc = body_json(&body)?;
    let r = s
        .engine()
        .scim_create(&a, &base_url(&headers), kind, doc)
        .await?;
    Ok(resource(StatusCode::CREATED, &r, true))
}

/// `GET /scim/v2/{Users|Groups}/{id}`.
pub async fn get(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    let r = s
        .engine()
        .scim_get(
            &a,
            &base_url(&headers),
            kind,
            &id,
            param(&q, "attributes").as_deref(),
            param(&q, "excludedAttributes").as_deref(),
        )
        .await?;
    Ok(resource(StatusCode::OK, &r, false))
}

/// `PUT /scim/v2/{Users|Groups}/{id}`.
pub async fn replace(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    let doc = body_json(&body)?;
    let r = s
        .engine()
        .scim_replace(
            &a,
            &base_url(&headers),
            kind,
            &id,
            doc,
            if_match(&headers).as_deref(),
        )
        .await?;
    Ok(resource(StatusCode::OK, &r, false))
}

/// `PATCH /scim/v2/{Users|Groups}/{id}`: 200 with the full resource.
pub async fn patch(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    let doc = body_json(&body)?;
    let r = s
        .engine()
        .scim_patch(
            &a,
            &base_url(&headers),
            kind,
            &id,
            &doc,
            if_match(&headers).as_deref(),
        )
        .await?;
    Ok(resource(StatusCode::OK, &r, false))
}

/// `DELETE /scim/v2/{Users|Groups}/{id}`: 204.
pub async fn delete(
    State(s): State<AppState>,
    Extension(a): Extension<Actor>,
    Path((endpoint, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimReply {
    let kind = kind_of(&endpoint)?;
    s.engine()
        .scim_delete(&a, kind, &id, if_match(&headers).as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! The Confluent REST API over `Service`, one file per resource.
//!
//! What every route shares lives here: request bodies are read with a size
//! limit and a content-type check, parsed as JSON, and every failure
//! (ours or the framework's) becomes Confluent's `{"error_code",
//! "message"}` body, so a client's error handling sees the codes it knows.
//! Answers carry `application/vnd.schemaregistry.v1+json`.

mod compatibility;
mod config;
mod schemas;
mod serve;
mod subjects;

pub use serve::{serve, serve_router, HttpLimits};

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::RegistryError;
use crate::model::{Reference, Schema, SchemaType};
use crate::registry::Registered;
use crate::service::Service;

/// Largest request body accepted, by default [2 MiB].
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 << 20;

/// The content type of every answer (Confluent's default).
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Content types a request body may have (none is accepted too).
const ACCEPTED: &[&str] = &[
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

type Shared = Arc<Service>;

/// The API's router over `service`.
pub fn router(service: Arc<Service>, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(schemas::routes())
        .merge(subjects::routes())
        .merge(compatibility::routes())
        .merge(config::routes())
        .fallback(|| async { ApiError::plain(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(service)
}

/// An error answer: Confluent's body with its code and the HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    /// An error whose body code is its HTTP status (as Confluent's
    /// framework errors are).
    fn plain(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code: u32::from(status.as_u16()),
            message: message.into(),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        Self {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.error_code(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &json!({"error_code": self.code, "message": self.message}),
        )
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A JSON answer with Confluent's content type.
fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        serde_json::to_string(body).unwrap_or_default(),
    )
        .into_response()
}

fn ok(body: &Value) -> ApiResult {
    Ok(reply(StatusCode::OK, body))
}

/// A request body as `T`: size and content type checked, JSON parsed.
fn body<T: DeserializeOwned>(
    headers: &HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !ACCEPTED.contains(&essence.as_str()) {
            return Err(ApiError::plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "HTTP 415 Unsupported Media Type",
            ));
        }
    }
    let raw = raw.map_err(|r| {
        let status = r.status();
        ApiError::plain(status, format!("cannot read the request body: {r}"))
    })?;
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::plain(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    serde_json::from_value(value).map_err(|e| {
        ApiError::plain(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unrecognized request: {e}"),
        )
    })
}

/// Query parameters (an unparsable query string reads as empty).
fn params(q: Option<&str>) -> HashMap<String, String> {
    q.and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// A boolean query flag: present and `true` (any case).
fn flag(p: &HashMap<String, String>, name: &str) -> bool {
    p.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The body of a registration, lookup or compatibility request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    #[serde(default)]
    id: Option<i32>,
    #[serde(default)]
    version: Option<i32>,
}

impl SchemaRequest {
    fn schema(&self) -> Result<Schema, ApiError> {
        let text = match self.schema.as_deref() {
            Some(t) if !t.trim().is_empty() => t.to_string(),
            _ => return Err(RegistryError::InvalidSchema("Empty schema".into()).into()),
        };
        Ok(Schema {
            schema_type: SchemaType::parse(self.schema_type.as_deref())?,
            text,
            references: self.references.clone().unwrap_or_default(),
        })
    }
}

/// Adds `schemaType` (left out for AVRO, as Confluent does) and
/// `references` (left out when empty) to `obj`.
fn describe_schema(obj: &mut serde_json::Map<String, Value>, schema: &Schema) {
    if schema.schema_type != SchemaType::Avro {
        obj.insert("schemaType".into(), json!(schema.schema_type.name()));
    }
    if !schema.references.is_empty() {
        obj.insert("references".into(), json!(schema.references));
    }
    obj.insert("schema".into(), json!(schema.text));
}

/// A registered version as the API shows it.
fn registered(r: &Registered) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("subject".into(), json!(r.subject));
    obj.insert("version".into(), json!(r.version));
    obj.insert("id".into(), json!(r.id));
    describe_schema(&mut obj, &r.schema);
    Value::Object(obj)
}

/// The raw schema text as the body (`.../schema` routes).
fn raw_schema(schema: &Schema) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema.text.clone(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;

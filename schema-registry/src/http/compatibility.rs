//! `/compatibility`: would a schema be accepted, without registering it.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::json;

use super::{body, flag, ok, params, ApiResult, SchemaRequest, Shared};
use crate::model::VersionRef;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(against_one),
        )
}

async fn check(
    svc: Shared,
    subject: String,
    version: Option<String>,
    q: Option<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let verbose = flag(&params(q.as_deref()), "verbose");
    let v = version.as_deref().map(VersionRef::parse).transpose()?;
    let req: SchemaRequest = body(&headers, raw)?;
    let schema = req.schema()?;
    let problems = svc
        .read(|r, checker| r.test_compatibility(&subject, v, &schema, checker))
        .await?;
    if verbose {
        ok(&json!({"is_compatible": problems.is_empty(), "messages": problems}))
    } else {
        ok(&json!({"is_compatible": problems.is_empty()}))
    }
}

async fn against_all(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    check(svc, subject, None, q, headers, raw).await
}

async fn against_one(
    State(svc): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    check(svc, subject, Some(version), q, headers, raw).await
}

//! `/config` and `/mode`: compatibility levels and modes, global and per
//! subject.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

use super::{body, flag, ok, params, ApiResult, Shared};
use crate::error::RegistryError;
use crate::model::{Compatibility, Mode};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/config",
            get(get_global).put(put_global).delete(delete_global),
        )
        .route(
            "/config/{subject}",
            get(get_subject).put(put_subject).delete(delete_subject),
        )
        .route(
            "/mode",
            get(get_mode_global)
                .put(put_mode_global)
                .delete(delete_mode_global),
        )
        .route(
            "/mode/{subject}",
            get(get_mode_subject)
                .put(put_mode_subject)
                .delete(delete_mode_subject),
        )
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    #[serde(default)]
    compatibility: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ModeRequest {
    #[serde(default)]
    mode: Option<String>,
}

fn level_name(c: Compatibility) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_default()
}

fn mode_name(m: Mode) -> serde_json::Value {
    serde_json::to_value(m).unwrap_or_default()
}

async fn get_global(State(svc): State<Shared>) -> ApiResult {
    let level = svc.read(|r, _| r.compatibility(None)).await;
    ok(&json!({"compatibilityLevel": level_name(level)}))
}

async fn get_subject(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let to_global = flag(&params(q.as_deref()), "defaultToGlobal");
    let level = svc
        .read(|r, _| r.subject_config(&subject, to_global))
        .await?;
    ok(&json!({"compatibilityLevel": level_name(level)}))
}

async fn put_config(
    svc: Shared,
    subject: Option<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: ConfigRequest = body(&headers, raw)?;
    let level = Compatibility::parse(req.compatibility.as_deref().unwrap_or(""))?;
    svc.write(|r, _| Ok(((), r.set_config(subject.as_deref(), level))))
        .await?;
    ok(&json!({"compatibility": level_name(level)}))
}

async fn put_global(
    State(svc): State<Shared>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_config(svc, None, headers, raw).await
}

async fn put_subject(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_config(svc, Some(subject), headers, raw).await
}

async fn delete_global(State(svc): State<Shared>) -> ApiResult {
    let old = svc.write(|r, _| r.delete_config(None)).await?;
    ok(&json!({"compatibilityLevel": level_name(old)}))
}

async fn delete_subject(State(svc): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    let old = svc
        .write(|r, _| {
            r.versions(&subject, true)?;
            r.delete_config(Some(&subject))
        })
        .await?;
    ok(&json!({"compatibilityLevel": level_name(old)}))
}

async fn get_mode_global(State(svc): State<Shared>) -> ApiResult {
    let mode = svc.read(|r, _| r.mode(None)).await;
    ok(&json!({"mode": mode_name(mode)}))
}

async fn get_mode_subject(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let to_global = flag(&params(q.as_deref()), "defaultToGlobal");
    let mode = svc.read(|r, _| r.subject_mode(&subject, to_global)).await?;
    ok(&json!({"mode": mode_name(mode)}))
}

async fn put_mode(
    svc: Shared,
    subject: Option<String>,
    q: Option<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let force = flag(&params(q.as_deref()), "force");
    let req: ModeRequest = body(&headers, raw)?;
    let mode = Mode::parse(req.mode.as_deref().unwrap_or(""))?;
    svc.write(|r, _| Ok(((), r.set_mode(subject.as_deref(), mode, force)?)))
        .await?;
    ok(&json!({"mode": mode_name(mode)}))
}

async fn put_mode_global(
    State(svc): State<Shared>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_mode(svc, None, q, headers, raw).await
}

async fn put_mode_subject(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    put_mode(svc, Some(subject), q, headers, raw).await
}

async fn delete_mode(svc: Shared, subject: Option<String>) -> ApiResult {
    let old = svc
        .write(|r, _| Ok::<_, RegistryError>(r.delete_mode(subject.as_deref())))
        .await?;
    ok(&json!({"mode": mode_name(old)}))
}

async fn delete_mode_global(State(svc): State<Shared>) -> ApiResult {
    delete_mode(svc, None).await
}

async fn delete_mode_subject(State(svc): State<Shared>, Path(subject): Path<String>) -> ApiResult {
    delete_mode(svc, Some(subject)).await
}

//! `/schemas`: schemas by id, the types supported, and every version.

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{
    describe_schema, flag, ok, params, raw_schema, registered, ApiError, ApiResult, Shared,
};
use crate::error::RegistryError;
use crate::model::VersionRef;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/schemas", get(list))
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(by_id))
        .route("/schemas/ids/{id}/schema", get(by_id_raw))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/schemas/ids/{id}/versions", get(id_versions))
}

async fn types() -> ApiResult {
    ok(&json!(["JSON", "AVRO"]))
}

/// A path id; anything but a positive i32 names no schema (40403).
fn parse_id(s: &str) -> Result<i32, ApiError> {
    s.parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| RegistryError::SchemaNotFound(s.to_string()).into())
}

async fn by_id(
    State(svc): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = parse_id(&id)?;
    let p = params(q.as_deref());
    let body = svc
        .read(|r, _| {
            let schema = r.schema_by_id(id)?;
            let mut obj = serde_json::Map::new();
            describe_schema(&mut obj, schema);
            if flag(&p, "fetchMaxId") {
                obj.insert("maxId".into(), json!(r.max_id()));
            }
            Ok::<_, RegistryError>(Value::Object(obj))
        })
        .await?;
    ok(&body)
}

async fn by_id_raw(State(svc): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let schema = svc.read(|r, _| r.schema_by_id(id).cloned()).await?;
    Ok(raw_schema(&schema))
}

/// The (subject, version) pairs that hold schema `id` (`?deleted=true`
/// includes soft-deleted versions); 40403 when the id is unknown.
async fn subject_versions_of(
    svc: &Shared,
    id: &str,
    q: Option<&str>,
) -> Result<Vec<(String, i32)>, ApiError> {
    let id = parse_id(id)?;
    let deleted = flag(&params(q), "deleted");
    let pairs = svc
        .read(|r, _| {
            r.schema_by_id(id)?;
            Ok::<_, RegistryError>(r.versions_of_id(id, deleted))
        })
        .await?;
    Ok(pairs)
}

async fn id_subjects(
    State(svc): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let pairs = subject_versions_of(&svc, &id, q.as_deref()).await?;
    let mut subjects: Vec<String> = pairs.into_iter().map(|(s, _)| s).collect();
    subjects.dedup();
    ok(&json!(subjects))
}

async fn id_versions(
    State(svc): State<Shared>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let pairs = subject_versions_of(&svc, &id, q.as_deref()).await?;
    let list: Vec<Value> = pairs
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    ok(&json!(list))
}

/// GET /schemas: every (subject, version), optionally by prefix, with
/// soft-deleted ones, or only each subject's latest.
async fn list(State(svc): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q.as_deref());
    let prefix = p.get("subjectPrefix").cloned().unwrap_or_default();
    let deleted = flag(&p, "deleted");
    let latest_only = flag(&p, "latestOnly");
    let list = svc
        .read(|r, _| {
            let mut out = Vec::new();
            for subject in r.subjects(&prefix, deleted, false) {
                let Ok(versions) = r.versions(&subject, deleted) else {
                    continue;
                };
                let chosen: Vec<i32> = if latest_only {
                    versions.last().copied().into_iter().collect()
                } else {
                    versions
                };
                for v in chosen {
                    if let Ok(reg) = r.version(&subject, VersionRef::Number(v), deleted) {
                        out.push(registered(&reg));
                    }
                }
            }
            out
        })
        .await;
    ok(&json!(list))
}

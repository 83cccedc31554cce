//! `/subjects`: register, look up, list and delete versions of subjects.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::{
    body, flag, ok, params, raw_schema, registered, ApiError, ApiResult, SchemaRequest, Shared,
};
use crate::error::RegistryError;
use crate::model::VersionRef;
use crate::registry::{Imported, Registered};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/subjects", get(list))
        .route(
            "/subjects/{subject}",
            axum::routing::post(lookup).delete(delete_subject),
        )
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_raw),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
}

async fn list(State(svc): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let p = params(q.as_deref());
    let prefix = p.get("subjectPrefix").cloned().unwrap_or_default();
    let (deleted, deleted_only) = (flag(&p, "deleted"), flag(&p, "deletedOnly"));
    let names = svc
        .read(|r, _| r.subjects(&prefix, deleted, deleted_only))
        .await;
    ok(&json!(names))
}

/// POST /subjects/{s}: which version of the subject holds this schema.
async fn lookup(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let deleted = flag(&params(q.as_deref()), "deleted");
    let req: SchemaRequest = body(&headers, raw)?;
    let schema = req.schema()?;
    let found = svc
        .read(|r, checker| {
            r.versions(&subject, deleted)?;
            r.validate(&schema, checker)?;
            let mut found = r.lookup(&subject, &schema, deleted)?;
            // Answer with the schema as stored, not as sent.
            if let Ok(stored) = r.schema_by_id(found.id) {
                found.schema = stored.clone();
            }
            Ok::<_, RegistryError>(found)
        })
        .await?;
    ok(&registered(&found))
}

async fn delete_subject(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let permanent = flag(&params(q.as_deref()), "permanent");
    let versions = svc
        .write(|r, _| r.delete_subject(&subject, permanent))
        .await?;
    ok(&json!(versions))
}

async fn versions(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = params(q.as_deref());
    let deleted = flag(&p, "deleted") || flag(&p, "deletedOnly");
    let list = svc.read(|r, _| r.versions(&subject, deleted)).await?;
    ok(&json!(list))
}

/// POST /subjects/{s}/versions: register (idempotently).
async fn register(
    State(svc): State<Shared>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: SchemaRequest = body(&headers, raw)?;
    let schema = req.schema()?;
    let imported = Imported {
        id: req.id.filter(|id| *id >= 0),
        version: req.version.filter(|v| *v >= 0),
    };
    let (id, version) = svc
        .write(|r, checker| {
            let (id, version, recs) = r.register_as(&subject, schema, imported, checker)?;
            Ok(((id, version), recs))
        })
        .await?;
    ok(&json!({"id": id, "version": version}))
}

/// The version a path names (`latest`, -1 or a number; `?deleted=true`
/// includes soft-deleted ones).
async fn find_version(
    svc: &Shared,
    subject: &str,
    version: &str,
    q: Option<&str>,
) -> Result<Registered, ApiError> {
    let deleted = flag(&params(q), "deleted");
    let v = VersionRef::parse(version)?;
    Ok(svc.read(|r, _| r.version(subject, v, deleted)).await?)
}

async fn version(
    State(svc): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let found = find_version(&svc, &subject, &version, q.as_deref()).await?;
    ok(&registered(&found))
}

async fn version_raw(
    State(svc): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let found = find_version(&svc, &subject, &version, q.as_deref()).await?;
    Ok(raw_schema(&found.schema))
}

async fn referenced_by(
    State(svc): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let v = VersionRef::parse(&version)?;
    let ids = svc
        .read(|r, _| {
            let found = r.version(&subject, v, false)?;
            Ok::<_, RegistryError>(r.referenced_by(&subject, found.version))
        })
        .await?;
    ok(&json!(ids))
}

async fn delete_version(
    State(svc): State<Shared>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let permanent = flag(&params(q.as_deref()), "permanent");
    let v = VersionRef::parse(&version)?;
    let deleted = svc
        .write(|r, _| r.delete_version(&subject, v, permanent))
        .await?;
    ok(&json!(deleted))
}

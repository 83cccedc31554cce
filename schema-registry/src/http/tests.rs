//! The REST API, data-driven: `cases.json` is a sequence of requests with
//! the status and the body (or the part of it) each must get, run in order
//! against one registry. Then: the same state replayed from the store
//! answers the same, a failing store stores nothing, oversized bodies are
//! refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{router, DEFAULT_MAX_BODY_BYTES};
use crate::service::Service;
use crate::store::{MemoryStore, Store};

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn send(
    app: &axum::Router,
    method: &str,
    path: &str,
    body: Option<String>,
    content_type: &str,
) -> Answer {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("content-type", content_type)
        .body(body.map_or_else(Body::empty, Body::from))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// `got` has everything `want` has: objects by key (extra keys allowed),
/// arrays and scalars exactly.
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        _ => got == want,
    }
}

fn app(store: Arc<MemoryStore>) -> axum::Router {
    let store: Arc<dyn Store> = store;
    router(
        Arc::new(Service::open(store).unwrap()),
        DEFAULT_MAX_BODY_BYTES,
    )
}

async fn run_cases(app: &axum::Router) {
    let cases: Vec<Value> = serde_json::from_str(include_str!("cases.json")).unwrap();
    assert!(cases.len() > 90);
    for c in &cases {
        let name = c["name"].as_str().unwrap();
        let body = match (c.get("body"), c.get("raw")) {
            (Some(b), _) => Some(b.to_string()),
            (None, Some(r)) => Some(r.as_str().unwrap().to_string()),
            (None, None) => None,
        };
        let ct = c
            .get("content_type")
            .and_then(Value::as_str)
            .unwrap_or("application/vnd.schemaregistry.v1+json");
        let a = send(
            app,
            c["method"].as_str().unwrap(),
            c["path"].as_str().unwrap(),
            body,
            ct,
        )
        .await;
        let want = u16::try_from(c["status"].as_u64().unwrap()).unwrap();
        assert_eq!(a.status.as_u16(), want, "{name}: {}", a.body);
        assert_eq!(a.content_type, super::CONTENT_TYPE, "{name}");
        if let Some(raw) = c.get("expect_raw") {
            assert_eq!(a.body, raw.as_str().unwrap(), "{name}");
        }
        if let Some(expect) = c.get("expect") {
            let got: Value = serde_json::from_str(&a.body)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {}", a.body));
            assert!(contains(&got, expect), "{name}: got {got}, want {expect}");
            if got.get("error_code").is_some() {
                assert!(
                    got["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{name}"
                );
            }
        }
    }
}

/// Paths whose answers describe the whole state.
const STATE_PATHS: &[&str] = &[
    "/subjects?deleted=true",
    "/schemas?deleted=true",
    "/schemas/ids/1",
    "/schemas/ids/100",
    "/schemas/ids/1/versions?deleted=true",
    "/subjects/s1/versions?deleted=true",
    "/subjects/user/versions/1",
    "/config",
    "/config/s1",
    "/mode",
    "/mode/s1",
    "/subjects/base/versions/1/referencedby",
];

#[tokio::test]
async fn the_rest_api_case_by_case_and_after_replay() {
    let store = Arc::new(MemoryStore::new());
    let first = app(store.clone());
    run_cases(&first).await;
    let replayed = app(store);
    for path in STATE_PATHS {
        let a = send(&first, "GET", path, None, "application/json").await;
        let b = send(&replayed, "GET", path, None, "application/json").await;
        assert_eq!((a.status, &a.body), (b.status, &b.body), "{path}");
    }
}

#[tokio::test]
async fn a_failing_store_stores_nothing() {
    let store = Arc::new(MemoryStore::new());
    let app = app(store.clone());
    let schema = r#"{"schema":"{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}"}"#;
    let a = send(
        &app,
        "POST",
        "/subjects/f/versions",
        Some(schema.into()),
        "application/json",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    store.fail_appends(true);
    let other = r#"{"schema":"\"string\""}"#;
    let a = send(
        &app,
        "POST",
        "/subjects/g/versions",
        Some(other.into()),
        "application/json",
    )
    .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.body);
    assert!(a.body.contains("50001"), "{}", a.body);
    let a = send(&app, "GET", "/subjects", None, "application/json").await;
    assert_eq!(a.body, r#"["f"]"#);
    store.fail_appends(false);
    let a = send(
        &app,
        "POST",
        "/subjects/g/versions",
        Some(other.into()),
        "application/json",
    )
    .await;
    assert_eq!(a.body, r#"{"id":2,"version":1}"#);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let store = Arc::new(MemoryStore::new());
    let svc = Arc::new(Service::open(store.clone() as Arc<dyn Store>).unwrap());
    let app = router(svc, 1024);
    let big = format!(r#"{{"schema":"\"string\"","pad":"{}"}}"#, "x".repeat(4096));
    let a = send(
        &app,
        "POST",
        "/subjects/big/versions",
        Some(big),
        "application/json",
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert!(a.body.contains("413"), "{}", a.body);
    assert!(store.load().unwrap().is_empty());
}
